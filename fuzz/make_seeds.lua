-- Builds the fuzz targets' seed corpora from the reference data in
-- ../shared and the shipped model:
--   lua5.4 fuzz/make_seeds.lua SHARED OUTDIR   (make fuzz-seeds)
-- Seeds are rebuilt, not committed: the GGUF and HF ones are whole fixture
-- models. Each target's input layout is described in its fuzz/fuzz_*.c.
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local gb = require("support.gguf_bytes")
local json = require("dkjson")
local shared, out = arg[1] or "../shared", arg[2] or "build/fuzz/seeds"
local SHIPPED = "models/kjv-bitnet-6m"

local slurp = require("support.checks").read_file_if -- nil when absent

local function put(target, name, bytes)
  os.execute("mkdir -p '" .. out .. "/" .. target .. "'")
  gb.write(out .. "/" .. target .. "/" .. name, bytes)
end

local function ls(dir)
  local names = {}
  local p = assert(io.popen("ls '" .. dir .. "' 2>/dev/null"))
  for l in p:lines() do names[#names + 1] = l end
  p:close()
  return names
end

-- u32 length of a, then a, then b (fuzz_util.h's fuzz_split)
local function two(a, b)
  return gb.u32(#a) .. a .. b
end

-- The metadata of a GGUF file alone (no tensors): small tokenizer seeds.
local function metadata_only(s)
  local info = gb.parse(s)
  local stop = info.tensors[1] and info.tensors[1].name_pos - 8 or info.header_end
  return gb.patch(s:sub(1, stop - 1), info.n_tensors_pos, gb.u64(0))
end

-- The model targets take padded inputs (fuzz_util.h's fuzz_unpad): "ZPAD",
-- a u32 count of zero bytes, then the file up to its tensor data plus the
-- first KEEP bytes of data; the zeros stand for the rest.
local KEEP = 1024
local function padded(head, whole)
  return "ZPAD" .. gb.u32(#whole - #head) .. head
end

-- Bytes a tensor of n elements takes, by ggml type id (the fixtures' types).
local TYPE_BYTES = {
  [0] = function(n) return 4 * n end, [1] = function(n) return 2 * n end, [30] = function(n) return 2 * n end,
  [34] = function(n) return n // 256 * 54 end, [35] = function(n) return n // 256 * 66 end,
  [36] = function(n) return n // 4 + 32 end, -- I2_S: 2 bits a weight, then the scale in a 32-byte tail
}

-- A fixture cut to one layer, as a padded input, with a hidden width of
-- `width` (8 heads of 32 become width / 32) and a feed-forward width of
-- `ff`: the forward pass and the weight conversion at load run on a 6th to
-- a 24th of the fixture's weights (that work, not the parsing, bounds the
-- executions per second). TQ rows need a multiple of 256 weights, I2_S 128.
local function one_layer_padded(s, width, ff)
  local info = gb.parse(s)
  local arch_at = info.kv["general.architecture"].pos
  local arch = s:sub(arch_at + 8, arch_at + 7 + gb.u64_at(s, arch_at))
  local kv_end = info.tensors[1].name_pos - 8
  local function u32_of(key) return gb.u32_at(s, info.kv[arch .. "." .. key].pos) end
  local old_ff, old_width, heads = u32_of("feed_forward_length"), u32_of("embedding_length"), u32_of("attention.head_count")
  for key, v in pairs({ block_count = 1, feed_forward_length = ff, embedding_length = width,
    ["attention.head_count"] = heads * width // old_width }) do
    s = gb.patch(s, info.kv[arch .. "." .. key].pos, gb.u32(v))
  end
  local infos, offset = {}, 0
  for _, t in ipairs(info.tensors) do
    local layer = t.name:match("^blk%.(%d+)%.")
    if not layer or layer == "0" then
      local dims, n = {}, 1
      for d = 1, t.n_dims do
        dims[d] = gb.u64_at(s, t.dims_pos + 8 * (d - 1))
        if dims[d] == old_ff and t.name:match("ffn_") then dims[d] = ff
        elseif dims[d] == old_width then dims[d] = width end
        n = n * dims[d]
      end
      local size = assert(TYPE_BYTES[t.type], "type " .. t.type)(n)
      local parts = { gb.u64(#t.name), t.name, gb.u32(t.n_dims) }
      for d = 1, t.n_dims do parts[#parts + 1] = gb.u64(dims[d]) end
      parts[#parts + 1] = gb.u32(t.type) .. gb.u64(offset)
      infos[#infos + 1] = table.concat(parts)
      offset = offset + (size + 31) // 32 * 32
    end
  end
  local head = s:sub(1, 8) .. gb.u64(#infos) .. s:sub(17, kv_end - 1) .. table.concat(infos)
  head = head .. string.rep("\0", (32 - #head % 32) % 32)
  return "ZPAD" .. gb.u32(offset - KEEP) .. head .. s:sub(info.data_start, info.data_start + KEEP - 1)
end

for _, name in ipairs(ls(shared .. "/fixtures/gguf")) do
  local s = slurp(shared .. "/fixtures/gguf/" .. name .. "/model.gguf")
  if s then
    local tq = name:match("tq%d_0")
    put("gguf", name .. ".gguf", one_layer_padded(s, tq and 256 or 128, tq and 256 or 128))
    put("tok_gguf", name .. ".gguf", metadata_only(s))
  end
end
-- The metadata entries of a GGUF file: { key, type, bytes } each, arrays
-- as { key, 9, elem_type, { element bytes... } }.
local SCALAR = { [0] = 1, 1, 2, 2, 4, 4, 4, 1, [10] = 8, [11] = 8, [12] = 8 }
local function read_entries(s)
  local function value(pos, t)
    if t == 8 then return pos + 8 + gb.u64_at(s, pos) end
    return pos + SCALAR[t]
  end
  local entries, pos = {}, 25
  for _ = 1, gb.u64_at(s, 17) do
    local key = s:sub(pos + 8, pos + 7 + gb.u64_at(s, pos))
    pos = pos + 8 + #key
    local t = gb.u32_at(s, pos)
    pos = pos + 4
    if t == 9 then
      local et, list = gb.u32_at(s, pos), {}
      pos = pos + 12
      for i = 1, gb.u64_at(s, pos - 8) do
        local e = value(pos, et)
        list[i] = s:sub(pos, e - 1)
        pos = e
      end
      entries[#entries + 1] = { key, 9, et, list }
    else
      local e = value(pos, t)
      entries[#entries + 1] = { key, t, s:sub(pos, e - 1) }
      pos = e
    end
  end
  return entries
end

local function write_entries(entries)
  local out = { "GGUF", gb.u32(3), gb.u64(0), gb.u64(#entries) }
  for _, e in ipairs(entries) do
    out[#out + 1] = gb.u64(#e[1]) .. e[1] .. gb.u32(e[2])
    if e[2] == 9 then out[#out + 1] = gb.u32(e[3]) .. gb.u64(#e[4]) .. table.concat(e[4])
    else out[#out + 1] = e[3] end
  end
  return table.concat(out)
end

-- A vocabulary's metadata cut to its first n tokens plus the special ones
-- (control and user-defined tokens, the ids the *_token_id keys name),
-- renumbered, with the merges whose parts and result are left: building a
-- 32k-token vocabulary took 38 ms an execution, this one a few.
local function small_vocabulary(s, n)
  local entries, by_key = read_entries(s), {}
  for _, e in ipairs(entries) do by_key[e[1]] = e end
  local tokens, types = by_key["tokenizer.ggml.tokens"][4], by_key["tokenizer.ggml.token_type"]
  local named = {}
  for _, e in ipairs(entries) do
    if e[1]:match("^tokenizer%.ggml%..*_token_id$") then named[gb.u32_at(e[3], 1)] = true end
  end
  local new_id, kept, text = {}, {}, {}
  for id = 0, #tokens - 1 do
    local ty = types and gb.u32_at(types[4][id + 1], 1)
    if id < n or named[id] or ty == 3 or ty == 4 then
      new_id[id] = #kept
      kept[#kept + 1] = id
      text[tokens[id + 1]:sub(9)] = true
    end
  end
  for _, e in ipairs(entries) do
    if e[2] == 9 and #e[4] == #tokens then -- tokens, scores, token_type
      local list = {}
      for i, id in ipairs(kept) do list[i] = e[4][id + 1] end
      e[4] = list
    elseif e[1] == "tokenizer.ggml.merges" then
      local list = {}
      for _, m in ipairs(e[4]) do
        local a, b = m:sub(9):match("^(.-) (.*)$")
        if a and text[a] and text[b] and text[a .. b] then list[#list + 1] = m end
      end
      e[4] = list
    elseif e[1]:match("^tokenizer%.ggml%..*_token_id$") then
      e[3] = gb.u32(new_id[gb.u32_at(e[3], 1)] or 0)
    end
  end
  return write_entries(entries)
end

put("tok_gguf", "shipped.gguf", small_vocabulary(assert(slurp(SHIPPED .. "/kjv-bitnet-6m.gguf")), 1000))
for _, v in ipairs({ "llama-spm", "phi-3", "llama3-bpe" }) do
  put("tok_gguf", v .. ".gguf",
    small_vocabulary(assert(slurp(shared .. "/tokenizer-tests/ggml-vocab-" .. v .. ".gguf")), 1000))
end

-- A safetensors file (u64 header length, the JSON header, the data) laid
-- out again smallest tensor first, as a padded input: the tensors of at
-- most SMALL bytes (norms, weight scales: a zero scale is refused) keep
-- their bytes, the weights after them are the padding's zeros.
local SMALL = 1024
local function small_first_padded(cfg, st)
  local n = gb.u64_at(st, 1)
  local header = json.decode(st:sub(9, 8 + n))
  local names = {}
  for k, v in pairs(header) do
    if k ~= "__metadata__" then names[#names + 1] = k; v.size = v.data_offsets[2] - v.data_offsets[1] end
  end
  table.sort(names, function(a, b)
    if header[a].size ~= header[b].size then return header[a].size < header[b].size end
    return a < b
  end)
  local data, offset, kept = {}, 0, 0
  for _, k in ipairs(names) do
    local v = header[k]
    if v.size <= SMALL then
      data[#data + 1] = st:sub(9 + n + v.data_offsets[1], 8 + n + v.data_offsets[2])
      kept = offset + v.size
    end
    v.data_offsets = { offset, offset + v.size }
    offset = offset + v.size
    v.size = nil
  end
  local js = json.encode(header)
  local head = gb.u64(#js) .. js .. table.concat(data)
  return "ZPAD" .. gb.u32(offset - kept) .. two(cfg, head)
end

for _, name in ipairs(ls(shared .. "/fixtures/hf")) do
  local dir = shared .. "/fixtures/hf/" .. name
  local cfg, st = slurp(dir .. "/config.json"), slurp(dir .. "/model.safetensors")
  if cfg and st then put("hf", name, small_first_padded(cfg, st)) end
end

-- A tokenizer.json (BPE) cut to the tokens with ids below n and the added
-- tokens, renumbered (in the vocabulary, the added tokens and the post-
-- processor's "ids"), with the merges whose parts and result are left.
local function small_tokenizer_json(src, n)
  local t = json.decode(src)
  local new_id, next_id = {}, n
  for tok, id in pairs(t.model.vocab) do
    if id < n then new_id[id] = id else t.model.vocab[tok] = nil end
  end
  for _, a in ipairs(t.added_tokens) do
    new_id[a.id], next_id = next_id, next_id + 1
    a.id = new_id[a.id]
  end
  local merges = {}
  for _, m in ipairs(t.model.merges) do
    local a, b = m:match("^(.-) (.*)$")
    local v = t.model.vocab
    if a and v[a] and v[b] and v[a .. b] then merges[#merges + 1] = m end
  end
  t.model.merges = merges
  local function renumber(x)
    if type(x) ~= "table" then return end
    if type(x.ids) == "table" then
      for i, id in ipairs(x.ids) do x.ids[i] = new_id[id] or id end
    end
    for _, v in pairs(x) do renumber(v) end
  end
  renumber(t.post_processor)
  return json.encode(t)
end

local hf = SHIPPED .. "/hf"
local small_json = small_tokenizer_json(assert(slurp(hf .. "/tokenizer.json")), 1000)
put("tok_hf", "shipped", two(assert(slurp(hf .. "/tokenizer_config.json")), small_json))
put("tok_hf", "shipped-noconfig", two("", small_json))

local n = 0
for _, f in ipairs(ls(shared .. "/tokenizer-tests")) do
  if f:match("%.inp$") and not f:match("llama3") then
    local s = slurp(shared .. "/tokenizer-tests/" .. f)
    for text in (s .. "\n__ggml_vocab_test__\n"):gmatch("(.-)\n__ggml_vocab_test__\n") do
      n = n + 1
      put("encode", ("%04d"):format(n), string.char(n % 8) .. text)
    end
  end
end

local cases = json.decode(assert(slurp(shared .. "/fixtures/templates.json")))
for i, c in ipairs(cases) do put("template", ("%02d-%s"):format(i, c.name:gsub("[^%w]", "_")), c.template) end

-- sampler: option mask, then values (fuzz_sampler.c); logits with NaN, inf, huge
local function f32(x) return string.pack("<f", x) end
local logits = {}
for i = 1, 64 do logits[i] = f32(math.sin(i) * 10) end
local row = table.concat(logits)
put("sampler", "defaults", gb.u32(0) .. gb.u32(7) .. row)
put("sampler", "greedy", gb.u32(1) .. f32(0) .. gb.u32(1) .. row)
put("sampler", "all", gb.u32(0x7fff) .. f32(0.7) .. gb.u32(5) .. f32(0.9) .. f32(0.05) .. f32(0.8) .. f32(1.3)
  .. gb.u32(32) .. f32(0.5) .. f32(0.5) .. gb.u32(42) .. string.rep(gb.u32(3) .. f32(-1 / 0), 7)
  .. string.rep(gb.u32(5), 15) .. row)
put("sampler", "specials", gb.u32(0) .. gb.u32(1) .. f32(0 / 0) .. f32(1 / 0) .. f32(-1 / 0) .. f32(3e38) .. f32(-3e38)
  .. f32(1e-45) .. row)
print("seeds in " .. out)

-- a few templates using what the chat templates do not: macros, filters, tests, loops
local extra = {
  "{% macro m(x, y=2) %}{{ x ~ y }}{% if x > 0 %}{{ m(x - 1) }}{% endif %}{% endmacro %}{{ m(3) }}",
  "{% for i in range(5) if i is odd %}{{ loop.index }}:{{ i * 2 }}{{ ',' if not loop.last }}{% else %}none{% endfor %}",
  "{% set ns = namespace(a=1) %}{% for m in messages %}{% set ns.a = ns.a + 1 %}{{ m.role | upper | replace('U', 'u') }}"
    .. "{{ m['content'] | trim | length }}{% endfor %}{{ ns.a }}{{ tools | tojson(indent=2) }}",
  "{{ 'a b c' | split(' ') | join('-') }}{{ [3, 1, 2] | sort | reverse | list | first }}{{ {'b': 1, 'a': 2} | dictsort }}"
    .. "{{ s[1:] }}{{ f | round(1) }}{{ n is divisibleby 3 }}{{ x | default('d') }}{% raw %}{{ raw }}{% endraw %}",
  "{%- if messages[0].role == 'system' -%}{{ raise_exception('no system') }}{%- endif -%}{# comment #}",
}
for i, src in ipairs(extra) do put("template", ("x%02d"):format(i), src) end

-- gbnf: a grammar, NUL, a text to read through it (fuzz_gbnf.c): llama.cpp's
-- grammars with their hand-made examples
local examples = json.decode(assert(slurp("spec/data/gbnf/examples.json")))
for file, cases in pairs(examples) do
  local g = assert(slurp("spec/data/gbnf/" .. file))
  for i, text in ipairs(cases.accept) do put("gbnf", ("%s-a%d"):format(file, i), g .. "\0" .. text) end
  for i, text in ipairs(cases.reject) do put("gbnf", ("%s-r%d"):format(file, i), g .. "\0" .. text) end
end

-- schema: a JSON Schema, NUL, an instance (fuzz_schema.c): every 4th schema
-- of the MaskBench dev sample with its first instance
local n = 0
for line in io.lines(shared .. "/structured/maskbench-dev.jsonl") do
  n = n + 1
  if n % 4 == 1 then
    local case = json.decode(line)
    local text = case.tests[1] and case.tests[1].text or ""
    if #case.schema + #text < 8000 then put("schema", ("%03d"):format(n), case.schema .. "\0" .. text) end
  end
end
