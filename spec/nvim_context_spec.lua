-- The inline completion's context and stop rules (nvim/lua/bitnet_nvim/context.lua:
-- plain Lua, no editor API), with real vocabularies: the window around the
-- cursor, its bounds, the prompt's ids (BOS + prefix, or the FIM form with
-- the ids llama.cpp's vocabularies give those tokens), the front dropped in
-- steps so consecutive pauses share their start, and when a suggestion ends.
package.path = "nvim/lua/?.lua;" .. package.path
local context = require("bitnet_nvim.context")
local bitnet = require("bitnet")
local fx = require("support.fixtures")

local function concat(...)
  local out = {}
  for _, t in ipairs({ ... }) do
    for _, v in ipairs(type(t) == "table" and t or { t }) do out[#out + 1] = v end
  end
  return out
end

describe("completion context", function()
  it("reads a window of lines whose start moves in steps", function()
    assert.are.same({ 0, 65 }, { context.span(0, 1000, 256, 64) })
    assert.are.same({ 0, 365 }, { context.span(300, 1000, 256, 64) }) -- 44 lines before the first step
    assert.are.same({ 704, 1000 }, { context.span(999, 1000, 256, 64) }) -- 743 rounded down to 64s
    -- a cursor moving down 63 lines keeps the same first line, the 64th moves it by 64
    local first = context.span(400, 100000, 256, 64)
    for row = 400, 400 + 63 do
      local f = context.span(row, 100000, 256, 64)
      if f ~= first then
        assert.are.equal(first + 64, f)
        assert.is_true(row - f >= 256)
        break
      end
    end
    local f, l = context.span(50000, 100000, 256, 64)
    assert.is_true(50000 - f >= 256 and 50000 - f < 256 + 64 and l == 50065)
  end)

  it("splits the window at the cursor and bounds each side", function()
    local lines = { "  one", "  two three", "four" }
    local ctx = context.window(lines, 2, 6, { max_bytes = 1000 })
    assert.are.equal("  one\n  two ", ctx.prefix)
    assert.are.equal("three\nfour", ctx.suffix)
    assert.are.same({ "  two ", "three", 2, "" }, { ctx.before, ctx.after, ctx.indent, ctx.extra })
    -- a huge line: each side at most max_bytes, never starting inside a UTF-8 character
    local big = string.rep("é", 5000) -- 10,000 bytes
    ctx = context.window({ big, big }, 2, 5000, { max_bytes = 1000 })
    assert.is_true(#ctx.prefix <= 1000 and #ctx.suffix <= 1000)
    assert.is_truthy(ctx.prefix:match("^é") and ctx.suffix:match("é$"))
    assert.are.equal(big:sub(1, 5000), ctx.before)
    -- the prefix's start moves in steps of max_bytes / 4 as it grows
    local a = context.window({ string.rep("x", 1100) }, 1, 1100, { max_bytes = 1000 }).prefix
    local b = context.window({ string.rep("x", 1140) }, 1, 1140, { max_bytes = 1000 }).prefix
    assert.are.equal(850, #a)
    assert.are.equal(890, #b) -- the same start: 250 bytes dropped from both
  end)

  it("keys the cache by what the suggestion depends on", function()
    local a = context.window({ "ab", "cd" }, 1, 1, { max_bytes = 100 })
    local b = context.window({ "ab", "cd" }, 1, 2, { max_bytes = 100 })
    assert.are_not.equal(context.key(a), context.key(b))
    assert.are.equal(context.key(a), context.key(context.window({ "ab", "cd" }, 1, 1, { max_bytes = 100 })))
    a.extra = "x\n"
    assert.are_not.equal(context.key(a), context.key(context.window({ "ab", "cd" }, 1, 1, { max_bytes = 100 })))
  end)
end)

describe("completion prompt", function()
  local model, tok
  setup(function()
    model = assert(bitnet.load())
    tok = model:tokenizer()
  end)
  teardown(function() model:close() end)

  it("is BOS and the text before the cursor, special-token texts as plain text", function()
    local ctx = context.window({ "In the beginning <|eot_id|>", "God created" }, 2, 3, { max_bytes = 4096 })
    local ids, fim = context.prompt(tok, ctx, 200, true)
    assert.is_false(fim) -- the shipped vocabulary has no FIM tokens
    assert.are.same(concat(tok:bos(), tok:encode("In the beginning <|eot_id|>\nGod", { bos = false })), ids)
    for _, id in ipairs(ids) do assert.are_not.equal(tok:eot(), id) end
  end)

  it("drops the front in steps of a quarter of the budget, so pauses share their start", function()
    local words = {}
    for i = 1, 400 do words[i] = "and the earth" end
    local text = table.concat(words, " ")
    local budget = 100
    local prev
    local full = tok:encode(text, { bos = false })
    for extra = 0, 20 do
      local ctx = context.window({ text .. string.rep(" x", extra) }, 1, #text + 2 * extra, { max_bytes = 100000 })
      local ids = context.prompt(tok, ctx, budget, false)
      assert.is_true(#ids <= budget)
      assert.are.equal(tok:bos(), ids[1])
      local all = tok:encode(ctx.prefix, { bos = false })
      -- what is kept is the end of the whole encoding
      for i = 2, #ids do assert.are.equal(all[#all - #ids + i], ids[i]) end
      if prev and #ids > #prev then -- same start: the earlier prompt is a prefix
        for i = 1, #prev - 1 do assert.are.equal(prev[i], ids[i]) end
      end
      prev = ids
    end
    assert.is_true(#full > budget)
  end)

  it("takes the FIM form where the vocabulary has the tokens (StarCoder, DeepSeek Coder)", function()
    for _, name in ipairs({ "starcoder", "deepseek-coder" }) do
      local t = assert(bitnet.tokenizer(fx.shared .. "/tokenizer-tests/ggml-vocab-" .. name .. ".gguf"))
      local ctx = context.window({ "def add(a, b):", "    return", "", "print(add(1, 2))" }, 2, 10, { max_bytes = 4096 })
      local ids, fim = context.prompt(t, ctx, 200, true)
      assert.is_true(fim)
      local p, s, m = t:fim()
      local bos = t:add_bos() and t:bos() or {}
      assert.are.same(concat(bos, p, t:encode("def add(a, b):\n    return", { bos = false }), s,
        t:encode("\n\nprint(add(1, 2))", { bos = false }), m), ids)
      -- fim = false: the prefix alone
      ids, fim = context.prompt(t, ctx, 200, false)
      assert.is_false(fim)
      assert.are.same(concat(bos, t:encode("def add(a, b):\n    return", { bos = false })), ids)
      -- the suffix keeps to a quarter of the budget, the whole within it
      local long = {}
      for i = 1, 300 do long[i] = "x = " .. i end
      ctx = context.window(concat({ "a = 1" }, long), 1, 5, { max_bytes = 100000 })
      ids = context.prompt(t, ctx, 64, true)
      assert.is_true(#ids <= 64)
      assert.are.equal(m, ids[#ids])
    end
  end)
end)

describe("completion stop rules", function()
  local function ctx(before, after, indent)
    return { before = before, after = after or "", indent = indent or #before:match("^[ \t]*") }
  end

  it("keeps at most max_lines lines, one when text follows the cursor", function()
    assert.are.same({ "a\nb", true }, { context.trim("a\nb\nc", ctx("x"), 2) })
    assert.are.same({ "a\nb", false }, { context.trim("a\nb", ctx("x"), 2) })
    assert.are.same({ "a", true }, { context.trim("a\n", ctx("x"), 1) }) -- a second line has begun
    assert.are.same({ "a", true }, { context.trim("a\nb", ctx("x", ")"), 8) })
  end)

  it("stops before a line indented less than the cursor's", function()
    local c = ctx("    x = ")
    assert.are.same({ "1\n    return x", true }, { context.trim("1\n    return x\ndef g():", c, 8) })
    -- a line still being indented is not judged yet
    assert.are.same({ "1\n  ", false }, { context.trim("1\n  ", c, 8) })
    assert.are.same({ "1\n    y", false }, { context.trim("1\n    y", c, 8) })
  end)

  it("stops at a blank line once there is code", function()
    assert.are.same({ "foo()\nbar()", true }, { context.trim("foo()\nbar()\n\nbaz()", ctx(""), 8) })
    assert.are.same({ "b", true }, { context.trim("b\n   \nc", ctx("a"), 8) })
    -- on an empty line with nothing yet: leading blank lines are kept
    assert.are.same({ "\nfoo", false }, { context.trim("\nfoo", ctx(""), 8) })
    -- a blank last line still being written is not judged yet
    assert.are.same({ "foo\n", false }, { context.trim("foo\n", ctx(""), 8) })
  end)
end)
