-- The batch as a Run object (`prequalify.batch.start`): stepped to its end
-- it gives what client:batch gives; cancelled, it stops sending, lets what
-- is in flight finish and counts the items it did not reach. A host's event
-- loop drives a batch this way.
local prequalify = require "prequalify"
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local batch = require "prequalify.batch"
local client_mod = require "prequalify.client"

local PATH = "PreQualify/Create"

local function items(n, tag)
  local out = {}
  for i = 1, n do
    out[i] = { dn = helpers.DN_PROD, user = helpers.USER, comment = "run item " .. i,
               data = (prequalify.digest.data(tag .. " " .. i)) }
  end
  return out
end

describe("batch Run #emulator", function()
  local emu, token, transport

  hooks.emulator({ token = "codesign:approve" }, function(e, t) emu, token = e, t end)

  before_each(function()
    transport = assert(client_mod.transport{ url = emu.url, token = token, ca_file = emu.ca })
  end)

  after_each(function()
    transport:close()
  end)

  it("steps a batch to its end and reports as client:batch does", function()
    local run = assert(batch.start(transport, items(40, "stepped"), { concurrency = 4, signals = false }))
    local steps = 0
    assert.is_nil(run:report(), "no report before the end")
    while not run:step(0.2) do
      steps = steps + 1
      assert.is_true(steps < 10000, "the run ends")
    end
    assert.is_true(run:step(0.2), "a finished run stays finished")
    local rep = run:close()
    assert.equal(rep, run:report())
    assert.equal("complete", rep.status)
    assert.same({ 40, 40 }, { rep.counts.total, rep.counts.approved })
    assert.equal(40, rep.requests)
    assert.equal(40, #emu:prequalifications().items)
    assert.equal(rep, run:close(), "close is idempotent")
  end)

  it("stops sending when cancelled and counts the items it did not reach", function()
    emu:fault{ kind = "delay", delay = 0.05, count = 1000, path = PATH }
    local run = assert(batch.start(transport, items(30, "cancelled"), { concurrency = 2, signals = false }))
    assert.is_false(run:step(0))
    run:cancel()
    repeat until run:step(0.2)
    local rep = run:close()
    assert.equal("interrupted", rep.status)
    assert.equal("cancelled by the caller", rep.reason)
    local c = rep.counts
    assert.same({ 2, 2 }, { c.total, c.approved }, "what was in flight finished")
    assert.equal(28, rep.not_reached)
    assert.equal(2, #emu:prequalifications().items)
    assert.equal(2, emu:received(PATH))
  end)

  it("refuses bad options before it starts, as client:batch does", function()
    local run, err = batch.start(transport, items(1, "bad"), { concurrency = 0 })
    assert.is_nil(run)
    assert.same({ "invalid", "concurrency" }, { err.kind, err.field })
  end)
end)
