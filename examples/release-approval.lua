--- A release approval, end to end, against the local TPP emulator.
--
--   PREQUALIFY_URL=https://localhost:PORT PREQUALIFY_CA_FILE=ca.pem \
--   PREQUALIFY_PASSWORD_FILE=approver-password lua5.4 examples/release-approval.lua
--
-- (examples/demo.sh starts the emulator and sets these.) The script:
--   1. builds a small sample release into a temporary directory and hashes it;
--   2. decides on every artifact with a production policy, printing the trail;
--   3. signs in as the Key Use Approver and pre-qualifies the allowed hashes
--      in one batch, with progress and a report;
--   4. asks the emulator's simulated signing service to sign every artifact:
--      the pre-qualified hashes are accepted (once: they are single-use), the
--      denied one is refused.
-- It exits 0 when all of that happened as described, 1 otherwise.

-- Run from a source checkout: find lua/ and build/ beside this file.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local ROOT = here:match("^(.*)/examples$") or (here == "examples" and ".") or (here .. "/..")
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/" .. (os.getenv("PREQUALIFY_BUILD") or "build") .. "/?.so;" .. package.cpath

local prequalify = require "prequalify"
local policy = prequalify.policy
local cjson = require "cjson"

local URL = os.getenv("PREQUALIFY_URL")
local CA = os.getenv("PREQUALIFY_CA_FILE")
local PASSWORD_FILE = os.getenv("PREQUALIFY_PASSWORD_FILE")
if not (URL and CA and PASSWORD_FILE) then
  io.stderr:write("set PREQUALIFY_URL, PREQUALIFY_CA_FILE and PREQUALIFY_PASSWORD_FILE (examples/demo.sh does)\n")
  os.exit(2)
end

local RELEASE = "myapp 4.2.0"
local TICKET = "REL-4200"
local DN = [[\VED\Code Signing\Projects\Sample\Production Environment]]
local SIGNER = "local:build-bot"

local function say(...) io.stdout:write(...) io.stdout:write("\n") io.stdout:flush() end
local function step(n, text) say("") say(n, ". ", text) end

-- 1. The release ----------------------------------------------------------------

-- Artifacts: name -> content. The installer step failed and left an empty
-- file, which the security team's block list names (a zero-byte artifact).
local function blob(seed, size)
  local parts, x = {}, seed
  for i = 1, size // 4 do
    x = (x * 1103515245 + 12345) % 2147483648
    parts[i] = string.pack("<I4", x)
  end
  return table.concat(parts)
end

local ARTIFACTS = {
  { name = "myapp-4.2.0-linux-amd64.tar.gz", content = blob(1, 96 * 1024) },
  { name = "myapp-4.2.0-linux-arm64.tar.gz", content = blob(2, 92 * 1024) },
  { name = "myapp-4.2.0-windows-amd64.zip", content = blob(3, 128 * 1024) },
  { name = "myapp-4.2.0-macos-universal.pkg", content = blob(4, 160 * 1024) },
  { name = "myapp-4.2.0-installer.msi", content = "" },
}

