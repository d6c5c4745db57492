--- `prequalify submit`: one pre-qualification from the command line.
-- @module prequalify.cli.submit
local common = require "prequalify.cli.common"
local output = require "prequalify.cli.output"

local EXIT = common.EXIT
local NAME = "submit"

-- Fields of the request, or nil and a usage message.
local function fields_from(args, s)
  local digest = require "prequalify.digest"
  local t = s:template()
  local what
  if args.data then
    t.data, what = args.data, output.short(args.data)
    if args.algorithm then return nil, "--algorithm goes with --file" end
  elseif args.file then
    local b64, err = digest.file(args.file, args.algorithm or s:get("algorithm"))
    if not b64 then return nil, "--file: " .. err.message end
    t.data, what = b64, args.file
  elseif args.dig then
    if args.algorithm then return nil, "--algorithm goes with --file, not --dig (a .dig file holds its digest)" end
    local b64, err = digest.dig_file(args.dig)
    if not b64 then return nil, "--dig: " .. err.message end
    t.data, what = b64, args.dig
  else
    return nil, "give the hash: --data BASE64, --file PATH or --dig PATH"
  end
  for _, k in ipairs{ "dn", "user", "comment" } do
    if not t[k] then
      return nil, "--" .. k .. " is required (or set PREQUALIFY_" .. k:upper() .. " or '" .. k
        .. "' in the config file)"
    end
  end
  t.comment = common.expand_comment(t.comment, args.file or args.dig)
  return t, what
end

local function result_json(outcome, what, req, res, err, trail)
  local doc = { outcome = outcome, ok = outcome == "approved", item = what,
                request = output.request_summary(req), trail = output.trail(trail) }
  if res then
    doc.status, doc.result, doc.result_name, doc.attempts, doc.elapsed =
      res.status, res.result, res.result_name, res.attempts, res.elapsed
  end
  if err then
    doc.error = output.error_summary(err)
    doc.status, doc.result, doc.result_name, doc.attempts = err.status, err.result, err.result_name, err.attempts
  end
  return doc
end

-- The validated request and how to name it, or nil and a usage message
-- that names where the bad value came from.
local function request_from(args, s)
  local t, what = fields_from(args, s)
  if not t then return nil, what end
  local req, verr = require("prequalify").request(t)
  if req then return { req = req, what = what } end
  if verr.field == "data" then return nil, (args.data and "--data: " or "") .. verr.message end
  return nil, s:explain(verr)
end

return function(args, cx)
  local p, code = common.preamble(args, cx, NAME, { check = function(s) return request_from(args, s) end })
  if not p then return code end
  local req, what, pol, client = p.input.req, p.input.what, p.policy, p.client
  local unusual = output.length_warning(req)
  if unusual then cx:warn(unusual) end

  local res, err = client:prequalify(req, { policy = pol, retry_unknown = args.retry_unknown or nil })
  client:close()
  local outcome
  if res then
    outcome = "approved"
  elseif err.kind == "policy" then
    outcome = "denied"
  elseif err.outcome == "unknown" then
    outcome = "unknown"
  else
    outcome = "failed"
  end
  local trail, sent
  if res then trail, sent = res.trail, res.request else trail, sent = err.trail, err.request end
  sent = sent or req

  if args.json then
    cx:print(output.json(result_json(outcome, what, sent, res, err, trail)))
  elseif res then
    cx:print(string.format("approved  %s  %s %s  (Result %s %s, %d attempt%s, %.2f s)", what,
      sent.algorithm or (sent.digest_length .. "-byte"), sent.data, tostring(res.result),
      res.result_name or "", res.attempts or 1, (res.attempts or 1) == 1 and "" or "s", res.elapsed or 0))
  elseif outcome == "denied" then
    cx:print("denied  ", what, "  ", err.message)
    for _, line in ipairs(output.trail_lines(trail)) do cx:print(line) end
  elseif outcome == "unknown" then
    cx:print("unknown  ", what, "  ", tostring(err.message))
    cx:print("  the request was sent but no usable reply came back: the server may have pre-qualified it. "
      .. "It was not resent; check before retrying (--retry-unknown resends).")
  else
    cx:print("failed  ", what, "  ", cx:failure(err))
  end
  if outcome == "approved" then return EXIT.OK end
  if outcome == "unknown" then return EXIT.UNKNOWN end
  return EXIT.FAILED
end
