-- Pre-qualify each artifact right after xmake builds it: a rule with an
-- after_build hook, added to every target that will be signed.
--
--   export PREQUALIFY_URL=... PREQUALIFY_TOKEN_FILE=... PREQUALIFY_DN=... PREQUALIFY_USER=...
--   xmake
--
-- The hook runs the prequalify command (os.execv raises when it exits
-- non-zero, which fails the build). The server, credentials, DN and signer
-- come from the environment, as in the CMake example.
-- luacheck: read globals rule rule_end after_build set_kind add_files add_rules target set_version os

rule("prequalify")
    after_build(function (target)
        local file = target:targetfile()
        os.execv("prequalify", {
            "submit", "--file", file,
            "--comment", target:name() .. " " .. (target:version() or "") .. " (xmake after_build)",
            "--hours", "4", "--single-use",
        })
    end)
rule_end()

target("hello")
    set_kind("binary")
    set_version("4.2.0")
    add_files("../cmake/hello.c")
    add_rules("prequalify")
