--- The batch report: counts by outcome and one entry per item, written as
-- JSON or told as a short summary. (The audit log is prequalify.batch.audit.)
--
-- Outcomes: `approved` (the server pre-qualified it), `denied` (the policy
-- said no; nothing sent), `failed` (invalid input, or the server certainly
-- did not act), `unknown` (sent, no usable answer: the server may have
-- acted; never resent unless asked) and `skipped` (not sent in this run:
-- interrupted, past the deadline, a duplicate, credentials rejected).
--
-- Entries stay in memory (`report.items`) when the batch input was a Lua
-- array; for an iterator or a manifest they are spooled to a temporary file
-- (in `$TMPDIR`, unlinked at once), so that memory stays flat, and read back
-- by `entries()` and `write_json`. When the disk refuses the spool, the
-- entries spooled so far stay readable, later ones are only counted, and
-- `spool_error` says so.
-- @module prequalify.report
local core = require "prequalify.core"
local spool = require "prequalify.spool"
local EXIT = require("prequalify.results").EXIT

local M = {}

M.OUTCOMES = { "approved", "denied", "failed", "unknown", "skipped" }

local json = require("cjson").new()
json.encode_invalid_numbers(false)

--- An entry as JSON text (see `prequalify.spool.encode`).
M.encode = spool.encode
local encode = spool.encode

--- An entry from the body of one spool record (see `prequalify.spool.decode`).
M.decode_record = spool.decode

local Report = {}
Report.__index = Report
Report.__name = "prequalify.report"

--- A new, empty report.
-- @tparam[opt] table opts `keep_items` (true: entries in `items`; false:
--   spooled to a temporary file), `total` (expected items, if known),
--   `spool_dir` (where the spool file goes: `$TMPDIR`, else /tmp)
-- @return the report, or nil and a message naming the spool file when it
--   cannot be created
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    status = "running", interrupted = false,
    counts = { total = 0, approved = 0, denied = 0, failed = 0, unknown = 0, skipped = 0,
               resumed = 0, invalid = 0 },
    expected = opts.total, requests = 0, started = core.time(),
    reasons = {}, nreasons = 0,
  }, Report)
  if opts.keep_items ~= false then
    self.items = {}
  else
    local dir = opts.spool_dir or os.getenv("TMPDIR")
    local f, path = spool.open(dir and dir ~= "" and dir or "/tmp")
    if not f then return nil, path end
    self.spool, self.spool_path = f, path
  end
  return self
end

--- The spool could not be written (`why`: the error): nothing more is
-- spooled, entries spooled so far stay readable, `spool_error` names the
-- file and the error, and `finish` counts the entries lost in `spool_lost`.
-- Called by `add` and by the batch run when the C pipeline's spool write
-- failed. Idempotent.
-- @tparam string why the error, e.g. "No space left on device"
function Report:spool_failed(why)
  if self.spool_error or not self.spool then return end
  self.spool_error = "report spool " .. self.spool_path .. ": cannot write it: " .. why
end

-- Up to this many distinct failure reasons are counted for the summary.
local MAX_REASONS = 32

local function note_reason(self, entry)
  local why = entry.error and entry.error.message or entry.reason
  if not why then return end
  why = why:gsub("^[^:]+:%d+: ", "") -- drop a manifest line prefix
  local r = self.reasons[why]
  if r then
    r.count = r.count + 1
  elseif self.nreasons < MAX_REASONS then
    self.nreasons = self.nreasons + 1
    self.reasons[why] = { count = 1, outcome = entry.outcome, first = entry.index }
  end
end

--- What to tell the user when the spool failed: the file and the error, how
-- many entries the report lacks, where the partial report is and which
-- journal has every outcome.
-- @tparam[opt] string path the JSON report's path, if one was written
-- @treturn string the message (nil when the spool did not fail)
function Report:spool_note(path)
  if not self.spool_error then return nil end
  return self.spool_error .. "; the report lacks " .. self.spool_lost .. " of its entries"
    .. (path and not self.report_error and "; the partial report is at " .. path or "")
    .. (self.journal and "; the journal " .. self.journal .. " has every outcome" or "")
end

