-- The C engine at its own level: lifecycle of the userdata, argument checks,
-- and submit/poll against the emulator.
local cjson = require "cjson"
local core = require "prequalify.core"
local helpers = require "helpers"

describe("engine lifecycle", function()
  it("closes idempotently through close(), <close> and __gc", function()
    local e = core.engine{}
    assert.is_true(e:close())
    assert.is_true(e:close())
    assert.equal("prequalify.engine (closed)", tostring(e))
    local outer
    do
      local e2 <close> = core.engine{}
      outer = e2
      assert.matches("^prequalify.engine %(", tostring(e2))
    end
    assert.equal("prequalify.engine (closed)", tostring(outer))
    for _ = 1, 200 do core.engine{ timeout = 5 } end
    collectgarbage()
    collectgarbage()
  end)

  it("raises when a closed engine is used", function()
    local e = core.engine{}
    e:close()
    assert.has_error(function() e:poll(0) end, "attempt to use a closed engine")
    assert.has_error(function() e:submit{ url = "https://x" } end, "attempt to use a closed engine")
  end)

  it("names its class in type errors", function()
    local e = core.engine{}
    local ok, msg = pcall(e.poll, {}, 0)
    assert.is_false(ok)
    assert.matches("prequalify.engine expected", msg, 1, true)
  end)

  -- The message of the error fn raises, or fails when it does not raise.
  local function raised(fn, ...)
    local ok, msg = pcall(fn, ...)
    assert.is_false(ok, "expected an error")
    return tostring(msg)
  end

  it("takes core.engine() and core.engine(nil) as no options, and names a wrong argument", function()
    assert.matches("^prequalify.engine %(", tostring(core.engine()))
    assert.matches("^prequalify.engine %(", tostring(core.engine(nil)))
    assert.matches("bad argument #1 to '[%w.]*engine' %(an options table expected, got boolean%)",
                   raised(core.engine, true))
  end)

  it("reads seconds, counts and sizes as numbers in range, naming the option", function()
    for _, case in ipairs{
      { { timeout = "30" }, "'timeout': expected seconds from 0.001 to 86400" },
      { { timeout = -1 }, "'timeout': expected seconds from 0.001 to 86400" },
      { { timeout = 0 / 0 }, "'timeout': expected seconds" },
      { { connect_timeout = 1e12 }, "'connect_timeout': expected seconds" },
      { { max_connections = 2.5 }, "'max_connections': expected an integer from 1 to 4096" },
      { { max_connections = 0 }, "'max_connections': expected an integer from 1 to 4096" },
      { { max_host_connections = 5000 }, "'max_host_connections': expected an integer from 1 to 4096" },
      { { max_response = 10 }, "'max_response': expected an integer from 1024 to 1073741824" },
      { { max_response = "1m" }, "'max_response': expected an integer" },
      { { ca_file = 1 }, "'ca_file': expected a string" },
    } do
      assert.matches("engine option " .. case[2], raised(core.engine, case[1]), 1, true)
    end
  end)

  it("takes only true or false for boolean options", function()
    assert.matches("engine option 'http2': expected true or false", raised(core.engine, { http2 = "no" }), 1, true)
    assert.matches("engine option 'ca_replace': expected true or false", raised(core.engine, { ca_replace = 0 }),
                   1, true)
    assert.is_truthy(core.engine{ http2 = false, ca_replace = true })
  end)

  it("checks the request's method, url and timeout", function()
    local e = core.engine{}
    assert.matches("expected method POST or GET", raised(e.submit, e, { method = "DELETE", url = "https://x" }),
                   1, true)
    assert.matches("expected a url string", raised(e.submit, e, {}), 1, true)
    for _, t in ipairs{ 0 / 0, -1, 1e300, "5" } do
      assert.matches("field 'timeout': expected seconds from 0 (no limit) to 86400",
                     raised(e.submit, e, { url = "https://127.0.0.1:1/", timeout = t }), 1, true)
    end
    assert.matches("expected a timeout in seconds (0 to 86400)", raised(e.poll, e, -1), 1, true)
    assert.same({ 0, 0, 0 }, { e:pending() })
  end)

  it("takes no transfer for a request whose fields raise while read", function()
    local e = core.engine{ connect_timeout = 0.5 }
    for _, field in ipairs{ "headers", "body", "timeout", "url", "method" } do
      local req = setmetatable({ url = "http://127.0.0.1:1/" }, { __index = function(_, k)
        if k == field then error("boom in " .. k) end
      end })
      if field == "url" then req.url = nil end
      assert.matches("boom in " .. field, raised(e.submit, e, req), 1, true)
    end
    assert.same({ 0, 0, 0 }, { e:pending() })
    local r = e:perform{ method = "GET", url = "http://127.0.0.1:1/" }
    assert.same({ 0, 7 }, { r.status, r.curl_code })
    assert.same({ 0, 0, 1 }, { e:pending() })
  end)

  it("returns nothing from poll when nothing is in flight", function()
    local e = core.engine{}
    assert.same({}, e:poll(0))
    assert.same({ 0, 0, 0 }, { e:pending() })
  end)

  it("refuses CR, LF and NUL in headers without sending", function()
    local e = core.engine{}
    for _, h in ipairs{ { Authorization = "Bearer a\r\nX: y" }, { ["X\nY"] = "v" }, { X = "a\0b" } } do
      local id, msg = e:submit{ url = "https://127.0.0.1:1/", headers = h }
      assert.is_nil(id)
      assert.matches("CR, LF, NUL", msg, 1, true)
      assert.is_nil(msg:find("Bearer a", 1, true))
    end
    assert.same({ 0, 0, 0 }, { e:pending() })
  end)

  it("reports libcurl's version and HTTP/2 support", function()
    local version, h2 = core.curl_version()
    assert.matches("^%d+%.%d+", version)
    assert.is_boolean(h2)
  end)
end)

