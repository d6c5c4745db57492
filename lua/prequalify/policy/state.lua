--- What a context remembers: the requests whose final decision allowed.
-- `unique` and `rate_limit` read it; `record` (called by `evaluate` for an
-- allowed request only) writes it. A hash that a later rule denies therefore
-- never counts as approved.
--
-- Layout, under `ctx.state.approvals`: `hashes[data]`, the environment
-- (dn) it was approved for, or a set `{[dn] = true}` when there were
-- several (`data` is the request's Base64 text, which validation admits
-- only in its canonical form, one per digest), and `times.all`, `times.user[user]`,
-- `times.environment[dn]`: approval times as runs, `{t1, count1, t2,
-- count2, ...}`, oldest first, where a run counts the approvals at one time
-- (user and dn lower-cased). Recording is O(1) per approval and the time
-- lists grow with the distinct times (seconds, by `os.time()`), not with
-- the approvals.
-- @module prequalify.policy.state
local clock = require "prequalify.policy.clock"
local D = require "prequalify.policy.decision"
local text = require "prequalify.policy.text"

local lowered, mtype = text.lowered, math.type

local M = {}

-- The approvals in `ctx` (a table), made if missing.
local function approvals(ctx)
  local st = ctx.state
  if st == nil then
    st = {}
    ctx.state = st
  end
  local a = st.approvals
  if a == nil then
    a = { hashes = {}, times = { all = {}, user = {}, environment = {} } }
    st.approvals = a
  end
  return a
end

-- What a rule reads: the approvals in `ctx`, or nil (no state, or no table).
local function recorded(ctx)
  if ctx == nil or type(ctx) ~= "table" then return nil end
  local st = ctx.state
  if st == nil then return nil end
  return st.approvals
end

-- One more approval at time `t` in the runs `map[key]`.
local function push(map, key, t)
  local list = map[key]
  if list == nil then
    map[key] = { t, 1 }
    return
  end
  local n = #list
  if n > 0 and list[n - 1] == t then
    list[n] = list[n] + 1
  else
    list[n + 1], list[n + 2] = t, 1
  end
end

--- Remember that `req` was approved, at `ctx.now` (`ctx` is a table).
function M.record(req, ctx)
  local st = ctx.state
  local a = st ~= nil and st.approvals or approvals(ctx)
  local data = req.data
  local dn, user = lowered[req.dn], lowered[req.user]
  local t = ctx.now
  if not mtype(t) then t = clock.of(t) end
  local hashes = a.hashes
  local envs = hashes[data]
  if envs == nil then
    hashes[data] = dn
  elseif type(envs) == "table" then
    envs[dn] = true
  elseif envs ~= dn then
    hashes[data] = { [envs] = true, [dn] = true }
  end
  local times = a.times
  push(times, "all", t)
  push(times.user, user, t)
  push(times.environment, dn, t)
end

--- Denies a hash already approved earlier in the same context (a `plan`, a
-- batch, or a `ctx` the caller reuses).
-- @tparam[opt] table t `{by = "environment"}` to allow the same hash once per environment
function M.unique(t)
  local per_env = false
  if t ~= nil then
    if type(t) ~= "table" or (t.by ~= nil and t.by ~= "hash" and t.by ~= "environment") then
      error("policy.unique: expected no argument or {by = \"environment\"}", 2)
    end
    per_env = t.by == "environment"
  end
  local name = per_env and "unique(by environment)" or "unique()"
  local scope = per_env and "for this environment " or ""
  local not_before = " was not approved before " .. scope .. "in this batch"
  return D.leaf(name, function(req, ctx)
    local a = recorded(ctx)
    local data = req.data
    local envs = a and a.hashes[data]
    local seen = envs ~= nil
    if envs and per_env then
      local dn = lowered[req.dn]
      seen = envs == dn or type(envs) == "table" and envs[dn] == true
    end
    if seen then
      return "deny", text.digest(data) .. " was already approved " .. scope .. "in this batch"
    end
    return "allow", text.digest(data, not_before)
  end, true)
end

local KEYS = { user = true, environment = true, all = true }

--- Denies a request when `max` requests with the same key were approved in
-- the last `per_seconds` seconds (by `ctx.now`). Approval times are expected
-- not to go backwards.
-- @tparam table t `max` (integer), `per_seconds` (number), `key` = `"user"`
--   (default), `"environment"` or `"all"`
function M.rate_limit(t)
  if type(t) ~= "table" then error("policy.rate_limit: expected {max=, per_seconds=, key=}", 2) end
  local max, per, key = t.max, t.per_seconds, t.key or "user"
  if math.type(max) ~= "integer" or max < 1 then
    error("policy.rate_limit: max must be a positive integer, got " .. tostring(max), 2)
  end
  if type(per) ~= "number" or per <= 0 then
    error("policy.rate_limit: per_seconds must be a positive number, got " .. tostring(per), 2)
  end
  if not KEYS[key] then
    error("policy.rate_limit: key must be \"user\", \"environment\" or \"all\", got " .. tostring(key), 2)
  end
  local window = text.duration(per)
  return D.leaf(string.format("rate_limit(%d per %s by %s)", max, window, key), function(req, ctx)
    local now = clock.now(ctx)
    local a = recorded(ctx)
    local list, who
    if key == "user" then
      who = req.user
      list = a and a.times.user[lowered[who]]
    elseif key == "environment" then
      who = req.dn
      list = a and a.times.environment[lowered[who]]
    else
      who = "this batch"
      list = a and a.times.all
    end
    -- count from the newest approval back to the edge of the window
    local n, cutoff = 0, now - per
    if list then
      for i = #list - 1, 1, -2 do
        if list[i] <= cutoff then break end
        n = n + list[i + 1]
        if n >= max then n = max; break end
      end
    end
    local used = string.format("%d approval%s in the last %s (max %d)", n, n == 1 and "" or "s", window, max)
    if n >= max then return "deny", who .. " already has " .. used end
    return "allow", who .. " has " .. used
  end)
end

return M
