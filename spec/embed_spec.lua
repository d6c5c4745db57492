-- The embedding example: a C host that embeds Lua 5.4, links the core
-- statically (prequalify_core_static) and registers it with luaL_requiref,
-- built by CMake into build/examples/embed/, runs a build step that
-- pre-qualifies the artifact it just wrote.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"

local HOST = cli.ROOT .. "/build/examples/embed/embed_host"
local STEP = cli.ROOT .. "/examples/embed/build_step.lua"

describe("the embedding example #emulator #nosan", function()
  local emu, dir, env

  setup(function()
    assert(io.open(HOST, "rb"), HOST .. " is missing: build with cmake -S . -B build (PREQUALIFY_EXAMPLES=ON)")
      :close()
  end)
  hooks.emulator({ dir = "block" }, function(e, _, d) emu, dir = e, d end)
  setup(function()
    env = cli.job_env(emu, dir, (emu:token{ username = "approver" }))
  end)

  it("builds an artifact and pre-qualifies its hash from inside the host", function()
    local artifact = dir .. "/app-1.2.3.bin"
    local r = cli.exec({ HOST, STEP, artifact, "1.2.3" }, { env = env })
    assert.equal(0, r.code, r.out .. r.err)
    local data = cli.sha256_b64(artifact)
    assert.equal("built " .. artifact .. " and pre-qualified sha256 " .. data, r.out:match("^(.-) %("))
    local found
    for _, p in ipairs(emu:prequalifications().items) do
      if p.data == data then found = p end
    end
    assert.truthy(found, "the emulator holds no pre-qualification for " .. data)
    assert.equal("build step: app-1.2.3.bin 1.2.3", found.comment)
    assert.is_true(found.single_use)
    assert.is_true((emu:sign{ dn = cli.DN, data = data, user = cli.USER }))
  end)

  it("uses the statically linked core: no prequalify/core.so is on the search path", function()
    local script = helpers.write_file(dir .. "/probe.lua", [[
      local core = require "prequalify.core"
      print(package.searchpath("prequalify.core", package.cpath) == nil, package.loaded["prequalify.core"] == core,
        (core.digest_data("abc", "sha256")))
      return 0
    ]])
    local r = cli.exec({ HOST, script }, {})
    assert.equal(0, r.code, r.err)
    assert.equal("true\ttrue\tungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=\n", r.out)
  end)

  it("fails the build step when the hash cannot be pre-qualified", function()
    local bad = {}
    for k, v in pairs(env) do bad[k] = v end
    bad.PREQUALIFY_DN = helpers.DN_LEGACY
    local r = cli.exec({ HOST, STEP, dir .. "/legacy.bin" }, { env = bad })
    assert.equal(1, r.code)
    assert.truthy(r.err:find("ValueProhibitedByTemplate", 1, true), r.err)
  end)

  it("reports a script error with a traceback and exit status 1", function()
    local script = helpers.write_file(dir .. "/boom.lua", "error(require('prequalify').request{})\n")
    local r = cli.exec({ HOST, script }, {})
    assert.equal(1, r.code)
    assert.truthy(r.err:find("^embed_host: .*stack traceback"), r.err)
  end)
end)
