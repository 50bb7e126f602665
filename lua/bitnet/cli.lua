--- bitnet.cli: the `bitnet` command (bin/bitnet is a thin launcher).
-- cli.main(args [, streams]) runs one command and returns the exit status:
-- 0 done, 1 failed (missing file, bad model, ...), 2 usage error. streams
-- (for tests and embedding) may replace stdin, stdout, stderr, and
-- stderr_is_tty (whether to draw progress bars; default: asks the shell).
local bitnet = require("bitnet")

local M = {}

local USAGE = [[
usage: bitnet <command> [arguments]

commands:
  run [MODEL] -p PROMPT     continue a prompt, streaming the text to stdout
  chat [MODEL]              chat interactively (/reset clears history, /quit ends)
  info [MODEL]              describe a model
  perplexity MODEL FILE     perplexity of the model on a text file
  convert SRC DST --type T  write a model as GGUF with another weight type
  bench [MODEL]             prefill and decode speed in tokens per second
  lua FILE [ARGS...]        run a Lua script with bitnet found (from a checkout too)
  repl [MODEL]              an interactive Lua session with bitnet and the model
  serve [MODEL]             an OpenAI-compatible HTTP server (nginx + its Lua module)
  pull REPO[:FILE|:TYPE]    download a model from the Hugging Face Hub into its cache
  list                      the models in the Hugging Face cache
  rm REPO                   delete a model from the Hugging Face cache
  help [COMMAND]            this text, or a command's options

MODEL is a GGUF file, a Hugging Face directory, or a Hugging Face Hub repo
(org/name[:FILE|:TYPE], pulled first when not in the cache; a local path
wins); without it, the shipped model. `bitnet COMMAND --help` lists the
options of a command.
]]

