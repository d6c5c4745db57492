--- Classifies an engine result (status, headers, body, curl code) into a
-- success table or an error value, following the error model in DESIGN.md.
-- Shared by the single call and the batch runner.
-- @module prequalify.response
local cjson = require "cjson"
local errors = require "prequalify.errors"
local results = require "prequalify.results"

local M = {}

local json = cjson.new()
json.decode_max_depth(32)

-- libcurl codes that mean the request never left this machine.
local CURLE = {
  UNSUPPORTED_PROTOCOL = 1, URL_MALFORMAT = 3, COULDNT_RESOLVE_PROXY = 5,
  COULDNT_RESOLVE_HOST = 6, COULDNT_CONNECT = 7, WRITE_ERROR = 23,
  OPERATION_TIMEDOUT = 28, SSL_CONNECT_ERROR = 35, TOO_MANY_REDIRECTS = 47,
  GOT_NOTHING = 52, SSL_ENGINE_NOTFOUND = 53, SEND_ERROR = 55, RECV_ERROR = 56,
  SSL_CERTPROBLEM = 58, SSL_CIPHER = 59, PEER_FAILED_VERIFICATION = 60,
  FILESIZE_EXCEEDED = 63, SEND_FAIL_REWIND = 65, SSL_CACERT_BADFILE = 77,
  SSL_PINNEDPUBKEYNOTMATCH = 90, PARTIAL_FILE = 18,
}
M.CURLE = CURLE

--- The start of the message for a server certificate no trusted CA
-- issued (a caller that knows a CA was given may say more).
M.UNTRUSTED = "the server certificate is not trusted; add your CA with ca_file (it extends the system store)"

