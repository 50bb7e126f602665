-- Limits that refuse hostile input up front (issue 13): each message names
-- the quantity, the bound and how to raise it (or that nothing can).
local bitnet = require("bitnet")
local gb = require("support.gguf_bytes")
local shell = require("support.shell")

local SHARED = os.getenv("BITNET_SHARED") or "../shared"
local MODEL = SHARED .. "/fixtures/gguf/b158-relu2-i2_s/model.gguf"

local function tmp_write(bytes)
  local path = os.tmpname()
  gb.write(path, bytes)
  return path
end

local function str(s) return gb.u64(#s) .. s end

-- bytes as the message writes them: "160.0 GiB", "3.5 MiB"
local function human(b)
  local units, u = { "KiB", "MiB", "GiB", "TiB" }, 0
  b = b / 1024
  while b >= 1024 and u < 3 do b, u = b / 1024, u + 1 end
  return ("%.1f %s"):format(b, units[u + 1])
end

-- A vocabulary-only GGUF (no tensors) with these key/value bytes.
local function gguf_kvs(kvs)
  return "GGUF" .. gb.u32(3) .. gb.u64(0) .. gb.u64(#kvs) .. table.concat(kvs)
end
local function kv_string(k, v) return str(k) .. gb.u32(8) .. str(v) end
-- an array of n empty strings: 8 bytes each, so the file really holds them
local function kv_empty_strings(k, n) return str(k) .. gb.u32(9) .. gb.u32(8) .. gb.u64(n) .. ("\0"):rep(8 * n) end
local function kv_strings(k, list)
  local parts = { str(k), gb.u32(9), gb.u32(8), gb.u64(#list) }
  for _, s in ipairs(list) do parts[#parts + 1] = str(s) end
  return table.concat(parts)
end

describe("limits", function()
  it("refuse a model file claiming more tensor data than it holds, naming both sizes", function()
    local good = gb.read(MODEL)
    local info = gb.parse(good)
    local t = gb.tensor(info, "token_embd.weight")
    -- a row count that needs far more bytes than the file has
    local path = tmp_write(gb.patch(good, t.dims_pos + 8, gb.u64(1073741824)))
    local m, err = bitnet.load(path)
    os.remove(path)
    assert.is_nil(m)
    assert.truthy(err:find("tensor 'token_embd.weight' needs %d+ bytes, more than the file's " .. #good), err)
    -- a tensor whose shape fits the file but whose offset puts it past the end
    path = tmp_write(gb.patch(good, t.offset_pos, gb.u64(#good - #good % 32)))
    m, err = bitnet.load(path)
    os.remove(path)
    assert.is_nil(m)
    assert.truthy(err:find("runs past the end of the file %(" .. #good .. " bytes; truncated%?%)"), err)
  end)

  it("refuse a vocabulary over 1,000,000 tokens before building it", function()
    local path = tmp_write(gguf_kvs({ kv_string("tokenizer.ggml.model", "gpt2"),
      kv_empty_strings("tokenizer.ggml.tokens", 1000001) }))
    local t, err = bitnet.tokenizer(path)
    os.remove(path)
    assert.is_nil(t)
    assert.are.equal(path .. ": 'tokenizer.ggml.tokens' has 1000001 tokens: over the bound of 1000000 "
      .. "(BN_MAX_VOCAB in csrc/tokenizer/tokenizer.h; raise it and rebuild)", err)
  end)

  it("refuse a merge list over 2,000,000 merges before reading it", function()
    local tokens = {}
    for b = 33, 126 do tokens[#tokens + 1] = string.char(b) end
    local path = tmp_write(gguf_kvs({ kv_string("tokenizer.ggml.model", "gpt2"),
      kv_strings("tokenizer.ggml.tokens", tokens), kv_empty_strings("tokenizer.ggml.merges", 2000001) }))
    local t, err = bitnet.tokenizer(path)
    os.remove(path)
    assert.is_nil(t)
    assert.are.equal(path .. ": 'tokenizer.ggml.merges' has 2000001 merges: over the bound of 2000000 "
      .. "(BN_MAX_MERGES in csrc/tokenizer/tokenizer.h; raise it and rebuild)", err)
  end)

  it("refuse a tokenizer.json whose ids make a vocabulary over the bound", function()
    local path = os.tmpname()
    -- written by awk: a million distinct Lua strings take LuaJIT minutes to intern
    shell.run([[awk 'BEGIN { printf "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"}, ";
      printf "\"model\": {\"type\": \"BPE\", \"merges\": [], \"vocab\": {";
      for (i = 0; i <= 1000000; i++) printf "%s\"t%d\": %d", (i ? ", " : ""), i, i;
      printf "}}}" }' > ]] .. path)
    local t, err = bitnet.tokenizer(path)
    os.remove(path)
    assert.is_nil(t)
    assert.truthy(err:find("vocabulary of 1000001 tokens: over the bound of 1000000 (BN_MAX_VOCAB in csrc/tokenizer/tokenizer.h; "
      .. "raise it and rebuild)", 1, true), err)
  end)

  describe("KV-cache against max_memory", function()
    local m = assert(bitnet.load(MODEL, { max_memory = 64 * 1048576 }))
    local info = m:info()
    -- n_ctx x layers x 2 (K and V) x KV heads x head_dim x 4 bytes (f32)
    local function need(n_ctx, bytes)
      return n_ctx * info.n_layers * 2 * info.n_kv_heads * info.head_dim * bytes
    end

    it("refuses a session whose cache is over the bound, with both figures", function()
      local n_ctx = 1048576
      local ok, err = pcall(m.session, m, { n_ctx = n_ctx })
      assert.is_false(ok)
      assert.are.equal(("model:session: n_ctx 1048576 needs %s of KV-cache; max_memory is 64.0 MiB "
        .. "(raise it with bitnet.load's max_memory option)"):format(human(need(n_ctx, 4))), err:gsub("^[^:]*:%d+: ", ""))
      -- f16 halves it
      ok, err = pcall(m.session, m, { n_ctx = n_ctx, kv_type = "f16" })
      assert.is_false(ok)
      assert.truthy(err:find("needs " .. human(need(n_ctx, 2)) .. " of", 1, true), err)
    end)

    it("accepts a session that fits, and a bigger bound accepts more", function()
      local n = math.floor((64 * 1048576) / need(1, 4) / 64) * 64
      assert.is_truthy(m:session({ n_ctx = n }))
      assert.has_error(function() m:session({ n_ctx = n + 64 }) end)
      local big = assert(bitnet.load(MODEL, { max_memory = 1099511627776 }))
      assert.is_truthy(big:session({ n_ctx = n + 64 }))
    end)

    it("is part of what makes a loaded model the same one", function()
      local same = assert(bitnet.load(MODEL, { max_memory = 64 * 1048576 }))
      local other = assert(bitnet.load(MODEL, { max_memory = 128 * 1048576 }))
      assert.are.equal(m:id(), same:id())
      assert.are_not.equal(m:id(), other:id())
    end)

    it("defaults to the machine's physical memory", function()
      local d = assert(bitnet.load(MODEL))
      local ok, err = pcall(d.session, d, { n_ctx = 1048576, kv_type = "f32" })
      if need(1048576, 4) > 2 ^ 40 then assert.is_false(ok) end
      if not ok then assert.truthy(err:find("max_memory is ", 1, true), err) end
      assert.is_truthy(d:session({ n_ctx = 256 }))
    end)

    it("raises on a max_memory that is not a positive integer", function()
      assert.has_error(function() bitnet.load(MODEL, { max_memory = 0 }) end,
        "bitnet.load: option 'max_memory' must be a positive number of bytes")
      assert.has_error(function() bitnet.load(MODEL, { max_memory = -5 }) end,
        "bitnet.load: option 'max_memory' must be a positive number of bytes")
      assert.has_error(function() bitnet.load(MODEL, { max_memory = 1.5 }) end,
        "bitnet.load: option 'max_memory' must be an integer")
    end)
  end)
end)
