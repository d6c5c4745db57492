-- A short run of every C entry point for valgrind memcheck (.ci/extra):
--   valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
--     --suppressions=spec/valgrind.supp lua5.4 spec/valgrind_smoke.lua
-- The busted suite is too slow under valgrind (about 3 minutes for the
-- engine and client specs, and its timing-sensitive cases become flaky), so
-- this plain script drives the same C paths once each against the emulator
-- over HTTPS: engine lifecycle and argument errors, concurrent submit/poll,
-- perform, refused headers, Retry-After and oversized replies, drops,
-- timeouts, refused connections, closing and collecting an engine with
-- transfers in flight, the client's success and error paths (including a
-- pin mismatch), digests and .dig files, validation and Base64.
-- It ends by returning normally, so lua.c runs lua_close and every __gc:
-- what is still allocated after that and unreachable is a real leak.
-- Run from the repo root; PREQUALIFY_BUILD picks the build dir (default build).
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = (os.getenv("PREQUALIFY_BUILD") or "build") .. "/?.so;" .. package.cpath

local core = require "prequalify.core"
local prequalify = require "prequalify"
local helpers = require "helpers"
local cjson = require "cjson"

local PATH = "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create"
-- Seconds. Under valgrind on a busy CI machine a TLS handshake has taken
-- more than the default 10 s connect timeout; only the timeout case is short.
local SLOW = 120
local checks = 0

local function check(cond, what)
  checks = checks + 1
  if not cond then error("valgrind smoke: " .. what, 2) end
end

local function raises(f, what)
  check(not pcall(f), what .. " should raise")
end

local function body(i)
  return cjson.encode{ Dn = helpers.DN_PROD, Data = helpers.SHA256_B64, Comment = "valgrind " .. i,
                       User = helpers.USER }
end

local function engine_lifecycle()
  for i = 1, 20 do
    local e = core.engine{ timeout = 5, max_response = 4096 }
    if i % 2 == 0 then check(e:close(), "close") end
  end
  do
    local e <close> = core.engine{}
    check(tostring(e):find("^prequalify.engine %("), "tostring")
    check(next(e:poll(0)) == nil, "empty poll")
  end
  local e = core.engine{}
  e:close()
  check(tostring(e) == "prequalify.engine (closed)", "closed tostring")
  raises(function() e:poll(0) end, "a closed engine")
  raises(function() core.engine{ timeout = "30" } end, "a string timeout")
  raises(function() core.engine():submit{} end, "submit without url")
  raises(function() core.engine():poll(-1) end, "a negative poll timeout")
  raises(function() core.engine{ http2 = "no" } end, "a string for a boolean option")
  raises(function() core.engine{ max_connections = 2.5 } end, "a fraction for a count")
  raises(function() core.engine():submit{ url = "https://x", timeout = 0 / 0 } end, "a NaN request timeout")
  -- A request whose field raises while read takes no transfer.
  local e2 = core.engine{}
  raises(function()
    e2:submit(setmetatable({ url = "https://127.0.0.1:1/" }, { __index = function() error("boom") end }))
  end, "a raising __index")
  check(select(3, e2:pending()) == 0, "no transfer taken by a raising request")
  collectgarbage()
end

