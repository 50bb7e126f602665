-- `bitnet repl`: the value printer and piped sessions in process, then
-- bin/bitnet repl as its own process, through a pipe and through a
-- pseudo-terminal (tests/pty_drive.c types at it and reads the screen).
-- The children run on the interpreter that runs busted (lua5.4 or luajit:
-- `make test` runs this file under both), from the checkout with LUA_PATH
-- and LUA_CPATH unset and with them set as `luarocks path` prints them for
-- another tree holding a stale bitnet.
local bitnet = require("bitnet")
local cli = require("bitnet.cli")
local repl = require("bitnet.repl")
local checks = require("support.checks")
local shell = require("support.shell")

local INTERP = jit and "luajit" or "lua5.4"

-- cli.main({ "repl" }) on input lines -> stdout, after checking that
-- nothing went to stderr and the status is 0
local function session(input)
  local status, out, err = checks.run_cli({ "repl" }, input)
  assert.are.equal("", err)
  assert.are.equal(0, status)
  return out
end

-- the same, for input ending in an error -> stdout, stderr
local function failing_session(input)
  local status, out, err = checks.run_cli({ "repl" }, input)
  assert.are.equal(1, status)
  return out, err
end

local function q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A tree like one `luarocks make --tree` filled with another bitnet: its
-- modules raise and its bitnet.core is not a library, so the run fails if
-- either is loaded.
local other_tree
local function luarocks_paths()
  if not other_tree then
    other_tree = checks.tmpname()
    shell.run(("mkdir -p %s/share/lua/5.4/bitnet %s/lib/lua/5.4/bitnet"):format(other_tree, other_tree))
    for _, m in ipairs({ "init", "cli", "repl" }) do
      checks.write_file(other_tree .. "/share/lua/5.4/bitnet/" .. m .. ".lua", 'error("the other tree\'s bitnet")\n')
    end
    checks.write_file(other_tree .. "/lib/lua/5.4/bitnet/core.so", "not a library\n")
  end
  return ('eval "$(luarocks --lua-version 5.4 path --tree %s)" && '):format(other_tree)
end

-- The shell prefix of a child: LUA_PATH / LUA_CPATH unset, or set for the
-- other tree; its own history; the sanitizer runtime of `make test-asan`
-- kept for the interpreter only.
local function child_env(paths, state)
  local preload = os.getenv("LD_PRELOAD")
  local env = ("env %sXDG_STATE_HOME=%s TERM=xterm "):format(paths == "luarocks" and "" or "-u LUA_PATH -u LUA_CPATH ",
    q(state))
  return (paths == "luarocks" and luarocks_paths() or "") .. env,
    (preload and ("env LD_PRELOAD=%s "):format(q(preload)) or "")
end

-- where bin/bitnet finds bitnet.core from the checkout
local CORE = (os.getenv("BITNET_BUILD") or ("bin/../build/" .. (jit and "luajit" or "lua5.4"))) .. "/bitnet/core.so"

-- bin/bitnet repl reading `input` from a pipe -> status, stdout, stderr
local function piped(input, paths, args)
  local dir = checks.tmpname()
  shell.run("mkdir -p " .. dir)
  checks.write_file(dir .. "/in", input)
  local env, preload = child_env(paths, dir)
  local status = tonumber(shell.read(("%s%s%s bin/bitnet repl %s <%s/in >%s/out 2>%s/err; echo $?"):format(env,
    preload, INTERP, args or "", dir, dir, dir)))
  local out, err = checks.read_file(dir .. "/out"), checks.read_file(dir .. "/err")
  shell.run("rm -rf " .. dir)
  return status, out, err
end

