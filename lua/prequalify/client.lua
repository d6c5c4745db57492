--- The client: one object per TPP server, made from an options table.
-- It validates requests, encodes them, sends them through the C engine and
-- turns every reply into a result table or an error value.
-- @module prequalify.client
local core = require "prequalify.core"
local request = require "prequalify.request"
local preapproval = require "prequalify.preapproval"
local errors = require "prequalify.errors"
local response = require "prequalify.response"
local connect = require "prequalify.connect"
local vedauth = require "prequalify.transport.vedauth"
local scope = require "prequalify.scope"

local M = {}

M.DEFAULT_PATH = connect.DEFAULT_PATH
M.CONTRACT_PATH = connect.CONTRACT_PATH
M.ADD_PRE_APPROVAL_PATH = "/vedsdk/Codesign/AddPreApproval"
M.BROWSE_PATH = "/vedsdk/Identity/Browse"

local Client = {}
Client.__index = Client
Client.__name = "prequalify.client"
M.Client = Client

-- Each client's transport (engine, token source, settings) lives here, keyed
-- by the client, so that nothing of it is reachable from the client table.
local private = setmetatable({}, { __mode = "k" })

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = field })
end

--- Check client options and make only the transport (see `prequalify.connect`).
-- @local
M.transport = connect.transport

--- Create a client.
-- @tparam table opts `url` (server root; `/vedsdk` and `/vedauth` are appended),
--   one of `token`, `token_file` or `auth`, and optionally `ca_file`, `ca_path`
--   (added to the system trust store; `ca_replace = true` uses them alone),
--   `client_cert`, `client_key`, `key_password_file`, `pinned_pubkey`
--   (`sha256//base64` or a PEM file; for a certificate sign-in give them in
--   `auth` instead), `proxy`, `noproxy` (otherwise the
--   standard proxy environment variables apply), `timeout` (total seconds, 30),
--   `connect_timeout` (seconds, 10), `user_agent`, `prequalify_path`
--   (or `"contract"` for the 26.1 path), `retries` ({max=3, base_delay=0.5,
--   max_delay=30} or false), `retry_unknown` (false), `allow_insecure_http`,
--   `on_event` (receives redacted metadata), `warn`, `http2`,
--   `max_connections` (16), `max_response` (bytes, 1 MiB). Every option is
--   described in the options reference (docs/OPTIONS.md, a topic of the API
--   reference).
-- @return client, or nil and an `invalid` error (`err.field` names the option)
-- @raise when `opts` is not a table (a programming mistake)
function M.new(opts)
  local t, err = M.transport(opts)
  if not t then return nil, err end
  local self = setmetatable({ url = t.base, prequalify_path = t.prequalify_path }, Client)
  private[self] = t
  return self
end


function Client:__tostring()
  local t = private[self]
  return string.format("prequalify.client(%s, auth=%s%s)", self.url, t and t.auth_kind or "?",
    t and t.closed and ", closed" or "")
end

function Client:__close()
  self:close()
end

--- Release the connections. Idempotent; the client refuses calls afterwards.
-- @return nothing; it never fails
function Client:close()
  local t = private[self]
  if t then t:close() end
end

-- The client's transport; raises for a misuse (client.method, closed client).
local function state(self)
  local t = private[self]
  if not t then error("prequalify.client: expected a client object (use client:method, not client.method)", 3) end
  if t.closed then error("attempt to use a closed client", 3) end
  return t
end

