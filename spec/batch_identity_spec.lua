-- One approval per identity (DN in any letter case, data, user), counted in
-- what the emulator stored: an earlier approval with other terms is not sent
-- again unless asked, copies within a run go on the wire once, and a journal
-- of the earlier format is refused.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"

local function item(i, over)
  local t = {
    dn = helpers.DN_PROD, user = helpers.USER, comment = "identity item " .. i, hours = 2,
    data = (prequalify.digest.data("identity artifact " .. i)),
  }
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

local function items(n, over)
  local out = {}
  for i = 1, n do out[i] = item(i, over) end
  return out
end

local function by_index(rep)
  local out = {}
  for e in rep:entries() do out[e.index] = e end
  return out
end

describe("batch identity #emulator", function()
  local emu, token, dir

  local function client()
    return assert(prequalify.client{ url = emu.url, token = token, ca_file = emu.ca,
                                     retries = { max = 3, base_delay = 0, max_delay = 5 } })
  end

  local function stored() return emu:prequalifications().count end

  hooks.emulator({ token = "codesign:approve", dir = "test" }, function(e, t, d) emu, token, dir = e, t, d end)

  for _, change in ipairs{ { hours = 3 }, { comment = "another comment" }, { single_use = true } } do
    local what = next(change)
    it("does not send an approved item again with other " .. what .. "; allow_reapproval sends it once", function()
      local j = dir .. "/j.jsonl"
      assert(client():batch(items(5), { journal = j }))
      assert.equal(5, stored())
      local changed = items(5, change)
      local rep = assert(client():batch(changed, { journal = j }))
      assert.equal(5, stored())
      assert.equal(5, rep.counts.skipped)
      local e = by_index(rep)[3]
      assert.same({ "skipped", "already approved with other terms" }, { e.outcome, e.reason })
      local was, now = item(3), changed[3]
      assert.same({ hours = was.hours, single_use = was.single_use or false, comment = was.comment },
        e.terms.approved)
      assert.same({ hours = now.hours, single_use = now.single_use or false, comment = now.comment },
        e.terms.requested)
      assert.equal(1, rep:exit_code())

      rep = assert(client():batch(changed, { journal = j, allow_reapproval = true }))
      assert.equal(10, stored())
      e = by_index(rep)[3]
      assert.equal("approved", e.outcome)
      assert.matches("deliberate re-approval", e.reason, 1, true)
      assert.same(e.reapproval.requested[what], now[what] or false)
      -- Approved with these terms now: a re-run sends nothing.
      rep = assert(client():batch(changed, { journal = j }))
      assert.equal(10, stored())
      assert.equal(5, rep.counts.approved)
    end)
  end

  for _, journal in ipairs{ false, true } do
    it("sends 3 copies of 10 items once each " .. (journal and "with" or "without") .. " a journal", function()
      local list = {}
      for copy = 1, 3 do
        for i = 1, 10 do list[(copy - 1) * 10 + i] = item(i, { comment = "copy " .. copy }) end
      end
      local rep = assert(client():batch(list, { journal = journal and dir .. "/j.jsonl" or nil }))
      assert.equal(10, stored())
      assert.same({ 10, 20 }, { rep.counts.approved, rep.counts.skipped })
      assert.equal("duplicate of item 4", by_index(rep)[24].reason)
    end)
  end

  it("sends 3 copies of 10 manifest lines once each on the pipeline's own path", function()
    local path = dir .. "/m.jsonl"
    local f = assert(io.open(path, "w"))
    for _ = 1, 3 do
      for i = 1, 10 do f:write(require("cjson").encode(item(i)), "\n") end
    end
    f:close()
    local rep = assert(client():batch(assert(prequalify.manifest.read(path))))
    assert.equal(10, stored())
    assert.same({ 10, 20 }, { rep.counts.approved, rep.counts.skipped })
  end)

  it("keeps input order when the pipeline's chunks meet bad items, copies and request objects", function()
    -- Plain tables with their source's line, as an iterator gives them: the
    -- pipeline's chunks. Item 3 is invalid, item 5 a copy of item 2, item 7
    -- a request object (looked at in Lua, between two parts of a chunk)
    -- with the identity of item 6, item 9 not a table at all.
    local n = 0
    local function source()
      n = n + 1
      if n > 12 then return nil end
      if n == 7 then return assert(prequalify.request(item(6))), { line = 7 } end
      if n == 9 then return false, { line = 9 } end
      local t = item(n == 5 and 2 or n)
      if n == 3 then t.hours = "two" end
      return t, { line = n, file = "in.jsonl" }
    end
    local rep = assert(client():batch(source, { concurrency = 16 }))
    local by = by_index(rep)
    assert.same({ "failed", "hours", 3, "in.jsonl" }, { by[3].outcome, by[3].error.field, by[3].line, by[3].file })
    assert.same({ "skipped", "duplicate of item 2", 5 }, { by[5].outcome, by[5].reason, by[5].line })
    assert.same({ "approved", "skipped", "duplicate of item 6" }, { by[6].outcome, by[7].outcome, by[7].reason })
    assert.same({ "failed", 8 }, { by[9].outcome, by[8].line })
    assert.same({ 12, 8, 2, 2 }, { rep.counts.total, rep.counts.approved, rep.counts.failed, rep.counts.skipped })
    assert.equal(8, stored())
  end)

  it("counts the same DN in another letter case as the same identity", function()
    local j = dir .. "/j.jsonl"
    local rep = assert(client():batch({ item(1), item(1, { dn = helpers.DN_PROD:upper() }) }))
    assert.equal(1, stored())
    assert.equal("duplicate of item 1", by_index(rep)[2].reason)
    assert(client():batch({ item(2) }, { journal = j }))
    rep = assert(client():batch({ item(2, { dn = "\\VED\\" .. helpers.DN_PROD:sub(6):lower() }) }, { journal = j }))
    assert.equal(2, stored())
    assert.equal("approved", by_index(rep)[1].outcome)
    assert.equal("recorded by an earlier run", by_index(rep)[1].reason)
  end)

  it("refuses a journal of the earlier format, saying why, and sends nothing", function()
    local j = dir .. "/old.jsonl"
    local f = assert(io.open(j, "w"))
    f:write('{"type":"run","v":1,"event":"start","time":1,"known":0}\n')
    f:write('{"type":"intent","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","attempt":1,"dn":"x",',
      '"user":"local:u","data":"AA=="}\n')
    f:close()
    local rep, err = client():batch(items(2), { journal = j })
    assert.is_nil(rep)
    assert.equal("invalid", err.kind)
    assert.matches("written in format 1 by an earlier version", err.message, 1, true)
    assert.matches("start a new journal file", err.message, 1, true)
    assert.equal(0, stored())
  end)
end)

describe("plan", function()
  it("marks the later copies of an identity as duplicates, as a batch skips them", function()
    local cli = require "fixtures.cli"
    local dir = helpers.tmpdir()
    local lines = {}
    for copy = 1, 3 do
      for i = 1, 10 do
        local t = item(i, { comment = "copy " .. copy })
        if copy == 3 then t.dn = t.dn:upper() end
        lines[#lines + 1] = require("cjson").encode(t)
      end
    end
    helpers.write_file(dir .. "/m.jsonl", table.concat(lines, "\n") .. "\n")
    local r = cli.run({ "plan", dir .. "/m.jsonl" })
    helpers.rm_rf(dir)
    assert.equal(0, r.code, r.err)
    assert.equal(20, select(2, r.out:gsub("\nSKIP ", "")))
    assert.matches("m.jsonl:24  duplicate of item 4 (sent once)", r.out, 1, true)
    assert.matches("plan: 30 items: 10 allow, 0 deny, 0 invalid, 20 duplicate", r.out, 1, true)
  end)
end)
