--- The fields of a pre-approval (`Codesign/AddPreApproval`): their checks
-- and wire names. Used by `client:add_pre_approval`.
-- @module prequalify.preapproval
local core = require "prequalify.core"
local errors = require "prequalify.errors"

local M = {}

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = field })
end

-- AddPreApproval fields: Lua name -> wire name, checker.
local ISO_UTC = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.?%d*Z$"
local PRE_APPROVAL = {
  dn = { "Dn", "dn", true }, comment = { "Comment", "comment", true },
  user = { "User", "user", true }, hours = { "Hours" }, single_use = { "SingleUse" },
  ip_address = { "IPAddress" }, not_before = { "NotBefore" },
  signing_executable = { "SigningExecutable" },
}

--- Check AddPreApproval fields and give their wire form.
-- @return the wire table, or nil and an `invalid` error naming the field
function M.wire(t)
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

return M
