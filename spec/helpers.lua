--- Test helpers for the busted specs: start and drive the TPP emulator
-- (emulator/tpp_emulator.py), temporary directories and small file helpers.
--
--   local helpers = require "helpers"
--   local emu = helpers.start_emulator()          -- HTTPS, --control, free port
--   local token = emu:token{ username = "approver", scope = "codesign:approve" }
--   ... client against emu.url with ca_file = emu.ca ...
--   emu:stop()
--
-- The emulator is started without sleeps or polling: the shell prints its PID
-- and the emulator prints one READY line once it listens; both are read from
-- the same pipe. Control calls go through the curl tool, never through the
-- code under test. Child processes run without LD_PRELOAD and the sanitizer
-- variables, so the ASan run of the specs does not instrument python or curl.
local cjson = require "cjson"

local helpers = {}

helpers.DN_PROD = [[\VED\Code Signing\Projects\Sample\Production Environment]]
helpers.DN_STAGING = [[\VED\Code Signing\Projects\Sample\Staging Environment]]
helpers.DN_LEGACY = [[\VED\Code Signing\Projects\Sample\Legacy Environment]]
helpers.USER = "local:sample-cs-user"
helpers.USER_UNIVERSAL = "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d4}"
helpers.APPROVER = "approver"
helpers.APPROVER_PASSWORD = "approver-pass-1"
helpers.CLIENT_ID = "prequalify"
-- Base64 of a 32-byte digest (the vendor documentation's example).
helpers.SHA256_B64 = "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs="

-- The repository root, from where this file lives (spec/helpers.lua).
local function repo_root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or "spec/helpers.lua"
  local dir = src:match("^(.*)/[^/]*$") or "."
  return dir .. "/.."
end

helpers.ROOT = repo_root()
helpers.EMULATOR = helpers.ROOT .. "/emulator/tpp_emulator.py"

--- A string quoted for /bin/sh.
local function q(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end
helpers.shell_quote = q

-- Children must not inherit the sanitizer runtime of the ASan spec run.
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS "

--- Percent-encoding of everything but RFC 3986's unreserved characters.
local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
helpers.urlencode = urlencode

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Standard Base64 with padding (RFC 4648 section 4): an independent, slow
-- encoder, so that specs do not check the code under test against itself.
function helpers.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a << 16 | (b or 0) << 8 | (c or 0)
    local chars = {}
    for k = 1, 4 do
      local idx = (v >> (6 * (4 - k))) & 63
      chars[k] = B64:sub(idx + 1, idx + 1)
    end
    if not b then chars[3], chars[4] = "=", "=" elseif not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

--- Read a whole file; nil, message when it cannot be opened.
function helpers.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

--- Write text to path. `mode` is either an io.open mode ("w", "wb", "a",
-- "ab"; default "wb") or file permissions to set afterwards, as a number
-- (tonumber("600", 8)) or an octal string ("600", "0600").
function helpers.write_file(path, text, mode)
  local open_mode, perms = "wb", nil
  if type(mode) == "number" then
    perms = string.format("%o", mode)
  elseif type(mode) == "string" and mode:match("^[0-7]+$") then
    perms = mode
  elseif mode ~= nil then
    open_mode = mode
  end
  local f = assert(io.open(path, open_mode))
  assert(f:write(text))
  assert(f:close())
  if perms then
    assert(os.execute("chmod " .. perms .. " " .. q(path)), "chmod failed: " .. path)
  end
  return path
end

--- The absolute LUA_CPATH template of the prequalify.core this run loaded
-- (build/ or build-asan/), for Lua child processes.
function helpers.core_cpath()
  local so = assert(package.searchpath("prequalify.core", package.cpath))
  if so:sub(1, 1) ~= "/" then so = helpers.ROOT .. "/" .. so end
  return (so:gsub("prequalify/core%.so$", "?.so"))
end

--- What a shell command prints on stdout (its exit status is not checked).
-- The command inherits this process's environment, sanitizer runtime included.
function helpers.output(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

--- A fresh temporary directory (mktemp -d).
function helpers.tmpdir()
  local p = assert(io.popen("mktemp -d 2>/dev/null"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

--- rm -rf a path (refuses empty and root paths).
function helpers.rm_rf(path)
  assert(type(path) == "string" and path ~= "" and path ~= "/" and path ~= ".", "rm_rf: refusing " .. tostring(path))
  os.execute("rm -rf -- " .. q(path))
end

local Emulator = {}
Emulator.__index = Emulator

--- Start an emulator with --control on a free port; returns the emu object.
-- opts: http (plain HTTP), state (state file), token_lifetime,
-- refresh_lifetime (seconds), args (more command-line arguments),
-- python (interpreter; default $PYTHON or python3), max_lifetime (seconds
-- after which the emulator exits by itself, a guard against a spec that
-- never stops it; default 1800, 0 for none).
function helpers.start_emulator(opts)
  opts = opts or {}
  local python = opts.python or os.getenv("PYTHON") or "python3"
  local argv = { q(helpers.EMULATOR), "--control", "--port", "0" }
  if opts.http then argv[#argv + 1] = "--http" end
  if opts.state then argv[#argv + 1] = "--state " .. q(opts.state) end
  if opts.token_lifetime then argv[#argv + 1] = "--token-lifetime " .. q(opts.token_lifetime) end
  if opts.refresh_lifetime then argv[#argv + 1] = "--refresh-lifetime " .. q(opts.refresh_lifetime) end
  argv[#argv + 1] = "--max-lifetime " .. q(opts.max_lifetime or 1800)
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = q(a) end
  local log = os.tmpname()
  local cmd = CLEAN_ENV .. q(python) .. " " .. table.concat(argv, " ") .. " 2>" .. q(log) .. " </dev/null & echo PID=$!"
  local pipe = assert(io.popen(cmd, "r"))
  local pid, url, ca
  -- Two lines arrive on the pipe, in either order: the shell's PID line and
  -- the emulator's READY line (or EOF if it failed to start).
  while not (pid and url) do
    local line = pipe:read("l")
    if not line then break end
    local p = line:match("^PID=(%d+)$")
    if p then
      pid = p
    else
      local u, c = line:match("^READY url=(%S+) ca=(.*)$")
      if u then url, ca = u, c end
    end
  end
  if not url then
    pipe:close()
    local text = helpers.read_file(log) or ""
    os.remove(log)
    error("the emulator did not start: " .. cmd .. "\n" .. text, 2)
  end
  return setmetatable({ url = url, ca = ca, pid = tonumber(pid), _pipe = pipe, _log = log }, Emulator)
end

--- SIGTERM the emulator and wait for it to exit (EOF on its stdout). Idempotent.
function Emulator:stop()
  if not self._pipe then return end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  self._pipe:read("a")
  self._pipe:close()
  self._pipe = nil
  os.remove(self._log)
end

Emulator.__close = Emulator.stop
Emulator.__gc = Emulator.stop

--- The emulator's stderr so far (with --verbose it logs requests there).
function Emulator:log()
  return helpers.read_file(self._log) or ""
end

--- Any HTTP request to the emulator with curl: returns status, body text.
-- headers: table of name -> value. No certificate other than emu.ca is trusted.
function Emulator:http(method, path, body, headers)
  local args = { CLEAN_ENV .. "curl -sS --max-time 60 -o - -w '\\n%{http_code}'", "-X", q(method) }
  if self.ca ~= "" then args[#args + 1] = "--cacert " .. q(self.ca) end
  for k, v in pairs(headers or {}) do args[#args + 1] = "-H " .. q(k .. ": " .. v) end
  if body then args[#args + 1] = "--data-binary " .. q(body) end
  args[#args + 1] = q(self.url .. path)
  local p = assert(io.popen(table.concat(args, " ") .. " 2>&1", "r"))
  local out = p:read("a")
  p:close()
  local text, code = out:match("^(.*)\n(%d%d%d)$")
  if not code or code == "000" then
    error("curl " .. method .. " " .. path .. " failed: " .. out, 2)
  end
  return tonumber(code), text
end

--- A control-surface call: method, path ("token" or "/__emulator__/token"),
-- optional body table. Returns the decoded JSON reply and the HTTP status.
function Emulator:control(method, path, body)
  if path:sub(1, 1) ~= "/" then path = "/__emulator__/" .. path end
  local code, text = self:http(method, path, body and cjson.encode(body) or nil,
    body and { ["Content-Type"] = "application/json" } or nil)
  local ok, decoded = pcall(cjson.decode, text)
  if not ok then decoded = { raw = text } end
  return decoded, code
end

local function expect_ok(self, method, path, body)
  local reply, code = self:control(method, path, body)
  if code ~= 200 then
    error(string.format("emulator %s %s: HTTP %d %s", method, path, code, cjson.encode(reply)), 3)
  end
  return reply
end

--- Mint a grant through the control surface. opts: username (default
-- "approver"), client_id (default "prequalify"), scope (default
-- "codesign:approve"), expires_in, refresh_expires_in. Returns the access
-- token and the whole reply (refresh_token, expires, identity, ...).
function Emulator:token(opts)
  local reply = expect_ok(self, "POST", "token", opts or {})
  return reply.access_token, reply
end

--- Queue a fault (see emulator/README.md, "Faults"); returns the queue.
function Emulator:fault(spec)
  return expect_ok(self, "POST", "faults", spec)
end

function Emulator:clear_faults()
  return expect_ok(self, "DELETE", "faults")
end

function Emulator:faults()
  return expect_ok(self, "GET", "faults")
end

--- Requests received on non-control paths: { items = {...}, count = n, by_path = {...} },
-- only those whose path contains `sub` (case-insensitive) when given.
function Emulator:requests(sub)
  local path = "requests"
  if sub and sub ~= "" then path = path .. "?path=" .. urlencode(sub) end
  return expect_ok(self, "GET", path)
end

--- How many requests whose path contains `sub` were received ("" for all).
function Emulator:received(sub)
  local n = self:requests(sub).count
  return math.tointeger(n) or n
end

--- Simulate a signing attempt; returns allowed (boolean) and the reason.
function Emulator:sign(t)
  local reply = expect_ok(self, "POST", "sign", { dn = t.dn, data = t.data, user = t.user,
                                                   ip = t.ip, executable = t.executable })
  return reply.allowed, reply.reason
end

--- Stored pre-qualifications: { items = {...}, count = n }.
function Emulator:prequalifications()
  return expect_ok(self, "GET", "prequalifications")
end

--- Stored pre-approvals (AddPreApproval): { items = {...}, count = n }.
function Emulator:preapprovals()
  return expect_ok(self, "GET", "preapprovals")
end

--- Forget pre-qualifications, requests, faults, tokens, clock offset and config changes.
function Emulator:reset()
  return expect_ok(self, "POST", "reset")
end

--- Move the emulator's clock forward (token and pre-qualification expiry).
function Emulator:advance_clock(seconds)
  return expect_ok(self, "POST", "clock", { advance = seconds })
end

--- Change token_lifetime / refresh_lifetime (seconds); returns the config.
function Emulator:config(t)
  return expect_ok(self, "POST", "config", t or {})
end

--- A client clock that follows this emulator's clock. Returns `clock` (a
-- function giving Unix seconds, for `auth.clock`), `advance(seconds)` (moves
-- both; `emu:advance_clock` alone moves only the server's) and `reset()`
-- (back to the real time, as after `emu:reset()`).
function Emulator:shared_clock()
  local offset = 0
  local time = require("prequalify.core").time
  return function() return time() + offset end,
    function(seconds)
      offset = offset + seconds
      self:advance_clock(seconds)
    end,
    function() offset = 0 end
end

--- Mint a JWT from the emulator's trusted issuer. opts: identity (the `sub`,
-- default "approver"), aud (default the audience the emulator expects),
-- expires_in (seconds, default 300; negative: already expired). Returns the
-- JWT and its claims.
function Emulator:jwt(opts)
  local reply = expect_ok(self, "POST", "jwt", opts or {})
  return reply.jwt, reply.claims
end

--- A client certificate from the emulator's client CA for subject CN=identity,
-- written to dir/<name>.pem and dir/<name>.key (mode 0600). Returns both paths.
function Emulator:client_cert(identity, dir, name)
  local reply = expect_ok(self, "POST", "client_cert", { identity = identity })
  name = name or identity
  local cert = helpers.write_file(dir .. "/" .. name .. ".pem", reply.cert)
  local key = helpers.write_file(dir .. "/" .. name .. ".key", reply.key, "600")
  return cert, key
end


--- Whether this machine can run a command as nobody (setpriv) that loads the
-- core from this checkout: root ignores file permissions, so tests of
-- permission errors run as nobody. False and the reason where the file
-- system or the checkout is not open to others (a 0700 chroot or folder).
function helpers.nobody_can_run()
  local p = io.popen("setpriv --reuid=65534 --regid=65534 --clear-groups env LUA_CPATH="
    .. q(helpers.core_cpath() .. ";;") .. " lua5.4 -e 'require \"prequalify.core\"' 2>&1")
  local out = p:read("a")
  if p:close() then return true end
  return false, out:gsub("%s+$", "")
end

return helpers
