--- The transport: what a client hands to the batch, the vedauth calls and
-- the other parts that talk to the server. It owns the engine, the token
-- source and the retry settings, and holds the one call loop (retries,
-- re-authentication on 401, redaction, events). Secrets stay in the token
-- source; no field of a transport holds one.
-- @module prequalify.transport
local core = require "prequalify.core"
local errors = require "prequalify.errors"
local response = require "prequalify.response"
local retry = require "prequalify.retry"
local auth = require "prequalify.auth"

local M = {}

local Transport = {}
Transport.__index = Transport
Transport.__name = "prequalify.transport"

-- Token source and cached headers, keyed by transport.
local private = setmetatable({}, { __mode = "k" })

--- Make a transport.
-- @tparam table c `base` (server root URL), `prequalify_path`, `settings`
--   (from `retry.settings`), `retry_unknown`, `on_event`, `warn`, `engine`
--   (options for `core.engine`), `credentials` (the client options holding
--   `token`, `token_file` or `auth`)
-- @return the transport, or nil and an `invalid` error
function M.new(c)
  local eok, engine = pcall(core.engine, c.engine)
  if not eok then return nil, errors.new("invalid", tostring(engine), { field = "engine" }) end
  local t = setmetatable({
    engine = engine, base = c.base, prequalify_path = c.prequalify_path, settings = c.settings,
    retry_unknown = c.retry_unknown or false, on_event = c.on_event, _warn = c.warn,
  }, Transport)
  local ec = c.engine or {}
  local ca = ec.ca_file and "ca_file" or ec.ca_path and "ca_path"
  local p = { headers = {}, bearer = {}, ca = ca, ca_value = ca and ec[ca],
              yields = setmetatable({}, { __mode = "k" }) }
  private[t] = p
  local source, err = auth.new(c.credentials, { transport = t, warn = function(msg) t:warn(msg) end })
  if not source then
    engine:close()
    return nil, err
  end
  p.source = source
  t.auth_kind = source.kind
  return t
end

function Transport:__tostring()
  return "prequalify.transport(" .. self.base .. (self.closed and ", closed)" or ")")
end

--- Release the connections. Idempotent.
function Transport:close()
  if not self.closed then
    self.closed = true
    self.engine:close()
  end
end

--- A classified reply's error as the user should read it: an untrusted
-- server certificate names the CA this client was given, if any.
-- @param err an error value, or nil
-- @return the same error
function Transport:explain(err)
  local p = private[self]
  if not p.ca then return err end
  return response.name_ca(err, p.ca, p.ca_value)
end

--- The full URL for a server path (`/vedsdk/...`, `/vedauth/...`).
function Transport:url(path) return self.base .. path end

--- The headers for one request with the current bearer token (obtained or
-- refreshed when needed). The table is shared until the token changes: the
-- engine copies what it needs at submit.
-- @tparam boolean with_body adds `Content-Type: application/json`
-- @return headers, or nil and an `auth` error
function Transport:headers(with_body)
  local p = private[self]
  local bearer, err = p.source.header()
  if err then return nil, err end
  local key = with_body and 1 or 0
  local h = p.headers[key]
  if not h or p.bearer[key] ~= bearer then
    h = { Accept = "application/json" }
    if with_body then h["Content-Type"] = "application/json" end
    h.Authorization = bearer
    p.headers[key], p.bearer[key] = h, bearer
  end
  return h
end

--- After a 401: one re-authentication per wave of 401s.
-- @param[opt] rejected the refused Authorization value: when the token has
--   changed since, the caller just repeats with the new one
-- @return true when a fresh token is ready; else false and why (a message
--   or an error)
function Transport:unauthorized(rejected)
  return private[self].source.unauthorized(rejected)
end

--- The secrets to redact from anything shown (tokens, passwords).
function Transport:secrets()
  local source = private[self].source -- (nil while the source is being made)
  return source and source.secrets() or {}
end

--- Secret-free facts about a grant (`identity`, `scope`, `expires`,
-- `grant_expires`, `refreshes`, `adopted`), or nil for a static token.
function Transport:auth_info()
  local source = private[self].source
  return source.info and source.info() or nil
end

--- Tell the token source that the server revoked its grant.
function Transport:revoked()
  local source = private[self].source
  if source.revoked then source.revoked() end
end

--- A warning for the user, with every secret redacted.
function Transport:warn(msg) self._warn(errors.redact(msg, self:secrets())) end

--- Hand an event to the `on_event` hook (none: nothing happens). A failing
-- hook is reported as a warning, never raised.
function Transport:emit(event)
  if not self.on_event then return end
  local ok, err = pcall(self.on_event, event)
  if not ok then self:warn("on_event hook failed: " .. tostring(err)) end
end

--- Make the calls of the running coroutine wait through `f(fd, timeout)`
-- (the `yield =` option) rather than block; nil: block again.
-- @return the function that was set before
function Transport:set_yield(f)
  local yields = private[self].yields
  local co = coroutine.running()
  local prev = yields[co]
  yields[co] = f
  return prev
end

