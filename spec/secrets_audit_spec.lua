-- The secrets audit: every entry point runs with distinctive secrets (a
-- password set in a state file of our own, and every access and refresh
-- token the emulator issues), on success and failure paths (401, 403,
-- invalid_grant, transport errors, server replies that echo a secret), and
-- everything a user, a log or another user of the machine could see is
-- captured: stdout and stderr of CLI runs, process arguments read from
-- /proc/<pid>/cmdline while a run is held open, error values and their
-- tostring, tostring and fields of clients, results, reports, journals,
-- audit logs, warnings and on_event payloads (every field, recursively).
-- None of it may hold a secret, raw or Base64- or URL-encoded.
--
-- Tokens cannot be chosen, so they are collected as they are issued: from
-- the control surface, from a spy on `vedauth.post` (prequalify.transport.vedauth) in this process, and
-- from spec/fixtures/secret_spy.lua (through LUA_INIT) in CLI processes. A
-- final check proves the collection complete: one access token per token
-- reply the emulator logged.
local prequalify = require "prequalify"
local vedauth = require "prequalify.transport.vedauth"
local helpers = require "helpers"
local cli = require "fixtures.cli"
local cjson = require "cjson"

local q = helpers.shell_quote
local PATH = "PreQualify/Create"
local OAUTH, TOKEN = "authorize/oauth", "authorize/token"
local VERIFY, REVOKE = "authorize/verify", "revoke/token"
local JWT, CERTIFICATE = "authorize/jwt", "authorize/certificate"
local PASSWORD = "S3cr3t-Pa55word-XYZZY"
local WRONG_PASSWORD = "Wr0ng-Pa55word-PLUGH"
local DN, USER = helpers.DN_PROD, helpers.USER
local SPY = cli.ROOT .. "/spec/fixtures/secret_spy.lua"

local base64, urlencode = helpers.base64, helpers.urlencode

