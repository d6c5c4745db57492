-- bench/run --smoke: the benchmark scripts still run end to end (nginx, the
-- C baseline, curl, the Lua clients, the emulator) and print every row of
-- the table. The figures of a smoke run mean nothing; only that they exist.
local helpers = require "helpers"

local q = helpers.shell_quote

-- Children must not inherit the sanitizer runtime, should this file run
-- under the ASan build after all.
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS "

local function has_nginx()
  return os.execute("PATH=\"$PATH:/usr/sbin:/sbin\" command -v nginx >/dev/null 2>&1") == true
end

-- Every row label bench/lua/driver.lua prints, section by section.
local ROWS = {
  "1. batch over HTTPS", "2. batch over HTTP",
  "req/s      prequalify batch runner", "req/s      C libcurl multi", "req/s      curl --parallel",
  "req/s      C libcurl, 1 reused handle", "CPU s/1k   prequalify batch runner", "CPU s/1k   C libcurl multi",
  "CPU s/1k   curl --parallel", "CPU s/1k   C libcurl, 1 reused handle",
  "ratio req/s  ours / C multi", "ratio req/s  ours / curl --parallel", "ratio CPU/request  ours / C multi",
  "connections  ours", "connections  c multi", "connections  curl", "connections  c seq",
  "full TLS handshakes  ours",
  "req/s      batch with the 8-rule policy", "req/s      batch with a journal",
  "ratio req/s  policy batch / C multi", "ratio req/s  journal batch / C multi", "fsyncs/1k  batch with a journal",
  "3. per-request overhead", "validate + policy (8 rules) + encode", "validate + encode alone",
  "policy.evaluate alone (8 rules, all())", "evaluate of one rule: environment", "evaluate of one rule: users",
  "evaluate of one rule: max_hours", "evaluate of one rule: comment_matches", "evaluate of one rule: algorithms",
  "evaluate of one rule: deny_hashes", "evaluate of one rule: time_window", "evaluate of one rule: unique",
  "4. SHA-256 of a", "GiB/s  prequalify.digest.file", "GiB/s  openssl dgst -sha256", "ratio  prequalify / openssl",
  "5. peak RSS", "VmHWM  500 items", "VmHWM  2000 items", "ratio  2000 / 500 items",
  "VmHWM  500 items, with a journal", "VmHWM  2000 items, with a journal", "ratio  2000 / 500 items, with a journal",
  "6. against the emulator", "req/s  prequalify batch runner", "req/s  C libcurl multi",
  "7. user-space instructions per request", "instructions  prequalify batch runner",
  "instructions  C libcurl multi", "ratio  ours / C multi",
}

-- Rows that come once per protocol.
local TWICE = {
  ["req/s      prequalify batch runner"] = true, ["ratio req/s  ours / C multi"] = true,
  ["connections  ours"] = true,
}

local function count(text, plain)
  local n, from = 0, 1
  while true do
    local s, e = text:find(plain, from, true)
    if not s then return n end
    n, from = n + 1, e + 1
  end
end

describe("bench/run --smoke #slow #nosan", function()
  it("runs every benchmark with small counts and prints every row of the table", function()
    if not has_nginx() then
      pending("nginx is not installed: bench/run needs it (.ci/run installs the Debian package nginx)")
      return
    end
    local cmd = CLEAN_ENV .. "bash " .. q(helpers.ROOT .. "/bench/run") .. " --smoke --no-install 2>&1"
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    local ok, _, code = p:close()
    assert(ok, "bench/run --smoke exited with " .. tostring(code) .. ":\n" .. out)
    for _, label in ipairs(ROWS) do
      local n = count(out, label)
      assert(n >= (TWICE[label] and 2 or 1), "row missing from the table: " .. label .. "\n" .. out)
    end
    -- Every figure was measured: no row shows "-" for its median.
    for line in out:gmatch("[^\n]+") do
      assert(not line:find("^  %S.-%s+%-%s+%-%s+%-"), "row without figures: " .. line)
    end
    assert.matches("targets: %d+ PASS, %d+ MISS", out)
    assert.not_matches("FAILED:", out)
  end)
end)
