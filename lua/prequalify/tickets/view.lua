--- The ticket view: what a policy sees of a Flow ticket. It is
-- request-shaped, so that one policy file decides both pre-qualifications
-- and tickets: `kind = "ticket"`, `id`, `dn`, `user`, `comment` (the
-- requester's justification, where the environment has one), `created`
-- (unix seconds), `identifier`, `required_approvals`, `approvals` (how many
-- so far) and `environment` (every key the server sent).
--
-- A ticket has no hash field of a pre-qualification (`data`, `hours`,
-- `single_use`, `digest_length`, `algorithm`), and a given ticket may lack
-- `dn`, `user`, `comment` or `created`: reading such a field raises a
-- `missing field` value that the policy evaluator turns into a skip whose
-- reason names the field, so a rule written for requests never crashes on
-- a ticket and never decides it by accident. A policy may adjust `uses`.
-- @module prequalify.tickets.view
local wire = require "prequalify.tickets.wire"

local M = {}

--- The `kind` of a ticket view; a request has no `kind`.
M.KIND = "ticket"
local KIND = M.KIND

--- Fields of a pre-qualification request that a ticket does not have.
M.REQUEST_ONLY = { data = true, hours = true, single_use = true, digest_length = true, algorithm = true,
                   digest = true }

--- Fields of the view that a ticket may lack (no such environment key).
M.OPTIONAL = { dn = true, user = true, comment = true, created = true, identifier = true,
               required_approvals = true, uses = true }

-- Fields that describe the hash of a pre-qualification.
local DIGEST = { data = true, digest = true, digest_length = true, algorithm = true }

local Missing = {}
Missing.__index = Missing
Missing.__name = "prequalify.missing_field"
function Missing:__tostring()
  if DIGEST[self.field] then return "a ticket has no digest (the rule reads " .. self.field .. ")" end
  if M.REQUEST_ONLY[self.field] then return "a ticket has no " .. self.field .. " field" end
  return "this ticket has no " .. self.field
end

--- True if `e` (an error value) is a read of a field the ticket lacks.
function M.is_missing(e)
  return getmetatable(e) == Missing
end

local View = {}
View.__name = "prequalify.ticket_view"
function View.__index(_, k)
  if M.REQUEST_ONLY[k] or M.OPTIONAL[k] then error(setmetatable({ field = k }, Missing), 2) end
  return nil
end
M.View = View

-- The justification, where the environment carries one under a likely name.
local COMMENT_KEYS = { "justification", "comment", "reason" }

--- The view of a ticket table (see `prequalify.tickets.wire`).
function M.of(ticket)
  local env = {}
  for k, v in pairs(ticket.environment or {}) do env[k] = v end
  return setmetatable({
    kind = KIND, id = ticket.id, dn = ticket.dn, user = ticket.user, comment = wire.find(env, COMMENT_KEYS),
    created = ticket.created, identifier = ticket.identifier, required_approvals = ticket.required_approvals,
    approvals = ticket.approvals and #ticket.approvals or 0, environment = env,
  }, View)
end

--- True if `v` is a ticket view (made here or a plain table with kind "ticket").
function M.is(v)
  return type(v) == "table" and rawget(v, "kind") == KIND
end

--- A view from a plain table with `kind = "ticket"` (a copy; the
-- environment is copied too), or nil and why it is not one.
function M.from(t)
  if type(rawget(t, "id")) ~= "string" or rawget(t, "id") == "" then
    return nil, "a ticket view needs an id (a non-empty string)"
  end
  local v = {}
  for k, x in pairs(t) do v[k] = x end
  local env = {}
  for k, x in pairs(type(v.environment) == "table" and v.environment or {}) do env[k] = x end
  v.environment, v.approvals = env, v.approvals or 0
  return setmetatable(v, View)
end

--- A copy of a view with `changes` applied: a policy may adjust only
-- `uses` (how many signings an approval allows), or nil and why not.
function M.adjusted(v, changes)
  local out = {}
  for k, x in pairs(v) do out[k] = x end
  for k, x in pairs(changes or {}) do
    if k ~= "uses" then return nil, "a ticket's approval can be adjusted only in uses, not " .. tostring(k) end
    if math.type(x) ~= "integer" or x < 1 then return nil, "uses must be an integer >= 1" end
    out.uses = x
  end
  return setmetatable(out, View)
end

return M
