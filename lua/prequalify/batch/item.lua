--- One input item into the batch: validated, looked up in the journal, run
-- through the policy, and handed to the pipeline; or finished at once
-- (invalid, a duplicate, recorded by an earlier run, denied). Unless
-- something must see every item (an audit log, a hook), items cross into
-- the pipeline a chunk at a time (`pipeline:add_inputs`), which validates
-- them, makes their journal keys and queues them in C; Lua looks only at
-- what needs a decision: an item the journal knows, and, with a policy,
-- each item's decision (those allowed as they are go on with the chunk).
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

-- What a deny adds for an item an earlier run approved.
local HELD = "; approved by an earlier run: the server still holds that approval"

-- The policy's decision (`d`, when taken already): the request to send, or
-- nil when it is denied. The policy is asked about an earlier approval too
-- (`approved_earlier`): its deny stands and nothing is sent, but the entry
-- says that the server still holds what the earlier run approved.
local function policy_allows(run, e, req, d, approved_earlier)
  d = d or run.policy.evaluate(run.pol, req, run.ctx)
  if run.audit then run.audit:decision(e, d) end
  -- The report keeps the trails that explain something; the audit log
  -- has every one.
  if not d.allow then
    e.trail = d.trail
    local err, reason = run.policy.denial(d), d.reason
    if approved_earlier then
      e.resumed = true
      err.message, reason = err.message .. HELD, (reason or "denied") .. HELD
    end
    run:finalize(e, "denied", nil, err, reason)
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

-- An identity claimed earlier in this run (by item `first`).
local function duplicate(run, e, first)
  run:finalize(e, "skipped", nil, nil, "duplicate of item " .. first)
end

-- An item that is valid and new in this run, from the journal on: what
-- earlier runs recorded, the policy (its decision `d`, when taken already),
-- then the pipeline. `body` is the wire body of `req` (nil: made here).
local function judge(run, e, req, body, key, ikey, d)
  local earlier, rec, intent
  if run.jr then
    earlier, rec, intent = journal_allows(run, e, key, ikey)
    if not earlier then return end
  end
  local send = req
  if run.pol then
    send = policy_allows(run, e, req, d, earlier == "approved")
    if not send then return end
  end
  if earlier == "approved" and not approved_before(run, e, rec, intent, send) then return end
  local shown = e.request
  if send ~= req then
    local eerr
    body, eerr = request.encode(send)
    if not body then
      run:finalize(e, "failed", nil, eerr)
      return
    end
    shown = e.sent
  end
  run:send(e, key, body or wire(req), shown)
end

-- One item looked at in Lua from the start.
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
  if first then return duplicate(run, e, first) end
  -- The key (SHA-256 of the identity) ties an item to its journal and audit
  -- records; without either nothing reads it.
  local key, ikey
  if run.jr or run.audit then
    key, ikey = journal.key(req)
    e.key = key
  end
  judge(run, e, req, body, key, ikey)
end

-- The entry of a chunk's item that `screened` finishes or sends itself.
local function screened_entry(seq, meta, req, key)
  local e = new_entry(seq, meta)
  e.request, e.key = entries.summary(req), key
  return e
end

-- An item of a chunk when a policy decides each: its normalized request
-- and (with a journal) its key, made once here for the journal lookup and
-- for the pipeline, when it goes on with the chunk (new in this run and to
-- the journal, allowed as it is, no trail to keep); else nil, the item
-- finished or sent here as `one` would.
local function screened(run, v, meta, seq)
  local req = type(v) == "table" and request.new(v)
  if not req then return one(run, v, meta, seq) end -- not a valid request: `one` says why
  local first = run.ids:claim(req, seq)
  if first then return duplicate(run, screened_entry(seq, meta, req), first) end
  local key, ikey
  if run.jr then
    key, ikey = journal.key(req)
    -- What an earlier run recorded comes before the policy.
    if run.jr:knows(ikey) then return judge(run, screened_entry(seq, meta, req, key), req, nil, key, ikey) end
  end
  local d = run.policy.evaluate(run.pol, req, run.ctx)
  if d.allow and d.verdict == "allow" and not run.keep_trails then return req, key end
  judge(run, screened_entry(seq, meta, req, key), req, nil, key, ikey, d)
end

-- Hands the waiting chunk to the pipeline: its plain request tables and
-- normalized requests (a manifest's) are validated and queued in C, with no
-- Lua table for them; any other input, and an item the journal knows, is
-- looked at here, in its place in the chunk. With a policy, each item's
-- decision is taken first, and only those allowed as they are stay in the
-- chunk (claimed and looked up already, with the journal keys made for it).
local function flush(run, chunk)
  local items, ids, keys = chunk.items, run.ids, nil
  if run.pol then
    keys = run.jr and chunk.keys
    for k = 1, chunk.n do
      local req, key = screened(run, items[k], chunk.metas[k] or nil, chunk.first + k - 1)
      items[k] = req or false
      if keys then keys[k] = key or false end
    end
    ids = false
  end
  local from, pipe = 1, run.pipe
  while from <= chunk.n do
    local problems, stop = pipe:add_inputs(items, chunk.metas, from, chunk.n, chunk.first, ids, keys)
    if problems then refused(run, chunk, problems) end
    if not stop then break end
    one(run, items[stop], chunk.metas[stop] or nil, chunk.first + stop - 1)
    from = stop + 1
  end
  chunk.n = 0
end

--- A chunk of items waiting for the pipeline (one per Run).
function M.chunk()
  return { n = 0, first = 0, items = {}, metas = {}, keys = {} }
end

--- Pull up to `max` items from the source into the run. Unless something
-- must see every item (an audit log, a hook, entries kept in memory; see
-- `run.fast`) they go to the pipeline a chunk at a time; else each is
-- looked at here.
-- @return the number of items pulled; `run.exhausted` is set when the
--   source has ended
function M.pull(run, max)
  local chunk, source = run.chunk, run.source
  local fast, seq, n = run.fast, run.seq, 0
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
