--- Replies of the Flow ticket calls and of the signing archive, read into a
-- result or an error with the same kinds and outcomes as `client:prequalify`.
-- Flow result codes differ from PreQualify's: 0 is success. Codes are
-- named; unknown ones are kept by number. `InvalidTicketIds` becomes
-- `err.invalid_ids`. Each reader is a `classify` for `transport:call`.
-- @module prequalify.tickets.reply
local errors = require "prequalify.errors"
local response = require "prequalify.response"
local wire = require "prequalify.tickets.wire"

local M = {}

--- Flow result code → name (API-NOTES.md).
M.names = {
  [0] = "Success", [1] = "InsufficientPermission", [2] = "TicketNotFound",
  [3] = "FailedToEnumerateTickets", [4] = "FailedToApproveTickets", [5] = "FailedToRejectTickets",
  [6] = "FailedToCreateTicket", [7] = "FailedToGetTicket", [8] = "FailedToDeleteTicket",
  [9] = "FailedToUseTicket", [10] = "NoTicketUsesRemain", [11] = "FailedToUpdateTickets",
}

--- The name of a Flow result code; unknown codes by number ("Unknown(42)").
function M.name(code)
  local i = math.tointeger(code)
  return i and M.names[i] or ("Unknown(" .. tostring(i or code) .. ")")
end

-- A non-2xx reply or a transport failure, classified as for PreQualify.
-- A read changes nothing on the server, so a reply it cannot understand
-- is `rejected` there (as for Identity/Browse).
local function other(r, secrets, acts)
  local _, err = response.classify(r, secrets)
  if not acts and err.kind == "protocol" then err.outcome = "rejected" end
  return nil, err
end

local function unreadable(r, what, acts)
  return nil, errors.new("protocol", what .. " reply (HTTP " .. r.status .. ") is not a JSON object",
    { status = r.status, outcome = acts and "unknown" or "rejected" })
end

-- The ids a reply lists, redacted like any text from outside.
local function ids_of(v, secrets)
  v = wire.value(v)
  if type(v) ~= "table" or #v == 0 then return nil end
  local out = {}
  for i, id in ipairs(v) do out[i] = errors.redact(tostring(wire.value(id)), secrets) end
  return out
end

--- A reader of Flow replies (`{Result, Message, ...}`).
-- @tparam string what the call, for messages ("Flow/Tickets/Approve")
-- @tparam boolean acts whether the call changes tickets: then a reply that
--   cannot be read leaves the outcome `unknown`
-- @return `classify(r, secrets)` giving `{ok=true, status, result=0,
--   result_name="Success", elapsed, body}` or nil and an error
function M.flow(what, acts)
  return function(r, secrets)
    if r.curl_code ~= 0 or r.status < 200 or r.status >= 300 then return other(r, secrets, acts) end
    local doc = response.decode(r.body)
    if not doc then return unreadable(r, what, acts) end
    local code = wire.int(doc.Result)
    if math.type(code) ~= "integer" then
      return nil, errors.new("protocol", what .. " reply has no integer Result field",
        { status = r.status, outcome = acts and "unknown" or "rejected" })
    end
    local invalid = ids_of(doc.InvalidTicketIds, secrets)
    local smsg = errors.redact(response.server_message(doc), secrets)
    local base = { status = r.status, elapsed = r.elapsed, result = code, result_name = M.name(code),
                   invalid_ids = invalid, server_error = smsg, outcome = "rejected" }
    if code == 0 and not invalid then
      return { ok = true, status = r.status, result = 0, result_name = "Success", elapsed = r.elapsed, body = doc }
    end
    local not_for = invalid and ("; not pending or unknown: " .. table.concat(invalid, ", ")) or ""
    if code == 0 then
      -- The server acted on the other tickets: say so, the outcome of the
      -- call as a whole is not a plain refusal.
      base.partial = true
      return nil, errors.new("server", what .. " acted only on some tickets" .. not_for, base)
    end
    return nil, errors.new("server", string.format("server refused: %s (Result %d)%s%s", base.result_name, code,
      smsg and (": " .. smsg) or "", not_for), base)
  end
end

--- A reader of `Codesign/RetrieveArchiveEntries` replies (`{ArchiveResults,
-- PageNumber, TotalCount, Success}`); a `Success:false` is a `server` error.
function M.archive(r, secrets)
  if r.curl_code ~= 0 or r.status < 200 or r.status >= 300 then return other(r, secrets, false) end
  local doc = response.decode(r.body)
  if not doc then return unreadable(r, "Codesign/RetrieveArchiveEntries", false) end
  if doc.Success == false then
    local smsg = errors.redact(response.server_message(doc), secrets)
    return nil, errors.new("server", "server refused the archive query" .. (smsg and (": " .. smsg) or ""),
      { status = r.status, outcome = "rejected", server_error = smsg, result = wire.int(doc.Result) })
  end
  if type(wire.value(doc.ArchiveResults)) ~= "table" then
    return nil, errors.new("protocol", "Codesign/RetrieveArchiveEntries reply has no ArchiveResults array",
      { status = r.status, outcome = "rejected" })
  end
  return { ok = true, status = r.status, elapsed = r.elapsed, body = doc }
end

return M
