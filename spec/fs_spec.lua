-- Durable writes in the C core (pq_fs.c): the token file's atomic replace and
-- the journal's creation both end with an fsync of the directory, and a
-- directory that cannot be synced is an error at each of them, not a silent
-- success. A directory without read permission cannot be opened for the
-- fsync; root ignores permissions, so as root the check runs as nobody.
local helpers = require "helpers"

local q = helpers.shell_quote

local sh = helpers.output

local IS_ROOT = sh("id -u"):match("^0%s*$") ~= nil

describe("a directory that cannot be synced", function()
  local top, dir

  before_each(function()
    top = helpers.tmpdir()
    dir = top .. "/locked"
    assert(os.execute("chmod 0755 " .. q(top) .. " && mkdir " .. q(dir)))
    if IS_ROOT then assert(os.execute("chown 65534:65534 " .. q(dir))) end
    -- Writable and searchable, but not readable: open(dir, O_RDONLY) fails.
    assert(os.execute("chmod 0300 " .. q(dir)))
  end)
  after_each(function() helpers.rm_rf(top) end)

  -- Runs a Lua chunk (as nobody when root) with the core on its cpath.
  local function run(chunk)
    if IS_ROOT then
      local can, why = helpers.nobody_can_run()
      if not can then return nil, why end
    end
    chunk = string.format("local dir = %q\n", dir) .. chunk
    local cmd = "env LUA_CPATH=" .. q(helpers.core_cpath()) .. " lua5.4 -e " .. q(chunk) .. " 2>&1"
    if IS_ROOT then cmd = "setpriv --reuid=65534 --regid=65534 --clear-groups " .. cmd end
    return sh(cmd)
  end

  it("fails write_file_atomic with a message naming the path and the step", function()
    local out, why = run([[
      local core = require "prequalify.core"
      print(core.write_file_atomic(dir .. "/token", "secret\n"))]])
    if not out then
      pending("cannot run as nobody here: " .. why)
      return
    end
    assert.equal("nil\t" .. dir .. "/token: replaced, but cannot sync its directory: Permission denied\n", out)
    assert.is_nil(out:find("secret", 1, true))
  end)

  it("fails journal_open when it created the journal", function()
    local out, why = run([[
      local core = require "prequalify.core"
      print(core.journal_open(dir .. "/journal"))]])
    if not out then
      pending("cannot run as nobody here: " .. why)
      return
    end
    assert.matches("journal " .. dir .. "/journal: cannot sync its directory: Permission denied", out, 1, true)
  end)
end)
