-- Approval policies: rules, combinators, the trail, plan() and the sandbox.
local prequalify = require "prequalify"
local policy = require "prequalify.policy"
local core = require "prequalify.core"
local lfs = require "lfs"

local PROD = [[\VED\Code Signing\Projects\Sample\Production Environment]]
local STAGING = [[\VED\Code Signing\Projects\Sample\Staging]]
local SHA256 = "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs="
local SHA256_HEX = "ab6ac567b4eac68da129cf1fbc936d0643bfeea4782c70a6d264180c9dc78cdb"
local SHA1 = "yP+m9+targSctOHqh/CgX0BlyBk="
local SHA384 = "51BLVl0QbmFMYHMezOSQ5HC/ZkMPAwhpvBmT0mqbfrf8eZapM6nhPfwUSjY9VYSL"
local SHORT = "q2rFZ7Tqxo2h..."

-- Tuesday 2026-11-24 09:30:00 UTC
local TUESDAY = 1795512600
local HOUR, DAY = 3600, 86400

local function fields(over)
  local t = {
    dn = PROD, data = SHA256, comment = "release 4.2 build 118 OPS-4711",
    user = "local:build-bot",
  }
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

local function req(over)
  return assert(prequalify.request(fields(over)))
end

-- The trail as "verdict rule: reason" lines, indented by depth.
local function lines(d)
  local out = {}
  for i, e in ipairs(d.trail) do
    out[i] = string.rep("  ", e.depth or 0) .. e.verdict .. " " .. e.rule .. ": " .. e.reason
  end
  return out
end

local function run(p, r, ctx)
  return policy.evaluate(p, r or req(), ctx)
end

-- A user rule that counts its calls.
local function spy(result, reason)
  local calls = { n = 0 }
  local fn = policy.rule("spy", function()
    calls.n = calls.n + 1
    return result, reason
  end)
  return fn, calls
end

local function digest(i, bytes)
  return core.b64encode(string.pack(">I4", i) .. string.rep("\0", (bytes or 32) - 4))
end

local function tempdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(lfs.mkdir(dir))
  return dir
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function remove_tree(dir)
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then os.remove(dir .. "/" .. name) end
  end
  lfs.rmdir(dir)
end

describe("a policy decision", function()
  it("allows when a user's rule returns true, with its reason", function()
    local d = run(policy.rule("ok", function() return true, "looks fine" end))
    assert.is_true(d.allow)
    assert.equal("allow", d.verdict)
    assert.same({ "allow ok: looks fine" }, lines(d))
  end)

  it("denies when a user's rule returns false and a reason", function()
    local d = run(policy.rule("no", function() return false, "not today" end))
    assert.is_false(d.allow)
    assert.equal("deny", d.verdict)
    assert.equal("no: not today", d.reason)
    assert.same({ "deny no: not today" }, lines(d))
  end)

  it("denies when a user's rule returns nothing", function()
    local d = run(policy.rule("forgot", function() end))
    assert.is_false(d.allow)
    assert.same({ "deny forgot: returned no decision" }, lines(d))
  end)

  it("denies when a user's rule returns nil and a reason", function()
    local d = run(policy.rule("lookup", function() return nil, "ticket not found" end))
    assert.same({ "deny lookup: ticket not found" }, lines(d))
  end)

  it("accepts the verdict strings allow, deny and skip", function()
    assert.is_true(run(policy.rule("s", function() return "allow", "yes" end)).allow)
    assert.same({ "deny s: no" }, lines(run(policy.rule("s", function() return "deny", "no" end))))
    assert.same({ "skip s: n/a", "deny default: no rule decided (default deny)" },
      lines(run(policy.rule("s", function() return "skip", "n/a" end))))
  end)

  it("accepts the verdict helpers policy.allow, deny, skip and adjust", function()
    assert.same({ "allow h: fine" }, lines(run(policy.rule("h", function() return policy.allow("fine") end))))
    assert.same({ "deny h: bad" }, lines(run(policy.rule("h", function() return policy.deny("bad") end))))
    local d = run(policy.rule("h", function() return policy.adjust({ hours = 2 }, "two hours") end))
    assert.equal("adjust", d.verdict)
    assert.equal(2, d.request.hours)
    assert.same({ "adjust h: two hours" }, lines(d))
  end)

  it("denies a rule that returns something that is not a decision", function()
    local d = run(policy.rule("odd", function() return 42 end))
    assert.is_false(d.allow)
    assert.same({ "deny odd: returned a number; expected true/false, \"allow\"/\"deny\"/\"skip\" or a decision table" },
      lines(d))
    d = run(policy.rule("odd", function() return "maybe" end))
    assert.matches('returned "maybe"', d.trail[1].reason, 1, true)
    d = run(policy.rule("odd", function() return { foo = 1 } end))
    assert.matches("returned a table that is not a decision", d.trail[1].reason, 1, true)
  end)

  it("turns an error in a user's rule into a deny with the error in the trail", function()
    local p = policy.rule("broken", function() error("lookup table missing") end)
    local d
    assert.has_no.errors(function() d = run(p) end)
    assert.is_false(d.allow)
    assert.equal("deny", d.trail[1].verdict)
    assert.matches("^error: .*policy_spec%.lua:%d+: lookup table missing$", d.trail[1].reason)
  end)

  it("turns an error object that is not a string into readable text", function()
    local obj = setmetatable({}, { __tostring = function() return "E!" end })
    local d = run(policy.rule("broken", function() error(obj) end))
    assert.same({ "deny broken: error: E!" }, lines(d))
  end)

  it("does not allow when a user's rule fails inside an allowing policy", function()
    local p = policy.all{ policy.max_hours(48), function(r) return r.nope.field end }
    local d = run(p)
    assert.is_false(d.allow)
    assert.matches("attempt to index a nil value", d.reason, 1, true)
  end)

  it("hands a user's rule a copy, so changing it changes nothing", function()
    local r = req()
    local d = run(policy.rule("meddle", function(copy)
      copy.hours, copy.dn = 9999, "x"
      return true
    end), r)
    assert.is_true(d.allow)
    assert.is_nil(r.hours)
    assert.equal(PROD, r.dn)
    assert.is_nil(d.request.hours)
    assert.equal(PROD, d.request.dn)
  end)

  it("gives a user's rule the derived fields digest_length and algorithm", function()
    local seen
    run(policy.rule("look", function(copy) seen = copy; return true end))
    assert.equal(32, seen.digest_length)
    assert.equal("sha256", seen.algorithm)
    assert.is_nil(getmetatable(seen))
  end)

  it("validates a request a user's rule returns, and denies an invalid one", function()
    local d = run(policy.rule("bad adjust", function(copy)
      copy.hours = 0
      return { allow = true, request = copy, reason = "zero hours" }
    end))
    assert.is_false(d.allow)
    assert.same({ "deny bad adjust: the adjusted request is invalid: hours must be an integer from 1 to 8760 (got 0)" },
      lines(d))
  end)

  it("sends the request a user's rule returned when it is valid", function()
    local d = run(policy.rule("short", function(copy)
      copy.hours = 3
      return { allow = true, request = copy, reason = "three hours will do" }
    end))
    assert.equal("adjust", d.verdict)
    assert.equal(3, d.request.hours)
    assert.is_true(prequalify.request(d.request) == d.request)
  end)

  it("counts an unchanged returned request as a plain allow", function()
    local d = run(policy.rule("same", function(copy) return { allow = true, request = copy } end))
    assert.equal("allow", d.verdict)
  end)

  it("keeps the trail of a policy whose decision a user's rule returns, indented under its name", function()
    local strict = policy.all{ policy.max_hours(4) }
    local d = run(policy.rule("strict for prod", function(r, ctx) return strict(r, ctx) end))
    assert.same({
      "deny strict for prod: 24 requested (server default) exceeds 4",
      "  deny max_hours(4): 24 requested (server default) exceeds 4",
    }, lines(d))
  end)

  it("names rules: given names, built-in names and anonymous functions", function()
    assert.equal("my rule", policy.name(policy.rule("my rule", function() end)))
    assert.equal("max_hours(4)", policy.name(policy.max_hours(4)))
    local line = debug.getinfo(1, "l").currentline + 1
    local anon = function() end
    assert.equal("rule at spec/policy_spec.lua:" .. line, policy.name(anon))
  end)

  it("shows an anonymous rule under its file and line in the trail", function()
    local d = run(policy.all{ function() return false, "nope" end })
    assert.matches("^deny rule at spec/policy_spec%.lua:%d+: nope$", lines(d)[1])
  end)

  it("refuses to name something that is not a function", function()
    assert.has_error(function() policy.rule("x", 42) end,
      "policy.rule: expected a function as the second argument, got number")
    assert.has_error(function() policy.rule(nil, function() end) end,
      "policy.rule: expected a name (string) as the first argument")
  end)

  it("denies by default when no rule decided", function()
    local d = run(policy.rule("abstain", function() return policy.skip("not mine") end))
    assert.is_false(d.allow)
    assert.equal("default: no rule decided (default deny)", d.reason)
  end)

  it("never changes the request it was given when a rule adjusts", function()
    local r = req()
    local d = run(policy.all{ policy.clamp_hours(8), policy.force_single_use() }, r)
    assert.is_nil(r.hours)
    assert.is_nil(r.single_use)
    assert.equal(8, d.request.hours)
    assert.is_true(d.request.single_use)
    assert.is_false(rawequal(r, d.request))
  end)

  it("makes a policy error with kind policy and the trail for a denied decision", function()
    local d = run(policy.max_hours(4))
    local err = policy.to_error(d)
    assert.equal("policy", err.kind)
    assert.equal("not_sent", err.outcome)
    assert.equal("denied by policy: max_hours(4): 24 requested (server default) exceeds 4", err.message)
    assert.equal(d.trail, err.trail)
    assert.equal(policy.to_error, policy.denial)
  end)
end)

