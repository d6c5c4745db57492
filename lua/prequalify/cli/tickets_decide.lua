--- `prequalify tickets decide`: every pending ticket through the policy,
-- each decision and its trail printed as it is made (or one JSON report with
-- --json), optionally over and over with --watch until SIGINT or SIGTERM.
-- @module prequalify.cli.tickets_decide
local core = require "prequalify.core"
local output = require "prequalify.cli.output"
local decide = require "prequalify.tickets.decide"

--- Longest wait between checks for a signal while watching (seconds).
local STEP = 0.2

local function print_entry(cx, e)
  local label = e.outcome == "dry_run" and ("would " .. tostring(e.decision)) or e.outcome
  cx:print(string.format("%-14s %s  %s  %s", label, tostring(e.id), e.user or "(user ?)", e.dn or "(environment ?)"))
  if e.note then cx:print("    note: ", e.note) end
  local why = e.error and e.error.message or e.reason
  if why then cx:print("    ", why) end
  for _, t in ipairs(e.trail or {}) do
    cx:print(string.format("      %-6s %s%s: %s", t.verdict, string.rep("  ", t.depth or 0), t.rule, t.reason))
  end
  cx.out:flush()
end

local function summary(counts, dry)
  if dry then
    return string.format("dry run: would approve %d, would reject %d; skipped %d (nothing was sent)",
      counts.would_approve, counts.would_reject, counts.skipped)
  end
  return string.format("approved %d, rejected %d, failed %d, unknown %d, skipped %d",
    counts.approved, counts.rejected, counts.failed, counts.unknown, counts.skipped)
end

return function(args, cx, client, pol, EXIT)
  local signals = core.signals_install()
  local stop = false
  local function stopping()
    if signals and not stop and core.signals_pending() > 0 then stop = true end
    return stop
  end
  local d, err = decide.new(client, pol, {
    dry_run = args.dry_run or false, journal = args.journal, final = args.final or false, stop = stopping,
    on_entry = not args.json and function(e) print_entry(cx, e) end or nil,
  })
  if not d then
    if signals then core.signals_restore() end
    return cx:usage("tickets decide", err.message)
  end
  local entries, failure = {}, nil
  while true do
    local got, perr = d:pass()
    if not got then
      failure = perr
      break
    end
    for _, e in ipairs(got) do entries[#entries + 1] = e end
    if not args.watch or stopping() then break end
    local waited = 0
    while waited < args.watch and not stopping() do
      core.sleep(STEP)
      waited = waited + STEP
    end
    if stopping() then break end
  end
  d:close()
  if signals then core.signals_restore() end

  local report = { entries = entries, counts = d.counts, dry_run = args.dry_run or false,
                   interrupted = d.interrupted or false }
  if args.report then
    local ok, werr = core.write_file_atomic(args.report, output.json(report) .. "\n", 420)
    if not ok then cx:warn("--report " .. args.report .. ": " .. tostring(werr)) end
  end
  if args.json then cx:print(output.json(report)) else cx:print(summary(d.counts, args.dry_run)) end
  if failure then cx:fail(failure) end
  if d.interrupted then return EXIT.INTERRUPTED end
  if d.counts.unknown > 0 or (failure and failure.outcome == "unknown") then return EXIT.UNKNOWN end
  if d.counts.failed > 0 or failure then return EXIT.FAILED end
  return EXIT.OK
end
