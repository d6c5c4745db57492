--- The shapes a batch item leaves behind: its report entry's request and
-- error summaries, and its journal `done` record.
-- @module prequalify.batch.entry
local errors = require "prequalify.errors"

local M = {}

--- The fields of a request that a report or journal shows (no derived ones).
function M.summary(req)
  return {
    dn = req.dn, user = req.user, data = req.data, algorithm = req.algorithm,
    digest_length = req.digest_length, hours = req.hours, single_use = req.single_use or false,
    comment = req.comment,
  }
end

--- An error as the report shows it (secrets redacted).
function M.error_summary(err, secrets)
  if not err then return nil end
  return {
    kind = err.kind, message = errors.redact(err.message, secrets), outcome = err.outcome,
    status = err.status, result = err.result, result_name = err.result_name,
    retry_after = err.retry_after, field = err.field, curl_code = err.curl_code,
  }
end

--- Fill an entry with its outcome and what the server said.
function M.conclude(entry, outcome, res, err, reason, secrets)
  entry.outcome = outcome
  entry.reason = reason or entry.reason
  if err then
    entry.error = M.error_summary(err, secrets)
    if err.result or (err.status and outcome ~= "denied") then
      entry.server = { status = err.status, result = err.result, result_name = err.result_name }
    end
  end
  if res then entry.server = { status = res.status, result = res.result, result_name = res.result_name } end
  return entry
end

--- The journal's `done` record of an item.
function M.done_record(outcome, attempts, index, res, err, secrets)
  local rec = { outcome = outcome, attempts = attempts, index = index }
  if res then
    rec.status, rec.result, rec.result_name = res.status, res.result, res.result_name
  elseif err then
    rec.kind, rec.sent_outcome, rec.status = err.kind, err.outcome, err.status
    rec.result, rec.result_name = err.result, err.result_name
    rec.message = errors.redact(err.message, secrets)
  end
  return rec
end

return M
