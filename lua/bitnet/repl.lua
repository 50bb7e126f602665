--- bitnet.repl: `bitnet repl [MODEL]`, an interactive Lua session (Lua 5.4
-- or LuaJIT, whichever runs the command) with bitnet loaded the way the
-- command found it and the model loaded on first use as the global `model`.
--
--   * A line holding an expression prints its value (as Lua 5.4's REPL
--     does, on LuaJIT too; `=expr` works as well); tables print readably
--     and bounded (M.show); token id lists from tokenize show their pieces.
--   * An incomplete chunk waits for more lines (prompt ">> "), as lua -i.
--   * Line editing and a history file where a readline or libedit library
--     can be loaded (bitnet.core.term, csrc/lua/lterm.c): dlopen at run
--     time, so neither the build nor the module depends on it.
--   * Ctrl-C stops a running chunk (a hook raising "interrupted!"); inside
--     gen and chat it cancels the generation cleanly between two steps.
--     Ctrl-C at the prompt drops the line; Ctrl-D leaves.
--   * Globals besides Lua's own: bitnet, model, gen, chat, tok, top, help.
--     User chunks run in their own environment, whose misses fall through
--     to _G.
--   * Piped (stdin not a terminal): no prompts or banner; the lines run as
--     typed, values printed; the first error ends the run with status 1.
local bitnet = require("bitnet")
local generate = require("bitnet.generate")

local term = bitnet.core.term
local unpack = table.unpack or unpack

local M = {}

--- Bounds of M.show: nesting depth, items shown per table, bytes shown per
-- string inside a table, width of a table printed on one line.
M.LIMITS = { depth = 3, items = 20, string = 120, width = 100 }

--- Line-editing libraries tried in order (BITNET_READLINE names one, or
-- "none" to read lines as the terminal gives them).
M.EDITORS = { "libreadline.so.8", "libreadline.so.7", "libreadline.so.6", "libreadline.so", "libedit.so.2",
  "libedit.so.0", "libedit.so", "libreadline.dylib", "libedit.3.dylib", "libedit.dylib" }

M.HISTORY_SIZE = 1000
M.HISTORY_LINE_MAX = 4096 -- longer lines (pastes) are not kept

-- ---- showing values ----

-- Token id lists that came from tokenize / encode / tok: ids -> the model
-- or tokenizer that made them (weak: the lists go with their users).
local token_lists = setmetatable({}, { __mode = "k" })
-- tokenizer of each model seen (model:tokenizer() makes a new handle)
local tokenizers = setmetatable({}, { __mode = "k" })

local function tokenizer_of(owner)
  if type(owner) == "userdata" and owner.tokenizer and not owner.piece then
    local t = tokenizers[owner]
    if not t then
      t = owner:tokenizer()
      tokenizers[owner] = t
    end
    return t
  end
  return owner
end

--- M.mark_tokens(ids, owner) -> ids: shows ids with their pieces from
-- owner (a Model or Tokenizer).
function M.mark_tokens(ids, owner)
  token_lists[ids] = owner
  return ids
end

local ESCAPES = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }

