--- Batch inputs: a JSON Lines manifest (one request per line) and a glob of
-- artifact files with a template. Both are streaming iterators: one line or
-- one file at a time, nothing accumulated, so memory stays flat however long
-- the input is. The JSON Lines reader is here; the glob walk is in
-- manifest/glob.lua, re-exported below.
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
local glob = require "prequalify.manifest.glob"

local M = {}

local json = cjson.new()
json.decode_max_depth(8)

--- Longest accepted manifest line, in bytes (a request is a few hundred).
M.MAX_LINE = 64 * 1024
local CHUNK = 64 * 1024

-- Fields a manifest line (or a template) may hold besides the request's own.
local SOURCE_FIELDS = { file = true, algorithm = true, dig = true }

local dirname, join = paths.dirname, paths.join

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

-- Globs of artifact files (manifest/glob.lua), under this module's names.
M.files, M.glob, M.count_files = glob.files, glob.glob, glob.count_files

return M
