--- The instruction budget of a loaded policy: a rule from a policy file
-- that never returns must not hang the batch or the CLI.
--
-- The rules of a policy file run under a count hook, set only around them
-- (built-in rules and the host's own rules run without one). Instructions
-- are counted per evaluation, in steps of `STEP`, over all of that file's
-- rules; past the budget the hook raises, so the rule is an error and the
-- decision a deny. Once over, the hook raises at every instruction, so a
-- rule cannot catch the error with `pcall` and go on.
-- @module prequalify.policy.budget
local M = {}

--- The default budget: instructions per evaluation of a loaded policy.
M.DEFAULT = 10000000

--- Instructions between two calls of the hook.
M.STEP = 10000

local sethook, gethook, getinfo = debug.sethook, debug.gethook, debug.getinfo

-- Instructions spent per evaluation (its trail), and the budget of the
-- call running now.
local spent = setmetatable({}, { __mode = "k" })
local running = nil
local call, finish

local function hook()
  local r = running
  -- `call` itself, between the rule's return and putting the hook back
  if not r then return end
  local f = getinfo(2, "f").func
  if f == call or f == finish then return end
  r.used = r.used + r.step
  if r.used >= r.limit then
    sethook(hook, "", 1)
    error(string.format("the rule exceeded its instruction budget (%d instructions)", r.limit), 2)
  end
end

--- The hook of the running thread, for a coroutine it resumes.
function M.inherit(co)
  local h, mask, count = gethook()
  if h == hook then sethook(co, h, mask, count) end
end

-- The budget of rules compiled now (a policy file is loading), or nil.
local loading = nil

--- The budget for rules compiled now, or nil outside `policy.load`.
function M.loading()
  return loading
end

--- Run `fn(...)` with `limit` as the budget of users' rules compiled
-- meanwhile; returns what `fn` returns (and raises what it raises).
function M.compiling(limit, fn, ...)
  local before = loading
  loading = limit
  local res = table.pack(pcall(fn, ...))
  loading = before
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- The end of `call`: the hook as it was, the instructions counted.
function finish(outer, oh, omask, ocount, r, key, ok, ...)
  running = outer
  if type(oh) == "function" then sethook(oh, omask, ocount) else sethook() end
  spent[key] = r.used -- what the hook did not see yet (under one step) is not counted
  if not ok then error((...), 0) end
  return ...
end

--- Call `fn(...)` under the budget `limit` of the evaluation whose trail is
-- `key`. Raises what `fn` raises, and once over the budget.
function call(limit, key, fn, ...)
  local outer = running
  local oh, omask, ocount = gethook()
  local r = { used = spent[key] or 0, limit = limit, step = limit < M.STEP and limit or M.STEP }
  running = r
  sethook(hook, "", r.step)
  return finish(outer, oh, omask, ocount, r, key, pcall(fn, ...))
end
M.call = call

return M
