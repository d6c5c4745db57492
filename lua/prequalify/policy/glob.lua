--- DN globs: `\` separates components, `*` matches within one component,
-- `**` across components, `?` one character of a component. Matching is
-- case-insensitive (ASCII) and covers the whole DN.
--
-- `\**\` also matches a single `\`, so `\VED\**\Prod*` matches
-- `\VED\Prod A` as well as `\VED\x\y\Prod A`.
-- @module prequalify.policy.glob
local M = {}

-- Tokens: a literal string, or one of these markers.
local STAR, GLOBSTAR, ANYDIRS, ONE = {}, {}, {}, {}

--- Compile a pattern into a matcher, or return nil and why it is malformed.
function M.compile(pattern)
  if type(pattern) ~= "string" or pattern == "" then
    return nil, "a DN pattern must be a non-empty string"
  end
  if pattern:find("\\\\", 1, true) then
    return nil, "has two backslashes in a row (an empty DN component); write single backslashes, " ..
      "e.g. [[\\VED\\Code Signing\\**]] or \"\\\\VED\\\\Code Signing\\\\**\""
  end
  if not pattern:find("^[\\*]") then
    return nil, "must start with \\ (e.g. \\VED\\Code Signing\\**) or with ** (e.g. **\\Production*)"
  end
  local p, tokens, i = pattern:lower(), {}, 1
  while i <= #p do
    if p:sub(i, i + 3) == "\\**\\" then
      tokens[#tokens + 1] = ANYDIRS; i = i + 4
    elseif p:sub(i, i + 1) == "**" then
      tokens[#tokens + 1] = GLOBSTAR; i = i + 2
      while p:sub(i, i) == "*" do i = i + 1 end
    elseif p:sub(i, i) == "*" then
      tokens[#tokens + 1] = STAR; i = i + 1
    elseif p:sub(i, i) == "?" then
      tokens[#tokens + 1] = ONE; i = i + 1
    else
      local j = p:find("[*?]", i) or #p + 1
      -- leave a "\**\" for the branch above
      local k = p:find("\\**\\", i, true)
      if k and k < j then j = k end
      if j == i then j = i + 1 end
      tokens[#tokens + 1] = p:sub(i, j - 1); i = j
    end
  end
  return function(dn)
    local s, memo = dn:lower(), {}
    local function match(t, pos)
      local key = t * (#s + 2) + pos
      local m = memo[key]
      if m ~= nil then return m end
      local tok, r = tokens[t], false
      if tok == nil then
        r = pos == #s + 1
      elseif tok == STAR or tok == GLOBSTAR then
        local q = pos
        while true do
          if match(t + 1, q) then r = true; break end
          if q > #s or (tok == STAR and s:sub(q, q) == "\\") then break end
          q = q + 1
        end
      elseif tok == ANYDIRS then
        -- "\" alone, or "\" ... "\"
        if s:sub(pos, pos) == "\\" then
          local q = pos
          while q do
            if match(t + 1, q + 1) then r = true; break end
            q = s:find("\\", q + 1, true)
          end
        end
      elseif tok == ONE then
        r = pos <= #s and s:sub(pos, pos) ~= "\\" and match(t + 1, pos + 1)
      else
        r = s:sub(pos, pos + #tok - 1) == tok and match(t + 1, pos + #tok)
      end
      memo[key] = r
      return r
    end
    return match(1, 1)
  end
end

return M