describe("engine transfers #emulator", function()
  local emu, token

  setup(function()
    emu = helpers.start_emulator()
    token = emu:token{ username = "approver", scope = "codesign:approve" }
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:clear_faults() end)

  local function body(i)
    return cjson.encode{ Dn = helpers.DN_PROD, Data = helpers.SHA256_B64, Comment = "engine " .. i,
                         User = helpers.USER }
  end

  local function submit(e, i)
    return assert(e:submit{ method = "POST", url = emu.url .. "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create",
      headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" }, body = body(i) })
  end

  it("runs many transfers concurrently over a bounded set of connections", function()
    local e <close> = core.engine{ ca_file = emu.ca, max_connections = 4 }
    local ids = {}
    for i = 1, 40 do ids[submit(e, i)] = true end
    local done, connections = 0, 0
    while done < 40 do
      for _, r in ipairs(e:poll(5)) do
        assert.is_true(ids[r.id])
        ids[r.id] = nil
        assert.same({ 200, 0, true }, { r.status, r.curl_code, r.sent })
        assert.matches('"Success":%s*true', r.body)
        assert.matches("application/json", r.content_type, 1, true)
        connections = connections + r.new_connections
        done = done + 1
      end
    end
    assert.is_nil(next(ids))
    assert.is_true(connections <= 4, "opened " .. connections .. " connections")
  end)

  it("keeps results of other transfers for poll while perform waits for its own", function()
    local e <close> = core.engine{ ca_file = emu.ca }
    local first = submit(e, 1)
    local r = e:perform{ method = "GET", url = emu.url .. "/vedauth/authorize/verify",
                         headers = { Authorization = "Bearer " .. token } }
    assert.equal(200, r.status)
    local got = {}
    while #got == 0 do got = e:poll(5) end
    assert.equal(first, got[1].id)
  end)

  it("returns Retry-After and says whether request bytes were sent", function()
    emu:fault{ kind = "status", status = 503, retry_after = "7" }
    local e <close> = core.engine{ ca_file = emu.ca }
    local r = e:perform{ url = emu.url .. "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create",
                         headers = { Authorization = "Bearer " .. token }, body = body(1) }
    assert.same({ 503, "7", true }, { r.status, r.retry_after, r.sent })
    local refused = e:perform{ url = "https://127.0.0.1:1/" }
    assert.same({ 0, 7, false }, { refused.status, refused.curl_code, refused.sent })
  end)

  it("keeps two engines in one state independent", function()
    local a <close> = core.engine{ ca_file = emu.ca }
    local b <close> = core.engine{}
    local ra = a:perform{ method = "GET", url = emu.url .. "/vedauth/authorize/verify",
                          headers = { Authorization = "Bearer " .. token } }
    local rb = b:perform{ method = "GET", url = emu.url .. "/vedauth/authorize/verify" }
    assert.equal(200, ra.status)
    assert.equal(60, rb.curl_code) -- b does not trust the emulator's CA
    a:close()
    assert.equal(60, b:perform{ method = "GET", url = emu.url .. "/" }.curl_code)
  end)

  it("trusts ca_file alone when ca_replace is set", function()
    local e <close> = core.engine{ ca_file = emu.ca, ca_replace = true }
    local r = e:perform{ method = "GET", url = emu.url .. "/vedauth/authorize/verify",
                         headers = { Authorization = "Bearer " .. token } }
    assert.equal(200, r.status)
  end)
end)
