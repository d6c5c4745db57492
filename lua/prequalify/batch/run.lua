--- A batch Run: one object that carries a batch from its first item to its
-- report, one `step` at a time. Each step checks signals and the deadline,
-- moves due retries and new items into the C pipeline (`core.pipeline`,
-- csrc/pq_pipeline.h), lets the pipeline send, wait and finish the common
-- successes, and decides what it hands back (`prequalify.batch.reply`).
-- `client:batch` is a loop of `step` (see `prequalify.batch`); a host's
-- event loop drives the same Run through `pollfd`, `timeout` and `step(0)`
-- (`client:start_batch`, docs/EMBEDDING.md).
-- @module prequalify.batch.run
local core = require "prequalify.core"
local report = require "prequalify.report"
local results = require "prequalify.results"
local entries = require "prequalify.batch.entry"
local item = require "prequalify.batch.item"
local reply = require "prequalify.batch.reply"
local timers = require "prequalify.batch.timers"

local M = {}

-- Items pulled (and finished without a request, e.g. denied) per step
-- before the step waits for replies.
M.PULL_MAX = 256
-- Longest a host may wait between steps while signals are handled, so
-- that a SIGINT is noticed promptly (seconds).
M.SIGNAL_TICK = 0.2

local Run = {}
Run.__index = Run
Run.__name = "prequalify.batch.run"

local monotonic = core.monotonic

--- A new Run (see `prequalify.batch.start`, which checks the options).
-- @param t the transport
-- @tparam table c the run's parts: `source`, `total`, `concurrency`,
--   `opts`, `jr` (journal), `audit`, `rep` (report), `prog` (progress),
--   `policy` (the module, with a policy)
function M.new(t, c)
  local opts = c.opts
  local self = setmetatable({
    t = t, opts = opts, source = c.source, jr = c.jr, audit = c.audit, rep = c.rep, prog = c.prog,
    policy = c.policy, pol = opts.policy, ctx = opts.ctx or {}, on_result = opts.on_result,
    keep_trails = opts.trails, retry_unknown = opts.retry_unknown or false,
    retry_failed = opts.retry_failed or false, use_signals = opts.signals ~= false,
    allow_reapproval = opts.allow_reapproval or false, ids = core.idset(),
    concurrency = c.concurrency, seq = 0, chunk = item.chunk(), jobs = {}, timers = timers.new(),
    auth_epoch = 0, auth_dead = false, approved_seen = 0, exhausted = false, finished = false,
    -- Without a policy, a journal or an audit log nothing reads the
    -- normalized request of an item, only its summary and body.
    lite = not opts.policy and not c.jr and not c.audit, yield = opts.yield,
  }, Run)
  self.t0 = monotonic()
  self.deadline_at = opts.deadline and self.t0 + opts.deadline
  -- An item the pipeline finishes alone leaves no Lua table behind: only
  -- when nothing asks to see each item (hooks, events, an audit log, kept
  -- entries, a progress function).
  self.fast = c.rep.spool ~= nil and not opts.on_result and not t.on_event and not c.audit
    and c.prog.mode ~= "fn"
  self.url = t:url(t.prequalify_path)
  self.pipe = core.pipeline(t.engine, {
    concurrency = c.concurrency, url = self.url, journal = c.jr and c.jr:writer(),
    spool = self.fast and c.rep.spool or nil, success_name = results.names[1], t0 = self.t0,
    events = t.on_event ~= nil,
  })
  self.fd = self.pipe:pollfd()
  if self.use_signals then
    local ok, err = core.signals_install()
    if not ok then
      self:warn(err .. "; SIGINT will not stop the batch gracefully")
      self.use_signals = false
    end
  end
  return self
end

function Run:warn(msg) self.t:warn(msg) end
function Run:emit(event) self.t:emit(event) end
function Run:secrets() return self.t:secrets() end
function Run:explain(err) return self.t:explain(err) end