describe("policy.all", function()
  it("allows when every rule allows, listing each in the trail", function()
    local d = run(policy.all{ policy.max_hours(24), policy.users{ allow = "local:build-bot" } })
    assert.is_true(d.allow)
    assert.same({
      "allow max_hours(24): 24 requested (server default) is within 24",
      "allow users(allow local:build-bot): local:build-bot is on the allow list",
    }, lines(d))
  end)

  it("stops at the first deny and does not run the rules after it", function()
    local after, calls = spy(true)
    local d = run(policy.all{ policy.max_hours(4), after })
    assert.is_false(d.allow)
    assert.equal(0, calls.n)
    assert.same({ "deny max_hours(4): 24 requested (server default) exceeds 4" }, lines(d))
  end)

  it("chains adjustments, so a later rule sees the adjusted request", function()
    local d = run(policy.all{ policy.clamp_hours(4), policy.max_hours(4) })
    assert.is_true(d.allow)
    assert.equal("adjust", d.verdict)
    assert.equal(4, d.request.hours)
    assert.same({
      "adjust clamp_hours(4): 24 requested (server default) clamped to 4",
      "allow max_hours(4): 4 requested is within 4",
    }, lines(d))
  end)

  it("treats a skip as neutral between allows", function()
    local d = run(policy.all{
      policy.when(policy.environment[[**\Staging]], policy.max_hours(1)),
      policy.max_hours(24),
    })
    assert.is_true(d.allow)
    assert.same({
      "skip environment(**\\Staging): " .. PROD .. " does not match **\\Staging",
      "allow max_hours(24): 24 requested (server default) is within 24",
    }, lines(d))
  end)

  it("skips when every rule skips, which denies by default", function()
    local d = run(policy.all{ policy.when(policy.environment[[**\Staging]], policy.max_hours(1)) })
    assert.is_false(d.allow)
    assert.equal("default: no rule decided (default deny)", d.reason)
  end)

  it("with no rules denies by default", function()
    assert.is_false(run(policy.all{}).allow)
  end)

  it("refuses an item that is not a policy", function()
    assert.has_error(function() policy.all{ policy.max_hours(4), "nope" } end,
      "policy.all: item 2: expected a policy (a function), got string")
  end)
end)

describe("policy.any", function()
  it("allows on the first rule that allows and does not run the rest", function()
    local later, calls = spy(true)
    local d = run(policy.any{ policy.max_hours(4), policy.users{ "local:build-bot" }, later })
    assert.is_true(d.allow)
    assert.equal(0, calls.n)
    assert.same({
      "allow any(max_hours(4), users(allow local:build-bot), spy): " ..
        "users(allow local:build-bot): local:build-bot is on the allow list",
      "  deny max_hours(4): 24 requested (server default) exceeds 4",
      "  allow users(allow local:build-bot): local:build-bot is on the allow list",
    }, lines(d))
  end)

  it("denies when no rule allows", function()
    local d = run(policy.any{ policy.max_hours(4), policy.require_single_use() })
    assert.is_false(d.allow)
    assert.equal("any(max_hours(4), require_single_use()): none of 2 rules allowed", d.reason)
  end)

  it("keeps the adjustment of the rule that allowed", function()
    local d = run(policy.any{ policy.max_hours(4), policy.clamp_hours(4) })
    assert.is_true(d.allow)
    assert.equal(4, d.request.hours)
    assert.equal("adjust", d.verdict)
  end)

  it("skips when every rule skips", function()
    local d = run(policy.any{ policy.rule("s", function() return "skip", "n/a" end) })
    assert.is_false(d.allow)
    assert.equal("default: no rule decided (default deny)", d.reason)
  end)

  it("denies when a rule fails, even if a later one would allow", function()
    local later, calls = spy(true)
    local d = run(policy.any{ policy.rule("broken", function() error("boom", 0) end), later })
    assert.is_false(d.allow)
    assert.equal(0, calls.n)
    assert.same({
      "deny any(broken, spy): a rule failed: error: boom",
      "  deny broken: error: boom",
    }, lines(d))
  end)
end)

describe("policy.negate", function()
  it("denies what its rule allows, with that rule's reason", function()
    local d = run(policy.negate(policy.users{ "local:build-bot" }))
    assert.is_false(d.allow)
    assert.same({ "deny not(users(allow local:build-bot)): local:build-bot is on the allow list" }, lines(d))
  end)

  it("allows what its rule denies", function()
    local d = run(policy.negate(policy.environment[[**\Staging]]))
    assert.is_true(d.allow)
    assert.same({ "allow not(environment(**\\Staging)): " .. PROD .. " does not match **\\Staging" }, lines(d))
  end)

  it("counts an adjustment as an allow and drops it", function()
    local d = run(policy.negate(policy.clamp_hours(4)))
    assert.is_false(d.allow)
    d = run(policy.any{ policy.negate(policy.clamp_hours(48)), policy.max_hours(48) })
    assert.is_true(d.allow)
    assert.is_nil(d.request.hours)
  end)

  it("keeps a skip a skip", function()
    local d = run(policy.negate(policy.rule("s", function() return "skip", "n/a" end)))
    assert.same({ "skip not(s): n/a", "deny default: no rule decided (default deny)" }, lines(d))
  end)

  it("does not turn an error into an allow", function()
    local d = run(policy.negate(policy.rule("broken", function() error("boom", 0) end)))
    assert.is_false(d.allow)
    assert.same({ "deny not(broken): a rule failed: error: boom", "  deny broken: error: boom" }, lines(d))
  end)

  it("shows the trail of a composite rule indented", function()
    local d = run(policy.negate(policy.all{ policy.max_hours(48), policy.users{ "local:build-bot" } }))
    assert.same({
      "deny not(all(max_hours(48), users(allow local:build-bot))): local:build-bot is on the allow list",
      "  allow max_hours(48): 24 requested (server default) is within 48",
      "  allow users(allow local:build-bot): local:build-bot is on the allow list",
    }, lines(d))
  end)
end)

describe("policy.when", function()
  it("applies its policy where the condition allows", function()
    local d = run(policy.when(policy.environment[[**\Production*]], policy.max_hours(4)))
    assert.is_false(d.allow)
    assert.same({
      "allow environment(**\\Production*): matches **\\Production*",
      "deny max_hours(4): 24 requested (server default) exceeds 4",
    }, lines(d))
    assert.equal("max_hours(4): 24 requested (server default) exceeds 4", d.reason)
  end)

  it("records the condition as a skip where it does not allow, and does not run its policy", function()
    local inner, calls = spy(false)
    local d = run(policy.all{ policy.when(policy.environment[[**\Staging]], inner), policy.max_hours(48) })
    assert.is_true(d.allow)
    assert.equal(0, calls.n)
    assert.same("skip environment(**\\Staging): " .. PROD .. " does not match **\\Staging", lines(d)[1])
  end)

  it("denies when the condition fails, so a broken condition never bypasses its policy", function()
    local d = run(policy.when(policy.rule("is prod?", function() error("boom", 0) end), policy.max_hours(1)))
    assert.is_false(d.allow)
    assert.same({ "deny is prod?: error: boom" }, lines(d))
  end)

  it("ignores adjustments made by the condition", function()
    local d = run(policy.when(policy.clamp_hours(2), policy.max_hours(48)))
    assert.is_true(d.allow)
    assert.is_nil(d.request.hours)
  end)

  it("passes on the adjustments of its policy", function()
    local d = run(policy.when(policy.environment[[**\Production*]], policy.clamp_hours(4)))
    assert.equal(4, d.request.hours)
  end)
end)

describe("policy.first", function()
  it("lets the first rule that does not skip decide", function()
    local later, calls = spy(true)
    local d = run(policy.first{
      policy.when(policy.environment[[**\Staging]], policy.max_hours(24)),
      policy.when(policy.environment[[**\Production*]], policy.max_hours(4)),
      later,
    })
    assert.is_false(d.allow)
    assert.equal(0, calls.n)
    assert.same({
      "skip environment(**\\Staging): " .. PROD .. " does not match **\\Staging",
      "allow environment(**\\Production*): matches **\\Production*",
      "deny max_hours(4): 24 requested (server default) exceeds 4",
    }, lines(d))
  end)

  it("denies by default when every rule skips", function()
    local d = run(policy.first{ policy.when(policy.environment[[**\Staging]], policy.max_hours(24)) })
    assert.is_false(d.allow)
    assert.equal("deny default: no rule decided (default deny)", lines(d)[2])
  end)
end)

