-- Policies over ticket views, and the ticket table from both wire shapes:
-- no network. Rules that read a field a ticket lacks skip and say which;
-- the ticket rules skip on requests.
local policy = require "prequalify.policy"
local wire = require "prequalify.tickets.wire"

local DN = [[\VED\Code Signing\Projects\Sample\Release Environment]]
local NOW = 1795512600

local function ticket(over)
  local t = { kind = "ticket", id = "{t1}", dn = DN, user = "local:build-bot", created = NOW - 600,
              environment = { ObjectDN = DN, User = "local:build-bot", Machine = "build-7",
                              Executable = "signtool.exe" } }
  for k, v in pairs(over or {}) do
    if v == "none" then t[k] = nil else t[k] = v end
  end
  return t
end

local function entry(d, i) return { d.trail[i].verdict, d.trail[i].reason } end

describe("a policy on a ticket view", function()
  it("skips rules that read a field a ticket has no, naming it, and decides on the rest", function()
    local p = policy.all{ policy.environment{ [[**\Release*]] }, policy.max_hours(4), policy.require_single_use(),
                          policy.algorithms{ "sha256" },
                          policy.deny_hashes{ "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=" },
                          policy.comment_matches("REL%-%d+"), policy.unique() }
    local d = policy.evaluate(p, ticket(), { now = NOW })
    assert.is_true(d.allow)
    assert.same({ "allow", "matches **\\Release*" }, entry(d, 1))
    assert.same({ "skip", "a ticket has no hours field" }, entry(d, 2))
    assert.same({ "skip", "a ticket has no single_use field" }, entry(d, 3))
    assert.same({ "skip", "a ticket has no digest (the rule reads algorithm)" }, entry(d, 4))
    assert.same({ "skip", "a ticket has no digest (the rule reads data)" }, entry(d, 5))
    assert.same({ "skip", "this ticket has no comment" }, entry(d, 6))
    assert.same({ "skip", "a ticket has no digest (the rule reads data)" }, entry(d, 7))
  end)

  it("a rule of your own that reads single_use skips; one that tests kind decides", function()
    local mine = policy.rule("mine", function(req) return req.single_use == true end)
    local d = policy.evaluate(policy.all{ mine, function(req) return req.kind == "ticket", "a ticket" end }, ticket())
    assert.is_true(d.allow)
    assert.same({ "skip", "a ticket has no single_use field" }, entry(d, 1))
    assert.same({ "allow", "a ticket" }, entry(d, 2))
  end)

  it("a ticket without a user skips users; with every rule skipped it is the default deny", function()
    local d = policy.evaluate(policy.users{ "local:build-bot" }, ticket{ user = "none" })
    assert.is_false(d.allow)
    assert.same({ "skip", "this ticket has no user" }, entry(d, 1))
    assert.equal("default: no rule decided (default deny)", d.reason)
  end)

  it("a broken rule still denies, and a view without an id is refused", function()
    local d = policy.evaluate(function() error("boom") end, ticket())
    assert.is_false(d.allow)
    assert.matches("boom", d.reason)
    d = policy.evaluate(policy.max_hours(4), { kind = "ticket" })
    assert.same({ false, "validate: a ticket view needs an id (a non-empty string)" }, { d.allow, d.reason })
  end)

  it("may adjust uses, and nothing else", function()
    local d = policy.evaluate(function() return policy.adjust({ uses = 1 }, "one signing") end, ticket())
    assert.same({ "adjust", 1 }, { d.verdict, rawget(d.request, "uses") })
    d = policy.evaluate(policy.clamp_hours(8), ticket())
    assert.same({ "skip", "a ticket has no hours field" }, entry(d, 1))
    d = policy.evaluate(function() return policy.adjust({ hours = 1 }) end, ticket())
    assert.is_false(d.allow)
    assert.matches("can be adjusted only in uses, not hours", d.reason, 1, true)
  end)

  it("format_trail names the ticket", function()
    local text = policy.format_trail(policy.evaluate(policy.ticket_age(60), ticket(), { now = NOW }))
    assert.equal("DENY ticket {t1} local:build-bot " .. DN
      .. "\n  deny   ticket_age(60 s): opened 600 s ago, more than 60", text)
  end)
end)

