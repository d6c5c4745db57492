-- Clocks and sleep from the C core (pq_clock.c): a retry wait is cut short
-- (or not begun) once the batch's handlers have caught SIGINT or SIGTERM, so
-- Ctrl-C does not wait out a long Retry-After.
local core = require "prequalify.core"
local helpers = require "helpers"

local q = helpers.shell_quote

describe("core clocks", function()
  it("sleeps the whole time when no signal comes", function()
    local t0 = core.monotonic()
    assert.is_true(core.sleep(0.02))
    assert.is_true(core.monotonic() - t0 >= 0.02)
    assert.is_true(core.sleep(0))
  end)

  it("gives unix time and a clock that does not go back", function()
    assert.is_true(math.abs(core.time() - os.time()) < 2)
    local a = core.monotonic()
    assert.is_true(core.monotonic() >= a)
  end)

  it("refuses a negative or huge sleep, naming the rule", function()
    for _, s in ipairs{ -1, 1e9, 0 / 0 } do
      local ok, err = pcall(core.sleep, s)
      assert.is_false(ok)
      assert.matches("expected seconds (0 to 86400)", err, 1, true)
    end
  end)

  -- Runs a Lua chunk in a child process with the core on its cpath.
  local function child(chunk)
    return assert(io.popen("sh -c " .. q("echo $$; exec env LUA_CPATH=" .. q(helpers.core_cpath()) ..
                                          " lua5.4 -e " .. q(chunk))))
  end

  for _, sig in ipairs{ "INT", "TERM" } do
    it("returns false at once when SIG" .. sig .. " arrives once the handlers are in place", function()
      -- The child says it is about to sleep; the parent signals it then.
      -- Whether the signal lands just before the sleep or during it, the
      -- sleep ends (a missed cut would show as a 60-second sleep).
      local p = child([[
        local core = require "prequalify.core"
        assert(core.signals_install())
        io.write("ready\n") io.flush()
        local t0 = core.monotonic()
        local full = core.sleep(60)
        io.write(tostring(full), " ", string.format("%.1f", core.monotonic() - t0), "\n")]])
      local pid = assert(p:read("l"))
      assert.equal("ready", p:read("l"))
      assert(os.execute("kill -" .. sig .. " " .. pid))
      local full, took = p:read("l"):match("^(%a+) ([%d.]+)$")
      p:close()
      assert.equal("false", full)
      assert.is_true(tonumber(took) < 30, "slept " .. took .. " s")
    end)
  end

  it("sleeps whole again once the handlers are restored", function()
    local p = child([[
      local core = require "prequalify.core"
      assert(core.signals_install())
      os.execute("kill -TERM $PPID") -- this process, from its sh child
      io.write(tostring(core.sleep(60)), "\n")
      core.signals_restore()
      io.write(tostring(core.sleep(0.01)), "\n")]])
    p:read("l")
    assert.equal("false", p:read("l"))
    assert.equal("true", p:read("l"))
    p:close()
  end)
end)
