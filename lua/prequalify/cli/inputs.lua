--- The items of `batch` and `plan`: a manifest and/or globs of artifacts,
-- chained into one streaming source (nothing is read ahead), with the
-- request fields from options, environment and config as defaults.
-- @module prequalify.cli.inputs
local manifest = require "prequalify.manifest"
local paths = require "prequalify.paths"
local request = require "prequalify.request"

local M = {}

-- The request fields for every item: only those that are set.
local function template(s, args)
  local t = s:template()
  t.algorithm = args.algorithm or s:get("algorithm")
  return t
end

-- Stand-ins for the fields a template leaves to the manifest's lines, so
-- that the template's own fields can be checked once, up front.
local STAND_IN = { dn = [[\VED\Policy]], user = "local:prequalify", comment = "prequalify",
                   data = ("A"):rep(43) .. "=" }

-- Whether the fields from options, environment and config make a valid
-- request; otherwise a message naming where the bad value came from (a bad
-- PREQUALIFY_HOURS is one usage error, not one failure per item).
local function check_template(t, s)
  local fields = {}
  for k, v in pairs(STAND_IN) do fields[k] = v end
  for _, k in ipairs{ "dn", "user", "hours", "single_use" } do fields[k] = t[k] end
  fields.dn, fields.user = fields.dn or STAND_IN.dn, fields.user or STAND_IN.user
  if t.comment then fields.comment = paths.expand_comment(t.comment, "dist/artifact") end
  local req, err = request.new(fields)
  if req then return true end
  return nil, s:explain(err)
end

--- Build the source.
-- @param args parsed options (`manifest`, `files`, `dig_files`, `algorithm`)
-- @param s settings
-- @return a callable source yielding `req, meta` or `false, err`, with
--   `count()`; or nil and a usage message
function M.open(args, s)
  local files, digs = args.files or {}, args.dig_files or {}
  if not args.manifest and #files == 0 and #digs == 0 then
    return nil, "give a manifest file, --files GLOB or --dig-files GLOB"
  end
  local t = template(s, args)
  local valid, terr = check_template(t, s)
  if not valid then return nil, terr end
  local parts = {}
  if args.manifest then
    local defaults = {}
    for k, v in pairs(t) do defaults[k] = v end
    local reader, err = manifest.read(args.manifest, { defaults = defaults })
    if not reader then return nil, err.message end
    parts[#parts + 1] = { iter = reader, count = function() return reader:count() end }
  end
  if #files > 0 or #digs > 0 then
    for _, k in ipairs{ "dn", "user", "comment" } do
      if not t[k] then
        return nil, "--" .. k .. " is required with --files and --dig-files (or set PREQUALIFY_"
          .. k:upper() .. " or '" .. k .. "' in the config file)"
      end
    end
  end
  local function glob_part(pattern, dig)
    local tmpl = { dn = t.dn, user = t.user, comment = t.comment, hours = t.hours, single_use = t.single_use }
    if dig then tmpl.dig = true else tmpl.algorithm = t.algorithm end
    local iter, err = manifest.glob(pattern, tmpl)
    if not iter then return nil, err.message end
    parts[#parts + 1] = { iter = iter, count = function() return manifest.count_files(pattern) end }
    return true
  end
  for _, g in ipairs(files) do
    local ok, err = glob_part(g, false)
    if not ok then return nil, err end
  end
  for _, g in ipairs(digs) do
    local ok, err = glob_part(g, true)
    if not ok then return nil, err end
  end

  local i = 1
  local source = setmetatable({}, {
    __name = "prequalify.cli.inputs",
    __call = function()
      while parts[i] do
        local v, meta = parts[i].iter()
        if v ~= nil then return v, meta end
        i = i + 1
      end
      return nil
    end,
  })
  --- Items in all inputs (a separate pass; nothing is hashed).
  function source.count()
    local n = 0
    for _, part in ipairs(parts) do n = n + (part.count() or 0) end
    return n
  end
  return source
end

return M
