--- `prequalify plan`: the decisions a batch would make, with their trails.
-- Streams the inputs through the policy with one shared context (as a batch
-- does, so `unique` and `rate_limit` see earlier items); no network. A later
-- copy of an item's identity (DN in any letter case, data, user) is marked
-- `duplicate of item N`, as a batch skips it, before the policy sees it.
-- @module prequalify.cli.plan
local common = require "prequalify.cli.common"
local inputs = require "prequalify.cli.inputs"
local output = require "prequalify.cli.output"

local EXIT = common.EXIT
local NAME = "plan"

return function(args, cx)
  local p, code = common.preamble(args, cx, NAME, { check = function(s) return inputs.open(args, s) end,
    client = false })
  if not p then return code end
  local source, pol = p.input, p.policy
  local policy = require "prequalify.policy"
  if not pol then
    pol = policy.rule("no policy", function()
      return true, "no --policy given: a batch sends every valid request"
    end)
  end

  local counts = { total = 0, allow = 0, deny = 0, invalid = 0, duplicate = 0, unusual_length = 0 }
  local ctx, ids = {}, require("prequalify.core").idset()
  if args.json then cx.out:write('{"items":[') end
  local index = 0
  for req, meta in source do
    index = index + 1
    counts.total = counts.total + 1
    local item = { index = index }
    local first = req ~= false and ids:claim(req, index)
    if req == false then
      local err = meta
      counts.invalid = counts.invalid + 1
      item.file, item.line, item.source = err.file or err.path, err.line, err.source
      item.verdict, item.allow, item.reason = "invalid", false, err.message
    elseif first then
      if type(meta) == "table" then item.file, item.line, item.source = meta.file, meta.line, meta.source end
      counts.duplicate = counts.duplicate + 1
      item.verdict, item.allow, item.reason = "duplicate", false, "duplicate of item " .. first
      item.request = output.request_summary(req)
    else
      if type(meta) == "table" then item.file, item.line, item.source = meta.file, meta.line, meta.source end
      local d = policy.evaluate(pol, req, ctx)
      item.allow, item.verdict, item.reason, item.trail = d.allow, d.verdict, d.reason, d.trail
      item.request = output.request_summary(req)
      item.warning = output.length_warning(req)
      if item.warning then counts.unusual_length = counts.unusual_length + 1 end
      if d.verdict == "adjust" then item.sent = output.request_summary(d.request) end
      if d.allow then counts.allow = counts.allow + 1 else counts.deny = counts.deny + 1 end
    end
    if args.json then
      cx.out:write(index > 1 and ",\n" or "\n", output.json{
        index = item.index, item = output.label(item), file = item.file, line = item.line,
        allow = item.allow, verdict = item.verdict, reason = item.reason, request = item.request,
        sent = item.sent, trail = output.trail(item.trail), warning = item.warning,
      })
    elseif item.verdict == "invalid" then
      cx:print("INVALID ", item.reason)
    elseif item.verdict == "duplicate" then
      cx:print("SKIP  ", output.label(item), "  ", item.reason, " (sent once)")
    else
      local r = item.request
      local head = item.allow and (item.verdict == "adjust" and "ALLOW (adjusted)" or "ALLOW") or "DENY"
      cx:print(head, "  ", output.label(item), "  ", r.algorithm or (tostring(r.digest_length) .. "-byte"), " ",
        output.short(r.data))
      if item.warning then cx:print("  warning: ", item.warning) end
      for _, line in ipairs(output.trail_lines(item.trail)) do cx:print(line) end
    end
  end
  if args.json then
    cx.out:write("\n],", '"counts":', output.json(counts), ',"sent":false}\n')
  else
    cx:print(string.format("plan: %d item%s: %d allow, %d deny, %d invalid, %d duplicate (nothing was sent)",
      counts.total, counts.total == 1 and "" or "s", counts.allow, counts.deny, counts.invalid, counts.duplicate))
  end
  if counts.unusual_length > 0 then
    cx:warn(string.format("%d item%s with data of no known digest length (see the warnings above)",
      counts.unusual_length, counts.unusual_length == 1 and "" or "s"))
  end
  if counts.total == 0 then
    cx:warn("the inputs held no items")
    return EXIT.FAILED
  end
  return (counts.deny == 0 and counts.invalid == 0) and EXIT.OK or EXIT.FAILED
end
