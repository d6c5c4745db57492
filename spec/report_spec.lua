-- The batch report's spool: entries of a streamed batch go to a temporary
-- file (compact binary records packed by the C core, or JSON for the other
-- shapes) and come back from entries() and write_json with the same values.
local cjson = require "cjson"
local core = require "prequalify.core"
local report = require "prequalify.report"

-- Numbers come back as floats from the spool (as they did from JSON).
local function same_values(want, got, path)
  path = path or "entry"
  assert.equal(type(want), type(got), path .. ": type")
  if type(want) == "table" then
    for k, v in pairs(want) do same_values(v, got[k], path .. "." .. tostring(k)) end
    for k in pairs(got) do assert.is_not_nil(want[k], path .. "." .. tostring(k) .. ": extra field") end
  elseif type(want) == "number" then
    assert.equal(want + 0.0, got + 0.0, path)
  else
    assert.equal(want, got, path)
  end
end

local function spooled(entries)
  local rep = report.new{ keep_items = false }
  for _, e in ipairs(entries) do rep:add(e) end
  rep:finish("complete")
  local out = {}
  for e in rep:entries() do out[#out + 1] = e end
  rep:close()
  return out
end

local FULL = {
  index = 7, line = 12, file = "dist/app.exe", source = "release.jsonl", key = ("k"):rep(43),
  outcome = "approved", reason = "recorded by an earlier run", previous = "unknown", resumed = true,
  attempts = 2, started = 0.4125, elapsed = 0.0123, server_time = 0.011,
  request = { dn = [[\VED\Code Signing\P]], user = "local:bot", data = "q2rF", algorithm = "sha256",
              digest_length = 32, hours = 8, single_use = false, comment = "build 1 \0 with a zero byte" },
  server = { status = 200, result = 1, result_name = "Success" },
}

describe("report spool", function()
  it("packs the common shape into a compact record and reads every field back", function()
    local rec = core.spool_record(FULL)
    assert.is_string(rec)
    assert.equal(#rec - 4, (string.unpack("<I4", rec)))
    assert.equal(0, rec:byte(5), "compact records start with a zero byte")
    same_values(FULL, spooled{ FULL }[1])
  end)

  it("keeps absent fields absent and false booleans false", function()
    local e = { index = 1, outcome = "failed", request = { dn = "d", single_use = false } }
    local back = spooled{ e }[1]
    same_values(e, back)
    assert.is_false(back.request.single_use)
    assert.is_nil(back.server)
    assert.is_nil(back.resumed)
  end)

  it("sends entries with an error, a trail or an adjusted request through JSON", function()
    local cases = {
      { index = 1, outcome = "failed", error = { kind = "invalid", message = "dn: is empty", field = "dn" } },
      { index = 2, outcome = "denied", trail = { { rule = "r", verdict = "deny", reason = "no", depth = 0 } } },
      { index = 3, outcome = "approved", sent = { hours = 4 }, request = { hours = 8 } },
    }
    for _, e in ipairs(cases) do assert.is_nil(core.spool_record(e)) end
    local back = spooled(cases)
    for i, e in ipairs(cases) do same_values(e, back[i]) end
  end)

  it("falls back to JSON for values the compact form cannot carry", function()
    local odd = {
      { index = "seven", outcome = "approved" },                      -- a string where a number goes
      { index = 1, outcome = 42 },                                   -- a number where a string goes
      { index = 1, outcome = "approved", resumed = "yes" },          -- not a boolean
      { index = 1, outcome = "approved", request = "dn" },           -- not a table
      { index = 1, outcome = "approved", request = setmetatable({}, {}) },
      { index = 1, outcome = "approved", elapsed = math.huge },
    }
    for i, e in ipairs(odd) do assert.is_nil(core.spool_record(e), "case " .. i) end
    local nan = { index = 1, outcome = "approved", elapsed = 0 / 0 }
    assert.is_nil(core.spool_record(nan))
    -- Through the report: every one is kept, none fails the run.
    local back = spooled(odd)
    assert.equal(#odd, #back)
    assert.equal("seven", back[1].index)
    assert.equal(42, back[2].outcome)
  end)

  it("reads back a mix of compact and JSON records in order, and again after more adds", function()
    local rep = report.new{ keep_items = false }
    for i = 1, 50 do
      local e = { index = i, outcome = i % 7 == 0 and "failed" or "approved", attempts = 1 }
      if i % 7 == 0 then e.error = { kind = "server", message = "refused " .. i } end
      rep:add(e)
    end
    local seen = 0
    for e in rep:entries() do
      seen = seen + 1
      assert.equal(seen, e.index)
      assert.equal(seen % 7 == 0 and "refused " .. seen or nil, e.error and e.error.message)
    end
    assert.equal(50, seen)
    rep:add{ index = 51, outcome = "approved" }
    seen = 0
    for _ in rep:entries() do seen = seen + 1 end
    assert.equal(51, seen)
    rep:close()
  end)

  it("writes the spooled entries into the JSON report", function()
    local path = os.tmpname()
    local rep = report.new{ keep_items = false }
    rep:add(FULL)
    rep:finish("complete")
    assert(rep:write_json(path))
    rep:close()
    local f = assert(io.open(path))
    local doc = cjson.decode(f:read("a"))
    f:close()
    os.remove(path)
    assert.equal(1, #doc.items)
    assert.equal(FULL.request.comment, doc.items[1].request.comment)
    assert.equal(FULL.server.result_name, doc.items[1].server.result_name)
  end)

  it("writes a compact record straight to a file, byte for byte what it returns", function()
    local f = assert(io.tmpfile())
    assert.is_true(core.spool_record(FULL, f))
    assert.is_nil(core.spool_record({ index = 1, trail = {} }, f), "a JSON entry is left to the caller")
    f:seek("set", 0)
    assert.equal(core.spool_record(FULL), f:read("a"))
    f:close()
  end)

  it("says why when the file refuses the record", function()
    local f = assert(io.open("/dev/null", "rb"))
    f:setvbuf("no")
    local ok, err = core.spool_record(FULL, f)
    f:close()
    assert.is_nil(ok)
    assert.equal("Bad file descriptor", err)
  end)

  it("refuses a non-table entry, a non-file target and a closed file", function()
    assert.error_matches(function() core.spool_record("entry") end, "table expected, got string", 1, true)
    assert.error_matches(function() core.spool_record(FULL, {}) end, "FILE* expected", 1, true)
    local f = assert(io.tmpfile())
    f:close()
    assert.has_error(function() core.spool_record(FULL, f) end, "attempt to use a closed file")
  end)
end)

describe("report order and exit code", function()
  -- Entries added in a finishing order, as a batch at concurrency 4 adds them.
  local FINISHED = { 2, 3, 1, 5, 4, 7, 8, 6 }

  local function indexes(rep)
    local out = {}
    for e in rep:entries() do out[#out + 1] = math.tointeger(e.index) end
    return out
  end

  for _, keep in ipairs{ true, false } do
    it("lists entries in input order whatever order they finished in (keep_items = " .. tostring(keep) .. ")",
      function()
        local rep = report.new{ keep_items = keep }
        for _, i in ipairs(FINISHED) do rep:add{ index = i, outcome = "approved", attempts = 1 } end
        rep:finish("complete")
        assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, indexes(rep))
        -- Twice, and the JSON report in the same order.
        assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, indexes(rep))
        local path = os.tmpname()
        assert(rep:write_json(path))
        local f = assert(io.open(path, "rb"))
        local doc = cjson.decode(f:read("a"))
        f:close()
        os.remove(path)
        local got = {}
        for i, e in ipairs(doc.items) do got[i] = math.tointeger(e.index) end
        assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, got)
        rep:close()
      end)
  end

  it("still lists every entry, sorted, when the indexes have a gap", function()
    local rep = report.new{ keep_items = false }
    for _, i in ipairs{ 9, 1, 7, 4, 2 } do rep:add{ index = i, outcome = "approved" } end
    assert.same({ 1, 2, 4, 7, 9 }, indexes(rep))
    rep:close()
  end)

  local function finished(counts, status)
    local rep = report.new{}
    for outcome, n in pairs(counts) do
      for _ = 1, n do rep:add{ index = #rep.items + 1, outcome = outcome } end
    end
    rep:finish(status or "complete")
    return rep
  end

  it("maps a report to the exit code the command line gives it", function()
    assert.equal(0, finished{ approved = 3 }:exit_code())
    assert.equal(1, finished{ approved = 3, denied = 1 }:exit_code())
    assert.equal(1, finished{ approved = 3, failed = 1 }:exit_code())
    assert.equal(3, finished{ approved = 1, failed = 1, unknown = 1 }:exit_code())
    assert.equal(130, finished({ approved = 1, unknown = 1 }, "interrupted"):exit_code())
    assert.equal(4, finished({ approved = 2 }, "deadline"):exit_code())
    assert.equal(4, finished({ approved = 2, failed = 1 }, "stopped"):exit_code())
    assert.equal(1, finished{}:exit_code(), "an empty batch")
    assert.same(require("prequalify.cli.common").EXIT, require("prequalify.results").EXIT)
  end)

  it("exits 4 when the report, its spool or the audit log could not be written or the journal not closed, "
    .. "after 130 and 3", function()
    for _, field in ipairs{ "report_error", "spool_error", "audit_error", "journal_error" } do
      local rep = finished{ approved = 3 }
      rep[field] = "disk full"
      assert.equal(4, rep:exit_code(), field)
      rep = finished{ approved = 2, failed = 1 }
      rep[field] = "disk full"
      assert.equal(4, rep:exit_code(), field .. " with a failed item")
      rep = finished{ approved = 2, unknown = 1 }
      rep[field] = "disk full"
      assert.equal(3, rep:exit_code(), field .. " with an unknown item")
      rep = finished({ approved = 2 }, "interrupted")
      rep[field] = "disk full"
      assert.equal(130, rep:exit_code(), field .. " when interrupted")
    end
  end)
end)

describe("report spool file", function()
  local lfs = require "lfs"
  local dir

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(lfs.mkdir(dir))
  end)
  after_each(function()
    for name in lfs.dir(dir) do
      if name ~= "." and name ~= ".." then os.remove(dir .. "/" .. name) end
    end
    lfs.rmdir(dir)
  end)

  local function files()
    local out = {}
    for name in lfs.dir(dir) do
      if name ~= "." and name ~= ".." then out[#out + 1] = name end
    end
    return out
  end

  it("is made in spool_dir and leaves no file behind, even while open", function()
    local rep = assert(report.new{ keep_items = false, spool_dir = dir })
    assert.truthy(rep.spool_path:find("^" .. dir:gsub("%p", "%%%0") .. "/prequalify%-%w+%.spool$"), rep.spool_path)
    assert.same({}, files())
    -- Mode 0600, seen through the process's descriptor of the unlinked file.
    local mode
    for fd in lfs.dir("/proc/self/fd") do
      local target = lfs.symlinkattributes("/proc/self/fd/" .. fd, "target")
      if target and target:find(rep.spool_path, 1, true) == 1 then
        mode = lfs.attributes("/proc/self/fd/" .. fd, "permissions")
      end
    end
    assert.equal("rw-------", mode)
    rep:add(FULL)
    rep:finish("complete")
    assert.same({}, files())
    rep:close()
  end)

  it("is refused with a message naming it when its directory cannot hold it", function()
    local rep, err = report.new{ keep_items = false, spool_dir = dir .. "/missing" }
    assert.is_nil(rep)
    assert.truthy(err:find("^report spool " .. dir:gsub("%p", "%%%0")
      .. "/missing/prequalify%-%w+%.spool: cannot create it: No such file or directory$"), err)
  end)

  it("after a write error keeps the whole entries, counts the lost ones and says where", function()
    local rep = assert(report.new{ keep_items = false, spool_dir = dir, total = 5 })
    rep.journal = "/var/lib/ci/j.jsonl"
    for i = 1, 2 do
      local e = { index = i, outcome = "approved", request = FULL.request }
      assert.is_true(rep:add(e))
    end
    -- A record the disk cut short, as a full disk leaves it.
    rep.spool:write(string.pack("<I4", 400), "\0torn")
    rep:spool_failed("No space left on device")
    local want = "report spool " .. rep.spool_path .. ": cannot write it: No space left on device"
    assert.equal(want, rep.spool_error)
    local ok, err = rep:add{ index = 3, outcome = "failed", reason = "invalid" }
    assert.is_nil(ok)
    assert.equal(want, err)
    rep:spool_failed("Input/output error") -- the first error stays
    assert.equal(want, rep.spool_error)
    rep:finish("stopped", want)
    assert.equal(3, rep.counts.total)
    assert.equal(1, rep.spool_lost)
    local got = {}
    for e in rep:entries() do got[#got + 1] = math.tointeger(e.index) end
    assert.same({ 1, 2 }, got)
    assert.equal(want .. "; the report lacks 1 of its entries; the partial report is at r.json; "
      .. "the journal /var/lib/ci/j.jsonl has every outcome", rep:spool_note("r.json"))
    local path = dir .. "/r.json"
    assert.is_true(rep:write_json(path))
    local fh = assert(io.open(path))
    local doc = cjson.decode(fh:read("a"))
    fh:close()
    assert.equal(want, doc.spool_error)
    assert.equal(1, doc.spool_lost)
    assert.equal(2, #doc.items)
    assert.equal(4, rep:exit_code())
    rep:close()
  end)
end)
