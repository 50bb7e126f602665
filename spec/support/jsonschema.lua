-- Python's jsonschema (Debian's python3-jsonschema), a validator we did not
-- write, judges a JSON text against a JSON Schema (both as text).
local shell = require("support.shell")

local M = {}

-- validate(schema, text) -> valid (boolean), the validator's verdict line.
function M.validate(schema, text)
  local sf, tf = os.tmpname(), os.tmpname()
  local f = assert(io.open(sf, "wb")); f:write(schema); f:close()
  f = assert(io.open(tf, "wb")); f:write(text); f:close()
  local verdict = shell.read(("python3 -c 'import json, sys, jsonschema\n"
    .. "try:\n  jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1]))); print(\"valid\")\n"
    .. "except (ValueError, jsonschema.ValidationError) as e: print(\"invalid\", e)' %s %s"):format(sf, tf))
  os.remove(sf)
  os.remove(tf)
  return verdict:match("^valid") ~= nil, verdict
end

return M
