--- The command line's grammar: every subcommand, option and help text of
-- `prequalify`, built with lua-argparse. Nothing here runs a command.
--
-- Help flags do not exit the process: they raise `M.HELP` (with the text
-- in `M.help_text`), so that `cli.main` can return an exit code and be
-- tested in-process.
-- @module prequalify.cli.parser
local argparse = require "argparse"

local M = {}

--- Raised (as the start of an error message) by a help flag.
M.HELP = "\0prequalify-help\0"

M.EXIT_CODES = [[
Exit codes:
   0    success: every item approved (submit, batch), would be sent (plan), every
        file hashed (digest); the command succeeded (token)
   1    something was denied or failed, nothing left unknown; plan: an item would be
        denied or is invalid; digest: a file could not be read
   2    usage error: bad option or setting, unreadable config, policy, manifest or
        artifact named on the command line; nothing sent
   3    unknown outcome: a request was sent without a usable reply; the server may
        have acted (not resent; check before retrying)
   4    incomplete: the run stopped before it reached every item (--deadline,
        rejected credentials, a journal or report spool that could not be
        written; the summary counts those not reached), or its report or audit
        log could not be written or its journal not closed
   130  interrupted (SIGINT/SIGTERM); in-flight requests were finished first]]

local ENVIRONMENT = [[
Settings come from options, then environment variables, then the config file
(--config or PREQUALIFY_CONFIG). Secrets are never option values: give them in a
file (--token-file, --password-file, --refresh-token-file), in the environment
(PREQUALIFY_TOKEN, PREQUALIFY_PASSWORD) or on stdin (--token-stdin,
--password-stdin). See docs/CLI.md.]]

local WIDTH = 100

-- Converters: return the value, or nil and a message (argparse shows it).
local function number_of(what, min)
  return function(s)
    local n = tonumber(s)
    if not n or n ~= n or n < min then return nil, what .. " must be a number >= " .. min .. ", got '" .. s .. "'" end
    return n
  end
end

local function integer_of(what, min)
  return function(s)
    local n = math.tointeger(tonumber(s))
    if not n or n < min then return nil, what .. " must be a whole number >= " .. min .. ", got '" .. s .. "'" end
    return n
  end
end

-- Replaces argparse's help flag (which calls os.exit) with one that raises.
local function help_flag(cmd)
  cmd:add_help(false)
  cmd:flag("-h --help"):description("Show this help and exit."):action(function()
    M.help_text = cmd:get_help()
    error(M.HELP, 0)
  end)
end

local function new_command(parent, name, summary, description, epilog)
  local cmd = parent:command(name):summary(summary):description(description)
  if epilog then cmd:epilog(epilog) end
  cmd:help_max_width(WIDTH)
  help_flag(cmd)
  return cmd
end

local function json_flag(cmd, what)
  cmd:flag("--json"):description(what or "Print one JSON document on stdout instead of text.")
end

local function config_option(cmd)
  return cmd:option("--config"):argname("<file>")
    :description("Settings file: key = value lines, or a Lua table if FILE ends in .lua "
      .. "(env PREQUALIFY_CONFIG).")
end

-- Server and TLS settings.
local function connection(cmd)
  cmd:group("Server and TLS",
    cmd:option("--url"):argname("<url>")
      :description("Server root, e.g. https://tpp.example.com; /vedsdk and /vedauth are appended "
        .. "(env PREQUALIFY_URL)."),
    cmd:option("--ca-file"):argname("<file>")
      :description("PEM CA bundle added to the system roots (env PREQUALIFY_CA_FILE)."),
    cmd:option("--ca-path"):argname("<dir>")
      :description("Directory of hashed CA certificates added to the system roots (env PREQUALIFY_CA_PATH)."),
    cmd:option("--client-cert"):argname("<file>")
      :description("Client certificate for mutual TLS (env PREQUALIFY_CLIENT_CERT)."),
    cmd:option("--client-key"):argname("<file>")
      :description("Its private key (env PREQUALIFY_CLIENT_KEY)."),
    cmd:option("--key-password-file"):argname("<file>")
      :description("File holding the private key's passphrase (env PREQUALIFY_KEY_PASSWORD_FILE)."),
    cmd:option("--pinned-pubkey"):argname("<pin>")
      :description("sha256//<base64> pin or PEM file of the server key (env PREQUALIFY_PINNED_PUBKEY)."),
    cmd:option("--proxy"):argname("<url>")
      :description("HTTP(S) proxy; otherwise https_proxy/no_proxy apply (env PREQUALIFY_PROXY)."),
    cmd:option("--timeout"):argname("<seconds>"):convert(number_of("--timeout", 0.001))
      :description("Total time per request, default 30 (env PREQUALIFY_TIMEOUT)."),
    cmd:option("--connect-timeout"):argname("<seconds>"):convert(number_of("--connect-timeout", 0.001))
      :description("Time to connect, default 10 (env PREQUALIFY_CONNECT_TIMEOUT)."),
    cmd:option("--api-path"):argname("<path>")
      :description("PreQualify path: the documented one by default, 'contract' for "
        .. "/vedsdk/actions/codesign/prequalify/Create (env PREQUALIFY_API_PATH)."),
    cmd:flag("--insecure-http")
      :description("Allow an http:// url (a local test server only; env PREQUALIFY_INSECURE_HTTP=1)."),
    config_option(cmd)
  )