local function engine_transfers(emu, token)
  local url = emu.url .. PATH
  local headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" }
  local e = core.engine{ ca_file = emu.ca, max_connections = 2, timeout = SLOW, connect_timeout = SLOW }
  local ids = {}
  for i = 1, 12 do ids[assert(e:submit{ url = url, headers = headers, body = body(i) })] = true end
  local done = 0
  while done < 12 do
    for _, r in ipairs(e:poll(10)) do
      check(ids[r.id] and r.status == 200 and r.curl_code == 0, string.format(
        "concurrent transfer %d: status %d, curl %d %s", r.id, r.status, r.curl_code, r.curl_error or ""))
      check(r.content_type and r.content_type:find("application/json", 1, true), "content type")
      ids[r.id] = nil
      done = done + 1
    end
  end
  local r = e:perform{ method = "GET", url = emu.url .. "/vedauth/authorize/verify", headers = headers }
  check(r.status == 200, "perform GET")
  -- A new header list (a rotated token) while the old one is still in use.
  local first = assert(e:submit{ url = url, headers = headers, body = body(13) })
  local rotated = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json", ["X-Rotated"] = "1" }
  r = e:perform{ url = url, headers = rotated, body = body(14) }
  check(r.status == 200, "perform with a new header list")
  local polled = {}
  while #polled == 0 do polled = e:poll(10) end
  check(polled[1].id == first and polled[1].status == 200, "request with the old header list")

  local id, msg = e:submit{ url = url, headers = { Authorization = "Bearer a\r\nX: y" } }
  check(id == nil and msg:find("CR, LF", 1, true), "CR/LF header refused")

  emu:fault{ kind = "status", status = 503, retry_after = "7" }
  r = e:perform{ url = url, headers = headers, body = body(0) }
  check(r.status == 503 and r.retry_after == "7", "Retry-After captured")

  emu:fault{ kind = "drop", process = false }
  r = e:perform{ url = url, headers = headers, body = body(0) }
  check(r.curl_code ~= 0, "dropped connection")
  emu:clear_faults()

  -- The connections are open by now, so 2 s is spent waiting for the reply.
  -- Faults are cleared after each case, so that one the server never saw
  -- (the client gave up before sending) cannot hit the next case.
  emu:fault{ kind = "delay", delay = 5 }
  r = e:perform{ url = url, headers = headers, body = body(0), timeout = 2 }
  check(r.curl_code == 28, "timeout, got " .. tostring(r.curl_code))
  emu:clear_faults()

  r = e:perform{ url = "https://127.0.0.1:1/" }
  check(r.curl_code == 7 and not r.sent, "refused connection")
  e:close()

  local small = core.engine{ ca_file = emu.ca, max_response = 1024, timeout = SLOW, connect_timeout = SLOW }
  emu:fault{ kind = "oversized", size = 65536 }
  r = small:perform{ url = url, headers = headers, body = body(0) }
  check(r.oversized, "oversized reply aborted, got status " .. r.status .. ", curl " .. r.curl_code)
  emu:clear_faults()
  small:close()

  -- Transfers still in flight when the engine is closed, or collected.
  for _, closer in ipairs{ "close", "gc" } do
    local busy = core.engine{ ca_file = emu.ca, timeout = SLOW, connect_timeout = SLOW }
    emu:fault{ kind = "delay", delay = 2, count = 3 }
    for i = 1, 3 do assert(busy:submit{ url = url, headers = headers, body = body(i) }) end
    busy:poll(0.2)
    if closer == "close" then busy:close() end
    busy = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
  end
  emu:clear_faults()
end

