--- Time: the injectable clock (`ctx.now`) and `time_window`.
-- @module prequalify.policy.clock
local D = require "prequalify.policy.decision"
local text = require "prequalify.policy.text"

local M = {}

local floor, mtype = math.floor, math.type

--- The time that a value of `ctx.now` stands for (see `now`).
function M.of(v)
  if type(v) == "function" then v = v() end
  if v == nil then return os.time() end
  if type(v) ~= "number" then
    error("ctx.now must be a number of unix seconds or a function returning one, got " .. type(v), 0)
  end
  return v
end

--- The current time in unix seconds: `ctx.now` (a number, or a function
-- returning one), else `os.time()`.
function M.now(ctx)
  return M.of(ctx and ctx.now)
end

-- Up to here (the year 10000) weekday and time of day are worked out
-- without os.date; beyond, os.date decides (and raises where it cannot).
local LAST = 253402300800

-- os.date's wday: 1 is Sunday.
local DAY_NAMES = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" }
local DAY_TITLES = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local DAY_INDEX = {}
for i, d in ipairs(DAY_NAMES) do DAY_INDEX[d] = i end
local LONG = { sunday = "sun", monday = "mon", tuesday = "tue", wednesday = "wed",
  thursday = "thu", friday = "fri", saturday = "sat" }

--- Parse a fixed UTC offset: `"+02:00"`, `"-0530"`, `"UTC+2"`, `"UTC"`, `"Z"`,
-- or a number of hours. Returns seconds and a label like `UTC+02:00`, or nil
-- and why. Zone names such as `Europe/Berlin` are refused: there is no time
-- zone database here, and a fixed offset cannot follow daylight saving.
function M.offset(v)
  if v == nil then return 0, "UTC" end
  local sign, h, m
  if type(v) == "number" then
    sign, h, m = v < 0 and -1 or 1, math.floor(math.abs(v)), math.floor(math.abs(v) * 60 + 0.5) % 60
  elseif type(v) == "string" then
    local s = v:upper():gsub("%s", "")
    if s == "UTC" or s == "Z" or s == "GMT" then return 0, "UTC" end
    s = s:gsub("^UTC", ""):gsub("^GMT", "")
    local sg, hh, mm = s:match("^([+-])(%d%d?):?(%d%d)$")
    if not sg then sg, hh = s:match("^([+-])(%d%d?)$") end
    if not sg then
      return nil, string.format("utc_offset %q is not a fixed offset such as \"+02:00\" or \"UTC-5\"", v)
    end
    sign, h, m = sg == "-" and -1 or 1, tonumber(hh), tonumber(mm or 0)
  else
    return nil, "utc_offset must be a string such as \"+02:00\" or a number of hours"
  end
  if h > 14 or m > 59 then return nil, string.format("utc_offset %s is out of range", tostring(v)) end
  local label = h == 0 and m == 0 and "UTC" or
    string.format("UTC%s%02d:%02d", sign < 0 and "-" or "+", h, m)
  return sign * (h * 3600 + m * 60), label
end

-- "09:00" or 9 -> minutes since midnight; "24:00" is the end of the day.
local function clock(v, what)
  local h, m
  if math.type(v) == "integer" then h, m = v, 0
  elseif type(v) == "string" then
    local hh, mm = v:match("^(%d%d?):(%d%d)$")
    h, m = tonumber(hh), tonumber(mm)
  end
  if not h or h > 24 or m > 59 or (h == 24 and m > 0) then
    error(string.format("policy.time_window: %s must be \"HH:MM\" or a whole hour, got %s", what, tostring(v)), 4)
  end
  return h * 60 + m
end

