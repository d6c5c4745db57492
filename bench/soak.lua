--- A bounded soak: batches against the emulator, with random faults from a
-- seeded generator, for a fixed time. After every batch it samples this
-- process's RSS (VmRSS) and open file descriptors (/proc/self/fd), and
-- checks that no item was lost: each item is in the report and (unless the
-- policy denied it) has a done record with the same outcome in the journal;
-- the emulator stored each approved item exactly once, no failed or denied
-- item, and at most once an item whose outcome is unknown; it received
-- exactly the requests the reports count.
--
--   lua5.4 bench/soak.lua [--minutes N] [--smoke] [--seed S] [--concurrency C]
--
-- Defaults: 10 minutes, seed 1, concurrency 8; --smoke runs about 20 s.
-- `spec/soak_smoke_spec.lua` (tag #slow) runs --smoke.
-- One client (a password grant) serves the whole run, as in a long-lived
-- build service. Each batch starts from a reset emulator (which forgets the
-- grant, so the first wave meets a 401 and the client signs in again); some
-- batches see their token expire midway (the emulator's clock jumps), and
-- some their journal's disk fill up, then resume once space is freed
-- (bench/soak_disk.lua; an item whose done record the disk refused must be
-- stored once). Inputs alternate between Lua arrays and streamed iterators.
--
-- Prints a table over time and a verdict; exits 0 when it passes: lost = 0;
-- fds flat after the warm-up (files and pipes max - min <= 2, sockets - the
-- connection pool and libcurl's wake-up pair - never above concurrency + 2);
-- RSS flat: the median of the last quarter of the samples after the warm-up
-- within 10% of the first quarter's (not judged with --smoke: too short).
local function here()
  local src = debug.getinfo(1, "S").source:sub(2)
  return (src:match("^(.*)/bench/[^/]*$")) or "."
end
local ROOT = here()
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. ROOT .. "/spec/?.lua;" .. ROOT .. "/bench/?.lua;"
  .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath

local prequalify = require "prequalify"
local helpers = require "helpers"
local cjson = require "cjson"

local core = prequalify.core
local PATH = "PreQualify/Create"

-- Options ------------------------------------------------------------------

local opts = { minutes = 10, seed = 1, concurrency = 8, smoke = false }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--smoke" then
      opts.smoke = true
    elseif a == "--minutes" or a == "--seed" or a == "--concurrency" then
      local v = tonumber(arg[i + 1])
      if not v or v <= 0 then
        io.stderr:write("soak: ", a, " needs a positive number\n")
        os.exit(2)
      end
      opts[a:sub(3)] = v
      i = i + 1
    elseif a == "--help" or a == "-h" then
      io.write("usage: lua5.4 bench/soak.lua [--minutes N] [--smoke] [--seed S] [--concurrency C]\n")
      os.exit(0)
    else
      io.stderr:write("soak: unknown argument ", a, " (see --help)\n")
      os.exit(2)
    end
    i = i + 1
  end
end
local disk = require "soak_disk" -- a full disk under some journals (spec/faultfs)
local disk_on, disk_why = disk.reexec(ROOT, arg)
local DURATION = opts.smoke and 18 or opts.minutes * 60
-- Samples taken before this are not judged: allocator arenas, TLS
-- contexts, the connection pool and Lua's heap settle in the first batches.
local WARMUP = opts.smoke and 4 or math.min(60, DURATION / 10)
local MIN_ITEMS, MAX_ITEMS = 50, opts.smoke and 150 or 300
local MAX_FAULTS = 12
local CONCURRENCY = math.tointeger(opts.concurrency)
math.randomseed(math.tointeger(opts.seed) or 1)

-- The faults to draw from (each meets one request of the batch's first
-- ones; the client's timeout is 1 s and max_response 64 KiB). `unknown`:
-- the fault leaves its item's outcome unknown (never resent), `acted`: and
-- the server stored it all the same. The others are retried, re-authenticated
-- or harmless, or fail an item without the server acting.
local FAULTS = {
  { kind = "status", status = 429 },
  { kind = "status", status = 429, retry_after = "0" },
  { kind = "status", status = 503, retry_after = "0" },
  { kind = "status", status = 503 },
  { kind = "status", status = 500, unknown = true },
  { kind = "status", status = 502, unknown = true },
  { kind = "status", status = 504, unknown = true },
  { kind = "status", status = 401 },
  { kind = "drop", process = true, unknown = true, acted = true },
  { kind = "drop", process = false, unknown = true },
  { kind = "drop_mid_body", unknown = true, acted = true },
  { kind = "malformed", unknown = true, acted = true },
  { kind = "oversized", size = 100000, unknown = true, acted = true },
  { kind = "trickle", delay = 0.02, unknown = true, acted = true },
  { kind = "delay", delay = 0.05 },
  { kind = "delay", delay = 1.5, unknown = true, acted = true },
}

local function fault_name(f)
  local parts = { f.kind }
  if f.status then parts[#parts + 1] = tostring(f.status) end
  if f.retry_after then parts[#parts + 1] = "RA" .. f.retry_after end
  if f.process == false then parts[#parts + 1] = "unprocessed" end
  if f.delay then parts[#parts + 1] = f.delay .. "s" end
  return table.concat(parts, " ")
end

-- Process metrics (soak_metrics.lua): sockets already open when the soak
-- starts (inherited from a parent, e.g. busted) are not the engine's pool.
local metrics = require "soak_metrics"
local rss_kb, median = metrics.rss_kb, metrics.median
local base_sockets = select(2, metrics.fds())
local function fds()
  local total, sockets = metrics.fds()
  return total, sockets - base_sockets
end

-- One batch ------------------------------------------------------------------

local dir = helpers.tmpdir()
local emu = helpers.start_emulator{ max_lifetime = DURATION + 600 }
local client = assert(prequalify.client{
  url = emu.url, ca_file = emu.ca, timeout = 1, max_response = 64 * 1024,
  retries = { max = 3, base_delay = 0.01, max_delay = 2 },
  auth = { client_id = helpers.CLIENT_ID, username = helpers.APPROVER, password = helpers.APPROVER_PASSWORD },
  warn = function() end,
})
local policy = prequalify.policy.all{
  prequalify.policy.environment([[**\Production Environment]]),
  prequalify.policy.max_hours(48),
}

local totals = { items = 0, approved = 0, failed = 0, unknown = 0, denied = 0, skipped = 0, acted_unknown = 0,
                 requests = 0, faults = 0, lost = 0, intent_only = 0, expired = 0, injected_unknown = 0,
                 injected_acted = 0 }
local fault_counts = {}
local problems = {}

local function problem(round, msg)
  totals.lost = totals.lost + 1
  if #problems < 20 then problems[#problems + 1] = "round " .. round .. ": " .. msg end
end

local function read_journal(path)
  local done = {}
  for line in io.lines(path) do
    local ok, rec = pcall(cjson.decode, line)
    if ok and type(rec) == "table" and rec.type == "done" then
      if done[rec.key] then done[rec.key].twice = true else done[rec.key] = rec end
    end
  end
  return done
end

local function run_round(r)
  -- A reset forgets the grant: sign in again now (a 401, a refused refresh,
  -- a password sign-in), so that the faults meet authenticated requests.
  emu:reset()
  local info, ierr = client:token_info()
  if not info then problem(r, "could not sign in again: " .. tostring(ierr)) end
  local n = math.random(MIN_ITEMS, MAX_ITEMS)
  for _ = 1, math.random(0, MAX_FAULTS) do
    local f = FAULTS[math.random(#FAULTS)]
    local spec = { path = PATH }
    for k, v in pairs(f) do
      if k ~= "unknown" and k ~= "acted" then spec[k] = v end
    end
    emu:fault(spec)
    if f.unknown then totals.injected_unknown = totals.injected_unknown + 1 end
    if f.acted then totals.injected_acted = totals.injected_acted + 1 end
    local name = fault_name(f)
    fault_counts[name] = (fault_counts[name] or 0) + 1
    totals.faults = totals.faults + 1
  end
  -- Some batches see the token expire midway.
  local expire_after = math.random() < 0.3 and math.random(1, n) or nil
  if expire_after then totals.expired = totals.expired + 1 end

  local list, by_data = {}, {}
  for i = 1, n do
    local data = (prequalify.digest.data(string.format("soak %d %d %d", opts.seed, r, i)))
    local staging = math.random() < 0.05
    list[i] = { dn = staging and helpers.DN_STAGING or helpers.DN_PROD, user = helpers.USER, data = data,
                comment = "soak round " .. r .. " item " .. i, hours = 8 }
    by_data[data] = i
  end
  local function input()
    if r % 2 == 1 then return list end
    local i = 0
    return function() i = i + 1; return list[i] end
  end
  local journal, full = disk.journal(dir, disk_on)
  local report, audit = dir .. "/report.json", dir .. "/audit.jsonl"
  local finished, earlier, first = 0, 0, {}
  local function batch()
    return client:batch(input(), {
      concurrency = CONCURRENCY, policy = policy, journal = journal, report = report, audit = audit,
      on_result = function()
        finished = finished + 1
        if finished == expire_after then emu:advance_clock(4000) end
      end,
    })
  end
  local rep, err = batch()
  if rep and full then -- the disk filled up under the journal: free space, resume
    fault_counts["disk full (journal), resumed"] = (fault_counts["disk full (journal), resumed"] or 0) + 1
    earlier = rep.requests
    for e in rep:entries() do first[e.key] = e.outcome end
    rep:close()
    journal = disk.free(journal)
    rep, err = batch()
  end
  if not rep then return problem(r, "the batch did not run: " .. tostring(err)) end

  -- Accounting: the report file, the journal and the server agree.
  local doc = cjson.decode(assert(helpers.read_file(report)))
  local done = read_journal(journal)
  local stored = {}
  for _, p in ipairs(emu:prequalifications().items) do stored[p.data] = (stored[p.data] or 0) + 1 end
  local received = emu:received(PATH)
  if doc.counts.total ~= n then problem(r, string.format("%d items, the report has %d", n, doc.counts.total)) end
  if received ~= doc.requests + earlier then
    problem(r, string.format("the server received %d requests, the reports count %d", received,
      doc.requests + earlier))
  end
  local seen = {}
  for _, e in ipairs(doc.items) do
    local data = e.request and e.request.data
    local i = data and by_data[data]
    if not i or seen[i] then
      problem(r, "a report entry that is no item, or twice: " .. tostring(e.index))
    else
      seen[i] = true
      local s = stored[data] or 0
      stored[data] = nil
      local rec = done[e.key]
      if e.outcome == "denied" then
        if rec then problem(r, "denied item " .. i .. " has a done record") end
      elseif disk.intent_only(e) then
        -- What the faulted run's report said settles it (journal resolve).
        local want = ({ approved = 1, skipped = 0 })[first[e.key]]
        if s > 1 or (want and s ~= want) then
          problem(r, "item " .. i .. " (intent, no outcome; " .. tostring(first[e.key]) .. " in the faulted "
            .. "run's report) stored " .. s .. " times")
        end
        totals.intent_only = totals.intent_only + 1
      elseif not rec or rec.twice or rec.outcome ~= e.outcome or rec.attempts ~= e.attempts then
        problem(r, "item " .. i .. ": report says " .. e.outcome .. ", the journal "
          .. (rec and (rec.outcome .. (rec.twice and " twice" or "")) or "nothing"))
      end
      if e.outcome == "approved" and s ~= 1 then
        problem(r, "approved item " .. i .. " stored " .. s .. " times")
      elseif (e.outcome == "failed" or e.outcome == "denied" or e.outcome == "skipped") and s ~= 0 then
        problem(r, e.outcome .. " item " .. i .. " stored " .. s .. " times")
      elseif e.outcome == "unknown" then
        if s > 1 then problem(r, "unknown item " .. i .. " stored " .. s .. " times") end
        totals.acted_unknown = totals.acted_unknown + s
      end
      totals[e.outcome] = totals[e.outcome] + 1
    end
  end
  for i = 1, n do
    if not seen[i] then problem(r, "item " .. i .. " is not in the report") end
  end
  if next(stored) then problem(r, "the server stored a hash that is no item of the batch") end
  totals.items = totals.items + n
  totals.requests = totals.requests + doc.requests + earlier
  rep:close()
  for _, p in ipairs{ journal, report, audit } do os.remove(p) end
end

-- The run ------------------------------------------------------------------

io.write(string.format("soak: %s, seed %d, concurrency %d, %d-%d items per batch, up to %d faults each; %s\n",
  opts.smoke and "smoke (18 s)" or (opts.minutes .. " min"), opts.seed, CONCURRENCY, MIN_ITEMS, MAX_ITEMS,
  MAX_FAULTS, disk_on and "a full disk under the journal in ~15% of batches" or disk_why))
io.flush()

local samples = {}
local t0 = core.monotonic()
local round = 0
local ok, err = pcall(function()
  while core.monotonic() - t0 < DURATION do
    round = round + 1
    run_round(round)
    local total, sockets = fds()
    samples[#samples + 1] = { t = core.monotonic() - t0, rss = rss_kb(), fds = total, sockets = sockets,
                              heap = collectgarbage("count"), items = totals.items, approved = totals.approved,
                              failed = totals.failed, unknown = totals.unknown, denied = totals.denied }
  end
end)
client:close()
emu:stop()
helpers.rm_rf(dir)
if not ok then
  io.stderr:write("soak: ", tostring(err), "\n")
  os.exit(1)
end

-- Report -------------------------------------------------------------------

local ROWS = 10
io.write(string.format("\n%8s %7s %8s %9s %7s %8s %7s %9s %9s %8s %9s\n", "time", "batches", "items", "approved",
  "failed", "unknown", "denied", "RSS MiB", "fds", "sockets", "Lua KiB"))
local prev = { items = 0, approved = 0, failed = 0, unknown = 0, denied = 0, n = 0 }
for row = 1, ROWS do
  local lo, hi = DURATION * (row - 1) / ROWS, DURATION * row / ROWS
  local rss, fmin, fmax, smin, smax, heap, last, n = {}, math.huge, -math.huge, math.huge, 0, {}, nil, 0
  for _, s in ipairs(samples) do
    if s.t > lo and (s.t <= hi or row == ROWS) then
      rss[#rss + 1] = s.rss
      heap[#heap + 1] = s.heap
      fmin, fmax = math.min(fmin, s.fds), math.max(fmax, s.fds)
      smin, smax = math.min(smin, s.sockets), math.max(smax, s.sockets)
      last = s
      n = n + 1
    end
  end
  if last then
    io.write(string.format("%7.0fs %7d %8d %9d %7d %8d %7d %9.1f %9s %8s %9.0f\n", last.t, n, last.items - prev.items,
      last.approved - prev.approved, last.failed - prev.failed, last.unknown - prev.unknown,
      last.denied - prev.denied, median(rss) / 1024, fmin == fmax and tostring(fmin) or (fmin .. "-" .. fmax),
      smin == smax and tostring(smin) or (smin .. "-" .. smax), median(heap)))
    prev = last
  end
end

local judged = {}
for _, s in ipairs(samples) do
  if s.t >= WARMUP then judged[#judged + 1] = s end
end
local q = math.max(1, #judged // 4)
local first, lastq = {}, {}
local fd = { min = math.huge, max = -math.huge, fmin = math.huge, fmax = -math.huge, smin = math.huge,
             smax = -math.huge }
for i, s in ipairs(judged) do
  if i <= q then first[#first + 1] = s.rss end
  if i > #judged - q then lastq[#lastq + 1] = s.rss end
  fd.min, fd.max = math.min(fd.min, s.fds), math.max(fd.max, s.fds)
  fd.fmin, fd.fmax = math.min(fd.fmin, s.fds - s.sockets), math.max(fd.fmax, s.fds - s.sockets)
  fd.smin, fd.smax = math.min(fd.smin, s.sockets), math.max(fd.smax, s.sockets)
end
local rss_first, rss_last = median(first), median(lastq)
local change = rss_first and (rss_last - rss_first) / rss_first or 0
local rss_ok = #judged >= 4 and math.abs(change) <= 0.10
-- Sockets are the engine's connection pool (at most `concurrency` open
-- after a batch, fewer when faults closed some) and libcurl's wake-up
-- socket pair; files and pipes must not move at all.
local SOCKET_BOUND = CONCURRENCY + 2
local fd_ok = #judged >= 1 and fd.fmax - fd.fmin <= 2 and fd.smax <= SOCKET_BOUND
local lost_ok = totals.lost == 0

local names = {}
for name in pairs(fault_counts) do names[#names + 1] = name end
table.sort(names)
local flist = {}
for _, name in ipairs(names) do flist[#flist + 1] = name .. " x" .. fault_counts[name] end

io.write(string.format("\n%d batches in %.0f s: %d items, %d requests; %d approved, %d failed, %d unknown "
  .. "(the server acted on %d of them), %d denied, %d skipped\n", round, samples[#samples].t, totals.items,
  totals.requests, totals.approved, totals.failed, totals.unknown, totals.acted_unknown, totals.denied,
  totals.skipped))
io.write(string.format("faults injected: %d (%s); token expired mid-batch in %d batches\n", totals.faults,
  table.concat(flist, ", "), totals.expired))
io.write(string.format("server stored %d = %d approved + %d unknown it acted on; %d unknown after a full disk "
  .. "(intent, no outcome), each as its faulted run's report said\n",
  totals.approved + totals.acted_unknown, totals.approved, totals.acted_unknown, totals.intent_only))
-- Each injected fault that leaves an outcome unknown makes one unknown
-- item; any other unknown is a request that timed out (1 s) under load.
io.write(string.format("unknown outcomes: %d, injected %d (the server acted on %d of them, on %d injected)%s\n",
  totals.unknown, totals.injected_unknown, totals.acted_unknown, totals.injected_acted,
  (totals.unknown ~= totals.injected_unknown or totals.acted_unknown ~= totals.injected_acted)
    and "; the difference are requests that timed out under load" or ""))
for _, p in ipairs(problems) do io.write("  LOST: ", p, "\n") end
io.write(string.format("\nverdict (after a %.0f s warm-up, %d samples):\n", WARMUP, #judged))
io.write(string.format("  RSS: first-quarter median %.1f MiB, last-quarter median %.1f MiB (%+.1f%%)  %s\n",
  (rss_first or 0) / 1024, (rss_last or 0) / 1024, change * 100,
  opts.smoke and "(not judged in --smoke)" or (rss_ok and "flat: PASS" or "NOT flat: FAIL")))
io.write(string.format("  fds: %d-%d in all; files and pipes %d-%d (max - min <= 2), sockets %d-%d "
  .. "(the connection pool: <= concurrency + 2 = %d)  %s\n", fd.min, fd.max, fd.fmin, fd.fmax, fd.smin, fd.smax,
  SOCKET_BOUND, fd_ok and "flat: PASS" or "NOT flat: FAIL"))
io.write(string.format("  lost = %d  %s\n", totals.lost, lost_ok and "PASS" or "FAIL"))
local pass = lost_ok and fd_ok and (opts.smoke or rss_ok)
io.write(pass and "soak: PASS\n" or "soak: FAIL\n")
os.exit(pass and 0 or 1)
