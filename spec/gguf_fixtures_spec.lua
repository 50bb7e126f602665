-- The forward pass reproduces the reference logits of every GGUF fixture in
-- ../shared/fixtures/gguf (each tensor type and architecture there). The
-- tolerances and their reasons are in spec/support/fixtures.lua.
local bitnet = require("bitnet")
local fx = require("support.fixtures")

local fixtures = {
  -- name, arch, activation, linear weight type, tensors of that type, RoPE base
  { "bitnet-silu-f32", "bitnet", "silu", "F32", 35, 10000 }, -- norms and embeddings are F32 too
  { "bitnet-silu-tq2_0", "bitnet", "silu", "TQ2_0", 21, 10000 },
  { "bitnet-silu-tq1_0", "bitnet", "silu", "TQ1_0", 21, 10000 },
  { "b158-relu2-i2_s", "bitnet-b1.58", "relu2", "I2_S", 21, 500000 },
  { "b158-relu2-tq2_0", "bitnet-b1.58", "relu2", "TQ2_0", 21, 500000 },
  { "bitnet-relu2-tq2_0", "bitnet", "relu2", "TQ2_0", 21, 500000 },
}

describe("GGUF fixture", function()
  for _, f in ipairs(fixtures) do
    local name, arch, act, wtype, wcount, theta = f[1], f[2], f[3], f[4], f[5], f[6]
    describe(name, function()
      local dir = fx.shared .. "/fixtures/gguf/" .. name
      local model, expected

      setup(function()
        model = assert(bitnet.load(dir .. "/model.gguf"))
        expected = fx.read_json(dir .. "/expected.json")
      end)

      it("reads the architecture and hyperparameters", function()
        local info = model:info()
        assert.are.equal(arch, info.arch)
        assert.are.equal(act, info.activation)
        assert.are.equal("gguf", info.format)
        assert.are.equal(3, info.n_layers)
        assert.are.equal(256, info.n_embd)
        assert.are.equal(8, info.n_heads)
        assert.are.equal(2, info.n_kv_heads)
        assert.are.equal(32, info.head_dim)
        assert.are.equal(768, info.n_ff)
        assert.are.equal(512, info.n_vocab)
        assert.are.equal(256, info.n_ctx_train)
        assert.are.equal(theta, info.rope_theta)
        assert.are.equal(wcount, info.tensor_types[wtype])
        assert.is_true(info.tied_embeddings)
        assert.are.equal(info.file_size, assert(io.open(dir .. "/model.gguf", "rb")):seek("end"))
      end)

      it("matches the reference logits token by token and batched", function()
        fx.check_sequences(model, expected)
      end)

      it("continues greedily as the reference does", function()
        assert.are.equal(16, fx.check_greedy(model, expected.greedy))
      end)

      it("is as sensitive to rounding as the tolerances assume", function()
        -- a rounding-level input change moves some logit far beyond 1e-4:
        -- the reason long sequences cannot be held to 1e-4 everywhere
        assert.is_true(fx.sensitivity(model, expected.sequences[3].ids) > 1e-2)
      end)
    end)
  end
end)
