--- `prequalify audit`: a batch report (or journal) reconciled with the
-- signing archive of its environments. Lists what was pre-qualified and
-- signed, never signed, signed more often than allowed, and signings that
-- no record of ours approved. Exit 1 when any of the last three (or an
-- archive entry without a data hash) shows up.
-- @module prequalify.cli.audit
local output = require "prequalify.cli.output"
local audit = require "prequalify.tickets.audit"

local M = {}

local EXIT = { OK = 0, FAILED = 1 }
local NAME = "audit"

--- Add the `audit` command to the parser.
function M.define(p, g)
  local cmd = g.new_command(p, "audit", "Reconcile what was approved with what was signed.",
    "Compare a batch report (or a batch or tickets decide journal) with the signing archive "
      .. "(Codesign/RetrieveArchiveEntries; scope codesign:manage) for the report's environments. "
      .. "Lists hashes pre-qualified and signed, pre-qualified and never signed, signed more often "
      .. "than allowed, and signings with no approval in the records. Says what it matched on.",
    "Exit codes: 0 nothing unexpected, 1 something to look at (or a call failed), 2 usage error.")
  cmd:option("--report"):argname("<file>"):description("The batch report JSON, or a journal (required).")
  cmd:option("--since"):argname("<time>")
    :description("Only archive entries after this time: ISO 8601 UTC or unix seconds.")
  g.connection(cmd)
  g.credentials(cmd)
  g.json_flag(cmd)
end

local function entry_text(e)
  return string.format("%s  %s  %s  %s%s", e.time and os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(e.time)) or "-",
    tostring(e.user_name or e.user), tostring(e.environment), output.short(e.artifact),
    e.machine and ("  on " .. tostring(e.machine)) or "")
end

local function group_text(g)
  return string.format("%s  %s  %s  signed %d of %s%s", output.short(g.data), tostring(g.user), tostring(g.dn),
    g.signings, g.allowed and tostring(g.allowed) or "unlimited", g.source ~= "pre-qualification"
      and ("  (" .. g.source .. ")") or "")
end

local function print_text(cx, r)
  cx:print("matched on: ", r.matched_on)
  local sections = {
    { "pre-qualified and signed", r.signed, group_text },
    { "pre-qualified and never signed", r.never_signed, group_text },
    { "signed more often than allowed", r.over_used, group_text },
    { "signings with no pre-qualification or ticket approval in our records", r.unexpected, entry_text },
    { "signings whose archive entry has no data hash (not matched, not guessed)", r.no_hash, entry_text },
  }
  for _, s in ipairs(sections) do
    cx:print(s[1], ": ", #s[2])
    for _, x in ipairs(s[2]) do cx:print("  ", s[3](x)) end
  end
  if #r.no_hash > 0 then
    cx:print("note: the archive lacks the data hash for ", #r.no_hash, " signing(s); hashes listed as never "
      .. "signed may be among them")
  end
  if r.failed_attempts > 0 then cx:print("failed signing attempts (not counted): ", r.failed_attempts) end
end

-- An archive entry for JSON output: every field but the wire object.
local function plain(list)
  local out = {}
  for i, e in ipairs(list) do
    local c = {}
    for k, v in pairs(e) do if k ~= "raw" then c[k] = v end end
    out[i] = c
  end
  return out
end

function M.run(args, cx)
  if not args.report then return cx:usage(NAME, "--report is required") end
  local s, code = cx:settings(args, NAME)
  if not s then return code end
  local approvals, rerr = audit.read(args.report)
  if not approvals then return cx:usage(NAME, "--report " .. rerr.message) end
  local client
  client, code = cx:client(args, s, NAME)
  if not client then return code end
  local dns = audit.environments(approvals)
  local filter = { since = args.since and (tonumber(args.since) or args.since) or nil }
  if #dns > 0 then filter.environments = dns end
  local entries, err = client:archive(filter)
  client:close()
  if not entries then
    if err.kind == "invalid" then return cx:usage(NAME, err.message) end
    return cx:fail(err)
  end
  local r = audit.reconcile(approvals, entries)
  if args.json then
    cx:print(output.json{ matched_on = r.matched_on, signed = r.signed, never_signed = r.never_signed,
      over_used = r.over_used, unexpected = plain(r.unexpected), no_hash = plain(r.no_hash),
      failed_attempts = r.failed_attempts, environments = dns })
  else
    print_text(cx, r)
  end
  return audit.unexpected(r) and EXIT.FAILED or EXIT.OK
end

return setmetatable(M, { __call = function(_, args, cx) return M.run(args, cx) end })
