--- Where the command line's settings come from: options, then environment
-- variables, then a config file. Also picks the one way to authenticate and
-- builds the client options. Secrets are read from files, the environment
-- or stdin only; a config file may name secret files but not hold secrets.
-- @module prequalify.cli.settings
local paths = require "prequalify.paths"

local M = {}

-- Setting -> environment variable and kind. Option names are the same with
-- '-' for '_' (--ca-file is ca_file); config keys are these names.
M.KEYS = {
  url = { env = "PREQUALIFY_URL" },
  ca_file = { env = "PREQUALIFY_CA_FILE", kind = "path" },
  ca_path = { env = "PREQUALIFY_CA_PATH", kind = "path" },
  client_cert = { env = "PREQUALIFY_CLIENT_CERT", kind = "path" },
  client_key = { env = "PREQUALIFY_CLIENT_KEY", kind = "path" },
  key_password_file = { env = "PREQUALIFY_KEY_PASSWORD_FILE", kind = "path" },
  pinned_pubkey = { env = "PREQUALIFY_PINNED_PUBKEY" },
  proxy = { env = "PREQUALIFY_PROXY" },
  timeout = { env = "PREQUALIFY_TIMEOUT", kind = "number" },
  connect_timeout = { env = "PREQUALIFY_CONNECT_TIMEOUT", kind = "number" },
  api_path = { env = "PREQUALIFY_API_PATH" },
  insecure_http = { env = "PREQUALIFY_INSECURE_HTTP", kind = "boolean" },
  token_file = { env = "PREQUALIFY_TOKEN_FILE", kind = "path" },
  client_id = { env = "PREQUALIFY_CLIENT_ID" },
  username = { env = "PREQUALIFY_USERNAME" },
  password_file = { env = "PREQUALIFY_PASSWORD_FILE", kind = "path" },
  refresh_token_file = { env = "PREQUALIFY_REFRESH_TOKEN_FILE", kind = "path" },
  jwt_file = { env = "PREQUALIFY_JWT_FILE", kind = "path" },
  jwt_env = { env = "PREQUALIFY_JWT_ENV" },
  certificate_grant = { env = "PREQUALIFY_CERTIFICATE_GRANT", kind = "boolean" },
  scope = { env = "PREQUALIFY_SCOPE" },
  dn = { env = "PREQUALIFY_DN" },
  user = { env = "PREQUALIFY_USER" },
  comment = { env = "PREQUALIFY_COMMENT" },
  hours = { env = "PREQUALIFY_HOURS", kind = "integer" },
  single_use = { env = "PREQUALIFY_SINGLE_USE", kind = "boolean" },
  algorithm = { env = "PREQUALIFY_ALGORITHM" },
  policy = { env = "PREQUALIFY_POLICY", kind = "path" },
  concurrency = { env = "PREQUALIFY_CONCURRENCY", kind = "integer" },
}

--- Secrets that only the environment may hold (never an option or config).
M.SECRET_ENV = { token = "PREQUALIFY_TOKEN", password = "PREQUALIFY_PASSWORD" }

-- Keys that must not appear in a config file, and what to use instead.
local SECRET_KEYS = {
  token = "token_file", password = "password_file", refresh_token = "refresh_token_file",
  key_password = "key_password_file",
}

-- Levels: where a value came from.
local OPTION, ENV, CONFIG = 3, 2, 1

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local BOOLEANS = { ["1"] = true, ["true"] = true, yes = true, on = true,
                   ["0"] = false, ["false"] = false, no = false, off = false, [""] = false }

-- A raw value (string from env or key=value, or a Lua value) to its kind.
local function convert(key, v, where)
  local kind = M.KEYS[key].kind or "string"
  if kind == "boolean" then
    if type(v) == "boolean" then return v end
    local b = BOOLEANS[tostring(v):lower()]
    if b == nil then return nil, where .. ": " .. key .. " must be true or false, got '" .. tostring(v) .. "'" end
    return b
  elseif kind == "number" or kind == "integer" then
    local n = tonumber(v)
    if kind == "integer" then n = n and math.tointeger(n) end
    if not n or n ~= n then
      return nil, where .. ": " .. key .. " must be a " .. (kind == "integer" and "whole number" or "number")
        .. ", got '" .. tostring(v) .. "'"
    end
    return n
  end
  if type(v) ~= "string" then
    return nil, where .. ": " .. key .. " must be a string, got " .. type(v)
  end
  return v