--- Start stopping: no new requests; in-flight ones finish.
-- @tparam string why `interrupted`, `deadline` or `stopped`
-- @tparam string reason what the report and the summary say
-- @tparam[opt] string cause `"journal"` when a journal write failed
function Run:stop(why, reason, cause)
  if self.stopping then return end
  self.stopping, self.stop_reason, self.stop_cause = why, reason, cause
  local _, _, _, in_flight = self.pipe:counts()
  self:emit{ event = "stopping", why = why, reason = reason, in_flight = in_flight }
end

--- Stop at the caller's request, as the first SIGINT does: nothing new is
-- sent, requests in flight finish; the status is `interrupted`.
-- @tparam[opt] string reason
function Run:cancel(reason)
  self:stop("interrupted", reason or "cancelled by the caller")
end

--- Record an item's outcome: report, audit log, `on_result`, progress.
function Run:finalize(e, outcome, res, err, reason)
  entries.conclude(e, outcome, res, err, reason, self:secrets())
  -- A report that cannot keep its entries stops the run, as the journal does.
  local added, serr = self.rep:add(e)
  if not added then self:stop("stopped", serr) end
  if self.audit then self.audit:outcome(e) end
  if self.on_result then
    local ok, cerr = pcall(self.on_result, e, res, err)
    if not ok then self:warn("on_result hook failed: " .. tostring(cerr)) end
  end
  if self.prog.mode ~= "off" then self.prog.update(self.rep.counts, self:progress_extra()) end
end

function Run:progress_extra()
  local _, _, _, in_flight = self.pipe:counts()
  return { in_flight = in_flight, stopping = self.stopping }
end

