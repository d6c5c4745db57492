-- What `cmake --install` gives a program that embeds Lua: the static core,
-- prequalify.h, prequalify.pc and the CMake package, from which the embed
-- example builds (by CMake and by hand with pkg-config) and runs; and the
-- man page and the three shell completions where distributions look.
local helpers = require "helpers"
local cli = require "fixtures.cli"

describe("cmake --install #slow #nosan", function()
  local prefix, work

  setup(function()
    prefix, work = helpers.tmpdir(), helpers.tmpdir()
    local r = cli.exec({ "cmake", "--install", cli.ROOT .. "/build", "--prefix", prefix })
    assert.equal(0, r.code, r.out .. r.err)
  end)
  teardown(function()
    helpers.rm_rf(prefix)
    helpers.rm_rf(work)
  end)

  -- Runs a host with a probe script: the core is linked in, not loaded.
  local function runs_statically(host)
    local probe = helpers.write_file(work .. "/probe.lua", [[
      local prequalify = require "prequalify"
      print(package.searchpath("prequalify.core", package.cpath) == nil,
        (prequalify.digest.data("abc", "sha256")))
      return 0
    ]])
    local r = cli.exec({ host, probe }, { env = { PREQUALIFY_LUA_DIR = "" } })
    assert.equal(0, r.code, r.out .. r.err)
    assert.equal("true\tungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=\n", r.out)
  end

  it("installs the static core, its header, pkg-config and CMake package files", function()
    for _, f in ipairs{ "lib/libprequalify_core.a", "include/prequalify.h", "lib/pkgconfig/prequalify.pc",
                        "lib/cmake/prequalify/prequalifyConfig.cmake",
                        "lib/cmake/prequalify/prequalifyConfigVersion.cmake" } do
      assert.truthy(helpers.read_file(prefix .. "/" .. f), f)
    end
    local header = helpers.read_file(prefix .. "/include/prequalify.h")
    assert.truthy(header:find("int luaopen_prequalify_core(lua_State *L);", 1, true))
    local r = cli.exec({ "pkg-config", "--libs", "--cflags", "prequalify" },
      { env = { PKG_CONFIG_PATH = prefix .. "/lib/pkgconfig" } })
    assert.equal(0, r.code, r.err)
    for _, flag in ipairs{ "-lprequalify_core", "-lcurl", "-lssl", "-lcrypto", "-I" .. prefix .. "/include" } do
      assert.truthy(r.out:find(flag, 1, true), flag .. " in " .. r.out)
    end
  end)

  it("builds the embed example from the installed prefix with CMake", function()
    local b = work .. "/cmake-build"
    local r = cli.exec({ "cmake", "-S", cli.ROOT .. "/examples/embed", "-B", b, "-DCMAKE_PREFIX_PATH=" .. prefix })
    assert.equal(0, r.code, r.out .. r.err)
    r = cli.exec({ "cmake", "--build", b })
    assert.equal(0, r.code, r.out .. r.err)
    runs_statically(b .. "/embed_host")
  end)

  it("builds the embed example by hand with pkg-config prequalify lua5.4", function()
    local env = { PKG_CONFIG_PATH = prefix .. "/lib/pkgconfig" }
    local flags = cli.exec({ "pkg-config", "--cflags", "--libs", "prequalify", "lua5.4" }, { env = env })
    assert.equal(0, flags.code, flags.err)
    local host = work .. "/hand_host"
    local cmd = "cc -std=c99 -D_POSIX_C_SOURCE=200809L '-DEMBED_LUA_DIR=\"" .. prefix .. "/share/lua/5.4\"' "
      .. cli.q(cli.ROOT .. "/examples/embed/embed_host.c") .. " " .. flags.out:gsub("\n", "") .. " -Wl,-E -o "
      .. cli.q(host) .. " 2>&1"
    local p = io.popen(cmd)
    local out = p:read("a")
    assert.is_true(p:close(), out)
    runs_statically(host)
  end)

  it("installs the man page and the bash, zsh and fish completions", function()
    local man = helpers.read_file(prefix .. "/share/man/man1/prequalify.1")
    assert.truthy(man and man:find("^%.TH PREQUALIFY 1"), "man page")
    assert.truthy(helpers.read_file(prefix .. "/share/bash-completion/completions/prequalify"))
    assert.truthy(helpers.read_file(prefix .. "/share/zsh/vendor-completions/_prequalify"))
    assert.truthy(helpers.read_file(prefix .. "/share/fish/vendor_completions.d/prequalify.fish"))
    local r = cli.exec({ "bash", "-c", "source " .. cli.q(prefix .. "/share/bash-completion/completions/prequalify")
      .. " && complete -p prequalify" })
    assert.equal(0, r.code, r.err)
    assert.truthy(r.out:find("-F _prequalify", 1, true), r.out)
  end)
end)
