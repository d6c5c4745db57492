--- The `prequalify` command line: parses the arguments (lua-argparse), runs
-- one subcommand and returns its exit code. `bin/prequalify` only finds the
-- modules and calls `main`. See docs/CLI.md.
--
--     local code = require("prequalify.cli").main({"digest", "app.bin"})
--
-- Exit codes: `prequalify.cli.common.EXIT`.
-- @module prequalify.cli
local common = require "prequalify.cli.common"
local parser_mod = require "prequalify.cli.parser"

local M = {}

--- Exit codes (the table of `prequalify.cli.common`).
M.EXIT = common.EXIT

local COMMANDS = {
  submit = "prequalify.cli.submit",
  tickets = "prequalify.cli.tickets", audit = "prequalify.cli.audit", journal = "prequalify.cli.journal",
  batch = "prequalify.cli.batch",
  plan = "prequalify.cli.plan",
  digest = "prequalify.cli.digest",
  token = "prequalify.cli.token",
  emulator = "prequalify.cli.emulator",
  completion = "prequalify.cli.completion",
}

local TOKEN_COMMANDS = { get = true, refresh = true, info = true, revoke = true }

-- The command path named in argv (for messages after a parse error).
local function command_of(argv)
  local name
  for _, a in ipairs(argv) do
    if a:sub(1, 1) ~= "-" then
      if not name then
        if not COMMANDS[a] then return nil end
        name = a
        if a ~= "token" then return name end
      elseif TOKEN_COMMANDS[a] then
        return name .. " " .. a
      else
        return name
      end
    end
  end
  return name
end

-- "--hours -1": argparse reads "-1" as an option of its own. Given as
-- "--hours=-1" the value reaches the option's check, which says what is
-- wrong with it. Nothing after "--" is touched.
local function attach_negative_numbers(list)
  local out = {}
  for i, a in ipairs(list) do
    if a == "--" then
      table.move(list, i, #list, #out + 1, out)
      break
    end
    local prev = out[#out]
    if prev and prev:match("^%-%-%w[%w-]*$") and a:match("^%-%.?%d") then
      out[#out] = prev .. "=" .. a
    else
      out[#out + 1] = a
    end
  end
  return out
end

local function run(args, cx)
  if args.version then
    cx:print("prequalify ", require("prequalify.core")._VERSION)
    return M.EXIT.OK
  end
  if not args.command then
    cx.err:write("prequalify: a command is required: submit, batch, plan, journal, digest, token, emulator or "
      .. "completion\n",
      "Run 'prequalify --help' for usage.\n")
    return M.EXIT.USAGE
  end
  local command = require(COMMANDS[args.command])
  return command(args, cx)
end

--- Run the command line.
-- @tparam table argv the arguments (`arg` of the script; only 1..n are read)
-- @tparam[opt] table env `stdout`, `stderr`, `stdin` (files), `getenv`
--   (function), `script` (the real path of bin/prequalify)
-- @treturn integer the exit code
function M.main(argv, env)
  local cx = common.context(env or {})
  local list = {}
  for i = 1, #(argv or {}) do list[i] = tostring(argv[i]) end
  list = attach_negative_numbers(list)
  local parser = parser_mod.build()
  local pok, ok, args = pcall(parser.pparse, parser, list)
  if not pok then
    local msg = tostring(ok)
    if msg:sub(1, #parser_mod.HELP) == parser_mod.HELP then
      cx.out:write(parser_mod.help_text, "\n")
      return M.EXIT.OK
    end
    error(msg, 0)
  end
  if not ok then
    local command = command_of(list)
    if command then return cx:usage(command, args) end
    cx.err:write("prequalify: ", args, "\nRun 'prequalify --help' for usage.\n")
    return M.EXIT.USAGE
  end
  local rok, code = xpcall(run, function(e)
    if tostring(e):find("interrupted!", 1, true) then return e end
    return debug.traceback(e, 2)
  end, args, cx)
  if rok then return code end
  if tostring(code):find("interrupted!", 1, true) then
    cx.err:write("prequalify: interrupted\n")
    return M.EXIT.INTERRUPTED
  end
  cx.err:write("prequalify: internal error: ", tostring(code), "\n")
  return M.EXIT.FAILED
end

return M
