-- No require cycles between the modules of lua/prequalify: a module that
-- needs another one below it may require it, never the other way round, so
-- that every part can be loaded, read and tested on its own. Two checks:
-- every module is loaded in a fresh process through a `require` that keeps
-- the stack of modules being loaded (a cycle at load time), and the graph of
-- every `require "prequalify..."` written anywhere in a file, also inside
-- functions, has no cycle (a lazy require is still a dependency).
local helpers = require "helpers"

local LUA_DIR = helpers.ROOT .. "/lua"

-- Module names of every Lua file under lua/prequalify.
local function modules()
  local list = {}
  local find = io.popen("cd " .. helpers.shell_quote(LUA_DIR) .. " && find prequalify -name '*.lua' | sort")
  for path in find:lines() do
    local name = path:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    list[#list + 1] = { name = name, path = LUA_DIR .. "/" .. path }
  end
  find:close()
  return list
end

-- The prequalify modules a file names in a require, anywhere in its code
-- (comments left out).
local function requires_of(path)
  local text = assert(helpers.read_file(path)):gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")
  local found = {}
  for name in text:gmatch("require%s*%(?%s*[\"'](prequalify[%w_.]*)[\"']") do found[name] = true end
  return found
end

-- A cycle in the graph, as a list of names, or nil.
local function find_cycle(graph)
  local state, stack = {}, {}
  local function visit(name)
    state[name] = "open"
    stack[#stack + 1] = name
    for dep in pairs(graph[name] or {}) do
      if state[dep] == "open" then
        local cycle, on = {}, false
        for _, n in ipairs(stack) do
          if n == dep then on = true end
          if on then cycle[#cycle + 1] = n end
        end
        cycle[#cycle + 1] = dep
        return cycle
      elseif state[dep] == nil and graph[dep] then
        local c = visit(dep)
        if c then return c end
      end
    end
    stack[#stack] = nil
    state[name] = "done"
  end
  local names = {}
  for name in pairs(graph) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if not state[name] then
      local c = visit(name)
      if c then return c end
    end
  end
end

-- Loads every module in a fresh process; prints "CYCLE a -> b -> a" lines.
local LOADER = [[
local names = {...}
local real, stack, on_stack = require, {}, {}
function require(name) -- luacheck: ignore 121
  if on_stack[name] then
    local from = {}
    for i = on_stack[name], #stack do from[#from + 1] = stack[i] end
    print("CYCLE " .. table.concat(from, " -> ") .. " -> " .. name)
  end
  if package.loaded[name] then return package.loaded[name] end
  stack[#stack + 1] = name
  on_stack[name] = #stack
  local ok, m = pcall(real, name)
  stack[#stack] = nil
  on_stack[name] = nil
  if not ok then error(m, 0) end
  return m
end
for _, name in ipairs(names) do
  local ok, err = pcall(require, name)
  if not ok then print("FAILED " .. name .. ": " .. tostring(err)) end
end
print("DONE")
]]

describe("module structure", function()
  it("has no require cycle among the modules, counting requires inside functions", function()
    local graph = {}
    for _, m in ipairs(modules()) do graph[m.name] = requires_of(m.path) end
    assert.is_not_nil(graph["prequalify.client"], "the module list is empty")
    local cycle = find_cycle(graph)
    assert.is_nil(cycle, cycle and ("require cycle: " .. table.concat(cycle, " -> ")))
  end)

  it("loads every module in a fresh Lua, with no module required while it is being loaded", function()
    local names = {}
    for _, m in ipairs(modules()) do names[#names + 1] = helpers.shell_quote(m.name) end
    local script = os.tmpname()
    helpers.write_file(script, LOADER)
    local cmd = string.format("cd %s && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' "
      .. "lua5.4 %s %s 2>&1", helpers.shell_quote(helpers.ROOT), helpers.shell_quote(script),
      table.concat(names, " "))
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("DONE", out, 1, true)
    assert.not_matches("CYCLE", out, 1, true)
    -- Optional adapters (luv, cqueues) may be missing; nothing else may fail.
    for line in out:gmatch("FAILED [^\n]*") do
      assert.matches("module '[%w_.]+' not found", line, nil, false, line)
      assert.not_matches("module 'prequalify", line, nil, true, line)
    end
  end)
end)
