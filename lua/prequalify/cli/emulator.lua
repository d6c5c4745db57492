--- `prequalify emulator`: runs the local TPP emulator (python3) in the
-- foreground. Found beside the source tree (emulator/tpp_emulator.py), where
-- CMake installs it (<prefix>/share/prequalify/emulator), or at
-- $PREQUALIFY_EMULATOR.
-- @module prequalify.cli.emulator

local core = require "prequalify.core"

local M = {}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Candidate locations of tpp_emulator.py for a script at `script`.
function M.candidates(script, getenv)
  local list = {}
  local env = getenv("PREQUALIFY_EMULATOR")
  if env and env ~= "" then list[#list + 1] = env end
  local bindir = script and script:match("^(.*)/[^/]*$")
  if bindir then
    list[#list + 1] = bindir .. "/../emulator/tpp_emulator.py"
    list[#list + 1] = bindir .. "/../share/prequalify/emulator/tpp_emulator.py"
  end
  return list
end

--- The emulator script, or nil and the places looked at.
function M.find(script, getenv)
  local list = M.candidates(script, getenv)
  for _, p in ipairs(list) do
    if exists(p) then return p end
  end
  return nil, list
end

function M.run(args, cx)
  local path, looked = M.find(cx.script, cx.getenv)
  if not path then
    return cx:fail("the emulator (tpp_emulator.py) was not found; looked at: " .. table.concat(looked, ", ")
      .. " (set PREQUALIFY_EMULATOR to its path)")
  end
  local python = cx.getenv("PYTHON")
  if not python or python == "" then python = "python3" end
  local argv = { python, path, "--port", tostring(args.port or 0) }
  local function add(...) for _, a in ipairs{ ... } do argv[#argv + 1] = tostring(a) end end
  if args.host then add("--host", args.host) end
  if args.state then add("--state", args.state) end
  if args.http then add("--http") end
  if args.control then add("--control") end
  if args.verbose then add("--verbose") end
  if args.max_lifetime then add("--max-lifetime", args.max_lifetime) end
  cx.out:flush()
  io.stderr:flush()
  -- Python takes this process's place: SIGTERM or Ctrl-C sent to the pid the
  -- user started reaches the emulator (which exits cleanly), and there is no
  -- child to leave behind. exec returns only when python could not start.
  local _, err = core.exec(argv)
  return cx:fail(err .. " (is python3 installed? set PYTHON to its path)")
end

-- Called as a command: `require("prequalify.cli.emulator")(args, cx)`.
return setmetatable(M, { __call = function(_, args, cx) return M.run(args, cx) end })
