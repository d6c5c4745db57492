--- The ways to start a vedauth grant without a refresh token: a username
-- and password (`POST /vedauth/authorize/oauth`), a JWT from an identity
-- provider the server trusts (`.../jwt`, e.g. a CI job's OIDC token), or a
-- client certificate over mutual TLS (`.../certificate`). Each reads its
-- secret when it signs in (a JWT file or variable is re-read for every new
-- grant, so a token the CI system rotates keeps working) and words the
-- server's refusal for its case. Secrets stay in this closure.
-- @module prequalify.transport.signin
local errors = require "prequalify.errors"
local response = require "prequalify.response"
local secret_file = require "prequalify.transport.secret_file"
local vedauth = require "prequalify.transport.vedauth"
local jwt = require "prequalify.transport.jwt"

local M = {}

--- The auth fields of each way to sign in (all strings).
M.FIELDS = {
  password = { "username", "password", "password_file" },
  jwt = { "jwt", "jwt_file", "jwt_env" },
  certificate = { "client_cert", "client_key", "key_password_file" },
}

local PATHS = { password = vedauth.OAUTH_PATH, jwt = vedauth.JWT_PATH, certificate = vedauth.CERTIFICATE_PATH }

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = "auth." .. field })
end

local function one_of(c, names)
  local given = {}
  for _, k in ipairs(names) do if c[k] then given[#given + 1] = "auth." .. k end end
  return given
end

--- Which way to sign in the auth fields `c` ask for (fields already type-checked).
-- @return "password" | "jwt" | "certificate" | false (none), or nil and an `invalid` error
function M.method(c)
  local found = {}
  for _, name in ipairs{ "password", "jwt", "certificate" } do
    if #one_of(c, M.FIELDS[name]) > 0 then found[#found + 1] = name end
  end
  if #found > 1 then
    return invalid(M.FIELDS[found[2]][1], "give one way to sign in: a password, a JWT or a client "
      .. "certificate, not " .. found[1] .. " and " .. found[2])
  end
  local method = found[1]
  if method == "password" then
    if #one_of(c, { "password", "password_file" }) > 1 then
      return invalid("password", "give only one of auth.password and auth.password_file")
    end
    if not c.username then return invalid("username", "auth.username is required with a password") end
    if not (c.password or c.password_file) then
      return invalid("password", "auth.password or auth.password_file is required with auth.username")
    end
  elseif method == "jwt" then
    local given = one_of(c, M.FIELDS.jwt)
    if #given > 1 then return invalid("jwt", "give only one of auth.jwt, auth.jwt_file and auth.jwt_env") end
    if c.jwt_env and not c.jwt_env:match("^[%a_][%w_]*$") then
      return invalid("jwt_env", "auth.jwt_env must be the name of an environment variable, like CI_JOB_JWT")
    end
  elseif method == "certificate" then
    for _, k in ipairs{ "client_cert", "client_key" } do
      if not c[k] then return invalid(k, "auth." .. k .. " is required for a certificate sign-in") end
    end
  end
  return method or false
end

-- The server's own words, redacted, for a message.
local function server_words(doc, secrets)
  local msg = errors.redact(response.server_message(doc), secrets)
  return msg and (" (server: " .. msg .. ")") or ""
end
M.server_words = server_words

--- Make the sign-in for auth fields `c` (see `M.method`).
-- @param c the checked auth fields; `c.password` is consumed here
-- @param method the sign-in method (see `M.method`)
-- @param ctx `{transport=, warn=, getenv=}`
-- @param clock function returning Unix seconds
-- @return `{method=, path=, login(secrets) -> doc | nil, err, secrets(list)}`,
--   or nil and an `invalid` error
function M.new(c, method, ctx, clock)
  local warn = ctx.warn or function() end
  local getenv = ctx.getenv or os.getenv
  local password = c.password
  c.password = nil
  if c.password_file then
    local perr
    password, perr = secret_file.read(c.password_file, "auth.password_file")
    if not password then return invalid("password_file", perr.message) end
    secret_file.check_mode(c.password_file, warn)
  end
  if c.jwt_file then secret_file.check_mode(c.jwt_file, warn) end
  local inline_jwt = c.jwt
  c.jwt = nil
  local jwts = {} -- the JWTs read so far, newest first, kept for redaction
  local self = { method = method, path = PATHS[method] }

  -- The JWT for this sign-in, read now, and where it came from.
  local function read_jwt()
    local value, from, field, err
    if inline_jwt then
      value, from, field = inline_jwt, "auth.jwt", "auth.jwt"
    elseif c.jwt_file then
      from, field = "auth.jwt_file " .. c.jwt_file, "auth.jwt_file"
      value, err = secret_file.read(c.jwt_file, "auth.jwt_file")
      if not value then
        err.field = field
        return nil, err
      end
    else
      from, field = "auth.jwt_env " .. c.jwt_env, "auth.jwt_env"
      value = getenv(c.jwt_env)
      value = value and value:gsub("^%s+", ""):gsub("%s+$", "")
      if not value or value == "" then
        return nil, errors.new("auth", "auth.jwt_env: the environment variable " .. c.jwt_env
          .. " is not set or empty; it should hold the JWT", { outcome = "not_sent", field = field })
      end
    end
    if value ~= jwts[1] then
      table.insert(jwts, 1, value)
      jwts[5] = nil
    end
    local ok, jerr = jwt.check(value, from, field, clock())
    if not ok then return nil, jerr end
    return value, from
  end

  function self.secrets(list)
    list[#list + 1] = password
    for _, v in ipairs(jwts) do list[#list + 1] = v end
    return list
  end

  -- The refusal of a sign-in, worded for the way it was made.
  local function refused(doc, status, from, secrets)
    local code = type(doc) == "table" and doc.error
    local words = server_words(doc, secrets)
    local f = { status = status, outcome = "not_sent", error_code = code }
    if code == "invalid_client" then
      f.field = "auth.client_id"
      return errors.new("auth", "sign-in was refused: client_id '" .. c.client_id .. "' is not an "
        .. "API integration on this server; use the client_id of the API integration in TPP" .. words, f)
    elseif code == "invalid_scope" then
      f.field, f.scope = "auth.scope", c.scope
      return errors.new("auth", "sign-in was refused: the API integration '" .. c.client_id
        .. "' does not allow scope '" .. c.scope .. "' (or it is malformed); add the scope to the "
        .. "API integration in TPP or ask for less" .. words, f)
    elseif code == "invalid_grant" and method == "password" then
      f.field = "auth.password"
      return errors.new("auth", "sign-in as '" .. c.username .. "' was refused: the username or "
        .. "password is not valid" .. words, f)
    elseif code == "invalid_grant" and method == "jwt" then
      f.field = from:match("^(%S+)")
      return errors.new("auth", "the JWT from " .. from .. " was refused: the server does not trust "
        .. "its issuer or signature, it is meant for another audience, or its subject is not mapped "
        .. "to an identity" .. words, f)
    elseif code == "invalid_grant" then
      f.field = "auth.client_cert"
      return errors.new("auth", "sign-in with the client certificate " .. c.client_cert .. " was "
        .. "refused: the server does not map its subject to an identity" .. words, f)
    end
    return errors.new("auth", "could not sign in (POST " .. self.path .. "): HTTP " .. status .. words, f)
  end

  --- Sign in once. `secrets`: the list to redact from the server's words.
  -- @return the 200 reply, or nil and an `auth` error
  function self.login(secrets)
    local body = { client_id = c.client_id, scope = c.scope }
    local from
    if method == "password" then
      body.username, body.password = c.username, password
    elseif method == "jwt" then
      local value, err = read_jwt()
      if not value then return nil, err end
      body.jwt, from = value, err
    end
    local doc, status = vedauth.post(ctx.transport, self.path, body)
    if type(status) ~= "number" then
      local err = status
      return nil, errors.new(err.kind, "could not sign in (POST " .. self.path .. "): " .. err.message,
        { outcome = "not_sent", curl_code = err.curl_code })
    end
    if status == 200 then return doc end
    return nil, refused(doc, status, from, secrets)
  end

  return self
end

return M
