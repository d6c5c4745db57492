--- Decisions: the one place that knows their shape, names rules, runs a rule
-- safely and turns whatever a user's rule returned into a decision.
--
-- A decision is `{allow=, verdict=, request=, trail=}`; `verdict` is one of
-- `allow`, `adjust`, `deny` or `skip` (the rule abstained, so `allow` is false).
-- A trail entry is `{rule=, verdict=, reason=, depth=}`; `depth` is 0 at the top
-- and grows under `any`, `negate` and named composite rules.
-- @module prequalify.policy.decision
local request = require "prequalify.request"

local M = {}

-- Printable names of rules, and the rules this library built (which may be
-- handed the normalized request itself). Weak keys: naming never keeps a
-- rule alive.
local names = setmetatable({}, { __mode = "k" })
local internal = setmetatable({}, { __mode = "k" })
-- The fast form of a built-in policy, when it and all its parts are built
-- here: `(req, ctx, log, n, depth) -> verdict, request, deciding, n`. It
-- writes its trail into `log` (see `prequalify.policy.log`) after slot `n`
-- and returns the slot of the entry that decided and the new end of the
-- log. It does not catch errors: `evaluate` runs it under one `pcall` and
-- on an error decides again through `run`, which names the failing rule.
local fast = setmetatable({}, { __mode = "k" })
-- The check of a built-in leaf rule (see `rules.leaf`), so that `all` can
-- call it without the leaf's own wrapper.
local checks = setmetatable({}, { __mode = "k" })

local VERDICTS = { allow = true, adjust = true, deny = true, skip = true }
M.VERDICTS = VERDICTS

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

--- Mark `fn` as a rule built by this library and give it `name`;
-- `quick` is its fast form, if it has one, and `check` that of a leaf rule.
function M.builtin(name, fn, quick, check)
  names[fn] = name
  internal[fn] = true
  fast[fn] = quick
  checks[fn] = check
  return fn
end

--- The checks and names of `list` if all are leaf rules, else nil.
function M.leaf_checks(list)
  local out, named = {}, {}
  for i, p in ipairs(list) do
    out[i], named[i] = checks[p], names[p]
    if not out[i] then return nil end
  end
  return out, named
end

--- The fast form of `p`, or nil (a user's rule, or a combinator of one).
function M.fast(p)
  return fast[p]
end

--- The fast forms of all of `list`, or nil if one of them has none.
function M.fast_all(list)
  local out = {}
  for i, p in ipairs(list) do
    out[i] = fast[p]
    if not out[i] then return nil end
  end
  return out
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

--- A decision with a single trail entry.
function M.single(name, verdict, reason, req)
  local entry = { rule = name, verdict = verdict, reason = reason, depth = 0 }
  return {
    allow = verdict == "allow" or verdict == "adjust", verdict = verdict,
    request = req, trail = { entry }, deciding = entry,
  }
end

--- A deny for a rule that raised: it never allows, and combinators pass it up.
function M.failed(name, err, req)
  local d = M.single(name, "deny", "error: " .. tostring(err), req)
  d.error = true
  return d
end

--- True if two requests carry the same user fields.
function M.same(a, b)
  return a.dn == b.dn and a.data == b.data and a.comment == b.comment and a.user == b.user
    and a.hours == b.hours and a.single_use == b.single_use
end

--- A new, validated request: `req` with `changes` applied. Never touches `req`.
-- @return the request, or nil and the validation message
function M.adjusted(req, changes)
  local fields = request.fields(req)
  for k, v in pairs(changes or {}) do fields[k] = v end
  local new, err = request.new(fields)
  if not new then return nil, err.message end
  return new
end

-- What a user's rule sees: a plain copy, so that it cannot change the
-- request that others hold, nor reach its metatable.
local function copy(req)
  local c = request.fields(req)
  c.digest_length, c.algorithm = req.digest_length, req.algorithm
  return c
end

local function shift(trail, by, into)
  for _, e in ipairs(trail) do
    into[#into + 1] = {
      rule = tostring(e.rule), verdict = VERDICTS[e.verdict] and e.verdict or "deny",
      reason = tostring(e.reason or ""), depth = (tonumber(e.depth) or 0) + by,
    }
  end
  return into
end
M.shift = shift

-- A result that carries its own trail (a policy's decision returned by a
-- user's rule): keep the trail, indented under an entry for the rule.
local function with_header(name, verdict, reason, req, sub)
  local d = M.single(name, verdict, reason, req)
  if #sub > 0 then shift(sub, 1, d.trail) end
  return d
end

local SHAPE = "expected true/false, \"allow\"/\"deny\"/\"skip\" or a decision table"

-- Turn what a user's rule returned into a decision.
local function normalize(name, req, a, b)
  local ta = type(a)
  if ta == "boolean" then
    return M.single(name, a and "allow" or "deny", b ~= nil and tostring(b) or (a and "allowed" or "denied"), req)
  elseif a == nil then
    return M.single(name, "deny", b ~= nil and tostring(b) or "returned no decision", req)
  elseif ta == "string" then
    if a == "allow" or a == "deny" or a == "skip" then
      return M.single(name, a, b ~= nil and tostring(b) or a .. "ed", req)
    end
    return M.single(name, "deny", string.format("returned %q; %s", a, SHAPE), req)
  elseif ta ~= "table" then
    return M.single(name, "deny", "returned a " .. ta .. "; " .. SHAPE, req)
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
    return M.single(name, "deny", "returned a table that is not a decision; " .. SHAPE, req)
  end
  local sub = type(a.trail) == "table" and a.trail or {}
  local reason = a.reason
  if reason == nil and type(a.deciding) == "table" then reason = a.deciding.reason end
  if reason == nil then
    for _, e in ipairs(sub) do if e.verdict == verdict then reason = e.reason end end
  end
  reason = reason ~= nil and tostring(reason) or verdict == "skip" and "skipped" or verdict .. "ed"
  if a.error then
    local d = with_header(name, "deny", reason, req, sub)
    d.error = true
    return d
  end
  if verdict == "adjust" then
    local new, msg
    if a.request ~= nil then
      if type(a.request) ~= "table" then
        return M.single(name, "deny", "returned a request that is not a table", req)
      end
      new, msg = M.adjusted(a.request, a.changes)
    else
      new, msg = M.adjusted(req, a.changes)
    end
    if not new then
      return with_header(name, "deny", "the adjusted request is invalid: " .. msg, req, sub)
    end
    if M.same(new, req) then
      return with_header(name, "allow", reason, req, sub)
    end
    return with_header(name, "adjust", reason, new, sub)
  end
  return with_header(name, verdict, reason, req, sub)
end

--- Run policy `p` on `req`: never raises, always returns a decision.
-- Rules built here get the request itself; a user's rule gets a plain copy,
-- and what it returns is normalized (see the module doc of `prequalify.policy`).
function M.run(p, req, ctx)
  local name = M.name(p)
  if internal[p] then
    local ok, d = pcall(p, req, ctx)
    if not ok then return M.failed(name, d, req) end
    return d
  end
  local ok, a, b = pcall(p, copy(req), ctx)
  if not ok then return M.failed(name, a, req) end
  local nok, d = pcall(normalize, name, req, a, b)
  if not nok then return M.failed(name, d, req) end
  return d
end

--- Check that `p` can be used as a policy (raises for a programming mistake).
function M.check(p, who, level)
  if type(p) ~= "function" then
    error(string.format("%s: expected a policy (a function), got %s", who, type(p)), (level or 2) + 1)
  end
  return p
end

return M