--- Add one finished item.
-- @tparam table entry `index`, `outcome` and the details (see BATCH.md)
-- @return true; or nil and `spool_error` when the entry could not be spooled
--   (it is counted all the same)
function Report:add(entry)
  local c = self.counts
  c.total = c.total + 1
  c[entry.outcome] = (c[entry.outcome] or 0) + 1
  if entry.resumed then c.resumed = c.resumed + 1 end
  -- Denied now, approved by an earlier run: the server holds that approval.
  if entry.resumed and entry.outcome == "denied" then c.approved_earlier = (c.approved_earlier or 0) + 1 end
  if entry.terms then c.other_terms = (c.other_terms or 0) + 1 end
  if entry.error and entry.error.kind == "invalid" then c.invalid = c.invalid + 1 end
  if entry.outcome ~= "approved" then note_reason(self, entry) end
  if self.items then
    self.items[#self.items + 1] = entry
    return true
  end
  if not self.spool_error then
    if self.reading then
      self.spool:seek("end", 0)
      self.reading = false
    end
    local ok, err = spool.write(self.spool, entry)
    if ok then return true end
    self:spool_failed(tostring(err))
  end
  return nil, self.spool_error
end

--- Mark the run finished.
-- @tparam string status `complete`, `interrupted`, `deadline` or `stopped`
-- @tparam[opt] string reason why a run stopped early
function Report:finish(status, reason)
  self.status = status
  self.interrupted = status == "interrupted"
  self.reason = reason
  self.finished = core.time()
  self.elapsed = self.finished - self.started
  self.rate = self.elapsed > 0 and self.requests / self.elapsed or 0
  -- Always a number when the input's size is known (or the run is complete).
  self.not_reached = self.expected and math.max(0, self.expected - self.counts.total)
    or (status == "complete" and 0 or nil)
  if self.spool and not self.spool_error then
    local ok, err = self.spool:flush()
    if not ok then self:spool_failed(tostring(err)) end
  end
  if self.spool_error then
    local n = 0
    for _ in spool.entries(self.spool) do n = n + 1 end
    self.spool_lost = self.counts.total - n
  end
  return self
end

-- Entries from `next_entry` (in the order the items finished) put back in
-- input order by their `index`: an entry that finished before its turn
-- waits in `early` until the ones before it came, so memory holds only
-- the entries that finished out of order, not the whole report. An entry
-- without a numeric index passes through; after the last record, what is
-- still waiting (after a gap in the indexes) comes out sorted.
local function in_input_order(next_entry)
  local early, want, rest = {}, 1, nil
  return function()
    while not rest do
      local e = early[want]
      if e then
        early[want], want = nil, want + 1
        return e
      end
      e = next_entry()
      local i = e and type(e.index) == "number" and math.tointeger(e.index)
      if not e then
        rest = {}
        for k in pairs(early) do rest[#rest + 1] = k end
        table.sort(rest, function(a, b) return a > b end)
      elseif not i or i < want then
        return e
      elseif i == want then
        want = want + 1
        return e
      else
        early[i] = e
      end
    end
    local last = table.remove(rest)
    return last and early[last]
  end
end

--- Every entry, in input order (by `index`), whatever order they finished in.
-- @return an iterator of entry tables (it never fails; after `close` it
--   yields nothing)
function Report:entries()
  if self.items then
    local i = 0
    return in_input_order(function()
      i = i + 1
      return self.items[i]
    end)
  end
  -- After a write error nothing more is spooled: what was is read.
  if not self.spool_error then self.spool:flush() end
  self.reading = true
  return in_input_order(spool.entries(self.spool))
end

local HEAD_FIELDS = { "status", "interrupted", "reason", "counts", "expected", "not_reached", "requests",
                      "started", "finished", "elapsed", "rate", "journal", "concurrency", "spool_error",
                      "spool_lost" }

--- The report as one JSON document: `{status, counts, ..., items = [...]}`.
-- Written to a temporary file beside `path` and renamed, entry by entry.
-- When the disk refuses it, the temporary file (complete when only the rename
-- failed, partial otherwise) is left in place and the message says where.
-- @tparam string path where the report goes
-- @return true, or nil and a message naming the path and the error
function Report:write_json(path)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, "report " .. tostring(err) end
  local werr -- the first write error: f:write returns nil, message
  local function put(...) if not werr then werr = select(2, f:write(...)) end end
  put("{")
  for _, k in ipairs(HEAD_FIELDS) do
    if self[k] ~= nil then put(json.encode(k), ":", json.encode(self[k]), ",\n") end
  end
  put('"items":[')
  local first = true
  for entry in self:entries() do
    if werr then break end
    put(first and "\n" or ",\n", encode(entry))
    first = false
  end
  put("\n]}\n")
  local ok, cerr = f:close()
  werr = werr or (not ok and cerr)
  if not werr then
    local rok, rerr = os.rename(tmp, path)
    if rok then return true end
    return nil, "report " .. path .. ": cannot replace it: " .. tostring(rerr) .. "; the complete report is at " .. tmp
  end
  return nil, "report " .. path .. ": cannot write it: " .. tostring(werr) .. "; the partial report is at " .. tmp
end

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end

--- A short human summary (a few lines, no trailing newline).
-- @treturn string the summary; it never fails
function Report:summary()
  local c = self.counts
  local lines = {}
  local head = "prequalify batch " .. (self.status == "complete" and "complete" or self.status)
  if self.reason then head = head .. " (" .. self.reason .. ")" end
  if self.elapsed then
    head = head .. string.format(" in %.1f s, %s, %.1f/s", self.elapsed, plural(self.requests, "request"),
      self.rate or 0)
  end
  lines[1] = head
  local parts = {}
  for _, o in ipairs(M.OUTCOMES) do parts[#parts + 1] = c[o] .. " " .. o end
  local tail = ""
  if c.resumed > 0 then tail = " (" .. c.resumed .. " recorded by an earlier run)" end
  if self.not_reached then parts[#parts + 1] = self.not_reached .. " not reached" end
  lines[2] = "  " .. (self.expected and (c.total .. " of ") or "") .. plural(self.expected or c.total, "item") .. ": "
    .. table.concat(parts, ", ") .. tail
  if self.status and self.status ~= "complete" and self.not_reached ~= 0 then
    lines[#lines + 1] = "  " .. (self.not_reached and plural(self.not_reached, "item") or "the rest of the input")
      .. " not reached; "
      .. (self.journal and "run again with the same journal to resume" or "use a journal to resume such runs")
  end
  if (c.approved_earlier or 0) > 0 then
    lines[#lines + 1] = "  " .. plural(c.approved_earlier, "denied item") .. " " .. (c.approved_earlier == 1 and "was"
      or "were") .. " approved by an earlier run: the server still holds those approvals (nothing sent now)"
  end
  if c.unknown > 0 then
    lines[#lines + 1] = "  " .. plural(c.unknown, "item")
      .. " may have been pre-qualified (no usable reply); they were not resent - check before retrying"
  end
  local top = {}
  for why, r in pairs(self.reasons) do top[#top + 1] = { why = why, r = r } end
  table.sort(top, function(a, b)
    if a.r.count ~= b.r.count then return a.r.count > b.r.count end
    return a.r.first < b.r.first
  end)
  for i = 1, math.min(3, #top) do
    local why = top[i].why
    if #why > 120 then why = why:sub(1, 117) .. "..." end
    lines[#lines + 1] = string.format("  %dx %s: %s", top[i].r.count, top[i].r.outcome, why)
  end
  return table.concat(lines, "\n")
end

--- The exit code for this report, the mapping the command line uses
-- (`prequalify.results.EXIT`): 130 when interrupted; else 3 when an outcome
-- is unknown; else 4 when the run stopped early (deadline, rejected
-- credentials, a journal write failed) or its record is incomplete (the
-- report, its spool or the audit log could not be written, or the journal
-- not closed: `report_error`, `spool_error`, `audit_error`,
-- `journal_error`); else 1 when an item was denied, failed or
-- already approved with other terms, or there were no items; else 0.
-- @treturn integer the exit code; it never fails
-- @usage os.exit(report:exit_code())
function Report:exit_code()
  local c = self.counts
  if self.interrupted then return EXIT.INTERRUPTED end
  if c.unknown > 0 then return EXIT.UNKNOWN end
  if self.status ~= "complete" or self.report_error or self.spool_error or self.audit_error
    or self.journal_error then
    return EXIT.INCOMPLETE
  end
  if c.denied > 0 or c.failed > 0 or (c.other_terms or 0) > 0 or c.total == 0 then return EXIT.FAILED end
  return EXIT.OK
end

function Report:__tostring()
  return self:summary()
end

--- Release the spool file (entries are gone afterwards). Idempotent.
-- @return nothing; it never fails
function Report:close()
  if self.spool then
    self.spool:close()
    self.spool = nil
    self.items = self.items or {}
  end
end

return M
