--- Printing a decision: a header line and one line per trail entry.
--
--     DENY \VED\Code Signing\Projects\Sample\Production Environment local:sample-cs-user sha256 q2rFZ7Tqxo2h...
--       allow  environment(**\Production*): matches **\Production*
--       deny   max_hours(4): 24 requested (server default) exceeds 4
--
-- Entries under `any`, `negate` or a named composite rule are indented
-- after the verdict column, so the verdicts stay aligned.
-- @module prequalify.policy.trail
local text = require "prequalify.policy.text"
local view = require "prequalify.tickets.view"

local M = {}

local function header(d)
  local r = d.request or d.input
  local head = { d.allow and "ALLOW" or "DENY" }
  if view.is(r) then
    for _, k in ipairs { "id", "user", "dn" } do
      if type(rawget(r, k)) == "string" then head[#head + 1] = (k == "id" and "ticket " or "") .. rawget(r, k) end
    end
  elseif type(r) ~= "table" then
    head[#head + 1] = "(no request)"
  else
    if d.request == nil then head[#head + 1] = "(invalid request)" end
    for _, k in ipairs { "dn", "user" } do
      if type(r[k]) == "string" then head[#head + 1] = r[k] end
    end
    if r.algorithm then head[#head + 1] = r.algorithm
    elseif math.type(r.digest_length) == "integer" then head[#head + 1] = r.digest_length .. "-byte digest" end
    if type(r.data) == "string" then head[#head + 1] = text.digest(r.data) end
  end
  return table.concat(head, " ")
end

--- The decision as a few readable lines (no trailing newline).
function M.format(d)
  local lines = { header(d) }
  for _, e in ipairs(d.trail or {}) do
    lines[#lines + 1] = string.format("  %-6s %s%s: %s", e.verdict, string.rep("  ", e.depth or 0),
      e.rule, e.reason)
  end
  return table.concat(lines, "\n")
end

return M
