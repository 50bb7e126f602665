-- Models by name from the Hugging Face Hub (lua/bitnet/hub.lua, csrc/net):
--  * references, settings and the choice of files, in pure Lua;
--  * a stand-in Hub on 127.0.0.1 (tests/hub/standin_hub.py) serving the
--    shipped model as a GGUF repo and as a Hugging Face directory repo, a
--    gated repo and one whose bytes do not match their SHA-256; the
--    stand-in is itself checked with the official @huggingface/hub client
--    (npm, installed into tests/hub/ on first run), whose downloads we read
--    and whose cache scanner reads ours;
--  * the faults: a connection cut mid-file (resumed with Range), a 500,
--    the redirect to the storage port, a wrong SHA-256, 401 and 404, a
--    stalled server, two pulls at once, offline runs.
local bitnet = require("bitnet")
local hub = require("bitnet.hub")
local cli = require("bitnet.cli")
local json = require("dkjson")
local shell = require("support.shell")
local checks = require("support.checks")
local read, write, sink = checks.read_file_if, checks.write_file, checks.sink -- read: nil when absent

local ROOT = shell.read("pwd"):gsub("%s+$", "")
local MODEL_DIR = ROOT .. "/models/kjv-bitnet-6m"
local GGUF = MODEL_DIR .. "/kjv-bitnet-6m.gguf"
local INTERP = jit and "luajit" or "lua5.4"
-- the build the specs run, for commands started in another directory
local BUILD = os.getenv("BITNET_BUILD") or (jit and "build/luajit" or "build/lua5.4")
if BUILD:sub(1, 1) ~= "/" then BUILD = ROOT .. "/" .. BUILD end
local PROMPT = "And it came to pass"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  shell.run("mkdir -p " .. d)
  return d
end


local function sha256sum(path) return shell.read("sha256sum " .. path):match("^(%x+)") end

-- Runs a shell command line that starts bitnet (so keeping LD_PRELOAD, which
-- the ASan build needs) and returns its output.
local function bitnet_sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local function exists(path) return shell.read("test -e " .. path .. " && echo y || echo n"):match("y") ~= nil end


