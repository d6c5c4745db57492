--- The batch journal: an append-only JSON Lines file that makes a batch
-- crash-safe. Before a request is sent its `intent` is written; after the
-- reply, a `done` record with the outcome (or, for a failure that the retry
-- rules will repeat and that the server certainly did not act on, an
-- `attempt` record). Records reach the disk in small groups: every intent is
-- synced before its request leaves; a reply's record is handed to the kernel
-- at once and synced with the next group (within 50 ms). The batch pipeline
-- (csrc/pq_pipeline.c) writes the intents and the done records of common
-- successes in C, through `writer()`; this module opens, reads and closes the
-- journal and writes the other records.
--
-- On a re-run the last record of each item tells what to do: `done` - skip
-- it and report the recorded outcome; `intent` - the server may have acted,
-- report `unknown` and do not resend unless the caller opts in; `attempt` -
-- nothing happened, send it. Items are identified by `key(req)`, a SHA-256
-- of what the server matches at signing time (DN without regard to letter
-- case, data, user); hours, single-use and comment are the item's terms, kept
-- in its intent records. The journal holds requests and outcomes only:
-- never a token, password or header.
--
-- Format 2 (this one) keys items by identity; format 1 keyed them by all
-- their fields, terms included. A format 1 journal is refused with a message
-- that says so: its keys cannot tell which items are the same approval.
--
-- Record shapes (one JSON object per line):
--
--     {"type":"run","v":2,"time":1764185000.1,"event":"start"}
--     {"type":"intent","key":"...","attempt":1,"time":...,"dn":"...","user":"...","data":"...",
--      "hours":2,"single_use":false,"comment":"...","line":7,"index":7}
--     {"type":"attempt","key":"...","attempt":1,"outcome":"rejected","status":429}
--     {"type":"done","key":"...","outcome":"approved","attempts":1,"status":200,"result":1,...}
--     {"type":"done","key":"...","outcome":"approved","resolved":true,"note":"..."}  (journal resolve)
-- @module prequalify.journal
local core = require "prequalify.core"
local cjson = require "cjson"
local errors = require "prequalify.errors"

local M = {}

local request_key = core.request_key

M.VERSION = 2

local json = cjson.new()
json.encode_invalid_numbers(false)
json.decode_max_depth(8)

--- The stable key of a request: Base64 (no padding) of the SHA-256 of its
-- identity (DN folded to lower case, data, user), each length-prefixed so
-- that no two identities share a key.
-- @param req a normalized request
-- @return the key (text, as written in records), and a short form (its
--   first 64 bits as an integer) that the in-memory index uses to stay small
function M.key(req)
  -- SHA-256 over "prequalify-key-v2\0" and the length-prefixed fields, in
  -- the C core (core.request_key documents the exact bytes).
  return request_key(req)
end

-- A write, flush or fsync the disk refused.
local function disk_error(self, message)
  return errors.new("journal", message, { field = "journal", path = self.path })
end

