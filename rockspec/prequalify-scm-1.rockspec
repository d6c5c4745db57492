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
    -- The prefixes where LuaRocks found libcurl and OpenSSL (give CURL_DIR=
    -- and OPENSSL_DIR= on its command line for a non-standard one): CMake's
    -- FindCURL and FindOpenSSL search them first (<Pkg>_ROOT, CMP0074).
    -- (CMAKE_INCLUDE_PATH would not do: LuaRocks overwrites it from the
    -- environment.)
    CURL_ROOT = "$(CURL_DIR)",
    OPENSSL_ROOT_DIR = "$(OPENSSL_DIR)",
    PREQUALIFY_EXAMPLES = "OFF",
  },
}
