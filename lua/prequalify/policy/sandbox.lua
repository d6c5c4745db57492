--- Loading a policy file in a restricted environment.
--
-- A policy file is a Lua chunk that returns a policy. It sees `policy` (also
-- through `require "prequalify.policy"`), the `string`, `table`, `math`,
-- `utf8` and `coroutine` libraries, `os.time`, `os.date`, `os.clock` and
-- `os.difftime`, and the safe basic functions. It does not get `io`,
-- `os.execute`/`exit`/`remove`/`rename`/`getenv`/`tmpname`, `debug`,
-- `package`, `dofile`, `loadfile`, `collectgarbage`, `print`, `string.dump`,
-- the string metatable, or `require` of any other module; `load` takes text
-- chunks only. Reaching for a missing capability raises an error that names
-- it. A string's methods are the host's (the string metatable is shared),
-- so `("").dump` is reachable: it makes bytecode that `load` refuses. The
-- file's rules run under an instruction budget (`prequalify.policy.budget`).
-- docs/POLICIES.md lists the environment exactly.
-- @module prequalify.policy.sandbox
local errors = require "prequalify.errors"
local D = require "prequalify.policy.decision"
local budget = require "prequalify.policy.budget"

local M = {}

local BASICS = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
  "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "xpcall",
}

local FORBIDDEN_GLOBALS = {
  io = "reading or writing files", debug = "the debug library", package = "loading native code",
  dofile = "running other files", loadfile = "running other files",
  collectgarbage = "the garbage collector", print = "printing",
}

local function copy(t, except)
  local out = {}
  for k, v in pairs(t) do
    if not (except and except[k]) then out[k] = v end
  end
  return out
end

local function refuse(what, why)
  error(string.format("%s is not available in a policy file%s", what, why and " (" .. why .. ")" or ""), 3)
end

-- A library table whose missing fields raise instead of being nil.
local function guarded(lib, t)
  return setmetatable(t, {
    __index = function(_, k) refuse(lib .. "." .. tostring(k)) end,
    __metatable = false,
  })
end

-- The coroutine library, whose threads run under the budget of the rule
-- that resumes them.
local function coroutines()
  local co = copy(coroutine)
  local resume, create = coroutine.resume, coroutine.create
  co.resume = function(thread, ...)
    if type(thread) == "thread" then budget.inherit(thread) end
    return resume(thread, ...)
  end
  co.wrap = function(fn)
    local thread = create(fn)
    return function(...)
      budget.inherit(thread)
      local res = table.pack(resume(thread, ...))
      if not res[1] then error(res[2], 0) end
      return table.unpack(res, 2, res.n)
    end
  end
  return co
end

local function environment(api, dir)
  local env = {}
  for _, k in ipairs(BASICS) do env[k] = _G[k] end
  env._VERSION = _VERSION
  env.string = guarded("string", copy(string, { dump = true }))
  env.table = copy(table)
  env.math = copy(math)
  env.utf8 = copy(utf8)
  env.coroutine = coroutines()
  env.os = guarded("os", { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime })

  -- The policy library, as a copy (a policy file cannot change it for
  -- others) that reads hash list files relative to the policy file.
  local p = copy(api, { load = true })
  p.deny_hashes = function(src) return api.deny_hashes(src, dir) end
  p.allow_hashes = function(src) return api.allow_hashes(src, dir) end
  env.policy = p

  env.require = function(name)
    if name == "prequalify.policy" then return p end
    refuse("require " .. string.format("%q", tostring(name)), "only require \"prequalify.policy\"")
  end
  env.getmetatable = function(v)
    if type(v) ~= "table" then return nil end
    return getmetatable(v)
  end
  env.load = function(chunk, name, mode, e)
    if mode ~= nil and mode ~= "t" then
      refuse(string.format("load with mode %q", tostring(mode)), "text chunks only")
    end
    if e == nil then e = env end
    return load(chunk, name, "t", e)
  end
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      local why = FORBIDDEN_GLOBALS[k]
      if why then refuse(k, why) end
      return nil
    end,
    __metatable = false,
  })
end

local function fail(path, message, line)
  return nil, errors.new("invalid", "policy.load: " .. message, { file = path, line = line })
end

-- Where an error raised while running the chunk was, in the policy file.
local function position(co, source)
  local level = 0
  while true do
    local info = debug.getinfo(co, level, "Sl")
    if not info then return nil end
    if info.source == source and (info.currentline or -1) > 0 then return info.short_src, info.currentline end
    level = level + 1
  end
end

-- The line of the file's last top-level `return`. An error raised in the
-- function that a final `return policy.x(...)` tail-calls leaves no frame of
-- the file on the stack; that statement is then where the error was.
local function last_return(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n, found = 0, nil
  for line in f:lines() do
    n = n + 1
    if line:find("^return%f[%W]") then found = n end
  end
  f:close()
  return found
end

local function describe(v)
  if v == nil then return "nothing" end
  local t = type(v)
  return (t == "table" and "a table" or "a " .. t)
end

--- Load and run a policy file.
-- @tparam string path the file
-- @tparam table api the `prequalify.policy` module
-- @tparam[opt] table opts `budget`: instructions per evaluation
-- @return the policy, or nil and an `invalid` error naming the file and line
function M.load(path, api, opts)
  if type(path) ~= "string" then error("policy.load: expected a file name, got " .. type(path), 3) end
  local limit = opts and opts.budget or budget.DEFAULT
  if math.type(limit) ~= "integer" or limit < 1 then
    error("policy.load: budget must be a positive whole number of instructions, got " .. tostring(limit), 3)
  end
  local dir = path:match("^(.*)[/\\][^/\\]*$") or "."
  local env = environment(api, dir)
  local chunk, why = loadfile(path, "t", env)
  if not chunk then return fail(path, why, tonumber(why:match(":(%d+): "))) end

  local source = "@" .. path
  local co = coroutine.create(chunk)
  local returned_at
  debug.sethook(co, function()
    local info = debug.getinfo(2, "Sl")
    if info and info.what == "main" and info.source == source then returned_at = info.currentline end
  end, "r")
  local res = table.pack(budget.compiling(limit, coroutine.resume, co))
  if not res[1] then
    local msg = res[2]
    msg = type(msg) == "string" and msg or "error object: " .. tostring(msg)
    local src, line = position(co, source)
    if not src then
      line = last_return(path)
      src = line and debug.getinfo(chunk, "S").short_src
    end
    if src and msg:sub(1, #src + 1) ~= src .. ":" then msg = string.format("%s:%d: %s", src, line, msg) end
    return fail(path, msg, line)
  end
  if coroutine.status(co) ~= "dead" then
    return fail(path, path .. ": the file yielded instead of returning a policy")
  end
  local p = res[2]
  if type(p) ~= "function" then
    local hint = type(p) == "table" and "; wrap a list of rules: return policy.all{ ... }" or
      "; it must end with: return <policy>, e.g. return policy.all{ ... }"
    local where = returned_at and string.format("%s:%d", path, returned_at) or path
    return fail(path, string.format("%s: returned %s, not a policy (a function)%s", where, describe(p), hint),
      returned_at)
  end
  budget.compiling(limit, D.step, p)
  return p
end

return M
