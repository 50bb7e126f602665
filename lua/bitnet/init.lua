--- bitnet: BitNet b1.58 inference for Lua.
-- The C core (bitnet.core) loads models and computes logits; this module is
-- the public face. See README.md for the whole API.
local core = require("bitnet.core")

local bitnet = {}

bitnet.core = core
bitnet.version = core.version

-- The model shipped in models/ (a checkout) or installed beside this
-- module by luarocks (bitnet/models/).
local DEFAULT_MODEL = "kjv-bitnet-6m"

local function module_dir()
  local src = debug.getinfo(1, "S").source
  return src:sub(1, 1) == "@" and (src:sub(2):match("^(.*)/[^/]*$") or ".") or "."
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- bitnet.normalize_path(path) -> path without "." segments, repeated
-- slashes or "dir/.." pairs (as far as they can be folded textually), so
-- messages show "models/x.gguf", not "bin/../lua/bitnet/../../models/x.gguf".
function bitnet.normalize_path(path)
  local absolute = path:sub(1, 1) == "/"
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  local joined = table.concat(parts, "/")
  if absolute then return "/" .. joined end
  return joined ~= "" and joined or "."
end

--- bitnet.default_model() -> path | nil, message
-- The GGUF file of the shipped model: from a luarocks installation
-- (<module dir>/models/) or from a checkout (models/<name>/ beside lua/).
function bitnet.default_model()
  local dir = module_dir()
  local file = DEFAULT_MODEL .. ".gguf"
  for _, candidate in ipairs({
    dir .. "/models/" .. file,
    dir .. "/../../models/" .. DEFAULT_MODEL .. "/" .. file,
  }) do
    if exists(candidate) then return bitnet.normalize_path(candidate) end
  end
  return nil, "the shipped model " .. file .. " is not installed (looked in " .. dir .. "/models and the checkout's models/)"
end

--- bitnet.load([path] [, opts]) -> Model | nil, message
-- Loads a GGUF file or a Hugging Face model directory; without a path (nil
-- or an options table first), the shipped model. Options: threads, kernel,
-- n_ctx, scale_convention. A missing or corrupt file returns nil and a
-- message naming the file and the problem; bad options raise.
function bitnet.load(path, opts)
  if path == nil or type(path) == "table" then
    local default, err = bitnet.default_model()
    if not default then return nil, err end
    return core.load(default, path or opts)
  end
  return core.load(path, opts)
end

--- bitnet.attach(id) -> Model | nil, message
-- Another handle on the model that model:id() named, loaded by any Lua
-- state of this process (nginx thread-pool VMs, luv threads) and still in
-- use. Loading the same file with the same options also shares the weights.
bitnet.attach = core.attach

--- bitnet.convert(src, dst [, opts]) -> true | nil, message
-- Writes a GGUF file from any model bitnet.load reads (a path or a Model):
-- opts.type "i2_s" (default) | "tq1_0" | "tq2_0" | "f16" | "f32",
-- embeddings, fallback, scale_convention, progress (csrc/lua/lconvert.c).
bitnet.convert = core.convert

--- bitnet.tokenizer(path) -> Tokenizer | nil, message
-- A tokenizer on its own: a tokenizer.json, a model directory holding one,
-- or a GGUF file (vocabulary-only files too). See csrc/lua/ltokenizer.c.
bitnet.tokenizer = core.tokenizer

--- bitnet.grammar(spec, tokenizer_or_model) -> Grammar | nil, message:
-- structured output (JSON Schema, JSON, GBNF, regex); see lua/bitnet/grammar.lua.
bitnet.grammar = require("bitnet.grammar").grammar

require("bitnet.perplexity")
bitnet.template = require("bitnet.template")

--- bitnet.sampler([opts]) -> Sampler: the C sampling chain (see
-- csrc/lua/lsampler.c and README "Sampling").
bitnet.sampler = core.sampler
--- bitnet.sampling: presets and policy functions (lua/bitnet/sampling.lua).
bitnet.sampling = require("bitnet.sampling")
-- generate / stream / chat / apply_chat_template on every Model
require("bitnet.generate")

return bitnet
