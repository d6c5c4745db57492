-- The example policies in examples/policies/: each runs a set of requests
-- (with the clock fixed) and every decision is checked.
local policy = require "prequalify.policy"
local core = require "prequalify.core"

local DIR = "examples/policies/"
local PROD = [[\VED\Code Signing\Projects\Payments\Production]]
local STAGING = [[\VED\Code Signing\Projects\Payments\Staging]]
local QA = [[\VED\Code Signing\Projects\Payments\QA Nightly]]
local DEV = [[\VED\Code Signing\Projects\Payments\Dev]]

-- sha256 digests of "release 4.2 build 118/119/120" and "staging nightly 77"
local BUILD_118 = "rV3aqsAEEF6PwDsAWJr5l1rZvIntSA/gq+snOgsXZBU="
local BUILD_119 = "9cwcX/rYnj3ssK03xkSKqUr2YDjvcPgVIERDKPVcLpg="
local NIGHTLY = "XacSDiuDZKFr16ZptjbyrAvzG/TvOVFoDrmmc8144JU="
local SHA384 = "51BLVl0QbmFMYHMezOSQ5HC/ZkMPAwhpvBmT0mqbfrf8eZapM6nhPfwUSjY9VYSL"
-- on the block list: as hex (empty.bin, installer), as Base64 (debug build, old tool)
local EMPTY = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
local INSTALLER = "iGUlP9fuLVyroQViOlXOx+T8BC14bsTrXlrSPdgZY1A="
local DEBUG_BUILD = "vZpbzwRIZXSVIbZHEm9apNAipHB9/c1ryQpxFF2qur8="
local OLD_TOOL = "yP+m9+targSctOHqh/CgX0BlyBk="

-- Tuesday 2026-11-24 09:30 UTC (10:30 at UTC+01:00)
local TUESDAY = 1795512600
local HOUR, DAY = 3600, 86400

local function request(over)
  local t = {
    dn = PROD, data = BUILD_118, comment = "release 4.2 build 118 (OPS-4711)",
    user = "local:build-bot", hours = 4, single_use = true,
  }
  for k, v in pairs(over or {}) do
    if v == "none" then t[k] = nil else t[k] = v end
  end
  return t
end

local function load(name)
  local p, err = policy.load(DIR .. name)
  assert(p, err and err.message)
  return p
end

-- The decisive reason of a denied decision, or "allow"/"adjust".
local function outcome(d)
  if d.allow then return d.verdict end
  return d.reason
end

local function check(p, cases, now)
  local list, want = {}, {}
  for i, c in ipairs(cases) do list[i], want[i] = c[1], c[2] end
  local ds = policy.plan(list, p, { now = now })
  local got = {}
  for i, d in ipairs(ds) do got[i] = outcome(d) end
  assert.same(want, got)
  return ds
end

