-- Release train: staging at any time; production only in the release window
-- (Tuesday and Thursday, 10:00 to 14:00 UTC), with a release ticket, for at
-- most 8 hours and sign-once (both enforced by adjusting the request), each
-- hash once per train, and at most 20 production approvals an hour.
local production = policy.environment{ [[**\Production*]] }
local staging = policy.environment{ [[**\Staging*]] }

local train = policy.all{
  policy.time_window{ days = { "tue", "thu" }, from = "10:00", to = "14:00", utc_offset = "UTC" },
  policy.comment_matches("REL%-%d+"),
  policy.clamp_hours(8),
  policy.force_single_use(),
  policy.rate_limit{ max = 20, per_seconds = 3600, key = "environment" },
}

return policy.all{
  policy.users{ allow = { "local:build-bot", "local:release-captain" } },
  policy.algorithms{ "sha256", "sha384", "sha512" },
  policy.deny_hashes("blocklist.txt"),
  policy.unique(),
  -- exactly one branch decides; an environment that is neither is denied
  policy.first{
    policy.when(staging, policy.clamp_hours(24)),
    policy.when(production, train),
    policy.rule("other environments", function(req)
      return false, req.dn .. " is neither staging nor production"
    end),
  },
}
