--- The batch's audit log (`audit = path`): JSON Lines, appended, one record
-- per policy decision and one per final outcome, with UTC times. It is for
-- people; the journal is for resuming. Never holds a secret.
-- @module prequalify.batch.audit
local core = require "prequalify.core"
local report = require "prequalify.report"

local M = {}

local Audit = {}
Audit.__index = Audit
Audit.__name = "prequalify.audit"

local function utc(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. string.format(".%03dZ", math.floor((t % 1) * 1000))
end

--- Open an audit log (JSON Lines, appended): one record per policy decision
-- and one per final outcome, with UTC times. Never holds a secret.
-- @return the log, or nil and a message
function M.open(path)
  local f, err = io.open(path, "ab")
  if not f then return nil, "audit log " .. tostring(err) end
  f:setvbuf("full")
  return setmetatable({ f = f, path = path }, Audit)
end

function Audit:record(rec)
  local t = core.time()
  rec.time = utc(t)
  self.f:write(report.encode(rec), "\n")
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

function Audit:close()
  if self.f then
    self.f:close()
    self.f = nil
  end
end

return M
