--- Where the bearer token comes from: a static token, or a token file that
-- is re-read when the server answers 401. (vedauth grants are in
-- `prequalify.grant`.) Secrets are kept in closures, never in fields that a
-- table dump would show.
-- @module prequalify.auth
local errors = require "prequalify.errors"
local secret_file = require "prequalify.transport.secret_file"
local grant = require "prequalify.grant"

local M = {}

local function static(token)
  local self = { kind = "token" }
  function self.header() return "Bearer " .. token end
  function self.unauthorized() return false, "a static token cannot be refreshed" end
  function self.secrets() return { token } end
  return self
end

local function from_file(path, warn)
  local token, err = secret_file.read(path, "token_file")
  if not token then return nil, err end
  secret_file.check_mode(path, warn)
  local self = { kind = "token_file" }
  function self.header() return "Bearer " .. token end
  local old = {}
  -- Another process may have rotated the file: re-read it once per 401.
  function self.unauthorized(rejected)
    if rejected and rejected ~= "Bearer " .. token then return true end
    local fresh, rerr = secret_file.read(path, "token_file")
    if not fresh then return false, rerr end
    if fresh ~= token then
      table.insert(old, 1, token)
      old[5] = nil
      token = fresh
      return true
    end
    return false, "token_file " .. path .. " was re-read and still holds the rejected token"
  end
  function self.secrets()
    local list = { token }
    for _, v in ipairs(old) do list[#list + 1] = v end
    return list
  end
  return self
end

--- Build the token source from client options. A source has `kind`,
-- `header()` (-> "Bearer ..." or nil, err; may obtain or refresh a grant),
-- `unauthorized([rejected])` (after a 401: true when a fresh token is ready,
-- else false and why; `rejected` is the refused Authorization value, so that
-- several 401s for one old token cost one refresh) and `secrets()`; grants
-- also have `info()` and `revoked()`.
-- @param opts client options (`token`, `token_file` or `auth`)
-- @param ctx `{transport = <prequalify.transport>, warn = function(msg)}`
function M.new(opts, ctx)
  local n = (opts.token and 1 or 0) + (opts.token_file and 1 or 0) + (opts.auth and 1 or 0)
  if n > 1 then
    return nil, errors.new("invalid", "give only one of token, token_file and auth", { field = "token" })
  end
  if opts.token ~= nil then
    if type(opts.token) ~= "string" or opts.token == "" then
      return nil, errors.new("invalid", "token must be a non-empty string", { field = "token" })
    end
    return static(opts.token)
  elseif opts.token_file ~= nil then
    if type(opts.token_file) ~= "string" then
      return nil, errors.new("invalid", "token_file must be a path string", { field = "token_file" })
    end
    return from_file(opts.token_file, ctx.warn)
  elseif opts.auth ~= nil then
    return grant.new(opts.auth, ctx)
  end
  -- No credentials: requests go out without Authorization and get a 401.
  local self = { kind = "none" }
  function self.header() return nil end
  function self.unauthorized() return false, "no token, token_file or auth was given" end
  function self.secrets() return {} end
  return self
end

return M
