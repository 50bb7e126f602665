-- Broken GGUF files, each written from a good fixture, are refused with
-- nil and a message naming the file and the problem: never a crash, hang or
-- huge allocation (this spec also runs under ASan).
local bitnet = require("bitnet")
local gb = require("support.gguf_bytes")
local fx = require("support.fixtures")

local good_path = fx.shared .. "/fixtures/gguf/b158-relu2-i2_s/model.gguf"
local good = gb.read(good_path)
local info = gb.parse(good)
local tmp = os.tmpname()

local function refuse(bytes, pattern)
  gb.write(tmp, bytes)
  local m, msg = bitnet.load(tmp)
  assert.is_nil(m)
  assert.is_string(msg)
  assert.is_truthy(msg:find(tmp, 1, true), "message does not name the file: " .. msg)
  assert.is_truthy(msg:find(pattern), ("message %q does not match %q"):format(msg, pattern))
  return msg
end

describe("malformed GGUF", function()
  teardown(function() os.remove(tmp) end)

  it("loads the unmodified copy (the generator starts from a good file)", function()
    gb.write(tmp, good)
    assert.is_truthy(bitnet.load(tmp))
  end)

  it("refuses a missing file with nil, message", function()
    local m, msg = bitnet.load(tmp .. ".does-not-exist")
    assert.is_nil(m)
    assert.is_truthy(msg:find("does%-not%-exist"))
  end)

  it("refuses an empty file", function() refuse("", "empty") end)
  it("refuses bad magic", function() refuse("GGUX" .. good:sub(5), "bad magic") end)

  it("refuses unknown versions", function()
    refuse(gb.patch(good, 5, gb.u32(1)), "unsupported GGUF version 1")
    refuse(gb.patch(good, 5, gb.u32(4)), "unsupported GGUF version 4")
    refuse(gb.patch(good, 5, gb.u32(0x03000000)), "big%-endian")
  end)

  it("refuses truncation anywhere: header, metadata, tensor infos, data", function()
    for _, cut in ipairs({ 3, 10, 20, 30, 100, 1000, info.header_end - 5, info.data_start + 100, #good - 100, #good - 33 }) do
      local msg = refuse(good:sub(1, cut), ".")
      assert.is_truthy(msg:find("truncated") or msg:find("past the end") or msg:find("bad magic"), msg)
    end
  end)

  it("refuses counts that claim more than the file holds", function()
    refuse(gb.patch(good, info.n_tensors_pos, "\255\255\255\255\255\255\255\015"), "truncated file: header claims")
    refuse(gb.patch(good, info.n_kv_pos, "\255\255\255\255\255\255\255\015"), "truncated file: header claims")
    -- a metadata string whose length runs far past the end
    local kv = info.kv["general.name"]
    refuse(gb.patch(good, kv.pos, "\255\255\255\255\255\255\255\127"), "truncated")
    -- an array whose count cannot fit
    local arr = info.kv["tokenizer.ggml.tokens"]
    refuse(gb.patch(good, arr.pos + 4, "\255\255\255\255\255\255\255\007"), "claims")
  end)

  it("refuses an unknown metadata type", function()
    refuse(gb.patch(good, info.kv["general.name"].type_pos, gb.u32(77)), "unknown value type 77")
  end)

  it("refuses duplicate metadata keys and tensor names", function()
    local k = gb.tensor(info, "blk.0.attn_k.weight")
    refuse(gb.patch(good, k.name_pos, "blk.0.attn_q.weight"), "tensor 'blk.0.attn_q.weight' appears twice")
    local bos = info.kv["tokenizer.ggml.bos_token_id"]
    refuse(gb.patch(good, bos.key_pos + 8, "tokenizer.ggml.eos_token_id"),
      "metadata key 'tokenizer.ggml.eos_token_id' appears twice")
  end)

  it("refuses an unknown tensor type and names it", function()
    local t = gb.tensor(info, "blk.0.attn_q.weight")
    refuse(gb.patch(good, t.type_pos, gb.u32(99)), "'blk.0.attn_q.weight' has unknown type 99")
    refuse(gb.patch(good, t.type_pos, gb.u32(2)), "type Q4_0, which bitnet does not read")
  end)

  it("refuses a tensor that runs past the end", function()
    local t = gb.tensor(info, "blk.2.ffn_down.weight")
    refuse(gb.patch(good, t.offset_pos, gb.u64(#good)), "runs past the end")
  end)

  it("refuses misaligned tensor data", function()
    local t = gb.tensor(info, "blk.1.attn_k.weight")
    refuse(gb.patch(good, t.offset_pos, gb.u64(t.offset + 4)), "not aligned to 32")
  end)

  it("refuses overlapping tensors", function()
    local a, b = gb.tensor(info, "blk.0.attn_q.weight"), gb.tensor(info, "blk.0.attn_k.weight")
    refuse(gb.patch(good, b.offset_pos, gb.u64(a.offset + 32)), "overlap")
  end)

  it("refuses impossible shapes", function()
    local t = gb.tensor(info, "blk.0.attn_q.weight")
    refuse(gb.patch(good, t.dims_pos, "\255\255\255\255\255\255\255\127"), "impossible shape")
    refuse(gb.patch(good, t.dims_pos, gb.u64(0)), "impossible shape")
    refuse(gb.patch(good, t.dims_pos - 4, gb.u32(7)), "dimensions")
  end)

  it("refuses a missing required tensor, naming it", function()
    local t = gb.tensor(info, "blk.1.ffn_up.weight")
    refuse(gb.patch(good, t.name_pos, "blk.1.ffn_xx.weight"), "missing tensor 'blk.1.ffn_up.weight'")
    local n = gb.tensor(info, "output_norm.weight")
    refuse(gb.patch(good, n.name_pos, "output_xxxx.weight"), "missing tensor 'output_norm.weight'")
  end)

  it("refuses shapes that disagree with the hyperparameters", function()
    local kv = info.kv["bitnet-b1.58.feed_forward_length"]
    refuse(gb.patch(good, kv.pos, gb.u32(512)), "ffn_sub_norm.weight' has 768 elements, expected 512")
    local heads = info.kv["bitnet-b1.58.attention.head_count_kv"]
    refuse(gb.patch(good, heads.pos, gb.u32(3)), "3 KV heads do not divide 8 heads")
    refuse(gb.patch(good, heads.pos, gb.u32(4)), "layer 0 attention k has shape 64 x 256, hyperparameters say 128 x 256")
  end)

  it("refuses an architecture that is not BitNet, and metadata of the wrong type", function()
    local kv = info.kv["general.architecture"]
    local arch = good:sub(kv.pos + 8, kv.pos + 7 + 12)
    assert.are.equal("bitnet-b1.58", arch)
    refuse(gb.patch(good, kv.pos + 8, "llama3-b1.58"), "'llama3%-b1%.58' is not a BitNet architecture")
    local bc = info.kv["bitnet-b1.58.block_count"]
    refuse(gb.patch(good, bc.type_pos, gb.u32(6)), "'bitnet%-b1%.58%.block_count' is not an integer")
    refuse(gb.patch(good, bc.pos, gb.u32(100000)), "block count 100000 is out of range")
  end)

  it("refuses a hostile alignment", function()
    local kv = info.kv["general.alignment"]
    refuse(gb.patch(good, kv.pos, gb.u32(3)), "power of two")
    refuse(gb.patch(good, kv.pos, gb.u32(0)), "power of two")
  end)

  it("survives every single-byte truncation of the header region without crashing", function()
    -- coarse fuzz: each cut must give nil + message (ASan catches overreads)
    for cut = 0, info.header_end + 40, 7 do
      gb.write(tmp, good:sub(1, cut))
      local m, msg = bitnet.load(tmp)
      assert.is_nil(m)
      assert.is_string(msg)
    end
  end)
end)
