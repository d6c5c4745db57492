--- Bench client: what the client spends per request before the network,
-- with no network at all: validation (`prequalify.request`), a pre-built
-- policy of 8 rules (`policy.evaluate`) and the wire body (`request.encode`).
--
--   lua5.4 bench/lua/overhead.lua --requests 100000
--
-- Inputs are made before the clock starts (distinct digests, so that
-- `unique` allows each one). Prints one JSON line: us_total (all three
-- steps per request), us_validate_encode (the two without the policy) and
-- us_policy (evaluate on already validated requests), each in microseconds
-- per request, and allowed (must equal requests).
local sample = require "sample"
local core = require "prequalify.core"
local request = require "prequalify.request"
local policy = require "prequalify.policy"

local a = sample.args(arg)
local n = math.tointeger(tonumber(a.requests or 100000))

-- A production-like policy: every rule allows the bench requests, so all
-- eight run for every request.
local blocked = {}
for i = 1, 100 do blocked[i] = core.digest_data("blocked artifact " .. i, "sha256") end
local function make_policy()
  return policy.all{
    policy.environment{ [[\VED\Code Signing\Projects\**\Production*]] },
    policy.users{ allow = { sample.USER, "local:build-bot" } },
    policy.max_hours(4),
    policy.comment_matches("%f[%w]%u[%u%d]*%-%d+"),
    policy.algorithms{ "sha256", "sha384", "sha512" },
    policy.deny_hashes(blocked),
    policy.time_window{ days = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" }, from = "00:00", to = "23:59" },
    policy.unique(),
  }
end
-- A Wednesday, 12:00 UTC.
local NOW = 1700654400

local digests = sample.digests(n)
local function inputs()
  local t = {}
  for i = 1, n do
    local f = sample.fields(digests, i)
    f.hours = 2
    t[i] = f
  end
  return t
end

local function per_request(t0) return (os.clock() - t0) / n * 1e6 end

-- 1. The whole path, as client:prequalify and the batch runner take it.
local items = inputs()
local pol, ctx = make_policy(), { now = NOW }
collectgarbage()
local allowed = 0
local t0 = os.clock()
for i = 1, n do
  local req = request.new(items[i])
  local d = policy.evaluate(pol, req, ctx)
  if d.allow then
    allowed = allowed + 1
    request.encode(d.request)
  end
end
local us_total = per_request(t0)

-- 2. Validation and encoding alone.
items = inputs()
collectgarbage()
local reqs = {}
t0 = os.clock()
for i = 1, n do
  local req = request.new(items[i])
  request.encode(req)
  reqs[i] = req
end
local us_validate_encode = per_request(t0)

-- 3. The policy alone, on validated requests.
pol, ctx = make_policy(), { now = NOW }
collectgarbage()
t0 = os.clock()
for i = 1, n do policy.evaluate(pol, reqs[i], ctx) end
local us_policy = per_request(t0)

sample.emit{ requests = n, allowed = allowed, us_total = us_total, us_validate_encode = us_validate_encode,
             us_policy = us_policy }
os.exit(allowed == n and 0 or 1)
