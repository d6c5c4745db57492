--- Built-in rules on the request's own fields: environment, users, hours,
-- single use, comment and digest algorithm. Each constructor checks its
-- arguments when the policy is built (raising for a mistake, so that
-- `policy.load` reports the line) and returns a named policy.
-- @module prequalify.policy.rules
local core = require "prequalify.core"
local D = require "prequalify.policy.decision"
local glob = require "prequalify.policy.glob"
local text = require "prequalify.policy.text"

local M = {}

local mtype = math.type
local lowered = text.lowered
local DEFAULT_HOURS = text.DEFAULT_HOURS

local HOURS_MAX = core.HOURS_MAX
-- DNs whose match a rule remembers (a batch sends few distinct ones).
local SEEN_MAX = 256

local leaf = D.leaf

-- `level` is where the caller's mistake is, counted from here.
local function strings(who, v, what, level)
  level = level or 3
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" or #v == 0 then
    error(string.format("policy.%s: expected %s (a string or a list of strings)", who, what), level)
  end
  local out = {}
  for i, s in ipairs(v) do
    if type(s) ~= "string" then
      error(string.format("policy.%s: item %d is a %s, expected a string", who, i, type(s)), level)
    end
    out[i] = s
  end
  return out
end

local function hours_arg(who, n)
  if math.type(n) ~= "integer" or n < 1 or n > HOURS_MAX then
    error(string.format("policy.%s: expected a whole number of hours from 1 to %d, got %s",
      who, HOURS_MAX, tostring(n)), 3)
  end
  return n
end

--- Allows requests whose DN matches one of the globs (see `glob`).
-- @tparam string|{string,...} patterns e.g. `[[**\Production*]]`
function M.environment(patterns)
  local list = strings("environment", patterns, "DN patterns")
  local matchers = {}
  for i, p in ipairs(list) do
    local m, why = glob.compile(p)
    if not m then error(string.format("policy.environment: pattern %q %s", p, why), 2) end
    matchers[i] = m
  end
  local shown, matches = text.list(list), {}
  for i, p in ipairs(list) do matches[i] = "matches " .. p end
  -- dn -> the index of the first pattern it matches, or false
  local seen, n_seen = {}, 0
  return leaf("environment(" .. shown .. ")", function(req)
    local dn = req.dn
    local i = seen[dn]
    if i == nil then
      i = false
      for j, m in ipairs(matchers) do
        if m(dn) then i = j; break end
      end
      if n_seen >= SEEN_MAX then seen, n_seen = {}, 0 end
      seen[dn], n_seen = i, n_seen + 1
    end
    if i then return "allow", matches[i] end
    if #list == 1 then return "deny", dn .. " does not match " .. list[1] end
    return "deny", dn .. " matches none of " .. shown
  end)
end

local function identities(who, v)
  if v == nil then return nil end
  local list = strings(who, v, "identities", 4)
  local set = {}
  for _, u in ipairs(list) do
    local ok, why = core.check("user", u)
    if not ok then error(string.format("policy.%s: %q %s", who, u, why), 3) end
    set[u:lower()] = true
  end
  return set, list
end

local allowed_users = text.memo(function(user) return user .. " is on the allow list" end, 256)
local undenied_users = text.memo(function(user) return user .. " is not on the deny list" end, 256)

