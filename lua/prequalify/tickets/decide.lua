--- Deciding pending Flow tickets by policy: each ticket's view goes through
-- `policy.evaluate`; an allow approves the ticket, a deny rejects it, with
-- the deciding rule's reason as the comment. The journal (the batch's
-- JSON Lines journal, one key per ticket id) makes it safe across restarts:
-- an intent is synced before the call leaves and the outcome written after
-- it, so a rerun never decides a ticket twice. A ticket whose call had no
-- usable answer (the process died mid-call, or the outcome was unknown) is
-- decided again on a rerun only when the server shows the call did not
-- land: the ticket is still pending with as many approvals as before the
-- call. Otherwise it is reported `unknown` and left alone. Within one run
-- nothing is ever resent. A call that failed (the server did not act) is
-- decided again on a rerun.
-- @module prequalify.tickets.decide
local core = require "prequalify.core"
local journal_mod = require "prequalify.journal"
local policy = require "prequalify.policy"
local view_mod = require "prequalify.tickets.view"
local wire = require "prequalify.tickets.wire"

local M = {}

--- Longest comment sent with a decision (the rest is cut).
M.MAX_COMMENT = 400

local Decider = {}
Decider.__index = Decider

-- The journal key of a ticket id (Base64 of a SHA-256, as the batch's keys).
local function ticket_key(id)
  local b64 = core.digest_data("prequalify-ticket-v1\0" .. id, "sha256")
  local key = b64:gsub("=+$", "")
  local raw = core.b64decode(b64)
  return key, (string.unpack("<i8", raw))
end

--- A decider: `pass()` decides every pending ticket once; call it again to
-- poll (`--watch`). `close()` writes the journal's end record.
-- @param client a prequalify client (its `tickets` and `*_tickets` methods are used)
-- @tparam function p the policy
-- @tparam table opts `dry_run` (decide, send nothing, write no journal),
--   `journal` (path), `ctx` (policy context, shared by every pass),
--   `on_entry` (called with each entry as it is decided), `final` (a deny
--   rejects with RejectionLevel 2 instead of 1), `product_code`, `stop` (a
--   function: when it returns true the pass ends before the next ticket and
--   the decider's `interrupted` is set)
-- @return the decider, or nil and an `invalid` error (journal)
function M.new(client, p, opts)
  opts = opts or {}
  local self = setmetatable({ client = client, p = p, opts = opts, ctx = opts.ctx or {}, seq = 0,
                              counts = { approved = 0, rejected = 0, failed = 0, unknown = 0, skipped = 0,
                                         would_approve = 0, would_reject = 0 } }, Decider)
  if opts.journal and not opts.dry_run then
    local j, err = journal_mod.open(opts.journal)
    if not j then return nil, err end
    self.journal = j
  end
  return self
end

local function comment_for(d)
  local text
  if d.allow then
    local deciding
    for _, e in ipairs(d.trail or {}) do
      if (e.verdict == "allow" or e.verdict == "adjust") and (e.depth or 0) == 0 then deciding = e end
    end
    text = "approved by policy"
    if deciding then text = text .. ": " .. tostring(deciding.rule) .. ": " .. tostring(deciding.reason) end
  else
    text = "rejected by policy: " .. tostring(d.reason or "denied")
  end
  text = text:gsub("%c", " ")
  if #text > M.MAX_COMMENT then text = text:sub(1, M.MAX_COMMENT - 3) .. "..." end
  return text
end

local function error_summary(err)
  return { kind = err.kind, message = err.message, outcome = err.outcome, status = err.status,
           result = err.result, result_name = err.result_name, invalid_ids = err.invalid_ids }
end

-- What the journal says of a ticket: nil (go ahead), or an entry to report.
local function from_journal(self, ticket, entry)
  local j = self.journal
  if not j then return nil end
  local key, ikey = ticket_key(ticket.id)
  entry.key = key
  self.seq = self.seq + 1
  local dup, state, rec = j:claim(key, ikey, self.seq)
  if dup then
    entry.outcome, entry.reason = "skipped", "decided earlier in this run"
    return entry
  end
  local unanswered = state == "intent" or (state == "done" and rec.outcome == "unknown")
  if state == "done" and not unanswered and rec.outcome ~= "failed" then
    entry.outcome, entry.reason = "skipped", "decided by an earlier run (" .. tostring(rec.outcome) .. ")"
    entry.decision = rec.action
    return entry
  end
  if unanswered then
    -- Still pending (it is listed) with as many approvals as before the
    -- call: the server shows the call did not land.
    if rec.approvals ~= #ticket.approvals then
      entry.outcome, entry.decision = "unknown", rec.action
      entry.reason = "an earlier run sent '" .. tostring(rec.action) .. "' and saw no usable reply, and the "
        .. "ticket has changed since: not resent; check the ticket"
      return entry
    end
    entry.note = "an earlier run's '" .. tostring(rec.action) .. "' had no usable reply; the ticket is "
      .. "unchanged, so it did not land: decided again"
  elseif state == "done" then
    entry.note = "an earlier run's '" .. tostring(rec.action) .. "' failed (the server did not act): decided again"
  end
  return nil
end

-- The data hash the ticket's request would sign, where the environment
-- names it (the key is unconfirmed; the emulator's is `Hash`).
local HASH_KEYS = { "hash", "datahash", "digest", "signedhash" }

-- Send the decision for one ticket, with its journal records around it.
local function send(self, ticket, entry, d)
  local j, action = self.journal, entry.decision
  local o = { comment = comment_for(d) }
  if action == "reject" then
    o.final = self.opts.final or false
  elseif d.request and rawget(d.request, "uses") then
    o.uses = rawget(d.request, "uses")
  end
  if j then
    local ok, werr = j:write{ type = "intent", key = entry.key, ticket = ticket.id, action = action,
                              time = core.time(), dn = ticket.dn, user = ticket.user,
                              hash = wire.find(ticket.environment, HASH_KEYS), uses = o.uses,
                              approvals = #ticket.approvals }
    if ok then ok, werr = j:sync() end
    if not ok then return nil, werr end
  end
  local client = self.client
  local res, err = client[action .. "_tickets"](client, ticket.id, o)
  if res then
    entry.outcome = action == "approve" and "approved" or "rejected"
    entry.result, entry.result_name = res.result, res.result_name
  else
    entry.outcome = err.outcome == "unknown" and "unknown" or "failed"
    entry.error = error_summary(err)
  end
  if j then
    local ok, werr = j:done(entry.key, { ticket = ticket.id, action = action, outcome = entry.outcome,
                                         dn = ticket.dn, user = ticket.user,
                                         hash = wire.find(ticket.environment, HASH_KEYS), uses = o.uses,
                                         approvals = #ticket.approvals, result = entry.result,
                                         error = entry.error })
    if not ok then return nil, werr end
  end
  return true
end

--- Decide every pending ticket once.
-- @return the entries of this pass (`id`, `dn`, `user`, `decision`
--   "approve"|"reject", `outcome` "approved"|"rejected"|"failed"|"unknown"|
--   "skipped"|"dry_run", `reason`, `trail`, `error`, `note`: why an
--   earlier run's ticket is decided again), or nil and an error
--   (listing failed, or the journal could not be written)
function Decider:pass()
  local list, err = self.client:tickets{ product_code = self.opts.product_code }
  if not list then return nil, err end
  local entries = {}
  for _, ticket in ipairs(list) do
    if self.opts.stop and self.opts.stop() then
      self.interrupted = true
      break
    end
    local entry = { id = ticket.id, dn = ticket.dn, user = ticket.user }
    local known = from_journal(self, ticket, entry)
    if not known then
      local d = policy.evaluate(self.p, view_mod.of(ticket), self.ctx)
      entry.decision = d.allow and "approve" or "reject"
      entry.reason = d.allow and comment_for(d) or d.reason
      entry.trail = d.trail
      if self.opts.dry_run then
        entry.outcome = "dry_run"
        local k = "would_" .. entry.decision
        self.counts[k] = self.counts[k] + 1
      else
        local ok, jerr = send(self, ticket, entry, d)
        if not ok then return nil, jerr end
        self.counts[entry.outcome] = self.counts[entry.outcome] + 1
      end
    else
      self.counts[entry.outcome] = self.counts[entry.outcome] + 1
    end
    entry.key = nil
    entries[#entries + 1] = entry
    if self.opts.on_entry then self.opts.on_entry(entry) end
  end
  return entries
end

--- Write the journal's end record and release its lock. Idempotent.
function Decider:close()
  if self.journal then
    self.journal:close(self.counts)
    self.journal = nil
  end
end

return M
