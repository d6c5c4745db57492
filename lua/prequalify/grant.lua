--- vedauth grants as a token source: sign in (a password, a JWT or a client
-- certificate: `prequalify.transport.signin`), or start from a refresh token
-- (inline or in a file shared with other processes). The access token is refreshed shortly before it expires and
-- once when the server answers 401. Refresh tokens rotate (each works once),
-- so a shared file is re-read and rewritten under an advisory lock and a
-- refresh token is never spent twice. Secrets live in this closure only.
-- @module prequalify.grant
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local scope = require "prequalify.scope"
local secret_file = require "prequalify.transport.secret_file"
local signin = require "prequalify.transport.signin"
local vedauth = require "prequalify.transport.vedauth"

local M = {}

M.TOKEN_PATH = vedauth.TOKEN_PATH
M.DEFAULT_SCOPE = scope.APPROVE
--- Seconds to wait for another process's refresh before giving up.
M.LOCK_TIMEOUT = 120

-- auth field -> accepted Lua type.
local FIELDS = {
  client_id = "string", scope = "string", refresh_token = "string", refresh_token_file = "string",
  refresh_margin = "number", lock_timeout = "number", clock = "function",
}
for _, names in pairs(signin.FIELDS) do
  for _, k in ipairs(names) do FIELDS[k] = "string" end
end

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = "auth." .. field })
end

local function known_fields()
  local list = {}
  for k in pairs(FIELDS) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ", ")
end

-- Checks the auth table; returns a config copy or nil, err.
local function check(t)
  for k, v in pairs(t) do
    local want = FIELDS[k]
    if not want then
      return invalid(tostring(k), "unknown auth field '" .. tostring(k) .. "' (known: " .. known_fields() .. ")")
    end
    if type(v) ~= want then
      return invalid(k, "auth." .. k .. " must be a " .. want .. ", got " .. type(v))
    end
    if want == "string" and (v == "" or (k ~= "password" and v:find("%c"))) then
      return invalid(k, "auth." .. k .. " must be a non-empty string on one line")
    end
  end
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  if not c.client_id then
    return invalid("client_id", "auth.client_id is required: the client_id of the API integration in TPP")
  end
  local login, merr = signin.method(c)
  if login == nil then return nil, merr end
  local resume = c.refresh_token or c.refresh_token_file
  if login and resume then
    return invalid(c.refresh_token and "refresh_token" or "refresh_token_file",
      "give either a sign-in (a password, a JWT or a client certificate) or a refresh token, not both")
  end
  if not login and not resume then
    return invalid("username", "auth needs a way to sign in: username with password (or password_file), "
      .. "jwt (or jwt_file or jwt_env), client_cert with client_key; or refresh_token (or refresh_token_file)")
  end
  if c.refresh_token and c.refresh_token_file then
    return invalid("refresh_token", "give only one of auth.refresh_token and auth.refresh_token_file")
  end
  if c.scope and resume then
    return invalid("scope", "auth.scope applies to a sign-in; a refresh keeps the grant's scope")
  end
  if login then
    c.scope = c.scope or M.DEFAULT_SCOPE
    local parsed, why = scope.parse(c.scope)
    if not parsed or next(parsed) == nil then
      return invalid("scope", "auth.scope is not a scope string like codesign:approve" .. (why and (": " .. why) or ""))
    end
  end
  if c.refresh_margin and c.refresh_margin < 0 then
    return invalid("refresh_margin", "auth.refresh_margin must be >= 0 seconds")
  end
  if c.lock_timeout and c.lock_timeout <= 0 then
    return invalid("lock_timeout", "auth.lock_timeout must be > 0 seconds")
  end
  return c, login
end

local server_words = signin.server_words

