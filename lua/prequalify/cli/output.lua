--- Output helpers shared by the subcommands: JSON for machines, short labels
-- and one-line summaries for people. Nothing here ever sees a secret.
-- @module prequalify.cli.output
local cjson = require "cjson"

local M = {}

local json = cjson.new()
json.encode_invalid_numbers(false)

--- JSON text of a value (paths keep their slashes unescaped).
function M.json(v)
  -- cjson escapes every '/', and a raw '/' never appears in its output, so
  -- each "\/" is one escaped slash.
  return (json.encode(v):gsub("\\/", "/"))
end

--- A short form of a Base64 digest for text output.
function M.short(b64)
  if type(b64) ~= "string" then return "?" end
  if #b64 <= 16 then return b64 end
  return b64:sub(1, 12) .. "..."
end

--- How to name an item in text: its file, its manifest line, or its digest.
-- @param t a table with `file`, `line`, `source`, `index`, `request`
function M.label(t)
  if t.file then return t.file end
  local line = tonumber(t.line)
  if line then return string.format("%s:%d", t.source or "manifest", math.floor(line)) end
  local r = t.request
  if r and r.data then return (r.algorithm or "digest") .. " " .. M.short(r.data) end
  return "item " .. tostring(t.index or "?")
end

--- The request fields worth printing (never a derived or secret field).
function M.request_summary(req)
  if type(req) ~= "table" then return nil end
  return {
    dn = req.dn, user = req.user, data = req.data, algorithm = req.algorithm,
    digest_length = req.digest_length, hours = req.hours, single_use = req.single_use or false,
    comment = req.comment,
  }
end

--- A warning for data whose decoded length is that of no known digest (1-15
-- bytes, or any length but 20, 32, 48 and 64): a truncated or mistaken hash
-- would be pre-qualified as it is. Nil for a digest's length.
function M.length_warning(req)
  if type(req) ~= "table" or req.algorithm or not req.digest_length then return nil end
  return string.format("data decodes to %d byte%s, the length of no known digest (sha1, sha256, sha384, "
    .. "sha512); pre-qualify it only if it is not meant to be a digest", req.digest_length,
    req.digest_length == 1 and "" or "s")
end

--- An error value as a plain table.
function M.error_summary(err)
  if type(err) ~= "table" then return { message = tostring(err) } end
  return {
    kind = err.kind, message = err.message, outcome = err.outcome, status = err.status,
    result = err.result, result_name = err.result_name, field = err.field, retry_after = err.retry_after,
    scope = err.scope,
  }
end

--- Trail entries as plain tables.
function M.trail(trail)
  if type(trail) ~= "table" then return nil end
  local out = {}
  for i, e in ipairs(trail) do
    out[i] = { rule = e.rule, verdict = e.verdict, reason = e.reason, depth = e.depth }
  end
  return out
end

--- Trail lines, indented (no header), as `policy.format_trail` draws them.
function M.trail_lines(trail)
  local lines = {}
  for _, e in ipairs(trail or {}) do
    lines[#lines + 1] = string.format("  %-6s %s%s: %s", e.verdict, string.rep("  ", e.depth or 0),
      e.rule, e.reason)
  end
  return lines
end

--- A Unix time as UTC ISO 8601, or nil.
function M.utc(t)
  if type(t) ~= "number" then return nil end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

--- Seconds as "1h02m", "5m10s", "42s".
function M.duration(s)
  if type(s) ~= "number" then return "?" end
  s = math.floor(s + 0.5)
  if s < 0 then return "expired" end
  if s < 60 then return s .. "s" end
  if s < 3600 then return string.format("%dm%02ds", s // 60, s % 60) end
  if s < 86400 * 2 then return string.format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  return string.format("%dd%02dh", s // 86400, (s % 86400) // 3600)
end

return M
