--- Bench client: the prequalify batch runner (`client:batch`) against a
-- server, timed around the batch alone. Items come from an iterator that
-- makes a fresh request table per item (the default), a Lua array, or a
-- JSON Lines manifest read by `prequalify.manifest` (streaming).
--
--   lua5.4 bench/lua/batch.lua --url https://127.0.0.1:8443 --ca ca.pem \
--     --requests 20000 --concurrency 16 [--manifest file.jsonl] [--array] [--token T]
--     [--journal path] [--policy] [--luv]
--
-- `--policy` runs every item through the 8-rule policy of section 3 (items
-- then carry distinct digests and hours = 2, so that every rule allows them).
-- `--luv` runs the same batch from a coroutine of a luv loop (`yield =` of
-- `prequalify.async.luv`) beside a repeating 10 ms timer, and adds `gap`: the
-- timer's largest gap between ticks, in seconds.
-- Prints one JSON line: requests, ok, seconds, cpu (process CPU seconds
-- during the batch), rss_peak_kib and rss_kib (VmHWM and VmRSS at the end),
-- and fsyncs (journal fsyncs, with a journal).
local sample = require "sample"
local core = require "prequalify.core"
local prequalify = require "prequalify"

local a = sample.args(arg)
local n = math.tointeger(tonumber(a.requests or 20000))
local concurrency = math.tointeger(tonumber(a.concurrency or 16))
assert(a.url, "--url is required")

local client = assert(prequalify.client{
  url = a.url, token = a.token or sample.TOKEN, ca_file = a.ca, ca_replace = a.ca and true or nil,
  allow_insecure_http = a.url:find("^http:") and true or nil, max_connections = concurrency,
  retries = false,
})

local items
if a.manifest then
  items = assert(prequalify.manifest.read(a.manifest))
else
  -- Distinct items: a batch sends one request per identity (DN, data, user).
  local hours = a.policy and 2 or nil
  items = sample.items(n, hours)
  if a.array then
    local list = {}
    for v in items do list[#list + 1] = v end
    items = list
  end
end

local opts = {
  concurrency = concurrency, signals = false, journal = a.journal,
  policy = a.policy and sample.policy() or nil, ctx = a.policy and { now = sample.NOW } or nil,
}

-- The batch from a luv coroutine, a 10 ms timer ticking beside it.
local function under_luv()
  local uv = require "luv"
  opts.yield = require("prequalify.async.luv").yield
  local gap, last, rep = 0, nil, nil
  local tick = uv.new_timer()
  tick:start(10, 10, function()
    local now = uv.hrtime()
    if last then gap = math.max(gap, (now - last) / 1e9) end
    last = now
  end)
  local co = coroutine.wrap(function()
    rep = assert(client:batch(items, opts))
    tick:stop()
    tick:close()
  end)
  local kick = uv.new_timer()
  kick:start(0, 0, function()
    kick:close()
    co()
  end)
  uv.run()
  return rep, gap
end

collectgarbage()
local c0, t0 = os.clock(), core.monotonic()
local rep, gap
if a.luv then
  rep, gap = under_luv()
else
  rep = assert(client:batch(items, opts))
end
local t1, c1 = core.monotonic(), os.clock()
client:close()

local peak, cur = sample.rss()
sample.emit{
  client = "ours", requests = rep.counts.total, ok = rep.counts.approved, seconds = t1 - t0, cpu = c1 - c0,
  rss_peak_kib = peak, rss_kib = cur,
  failed = rep.counts.failed + rep.counts.unknown, fsyncs = rep.journal_fsyncs, gap = gap,
}
os.exit(rep.counts.approved == rep.counts.total and rep.counts.total > 0 and 0 or 1)
