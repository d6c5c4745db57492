-- Resuming a batch with a journal, counted in what the emulator stored:
-- items the server refused for their credentials are sent again by a plain
-- resume, unknown items are settled one by one (`journal resolve`) or resent
-- by key, and an unfinished run always says how much it did not reach.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"
local cjson = require "cjson"

local q = helpers.shell_quote
-- The worker runs the plain build, without the sanitizer runtime of the
-- ASan spec run.
local WORKER = "exec env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS lua5.4 "
  .. q(helpers.ROOT .. "/spec/fixtures/batch_worker.lua") .. " "

-- The worker's items (spec/fixtures/batch_worker.lua) with prefix "resume artifact ".
local function item(i)
  return { dn = helpers.DN_PROD, user = helpers.USER, comment = "worker item " .. i,
           data = (prequalify.digest.data("resume artifact " .. i)) }
end

local function items(n)
  local out = {}
  for i = 1, n do out[i] = item(i) end
  return out
end

describe("batch resume #emulator", function()
  local emu, token, dir

  local function client(opts)
    local o = { url = emu.url, token = token, ca_file = emu.ca, retries = { max = 3, base_delay = 0, max_delay = 5 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.token_file then o.token = nil end
    return assert(prequalify.client(o))
  end

  local function stored() return emu:prequalifications().count end
  local PATH = "PreQualify/Create"

  hooks.emulator({ token = "codesign:approve", dir = "test" }, function(e, t, d) emu, token, dir = e, t, d end)

  it("records a 401 as rejected, says to fix the token, and a plain resume sends those items", function()
    local tokfile, j = dir .. "/token", dir .. "/j.jsonl"
    helpers.write_file(tokfile, token, "600")
    local seen = 0
    local rep = assert(client{ token_file = tokfile }:batch(items(40), { journal = j, concurrency = 4,
      on_result = function()
        seen = seen + 1
        -- The token dies mid-batch; the file still holds it.
        if seen == 10 then assert.equal(200, (emu:http("GET", "/vedauth/revoke/token", nil,
          { Authorization = "Bearer " .. token }))) end
      end }))
    assert.equal("stopped", rep.status)
    assert.equal(4, rep:exit_code())
    assert.is_true(rep.counts.failed >= 1, "some items were refused")
    assert.equal(40, rep.counts.total + rep.not_reached)
    local refused = 0
    for e in rep:entries() do
      if e.outcome == "failed" then
        refused = refused + 1
        assert.equal(401, e.error.status)
        assert.matches("fix the token", e.reason, 1, true)
      end
    end
    assert.equal(rep.counts.failed, refused)
    assert.matches("fix the token", rep:summary(), 1, true)
    local before = stored()
    assert.is_true(before < 40)

    helpers.write_file(tokfile, (emu:token{ username = "approver", scope = "codesign:approve" }), "600")
    rep = assert(client{ token_file = tokfile }:batch(items(40), { journal = j }))
    assert.equal("complete", rep.status)
    assert.equal(0, rep:exit_code())
    assert.equal(40, rep.counts.approved)
    assert.equal(40, stored())
    assert.equal(40 - before, rep.requests)
  end)

  it("records a 403 as rejected, says to fix the scope, and a plain resume sends those items", function()
    local j = dir .. "/j.jsonl"
    emu:fault{ kind = "status", status = 403, count = 2, path = PATH,
               body = '{"error":"insufficient_scope","error_description":"Grant rejected scope"}' }
    local rep = assert(client():batch(items(6), { journal = j, concurrency = 1 }))
    assert.same({ 4, 2 }, { rep.counts.approved, rep.counts.failed })
    for e in rep:entries() do
      if e.outcome == "failed" then assert.matches("fix the scope or role", e.reason, 1, true) end
    end
    assert.equal(4, stored())
    rep = assert(client():batch(items(6), { journal = j }))
    assert.same({ 2, 6, 0 }, { rep.requests, rep.counts.approved, rep:exit_code() })
    assert.equal(6, stored())
  end)

  it("settles unknowns after kill -9 one by one: resolved ones stay, only the keys asked for are resent", function()
    local j = dir .. "/j.jsonl"
    local cfg = { url = emu.url, ca = emu.ca, token = token, n = 8, prefix = "resume artifact ",
                  dn = helpers.DN_PROD, user = helpers.USER, journal = j, concurrency = 8, kill_after_requests = 8 }
    helpers.write_file(dir .. "/cfg.json", cjson.encode(cfg))
    -- The server stores each request, then holds its reply until after the kill.
    emu:fault{ kind = "delay", delay = 2, count = 8, path = PATH }
    local p = assert(io.popen(WORKER .. q(dir .. "/cfg.json") .. " 2>&1"))
    local out = p:read("a")
    local _, how, code = p:close()
    assert.same({ "signal", 9 }, { how, code }, out)

    local r = cli.run({ "journal", "list", j, "--unknown", "--json" })
    assert.equal(1, r.code, r.err)
    local listed = cli.json(r)
    assert.same({ 8, 8 }, { listed.unknown, #listed.items })
    local keys = {}
    for i, it in ipairs(listed.items) do keys[i] = it.key end

    local args = { "journal", "resolve", j, "--as", "approved", "--note", "seen in the TPP console" }
    table.move(keys, 1, 5, #args + 1, args)
    r = cli.run(args)
    assert.equal(0, r.code, r.err)
    assert.equal(5, select(2, r.out:gsub("resolved ", "")))
    r = cli.run({ "journal", "list", j, "--unknown" })
    assert.matches("8 items, 3 unknown", r.out, 1, true)

    local before = stored()
    local rep = assert(client():batch(items(8), { journal = j,
      retry_unknown = { [keys[6]] = true, [keys[7]] = true, [keys[8]] = true } }))
    assert.equal(3, stored() - before)
    assert.same({ 3, 8, 0 }, { rep.requests, rep.counts.approved, rep:exit_code() })

    rep = assert(client():batch(items(8), { journal = j }))
    assert.same({ 0, 8, 0 }, { rep.requests, rep.counts.approved, rep:exit_code() })
    assert.equal(3, stored() - before)
  end)

  for _, input in ipairs{ "an array", "an iterator" } do
    it("with a policy that denies what an earlier run approved, sends nothing and says the server holds it ("
      .. input .. ")", function()
      local j = dir .. "/j.jsonl"
      local list = items(4)
      list[2].comment, list[3].comment = "worker item 2 (no ticket)", "worker item 3 (no ticket)"
      local rep = assert(client():batch(list, { journal = j }))
      assert.same({ 4, 4 }, { rep.counts.approved, stored() })
      local source = list
      if input == "an iterator" then
        local i = 0
        source = function()
          i = i + 1
          return list[i]
        end
      end
      local policy = prequalify.policy.comment_matches("^worker item %d$")
      rep = assert(client():batch(source, { journal = j, policy = policy }))
      assert.same({ 0, 2, 2, 4 }, { rep.requests, rep.counts.approved, rep.counts.denied, rep.counts.resumed })
      assert.equal(2, rep.counts.approved_earlier)
      assert.equal(1, rep:exit_code())
      for e in rep:entries() do
        assert.is_true(e.resumed, "item " .. e.index)
        if e.index == 2 or e.index == 3 then
          assert.equal("denied", e.outcome)
          assert.matches("; approved by an earlier run: the server still holds that approval", e.reason, 1, true)
          assert.matches("^denied by policy: .*; approved by an earlier run: the server still holds that approval$",
            e.error.message)
        else
          assert.equal("approved", e.outcome)
        end
      end
      assert.matches("\n  2 denied items were approved by an earlier run: the server still holds those approvals "
        .. "(nothing sent now)", rep:summary(), 1, true)
      assert.equal(4, stored())
    end)
  end

  it("refuses to resolve an item whose outcome is known, or with a bad outcome, through the Lua API", function()
    local j = dir .. "/j.jsonl"
    assert(client():batch(items(2), { journal = j }))
    local key = prequalify.journal.items(j)[1].key
    local jr = assert(prequalify.journal.open(j))
    local ok, err = jr:resolve(key, "approved", "checked")
    assert.is_nil(ok)
    assert.matches("is approved, not unknown", err.message, 1, true)
    ok, err = jr:resolve(key, "maybe", "checked")
    assert.same({ nil, "invalid", "outcome" }, { ok, err.kind, err.field })
    ok, err = jr:resolve("nope", "approved", "checked")
    assert.is_nil(ok)
    assert.matches("has no item with key nope", err.message, 1, true)
    jr:close()
  end)

  it("with --progress off and a deadline, the summary shows what was not reached and the exit code 4", function()
    local path = dir .. "/m.jsonl"
    local lines = {}
    for i = 1, 30 do lines[i] = cjson.encode(item(i)) end
    helpers.write_file(path, table.concat(lines, "\n") .. "\n")
    emu:fault{ kind = "delay", delay = 0.3, count = 1000, path = PATH }
    local r = cli.run({ "batch", path, "--progress", "off", "--deadline", "0.5", "--concurrency", "2",
                        "--journal", dir .. "/j.jsonl" }, { env = cli.emu_env(emu, { PREQUALIFY_TOKEN = token }) })
    assert.equal(4, r.code, r.out .. r.err)
    local done, total, not_reached = r.out:match("(%d+) of (%d+) items: .-, (%d+) not reached")
    assert.equal("30", total, r.out)
    assert.equal(30, tonumber(done) + tonumber(not_reached))
    assert.is_true(tonumber(not_reached) > 0)
    assert.matches("not reached; run again with the same journal to resume", r.out, 1, true)
  end)
end)
