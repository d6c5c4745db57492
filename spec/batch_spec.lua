-- The batch runner against the emulator: every item lands, exact outcomes
-- under injected faults, retries that do not block the others, one
-- re-authentication per wave, the journal (kill with SIGKILL, then resume),
-- SIGINT, the deadline, progress, the report and the audit log.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cjson = require "cjson"

local PATH = "PreQualify/Create"
local q = helpers.shell_quote
-- The worker runs the plain build, without the sanitizer runtime of the
-- ASan spec run.
local WORKER = "exec env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS lua5.4 "
  .. q(helpers.ROOT .. "/spec/fixtures/batch_worker.lua") .. " "

local function item(i, over)
  local t = {
    dn = helpers.DN_PROD, user = helpers.USER, comment = "batch item " .. i,
    data = (prequalify.digest.data("artifact " .. i)),
  }
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

local function items(n, prefix)
  local out = {}
  for i = 1, n do out[i] = item(i, prefix and { data = (prequalify.digest.data(prefix .. i)) }) end
  return out
end

-- Stored pre-qualifications per Data value.
local function stored_counts(emu)
  local counts = {}
  for _, p in ipairs(emu:prequalifications().items) do counts[p.data] = (counts[p.data] or 0) + 1 end
  return counts
end

local function outcomes_by_index(rep)
  local out = {}
  for e in rep:entries() do out[e.index] = e end
  return out
end

