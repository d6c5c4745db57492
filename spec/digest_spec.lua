-- Digests from the C core: streaming file digests equal sha256sum,
-- sha384sum and sha512sum; Base64 equals the base64 tool; .dig files with a
-- BOM, CRLF or whitespace; errors that name the path.
local prequalify = require "prequalify"
local helpers = require "helpers"
local cjson = require "cjson"
local cli = require "fixtures.cli"

local digest = prequalify.digest
local q = helpers.shell_quote

-- Tools run without the sanitizer runtime of the ASan spec run.
local function sh(cmd)
  return helpers.output("env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS " .. cmd)
end

-- A Lua child with the sanitizer runtime, if any, of this run: it loads the
-- same core.
local lua_child = helpers.output

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Deterministic bytes, not all the same, so a chunking bug would show.
local function write_bytes(path, n)
  local f = assert(io.open(path, "wb"))
  local block = {}
  for i = 1, 4096 do block[i] = string.char((i * 131 + (i >> 5)) % 256) end
  block = table.concat(block)
  local left, salt = n, 0
  while left > 0 do
    salt = salt + 1
    local chunk = block:sub(1, math.min(left, #block - 1)) .. string.char(salt % 256)
    chunk = chunk:sub(1, math.min(left, #chunk))
    f:write(chunk)
    left = left - #chunk
  end
  f:close()
end

local IS_ROOT = sh("id -u"):match("^0%s*$") ~= nil

describe("digests", function()
  local dir

  setup(function()
    dir = helpers.tmpdir()
  end)

  teardown(function()
    helpers.rm_rf(dir)
  end)

  local sizes = { 0, 1, 5 * 1024 * 1024 + 123 }
  local tools = { sha256 = "sha256sum", sha384 = "sha384sum", sha512 = "sha512sum" }
  for _, size in ipairs(sizes) do
    for alg, tool in pairs(tools) do
      it(string.format("equals %s on a file of %d bytes, and its Base64 equals base64's", tool, size), function()
        local path = dir .. "/f" .. size
        write_bytes(path, size)
        local b64, raw = digest.file(path, alg)
        assert.is_string(b64)
        assert.equal(digest.ALGORITHMS[alg], #raw)
        local want = sh(tool .. " " .. q(path)):match("^(%x+)")
        assert.equal(want, hex(raw))
        local rawpath = dir .. "/raw.bin"
        helpers.write_file(rawpath, raw)
        assert.equal(sh("base64 -w0 " .. q(rawpath)), b64)
        -- The same bytes as a string give the same digest.
        assert.equal(b64, (digest.data(assert(helpers.read_file(path)), alg)))
      end)
    end
  end

  it("defaults to SHA-256 and knows the FIPS 180 test vector", function()
    local b64, raw = digest.data("abc")
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex(raw))
    assert.equal("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", b64)
  end)

  it("accepts algorithm names in any case and with a dash", function()
    assert.equal((digest.data("x", "sha256")), (digest.data("x", "SHA-256")))
  end)

  it("refuses an unknown algorithm as invalid", function()
    local b64, err = digest.data("x", "md5")
    assert.is_nil(b64)
    assert.same({ "invalid", "algorithm" }, { err.kind, err.field })
    assert.matches("md5", err.message, 1, true)
    b64, err = digest.file(dir .. "/f0", "sha1")
    assert.is_nil(b64)
    assert.equal("algorithm", err.field)
  end)

  it("names the path of a missing file", function()
    local b64, err = digest.file(dir .. "/nope.bin")
    assert.is_nil(b64)
    assert.equal("invalid", err.kind)
    assert.matches(dir .. "/nope.bin: no such file", err.message, 1, true)
  end)

  it("names the path of a directory", function()
    local _, err = digest.file(dir)
    assert.matches(dir .. ": is a directory", err.message, 1, true)
    _, err = digest.dig_file(dir)
    assert.matches(dir .. ": is a directory", err.message, 1, true)
  end)

  it("refuses a device or a FIFO instead of reading it forever", function()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. q(fifo)))
    for _, path in ipairs{ "/dev/zero", "/dev/null", fifo } do
      local b64, err = digest.file(path)
      assert.is_nil(b64)
      assert.same({ "invalid", "file" }, { err.kind, err.field })
      assert.equal(path .. ": is not a regular file (a device, FIFO or socket); refused", err.message)
      b64, err = digest.dig_file(path)
      assert.is_nil(b64)
      assert.equal(path .. ": is not a regular file (a device, FIFO or socket); refused", err.message)
    end
  end)

  it("reports a manifest line whose file is a device, and reads on", function()
    local path = helpers.write_file(dir .. "/m.jsonl", table.concat({
      cjson.encode{ dn = helpers.DN_PROD, user = helpers.USER, comment = "zero", file = "/dev/zero" },
      cjson.encode{ dn = helpers.DN_PROD, user = helpers.USER, comment = "ok", data = helpers.SHA256_B64 },
    }, "\n") .. "\n")
    local good, bad = {}, {}
    for req, meta in assert(prequalify.manifest.read(path)) do
      if req then good[#good + 1] = req else bad[#bad + 1] = meta end
    end
    assert.equal(1, #good)
    assert.equal("ok", good[1].comment)
    assert.equal(1, #bad)
    assert.same({ "invalid", 1 }, { bad[1].kind, bad[1].line })
    assert.matches("/dev/zero: is not a regular file", bad[1].message, 1, true)
  end)

  it("names the path of an unreadable file", function()
    local path = helpers.write_file(dir .. "/secret.bin", "x", "000")
    local chunk = string.format([[
      local digest = require("prequalify").digest
      print(select(2, digest.file(%q)).message)
      print(select(2, digest.dig_file(%q)).message)]], path, path)
    local out
    if IS_ROOT then
      -- Root reads any file: run the check as nobody (the directory must
      -- then be searchable by others).
      local can, why = helpers.nobody_can_run()
      if not can then
        pending("cannot run as nobody here: " .. why)
        return
      end
      assert(os.execute("chmod 0755 " .. q(dir)))
      out = lua_child("setpriv --reuid=65534 --regid=65534 --clear-groups env LUA_CPATH=" ..
                      q(helpers.core_cpath() .. ";;") ..
                      " LUA_PATH=" .. q(helpers.ROOT .. "/lua/?.lua;" .. helpers.ROOT .. "/lua/?/init.lua;;") ..
                      " lua5.4 -e " .. q(chunk) .. " 2>&1")
    else
      out = lua_child("lua5.4 -e " .. q(chunk) .. " 2>&1")
    end
    assert.equal((path .. ": permission denied (cannot read)\n"):rep(2), out)
  end)

  describe("of signtool .dig files", function()
    local FIXTURES = helpers.ROOT .. "/spec/fixtures/"
    local SHA256 = "cqvyXIw/2Vkz91RFOVG6SXJCYfc4nYeK6eIgkHoRT6w="
    local SHA384 = "jAQLj8Sv74DzL8yZ6Pjxmr9fto5Jy8bqeeiigaJdL6/69HH8zB+Bibx2bNcGW0JI"

    it("reads one with a UTF-8 BOM and CRLF", function()
      local b64, raw = digest.dig_file(FIXTURES .. "bom_crlf.exe.dig")
      assert.equal(SHA256, b64)
      assert.equal("72abf25c8c3fd95933f754453951ba49724261f7389d878ae9e220907a114fac", hex(raw))
      assert.equal(b64, (digest.data("prequalify dig fixture")))
    end)

    it("reads one with surrounding whitespace and blank lines", function()
      local b64, raw = digest.dig_file(FIXTURES .. "plain_ws.dll.dig")
      assert.equal(SHA384, b64)
      assert.equal(48, #raw)
    end)

    it("refuses an empty file and text that is not Base64, naming the path", function()
      local empty = helpers.write_file(dir .. "/empty.dig", "\239\187\191 \r\n")
      local b64, err = digest.dig_file(empty)
      assert.is_nil(b64)
      assert.same({ "invalid", "dig" }, { err.kind, err.field })
      assert.matches(empty, err.message, 1, true)
      local junk = helpers.write_file(dir .. "/junk.dig", "this is not base64!\n")
      b64, err = digest.dig_file(junk)
      assert.is_nil(b64)
      assert.matches(junk, err.message, 1, true)
    end)

    it("refuses a file far too large to be a .dig", function()
      local big = dir .. "/big.dig"
      write_bytes(big, 100000)
      local b64, err = digest.dig_file(big)
      assert.is_nil(b64)
      assert.matches(big, err.message, 1, true)
    end)

    it("names the path of a missing .dig file", function()
      local _, err = digest.dig_file(dir .. "/missing.dig")
      assert.matches(dir .. "/missing.dig: no such file", err.message, 1, true)
    end)
  end)

  it("raises for a path that is not a string (a programming mistake)", function()
    for _, case in ipairs{
      { digest.file, 42, "prequalify.digest.file: expected a path string, got number" },
      { digest.dig_file, nil, "prequalify.digest.dig_file: expected a path string, got nil" },
      { digest.data, {}, "prequalify.digest.data: expected a string of bytes, got table" },
    } do
      local ok, err = pcall(case[1], case[2])
      assert.is_false(ok)
      assert.matches(case[3], err, 1, true)
    end
  end)
end)

describe("prequalify digest on what is not a regular file #nosan", function()
  it("exits 1 naming a device or a FIFO, and still prints the other files", function()
    local dir = helpers.tmpdir()
    helpers.write_file(dir .. "/a.bin", "hello")
    assert(os.execute("mkfifo " .. q(dir .. "/fifo")))
    -- timeout(1) turns a regression (a read that never ends) into a failure.
    local r = cli.exec({ "timeout", "30", cli.CLI, "digest", "/dev/zero", "fifo", "a.bin" }, { cwd = dir })
    local want = cli.sha256_b64(dir .. "/a.bin") .. "  a.bin\n"
    helpers.rm_rf(dir)
    assert.equal(1, r.code)
    assert.matches("/dev/zero: is not a regular file (a device, FIFO or socket); refused", r.err, 1, true)
    assert.matches("fifo: is not a regular file", r.err, 1, true)
    assert.is_nil(r.err:find("traceback", 1, true))
    assert.equal(want, r.out)
  end)
end)
