--- Combinators: policies built from other policies, each written once as a
-- step (see `prequalify.policy.decision`). A part that skips is neutral: it
-- neither allows nor denies. An error anywhere denies the whole request,
-- whatever combinator it sits in: a broken rule never allows.
-- @module prequalify.policy.combinators
local D = require "prequalify.policy.decision"

local M = {}

local function list_name(kind, parts)
  local names = {}
  for i, p in ipairs(parts) do names[i] = D.name(p) end
  local s = kind .. "(" .. table.concat(names, ", ") .. ")"
  if #s > 72 then s = string.format("%s(%d rules)", kind, #parts) end
  return s
end

-- The name and the steps of a list of parts.
local function parts_of(who, parts)
  if type(parts) ~= "table" then
    error(string.format("policy.%s: expected a list of policies, got %s", who, type(parts)), 3)
  end
  local list = {}
  for i, p in ipairs(parts) do list[i] = D.check(p, string.format("policy.%s: item %d", who, i), 3) end
  local out = {}
  for i, p in ipairs(list) do out[i] = D.step(p) end
  return list_name(who, list), out
end

-- The last entry added after `mark`, or a made-up one if there is none.
local function last_after(trail, mark, name, depth)
  local n = #trail
  if n > mark then return trail[n] end
  return D.undecided(name, "skip", depth)
end

--- Every part must allow. Adjustments chain: each part sees the request as
-- the parts before it left it. Stops at the first deny. Parts that skip are
-- neutral; if every part skips (or there are none), `all` skips too.
function M.all(parts)
  local name, steps = parts_of("all", parts)
  local count = #steps
  return D.builtin(name, function(req, ctx, trail, depth)
    local mark, cur, verdict, deciding = #trail, req, "skip", nil
    for i = 1, count do
      local v, r, dec = steps[i](cur, ctx, trail, depth)
      if v == "deny" then return "deny", req, dec end
      if v ~= "skip" then
        if v == "adjust" then
          cur, verdict = r, "adjust"
        elseif verdict == "skip" then
          verdict = "allow"
        end
        deciding = dec
      end
    end
    if verdict == "skip" then deciding = last_after(trail, mark, name, depth) end
    return verdict, cur, deciding
  end)
end

--- The first part that allows wins (its adjustments are kept); the parts
-- tried before it are shown indented. Denies if no part allows and one
-- denied; skips if every part skipped.
function M.any(parts)
  local name, steps = parts_of("any", parts)
  local count = #steps
  local none = string.format("none of %d rules allowed", count)
  return D.builtin(name, function(req, ctx, trail, depth)
    local head, denied = D.open(trail, name, depth), 0
    for i = 1, count do
      local v, r, dec = steps[i](req, ctx, trail, depth + 1)
      if v == "allow" or v == "adjust" then
        head.verdict, head.reason = v, dec.rule .. ": " .. dec.reason
        return v, r, head
      end
      if v == "deny" then denied = denied + 1 end
    end
    if denied > 0 then
      head.verdict, head.reason = "deny", none
    else
      head.verdict, head.reason = "skip", "every rule skipped"
    end
    return head.verdict, req, head
  end)
end

--- Allows what `p` denies and denies what it allows (an adjustment counts as
-- an allow and is dropped). A skip stays a skip; an error stays a deny.
-- The trail of `p` is shown indented when it has more than one entry.
function M.negate(p)
  D.check(p, "policy.negate")
  local name, step = "not(" .. D.name(p) .. ")", D.step(p)
  return D.builtin(name, function(req, ctx, trail, depth)
    local head = D.open(trail, name, depth)
    local mark = #trail
    local v, _, dec = step(req, ctx, trail, depth + 1)
    if v ~= "skip" then v = v == "deny" and "allow" or "deny" end
    if #trail == mark + 1 then trail[mark + 1] = nil end
    head.verdict, head.reason = v, dec.reason
    return v, req, head
  end)
end

--- Applies `p` only where `condition` allows. Where the condition denies,
-- the result is a skip, recorded under the condition's name with its reason.
-- The condition's own adjustments are ignored: `p` sees the request as given.
-- A condition that fails (raises) denies: it never lets a request past `p`.
function M.when(condition, p)
  D.check(condition, "policy.when (condition)")
  D.check(p, "policy.when (policy)")
  local cname = D.name(condition)
  local name = "when(" .. cname .. ", " .. D.name(p) .. ")"
  local cstep, step = D.step(condition), D.step(p)
  return D.builtin(name, function(req, ctx, trail, depth)
    local mark = #trail
    local v, _, dec = cstep(req, ctx, trail, depth)
    if v == "allow" or v == "adjust" then return step(req, ctx, trail, depth) end
    if v == "deny" then
      for i = #trail, mark + 1, -1 do trail[i] = nil end
      dec = { rule = cname, verdict = "skip", reason = dec.reason, depth = depth }
      trail[mark + 1] = dec
    end
    return "skip", req, dec
  end)
end

--- The first part that does not skip decides; skips before it stay in the
-- trail. Skips if every part skips (at the top, that is a deny).
function M.first(parts)
  local name, steps = parts_of("first", parts)
  local count = #steps
  return D.builtin(name, function(req, ctx, trail, depth)
    local mark = #trail
    for i = 1, count do
      local v, r, dec = steps[i](req, ctx, trail, depth)
      if v ~= "skip" then return v, r, dec end
    end
    return "skip", req, last_after(trail, mark, name, depth)
  end)
end

return M
