-- The prequalify command, driven as a subprocess against the emulator: every
-- subcommand, every exit code, --help, --json, settings from options,
-- environment and config files, and that no secret shows in argv, output,
-- report, journal or audit log.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"
local cjson = require "cjson"

local DN, USER = cli.DN, cli.USER

describe("prequalify --help #nosan", function()
  it("lists every command, the exit codes and where settings come from", function()
    local r = cli.run{ "--help" }
    assert.equal(0, r.code)
    for _, word in ipairs{ "submit", "batch", "plan", "digest", "token", "emulator", "completion", "Exit codes:", "130",
                           "PREQUALIFY_TOKEN", "--token-stdin", "--password-stdin" } do
      assert.truthy(r.out:find(word, 1, true), word)
    end
    assert.equal("", r.err)
  end)

  local HELP = {
    submit = { "--dn", "--user", "--comment", "--data", "--file", "--dig", "--algorithm", "--hours",
               "--single-use", "--policy", "--json", "--token-file", "--url", "--ca-file", "--config" },
    batch = { "manifest", "--files", "--dig-files", "--concurrency", "--policy", "--journal", "--report",
              "--audit", "--trails", "--retry-unknown", "--deadline", "--progress", "--json" },
    plan = { "manifest", "--files", "--policy", "--json", "Sends nothing" },
    digest = { "--algorithm", "--dig", "--json", "sha256" },
    token = { "get", "refresh", "info", "revoke" },
    ["token get"] = { "--out", "--refresh-out", "--username", "--password-file", "--password-stdin" },
    ["token refresh"] = { "--refresh-token-file", "--out" },
    ["token info"] = { "--json", "codesign:approve" },
    ["token revoke"] = { "refresh token" },
    emulator = { "--port", "--control", "READY" },
  }
  for command, words in pairs(HELP) do
    it("prints the help of '" .. command .. "' and exits 0", function()
      local args = {}
      for w in command:gmatch("%S+") do args[#args + 1] = w end
      args[#args + 1] = "--help"
      local r = cli.run(args)
      assert.equal(0, r.code)
      assert.truthy(r.out:find("Usage: prequalify " .. command, 1, true), r.out)
      for _, word in ipairs(words) do assert.truthy(r.out:find(word, 1, true), command .. ": " .. word) end
    end)
  end

  it("prints the version", function()
    local r = cli.run{ "--version" }
    assert.equal(0, r.code)
    assert.truthy(r.out:match("^prequalify %d+%.%d+%.%d+"))
  end)
end)

describe("prequalify usage errors exit 2 #nosan", function()
  local CASES = {
    { "no command", {}, "a command is required" },
    { "an unknown command", { "sign" }, "unknown command" },
    { "an unknown option", { "submit", "--bogus" }, "unknown option" },
    { "a token as an option value", { "submit", "--token", "abc" }, "unknown option '--token'" },
    { "a password as an option value", { "token", "get", "--password", "pw" }, "unknown option '--password'" },
    { "a bad --hours", { "submit", "--hours", "two" }, "--hours must be a whole number" },
    { "two hash sources", { "submit", "--data", "AAAA", "--file", "x" }, "can not be used together" },
    { "no hash", { "submit", "--dn", DN }, "give the hash" },
    { "a missing artifact", { "submit", "--file", "/nonexistent/app.bin" }, "/nonexistent/app.bin" },
    { "token without a subcommand", { "token" }, "command is required" },
    { "a batch without inputs", { "batch" }, "give a manifest file" },
    { "a bad --progress", { "batch", "--progress", "loud", "m.jsonl" }, "progress" },
  }
  for _, c in ipairs(CASES) do
    it("for " .. c[1], function()
      local r = cli.run(c[2])
      assert.equal(2, r.code)
      assert.truthy(r.err:find(c[3], 1, true), r.err)
      assert.equal("", r.out)
    end)
  end

  it("for invalid request fields, naming the option, and sends nothing", function()
    local r = cli.run({ "submit", "--dn", "not a dn", "--user", USER, "--comment", "c", "--data",
                        helpers.SHA256_B64, "--url", "https://localhost:1", "--token-stdin" }, { stdin = "t\n" })
    assert.equal(2, r.code)
    assert.truthy(r.err:find("--dn: ", 1, true), r.err)
  end)

  -- Every command names the same ways to sign in (cli/common.lua).
  local SIGN_INS = "--username with --password-file or --password-stdin, --jwt-file, --jwt-env, "
    .. "--certificate-grant, or --refresh-token-file; and --client-id\n"
  local HINT = "Run 'prequalify %s --help' for the options.\n"

  it("when no credentials are given", function()
    local r = cli.run{ "submit", "--dn", DN, "--user", USER, "--comment", "c", "--data", helpers.SHA256_B64,
                       "--url", "https://localhost:1" }
    assert.equal(2, r.code)
    assert.equal("prequalify submit: no credentials: give --token-file, PREQUALIFY_TOKEN or --token-stdin; "
      .. "or sign in: " .. SIGN_INS .. HINT:format("submit"), r.err)
  end)

  it("when token get has no sign-in, even with a bearer token", function()
    local dir = helpers.tmpdir()
    local tf = cli.secret_file(dir, "token", "abc")
    for _, argv in ipairs{ { "token", "get", "--out", "-", "--url", "https://localhost:1" },
                           { "token", "get", "--out", "-", "--url", "https://localhost:1", "--token-file", tf } } do
      local r = cli.run(argv)
      assert.equal(2, r.code, r.err)
      assert.equal("prequalify token get: token get needs a sign-in: " .. SIGN_INS .. HINT:format("token get"), r.err)
      assert.equal("", r.out)
    end
    helpers.rm_rf(dir)
  end)

  it("when token refresh has no refresh token file", function()
    local r = cli.run{ "token", "refresh", "--url", "https://localhost:1" }
    assert.equal(2, r.code, r.err)
    assert.equal("prequalify token refresh: token refresh spends the refresh token in --refresh-token-file "
      .. "(or PREQUALIFY_REFRESH_TOKEN_FILE)\n" .. HINT:format("token refresh"), r.err)
  end)

  it("when no server is given", function()
    local r = cli.run({ "submit", "--dn", DN, "--user", USER, "--comment", "c", "--data", helpers.SHA256_B64 },
      { env = { PREQUALIFY_TOKEN = "abc" } })
    assert.equal(2, r.code)
    assert.truthy(r.err:find("--url", 1, true), r.err)
  end)

  it("when two ways to authenticate are given on one level", function()
    local dir = helpers.tmpdir()
    local tf = cli.secret_file(dir, "token", "abc")
    local r = cli.run({ "token", "info", "--url", "https://localhost:1", "--token-file", tf, "--password-file", tf,
                        "--username", "u", "--client-id", "c" })
    assert.equal(2, r.code)
    assert.truthy(r.err:find("give one way to authenticate, found --token-file and --password-file", 1, true), r.err)
    helpers.rm_rf(dir)
  end)

  it("when an option outranks the environment, without complaint", function()
    local dir = helpers.tmpdir()
    local tf = cli.secret_file(dir, "token", "abc")
    local r = cli.run({ "token", "info", "--url", "https://localhost:1", "--token-file", tf, "--timeout", "2" },
      { env = { PREQUALIFY_TOKEN = "other", PREQUALIFY_USERNAME = "u", PREQUALIFY_PASSWORD = "p" } })
    -- Not a usage error: the connection fails instead (nothing listens on port 1),
    -- and says so in one line, not with an internal crash and its traceback.
    assert.equal(1, r.code)
    assert.falsy(r.err:find("give one way", 1, true))
    assert.truthy(r.err:find("prequalify: transport error: .*port 1"), r.err)
    assert.falsy(r.err:find("traceback", 1, true), r.err)
    helpers.rm_rf(dir)
  end)
end)

describe("prequalify digest #nosan", function()
  local dir
  setup(function()
    dir = helpers.tmpdir()
    helpers.write_file(dir .. "/a.bin", "hello")
    helpers.write_file(dir .. "/empty.bin", "")
    helpers.write_file(dir .. "/app.exe.dig", "\239\187\191" .. helpers.SHA256_B64 .. "\r\n")
  end)
  teardown(function() helpers.rm_rf(dir) end)

  it("prints the Base64 SHA-256 and path of each file, like the openssl tool", function()
    local r = cli.run({ "digest", "a.bin", "empty.bin" }, { cwd = dir })
    assert.equal(0, r.code)
    assert.equal(cli.sha256_b64(dir .. "/a.bin") .. "  a.bin\n" .. cli.sha256_b64(dir .. "/empty.bin")
      .. "  empty.bin\n", r.out)
  end)

  it("uses --algorithm and prints JSON with --json", function()
    local r = cli.run({ "digest", "--algorithm", "sha512", "--json", "a.bin" }, { cwd = dir })
    assert.equal(0, r.code)
    local doc = cli.json(r)
    assert.equal("sha512", doc.items[1].algorithm)
    assert.equal("a.bin", doc.items[1].path)
    assert.equal(88, #doc.items[1].data)
  end)

  it("reads .dig files with --dig", function()
    local r = cli.run({ "digest", "--dig", "app.exe.dig" }, { cwd = dir })
    assert.equal(0, r.code)
    assert.equal(helpers.SHA256_B64 .. "  app.exe.dig\n", r.out)
  end)

  it("exits 1 naming a file it cannot read, and still prints the others", function()
    local r = cli.run({ "digest", "missing.bin", "a.bin" }, { cwd = dir })
    assert.equal(1, r.code)
    assert.truthy(r.err:find("missing.bin", 1, true))
    assert.truthy(r.out:find("  a.bin", 1, true))
  end)
end)

describe("prequalify against the emulator #emulator #nosan", function()
  local emu, dir, token, env

  hooks.emulator({ token = true, dir = "block" }, function(e, t, d) emu, token, dir = e, t, d end)
  setup(function()
    for i = 1, 4 do helpers.write_file(dir .. "/app" .. i .. ".bin", "artifact " .. i) end
    helpers.write_file(dir .. "/empty.bin", "")
  end)
  before_each(function()
    env = cli.job_env(emu, dir, token)
  end)

  local function stored(data)
    for _, p in ipairs(emu:prequalifications().items) do
      if p.data == data then return p end
    end
    return nil
  end

  describe("submit", function()
    it("pre-qualifies a file's hash and exits 0", function()
      local r = cli.run({ "submit", "--file", "app1.bin", "--comment", "REL-1 {name}", "--hours", "2",
                          "--single-use" }, { env = env, cwd = dir })
      assert.equal(0, r.code, r.err)
      local data = cli.sha256_b64(dir .. "/app1.bin")
      assert.truthy(r.out:find("^approved  app1.bin  sha256 " .. data:gsub("%p", "%%%0")), r.out)
      local p = assert(stored(data))
      assert.equal("REL-1 app1.bin", p.comment)
      assert.equal(2, p.hours)
      assert.is_true(p.single_use)
      assert.is_true((emu:sign{ dn = DN, data = data, user = USER }))
    end)

    it("prints one JSON document with --json", function()
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--json" }, { env = env })
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r)
      assert.equal("approved", doc.outcome)
      assert.is_true(doc.ok)
      assert.equal(1, doc.result)
      assert.equal("Success", doc.result_name)
      assert.equal(helpers.SHA256_B64, doc.request.data)
      assert.equal(DN, doc.request.dn)
    end)

    it("exits 1 when the policy denies, shows the trail and sends nothing", function()
      local policy = helpers.write_file(dir .. "/policy.lua", "return policy.max_hours(4)\n")
      local r = cli.run({ "submit", "--file", "app1.bin", "--comment", "c", "--policy", policy },
        { env = env, cwd = dir })
      assert.equal(1, r.code)
      assert.truthy(r.out:find("^denied  app1.bin  denied by policy: max_hours%(4%)"), r.out)
      assert.truthy(r.out:find("deny   max_hours(4): 24 requested (server default) exceeds 4", 1, true), r.out)
      assert.equal(0, emu:received("prequalify"))
    end)

    it("exits 1 when the server refuses (Success false)", function()
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--dn", helpers.DN_LEGACY },
        { env = env })
      assert.equal(1, r.code)
      assert.truthy(r.out:find("^failed  ", 1), r.out)
      assert.truthy(r.out:find("ValueProhibitedByTemplate", 1, true), r.out)
    end)

    it("exits 1 on a 401 with a message about the token", function()
      local bad = cli.emu_env(emu, { PREQUALIFY_TOKEN = "not-a-valid-token", PREQUALIFY_DN = DN,
                                     PREQUALIFY_USER = USER })
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c" }, { env = bad })
      assert.equal(1, r.code)
      assert.truthy(r.out:find("HTTP 401", 1, true), r.out)
      assert.falsy((r.out .. r.err):find("not-a-valid-token", 1, true))
    end)

    it("exits 3 when a 502 leaves the outcome unknown, and does not resend", function()
      emu:fault{ kind = "status", status = 502, path = "prequalify" }
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--json" }, { env = env })
      assert.equal(3, r.code)
      local doc = cli.json(r)
      assert.equal("unknown", doc.outcome)
      assert.equal(502, doc.error.status)
      assert.equal(1, emu:received("prequalify"))
    end)

    it("exits 3 when the connection drops after the request was processed", function()
      emu:fault{ kind = "drop", path = "prequalify" }
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c" }, { env = env })
      assert.equal(3, r.code)
      assert.truthy(r.out:find("^unknown  ", 1), r.out)
      assert.truthy(r.out:find("not resent", 1, true), r.out)
      assert.equal(1, emu:received("prequalify"))
      assert.equal(1, emu:prequalifications().count)
    end)

    it("resends after an unknown outcome only with --retry-unknown", function()
      emu:fault{ kind = "drop", path = "prequalify", process = false }
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--retry-unknown" },
        { env = env })
      assert.equal(0, r.code, r.out .. r.err)
      assert.equal(2, emu:received("prequalify"))
    end)

    it("reads the token from stdin with --token-stdin", function()
      local e = cli.emu_env(emu, { PREQUALIFY_DN = DN, PREQUALIFY_USER = USER })
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--token-stdin" },
        { env = e, stdin = token .. "\n" })
      assert.equal(0, r.code, r.err)
    end)

    it("signs in with a username and a password file", function()
      local e = cli.emu_env(emu, { PREQUALIFY_DN = DN, PREQUALIFY_USER = USER, PREQUALIFY_CLIENT_ID = "prequalify",
        PREQUALIFY_USERNAME = "approver",
        PREQUALIFY_PASSWORD_FILE = cli.secret_file(dir, "pw", helpers.APPROVER_PASSWORD) })
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c" }, { env = e })
      assert.equal(0, r.code, r.out .. r.err)
      assert.equal(1, emu:received("authorize/oauth"))
    end)

    it("lets an option override the environment", function()
      local e = cli.emu_env(emu, { PREQUALIFY_TOKEN_FILE = env.PREQUALIFY_TOKEN_FILE, PREQUALIFY_DN = DN,
                                   PREQUALIFY_USER = USER })
      e.PREQUALIFY_URL = "https://localhost:1"
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--url", emu.url }, { env = e })
      assert.equal(0, r.code, r.out .. r.err)
    end)

    it("takes settings from a key = value config file, paths relative to it", function()
      local cdir = dir .. "/conf"
      os.execute("mkdir -p " .. cli.q(cdir))
      cli.secret_file(cdir, "tpp.token", token)
      local config = helpers.write_file(cdir .. "/prequalify.conf", table.concat({
        "# settings for the release job",
        "url = " .. emu.url,
        "ca_file = " .. emu.ca,
        "token_file = tpp.token",
        [[dn = "\VED\Code Signing\Projects\Sample\Production Environment"]],
        "user = local:build-bot",
        "hours = 3",
        "single_use = true",
      }, "\n") .. "\n")
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--config", config })
      assert.equal(0, r.code, r.out .. r.err)
      local p = assert(stored(helpers.SHA256_B64))
      assert.equal(3, p.hours)
      assert.is_true(p.single_use)
    end)

    it("takes settings from a Lua config named by PREQUALIFY_CONFIG", function()
      local config = helpers.write_file(dir .. "/prequalify.lua", string.format(
        "return { url = %q, ca_file = %q, token_file = %q, dn = [[%s]], user = %q }\n",
        emu.url, emu.ca, env.PREQUALIFY_TOKEN_FILE, DN, USER))
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c" },
        { env = { PREQUALIFY_CONFIG = config } })
      assert.equal(0, r.code, r.out .. r.err)
    end)

    it("refuses a config file that holds a secret (exit 2)", function()
      local config = helpers.write_file(dir .. "/bad.conf", "url = " .. emu.url .. "\ntoken = " .. token .. "\n")
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--comment", "c", "--config", config },
        { env = { PREQUALIFY_DN = DN, PREQUALIFY_USER = USER } })
      assert.equal(2, r.code)
      assert.truthy(r.err:find("must not hold the token; put it in a file", 1, true), r.err)
      assert.falsy((r.out .. r.err):find(token, 1, true))
    end)

    it("refuses an unknown config key, naming the line", function()
      local config = helpers.write_file(dir .. "/typo.conf", "url = " .. emu.url .. "\nca-fiel = x\n")
      local r = cli.run({ "submit", "--data", helpers.SHA256_B64, "--config", config })
      assert.equal(2, r.code)
      assert.truthy(r.err:find("typo.conf:2: unknown key 'ca_fiel'", 1, true), r.err)
    end)
  end)

  describe("batch", function()
    it("pre-qualifies every file of a glob, writes the report and exits 0", function()
      local report = dir .. "/report.json"
      local r = cli.run({ "batch", "--files", "app*.bin", "--comment", "REL-2 {name}", "--concurrency", "3",
                          "--report", report, "--progress", "off" }, { env = env, cwd = dir })
      assert.equal(0, r.code, r.out .. r.err)
      assert.truthy(r.out:find("4 items: 4 approved, 0 denied, 0 failed, 0 unknown", 1, true), r.out)
      assert.equal(4, emu:received("prequalify"))
      local doc = cjson.decode(helpers.read_file(report))
      assert.equal("complete", doc.status)
      assert.equal(4, doc.counts.approved)
      for i = 1, 4 do assert.truthy(stored(cli.sha256_b64(dir .. "/app" .. i .. ".bin"))) end
    end)

    it("resumes from a journal without sending anything twice", function()
      local journal = dir .. "/resume.jsonl"
      os.remove(journal)
      local args = { "batch", "--files", "app*.bin", "--comment", "c {name}", "--journal", journal,
                     "--progress", "off" }
      assert.equal(0, cli.run(args, { env = env, cwd = dir }).code)
      local r = cli.run(args, { env = env, cwd = dir })
      assert.equal(0, r.code, r.out .. r.err)
      assert.truthy(r.out:find("(4 recorded by an earlier run)", 1, true), r.out)
      assert.equal(4, emu:received("prequalify"))
    end)

    it("prints the JSON report with --json", function()
      local r = cli.run({ "batch", "--files", "app1.bin", "--files", "app2.bin", "--comment", "c", "--json",
                          "--progress", "off" }, { env = env, cwd = dir })
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r)
      assert.equal(2, doc.counts.total)
      assert.equal(2, #doc.items)
      assert.equal("approved", doc.items[1].outcome)
      assert.truthy(doc.items[1].file:match("^app%d%.bin$"))
    end)

    it("reads a manifest, fills fields from options and reports a bad line by number (exit 1)", function()
      local manifest = helpers.write_file(dir .. "/release.jsonl", table.concat({
        cjson.encode{ file = "app1.bin", comment = "one" },
        "{not json",
        cjson.encode{ data = helpers.SHA256_B64, comment = "three", hours = 2 },
      }, "\n") .. "\n")
      local r = cli.run({ "batch", manifest, "--progress", "off" }, { env = env })
      assert.equal(1, r.code)
      assert.truthy(r.out:find("3 items: 2 approved, 0 denied, 1 failed", 1, true), r.out)
      assert.truthy(r.out:find("failed   manifest:2  not valid JSON", 1, true)
        or r.out:find("release.jsonl:2", 1, true), r.out)
      assert.equal(2, emu:received("prequalify"))
    end)

    it("applies a policy: denied items are not sent, exit 1", function()
      local blocklist = helpers.write_file(dir .. "/block.txt",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 empty\n")
      local policy = helpers.write_file(dir .. "/deny-empty.lua", "return policy.all{ policy.deny_hashes(\""
        .. blocklist .. "\"), policy.max_hours(4) }\n")
      local audit = dir .. "/audit.jsonl"
      local r = cli.run({ "batch", "--files", "*.bin", "--comment", "c", "--hours", "2", "--policy", policy,
                          "--audit", audit, "--progress", "off" }, { env = env, cwd = dir })
      assert.equal(1, r.code)
      assert.truthy(r.out:find("5 items: 4 approved, 1 denied", 1, true), r.out)
      assert.truthy(r.out:find("denied   empty.bin  ", 1, true), r.out)
      assert.equal(4, emu:received("prequalify"))
      assert.truthy(helpers.read_file(audit):find('"event":"decision"', 1, true))
    end)

    it("keeps the trail of every item in the JSON report with --trails, of denied ones without", function()
      local policy = helpers.write_file(dir .. "/hours.lua", "return policy.all{ policy.max_hours(4) }\n")
      local function trails(extra)
        local argv = { "batch", "--files", "app*.bin", "--comment", "c", "--hours", "2", "--policy", policy,
                       "--progress", "off", "--json" }
        for _, a in ipairs(extra) do argv[#argv + 1] = a end
        local r = cli.run(argv, { env = env, cwd = dir })
        assert.equal(0, r.code, r.err)
        local n, with = 0, 0
        for _, e in ipairs(cjson.decode(r.out).items) do
          n = n + 1
          if e.trail then with = with + 1 end
        end
        return n, with
      end
      local n, with = trails{}
      assert.is_true(n > 0)
      assert.equal(0, with)
      n, with = trails{ "--trails" }
      assert.equal(n, with)
    end)

    it("exits 3 when an outcome is unknown, and does not resend it", function()
      emu:fault{ kind = "status", status = 502, path = "prequalify" }
      local r = cli.run({ "batch", "--files", "app*.bin", "--comment", "c", "--concurrency", "1",
                          "--progress", "off" }, { env = env, cwd = dir })
      assert.equal(3, r.code)
      assert.truthy(r.out:find("3 approved, 0 denied, 0 failed, 1 unknown", 1, true), r.out)
      assert.truthy(r.out:find("may have been pre-qualified", 1, true), r.out)
      assert.equal(4, emu:received("prequalify"))
    end)

    it("exits 1 when the glob matches nothing", function()
      local r = cli.run({ "batch", "--files", "*.none", "--comment", "c", "--progress", "off" },
        { env = env, cwd = dir })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("held no items", 1, true), r.err)
    end)

    it("stops on SIGINT: in-flight requests finish, the rest is skipped, exit 130", function()
      -- Every request is held for a while, so the batch is surely mid-way
      -- when the first progress line appears.
      emu:fault{ kind = "delay", delay = 2.5, count = 50, path = "prequalify" }
      local report = dir .. "/interrupted.json"
      local e = {}
      for k, v in pairs(env) do e[k] = v end
      local pipe, pid = cli.spawn({ cli.CLI, "batch", "--files", "*.bin", "--comment", "c", "--concurrency", "2",
                                    "--progress", "plain", "--report", report }, { env = e, cwd = dir })
      local first = pipe:read("l")
      assert.truthy(first and first:find("^prequalify: %d+/5 done"), first)
      os.execute("kill -INT " .. pid)
      local rest = pipe:read("a")
      local ok, how, code = pipe:close()
      assert.is_nil(ok)
      assert.equal("exit", how)
      assert.equal(130, code, rest)
      local doc = cjson.decode(helpers.read_file(report))
      assert.equal("interrupted", doc.status)
      -- The two in flight when the signal came were finished, not abandoned.
      assert.is_true(doc.counts.approved >= 2)
      assert.equal(5, doc.counts.approved + doc.counts.skipped + (doc.not_reached or 0))
      assert.is_true(doc.counts.approved < 5)
      assert.equal(doc.counts.approved, emu:received("prequalify"))
      assert.truthy(rest:find("interrupted by SIGINT", 1, true), rest)
    end)
  end)

  describe("plan", function()
    it("prints each decision with its trail, sends nothing, exit 0 when all are allowed", function()
      local policy = helpers.write_file(dir .. "/hours.lua", "return policy.max_hours(4)\n")
      local r = cli.run({ "plan", "--files", "app*.bin", "--dn", DN, "--user", USER, "--comment", "c",
                          "--hours", "2", "--policy", policy }, { cwd = dir })
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("ALLOW  app1.bin  sha256 ", 1, true), r.out)
      assert.truthy(r.out:find("allow  max_hours(4): 2 requested is within 4", 1, true), r.out)
      assert.truthy(r.out:find("plan: 4 items: 4 allow, 0 deny, 0 invalid, 0 duplicate (nothing was sent)", 1, true),
        r.out)
      assert.equal(0, emu:received(""))
    end)

    it("warns about data of no known digest length, in text and in JSON, without refusing it", function()
      local manifest = helpers.write_file(dir .. "/short.jsonl", table.concat({
        cjson.encode{ data = "AAECAwQFBgcICQoL" }, -- 12 bytes
        cjson.encode{ data = helpers.SHA256_B64 },
      }, "\n") .. "\n")
      local argv = { "plan", manifest, "--dn", DN, "--user", USER, "--comment", "c" }
      local r = cli.run(argv)
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("12-byte AAEC", 1, true), r.out)
      assert.truthy(r.out:find("warning: data decodes to 12 bytes, the length of no known digest", 1, true), r.out)
      assert.truthy(r.err:find("1 item with data of no known digest length", 1, true), r.err)
      argv[#argv + 1] = "--json"
      local doc = cli.json(cli.run(argv))
      assert.matches("pre%-qualify it only if it is not meant to be a digest", doc.items[1].warning)
      assert.is_nil(doc.items[2].warning)
      assert.equal(1, doc.counts.unusual_length)
      assert.equal(0, emu:received(""))
    end)

    it("exits 1 when an item would be denied or is invalid, and prints JSON with --json", function()
      local policy = helpers.write_file(dir .. "/hours.lua", "return policy.max_hours(4)\n")
      local manifest = helpers.write_file(dir .. "/plan.jsonl", table.concat({
        cjson.encode{ data = helpers.SHA256_B64, hours = 2 },
        cjson.encode{ data = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", hours = 48 },
        cjson.encode{ data = "not base64!", hours = 2 },
      }, "\n") .. "\n")
      local r = cli.run({ "plan", manifest, "--dn", DN, "--user", USER, "--comment", "c", "--policy", policy,
                          "--json" })
      assert.equal(1, r.code)
      local doc = cli.json(r)
      assert.same({ total = 3, allow = 1, deny = 1, invalid = 1, duplicate = 0, unusual_length = 0 }, doc.counts)
      assert.equal("allow", doc.items[1].verdict)
      assert.equal("deny", doc.items[2].verdict)
      assert.equal("max_hours(4): 48 requested exceeds 4", doc.items[2].reason)
      assert.equal("invalid", doc.items[3].verdict)
      assert.equal(3, doc.items[3].line)
      assert.is_false(doc.sent)
    end)

    it("exits 2 for a policy file that does not load", function()
      local policy = helpers.write_file(dir .. "/broken.lua", "return policy.max_hours(\n")
      local r = cli.run({ "plan", "--files", "app1.bin", "--dn", DN, "--user", USER, "--comment", "c",
                          "--policy", policy }, { cwd = dir })
      assert.equal(2, r.code)
      assert.truthy(r.err:find("broken.lua", 1, true), r.err)
    end)
  end)

  describe("token", function()
    local function signin_env(extra)
      local e = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = "prequalify", PREQUALIFY_USERNAME = "approver" })
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    it("get signs in and writes the tokens to files with mode 0600, printing no secret", function()
      local out, rt = dir .. "/access.token", dir .. "/refresh.token"
      os.remove(out)
      os.remove(rt)
      local r = cli.run({ "token", "get", "--password-stdin", "--out", out, "--refresh-out", rt },
        { env = signin_env(), stdin = helpers.APPROVER_PASSWORD .. "\n" })
      assert.equal(0, r.code, r.err)
      local access = helpers.read_file(out):gsub("%s+$", "")
      local refresh = helpers.read_file(rt):gsub("%s+$", "")
      assert.truthy(#access > 10 and #refresh > 10)
      assert.falsy((r.out .. r.err):find(access, 1, true))
      assert.falsy((r.out .. r.err):find(refresh, 1, true))
      assert.falsy((r.out .. r.err):find(helpers.APPROVER_PASSWORD, 1, true))
      assert.truthy(r.out:find("scope:    codesign:approve", 1, true), r.out)
      local p = io.popen("stat -c %a " .. cli.q(out) .. " " .. cli.q(rt))
      assert.equal("600\n600\n", p:read("a"))
      p:close()
      -- The token works.
      r = cli.run({ "token", "info", "--token-file", out, "--json" }, { env = cli.emu_env(emu) })
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r)
      assert.equal("codesign:approve", doc.scope)
      assert.is_true(doc.can_prequalify)
    end)

    it("get --out - prints the token alone on stdout", function()
      local r = cli.run({ "token", "get", "--out", "-" },
        { env = signin_env{ PREQUALIFY_PASSWORD = helpers.APPROVER_PASSWORD } })
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:match("^%S+\n$"), r.out)
      assert.truthy(r.err:find("signed in", 1, true))
    end)

    it("get exits 2 without --out or --refresh-out, and 1 for a wrong password", function()
      local e = signin_env{ PREQUALIFY_PASSWORD = "wrong-password" }
      assert.equal(2, cli.run({ "token", "get" }, { env = e }).code)
      local r = cli.run({ "token", "get", "--out", dir .. "/never" }, { env = e })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("password is not valid", 1, true), r.err)
      assert.falsy(r.err:find("wrong-password", 1, true))
    end)

    it("refresh rotates the refresh token file and writes the new access token", function()
      local rt = dir .. "/rotating.token"
      local _, reply = emu:token{ username = "approver" }
      cli.secret_file(dir, "rotating.token", reply.refresh_token)
      local out = dir .. "/new.token"
      local r = cli.run({ "token", "refresh", "--refresh-token-file", rt, "--out", out, "--json" },
        { env = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = "prequalify" }) })
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r)
      assert.equal(rt, doc.refresh_token_file)
      local rotated = helpers.read_file(rt):gsub("%s+$", "")
      assert.are_not.equal(reply.refresh_token, rotated)
      assert.falsy(r.out:find(rotated, 1, true))
      -- The old refresh token is spent.
      cli.secret_file(dir, "old.token", reply.refresh_token)
      r = cli.run({ "token", "refresh", "--refresh-token-file", dir .. "/old.token" },
        { env = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = "prequalify" }) })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("invalid_grant", 1, true), r.err)
    end)

    it("info shows the identity, scope and expiry, and warns about a missing scope", function()
      local weak = emu:token{ username = "approver", scope = "configuration" }
      local r = cli.run({ "token", "info", "--token-file", cli.secret_file(dir, "weak", weak) },
        { env = cli.emu_env(emu) })
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("identity: local:", 1, true), r.out)
      assert.truthy(r.out:find("expires:  ", 1, true), r.out)
      assert.truthy(r.out:find("lacks scope codesign:approve", 1, true), r.out)
    end)

    it("revoke ends the grant; info then exits 1; a second revoke still exits 0", function()
      local e = cli.emu_env(emu, { PREQUALIFY_TOKEN_FILE = env.PREQUALIFY_TOKEN_FILE })
      local r = cli.run({ "token", "revoke" }, { env = e })
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("^revoked"), r.out)
      r = cli.run({ "token", "info" }, { env = e })
      assert.equal(1, r.code)
      assert.truthy(r.err:find("401", 1, true), r.err)
      r = cli.run({ "token", "revoke", "--json" }, { env = e })
      assert.equal(0, r.code)
      assert.is_true(cli.json(r).already)
    end)
  end)
