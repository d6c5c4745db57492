rockspec_format = "3.0"
package = "prequalify"
version = "scm-1"
source = {
  url = "git+https://example.invalid/prequalify.git",
}
description = {
  summary = "Pre-qualify artifact hashes for High Assurance Signing on Venafi TPP",
  detailed = [[
A Lua 5.4 module with a C core (libcurl, OpenSSL) that validates, approves by
policy and sends PreQualify/Create requests to Venafi TPP / CodeSign Protect,
one at a time or in crash-safe concurrent batches.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson",
  "argparse",
  "luafilesystem",
}
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { library = "crypto" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_C_FLAGS = "$(CFLAGS)",
    CMAKE_MODULE_LINKER_FLAGS = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
    BINDIR = "$(BINDIR)",
    PREQUALIFY_EXAMPLES = "OFF",
  },
}
