--- The bench driver, started by bench/run once nginx is up: runs every
-- measurement the configured number of times, clients in a rotating order
-- so that drifting machine load hits them alike, and prints one table of
-- min/median/max with the ratios taken within each run and the targets.
-- Raw figures go to bench/out/results.json, the table to bench/out/table.txt.
--
-- Configuration comes from bench/run through BENCH_* environment variables.
local cjson = require "cjson"
local core = require "prequalify.core"
local sample = require "sample"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function q(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

local cfg = {
  root = env("BENCH_ROOT", "."),
  snap = env("BENCH_SNAP", env("BENCH_ROOT", ".")),
  tmp = assert(env("BENCH_TMP"), "run me through bench/run"),
  runs = math.tointeger(tonumber(env("BENCH_RUNS", "5"))),
  requests = math.tointeger(tonumber(env("BENCH_REQUESTS", "20000"))),
  concurrency = math.tointeger(tonumber(env("BENCH_CONCURRENCY", "16"))),
  overhead = math.tointeger(tonumber(env("BENCH_OVERHEAD", "100000"))),
  digest_mib = math.tointeger(tonumber(env("BENCH_DIGEST_MIB", "1024"))),
  emulator = math.tointeger(tonumber(env("BENCH_EMULATOR", "5000"))),
  smoke = env("BENCH_SMOKE", "0") == "1",
  nginx_pid = env("BENCH_NGINX_PID"),
  http = env("BENCH_HTTP_URL"),
  https = env("BENCH_HTTPS_URL"),
  ca = env("BENCH_CA"),
  cbaseline = env("BENCH_CBASELINE"),
  client_cpu = env("BENCH_CLIENT_CPU", "1"),
  server_cpu = env("BENCH_SERVER_CPU", "0"),
  mem = {},
  only = {},
}
for n in env("BENCH_MEM", "10000 100000"):gmatch("%d+") do cfg.mem[#cfg.mem + 1] = math.tointeger(tonumber(n)) end
local ONLY = "batch,overhead,digest,memory,emulator,instructions,async"
for s in env("BENCH_ONLY", ONLY):gmatch("[%w_]+") do cfg.only[s] = true end

local LUA = "lua5.4 "
local USER_AGENT = "prequalify/" .. core._VERSION

-- ---------------------------------------------------------------------------
-- Running commands

local function log(fmt, ...)
  io.stderr:write("bench: ", string.format(fmt, ...), "\n")
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local ERR = cfg.tmp .. "/cmd.err"

--- Runs a shell command; returns its stdout, or raises with its stderr.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>" .. q(ERR), "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  if not ok then
    error(string.format("command failed (exit %s): %s\n%s%s", tostring(code), cmd, out,
      read_file(ERR) or ""), 0)
  end
  return out
end

--- Runs a client that prints one JSON line; returns the decoded line and the
-- wall time of the whole command.
local function run_json(cmd)
  local t0 = core.monotonic()
  local out = run(cmd)
  local dt = core.monotonic() - t0
  local line = out:match("([^\n]+)\n?$")
  local ok, t = pcall(cjson.decode, line or "")
  if not ok or type(t) ~= "table" then error("no JSON result from: " .. cmd .. "\n" .. out, 0) end
  return t, dt
end

-- ---------------------------------------------------------------------------
-- nginx's access log: "port connection ssl_session_reused connection_requests status"

local ACCESS = cfg.tmp .. "/access.log"

local function log_size()
  local f = io.open(ACCESS, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

--- The log lines written since byte `from`, once `expect` of them are
-- there: asks nginx to flush its log buffer (USR1 reopens the log, which
-- writes the buffer out) and waits for it.
local function log_since(from, expect)
  os.execute("kill -USR1 " .. cfg.nginx_pid)
  local deadline = core.monotonic() + 10
  local lines
  repeat
    core.sleep(0.05)
    local f = assert(io.open(ACCESS, "rb"))
    f:seek("set", from)
    local text = f:read("a")
    f:close()
    lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  until #lines >= expect or core.monotonic() > deadline
  return lines
end

--- Connections and TLS handshakes behind a slice of the log.
local function connections(lines)
  local seen, conns, full, resumed = {}, 0, 0, 0
  for _, l in ipairs(lines) do
    local port, conn, reused = l:match("^(%d+) (%d+) (%S+)")
    local key = port and (port .. "/" .. conn)
    if key and not seen[key] then
      seen[key] = true
      conns = conns + 1
      if reused == "." then full = full + 1 elseif reused == "r" then resumed = resumed + 1 end
    end
  end
  return { connections = conns, full_handshakes = full, resumed_handshakes = resumed }
end

-- ---------------------------------------------------------------------------
-- Statistics and the table

local function stats(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  local med = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
  return s[1], med, s[n]
end

local rows = {}      -- { section=, label=, values=, fmt=, target= }
local raw = {}       -- everything measured, for results.json
local failures = {}  -- sections that could not run

local function row(section, label, values, fmt, target)
  rows[#rows + 1] = { section = section, label = label, values = values, fmt = fmt or "%.0f", target = target }
end

local function fmt_num(fmt, v)
  if v == nil then return "-" end
  return string.format(fmt, v)
end

-- target = { op = ">=" | "<=" | "<", goal = number, on = "median" | "max" }
local function judge(t, mn, med, mx)
  local v = ({ min = mn, median = med, max = mx })[t.on or "median"]
  if v == nil then return "n/a" end
  local ok
  if t.op == ">=" then ok = v >= t.goal elseif t.op == "<=" then ok = v <= t.goal else ok = v < t.goal end
  return ok and "PASS" or "MISS"
end

local function render()
  local out = {}
  local function add(s) out[#out + 1] = s end
  local W = 58
  local head = string.format("%-" .. W .. "s %10s %10s %10s  %-16s %s", "measurement", "min", "median", "max",
    "target", "result")
  add(head)
  add(string.rep("-", #head + 5))
  local section
  local pass, miss = 0, 0
  for _, r in ipairs(rows) do
    if r.section ~= section then
      section = r.section
      add(section)
    end
    local mn, med, mx = stats(r.values)
    local tgt, verdict = "", ""
    if r.target then
      tgt = r.target.op .. " " .. string.format(r.target.gfmt or "%g", r.target.goal)
        .. ((r.target.on and r.target.on ~= "median") and (" (" .. r.target.on .. ")") or "")
      verdict = judge(r.target, mn, med, mx)
      if verdict == "PASS" then pass = pass + 1 elseif verdict == "MISS" then miss = miss + 1 end
      r.verdict = verdict
    end
    add((string.format("  %-" .. (W - 2) .. "s %10s %10s %10s  %-16s %s", r.label, fmt_num(r.fmt, mn),
      fmt_num(r.fmt, med), fmt_num(r.fmt, mx), tgt, verdict):gsub("%s+$", "")))
  end
  add(string.rep("-", #head + 5))
  add(string.format("targets: %d PASS, %d MISS%s", pass, miss,
    cfg.smoke and "  (smoke run: counts too small for the targets to mean anything)" or ""))
  for _, f in ipairs(failures) do add("FAILED: " .. f) end
  return table.concat(out, "\n") .. "\n", pass, miss
end

-- ---------------------------------------------------------------------------
-- Shared inputs

local BODY = cfg.tmp .. "/body.json"
local function write_body()
  local request = require "prequalify.request"
  local body = assert(request.encode(assert(request.new(sample.fields(sample.digests(1), 1)))))
  local f = assert(io.open(BODY, "wb"))
  f:write(body)
  f:close()
  return #body
end

local CURL_CFG = {}
local function curl_config(base, n)
  local path = cfg.tmp .. "/curl-" .. (base:match("^(%a+)") or "x") .. ".cfg"
  if CURL_CFG[path] then return path end
  local f = assert(io.open(path, "wb"))
  f:write('header = "Accept: application/json"\n', 'header = "Content-Type: application/json"\n',
    'header = "Authorization: Bearer ', sample.TOKEN, '"\n', 'user-agent = "', USER_AGENT, '"\n',
    'data-binary = "@', BODY, '"\n')
  local line = 'url = "' .. base .. sample.PATH .. '"\noutput = "/dev/null"\n'
  for _ = 1, n do f:write(line) end
  f:close()
  CURL_CFG[path] = true
  return path
end

-- ---------------------------------------------------------------------------
-- Clients: each returns { rps=, cpu_per_1k=, requests=, ok= }

local clients = {}

local function ours_cmd(base, n, c, extra)
  local cmd = LUA .. q(cfg.snap .. "/bench/lua/batch.lua") .. " --url " .. q(base) .. " --requests " .. n
    .. " --concurrency " .. c
  if base:find("^https") then cmd = cmd .. " --ca " .. q(extra and extra.ca or cfg.ca) end
  if extra and extra.token then cmd = cmd .. " --token " .. q(extra.token) end
  if extra and extra.manifest then cmd = cmd .. " --manifest " .. q(extra.manifest) end
  if extra and extra.journal then cmd = cmd .. " --journal " .. q(extra.journal) end
  if extra and extra.policy then cmd = cmd .. " --policy" end
  if extra and extra.luv then cmd = cmd .. " --luv" end
  return cmd
end

function clients.ours(base, n, c, extra)
  local t = run_json(ours_cmd(base, n, c, extra))
  return { rps = t.requests / t.seconds, cpu_per_1k = t.cpu / t.requests * 1000, requests = t.requests,
           ok = t.ok, seconds = t.seconds, cpu = t.cpu, rss_peak_kib = t.rss_peak_kib, fsyncs = t.fsyncs,
           gap = t.gap }
end

-- The batch runner with the 8-rule policy of section 3, and with a journal
-- (a fresh one each run).
function clients.ours_policy(base, n, c) return clients.ours(base, n, c, { policy = true }) end
function clients.ours_journal(base, n, c)
  local journal = cfg.tmp .. "/bench.journal"
  os.remove(journal)
  return clients.ours(base, n, c, { journal = journal })
end

local function cbaseline_cmd(base, n, c, extra, sequential)
  local cmd = q(cfg.cbaseline) .. " --url " .. q(base .. sample.PATH) .. " --body " .. q(BODY)
    .. " --requests " .. n .. " --parallel " .. c .. " --user-agent " .. q(USER_AGENT)
    .. " --token " .. q(extra and extra.token or sample.TOKEN)
  if base:find("^https") then cmd = cmd .. " --cacert " .. q(extra and extra.ca or cfg.ca) end
  if sequential then cmd = cmd .. " --sequential" end
  return cmd
end

local function cbaseline(base, n, c, extra, sequential)
  local t = run_json(cbaseline_cmd(base, n, c, extra, sequential))
  return { rps = t.requests / t.seconds, cpu_per_1k = t.cpu / t.requests * 1000, requests = t.requests,
           ok = t.ok, seconds = t.seconds, cpu = t.cpu }
end

function clients.c_multi(base, n, c, extra) return cbaseline(base, n, c, extra, false) end
function clients.c_seq(base, n, _, extra) return cbaseline(base, n, 1, extra, true) end

function clients.curl(base, n, c)
  local conf = curl_config(base, n)
  local times = cfg.tmp .. "/curl.times"
  -- bash's `times` prints the CPU time of the shell's children (curl) on its
  -- second line; the driver's clock gives the wall time.
  local curl = "curl -s --http1.1 --tlsv1.2 --parallel --parallel-max " .. c .. " -K " .. q(conf)
    .. " -w '%{http_code}\\n'"
  if base:find("^https") then curl = curl .. " --cacert " .. q(cfg.ca) end
  local cmd = "bash -c " .. q(curl .. "; rc=$?; times > " .. q(times) .. "; exit $rc")
  local t0 = core.monotonic()
  local out = run(cmd)
  local dt = core.monotonic() - t0
  local ok = 0
  for code in out:gmatch("%d+") do if code == "200" then ok = ok + 1 end end
  local cpu = 0
  local second = (read_file(times) or ""):match("\n([^\n]+)")
  for m, sec in (second or ""):gmatch("(%d+)m([%d.]+)s") do cpu = cpu + tonumber(m) * 60 + tonumber(sec) end
  return { rps = n / dt, cpu_per_1k = cpu / n * 1000, requests = n, ok = ok, seconds = dt, cpu = cpu }
end

local NAMES = {
  ours = "prequalify batch runner (Lua, c=%d)",
  c_multi = "C libcurl multi, %d reused handles",
  c_seq = "C libcurl, 1 reused handle, sequential",
  curl = "curl --parallel --parallel-max %d -K",
  ours_policy = "batch with the 8-rule policy (c=%d)",
  ours_journal = "batch with a journal (c=%d)",
}

-- ---------------------------------------------------------------------------
-- 1 + 2. Batch throughput, CPU and connection reuse

local function batch_section(proto, base)
  local n, c = cfg.requests, cfg.concurrency
  local base4 = { "ours", "c_multi", "curl", "c_seq" }
  local order = { "ours", "c_multi", "curl", "c_seq" }
  -- Over HTTP also the batch with a policy and with a journal (issue 14).
  if proto == "HTTP" then order[5], order[6] = "ours_policy", "ours_journal" end
  local m = {}
  for _, k in ipairs(order) do m[k] = { rps = {}, cpu = {}, conns = {}, full = {} } end
  local r_c, r_curl, r_cpu, r_pol, r_jr, fsyncs = {}, {}, {}, {}, {}, {}
  for rep = 1, cfg.runs do
    local per = {}
    for i = 1, #order do
      local k = order[(i + rep - 2) % #order + 1]
      local from = log_size()
      local res = clients[k](base, n, c)
      if res.ok ~= n then error(string.format("%s over %s: %d of %d requests got 200", k, proto, res.ok, n), 0) end
      local hs = connections(log_since(from, n))
      local mk = m[k]
      mk.rps[#mk.rps + 1] = res.rps
      mk.cpu[#mk.cpu + 1] = res.cpu_per_1k
      mk.conns[#mk.conns + 1] = hs.connections
      mk.full[#mk.full + 1] = hs.full_handshakes
      per[k] = res
      raw[#raw + 1] = { section = "batch", proto = proto, client = k, run = rep, result = res, log = hs }
      log("%s %-8s run %d: %8.0f req/s, %.4f s CPU/1k, %d connections", proto, k, rep, res.rps, res.cpu_per_1k,
        hs.connections)
    end
    r_c[#r_c + 1] = per.ours.rps / per.c_multi.rps
    r_curl[#r_curl + 1] = per.ours.rps / per.curl.rps
    r_cpu[#r_cpu + 1] = per.ours.cpu_per_1k / per.c_multi.cpu_per_1k
    if per.ours_policy then
      r_pol[#r_pol + 1] = per.ours_policy.rps / per.c_multi.rps
      r_jr[#r_jr + 1] = per.ours_journal.rps / per.c_multi.rps
      fsyncs[#fsyncs + 1] = (per.ours_journal.fsyncs or 0) / per.ours_journal.requests * 1000
    end
  end
  local sec = string.format("%d. batch over %s: %d POSTs, %d runs", proto == "HTTPS" and 1 or 2, proto, n, cfg.runs)
  for _, k in ipairs(order) do
    row(sec, "req/s      " .. NAMES[k]:format(c), m[k].rps, "%.0f")
  end
  for _, k in ipairs(order) do
    row(sec, "CPU s/1k   " .. NAMES[k]:format(c), m[k].cpu, "%.4f")
  end
  row(sec, "ratio req/s  ours / C multi (same run)", r_c, "%.3f", { op = ">=", goal = 0.9 })
  row(sec, "ratio req/s  ours / curl --parallel (same run)", r_curl, "%.3f", { op = ">=", goal = 1.5 })
  row(sec, "ratio CPU/request  ours / C multi (same run)", r_cpu, "%.3f", { op = "<=", goal = 1.15 })
  if #r_pol > 0 then
    row(sec, "ratio req/s  policy batch / C multi (same run)", r_pol, "%.3f", { op = ">=", goal = 0.8 })
    row(sec, "ratio req/s  journal batch / C multi (same run, informative)", r_jr, "%.3f")
    row(sec, "fsyncs/1k  batch with a journal", fsyncs, "%.1f")
  end
  for _, k in ipairs(base4) do
    row(sec, "connections  " .. k:gsub("_", " "), m[k].conns, "%.0f",
      k == "ours" and { op = "<=", goal = c, on = "max" } or nil)
  end
  if proto == "HTTPS" then
    row(sec, "full TLS handshakes  ours (rest resumed)", m.ours.full, "%.0f", { op = "<=", goal = c, on = "max" })
  end
end

-- ---------------------------------------------------------------------------
-- 3. Per-request overhead without the network

local RULE_NAMES = { "environment", "users", "max_hours", "comment_matches", "algorithms", "deny_hashes",
                     "time_window", "unique" }

local function overhead_section()
  local tot, ve, pol, rules, file_rule, host_rule, floor = {}, {}, {}, {}, {}, {}, {}
  for _, r in ipairs(RULE_NAMES) do rules[r] = {} end
  for rep = 1, cfg.runs do
    local t = run_json(LUA .. q(cfg.snap .. "/bench/lua/overhead.lua") .. " --requests " .. cfg.overhead)
    tot[#tot + 1], ve[#ve + 1], pol[#pol + 1] = t.us_total, t.us_validate_encode, t.us_policy
    for _, r in ipairs(RULE_NAMES) do rules[r][#rules[r] + 1] = t.us_rule[r] end
    file_rule[#file_rule + 1], host_rule[#host_rule + 1] = t.us_file_rule, t.us_host_rule
    floor[#floor + 1] = t.us_floor
    raw[#raw + 1] = { section = "overhead", run = rep, result = t }
    log("overhead run %d: %.2f us total, %.2f us validate+encode, %.2f us policy", rep, t.us_total,
      t.us_validate_encode, t.us_policy)
  end
  local sec = string.format("3. per-request overhead, no network: %d requests, %d runs (us/request)",
    cfg.overhead, cfg.runs)
  row(sec, "validate + policy (8 rules) + encode, trail read", tot, "%.2f", { op = "<=", goal = 6 })
  row(sec, "  validate + encode alone", ve, "%.2f")
  row(sec, "  policy.evaluate alone (8 rules, all()), trail read", pol, "%.2f", { op = "<=", goal = 3.5 })
  for _, r in ipairs(RULE_NAMES) do row(sec, "    evaluate of one rule: " .. r, rules[r], "%.2f") end
  row(sec, "  evaluate of a rule of a policy file (budget hook)", file_rule, "%.2f")
  row(sec, "  evaluate of the same rule made by the program", host_rule, "%.2f")
  row(sec, "  floor: the 8-rule decision built directly, no rule run", floor, "%.2f")
end

-- ---------------------------------------------------------------------------
-- 4. Digests

local function digest_section()
  local file = cfg.tmp .. "/digest.bin"
  local mib = cfg.digest_mib
  log("writing a %d MiB test file", mib)
  run("head -c " .. (mib * 1048576) .. " /dev/urandom > " .. q(file))
  run("cat " .. q(file) .. " > /dev/null") -- warm the page cache
  local ours, ossl, ratio = {}, {}, {}
  local gib = mib / 1024
  for rep = 1, cfg.runs do
    local a, b
    local function run_ours()
      local t, dt = run_json(LUA .. q(cfg.snap .. "/bench/lua/digest.lua") .. " --file " .. q(file))
      a = gib / dt
      return t
    end
    local function run_openssl()
      local t0 = core.monotonic()
      local out = run("openssl dgst -sha256 " .. q(file))
      b = gib / (core.monotonic() - t0)
      return out:match("= (%x+)")
    end
    local t, hex
    if rep % 2 == 1 then t = run_ours(); hex = run_openssl() else hex = run_openssl(); t = run_ours() end
    if t.hex ~= hex then error("digest mismatch: prequalify " .. t.hex .. ", openssl " .. tostring(hex), 0) end
    ours[#ours + 1], ossl[#ossl + 1], ratio[#ratio + 1] = a, b, a / b
    raw[#raw + 1] = { section = "digest", run = rep, ours_gib_s = a, openssl_gib_s = b }
    log("digest run %d: prequalify %.2f GiB/s, openssl %.2f GiB/s", rep, a, b)
  end
  os.remove(file)
  local sec = string.format("4. SHA-256 of a %d MiB file, warm cache, %d runs (whole command)", mib, cfg.runs)
  row(sec, "GiB/s  prequalify.digest.file", ours, "%.3f")
  row(sec, "GiB/s  openssl dgst -sha256", ossl, "%.3f")
  row(sec, "ratio  prequalify / openssl (same run)", ratio, "%.3f", { op = ">=", goal = 0.9 })
end

-- ---------------------------------------------------------------------------
-- 5. Memory: peak RSS of streamed batches

local function write_manifest(path, n)
  -- distinct digests: no two lines are the same identity (a batch would skip one)
  local digests = sample.digests(n)
  local f = assert(io.open(path, "wb"))
  for i = 1, n do
    local t = sample.fields(digests, i)
    t.comment = t.comment .. " #" .. i
    f:write(cjson.encode(t), "\n")
  end
  f:close()
end

local function memory_section()
  local sizes = cfg.mem
  local manifests = {}
  for i, n in ipairs(sizes) do
    manifests[i] = cfg.tmp .. "/manifest-" .. n .. ".jsonl"
    write_manifest(manifests[i], n)
  end
  -- Plain streaming (the target), then the same with a journal, whose index
  -- of done keys grows with the items by design (informative).
  local variants = { { name = "streamed", peaks = {}, ratio = {} }, { name = "journal", peaks = {}, ratio = {} } }
  for _, v in ipairs(variants) do
    for i = 1, #sizes do v.peaks[i] = {} end
  end
  for rep = 1, cfg.runs do
    for _, v in ipairs(variants) do
      local got = {}
      for i, n in ipairs(sizes) do
        local journal = v.name == "journal" and (cfg.tmp .. "/journal-" .. n .. "-" .. rep) or nil
        local res = clients.ours(cfg.http, n, cfg.concurrency, { manifest = manifests[i], journal = journal })
        if res.ok ~= n then error(string.format("manifest batch of %d: %d approved", n, res.ok), 0) end
        if journal then os.remove(journal) end
        got[i] = res.rss_peak_kib / 1024
        v.peaks[i][#v.peaks[i] + 1] = got[i]
        raw[#raw + 1] = { section = "memory", variant = v.name, run = rep, items = n, result = res }
        log("memory run %d, %s: %d items, peak RSS %.1f MiB, %.0f req/s", rep, v.name, n, got[i], res.rps)
      end
      v.ratio[#v.ratio + 1] = got[#sizes] / got[1]
    end
  end
  local sec = string.format("5. peak RSS of a batch streamed from a manifest, over HTTP, %d runs (MiB)", cfg.runs)
  local s = variants[1]
  for i, n in ipairs(sizes) do row(sec, string.format("VmHWM  %d items", n), s.peaks[i], "%.1f") end
  row(sec, string.format("ratio  %d / %d items", sizes[#sizes], sizes[1]), s.ratio, "%.3f",
    { op = "<=", goal = 1.1 })
  local j = variants[2]
  for i, n in ipairs(sizes) do row(sec, string.format("VmHWM  %d items, with a journal", n), j.peaks[i], "%.1f") end
  row(sec, string.format("ratio  %d / %d items, with a journal (informative)", sizes[#sizes], sizes[1]), j.ratio,
    "%.3f")
  for _, p in ipairs(manifests) do os.remove(p) end
end

-- ---------------------------------------------------------------------------
-- 6. Against the emulator (informative)

local function emulator_section()
  local cmd = "taskset -c " .. cfg.server_cpu .. " python3 " .. q(cfg.snap .. "/emulator/tpp_emulator.py")
    .. " --port 0 --control --max-lifetime 3600 2>" .. q(cfg.tmp .. "/emulator.log")
    .. " </dev/null & echo PID=$!"
  local pipe = assert(io.popen(cmd, "r"))
  local pid, url, ca
  while not (pid and url) do
    local l = pipe:read("l")
    if not l then break end
    pid = pid or l:match("^PID=(%d+)$")
    local u, c = l:match("^READY url=(%S+) ca=(.*)$")
    if u then url, ca = u, c end
  end
  if not url then
    pipe:close()
    error("the emulator did not start: " .. (read_file(cfg.tmp .. "/emulator.log") or ""), 0)
  end
  local function stop()
    os.execute("kill " .. pid .. " 2>/dev/null")
    pipe:read("a")
    pipe:close()
  end
  local ok, err = pcall(function()
    local reply = run("curl -sS --cacert " .. q(ca) .. " -H 'Content-Type: application/json' --data-binary '{}' "
      .. q(url .. "/__emulator__/token"))
    local token = assert(cjson.decode(reply).access_token, "no token from the emulator")
    local extra = { token = token, ca = ca }
    local ours, cm = {}, {}
    for rep = 1, cfg.runs do
      local a = clients.ours(url, cfg.emulator, cfg.concurrency, extra)
      local b = clients.c_multi(url, cfg.emulator, cfg.concurrency, extra)
      if a.ok ~= cfg.emulator or b.ok ~= cfg.emulator then
        error(string.format("emulator: %d and %d of %d approved", a.ok, b.ok, cfg.emulator), 0)
      end
      ours[#ours + 1], cm[#cm + 1] = a.rps, b.rps
      raw[#raw + 1] = { section = "emulator", run = rep, ours = a, c_multi = b }
      log("emulator run %d: ours %.0f req/s, C multi %.0f req/s", rep, a.rps, b.rps)
    end
    local sec = string.format("6. against the emulator over HTTPS (informative): %d POSTs, %d runs", cfg.emulator,
      cfg.runs)
    row(sec, "req/s  prequalify batch runner (Lua, c=" .. cfg.concurrency .. ")", ours, "%.0f")
    row(sec, "req/s  C libcurl multi, " .. cfg.concurrency .. " handles", cm, "%.0f")
  end)
  stop()
  if not ok then error(err, 0) end
end

-- ---------------------------------------------------------------------------
-- 7. Instructions per request (callgrind): where the CPU goes, without the
-- noise of a shared machine. User-space instructions of a whole client
-- process for two batch sizes; the difference divided by the difference in
-- requests is the cost of one more request (start-up cancels out). The
-- kernel's share (send, recv, poll: the same calls for both clients) is not
-- counted.

local function instructions(cmd)
  local out = cfg.tmp .. "/callgrind.out"
  run("valgrind --tool=callgrind --callgrind-out-file=" .. q(out) .. " " .. cmd .. " >/dev/null")
  os.remove(out)
  local n = (read_file(ERR) or ""):match("Collected%s*:%s*(%d+)")
  if not n then error("no instruction count from callgrind for: " .. cmd, 0) end
  return tonumber(n)
end

local function instructions_section()
  local c = cfg.concurrency
  local lo, hi = cfg.smoke and 100 or 2000, cfg.smoke and 300 or 6000
  local per = {}
  local journal = cfg.tmp .. "/instructions.journal"
  local cmds = {
    ours = function(n) return ours_cmd(cfg.http, n, c) end,
    c_multi = function(n) return cbaseline_cmd(cfg.http, n, c) end,
    -- Informative: the batch with the 8-rule policy, and with a fresh journal.
    ours_policy = function(n) return ours_cmd(cfg.http, n, c, { policy = true }) end,
    ours_journal = function(n)
      os.remove(journal)
      return ours_cmd(cfg.http, n, c, { journal = journal })
    end,
  }
  for _, k in ipairs{ "ours", "c_multi", "ours_policy", "ours_journal" } do
    local a, b = instructions(cmds[k](lo)), instructions(cmds[k](hi))
    per[k] = (b - a) / (hi - lo)
    log("instructions %s: %.0f per request", k, per[k])
  end
  os.remove(journal)
  raw[#raw + 1] = { section = "instructions", result = per }
  local sec = string.format("7. user-space instructions per request over HTTP (callgrind, %d..%d requests, 1 run)",
    lo, hi)
  row(sec, "instructions  " .. string.format(NAMES.ours, c), { per.ours }, "%.0f")
  row(sec, "instructions  " .. string.format(NAMES.c_multi, c), { per.c_multi }, "%.0f")
  row(sec, "ratio  ours / C multi", { per.ours / per.c_multi }, "%.3f", { op = "<=", goal = 1.25 })
  row(sec, "instructions  " .. string.format(NAMES.ours_policy, c), { per.ours_policy }, "%.0f")
  row(sec, "instructions  " .. string.format(NAMES.ours_journal, c), { per.ours_journal }, "%.0f")
end

-- ---------------------------------------------------------------------------

local function banner()
  local curl_v = core.curl_version()
  local cpu = (read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?"
  local load = (read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)") or "?"
  return string.format("prequalify bench, %s%s\n"
    .. "machine: %s, %s CPUs, load %s; nginx %s (1 worker on CPU %s), clients on CPU %s\n"
    .. "libcurl %s, %s; concurrency %d; body %d bytes; runs %d (clients in rotating order)\n",
    os.date("!%Y-%m-%d %H:%M UTC"), cfg.smoke and " (SMOKE: tiny counts)" or "", cpu,
    env("BENCH_NCPU", "?"), load, env("BENCH_NGINX_VERSION", "?"), cfg.server_cpu, cfg.client_cpu, curl_v, _VERSION,
    cfg.concurrency, cfg.body_len, cfg.runs)
end

-- ---------------------------------------------------------------------------
-- 8. The batch driven by a luv loop (`yield =`) against client:batch

local function async_section()
  local n, c = cfg.requests, cfg.concurrency
  local cpu = { ours = {}, luv = {} }
  local ratio, gaps = {}, {}
  for rep = 1, cfg.runs do
    local per = {}
    for i, k in ipairs(rep % 2 == 1 and { "ours", "luv" } or { "luv", "ours" }) do
      local res = clients.ours(cfg.http, n, c, { luv = k == "luv" })
      if res.ok ~= n then error(string.format("%s: %d of %d requests got 200", k, res.ok, n), 0) end
      per[k] = res
      cpu[k][#cpu[k] + 1] = res.cpu_per_1k
      raw[#raw + 1] = { section = "async", client = k, run = rep, order = i, result = res }
      log("async %-4s run %d: %8.0f req/s, %.4f s CPU/1k%s", k, rep, res.rps, res.cpu_per_1k,
        res.gap and string.format(", timer gap %.1f ms", res.gap * 1000) or "")
    end
    ratio[#ratio + 1] = per.luv.cpu_per_1k / per.ours.cpu_per_1k
    gaps[#gaps + 1] = per.luv.gap * 1000
  end
  local sec = string.format("8. batch driven by luv (yield) over HTTP: %d POSTs, %d runs", n, cfg.runs)
  row(sec, "CPU s/1k   " .. NAMES.ours:format(c), cpu.ours, "%.4f")
  row(sec, "CPU s/1k   the same from a luv coroutine", cpu.luv, "%.4f")
  row(sec, "ratio CPU/request  luv / client:batch (same run)", ratio, "%.3f", { op = "<=", goal = 1.1 })
  row(sec, "largest gap of a 10 ms luv timer, ms", gaps, "%.1f", { op = "<=", goal = 50, on = "max" })
end

local SECTIONS = {
  { "batch", function()
    batch_section("HTTPS", cfg.https)
    batch_section("HTTP", cfg.http)
  end },
  { "overhead", overhead_section },
  { "digest", digest_section },
  { "memory", memory_section },
  { "emulator", emulator_section },
  { "instructions", instructions_section },
  { "async", async_section },
}

cfg.body_len = write_body()
local head = banner()
io.stderr:write(head)
for _, s in ipairs(SECTIONS) do
  if cfg.only[s[1]] then
    log("== %s", s[1])
    local ok, err = pcall(s[2])
    if not ok then
      failures[#failures + 1] = s[1] .. ": " .. tostring(err)
      log("%s failed: %s", s[1], tostring(err))
    end
  end
end

local table_text, pass, miss = render()
local text = "\n" .. head .. "\n" .. table_text
io.stdout:write(text)
local out = cfg.root .. "/bench/out"
local f = io.open(out .. "/table.txt", "wb")
if f then
  f:write(text)
  f:close()
end
f = io.open(out .. "/results.json", "wb")
if f then
  local rs = {}
  for i, r in ipairs(rows) do
    local mn, med, mx = stats(r.values)
    rs[i] = { section = r.section, label = r.label, values = r.values, min = mn, median = med, max = mx,
              target = r.target, verdict = r.verdict }
  end
  f:write(cjson.encode{ config = cfg, rows = rs, raw = raw, pass = pass, miss = miss, failures = failures })
  f:close()
end
os.exit(#failures == 0 and 0 or 1)
