-- bench/soak.lua --smoke: about 20 s of batches against the emulator with
-- random faults. Checks that the script still runs, loses no item, keeps
-- its file descriptors flat and passes. (The 10-minute soak itself is not
-- part of CI; see bench/README.md.)
local helpers = require "helpers"
local cli = require "fixtures.cli"
local core = require "prequalify.core"

describe("the soak #slow #nosan", function()
  it("runs --smoke in bounded time, loses no item and exits 0", function()
    local t0 = core.monotonic()
    local r = cli.exec({ "lua5.4", cli.ROOT .. "/bench/soak.lua", "--smoke" }, { cwd = helpers.ROOT })
    local took = core.monotonic() - t0
    assert.equal(0, r.code, r.out .. r.err)
    assert.truthy(r.out:find("\n  lost = 0  PASS\n", 1, true), r.out)
    assert.truthy(r.out:find("fds: .* flat: PASS"), r.out)
    assert.truthy(r.out:find("\nsoak: PASS\n", 1, true), r.out)
    -- Every batch was checked: items went through, faults were injected.
    local items, approved = r.out:match("batches in %d+ s: (%d+) items, %d+ requests; (%d+) approved")
    assert.truthy(items and tonumber(items) > 500 and tonumber(approved) > 0, r.out)
    assert.truthy(r.out:find("faults injected: [1-9]"), r.out)
    -- The smoke runs about 20 s; the bound only catches a hang.
    assert.is_true(took <= 120, "took " .. took .. " s")
  end)
end)
