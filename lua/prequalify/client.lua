--- The client: one object per TPP server, made from an options table.
-- It validates requests, encodes them, sends them through the C engine and
-- turns every reply into a result table or an error value.
-- @module prequalify.client
local core = require "prequalify.core"
local request = require "prequalify.request"
local errors = require "prequalify.errors"
local options = require "prequalify.options"
local response = require "prequalify.response"
local retry = require "prequalify.retry"
local auth = require "prequalify.auth"

local M = {}

M.DEFAULT_PATH = "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create"
M.CONTRACT_PATH = "/vedsdk/actions/codesign/prequalify/Create"
M.ADD_PRE_APPROVAL_PATH = "/vedsdk/Codesign/AddPreApproval"
M.BROWSE_PATH = "/vedsdk/Identity/Browse"

local Client = {}
Client.__index = Client
Client.__name = "prequalify.client"
M.Client = Client

-- Engine, token source and settings live here, keyed by the client, so that
-- no secret is reachable from the client table itself.
local private = setmetatable({}, { __mode = "k" })

-- Option name -> accepted Lua type(s).
local OPTIONS = {
  url = "string", token = "string", token_file = "string", auth = "table",
  ca_file = "string", ca_path = "string", ca_replace = "boolean",
  client_cert = "string", client_key = "string", key_password_file = "string",
  pinned_pubkey = "string", proxy = "string", noproxy = "string",
  timeout = "number", connect_timeout = "number", user_agent = "string",
  prequalify_path = "string", retries = "table|boolean", retry_unknown = "boolean",
  allow_insecure_http = "boolean", on_event = "function", warn = "function",
  http2 = "boolean", max_connections = "number", max_response = "number",
}

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = field })
end

