-- TQ2_0 tensors are repacked at load with a byte table (csrc/model/ternary.c);
-- these check that table against the format's meaning on bytes the
-- fixtures do not hold: code 3 (no ternary value) counts as code 2 (+1),
-- as the per-element decoder of TQ1_0 and the other loaders clamp it.
local bitnet = require("bitnet")
local gb = require("support.gguf_bytes")
local fx = require("support.fixtures")

local path = fx.shared .. "/fixtures/gguf/b158-relu2-tq2_0/model.gguf"
local good = gb.read(path)
local info = gb.parse(good)
local tmps = {}

-- The file with the first bytes of a tensor's first block replaced.
local function with_bytes(name, bytes)
  local t = gb.tensor(info, name)
  assert.are.equal(35, t.type) -- GGML_TQ2_0
  return gb.patch(good, info.data_start + t.offset, bytes)
end

-- Logits of five positions of the model in file_bytes (each in its own
-- file: a loaded model maps its file until it is collected).
local function logits(file_bytes)
  local tmp = os.tmpname()
  tmps[#tmps + 1] = tmp
  gb.write(tmp, file_bytes)
  return fx.run_positions(assert(bitnet.load(tmp)), { 1, 7, 42, 3, 99 })
end

describe("TQ2_0 repacking", function()
  teardown(function()
    for _, tmp in ipairs(tmps) do os.remove(tmp) end
  end)

  it("reads code 3 as +1 in every plane of a byte", function()
    local name = "blk.0.ffn_up.weight"
    -- 0xFF: four codes 3; 0xAA: four codes 2 (+1); 0x55: four zeros
    local a = logits(with_bytes(name, ("\255"):rep(8)))
    local b = logits(with_bytes(name, ("\170"):rep(8)))
    local z = logits(with_bytes(name, ("\085"):rep(8)))
    local differs = false
    for i = 1, #a do
      for j = 1, #a[i] do
        assert.are.equal(b[i][j], a[i][j])
        if a[i][j] ~= z[i][j] then differs = true end
      end
    end
    assert.is_true(differs, "the patched weights do not reach the logits: the spec would prove nothing")
  end)
end)
