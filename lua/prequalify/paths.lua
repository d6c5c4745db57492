--- Path helpers shared by the manifest, the globs and the command line:
-- the directory of a path, a path relative to a directory, and the
-- `{name}`, `{path}`, `{dir}` placeholders of a comment template.
-- @module prequalify.paths
local M = {}

--- The directory part of a path (`"."` when it has none).
-- @tparam string path
-- @treturn string
function M.dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- `path` relative to `dir`, unless it is absolute (or `dir` is `"."`).
-- @tparam string dir
-- @tparam string path
-- @treturn string
function M.join(dir, path)
  if path:sub(1, 1) == "/" or dir == "." or dir == "" then return path end
  return dir .. "/" .. path
end

--- A comment for the artifact at `path`: `{path}`, `{name}` (the file
-- name) and `{dir}` (its directory) are replaced; other braces stay.
-- @tparam string|function|nil comment a template, or a function of the path
--   that returns the comment
-- @tparam[opt] string path the artifact; without one the comment is returned as is
-- @return the comment
function M.expand_comment(comment, path)
  if not path then return comment end
  if type(comment) == "function" then return comment(path) end
  if type(comment) ~= "string" then return comment end
  return (comment:gsub("{(%a+)}", function(k)
    if k == "path" then return path end
    if k == "name" then return path:match("([^/]+)$") end
    if k == "dir" then return M.dirname(path) end
    return nil
  end))
end

return M