end)

describe("prequalify keeps secrets out of argv, output, report, journal and audit log #emulator #nosan",
function()
  local emu, dir

  hooks.emulator({ reset = true, dir = "block" }, function(e, _, d) emu, dir = e, d end)
  setup(function()
    for i = 1, 5 do helpers.write_file(dir .. "/s" .. i .. ".bin", "secret test " .. i) end
  end)

  local function check(name, env, extra_args, stdin, secrets)
    -- Requests are held, so the process is surely alive when its argv is read.
    emu:fault{ kind = "delay", delay = 1, count = 2, path = "prequalify" }
    local journal, report, audit = dir .. "/" .. name .. ".journal", dir .. "/" .. name .. ".json",
      dir .. "/" .. name .. ".audit"
    local argv = { cli.CLI, "batch", "--files", "s*.bin", "--comment", "REL-9 {name}", "--concurrency", "2",
                   "--journal", journal, "--report", report, "--audit", audit, "--progress", "plain" }
    for _, a in ipairs(extra_args) do argv[#argv + 1] = a end
    local pipe, pid = cli.spawn(argv, { env = env, cwd = dir, stdin = stdin })
    local first = pipe:read("l")
    assert.truthy(first and first:find("^prequalify: "), first)
    local cmdline = cli.cmdline(pid)
    assert.truthy(cmdline:find("batch --files s*.bin", 1, true), cmdline)
    local rest = pipe:read("a")
    local _, _, code = pipe:close()
    assert.equal(0, code, rest)
    assert.equal(5, emu:received("prequalify"))
    local places = {
      argv = cmdline, output = first .. "\n" .. rest, journal = helpers.read_file(journal),
      report = helpers.read_file(report), audit = helpers.read_file(audit),
    }
    for _, secret in ipairs(secrets) do
      for where, text in pairs(places) do
        assert.truthy(text and #text > 0, where)
        assert.falsy(text:find(secret, 1, true), name .. ": a secret appears in the " .. where)
      end
    end
  end

  it("with a token file", function()
    local token = emu:token{ username = "approver" }
    local env = cli.emu_env(emu, { PREQUALIFY_TOKEN_FILE = cli.secret_file(dir, "token", token),
                                   PREQUALIFY_DN = DN, PREQUALIFY_USER = USER })
    check("token-file", env, {}, nil, { token })
  end)

  it("with a token in the environment", function()
    local token = emu:token{ username = "approver" }
    local env = cli.emu_env(emu, { PREQUALIFY_TOKEN = token, PREQUALIFY_DN = DN, PREQUALIFY_USER = USER })
    check("token-env", env, {}, nil, { token })
  end)

  it("with a password on stdin", function()
    local env = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = "prequalify", PREQUALIFY_USERNAME = "approver",
                                   PREQUALIFY_DN = DN, PREQUALIFY_USER = USER })
    check("password-stdin", env, { "--password-stdin" }, helpers.APPROVER_PASSWORD .. "\n",
      { helpers.APPROVER_PASSWORD })
  end)

  it("with a refresh token file (both the old and the rotated refresh token)", function()
    local _, reply = emu:token{ username = "approver" }
    local rt = cli.secret_file(dir, "refresh", reply.refresh_token)
    local env = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = "prequalify", PREQUALIFY_REFRESH_TOKEN_FILE = rt,
                                   PREQUALIFY_DN = DN, PREQUALIFY_USER = USER })
    check("refresh-file", env, {}, nil, { reply.refresh_token, reply.access_token })
    local rotated = helpers.read_file(rt):gsub("%s+$", "")
    assert.are_not.equal(reply.refresh_token, rotated)
    for _, name in ipairs{ "refresh-file.journal", "refresh-file.json", "refresh-file.audit" } do
      assert.falsy(helpers.read_file(dir .. "/" .. name):find(rotated, 1, true), name)
    end
  end)
