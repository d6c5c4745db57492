--- `prequalify emulator`: runs the local TPP emulator (python3) in the
-- foreground. Found beside the source tree (emulator/tpp_emulator.py), where
-- CMake installs it (<prefix>/share/prequalify/emulator), or at
-- $PREQUALIFY_EMULATOR.
-- @module prequalify.cli.emulator

local M = {}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function q(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
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
  local argv = { q(python), q(path), "--port", q(args.port or 0) }
  if args.host then argv[#argv + 1] = "--host " .. q(args.host) end
  if args.state then argv[#argv + 1] = "--state " .. q(args.state) end
  if args.http then argv[#argv + 1] = "--http" end
  if args.control then argv[#argv + 1] = "--control" end
  if args.verbose then argv[#argv + 1] = "--verbose" end
  if args.max_lifetime then argv[#argv + 1] = "--max-lifetime " .. q(args.max_lifetime) end
  cx.out:flush()
  -- os.execute waits with SIGINT ignored, so Ctrl-C stops the emulator
  -- (which exits cleanly) and not this process.
  local ok, how, code = os.execute("exec " .. table.concat(argv, " "))
  if ok then return 0 end
  if how == "exit" and code == 127 then
    return cx:fail("cannot run " .. python .. ": is python3 installed?")
  end
  if how == "signal" then return 128 + code end
  return code
end

-- Called as a command: `require("prequalify.cli.emulator")(args, cx)`.
return setmetatable(M, { __call = function(_, args, cx) return M.run(args, cx) end })
