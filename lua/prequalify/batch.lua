--- The batch runner: many pre-qualifications through the engine's
-- submit/poll interface at a bounded concurrency, over reused connections.
--
-- Each item is validated, looked up in the journal (done in an earlier run?),
-- run through the policy, and sent. Failures that the retry rules allow
-- (`not_sent`, 429, 503 with Retry-After) wait in a timer queue while the
-- other items go on; an `unknown` outcome is never resent unless the caller
-- sets `retry_unknown`. A 401 makes one re-authentication for the whole
-- wave of requests that carried the old token. SIGINT/SIGTERM stop new
-- submissions and let in-flight requests finish; a second signal ends the
-- process at once. The run returns a report (see `prequalify.report`).
-- @module prequalify.batch
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local options = require "prequalify.options"
local request = require "prequalify.request"
local response = require "prequalify.response"
local retry = require "prequalify.retry"
local journal_mod = require "prequalify.journal"
local report_mod = require "prequalify.report"
local progress_mod = require "prequalify.progress"

local M = {}

local Request = request.Request
local prepare, wire = core.prepare, core.wire
local common_code = response.common_code

M.DEFAULT_CONCURRENCY = 8
M.MAX_CONCURRENCY = 1024
-- Longest single wait in poll or sleep, so that signals and the deadline
-- are noticed promptly (seconds).
local TICK = 0.2
-- Items pulled (and finished without a request, e.g. denied) per loop turn
-- before the loop polls again.
local PULL_MAX = 256
-- Done records reach the disk at least this often (seconds); intents are
-- always synced before their requests leave.
local SYNC_INTERVAL = 0.05
-- With a journal, each wave of submissions costs one fsync; so that waves
-- are not one request each, the loop refills only when a quarter of the
-- slots are free, or GROUP_WAIT seconds after the last wave.
local GROUP_WAIT = 0.005

local OPTIONS = {
  concurrency = "number", policy = "function|table", ctx = "table", journal = "string",
  on_result = "function", progress = "boolean|function|string", deadline = "number",
  retry_unknown = "boolean", retry_failed = "boolean", report = "string", audit = "string",
  keep_items = "boolean", signals = "boolean", total = "number", trails = "boolean",
}

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = field })
end

local function check_options(opts)
  local ok, err = options.check(opts, OPTIONS, "batch")
  if not ok then return nil, err end
  local c = opts.concurrency
  if c ~= nil and (math.type(c) ~= "integer" and c ~= math.floor(c) or c < 1 or c > M.MAX_CONCURRENCY) then
    return invalid("concurrency", "concurrency must be a whole number from 1 to " .. M.MAX_CONCURRENCY)
  end
  if opts.deadline ~= nil and (opts.deadline ~= opts.deadline or opts.deadline <= 0) then
    return invalid("deadline", "deadline must be > 0 seconds")
  end
  if type(opts.progress) == "string" and opts.progress ~= "plain" and opts.progress ~= "tty" then
    return invalid("progress", "progress must be true, false, \"plain\", \"tty\" or a function")
  end
  return true
end

-- The input as a pull function returning `value, meta` (nil at the end),
-- its size when known, and whether it is a Lua array.
local function make_source(items, want_total)
  local t = type(items)
  if t == "function" then return items, nil, false end
  if t == "table" then
    local mt = getmetatable(items)
    if mt and mt.__call then
      local total
      if want_total and type(items.count) == "function" then total = items:count() end
      return function() return items() end, total, false
    end
    local i, n = 0, #items
    return function()
      if i >= n then return nil end
      i = i + 1
      return items[i]
    end, n, true
  end
  error("client:batch: expected an array of requests, an iterator function or a manifest, got " .. t, 3)
end

-- The fields of a request that a report or journal shows (no derived ones).
local function summary(req)
  return {
    dn = req.dn, user = req.user, data = req.data, algorithm = req.algorithm,
    digest_length = req.digest_length, hours = req.hours, single_use = req.single_use or false,
    comment = req.comment,
  }
end

