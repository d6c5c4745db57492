--- vedauth scope strings: `name:priv1,priv2;name2;name3:priv`.
-- Parsed form: `{codesign = {approve = true, manage = true}, configuration = {}}`.
-- Names and privileges compare case-insensitively (the server lowercases
-- them), so the parsed form is lowercase.
-- @module prequalify.scope
local M = {}

--- The scope a pre-qualification needs.
M.APPROVE = "codesign:approve"

local NAME = "^[%w_%-%.]+$"

--- Parse a scope string.
-- @tparam string text e.g. `"codesign:approve,manage;configuration"`
-- @return the parsed table, or nil and a message naming the bad part
function M.parse(text)
  if type(text) ~= "string" then return nil, "scope must be a string, got " .. type(text) end
  local out = {}
  for part in (text .. ";"):gmatch("([^;]*);") do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then
      local name, privs = part:match("^([^:]*):(.*)$")
      name = (name or part):match("^%s*(.-)%s*$"):lower()
      if not name:match(NAME) then
        return nil, "scope part '" .. part .. "' has no valid name (expected name:priv1,priv2)"
      end
      local entry = out[name] or {}
      out[name] = entry
      for priv in ((privs or "") .. ","):gmatch("([^,]*),") do
        priv = priv:match("^%s*(.-)%s*$"):lower()
        if priv ~= "" then
          if not priv:match(NAME) then
            return nil, "scope part '" .. part .. "' has an invalid privilege '" .. priv .. "'"
          end
          entry[priv] = true
        end
      end
    end
  end
  return out
end

-- Sorted keys of a set, or the values of a list.
local function names(set)
  local list = {}
  if #set > 0 then
    for _, v in ipairs(set) do list[#list + 1] = tostring(v):lower() end
  else
    for k, v in pairs(set) do
      if v then list[#list + 1] = tostring(k):lower() end
    end
  end
  table.sort(list)
  return list
end

--- Build a scope string from its parsed form, in a stable order.
-- Each value may be a set (`{approve=true}`), a list (`{"approve"}`) or
-- `true` (no privileges).
-- @treturn string e.g. `"codesign:approve,manage;configuration"`
function M.build(t)
  if type(t) ~= "table" then error("scope.build: expected a table, got " .. type(t), 2) end
  local parts = {}
  for _, name in ipairs(names(t)) do
    local privs = t[name]
    if privs == nil then
      for k, v in pairs(t) do if tostring(k):lower() == name then privs = v end end
    end
    local list = type(privs) == "table" and names(privs) or {}
    parts[#parts + 1] = #list > 0 and (name .. ":" .. table.concat(list, ",")) or name
  end
  return table.concat(parts, ";")
end

local function parsed(s)
  if type(s) == "table" then return s end
  return M.parse(s or "") or {}
end

--- The parts of `wanted` that `granted` lacks, as a scope string, or nil
-- when nothing is missing. A bare name (`configuration`) asks only for the
-- name itself.
function M.missing(granted, wanted)
  local g, w = parsed(granted), parsed(wanted)
  local lack = {}
  for name, privs in pairs(w) do
    local have = g[name]
    if not have then
      lack[name] = privs
    else
      for priv in pairs(privs) do
        if not have[priv] then
          lack[name] = lack[name] or {}
          lack[name][priv] = true
        end
      end
    end
  end
  if next(lack) == nil then return nil end
  return M.build(lack)
end

--- True when the `granted` scope (string or parsed) covers `wanted`.
-- @usage scope.has("codesign:approve,manage", "codesign:approve") --> true
function M.has(granted, wanted)
  return M.missing(granted, wanted) == nil
end

return M
