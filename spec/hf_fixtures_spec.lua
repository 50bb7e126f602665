-- Every Hugging Face checkpoint in ../shared/fixtures/hf (the four BitNet
-- families, float masters and packed uint8) loads from its directory and
-- reproduces its expected.json. Tolerances: spec/support/fixtures.lua.
local bitnet = require("bitnet")
local fx = require("support.fixtures")

local fixtures = {
  -- dir, architecture, activation, tied, tensor types { name = count }, RoPE base, eps
  { "bitnet2b-bf16", "BitNetForCausalLM", "relu2", true, { BF16 = 24 }, 500000, 1e-5 },
  { "bitnet2b-packed", "BitNetForCausalLM", "relu2", true, { BF16 = 10, U8 = 14 }, 500000, 1e-5 },
  { "bitnet1b-large", "BitnetForCausalLM", "silu", true, { F32 = 24 }, 10000, 1e-5 },
  { "falcon3-158", "LlamaForCausalLM", "silu", false, { BF16 = 7, U8 = 14 }, 1000042, 1e-6 },
}

local hf_edges = require("support.hf_edges")
local edges = hf_edges.edges

-- largest difference relative to max(1, |reference|), as fx.close measures
local function max_diff(lg, want)
  local w = 0
  for v, x in ipairs(want) do w = math.max(w, math.abs(lg[v] - x) / math.max(1, math.abs(x))) end
  return w
end

describe("Hugging Face fixture", function()
  for _, f in ipairs(fixtures) do
    local name, arch, act, tied, types, theta, eps = f[1], f[2], f[3], f[4], f[5], f[6], f[7]
    describe(name, function()
      local dir = fx.shared .. "/fixtures/hf/" .. name
      local model, expected

      setup(function()
        model = assert(bitnet.load(dir))
        expected = fx.read_json(dir .. "/expected.json")
      end)

      it("reads the family, hyperparameters and tensors", function()
        local info = model:info()
        assert.are.equal(arch, info.arch)
        assert.are.equal("safetensors", info.format)
        assert.are.equal(act, info.activation)
        assert.are.equal(tied, info.tied_embeddings)
        assert.are.equal(2, info.n_layers)
        assert.are.equal(128, info.n_embd)
        assert.are.equal(4, info.n_heads)
        assert.are.equal(2, info.n_kv_heads)
        assert.are.equal(32, info.head_dim)
        assert.are.equal(256, info.n_ff)
        assert.are.equal(384, info.n_vocab)
        assert.are.equal(256, info.n_ctx_train)
        assert.are.equal(theta, info.rope_theta)
        assert.is_true(math.abs(info.norm_eps - eps) < eps * 1e-6)
        assert.are.same(types, info.tensor_types)
        -- every weight of the checkpoint (a packed byte holds 4); 1bitLLM's
        -- rotary_emb.inv_freq buffers are not weights
        local sub_norms = name ~= "falcon3-158" and 128 + 256 or 0
        local per_layer = 128 * 2 + sub_norms + 128 * 128 * 2 + 64 * 128 * 2 + 256 * 128 * 3
        assert.are.equal(2 * per_layer + 128 + 384 * 128 * (tied and 1 or 2), info.n_params)
        assert.are.equal(info.file_size, assert(io.open(dir .. "/model.safetensors", "rb")):seek("end"))
        assert.is_nil(model:chat_template()) -- the fixtures carry no tokenizer files
        local ok, err = pcall(model.tokenize, model, "hi")
        assert.is_false(ok)
        assert.matches("the model has no tokenizer: .*: the directory has no tokenizer%.json", err)
      end)

      it("matches the reference logits token by token and batched", function()
        fx.check_sequences(model, hf_edges.without_edges(expected, name))
      end)

      for si in pairs(edges[name] or {}) do
        it("differs on sequence " .. si .. " only by a rounding knife edge", function()
          local seq = expected.sequences[si]
          local per_pos = fx.run_positions(model, seq.ids)
          for i, lg in ipairs(per_pos) do
            assert.are.equal(seq.top10[i][1][1], fx.argmax(lg), "top-1 at position " .. i)
          end
          local plain = max_diff(per_pos[#per_pos], seq.last_logits)
          assert.is_true(plain > 1e-3, "the edge is no longer crossed: remove this exception")
          local best = math.huge
          for seed = 1, 8 do
            local j = fx.run_positions(model, seq.ids, { jitter = 1e-6, jitter_seed = seed })
            best = math.min(best, max_diff(j[#j], seq.last_logits))
          end
          assert.is_true(best <= fx.TOL, "no jitter reproduces the reference: " .. best)
        end)
      end

      it("continues greedily as the reference does", function()
        assert.are.equal(16, fx.check_greedy(model, expected.greedy))
      end)
    end)
  end

  it("loads the same weights with the scale convention stated explicitly", function()
    local dir = fx.shared .. "/fixtures/hf/bitnet2b-packed"
    local a = assert(bitnet.load(dir))
    local b = assert(bitnet.load(dir, { scale_convention = "multiply" }))
    local c = assert(bitnet.load(dir, { scale_convention = "divide" }))
    local ids = { 5, 17, 200 }
    local la, lb, lc = fx.run_positions(a, ids)[3], fx.run_positions(b, ids)[3], fx.run_positions(c, ids)[3]
    assert.are.same(la, lb)
    assert.is_true(max_diff(lc, la) > 1e-2) -- dividing is a different network
  end)
end)
