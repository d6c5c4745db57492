-- Flow tickets through the Lua API, against the emulator: listing over
-- pages, the ticket table from either wire shape, approve / reject / update
-- with single ids and lists, Flow result codes and InvalidTicketIds.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local flow = require "fixtures.flow"

describe("Flow tickets #emulator", function()
  local emu, token, client

  hooks.emulator({ token = true }, function(e, t) emu, token = e, t end)
  before_each(function()
    client = assert(prequalify.client{ url = emu.url, ca_file = emu.ca, token = token })
  end)
  after_each(function() client:close() end)

  local function other_client(username)
    return assert(prequalify.client{ url = emu.url, ca_file = emu.ca, token = emu:token{ username = username } })
  end

  describe("client:tickets", function()
    it("follows the pages until the last one", function()
      local ids = flow.open(emu, 7)
      local list = assert(client:tickets{ page_size = 3 })
      local got = {}
      for i, t in ipairs(list) do got[i] = t.id end
      assert.same(ids, got)
      assert.equal(3, emu:received("Flow/Tickets/Enumerate"))
    end)

    it("lists approved tickets with approved = true", function()
      local ids = flow.open(emu, 2)
      assert(client:approve_tickets(ids[2], { comment = "ok" }))
      local approved = assert(client:tickets{ approved = true })
      assert.equal(1, #approved)
      assert.equal(ids[2], approved[1].id)
      assert.equal(1, #assert(client:tickets()))
    end)

    it("refuses an unknown option, naming it", function()
      local list, err = client:tickets{ pagesize = 3 }
      assert.is_nil(list)
      assert.same({ "invalid", "pagesize" }, { err.kind, err.field })
      assert.matches("unknown tickets option 'pagesize'", err.message)
    end)
  end)

  describe("a ticket", function()
    for _, shape in ipairs{ "contract", "docs" } do
      it("reads the same from the " .. shape .. " wire shape", function()
        flow.config(emu, { ticket_wire_shape = shape })
        local before = os.time()
        local id = flow.open(emu, 1)[1]
        local t = assert(client:ticket(id))
        assert.equal(id, t.id)
        assert.equal(flow.DN_RELEASE, t.dn)
        assert.equal(flow.USER, t.user)
        assert.same({ ObjectDN = flow.DN_RELEASE, User = flow.USER, Machine = "build-1",
                      Executable = "signtool.exe", Hash = flow.hash(1) }, t.environment)
        assert.same({ "local:{9f3e6a21-0c4b-4d7e-8a15-2b6c9d0e4f78}" }, t.approvers)
        assert.same({ 1, 1610743809 }, { t.required_approvals, t.product_code })
        assert.same({}, t.approvals)
        assert.is_true(t.created >= before - 1 and t.created <= os.time() + 1)
        assert.is_nil(t.remaining_uses)
        assert.matches("^%x+$", t.identifier)
        assert.equal(id, t.raw.Id)
      end)
    end

    it("of an unknown id is TicketNotFound", function()
      local t, err = client:ticket("{no-such-ticket}")
      assert.is_nil(t)
      assert.same({ "server", "rejected", 2, "TicketNotFound" }, { err.kind, err.outcome, err.result, err.result_name })
    end)
  end)

  describe("approve, reject, update", function()
    it("approves one id with a use count; the signing then goes through once", function()
      local id = flow.open(emu, 1)[1]
      local res = assert(client:approve_tickets(id, { comment = "release 4.2", uses = 1,
                                                      not_before = os.time() - 60, expires = os.time() + 3600 }))
      assert.same({ true, 0, "Success", { id } }, { res.ok, res.result, res.result_name, res.ids })
      local t = assert(client:ticket(id))
      assert.same({ 1, "release 4.2" }, { t.remaining_uses, t.approvals[1].comment })
      assert.is_true(flow.sign(emu, { machine = "build-1" }).allowed)
      assert.is_false(flow.sign(emu, { machine = "build-1" }).allowed)
    end)

    it("approves a list of ids in one call", function()
      local ids = flow.open(emu, 3)
      assert(client:approve_tickets(ids, { comment = "batch" }))
      assert.equal(1, emu:received("Flow/Tickets/Approve"))
      local state = flow.state(emu)
      for _, id in ipairs(ids) do assert.equal("approved", state[id].status_name) end
    end)

    it("rejects one id, final, and a list, for retry", function()
      local ids = flow.open(emu, 3)
      assert(client:reject_tickets(ids[1], { comment = "unknown binary", final = true }))
      assert(client:reject_tickets({ ids[2], ids[3] }, { comment = "rebuild" }))
      local state = flow.state(emu)
      assert.same({ "rejected", 2, "unknown binary" },
        { state[ids[1]].status_name, state[ids[1]].rejection_status, state[ids[1]].rejection_comment })
      assert.same({ "rejected", 1 }, { state[ids[3]].status_name, state[ids[3]].rejection_status })
    end)

    it("updates an approved ticket's uses", function()
      local id = flow.open(emu, 1)[1]
      assert(client:approve_tickets(id, { comment = "ok" }))
      assert(client:update_tickets({ id }, { comment = "limit it", uses = 3 }))
      assert.equal(3, assert(client:ticket(id)).remaining_uses)
    end)

    it("reports InvalidTicketIds as err.invalid_ids with the Flow result code named", function()
      local id = flow.open(emu, 1)[1]
      local res, err = client:reject_tickets({ id, "{gone}" }, { comment = "no" })
      assert.is_nil(res)
      assert.same({ "server", "rejected", 5, "FailedToRejectTickets", { "{gone}" } },
        { err.kind, err.outcome, err.result, err.result_name, err.invalid_ids })
      assert.matches("{gone}", tostring(err), 1, true)
      assert.equal("pending", flow.state(emu)[id].status_name)
    end)

    it("says when the server acted on only some of the ids", function()
      flow.config(emu, { ticket_invalid_ids = "partial" })
      local id = flow.open(emu, 1)[1]
      local res, err = client:approve_tickets({ id, "{gone}" }, { comment = "ok" })
      assert.is_nil(res)
      assert.same({ "server", true, { "{gone}" } }, { err.kind, err.partial, err.invalid_ids })
      assert.equal("approved", flow.state(emu)[id].status_name)
    end)

    it("updating a pending ticket is FailedToUpdateTickets", function()
      local id = flow.open(emu, 1)[1]
      local _, err = client:update_tickets(id, { comment = "x", uses = 2 })
      assert.same({ 11, "FailedToUpdateTickets", { id } }, { err.result, err.result_name, err.invalid_ids })
    end)

    it("a caller who is not an approver of the ticket gets InsufficientPermission", function()
      local id = flow.open(emu, 1)[1]
      local other = other_client("staging-approver")
      local _, err = other:approve_tickets(id, { comment = "x" })
      other:close()
      assert.same({ "server", 1, "InsufficientPermission" }, { err.kind, err.result, err.result_name })
    end)

    it("keeps an unknown Flow result code by number", function()
      local id = flow.open(emu, 1)[1]
      emu:fault{ kind = "status", status = 200, path = "Flow/Tickets/Approve",
                 body = '{"Result":42,"Message":"something new"}' }
      local _, err = client:approve_tickets(id, { comment = "x" })
      assert.same({ "server", 42, "Unknown(42)" }, { err.kind, err.result, err.result_name })
      assert.matches("something new", err.message, 1, true)
    end)

    it("two required approvals: the ticket stays pending until the second", function()
      local id = flow.open(emu, 1, { dn = flow.DN_DUAL })[1]
      assert(client:approve_tickets(id, { comment = "first" }))
      assert.equal(1, #assert(client:tickets()))
      local other = other_client("staging-approver")
      assert(other:approve_tickets(id, { comment = "second" }))
      other:close()
      local t = assert(client:ticket(id))
      assert.equal(2, #t.approvals)
      assert.equal(0, #assert(client:tickets()))
    end)

    it("refuses a missing comment and bad options before sending anything", function()
      local cases = {
        { { comment = "  " }, "comment", "comment is required" },
        { { comment = "x", uses = 0 }, "uses", "uses must be an integer >= 1" },
        { { comment = "x", expires = "tomorrow" }, "expires", "expires must be unix seconds or an ISO 8601 time" },
        { { comment = "x", count = 1 }, "count", "unknown approve_tickets option 'count'" },
      }
      for _, c in ipairs(cases) do
        local res, err = client:approve_tickets("{id}", c[1])
        assert.is_nil(res)
        assert.same({ "invalid", "not_sent", c[2] }, { err.kind, err.outcome, err.field })
        assert.matches(c[3], err.message, 1, true)
      end
      local _, err = client:approve_tickets({}, { comment = "x" })
      assert.same({ "invalid", "ids" }, { err.kind, err.field })
      assert.equal(0, emu:received("Flow/Tickets"))
    end)
  end)
end)

describe("the signing archive #emulator", function()
  local emu, token, client

  hooks.emulator({ token = flow.MANAGE }, function(e, t) emu, token = e, t end)
  before_each(function()
    client = assert(prequalify.client{ url = emu.url, ca_file = emu.ca, token = token })
  end)
  after_each(function() client:close() end)

  it("returns every entry, following the pages, and filters by environment and user", function()
    for i = 1, 5 do flow.sign(emu, { data = flow.hash(i) }) end
    flow.sign(emu, { dn = helpers.DN_PROD, user = "local:build-bot" })
    local all = assert(client:archive{ page_size = 2 })
    assert.equal(6, #all)
    assert.equal(3, emu:received("RetrieveArchiveEntries"))
    assert.same({ flow.DN_RELEASE, flow.hash(1), true }, { all[1].environment, all[1].artifact, all[1].failure })
    assert.is_number(all[1].time)
    local prod = assert(client:archive{ environments = { helpers.DN_PROD } })
    assert.equal(1, #prod)
    assert.equal("local:build-bot", prod[1].user_name)
    assert.equal(1, #assert(client:archive{ user = "local:build-bot" }))
  end)

  it("needs the codesign:manage scope", function()
    local c = assert(prequalify.client{ url = emu.url, ca_file = emu.ca, token = emu:token{ username = "approver" } })
    local entries, err = c:archive{}
    c:close()
    assert.is_nil(entries)
    assert.same({ "forbidden", "codesign:manage" }, { err.kind, err.scope })
  end)
end)
