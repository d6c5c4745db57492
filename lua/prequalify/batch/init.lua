--- The batch runner: many pre-qualifications at a bounded concurrency, over
-- reused connections.
--
-- Each item is validated, looked up in the journal (done in an earlier run?),
-- run through the policy, and handed to the C pipeline, which sends it,
-- recognises the common success and writes its journal and report records.
-- Failures that the retry rules allow (`not_sent`, 429, 503 with
-- Retry-After) wait in a timer queue while the other items go on; an
-- `unknown` outcome is never resent unless the caller sets `retry_unknown`.
-- A 401 makes one re-authentication for the whole wave of requests that
-- carried the old token. SIGINT/SIGTERM stop new submissions and let
-- in-flight requests finish; a second signal ends the process at once. The
-- run returns a report (see `prequalify.report`).
--
-- Parts: `batch.run` (the Run object and its `step`), `batch.item` (one
-- input item), `batch.reply` (what comes back), `batch.resume` (the journal
-- rules), `batch.source`, `batch.timers`, `batch.entry`.
-- @module prequalify.batch
local errors = require "prequalify.errors"
local options = require "prequalify.options"
local journal = require "prequalify.journal"
local report = require "prequalify.report"
local progress = require "prequalify.progress"
local source = require "prequalify.batch.source"
local run_mod = require "prequalify.batch.run"
local audit_log = require "prequalify.batch.audit"

local M = {}

M.DEFAULT_CONCURRENCY = 8
M.MAX_CONCURRENCY = 1024
-- Longest single wait in a step, so that signals and the deadline are
-- noticed promptly (seconds).
M.TICK = 0.2

local OPTIONS = {
  concurrency = "number", policy = "function|table", ctx = "table", journal = "string",
  on_result = "function", progress = "boolean|function|string", deadline = "number",
  retry_unknown = "boolean|table", retry_failed = "boolean", allow_reapproval = "boolean",
  report = "string", audit = "string",
  keep_items = "boolean", signals = "boolean", total = "number", trails = "boolean",
  yield = "function",
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
  for k, v in pairs(type(opts.retry_unknown) == "table" and opts.retry_unknown or {}) do
    if v ~= true or not (type(k) == "string" or math.type(k) == "integer") then
      return invalid("retry_unknown", "retry_unknown must be true or a set of keys and lines ({[key] = true})")
    end
  end
  if type(opts.progress) == "string" and opts.progress ~= "plain" and opts.progress ~= "tty" then
    return invalid("progress", "progress must be true, false, \"plain\", \"tty\" or a function")
  end
  return true
end

-- The journal and the audit log of a run; nil and an error when either
-- cannot be opened.
local function open_logs(t, opts)
  local jr, audit
  if opts.journal then
    local err
    jr, err = journal.open(opts.journal)
    if not jr then return nil, err end
    if jr.torn > 0 then
      t:warn(string.format("journal %s: %d unreadable line(s) ignored (last at line %d; a crash while "
        .. "writing leaves one at the end)", opts.journal, jr.torn, jr.torn_line))
    end
  end
  if opts.audit then
    local err
    audit, err = audit_log.open(opts.audit)
    if not audit then
      if jr then jr:close() end
      return nil, errors.new("invalid", err, { field = "audit" })
    end
  end
  return { jr = jr, audit = audit }
end

--- Start a batch: a Run to carry on with `run:step(max_wait)` until it
-- returns true; then `run:report()` is the report.
-- @param t the client's transport (`prequalify.transport`)
-- @param items an array of request tables, an iterator function returning
--   `req[, meta]` (or `false, err` for a bad input) and nil at the end, or a
--   reader from `prequalify.manifest`
-- @tparam[opt] table opts see `run`
-- @return the Run; or nil and an `invalid` error when the run could not
--   start (bad option, journal locked)
function M.start(t, items, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("client:batch: expected an options table as second argument, got " .. type(opts), 3)
  end
  opts = opts or {}
  local ok, oerr = check_options(opts)
  if not ok then return nil, oerr end
  -- The input's size, when it can be known, whatever the progress mode:
  -- the report counts what was not reached.
  local pull, total, is_array = source.new(items, opts.total == nil)
  if not pull then error("client:batch: " .. total, 3) end
  total = opts.total or total
  local keep = opts.keep_items
  if keep == nil then keep = is_array end
  local rep, serr = report.new{ keep_items = keep, total = total }
  if not rep then return nil, errors.new("invalid", serr) end
  local logs, lerr = open_logs(t, opts)
  if not logs then
    rep:close()
    return nil, lerr
  end
  local concurrency = math.tointeger(opts.concurrency or M.DEFAULT_CONCURRENCY)
  rep.journal = opts.journal
  rep.concurrency = concurrency
  return run_mod.new(t, {
    opts = opts, source = pull, concurrency = concurrency, jr = logs.jr, audit = logs.audit, rep = rep,
    prog = progress.new(opts.progress, total), policy = opts.policy and require("prequalify.policy"),
  })
end

--- Run a batch to its end.
-- @param t the client's transport
-- @param items see `start`
-- @tparam[opt] table opts see docs/BATCH.md: `concurrency` (8), `policy`,
--   `ctx`, `journal`, `on_result(entry, res, err)`, `progress`, `deadline`
--   (seconds), `retry_unknown` (false), `retry_failed` (false), `report`
--   (path of the JSON report), `audit` (path of the audit log),
--   `keep_items`, `signals` (true), `total`, `trails` (false: the report
--   keeps the trails of denied and adjusted items only), `yield` (`f(fd,
--   timeout)`, called where the run would block; see docs/EMBEDDING.md)
-- @return the report; or nil and an `invalid` error when the run could not
--   start (bad option, journal locked)
function M.run(t, items, opts)
  local run, err = M.start(t, items, opts)
  if not run then return nil, err end
  local f = opts and opts.yield
  local ok, lerr = xpcall(function()
    if f then
      -- Where the loop would block it hands the wait to the caller.
      while not run:step(0) do f(run:pollfd(), run:timeout()) end
    else
      repeat until run:step(M.TICK)
    end
  end, debug.traceback)
  local rep = run:close(not ok)
  if not ok then error(lerr, 0) end
  return rep
end

return M
