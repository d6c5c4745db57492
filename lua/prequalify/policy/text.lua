--- Small text helpers shared by the rules and the trail printer, so that a
-- digest, an hours value or a duration reads the same everywhere.
-- @module prequalify.policy.text
local M = {}

--- The server's default validity when a request has no `hours`.
M.DEFAULT_HOURS = 24

local find, gsub, sub = string.find, string.gsub, string.sub

--- The first characters of a Base64 digest, enough to tell hashes apart,
-- followed by `rest` if given (one string made, not two).
function M.digest(data, rest)
  if type(data) ~= "string" then data = tostring(data or "") end
  if #data > 16 then return sub(data, 1, 12) .. "..." .. (rest or "") end
  if rest then return data .. rest end
  return data
end

--- `"24 requested (server default)"` or `"8 requested"`, from a request's `hours`.
function M.hours_value(hours)
  if hours == nil then
    return M.DEFAULT_HOURS .. " requested (server default)"
  end
  return hours .. " requested"
end

--- A comment quoted for a reason line, cut short if long, with control
-- characters shown as spaces. (Cut first: a long comment is not scanned
-- to its end, and the replacement keeps every character in its place.)
function M.quote(s)
  s = tostring(s)
  if #s > 60 then s = sub(s, 1, 57) .. "..." end
  if find(s, "%c") then s = gsub(s, "%c", " ") end
  return '"' .. s .. '"'
end

--- Check a rule's Lua pattern argument when the policy is built: raises,
-- naming the rule, for a mistake.
-- @param who the rule, e.g. "policy.comment_matches"
-- @param pattern the argument to check
-- @param what how the argument is described ("a Lua pattern (string)")
-- @param level where the caller's mistake is, counted from the caller of this function
function M.check_pattern(who, pattern, what, level)
  level = (level or 2) + 1
  if type(pattern) ~= "string" or pattern == "" then error(who .. ": expected " .. what, level) end
  local ok, why = pcall(find, "", pattern)
  if not ok then
    error(string.format("%s: bad Lua pattern %q: %s", who, pattern, (gsub(tostring(why), "^.-:%d+: ", ""))), level)
  end
  return pattern
end

--- A duration in seconds as `90s`, `15m`, `1h` or `7d`.
function M.duration(s)
  if s % 86400 == 0 then return string.format("%dd", s // 86400) end
  if s % 3600 == 0 then return string.format("%dh", s // 3600) end
  if s % 60 == 0 then return string.format("%dm", s // 60) end
  return string.format("%gs", s)
end

--- A table that remembers `make(key)`: `t[key]` calls `make` the first
-- time only. It forgets everything once it holds `max` keys, so it stays
-- small. For the values a batch repeats (users, DNs, comments, hours) and
-- the reasons made from them. A key that cannot be stored (nil, NaN) must
-- make `make` raise.
function M.memo(make, max)
  local count = 0
  return setmetatable({}, {
    __index = function(t, key)
      local v = make(key)
      if count >= max then
        for k in pairs(t) do t[k] = nil end
        count = 0
      end
      t[key], count = v, count + 1
      return v
    end,
  })
end

--- `lowered[s]` is `s:lower()`, remembered for the strings seen most
-- recently (users and DNs); a hit costs one table read, not a call.
M.lowered = M.memo(function(s) return s:lower() end, 1024)

--- `{"a", "b"}` as `"a, b"`.
function M.list(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = tostring(v) end
  return table.concat(out, ", ")
end

return M
