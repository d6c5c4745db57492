-- The validation rules of a PreQualify/Create request, one case per rule.
-- Each case lists values that pass and values that must be refused, with the
-- phrases the message has to contain; every refusal must have kind "invalid",
-- the right err.field, and a message that names that field.
local prequalify = require "prequalify"
local core = require "prequalify.core"
local fx = require "fixtures.requests"

local NONE, with = fx.NONE, fx.with

-- The caps documented in csrc/pq_common.h.
local DN_MAX, COMMENT_MAX, DATA_MAX, USER_MAX, HOURS_MAX = 1024, 4096, 8192, 512, 8760

local function show(v)
  if type(v) == "string" then return string.format("%q", v):gsub("\n", "n") end
  return tostring(v)
end

local function show_over(over)
  local parts = {}
  for k, v in pairs(over) do
    local s = show(v)
    parts[#parts + 1] = tostring(k) .. "=" .. (#s > 60 and s:sub(1, 60) .. "..." or s)
  end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- True if `message` has `name` as a whole word.
local function names(message, name)
  local pat = "%f[%w_]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]"
  return message:find(pat) ~= nil
end

local function accepts(over)
  local req, err = prequalify.request(with(over))
  assert.is_nil(err, "expected " .. show_over(over) .. " to be accepted, got: " .. tostring(err))
  assert.is_table(req)
  return req
end

local function refuses(over, field, phrases)
  local req, err = prequalify.request(with(over))
  assert.is_nil(req, "expected " .. show_over(over) .. " to be refused")
  assert.is_table(err)
  assert.equal("invalid", err.kind)
  assert.equal(field, err.field, "wrong err.field for " .. show_over(over) .. ": " .. err.message)
  assert.is_true(names(err.message, field), "message does not name " .. field .. ": " .. err.message)
  for _, phrase in ipairs(phrases) do
    assert.is_truthy(err.message:find(phrase, 1, true),
      "message for " .. show_over(over) .. " lacks '" .. phrase .. "': " .. err.message)
  end
  return err
end

--[[ A case: `field` is the input field; `valid` values are accepted (and
`normalized(req, v)` holds, by default req[field] == v); each `invalid`
entry is { value, phrase... } and is refused with err.field == `error_field`
(default `field`). `over(v)` turns a value into the fields to change (default
{ [field] = v }). ]]
local function run(case)
  local field = case.field
  local over = case.over or function(v) return { [field] = v } end
  for _, v in ipairs(case.valid or {}) do
    local req = accepts(over(v))
    if case.normalized then
      case.normalized(req, v)
    elseif v ~= NONE then
      assert.equal(v, req[field])
    end
  end
  assert.is_true(#case.invalid > 0)
  for _, bad in ipairs(case.invalid) do
    refuses(over(bad[1]), case.error_field or field, { table.unpack(bad, 2) })
  end
end

local function cases(list)
  for _, case in ipairs(list) do
    it(case.it, function() run(case) end)
  end
end

local function dn_of(n) return [[\VED\]] .. string.rep("d", n - 5) end
local function bytes(n, seed)
  local t = {}
  for i = 1, n do t[i] = string.char((i * 31 + (seed or 7)) % 256) end
  return table.concat(t)
end
local function data_of(n) return core.b64encode(bytes(n)) end

describe("the documented caps", function()
  it("are exported by the core with the documented values", function()
    assert.equal(DN_MAX, core.DN_MAX)
    assert.equal(COMMENT_MAX, core.COMMENT_MAX)
    assert.equal(DATA_MAX, core.DATA_MAX)
    assert.equal(USER_MAX, core.USER_MAX)
    assert.equal(HOURS_MAX, core.HOURS_MAX)
  end)
end)

describe("field names", function()
  it("accepts every documented snake_case field", function()
    local req = accepts{ hours = 8, single_use = false }
    assert.equal(fx.DN, req.dn)
    assert.equal(fx.DATA, req.data)
    assert.equal(fx.COMMENT, req.comment)
    assert.equal(fx.USER, req.user)
    assert.equal(8, req.hours)
    assert.equal(false, req.single_use)
  end)

  it("refuses a PascalCase wire name and suggests the Lua name", function()
    local wire = {
      Dn = "dn", Data = "data", Digest = "digest", Comment = "comment", User = "user",
      Hours = "hours", SingleUse = "single_use", singleUse = "single_use", ["single-use"] = "single_use",
    }
    for key, lua_name in pairs(wire) do
      local err = refuses({ [key] = "x" }, key,
        { "unknown field '" .. key .. "'", "did you mean '" .. lua_name .. "'?" })
      assert.equal("unknown field '" .. key .. "' (did you mean '" .. lua_name .. "'?)", err.message)
    end
    assert.equal("unknown field 'Dn' (did you mean 'dn'?)", refuses({ Dn = fx.DN }, "Dn", {}).message)
    assert.equal("unknown field 'SingleUse' (did you mean 'single_use'?)",
      refuses({ SingleUse = true }, "SingleUse", {}).message)
  end)

  it("refuses an unknown field and lists the known ones", function()
    refuses({ colour = "red" }, "colour", { "unknown field 'colour'", "known: dn, data, digest, comment" })
    refuses({ IPAddress = "10.0.0.1" }, "IPAddress", { "unknown field 'IPAddress'", "known:" })
    refuses({ dn_ = "x" }, "dn_", { "unknown field 'dn_'" })
  end)

  -- The raw key cannot appear in a one-line message, so these name it escaped.
  local function refuses_key(key, shown)
    local req, err = prequalify.request(with{ [key] = "x" })
    assert.is_nil(req)
    assert.equal("invalid", err.kind)
    assert.equal(key, err.field)
    assert.is_truthy(err.message:find("unknown field '" .. shown .. "'", 1, true), err.message)
    assert.is_nil(err.message:find("[%z\r\n]"), "raw control byte in: " .. err.message)
    assert.is_nil(tostring(err):find("[%z\r\n]"))
  end

  it("refuses a field name with a NUL byte even when it starts like a known one", function()
    refuses_key("dn\0x", "dn\\x00x")
    refuses_key("hours\0", "hours\\x00")
  end)

  it("keeps the message on one line when an unknown field name holds a line break", function()
    refuses_key("a\nb", "a\\x0ab")
    refuses_key("Dn\r\n", "Dn\\x0d\\x0a")
  end)

  it("reads fields a table's __index gives, as before, and checks only its own keys for unknown ones", function()
    local defaults = { comment = fx.COMMENT, user = fx.USER, colour = "red" }
    local req = assert(prequalify.request(setmetatable({ dn = fx.DN, data = fx.DATA }, { __index = defaults })))
    assert.same({ fx.COMMENT, fx.USER }, { req.comment, req.user })
    local bad, err = prequalify.request(setmetatable({ dn = fx.DN, Data = fx.DATA }, { __index = defaults }))
    assert.is_nil(bad)
    assert.same({ "invalid", "Data" }, { err.kind, err.field })
    assert.matches("unknown field 'Data'", err.message, 1, true)
  end)

  it("refuses fields named by something other than a string", function()
    for _, key in ipairs{ 1, 2.5, true } do
      local req, err = prequalify.request(with{ [key] = "x" })
      assert.is_nil(req, "expected a " .. type(key) .. " key to be refused")
      assert.equal("invalid", err.kind)
      assert.is_nil(err.field)
      assert.is_truthy(err.message:find("must be named by strings", 1, true), err.message)
      assert.is_truthy(err.message:find(type(key) .. " key", 1, true), err.message)
    end
    -- an array part is refused too
    local t = with{}
    t[1] = fx.DATA
    assert.is_nil((prequalify.request(t)))
  end)
end)

describe("field types", function()
  cases{
    { it = "refuses a dn that is not a string", field = "dn",
      valid = { fx.DN },
      invalid = { { 42, "dn must be a string", "got number" }, { true, "got boolean" }, { {}, "got table" } } },
    { it = "refuses data that is not a string", field = "data",
      valid = { fx.DATA },
      invalid = { { 42, "data must be a Base64 string", "got number" }, { {}, "got table" },
                  { false, "got boolean" } } },
    { it = "refuses a digest that is not a string", field = "digest",
      over = function(v) return { data = NONE, digest = v } end,
      valid = { bytes(32) }, normalized = function(req) assert.equal(32, req.digest_length) end,
      invalid = { { 42, "digest must be a string of raw bytes", "got number" }, { {}, "got table" } } },
    { it = "refuses a comment that is not a string", field = "comment",
      valid = { fx.COMMENT },
      invalid = { { 1, "comment must be a string", "got number" }, { {}, "got table" }, { true, "got boolean" } } },
    { it = "refuses a user that is not a string", field = "user",
      valid = { fx.USER },
      invalid = { { 1, "user must be a string", "got number" }, { false, "got boolean" }, { {}, "got table" } } },
    { it = "refuses hours that are not a number", field = "hours",
      valid = { 8 },
      invalid = { { "8", "hours must be an integer number of hours", "got string" }, { true, "got boolean" },
                  { {}, "got table" } } },
    { it = "refuses a single_use that is not a boolean", field = "single_use",
      valid = { true, false },
      invalid = { { "true", "single_use must be a boolean", "got string" }, { 1, "got number" },
                  { 0, "got number" }, { {}, "got table" } } },
  }
end)

describe("dn", function()
  cases{
    { it = "refuses a DN that does not start with \\VED\\", field = "dn",
      valid = { fx.DN, [[\VED\Policy]], [[\VED\x]] },
      invalid = { { [[VED\Code Signing\Projects]], "must start with \\VED\\" },
                  { [[\ved\Code Signing]], "must start with \\VED\\" },
                  { [[/VED/Code Signing]], "must start with \\VED\\" },
                  { [[\VEDX\Code Signing]], "must start with \\VED\\" },
                  { [[\VED]], "must start with \\VED\\" },
                  { [[Code Signing\Projects\Sample]], "must start with \\VED\\" } } },
    { it = "refuses a missing or empty DN", field = "dn",
      valid = { fx.DN },
      invalid = { { NONE, "dn is required" }, { "", "must not be empty" } } },
    { it = "refuses a DN with an empty component", field = "dn",
      valid = { [[\VED\Code Signing\Projects]] },
      invalid = { { [[\VED\Code Signing\\Projects]], "empty component" },
                  { [[\VED\\Code Signing]], "empty component" } } },
    { it = "refuses a DN that ends with a backslash", field = "dn",
      valid = { [[\VED\Code Signing\Projects\Sample]] },
      invalid = { { [[\VED\Code Signing\]], "must not end with a backslash" },
                  { [[\VED\]], "must not end with a backslash" } } },
    { it = "refuses a DN with a control character", field = "dn",
      valid = { [[\VED\Code Signing\Projects\With Spaces]] },
      invalid = { { [[\VED\Code]] .. "\t" .. [[Signing]], "control character 0x09" },
                  { [[\VED\Code Signing]] .. "\n", "control character 0x0a" },
                  { [[\VED\Code]] .. "\r" .. [[Signing]], "control character 0x0d" },
                  { [[\VED\Code]] .. "\31", "control character 0x1f" },
                  { [[\VED\Code]] .. "\127", "control character 0x7f" } } },
    { it = "refuses a DN with a NUL byte", field = "dn",
      valid = { fx.DN },
      invalid = { { [[\VED\Code]] .. "\0" .. [[Signing]], "NUL byte" },
                  { fx.DN .. "\0", "NUL byte" } } },
    { it = "refuses a DN that is not valid UTF-8", field = "dn",
      valid = { [[\VED\Café €\Projekt ✓]], [[\VED\]] .. "\u{10FFFF}" },
      invalid = { { [[\VED\Caf]] .. "\xe9", "valid UTF-8" },
                  { [[\VED\]] .. "\xc0\xaf", "valid UTF-8" },          -- overlong '/'
                  { [[\VED\]] .. "\xe0\x80\xaf", "valid UTF-8" },      -- overlong, 3 bytes
                  { [[\VED\]] .. "\xf0\x82\x82\xac", "valid UTF-8" },  -- overlong, 4 bytes
                  { [[\VED\]] .. "\xf5\x80\x80\x80", "valid UTF-8" },  -- no such lead byte
                  { [[\VED\]] .. "\xed\xa0\x80", "valid UTF-8" },      -- a surrogate
                  { [[\VED\]] .. "\xe2\x82", "valid UTF-8" },          -- truncated
                  { [[\VED\]] .. "\xf4\x90\x80\x80", "valid UTF-8" },  -- past U+10FFFF
                  { [[\VED\]] .. "\xff", "valid UTF-8" } } },
    { it = "refuses a DN longer than the documented cap", field = "dn",
      valid = { dn_of(DN_MAX), dn_of(DN_MAX - 1) },
      invalid = { { dn_of(DN_MAX + 1), "at most " .. DN_MAX },
                  { dn_of(DN_MAX * 4), "at most " .. DN_MAX } } },
    { it = "refuses a JSON-escaped DN with a hint to use single backslashes", field = "dn",
      valid = { fx.DN },
      invalid = { { [[\\VED\\Code Signing\\Projects\\Sample\\Production Environment]], "JSON-escaped",
                    "single backslashes" },
                  { [[\\VED\\Policy]], "JSON-escaped" } } },
  }
end)

describe("data", function()
  cases{
    { it = "refuses a request with neither data nor digest", field = "data",
      valid = { fx.DATA },
      invalid = { { NONE, "data is required", "digest" } } },
    { it = "refuses Data without its '=' padding", field = "data",
      valid = { fx.DATA, "AAAA", "AA==", "AAA=" },
      invalid = { { fx.DATA:sub(1, -2), "not a multiple of 4", "missing '=' padding" },
                  { "AA", "missing '=' padding" }, { "AAA", "missing '=' padding" },
                  { "AA=", "missing '=' padding" }, { "AAAAA", "not a multiple of 4" } } },
    { it = "refuses a Data field that is not Base64", field = "data",
      valid = { "+/+/", "09az", "Zm9vYmFy" },
      invalid = { { "AAA*", "invalid character at offset 3" }, { "AA.A", "invalid character" },
                  { "AA" .. "\0" .. "A", "invalid character" }, { "Zm9v\xc3\xa9mFy", "invalid character" },
                  { "Zm9v!mFy", "invalid character" } } },
    { it = "refuses base64url Data with a hint to use '+' and '/'", field = "data",
      valid = { "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=", "++//" },
      invalid = { { "q2rFZ7Tqxo2hKc8fvJNtBkO_7qR4LHCm0mQYDJ3HjNs=", "base64url", "use '+' and '/'" },
                  { "--__", "base64url" }, { "AB-A", "base64url" } } },
    { it = "refuses Data with embedded whitespace with a hint to remove it", field = "data",
      valid = { fx.DATA },
      invalid = { { "q2rF Z7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjN=", "whitespace at offset 4",
                    "remove spaces and line breaks" },
                  { fx.DATA .. "\n", "whitespace", "line breaks" },
                  { "q2rFZ7Tq\nxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjN=", "whitespace at offset 8" },
                  { "q2rFZ7Tq\r\nxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3Hj=", "whitespace" },
                  { "\tAAA", "whitespace" }, { " AAAA", "whitespace" } } },
    { it = "refuses Data with '=' anywhere but at the end", field = "data",
      valid = { "AAA=", "AA==" },
      invalid = { { "AA==AAAA", "padding may only end the text" }, { "A=AA", "padding may only end" },
                  { "=AAA", "padding may only end" } } },
    { it = "refuses Data with more than two '=' characters", field = "data",
      valid = { "AA==" },
      invalid = { { "A===", "at most 2 may pad" }, { "====", "at most 2 may pad" } } },
    { it = "refuses Data whose pad bits are not zero", field = "data",
      valid = { "AA==", "AQ==", "/w==", "AAA=", "AAE=", "//8=" },
      invalid = { { "AB==", "not canonical", "nonzero pad bits" }, { "/x==", "not canonical" },
                  { "AAB=", "not canonical" }, { "//9=", "not canonical" },
                  { fx.DATA:sub(1, -3) .. "t=", "not canonical" } } },
    { it = "refuses empty Data", field = "data",
      valid = { "AA==" },
      invalid = { { "", "empty", "at least 1 byte" } } },
    { it = "refuses Data that decodes to more than the documented cap", field = "data",
      valid = { data_of(1), data_of(DATA_MAX), data_of(DATA_MAX - 1) },
      normalized = function(req, v) assert.equal(v, req.data) assert.equal(#core.b64decode(v), req.digest_length) end,
      invalid = { { data_of(DATA_MAX + 1), "decodes to " .. (DATA_MAX + 1) .. " bytes", "at most " .. DATA_MAX },
                  { data_of(DATA_MAX + 3), "at most " .. DATA_MAX } } },
  }
end)

describe("digest", function()
  local function digest_only(v) return { data = NONE, digest = v } end

  cases{
    { it = "encodes a raw digest as standard Base64 Data", field = "digest", over = digest_only,
      valid = { "foobar", "\0\1\2\255", core.b64decode(fx.DATA) },
      normalized = function(req, v)
        local known = { foobar = "Zm9vYmFy", ["\0\1\2\255"] = "AAEC/w==" }
        assert.equal(known[v] or fx.DATA, req.data)
        assert.equal(#v, req.digest_length)
        assert.is_nil(req.digest)
      end,
      invalid = { { "", "digest must be 1 to " .. DATA_MAX .. " bytes" } } },
    { it = "refuses both data and digest", field = "data", error_field = "data",
      over = function(v) return { digest = v } end,
      valid = {}, -- data alone and digest alone are covered above
      invalid = { { core.b64decode(fx.DATA), "data and digest are exclusive", "not both" },
                  { "x", "exclusive" } } },
    { it = "refuses an empty digest", field = "digest", over = digest_only,
      valid = { "x" }, normalized = function(req) assert.equal("eA==", req.data) end,
      invalid = { { "", "digest must be 1 to " .. DATA_MAX .. " bytes", "got 0" } } },
    { it = "refuses a digest longer than the documented cap", field = "digest", over = digest_only,
      valid = { bytes(DATA_MAX) }, normalized = function(req) assert.equal(DATA_MAX, req.digest_length) end,
      invalid = { { bytes(DATA_MAX + 1), "1 to " .. DATA_MAX .. " bytes", "got " .. (DATA_MAX + 1) },
                  { bytes(DATA_MAX * 2), "got " .. (DATA_MAX * 2) } } },
  }

  it("accepts data alone and digest alone", function()
    accepts{ digest = NONE }
    accepts{ data = NONE, digest = "x" }
  end)

  it("reports the decoded length and the likely algorithm", function()
    local expect = { [20] = "sha1", [32] = "sha256", [48] = "sha384", [64] = "sha512" }
    for _, n in ipairs{ 1, 16, 19, 20, 21, 28, 31, 32, 33, 47, 48, 49, 63, 64, 65, 128, DATA_MAX } do
      local from_data = accepts{ data = data_of(n) }
      local from_digest = accepts{ data = NONE, digest = bytes(n) }
      for _, req in ipairs{ from_data, from_digest } do
        assert.equal(n, req.digest_length)
        assert.equal("integer", math.type(req.digest_length))
        assert.equal(expect[n], req.algorithm, "algorithm for " .. n .. " bytes")
      end
    end
  end)
end)

describe("comment", function()
  cases{
    { it = "refuses a request without a comment", field = "comment",
      valid = { fx.COMMENT },
      invalid = { { NONE, "comment is required" } } },
    { it = "refuses an empty comment", field = "comment",
      valid = { "x" },
      invalid = { { "", "must not be empty" } } },
    { it = "refuses a comment that is only whitespace", field = "comment",
      valid = { " x ", "line one\nline two\twith a tab\r\n" },
      invalid = { { " ", "only whitespace" }, { "\t\n  \r\n", "only whitespace" } } },
    { it = "refuses a comment with a control character other than tab or line break", field = "comment",
      valid = { "tab\there\nand a line" },
      invalid = { { "bell\7", "control character 0x07" }, { "esc\27[31m", "control character 0x1b" },
                  { "del\127", "control character 0x7f" } } },
    { it = "refuses a comment that is not valid UTF-8", field = "comment",
      valid = { "approuvé ✓ für Release 4.2 🚀" },
      invalid = { { "caf\xe9", "valid UTF-8", "offset 3" }, { "\xc0\x80", "valid UTF-8" },
                  { "ok \xf0\x9f\x9a", "valid UTF-8" } } },
    { it = "refuses a comment with a NUL byte", field = "comment",
      valid = { "no nul here" },
      invalid = { { "a\0b", "NUL byte", "offset 1" } } },
    { it = "refuses a comment longer than the documented cap", field = "comment",
      valid = { string.rep("c", COMMENT_MAX), string.rep("é", COMMENT_MAX // 2) },
      invalid = { { string.rep("c", COMMENT_MAX + 1), "at most " .. COMMENT_MAX },
                  { string.rep("é", COMMENT_MAX // 2 + 1), "at most " .. COMMENT_MAX } } },
  }
end)

describe("user", function()
  local guid = "064cbe34-b46e-48c9-b65b-ea8dcda167d4"
  cases{
    { it = "accepts a PrefixedName and refuses a user without a prefix", field = "user",
      valid = { "local:sample-cs-user", "AD+corp:jdoe", "LDAP+example:cn=Jane Doe,ou=People",
                "local:jdoe@example.com" },
      invalid = { { "jdoe", "PrefixedName", "no ':' found" }, { "sample-cs-user", "no ':' found" },
                  { "{" .. guid .. "}", "no ':' found" } } },
    { it = "accepts a PrefixedUniversal and refuses a malformed GUID in braces", field = "user",
      valid = { "local:{" .. guid .. "}", "AD+corp:{" .. guid:upper() .. "}" },
      invalid = {
        { "local:{064cbe3-4b46e-48c9-b65b-ea8dcda167d4}", "malformed PrefixedUniversal", "8-4-4-4-12" },
        { "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d}", "malformed PrefixedUniversal" },
        { "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d44}", "malformed PrefixedUniversal" },
        { "local:{064cbe34b46e48c9b65bea8dcda167d4}", "malformed PrefixedUniversal" },
        { "local:{064cbe3g-b46e-48c9-b65b-ea8dcda167d4}", "malformed PrefixedUniversal" },
        { "local:{064cbe340b46e048c90b65b0ea8dcda167d4}", "malformed PrefixedUniversal" },
        { "local:{064cbe34_b46e-48c9-b65b-ea8dcda167d4}", "malformed PrefixedUniversal" },
        { "local:(064cbe34-b46e-48c9-b65b-ea8dcda167d4}", "malformed PrefixedUniversal" },
        { "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d4)", "malformed PrefixedUniversal" },
        { "local:{064cbe34-b46e-48c9-b65b-ea8dcda167dz}", "malformed PrefixedUniversal" },
        { "local:{" .. guid, "malformed PrefixedUniversal" },
        { "local:" .. guid .. "}", "malformed PrefixedUniversal" },
        { "local:{}", "malformed PrefixedUniversal" },
        { "local:{" .. guid .. "}x", "malformed PrefixedUniversal" },
      } },
    { it = "refuses a user with an empty prefix", field = "user",
      valid = { "local:jdoe" },
      invalid = { { ":jdoe", "empty prefix" }, { ":{" .. guid .. "}", "empty prefix" }, { ":", "empty prefix" } } },
    { it = "refuses a user with an empty name", field = "user",
      valid = { "local:j" },
      invalid = { { "local:", "empty name" }, { "AD+corp:", "empty name" } } },
    { it = "refuses a user whose prefix holds a space, brace or backslash", field = "user",
      valid = { "AD+corp:jdoe" },
      invalid = { { "AD corp:jdoe", "invalid character in its prefix" },
                  { [[CORP\jdoe:x]], "invalid character in its prefix" },
                  { "{x}:jdoe", "invalid character in its prefix" } } },
    { it = "refuses a missing or empty user", field = "user",
      valid = { fx.USER },
      invalid = { { NONE, "user is required" }, { "", "must not be empty" } } },
    { it = "refuses a user with a control character, a NUL byte or bad UTF-8", field = "user",
      valid = { "local:jürgen" },
      invalid = { { "local:j\ndoe", "control character 0x0a" }, { "local:j\0doe", "NUL byte" },
                  { "local:j\xfc", "valid UTF-8" } } },
    { it = "refuses a user longer than the documented cap", field = "user",
      valid = { "local:" .. string.rep("u", USER_MAX - 6) },
      invalid = { { "local:" .. string.rep("u", USER_MAX - 5), "at most " .. USER_MAX } } },
  }
end)

describe("hours", function()
  local function is_integer(req, v)
    assert.equal(v, req.hours)
    assert.equal("integer", math.type(req.hours))
  end

  cases{
    { it = "accepts hours from 1 to the documented maximum and refuses the rest", field = "hours",
      valid = { 1, 8, 24, HOURS_MAX }, normalized = is_integer,
      invalid = { { 0, "hours must be an integer from 1 to " .. HOURS_MAX, "got 0" },
                  { HOURS_MAX + 1, "from 1 to " .. HOURS_MAX, "got " .. (HOURS_MAX + 1) },
                  { -1, "from 1 to", "got -1" }, { -24, "from 1 to" },
                  { math.mininteger, "from 1 to" }, { math.maxinteger, "from 1 to" } } },
    { it = "accepts a float with an integer value and normalizes it to an integer", field = "hours",
      valid = { 8.0, 1.0, HOURS_MAX + 0.0 },
      normalized = function(req, v) is_integer(req, math.tointeger(v)) end,
      invalid = { { 0.0, "from 1 to" }, { HOURS_MAX + 1.0, "from 1 to" }, { -8.0, "from 1 to" },
                  { 1e300, "from 1 to" }, { math.huge, "from 1 to" }, { -math.huge, "from 1 to" },
                  { 0 / 0, "from 1 to" } } },
    { it = "refuses hours with a fraction", field = "hours",
      valid = { 8 }, normalized = is_integer,
      invalid = { { 8.5, "whole number of hours", "fraction" }, { 1.5, "whole number" },
                  { HOURS_MAX - 0.5, "whole number" } } },
    { it = "leaves hours out when absent and refuses a string or a boolean", field = "hours",
      valid = { NONE }, normalized = function(req) assert.is_nil(req.hours) end,
      invalid = { { "8", "hours must be an integer number of hours", "got string" },
                  { true, "got boolean" }, { false, "got boolean" } } },
  }
end)

describe("single_use", function()
  cases{
    { it = "accepts a boolean single_use and refuses anything else", field = "single_use",
      valid = { true, false },
      normalized = function(req, v)
        assert.equal(v, req.single_use)
        assert.equal("boolean", type(req.single_use))
      end,
      invalid = { { "true", "single_use must be a boolean", "got string" }, { 1, "got number" },
                  { 0, "got number" }, { "yes", "got string" } } },
    { it = "leaves single_use out when absent", field = "single_use",
      valid = { NONE }, normalized = function(req) assert.is_nil(req.single_use) end,
      invalid = { { "false", "must be a boolean" } } },
  }
end)

describe("core.check", function()
  it("applies one field's rule and returns the rule that was broken", function()
    assert.is_true(core.check("dn", fx.DN))
    local ok, msg = core.check("dn", [[VED\x]])
    assert.is_nil(ok)
    assert.is_truthy(msg:find("must start with \\VED\\", 1, true))
    assert.is_true(core.check("user", fx.GUID_USER))
    assert.is_truthy(select(2, core.check("user", "local:")):find("empty name", 1, true))
    assert.is_true(core.check("comment", "why"))
    assert.is_truthy(select(2, core.check("comment", " ")):find("only whitespace", 1, true))
    assert.is_true(core.check("base64", fx.DATA))
    assert.is_truthy(select(2, core.check("base64", "AB==")):find("not canonical", 1, true))
    assert.is_truthy(select(2, core.check("base64", "")):find("empty", 1, true))
    assert.is_true(core.check("guid", "{064cbe34-b46e-48c9-b65b-ea8dcda167d4}"))
    assert.is_truthy(select(2, core.check("guid", "064cbe34-b46e-48c9-b65b-ea8dcda167d4")):find("GUID", 1, true))
  end)

  it("raises for a kind it does not know", function()
    assert.error_matches(function() core.check("colour", "red") end, "invalid option 'colour'", 1, true)
    assert.error_matches(function() core.check("dn") end, "string expected", 1, true)
  end)
end)
