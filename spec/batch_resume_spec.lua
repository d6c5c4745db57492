-- Resuming a batch with a journal, counted in what the emulator stored:
-- items the server refused for their credentials are sent again by a plain
-- resume, unknown items are settled one by one (`journal resolve`) or resent
-- by key, and an unfinished run always says how much it did not reach.
local prequalify = require "prequalify"
local helpers = require "helpers"

local function item(i)
  return { dn = helpers.DN_PROD, user = helpers.USER, comment = "resume item " .. i,
           data = (prequalify.digest.data("resume artifact " .. i)) }
end

local function items(n)
  local out = {}
  for i = 1, n do out[i] = item(i) end
  return out
end

describe("batch resume #emulator", function()
  local emu, token, dir

  local function client(opts)
    local o = { url = emu.url, token = token, ca_file = emu.ca, retries = { max = 3, base_delay = 0, max_delay = 5 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.token_file then o.token = nil end
    return assert(prequalify.client(o))
  end

  local function stored() return emu:prequalifications().count end

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:reset()
    token = emu:token{ username = "approver", scope = "codesign:approve" }
    dir = helpers.tmpdir()
  end)
  after_each(function() if dir then helpers.rm_rf(dir) end end)

  it("records a 401 as rejected, says to fix the token, and a plain resume sends those items", function()
    local tokfile, j = dir .. "/token", dir .. "/j.jsonl"
    helpers.write_file(tokfile, token, "600")
    local seen = 0
    local rep = assert(client{ token_file = tokfile }:batch(items(40), { journal = j, concurrency = 4,
      on_result = function()
        seen = seen + 1
        -- The token dies mid-batch; the file still holds it.
        if seen == 10 then assert.equal(200, (emu:http("GET", "/vedauth/revoke/token", nil,
          { Authorization = "Bearer " .. token }))) end
      end }))
    assert.equal("stopped", rep.status)
    assert.equal(4, rep:exit_code())
    assert.is_true(rep.counts.failed >= 1, "some items were refused")
    assert.equal(40, rep.counts.total + rep.not_reached)
    local refused = 0
    for e in rep:entries() do
      if e.outcome == "failed" then
        refused = refused + 1
        assert.equal(401, e.error.status)
        assert.matches("fix the token", e.reason, 1, true)
      end
    end
    assert.equal(rep.counts.failed, refused)
    assert.matches("fix the token", rep:summary(), 1, true)
    local before = stored()
    assert.is_true(before < 40)

    helpers.write_file(tokfile, (emu:token{ username = "approver", scope = "codesign:approve" }), "600")
    rep = assert(client{ token_file = tokfile }:batch(items(40), { journal = j }))
    assert.equal("complete", rep.status)
    assert.equal(0, rep:exit_code())
    assert.equal(40, rep.counts.approved)
    assert.equal(40, stored())
    assert.equal(40 - before, rep.requests)
  end)
end)