--- Call `fn(...)` with the running coroutine's calls waiting through `f`
-- (nil: as they are), and restore what was set before, even on error.
function Transport:with_yield(f, fn, ...)
  if not f then return fn(...) end
  local prev = self:set_yield(f)
  local out = table.pack(pcall(fn, ...))
  self:set_yield(prev)
  if not out[1] then error(out[2], 0) end
  return table.unpack(out, 2, out.n)
end

-- The engine's `perform`, through the running coroutine's `yield` when it
-- has one: the engine drives every transfer it holds (a batch's included)
-- while this one is waited for.
local function perform(t, req)
  local f = private[t].yields[coroutine.running()]
  local engine = t.engine
  if not f then return engine:perform(req) end
  local id, msg = engine:submit(req)
  if not id then return nil, msg end
  while true do
    local r = engine:take(id)
    if r then return r end
    f(engine:pollfd(), engine:timeout())
  end
end

-- Wait before a retry, through the running coroutine's `yield` when it has
-- one (`fd` nil: a timer alone).
local function pause(t, delay)
  local f = private[t].yields[coroutine.running()]
  if not f then return core.sleep(delay) end
  local until_t = core.monotonic() + delay
  repeat
    f(nil, math.max(0, until_t - core.monotonic()))
  until core.monotonic() >= until_t
  return true
end

local NO_OPTS = {}

-- One attempt: returns the classified result, and the Authorization value sent.
local function attempt_once(t, method, url, body, attempt, opts, secrets)
  local headers, herr
  if opts.anonymous then
    headers = { Accept = "application/json", ["Content-Type"] = body and "application/json" or nil }
  else
    headers, herr = t:headers(body ~= nil)
    if not headers then return nil, herr end
    if opts.need_token and not headers.Authorization then
      return nil, errors.new("auth", opts.need_token .. " needs a token: give token, token_file or auth",
        { outcome = "not_sent" })
    end
  end
  local what = opts.what
  t:emit{ event = "request", what = what, method = method, url = url, attempt = attempt,
          body_bytes = body and #body or 0 }
  local r, msg = perform(t, { method = method, url = url, headers = headers, body = body })
  if not r then
    return nil, errors.new("invalid", errors.redact(msg, secrets()) .. " (check the token and header values)",
      { field = "headers" })
  end
  local res, err = (opts.classify or response.classify)(r, secrets())
  err = t:explain(err)
  t:emit{ event = "response", what = what, method = method, url = url, attempt = attempt,
          status = r.status, elapsed = r.elapsed, ok = res ~= nil,
          kind = err and err.kind, outcome = err and err.outcome,
          result = (res or err).result, new_connections = r.new_connections }
  return res, err, headers.Authorization
end

-- Says in the error why a 401 was not repeated.
local function explain_401(t, err, reauths, why)
  if reauths > 0 then
    err.message = err.message .. "; a fresh token was obtained once and the server still answered 401"
    err.reauthenticated = true
  elseif why then
    local text = type(why) == "table" and why.message or tostring(why)
    err.message = err.message .. "; no fresh token: " .. errors.redact(text, t:secrets())
    if type(why) == "table" then err.cause = why end
  end
end

--- Send one call with the retry rules and one re-authentication on 401.
-- @tparam string method
-- @tparam string path a server path (`/vedsdk/...`)
-- @tparam[opt] string body the JSON body
-- @tparam[opt] table opts `what` (event label), `retry_unknown`, `classify`
--   (reply reader, default `response.classify`), `secrets` (more to
--   redact), `anonymous` (send no bearer token), `need_token` (a name: fail
--   with `auth` when there is no token to send)
-- @return the result of `classify` with `attempts`, or nil and an error
function Transport:call(method, path, body, opts)
  opts = opts or NO_OPTS
  local url = self.base .. path
  local retry_unknown = opts.retry_unknown
  if retry_unknown == nil then retry_unknown = self.retry_unknown end
  local extra = opts.secrets
  local function secrets()
    local list = self:secrets()
    for _, s in ipairs(extra or NO_OPTS) do list[#list + 1] = s end
    return list
  end
  local decide = { retry_unknown = retry_unknown, reauths = 0 }
  local attempt = 0
  while true do
    attempt = attempt + 1
    local res, err, sent = attempt_once(self, method, url, body, attempt, opts, secrets)
    if res then
      res.attempts = attempt
      return res
    end
    local action, delay = retry.next(err, attempt, self.settings, decide)
    local why
    if action == "reauth" then
      local ok
      ok, why = self:unauthorized(sent)
      if ok then
        -- A 401 means the server did nothing: safe to repeat with a new token.
        decide.reauths = decide.reauths + 1
        attempt = attempt - 1
      else
        action = nil
      end
    elseif action == "retry" then
      self:emit{ event = "retry", what = opts.what, attempt = attempt, delay = delay,
                 kind = err.kind, outcome = err.outcome, status = err.status }
      pause(self, delay)
    end
    if not action then
      if err.kind == "auth" and err.status == 401 then explain_401(self, err, decide.reauths, why) end
      err.attempts = attempt
      return nil, err
    end
  end
end

return M
