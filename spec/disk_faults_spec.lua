-- Disk faults: the CLI against the emulator with spec/faultfs (an LD_PRELOAD
-- shim) failing write, fsync, rename or open for one path, counting what the
-- server stored. Under the ASan build (PREQUALIFY_BUILD=build-asan, libasan
-- in LD_PRELOAD) the children run the sanitizer core with libasan first and
-- the shim after it.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"
local cjson = require "cjson"
local digest = require "prequalify.digest"

local N = 30
local BUILD = os.getenv("PREQUALIFY_BUILD") or "build"

-- The environment of a child that runs with the shim (and the sanitizer
-- runtime before it, when this run has one).
local function fault_env(base, fault)
  local env = {}
  for k, v in pairs(base) do env[k] = v end
  local shim = cli.ROOT .. "/" .. BUILD .. "/spec/faultfs/faultfs.so"
  assert(io.open(shim, "rb"), "not built: " .. shim):close()
  local pre = os.getenv("LD_PRELOAD")
  env.LD_PRELOAD = (pre and pre ~= "" and pre .. " " or "") .. shim
  for _, k in ipairs{ "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" } do env[k] = os.getenv(k) end
  env.PREQUALIFY_BUILD = BUILD
  env.PQ_FAULT_PATH, env.PQ_FAULT_OP = fault.path, fault.op
  env.PQ_FAULT_ERRNO, env.PQ_FAULT_AFTER, env.PQ_FAULT_TIMES = fault.errno, fault.after, fault.times
  return env
end

