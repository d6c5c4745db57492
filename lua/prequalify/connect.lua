--- A client's options checked and turned into its transport: the URL
-- rules, timeouts, TLS identity files and the engine's settings.
-- @module prequalify.connect
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local options = require "prequalify.options"
local retry = require "prequalify.retry"
local transport = require "prequalify.transport"
local secret_file = require "prequalify.transport.secret_file"

local M = {}

M.DEFAULT_PATH = "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create"
M.CONTRACT_PATH = "/vedsdk/actions/codesign/prequalify/Create"

-- Option name -> accepted Lua type(s).
local OPTIONS = {
  url = "string", token = "string", token_file = "string", auth = "table",
  ca_file = "string", ca_path = "string", ca_replace = "boolean",
  client_cert = "string", client_key = "string", key_password_file = "string",
  pinned_pubkey = "string", proxy = "string", noproxy = "string",
  timeout = "number", connect_timeout = "number", user_agent = "string",
  prequalify_path = "string", retries = "table|boolean", retry_unknown = "boolean",
  allow_insecure_http = "boolean", on_event = "function", warn = "function",
  http2 = "boolean", max_connections = "number", max_response = "number",
}

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = field })
end

local function check_url(opts)
  local url = opts.url
  if not url then return invalid("url", "url is required: the server root, e.g. https://tpp.example.com") end
  -- Checked first, so that no message below echoes a query that may hold a secret.
  if url:find("[?#]") then
    return invalid("url", "url must not hold a query string or fragment ('?' or '#'): "
      .. "give the server root, e.g. https://tpp.example.com")
  end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.+)$")
  if not scheme then return invalid("url", "url must look like https://host[:port], got '" .. url .. "'") end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then
    return invalid("url", "url scheme must be https (got " .. scheme .. ")")
  end
  if scheme == "http" and not opts.allow_insecure_http then
    return invalid("url", "url uses http://, which would send the bearer token in clear text; "
      .. "use https:// (set allow_insecure_http = true only for a local test server)")
  end
  if rest:find("@", 1, true) and rest:find("@", 1, true) < (rest:find("/", 1, true) or #rest + 1) then
    return invalid("url", "url must not hold credentials (user:password@); use token, token_file or auth")
  end
  if url:find("[%c%s]") then return invalid("url", "url must not contain spaces or control characters") end
  return (url:gsub("/+$", ""):gsub("/vedsdk$", ""))
end

local function positive(opts, name, default)
  local v = opts[name]
  if v == nil then return default end
  if v <= 0 then return nil, "client option '" .. name .. "' must be > 0 seconds" end
  return v
end

-- The client certificate for mutual TLS: the client options', or the
-- certificate grant's (`auth.client_cert`...), never both. Returns the
-- table holding it and the field prefix for messages.
local function tls_identity(opts)
  local a = type(opts.auth) == "table" and opts.auth or {}
  local in_auth = type(a.client_cert) == "string" or type(a.client_key) == "string"
  if not in_auth then return opts, "" end
  local function differs(k) return opts[k] ~= nil and opts[k] ~= a[k] end
  if differs("client_cert") or differs("client_key") or differs("key_password_file") then
    return nil, nil, errors.new("invalid", "give the client certificate once: client_cert and client_key, "
      .. "or auth.client_cert and auth.client_key for a certificate sign-in", { field = "auth.client_cert" })
  end
  local key_password_file = type(a.key_password_file) == "string" and a.key_password_file or nil
  return { client_cert = a.client_cert, client_key = a.client_key, key_password_file = key_password_file }, "auth."
end

--- Check a client's options and make its transport (what `prequalify.client`
-- wraps; `prequalify token` uses it alone to run a grant by hand).
-- @tparam table opts the options of `prequalify.client` (docs/OPTIONS.md)
-- @return the transport, or nil and an `invalid` error (`err.field` names the option)
-- @raise when `opts` is not a table (a programming mistake)
function M.transport(opts)
  if type(opts) ~= "table" then
    error("prequalify.client: expected a table of options, got " .. type(opts), 3)
  end
  local ok, err = options.check(opts, OPTIONS, "client")
  if not ok then return nil, err end
  local base, uerr = check_url(opts)
  if not base then return nil, uerr end

  local path = opts.prequalify_path or M.DEFAULT_PATH
  if path == "contract" then path = M.CONTRACT_PATH end
  if path:sub(1, 1) ~= "/" or path:find("[%c%s?#]") then
    return invalid("prequalify_path", "prequalify_path must be an absolute path like " .. M.DEFAULT_PATH)
  end
  local timeout, terr = positive(opts, "timeout", 30)
  if not timeout then return invalid("timeout", terr) end
  local connect_timeout, cerr = positive(opts, "connect_timeout", 10)
  if not connect_timeout then return invalid("connect_timeout", cerr) end
  local settings, rerr = retry.settings(opts.retries)
  if not settings then return invalid("retries", rerr) end
  local tls, prefix, terr2 = tls_identity(opts)
  if not tls then return nil, terr2 end
  for _, name in ipairs{ "ca_file", "client_cert", "client_key" } do
    local file = (name == "ca_file" and opts or tls)[name]
    if file then
      local field = (name == "ca_file" and "" or prefix) .. name
      local f = io.open(file, "rb")
      if not f then return invalid(field, field .. " " .. file .. " cannot be read") end
      f:close()
    end
  end
  local key_password
  if tls.key_password_file then
    local field = prefix .. "key_password_file"
    local kp, kerr = secret_file.read(tls.key_password_file, field)
    if not kp then return invalid(field, kerr.message) end
    key_password = kp
  end

  return transport.new{
    base = base, prequalify_path = path, settings = settings, retry_unknown = opts.retry_unknown,
    on_event = opts.on_event, credentials = opts,
    warn = opts.warn or function(msg) io.stderr:write("prequalify: warning: ", msg, "\n") end,
    engine = {
      timeout = timeout, connect_timeout = connect_timeout,
      ca_file = opts.ca_file, ca_path = opts.ca_path, ca_replace = opts.ca_replace,
      client_cert = tls.client_cert, client_key = tls.client_key, key_password = key_password,
      pinned_pubkey = opts.pinned_pubkey, proxy = opts.proxy, noproxy = opts.noproxy,
      user_agent = opts.user_agent or ("prequalify/" .. core._VERSION),
      http2 = opts.http2, max_connections = opts.max_connections, max_response = opts.max_response,
    },
  }
end

return M
