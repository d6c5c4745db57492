--- `prequalify batch`: many pre-qualifications through `client:batch`, with
-- progress on stderr and the report (a summary, or JSON) on stdout.
-- @module prequalify.cli.batch
local common = require "prequalify.cli.common"
local inputs = require "prequalify.cli.inputs"
local output = require "prequalify.cli.output"

local NAME = "batch"

--- Items listed under the summary at most (the JSON report has them all).
local MAX_LISTED = 25

local PROGRESS = { auto = true, tty = "tty", plain = "plain", off = false }

-- Copies the JSON report, one entry per line, unescaping '/' as output.json does.
local function copy_report(path, out)
  local f = io.open(path, "rb")
  if not f then return false end
  for line in f:lines("L") do out:write((line:gsub("\\/", "/"))) end
  f:close()
  return true
end

local function print_summary(cx, rep)
  cx:print(rep:summary())
  local listed, more = 0, 0
  for e in rep:entries() do
    if e.outcome ~= "approved" and not (e.outcome == "skipped" and e.reason and e.reason:find("^duplicate")) then
      if listed < MAX_LISTED then
        if listed == 0 then cx:print("not approved:") end
        listed = listed + 1
        local label = output.label(e)
        local why = e.error and cx:failure(e.error.message) or e.reason or ""
        if why:sub(1, #label + 2) == label .. ": " then why = why:sub(#label + 3) end
        cx:print(string.format("  %-8s %s  %s", e.outcome, label, why))
      else
        more = more + 1
      end
    end
  end
  if more > 0 then cx:print("  ... and ", more, " more (see --report or --json)") end
  if rep.journal then cx:print("journal: ", rep.journal) end
end

-- --retry-unknown: true, or the set of keys and input lines it names; nil
-- and a message for a name that is neither.
local function retry_unknown(value)
  if value == nil then return false end
  if #value == 0 then return true end
  local set = {}
  for name in value[1]:gmatch("[^,%s]+") do
    local line = math.tointeger(tonumber(name))
    if line and line > 0 then
      set[line] = true
    elseif #name == 43 and not name:find("[^%w+/]") then
      set[name] = true
    else
      return nil, "--retry-unknown takes keys or input lines joined by commas (--retry-unknown=KEY,LINE), "
        .. "as 'prequalify journal list FILE --unknown' shows them; got '" .. name .. "'"
    end
  end
  return set
end

return function(args, cx)
  local retry, rerr = retry_unknown(args.retry_unknown)
  if retry == nil then return cx:usage(NAME, rerr) end
  local p, code = common.preamble(args, cx, NAME, { check = function(s) return inputs.open(args, s) end })
  if not p then return code end
  local s, source, pol, client = p.settings, p.input, p.policy, p.client

  local rep, err = client:batch(source, {
    concurrency = args.concurrency or s:get("concurrency"),
    policy = pol,
    journal = args.journal,
    report = args.report,
    audit = args.audit,
    trails = args.trails or false,
    retry_unknown = retry,
    allow_reapproval = args.allow_reapproval or false,
    retry_failed = args.retry_failed or false,
    deadline = args.deadline,
    progress = PROGRESS[args.progress or "auto"],
  })
  client:close()
  if not rep then return cx:usage(NAME, tostring(err.message)) end

  if args.json then
    local path = args.report
    local tmp
    if not path or rep.report_error then
      tmp = os.tmpname()
      local ok, werr = rep:write_json(tmp)
      if not ok then
        -- No report on stdout: a run whose report is lost exits 4 at least.
        os.remove(tmp .. ".tmp")
        rep.report_error = werr
        cx:warn(werr)
        path = nil
      else
        path = tmp
      end
    end
    if path then copy_report(path, cx.out) end
    if tmp then os.remove(tmp) end
  else
    print_summary(cx, rep)
  end
  if rep.counts.total == 0 then cx:warn("the inputs held no items: nothing was pre-qualified") end
  rep:close()
  return rep:exit_code()
end
