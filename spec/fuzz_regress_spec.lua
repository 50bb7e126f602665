-- Replays the inputs the fuzzers found (spec/data/fuzz/<target>/, one file
-- each, laid out as fuzz/fuzz_<target>.c reads them) through the Lua API
-- under the normal build, so a crash or hang that comes back fails CI.
-- `make fuzz-regress` replays the same files through the fuzz targets.
local bitnet = require("bitnet")
local T = require("bitnet.template")
local shell = require("support.shell")
local gb = require("support.gguf_bytes")

local DIR = "spec/data/fuzz"
local SHARED = os.getenv("BITNET_SHARED") or "../shared"

local function files(target)
  local list = {}
  for name in shell.read("ls " .. DIR .. "/" .. target .. " 2>/dev/null || true"):gmatch("[^\n]+") do
    list[#list + 1] = DIR .. "/" .. target .. "/" .. name
  end
  return list
end

local slurp, spit = gb.read, gb.write

-- fuzz_util.h's fuzz_split: a 4-byte little-endian length, the first file, the second
local function split(s)
  local n = 0
  if #s >= 4 then
    local a, b, c, d = s:byte(1, 4)
    n = ((d * 256 + c) * 256 + b) * 256 + a
  end
  local rest = math.max(#s - 4, 0)
  n = math.min(n, rest)
  return s:sub(5, 4 + n), s:sub(5 + n)
end

-- fuzz_util.h's fuzz_unpad: "ZPAD", a u32 count, then bytes that stand for
-- themselves followed by that many zero bytes (at most 4 MiB)
local function unpad(s)
  if #s < 8 or s:sub(1, 4) ~= "ZPAD" then return s, "" end
  return s:sub(9), string.rep("\0", math.min(gb.u32_at(s, 5), 4 * 1024 * 1024))
end

-- nil, message for a bad file; a model or tokenizer otherwise
local function refused_or_loaded(v, err)
  assert.is_truthy(v or type(err) == "string")
end

local LIMITS = { max_output = 65536, max_string = 65536, max_iterations = 2000, max_items = 1000, max_depth = 40 }
local CTX = { messages = T.array({ { role = "user", content = "Hi" } }), bos_token = "<s>", add_generation_prompt = true }

describe("fuzz regressions", function()
  it("has inputs to replay", function()
    assert.is_true(#files("template") > 0)
  end)

  for _, path in ipairs(files("template")) do
    it("template " .. path .. " renders or fails with the engine's own message, quickly", function()
      -- a hard stop, as in fuzz_template.c: the budgets must stop it first
      debug.sethook(function() error("HARD STOP: the budgets did not stop the render", 0) end, "", 50000000)
      local ok, err = pcall(function() return T.compile(slurp(path), LIMITS):render(CTX) end)
      debug.sethook()
      if not ok then
        assert.is_nil(err:find("HARD STOP", 1, true), err)
        assert.is_string(err)
        assert.are.equal("bitnet.template: ", err:sub(1, 17))
        assert.is_nil(err:find("%.lua:%d+:"), err)
      end
    end)
  end

  for _, target in ipairs({ "gguf", "tok_gguf" }) do
    for _, path in ipairs(files(target)) do
      it(target .. " " .. path .. " loads or is refused with a message", function()
        local tmp = os.tmpname()
        local body, zeros = unpad(slurp(path))
        spit(tmp, body .. zeros)
        local m, err = bitnet.load(tmp, { threads = 1 })
        refused_or_loaded(m, err)
        if m then
          local s = m:session({ n_ctx = 8 })
          s:feed({ 0 })
        end
        refused_or_loaded(bitnet.tokenizer(tmp))
        os.remove(tmp)
      end)
    end
  end

  for _, target in ipairs({ "hf", "tok_hf" }) do
    for _, path in ipairs(files(target)) do
      it(target .. " " .. path .. " loads or is refused with a message", function()
        local dir = os.tmpname()
        os.remove(dir)
        shell.run("mkdir -p '" .. dir .. "'")
        local body, zeros = unpad(slurp(path))
        local a, b = split(body)
        if target == "hf" then
          spit(dir .. "/config.json", a)
          spit(dir .. "/model.safetensors", b .. zeros)
          refused_or_loaded(bitnet.load(dir, { threads = 1 }))
        else
          if #a > 0 then spit(dir .. "/tokenizer_config.json", a) end
          spit(dir .. "/tokenizer.json", b)
          refused_or_loaded(bitnet.tokenizer(dir))
        end
        shell.run("rm -rf '" .. dir .. "'")
      end)
    end
  end

  local encode = files("encode")
  if #encode > 0 then
    local vocab = {
      [0] = assert(bitnet.tokenizer(SHARED .. "/tokenizer-tests/ggml-vocab-llama3-bpe.gguf")),
      [1] = assert(bitnet.tokenizer(SHARED .. "/tokenizer-tests/ggml-vocab-llama-spm.gguf")),
    }
    for _, path in ipairs(encode) do
      it("encode " .. path .. " encodes and decodes", function()
        local s = slurp(path)
        local flags, text = s:byte(1) or 0, s:sub(2)
        local spm, special = flags % 2, math.floor(flags / 2) % 2 == 1
        local t = vocab[spm]
        local ids = t:encode(text, { bos = false, special = special })
        local back = t:decode(ids, { special = special })
        if spm == 0 and not special then assert.are.equal(text, back) end
      end)
    end
  end

  -- gbnf and schema: a grammar (or schema), NUL, a text (fuzz_gbnf.c, fuzz_schema.c)
  for _, target in ipairs({ "gbnf", "schema" }) do
    for _, path in ipairs(files(target)) do
      it(target .. " " .. path .. " compiles and reads its text, or is refused with a message", function()
        local s = slurp(path)
        local nul = s:find("\0", 1, true)
        local spec_text, text = nul and s:sub(1, nul - 1) or s, nul and s:sub(nul + 1) or ""
        local tok = assert(bitnet.tokenizer(bitnet.default_model()))
        local g, err
        if target == "gbnf" then
          g, err = bitnet.grammar({ gbnf = spec_text }, tok)
        else
          local ok, parsed = pcall(require("dkjson").decode, spec_text)
          if not ok or parsed == nil then return end -- not JSON: the target skips it too
          g, err = bitnet.grammar({ json_schema = spec_text }, tok)
        end
        if not g then
          assert.is_string(err)
          return
        end
        local m = g:matcher()
        local ok, e = pcall(function()
          for i = 1, math.min(#text, 64) do
            m:mask()
            if not m:feed(text:sub(i, i)) then break end
          end
        end)
        -- an ambiguous grammar may stop at a budget, with a message that names it
        if not ok then assert.matches("max_%a+", e) end
        m:is_complete()
        m:forced()
      end)
    end
  end
end)
