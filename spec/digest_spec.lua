-- Digests from the C core: streaming file digests equal sha256sum,
-- sha384sum and sha512sum; Base64 equals the base64 tool; .dig files with a
-- BOM, CRLF or whitespace; errors that name the path.
local prequalify = require "prequalify"
local helpers = require "helpers"

local digest = prequalify.digest
local q = helpers.shell_quote

-- Tools run without the sanitizer runtime of the ASan spec run.
local function sh(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS " .. cmd))
  local out = p:read("a")
  p:close()
  return out
end

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

  if IS_ROOT then
    pending("names the path of an unreadable file (skipped: running as root, chmod 000 does not stop reads)")
  else
    it("names the path of an unreadable file", function()
      local path = helpers.write_file(dir .. "/secret.bin", "x", "000")
      local _, err = digest.file(path)
      assert.matches(path .. ": permission denied", err.message, 1, true)
      _, err = digest.dig_file(path)
      assert.matches(path .. ": permission denied", err.message, 1, true)
    end)
  end

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
    assert.has_error(function() digest.file(42) end)
    assert.has_error(function() digest.dig_file(nil) end)
    assert.has_error(function() digest.data({}) end)
  end)
end)