end

-- Credentials: never a secret as an option value.
local function credentials(cmd)
  local token_file = cmd:option("--token-file"):argname("<file>")
    :description("File holding an access token; re-read after a 401 (env PREQUALIFY_TOKEN_FILE). "
      .. "Env PREQUALIFY_TOKEN holds a token itself.")
  local token_stdin = cmd:flag("--token-stdin"):description("Read the access token from the first line of stdin.")
  local password_file = cmd:option("--password-file"):argname("<file>")
    :description("File holding the password for --username (env PREQUALIFY_PASSWORD_FILE; "
      .. "env PREQUALIFY_PASSWORD holds it itself).")
  local password_stdin = cmd:flag("--password-stdin"):description("Read the password from the first line of stdin.")
  cmd:group("Credentials (one way: a token, a username and password, a JWT, a client certificate, "
    .. "or a refresh token file)",
    token_file, token_stdin,
    cmd:option("--client-id"):argname("<id>")
      :description("client_id of the API integration in TPP, for grants (env PREQUALIFY_CLIENT_ID)."),
    cmd:option("--username"):argname("<name>"):description("Sign in as this user (env PREQUALIFY_USERNAME)."),
    password_file, password_stdin,
    cmd:option("--refresh-token-file"):argname("<file>")
      :description("File holding a refresh token; rewritten under a lock when it rotates "
        .. "(env PREQUALIFY_REFRESH_TOKEN_FILE)."),
    cmd:option("--jwt-file"):argname("<file>")
      :description("Sign in with the JWT in this file, re-read for every grant (env PREQUALIFY_JWT_FILE)."),
    cmd:option("--jwt-env"):argname("<name>")
      :description("Sign in with the JWT in this environment variable (env PREQUALIFY_JWT_ENV)."),
    cmd:flag("--certificate-grant")
      :description("Sign in with --client-cert over mutual TLS (env PREQUALIFY_CERTIFICATE_GRANT=1)."),
    cmd:option("--scope"):argname("<scope>")
      :description("Scope to ask for at sign-in, default codesign:approve (env PREQUALIFY_SCOPE).")
  )
  cmd:mutex(token_file, token_stdin)
  cmd:mutex(password_file, password_stdin)
  cmd:mutex(token_stdin, password_stdin)
end

-- The request fields shared by every item.
local function template(cmd, what)
  cmd:group(what or "Request",
    cmd:option("--dn"):argname("<dn>")
      :description([[Environment DN, e.g. '\VED\Code Signing\Projects\App\Production' (env PREQUALIFY_DN).]]),
    cmd:option("--user"):argname("<identity>")
      :description("Key User who will sign, e.g. local:build-bot (env PREQUALIFY_USER)."),
    cmd:option("--comment"):argname("<text>")
      :description("Approver's reason; {name}, {path} and {dir} name the artifact (env PREQUALIFY_COMMENT)."),
    cmd:option("--hours"):argname("<n>"):convert(integer_of("--hours", 1))
      :description("Validity in hours; the server's default is 24 (env PREQUALIFY_HOURS)."),
    cmd:flag("--single-use"):description("The hash may be signed once (default: until it expires).")
  )
end

local function policy_option(cmd)
  return cmd:option("--policy"):argname("<file>")
    :description("Approval policy file (see docs/POLICIES.md); denied items are never sent (env PREQUALIFY_POLICY).")
end

-- Inputs of batch and plan.
local function batch_inputs(cmd)
  cmd:argument("manifest")
    :description("JSON Lines file, one request per line in the Lua field names; 'file' (+ 'algorithm') "
      .. "or 'dig' may stand in for 'data'. Options --dn, --user, --comment, --hours, --single-use "
      .. "fill fields a line leaves out.")
    :args("?")
  cmd:group("Inputs",
    cmd:option("--files"):argname("<glob>"):count("*")
      :description("Artifacts to hash, e.g. 'dist/**/*.tar.gz' (quote it); repeatable."),
    cmd:option("--dig-files"):argname("<glob>"):count("*")
      :description("signtool /dg .dig files to read the digest from; repeatable."),
    cmd:option("--algorithm"):argname("<alg>"):choices{ "sha256", "sha384", "sha512" }
      :description("Digest for --files and manifest 'file' lines: sha256 (default), sha384, sha512.")
  )
