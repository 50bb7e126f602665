-- The shipped model (models/kjv-bitnet-6m): the engine agrees with the
-- PyTorch model it was trained as (reference.json, written by
-- tools/train/export.py from the same weights), and it models held-out text.
local bitnet = require("bitnet")
local fx = require("support.fixtures")

local dir = "models/kjv-bitnet-6m"

local function cosine(a, b)
  local ab, aa, bb = 0, 0, 0
  for i = 1, #a do
    ab, aa, bb = ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]
  end
  return ab / math.sqrt(aa * bb)
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("shipped model", function()
  local ref = fx.read_json(dir .. "/reference.json")
  local forms = {
    { "GGUF", function() return bitnet.load() end },
    { "Hugging Face directory", function() return bitnet.load(dir .. "/hf") end },
  }

  for _, form in ipairs(forms) do
    describe("as " .. form[1], function()
      local model
      setup(function() model = assert(form[2]()) end)

      it("gives the PyTorch model's logits (cosine >= 0.999, same top-1)", function()
        for _, seq in ipairs(ref.sequences) do
          local s = model:session()
          s:feed(seq.ids)
          local lg = s:logits()
          s:close()
          local c = cosine(lg, seq.last_logits)
          assert.is_true(c >= 0.999, ("%s: cosine %.6f"):format(seq.name, c))
          assert.are.equal(seq.top5_ids[1], (fx.argmax(lg)), seq.name)
        end
      end)

      it("continues 'And it came to pass' greedily as PyTorch does", function()
        local s = model:session()
        s:feed(ref.greedy.prompt_ids)
        for k, want in ipairs(ref.greedy.ids) do
          local top = fx.argmax(s:logits())
          assert.are.equal(want, top, "greedy token " .. k)
          s:feed({ top })
        end
      end)
    end)
  end

  it("tokenizes like the training tool", function()
    local model = assert(bitnet.load())
    for _, seq in ipairs(ref.sequences) do
      if seq.name == "genesis" then
        local ids = model:tokenize(seq.text, { special = true, bos = false })
        assert.are.same(seq.ids, ids)
      end
    end
  end)

  it("models the held-out books (Ruth, Philippians) at <= 2 bits per byte, as PyTorch measured", function()
    local model = assert(bitnet.load())
    local text = read(dir .. "/eval.txt")
    local ppl, r = model:perplexity(text)
    local torch_bpb = fx.read_json(dir .. "/eval.json").eval.bits_per_byte
    assert.is_true(r.bits_per_byte <= 2.0, "bits per byte " .. r.bits_per_byte)
    assert.is_true(math.abs(r.bits_per_byte - torch_bpb) <= 0.01 * torch_bpb,
      ("engine %.4f vs PyTorch %.4f bits per byte"):format(r.bits_per_byte, torch_bpb))
    assert.is_true(ppl > 1)
  end)
end)
