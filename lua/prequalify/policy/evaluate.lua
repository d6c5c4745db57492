--- Running a policy: the single entry point (`evaluate`) that validates,
-- catches errors, applies default deny and records approvals, and `plan`,
-- which runs a list through it.
-- @module prequalify.policy.evaluate
local request = require "prequalify.request"
local errors = require "prequalify.errors"
local D = require "prequalify.policy.decision"
local L = require "prequalify.policy.log"
local state = require "prequalify.policy.state"

local M = {}

local DEFAULT = { rule = "default", verdict = "deny", reason = "no rule decided (default deny)", depth = 0 }

local Request = request.Request

-- An allowed decision from the fast path has its log as metatable until its
-- trail is read; then the trail is built once and it becomes a plain table.
local function build_trail(d, key)
  if key == "trail" then
    local log = getmetatable(d)
    local trail = L.trail(log, log.n)
    setmetatable(d, nil)
    d.trail = trail
    return trail
  end
  return nil
end

-- What the fast path keeps per policy: its fast form, the longest log it
-- has needed so far and the maker of logs that long; false for a policy
-- without a fast form (one that holds a user's rule).
local runners = setmetatable({}, { __mode = "k" })

local function runner(p)
  local run = runners[p]
  if run == nil then
    local fast = D.fast(p)
    run = fast and { fast = fast, slots = 0, make = L.maker(40) } or false
    runners[p] = run
  end
  return run
end

-- The decision through the policy's fast form, or nil if it raised (then
-- `slow_decide` decides again, with one `pcall` per rule, to name the rule). Every
-- part being built here, a second run decides the same; only a `ctx.now`
-- function is called again. With `commit`, an allowed request is recorded
-- in `ctx` as `commit` would.
local function fast_decide(run, r, ctx, commit)
  local log = run.make(build_trail)
  local ok, verdict, sent, deciding, n = pcall(run.fast, r, ctx, log, 0, 0)
  if not ok then return nil end
  if n > run.slots then run.slots, run.make = n, L.maker(n) end
  if verdict == "allow" or verdict == "adjust" then
    if verdict == "adjust" and D.same(sent, r) then verdict = "allow" end
    log.n = n
    if commit and ctx ~= nil and type(ctx) == "table" then
      state.record(sent, ctx)
      return setmetatable({ allow = true, verdict = verdict, request = sent, committed = true }, log)
    end
    return setmetatable({ allow = true, verdict = verdict, request = sent }, log)
  end
  if verdict == "skip" then
    n = L.put(log, n, DEFAULT.rule, DEFAULT.verdict, 0, DEFAULT.reason)
    deciding = n - 4
  end
  return { allow = false, verdict = "deny", trail = L.trail(log, n), request = r,
           reason = log[deciding] .. ": " .. L.reason(log, deciding) }
end

-- The decision through `decision.run`, rule by rule.
local function slow_decide(p, r, ctx)
  local d = D.run(p, r, ctx)
  local trail, deciding = {}, d.deciding
  for i, e in ipairs(d.trail or {}) do trail[i] = e end
  local verdict = d.verdict
  if verdict == "skip" then
    deciding = { rule = DEFAULT.rule, verdict = DEFAULT.verdict, reason = DEFAULT.reason, depth = 0 }
    trail[#trail + 1] = deciding
    verdict = "deny"
  end
  local out = { allow = verdict == "allow" or verdict == "adjust", verdict = verdict, trail = trail }
  if out.allow then
    out.request = d.request
    if verdict == "adjust" and D.same(d.request, r) then out.verdict = "allow" end
  else
    out.request = r
    out.reason = deciding and (deciding.rule .. ": " .. deciding.reason) or "denied"
  end
  return out
end

--- Decide on one request without recording anything in `ctx`.
-- @return the decision: `allow`, `verdict` (`allow`, `adjust` or `deny`),
--   `request` (what to send: the adjusted request, or the validated input
--   when denied; nil for an invalid input, which is kept in `input`), `trail`,
--   and for a deny `reason` (`"rule: reason"` of the entry that decided)
function M.decide(p, req, ctx)
  D.check(p, "policy.decide", 2)
  local r, why
  if type(req) == "table" then
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
  local run = runner(p)
  if run then
    local out = fast_decide(run, r, ctx, false)
    if out then return out end
  end
  return slow_decide(p, r, ctx)
end

--- Record an allowed decision in `ctx` (for `unique` and `rate_limit`).
-- Does nothing for a deny, or if this decision was recorded already.
function M.commit(d, ctx)
  if d.allow and not d.committed and type(ctx) == "table" then
    state.record(d.request, ctx)
    d.committed = true
  end
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
  -- The usual call (a policy built here, a validated request) goes
  -- straight to the fast form: `decide` and `commit` in one.
  local run = runners[p]
  if run and getmetatable(req) == Request then
    local d = fast_decide(run, req, ctx, true)
    if d then return d end
    return M.commit(slow_decide(p, req, ctx), ctx)
  end
  D.check(p, "policy.evaluate", 2)
  return M.commit(M.decide(p, req, ctx), ctx)
end

--- Decide on a list of requests, without any network, with one shared `ctx`
-- (made if not given). Inputs are not changed.
-- @tparam table requests a list of request tables
-- @tparam function p the policy
-- @tparam[opt] table ctx the shared context
-- @return the decisions, in input order
-- @raise when `requests` or `ctx` is not a table, or `p` not a policy
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
