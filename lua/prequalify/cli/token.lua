--- `prequalify token get|refresh|info|revoke`: vedauth grants from the
-- command line. Tokens are written only to files named with `--out` and
-- `--refresh-out` (mode 0600, atomically), or to stdout with `--out -`;
-- nothing else this command prints holds a secret.
-- @module prequalify.cli.token
local output = require "prequalify.cli.output"

local EXIT = require("prequalify.cli.common").EXIT
local SECRET_MODE = 384 -- 0600

local function write_secret(cx, path, value)
  if path == "-" then
    cx.out:write(value, "\n")
    cx.out:flush()
    return true
  end
  local core = require "prequalify.core"
  local ok, err = core.write_file_atomic(path, value .. "\n", SECRET_MODE)
  if not ok then return nil, tostring(err) end
  return true
end

local function expiry_lines(doc, now)
  local lines = {}
  if doc.identity then lines[#lines + 1] = "identity: " .. tostring(doc.identity) end
  if doc.scope then lines[#lines + 1] = "scope:    " .. tostring(doc.scope) end
  if doc.expires then
    lines[#lines + 1] = string.format("expires:  %s (in %s)", output.utc(doc.expires),
      output.duration(doc.expires - now))
  end
  if doc.grant_expires then
    lines[#lines + 1] = string.format("grant:    refreshable until %s (in %s)", output.utc(doc.grant_expires),
      output.duration(doc.grant_expires - now))
  end
  return lines
end

-- The scope verdict for PreQualify/Create.
local function scope_note(granted)
  if type(granted) ~= "string" then return nil end
  local scope = require "prequalify.scope"
  local lack = scope.missing(granted, scope.APPROVE)
  if lack then
    return "this token cannot pre-qualify: it lacks scope " .. scope.APPROVE
      .. " (PreQualify/Create will answer 403)"
  end
  return nil
end

-- get / refresh: run the grant with a hook that keeps the raw reply.
local function obtain(args, cx, sub)
  local name = "token " .. sub
  local s, code = cx:settings(args, name)
  if not s then return code end
  if sub == "get" and not args.out and not args.refresh_out then
    return cx:usage(name, "say where the tokens go: --out FILE (or - for stdout) and/or --refresh-out FILE")
  end
  if args.json and args.out == "-" then
    return cx:usage(name, "--json and --out - both use stdout; write the token to a file")
  end
  local creds, how = s:credentials(args, cx.stdin)
  if not creds then return cx:usage(name, how) end
  if sub == "refresh" and not (creds.auth and creds.auth.refresh_token_file) then
    return cx:usage(name, "token refresh spends the refresh token in --refresh-token-file "
      .. "(or PREQUALIFY_REFRESH_TOKEN_FILE)")
  end
  if not creds.auth then return cx:no_credentials(name, true) end
  local opts, oerr = s:client_options(function(msg) cx:warn(msg) end)
  if not opts then return cx:usage(name, oerr) end
  local transport, terr = require("prequalify.client").transport(opts)
  if not transport then return cx:usage(name, terr.message) end

  local grant = require "prequalify.grant"
  local reply
  local source, gerr = grant.new(creds.auth, {
    transport = transport,
    warn = function(msg) cx:warn(msg) end,
    on_reply = function(doc) reply = doc end,
  })
  if not source then
    transport:close()
    return cx:usage(name, gerr.message)
  end
  local bearer, err = source.header()
  transport:close()
  if not bearer or not reply then
    return cx:fail(tostring(err or "the server gave no token"))
  end
  local access, refresh = reply.access_token, reply.refresh_token
  if args.out then
    local ok, werr = write_secret(cx, args.out, access)
    if not ok then return cx:fail("--out: " .. werr) end
  end
  if args.refresh_out then
    if type(refresh) ~= "string" or refresh == "" then
      return cx:fail("the server gave no refresh token for this grant; nothing was written to --refresh-out")
    end
    local ok, werr = write_secret(cx, args.refresh_out, refresh)
    if not ok then return cx:fail("--refresh-out: " .. werr) end
  end
  local info = source.info()
  local core = require "prequalify.core"
  local doc = {
    identity = info.identity, scope = info.scope, expires = info.expires, grant_expires = info.grant_expires,
    token_file = args.out ~= "-" and args.out or nil, refresh_token_file = args.refresh_out
      or (sub == "refresh" and creds.auth.refresh_token_file) or nil,
  }
  if args.json then
    cx:print(output.json(doc))
  else
    -- With --out - stdout holds the token alone: the rest goes to stderr.
    local out = args.out == "-" and cx.err or cx.out
    local lines = expiry_lines(doc, core.time())
    table.insert(lines, 1, (sub == "get" and "signed in" or "refreshed") .. " (" .. how .. ")")
    if doc.token_file then lines[#lines + 1] = "access token written to " .. doc.token_file end
    if doc.refresh_token_file then lines[#lines + 1] = "refresh token in " .. doc.refresh_token_file end
    local note = scope_note(info.scope)
    if note then lines[#lines + 1] = "warning: " .. note end
    out:write(table.concat(lines, "\n"), "\n")
  end
  return EXIT.OK
end

-- Runs method `name` of a client made from the settings; returns its
-- result, or nil and the exit code (after printing the failure).
local function call_client(args, cx, what, name)
  local s, code = cx:settings(args, what)
  if not s then return nil, code end
  local client
  client, code = cx:client(args, s, what)
  if not client then return nil, code end
  local res, err = client[name](client)
  client:close()
  if not res then return nil, cx:fail(tostring(err)) end
  return res
end

local function info_cmd(args, cx)
  local info, code = call_client(args, cx, "token info", "token_info")
  if not info then return code end
  local core = require "prequalify.core"
  local note = scope_note(info.scope)
  if args.json then
    cx:print(output.json{
      identity = info.identity, application = info.application, scope = info.scope, valid_for = info.valid_for,
      expires = info.expires, issued = info.issued, grant_issued = info.grant_issued,
      grant_expires = info.grant_expires, can_prequalify = note == nil,
    })
  else
    local lines = expiry_lines(info, core.time())
    if info.application then table.insert(lines, 2, "client:   " .. tostring(info.application)) end
    lines[#lines + 1] = note and ("warning: " .. note) or "can pre-qualify: yes (scope codesign:approve)"
    cx:print(table.concat(lines, "\n"))
  end
  return EXIT.OK
end

local function revoke_cmd(args, cx)
  local res, code = call_client(args, cx, "token revoke", "revoke")
  if not res then return code end
  if args.json then
    cx:print(output.json{ revoked = true, already = res.already })
  else
    cx:print(res.already and "nothing to revoke: the grant was already revoked or expired"
      or "revoked: the access token and its refresh token no longer work")
  end
  return EXIT.OK
end

return function(args, cx)
  local sub = args.token_command
  if sub == "get" or sub == "refresh" then return obtain(args, cx, sub) end
  if sub == "info" then return info_cmd(args, cx) end
  if sub == "revoke" then return revoke_cmd(args, cx) end
  return cx:usage("token", "say what to do: token get, token refresh, token info or token revoke")
end
