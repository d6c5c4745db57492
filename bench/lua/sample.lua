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

--- Distinct SHA-256 digests (Base64) to cycle through.
function M.digests(n)
  local out = {}
  for i = 1, n do out[i] = core.digest_data("bench artifact " .. i, "sha256") end
  return out
end

--- The fields of item i (a fresh table, as a manifest reader would make).
function M.fields(digests, i)
  return { dn = M.DN, data = digests[(i - 1) % #digests + 1], comment = M.COMMENT, user = M.USER }
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
