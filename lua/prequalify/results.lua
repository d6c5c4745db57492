--- Sign result codes (`Result` in TPP replies), from the WebSDK contract's enum.
-- @module prequalify.results
local M = {}

--- Code → name.
M.names = {
  [0] = "None", [1] = "Success", [2] = "InsufficientPermission", [3] = "CreateFailure",
  [4] = "UpdateFailure", [5] = "DeleteFailure", [6] = "RenameFailure", [7] = "ObjectNotFound",
  [8] = "IncorrectObjectType", [9] = "ObjectHasChildren", [10] = "AssignPermissionFailure",
  [11] = "RelatedObjectNotSaved", [12] = "RemoteError", [13] = "NotImplemented",
  [14] = "UnhandledException", [15] = "FailedToLoadObject",
  [1000] = "AssignProjectPermissionFailure", [1001] = "DuplicateUserAssignment",
  [1002] = "UserNotFound",
  [2000] = "ObjectInGroup", [2001] = "ObjectNotInGroup", [2002] = "ObjectAlreadyExists",
  [3000] = "EnvironmentMoveRestricted", [3001] = "ValueProhibitedByTemplate",
  [3002] = "KeyAccessFailure", [3003] = "QueryFailure", [3004] = "ImportFailure",
  [3005] = "ObjectsPending",
}

--- Name → code.
M.codes = {}
for code, name in pairs(M.names) do M.codes[name] = code end

--- The name of a code; unknown codes are named by number ("Unknown(4242)").
function M.name(code)
  if math.type(code) ~= "integer" then
    local i = math.tointeger(code)
    if not i then return "Unknown(" .. tostring(code) .. ")" end
    code = i
  end
  return M.names[code] or ("Unknown(" .. code .. ")")
end

return M
