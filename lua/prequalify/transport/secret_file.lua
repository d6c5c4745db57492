--- Secret files (token, password, refresh token, JWT, key password): read
-- them trimmed, refuse empty ones, and warn when others may read them.
-- @module prequalify.transport.secret_file
local core = require "prequalify.core"
local errors = require "prequalify.errors"

local M = {}

--- Read a secret file; `what` names it in errors (e.g. "auth.password_file").
-- @return the trimmed content, or nil and an `auth` error (`not_sent`)
function M.read(path, what)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, errors.new("auth", what .. " could not be read: " .. tostring(err), { outcome = "not_sent" })
  end
  local s = f:read("a") or ""
  f:close()
  s = s:gsub("^%s+", ""):gsub("%s+$", "")
  if s == "" then
    return nil, errors.new("auth", what .. " " .. path .. " is empty", { outcome = "not_sent" })
  end
  return s
end

--- Warns (through `warn`) when a secret file is readable by group or others.
-- @return true when it warned
function M.check_mode(path, warn)
  local mode = core.file_mode(path)
  if mode and mode & 0x3F ~= 0 and warn then -- 0077: any group or other bit
    warn(string.format("secret file %s is accessible by group or others (mode %03o); chmod 600 it",
      path, mode & 0x1FF))
    return true
  end
  return false
end

return M