describe("disk faults #emulator", function()
  local emu, dir, env, token, manifest, journal
  local data = {} -- the items' Data (test data only: any distinct digests do)

  hooks.emulator({ reset = true, dir = "block" }, function(e, _, d) emu, dir = e, d end)
  setup(function()
    manifest = dir .. "/m.jsonl"
    local lines = {}
    for i = 1, N do
      data[i] = digest.data("artifact " .. i)
      lines[i] = cjson.encode{ data = data[i], comment = "c" .. i }
    end
    helpers.write_file(manifest, table.concat(lines, "\n") .. "\n")
  end)
  before_each(function()
    journal = dir .. "/j.jsonl"
    os.remove(journal)
    token = emu:token{ username = "approver" }
    env = cli.job_env(emu, dir, token)
  end)

  local function batch(e, extra)
    local argv = { "batch", manifest, "--journal", journal, "--progress", "off", "--concurrency", "4" }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    local r = cli.run(argv, { env = e })
    assert.falsy((r.out .. r.err):find("traceback", 1, true), r.err)
    assert.falsy(r.err:find("ERROR: AddressSanitizer", 1, true), r.err)
    return r
  end

  -- Stored pre-qualifications by data: how many times each was stored.
  local function stored()
    local by, n = {}, 0
    for _, p in ipairs(emu:prequalifications().items) do
      by[p.data] = (by[p.data] or 0) + 1
      n = n + 1
    end
    return by, n
  end

  local function each_once()
    local by, n = stored()
    assert.equal(N, n)
    for i = 1, N do assert.equal(1, by[data[i]], "item " .. i) end
  end

  -- The journal's done records: how many each key has, and how many keys.
  local function done_records()
    local by, n = {}, 0
    for line in helpers.read_file(journal):gmatch("[^\n]+") do
      local rec = cjson.decode(line)
      if rec.type == "done" then
        if not by[rec.key] then n = n + 1 end
        by[rec.key] = (by[rec.key] or 0) + 1
      end
    end
    return by, n
  end

  local function one_done_each(want)
    local by, n = done_records()
    for key, count in pairs(by) do assert.equal(1, count, "done records of " .. key) end
    if want then assert.equal(want, n) end
  end

  it("stops when an intent cannot be written, sends nothing without one, and a resume loses nothing", function()
    local r = batch(fault_env(env, { path = "/j.jsonl", op = "write", errno = "ENOSPC", after = "3000" }))
    assert.equal(4, r.code, r.out .. r.err) -- incomplete (docs/CLI.md)
    assert.truthy(r.out:find("journal write failed: No space left on device", 1, true), r.out)
    assert.truthy((r.out .. r.err):find("journal " .. journal, 1, true), r.out .. r.err)
    -- No request left whose intent is not on disk.
    -- (The disk may have torn the last record: it does not decode.)
    local intents = {}
    for line in helpers.read_file(journal):gmatch("[^\n]+") do
      local ok, rec = pcall(cjson.decode, line)
      if ok and rec.type == "intent" then intents[rec.data] = true end
    end
    local by, first = stored()
    assert.is_true(first > 0 and first < N, "stored " .. first)
    for d in pairs(by) do assert.truthy(intents[d], d) end
    -- Space freed: the resume sends the rest once; items whose done record
    -- was refused are unknown (never "not sent"), and are not resent.
    r = batch(env)
    assert.truthy(r.code == 0 or r.code == 3, r.out .. r.err)
    assert.falsy(r.out:find("not sent", 1, true), r.out)
    -- An item whose intent reached the disk while its not-sent record did
    -- not is unknown; the user settles the ones the server lacks with
    -- `journal resolve --as not-sent`, and the next run sends them once.
    local now = stored()
    local missing = {}
    for i = 1, N do if not now[data[i]] then missing[#missing + 1] = tostring(i) end end
    if #missing > 0 then
      assert.truthy(r.out:find("an earlier run recorded an intent and no outcome; it may not have been sent",
        1, true), r.out)
      local argv = { "journal", "resolve", journal, "--as", "not-sent", "--note", "not on the server" }
      for _, line in ipairs(missing) do argv[#argv + 1] = line end
      local rr = cli.run(argv, { env = env })
      assert.equal(0, rr.code, rr.out .. rr.err)
      r = batch(env)
      assert.truthy(r.code == 0 or r.code == 3, r.out .. r.err)
    end
    each_once()
  end)

  it("after an intent's fsync fails, records the unsent items so that a resume sends them", function()
    local r = batch(fault_env(env, { path = "/j.jsonl", op = "fsync", errno = "EIO", after = "1", times = "1" }))
    assert.equal(4, r.code, r.out .. r.err) -- incomplete (docs/CLI.md)
    assert.truthy(r.out:find("journal write failed: Input/output error", 1, true), r.out)
    local _, first = stored()
    assert.is_true(first < N, "stored " .. first)
    r = batch(env)
    assert.equal(0, r.code, r.out .. r.err)
    assert.truthy(r.out:find(N .. " items: " .. N .. " approved, 0 denied, 0 failed, 0 unknown", 1, true), r.out)
    each_once()
  end)

  for _, case in ipairs{
    { "the report cannot be written", "/r.json.tmp", "write", "cannot write it", "partial report is at" },
    { "the report cannot be renamed", "/r.json", "rename", "cannot replace it", "complete report is at" },
  } do
    it("says so and exits 4 when " .. case[1] .. ", with the journal intact", function()
      local report = dir .. "/r.json"
      os.remove(report)
      local r = batch(fault_env(env, { path = case[2], op = case[3], errno = "ENOSPC" }), { "--report", report })
      assert.equal(4, r.code, r.out .. r.err) -- the run's record is incomplete (docs/CLI.md)
      assert.truthy(r.err:find("report " .. report .. ": " .. case[4] .. ": No space left on device", 1, true), r.err)
      assert.truthy(r.err:find(case[5] .. " " .. report .. ".tmp", 1, true), r.err)
      assert.is_nil(io.open(report))
      each_once()
      -- The journal is whole: a resume sends nothing.
      r = batch(env)
      assert.equal(0, r.code, r.out .. r.err)
      assert.truthy(r.out:find("(" .. N .. " recorded by an earlier run)", 1, true), r.out)
      each_once()
    end)
  end

  -- The journal's final fsync (at close) fails: a resume of a finished run
  -- syncs its start record, then closes; every fsync after the first fails.
  local close_fault = { path = "/j.jsonl", op = "fsync", errno = "EIO", after = "1" }

  it("says so and exits 4 when the journal cannot be closed", function()
    local r = batch(env)
    assert.equal(0, r.code, r.out .. r.err)
    r = batch(fault_env(env, close_fault))
    assert.equal(4, r.code, r.out .. r.err) -- the run's record is incomplete (docs/CLI.md)
    assert.truthy(r.err:find("prequalify: warning: journal " .. journal .. ": final write failed: Input/output error",
      1, true), r.err)
    assert.falsy((r.out .. r.err):find(token, 1, true)) -- the token the run signed in with
    assert.truthy(r.out:find(N .. " items: " .. N .. " approved, 0 denied, 0 failed, 0 unknown", 1, true), r.out)
    each_once()
  end)

  it("gives report.journal_error and exit_code() 4 in Lua when the journal cannot be closed", function()
    local worker = cli.ROOT .. "/spec/fixtures/batch_worker.lua"
    local cfg = dir .. "/worker.json"
    helpers.write_file(cfg, cjson.encode{ url = emu.url, ca = emu.ca, token = token, n = 5,
      prefix = "close artifact ", dn = cli.DN, user = cli.USER, journal = journal, concurrency = 2 }, "600")
    local r = cli.exec({ "lua5.4", worker, cfg }, { env = {} })
    assert.truthy(r.out:find("\nE 0 -\n", 1, true), r.out .. r.err)
    r = cli.exec({ "lua5.4", worker, cfg }, { env = fault_env({}, close_fault) })
    assert.truthy(r.out:find("\nS complete 5\n", 1, true), r.out .. r.err)
    assert.truthy(r.out:find("\nE 4 journal " .. journal .. ": final write failed: Input/output error\n", 1, true),
      r.out .. r.err)
    assert.truthy(r.err:find("warning: journal " .. journal .. ": final write failed", 1, true), r.err)
    assert.falsy((r.out .. r.err):find(token, 1, true))
    assert.equal(5, emu:prequalifications().count)
  end)

  it("says so and exits 4 when the audit log cannot be written", function()
    local audit = dir .. "/a.log"
    local r = batch(fault_env(env, { path = "/a.log", op = "write", errno = "EIO", after = "200" }),
      { "--audit", audit })
    assert.equal(4, r.code, r.out .. r.err) -- the run's record is incomplete (docs/CLI.md)
    assert.truthy(r.err:find("prequalify: warning: audit log " .. audit .. ": cannot write it: Input/output error",
      1, true), r.err)
    assert.truthy(r.out:find(N .. " items: " .. N .. " approved, 0 denied, 0 failed, 0 unknown", 1, true), r.out)
    each_once()
  end)

  it("exits 4 when the --json report cannot be written", function()
    local e = fault_env(env, { path = ".tmp", op = "write", errno = "ENOSPC" })
    e.TMPDIR = dir
    local r = batch(e, { "--json" })
    assert.equal(4, r.code, r.out .. r.err)
    assert.truthy(r.err:find(": cannot write it: No space left on device; the partial report is at ", 1, true),
      r.err)
    assert.equal("", r.out)
    each_once()
  end)

  -- The report's spool: a file in $TMPDIR (prequalify-XXXXXXXX.spool,
  -- unlinked at once) that the C pipeline and the report write entries to.
  local function spool_env(fault)
    local e = fault_env(env, fault)
    e.TMPDIR = dir
    return e
  end

  local function no_spool_left()
    for name in require("lfs").dir(dir) do assert.falsy(name:find("%.spool$"), name) end
  end

  -- The C pipeline writes the common success's entry; with an audit log
  -- every entry comes back to Lua, which writes it.
  for _, case in ipairs{
    { "the disk is full", { path = ".spool", op = "write", errno = "ENOSPC", after = "3000" },
      "No space left on device" },
    { "a write fails with EIO once", { path = ".spool", op = "write", errno = "EIO", after = "5000", times = "1" },
      "Input/output error" },
    { "the disk is full, entries written from Lua", { path = ".spool", op = "write", errno = "ENOSPC",
      after = "3000" }, "No space left on device", { "--audit", "a.log" } },
  } do
    it("stops when the report's spool cannot be written (" .. case[1] .. "), and a resume sends the rest once",
      function()
      local report = dir .. "/r.json"
      os.remove(report)
      local argv = { "--report", report }
      if case[4] then argv[3], argv[4] = case[4][1], dir .. "/" .. case[4][2] end
      local r = batch(spool_env(case[2]), argv)
      assert.equal(4, r.code, r.out .. r.err) -- incomplete (docs/CLI.md)
      local spool = "report spool " .. dir .. "/prequalify-" -- then 8 letters and ".spool"
      local at = r.err:find("prequalify: warning: " .. spool, 1, true)
      assert.truthy(at, r.err)
      local line = r.err:sub(at):match("^[^\n]*")
      assert.truthy(line:find("^prequalify: warning: report spool .-/prequalify%-%w+%.spool: cannot write it: "
        .. case[3] .. "; the report lacks %d+ of its entries; the partial report is at "), line)
      assert.truthy(line:find("; the partial report is at " .. report .. "; the journal " .. journal
        .. " has every outcome", 1, true), line)
      assert.truthy(r.out:find("prequalify batch stopped (" .. spool, 1, true), r.out)
      no_spool_left()
      -- The partial report: every entry it holds is whole, and it says how
      -- many it lacks.
      local doc = cjson.decode(helpers.read_file(report))
      assert.equal("stopped", doc.status)
      assert.truthy(doc.spool_error:find(": cannot write it: " .. case[3], 1, true), doc.spool_error)
      assert.equal(doc.counts.total - #doc.items, doc.spool_lost)
      assert.is_true(#doc.items > 0 and doc.spool_lost > 0, #doc.items .. " items, " .. doc.spool_lost .. " lost")
      for _, item in ipairs(doc.items) do assert.equal("approved", item.outcome) end
      local _, first = stored()
      assert.is_true(first < N, "stored " .. first)
      -- One done record for each item the server answered, none twice
      -- (the C pipeline wrote it before the spool record it could not).
      one_done_each(first)
      -- The journal is whole: a resume sends the rest once.
      r = batch(spool_env{}, { "--report", report })
      assert.equal(0, r.code, r.out .. r.err)
      assert.truthy(r.out:find(N .. " items: " .. N .. " approved, 0 denied, 0 failed, 0 unknown", 1, true), r.out)
      each_once()
      one_done_each(N)
      no_spool_left()
    end)
  end

  it("sends nothing when the report's spool cannot be created", function()
    local r = batch(spool_env{ path = ".spool", op = "open", errno = "EIO" })
    assert.equal(2, r.code, r.out .. r.err)
    assert.truthy(r.err:find("^prequalify batch: report spool " .. dir:gsub("%p", "%%%0")
      .. "/prequalify%-%w+%.spool: cannot create it: Input/output error\n"), r.err)
    local _, n = stored()
    assert.equal(0, n)
  end)

  it("leaves the old refresh token file untouched when its rotation cannot be renamed", function()
    local _, reply = emu:token{ username = "approver" }
    local rt = cli.secret_file(dir, "refresh", reply.refresh_token)
    local e = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = "prequalify", PREQUALIFY_REFRESH_TOKEN_FILE = rt,
                                 PREQUALIFY_DN = cli.DN, PREQUALIFY_USER = cli.USER })
    local r = batch(fault_env(e, { path = "/refresh", op = "rename", errno = "EIO" }))
    assert.truthy(r.err:find("could not rewrite auth.refresh_token_file", 1, true), r.err)
    assert.falsy((r.out .. r.err):find(reply.refresh_token, 1, true))
    -- The old file, whole, and no temporary file beside it: a reader sees
    -- the old token or (had the rename worked) the new one, never a part.
    assert.equal(reply.refresh_token .. "\n", helpers.read_file(rt))
    for name in require("lfs").dir(dir) do assert.falsy(name:find("^refresh%.tmp"), name) end
  end)
end)
