-- Batch inputs: JSON Lines manifests (bad lines reported by number, the
-- others read on; file + algorithm and dig stand in for data; memory flat
-- over a million lines) and globs of artifacts with a template.
local prequalify = require "prequalify"
local helpers = require "helpers"
local cjson = require "cjson"

local manifest = prequalify.manifest
local DN, USER = helpers.DN_PROD, helpers.USER
local DATA = helpers.SHA256_B64

local function absolute(path)
  local p = assert(io.popen("cd " .. helpers.shell_quote(path) .. " && pwd"))
  local out = p:read("l")
  p:close()
  return out
end
local FIXTURES = absolute(helpers.ROOT .. "/spec/fixtures")

local function line(t)
  local base = { dn = DN, user = USER, comment = "c", data = DATA }
  for k, v in pairs(t or {}) do
    if v == false then base[k] = nil else base[k] = v end
  end
  return cjson.encode(base)
end

local function collect(reader)
  local good, bad = {}, {}
  for req, meta in reader do
    if req then good[#good + 1] = { req = req, meta = meta } else bad[#bad + 1] = meta end
  end
  return good, bad
end

describe("manifest", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rm_rf(dir)
  end)

  local function write(name, lines)
    return helpers.write_file(dir .. "/" .. name, table.concat(lines, "\n") .. "\n")
  end

  it("reads one validated request per line, with its line number", function()
    local path = write("m.jsonl", { line{ comment = "one" }, "", "   ", line{ comment = "two", hours = 8 } })
    local good, bad = collect(assert(manifest.read(path)))
    assert.same({}, bad)
    assert.equal(2, #good)
    assert.same({ "one", 1 }, { good[1].req.comment, good[1].meta.line })
    assert.same({ "two", 4, 8 }, { good[2].req.comment, good[2].meta.line, good[2].req.hours })
    assert.equal("sha256", good[1].req.algorithm)
  end)

  it("reports each bad line with its number and reads on", function()
    local path = write("m.jsonl", {
      line(),                                    -- 1 ok
      "{ not json",                              -- 2
      "[1, 2, 3]",                               -- 3
      line{ colour = "blue" },                   -- 4 unknown field
      line{ hours = 0 },                         -- 5 invalid value
      line{ data = false },                      -- 6 missing data
      line{ data = false, file = "nope.bin" },   -- 7 missing artifact
      line{ file = "a.bin" },                    -- 8 data and file
      line{ algorithm = "sha384" },              -- 9 algorithm without file
      "42",                                      -- 10 not an object
      line{ comment = "last" },                  -- 11 ok
    })
    local good, bad = collect(assert(manifest.read(path)))
    assert.equal(2, #good)
    assert.equal("last", good[2].req.comment)
    local lines = {}
    for i, e in ipairs(bad) do
      lines[i] = e.line
      assert.equal("invalid", e.kind)
      assert.matches("^" .. path:gsub("%p", "%%%0") .. ":" .. e.line .. ": ", e.message)
    end
    assert.same({ 2, 3, 4, 5, 6, 7, 8, 9, 10 }, lines)
    assert.matches("not valid JSON", bad[1].message, 1, true)
    assert.matches("array", bad[2].message, 1, true)
    assert.matches("colour", bad[3].message, 1, true)
    assert.equal("hours", bad[4].field)
    assert.equal("data", bad[5].field)
    assert.matches("nope.bin: no such file", bad[6].message, 1, true)
    assert.matches("only one of data, file and dig", bad[7].message, 1, true)
    assert.matches("algorithm goes with file", bad[8].message, 1, true)
  end)

  it("hashes `file` with `algorithm`, relative to the manifest's directory", function()
    helpers.write_file(dir .. "/app.bin", "artifact bytes")
    local path = write("m.jsonl", {
      line{ data = false, file = "app.bin", algorithm = "sha384" },
      line{ data = false, file = dir .. "/app.bin" },
    })
    local good, bad = collect(assert(manifest.read(path)))
    assert.same({}, bad)
    assert.equal((prequalify.digest.data("artifact bytes", "sha384")), good[1].req.data)
    assert.equal("sha384", good[1].req.algorithm)
    assert.equal(dir .. "/app.bin", good[1].meta.file)
    assert.equal((prequalify.digest.data("artifact bytes", "sha256")), good[2].req.data)
  end)

  it("reads `dig` as a signtool .dig file", function()
    local path = write("m.jsonl", {
      line{ data = false, dig = FIXTURES .. "/bom_crlf.exe.dig" },
    })
    local good = collect(assert(manifest.read(path)))
    assert.equal("cqvyXIw/2Vkz91RFOVG6SXJCYfc4nYeK6eIgkHoRT6w=", good[1].req.data)
  end)

  it("applies defaults under each line", function()
    local path = write("m.jsonl", { '{"data":"' .. DATA .. '"}', '{"data":"' .. DATA .. '","user":"local:build-bot"}' })
    local good = collect(assert(manifest.read(path, { defaults = { dn = DN, user = USER, comment = "rel" } })))
    assert.same({ USER, "local:build-bot" }, { good[1].req.user, good[2].req.user })
    assert.equal("rel", good[2].req.comment)
  end)

  it("tolerates a UTF-8 BOM, CRLF line ends and a last line without newline", function()
    local path = helpers.write_file(dir .. "/m.jsonl", "\239\187\191" .. line() .. "\r\n" .. line{ comment = "x" })
    local good, bad = collect(assert(manifest.read(path)))
    assert.same({}, bad)
    assert.same({ 1, 2 }, { good[1].meta.line, good[2].meta.line })
  end)

  it("reports an overlong line without holding it, and reads on", function()
    local long = line{ comment = string.rep("x", 3000) }
    local path = write("m.jsonl", { line(), long, line{ comment = "after" } })
    local good, bad = collect(assert(manifest.read(path, { max_line = 1000 })))
    assert.equal(2, #good)
    assert.equal("after", good[2].req.comment)
    assert.same({ 2 }, { bad[1].line })
    assert.matches("longer than 1000 bytes", bad[1].message, 1, true)
  end)

  it("counts its lines for progress", function()
    local path = write("m.jsonl", { line(), "", line(), "junk" })
    assert.equal(3, assert(manifest.read(path)):count())
  end)

  it("names the path of a missing manifest or a directory", function()
    local r, err = manifest.read(dir .. "/none.jsonl")
    assert.is_nil(r)
    assert.same({ "invalid", "manifest" }, { err.kind, err.field })
    assert.matches(dir .. "/none.jsonl", err.message, 1, true)
    r, err = manifest.read(dir)
    assert.is_nil(r)
    assert.matches(dir .. ": is a directory", err.message, 1, true)
  end)

  it("keeps memory flat over 1,000,000 lines #slow", function()
    local path = dir .. "/big.jsonl"
    local f = assert(io.open(path, "wb"))
    local datas = {}
    for i = 1, 64 do datas[i] = (prequalify.digest.data("item " .. i)) end
    local N = 1000000
    for i = 1, N do
      f:write('{"data":"', datas[i % 64 + 1], '","comment":"build ', i, '"}\n')
    end
    f:close()
    local reader = assert(manifest.read(path, { defaults = { dn = DN, user = USER } }))
    collectgarbage("collect")
    local peak_early, peak, n = 0, 0, 0
    local bad = 0
    for req in reader do
      if not req then bad = bad + 1 end
      n = n + 1
      if n % 10000 == 0 then
        local kb = collectgarbage("count")
        if n <= 100000 then peak_early = math.max(peak_early, kb) end
        peak = math.max(peak, kb)
      end
    end
    assert.same({ N, 0 }, { n, bad })
    -- The Lua heap after a million lines is no larger than after the first
    -- hundred thousand, give or take the collector's slack.
    assert.is_true(peak < peak_early * 1.5, string.format("peak %.0f KiB vs %.0f KiB", peak, peak_early))
  end)
end)

describe("glob", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
    os.execute("env -u LD_PRELOAD mkdir -p " .. helpers.shell_quote(dir .. "/out/sub/deeper") .. " "
      .. helpers.shell_quote(dir .. "/out/.git"))
    helpers.write_file(dir .. "/out/b.exe", "b")
    helpers.write_file(dir .. "/out/a.exe", "a")
    helpers.write_file(dir .. "/out/readme.txt", "r")
    helpers.write_file(dir .. "/out/.hidden.exe", "h")
    helpers.write_file(dir .. "/out/sub/c.exe", "c")
    helpers.write_file(dir .. "/out/sub/deeper/d.exe", "d")
    helpers.write_file(dir .. "/out/.git/e.exe", "e")
  end)

  after_each(function()
    helpers.rm_rf(dir)
  end)

  local function files(pattern)
    local out = {}
    for p in manifest.files(pattern) do out[#out + 1] = p:sub(#dir + 2) end
    return out
  end

  it("matches * and ? within a segment, in sorted order, without hidden files", function()
    assert.same({ "out/a.exe", "out/b.exe" }, files(dir .. "/out/*.exe"))
    assert.same({ "out/a.exe", "out/b.exe" }, files(dir .. "/out/?.ex[e]"))
    assert.same({ "out/b.exe" }, files(dir .. "/out/[!a].exe"))
    assert.same({ "out/.hidden.exe" }, files(dir .. "/out/.*.exe"))
  end)

  it("matches bracket sets and ranges, a wildcard escaped with a backslash, and no hidden name by ?", function()
    helpers.write_file(dir .. "/out/star*.exe", "s")
    assert.same({ "out/a.exe", "out/b.exe" }, files(dir .. "/out/[a-b].exe"))
    assert.same({ "out/b.exe" }, files(dir .. "/out/[^a].exe"))
    assert.same({ "out/star*.exe" }, files(dir .. "/out/star\\*.exe"))
    assert.same({}, files(dir .. "/out/?hidden.exe"))
    assert.same({ "out/readme.txt" }, files(dir .. "/out/readme.txt"), "a segment without a wildcard")
    assert.same({}, files(dir .. "/out/missing/*.exe"), "a missing directory is no match, not an error")
  end)

  it("matches one name with the core's fnmatch(3), refusing a zero byte", function()
    local core = require "prequalify.core"
    assert.is_true(core.fnmatch("*.exe", "a.exe"))
    assert.is_false(core.fnmatch("*.exe", ".a.exe"))
    assert.is_true(core.fnmatch(".*", ".git"))
    assert.has_error(function() core.fnmatch("a\0*", "a") end,
      "bad argument #1 to 'fnmatch' (pattern holds a zero byte)")
  end)

  it("matches ** across directories", function()
    assert.same({ "out/a.exe", "out/b.exe", "out/sub/c.exe", "out/sub/deeper/d.exe" }, files(dir .. "/out/**/*.exe"))
    assert.same({ "out/a.exe", "out/b.exe", "out/readme.txt", "out/sub/c.exe", "out/sub/deeper/d.exe" },
      files(dir .. "/out/**"))
  end)

  it("makes one request per file from a template", function()
    local it_ = assert(manifest.glob(dir .. "/out/**/*.exe", {
      dn = DN, user = USER, comment = "release 4.2: {name}", hours = 8, single_use = true, algorithm = "sha512",
    }))
    local got = {}
    for req, meta in it_ do
      assert.is_truthy(req)
      got[#got + 1] = { req.comment, req.data, meta.file }
      assert.same({ 8, true, "sha512" }, { req.hours, req.single_use, req.algorithm })
    end
    assert.equal(4, #got)
    assert.same({ "release 4.2: a.exe", (prequalify.digest.data("a", "sha512")), dir .. "/out/a.exe" }, got[1])
    assert.equal("release 4.2: d.exe", got[4][1])
  end)

  it("reads .dig files with dig = true", function()
    for _, name in ipairs{ "bom_crlf.exe.dig", "plain_ws.dll.dig" } do
      helpers.write_file(dir .. "/out/" .. name, assert(helpers.read_file(FIXTURES .. "/" .. name)))
    end
    local it_ = assert(manifest.glob(dir .. "/out/*.dig", { dn = DN, user = USER, comment = "{path}", dig = true }))
    local n = 0
    for req in it_ do
      assert.is_truthy(req)
      n = n + 1
    end
    assert.equal(2, n)
  end)

  it("refuses an unknown template field", function()
    local it_, err = manifest.glob(dir .. "/*", { dn = DN, user = USER, comment = "c", colour = 1 })
    assert.is_nil(it_)
    assert.same({ "invalid", "colour" }, { err.kind, err.field })
  end)

  it("reports a file it cannot turn into a request and goes on", function()
    local it_ = assert(manifest.glob(dir .. "/out/*.exe", { dn = DN, user = USER, comment = "" }))
    local bad = 0
    for req, err in it_ do
      if not req then
        bad = bad + 1
        assert.matches(dir .. "/out/", err.message, 1, true)
      end
    end
    assert.equal(2, bad)
  end)
end)
