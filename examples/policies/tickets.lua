-- One policy for the Sample project's pre-qualifications and its Flow
-- tickets (see docs/POLICIES.md, "Policies for tickets"). `prequalify batch
-- --policy` runs requests through it; `prequalify tickets decide --policy`
-- runs ticket views through it.
--
-- Rules about the hash (single use, hours, algorithm) skip on a ticket, which
-- has no hash field; rules about tickets (age, environment keys) skip on a
-- pre-qualification request. Every rule that applies must allow.
return policy.all{
  policy.environment{ [[\VED\Code Signing\Projects\Sample\*]] },
  -- the Key User who will sign, or who asked to sign
  policy.requesters{ allow = { "local:build-bot", "local:sample-cs-user" } },
  -- pre-qualifications: sign once, within 8 hours, SHA-256 or stronger
  policy.require_single_use(),
  policy.max_hours(8),
  policy.algorithms{ "sha256", "sha384", "sha512" },
  -- tickets: the signing tool, on a build machine, asked within the last day
  -- (the emulator's environment keys; check your server's with `prequalify tickets list`)
  policy.environment_value("Executable", "^signtool%.exe$"),
  policy.environment_value("Machine", "^build%-%d+$"),
  policy.ticket_age(86400),
}
