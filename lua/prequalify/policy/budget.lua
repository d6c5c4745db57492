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

-- The call running now: its budget (nil when none runs), the instructions
-- counted so far in its evaluation, and the hook's period. The last
-- evaluation's count is kept for its next rule (`key` is its trail).
local limit, used, step = nil, 0, M.STEP
local last_key, last_used = nil, 0
local call, finish

local function hook()
  -- `call` itself, between the rule's return and putting the hook back
  if not limit then return end
  local f = getinfo(2, "f").func
  if f == call or f == finish then return end
  used = used + step
  if used >= limit then
    sethook(hook, "", 1)
    error(string.format("the rule exceeded its instruction budget (%d instructions)", limit), 2)
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

--- Run `fn(...)` with `budget` as the budget of users' rules compiled
-- meanwhile; returns what `fn` returns (and raises what it raises).
function M.compiling(budget, fn, ...)
  local before = loading
  loading = budget
  local res = table.pack(pcall(fn, ...))
  loading = before
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- The end of `call`: the hook and the outer call's count as they were.
function finish(key, outer, outer_used, outer_step, oh, omask, ocount, ok, ...)
  last_key, last_used = key, used -- what the hook did not see yet (under one step) is not counted
  limit, used, step = outer, outer_used, outer_step
  if type(oh) == "function" then sethook(oh, omask, ocount) else sethook() end
  if not ok then error((...), 0) end
  return ...
end

--- Call `fn(...)` under the budget `budget` of the evaluation whose trail is
-- `key`. Raises what `fn` raises, and once over the budget.
function call(budget, key, fn, ...)
  local outer, outer_used, outer_step = limit, used, step
  local oh, omask, ocount = gethook()
  limit, used, step = budget, key == last_key and last_used or 0, budget < M.STEP and budget or M.STEP
  sethook(hook, "", step)
  return finish(key, outer, outer_used, outer_step, oh, omask, ocount, pcall(fn, ...))
end
M.call = call

return M