local function read_lines(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = line end
  return out
end

describe("batch #emulator", function()
  local emu, token, dir

  local function client(opts)
    local o = { url = emu.url, token = token, ca_file = emu.ca,
                retries = { max = 3, base_delay = 0, max_delay = 5 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.token_file then o.token = nil end
    return assert(prequalify.client(o))
  end

  hooks.emulator({ token = "codesign:approve", dir = "test" }, function(e, t, d) emu, token, dir = e, t, d end)

  it("lands 2,000 items at concurrency 16; the server received exactly the approved ones #slow", function()
    local c = client()
    local list = items(2000)
    local rep = assert(c:batch(list, { concurrency = 16, journal = dir .. "/j.jsonl" }))
    assert.equal("complete", rep.status)
    assert.same({ total = 2000, approved = 2000, denied = 0, failed = 0, unknown = 0, skipped = 0,
                  resumed = 0, invalid = 0 }, rep.counts)
    assert.equal(2000, rep.requests)
    assert.equal(rep.counts.approved, emu:received(PATH))
    local stored = stored_counts(emu)
    for i, it_ in ipairs(list) do
      assert.equal(1, stored[it_.data], "item " .. i)
    end
    local seen = {}
    for e in rep:entries() do
      assert.is_nil(seen[e.index])
      seen[e.index] = true
      assert.same({ "approved", 1, 200, 1, "Success" },
        { e.outcome, e.attempts, e.server.status, e.server.result, e.server.result_name })
    end
    c:close()
  end)

  it("never has more than `concurrency` requests in flight", function()
    local max_seen, inflight = 0, 0
    local c2 = client{ on_event = function(ev)
      if ev.what ~= "batch" then return end
      if ev.event == "request" then
        inflight = inflight + 1
        if inflight > max_seen then max_seen = inflight end
      elseif ev.event == "response" then
        inflight = inflight - 1
      end
    end }
    local rep = assert(c2:batch(items(60), { concurrency = 5 }))
    assert.equal(60, rep.counts.approved)
    assert.equal(5, max_seen)
    c2:close()
  end)

  describe("with a mix of denials, server refusals and faults", function()
    -- Concurrency 1 makes the order of requests, and so which request
    -- takes which queued fault, exact. A zero delay fault is a no-op.
    local function noop() emu:fault{ kind = "delay", delay = 0 } end

    local function run(opts)
      noop()                                                     -- 1 approved
      emu:fault{ kind = "status", status = 429, retry_after = "0" } -- 2: 429, then
      noop()                                                     --    approved
      emu:fault{ kind = "status", status = 503, retry_after = "0" } -- 3: 503+RA, then
      noop()                                                     --    approved
      emu:fault{ kind = "status", status = 503 }                 -- 4 failed (no Retry-After)
      emu:fault{ kind = "drop", process = true }                 -- 5 unknown, stored
      emu:fault{ kind = "drop", process = false }                -- 6 unknown, not stored
      emu:fault{ kind = "malformed" }                            -- 7 unknown, stored
      emu:fault{ kind = "status", status = 500 }                 -- 8 unknown
      noop()                                                     -- 9 server refuses (user)
      -- 10 denied by policy, 11 invalid: nothing sent
      emu:fault{ kind = "status", status = 429, count = 3 }      -- 12 failed after 3 tries
      emu:fault{ kind = "oversized" }                            -- 13 unknown
      noop()                                                     -- 14 approved
      local list = items(14)
      list[9].user = "local:nobody"
      list[10].dn = helpers.DN_STAGING
      list[11].data = "not base64!"
      local policy = prequalify.policy.environment([[**\Production Environment]])
      local o = { concurrency = 1, policy = policy, journal = dir .. "/j.jsonl" }
      for k, v in pairs(opts or {}) do o[k] = v end
      local c = client{ max_response = 64 * 1024 }
      local rep = assert(c:batch(list, o))
      c:close()
      return rep, list
    end

    it("gives each item its exact outcome and never resends an unknown", function()
      local rep, list = run()
      local by = outcomes_by_index(rep)
      local expect = {
        { "approved", 1 }, { "approved", 2 }, { "approved", 2 }, { "failed", 1 }, { "unknown", 1 },
        { "unknown", 1 }, { "unknown", 1 }, { "unknown", 1 }, { "failed", 1 }, { "denied" },
        { "failed" }, { "failed", 3 }, { "unknown", 1 }, { "approved", 1 },
      }
      for i, want in ipairs(expect) do
        assert.same(want, { by[i].outcome, by[i].attempts }, "item " .. i)
      end
      assert.same({ "server", 1002, "UserNotFound" }, { by[9].error.kind, by[9].error.result, by[9].error.result_name })
      assert.equal("policy", by[10].error.kind)
      assert.is_true(#by[10].trail >= 1)
      assert.same({ "invalid", "data" }, { by[11].error.kind, by[11].error.field })
      assert.same({ "http", 503, "rejected" }, { by[4].error.kind, by[4].error.status, by[4].error.outcome })
      assert.same({ approved = 4, denied = 1, failed = 4, unknown = 5, skipped = 0 },
        { approved = rep.counts.approved, denied = rep.counts.denied, failed = rep.counts.failed,
          unknown = rep.counts.unknown, skipped = rep.counts.skipped })
      -- 1 + 2 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 3 + 1 + 1 requests in all.
      assert.equal(16, emu:received(PATH))
      assert.equal(16, rep.requests)
      local stored = stored_counts(emu)
      for _, i in ipairs{ 5, 7, 8, 13 } do
        assert.is_true((stored[list[i].data] or 0) <= 1, "unknown item " .. i .. " sent once at most")
      end
      assert.is_nil(stored[list[6].data])
      assert.is_nil(stored[list[10].data])
      assert.equal(0, #emu:faults().items)
    end)

    it("resends unknown outcomes only with retry_unknown", function()
      emu:fault{ kind = "drop", process = true }   -- 1: unknown (the server acted), then
      noop()                                       --    approved: stored twice
      emu:fault{ kind = "status", status = 500 }   -- 2: unknown, then
      noop()                                       --    approved
      emu:fault{ kind = "malformed" }              -- 3: unknown (stored), then
      noop()                                       --    approved: stored twice
      local list = items(4)
      local rep = assert(client():batch(list, { concurrency = 1, retry_unknown = true }))
      local by = outcomes_by_index(rep)
      assert.same({ "approved", "approved", "approved", "approved" },
        { by[1].outcome, by[2].outcome, by[3].outcome, by[4].outcome })
      assert.same({ 2, 2, 2, 1 }, { by[1].attempts, by[2].attempts, by[3].attempts, by[4].attempts })
      assert.equal(7, emu:received(PATH))
      local stored = stored_counts(emu)
      assert.same({ 2, 1, 2, 1 }, { stored[list[1].data], stored[list[2].data], stored[list[3].data],
                                    stored[list[4].data] })
    end)
  end)

  it("waits out a Retry-After without holding up the other items", function()
    emu:fault{ kind = "status", status = 503, retry_after = "1" }
    local order = {}
    local t0 = prequalify.core.monotonic()
    local rep = assert(client():batch(items(20), {
      concurrency = 4,
      on_result = function(e) order[#order + 1] = e end,
    }))
    local took = prequalify.core.monotonic() - t0
    assert.equal(20, rep.counts.approved)
    local last = order[#order]
    assert.equal(2, last.attempts)
    for i = 1, 19 do assert.equal(1, order[i].attempts) end
    -- The wait is honoured; the upper bound is generous (ASan, a loaded
    -- machine): "not held up" is what the attempt order above shows.
    assert.is_true(took >= 0.9 and took < 30, "took " .. took)
    assert.equal(21, emu:received(PATH))
  end)

  it("lists the report's entries and JSON items in input order, not the order they finished", function()
    emu:fault{ kind = "delay", delay = 0.3 } -- the first to arrive (one of 1-4) answers last
    local finished = {}
    local path = dir .. "/report.json"
    local gen, i = items(6), 0
    local rep = assert(client():batch(function() i = i + 1; return gen[i] end, {
      concurrency = 4, report = path,
      on_result = function(e) finished[#finished + 1] = math.tointeger(e.index) end,
    }))
    assert.is_true(finished[#finished] <= 4, "one of the first four finished last")
    local order = {}
    for e in rep:entries() do order[#order + 1] = math.tointeger(e.index) end
    assert.same({ 1, 2, 3, 4, 5, 6 }, order)
    local f = assert(io.open(path, "rb"))
    local doc = cjson.decode(f:read("a"))
    f:close()
    order = {}
    for k, e in ipairs(doc.items) do order[k] = math.tointeger(e.index) end
    assert.same({ 1, 2, 3, 4, 5, 6 }, order)
    rep:close()
  end)

  it("retries not_sent failures and reports them failed, outcome not_sent", function()
    local c = client{ url = "https://127.0.0.1:1" }
    local rep = assert(c:batch(items(3), { concurrency = 2 }))
    for e in rep:entries() do
      assert.same({ "failed", 3, "transport", "not_sent" }, { e.outcome, e.attempts, e.error.kind, e.error.outcome })
    end
  end)

  it("re-authenticates once for a wave of 401s and then lands every item", function()
    local tokfile = dir .. "/token"
    helpers.write_file(tokfile, token, "600")
    local reauths = 0
    local c = client{ token_file = tokfile, on_event = function(ev)
      if ev.event == "reauth" then reauths = reauths + 1 end
    end }
    -- The token the client holds is revoked and "another process" wrote a
    -- fresh one to the file: the whole first wave gets 401.
    local code = emu:http("GET", "/vedauth/revoke/token", nil, { Authorization = "Bearer " .. token })
    assert.equal(200, code)
    helpers.write_file(tokfile, (emu:token{}), "600")
    local rep = assert(c:batch(items(30), { concurrency = 6 }))
    assert.equal(30, rep.counts.approved)
    assert.equal(1, reauths)
    assert.equal(36, emu:received(PATH))
  end)

  it("stops after a 401 that no fresh token can fix, without a storm", function()
    emu:fault{ kind = "status", status = 401, count = 1000 }
    local rep = assert(client():batch(items(200), { concurrency = 4 }))
    assert.equal("stopped", rep.status)
    assert.matches("credentials", rep.reason, 1, true)
    assert.is_true(emu:received(PATH) <= 4)
    assert.equal(0, rep.counts.approved)
    assert.is_true(rep.not_reached > 150)
  end)

  it("stops at the deadline and lets in-flight requests finish", function()
    emu:fault{ kind = "delay", delay = 0.3, count = 1000 }
    local rep = assert(client():batch(items(40), { concurrency = 2, deadline = 0.5 }))
    assert.equal("deadline", rep.status)
    -- Counts, not a timing window: every request sent was let finish and
    -- answered, nothing was sent after the stop, and the rest was never reached.
    assert.is_true(rep.counts.approved < 40, "approved " .. rep.counts.approved)
    assert.equal(rep.counts.approved, emu:received(PATH))
    assert.equal(0, rep.counts.unknown)
    assert.equal(40, rep.counts.approved + rep.not_reached)
  end)

  describe("with a journal", function()
    it("skips on a re-run what the first run did and reports it all again", function()
      local j = dir .. "/j.jsonl"
      local list = items(50)
      local c = client()
      assert.equal(50, c:batch(list, { journal = j }).counts.approved)
      local rep = assert(c:batch(list, { journal = j }))
      assert.same({ 50, 50, 50 }, { rep.counts.total, rep.counts.approved, rep.counts.resumed })
      assert.equal(50, emu:received(PATH))
      assert.equal(0, rep.requests)
    end)

    it("reads on past a torn last line, as a crash during a write leaves it", function()
      local j = dir .. "/j.jsonl"
      local list = items(3)
      assert.equal(3, client():batch(list, { journal = j }).counts.approved)
      helpers.write_file(j, '{"type":"done","key":"abc', "ab")
      local warnings = {}
      local rep = assert(client{ warn = function(m) warnings[#warnings + 1] = m end }:batch(list, { journal = j }))
      assert.same({ 3, 3 }, { rep.counts.approved, rep.counts.resumed })
      assert.matches("1 unreadable line", warnings[1], 1, true)
      local last
      for line in io.lines(j) do last = line end
      assert.equal("end", cjson.decode(last).event)
    end)

    it("refuses a journal that another run holds", function()
      local j = dir .. "/j.jsonl"
      local held = assert(prequalify.journal.open(j))
      local rep, err = client():batch(items(2), { journal = j })
      assert.is_nil(rep)
      assert.same({ "invalid", "journal" }, { err.kind, err.field })
      assert.matches("in use", err.message, 1, true)
      held:close()
    end)

    it("reports a duplicate item once and sends it once", function()
      local list = items(3)
      list[4] = item(2)
      local rep = assert(client():batch(list, { journal = dir .. "/j.jsonl" }))
      local by = outcomes_by_index(rep)
      assert.same({ "skipped", "duplicate of item 2" }, { by[4].outcome, by[4].reason })
      assert.equal(3, emu:received(PATH))
    end)

    it("never writes a secret to the journal, the report or the audit log", function()
      local j, r, a = dir .. "/j.jsonl", dir .. "/report.json", dir .. "/audit.jsonl"
      emu:fault{ kind = "status", status = 401, count = 1,
                 body = '{"error":"invalid_token","error_description":"token ' .. token .. ' is bad"}' }
      local rep = assert(client():batch(items(5), {
        journal = j, report = r, audit = a, policy = prequalify.policy.environment("**"),
      }))
      assert.is_not_nil(rep)
      for _, path in ipairs{ j, r, a } do
        local text = assert(helpers.read_file(path))
        assert.is_true(#text > 0)
        assert.is_nil(text:find(token, 1, true), path .. " holds the token")
      end
    end)

    it("resumes after SIGKILL without sending any item twice #slow", function()
      local j = dir .. "/j.jsonl"
      local cfg = { url = emu.url, ca = emu.ca, token = token, n = 300, prefix = "kill-",
                    dn = helpers.DN_PROD, user = helpers.USER, journal = j, concurrency = 8 }
      local function worker(over)
        local t = {}
        for k, v in pairs(cfg) do t[k] = v end
        for k, v in pairs(over or {}) do t[k] = v end
        local path = dir .. "/cfg.json"
        helpers.write_file(path, cjson.encode(t))
        local p = assert(io.popen(WORKER .. q(path) .. " 2>&1"))
        local out = p:read("a")
        local ok, how, code = p:close()
        return out, ok, how, code
      end

      local out, _, how, code = worker{ kill_after = 100 }
      assert.same({ "signal", 9 }, { how, code }, out)
      -- The journal: every finished item has its done record; the ones in
      -- flight at the kill have an intent only.
      local intents, dones = {}, {}
      for rec in prequalify.journal.records(j) do
        if rec.type == "intent" then intents[rec.key] = rec.data end
        if rec.type == "done" then dones[rec.key] = rec.outcome end
      end
      local open = {}
      for k, data in pairs(intents) do if not dones[k] then open[data] = true end end
      local n_done, n_open = 0, 0
      for _ in pairs(dones) do n_done = n_done + 1 end
      for _ in pairs(open) do n_open = n_open + 1 end
      assert.is_true(n_done >= 100, "done records: " .. n_done)
      assert.is_true(n_open >= 1 and n_open <= 8, "intents without done: " .. n_open)

      -- Resume without retry_unknown: nothing sent twice, nothing missing.
      local report_path = dir .. "/r2.json"
      out, _, how, code = worker{ report = report_path }
      assert.same({ "exit", 0 }, { how, code }, out)
      local r2 = cjson.decode(helpers.read_file(report_path))
      assert.equal(300, r2.counts.total)
      assert.equal(300, #r2.items)
      assert.equal(n_open, r2.counts.unknown)
      assert.equal(300 - n_open, r2.counts.approved)
      assert.equal(n_done, r2.counts.resumed - n_open)
      local indexes = {}
      for _, e in ipairs(r2.items) do indexes[e.index] = e.outcome end
      for i = 1, 300 do assert.is_not_nil(indexes[i], "item " .. i .. " missing") end
      local stored = stored_counts(emu)
      for data, n in pairs(stored) do assert.equal(1, n, "sent twice: " .. data) end
      -- Every request the server received was one distinct item.
      assert.is_true(emu:received(PATH) <= 300)

      -- With retry_unknown, exactly the intent-without-done items go again.
      local before = emu:received(PATH)
      out, _, how, code = worker{ retry_unknown = true, report = report_path }
      assert.same({ "exit", 0 }, { how, code }, out)
      assert.equal(n_open, emu:received(PATH) - before)
      local r3 = cjson.decode(helpers.read_file(report_path))
      assert.same({ 300, 300 }, { r3.counts.total, r3.counts.approved })
      stored = stored_counts(emu)
      for data, n in pairs(stored) do
        if n > 1 then assert.is_true(open[data], "sent twice without an open intent: " .. data) end
      end
    end)
  end)

  describe("on SIGINT", function()
    local function spawn(cfg)
      local path = dir .. "/cfg.json"
      helpers.write_file(path, cjson.encode(cfg))
      return assert(io.popen(WORKER .. q(path) .. " 2>&1"))
    end

    -- The worker started with cfg, once it has reported n results: its
    -- output pipe and its PID.
    local function spawn_until(cfg, n)
      local p = spawn(cfg)
      local pid = p:read("l"):match("^PID (%d+)$")
      local results = 0
      while results < n do
        local line = assert(p:read("l"))
        if line:find("^R ") then results = results + 1 end
      end
      return p, pid
    end

    local function base(over)
      local t = { url = emu.url, ca = emu.ca, token = token, n = 200, prefix = "int-",
                  dn = helpers.DN_PROD, user = helpers.USER, journal = dir .. "/j.jsonl", concurrency = 4,
                  report = dir .. "/r.json" }
      for k, v in pairs(over or {}) do t[k] = v end
      return t
    end

    it("stops sending, finishes what is in flight, records it and exits 130", function()
      emu:fault{ kind = "delay", delay = 0.05, count = 1000 }
      local p, pid = spawn_until(base(), 20)
      os.execute("kill -INT " .. pid)
      local rest = p:read("a")
      local _, how, code = p:close()
      assert.same({ "exit", 130 }, { how, code }, rest)
      assert.matches("S interrupted", rest, 1, true)
      local rep = cjson.decode(helpers.read_file(dir .. "/r.json"))
      assert.equal("interrupted", rep.status)
      assert.is_true(rep.interrupted)
      assert.equal(0, rep.counts.unknown)
      assert.is_true(rep.not_reached > 0)
      -- Everything sent was answered and recorded: no open intents.
      local intents, dones = 0, 0
      for rec in prequalify.journal.records(dir .. "/j.jsonl") do
        if rec.type == "intent" then intents = intents + 1 end
        if rec.type == "done" then dones = dones + 1 end
      end
      assert.equal(intents, dones)
      assert.equal(rep.counts.approved, emu:received(PATH))
    end)

    it("ends at once on a second signal", function()
      emu:fault{ kind = "delay", delay = 0.05, count = 10 }
      emu:fault{ kind = "delay", delay = 20, count = 1000 }
      local p, pid = spawn_until(base(), 10)
      local t0 = prequalify.core.monotonic()
      os.execute("kill -INT " .. pid)
      -- The second signal goes once the worker says it is stopping.
      repeat local line = assert(p:read("l")) until line:find("^STOPPING interrupted")
      os.execute("kill -INT " .. pid)
      p:read("a")
      local _, how, code = p:close()
      assert.same({ "signal", 2 }, { how, code })
      -- Well under the 20 s the delayed requests would take to finish.
      assert.is_true(prequalify.core.monotonic() - t0 < 15)
    end)
  end)

  describe("progress, report and audit", function()
    it("calls a progress function with the numbers", function()
      local seen = {}
      local list = items(10)
      list[3].dn = helpers.DN_STAGING
      local rep = assert(client():batch(list, {
        policy = prequalify.policy.environment([[**\Production Environment]]),
        progress = function(st) seen[#seen + 1] = st end,
      }))
      assert.equal(9, rep.counts.approved)
      local final = seen[#seen]
      assert.is_true(final.finished)
      assert.same({ 10, 10, 9, 1, 0, 0 },
        { final.done, final.total, final.approved, final.denied, final.failed, final.unknown })
      assert.is_number(final.rate)
    end)

    it("draws plain progress lines off a terminal", function()
      local out = {}
      local sink = { write = function(_, ...) for _, s in ipairs{ ... } do out[#out + 1] = s end end,
                     flush = function() end }
      local progress = require "prequalify.progress"
      local pr = progress.new("plain", 4, sink)
      pr.update({ total = 2, approved = 1, denied = 1, failed = 0, unknown = 0, skipped = 0 }, nil, true)
      local text = table.concat(out)
      assert.matches("2/4 done, 1 approved, 1 denied, 0 failed, 0 unknown", text, 1, true)
      assert.matches("ETA", text, 1, true)
      assert.is_nil(text:find("\r", 1, true))
    end)

    it("writes a JSON report with one entry per item and a short summary", function()
      local path = dir .. "/report.json"
      local list = items(5)
      list[2].user = "local:nobody"
      local rep = assert(client():batch(list, { report = path }))
      local doc = cjson.decode(helpers.read_file(path))
      assert.equal("complete", doc.status)
      assert.same({ 5, 4, 1 }, { doc.counts.total, doc.counts.approved, doc.counts.failed })
      assert.equal(5, #doc.items)
      for _, e in ipairs(doc.items) do
        assert.is_string(e.request.dn)
        assert.is_string(e.request.data)
        assert.is_number(e.attempts)
        assert.is_number(e.elapsed)
        assert.is_number(e.started)
      end
      local summary = rep:summary()
      assert.matches("5 items: 4 approved, 0 denied, 1 failed, 0 unknown, 0 skipped", summary, 1, true)
      assert.matches("UserNotFound", summary, 1, true)
    end)

    it("spools entries of an iterator input instead of holding them", function()
      local list, i = items(30), 0
      local rep = assert(client():batch(function()
        i = i + 1
        return list[i]
      end, { concurrency = 4 }))
      assert.is_nil(rep.items)
      local n = 0
      for e in rep:entries() do
        n = n + 1
        assert.equal("approved", e.outcome)
      end
      assert.equal(30, n)
    end)

    it("keeps the trails of denied and adjusted items, and of every item with trails = true", function()
      local policy = prequalify.policy
      local pol = policy.all{ policy.environment([[**\Production Environment]]), policy.clamp_hours(4) }
      local list = items(3)
      list[1].hours = 2
      list[2].dn = helpers.DN_STAGING
      list[3].hours = 12
      local rep = assert(client():batch(list, { concurrency = 2, policy = pol }))
      local by = outcomes_by_index(rep)
      assert.same({ "approved", "denied", "approved" }, { by[1].outcome, by[2].outcome, by[3].outcome })
      assert.is_nil(by[1].trail, "an item allowed unchanged carries no trail")
      assert.is_true(#by[2].trail >= 1)
      assert.is_true(#by[3].trail >= 1)
      assert.equal(4, by[3].sent.hours)
      local two = items(2)
      for _, it in ipairs(two) do it.hours = 2 end
      local all = assert(client():batch(two, { concurrency = 2, policy = pol, trails = true }))
      for _, e in ipairs(all.items) do assert.equal(2, #e.trail) end
    end)

    it("keys items only when a journal or an audit log records them", function()
      local journal = require "prequalify.journal"
      local plain = assert(client():batch(items(3), { concurrency = 2 }))
      for _, e in ipairs(plain.items) do assert.is_nil(e.key) end
      local list = items(3)
      local audited = assert(client():batch(list, { concurrency = 2, audit = dir .. "/keys-audit.jsonl" }))
      for _, e in ipairs(audited.items) do
        assert.equal(journal.key(assert(prequalify.request(list[e.index]))), e.key)
      end
      for _, line in ipairs(read_lines(dir .. "/keys-audit.jsonl")) do
        assert.equal(43, #cjson.decode(line).key)
      end
    end)

    it("runs a manifest with bad lines: each is reported with its line, the rest land", function()
      local m = dir .. "/m.jsonl"
      local lines = {}
      for k = 1, 6 do lines[k] = cjson.encode(item(k)) end
      lines[3] = "{ not json"
      lines[5] = cjson.encode(item(5, { hours = 0 }))
      helpers.write_file(m, table.concat(lines, "\n") .. "\n")
      local reader = assert(prequalify.manifest.read(m))
      local rep = assert(client():batch(reader, { progress = function() end }))
      assert.same({ 6, 4, 2 }, { rep.counts.total, rep.counts.approved, rep.counts.failed })
      local bad = {}
      for e in rep:entries() do if e.outcome == "failed" then bad[#bad + 1] = e.line end end
      table.sort(bad)
      assert.same({ 3, 5 }, bad)
      assert.equal(4, emu:received(PATH))
    end)

    it("logs one audit record per decision and per outcome", function()
      local a = dir .. "/audit.jsonl"
      local list = items(4)
      list[4].dn = helpers.DN_STAGING
      assert(client():batch(list, { audit = a, policy = prequalify.policy.environment([[**\Production Environment]]) }))
      local decisions, outcomes = 0, 0
      for _, line in ipairs(read_lines(a)) do
        local rec = cjson.decode(line)
        if rec.event == "decision" then decisions = decisions + 1 end
        if rec.event == "outcome" then outcomes = outcomes + 1 end
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT", rec.time)
      end
      assert.same({ 4, 4 }, { decisions, outcomes })
    end)
  end)
end)

describe("batch options", function()
  it("refuses unknown options and bad values as invalid errors", function()
    local c = assert(prequalify.client{ url = "https://127.0.0.1:1", token = "t0k3n-value" })
    local rep, err = c:batch({}, { concurency = 2 })
    assert.is_nil(rep)
    assert.same({ "invalid", "concurency" }, { err.kind, err.field })
    rep, err = c:batch({}, { concurrency = 0 })
    assert.is_nil(rep)
    assert.equal("concurrency", err.field)
    rep, err = c:batch({}, { deadline = -1 })
    assert.is_nil(rep)
    assert.equal("deadline", err.field)
    assert.error_matches(function() c:batch(42) end, "client:batch: expected an array of requests", 1, true)
    c:close()
  end)

  it("keys an item by DN (any letter case), data and user, not by its terms", function()
    local journal = require "prequalify.journal"
    local r1 = assert(prequalify.request(item(1)))
    local same = {
      assert(prequalify.request(item(1, { hours = 2, single_use = true, comment = "other" }))),
      assert(prequalify.request(item(1, { dn = item(1).dn:upper() }))),
    }
    for _, r in ipairs(same) do assert.equal(journal.key(r1), journal.key(r)) end
    for _, change in ipairs{ { user = "local:other-user" }, { data = item(2).data }, { dn = item(1).dn .. "X" } } do
      assert.not_equal(journal.key(r1), journal.key(assert(prequalify.request(item(1, change)))))
    end
  end)

  it("counts signals in C and restores the handlers", function()
    -- Whether this process catches SIGINT and SIGTERM, from the kernel's
    -- own view (/proc/self/status SigCgt, bit signo - 1).
    local function caught()
      local f <close> = assert(io.open("/proc/self/status"))
      local mask = tonumber(f:read("a"):match("SigCgt:%s*(%x+)"), 16)
      return { (mask >> 1) & 1 == 1, (mask >> 14) & 1 == 1 }
    end
    local core = prequalify.core
    local before = caught()
    assert.is_true(core.signals_install())
    assert.same({ true, true }, caught())
    os.execute("kill -TERM $PPID")
    local n, name = core.signals_pending()
    core.signals_restore()
    assert.same({ 1, "SIGTERM" }, { n, name })
    assert.same(before, caught())
  end)
end)
