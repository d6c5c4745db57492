--- The resume rules: what an item whose key an earlier run recorded in the
-- journal becomes in this run (docs/BATCH.md, "Journal and resume").
-- @module prequalify.batch.resume
local errors = require "prequalify.errors"

local M = {}

--- Claim an item in the journal and decide.
-- @param jr the journal
-- @param key the item's key
-- @param ikey its short form
-- @param seq the item's number in this run
-- @tparam table o `retry_unknown`, `retry_failed`
-- @return `"send"` (and the earlier outcome to report as `previous`, if
--   any); `"duplicate"` and the number of the earlier item of this run;
--   `"recorded"` and the record of an earlier run to report; or
--   `"intent"` (sent by an earlier run that recorded no reply)
function M.claim(jr, key, ikey, seq, o)
  local first, st, rec = jr:claim(key, ikey, seq)
  if first then return "duplicate", first end
  if st == "done" then
    local again = (rec.outcome == "unknown" and o.retry_unknown)
      or (rec.outcome == "failed" and o.retry_failed and rec.sent_outcome ~= "unknown")
    if not again then return "recorded", rec end
    return "send", rec.outcome
  elseif st == "intent" then
    if not o.retry_unknown then return "intent" end
    return "send", "unknown"
  end
  return "send"
end

--- What a `done` record of an earlier run reports now.
-- @return outcome, res|nil, err|nil, reason
function M.recorded(rec)
  if rec.outcome == "approved" then
    return "approved", { ok = true, status = rec.status, result = rec.result, result_name = rec.result_name,
                         resumed = true }, nil, "recorded by an earlier run"
  end
  local kind = errors.KINDS[rec.kind] and rec.kind or "transport"
  local err = errors.new(kind, tostring(rec.message or "recorded by an earlier run"), {
    outcome = rec.sent_outcome or (rec.outcome == "unknown" and "unknown" or "rejected"),
    status = rec.status, result = rec.result, result_name = rec.result_name,
  })
  return rec.outcome == "unknown" and "unknown" or "failed", nil, err, "recorded by an earlier run"
end

--- The error of an item an earlier run sent without recording a reply.
function M.intent_error()
  return errors.new("transport", "sent by an earlier run that recorded no reply; "
    .. "not resent (retry_unknown resends it)", { outcome = "unknown" })
end

return M
