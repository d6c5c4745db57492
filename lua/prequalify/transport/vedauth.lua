--- The vedauth endpoints (`/vedauth/...`): the grant requests (sign-in and
-- refresh) and the bearer GETs behind `token_info` and `revoke`. Every call
-- goes through the transport's one call loop (`transport:call`).
-- @module prequalify.transport.vedauth
local request = require "prequalify.request"
local response = require "prequalify.response"

local M = {}

M.OAUTH_PATH = "/vedauth/authorize/oauth"
M.TOKEN_PATH = "/vedauth/authorize/token"
M.JWT_PATH = "/vedauth/authorize/jwt"
M.CERTIFICATE_PATH = "/vedauth/authorize/certificate"
M.VERIFY_PATH = "/vedauth/authorize/verify"
M.REVOKE_PATH = "/vedauth/revoke/token"

-- Grant request fields that are secrets.
local SECRET_FIELDS = { "password", "refresh_token", "jwt" }

-- A grant request's reply goes to the grant as it came, whatever its
-- status: the grant reads the refusal. Only a failure on the wire is an
-- error here (and repeated when nothing was sent).
local function as_reply(r, secrets)
  if r.curl_code ~= 0 then return response.classify(r, secrets) end
  return { doc = response.decode(r.body), status = r.status }
end

--- POST a grant request without a bearer token.
-- @param t the transport
-- @tparam string path e.g. `M.OAUTH_PATH`
-- @tparam table body the request fields
-- @return the decoded reply (or nil when it is not JSON) and the HTTP status;
--   or nil and an error when no reply came
function M.post(t, path, body)
  local secrets = {}
  for _, k in ipairs(SECRET_FIELDS) do secrets[#secrets + 1] = body[k] end
  local res, err = t:call("POST", path, request.json.encode(body), {
    what = "vedauth", classify = as_reply, anonymous = true, secrets = secrets, retry_unknown = false,
  })
  if not res then return nil, err end
  return res.doc, res.status
end

--- A GET with the current bearer token (`M.VERIFY_PATH`, `M.REVOKE_PATH`),
-- repeated once with a fresh token after a 401.
-- @param t the transport
-- @tparam string path the vedauth path
-- @tparam string what the caller's name for errors (e.g. "token_info")
-- @return the decoded JSON object, or nil and an error
function M.get(t, path, what)
  return t:call("GET", path, nil, {
    what = what, classify = response.document("GET " .. path), need_token = what,
  })
end

return M