-- Into $RELEASE_DIR (an existing directory), or a fresh temporary one.
local dir = os.getenv("RELEASE_DIR")
local own_dir = not dir
if own_dir then dir = assert(io.popen("mktemp -d")):read("l") end
step(1, "Build " .. RELEASE .. " into " .. dir)
for _, a in ipairs(ARTIFACTS) do
  a.path = dir .. "/" .. a.name
  local f = assert(io.open(a.path, "wb"))
  f:write(a.content)
  f:close()
  a.data = assert(prequalify.digest.file(a.path, "sha256"))
  say(string.format("   %-34s %7d bytes  sha256 %s", a.name, #a.content, a.data))
end

-- 2. The policy -----------------------------------------------------------------

-- Production rules (examples/policies/production.lua also limits the time of day).
local production = policy.all{
  policy.environment{ [[\VED\Code Signing\Projects\**\Production*]] },
  policy.users{ allow = { SIGNER } },
  policy.require_single_use(),
  policy.max_hours(4),
  policy.comment_matches("%f[%w]%u[%u%d]*%-%d+"),
  policy.algorithms{ "sha256", "sha384", "sha512" },
  policy.deny_hashes((ROOT == "." and "" or ROOT .. "/") .. "examples/policies/blocklist.txt"),
}

local requests = {}
for i, a in ipairs(ARTIFACTS) do
  requests[i] = {
    dn = DN, user = SIGNER, data = a.data, hours = 2, single_use = true,
    comment = RELEASE .. " " .. a.name .. " (" .. TICKET .. ")",
  }
end

step(2, "Decide with the production policy (no network)")
local decisions = prequalify.plan(requests, production)
for i, d in ipairs(decisions) do
  local a = ARTIFACTS[i]
  a.allowed = d.allow
  if d.allow then
    say(string.format("   ALLOW  %s", a.name))
  else
    say(string.format("   DENY   %s", a.name))
    for line in policy.format_trail(d):gmatch("[^\n]+") do
      if line:sub(1, 2) == "  " then say("     ", line) end
    end
  end
end

-- 3. Pre-qualify ------------------------------------------------------------------

step(3, "Sign in as the Key Use Approver and pre-qualify in one batch")
local client = assert(prequalify.client{
  url = URL, ca_file = CA,
  auth = { client_id = "prequalify", username = "approver", password_file = PASSWORD_FILE },
})
local info = assert(client:token_info())
say("   signed in as approver (", info.identity, "), scope ", info.scope)

local report = assert(client:batch(requests, {
  policy = production, concurrency = 4, progress = true,
  journal = dir .. "/journal.jsonl", report = dir .. "/report.json",
}))
for line in report:summary():gmatch("[^\n]+") do say("   ", line) end
local entries = {}
for entry in report:entries() do entries[#entries + 1] = entry end
table.sort(entries, function(x, y) return x.index < y.index end)
for _, entry in ipairs(entries) do
  local a = ARTIFACTS[entry.index]
  local server = entry.server and string.format("Result %s %s", tostring(entry.server.result),
    entry.server.result_name or "") or "not sent"
  say(string.format("   %-9s %-34s %s", entry.outcome, a.name, server))
end
client:close()

-- 4. Signing ----------------------------------------------------------------------

-- The emulator's test-only signing endpoint stands in for the signing tool:
-- it accepts a hash only while a pre-qualification matches it.
local engine = prequalify.core.engine{ ca_file = CA }
local function sign(a)
  local r = assert(engine:perform{
    method = "POST", url = URL .. "/__emulator__/sign",
    headers = { ["Content-Type"] = "application/json" },
    body = cjson.encode{ dn = DN, user = SIGNER, data = a.data },
  })
  assert(r.status == 200, "the emulator's sign endpoint answered HTTP " .. tostring(r.status))
  local reply = cjson.decode(r.body)
  return reply.allowed, reply.reason
end

step(4, "Sign every artifact (the emulator's simulated signing service)")
local as_expected = true
for _, a in ipairs(ARTIFACTS) do
  local allowed, reason = sign(a)
  say(string.format("   %-8s %-42s %s", allowed and "SIGNED" or "REFUSED", a.name, reason))
  if allowed ~= a.allowed then as_expected = false end
end
local again = ARTIFACTS[1]
local allowed, reason = sign(again)
say(string.format("   %-8s %-42s %s", allowed and "SIGNED" or "REFUSED", again.name .. " (again)", reason))
if allowed then as_expected = false end
engine:close()

say("")
local approved = report.counts.approved
if as_expected and approved == #ARTIFACTS - 1 and report.counts.denied == 1 then
  say(string.format("Done: %d of %d artifacts pre-qualified and signed once each; %s was denied by the policy "
    .. "and could not be signed.", approved, #ARTIFACTS, ARTIFACTS[#ARTIFACTS].name))
  if own_dir then os.execute("rm -rf '" .. dir .. "'") end
  os.exit(0)
end
say("Unexpected result: see ", dir, "/report.json")
os.exit(1)
