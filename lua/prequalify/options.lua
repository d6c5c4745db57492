--- Checks an options table against a spec of accepted Lua types, so that
-- every object made from options (client, batch) refuses unknown names and
-- wrong types with the same messages.
-- @module prequalify.options
local errors = require "prequalify.errors"

local M = {}

--- Check `opts` against `spec` (option name → "type" or "type|type").
-- @tparam table opts the caller's options
-- @tparam table spec accepted types by option name
-- @tparam string what the object's name in messages ("client", "batch")
-- @return true, or nil and an `invalid` error whose field is the option
function M.check(opts, spec, what)
  for k, v in pairs(opts) do
    local want = spec[k]
    if not want then
      local known = {}
      for name in pairs(spec) do known[#known + 1] = name end
      table.sort(known)
      return nil, errors.new("invalid", "unknown " .. what .. " option '" .. tostring(k) .. "' (known: "
        .. table.concat(known, ", ") .. ")", { field = tostring(k) })
    end
    if not want:find(type(v), 1, true) then
      return nil, errors.new("invalid", what .. " option '" .. k .. "' must be " .. want:gsub("|", " or ")
        .. ", got " .. type(v), { field = k })
    end
  end
  return true
end

return M
