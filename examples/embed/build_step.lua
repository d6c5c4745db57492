--- A build step run by embed_host: it "builds" an artifact (writes a file),
-- hashes it and pre-qualifies the hash, the way a build tool that embeds
-- Lua would right after linking.
--
--   PREQUALIFY_URL=... PREQUALIFY_TOKEN_FILE=... PREQUALIFY_DN=... PREQUALIFY_USER=... \
--     build/examples/embed/embed_host examples/embed/build_step.lua OUTPUT [VERSION]
--
-- Optional: PREQUALIFY_CA_FILE. Returns 0 when the hash was pre-qualified.
local prequalify = require "prequalify"

local output, version = arg[1], arg[2] or "1.0.0"
if not output then
  io.stderr:write("usage: embed_host build_step.lua OUTPUT [VERSION]\n")
  return 2
end
local function setting(name)
  local v = os.getenv(name)
  if not v or v == "" then error(name .. " is not set", 0) end
  return v
end

-- The "build": a real one would compile and link here.
local f = assert(io.open(output, "wb"))
f:write("demo artifact ", version, "\n", string.rep("\0\1\2\3", 4096))
f:close()

local data = assert(prequalify.digest.file(output, "sha256"))
local client, cerr = prequalify.client{
  url = setting("PREQUALIFY_URL"),
  ca_file = os.getenv("PREQUALIFY_CA_FILE"),
  token_file = setting("PREQUALIFY_TOKEN_FILE"),
}
if not client then
  io.stderr:write("build_step: ", tostring(cerr), "\n")
  return 2
end
local res, err = client:prequalify{
  dn = setting("PREQUALIFY_DN"), user = setting("PREQUALIFY_USER"), data = data,
  comment = "build step: " .. output:match("[^/]*$") .. " " .. version,
  hours = 1, single_use = true,
}
client:close()
if not res then
  io.stderr:write("build_step: ", tostring(err), "\n")
  return err.outcome == "unknown" and 3 or 1
end
print(string.format("built %s and pre-qualified sha256 %s (%s, core %s)", output, data, res.result_name,
  prequalify._VERSION))
return 0
