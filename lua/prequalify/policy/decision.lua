--- The one evaluator: how a policy runs, what its trail holds and how a
-- user's rule is turned into a decision.
--
-- Every policy built here is compiled once, when it is built, into a step
-- `(req, ctx, trail, depth) -> verdict, request, deciding`: it appends its
-- entries `{rule=, verdict=, reason=, depth=}` to `trail` (one plain array
-- per evaluation), returns its verdict (`allow`, `adjust`, `deny` or
-- `skip`), the request as it leaves it and the entry that decided. A
-- combinator's step calls the steps of its parts; a user's rule gets a step
-- when a combinator (or `run`) first meets it.
--
-- Errors are not caught rule by rule: `run` catches an error once. A
-- combinator with a heading entry (and a user's rule) opens its entry
-- (verdict `false`) before its parts run; a built-in rule is noted as
-- running. On an error the running rule gets an entry and the open entries
-- are closed as denies: the innermost with the error, each around it with
-- "a rule failed: ...". So a broken rule denies the whole request,
-- whatever combinator it sits in.
-- @module prequalify.policy.decision
local request = require "prequalify.request"
local budget = require "prequalify.policy.budget"
local view = require "prequalify.tickets.view"

local M = {}

-- Printable names and steps of the policies built here, and the steps made
-- for users' rules. Weak keys: compiling never keeps a rule alive.
local names = setmetatable({}, { __mode = "k" })
local steps = setmetatable({}, { __mode = "k" })
local user_steps = setmetatable({}, { __mode = "k" })

-- A ticket view (`prequalify.tickets.view`) is told from a request by its
-- `kind = "ticket"`: a request has no `kind`, and reading a field costs
-- less than a call of `getmetatable`, which the steps would make per rule.
local TICKET = view.KIND

local VERDICTS = { allow = true, adjust = true, deny = true, skip = true }

--- The printable name of a rule: the one given by `rule`/the built-in, or
-- `rule at <file>:<line>` for an anonymous function.
function M.name(p)
  local n = names[p]
  if n then return n end
  if type(p) == "function" then
    local info = debug.getinfo(p, "S")
    if info and info.what == "Lua" then
      return string.format("rule at %s:%d", info.short_src, info.linedefined)
    end
    return "rule (C function)"
  end
  return tostring(p)
end

--- Check that `p` can be used as a policy (raises for a programming mistake).
function M.check(p, who, level)
  if type(p) ~= "function" then
    error(string.format("%s: expected a policy (a function), got %s", who, type(p)), (level or 2) + 1)
  end
  return p
end

--- Give a user's rule a printable name: returns a new function that calls `fn`.
function M.rule(name, fn)
  if type(name) ~= "string" or name == "" then
    error("policy.rule: expected a name (string) as the first argument", 2)
  end
  if type(fn) ~= "function" then
    error("policy.rule: expected a function as the second argument, got " .. type(fn), 2)
  end
  local function named(req, ctx) return fn(req, ctx) end
  names[named] = name
  return named
end

--- Append an open entry (its verdict and reason are set when it decides).
function M.open(trail, name, depth)
  local e = { rule = name, verdict = false, reason = false, depth = depth }
  trail[#trail + 1] = e
  return e
end

--- The entry that stands for a combinator none of whose parts left one.
function M.undecided(name, verdict, depth)
  return { rule = name, verdict = verdict, reason = "no rule decided", depth = depth }
end

--- True if two requests carry the same user fields.
function M.same(a, b)
  if a.kind == TICKET then return rawget(a, "uses") == rawget(b, "uses") end
  return a.dn == b.dn and a.data == b.data and a.comment == b.comment and a.user == b.user
    and a.hours == b.hours and a.single_use == b.single_use
end

--- A new, validated request: `req` with `changes` applied. Never touches `req`.
-- @return the request, or nil and the validation message
function M.adjusted(req, changes)
  if req.kind == TICKET then return view.adjusted(req, changes) end
  local fields = request.fields(req)
  for k, v in pairs(changes or {}) do fields[k] = v end
  local new, err = request.new(fields)
  if not new then return nil, err.message end
  return new
end

local INVALID = "the adjusted request is invalid: "

--- Apply an adjustment: `changes` applied to `base` (by default `req`)
-- and validated. Returns the verdict (`adjust`; `allow` if nothing
-- changed; `deny` if the result is invalid), the reason and the request.
function M.adjust(req, changes, reason, base)
  local new, msg = M.adjusted(base or req, changes)
  if not new then return "deny", INVALID .. msg, req end
  if M.same(new, req) then return "allow", reason, req end
  return "adjust", reason, new
end

-- Close entry `e` with a verdict; returns what a step returns.
local function close(e, verdict, reason, req, changes, base)
  if verdict == "adjust" then verdict, reason, req = M.adjust(req, changes, reason, base) end
  e.verdict, e.reason = verdict, reason
  return verdict, req, e
end

-- The policy whose compiled step is `step`: called directly, it runs the
-- step as `run` does (no validation, no default deny).
local function policy_of(name, step)
  local function p(req, ctx) return M.run(p, req, ctx) end
  names[p], steps[p] = name, step
  return p
end

--- A policy built here from its step.
M.builtin = policy_of

-- On a ticket view, a rule that reads a field the ticket lacks skips, and
-- says which field; any other error goes on to `execute`.
local function skip_missing(ok, ...)
  if ok then return ... end
  local err = ...
  if view.is_missing(err) then return "skip", tostring(err) end
  error(err, 0)
end

-- The built-in rule running now: its name, depth and trail. A rule's entry
-- is made when it has decided, so an error is put on its name from here.
local at_trail, at_name, at_depth = nil, nil, nil

-- Entries remembered per built-in rule (see `leaf`).
local ENTRIES = 64

--- A built-in rule from its check `(req, ctx) -> verdict, reason[, changes]`:
-- `changes` (for `adjust`) are the fields to set, e.g. `{hours = 8}`.
--
-- Trail entries are values: the same rule, verdict, reason and depth give
-- the same entry table, remembered for the rule's last `ENTRIES` reasons
-- (a table costs more than the rest of a rule). `fresh` is for a rule whose
-- reasons name the request (a hash), which no other request repeats.
function M.leaf(name, check, fresh)
  local known, count = {}, 0
  local function remember(verdict, reason, depth)
    local e = { rule = name, verdict = verdict, reason = reason, depth = depth }
    if not fresh then
      if count >= ENTRIES then known, count = {}, 0 end
      known[reason], count = e, count + 1
    end
    return e
  end
  return policy_of(name, function(req, ctx, trail, depth)
    at_trail, at_name, at_depth = trail, name, depth
    local verdict, reason, changes
    if req.kind == TICKET then
      verdict, reason, changes = skip_missing(pcall(check, req, ctx))
    else
      verdict, reason, changes = check(req, ctx)
    end
    if verdict == "adjust" then verdict, reason, req = M.adjust(req, changes, reason) end
    local e = known[reason]
    if e == nil or e.depth ~= depth or e.verdict ~= verdict then e = remember(verdict, reason, depth) end
    trail[#trail + 1] = e
    return verdict, req, e
  end)
end

-- What a user's rule sees: a plain copy, so that it cannot change the
-- request that others hold, nor reach its metatable.
local function copy(req)
  if req.kind == TICKET then return view.adjusted(req, nil) end
  local c = request.fields(req)
  c.digest_length, c.algorithm = req.digest_length, req.algorithm
  return c
end

-- The key of an error raised for a user's rule that returned a failed
-- decision: its value is the reason.
local FAILED = {}

-- Append a returned decision's trail, indented under its rule's entry.
local function nest(trail, sub, depth)
  for _, e in ipairs(sub) do
    trail[#trail + 1] = {
      rule = tostring(e.rule), verdict = VERDICTS[e.verdict] and e.verdict or "deny",
      reason = tostring(e.reason or ""), depth = (tonumber(e.depth) or 0) + depth,
    }
  end
end

local SHAPE = "expected true/false, \"allow\"/\"deny\"/\"skip\" or a decision table"

-- Close a user's rule's entry `e` with what it returned (see the module
-- doc of `prequalify.policy`).
local function normalize(e, req, trail, a, b)
  local ta = type(a)
  if ta == "boolean" then
    return close(e, a and "allow" or "deny", b ~= nil and tostring(b) or (a and "allowed" or "denied"), req)
  elseif a == nil then
    return close(e, "deny", b ~= nil and tostring(b) or "returned no decision", req)
  elseif ta == "string" then
    if VERDICTS[a] and a ~= "adjust" then return close(e, a, b ~= nil and tostring(b) or a .. "ed", req) end
    return close(e, "deny", string.format("returned %q; %s", a, SHAPE), req)
  elseif ta ~= "table" then
    return close(e, "deny", "returned a " .. ta .. "; " .. SHAPE, req)
  end
  -- A table: a verdict from policy.allow/deny/skip/adjust, or a decision.
  local verdict = a.verdict
  if verdict == nil then
    if a.skip == true then verdict = "skip"
    elseif a.allow == true then verdict = (a.request ~= nil or a.changes ~= nil) and "adjust" or "allow"
    elseif a.allow ~= nil then verdict = "deny"
    end
  end
  if not VERDICTS[verdict] then
    return close(e, "deny", "returned a table that is not a decision; " .. SHAPE, req)
  end
  local sub = type(a.trail) == "table" and a.trail or {}
  local reason = a.reason
  if reason == nil and type(a.deciding) == "table" then reason = a.deciding.reason end
  if reason == nil then
    for _, s in ipairs(sub) do if s.verdict == verdict then reason = s.reason end end
  end
  reason = reason ~= nil and tostring(reason) or verdict == "skip" and "skipped" or verdict .. "ed"
  if verdict == "adjust" and a.request ~= nil and type(a.request) ~= "table" then
    return close(e, "deny", "returned a request that is not a table", req)
  end
  nest(trail, sub, e.depth + 1)
  if a.error then error({ [FAILED] = reason }, 0) end
  return close(e, verdict, reason, req, a.changes, a.request)
end

-- The step of a user's rule. One made while a policy file loads runs under
-- that file's instruction budget.
local function user_step(p)
  local name, limit = M.name(p), budget.loading()
  return function(req, ctx, trail, depth)
    at_trail = nil
    local e = M.open(trail, name, depth)
    if req.kind == TICKET then
      local c = copy(req)
      if limit then return normalize(e, req, trail, skip_missing(pcall(budget.call, limit, trail, p, c, ctx))) end
      return normalize(e, req, trail, skip_missing(pcall(p, c, ctx)))
    end
    if limit then return normalize(e, req, trail, budget.call(limit, trail, p, copy(req), ctx)) end
    return normalize(e, req, trail, p(copy(req), ctx))
  end
end

--- The step of policy `p`, compiled once.
function M.step(p)
  local s = steps[p] or user_steps[p]
  if not s then
    s = user_step(p)
    user_steps[p] = s
  end
  return s
end

-- Close the entries left open by an error: the innermost is the rule that
-- failed. Returns the outermost (the one that decided).
local function failed(trail, err, name)
  local reason
  if type(err) == "table" and err[FAILED] then
    reason = err[FAILED]
  else
    local ok, s = pcall(tostring, err)
    reason = "error: " .. (ok and s or "(an error object that cannot be shown)")
  end
  if at_trail == trail then M.open(trail, at_name, at_depth) end
  local deciding
  for i = #trail, 1, -1 do
    local e = trail[i]
    if e.verdict == false then
      e.verdict, e.reason, deciding = "deny", reason, e
      reason = "a rule failed: " .. reason
    end
  end
  if not deciding then deciding = M.open(trail, name, 0); deciding.verdict, deciding.reason = "deny", reason end
  return deciding
end

--- Run policy `p` on `req`: never raises.
-- @return verdict (`allow`, `adjust`, `deny` or `skip`), the request as
--   the policy leaves it, the trail, the entry that decided, and true if a
--   rule failed (raised)
function M.execute(p, req, ctx)
  local trail = {}
  local ok, verdict, out, deciding = pcall(steps[p] or M.step(p), req, ctx, trail, 0)
  if ok then return verdict, out, trail, deciding end
  return "deny", req, trail, failed(trail, verdict, M.name(p)), true
end

--- Run policy `p` on `req` as a rule does (`evaluate` adds validation and
-- the default deny): never raises, always returns a decision
-- `{allow=, verdict=, request=, trail=, deciding=}` (and `error = true` if a
-- rule failed). `verdict` may be `skip`.
function M.run(p, req, ctx)
  local verdict, out, trail, deciding, err = M.execute(p, req, ctx)
  return { allow = verdict == "allow" or verdict == "adjust", verdict = verdict, request = out, trail = trail,
           deciding = deciding, error = err }
end

return M
