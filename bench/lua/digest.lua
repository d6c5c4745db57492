--- Bench client: `prequalify.digest.file` on one file.
--
--   lua5.4 bench/lua/digest.lua --file big.bin [--algorithm sha256]
--
-- Prints one JSON line: bytes, seconds (the digest call alone) and the
-- digest in hex, which the driver compares with `openssl dgst`.
local sample = require "sample"
local core = require "prequalify.core"
local digest = require "prequalify.digest"

local a = sample.args(arg)
local t0 = core.monotonic()
local _, raw = assert(digest.file(a.file, a.algorithm))
local t1 = core.monotonic()
local f = assert(io.open(a.file, "rb"))
local size = f:seek("end")
f:close()
local hex = raw:gsub(".", function(c) return string.format("%02x", c:byte()) end)
sample.emit{ bytes = size, seconds = t1 - t0, hex = hex }
