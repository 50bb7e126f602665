-- Next-token predictions of a BitNet model: feeds a few token ids and prints
-- the five most likely next tokens after each.
--   bin/bitnet lua examples/predict.lua [MODEL.gguf|HF_DIR] [id id ...]
-- From a checkout after `make`; with bitnet installed by luarocks, plain lua5.4.
local bitnet = require("bitnet")

local path = arg[1] or "../shared/fixtures/gguf/b158-relu2-i2_s/model.gguf" -- from the checkout
local model, err = bitnet.load(path)
if not model then
  io.stderr:write(err, "\n")
  os.exit(1)
end
print(model)

local ids = {}
for i = 2, #arg do ids[#ids + 1] = math.tointeger and math.tointeger(tonumber(arg[i])) or tonumber(arg[i]) end
if #ids == 0 then ids = { 1, 137, 41, 124, 111 } end

local function top(logits, k)
  local order = {}
  for i = 1, #logits do order[i] = i end
  table.sort(order, function(a, b) return logits[a] > logits[b] end)
  local out = {}
  for i = 1, k do out[i] = { id = order[i] - 1, logit = logits[order[i]] } end
  return out
end

local tok = model.tokenizer and select(2, pcall(model.tokenizer, model))
local function show(id)
  if type(tok) == "userdata" then return ("%d %q"):format(id, tok:piece(id)) end
  return tostring(id)
end

local sess = model:session()
for _, id in ipairs(ids) do
  sess:feed({ id })
  local parts = {}
  for _, c in ipairs(top(sess:logits(), 5)) do parts[#parts + 1] = ("%s (%.2f)"):format(show(c.id), c.logit) end
  print(("after %-12s -> %s"):format(show(id), table.concat(parts, ", ")))
end
