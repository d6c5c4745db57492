--- The batch's input as one pull function: an array of request tables, an
-- iterator function returning `req[, meta]` (or `false, err` for a bad
-- input) and nil at the end, or a callable reader such as a manifest.
-- @module prequalify.batch.source
local M = {}

--- The pull function, the input's size when known, and whether it is a
-- Lua array (whose entries the report keeps by default).
-- @param items the input
-- @tparam boolean want_total count a reader's items (for `not_reached` and the
--   progress ETA)
-- @return pull, total|nil, is_array; or nil and a message for an input of
--   another type
function M.new(items, want_total)
  local t = type(items)
  if t == "function" then return items, nil, false end
  if t ~= "table" then
    return nil, "expected an array of requests, an iterator function or a manifest, got " .. t
  end
  local mt = getmetatable(items)
  if mt and mt.__call then
    local total
    if want_total and type(items.count) == "function" then total = items:count() end
    return function() return items() end, total, false
  end
  local i, n = 0, #items
  return function()
    if i >= n then return nil end
    i = i + 1
    return items[i]
  end, n, true
end

return M
