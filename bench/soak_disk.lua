--- Disk faults for bench/soak.lua: some batches write their journal to a
-- disk that fills up (spec/faultfs, preloaded), and are then resumed once
-- the space is "freed" (the journal moved out of the shim's reach).
--
-- The soak re-executes itself under the shim (`M.reexec`): the shim fails
-- every write to a file whose name ends in `-diskfull.jsonl` with ENOSPC
-- once `BUDGET` bytes went to that file, so that the batch stops midway with
-- intents on disk and done records refused.
local M = {}

M.SUFFIX = "-diskfull.jsonl"
M.BUDGET = 6000 -- bytes per journal: about a dozen records
M.SHARE = 0.15 -- the share of batches that meet a full disk

--- When the shim is not preloaded yet: run this same soak again under it
-- (stdout and the exit status pass through). Returns only when already
-- under the shim, or when the shim is not built (then nil and a reason).
function M.reexec(root, argv)
  if os.getenv("PQ_FAULT_PATH") then return true end
  local shim = root .. "/build/spec/faultfs/faultfs.so"
  local f = io.open(shim, "rb")
  if not f then return nil, "spec/faultfs is not built (" .. shim .. "): no disk faults" end
  f:close()
  local words = { "env", "LD_PRELOAD=" .. shim, "PQ_FAULT_PATH=" .. M.SUFFIX, "PQ_FAULT_OP=write",
                  "PQ_FAULT_ERRNO=ENOSPC", "PQ_FAULT_AFTER=" .. M.BUDGET, "lua5.4" }
  for i = 0, #argv do words[#words + 1] = argv[i] end
  for i, w in ipairs(words) do words[i] = "'" .. w:gsub("'", [['\'']]) .. "'" end
  local ok, how, code = os.execute(table.concat(words, " "))
  os.exit(ok and 0 or (how == "exit" and code or 1))
end

--- The journal of a round: on the full disk for a share of the rounds.
-- @return the path, and true when it is on the full disk
function M.journal(dir, enabled)
  if enabled and math.random() < M.SHARE then return dir .. "/journal" .. M.SUFFIX, true end
  return dir .. "/journal.jsonl", false
end

--- Space freed: the journal moves where the shim does not fail writes.
function M.free(path)
  local to = path:gsub(M.SUFFIX:gsub("%p", "%%%0") .. "$", "-freed.jsonl")
  assert(os.rename(path, to))
  return to
end

--- True for a resumed entry whose earlier run recorded an intent and no
-- outcome (its done record was refused): no done record is expected.
function M.intent_only(e)
  return e.outcome == "unknown" and e.error ~= nil
    and tostring(e.error.message):find("recorded an intent and no outcome", 1, true) ~= nil
end

return M
