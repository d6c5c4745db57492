-- vedauth grants against the emulator: sign-in, refresh before expiry and on
-- 401, rotation through a shared refresh_token_file (also across processes),
-- token_info, revoke, the errors users meet, and that no secret leaks into
-- anything a user or a log could see. Time moves with the emulator's clock
-- (and a matching client clock), never with sleeps.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cjson = require "cjson"
local prequalify = require "prequalify"
local client_mod = require "prequalify.client"
local vedauth = require "prequalify.transport.vedauth"
local core = require "prequalify.core"

local CLIENT_ID = helpers.CLIENT_ID
local LIFETIME = 60 -- access token lifetime in the emulator, seconds
local WRONG_PASSWORD = "wrong-pass-7Qx9Zk3"

describe("vedauth grants #emulator", function()
  local emu, dir
  local clock, advance, reset_clock -- a client clock that follows the emulator's
  local captured = {}            -- every text a user or a log could see
  local secrets = {}             -- every secret seen, as a set
  local warnings = {}            -- warnings of the current test
  local order = {}               -- "warn" / "request" events of the current test
  local clients = {}

  local function secret(s)
    if type(s) == "string" and #s >= 4 then secrets[s] = true end
  end

  local function capture(what, text)
    captured[#captured + 1] = what .. ": " .. tostring(text)
  end

  local function capture_error(err)
    if not err then return end
    capture("error", tostring(err))
    for k, v in pairs(err) do
      if type(v) == "string" then capture("error." .. k, v) end
    end
    if type(err.cause) == "table" then capture_error(err.cause) end
  end

  -- Every token a grant reply hands to a client is a secret (see lazy_setup).
  local function note_reply(doc)
    if type(doc) ~= "table" then return end
    secret(doc.access_token)
    secret(doc.refresh_token)
  end

  local function harvest(c)
    capture("client", tostring(c))
  end

  local function client(opts)
    opts.url, opts.ca_file = emu.url, emu.ca
    opts.warn = function(msg)
      warnings[#warnings + 1] = msg
      order[#order + 1] = "warn"
      capture("warn", msg)
    end
    opts.on_event = function(ev)
      if ev.event == "request" then order[#order + 1] = "request " .. tostring(ev.what) end
      capture("event", cjson.encode(ev))
    end
    local c, err = prequalify.client(opts)
    capture_error(err)
    if c then
      clients[#clients + 1] = c
      harvest(c)
    end
    return c, err
  end

  -- Calls c:method(...), harvests the client's secrets and captures the error.
  local function try(c, method, ...)
    local res, err = c[method](c, ...)
    harvest(c)
    capture_error(err)
    if res then capture("result", cjson.encode(res)) end
    return res, err
  end

  local function request()
    return { dn = helpers.DN_PROD, data = helpers.SHA256_B64, comment = "grant spec", user = helpers.USER }
  end

  local function password_auth(extra)
    local a = { client_id = CLIENT_ID, username = helpers.APPROVER, password = helpers.APPROVER_PASSWORD }
    for k, v in pairs(extra or {}) do a[k] = v end
    return a
  end

  -- A grant minted behind the client's back; returns access and refresh token.
  local function mint(opts)
    local access, reply = emu:token(opts)
    secret(access)
    secret(reply.refresh_token)
    return access, reply.refresh_token, reply
  end

  local function token_file(name, text, mode)
    local path = dir .. "/" .. name
    helpers.write_file(path, text .. "\n", mode or "600")
    return path
  end

  local function statuses(path)
    local list = {}
    for _, item in ipairs(emu:requests(path).items) do list[#list + 1] = item.status end
    return list
  end

  local function count(list, value)
    local n = 0
    for _, v in ipairs(list) do if v == value then n = n + 1 end end
    return n
  end

  local CREATE = "/PreQualify/Create"
  local TOKEN = "/vedauth/authorize/token"
  local OAUTH = "/vedauth/authorize/oauth"

  local real_post = vedauth.post

  hooks.emulator({ start = { token_lifetime = LIFETIME, refresh_lifetime = 3600 }, reset = true, dir = "block",
                   lazy = true }, function(e, _, d) emu, dir = e, d end)

  lazy_setup(function()
    vedauth.post = function(...)
      local doc, status = real_post(...)
      note_reply(doc)
      return doc, status
    end
    clock, advance, reset_clock = emu:shared_clock()
    secret(helpers.APPROVER_PASSWORD)
    secret(WRONG_PASSWORD)
  end)

  lazy_teardown(function()
    vedauth.post = real_post
  end)

  before_each(function()
    reset_clock()
    warnings, order = {}, {}
  end)

  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    clients = {}
  end)

  describe("refresh", function()
    it("obtains a grant on first use and refreshes it before it expires, with no request failing", function()
      local c = assert(client{ auth = password_auth{ clock = clock } })
      assert.equal(0, emu:received(OAUTH)) -- nothing is sent before the first call
      for _ = 1, 6 do
        local res, err = try(c, "prequalify", request())
        assert.is_nil(err)
        assert.is_true(res.ok)
        -- 45 s of 60: 15 s remain, less than the default margin (30 s).
        advance(45)
      end
      assert.equal(1, emu:received(OAUTH))
      assert.equal(5, emu:received(TOKEN))
      assert.same({ 200, 200, 200, 200, 200, 200 }, statuses(CREATE))
      assert.equal(0, count(statuses(""), 401))
    end)

    it("does not refresh while more than the margin remains", function()
      local c = assert(client{ auth = password_auth{ clock = clock, refresh_margin = 10 } })
      assert(try(c, "prequalify", request()))
      advance(45) -- 15 s remain, more than the 10 s margin
      assert(try(c, "prequalify", request()))
      assert.equal(0, emu:received(TOKEN))
      advance(10) -- 5 s remain
      assert(try(c, "prequalify", request()))
      assert.equal(1, emu:received(TOKEN))
    end)

    it("refreshes once when the server answers 401 and repeats the request", function()
      local c = assert(client{ auth = password_auth() })
      assert(try(c, "prequalify", request()))
      -- The client's own clock does not move: only the server sees the expiry.
      emu:advance_clock(LIFETIME + 1)
      local res, err = try(c, "prequalify", request())
      assert.is_nil(err)
      assert.is_true(res.ok)
      assert.same({ 200, 401, 200 }, statuses(CREATE))
      assert.equal(1, emu:received(TOKEN))
    end)

    it("gives up after one refresh when the server still answers 401, and says so", function()
      local c = assert(client{ auth = password_auth() })
      assert(try(c, "prequalify", request()))
      emu:fault{ kind = "status", status = 401, path = CREATE, count = 2,
                 body = '{"error":"invalid_token","error_description":"The access token is unknown"}' }
      local res, err = try(c, "prequalify", request())
      assert.is_nil(res)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.matches("a fresh token was obtained once and the server still answered 401", err.message, 1, true)
      assert.equal(1, emu:received(TOKEN))
      assert.same({ 200, 401, 401 }, statuses(CREATE))
    end)

    it("says why no fresh token could be had when the grant was revoked elsewhere", function()
      local access, refresh = mint()
      local c = assert(client{ auth = { client_id = CLIENT_ID, refresh_token = refresh } })
      assert(try(c, "prequalify", request()))
      local other = assert(client{ token = access }) -- same grant, another holder
      assert(try(other, "revoke"))
      local res, err = try(c, "prequalify", request())
      assert.is_nil(res)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.matches("no fresh token: the refresh token was refused (invalid_grant)", err.message, 1, true)
      assert.equal("invalid_grant", err.cause.error_code)
    end)

    it("refreshes once for several 401s that refused the same old token", function()
      -- At the seam the batch uses: the client's transport.
      local t = assert(client_mod.transport{ url = emu.url, ca_file = emu.ca, auth = password_auth() })
      local refused = assert(t:headers(false)).Authorization
      emu:advance_clock(LIFETIME + 1)
      assert.is_true(t:unauthorized(refused))
      assert.is_true(t:unauthorized(refused)) -- a second in-flight request
      assert.equal(1, emu:received(TOKEN))
      local res = t:call("POST", client_mod.DEFAULT_PATH, prequalify.encode(assert(prequalify.request(request()))))
      t:close()
      assert.is_true(res.ok)
      assert.equal(0, count(statuses(CREATE), 401))
    end)

    it("signs in again with the password when the grant itself has expired", function()
      local c = assert(client{ auth = password_auth{ clock = clock } })
      assert(try(c, "prequalify", request()))
      advance(3601) -- past refresh_until
      local res, err = try(c, "prequalify", request())
      assert.is_nil(err)
      assert.is_true(res.ok)
      assert.equal(2, emu:received(OAUTH))
      assert.same({ 400 }, statuses(TOKEN))
    end)
  end)

  describe("rotation", function()
    it("replaces the refresh token at once, and the server refuses the old one", function()
      local _, first = mint()
      local path = token_file("rotate.token", first)
      local c = assert(client{ auth = { client_id = CLIENT_ID, refresh_token_file = path } })
      assert(try(c, "token_info"))
      local second = assert(helpers.read_file(path)):gsub("%s+$", "")
      secret(second)
      assert.are_not.equal(first, second)
      assert.equal(tonumber("600", 8), core.file_mode(path))

      local stale = assert(client{ auth = { client_id = CLIENT_ID, refresh_token = first } })
      local res, err = try(stale, "token_info")
      assert.is_nil(res)
      assert.equal("auth", err.kind)
      assert.equal("invalid_grant", err.error_code)
      assert.matches("A refresh token works only once", err.message, 1, true)
      assert.matches("another process or an earlier run may already have used this one", err.message, 1, true)
      assert.matches("client_id must also be the one of the API integration that issued the grant",
        err.message, 1, true)

      -- The rotated token still works for the client that holds it.
      assert(try(c, "prequalify", request()))
    end)

    it("adopts a token that another client rotated in the shared file instead of spending its own", function()
      local _, first = mint()
      local path = token_file("shared.token", first)
      local a = assert(client{ auth = { client_id = CLIENT_ID, refresh_token_file = path, refresh_margin = 1e9 } })
      local b = assert(client{ auth = { client_id = CLIENT_ID, refresh_token_file = path, refresh_margin = 1e9 } })
      for _ = 1, 3 do
        assert(try(a, "token_info"))
        assert(try(b, "token_info"))
      end
      assert.same({ 200, 200, 200, 200, 200, 200 }, statuses(TOKEN))
      assert.equal(3, b:auth_info().adopted)
      assert.equal(2, a:auth_info().adopted)
    end)

    it("lets two processes share one refresh_token_file through many refreshes without invalid_grant", function()
      local _, first = mint()
      local path = token_file("processes.token", first)
      local rounds = 25
      local env = "LUA_PATH=" .. helpers.shell_quote(package.path)
        .. " LUA_CPATH=" .. helpers.shell_quote(package.cpath)
      local workers = {}
      for i = 1, 2 do
        local out = dir .. "/worker" .. i .. ".out"
        local cmd = env .. " lua5.4 " .. helpers.shell_quote(helpers.ROOT .. "/spec/fixtures/refresh_worker.lua")
          .. " " .. helpers.shell_quote(emu.url) .. " " .. helpers.shell_quote(emu.ca)
          .. " " .. helpers.shell_quote(path) .. " " .. rounds .. " >" .. helpers.shell_quote(out) .. " 2>&1"
        capture("command", cmd)
        workers[i] = { pipe = assert(io.popen(cmd, "w")), out = out }
      end
      -- Both have read the file and wait; release them together.
      for _, w in ipairs(workers) do
        w.pipe:write("go\n")
        w.pipe:flush()
      end
      local total_refreshes = 0
      for i, w in ipairs(workers) do
        assert.is_true(w.pipe:close(), "worker " .. i .. " failed")
        local text = assert(helpers.read_file(w.out))
        capture("worker " .. i, text)
        local ok, failed, bad, refreshes = text:match("DONE ok=(%d+) failed=(%d+) invalid_grant=(%d+) refreshes=(%d+)")
        assert.is_truthy(ok, text)
        assert.equal(rounds, tonumber(ok), text)
        assert.equal(0, tonumber(failed), text)
        assert.equal(0, tonumber(bad), text)
        total_refreshes = total_refreshes + tonumber(refreshes)
      end
      assert.equal(2 * rounds, total_refreshes)
      local token_statuses = statuses(TOKEN)
      assert.equal(2 * rounds, #token_statuses)
      assert.equal(2 * rounds, count(token_statuses, 200))
      assert.equal(tonumber("600", 8), core.file_mode(path))

      -- The file holds the last, still unspent token.
      local last = assert(helpers.read_file(path)):gsub("%s+$", "")
      secret(last)
      local after = assert(client{ auth = { client_id = CLIENT_ID, refresh_token_file = path } })
      assert(try(after, "token_info"))
    end)
  end)

  describe("token_info and revoke", function()
    it("reports identity, scopes and expiry as numbers", function()
      local c = assert(client{ auth = password_auth{ scope = "codesign:approve;configuration" } })
      local info = assert(try(c, "token_info"))
      assert.equal("local:{9f3e6a21-0c4b-4d7e-8a15-2b6c9d0e4f78}", info.identity)
      assert.equal("codesign:approve;configuration", info.scope)
      assert.same({ codesign = { approve = true }, configuration = {} }, info.scopes)
      assert.equal("number", type(info.valid_for))
      assert.is_true(info.valid_for > 0 and info.valid_for <= LIFETIME)
      assert.equal("number", type(info.expires))
      assert.near(core.time() + info.valid_for, info.expires, 2)
      assert.equal("number", type(info.grant_expires))
      assert.near(core.time() + 3600, info.grant_expires, 5)
      assert.equal("number", type(info.grant_issued))
    end)

    it("revokes a token, after which the token is refused, and revoking again still succeeds", function()
      local access = mint()
      local c = assert(client{ token = access })
      assert(try(c, "prequalify", request()))
      local res = assert(try(c, "revoke"))
      assert.is_true(res.ok)
      assert.is_false(res.already)

      local again, err = try(c, "prequalify", request())
      assert.is_nil(again)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.matches("revoked", err.message)
      assert.matches("a static token cannot be refreshed", err.message, 1, true)

      local twice = assert(try(c, "revoke"))
      assert.is_true(twice.ok)
      assert.is_true(twice.already)
    end)

    it("revokes a grant together with its refresh token", function()
      local _, first = mint()
      local path = token_file("revoke.token", first)
      local c = assert(client{ auth = { client_id = CLIENT_ID, refresh_token_file = path } })
      assert(try(c, "prequalify", request()))
      assert(try(c, "revoke"))
      local res, err = try(c, "prequalify", request())
      assert.is_nil(res)
      assert.matches("revoked with client:revoke()", err.message, 1, true)
      assert.is_true(assert(try(c, "revoke")).already)

      local later = assert(client{ auth = { client_id = CLIENT_ID, refresh_token_file = path } })
      local _, lerr = try(later, "token_info")
      assert.equal("invalid_grant", lerr.error_code)
    end)
  end)

  describe("token_file", function()
    it("is re-read after a 401, so a token that another process rotated keeps working", function()
      local t1 = mint()
      local path = token_file("access.token", t1)
      local c = assert(client{ token_file = path })
      assert(try(c, "prequalify", request()))
      assert(try(assert(client{ token = t1 }), "revoke"))
      local t2 = mint()
      helpers.write_file(path, t2 .. "\n", "600")
      local res, err = try(c, "prequalify", request())
      assert.is_nil(err)
      assert.is_true(res.ok)
      assert.same({ 200, 401, 200 }, statuses(CREATE))
    end)

    it("says so when the file still holds the token that was refused", function()
      local t1 = mint()
      local path = token_file("stale.token", t1)
      local c = assert(client{ token_file = path })
      assert(try(assert(client{ token = t1 }), "revoke"))
      local res, err = try(c, "prequalify", request())
      assert.is_nil(res)
      assert.equal(401, err.status)
      assert.matches("was re-read and still holds the rejected token", err.message, 1, true)
    end)
  end)

  describe("errors", function()
    it("reports a bad password as an auth error naming the field, and sends no request", function()
      local c = assert(client{ auth = password_auth{ password = WRONG_PASSWORD } })
      local res, err = try(c, "prequalify", request())
      assert.is_nil(res)
      assert.equal("auth", err.kind)
      assert.equal("auth.password", err.field)
      assert.equal("not_sent", err.outcome)
      assert.matches("sign-in as 'approver' was refused: the username or password is not valid", err.message, 1, true)
      assert.equal(0, emu:received(CREATE))
    end)

    it("reports a client_id that is not an API integration", function()
      local c = assert(client{ auth = password_auth{ client_id = "no-such-integration" } })
      local _, err = try(c, "prequalify", request())
      assert.equal("auth", err.kind)
      assert.equal("auth.client_id", err.field)
      assert.matches("client_id 'no-such-integration' is not an API integration", err.message, 1, true)
    end)

    it("explains client_id matching when a grant is refreshed under another client_id", function()
      local _, refresh = mint{ client_id = "prequalify" }
      local c = assert(client{ auth = { client_id = "prequalify-readonly", refresh_token = refresh } })
      local _, err = try(c, "token_info")
      assert.equal("invalid_grant", err.error_code)
      assert.matches("the client_id 'prequalify-readonly' is not the one that issued the grant", err.message, 1, true)
    end)

    it("names the missing scope on a 403, after warning before anything was sent", function()
      local c = assert(client{ auth = password_auth{ client_id = "prequalify-readonly", scope = "configuration" } })
      local res, err = try(c, "prequalify", request())
      assert.is_nil(res)
      assert.equal("forbidden", err.kind)
      assert.equal(403, err.status)
      assert.equal("codesign:approve", err.scope)
      assert.matches("missing scope codesign:approve", err.message, 1, true)
      assert.equal("warn", order[1])
      assert.matches("lacks codesign:approve", warnings[1], 1, true)
    end)

    it("warns when a grant resumed from a refresh token lacks codesign:approve", function()
      local _, refresh = mint{ client_id = "prequalify-readonly", scope = "configuration" }
      local c = assert(client{ auth = { client_id = "prequalify-readonly", refresh_token = refresh } })
      assert(try(c, "token_info"))
      assert.equal(1, #warnings)
      assert.matches("the granted scope 'configuration' lacks codesign:approve", warnings[1], 1, true)
    end)

    it("reports a scope that the API integration does not allow", function()
      local c = assert(client{ auth = password_auth{ client_id = "prequalify-readonly" } })
      local _, err = try(c, "prequalify", request())
      assert.equal("auth", err.kind)
      assert.equal("auth.scope", err.field)
      assert.equal("codesign:approve", err.scope)
      assert.matches("does not allow scope 'codesign:approve'", err.message, 1, true)
    end)

    it("reports an expired grant and says to sign in again", function()
      local _, refresh = mint{ refresh_expires_in = 120 }
      local c = assert(client{ auth = { client_id = CLIENT_ID, refresh_token = refresh, clock = clock } })
      assert(try(c, "token_info"))
      advance(180)
      local res, err = try(c, "prequalify", request())
      assert.is_nil(res)
      assert.equal("auth", err.kind)
      assert.is_true(err.expired)
      assert.matches("the grant has expired", err.message, 1, true)
      assert.matches("sign in again", err.message, 1, true)
      assert.equal(0, emu:received(CREATE))
    end)

    it("rejects a malformed auth table with an invalid error naming the field", function()
      local cases = {
        { { client_id = CLIENT_ID, username = "approver", passwd = "x" }, "auth.passwd", "unknown auth field" },
        { { username = "approver", password = "x" }, "auth.client_id", "client_id is required" },
        { { client_id = CLIENT_ID, username = "approver", password = "x", password_file = "/x" },
          "auth.password", "only one of auth.password and auth.password_file" },
        { { client_id = CLIENT_ID, username = "approver" }, "auth.password", "is required with auth.username" },
        { { client_id = CLIENT_ID, password = "x" }, "auth.username", "auth.username is required" },
        { { client_id = CLIENT_ID, refresh_token = "r", refresh_token_file = "/x" },
          "auth.refresh_token", "only one of auth.refresh_token and auth.refresh_token_file" },
        { { client_id = CLIENT_ID, username = "approver", password = "x", refresh_token = "r" },
          "auth.refresh_token", "not both" },
        { { client_id = CLIENT_ID, refresh_token = "r", scope = "codesign:approve" }, "auth.scope", "keeps the grant" },
        { { client_id = CLIENT_ID }, "auth.username", "auth needs a way to sign in" },
        { { client_id = CLIENT_ID, jwt = "a.b.c", jwt_file = "/x" }, "auth.jwt", "only one of auth.jwt" },
        { { client_id = CLIENT_ID, jwt_env = "NOT A NAME" }, "auth.jwt_env", "name of an environment variable" },
        { { client_id = CLIENT_ID, jwt = "a.b.c", username = "approver", password = "x" }, "auth.jwt",
          "give one way to sign in" },
        { { client_id = CLIENT_ID, jwt_file = "/x", refresh_token = "r" }, "auth.refresh_token", "not both" },
        { { client_id = 7, refresh_token = "r" }, "auth.client_id", "must be a string" },
        { { client_id = CLIENT_ID, refresh_token = "r", refresh_margin = -1 }, "auth.refresh_margin", ">= 0" },
        { { client_id = CLIENT_ID, username = "approver", password = "x", scope = "a:b:c" }, "auth.scope", "scope" },
        { { client_id = CLIENT_ID, refresh_token_file = dir .. "/missing" }, "auth.refresh_token_file",
          "could not be read" },
      }
      for _, case in ipairs(cases) do
        local c, err = client{ auth = case[1] }
        assert.is_nil(c)
        assert.equal("invalid", err.kind)
        assert.equal(case[2], err.field)
        assert.matches(case[3], err.message, 1, true)
      end
      local c, err = client{ token = "t0ken", auth = password_auth() }
      assert.is_nil(c)
      assert.equal("invalid", err.kind)
    end)
  end)

  describe("secret files", function()
    it("warns about a refresh_token_file readable by others and rewrites it 0600", function()
      local _, refresh = mint()
      local path = token_file("open.token", refresh, "644")
      local c = assert(client{ auth = { client_id = CLIENT_ID, refresh_token_file = path } })
      assert.equal(1, #warnings)
      assert.matches("accessible by group or others (mode 644); chmod 600 it", warnings[1], 1, true)
      assert(try(c, "token_info"))
      assert.equal(tonumber("600", 8), core.file_mode(path))
    end)

    it("reads the password from password_file and warns when the group can read it", function()
      local path = token_file("password", helpers.APPROVER_PASSWORD, "640")
      local c = assert(client{ auth = { client_id = CLIENT_ID, username = "approver", password_file = path } })
      assert.matches("mode 640", warnings[1], 1, true)
      assert(try(c, "prequalify", request()))
    end)
  end)

  describe("secrets", function()
    it("never shows a password or token in tostring, errors, events, warnings or worker output", function()
      assert.is_true(#captured > 100)
      local n = 0
      for _ in pairs(secrets) do n = n + 1 end
      assert.is_true(n > 30, "too few secrets were collected: " .. n)
      local text_file, pattern_file = dir .. "/captured.txt", dir .. "/secrets.txt"
      helpers.write_file(text_file, table.concat(captured, "\n") .. "\n")
      local list = {}
      for s in pairs(secrets) do list[#list + 1] = s end
      helpers.write_file(pattern_file, table.concat(list, "\n") .. "\n", "600")
      local ok, how, code = os.execute("grep -qF -f " .. helpers.shell_quote(pattern_file) .. " "
        .. helpers.shell_quote(text_file))
      assert.is_nil(ok)
      assert.equal("exit", how)
      assert.equal(1, code) -- 1: no line matched (2 would be a grep error)
    end)
  end)
end)
