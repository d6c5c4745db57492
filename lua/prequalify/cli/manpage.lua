--- The man page prequalify(1), in man(7) format, generated from the
-- argparse definition (`prequalify.cli.parser`) so that it lists exactly the
-- commands and options `--help` lists; the environment from the settings
-- table, the exit codes from the parser's text. CMake writes it at build
-- time (cmake/generate.lua) and installs it in share/man/man1.
--
-- It reads the parser's element lists (`_commands`, `_options`,
-- `_arguments`) as lua-argparse's own completion generators do; this is the
-- only module that does.
-- @module prequalify.cli.manpage
local parser_mod = require "prequalify.cli.parser"
local settings = require "prequalify.cli.settings"

local M = {}

-- Variables that are not a setting's (settings.KEYS has the others).
local OTHER_ENV = {
  { "PREQUALIFY_CONFIG", "The config file, as --config." },
  { "PREQUALIFY_TOKEN", "An access token itself (there is no option that takes one: argv is visible to "
    .. "every user of the machine)." },
  { "PREQUALIFY_PASSWORD", "The password for --username itself (no option takes one)." },
  { "https_proxy, no_proxy", "The proxy, when neither --proxy nor PREQUALIFY_PROXY is set." },
  { "PREQUALIFY_EMULATOR", "Path of tpp_emulator.py for the emulator command." },
  { "PYTHON", "The Python 3 interpreter for the emulator command (default python3)." },
  { "PREQUALIFY_BUILD", "From a source checkout: the build directory holding prequalify/core.so "
    .. "(default build)." },
}

-- Text for a man(7) line: backslashes and hyphens escaped, no line may
-- start with a control character.
local function esc(s)
  s = tostring(s):gsub("\\", "\\e"):gsub("%-", "\\-")
  return (s:gsub("^([.'])", "\\&%1"):gsub("\n([.'])", "\n\\&%1"))
end

local function option_label(opt)
  local args = opt:_get_argument_list()
  local names = {}
  for i, alias in ipairs(opt._public_aliases) do names[i] = "\\fB" .. esc(alias) .. "\\fR" end
  local label = table.concat(names, ", ")
  if #args > 0 then label = label .. " \\fI" .. esc(table.concat(args, " ")) .. "\\fR" end
  return label
end

-- The commands as `{path = "token get", cmd = parser}`, depth first.
local function commands(p, prefix, out)
  out = out or {}
  for _, cmd in ipairs(p._commands) do
    local path = (prefix and (prefix .. " ") or "") .. cmd._name
    out[#out + 1] = { path = path, cmd = cmd }
    commands(cmd, path, out)
  end
  return out
end

-- Every distinct option (by its first name) with the commands that take it.
local function options_of(list, top)
  local order, by_name = {}, {}
  local function add(opt, where)
    local key = opt._public_aliases[1]
    local o = by_name[key]
    if not o then
      o = { opt = opt, where = {} }
      by_name[key] = o
      order[#order + 1] = o
    end
    o.where[#o.where + 1] = where
  end
  for _, opt in ipairs(top._options) do add(opt, "prequalify") end
  for _, c in ipairs(list) do
    for _, opt in ipairs(c.cmd._options) do add(opt, c.path) end
  end
  return order
end

--- The man page.
-- @tparam[opt] string version shown in the footer
-- @treturn string man(7) source
function M.render(version)
  local p = parser_mod.build()
  local list = commands(p)
  local out = {}
  local function put(...)
    for _, s in ipairs{ ... } do out[#out + 1] = s end
  end
  put('.TH PREQUALIFY 1 "" "prequalify ' .. esc(version or "") .. '" "User Commands"',
    ".SH NAME", "prequalify \\- pre\\-qualify artifact hashes for High Assurance Signing on Venafi TPP",
    ".SH SYNOPSIS")
  for _, c in ipairs(list) do
    if #c.cmd._commands == 0 then put("\\fBprequalify " .. esc(c.path) .. "\\fR [\\fIoptions\\fR]", ".br") end
  end
  put("\\fBprequalify\\fR \\fB\\-\\-help\\fR | \\fB\\-\\-version\\fR",
    ".SH DESCRIPTION", esc(p._description),
    "Each command also takes \\fB\\-\\-help\\fR. The full guide is docs/CLI.md in the source.",
    ".SH COMMANDS")
  for _, c in ipairs(list) do
    put(".SS prequalify " .. esc(c.path), esc(c.cmd._description or c.cmd._summary or ""))
    for _, arg in ipairs(c.cmd._arguments) do
      put(".TP", "\\fI" .. esc(arg._name) .. "\\fR", esc(arg._description or ""))
    end
    local names = {}
    for _, opt in ipairs(c.cmd._options) do names[#names + 1] = "\\fB" .. esc(opt._public_aliases[1]) .. "\\fR" end
    if #names > 0 then put(".PP", "Options: " .. table.concat(names, ", ") .. ".") end
    if #c.cmd._commands > 0 then
      local subs = {}
      for _, sub in ipairs(c.cmd._commands) do subs[#subs + 1] = "\\fB" .. esc(sub._name) .. "\\fR" end
      put(".PP", "Commands: " .. table.concat(subs, ", ") .. ".")
    end
  end
  put(".SH OPTIONS")
  for _, o in ipairs(options_of(list, p)) do
    local desc = o.opt._description or ""
    if o.opt._choices then desc = desc .. " One of: " .. table.concat(o.opt._choices, ", ") .. "." end
    put(".TP", option_label(o.opt), esc(desc), ".br", "Commands: " .. esc(table.concat(o.where, ", ")) .. ".")
  end
  put(".SH ENVIRONMENT",
    "A setting is taken from its option, else its environment variable, else the config file (the "
    .. "option's name with '_' for '\\-' is the config key). Booleans are 1, true, yes, on or 0, false, no, off.")
  local keys = {}
  for key in pairs(settings.KEYS) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b) return settings.KEYS[a].env < settings.KEYS[b].env end)
  for _, key in ipairs(keys) do
    put(".TP", "\\fB" .. esc(settings.KEYS[key].env) .. "\\fR",
      "As \\fB\\-\\-" .. esc((key:gsub("_", "-"))) .. "\\fR.")
  end
  for _, e in ipairs(OTHER_ENV) do put(".TP", "\\fB" .. esc(e[1]) .. "\\fR", esc(e[2])) end
  put(".SH EXIT STATUS", ".nf")
  for line in parser_mod.EXIT_CODES:gmatch("[^\n]+") do
    if not line:find("^Exit codes") then put(esc(line)) end
  end
  put(".fi", ".SH FILES",
    "A config file is read only when named (\\fB\\-\\-config\\fR or PREQUALIFY_CONFIG): key = value lines, or a "
    .. "Lua table when its name ends in .lua. It must not hold a secret.",
    ".SH SEE ALSO",
    "The documents installed with prequalify or in its source: README.md, docs/CLI.md, docs/AUTH.md, "
    .. "docs/BATCH.md, docs/POLICIES.md, docs/TROUBLESHOOTING.md.")
  return table.concat(out, "\n") .. "\n"
end

return M
