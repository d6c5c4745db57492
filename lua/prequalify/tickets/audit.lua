--- The audit: what we approved (a batch report, a batch journal or a
-- `tickets decide` journal) reconciled with what was signed (the signing
-- archive). It matches a successful signing to an approval on the
-- environment DN, the data hash and the user, and says so. Whether an
-- archive entry carries the signed data hash (in `Artifact`) is
-- unconfirmed: an entry without a Base64 digest there is listed as
-- unmatched for that reason, never guessed.
-- @module prequalify.tickets.audit
local cjson = require "cjson"
local errors = require "prequalify.errors"

local M = {}

M.MATCHED_ON = "environment DN (case-insensitive), data hash (the archive entry's Artifact, as Base64) "
  .. "and user (AuthenticatedUser or AuthenticatedUserName, either form of the identity)"

local json = cjson.new()
json.decode_max_depth(16)

local function lower(s) return type(s) == "string" and s:lower() or nil end

-- Base64 of a 16..64-byte digest: what a data hash looks like.
local function digest_like(s)
  return type(s) == "string" and #s % 4 == 0 and #s >= 24 and #s <= 88 and s:match("^[%w+/]+=?=?$") ~= nil
end

local function approval(t, source)
  return { dn = t.dn, user = t.user, data = t.data, source = source, uncertain = t.uncertain or false,
           allowed = t.allowed, signings = 0 }
end

-- Approvals from a batch report (`items` with `outcome` and `request`).
local function from_report(doc, out)
  for _, e in ipairs(type(doc.items) == "table" and doc.items or {}) do
    local r = type(e) == "table" and e.request
    if type(r) == "table" and (e.outcome == "approved" or e.outcome == "unknown") then
      out[#out + 1] = approval({ dn = r.dn, user = r.user, data = r.data, uncertain = e.outcome == "unknown",
                                 allowed = r.single_use == true and 1 or nil }, "pre-qualification")
    end
  end
end

-- Approvals from JSON Lines: a batch journal (intent + done by key) or a
-- tickets decide journal (records with `ticket` and `hash`).
local function from_journal(lines, out)
  local intents, dones = {}, {}
  for _, rec in ipairs(lines) do
    if rec.type == "intent" and rec.key then intents[rec.key] = rec end
    if rec.type == "done" and rec.key then dones[rec.key] = rec end
  end
  for key, done in pairs(dones) do
    local i = intents[key] or {}
    local uncertain = done.outcome == "unknown"
    if done.ticket then
      if done.action == "approve" and (done.outcome == "approved" or uncertain) and done.hash then
        out[#out + 1] = approval({ dn = done.dn, user = done.user, data = done.hash, uncertain = uncertain,
                                   allowed = math.tointeger(done.uses) }, "ticket " .. tostring(done.ticket))
      end
    elseif (done.outcome == "approved" or uncertain) and i.data then
      out[#out + 1] = approval({ dn = i.dn, user = i.user, data = i.data, uncertain = uncertain,
                                 allowed = i.single_use == true and 1 or nil }, "pre-qualification")
    end
  end
end

--- The approvals recorded in a report or journal file.
-- @return array of `{dn, user, data, source, uncertain, allowed}` (allowed:
--   signings allowed, nil for unlimited), or nil and an `invalid` error
function M.read(path)
  local f, oerr = io.open(path, "rb")
  if not f then return nil, errors.new("invalid", "cannot read " .. tostring(oerr), { field = "report" }) end
  local text = f:read("a")
  f:close()
  local out = {}
  local ok, doc = pcall(json.decode, text)
  if ok and type(doc) == "table" and doc.items then
    from_report(doc, out)
    return out
  end
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    local lok, rec = pcall(json.decode, line)
    if lok and type(rec) == "table" then lines[#lines + 1] = rec end
  end
  if #lines == 0 then
    return nil, errors.new("invalid", path .. " is neither a batch report (JSON) nor a journal (JSON Lines)",
      { field = "report" })
  end
  from_journal(lines, out)
  return out
end

--- The environment DNs the approvals name (for the archive filter).
function M.environments(approvals)
  local seen, out = {}, {}
  for _, a in ipairs(approvals) do
    if a.dn and not seen[a.dn:lower()] then
      seen[a.dn:lower()] = true
      out[#out + 1] = a.dn
    end
  end
  table.sort(out)
  return out
end

local function same_user(a, e)
  local u = lower(a.user)
  return u == nil or u == lower(e.user) or u == lower(e.user_name)
end

--- Reconcile approvals with archive entries.
-- @return `{matched_on, signed, never_signed, over_used, unexpected,
--   no_hash, failed_attempts}`: approvals (with `signings`) and archive entries
function M.reconcile(approvals, entries)
  local by_hash = {}
  for _, a in ipairs(approvals) do
    local k = lower(a.dn) .. "\0" .. a.data
    by_hash[k] = by_hash[k] or {}
    table.insert(by_hash[k], a)
  end
  local out = { matched_on = M.MATCHED_ON, signed = {}, never_signed = {}, over_used = {}, unexpected = {},
                no_hash = {}, failed_attempts = 0 }
  for _, e in ipairs(entries) do
    if e.failure then
      out.failed_attempts = out.failed_attempts + 1
    elseif not digest_like(e.artifact) then
      out.no_hash[#out.no_hash + 1] = e
    else
      local match
      for _, a in ipairs(by_hash[(lower(e.environment) or "") .. "\0" .. e.artifact] or {}) do
        if same_user(a, e) then
          -- The first approval with uses left takes the signing.
          if not match or (match.allowed and match.signings >= match.allowed) then match = a end
        end
      end
      if match then
        match.signings = match.signings + 1
      else
        out.unexpected[#out.unexpected + 1] = e
      end
    end
  end
  -- Over-use is judged per hash: every approval of the same environment,
  -- hash and user together allow the sum of their uses.
  local groups, list = {}, {}
  for _, a in ipairs(approvals) do
    local k = lower(a.dn) .. "\0" .. a.data .. "\0" .. (lower(a.user) or "")
    local g = groups[k]
    if not g then
      g = { dn = a.dn, user = a.user, data = a.data, source = a.source, allowed = 0, signings = 0,
            uncertain = false }
      groups[k] = g
      list[#list + 1] = g
    end
    g.allowed = (g.allowed and a.allowed) and g.allowed + a.allowed or nil
    g.signings = g.signings + a.signings
    g.uncertain = g.uncertain or a.uncertain
  end
  for _, g in ipairs(list) do
    if g.signings == 0 then
      if not g.uncertain then out.never_signed[#out.never_signed + 1] = g end
    else
      out.signed[#out.signed + 1] = g
      if g.allowed and g.signings > g.allowed then out.over_used[#out.over_used + 1] = g end
    end
  end
  return out
end

--- True when the audit found something an auditor must look at.
function M.unexpected(r)
  return #r.never_signed > 0 or #r.over_used > 0 or #r.unexpected > 0 or #r.no_hash > 0
end

return M
