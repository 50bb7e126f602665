--- bitnet: BitNet b1.58 inference for Lua.
-- The C core (bitnet.core) loads models and computes logits; this module is
-- the public face. See README.md for the whole API.
local core = require("bitnet.core")

local bitnet = {}

bitnet.core = core
bitnet.version = core.version

--- bitnet.load(path [, opts]) -> Model | nil, message
-- Loads a GGUF file or a Hugging Face model directory. Options: threads,
-- kernel, n_ctx, scale_convention. A missing or corrupt file returns nil and
-- a message naming the file and the problem; bad options raise.
bitnet.load = core.load

return bitnet
