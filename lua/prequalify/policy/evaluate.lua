--- Running a policy on requests: validation, default deny, and recording
-- approvals in the context.
-- @module prequalify.policy.evaluate
local request = require "prequalify.request"
local errors = require "prequalify.errors"
local D = require "prequalify.policy.decision"
local state = require "prequalify.policy.state"
local view = require "prequalify.tickets.view"

local Request = request.Request

local M = {}

local DEFAULT = "no rule decided (default deny)"

-- Record an allowed request in `ctx` for `unique` and `rate_limit`: true
-- when recorded. Tickets are not pre-qualifications: neither counts them.
local function record(req, ctx)
  if type(ctx) ~= "table" or req.kind == view.KIND then return false end
  state.record(req, ctx)
  return true
end

-- A validated request through policy `p`: skip becomes the default deny.
-- `commit` records an allowed request in `ctx` as `M.commit` does.
local function decide(p, r, ctx, commit)
  local verdict, out, trail, deciding = D.execute(p, r, ctx)
  if verdict == "allow" or verdict == "adjust" then
    if verdict == "adjust" and D.same(out, r) then verdict = "allow" end
    if commit and record(out, ctx) then
      return { allow = true, verdict = verdict, request = out, trail = trail, committed = true }
    end
    return { allow = true, verdict = verdict, request = out, trail = trail }
  end
  if verdict == "skip" then
    deciding = { rule = "default", verdict = "deny", reason = DEFAULT, depth = 0 }
    trail[#trail + 1] = deciding
  end
  return { allow = false, verdict = "deny", request = r, trail = trail,
           reason = deciding.rule .. ": " .. deciding.reason }
end

-- The decision on `req`, validated here unless it already was.
local function validated(p, req, ctx, commit)
  local r, why
  if getmetatable(req) == Request or getmetatable(req) == view.View then
    r = req
  elseif view.is(req) then
    r, why = view.from(req)
  elseif type(req) == "table" then
    local err
    r, err = request.new(req)
    why = err and err.message
  else
    why = "expected a table of request fields, got " .. type(req)
  end
  if not r then
    local entry = { rule = "validate", verdict = "deny", reason = why, depth = 0 }
    return { allow = false, verdict = "deny", input = req, trail = { entry }, reason = "validate: " .. why }
  end
  return decide(p, r, ctx, commit)
end

--- Decide on one request (or ticket view, see `prequalify.tickets.view`)
-- without recording anything in `ctx`.
-- @return the decision, a plain table: `allow`, `verdict` (`allow`, `adjust`
--   or `deny`), `request` (what to send: the adjusted request, or the
--   validated input when denied; nil for an invalid input, which is kept in
--   `input`), `trail` (a list of `{rule=, verdict=, reason=, depth=}`), and
--   for a deny `reason` (`"rule: reason"` of the entry that decided)
function M.decide(p, req, ctx)
  D.check(p, "policy.decide", 2)
  return validated(p, req, ctx, false)
end

--- Record an allowed decision in `ctx` (for `unique` and `rate_limit`).
-- Does nothing for a deny, or if this decision was recorded already.
function M.commit(d, ctx)
  if d.allow and not d.committed and record(d.request, ctx) then d.committed = true end
  return d
end

--- Decide on one request and record it in `ctx` if allowed. This is what
-- the client and the batch runner call.
-- @tparam function p the policy
-- @param req a normalized request or a plain table (validated here)
-- @tparam[opt] table ctx `now` and per-batch state; pass the same one for a batch
-- @return the decision `{allow=, verdict=, reason=, request=, trail=}` (an
--   invalid request is a deny with its validation error as the reason;
--   `policy.denial(decision)` makes the `policy` error)
-- @raise when `p` is not a policy (a programming mistake)
function M.evaluate(p, req, ctx)
  if type(p) ~= "function" then D.check(p, "policy.evaluate", 2) end
  if getmetatable(req) == Request then return decide(p, req, ctx, true) end
  return validated(p, req, ctx, true)
end

--- Decide on a list of requests, without any network, with one shared `ctx`
-- (made if not given). Inputs are not changed.
-- @tparam table requests the requests (plain tables or normalized)
-- @tparam function p the policy
-- @tparam[opt] table ctx shared per-batch state
-- @return the decisions, in input order (an invalid request is a deny, not an error)
-- @raise when `requests`, `p` or `ctx` is of the wrong type (a programming mistake)
function M.plan(requests, p, ctx)
  if type(requests) ~= "table" then
    error("prequalify.plan: expected a list of requests, got " .. type(requests), 2)
  end
  D.check(p, "prequalify.plan", 2)
  if ctx ~= nil and type(ctx) ~= "table" then
    error("prequalify.plan: ctx must be a table, got " .. type(ctx), 2)
  end
  ctx = ctx or {}
  local out = {}
  for i, r in ipairs(requests) do out[i] = M.evaluate(p, r, ctx) end
  return out
end

--- A `policy` error for a denied decision: what the client returns.
-- Its fields `trail` and `decision` hold the details.
function M.to_error(d)
  return errors.new("policy", "denied by policy: " .. (d.reason or "denied"),
    { trail = d.trail, decision = d })
end

return M