local function client_paths(emu, token)
  local function client(opts)
    local o = { url = emu.url, token = token, ca_file = emu.ca, timeout = SLOW, connect_timeout = SLOW,
                retries = { max = 2, base_delay = 0.01, max_delay = 1 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(prequalify.client(o))
  end
  local req = { dn = helpers.DN_PROD, data = helpers.SHA256_B64, comment = "valgrind smoke", user = helpers.USER }
  local c = client()
  local res, err = c:prequalify(req)
  check(res and res.ok, "client success: " .. tostring(err))

  res, err = c:prequalify{ dn = "VED", data = "x", comment = "", user = "nobody" }
  check(not res and err.kind == "invalid", "invalid request")

  emu:fault{ kind = "status", status = 503, count = 1, retry_after = "0" }
  res = c:prequalify(req)
  check(res and res.attempts == 2, "retried after 503 with Retry-After")

  emu:fault{ kind = "status", status = 200, body = '{"Success":false,"Result":7,"Error":"no such object"}' }
  res, err = c:prequalify(req)
  check(not res and err.kind == "server", "server refusal")

  emu:fault{ kind = "malformed" }
  res, err = c:prequalify(req)
  check(not res and err.kind == "protocol", "malformed reply")
  c:close()

  res, err = client{ token = "not-a-valid-token" }:prequalify(req)
  check(not res and err.kind == "auth", "bad token")

  res, err = client{ url = "https://127.0.0.1:1" }:prequalify(req)
  check(not res and err.kind == "transport" and err.outcome == "not_sent", "refused")

  res, err = client{ pinned_pubkey = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }:prequalify(req)
  check(not res and err.kind == "transport", "pin mismatch")
  collectgarbage()
  collectgarbage()
end

local function digests_and_validation(dir)
  local file = helpers.write_file(dir .. "/artifact.bin", ("prequalify "):rep(50000))
  for _, alg in ipairs{ "sha256", "sha384", "sha512" } do
    local b64, raw = core.digest_file(file, alg)
    check(b64 and #raw >= 32, "digest_file " .. alg)
    check(core.digest_data("abc", alg) ~= nil, "digest_data " .. alg)
  end
  check(core.digest_file(dir .. "/missing") == nil, "missing file")
  check(core.digest_file(dir) == nil, "directory")
  check(core.digest_file("/dev/zero") == nil and core.dig_file("/dev/null") == nil, "devices refused")
  check(core.sleep(0.001) == true, "sleep")
  check(core.write_file_atomic(dir .. "/token", "t\n"), "write_file_atomic")
  local j = assert(core.journal_open(dir .. "/journal"))
  check(j:write(("x"):rep(70000)) and j:sync() and j:close(), "journal write, sync and close")
  helpers.write_file(dir .. "/good.dig", "\xEF\xBB\xBF " .. helpers.SHA256_B64 .. "\r\n")
  helpers.write_file(dir .. "/bad.dig", "q2rF Z7Tq")
  helpers.write_file(dir .. "/big.dig", ("A"):rep(20000))
  check(core.dig_file(dir .. "/good.dig") == helpers.SHA256_B64, "good .dig")
  check(core.dig_file(dir .. "/bad.dig") == nil, "bad .dig")
  check(core.dig_file(dir .. "/big.dig") == nil, "oversized .dig")

  local good = { dn = helpers.DN_PROD, data = helpers.SHA256_B64, comment = "c", user = helpers.USER_UNIVERSAL,
                 hours = 8, single_use = true }
  check(prequalify.request(good), "valid request")
  for _, over in ipairs{
    { dn = "\\\\VED\\\\x" }, { data = "q2rF Z7" }, { data = "Zh==" }, { comment = " " }, { user = "local:{x}" },
    { hours = 0 }, { hours = 1.5 }, { Dn = "x" }, { digest = "raw" }, { single_use = "yes" },
  } do
    local t = {}
    for k, v in pairs(good) do t[k] = v end
    for k, v in pairs(over) do t[k] = v end
    local req, err = prequalify.request(t)
    check(req == nil and err.kind == "invalid", "refused " .. next(over))
  end
  local all = {}
  for b = 0, 255 do all[#all + 1] = string.char(b) end
  all = table.concat(all)
  check(core.b64decode(core.b64encode(all)) == all, "Base64 round trip")
  check(core.b64decode("Zm9") == nil, "bad Base64")
end

-- The batch pipeline (csrc/pq_pipeline.c): common successes finished in C
-- with a journal and a spool, replies handed back and resent (429, a drop),
-- an array input whose every reply comes back, a Run closed with requests
-- still in flight, a Run collected mid-batch, and one call stepped from
-- poll(2) (the engine's epoll set and socket_action paths).
local function batch_pipeline(emu, token, dir)
  local client = assert(prequalify.client{ url = emu.url, token = token, ca_file = emu.ca, timeout = SLOW,
                                           connect_timeout = SLOW, retries = { max = 3, base_delay = 0 } })
  local function item(i)
    return { dn = helpers.DN_PROD, user = helpers.USER, comment = "valgrind batch " .. i,
             data = (prequalify.digest.data("valgrind batch " .. i)) }
  end
  emu:fault{ kind = "status", status = 429, retry_after = "0", path = PATH }
  emu:fault{ kind = "drop", process = false, path = PATH }
  local i = 0
  local rep = assert(client:batch(function()
    i = i + 1
    if i <= 12 then return item(i) end
  end, { concurrency = 3, journal = dir .. "/batch.journal", signals = false }))
  check(rep.counts.total == 12 and rep.counts.approved == 11 and rep.counts.unknown == 1, "streamed batch")
  local n = 0
  for _ in rep:entries() do n = n + 1 end
  check(n == 12, "spooled entries read back")
  rep:close()
  local list = {}
  for k = 1, 4 do list[k] = item(100 + k) end
  rep = assert(client:batch(list, { concurrency = 2, signals = false }))
  check(rep.counts.approved == 4, "array batch")
  emu:fault{ kind = "delay", delay = 2, count = 2, path = PATH }
  local t = assert(require("prequalify.client").transport{ url = emu.url, token = token, ca_file = emu.ca })
  local run = assert(require("prequalify.batch").start(t, { item(200), item(201) },
                                                       { concurrency = 2, signals = false }))
  run:step(0)
  run:close()
  t:close()
  -- A Run abandoned mid-batch and collected: its requests are stopped.
  emu:fault{ kind = "delay", delay = 2, count = 2, path = PATH }
  local abandoned = assert(client:start_batch({ item(300), item(301) }, { concurrency = 2, signals = false }))
  abandoned:step(0)
  abandoned = nil -- luacheck: ignore
  collectgarbage()
  collectgarbage()
  emu:clear_faults()
  -- One call stepped from poll(2) on its descriptor.
  local call = client:start(item(400))
  while not call:step(0) do core.poll_fd(call:pollfd(), call:events(), call:timeout()) end
  check(call:report() ~= nil, "one call as a pollable object")
  client:close()
end

local emu = helpers.start_emulator()
local dir = helpers.tmpdir()
local ok, err = pcall(function()
  local token = emu:token{ username = "approver", scope = "codesign:approve" }
  engine_lifecycle()
  engine_transfers(emu, token)
  client_paths(emu, token)
  digests_and_validation(dir)
  batch_pipeline(emu, token, dir)
end)
emu:stop()
helpers.rm_rf(dir)
if not ok then error(err, 0) end
print(string.format("valgrind smoke: %d checks passed", checks))
