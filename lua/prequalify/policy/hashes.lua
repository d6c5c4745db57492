--- Hash lists: `deny_hashes` and `allow_hashes`, from a Lua list or set, or
-- from a file as a malware scanner would export it.
--
-- File format: one digest per line, hex (any case) or Base64; `#` starts a
-- comment; blank lines are skipped; text after the digest and whitespace is
-- a label (so `sha256sum` output works). Digests are compared as raw bytes,
-- so a hex entry matches the same hash sent as Base64.
-- @module prequalify.policy.hashes
local core = require "prequalify.core"
local D = require "prequalify.policy.decision"
local text = require "prequalify.policy.text"

local M = {}

local WHAT = "is not a hex or Base64 digest"

--- Raw bytes of a digest written as hex (an even number of hex digits) or
-- Base64, or nil and why not.
function M.decode(s)
  if type(s) ~= "string" then return nil, "is a " .. type(s) .. ", expected a string" end
  if #s % 2 == 0 and s:find("^%x+$") then
    return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
  end
  local raw = core.b64decode(s)
  if not raw or raw == "" then return nil, WHAT end
  return raw
end

-- Never echo a bad line: a mistyped path could point at a file of secrets.
local function read_file(path, shown)
  local f, why = io.open(path, "rb")
  if not f then return nil, "cannot read " .. tostring(why) end
  local set, n, ln = {}, 0, 0
  for line in f:lines() do
    ln = ln + 1
    local body = line:gsub("#.*$", ""):gsub("^%s+", ""):gsub("%s+$", "")
    if body ~= "" then
      local digest, label = body:match("^(%S+)%s*(.*)$")
      local raw = M.decode(digest)
      if not raw then
        f:close()
        return nil, string.format("%s:%d: %s (expected hex or Base64, then an optional label)",
          path, ln, WHAT:gsub("^is", "the first word is"))
      end
      if not set[raw] then n = n + 1 end
      set[raw] = { where = shown .. ":" .. ln, label = label ~= "" and label or nil }
    end
  end
  f:close()
  return set, n
end

local function read_table(t)
  local set, n = {}, 0
  for k, v in pairs(t) do
    -- a list holds digests as values; a set holds them as keys
    local s
    if math.type(k) == "integer" then s = v elseif v then s = k end
    if s ~= nil then
      local raw, why = M.decode(s)
      if not raw then return nil, string.format("entry %s %s", tostring(k), why) end
      if not set[raw] then n = n + 1 end
      set[raw] = {}
    end
  end
  return set, n
end

local function is_absolute(path)
  return path:sub(1, 1) == "/" or path:find("^%a:[\\/]") ~= nil
end

-- The set and a short description for the rule's name.
local function load_set(who, src, base)
  local set, n
  if type(src) == "string" then
    local path = src
    if base and not is_absolute(src) then path = base .. "/" .. src end
    local why
    set, why = read_file(path, src)
    if not set then error(string.format("policy.%s: %s", who, why), 3) end
    n = why
    return set, string.format("%s, %d hash%s", src, n, n == 1 and "" or "es")
  elseif type(src) == "table" then
    local why
    set, why = read_table(src)
    if not set then error(string.format("policy.%s: %s", who, why), 3) end
    n = why
    return set, string.format("%d hash%s", n, n == 1 and "" or "es")
  end
  error(string.format("policy.%s: expected a file name or a list of digests, got %s", who, type(src)), 3)
end

-- Lists are looked up by a request's `data` as it is: validation admits
-- only canonical Base64 (one text per digest), so the text stands for the
-- bytes and no request needs decoding.
local function by_text(set)
  local out = {}
  for raw, hit in pairs(set) do out[core.b64encode(raw)] = hit end
  return out
end

local function where(hit)
  if not hit.where then return "" end
  return " (" .. hit.where .. (hit.label and " " .. hit.label or "") .. ")"
end

-- A rule on a hash list: `listed(data, hit)` decides for a hash on it,
-- `unlisted(data)` for one that is not. (The caller tail-calls this, so an
-- error about the list is reported at the caller's caller.)
local function list_rule(who, src, base, listed, unlisted)
  local set, desc = load_set(who, src, base)
  set = by_text(set)
  return D.leaf(who .. "(" .. desc .. ")", function(req)
    local data = req.data
    local hit = set[data]
    if hit then return listed(data, hit) end
    return unlisted(data)
  end, true)
end

--- Denies a hash that is on the list.
-- @param src a file name (relative to the policy file when loaded with `policy.load`),
--   a list of digests, or a set `{[digest] = true}`
-- @param[opt] base directory for a relative file name
function M.deny_hashes(src, base)
  return list_rule("deny_hashes", src, base,
    function(data, hit) return "deny", text.digest(data) .. " is on the deny list" .. where(hit) end,
    function(data) return "allow", text.digest(data, " is not on the deny list") end)
end

--- Allows only a hash that is on the list (same sources as `deny_hashes`).
function M.allow_hashes(src, base)
  return list_rule("allow_hashes", src, base,
    function(data, hit) return "allow", text.digest(data) .. " is on the allow list" .. where(hit) end,
    function(data) return "deny", text.digest(data) .. " is not on the allow list" end)
end

return M
