-- Pre-qualify each artifact right after the generated build links it:
-- premake writes postbuildcommands into the Makefile or project file, so
-- the build tool (make, msbuild, xcodebuild) runs them, not premake.
--
--   export PREQUALIFY_URL=... PREQUALIFY_TOKEN_FILE=... PREQUALIFY_DN=... PREQUALIFY_USER=...
--   premake5 gmake2 && make config=release
--
-- A non-zero exit fails the build. %{...} tokens are expanded by premake.
-- luacheck: read globals workspace configurations project kind language files filter postbuildcommands

workspace "hello"
    configurations { "debug", "release" }

project "hello"
    kind "ConsoleApp"
    language "C"
    files { "../cmake/hello.c" }

    -- Only release builds are signed, so only they are pre-qualified.
    filter "configurations:release"
        postbuildcommands {
            'prequalify submit --file "%{cfg.buildtarget.abspath}"'
                .. ' --comment "hello %{cfg.buildcfg} build (premake postbuildcommands)"'
                .. ' --hours 4 --single-use',
        }
