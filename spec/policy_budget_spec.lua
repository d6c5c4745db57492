-- A loaded policy's instruction budget in a batch: a rule of a policy file
-- that never returns denies its item, and the batch goes on.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"

describe("a loaded policy with a rule that never returns #emulator", function()
  local emu, dir

  hooks.emulator({ dir = "block" }, function(e, _, d) emu, dir = e, d end)

  it("denies that item in a batch of 100; the batch finishes and the other items land", function()
    local path = dir .. "/spin.lua"
    helpers.write_file(path, table.concat({
      "return policy.all{",
      "  policy.environment([[**\\Production Environment]]),",
      '  policy.rule("spin on item 37", function(req)',
      '    if req.comment == "batch item 37" then while true do end end',
      '    return true, "not item 37"',
      "  end),",
      "}",
    }, "\n"))
    local pol = assert(prequalify.policy.load(path))
    local list = {}
    for i = 1, 100 do
      list[i] = { dn = helpers.DN_PROD, user = helpers.USER, comment = "batch item " .. i,
                  data = (prequalify.digest.data("budget artifact " .. i)) }
    end
    local token = emu:token{ username = "approver", scope = "codesign:approve" }
    local c = assert(prequalify.client{ url = emu.url, token = token, ca_file = emu.ca })
    local rep = assert(c:batch(list, { concurrency = 4, policy = pol }))
    local approved, denied = 0, {}
    for e in rep:entries() do
      if e.outcome == "approved" then approved = approved + 1 else denied[#denied + 1] = e end
    end
    assert.equal(99, approved)
    assert.equal(1, #denied)
    assert.equal(37, denied[1].index)
    assert.equal("denied", denied[1].outcome)
    local last = denied[1].trail[#denied[1].trail]
    assert.equal("spin on item 37", last.rule)
    assert.matches("exceeded its instruction budget", last.reason, 1, true)
    assert.equal(99, #emu:prequalifications().items)
  end)
end)