describe("policy.environment", function()
  it("allows a DN that matches, naming the pattern", function()
    local d = run(policy.environment{ [[**\Production*]] })
    assert.same({ "allow environment(**\\Production*): matches **\\Production*" }, lines(d))
  end)

  it("denies a DN that does not match, naming the DN", function()
    local d = run(policy.environment{ [[**\Production*]] }, req{ dn = STAGING })
    assert.same({ "deny environment(**\\Production*): " .. STAGING .. " does not match **\\Production*" }, lines(d))
  end)

  it("lists every pattern when none of several matches", function()
    local d = run(policy.environment{ [[**\Dev]], [[**\QA]] })
    assert.equal("deny environment(**\\Dev, **\\QA): " .. PROD .. " matches none of **\\Dev, **\\QA", lines(d)[1])
  end)

  it("matches without regard to case", function()
    assert.is_true(run(policy.environment[[\ved\code signing\PROJECTS\sample\production environment]]).allow)
    assert.is_true(run(policy.environment[[**\PRODUCTION*]], req{ dn = [[\VED\x\production]] }).allow)
  end)

  it("keeps * within one DN component", function()
    assert.is_false(run(policy.environment[[\VED\Code Signing\*\Production*]]).allow)
    assert.is_true(run(policy.environment[[\VED\Code Signing\Projects\*\Production*]]).allow)
    assert.is_false(run(policy.environment[[\VED\*]]).allow)
  end)

  it("lets ** cross DN components", function()
    assert.is_true(run(policy.environment[[\VED\**\Production*]]).allow)
    assert.is_true(run(policy.environment[[\VED\**]]).allow)
    assert.is_true(run(policy.environment[[**]]).allow)
  end)

  it("lets \\**\\ match no component at all", function()
    assert.is_true(run(policy.environment[[\VED\Code Signing\Projects\Sample\**\Production Environment]]).allow)
  end)

  it("matches ? to one character within a component", function()
    assert.is_true(run(policy.environment[[\VED\Code Signing\Projects\Sampl?\Production Environment]]).allow)
    assert.is_false(run(policy.environment[[\VED\Code Signing\Projects?Sample\Production Environment]]).allow)
  end)

  it("reads the same pattern from a long string and from a quoted string with escaped backslashes", function()
    local long = policy.environment[[\VED\Code Signing\**\Production*]]
    local quoted = policy.environment("\\VED\\Code Signing\\**\\Production*")
    assert.equal(policy.name(long), policy.name(quoted))
    assert.is_true(run(long).allow)
    assert.is_true(run(quoted).allow)
  end)

  it("refuses doubled backslashes, as written for JSON, with a hint", function()
    assert.has_error(function() policy.environment[[\\VED\\Code Signing\\**]] end,
      'policy.environment: pattern "\\\\\\\\VED\\\\\\\\Code Signing\\\\\\\\**" has two backslashes in a row ' ..
      '(an empty DN component); write single backslashes, e.g. [[\\VED\\Code Signing\\**]] or ' ..
      '"\\\\VED\\\\Code Signing\\\\**"')
  end)

  it("refuses a pattern that could never match a DN", function()
    assert.has_error(function() policy.environment("Production*") end,
      'policy.environment: pattern "Production*" must start with \\ (e.g. \\VED\\Code Signing\\**) ' ..
      'or with ** (e.g. **\\Production*)')
    assert.error_matches(function() policy.environment{} end, "expected DN patterns", 1, true)
  end)

  it("anchors a pattern at both ends", function()
    assert.is_false(run(policy.environment[[\VED\Code Signing]]).allow)
    assert.is_false(run(policy.environment[[**\Production]]).allow)
  end)
end)

describe("policy.users", function()
  it("allows an identity on the allow list and denies the others", function()
    local p = policy.users{ allow = { "local:build-bot", "AD+corp:jdoe" } }
    assert.same({ "allow users(allow local:build-bot, AD+corp:jdoe): local:build-bot is on the allow list" },
      lines(run(p)))
    assert.same({ "deny users(allow local:build-bot, AD+corp:jdoe): local:alice is not on the allow list" },
      lines(run(p, req{ user = "local:alice" })))
  end)

  it("denies an identity on the deny list and allows the others", function()
    local p = policy.users{ deny = "local:alice" }
    assert.same({ "deny users(deny local:alice): local:alice is on the deny list" },
      lines(run(p, req{ user = "local:alice" })))
    assert.same({ "allow users(deny local:alice): local:build-bot is not on the deny list" }, lines(run(p)))
  end)

  it("lets the deny list win over the allow list", function()
    local p = policy.users{ allow = { "local:alice" }, deny = { "local:alice" } }
    assert.same({ "deny users(allow local:alice; deny local:alice): local:alice is on the deny list" },
      lines(run(p, req{ user = "local:alice" })))
  end)

  it("compares identities without regard to case, PrefixedUniversal included", function()
    local guid = "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d4}"
    local p = policy.users{ (guid:upper():gsub("^LOCAL", "local")) }
    assert.is_true(run(p, req{ user = guid }).allow)
    assert.is_true(run(policy.users{ "AD+corp:JDoe" }, req{ user = "ad+CORP:jdoe" }).allow)
  end)

  it("does not match a name against a GUID", function()
    local p = policy.users{ "local:build-bot" }
    assert.is_false(run(p, req{ user = "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d4}" }).allow)
  end)

  it("refuses a malformed identity when the policy is built", function()
    assert.error_matches(function() policy.users{ "build-bot" } end, "must be a PrefixedName", 1, true)
    assert.has_error(function() policy.users{} end, "policy.users: expected {allow = {...}} and/or {deny = {...}}")
  end)
end)

describe("policy.max_hours", function()
  it("allows hours within the limit", function()
    assert.same({ "allow max_hours(4): 4 requested is within 4" }, lines(run(policy.max_hours(4), req{ hours = 4 })))
  end)

  it("denies more hours than the limit", function()
    assert.same({ "deny max_hours(4): 5 requested exceeds 4" }, lines(run(policy.max_hours(4), req{ hours = 5 })))
  end)

  it("counts a request without hours as the server default of 24", function()
    assert.same({ "deny max_hours(4): 24 requested (server default) exceeds 4" }, lines(run(policy.max_hours(4))))
    assert.is_true(run(policy.max_hours(24)).allow)
  end)

  it("shows hours as given when called directly with a table, 2.0 apart from 2", function()
    local p = policy.max_hours(4)
    assert.same({ "allow max_hours(4): 2 requested is within 4" }, lines(p({ hours = 2 })))
    assert.same({ "allow max_hours(4): 2.0 requested is within 4" }, lines(p({ hours = 2.0 })))
    assert.same({ "allow max_hours(24): 24 requested (server default) is within 24" },
      lines(policy.max_hours(24)({})))
  end)

  it("refuses a limit that is not a whole number of hours", function()
    assert.has_error(function() policy.max_hours(0) end,
      "policy.max_hours: expected a whole number of hours from 1 to 8760, got 0")
    assert.error_matches(function() policy.max_hours(2.5) end,
      "expected a whole number of hours from 1 to 8760, got 2.5", 1, true)
    assert.error_matches(function() policy.max_hours("4") end, "expected a whole number of hours", 1, true)
  end)
end)

describe("policy.clamp_hours", function()
  it("lowers more hours than the limit to the limit", function()
    local d = run(policy.clamp_hours(8), req{ hours = 12 })
    assert.same({ "adjust clamp_hours(8): 12 requested clamped to 8" }, lines(d))
    assert.equal(8, d.request.hours)
  end)

  it("sets the limit on a request without hours", function()
    local d = run(policy.clamp_hours(8))
    assert.same({ "adjust clamp_hours(8): 24 requested (server default) clamped to 8" }, lines(d))
    assert.equal(8, d.request.hours)
  end)

  it("leaves hours within the limit alone", function()
    local d = run(policy.clamp_hours(8), req{ hours = 2 })
    assert.same({ "allow clamp_hours(8): 2 requested is within 8" }, lines(d))
    assert.equal("allow", d.verdict)
    assert.equal(2, d.request.hours)
  end)
end)

describe("policy.require_single_use", function()
  it("allows a sign-once request", function()
    assert.same({ "allow require_single_use(): single_use is set" },
      lines(run(policy.require_single_use(), req{ single_use = true })))
  end)

  it("denies a request that may sign more than once", function()
    local text = "deny require_single_use(): single_use is not set " ..
      "(the server default allows unlimited use until expiry)"
    assert.same({ text }, lines(run(policy.require_single_use())))
    assert.same({ text }, lines(run(policy.require_single_use(), req{ single_use = false })))
  end)
end)

describe("policy.force_single_use", function()
  it("sets single_use on a request without it", function()
    local d = run(policy.force_single_use())
    assert.same({ "adjust force_single_use(): single_use set (was not set)" }, lines(d))
    assert.is_true(d.request.single_use)
  end)

  it("sets single_use on a request that said false", function()
    local d = run(policy.force_single_use(), req{ single_use = false })
    assert.same({ "adjust force_single_use(): single_use set (was false)" }, lines(d))
  end)

  it("leaves a sign-once request alone", function()
    local d = run(policy.force_single_use(), req{ single_use = true })
    assert.same({ "allow force_single_use(): single_use is already set" }, lines(d))
  end)
end)

