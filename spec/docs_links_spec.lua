-- Every document in the repository stands on its own: its relative links
-- reach files inside the repository, and none sends the reader to notes
-- outside it.
local helpers = require "helpers"
local cli = require "fixtures.cli"

local function markdown_files()
  local p = io.popen("cd " .. cli.q(cli.ROOT) .. " && git ls-files '*.md'")
  local list = {}
  for path in p:lines() do list[#list + 1] = path end
  p:close()
  return list
end

describe("the documents #nosan", function()
  local files = markdown_files()

  it("are found", function() assert.is_true(#files >= 10, #files .. " files") end)

  for _, file in ipairs(files) do
    it(file .. " links only to files inside the repository and to no outside notes", function()
      local text = assert(helpers.read_file(cli.ROOT .. "/" .. file))
      local dir = file:match("^(.*)/") or "."
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:find("^%a[%w+.-]*:") and not target:find("^#") then
          local path = target:gsub("#.*$", "")
          local full = cli.ROOT .. "/" .. (dir == "." and "" or dir .. "/") .. path
          local f = io.open(full, "rb")
          assert.truthy(f, file .. " links to " .. target .. ", which does not exist")
          f:close()
          local resolved = io.popen("realpath -m " .. cli.q(full)):read("l")
          assert.truthy(resolved:sub(1, #cli.ROOT + 1) == cli.ROOT .. "/", file .. ": " .. target .. " is outside")
        end
      end
      assert.falsy(text:find("../shared/", 1, true), file .. " points to ../shared/")
      assert.falsy(text:find("steering repo", 1, true), file .. " points to the steering repo")
    end)
  end
end)