--- Pre-qualify one hash.
-- @param t a request table or a normalized request
-- @tparam[opt] table opts `policy` (a policy function; a denied request
--   returns a `policy` error with its `trail` and sends nothing), `ctx`
--   (policy context), `retry_unknown`, `yield` (`f(fd, timeout)`, called
--   where the call would block: see docs/EMBEDDING.md)
-- @return `{ok=true, status=200, result=1, result_name="Success", elapsed=s,
--   attempts=n}` or nil and an error (`err.kind`: `invalid`, `policy`,
--   `transport`, `auth`, `forbidden`, `http`, `server` or `protocol`;
--   `err.outcome` says whether the server may have acted)
-- @raise when `opts` is given and is not a table
function Client:prequalify(t, opts)
  local p = state(self)
  if opts ~= nil and type(opts) ~= "table" then
    error("client:prequalify: expected an options table as second argument, got " .. type(opts), 2)
  end
  local req, err = request.new(t)
  if not req then return nil, err end
  local decision
  if opts and opts.policy then
    local policy = require "prequalify.policy"
    decision = policy.evaluate(opts.policy, req, opts.ctx)
    if not decision.allow then
      return nil, policy.denial(decision)
    end
    req = decision.request
  end
  local body, eerr = request.encode(req)
  if not body then return nil, eerr end
  local res, cerr = p:with_yield(opts and opts.yield, p.call, p, "POST", p.prequalify_path, body,
                                 { retry_unknown = opts and opts.retry_unknown, what = "prequalify" })
  if cerr then
    cerr.request = req
    cerr.trail = decision and decision.trail
    return nil, cerr
  end
  res.body = nil
  res.request = req
  res.trail = decision and decision.trail
  return res
end

--- Add a pre-approval (`Codesign/AddPreApproval`): `dn`, `comment`, `user`,
-- and optional `hours`, `single_use`, `ip_address`, `not_before` (UTC ISO
-- 8601), `signing_executable`. Same result and error shapes as `prequalify`.
-- @tparam table t the pre-approval's fields
-- @return the result table, or nil and an error (`invalid` for a bad field,
--   nothing sent)
function Client:add_pre_approval(t)
  local p = state(self)
  local wire, err = preapproval.wire(t)
  if not wire then return nil, err end
  local res, cerr = p:call("POST", M.ADD_PRE_APPROVAL_PATH, request.json.encode(wire),
    { what = "add_pre_approval" })
  if res then res.body = nil end
  return res, cerr
end

local IDENTITY_FIELDS = {
  FullName = "full_name", IsGroup = "is_group", Name = "name", Prefix = "prefix",
  PrefixedName = "prefixed_name", PrefixedUniversal = "prefixed_universal", Type = "type",
  Universal = "universal",
}

-- Identity/Browse changes nothing: it may be repeated after an `unknown`.
local browse_reply = response.document("Identity/Browse")

