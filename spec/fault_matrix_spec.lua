-- The fault matrix: every fault the emulator can inject, crossed with every
-- entry point (client:prequalify, client:batch, `prequalify submit` and
-- `prequalify batch` as subprocesses), gives the documented kind, outcome
-- and exit code; the emulator receives exactly as many requests as the retry
-- rules allow; and for the batch entry points the journal and the report
-- agree item by item.
--
-- Every expected value is written out in the tables below, from the rules
-- in DESIGN.md and docs/CLI.md, never computed by the code under test:
--   * retried, up to 3 attempts in all: not_sent failures, 429, 503 with
--     Retry-After; everything else is sent once;
--   * an `unknown` outcome (sent, no usable reply) is never resent unless
--     retry_unknown;
--   * a 401 is re-authenticated once where a fresh token can be had;
--   * exit codes: 0 all approved, 1 failed (nothing unknown), 3 unknown.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"
local cjson = require "cjson"

local PATH = "PreQualify/Create"
local DN, USER = helpers.DN_PROD, helpers.USER
local TIMEOUT = 1            -- seconds, for every entry point
local N = 3                  -- items per batch; the fault meets item 1

-- Distinct, strictly canonical Base64 of 32-byte digests, written out.
local DATA = {
  "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
  "CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
  "DAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
}

local function item(i)
  return { dn = DN, user = USER, data = DATA[i], comment = "fault matrix item " .. i }
end

-- One row per fault. `faults` are queued (path PreQualify/Create) before
-- the run; in a batch at concurrency 1 they meet item 1 and its retries,
-- and the other items are approved at the first attempt.
--   kind, outcome, status: the error of the single call / item 1
--   attempts: requests for item 1;  received: what the server saw for it
--   stored:   pre-qualifications the server made for item 1
--   item:     item 1's report outcome;  exit: the CLI's exit code
--   refused:  the server cannot be reached at all (every item fails alike)
local MATRIX = {
  { "a delay past the timeout", { { kind = "delay", delay = 3 } },
    kind = "transport", outcome = "unknown", attempts = 1, received = 1, stored = 1, item = "unknown", exit = 3 },
  { "429 without Retry-After, on every attempt", { { kind = "status", status = 429, count = 3 } },
    kind = "http", outcome = "rejected", status = 429, attempts = 3, received = 3, stored = 0, item = "failed",
    exit = 1 },
  { "429 without Retry-After, once", { { kind = "status", status = 429, count = 1 } },
    attempts = 2, received = 2, stored = 1, item = "approved", exit = 0 },
  { "429 with Retry-After, on every attempt",
    { { kind = "status", status = 429, retry_after = "1", count = 3 } },
    kind = "http", outcome = "rejected", status = 429, attempts = 3, received = 3, stored = 0, item = "failed",
    exit = 1 },
  { "500", { { kind = "status", status = 500 } },
    kind = "http", outcome = "unknown", status = 500, attempts = 1, received = 1, stored = 0, item = "unknown",
    exit = 3 },
  { "502", { { kind = "status", status = 502 } },
    kind = "http", outcome = "unknown", status = 502, attempts = 1, received = 1, stored = 0, item = "unknown",
    exit = 3 },
  { "503 without Retry-After", { { kind = "status", status = 503 } },
    kind = "http", outcome = "rejected", status = 503, attempts = 1, received = 1, stored = 0, item = "failed",
    exit = 1 },
  { "503 with Retry-After, on every attempt",
    { { kind = "status", status = 503, retry_after = "1", count = 3 } },
    kind = "http", outcome = "rejected", status = 503, attempts = 3, received = 3, stored = 0, item = "failed",
    exit = 1 },
  { "503 with Retry-After, once", { { kind = "status", status = 503, retry_after = "1", count = 1 } },
    attempts = 2, received = 2, stored = 1, item = "approved", exit = 0 },
  { "504", { { kind = "status", status = 504 } },
    kind = "http", outcome = "unknown", status = 504, attempts = 1, received = 1, stored = 0, item = "unknown",
    exit = 3 },
  { "a drop before the reply (the server acted)", { { kind = "drop", process = true } },
    kind = "transport", outcome = "unknown", attempts = 1, received = 1, stored = 1, item = "unknown", exit = 3 },
  { "a reset mid-body", { { kind = "drop_mid_body" } },
    kind = "transport", outcome = "unknown", attempts = 1, received = 1, stored = 1, item = "unknown", exit = 3 },
  { "malformed JSON", { { kind = "malformed" } },
    kind = "protocol", outcome = "unknown", status = 200, attempts = 1, received = 1, stored = 1, item = "unknown",
    exit = 3 },
  { "an oversized body (2 MiB, over the 1 MiB max_response)", { { kind = "oversized", size = 2 * 1024 * 1024 } },
    kind = "protocol", outcome = "unknown", attempts = 1, received = 1, stored = 1, item = "unknown", exit = 3 },
  { "a slow trickle", { { kind = "trickle", delay = 0.2 } },
    kind = "transport", outcome = "unknown", attempts = 1, received = 1, stored = 1, item = "unknown", exit = 3 },
  { "connection refused (a closed port)", {}, refused = true,
    kind = "transport", outcome = "not_sent", attempts = 3, received = 0, stored = 0, item = "failed", exit = 1 },
}