describe("examples/policies/production.lua", function()
  local p = load("production.lua")

  it("loads", function()
    assert.is_function(p)
  end)

  it("decides a set of requests made on a Tuesday morning", function()
    local ds = check(p, {
      { request(), "allow" },
      { request{ data = SHA384, comment = "REL-77 hotfix" }, "allow" },
      { request{ hours = "none" }, "max_hours(4): 24 requested (server default) exceeds 4" },
      { request{ hours = 8 }, "max_hours(4): 8 requested exceeds 4" },
      { request{ single_use = "none" },
        "require_single_use(): single_use is not set (the server default allows unlimited use until expiry)" },
      { request{ user = "local:alice" }, "users(allow local:build-bot): local:alice is not on the allow list" },
      { request{ comment = "nightly rebuild" },
        'comment_matches(%f[%w]%u[%u%d]*%-%d+): comment "nightly rebuild" does not match %f[%w]%u[%u%d]*%-%d+' },
      { request{ data = OLD_TOOL },
        "algorithms(sha256, sha384, sha512): sha1 (20 bytes) is not one of sha256, sha384, sha512" },
      { request{ data = EMPTY },
        "deny_hashes(blocklist.txt, 4 hashes): 47DEQpj8HBSa... is on the deny list (blocklist.txt:7 empty.bin)" },
      { request{ data = DEBUG_BUILD }, "deny_hashes(blocklist.txt, 4 hashes): vZpbzwRIZXSV... is on the deny list " ..
        "(blocklist.txt:13 debug-build-118.exe)" },
      { request{ dn = STAGING }, "environment(\\VED\\Code Signing\\Projects\\**\\Production*): " .. STAGING ..
        " does not match \\VED\\Code Signing\\Projects\\**\\Production*" },
      { request{ dn = [[\VED\Code Signing\Projects\Payments\Production EU]] }, "allow" },
    }, TUESDAY)
    -- nothing is adjusted: what is sent is what was asked for
    assert.equal(4, ds[1].request.hours)
    assert.equal(8, #ds[1].trail)
  end)

  it("denies outside business hours", function()
    check(p, {
      { request(), "time_window(mon-fri 09:00-17:00 UTC+01:00): " ..
        "Sat 2026-11-28 10:30 UTC+01:00 is outside mon-fri 09:00-17:00" },
    }, TUESDAY + 4 * DAY)
    check(p, {
      { request(), "time_window(mon-fri 09:00-17:00 UTC+01:00): " ..
        "Tue 2026-11-24 17:00 UTC+01:00 is outside mon-fri 09:00-17:00" },
    }, TUESDAY + 6.5 * HOUR)
    check(p, { { request(), "allow" } }, TUESDAY + 6.5 * HOUR - 60)
  end)
end)

describe("examples/policies/staging.lua", function()
  local p = load("staging.lua")

  it("decides a set of staging and QA requests", function()
    check(p, {
      { request{ dn = STAGING, hours = "none", single_use = "none", comment = "nightly" }, "allow" },
      { request{ dn = QA, user = "AD+corp:JDOE", data = NIGHTLY }, "allow" },
      { request{ dn = STAGING, user = "local:release-eng", hours = 24 }, "allow" },
      { request{ dn = STAGING, hours = 48 }, "max_hours(24): 48 requested exceeds 24" },
      { request{ dn = STAGING, user = "local:alice" }, "users(allow local:build-bot, local:release-eng, " ..
        "AD+corp:jdoe): local:alice is not on the allow list" },
      { request{ dn = STAGING, data = INSTALLER }, "deny_hashes(blocklist.txt, 4 hashes): iGUlP9fuLVyr... " ..
        "is on the deny list (blocklist.txt:10 installer-1.2.3.msi)" },
      { request{ dn = STAGING, data = OLD_TOOL },
        "algorithms(sha256, sha384, sha512): sha1 (20 bytes) is not one of sha256, sha384, sha512" },
      { request(), "environment(\\VED\\Code Signing\\Projects\\**\\Staging*, " ..
        "\\VED\\Code Signing\\Projects\\**\\QA*): " .. PROD .. " matches none of " ..
        "\\VED\\Code Signing\\Projects\\**\\Staging*, \\VED\\Code Signing\\Projects\\**\\QA*" },
    }, TUESDAY)
  end)

  it("allows at any time of the week", function()
    check(p, { { request{ dn = STAGING }, "allow" } }, TUESDAY + 5 * DAY - 6.5 * HOUR) -- Sunday 03:00
  end)
end)

describe("examples/policies/release-train.lua", function()
  local p = load("release-train.lua")
  local WINDOW = TUESDAY + 2 * HOUR -- Tuesday 11:30 UTC

  it("decides a release train's requests during the window", function()
    local ds = check(p, {
      { request{ dn = STAGING, data = NIGHTLY, hours = "none", single_use = "none" }, "allow" },
      { request{ dn = STAGING, data = BUILD_119, hours = 48 }, "adjust" },
      { request{ comment = "REL-12 payments 4.2", hours = "none", single_use = "none" }, "adjust" },
      { request{ data = SHA384, comment = "payments 4.2" },
        'comment_matches(REL%-%d+): comment "payments 4.2" does not match REL%-%d+' },
      { request{ dn = DEV, data = SHA384 },
        "other environments: " .. DEV .. " is neither staging nor production" },
      { request{ user = "local:alice", data = SHA384 }, "users(allow local:build-bot, local:release-captain): " ..
        "local:alice is not on the allow list" },
      { request{ dn = STAGING, data = EMPTY }, "deny_hashes(blocklist.txt, 4 hashes): 47DEQpj8HBSa... " ..
        "is on the deny list (blocklist.txt:7 empty.bin)" },
    }, WINDOW)
    assert.is_nil(ds[1].request.hours)
    assert.equal(24, ds[2].request.hours)
    assert.equal(8, ds[3].request.hours)
    assert.is_true(ds[3].request.single_use)
    assert.same({
      "adjust clamp_hours(8): 24 requested (server default) clamped to 8",
      "adjust force_single_use(): single_use set (was not set)",
    }, {
      ds[3].trail[9].verdict .. " " .. ds[3].trail[9].rule .. ": " .. ds[3].trail[9].reason,
      ds[3].trail[10].verdict .. " " .. ds[3].trail[10].rule .. ": " .. ds[3].trail[10].reason,
    })
  end)

  it("keeps production closed outside the release window, and staging open", function()
    check(p, {
      { request{ comment = "REL-12" }, "time_window(tue,thu 10:00-14:00 UTC): " ..
        "Wed 2026-11-25 11:30 UTC is outside tue,thu 10:00-14:00" },
      { request{ dn = STAGING }, "allow" },
    }, WINDOW + DAY)
  end)

  it("approves each hash once per train, not counting denied attempts", function()
    check(p, {
      { request{ comment = "no ticket" }, 'comment_matches(REL%-%d+): comment "no ticket" does not match REL%-%d+' },
      { request{ comment = "REL-12" }, "allow" },
      { request{ comment = "REL-12 again" }, "unique(): rV3aqsAEEF6P... was already approved in this batch" },
      { request{ dn = STAGING, comment = "REL-12" }, "unique(): rV3aqsAEEF6P... was already approved in this batch" },
    }, WINDOW)
  end)

  it("allows at most 20 production approvals an hour", function()
    local cases = {}
    for i = 1, 21 do
      local data = core.b64encode(string.pack(">I4", i) .. string.rep("\1", 28))
      cases[i] = { request{ data = data, comment = "REL-12 artifact " .. i }, "allow" }
    end
    cases[21][2] = "rate_limit(20 per 1h by environment): " .. PROD ..
      " already has 20 approvals in the last 1h (max 20)"
    cases[22] = { request{ dn = STAGING, data = NIGHTLY }, "allow" }
    check(p, cases, WINDOW)
  end)
end)
