-- core.b64encode / core.b64decode: standard Base64 (RFC 4648 section 4),
-- strict and canonical on the way in.
local core = require "prequalify.core"
local helpers = require "helpers"

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- An independent, slow reference encoder to compare the core against.
local reference_encode = helpers.base64

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

local function refused(text, phrase)
  local out, msg = core.b64decode(text)
  assert.is_nil(out, ("expected %q to be refused"):format(text))
  assert.is_string(msg)
  assert.is_truthy(msg:find(phrase, 1, true), ("message for %q lacks '%s': %s"):format(text, phrase, msg))
end

describe("core.b64encode and core.b64decode", function()
  it("encode and decode the RFC 4648 test vectors", function()
    local vectors = {
      { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
      { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    }
    for _, v in ipairs(vectors) do
      assert.equal(v[2], core.b64encode(v[1]))
      assert.equal(v[1], core.b64decode(v[2]))
    end
  end)

  it("round-trip random bytes of every length from 0 to 70", function()
    math.randomseed(20210309)
    for n = 0, 70 do
      for _ = 1, 20 do
        local bytes = random_bytes(n)
        local text = core.b64encode(bytes)
        assert.equal(reference_encode(bytes), text)
        assert.equal((n + 2) // 3 * 4, #text)
        assert.equal(bytes, core.b64decode(text), "length " .. n)
      end
    end
  end)

  it("round-trip every byte value and use the standard alphabet", function()
    local all = {}
    for b = 0, 255 do all[#all + 1] = string.char(b) end
    all = table.concat(all)
    local text = core.b64encode(all)
    assert.equal(reference_encode(all), text)
    assert.is_truthy(text:find("+", 1, true))
    assert.is_truthy(text:find("/", 1, true))
    assert.is_nil(text:find("[-_]"))
    assert.equal(all, core.b64decode(text))
    for b = 0, 255 do
      assert.equal(string.char(b), core.b64decode(core.b64encode(string.char(b))))
    end
  end)

  it("round-trip inputs much larger than Lua's buffer size", function()
    math.randomseed(42)
    for _, n in ipairs{ 1023, 1024, 1025, 8192, 8193, 100000 } do
      local bytes = random_bytes(n)
      local text = core.b64encode(bytes)
      assert.equal(reference_encode(bytes), text)
      assert.equal(bytes, core.b64decode(text))
    end
  end)

  it("refuse text whose length is not a multiple of four", function()
    for _, text in ipairs{ "Z", "Zg", "Zg=", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy=" } do
      refused(text, "not a multiple of 4")
    end
  end)

  it("refuse characters outside the standard alphabet", function()
    for _, text in ipairs{ "Zm9*", "Zm9.", "Zm\0v", "Zm9v\xffmFy", "Zm9v!mFy", "Zm9v@A==" } do
      refused(text, "invalid character")
    end
  end)

  it("refuse base64url with a hint", function()
    refused("-_-_", "base64url")
    refused("Zm9-", "'+' and '/'")
    refused("Zm9_YmFy", "base64url")
  end)

  it("refuse whitespace and line breaks with a hint", function()
    refused("Zm9v YmFy", "whitespace at offset 4")
    refused("Zm9v\nYmFy", "remove spaces and line breaks")
    refused("Zm9vYmFy\r\n", "whitespace")
    refused("\tZm9vYmFy", "whitespace at offset 0")
  end)

  it("refuse '=' anywhere but at the end, and more than two of them", function()
    refused("Zg==Zg==", "padding may only end the text")
    refused("Z=g=", "padding may only end")
    refused("=Zm9", "padding may only end")
    refused("Z===", "at most 2 may pad")
    refused("====", "at most 2 may pad")
  end)

  it("accept only the canonical spelling, with zero pad bits", function()
    -- With "==" the second character carries 2 data bits; with "=" the third
    -- carries 4. Every other value of the low bits is a second spelling.
    for i = 1, 64 do
      local c = ALPHABET:sub(i, i)
      local v = i - 1
      local two, three = "Q" .. c .. "==", "QU" .. c .. "="
      if v & 15 == 0 then
        assert.equal(reference_encode(core.b64decode(two)), two)
      else
        refused(two, "not canonical")
      end
      if v & 3 == 0 then
        assert.equal(reference_encode(core.b64decode(three)), three)
      else
        refused(three, "not canonical")
      end
    end
  end)

  it("accept the empty text as zero bytes, which only the data field refuses", function()
    assert.equal("", core.b64decode(""))
    assert.equal("", core.b64encode(""))
    assert.is_nil(core.check("base64", ""))
  end)
end)