local function check_url(opts)
  local url = opts.url
  if not url then return invalid("url", "url is required: the server root, e.g. https://tpp.example.com") end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.+)$")
  if not scheme then return invalid("url", "url must look like https://host[:port], got '" .. url .. "'") end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then
    return invalid("url", "url scheme must be https (got " .. scheme .. ")")
  end
  if scheme == "http" and not opts.allow_insecure_http then
    return invalid("url", "url uses http://, which would send the bearer token in clear text; "
      .. "use https:// (set allow_insecure_http = true only for a local test server)")
  end
  if rest:find("@", 1, true) and rest:find("@", 1, true) < (rest:find("/", 1, true) or #rest + 1) then
    return invalid("url", "url must not hold credentials (user:password@); use token, token_file or auth")
  end
  if url:find("[%c%s]") then return invalid("url", "url must not contain spaces or control characters") end
  return (url:gsub("/+$", ""):gsub("/vedsdk$", ""))
end

local function positive(opts, name, default)
  local v = opts[name]
  if v == nil then return default end
  if v <= 0 then return nil, "client option '" .. name .. "' must be > 0 seconds" end
  return v
end

--- Create a client.
-- @tparam table opts `url` (server root; `/vedsdk` and `/vedauth` are appended),
--   one of `token`, `token_file` or `auth`, and optionally `ca_file`, `ca_path`
--   (added to the system trust store; `ca_replace = true` uses them alone),
--   `client_cert`, `client_key`, `key_password_file`, `pinned_pubkey`
--   (`sha256//base64` or a PEM file), `proxy`, `noproxy` (otherwise the
--   standard proxy environment variables apply), `timeout` (total seconds, 30),
--   `connect_timeout` (seconds, 10), `user_agent`, `prequalify_path`
--   (or `"contract"` for the 26.1 path), `retries` ({max=3, base_delay=0.5,
--   max_delay=30} or false), `retry_unknown` (false), `allow_insecure_http`,
--   `on_event` (receives redacted metadata), `warn`, `http2`,
--   `max_connections` (16), `max_response` (bytes, 1 MiB).
-- @return client, or nil and an `invalid` error
function M.new(opts)
  if type(opts) ~= "table" then
    error("prequalify.client: expected a table of options, got " .. type(opts), 2)
  end
  local ok, err = options.check(opts, OPTIONS, "client")
  if not ok then return nil, err end
  local base, uerr = check_url(opts)
  if not base then return nil, uerr end

  local path = opts.prequalify_path or M.DEFAULT_PATH
  if path == "contract" then path = M.CONTRACT_PATH end
  if path:sub(1, 1) ~= "/" or path:find("[%c%s?#]") then
    return invalid("prequalify_path", "prequalify_path must be an absolute path like " .. M.DEFAULT_PATH)
  end
  local timeout, terr = positive(opts, "timeout", 30)
  if not timeout then return invalid("timeout", terr) end
  local connect_timeout, cerr = positive(opts, "connect_timeout", 10)
  if not connect_timeout then return invalid("connect_timeout", cerr) end
  local settings, rerr = retry.settings(opts.retries)
  if not settings then return invalid("retries", rerr) end
  for _, name in ipairs{ "ca_file", "client_cert", "client_key" } do
    if opts[name] then
      local f = io.open(opts[name], "rb")
      if not f then return invalid(name, name .. " " .. opts[name] .. " cannot be read") end
      f:close()
    end
  end
  local key_password
  if opts.key_password_file then
    local kp, kerr = auth.read_secret_file(opts.key_password_file, "key_password_file")
    if not kp then return invalid("key_password_file", kerr.message) end
    key_password = kp
  end

  local warn = opts.warn or function(msg) io.stderr:write("prequalify: warning: ", msg, "\n") end
  local self = setmetatable({ url = base, prequalify_path = path }, Client)
  local p = {
    base = base, path = path, settings = settings, retry_unknown = opts.retry_unknown or false,
    on_event = opts.on_event, warn = warn, timeout = timeout,
  }
  local eok, engine = pcall(core.engine, {
    timeout = timeout, connect_timeout = connect_timeout,
    ca_file = opts.ca_file, ca_path = opts.ca_path, ca_replace = opts.ca_replace,
    client_cert = opts.client_cert, client_key = opts.client_key, key_password = key_password,
    pinned_pubkey = opts.pinned_pubkey, proxy = opts.proxy, noproxy = opts.noproxy,
    user_agent = opts.user_agent or ("prequalify/" .. core._VERSION),
    http2 = opts.http2, max_connections = opts.max_connections, max_response = opts.max_response,
  })
  if not eok then return invalid("engine", tostring(engine)) end
  p.engine = engine
  private[self] = p
  local source, aerr = auth.new(opts, {
    vedauth = function(method, vpath, body, bearer) return self:_vedauth(method, vpath, body, bearer) end,
    warn = warn,
  })
  if not source then
    engine:close()
    return nil, aerr
  end
  p.auth = source
  return self
end

function Client:__tostring()
  local p = private[self]
  return string.format("prequalify.client(%s, auth=%s%s)", self.url, p and p.auth and p.auth.kind or "?",
    p and p.closed and ", closed" or "")
end

function Client:__close()
  self:close()
end

--- Release the connections. Idempotent.
function Client:close()
  local p = private[self]
  if p and not p.closed then
    p.closed = true
    p.engine:close()
  end
end

local function state(self)
  local p = private[self]
  if not p then error("prequalify.client: expected a client object (use client:method, not client.method)", 3) end
  if p.closed then error("attempt to use a closed client", 3) end
  return p
end
M.state = state

local function emit(p, event)
  if not p.on_event then return end
  local ok, err = pcall(p.on_event, event)
  if not ok then p.warn("on_event hook failed: " .. errors.redact(tostring(err), p.auth.secrets())) end
end
M.emit = emit

--- The headers table for a given Authorization value (nil: none).
function M.headers_for(bearer, with_body)
  local h = { Accept = "application/json" }
  if with_body then h["Content-Type"] = "application/json" end
  h.Authorization = bearer
  return h
end

--- Headers for one call; obtains or refreshes a grant when needed.
function M.headers(p, with_body)
  local bearer, err = p.auth.header()
  if err then return nil, err end
  return M.headers_for(bearer, with_body)
end

-- One attempt through the engine; returns the classified result.
local function attempt_once(p, method, url, body, attempt, what, classify)
  local headers, herr = M.headers(p, body ~= nil)
  if not headers then return nil, herr end
  emit(p, { event = "request", what = what, method = method, url = url, attempt = attempt,
            body_bytes = body and #body or 0 })
  local r, msg = p.engine:perform{ method = method, url = url, headers = headers, body = body }
  if not r then
    return nil, errors.new("invalid", errors.redact(msg, p.auth.secrets()) .. " (check the token and header values)",
      { field = "headers" })
  end
  local res, err = (classify or response.classify)(r, p.auth.secrets())
  emit(p, { event = "response", what = what, method = method, url = url, attempt = attempt,
            status = r.status, elapsed = r.elapsed, ok = res ~= nil,
            kind = err and err.kind, outcome = err and err.outcome,
            result = (res or err).result, new_connections = r.new_connections })
  return res, err
end

--- Send one call with the retry rules and one re-authentication on 401.
-- `opts`: `what` (event label), `retry_unknown`, `classify` (reply reader,
-- default `response.classify`).
-- @local
function M.call(p, method, path, body, opts)
  local url = p.base .. path
  local retry_unknown = p.retry_unknown
  if opts and opts.retry_unknown ~= nil then retry_unknown = opts.retry_unknown end
  local attempt, reauthed = 0, false
  while true do
    attempt = attempt + 1
    local res, err = attempt_once(p, method, url, body, attempt, opts and opts.what, opts and opts.classify)
    if res then
      res.attempts = attempt
      return res
    end
    if err.kind == "auth" and err.status == 401 and M.reauth(p, err, reauthed) then
      -- A 401 means the server did nothing: safe to repeat with a new token.
      reauthed = true
      attempt = attempt - 1
    else
      local delay = retry.delay(err, attempt, p.settings, retry_unknown)
      if not delay then
        err.attempts = attempt
        return nil, err
      end
      emit(p, { event = "retry", what = opts and opts.what, attempt = attempt, delay = delay,
                kind = err.kind, outcome = err.outcome, status = err.status })
      core.sleep(delay)
    end
  end
end

--- Pre-qualify one hash.
-- @param t a request table or a normalized request
-- @tparam[opt] table opts `policy` (a policy function; a denied request
--   returns a `policy` error with its `trail` and sends nothing), `ctx`
--   (policy context), `retry_unknown`
-- @return `{ok=true, status=200, result=1, result_name="Success", elapsed=s,
--   attempts=n}` or nil and an error
function Client:prequalify(t, opts)
  local p = state(self)
  if opts ~= nil and type(opts) ~= "table" then
    error("client:prequalify: expected an options table as second argument, got " .. type(opts), 2)
  end
  local req, err = request.new(t)
  if not req then return nil, err end
  local decision
  if opts and opts.policy then
    local policy = require "prequalify.policy"
    decision = policy.evaluate(opts.policy, req, opts.ctx)
    if not decision.allow then
      return nil, policy.denial(decision)
    end
    req = decision.request
  end
  local body, eerr = request.encode(req)
  if not body then return nil, eerr end
  local res, cerr = M.call(p, "POST", p.path, body, { retry_unknown = opts and opts.retry_unknown,
                                                       what = "prequalify" })
  if cerr then
    cerr.request = req
    cerr.trail = decision and decision.trail
    return nil, cerr
  end
  res.body = nil
  res.request = req
  res.trail = decision and decision.trail
  return res
end

-- AddPreApproval fields: Lua name -> wire name, checker.
local ISO_UTC = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.?%d*Z$"
local PRE_APPROVAL = {
  dn = { "Dn", "dn", true }, comment = { "Comment", "comment", true },
  user = { "User", "user", true }, hours = { "Hours" }, single_use = { "SingleUse" },
  ip_address = { "IPAddress" }, not_before = { "NotBefore" },
  signing_executable = { "SigningExecutable" },
}

local function check_pre_approval(t)
  if type(t) ~= "table" then error("client:add_pre_approval: expected a table of fields, got " .. type(t), 3) end
  local wire = {}
  for k, v in pairs(t) do
    local spec = PRE_APPROVAL[k]
    if not spec then
      for name, s in pairs(PRE_APPROVAL) do
        if s[1] == k or name:gsub("_", "") == tostring(k):lower() then
          return invalid(tostring(k), "unknown field '" .. tostring(k) .. "' (did you mean '" .. name .. "'?)")
        end
      end
      return invalid(tostring(k), "unknown field '" .. tostring(k) .. "'")
    end
    if spec[2] then
      if type(v) ~= "string" then return invalid(k, k .. " must be a string, got " .. type(v)) end
      local okc, why = core.check(spec[2], v)
      if not okc then return invalid(k, k .. " " .. why) end
    elseif k == "hours" then
      if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
        return invalid(k, "hours must be a whole number of hours")
      end
      v = math.tointeger(v)
      if v < 1 or v > core.HOURS_MAX then
        return invalid(k, "hours must be an integer from 1 to " .. core.HOURS_MAX .. " (got " .. v .. ")")
      end
    elseif k == "single_use" then
      if type(v) ~= "boolean" then return invalid(k, "single_use must be a boolean, got " .. type(v)) end
    elseif k == "not_before" then
      if type(v) ~= "string" or not v:match(ISO_UTC) then
        return invalid(k, "not_before must be UTC ISO 8601 like 2026-11-26T18:00:00Z")
      end
    elseif k == "ip_address" then
      if type(v) ~= "string" or not (v:match("^%d+%.%d+%.%d+%.%d+$") or v:match("^[%x:]+$") and v:find(":")) then
        return invalid(k, "ip_address must be an IPv4 or IPv6 address")
      end
    elseif k == "signing_executable" then
      if type(v) ~= "string" or v == "" or v:find("%c") then
        return invalid(k, "signing_executable must be the full path of the signing tool")
      end
    end
    wire[spec[1]] = v
  end
  for name, spec in pairs(PRE_APPROVAL) do
    if spec[3] and t[name] == nil then return invalid(name, name .. " is required") end
  end
  return wire
end

--- Add a pre-approval (`Codesign/AddPreApproval`): `dn`, `comment`, `user`,
-- and optional `hours`, `single_use`, `ip_address`, `not_before` (UTC ISO
-- 8601), `signing_executable`. Same result and error shapes as `prequalify`.
function Client:add_pre_approval(t)
  local p = state(self)
  local wire, err = check_pre_approval(t)
  if not wire then return nil, err end
  local res, cerr = M.call(p, "POST", M.ADD_PRE_APPROVAL_PATH, request.json.encode(wire),
    { what = "add_pre_approval" })
  if res then res.body = nil end
  return res, cerr
end

local IDENTITY_FIELDS = {
  FullName = "full_name", IsGroup = "is_group", Name = "name", Prefix = "prefix",
  PrefixedName = "prefixed_name", PrefixedUniversal = "prefixed_universal", Type = "type",
  Universal = "universal",
}

-- Identity/Browse replies are not {Success=...}: a 200 is the document
-- itself; other replies are classified as usual. Nothing is changed by a
-- browse, so an undecodable reply is `rejected`, not `unknown`.
local function classify_document(r, secrets)
  if r.curl_code == 0 and r.status == 200 then
    local doc = response.decode(r.body)
    if doc then return doc end
    return nil, errors.new("protocol", "Identity/Browse reply is not a JSON object",
      { status = 200, outcome = "rejected" })
  end
  local _, err = response.classify(r, secrets)
  if err.kind == "protocol" then err.outcome = "rejected" end
  return nil, err
end

--- Look up identities (`Identity/Browse`, scope `configuration`).
-- @tparam table q `filter` (required), `limit` (default 10), `identity_type`
--   (1 user, 2 security group, 8 distribution group; default 1)
-- @return array of `{full_name, is_group, name, prefix, prefixed_name,
--   prefixed_universal, type, universal}` or nil, err
function Client:browse_identities(q)
  local p = state(self)
  if type(q) ~= "table" then error("client:browse_identities: expected a table {filter=...}", 2) end
  for k in pairs(q) do
    if k ~= "filter" and k ~= "limit" and k ~= "identity_type" then
      return invalid(tostring(k), "unknown field '" .. tostring(k) .. "' (known: filter, limit, identity_type)")
    end
  end
  if type(q.filter) ~= "string" or q.filter == "" then
    return invalid("filter", "filter must be a non-empty string")
  end
  local limit = q.limit or 10
  if math.type(limit) ~= "integer" or limit < 1 then return invalid("limit", "limit must be an integer >= 1") end
  local itype = q.identity_type or 1
  if math.type(itype) ~= "integer" or itype < 1 then
    return invalid("identity_type",
      "identity_type must be 1 (user), 2 (security group), 8 (distribution group) or a sum")
  end
  local doc, err = M.call(p, "POST", M.BROWSE_PATH,
    request.json.encode{ Filter = q.filter, Limit = limit, IdentityType = itype },
    { what = "browse", retry_unknown = true, classify = classify_document })
  if not doc then return nil, err end
  local out = {}
  for _, ident in ipairs(type(doc.Identities) == "table" and doc.Identities or {}) do
    local item = {}
    for wire, name in pairs(IDENTITY_FIELDS) do item[name] = ident[wire] end
    out[#out + 1] = item
  end
  return out
end

--- Resolve a PrefixedName (`local:jdoe`) to the person's PrefixedUniversal.
-- @return the PrefixedUniversal string, or nil and an error
function Client:resolve_user(prefixed_name)
  if type(prefixed_name) ~= "string" or not prefixed_name:find(":", 1, true) then
    return invalid("user", "expected a PrefixedName like local:jdoe")
  end
  local name = prefixed_name:match(":(.+)$")
  local found, err = self:browse_identities{ filter = name, limit = 2, identity_type = 1 }
  if not found then return nil, err end
  for _, ident in ipairs(found) do
    if type(ident.prefixed_name) == "string" and ident.prefixed_name:lower() == prefixed_name:lower() then
      if ident.is_group then
        return invalid("user", prefixed_name .. " is a group; a Key User must be a person")
      end
      return ident.prefixed_universal
    end
  end
  return nil, errors.new("server", "no person named " .. prefixed_name .. " was found by Identity/Browse",
    { outcome = "rejected", field = "user" })
end

--- One vedauth call (`/vedauth/...`): returns the decoded reply or nil, err.
-- Used by the grant logic; no retries beyond not-sent failures.
-- @local
function Client:_vedauth(method, path, body, bearer)
  local p = private[self]
  local headers = { Accept = "application/json" }
  local payload
  if body then
    headers["Content-Type"] = "application/json"
    payload = request.json.encode(body)
  end
  if bearer then headers.Authorization = "Bearer " .. bearer end
  local secrets = p.auth and p.auth.secrets() or {}
  for _, k in ipairs{ "password", "refresh_token" } do
    if body and body[k] then secrets[#secrets + 1] = body[k] end
  end
  if bearer then secrets[#secrets + 1] = bearer end
  local attempt = 0
  while true do
    attempt = attempt + 1
    local r, msg = p.engine:perform{ method = method, url = p.base .. path, headers = headers, body = payload }
    if not r then return nil, errors.new("invalid", errors.redact(msg, secrets), { field = "token" }) end
    emit(p, { event = "response", what = "vedauth", path = path, status = r.status, elapsed = r.elapsed })
    if r.curl_code ~= 0 then
      local _, err = response.classify(r, secrets)
      local delay = retry.delay(err, attempt, p.settings, false)
      if not delay then return nil, err end
      core.sleep(delay)
    else
      local doc = response.decode(r.body)
      return doc, r.status, r
    end
  end
end

-- Tokens: re-authentication on 401, token_info and revoke ------------------

local scope = require "prequalify.scope"

M.VERIFY_PATH = "/vedauth/authorize/verify"
M.REVOKE_PATH = "/vedauth/revoke/token"

--- After a 401: asks the token source once for a fresh token. Returns true
-- when the call should be repeated; otherwise `err.message` says why not.
-- @local
function M.reauth(p, err, already)
  if already then
    err.message = err.message .. "; a fresh token was obtained once and the server still answered 401"
    err.reauthenticated = true
    return false
  end
  local ok, why = p.auth.unauthorized()
  if ok then return true end
  if why then
    local text = type(why) == "table" and why.message or tostring(why)
    err.message = err.message .. "; no fresh token: " .. errors.redact(text, p.auth.secrets())
    if type(why) == "table" then err.cause = why end
  end
  return false
end

-- A bearer GET to /vedauth, repeated once with a fresh token after a 401.
local function vedauth_get(self, p, path, what)
  local reauthed = false
  while true do
    local bearer, herr = p.auth.header()
    if not bearer then
      return nil, herr or errors.new("auth", what .. " needs a token: give token, token_file or auth",
        { outcome = "not_sent" })
    end
    local doc, status, r = self:_vedauth("GET", path, nil, (bearer:gsub("^Bearer ", "")))
    if type(status) ~= "number" then return nil, status end
    if status == 200 then
      if type(doc) ~= "table" then
        return nil, errors.new("protocol", "GET " .. path .. " answered 200 without a JSON object",
          { status = 200, outcome = "rejected" })
      end
      return doc
    end
    local _, err = response.classify(r, p.auth.secrets())
    if not (status == 401 and M.reauth(p, err, reauthed)) then return nil, err end
    reauthed = true
  end
end

-- Unix seconds from a number, a numeric string or "/Date(ms)/".
local function unix(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local ms = v:match("^/Date%((%-?%d+)")
  if ms then return tonumber(ms) // 1000 end
  return tonumber(v)
end

--- What the server says about the current token (`GET /vedauth/authorize/verify`).
-- Obtains or refreshes a grant first when needed.
-- @return `{identity=, application=, scope=<string>, scopes=<parsed, see
--   prequalify.scope>, valid_for=<seconds>, expires=<unix s>, issued=<unix s>,
--   grant_issued=<unix s>, grant_expires=<unix s, for auth grants when the
--   server says>}` (all times numbers), or nil and an error
function Client:token_info()
  local p = state(self)
  local doc, err = vedauth_get(self, p, M.VERIFY_PATH, "token_info")
  if not doc then return nil, err end
  local granted = type(doc.scope) == "string" and doc.scope or nil
  local valid_for = tonumber(doc.valid_for)
  local known = p.auth.info and p.auth.info() or {}
  return {
    identity = doc.identity,
    application = doc.application,
    scope = granted,
    scopes = granted and scope.parse(granted) or {},
    valid_for = valid_for,
    expires = unix(doc.expires_unix_time) or unix(doc.expires)
      or (valid_for and math.floor(core.time() + valid_for)),
    issued = unix(doc.access_issued_on_unix_time) or unix(doc.access_issued_on),
    grant_issued = unix(doc.grant_issued_on_unix_time) or unix(doc.grant_issued_on),
    grant_expires = unix(doc.refresh_until) or known.grant_expires,
  }
end

--- Revoke the grant behind the current token (`GET /vedauth/revoke/token`):
-- the access token and its refresh token stop working. Idempotent: when
-- nothing valid is left to revoke (already revoked, or expired) it still
-- returns ok, with `already = true`. A client made with `auth` refuses
-- further calls afterwards.
-- @return `{ok=true, revoked=true, already=<boolean>, status=n}` or nil, err
function Client:revoke()
  local p = state(self)
  local doc, err = vedauth_get(self, p, M.REVOKE_PATH, "revoke")
  local gone = not doc and err.kind == "auth"
    and (err.status == 401 or err.error_code == "revoked" or err.error_code == "invalid_grant")
  if not doc and not gone then return nil, err end
  if p.auth.revoked then p.auth.revoked() end
  return { ok = true, revoked = true, already = gone, status = doc and 200 or err.status }
end

--- Pre-qualify many hashes concurrently; see `prequalify.batch.run`.
function Client:batch(items, opts) return require("prequalify.batch").run(self, items, opts) end

--- Events and internals for the batch runner.
-- @local
function M.private(client)
  return state(client)
end

-- Flow tickets and the signing archive: thin delegations (prequalify.tickets).
local tickets = require "prequalify.tickets"
local function transport(self)
  local p = state(self)
  return { call = function(_, ...) return M.call(p, ...) end }
end
function Client:tickets(o) return tickets.list(transport(self), o) end
function Client:ticket(id) return tickets.get(transport(self), id) end
function Client:approve_tickets(ids, o) return tickets.approve(transport(self), ids, o) end
function Client:reject_tickets(ids, o) return tickets.reject(transport(self), ids, o) end
function Client:update_tickets(ids, o) return tickets.update(transport(self), ids, o) end
function Client:archive(filter) return tickets.archive(transport(self), filter) end

return M
