-- Writes a file generated from the command line's definition, at build
-- time (CMakeLists.txt, the install block):
--   lua5.4 cmake/generate.lua LUA_DIR man|bash|zsh|fish OUTPUT [VERSION]
local luadir, what, output, version = arg[1], arg[2], arg[3], arg[4]
if not (luadir and what and output) then
  io.stderr:write("usage: generate.lua LUA_DIR man|bash|zsh|fish OUTPUT [VERSION]\n")
  os.exit(2)
end
package.path = luadir .. "/?.lua;" .. luadir .. "/?/init.lua;" .. package.path
local text
if what == "man" then
  text = require("prequalify.cli.manpage").render(version)
else
  text = require("prequalify.cli.completion").script(what)
end
local f = assert(io.open(output, "wb"))
f:write(text)
assert(f:close())
