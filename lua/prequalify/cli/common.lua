--- What every subcommand of the command line shares: the one exit-code
-- table, the context a command is run with (its output streams and the
-- usage/failure messages), the preamble that turns options, environment
-- and config into settings, a policy and a client, and the path helpers of
-- comment templates. A subcommand is a function `(args, cx) -> exit code`
-- in its own file `cli/<name>.lua`.
-- @module prequalify.cli.common
local paths = require "prequalify.paths"
local settings_mod = require "prequalify.cli.settings"

local M = {}

--- Exit codes of every command: `prequalify.results.EXIT` (docs/CLI.md,
-- "Exit codes"), the table `report:exit_code()` maps a batch to.
M.EXIT = require("prequalify.results").EXIT

--- The directory of a path (see `prequalify.paths.dirname`).
M.dirname = paths.dirname

--- `{name}`, `{path}` and `{dir}` in a comment (see `prequalify.paths.expand_comment`).
M.expand_comment = paths.expand_comment

-- The context a command runs with.
local Context = {}
Context.__index = Context

--- Print a usage error for `command` and return exit code 2.
function Context:usage(command, msg)
  self.err:write("prequalify ", command, ": ", msg, "\n",
    "Run 'prequalify ", command, " --help' for the options.\n")
  return M.EXIT.USAGE
end

-- Every way to sign in, as usage errors name them: written once, so that
-- each command names the same ones.
local SIGN_INS = "--username with --password-file or --password-stdin, --jwt-file, --jwt-env, "
  .. "--certificate-grant, or --refresh-token-file; and --client-id"

--- Print the usage error of a command given no credentials and return exit
-- code 2. With `sign_in_only` a bearer token will not do (`token get`).
function Context:no_credentials(command, sign_in_only)
  if sign_in_only then return self:usage(command, command .. " needs a sign-in: " .. SIGN_INS) end
  return self:usage(command, "no credentials: give --token-file, PREQUALIFY_TOKEN or --token-stdin; "
    .. "or sign in: " .. SIGN_INS)
end

--- Print a failure and return exit code 1.
function Context:fail(msg)
  self.err:write("prequalify: ", self:failure(msg), "\n")
  return M.EXIT.FAILED
end

--- The message of a failure as the user should read it: the library names
-- the CA an untrusted server certificate was checked against by its Lua
-- option (`ca_file`); here it is named as the user gave it (`--ca-file`,
-- a variable or a config line).
-- @param err an error value (its `tostring`), or a message
-- @treturn string the message, without the "prequalify: " lead
function Context:failure(err)
  local msg = tostring(err):gsub("^prequalify: ", "")
  local s = self.current_settings
  if s then msg = s:own_words(msg) end
  local ca = s and (s:get("ca_file") and "ca_file" or s:get("ca_path") and "ca_path")
  local named = ca and "not trusted: neither " .. ca .. " ("
  local at = named and msg:find(named, 1, true)
  if not at then return msg end
  return msg:sub(1, at - 1) .. "not trusted: neither " .. s:source(ca) .. " (" .. msg:sub(at + #named)
end

--- Print a warning on stderr.
function Context:warn(msg)
  self.err:write("prequalify: warning: ", msg, "\n")
end

--- Print lines to stdout.
function Context:print(...)
  self.out:write(...)
  self.out:write("\n")
end

--- Settings from options, environment and config, or nil and exit code 2.
function Context:settings(args, command)
  local s, err = settings_mod.resolve(args, self.getenv)
  if not s then return nil, self:usage(command, err) end
  self.current_settings = s
  return s
end

--- A client from the settings, with credentials (required unless
-- `optional_credentials`). Returns the client and how it signs in, or nil
-- and an exit code.
function Context:client(args, s, command, optional_credentials)
  local prequalify = require "prequalify"
  local opts, oerr = s:client_options(function(msg) self:warn(msg) end)
  if not opts then return nil, self:usage(command, oerr) end
  local creds, how = s:credentials(args, self.stdin)
  if not creds then return nil, self:usage(command, how) end
  if how == "none" and not optional_credentials then return nil, self:no_credentials(command) end
  for k, v in pairs(creds) do opts[k] = v end
  local client, err = prequalify.client(opts)
  if not client then return nil, self:usage(command, s:explain(err)) end
  return client, how
end

--- Load a policy file, or nil and an exit code.
function Context:policy(path, command)
  local policy = require "prequalify.policy"
  local p, err = policy.load(path)
  if not p then
    local s = self.current_settings
    return nil, self:usage(command, (s and s:source("policy") or "--policy") .. ": " .. err.message)
  end
  return p
end

--- The context of one run of the command line.
-- @tparam table env `stdout`, `stderr`, `stdin` (files), `getenv`
--   (function), `script` (the real path of bin/prequalify); all optional
-- @return the context: `out`, `err`, `stdin`, `getenv`, `script` and the
--   methods `usage`, `fail`, `warn`, `print`, `settings`, `client`, `policy`
function M.context(env)
  return setmetatable({
    out = env.stdout or io.stdout,
    err = env.stderr or io.stderr,
    stdin = env.stdin or io.stdin,
    getenv = env.getenv or os.getenv,
    script = env.script,
  }, Context)
end

--- The preamble of a command: settings, then a check of the command's own
-- inputs, then the policy (when one is set), then a client with credentials.
-- @param args parsed options
-- @param cx the context
-- @tparam string command the command's name, for messages
-- @tparam[opt] table want `check = function(settings) -> value or nil, usage
--   message` (its value is returned as `input`), `client = false` to stop
--   after the policy
-- @return `{settings=, input=, policy=, client=, how=}`, or nil and the exit
--   code (the usage error is already printed)
function M.preamble(args, cx, command, want)
  want = want or {}
  local s, code = cx:settings(args, command)
  if not s then return nil, code end
  local out = { settings = s }
  if want.check then
    local input, why = want.check(s)
    if input == nil then return nil, cx:usage(command, why) end
    out.input = input
  end
  if s:get("policy") then
    out.policy, code = cx:policy(s:get("policy"), command)
    if not out.policy then return nil, code end
  end
  if want.client == false then return out end
  out.client, code = cx:client(args, s, command)
  if not out.client then return nil, code end
  out.how = code
  return out
end

return M
