--- The signing archive (`Codesign/RetrieveArchiveEntries`, scope
-- `codesign:manage`): what was actually signed, page by page, as plain
-- entry tables. Whether `Artifact` holds the signed data hash is
-- unconfirmed: the entry keeps it as `artifact` and says nothing more.
-- @module prequalify.tickets.archive
local errors = require "prequalify.errors"
local options = require "prequalify.options"
local request = require "prequalify.request"
local wire = require "prequalify.tickets.wire"
local reply = require "prequalify.tickets.reply"

local M = {}

M.PATH = "/vedsdk/Codesign/RetrieveArchiveEntries"

local FILTER = { environments = "table|string", since = "number|string", before = "number|string",
                 user = "string", page_size = "number" }

local function invalid(field, message)
  return nil, errors.new("invalid", message, { field = field })
end

-- The wire ArchiveFilter from the Lua filter.
local function wire_filter(f)
  local out = {}
  if f.environments ~= nil then
    local dns = type(f.environments) == "string" and { f.environments } or f.environments
    if #dns == 0 then return invalid("environments", "environments must be a DN or a non-empty array of DNs") end
    for i, dn in ipairs(dns) do
      if type(dn) ~= "string" or dn == "" then
        return invalid("environments", "environments[" .. i .. "] must be an environment DN (a string)")
      end
    end
    out.EnvironmentDNs = dns
  end
  for name, wire_name in pairs{ since = "TimestampAfter", before = "TimestampBefore" } do
    local v = f[name]
    if v ~= nil then
      local t = type(v) == "number" and v or wire.time(v)
      if not t then return invalid(name, name .. " must be unix seconds or an ISO 8601 time") end
      out[wire_name] = wire.iso(t)
    end
  end
  if f.user then out.AuthenticatedUser = f.user end
  return out
end

local FIELDS = {
  id = "ArchiveEntryId", event_type_id = "EventTypeId", event_type = "EventType",
  user = "AuthenticatedUser", user_name = "AuthenticatedUserName", environment = "Environment",
  project = "Project", flow = "Flow", artifact = "Artifact", application_hash = "ApplicationHash",
  executable = "Executable", command = "Command", machine = "Machine", ip_address = "IPAddress",
  mechanism = "Mechanism", failure = "IsSigningFailure",
}

--- An archive entry as a plain table: the fields above in snake_case,
-- `time` (unix seconds) and `raw` (the wire object).
function M.entry(raw)
  local e = { raw = raw, time = wire.time(raw.Timestamp) }
  for name, w in pairs(FIELDS) do e[name] = wire.int(raw[w]) end
  return e
end

--- Every archive entry matching `filter`, following the pages.
-- @param t the transport
-- @tparam[opt] table filter `environments` (a DN or an array of DNs),
--   `since` and `before` (unix seconds or ISO 8601), `user`, `page_size` (100)
-- @return array of entries, or nil and an error
function M.fetch(t, filter)
  filter = filter or {}
  if type(filter) ~= "table" then error("client:archive: expected a filter table, got " .. type(filter), 0) end
  local ok, err = options.check(filter, FILTER, "archive filter")
  if not ok then return nil, err end
  local size = filter.page_size or 100
  if math.type(size) ~= "integer" or size < 1 then return invalid("page_size", "page_size must be an integer >= 1") end
  local wf, ferr = wire_filter(filter)
  if not wf then return nil, ferr end
  local out, seen, page = {}, {}, 0
  while true do
    local body = request.json.encode{ ArchiveFilter = wf, PageSize = size, Page = page }
    local res, cerr = t:call("POST", M.PATH, body, { what = "archive", retry_unknown = true, classify = reply.archive })
    if not res then return nil, cerr end
    local doc = res.body
    local fresh = 0
    for _, raw in ipairs(doc.ArchiveResults) do
      if type(raw) == "table" then
        local e = M.entry(raw)
        local key = e.id or #out + 1
        if not seen[key] then
          seen[key] = true
          out[#out + 1] = e
          fresh = fresh + 1
        end
      end
    end
    local total = wire.int(doc.TotalCount)
    if fresh == 0 or #doc.ArchiveResults < size or (math.type(total) == "integer" and #out >= total) then
      return out
    end
    -- Continue after the page the server says it sent (0- or 1-based).
    local number = wire.int(doc.PageNumber)
    page = (math.type(number) == "integer" and number or page) + 1
  end
end

return M
