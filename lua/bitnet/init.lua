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

local hub = require("bitnet.hub")
bitnet.hub = hub

--- bitnet.resolve(model) -> path | nil, message
-- What a model name means: an existing file or directory as it is (a local
-- path always wins), else a Hugging Face reference ("org/name[:FILE or
-- :TYPE]") resolved from the cache alone (never the network); anything
-- else as it is, for the loader to report.
function bitnet.resolve(model)
  if type(model) ~= "string" or exists(model) then return model end -- (io.open opens directories too)
  -- a model file's name is a path to report missing, not a repo
  local ref = hub.parse_ref(model)
  if not ref or ref.repo:lower():match("%.gguf$") or ref.repo:match("%.json$") then return model end
  local path, err = hub.resolve(model)
  if path then return path end
  return nil, ("no file or directory %s, and %s"):format(model, err)
end

--- bitnet.load([path] [, opts]) -> Model | nil, message
-- Loads a GGUF file or a Hugging Face model directory, or a model pulled
-- from the Hugging Face Hub named "org/name[:FILE or :TYPE]" (from the
-- cache only: a missing one returns nil and a message saying to run
-- `bitnet pull`); without a path (nil or an options table first), the
-- shipped model. Options: threads, kernel, n_ctx, scale_convention. A
-- missing or corrupt file returns nil and a message naming the file and
-- the problem; bad options raise.
function bitnet.load(path, opts)
  if path == nil or type(path) == "table" then
    local default, err = bitnet.default_model()
    if not default then return nil, err end
    return core.load(default, path or opts)
  end
  local resolved, err = bitnet.resolve(path)
  if not resolved then return nil, err end
  return core.load(resolved, opts)
end

--- bitnet.pull(ref [, { progress = function(done, total) end }]) -> path, info | nil, message
-- Downloads a model from the Hugging Face Hub into huggingface_hub's cache
-- (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE, HF_HUB_OFFLINE as huggingface_hub
-- reads them) and returns the path bitnet.load takes. See lua/bitnet/hub.lua.
function bitnet.pull(ref, opts)
  if type(ref) ~= "string" then error("bitnet.pull: argument 'ref' must be a string, got " .. type(ref), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("bitnet.pull: options must be a table", 2) end
  for k in pairs(opts or {}) do
    if k ~= "progress" then error("bitnet.pull: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if opts and opts.progress ~= nil and type(opts.progress) ~= "function" then
    error("bitnet.pull: option 'progress' must be a function", 2)
  end
  return hub.pull(ref, { progress = opts and opts.progress })
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
-- model:embed: text embeddings (lua/bitnet/embed.lua)
require("bitnet.embed")

return bitnet
