--- bitnet.errors: errors that carry a kind, so a host (the HTTP server)
-- maps them to its own answers by kind rather than by reading the message.
-- A typed error is a table { kind, message, param } whose tostring is the
-- message, so scripts that print or match errors see text as before.
local M = {}

--- The kinds: "invalid_argument" (the caller's request is wrong: a schema
-- that is not JSON Schema or cannot be enforced, a bad tool list),
-- "context_exceeded", "busy", "cancelled".
M.KINDS = { invalid_argument = true, context_exceeded = true, busy = true, cancelled = true }

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end
Error.__concat = function(a, b) return tostring(a) .. tostring(b) end

--- errors.new(kind, message [, param]) -> a typed error value (not raised).
-- param names the offending option or request field, when there is one.
function M.new(kind, message, param)
  if not M.KINDS[kind] then error(("bitnet.errors: unknown kind '%s'"):format(tostring(kind)), 2) end
  return setmetatable({ kind = kind, message = message, param = param }, Error)
end

--- errors.raise(kind, message [, param]): raises a typed error.
function M.raise(kind, message, param)
  error(M.new(kind, message, param), 0)
end

--- errors.kind(e) -> kind | nil: the kind of a typed error, nil for any
-- other value (a plain message, a bug's error).
function M.kind(e)
  return getmetatable(e) == Error and e.kind or nil
end

return M