--- An untrusted-certificate error from a client that was given a CA: the
-- message names that CA (`option` is how the caller knows it, e.g.
-- `ca_file` or `--ca-file`) instead of suggesting to add one. Other errors
-- are returned as they are.
-- @param err an error value, or nil
-- @tparam string option the CA option's name
-- @tparam string path its value
-- @return the same error, its message rewritten where it applies
function M.name_ca(err, option, path)
  local msg = err and err.message
  local at = msg and msg:find(M.UNTRUSTED, 1, true)
  if not at then return err end
  err.message = msg:sub(1, at - 1) .. "the server certificate is not trusted: neither " .. option .. " (" .. path
    .. ") nor the system store holds the CA that issued it; check that it is that CA" .. msg:sub(at + #M.UNTRUSTED)
  return err
end

local TLS_HINTS = {
  [CURLE.SSL_PINNEDPUBKEYNOTMATCH] = "the server public key does not match pinned_pubkey",
  [CURLE.SSL_CACERT_BADFILE] = "ca_file or ca_path could not be loaded",
  [CURLE.SSL_CONNECT_ERROR] = "TLS handshake failed (the server may offer only TLS < 1.2, or reject the client)",
  [CURLE.SSL_CERTPROBLEM] = "the client certificate or key could not be used",
}

--- Decode a JSON object body; nil when it is not one.
function M.decode(body)
  if type(body) ~= "string" or body == "" then return nil end
  local ok, v = pcall(json.decode, body)
  if ok and type(v) == "table" then return v end
  return nil
end

-- The server's own words from either error shape, shortened to one line.
local function server_message(doc)
  if type(doc) ~= "table" then return nil end
  local msg = doc.Error or doc.error_description or doc.error or doc.Message
  if type(msg) ~= "string" then return nil end
  if type(doc.error) == "string" and type(doc.error_description) == "string" then
    msg = doc.error .. ": " .. doc.error_description
  end
  msg = msg:gsub("[\r\n]+", " ")
  if #msg > 300 then msg = msg:sub(1, 300) .. "..." end
  return msg
end
M.server_message = server_message

--- The scope named in a 403 body ("Grant rejected scope 'codesign:approve'").
function M.missing_scope(doc, body)
  local text = server_message(doc) or body or ""
  return text:match("[Ss]cope%s+'([^']+)'") or text:match('[Ss]cope%s+"([^"]+)"')
      or text:match("[Ss]cope:?%s+([%w_]+:[%w_,]+)")
end

--- Seconds to wait from a Retry-After value (delta seconds or an HTTP date).
function M.retry_after_seconds(v, now)
  if type(v) ~= "string" then return nil end
  local n = tonumber(v:match("^%s*(%d+)%s*$"))
  if n then return n end
  local d, mon, y, h, mi, s = v:match("%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT")
  if not d then return nil end
  local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                   Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
  if not months[mon] then return nil end
  local okt, t = pcall(os.time, { year = tonumber(y), month = months[mon], day = tonumber(d),
                     hour = tonumber(h), min = tonumber(mi), sec = tonumber(s), isdst = false })
  if not okt then return nil end
  -- os.time reads the table as local time; correct to UTC.
  local utc_now = now or os.time()
  local offset = os.time(os.date("!*t", utc_now)) - utc_now
  return math.max(0, t - offset - utc_now)
end

local function transport(r, secrets)
  local code = r.curl_code
  local text = errors.redact(r.curl_error or ("libcurl error " .. code), secrets)
  local sent = r.sent
  if r.oversized then
    return errors.new("protocol", "reply larger than max_response was aborted: " .. text,
      { outcome = sent and "unknown" or "not_sent", curl_code = code, retryable = false })
  end
  local hint = TLS_HINTS[code]
  if code == CURLE.PEER_FAILED_VERIFICATION then
    if text:find("expired", 1, true) then
      hint = "the server certificate has expired (or the client's clock is wrong)"
    elseif text:find("subject name", 1, true) or text:find("does not match", 1, true) then
      hint = "the server certificate does not match the host name in url"
    else
      hint = M.UNTRUSTED
    end
  end
  local msg = hint and (hint .. " (" .. text .. ")") or text
  local outcome = sent and "unknown" or "not_sent"
  if code == CURLE.OPERATION_TIMEDOUT then
    msg = (sent and "timed out after sending; the server may have acted: " or "timed out before sending: ") .. text
  elseif code == CURLE.SEND_FAIL_REWIND then
    msg = "the connection closed after the request was sent and it was not resent: " .. text
    outcome = "unknown"
  elseif code == CURLE.GOT_NOTHING or code == CURLE.RECV_ERROR or code == CURLE.PARTIAL_FILE then
    msg = "connection lost before a complete reply: " .. text
  end
  return errors.new("transport", msg, {
    outcome = outcome, curl_code = code, retryable = outcome == "not_sent",
  })
end

-- Exact bodies of the common success reply, with their Result code: such a
-- reply is classified without decoding JSON (the decode, in a pcall, was
-- most of the cost of a reply in a batch).
local COMMON_SUCCESS = {
  ['{"Success":true,"Result":1}'] = 1,
  ['{"Result":1,"Success":true}'] = 1,
}

--- The Result code and its name of a common success reply (HTTP 2xx, a
-- body that is exactly `{"Success":true,"Result":1}`), else nil: the batch
-- runner's fast path when nothing asks for the success table itself.
-- @param r engine result table
function M.common_code(r)
  local code = COMMON_SUCCESS[r.body]
  if not code or r.curl_code ~= 0 then return nil end
  local status = r.status
  if status < 200 or status >= 300 then return nil end
  return code, results.names[code]
end

--- The success table for a common success reply (HTTP 2xx, a body that is
-- exactly `{"Success":true,"Result":1}`), else nil; what `classify` returns
-- for it, without decoding JSON.
-- @param r engine result table
function M.common_success(r)
  local code, name = M.common_code(r)
  if not code then return nil end
  return { ok = true, status = r.status, result = code, result_name = name, elapsed = r.elapsed,
           body = { Success = true, Result = code + 0.0 } }
end

--- Classify one engine result.
-- @param r engine result table
-- @tparam[opt] {string,...} secrets strings to redact from any echoed text
-- @return a success table, or nil and an error
function M.classify(r, secrets)
  if r.curl_code ~= 0 then
    return nil, transport(r, secrets)
  end
  local common = M.common_success(r)
  if common then return common end
  local status, body = r.status, r.body
  local doc = M.decode(body)
  local smsg = errors.redact(server_message(doc), secrets)
  local base = { status = status, elapsed = r.elapsed }

  if status >= 200 and status < 300 then
    if not doc then
      base.outcome = "unknown"
      return nil, errors.new("protocol", "HTTP " .. status .. " reply is not a JSON object"
        .. (r.content_type and (" (Content-Type " .. r.content_type .. ")") or ""), base)
    end
    if type(doc.Success) ~= "boolean" then
      base.outcome = "unknown"
      return nil, errors.new("protocol", "HTTP " .. status .. " reply has no boolean Success field", base)
    end
    local code = doc.Result
    if type(code) ~= "number" then code = nil end
    if type(code) == "number" then code = math.tointeger(code) or code end
    if doc.Success then
      return { ok = true, status = status, result = code,
               result_name = code and results.name(code) or nil, elapsed = r.elapsed,
               body = doc }
    end
    base.outcome = "rejected"
    base.result = code
    base.result_name = code and results.name(code) or nil
    base.server_error = smsg
    return nil, errors.new("server", string.format("server refused: %s (Result %s)%s",
      base.result_name or "no result code", tostring(code), smsg and (": " .. smsg) or ""), base)
  end

  base.server_error = smsg
  local suffix = smsg and (": " .. smsg) or ""
  if status == 401 then
    base.outcome = "rejected"
    return nil, errors.new("auth", "HTTP 401: the access token is missing, expired or revoked" .. suffix, base)
  elseif status == 403 then
    base.outcome = "rejected"
    base.scope = M.missing_scope(doc, body)
    return nil, errors.new("forbidden", "HTTP 403: the token lacks a scope or the caller lacks a role"
      .. (base.scope and (" (missing scope " .. base.scope .. ")") or "") .. suffix, base)
  elseif status == 429 or (status == 503 and r.retry_after) then
    base.outcome = "rejected"
    base.retryable = true
    base.retry_after = M.retry_after_seconds(r.retry_after)
    return nil, errors.new("http", "HTTP " .. status .. ": the server asked to try later"
      .. (base.retry_after and (" (Retry-After " .. base.retry_after .. " s)") or "") .. suffix, base)
  elseif status >= 300 and status < 400 then
    base.outcome = "rejected"
    return nil, errors.new("http", "HTTP " .. status .. ": redirects are never followed; check the url" .. suffix, base)
  elseif status == 500 or status == 502 or status == 504 or (status > 504 and status < 600) then
    base.outcome = "unknown"
    return nil, errors.new("http", "HTTP " .. status .. ": the server may or may not have acted" .. suffix, base)
  end
  base.outcome = "rejected"
  return nil, errors.new("http", "HTTP " .. status .. suffix, base)
end

--- A reader for replies whose 200 is a JSON document, not `{Success=...}`
-- (Identity/Browse, vedauth verify). They change nothing on the server, so
-- an undecodable reply is `rejected`, not `unknown`.
-- @tparam string what names the call in the error ("Identity/Browse")
-- @return function(r, secrets) -> doc, or nil and an error
function M.document(what)
  return function(r, secrets)
    if r.curl_code == 0 and r.status == 200 then
      local doc = M.decode(r.body)
      if doc then return doc end
      return nil, errors.new("protocol", what .. " answered 200 without a JSON object",
        { status = 200, outcome = "rejected" })
    end
    local _, err = M.classify(r, secrets)
    if err.kind == "protocol" then err.outcome = "rejected" end
    return nil, err
  end
end

return M
