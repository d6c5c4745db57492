-- Staging: the build bot and release engineers may pre-qualify for up to 24
-- hours, at any time, for repeated signing; block-listed hashes stay out.
local release_engineers = { "local:build-bot", "local:release-eng", "AD+corp:jdoe" }

return policy.all{
  policy.environment{ [[\VED\Code Signing\Projects\**\Staging*]], [[\VED\Code Signing\Projects\**\QA*]] },
  policy.users{ allow = release_engineers },
  policy.max_hours(24),
  policy.algorithms{ "sha256", "sha384", "sha512" },
  policy.deny_hashes("blocklist.txt"),
}
