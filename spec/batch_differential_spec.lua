-- The differential check of the batch pipeline: the same 2,000-item batch,
-- with the fault matrix's kinds injected at the same places, runs once on
-- the C pipeline's fast path (a streamed input: common successes finished in
-- C, no Lua table per item) and once with every reply decided in Lua (an
-- array with an on_result hook); with a policy and a journal, and again with
-- neither (items then validated and queued in C a chunk at a time,
-- `add_inputs`, also when they are normalized requests, as a manifest
-- reader yields). Item for item, both give the same report entry, and each
-- run's report, journal and the server's own counts agree as
-- docs/BATCH.md documents them. At concurrency 1 the order of requests,
-- and so which request meets which fault, is the same in both runs. With a
-- policy (some items denied, some adjusted) the fast path takes each
-- decision in Lua and queues the items allowed as they are a chunk at a
-- time; with a journal alone it makes the items' keys in C and hands Lua
-- only those an earlier run recorded, which a resume checks (without and
-- with a policy): recorded items reported, an intent without a done record
-- never resent, an approval with other terms skipped, new items sent.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cjson = require "cjson"

local PATH = "PreQualify/Create"
local N = 2000

-- Faults of the matrix (spec/fault_matrix_spec.lua) with what the batch
-- documents for them; each is placed after a run of untouched requests.
local FAULTS = {
  { kind = "status", status = 429, retry_after = "0" },      -- retried, then approved
  { kind = "status", status = 503, retry_after = "0" },      -- retried, then approved
  { kind = "status", status = 503 },                         -- failed (no Retry-After)
  { kind = "status", status = 500 },                         -- unknown
  { kind = "status", status = 502 },                         -- unknown
  { kind = "drop", process = true },                         -- unknown, stored
  { kind = "drop", process = false },                        -- unknown, not stored
  { kind = "malformed" },                                    -- unknown, stored
  { kind = "oversized", size = 100000 },                     -- unknown, stored
  { kind = "status", status = 429, count = 3 },              -- failed after 3 tries
  { kind = "status", status = 400, body = '{"Error":"bad"}' }, -- failed (rejected)
}

local function schedule(emu)
  emu:clear_faults()
  for round = 1, 4 do
    for i, f in ipairs(FAULTS) do
      -- Untouched requests between faults (a delay of 0 changes nothing).
      emu:fault{ kind = "delay", delay = 0, count = 5 + 3 * i + round, path = PATH }
      local spec = { path = PATH }
      for k, v in pairs(f) do spec[k] = v end
      emu:fault(spec)
    end
  end
end

local function item(i)
  local t = { dn = helpers.DN_PROD, user = helpers.USER, comment = "differential " .. i,
              data = (prequalify.digest.data("differential " .. i)), hours = i % 3 == 0 and 8 or 2 }
  if i % 97 == 0 then t.dn = helpers.DN_STAGING end -- denied by the policy
  if i % 401 == 0 then t.data = "not base64!" end   -- invalid
  return t
end

local function last_done(path)
  local done = {}
  for line in io.lines(path) do
    local ok, rec = pcall(cjson.decode, line)
    if ok and type(rec) == "table" and rec.type == "done" then done[rec.key] = rec end
  end
  return done
end

local function entries_by_index(rep)
  local out = {}
  for e in rep:entries() do out[math.tointeger(e.index)] = e end
  return out
end

-- What a run's report, journal and server say of each item agree.
local function check_accounting(emu, rep, journal)
  local by = entries_by_index(rep)
  local done = journal and last_done(journal) or {}
  local stored = {}
  for _, p in ipairs(emu:prequalifications().items) do stored[p.data] = (stored[p.data] or 0) + 1 end
  assert.equal(N, rep.counts.total)
  assert.equal(emu:received(PATH), rep.requests)
  for i = 1, N do
    local e = by[i]
    assert.is_table(e, "item " .. i .. " has an entry")
    local s = stored[e.request and e.request.data or ""] or 0
    local rec = e.key and done[e.key]
    if not journal then
      local want = e.outcome == "approved" and 1 or e.outcome == "unknown" and s or 0
      assert.equal(want, s, e.outcome .. " item " .. i .. " stored " .. s .. " times")
    elseif e.outcome == "approved" then
      assert.equal(1, s, "approved item " .. i .. " stored once")
      assert.same({ "approved", e.attempts }, { rec.outcome, rec.attempts })
    elseif e.outcome == "unknown" then
      assert.is_true(s <= 1, "unknown item " .. i .. " stored at most once")
      assert.same({ "unknown", e.attempts }, { rec.outcome, rec.attempts })
    elseif e.outcome == "failed" and e.error.kind ~= "invalid" then
      assert.equal(0, s, "failed item " .. i .. " not stored")
      assert.same({ "failed", e.attempts }, { rec.outcome, rec.attempts })
    else
      assert.equal(0, s, e.outcome .. " item " .. i .. " not stored")
      assert.is_nil(rec, e.outcome .. " item " .. i .. " has no done record")
    end
  end
  return by
