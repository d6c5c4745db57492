--- Pre-qualify from coroutines under luv (libuv): `wait(run)` and `yield`
-- (for the `yield =` option) suspend the running coroutine until the
-- descriptor is readable (`uv.new_poll`) or the timeout passed
-- (`uv.new_timer`), and the loop resumes it. Loads luv only when required.
-- @module prequalify.async.luv
local uv = require "luv"
local adapter = require "prequalify.async.adapter"

-- One poll handle per descriptor (libuv allows one), shared by every
-- coroutine waiting on it: fd -> { handle = h, waiters = { [wake] = true } }.
local watchers = {}

local function watch(fd, wake)
  local w = watchers[fd]
  if not w then
    w = { handle = uv.new_poll(fd), waiters = {} }
    watchers[fd] = w
    w.handle:start("r", function()
      local list = w.waiters
      w.waiters = {}
      for f in pairs(list) do f() end
    end)
  end
  w.waiters[wake] = true
end

local function unwatch(fd, wake)
  local w = watchers[fd]
  if not w then return end
  w.waiters[wake] = nil
  if next(w.waiters) == nil then
    w.handle:stop()
    w.handle:close()
    watchers[fd] = nil
  end
end

-- `f(fd, timeout)`: suspends the running coroutine until fd is readable or
-- the timeout passed.
local function yield(fd, timeout)
  local co, main = coroutine.running()
  if main then error("prequalify.async.luv: yield must run inside a coroutine the luv loop resumes", 2) end
  local timer, woken
  local function wake()
    if woken then return end
    woken = true
    if fd then unwatch(fd, wake) end
    if timer then
      timer:stop()
      timer:close()
    end
    local ok, err = coroutine.resume(co)
    if not ok then error(err, 0) end
  end
  if fd then watch(fd, wake) end
  if timeout then
    timer = uv.new_timer()
    timer:start(math.max(0, math.ceil(timeout * 1000)), 0, wake)
  end
  coroutine.yield()
end

return adapter.new(yield)
