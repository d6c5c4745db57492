-- Password-less sign-in against the emulator: the JWT grant (a token from an
-- identity provider the server trusts, as a CI job gets one) and the
-- certificate grant (mutual TLS). Both refresh and rotate as the password
-- grant does. Time moves with the emulator's clock and a matching client
-- clock, never with sleeps.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local prequalify = require "prequalify"

local CLIENT_ID = helpers.CLIENT_ID
local LIFETIME = 60 -- access token lifetime in the emulator, seconds
local JWT_PATH, CERT_PATH = "/vedauth/authorize/jwt", "/vedauth/authorize/certificate"
local TOKEN, CREATE = "/vedauth/authorize/token", "/PreQualify/Create"

describe("password-less sign-in #emulator", function()
  local emu, dir
  local clock, advance, reset_clock -- a client clock that follows the emulator's
  local clients = {}

  local function client(auth)
    local c, err = prequalify.client{ url = emu.url, ca_file = emu.ca, auth = auth, warn = function() end }
    if c then clients[#clients + 1] = c end
    return c, err
  end

  local function request()
    return { dn = helpers.DN_PROD, data = helpers.SHA256_B64, comment = "sign-in spec", user = helpers.USER }
  end

  hooks.emulator({ start = { token_lifetime = LIFETIME, refresh_lifetime = 3600 }, reset = true, dir = "block",
                   lazy = true }, function(e, _, d) emu, dir = e, d end)

  lazy_setup(function()
    clock, advance, reset_clock = emu:shared_clock()
  end)

  before_each(function()
    reset_clock()
  end)

  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    clients = {}
  end)

  describe("with a JWT", function()
    it("signs in, refreshes, and after the grant expires signs in again with the JWT the file holds now", function()
      local first = emu:jwt{ identity = "approver", expires_in = 120 }
      local path = helpers.write_file(dir .. "/ci.jwt", first .. "\n", "600")
      local c = assert(client{ client_id = CLIENT_ID, jwt_file = path, clock = clock })
      assert.equal(0, emu:received(JWT_PATH)) -- nothing is sent before the first call
      assert.is_true(assert(c:prequalify(request())).ok)
      assert.equal(1, emu:received(JWT_PATH))
      -- The CI system rotates the JWT; the first one expires.
      helpers.write_file(path, emu:jwt{ identity = "approver", expires_in = 7200 } .. "\n", "600")
      advance(LIFETIME - 10) -- inside the refresh margin: a refresh, not a new sign-in
      assert.is_true(assert(c:prequalify(request())).ok)
      assert.equal(1, emu:received(JWT_PATH))
      assert.equal(1, emu:received(TOKEN))
      advance(3601) -- past the grant's refresh_until, and past the first JWT's exp
      local res, err = c:prequalify(request())
      assert.is_nil(err)
      assert.is_true(res.ok)
      -- A sign-in with the old JWT would have been refused before sending.
      assert.equal(2, emu:received(JWT_PATH))
      assert.equal(3, emu:received(CREATE))
      assert.equal(1, c:auth_info().refreshes)
    end)

    it("refuses an expired JWT before sending anything, and says when it expired", function()
      local jwt = emu:jwt{ identity = "approver", expires_in = -30 }
      local c = assert(client{ client_id = CLIENT_ID, jwt = jwt })
      local res, err = c:prequalify(request())
      assert.is_nil(res)
      assert.same({ "auth", "not_sent", "expired", "auth.jwt" }, { err.kind, err.outcome, err.jwt, err.field })
      assert.matches("the JWT from auth.jwt expired at %d%d%d%d%-%d%d%-%d%dT[%d:]+Z %(%d+ s ago%)", err.message)
      assert.equal(0, emu:received(""))
      assert.not_matches(jwt, tostring(err), 1, true)
    end)

    it("refuses a malformed JWT before sending anything", function()
      local path = helpers.write_file(dir .. "/bad.jwt", "this-is-not-a-jwt\n", "600")
      local c = assert(client{ client_id = CLIENT_ID, jwt_file = path })
      local _, err = c:prequalify(request())
      assert.same({ "auth", "malformed", "auth.jwt_file" }, { err.kind, err.jwt, err.field })
      assert.matches("the JWT from auth.jwt_file " .. path .. " is malformed: it is not three Base64url parts",
        err.message, 1, true)
      assert.equal(0, emu:received(""))
    end)

    it("gives an auth error for a JWT whose subject maps to no identity", function()
      local c = assert(client{ client_id = CLIENT_ID, jwt = emu:jwt{ identity = "nobody-at-all" } })
      local _, err = c:prequalify(request())
      assert.same({ "auth", "invalid_grant", "auth.jwt" }, { err.kind, err.error_code, err.field })
      assert.matches("the JWT from auth.jwt was refused", err.message, 1, true)
      assert.matches("No identity is mapped to the JWT subject 'nobody-at-all'", err.message, 1, true)
      assert.equal(0, emu:received(CREATE))
    end)

    it("gives an auth error for a JWT meant for another audience", function()
      local c = assert(client{ client_id = CLIENT_ID, jwt = emu:jwt{ aud = "https://other.example" } })
      local _, err = c:prequalify(request())
      assert.same({ "auth", "invalid_grant" }, { err.kind, err.error_code })
      assert.matches("its audience 'https://other.example' is not", err.message, 1, true)
      assert.equal(0, emu:received(CREATE))
    end)

    it("is used from the command line with --jwt-env and PREQUALIFY_JWT_FILE; an expired one is not sent", function()
      local cli = require "fixtures.cli"
      local env = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = CLIENT_ID, CI_JOB_JWT = emu:jwt{} })
      local out = dir .. "/cli-access"
      local r = cli.run({ "token", "get", "--jwt-env", "CI_JOB_JWT", "--out", out, "--json" }, { env = env })
      assert.equal(0, r.code, r.out .. r.err)
      assert.matches("local:{", cli.json(r).identity, 1, true)
      assert.equal(1, emu:received(JWT_PATH))
      env.PREQUALIFY_JWT_FILE = helpers.write_file(dir .. "/old.jwt", emu:jwt{ expires_in = -60 }, "600")
      env.CI_JOB_JWT = nil
      r = cli.run({ "submit", "--dn", helpers.DN_PROD, "--user", helpers.USER, "--comment", "cli jwt",
                    "--data", helpers.SHA256_B64 }, { env = env })
      assert.equal(1, r.code, r.out .. r.err)
      assert.matches("the JWT from PREQUALIFY_JWT_FILE " .. dir .. "/old.jwt expired at", r.out .. r.err, 1, true)
      assert.equal(1, emu:received(JWT_PATH))
    end)

    it("gives an auth error naming the variable when jwt_env is not set", function()
      local c = assert(client{ client_id = CLIENT_ID, jwt_env = "PREQUALIFY_SPEC_UNSET_JWT_VARIABLE" })
      local _, err = c:prequalify(request())
      assert.same({ "auth", "auth.jwt_env" }, { err.kind, err.field })
      assert.matches("PREQUALIFY_SPEC_UNSET_JWT_VARIABLE is not set or empty", err.message, 1, true)
      assert.equal(0, emu:received(""))
    end)
  end)

  describe("with a client certificate", function()
    it("signs in over mutual TLS with a certificate whose subject is mapped, and refreshes", function()
      local cert, key = emu:client_cert("approver", dir)
      local c = assert(client{ client_id = CLIENT_ID, client_cert = cert, client_key = key, clock = clock })
      assert.is_true(assert(c:prequalify(request())).ok)
      advance(LIFETIME - 10)
      assert.is_true(assert(c:prequalify(request())).ok)
      assert.equal(1, emu:received(CERT_PATH))
      assert.equal(1, emu:received(TOKEN))
      assert.matches("local:{", assert(c:token_info()).identity, 1, true)
    end)

    it("gives an auth error for a certificate whose subject maps to no identity", function()
      local cert, key = emu:client_cert("stranger", dir)
      local c = assert(client{ client_id = CLIENT_ID, client_cert = cert, client_key = key })
      local _, err = c:prequalify(request())
      assert.same({ "auth", "invalid_grant", "auth.client_cert" }, { err.kind, err.error_code, err.field })
      assert.matches("sign-in with the client certificate " .. cert .. " was refused", err.message, 1, true)
      assert.matches("CN=stranger", err.message, 1, true)
      assert.equal(0, emu:received(CREATE))
    end)

    it("refuses a missing key file with an invalid error naming the path", function()
      local cert = emu:client_cert("approver", dir)
      local missing = dir .. "/no-such.key"
      local c, err = client{ client_id = CLIENT_ID, client_cert = cert, client_key = missing }
      assert.is_nil(c)
      assert.same({ "invalid", "auth.client_key" }, { err.kind, err.field })
      assert.matches("auth.client_key " .. missing .. " cannot be read", err.message, 1, true)
    end)

    it("is used from the command line with --certificate-grant, and needs --client-cert for it", function()
      local cli = require "fixtures.cli"
      local cert, key = emu:client_cert("approver", dir)
      local env = cli.emu_env(emu, { PREQUALIFY_CLIENT_ID = CLIENT_ID, PREQUALIFY_CLIENT_CERT = cert,
                                     PREQUALIFY_CLIENT_KEY = key })
      local args = { "submit", "--certificate-grant", "--dn", helpers.DN_PROD, "--user", helpers.USER,
                     "--comment", "cli certificate", "--data", helpers.SHA256_B64 }
      local r = cli.run(args, { env = env })
      assert.equal(0, r.code, r.out .. r.err)
      assert.equal(1, emu:received(CERT_PATH))
      env.PREQUALIFY_CLIENT_CERT = nil
      r = cli.run(args, { env = env })
      assert.equal(2, r.code, r.out .. r.err)
      assert.matches("a certificate sign-in needs --client-cert and --client-key", r.err, 1, true)
    end)

    it("refuses two different certificates, one as a client option and one in auth", function()
      local cert, key = emu:client_cert("approver", dir)
      local other, other_key = emu:client_cert("approver", dir, "other")
      local c, err = prequalify.client{ url = emu.url, ca_file = emu.ca, client_cert = other, client_key = other_key,
                                        auth = { client_id = CLIENT_ID, client_cert = cert, client_key = key } }
      assert.is_nil(c)
      assert.same({ "invalid", "auth.client_cert" }, { err.kind, err.field })
      assert.matches("give the client certificate once", err.message, 1, true)
      -- The same files in both places (as the CLI passes them) are one certificate.
      c = assert(prequalify.client{ url = emu.url, ca_file = emu.ca, client_cert = cert, client_key = key,
                                    auth = { client_id = CLIENT_ID, client_cert = cert, client_key = key } })
      assert.is_true(assert(c:prequalify(request())).ok)
      c:close()
    end)
  end)
end)
