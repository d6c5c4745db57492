--- Bench client: what the client spends per request before the network,
-- with no network at all: validation (`prequalify.request`), a pre-built
-- policy of 8 rules (`policy.evaluate`) and the wire body (`request.encode`).
--
--   lua5.4 bench/lua/overhead.lua --requests 100000
--
-- Inputs are made before the clock starts (distinct digests, so that
-- `unique` allows each one). Every decision's trail is read, as the batch
-- needs it for denied or adjusted items. Prints one JSON line: us_total (all
-- three steps per request), us_validate_encode (the two without the policy),
-- us_policy (evaluate on already validated requests), us_rule (each rule
-- alone through evaluate), us_file_rule and us_host_rule (one rule of a
-- policy file, under the instruction budget's count hook, and the same rule
-- made by the program, without it), us_floor (what an 8-rule decision
-- holds, built directly: see 5.), in microseconds per request, and
-- allowed (must equal requests).
local sample = require "sample"
local request = require "prequalify.request"
local policy = require "prequalify.policy"
local text = require "prequalify.policy.text"
local state = require "prequalify.policy.state"

local a = sample.args(arg)
local n = math.tointeger(tonumber(a.requests or 100000))

local RULES, make_policy, NOW = sample.RULES, sample.policy, sample.NOW

-- Inputs for every step are made first and kept alive throughout, so that
-- each step runs with the same heap (the collector's work grows with it).
local digests = sample.digests(n)
local items, reqs = {}, {}
for i = 1, n do
  local f = sample.fields(digests, i)
  f.hours = 2
  items[i] = f
  reqs[i] = request.new(f)
end

local function per_request(t0) return (os.clock() - t0) / n * 1e6 end

-- 1. The whole path, as client:prequalify and the batch runner take it.
local pol, ctx = make_policy(), { now = NOW }
collectgarbage()
local allowed, trails = 0, 0
local t0 = os.clock()
for i = 1, n do
  local req = request.new(items[i])
  local d = policy.evaluate(pol, req, ctx)
  trails = trails + #d.trail
  if d.allow then
    allowed = allowed + 1
    request.encode(d.request)
  end
end
local us_total = per_request(t0)

-- 2. Validation and encoding alone.
collectgarbage()
t0 = os.clock()
for i = 1, n do request.encode(request.new(items[i])) end
local us_validate_encode = per_request(t0)

-- 3. The policy alone, on validated requests; then each rule alone (a
-- policy of one rule: evaluate's own work is in every figure).
local function policy_alone(p)
  local c = { now = NOW }
  collectgarbage()
  local t = os.clock()
  for i = 1, n do trails = trails + #policy.evaluate(p, reqs[i], c).trail end
  return per_request(t)
end
local us_policy = policy_alone(make_policy())
local us_rule = {}
for _, r in ipairs(RULES) do us_rule[r[1]] = policy_alone(r[2](policy)) end

-- 4. The instruction budget's hook: the same rule from a policy file and
-- from the program.
local RULE = [[function(req) return req.comment:find("%u+%-%d+") ~= nil, "has a ticket" end]]
local file = os.tmpname()
local f = assert(io.open(file, "w"))
f:write("return policy.rule(\"ticket\", " .. RULE .. ")\n")
f:close()
local us_file_rule = policy_alone(assert(policy.load(file)))
os.remove(file)
local us_host_rule = policy_alone(policy.rule("ticket", assert(load("return " .. RULE))()))

-- 5. The floor: the tables and strings a decision of the 8 rules holds,
-- built directly, with no rule run: the trail (six entries that every
-- decision shares, and the two whose reasons name the hash, made per
-- request with the reasons deny_hashes and unique make), the decision, and
-- the approval record that `unique` reads. No evaluator, in Lua or C, can
-- do less for the same decision; the trail is made at its size, as C would.
local function floor()
  local c, shared = { now = NOW }, policy.evaluate(make_policy(), reqs[1], { now = NOW }).trail
  local s1, s2, s3, s4, s5, s7 = shared[1], shared[2], shared[3], shared[4], shared[5], shared[7]
  local hashes_rule, unique_rule = shared[6].rule, shared[8].rule
  collectgarbage()
  local t = os.clock()
  for i = 1, n do
    local r = reqs[i]
    local data = r.data
    local d = { allow = true, verdict = "allow", request = r, committed = true, trail = {
      s1, s2, s3, s4, s5,
      { rule = hashes_rule, verdict = "allow", reason = text.digest(data, " is not on the deny list"), depth = 0 },
      s7,
      { rule = unique_rule, verdict = "allow", reason = text.digest(data, " was not approved before in this batch"),
        depth = 0 },
    } }
    state.record(r, c)
    trails = trails + #d.trail
  end
  return per_request(t)
end
local us_floor = floor()

sample.emit{ requests = n, allowed = allowed, us_total = us_total, us_validate_encode = us_validate_encode,
             us_policy = us_policy, us_rule = us_rule, us_file_rule = us_file_rule, us_host_rule = us_host_rule,
             us_floor = us_floor, trails = trails }
os.exit(allowed == n and 0 or 1)
