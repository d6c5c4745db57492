--- The retry rules: which failures may be repeated, and after how long.
-- Only requests that never reached the server (`not_sent`) and answers that
-- say "try later" (429, 503 with Retry-After) are repeated. An `unknown`
-- outcome is repeated only when the caller opted in with `retry_unknown`,
-- because a repeated pre-qualification cannot be undone.
-- @module prequalify.retry
local M = {}

M.DEFAULTS = { max = 3, base_delay = 0.5, max_delay = 30 }

--- Validate and fill a `retries` option (`false` turns retries off).
-- @return settings table or nil, message
function M.settings(opt)
  if opt == false then return { max = 1, base_delay = 0, max_delay = 0 } end
  if opt == nil or opt == true then opt = {} end
  if type(opt) ~= "table" then return nil, "retries must be false or a table {max=, base_delay=, max_delay=}" end
  local s = {}
  for k, v in pairs(opt) do
    if M.DEFAULTS[k] == nil then
      return nil, "retries: unknown field '" .. tostring(k) .. "' (known: max, base_delay, max_delay)"
    end
    if type(v) ~= "number" or v < 0 then return nil, "retries." .. k .. " must be a number >= 0" end
    s[k] = v
  end
  for k, v in pairs(M.DEFAULTS) do if s[k] == nil then s[k] = v end end
  if math.type(s.max) ~= "integer" and s.max ~= math.floor(s.max) or s.max < 1 then
    return nil, "retries.max must be a whole number of attempts >= 1"
  end
  s.max = math.tointeger(s.max)
  return s
end

--- May this failure be tried again?
function M.retryable(err, retry_unknown)
  if err.retryable then return true end
  return retry_unknown and err.outcome == "unknown" or false
end

--- Seconds to wait before attempt `attempt + 1`, or nil to give up.
-- Capped exponential backoff with full jitter; a server's Retry-After wins
-- when it is longer, but never beyond max_delay (past that we give up and
-- report the error, which carries `retry_after`).
-- @param err the failure
-- @param attempt attempts made so far (1 after the first)
-- @param s settings from `M.settings`
-- @param retry_unknown caller's opt-in for `unknown` outcomes
-- @param random optional random function (tests)
function M.delay(err, attempt, s, retry_unknown, random)
  if attempt >= s.max or not M.retryable(err, retry_unknown) then return nil end
  local cap = math.min(s.max_delay, s.base_delay * 2 ^ (attempt - 1))
  local d = cap * (random or math.random)()
  if err.retry_after then
    if err.retry_after > s.max_delay then return nil end
    d = math.max(d, err.retry_after)
  end
  return d
end

--- The one retry and re-authentication decision, used by every call loop.
-- A 401 means the server did nothing, so it asks for one re-authentication
-- (`opts.max_reauths`, default 1, per call); other failures follow `M.delay`.
-- @param err the failure
-- @param attempt attempts made so far (1 after the first)
-- @param s settings from `M.settings`
-- @tparam[opt] table opts `retry_unknown`, `reauths` (re-authentications
--   already made for this call), `max_reauths`, `random` (tests)
-- @return `"retry", delay` | `"reauth"` | nil (give up)
function M.next(err, attempt, s, opts)
  opts = opts or {}
  if err.kind == "auth" and err.status == 401 then
    if (opts.reauths or 0) < (opts.max_reauths or 1) then return "reauth" end
    return nil
  end
  local d = M.delay(err, attempt, s, opts.retry_unknown, opts.random)
  if d then return "retry", d end
  return nil
end

return M
