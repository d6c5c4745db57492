-- Configuring the build: a libcurl older than the engine needs is refused by
-- CMake with a message that names the version it needs, before anything is
-- compiled (docs/INSTALL.md).
local helpers = require "helpers"
local cli = require "fixtures.cli"

describe("cmake configure #nosan", function()
  local dir

  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.rm_rf(dir) end)

  -- A libcurl include directory whose headers say `version`.
  local function curl_headers(version)
    local major, minor, patch = version:match("^(%d+)%.(%d+)%.(%d+)$")
    os.execute("mkdir -p " .. helpers.shell_quote(dir .. "/include/curl"))
    helpers.write_file(dir .. "/include/curl/curlver.h", string.format(
      '#define LIBCURL_VERSION "%s"\n#define LIBCURL_VERSION_NUM 0x%02x%02x%02x\n', version, major, minor, patch))
    helpers.write_file(dir .. "/include/curl/curl.h", '#include "curlver.h"\n')
    return dir .. "/include"
  end

  local function configure(version)
    return cli.exec({ "cmake", "-S", cli.ROOT, "-B", dir .. "/build", "-DPREQUALIFY_EXAMPLES=OFF",
                      "-DCURL_INCLUDE_DIR=" .. curl_headers(version), "-DCURL_LIBRARY=/usr/lib/libcurl.so" })
  end

  it("refuses libcurl 7.84 and names 7.85.0, the version it needs", function()
    local r = configure("7.84.0")
    assert.is_not.equal(0, r.code)
    assert.truthy(r.err:find("libcurl 7.84.0 is too old: prequalify needs 7.85.0 or newer", 1, true), r.err)
  end)

  it("accepts libcurl 7.85.0", function()
    local r = configure("7.85.0")
    assert.falsy((r.out .. r.err):find("too old", 1, true), r.out .. r.err)
  end)
end)
