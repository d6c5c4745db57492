--- What the batch decides about an item the pipeline hands back: a reply
-- other than the common success (or any reply of an item the run keeps in
-- Lua), or a request the engine refused. The decision is the one of every
-- call loop (`retry.next`): repeat after a delay, re-authenticate once per
-- wave of 401s, or give up and report.
-- @module prequalify.batch.reply
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local response = require "prequalify.response"
local retry = require "prequalify.retry"

local M = {}

local common_code = response.common_code

--- Hand the pipeline the headers for the next wave (a token refreshed if
-- due; a new epoch after a re-authentication).
-- @return false when there are none (the run stops)
function M.headers(run)
  local h, err = run.t:headers(true)
  if not h then
    -- No credentials at all: every other item would fail the same way.
    local slot = run.pipe:unqueue()
    run:stop("stopped", "credentials could not be obtained: " .. err.message)
    if slot then
      local job = run:job(slot)
      if run.jr then run.jr:attempt(job.key, job.attempts + 1, err) end
      run:finish_job(job, "failed", nil, err)
    end
    return false
  end
  if h ~= run.headers or run.headers_epoch ~= run.auth_epoch then
    local ok, msg = run.pipe:headers(h, run.auth_epoch)
    if not ok then
      -- Refused before sending (CR, LF or NUL in a value): every item fails.
      local herr = errors.new("invalid", errors.redact(msg, run:secrets()), { field = "headers" })
      for slot in run.pipe.unqueue, run.pipe do
        local job = run:job(slot)
        job.attempts = job.attempts + 1
        run:journal_done(job, "failed", nil, herr)
        run:finish_job(job, "failed", nil, herr)
      end
      return false
    end
    run.headers, run.headers_epoch = h, run.auth_epoch
  end
  return true
end

--- Tell the `on_event` hook of the requests a step submitted.
-- @param run the Run
-- @param sent slot, attempt pairs, flat
function M.sent(run, sent)
  for i = 1, #sent, 2 do
    local job = run.jobs[sent[i]]
    run:emit{ event = "request", what = "batch", method = "POST", url = run.url, attempt = sent[i + 1],
              index = job.entry.index, body_bytes = job.bytes }
  end
end

-- What to fix when the server refuses the credentials.
local REFUSED = {
  [401] = "fix the token (it is missing, expired or revoked: --token-file, PREQUALIFY_TOKEN or the sign-in)",
  [403] = "fix the scope or role (the token needs scope codesign:approve, the user a role that may pre-qualify)",
}

-- A 401: one re-authentication serves every request that carried the old
-- token. True when the job was queued again.
local function reauthenticate(run, job, err)
  if job.reauths >= 2 or run.auth_dead then return false end
  local again = job.epoch < run.auth_epoch
  if not again and run.t:unauthorized() then
    run.auth_epoch = run.auth_epoch + 1
    again = true
    run:emit{ event = "reauth", what = "batch", epoch = run.auth_epoch }
  end
  if again and not run.stopping then
    if run.jr then run.jr:attempt(job.key, job.attempts, err) end
    job.reauths = job.reauths + 1
    job.attempts = job.attempts - 1
    run.pipe:resend(job.slot, job.attempts)
    return true
  end
  if not again then
    run.auth_dead = true
    run:stop("stopped", "the server rejected the credentials (HTTP 401): " .. REFUSED[401])
  end
  return false
end

-- A failure: retried after a delay, or the item's end.
local function failed(run, job, err)
  err.attempts = job.attempts
  job.last_err = err
  local action, delay
  if not run.stopping then
    action, delay = retry.next(err, job.attempts, run.t.settings,
      { retry_unknown = run.retry_unknown == true, reauths = job.reauths, max_reauths = 2 })
  end
  if action == "reauth" and reauthenticate(run, job, err) then return end
  if action == "retry" then
    local now = core.monotonic()
    if run.deadline_at and now + delay >= run.deadline_at then action = nil end
  end
  if action == "retry" then
    if run.jr and err.outcome ~= "unknown" then run.jr:attempt(job.key, job.attempts, err) end
    job.due = core.monotonic() + delay
    run.timers:push(job)
    run:emit{ event = "retry", what = "batch", index = job.entry.index, attempt = job.attempts, delay = delay,
              kind = err.kind, outcome = err.outcome, status = err.status }
    return
  end
  local outcome = err.outcome == "unknown" and "unknown" or "failed"
  local fix = err.outcome == "rejected" and REFUSED[err.status]
  -- A refusal of the credentials is recorded as `rejected`: the server did
  -- nothing, and a plain resume sends the item again once they are fixed.
  if fix then err.message = err.message .. "; " .. fix .. ", then re-run with the same journal to send it again" end
  run:journal_done(job, fix and "rejected" or outcome, nil, err)
  run:finish_job(job, outcome, nil, err, fix and "refused by the server (HTTP " .. err.status .. "): " .. fix)
end

--- Decide about one item the pipeline handed back.
-- @param run the Run
-- @param d the decision: the engine's result plus `slot`, `attempts`,
--   `epoch`, `t_first`; or `refused` (a message) instead of a result
function M.decide(run, d)
  local job = run:job(d.slot)
  job.attempts, job.epoch = d.attempts, d.epoch
  if d.t_first >= 0 then job.t_first = d.t_first end
  if d.refused then
    local err = errors.new("invalid", errors.redact(d.refused, run:secrets()), { field = "headers" })
    run:journal_done(job, "failed", nil, err)
    run:finish_job(job, "failed", nil, err)
    return
  end
  job.server_time = d.elapsed
  local events = run.t.on_event
  if not run.on_result and not events then
    -- Nothing asks for the success table: a common success goes straight
    -- to the entry (what finalize would copy from the table).
    local code, name = common_code(d)
    if code then
      local server = { status = d.status, result = code, result_name = name }
      run:journal_done(job, "approved", server)
      job.entry.server = server
      run:finish_job(job, "approved")
      return
    end
  end
  local res, err = response.classify(d, run:secrets())
  err = run:explain(err)
  if events then
    run:emit{ event = "response", what = "batch", index = job.entry.index, attempt = job.attempts,
              status = d.status, elapsed = d.elapsed, ok = res ~= nil, kind = err and err.kind,
              outcome = err and err.outcome, new_connections = d.new_connections }
  end
  if res then
    res.attempts = job.attempts
    run:journal_done(job, "approved", res)
    run:finish_job(job, "approved", res)
    return
  end
  failed(run, job, err)
end

return M
