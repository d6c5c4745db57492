--- Process metrics for bench/soak.lua: this process's RSS, its open
-- descriptors (and how many are sockets), and a median.
local lfs = require "lfs"

local M = {}

function M.rss_kb()
  for l in io.lines("/proc/self/status") do
    local kb = l:match("^VmRSS:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end

-- Open descriptors, and how many of them are sockets. (The directory
-- handle of the walk itself is counted, the same every time.)
function M.fds()
  local total, sockets = 0, 0
  for name in lfs.dir("/proc/self/fd") do
    if name ~= "." and name ~= ".." then
      total = total + 1
      local target = lfs.symlinkattributes("/proc/self/fd/" .. name, "target")
      if type(target) == "string" and target:find("^socket:") then sockets = sockets + 1 end
    end
  end
  return total, sockets
end

function M.median(list)
  if #list == 0 then return nil end
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  local m = (#t + 1) // 2
  return #t % 2 == 1 and t[m] or (t[m] + t[m + 1]) / 2
end

return M
