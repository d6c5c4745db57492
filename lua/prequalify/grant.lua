--- vedauth grants as a token source: sign in with a username and password,
-- or start from a refresh token (inline or in a file shared with other
-- processes). The access token is refreshed shortly before it expires and
-- once when the server answers 401. Refresh tokens rotate (each works once),
-- so a shared file is re-read and rewritten under an advisory lock and a
-- refresh token is never spent twice. Secrets live in this closure only.
-- @module prequalify.grant
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local response = require "prequalify.response"
local scope = require "prequalify.scope"
local secret_file = require "prequalify.transport.secret_file"
local vedauth = require "prequalify.transport.vedauth"

local M = {}

M.OAUTH_PATH = vedauth.OAUTH_PATH
M.TOKEN_PATH = vedauth.TOKEN_PATH
M.DEFAULT_SCOPE = scope.APPROVE
--- Seconds to wait for another process's refresh before giving up.
M.LOCK_TIMEOUT = 120

-- auth field -> accepted Lua type.
local FIELDS = {
  client_id = "string", username = "string", password = "string", password_file = "string",
  scope = "string", refresh_token = "string", refresh_token_file = "string",
  refresh_margin = "number", lock_timeout = "number", clock = "function",
}

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
  local login = c.username or c.password or c.password_file
  local resume = c.refresh_token or c.refresh_token_file
  if login and resume then
    return invalid(c.refresh_token and "refresh_token" or "refresh_token_file",
      "give either auth.username with a password or a refresh token, not both")
  end
  if not login and not resume then
    return invalid("username", "auth needs username with password (or password_file), "
      .. "or refresh_token (or refresh_token_file)")
  end
  if c.password and c.password_file then
    return invalid("password", "give only one of auth.password and auth.password_file")
  end
  if c.refresh_token and c.refresh_token_file then
    return invalid("refresh_token", "give only one of auth.refresh_token and auth.refresh_token_file")
  end
  if login and not c.username then
    return invalid("username", "auth.username is required with a password")
  end
  if login and not (c.password or c.password_file) then
    return invalid("password", "auth.password or auth.password_file is required with auth.username")
  end
  if c.scope and resume then
    return invalid("scope", "auth.scope applies to a username/password sign-in; a refresh keeps the grant's scope")
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
  return c
end

-- Reads a secret file named by auth field `field`; nil and an invalid error.
local function read_field_file(c, field, warn)
  local s, err = secret_file.read(c[field], "auth." .. field)
  if not s then return invalid(field, err.message) end
  secret_file.check_mode(c[field], warn)
  return s
end

-- The error kind/message parts shared by sign-in and refresh failures.
local function server_words(doc, secrets)
  local msg = errors.redact(response.server_message(doc), secrets)
  return msg and (" (server: " .. msg .. ")") or ""
end

--- Make a grant token source (see `prequalify.auth`).
-- @tparam table t `client_id` and either `username` with `password` or
--   `password_file` (and `scope`, default `codesign:approve`), or
--   `refresh_token` or `refresh_token_file`; optional `refresh_margin`
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
  local c, cerr = check(t)
  if not c then return nil, cerr end
  local warn = ctx.warn or function() end
  local clock = c.clock or core.time
  local file = c.refresh_token_file
  local lock_timeout = c.lock_timeout or M.LOCK_TIMEOUT

  local password, refresh
  if c.password_file then
    local perr
    password, perr = read_field_file(c, "password_file", warn)
    if not password then return nil, perr end
  else
    password = c.password
  end
  -- The inline secrets are kept here only, not in the config copy.
  c.password, c.refresh_token = nil, nil
  local last_file -- the token we last read from or wrote to the file
  if file then
    local ferr
    refresh, ferr = read_field_file(c, "refresh_token_file", warn)
    if not refresh then return nil, ferr end
    last_file = refresh
  else
    refresh = t.refresh_token
  end

  local s = {
    access = nil, expires_at = nil, lifetime = nil, expires = nil, refresh_until = nil,
    refresh_until_at = nil, scope = nil, identity = nil, revoked = false, warned_scope = false,
    refreshes = 0, adopted = 0, old = {},
  }
  local mode = password and "password" or (file and "refresh_token_file" or "refresh_token")
  local self = setmetatable({ kind = "grant", mode = mode, client_id = c.client_id }, {
    __name = "prequalify.grant",
    __tostring = function() return "prequalify.grant(" .. mode .. ", client_id=" .. c.client_id .. ")" end,
  })

  local function secrets()
    local out = {}
    for _, v in pairs{ password, s.access, refresh, last_file } do out[#out + 1] = v end
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
  if password then check_scope(c.scope, "the requested scope") end

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
    local doc, status = vedauth.post(ctx.transport, M.OAUTH_PATH, {
      client_id = c.client_id, username = c.username, password = password, scope = c.scope,
    })
    if type(status) ~= "number" then
      local err = status
      return nil, errors.new(err.kind, "could not sign in (POST " .. M.OAUTH_PATH .. "): " .. err.message,
        { outcome = "not_sent", curl_code = err.curl_code })
    end
    if status == 200 then return accept(doc, M.OAUTH_PATH) end
    local code = type(doc) == "table" and doc.error
    local words = server_words(doc, secrets())
    local f = { status = status, outcome = "not_sent", error_code = code }
    if code == "invalid_grant" then
      f.field = "auth.password"
      return nil, errors.new("auth", "sign-in as '" .. c.username .. "' was refused: the username or "
        .. "password is not valid" .. words, f)
    elseif code == "invalid_client" then
      f.field = "auth.client_id"
      return nil, errors.new("auth", "sign-in was refused: client_id '" .. c.client_id .. "' is not an "
        .. "API integration on this server; use the client_id of the API integration in TPP" .. words, f)
    elseif code == "invalid_scope" then
      f.field, f.scope = "auth.scope", c.scope
      return nil, errors.new("auth", "sign-in was refused: the API integration '" .. c.client_id
        .. "' does not allow scope '" .. c.scope .. "' (or it is malformed); add the scope to the "
        .. "API integration in TPP or ask for less" .. words, f)
    end
    return nil, errors.new("auth", "could not sign in (POST " .. M.OAUTH_PATH .. "): HTTP " .. status .. words, f)
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

  -- Gets a usable access token: refresh, or sign in (again) with a password.
  local function renew()
    if password and not refresh then return login() end
    local ok, err = refresh_grant()
    if not ok and password and err.error_code == "invalid_grant" then
      -- The grant expired or was revoked elsewhere: the password starts a new one.
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
