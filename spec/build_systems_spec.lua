-- examples/build-systems/cmake: a CMake project whose POST_BUILD command runs
-- `prequalify submit` on the file it just linked. Configured and built in a
-- temporary directory against the emulator, with the settings in PREQUALIFY_*
-- variables as a CI job would set them.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"

local SOURCE = cli.ROOT .. "/examples/build-systems/cmake"

describe("the CMake post-build example #emulator #slow #nosan", function()
  local emu, dir, env

  hooks.emulator({ dir = "block" }, function(e, _, d) emu, dir = e, d end)
  setup(function()
    env = cli.job_env(emu, dir, (emu:token{ username = "approver" }))
  end)

  local function cmake(args, e)
    local argv = { "cmake" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return cli.exec(argv, { env = e or env })
  end

  local function stored(data)
    for _, p in ipairs(emu:prequalifications().items) do
      if p.data == data then return p end
    end
  end

  it("pre-qualifies the target's hash after it is linked, and not again when it is up to date", function()
    local build = dir .. "/build"
    local r = cmake{ "-S", SOURCE, "-B", build, "-DPREQUALIFY_EXECUTABLE=" .. cli.CLI }
    assert.equal(0, r.code, r.out .. r.err)
    r = cmake{ "--build", build }
    assert.equal(0, r.code, r.out .. r.err)
    assert.truthy(r.out:find("Pre-qualifying hello for signing", 1, true), r.out)
    local data = cli.sha256_b64(build .. "/hello")
    local p = stored(data)
    assert.truthy(p, "the built target's hash was not pre-qualified")
    assert.equal("hello 4.2.0 hello (cmake post-build)", p.comment)
    assert.equal(4, p.hours)
    assert.is_true(p.single_use)
    assert.is_true((emu:sign{ dn = cli.DN, data = data, user = cli.USER }))

    local before = emu:received("prequalify")
    r = cmake{ "--build", build }
    assert.equal(0, r.code, r.out .. r.err)
    assert.equal(before, emu:received("prequalify"))
  end)

  it("fails the build when the hash cannot be pre-qualified", function()
    local build = dir .. "/refused"
    local e = {}
    for k, v in pairs(env) do e[k] = v end
    e.PREQUALIFY_DN = helpers.DN_LEGACY
    assert.equal(0, cmake({ "-S", SOURCE, "-B", build, "-DPREQUALIFY_EXECUTABLE=" .. cli.CLI }, e).code)
    local r = cmake({ "--build", build }, e)
    assert.are_not.equal(0, r.code)
    assert.truthy((r.out .. r.err):find("ValueProhibitedByTemplate", 1, true), r.out .. r.err)
  end)

  it("builds without a request when PREQUALIFY_ON_BUILD is OFF", function()
    local build = dir .. "/off"
    local before = emu:received("prequalify")
    assert.equal(0, cmake{ "-S", SOURCE, "-B", build, "-DPREQUALIFY_ON_BUILD=OFF" }.code)
    local r = cmake{ "--build", build }
    assert.equal(0, r.code, r.out .. r.err)
    assert.equal(before, emu:received("prequalify"))
  end)
end)
