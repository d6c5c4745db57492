--- The resume rules: what an item whose identity an earlier run recorded in
-- the journal becomes in this run (docs/BATCH.md, "Journal and resume").
-- @module prequalify.batch.resume
local errors = require "prequalify.errors"

local M = {}

-- Outcomes of an earlier run that a plain resume sends again: the server
-- certainly did not act (`rejected`: refused by a 401 or 403, whose cause
-- the user fixes between runs).
local RESEND = { rejected = true }

--- Look an item up in the journal and decide.
-- @param jr the journal
-- @param key the item's key
-- @param ikey its short form
-- @tparam table o `retry_unknown` (true, or a set of keys and lines),
--   `retry_failed`
-- @param line the item's input line, if any
-- @return `"send"` (and the earlier outcome to report as `previous`, if
--   any); `"approved"`, the record and the intent of an earlier approval
--   (whose terms the caller compares, `M.terms_differ`); `"recorded"` and
--   the record of an earlier run to report; or `"intent"` (sent by an
--   earlier run that recorded no reply)
function M.claim(jr, key, ikey, o, line)
  local st, rec, intent = jr:lookup(key, ikey)
  local retry_unknown = o.retry_unknown == true
    or (type(o.retry_unknown) == "table" and (o.retry_unknown[key] or (line and o.retry_unknown[line])))
  if st == "done" then
    if rec.outcome == "approved" then return "approved", rec, intent end
    local again = (rec.outcome == "unknown" and retry_unknown) or RESEND[rec.outcome]
      or (rec.outcome == "failed" and o.retry_failed and rec.sent_outcome ~= "unknown")
    if not again then return "recorded", rec end
    return "send", rec.outcome
  elseif st == "intent" then
    if not retry_unknown then return "intent" end
    return "send", "unknown"
  end
  return "send"
end

-- The terms of a request or an intent record: what may differ between two
-- approvals of one identity.
local function terms(t)
  return { hours = t.hours, single_use = t.single_use == true, comment = t.comment }
end

--- The terms of an earlier approval and of the request, when they differ.
-- @param intent the earlier approval's intent record (nil: not known)
-- @param req the request as it would be sent now
-- @return nil when they are the same (or the earlier ones are not known);
--   else the earlier terms and the requested ones
function M.terms_differ(intent, req)
  if not intent then return nil end
  local was, now = terms(intent), terms(req)
  if was.hours == now.hours and was.single_use == now.single_use and was.comment == now.comment then return nil end
  return was, now
end

--- What a `done` record of an earlier run reports now.
-- @return outcome, res|nil, err|nil, reason
function M.recorded(rec)
  if rec.outcome == "approved" then
    return "approved", { ok = true, status = rec.status, result = rec.result, result_name = rec.result_name,
                         resumed = true }, nil,
      rec.resolved and "resolved as approved by the user" or "recorded by an earlier run"
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
