--- Built-in rules for Flow tickets (see `prequalify.tickets.view`): the
-- ticket's age, its requester and any key of its environment. On a
-- pre-qualification request they skip, saying so, so that one policy file
-- can hold rules for both.
-- @module prequalify.policy.ticket_rules
local D = require "prequalify.policy.decision"
local rules = require "prequalify.policy.rules"
local clock = require "prequalify.policy.clock"
local text = require "prequalify.policy.text"
local view = require "prequalify.tickets.view"
local wire = require "prequalify.tickets.wire"

local M = {}

local NOT_A_TICKET = "not a ticket (a pre-qualification request)"

--- Allows tickets opened at most `max_seconds` ago and denies older ones
-- (by `ctx.now`, default the current time).
-- @tparam number max_seconds
function M.ticket_age(max_seconds)
  if type(max_seconds) ~= "number" or max_seconds <= 0 or max_seconds ~= max_seconds then
    error("policy.ticket_age: expected a number of seconds > 0, got " .. tostring(max_seconds), 2)
  end
  return D.leaf(string.format("ticket_age(%g s)", max_seconds), function(req, ctx)
    if not view.is(req) then return "skip", NOT_A_TICKET end
    local age = clock.now(ctx) - req.created
    if age <= max_seconds then
      return "allow", string.format("opened %d s ago (at most %g)", math.floor(age), max_seconds)
    end
    return "deny", string.format("opened %d s ago, more than %g", math.floor(age), max_seconds)
  end)
end

--- `users` under the name tickets use: the requesting Key User (`user`).
-- @tparam table t as for `policy.users`
function M.requesters(t)
  local inner = D.step(rules.users(t))
  local name = D.name(rules.users(t)):gsub("^users", "requesters")
  return D.builtin(name, function(req, ctx, trail, depth)
    local verdict, out, e = inner(req, ctx, trail, depth)
    if e then e.rule = name end
    return verdict, out, e
  end)
end

-- The value of an environment key; when the exact key is absent, one that
-- differs only in case or spaces (the real key names are unconfirmed).
local function lookup(env, key)
  if env[key] ~= nil then return env[key] end
  return wire.find(env, { wire.fold(key) }, true)
end

--- Allows tickets whose environment `key` matches the Lua `pattern`, denies
-- the others; skips when the ticket has no such key.
-- @tparam string key e.g. `"Executable"`
-- @tparam string pattern a Lua pattern, e.g. `"^signtool%.exe$"`
function M.environment_value(key, pattern)
  if type(key) ~= "string" or key == "" then
    error("policy.environment_value: expected an environment key (string) as the first argument", 2)
  end
  text.check_pattern("policy.environment_value", pattern, "a Lua pattern (string) as the second argument")
  return D.leaf("environment_value(" .. key .. ", " .. pattern .. ")", function(req)
    if not view.is(req) then return "skip", NOT_A_TICKET end
    local v = lookup(req.environment, key)
    if v == nil then return "skip", "this ticket's environment has no " .. key end
    v = tostring(v)
    if v:find(pattern) then return "allow", key .. " " .. text.quote(v) .. " matches " .. pattern end
    return "deny", key .. " " .. text.quote(v) .. " does not match " .. pattern
  end)
end

return M