-- A TCP port on which nothing listens: bound by python, then closed.
local function closed_port()
  -- (Without the sanitizer runtime of the ASan spec run: python is not ours.)
  local p = assert(io.popen([[env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS ]]
    .. [[python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); ]]
    .. [[print(s.getsockname()[1]); s.close()']]))
  local port = p:read("l")
  p:close()
  return assert(tonumber(port), "no free port")
end

-- The journal's records, by type: the done record of each key (two done
-- records for one key fail the test) and the number of intents.
local function read_journal(path)
  local done, intents = {}, 0
  for line in io.lines(path) do
    local ok, rec = pcall(cjson.decode, line)
    assert(ok and type(rec) == "table", "journal line is not a JSON object: " .. line)
    if rec.type == "done" then
      assert.is_nil(done[rec.key], "two done records for one item")
      done[rec.key] = rec
    elseif rec.type == "intent" then
      intents = intents + 1
    end
  end
  return done, intents
end

-- Parses the report and the journal and checks that they agree: every item
-- the report shows as sent has a done record with the same outcome and
-- attempts, there is no done record without a report item, and the journal
-- wrote one intent per request the report counts. Returns the report's
-- items by index and the report.
local function agreement(report_path, journal_path)
  local text = helpers.read_file(report_path)
  assert.is_string(text, "no report at " .. report_path)
  local doc = cjson.decode(text)
  local done, intents = read_journal(journal_path)
  local by, matched = {}, 0
  for _, e in ipairs(doc.items) do
    by[e.index] = e
    if e.outcome == "approved" or e.outcome == "failed" or e.outcome == "unknown" then
      local rec = done[e.key]
      assert.is_table(rec, "item " .. e.index .. " (" .. e.outcome .. ") has no done record in the journal")
      -- The journal records a refusal of the credentials as `rejected`.
      local refused = e.error and e.error.outcome == "rejected" and (e.error.status == 401 or e.error.status == 403)
      assert.same({ refused and "rejected" or e.outcome, e.attempts }, { rec.outcome, rec.attempts },
        "item " .. e.index)
      matched = matched + 1
    end
  end
  local ndone = 0
  for _ in pairs(done) do ndone = ndone + 1 end
  assert.equal(matched, ndone, "done records without a report item")
  assert.equal(doc.requests, intents, "one intent per request")
  return by, doc
end

local function count_stored(emu, data)
  local n = 0
  for _, p in ipairs(emu:prequalifications().items) do
    if p.data == data then n = n + 1 end
  end
  return n
end

describe("fault matrix #emulator", function()
  local emu, token, dir, closed_url

  hooks.emulator({ token = true, dir = "test" }, function(e, t, d) emu, token, dir = e, t, d end)
  setup(function() closed_url = "https://127.0.0.1:" .. closed_port() end)

  -- The CLI's environment for a row: the emulator, a token file, the item's
  -- DN and user; a closed port for the connection-refused row.
  local function cli_env(row)
    local env = cli.emu_env(emu, { PREQUALIFY_TOKEN_FILE = cli.secret_file(dir, "token", token),
                                   PREQUALIFY_DN = DN, PREQUALIFY_USER = USER })
    if row.refused then env.PREQUALIFY_URL = closed_url end
    return env
  end

  local function queue(row)
    for _, f in ipairs(row[2]) do
      local spec = { path = PATH }
      for k, v in pairs(f) do spec[k] = v end
      emu:fault(spec)
    end
  end

  local function client(row, extra)
    local o = { url = row.refused and closed_url or emu.url, ca_file = emu.ca, token = token, timeout = TIMEOUT,
                retries = { max = 3, base_delay = 0.01, max_delay = 2 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    if o.auth then o.token = nil end
    return assert(prequalify.client(o))
  end

  -- What the server saw: received for item 1, and item 1's stored count;
  -- the other items must have been received and stored once each.
  local function server_side(row, batch)
    local received = emu:received(PATH)
    if batch and not row.refused then received = received - (N - 1) end
    for i = 2, batch and N or 1 do
      assert.equal(row.refused and 0 or 1, count_stored(emu, DATA[i]), "item " .. i .. " stored")
    end
    assert.equal(row.received, received, "requests received for item 1")
    assert.equal(row.stored, count_stored(emu, DATA[1]), "item 1 stored")
    assert.equal(0, #emu:faults().items, "every queued fault was met")
  end

  local function check_error(row, got)
    if row.kind then
      assert.same({ row.kind, row.outcome }, { got.kind, got.outcome })
      if row.status then assert.equal(row.status, got.status) end
    else
      assert.is_nil(got.kind)
    end
  end

  -- Item 1 as the row says; the others approved at the first attempt (or,
  -- when the server cannot be reached, failed like item 1).
  local function check_items(row, by)
    assert.equal(row.item, by[1].outcome)
    assert.equal(row.attempts, by[1].attempts)
    check_error(row, by[1].error or {})
    for i = 2, N do
      if row.refused then
        assert.same({ row.item, row.attempts }, { by[i].outcome, by[i].attempts }, "item " .. i)
      else
        assert.same({ "approved", 1 }, { by[i].outcome, by[i].attempts }, "item " .. i)
      end
    end
  end

  describe("client:prequalify", function()
    for _, row in ipairs(MATRIX) do
      it("meets " .. row[1], function()
        queue(row)
        local c = client(row)
        local res, err = c:prequalify(item(1))
        c:close()
        if row.item == "approved" then
          assert.is_nil(err)
          assert.is_true(res.ok)
          assert.equal(row.attempts, res.attempts)
        else
          assert.is_nil(res)
          check_error(row, err)
          assert.equal(row.attempts, err.attempts)
        end
        server_side(row, false)
      end)
    end
  end)

  describe("client:batch", function()
    for _, row in ipairs(MATRIX) do
      it("meets " .. row[1] .. "; the journal and the report agree", function()
        queue(row)
        local c = client(row)
        local list = {}
        for i = 1, N do list[i] = item(i) end
        local report, journal = dir .. "/report.json", dir .. "/journal.jsonl"
        local rep = assert(c:batch(list, { concurrency = 1, journal = journal, report = report }))
        c:close()
        assert.equal("complete", rep.status)
        local by, doc = agreement(report, journal)
        assert.equal(N, doc.counts.total)
        check_items(row, by)
        server_side(row, true)
      end)
    end
  end)

  describe("prequalify submit #nosan", function()
    for _, row in ipairs(MATRIX) do
      it("meets " .. row[1] .. " and exits " .. row.exit, function()
        queue(row)
        local env = cli_env(row)
        local r = cli.run({ "submit", "--data", DATA[1], "--comment", item(1).comment, "--json",
                            "--timeout", tostring(TIMEOUT) }, { env = env })
        assert.equal(row.exit, r.code, r.out .. r.err)
        local doc = cli.json(r)
        assert.equal(row.item, doc.outcome)
        assert.equal(row.attempts, doc.attempts)
        check_error(row, doc.error or {})
        server_side(row, false)
      end)
    end
  end)

  describe("prequalify batch #nosan", function()
    for _, row in ipairs(MATRIX) do
      it("meets " .. row[1] .. ", exits " .. row.exit .. "; the journal and the report agree", function()
        queue(row)
        local lines = {}
        for i = 1, N do lines[i] = cjson.encode{ data = DATA[i], comment = item(i).comment } end
        local manifest = helpers.write_file(dir .. "/items.jsonl", table.concat(lines, "\n") .. "\n")
        local env = cli_env(row)
        local report, journal = dir .. "/report.json", dir .. "/journal.jsonl"
        local r = cli.run({ "batch", manifest, "--concurrency", "1", "--timeout", tostring(TIMEOUT),
                            "--journal", journal, "--report", report, "--progress", "off" }, { env = env })
        assert.equal(row.exit, r.code, r.out .. r.err)
        local by, doc = agreement(report, journal)
        assert.equal("complete", doc.status)
        assert.equal(N, doc.counts.total)
        check_items(row, by)
        server_side(row, true)
      end)
    end
  end)
end)

-- An access token that expires while work is under way. The emulator's
-- clock is moved past the token's lifetime (3600 s) but not the grant's
-- (86400 s): the server then refuses the token that the client still
-- believes valid. A grant refreshes once and repeats the request (a 401
-- means the server did nothing); a static token cannot be refreshed, so the
-- call fails and a batch stops instead of sending every item into a 401.
describe("fault matrix: an expired token mid-batch #emulator", function()
  local emu, dir
  local PAST_TOKEN = 4000 -- seconds: past the access token's life, within the grant's

  hooks.emulator({ reset = true, dir = "test" }, function(e, _, d) emu, dir = e, d end)

  local GRANT = { client_id = helpers.CLIENT_ID, username = helpers.APPROVER, password = helpers.APPROVER_PASSWORD }

  local function client(creds)
    local o = { url = emu.url, ca_file = emu.ca, timeout = 5, retries = { max = 3, base_delay = 0.01, max_delay = 2 } }
    for k, v in pairs(creds) do o[k] = v end
    return assert(prequalify.client(o))
  end

  local function list()
    local out = {}
    for i = 1, N do out[i] = item(i) end
    return out
  end

  -- Polls until the emulator has received `n` requests on `path` (the CLI
  -- is held inside a delay fault meanwhile).
  local function wait_received(path, n)
    for _ = 1, 200 do
      if emu:received(path) >= n then return end
      prequalify.core.sleep(0.02)
    end
    error("the emulator never received " .. n .. " request(s) on " .. path)
  end

  describe("client:prequalify", function()
    it("with a grant: the 401 is refreshed once and the call approved", function()
      local c = client{ auth = GRANT }
      assert(c:prequalify(item(1)))
      emu:advance_clock(PAST_TOKEN)
      local res, err = c:prequalify(item(2))
      c:close()
      assert.is_nil(err)
      assert.same({ true, 1 }, { res.ok, res.attempts })
      -- item 1, then item 2 twice (401, then the repeat).
      assert.same({ 3, 1, 1 }, { emu:received(PATH), emu:received("authorize/oauth"),
                                 emu:received("authorize/token") })
    end)

    it("with a static token: auth, rejected, not resent", function()
      local c = client{ token = emu:token{ username = "approver" } }
      assert(c:prequalify(item(1)))
      emu:advance_clock(PAST_TOKEN)
      local res, err = c:prequalify(item(2))
      c:close()
      assert.is_nil(res)
      assert.same({ "auth", "rejected", 401, 1 }, { err.kind, err.outcome, err.status, err.attempts })
      assert.equal(2, emu:received(PATH))
    end)
  end)

  describe("client:batch", function()
    local function run(creds)
      local c = client(creds)
      local report, journal = dir .. "/report.json", dir .. "/journal.jsonl"
      local rep = assert(c:batch(list(), { concurrency = 1, journal = journal, report = report,
        on_result = function(e) if e.index == 1 then emu:advance_clock(PAST_TOKEN) end end }))
      c:close()
      local by, doc = agreement(report, journal)
      return rep, by, doc
    end

    it("with a grant: one refresh, every item approved; the journal and the report agree", function()
      local rep, by = run{ auth = GRANT }
      assert.equal("complete", rep.status)
      for i = 1, N do assert.same({ "approved", 1 }, { by[i].outcome, by[i].attempts }, "item " .. i) end
      -- N items and one 401 for item 2.
      assert.same({ N + 1, 1 }, { emu:received(PATH), emu:received("authorize/token") })
    end)

    it("with a static token: item 2 fails auth and the batch stops; the journal and the report agree", function()
      local rep, by, doc = run{ token = emu:token{ username = "approver" } }
      assert.equal("stopped", rep.status)
      assert.same({ "approved", 1 }, { by[1].outcome, by[1].attempts })
      assert.same({ "failed", 1, "auth", "rejected", 401 },
        { by[2].outcome, by[2].attempts, by[2].error.kind, by[2].error.outcome, by[2].error.status })
      -- Item 3 was never sent: counted as not reached, absent from the journal.
      assert.same({ 2, 1 }, { doc.counts.total, doc.not_reached })
      assert.equal(2, emu:received(PATH))
    end)
  end)

  describe("the CLI #nosan", function()
    local function env(extra)
      local e = cli.emu_env(emu, { PREQUALIFY_DN = DN, PREQUALIFY_USER = USER })
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    -- Runs the CLI in the background, moves the clock once `path` has seen
    -- a request (held by a delay fault), and returns the exit code and output.
    local function run_moving_clock(argv, opts, path)
      local pipe = cli.spawn(argv, opts)
      wait_received(path, 1)
      emu:advance_clock(PAST_TOKEN)
      local out = pipe:read("a")
      local _, _, code = pipe:close()
      return code, out
    end

    it("submit with a sign-in: the token expires during sign-in, one refresh, exit 0", function()
      emu:fault{ kind = "delay", delay = 1.5, path = "authorize/oauth" }
      local code, out = run_moving_clock({ cli.CLI, "submit", "--data", DATA[1], "--comment", item(1).comment,
                                           "--password-stdin", "--json" },
        { env = env{ PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID, PREQUALIFY_USERNAME = helpers.APPROVER },
          stdin = helpers.APPROVER_PASSWORD .. "\n" }, "authorize/oauth")
      assert.equal(0, code, out)
      assert.same({ 2, 1 }, { emu:received(PATH), emu:received("authorize/token") })
    end)

    it("submit with an expired static token: auth, rejected, exit 1, sent once", function()
      local token = emu:token{ username = "approver" }
      emu:advance_clock(PAST_TOKEN)
      local r = cli.run({ "submit", "--data", DATA[1], "--comment", item(1).comment, "--token-stdin", "--json" },
        { env = env(), stdin = token .. "\n" })
      assert.equal(1, r.code, r.out .. r.err)
      local doc = cli.json(r)
      assert.same({ "failed", "auth", "rejected", 401 },
        { doc.outcome, doc.error.kind, doc.error.outcome, doc.error.status })
      assert.equal(1, emu:received(PATH))
    end)

    local function batch_argv()
      local lines = {}
      for i = 1, N do lines[i] = cjson.encode{ data = DATA[i], comment = item(i).comment } end
      local manifest = helpers.write_file(dir .. "/items.jsonl", table.concat(lines, "\n") .. "\n")
      return { cli.CLI, "batch", manifest, "--concurrency", "1", "--journal", dir .. "/journal.jsonl",
               "--report", dir .. "/report.json", "--progress", "off" }
    end

    it("batch with a sign-in: one refresh mid-batch, exit 0; the journal and the report agree", function()
      -- Item 1 is held (the server acted before the wait) while the clock moves.
      emu:fault{ kind = "delay", delay = 1.5, path = PATH }
      local argv = batch_argv()
      argv[#argv + 1] = "--password-stdin"
      local code, out = run_moving_clock(argv,
        { env = env{ PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID, PREQUALIFY_USERNAME = helpers.APPROVER },
          stdin = helpers.APPROVER_PASSWORD .. "\n" }, PATH)
      assert.equal(0, code, out)
      local by, doc = agreement(dir .. "/report.json", dir .. "/journal.jsonl")
      assert.equal("complete", doc.status)
      for i = 1, N do assert.same({ "approved", 1 }, { by[i].outcome, by[i].attempts }, "item " .. i) end
      assert.same({ N + 1, 1 }, { emu:received(PATH), emu:received("authorize/token") })
    end)

    it("batch with a static token: item 2 fails auth, the run stops, exit 4; the journal and the report agree",
    function()
      emu:fault{ kind = "delay", delay = 1.5, path = PATH }
      local argv = batch_argv()
      argv[#argv + 1] = "--token-stdin"
      local code, out = run_moving_clock(argv, { env = env(), stdin = emu:token{ username = "approver" } .. "\n" },
        PATH)
      assert.equal(4, code, out)
      local by, doc = agreement(dir .. "/report.json", dir .. "/journal.jsonl")
      assert.equal("stopped", doc.status)
      assert.same({ "approved", 1 }, { by[1].outcome, by[1].attempts })
      assert.same({ "failed", 1, "auth", "rejected", 401 },
        { by[2].outcome, by[2].attempts, by[2].error.kind, by[2].error.outcome, by[2].error.status })
      assert.is_nil(by[3])
      assert.equal(2, emu:received(PATH))
    end)
  end)
end)

-- Flow tickets and the archive (helper tickets): every fault, met by the
-- first call. An approve changes a ticket, so after an unknown outcome it is
-- never resent, even with retry_unknown; a listing and an archive query
-- change nothing, so an unknown outcome is tried again. Expected values
-- written out from DESIGN.md's rules, as above.
describe("fault matrix: Flow tickets and the archive #emulator", function()
  local flow = require "fixtures.flow"
  local APPROVE, LIST, ARCHIVE = "Flow/Tickets/Approve", "Flow/Tickets/Enumerate", "RetrieveArchiveEntries"
  local emu, token, dir

  hooks.emulator({ token = flow.MANAGE, dir = "test" }, function(e, t, d) emu, token, dir = e, t, d end)

  -- received: requests the server saw; acted: the ticket ended approved.
  local APPROVE_ROWS = {
    { "a delay past the timeout", { kind = "delay", delay = 3 },
      kind = "transport", outcome = "unknown", received = 1, acted = true, exit = 3 },
    { "429 on every attempt", { kind = "status", status = 429, count = 3 },
      kind = "http", outcome = "rejected", status = 429, received = 3, acted = false, exit = 1 },
    { "429 once", { kind = "status", status = 429 }, received = 2, acted = true, exit = 0 },
    { "500", { kind = "status", status = 500 },
      kind = "http", outcome = "unknown", status = 500, received = 1, acted = false, exit = 3 },
    { "503 without Retry-After", { kind = "status", status = 503 },
      kind = "http", outcome = "rejected", status = 503, received = 1, acted = false, exit = 1 },
    { "503 with Retry-After, once", { kind = "status", status = 503, retry_after = "1" },
      received = 2, acted = true, exit = 0 },
    { "a drop before the reply (the server acted)", { kind = "drop" },
      kind = "transport", outcome = "unknown", received = 1, acted = true, exit = 3 },
    { "a reset mid-body", { kind = "drop_mid_body" },
      kind = "transport", outcome = "unknown", received = 1, acted = true, exit = 3 },
    { "malformed JSON", { kind = "malformed" },
      kind = "protocol", outcome = "unknown", status = 200, received = 1, acted = true, exit = 3 },
  }

  local READ_ROWS = {
    { "500 once", { kind = "status", status = 500 }, received = 2 },
    { "a drop once", { kind = "drop" }, received = 2 },
    { "a drop on every attempt", { kind = "drop", count = 3 }, kind = "transport", outcome = "unknown", received = 3 },
    { "429 on every attempt", { kind = "status", status = 429, count = 3 },
      kind = "http", outcome = "rejected", status = 429, received = 3 },
    { "malformed JSON", { kind = "malformed" }, kind = "protocol", outcome = "rejected", status = 200, received = 1 },
  }

  local function client()
    return assert(prequalify.client{ url = emu.url, ca_file = emu.ca, token = token, timeout = TIMEOUT,
                                     retry_unknown = true, retries = { max = 3, base_delay = 0.01, max_delay = 2 } })
  end

  local function queue(path, f)
    local spec = { path = path }
    for k, v in pairs(f) do spec[k] = v end
    emu:fault(spec)
  end

  local function check(row, res, err)
    if row.kind then
      assert.is_nil(res)
      assert.same({ row.kind, row.outcome }, { err.kind, err.outcome })
      if row.status then assert.equal(row.status, err.status) end
    else
      assert.is_nil(err)
      assert.truthy(res)
    end
  end

  describe("client:approve_tickets", function()
    for _, row in ipairs(APPROVE_ROWS) do
      it("meets " .. row[1] .. "; never resent after an unknown outcome", function()
        local id = flow.open(emu, 1)[1]
        queue(APPROVE, row[2])
        local c = client()
        local res, err = c:approve_tickets(id, { comment = "fault matrix" })
        c:close()
        check(row, res, err)
        assert.equal(row.received, emu:received(APPROVE))
        assert.equal(row.acted and "approved" or "pending", flow.state(emu)[id].status_name)
      end)
    end
  end)

  describe("prequalify tickets approve #nosan", function()
    for _, row in ipairs(APPROVE_ROWS) do
      it("meets " .. row[1] .. " and exits " .. row.exit, function()
        local id = flow.open(emu, 1)[1]
        queue(APPROVE, row[2])
        local env = cli.emu_env(emu, { PREQUALIFY_TOKEN_FILE = cli.secret_file(dir, "token", token),
                                       PREQUALIFY_TIMEOUT = tostring(TIMEOUT) })
        local r = cli.run({ "tickets", "approve", id, "--comment", "fault matrix" }, { env = env })
        assert.equal(row.exit, r.code, r.out .. r.err)
        assert.equal(row.received, emu:received(APPROVE))
      end)
    end
  end)

  describe("client:tickets and client:archive", function()
    for _, row in ipairs(READ_ROWS) do
      it("client:tickets meets " .. row[1], function()
        flow.open(emu, 1)
        queue(LIST, row[2])
        local c = client()
        local res, err = c:tickets()
        c:close()
        check(row, res, err)
        assert.equal(row.received, emu:received(LIST))
      end)

      it("client:archive meets " .. row[1], function()
        flow.sign(emu, {})
        queue(ARCHIVE, row[2])
        local c = client()
        local res, err = c:archive{}
        c:close()
        check(row, res, err)
        assert.equal(row.received, emu:received(ARCHIVE))
      end)
    end
  end)
end)