describe("policy.comment_matches", function()
  it("allows a comment in which the pattern is found", function()
    assert.same({ 'allow comment_matches(%u+%-%d+): comment "release 4.2 build 118 OPS-4711" matches' },
      lines(run(policy.comment_matches("%u+%-%d+"))))
  end)

  it("denies a comment without it", function()
    assert.same({ 'deny comment_matches(%u+%-%d+): comment "nightly" does not match %u+%-%d+' },
      lines(run(policy.comment_matches("%u+%-%d+"), req{ comment = "nightly" })))
  end)

  it("shortens a long comment in the reason", function()
    local d = run(policy.comment_matches("^x"), req{ comment = string.rep("a", 100) })
    assert.equal('comment "' .. string.rep("a", 57) .. '..." does not match ^x', d.trail[1].reason)
  end)

  it("shows tabs and newlines in a comment as spaces, also where a long one is cut", function()
    local p = policy.comment_matches("^x")
    assert.equal('comment "a b c" does not match ^x', run(p, req{ comment = "a\tb\nc" }).trail[1].reason)
    local long = "a\tb\nc" .. string.rep("d", 60) .. "\t"
    assert.equal('comment "a b c' .. string.rep("d", 52) .. '..." does not match ^x',
      run(p, req{ comment = long }).trail[1].reason)
    assert.equal('comment "OPS-1 build 7" matches',
      run(policy.comment_matches("%u+%-%d+"), req{ comment = "OPS-1\tbuild 7" }).trail[1].reason)
  end)

  it("refuses a malformed Lua pattern when the policy is built", function()
    assert.has_error(function() policy.comment_matches("[a-") end,
      'policy.comment_matches: bad Lua pattern "[a-": malformed pattern (missing \']\')')
  end)
end)

describe("policy.algorithms", function()
  local strong = { "sha256", "sha384", "sha512" }

  it("allows a digest of a listed algorithm", function()
    assert.same({ "allow algorithms(sha256, sha384, sha512): sha256 (32 bytes) is allowed" },
      lines(run(policy.algorithms(strong))))
    assert.is_true(run(policy.algorithms(strong), req{ data = SHA384 }).allow)
  end)

  it("denies a digest of another algorithm, judged by its length", function()
    assert.same({ "deny algorithms(sha256, sha384, sha512): sha1 (20 bytes) is not one of sha256, sha384, sha512" },
      lines(run(policy.algorithms(strong), req{ data = SHA1 })))
  end)

  it("denies a digest whose length is no known algorithm's", function()
    assert.same({ "deny algorithms(sha256): a 16-byte digest is not one of sha256" },
      lines(run(policy.algorithms{ "sha256" }, req{ data = digest(1, 16) })))
  end)

  it("accepts names written as SHA-256", function()
    assert.equal("algorithms(sha256, sha512)", policy.name(policy.algorithms{ "SHA-512", "SHA-256" }))
  end)

  it("refuses an unknown algorithm name", function()
    assert.has_error(function() policy.algorithms{ "md5" } end,
      'policy.algorithms: unknown algorithm "md5" (expected one of sha1, sha256, sha384, sha512)')
  end)
end)

describe("policy.deny_hashes and policy.allow_hashes", function()
  local dir
  before_each(function() dir = tempdir() end)
  after_each(function() remove_tree(dir) end)

  it("deny a hash on a list of Base64 digests", function()
    local d = run(policy.deny_hashes{ SHA256, SHA1 })
    assert.same({ "deny deny_hashes(2 hashes): " .. SHORT .. " is on the deny list" }, lines(d))
  end)

  it("allow a hash that is not on the deny list", function()
    local d = run(policy.deny_hashes{ SHA1 })
    assert.same({ "allow deny_hashes(1 hash): " .. SHORT .. " is not on the deny list" }, lines(d))
  end)

  it("match a hex entry against the same hash sent as Base64, in either case", function()
    assert.is_false(run(policy.deny_hashes{ SHA256_HEX }).allow)
    assert.is_false(run(policy.deny_hashes{ SHA256_HEX:upper() }).allow)
  end)

  it("take a set of digests as well as a list", function()
    assert.is_false(run(policy.deny_hashes{ [SHA256_HEX] = true }).allow)
    assert.is_true(run(policy.deny_hashes{ [SHA256_HEX] = false }).allow)
  end)

  it("read a file of hex and Base64 digests with comments, blank lines and labels", function()
    local path = write(dir .. "/block.txt", table.concat({
      "# scanner export",
      "",
      SHA1 .. "  old.exe",
      "   " .. SHA256_HEX .. "\tbad-build.msi   # confirmed",
      SHA384,
    }, "\n") .. "\n")
    local p = policy.deny_hashes(path)
    assert.equal("deny_hashes(" .. path .. ", 3 hashes)", policy.name(p))
    assert.same({ "deny deny_hashes(" .. path .. ", 3 hashes): " .. SHORT .. " is on the deny list (" .. path ..
      ":4 bad-build.msi)" }, lines(run(p)))
    assert.is_false(run(p, req{ data = SHA384 }).allow)
  end)

  it("refuse a file with a bad line, naming the file and line but not echoing it", function()
    local path = write(dir .. "/block.txt", "# ok\n" .. SHA1 .. "\nsecret-token-value\n")
    local ok, err = pcall(policy.deny_hashes, path)
    assert.is_false(ok)
    assert.matches(path .. ":3: the first word is not a hex or Base64 digest", err, 1, true)
    assert.is_nil(err:find("secret-token-value", 1, true))
  end)

  it("refuse a file that cannot be read", function()
    assert.error_matches(function() policy.deny_hashes(dir .. "/missing.txt") end,
      "policy.deny_hashes: cannot read", 1, true)
  end)

  it("refuse a list entry that is no digest", function()
    assert.has_error(function() policy.allow_hashes{ "not a digest" } end,
      "policy.allow_hashes: entry 1 is not a hex or Base64 digest")
  end)

  it("allow only listed hashes with allow_hashes", function()
    assert.same({ "allow allow_hashes(1 hash): " .. SHORT .. " is on the allow list" },
      lines(run(policy.allow_hashes{ SHA256 })))
    assert.same({ "deny allow_hashes(1 hash): " .. SHORT .. " is not on the allow list" },
      lines(run(policy.allow_hashes{ SHA1 })))
  end)
end)

describe("policy.time_window", function()
  local weekdays = { "mon", "tue", "wed", "thu", "fri" }
  local p = policy.time_window{ days = weekdays, hours = { 9, 17 }, utc_offset = "+01:00" }

  it("allows inside the window, showing the local time", function()
    assert.same({ "allow time_window(mon-fri 09:00-17:00 UTC+01:00): " ..
      "Tue 2026-11-24 10:30 UTC+01:00 is inside mon-fri 09:00-17:00" }, lines(run(p, nil, { now = TUESDAY })))
  end)

  it("denies outside the hours", function()
    assert.same({ "deny time_window(mon-fri 09:00-17:00 UTC+01:00): " ..
      "Tue 2026-11-24 17:00 UTC+01:00 is outside mon-fri 09:00-17:00" },
      lines(run(p, nil, { now = TUESDAY + 6.5 * HOUR })))
  end)

  it("denies on a day that is not listed", function()
    assert.equal("Sat 2026-11-28 10:30 UTC+01:00 is outside mon-fri 09:00-17:00",
      run(p, nil, { now = TUESDAY + 4 * DAY }).trail[1].reason)
  end)

  it("takes the day from the local time, not from UTC", function()
    -- Friday 23:30 UTC is Saturday 01:30 at UTC+2
    local friday_late = TUESDAY + 3 * DAY + 14 * HOUR
    local night = policy.time_window{ days = weekdays, utc_offset = "UTC+2" }
    assert.equal("Sat 2026-11-28 01:30 UTC+02:00 is outside mon-fri",
      run(night, nil, { now = friday_late }).trail[1].reason)
    assert.is_true(run(policy.time_window{ days = weekdays }, nil, { now = friday_late }).allow)
  end)

  it("reads from and to as HH:MM", function()
    local q = policy.time_window{ from = "09:15", to = "09:45" }
    assert.equal("time_window(09:15-09:45 UTC)", policy.name(q))
    assert.is_true(run(q, nil, { now = TUESDAY }).allow)
    assert.is_false(run(q, nil, { now = TUESDAY + 15 * 60 }).allow)
  end)

  it("runs a window past midnight when it ends before it starts", function()
    local q = policy.time_window{ hours = { 22, 6 } }
    assert.is_true(run(q, nil, { now = TUESDAY - 8 * HOUR }).allow) -- 01:30
    assert.is_false(run(q, nil, { now = TUESDAY }).allow)           -- 09:30
  end)

  it("takes the clock from a function in ctx.now", function()
    local t = TUESDAY
    local ctx = { now = function() return t end }
    assert.is_true(run(p, nil, ctx).allow)
    t = TUESDAY + 4 * DAY
    assert.is_false(run(p, nil, ctx).allow)
  end)

  it("denies when ctx.now is not a time", function()
    local d = run(p, nil, { now = "noon" })
    assert.is_false(d.allow)
    assert.matches("ctx.now must be a number", d.reason, 1, true)
  end)

  it("shows the minute of each request, also a second either side of a new minute", function()
    local q = policy.time_window{ hours = { 9, 17 } }
    assert.equal("Tue 2026-11-24 09:59 UTC is inside 09:00-17:00",
      run(q, nil, { now = TUESDAY + 29 * 60 + 59 }).trail[1].reason)
    assert.equal("Tue 2026-11-24 10:00 UTC is inside 09:00-17:00",
      run(q, nil, { now = TUESDAY + 30 * 60 }).trail[1].reason)
    assert.equal("Tue 2026-11-24 17:00 UTC is outside 09:00-17:00",
      run(q, nil, { now = TUESDAY + 7.5 * HOUR + 0.5 }).trail[1].reason)
  end)

  it("shows leap days and the turn of a century as the calendar has them", function()
    local q = policy.time_window{ days = { "mon" } }
    assert.equal("Tue 2000-02-29 12:00 UTC is outside mon", run(q, nil, { now = 951825600 }).trail[1].reason)
    assert.equal("Sun 2100-02-28 23:59 UTC is outside mon", run(q, nil, { now = 4107542399 }).trail[1].reason)
    assert.equal("Mon 2100-03-01 00:00 UTC is inside mon", run(q, nil, { now = 4107542400 }).trail[1].reason)
    assert.equal("Wed 1969-12-31 23:59 UTC is outside mon", run(q, nil, { now = -1 }).trail[1].reason)
  end)

  it("writes ranges of three or more days as a range", function()
    assert.equal("time_window(mon,tue,thu-sat UTC)",
      policy.name(policy.time_window{ days = { "Monday", "tue", "thu", "fri", "sat" } }))
  end)

  it("refuses a zone name, since only fixed offsets are known", function()
    assert.has_error(function() policy.time_window{ days = weekdays, utc_offset = "Europe/Berlin" } end,
      'policy.time_window: utc_offset "Europe/Berlin" is not a fixed offset such as "+02:00" or "UTC-5"')
  end)

  it("refuses a malformed time or day", function()
    assert.error_matches(function() policy.time_window{ from = "9am" } end, 'from must be "HH:MM"', 1, true)
    assert.error_matches(function() policy.time_window{ days = { "funday" } } end, "unknown day funday", 1, true)
    assert.error_matches(function() policy.time_window{} end, "give days, hours or from/to", 1, true)
  end)
end)

