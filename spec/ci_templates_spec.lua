-- The CI templates (examples/ci/) are complete pipelines, and their shell
-- steps work: each `run:` step of the GitHub Actions workflow and each
-- `script:` line of the GitLab pipeline is taken from the YAML (by python3's
-- yaml module) and executed in order with bash -e, in a workspace holding
-- the CMake example, against the emulator. What the CI system provides is
-- stood in for: GitHub's OIDC token endpoint by the emulator's JWT control
-- call, GitLab's ID token by a JWT minted for the job. The steps that
-- install prequalify are left out: bin/prequalify of this tree is on PATH.
local helpers = require "helpers"
local hooks = require "fixtures.emulator_hooks"
local cli = require "fixtures.cli"
local cjson = require "cjson"

local q = helpers.shell_quote

-- Reads a template into {env=, steps={{name=, run=}}, upload=}.
local EXTRACT = [[
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[2]))
out = {"env": {}, "steps": [], "upload": None}
if sys.argv[1] == "github":
    out["env"].update(doc.get("env", {}))
    for job in doc["jobs"].values():
        out["env"].update(job.get("env", {}))
        for step in job["steps"]:
            if "run" in step and not step.get("name", "").startswith("Install"):
                out["steps"].append({"name": step.get("name", ""), "run": step["run"], "env": step.get("env", {})})
            if "upload-artifact" in step.get("uses", ""):
                out["upload"] = step["with"]["path"]
else:
    out["env"].update(doc.get("variables", {}))
    jobs = [(k, v) for k, v in doc.items() if isinstance(v, dict) and "script" in v]
    jobs.sort(key=lambda kv: doc["stages"].index(kv[1]["stage"]))
    for name, job in jobs:
        out["steps"].append({"name": name, "run": "\n".join(job["script"]), "env": job.get("variables", {})})
        paths = job.get("artifacts", {}).get("paths", [])
        if job.get("artifacts", {}).get("when") == "always":
            out["upload"] = paths[0]
        out.setdefault("id_tokens", {}).update(job.get("id_tokens", {}))
print(json.dumps(out))
]]

local function extract(kind, file)
  local p = assert(io.popen("python3 -c " .. q(EXTRACT) .. " " .. q(kind) .. " " .. q(file)))
  local text = p:read("a")
  p:close()
  return cjson.decode(text)
end

-- #nosan: the steps run cp, cmake, python3 and bash, which the ASan run's
-- LD_PRELOAD would instrument (their own leaks then fail the step); the
-- core these steps load is covered under ASan by the CLI and batch specs.
describe("CI templates #emulator #slow #nosan", function()
  local emu, dir

  hooks.emulator({ reset = true, dir = "block", lazy = true }, function(e, _, d) emu, dir = e, d end)

  -- A workspace with the CMake example: what a checkout would hold.
  local function workspace(name)
    local ws = dir .. "/" .. name
    local tmp = ws .. "/runner-tmp"
    assert(os.execute("mkdir -p " .. q(tmp) .. " && cp " .. q(helpers.ROOT .. "/examples/build-systems/cmake/")
      .. "CMakeLists.txt " .. q(helpers.ROOT .. "/examples/build-systems/cmake/hello.c") .. " " .. q(ws)))
    return ws, tmp
  end

  -- Runs each step with bash -e; returns nothing, fails the test on the first failure.
  local function run_steps(t, ws, env)
    for k, v in pairs(t.env) do if env[k] == nil then env[k] = tostring(v) end end
    for i, step in ipairs(t.steps) do
      local senv = {}
      for k, v in pairs(env) do senv[k] = v end
      for k, v in pairs(step.env) do senv[k] = tostring(v) end
      local script = helpers.write_file(ws .. "/step" .. i .. ".sh", step.run)
      local r = cli.exec({ "bash", "-e", script }, { env = senv, cwd = ws })
      assert(r.code == 0, string.format("step %d '%s' failed (exit %d):\n%s\n--- stdout:\n%s\n--- stderr:\n%s",
        i, step.name, r.code, step.run, r.out, r.err))
    end
  end

  -- Connection settings the CI system's variables would hold, for the emulator.
  local function base_env(ws)
    return {
      PATH = cli.ROOT .. "/bin:" .. (os.getenv("PATH") or "/usr/bin:/bin"),
      PREQUALIFY_URL = emu.url, PREQUALIFY_CA_FILE = emu.ca, CURL_CA_BUNDLE = emu.ca,
      PREQUALIFY_CLIENT_ID = helpers.CLIENT_ID, PREQUALIFY_DN = helpers.DN_PROD,
      PREQUALIFY_USER = helpers.USER, HOME = ws,
    }
  end

  -- The pipeline built, hashed, pre-qualified dist/hello and wrote the report it uploads.
  local function check_outcome(t, ws)
    local hash = cli.sha256_b64(ws .. "/dist/hello")
    assert.matches(hash, helpers.read_file(ws .. "/dist/SHA256SUMS.b64"), 1, true)
    assert.is_string(t.upload)
    local report = cjson.decode((assert(helpers.read_file(ws .. "/" .. t.upload))))
    assert.equal(1, report.counts.approved)
    assert.equal(1, emu:received("/vedauth/authorize/jwt"))
    assert.equal(0, emu:received("/vedauth/authorize/oauth"))
    local stored = emu:prequalifications()
    assert.equal(1, stored.count)
    assert.equal(hash, stored.items[1].data)
    assert.is_true((emu:sign{ dn = helpers.DN_PROD, data = hash, user = helpers.USER }))
  end

  it("runs the GitHub Actions workflow's steps: build, hash, OIDC token, pre-qualify, report", function()
    local t = extract("github", helpers.ROOT .. "/examples/ci/github-actions.yml")
    local names = {}
    for i, step in ipairs(t.steps) do names[i] = step.name end
    assert.same({ "Build", "Hash", "Get the job's OIDC token for TPP", "Pre-qualify" }, names)
    local ws, tmp = workspace("github")
    local env = base_env(ws)
    env.RUNNER_TEMP = tmp
    env.TPP_AUDIENCE = "prequalify-emulator"
    env.ACTIONS_ID_TOKEN_REQUEST_URL = emu.url .. "/__emulator__/jwt?identity=approver"
    env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = "runner-request-token"
    env.GITHUB_REPOSITORY, env.GITHUB_REF_NAME, env.GITHUB_RUN_ID = "example/hello", "v4.2.0", "118"
    run_steps(t, ws, env)
    check_outcome(t, ws)
    assert.equal("600", string.format("%o", require("prequalify.core").file_mode(tmp .. "/tpp.jwt") & 511))
  end)

  it("runs the GitLab pipeline's scripts: build and hash, then pre-qualify with the job's ID token", function()
    local t = extract("gitlab", helpers.ROOT .. "/examples/ci/gitlab-ci.yml")
    assert.same({ "build", "prequalify" }, { t.steps[1].name, t.steps[2].name })
    assert.is_table(t.id_tokens.TPP_JWT)
    local ws = workspace("gitlab")
    local env = base_env(ws)
    env.TPP_JWT = emu:jwt{ identity = "approver" }
    env.CI_PROJECT_PATH, env.CI_COMMIT_REF_NAME, env.CI_PIPELINE_ID = "example/hello", "v4.2.0", "118"
    run_steps(t, ws, env)
    check_outcome(t, ws)
  end)
end)
