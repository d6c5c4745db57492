--- Pre-qualify from cqueues coroutines: `wait(run)` and `yield` (for the
-- `yield =` option) wait through `cqueues.poll`, so the controller runs
-- every other coroutine meanwhile. Loads cqueues only when required.
-- @module prequalify.async.cqueues
local cqueues = require "cqueues"
local adapter = require "prequalify.async.adapter"

-- `f(fd, timeout)`: returns once fd is readable or the timeout passed.
local function yield(fd, timeout)
  if fd then
    cqueues.poll({ pollfd = fd, events = "r" }, timeout)
  else
    cqueues.poll(timeout)
  end
end

return adapter.new(yield)