describe("Hub references and file choice", function()
  it("parses REPO, REPO:FILE, REPO:TYPE and REPO@REVISION", function()
    assert.are.same({ repo = "microsoft/bitnet-b1.58-2B-4T-gguf", revision = "main" },
      hub.parse_ref("microsoft/bitnet-b1.58-2B-4T-gguf"))
    assert.are.same({ repo = "tiiuae/Falcon3-1B-Instruct-1.58bit", revision = "main", file = "sub/model.gguf" },
      hub.parse_ref("tiiuae/Falcon3-1B-Instruct-1.58bit:sub/model.gguf"))
    assert.are.same({ repo = "a/b", revision = "main", type = "i2_s" }, hub.parse_ref("a/b:I2_S"))
    assert.are.same({ repo = "a/b", revision = "v1.0", type = "tq2_0" }, hub.parse_ref("a/b@v1.0:tq2_0"))
    for _, bad in ipairs({ "model.gguf", "a/b/c", "/abs/path", "./x/y", "a/..", "a/b:", "a/b:../x", "a b/c", "" }) do
      local ref, err = hub.parse_ref(bad)
      assert.is_nil(ref, bad)
      assert.is_string(err)
    end
  end)

  it("reads the environment as huggingface_hub does", function()
    local function env(t) return function(k) return t[k] end end
    local s = hub.settings(env({ HOME = "/home/u" }))
    assert.are.equal("https://huggingface.co", s.endpoint)
    assert.are.equal("/home/u/.cache/huggingface/hub", s.cache)
    assert.is_false(s.offline)
    assert.is_nil(s.token)
    s = hub.settings(env({ HOME = "/home/u", XDG_CACHE_HOME = "/x", HF_ENDPOINT = "http://h:1/", HF_HUB_OFFLINE = "1" }))
    assert.are.equal("/x/huggingface/hub", s.cache)
    assert.are.equal("http://h:1", s.endpoint)
    assert.is_true(s.offline)
    local home = tmpdir()
    write(home .. "/token", "hf_fromfile\n")
    s = hub.settings(env({ HF_HOME = home }))
    assert.are.equal(home .. "/hub", s.cache)
    assert.are.equal("hf_fromfile", s.token)
    s = hub.settings(env({ HF_HOME = home, HF_TOKEN = "hf_env", HF_HUB_CACHE = "/c", HF_HUB_OFFLINE = "true" }))
    assert.are.equal("hf_env", s.token)
    assert.are.equal("/c", s.cache)
    assert.is_true(s.offline)
    assert.is_false(hub.settings(env({ HF_HUB_OFFLINE = "0" })).offline)
    shell.run("rm -rf " .. home)
  end)

  -- file lists as the real repos have them
  local function files(list)
    local out = {}
    for name, size in pairs(list) do out[#out + 1] = { path = name, size = size } end
    return out
  end
  local function pick(list, ref)
    local want, main = hub.choose(files(list), assert(hub.parse_ref(ref)))
    return want, main
  end

  it("takes I2_S, then TQ2_0, then TQ1_0, then the smallest GGUF", function()
    local gguf2b = { ["ggml-model-i2_s.gguf"] = 1187801280, ["README.md"] = 5000, [".gitattributes"] = 1600 }
    assert.are.same({ { "ggml-model-i2_s.gguf" }, "ggml-model-i2_s.gguf" }, { pick(gguf2b, "microsoft/bitnet-b1.58-2B-4T-gguf") })
    local several = { ["m-TQ1_0.gguf"] = 10, ["m-TQ2_0.gguf"] = 20, ["m-F16.gguf"] = 5 }
    assert.are.equal("m-TQ2_0.gguf", select(2, pick(several, "a/b")))
    assert.are.equal("m-TQ1_0.gguf", select(2, pick(several, "a/b:tq1_0")))
    assert.are.equal("m-F16.gguf", select(2, pick(several, "a/b:F16")))
    assert.are.equal("m-f16.gguf", select(2, pick({ ["m-f16.gguf"] = 50, ["m-f32.gguf"] = 100 }, "a/b")))
    -- a type inside a longer word is not that type
    local want, err = pick({ ["m-tq1_00.gguf"] = 1 }, "a/b:tq1_0")
    assert.is_nil(want)
    assert.matches("no GGUF file of type tq1_0 %(its GGUF files: m%-tq1_00%.gguf%)", err)
  end)

  it("lists the choices when a repo is ambiguous or has no such file", function()
    local want, err = pick({ ["a-i2_s.gguf"] = 1, ["b-i2_s.gguf"] = 2 }, "o/r")
    assert.is_nil(want)
    assert.are.equal("o/r has 2 GGUF files of type i2_s: a-i2_s.gguf, b-i2_s.gguf; name one as o/r:FILE", err)
    want, err = pick({ ["x.gguf"] = 1 }, "o/r:y.gguf")
    assert.is_nil(want)
    assert.are.equal("o/r has no file y.gguf", err)
    want, err = pick({ ["README.md"] = 1, ["x.bin"] = 2 }, "o/r")
    assert.is_nil(want)
    assert.matches("neither a GGUF file nor a Hugging Face model.*README%.md, x%.bin", err)
  end)

  it("pulls a Hugging Face directory repo as config, tokenizer and safetensors only", function()
    local repo = {
      ["config.json"] = 1, ["generation_config.json"] = 1, ["model.safetensors"] = 1, ["tokenizer.json"] = 1,
      ["tokenizer_config.json"] = 1, ["special_tokens_map.json"] = 1, ["README.md"] = 1, ["LICENSE"] = 1,
      [".gitattributes"] = 1, ["pytorch_model.bin"] = 1, ["model.onnx"] = 1, ["logo.png"] = 1, ["data/x.pt"] = 1,
    }
    local want, main = pick(repo, "microsoft/bitnet-b1.58-2B-4T")
    assert.is_nil(main)
    assert.are.same({ "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
      "tokenizer.json", "tokenizer_config.json" }, want)
    want = pick({ ["config.json"] = 1, ["model.safetensors.index.json"] = 1, ["model-00001-of-00002.safetensors"] = 1,
      ["model-00002-of-00002.safetensors"] = 1 }, "a/b")
    assert.are.same({ "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
      "model.safetensors.index.json" }, want)
  end)

  it("the C primitives raise on misuse and return nil, message on failure", function()
    local core = bitnet.core
    assert.has_error(function() core.fetch({}) end, "bitnet.core.fetch: options 'url' and 'path' are required")
    assert.has_error(function() core.fetch({ url = "http://127.0.0.1:9/", path = "/tmp/x", sha256 = "ab" }) end,
      "bitnet.core.fetch: option 'sha256' must be 64 hex digits")
    assert.has_error(function() core.http({ url = "http://127.0.0.1:9/", method = "PUT" }) end,
      "bitnet.core.http: option 'method' must be GET, HEAD or POST")
    assert.has_error(function() core.http({ url = "x", bogus = 1 }) end, "bitnet.core.http: unknown option 'bogus'")
    local r, err = core.http({ url = "http://127.0.0.1:9/nothing", connect_timeout = 2 })
    assert.is_nil(r)
    assert.matches("^http://127%.0%.0%.1:9/nothing: Couldn't connect", err)
    assert.are.same({ nil, "not valid JSON" }, { core.json_decode("{ nope") })
    assert.are.same({ a = { 1, false, "x" }, b = true }, core.json_decode('{"a": [1, null, "x"], "b": true, "c": null}'))
    assert.is_nil((core.json_decode(("["):rep(100) .. ("]"):rep(100))))
  end)

  it("bitnet.pull and bitnet.load raise on misuse", function()
    assert.has_error(function() bitnet.pull(1) end, "bitnet.pull: argument 'ref' must be a string, got number")
    assert.has_error(function() bitnet.pull("a/b", { bogus = 1 }) end, "bitnet.pull: unknown option 'bogus'")
    assert.has_error(function() bitnet.pull("a/b", { progress = 1 }) end, "bitnet.pull: option 'progress' must be a function")
  end)
end)

describe("the stand-in Hub", function()
  local dir, pid, base, storage_port, S
  local REPOS = {
    gguf = "kjv/kjv-bitnet-6m-gguf", hf = "kjv/kjv-bitnet-6m", gated = "kjv/gated", corrupt = "kjv/corrupt",
  }
  local TOKEN = "hf_standin_token"

  local function control(path, body)
    return shell.read(("curl -s -X %s %s %s/_control/%s"):format(body and "POST" or "GET",
      body and ("-H 'Content-Type: application/json' --data '" .. body .. "'") or "", base, path))
  end
  local function log() return json.decode(control("log")) end
  local function faults(list) control("faults", json.encode(list)) end

  -- settings for a fresh cache (or the one given)
  local function settings(cache, extra)
    local s = { endpoint = base, cache = cache or tmpdir(), offline = false, timeout = 5, retries = 3, backoff = 0.1 }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end

  local function start()
    local ports = dir .. "/ports.json"
    pid = shell.read(("unset LD_PRELOAD; python3 tests/hub/standin_hub.py %s/config.json > %s 2> %s/hub.log & echo $!")
      :format(dir, ports, dir)):match("%d+")
    for _ = 1, 100 do
      local p = read(ports)
      if p and p:find("}") then
        local v = json.decode(p)
        base, storage_port = "http://127.0.0.1:" .. v.hub, v.storage
        return
      end
      shell.run("sleep 0.1")
    end
    error("the stand-in Hub did not start: " .. tostring(read(dir .. "/hub.log")))
  end

  local function stop()
    if pid then shell.run("kill " .. pid .. " 2>/dev/null; true") end
    pid = nil
  end

  setup(function()
    dir = tmpdir()
    -- files a Hugging Face directory repo has that a pull must leave alone
    write(dir .. "/pytorch_model.bin", ("\0"):rep(1000))
    write(dir .. "/logo.png", "\137PNG\r\n")
    write(dir .. "/model.onnx", "onnx")
    write(dir .. "/config.json", json.encode({
      token = TOKEN,
      repos = {
        [REPOS.gguf] = { files = { ["kjv-bitnet-6m.gguf"] = GGUF, ["README.md"] = MODEL_DIR .. "/../README.md" } },
        [REPOS.hf] = { files = {
          ["config.json"] = MODEL_DIR .. "/hf/config.json", ["model.safetensors"] = MODEL_DIR .. "/hf/model.safetensors",
          ["tokenizer.json"] = MODEL_DIR .. "/hf/tokenizer.json",
          ["tokenizer_config.json"] = MODEL_DIR .. "/hf/tokenizer_config.json",
          ["pytorch_model.bin"] = dir .. "/pytorch_model.bin", ["logo.png"] = dir .. "/logo.png",
          ["model.onnx"] = dir .. "/model.onnx", ["README.md"] = MODEL_DIR .. "/../README.md",
        } },
        [REPOS.gated] = { gated = true, files = { ["kjv-bitnet-6m.gguf"] = GGUF } },
        [REPOS.corrupt] = { files = { ["kjv-bitnet-6m.gguf"] = GGUF }, corrupt = { "kjv-bitnet-6m.gguf" } },
        ["kjv/escape"] = { files = { ["../../../escape.gguf"] = GGUF } },
      },
    }))
    start()
  end)

  teardown(function()
    stop()
    shell.run("rm -rf " .. dir)
  end)

  before_each(function() if pid then control("reset", "{}") end end)

  describe("checked with the official client (@huggingface/hub)", function()
    local node_ok
    setup(function()
      node_ok = os.execute("unset LD_PRELOAD; command -v node >/dev/null && command -v npm >/dev/null")
      if node_ok and not exists("tests/hub/node_modules/@huggingface/hub") then
        shell.run("unset LD_PRELOAD; npm install --prefix tests/hub --no-audit --no-fund --silent >/dev/null 2>&1")
      end
    end)

    local function node(args, env)
      -- (a failing client prints its error: the caller checks the output)
      return shell.read(("unset LD_PRELOAD; %s node tests/hub/client.mjs %s 2>&1 || echo \"exit=$?\""):format(env or "", args))
    end

    it("downloads from it into the cache layout that bitnet.load then reads without the network", function()
      assert.truthy(node_ok, "node and npm are needed (tools/setup-debian.sh installs them)")
      local cache = tmpdir()
      local snap = node(("download %s %s %s"):format(base, cache, REPOS.gguf)):gsub("%s+$", "")
      assert.matches("/models%-%-kjv%-%-kjv%-bitnet%-6m%-gguf/snapshots/%x+$", snap)
      node(("download %s %s %s"):format(base, cache, REPOS.hf))
      -- what the official client wrote, read by us offline
      local s = settings(cache, { offline = true, endpoint = "http://127.0.0.1:9" })
      local path = assert(hub.resolve(REPOS.gguf, s))
      assert.are.equal(sha256sum(GGUF), sha256sum(path))
      local hf = assert(hub.resolve(REPOS.hf, s))
      assert.are.equal(read(MODEL_DIR .. "/hf/config.json"), read(hf .. "/config.json"))
      -- the gated repo answers the client as the Hub does: refused, then served with the token
      assert.matches("restricted", node(("download %s %s %s"):format(base, cache, REPOS.gated)))
      assert.matches("/snapshots/%x+", node(("download %s %s %s"):format(base, cache, REPOS.gated), "HF_TOKEN=" .. TOKEN))
      shell.run("rm -rf " .. cache)
    end)

    it("finds in our cache the same repos, commits, refs, files and blobs as in its own", function()
      local theirs, ours = tmpdir(), tmpdir()
      node(("download %s %s %s"):format(base, theirs, REPOS.gguf))
      node(("download %s %s %s"):format(base, theirs, REPOS.hf))
      assert(hub.pull(REPOS.gguf, { settings = settings(ours) }))
      assert(hub.pull(REPOS.hf, { settings = settings(ours) }))
      local a = json.decode(node("scan " .. theirs))
      local b = json.decode(node("scan " .. ours))
      assert.are.same({}, b.warnings)
      -- the official client took every file of the HF repo; we take the model's
      local keep = { ["config.json"] = true, ["model.safetensors"] = true, ["tokenizer.json"] = true,
        ["tokenizer_config.json"] = true, ["kjv-bitnet-6m.gguf"] = true }
      local function shape(scan)
        local out = {}
        for _, r in ipairs(scan.repos) do
          for _, v in ipairs(r.revisions) do
            local fs = {}
            for _, f in ipairs(v.files) do
              if keep[f.name] then fs[#fs + 1] = f.name .. " " .. f.size .. " " .. f.blob end
            end
            table.sort(fs)
            out[r.id] = { commit = v.commit, refs = v.refs, files = fs }
          end
        end
        return out
      end
      assert.are.same(shape(a), shape(b))
      assert.are.equal(2, #b.repos)
      shell.run("rm -rf " .. theirs .. " " .. ours)
    end)
  end)

  describe("bitnet pull", function()
    it("fetches a GGUF repo: the blob by its SHA-256, a relative link, refs/main, through the storage port", function()
      local s = settings()
      local seen = {}
      local path, info = hub.pull(REPOS.gguf, { settings = s, progress = function(done, total)
        seen[#seen + 1] = { done, total }
      end })
      assert.is_string(path, info)
      local sha = sha256sum(GGUF)
      local rdir = s.cache .. "/models--kjv--kjv-bitnet-6m-gguf"
      assert.are.equal(rdir .. "/snapshots/" .. info.commit .. "/kjv-bitnet-6m.gguf", path)
      assert.are.equal("../../blobs/" .. sha, bitnet.core.fs_readlink(path))
      assert.are.equal(sha, sha256sum(rdir .. "/blobs/" .. sha))
      assert.are.equal(info.commit, read(rdir .. "/refs/main"))
      assert.is_false(exists(rdir .. "/blobs/" .. sha .. ".incomplete"))
      assert.is_true(exists(s.cache .. "/.locks/models--kjv--kjv-bitnet-6m-gguf/" .. sha .. ".lock"))
      -- only the model: the README stays on the Hub
      assert.are.same({ "kjv-bitnet-6m.gguf" }, info.files)
      -- progress: rising to the file's size
      local size = #read(GGUF)
      assert.are.same({ size, size }, seen[#seen])
      for i = 2, #seen do assert.is_true(seen[i][1] >= seen[i - 1][1]) end
      -- the protocol: file list, HEAD on resolve at the commit (a 302), the bytes from the other port
      local l = log()
      assert.matches("^/api/models/kjv/kjv%-bitnet%-6m%-gguf/revision/main%?blobs=true$", l[1].path)
      assert.are.same({ "hub", "HEAD", "/kjv/kjv-bitnet-6m-gguf/resolve/" .. info.commit .. "/kjv-bitnet-6m.gguf" },
        { l[2].server, l[2].method, l[2].path })
      assert.are.same({ "storage", "GET" }, { l[3].server, l[3].method })
      assert.matches("^/lfs/" .. sha, l[3].path)
      assert.are.equal(3, #l)
      -- again: nothing is fetched
      control("reset", "{}")
      local again, info2 = hub.pull(REPOS.gguf, { settings = s })
      assert.are.equal(path, again)
      assert.are.equal(0, info2.downloaded)
      assert.are.equal(1, #log())
      shell.run("rm -rf " .. s.cache)
    end)

    it("fetches a Hugging Face directory repo without .bin, .onnx, images or README", function()
      local s = settings()
      local path, info = hub.pull(REPOS.hf, { settings = s })
      assert.is_string(path, info)
      local names = {}
      for n in shell.read("ls " .. path):gmatch("%S+") do names[#names + 1] = n end
      assert.are.same({ "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" }, names)
      for _, f in ipairs({ "config.json", "tokenizer.json" }) do
        assert.are.equal(read(MODEL_DIR .. "/hf/" .. f), read(path .. "/" .. f))
      end
      assert.are.equal(sha256sum(MODEL_DIR .. "/hf/model.safetensors"), sha256sum(path .. "/model.safetensors"))
      shell.run("rm -rf " .. s.cache)
    end)

    it("sends the token to the Hub for a gated repo, never to the storage host", function()
      local s = settings()
      local path, err = hub.pull(REPOS.gated, { settings = s })
      assert.is_nil(path)
      assert.matches("kjv/gated is gated: .*set HF_TOKEN", err)
      s.token = TOKEN
      control("reset", "{}")
      path, err = hub.pull(REPOS.gated, { settings = s })
      assert.is_string(path, err)
      for _, e in ipairs(log()) do
        assert.are.equal(e.server == "hub", e.auth, e.server .. " " .. e.path)
      end
      shell.run("rm -rf " .. s.cache)
    end)

    it("names the repo or file on a 401 and a 404", function()
      local s = settings()
      local _, err = hub.pull("kjv/nothing", { settings = s })
      assert.are.equal("kjv/nothing: no such repo on " .. base .. ", or it is private: set HF_TOKEN (HTTP 401)", err)
      s.token = TOKEN
      _, err = hub.pull("kjv/nothing", { settings = s })
      assert.are.equal("kjv/nothing: no such repo on " .. base .. " (HTTP 404)", err)
      _, err = hub.pull(REPOS.gguf .. ":other.gguf", { settings = s })
      assert.are.equal(REPOS.gguf .. " has no file other.gguf", err)
      _, err = hub.pull(REPOS.gguf .. "@v9", { settings = s })
      assert.are.equal(REPOS.gguf .. " has no revision v9 (HTTP 404)", err)
      shell.run("rm -rf " .. s.cache)
    end)

    it("refuses bytes that do not match the stated SHA-256, leaving nothing in the cache", function()
      local s = settings()
      local path, err = hub.pull(REPOS.corrupt, { settings = s })
      assert.is_nil(path)
      local sha = sha256sum(GGUF)
      assert.matches("SHA%-256 mismatch: the Hub states " .. sha .. ", the bytes received hash to %x+", err)
      local got = err:match("hash to (%x+)")
      assert.are_not.equal(sha, got)
      local rdir = s.cache .. "/models--kjv--corrupt"
      assert.are.equal("", shell.read("find " .. rdir .. "/snapshots " .. rdir .. "/blobs -type f -o -type l 2>/dev/null; true"))
      shell.run("rm -rf " .. s.cache)
    end)

    it("refuses a file name that would leave the snapshot folder", function()
      local s = settings()
      local path, err = hub.pull("kjv/escape", { settings = s })
      assert.is_nil(path)
      assert.are.equal('kjv/escape: the Hub lists an unsafe file name "../../../escape.gguf"', err)
      assert.are.equal("", shell.read("find " .. s.cache .. " -name '*escape*'"))
      shell.run("rm -rf " .. s.cache)
    end)

    it("resumes a file cut mid-transfer with a Range request", function()
      local s = settings()
      faults({ { kind = "cut", match = "/lfs/", at = 1000000, times = 1 } })
      local path, err = hub.pull(REPOS.gguf, { settings = s })
      assert.is_string(path, err)
      assert.are.equal(sha256sum(GGUF), sha256sum(path))
      local gets = {}
      for _, e in ipairs(log()) do
        if e.server == "storage" then gets[#gets + 1] = e.range or "none" end
      end
      assert.are.same({ "none", "bytes=1000000-" }, gets)
      shell.run("rm -rf " .. s.cache)
    end)

    it("keeps a partial file when every retry fails, and the next pull resumes it", function()
      local s = settings(nil, { retries = 1 })
      faults({ { kind = "cut", match = "/lfs/", at = 700000, times = 2 } })
      local path, err = hub.pull(REPOS.gguf, { settings = s })
      assert.is_nil(path)
      assert.matches("after 2 attempts", err)
      local partial = s.cache .. "/models--kjv--kjv-bitnet-6m-gguf/blobs/" .. sha256sum(GGUF) .. ".incomplete"
      assert.are.equal(700000, #read(partial))
      control("reset", "{}")
      path, err = hub.pull(REPOS.gguf, { settings = s })
      assert.is_string(path, err)
      assert.are.equal(sha256sum(GGUF), sha256sum(path))
      local l = log()
      assert.are.equal("bytes=700000-", l[#l].range)
      assert.is_false(exists(partial))
      shell.run("rm -rf " .. s.cache)
    end)

    it("Ctrl-C stops a pull at once, keeping the partial file the next pull resumes", function()
      local cache = tmpdir()
      faults({ { kind = "stall", match = "/lfs/", at = 600000, seconds = 60, times = 1 } })
      local partial = cache .. "/models--kjv--kjv-bitnet-6m-gguf/blobs/" .. sha256sum(GGUF) .. ".incomplete"
      local pid_file = cache .. "/pid"
      bitnet_sh(("HF_ENDPOINT=%s HF_HUB_CACHE=%s HF_HUB_DOWNLOAD_TIMEOUT=60 %s bin/bitnet pull %s > %s/out 2>&1 & echo $! > %s")
        :format(base, cache, INTERP, REPOS.gguf, cache, pid_file))
      local pid_ = read(pid_file):match("%d+")
      for _ = 1, 100 do
        if (#(read(partial) or "")) == 600000 then break end
        shell.run("sleep 0.1")
      end
      assert.are.equal(600000, #read(partial))
      local t0 = bitnet.core.clock()
      shell.run("kill -INT " .. pid_ .. "; while kill -0 " .. pid_ .. " 2>/dev/null; do sleep 0.05; done")
      assert.is_true(bitnet.core.clock() - t0 < 5) -- not the 60 s the server stalls
      assert.matches("interrupted", read(cache .. "/out"))
      assert.are.equal(600000, #read(partial))
      control("reset", "{}")
      local path, err = hub.pull(REPOS.gguf, { settings = settings(cache) })
      assert.is_string(path, err)
      assert.are.equal(sha256sum(GGUF), sha256sum(path))
      assert.are.equal("bytes=600000-", log()[3].range)
      shell.run("rm -rf " .. cache)
    end)

    it("retries after a 500", function()
      local s = settings()
      faults({ { kind = "500", match = "/lfs/", times = 1 } })
      local path, err = hub.pull(REPOS.gguf, { settings = s })
      assert.is_string(path, err)
      local n = 0
      for _, e in ipairs(log()) do
        if e.server == "storage" then n = n + 1 end
      end
      assert.are.equal(2, n)
      shell.run("rm -rf " .. s.cache)
    end)

    it("gives up on a stalled server with a timeout naming it", function()
      local s = settings(nil, { timeout = 1, retries = 0 })
      faults({ { kind = "stall", match = "/lfs/", seconds = 30, times = 1 } })
      local t0 = bitnet.core.clock()
      local path, err = hub.pull(REPOS.gguf, { settings = s })
      assert.is_nil(path)
      assert.matches("127%.0%.0%.1:" .. storage_port .. "/lfs/.*timed out: no data for 1 s", err)
      assert.is_true(bitnet.core.clock() - t0 < 10)
      shell.run("rm -rf " .. s.cache)
    end)

    it("two pulls of the same model at once: one download, both succeed", function()
      local cache = tmpdir()
      local env = ("HF_ENDPOINT=%s HF_HUB_CACHE=%s"):format(base, cache)
      local cmd = ("%s %s bin/bitnet pull %s > %s/out.%%d 2>&1; echo $? > %s/rc.%%d"):format(env, INTERP, REPOS.gguf,
        cache, cache)
      bitnet_sh("(" .. cmd:format(1, 1) .. ") & (" .. cmd:format(2, 2) .. ") & wait")
      assert.are.equal("0\n", read(cache .. "/rc.1"), read(cache .. "/out.1"))
      assert.are.equal("0\n", read(cache .. "/rc.2"), read(cache .. "/out.2"))
      local n = 0
      for _, e in ipairs(log()) do
        if e.server == "storage" then n = n + 1 end
      end
      assert.are.equal(1, n)
      local path = read(cache .. "/out.1"):match("(/%S+%.gguf)")
      assert.are.equal(sha256sum(GGUF), sha256sum(path))
      shell.run("rm -rf " .. cache)
    end)
  end)

  describe("the commands", function()
    local cache
    local real_settings = hub.settings
    before_each(function()
      hub.settings = function() return settings(cache) end
    end)
    after_each(function() hub.settings = real_settings end)
    setup(function() cache = tmpdir() end)
    teardown(function() shell.run("rm -rf " .. cache) end)

    local function run(args)
      local out, err = sink(), sink()
      local status = cli.main(args, { stdout = out, stderr = err, stderr_is_tty = false })
      return status, out.text(), err.text()
    end

    it("pull prints the path; list shows the repos; rm deletes one", function()
      local status, out, err = run({ "pull", REPOS.gguf })
      assert.are.equal(0, status, err)
      assert.matches("/snapshots/%x+/kjv%-bitnet%-6m%.gguf\n$", out)
      assert.are.equal(REPOS.gguf .. ": 1 file, 3.3 MiB downloaded\n", err)
      assert.are.equal(0, (run({ "pull", REPOS.hf })))
      status, out = run({ "list" })
      assert.are.equal(0, status)
      assert.matches("\nkjv/kjv%-bitnet%-6m%s+main%s+%x+%s+4%s+22%.2 MiB\n", out)
      assert.matches("\nkjv/kjv%-bitnet%-6m%-gguf%s+main%s+%x+%s+1%s+3%.3 MiB\n", out)
      assert.are.same({ 0, "", "removed kjv/kjv-bitnet-6m\n" }, { run({ "rm", REPOS.hf }) })
      status, _, err = run({ "rm", REPOS.hf })
      assert.are.equal(1, status)
      assert.are.equal("bitnet: kjv/kjv-bitnet-6m is not in the cache (" .. cache .. ")\n", err)
      assert.are.equal(2, (run({ "pull", "not-a-ref" })))
    end)

    it("draws bytes, rate and time left on a terminal", function()
      local out, err = sink(), sink()
      local status = cli.main({ "pull", REPOS.hf }, { stdout = out, stderr = err, stderr_is_tty = true })
      assert.are.equal(0, status, err.text())
      assert.matches("\rpull kjv/kjv%-bitnet%-6m [%d.]+ [KMG]?i?B / 22%.2 MiB  [%d.]+ [KMG]?i?B/s  ETA %d+:%d%d", err.text())
      assert.matches("\rpull kjv/kjv%-bitnet%-6m 22%.2 MiB / 22%.2 MiB  [^\n]*\n", err.text())
    end)

    it("run and info take a repo, pulling it first when missing", function()
      local status, out, err = run({ "info", REPOS.gated })
      assert.are.equal(1, status)
      assert.matches("gated.*HF_TOKEN", err)
      status, out, err = run({ "run", REPOS.hf, "-p", PROMPT, "-n", "12", "--temp", "0" })
      assert.are.equal(0, status, err)
      local _, local_out = run({ "run", MODEL_DIR .. "/hf", "-p", PROMPT, "-n", "12", "--temp", "0" })
      assert.are.equal(local_out, out)
      local dst = cache .. "/converted.gguf"
      assert.are.equal(0, (run({ "convert", REPOS.hf, dst, "--type", "i2_s" })))
      assert.matches("^bitnet%.Model<", select(2, run({ "info", dst })))
    end)
  end)

  describe("offline, with the stand-in stopped", function()
    local cache
    setup(function()
      cache = tmpdir()
      assert(hub.pull(REPOS.gguf, { settings = settings(cache) }))
      assert(hub.pull(REPOS.hf, { settings = settings(cache) }))
      stop()
    end)
    teardown(function() shell.run("rm -rf " .. cache) end)

    local function cli_run(model, env)
      return bitnet_sh(("%s %s bin/bitnet run %s -p '%s' -n 24 --temp 0 2>&1; echo \"status=$?\""):format(
        env or "", INTERP, model, PROMPT))
    end

    it("bitnet run REPO prints the same text as bitnet run on the local files", function()
      local env = ("HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:9 HF_HUB_CACHE=%s"):format(cache)
      local from_file = cli_run(GGUF)
      assert.matches("status=0\n$", from_file)
      assert.are.equal(from_file, cli_run(REPOS.gguf, env))
      assert.are.equal(from_file, cli_run(REPOS.gguf .. ":kjv-bitnet-6m.gguf", env))
      local from_dir = cli_run(MODEL_DIR .. "/hf")
      assert.matches("status=0\n$", from_dir)
      assert.are.equal(from_dir, cli_run(REPOS.hf, env))
      local missing = cli_run("kjv/elsewhere", env)
      assert.matches("offline %(HF_HUB_OFFLINE=1%) and kjv/elsewhere is not in the cache", missing)
      assert.matches("status=1\n$", missing)
    end)

    it("bitnet.load(\"org/name\") reads the cache and gives the same text", function()
      local real_settings = hub.settings
      hub.settings = function() return settings(cache, { offline = true }) end
      local ok, err = pcall(function()
        local opts = { max_tokens = 24, temperature = 0 }
        local want = assert(bitnet.load(GGUF)):generate(PROMPT, opts)
        assert.are.equal(want, assert(bitnet.load(REPOS.gguf)):generate(PROMPT, opts))
        local want_hf = assert(bitnet.load(MODEL_DIR .. "/hf")):generate(PROMPT, opts)
        assert.are.equal(want_hf, assert(bitnet.load(REPOS.hf)):generate(PROMPT, opts))
        -- info().name: GGUF's general.name; a directory in the cache, the repo it came from
        assert.are.equal("kjv-bitnet-6m", assert(bitnet.load(REPOS.gguf)):info().name)
        assert.are.equal(REPOS.hf, assert(bitnet.load(REPOS.hf)):info().name)
        local m, e = bitnet.load("kjv/elsewhere")
        assert.is_nil(m)
        assert.are.equal("no file or directory kjv/elsewhere, and kjv/elsewhere is not in the cache (" .. cache
          .. "); run `bitnet pull kjv/elsewhere` first", e)
        m, e = bitnet.load("models/missing.gguf")
        assert.is_nil(m)
        assert.matches("^models/missing%.gguf: ", e)
      end)
      hub.settings = real_settings
      assert(ok, err)
    end)

    it("the Neovim plugin's model may be a repo id #nvim #noasan", function()
      local out = os.tmpname()
      local script = out .. ".lua"
      write(script, ([[
        local ok, err = pcall(function()
          local p = require("bitnet_nvim")
          p.setup({ model = %q })
          local m = p.model()
          local f = io.open(%q, "w")
          f:write(m:info().path, "\n", m:generate(%q, { max_tokens = 24, temperature = 0 }))
          f:close()
        end)
        if not ok then
          local f = io.open(%q, "w")
          f:write("error: ", tostring(err))
          f:close()
        end
        vim.cmd("qa!")
      ]]):format(REPOS.gguf, out, PROMPT, out))
      shell.run(("cd %s && env -u LD_PRELOAD -u LUA_PATH -u LUA_CPATH HF_HUB_OFFLINE=1 HF_HUB_CACHE=%s "
        .. "timeout 120 nvim --headless --clean -u NONE --cmd 'set rtp+=%s/nvim' -c 'luafile %s' > /dev/null 2>&1; true")
        :format(ROOT, cache, ROOT, script))
      local got = assert(read(out), "nvim wrote nothing")
      os.remove(out)
      os.remove(script)
      assert.matches("^" .. cache:gsub("%p", "%%%0") .. "/models%-%-kjv%-%-kjv%-bitnet%-6m%-gguf/snapshots/%x+/kjv%-bitnet%-6m%.gguf\n", got)
      local want = assert(bitnet.load(GGUF)):generate(PROMPT, { max_tokens = 24, temperature = 0 })
      assert.are.equal(want, got:match("\n(.*)$"))
    end)

    it("an existing local path wins over a repo id", function()
      local work = tmpdir()
      shell.run(("mkdir -p %s/kjv && cp %s %s/kjv/elsewhere"):format(work, GGUF, work))
      local out = bitnet_sh(("cd %s && BITNET_BUILD=%s HF_HUB_OFFLINE=1 HF_HUB_CACHE=%s/none %s %s/bin/bitnet info "
        .. "kjv/elsewhere 2>&1; echo status=$?"):format(work, BUILD, work, INTERP, ROOT))
      assert.matches("^bitnet%.Model<bitnet%-b1%.58.*status=0\n$", out)
      shell.run("rm -rf " .. work)
    end)
  end)
end)
