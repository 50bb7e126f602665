-- Broken Hugging Face directories, written by this spec into a temp dir
-- from the packed 2B-4T fixture: every failure returns nil and a message
-- saying what was found (never a crash, never a silent guess), and the
-- legitimate variants (sharded weights, an explicit scale convention) load.
local core = require("bitnet.core")
local json = require("dkjson")
local fx = require("support.fixtures")
local shell = require("support.shell")

local src = fx.shared .. "/fixtures/hf/bitnet2b-packed"
local root = os.tmpname()
os.remove(root)
shell.run("mkdir -p '" .. root .. "'")

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function u64(n)
  local t = {}
  for i = 1, 8 do
    t[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(t)
end

local function le(s, i, n)
  local v = 0
  for k = n, 1, -1 do v = v * 256 + s:byte(i + k - 1) end
  return v
end

-- The fixture's safetensors: header (decoded) and the data that follows it.
local function read_st()
  local s = slurp(src .. "/model.safetensors")
  local n = le(s, 1, 8)
  return json.decode(s:sub(9, 8 + n)), s:sub(9 + n)
end

local function st_bytes(header, data)
  local h = json.encode(header)
  return u64(#h) .. h .. data
end

local n_dirs = 0
-- A fresh directory with the fixture's config (edited by cfg_edit) and
-- weights (edited by st_edit(header, data) -> data); returns its path.
local function make_dir(cfg_edit, st_edit)
  n_dirs = n_dirs + 1
  local dir = root .. "/d" .. n_dirs
  shell.run("mkdir -p '" .. dir .. "'")
  local cfg = json.decode(slurp(src .. "/config.json"))
  if cfg_edit then cfg_edit(cfg) end
  spit(dir .. "/config.json", json.encode(cfg))
  local header, data = read_st()
  if st_edit then
    local edited = st_edit(header, data)
    if edited ~= nil then data = edited end
  end
  if data ~= false then spit(dir .. "/model.safetensors", st_bytes(header, data)) end
  return dir
end

local function fails(dir, message, opts)
  local m, err = core.load(dir, opts)
  assert.is_nil(m)
  assert.are.equal(message:gsub("DIR", dir), err)
end

local Q0 = "model.layers.0.self_attn.q_proj.weight"

describe("a broken Hugging Face directory", function()
  teardown(function() shell.run("rm -rf '" .. root .. "'") end)

  describe("config.json", function()
    it("absent", function()
      local dir = root .. "/empty"
      shell.run("mkdir -p '" .. dir .. "'")
      fails(dir, "DIR: no config.json in the directory")
    end)

    it("named with a trailing slash: messages name the directory once", function()
      local dir = make_dir(function(c) c.hidden_size = nil end)
      local m, err = core.load(dir .. "//")
      assert.is_nil(m)
      assert.are.equal(dir .. "/config.json: missing key 'hidden_size'", err)
    end)

    it("not JSON", function()
      local dir = make_dir()
      spit(dir .. "/config.json", "{ not json")
      fails(dir, "DIR/config.json: not a JSON object")
    end)

    it("missing a required key", function()
      fails(make_dir(function(c) c.hidden_size = nil end), "DIR/config.json: missing key 'hidden_size'")
      fails(make_dir(function(c) c.architectures = nil end),
        "DIR/config.json: missing key 'architectures' (a list naming the model class)")
    end)

    it("with a value of the wrong kind", function()
      fails(make_dir(function(c) c.num_hidden_layers = "two" end),
        "DIR/config.json: 'num_hidden_layers' must be a non-negative integer")
      fails(make_dir(function(c) c.rope_theta = "big" end), "DIR/config.json: 'rope_theta' must be a number")
    end)

    it("naming an unknown architecture", function()
      fails(make_dir(function(c) c.architectures = { "GPT2LMHeadModel" } end),
        "DIR: unknown architecture 'GPT2LMHeadModel' (supported: BitNetForCausalLM, BitnetForCausalLM, " ..
        "LlamaForCausalLM with a bitnet quantization_config)")
    end)

    it("a LlamaForCausalLM that is not quantized with bitnet", function()
      fails(make_dir(function(c)
        c.architectures = { "LlamaForCausalLM" }
        c.quantization_config = nil
      end), "DIR: LlamaForCausalLM without a bitnet quantization_config (quant_method is absent) is not a BitNet model")
    end)

    it("with an unknown activation or scaled RoPE", function()
      fails(make_dir(function(c) c.hidden_act = "gelu" end), "DIR/config.json: unknown hidden_act 'gelu' (relu2 or silu)")
      fails(make_dir(function(c) c.rope_scaling = { type = "linear", factor = 2 } end),
        "DIR/config.json: rope_scaling 'linear' is not supported (only plain RoPE)")
      fails(make_dir(function(c) c.rope_scaling = { rope_type = "llama3", factor = 8 } end),
        "DIR/config.json: rope_scaling 'llama3' is not supported (only plain RoPE)")
      fails(make_dir(function(c) c.rope_scaling = 5 end), "DIR/config.json: rope_scaling '?' is not supported (only plain RoPE)")
      -- plain RoPE spelled out loads
      assert(core.load(make_dir(function(c) c.rope_scaling = { rope_type = "default" } end)))
      assert(core.load(make_dir(function(c) c.rope_scaling = { type = "linear", factor = 1.0 } end)))
    end)

    it("with hyperparameters that do not fit together", function()
      fails(make_dir(function(c) c.num_key_value_heads = 3 end), "DIR: 3 KV heads do not divide 4 heads")
    end)
  end)

  describe("the weight_scale convention", function()
    it("undeterminable: refused, with the option that settles it", function()
      local dir = make_dir(function(c) c.quantization_config.linear_class = nil end)
      fails(dir, "DIR: cannot tell whether weight_scale multiplies or divides the packed weights " ..
        "(config.json has no quantization_config.linear_class); load with scale_convention = \"multiply\" or \"divide\"")
      local m = assert(core.load(dir, { scale_convention = "multiply" }))
      local ref = assert(core.load(src))
      local a, b = fx.run_positions(m, { 3, 4 }), fx.run_positions(ref, { 3, 4 })
      assert.are.same(b[2], a[2])
    end)

    it("an unknown linear_class", function()
      fails(make_dir(function(c) c.quantization_config.linear_class = "fancylinear" end),
        "DIR: cannot tell whether weight_scale multiplies or divides the packed weights " ..
        "(quantization_config.linear_class is 'fancylinear', unknown); load with scale_convention = \"multiply\" or \"divide\"")
    end)

    it("a packed tensor without its scale", function()
      fails(make_dir(nil, function(h) h[Q0 .. "_scale"] = nil end), "DIR: packed tensor '" .. Q0 .. "' has no '" .. Q0 .. "_scale'")
    end)

    it("a scale that is not positive", function()
      fails(make_dir(nil, function(h, data)
        local o = h[Q0 .. "_scale"].data_offsets[1]
        return data:sub(1, o) .. "\0\0" .. data:sub(o + 3) -- bf16 zero
      end), "DIR: tensor '" .. Q0 .. "_scale' is 0, not a positive number")
    end)

    it("a packed code 3 (no ternary value)", function()
      fails(make_dir(nil, function(h, data)
        local o = h[Q0].data_offsets[1]
        return data:sub(1, o) .. "\255" .. data:sub(o + 2)
      end), "DIR: tensor '" .. Q0 .. "' holds code 3 at row 0 column 0 (codes are 0, 1, 2)")
    end)
  end)

  describe("model.safetensors", function()
    it("absent", function()
      fails(make_dir(nil, function() return false end),
        "DIR: no model.safetensors or model.safetensors.index.json in the directory")
    end)

    it("absent, with only a PyTorch pickle", function()
      local dir = make_dir(nil, function() return false end)
      spit(dir .. "/pytorch_model.bin", "PK")
      fails(dir, "DIR: only pytorch_model.bin (a PyTorch pickle) is here; save the weights as safetensors first")
    end)

    it("shorter than its header length field", function()
      local dir = make_dir()
      spit(dir .. "/model.safetensors", "abc")
      fails(dir, "DIR/model.safetensors: not a safetensors file (3 bytes, too short for a header)")
    end)

    it("with a header that runs past the end of the file", function()
      local dir = make_dir()
      spit(dir .. "/model.safetensors", u64(5000) .. "{}")
      fails(dir, "DIR/model.safetensors: safetensors header of 5000 bytes runs past the end of the file (10 bytes; truncated?)")
    end)

    it("with a hostile header length", function()
      local dir = make_dir()
      spit(dir .. "/model.safetensors", u64(2 ^ 53) .. "{}")
      fails(dir, "DIR/model.safetensors: safetensors header claims 9007199254740992 bytes (more than the 104857600 allowed)")
      spit(dir .. "/model.safetensors", string.rep("\255", 8) .. "{}")
      fails(dir, "DIR/model.safetensors: safetensors header claims 18446744073709551615 bytes (more than the 104857600 allowed)")
    end)

    it("with a huge number of entries: read without quadratic work", function()
      -- 50000 extra (empty) tensors: pairwise name checks would take ~10^9
      -- comparisons; names are sorted once instead
      local dir = make_dir(nil, function(h)
        local e = h["model.norm.weight"].data_offsets[2]
        for i = 1, 50000 do h["extra." .. i] = { dtype = "U8", shape = { 0 }, data_offsets = { e, e } } end
      end)
      local t0 = os.clock()
      assert(core.load(dir))
      assert.is_true(os.clock() - t0 < 20, "took " .. (os.clock() - t0) .. " s")
    end)

    it("truncated anywhere, or with header bytes overwritten: a message, never a crash", function()
      local whole = slurp(src .. "/model.safetensors")
      local dir = make_dir()
      local path = dir .. "/model.safetensors"
      local hlen = le(whole, 1, 8)
      local cuts = { 1, 7, 8, 9, 100, hlen, hlen + 7, hlen + 8, hlen + 9, #whole - 1 }
      for k = 1, 30 do cuts[#cuts + 1] = math.floor(#whole * k / 31) end
      for _, n in ipairs(cuts) do
        spit(path, whole:sub(1, n))
        local m, err = core.load(dir)
        assert.is_nil(m, "cut at " .. n)
        assert.is_string(err)
      end
      local seed = 7
      for _ = 1, 60 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        local at = 9 + seed % hlen -- a byte of the JSON header
        local byte = string.char(math.floor(seed / 65536) % 256)
        spit(path, whole:sub(1, at - 1) .. byte .. whole:sub(at + 1))
        local m, err = core.load(dir)
        assert(m or type(err) == "string")
      end
    end)

    it("with a header nested deeper than any parser should follow", function()
      local dir = make_dir()
      local deep = string.rep("[", 100000) .. string.rep("]", 100000)
      spit(dir .. "/model.safetensors", u64(#deep) .. deep)
      fails(dir, "DIR/model.safetensors: safetensors header is not a JSON object")
      local h = '{"x": {"dtype": "U8", "shape": [' .. string.rep("1,", 99) .. '1], "data_offsets": [0, 1]}}'
      spit(dir .. "/model.safetensors", u64(#h) .. h .. "\0")
      fails(dir, "DIR/model.safetensors: tensor 'x' has 100 dimensions (at most 8 are read)")
    end)

    it("with a header that is not JSON", function()
      local dir = make_dir()
      spit(dir .. "/model.safetensors", u64(4) .. "[1,2" .. string.rep("\0", 16))
      fails(dir, "DIR/model.safetensors: safetensors header is not a JSON object")
    end)

    it("truncated in the data", function()
      local dir = make_dir(nil, function(_, data) return data:sub(1, #data - 100) end)
      fails(dir, "DIR/model.safetensors: tensor 'model.norm.weight' data [174620, 174876) runs past the end " ..
        "of the file (174776 data bytes; truncated?)")
    end)

    it("with a dtype that does not match the data size", function()
      fails(make_dir(nil, function(h) h["model.norm.weight"].dtype = "F32" end),
        "DIR/model.safetensors: tensor 'model.norm.weight' is F32 with 128 elements (512 bytes) but its data holds 256 bytes")
    end)

    it("with a shape that does not match the data size", function()
      fails(make_dir(nil, function(h) h["model.norm.weight"].shape = { 129 } end),
        "DIR/model.safetensors: tensor 'model.norm.weight' is BF16 with 129 elements (258 bytes) but its data holds 256 bytes")
    end)

    it("with an unknown dtype, or none", function()
      fails(make_dir(nil, function(h) h["model.norm.weight"].dtype = "Q4" end),
        "DIR/model.safetensors: tensor 'model.norm.weight' has unknown dtype 'Q4'")
      fails(make_dir(nil, function(h) h["model.norm.weight"].dtype = nil end),
        "DIR/model.safetensors: tensor 'model.norm.weight' has no dtype string")
    end)

    it("with hostile shapes and offsets", function()
      fails(make_dir(nil, function(h) h["model.norm.weight"].shape = { 2 ^ 40, 2 ^ 40 } end),
        "DIR/model.safetensors: tensor 'model.norm.weight' has an impossible shape")
      fails(make_dir(nil, function(h) h["model.norm.weight"].shape = { -1 } end),
        "DIR/model.safetensors: tensor 'model.norm.weight' has a shape entry that is not a count")
      fails(make_dir(nil, function(h) h["model.norm.weight"].data_offsets = { 10, 5 } end),
        "DIR/model.safetensors: tensor 'model.norm.weight' has data_offsets that end before they begin")
      fails(make_dir(nil, function(h) h["model.norm.weight"].data_offsets = { 0 } end),
        "DIR/model.safetensors: tensor 'model.norm.weight' has no valid data_offsets [begin, end]")
      fails(make_dir(nil, function(h) h["model.norm.weight"].data_offsets = { 2 ^ 60, 2 ^ 60 + 256 } end),
        "DIR/model.safetensors: tensor 'model.norm.weight' has no valid data_offsets [begin, end]")
    end)

    it("with tensors that share bytes", function()
      fails(make_dir(nil, function(h)
        local o = h[Q0 .. "_scale"].data_offsets[1] + 1 -- inside the 2-byte scale
        h["model.norm.weight"].data_offsets = { o, o + 256 }
      end), "DIR/model.safetensors: tensors '" .. Q0 .. "_scale' and 'model.norm.weight' overlap")
    end)

    it("missing a tensor the family needs", function()
      fails(make_dir(nil, function(h) h["model.layers.1.mlp.up_proj.weight"] = nil end),
        "DIR: missing tensor 'model.layers.1.mlp.up_proj.weight'")
      fails(make_dir(nil, function(h) h["model.layers.0.self_attn.attn_sub_norm.weight"] = nil end),
        "DIR: missing tensor 'model.layers.0.self_attn.attn_sub_norm.weight'")
    end)

    it("with a tensor shaped unlike the config says", function()
      fails(make_dir(function(c) c.num_key_value_heads = 1 end),
        "DIR: tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 128], expected [8, 128]")
      fails(make_dir(function(c) c.vocab_size = 400 end),
        "DIR: tensor 'model.embed_tokens.weight' has shape [384, 128], expected [400, 128]")
    end)

    it("with a tensor of a dtype the role cannot use", function()
      fails(make_dir(nil, function(h) h["model.norm.weight"].dtype = "I16" end),
        "DIR: tensor 'model.norm.weight' is I16, expected F32, F16 or BF16")
    end)

    it("with a bias, which BitNet models do not have", function()
      fails(make_dir(nil, function(h)
        local e = h["model.norm.weight"].data_offsets[2] -- an empty tensor after the last one
        h["model.layers.0.self_attn.q_proj.bias"] = { dtype = "U8", shape = { 0 }, data_offsets = { e, e } }
      end), "DIR: tensor 'model.layers.0.self_attn.q_proj.bias' is a bias; BitNet models have none and it would be ignored")
    end)
  end)

  describe("sharded weights", function()
    -- the fixture's tensors split over two shards, with their index
    local function shard_dir(edit_index, skip_shard)
      n_dirs = n_dirs + 1
      local dir = root .. "/s" .. n_dirs
      shell.run("mkdir -p '" .. dir .. "'")
      spit(dir .. "/config.json", slurp(src .. "/config.json"))
      local header, data = read_st()
      local names = {}
      for k in pairs(header) do if k ~= "__metadata__" then names[#names + 1] = k end end
      table.sort(names)
      local shards, index = { {}, {} }, { metadata = {}, weight_map = {} }
      for i, n in ipairs(names) do
        local s = i % 2 + 1
        local file = ("model-%05d-of-00002.safetensors"):format(s)
        shards[s][#shards[s] + 1] = n
        index.weight_map[n] = file
      end
      for s = 1, 2 do
        local h, parts, off = {}, {}, 0
        for _, n in ipairs(shards[s]) do
          local e = header[n]
          local piece = data:sub(e.data_offsets[1] + 1, e.data_offsets[2])
          h[n] = { dtype = e.dtype, shape = e.shape, data_offsets = { off, off + #piece } }
          parts[#parts + 1] = piece
          off = off + #piece
        end
        if s ~= skip_shard then
          spit(dir .. ("/model-%05d-of-00002.safetensors"):format(s), st_bytes(h, table.concat(parts)))
        end
      end
      if edit_index then edit_index(index) end
      spit(dir .. "/model.safetensors.index.json", json.encode(index))
      return dir
    end

    it("load, and compute what the single file computes", function()
      local m = assert(core.load(shard_dir()))
      local ref = assert(core.load(src))
      assert.are.same(fx.run_positions(ref, { 7, 8, 9 })[3], fx.run_positions(m, { 7, 8, 9 })[3])
      local info = m:info()
      assert.are.equal("safetensors", info.format)
      local a = #slurp(info.path .. "/model-00001-of-00002.safetensors")
      local b = #slurp(info.path .. "/model-00002-of-00002.safetensors")
      assert.are.equal(a + b, info.file_size)
    end)

    it("a missing shard", function()
      fails(shard_dir(nil, 2), "DIR/model-00002-of-00002.safetensors: cannot open: No such file or directory")
    end)

    it("an index that puts a tensor in the wrong shard", function()
      local other
      local dir = shard_dir(function(ix)
        local n = "model.norm.weight"
        other = ix.weight_map[n]:find("00001%-of") and "model-00002-of-00002.safetensors" or "model-00001-of-00002.safetensors"
        ix.weight_map[n] = other
      end)
      fails(dir, "DIR: the index puts tensor 'model.norm.weight' in " .. other .. ", which does not hold it")
    end)

    it("an index naming a file outside the directory", function()
      fails(shard_dir(function(ix) ix.weight_map["model.norm.weight"] = "../model.safetensors" end),
        "DIR/model.safetensors.index.json: shard name '../model.safetensors' is not a plain file name")
    end)

    it("an index without a weight_map, or not JSON", function()
      fails(shard_dir(function(ix) ix.weight_map = nil end),
        "DIR/model.safetensors.index.json: missing key 'weight_map'")
      local dir = shard_dir()
      spit(dir .. "/model.safetensors.index.json", "[]")
      fails(dir, "DIR/model.safetensors.index.json: not a JSON object")
    end)

    it("a tensor in two shards", function()
      local dir = shard_dir()
      local a = slurp(dir .. "/model-00001-of-00002.safetensors")
      spit(dir .. "/model-00002-of-00002.safetensors", a) -- shard 2 now repeats shard 1's names
      local m, err = core.load(dir)
      assert.is_nil(m)
      local quoted = dir:gsub("%p", "%%%0")
      assert.matches("^" .. quoted .. "/model%-0000[12]%-of%-00002%.safetensors: tensor '[^']+' appears twice$", err)
    end)
  end)
end)
