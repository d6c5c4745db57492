--- The audit log of a batch: JSON Lines, appended, one record per policy
-- decision and one per final outcome, with UTC times. Never holds a secret.
-- A write the disk refuses does not stop the run: the first error is kept
-- and `close` returns it, naming the log.
-- @module prequalify.batch.audit
local core = require "prequalify.core"
local encode = require("prequalify.report").encode

local M = {}

local Audit = {}
Audit.__index = Audit
Audit.__name = "prequalify.audit"

local function utc(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. string.format(".%03dZ", math.floor((t % 1) * 1000))
end

--- Open an audit log for appending.
-- @tparam string path the log's path
-- @return the log, or nil and a message
function M.open(path)
  local f, err = io.open(path, "ab")
  if not f then return nil, "audit log " .. tostring(err) end
  f:setvbuf("full")
  return setmetatable({ f = f, path = path }, Audit)
end

function Audit:record(rec)
  rec.time = utc(core.time())
  local ok, err = self.f:write(encode(rec), "\n")
  if not ok and not self.err then self.err = err end
end

--- A policy decision for an item.
function Audit:decision(entry, decision)
  self:record{ event = "decision", index = entry.index, key = entry.key, request = entry.request,
               allow = decision.allow, verdict = decision.verdict, trail = decision.trail }
end

--- The final outcome of an item.
function Audit:outcome(entry)
  self:record{ event = "outcome", index = entry.index, key = entry.key, request = entry.request,
               outcome = entry.outcome, reason = entry.reason, server = entry.server, error = entry.error,
               attempts = entry.attempts, resumed = entry.resumed }
end

--- Close the log. Idempotent.
-- @return true, or nil and a message naming the log when a write failed
function Audit:close()
  if self.f then
    local ok, err = self.f:close()
    if not ok and not self.err then self.err = err end
    self.f = nil
  end
  if self.err then return nil, "audit log " .. self.path .. ": cannot write it: " .. tostring(self.err) end
  return true
end

return M
