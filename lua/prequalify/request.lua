--- Requests: validation (in the C core), normalization and the wire body.
-- @module prequalify.request
local core = require "prequalify.core"
local cjson = require "cjson"
local errors = require "prequalify.errors"

local M = {}

local wire = core.wire

local json = cjson.new()
json.encode_invalid_numbers(false)

-- Normalized requests carry this metatable, so that a second validation of
-- the same object can be skipped. It is the C core's (`core.prepare` sets
-- it); the methods are added here.
local Request = core.Request
Request.__index = Request
M.Request = Request

function Request:__tostring()
  return string.format("prequalify.request(dn=%s, user=%s, %s%s)", self.dn, self.user,
    self.algorithm or (self.digest_length .. " bytes"),
    self.hours and (", " .. self.hours .. "h") or "")
end

--- Validate and normalize a request table; no network.
-- @tparam table t fields `dn`, `data` or `digest`, `comment`, `user`,
--   optional `hours` and `single_use`
-- @return the normalized request, or nil and an `invalid` error
function M.new(t)
  if getmetatable(t) == Request then return t end
  if type(t) ~= "table" then
    error("prequalify.request: expected a table of fields, got " .. type(t), 2)
  end
  local req, message, field = core.validate(t)
  if not req then
    return nil, errors.new("invalid", message, { field = field })
  end
  return setmetatable(req, Request)
end

--- True if `v` is a normalized request.
function M.is(v)
  return getmetatable(v) == Request
end

--- A plain, modifiable copy of a request's user fields (no derived fields).
function M.fields(req)
  return {
    dn = req.dn, data = req.data, comment = req.comment, user = req.user,
    hours = req.hours, single_use = req.single_use,
  }
end

--- The exact JSON body for PreQualify/Create.
-- Wire names are `Dn`, `Data`, `Comment`, `User`, `Hours`, `SingleUse`, in
-- that order; absent optional fields are left out, never sent as null. The
-- C core writes it (`core.wire`), escaping as lua-cjson does.
-- @param req a normalized request (or a table that validates)
-- @return the JSON text, or nil and an error
function M.encode(req)
  local r, err = M.new(req)
  if not r then return nil, err end
  return wire(r)
end

M.json = json

return M