--- Make a grant token source (see `prequalify.auth`).
-- @tparam table t `client_id` and a way to sign in: `username` with
--   `password` or `password_file`; or `jwt`, `jwt_file` or `jwt_env` (the
--   name of an environment variable); or `client_cert` and `client_key`
--   (with `key_password_file`) for mutual TLS (and `scope` with each,
--   default `codesign:approve`); or else `refresh_token` or `refresh_token_file`; optional `refresh_margin`
--   (seconds before expiry to refresh; default max(30 s, 10% of the
--   lifetime), at most half of it), `lock_timeout` (seconds, 120), `clock`
--   (a function returning Unix seconds; default the system clock).
-- @param ctx `{transport = <prequalify.transport>, warn = function(msg),
--   on_reply = function(doc)}` (`on_reply`, for `prequalify token` only,
--   receives each accepted grant reply)
-- @return the source, or nil and an `invalid` error
function M.new(t, ctx)
  if type(t) ~= "table" then
    return nil, errors.new("invalid", "auth must be a table, got " .. type(t), { field = "auth" })
  end
  local c, login_method = check(t)
  if not c then return nil, login_method end
  local warn = ctx.warn or function() end
  local clock = c.clock or core.time
  local file = c.refresh_token_file
  local lock_timeout = c.lock_timeout or M.LOCK_TIMEOUT

  local signer, refresh
  if login_method then
    local serr
    signer, serr = signin.new(c, login_method, ctx, clock)
    if not signer then return nil, serr end
  end
  -- The inline secrets are kept here only, not in the config copy.
  c.refresh_token = nil
  local last_file -- the token we last read from or wrote to the file
  if file then
    local ferr
    refresh, ferr = secret_file.read(file, "auth.refresh_token_file")
    if not refresh then return invalid("refresh_token_file", ferr.message) end
    secret_file.check_mode(file, warn)
    last_file = refresh
  else
    refresh = t.refresh_token
  end

  local s = {
    access = nil, expires_at = nil, lifetime = nil, expires = nil, refresh_until = nil,
    refresh_until_at = nil, scope = nil, identity = nil, revoked = false, warned_scope = false,
    refreshes = 0, adopted = 0, old = {},
  }
  local mode = signer and signer.method or (file and "refresh_token_file" or "refresh_token")
  local self = setmetatable({ kind = "grant", mode = mode, client_id = c.client_id }, {
    __name = "prequalify.grant",
    __tostring = function() return "prequalify.grant(" .. mode .. ", client_id=" .. c.client_id .. ")" end,
  })

  local function secrets()
    local out = {}
    for _, v in pairs{ s.access, refresh, last_file } do out[#out + 1] = v end
    if signer then signer.secrets(out) end
    for _, v in ipairs(s.old) do out[#out + 1] = v end
    return out
  end

  -- Old tokens stay redacted for a while: a server may echo any of them.
  local function retire(v)
    if not v then return end
    table.insert(s.old, 1, v)
    s.old[9] = nil
  end

  local function check_scope(granted, what)
    if s.warned_scope or not granted then return end
    local lack = scope.missing(granted, scope.APPROVE)
    if lack then
      s.warned_scope = true
      warn(what .. " '" .. granted .. "' lacks " .. scope.APPROVE
        .. ": PreQualify/Create and AddPreApproval will be refused (HTTP 403); "
        .. "give the API integration '" .. c.client_id .. "' the scope " .. scope.APPROVE)
    end
  end
  if signer then check_scope(c.scope, "the requested scope") end

  local function margin()
    if c.refresh_margin then return c.refresh_margin end
    local life = s.lifetime or 0
    return math.min(math.max(30, 0.1 * life), 0.5 * life)
  end

  local function due()
    return s.expires_at ~= nil and clock() >= s.expires_at - margin()
  end

  -- Takes a 200 reply of oauth or token; nil, err when it is not one.
  local function accept(doc, path)
    if type(doc) ~= "table" or type(doc.access_token) ~= "string" or doc.access_token == "" then
      return nil, errors.new("protocol", "POST " .. path .. " answered 200 without an access_token",
        { status = 200, outcome = "not_sent" })
    end
    local now = clock()
    local expires_in, expires = tonumber(doc.expires_in), tonumber(doc.expires)
    local server_now = now
    if expires_in then
      if expires then server_now = expires - expires_in end
    elseif expires then
      expires_in = expires - now
    end
    retire(s.access)
    s.access = doc.access_token
    s.rejected = false
    s.lifetime = expires_in
    s.expires_at = expires_in and (now + expires_in) or nil
    s.expires = expires or (expires_in and math.floor(now + expires_in)) or nil
    if type(doc.refresh_token) == "string" and doc.refresh_token ~= "" and doc.refresh_token ~= refresh then
      retire(refresh)
      refresh = doc.refresh_token -- rotation: the old one is spent
    end
    s.refresh_until = tonumber(doc.refresh_until)
    s.refresh_until_at = s.refresh_until and (now + s.refresh_until - server_now) or nil
    if type(doc.scope) == "string" then s.scope = doc.scope end
    if type(doc.identity) == "string" then s.identity = doc.identity end
    check_scope(s.scope, "the granted scope")
    if ctx.on_reply then ctx.on_reply(doc) end
    return true
  end

  local function login()
    local doc, err = signer.login(secrets())
    if not doc then return nil, err end
    return accept(doc, signer.path)
  end

  local function refused(doc, status)
    local code = type(doc) == "table" and doc.error
    local words = server_words(doc, secrets())
    local f = { status = status, outcome = "not_sent", error_code = code,
                field = file and "auth.refresh_token_file" or "auth.refresh_token" }
    if code ~= "invalid_grant" then
      return errors.new("auth", "could not refresh the token (POST " .. M.TOKEN_PATH .. "): HTTP "
        .. status .. words, f)
    end
    local desc = type(doc.error_description) == "string" and doc.error_description:lower() or ""
    local lead = ""
    if (s.refresh_until_at and clock() >= s.refresh_until_at) or desc:find("expire", 1, true) then
      lead = "the grant has expired (its refresh_until has passed); sign in again to get a new grant. "
      f.expired = true
    elseif desc:find("client_id", 1, true) then
      lead = "the client_id '" .. c.client_id .. "' is not the one that issued the grant. "
    end
    return errors.new("auth", "the refresh token was refused (invalid_grant): " .. lead
      .. "A refresh token works only once: each refresh returns a new one and the old one stops working, "
      .. "so another process or an earlier run may already have used this one, or the grant was revoked "
      .. "(share a grant between processes only through auth.refresh_token_file, which is rewritten under "
      .. "a lock). The client_id must also be the one of the API integration that issued the grant "
      .. "(this client sends '" .. c.client_id .. "')" .. words, f)
  end

  -- One POST /vedauth/authorize/token with the current refresh token.
  local function spend()
    if not refresh then
      return nil, errors.new("auth", "the server gave this grant no refresh token; it cannot be refreshed",
        { outcome = "not_sent" })
    end
    local doc, status = vedauth.post(ctx.transport, M.TOKEN_PATH, { client_id = c.client_id, refresh_token = refresh })
    if type(status) ~= "number" then
      local err = status
      local msg = "could not refresh the token (POST " .. M.TOKEN_PATH .. "): " .. err.message
      if err.outcome == "unknown" then
        msg = msg .. "; the server may have rotated the refresh token, in which case the grant is lost"
      end
      return nil, errors.new(err.kind, msg, { outcome = "not_sent", curl_code = err.curl_code })
    end
    if status == 200 then
      s.refreshes = s.refreshes + 1
      return accept(doc, M.TOKEN_PATH)
    end
    return nil, refused(doc, status)
  end

  local function need()
    return not s.access or s.rejected or due()
  end

  local function read_file()
    local v, err = secret_file.read(file, "auth.refresh_token_file")
    if not v then return nil, err end
    return v
  end

  -- Refresh through the shared file: the caller holds the lock.
  local function refresh_shared()
    local current, rerr = read_file()
    if not current then return nil, rerr end
    if current ~= last_file then
      -- Another process rotated it: ours is spent; adopt theirs.
      if current ~= refresh then retire(refresh) end
      refresh, last_file = current, current
      s.adopted = s.adopted + 1
      if not need() then return true end
    end
    local ok, err = spend()
    if not ok and err.error_code == "invalid_grant" then
      -- A writer that ignores the lock may have replaced it meanwhile.
      local again = read_file()
      if again and again ~= last_file then
        retire(refresh)
        refresh, last_file = again, again
        ok, err = spend()
      end
    end
    if not ok then return nil, err end
    if refresh ~= last_file then
      local wok, werr = core.write_file_atomic(file, refresh .. "\n", 384)
      if not wok then
        warn("could not rewrite auth.refresh_token_file: " .. errors.redact(werr, secrets())
          .. "; the new refresh token is held in memory only, and other processes sharing the file "
          .. "will be refused")
      else
        last_file = refresh
      end
    end
    return true
  end

  local function refresh_grant()
    if not file then return spend() end
    local lock, lerr = core.lock_file(file .. ".lock", lock_timeout)
    if not lock then
      return nil, errors.new("auth", "could not lock auth.refresh_token_file for a refresh: " .. lerr,
        { outcome = "not_sent" })
    end
    local ok, err = refresh_shared()
    lock:unlock() -- (the lock's __gc also releases it if refresh_shared raised)
    return ok, err
  end

  -- Gets a usable access token: refresh, or sign in (again).
  local function renew()
    if signer and not refresh then return login() end
    local ok, err = refresh_grant()
    if not ok and signer and err.error_code == "invalid_grant" then
      -- The grant expired or was revoked elsewhere: a sign-in starts a new one.
      retire(refresh)
      refresh = nil
      return login()
    end
    return ok, err
  end

  local function revoked_error()
    return errors.new("auth", "the grant was revoked with client:revoke(); make a new client to sign in again",
      { outcome = "not_sent", error_code = "revoked" })
  end

  function self.header()
    if s.revoked then return nil, revoked_error() end
    if not s.access then
      local ok, err = renew()
      if not ok then return nil, err end
    elseif due() then
      local ok, err = renew()
      if not ok then
        if err.kind ~= "transport" or clock() >= s.expires_at then return nil, err end
        -- The current token still works; the next call tries again.
        warn("token refresh failed, using the current access token until it expires: " .. err.message)
      end
    end
    return "Bearer " .. s.access
  end

  -- `rejected` (optional) is the Authorization value the server refused: a
  -- batch may see several 401s for one old token and needs one refresh.
  function self.unauthorized(rejected)
    if s.revoked then return false, revoked_error() end
    if rejected and s.access and rejected ~= "Bearer " .. s.access then return true end
    s.rejected = true
    local ok, err = renew()
    if ok then return true end
    return false, err
  end

  function self.secrets() return secrets() end

  --- Called by client:revoke() after the server revoked the grant.
  function self.revoked()
    s.revoked = true
    retire(s.access)
    s.access = nil
  end

  --- What is known about the grant (no secrets): `identity`, `scope`,
  -- `expires`, `grant_expires` (unix seconds), `refreshes`, `adopted`.
  function self.info()
    return { identity = s.identity, scope = s.scope, expires = s.expires, grant_expires = s.refresh_until,
             refreshes = s.refreshes, adopted = s.adopted, revoked = s.revoked }
  end

  return self
end

return M
