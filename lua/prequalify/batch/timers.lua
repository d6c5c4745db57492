--- The batch's retry timer queue: jobs waiting for their backoff, as a
-- min-heap on `job.due` (monotonic seconds).
-- @module prequalify.batch.timers
local M = {}

local Timers = {}
Timers.__index = Timers

--- An empty queue.
function M.new()
  return setmetatable({ n = 0 }, Timers)
end

--- Jobs waiting.
function Timers:size() return self.n end

--- When the first job is due, or nil when none waits.
function Timers:next_due()
  local top = self[1]
  return top and top.due
end

function Timers:push(job)
  local n = self.n + 1
  self.n = n
  self[n] = job
  local i = n
  while i > 1 do
    local parent = i // 2
    if self[parent].due <= self[i].due then break end
    self[parent], self[i] = self[i], self[parent]
    i = parent
  end
end

--- Takes the first job (due or not); nil when none waits.
function Timers:pop()
  local n = self.n
  if n == 0 then return nil end
  local top = self[1]
  self[1] = self[n]
  self[n] = nil
  n = n - 1
  self.n = n
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and self[l].due < self[m].due then m = l end
    if r <= n and self[r].due < self[m].due then m = r end
    if m == i then break end
    self[m], self[i] = self[i], self[m]
    i = m
  end
  return top
end

--- Takes the first job if it is due at `now`.
function Timers:pop_due(now)
  local top = self[1]
  if top and top.due <= now then return self:pop() end
  return nil
end

return M
