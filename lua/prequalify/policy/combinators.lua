--- Combinators: policies built from other policies.
--
-- Every combinator runs its parts through `decision.run`, so an error in a
-- part is a deny and never propagates. Each also has a fast form (used by
-- `evaluate` when every part is built here) that makes the same decisions
-- and the same trail, recorded in a log whose reasons are built on reading;
-- the two are kept side by side below and must change together. An error anywhere denies the whole
-- request, whatever combinator it sits in: a broken rule never allows.
-- A part that skips is neutral: it neither allows nor denies.
-- @module prequalify.policy.combinators
local D = require "prequalify.policy.decision"
local L = require "prequalify.policy.log"

local M = {}

local function list_name(kind, parts)
  local names = {}
  for i, p in ipairs(parts) do names[i] = D.name(p) end
  local s = kind .. "(" .. table.concat(names, ", ") .. ")"
  if #s > 72 then s = string.format("%s(%d rules)", kind, #parts) end
  return s
end

local function parts_of(who, parts)
  if type(parts) ~= "table" then
    error(string.format("policy.%s: expected a list of policies, got %s", who, type(parts)), 3)
  end
  local list = {}
  for i, p in ipairs(parts) do list[i] = D.check(p, string.format("policy.%s: item %d", who, i), 3) end
  return list
end

