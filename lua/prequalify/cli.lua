--- The `prequalify` command line: parses the arguments (lua-argparse), runs
-- one subcommand and returns its exit code. `bin/prequalify` only finds the
-- modules and calls `main`. See docs/CLI.md.
--
--     local code = require("prequalify.cli").main({"digest", "app.bin"})
--
-- Exit codes: 0 all approved, 1 some denied or failed, 2 usage error,
-- 3 unknown outcomes present, 130 interrupted.
-- @module prequalify.cli
local parser_mod = require "prequalify.cli.parser"
local settings_mod = require "prequalify.cli.settings"

local M = {}

--- Exit codes.
M.EXIT = { OK = 0, FAILED = 1, USAGE = 2, UNKNOWN = 3, INTERRUPTED = 130 }

local COMMANDS = {
  submit = "prequalify.cli.submit",
  tickets = "prequalify.cli.tickets", audit = "prequalify.cli.audit",
  batch = "prequalify.cli.batch",
  plan = "prequalify.cli.plan",
  digest = "prequalify.cli.digest",
  token = "prequalify.cli.token",
  emulator = "prequalify.cli.emulator",
}

local TOKEN_COMMANDS = { get = true, refresh = true, info = true, revoke = true }

-- What each command can be told; the rest of the context is in `new_context`.
local Context = {}
Context.__index = Context

--- Print a usage error for `command` and return exit code 2.
function Context:usage(command, msg)
  self.err:write("prequalify ", command, ": ", msg, "\n",
    "Run 'prequalify ", command, " --help' for the options.\n")
  return M.EXIT.USAGE
end

--- Print a failure and return exit code 1.
function Context:fail(msg)
  -- An error value's tostring already starts with "prequalify: ".
  self.err:write("prequalify: ", (tostring(msg):gsub("^prequalify: ", "")), "\n")
  return M.EXIT.FAILED
end

function Context:warn(msg)
  self.err:write("prequalify: warning: ", msg, "\n")
end

--- Print lines to stdout.
function Context:print(...)
  self.out:write(...)
  self.out:write("\n")
end

--- Settings from options, environment and config, or nil after a usage error.
function Context:settings(args, command)
  local s, err = settings_mod.resolve(args, self.getenv)
  if not s then return nil, self:usage(command, err) end
  return s
end

--- A client from the settings, with credentials (required unless
-- `optional_credentials`). Returns the client, or nil and an exit code.
function Context:client(args, s, command, optional_credentials)
  local prequalify = require "prequalify"
  local opts, oerr = s:client_options(function(msg) self:warn(msg) end)
  if not opts then return nil, self:usage(command, oerr) end
  local creds, how = s:credentials(args, self.stdin)
  if not creds then return nil, self:usage(command, how) end
  if how == "none" and not optional_credentials then
    return nil, self:usage(command, "no credentials: give --token-file, PREQUALIFY_TOKEN or --token-stdin; "
      .. "or --username with --password-file or --password-stdin; or --refresh-token-file "
      .. "(the last two with --client-id)")
  end
  for k, v in pairs(creds) do opts[k] = v end
  local client, err = prequalify.client(opts)
  if not client then return nil, self:usage(command, tostring(err.message)) end
  return client, how
end

--- Load a policy file, or nil and an exit code.
function Context:policy(path, command)
  local policy = require "prequalify.policy"
  local p, err = policy.load(path)
  if not p then return nil, self:usage(command, "--policy: " .. err.message) end
  return p
end

local function new_context(env)
  return setmetatable({
    out = env.stdout or io.stdout,
    err = env.stderr or io.stderr,
    stdin = env.stdin or io.stdin,
    getenv = env.getenv or os.getenv,
    script = env.script,
  }, Context)
end

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

local function run(args, cx)
  if args.version then
    cx:print("prequalify ", require("prequalify.core")._VERSION)
    return M.EXIT.OK
  end
  if not args.command then
    cx.err:write("prequalify: a command is required: submit, batch, plan, digest, token or emulator\n",
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
  local cx = new_context(env or {})
  local list = {}
  for i = 1, #(argv or {}) do list[i] = tostring(argv[i]) end
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