end)

describe("prequalify emulator #emulator #nosan", function()
  it("runs the emulator in the foreground until Ctrl-C, then exits 0", function()
    local pipe, pgid = cli.spawn({ cli.CLI, "emulator", "--port", "0", "--control", "--max-lifetime", "120" })
    local ready = pipe:read("l")
    assert.truthy(ready and ready:match("^READY url=https://localhost:%d+ ca=/"), ready)
    local url, ca = ready:match("url=(%S+) ca=(%S+)")
    local p = io.popen("curl -sS --cacert " .. cli.q(ca) .. " " .. cli.q(url .. "/__emulator__/requests"))
    local body = p:read("a")
    p:close()
    assert.equal(0, cjson.decode(body).count)
    -- Ctrl-C reaches the whole foreground process group.
    os.execute("kill -INT -" .. pgid)
    pipe:read("a")
    local ok, how, code = pipe:close()
    assert.is_true(ok, tostring(how) .. " " .. tostring(code))
  end)

  it("stops on a SIGTERM sent to its own pid and leaves no process behind", function()
    local pipe, pid = cli.spawn({ cli.CLI, "emulator", "--port", "0", "--max-lifetime", "120" })
    local ready = pipe:read("l")
    assert.truthy(ready and ready:match("^READY "), ready)
    os.execute("kill -TERM " .. pid) -- the pid only, as `prequalify emulator & kill $!` does
    -- Waits for that pid to end (bounded), then looks for anything left of
    -- its process group (cli.spawn made the pid a group leader).
    os.execute("timeout 60 tail --pid=" .. pid .. " -f /dev/null")
    local p = io.popen("pgrep -g " .. pid)
    local left = p:read("a")
    p:close()
    if left ~= "" then os.execute("kill -TERM -" .. pid) end -- so that the pipe closes
    pipe:read("a")
    local ok, how, code = pipe:close()
    assert.equal("", left)
    assert.is_true(ok, tostring(how) .. " " .. tostring(code))
  end)

  it("says where it looked when the emulator is missing", function()
    local emulator = require "prequalify.cli.emulator"
    local getenv = function(k) return k == "PREQUALIFY_EMULATOR" and "/nonexistent/x.py" or nil end
    local path, looked = emulator.find("/nowhere/bin/prequalify", getenv)
    assert.is_nil(path)
    assert.same({ "/nonexistent/x.py", "/nowhere/bin/../emulator/tpp_emulator.py",
                  "/nowhere/bin/../share/prequalify/emulator/tpp_emulator.py" }, looked)
    assert.equal(cli.ROOT .. "/bin/../emulator/tpp_emulator.py",
      emulator.find(cli.ROOT .. "/bin/prequalify", function() return nil end))
  end)
end)