describe("policy.unique", function()
  it("denies a hash approved earlier with the same context", function()
    local ds = policy.plan({ fields(), fields{ dn = STAGING } }, policy.unique())
    assert.is_true(ds[1].allow)
    assert.same({ "allow unique(): " .. SHORT .. " was not approved before in this batch" }, lines(ds[1]))
    assert.same({ "deny unique(): " .. SHORT .. " was already approved in this batch" }, lines(ds[2]))
  end)

  it("does not count a hash that a later rule denied", function()
    local p = policy.all{ policy.unique(), policy.max_hours(4) }
    local ds = policy.plan({ fields(), fields{ hours = 2 }, fields{ hours = 3 } }, p)
    assert.is_false(ds[1].allow)
    assert.is_true(ds[2].allow)
    assert.is_false(ds[3].allow)
    assert.equal("unique(): " .. SHORT .. " was already approved in this batch", ds[3].reason)
  end)

  it("can allow the same hash once per environment", function()
    local p = policy.unique{ by = "environment" }
    local ds = policy.plan({ fields(), fields{ dn = STAGING }, fields() }, p)
    assert.is_true(ds[1].allow)
    assert.is_true(ds[2].allow)
    assert.same({ "deny unique(by environment): " .. SHORT ..
      " was already approved for this environment in this batch" }, lines(ds[3]))
  end)

  it("remembers nothing without a shared context", function()
    assert.is_true(run(policy.unique()).allow)
    assert.is_true(run(policy.unique()).allow)
  end)

  it("sees approvals recorded by evaluate, but not by decide", function()
    local ctx = {}
    assert.is_true(policy.decide(policy.unique(), req(), ctx).allow)
    assert.is_true(policy.evaluate(policy.unique(), req(), ctx).allow)
    assert.is_false(policy.evaluate(policy.unique(), req(), ctx).allow)
  end)
end)

describe("policy.rate_limit", function()
  local function batch(n, over)
    local list = {}
    for i = 1, n do list[i] = fields(over); list[i].data = digest(i) end
    return list
  end

  it("denies once a user has max approvals within the window", function()
    local p = policy.rate_limit{ max = 2, per_seconds = 3600 }
    assert.equal("rate_limit(2 per 1h by user)", policy.name(p))
    local ds = policy.plan(batch(3), p, { now = TUESDAY })
    assert.is_true(ds[1].allow)
    assert.same({ "allow rate_limit(2 per 1h by user): local:build-bot has 1 approval in the last 1h (max 2)" },
      lines(ds[2]))
    assert.same({ "deny rate_limit(2 per 1h by user): local:build-bot already has 2 approvals in the last 1h (max 2)" },
      lines(ds[3]))
  end)

  it("counts each user separately", function()
    local list = batch(3)
    list[3].user = "local:release-captain"
    local ds = policy.plan(list, policy.rate_limit{ max = 2, per_seconds = 60 }, { now = TUESDAY })
    assert.is_true(ds[3].allow)
  end)

  it("counts by environment when asked", function()
    local list = batch(3)
    list[2].user, list[3].dn = "local:other", STAGING
    local ds = policy.plan(list, policy.rate_limit{ max = 1, per_seconds = 60, key = "environment" }, { now = TUESDAY })
    assert.is_true(ds[1].allow)
    assert.equal(PROD .. " already has 1 approval in the last 1m (max 1)", ds[2].trail[1].reason)
    assert.is_true(ds[3].allow)
  end)

  it("allows again once old approvals leave the window", function()
    local t = TUESDAY
    local ctx = { now = function() return t end }
    local p = policy.rate_limit{ max = 1, per_seconds = 600 }
    local list = batch(3)
    assert.is_true(policy.evaluate(p, list[1], ctx).allow)
    t = t + 599
    assert.is_false(policy.evaluate(p, list[2], ctx).allow)
    t = t + 1
    assert.is_true(policy.evaluate(p, list[3], ctx).allow)
  end)

  it("does not count requests denied by a later rule", function()
    local p = policy.all{ policy.rate_limit{ max = 1, per_seconds = 60 }, policy.max_hours(4) }
    local list = batch(2)
    list[2].hours = 2
    local ds = policy.plan(list, p, { now = TUESDAY })
    assert.is_false(ds[1].allow)
    assert.is_true(ds[2].allow)
  end)

  it("refuses bad limits", function()
    assert.has_error(function() policy.rate_limit{ max = 0, per_seconds = 1 } end,
      "policy.rate_limit: max must be a positive integer, got 0")
    assert.error_matches(function() policy.rate_limit{ max = 1, per_seconds = -1 } end,
      "per_seconds must be a positive number", 1, true)
    assert.has_error(function() policy.rate_limit{ max = 1, per_seconds = 1, key = "dn" } end,
      'policy.rate_limit: key must be "user", "environment" or "all", got dn')
  end)
end)

