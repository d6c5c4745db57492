--- What the client may know of a JWT before sending it: is it shaped like
-- one, and has it expired? The claims are decoded without verifying the
-- signature (only the server can, and does). A JWT is a secret: no message
-- made here holds it or any part of it.
-- @module prequalify.transport.jwt
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local response = require "prequalify.response"

local M = {}

-- Base64url (no padding) to bytes, or nil.
local function b64url(s)
  if not s:match("^[%w_-]+$") then return nil end
  s = s:gsub("-", "+"):gsub("_", "/")
  return core.b64decode(s .. string.rep("=", (4 - #s % 4) % 4))
end

--- The claims of a JWT (its payload), without verifying its signature.
-- @return the claims table, or nil and why it is not a JWT
function M.claims(jwt)
  local header, payload, signature = jwt:match("^([^.]+)%.([^.]+)%.([^.]*)$")
  if not header then return nil, "it is not three Base64url parts joined by dots" end
  if signature == "" then return nil, "it has no signature" end
  local h = b64url(header)
  if not h or type(response.decode(h)) ~= "table" then return nil, "its header is not Base64url JSON" end
  local p = b64url(payload)
  local claims = p and response.decode(p)
  if type(claims) ~= "table" then return nil, "its payload is not Base64url JSON" end
  return claims
end

local function utc(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

--- Check a JWT before it is sent.
-- @tparam string jwt
-- @tparam string from where it came from, for messages ("auth.jwt_file /run/ci.jwt")
-- @tparam string field the auth field to name (`auth.jwt`, `auth.jwt_file`, `auth.jwt_env`)
-- @tparam number now Unix seconds
-- @return true, or nil and an `auth` error (`not_sent`) that says whether the
--   JWT is malformed or expired
function M.check(jwt, from, field, now)
  local claims, why = M.claims(jwt)
  if not claims then
    return nil, errors.new("auth", "the JWT from " .. from .. " is malformed: " .. why
      .. "; nothing was sent", { outcome = "not_sent", field = field, jwt = "malformed" })
  end
  local exp = claims.exp
  if exp ~= nil and type(exp) ~= "number" then
    return nil, errors.new("auth", "the JWT from " .. from .. " is malformed: its exp claim is not a number"
      .. "; nothing was sent", { outcome = "not_sent", field = field, jwt = "malformed" })
  end
  if exp and exp <= now then
    return nil, errors.new("auth", string.format("the JWT from %s expired at %s (%d s ago); nothing was "
      .. "sent: give a fresh one (a CI system issues one per job)", from, utc(exp), math.floor(now - exp)),
      { outcome = "not_sent", field = field, jwt = "expired", expired_at = exp })
  end
  return true
end

return M
