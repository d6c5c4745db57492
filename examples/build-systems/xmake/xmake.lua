-- Pre-qualify artifacts from xmake without holding up the build.
--
--   export PREQUALIFY_URL=... PREQUALIFY_TOKEN_FILE=... PREQUALIFY_DN=... PREQUALIFY_USER=...
--   xmake
--
-- Two rules:
--   "prequalify"         one target's output, right after it is built
--                        (add_rules("prequalify") on a target that ships
--                        alone; not on one "release" already covers)
--                        (after_build; os.execv raises when the command
--                        exits non-zero, which fails the build);
--   "prequalify.release" on a phony target that depends on the signed ones:
--                        every dependency's output at once, one coroutine
--                        per target under async.runjobs. Each job waits on
--                        its own process through xmake's scheduler, so a slow
--                        server (2 s a call) delays none of the other jobs.
-- The server, credentials, DN and signer come from the environment, as in
-- the CMake example. A host whose Lua can load the module calls
-- client:prequalify(req, {yield = f}) from its coroutines instead; see
-- docs/EMBEDDING.md ("A generic scheduler").
-- luacheck: read globals rule rule_end after_build set_kind add_files add_rules add_deps target target_end
-- luacheck: read globals set_version os import runjobs

local function submit(target, why)
    os.execv("prequalify", {
        "submit", "--file", target:targetfile(),
        "--comment", target:name() .. " " .. (target:version() or "") .. " (xmake " .. why .. ")",
        "--hours", "4", "--single-use",
    })
end

rule("prequalify")
    after_build(function (target)
        submit(target, "after_build")
    end)
rule_end()

rule("prequalify.release")
    after_build(function (target)
        import("async.runjobs")
        local deps = {}
        for _, dep in ipairs(target:orderdeps()) do
            if dep:targetfile() then table.insert(deps, dep) end
        end
        -- One job per artifact, at most 8 at a time; a failure fails the build.
        runjobs("prequalify", function (index)
            submit(deps[index], "release")
        end, { total = #deps, comax = 8 })
    end)
rule_end()

target("hello")
    set_kind("binary")
    set_version("4.2.0")
    add_files("../cmake/hello.c")
target_end()

target("hello-tool")
    set_kind("binary")
    set_version("4.2.0")
    add_files("../cmake/hello.c")
target_end()

target("release")
    set_kind("phony")
    add_deps("hello", "hello-tool")
    add_rules("prequalify.release")
target_end()
