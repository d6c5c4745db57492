-- The client against the emulator over HTTPS: results, every error path,
-- fault injection with exact request counts, TLS failures and secrets.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"

local PATH = "PreQualify/Create"

local function request(overrides)
  local t = {
    dn = helpers.DN_PROD,
    data = helpers.SHA256_B64,
    comment = "release 4.2 build 118",
    user = helpers.USER,
  }
  for k, v in pairs(overrides or {}) do t[k] = v end
  return t
end

describe("client #emulator", function()
  local emu, token

  local function client(opts)
    local o = { url = emu.url, token = token, ca_file = emu.ca,
                retries = { max = 3, base_delay = 0.01, max_delay = 2 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(prequalify.client(o))
  end

  hooks.emulator({ token = "codesign:approve" }, function(e, t) emu, token = e, t end)

  describe("on success", function()
    it("pre-qualifies a hash that the simulated signing then accepts", function()
      local c = client()
      local res, err = c:prequalify(request{ single_use = true })
      assert.is_nil(err)
      assert.same({ true, 200, 1, "Success", 1 },
        { res.ok, res.status, res.result, res.result_name, res.attempts })
      assert.is_number(res.elapsed)
      local allowed = emu:sign{ dn = helpers.DN_PROD, data = helpers.SHA256_B64, user = helpers.USER }
      assert.is_true(allowed)
      allowed = emu:sign{ dn = helpers.DN_PROD, data = helpers.SHA256_B64, user = helpers.USER }
      assert.is_false(allowed)
    end)

    it("accepts a normalized request as well as a plain table", function()
      local req = assert(prequalify.request(request()))
      assert.is_true(client():prequalify(req).ok)
    end)

    it("sends to the contract path when prequalify_path says so", function()
      local c = client{ prequalify_path = "contract" }
      assert.is_true(c:prequalify(request()).ok)
      assert.equal(1, emu:received("actions/codesign/prequalify/Create"))
    end)

    it("sends Hours and SingleUse as given and lets the server default them otherwise", function()
      local c = client()
      assert(c:prequalify(request{ hours = 2, single_use = true }))
      assert(c:prequalify(request{ data = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }))
      local items = emu:prequalifications().items
      assert.equal(2, #items)
      table.sort(items, function(a, b) return a.created < b.created end)
      assert.is_true(items[1].single_use)
      assert.is_false(items[2].single_use)
      assert.near(2 * 3600, items[1].expiry - items[1].created, 5)
      assert.near(24 * 3600, items[2].expiry - items[2].created, 5)
    end)

    it("reuses one connection for many sequential calls", function()
      local connections = 0
      local c = client{ on_event = function(ev)
        if ev.event == "response" then connections = connections + (ev.new_connections or 0) end
      end }
      for _ = 1, 20 do assert(c:prequalify(request())) end
      assert.equal(1, connections)
    end)
  end)

  describe("on a refusal by the server", function()
    local cases = {
      { "an unknown environment", { dn = [[\VED\Code Signing\Projects\Sample\Nowhere]] }, 7, "ObjectNotFound" },
      { "an environment without a Pre-Qualified Signature action", { dn = helpers.DN_LEGACY }, 3001,
        "ValueProhibitedByTemplate" },
      { "a user who is not a Key User", { user = "local:other-user" }, 1002, "UserNotFound" },
      { "a group instead of a person", { user = "local:cs-signers" }, 1002, "UserNotFound" },
    }
    for _, case in ipairs(cases) do
      it("reports " .. case[4] .. " for " .. case[1], function()
        local res, err = client():prequalify(request(case[2]))
        assert.is_nil(res)
        assert.same({ "server", "rejected", case[3], case[4], 200 },
          { err.kind, err.outcome, err.result, err.result_name, err.status })
        assert.matches(case[4], tostring(err), 1, true)
        assert.equal(1, emu:received(PATH))
      end)
    end

    it("reports InsufficientPermission when the caller is not a Key Use Approver", function()
      token = emu:token{ username = "sample-cs-user", scope = "codesign:approve" }
      local _, err = client():prequalify(request())
      assert.same({ "server", 2, "InsufficientPermission" }, { err.kind, err.result, err.result_name })
    end)

    it("keeps the number of a result code it does not know", function()
      emu:fault{ kind = "status", status = 200, body = '{"Success":false,"Result":4242,"Error":"new code"}' }
      local _, err = client():prequalify(request())
      assert.same({ "server", 4242, "Unknown(4242)" }, { err.kind, err.result, err.result_name })
    end)
  end)

  describe("on HTTP errors", function()
    it("classifies 401 as auth and does not retry it with the same static token", function()
      token = "not-a-real-token"
      local _, err = client():prequalify(request())
      assert.same({ "auth", 401, "rejected" }, { err.kind, err.status, err.outcome })
      assert.equal(1, emu:received(PATH))
    end)

    it("classifies 403 as forbidden and names the missing scope", function()
      token = emu:token{ username = "approver", scope = "configuration" }
      local _, err = client():prequalify(request())
      assert.same({ "forbidden", 403, "codesign:approve" }, { err.kind, err.status, err.scope })
      assert.matches("missing scope codesign:approve", err.message, 1, true)
    end)

    it("classifies a 400 as http with the server's Error text", function()
      emu:fault{ kind = "status", status = 400, body = '{"Error":"Data is not valid Base64"}' }
      local _, err = client():prequalify(request())
      assert.same({ "http", 400, "rejected" }, { err.kind, err.status, err.outcome })
      assert.matches("Data is not valid Base64", err.message, 1, true)
    end)

    it("understands the OAuth error shape", function()
      emu:fault{ kind = "status", status = 400, body = '{"error":"invalid_request","error_description":"bad thing"}' }
      local _, err = client():prequalify(request())
      assert.matches("invalid_request: bad thing", err.message, 1, true)
    end)
  end)

  describe("with injected faults", function()
    it("retries a 429 and succeeds, sending exactly twice", function()
      emu:fault{ kind = "status", status = 429, count = 1 }
      local res = assert(client():prequalify(request()))
      assert.equal(2, res.attempts)
      assert.equal(2, emu:received(PATH))
      assert.equal(1, #emu:prequalifications().items)
    end)

    it("honours Retry-After on a 503 and retries", function()
      emu:fault{ kind = "status", status = 503, retry_after = "1", count = 1 }
      local t0 = prequalify.core.monotonic()
      local res = assert(client():prequalify(request()))
      assert.is_true(prequalify.core.monotonic() - t0 >= 0.9)
      assert.equal(2, res.attempts)
      assert.equal(2, emu:received(PATH))
    end)

    it("gives up after three attempts in all", function()
      emu:fault{ kind = "status", status = 429, count = 10 }
      local _, err = client():prequalify(request())
      assert.same({ "http", 429, 3 }, { err.kind, err.status, err.attempts })
      assert.equal(3, emu:received(PATH))
    end)

    it("does not retry at all with retries = false", function()
      emu:fault{ kind = "status", status = 429, count = 10 }
      local _, err = client{ retries = false }:prequalify(request())
      assert.equal(1, err.attempts)
      assert.equal(1, emu:received(PATH))
    end)

    it("gives up when Retry-After asks for longer than max_delay", function()
      emu:fault{ kind = "status", status = 503, retry_after = "3600", count = 1 }
      local _, err = client():prequalify(request())
      assert.same({ "http", 503, 3600, 1 }, { err.kind, err.status, err.retry_after, err.attempts })
    end)

    it("does not retry a 503 without Retry-After", function()
      emu:fault{ kind = "status", status = 503, count = 1 }
      local _, err = client():prequalify(request())
      assert.same({ "http", 503, false }, { err.kind, err.status, err.retryable })
      assert.equal(1, emu:received(PATH))
    end)

    for _, status in ipairs{ 500, 502, 504 } do
      it("reports HTTP " .. status .. " as outcome unknown and never resends it", function()
        emu:fault{ kind = "status", status = status, count = 5 }
        local _, err = client():prequalify(request())
        assert.same({ "http", status, "unknown" }, { err.kind, err.status, err.outcome })
        assert.equal(1, emu:received(PATH))
      end)
    end

    it("resends an unknown outcome only when the caller opts in", function()
      emu:fault{ kind = "status", status = 502, count = 1 }
      local res = assert(client{ retry_unknown = true }:prequalify(request()))
      assert.equal(2, res.attempts)
      assert.equal(2, emu:received(PATH))
    end)

    it("reports a dropped connection after sending as unknown, although the server acted", function()
      emu:fault{ kind = "drop", process = true }
      local _, err = client():prequalify(request())
      assert.same({ "transport", "unknown" }, { err.kind, err.outcome })
      assert.equal(1, emu:received(PATH))
      assert.equal(1, #emu:prequalifications().items)
    end)

    it("does not let libcurl silently resend when a reused connection drops", function()
      -- libcurl retries a request on a fresh connection when a reused one
      -- dies before any reply byte; for a pre-qualification that is a
      -- duplicate approval, so the engine refuses it.
      local c = client()
      assert(c:prequalify(request()))
      emu:fault{ kind = "drop", process = true }
      local _, err = c:prequalify(request())
      assert.same({ "transport", "unknown", 1 }, { err.kind, err.outcome, err.attempts })
      assert.equal(2, emu:received(PATH))
      assert.equal(2, #emu:prequalifications().items)
    end)

    it("reports a reset in the middle of the body as unknown", function()
      emu:fault{ kind = "drop_mid_body" }
      local _, err = client():prequalify(request())
      assert.same({ "transport", "unknown" }, { err.kind, err.outcome })
      assert.equal(1, emu:received(PATH))
    end)

    it("reports a reply that is not JSON as protocol, outcome unknown", function()
      emu:fault{ kind = "malformed" }
      local _, err = client():prequalify(request())
      assert.same({ "protocol", "unknown", 200 }, { err.kind, err.outcome, err.status })
      assert.equal(1, emu:received(PATH))
    end)

    it("aborts an oversized reply instead of buffering it", function()
      emu:fault{ kind = "oversized" }
      local _, err = client{ max_response = 64 * 1024 }:prequalify(request())
      assert.same({ "protocol", "unknown" }, { err.kind, err.outcome })
      assert.matches("max_response", err.message, 1, true)
      assert.equal(1, emu:received(PATH))
    end)

    it("times out a delayed reply as unknown and does not resend it", function()
      emu:fault{ kind = "delay", delay = 3 }
      local _, err = client{ timeout = 1 }:prequalify(request())
      assert.same({ "transport", "unknown", 28 }, { err.kind, err.outcome, err.curl_code })
      assert.equal(1, emu:received(PATH))
    end)

    it("times out a slow trickle as unknown", function()
      emu:fault{ kind = "trickle", delay = 0.2 }
      local _, err = client{ timeout = 1 }:prequalify(request())
      assert.same({ "transport", "unknown" }, { err.kind, err.outcome })
      assert.equal(1, emu:received(PATH))
    end)

    it("does not follow a redirect; its target receives nothing", function()
      local other = helpers.start_emulator()
      emu:fault{ kind = "status", status = 302,
                 headers = { Location = other.url .. "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create" } }
      local _, err = client():prequalify(request())
      local received_by_target = other:received("")
      other:stop()
      assert.same({ "http", 302, "rejected" }, { err.kind, err.status, err.outcome })
      assert.equal(0, received_by_target)
    end)
  end)

  describe("on transport failures", function()
    it("refuses an untrusted certificate as transport, not sent", function()
      local c = assert(prequalify.client{ url = emu.url, token = token, retries = false })
      local _, err = c:prequalify(request())
      assert.same({ "transport", "not_sent" }, { err.kind, err.outcome })
      assert.matches("not trusted", err.message, 1, true)
      assert.equal(0, emu:received(PATH))
    end)

    it("refuses a certificate for another host name", function()
      -- The emulator's certificate names localhost and 127.0.0.1 only.
      local other = helpers.start_emulator{ args = { "--host", "127.0.0.2" } }
      local port = other.url:match(":(%d+)$")
      local c = assert(prequalify.client{ url = "https://127.0.0.2:" .. port, token = token, ca_file = other.ca,
                                          retries = false })
      local _, err = c:prequalify(request())
      other:stop()
      assert.same({ "transport", "not_sent", 60 }, { err.kind, err.outcome, err.curl_code })
      assert.matches("does not match the host name", err.message, 1, true)
    end)

    it("reports connection refused as not sent and retries it", function()
      local c = client{ url = "https://127.0.0.1:1" }
      local _, err = c:prequalify(request())
      assert.same({ "transport", "not_sent", true, 3 }, { err.kind, err.outcome, err.retryable, err.attempts })
    end)

    it("sends through the proxy given in the options", function()
      -- Nothing listens on the proxy port: the failure proves the proxy was used.
      local c = client{ proxy = "http://127.0.0.1:1", noproxy = "", retries = false }
      local _, err = c:prequalify(request())
      assert.same({ "transport", "not_sent" }, { err.kind, err.outcome })
      assert.matches("127.0.0.1 port 1", err.message, 1, true)
      assert.equal(0, emu:received(PATH))
    end)

    it("fails closed when a pinned public key does not match", function()
      local c = client{ pinned_pubkey = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", retries = false }
      local _, err = c:prequalify(request())
      assert.same({ "transport", "not_sent" }, { err.kind, err.outcome })
      assert.matches("pinned", err.message, 1, true)
      assert.equal(0, emu:received(PATH))
    end)
  end)

  describe("with secrets", function()
    it("refuses a token holding CR or LF before anything is sent", function()
      for _, bad in ipairs{ token .. "\r\nX-Evil: 1", token .. "\n", "a\0b" } do
        local _, err = client{ token = bad }:prequalify(request())
        assert.same({ "invalid", "not_sent" }, { err.kind, err.outcome })
        assert.is_nil(tostring(err):find(token, 1, true))
      end
      assert.equal(0, emu:received(""))
    end)

    it("never shows the token in tostring, errors or on_event payloads", function()
      local seen = {}
      local c = client{ on_event = function(ev)
        for k, v in pairs(ev) do seen[#seen + 1] = tostring(k) .. "=" .. tostring(v) end
      end }
      emu:fault{ kind = "status", status = 500 }
      local _, err = c:prequalify(request())
      local text = table.concat(seen, "\n") .. tostring(c) .. tostring(err) .. err.message
      assert.is_nil(text:find(token, 1, true))
      for k, v in pairs(c) do
        assert.is_nil(tostring(k):find(token, 1, true))
        assert.is_nil(tostring(v):find(token, 1, true))
      end
    end)
  end)

  describe("Identity/Browse", function()
    it("resolves a PrefixedName to the person's PrefixedUniversal", function()
      token = emu:token{ username = "approver", scope = "codesign:approve;configuration" }
      local universal = assert(client():resolve_user(helpers.USER))
      assert.matches("^local:{%x+%-%x+%-%x+%-%x+%-%x+}$", universal)
      local res = assert(client():prequalify(request{ user = universal }))
      assert.is_true(res.ok)
    end)

    it("returns identities with snake_case fields", function()
      token = emu:token{ username = "approver", scope = "configuration" }
      local found = assert(client():browse_identities{ filter = "sample", limit = 5 })
      assert.is_true(#found >= 1)
      assert.equal("string", type(found[1].prefixed_name))
      assert.equal(false, found[1].is_group)
    end)
  end)

  describe("AddPreApproval", function()
    it("adds a pre-approval with its own fields", function()
      local res, err = client():add_pre_approval{
        dn = helpers.DN_PROD, comment = "one build", user = helpers.USER, hours = 1,
        not_before = "2026-11-26T18:00:00Z", ip_address = "10.0.0.5",
        signing_executable = [[C:\Program Files\signtool.exe]], single_use = true,
      }
      assert.is_nil(err)
      assert.is_true(res.ok)
      -- What the server stored, field by field, is what was asked for.
      local stored = emu:preapprovals()
      assert.equal(1, stored.count)
      local p = stored.items[1]
      assert.equal(helpers.DN_PROD, p.dn)
      assert.equal(helpers.USER, p.user_name)
      assert.equal("one build", p.comment)
      assert.equal(1, p.hours)
      assert.equal(1795716000, p.not_before) -- 2026-11-26T18:00:00Z
      assert.equal(1795716000 + 3600, p.expiry)
      assert.equal("10.0.0.5", p.ip)
      assert.equal([[C:\Program Files\signtool.exe]], p.executable)
      assert.is_true(p.single_use)
    end)

    it("rejects a NotBefore that is not UTC ISO 8601", function()
      local _, err = client():add_pre_approval{ dn = helpers.DN_PROD, comment = "x", user = helpers.USER,
                                                not_before = "tomorrow" }
      assert.same({ "invalid", "not_before" }, { err.kind, err.field })
      assert.equal(0, emu:received(""))
    end)
  end)
end)

describe("client options", function()
  it("refuses an http:// url unless allow_insecure_http is set, and says why", function()
    local c, err = prequalify.client{ url = "http://127.0.0.1:1", token = "t" }
    assert.is_nil(c)
    assert.same({ "invalid", "url" }, { err.kind, err.field })
    assert.matches("clear text", err.message, 1, true)
    assert.truthy(prequalify.client{ url = "http://127.0.0.1:1", token = "t", allow_insecure_http = true })
  end)

  it("rejects an unknown option by name", function()
    local _, err = prequalify.client{ url = "https://x", token = "t", verify = false }
    assert.same({ "invalid", "verify" }, { err.kind, err.field })
    assert.matches("unknown client option 'verify'", err.message, 1, true)
  end)

  it("rejects options of the wrong type", function()
    local _, err = prequalify.client{ url = "https://x", token = "t", timeout = "30" }
    assert.same({ "invalid", "timeout" }, { err.kind, err.field })
  end)

  it("refuses a url with a query string or fragment, naming the rule without echoing it", function()
    for _, url in ipairs{ "https://host/?token=abc", "https://host/#token=abc", "host?token=abc" } do
      local c, err = prequalify.client{ url = url, token = "t" }
      assert.is_nil(c)
      assert.same({ "invalid", "url" }, { err.kind, err.field })
      assert.matches("query string or fragment", tostring(err), 1, true)
      assert.is_nil(tostring(err):find("abc", 1, true))
    end
  end)

  it("rejects a url with credentials or without a scheme", function()
    assert.is_nil((prequalify.client{ url = "https://u:p@tpp.example", token = "t" }))
    assert.is_nil((prequalify.client{ url = "tpp.example", token = "t" }))
  end)

  it("rejects a ca_file that cannot be read", function()
    local _, err = prequalify.client{ url = "https://x", token = "t", ca_file = "/nonexistent/ca.pem" }
    assert.same({ "invalid", "ca_file" }, { err.kind, err.field })
  end)

  it("raises for an options argument that is not a table", function()
    assert.error_matches(function() prequalify.client("https://x") end,
      "prequalify.client: expected a table of options, got string", 1, true)
  end)

  it("strips a trailing slash or /vedsdk from the url", function()
    local c = assert(prequalify.client{ url = "https://tpp.example/vedsdk/", token = "t" })
    assert.equal("https://tpp.example", c.url)
  end)

  it("can be closed with <close> and refuses use afterwards", function()
    local outer
    do
      local c <close> = assert(prequalify.client{ url = "https://x", token = "t" })
      outer = c
    end
    assert.matches("closed", tostring(outer))
    assert.has_error(function() outer:prequalify{} end, "attempt to use a closed client")
  end)
end)

describe("the retry decision (retry.next)", function()
  local retry = require "prequalify.retry"
  local errors = require "prequalify.errors"
  local settings = assert(retry.settings{ max = 3, base_delay = 1, max_delay = 10 })
  local function half() return 0.5 end

  it("asks for one re-authentication after a 401, and gives up on the next", function()
    local err = errors.new("auth", "HTTP 401", { status = 401, outcome = "rejected" })
    assert.equal("reauth", retry.next(err, 1, settings, { reauths = 0 }))
    assert.is_nil(retry.next(err, 1, settings, { reauths = 1 }))
    assert.equal("reauth", retry.next(err, 1, settings, { reauths = 1, max_reauths = 2 }))
  end)

  it("repeats a not-sent failure with backoff until retries.max attempts were made", function()
    local err = errors.new("transport", "connect refused", { outcome = "not_sent", retryable = true })
    assert.same({ "retry", 0.5 }, { retry.next(err, 1, settings, { random = half }) })
    assert.same({ "retry", 1.0 }, { retry.next(err, 2, settings, { random = half }) })
    assert.is_nil(retry.next(err, 3, settings, { random = half }))
  end)

  it("repeats an unknown outcome only when the caller opted in", function()
    local err = errors.new("transport", "reset after send", { outcome = "unknown" })
    assert.is_nil(retry.next(err, 1, settings))
    assert.equal("retry", (retry.next(err, 1, settings, { retry_unknown = true })))
  end)

  it("waits for a server's Retry-After, and gives up when it is longer than max_delay", function()
    local soon = errors.new("http", "busy", { status = 503, retryable = true, retry_after = 4 })
    assert.same({ "retry", 4 }, { retry.next(soon, 1, settings, { random = half }) })
    local late = errors.new("http", "busy", { status = 503, retryable = true, retry_after = 60 })
    assert.is_nil(retry.next(late, 1, settings))
  end)
end)
