--- What every event-loop adapter gives (`prequalify.async.luv`,
-- `prequalify.async.cqueues`): its `yield(fd, timeout)`, and `wait(run)`
-- built on it.
-- @module prequalify.async.adapter
local M = {}

--- An adapter from a loop's wait.
-- @tparam function yield `yield(fd, timeout)`: inside a coroutine of the
--   loop, return once `fd` (nil: none) is readable or `timeout` seconds
--   (nil: none) have passed, letting the loop run meanwhile
-- @return `{yield = yield, wait = wait}`: `wait(run)` steps a Run (or a
--   `client:start` call) to its end from a coroutine, then returns its
--   report
function M.new(yield)
  local function wait(run)
    while not run:step(0) do yield(run:pollfd(), run:timeout()) end
    return run:report()
  end
  return { yield = yield, wait = wait }
end

return M
