-- The README's first command, `bash examples/demo.sh`, run in a copy of the
-- source tree in a temporary directory (no build/ there: it configures and
-- builds from scratch), then run again to show it does not rebuild.
local helpers = require "helpers"
local cli = require "fixtures.cli"

local q = cli.q

-- Processes whose working directory is `dir` (the demo's emulator would be one).
local function processes_in(dir)
  local p = assert(io.popen("for p in /proc/[0-9]*; do [ \"$(readlink $p/cwd 2>/dev/null)\" = " .. q(dir)
    .. " ] && echo ${p#/proc/}; done; true"))
  local out = p:read("a")
  p:close()
  return out
end

describe("examples/demo.sh #slow #nosan", function()
  local copy

  setup(function()
    copy = helpers.tmpdir()
    -- The source tree as a fresh checkout would have it (no builds, no .git).
    assert(os.execute("tar -C " .. q(cli.ROOT) .. " --anchored --exclude=./.git --exclude='./build*'"
      .. " --exclude=./lua_modules --exclude=./.luarocks --exclude=./bench/out -cf - . | tar -C " .. q(copy)
      .. " -xf -"))
  end)
  teardown(function() helpers.rm_rf(copy) end)

  it("builds, runs the release approval against the emulator and stops the emulator", function()
    local r = cli.exec({ "bash", "examples/demo.sh" }, { cwd = copy })
    local text = r.out .. r.err
    assert.equal(0, r.code, text)
    for _, line in ipairs{
      "== build: the C core into build/ (cmake)",
      "== emulator: a local stand-in for TPP at https://localhost:",
      "DENY   myapp-4.2.0-installer.msi",
      "deny   deny_hashes(examples/policies/blocklist.txt, 4 hashes): 47DEQpj8HBSa... is on the deny list",
      "signed in as approver (local:{",
      "5 items: 4 approved, 1 denied, 0 failed, 0 unknown, 0 skipped",
      "REFUSED  myapp-4.2.0-installer.msi",
      "already used: the single-use pre-qualification was consumed",
      "Done: 4 of 5 artifacts pre-qualified and signed once each",
      "== emulator stopped",
    } do
      assert.truthy(text:find(line, 1, true), "missing: " .. line .. "\n" .. text)
    end
    local signed = 0
    for _ in r.out:gmatch("\n   SIGNED   ") do signed = signed + 1 end
    assert.equal(4, signed)
    assert.falsy(text:find("== installing", 1, true))
    assert.falsy(text:find("warning", 1, true), text)
    assert.truthy(io.open(copy .. "/build/prequalify/core.so", "rb")):close()
    assert.equal("", processes_in(copy))
  end)

  it("does not rebuild an up-to-date build/ when run again", function()
    local lfs = require "lfs"
    local so = copy .. "/build/prequalify/core.so"
    local before = lfs.attributes(so, "modification")
    local r = cli.exec({ "bash", "examples/demo.sh" }, { cwd = copy })
    assert.equal(0, r.code, r.out .. r.err)
    assert.equal(before, lfs.attributes(so, "modification"))
    assert.equal("", processes_in(copy))
  end)
end)
