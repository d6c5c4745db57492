-- Pre-qualifying without blocking the host: the Run driven from luv and
-- cqueues coroutines, from a hand-written poll(2) loop, cancelled and
-- resumed, re-authenticating through `yield`, and one call as a pollable
-- object. Timer gaps are wall-clock bounds: those tests are #nosan (the
-- ASan build runs the same code paths in the other tests).
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local prequalify = require "prequalify"
local core = require "prequalify.core"
local cjson = require "cjson"

local PATH = "PreQualify/Create"
local TOKEN = "/vedauth/authorize/token"

local function items(n, tag)
  local out = {}
  for i = 1, n do
    out[i] = { dn = helpers.DN_PROD, user = helpers.USER, comment = tag .. " " .. i,
               data = (prequalify.digest.data(tag .. " " .. i)) }
  end
  return out
end

-- What a user compares between two reports of the same items.
local function view(rep)
  local outcomes = {}
  for e in rep:entries() do outcomes[e.index] = e.outcome end
  return { status = rep.status, counts = rep.counts, requests = rep.requests, not_reached = rep.not_reached,
           outcomes = outcomes }
end

-- Each item reached the server exactly once.
local function assert_each_once(emu, n)
  assert.equal(n, emu:received(PATH))
  local seen = {}
  for _, p in ipairs(emu:prequalifications().items) do
    assert.is_nil(seen[p.comment], "sent twice: " .. tostring(p.comment))
    seen[p.comment] = true
  end
end

-- The bound on a 10 ms timer's largest gap: 50 ms, as the issue asks; on a
-- machine busier than its cores (load average >= CPUs, e.g. several test
-- runs at once) the scheduler alone delays a tick that long, so then 250 ms,
-- which a blocking wait (2.5 s for the batch, 0.3 s for the slow refresh)
-- still exceeds. The CPU the module spends holding the loop is bounded at
-- 50 ms in every case (`timed`).
local function gap_bound()
  local f = io.open("/proc/loadavg")
  local load = f and tonumber(f:read("l"):match("^(%S+)")) or 0
  if f then f:close() end
  local p = io.popen("nproc")
  local cpus = p and tonumber(p:read("l")) or 1
  if p then p:close() end
  return load >= cpus and 0.25 or 0.05
end

