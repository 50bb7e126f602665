-- The `bitnet` command: cli.main in process (with stand-in streams) for each
-- command and error, and bin/bitnet as a separate process from the checkout.
local bitnet = require("bitnet")
local cli = require("bitnet.cli")
local fx = require("support.fixtures")

local MODEL = fx.shared .. "/fixtures/gguf/bitnet-silu-tq2_0/model.gguf"

local run = require("support.checks").run_cli -- status, stdout, stderr

local function tmpname()
  local name = os.tmpname()
  os.remove(name)
  return name
end

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

describe("bitnet command", function()
  local model
  setup(function()
    model = assert(bitnet.load(MODEL))
  end)

  describe("help", function()
    it("prints the usage, and each command's options", function()
      local status, out, err = run({})
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.truthy(err:find("usage: bitnet <command>", 1, true))
      status, out = run({ "help" })
      assert.are.equal(0, status)
      assert.truthy(out:find("perplexity MODEL FILE", 1, true))
      for _, cmd in ipairs({ "run", "chat", "info", "perplexity", "convert", "bench", "repl" }) do
        local s1, o1 = run({ "help", cmd })
        local s2, o2 = run({ cmd, "--help" })
        assert.are.equal(0, s1)
        assert.are.equal(0, s2)
        assert.are.equal(o1, o2)
        assert.truthy(o1:find("usage: bitnet " .. cmd, 1, true))
      end
      status, out = run({ "--version" })
      assert.are.equal(0, status)
      assert.are.equal("bitnet " .. bitnet.version .. "\n", out)
    end)

    it("rejects unknown commands and options with status 2", function()
      local status, _, err = run({ "walk" })
      assert.are.equal(2, status)
      assert.truthy(err:find("bitnet: unknown command 'walk'", 1, true))
      status, _, err = run({ "help", "walk" })
      assert.are.equal(2, status)
      assert.truthy(err:find("bitnet: no command 'walk'", 1, true))
      status, _, err = run({ "run", MODEL, "-p", "x", "--tempo", "1" })
      assert.are.equal(2, status)
      assert.are.equal("bitnet run: unknown option --tempo for 'run' (bitnet run --help lists the options)\n", err)
      status, _, err = run({ "run", MODEL, "-p", "x", "-z" })
      assert.are.equal(2, status)
      assert.truthy(err:find("unknown option -z for 'run'", 1, true))
      status, _, err = run({ "run", MODEL, "-p", "x", "--temp", "hot" })
      assert.are.equal(2, status)
      assert.truthy(err:find("option --temp needs a number, got 'hot'", 1, true))
      status, _, err = run({ "run", MODEL, "-p", "x", "-n", "2.5" })
      assert.are.equal(2, status)
      assert.truthy(err:find("option --max-tokens needs an integer, got '2.5'", 1, true))
      status, _, err = run({ "run", MODEL, "-p" })
      assert.are.equal(2, status)
      assert.truthy(err:find("option --prompt needs a value", 1, true))
      status, _, err = run({ "run", MODEL, "--stats=yes", "-p", "x" })
      assert.are.equal(2, status)
      assert.truthy(err:find("option --stats takes no value", 1, true))
    end)
  end)

  describe("run", function()
    it("streams the same text generate returns", function()
      local want = model:generate("w1 w2", { max_tokens = 12, temperature = 0 })
      local status, out, err = run({ "run", MODEL, "-p", "w1 w2", "-n", "12", "--temp", "0" })
      assert.are.equal(0, status)
      assert.are.equal(want .. "\n", out)
      assert.are.equal("", err)
      -- load options reach bitnet.load: one thread, the reference kernel, a small context
      status, out = run({ "run", MODEL, "-p", "w1 w2", "-n", "12", "--temp", "0", "-t", "1", "--kernel", "ref", "-c", "20" })
      assert.are.equal(0, status)
      local small = model:generate("w1 w2", { max_tokens = 12, temperature = 0, n_ctx = 20 })
      assert.are.equal(small .. "\n", out)
      status, _, err = run({ "run", MODEL, "-p", "x", "--kernel", "warp" })
      assert.are.equal(1, status)
      assert.truthy(err:find("unknown kernel path 'warp' (this CPU runs: ", 1, true), err)
      -- --opt=value, short options glued to their value, sampler options and stop strings
      local opts = { max_tokens = 20, temperature = 0.9, top_k = 30, top_p = 0.9, min_p = 0.01, seed = 7,
        repeat_penalty = 1.2, repeat_last_n = 16, presence_penalty = 0.1, frequency_penalty = 0.1, typical_p = 0.95 }
      want = model:generate("w3", opts)
      status, out = run({ "run", MODEL, "-pw3", "--max-tokens=20", "--temp", "0.9", "--top-k", "30", "--top-p", "0.9",
        "--min-p", "0.01", "--seed", "7", "--repeat-penalty", "1.2", "--repeat-last-n", "16", "--presence-penalty",
        "0.1", "--frequency-penalty", "0.1", "--typical-p", "0.95" })
      assert.are.equal(0, status)
      assert.are.equal(want .. "\n", out)
      local full = model:generate("w1 w2", { max_tokens = 12, temperature = 0 })
      local stop = full:sub(8, 10)
      status, out = run({ "run", MODEL, "-p", "w1 w2", "-n", "12", "--policy", "greedy", "--stop", "zz", "--stop", stop })
      assert.are.equal(0, status)
      assert.are.equal(full:sub(1, full:find(stop, 1, true) - 1) .. "\n", out)
    end)

    it("reads the prompt from a file or stdin and reports statistics", function()
      local path = tmpname()
      write_file(path, "w4 w5")
      local want = model:generate("w4 w5", { max_tokens = 5, temperature = 0 })
      local status, out, err = run({ "run", MODEL, "-f", path, "-n", "5", "--temp", "0", "--stats" })
      os.remove(path)
      assert.are.equal(0, status)
      assert.are.equal(want .. "\n", out)
      assert.truthy(err:find("^finish: length, prompt %d+ tokens %(0 cached%), completion 5 tokens\nprefill"))
      status, out = run({ "run", MODEL, "-f", "-", "-n", "5", "--temp", "0" }, "w4 w5")
      assert.are.equal(0, status)
      assert.are.equal(want .. "\n", out)
    end)

    it("needs exactly one prompt and reports missing files", function()
      assert.are.equal(2, (run({ "run", MODEL })))
      assert.are.equal(2, (run({ "run", MODEL, "-p", "x", "-f", "y" })))
      assert.are.equal(2, (run({ "run", MODEL, MODEL, "-p", "x" })))
      local status, out, err = run({ "run", "/nonexistent/model.gguf", "-p", "x" })
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.truthy(err:find("^bitnet: .*/nonexistent/model.gguf"))
      status, _, err = run({ "run", MODEL, "-f", "/nonexistent/prompt.txt" })
      assert.are.equal(1, status)
      assert.truthy(err:find("/nonexistent/prompt.txt", 1, true))
    end)

    it("uses the shipped model when none is given", function()
      local status, out, err = run({ "run", "-p", "In the beginning", "-n", "3", "--temp", "0" })
      local path, why = bitnet.default_model()
      if path then
        assert.are.equal(0, status)
        assert.are.equal(assert(bitnet.load()):generate("In the beginning", { max_tokens = 3, temperature = 0 }) .. "\n", out)
      else
        assert.are.equal(1, status)
        assert.are.equal("bitnet: " .. why .. "\n", err)
      end
    end)
  end)

  describe("chat", function()
    it("keeps the history, resets it, and ignores blank lines", function()
      local opts = { max_tokens = 6, temperature = 0 }
      local m1 = { { role = "system", content = "Be brief." }, { role = "user", content = "w1 w2" } }
      local r1 = model:chat(m1, opts)
      m1[3] = { role = "assistant", content = r1 }
      m1[4] = { role = "user", content = "w3" }
      local r2 = model:chat(m1, opts)
      local r3 = model:chat({ { role = "system", content = "Be brief." }, { role = "user", content = "w3" } }, opts)
      local input = "w1 w2\n\nw3\n/reset\nw3\n/what\n/quit\nnever read\n"
      local status, out, err = run({ "chat", MODEL, "-n", "6", "--temp", "0", "-s", "Be brief." }, input)
      assert.are.equal(0, status)
      assert.are.equal(r1 .. "\n" .. r2 .. "\n" .. r3 .. "\n", out)
      assert.are.equal("(conversation cleared)\nunknown command /what (commands: /reset, /quit)\n", err)
    end)

    it("takes a built-in or file template and ends at end of input", function()
      local msgs = { { role = "user", content = "w7" } }
      local want = model:chat(msgs, { max_tokens = 4, temperature = 0, template = "bitnet" })
      local status, out = run({ "chat", MODEL, "-n", "4", "--temp", "0", "--template", "bitnet" }, "w7")
      assert.are.equal(0, status)
      assert.are.equal(want .. "\n", out)
      local path = tmpname()
      write_file(path, bitnet.template.named("bitnet"))
      status, out = run({ "chat", MODEL, "-n", "4", "--temp", "0", "--template", path }, "w7\n")
      os.remove(path)
      assert.are.equal(0, status)
      assert.are.equal(want .. "\n", out)
    end)

    it("reports a conversation that outgrows the context and goes on", function()
      local long = ("w9 "):rep(40)
      local status, out, err = run({ "chat", MODEL, "-c", "32", "-n", "2", "--temp", "0" }, long .. "\nw1\n")
      assert.are.equal(0, status)
      assert.truthy(err:find("the prompt is %d+ tokens but the context holds 32 %(n_ctx%) %(/reset starts over%)"))
      assert.are.equal(2, select(2, out:gsub("\n", "")))
    end)
  end)

  describe("info", function()
    it("describes the model, its tokenizer and chat template", function()
      local status, out = run({ "info", MODEL })
      assert.are.equal(0, status)
      assert.truthy(out:find("^bitnet%.Model<bitnet, "))
      assert.truthy(out:find("architecture: bitnet, 2.4M parameters, activation silu", 1, true))
      assert.truthy(out:find("shape:        3 layers, n_embd 256, 8 heads (2 KV) of 32, n_ff 768", 1, true))
      assert.truthy(out:find("vocabulary:   512 tokens; training context 256", 1, true))
      assert.truthy(out:find("tensors:      F32 x14, TQ2_0 x21", 1, true))
      assert.truthy(out:find('bos 1 "<s>", eos 2 "</s>", eot none', 1, true))
      assert.truthy(out:find("chat:         built-in template 'chatml'", 1, true))
    end)
  end)

  describe("perplexity", function()
    it("prints the model's perplexity of a file", function()
      local text = ("w1 w2 w3 w4 w5 "):rep(20)
      local path = tmpname()
      write_file(path, text)
      local status, out = run({ "perplexity", MODEL, path, "-c", "64" })
      assert.are.equal(0, status)
      local ppl, info = model:perplexity(text, { n_ctx = 64 })
      assert.are.equal(("perplexity:    %.4f\nbits per byte: %.4f\ntokens:        %d (%d bytes)\n"):format(
        ppl, info.bits_per_byte, info.tokens, info.bytes), out)
      -- with a terminal, a progress bar on stderr
      local _, _, err = run({ "perplexity", MODEL, path, "-c", "64" }, nil, true)
      os.remove(path)
      assert.truthy(err:find("perplexity [", 1, true))
      assert.truthy(err:find("100%\n", 1, true))
      assert.are.equal(2, (run({ "perplexity", MODEL })))
    end)
  end)

  describe("convert", function()
    it("writes a model another engine and we can load", function()
      local dst = tmpname() .. ".gguf"
      local status, _, err = run({ "convert", MODEL, dst, "--type", "tq1_0" }, nil, true)
      assert.are.equal(0, status, err)
      assert.truthy(err:find("convert [", 1, true))
      assert.truthy(err:find("wrote " .. dst, 1, true))
      local converted = assert(bitnet.load(dst))
      os.remove(dst)
      assert.are.equal(21, converted:info().tensor_types.TQ1_0)
      assert.are.equal(2, (run({ "convert", MODEL, dst })))
      status, _, err = run({ "convert", MODEL, dst, "--type", "q9" })
      assert.are.equal(1, status)
      assert.truthy(err:find("q9", 1, true))
    end)
  end)

  describe("bench", function()
    it("reports prefill and decode speed", function()
      local status, out = run({ "bench", MODEL, "-p", "8", "-n", "4", "-r", "1" })
      assert.are.equal(0, status)
      assert.truthy(out:find("\nprefill: +[%d.]+ tokens/s %(8 tokens%)\n"))
      assert.truthy(out:find("\ndecode: +[%d.]+ tokens/s %(4 tokens%)\n"))
      assert.are.equal(2, (run({ "bench", MODEL, "-p", "0" })))
      assert.are.equal(2, (run({ "bench", MODEL, "-p", "300", "-n", "10", "-c", "64" })))
    end)
  end)

  -- These children are Lua interpreters loading the module under test (the
  -- ASan build in `make test-asan`), so they keep the sanitizer preload;
  -- each one's exit status is checked.
  describe("examples", function()
    it("stream.lua, chat.lua and custom_policy.lua run through bitnet lua", function()
      local interp = jit and "luajit" or "lua5.4"
      local expect = {
        stream = "%[length: %d+ prompt tokens, 48 generated",
        chat = "%[%a+; %d+ of %d+ prompt tokens reused%]\n.*%[%a+; [1-9]%d* of %d+ prompt tokens reused%]",
        custom_policy = "first%-token candidates:\n.*%[%a+, %d+ tokens%]",
      }
      for name, pattern in pairs(expect) do
        local p = assert(io.popen(("%s bin/bitnet lua examples/%s.lua %s 2>&1; echo \"status=$?\""):format(interp, name, MODEL)))
        local out = p:read("*a")
        p:close()
        assert(out:find("status=0\n", 1, true), name .. ": " .. out)
        assert(out:find(pattern), name .. " printed: " .. out)
      end
    end)
  end)

  describe("bin/bitnet", function()
    it("runs from the checkout as its own process", function()
      local interp = jit and "luajit" or "lua5.4"
      local p = assert(io.popen(interp .. " bin/bitnet info " .. MODEL .. " 2>&1; echo \"status=$?\""))
      local out = p:read("*a")
      p:close()
      assert.truthy(out:find("^bitnet%.Model<bitnet"))
      assert.truthy(out:find("status=0\n", 1, true))
      p = assert(io.popen(interp .. " bin/bitnet run " .. MODEL .. " 2>&1; echo \"status=$?\""))
      out = p:read("*a")
      p:close()
      assert.truthy(out:find("run needs a prompt", 1, true))
      assert.truthy(out:find("status=2\n", 1, true))
      -- a path forced by the environment is named as such when refused
      p = assert(io.popen("BITNET_KERNEL=warp " .. interp .. " bin/bitnet info " .. MODEL .. " 2>&1; echo \"status=$?\""))
      out = p:read("*a")
      p:close()
      assert.truthy(out:find("BITNET_KERNEL: unknown kernel path 'warp' (this CPU runs: ", 1, true), out)
      assert.truthy(out:find("status=1\n", 1, true), out)
    end)
  end)
end)
