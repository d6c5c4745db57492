-- The TLS matrix: a server with a bad certificate, an unknown issuer or an
-- old protocol makes client:prequalify fail closed, before anything is
-- sent, with a `transport` error that says what is wrong. So does a pinned
-- public key that does not match. A good server and the right pin get past
-- TLS (the test server then answers 404), which shows that each failure is
-- caused by the one defect of its case and not by the test setup.
--
-- Certificates are made here with the openssl tool in a temporary directory
-- (keys are never committed). Each server is a small Python ssl server bound
-- to port 0 that prints "ACCEPT <port>" once it listens: no sleeps, no port
-- races.
local prequalify = require "prequalify"
local helpers = require "helpers"

local q = helpers.shell_quote
-- Children must not inherit the sanitizer runtime of the ASan spec run.
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS "

local REQUEST = {
  dn = [[\VED\Code Signing\Projects\Sample\Production Environment]],
  data = "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=",
  comment = "tls test",
  user = "local:sample-cs-user",
}

-- Answers every POST with 404 and a JSON error, so that a request that got
-- through TLS ends as an `http` error. "old" limits it to TLS 1.0 and 1.1
-- (OpenSSL 3 needs security level 0 for those).
local SERVER_PY = [[
import http.server, json, ssl, sys
cert, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
if mode == "old":
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
ctx.load_cert_chain(cert, key)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"Error": "tls test server: no such endpoint"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def get_request(self):
        # The handshake happens in the handler thread, so a client that
        # rejects the certificate cannot stall the accept loop.
        sock, addr = self.socket.accept()
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr
    def handle_error(self, request, client_address):
        pass

srv = Server(("127.0.0.1", 0), Handler)
print("ACCEPT", srv.server_address[1], flush=True)
srv.serve_forever()
]]

local dir
local servers = {}

