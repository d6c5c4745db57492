--- Small text helpers shared by the rules and the trail printer, so that a
-- digest, an hours value or a duration reads the same everywhere.
-- @module prequalify.policy.text
local M = {}

--- The server's default validity when a request has no `hours`.
M.DEFAULT_HOURS = 24

--- The first characters of a Base64 digest, enough to tell hashes apart.
function M.digest(data)
  data = tostring(data or "")
  if #data <= 16 then return data end
  return data:sub(1, 12) .. "..."
end

--- `"24 requested (server default)"` or `"8 requested"`, from a request's `hours`.
function M.hours_value(hours)
  if hours == nil then
    return M.DEFAULT_HOURS .. " requested (server default)"
  end
  return hours .. " requested"
end

--- The same, for a request.
function M.hours(req)
  return M.hours_value(req.hours)
end

--- The hours a request asks for, counting a missing value as the default.
function M.hours_of(req)
  return req.hours or M.DEFAULT_HOURS
end

--- A comment quoted for a reason line, cut short if long.
function M.quote(s)
  s = tostring(s):gsub("[%c]", " ")
  if #s > 60 then s = s:sub(1, 57) .. "..." end
  return '"' .. s .. '"'
end

--- A duration in seconds as `90s`, `15m`, `1h` or `7d`.
function M.duration(s)
  if s % 86400 == 0 then return string.format("%dd", s // 86400) end
  if s % 3600 == 0 then return string.format("%dh", s // 3600) end
  if s % 60 == 0 then return string.format("%dm", s // 60) end
  return string.format("%gs", s)
end

-- Lower-cased names (users, DNs) of recent requests: a batch sends the
-- same few again and again. Emptied when full, so it stays small.
local LOWER_MAX = 1024
local lowered, n_lowered = {}, 0

--- `s:lower()`, remembered for the strings seen most recently.
function M.lower(s)
  local l = lowered[s]
  if l == nil then
    l = s:lower()
    if n_lowered >= LOWER_MAX then lowered, n_lowered = {}, 0 end
    lowered[s], n_lowered = l, n_lowered + 1
  end
  return l
end

--- `{"a", "b"}` as `"a, b"`.
function M.list(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = tostring(v) end
  return table.concat(out, ", ")
end

return M
