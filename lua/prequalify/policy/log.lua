--- The trail as the fast path records it: one flat table per evaluation,
-- five slots per entry (rule name, verdict, depth, reason, x), whose
-- reasons are built only when somebody reads the trail. Most requests are
-- allowed and nobody reads why, so building 8 reason strings and 8 entry
-- tables for each would be most of a policy's cost.
--
-- A reason slot holds the text, or a function called as `reason(x, log)`
-- that builds it from `x`, a value the rule captured (never the request
-- table, which its owner may change after the decision). An entry with
-- depth -1 is hidden: a combinator left it out of the trail but may still
-- quote its reason. Entries are addressed by their first slot.
-- @module prequalify.policy.log
local M = {}

--- Slots per entry.
M.STRIDE = 5

-- The log is also the metatable of the allowed decision it belongs to
-- (`__index` builds the trail on first read), so a decision costs two
-- tables. It is made with all its slots up front, in one allocation, by a
-- table constructor of that size: Lua has no `table.new`, a table filled
-- from empty is rehashed at every power of two, and `table.unpack` of a
-- template reads each slot through the C API (for 8 rules, a tenth of an
-- evaluation). The constructors are written once per size.
local makers = {}

--- A function `(index) -> log` that makes an empty log with room for
-- `slots` slots and `index` as its `__index`.
function M.maker(slots)
  local make = makers[slots]
  if not make then
    local src = "return function(index) return { __index = index, n = 0" .. string.rep(", false", slots) .. " } end"
    make = assert(load(src, "=(policy log of " .. slots .. " slots)", "t", {}))()
    makers[slots] = make
  end
  return make
end

--- Append an entry; returns the new end of the log.
function M.put(log, n, name, verdict, depth, reason, x)
  log[n + 1], log[n + 2], log[n + 3], log[n + 4], log[n + 5] = name, verdict, depth, reason, x
  return n + 5
end

--- The reason of the entry at `i`, built if it was deferred.
local function reason(log, i)
  local r = log[i + 3]
  if type(r) == "function" then return r(log[i + 4], log) end
  return r
end
M.reason = reason

--- A deferred reason that is the reason of another entry (`x` is its index).
function M.reason_of(i, log)
  return reason(log, i)
end

--- A deferred reason `rule: reason` quoting another entry (`x` is its index).
function M.quote(i, log)
  return log[i] .. ": " .. reason(log, i)
end

--- Hide the entries between `from` (exclusive end of the log before them)
-- and `to` if at most one of them is visible.
function M.hide_single(log, from, to)
  local seen = 0
  for i = from + 1, to, 5 do
    if log[i + 2] >= 0 then seen = seen + 1 end
  end
  if seen <= 1 then M.hide(log, from, to) end
end

--- Hide every entry after `from` up to `to`.
function M.hide(log, from, to)
  for i = from + 1, to, 5 do log[i + 2] = -1 end
end

--- The last visible entry after `from`, or nil.
function M.last_visible(log, from, to)
  for i = to - 4, from + 1, -5 do
    if log[i + 2] >= 0 then return i end
  end
  return nil
end

-- The entries of the trail being built, so that the trail is made at its
-- size at once (filled one by one, it would grow at every power of two).
-- Slots past the current trail keep older entries until overwritten: they
-- are never read, and emptying them would cost more than the copy saves.
local entries = {}
local unpack = table.unpack

--- The trail: a plain list of `{rule=, verdict=, reason=, depth=}`.
function M.trail(log, n)
  local k = 0
  for i = 1, n, 5 do
    local depth = log[i + 2]
    if depth >= 0 then
      local r = log[i + 3]
      if type(r) == "function" then r = r(log[i + 4], log) end
      k = k + 1
      entries[k] = { rule = log[i], verdict = log[i + 1], reason = r, depth = depth }
    end
  end
  return { unpack(entries, 1, k) }
end

return M
