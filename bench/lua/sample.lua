--- The request every bench client sends, so that the Lua batch runner, the C
-- baseline and curl put the same bytes on the wire, plus the small helpers
-- the bench scripts share (arguments, JSON output, peak RSS).
local core = require "prequalify.core"
local cjson = require "cjson"

local M = {}

M.PATH = "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create"
M.TOKEN = "bench-token"
-- The emulator knows this environment and this user (spec/helpers.lua).
M.DN = [[\VED\Code Signing\Projects\Sample\Production Environment]]
M.USER = "local:sample-cs-user"
-- Long enough for a 250-byte body, as in the issue's reference figures.
M.COMMENT = "OPS-4711 release 2.14.0 build 8812 of the Windows installer, nightly pipeline"

-- A production-like policy of 8 rules (bench section 3, and the batch with a
-- policy): every rule allows the bench requests (distinct digests, hours
-- 2), so all eight run for every request.
local function blocked()
  local out = {}
  for i = 1, 100 do out[i] = core.digest_data("blocked artifact " .. i, "sha256") end
  return out
end
M.RULES = {
  { "environment", function(p) return p.environment{ [[\VED\Code Signing\Projects\**\Production*]] } end },
  { "users", function(p) return p.users{ allow = { M.USER, "local:build-bot" } } end },
  { "max_hours", function(p) return p.max_hours(4) end },
  { "comment_matches", function(p) return p.comment_matches("%f[%w]%u[%u%d]*%-%d+") end },
  { "algorithms", function(p) return p.algorithms{ "sha256", "sha384", "sha512" } end },
  { "deny_hashes", function(p) return p.deny_hashes(blocked()) end },
  { "time_window", function(p)
    return p.time_window{ days = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" }, from = "00:00",
                          to = "23:59" }
  end },
  { "unique", function(p) return p.unique() end },
}
-- A Wednesday, 12:00 UTC (the policy's ctx.now).
M.NOW = 1700654400

--- The policy of the 8 rules.
function M.policy()
  local policy = require "prequalify.policy"
  local parts = {}
  for i, r in ipairs(M.RULES) do parts[i] = r[2](policy) end
  return policy.all(parts)
end

-- Distinct SHA-256-sized digests (Base64 of 32 bytes): one real digest with
-- an item's number written over twelve of its characters, four digits at a
-- time from a table. Hashing each item's own text (8.8k instructions an
-- item), or even formatting its number (1k), was the bench's cost, which
-- section 7 counted against the batch: it counts the whole client process,
-- and the C baseline makes no inputs at all.
local D = core.digest_data("bench artifact", "sha256")
local HEAD, TAIL = D:sub(1, 30), D:sub(43)
local DIGITS = {}
for k = 0, 9999 do DIGITS[k] = string.format("%04d", k) end

--- The digest of item i (Base64; distinct for i < 10^12).
function M.digest(i)
  return HEAD .. DIGITS[i // 100000000 % 10000] .. DIGITS[i // 10000 % 10000] .. DIGITS[i % 10000] .. TAIL
end

--- Distinct digests to cycle through.
function M.digests(n)
  local out = {}
  for i = 1, n do out[i] = M.digest(i) end
  return out
end

--- The fields of item i (a fresh table, as a manifest reader would make),
-- with the digest of `digests` (cycled), or else made for it.
function M.fields(digests, i)
  local data = digests and digests[(i - 1) % #digests + 1] or M.digest(i)
  return { dn = M.DN, data = data, comment = M.COMMENT, user = M.USER }
end

--- An iterator of n fresh request tables, one per item (as a manifest
-- reader would make them), each with its own digest; `hours` set in each
-- when given. It makes a table and a digest string per item and calls
-- nothing else: section 7 counts its work against the batch.
function M.items(n, hours)
  local i, digest, dn, comment, user = 0, M.digest, M.DN, M.COMMENT, M.USER
  return function()
    if i >= n then return nil end
    i = i + 1
    local t = { dn = dn, data = digest(i), comment = comment, user = user }
    if hours then t.hours = hours end
    return t
  end
end

--- `--name value` pairs and `--flag` switches into a table.
function M.args(argv)
  local t, i = {}, 1
  while i <= #argv do
    local k = argv[i]:match("^%-%-([%w-]+)$")
    if not k then error("unexpected argument: " .. argv[i]) end
    local v = argv[i + 1]
    if v == nil or v:sub(1, 2) == "--" then
      t[k] = true
      i = i + 1
    else
      t[k] = v
      i = i + 2
    end
  end
  return t
end

--- Peak and current resident set size of this process, in KiB.
function M.rss()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmHWM:%s*(%d+)")), tonumber(text:match("VmRSS:%s*(%d+)"))
end

--- Print one result line for the driver.
function M.emit(t)
  io.stdout:write(cjson.encode(t), "\n")
  io.stdout:flush()
end

return M
