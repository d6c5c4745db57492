--- `prequalify tickets list|approve|reject|decide`: Flow tickets (pending
-- key-use requests) listed, approved, rejected, or decided by a policy.
-- See docs/TICKETS.md.
-- @module prequalify.cli.tickets
local output = require "prequalify.cli.output"
local wire = require "prequalify.tickets.wire"

local M = {}

-- Exit codes (docs/CLI.md; the consolidated table is cli/common.lua's once it exists).
local EXIT = { OK = 0, FAILED = 1, USAGE = 2, UNKNOWN = 3, INTERRUPTED = 130 }
local NAME = "tickets"

--- Add the `tickets` command and its subcommands to the parser.
-- @param p the top parser
-- @param g the grammar helpers of `prequalify.cli.parser`
function M.define(p, g)
  local cmd = g.new_command(p, "tickets", "List, approve, reject or decide Flow tickets.",
    "Flow tickets are key-use requests that wait for an approver: a signing in an environment "
      .. "whose flow needs approval, with no pre-qualification for it. See docs/TICKETS.md.",
    "Exit codes: 0 done (decide: every ticket decided as the policy said), 1 a call failed, "
      .. "2 usage error, 3 an outcome is unknown (not resent), 130 interrupted.")
  cmd:command_target("tickets_command")
  local function common(c)
    g.connection(c)
    g.credentials(c)
    g.json_flag(c)
  end
  local list = g.new_command(cmd, "list", "List pending (or approved) tickets.",
    "List every pending ticket, following the pages; --approved lists approved ones.")
  list:flag("--approved"):description("List approved tickets instead of pending ones.")
  list:option("--product-code"):argname("<n>"):convert(g.integer_of("--product-code", 0))
    :description("ProductCode: 1610743809 (code-signing key use, the default); 0 for all.")
  common(list)
  local approve = g.new_command(cmd, "approve", "Approve tickets.", "Approve the tickets named (one call).")
  approve:argument("ids"):argname("<id>"):args("+"):description("Ticket ids.")
  approve:option("--comment"):argname("<text>"):description("The approver's reason (required).")
  approve:option("--uses"):argname("<n>"):convert(g.integer_of("--uses", 1))
    :description("How many signings the approval allows (default: unlimited).")
  approve:option("--expires"):argname("<time>")
    :description("When the approval ends: ISO 8601 UTC (2026-12-31T18:00:00Z) or unix seconds.")
  common(approve)
  local reject = g.new_command(cmd, "reject", "Reject tickets.",
    "Reject the tickets named (one call). Without --final the requester may fix and retry.")
  reject:argument("ids"):argname("<id>"):args("+"):description("Ticket ids.")
  reject:option("--comment"):argname("<text>"):description("The approver's reason (required).")
  reject:flag("--final"):description("A final rejection (RejectionLevel 2) instead of retry (1).")
  common(reject)
  local decide = g.new_command(cmd, "decide", "Approve or reject every pending ticket by a policy.",
    "Run every pending ticket through the policy (the same file that decides pre-qualifications; "
      .. "see docs/POLICIES.md): allowed ones are approved, denied ones rejected, with the deciding "
      .. "rule as the comment. Each decision and its trail is printed as it is made. With --journal "
      .. "no ticket is ever decided twice across restarts. Ctrl-C or SIGTERM stops after the "
      .. "current ticket.")
  decide:option("--policy"):argname("<file>"):description("The policy file (required; env PREQUALIFY_POLICY).")
  decide:flag("--dry-run"):description("Print what would be done; send nothing, write no journal.")
  decide:option("--journal"):argname("<file>"):description("Crash-safe journal (JSON Lines); reuse it on every run.")
  decide:option("--report"):argname("<file>"):description("Also write the JSON report (decisions and trails) here.")
  decide:option("--watch"):argname("<seconds>"):convert(g.number_of("--watch", 1))
    :description("Poll for new tickets every N seconds until SIGINT or SIGTERM.")
  decide:flag("--final"):description("Denied tickets are rejected for good (RejectionLevel 2), not for retry.")
  common(decide)
end

local function time_text(t)
  return t and wire.iso(t) or "-"
end

local function print_list(cx, list)
  if #list == 0 then
    cx:print("no tickets")
    return
  end
  for _, t in ipairs(list) do
    cx:print(string.format("%s  created %s  approvals %d/%s  %s  %s", tostring(t.id), time_text(t.created),
      #t.approvals, tostring(t.required_approvals or "?"), t.user or "(user ?)", t.dn or "(environment ?)"))
    local keys = {}
    for k in pairs(t.environment) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do cx:print("    ", k, ": ", tostring(t.environment[k])) end
  end
end

-- A ticket for JSON output: every field but the wire object.
local function plain(t)
  local out = {}
  for k, v in pairs(t) do
    if k ~= "raw" then out[k] = v end
  end
  return out
end

local function list_cmd(args, cx, client)
  local list, err = client:tickets{ approved = args.approved or false, product_code = args.product_code }
  if not list then return cx:fail(err) end
  if args.json then
    local out = {}
    for i, t in ipairs(list) do out[i] = plain(t) end
    cx:print(output.json{ tickets = out, count = #list })
  else
    print_list(cx, list)
  end
  return EXIT.OK
end

local function act_cmd(action, args, cx, client)
  if not args.comment then return cx:usage(NAME .. " " .. action, "--comment is required") end
  local o = { comment = args.comment }
  if action == "approve" then
    o.uses = args.uses
    if args.expires then o.expires = tonumber(args.expires) or args.expires end
  else
    o.final = args.final or false
  end
  local ids = #args.ids == 1 and args.ids[1] or args.ids
  local res, err = client[action .. "_tickets"](client, ids, o)
  if not res then
    if err.kind == "invalid" then return cx:usage(NAME .. " " .. action, err.message) end
    if args.json then
      cx:print(output.json{ ok = false, error = { kind = err.kind, message = err.message, outcome = err.outcome,
        result = err.result, result_name = err.result_name, invalid_ids = err.invalid_ids } })
    end
    cx:fail(err)
    return err.outcome == "unknown" and EXIT.UNKNOWN or EXIT.FAILED
  end
  if args.json then
    cx:print(output.json{ ok = true, action = action, ids = res.ids, result = res.result,
                          result_name = res.result_name })
  else
    cx:print(action == "approve" and "approved " or "rejected ", table.concat(res.ids, ", "))
  end
  return EXIT.OK
end

local function decide_cmd(args, cx, client, s)
  return require("prequalify.cli.tickets_decide")(args, cx, client, s, EXIT)
end

--- Run `prequalify tickets ...`.
function M.run(args, cx)
  local sub = args.tickets_command
  local s, code = cx:settings(args, NAME)
  if not s then return code end
  local pol
  if sub == "decide" then
    local path = args.policy or s:get("policy")
    if not path then return cx:usage(NAME .. " decide", "--policy is required") end
    pol, code = cx:policy(path, NAME .. " decide")
    if not pol then return code end
  end
  local client
  client, code = cx:client(args, s, NAME)
  if not client then return code end
  local ok, result
  if sub == "list" then
    ok, result = pcall(list_cmd, args, cx, client)
  elseif sub == "decide" then
    ok, result = pcall(decide_cmd, args, cx, client, pol)
  else
    ok, result = pcall(act_cmd, sub, args, cx, client)
  end
  client:close()
  if not ok then error(result, 0) end
  return result
end

return setmetatable(M, { __call = function(_, args, cx) return M.run(args, cx) end })
