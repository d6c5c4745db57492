-- Production: only production environments; sign-once, at most 4 hours, only
-- for the build bot, only with a ticket reference in the comment, only SHA-256
-- or stronger, never a hash on the block list, and only in business hours.
--
-- Every rule must allow (policy.all): nothing is adjusted here, so a request
-- that asks for too much is denied and the build learns why.
return policy.all{
  policy.environment{ [[\VED\Code Signing\Projects\**\Production*]] },
  policy.users{ allow = { "local:build-bot" } },
  policy.require_single_use(),
  policy.max_hours(4),
  -- a ticket reference such as OPS-1234 or REL-77
  policy.comment_matches("%f[%w]%u[%u%d]*%-%d+"),
  policy.algorithms{ "sha256", "sha384", "sha512" },
  policy.deny_hashes("blocklist.txt"),
  -- Central European Time, without daylight saving: a fixed offset.
  policy.time_window{ days = { "mon", "tue", "wed", "thu", "fri" }, from = "09:00", to = "17:00",
    utc_offset = "+01:00" },
}