local function short_key(key)
  local raw = core.b64decode(key .. string.rep("=", (4 - #key % 4) % 4))
  return raw and #raw >= 8 and (string.unpack("<i8", raw)) or nil
end

local Journal = {}
Journal.__index = Journal
Journal.__name = "prequalify.journal"

function Journal:__tostring()
  return string.format("prequalify.journal(%s, %d items known%s)", self.path, self.known,
    self.handle and "" or ", closed")
end

-- Reads an existing journal into the index: short key -> byte offset of
-- the item's last record (read back, decoded and checked against the full
-- key only when the item comes up), and into `intents`: short key -> offset
-- of its last intent (its terms), so that the index costs a few dozen bytes
-- an item: integers only, no string per item. The C handle learns the short
-- keys too (`know`): the batch pipeline passes over an item the journal has
-- never seen without asking this module.
local function read_index(self)
  local f = io.open(self.path, "rb")
  if not f then return true end
  local lineno, torn, pos = 0, 0, 0
  while true do
    local line = f:read("L")
    if not line then break end
    lineno = lineno + 1
    local ok, rec = pcall(json.decode, line)
    if ok and type(rec) == "table" and type(rec.key) == "string"
        and (rec.type == "intent" or rec.type == "attempt" or rec.type == "done") then
      local k = short_key(rec.key)
      if k then
        if self.index[k] == nil then
          self.known = self.known + 1
          self.handle:know(k)
        end
        self.index[k] = pos
        if rec.type == "intent" then self.intents[k] = pos end
        if rec.type == "intent" and rec.dn ~= nil then self.has_requests = true end
      end
    elseif ok and type(rec) == "table" and rec.type == "run" and rec.event == "start" and rec.v ~= M.VERSION then
      self.old_version = self.old_version or rec.v or "unknown"
    elseif not ok or type(rec) ~= "table" then
      -- A torn last line is what a crash during a write leaves: ignore it.
      torn = torn + 1
      self.torn_line = lineno
    end
    self.records = self.records + 1
    pos = pos + #line
    self.unterminated = line:sub(-1) ~= "\n"
  end
  f:close()
  self.torn = torn
  return true
end

--- Open (or create) a journal and read what earlier runs recorded.
-- The file is locked for this run: a second run on the same journal fails.
-- @tparam string path
-- @return journal, or nil and an `invalid` error
function M.open(path)
  if type(path) ~= "string" or path == "" then
    error("prequalify.journal.open: expected a path string", 2)
  end
  local handle, created = core.journal_open(path)
  if not handle then return nil, errors.new("invalid", created, { field = "journal", path = path }) end
  local self = setmetatable({
    path = path, handle = handle, created = created, index = {}, intents = {}, resolved = {}, claimed = {},
    known = 0, records = 0, torn = 0,
  }, Journal)
  read_index(self)
  if self.old_version and self.has_requests then
    handle:close()
    return nil, errors.new("invalid", string.format("journal %s was written in format %s by an earlier "
      .. "version of prequalify, which keyed items by all their fields; this version (format %d) keys them by "
      .. "DN, data and user and cannot read it safely. Finish or inspect it with the earlier version, or "
      .. "start a new journal file (items the old journal approved will then be sent again)",
      path, tostring(math.tointeger(self.old_version) or self.old_version), M.VERSION),
      { field = "journal", path = path })
  end
  -- After a torn last line, start on a fresh line.
  if self.unterminated then handle:write("\n") end
  self:write{ type = "run", v = M.VERSION, event = "start", time = core.time(),
              known = self.known }
  return self
end

-- The record at a byte offset of the journal as it was at open.
local function record_at(self, offset, key)
  local f = self.reader
  if not f then
    f = io.open(self.path, "rb")
    if not f then return nil end
    self.reader = f
  end
  f:seek("set", offset)
  local line = f:read("l")
  local ok, rec = pcall(json.decode, line or "")
  if ok and type(rec) == "table" and rec.key == key then return rec end
  return nil
end

--- What earlier runs recorded of an item (matched on the full key).
-- Duplicates within a run are the run's business (`core.idset`).
-- @param key the key (from `key`)
-- @param ikey its short form (from `key`)
-- @return nil (nothing recorded), `"intent"` (sent, no reply recorded),
--   `"clear"` (tried, nothing done) or `"done"`; the last record; and the
--   item's last intent record (its terms as sent), if any
function Journal:lookup(key, ikey)
  local rec = self.resolved[key]
  local v = self.index[ikey]
  if not rec and not v then return nil end
  rec = rec or record_at(self, v, key)
  if not rec then return nil end
  local intent = self.intents[ikey] and record_at(self, self.intents[ikey], key)
  if rec.type == "intent" then return "intent", rec, intent end
  if rec.type == "attempt" then return "clear", rec, intent end
  return "done", rec, intent
end

--- Whether an earlier run recorded anything of an item (by its short key;
-- `lookup` tells what).
function Journal:knows(ikey)
  return self.index[ikey] ~= nil
end

--- Claim a key for this run (the ticket decider's journal, one key per
-- ticket): the number of an earlier claim of this run with the same key;
-- or nil and then what `lookup` returns.
function Journal:claim(key, ikey, seq)
  local first = self.claimed[ikey]
  if first then return first end
  self.claimed[ikey] = seq
  return nil, self:lookup(key, ikey)
end

--- What the user verified of an item whose outcome is unknown (sent by a run
-- that saw no usable reply): `approved` (the server has it; never resent) or
-- `not-sent` (it did not; the next run sends it). Nothing is sent. Written
-- at once and synced.
-- @tparam string key the item's key (`prequalify journal list` shows it)
-- @tparam string outcome `"approved"` or `"not-sent"`
-- @tparam string note how it was verified (kept in the record)
-- @return true, or nil and an `invalid` error (unknown key, an item whose
--   outcome is known, a bad outcome) or a `journal` error (the disk)
function Journal:resolve(key, outcome, note)
  if outcome ~= "approved" and outcome ~= "not-sent" then
    return nil, errors.new("invalid", "outcome must be \"approved\" or \"not-sent\", got " .. tostring(outcome),
      { field = "outcome" })
  end
  if type(note) ~= "string" or not note:find("%S") then
    return nil, errors.new("invalid", "note must say how the outcome was verified", { field = "note" })
  end
  local ikey = type(key) == "string" and short_key(key)
  local st, rec = self:lookup(key, ikey or 0)
  if not ikey or not st then
    return nil, errors.new("invalid", "journal " .. self.path .. " has no item with key " .. tostring(key),
      { field = "key" })
  end
  if st ~= "intent" and not (st == "done" and rec.outcome == "unknown") then
    return nil, errors.new("invalid", string.format("item %s is %s, not unknown: only an unknown outcome can be "
      .. "resolved", key, st == "done" and rec.outcome or "not sent yet"), { field = "key" })
  end
  local new = { type = outcome == "approved" and "done" or "attempt", key = key, outcome = outcome:gsub("-", "_"),
                resolved = true, note = note, time = core.time() }
  local ok, err = self:write(new)
  if ok then ok, err = self:sync() end
  if not ok then return nil, err end
  self.resolved[key] = new
  return true
end

--- Append one record (buffered; see `sync`).
-- @return true or nil, err (`journal`: the disk refused it)
function Journal:write(rec)
  local ok, line = pcall(json.encode, rec)
  if not ok then return nil, errors.new("invalid", "journal record cannot be encoded: " .. tostring(line)) end
  local wok, werr = self.handle:write(line .. "\n")
  if not wok then return nil, disk_error(self, werr) end
  return true
end

--- The C handle that the batch pipeline writes intents and done records
-- through (the same buffer and lock as `write`).
function Journal:writer()
  return self.handle
end

-- Hands buffered records to the kernel (no fsync yet): a killed process
-- loses no reply it has already seen.
local function flush(self)
  local ok, err = self.handle:flush()
  if not ok then return nil, disk_error(self, err) end
  return true
end

--- Record an attempt that the server certainly did not act on and that
-- will be repeated (a `not_sent` failure, a 401, a 429).
function Journal:attempt(key, attempt, err)
  local ok, werr = self:write{
    type = "attempt", key = key, attempt = attempt, time = core.time(),
    outcome = err.outcome, kind = err.kind, status = err.status,
  }
  if not ok then return nil, werr end
  return flush(self)
end

--- Record the final outcome of a sent item (the pipeline writes those of
-- the common success itself).
-- @param key the item's key
-- @tparam table rec `outcome`, `attempts` and the server's answer or the error
function Journal:done(key, rec)
  rec.type, rec.key, rec.time = "done", key, core.time()
  local ok, err = self:write(rec)
  if not ok then return nil, err end
  return flush(self)
end

--- Records written since the last `sync` (by Lua or by the pipeline).
function Journal:unsynced()
  return self.handle:unsynced()
end

--- Flush and fsync everything written so far.
-- @return true or nil, err
function Journal:sync()
  if self.handle:unsynced() == 0 then return true end
  local ok, err = self.handle:sync()
  if not ok then return nil, disk_error(self, err) end
  return true
end

--- Write an end-of-run record, sync and release the lock. Idempotent.
-- @return true; or nil and a `journal` error naming the file when the end
--   record or the final flush and fsync failed (the lock is released all
--   the same)
function Journal:close(summary)
  if not self.handle then return true end
  local wok, werr = true, nil
  if summary then
    local rec = { type = "run", event = "end", time = core.time() }
    for k, v in pairs(summary) do rec[k] = v end
    wok, werr = self:write(rec)
  end
  local ok, err = self.handle:close()
  self.handle = nil
  if self.reader then
    self.reader:close()
    self.reader = nil
  end
  if not ok then return nil, disk_error(self, err) end
  if not wok then return nil, werr end
  return true
end
Journal.__close = function(self) self:close() end

--- The items of a journal file (read without locking it), in the order
-- they first appear: `key`, `line` and `index` (of the input, when an intent
-- recorded them), `data`, `dn`, `user`, and `outcome` from the last record:
-- `unknown` for an intent without a reply, `not_sent` for an attempt (the
-- server did nothing; the next run sends it), else the recorded outcome;
-- `note` for an outcome the user resolved.
-- @treturn table the items
function M.items(path)
  local list, by = {}, {}
  for rec in M.records(path) do
    local it = type(rec.key) == "string" and by[rec.key]
    if type(rec.key) == "string" and not it and rec.type ~= "run" then
      it = { key = rec.key }
      by[rec.key] = it
      list[#list + 1] = it
    end
    if it and rec.type == "intent" then
      it.line, it.index, it.data, it.dn, it.user = rec.line, rec.index, rec.data, rec.dn, rec.user
    end
    if it then
      it.outcome = rec.type == "intent" and "unknown" or rec.type == "attempt" and "not_sent" or rec.outcome
      it.note = rec.note
    end
  end
  return list
end

--- Read a journal file without locking it: every record in order.
-- @return an iterator of decoded records (torn lines are skipped)
function M.records(path)
  local f = assert(io.open(path, "rb"))
  return function()
    while true do
      local line = f:read("l")
      if not line then
        f:close()
        return nil
      end
      local ok, rec = pcall(json.decode, line)
      if ok and type(rec) == "table" then return rec end
    end
  end
end

return M