end

-- Relative paths in a config file are relative to the file.
local function relative_to(dir, path)
  if path:sub(1, 1) == "/" or path:sub(1, 1) == "~" or dir == "." then return path end
  return dir .. "/" .. path
end

-- key = value lines; '#' starts a comment line; values may be quoted.
local function parse_key_value(text, path)
  local out = {}
  local lineno = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    line = trim(line:gsub("\r$", ""))
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local k, v = line:match("^([%w_%-]+)%s*=%s*(.-)$")
      if not k then
        return nil, string.format("config %s:%d: expected key = value", path, lineno)
      end
      local q = v:sub(1, 1)
      if (q == '"' or q == "'") and #v >= 2 and v:sub(-1) == q then v = v:sub(2, -2) end
      out[#out + 1] = { key = k:gsub("%-", "_"), value = v, line = lineno }
    end
  end
  return out
end

-- A Lua config: `return { ... }` or plain assignments, run with no library.
local function parse_lua(text, path)
  local env = {}
  local chunk, err = load(text, "@" .. path, "t", env)
  if not chunk then return nil, "config " .. tostring(err) end
  local ok, ret = pcall(chunk)
  if not ok then return nil, "config " .. tostring(ret) end
  local t = type(ret) == "table" and ret or env
  local out = {}
  for k, v in pairs(t) do
    if type(k) ~= "string" then return nil, "config " .. path .. ": keys must be names" end
    out[#out + 1] = { key = k, value = v }
  end
  table.sort(out, function(a, b) return a.key < b.key end)
  return out
end

--- Read a config file into `{key = value}` with paths resolved.
-- @return the table and `{key = line}` (key = value files only), or nil
--   and a message
function M.load_config(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "config " .. tostring(err) end
  local text = f:read("a") or ""
  f:close()
  local entries, perr
  if path:match("%.lua$") then
    entries, perr = parse_lua(text, path)
  else
    entries, perr = parse_key_value(text, path)
  end
  if not entries then return nil, perr end
  local dir = paths.dirname(path)
  local out, lines = {}, {}
  for _, e in ipairs(entries) do
    local where = "config " .. path .. (e.line and (":" .. e.line) or "")
    if SECRET_KEYS[e.key] then
      return nil, where .. ": a config file must not hold the " .. e.key:gsub("_", " ")
        .. "; put it in a file of its own (mode 0600) and set " .. SECRET_KEYS[e.key]
    end
    if not M.KEYS[e.key] then
      local known = {}
      for k in pairs(M.KEYS) do known[#known + 1] = k end
      table.sort(known)
      return nil, where .. ": unknown key '" .. e.key .. "' (known: " .. table.concat(known, ", ") .. ")"
    end
    local v, cerr = convert(e.key, e.value, where)
    if v == nil then return nil, cerr end
    if M.KEYS[e.key].kind == "path" then v = relative_to(dir, v) end
    out[e.key], lines[e.key] = v, e.line
  end
  return out, lines
end

local Settings = {}
Settings.__index = Settings

--- Merge options, environment and config.
-- @param args parsed options (argparse result)
-- @param getenv function(name) -> string or nil
-- @return settings object (`s.values`, `s:get(key)`, `s:source(key)`), or nil and a message
function M.resolve(args, getenv)
  local self = setmetatable({ values = {}, sources = {}, levels = {}, getenv = getenv }, Settings)
  local config_path = args.config or getenv("PREQUALIFY_CONFIG")
  local config, config_lines = {}, {}
  if config_path and config_path ~= "" then
    local c, lines = M.load_config(config_path)
    if not c then return nil, lines end
    config, config_lines = c, lines
    self.config = config_path
  end
  for key, spec in pairs(M.KEYS) do
    local v, src, level = args[key], "--" .. key:gsub("_", "-"), OPTION
    if v == nil then
      local e = getenv(spec.env)
      if e ~= nil and e ~= "" then
        local cv, err = convert(key, e, spec.env)
        if cv == nil then return nil, err end
        v, src, level = cv, spec.env, ENV
      end
    end
    if v == nil and config[key] ~= nil then
      v, src, level = config[key], "config " .. config_path
        .. (config_lines[key] and (":" .. config_lines[key]) or ""), CONFIG
    end
    if v ~= nil then
      self.values[key], self.sources[key], self.levels[key] = v, src, level
    end
  end
  return self
end

function Settings:get(key)
  return self.values[key]
end

--- Where a setting's value came from, as the user gave it: `--hours`,
-- `PREQUALIFY_HOURS` or `config FILE:LINE`; nil when it is not set.
function Settings:source(key)
  return self.sources[key]
end

-- Lua option names (of prequalify.client and requests) that the command
-- line calls by another name.
local LUA_NAMES = { allow_insecure_http = "insecure_http", prequalify_path = "api_path" }

--- An error's message, led by where the offending value came from (its
-- option, variable, or config file and line) when a setting gave it.
-- @param err an error value (with `field`) or a message
-- @treturn string
function Settings:explain(err)
  if type(err) ~= "table" then return self:own_words(tostring(err)) end
  local key = err.field and (LUA_NAMES[err.field] or err.field:match("^auth%.(.+)$") or err.field)
  local src = key and self.sources[key]
  local msg = self:own_words(tostring(err.message))
  if not src or msg:find(src, 1, true) then return msg end
  return src .. ": " .. msg
end

--- A library message with the sign-in fields it names (`auth.jwt_file`,
-- `auth.client_id`...) called as the user gave them (`--jwt-file`,
-- `PREQUALIFY_JWT_FILE` or a config file line).
-- @tparam string msg the message
-- @treturn string
function Settings:own_words(msg)
  return (msg:gsub("auth%.([%w_]+)", function(key) return self.sources[key] end))
end

--- The request fields from the settings: dn, user, comment, hours, single_use.
function Settings:template()
  local v = self.values
  return { dn = v.dn, user = v.user, comment = v.comment, hours = v.hours, single_use = v.single_use or nil }
end

-- One line from stdin, for --token-stdin / --password-stdin.
local function read_stdin(stdin, what)
  local line = stdin:read("l")
  if line then line = trim(line) end
  if not line or line == "" then return nil, what .. ": nothing was read from stdin" end
  return line
end

--- Pick the one way to authenticate.
-- The highest level (option > environment > config) that names a
-- credential decides; two different credentials on that level are an error.
-- @param args parsed options (for --token-stdin, --password-stdin)
-- @param stdin file to read a secret from
-- @return client option fields (`token`, `token_file` or `auth`), a
--   description, or nil and a usage message; `{}` when none is given
function Settings:credentials(args, stdin)
  local getenv = self.getenv
  local v, lv = self.values, self.levels
  local found = {}
  local function add(kind, level, what) found[#found + 1] = { kind = kind, level = level, what = what } end
  if args.token_stdin then add("token", OPTION, "--token-stdin") end
  if getenv(M.SECRET_ENV.token) and getenv(M.SECRET_ENV.token) ~= "" then add("token", ENV, M.SECRET_ENV.token) end
  if v.token_file then add("token_file", lv.token_file, self.sources.token_file) end
  if args.password_stdin then add("password", OPTION, "--password-stdin") end
  if v.password_file then add("password", lv.password_file, self.sources.password_file) end
  local env_password = getenv(M.SECRET_ENV.password)
  if env_password and env_password ~= "" then add("password", ENV, M.SECRET_ENV.password) end
  if v.refresh_token_file then add("refresh", lv.refresh_token_file, self.sources.refresh_token_file) end
  for _, k in ipairs{ "jwt_file", "jwt_env", "certificate_grant" } do
    if v[k] then add(k, lv[k], self.sources[k]) end
  end
  if #found == 0 then return {}, "none" end

  local top = 0
  for _, f in ipairs(found) do top = math.max(top, f.level) end
  local pick, kinds = {}, {}
  for _, f in ipairs(found) do
    if f.level == top then
      pick[#pick + 1] = f
      kinds[f.kind] = true
    end
  end
  local nkinds = 0
  for _ in pairs(kinds) do nkinds = nkinds + 1 end
  if nkinds > 1 or #pick > 1 then
    local names = {}
    for _, f in ipairs(pick) do names[#names + 1] = f.what end
    return nil, "give one way to authenticate, found " .. table.concat(names, " and ")
  end
  local f = pick[1]
  if f.kind == "token" then
    if f.what == "--token-stdin" then
      local t, err = read_stdin(stdin, "--token-stdin")
      if not t then return nil, err end
      return { token = t }, "a token from stdin"
    end
    return { token = getenv(M.SECRET_ENV.token) }, "a token from " .. M.SECRET_ENV.token
  elseif f.kind == "token_file" then
    return { token_file = v.token_file }, "the token file " .. v.token_file
  end
  local client_id = v.client_id
  if not client_id then
    return nil, "a sign-in needs the client_id of the API integration in TPP: give --client-id "
      .. "or set PREQUALIFY_CLIENT_ID"
  end
  if f.kind == "refresh" then
    return { auth = { client_id = client_id, refresh_token_file = v.refresh_token_file } },
      "the refresh token file " .. v.refresh_token_file
  end
  if f.kind == "jwt_file" or f.kind == "jwt_env" then
    return { auth = { client_id = client_id, [f.kind] = v[f.kind], scope = v.scope } },
      "a JWT from " .. (f.kind == "jwt_file" and "the file " or "the variable ") .. v[f.kind]
  elseif f.kind == "certificate_grant" then
    if not (v.client_cert and v.client_key) then
      return nil, "a certificate sign-in needs --client-cert and --client-key (or PREQUALIFY_CLIENT_CERT "
        .. "and PREQUALIFY_CLIENT_KEY)"
    end
    return { auth = { client_id = client_id, client_cert = v.client_cert, client_key = v.client_key,
                      key_password_file = v.key_password_file, scope = v.scope } },
      "a certificate sign-in with " .. v.client_cert
  end
  if not v.username then
    return nil, "a password needs a user name: give --username or set PREQUALIFY_USERNAME"
  end
  local auth = { client_id = client_id, username = v.username, scope = v.scope }
  if f.what == "--password-stdin" then
    local pw, err = read_stdin(stdin, "--password-stdin")
    if not pw then return nil, err end
    auth.password = pw
  elseif f.kind == "password" and f.what == M.SECRET_ENV.password then
    auth.password = env_password
  else
    auth.password_file = v.password_file
  end
  return { auth = auth }, "a sign-in as " .. v.username
end

--- Whether the PEM file of setting `key` (when set) can be read and holds a
-- PEM block; otherwise false and a message that names the file and where it
-- was given.
function Settings:check_pem(key)
  local path = self.values[key]
  if not path then return true end
  local f, err = io.open(path, "rb")
  if not f then return false, self.sources[key] .. ": cannot read " .. tostring(err) end
  local head = f:read(64 * 1024) or ""
  f:close()
  if not head:find("-----BEGIN ", 1, true) then
    return false, self.sources[key] .. ": " .. path .. " is not a PEM file (no '-----BEGIN' line); "
      .. "convert a DER certificate with: openssl x509 -inform der -in " .. path .. " -out "
      .. path:gsub("%.%w+$", "") .. ".pem"
  end
  return true
end

--- The options for `prequalify.client`, without credentials.
-- @return table, or nil and a usage message
function Settings:client_options(warn)
  local v = self.values
  if not v.url then
    return nil, "no server: give --url or set PREQUALIFY_URL (e.g. https://tpp.example.com)"
  end
  if v.url:match("^[Hh][Tt][Tt][Pp]://") and not v.insecure_http then
    return nil, self.sources.url .. ": " .. v.url .. " uses http://, which would send the bearer token in "
      .. "clear text; use https:// (--insecure-http or PREQUALIFY_INSECURE_HTTP=1 allows it, for a local "
      .. "test server only)"
  end
  for _, key in ipairs{ "ca_file", "client_cert" } do
    local ok, why = self:check_pem(key)
    if not ok then return nil, why end
  end
  return {
    url = v.url, ca_file = v.ca_file, ca_path = v.ca_path, client_cert = v.client_cert,
    client_key = v.client_key, key_password_file = v.key_password_file, pinned_pubkey = v.pinned_pubkey,
    proxy = v.proxy, timeout = v.timeout, connect_timeout = v.connect_timeout,
    prequalify_path = v.api_path, allow_insecure_http = v.insecure_http or nil, warn = warn,
  }
end

return M
