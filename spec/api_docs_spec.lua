-- The API reference: ldoc builds it from the doc comments with no warning,
-- and every public function of the API (DESIGN.md, "Public Lua API", and
-- the modules it names) documents each parameter, what it returns and how
-- it fails.
local helpers = require "helpers"
local cli = require "fixtures.cli"

-- The public functions, found where they are defined (debug.getinfo), so
-- that the check follows a function that moves to another file.
local function public()
  local prequalify = require "prequalify"
  local Client = require("prequalify.client").Client
  local Report = getmetatable(require("prequalify.report").new{}).__index
  local policy = require "prequalify.policy"
  local list = {
    ["prequalify.request"] = prequalify.request, ["prequalify.client"] = require("prequalify.client").new,
    ["client:prequalify"] = Client.prequalify, ["client:batch"] = Client.batch, ["client:close"] = Client.close,
    ["client:token_info"] = Client.token_info, ["client:revoke"] = Client.revoke,
    ["client:add_pre_approval"] = Client.add_pre_approval, ["client:browse_identities"] = Client.browse_identities,
    ["client:resolve_user"] = Client.resolve_user,
    ["client:start_batch"] = Client.start_batch, ["client:start"] = Client.start,
    ["client:tickets"] = Client.tickets, ["client:ticket"] = Client.ticket,
    ["client:approve_tickets"] = Client.approve_tickets, ["client:reject_tickets"] = Client.reject_tickets,
    ["client:update_tickets"] = Client.update_tickets, ["client:archive"] = Client.archive,
    ["prequalify.batch.run"] = require("prequalify.batch").run,
    ["report:entries"] = Report.entries, ["report:write_json"] = Report.write_json,
    ["report:summary"] = Report.summary, ["report:exit_code"] = Report.exit_code, ["report:close"] = Report.close,
    ["policy.load"] = policy.load, ["policy.evaluate"] = policy.evaluate, ["prequalify.plan"] = policy.plan,
    ["digest.file"] = prequalify.digest.file, ["digest.data"] = prequalify.digest.data,
    ["digest.dig_file"] = prequalify.digest.dig_file, ["manifest.read"] = prequalify.manifest.read,
    ["manifest.files"] = prequalify.manifest.files, ["manifest.glob"] = prequalify.manifest.glob,
  }
  return list
end

-- The doc comment block right above where `fn` is defined, and the
-- function's parameter names (without self).
local function doc_of(fn)
  local info = debug.getinfo(fn, "Su")
  local text = assert(helpers.read_file(info.source:sub(2)))
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local block = {}
  for i = info.linedefined - 1, 1, -1 do
    if not lines[i]:find("^%-%-") then break end
    table.insert(block, 1, lines[i])
  end
  local args = {}
  for i = 1, info.nparams do
    local name = debug.getlocal(fn, i)
    if name ~= "self" then args[#args + 1] = name end
  end
  return table.concat(block, "\n"), args, info.short_src .. ":" .. info.linedefined
end

describe("the API reference #nosan", function()
  it("builds with ldoc and no warning", function()
    local out = helpers.tmpdir()
    local r = cli.exec({ "ldoc", "-d", out, "." }, { cwd = cli.ROOT })
    assert.equal(0, r.code, r.err)
    local extra = {}
    for line in (r.out .. r.err):gmatch("[^\n]+") do
      if not line:find("^reading configuration") and not line:find("^output written to") then
        extra[#extra + 1] = line
      end
    end
    assert.same({}, extra)
    assert.truthy(helpers.read_file(out .. "/topics/OPTIONS.md.html"), "the options reference is a topic")
    helpers.rm_rf(out)
  end)

  for label, fn in pairs(public()) do
    it("documents the parameters, returns and errors of " .. label, function()
      assert.equal("function", type(fn), label)
      local block, args, where = doc_of(fn)
      for _, arg in ipairs(args) do
        assert.truthy(block:find("@t?param%b[]%s+[%w|]*%s*" .. arg .. "%f[^%w_]")
            or block:find("@t?param%s+[%w|]*%s*" .. arg .. "%f[^%w_]"),
          label .. " (" .. where .. "): parameter " .. arg .. " is not documented")
      end
      assert.truthy(block:find("@t?return"), label .. " (" .. where .. "): no @return")
      assert.truthy(block:find("@raise") or block:find("error") or block:find("never fails"),
        label .. " (" .. where .. "): says nothing of errors")
    end)
  end
end)
