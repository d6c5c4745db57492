--- `prequalify digest`: the Base64 digest of files (what `Data` holds), or
-- the digest a signtool `.dig` file holds.
-- @module prequalify.cli.digest
local output = require "prequalify.cli.output"

return function(args, cx)
  local digest = require "prequalify.digest"
  local alg = args.algorithm or "sha256"
  local failed = 0
  local items = {}
  for _, path in ipairs(args.files) do
    local b64, err
    if args.dig then b64, err = digest.dig_file(path) else b64, err = digest.file(path, alg) end
    if b64 then
      if args.json then
        items[#items + 1] = { path = path, algorithm = not args.dig and alg or nil, data = b64 }
      else
        cx:print(b64, "  ", path)
      end
    else
      failed = failed + 1
      if args.json then
        items[#items + 1] = { path = path, error = err.message }
      else
        cx.err:write("prequalify: ", err.message, "\n")
      end
    end
  end
  if args.json then cx:print(output.json{ items = items, failed = failed }) end
  return failed == 0 and 0 or 1
end
