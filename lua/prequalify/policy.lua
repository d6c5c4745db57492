--- Approval policies: composable rules that decide which hashes get
-- pre-qualified, with a reason trail. See docs/POLICIES.md.
--
-- A policy is a function `(request, ctx) -> decision`; a decision is a plain
-- table `{allow=, verdict=, request=, trail={ {rule=, verdict=, reason=, depth=}, ... }}`
-- (and `reason` for a deny). Each policy built here is compiled once, when it
-- is built, and run by one evaluator (`prequalify.policy.decision`).
-- Run policies through `evaluate` (one request) or `plan` (a list): they
-- validate, catch errors, apply default deny and record approvals in `ctx`.
--
-- A rule of your own is a plain function `(req, ctx)`. It gets a plain copy
-- of the request (fields `dn`, `data`, `comment`, `user`, `hours`,
-- `single_use`, `digest_length`, `algorithm`) and may return:
--
-- - `true [, reason]` or `false [, reason]`; `nil, reason` also denies;
-- - `"allow"`, `"deny"` or `"skip"`, then a reason;
-- - `policy.allow(reason)`, `policy.deny(reason)`, `policy.skip(reason)`,
--   or `policy.adjust(changes, reason)` (e.g. `policy.adjust({hours = 8}, "...")`);
-- - the decision of another policy (its trail is kept, indented).
--
-- Anything else, and any error it raises, is a deny with the reason in
-- the trail. Adjustments are applied to a copy and validated again; an
-- adjustment that makes the request invalid is a deny.
-- @module prequalify.policy
local D = require "prequalify.policy.decision"
local combinators = require "prequalify.policy.combinators"
local rules = require "prequalify.policy.rules"
local hashes = require "prequalify.policy.hashes"
local clock = require "prequalify.policy.clock"
local state = require "prequalify.policy.state"
local evaluate = require "prequalify.policy.evaluate"
local trail = require "prequalify.policy.trail"
local sandbox = require "prequalify.policy.sandbox"
local budget = require "prequalify.policy.budget"
local ticket_rules = require "prequalify.policy.ticket_rules"

local M = {}

-- Naming and user rules.
M.rule = D.rule
M.name = D.name

--- Verdicts for a user's rule to return.
-- @tparam[opt] string reason
function M.allow(reason) return { verdict = "allow", reason = reason } end
function M.deny(reason) return { verdict = "deny", reason = reason } end
function M.skip(reason) return { verdict = "skip", reason = reason } end
--- @tparam table changes fields to change, e.g. `{hours = 8}`
-- @tparam[opt] string reason
function M.adjust(changes, reason) return { verdict = "adjust", changes = changes, reason = reason } end

-- Combinators.
M.all = combinators.all
M.any = combinators.any
M.negate = combinators.negate
M.when = combinators.when
M.first = combinators.first

-- Built-in rules.
M.environment = rules.environment
M.users = rules.users
M.max_hours = rules.max_hours
M.clamp_hours = rules.clamp_hours
M.require_single_use = rules.require_single_use
M.force_single_use = rules.force_single_use
M.comment_matches = rules.comment_matches
M.algorithms = rules.algorithms
M.deny_hashes = hashes.deny_hashes
M.allow_hashes = hashes.allow_hashes
M.time_window = clock.time_window
M.unique = state.unique
M.rate_limit = state.rate_limit

-- Rules for Flow tickets (they skip on pre-qualification requests).
M.ticket_age = ticket_rules.ticket_age
M.requesters = ticket_rules.requesters
M.environment_value = ticket_rules.environment_value

--- The time a rule should use: `ctx.now` (number or function) or `os.time()`.
M.now = clock.now

-- Running.
M.evaluate = evaluate.evaluate
M.decide = evaluate.decide
M.commit = evaluate.commit
M.plan = evaluate.plan
M.to_error = evaluate.to_error
--- Same as `to_error` (the name the client uses).
M.denial = evaluate.to_error

--- A decision as readable lines: a header, then one line per trail entry.
M.format_trail = trail.format
M.explain = trail.format

--- Load a policy file in a restricted environment.
-- @tparam string path
-- @tparam[opt] table opts `budget`: the instructions its rules may run per
--   evaluation (default `policy.BUDGET`, 10^7); past it a rule is an error
-- @return the policy, or nil and an `invalid` error with `file` and `line`
function M.load(path, opts)
  return sandbox.load(path, M, opts)
end

--- The default instruction budget of a loaded policy, per evaluation.
M.BUDGET = budget.DEFAULT

return M