local LOAD_HELP = [[
  -t, --threads N         threads (default: one per core)
  -c, --ctx N             context size in tokens (default: the model's)
      --kernel NAME       force a kernel path (auto, ref, ...)]]

local SAMPLING_HELP = [[
  -n, --max-tokens N      tokens to generate at most (default 256)
      --policy NAME       sampling preset: greedy, precise, balanced, creative
      --temp T            temperature (0 = greedy)
      --top-k K, --top-p P, --min-p P, --typical-p P
      --repeat-penalty R, --repeat-last-n N
      --presence-penalty P, --frequency-penalty P
      --seed S            random seed (default: a fresh one)
      --stop TEXT         stop before TEXT (repeatable)
      --json              the output is one JSON value
      --json-schema FILE  the output is JSON valid under the JSON Schema in FILE
      --grammar-file FILE the output matches the GBNF grammar in FILE
      --regex PATTERN     the output matches the regular expression]]

local HELP = {
  pull = "usage: bitnet pull REPO[:FILE|:TYPE][@REVISION]\n\n"
    .. "Downloads a model from the Hugging Face Hub into huggingface_hub's cache and\n"
    .. "prints its path. REPO:FILE names a file; REPO:TYPE (i2_s, tq2_0, tq1_0, f16, ...)\n"
    .. "the GGUF whose name carries it; a bare REPO takes its I2_S, TQ2_0 or TQ1_0 GGUF,\n"
    .. "else its smallest, or a Hugging Face directory (config, tokenizer, safetensors).\n"
    .. "Environment: HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE=1,\n"
    .. "HF_HUB_DOWNLOAD_TIMEOUT (seconds without data, default 10).\n",
  list = "usage: bitnet list\n\nThe model repos in the Hugging Face cache (HF_HUB_CACHE): revision, commit,\nfiles and size.\n",
  rm = "usage: bitnet rm REPO\n\nDeletes a model repo (every revision and file) from the Hugging Face cache.\n",
  run = "usage: bitnet run [MODEL] -p PROMPT [options]\n\n"
    .. "Continues PROMPT and streams the text to stdout.\n\n"
    .. "  -p, --prompt TEXT       the prompt\n"
    .. "  -f, --file FILE         read the prompt from FILE ('-': stdin)\n"
    .. "      --stats             print token counts and speed to stderr\n"
    .. SAMPLING_HELP .. "\n" .. LOAD_HELP .. "\n",
  chat = "usage: bitnet chat [MODEL] [options]\n\n"
    .. "Reads your turns from stdin, one line each, and prints the replies.\n"
    .. "Commands: /reset forgets the conversation, /quit (or end of input) leaves.\n\n"
    .. "  -s, --system TEXT       a system message to start with\n"
    .. "      --template NAME     chat template: a built-in name or a file of Jinja\n"
    .. SAMPLING_HELP .. "\n" .. LOAD_HELP .. "\n",
  info = "usage: bitnet info [MODEL]\n\nPrints the model's architecture, sizes, tensor types, tokenizer and\nchat template.\n\n"
    .. LOAD_HELP .. "\n",
  perplexity = "usage: bitnet perplexity MODEL FILE [options]\n\n"
    .. "Perplexity and bits per byte of the model on the text in FILE.\n\n"
    .. "      --stride N          tokens between window starts (default: ctx / 2)\n"
    .. LOAD_HELP .. "\n",
  convert = "usage: bitnet convert SRC DST --type T [options]\n\n"
    .. "Writes the model SRC as a GGUF file DST.\n\n"
    .. "      --type T            linear weights: i2_s, tq1_0, tq2_0, f16, f32\n"
    .. "      --embeddings E      embeddings: f16, bf16, f32, q8_0, q6_k (default: as SRC)\n"
    .. "      --fallback F        f16 or f32 for tensors the type cannot hold\n",
  bench = "usage: bitnet bench [MODEL] [options]\n\n"
    .. "Measures prefill and decode speed.\n\n"
    .. "  -p, --prompt-tokens N   tokens in the prefill (default 128)\n"
    .. "  -n, --decode-tokens N   tokens decoded one by one (default 64)\n"
    .. "  -r, --reps N            repetitions; the best is reported (default 3)\n"
    .. LOAD_HELP .. "\n",
  repl = "usage: bitnet repl [MODEL] [options]\n\n"
    .. "An interactive Lua session (the interpreter running this command) with bitnet\n"
    .. "loaded and the model as the global `model`, loaded on first use. Expressions\n"
    .. "print their values; help() lists the helpers gen, chat, tok and top. Line\n"
    .. "editing and history (~/.local/state/bitnet/repl_history) where readline or\n"
    .. "libedit is installed. Ctrl-C stops a generation or a chunk, Ctrl-D leaves.\n"
    .. "With stdin not a terminal, runs the lines given and exits 1 at the first error.\n\n"
    .. LOAD_HELP .. "\n",
  serve = "usage: bitnet serve [MODEL] [options]\n\n"
    .. "Writes an nginx configuration (openresty/nginx.conf filled in) into a prefix\n"
    .. "directory and runs nginx with its Lua module in the foreground, serving\n"
    .. "/v1/completions, /v1/chat/completions, /v1/embeddings, /v1/models, /tokenize,\n"
    .. "/detokenize, /metrics (with --metrics) and /health. Ctrl-C or\n"
    .. "SIGTERM stops it. Needs nginx, libnginx-mod-http-lua and lua-cjson (Debian)\n"
    .. "and the LuaJIT build of bitnet.core (make luajit).\n\n"
    .. "      --host ADDR         address to listen on (default 127.0.0.1)\n"
    .. "      --port N            port (default 8080)\n"
    .. "      --workers N         nginx worker processes, each with the model (default 1)\n"
    .. "      --slots N           generations at once per worker: session pool size (default 4)\n"
    .. "      --queue N           requests waiting for a slot per worker, then 503 (default 16)\n"
    .. "      --queue-timeout S   seconds a request may wait for a slot, then 503 (default 30)\n"
    .. "  -n, --max-tokens N      tokens when a request gives no max_tokens (default 256)\n"
    .. "      --name ID           the model id in the API (default: the file name)\n"
    .. "      --instance NAME     X-Bitnet-Instance response header (default HOST:PORT)\n"
    .. "      --upstream ADDR     run a front nginx balancing these servers instead\n"
    .. "                          (repeatable; consistent hash on the conversation key)\n"
    .. "      --prefix DIR        nginx prefix directory (default: a new temporary one)\n"
    .. "      --config-only       write the configuration and print the nginx command\n"
    .. "      --nginx PATH        the nginx program (default: nginx on PATH)\n"
    .. "      --modules DIR       nginx's dynamic modules (default /usr/lib/nginx/modules)\n"
    .. "  -t, --threads N         threads per worker (default: one per core)\n"
    .. "  -c, --ctx N             context of each slot (default: the model's)\n"
    .. "      --api-key KEY       require 'Authorization: Bearer KEY' on /v1/*, /tokenize,\n"
    .. "                          /detokenize and /metrics (repeatable; also BITNET_API_KEY)\n"
    .. "      --api-key-file FILE the keys, one a line\n"
    .. "      --no-auth           listen on a non-loopback address without a key\n"
    .. "      --metrics           serve GET /metrics (Prometheus text)\n"
    .. "      --pooling mean|last how /v1/embeddings pools the final hidden states (default mean)\n",
}

-- ---- arguments ----

-- Option spec per command: long name -> { key, kind [, short letter] },
-- kind "string", "number", "integer", "flag" or "list" (repeatable).
local LOAD_OPTS = {
  threads = { "threads", "integer", "t" }, ctx = { "n_ctx", "integer", "c" }, kernel = { "kernel", "string" },
}
local SAMPLING_OPTS = {
  ["max-tokens"] = { "max_tokens", "integer", "n" }, policy = { "policy", "string" },
  temp = { "temperature", "number" }, ["top-k"] = { "top_k", "integer" }, ["top-p"] = { "top_p", "number" },
  ["min-p"] = { "min_p", "number" }, ["typical-p"] = { "typical_p", "number" },
  ["repeat-penalty"] = { "repeat_penalty", "number" }, ["repeat-last-n"] = { "repeat_last_n", "integer" },
  ["presence-penalty"] = { "presence_penalty", "number" }, ["frequency-penalty"] = { "frequency_penalty", "number" },
  seed = { "seed", "integer" }, stop = { "stop", "list" },
  json = { "json", "flag" }, ["json-schema"] = { "json_schema_file", "string" },
  ["grammar-file"] = { "grammar_file", "string" }, regex = { "regex", "string" },
}

local function merge(...)
  local out = {}
  for _, t in ipairs({ ... }) do
    for k, v in pairs(t) do out[k] = v end
  end
  return out
end

local COMMAND_OPTS = {
  pull = {}, list = {}, rm = {},
  run = merge(LOAD_OPTS, SAMPLING_OPTS, {
    prompt = { "prompt", "string", "p" }, file = { "file", "string", "f" }, stats = { "stats", "flag" },
  }),
  chat = merge(LOAD_OPTS, SAMPLING_OPTS, { system = { "system", "string", "s" }, template = { "template", "string" } }),
  info = merge(LOAD_OPTS),
  repl = merge(LOAD_OPTS),
  perplexity = merge(LOAD_OPTS, { stride = { "stride", "integer" } }),
  convert = { type = { "type", "string" }, embeddings = { "embeddings", "string" }, fallback = { "fallback", "string" } },
  bench = merge(LOAD_OPTS, {
    ["prompt-tokens"] = { "prompt_tokens", "integer", "p" }, ["decode-tokens"] = { "decode_tokens", "integer", "n" },
    reps = { "reps", "integer", "r" },
  }),
  serve = {
    threads = { "threads", "integer", "t" }, ctx = { "n_ctx", "integer", "c" },
    host = { "host", "string" }, port = { "port", "integer" }, workers = { "workers", "integer" },
    slots = { "slots", "integer" }, queue = { "queue", "integer" }, ["queue-timeout"] = { "queue_timeout", "number" },
    ["max-tokens"] = { "max_tokens", "integer", "n" }, name = { "name", "string" }, instance = { "instance", "string" },
    upstream = { "upstream", "list" }, prefix = { "prefix", "string" }, ["config-only"] = { "config_only", "flag" },
    nginx = { "nginx", "string" }, modules = { "modules", "string" },
    ["api-key"] = { "api_key", "list" }, ["api-key-file"] = { "api_key_file", "string" },
    ["no-auth"] = { "no_auth", "flag" }, metrics = { "metrics", "flag" }, pooling = { "pooling", "string" },
  },
}

local UsageError = {}

local function usage_error(msg)
  error(setmetatable({ msg = msg }, UsageError), 0)
end

-- args -> positional list, options table; raises a UsageError.
local function parse(command, args)
  local spec = COMMAND_OPTS[command]
  local short = {}
  for long, s in pairs(spec) do
    if s[3] then short[s[3]] = long end
  end
  local pos, opts = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local long, value
    if a == "-h" or a == "--help" then
      opts.help = true
    elseif a:sub(1, 2) == "--" then
      long, value = a:match("^%-%-([^=]+)=(.*)$")
      long = long or a:sub(3)
    elseif a:sub(1, 1) == "-" and #a > 1 and a ~= "-" then
      long = short[a:sub(2, 2)]
      if not long then usage_error(("unknown option %s for '%s'"):format(a, command)) end
      if #a > 2 then value = a:sub(3) end
    else
      pos[#pos + 1] = a
    end
    if long then
      local s = spec[long]
      if not s then usage_error(("unknown option --%s for '%s'"):format(long, command)) end
      local key, kind = s[1], s[2]
      if kind == "flag" then
        if value then usage_error("option --" .. long .. " takes no value") end
        opts[key] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then usage_error("option --" .. long .. " needs a value") end
        end
        if kind == "number" or kind == "integer" then
          local n = tonumber(value)
          if not n or (kind == "integer" and n ~= math.floor(n)) then
            usage_error(("option --%s needs %s, got '%s'"):format(long, kind == "integer" and "an integer" or "a number", value))
          end
          value = n
        end
        if kind == "list" then
          opts[key] = opts[key] or {}
          table.insert(opts[key], value)
        else
          opts[key] = value
        end
      end
    end
    i = i + 1
  end
  return pos, opts
end

-- ---- helpers ----

-- Whether a shell command exits with status 0 (os.execute differs between
-- Lua 5.1 / LuaJIT and 5.2+).
local function succeeds(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end -- Lua 5.1 / LuaJIT
  return ok == true and how == "exit" and code == 0
end

-- Whether file descriptor fd (0 stdin, 2 stderr) is a terminal.
local function is_tty(fd)
  return succeeds("test -t " .. fd)
end

-- A progress callback drawing "label [####....] 40%" on the terminal, or
-- nothing when stderr is not one.
local function progress_bar(io_, label)
  if not io_.stderr_is_tty then return nil end
  local last = -1
  return function(done, total)
    local pct = total > 0 and math.floor(100 * done / total) or 100
    if pct ~= last then
      last = pct
      local width = 30
      local filled = math.floor(width * pct / 100)
      io_.stderr:write(("\r%s [%s%s] %3d%%"):format(label, ("#"):rep(filled), ("."):rep(width - filled), pct))
      if done >= total then io_.stderr:write("\n") end
      io_.stderr:flush()
    end
  end
end

local function human_count(n)
  if n >= 1e9 then return ("%.2fB"):format(n / 1e9) end
  if n >= 1e6 then return ("%.1fM"):format(n / 1e6) end
  if n >= 1e3 then return ("%.1fK"):format(n / 1e3) end
  return tostring(n)
end

local function human_bytes(n)
  if n >= 2 ^ 30 then return ("%.2f GiB"):format(n / 2 ^ 30) end
  if n >= 2 ^ 20 then return ("%.1f MiB"):format(n / 2 ^ 20) end
  if n >= 2 ^ 10 then return ("%.1f KiB"):format(n / 2 ^ 10) end
  return n .. " B"
end

-- A progress callback for downloads: bytes, rate and time left on the
-- terminal; nothing when stderr is not one.
local function download_bar(io_, label)
  if not io_.stderr_is_tty then return nil end
  local clock, t0, last = bitnet.core.clock, bitnet.core.clock(), -1
  return function(done, total)
    local now = clock()
    if now - last < 0.2 and done < total then return end
    last = now
    local rate = done / math.max(now - t0, 1e-3)
    local left = rate > 0 and (total - done) / rate or 0
    io_.stderr:write(("\r%s %s / %s  %s/s  ETA %d:%02d   "):format(label, human_bytes(done), human_bytes(total),
      human_bytes(rate), math.floor(left / 60), math.floor(left % 60)))
    if done >= total then io_.stderr:write("\n") end
    io_.stderr:flush()
  end
end

-- The path a MODEL argument names: a local path as it is; a Hub reference
-- from the cache, or pulled first (with a progress bar) when missing.
local function model_path(name, io_)
  local path = bitnet.resolve(name)
  if path then return path end
  if not bitnet.hub.parse_ref(name) then return name end
  local pulled, err = bitnet.hub.pull(name, { progress = download_bar(io_, "pull " .. name) })
  if not pulled then error({ msg = err }, 0) end
  return pulled
end

local function load_model(path, opts, io_)
  local lopts = { threads = opts.threads, n_ctx = opts.n_ctx, kernel = opts.kernel }
  local model, err
  if path then
    model, err = bitnet.load(model_path(path, io_), lopts)
  else
    model, err = bitnet.load(lopts)
  end
  if not model then error({ msg = err }, 0) end
  return model
end

local read_file

-- The generation options of the sampling flags; --json-schema and
-- --grammar-file become json_schema / gbnf with the file's text.
local function sampler_options(opts, io_)
  local out = {}
  for _, s in pairs(SAMPLING_OPTS) do
    if opts[s[1]] ~= nil then out[s[1]] = opts[s[1]] end
  end
  out.json_schema_file, out.grammar_file = nil, nil
  local n = (opts.json and 1 or 0) + (opts.json_schema_file and 1 or 0) + (opts.grammar_file and 1 or 0)
    + (opts.regex and 1 or 0)
  if n > 1 then usage_error("give at most one of --json, --json-schema, --grammar-file, --regex") end
  if opts.json_schema_file then out.json_schema = read_file(opts.json_schema_file, io_) end
  if opts.grammar_file then out.gbnf = read_file(opts.grammar_file, io_) end
  return out
end

function read_file(path, io_)
  if path == "-" then return io_.stdin:read("*a") end
  local f, err = io.open(path, "rb")
  if not f then error({ msg = err }, 0) end
  local s = f:read("*a")
  f:close()
  return s
end

-- ---- commands ----

local commands = {}

function commands.run(pos, opts, io_)
  if #pos > 1 then usage_error("run takes at most one MODEL") end
  local prompt = opts.prompt
  if opts.file then
    if prompt then usage_error("give --prompt or --file, not both") end
    prompt = read_file(opts.file, io_)
  end
  if not prompt then usage_error("run needs a prompt: -p TEXT or -f FILE") end
  local model = load_model(pos[1], opts, io_)
  local gopts = sampler_options(opts, io_)
  local gen = model:stream(prompt, gopts)
  for piece in gen do
    io_.stdout:write(piece)
    io_.stdout:flush()
  end
  io_.stdout:write("\n")
  if opts.stats then
    local info = gen.info
    io_.stderr:write(("finish: %s, prompt %d tokens (%d cached), completion %d tokens\n"):format(
      info.finish_reason, info.prompt_tokens, info.cached_tokens, info.completion_tokens))
    io_.stderr:write(("prefill %.1f tok/s (%.3f s), decode %.1f tok/s (%.3f s), seed %s\n"):format(
      info.prefill_tokens_per_second, info.prefill_seconds, info.decode_tokens_per_second, info.decode_seconds,
      tostring(info.seed)))
  end
  return 0
end

function commands.chat(pos, opts, io_)
  if #pos > 1 then usage_error("chat takes at most one MODEL") end
  local model = load_model(pos[1], opts, io_)
  local template = opts.template
  if template and not bitnet.template.builtin[template] then template = read_file(template, io_) end
  local gopts = sampler_options(opts, io_)
  gopts.template = template
  local interactive = io_.stdin == io.stdin and is_tty(0) -- then prompt for each turn
  local function fresh()
    local m = {}
    if opts.system then m[1] = { role = "system", content = opts.system } end
    return m
  end
  local messages = fresh()
  local sess = model:session({ n_ctx = opts.n_ctx })
  gopts.session = sess
  while true do
    if interactive then
      io_.stderr:write("> ")
      io_.stderr:flush()
    end
    local line = io_.stdin:read("*l")
    if not line or line == "/quit" or line == "/exit" then break end
    if line == "/reset" then
      messages = fresh()
      sess:reset()
      io_.stderr:write("(conversation cleared)\n")
    elseif line:sub(1, 1) == "/" then
      io_.stderr:write("unknown command " .. line .. " (commands: /reset, /quit)\n")
    elseif line:match("%S") then
      messages[#messages + 1] = { role = "user", content = line }
      local parts = {}
      local ok, err = pcall(function()
        for piece in model:chat_stream(messages, gopts) do
          parts[#parts + 1] = piece
          io_.stdout:write(piece)
          io_.stdout:flush()
        end
      end)
      io_.stdout:write("\n")
      if ok then
        messages[#messages + 1] = { role = "assistant", content = table.concat(parts) }
      else
        table.remove(messages)
        io_.stderr:write("bitnet: " .. tostring(err):gsub("^.-model:chat_stream: ", "") .. " (/reset starts over)\n")
      end
    end
  end
  sess:close()
  return 0
end

function commands.info(pos, opts, io_)
  if #pos > 1 then usage_error("info takes at most one MODEL") end
  local model = load_model(pos[1], opts, io_)
  local i = model:info()
  local out = io_.stdout
  out:write(("%s\n"):format(tostring(model)))
  out:write(("path:         %s (%s, %s)\n"):format(i.path, i.format, human_bytes(i.file_size)))
  out:write(("architecture: %s, %s parameters, activation %s\n"):format(i.arch, human_count(i.n_params), i.activation))
  out:write(("shape:        %d layers, n_embd %d, %d heads (%d KV) of %d, n_ff %d\n"):format(
    i.n_layers, i.n_embd, i.n_heads, i.n_kv_heads, i.head_dim, i.n_ff))
  out:write(("vocabulary:   %d tokens; training context %d\n"):format(i.n_vocab, i.n_ctx_train))
  out:write(("rope theta %g, norm eps %g, tied embeddings %s\n"):format(i.rope_theta, i.norm_eps,
    i.tied_embeddings and "yes" or "no"))
  local types = {}
  for name, count in pairs(i.tensor_types) do types[#types + 1] = ("%s x%d"):format(name, count) end
  table.sort(types)
  out:write(("tensors:      %s\n"):format(table.concat(types, ", ")))
  out:write(("kernel:       %s, %d threads\n"):format(i.kernel, i.threads))
  local ok, tok = pcall(model.tokenizer, model)
  if ok then
    local function special(id) return id and ("%d %q"):format(id, tok:piece(id)) or "none" end
    out:write(("tokenizer:    %s; bos %s, eos %s, eot %s\n"):format(tostring(tok), special(tok:bos()),
      special(tok:eos()), special(tok:eot())))
    local own = model:chat_template()
    out:write(("chat:         %s\n"):format(own and ("the model's template (%d bytes)"):format(#own)
      or ("built-in template '%s'"):format(require("bitnet.generate").fallback_template(model))))
  else
    out:write(("tokenizer:    none (%s)\n"):format(tostring(tok):gsub("^.-model:tokenizer: ", "")))
  end
  return 0
end

function commands.perplexity(pos, opts, io_)
  if #pos ~= 2 then usage_error("perplexity needs MODEL and FILE") end
  local text = read_file(pos[2], io_)
  local model = load_model(pos[1], opts, io_)
  if not model.perplexity then error({ msg = "this build of bitnet has no model:perplexity" }, 0) end
  local ppl, info = model:perplexity(text, {
    n_ctx = opts.n_ctx, stride = opts.stride, progress = progress_bar(io_, "perplexity"),
  })
  io_.stdout:write(("perplexity:    %.4f\n"):format(ppl))
  io_.stdout:write(("bits per byte: %.4f\n"):format(info.bits_per_byte))
  io_.stdout:write(("tokens:        %d (%d bytes)\n"):format(info.tokens, info.bytes))
  return 0
end

function commands.convert(pos, opts, io_)
  if #pos ~= 2 then usage_error("convert needs SRC and DST") end
  if not opts.type then usage_error("convert needs --type (i2_s, tq1_0, tq2_0, f16, f32)") end
  local convert = bitnet.convert or bitnet.core.convert
  if not convert then error({ msg = "this build of bitnet has no converter (bitnet.convert)" }, 0) end
  local ok, err = convert(model_path(pos[1], io_), pos[2], {
    type = opts.type, embeddings = opts.embeddings, fallback = opts.fallback,
    progress = progress_bar(io_, "convert"),
  })
  if not ok then error({ msg = err }, 0) end
  io_.stderr:write(("wrote %s\n"):format(pos[2]))
  return 0
end

-- Deterministic ordinary token ids for benchmarking (no specials needed:
-- any id runs the same arithmetic).
local function bench_ids(n, n_vocab, from)
  local ids = {}
  for i = 1, n do ids[i] = (from + i * 7919) % n_vocab end
  return ids
end

function commands.bench(pos, opts, io_)
  if #pos > 1 then usage_error("bench takes at most one MODEL") end
  local n_prompt, n_decode, reps = opts.prompt_tokens or 128, opts.decode_tokens or 64, opts.reps or 3
  if n_prompt < 1 or n_decode < 0 or reps < 1 then usage_error("bench needs -p >= 1, -n >= 0, -r >= 1") end
  local model = load_model(pos[1], opts, io_)
  local info = model:info()
  local n_ctx = opts.n_ctx or (n_prompt + n_decode)
  if n_prompt + n_decode > n_ctx then
    usage_error(("prompt %d + decode %d tokens exceed the context of %d"):format(n_prompt, n_decode, n_ctx))
  end
  local clock = bitnet.core.clock
  local smp = bitnet.sampler({ temperature = 0 })
  local best_prefill, best_decode = 0, 0
  local bar = progress_bar(io_, "bench")
  for r = 1, reps do
    local sess = model:session({ n_ctx = n_ctx })
    local t0 = clock()
    sess:feed(bench_ids(n_prompt, info.n_vocab, r))
    local t1 = clock()
    for _ = 1, n_decode do sess:feed({ smp:sample(sess) }) end
    local t2 = clock()
    sess:close()
    best_prefill = math.max(best_prefill, n_prompt / math.max(t1 - t0, 1e-9))
    if n_decode > 0 then best_decode = math.max(best_decode, n_decode / math.max(t2 - t1, 1e-9)) end
    if bar then bar(r, reps) end
  end
  io_.stdout:write(("%s\n"):format(tostring(model)))
  io_.stdout:write(("kernel %s, %d threads, best of %d\n"):format(info.kernel, info.threads, reps))
  io_.stdout:write(("prefill: %8.1f tokens/s (%d tokens)\n"):format(best_prefill, n_prompt))
  io_.stdout:write(("decode:  %8.1f tokens/s (%d tokens)\n"):format(best_decode, n_decode))
  return 0
end

-- ---- the Hugging Face cache ----

function commands.pull(pos, _, io_)
  if #pos ~= 1 then usage_error("pull needs one REPO[:FILE|:TYPE]") end
  if not bitnet.hub.parse_ref(pos[1]) then usage_error(select(2, bitnet.hub.parse_ref(pos[1]))) end
  local path, info = bitnet.hub.pull(pos[1], { progress = download_bar(io_, "pull " .. pos[1]) })
  if not path then error({ msg = info }, 0) end
  io_.stderr:write(("%s: %d file%s, %s downloaded\n"):format(info.repo, #info.files, #info.files == 1 and "" or "s",
    human_bytes(info.downloaded)))
  io_.stdout:write(path, "\n")
  return 0
end

function commands.list(pos, _, io_)
  if #pos > 0 then usage_error("list takes no arguments") end
  local s = bitnet.hub.settings()
  local rows = bitnet.hub.list(s)
  if #rows == 0 then
    io_.stderr:write(("no models in %s\n"):format(s.cache))
    return 0
  end
  io_.stdout:write(("%-44s %-10s %-12s %5s %11s\n"):format("REPO", "REVISION", "COMMIT", "FILES", "SIZE"))
  for _, r in ipairs(rows) do
    local revs = {}
    for name in pairs(r.revisions) do revs[#revs + 1] = name end
    table.sort(revs)
    io_.stdout:write(("%-44s %-10s %-12s %5d %11s\n"):format(r.repo, #revs > 0 and table.concat(revs, ",") or "-",
      (r.commit or "-"):sub(1, 12), r.files, human_bytes(r.size)))
  end
  return 0
end

function commands.rm(pos, _, io_)
  if #pos ~= 1 then usage_error("rm needs one REPO") end
  local ok, err = bitnet.hub.rm(pos[1])
  if not ok then error({ msg = err }, 0) end
  io_.stderr:write(("removed %s\n"):format(pos[1]))
  return 0
end

-- ---- serve ----

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function commands.repl(pos, opts, io_)
  if #pos > 1 then usage_error("repl takes at most one MODEL") end
  local path = pos[1]
  if path and not file_exists(path) and not file_exists(path .. "/config.json") then -- (it loads on first use)
    error({ msg = "cannot open " .. path }, 0)
  end
  return require("bitnet.repl").main(path, opts, io_)
end

local function absolute(path)
  if path:sub(1, 1) == "/" then
    local n
    repeat path, n = path:gsub("/[^/]+/%.%./", "/", 1) until n == 0 -- .../bin/../lua -> .../lua
    return path
  end
  local pwd = os.getenv("PWD")
  if not pwd then
    local p = io.popen("pwd")
    pwd = p and p:read("*l")
    if p then p:close() end
  end
  return absolute((pwd or ".") .. "/" .. path:gsub("^%./", ""))
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The program `name` on PATH (or the path given), or nil.
local function find_program(name)
  if name:find("/", 1, true) then return file_exists(name) and name or nil end
  for dir in (os.getenv("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin"):gmatch("[^:]+") do
    if file_exists(dir .. "/" .. name) then return dir .. "/" .. name end
  end
  -- Debian's nginx is in /usr/sbin, often not on a user's PATH
  for _, dir in ipairs({ "/usr/sbin", "/usr/local/sbin", "/usr/local/openresty/nginx/sbin" }) do
    if file_exists(dir .. "/" .. name) then return dir .. "/" .. name end
  end
  return nil
end

-- Where the Lua modules, the LuaJIT build of bitnet.core and the nginx
-- templates are: from a checkout (lua/, build/luajit, openresty/) or a
-- luarocks tree (<tree>/share/lua/5.x; the LuaJIT build is the tree's Lua
-- 5.1 install, <tree>/lib/lua/5.1, made by `luarocks --lua-version 5.1
-- make`; the templates installed beside the module).
local function serve_paths()
  local cli_path = package.searchpath and package.searchpath("bitnet.cli", package.path)
  if not cli_path then error({ msg = "cannot find the bitnet Lua modules on package.path" }, 0) end
  local luadir = absolute(cli_path):match("^(.*)/bitnet/cli%.lua$")
  local root = luadir:match("^(.*)/[^/]+$") or (luadir .. "/..")
  local tree = luadir:match("^(.*)/share/lua/5%.%d$")
  local cpath, jit_luadir
  if rawget(_G, "jit") then
    local core_path = package.searchpath("bitnet.core", package.cpath)
    if core_path then cpath = absolute(core_path):match("^(.*)/bitnet/core%.so$") end
  end
  if not cpath and tree and file_exists(tree .. "/lib/lua/5.1/bitnet/core.so") then
    cpath = tree .. "/lib/lua/5.1"
    -- the Lua modules installed with that build, when they are there
    if file_exists(tree .. "/share/lua/5.1/bitnet/cli.lua") then jit_luadir = tree .. "/share/lua/5.1" end
  end
  if not cpath and file_exists(root .. "/build/luajit/bitnet/core.so") then cpath = root .. "/build/luajit" end
  if not cpath and tree then
    error({ msg = ("nginx's Lua is LuaJIT and needs the LuaJIT build of bitnet.core, which the luarocks tree %s "
      .. "does not hold (%s/lib/lua/5.1/bitnet/core.so): install it from a bitnet checkout with "
      .. "`luarocks --lua-version 5.1 --tree %s make bitnet-scm-1.rockspec`"):format(tree, tree, tree) }, 0)
  end
  if not cpath then
    error({ msg = "nginx's Lua is LuaJIT and needs the LuaJIT build of bitnet.core: run `make luajit` in the "
      .. "checkout (build/luajit/bitnet/core.so), or run `luajit bin/bitnet serve` with a LuaJIT install of bitnet" }, 0)
  end
  local templates
  for _, dir in ipairs({ root .. "/openresty", luadir .. "/bitnet/openresty" }) do
    if file_exists(dir .. "/nginx.conf") then templates = dir break end
  end
  if not templates then error({ msg = "cannot find the nginx configuration template (openresty/nginx.conf)" }, 0) end
  luadir = jit_luadir or luadir
  return {
    lua_path = luadir .. "/?.lua;" .. luadir .. "/?/init.lua", lua_cpath = cpath .. "/?.so", templates = templates,
  }
end

-- The load_module lines for nginx's Lua module, or a clear error naming the
-- missing package. OpenResty's nginx has it built in.
local function lua_modules(nginx, dir)
  local p = io.popen(shell_quote(nginx) .. " -V 2>&1")
  local version = p and p:read("*a") or ""
  if p then p:close() end
  if version:find("openresty", 1, true) or version:find("lua-nginx-module", 1, true) then return "" end
  local lines = {}
  for _, m in ipairs({
    { "ndk_http_module.so", "libnginx-mod-http-ndk" }, { "ngx_http_lua_module.so", "libnginx-mod-http-lua" },
  }) do
    local path = dir .. "/" .. m[1]
    if not file_exists(path) then
      error({ msg = ("nginx's Lua module is not installed: %s is missing (Debian: apt-get install %s lua-resty-core "
        .. "lua-cjson; or use OpenResty's nginx with --nginx)"):format(path, m[2]) }, 0)
    end
    lines[#lines + 1] = ("load_module %s;"):format(path)
  end
  return table.concat(lines, "\n")
end

-- The `user` line: nginx started by root runs its workers as nobody, who
-- must read the Lua modules, the LuaJIT build and the model; when nobody
-- cannot (a checkout under /root, say), the workers stay root, with a note.
local function worker_user(files, io_)
  local p = io.popen("id -u 2>/dev/null")
  local uid = p and p:read("*l")
  if p then p:close() end
  if uid ~= "0" or not find_program("runuser") then return "" end
  for _, f in ipairs(files) do
    if not succeeds("runuser -u nobody -- test -r " .. shell_quote(f) .. " 2>/dev/null") then
      io_.stderr:write(("bitnet: the workers run as root: user nobody cannot read %s\n"):format(f))
      return "user root;"
    end
  end
  return ""
end

local function lua_literal(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" then
    local items = {}
    for i, x in ipairs(v) do items[i] = lua_literal(x) end
    return "{ " .. table.concat(items, ", ") .. " }"
  end
  return tostring(v)
end

--- M.api_keys(opts, getenv, io_) -> list: the keys of --api-key, the lines
-- of --api-key-file and BITNET_API_KEY; raises a usage error for a key
-- with blanks or control characters, an error for an unreadable file.
function M.api_keys(opts, getenv, io_)
  local keys = {}
  for _, k in ipairs(opts.api_key or {}) do keys[#keys + 1] = k end
  if opts.api_key_file then
    local text = read_file(opts.api_key_file, io_)
    for line in (text .. "\n"):gmatch("(.-)\r?\n") do
      local k = line:match("^%s*(.-)%s*$")
      if k ~= "" then keys[#keys + 1] = k end
    end
  end
  local env = getenv("BITNET_API_KEY")
  if env and env ~= "" then keys[#keys + 1] = env end
  for _, k in ipairs(keys) do
    if k == "" or k:find("[%c%s]") then usage_error("an API key must not be empty or hold blanks or control characters") end
  end
  return keys
end

--- M.is_loopback(host) -> boolean: whether an address only this machine reaches.
function M.is_loopback(host)
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Fills the @NAME@ fields of a template outside its comment lines; every
-- field must be given.
local function fill(template, fields)
  local out = {}
  for line in (template .. "\n"):gmatch("(.-)\n") do
    if not line:match("^%s*#") then
      line = line:gsub("@([%u_]+)@", function(name)
        local v = fields[name]
        if v == nil then error({ msg = "the nginx template has an unknown field @" .. name .. "@" }, 0) end
        return v
      end)
    end
    out[#out + 1] = line
  end
  return table.concat(out, "\n")
end

function commands.serve(pos, opts, io_)
  if #pos > 1 then usage_error("serve takes at most one MODEL") end
  local upstreams = opts.upstream
  if upstreams and #pos > 0 then usage_error("--upstream runs a front nginx: it takes no MODEL") end
  local host, port = opts.host or "127.0.0.1", opts.port or 8080
  if port < 1 or port > 65535 then usage_error("--port must be within 1..65535") end
  local workers = opts.workers or 1
  if workers < 1 or workers > 64 then usage_error("--workers must be within 1..64") end
  for _, k in ipairs({ "slots", "queue" }) do
    if opts[k] and opts[k] < (k == "slots" and 1 or 0) then usage_error("--" .. k .. " is too small") end
  end
  if opts.queue_timeout and opts.queue_timeout < 0 then usage_error("--queue-timeout must be >= 0") end
  if host:find("[%s;{}]") then usage_error("--host must be an address") end
  local keys = M.api_keys(opts, os.getenv, io_)
  if #keys == 0 and not upstreams and not M.is_loopback(host) and not opts.no_auth then
    error({ msg = ("refusing to listen on %s without an API key: anyone on the network could use the model. "
      .. "Give --api-key KEY (or --api-key-file FILE, or BITNET_API_KEY), or --no-auth to serve without one"):format(host) }, 0)
  end
  if opts.pooling and opts.pooling ~= "mean" and opts.pooling ~= "last" then usage_error("--pooling must be mean or last") end

  local nginx = find_program(opts.nginx or "nginx")
  if not nginx then
    error({ msg = ("%s is not installed (Debian: apt-get install nginx libnginx-mod-http-lua lua-resty-core "
      .. "lua-cjson)"):format(opts.nginx or "nginx") }, 0)
  end
  local modules = lua_modules(nginx, opts.modules or "/usr/lib/nginx/modules")
  local paths = serve_paths()
  local model = pos[1] and absolute(model_path(pos[1], io_))
  if model and not file_exists(model) and not file_exists(model .. "/config.json") then
    error({ msg = "cannot open " .. model }, 0)
  end

  local listen = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port
  local fields = {
    MODULES = modules, WORKERS = tostring(workers), LISTEN = listen, LUA_PATH = paths.lua_path,
    LUA_CPATH = paths.lua_cpath,
  }
  local readable = { paths.lua_path:match("^(.-)/%?%.lua") .. "/bitnet/server.lua" }
  if not upstreams then
    readable[2] = paths.lua_cpath:match("^(.-)/%?%.so") .. "/bitnet/core.so"
    readable[3] = model or bitnet.default_model()
  end
  fields.USER = worker_user(readable, io_)
  local template_name = upstreams and "front.conf" or "nginx.conf"
  if upstreams then
    local lines = {}
    for _, u in ipairs(upstreams) do
      if u:find("[%s;{}]") then usage_error("--upstream must be an address:port") end
      lines[#lines + 1] = "    server " .. u .. ";"
    end
    fields.UPSTREAMS = table.concat(lines, "\n")
  else
    local settings = {}
    local function put(k, v) if v ~= nil then settings[#settings + 1] = k .. " = " .. lua_literal(v) end end
    put("model", model)
    put("name", opts.name)
    put("threads", opts.threads)
    put("n_ctx", opts.n_ctx)
    put("slots", opts.slots)
    put("queue", opts.queue)
    put("queue_timeout", opts.queue_timeout)
    put("max_tokens", opts.max_tokens)
    put("instance", opts.instance or listen)
    if #keys > 0 then put("api_keys", keys) end
    if opts.metrics then put("metrics", true) end
    put("pooling", opts.pooling)
    fields.SETTINGS = "{ " .. table.concat(settings, ", ") .. " }"
  end
  local conf = fill(read_file(paths.templates .. "/" .. template_name, io_), fields)

  local prefix = opts.prefix
  if not prefix then
    prefix = os.tmpname()
    os.remove(prefix)
  end
  prefix = absolute(prefix)
  if not succeeds("mkdir -p " .. shell_quote(prefix .. "/conf") .. " " .. shell_quote(prefix .. "/logs") .. " "
    .. shell_quote(prefix .. "/tmp")) then error({ msg = "cannot make the directories of " .. prefix }, 0) end
  local conf_path = prefix .. "/conf/nginx.conf"
  if #keys > 0 then -- the keys are in it: for the owner's eyes only
    local touch = io.open(conf_path, "ab")
    if touch then touch:close() end
    succeeds("chmod 600 " .. shell_quote(conf_path))
  end
  local f, err = io.open(conf_path, "wb")
  if not f then error({ msg = err }, 0) end
  f:write(conf)
  f:close()

  local argv = { nginx, "-p", prefix .. "/", "-c", "conf/nginx.conf", "-e", "stderr", "-g", "daemon off;" }
  if opts.config_only then
    local quoted = {}
    for i, a in ipairs(argv) do quoted[i] = a:find("[^%w/._:-]") and shell_quote(a) or a end
    io_.stdout:write(table.concat(quoted, " ") .. "\n")
    return 0
  end
  io_.stderr:write(("bitnet: %s on http://%s/ (nginx prefix %s); Ctrl-C stops it\n"):format(
    upstreams and "balancing " .. table.concat(upstreams, ", ") or "serving " .. (model or "the shipped model"),
    listen, prefix))
  io_.stderr:flush()
  local _, exec_err = bitnet.core.exec(nginx, argv) -- nginx itself then gets Ctrl-C and SIGTERM
  error({ msg = exec_err }, 0)
end

--- cli.main(args [, streams]) -> exit status (see the module header).
--- M.run_script(args, io_) -> status: `bitnet lua FILE [ARGS...]` runs FILE
-- with `arg` set as lua would (arg[0] = FILE), on the package paths the
-- command itself found bitnet on: the one way to run the examples, or any
-- script, from a checkout without setting LUA_PATH / LUA_CPATH.
function M.run_script(args, io_)
  local file = args[1]
  if not file then
    io_.stderr:write("usage: bitnet lua FILE [ARGS...]\n")
    return 2
  end
  local chunk, err = loadfile(file)
  if not chunk then
    io_.stderr:write("bitnet lua: ", err, "\n")
    return 1
  end
  local script_arg = { [0] = file }
  for i = 2, #args do script_arg[i - 1] = args[i] end
  local saved = rawget(_G, "arg")
  rawset(_G, "arg", script_arg)
  local ok, e = xpcall(chunk, debug.traceback, (unpack or table.unpack)(script_arg, 1, #script_arg))
  rawset(_G, "arg", saved)
  if not ok then
    io_.stderr:write("bitnet lua: ", tostring(e), "\n")
    return 1
  end
  return 0
end

function M.main(args, streams)
  streams = streams or {}
  local io_ = {
    stdin = streams.stdin or io.stdin, stdout = streams.stdout or io.stdout, stderr = streams.stderr or io.stderr,
  }
  if streams.stderr_is_tty ~= nil then io_.stderr_is_tty = streams.stderr_is_tty
  else io_.stderr_is_tty = is_tty(2) end
  local list = {}
  for i = 1, #(args or {}) do list[i] = args[i] end
  local command = table.remove(list, 1)
  if command == nil or command == "help" or command == "-h" or command == "--help" then
    local topic = command == "help" and list[1]
    if topic and HELP[topic] then io_.stdout:write(HELP[topic])
    elseif topic then
      io_.stderr:write(("bitnet: no command '%s'\n\n%s"):format(topic, USAGE))
      return 2
    else
      (command and io_.stdout or io_.stderr):write(USAGE)
      if not command then return 2 end
    end
    return 0
  end
  if command == "--version" or command == "version" then
    io_.stdout:write(("bitnet %s\n"):format(bitnet.version))
    return 0
  end
  if command == "lua" then return M.run_script(list, io_) end
  if not commands[command] then
    io_.stderr:write(("bitnet: unknown command '%s'\n\n%s"):format(command, USAGE))
    return 2
  end
  local ok, status = pcall(function()
    local pos, opts = parse(command, list)
    if opts.help then
      io_.stdout:write(HELP[command])
      return 0
    end
    return commands[command](pos, opts, io_)
  end)
  if ok then return status end
  if getmetatable(status) == UsageError then
    io_.stderr:write(("bitnet %s: %s (bitnet %s --help lists the options)\n"):format(command, status.msg, command))
    return 2
  end
  io_.stderr:write(("bitnet: %s\n"):format(type(status) == "table" and tostring(status.msg) or tostring(status)))
  return 1
end

return M
