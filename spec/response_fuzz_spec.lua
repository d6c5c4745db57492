-- A randomized property test of response classification (the Lua half of
-- the issue's "code that classifies responses: status, headers, body"; the C
-- half, the header parser, has a libFuzzer harness in spec/fuzz/). Thousands
-- of engine results with random statuses, bodies, headers and curl codes go
-- through response.classify, which must never raise and must always return
-- either a success or an error whose kind and outcome follow DESIGN.md.
--
-- Seeded, so that a failure can be replayed: PQ_FUZZ_SEED=<seed> and
-- PQ_FUZZ_RUNS=<n> (default 5000) override the defaults.
local response = require "prequalify.response"
local errors = require "prequalify.errors"

local SEED = tonumber(os.getenv("PQ_FUZZ_SEED")) or 20260510
local RUNS = tonumber(os.getenv("PQ_FUZZ_RUNS")) or 5000
local SECRET = "s3cr3t-T0KEN-value"
local OUTCOMES = { not_sent = true, rejected = true, unknown = true }
local CURLE = response.CURLE

local random = math.random

local function pick(list) return list[random(#list)] end

local function bytes(n, lo, hi)
  local t = {}
  for i = 1, n do t[i] = string.char(random(lo or 0, hi or 255)) end
  return table.concat(t)
end

-- Printable text, as libcurl's error buffer and the C header parser give.
local function printable(n) return bytes(n, 32, 126) end

local function json_string()
  return pick{
    '"' .. printable(random(0, 20)):gsub('[\\"]', "") .. '"',
    '"line\\r\\nbreak"', '"nul\\u0000byte"', '"' .. SECRET .. ' leaked"',
    '"' .. ("x"):rep(random(290, 1200)) .. '"', '"Grant rejected scope \'codesign:approve\'"',
    '"\\ud800"', '"caf\\u00e9"',
  }
end

local function json_number()
  return pick{
    "1", "0", "-1", "2", "7", "1002", "3001", "4242", "1.0", "1.5", "-0", "1e20", "-1e20",
    "1e400", "-1e400", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "NaN", "Infinity", "-Infinity", "0x10", "1e-400", tostring(random(-100000, 100000)),
  }
end

local json_value
local function json_object(depth)
  local fields = {}
  for _ = 1, random(0, 5) do
    local key = pick{ "Success", "Result", "Error", "error", "error_description", "Message",
                      "success", "Extra", printable(random(1, 6)):gsub('[\\"]', "") }
    fields[#fields + 1] = '"' .. key .. '":' .. json_value(depth + 1)
  end
  return "{" .. table.concat(fields, ",") .. "}"
end

function json_value(depth)
  if depth > 3 then return json_number() end
  local r = random(10)
  if r <= 2 then return pick{ "true", "false", "null" } end
  if r <= 5 then return json_number() end
  if r <= 7 then return json_string() end
  if r <= 8 then return "[" .. json_value(depth + 1) .. "," .. json_value(depth + 1) .. "]" end
  return json_object(depth)
end

local function random_body()
  local r = random(12)
  if r == 1 then return "" end
  if r == 2 then return bytes(random(1, 200)) end
  if r == 3 then return ("["):rep(random(30, 2000)) end
  if r == 4 then
    local b = json_object(0)
    return b:sub(1, random(0, #b))
  end
  if r == 5 then return '{"Success":' .. pick{ "true", "false" } .. ',"Result":' .. json_number() .. "}" end
  if r == 6 then
    return '{"Success":false,"Result":' .. json_number() .. ',"Error":' .. json_string() .. "}"
  end
  if r == 7 then return '{"error":' .. json_string() .. ',"error_description":' .. json_string() .. "}" end
  if r == 8 then return json_value(0) end
  if r == 9 then return "<html>" .. printable(random(0, 80)) .. "</html>" end
  return json_object(0)
end

local function retry_after()
  return pick{
    nil, "0", "5", "120", tostring(random(0, 1e6)), "99999999999999999999999",
    "-1", "1.5", " 7 ", "", printable(random(1, 30)),
    "Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 2994 08:49:37 GMT",
    "Mon, 01 Jan 99999999999 00:00:00 GMT", "Mon, 99 Foo 2020 99:99:99 GMT",
    "Tue, 31 Feb 2026 25:61:61 GMT", "Fri, 0 Jan 0 00:00:00 GMT",
  }
end

local STATUSES = { 0, 100, 101, 200, 201, 202, 204, 299, 300, 301, 302, 304, 307, 399, 400, 401,
                   403, 404, 408, 409, 429, 499, 500, 501, 502, 503, 504, 505, 599, 600, 999 }
local CODES = {}
for _, v in pairs(CURLE) do CODES[#CODES + 1] = v end
table.sort(CODES)

local function engine_result()
  local curl_code = 0
  if random(3) == 1 then curl_code = random(2) == 1 and pick(CODES) or random(1, 99) end
  local r = {
    id = random(1, 1000),
    status = random(4) == 1 and random(0, 999) or pick(STATUSES),
    body = random_body(),
    content_type = pick{ nil, "application/json", "text/html; charset=utf-8", printable(random(0, 127)) },
    retry_after = retry_after(),
    curl_code = curl_code,
    sent = random(2) == 1,
    oversized = random(8) == 1,
    new_connections = random(0, 1),
    elapsed = random() * 10,
  }
  if curl_code ~= 0 then
    -- The engine always sets a message: curl's error buffer or curl_easy_strerror.
    r.curl_error = pick{ printable(random(1, 120)), "Failed sending " .. SECRET, "SSL certificate problem" }
    if random(2) == 1 then r.status = 0 end
  end
  return r
end

local function dump(r)
  local keys = {}
  for k in pairs(r) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. string.format("%q", r[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- The oracle: the table "Which kind and outcome a reply gets" in
-- docs/TROUBLESHOOTING.md, read from the file, not restated from the code.
-- Every reply must match exactly one row, whatever the rows' order.
local helpers = require "helpers"
local cjson_safe = require "cjson.safe"

local function status_matcher(text)
  local tests = {}
  for item in text:gmatch("[^;]+") do
    item = item:match("^%s*(.-)%s*$")
    local a, b = item:match("^(%d+)%-(%d+)")
    local n = tonumber(item:match("^(%d+)"))
    local except = {}
    for x in (item:match("except (.*)$") or ""):gmatch("%d+") do except[tonumber(x)] = true end
    tests[#tests + 1] = function(st, ra)
      if item == "any" then return true end
      if item == "2xx" then return st >= 200 and st < 300 end
      if item:find("with Retry%-After") then return st == n and ra ~= nil end
      if item:find("without Retry%-After") then return st == n and ra == nil end
      if item:find("and above") then return st >= n end
      if a then return st >= tonumber(a) and st <= tonumber(b) and not except[st] end
      assert(n, "unreadable status in the docs table: " .. item)
      return st == n
    end
  end
  return function(st, ra)
    for _, t in ipairs(tests) do if t(st, ra) then return true end end
    return false
  end
end

local function transfer_matcher(text)
  local words = {}
  for w in text:gmatch("[^,]+") do words[#words + 1] = w:match("^%s*(.-)%s*$") end
  return function(r)
    local failed = r.curl_code ~= 0
    for _, w in ipairs(words) do
      local ok
      if w == "complete" then ok = not failed
      elseif w == "error" then ok = failed
      elseif w == "too large" then ok = r.oversized
      elseif w == "send rewind failed (not too large)" then
        ok = not r.oversized and r.curl_code == CURLE.SEND_FAIL_REWIND
      elseif w == "other (not too large)" then
        ok = not r.oversized and r.curl_code ~= CURLE.SEND_FAIL_REWIND
      elseif w == "sent" then ok = r.sent
      elseif w == "not sent" then ok = not r.sent
      else error("unreadable transfer in the docs table: " .. w) end
      if not ok then return false end
    end
    return true
  end
end

local function body_class(body)
  local doc = cjson_safe.decode(body)
  if type(doc) == "table" and doc.Success == true then return "success" end
  if type(doc) == "table" and doc.Success == false then return "refusal" end
  return "other"
end

local ROWS = {}
do
  local text = assert(helpers.read_file(helpers.ROOT .. "/docs/TROUBLESHOOTING.md"))
  local tbl = assert(text:match("### Which kind and outcome a reply gets\n.-\n(| transfer |.-)\n\n"),
    "the table is missing from docs/TROUBLESHOOTING.md")
  for line in tbl:gmatch("[^\n]+") do
    local cells = {}
    for c in line:gmatch("|([^|]*)") do cells[#cells + 1] = c:match("^%s*(.-)%s*$") end
    if cells[1] ~= "transfer" and not cells[1]:find("^%-") then
      ROWS[#ROWS + 1] = { transfer = transfer_matcher(cells[1]), status = status_matcher(cells[2]),
                          body = cells[3], kind = cells[4], outcome = cells[5], text = line }
    end
  end
  assert(#ROWS >= 10, "the docs table has " .. #ROWS .. " rows")
end

-- The kind and outcome the docs give for r (nil, nil: a success).
local function expected(r)
  local found
  for _, row in ipairs(ROWS) do
    if row.transfer(r) and row.status(r.status, r.retry_after)
      and (row.body == "any" or r.curl_code ~= 0 or row.body == body_class(r.body)) then
      assert(not found, "two rows of the docs table match:\n" .. (found and found.text or "") .. "\n" .. row.text)
      found = row
    end
  end
  assert(found, "no row of the docs table matches")
  if found.kind == "(success)" then return nil end
  return found.kind, found.outcome
end

local function check(r)
  local ok, res, err = pcall(response.classify, r, { SECRET })
  assert(ok, "classify raised: " .. tostring(res))
  if res ~= nil then
    assert(err == nil, "both a result and an error")
    assert(expected(r) == nil, "a success where the docs table says an error")
    assert(r.curl_code == 0 and r.status >= 200 and r.status < 300, "success for a failed transfer")
    assert(res.ok == true and res.status == r.status, "success table lacks ok/status")
    assert(res.body and res.body.Success == true, "success without Success:true")
    if res.result ~= nil then
      assert(type(res.result_name) == "string", "result without a result_name")
    end
    return
  end
  assert(errors.is(err), "no error value: " .. tostring(err))
  assert(errors.KINDS[err.kind], "unknown kind " .. tostring(err.kind))
  assert(OUTCOMES[err.outcome], "bad outcome " .. tostring(err.outcome))
  assert(type(err.message) == "string" and err.message ~= "", "empty message")
  assert(type(err.retryable) == "boolean", "retryable is not a boolean")
  -- Only requests that never arrived, or answers saying "try later", repeat.
  assert(not (err.retryable and err.outcome == "unknown"), "retryable with an unknown outcome")
  local line = tostring(err)
  assert(type(line) == "string" and not line:find("[\r\n]"), "tostring(err) is not one line: " .. line)
  assert(not line:find(SECRET, 1, true), "secret in the message: " .. line)
  if err.retry_after ~= nil then
    assert(type(err.retry_after) == "number" and err.retry_after >= 0, "bad retry_after")
  end
  local kind, outcome = expected(r)
  assert(kind, "an error where the docs table says success")
  assert(err.kind == kind, "kind " .. err.kind .. ", expected " .. kind)
  assert(err.outcome == outcome, "outcome " .. err.outcome .. ", expected " .. outcome)
  if r.curl_code == 0 then assert(err.status == r.status, "status not carried over") end
end

-- Minimized reproducers of what the random test found; each once raised
-- or leaked through classify.
local function reply(status, body, extra)
  local r = { id = 1, status = status, body = body, content_type = "application/json",
              curl_code = 0, sent = true, oversized = false, new_connections = 0, elapsed = 0.01 }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

describe("response.classify regressions", function()
  it("names a Result code that is a whole number beyond the integer range", function()
    for _, n in ipairs{ "9223372036854775807", "1e20", "-1e20", "Infinity", "1e400" } do
      local ok, why = pcall(check, reply(200, '{"Success":true,"Result":' .. n .. "}"))
      assert(ok, "Result " .. n .. ": " .. tostring(why))
      ok, why = pcall(check, reply(200, '{"Success":false,"Result":' .. n .. "}"))
      assert(ok, "Result " .. n .. ": " .. tostring(why))
    end
  end)

  it("ignores a Retry-After date whose year os.time cannot represent", function()
    for _, status in ipairs{ 429, 503 } do
      local ok, why = pcall(check, reply(status, "", { retry_after = "Mon, 01 Jan 99999999999 00:00:00 GMT" }))
      assert(ok, tostring(why))
    end
  end)

  it("does not echo a Result that is not a number", function()
    local body = '{"Success":false,"Result":"' .. SECRET .. '\\r\\nInjected: yes"}'
    local ok, why = pcall(check, reply(200, body))
    assert(ok, tostring(why))
  end)
end)

describe("response.classify under random engine results", function()
  it("never raises and always returns a success or a well-formed error", function()
    math.randomseed(SEED)
    for i = 1, RUNS do
      local r = engine_result()
      local ok, why = pcall(check, r)
      if not ok then
        error(string.format("run %d (PQ_FUZZ_SEED=%d): %s\nresult: %s", i, SEED, tostring(why), dump(r)), 0)
      end
    end
  end)
end)
