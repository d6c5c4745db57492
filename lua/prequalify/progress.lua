--- Batch progress: on a terminal, one line on stderr that rewrites itself
-- (done/total, approved, denied, failed, unknown, rate, ETA); off a
-- terminal, a plain line now and then; or a function of the numbers.
-- @module prequalify.progress
local core = require "prequalify.core"

local M = {}

--- Seconds between plain lines when stderr is not a terminal.
M.PLAIN_INTERVAL = 10
--- Seconds between redraws of the terminal line.
M.TTY_INTERVAL = 0.1

local function eta_text(s)
  if not s or s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%dh%02dm", s // 3600, (s % 3600) // 60)
end

--- One progress line from the numbers (no newline).
function M.format(st)
  local done = st.total and (st.done .. "/" .. st.total) or tostring(st.done)
  local parts = {
    "prequalify: " .. done .. " done",
    st.approved .. " approved", st.denied .. " denied", st.failed .. " failed", st.unknown .. " unknown",
  }
  if st.skipped > 0 then parts[#parts + 1] = st.skipped .. " skipped" end
  parts[#parts + 1] = string.format("%.1f/s", st.rate)
  if st.total then parts[#parts + 1] = "ETA " .. eta_text(st.eta) end
  if st.stopping then parts[#parts + 1] = "stopping (" .. st.stopping .. ")" end
  return table.concat(parts, ", ")
end

--- A progress display.
-- @param opt `true` (terminal line, or plain lines every `PLAIN_INTERVAL`
--   seconds off a terminal), `"plain"` (plain lines even on a terminal),
--   `"tty"`, a function (called with the numbers after each item and at the
--   end), or false/nil (off)
-- @tparam[opt] number total items expected, if known
-- @tparam[opt] file out where to draw (default io.stderr)
-- @return an object with `update(counts, extra)` and `finish(counts, extra)`
function M.new(opt, total, out)
  out = out or io.stderr
  local self = { total = total, t0 = core.monotonic(), last = -math.huge }
  local mode
  if type(opt) == "function" then
    mode = "fn"
  elseif opt == true then
    mode = core.isatty(out) and "tty" or "plain"
  elseif opt == "plain" or opt == "tty" then
    mode = opt
  else
    mode = "off"
  end
  self.mode = mode

  local function numbers(c, extra)
    local now = core.monotonic()
    local elapsed = now - self.t0
    local done = c.total
    local rate = elapsed > 0 and done / elapsed or 0
    local st = {
      done = done, total = self.total, approved = c.approved, denied = c.denied, failed = c.failed,
      unknown = c.unknown, skipped = c.skipped, elapsed = elapsed, rate = rate,
    }
    if self.total and rate > 0 then st.eta = math.max(0, self.total - done) / rate end
    if extra then
      for k, v in pairs(extra) do st[k] = v end
    end
    return st, now
  end

  function self.update(c, extra, force)
    if mode == "off" then return end
    if mode == "fn" then
      opt((numbers(c, extra)))
      return
    end
    local now = core.monotonic()
    local interval = mode == "tty" and M.TTY_INTERVAL or M.PLAIN_INTERVAL
    if not force and now - self.last < interval then return end
    self.last = now
    self.last_done = c.total
    local st = numbers(c, extra)
    if mode == "tty" then
      out:write("\r\27[K", M.format(st))
    else
      out:write(M.format(st), "\n")
    end
    out:flush()
  end

  --- A redraw from the loop (not for functions, which hear of each item).
  function self.tick(c, extra)
    if mode == "fn" or mode == "off" then return end
    self.update(c, extra)
  end

  function self.finish(c, extra)
    if mode == "off" then return end
    if mode == "fn" then
      local st = numbers(c, extra)
      st.finished = true
      opt(st)
      return
    end
    -- A plain line for the same count was already printed: do not repeat it.
    if mode == "tty" or self.last_done ~= c.total then self.update(c, extra, true) end
    if mode == "tty" then out:write("\n") end
    out:flush()
  end

  return self
end

return M
