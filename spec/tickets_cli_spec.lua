-- `prequalify tickets list|approve|reject|decide` as a user runs them,
-- against the emulator: 50 tickets decided as the example policy says, a
-- kill -9 mid-run followed by a rerun that decides none twice, --dry-run
-- that sends nothing, and the exit codes of docs/CLI.md.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"
local flow = require "fixtures.flow"
local cjson = require "cjson"

local POLICY = cli.ROOT .. "/examples/policies/tickets.lua"
local N = 50

-- Ticket i: every third from a laptop, every fifth for another executable;
-- the example policy approves only signtool.exe on a build-N machine.
local function attempt(i)
  return { data = flow.hash(i), machine = (i % 3 == 0 and "laptop-" or "build-") .. i,
           executable = i % 5 == 0 and "powershell.exe" or "signtool.exe",
           user = i % 2 == 0 and "local:build-bot" or "local:sample-cs-user" }
end
local function approvable(i) return i % 3 ~= 0 and i % 5 ~= 0 end

describe("prequalify tickets #emulator #nosan", function()
  local emu, token, dir, env

  hooks.emulator({ token = true, dir = "test" }, function(e, t, d) emu, token, dir = e, t, d end)
  before_each(function()
    env = cli.emu_env(emu, { PREQUALIFY_TOKEN_FILE = cli.secret_file(dir, "token", token) })
  end)

  local function open_all()
    local ids = {}
    for i = 1, N do ids[i] = assert(flow.sign(emu, attempt(i)).ticket) end
    return ids
  end

  -- Every ticket decided once, as the policy says.
  local function decided_once_as_the_policy_says(ids)
    local state = flow.state(emu)
    for i, id in ipairs(ids) do
      local t = state[id]
      assert.equal(approvable(i) and "approved" or "rejected", t.status_name, "ticket " .. i)
      assert.equal(1, #t.actions, "ticket " .. i .. " was acted on once")
    end
  end

  it("list prints each pending ticket with its environment; --json has the ticket fields", function()
    local ids = flow.open(emu, 2)
    local r = cli.run({ "tickets", "list" }, { env = env })
    assert.equal(0, r.code, r.err)
    assert.matches(ids[1], r.out, 1, true)
    assert.matches("Machine: build-2", r.out, 1, true)
    r = cli.run({ "tickets", "list", "--json" }, { env = env })
    local doc = cli.json(r)
    assert.equal(2, doc.count)
    assert.same({ ids[1], flow.DN_RELEASE, flow.USER }, { doc.tickets[1].id, doc.tickets[1].dn, doc.tickets[1].user })
    assert.is_nil(doc.tickets[1].raw)
  end)

  it("approve and reject take several ids; an invalid id exits 1 and names it", function()
    local ids = flow.open(emu, 3)
    local r = cli.run({ "tickets", "approve", ids[1], ids[2], "--comment", "release 4.2", "--uses", "1" },
      { env = env })
    assert.equal(0, r.code, r.err)
    r = cli.run({ "tickets", "reject", ids[3], "{gone}", "--comment", "no", "--final" }, { env = env })
    assert.equal(1, r.code)
    assert.matches("FailedToRejectTickets", r.err, 1, true)
    assert.matches("{gone}", r.err, 1, true)
    r = cli.run({ "tickets", "reject", ids[3], "--comment", "no", "--final" }, { env = env })
    assert.equal(0, r.code, r.err)
    local state = flow.state(emu)
    assert.same({ "approved", "approved", "rejected" },
      { state[ids[1]].status_name, state[ids[2]].status_name, state[ids[3]].status_name })
  end)

  it("approve without --comment is a usage error and sends nothing", function()
    local r = cli.run({ "tickets", "approve", "{x}" }, { env = env })
    assert.equal(2, r.code)
    assert.matches("--comment is required", r.err, 1, true)
    assert.equal(0, emu:received("Flow/Tickets"))
  end)

  it("decide approves and rejects 50 tickets as the policy says, with the trail in the report", function()
    local ids = open_all()
    local report = dir .. "/report.json"
    local r = cli.run({ "tickets", "decide", "--policy", POLICY, "--journal", dir .. "/j.jsonl", "--report", report },
      { env = env })
    assert.equal(0, r.code, r.err)
    decided_once_as_the_policy_says(ids)
    assert.matches("approved 27, rejected 23, failed 0, unknown 0, skipped 0", r.out, 1, true)
    local doc = cjson.decode(helpers.read_file(report))
    assert.equal(N, #doc.entries)
    local e3 = doc.entries[3]
    assert.same({ ids[3], "reject", "rejected" }, { e3.id, e3.decision, e3.outcome })
    assert.matches("Machine \"laptop%-3\" does not match", e3.reason)
    local rules = {}
    for _, t in ipairs(e3.trail) do rules[#rules + 1] = t.verdict .. " " .. t.rule:match("^[%w_]+") end
    assert.same({ "allow environment", "allow requesters", "skip require_single_use", "skip max_hours",
                  "skip algorithms", "allow environment_value", "deny environment_value" }, rules)
    -- A second run finds nothing pending.
    r = cli.run({ "tickets", "decide", "--policy", POLICY, "--journal", dir .. "/j.jsonl" }, { env = env })
    assert.equal(0, r.code, r.err)
    decided_once_as_the_policy_says(ids)
  end)

  it("decide after a kill -9 mid-run: the rerun decides the rest and none twice", function()
    local ids = open_all()
    -- Each decision takes a while, so that the kill meets the run mid-way.
    emu:fault{ kind = "delay", delay = 0.05, count = 1000, path = "Flow/Tickets/" }
    local journal = dir .. "/j.jsonl"
    local args = { cli.CLI, "tickets", "decide", "--policy", POLICY, "--journal", journal }
    local pipe, pid = cli.spawn(args, { env = env })
    local decided = 0
    while decided < 15 do
      local line = assert(pipe:read("l"), "the run ended before 15 decisions")
      if line:find("^approved ") or line:find("^rejected ") then decided = decided + 1 end
    end
    os.execute("kill -9 " .. pid)
    pipe:read("a")
    pipe:close()
    local done = 0
    for rec in require("prequalify.journal").records(journal) do
      if rec.type == "done" then done = done + 1 end
    end
    assert.is_true(done >= 15 and done < N, "killed mid-run: " .. done .. " done")
    emu:clear_faults()
    local r = cli.run({ "tickets", "decide", "--policy", POLICY, "--journal", journal }, { env = env })
    assert.equal(0, r.code, r.out .. r.err)
    decided_once_as_the_policy_says(ids)
  end)

  it("decide --dry-run prints what it would do and sends nothing", function()
    local ids = {}
    for i = 1, 3 do ids[i] = flow.sign(emu, { machine = "laptop-" .. i }).ticket end
    local r = cli.run({ "tickets", "decide", "--policy", POLICY, "--dry-run", "--journal", dir .. "/j.jsonl" },
      { env = env })
    assert.equal(0, r.code, r.err)
    assert.matches("would reject", r.out, 1, true)
    assert.matches("dry run: would approve 0, would reject 3", r.out, 1, true)
    assert.equal(0, emu:received("Flow/Tickets/Approve") + emu:received("Flow/Tickets/Reject"))
    local state = flow.state(emu)
    for _, id in ipairs(ids) do assert.equal("pending", state[id].status_name) end
    assert.is_nil(helpers.read_file(dir .. "/j.jsonl"))
  end)

  it("decide exits 3 when a decision's outcome is unknown, and does not resend it", function()
    local id = flow.open(emu, 1)[1]
    emu:fault{ kind = "drop", path = "Flow/Tickets/Approve" }     -- the server acted, the reply was lost
    local args = { "tickets", "decide", "--policy", POLICY, "--journal", dir .. "/j.jsonl" }
    local r = cli.run(args, { env = env })
    assert.equal(3, r.code, r.out .. r.err)
    assert.equal(1, emu:received("Flow/Tickets/Approve"))
    -- A rerun finds the ticket decided: nothing is sent.
    r = cli.run(args, { env = env })
    assert.equal(0, r.code, r.out .. r.err)
    assert.equal(1, emu:received("Flow/Tickets/Approve"))
    assert.equal(1, #flow.state(emu)[id].actions)
  end)

  it("a rerun decides again a ticket whose call did not land (the server shows it unchanged)", function()
    local id = flow.open(emu, 1)[1]
    emu:fault{ kind = "status", status = 500, path = "Flow/Tickets/Approve" }   -- nothing done, outcome unknown
    local args = { "tickets", "decide", "--policy", POLICY, "--journal", dir .. "/j.jsonl" }
    assert.equal(3, cli.run(args, { env = env }).code)
    local r = cli.run(args, { env = env })
    assert.equal(0, r.code, r.out .. r.err)
    assert.matches("note: an earlier run's 'approve' had no usable reply; the ticket is unchanged", r.out, 1, true)
    assert.equal(2, emu:received("Flow/Tickets/Approve"))
    assert.same({ "approved", 1 }, { flow.state(emu)[id].status_name, #flow.state(emu)[id].actions })
  end)

  it("decide --watch decides new tickets as they come, until SIGTERM; then exits 0", function()
    flow.sign(emu, attempt(1))
    local pipe, pid = cli.spawn({ cli.CLI, "tickets", "decide", "--policy", POLICY, "--watch", "1",
                                  "--journal", dir .. "/j.jsonl" }, { env = env })
    local function next_decision()
      while true do
        local line = assert(pipe:read("l"), "the run ended")
        if line:find("^approved ") or line:find("^rejected ") then return line end
      end
    end
    next_decision()
    local second = flow.sign(emu, attempt(3)).ticket
    assert.matches("^rejected +" .. second:gsub("%p", "%%%0"), next_decision())
    os.execute("kill -TERM " .. pid)
    local rest = pipe:read("a")
    local _, _, code = pipe:close()
    assert.equal(0, code, rest)
    assert.matches("approved 1, rejected 1, failed 0, unknown 0, skipped 0", rest, 1, true)
  end)

  it("decide without --policy is a usage error", function()
    local r = cli.run({ "tickets", "decide" }, { env = env })
    assert.equal(2, r.code)
    assert.matches("--policy is required", r.err, 1, true)
  end)
end)
