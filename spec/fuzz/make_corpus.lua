-- Writes the fuzz seed corpus (spec/fuzz/corpus/<harness>/) from the test
-- vectors: the documented request example in spec/fixtures/requests.lua and
-- the edge cases of spec/c/test_validate.c. Run from the repo root:
--   lua5.4 spec/fuzz/make_corpus.lua
-- Seeds are small on purpose; libFuzzer grows its own corpus in a temp dir.
package.path = "spec/?.lua;" .. package.path
local fx = require "fixtures.requests"

local ROOT = "spec/fuzz/corpus/"

local seeds = {
  utf8 = {
    ascii = "plain ascii", mixed = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x8f",
    overlong = "ab\xc0\xaf", surrogate = "\xed\xa0\x80", too_high = "x\xf4\x90\x80\x80",
    truncated = "xy\xe2\x82", comment = fx.COMMENT,
  },
  dn = {
    example = fx.DN, json_escaped = [[\\VED\\Code Signing\\Projects]],
    no_root = [[VED\Code Signing]], empty_component = [[\VED\Code Signing\\Projects]],
    trailing = [[\VED\Code Signing\]], newline = "\\VED\\Code\nSigning",
    utf8 = "\\VED\\Code Signing\\Caf\xc3\xa9",
  },
  comment = {
    example = fx.COMMENT, multiline = "line one\r\n\tline two", blank = " \t\r\n",
    bell = "bell\a", utf8 = "r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac",
  },
  user = {
    example = fx.USER, guid = fx.GUID_USER, ad = "AD+corp:jdoe", no_colon = "sample-cs-user",
    empty_prefix = ":name", empty_name = "local:", bad_guid = "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d}",
    brace_end = "local:name}", space_prefix = "lo cal:x",
  },
  guid = {
    lower = fx.GUID_USER:match("{.*}"), upper = fx.GUID_USER:match("{.*}"):upper(),
    unbraced = fx.GUID_USER:match("{(.*)}"), bad_hex = "{064cbe34-b46e-48c9-b65b-ea8dcda167dg}",
    shifted = "{064cbe34b-46e-48c9-b65b-ea8dcda167d4}",
  },
  hours = {
    one = "1", default = "24", max = "8760", over = "8761", zero = "0", negative = "-5",
    huge = "99999999999999999999", min = "-9223372036854775808",
  },
  base64 = {
    example = fx.DATA, empty = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foobar = "Zm9vYmFy",
    pad_bits = "Zh==", short = "Zm9", url = "Zm-v", space = "Zm 9v", pad_middle = "Zg=a",
    raw_digest = ("\171\106\197\103\180\234\198\141\161\041\207\031\188\155\109\006"):rep(2),
  },
  dig = {
    plain = fx.DATA, bom_crlf = "\xEF\xBB\xBF  " .. fx.DATA .. "\r\n", blank = "\xEF\xBB\xBF \n",
    inner_space = "q2rF Z7Tq", late_bom = " \xEF\xBB\xBFq2rF", sha512 = ("A"):rep(86) .. "==\n",
  },
  header = {
    content_type = "Content-Type: application/json; charset=utf-8\r\n",
    retry_after = "Retry-After: 120\r\n", retry_date = "retry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\n",
    status = "HTTP/1.1 503 Service Unavailable\r\n", space_before_colon = "Retry-After : 5\r\n",
    control = "Content-Type: a\x1b[31mb\0c\tz\r\n", utf8_cut = "Content-Type: " .. ("x"):rep(124) .. "\xe2\x82\xac\r\n",
    empty = "Retry-After:\r\n",
  },
}

for harness, files in pairs(seeds) do
  local dir = ROOT .. harness
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  for name, bytes in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(bytes)
    f:close()
  end
end
