--- One input item into the batch: validated, looked up in the journal, run
-- through the policy, and handed to the pipeline; or finished at once
-- (invalid, a duplicate, recorded by an earlier run, denied).
-- @module prequalify.batch.item
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local request = require "prequalify.request"
local journal = require "prequalify.journal"
local resume = require "prequalify.batch.resume"
local entries = require "prequalify.batch.entry"

local M = {}

local Request = request.Request
local prepare, wire = core.prepare, core.wire

-- The first look at an input value: the normalized request (false when
-- nothing reads it), the report's summary and the wire body; or nil and an
-- error.
local function prepared(v, meta, seq, lite)
  if v == false or type(v) ~= "table" then
    return nil, errors.is(meta) and meta
      or errors.new("invalid", "item " .. seq .. " is a " .. type(v) .. ", expected a table of request fields")
  end
  if getmetatable(v) == Request then return v, entries.summary(v), wire(v) end
  -- Validation, the report's summary and the wire body in one C call.
  local req, summ, body = prepare(v, lite)
  if req == nil then return nil, errors.new("invalid", summ, { field = body }) end
  return req, summ, body
end

-- What the journal says of the item: true to send it, false when it is
-- finished already; "approved" (and the record and intent) for an earlier
-- approval whose terms the caller compares with what it would send.
local function journal_allows(run, e, key, ikey)
  local action, v, intent = resume.claim(run.jr, key, ikey, run, e.line)
  if action == "approved" then return action, v, intent end
  if action == "recorded" then
    e.resumed = true
    e.attempts = v.attempts
    run:finalize(e, resume.recorded(v))
  elseif action == "intent" then
    e.resumed = true
    run:finalize(e, "unknown", nil, resume.intent_error(), "intent without done in the journal")
  else
    e.previous = v
    return true
  end
  return false
end

-- An item an earlier run approved: reported as that approval when the
-- terms are the same; else skipped, or sent as a deliberate re-approval
-- (`allow_reapproval`). True when it is to be sent.
local function approved_before(run, e, rec, intent, send)
  local was, now = resume.terms_differ(intent, send)
  if was and run.allow_reapproval then
    e.reapproval = { approved = was, requested = now }
    e.reason = "deliberate re-approval: already approved with other terms"
    return true
  end
  e.resumed = true
  if was then
    e.terms = { approved = was, requested = now }
    run:finalize(e, "skipped", nil, nil, "already approved with other terms")
    return false
  end
  e.attempts = rec.attempts
  run:finalize(e, resume.recorded(rec))
  return false
end

-- The policy's decision: the request to send, or nil when it is denied.
local function policy_allows(run, e, req)
  local d = run.policy.evaluate(run.pol, req, run.ctx)
  if run.audit then run.audit:decision(e, d) end
  -- A trail is built when it is read (several times the cost of the
  -- decision): the report keeps those that explain something, the audit
  -- log every one.
  if not d.allow then
    e.trail = d.trail
    run:finalize(e, "denied", nil, run.policy.denial(d), d.reason)
    return nil
  end
  local send = d.request or req
  if d.verdict == "adjust" then
    e.trail = d.trail
    e.sent = entries.summary(send)
  elseif run.keep_trails then
    e.trail = d.trail
  end
  return send
end

-- An entry for an item that does not take the pipeline's fast path.
local function new_entry(seq, meta)
  local e = { index = seq }
  if type(meta) == "table" and not errors.is(meta) then
    e.line, e.file, e.source = meta.line, meta.file, meta.source
  end
  return e
end

-- The items of a chunk not queued (see `pipeline:add_inputs`): each
-- finished now, in order.
local function refused(run, chunk, problems)
  for _, p in ipairs(problems) do
    local e = new_entry(chunk.first + p.at - 1, chunk.metas[p.at])
    if p.duplicate_of then
      run:finalize(e, "skipped", nil, nil, "duplicate of item " .. p.duplicate_of)
    else
      run:finalize(e, "failed", nil, errors.new("invalid", p.message, { field = p.field }))
    end
  end
end

-- One item that does not take the fast path: looked at in Lua.
local function one(run, v, meta, seq)
  local req, summ, body = prepared(v, meta, seq, run.lite)
  local e = new_entry(seq, meta)
  if req == nil then
    local err = summ
    if errors.is(meta) then e.line, e.source, e.file = err.line, err.source, err.file or err.path end
    run:finalize(e, "failed", nil, err)
    return
  end
  e.request = summ
  local first = run.ids:claim(summ, seq)
  if first then
    run:finalize(e, "skipped", nil, nil, "duplicate of item " .. first)
    return
  end
  -- The key (SHA-256 of the fields) ties an item to its journal and audit
  -- records; without either nothing reads it.
  local key, ikey
  if run.jr or run.audit then
    key, ikey = journal.key(req)
    e.key = key
  end
  local earlier, rec, intent
  if run.jr then
    earlier, rec, intent = journal_allows(run, e, key, ikey)
    if not earlier then return end
  end
  local send = req
  if run.pol then
    send = policy_allows(run, e, req)
    if not send then return end
  end
  if earlier == "approved" and not approved_before(run, e, rec, intent, send) then return end
  local shown = summ
  if send ~= req then
    local eerr
    body, eerr = request.encode(send)
    if not body then
      run:finalize(e, "failed", nil, eerr)
      return
    end
    shown = e.sent
  end
  run:send(e, key, body, shown)
end

-- Hands the waiting chunk to the pipeline: its plain request tables and
-- normalized requests (a manifest's) are validated and queued in C, with no
-- Lua table for them; any other input is looked at here, in its place in
-- the chunk.
local function flush(run, chunk)
  local from, pipe = 1, run.pipe
  while from <= chunk.n do
    local problems, stop = pipe:add_inputs(chunk.items, chunk.metas, from, chunk.n, chunk.first, run.ids)
    if problems then refused(run, chunk, problems) end
    if not stop then break end
    local meta = chunk.metas[stop]
    one(run, chunk.items[stop], meta or nil, chunk.first + stop - 1)
    from = stop + 1
  end
  chunk.n = 0
end

--- A chunk of items waiting for the pipeline (one per Run).
function M.chunk()
  return { n = 0, first = 0, items = {}, metas = {} }
end

--- Pull up to `max` items from the source into the run. When nothing needs
-- to look at an item in Lua (no policy, journal, audit log or hook) they go
-- to the pipeline a chunk at a time; else each is looked at here.
-- @return the number of items pulled; `run.exhausted` is set when the
--   source has ended
function M.pull(run, max)
  local chunk, source = run.chunk, run.source
  local fast, seq, n = run.lite and run.fast, run.seq, 0
  for pulled = 1, max do
    local v, meta = source()
    if v == nil then
      run.exhausted = true
      max = pulled - 1
      break
    end
    seq = seq + 1
    if fast then
      n = n + 1
      chunk.items[n], chunk.metas[n] = v, meta or false
    else
      run.seq = seq
      one(run, v, meta, seq)
    end
  end
  if n > 0 then
    chunk.n, chunk.first = n, run.seq + 1
    run.seq = seq
    flush(run, chunk)
  end
  return max
end

return M
