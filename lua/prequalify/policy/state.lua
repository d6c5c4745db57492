--- What a context remembers: the requests whose final decision allowed.
-- `unique` and `rate_limit` read it; `record` (called by `evaluate` for an
-- allowed request only) writes it. A hash that a later rule denies therefore
-- never counts as approved.
--
-- Layout, under `ctx.state.approvals`: `hashes[raw]` and
-- `hashes_by_env[raw .. "\0" .. dn]` (true), and `times.all`,
-- `times.user[user]`, `times.environment[dn]`: lists of approval times
-- (user and dn lower-cased).
-- @module prequalify.policy.state
local core = require "prequalify.core"
local clock = require "prequalify.policy.clock"
local rules = require "prequalify.policy.rules"
local text = require "prequalify.policy.text"

local M = {}

local function approvals(ctx, create)
  if type(ctx) ~= "table" then return nil end
  local st = ctx.state
  if st == nil then
    if not create then return nil end
    st = {}
    ctx.state = st
  end
  local a = st.approvals
  if a == nil and create then
    a = { hashes = {}, hashes_by_env = {}, times = { all = {}, user = {}, environment = {} } }
    st.approvals = a
  end
  return a
end

local function push(map, key, t)
  local list = map[key]
  if not list then list = {}; map[key] = list end
  list[#list + 1] = t
end

--- Remember that `req` was approved, at `ctx.now`.
function M.record(req, ctx)
  local a = approvals(ctx, true)
  local raw = core.b64decode(req.data) or req.data
  local dn, user = req.dn:lower(), req.user:lower()
  local t = clock.now(ctx)
  a.hashes[raw] = true
  a.hashes_by_env[raw .. "\0" .. dn] = true
  local times = a.times
  times.all[#times.all + 1] = t
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
  return rules.leaf(name, function(req, ctx)
    local a = approvals(ctx, false)
    local raw = core.b64decode(req.data) or req.data
    local seen = false
    if a and per_env then
      seen = a.hashes_by_env[raw .. "\0" .. req.dn:lower()]
    elseif a then
      seen = a.hashes[raw]
    end
    if seen then
      return "deny", text.digest(req.data) .. " was already approved " .. scope .. "in this batch"
    end
    return "allow", text.digest(req.data) .. " was not approved before " .. scope .. "in this batch"
  end)
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
  return rules.leaf(string.format("rate_limit(%d per %s by %s)", max, window, key), function(req, ctx)
    local now = clock.now(ctx)
    local a = approvals(ctx, false)
    local list, who
    if key == "user" then
      who = req.user
      list = a and a.times.user[req.user:lower()]
    elseif key == "environment" then
      who = req.dn
      list = a and a.times.environment[req.dn:lower()]
    else
      who = "this batch"
      list = a and a.times.all
    end
    -- count from the newest approval back to the edge of the window
    local n, cutoff = 0, now - per
    if list then
      for i = #list, 1, -1 do
        if list[i] <= cutoff or n >= max then break end
        n = n + 1
      end
    end
    local used = string.format("%d approval%s in the last %s (max %d)", n, n == 1 and "" or "s", window, max)
    if n >= max then return "deny", who .. " already has " .. used end
    return "allow", who .. " has " .. used
  end)
end

return M