-- The forms of a secret to look for: raw, URL-encoded, Base64 and
-- Base64url without padding, and JSON with escaped slashes.
local function forms(s)
  local list, seen = {}, {}
  local function add(v)
    if not seen[v] then
      seen[v] = true
      list[#list + 1] = v
    end
  end
  add(s)
  add(urlencode(s))
  local b = base64(s):gsub("=+$", "")
  add(b)
  add((b:gsub("+", "-"):gsub("/", "_")))
  add((s:gsub("/", "\\/")))
  return list
end

-- Every field of a value, recursively, as text (keys too; tostring of
-- tables with a __tostring as well; cycles cut).
local function serialize(v, seen, depth)
  seen, depth = seen or {}, depth or 0
  local t = type(v)
  if t == "string" then return v end
  if t ~= "table" then return tostring(v) end
  if seen[v] or depth > 12 then return "<cycle>" end
  seen[v] = true
  local parts = {}
  local mt = getmetatable(v)
  if mt and mt.__tostring then parts[#parts + 1] = tostring(v) end
  for k, x in pairs(v) do
    parts[#parts + 1] = serialize(k, seen, depth + 1) .. "=" .. serialize(x, seen, depth + 1)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

describe("secrets audit #emulator", function()
  local emu, dir, state_file
  local secrets, nsecrets = {}, 0        -- secret -> where it came from
  local captured = {}                    -- { channel, text }
  local channels = {}                    -- channel -> captures
  local last_access                      -- the newest access token a reply handed out
  local orig_vedauth

  local function secret(s, origin)
    if type(s) == "string" and #s >= 8 and not secrets[s] then
      secrets[s] = origin
      nsecrets = nsecrets + 1
    end
  end

  local function capture(channel, text)
    text = tostring(text)
    captured[#captured + 1] = { channel, text }
    channels[channel] = (channels[channel] or 0) + 1
  end

  local function capture_value(channel, v)
    capture(channel, serialize(v))
  end

  local function capture_error(err)
    if err == nil then return end
    capture("error tostring", tostring(err))
    if type(err) == "table" then
      capture("error message", err.message)
      capture_value("error fields", err)
    end
  end

  local function capture_file(channel, path)
    local text = helpers.read_file(path)
    assert.is_string(text, channel .. " " .. path .. " was not written")
    assert.is_true(#text > 0, channel .. " " .. path .. " is empty")
    capture(channel, text)
  end

  -- Tokens a reply hands out.
  local function note_reply(doc, origin)
    if type(doc) ~= "table" then return end
    if type(doc.access_token) == "string" then
      last_access = doc.access_token
      secret(doc.access_token, origin .. " access token")
    end
    secret(doc.refresh_token, origin .. " refresh token")
  end

  local function mint(opts)
    local access, reply = emu:token(opts or { username = "approver" })
    secret(access, "minted access token")
    secret(reply.refresh_token, "minted refresh token")
    return access, reply.refresh_token
  end

  -- Which secret (and in which form) a text holds, or nil.
  local function leak_in(text)
    for s, origin in pairs(secrets) do
      for _, f in ipairs(forms(s)) do
        if text:find(f, 1, true) then return origin, f end
      end
    end
    return nil
  end

  -- Checks the captures from number `from` on (all by default) against
  -- every secret known now. A failure names the secret by its origin and
  -- first characters only.
  local checked = 0
  local function verify(from)
    local last = #captured
    checked = last
    for i = from or 1, last do
      local c = captured[i]
      local origin, form = leak_in(c[2])
      assert.is_nil(origin, string.format("a secret (%s, as %s...) appears in %s", tostring(origin),
        tostring(form):sub(1, 6), c[1]))
    end
  end

  local function file(name, text)
    return helpers.write_file(dir .. "/" .. name, text .. "\n", "600")
  end

  setup(function()
    dir = helpers.tmpdir()
    -- The sample state with a password of our own for the approver.
    local state = cjson.decode(helpers.read_file(helpers.ROOT .. "/emulator/state.json"))
    for _, ident in ipairs(state.identities) do
      if ident.name == "approver" then ident.password = PASSWORD end
    end
    state_file = helpers.write_file(dir .. "/state.json", cjson.encode(state))
    emu = helpers.start_emulator{ state = state_file }
    secret(PASSWORD, "the password")
    secret(WRONG_PASSWORD, "a wrong password")
    orig_vedauth = vedauth.post
    vedauth.post = function(...)
      local doc, status, r = orig_vedauth(...)
      note_reply(doc, "in-process")
      return doc, status, r
    end
  end)

  teardown(function()
    vedauth.post = orig_vedauth
    emu:stop()
    helpers.rm_rf(dir)
  end)

  before_each(function() emu:clear_faults() end)
  after_each(function()
    emu:clear_faults()
    verify(checked + 1)
  end)

  -- Echoing servers: replies whose text holds a secret.
  local function echo_401(tok)
    return { kind = "status", status = 401, path = PATH,
             body = '{"error":"invalid_token","error_description":"token ' .. tok .. ' is not valid"}' }
  end
  local function echo_403(tok)
    return { kind = "status", status = 403, path = PATH,
             body = '{"error":"insufficient_rights","error_description":"Grant rejected scope '
               .. "'codesign:approve' for token " .. tok .. '"}' }
  end
  local function echo_500(tok)
    return { kind = "status", status = 500, path = PATH, body = '{"Error":"failed for Bearer ' .. tok .. '"}' }
  end
  local function echo_refused(tok)
    return { kind = "status", status = 200, path = PATH,
             body = '{"Success":false,"Result":2,"Error":"token ' .. tok .. ' may not approve"}' }
  end
  local function echo_grant(path, what)
    return { kind = "status", status = 400, path = path,
             body = '{"error":"invalid_grant","error_description":"' .. what .. ' was refused"}' }
  end

  local function request(i)
    return { dn = DN, user = USER, comment = "secrets audit " .. i,
             data = (prequalify.digest.data("secrets audit artifact " .. i)) }
  end

  -- ---------------------------------------------------------------------
  -- The Lua API

  describe("the Lua API", function()
    local clients = {}

    local function client(o)
      o.url = o.url or emu.url
      if o.ca_file == nil then o.ca_file = emu.ca end
      if o.ca_file == false then o.ca_file = nil end
      o.timeout = o.timeout or 5
      o.retries = o.retries or { max = 3, base_delay = 0.01, max_delay = 2 }
      o.warn = function(msg) capture("warning", msg) end
      o.on_event = function(ev) capture_value("on_event", ev) end
      local c, err = prequalify.client(o)
      capture_error(err)
      if c then
        clients[#clients + 1] = c
        capture("client tostring", tostring(c))
        capture_value("client fields", c)
      end
      return c, err
    end

    local function call(c, method, ...)
      local res, err = c[method](c, ...)
      capture_value("result", res)
      capture_error(err)
      capture("client tostring", tostring(c))
      capture_value("client fields", c)
      return res, err
    end

    after_each(function()
      for _, c in ipairs(clients) do c:close() end
      clients = {}
    end)

    it("client:prequalify with a token: approved, 401, 403, 500 and refusals that echo it", function()
      local tok = mint()
      local c = client{ token = tok }
      assert.is_true(call(c, "prequalify", request(1)).ok)
      for _, f in ipairs{ echo_401(tok), echo_403(tok), echo_500(tok), echo_refused(tok) } do
        emu:fault(f)
        local res, err = call(c, "prequalify", request(1))
        assert.is_nil(res)
        assert.is_table(err)
      end
      -- A token holding a line break is refused before anything is sent.
      local bad = client{ token = tok .. "\r\nX-Injected: 1" }
      local _, err = call(bad, "prequalify", request(1))
      assert.equal("invalid", err.kind)
      -- A static token that the server refuses for real.
      local _, err401 = call(client{ token = "not-a-token-" .. tok:sub(1, 4) }, "prequalify", request(1))
      assert.equal(401, err401.status)
    end)

    it("client:prequalify with a token_file: approved, then a 401 echoing it that a re-read cannot fix", function()
      local tok = mint()
      -- Readable by others: the client warns, naming the file.
      local c = client{ token_file = helpers.write_file(dir .. "/token", tok .. "\n", "644") }
      assert.is_true(call(c, "prequalify", request(2)).ok)
      emu:fault(echo_401(tok))
      local _, err = call(c, "prequalify", request(2))
      assert.same({ "auth", 401 }, { err.kind, err.status })
    end)

    it("client:prequalify with auth.password: approved, a 401 refreshed, a 403 echoing the new token", function()
      local token_replies_before = emu:received(TOKEN)
      local c = client{ auth = { client_id = helpers.CLIENT_ID, username = "approver", password = PASSWORD } }
      assert.is_true(call(c, "prequalify", request(3)).ok)
      emu:advance_clock(4000) -- the access token expires; the grant lives on
      assert.is_true(call(c, "prequalify", request(3)).ok)
      assert.equal(1, emu:received(TOKEN) - token_replies_before)
      -- The server now echoes the refreshed access token in a 403.
      emu:fault(echo_403(last_access))
      local _, err = call(c, "prequalify", request(3))
      assert.equal("forbidden", err.kind)
    end)

    it("auth.password: a wrong password, a refusal echoing it, and a sign-in that cannot connect", function()
      local c = client{ auth = { client_id = helpers.CLIENT_ID, username = "approver", password = WRONG_PASSWORD } }
      local _, err = call(c, "prequalify", request(4))
      assert.same({ "auth", "auth.password" }, { err.kind, err.field })
      emu:fault(echo_grant(OAUTH, "password " .. WRONG_PASSWORD .. " for approver"))
      c = client{ auth = { client_id = helpers.CLIENT_ID, username = "approver", password = WRONG_PASSWORD } }
      _, err = call(c, "prequalify", request(4))
      assert.equal("auth", err.kind)
      -- No CA given: the server certificate is not trusted, nothing is sent.
      c = client{ ca_file = false, auth = { client_id = helpers.CLIENT_ID, username = "approver",
                                            password = PASSWORD } }
      _, err = call(c, "prequalify", request(4))
      assert.same({ "transport", "not_sent" }, { err.kind, err.outcome })
      -- Nothing listens on port 1.
      c = client{ url = "https://127.0.0.1:1", auth = { client_id = helpers.CLIENT_ID, username = "approver",
                                                       password = PASSWORD } }
      _, err = call(c, "prequalify", request(4))
      assert.equal("transport", err.kind)
    end)

    it("client:prequalify with auth.password_file, and the token_info and revoke of that grant", function()
      local c = client{ auth = { client_id = helpers.CLIENT_ID, username = "approver",
                                 password_file = file("password", PASSWORD) } }
      assert.is_true(call(c, "prequalify", request(5)).ok)
      assert.equal("codesign:approve", call(c, "token_info").scope)
      assert.is_true(call(c, "revoke").ok)
      local _, err = call(c, "prequalify", request(5))
      assert.equal("auth", err.kind)
      _, err = call(c, "token_info")
      assert.equal("auth", err.kind)
    end)

    it("auth.jwt, jwt_file and a client certificate: approved, refreshed; JWT refusals, echoed", function()
      local jwt = emu:jwt{}
      secret(jwt, "a JWT")
      local c = client{ auth = { client_id = helpers.CLIENT_ID, jwt = jwt } }
      assert.is_true(call(c, "prequalify", request(9)).ok)
      emu:advance_clock(4000) -- the access token expires; the grant is refreshed
      assert.is_true(call(c, "prequalify", request(9)).ok)
      local again = emu:jwt{}
      secret(again, "a JWT")
      emu:fault(echo_grant(JWT, "JWT " .. again))
      local _, err = call(client{ auth = { client_id = helpers.CLIENT_ID, jwt_file = file("jwt", again) } },
        "prequalify", request(9))
      assert.same({ "auth", "invalid_grant" }, { err.kind, err.error_code })
      -- Known to be expired, or not a JWT at all: refused before sending.
      local old = emu:jwt{ expires_in = -1e6 } -- past on any clock the spec has moved
      secret(old, "an expired JWT")
      _, err = call(client{ auth = { client_id = helpers.CLIENT_ID, jwt = old } }, "prequalify", request(9))
      assert.equal("expired", err.jwt)
      local junk = "eyJub3QiOiJhIEpXVCJ9.secret-junk-" .. old:sub(-12)
      secret(junk, "a malformed JWT")
      _, err = call(client{ auth = { client_id = helpers.CLIENT_ID, jwt = junk } }, "prequalify", request(9))
      assert.equal("malformed", err.jwt)
      local cert, key = emu:client_cert("approver", dir)
      c = client{ auth = { client_id = helpers.CLIENT_ID, client_cert = cert, client_key = key } }
      local signins = emu:received(CERTIFICATE)
      assert.is_true(call(c, "prequalify", request(9)).ok)
      assert.equal(signins + 1, emu:received(CERTIFICATE))
    end)

    it("client:prequalify with auth.refresh_token_file: rotation, then a spent refresh token echoed", function()
      local _, rt = mint()
      local rt_file = file("refresh", rt)
      local c = client{ auth = { client_id = helpers.CLIENT_ID, refresh_token_file = rt_file } }
      assert.is_true(call(c, "prequalify", request(6)).ok)
      assert.are_not.equal(rt, (helpers.read_file(rt_file):gsub("%s+$", "")))
      -- The spent one, again, with a server that echoes it.
      emu:fault(echo_grant(TOKEN, "refresh token " .. rt))
      local c2 = client{ auth = { client_id = helpers.CLIENT_ID, refresh_token_file = file("spent", rt) } }
      local _, err = call(c2, "prequalify", request(6))
      assert.same({ "auth", "auth.refresh_token_file" }, { err.kind, err.field })
      -- And for real (no fault): invalid_grant.
      _, err = call(client{ auth = { client_id = helpers.CLIENT_ID, refresh_token_file = file("spent", rt) } },
        "prequalify", request(6))
      assert.equal("invalid_grant", err.error_code)
    end)

    it("client:token_info and client:revoke with a token: ok, then 401, then already revoked", function()
      local tok = mint()
      local c = client{ token = tok }
      assert.is_table(call(c, "token_info"))
      assert.is_true(call(c, "revoke").ok)
      local _, err = call(c, "token_info")
      assert.same({ "auth", 401 }, { err.kind, err.status })
      assert.is_true(call(c, "revoke").already)
      -- A forbidden token (no codesign scope) reports its scope, not itself.
      local weak = mint{ username = "approver", scope = "configuration" }
      local _, ferr = call(client{ token = weak }, "prequalify", request(7))
      assert.equal("forbidden", ferr.kind)
    end)

    local function batch(c, name, opts)
      local report, journal, audit = dir .. "/" .. name .. ".json", dir .. "/" .. name .. ".journal",
        dir .. "/" .. name .. ".audit"
      local list = {}
      for i = 1, 6 do list[i] = request(name .. i) end
      local o = { concurrency = 1, journal = journal, report = report, audit = audit,
                  policy = prequalify.policy.environment("**"),
                  on_result = function(entry, res, err)
                    capture_value("on_result entry", entry)
                    capture_value("on_result res", res)
                    capture_error(err)
                  end }
      for k, v in pairs(opts or {}) do o[k] = v end
      local rep, err = c:batch(list, o)
      capture_error(err)
      assert.is_table(rep)
      capture("report summary", rep:summary())
      capture_value("report fields", rep)
      capture_file("report file", report)
      capture_file("journal", journal)
      capture_file("audit log", audit)
      return rep
    end

    it("client:batch with a grant: a refresh mid-batch, echoed tokens, a drop and a 500", function()
      local c = client{ auth = { client_id = helpers.CLIENT_ID, username = "approver", password = PASSWORD } }
      local rep = batch(c, "grant", {
        on_result = function(entry, res, err)
          capture_value("on_result entry", entry)
          capture_value("on_result res", res)
          capture_error(err)
          if entry.index == 1 then
            emu:advance_clock(4000) -- item 2 meets a 401 and the grant is refreshed
          elseif entry.index == 2 then
            -- Echo every token this process was given, then fail two items.
            emu:fault(echo_refused(last_access))
            emu:fault{ kind = "drop", path = PATH }
          end
        end,
      })
      assert.same({ 4, 1, 1 }, { rep.counts.approved, rep.counts.failed, rep.counts.unknown })
    end)

    it("client:batch with a token: a 401 echoing it stops the run", function()
      local tok = mint()
      emu:fault(echo_500(tok))
      emu:fault(echo_401(tok))
      local rep = batch(client{ token = tok }, "token")
      assert.equal("stopped", rep.status)
    end)

    it("client:batch with a refresh_token_file and a token_file", function()
      local _, rt = mint()
      local rep = batch(client{ auth = { client_id = helpers.CLIENT_ID, refresh_token_file = file("rt-batch", rt) } },
        "refresh")
      assert.equal(6, rep.counts.approved)
      local tok = mint()
      emu:fault(echo_403(tok))
      rep = batch(client{ token_file = file("token-batch", tok) }, "tokenfile")
      assert.equal(1, rep.counts.failed)
    end)

    -- Flow tickets and the archive (tickets, audit) -------------------------
    it("client:tickets, approve/reject/update and archive with a token; replies that echo it", function()
      local tok = mint{ username = "approver", scope = "codesign:approve,manage" }
      local c = client{ token = tok }
      local release = [[\VED\Code Signing\Projects\Sample\Release Environment]]
      local opened = emu:control("POST", "sign", { dn = release, data = request(90).data, user = USER })
      call(c, "tickets")
      call(c, "ticket", opened.ticket)
      call(c, "archive", { environments = release })
      local function echo(status, path, body)
        emu:fault{ kind = "status", status = status, path = path, body = body }
      end
      echo(401, "Flow/Tickets/Enumerate", '{"error":"invalid_token","error_description":"token ' .. tok .. '"}')
      call(c, "tickets")
      echo(500, "Flow/Tickets/Approve", '{"Error":"failed for Bearer ' .. tok .. '"}')
      call(c, "approve_tickets", opened.ticket, { comment = "x" })
      echo(200, "Flow/Tickets/Reject",
        '{"Result":5,"Message":"token ' .. tok .. '","InvalidTicketIds":["' .. tok .. '"]}')
      local _, err = call(c, "reject_tickets", { opened.ticket }, { comment = "x" })
      assert.same({ "server", 5 }, { err.kind, err.result })
      echo(403, "Flow/Tickets/Update", '{"error":"insufficient_rights","error_description":"for ' .. tok .. '"}')
      call(c, "update_tickets", opened.ticket, { comment = "x", uses = 1 })
      echo(200, "RetrieveArchiveEntries", '{"Success":false,"Error":"no archive for ' .. tok .. '"}')
      call(c, "archive", {})
    end)
  end)

  -- ---------------------------------------------------------------------
  -- The command line

  describe("the command line #nosan", function()
    local spy_file

    before_each(function()
      spy_file = dir .. "/spy.txt"
      os.remove(spy_file)
    end)

    -- The tokens the last CLI runs were handed (see fixtures/secret_spy.lua).
    local function harvest_spy()
      local text = helpers.read_file(spy_file)
      for field, tok in (text or ""):gmatch("(%S+) (%S+)") do
        note_reply({ [field] = tok }, "CLI")
      end
    end

    -- Runs bin/prequalify with stdout and stderr in files. With `hold`, a
    -- delay fault on that path holds the run open and its argv is read from
    -- /proc while it waits. Returns {code, out, err, cmdline}.
    local function run(args, opts)
      opts = opts or {}
      local d = helpers.tmpdir()
      local inp, out, err = d .. "/in", d .. "/out", d .. "/err"
      helpers.write_file(inp, opts.stdin or "", "600")
      local env = cli.emu_env(emu, { PREQUALIFY_DN = DN, PREQUALIFY_USER = USER,
                                     LUA_INIT = "@" .. SPY, PQ_SECRET_SPY = spy_file })
      for k, v in pairs(opts.env or {}) do env[k] = v end
      local before
      if opts.hold then
        emu:fault{ kind = "delay", delay = 0.6, path = opts.hold }
        before = emu:received(opts.hold)
      end
      local argv = { cli.CLI }
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      local pipe = assert(io.popen("cd " .. q(dir) .. " && echo PID=$$ && exec " .. cli.env_prefix(env) .. " "
        .. cli.words(argv) .. " <" .. q(inp) .. " >" .. q(out) .. " 2>" .. q(err)))
      local pid = tonumber(pipe:read("l"):match("PID=(%d+)"))
      local cmdline
      if opts.hold then
        for _ = 1, 300 do
          if emu:received(opts.hold) > before then break end
          prequalify.core.sleep(0.02)
        end
        cmdline = cli.cmdline(pid)
        if opts.on_hold then opts.on_hold() end
      end
      pipe:read("a")
      local _, _, code = pipe:close()
      harvest_spy()
      local r = { code = code, out = helpers.read_file(out) or "", err = helpers.read_file(err) or "",
                  cmdline = cmdline }
      helpers.rm_rf(d)
      local label = "prequalify " .. table.concat(args, " ", 1, math.min(2, #args))
      capture("stdout of " .. label, r.out)
      capture("stderr of " .. label, r.err)
      if opts.hold then
        -- The process read is the held CLI run itself.
        assert.truthy(cmdline:find("bin/prequalify " .. args[1], 1, true), "argv not read: " .. cmdline)
        capture("argv of " .. label, cmdline)
      end
      if opts.code then assert.equal(opts.code, r.code, r.out .. r.err) end
      return r
    end

    local SIGNIN = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID, PREQUALIFY_USERNAME = "approver" }
    local function with(base, extra)
      local e = {}
      for k, v in pairs(base) do e[k] = v end
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    local function submit(n, extra)
      local args = { "submit", "--data", request(n).data, "--comment", "secrets audit cli " .. n }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      return args
    end

    it("submit with --token-stdin, PREQUALIFY_TOKEN and --token-file; 401, 403, 500 that echo it", function()
      local tok = mint()
      run(submit(1, { "--token-stdin" }), { stdin = tok .. "\n", hold = PATH, code = 0 })
      run(submit(1, { "--json" }), { env = { PREQUALIFY_TOKEN = tok }, hold = PATH, code = 0 })
      run(submit(1, { "--token-file", file("cli-token", tok) }), { hold = PATH, code = 0 })
      emu:fault(echo_401(tok))
      run(submit(1, { "--token-stdin" }), { stdin = tok .. "\n", code = 1 })
      emu:fault(echo_403(tok))
      run(submit(1, { "--json" }), { env = { PREQUALIFY_TOKEN = tok }, code = 1 })
      emu:fault(echo_500(tok))
      run(submit(1, { "--token-file", dir .. "/cli-token" }), { code = 3 })
      -- Refused for real, and a server that cannot be reached.
      run(submit(1, { "--token-stdin" }), { stdin = "x" .. tok .. "\n", code = 1 })
      run(submit(1, { "--token-stdin", "--url", "https://127.0.0.1:1", "--timeout", "2" }),
        { stdin = tok .. "\n", code = 1 })
    end)

    it("submit with --password-stdin, PREQUALIFY_PASSWORD and --password-file; invalid_grant", function()
      run(submit(2, { "--password-stdin" }), { env = SIGNIN, stdin = PASSWORD .. "\n", hold = OAUTH, code = 0 })
      run(submit(2, { "--json" }), { env = with(SIGNIN, { PREQUALIFY_PASSWORD = PASSWORD }), hold = PATH, code = 0 })
      run(submit(2, { "--password-file", file("cli-pw", PASSWORD) }), { env = SIGNIN, hold = OAUTH, code = 0 })
      run(submit(2, { "--password-stdin" }), { env = SIGNIN, stdin = WRONG_PASSWORD .. "\n", code = 1 })
      emu:fault(echo_grant(OAUTH, "password " .. WRONG_PASSWORD))
      run(submit(2, { "--json" }), { env = with(SIGNIN, { PREQUALIFY_PASSWORD = WRONG_PASSWORD }), code = 1 })
      -- Untrusted server certificate: the sign-in fails closed.
      run(submit(2, { "--password-stdin" }), { env = with(SIGNIN, { PREQUALIFY_CA_FILE = "" }),
                                               stdin = PASSWORD .. "\n", code = 1 })
      -- A config file may not hold the password: refused without echoing it.
      local conf = helpers.write_file(dir .. "/bad.conf", "password = " .. PASSWORD .. "\n", "600")
      run(submit(2, { "--config", conf }), { code = 2 })
    end)

    it("submit with --jwt-file, --jwt-env and PREQUALIFY_JWT_FILE; refused, expired and echoed JWTs", function()
      local jwt = emu:jwt{}
      secret(jwt, "a JWT")
      local env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID }
      run(submit(7, { "--jwt-file", file("cli-jwt", jwt) }), { env = env, hold = JWT, code = 0 })
      run(submit(7, { "--jwt-env", "CI_JOB_JWT" }), { env = with(env, { CI_JOB_JWT = jwt }), hold = PATH, code = 0 })
      emu:fault(echo_grant(JWT, "JWT " .. jwt))
      run(submit(7, { "--json" }), { env = with(env, { PREQUALIFY_JWT_FILE = dir .. "/cli-jwt" }), code = 1 })
      local old = emu:jwt{ expires_in = -1e6 } -- past on any clock the spec has moved
      secret(old, "an expired JWT")
      run(submit(7, { "--jwt-env", "CI_JOB_JWT" }), { env = with(env, { CI_JOB_JWT = old }), code = 1 })
      run({ "token", "get", "--jwt-env", "CI_JOB_JWT", "--out", dir .. "/jwt-access" },
        { env = with(env, { CI_JOB_JWT = jwt }), code = 0 })
    end)

    it("submit with --refresh-token-file: rotation; a spent refresh token, echoed", function()
      local _, rt = mint()
      local rt_file = file("cli-rt", rt)
      run(submit(3, { "--refresh-token-file", rt_file }), { env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID },
                                                            hold = TOKEN, code = 0 })
      file("cli-spent", rt)
      emu:fault(echo_grant(TOKEN, "refresh token " .. rt))
      run(submit(3, { "--refresh-token-file", dir .. "/cli-spent" }),
        { env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID }, code = 1 })
      run(submit(3, { "--refresh-token-file", dir .. "/cli-spent" }),
        { env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID }, code = 1 })
    end)

    local function batch(name, extra, opts)
      local lines = {}
      for i = 1, 4 do lines[i] = cjson.encode{ data = request(name .. i).data, comment = "cli batch " .. i } end
      local manifest = helpers.write_file(dir .. "/" .. name .. ".jsonl", table.concat(lines, "\n") .. "\n")
      local policy = helpers.write_file(dir .. "/policy.lua", "return policy.max_hours(48)\n")
      local report, journal, audit = dir .. "/" .. name .. ".report.json", dir .. "/" .. name .. ".cli.journal",
        dir .. "/" .. name .. ".cli.audit"
      local args = { "batch", manifest, "--concurrency", "1", "--policy", policy, "--journal", journal,
                     "--report", report, "--audit", audit, "--progress", "plain" }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      local r = run(args, opts)
      capture_file("CLI report", report)
      capture_file("CLI journal", journal)
      capture_file("CLI audit log", audit)
      return r
    end

    it("batch with --token-stdin and --json: a 500 and a 401 that echo the token", function()
      local tok = mint()
      batch("cli-a", { "--token-stdin", "--json" }, { stdin = tok .. "\n", hold = PATH, code = 0 })
      emu:fault(echo_500(tok))
      emu:fault(echo_401(tok))
      batch("cli-b", { "--token-stdin" }, { stdin = tok .. "\n", code = 3 })
    end)

    it("batch with --password-stdin: the token expires mid-batch and is refreshed", function()
      -- Item 1 is held while the clock moves, so item 2 meets a 401.
      batch("cli-c", { "--password-stdin" }, { env = SIGNIN, stdin = PASSWORD .. "\n", hold = PATH, code = 0,
                                               on_hold = function() emu:advance_clock(4000) end })
      assert.is_true(emu:received(TOKEN) >= 1)
    end)

    it("batch with --refresh-token-file and with PREQUALIFY_PASSWORD", function()
      local _, rt = mint()
      batch("cli-d", { "--refresh-token-file", file("cli-batch-rt", rt) },
        { env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID }, hold = TOKEN, code = 0 })
      batch("cli-e", {}, { env = with(SIGNIN, { PREQUALIFY_PASSWORD = PASSWORD }), hold = OAUTH, code = 0 })
    end)

    it("plan, with every secret setting in the environment, sends nothing and shows none", function()
      local tok = mint()
      local lines = { cjson.encode{ data = request("plan").data, comment = "plan" } }
      local manifest = helpers.write_file(dir .. "/plan.jsonl", table.concat(lines, "\n") .. "\n")
      local before = emu:received("")
      run({ "plan", manifest, "--json" }, { env = with(SIGNIN, { PREQUALIFY_TOKEN = tok,
                                                                  PREQUALIFY_PASSWORD = PASSWORD }), code = 0 })
      run({ "plan", manifest }, { env = { PREQUALIFY_TOKEN = tok }, code = 0 })
      assert.equal(before, emu:received(""))
    end)

    it("token get, info, refresh and revoke; their failures", function()
      local out, rt_out = dir .. "/got.token", dir .. "/got.refresh"
      run({ "token", "get", "--password-stdin", "--out", out, "--refresh-out", rt_out },
        { env = SIGNIN, stdin = PASSWORD .. "\n", hold = OAUTH, code = 0 })
      run({ "token", "get", "--json", "--out", dir .. "/got2.token" },
        { env = with(SIGNIN, { PREQUALIFY_PASSWORD_FILE = file("pw-get", PASSWORD) }), hold = OAUTH, code = 0 })
      run({ "token", "get", "--out", dir .. "/never" },
        { env = with(SIGNIN, { PREQUALIFY_PASSWORD = WRONG_PASSWORD }), code = 1 })
      -- The files hold the tokens (and the check would see them there).
      local got = helpers.read_file(out):gsub("%s+$", "")
      assert.is_truthy(secrets[got], "the written token was collected")
      assert.is_truthy(leak_in(helpers.read_file(rt_out)), "the check finds a written refresh token")
      run({ "token", "info", "--token-file", out }, { hold = VERIFY, code = 0 })
      run({ "token", "info", "--json" }, { env = { PREQUALIFY_TOKEN = got }, hold = VERIFY, code = 0 })
      local spent = file("spent-cli", (helpers.read_file(rt_out):gsub("%s+$", "")))
      run({ "token", "refresh", "--refresh-token-file", rt_out, "--out", dir .. "/refreshed.token" },
        { env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID }, hold = TOKEN, code = 0 })
      run({ "token", "refresh", "--refresh-token-file", rt_out, "--json" },
        { env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID }, hold = TOKEN, code = 0 })
      run({ "token", "refresh", "--refresh-token-file", spent }, { env = { PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID },
                                                                 code = 1 })
      run({ "token", "revoke", "--token-stdin" }, { stdin = got .. "\n", hold = REVOKE, code = 0 })
      run({ "token", "info", "--token-stdin" }, { stdin = got .. "\n", code = 1 })
      run({ "token", "revoke", "--json" }, { env = { PREQUALIFY_TOKEN = got }, code = 0 })
      run({ "token", "info", "--token-stdin", "--url", "https://127.0.0.1:1", "--timeout", "2" },
        { stdin = got .. "\n", code = 1 })
    end)

    -- Flow tickets and the archive (tickets, audit) -------------------------
    it("tickets list, approve, decide and audit with a token; replies that echo it", function()
      local tok = mint{ username = "approver", scope = "codesign:approve,manage" }
      local tfile = file("cli-tickets-token", tok)
      local release = [[\VED\Code Signing\Projects\Sample\Release Environment]]
      local opened = emu:control("POST", "sign", { dn = release, data = request(91).data, user = USER })
      run({ "tickets", "list", "--json", "--token-file", tfile }, { hold = "Flow/Tickets/Enumerate", code = 0 })
      emu:fault{ kind = "status", status = 500, path = "Flow/Tickets/Approve",
                 body = '{"Error":"failed for Bearer ' .. tok .. '"}' }
      run({ "tickets", "approve", opened.ticket, "--comment", "x" }, { env = { PREQUALIFY_TOKEN = tok }, code = 3 })
      local journal, report = dir .. "/tickets.journal", dir .. "/tickets-report.json"
      run({ "tickets", "decide", "--policy", cli.ROOT .. "/examples/policies/tickets.lua", "--journal", journal,
            "--report", report, "--token-file", tfile }, { code = 0 })
      capture_file("CLI tickets journal", journal)
      capture_file("CLI tickets report", report)
      run({ "audit", "--report", journal, "--token-file", tfile }, { hold = "RetrieveArchiveEntries" })
      emu:fault{ kind = "status", status = 403, path = "RetrieveArchiveEntries",
                 body = '{"error":"insufficient_rights","error_description":"scope for ' .. tok .. '"}' }
      run({ "audit", "--report", journal, "--json" }, { env = { PREQUALIFY_TOKEN = tok }, code = 1 })
    end)
  end)

  -- ---------------------------------------------------------------------

  it("collected every token the emulator issued, and no capture holds any secret", function()
    -- Every token reply the emulator logged handed out one access token;
    -- each of them, and the minted ones, is among the secrets.
    local replies = 0
    for _, r in ipairs(emu:requests("vedauth/authorize/").items) do
      local p = r.path:lower()
      if r.status == 200 and (p:find("/oauth$") or p:find("/token$") or p:find("/jwt$") or p:find("/certificate$")) then
        replies = replies + 1
      end
    end
    local issued = 0
    for _, origin in pairs(secrets) do
      if origin:find("access token", 1, true) and origin ~= "minted access token" then issued = issued + 1 end
    end
    -- The command-line part is tagged #nosan: the ASan run of the specs
    -- leaves it out, and then only the Lua API's channels are required.
    local cli_ran = channels["CLI report"] ~= nil
    assert.is_true(replies > (cli_ran and 10 or 3), "too few token replies: " .. replies)
    assert.equal(replies, issued, "an issued access token was not collected")
    for _, ch in ipairs{ "error tostring", "error fields", "client tostring", "client fields", "result",
                         "on_event", "warning", "report summary", "report fields", "report file", "journal",
                         "audit log", "on_result entry" } do
      assert.is_true((channels[ch] or 0) > 0, "nothing was captured from " .. ch)
    end
    if cli_ran then
      for _, ch in ipairs{ "CLI report", "CLI journal", "CLI audit log" } do
        assert.is_true((channels[ch] or 0) > 0, "nothing was captured from " .. ch)
      end
      local kinds = { stdout = 0, stderr = 0, argv = 0 }
      for ch, n in pairs(channels) do
        local k = ch:match("^(%a+) of prequalify")
        if k then kinds[k] = kinds[k] + n end
      end
      assert.is_true(kinds.stdout > 20 and kinds.stderr > 20 and kinds.argv > 10, cjson.encode(kinds))
    end
    verify()
  end)
end)