end

describe("batch pipeline, differential #emulator #slow", function()
  local emu, token, dir

  hooks.emulator({ dir = "block" }, function(e, _, d) emu, dir = e, d end)

  -- Items in staging are denied, those asking for 8 hours get 4.
  local function policy()
    return prequalify.policy.all{ prequalify.policy.environment([[**\Production Environment]]),
                                  prequalify.policy.clamp_hours(4) }
  end

  local function run(name, input, extra)
    emu:reset()
    token = emu:token{ username = "approver", scope = "codesign:approve" }
    schedule(emu)
    local client = assert(prequalify.client{
      url = emu.url, token = token, ca_file = emu.ca, max_response = 64 * 1024,
      retries = { max = 3, base_delay = 0, max_delay = 5 },
    })
    local opts = { concurrency = 1, journal = dir .. "/" .. name .. ".journal", signals = false, policy = policy() }
    for k, v in pairs(extra or {}) do opts[k] = v end
    if opts.plain then opts.journal, opts.policy = nil, nil end
    if opts.policy == false then opts.policy = nil end
    if opts.journal == false then opts.journal = nil end
    opts.plain = nil
    local rep = assert(client:batch(input, opts))
    local by = check_accounting(emu, rep, opts.journal)
    assert.equal(0, emu:faults().count, "every fault met a request")
    client:close()
    return rep, by
  end

  -- The streamed input of the fast path: item(1..n) (`requests`: as
  -- normalized requests and `false, err` for a bad item, as a manifest
  -- reader yields them).
  local function stream(n, requests, make)
    local i = 0
    return function()
      i = i + 1
      if i > n then return nil end
      if not requests then return make(i) end
      local req, err = prequalify.request(make(i))
      if req then return req, { line = i, source = "differential" } end
      return false, err
    end
  end

  local function same_entries(fast_rep, fast, lua_rep, slow, n)
    assert.same(fast_rep.counts, lua_rep.counts)
    assert.equal(fast_rep.requests, lua_rep.requests)
    for k = 1, n do
      local a, b = fast[k], slow[k]
      local what = "item " .. k
      assert.same({ a.outcome, a.attempts, a.reason, a.resumed }, { b.outcome, b.attempts, b.reason, b.resumed },
        what)
      assert.same({ a.request, a.sent, a.key }, { b.request, b.sent, b.key }, what)
      assert.same(a.server, b.server, what)
      assert.same(a.error and { a.error.kind, a.error.outcome, a.error.status },
                  b.error and { b.error.kind, b.error.outcome, b.error.status }, what)
    end
  end

  -- The same batch on the fast path and in Lua (an array, an on_result
  -- hook); `extra`: the runs' options; `tag` names their journals.
  local function compare(tag, extra, requests)
    local fast_rep, fast = run(tag .. "-fast", stream(N, requests, item), extra)
    local list = {}
    for k = 1, N do list[k] = item(k) end
    local seen = 0
    local lua_extra = { on_result = function() seen = seen + 1 end }
    for k, v in pairs(extra) do lua_extra[k] = v end
    local lua_rep, slow = run(tag .. "-lua", list, lua_extra)
    assert.equal(N, seen)
    same_entries(fast_rep, fast, lua_rep, slow, N)
    -- The faults landed: every documented outcome is there.
    local c = fast_rep.counts
    assert.is_true(c.approved > 1800 and c.failed > 0 and c.unknown > 0)
    assert.equal(extra.policy == nil and not extra.plain, c.denied > 0)
    return fast_rep, lua_rep
  end

  it("gives item for item the same report on the C fast path and in Lua, with a policy and a journal",
    function()
      local rep = compare("both", {})
      local adjusted = 0
      for e in rep:entries() do if e.sent then adjusted = adjusted + 1 end end
      assert.is_true(adjusted > 500, "adjusted items: " .. adjusted)
    end)

  -- #nosan: the C this case and the policy-on-an-old-journal resume take is taken by
  -- the other cases too (what they add is Lua), and each costs about a minute under ASan.
  it("gives item for item the same report on the C fast path and in Lua, with a policy alone #nosan",
    function() compare("policy", { journal = false }) end)

  it("gives item for item the same report on the C fast path and in Lua, with neither",
    function() compare("plain", { plain = true }) end)

  it("gives item for item the same report when the streamed items are normalized requests, as from a manifest",
    function() compare("requests", { plain = true }, true) end)

  -- A resume on each run's journal: items 1..N again (every 50th asking
  -- for other hours), N+1..N+M new, of which the first ten (but an invalid
  -- one) have an intent and no done record (as a run killed after writing
  -- them leaves).
  local M = 40
  local function again(i)
    local t = item(i)
    if i <= N and i % 50 == 7 then t.hours = 3 end
    return t
  end

  -- A new item is approved, or denied (in staging) when `with_policy`.
  local function new_outcome(i, with_policy)
    return with_policy and i % 97 == 0 and "denied" or "approved"
  end

  local function resume(name, input, with_policy)
    local path = dir .. "/" .. name .. ".journal"
    local f = assert(io.open(path, "a"))
    for i = N + 1, N + 10 do
      local t = item(i)
      local req = prequalify.request(t)
      if req then
        f:write(cjson.encode{ type = "intent", key = (prequalify.journal.key(req)), attempt = 1, time = 1,
                              dn = t.dn, user = t.user, data = t.data, hours = t.hours, index = i }, "\n")
      end
    end
    f:close()
    emu:reset()
    emu:clear_faults()
    local client = assert(prequalify.client{
      url = emu.url, token = emu:token{ username = "approver", scope = "codesign:approve" }, ca_file = emu.ca,
      retries = { max = 3, base_delay = 0, max_delay = 5 },
    })
    local rep = assert(client:batch(input, { concurrency = 1, journal = path, signals = false,
      on_result = type(input) == "table" and function() end or nil, policy = with_policy and policy() or nil }))
    client:close()
    assert.equal(emu:received(PATH), rep.requests)
    local by, stored = entries_by_index(rep), {}
    for _, p in ipairs(emu:prequalifications().items) do stored[p.data] = (stored[p.data] or 0) + 1 end
    for i = 1, N + M do
      local e = by[i]
      local s = stored[e.request and e.request.data or ""] or 0
      if e.resumed then assert.equal(0, s, "resumed item " .. i .. " not sent again") end
      if i > N + 10 and i % 401 ~= 0 then
        local want = new_outcome(i, with_policy)
        assert.same({ want, want == "approved" and 1 or 0 }, { e.outcome, s }, "new item " .. i)
      end
    end
    return rep, by
  end

  local function compare_resume(tag, with_policy)
    local first = entries_by_index((compare(tag, { policy = false })))
    local fast_rep, fast = resume(tag .. "-fast", stream(N + M, false, again), with_policy)
    local list = {}
    for k = 1, N + M do list[k] = again(k) end
    local lua_rep, slow = resume(tag .. "-lua", list, with_policy)
    same_entries(fast_rep, fast, lua_rep, slow, N + M)
    local c = fast_rep.counts
    -- Recorded outcomes reported, not sent; the intents without done unknown, not sent.
    local new = 0
    for i = N + 11, N + M do
      if i % 401 ~= 0 and new_outcome(i, with_policy) == "approved" then new = new + 1 end
    end
    assert.equal(new, fast_rep.requests)
    assert.is_true(c.resumed > 1900 and c.approved > 1100 and c.unknown >= 10 and c.other_terms > 0)
    for i = N + 1, N + 10 do
      if i % 401 ~= 0 then assert.same({ "unknown", true }, { fast[i].outcome, fast[i].resumed }, "item " .. i) end
    end
    return fast, first
  end

  it("resumes item for item the same way on the C fast path and in Lua, with a journal alone",
    function() compare_resume("journal", false) end)

  it("resumes item for item the same way with a policy on a journal written without one #nosan",
    function()
      local fast, first = compare_resume("jpolicy", true)
      local staging, clamped = 0, 0
      for i = 1, N do
        if first[i].outcome == "approved" and i % 50 ~= 7 then
          if i % 97 == 0 and i % 3 ~= 0 then
            -- Approved in staging by the first run (no policy then): the policy is asked about an
            -- earlier approval too (its terms as the policy would send them now), and its deny stands.
            assert.same({ "denied", 0 }, { fast[i].outcome, fast[i].attempts or 0 }, "item " .. i)
            staging = staging + 1
          elseif i % 3 == 0 and i % 97 ~= 0 then
            -- Approved for 8 hours by the first run, clamped to 4 now: not sent, other terms.
            assert.same({ "skipped", "already approved with other terms" }, { fast[i].outcome, fast[i].reason },
              "item " .. i)
            clamped = clamped + 1
          end
        end
      end
      assert.is_true(staging >= 5 and clamped >= 300, staging .. " staging, " .. clamped .. " clamped")
    end)
end)