-- bin/bitnet repl on a pseudo-terminal following `script` (pty_drive's
-- steps) -> transcript (the screen's text, ending "status=N"), or raises
-- with it when a step failed. opts: state (XDG_STATE_HOME), paths, env.
local function typed(script, opts)
  opts = opts or {}
  local state = opts.state or checks.tmpname()
  local file = checks.tmpname()
  checks.write_file(file, script)
  local env, preload = child_env(opts.paths, state)
  local p = assert(io.popen(("unset LD_PRELOAD; %s%s build/pty_drive %s %s%s bin/bitnet repl 2>&1"):format(env,
    opts.env or "", file, preload, INTERP)))
  local out = p:read("*a")
  p:close()
  os.remove(file)
  if not opts.state then shell.run("rm -rf " .. q(state)) end
  assert(not out:find("pty_drive: script line", 1, true), "\n" .. out)
  return out
end

-- the last steps of a terminal session: a line dropped by Ctrl-C, one run,
-- Ctrl-D
local CTRL_C_AT_PROMPT_THEN_LEAVE = [[
send half a line\x03
expect > 
send 6 * 7\n
expect 42
expect > 
send \x04
wait
]]

describe("bitnet repl", function()
  setup(function()
    shell.run("make -s build/pty_drive")
  end)
  teardown(function()
    if other_tree then shell.run("rm -rf " .. other_tree) end
  end)

  describe("shows values", function()
    local show = repl.show

    it("as Lua prints them at the top, strings quoted inside tables", function()
      assert.are.equal("42", show(42))
      assert.are.equal("nil", show(nil))
      assert.are.equal("a\nb", show("a\nb"))
      assert.are.equal('{ "a\\nb", true, x = 1.5 }', show({ "a\nb", true, x = 1.5 }))
      assert.are.equal('{ [2.5] = "x", ["end"] = 2, ["not id"] = 1 }', show({ [2.5] = "x", ["not id"] = 1, ["end"] = 2 }))
      assert.are.equal("{}", show({}))
    end)

    it("bounded: depth, long arrays and many keys elided with a count, long strings cut", function()
      assert.are.equal("{ { { {...} } } }", show({ { { { 1 } } } }))
      local long = {}
      for i = 1, 1000 do long[i] = i end
      local text = show(long)
      assert.truthy(text:find("1, 2, 3,", 1, true))
      assert.truthy(text:find("20, ... (980 more)", 1, true))
      assert.falsy(text:find("21", 1, true))
      local keys = {}
      for i = 1, 50 do keys["k" .. i] = i end
      assert.truthy(show(keys):find("... (30 more keys)", 1, true))
      local s = show({ ("x"):rep(1048576) })
      assert.truthy(s:find('"' .. ("x"):rep(120) .. '"...(1048576 bytes)', 1, true))
      assert.is_true(#s < 300)
      assert.are.equal('{ "caf\\195", "\\0011" }', show({ "caf\195", "\0011" })) -- not UTF-8, control: escaped
      assert.are.equal('{ "café" }', show({ "café" }))
    end)

    it("a table with cycles", function()
      local t = { name = "t" }
      t.self = t
      t.list = { t, { t } }
      assert.are.equal('{ list = { <cycle>, { <cycle> } }, name = "t", self = <cycle> }', show(t))
      local shared = { 1 }
      assert.are.equal("{ { 1 }, { 1 } }", show({ shared, shared })) -- seen twice, not a cycle
    end)

    it("by __tostring when a table or userdata has one", function()
      assert.are.equal("T!", show(setmetatable({}, { __tostring = function() return "T!" end })))
      local model = assert(bitnet.load())
      assert.truthy(show({ model }):find("^{%s+bitnet%.Model<bitnet%-b1%.58"))
    end)

    it("token lists from tokenize with their pieces, changed ones as numbers", function()
      local model = assert(bitnet.load())
      local ids = repl.mark_tokens(model:tokenize("And it came"), model)
      assert.are.equal('{ 4088:"<|begin_of_text|>", 296:"And", 354:" it", 473:" came" }', repl.show(ids))
      ids[2] = -1
      assert.are.equal("{ 4088, -1, 354, 473 }", repl.show(ids))
    end)
  end)

  describe("piped, in process", function()
    it("prints expression values, runs statements and multi-line chunks", function()
      local out = session("1 + 1\nx = 6\nfunction f(a)\n  return a * x\nend\nf(7)\n=x\n{1,\n2}\n"
        .. "return 'a', nil, 3\n")
      assert.are.equal("2\n42\n6\n{ 1, 2 }\na\tnil\t3\n", out)
    end)

    it("stops at the first error with status 1 and the message", function()
      local out, err = failing_session("1\nerror('boom')\n2\n")
      assert.are.equal("1\n", out)
      assert.are.equal("bitnet repl: stdin:1: boom\n", err)
      out, err = failing_session("x = = 1\n2\n")
      assert.are.equal("", out)
      assert.truthy(err:find("^bitnet repl: stdin:1: unexpected symbol near '='"), err)
      err = select(2, failing_session("function f()\n"))
      assert.truthy(err:find("'end' expected", 1, true), err)
      err = select(2, failing_session("local function g() end\ng()\n")) -- a local lasts one chunk
      assert.truthy(err:find("attempt to call .*'g'"), err)
      err = select(2, failing_session("function g() local t = nil; return t.x end\nfunction h() g() return 1 end\nh()\n"))
      assert.truthy(err:find("stack traceback:\n\tstdin:1: in function 'g'\n", 1, true), err)
    end)

    it("has the helpers, the lazy model and nothing else as globals", function()
      local names = "local e = _ENV or getfenv(1) local k = {} for n in pairs(e) do k[#k + 1] = n end "
        .. "table.sort(k) return table.concat(k, ' ')\n"
      local out = session(names .. "model:info().n_vocab\n" .. names)
      assert.are.equal("bitnet chat gen help tok top\n4096\nbitnet chat gen help model tok top\n", out)
      assert.is_nil(rawget(_G, "gen"))
      assert.is_nil(rawget(_G, "model"))
      out = session("help()\n")
      for _, name in ipairs({ "gen(prompt", "chat(text", "chat.reset", "tok(text", "top(prompt", "Ctrl-C" }) do
        assert.truthy(out:find(name, 1, true), name)
      end
    end)

    it("gen streams and returns its info, tok and top show tokens", function()
      local model = assert(bitnet.load())
      local want = model:generate("And it came to pass", { max_tokens = 12, seed = 3 })
      local out = session("info = gen('And it came to pass', { max_tokens = 12, seed = 3 })\n"
        .. "info.finish_reason, info.completion_tokens\ninfo\ntok('And it')\ntop('And it came to', 3)\n"
        .. "tok{ 296, 354 }\n")
      local lines = {}
      for l in out:gmatch("[^\n]*\n") do lines[#lines + 1] = l end
      assert.are.equal(want .. "\n", table.concat(lines, "", 1, #lines - 8))
      assert.are.equal("length\t12\n", lines[#lines - 7])
      assert.truthy(lines[#lines - 6]:find("^%[length: 6 prompt tokens, 12 generated, %d+ tokens/s, seed 3%]\n$"))
      assert.are.equal('{ 4088:"<|begin_of_text|>", 296:"And", 354:" it" }\n', lines[#lines - 5])
      assert.are.equal("    prob      id  piece\n", lines[#lines - 4])
      assert.truthy(lines[#lines - 3]:find('^ %d%d%.%d%d%d%%     621  " pass"\n$'), lines[#lines - 3])
      assert.are.equal('{ 296:"And", 354:" it" }\n', lines[#lines])
    end)

    it("chat keeps the conversation until chat.reset()", function()
      local out = session("chat('Who was Naomi?', { max_tokens = 8, seed = 1 })\n#chat.messages\n"
        .. "chat('And Ruth?', { max_tokens = 8, seed = 1 })\n#chat.messages, chat.info.cached_tokens > 0\n"
        .. "chat.reset('Be brief.')\nchat.messages[1].role, #chat.messages\n")
      assert.truthy(out:find("\n2\n.*\n4\ttrue\nsystem\t1\n$"), out)
    end)

    it("survives an error inside a generation callback, keeps the model usable", function()
      local out = session("ok, e = pcall(gen, 'In the beginning', { max_tokens = 8, "
        .. "on_token = function() error('callback failed') end })\nok, e\ngen('In the beginning', "
        .. "{ max_tokens = 4, seed = 1 }).completion_tokens\n")
      assert.truthy(out:find("false\tstdin:1: callback failed\n", 1, true), out)
      assert.truthy(out:find("\n4\n$"), out)
    end)

    it("takes a 1 MB line", function()
      local out = session('big = "' .. ("a"):rep(1048576) .. '"\n#big\n{ big }\n')
      assert.are.equal('1048576\n{\n  "' .. ("a"):rep(120) .. '"...(1048576 bytes),\n}\n', out)
    end)
  end)

  describe("as its own process", function()
    for _, paths in ipairs({ "unset", "luarocks" }) do
      it("through a pipe, LUA_PATH/LUA_CPATH " .. paths .. ": runs the lines, exit status 0 or 1", function()
        local status, out, err = piped("print(model:info().n_vocab)\nprint(package.searchpath('bitnet.core', "
          .. "package.cpath))\n", paths)
        assert.are.equal("", err)
        assert.are.equal(0, status)
        assert.are.equal("4096\n" .. CORE .. "\n", out)
        status, out, err = piped("x = 1\nprint(x)\nerror('script failed')\nprint('not reached')\n", paths)
        assert.are.equal(1, status)
        assert.are.equal("1\n", out)
        assert.are.equal("bitnet repl: stdin:1: script failed\n", err)
        status, _, err = piped("x = = 1\n", paths)
        assert.are.equal(1, status)
        assert.truthy(err:find("unexpected symbol", 1, true))
        status, _, err = piped("", paths, "no/such/model.gguf")
        assert.are.equal(1, status)
        assert.are.equal("bitnet: cannot open no/such/model.gguf\n", err)
      end)
    end

    it("gives the README's session", function()
      local readme = checks.read_file("README.md")
      local block = assert(readme:match("\n```text\n%$ bin/bitnet repl\n(.-)\n```\n"))
      local input, want, seen_prompt = {}, {}, false
      for line in (block .. "\n"):gmatch("(.-)\n") do
        local typed_line = line:match("^>> (.*)$") or line:match("^> (.*)$")
        if typed_line then
          input[#input + 1] = typed_line
          seen_prompt = true
        elseif seen_prompt then -- (the banner is printed on a terminal only)
          want[#want + 1] = line
        end
      end
      local status, out, err = piped(table.concat(input, "\n") .. "\n", "unset")
      assert.are.equal("", err)
      assert.are.equal(0, status)
      local function speed_free(s) return (s:gsub("%d+ tokens/s", "N tokens/s")) end
      assert.are.equal(speed_free(table.concat(want, "\n") .. "\n"), speed_free(out))
    end)

    it("on a terminal: values, a multi-line function, errors, Ctrl-C at the prompt, Ctrl-D", function()
      local out = typed([[
expect > 
send 1 + 1\n
expect 2
expect > 
send function twice(a)\n
expect >> 
send   return a * 2\n
expect >> 
send end\n
expect > 
send twice(21)\n
expect 42
expect > 
send t = { 1, "two", { x = 3 } } t.self = t\n
expect > 
send t\n
expect <cycle>
expect > 
send x = = 2\n
expect unexpected symbol near '='
expect > 
send gen("In the beginning", { max_tokens = 20, on_token = function(id, text) error("callback failed") end })\n
expect callback failed
expect > 
]] .. CTRL_C_AT_PROMPT_THEN_LEAVE)
      assert.truthy(out:find("(line editing: libreadline", 1, true), out) -- Debian's lua5.4 pulls it in
      assert.truthy(out:find('\n{ 1, "two", { x = 3 }, self = <cycle> }\n', 1, true), out)
      assert.falsy(out:find("stdin:1: half", 1, true), out)
      assert.truthy(out:find("status=0\n$"), out)
    end)

    it("on a terminal: Ctrl-C stops a streamed generation and the prompt comes back", function()
      local out = typed([[
expect > 
send ban = {} for id = 0, 4095 do if model:tokenizer():is_eog(id) then ban[id] = -math.huge end end\n
expect > 
send gen("And it came to pass", { max_tokens = 1000000, context_shift = true, logit_bias = ban })\n
sleep 500
send \x03
expect [cancelled: 6 prompt tokens,
expect > 
quiet 300
send for p in model:stream("In the beginning", { max_tokens = 1000000, context_shift = true, logit_bias = ban }) do io.write(p) end\n
sleep 500
send \x03
expect interrupted!
expect > 
quiet 300
send gen("In the beginning", { max_tokens = 3 }).finish_reason\n
expect length
expect > 
send \x04
wait
]])
      assert.truthy(out:find("status=0\n$"), out)
    end)

    if jit then
      it("on a terminal: a loop LuaJIT compiled does not see Ctrl-C; a second one ends the session", function()
        local out = typed([[
expect > 
send x = 0 for i = 1, 1e12 do x = x + i % 7 end\n
sleep 300
send \x03
sleep 300
send \x03
wait
]])
        assert.truthy(out:find("status=130\n$"), out)
      end)
    else
      it("on a terminal: Ctrl-C stops a running loop", function()
        local out = typed([[
expect > 
send x = 0 for i = 1, 1e12 do x = x + i % 7 end\n
sleep 300
send \x03
expect interrupted!
expect > 
send x > 0\n
expect true
expect > 
send \x04
wait
]])
        assert.truthy(out:find("status=0\n$"), out)
      end)
    end

    it("on a terminal: history kept across two sessions, a 1 MB paste taken", function()
      local state, paste = checks.tmpname(), checks.tmpname()
      checks.write_file(paste, 'big = "' .. ("a"):rep(1048576) .. '"')
      typed([[
expect > 
send marker = 6 * 7\n
expect > 
paste ]] .. paste .. [[

send \n
expect > 
send #big\n
expect 1048576
expect > 
send \x04
wait
]], { state = state })
      local history = checks.read_file(state .. "/bitnet/repl_history")
      assert.truthy(history:find("marker = 6 * 7", 1, true))
      assert.is_true(#history < 1000) -- the paste is not kept
      local out = typed([[
expect > 
send \e[A
expect #big
send \e[A\e[A
expect marker = 6 * 7
send \n
expect > 
send marker\n
expect 42
expect > 
send \x04
wait
]], { state = state })
      assert.truthy(out:find("status=0\n$"), out)
      shell.run("rm -rf " .. q(state) .. " " .. paste)
    end)

    it("on a terminal without a line-editing library, LUA_PATH/LUA_CPATH set for another tree", function()
      local out = typed([[
expect > 
send package.searchpath("bitnet.repl", package.path)\n
expect bin/../lua/bitnet/repl.lua
expect > 
]] .. CTRL_C_AT_PROMPT_THEN_LEAVE, { paths = "luarocks", env = "BITNET_READLINE=none " })
      assert.falsy(out:find("line editing", 1, true), out)
      assert.truthy(out:find("status=0\n$"), out)
    end)
  end)
end)