describe("the ticket rules", function()
  local request = { dn = DN, user = "local:build-bot", comment = "c",
                    data = "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=" }

  it("ticket_age allows a young ticket and denies an old one", function()
    assert.same({ "allow", "opened 600 s ago (at most 3600)" },
      entry(policy.evaluate(policy.ticket_age(3600), ticket(), { now = NOW }), 1))
    assert.same({ "deny", "opened 600 s ago, more than 60" },
      entry(policy.evaluate(policy.ticket_age(60), ticket(), { now = NOW }), 1))
    assert.has_error(function() policy.ticket_age(0) end,
      "policy.ticket_age: expected a number of seconds > 0, got 0")
  end)

  it("requesters is users under its own name", function()
    local d = policy.evaluate(policy.requesters{ deny = { "local:build-bot" } }, ticket())
    assert.same({ "requesters(deny local:build-bot)", "deny", "local:build-bot is on the deny list" },
      { d.trail[1].rule, d.trail[1].verdict, d.trail[1].reason })
    assert.is_true(policy.evaluate(policy.requesters{ "local:build-bot" }, request).allow)
  end)

  it("environment_value matches a key exactly or without case and spaces, and skips a missing key", function()
    assert.same({ "allow", 'Machine "build-7" matches ^build%-%d+$' },
      entry(policy.evaluate(policy.environment_value("Machine", "^build%-%d+$"), ticket()), 1))
    assert.same({ "deny", 'executable "signtool.exe" does not match ^cosign$' },
      entry(policy.evaluate(policy.environment_value("executable", "^cosign$"), ticket()), 1))
    assert.same({ "skip", "this ticket's environment has no Justification" },
      entry(policy.evaluate(policy.environment_value("Justification", "."), ticket()), 1))
    assert.has_error(function() policy.environment_value("Machine", "[") end)
  end)

  it("skip on a pre-qualification request, saying so", function()
    for _, rule in ipairs{ policy.ticket_age(60), policy.environment_value("Machine", ".") } do
      assert.same({ "skip", "not a ticket (a pre-qualification request)" }, entry(policy.evaluate(rule, request), 1))
    end
  end)
end)

describe("the ticket table", function()
  local contract = {
    Id = "{t1}", RequiredApprovals = 2.0, RemainingUses = 3.0, ProductCode = 1610743809.0,
    CreationTime = "2020-06-04T16:51:30Z", ExpiresOn = "2020-06-05T18:51:30+02:00",
    Approvals = { { Universal = "{u}", Comment = "ok", ApprovalTime = "2020-06-04T17:00:00Z" } },
    Approvers = { { PrefixedUniversal = "local:{a}", Name = "approver" }, { PrefixedName = "local:b" } },
    Environment = { ["Object DN"] = DN, Requestor = "local:build-bot", Machine = "m" },
  }
  local docs = {
    Id = "{t1}", RequiredApprovals = 2, RemainingUses = 3, ProductCode = 1610743809,
    CreationTime = "/Date(1591289490000-0700)/", ExpiresOn = "/Date(1591375890000)/",
    Approvals = { { Universal = "{u}", Comment = "ok", ApprovalTime = "/Date(1591290000000)/" } },
    Approvers = { "local:{a}", "local:b" },
    Environment = { { Key = "Object DN", Value = DN }, { Key = "Requestor", Value = "local:build-bot" },
                    { Key = "Machine", Value = "m" } },
  }

  it("is the same from either wire shape", function()
    local a, b = wire.ticket(contract), wire.ticket(docs)
    a.raw, b.raw = nil, nil
    assert.same(a, b)
    assert.same({ "{t1}", 2, 3, 1610743809, DN, "local:build-bot" },
      { a.id, a.required_approvals, a.remaining_uses, a.product_code, a.dn, a.user })
    assert.equal(math.type(a.required_approvals), "integer")
    assert.same({ 1591289490, 1591375890 }, { a.created, a.expires })
    assert.same({ { universal = "{u}", comment = "ok", time = 1591290000 } }, a.approvals)
    assert.same({ "local:{a}", "local:b" }, a.approvers)
  end)

  it("reads null as nil and unknown time text as nil", function()
    local t = wire.ticket{ Id = "x", RemainingUses = require("cjson").null, NotBefore = "soon", Environment = {} }
    assert.same({ nil, nil, {} }, { t.remaining_uses, t.not_before, t.environment })
  end)
end)
