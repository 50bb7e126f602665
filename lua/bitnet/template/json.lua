--- bitnet.template.json: the `tojson` filter, Python's json.dumps.

local ipairs, type = ipairs, type
local concat, floor, huge, sbyte = table.concat, math.floor, math.huge, string.byte
local sformat, sgsub, srep, tsort = string.format, string.gsub, string.rep, table.sort

local budget = require("bitnet.template.budget")
local V = require("bitnet.template.value")
local NONE, dict_keys, fail, is_ascii = V.NONE, V.dict_keys, V.fail, V.is_ascii
local is_int = V.is_int
local is_undef, kind, norm, num_str = V.is_undef, V.kind, V.norm, V.num_str
local pytype, str_lt, to_str, truthy = V.pytype, V.str_lt, V.to_str, V.truthy
local utf8_decode = V.utf8_decode

---------------------------------------------------------------------------
-- JSON (Python json.dumps)
---------------------------------------------------------------------------

local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f" }

local function json_str(s, ensure_ascii)
  s = sgsub(s, '[%z\1-\31"\\]', function(c) return JSON_ESC[c] or sformat("\\u%04x", sbyte(c)) end)
  if ensure_ascii and not is_ascii(s) then
    s = sgsub(s, "[\192-\255][\128-\191]*", function(ch)
      local cp = utf8_decode(ch)
      if cp >= 0x10000 then
        cp = cp - 0x10000
        return sformat("\\u%04x\\u%04x", 0xD800 + floor(cp / 1024), 0xDC00 + cp % 1024)
      end
      return sformat("\\u%04x", cp)
    end)
  end
  return '"' .. s .. '"'
end

local function json_num(x)
  if x ~= x then return "NaN" end
  if x == huge then return "Infinity" end
  if x == -huge then return "-Infinity" end
  return num_str(x)
end

local function json_key(key)
  local tk = type(key)
  if tk == "string" then return key end
  if tk == "number" then return json_num(key) end
  if tk == "boolean" then return key and "true" or "false" end
  if key == NONE then return "null" end
  fail(sformat("keys must be str, int, float, bool or None, not %s", pytype(key)))
end

local function json_encode(v, opts, depth)
  local k = kind(v)
  if k == "string" then return json_str(v, opts.ensure_ascii) end
  if k == "number" then return json_num(v) end
  if k == "boolean" then return v and "true" or "false" end
  if k == "none" then return "null" end
  if k ~= "list" and k ~= "dict" then
    fail(sformat("Object of type %s is not JSON serializable", pytype(v)))
  end
  budget.depth(depth + 1, "tojson of containers")
  local parts = {}
  local size = 0 -- of the parts so far, with their separators
  local sep_size = #opts.item_sep + (opts.indent and 1 + #opts.indent * (depth + 1) or 0)
  local function add(s)
    size = size + #s + sep_size
    budget.string(size, "tojson result")
    parts[#parts + 1] = s
  end
  if k == "list" then
    for i = 1, #v do add(json_encode(norm(v[i]), opts, depth + 1)) end
  else
    local keys = dict_keys(v)
    local names = {}
    for i = 1, #keys do names[i] = json_key(keys[i]) end
    local idx = {}
    for i = 1, #keys do idx[i] = i end
    if opts.sort_keys then tsort(idx, function(a, b) return str_lt(names[a], names[b]) end) end
    for _, i in ipairs(idx) do
      add(json_str(names[i], opts.ensure_ascii) .. opts.kv_sep .. json_encode(norm(v[keys[i]]), opts, depth + 1))
    end
  end
  local open, close = k == "list" and "[" or "{", k == "list" and "]" or "}"
  if #parts == 0 then return open .. close end
  if not opts.indent then return open .. concat(parts, opts.item_sep) .. close end
  local inner = "\n" .. srep(opts.indent, depth + 1)
  return open .. inner .. concat(parts, opts.item_sep .. inner) .. "\n" .. srep(opts.indent, depth) .. close
end

-- tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
local function tojson(v, ensure_ascii, indent, separators, sort_keys)
  local opts = { ensure_ascii = truthy(ensure_ascii), sort_keys = truthy(sort_keys) }
  if indent ~= nil and indent ~= NONE and not is_undef(indent) then
    if type(indent) == "number" then
      if not is_int(indent) then fail("can't multiply sequence by non-int of type 'float'") end
      budget.string(indent, "tojson indent")
      opts.indent = srep(" ", indent > 0 and indent or 0)
    else
      opts.indent = to_str(indent)
    end
  end
  opts.item_sep, opts.kv_sep = opts.indent and "," or ", ", ": "
  if separators ~= nil and separators ~= NONE and not is_undef(separators) then
    if kind(separators) ~= "list" or #separators ~= 2 then fail("tojson: separators must be a pair of strings") end
    opts.item_sep, opts.kv_sep = to_str(separators[1]), to_str(separators[2])
  end
  local s = json_encode(v, opts, 0)
  budget.string(#s, "tojson result") -- a string alone can grow (escapes)
  return s
end

return {
  tojson = tojson,
}
