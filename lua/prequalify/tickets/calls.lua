--- The Flow ticket calls over a transport: list (following the pages), load
-- one, approve, reject and update. Body field names are case-sensitive on
-- the server; the lower-camel `useCount` and `notBefore` are sent, as the
-- docs and the vendor's client do. Reads are repeated when their outcome is
-- unknown (they change nothing); an approve, reject or update never is.
-- @module prequalify.tickets.calls
local errors = require "prequalify.errors"
local options = require "prequalify.options"
local request = require "prequalify.request"
local wire = require "prequalify.tickets.wire"
local reply = require "prequalify.tickets.reply"

local M = {}

local BASE = "/vedsdk/Flow/Tickets/"
M.PATHS = {
  enumerate = BASE .. "Enumerate", enumerate_approved = BASE .. "EnumerateApproved", load = BASE .. "Load",
  approve = BASE .. "Approve", reject = BASE .. "Reject", update = BASE .. "Update",
}

local encode = request.json.encode

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = field })
end

local function read(t, name, body)
  return t:call("POST", M.PATHS[name], encode(body),
    { what = "tickets", retry_unknown = true, classify = reply.flow("Flow/Tickets/" .. name, false) })
end

local LIST_OPTIONS = { approved = "boolean", product_code = "number", page_size = "number" }

--- Every pending ticket (or approved, with `opts.approved`), page by page.
-- @param t the transport
-- @tparam[opt] table opts `approved` (false), `product_code` (code-signing
--   key use, 1610743809; 0 = all), `page_size` (100)
-- @return array of tickets, or nil and an error
function M.list(t, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("client:tickets: expected an options table, got " .. type(opts), 0) end
  local ok, err = options.check(opts, LIST_OPTIONS, "tickets")
  if not ok then return nil, err end
  local code = opts.product_code or wire.CODE_SIGNING
  if math.type(code) ~= "integer" or code < 0 then
    return invalid("product_code", "product_code must be an integer >= 0 (0 = all products)")
  end
  local size = opts.page_size or 100
  if math.type(size) ~= "integer" or size < 1 then return invalid("page_size", "page_size must be an integer >= 1") end
  local name = opts.approved and "enumerate_approved" or "enumerate"
  local out, seen, page = {}, {}, 0
  while true do
    local res, rerr = read(t, name, { ProductCode = code, TicketPageSize = size, TicketPageNumber = page })
    if not res then return nil, rerr end
    local list = wire.value(res.body.Tickets)
    if type(list) ~= "table" then list = {} end
    local fresh = 0
    for _, raw in ipairs(list) do
      local ticket = wire.ticket(raw)
      -- A server that ignores TicketPageNumber sends the same page again.
      if ticket and not seen[ticket.id or raw] then
        seen[ticket.id or raw] = true
        out[#out + 1] = ticket
        fresh = fresh + 1
      end
    end
    if #list < size or fresh == 0 then return out end
    page = page + 1
  end
end

local function check_id(id)
  if type(id) ~= "string" or id == "" or id:find("%c") then
    return invalid("id", "a ticket id must be a non-empty string without control characters, got "
      .. (type(id) == "string" and "'" .. id .. "'" or type(id)))
  end
  return id
end

--- One ticket (`Flow/Tickets/Load`).
function M.get(t, id)
  local ok, err = check_id(id)
  if not ok then return nil, err end
  local res, rerr = read(t, "load", { TicketId = id })
  if not res then return nil, rerr end
  local ticket = wire.ticket(wire.value(res.body.Ticket))
  if not ticket then
    return nil, errors.new("protocol", "Flow/Tickets/Load reply has no Ticket object",
      { status = res.status, outcome = "rejected" })
  end
  return ticket
end

-- The ids field of a body: `TicketId` for one id, `TicketIds` for a list.
local function ids_field(ids, body)
  if type(ids) == "string" then
    local ok, err = check_id(ids)
    if not ok then return nil, err end
    body.TicketId = ids
    return { ids }
  end
  if type(ids) ~= "table" or #ids == 0 then
    return invalid("ids", "ids must be a ticket id or a non-empty array of ticket ids")
  end
  local list = {}
  for i, id in ipairs(ids) do
    local ok, err = check_id(id)
    if not ok then return nil, err end
    list[i] = id
  end
  body.TicketIds = list
  return list
end

-- A time option as ISO 8601 UTC: unix seconds or ISO text.
local function when(o, name, body, wire_name)
  local v = o[name]
  if v == nil then return true end
  if type(v) == "number" then
    body[wire_name] = wire.iso(v)
  elseif type(v) == "string" and wire.time(v) and not v:find("^/Date") then
    body[wire_name] = wire.iso(wire.time(v))
  else
    return invalid(name, name .. " must be unix seconds or an ISO 8601 time like 2026-12-31T18:00:00Z")
  end
  return true
end

local ACT_OPTIONS = {
  approve = { comment = "string", uses = "number", not_before = "number|string", expires = "number|string" },
  reject = { comment = "string", final = "boolean" },
}
ACT_OPTIONS.update = ACT_OPTIONS.approve

local function body_for(action, o)
  if type(o) ~= "table" then
    error("client:" .. action .. "_tickets: expected an options table {comment = ...}, got " .. type(o), 0)
  end
  local ok, err = options.check(o, ACT_OPTIONS[action], action .. "_tickets")
  if not ok then return nil, err end
  if not o.comment or not o.comment:find("%S") then
    return invalid("comment", "comment is required: the approver's reason, shown on the ticket")
  end
  if o.comment:find("[%z\1-\8\11\12\14-\31\127]") then
    return invalid("comment", "comment must not contain control characters")
  end
  local body = { Comment = o.comment }
  if action == "reject" then
    body.RejectionLevel = o.final and 2 or 1
    return body
  end
  if o.uses ~= nil then
    if math.type(o.uses) ~= "integer" or o.uses < 1 then
      return invalid("uses", "uses must be an integer >= 1 (leave it out for unlimited)")
    end
    body.useCount = o.uses
  end
  local wok, werr = when(o, "not_before", body, "notBefore")
  if not wok then return nil, werr end
  wok, werr = when(o, "expires", body, "Expires")
  if not wok then return nil, werr end
  return body
end

local WIRE_NAME = { approve = "Approve", reject = "Reject", update = "Update" }

--- Approve, reject or update tickets.
-- @param t the transport
-- @tparam string action "approve", "reject" or "update"
-- @param ids a ticket id or an array of them
-- @tparam table o see `client:approve_tickets` and the others
-- @return `{ok=true, status, result=0, result_name="Success", ids, attempts}`,
--   or nil and an error (`invalid_ids` lists the ids the server refused)
function M.act(t, action, ids, o)
  local body, err = body_for(action, o)
  if not body then return nil, err end
  local list, ierr = ids_field(ids, body)
  if not list then return nil, ierr end
  local name = WIRE_NAME[action]
  -- Never resent after an unknown outcome: a second approval may count twice.
  local res, cerr = t:call("POST", M.PATHS[action], encode(body),
    { what = "tickets_" .. action, retry_unknown = false, classify = reply.flow("Flow/Tickets/" .. name, true) })
  if not res then
    cerr.ids = list
    return nil, cerr
  end
  res.body = nil
  res.ids = list
  return res
end

return M
