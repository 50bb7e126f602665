-- Tokenizers against references we did not write:
--  * llama.cpp's test vectors (../shared/tokenizer-tests, ids made by the
--    Hugging Face tokenizers) for the LLaMA-3 tokenizer.json, the LLaMA-3
--    vocabulary-only GGUF and the LLaMA SentencePiece GGUF;
--  * random hard strings (spec/data/*-fuzz, by tools/gen_tokenizer_vectors.py:
--    Python's `regex` module and the trainer's own Python BPE) for the
--    LLaMA-3 and GPT-2 pre-tokenizers over every Unicode class they use;
--    tools/check_vectors_hf.mjs confirms them with Hugging Face's JS
--    tokenizers (all but two GPT-2 strings where JavaScript's \s, unlike
--    Unicode's White_Space, lacks U+0085);
--  * exact round trips and streaming decodes over the corpora.
local core = require("bitnet.core")
local fx = require("support.fixtures")

local TESTS = fx.shared .. "/tokenizer-tests/"
local CORPORA = fx.shared .. "/corpora/"
local LLAMA3_JSON = TESTS .. "llama3/tokenizer.json"
local LLAMA3_GGUF = TESTS .. "ggml-vocab-llama3-bpe.gguf"
local SPM_GGUF = TESTS .. "ggml-vocab-llama-spm.gguf"

local files = require("support.gguf_bytes") -- read / write whole files
local shell = require("support.shell")
local read, write = files.read, files.write

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function split_plain(s, sep)
  local out, i = {}, 1
  while true do
    local a, b = s:find(sep, i, true)
    if not a then
      out[#out + 1] = s:sub(i)
      return out
    end
    out[#out + 1] = s:sub(i, a - 1)
    i = b + 1
  end
end

-- llama.cpp's format: every string is followed by the separator; .out has
-- one line per string, each id preceded by a space.
local function read_vectors(base)
  local inp = split_plain(read(base .. ".inp"), "\n__ggml_vocab_test__\n")
  assert(inp[#inp] == "", "the .inp file ends with a separator")
  inp[#inp] = nil
  local out = split_plain(read(base .. ".out"), "\n")
  assert(out[#out] == "")
  out[#out] = nil
  assert(#inp == #out, base .. ": as many strings as lines of ids")
  return inp, out
end

local function ids_line(ids)
  return #ids > 0 and (" " .. table.concat(ids, " ")) or ""
end

-- The strings whose ids (bos = false) differ from the expected line, or
-- that do not decode back to themselves.
local function mismatches(tok, inp, out)
  local failed = {}
  for i, s in ipairs(inp) do
    local ids = tok:encode(s, { bos = false })
    local got = ids_line(ids)
    if got ~= out[i] then failed[#failed + 1] = ("%q: got%s, expected%s"):format(s, got, out[i]) end
    if tok:decode(ids) ~= s then failed[#failed + 1] = ("%q does not round-trip"):format(s) end
  end
  return failed
end

-- Whether s is valid UTF-8 (LuaJIT has no utf8 library).
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, min
    if c < 0x80 then len, min = 1, 0
    elseif c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
    elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
    else return false end
    if i + len - 1 > n then return false end
    local v = len == 1 and c or (c % (2 ^ (7 - len)))
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if b < 0x80 or b > 0xBF then return false end
      v = v * 64 + (b - 0x80)
    end
    if v < min or v > 0x10FFFF or (v >= 0xD800 and v <= 0xDFFF) then return false end
    i = i + len
  end
  return true
end

-- Feeds ids one at a time; checks every piece is whole UTF-8 when the
-- whole text is; returns the concatenation.
local function stream(tok, ids, expect_valid)
  local dec = tok:decoder()
  local parts = {}
  for i = 1, #ids do
    local piece = dec:feed(ids[i])
    if expect_valid and not valid_utf8(piece) then
      error(("piece %d (id %d) is not whole UTF-8: %q"):format(i, ids[i], piece))
    end
    parts[#parts + 1] = piece
  end
  parts[#parts + 1] = dec:flush()
  return table.concat(parts)
end

-- The LLaMA-3 tokenizer.json with GPT-2's pre-tokenizer in place of its own.
local function gpt2_variant()
  local s = read(LLAMA3_JSON)
  local a = assert(s:find('"pre_tokenizer"', 1, true))
  local b = assert(s:find('"post_processor"', a, true))
  local path = os.tmpname()
  write(path, s:sub(1, a - 1)
    .. '"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},\n  '
    .. s:sub(b))
  return path
end

local cache = {}
local function load(path)
  if not cache[path] then cache[path] = assert(core.tokenizer(path)) end
  return cache[path]
end

describe("tokenizer test vectors (llama.cpp, Hugging Face ids)", function()
  local cases = {
    { "LLaMA-3 tokenizer.json", LLAMA3_JSON, "ggml-vocab-llama-bpe.gguf" },
    { "LLaMA-3 directory", TESTS .. "llama3", "ggml-vocab-llama-bpe.gguf" },
    { "LLaMA-3 GGUF", LLAMA3_GGUF, "ggml-vocab-llama3-bpe.gguf" },
    { "LLaMA SentencePiece GGUF", SPM_GGUF, "ggml-vocab-llama-spm.gguf" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. ": 46 of 46 strings", function()
      local tok = load(c[2])
      local inp, out = read_vectors(TESTS .. c[3])
      assert.are.equal(46, #inp)
      assert.are.same({}, mismatches(tok, inp, out))
    end)
  end
end)

describe("pre-tokenizers on random hard strings (Python regex + Python BPE)", function()
  local cases = {
    { "LLaMA-3 regex, tokenizer.json", function() return LLAMA3_JSON end, "llama3-fuzz", 300 },
    { "LLaMA-3 regex, GGUF", function() return LLAMA3_GGUF end, "llama3-fuzz", 300 },
    { "GPT-2 regex (ByteLevel use_regex)", gpt2_variant, "gpt2-fuzz", 200 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local path = c[2]()
      local tok = assert(core.tokenizer(path))
      if path ~= LLAMA3_JSON and path ~= LLAMA3_GGUF then os.remove(path) end
      local inp, out = read_vectors("spec/data/" .. c[3])
      assert.are.equal(c[4], #inp)
      assert.are.same({}, mismatches(tok, inp, out))
    end)
  end
end)

-- A Hugging Face tokenizer.json in the layout transformers' converter gives
-- sentencepiece models (LLaMA-2, 1bitLLM), made from the SentencePiece GGUF:
-- merges are every split of a piece into two pieces, ordered by the piece's
-- score. `layout` picks the legacy normalizers or the Metaspace pre-tokenizer.
local function spm_json(layout)
  local spm = load(SPM_GGUF)
  local function jstr(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
      return ("\\u%04x"):format(c:byte())
    end) .. '"'
  end
  local vocab, merges, added = {}, {}, {}
  for id = 0, spm:n_vocab() - 1 do
    local text = spm:text(id)
    vocab[#vocab + 1] = jstr(text) .. ": " .. id
    if spm:is_control(id) or id == 0 then
      added[#added + 1] = ('{"id": %d, "content": %s, "special": true}'):format(id, jstr(text))
    elseif not text:match("^<0x%x%x>$") then
      for k = 2, #text do
        local b = text:byte(k)
        if b < 0x80 or b >= 0xC0 then -- a character boundary
          local l, r = spm:id(text:sub(1, k - 1)), spm:id(text:sub(k))
          if l and r then merges[#merges + 1] = { spm:score(id), l, r, text:sub(1, k - 1) .. " " .. text:sub(k) } end
        end
      end
    end
  end
  table.sort(merges, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for i, m in ipairs(merges) do merges[i] = jstr(m[4]) end
  local split
  if layout == "normalizers" then
    split = '"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\\u2581"}, '
      .. '{"type": "Replace", "pattern": {"String": " "}, "content": "\\u2581"}]}, "pre_tokenizer": null'
  else
    split = '"normalizer": null, "pre_tokenizer": {"type": "Metaspace", "replacement": "\\u2581", '
      .. '"prepend_scheme": "first", "split": ' .. (layout == "metaspace-split" and "true" or "false") .. '}'
  end
  local path = os.tmpname()
  write(path, '{"added_tokens": [' .. table.concat(added, ",") .. '],\n' .. split .. ',\n'
    .. '"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, '
    .. '{"Sequence": {"id": "A", "type_id": 0}}]},\n'
    .. '"model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,\n'
    .. '"vocab": {' .. table.concat(vocab, ",\n") .. '},\n"merges": [' .. table.concat(merges, ",\n") .. ']}}\n')
  return path
end

describe("special = true against Hugging Face (which parses special-token texts by default)", function()
  for _, path in ipairs({ LLAMA3_JSON, LLAMA3_GGUF }) do
    it(path:match("[^/]+$") .. ": 300 of 300 random strings", function()
      local tok = load(path)
      local inp = read_vectors("spec/data/llama3-fuzz")
      local out = split_plain(read("spec/data/llama3-fuzz.special.out"), "\n")
      local failed, with_specials = {}, 0
      for i, s in ipairs(inp) do
        local ids = tok:encode(s, { bos = false, special = true })
        for _, id in ipairs(ids) do
          if tok:is_control(id) then with_specials = with_specials + 1 end
        end
        if ids_line(ids) ~= out[i] then failed[#failed + 1] = ("%q: got%s, expected%s"):format(s, ids_line(ids), out[i]) end
      end
      assert.are.same({}, failed)
      assert.is_true(with_specials >= 50, "the strings do hold special tokens")
    end)
  end
end)

describe("SentencePiece-style tokenizer.json (the LLaMA-2 / 1bitLLM layout)", function()
  for _, layout in ipairs({ "normalizers", "metaspace" }) do
    it(layout .. ": 46 of 46 strings, and round trips", function()
      local path = spm_json(layout)
      local tok = assert(core.tokenizer(path))
      os.remove(path)
      assert.are.equal("spm", tok:type())
      assert.are.equal(1, tok:bos())
      assert.is_true(tok:add_bos()) -- from the post-processor's template
      local inp, out = read_vectors(TESTS .. "ggml-vocab-llama-spm.gguf")
      assert.are.same({}, mismatches(tok, inp, out))
      assert.are.same({ 1, 15043 }, tok:encode("Hello"))
      -- Metaspace "first" prepends only at the start of the text; the
      -- normalizers run on every section between special tokens
      local after = tok:encode("<s>Hello", { bos = false, special = true })
      assert.are.same(layout == "metaspace" and { 1, 10994 } or { 1, 15043 }, after)
    end)
  end

  it("Metaspace split = true merges within words only", function()
    local path = spm_json("metaspace-split")
    local tok = assert(core.tokenizer(path))
    os.remove(path)
    assert.are.same({ 29871, 29871, 15043 }, tok:encode("  Hello", { bos = false }))
    assert.are.equal("  Hello", tok:decode(tok:encode("  Hello")))
  end)
end)

describe("round trips", function()
  local tokenizers = {
    { "LLaMA-3 tokenizer.json", LLAMA3_JSON },
    { "LLaMA-3 GGUF", LLAMA3_GGUF },
    { "LLaMA SentencePiece GGUF", SPM_GGUF },
  }
  local strings = read_vectors(TESTS .. "ggml-vocab-llama-bpe.gguf")
  for _, s in ipairs((read_vectors("spec/data/llama3-fuzz"))) do strings[#strings + 1] = s end
  for _, t in ipairs(tokenizers) do
    describe(t[1], function()
      it("decode(encode(s)) == s and streaming gives the same bytes, for every test string", function()
        local tok = load(t[2])
        for _, s in ipairs(strings) do
          local ids = tok:encode(s, { bos = false })
          assert.are.equal(s, tok:decode(ids))
          assert.are.equal(s, stream(tok, ids, true))
        end
      end)

      it("round-trips the corpora, whole and streamed one id at a time, every piece whole UTF-8", function()
        local tok = load(t[2])
        for _, name in ipairs({ "sherlock.txt", "tinyshakespeare_input.txt", "tinystories_niklas6_197k.txt" }) do
          local s = read(CORPORA .. name)
          local ids = tok:encode(s)
          assert.is_true(#ids > #s / 8, name .. " is tokenized")
          assert.is_true(tok:decode(ids) == s, name .. " round-trips")
          assert.is_true(stream(tok, ids, true) == s, name .. " round-trips streamed")
        end
      end)

      it("handles one huge word, long runs and many special-token prefixes", function()
        local tok = load(t[2])
        for _, s in ipairs({ ("a"):rep(100000), (" "):rep(100000), ("\n"):rep(50000) .. "x",
                             ("<|"):rep(50000), ("\xF0\x9F\x98\x81"):rep(20000), ("1"):rep(100000) }) do
          local ids = tok:encode(s, { bos = false, special = true })
          assert.is_true(#ids >= 1)
          assert.is_true(tok:decode(ids) == s)
        end
      end)

      it("encodes invalid UTF-8 byte for byte, never rejecting it", function()
        local tok = load(t[2])
        local seed = 12345
        local function rand(n) -- a small LCG: the same bytes on every interpreter
          seed = (seed * 1103515245 + 12345) % 2147483648
          return seed % n
        end
        for _ = 1, 200 do
          local b = {}
          for k = 1, rand(40) + 1 do
            b[k] = rand(4) == 0 and string.char(0x80 + rand(128)) or string.char(rand(256))
          end
          local s = table.concat(b)
          local ids = tok:encode(s, { bos = false })
          assert.are.equal(s, tok:decode(ids))
          assert.are.equal(s, stream(tok, ids, false))
        end
        -- truncated, overlong, surrogate and out-of-range sequences
        for _, s in ipairs({ "\xE2\x96", "a\xF0\x9F\x98", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF\xFE" }) do
          assert.are.equal(s, tok:decode(tok:encode(s, { bos = false })))
        end
      end)
    end)
  end
end)

describe("bitnet.Tokenizer", function()
  it("reports its kind, size and special ids", function()
    local bpe, spm = load(LLAMA3_JSON), load(SPM_GGUF)
    assert.are.equal("bpe", bpe:type())
    assert.are.equal(128256, bpe:n_vocab())
    assert.are.equal(128000, bpe:bos())
    assert.are.equal(128001, bpe:eos())
    assert.are.equal(128009, bpe:eot())
    assert.is_true(bpe:is_eog(128001))
    assert.is_true(bpe:is_eog(128009))
    assert.is_false(bpe:is_eog(128000))
    assert.is_false(bpe:is_eog(9906))
    assert.are.equal("spm", spm:type())
    assert.are.equal(32000, spm:n_vocab())
    assert.are.equal(1, spm:bos())
    assert.are.equal(2, spm:eos())
    assert.is_nil(spm:eot())
    assert.is_true(spm:is_eog(2))
    assert.is_true(spm:is_control(1))
    assert.is_false(spm:is_control(15043))
    assert.matches("bitnet.Tokenizer<bpe, 128256 tokens>", tostring(bpe), 1, true)
  end)

  it("adds BOS as the tokenizer says, or as asked", function()
    local spm, gguf3, json3 = load(SPM_GGUF), load(LLAMA3_GGUF), load(LLAMA3_JSON)
    assert.are.same({ 1, 15043 }, spm:encode("Hello"))      -- add_bos_token = true
    assert.are.same({ 15043 }, spm:encode("Hello", { bos = false }))
    assert.are.same({ 128000, 9906 }, gguf3:encode("Hello")) -- add_bos_token = true
    assert.is_true(gguf3:add_bos())
    assert.are.same({ 9906 }, json3:encode("Hello"))         -- no template, no add_bos_token
    assert.is_false(json3:add_bos())
    assert.are.same({ 128000, 9906 }, json3:encode("Hello", { bos = true }))
    assert.are.same({}, json3:encode(""))
  end)

  it("recognizes special tokens in text only when asked", function()
    local tok = load(LLAMA3_JSON)
    local text = "<|begin_of_text|>Hi<|eot_id|>"
    local plain = tok:encode(text)
    for _, id in ipairs(plain) do assert.is_true(id < 128000) end
    assert.are.equal(text, tok:decode(plain))
    local ids = tok:encode(text, { special = true })
    assert.are.same({ 128000, 13347, 128009 }, ids)
    assert.are.equal("Hi", tok:decode(ids))
    assert.are.equal(text, tok:decode(ids, { special = true }))
    local spm = load(SPM_GGUF)
    -- after a special token sentencepiece starts a new text: a "▁" again
    assert.are.same({ 1, 15043 }, spm:encode("<s>Hello", { bos = false, special = true }))
    assert.are.same(spm:encode("<s>Hello", { bos = false }), spm:encode("<s>Hello", { bos = false, special = false }))
    assert.are_not.same({ 1, 15043 }, spm:encode("<s>Hello", { bos = false }))
  end)

  it("gives each token's bytes and vocabulary text", function()
    local bpe, spm = load(LLAMA3_JSON), load(SPM_GGUF)
    assert.are.equal(" Hello", bpe:piece(22691))
    assert.are.equal("\xC4\xA0Hello", bpe:text(22691)) -- "ĠHello"
    assert.are.equal(22691, bpe:id("\xC4\xA0Hello"))
    assert.is_nil(bpe:id("no such token, surely"))
    assert.are.equal("<|eot_id|>", bpe:piece(128009))
    assert.are.equal(" Hello", spm:piece(15043))
    assert.are.equal("\n", spm:piece(13)) -- <0x0A>
    assert.are.equal("<0x0A>", spm:text(13))
  end)

  it("strips sentencepiece's leading space once, unless told not to", function()
    local spm = load(SPM_GGUF)
    assert.are.equal("Hello world", spm:decode({ 15043, 3186 }))
    assert.are.equal("Hello world", spm:decode({ 1, 15043, 3186 }))
    assert.are.equal(" Hello world", spm:decode({ 15043, 3186 }, { strip_leading_space = false }))
    assert.are.equal("<s> Hello", spm:decode({ 1, 15043 }, { special = true }))
    local dec = spm:decoder({ strip_leading_space = false })
    assert.are.equal(" Hello", dec:feed(15043))
  end)

  it("streams: carries split UTF-8 sequences, flushes and resets", function()
    local tok = load(LLAMA3_JSON)
    local ids = tok:encode("\xF0\x9F\x98\x81") -- one emoji in several byte tokens
    assert.is_true(#ids > 1)
    local dec = tok:decoder()
    for i = 1, #ids - 1 do assert.are.equal("", dec:feed(ids[i])) end
    assert.are.equal("\xF0\x9F\x98\x81", dec:feed(ids[#ids]))
    assert.are.equal("", dec:flush())
    dec:feed(ids[1])
    assert.are_not.equal("", dec:flush()) -- the unfinished bytes come out
    dec:feed(ids[1])
    dec:reset()
    assert.are.equal("", dec:flush())
    assert.are.equal("bitnet.Decoder", getmetatable(dec).__name)
  end)

  it("keeps working after the Tokenizer is collected (the decoder holds it)", function()
    local dec = assert(core.tokenizer(SPM_GGUF)):decoder()
    collectgarbage()
    collectgarbage()
    assert.are.equal("Hello", dec:feed(15043))
  end)

  it("raises on misuse, naming the argument", function()
    local tok = load(LLAMA3_JSON)
    assert.has_error(function() tok:decode({ 1, 128256 }) end, "tok:decode: unknown token id 128256 at ids[2]")
    assert.has_error(function() tok:decode({ -1 }) end, "tok:decode: unknown token id -1 at ids[1]")
    assert.has_error(function() tok:decode({ "x" }) end, "tok:decode: ids[1] must be an integer, got string")
    assert.has_error(function() tok:decode({ 1.5 }) end, "tok:decode: ids[1] must be an integer, got number")
    assert.has_error(function() tok:encode("x", { bso = true }) end, "tok:encode: unknown option 'bso'")
    assert.has_error(function() tok:encode("x", { bos = 1 }) end, "tok:encode: option 'bos' must be a boolean")
    assert.has_error(function() tok:encode({}) end)
    assert.has_error(function() tok:decode({}, { speical = true }) end, "tok:decode: unknown option 'speical'")
    assert.has_error(function() tok:piece(200000) end, "tok:piece: unknown token id 200000 (the vocabulary has 128256)")
    assert.has_error(function() tok:is_eog("x") end, "tok:is_eog: token id must be an integer, got string")
    assert.has_error(function() tok:decoder():feed(-5) end, "dec:feed: unknown token id -5 (the vocabulary has 128256)")
    assert.has_error(function() tok.encode(nil, "x") end)
  end)
end)

describe("loading bad tokenizers", function()
  local dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    shell.run("mkdir -p " .. dir)
  end)
  teardown(function() shell.run("rm -rf " .. dir) end)

  local function check(name, content, pattern)
    local path = dir .. "/" .. name
    if content then write(path, content) end
    local tok, err = core.tokenizer(path)
    assert.is_nil(tok)
    assert.is_string(err)
    assert.matches(pattern, err, 1, true)
  end

  it("loads a minimal byte-level vocabulary (256 bytes, no merges, no specials)", function()
    local vocab, next_cp = {}, 256
    for b = 0, 255 do -- GPT-2's byte-level alphabet
      local printable = (b >= 0x21 and b <= 0x7E) or (b >= 0xA1 and b <= 0xAC) or b >= 0xAE
      local cp = printable and b or next_cp
      if not printable then next_cp = next_cp + 1 end
      local ch = cp < 0x80 and string.char(cp) or string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
      if ch == '"' or ch == "\\" then ch = "\\" .. ch end
      vocab[#vocab + 1] = ('"%s": %d'):format(ch, b)
    end
    local path = dir .. "/bytes.json"
    write(path, '{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {'
      .. table.concat(vocab, ", ") .. '}, "merges": []}}')
    local tok = assert(core.tokenizer(path))
    assert.are.same({ 104, 105, 32, 0, 255 }, tok:encode("hi \0\255"))
    assert.are.equal("hi \0\255", tok:decode({ 104, 105, 32, 0, 255 }))
    assert.is_nil(tok:bos())
    assert.is_false(tok:add_bos())
    assert.has_error(function() tok:encode("x", { bos = true }) end, "tok:encode: the tokenizer has no BOS token")
  end)

  it("returns nil and a message", function()
    check("missing.json", nil, "no such file")
    check("bad.json", "{ not json", "not valid JSON")
    check("array.json", "[1, 2]", "not an object")
    check("nomodel.json", "{}", "no 'model' object")
    check("wordpiece.json", '{"model": {"type": "WordPiece", "vocab": {}}}', "only BPE")
    local bytelevel = '"pre_tokenizer": {"type": "ByteLevel"}'
    check("badid.json", '{' .. bytelevel .. ', "model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}', "bad id")
    check("hugeid.json", '{' .. bytelevel .. ', "model": {"type": "BPE", "vocab": {"a": 1e12}, "merges": []}}', "bad id")
    check("sparse.json", '{' .. bytelevel .. ', "model": {"type": "BPE", "vocab": {"a": 16000000}, "merges": []}}',
      "far beyond the 1 tokens defined")
    check("badmerge.json", '{' .. bytelevel .. ', "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}',
      "not in the vocabulary")
    check("nobytes.json", '{' .. bytelevel .. ', "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}',
      "no token for byte")
    check("regex.json", '{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\\\w+"}, "behavior": "Isolated"},'
      .. ' "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}', "Split regex")
    check("nosplit.json", '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}', "neither byte-level")
    check("truncated.gguf", read(SPM_GGUF):sub(1, 100000), "truncated.gguf")
    check("garbage.gguf", "GGUF" .. string.rep("\255", 64), "garbage.gguf")
  end)

  it("reports a GGUF file without tokenizer metadata", function()
    -- a vocabulary-only GGUF with the tokenizer.ggml.model key renamed
    local s = read(SPM_GGUF)
    local a = assert(s:find("tokenizer.ggml.model", 1, true))
    check("notok.gguf", s:sub(1, a - 1) .. "tokenizer.ggml.mode_" .. s:sub(a + 20), "no tokenizer")
  end)

  it("survives truncations and corruptions of a GGUF vocabulary without crashing", function()
    local s = read(SPM_GGUF)
    local path = dir .. "/fuzz.gguf"
    local seed = 7
    for i = 1, 40 do
      seed = (seed * 1103515245 + 12345) % 2147483648
      local pos = 24 + seed % 4000
      local mutated = s:sub(1, pos - 1) .. string.char(seed % 256) .. s:sub(pos + 1)
      if i % 4 == 0 then mutated = s:sub(1, seed % #s) end
      write(path, mutated)
      local tok, err = core.tokenizer(path)
      if tok then
        assert.are.equal("Hello", tok:decode(tok:encode("Hello"))) -- a benign change
      else
        assert.is_string(err)
      end
    end
  end)
end)

describe("the model's tokenizer", function()
  local bitnet = require("bitnet")

  it("is the one in the GGUF file, and keeps the model alive", function()
    local model = assert(bitnet.load(fx.shared .. "/fixtures/gguf/bitnet-silu-f32/model.gguf"))
    local tok = model:tokenizer()
    assert.are.equal("spm", tok:type())
    assert.are.equal(512, tok:n_vocab())
    -- the fixture's vocabulary: 256 byte tokens and "▁w0" .. "▁w252"
    local ids = model:tokenize("hello", { bos = true })
    assert.are.equal(1, ids[1])
    assert.are.same(ids, tok:encode("hello", { bos = true }))
    assert.are.equal("w1 w2", model:detokenize({ 1, 260, 261 }))
    assert.are.equal("<s> w1", model:detokenize({ 1, 260 }, { special = true }))
    model = nil
    collectgarbage()
    collectgarbage()
    assert.are.equal("w1 w2", tok:decode({ 1, 260, 261 }))
    local dec = tok:decoder()
    tok = nil
    collectgarbage()
    assert.are.equal("w1", dec:feed(260))
  end)

  it("raises with the reason when the model has none", function()
    local model = bitnet.load(fx.shared .. "/fixtures/hf/bitnet2b-bf16")
    if not model then return pending("the Hugging Face loader is not in this build") end
    local ok, err = pcall(model.tokenize, model, "x")
    if ok then return pending("this fixture carries a tokenizer now") end
    assert.matches("model:tokenize: the model has no tokenizer", err, 1, true)
    assert.has_error(function() model:tokenizer() end)
  end)

  it("loads and round-trips the project's own trained tokenizer", function()
    local paths = {}
    for _, p in ipairs({ "models/kjv-bitnet-6m/hf", "models/kjv-bitnet-6m/kjv-bitnet-6m.gguf" }) do
      if exists(p) or exists(p .. "/tokenizer.json") then paths[#paths + 1] = p end
    end
    if #paths == 0 then return pending("models/kjv-bitnet-6m is not there yet") end
    local text = read(CORPORA .. "tinystories_niklas6_197k.txt")
    local first
    for _, p in ipairs(paths) do
      local tok = assert(core.tokenizer(p))
      assert.are.equal("bpe", tok:type())
      local ids = tok:encode(text, { bos = false })
      assert.is_true(tok:decode(ids) == text)
      assert.is_true(stream(tok, ids, true) == text)
      if first then assert.are.same(first, ids) end -- the GGUF and the tokenizer.json agree
      first = ids
      assert.is_true(tok:is_eog(tok:eos()))
      assert.is_true(tok:is_eog(tok:eot()))
      assert.is_true(tok:add_bos())
    end
    local model = bitnet.load(paths[#paths])
    if model then -- the model's own tokenizer is the same, BOS first by default
      local ids = model:tokenize("In the beginning God created the heaven and the earth.")
      assert.are.equal(model:tokenizer():bos(), ids[1])
      assert.are.equal("In the beginning God created the heaven and the earth.", model:detokenize(ids))
    end
  end)
end)