--- Allows the listed identities and denies the others; or denies the listed
-- ones and allows the others; or both. Identities are PrefixedName
-- (`local:build-bot`) or PrefixedUniversal (`local:{guid}`), compared
-- without regard to case. A name does not match the same person's GUID.
-- @tparam table t `allow=` and/or `deny=`, each a string or a list; a plain list means `allow`
function M.users(t)
  if type(t) == "string" or (type(t) == "table" and t[1] ~= nil) then t = { allow = t } end
  if type(t) ~= "table" or (t.allow == nil and t.deny == nil) then
    error("policy.users: expected {allow = {...}} and/or {deny = {...}}", 2)
  end
  local allow, allow_list = identities("users", t.allow)
  local deny, deny_list = identities("users", t.deny)
  local parts = {}
  if allow_list then parts[#parts + 1] = "allow " .. text.list(allow_list) end
  if deny_list then parts[#parts + 1] = "deny " .. text.list(deny_list) end
  return leaf("users(" .. table.concat(parts, "; ") .. ")", function(req)
    local user = req.user
    local u = lowered[user]
    if deny and deny[u] then return "deny", user .. " is on the deny list" end
    if allow then
      if allow[u] then return "allow", allowed_users[user] end
      return "deny", user .. " is not on the allow list"
    end
    return "allow", undenied_users[user]
  end)
end

-- A reason `"<hours> requested<rest>"`, remembered per whole number of
-- hours (false for none); a float only comes from calling a rule directly.
local function hours_reason(rest)
  local texts = text.memo(function(hours) return text.hours_value(hours or nil) .. rest end, 64)
  return function(hours)
    if mtype(hours) == "float" then return text.hours_value(hours) .. rest end
    return texts[hours or false]
  end
end

--- Denies a validity longer than `n` hours; no `hours` counts as 24.
function M.max_hours(n)
  hours_arg("max_hours", n)
  local within = hours_reason(" is within " .. n)
  return leaf("max_hours(" .. n .. ")", function(req)
    local hours = req.hours
    if (hours or DEFAULT_HOURS) > n then return "deny", text.hours_value(hours) .. " exceeds " .. n end
    return "allow", within(hours)
  end)
end

--- Lowers a validity longer than `n` hours (or none, meaning 24) to `n`.
function M.clamp_hours(n)
  hours_arg("clamp_hours", n)
  local within, clamped = hours_reason(" is within " .. n), hours_reason(" clamped to " .. n)
  local changes = { hours = n }
  return leaf("clamp_hours(" .. n .. ")", function(req)
    local hours = req.hours
    if (hours or DEFAULT_HOURS) > n then return "adjust", clamped(hours), changes end
    return "allow", within(hours)
  end)
end

local NOT_SINGLE = "single_use is not set (the server default allows unlimited use until expiry)"

--- Denies a request that does not ask for sign-once.
function M.require_single_use()
  return leaf("require_single_use()", function(req)
    if req.single_use == true then return "allow", "single_use is set" end
    return "deny", NOT_SINGLE
  end)
end

--- Sets `single_use = true` where it is not set.
local SINGLE = { single_use = true }

function M.force_single_use()
  return leaf("force_single_use()", function(req)
    if req.single_use == true then return "allow", "single_use is already set" end
    return "adjust", req.single_use == false and "single_use set (was false)" or "single_use set (was not set)",
      SINGLE
  end)
end

local matching = text.memo(function(comment) return "comment " .. text.quote(comment) .. " matches" end, 256)

--- Allows a comment in which the Lua pattern is found (use `^`/`$` to anchor).
-- @tparam string pattern e.g. `"%u+%-%d+"` for a ticket reference such as `OPS-1234`
function M.comment_matches(pattern)
  text.check_pattern("policy.comment_matches", pattern, "a Lua pattern (string)")
  -- a batch often repeats its comments: the pattern is tried once per comment
  local found = text.memo(function(comment) return comment:find(pattern) ~= nil end, 256)
  return leaf("comment_matches(" .. pattern .. ")", function(req)
    local comment = req.comment
    if found[comment] then return "allow", matching[comment] end
    return "deny", "comment " .. text.quote(comment) .. " does not match " .. pattern
  end)
end

local LENGTHS = { sha1 = 20, sha256 = 32, sha384 = 48, sha512 = 64 }
local ORDER = { "sha1", "sha256", "sha384", "sha512" }

--- Allows digests of the listed algorithms, judged by decoded length
-- (20/32/48/64 bytes). "SHA-256 or stronger" is `{"sha256", "sha384", "sha512"}`.
-- A SHA3-256 digest has the length of a SHA-256 one and passes as `sha256`.
function M.algorithms(list)
  local names = strings("algorithms", list, "algorithm names")
  local set = {}
  for _, a in ipairs(names) do
    local key = a:lower():gsub("[-_]", "")
    if not LENGTHS[key] then
      error(string.format("policy.algorithms: unknown algorithm %q (expected one of %s)", a, text.list(ORDER)), 2)
    end
    set[key] = true
  end
  local sorted = {}
  for _, a in ipairs(ORDER) do if set[a] then sorted[#sorted + 1] = a end end
  local wanted = text.list(sorted)
  local allowed = {}
  for a in pairs(set) do allowed[a] = string.format("%s (%d bytes) is allowed", a, LENGTHS[a]) end
  return leaf("algorithms(" .. wanted .. ")", function(req)
    local alg, n = req.algorithm, req.digest_length
    if alg and set[alg] then
      if n == LENGTHS[alg] then return "allow", allowed[alg] end
      return "allow", string.format("%s (%d bytes) is allowed", alg, n)
    end
    if alg then return "deny", string.format("%s (%d bytes) is not one of %s", alg, n, wanted) end
    return "deny", string.format("a %d-byte digest is not one of %s", n, wanted)
  end)
end

return M