-- s quoted as a Lua string literal, cut after limit bytes (at a UTF-8
-- boundary) with the full length said; bytes that are not UTF-8 escaped.
local function quote(s, limit)
  local tail = ""
  if #s > limit then
    local cut = limit
    while cut > 0 and (s:byte(cut + 1) or 0) >= 0x80 and s:byte(cut + 1) < 0xC0 do cut = cut - 1 end
    tail = ("...(%d bytes)"):format(#s)
    s = s:sub(1, cut)
  end
  local pattern = generate.valid_utf8(s) == s and '[%c"\\]' or '[%c"\\\128-\255]'
  return '"' .. s:gsub(pattern, function(c) return ESCAPES[c] or ("\\%03d"):format(c:byte()) end) .. '"' .. tail
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not ({
    ["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1, ["elseif"] = 1, ["end"] = 1, ["false"] = 1, ["for"] = 1,
    ["function"] = 1, ["goto"] = 1, ["if"] = 1, ["in"] = 1, ["local"] = 1, ["nil"] = 1, ["not"] = 1, ["or"] = 1,
    ["repeat"] = 1, ["return"] = 1, ["then"] = 1, ["true"] = 1, ["until"] = 1, ["while"] = 1,
  })[k]
end

local KEY_RANK = { number = 1, string = 2 }

local function key_before(a, b)
  local ra, rb = KEY_RANK[type(a)] or 3, KEY_RANK[type(b)] or 3
  if ra ~= rb then return ra < rb end
  if ra < 3 then return a < b end
  return tostring(a) < tostring(b)
end

local function plain(v)
  local ok, s = pcall(tostring, v)
  return ok and s or ("<%s: __tostring failed>"):format(type(v))
end

-- The length of the array part as ipairs sees it, raw.
local function array_length(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  return n
end

-- "id:piece" items of a token list, or nil when an entry is not an id of
-- the tokenizer (the list was changed since).
local function token_items(t, n, limits)
  local ok, tok = pcall(tokenizer_of, token_lists[t])
  if not ok then return nil end
  local n_vocab = tok:n_vocab()
  local items = {}
  for i = 1, n do
    local id = rawget(t, i)
    if type(id) ~= "number" or id ~= math.floor(id) or id < 0 or id >= n_vocab then return nil end
    if i <= limits.items then items[i] = ("%d:%s"):format(id, quote(tok:piece(id), limits.string)) end
  end
  if n > limits.items then items[#items + 1] = ("... (%d more)"):format(n - limits.items) end
  return items
end

-- Lays out items: on one line when short, else packed lines (array
-- items) and one line per key, indented.
local function layout(items, n_array, limits)
  local total, multiline = 4, false
  for _, s in ipairs(items) do
    total = total + #s + 2
    if s:find("\n", 1, true) then multiline = true end
  end
  if not multiline and total <= limits.width then return "{ " .. table.concat(items, ", ") .. " }" end
  local lines, line = {}, nil
  for i, s in ipairs(items) do
    s = s:gsub("\n", "\n  ")
    local packable = i <= n_array and not s:find("\n", 1, true)
    if packable and line and #line + #s + 2 <= limits.width then
      line = line .. " " .. s .. ","
    else
      if line then lines[#lines + 1] = line end
      line = "  " .. s .. ","
      if not packable then
        lines[#lines + 1] = line
        line = nil
      end
    end
  end
  if line then lines[#lines + 1] = line end
  return "{\n" .. table.concat(lines, "\n") .. "\n}"
end

local render

local function render_table(t, depth, open, limits)
  local mt = getmetatable(t)
  if type(mt) == "table" and rawget(mt, "__tostring") then return plain(t) end
  if open[t] then return "<cycle>" end
  if next(t) == nil then return "{}" end
  if depth >= limits.depth then return "{...}" end
  local n = array_length(t)
  if token_lists[t] then
    local items = token_items(t, n, limits)
    if items then return layout(items, #items, limits) end
  end
  open[t] = true
  local items = {}
  for i = 1, math.min(n, limits.items) do items[i] = render(rawget(t, i), depth + 1, open, limits) end
  if n > limits.items then items[#items + 1] = ("... (%d more)"):format(n - limits.items) end
  local n_array = #items
  local keys = {}
  for k in next, t do
    if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_before)
  for i = 1, math.min(#keys, limits.items) do
    local k = keys[i]
    local key = is_identifier(k) and k or "[" .. render(k, depth + 1, open, limits) .. "]"
    items[#items + 1] = key .. " = " .. render(rawget(t, k), depth + 1, open, limits)
  end
  if #keys > limits.items then items[#items + 1] = ("... (%d more keys)"):format(#keys - limits.items) end
  open[t] = nil
  return layout(items, n_array, limits)
end

function render(v, depth, open, limits)
  local kind = type(v)
  if kind == "string" then return quote(v, limits.string) end
  if kind == "table" then return render_table(v, depth, open, limits) end
  return plain(v)
end

--- M.show(value [, limits]) -> text: value as the REPL prints it. Strings
-- are printed as they are at the top (as Lua prints), quoted inside
-- tables; tables nested limits.depth deep, limits.items entries each (the
-- rest counted), cycles as <cycle>; a table or userdata with __tostring
-- by it. limits defaults to M.LIMITS.
function M.show(v, limits)
  limits = limits or M.LIMITS
  if type(v) == "string" then return v end
  return render(v, 0, {}, limits)
end

-- The values of a chunk on one line (tab-separated), or one per line
-- when any spans several.
local function show_all(values, n)
  local parts, multiline = {}, false
  for i = 1, n do
    parts[i] = M.show(values[i])
    if parts[i]:find("\n", 1, true) then multiline = true end
  end
  return table.concat(parts, multiline and "\n" or "\t")
end

-- ---- the helpers ----

local HELP = [[
Globals besides Lua's own:
  bitnet                  the module (README "API")
  model                   the model of the command line, loaded on first use
  gen(prompt [, opts])    streams a continuation of prompt (text or token ids)
                          to the terminal and returns its info; opts as for
                          model:generate, e.g. { max_tokens = 64, temperature = 0 }
  chat(text [, opts])     one turn of a conversation, the reply streamed;
                          chat.reset([system]) starts over, chat.messages holds it
  tok(text | ids)         the prompt's token ids, shown with their pieces
  top(prompt [, k])       the k (default 10) most likely next tokens, with
                          their probabilities
  help()                  this text
An expression prints its value (tables bounded: 3 levels, 20 entries each,
strings in tables cut at 120 bytes). A `local` lasts one chunk, as in lua -i.
Ctrl-C stops a generation or a running chunk and returns to the prompt;
Ctrl-D (or os.exit()) leaves.
]]

-- info of a finished generation, printed as one line
local Info = {}
Info.__index = Info
Info.__tostring = function(info)
  local cached = info.cached_tokens > 0 and (" (%d cached)"):format(info.cached_tokens) or ""
  return ("[%s: %d prompt tokens%s, %d generated, %.0f tokens/s, seed %s]"):format(info.finish_reason,
    info.prompt_tokens, cached, info.completion_tokens, info.decode_tokens_per_second, tostring(info.seed))
end

-- next-token candidates, printed as a column
local Top = {}
Top.__tostring = function(list)
  local lines = { "    prob      id  piece" }
  for i, c in ipairs(list) do
    lines[i + 1] = ("%7.3f%%  %6d  %s"):format(100 * c.prob, c.id, quote(c.piece, M.LIMITS.string))
  end
  return table.concat(lines, "\n")
end

-- Streams a generation to out, a Ctrl-C (term.interrupted) cancelling it
-- between two steps; ends the output with a newline. -> text, info
local function stream_to(g, out)
  local pieces, last = {}, "\n"
  local was = term.soft(true)
  local ok, err = pcall(function()
    while true do
      local piece = g:step()
      if term.interrupted() then -- what this step made is not shown
        g:cancel()
        break
      end
      if piece == nil then break end
      if piece == "" then
        if g.wait then g:wait(0.02) end -- on the engine (speculative, async): the next token is coming
      else
        pieces[#pieces + 1] = piece
        out:write(piece)
        out:flush()
        last = piece
      end
    end
  end)
  term.soft(was)
  if last:sub(-1) ~= "\n" then out:write("\n") end
  if g.close then g:close() end -- an engine job: let go of it now
  if not ok then error(err, 0) end
  return table.concat(pieces), setmetatable(g.info, Info)
end

local function helpers(session)
  local out = session.out
  local h = {}

  function h.help()
    out:write(HELP)
  end

  function h.gen(prompt, opts)
    local _, info = stream_to(session.model():stream(prompt, opts), out)
    return info
  end

  function h.tok(text, opts)
    local model = session.model()
    if type(text) == "table" and opts == nil then return M.mark_tokens(text, model) end
    if type(text) ~= "string" then error("tok: argument 1 must be a string or a list of token ids", 2) end
    local ids = opts and model:tokenize(text, opts)
      or generate.prompt_tokens(model, model:tokenizer(), text, "tok")
    return M.mark_tokens(ids, model)
  end

  function h.top(prompt, k)
    k = k or 10
    if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then error("top: argument 2 (k) must be an integer >= 1", 2) end
    local model = session.model()
    local tok = model:tokenizer()
    local ids = generate.prompt_tokens(model, tok, prompt, "top")
    local sess = model:session()
    if #ids > sess:n_ctx() then
      sess:close()
      error(("top: the prompt is %d tokens but the context holds %d"):format(#ids, sess:n_ctx()), 2)
    end
    sess:feed(ids)
    local smp = bitnet.sampler({ temperature = 1, top_k = 0, top_p = 1, min_p = 0 })
    local cand, logits, probs = smp:candidates(sess, k)
    sess:close()
    local list = {}
    for i, id in ipairs(cand) do list[i] = { id = id, piece = tok:piece(id), prob = probs[i], logit = logits[i] } end
    return setmetatable(list, Top)
  end

  -- chat: a callable table keeping the conversation and its session (the
  -- prefix the next turn shares is not computed again)
  local chat = { messages = {} }
  function chat.reset(system)
    if system ~= nil and type(system) ~= "string" then error("chat.reset: the system message must be a string", 2) end
    chat.messages = system and { { role = "system", content = system } } or {}
    chat.info = nil
    if chat.session then chat.session:reset() end
  end
  setmetatable(chat, {
    __call = function(_, text, opts)
      if type(text) ~= "string" then error("chat: argument 1 (text) must be a string", 2) end
      if opts ~= nil and type(opts) ~= "table" then error("chat: argument 2 (opts) must be a table", 2) end
      local model = session.model()
      if chat.model ~= model then -- the first turn, or `model` was set to another one
        if chat.session then chat.session:close() end
        chat.model, chat.session = model, model:session()
      end
      local gopts = { session = chat.session }
      for key, v in pairs(opts or {}) do gopts[key] = v end
      local messages = chat.messages
      messages[#messages + 1] = { role = "user", content = text }
      local ok, reply, info = pcall(function() return stream_to(model:chat_stream(messages, gopts), out) end)
      if not ok then
        table.remove(messages)
        error(reply, 0)
      end
      messages[#messages + 1] = { role = "assistant", content = reply }
      chat.info = info
    end,
    __tostring = function()
      return ("chat: %d messages (chat.messages; chat.reset() starts over)"):format(#chat.messages)
    end,
  })
  h.chat = chat
  return h
end

-- ---- reading and running chunks ----

local function identity(...)
  return ...
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local function incomplete(err)
  return err:find("<eof>'?$") ~= nil
end

-- The function of a chunk: `return <src>` when that compiles (an
-- expression), else src itself. -> fn | nil, message, incomplete
-- An expression's function returns its values through its first argument
-- (run it with `identity`): `return f()` would be a tail call, and LuaJIT
-- would drop the chunk's frame, and "stdin:1:" from error messages.
local function compile(src, env)
  if src:sub(1, 1) == "=" then src = src:sub(2) end -- Lua 5.1's `=expr`
  local fn, err_expr = load("return " .. src, "=stdin", "t", env)
  if fn then return load("return (...)(" .. src .. "\n)", "=stdin", "t", env) or fn end
  local fn2, err = load(src, "=stdin", "t", env)
  if fn2 then return fn2 end
  return nil, err, incomplete(err) or incomplete(err_expr)
end

-- The message handler of a chunk fn: the message, with the frames down
-- to the chunk when there are more than the chunk's own line (the REPL's
-- frames below it are left out).
local function message_handler(fn)
  return function(e)
    local msg = e
    if type(e) ~= "string" then
      local mt = getmetatable(e)
      msg = (mt and mt.__tostring) and plain(e) or ("(error object is a %s value)"):format(type(e))
    end
    if msg:find("interrupted!$") then return msg end
    local frames = {}
    for level = 2, 1000 do
      local info = debug.getinfo(level, "Slnf")
      if not info or info.func == term.run then break end
      local where = info.what == "main" and "main chunk" or info.name and ("function '%s'"):format(info.name)
        or ("function <%s:%d>"):format(info.short_src, info.linedefined)
      if not (#frames == 0 and info.what == "C") then -- error() itself
        frames[#frames + 1] = ("\t%s:%s in %s"):format(info.short_src,
          info.currentline > 0 and info.currentline .. ":" or "", where)
      end
      if info.func == fn then break end
    end
    if #frames <= 1 then return msg end
    return msg .. "\nstack traceback:\n" .. table.concat(frames, "\n")
  end
end

local function history_file()
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then
    local home = os.getenv("HOME")
    if not home or home == "" then return nil end
    state = home .. "/.local/state"
  end
  return state .. "/bitnet/repl_history"
end

-- Replaces method `name` of a methods table with one marking the token
-- lists it returns; returns the function that puts the original back.
local function mark_results(methods, name)
  local original = methods[name]
  methods[name] = function(owner, ...)
    local ids = original(owner, ...)
    if type(ids) == "table" then token_lists[ids] = owner end
    return ids
  end
  return function() methods[name] = original end
end

--- M.main(path, opts, io_) -> exit status: runs the session. path: the
-- model (nil: the shipped one); opts: threads, n_ctx, kernel (bitnet.load);
-- io_: stdin, stdout, stderr (the terminal is used only when stdin is the
-- process's own and a terminal).
function M.main(path, opts, io_)
  local interactive = io_.stdin == io.stdin and term.isatty(0)
  local out, err_out = io_.stdout, io_.stderr
  local restore = {}

  local session = { out = out }
  local env
  -- the global `model`: the helpers use whatever it is set to; unset, the
  -- command line's model is loaded (again: the weights stay cached)
  function session.model()
    local model = rawget(env, "model")
    if model == nil then
      local err
      model, err = bitnet.load(path, { threads = opts.threads, n_ctx = opts.n_ctx, kernel = opts.kernel })
      if not model then error("cannot load the model: " .. err, 0) end
      if #restore == 0 then
        restore[1] = mark_results(bitnet.core.Model, "tokenize")
        restore[2] = mark_results(getmetatable(model:tokenizer()).__index, "encode")
      end
      rawset(env, "model", model)
    end
    return model
  end
  env = setmetatable(helpers(session), {
    __index = function(_, k)
      if k == "model" then return session.model() end
      return _G[k]
    end,
  })
  env.bitnet = bitnet

  local editor, history
  if interactive then
    local choice = os.getenv("BITNET_READLINE")
    if choice ~= "none" then editor = term.editor(choice and choice ~= "" and { choice } or M.EDITORS) end
    history = editor and history_file()
    if history and not term.history(history, M.HISTORY_SIZE) then history = nil end
    term.catch(true)
    out:write(("bitnet %s on %s%s; `model` is %s, loaded on first use\nhelp() lists the helpers; Ctrl-D leaves\n"):format(
      bitnet.version, rawget(_G, "jit") and jit.version or _VERSION,
      editor and (" (line editing: %s)"):format(editor) or "", path or "the shipped model"))
  end

  local function read(prompt)
    if interactive then return term.readline(prompt) end
    return io_.stdin:read("*l")
  end

  local status, buffer, last_entry = 0, nil, nil
  while true do
    local line = read(buffer and ">> " or "> ")
    if line == nil then -- the end of input
      if interactive then
        out:write("\n")
      elseif buffer then -- a script cut short
        local _, err = compile(buffer, env)
        err_out:write("bitnet repl: " .. err .. "\n")
        status = 1
      end
      break
    elseif line == false then -- Ctrl-C at the prompt: the chunk is dropped
      buffer = nil
    else
      if editor and line:find("%S") and line ~= last_entry and #line <= M.HISTORY_LINE_MAX then
        local ok, err = term.history_add(line)
        if not ok and history then
          err_out:write("bitnet repl: history not kept: ", err, "\n")
          history = nil
        end
        last_entry = line
      end
      buffer = buffer and buffer .. "\n" .. line or line
      local fn, err, more = compile(buffer, env)
      if fn then
        buffer = nil
        local results = pack(term.run(message_handler(fn), fn, identity))
        out:flush()
        if results[1] then
          if results.n > 1 then
            local shown, text = pcall(show_all, { unpack(results, 2, results.n) }, results.n - 1)
            out:write(shown and text or "(the value cannot be shown: " .. tostring(text) .. ")", "\n")
          end
        else
          err_out:write((interactive and "" or "bitnet repl: ") .. tostring(results[2]) .. "\n")
          if not interactive then
            status = 1
            break
          end
        end
      elseif not more then
        buffer = nil
        err_out:write((interactive and "" or "bitnet repl: ") .. err .. "\n")
        if not interactive then
          status = 1
          break
        end
      end
    end
  end
  if interactive then term.catch(false) end
  for i = #restore, 1, -1 do restore[i]() end
  return status
end

return M
