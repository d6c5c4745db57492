--- `prequalify journal`: the items of a batch journal, and what the user
-- verified of those whose outcome is unknown. `list FILE [--unknown]` shows
-- key, input line, hash and outcome; `resolve FILE KEY|LINE... --as
-- approved|not-sent --note TEXT` records the verified outcome (through
-- `journal.open(path):resolve`). Nothing is sent; no credentials are read.
-- @module prequalify.cli.journal

-- prequalify.journal (and the C core) is loaded when a command runs: the
-- grammar is also read at build time (manpage, completions), without the core.
local function journal() return require "prequalify.journal" end
local output = require "prequalify.cli.output"
local EXIT = require("prequalify.results").EXIT

local M = {}

local NAME = "journal"

--- Add the `journal` command to the parser.
function M.define(p, g)
  local cmd = g.new_command(p, NAME, "List a batch journal's items; resolve unknown ones.",
    "Work with a batch journal (--journal). 'list' shows each item's key, input line, hash and "
      .. "outcome. 'resolve' records what you verified of an item whose outcome is unknown (sent, no "
      .. "usable reply): 'approved' (the server has it: it is never resent) or 'not-sent' (the next run "
      .. "sends it). Nothing is sent. Stop the batch first: the journal is locked while it runs.",
    "Exit codes: 0 done (list: no item is unknown), 1 an item is unknown (list) or cannot be resolved, "
      .. "2 usage error.")
  cmd:command_target("journal_command")
  local list = g.new_command(cmd, "list", "Show the items of a journal.",
    "Show key, input line, hash (Data) and outcome of each item, in the order the journal first "
      .. "recorded them.")
  list:argument("file"):argname("<journal>"):description("The journal file.")
  list:flag("--unknown"):description("Only the items whose outcome is unknown.")
  g.json_flag(list)
  local resolve = g.new_command(cmd, "resolve", "Record the verified outcome of unknown items.",
    "Record, for each item named by its key or its input line (see 'list'), that it was verified "
      .. "as approved or as not sent, with a note saying how. Then a plain re-run reports the approved "
      .. "ones and sends the not-sent ones; --retry-unknown=KEY,LINE resends chosen ones instead.")
  resolve:argument("file"):argname("<journal>"):description("The journal file.")
  resolve:argument("items"):argname("<key|line>"):args("+"):description("Keys or input line numbers.")
  resolve:option("--as"):argname("<outcome>"):choices{ "approved", "not-sent" }
    :description("What you verified: approved or not-sent (required).")
  resolve:option("--note"):argname("<text>"):description("How it was verified (required; kept in the journal).")
end

-- The items named by keys or input lines; nil and a message for a name
-- that matches none (or a line that matches several).
local function named(items, names)
  local by_key, by_line = {}, {}
  for _, it in ipairs(items) do
    by_key[it.key] = it
    if it.line then
      local l = math.tointeger(it.line)
      by_line[l] = by_line[l] and false or it
    end
  end
  local out = {}
  for _, n in ipairs(names) do
    local line = math.tointeger(tonumber(n))
    local it = by_key[n] or (line and by_line[line])
    if it == false then return nil, "line " .. n .. " names several items (several input files): give the key" end
    if not it then return nil, "no item with key or input line '" .. n .. "' in the journal" end
    out[#out + 1] = it
  end
  return out
end

local function list_cmd(args, cx, items)
  local unknown = 0
  local shown = {}
  for _, it in ipairs(items) do
    if it.outcome == "unknown" then unknown = unknown + 1 end
    if not args.unknown or it.outcome == "unknown" then shown[#shown + 1] = it end
  end
  if args.json then
    cx.out:write(output.json{ items = shown, unknown = unknown, total = #items }, "\n")
  else
    for _, it in ipairs(shown) do
      cx:print(string.format("%s  %-6s  %s  %s%s", it.key, it.line and tostring(math.tointeger(it.line)) or "-",
        it.data and output.short(it.data) or "-", it.outcome, it.note and ("  (" .. it.note .. ")") or ""))
    end
    cx:print(string.format("%d item%s, %d unknown", #items, #items == 1 and "" or "s", unknown))
  end
  return unknown > 0 and EXIT.FAILED or EXIT.OK
end

local function resolve_cmd(args, cx, items)
  local cmd = NAME .. " resolve"
  if not args.as then return cx:usage(cmd, "--as approved|not-sent is required") end
  if not args.note or not args.note:find("%S") then
    return cx:usage(cmd, "--note is required: say how the outcome was verified")
  end
  local chosen, msg = named(items, args.items)
  if not chosen then return cx:usage(cmd, msg) end
  local j, err = journal().open(args.file)
  if not j then return cx:fail(err.message) end
  local code = EXIT.OK
  for _, it in ipairs(chosen) do
    local ok, rerr = j:resolve(it.key, args.as, args.note)
    if ok then
      cx:print("resolved ", it.key, it.line and (" (line " .. math.tointeger(it.line) .. ")") or "", " as ", args.as)
    else
      code = cx:fail(rerr.message)
    end
  end
  local ok, cerr = j:close()
  if not ok then return cx:fail(cerr.message) end
  return code
end

--- Run `prequalify journal ...`.
function M.run(args, cx)
  local f = io.open(args.file, "rb")
  if not f then return cx:usage(NAME .. " " .. args.journal_command, "cannot read journal " .. args.file) end
  f:close()
  local items = journal().items(args.file)
  if args.journal_command == "list" then return list_cmd(args, cx, items) end
  return resolve_cmd(args, cx, items)
end

return setmetatable(M, { __call = function(_, args, cx) return M.run(args, cx) end })