describe("prequalify installed #slow #nosan", function()
  local function works(bin, dir, script)
    local r = cli.exec({ bin, "--version" }, { cwd = dir })
    assert.equal(0, r.code, r.err)
    helpers.write_file(dir .. "/x.bin", "hello")
    r = cli.exec({ bin, "digest", "x.bin" }, { cwd = dir })
    assert.equal(0, r.code, r.err)
    assert.equal(cli.sha256_b64(dir .. "/x.bin") .. "  x.bin\n", r.out)
    -- The emulator was installed beside the script, and is found.
    local emulator = require "prequalify.cli.emulator"
    assert.truthy(emulator.find(script or bin, function() return nil end), "no emulator for " .. (script or bin))
  end

  it("by cmake --install --prefix, runs with no LUA_PATH set", function()
    local prefix = helpers.tmpdir()
    assert.equal(0, cli.exec({ "cmake", "--install", cli.ROOT .. "/build", "--prefix", prefix }).code)
    works(prefix .. "/bin/prequalify", prefix)
    helpers.rm_rf(prefix)
  end)

  it("by luarocks make --tree, runs through the LuaRocks wrapper", function()
    local tree = helpers.tmpdir()
    local r = cli.exec({ "luarocks", "make", "rockspec/prequalify-scm-1.rockspec", "--tree", tree,
                         "--deps-mode=none" }, { cwd = cli.ROOT })
    assert.equal(0, r.code, r.out .. r.err)
    local wrapper = helpers.read_file(tree .. "/bin/prequalify")
    assert.truthy(wrapper, "no bin/prequalify in the tree")
    local real = wrapper:match("'([^']*/bin/prequalify)'")
    assert.truthy(real, wrapper)
    works(tree .. "/bin/prequalify", tree, real)
    helpers.rm_rf(tree)
  end)
end)
