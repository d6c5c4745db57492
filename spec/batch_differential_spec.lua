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
-- and so which request meets which fault, is the same in both runs.
local prequalify = require "prequalify"
local helpers = require "helpers"
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
              data = (prequalify.digest.data("differential " .. i)), hours = 8 }
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

  setup(function()
    emu = helpers.start_emulator()
    dir = helpers.tmpdir()
  end)

  teardown(function()
    if emu then emu:stop() end
    helpers.rm_rf(dir)
  end)

  local function run(name, input, extra)
    emu:reset()
    token = emu:token{ username = "approver", scope = "codesign:approve" }
    schedule(emu)
    local client = assert(prequalify.client{
      url = emu.url, token = token, ca_file = emu.ca, max_response = 64 * 1024,
      retries = { max = 3, base_delay = 0, max_delay = 5 },
    })
    local opts = { concurrency = 1, journal = dir .. "/" .. name .. ".journal", signals = false,
                   policy = prequalify.policy.environment([[**\Production Environment]]) }
    for k, v in pairs(extra or {}) do opts[k] = v end
    if opts.plain then opts.journal, opts.policy = nil, nil end
    opts.plain = nil
    local rep = assert(client:batch(input, opts))
    local by = check_accounting(emu, rep, opts.journal)
    assert.equal(0, emu:faults().count, "every fault met a request")
    client:close()
    return rep, by
  end

  -- `plain`: neither policy nor journal; `requests`: the streamed input
  -- yields normalized requests and `false, err` for a bad item, as a
  -- manifest reader does.
  local function compare(plain, requests)
    local i = 0
    local fast_rep, fast = run("fast", function()
      i = i + 1
      if i > N then return nil end
      if not requests then return item(i) end
      local req, err = prequalify.request(item(i))
      if req then return req, { line = i, source = "differential" } end
      return false, err
    end, { plain = plain })
    local list = {}
    for k = 1, N do list[k] = item(k) end
    local seen = 0
    local lua_rep, slow = run("lua", list, { on_result = function() seen = seen + 1 end, plain = plain })
    assert.equal(N, seen)
    assert.same(fast_rep.counts, lua_rep.counts)
    assert.equal(fast_rep.requests, lua_rep.requests)
    for k = 1, N do
      local a, b = fast[k], slow[k]
      local what = "item " .. k
      assert.same({ a.outcome, a.attempts, a.reason }, { b.outcome, b.attempts, b.reason }, what)
      assert.same(a.request, b.request, what)
      assert.same(a.server, b.server, what)
      assert.same(a.error and { a.error.kind, a.error.outcome, a.error.status },
                  b.error and { b.error.kind, b.error.outcome, b.error.status }, what)
    end
    -- The faults landed: every documented outcome is there.
    local c = fast_rep.counts
    assert.is_true(c.approved > 1800 and c.failed > 0 and c.unknown > 0)
    assert.is_true(plain and c.denied == 0 or c.denied > 0)
  end

  it("gives item for item the same report on the C fast path and in Lua, with a policy and a journal",
    function() compare(false) end)

  it("gives item for item the same report on the C fast path and in Lua, with neither",
    function() compare(true) end)

  it("gives item for item the same report when the streamed items are normalized requests, as from a manifest",
    function() compare(true, true) end)
end)