--- Hand a prepared item to the pipeline.
function Run:send(e, key, body, shown)
  local keep = not self.fast or e.trail ~= nil
  local slot = self.pipe:add(e.index, body, key, shown, keep, e.line, e.file, e.source, e.previous)
  if keep then
    self.jobs[slot] = { slot = slot, entry = e, key = key, attempts = 0, reauths = 0, bytes = #body }
  end
end

--- The job of a slot: kept since `send`, or made from the pipeline's copy
-- of the entry the first time the pipeline hands the item back.
function Run:job(slot)
  local job = self.jobs[slot]
  if not job then
    local e = report.decode_record(self.pipe:entry(slot))
    e.index = math.tointeger(e.index)
    job = { slot = slot, entry = e, key = e.key, attempts = 0, reauths = 0 }
    self.jobs[slot] = job
  end
  return job
end

--- The item leaves the run with this outcome (journal written by the caller).
function Run:finish_job(job, outcome, res, err, reason)
  local e = job.entry
  e.attempts = job.attempts
  if job.t_first then
    e.started = job.t_first - self.t0
    e.elapsed = monotonic() - job.t_first
  end
  e.server_time = job.server_time
  self.jobs[job.slot] = nil
  self.pipe:drop(job.slot)
  self:finalize(e, outcome, res, err, reason)
end

--- Write an item's `done` record; a failure stops the run.
function Run:journal_done(job, outcome, res, err)
  if not self.jr then return end
  local rec = entries.done_record(outcome, job.attempts, job.entry.index, res, err, self:secrets())
  local ok, werr = self.jr:done(job.key, rec)
  if not ok then self:stop("stopped", "journal write failed: " .. werr.message, "journal") end
end

-- A job that will not be sent again because the run is stopping.
function Run:abandon(job)
  local last = job.last_err
  if last and last.outcome == "unknown" then
    self:journal_done(job, "unknown", nil, last)
    self:finish_job(job, "unknown", nil, last)
  else
    -- The disk refused a journal write or sync: this item's intent may be on
    -- disk and it was never sent. Say so while we can, so that a resume sends
    -- it; if this fails too, the resume says it may not have been sent.
    if self.jr and self.stop_cause == "journal" then
      self.jr:attempt(job.key, job.attempts + 1, { outcome = "not_sent", kind = "journal" })
    end
    self:finish_job(job, "skipped", nil, last, "not sent: " .. (self.stop_reason or self.stopping))
  end
end

-- Stopping: waiting retries and queued items are not sent.
function Run:drain()
  self.drained = true
  for slot in self.pipe.unqueue, self.pipe do self:abandon(self:job(slot)) end
  for job in self.timers.pop, self.timers do self:abandon(job) end
end

-- Signals and the deadline.
function Run:check_stop(now)
  if self.stopping then return end
  if self.use_signals and core.signals_pending() > 0 then
    local _, name = core.signals_pending()
    self:stop("interrupted", "interrupted by " .. (name or "a signal"))
  elseif self.deadline_at and now >= self.deadline_at then
    self:stop("deadline", string.format("deadline of %g s reached", self.opts.deadline))
  end
end

-- Due retries first, then new items, while the pipeline has room.
function Run:fill(now)
  local pipe, tq = self.pipe, self.timers
  local job = tq:pop_due(now)
  while job do
    pipe:resend(job.slot, job.attempts)
    job = tq:pop_due(now)
  end
  -- Each item pulled is queued or finished.
  local room = pipe:room()
  if tq:size() >= self.concurrency or self.exhausted then return 0 end
  return item.pull(self, math.min(room, M.PULL_MAX))
end

-- The longest the pipeline may wait for replies in this step.
function Run:wait_for(max_wait, now, pulls)
  local wait = max_wait
  if pulls >= M.PULL_MAX then wait = 0 end
  local due = self.timers:next_due()
  if due then wait = math.min(wait, math.max(0, due - now)) end
  if self.deadline_at and not self.stopping then wait = math.min(wait, math.max(0, self.deadline_at - now)) end
  return wait
end

-- Counts of what the pipeline finished alone.
function Run:count_fast()
  local approved, requests, fsyncs = self.pipe:counts()
  if self.jr then self.rep.journal_fsyncs = fsyncs end
  local n = approved - self.approved_seen
  local c = self.rep.counts
  if n > 0 then
    self.approved_seen = approved
    c.total, c.approved = c.total + n, c.approved + n
  end
  self.rep.requests = requests
end

-- One step of work (see `step`); true once every item has an outcome.
function Run:advance(max_wait)
  local now = monotonic()
  self:check_stop(now)
  if self.stopping and not self.drained then self:drain() end
  local pulls = 0
  if not self.stopping then pulls = self:fill(now) end
  local pipe = self.pipe
  local _, _, _, in_flight, ready = pipe:counts()
  if ready > 0 and not self.stopping and not reply.headers(self) then
    if self.stopping then self:drain() end
    _, _, _, in_flight, ready = pipe:counts()
  end
  if in_flight > 0 or ready > 0 or (self.jr and self.jr:unsynced() > 0) then
    local decisions, failure, sent = pipe:step(self:wait_for(max_wait, now, pulls))
    if sent then reply.sent(self, sent) end
    if failure then
      local reason = failure.message
      if failure.what == "spool" then
        self.rep:spool_failed(failure.cause)
        reason = self.rep.spool_error
      end
      self:stop("stopped", reason, failure.what)
    end
    if decisions then
      for _, d in ipairs(decisions) do reply.decide(self, d) end
    end
    self:count_fast()
  elseif self.timers:size() > 0 then
    local wait = self:wait_for(max_wait, now, pulls)
    if wait > 0 then core.sleep(wait) end
  end
  if self.prog.mode ~= "off" then self.prog.tick(self.rep.counts, self:progress_extra()) end
  return self:idle()
end

-- Nothing in flight, ready or waiting, and nothing more to send.
function Run:idle()
  local _, _, _, in_flight, ready = self.pipe:counts()
  return in_flight == 0 and ready == 0 and self.timers:size() == 0 and (self.exhausted or self.stopping)
end

--- Carry the batch on: do all the work that is ready (submissions,
-- replies, due retries, the journal), waiting at most `max_wait` seconds for
-- more. A finished run has written its journal summary and report.
-- @tparam number max_wait seconds the step may wait (0: never waits)
-- @return true once the batch is finished (then `report()` is its report)
function Run:step(max_wait)
  if self.finished then return true end
  -- A token refresh in this step waits through the caller's `yield`.
  if self.t:with_yield(self.yield, self.advance, self, max_wait) then
    self.finished = true
    self:wrap_up()
  end
  return self.finished
end

--- One descriptor that is readable whenever the Run has socket work (an
-- epoll set following the engine's sockets): watch it with the host's
-- loop, together with `timeout()`, then call `step(0)`.
function Run:pollfd() return self.fd end

--- The events to watch `pollfd()` for: `"r"` (the cqueues convention).
function Run.events() return "r" end

--- Seconds until the Run has timed work (libcurl's timer, a retry, the
-- journal's next sync, the deadline; 0: now), or nil when only `pollfd()`
-- can wake it. While signals are handled it is at most `SIGNAL_TICK`.
function Run:timeout()
  if self.finished or (self.stopping and not self.drained) or self:idle() then return 0 end
  local pipe, tq = self.pipe, self.timers
  if not self.stopping and not self.exhausted and pipe:room() > 0 and tq:size() < self.concurrency then
    return 0
  end
  local t = pipe:timeout()
  local now = monotonic()
  local due = tq:next_due()
  if due then t = math.min(t or math.huge, math.max(0, due - now)) end
  if self.deadline_at and not self.stopping then t = math.min(t or math.huge, math.max(0, self.deadline_at - now)) end
  if self.use_signals then t = math.min(t or M.SIGNAL_TICK, M.SIGNAL_TICK) end
  return t
end

--- The report, once the run is finished (nil before).
function Run:report()
  if self.closed then return self.rep end
  return nil
end

--- Release the Run. Mid-batch it is cancel-then-finish (as the first
-- SIGINT: requests in flight finish, the journal and report are written),
-- waiting here for what is in flight. Idempotent.
-- @tparam[opt] boolean failed the driving loop raised: release at once,
--   without waiting, the progress line or the JSON report
-- @return the report
function Run:close(failed)
  if self.closed then return self.rep end
  if failed then return self:wrap_up(true) end
  if not self.finished then
    self.yield = nil -- nowhere to yield to: close waits
    self:cancel()
    repeat until self:step(M.SIGNAL_TICK)
  end
  return self.rep
end

function Run:__close(err)
  self:close(err ~= nil)
end

-- An abandoned Run: the pipeline stops its requests, the journal's lock
-- and the audit log are released (a resume reports what was in flight as
-- `unknown`), the signal handlers are restored.
function Run:__gc()
  if self.closed then return end
  self.closed = true
  if self.use_signals then core.signals_restore() end
  pcall(self.pipe.close, self.pipe)
  if self.jr then pcall(self.jr.close, self.jr) end
  if self.audit then pcall(self.audit.close, self.audit) end
end

-- End the run: status, journal summary, audit log; then (unless `failed`,
-- when the loop raised) the progress line's last word and the JSON report.
function Run:wrap_up(failed)
  if self.closed then return self.rep end
  self.closed = true
  if self.use_signals then core.signals_restore() end
  self:count_fast()
  self.pipe:close()
  local rep = self.rep
  local status = self.stopping == nil and "complete" or self.stopping
  rep:finish(status, self.stop_reason)
  if self.jr then
    local c = rep.counts
    local ok, err = self.jr:close{ status = status, approved = c.approved, failed = c.failed,
                                   unknown = c.unknown, denied = c.denied, skipped = c.skipped }
    if not ok then
      rep.journal_error = err.message
      self:warn(err.message)
    end
  end
  if self.audit then
    local ok, err = self.audit:close()
    if not ok then
      rep.audit_error = err
      self:warn(err)
    end
  end
  if failed then return rep end
  self.prog.finish(rep.counts, { in_flight = 0, stopping = self.stopping })
  if self.opts.report then
    local ok, err = rep:write_json(self.opts.report)
    if not ok then
      rep.report_error = err
      self:warn(err)
    end
  end
  if rep.spool_error then self:warn(rep:spool_note(self.opts.report)) end
  return rep
end

return M
