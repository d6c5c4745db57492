-- `prequalify audit` against the emulator's signing archive: it finds a
-- planted extra signing, a never-signed hash and an over-used single-use
-- hash; says what it matched on; says so when the archive lacks the data
-- hash; and reads a tickets decide journal as well as a batch report.
local prequalify = require "prequalify"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"
local flow = require "fixtures.flow"

local DN = flow.DN_RELEASE
local USER = "local:build-bot"
local H1, H2, H3, H4 = flow.hash(11), flow.hash(12), flow.hash(13), flow.hash(14)

describe("prequalify audit #emulator #nosan", function()
  local emu, token, dir, env, client

  hooks.emulator({ token = flow.MANAGE, dir = "test" }, function(e, t, d) emu, token, dir = e, t, d end)
  before_each(function()
    env = cli.emu_env(emu, { PREQUALIFY_TOKEN_FILE = cli.secret_file(dir, "token", token) })
    client = assert(prequalify.client{ url = emu.url, ca_file = emu.ca, token = token })
  end)
  after_each(function() client:close() end)

  local function item(data, single_use)
    return { dn = DN, user = USER, data = data, comment = "audit spec", single_use = single_use }
  end

  -- The batch pre-qualifies H1 (unlimited), H2 and H3 (single use); someone
  -- else pre-qualifies H3 once more, outside our records.
  local function batch(report)
    local rep = assert(client:batch({ item(H1), item(H2, true), item(H3, true) }, { report = report }))
    assert.equal(3, rep.counts.approved)
    rep:close()
    assert(client:prequalify(item(H3, true)))
  end

  local function signs(data)
    assert.is_true(flow.sign(emu, { data = data, user = USER }).allowed, "signing " .. data)
  end

  it("finds a planted extra signing, a never-signed hash and an over-used single-use hash", function()
    local report = dir .. "/report.json"
    batch(report)
    signs(H1); signs(H1); signs(H3); signs(H3)
    flow.plant(emu, { dn = DN, data = H4, user = USER, machine = "rogue-1" })
    local r = cli.run({ "audit", "--report", report }, { env = env })
    assert.equal(1, r.code, r.err)
    assert.matches("matched on: environment DN", r.out, 1, true)
    assert.matches("pre-qualified and signed: 2", r.out, 1, true)
    assert.matches("pre-qualified and never signed: 1\n  " .. H2:sub(1, 12), r.out, 1, true)
    assert.matches("signed more often than allowed: 1\n  " .. H3:sub(1, 12) .. "...  " .. USER .. "  " .. DN
      .. "  signed 2 of 1", r.out, 1, true)
    assert.matches("in our records: 1\n", r.out, 1, true)
    assert.matches(H4:sub(1, 12) .. "...  on rogue-1", r.out, 1, true)

    local doc = cli.json(cli.run({ "audit", "--report", report, "--json" }, { env = env }))
    assert.same({ DN }, doc.environments)
    assert.same({ H2 }, { doc.never_signed[1].data })
    assert.same({ H3, 2, 1 }, { doc.over_used[1].data, doc.over_used[1].signings, doc.over_used[1].allowed })
    assert.same({ H4 }, { doc.unexpected[1].artifact })
    assert.equal(2, #doc.signed)
  end)

  it("exits 0 when every pre-qualified hash was signed as allowed and nothing else was", function()
    local report = dir .. "/report.json"
    local rep = assert(client:batch({ item(H1), item(H2, true) }, { report = report }))
    rep:close()
    signs(H1); signs(H2)
    local r = cli.run({ "audit", "--report", report }, { env = env })
    assert.equal(0, r.code, r.out .. r.err)
    assert.matches("signings with no pre-qualification or ticket approval in our records: 0", r.out, 1, true)
  end)

  it("--since leaves out earlier signings", function()
    local report = dir .. "/report.json"
    local rep = assert(client:batch({ item(H1) }, { report = report }))
    rep:close()
    signs(H1)
    local later = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600)
    local r = cli.run({ "audit", "--report", report, "--since", later }, { env = env })
    assert.equal(1, r.code)
    assert.matches("pre-qualified and signed: 0", r.out, 1, true)
    assert.matches("pre-qualified and never signed: 1", r.out, 1, true)
  end)

  it("says so when the archive lacks the data hash, instead of guessing", function()
    flow.config(emu, { archive_hash_in_artifact = false })
    local report = dir .. "/report.json"
    local rep = assert(client:batch({ item(H1) }, { report = report }))
    rep:close()
    signs(H1)
    local r = cli.run({ "audit", "--report", report }, { env = env })
    assert.equal(1, r.code)
    assert.matches("archive entry has no data hash (not matched, not guessed): 1", r.out, 1, true)
    assert.matches("in our records: 0", r.out, 1, true)
    assert.matches("note: the archive lacks the data hash for 1 signing", r.out, 1, true)
  end)

  it("reads a tickets decide journal: a signing approved by a ticket is expected", function()
    flow.sign(emu, { data = H1, user = USER, machine = "build-1" })
    local journal = dir .. "/decide.jsonl"
    local r = cli.run({ "tickets", "decide", "--policy", cli.ROOT .. "/examples/policies/tickets.lua",
                        "--journal", journal }, { env = env })
    assert.equal(0, r.code, r.out .. r.err)
    assert.is_true(flow.sign(emu, { data = H1, user = USER, machine = "build-1" }).allowed)
    r = cli.run({ "audit", "--report", journal }, { env = env })
    assert.equal(0, r.code, r.out .. r.err)
    assert.matches("pre-qualified and signed: 1\n  " .. H1:sub(1, 12) .. "...  " .. USER, r.out, 1, true)
    assert.matches("(ticket {", r.out, 1, true)
  end)

  it("needs --report, and a report it can read", function()
    local r = cli.run({ "audit" }, { env = env })
    assert.equal(2, r.code)
    assert.matches("--report is required", r.err, 1, true)
    r = cli.run({ "audit", "--report", dir .. "/missing.json" }, { env = env })
    assert.equal(2, r.code)
    assert.matches("cannot read", r.err, 1, true)
  end)
end)
