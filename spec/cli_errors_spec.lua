-- The command line's errors name what the user typed: the option, the
-- environment variable or the config file and line a bad value came from,
-- never a Lua option name; and they say what is wrong with the value.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"

local DN, USER = cli.DN, cli.USER
local REQUEST = { "--dn", DN, "--user", USER, "--comment", "c", "--data", helpers.SHA256_B64 }

local function with(list, ...)
  local out = {}
  for _, v in ipairs(list) do out[#out + 1] = v end
  for _, v in ipairs{ ... } do out[#out + 1] = v end
  return out
end

-- A usage error: exit 2, the message on stderr, nothing on stdout.
local function usage(r, ...)
  assert.equal(2, r.code, r.err)
  for _, text in ipairs{ ... } do assert.truthy(r.err:find(text, 1, true), text .. " in: " .. r.err) end
  assert.equal("", r.out)
end

describe("prequalify errors name the source of a value #nosan", function()
  local dir
  setup(function() dir = helpers.tmpdir() end)
  teardown(function() helpers.rm_rf(dir) end)

  it("says what is wrong with a negative --hours, not 'unknown option'", function()
    local r = cli.run(with({ "submit", "--hours", "-1" }, table.unpack(REQUEST)))
    usage(r, "--hours must be a whole number >= 1, got '-1'")
    assert.falsy(r.err:find("unknown option", 1, true))
    usage(cli.run{ "batch", "--concurrency", "-3", "m.jsonl" }, "--concurrency must be a whole number >= 1, got '-3'")
  end)

  it("names --jwt-file and PREQUALIFY_JWT_ENV, not the Lua auth fields, when the JWT cannot be had", function()
    local missing = dir .. "/no-such.jwt"
    local r = cli.run{ "token", "get", "--out", "-", "--url", "https://127.0.0.1:9", "--client-id", "x",
                       "--jwt-file", missing }
    assert.equal(1, r.code, r.err)
    assert.truthy(r.err:find("--jwt-file could not be read: " .. missing, 1, true), r.err)
    assert.falsy(r.err:find("auth.jwt", 1, true), r.err)
    r = cli.run({ "token", "get", "--out", "-", "--url", "https://127.0.0.1:9", "--client-id", "x" },
      { env = { PREQUALIFY_JWT_ENV = "PQ_SPEC_UNSET_JWT" } })
    assert.equal(1, r.code, r.err)
    assert.truthy(r.err:find("PREQUALIFY_JWT_ENV: the environment variable PQ_SPEC_UNSET_JWT is not set", 1, true),
      r.err)
    assert.falsy(r.err:find("auth.jwt", 1, true), r.err)
  end)

  it("names --insecure-http, not the Lua option, for an http:// url", function()
    local r = cli.run(with({ "submit", "--url", "http://localhost:1", "--token-stdin" }, table.unpack(REQUEST)),
      { stdin = "t\n" })
    usage(r, "--url: http://localhost:1 uses http://", "--insecure-http")
    assert.falsy(r.err:find("allow_insecure_http", 1, true))
    r = cli.run(with({ "submit" }, table.unpack(REQUEST)),
      { env = { PREQUALIFY_URL = "http://localhost:1", PREQUALIFY_TOKEN = "t" } })
    usage(r, "PREQUALIFY_URL: http://localhost:1 uses http://", "--insecure-http")
  end)

  it("names PREQUALIFY_HOURS for a bad value from the environment", function()
    local r = cli.run(with({ "submit", "--url", "https://localhost:1" }, table.unpack(REQUEST)),
      { env = { PREQUALIFY_HOURS = "0", PREQUALIFY_TOKEN = "t" } })
    usage(r, "PREQUALIFY_HOURS: hours must be")
    assert.falsy(r.err:find("--hours", 1, true))
  end)

  it("names PREQUALIFY_COMMENT and a config line for a bad comment, not --comment", function()
    local r = cli.run({ "submit", "--url", "https://localhost:1", "--dn", DN, "--user", USER,
                        "--data", helpers.SHA256_B64 },
      { env = { PREQUALIFY_COMMENT = "release\1", PREQUALIFY_TOKEN = "t" } })
    usage(r, "PREQUALIFY_COMMENT: comment must not contain control character 0x01")
    local conf = helpers.write_file(dir .. "/comment.conf", "dn = " .. DN .. "\ncomment = \"build\1 {name}\"\n")
    r = cli.run{ "plan", "--config", conf, "--files", dir .. "/*.bin", "--user", USER }
    usage(r, "config " .. conf .. ":2: comment must not contain control character 0x01")
  end)

  it("names the config file and line of a bad value, in submit, batch and plan", function()
    local conf = helpers.write_file(dir .. "/release.conf", "# release settings\nurl = https://localhost:1\n"
      .. "hours = 9999\n")
    local r = cli.run(with({ "submit", "--config", conf, "--token-stdin" }, table.unpack(REQUEST)), { stdin = "t\n" })
    usage(r, "config " .. conf .. ":3: hours must be")
    for _, command in ipairs{ "batch", "plan" } do
      r = cli.run{ command, "--config", conf, "--files", dir .. "/*.bin", "--dn", DN, "--user", USER,
                   "--comment", "c {name}" }
      usage(r, "config " .. conf .. ":3: hours must be")
    end
  end)

  it("names a --ca-file that is not PEM", function()
    local der = helpers.write_file(dir .. "/corp-ca.der", "\48\130\1\10 not a PEM file")
    local r = cli.run(with({ "submit", "--url", "https://localhost:1", "--ca-file", der, "--token-stdin" },
      table.unpack(REQUEST)), { stdin = "t\n" })
    usage(r, "--ca-file: " .. der .. " is not a PEM file")
    r = cli.run(with({ "submit", "--url", "https://localhost:1", "--token-stdin" }, table.unpack(REQUEST)),
      { stdin = "t\n", env = { PREQUALIFY_CA_FILE = dir .. "/missing.pem" } })
    usage(r, "PREQUALIFY_CA_FILE: cannot read " .. dir .. "/missing.pem")
  end)
end)

describe("prequalify errors against the emulator #emulator #nosan", function()
  local emu, dir
  hooks.emulator({ dir = "block" }, function(e, _, d) emu, dir = e, d end)

  it("names the --ca-file given when it does not hold the server's CA", function()
    local other = "/etc/ssl/certs/ca-certificates.crt"
    local r = cli.run(with({ "submit", "--url", emu.url, "--ca-file", other, "--token-stdin" },
      table.unpack(REQUEST)), { stdin = "t\n" })
    assert.equal(1, r.code, r.err)
    assert.truthy(r.out:find("not trusted: neither --ca-file (" .. other .. ") nor the system store", 1, true),
      r.out)
    assert.falsy(r.out:find("add your CA", 1, true), r.out)
    -- Without a CA the advice to add one stays.
    r = cli.run(with({ "submit", "--url", emu.url, "--token-stdin" }, table.unpack(REQUEST)), { stdin = "t\n" })
    assert.equal(1, r.code, r.err)
    assert.truthy(r.out:find("add your CA with ca_file", 1, true), r.out)
  end)

  it("warns about the scope asked for, not the integration's, for --scope configuration", function()
    local r = cli.run({ "token", "get", "--out", dir .. "/t", "--scope", "configuration" }, {
      env = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = "prequalify", PREQUALIFY_USERNAME = "approver",
                               PREQUALIFY_PASSWORD = helpers.APPROVER_PASSWORD }) })
    assert.equal(0, r.code, r.err)
    assert.truthy(r.err:find("the scope asked for 'configuration' lacks codesign:approve", 1, true), r.err)
    assert.truthy(r.err:find("--scope", 1, true), r.err)
    assert.falsy(r.err:find("give the API integration", 1, true), r.err)
  end)
end)
