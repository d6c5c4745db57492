-- The API reference: ldoc builds it from the doc comments with no warning,
-- and every public function of the API (DESIGN.md, "Public Lua API", and
-- the modules it names) documents each parameter, what it returns and how
-- it fails.
local helpers = require "helpers"
local cli = require "fixtures.cli"

-- file -> functions, as written after `function `.
local PUBLIC = {
  ["request.lua"] = { "M.new" },
  ["client.lua"] = { "M.new", "Client:prequalify", "Client:batch", "Client:close", "Client:token_info",
                     "Client:revoke", "Client:add_pre_approval", "Client:browse_identities", "Client:resolve_user" },
  ["batch.lua"] = { "M.run" },
  ["report.lua"] = { "Report:entries", "Report:write_json", "Report:summary", "Report:exit_code", "Report:close" },
  ["policy.lua"] = { "M.load" },
  ["policy/evaluate.lua"] = { "M.evaluate", "M.plan" },
  ["digest.lua"] = { "M.file", "M.data", "M.dig_file" },
  ["manifest.lua"] = { "M.read", "M.files", "M.glob" },
}

-- The doc comment block right above `function <name>(...)`, and its arguments.
local function doc_of(text, name)
  local lines, at = {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
    if not at and line:find("^function " .. name:gsub("[%.:]", "%%%0") .. "%(") then at = #lines end
  end
  if not at then return nil end
  local args = lines[at]:match("%((.-)%)")
  local block = {}
  for i = at - 1, 1, -1 do
    if not lines[i]:find("^%-%-") then break end
    table.insert(block, 1, lines[i])
  end
  return table.concat(block, "\n"), args
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

  for file, names in pairs(PUBLIC) do
    for _, name in ipairs(names) do
      it("documents the parameters, returns and errors of " .. name .. " (" .. file .. ")", function()
        local text = assert(helpers.read_file(cli.ROOT .. "/lua/prequalify/" .. file))
        local block, args = doc_of(text, name)
        assert.truthy(block, name .. " not found in " .. file)
        for arg in args:gmatch("[%w_]+") do
          assert.truthy(block:find("@t?param%b[]%s+[%w|]*%s*" .. arg .. "%f[^%w_]")
              or block:find("@t?param%s+[%w|]*%s*" .. arg .. "%f[^%w_]"),
            name .. ": parameter " .. arg .. " is not documented")
        end
        assert.truthy(block:find("@t?return"), name .. ": no @return")
        assert.truthy(block:find("@raise") or block:find("error") or block:find("never fails"),
          name .. ": says nothing of errors")
      end)
    end
  end
end)
