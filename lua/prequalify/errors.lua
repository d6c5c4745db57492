--- Error values: every failure the library reports is one of these tables.
-- Fields: `kind`, `message`, and where they apply `field`, `status`, `result`,
-- `result_name`, `retryable`, `outcome`. `tostring(err)` is one readable line.
-- @module prequalify.errors
local M = {}

--- The kinds an error may have (see DESIGN.md).
M.KINDS = {
  invalid = true, policy = true, transport = true, auth = true,
  forbidden = true, http = true, server = true, protocol = true,
  journal = true, -- the batch journal could not be written or synced (a disk error)
}

local mt = {}
mt.__index = mt
mt.__name = "prequalify.error"

function mt.__tostring(e)
  local parts = { "prequalify: ", e.kind, " error: ", e.message }
  if e.status and e.status ~= 200 and not e.message:find("HTTP " .. e.status, 1, true) then
    parts[#parts + 1] = " (HTTP " .. e.status .. ")"
  end
  if e.outcome == "unknown" then
    parts[#parts + 1] = " [outcome unknown: the server may have acted]"
  end
  return table.concat(parts)
end

--- Make an error of `kind` with a message and extra fields.
-- @tparam string kind one of `M.KINDS`
-- @tparam string message one line, never holding a secret
-- @tparam[opt] table fields extra fields copied into the error
function M.new(kind, message, fields)
  assert(M.KINDS[kind], "unknown error kind: " .. tostring(kind))
  local e = { kind = kind, message = message }
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  if e.outcome == nil then
    e.outcome = (kind == "invalid" or kind == "policy") and "not_sent" or nil
  end
  if e.retryable == nil then e.retryable = false end
  return setmetatable(e, mt)
end

--- True if `v` is an error made by this module.
function M.is(v)
  return getmetatable(v) == mt
end

--- A copy of `s` with every occurrence of each secret replaced.
-- Used on any text that came from outside (server bodies, curl messages).
function M.redact(s, secrets)
  if type(s) ~= "string" or not secrets then return s end
  for _, secret in ipairs(secrets) do
    if type(secret) == "string" and #secret >= 4 then
      local start = 1
      while true do
        local i, j = s:find(secret, start, true)
        if not i then break end
        s = s:sub(1, i - 1) .. "[REDACTED]" .. s:sub(j + 1)
        start = i + 10
      end
    end
  end
  return s
end

return M
