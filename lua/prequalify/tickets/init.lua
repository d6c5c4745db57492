--- Flow tickets and the signing archive over a transport: what the client's
-- `tickets`, `ticket`, `approve_tickets`, `reject_tickets`,
-- `update_tickets` and `archive` methods call. See docs/TICKETS.md.
-- @module prequalify.tickets
local calls = require "prequalify.tickets.calls"
local archive = require "prequalify.tickets.archive"

local M = {}

M.list = calls.list
M.get = calls.get
M.archive = archive.fetch

function M.approve(t, ids, o) return calls.act(t, "approve", ids, o) end
function M.reject(t, ids, o) return calls.act(t, "reject", ids, o) end
function M.update(t, ids, o) return calls.act(t, "update", ids, o) end

return M
