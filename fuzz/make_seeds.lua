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

local GGUF_MAX = 1200000
for _, name in ipairs(ls(shared .. "/fixtures/gguf")) do
  local s = slurp(shared .. "/fixtures/gguf/" .. name .. "/model.gguf")
  if s then
    if #s <= GGUF_MAX then put("gguf", name .. ".gguf", s) end
    put("tok_gguf", name .. ".gguf", metadata_only(s))
  end
end
put("tok_gguf", "shipped.gguf", metadata_only(assert(slurp(SHIPPED .. "/kjv-bitnet-6m.gguf"))))
for _, v in ipairs({ "llama-spm", "phi-3" }) do
  put("tok_gguf", v .. ".gguf", assert(slurp(shared .. "/tokenizer-tests/ggml-vocab-" .. v .. ".gguf")))
end

for _, name in ipairs(ls(shared .. "/fixtures/hf")) do
  local dir = shared .. "/fixtures/hf/" .. name
  local cfg, st = slurp(dir .. "/config.json"), slurp(dir .. "/model.safetensors")
  if cfg and st then put("hf", name, two(cfg, st)) end
end

local hf = SHIPPED .. "/hf"
put("tok_hf", "shipped", two(assert(slurp(hf .. "/tokenizer_config.json")), assert(slurp(hf .. "/tokenizer.json"))))
put("tok_hf", "shipped-noconfig", two("", assert(slurp(hf .. "/tokenizer.json"))))

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
