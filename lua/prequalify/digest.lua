--- Digests of artifacts: streaming file hashes (SHA-256/384/512) computed in
-- the C core through OpenSSL, digests of strings, and signtool `/dg` `.dig`
-- files. Every function returns the Base64 text and the raw bytes, or nil and
-- an `invalid` error whose message names the path.
-- @module prequalify.digest
local core = require "prequalify.core"
local errors = require "prequalify.errors"

local M = {}

--- The algorithms accepted by `file` and `data`.
M.ALGORITHMS = { sha256 = 32, sha384 = 48, sha512 = 64 }

local function check_alg(alg, fn)
  if alg == nil then return "sha256" end
  if type(alg) ~= "string" then
    error("prequalify.digest." .. fn .. ": expected an algorithm name, got " .. type(alg), 3)
  end
  local a = alg:lower():gsub("%-", "")
  if not M.ALGORITHMS[a] then return nil, a end
  return a
end

local function bad_alg(alg, field)
  return nil, errors.new("invalid", "unknown digest algorithm '" .. tostring(alg)
    .. "' (known: sha256, sha384, sha512)", { field = field or "algorithm" })
end

--- Digest of a file, read in chunks (never whole).
-- @tparam string path
-- @tparam[opt="sha256"] string alg `sha256`, `sha384` or `sha512`
-- @return base64, raw bytes; or nil and an `invalid` error naming the path
function M.file(path, alg)
  if type(path) ~= "string" then
    error("prequalify.digest.file: expected a path string, got " .. type(path), 2)
  end
  local a, bad = check_alg(alg, "file")
  if not a then return bad_alg(bad) end
  local b64, raw = core.digest_file(path, a)
  if not b64 then return nil, errors.new("invalid", raw, { field = "file", path = path }) end
  return b64, raw
end

--- Digest of a string of bytes.
-- @tparam string bytes the data
-- @tparam[opt="sha256"] string alg `sha256`, `sha384` or `sha512`
-- @return base64, raw bytes; or nil and an `invalid` error for an unknown algorithm
function M.data(bytes, alg)
  if type(bytes) ~= "string" then
    error("prequalify.digest.data: expected a string of bytes, got " .. type(bytes), 2)
  end
  local a, bad = check_alg(alg, "data")
  if not a then return bad_alg(bad) end
  return core.digest_data(bytes, a)
end

--- Read a signtool `/dg` `.dig` file: one Base64 digest, with an optional
-- BOM, surrounding whitespace and CRLF line ends.
-- @tparam string path the `.dig` file
-- @return base64, raw bytes; or nil and an `invalid` error naming the path
function M.dig_file(path)
  if type(path) ~= "string" then
    error("prequalify.digest.dig_file: expected a path string, got " .. type(path), 2)
  end
  local b64, raw = core.dig_file(path)
  if not b64 then return nil, errors.new("invalid", raw, { field = "dig", path = path }) end
  return b64, raw
end

return M