local function error_summary(err, secrets)
  if not err then return nil end
  return {
    kind = err.kind, message = errors.redact(err.message, secrets), outcome = err.outcome,
    status = err.status, result = err.result, result_name = err.result_name,
    retry_after = err.retry_after, field = err.field, curl_code = err.curl_code,
  }
end

-- Min-heap of jobs by `due` time (retries waiting for their backoff).
local function heap_push(h, job)
  local i = #h + 1
  h[i] = job
  while i > 1 do
    local parent = i // 2
    if h[parent].due <= h[i].due then break end
    h[parent], h[i] = h[i], h[parent]
    i = parent
  end
end

local function heap_pop(h)
  local n = #h
  local top = h[1]
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and h[l].due < h[m].due then m = l end
    if r <= n and h[r].due < h[m].due then m = r end
    if m == i then break end
    h[m], h[i] = h[i], h[m]
    i = m
  end
  return top
end

local function policy_module()
  local ok, policy = pcall(require, "prequalify.policy")
  if not ok then error("client:batch: a policy was given but prequalify.policy cannot be loaded: " .. policy, 3) end
  return policy
end

-- A `policy` error for a denied decision.
local function denial(policy, d)
  local make = policy.denial or policy.to_error
  if make then return make(d) end
  return errors.new("policy", "denied by policy: " .. (d.reason or "denied"), { trail = d.trail, decision = d })
end

