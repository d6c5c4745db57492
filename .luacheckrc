std = "lua54"
max_line_length = 120
include_files = { "lua/**/*.lua", "spec/**/*.lua", "rockspec/*.rockspec", "bin/prequalify", "examples/**/*.lua", "bench/**/*.lua", "cmake/*.lua", ".luacheckrc" }
exclude_files = { "build", "build-*" }

files["spec"] = { std = "+busted" }
files["rockspec"] = {
  globals = {
    "rockspec_format", "package", "version", "source", "description",
    "dependencies", "external_dependencies", "build", "test_dependencies", "test",
  },
}
files["examples/policies"] = { read_globals = { "policy" } }
