--- Flow tickets as the server sends them, read into plain ticket tables.
-- Either wire shape is accepted where the sources disagree (API-NOTES.md):
-- `Environment` as a string map or as an array of `{Key, Value}`;
-- `Approvers` as prefixed universal strings or as identity objects; times
-- as `/Date(ms[+-zzzz])/`, ISO 8601 or unix seconds.
-- @module prequalify.tickets.wire
local M = {}

--- Code-signing key use, the default `ProductCode`.
M.CODE_SIGNING = 1610743809

-- JSON null (cjson.null, a light userdata) and absent fields read as nil.
local function value(v)
  if v == nil or type(v) == "userdata" then return nil end
  return v
end
M.value = value

-- A whole number as an integer (cjson reads every number as a float).
local function int(v)
  v = value(v)
  return type(v) == "number" and math.tointeger(v) or v
end
M.int = int

-- Days since 1970-01-01 of a civil date (proleptic Gregorian), so that an
-- ISO 8601 time is read as UTC whatever the local time zone.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Unix seconds from a wire time, or nil when there is none or it cannot be read.
-- @param v `/Date(1591289490905-0700)/` (the milliseconds are UTC; the
--   offset only says where it was shown), ISO 8601 with `Z` or an offset, or a number
function M.time(v)
  v = value(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local ms = v:match("^/Date%((%-?%d+)[%+%-]?%d*%)/$")
  if ms then return tonumber(ms) / 1000 end
  local y, mo, d, h, mi, s, rest = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d%.?%d*)(.*)$")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
  if rest == "" or rest == "Z" or rest == "z" then return t end
  local sign, oh, om = rest:match("^([%+%-])(%d%d):?(%d%d)$")
  if not sign then return nil end
  local offset = tonumber(oh) * 3600 + tonumber(om) * 60
  return sign == "+" and t - offset or t + offset
end

--- ISO 8601 UTC text of unix seconds, as the ticket calls send times.
function M.iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

--- The environment as a map, from either wire shape.
function M.environment(v)
  v = value(v)
  local out = {}
  if type(v) ~= "table" then return out end
  if #v > 0 then
    for _, kv in ipairs(v) do
      if type(kv) == "table" and type(value(kv.Key)) == "string" then out[kv.Key] = value(kv.Value) end
    end
  else
    for k, x in pairs(v) do
      if type(k) == "string" then out[k] = value(x) end
    end
  end
  return out
end

--- An approver as a string, from a prefixed universal or an identity object.
local function approver(v)
  if type(v) == "string" then return v end
  if type(v) ~= "table" then return nil end
  for _, k in ipairs{ "PrefixedUniversal", "PrefixedName", "Universal", "Name", "FullName" } do
    if type(value(v[k])) == "string" then return v[k] end
  end
  return nil
end

-- The environment keys that may hold the environment DN and the requesting
-- user: the real names are unconfirmed, so a few spellings are tried,
-- compared without case or spaces.
local DN_KEYS = { "objectdn", "environmentdn", "dn", "environment" }
local USER_KEYS = { "user", "keyuser", "requestinguser", "requester", "requestor", "authenticateduser",
                    "username" }

--- A key name without case, spaces or underscores ("Object DN" -> "objectdn").
function M.fold(k)
  return (k:lower():gsub("[%s_]", ""))
end

--- The value of the first of `wanted` (folded key names) that `env` has
-- under some spelling; string values only, unless `any`.
function M.find(env, wanted, any)
  local folded = {}
  for k, v in pairs(env) do
    if any or type(v) == "string" then folded[M.fold(k)] = v end
  end
  for _, k in ipairs(wanted) do
    if folded[k] ~= nil then return folded[k] end
  end
  return nil
end
local find_key = M.find

--- A ticket table from a wire `Ticket` object (see docs/TICKETS.md).
function M.ticket(raw)
  if type(raw) ~= "table" then return nil end
  local env = M.environment(raw.Environment)
  local approvals = {}
  for _, a in ipairs(type(value(raw.Approvals)) == "table" and raw.Approvals or {}) do
    if type(a) == "table" then
      approvals[#approvals + 1] = { universal = value(a.Universal), comment = value(a.Comment),
                                    time = M.time(a.ApprovalTime) }
    end
  end
  local approvers = {}
  for _, a in ipairs(type(value(raw.Approvers)) == "table" and raw.Approvers or {}) do
    approvers[#approvers + 1] = approver(a)
  end
  return {
    id = value(raw.Id),
    required_approvals = int(raw.RequiredApprovals),
    approvals = approvals,
    approvers = approvers,
    created = M.time(raw.CreationTime),
    not_before = M.time(raw.NotBefore),
    expires = M.time(raw.ExpiresOn),
    remaining_uses = int(raw.RemainingUses),
    identifier = value(raw.Identifier),
    product_code = int(raw.ProductCode),
    environment = env,
    dn = find_key(env, DN_KEYS),
    user = find_key(env, USER_KEYS),
    rejection_status = int(raw.RejectionStatus),
    raw = raw,
  }
end

return M