--- Run a batch.
-- @param t the client's transport (`prequalify.transport`)
-- @param items an array of request tables, an iterator function returning
--   `req[, meta]` (or `false, err` for a bad input) and nil at the end, or a
--   reader from `prequalify.manifest`
-- @tparam[opt] table opts see docs/BATCH.md: `concurrency` (8), `policy`,
--   `ctx`, `journal`, `on_result(entry, res, err)`, `progress`, `deadline`
--   (seconds), `retry_unknown` (false), `retry_failed` (false), `report`
--   (path of the JSON report), `audit` (path of the audit log),
--   `keep_items`, `signals` (true), `total`, `trails` (false: the report
--   keeps the trails of denied and adjusted items only)
-- @return the report; or nil and an `invalid` error when the run could not
--   start (bad option, journal locked)
function M.run(t, items, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("client:batch: expected an options table as second argument, got " .. type(opts), 2)
  end
  opts = opts or {}
  local ok, oerr = check_options(opts)
  if not ok then return nil, oerr end

  local concurrency = math.tointeger(opts.concurrency or M.DEFAULT_CONCURRENCY)
  local retry_unknown = opts.retry_unknown
  if retry_unknown == nil then retry_unknown = false end
  local retry_failed = opts.retry_failed or false
  local pol = opts.policy
  local policy = pol and policy_module()
  local ctx = opts.ctx or {}
  local on_result = opts.on_result
  local keep_trails = opts.trails
  local use_signals = opts.signals ~= false
  local engine = t.engine
  local url = t:url(t.prequalify_path)

  -- Without a policy, a journal or an audit log nothing reads the
  -- normalized request of an item, only its summary and body.
  local lite = not pol and not opts.journal and not opts.audit
  local want_total = opts.total == nil and opts.progress ~= nil and opts.progress ~= false
  local source, total, is_array = make_source(items, want_total)
  total = opts.total or total

  local jr
  if opts.journal then
    local jerr
    jr, jerr = journal_mod.open(opts.journal)
    if not jr then return nil, jerr end
  end
  local audit
  if opts.audit then
    local aerr
    audit, aerr = report_mod.audit(opts.audit)
    if not audit then
      if jr then jr:close() end
      return nil, errors.new("invalid", aerr, { field = "audit" })
    end
  end
  if jr and jr.torn > 0 then
    t:warn(string.format("journal %s: %d unreadable line(s) ignored (last at line %d; a crash while writing "
      .. "leaves one at the end)", opts.journal, jr.torn, jr.torn_line))
  end
  local keep = opts.keep_items
  if keep == nil then keep = is_array end
  local rep = report_mod.new{ keep_items = keep, total = total }
  rep.journal = opts.journal
  rep.concurrency = concurrency
  local prog = progress_mod.new(opts.progress, total)

  -- Run state.
  local t0 = core.monotonic()
  local deadline_at = opts.deadline and t0 + opts.deadline
  local inflight, n_inflight = {}, 0
  local ready, rhead, rtail = {}, 1, 0 -- FIFO of jobs to (re)send now
  local timers = {}                   -- heap of jobs waiting for a retry
  local seq = 0
  local exhausted, stopping, stop_reason = false, nil, nil
  local auth_epoch, auth_dead = 0, false
  local last_sync, last_wave = t0, t0
  local group_min = math.max(1, concurrency // 4)

  local function warn(msg) t:warn(msg) end
  local function emit(event) t:emit(event) end

  local function stop(why, reason)
    if not stopping then
      stopping = why
      stop_reason = reason
      emit{ event = "stopping", why = why, reason = reason, in_flight = n_inflight }
    end
  end

  local function finalize(entry, outcome, res, err, reason)
    entry.outcome = outcome
    entry.reason = reason or entry.reason
    if err then
      entry.error = error_summary(err, t:secrets())
      if err.result or (err.status and outcome ~= "denied") then
        entry.server = { status = err.status, result = err.result, result_name = err.result_name }
      end
    end
    if res then entry.server = { status = res.status, result = res.result, result_name = res.result_name } end
    rep:add(entry)
    if audit then audit:outcome(entry) end
    if on_result then
      local cok, cerr = pcall(on_result, entry, res, err)
      if not cok then warn("on_result hook failed: " .. tostring(cerr)) end
    end
    if prog.mode ~= "off" then prog.update(rep.counts, { in_flight = n_inflight, stopping = stopping }) end
  end

  local function journal_done(job, outcome, res, err)
    if not jr then return end
    local rec = { outcome = outcome, attempts = job.attempts, index = job.entry.index }
    if res then
      rec.status, rec.result, rec.result_name = res.status, res.result, res.result_name
    elseif err then
      rec.kind, rec.sent_outcome, rec.status = err.kind, err.outcome, err.status
      rec.result, rec.result_name = err.result, err.result_name
      rec.message = errors.redact(err.message, t:secrets())
    end
    local wok, werr = jr:done(job.key, rec)
    if not wok then stop("stopped", "journal write failed: " .. werr.message) end
  end

  -- Finish a job that leaves the run with `err` (or a skip).
  local function finish_job(job, outcome, res, err, reason)
    local e = job.entry
    local now = core.monotonic()
    e.attempts = job.attempts
    if job.t_first then
      e.started = job.t_first - t0
      e.elapsed = now - job.t_first
    end
    e.server_time = job.server_time
    finalize(e, outcome, res, err, reason)
  end

  -- A job that will not be sent again because the run is stopping.
  local function abandon(job)
    local last = job.last_err
    if last and last.outcome == "unknown" then
      journal_done(job, "unknown", nil, last)
      finish_job(job, "unknown", nil, last)
    else
      finish_job(job, "skipped", nil, last, "not sent: " .. (stop_reason or stopping))
    end
  end

  -- Resumed from the journal: report what an earlier run recorded.
  local function resumed(entry, rec)
    entry.resumed = true
    entry.attempts = rec.attempts
    if rec.outcome == "approved" then
      local res = { ok = true, status = rec.status, result = rec.result, result_name = rec.result_name,
                    resumed = true }
      finalize(entry, "approved", res, nil, "recorded by an earlier run")
    else
      local kind = errors.KINDS[rec.kind] and rec.kind or "transport"
      local err = errors.new(kind, tostring(rec.message or "recorded by an earlier run"), {
        outcome = rec.sent_outcome or (rec.outcome == "unknown" and "unknown" or "rejected"),
        status = rec.status, result = rec.result, result_name = rec.result_name,
      })
      finalize(entry, rec.outcome == "unknown" and "unknown" or "failed", nil, err,
        "recorded by an earlier run")
    end
  end

  -- Pull one input item; returns a job to send, or nil (finished at once,
  -- or the input is exhausted).
  local function pull()
    local v, meta = source()
    if v == nil then
      exhausted = true
      return nil
    end
    seq = seq + 1
    -- Constructors name the fields set later (as nil) so that the table is
    -- allocated at its final size once, not grown field by field.
    local entry = { index = seq, request = nil, outcome = nil, attempts = nil, started = nil, elapsed = nil,
                    server_time = nil, server = nil, key = nil }
    if type(meta) == "table" and not errors.is(meta) then
      entry.line, entry.file, entry.source = meta.line, meta.file, meta.source
    end
    if v == false or type(v) ~= "table" then
      local err = errors.is(meta) and meta
        or errors.new("invalid", "item " .. seq .. " is a " .. type(v) .. ", expected a table of request fields")
      entry.line, entry.source = err.line, err.source
      entry.file = err.file or err.path
      finalize(entry, "failed", nil, err)
      return nil
    end
    local req, summ, body
    if getmetatable(v) == Request then
      req, summ, body = v, summary(v), wire(v)
    else
      -- Validation, the report's summary and the wire body in one C call.
      req, summ, body = prepare(v, lite)
      if req == nil then
        finalize(entry, "failed", nil, errors.new("invalid", summ, { field = body }))
        return nil
      end
      if req then setmetatable(req, Request) end
    end
    entry.request = summ
    -- The key (SHA-256 of the fields) ties an item to its journal and audit
    -- records; without either nothing reads it, and hashing is a tenth of
    -- an item's cost.
    local key, ikey
    if jr or audit then
      key, ikey = journal_mod.key(req)
      entry.key = key
    end
    if jr then
      local first, st, rec = jr:claim(key, ikey, seq)
      if first then
        finalize(entry, "skipped", nil, nil, "duplicate of item " .. first .. " (same fields)")
        return nil
      end
      if st == "done" then
        local again = (rec.outcome == "unknown" and retry_unknown)
          or (rec.outcome == "failed" and retry_failed and rec.sent_outcome ~= "unknown")
        if not again then
          resumed(entry, rec)
          return nil
        end
        entry.previous = rec.outcome
      elseif st == "intent" then
        if not retry_unknown then
          entry.resumed = true
          local err = errors.new("transport", "sent by an earlier run that recorded no reply; "
            .. "not resent (retry_unknown resends it)", { outcome = "unknown" })
          finalize(entry, "unknown", nil, err, "intent without done in the journal")
          return nil
        end
        entry.previous = "unknown"
      end
    end
    local send = req
    if pol then
      local d = policy.evaluate(pol, req, ctx)
      if audit then audit:decision(entry, d) end
      -- A trail is built when it is read (several times the cost of the
      -- decision): the report keeps those that explain something, the
      -- audit log every one.
      if not d.allow then
        entry.trail = d.trail
        finalize(entry, "denied", nil, denial(policy, d), d.reason)
        return nil
      end
      send = d.request or req
      if d.verdict == "adjust" then
        entry.trail = d.trail
        entry.sent = summary(send)
      elseif keep_trails then
        entry.trail = d.trail
      end
    end
    if send ~= req then
      local eerr
      body, eerr = request.encode(send)
      if not body then
        finalize(entry, "failed", nil, eerr)
        return nil
      end
    end
    return { entry = entry, key = key, req = send, body = body, attempts = 0, reauths = 0,
             t_first = nil, epoch = nil, server_time = nil }
  end

  -- The engine copies what it needs at submit: one request table serves
  -- every submit, and one headers table every request with the same token.
  local sub = { method = "POST", url = url }
  local function submit(job)
    local headers, herr = t:headers(true)
    if not headers then
      -- No credentials at all: every other item would fail the same way.
      if jr then jr:attempt(job.key, job.attempts + 1, herr) end
      stop("stopped", "credentials could not be obtained: " .. herr.message)
      finish_job(job, "failed", nil, herr)
      return
    end
    job.attempts = job.attempts + 1
    job.epoch = auth_epoch
    local now = core.monotonic()
    sub.headers, sub.body = headers, job.body
    local id, msg = engine:submit(sub)
    sub.body = nil
    if not id then
      local err = errors.new("invalid", errors.redact(msg, t:secrets()), { field = "headers" })
      journal_done(job, "failed", nil, err)
      finish_job(job, "failed", nil, err)
      return
    end
    job.t_first = job.t_first or now
    inflight[id] = job
    n_inflight = n_inflight + 1
    rep.requests = rep.requests + 1
    if t.on_event then
      emit{ event = "request", what = "batch", method = "POST", url = url, attempt = job.attempts,
            index = job.entry.index, body_bytes = #job.body }
    end
  end

  local function requeue_now(job)
    rtail = rtail + 1
    ready[rtail] = job
  end

  local function dequeue()
    if rhead > rtail then return nil end
    local job = ready[rhead]
    ready[rhead] = nil
    rhead = rhead + 1
    return job
  end

  local function on_reply(job, r)
    if not on_result and not t.on_event then
      -- Nothing asks for the success table: a common success goes straight
      -- to the entry (what finalize would copy from the table).
      local code, name = common_code(r)
      if code then
        local server = { status = r.status, result = code, result_name = name }
        job.server_time = r.elapsed
        journal_done(job, "approved", server)
        job.entry.server = server
        finish_job(job, "approved")
        return
      end
    end
    local res, err = response.common_success(r)
    if not res then res, err = response.classify(r, t:secrets()) end
    job.server_time = r.elapsed
    if t.on_event then
      emit{ event = "response", what = "batch", index = job.entry.index, attempt = job.attempts,
            status = r.status, elapsed = r.elapsed, ok = res ~= nil, kind = err and err.kind,
            outcome = err and err.outcome, new_connections = r.new_connections }
    end
    if res then
      res.attempts = job.attempts
      journal_done(job, "approved", res)
      finish_job(job, "approved", res)
      return
    end
    err.attempts = job.attempts
    job.last_err = err
    if err.kind == "auth" and err.status == 401 and job.reauths < 2 and not auth_dead then
      -- A 401 means the server did nothing. One re-authentication serves
      -- every request that carried the old token.
      local again = job.epoch < auth_epoch
      if not again and t:unauthorized() then
        auth_epoch = auth_epoch + 1
        again = true
        emit{ event = "reauth", what = "batch", epoch = auth_epoch }
      end
      if again and not stopping then
        if jr then jr:attempt(job.key, job.attempts, err) end
        job.reauths = job.reauths + 1
        job.attempts = job.attempts - 1
        requeue_now(job)
        return
      end
      if not again then
        auth_dead = true
        stop("stopped", "the server rejected the credentials (HTTP 401)")
      end
    end
    local now = core.monotonic()
    local delay
    if not stopping then delay = retry.delay(err, job.attempts, t.settings, retry_unknown) end
    if delay and deadline_at and now + delay >= deadline_at then delay = nil end
    if delay then
      if jr and err.outcome ~= "unknown" then jr:attempt(job.key, job.attempts, err) end
      job.due = now + delay
      heap_push(timers, job)
      emit{ event = "retry", what = "batch", index = job.entry.index, attempt = job.attempts, delay = delay,
            kind = err.kind, outcome = err.outcome, status = err.status }
      return
    end
    local outcome = err.outcome == "unknown" and "unknown" or "failed"
    journal_done(job, outcome, nil, err)
    finish_job(job, outcome, nil, err)
  end

  local drained = false
  local function loop()
    while true do
      local now = core.monotonic()
      if use_signals and not stopping and core.signals_pending() > 0 then
        local _, name = core.signals_pending()
        stop("interrupted", "interrupted by " .. (name or "a signal"))
      end
      if deadline_at and not stopping and now >= deadline_at then
        stop("deadline", string.format("deadline of %g s reached", opts.deadline))
      end
      if stopping and not drained then
        -- Waiting retries are not sent; in-flight requests finish.
        drained = true
        for job in dequeue do abandon(job) end
        while #timers > 0 do abandon(heap_pop(timers)) end
      end
      while #timers > 0 and timers[1].due <= now do requeue_now(heap_pop(timers)) end

      -- The next wave: due retries first, then new items.
      local wave, room, pulls = {}, concurrency - n_inflight, 0
      local grouping = jr and n_inflight > 0 and room < group_min and now - last_wave < GROUP_WAIT
      if grouping then room = 0 end
      while #wave < room and not stopping do
        local job
        if rhead <= rtail then
          job = dequeue()
        elseif exhausted or #timers >= concurrency or pulls >= PULL_MAX then
          break
        else
          pulls = pulls + 1
          job = pull()
        end
        if job then wave[#wave + 1] = job end
      end

      if jr then
        for _, job in ipairs(wave) do
          local wok, werr = jr:intent(job.key, job.req, job.attempts + 1)
          if not wok then
            stop("stopped", "journal write failed: " .. werr.message)
            break
          end
        end
        if #wave > 0 or (jr:unsynced() > 0 and (n_inflight == 0 or now - last_sync >= SYNC_INTERVAL)) then
          local sok, serr = jr:sync()
          last_sync = now
          if not sok then stop("stopped", "journal write failed: " .. serr.message) end
        end
        if stopping == "stopped" and stop_reason:find("^journal") then
          for _, job in ipairs(wave) do finish_job(job, "skipped", nil, nil, "not sent: " .. stop_reason) end
          wave = {}
        end
      end
      if #wave > 0 then last_wave = now end
      for _, job in ipairs(wave) do
        if stopping then
          finish_job(job, "skipped", nil, job.last_err, "not sent: " .. (stop_reason or stopping))
        else
          submit(job)
        end
      end

      if n_inflight == 0 and rhead > rtail and #timers == 0 and (exhausted or stopping) then break end

      if n_inflight > 0 then
        local wait = TICK
        if pulls >= PULL_MAX then wait = 0 end
        if grouping then wait = math.min(wait, math.max(0, last_wave + GROUP_WAIT - now)) end
        if #timers > 0 then wait = math.min(wait, math.max(0, timers[1].due - now)) end
        if deadline_at and not stopping then wait = math.min(wait, math.max(0, deadline_at - now)) end
        local results = engine:poll(wait)
        for _, r in ipairs(results) do
          local job = inflight[r.id]
          if job then
            inflight[r.id] = nil
            n_inflight = n_inflight - 1
            on_reply(job, r)
          end
        end
      elseif #timers > 0 and rhead > rtail then
        local wait = math.min(TICK, math.max(0, timers[1].due - now))
        if deadline_at then wait = math.min(wait, math.max(0, deadline_at - now)) end
        if wait > 0 then core.sleep(wait) end
      end
      if prog.mode ~= "off" then prog.tick(rep.counts, { in_flight = n_inflight, stopping = stopping }) end
    end
  end

  if use_signals then
    local sok, serr = core.signals_install()
    if not sok then
      warn(serr .. "; SIGINT will not stop the batch gracefully")
      use_signals = false
    end
  end
  local lok, lerr = xpcall(loop, debug.traceback)
  if use_signals then core.signals_restore() end

  local status = stopping == nil and "complete" or stopping
  rep:finish(status, stop_reason)
  if jr then
    local c = rep.counts
    local jok, jerr = jr:close{ status = status, approved = c.approved, failed = c.failed,
                                unknown = c.unknown, denied = c.denied, skipped = c.skipped }
    if not jok and lok then
      rep.journal_error = jerr.message
      warn(jerr.message)
    end
  end
  if audit then audit:close() end
  if not lok then error(lerr, 0) end
  prog.finish(rep.counts, { in_flight = 0, stopping = stopping })
  if opts.report then
    local wok, werr = rep:write_json(opts.report)
    if not wok then
      rep.report_error = werr
      warn(werr)
    end
  end
  return rep
end

return M