describe("prequalify.plan", function()
  it("is the same function as policy.plan", function()
    assert.equal(policy.plan, prequalify.plan)
    assert.equal(policy, prequalify.policy)
  end)

  it("returns one decision per request, in input order", function()
    local list = {}
    for i = 1, 6 do list[i] = fields{ hours = i } end
    local ds = prequalify.plan(list, policy.max_hours(3))
    assert.equal(6, #ds)
    for i = 1, 6 do
      assert.equal(i <= 3, ds[i].allow)
      assert.equal(i, ds[i].request.hours)
    end
  end)

  it("does not change the requests it is given", function()
    local plain = fields()
    local normalized = req{ hours = 12 }
    local before_plain, before_norm = {}, {}
    for k, v in pairs(plain) do before_plain[k] = v end
    for k, v in pairs(normalized) do before_norm[k] = v end
    local ds = prequalify.plan({ plain, normalized }, policy.all{ policy.clamp_hours(4), policy.force_single_use() })
    assert.same(before_plain, plain)
    assert.same(before_norm, normalized)
    assert.is_nil(getmetatable(plain))
    assert.equal(4, ds[1].request.hours)
    assert.equal(4, ds[2].request.hours)
  end)

  it("denies an invalid request with the validation message", function()
    local ds = prequalify.plan({ fields{ hours = 0 }, fields() }, policy.max_hours(48))
    assert.is_false(ds[1].allow)
    assert.same({ "deny validate: hours must be an integer from 1 to 8760 (got 0)" }, lines(ds[1]))
    assert.is_nil(ds[1].request)
    assert.is_true(ds[2].allow)
  end)

  it("denies an item that is not a table instead of raising", function()
    local ds = prequalify.plan({ "oops" }, policy.max_hours(48))
    assert.same({ "deny validate: expected a table of request fields, got string" }, lines(ds[1]))
  end)

  it("shares one context across the list when none is given", function()
    local ds = prequalify.plan({ fields(), fields() }, policy.unique())
    assert.is_true(ds[1].allow)
    assert.is_false(ds[2].allow)
  end)

  it("records approvals in the context it is given", function()
    local ctx = {}
    prequalify.plan({ fields() }, policy.unique(), ctx)
    assert.is_false(prequalify.plan({ fields() }, policy.unique(), ctx)[1].allow)
    assert.is_table(ctx.state.approvals)
  end)

  it("keeps going after a rule fails on one request", function()
    local p = policy.rule("picky", function(r)
      if r.hours == 2 then error("cannot handle 2", 0) end
      return true
    end)
    local ds = prequalify.plan({ fields{ hours = 1 }, fields{ hours = 2 }, fields{ hours = 3 } }, p)
    assert.is_true(ds[1].allow)
    assert.same({ "deny picky: error: cannot handle 2" }, lines(ds[2]))
    assert.is_true(ds[3].allow)
  end)

  it("refuses arguments in the wrong order", function()
    assert.has_error(function() prequalify.plan(policy.max_hours(4), {}) end,
      "prequalify.plan: expected a list of requests, got function")
  end)
end)

describe("every rule and combinator", function()
  -- One row per rule and per way a combinator decides: the request (a few
  -- fields changed), then the decision (allow, verdict, reason, what is
  -- sent) and the whole trail. Tuesday, 09:30 UTC.
  local NOT_SINGLE = "single_use is not set (the server default allows unlimited use until expiry)"
  local P = [[**\Prod*]]
  local yes, no = policy.environment{ P }, policy.environment{ [[**\Staging]] }
  local skip = policy.rule("abstain", function() return "skip", "not mine" end)
  local boom = policy.rule("boom", function() error("broken", 0) end)
  local rows = {
    { "environment", policy.environment{ P }, nil,
      { true, "allow", nil, {} }, {
        "allow environment(**\\Prod*): matches **\\Prod*",
      } },
    { "users", policy.users{ allow = "local:Build-Bot" }, nil,
      { true, "allow", nil, {} }, {
        "allow users(allow local:Build-Bot): local:build-bot is on the allow list",
      } },
    { "users deny", policy.users{ deny = "local:build-bot" }, nil,
      { false, "deny", "users(deny local:build-bot): local:build-bot is on the deny list", {} }, {
        "deny users(deny local:build-bot): local:build-bot is on the deny list",
      } },
    { "max_hours", policy.max_hours(4), { hours = 8 },
      { false, "deny", "max_hours(4): 8 requested exceeds 4", { hours = 8 } }, {
        "deny max_hours(4): 8 requested exceeds 4",
      } },
    { "clamp_hours", policy.clamp_hours(4), { hours = 8 },
      { true, "adjust", nil, { hours = 4 } }, {
        "adjust clamp_hours(4): 8 requested clamped to 4",
      } },
    { "require_single_use", policy.require_single_use(), nil,
      { false, "deny", "require_single_use(): " .. NOT_SINGLE, {} }, {
        "deny require_single_use(): " .. NOT_SINGLE,
      } },
    { "force_single_use", policy.force_single_use(), { single_use = false },
      { true, "adjust", nil, { single_use = true } }, {
        "adjust force_single_use(): single_use set (was false)",
      } },
    { "comment_matches", policy.comment_matches("OPS%-%d+"), nil,
      { true, "allow", nil, {} }, {
        "allow comment_matches(OPS%-%d+): comment \"release 4.2 build 118 OPS-4711\" matches",
      } },
    { "algorithms", policy.algorithms{ "sha384" }, nil,
      { false, "deny", "algorithms(sha384): sha256 (32 bytes) is not one of sha384", {} }, {
        "deny algorithms(sha384): sha256 (32 bytes) is not one of sha384",
      } },
    { "deny_hashes", policy.deny_hashes{ SHA256 }, nil,
      { false, "deny", "deny_hashes(1 hash): q2rFZ7Tqxo2h... is on the deny list", {} }, {
        "deny deny_hashes(1 hash): q2rFZ7Tqxo2h... is on the deny list",
      } },
    { "allow_hashes", policy.allow_hashes{ SHA256 }, nil,
      { true, "allow", nil, {} }, {
        "allow allow_hashes(1 hash): q2rFZ7Tqxo2h... is on the allow list",
      } },
    { "time_window", policy.time_window{ days = { "mon" } }, nil,
      { false, "deny", "time_window(mon UTC): Tue 2026-11-24 09:30 UTC is outside mon", {} }, {
        "deny time_window(mon UTC): Tue 2026-11-24 09:30 UTC is outside mon",
      } },
    { "unique", policy.unique(), nil,
      { true, "allow", nil, {} }, {
        "allow unique(): q2rFZ7Tqxo2h... was not approved before in this batch",
      } },
    { "rate_limit", policy.rate_limit{ max = 1, per_seconds = 60 }, nil,
      { true, "allow", nil, {} }, {
        "allow rate_limit(1 per 1m by user): local:build-bot has 0 approvals in the last 1m (max 1)",
      } },
    { "all", policy.all{ yes, policy.clamp_hours(2), policy.force_single_use() }, nil,
      { true, "adjust", nil, { hours = 2, single_use = true } }, {
        "allow environment(**\\Prod*): matches **\\Prod*",
        "adjust clamp_hours(2): 24 requested (server default) clamped to 2",
        "adjust force_single_use(): single_use set (was not set)",
      } },
    { "all deny", policy.all{ yes, no, policy.clamp_hours(2) }, nil,
      { false, "deny", "environment(**\\Staging): \\VED\\Prod does not match **\\Staging", {} }, {
        "allow environment(**\\Prod*): matches **\\Prod*",
        "deny environment(**\\Staging): \\VED\\Prod does not match **\\Staging",
      } },
    { "all skips", policy.all{ skip, skip }, nil,
      { false, "deny", "default: no rule decided (default deny)", {} }, {
        "skip abstain: not mine",
        "skip abstain: not mine",
        "deny default: no rule decided (default deny)",
      } },
    { "all empty", policy.all{}, nil,
      { false, "deny", "default: no rule decided (default deny)", {} }, {
        "deny default: no rule decided (default deny)",
      } },
    { "any", policy.any{ no, policy.clamp_hours(2), yes }, nil,
      { true, "adjust", nil, { hours = 2 } }, {
        "adjust any(environment(**\\Staging), clamp_hours(2), environment(**\\Prod*)): clamp_hours(2): "
          .. "24 requested (server default) clamped to 2",
        "  deny environment(**\\Staging): \\VED\\Prod does not match **\\Staging",
        "  adjust clamp_hours(2): 24 requested (server default) clamped to 2",
      } },
    { "any none", policy.any{ no, skip }, nil,
      { false, "deny", "any(environment(**\\Staging), abstain): none of 2 rules allowed", {} }, {
        "deny any(environment(**\\Staging), abstain): none of 2 rules allowed",
        "  deny environment(**\\Staging): \\VED\\Prod does not match **\\Staging",
        "  skip abstain: not mine",
      } },
    { "any skips", policy.any{ skip }, nil,
      { false, "deny", "default: no rule decided (default deny)", {} }, {
        "skip any(abstain): every rule skipped",
        "  skip abstain: not mine",
        "deny default: no rule decided (default deny)",
      } },
    { "negate", policy.negate(yes), nil,
      { false, "deny", "not(environment(**\\Prod*)): matches **\\Prod*", {} }, {
        "deny not(environment(**\\Prod*)): matches **\\Prod*",
      } },
    { "negate composite", policy.negate(policy.all{ yes, no }), nil,
      { true, "allow", nil, {} }, {
        "allow not(all(environment(**\\Prod*), environment(**\\Staging))): \\VED\\Prod does not match **\\Staging",
        "  allow environment(**\\Prod*): matches **\\Prod*",
        "  deny environment(**\\Staging): \\VED\\Prod does not match **\\Staging",
      } },
    { "negate skip", policy.negate(skip), nil,
      { false, "deny", "default: no rule decided (default deny)", {} }, {
        "skip not(abstain): not mine",
        "deny default: no rule decided (default deny)",
      } },
    { "when", policy.when(yes, policy.clamp_hours(2)), nil,
      { true, "adjust", nil, { hours = 2 } }, {
        "allow environment(**\\Prod*): matches **\\Prod*",
        "adjust clamp_hours(2): 24 requested (server default) clamped to 2",
      } },
    { "when not", policy.when(no, policy.clamp_hours(2)), nil,
      { false, "deny", "default: no rule decided (default deny)", {} }, {
        "skip environment(**\\Staging): \\VED\\Prod does not match **\\Staging",
        "deny default: no rule decided (default deny)",
      } },
    { "first", policy.first{ skip, policy.when(no, yes), policy.max_hours(1), yes }, nil,
      { false, "deny", "max_hours(1): 24 requested (server default) exceeds 1", {} }, {
        "skip abstain: not mine",
        "skip environment(**\\Staging): \\VED\\Prod does not match **\\Staging",
        "deny max_hours(1): 24 requested (server default) exceeds 1",
      } },
    { "first skips", policy.first{ skip }, nil,
      { false, "deny", "default: no rule decided (default deny)", {} }, {
        "skip abstain: not mine",
        "deny default: no rule decided (default deny)",
      } },
    { "error in any", policy.any{ no, policy.all{ yes, boom } }, nil,
      { false, "deny", "any(environment(**\\Staging), all(environment(**\\Prod*), boom)): "
        .. "a rule failed: error: broken", {} }, {
        "deny any(environment(**\\Staging), all(environment(**\\Prod*), boom)): a rule failed: error: broken",
        "  deny environment(**\\Staging): \\VED\\Prod does not match **\\Staging",
        "  allow environment(**\\Prod*): matches **\\Prod*",
        "  deny boom: error: broken",
      } },
    { "error in negate", policy.all{ yes, policy.negate(boom) }, nil,
      { false, "deny", "not(boom): a rule failed: error: broken", {} }, {
        "allow environment(**\\Prod*): matches **\\Prod*",
        "deny not(boom): a rule failed: error: broken",
        "  deny boom: error: broken",
      } },
    { "error in when", policy.when(boom, yes), nil,
      { false, "deny", "boom: error: broken", {} }, {
        "deny boom: error: broken",
      } },

  }

  for _, row in ipairs(rows) do
    local name, p, over, want, trail = row[1], row[2], row[3], row[4], row[5]
    it("decides as documented: " .. name, function()
      local f = fields(over)
      f.dn = [[\VED\Prod]]
      local r = req(f)
      local d = policy.evaluate(p, r, { now = TUESDAY })
      assert.same({ allow = want[1], verdict = want[2], reason = want[3] },
        { allow = d.allow, verdict = d.verdict, reason = d.reason })
      local sent, out = want[4], d.request
      assert.same({ dn = r.dn, data = r.data, comment = r.comment, user = r.user,
                    hours = sent.hours, single_use = sent.single_use },
        { dn = out.dn, data = out.data, comment = out.comment, user = out.user,
          hours = out.hours, single_use = out.single_use })
      assert.same(trail, lines(d))
    end)
  end

  it("gives plain decisions that survive cjson with the same allow, trail and reasons", function()
    local cjson = require "cjson"
    for _, row in ipairs(rows) do
      local d = policy.evaluate(row[2], req(fields{ dn = [[\VED\Prod]] }), { now = TUESDAY })
      assert.is_nil(getmetatable(d))
      local back = cjson.decode(cjson.encode(d))
      assert.equal(d.allow, back.allow)
      assert.equal(d.verdict, back.verdict)
      assert.equal(d.reason, back.reason)
      assert.same(d.trail, back.trail)
      local keys = {}
      for k in pairs(d) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same(d.allow and { "allow", "committed", "request", "trail", "verdict" }
        or { "allow", "reason", "request", "trail", "verdict" }, keys)
    end
  end)
end)

describe("built-in policies", function()
  it("gives a trail read late the reasons of the moment it was decided", function()
    local t = TUESDAY
    local ctx = { now = function() return t end }
    local p = policy.all{ policy.time_window{ hours = { 9, 17 } }, policy.unique() }
    local first = policy.evaluate(p, req(), ctx)
    t = t + HOUR
    assert.is_false(policy.evaluate(p, req(), ctx).allow)
    assert.same({
      "allow time_window(09:00-17:00 UTC): Tue 2026-11-24 09:30 UTC is inside 09:00-17:00",
      "allow unique(): " .. SHORT .. " was not approved before in this batch",
    }, lines(first))
  end)

  it("denies with the rule's name and the error when a built-in rule raises", function()
    local p = policy.all{ policy.environment{ [[**\Production*]] }, policy.time_window{ hours = { 9, 17 } } }
    local d = policy.evaluate(p, req(), { now = function() error("clock broke") end })
    assert.is_false(d.allow)
    assert.equal("deny", d.verdict)
    assert.equal(2, #d.trail)
    assert.equal("allow", d.trail[1].verdict)
    assert.equal("deny", d.trail[2].verdict)
    assert.equal("time_window(09:00-17:00 UTC)", d.trail[2].rule)
    assert.matches("^error: .*clock broke$", d.trail[2].reason)
    assert.matches("^time_window%(09:00%-17:00 UTC%): error: .*clock broke$", d.reason)
  end)

  it("keeps reasons right for more users, comments and hours than it remembers", function()
    local p = policy.all{ policy.users{ deny = "local:alice" }, policy.comment_matches("%d"), policy.max_hours(5000) }
    local ds = {}
    for i = 1, 1100 do ds[i] = run(p, req{ user = "local:User" .. i, comment = "c" .. i, hours = i }) end
    for i = 1, 1100, 99 do
      assert.same({
        "allow users(deny local:alice): local:User" .. i .. " is not on the deny list",
        'allow comment_matches(%d): comment "c' .. i .. '" matches',
        "allow max_hours(5000): " .. i .. " requested is within 5000",
      }, lines(ds[i]))
    end
    assert.is_false(run(p, req{ user = "local:ALICE" }).allow)
  end)
end)

describe("policy.format_trail", function()
  it("prints a header and one line per rule", function()
    local p = policy.all{ policy.environment[[**\Production*]], policy.max_hours(4) }
    local d = policy.evaluate(p, req{ user = "local:sample-cs-user" })
    assert.equal(table.concat({
      "DENY " .. PROD .. " local:sample-cs-user sha256 " .. SHORT,
      "  allow  environment(**\\Production*): matches **\\Production*",
      "  deny   max_hours(4): 24 requested (server default) exceeds 4",
    }, "\n"), policy.format_trail(d))
  end)

  it("indents nested rules after the verdict column", function()
    local d = run(policy.any{ policy.max_hours(4), policy.clamp_hours(4) })
    assert.equal(table.concat({
      "ALLOW " .. PROD .. " local:build-bot sha256 " .. SHORT,
      "  adjust any(max_hours(4), clamp_hours(4)): clamp_hours(4): 24 requested (server default) clamped to 4",
      "  deny     max_hours(4): 24 requested (server default) exceeds 4",
      "  adjust   clamp_hours(4): 24 requested (server default) clamped to 4",
    }, "\n"), policy.explain(d))
  end)

  it("prints an invalid request with what it has", function()
    local d = policy.evaluate(policy.max_hours(4), { dn = "nope", user = "local:x" })
    assert.equal("DENY (invalid request) nope local:x\n" ..
      "  deny   validate: dn must start with \\VED\\ (a TPP distinguished name)", policy.format_trail(d))
  end)
end)

describe("policy.load", function()
  local dir
  before_each(function() dir = tempdir() end)
  after_each(function() remove_tree(dir) end)

  local function load_text(text, name)
    return policy.load(write(dir .. "/" .. (name or "p.lua"), text))
  end

  -- A file whose first line does `code` and that would otherwise be fine.
  local function refused(code)
    local p, err = load_text(code .. "\nreturn policy.max_hours(4)\n")
    assert.is_nil(p)
    assert.equal("invalid", err.kind)
    assert.matches("p.lua:1: ", err.message, 1, true)
    return err.message
  end

  it("runs a policy file and returns its policy", function()
    local p = assert(load_text("return policy.all{ policy.max_hours(4) }\n"))
    assert.same({ "deny max_hours(4): 24 requested (server default) exceeds 4" }, lines(run(p)))
  end)

  it("offers policy through require \"prequalify.policy\" too", function()
    local p = assert(load_text('local P = require "prequalify.policy"\nreturn P.max_hours(4)\n'))
    assert.equal("max_hours(4)", policy.name(p))
  end)

  it("reads a hash list relative to the policy file", function()
    write(dir .. "/block.txt", SHA256_HEX .. "\n")
    local p = assert(load_text('return policy.deny_hashes("block.txt")\n'))
    assert.same({ "deny deny_hashes(block.txt, 1 hash): " .. SHORT .. " is on the deny list (block.txt:1)" },
      lines(run(p)))
  end)

  it("reports a syntax error with the file and line", function()
    local p, err = load_text("local x = 1\nreturn policy.all{\n")
    assert.is_nil(p)
    assert.equal("invalid", err.kind)
    assert.matches("^policy%.load: .*p%.lua:3: unexpected symbol near <eof>$", err.message)
    assert.equal(3, err.line)
  end)

  it("reports a runtime error with the file and line", function()
    local _, err = load_text("local t\n\nt.x = 1\nreturn policy.max_hours(4)\n")
    assert.matches("p%.lua:3: attempt to index a nil value %(local 't'%)", err.message)
    assert.equal(3, err.line)
  end)

  it("reports a bad rule argument at the line of the policy file", function()
    local _, err = load_text("return policy.all{\n  policy.max_hours(4),\n  policy.max_hours(0),\n}\n")
    assert.matches("p.lua:3: policy.max_hours: expected a whole number of hours from 1 to 8760, got 0",
      err.message, 1, true)
  end)

  it("reports a missing hash list at the line of the policy file", function()
    local _, err = load_text('\nreturn policy.deny_hashes("none.txt")\n')
    assert.matches("p.lua:2: policy.deny_hashes: cannot read " .. dir .. "/none.txt", err.message, 1, true)
  end)

  it("reports a file that returns nothing", function()
    local p, err = load_text("local x = policy.max_hours(4)\n")
    assert.is_nil(p)
    assert.matches("p.lua:1: returned nothing, not a policy (a function); it must end with: return <policy>",
      err.message, 1, true)
  end)

  it("reports a file that returns a table of rules, with a hint", function()
    local _, err = load_text("local x = 1\nreturn { policy.max_hours(4) }\n")
    assert.matches("p.lua:2: returned a table, not a policy (a function); wrap a list of rules: " ..
      "return policy.all{ ... }", err.message, 1, true)
    assert.equal(2, err.line)
  end)

  it("reports a file that cannot be opened", function()
    local p, err = policy.load(dir .. "/missing.lua")
    assert.is_nil(p)
    assert.equal("invalid", err.kind)
    assert.matches("cannot open", err.message, 1, true)
  end)

  it("refuses os.execute", function()
    assert.matches("os.execute is not available in a policy file", refused('os.execute("true")'), 1, true)
  end)

  it("refuses io.popen", function()
    assert.matches("io is not available in a policy file", refused('io.popen("id")'), 1, true)
  end)

  it("refuses to open a file for writing", function()
    assert.matches("io is not available in a policy file (reading or writing files)",
      refused('io.open("/tmp/pwned", "w")'), 1, true)
  end)

  it("refuses to load bytecode", function()
    assert.matches('load with mode "b" is not available in a policy file',
      refused('load("\\27Lua", "x", "b")'), 1, true)
  end)

  it("refuses a binary chunk passed to load without a mode", function()
    -- string.dump is still reachable through a string's methods; what it
    -- makes cannot be loaded
    assert.matches("attempt to load a binary chunk",
      refused('local f, why = load(("").dump(function() end)); if not f then error(why) end'), 1, true)
  end)

  it("gives a load()ed chunk the sandbox, not the host's globals", function()
    assert.matches("os.execute is not available",
      refused('load("return os.execute")()'), 1, true)
  end)

  it("refuses require of any other module", function()
    assert.matches('require "os" is not available in a policy file (only require "prequalify.policy")',
      refused('require "os"'), 1, true)
    assert.matches('require "prequalify.core" is not available', refused('require "prequalify.core"'), 1, true)
  end)

  it("refuses dofile", function()
    assert.matches("dofile is not available in a policy file", refused('dofile("/etc/hosts")'), 1, true)
  end)

  it("refuses loadfile", function()
    assert.matches("loadfile is not available in a policy file", refused('loadfile("/etc/hosts")'), 1, true)
  end)

  it("refuses os.exit", function()
    assert.matches("os.exit is not available", refused("os.exit(1)"), 1, true)
  end)

  it("refuses os.remove", function()
    assert.matches("os.remove is not available", refused('os.remove("/tmp/x")'), 1, true)
  end)

  it("refuses os.rename", function()
    assert.matches("os.rename is not available", refused('os.rename("/tmp/x", "/tmp/y")'), 1, true)
  end)

  it("refuses os.getenv, so a policy cannot copy a token into a reason", function()
    assert.matches("os.getenv is not available", refused('local t = os.getenv("TPP_TOKEN")'), 1, true)
  end)

  it("refuses the debug library", function()
    assert.matches("debug is not available", refused("debug.sethook()"), 1, true)
  end)

  it("refuses package and so loadlib", function()
    assert.matches("package is not available", refused('package.loadlib("x", "y")'), 1, true)
  end)

  it("refuses string.dump", function()
    assert.matches("string.dump is not available", refused("local d = string.dump"), 1, true)
  end)

  it("hides the string metatable", function()
    assert.matches("attempt to index a nil value", refused('local s = getmetatable("").__index'), 1, true)
  end)

  it("refuses print and collectgarbage", function()
    assert.matches("print is not available", refused('print("hi")'), 1, true)
    assert.matches("collectgarbage is not available", refused("collectgarbage()"), 1, true)
  end)

  it("allows the safe basics: string, table, math, os.time and os.date", function()
    local p = assert(load_text(table.concat({
      'local t = { ("x"):rep(2), string.upper("a"), math.max(1, 2), table.concat({ "a" }) }',
      'assert(os.time() and os.date("!%Y", 0) == "1970" and os.clock() and #t == 4)',
      'return policy.rule("ok", function() return true, tostring(select("#", 1, 2)) end)',
    }, "\n")))
    assert.same({ "allow ok: 2" }, lines(run(p)))
  end)

  it("keeps the file's globals and its changes to policy to itself", function()
    assert(load_text("leaked = true\npolicy.max_hours = nil\nreturn policy.all{}\n"))
    assert.is_nil(rawget(_G, "leaked"))
    assert.is_function(policy.max_hours)
  end)

  it("holds exactly the documented names in a policy file's environment", function()
    local p = assert(load_text(table.concat({
      "local function keys(t)",
      "  local out = {}",
      "  for k in pairs(t) do out[#out + 1] = k end",
      "  table.sort(out)",
      "  return out",
      "end",
      "local env = { _G = keys(_G) }",
      'for _, lib in ipairs{ "string", "table", "math", "utf8", "coroutine", "os", "policy" } do',
      "  env[lib] = keys(_G[lib])",
      "end",
      'return policy.rule("env", function(_, ctx) ctx.env = env; return true end)',
    }, "\n")))
    local ctx = {}
    assert.is_true(run(p, nil, ctx).allow)
    local env = ctx.env
    local function keys(t, except)
      local out = {}
      for k in pairs(t) do if not (except and except[k]) then out[#out + 1] = k end end
      table.sort(out)
      return out
    end
    assert.same({ "_G", "_VERSION", "assert", "coroutine", "error", "getmetatable", "ipairs", "load", "math", "next",
                  "os", "pairs", "pcall", "policy", "rawequal", "rawget", "rawlen", "rawset", "require", "select",
                  "setmetatable", "string", "table", "tonumber", "tostring", "type", "utf8", "xpcall" }, env._G)
    assert.same(keys(string, { dump = true }), env.string)
    assert.same(keys(table), env.table)
    assert.same(keys(math), env.math)
    assert.same(keys(utf8), env.utf8)
    assert.same(keys(coroutine), env.coroutine)
    assert.same({ "clock", "date", "difftime", "time" }, env.os)
    assert.same(keys(policy, { load = true }), env.policy)
  end)

  it("reaches string.dump only through a string's methods, and cannot load the bytecode it makes", function()
    local p = assert(load_text(table.concat({
      'local dump = ("").dump',
      "local code = dump(function() return 1 end)",
      "local f, why = load(code)",
      'return policy.rule("dump", function() return f == nil, why end)',
    }, "\n")))
    local d = run(p)
    assert.is_true(d.allow)
    assert.matches("attempt to load a binary chunk", d.trail[1].reason, 1, true)
  end)

  describe("instruction budget", function()
    local LOOP = 'return policy.rule("spin", function() while true do end end)\n'

    it("denies a rule that never returns, with the budget in the trail", function()
      local p = assert(load_text(LOOP))
      local d = run(p)
      assert.is_false(d.allow)
      assert.matches("^spin: error: .*p%.lua:1: the rule exceeded its instruction budget %(10000000 instructions%)$",
        d.reason)
      assert.is_nil(debug.gethook())
    end)

    it("takes its size from policy.load, per evaluation", function()
      local text = 'return policy.rule("count", function()\n' ..
        "local n = 0\nfor _ = 1, 20000 do n = n + 1 end\nreturn true\nend)\n"
      assert.is_true(run(assert(load_text(text))).allow)
      local small = assert(policy.load(write(dir .. "/small.lua", text), { budget = 50000 }))
      assert.is_true(run(small).allow)
      local tiny = assert(policy.load(write(dir .. "/tiny.lua", text), { budget = 1000 }))
      local d = run(tiny)
      assert.is_false(d.allow)
      assert.matches("exceeded its instruction budget (1000 instructions)", d.reason, 1, true)
      assert.is_true(run(small).allow, "the next evaluation starts with a full budget")
    end)

    it("cannot be caught by the rule itself, nor escaped into a coroutine", function()
      for _, text in ipairs{
        'local function spin() while true do end end\n' ..
          'return policy.rule("sly", function() while true do pcall(spin) end end)\n',
        'local spin = coroutine.wrap(function() while true do end end)\n' ..
          'return policy.rule("sly", function() return spin() end)\n',
        'local co = coroutine.create(function() while true do end end)\n' ..
          'return policy.rule("sly", function() return coroutine.resume(co) end)\n',
      } do
        local d = run(assert(load_text(text)))
        assert.is_false(d.allow)
        assert.matches("exceeded its instruction budget", d.reason, 1, true)
      end
    end)

    it("leaves the host's rules and built-in rules without a budget", function()
      local spins = 0
      local host = policy.rule("host", function()
        for _ = 1, 2000000 do spins = spins + 1 end
        return true
      end)
      local p = assert(load_text("return policy.max_hours(48)\n"))
      assert.is_true(run(policy.all{ p, host }).allow)
      assert.equal(2000000, spins)
    end)

    it("refuses a budget that is not a positive whole number", function()
      assert.has_error(function() policy.load(write(dir .. "/b.lua", LOOP), { budget = 0 }) end,
        "policy.load: budget must be a positive whole number of instructions, got 0")
    end)
  end)

  it("keeps the sandbox for rules that run later", function()
    local p = assert(load_text('return policy.rule("sneaky", function() os.execute("true"); return true end)\n'))
    local d = run(p)
    assert.is_false(d.allow)
    assert.matches("os.execute is not available in a policy file", d.trail[1].reason, 1, true)
  end)
end)
