--- One pre-qualification as a pollable object (`client:start`): the same
-- `client:prequalify` code, run in a coroutine whose `yield` hands each wait
-- back to `step`. It has the Run's surface: `step(max_wait)` (true once
-- finished), `pollfd()`, `events()`, `timeout()`, `report()`, `cancel()`
-- and `close()`.
-- @module prequalify.async.call
local core = require "prequalify.core"

local M = {}

local Call = {}
Call.__index = Call
Call.__name = "prequalify.call"

local function hand_back(fd, timeout) coroutine.yield(fd, timeout) end

--- Start `client:prequalify(request, opts)` as a call in progress.
function M.prequalify(client, fd, request, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  return M.start(fd, function(yield)
    o.yield = yield
    return client:prequalify(request, o)
  end)
end

--- A call in progress.
-- @tparam integer fd the engine's descriptor (`pollfd`)
-- @tparam function fn `fn(yield)` returns the call's results
function M.start(fd, fn)
  local self = setmetatable({ fd = fd, wait_fd = fd, wait_until = core.monotonic(), finished = false }, Call)
  self.co = coroutine.create(function() return fn(hand_back) end)
  return self
end

-- Resume the call once; true when it has finished.
function Call:resume()
  local out = table.pack(coroutine.resume(self.co))
  if not out[1] then
    self.finished = true
    error(out[2], 0)
  end
  if coroutine.status(self.co) == "dead" then
    self.finished = true
    self.out = table.pack(table.unpack(out, 2, out.n))
    return true
  end
  local fd, timeout = out[2], out[3]
  self.wait_fd = fd
  self.wait_until = timeout and core.monotonic() + timeout
  return false
end

--- Do the work that is ready, waiting at most `max_wait` seconds for more.
-- @return true once the call has finished
function Call:step(max_wait)
  if self.finished then return true end
  local until_t = core.monotonic() + (max_wait or 0)
  while not self:resume() do
    local now = core.monotonic()
    if now >= until_t then return false end
    local wait = until_t - now
    if self.wait_until then wait = math.min(wait, math.max(0, self.wait_until - now)) end
    if self.wait_fd then core.poll_fd(self.wait_fd, "r", wait) else core.sleep(wait) end
  end
  return true
end

--- The engine's descriptor: readable when the call's socket has work.
function Call:pollfd() return self.fd end

--- `"r"`, as for a Run.
function Call.events() return "r" end

--- Seconds until the call has timed work (0: now), or nil: only `pollfd()`.
function Call:timeout()
  if self.finished then return 0 end
  if not self.wait_until then return nil end
  return math.max(0, self.wait_until - core.monotonic())
end

--- What `client:prequalify` returned (the result, or nil and the error),
-- once finished; nothing before.
function Call:report()
  if not self.out then return nil end
  return table.unpack(self.out, 1, self.out.n)
end

--- A request cannot be taken back once sent: the call finishes.
function Call.cancel() end

--- Finish the call (waiting for its reply) and return its report.
function Call:close()
  repeat until self:step(0.2)
  return self:report()
end

Call.__close = Call.close

return M