end

-- For the subcommands that define their own grammar (cli/tickets, cli/audit).
M.new_command, M.connection, M.credentials, M.json_flag, M.number_of, M.integer_of =
  new_command, connection, credentials, json_flag, number_of, integer_of

--- Build the parser.
-- @return the argparse parser
function M.build()
  local p = argparse("prequalify")
    :description("Pre-qualify artifact hashes for High Assurance Signing on Venafi TPP / CodeSign Protect.")
    :epilog(M.EXIT_CODES .. "\n\n" .. ENVIRONMENT .. "\n\nRun 'prequalify <command> --help' for a command's options.")
    :command_target("command")
    :help_max_width(WIDTH)
  help_flag(p)
  p:flag("--version"):description("Print the version and exit.")
  p:require_command(false)

  -- submit ------------------------------------------------------------------
  local submit = new_command(p, "submit", "Pre-qualify one hash.",
    "Pre-qualify one hash (POST PreQualify/Create). The hash comes from --data (Base64), "
      .. "--file (hashed here) or --dig (a signtool .dig file). With --policy the request is "
      .. "decided first and a denied one is not sent.",
    M.EXIT_CODES)
  template(submit)
  local data = submit:option("--data"):argname("<base64>"):description("The digest itself, standard Base64.")
  local file = submit:option("--file"):argname("<path>"):description("An artifact to hash.")
  local dig = submit:option("--dig"):argname("<path>"):description("A signtool /dg .dig file.")
  submit:group("Hash (one of)", data, file, dig,
    submit:option("--algorithm"):argname("<alg>"):choices{ "sha256", "sha384", "sha512" }
      :description("Digest for --file: sha256 (default), sha384, sha512."))
  submit:mutex(data, file, dig)
  submit:group("Decision and retries",
    policy_option(submit),
    submit:flag("--retry-unknown")
      :description("Resend after a failure whose outcome is unknown (may pre-qualify twice)."))
  connection(submit)
  credentials(submit)
  json_flag(submit)

  -- batch -------------------------------------------------------------------
  local batch = new_command(p, "batch", "Pre-qualify many hashes concurrently.",
    "Pre-qualify many hashes from a manifest and/or globs, concurrently over reused "
      .. "connections. Only failures that certainly did not reach the server, and 429/503 "
      .. "with Retry-After, are retried. With --journal a re-run skips what is done and never "
      .. "resends an item whose outcome is unknown (unless --retry-unknown). Ctrl-C stops "
      .. "new requests and lets those in flight finish; a second Ctrl-C ends at once.",
    M.EXIT_CODES)
  batch_inputs(batch)
  template(batch, "Request fields for every item")
  batch:group("Run",
    batch:option("--concurrency"):argname("<n>"):convert(integer_of("--concurrency", 1))
      :description("Requests in flight at once, default 8 (env PREQUALIFY_CONCURRENCY)."),
    policy_option(batch),
    batch:option("--journal"):argname("<file>")
      :description("Crash-safe journal (JSON Lines); re-run with the same file to resume."),
    batch:option("--report"):argname("<file>"):description("Write the JSON report here."),
    batch:option("--audit"):argname("<file>"):description("Append an audit log (JSON Lines): decisions and outcomes."),
    batch:flag("--trails"):description("Keep every item's policy trail in the report, not only those of denied or "
      .. "adjusted items (the audit log has them all)."),
    batch:option("--retry-unknown"):argname("<keys,lines>"):args("?")
      :description("Resend items whose outcome is unknown (may pre-qualify twice); =KEY,LINE,... only those "
        .. "(keys and input lines from 'prequalify journal list FILE --unknown')."),
    batch:flag("--allow-reapproval"):description("With --journal: send an item approved earlier with other "
      .. "hours, single-use or comment (a deliberate re-approval; the server then holds both)."),
    batch:flag("--retry-failed"):description("With --journal: resend items an earlier run recorded as failed."),
    batch:option("--deadline"):argname("<seconds>"):convert(number_of("--deadline", 0.001))
      :description("Stop sending after this long; in-flight requests finish."),
    batch:option("--progress"):argname("<mode>"):choices{ "auto", "tty", "plain", "off" }:default("auto")
      :description("Progress on stderr: auto (a live line on a terminal, else a line every 10 s), "
        .. "tty, plain, off.")
  )
  connection(batch)
  credentials(batch)
  json_flag(batch, "Print the JSON report on stdout instead of the summary.")

  -- plan --------------------------------------------------------------------
  local plan = new_command(p, "plan", "Show what a batch would do; no network.",
    "Read the same inputs as batch, hash the files and run every request through the "
      .. "policy. Prints each decision with its trail. Sends nothing and needs no credentials. "
      .. "Exit 0 when every item would be sent, 1 when any is denied or invalid, 2 on a usage error.")
  batch_inputs(plan)
  template(plan, "Request fields for every item")
  plan:group("Decision", policy_option(plan), config_option(plan))
  json_flag(plan)

  -- digest ------------------------------------------------------------------
  local digest = new_command(p, "digest", "Print the Base64 digest of files.",
    "Print each file's digest in Base64 (what PreQualify/Create's Data holds) and its path, "
      .. "like sha256sum. Exit 1 if any file cannot be read.")
  digest:argument("files"):argname("<file>"):args("+"):description("Files to hash.")
  digest:option("--algorithm"):argname("<alg>"):choices{ "sha256", "sha384", "sha512" }:default("sha256")
    :description("sha256 (default), sha384 or sha512.")
  digest:flag("--dig"):description("The files are signtool /dg .dig files: print the digest they hold.")
  json_flag(digest)

  -- token -------------------------------------------------------------------
  local token = new_command(p, "token", "Get, refresh, inspect or revoke a token.",
    "Work with vedauth grants. A token or refresh token is written only to a file named "
      .. "with --out / --refresh-out (mode 0600), or to stdout with --out -.")
  token:command_target("token_command")
  local get = new_command(token, "get", "Sign in and save the token.",
    "Sign in (username and password, or a refresh token file) and write the access token "
      .. "to --out, the refresh token to --refresh-out.")
  get:option("--out"):argname("<file>"):description("Write the access token here ('-' for stdout).")
  get:option("--refresh-out"):argname("<file>"):description("Write the refresh token here.")
  connection(get)
  credentials(get)
  json_flag(get)
  local refresh = new_command(token, "refresh", "Rotate the refresh token in a file.",
    "Spend the refresh token in --refresh-token-file: the file is rewritten with the new one, "
      .. "under a lock shared with other prequalify processes.")
  refresh:option("--out"):argname("<file>"):description("Also write the new access token here ('-' for stdout).")
  connection(refresh)
  credentials(refresh)
  json_flag(refresh)
  local info = new_command(token, "info", "Show what the server says about the token.",
    "Verify the current token (GET /vedauth/authorize/verify): identity, scope, expiry, and "
      .. "whether it may pre-qualify (scope codesign:approve). Exit 1 if it is not valid.")
  connection(info)
  credentials(info)
  json_flag(info)
  local revoke = new_command(token, "revoke", "Revoke the grant.",
    "Revoke the grant behind the current token: the access token and its refresh token stop "
      .. "working. Succeeds when the grant is already gone.")
  connection(revoke)
  credentials(revoke)
  json_flag(revoke)

  -- tickets, audit: their grammar is in their own files ----------------------
  for _, name in ipairs{ "tickets", "audit", "journal" } do require("prequalify.cli." .. name).define(p, M) end

  -- emulator ----------------------------------------------------------------
  local emu = new_command(p, "emulator", "Run the local TPP emulator in the foreground.",
    "Run emulator/tpp_emulator.py (python3) in the foreground until Ctrl-C. It prints "
      .. "'READY url=<url> ca=<ca.pem>'; point PREQUALIFY_URL and PREQUALIFY_CA_FILE at those. "
      .. "Sign-in for the sample state: client id 'prequalify', user 'approver'. For tests "
      .. "and demos only.")
  emu:option("--port"):argname("<n>"):convert(integer_of("--port", 0)):default("0")
    :description("TCP port; 0 picks a free one.")
  emu:option("--host"):argname("<address>"):description("Address to listen on (default 127.0.0.1).")
  emu:option("--state"):argname("<file>"):description("State file (default: the emulator's state.json).")
  emu:flag("--http"):description("Serve plain HTTP instead of HTTPS.")
  emu:flag("--control"):description("Enable the test-only /__emulator__/ control surface.")
  emu:flag("--verbose"):description("Log requests to stderr.")
  emu:option("--max-lifetime"):argname("<seconds>"):convert(number_of("--max-lifetime", 0))
    :description("Exit by itself after this long (a guard for scripts; default: never).")

  -- completion --------------------------------------------------------------
  local completion = new_command(p, "completion", "Print a shell completion script.",
    "Print the completion script for bash, zsh or fish on stdout. Packages install them; "
      .. "by hand: eval \"$(prequalify completion bash)\" in ~/.bashrc, "
      .. "prequalify completion zsh > ~/.zfunc/_prequalify, "
      .. "prequalify completion fish > ~/.config/fish/completions/prequalify.fish.")
  completion:argument("shell"):choices{ "bash", "zsh", "fish" }:description("The shell.")

  return p
end

return M
