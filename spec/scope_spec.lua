-- Scope strings (`name:priv1,priv2;name2`): parsing, building and checking,
-- and agreement with what the emulator grants.
local scope = require "prequalify.scope"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"

describe("scope strings", function()
  it("parses names with their privileges, several joined by semicolons", function()
    assert.same({ codesign = { approve = true, manage = true }, configuration = {} },
      scope.parse("codesign:approve,manage;configuration"))
  end)

  it("ignores case, spaces and empty parts", function()
    assert.same({ codesign = { approve = true } }, scope.parse(" CodeSign : Approve , ;; "))
    assert.same({}, scope.parse(""))
  end)

  it("merges a name that appears twice", function()
    assert.same({ codesign = { approve = true, manage = true } }, scope.parse("codesign:approve;codesign:manage"))
  end)

  it("refuses a part without a name or with a malformed privilege", function()
    local t, why = scope.parse(":approve")
    assert.is_nil(t)
    assert.matches("no valid name", why, 1, true)
    t, why = scope.parse("codesign:approve:manage")
    assert.is_nil(t)
    assert.matches("invalid privilege", why, 1, true)
    assert.is_nil((scope.parse(42)))
  end)

  it("builds a string in a stable order from sets, lists or true", function()
    assert.equal("codesign:approve,manage;configuration",
      scope.build{ configuration = true, codesign = { manage = true, approve = true } })
    assert.equal("codesign:approve,manage", scope.build{ codesign = { "manage", "approve" } })
    assert.equal("", scope.build{})
  end)

  it("round-trips through parse and build", function()
    local text = "certificate:discover,manage;codesign:approve;configuration"
    assert.equal("certificate:discover,manage;codesign:approve;configuration", scope.build(scope.parse(text)))
  end)

  it("tells whether a granted scope covers a wanted one", function()
    assert.is_true(scope.has("codesign:approve,manage;configuration", "codesign:approve"))
    assert.is_true(scope.has("codesign:approve;configuration", "configuration"))
    assert.is_true(scope.has(scope.parse("codesign:approve"), "codesign"))
    assert.is_false(scope.has("codesign:manage", "codesign:approve"))
    assert.is_false(scope.has("configuration", "codesign:approve"))
    assert.is_false(scope.has("", "codesign:approve"))
  end)

  it("names exactly what is missing", function()
    assert.equal("codesign:approve", scope.missing("codesign:manage;configuration", "codesign:approve,manage"))
    assert.equal("codesign:approve;configuration", scope.missing("", "codesign:approve;configuration"))
    assert.is_nil(scope.missing("codesign:approve,manage", "codesign:approve"))
  end)

  describe("against the emulator #emulator", function()
    local emu

    hooks.emulator({ lazy = true }, function(e) emu = e end)

    it("parses the scope the server granted the same way token_info reports it", function()
      local c = assert(require("prequalify").client{
        url = emu.url, ca_file = emu.ca,
        auth = { client_id = "prequalify", username = helpers.APPROVER, password = helpers.APPROVER_PASSWORD,
                 scope = scope.build{ codesign = { "approve", "manage" }, configuration = true } },
      })
      local info = assert(c:token_info())
      assert.equal("codesign:approve,manage;configuration", info.scope)
      assert.same(scope.parse(info.scope), info.scopes)
      assert.is_true(scope.has(info.scopes, scope.APPROVE))
      c:close()
    end)

    it("agrees with the server that a read-only grant lacks codesign:approve", function()
      local _, reply = emu:token{ client_id = "prequalify-readonly", scope = "configuration" }
      assert.is_false(scope.has(reply.scope, scope.APPROVE))
      assert.equal("codesign:approve", scope.missing(reply.scope, scope.APPROVE))
    end)
  end)
end)
