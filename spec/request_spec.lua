-- The request API: normalized requests, error values, the exact JSON wire
-- body, the module version, and memory over many requests.
local prequalify = require "prequalify"
local request = require "prequalify.request"
local errors = require "prequalify.errors"
local cjson = require "cjson"
local fx = require "fixtures.requests"

local NONE, with = fx.NONE, fx.with

local function keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return list
end

describe("prequalify.request", function()
  it("accepts the vendor documentation's example request", function()
    local req, err = prequalify.request(fx.example())
    assert.is_nil(err)
    assert.is_true(request.is(req))
    assert.equal(fx.DN, req.dn)
    assert.equal(fx.DATA, req.data)
    assert.equal(fx.COMMENT, req.comment)
    assert.equal(fx.USER, req.user)
    assert.is_true(req.single_use)
    assert.is_nil(req.hours)
    assert.equal(32, req.digest_length)
    assert.equal("sha256", req.algorithm)
  end)

  it("returns a normalized request unchanged when it is passed again", function()
    local req = assert(prequalify.request(fx.example()))
    assert.equal(req, prequalify.request(req))
  end)

  it("does not change the caller's table", function()
    local t = with{ data = NONE, digest = "\1\2\3", hours = 8.0 }
    assert.is_truthy(prequalify.request(t))
    assert.same(with{ data = NONE, digest = "\1\2\3", hours = 8.0 }, t)
    assert.equal("float", math.type(t.hours))
  end)

  it("gives a plain copy of the user fields", function()
    local req = assert(prequalify.request(with{ hours = 4 }))
    local f = request.fields(req)
    assert.is_nil(getmetatable(f))
    assert.same({ dn = fx.DN, data = fx.DATA, comment = fx.COMMENT, user = fx.USER, hours = 4, single_use = true }, f)
    assert.is_truthy(prequalify.request(f))
  end)

  it("describes itself in one line without the data", function()
    local s = tostring(assert(prequalify.request(with{ hours = 8 })))
    assert.is_truthy(s:find(fx.DN, 1, true))
    assert.is_truthy(s:find("sha256", 1, true))
    assert.is_truthy(s:find("8h", 1, true))
    assert.is_nil(s:find("\n"))
  end)
end)

describe("an invalid request", function()
  it("is reported as a value with kind, field, message and outcome", function()
    local req, err = prequalify.request(with{ dn = [[VED\Code Signing]] })
    assert.is_nil(req)
    assert.is_true(errors.is(err))
    assert.equal("invalid", err.kind)
    assert.equal("dn", err.field)
    assert.equal("not_sent", err.outcome)
    assert.is_false(err.retryable)
    assert.is_truthy(err.message:find("must start with \\VED\\", 1, true))
  end)

  it("turns into one readable line holding the message", function()
    for _, over in ipairs{ { dn = [[VED\x]] }, { Dn = fx.DN }, { data = "AB==" }, { hours = 0 },
                           { comment = "a\0b" }, { ["x\ny"] = 1 }, { [1] = 1 } } do
      local _, err = prequalify.request(with(over))
      local line = tostring(err)
      assert.is_truthy(line:find(err.message, 1, true), line)
      assert.is_truthy(line:find("invalid", 1, true), line)
      assert.is_nil(line:find("[\r\n%z]"), line)
    end
  end)

  it("raises when the argument is not a table, a programming mistake", function()
    for _, bad in ipairs{ 42, "dn", true } do
      assert.has_error(function() prequalify.request(bad) end,
        "prequalify.request: expected a table of fields, got " .. type(bad))
    end
    assert.error_matches(function() prequalify.request() end,
      "prequalify.request: expected a table of fields, got nil", 1, true)
    assert.error_matches(function() prequalify.encode(42) end, "expected a table of fields, got number", 1, true)
  end)
end)

