--- The spool of a batch report: the entries of a streamed batch, written
-- one record each to a temporary file so that memory stays flat, and read
-- back in the order they were written; and the JSON form of an entry, which
-- the report and the audit log share.
--
-- The file (`open`) is made in a directory the caller names (the report
-- uses `$TMPDIR`), mode 0600, and unlinked at once, so that nothing is left
-- behind, even after a SIGKILL. When the disk refuses a record, the writer
-- says so and the reader stops at the first record that is not whole.
-- @module prequalify.spool
local cjson = require "cjson"
local core = require "prequalify.core"

local M = {}

local json = cjson.new()
json.encode_invalid_numbers(false)

-- An entry as JSON; a trail holding something JSON cannot carry (a user
-- rule's odd reason) is turned to text rather than failing the run.
local function encode(entry)
  local ok, text = pcall(json.encode, entry)
  if ok then return text end
  local copy = {}
  for k, v in pairs(entry) do copy[k] = v end
  if type(copy.trail) == "table" then
    local trail = {}
    for i, e in ipairs(copy.trail) do
      trail[i] = { rule = tostring(e.rule), verdict = tostring(e.verdict), reason = tostring(e.reason),
                   depth = tonumber(e.depth) }
    end
    copy.trail = trail
  end
  ok, text = pcall(json.encode, copy)
  if ok then return text end
  return json.encode{ index = entry.index, outcome = entry.outcome, key = entry.key,
                      note = "entry could not be encoded: " .. tostring(text) }
end

-- The spool holds one record per entry: a 4-byte length, then either the
-- entry as JSON or, for the common shape (scalar fields, `request` and
-- `server`, no `error`, `trail` or `sent`), a compact binary record that the
-- C core packs in one call (`core.spool_record`, layout in
-- `core.SPOOL_LAYOUT`): a zero byte, a mask of the fields present, and every
-- field at a fixed place. Spooling an entry was the largest single cost of
-- an item in a batch: cjson.encode formats every number with
-- snprintf("%.14g"), and a string.pack over some thirty fields in Lua cost
-- about 20k instructions; the C record costs a few thousand. Numbers come
-- back as floats, as they did from JSON (exact, where JSON kept 14 digits);
-- a value JSON cannot carry (NaN, infinity) or a field of an unexpected type
-- sends the entry through JSON as before. Only the layout's fields are kept
-- (the batch runner's entries have no others).

-- The reader of compact records: the layout read once into unpack formats,
-- then one string.unpack per field, in order.
local LAYOUT = {}
for bit, f in ipairs(core.SPOOL_LAYOUT) do
  local kind = f[2]
  LAYOUT[bit] = { name = f[1], kind = kind, mask = 1 << (bit - 1),
                  fmt = kind == "n" and "<n" or kind == "s" and "<s4" or "B" }
end

local unpack = string.unpack

local function compact_decode(s)
  local m, pos = unpack("<I4", s, 2)
  local e = {}
  local into = e
  for _, f in ipairs(LAYOUT) do
    local present = m & f.mask ~= 0
    if f.kind == "t" then
      into = present and {} or false
      if present then e[f.name] = into end
    else
      local v
      v, pos = unpack(f.fmt, s, pos)
      if present and into then
        if f.kind == "b" then v = v == 2 end
        into[f.name] = v
      end
    end
  end
  return e
end

--- An entry as JSON text; it never fails (what JSON cannot carry is
-- turned to text).
-- @function encode
M.encode = encode

local spool_compact = core.spool_record

--- Write one record: length-prefixed, compact when the entry allows it
-- (packed and written by the C core).
-- @param f the spool file
-- @tparam table entry a report entry
-- @return true, or nil and the error
function M.write(f, entry)
  local ok, err = spool_compact(entry, f)
  if ok or err then return ok, err end
  ok, err = f:write(string.pack("<s4", encode(entry)))
  return ok and true, err
end

--- An entry from the body of one record (compact or JSON), e.g. the fields
-- the batch pipeline holds for an item.
-- @tparam string body the record without its length
-- @treturn table the entry
function M.decode(body)
  if body:byte(1) == 0 then return compact_decode(body) end
  return json.decode(body)
end
local decode = M.decode

--- A new spool file.
-- @tparam string dir the directory it goes in
-- @return the file (an io library handle, open for reading and writing,
--   with a 64 KiB buffer) and
--   its path (for messages: it is already unlinked); or nil and a message
--   naming the path and the error
function M.open(dir)
  local f, path = core.spool_open(dir)
  if not f then return nil, path end
  return f, path
end

--- The entries of the spool from its start, in the order they were written;
-- after a write error it may end in a torn record, where reading stops.
-- @param f the spool file, flushed
-- @return an iterator of entries; at its end the file is positioned at its
--   end, for more records
function M.entries(f)
  f:seek("set", 0)
  return function()
    local head = f:read(4)
    local size = head and #head == 4 and string.unpack("<I4", head)
    local body = size and f:read(size)
    local ok, e = false, nil
    if body and #body == size then ok, e = pcall(decode, body) end
    if not ok then
      f:seek("end", 0)
      return nil
    end
    return e
  end
end

return M

