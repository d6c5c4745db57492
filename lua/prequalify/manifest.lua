--- Batch inputs: a JSON Lines manifest (one request per line) and a glob of
-- artifact files with a template. Both are streaming iterators: one line or
-- one file at a time, nothing accumulated, so memory stays flat however long
-- the input is.
--
-- Each step yields `req, meta` (a validated request and `{line=, file=}`),
-- or `false, err` for an input that cannot become a request (a bad line, a
-- missing file): `err` is an `invalid` error with `line` and a message that
-- starts with `manifest:line:`. The loop goes on after a bad line.
--
--     for req, meta in prequalify.manifest.read("release.jsonl") do
--       if not req then print(meta) end   -- meta is the error here
--     end
-- @module prequalify.manifest
local cjson = require "cjson"
local errors = require "prequalify.errors"
local request = require "prequalify.request"
local digest = require "prequalify.digest"
local paths = require "prequalify.paths"
local fnmatch = require("prequalify.core").fnmatch

local M = {}

local json = cjson.new()
json.decode_max_depth(8)

--- Longest accepted manifest line, in bytes (a request is a few hundred).
M.MAX_LINE = 64 * 1024
local CHUNK = 64 * 1024

-- Fields a manifest line (or a template) may hold besides the request's own.
local SOURCE_FIELDS = { file = true, algorithm = true, dig = true }

local dirname, join, expand_comment = paths.dirname, paths.join, paths.expand_comment

--- Lines of an open file, read in fixed chunks: `lineno, text` or
-- `lineno, nil, why` for a line longer than `maxlen` (its bytes are skipped).
local function chunked_lines(f, maxlen)
  local buf, pos, lineno, eof = "", 1, 0, false
  local skipping = false
  return function()
    while true do
      local nl = buf:find("\n", pos, true)
      if nl then
        lineno = lineno + 1
        local text = buf:sub(pos, nl - 1)
        pos = nl + 1
        if skipping then
          skipping = false
          return lineno, nil, "line longer than " .. maxlen .. " bytes"
        end
        if #text > maxlen then return lineno, nil, "line longer than " .. maxlen .. " bytes" end
        return lineno, text
      end
      if eof then
        if pos <= #buf or skipping then
          lineno = lineno + 1
          local text = buf:sub(pos)
          pos, buf = 1, ""
          if skipping or #text > maxlen then
            skipping = false
            return lineno, nil, "line longer than " .. maxlen .. " bytes"
          end
          return lineno, text
        end
        return nil
      end
      local chunk = f:read(CHUNK)
      if not chunk then
        eof = true
      else
        local rest = buf:sub(pos)
        if #rest > maxlen then
          -- An overlong line: drop what we have and skip to its end.
          skipping, rest = true, ""
        end
        buf, pos = rest .. chunk, 1
        if skipping then
          local e = buf:find("\n", 1, true)
          if e then
            buf = buf:sub(e)  -- keep the newline: it ends the skipped line
          else
            buf = ""
          end
        end
      end
    end
  end
end

local function line_error(name, lineno, message, fields)
  local e = { line = lineno, source = name }
  for k, v in pairs(fields or {}) do e[k] = v end
  return errors.new("invalid", string.format("%s:%d: %s", name, lineno, message), e)
end

-- Resolves `file`/`algorithm`/`dig` into `data`. Returns the request
-- fields and the artifact path, or nil and a message (and field).
local function resolve_source(t, base_dir)
  local file, dig, alg = t.file, t.dig, t.algorithm
  if file == nil and dig == nil then
    if alg ~= nil then
      if t.data == nil and t.digest == nil then
        -- Nothing to hash: let validation say that data is missing.
        t.algorithm = nil
        return t
      end
      return nil, "algorithm goes with file (the artifact to hash)", "algorithm"
    end
    return t
  end
  if (file ~= nil) and (dig ~= nil) then return nil, "give only one of file and dig", "file" end
  if t.data ~= nil or t.digest ~= nil then
    return nil, "give only one of data, file and dig", file and "file" or "dig"
  end
  local fields = {}
  for k, v in pairs(t) do
    if not SOURCE_FIELDS[k] then fields[k] = v end
  end
  local b64, err, path
  if file ~= nil then
    if type(file) ~= "string" or file == "" then return nil, "file must be a path string", "file" end
    if alg ~= nil and type(alg) ~= "string" then return nil, "algorithm must be a string", "algorithm" end
    path = join(base_dir, file)
    b64, err = digest.file(path, alg)
  else
    if type(dig) ~= "string" or dig == "" then return nil, "dig must be the path of a .dig file", "dig" end
    if alg ~= nil then return nil, "algorithm goes with file, not dig (a .dig file holds its digest)", "algorithm" end
    path = join(base_dir, dig)
    b64, err = digest.dig_file(path)
  end
  if not b64 then return nil, err.message, err.field end
  fields.data = b64
  return fields, path
end