describe("the wire body", function()
  it("uses exactly the wire names Dn, Data, Comment, User, Hours and SingleUse", function()
    local text = assert(prequalify.encode(with{ hours = 12, single_use = false }))
    local body = cjson.decode(text)
    assert.same({ "Comment", "Data", "Dn", "Hours", "SingleUse", "User" }, keys(body))
    assert.same({ Dn = fx.DN, Data = fx.DATA, Comment = fx.COMMENT, User = fx.USER, Hours = 12, SingleUse = false },
      body)
  end)

  it("encodes Hours as an integer, never as 8.0", function()
    for _, h in ipairs{ 8, 8.0, 1, 8760.0 } do
      local text = assert(prequalify.encode(with{ hours = h }))
      local want = tostring(math.tointeger(h))
      assert.is_truthy(text:find('"Hours":' .. want .. "[,}]"), text)
      assert.is_nil(text:find('"Hours":%d+[.eE]'), text)
    end
  end)

  it("leaves out absent optional fields instead of sending null", function()
    local text = assert(prequalify.encode(with{ single_use = NONE }))
    assert.is_nil(text:find("Hours", 1, true))
    assert.is_nil(text:find("SingleUse", 1, true))
    assert.is_nil(text:find("null", 1, true))
    assert.same({ "Comment", "Data", "Dn", "User" }, keys(cjson.decode(text)))
  end)

  it("writes the fields in a fixed order and escapes text as JSON requires", function()
    local req = assert(prequalify.request(with{
      comment = 'say "hi" \\ a/b\ttab\nline caf\195\169', hours = 3, single_use = true }))
    local text = assert(prequalify.encode(req))
    assert.equal('{"Dn":' .. cjson.encode(fx.DN) .. ',"Data":"' .. fx.DATA:gsub("/", "\\/") .. '","Comment":'
      .. '"say \\"hi\\" \\\\ a\\/b\\ttab\\nline caf\195\169","User":' .. cjson.encode(fx.USER)
      .. ',"Hours":3,"SingleUse":true}', text)
    assert.equal(req.comment, cjson.decode(text).Comment)
  end)

  it("writes an integer Hours exactly, whatever its size", function()
    local core = require "prequalify.core"
    for _, h in ipairs{ 0, 7, 8760, -5, math.maxinteger, math.mininteger } do
      local text = core.wire{ dn = "d", data = "AA==", hours = h }
      assert.equal('{"Dn":"d","Data":"AA==","Hours":' .. string.format("%d", h) .. "}", text)
    end
  end)

  it("refuses to write a body from a table whose fields have the wrong types", function()
    local core = require "prequalify.core"
    assert.has_error(function() core.wire{ dn = 1, data = "AA==" } end, "wire: field 'dn' is not a string")
    assert.has_error(function() core.wire{ dn = "d", data = "AA==", hours = 1.5 } end,
      "wire: field 'hours' is not an integer")
    assert.has_error(function() core.wire{ dn = "d", data = "AA==", single_use = "yes" } end,
      "wire: field 'single_use' is not a boolean")
  end)

  it("sends single_use = false as false", function()
    local text = assert(prequalify.encode(with{ single_use = false }))
    assert.is_truthy(text:find('"SingleUse":false', 1, true), text)
  end)

  it("sends a raw digest as its Base64 Data and nothing else about it", function()
    local text = assert(prequalify.encode(with{ data = NONE, digest = "foobar" }))
    local body = cjson.decode(text)
    assert.equal("Zm9vYmFy", body.Data)
    for _, word in ipairs{ "igest", "algorithm", "length" } do
      assert.is_nil(text:find(word, 1, true), text)
    end
  end)

  it("refuses to encode an invalid request and returns the error", function()
    local text, err = prequalify.encode(with{ SingleUse = true })
    assert.is_nil(text)
    assert.equal("invalid", err.kind)
    assert.equal("unknown field 'SingleUse' (did you mean 'single_use'?)", err.message)
  end)

  it("is the same from prequalify.encode and request.encode", function()
    local req = assert(prequalify.request(with{ hours = 3 }))
    assert.equal(request.encode(req), prequalify.encode(req))
    assert.equal(prequalify.encode(req), prequalify.encode(request.fields(req)))
  end)

  it("round-trips the vendor documentation's example with the DN's backslashes intact", function()
    local documented = cjson.decode(fx.WIRE_JSON)
    assert.equal([[\VED\Code Signing\Projects\Sample\Production Environment]], documented.Dn)
    local req = assert(prequalify.request{
      dn = documented.Dn, data = documented.Data, comment = documented.Comment,
      user = documented.User, single_use = documented.SingleUse,
    })
    local text = assert(prequalify.encode(req))
    assert.same(documented, cjson.decode(text))
    assert.equal([[\VED\Code Signing\Projects\Sample\Production Environment]], cjson.decode(text).Dn)
    assert.is_truthy(text:find([["\\VED\\Code Signing\\Projects\\Sample\\Production Environment"]], 1, true), text)
  end)
end)

describe("prequalify._VERSION", function()
  it("is a version string", function()
    assert.equal("string", type(prequalify._VERSION))
    assert.is_truthy(prequalify._VERSION:find("^%d+%.%d+"), prequalify._VERSION)
  end)
end)