-- A yield that records the longest stretch the module ran between two
-- waits, in process CPU time (the work it did while holding the host's
-- loop; a wait it blocked on instead shows in the timer's gap).
local function timed(yield)
  local held, back = 0, os.clock()
  local function f(fd, timeout)
    held = math.max(held, os.clock() - back)
    yield(fd, timeout)
    back = os.clock()
  end
  return f, function() return held end
end

-- Runs fn(client) in a coroutine of a luv loop with a repeating 10 ms timer;
-- returns what fn returned (packed) and the largest gap between ticks.
local function under_luv(fn)
  local uv = require "luv"
  local gap, last, out, failure = 0, nil, nil, nil
  local tick = uv.new_timer()
  tick:start(10, 10, function()
    local now = uv.hrtime()
    if last then gap = math.max(gap, (now - last) / 1e9) end
    last = now
  end)
  local co = coroutine.create(function()
    out = table.pack(fn())
    tick:stop()
    tick:close()
  end)
  local kick = uv.new_timer()
  kick:start(0, 0, function()
    kick:close()
    local ok, err = coroutine.resume(co)
    if not ok then
      failure = debug.traceback(co, err)
      tick:stop()
      tick:close()
    end
  end)
  uv.run()
  assert(not failure, failure)
  return out, gap
end

-- The same under a cqueues controller, ticking with cqueues.sleep(0.01).
local function under_cqueues(fn)
  local cqueues = require "cqueues"
  local q = cqueues.new()
  local gap, last, out, done = 0, nil, nil, false
  q:wrap(function()
    while not done do
      cqueues.sleep(0.01)
      local now = core.monotonic()
      if last then gap = math.max(gap, now - last) end
      last = now
    end
  end)
  q:wrap(function()
    out = table.pack(fn())
    done = true
  end)
  assert(q:loop())
  return out, gap
end

describe("pre-qualifying without blocking the host #emulator", function()
  local emu, token, dir

  hooks.emulator({ token = "codesign:approve", dir = "block" }, function(e, t, d) emu, token, dir = e, t, d end)

  local function client(extra)
    local o = { url = emu.url, token = token, ca_file = emu.ca }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(prequalify.client(o))
  end

  -- The blocking batch of the same items, for comparison.
  local function blocking(list)
    local c = client()
    local rep = assert(c:batch(list, { concurrency = 16, signals = false }))
    local v = view(rep)
    c:close()
    emu:reset()
    token = emu:token{ username = "approver", scope = "codesign:approve" }
    return v
  end

  it("keeps a luv timer ticking while a coroutine pre-qualifies 200 delayed items #nosan", function()
    local list = items(200, "luv")
    local expected = blocking(list)
    emu:fault{ kind = "delay", delay = 0.2, count = 1000, path = PATH }
    local A = require "prequalify.async.luv"
    local c = client()
    local yield, held = timed(A.yield)
    local out, gap = under_luv(function()
      return c:batch(list, { concurrency = 16, signals = false, yield = yield })
    end)
    local rep = assert(out[1], out[2] and out[2].message)
    local got = view(rep)
    for k, v in pairs(expected) do assert.same(v, got[k], k) end
    assert_each_once(emu, 200)
    assert.is_true(held() < 0.05, string.format("the module held the loop for %.3f s of CPU", held()))
    assert.is_true(gap < gap_bound(), string.format("largest timer gap %.3f s", gap))
    c:close()
  end)

  it("keeps a cqueues coroutine ticking while another waits on a Run of 200 delayed items #nosan", function()
    local list = items(200, "cq")
    local expected = blocking(list)
    emu:fault{ kind = "delay", delay = 0.2, count = 1000, path = PATH }
    local A = require "prequalify.async.cqueues"
    local c = client()
    local out, gap = under_cqueues(function()
      local run = assert(c:start_batch(list, { concurrency = 16, signals = false, yield = A.yield }))
      return A.wait(run)
    end)
    assert.same(expected, view(out[1]))
    assert_each_once(emu, 200)
    assert.is_true(gap < gap_bound(), string.format("largest timer gap %.3f s", gap))
    c:close()
  end)

  it("finishes from a poll(2) loop on pollfd() and timeout() without busy-waiting", function()
    emu:fault{ kind = "delay", delay = 0.25, count = 1000, path = PATH }
    local c = client()
    local run = assert(c:start_batch(items(32, "poll"), { concurrency = 4, signals = false }))
    assert.equal("r", run:events())
    assert.equal("integer", math.type(run:pollfd()))
    local cpu0, t0, steps = os.clock(), core.monotonic(), 0
    while not run:step(0) do
      steps = steps + 1
      core.poll_fd(run:pollfd(), run:events(), run:timeout())
    end
    local cpu, wall = os.clock() - cpu0, core.monotonic() - t0
    local rep = assert(run:report())
    assert.same({ "complete", 32 }, { rep.status, rep.counts.approved })
    assert.is_true(wall >= 1.9, string.format("the batch took %.2f s", wall))
    assert.is_true(cpu < 0.2, string.format("%.3f s of CPU over %.2f s (%d steps)", cpu, wall, steps))
    c:close()
  end)

  it("writes the journal and the report as SIGINT would when cancelled, and a resume sends nothing twice", function()
    local journal, report = dir .. "/cancel.journal", dir .. "/cancel.report.json"
    os.remove(journal)
    emu:fault{ kind = "delay", delay = 0.2, count = 1000, path = PATH }
    local list = items(30, "cancel")
    local c = client()
    local run = assert(c:start_batch(list, { concurrency = 2, journal = journal, report = report, signals = false }))
    repeat
      run:step(0.05)
    until emu:received(PATH) >= 2
    run:cancel()
    assert.is_nil(run:report(), "no report before the run has finished")
    local rep = run:close()
    assert.equal("interrupted", rep.status)
    assert.is_true(rep.interrupted)
    assert.equal(130, rep:exit_code())
    assert.equal(28, rep.not_reached)
    local written = cjson.decode((assert(helpers.read_file(report))))
    assert.same({ "interrupted", 28 }, { written.status, written.not_reached })
    local last
    for line in assert(helpers.read_file(journal)):gmatch("[^\n]+") do last = cjson.decode(line) end
    assert.same({ "run", "end", "interrupted" }, { last.type, last.event, last.status })

    local again = assert(c:batch(list, { concurrency = 2, journal = journal, signals = false }))
    assert.equal("complete", again.status)
    assert.equal(30, again.counts.approved)
    assert_each_once(emu, 30)
    c:close()
  end)

  it("re-authenticates after a 401 mid-batch through yield without blocking the timer #nosan", function()
    local A = require "prequalify.async.luv"
    local c = assert(prequalify.client{ url = emu.url, ca_file = emu.ca, auth = {
      client_id = helpers.CLIENT_ID, username = helpers.APPROVER, password = helpers.APPROVER_PASSWORD } })
    local list = items(40, "reauth")
    -- The clock starts once the client is made (outside the loop), as in
    -- the tests above.
    local yield, held = timed(A.yield)
    local out, gap = under_luv(function()
      -- A wave of 401s, then a slow refresh.
      emu:fault{ kind = "status", status = 401, count = 8, path = PATH,
                 body = '{"error":"invalid_token","error_description":"The access token has expired"}' }
      emu:fault{ kind = "delay", delay = 0.3, count = 5, path = TOKEN }
      return c:batch(list, { concurrency = 8, signals = false, yield = yield })
    end)
    local rep = assert(out[1])
    assert.same({ "complete", 40 }, { rep.status, rep.counts.approved })
    assert.equal(1, emu:received("/vedauth/authorize/oauth"), "one sign-in")
    assert.equal(1, emu:received(TOKEN), "one re-authentication (a refresh), slowed by 0.3 s")
    assert.is_true(held() < 0.05, string.format("the module held the loop for %.3f s of CPU", held()))
    assert.is_true(gap < gap_bound(), string.format("largest timer gap %.3f s", gap))
    c:close()
  end)

  it("runs one call as a pollable object whose report is what prequalify returns", function()
    emu:fault{ kind = "delay", delay = 0.2, count = 1, path = PATH }
    local c = client()
    local call = c:start(items(1, "single")[1])
    assert.is_false(call:step(0))
    assert.is_nil(call:report())
    while not call:step(0) do core.poll_fd(call:pollfd(), call:events(), call:timeout()) end
    local res, err = call:report()
    assert.is_nil(err)
    assert.same({ true, 1 }, { res.ok, res.result })
    local bad = c:start({ dn = helpers.DN_PROD, user = helpers.USER, data = "not base64!" })
    assert.is_true(bad:step(0))
    local none, verr = bad:report()
    assert.is_nil(none)
    assert.equal("invalid", verr.kind)
    assert.equal(1, emu:received(PATH))
    c:close()
  end)

  it("leaves nothing behind when a Run is closed or collected mid-batch", function()
    emu:fault{ kind = "delay", delay = 0.3, count = 1000, path = PATH }
    local c = client()
    local journal = dir .. "/gc.journal"
    os.remove(journal)
    local run = assert(c:start_batch(items(10, "gc"), { concurrency = 2, journal = journal, signals = false }))
    run:step(0)
    run = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    emu:clear_faults()
    -- The journal's lock is released and the engine takes new work.
    local rep = assert(c:batch(items(3, "after"), { journal = journal, signals = false }))
    assert.equal(3, rep.counts.approved)
    local before = #emu:prequalifications().items
    emu:fault{ kind = "delay", delay = 0.2, count = 1000, path = PATH }
    do
      local closing <close> = assert(c:start_batch(items(4, "close"), { concurrency = 2, signals = false }))
      closing:step(0)
    end
    -- Closed mid-batch: what was in flight finished, nothing else was sent.
    assert.equal(before + 2, #emu:prequalifications().items)
    c:close()
  end)
end)