local function hhmm(mins) return string.format("%02d:%02d", mins // 60, mins % 60) end

-- Year, month and day of a day number (days since 1970-01-01) in the
-- proleptic Gregorian calendar, as os.date("!*t") has them (H. Hinnant's
-- civil_from_days).
local function civil(days)
  local z = days + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local month = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (month <= 2 and 1 or 0), month, doy - (153 * mp + 2) // 5 + 1
end

-- Weekdays Monday first, runs of three or more written as a range.
local function days_label(set)
  local order, out, i = { 2, 3, 4, 5, 6, 7, 1 }, {}, 1
  while i <= 7 do
    if set[order[i]] then
      local j = i
      while j < 7 and set[order[j + 1]] do j = j + 1 end
      if j - i >= 2 then
        out[#out + 1] = DAY_NAMES[order[i]] .. "-" .. DAY_NAMES[order[j]]
      else
        for k = i, j do out[#out + 1] = DAY_NAMES[order[k]] end
      end
      i = j + 1
    else
      i = i + 1
    end
  end
  return table.concat(out, ",")
end

local function parse_days(days)
  if type(days) ~= "table" or #days == 0 then
    error("policy.time_window: days must be a list such as {\"mon\", \"tue\"}", 4)
  end
  local set = {}
  for _, d in ipairs(days) do
    local key = type(d) == "string" and d:lower() or nil
    key = key and (LONG[key] or key)
    if not DAY_INDEX[key] then
      error(string.format("policy.time_window: unknown day %s (expected mon, tue, ... sun)", tostring(d)), 4)
    end
    set[DAY_INDEX[key]] = true
  end
  return set
end

local function parse(t)
  if type(t) ~= "table" then
    error("policy.time_window: expected a table {days=, hours= or from=/to=, utc_offset=}", 3)
  end
  local days = t.days and parse_days(t.days)
  local from, to
  if t.hours ~= nil then
    if type(t.hours) ~= "table" or t.hours[1] == nil or t.hours[2] == nil then
      error("policy.time_window: hours must be {from, to}, e.g. {9, 17}", 3)
    end
    from, to = clock(t.hours[1], "hours[1]"), clock(t.hours[2], "hours[2]")
  elseif t.from ~= nil or t.to ~= nil then
    from, to = clock(t.from or "00:00", "from"), clock(t.to or "24:00", "to")
  end
  if from and from == to then error("policy.time_window: the window starts where it ends", 3) end
  if not days and not from then error("policy.time_window: give days, hours or from/to", 3) end
  local off, zone = M.offset(t.utc_offset or t.tz)
  if not off then error("policy.time_window: " .. zone, 3) end
  return days, from, to, off, zone
end

--- Allows requests made on the given weekdays and between the given times,
-- in a fixed UTC offset, judged by `ctx.now`. The start is included and the
-- end is not; a window whose end is before its start runs past midnight.
-- The day is the local day at that moment.
-- @tparam table t `days` (e.g. `{"mon","tue","wed","thu","fri"}`), `hours = {9, 17}`
--   or `from = "09:00", to = "17:30"`, and `utc_offset` (`"+02:00"`, `"UTC+2"`, default UTC)
function M.time_window(t)
  local days, from, to, off, zone = parse(t)
  local parts = {}
  if days then parts[#parts + 1] = days_label(days) end
  if from then parts[#parts + 1] = hhmm(from) .. "-" .. hhmm(to) end
  local window = table.concat(parts, " ")
  -- `at` is the local time as unix seconds (the moment plus the offset).
  local function shown(at)
    local wday, year, month, day, hour, min
    if mtype(at) == "integer" and at >= 0 and at < LAST then
      local dayno = at // 86400
      wday, hour, min = (dayno + 4) % 7 + 1, at % 86400 // 3600, at % 3600 // 60
      year, month, day = civil(dayno)
    else
      local d = os.date("!*t", at)
      wday, year, month, day, hour, min = d.wday, d.year, d.month, d.day, d.hour, d.min
    end
    return string.format("%s %04d-%02d-%02d %02d:%02d %s", DAY_TITLES[wday], year, month, day, hour, min, zone)
  end
  -- The reasons show the minute, and a batch's requests share a few: they
  -- are remembered by minute (`at // 60`) where worked out without os.date.
  local insides = text.memo(function(minute) return shown(minute * 60) .. " is inside " .. window end, 64)
  local outsides = text.memo(function(minute) return shown(minute * 60) .. " is outside " .. window end, 64)
  local function open(wday, mins)
    return (not days or days[wday]) and (not from or (from < to and mins >= from and mins < to)
      or (from > to and (mins >= from or mins < to)))
  end
  -- So is whether a minute is in the window (1970-01-01 was a Thursday, wday 5).
  local opens = text.memo(function(minute)
    return open((minute // 1440 + 4) % 7 + 1, minute % 1440) and true or false
  end, 64)
  return D.leaf("time_window(" .. window .. " " .. zone .. ")", function(_, ctx)
    -- `ctx.now` is most often a whole number: then the only call is math.type
    -- (`off` is a whole number too, so `at` stays one).
    local at = ctx and ctx.now
    local whole = mtype(at) == "integer"
    if not whole then
      at = floor(M.of(at))
      whole = mtype(at) == "integer"
    end
    at = at + off
    if whole and at >= 0 and at < LAST then
      local minute = at // 60
      if opens[minute] then return "allow", insides[minute] end
      return "deny", outsides[minute]
    end
    -- what os.date makes of it, or its error
    local d = os.date("!*t", at)
    if open(d.wday, d.hour * 60 + d.min) then return "allow", shown(at) .. " is inside " .. window end
    return "deny", shown(at) .. " is outside " .. window
  end)
end

return M