local function append(into, trail)
  for _, e in ipairs(trail) do into[#into + 1] = e end
end

-- A combinator's decision. `deciding` is the entry that decided; when no
-- rule ran at all there is none in the trail, so one is made up.
local function result(name, verdict, req, trail, deciding, err)
  deciding = deciding or { rule = name, verdict = verdict, reason = "no rule decided", depth = 0 }
  return {
    allow = verdict == "allow" or verdict == "adjust", verdict = verdict,
    request = req, trail = trail, deciding = deciding, error = err or nil,
  }
end

local INVALID = "the adjusted request is invalid: "

-- How `all`'s fast forms end: with every part skipped, the last visible
-- entry decides; with no entry visible, a closing entry is added.
local function all_done(name, log, start, n, verdict, cur, deciding)
  if verdict == "skip" then deciding = L.last_visible(log, start, n) end
  if not deciding then
    n = L.put(log, n, name, verdict, -1, "no rule decided")
    deciding = n - 4
  end
  return verdict, cur, deciding, n
end

-- The fast form of `all` when every part is a leaf rule (the usual policy):
-- it runs their checks itself, as each leaf's fast form would. The loop is
-- the hot path of a policy, so an allow costs one comparison, and each slot
-- is its own statement (a multiple assignment copies every value first).
local function all_leaves(name, checks, names)
  local count = #checks
  return function(req, ctx, log, n, depth)
    local check, named = checks, names
    local start, cur, adjusted = n, req, false
    for i = 1, count do
      local v, reason, x, changes = check[i](cur, ctx)
      if v ~= "allow" then
        if v == "adjust" then
          local new, msg = D.adjusted(cur, changes)
          if new then
            cur, adjusted = new, true
          else
            v, reason, x = "deny", INVALID .. msg, nil
          end
        end
        if v == "deny" then return "deny", req, n + 1, L.put(log, n, named[i], v, depth, reason, x) end
      end
      log[n + 1] = named[i]
      log[n + 2] = v
      log[n + 3] = depth
      log[n + 4] = reason
      log[n + 5] = x
      n = n + 5
    end
    -- the entry that decided: the last that allowed or adjusted
    local deciding
    for i = n - 4, start + 1, -5 do
      if log[i + 1] ~= "skip" then deciding = i; break end
    end
    -- one that adjusted makes it an adjust; else one that allowed, an allow
    local verdict = adjusted and "adjust" or deciding and "allow" or "skip"
    return all_done(name, log, start, n, verdict, cur, deciding)
  end
end

--- Every part must allow. Adjustments chain: each part sees the request as
-- the parts before it left it. Stops at the first deny. Parts that skip are
-- neutral; if every part skips (or there are none), `all` skips too.
function M.all(parts)
  local list = parts_of("all", parts)
  local name = list_name("all", list)
  local fast = D.fast_all(list)
  local checks, names = D.leaf_checks(list)
  return D.builtin(name, function(req, ctx)
    local cur, trail, verdict, deciding = req, {}, "skip", nil
    for _, p in ipairs(list) do
      local d = D.run(p, cur, ctx)
      append(trail, d.trail)
      if d.verdict == "deny" then
        return result(name, "deny", req, trail, d.deciding, d.error)
      elseif d.verdict ~= "skip" then
        if d.verdict == "adjust" then
          cur, verdict = d.request, "adjust"
        elseif verdict == "skip" then
          verdict = "allow"
        end
        deciding = d.deciding
      end
    end
    if verdict == "skip" then deciding = trail[#trail] end
    return result(name, verdict, cur, trail, deciding)
  end, checks and all_leaves(name, checks, names) or fast and function(req, ctx, log, n, depth)
    local start, cur, verdict, deciding = n, req, "skip", nil
    for i = 1, #fast do
      local v, r, dec
      v, r, dec, n = fast[i](cur, ctx, log, n, depth)
      if v == "deny" then return "deny", req, dec, n end
      if v ~= "skip" then
        if v == "adjust" then
          cur, verdict = r, "adjust"
        elseif verdict == "skip" then
          verdict = "allow"
        end
        deciding = dec
      end
    end
    return all_done(name, log, start, n, verdict, cur, deciding)
  end)
end

--- The first part that allows wins (its adjustments are kept); the parts
-- tried before it are shown indented. Denies if no part allows and one
-- denied; skips if every part skipped.
function M.any(parts)
  local list = parts_of("any", parts)
  local name = list_name("any", list)
  local fast = D.fast_all(list)
  local none = string.format("none of %d rules allowed", #list)
  return D.builtin(name, function(req, ctx)
    local sub, denied = {}, 0
    local winner
    for _, p in ipairs(list) do
      local d = D.run(p, req, ctx)
      append(sub, d.trail)
      if d.error then
        local head = { rule = name, verdict = "deny", reason = "a rule failed: " .. d.deciding.reason, depth = 0 }
        return result(name, "deny", req, D.shift(sub, 1, { head }), head, true)
      end
      if d.allow then winner = d; break end
      if d.verdict == "deny" then denied = denied + 1 end
    end
    local head
    if winner then
      local w = winner.deciding
      head = { rule = name, verdict = winner.verdict, reason = w.rule .. ": " .. w.reason, depth = 0 }
    elseif denied > 0 then
      head = { rule = name, verdict = "deny", reason = none, depth = 0 }
    else
      head = { rule = name, verdict = "skip", reason = "every rule skipped", depth = 0 }
    end
    return result(name, head.verdict, winner and winner.request or req, D.shift(sub, 1, { head }), head)
  end, fast and function(req, ctx, log, n, depth)
    local head = n + 1
    n = n + L.STRIDE
    local denied, wv, wr, wdec = 0, nil, nil, nil
    for i = 1, #fast do
      local v, r, dec
      v, r, dec, n = fast[i](req, ctx, log, n, depth + 1)
      if v == "allow" or v == "adjust" then wv, wr, wdec = v, r, dec; break end
      if v == "deny" then denied = denied + 1 end
    end
    if wv then
      L.put(log, head - 1, name, wv, depth, L.quote, wdec)
      return wv, wr, head, n
    end
    local verdict = denied > 0 and "deny" or "skip"
    L.put(log, head - 1, name, verdict, depth, denied > 0 and none or "every rule skipped")
    return verdict, req, head, n
  end)
end

--- Allows what `p` denies and denies what it allows (an adjustment counts as
-- an allow and is dropped). A skip stays a skip; an error stays a deny.
function M.negate(p)
  D.check(p, "policy.negate")
  local name = "not(" .. D.name(p) .. ")"
  local fast = D.fast(p)
  return D.builtin(name, function(req, ctx)
    local d = D.run(p, req, ctx)
    local verdict
    if d.error or d.verdict == "skip" then verdict = d.error and "deny" or "skip"
    else verdict = d.allow and "deny" or "allow" end
    local reason = (d.error and "a rule failed: " or "") .. d.deciding.reason
    local head = { rule = name, verdict = verdict, reason = reason, depth = 0 }
    local trail = { head }
    if #d.trail > 1 or d.error then D.shift(d.trail, 1, trail) end
    return result(name, verdict, req, trail, head, d.error)
  end, fast and function(req, ctx, log, n, depth)
    local head = n + 1
    n = n + L.STRIDE
    local start = n
    local v, _, dec
    v, _, dec, n = fast(req, ctx, log, n, depth + 1)
    local verdict = v
    if v ~= "skip" then verdict = (v == "allow" or v == "adjust") and "deny" or "allow" end
    L.put(log, head - 1, name, verdict, depth, L.reason_of, dec)
    L.hide_single(log, start, n)
    return verdict, req, head, n
  end)
end

--- Applies `p` only where `condition` allows. Where the condition denies,
-- the result is a skip, recorded under the condition's name with its reason.
-- The condition's own adjustments are ignored: `p` sees the request as given.
-- A condition that fails (raises) denies: it never lets a request past `p`.
function M.when(condition, p)
  D.check(condition, "policy.when (condition)")
  D.check(p, "policy.when (policy)")
  local name = "when(" .. D.name(condition) .. ", " .. D.name(p) .. ")"
  local fc, fp, cname = D.fast(condition), D.fast(p), D.name(condition)
  return D.builtin(name, function(req, ctx)
    local c = D.run(condition, req, ctx)
    if c.error then return result(name, "deny", req, c.trail, c.deciding, true) end
    if c.verdict == "skip" then return result(name, "skip", req, c.trail, c.deciding) end
    if not c.allow then
      local entry = { rule = D.name(condition), verdict = "skip", reason = c.deciding.reason, depth = 0 }
      return result(name, "skip", req, { entry }, entry)
    end
    local d = D.run(p, req, ctx)
    local trail = {}
    append(trail, c.trail)
    append(trail, d.trail)
    return result(name, d.verdict, d.request, trail, d.deciding, d.error)
  end, fc and fp and function(req, ctx, log, n, depth)
    local start = n
    local v, _, dec
    v, _, dec, n = fc(req, ctx, log, n, depth)
    if v == "skip" then return "skip", req, dec, n end
    if v == "deny" then
      L.hide(log, start, n)
      n = L.put(log, n, cname, "skip", depth, L.reason_of, dec)
      return "skip", req, n - 4, n
    end
    return fp(req, ctx, log, n, depth)
  end)
end

--- The first part that does not skip decides; skips before it stay in the
-- trail. Skips if every part skips (at the top, that is a deny).
function M.first(parts)
  local list = parts_of("first", parts)
  local name = list_name("first", list)
  local fast = D.fast_all(list)
  return D.builtin(name, function(req, ctx)
    local trail = {}
    for _, p in ipairs(list) do
      local d = D.run(p, req, ctx)
      append(trail, d.trail)
      if d.verdict ~= "skip" then
        return result(name, d.verdict, d.request, trail, d.deciding, d.error)
      end
    end
    return result(name, "skip", req, trail, trail[#trail])
  end, fast and function(req, ctx, log, n, depth)
    local start = n
    for i = 1, #fast do
      local v, r, dec
      v, r, dec, n = fast[i](req, ctx, log, n, depth)
      if v ~= "skip" then return v, r, dec, n end
    end
    local last = L.last_visible(log, start, n)
    if not last then
      n = L.put(log, n, name, "skip", -1, "no rule decided")
      last = n - 4
    end
    return "skip", req, last, n
  end)
end

return M
