-- Converts a BitNet model (a Hugging Face directory or a GGUF file) to a GGUF
-- file that llama.cpp (tq1_0, tq2_0, f16) or bitnet.cpp (i2_s) loads.
--   bin/bitnet lua examples/convert.lua SRC DST [--type i2_s|tq1_0|tq2_0|f16|f32]
--       [--embeddings f16|bf16|f32|q8_0|q6_k] [--fallback f16|f32]
--       [--scale-convention multiply|divide] [--quiet]
-- From a checkout after `make`; with bitnet installed by luarocks, plain lua5.4.
-- Stands in for `bitnet convert` until the command-line tool exists.
local bitnet = require("bitnet")

local usage = "usage: convert.lua SRC DST [--type T] [--embeddings T] [--fallback f16|f32] " ..
  "[--scale-convention multiply|divide] [--quiet]"

local function fail(msg)
  io.stderr:write(msg, "\n")
  os.exit(1)
end

local flags = { ["--type"] = "type", ["--embeddings"] = "embeddings", ["--fallback"] = "fallback",
                ["--scale-convention"] = "scale_convention" }
local positional, opts, quiet = {}, {}, false
local i = 1
while i <= #arg do
  local a = arg[i]
  if flags[a] then
    if not arg[i + 1] then fail(a .. " needs a value\n" .. usage) end
    opts[flags[a]] = arg[i + 1]
    i = i + 2
  elseif a == "--quiet" then
    quiet, i = true, i + 1
  elseif a:sub(1, 2) == "--" then
    fail("unknown flag " .. a .. "\n" .. usage)
  else
    positional[#positional + 1] = a
    i = i + 1
  end
end
if #positional ~= 2 then fail(usage) end

if not quiet then
  opts.progress = function(done, total)
    io.stderr:write(("\r%d/%d tensors"):format(done, total))
    if done == total then io.stderr:write("\n") end
  end
end

local ok, res, err = pcall(bitnet.convert, positional[1], positional[2], opts)
if not ok then fail(tostring(res)) end -- misuse: a bad option value
if not res then fail(err) end
if not quiet then print(("wrote %s"):format(positional[2])) end
