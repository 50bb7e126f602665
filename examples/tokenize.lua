-- Tokenizes text with any tokenizer (tokenizer.json, model directory or GGUF
-- file) and shows each token: its id, its vocabulary text and its bytes.
--   bin/bitnet lua examples/tokenize.lua TOKENIZER ["text" | -f FILE] [--special]
-- From a checkout after `make`; with bitnet installed by luarocks, plain lua5.4.
local bitnet = require("bitnet")
local load_tokenizer = bitnet.tokenizer or bitnet.core.tokenizer

local path = arg[1] or "../shared/tokenizer-tests/llama3" -- from the checkout
local text, special = "Hello, world! Tokenizers turn text into ids.", false
local i = 2
while arg[i] do
  if arg[i] == "--special" then
    special = true
  elseif arg[i] == "-f" then
    local f = assert(io.open(arg[i + 1], "rb"))
    text = f:read("*a")
    f:close()
    i = i + 1
  else
    text = arg[i]
  end
  i = i + 1
end

local tok, err = load_tokenizer(path)
if not tok then
  io.stderr:write(err, "\n")
  os.exit(1)
end
print(tok)

local ids = tok:encode(text, { special = special })
for _, id in ipairs(ids) do
  print(("%8d  %-24s %q"):format(id, tok:text(id), tok:piece(id)))
end
print(("%d bytes -> %d tokens"):format(#text, #ids))
local back = tok:decode(ids, { special = special })
print(back == text and "decode(encode(text)) == text" or ("decoded differently: %q"):format(back))
