--- prequalify: pre-qualify artifact hashes for High Assurance Signing on
-- Venafi TPP / CodeSign Protect.
-- @module prequalify
local core = require "prequalify.core"
local request = require "prequalify.request"
local errors = require "prequalify.errors"

local M = {}

M._VERSION = core._VERSION
M.core = core
M.errors = errors

--- Validate and normalize a request; no network.
-- @see prequalify.request.new
M.request = request.new

--- The JSON wire body for a request.
M.encode = request.encode

-- Parts that load lazily, so that a script using only `request` does not pay
-- for the client, policies or batches.
local lazy = {
  client = function() return require("prequalify.client").new end,
  policy = function() return require "prequalify.policy" end,
  plan = function() return require("prequalify.policy").plan end,
  digest = function() return require "prequalify.digest" end,
  results = function() return require "prequalify.results" end,
  manifest = function() return require "prequalify.manifest" end,
  batch = function() return require "prequalify.batch" end,
  journal = function() return require "prequalify.journal" end,
}

return setmetatable(M, {
  __index = function(t, k)
    local load = lazy[k]
    if not load then return nil end
    local v = load()
    rawset(t, k, v)
    return v
  end,
})
