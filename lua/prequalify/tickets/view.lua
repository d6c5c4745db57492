--- The ticket view: what a policy sees of a Flow ticket. It is
-- request-shaped, so that one policy file decides both pre-qualifications
-- and tickets: `kind = "ticket"`, `id`, `dn`, `user`, `comment` (the
-- requester's justification, where the environment has one), `created`
-- (unix seconds), `identifier`, `required_approvals`, `approvals` (how many
-- so far) and `environment` (every key the server sent).
--
-- A ticket has no hash field of a pre-qualification (`data`, `hours`,
-- `single_use`, `digest_length`, `algorithm`): reading one raises a
-- `missing field` value that the policy evaluator turns into a skip whose
-- reason names the field, so a rule written for requests never crashes on
-- a ticket and never decides it by accident.
-- @module prequalify.tickets.view
local M = {}

--- Fields of a pre-qualification request that a ticket does not have.
M.REQUEST_ONLY = { data = true, hours = true, single_use = true, digest_length = true, algorithm = true,
                   digest = true }

local Missing = {}
Missing.__index = Missing
Missing.__name = "prequalify.missing_field"
function Missing:__tostring() return "a ticket has no " .. self.field .. " field" end

--- True if `e` (an error value) is a read of a field the ticket lacks.
function M.is_missing(e)
  return getmetatable(e) == Missing
end

local View = {}
View.__name = "prequalify.ticket_view"
function View.__index(_, k)
  if M.REQUEST_ONLY[k] then error(setmetatable({ field = k }, Missing), 2) end
  return nil
end
M.View = View

-- The justification, where the environment carries one under a likely name.
local COMMENT_KEYS = { "justification", "comment", "reason" }

local function comment_of(env)
  for k, v in pairs(env) do
    local folded = k:lower():gsub("[%s_]", "")
    for _, want in ipairs(COMMENT_KEYS) do
      if folded == want and type(v) == "string" then return v end
    end
  end
  return nil
end

--- The view of a ticket table (see `prequalify.tickets.wire`).
function M.of(ticket)
  local env = {}
  for k, v in pairs(ticket.environment or {}) do env[k] = v end
  return setmetatable({
    kind = "ticket", id = ticket.id, dn = ticket.dn, user = ticket.user, comment = comment_of(env),
    created = ticket.created, identifier = ticket.identifier, required_approvals = ticket.required_approvals,
    approvals = ticket.approvals and #ticket.approvals or 0, environment = env,
  }, View)
end

--- True if `v` is a ticket view (made here or a plain table with kind "ticket").
function M.is(v)
  return type(v) == "table" and rawget(v, "kind") == "ticket"
end

return M
