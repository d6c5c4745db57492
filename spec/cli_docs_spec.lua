-- The command line's documentation agrees with the command: the man page
-- lists every command and option that --help lists, every environment
-- variable and exit code; the completion scripts load; docs/CLI.md has the
-- one exit-code table.
local helpers = require "helpers"
local cli = require "fixtures.cli"
local manpage = require "prequalify.cli.manpage"
local settings = require "prequalify.cli.settings"
local EXIT = require("prequalify.results").EXIT

local COMMANDS = { "", "submit", "batch", "plan", "digest", "token", "token get", "token refresh", "token info",
                   "token revoke", "emulator", "completion" }

-- The man page's text as a reader sees the words (escapes undone).
local function man_text()
  return (manpage.render("test"):gsub("\\f[BIR]", ""):gsub("\\%-", "-"):gsub("\\e", "\\"):gsub("\\&", ""))
end

local function help_of(command)
  local args = {}
  for w in command:gmatch("%S+") do args[#args + 1] = w end
  args[#args + 1] = "--help"
  local r = cli.run(args)
  assert.equal(0, r.code, r.err)
  return r.out
end

describe("the man page prequalify(1) #nosan", function()
  local man = man_text()

  for _, command in ipairs(COMMANDS) do
    it("lists every option that 'prequalify " .. command .. " --help' lists", function()
      local help = help_of(command)
      local n = 0
      for opt in help:gmatch("%s(%-%-?%a[%w-]*)") do
        n = n + 1
        assert.truthy(man:find(opt, 1, true), opt .. " of '" .. command .. "' is missing from the man page")
      end
      assert.is_true(n > 0)
      if command ~= "" then
        assert.truthy(man:find("prequalify " .. command .. "\n", 1, true), "section for " .. command)
      end
    end)
  end

  it("lists every environment variable and every exit code", function()
    for _, spec in pairs(settings.KEYS) do assert.truthy(man:find(spec.env, 1, true), spec.env) end
    for _, name in ipairs{ "PREQUALIFY_TOKEN\n", "PREQUALIFY_PASSWORD\n", "PREQUALIFY_CONFIG" } do
      assert.truthy(man:find(name, 1, true), name)
    end
    for _, code in pairs(EXIT) do
      assert.truthy(man:find("\n%s*" .. code .. "%s+%a"), "exit code " .. code)
    end
  end)

  it("is valid man(7) for groff, without warnings", function()
    local path = os.tmpname()
    helpers.write_file(path, manpage.render("test"))
    local p = io.popen("groff -man -Tutf8 -ww -z " .. cli.q(path) .. " 2>&1")
    local out = p:read("a")
    local ok = p:close()
    os.remove(path)
    assert.is_true(ok, out)
    assert.equal("", out)
  end)
end)

describe("prequalify completion #nosan", function()
  it("prints a bash script that bash parses and that registers the completion", function()
    local dir = helpers.tmpdir()
    local r = cli.run{ "completion", "bash" }
    assert.equal(0, r.code, r.err)
    local path = helpers.write_file(dir .. "/prequalify.bash", r.out)
    assert.equal(0, cli.exec({ "bash", "-n", path }).code)
    r = cli.exec({ "bash", "-c", "source " .. cli.q(path) .. " && complete -p prequalify" })
    assert.equal(0, r.code, r.err)
    assert.equal("complete -o bashdefault -o default -F _prequalify prequalify\n", r.out)
    helpers.rm_rf(dir)
  end)

  it("prints zsh and fish scripts that complete every command", function()
    local zsh = cli.run{ "completion", "zsh" }
    assert.equal(0, zsh.code, zsh.err)
    assert.truthy(zsh.out:find("^#compdef prequalify\n"))
    local fish = cli.run{ "completion", "fish" }
    assert.equal(0, fish.code, fish.err)
    for _, command in ipairs{ "submit", "batch", "plan", "digest", "token", "emulator" } do
      assert.truthy(zsh.out:find(command, 1, true), "zsh: " .. command)
      assert.truthy(fish.out:find("-xa '" .. command .. "'", 1, true), "fish: " .. command)
    end
  end)

  it("refuses a shell it does not know with a usage error", function()
    local r = cli.run{ "completion", "tcsh" }
    assert.equal(2, r.code)
    assert.truthy(r.err:find("'bash', 'zsh', 'fish'", 1, true), r.err)
  end)
end)

describe("the exit codes #nosan", function()
  it("have one table in docs/CLI.md, with the codes the commands use", function()
    local doc = helpers.read_file(cli.ROOT .. "/docs/CLI.md")
    local section = doc:match("### Exit codes\n(.-)\n###")
    local codes = {}
    for code in section:gmatch("\n| (%d+) |") do codes[#codes + 1] = tonumber(code) end
    local want = {}
    for _, code in pairs(EXIT) do want[#want + 1] = code end
    table.sort(want)
    assert.same(want, codes)
    -- What plan and digest do is what the table says.
    assert.truthy(section:find("`plan`: an item would be denied or is invalid", 1, true))
    assert.truthy(section:find("`digest`: a file could not be read", 1, true))
    local _, n = doc:gsub("| code | meaning |", "")
    assert.equal(1, n, "one exit-code table")
  end)
end)
