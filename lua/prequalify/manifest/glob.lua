--- Globs of artifact files, for `prequalify.manifest`: the files matching a
-- pattern, walked lazily in sorted order, and requests made for them from a
-- template. `prequalify.manifest` re-exports `files`, `glob` and
-- `count_files` under its own name.
-- @module prequalify.manifest.glob
local errors = require "prequalify.errors"
local request = require "prequalify.request"
local digest = require "prequalify.digest"
local paths = require "prequalify.paths"
local fnmatch = require("prequalify.core").fnmatch

local M = {}

local expand_comment = paths.expand_comment

local TEMPLATE_FIELDS = {
  dn = true, user = true, comment = true, hours = true, single_use = true,
  algorithm = true, dig = true,
}

-- Whether a glob segment has a wildcard (else it names one entry).
local function has_wildcard(seg)
  return seg:find("[%*%?%[]") ~= nil
end

local function list_dir(lfs, dir)
  local names = {}
  local ok, iter, state = pcall(lfs.dir, dir)
  if not ok then return names end
  for name in iter, state do
    if name ~= "." and name ~= ".." then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

-- Walks the segments from index i under dir, yielding matching files.
local function walk(lfs, dir, segs, i, prefix)
  local seg = segs[i]
  local last = i == #segs
  local function path_of(name)
    if prefix == "" then return name end
    if prefix == "/" then return "/" .. name end
    return prefix .. "/" .. name
  end
  if seg == "**" then
    -- Zero directories here, then every subdirectory (symlinks not followed).
    walk(lfs, dir, segs, i + 1, prefix)
    for _, name in ipairs(list_dir(lfs, dir)) do
      if name:sub(1, 1) ~= "." then
        local p = path_of(name)
        if lfs.symlinkattributes(p, "mode") == "directory" then walk(lfs, p, segs, i, p) end
      end
    end
    return
  end
  -- A matching entry: a file ends the pattern, a directory goes on with it.
  local function visit(name)
    local p = path_of(name)
    local mode = lfs.attributes(p, "mode")
    if last then
      if mode == "file" then coroutine.yield(p) end
    elseif mode == "directory" then
      walk(lfs, p, segs, i + 1, p)
    end
  end
  if not has_wildcard(seg) then
    visit(seg)
    return
  end
  -- fnmatch(3) in the core, with FNM_PERIOD: a hidden name needs a pattern
  -- that starts with a dot.
  for _, name in ipairs(list_dir(lfs, dir)) do
    if fnmatch(seg, name) then visit(name) end
  end
end

--- Files matching a glob, lazily, in sorted order: `*`, `?`, `[abc]`,
-- `[!abc]` within one path segment (fnmatch(3); `\` escapes a wildcard),
-- `**` for any number of directories (hidden ones are not entered; symbolic
-- links to directories are not followed). Names starting with a dot match
-- only a pattern that starts with a dot.
-- @tparam string pattern the glob, relative to the current directory or absolute
-- @return an iterator of paths; an unreadable directory is skipped, not an error
-- @raise when `pattern` is not a non-empty string
function M.files(pattern)
  if type(pattern) ~= "string" or pattern == "" then
    error("prequalify.manifest.files: expected a glob pattern string", 2)
  end
  local lfs = require "lfs"
  local segs = {}
  for seg in pattern:gmatch("[^/]+") do
    if seg ~= "." then segs[#segs + 1] = seg end
  end
  -- A trailing ** means every file below.
  if segs[#segs] == "**" then segs[#segs + 1] = "*" end
  local root = pattern:sub(1, 1) == "/" and "/" or ""
  return coroutine.wrap(function()
    if #segs > 0 then walk(lfs, root == "" and "." or "/", segs, 1, root) end
  end)
end

--- Requests for every file matching a glob, from a template.
-- @tparam string pattern see `files`
-- @tparam table template `dn`, `user`, `comment` (a string in which
--   `{path}`, `{name}` and `{dir}` are replaced, or a function of the path),
--   optional `hours`, `single_use`, `algorithm` (sha256, sha384 or sha512;
--   default sha256), or `dig = true` when the files are signtool `.dig` files
-- @return an iterator yielding `req, {file=path}` or `false, err`; or nil and
--   an `invalid` error for a bad template
function M.glob(pattern, template)
  if type(pattern) ~= "string" or pattern == "" then
    error("prequalify.manifest.glob: expected a glob pattern string", 2)
  end
  if type(template) ~= "table" then
    error("prequalify.manifest.glob: expected a template table, got " .. type(template), 2)
  end
  for k in pairs(template) do
    if not TEMPLATE_FIELDS[k] then
      return nil, errors.new("invalid", "unknown template field '" .. tostring(k)
        .. "' (known: dn, user, comment, hours, single_use, algorithm, dig)", { field = tostring(k) })
    end
  end
  if template.dig and template.algorithm then
    return nil, errors.new("invalid", "give algorithm or dig = true, not both", { field = "algorithm" })
  end
  local files = M.files(pattern)
  local n = 0
  local iter = setmetatable({}, {
    __name = "prequalify.glob",
    __call = function()
      local path = files()
      if not path then return nil end
      n = n + 1
      local b64, err
      if template.dig then b64, err = digest.dig_file(path) else b64, err = digest.file(path, template.algorithm) end
      if not b64 then
        err.file, err.index = path, n
        return false, err
      end
      local req, rerr = request.new{
        dn = template.dn, user = template.user, comment = expand_comment(template.comment, path),
        hours = template.hours, single_use = template.single_use, data = b64,
      }
      if not req then
        rerr.message = path .. ": " .. rerr.message
        rerr.file, rerr.index = path, n
        return false, rerr
      end
      return req, { file = path, index = n }
    end,
  })
  return iter
end

--- Count the files matching a glob (a separate walk, nothing hashed).
function M.count_files(pattern)
  local n = 0
  for _ in M.files(pattern) do n = n + 1 end
  return n
end

return M
