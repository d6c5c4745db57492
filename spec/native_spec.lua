-- Native hosts: two Lua states in two threads, each with its own engine.
local helpers = require "helpers"

describe("the core in a threaded host #emulator", function()
  it("lets two Lua states in two threads use their own engines at once", function()
    local build = os.getenv("PREQUALIFY_BUILD") or "build"
    local exe = helpers.ROOT .. "/" .. build .. "/spec/native/two_states"
    assert.truthy(io.open(exe, "rb"), "not built: " .. exe)
    local emu = helpers.start_emulator()
    local token = emu:token{ username = "approver", scope = "codesign:approve" }
    local q = helpers.shell_quote
    local p = io.popen(table.concat({ q(exe), q(emu.url), q(token), q(emu.ca),
      q(helpers.ROOT .. "/lua/?.lua"), "200", "2>&1" }, " "))
    local out = p:read("a")
    local ok = p:close()
    local received = emu:received("PreQualify/Create")
    emu:stop()
    assert.is_true(ok, out)
    assert.matches("thread 1: ok 200", out, 1, true)
    assert.matches("thread 2: ok 200", out, 1, true)
    assert.equal(400, received)
  end)
end)