describe("memory #slow", function()
  local function full_gc()
    collectgarbage("collect")
    collectgarbage("collect")
    return collectgarbage("count")
  end

  it("stays flat over 200k requests, valid and invalid, collected by Lua's GC", function()
    local digest = prequalify.core.b64decode(fx.DATA)
    local function one(i)
      local t = fx.example()
      local k = i % 5
      if k == 1 then t.data, t.digest = nil, digest            -- encoded by the core
      elseif k == 2 then t.Dn = t.dn                          -- unknown field
      elseif k == 3 then t.hours = 8.0                         -- normalized number
      elseif k == 4 then t.data = "q2rF Z7Tq"                  -- Base64 refused
      end
      local req, err = prequalify.request(t)
      if req then
        assert(prequalify.encode(req))
      else
        assert(tostring(err))
      end
    end

    local n = 200000
    for i = 1, 1000 do one(i) end -- warm up: lazy tables, interned strings
    local before = full_gc()
    local peak = before
    local half
    for i = 1, n do
      one(i)
      if i % 1000 == 0 then peak = math.max(peak, collectgarbage("count")) end
      if i == n // 2 then half = full_gc() end
    end
    local after = full_gc()
    -- No growth with the number of requests: a leak of even 16 bytes a
    -- request would be about 3 MB here.
    assert.is_true(after - before < 64, ("grew from %.1f KB to %.1f KB"):format(before, after))
    assert.is_true(after - half < 16, ("grew from %.1f KB to %.1f KB in the second half"):format(half, after))
    -- and the collector keeps up while the loop runs.
    assert.is_true(peak < before + 8192, ("peaked at %.1f KB from %.1f KB"):format(peak, before))
  end)
end)

describe("the request key", function()
  local core = require "prequalify.core"
  local journal = require "prequalify.journal"
  -- The canonical bytes of journal format 2 (journal.lua, pq_key.c): journals
  -- written by any version of this format must keep matching, so the key is
  -- checked against the formula. The DN's ASCII letters are folded to lower case.
  local function expected(req)
    local dn = req.dn:gsub("%u", string.lower)
    local canon = string.pack(">zs4s4s4", "prequalify-key-v2", dn, req.data, req.user)
    local b64, raw = core.digest_data(canon, "sha256")
    return b64:sub(1, 43), (string.unpack("<i8", raw))
  end

  it("is the SHA-256 of the canonical fields, and its first 8 bytes as the short key", function()
    for _, over in ipairs{ {}, { hours = 12 }, { single_use = false }, { single_use = NONE, hours = 8760 },
                           { comment = "a/b \\ \226\130\172" },
                           -- a DN longer than the buffer the key's bytes gather in (pq_key.c)
                           { dn = [[\VED\Policy\Code Signing\]] .. string.rep("Team Ab ", 120) } } do
      local req = assert(prequalify.request(with(over)))
      local key, short = journal.key(req)
      local want, want_short = expected(req)
      assert.equal(want, key)
      assert.equal(want_short, short)
      assert.equal(43, #key)
      assert.is_true(math.type(short) == "integer")
    end
  end)

  it("differs when the identity differs, not when the terms do", function()
    local base = journal.key(assert(prequalify.request(with{})))
    for _, over in ipairs{ { user = "local:other-user" }, { data = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" } } do
      assert.are_not.equal(base, (journal.key(assert(prequalify.request(with(over))))))
    end
    for _, over in ipairs{ { hours = 1 }, { single_use = false }, { comment = fx.COMMENT .. "." } } do
      assert.equal(base, (journal.key(assert(prequalify.request(with(over))))))
    end
  end)

  it("refuses a table without the required text fields", function()
    assert.has_error(function() core.request_key{ dn = "d" } end, "request_key: field 'data' is not a string")
  end)

  it("keys fields an __index makes as it keys plain ones, even when a collection runs between them", function()
    local plain = { dn = "\\VED\\Code Signing\\Projects\\Sample\\Environment " .. string.rep("x", 40),
      data = string.rep("Zm9v", 11), user = "local:" .. string.rep("u", 40) }
    -- Each field is a fresh string (longer than Lua interns), and reading
    -- one collects garbage, so a field read earlier must still be alive
    -- when the key is made.
    local made = setmetatable({}, { __index = function(_, k)
      collectgarbage()
      return plain[k] and (plain[k] .. "!"):sub(1, -2)
    end })
    assert.same({ core.request_key(plain) }, { core.request_key(made) })
  end)
end)

describe("core.prepare", function()
  local core = require "prequalify.core"

  it("returns the normalized request, the report summary and the body in one call", function()
    local req, summary, body = core.prepare(with{ single_use = NONE, hours = 6 })
    assert.same(assert(prequalify.request(with{ single_use = NONE, hours = 6 })), setmetatable(req, nil))
    assert.same({ dn = fx.DN, user = fx.USER, data = fx.DATA, algorithm = "sha256", digest_length = 32,
                  hours = 6, single_use = false, comment = fx.COMMENT }, summary)
    assert.equal(prequalify.encode(with{ single_use = NONE, hours = 6 }), body)
  end)

  it("leaves the normalized request out when asked, and fails like validate", function()
    local req, summary, body = core.prepare(with{}, true)
    assert.is_false(req)
    assert.is_table(summary)
    assert.equal(prequalify.encode(with{}), body)
    local r, message, field = core.prepare(with{ hours = 0 }, true)
    assert.is_nil(r)
    assert.equal("hours", field)
    assert.matches("hours", message)
  end)
end)
