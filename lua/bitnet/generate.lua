--- bitnet.generate: text generation on a Model: generate, stream, chat,
-- chat_stream and apply_chat_template. Requiring it adds these methods to
-- every bitnet.Model (it extends bitnet.core.Model, the methods table).
--
-- Behaviour at the edges (each has a spec in spec/generate_spec.lua):
--   * Prompt text is tokenized with the model's default BOS and with
--     special-token texts parsed (so "<|eot_id|>" in a prompt is that token;
--     a rendered chat template therefore works as a prompt). A template that
--     already starts with the BOS text does not get a second BOS. A prompt
--     may also be an array of token ids, used as given.
--   * An empty prompt is just BOS when the model adds BOS; otherwise it is an
--     error (there is nothing to predict from).
--   * A prompt longer than the context is an error naming both lengths; a
--     prompt that exactly fills the context yields at most one token.
--   * max_tokens = 0 evaluates the prompt and returns "" with finish_reason
--     "length". When the context fills up during generation, finish_reason
--     is "length" too.
--   * finish_reason is "stop" for an end-of-generation token (tok:is_eog) or
--     a stop string, "length" for max_tokens or a full context, "cancelled"
--     when on_token returned false or gen:cancel() was called.
--   * Stop strings are searched in the generated text only. Text that could
--     be the start of a stop string is held back until it is decided; the
--     stop string and everything after it are not returned.
--   * With `session`, the session keeps its KV-cache between calls: the
--     longest common prefix of the tokens it holds (sess:tokens(), kept by
--     the C core whoever fed them) and the new prompt is kept, the rest
--     rewound and the new part fed.
--   * With `async = true`, generate and chat return at once a handle whose
--     tokens the background engine computes on its own thread, batched with
--     every other async generation of the model (see AsyncGeneration
--     below); the text and info are the ones the synchronous call returns.
--   * Text is always whole UTF-8: bytes a model emits that do not form
--     UTF-8 (byte tokens can) become U+FFFD (generate.valid_utf8), and a
--     sequence still unfinished when generation ends becomes one U+FFFD.
--   * The sampler accepts the prompt and every generated token, so the
--     repetition penalties see both (as llama.cpp's do).
local core = require("bitnet.core")
local sampling = require("bitnet.sampling")
local template = require("bitnet.template")
local pool = require("bitnet.pool")
local grammar = require("bitnet.grammar")
local tools = require("bitnet.tools")
local errors = require("bitnet.errors")

local M = {}

local Model = core.Model
local clock = core.clock

--- Default max_tokens for generate, stream and chat.
M.DEFAULT_MAX_TOKENS = 256

local GENERATE_KEYS = { "max_tokens", "stop", "policy", "on_token", "session", "n_ctx", "sampler", "stream",
  "async", "speculative", "pool", "context_shift", "grammar", "json_schema", "gbnf", "regex", "json", "fast_forward",
  "logprobs", "prompt_logprobs", "n" }
local allowed_generate, allowed_chat = {}, {}
for _, k in ipairs(GENERATE_KEYS) do allowed_generate[k] = true end
for _, k in ipairs(sampling.SAMPLER_KEYS) do allowed_generate[k] = true end
for k in pairs(allowed_generate) do allowed_chat[k] = true end
allowed_chat.template = true
for _, k in ipairs({ "tools", "tool_choice", "parallel_tool_calls" }) do allowed_chat[k] = true end

-- Compiled chat templates per model: model -> { [source] = compiled }.
local compiled_templates = setmetatable({}, { __mode = "k" })

local function is_a(value, class)
  local mt = type(value) == "userdata" and getmetatable(value)
  return type(mt) == "table" and mt.__name == class
end

local function check_keys(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("%s: options must be a table, got %s"):format(fname, type(opts)), 3) end
  for k in pairs(opts) do
    if type(k) ~= "string" then error(("%s: option keys must be strings"):format(fname), 3) end
    if not allowed[k] then error(("%s: unknown option '%s'"):format(fname, k), 3) end
  end
  return opts
end

local function check_stop(stop, fname)
  if stop == nil then return {} end
  if type(stop) == "string" then stop = { stop } end
  if type(stop) ~= "table" then
    error(("%s: option 'stop' must be a string or a list of strings"):format(fname), 4)
  end
  local list = {}
  for i, s in ipairs(stop) do
    if type(s) ~= "string" or s == "" then
      error(("%s: option 'stop' entry %d must be a non-empty string"):format(fname, i), 4)
    end
    list[i] = s
  end
  return list
end

local function check_integer(v, key, min, fname)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= math.floor(v) or v < min then
    error(("%s: option '%s' must be an integer >= %d"):format(fname, key, min), 4)
  end
  return v
end

-- The request field a prompt comes from (a typed error's param): the
-- messages of a chat, else the prompt.
local function prompt_field(fname)
  return fname:find("chat", 1, true) and "messages" or "prompt"
end

--- M.prompt_tokens(model, tok, prompt, fname) -> ids: the tokens a
-- generation starts from: text (BOS by default, specials parsed) or ids.
local function prompt_tokens(model, tok, prompt, fname)
  local ids
  if type(prompt) == "string" then
    ids = model:tokenize(prompt, { special = true })
    local bos = tok:bos()
    if bos and ids[1] == bos and ids[2] == bos then table.remove(ids, 1) end -- the text carried BOS itself
  elseif type(prompt) == "table" then
    ids = {}
    local n_vocab = tok:n_vocab()
    for i, id in ipairs(prompt) do
      if type(id) ~= "number" or id ~= math.floor(id) or id < 0 or id >= n_vocab then
        error(("%s: prompt token %d is not a token id (0..%d)"):format(fname, i, n_vocab - 1), 4)
      end
      ids[i] = id
    end
  else
    error(("%s: argument 1 (prompt) must be a string or an array of token ids, got %s"):format(fname, type(prompt)), 4)
  end
  if #ids == 0 then
    errors.raise("invalid_argument",
      ("%s: the prompt is empty and the model adds no BOS token: nothing to continue from"):format(fname),
      prompt_field(fname))
  end
  return ids
end
M.prompt_tokens = prompt_tokens

--- M.raise_too_long(fname, n, ctx): raises the typed error (kind
-- context_exceeded, param the prompt's request field) of a prompt of n tokens
-- that a context of ctx cannot hold.
function M.raise_too_long(fname, n, ctx)
  errors.raise("context_exceeded",
    ("%s: the prompt is %d tokens but the context holds %d (n_ctx)"):format(fname, n, ctx), prompt_field(fname))
end

-- Keeps the longest prefix of ids the session already holds (rewinding the
-- rest); returns its length. The caller feeds ids after it.
local function reuse_prefix(sess, ids)
  -- at most #ids - 1: the prompt's last token is always fed, for its logits
  local common = pool.common_prefix(sess:tokens(), ids)
  if common < sess:pos() then sess:rewind(common) end
  return common
end

local REPLACEMENT = "\239\191\189" -- U+FFFD

--- M.valid_utf8(s) -> s with every ill-formed part replaced by U+FFFD: a
-- byte that cannot start a sequence, or a sequence cut short (its lead and
-- the continuation bytes it has, as one U+FFFD). Well-formed text is
-- returned as is. The decoder passes bytes through untouched (a model may
-- emit any byte token); generated text is always whole UTF-8.
function M.valid_utf8(s)
  if not s:find("[\128-\255]") then return s end
  local out, i, n, run = {}, 1, #s, 1
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3
      or (c >= 0xF0 and c <= 0xF4) and 4 or 0
    local good = 1 -- bytes of this sequence that are well-formed so far
    while good < len do
      local b = s:byte(i + good)
      local lo, hi = 0x80, 0xBF
      if good == 1 then -- no overlong forms, surrogates, or code points past U+10FFFF
        if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F
        elseif c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      end
      if not b or b < lo or b > hi then break end
      good = good + 1
    end
    if len > 0 and good == len then
      i = i + len
    else
      out[#out + 1] = s:sub(run, i - 1)
      out[#out + 1] = REPLACEMENT
      i = i + good
      run = i
    end
  end
  out[#out + 1] = s:sub(run)
  return table.concat(out)
end

-- Longest suffix of text that is a proper prefix of one of the stops.
local function undecided_length(text, stops)
  local best = 0
  for _, s in ipairs(stops) do
    for len = math.min(#s - 1, #text), best + 1, -1 do
      if text:sub(-len) == s:sub(1, len) then
        best = len
        break
      end
    end
  end
  return best
end

-- Start of the earliest stop string in text, or nil.
local function find_stop(text, stops)
  local first
  for _, s in ipairs(stops) do
    local i = text:find(s, 1, true)
    if i and (not first or i < first) then first = i end
  end
  return first
end

--- A generation in progress: callable (for generic `for`), yields text
-- pieces of whole UTF-8; gen.info is set when it has finished.
local Generation = {}
Generation.__index = Generation

-- The sampler for opts (the one given, or one made from the policy and
-- sampler options), the policy function if any, and how many candidates
-- it sees. Errors are raised at the caller of generate & co.
local function make_sampler(opts, fname)
  local policy_k = sampling.DEFAULT_POLICY_K
  local smp = opts.sampler
  if smp ~= nil then
    if not is_a(smp, "bitnet.Sampler") then error(("%s: option 'sampler' must be a bitnet.Sampler"):format(fname), 4) end
    for _, k in ipairs(sampling.SAMPLER_KEYS) do
      if opts[k] ~= nil then error(("%s: option '%s' cannot be combined with 'sampler'"):format(fname, k), 4) end
    end
    if opts.policy ~= nil and type(opts.policy) ~= "function" then
      error(("%s: with 'sampler', option 'policy' can only be a function"):format(fname), 4)
    end
    local k = smp:options().top_k
    return smp, opts.policy, k > 0 and k or policy_k
  end
  local sopts, policy_fn = sampling.resolve(opts.policy, opts, fname)
  local ok, made = pcall(core.sampler, sopts)
  if not ok then error((tostring(made):gsub("^.-bitnet%.sampler: ", fname .. ": ")), 4) end
  if sopts.top_k and sopts.top_k > 0 then policy_k = sopts.top_k end
  return made, policy_fn, policy_k
end

local function start(model, prompt, opts, fname)
  opts = check_keys(opts, allowed_generate, fname)
  local max_tokens = check_integer(opts.max_tokens, "max_tokens", 0, fname) or M.DEFAULT_MAX_TOKENS
  local stops = check_stop(opts.stop, fname)
  if opts.on_token ~= nil and type(opts.on_token) ~= "function" then
    error(("%s: option 'on_token' must be a function"):format(fname), 3)
  end
  if opts.stream ~= nil and type(opts.stream) ~= "boolean" then
    error(("%s: option 'stream' must be a boolean"):format(fname), 3)
  end
  local n_ctx = check_integer(opts.n_ctx, "n_ctx", 1, fname)
  if opts.async ~= nil and type(opts.async) ~= "boolean" then
    error(("%s: option 'async' must be a boolean"):format(fname), 3)
  end
  if opts.async and opts.stream then
    error(("%s: options 'async' and 'stream' cannot be combined (an async generation is iterable itself)"):format(fname), 3)
  end
  if opts.n ~= nil and opts.n ~= 1 then
    error(("%s: option 'n' > 1 is for generate and chat (not stream)"):format(fname), 3)
  end
  local spec = M.check_speculative(opts.speculative, fname)
  local logprobs = M.check_logprobs(opts.logprobs, "logprobs", fname)
  local prompt_logprobs = M.check_logprobs(opts.prompt_logprobs, "prompt_logprobs", fname)
  -- the prompt's logprobs come from the engine, which keeps every row's logits
  local on_engine = opts.async or spec ~= nil or prompt_logprobs ~= nil
  local sess, own_session = opts.session, false
  if opts.pool ~= nil then
    if getmetatable(opts.pool) ~= pool.Pool then error(("%s: option 'pool' must be a session pool (model:session_pool)"):format(fname), 3) end
    if sess ~= nil or n_ctx then error(("%s: option 'pool' cannot be combined with 'session' or 'n_ctx'"):format(fname), 3) end
    if opts.pool.model ~= model then error(("%s: option 'pool' belongs to another model"):format(fname), 3) end
  end
  if sess ~= nil then
    if not is_a(sess, "bitnet.Session") then error(("%s: option 'session' must be a bitnet.Session"):format(fname), 3) end
    if n_ctx then error(("%s: options 'n_ctx' and 'session' cannot be combined (the session has its size)"):format(fname), 3) end
  end
  local smp, policy_fn, policy_k = make_sampler(opts, fname)
  if on_engine and policy_fn then
    error(("%s: a policy function runs in Lua and cannot run on the engine's thread (async or speculative): "
      .. "use a preset or the sampler options"):format(fname), 3)
  end

  local tok = model:tokenizer()
  if opts.fast_forward ~= nil and type(opts.fast_forward) ~= "boolean" then
    error(("%s: option 'fast_forward' must be a boolean"):format(fname), 3)
  end
  local g = grammar.from_options(opts, tok, fname)
  if g then smp:set_grammar(g) end
  local ids = prompt_tokens(model, tok, prompt, fname)
  local slot
  if opts.pool then sess, slot = opts.pool:acquire(ids) end
  if not sess then
    sess = model:session({ n_ctx = n_ctx })
    own_session = true
  end
  local ctx = sess:n_ctx()
  if #ids > ctx then
    if own_session then sess:close() end
    M.raise_too_long(fname, #ids, ctx)
  end

  local shift_keep = M.check_context_shift(opts.context_shift, ids, tok, ctx, fname)
  local cached
  if prompt_logprobs then -- every prompt token is evaluated again for its logprobs
    sess:reset()
    cached = 0
  else
    cached = reuse_prefix(sess, ids)
  end
  smp:accept(ids)
  smp:set_logprobs(logprobs)

  local gen = setmetatable({
    model = model, tok = tok, sess = sess, own_session = own_session, smp = smp, policy = policy_fn,
    decoder = tok:decoder({ strip_leading_space = false }),
    stops = stops, max_tokens = max_tokens, on_token = opts.on_token,
    n_vocab = tok:n_vocab(), policy_k = policy_k,
    tokens = {}, text = {}, pending = "", queue = {}, to_feed = nil, n_sampled = 0,
    prompt = ids, prompt_n = #ids, cached = cached, prefilled = cached, t_prefill = 0, t_decode_start = nil,
    shift_keep = shift_keep,
    grammar = g, fast_forward = g ~= nil and opts.fast_forward ~= false, n_forced = 0,
    clear_grammar = g ~= nil and opts.sampler ~= nil,
    logprobs = logprobs and {}, logprobs_k = logprobs, want_prompt_logprobs = prompt_logprobs ~= nil,
  }, on_engine and M.AsyncGeneration or Generation)
  if on_engine then
    gen.speculative = spec
    gen.user_sampler = opts.sampler
    gen.job = core.job(sess, smp, ids, cached,
      { max_tokens = max_tokens, n_draft = spec and spec.n_draft or 0, ngram = spec and spec.ngram or 0,
        context_shift = shift_keep ~= nil, keep = shift_keep or 0, logprobs = logprobs, prompt_logprobs = prompt_logprobs })
  end
  if slot then slot.holder.gen = gen end
  return gen
end

--- M.check_context_shift(v, ids, tok, n_ctx, fname) -> keep | nil: the
-- option `context_shift`: true (keep the prompt's BOS, if it starts with
-- one) or { keep = N }; nil when off. When the context fills up, the first
-- keep positions stay, half of the rest is dropped, and generation goes on
-- (sess:shift) instead of ending with "length".
function M.check_context_shift(v, ids, tok, n_ctx, fname)
  if v == nil or v == false then return nil end
  local keep
  if v == true then
    keep = (tok:bos() and ids[1] == tok:bos()) and 1 or 0
  elseif type(v) == "table" then
    for k in pairs(v) do
      if k ~= "keep" then error(("%s: option 'context_shift' has an unknown key '%s'"):format(fname, tostring(k)), 4) end
    end
    keep = v.keep or 0
  else
    error(("%s: option 'context_shift' must be true or a table { keep = N }"):format(fname), 4)
  end
  if type(keep) ~= "number" or keep ~= math.floor(keep) or keep < 0 or keep > n_ctx - 2 then
    error(("%s: context_shift keep must be an integer within 0..%d (n_ctx - 2)"):format(fname, n_ctx - 2), 4)
  end
  return keep
end

--- M.check_logprobs(v, key, fname) -> k | nil: the options `logprobs` and
-- `prompt_logprobs`: how many most likely alternatives to record per token
-- (0..20; true means 0), nil when off.
function M.check_logprobs(v, key, fname)
  if v == nil or v == false then return nil end
  if v == true then return 0 end
  if type(v) ~= "number" or v ~= math.floor(v) or v < 0 or v > 20 then
    error(("%s: option '%s' must be true or an integer within 0..20"):format(fname, key), 4)
  end
  return v
end

local SPEC_KEYS = { n_draft = true, ngram = true }

--- M.check_speculative(v, fname) -> { n_draft, ngram } | nil: the option
-- `speculative`: true (n_draft 4, ngram 3) or a table of those keys.
function M.check_speculative(v, fname)
  if v == nil or v == false then return nil end
  if v == true then return { n_draft = 4, ngram = 3 } end
  if type(v) ~= "table" then error(("%s: option 'speculative' must be true or a table { n_draft =, ngram = }"):format(fname), 4) end
  for k in pairs(v) do
    if not SPEC_KEYS[k] then error(("%s: option 'speculative' has an unknown key '%s'"):format(fname, tostring(k)), 4) end
  end
  local n_draft, ngram = v.n_draft or 4, v.ngram or 3
  if type(n_draft) ~= "number" or n_draft ~= math.floor(n_draft) or n_draft < 1 or n_draft > 16 then
    error(("%s: speculative n_draft must be an integer within 1..16"):format(fname), 4)
  end
  if type(ngram) ~= "number" or ngram ~= math.floor(ngram) or ngram < 1 or ngram > 16 then
    error(("%s: speculative ngram must be an integer within 1..16"):format(fname), 4)
  end
  return { n_draft = n_draft, ngram = ngram }
end

-- Ends the generation: flushes held text (unless a stop string ended it)
-- and fills gen.info.
function Generation:finish(reason)
  if self.info then return end
  if reason ~= "stop_string" then
    -- an unfinished UTF-8 sequence at the very end becomes U+FFFD, as the
    -- decoder renders invalid bytes elsewhere: pieces stay whole UTF-8
    local tail = self.decoder:flush()
    local rest = self.pending .. (tail ~= "" and REPLACEMENT or "")
    local cut = find_stop(rest, self.stops)
    if cut then
      rest = rest:sub(1, cut - 1)
      reason = "stop"
    end
    self.pending = ""
    if rest ~= "" then self.queue[#self.queue + 1] = rest end
  else
    reason = "stop"
  end
  local decode_s = self.decode_seconds or (self.t_decode_start and clock() - self.t_decode_start or 0)
  local fed = self.prefilled - self.cached
  self.info = {
    finish_reason = reason,
    prompt_tokens = self.prompt_n,
    cached_tokens = self.cached,
    completion_tokens = #self.tokens,
    prefill_seconds = self.t_prefill,
    prefill_tokens_per_second = self.t_prefill > 0 and fed / self.t_prefill or 0,
    decode_seconds = decode_s,
    decode_tokens_per_second = decode_s > 0 and self.n_sampled / decode_s or 0,
    seed = self.smp:seed(),
  }
  if self.error then self.info.error = self.error end
  if self.logprobs then self.info.logprobs = self.logprobs end
  if self.want_prompt_logprobs then self.info.prompt_logprobs = self.prompt_logprobs end
  if self.grammar then self.info.forced_tokens = self.n_forced end
  if self.clear_grammar and not self.job then self.smp:set_grammar(nil) end
  if self.speculative then
    local drafted, accepted, passes = self.drafted or 0, self.accepted or 0, self.passes or 0
    self.info.speculative = {
      n_draft = self.speculative.n_draft, ngram = self.speculative.ngram,
      drafted = drafted, accepted = accepted,
      acceptance = drafted > 0 and accepted / drafted or 0,
      tokens_per_pass = passes > 0 and (self.n_sampled - 1) / passes or 0,
    }
  end
  if self.own_session then self.sess:close() end
end

-- Adds text a token released; emits what no stop string can claim.
function Generation:push_text(text)
  local pending = self.pending .. text
  if #self.stops == 0 then
    if pending ~= "" then self.queue[#self.queue + 1] = pending end
    self.pending = ""
    return false
  end
  local cut = find_stop(pending, self.stops)
  if cut then
    if cut > 1 then self.queue[#self.queue + 1] = pending:sub(1, cut - 1) end
    self.pending = ""
    return true
  end
  local hold = undecided_length(pending, self.stops)
  if #pending > hold then self.queue[#self.queue + 1] = pending:sub(1, #pending - hold) end
  self.pending = pending:sub(#pending - hold + 1)
  return false
end

--- Prompt tokens evaluated per step: a bound on the work of one gen:step().
M.PREFILL_CHUNK = 64

-- Feeds the next chunk of the prompt.
function Generation:prefill_chunk()
  local ids, from = self.prompt, self.prefilled
  local to = math.min(#ids, from + M.PREFILL_CHUNK)
  local chunk = {}
  for i = from + 1, to do chunk[#chunk + 1] = ids[i] end
  local t0 = clock()
  self.sess:feed(chunk)
  local t1 = clock()
  self.prefilled = to
  self.t_prefill = self.t_prefill + (t1 - t0)
  if to == #ids then self.t_decode_start = t1 end
end

-- One bounded unit of work: a chunk of the prompt, or one token (feed the
-- previous one, choose the next, decode it).
function Generation:advance()
  if self.prefilled < self.prompt_n then return self:prefill_chunk() end
  if #self.tokens >= self.max_tokens then return self:finish("length") end
  local sess = self.sess
  if self.to_feed then
    local n = #self.to_feed
    if sess:pos() + n > sess:n_ctx() then
      local drop = math.floor((sess:pos() - (self.shift_keep or 0)) / 2)
      if not self.shift_keep or drop < 1 or sess:pos() - drop + n > sess:n_ctx() then return self:finish("length") end
      sess:shift(self.shift_keep, drop)
    end
    sess:feed(self.to_feed)
    self.to_feed = nil
  end
  if self.fast_forward then
    -- the tokens the grammar forces are taken without a draw and fed
    -- together in the next step: one forward pass for the lot
    local forced = self.smp:forced_tokens(self.max_tokens - #self.tokens)
    if #forced > 0 then
      self.n_forced = self.n_forced + #forced
      self.n_sampled = self.n_sampled + #forced
      for i, id in ipairs(forced) do
        self.smp:accept(id)
        if self.tok:is_eog(id) then return self:finish("stop") end
        -- the only token the grammar allows: certain
        local lp = self.logprobs and { id = id, logprob = 0, top = self.logprobs_k > 0 and { { id = id, logprob = 0 } } or {} }
        if self:take_token(id, lp) then return end
        forced[i] = id
      end
      self.to_feed = forced
      return
    end
  end
  local id
  if self.policy then
    local state = { step = #self.tokens + 1, tokens = self.tokens, text = table.concat(self.text) .. self.pending }
    id = sampling.policy_choose(self.smp, sess, self.policy, state, self.n_vocab, self.policy_k)
  else
    id = self.smp:sample(sess)
  end
  self.n_sampled = self.n_sampled + 1
  self.smp:accept(id)
  if self.grammar then self.smp:commit(id) end
  if self.tok:is_eog(id) then return self:finish("stop") end
  self.to_feed = { id }
  self:take_token(id, self.logprobs and self.smp:last_logprobs())
end

-- A generated token (not an end-of-generation one): its text, on_token,
-- its logprobs record (with the logprobs option),
-- stop strings. Returns true when that ended the generation.
function Generation:take_token(id, logprobs)
  self.tokens[#self.tokens + 1] = id
  -- a policy function's own choice (no draw) counts as certain
  if self.logprobs then self.logprobs[#self.logprobs + 1] = logprobs or { id = id, logprob = 0, top = {} } end
  local text = M.valid_utf8(self.decoder:feed(id))
  local keep_going = true
  if self.on_token then keep_going = self.on_token(id, text) ~= false end
  if self:push_text(text) then
    self:finish("stop_string")
    return true
  end
  if not keep_going then
    self:finish("cancelled")
    return true
  end
  return false
end

-- The queued text as one piece, or nil.
function Generation:take()
  if #self.queue == 0 then return nil end
  local piece = table.concat(self.queue)
  self.queue = {}
  self.text[#self.text + 1] = piece
  return piece
end

--- gen() / gen:next() -> the next text piece (whole UTF-8, never ""), or
-- nil when the generation has finished (then gen.info is set).
function Generation:next()
  while true do
    local piece = self:take()
    if piece then return piece end
    if self.info then return nil end
    self:advance()
  end
end

--- gen:step() -> text | nil: one bounded unit of work (a chunk of at most
-- M.PREFILL_CHUNK prompt tokens, or one generated token) and the text it
-- released ("" when none yet); nil once finished. For hosts that drive
-- generation from a timer or event loop; pieces concatenate as gen() does.
function Generation:step()
  local piece = self:take()
  if piece then return piece end
  if self.info then return nil end
  self:advance()
  return self:take() or ""
end
Generation.__call = Generation.next

--- gen:cancel(): ends the generation now (finish_reason "cancelled");
-- text already decided is still returned by the next calls.
function Generation:cancel()
  self:finish("cancelled")
end

Generation.__tostring = function(self)
  return ("bitnet.Generation<%s, %d tokens>"):format(self.info and self.info.finish_reason or "running", #self.tokens)
end

-- Lua 5.4 closes the for loop's fourth value on break: free our session.
Generation.__close = function(self)
  if not self.info then self:finish("cancelled") end
end

--- An async generation (generate / chat with async = true): the engine
-- computes its tokens on its own thread; these methods turn them into text
-- on the caller's thread (on_token is called here), never waiting unless
-- named so. Pieces concatenate to what the synchronous call returns.
local AsyncGeneration = setmetatable({}, { __index = Generation })
AsyncGeneration.__index = AsyncGeneration
M.AsyncGeneration = AsyncGeneration

-- Copies the engine's figures for info.
function AsyncGeneration:take_status(st)
  self.n_sampled = st.n_sampled
  self.t_prefill = st.prefill_seconds
  self.decode_seconds = st.decode_seconds
  self.prefilled = self.cached + st.prompt_fed
  self.drafted, self.accepted, self.passes = st.drafted, st.accepted, st.passes
end

-- Lets go of the job once the engine has (never waits): its session is
-- free again and a user's sampler gets the job's sampler state. A job whose
-- fd a host watches stays until gen:close().
function AsyncGeneration:release(st, force)
  local job = self.job
  if st.finish then self.engine_done = true end
  if not job or not (st.finish or force) or (self.fd_taken and not force) then return end
  if self.user_sampler and st.finish then job:sampler_into(self.user_sampler) end
  self.job = nil
  job:close()
end

-- Takes what the engine has produced so far: each token through
-- take_token (text, on_token, stop strings), then its end.
function AsyncGeneration:pump()
  local job = self.job
  if not job then return end
  local ids, st, lps = job:poll()
  if self.want_prompt_logprobs and not self.prompt_logprobs then self.prompt_logprobs = job:prompt_logprobs() end
  if not self.info then
    for i, id in ipairs(ids) do
      if self:take_token(id, lps and lps[i]) then break end
    end
    if not self.info and st.finish then
      self:take_status(st)
      -- the request's fault (a grammar past its budget, a logit_bias that bans
      -- every token the grammar allows) is a typed invalid_argument error
      if st.finish == "error" then self.error = st.error_input and errors.new("invalid_argument", st.error) or st.error end
      self:finish(st.finish)
    elseif self.info then -- ended here (stop string, on_token): the engine need not go on
      job:cancel()
    end
  end
  self:release(st)
end

--- gen:poll() -> text | nil: the text decided since the last call ("" when
-- none yet; whole UTF-8, stop strings held back), nil once the generation
-- has finished and all its text was returned. Never waits.
function AsyncGeneration:poll()
  self:pump()
  local piece = self:take()
  if piece then return piece end
  if self.info then return nil end
  return ""
end
AsyncGeneration.step = AsyncGeneration.poll

--- gen:done() -> boolean: whether the generation has finished (gen.info is
-- set then; text may still wait for poll). Never waits.
function AsyncGeneration:done()
  self:pump()
  return self.info ~= nil
end

--- gen:wait([timeout]) -> boolean: blocks until the generation has finished
-- (true) or timeout seconds have passed (false).
function AsyncGeneration:wait(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then error("gen:wait: timeout must be a number of seconds", 2) end
  local deadline = timeout and clock() + timeout
  self:pump()
  while not self.info do
    local left = deadline and deadline - clock()
    if left and left <= 0 then break end
    self.job:wait(left)
    self:pump()
  end
  return self.info ~= nil
end

--- gen() / gen:next() -> the next text piece, waiting for it (for a generic
-- `for` in scripts); nil when finished.
function AsyncGeneration:next()
  while true do
    local piece = self:take()
    if piece then return piece end
    if self.info then return nil end
    self.job:wait()
    self:pump()
  end
end
AsyncGeneration.__call = AsyncGeneration.next

--- gen:released() -> boolean: whether the engine has let go of the
-- generation (its session or pool slot is free; gen:close() will not wait).
-- A cancelled generation is released within one engine step. Never waits.
function AsyncGeneration:released()
  self:pump()
  return self.job == nil or self.engine_done == true
end

--- gen:fd() -> integer | nil: a descriptor that becomes readable when the
-- generation has news (for vim.loop / luv poll handles); poll clears it.
-- A host that takes it calls gen:close() once it has stopped watching.
function AsyncGeneration:fd()
  if not self.job then return nil end
  self.fd_taken = true
  return self.job:fd()
end

--- gen:cancel(): ends the generation now (finish_reason "cancelled"); the
-- engine lets go of it within one step. Never waits.
function AsyncGeneration:cancel()
  if self.job then self.job:cancel() end
  if not self.info then self:finish("cancelled") end
end

--- gen:close(): cancels if running and lets go of the engine's job (waits
-- for the engine's current step at most). __close and collection do it.
function AsyncGeneration:close()
  self:cancel()
  if self.job then self:release({}, true) end
end
AsyncGeneration.__close = AsyncGeneration.close
AsyncGeneration.__tostring = function(self)
  return ("bitnet.AsyncGeneration<%s, %d tokens>"):format(self.info and self.info.finish_reason or "running", #self.tokens)
end

-- generate and chat return the whole text and info, or with stream = true
-- the iterator (for a generic `for`, its own closing value in Lua 5.4)
local function deliver(gen, stream, async)
  if async then return gen end
  if stream then return gen, nil, nil, gen end
  local pieces = {}
  for piece in gen.next, gen do pieces[#pieces + 1] = piece end
  if gen.job then gen:close() end -- on the engine (speculative): free its session now
  return table.concat(pieces), gen.info
end

--- model:generate(prompt, opts) -> text, info
-- Continues prompt (text or token ids). opts: max_tokens (default 256),
-- stop (string or list), the sampler options (temperature, top_k, top_p,
-- min_p, typical_p, repeat_penalty, repeat_last_n, presence_penalty,
-- frequency_penalty, logit_bias, seed), policy (preset name, option table
-- or function: see bitnet.sampling), sampler (a bitnet.Sampler to use),
-- on_token (function(id, text); returning false cancels), session (a
-- Session to continue, reusing its cached prefix), n_ctx (context of the
-- fresh session otherwise), stream (true: return model:stream's iterator).
-- info: finish_reason ("stop" | "length" | "cancelled"), prompt_tokens,
-- cached_tokens, completion_tokens, prefill_seconds,
-- prefill_tokens_per_second, decode_seconds, decode_tokens_per_second, seed.
function Model.generate(model, prompt, opts)
  if M.several(opts) then return require("bitnet.choices").run(model, prompt, opts, "model:generate") end
  return deliver(start(model, prompt, opts, "model:generate"), opts and opts.stream, opts and opts.async)
end

--- model:stream(prompt, opts) -> gen
-- An iterator for a generic `for` yielding text pieces (whole UTF-8) that
-- concatenate to what generate returns for the same options and seed. gen
-- is callable; gen.info is set once it has finished; gen:cancel() stops it;
-- gen:step() does one bounded unit of work (the prompt is evaluated in
-- chunks of M.PREFILL_CHUNK tokens, on the first steps, not when the
-- stream is made). Works inside coroutines (it never yields itself).
function Model.stream(model, prompt, opts)
  return deliver(start(model, prompt, opts, "model:stream"), true)
end

-- ---- chat templates ----

local function has_token(tok, text)
  return tok:id(text) ~= nil
end

--- M.fallback_template(model) -> name of the built-in template for a model
-- whose files carry none: "bitnet" for LLaMA-3 vocabularies on a BitNet
-- architecture (2B-4T), "llama3" for other LLaMA-3 vocabularies, "chatml"
-- when <|im_start|> is a token, "falcon3" when <|assistant|> is, and
-- "chatml" otherwise.
function M.fallback_template(model)
  local tok = model:tokenizer()
  if has_token(tok, "<|eot_id|>") then
    local arch = model:info().arch
    if arch:sub(1, 6) == "bitnet" or not has_token(tok, "<|start_header_id|>") then return "bitnet" end
    return "llama3"
  end
  if has_token(tok, "<|im_start|>") then return "chatml" end
  if has_token(tok, "<|assistant|>") then return "falcon3" end
  return "chatml"
end

local function check_messages(messages, fname)
  if type(messages) ~= "table" then
    error(("%s: argument 1 (messages) must be a list of { role =, content = } tables"):format(fname), 3)
  end
  for i, m in ipairs(messages) do
    if type(m) ~= "table" or type(m.role) ~= "string" or type(m.content) ~= "string" then
      error(("%s: message %d must be a table with string role and content"):format(fname, i), 3)
    end
  end
end

local function compiled(model, source)
  local cache = compiled_templates[model]
  if not cache then
    cache = {}
    compiled_templates[model] = cache
  end
  local t = cache[source]
  if not t then
    t = template.compile(source)
    cache[source] = t
  end
  return t
end

-- The Jinja source for a chat: the named built-in or given source, else
-- the model's own template, else the fallback for its vocabulary.
local function chat_source(model, which, fname)
  if which ~= nil then
    if type(which) ~= "string" then error(("%s: option 'template' must be a string"):format(fname), 4) end
    return template.builtin[which] or which
  end
  return model:chat_template() or template.named(M.fallback_template(model))
end

-- extra: more template variables (`tools`).
local function render(model, source, messages, add_generation_prompt, extra)
  local tok = model:tokenizer()
  local bos, eos = tok:bos(), tok:eos()
  local context = {
    messages = messages,
    add_generation_prompt = add_generation_prompt,
    bos_token = bos and tok:piece(bos) or "",
    eos_token = eos and tok:piece(eos) or "",
  }
  for k, v in pairs(extra or {}) do context[k] = v end
  return compiled(model, source):render(context)
end

local function render_chat(model, messages, add_generation_prompt, which, fname)
  check_messages(messages, fname)
  return render(model, chat_source(model, which, fname), messages, add_generation_prompt)
end

--- M.turn_end(model, source) -> text | nil: what the template writes after
-- an assistant's message (its end-of-turn marker, e.g. "<|im_end|>"),
-- found by rendering a sample conversation; nil when there is none or the
-- template will not render it.
function M.turn_end(model, source)
  local mark = "\1reply\1"
  local ok, text = pcall(render, model, source,
    { { role = "user", content = "hi" }, { role = "assistant", content = mark } }, false)
  local at = ok and text:find(mark, 1, true)
  if not at then return nil end
  local after = text:sub(at + #mark):match("^%s*(.-)%s*$")
  return after ~= "" and after or nil
end

--- model:apply_chat_template(messages [, opts]) -> text
-- Renders messages ({ { role =, content = }, ... }) with the model's own
-- chat template, or a built-in one chosen by its vocabulary
-- (M.fallback_template). opts: add_generation_prompt (default true),
-- template (a built-in name: llama3, bitnet, chatml, falcon3; or Jinja
-- source). bos_token and eos_token come from the tokenizer.
function Model.apply_chat_template(model, messages, opts)
  local fname = "model:apply_chat_template"
  opts = check_keys(opts, { add_generation_prompt = true, template = true }, fname)
  local agp = opts.add_generation_prompt
  if agp == nil then agp = true end
  if type(agp) ~= "boolean" then error(fname .. ": option 'add_generation_prompt' must be a boolean", 2) end
  return render_chat(model, messages, agp, opts.template, fname)
end

-- A turn marker that is one token ends generation as that token (EOG);
-- one the vocabulary spells in pieces must be caught as text.
local function chat_stops(model, source, stop)
  local marker = M.turn_end(model, source)
  if not marker or model:tokenizer():id(marker) then return stop end
  local stops = { marker }
  if type(stop) == "string" then stops[2] = stop end
  if type(stop) == "table" then
    for i, s in ipairs(stop) do stops[i + 1] = s end
  end
  return stops
end

-- The JSON Schema text a plain answer follows beside tools (json /
-- json_schema options), or nil.
local function answer_schema(opts, fname)
  if opts.grammar ~= nil or opts.gbnf ~= nil or opts.regex ~= nil then
    error(("%s: with tools, a plain answer can follow json or json_schema only"):format(fname), 4)
  end
  local s = opts.json_schema
  if type(s) == "table" or type(s) == "boolean" then return grammar.encode_json(s) end
  if type(s) == "string" then return s end
  if opts.json == "object" then return '{"type":"object"}' end
  if opts.json then return "{}" end
  return nil
end

-- Tools and a history of tool calls: the messages to render, the plan
-- (bitnet.tools.plan) and the template's extra variables.
local function tool_setup(model, source, messages, opts, fname)
  local t = compiled(model, source)
  local caps = tools.template_caps(t, source, function(msgs, extra) return render(model, source, msgs, true, extra) end)
  local list = opts.tools ~= nil and tools.check(opts.tools) or {}
  local mode, name = tools.choice(opts.tool_choice, list)
  local parallel = opts.parallel_tool_calls
  if parallel ~= nil and type(parallel) ~= "boolean" then
    error(("%s: option 'parallel_tool_calls' must be a boolean"):format(fname), 4)
  end
  local plan = tools.plan(list, mode, name, caps, { tok = model:tokenizer(), parallel = parallel,
    response = mode ~= "none" and answer_schema(opts, fname) or nil })
  for i, m in ipairs(messages) do
    if type(m) ~= "table" then error(("%s: message %d must be a table"):format(fname, i), 4) end
  end
  local msgs = tools.history(messages, caps, { parallel = plan.parallel })
  if plan.system then msgs = tools.add_system(msgs, plan.system) end
  return msgs, plan, plan.template_tools and { tools = plan.template_tools } or nil
end

local CHAT_ONLY = { template = true, tools = true, tool_choice = true, parallel_tool_calls = true }

-- The prompt, generate options and tool plan (or nil) of a chat.
local function chat_prompt(model, messages, opts, fname)
  opts = check_keys(opts, allowed_chat, fname)
  local source = chat_source(model, opts.template, fname)
  local plan, extra
  if opts.tools ~= nil or opts.tool_choice ~= nil or (type(messages) == "table" and tools.has_history(messages)) then
    messages, plan, extra = tool_setup(model, source, messages, opts, fname)
  end
  check_messages(messages, fname)
  local prompt = render(model, source, messages, true, extra)
  local gopts = {}
  for k, v in pairs(opts) do
    if not CHAT_ONLY[k] then gopts[k] = v end
  end
  if plan and plan.mode ~= "none" then
    prompt = prompt .. (plan.prefix or "")
    gopts.json_schema, gopts.json = nil, nil
    gopts.grammar = plan.grammar
  end
  if opts.stop == nil or type(opts.stop) == "string" or type(opts.stop) == "table" then
    gopts.stop = chat_stops(model, source, opts.stop)
  end
  return prompt, gopts, plan
end

local function chat_start(model, messages, opts, fname)
  local prompt, gopts, plan = chat_prompt(model, messages, opts, fname)
  local gen = start(model, prompt, gopts, fname)
  if plan and plan.mode ~= "none" then return tools.wrap(gen, plan) end
  return gen
end

--- model:chat(messages, opts) -> reply, info
-- Renders messages with apply_chat_template (option `template` as there)
-- and generates the assistant's reply with generate's options; with
-- stream = true returns chat_stream's iterator instead. The reply ends at an
-- end-of-generation token, or at the template's end-of-turn text
-- (M.turn_end) when the vocabulary has no single token for it.
-- Tools (bitnet.tools): tools (OpenAI's array of { type = "function",
-- function = { name, description, parameters } }), tool_choice ("none",
-- "auto", "required", { type = "function", function = { name } }),
-- parallel_tool_calls (default true); messages may hold assistant
-- tool_calls and "tool" results. The reply is then the answer's text and
-- info.tool_calls the calls ({ id, type, function = { name, arguments } },
-- finish_reason "tool_calls"), or nil.
function Model.chat(model, messages, opts)
  if M.several(opts) then
    local prompt, gopts, plan = chat_prompt(model, messages, opts, "model:chat")
    if plan and plan.mode ~= "none" then error("model:chat: n > 1 with tools is not supported", 2) end
    return require("bitnet.choices").run(model, prompt, gopts, "model:chat")
  end
  return deliver(chat_start(model, messages, opts, "model:chat"), opts and opts.stream, opts and opts.async)
end

--- model:chat_stream(messages, opts) -> gen: model:chat as an iterator of
-- text pieces (see model:stream).
function Model.chat_stream(model, messages, opts)
  return deliver(chat_start(model, messages, opts, "model:chat_stream"), true)
end

--- M.several(opts) -> boolean: whether opts ask for n > 1 choices (see
-- bitnet.choices); n = 1 or nil is one generation.
function M.several(opts)
  return type(opts) == "table" and opts.n ~= nil and opts.n ~= 1
end

M.Generation = Generation
M.start = start
M.prompt_tokens = prompt_tokens
return M
