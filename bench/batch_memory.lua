--- Peak memory of a streamed batch: 10,000 vs 100,000 manifest items sent
-- through client:batch against the emulator, each run in its own process
-- (peak RSS = VmHWM from /proc/self/status at the end of the run).
--
--   lua5.4 bench/batch_memory.lua [--journal] [N ...]     (default 10000 100000)
--
-- Prints one line per run and the ratio of the largest to the smallest
-- peak; exits 1 when it exceeds 1.5 (the "memory stays flat" criterion).
-- With --journal the runs also keep a journal; its index of done keys
-- grows with the items by design (a few dozen bytes each), so that figure
-- is informational.
local function here()
  local src = debug.getinfo(1, "S").source:sub(2)
  return (src:match("^(.*)/bench/[^/]*$")) or "."
end
local ROOT = here()
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. ROOT .. "/spec/?.lua;" .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath

local function peak_rss_kb()
  for l in io.lines("/proc/self/status") do
    local kb = l:match("^VmHWM:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end

-- Child: run one batch from a manifest and report.
if arg[1] == "--child" then
  local prequalify = require "prequalify"
  local url, ca, token, path, journal = arg[2], arg[3], arg[4], arg[5], arg[6]
  local client = assert(prequalify.client{ url = url, ca_file = ca, token = token })
  local reader = assert(prequalify.manifest.read(path))
  local t0 = prequalify.core.monotonic()
  local rep = assert(client:batch(reader, { concurrency = 16, journal = journal ~= "-" and journal or nil }))
  local elapsed = prequalify.core.monotonic() - t0
  io.write(string.format("RESULT %d %d %.2f %d\n", rep.counts.total, rep.counts.approved, elapsed, peak_rss_kb()))
  client:close()
  os.exit(0)
end

local helpers = require "helpers"
local prequalify = require "prequalify"
local cjson = require "cjson"
local q = helpers.shell_quote

local with_journal = false
local sizes = {}
for _, a in ipairs(arg) do
  if a == "--journal" then with_journal = true else sizes[#sizes + 1] = assert(math.tointeger(tonumber(a)), a) end
end
if #sizes == 0 then sizes = { 10000, 100000 } end

local dir = helpers.tmpdir()
local emu = helpers.start_emulator()
local results = {}
local ok, err = pcall(function()
  for _, n in ipairs(sizes) do
    local path = dir .. "/m" .. n .. ".jsonl"
    local f = assert(io.open(path, "wb"))
    for i = 1, n do
      f:write(cjson.encode{ dn = helpers.DN_PROD, user = helpers.USER, comment = "memory bench item " .. i,
                            data = (prequalify.digest.data("bench item " .. i)) }, "\n")
    end
    f:close()
    emu:reset()
    local token = emu:token{}
    local journal = with_journal and (dir .. "/j" .. n .. ".jsonl") or "-"
    local cmd = "env -u LD_PRELOAD lua5.4 " .. q(ROOT .. "/bench/batch_memory.lua") .. " --child "
      .. table.concat({ q(emu.url), q(emu.ca), q(token), q(path), q(journal) }, " ")
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local total, approved, secs, kb = out:match("RESULT (%d+) (%d+) ([%d.]+) (%d+)")
    assert(total, "child failed: " .. out)
    assert(tonumber(approved) == n and tonumber(total) == n, "not every item landed: " .. out)
    assert(emu:received("PreQualify") == n, "the emulator did not receive every item")
    results[#results + 1] = { n = n, kb = tonumber(kb), secs = tonumber(secs) }
    io.write(string.format("%8d items%s: peak RSS %6.1f MiB, %6.1f s, %7.0f items/s\n", n,
      with_journal and " (journal)" or "", kb / 1024, secs, n / secs))
    io.flush()
  end
end)
emu:stop()
helpers.rm_rf(dir)
if not ok then error(err, 0) end
local lo, hi = results[1], results[#results]
local ratio = hi.kb / lo.kb
io.write(string.format("peak RSS ratio %d vs %d items: %.2fx (limit 1.5x)\n", hi.n, lo.n, ratio))
os.exit(ratio <= 1.5 and 0 or 1)