-- A JSON object's fields with JSON nulls dropped, or nil and a message.
local function object_fields(doc)
  if type(doc) ~= "table" then return nil, "expected a JSON object, got " .. type(doc) end
  if doc[1] ~= nil then return nil, "expected a JSON object, got an array" end
  local t = {}
  for k, v in pairs(doc) do
    if type(k) ~= "string" then return nil, "expected a JSON object, got an array" end
    if v ~= cjson.null and v ~= json.null then t[k] = v end
  end
  return t
end

local function merge(defaults, t)
  if not defaults then return t end
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(t) do out[k] = v end
  -- A line that names its own source replaces the defaults' one.
  if t.file ~= nil or t.dig ~= nil or t.data ~= nil then
    if t.file == nil then out.file = nil end
    if t.dig == nil then out.dig = nil end
    if t.data == nil then out.data = nil end
    if t.file == nil and t.algorithm == nil then out.algorithm = nil end
  end
  return out
end

-- One manifest line to a request; nil plus (message, field) when bad.
local function parse_line(text, base_dir, defaults)
  local ok, doc = pcall(json.decode, text)
  if not ok then
    local why = tostring(doc):gsub("^.-:%d+: ", "")
    return nil, "not valid JSON (" .. why .. ")"
  end
  local t, oerr = object_fields(doc)
  if not t then return nil, oerr end
  t = merge(defaults, t)
  local fields, path_or_err, field = resolve_source(t, base_dir)
  if not fields then return nil, path_or_err, field end
  local req, err = request.new(fields)
  if not req then
    local msg = err.message
    if msg:find("^unknown field") then msg = msg .. "; a manifest line may also use file (+ algorithm) or dig" end
    return nil, msg, err.field
  end
  return req, type(path_or_err) == "string" and path_or_err or nil
end

local Reader = {}
Reader.__index = Reader
Reader.__name = "prequalify.manifest"

function Reader:__call()
  local f = self.f
  if not f then return nil end
  while true do
    local lineno, text, why = self.lines()
    if not lineno then
      self:close()
      return nil
    end
    if text == nil then
      self.bad = self.bad + 1
      return false, line_error(self.name, lineno, why)
    end
    if lineno == 1 and text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
    if text:sub(-1) == "\r" then text = text:sub(1, -2) end
    if text:find("%S") then
      local req, extra, field = parse_line(text, self.base_dir, self.defaults)
      if req then
        self.good = self.good + 1
        return req, { line = lineno, source = self.name, file = extra }
      end
      self.bad = self.bad + 1
      return false, line_error(self.name, lineno, extra, { field = field })
    end
  end
end

--- Stop reading early and release the file. Idempotent.
function Reader:close()
  if self.f then
    self.f:close()
    self.f = nil
  end
end
Reader.__close = Reader.close
Reader.__gc = Reader.close

--- Number of non-blank lines (a separate pass, for progress and ETA).
function Reader:count()
  local f = io.open(self.path, "rb")
  if not f then return nil end
  local n = 0
  for _, text in chunked_lines(f, M.MAX_LINE) do
    if text == nil or text:find("%S") then n = n + 1 end
  end
  f:close()
  return n
end

function Reader:__tostring()
  return string.format("prequalify.manifest(%s, %d read, %d bad%s)", self.name, self.good, self.bad,
    self.f and "" or ", closed")
end

--- Open a JSON Lines manifest.
-- Each line is an object in the Lua field names of a request (`dn`, `data`,
-- `comment`, `user`, `hours`, `single_use`). Instead of `data` a line may
-- name `file` (an artifact to hash, with `algorithm`: sha256 (default),
-- sha384 or sha512) or `dig` (a signtool `.dig` file). Relative paths are
-- relative to the manifest's directory. Blank lines are skipped.
-- @tparam string path
-- @tparam[opt] table opts `defaults` (fields applied under every line, e.g.
--   a shared `dn` and `user`), `base_dir` (for relative paths), `max_line`
-- @return a reader, callable as an iterator (`for req, meta in reader`), with
--   `count()` and `close()`; or nil and an `invalid` error naming the path
function M.read(path, opts)
  if type(path) ~= "string" then error("prequalify.manifest.read: expected a path string, got " .. type(path), 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("prequalify.manifest.read: expected an options table, got " .. type(opts), 2)
  end
  opts = opts or {}
  local f, ferr = io.open(path, "rb")
  if not f then
    return nil, errors.new("invalid", "manifest " .. tostring(ferr), { field = "manifest", path = path })
  end
  local ok, probe, _, code = pcall(f.read, f, 0)
  if not ok or (probe == nil and code == 21) then
    f:close()
    return nil, errors.new("invalid", "manifest " .. path .. ": is a directory, not a file",
      { field = "manifest", path = path })
  end
  local self = setmetatable({
    f = f, path = path, name = path, base_dir = opts.base_dir or dirname(path),
    defaults = opts.defaults, good = 0, bad = 0,
  }, Reader)
  self.lines = chunked_lines(f, opts.max_line or M.MAX_LINE)
  return self
end

-- ---------------------------------------------------------------------------
-- Globs

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