--- Look up identities (`Identity/Browse`, scope `configuration`).
-- @tparam table q `filter` (required), `limit` (default 10), `identity_type`
--   (1 user, 2 security group, 8 distribution group; default 1)
-- @return array of `{full_name, is_group, name, prefix, prefixed_name,
--   prefixed_universal, type, universal}`, or nil and an error (`invalid`
--   for a bad query; `forbidden` when the token lacks scope `configuration`)
function Client:browse_identities(q)
  local p = state(self)
  if type(q) ~= "table" then error("client:browse_identities: expected a table {filter=...}", 2) end
  for k in pairs(q) do
    if k ~= "filter" and k ~= "limit" and k ~= "identity_type" then
      return invalid(tostring(k), "unknown field '" .. tostring(k) .. "' (known: filter, limit, identity_type)")
    end
  end
  if type(q.filter) ~= "string" or q.filter == "" then
    return invalid("filter", "filter must be a non-empty string")
  end
  local limit = q.limit or 10
  if math.type(limit) ~= "integer" or limit < 1 then return invalid("limit", "limit must be an integer >= 1") end
  local itype = q.identity_type or 1
  if math.type(itype) ~= "integer" or itype < 1 then
    return invalid("identity_type",
      "identity_type must be 1 (user), 2 (security group), 8 (distribution group) or a sum")
  end
  local doc, err = p:call("POST", M.BROWSE_PATH,
    request.json.encode{ Filter = q.filter, Limit = limit, IdentityType = itype },
    { what = "browse", retry_unknown = true, classify = browse_reply })
  if not doc then return nil, err end
  local out = {}
  for _, ident in ipairs(type(doc.Identities) == "table" and doc.Identities or {}) do
    local item = {}
    for wire, name in pairs(IDENTITY_FIELDS) do item[name] = ident[wire] end
    out[#out + 1] = item
  end
  return out
end

--- Resolve a PrefixedName (`local:jdoe`) to the person's PrefixedUniversal.
-- @tparam string prefixed_name e.g. `local:jdoe`
-- @return the PrefixedUniversal string, or nil and an error (`invalid` when
--   no identity or several match)
function Client:resolve_user(prefixed_name)
  if type(prefixed_name) ~= "string" or not prefixed_name:find(":", 1, true) then
    return invalid("user", "expected a PrefixedName like local:jdoe")
  end
  local name = prefixed_name:match(":(.+)$")
  local found, err = self:browse_identities{ filter = name, limit = 2, identity_type = 1 }
  if not found then return nil, err end
  for _, ident in ipairs(found) do
    if type(ident.prefixed_name) == "string" and ident.prefixed_name:lower() == prefixed_name:lower() then
      if ident.is_group then
        return invalid("user", prefixed_name .. " is a group; a Key User must be a person")
      end
      return ident.prefixed_universal
    end
  end
  return nil, errors.new("server", "no person named " .. prefixed_name .. " was found by Identity/Browse",
    { outcome = "rejected", field = "user" })
end

-- Unix seconds from a number, a numeric string or "/Date(ms)/".
local function unix(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local ms = v:match("^/Date%((%-?%d+)")
  if ms then return tonumber(ms) // 1000 end
  return tonumber(v)
end

--- What the server says about the current token (`GET /vedauth/authorize/verify`).
-- Obtains or refreshes a grant first when needed.
-- @return `{identity=, application=, scope=<string>, scopes=<parsed, see
--   prequalify.scope>, valid_for=<seconds>, expires=<unix s>, issued=<unix s>,
--   grant_issued=<unix s>, grant_expires=<unix s, for auth grants when the
--   server says>}` (all times numbers), or nil and an error
function Client:token_info()
  local p = state(self)
  local doc, err = vedauth.get(p, vedauth.VERIFY_PATH, "token_info")
  if not doc then return nil, err end
  local granted = type(doc.scope) == "string" and doc.scope or nil
  local valid_for = tonumber(doc.valid_for)
  local known = p:auth_info() or {}
  return {
    identity = doc.identity,
    application = doc.application,
    scope = granted,
    scopes = granted and scope.parse(granted) or {},
    valid_for = valid_for,
    expires = unix(doc.expires_unix_time) or unix(doc.expires)
      or (valid_for and math.floor(core.time() + valid_for)),
    issued = unix(doc.access_issued_on_unix_time) or unix(doc.access_issued_on),
    grant_issued = unix(doc.grant_issued_on_unix_time) or unix(doc.grant_issued_on),
    grant_expires = unix(doc.refresh_until) or known.grant_expires,
  }
end

--- Revoke the grant behind the current token (`GET /vedauth/revoke/token`):
-- the access token and its refresh token stop working. Idempotent: when
-- nothing valid is left to revoke (already revoked, or expired) it still
-- returns ok, with `already = true`. A client made with `auth` refuses
-- further calls afterwards.
-- @return `{ok=true, revoked=true, already=<boolean>, status=n}`, or nil and
--   an error (`transport`, `http`...) when the server could not be asked
function Client:revoke()
  local p = state(self)
  local doc, err = vedauth.get(p, vedauth.REVOKE_PATH, "revoke")
  local gone = not doc and err.kind == "auth"
    and (err.status == 401 or err.error_code == "revoked" or err.error_code == "invalid_grant")
  if not doc and not gone then return nil, err end
  p:revoked()
  return { ok = true, revoked = true, already = gone, status = doc and 200 or err.status }
end

--- What this client knows locally about its grant, without a request and
-- without secrets: `identity`, `scope`, `expires`, `grant_expires`,
-- `refreshes`, `adopted` (refresh tokens taken over from another process
-- sharing `refresh_token_file`), `revoked`; nil for a static token.
function Client:auth_info()
  return state(self):auth_info()
end

--- Pre-qualify many hashes concurrently; see `prequalify.batch.run` and the
-- options reference (docs/OPTIONS.md).
-- @param items an array of request tables, an iterator (`req[, meta]`, or
--   `false, err` for a bad input; nil at the end) or a `prequalify.manifest` reader
-- @tparam[opt] table opts `concurrency`, `policy`, `journal`, `report`, ...
-- @return the report (`prequalify.report`), or nil and an `invalid` error when
--   the run cannot start
function Client:batch(items, opts) return require("prequalify.batch").run(state(self), items, opts) end

--- Start a batch without blocking: the Run `client:batch` loops over, for
-- a host's event loop (docs/EMBEDDING.md).
-- @param items as for `client:batch`
-- @tparam[opt] table opts as for `client:batch`
-- @return the Run (`run:step(max_wait)`, `pollfd`, `events`, `timeout`,
--   `report`, `cancel`, `close`), or nil and an `invalid` error as `batch` gives
function Client:start_batch(items, opts) return require("prequalify.batch").start(state(self), items, opts) end

--- Start one pre-qualification without blocking.
-- @param req a request table or a normalized request
-- @tparam[opt] table opts as for `client:prequalify`
-- @return an object with the Run's `step`, `pollfd`, `events`, `timeout` and
--   `close`, whose `report()` is what `client:prequalify(req, opts)` returns
--   (the result, or nil and its error)
function Client:start(req, opts)
  return require("prequalify.async.call").prequalify(self, state(self).engine:pollfd(), req, opts)
end

-- Flow tickets and the signing archive (docs/TICKETS.md); the work is in
-- prequalify.tickets.
local tickets = require "prequalify.tickets"

--- The pending Flow tickets (or approved ones), following the pages.
-- @tparam[opt] table o `approved` (false), `product_code` (1610743809,
--   code-signing key use; 0 for all), `page_size` (100)
-- @return an array of tickets, or nil and an error (kinds as `prequalify`)
function Client:tickets(o) return tickets.list(state(self), o) end

--- One Flow ticket.
-- @tparam string id the ticket's id
-- @return the ticket, or nil and an error
function Client:ticket(id) return tickets.get(state(self), id) end

--- Approve tickets; never resent after an `unknown` outcome.
-- @param ids a ticket id or an array of them
-- @tparam table o `comment`, `uses`, `not_before`, `expires`
-- @return `{ok=true, result=0, result_name="Success", ...}`, or nil and an
--   error (`err.invalid_ids` lists the ids the server refused)
function Client:approve_tickets(ids, o) return tickets.approve(state(self), ids, o) end

--- Reject tickets; never resent after an `unknown` outcome.
-- @param ids a ticket id or an array of them
-- @tparam table o `comment`, `final` (boolean)
-- @return the result, or nil and an error (as `approve_tickets`)
function Client:reject_tickets(ids, o) return tickets.reject(state(self), ids, o) end

--- Change approved tickets' terms; never resent after an `unknown` outcome.
-- @param ids a ticket id or an array of them
-- @tparam table o `uses`, `not_before`, `expires`, `comment`
-- @return the result, or nil and an error (as `approve_tickets`)
function Client:update_tickets(ids, o) return tickets.update(state(self), ids, o) end

--- The signing archive's entries (`Codesign/RetrieveArchiveEntries`),
-- following the pages.
-- @tparam[opt] table filter `environments`, `since`, `before`, `user`, `page_size`
-- @return an array of entries, or nil and an error
function Client:archive(filter) return tickets.archive(state(self), filter) end

return M
