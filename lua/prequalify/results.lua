--- Sign result codes (`Result` in TPP replies), from the WebSDK contract's
-- enum; and the exit codes a run maps to (`report:exit_code()`, the CLI).
-- @module prequalify.results
local M = {}

--- Exit codes of a run: the command line exits with these, and
-- `report:exit_code()` maps a batch report to them (docs/CLI.md, "Exit codes").
-- @table EXIT
-- @field OK 0: every item was approved (the command succeeded)
-- @field FAILED 1: something was denied by the policy or failed; nothing was left unknown
-- @field USAGE 2: a bad option, setting or input; nothing was sent
-- @field UNKNOWN 3: a request was sent without a usable reply; the server may have acted
-- @field INCOMPLETE 4: the run stopped before it reached every item (deadline,
--   rejected credentials, a journal that could not be written); resume it
-- @field INTERRUPTED 130: stopped by SIGINT or SIGTERM after in-flight requests finished
M.EXIT = { OK = 0, FAILED = 1, USAGE = 2, UNKNOWN = 3, INCOMPLETE = 4, INTERRUPTED = 130 }

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