local function sh(cmd)
  local p = assert(io.popen(CLEAN_ENV .. "sh -c " .. q(cmd .. " 2>&1"), "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  assert(ok, "command failed (" .. tostring(code) .. "): " .. cmd .. "\n" .. out)
  return out
end

local function path(name) return dir .. "/" .. name end

-- A P-256 key and a CSR (or, with `self_signed`, a self-signed certificate).
local function key_and_csr(name, cn, self_signed)
  local common = "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
    .. q(path(name .. ".key")) .. " -subj " .. q("/CN=" .. cn)
  if self_signed then
    sh(common .. " -x509 -days 2 -out " .. q(path(name .. ".pem"))
      .. " -addext " .. q("subjectAltName=DNS:localhost,IP:127.0.0.1"))
  else
    sh(common .. " -out " .. q(path(name .. ".csr")))
  end
end

-- A CA: a self-signed certificate plus the files `openssl ca` keeps.
local function make_ca(name, cn)
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
    .. " -keyout " .. q(path(name .. ".key")) .. " -out " .. q(path(name .. ".pem"))
    .. " -subj " .. q("/CN=" .. cn)
    .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
  local d = path(name .. ".d")
  sh("mkdir -p " .. q(d))
  helpers.write_file(d .. "/index.txt", "")
  helpers.write_file(d .. "/serial", "1000\n")
  helpers.write_file(d .. "/ca.cnf", table.concat({
    "[ca]", "default_ca = tca",
    "[tca]", "dir = " .. d, "database = $dir/index.txt", "new_certs_dir = $dir",
    "serial = $dir/serial", "default_md = sha256", "policy = any", "unique_subject = no",
    "copy_extensions = none",
    "[any]", "commonName = supplied",
    "[localhost]", "subjectAltName = DNS:localhost,IP:127.0.0.1", "basicConstraints = CA:FALSE",
    "keyUsage = critical,digitalSignature", "extendedKeyUsage = serverAuth",
    "[wronghost]", "subjectAltName = DNS:wrong.example.invalid", "basicConstraints = CA:FALSE",
    "keyUsage = critical,digitalSignature", "extendedKeyUsage = serverAuth",
  }, "\n") .. "\n")
end

-- Signs name.csr with the CA; `dates` is "-days N" or "-startdate .. -enddate ..".
local function sign(ca, name, extensions, dates)
  local d = path(ca .. ".d")
  sh("openssl ca -batch -notext -config " .. q(d .. "/ca.cnf") .. " -cert " .. q(path(ca .. ".pem"))
    .. " -keyfile " .. q(path(ca .. ".key")) .. " -extensions " .. extensions .. " " .. dates
    .. " -in " .. q(path(name .. ".csr")) .. " -out " .. q(path(name .. ".pem")))
end

-- "sha256//" and the Base64 SHA-256 of the DER SubjectPublicKeyInfo.
local function pin_of(cert)
  local b64 = sh("openssl x509 -in " .. q(cert) .. " -pubkey -noout | openssl pkey -pubin -outform DER"
    .. " | openssl dgst -sha256 -binary | openssl base64 -A")
  return "sha256//" .. b64:gsub("%s+$", "")
end

-- Starts a server for name.pem/name.key; returns its https URL.
local function serve(name, mode)
  local python = os.getenv("PYTHON") or "python3"
  local log = path(name .. ".log")
  local cmd = CLEAN_ENV .. q(python) .. " " .. q(path("server.py")) .. " " .. q(path(name .. ".pem"))
    .. " " .. q(path(name .. ".key")) .. " " .. q(mode or "modern") .. " 2>" .. q(log)
    .. " </dev/null & echo PID=$!"
  local pipe = assert(io.popen(cmd, "r"))
  local pid, port
  -- The shell's PID line and the server's ACCEPT line, in either order.
  while not (pid and port) do
    local line = pipe:read("l")
    if not line then break end
    pid = pid or line:match("^PID=(%d+)$")
    port = port or line:match("^ACCEPT (%d+)$")
  end
  if not port then
    pipe:close()
    error("TLS test server " .. name .. " did not start:\n" .. (helpers.read_file(log) or ""))
  end
  servers[#servers + 1] = { pid = pid, pipe = pipe }
  return "https://127.0.0.1:" .. port, tonumber(port)
end

local function client(url, extra)
  local opts = { url = url, token = "x", ca_file = path("ca.pem"), retries = false,
                 connect_timeout = 5, timeout = 10 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(prequalify.client(opts))
end

-- Fails closed: nil, a transport error, nothing sent; returns the error.
local function fails_closed(url, phrases, extra)
  local c = client(url, extra)
  local res, err = c:prequalify(REQUEST)
  c:close()
  assert.is_nil(res, "expected the request to " .. url .. " to fail")
  assert.equal("transport", err.kind, tostring(err))
  assert.equal("not_sent", err.outcome, tostring(err))
  assert.is_nil(err.status, tostring(err))
  for _, phrase in ipairs(phrases) do
    assert.is_truthy(err.message:lower():find(phrase, 1, true),
      "message lacks '" .. phrase .. "': " .. err.message)
  end
  assert.is_nil(tostring(err):find("[\r\n]"), "not one line: " .. tostring(err))
  return err
end

-- Gets through TLS: the test server's 404 comes back as an `http` error.
local function passes_tls(url, extra)
  local c = client(url, extra)
  local res, err = c:prequalify(REQUEST)
  c:close()
  assert.is_nil(res)
  assert.equal("http", err.kind, tostring(err))
  assert.equal(404, err.status)
  assert.equal("rejected", err.outcome)
end

describe("the TLS matrix #tls", function()
  local url = {}

  lazy_setup(function()
    dir = helpers.tmpdir()
    helpers.write_file(path("server.py"), SERVER_PY)
    make_ca("ca", "prequalify test CA")
    make_ca("other_ca", "prequalify untrusted CA")
    for _, name in ipairs{ "good", "old", "expired", "wronghost", "unknown" } do
      key_and_csr(name, name == "wronghost" and "wrong.example.invalid" or "localhost")
    end
    key_and_csr("selfsigned", "localhost", true)
    sign("ca", "good", "localhost", "-days 2")
    sign("ca", "old", "localhost", "-days 2")
    sign("ca", "expired", "localhost", "-startdate 20200101000000Z -enddate 20200102000000Z")
    sign("ca", "wronghost", "wronghost", "-days 2")
    sign("other_ca", "unknown", "localhost", "-days 2")
    for _, name in ipairs{ "good", "expired", "wronghost", "unknown", "selfsigned" } do
      url[name] = serve(name)
    end
    url.old, url.old_port = serve("old", "old")
  end)

  lazy_teardown(function()
    for _, s in ipairs(servers) do
      os.execute("kill " .. s.pid .. " 2>/dev/null")
      s.pipe:read("a")
      s.pipe:close()
    end
    servers = {}
    if dir then helpers.rm_rf(dir) end
  end)

  it("gets through TLS to a server whose certificate the CA signed for its name", function()
    passes_tls(url.good)
  end)

  it("refuses an expired server certificate", function()
    fails_closed(url.expired, { "has expired", "expired" })
  end)

  it("refuses a certificate issued for another host name", function()
    fails_closed(url.wronghost, { "does not match the host name", "target host name" })
  end)

  it("refuses a certificate from a CA that is not trusted", function()
    local err = fails_closed(url.unknown, { "not trusted", "issuer" })
    -- The client was given a CA file: the message names it, and does not
    -- suggest adding one.
    assert.truthy(err.message:find("neither ca_file (" .. path("ca.pem") .. ") nor the system store", 1, true),
      err.message)
    assert.falsy(err.message:find("add your CA", 1, true), err.message)
    -- The same server is accepted once its CA is added: only trust was missing.
    passes_tls(url.unknown, { ca_file = path("other_ca.pem") })
  end)

  it("refuses a self-signed server certificate", function()
    fails_closed(url.selfsigned, { "not trusted", "self-signed" })
  end)

  it("refuses a server that offers only TLS 1.0 and 1.1", function()
    -- The server really speaks TLS 1.1 to a client that allows it, so the
    -- failure below is the client's refusal of the old protocol.
    local out = sh("openssl s_client -connect 127.0.0.1:" .. url.old_port
      .. " -tls1_1 -cipher DEFAULT:@SECLEVEL=0 -CAfile " .. q(path("ca.pem")) .. " </dev/null")
    assert.is_truthy(out:find("Protocol%s*:%s*TLSv1%.1"), "the old server did not speak TLS 1.1:\n" .. out)
    fails_closed(url.old, { "tls handshake failed", "tls < 1.2" })
  end)

  it("refuses a server whose public key does not match the pin", function()
    -- A well-formed pin of another key (the CA's), and a pin of nothing.
    fails_closed(url.good, { "does not match pinned_pubkey" }, { pinned_pubkey = pin_of(path("ca.pem")) })
    fails_closed(url.good, { "does not match pinned_pubkey" },
      { pinned_pubkey = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" })
  end)

  it("accepts the server when the pin is its own public key", function()
    passes_tls(url.good, { pinned_pubkey = pin_of(path("good.pem")) })
    -- A pin list passes when one entry matches.
    passes_tls(url.good, { pinned_pubkey = pin_of(path("ca.pem")) .. ";" .. pin_of(path("good.pem")) })
  end)
end)
