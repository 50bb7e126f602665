--- bitnet.hub: models by name from the Hugging Face Hub, in huggingface_hub's
-- shared cache (README "Models"). The HTTP, the verified resumable transfer
-- and the file-system steps are in C (csrc/net, csrc/base/fsops.c,
-- csrc/lua/lhub.c); this module speaks the Hub's protocol and keeps its
-- cache layout:
--   {cache}/models--{org}--{name}/blobs/{etag}          the bytes
--   {cache}/models--{org}--{name}/snapshots/{commit}/F  -> ../../blobs/{etag}
--   {cache}/models--{org}--{name}/refs/{revision}       the commit
--   {cache}/.locks/models--{org}--{name}/{etag}.lock    held while writing
-- so files huggingface-cli fetched are found, and ours are found by it.
local core = require("bitnet.core")

local M = {}

--- hub.GGUF_PREFERENCE: the types a bare REPO takes first, in order; then
-- the smallest GGUF.
M.GGUF_PREFERENCE = { "i2_s", "tq2_0", "tq1_0" }

-- What a Hugging Face directory repo is pulled with: config, tokenizer and
-- safetensors (never .bin, .pt, .onnx or images).
local HF_FILES = {
  ["config.json"] = true, ["generation_config.json"] = true, ["tokenizer.json"] = true,
  ["tokenizer_config.json"] = true, ["tokenizer.model"] = true, ["special_tokens_map.json"] = true,
  ["vocab.json"] = true, ["merges.txt"] = true, ["model.safetensors.index.json"] = true,
}

local DEFAULT_ENDPOINT = "https://huggingface.co"

-- ---- references ----

--- hub.parse_ref(s) -> { repo, revision, file, type } | nil, message
-- "org/name", "org/name:FILE" (a file of the repo: has a dot or a slash)
-- or "org/name:TYPE" (a GGUF type such as i2_s, matched in file names);
-- "org/name@REVISION" pins a branch, tag or commit.
function M.parse_ref(s)
  if type(s) ~= "string" then return nil, "a model reference must be a string" end
  local body, suffix = s:match("^([^:]+):(.*)$")
  body = body or s
  local repo, revision = body:match("^([^@]+)@(.+)$")
  repo = repo or body
  local org, name = repo:match("^([%w][%w._-]*)/([%w][%w._-]*)$")
  if not org or name:find("..", 1, true) or org:find("..", 1, true) or name:sub(-1) == "." then
    return nil, ("'%s' is not a Hugging Face repo id (org/name[:FILE or :TYPE])"):format(s)
  end
  if revision and (not revision:match("^[%w._/-]+$") or revision:find("..", 1, true)) then
    return nil, ("'%s': bad revision '%s'"):format(s, revision)
  end
  local ref = { repo = repo, revision = revision or "main" }
  if suffix then
    if suffix == "" or suffix:find("%.%.") or suffix:sub(1, 1) == "/" then
      return nil, ("'%s': bad file or type after ':'"):format(s)
    end
    if suffix:find("[./]") then ref.file = suffix else ref.type = suffix:lower() end
  end
  return ref
end

-- ---- settings ----

local function env_default(getenv)
  return getenv or os.getenv
end

local function truthy(v)
  v = v and v:upper()
  return v == "1" or v == "ON" or v == "YES" or v == "TRUE"
end

local function read_text(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- hub.settings([getenv]) -> { endpoint, token, cache, offline, timeout, retries, backoff }
-- From the environment, as huggingface_hub reads it: HF_ENDPOINT, HF_TOKEN
-- (else the file HF_TOKEN_PATH or $HF_HOME/token), HF_HUB_CACHE (else
-- HUGGINGFACE_HUB_CACHE, $HF_HOME/hub; HF_HOME defaults to
-- $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface), HF_HUB_OFFLINE,
-- HF_HUB_DOWNLOAD_TIMEOUT (seconds without data, default 10). A file is
-- tried `retries` (3) more times after a cut, a timeout or a 5xx, waiting
-- `backoff` (1) seconds, then twice that, and so on.
function M.settings(getenv)
  getenv = env_default(getenv)
  local home = getenv("HF_HOME")
  if not home or home == "" then
    local xdg = getenv("XDG_CACHE_HOME")
    home = ((xdg and xdg ~= "") and xdg or ((getenv("HOME") or ".") .. "/.cache")) .. "/huggingface"
  end
  local cache = getenv("HF_HUB_CACHE")
  if not cache or cache == "" then cache = getenv("HUGGINGFACE_HUB_CACHE") end
  if not cache or cache == "" then cache = home .. "/hub" end
  local token = getenv("HF_TOKEN")
  if not token or token == "" then
    local path = getenv("HF_TOKEN_PATH")
    token = read_text((path and path ~= "") and path or (home .. "/token"))
  end
  token = token and token:match("^%s*(.-)%s*$")
  local endpoint = getenv("HF_ENDPOINT")
  if not endpoint or endpoint == "" then endpoint = DEFAULT_ENDPOINT end
  return {
    endpoint = endpoint:gsub("/+$", ""), token = (token ~= "") and token or nil, cache = cache,
    offline = truthy(getenv("HF_HUB_OFFLINE")),
    timeout = math.max(1, math.ceil(tonumber(getenv("HF_HUB_DOWNLOAD_TIMEOUT") or "") or 10)),
    retries = 3, backoff = 1,
  }
end

--- hub.repo_dir(cache, repo) -> the repo's folder: {cache}/models--{org}--{name}
function M.repo_dir(cache, repo)
  return cache .. "/models--" .. repo:gsub("/", "--")
end

-- ---- which files ----

local function basename(path) return path:match("([^/]*)$") end

local function is_gguf(path) return path:lower():match("%.gguf$") ~= nil end

-- Whether a GGUF file name carries the type (case-insensitive, not inside
-- a longer word: "tq1_0" is not found in "tq1_00").
local function has_type(path, t)
  local name = basename(path):lower()
  local i = 1
  while true do
    local a, b = name:find(t, i, true)
    if not a then return false end
    local before, after = name:sub(a - 1, a - 1), name:sub(b + 1, b + 1)
    if not before:match("[%w]") and not after:match("[%w]") then return true end
    i = a + 1
  end
end

local function names(files)
  local out = {}
  for i, f in ipairs(files) do out[i] = f.path end
  table.sort(out)
  return table.concat(out, ", ")
end

--- hub.choose(files, ref) -> { paths to fetch }, main | nil, message
-- files: { { path, size }, ... } of a repo (or of a cached snapshot).
-- main is the file to load, or nil when the snapshot directory is (a
-- Hugging Face directory repo). The rule (README "Models"): ref.file names
-- a file; ref.type picks the one GGUF whose name carries it; otherwise a
-- GGUF repo gives the first of GGUF_PREFERENCE found, else its smallest
-- GGUF, and a repo of config.json + safetensors gives those, its tokenizer
-- and config files. Ambiguity returns nil and a message listing the choices.
function M.choose(files, ref)
  if ref.file then
    for _, f in ipairs(files) do
      if f.path == ref.file then return { f.path }, f.path end
    end
    return nil, ("%s has no file %s"):format(ref.repo, ref.file)
  end
  local ggufs = {}
  for _, f in ipairs(files) do
    if is_gguf(f.path) then ggufs[#ggufs + 1] = f end
  end
  local function one(list, what)
    if #list == 1 then return { list[1].path }, list[1].path end
    return nil, ("%s has %d GGUF files %s: %s; name one as %s:FILE"):format(ref.repo, #list, what, names(list), ref.repo)
  end
  if ref.type then
    local hits = {}
    for _, f in ipairs(ggufs) do
      if has_type(f.path, ref.type) then hits[#hits + 1] = f end
    end
    if #hits == 0 then
      return nil, ("%s has no GGUF file of type %s (its GGUF files: %s)"):format(ref.repo, ref.type,
        #ggufs > 0 and names(ggufs) or "none")
    end
    return one(hits, "of type " .. ref.type)
  end
  if #ggufs > 0 then
    for _, t in ipairs(M.GGUF_PREFERENCE) do
      local hits = {}
      for _, f in ipairs(ggufs) do
        if has_type(f.path, t) then hits[#hits + 1] = f end
      end
      if #hits > 0 then return one(hits, "of type " .. t) end
    end
    local smallest = {}
    for _, f in ipairs(ggufs) do
      if #smallest == 0 or (f.size or 0) < (smallest[1].size or 0) then smallest = { f }
      elseif (f.size or 0) == (smallest[1].size or 0) then smallest[#smallest + 1] = f end
    end
    return one(smallest, "of the same smallest size")
  end
  local pick, config, weights = {}, false, false
  for _, f in ipairs(files) do
    local top = not f.path:find("/", 1, true)
    if top and (HF_FILES[f.path] or f.path:match("%.safetensors$")) then
      pick[#pick + 1] = f.path
      config = config or f.path == "config.json"
      weights = weights or f.path:match("%.safetensors$") ~= nil
    end
  end
  if config and weights then
    table.sort(pick)
    return pick, nil
  end
  return nil, ("%s has neither a GGUF file nor a Hugging Face model (config.json and safetensors); its files: %s")
    :format(ref.repo, #files > 0 and names(files) or "none")
end

-- ---- the cache ----

local function is_commit(s) return s:match("^%x+$") ~= nil and #s == 40 end

-- The files of a snapshot folder (recursively), with the size of what
-- each link points at; dangling links are left out.
local function snapshot_files(dir)
  local out = {}
  local function walk(sub)
    local list = core.fs_list(dir .. sub)
    if not list then return end
    table.sort(list)
    for _, name in ipairs(list) do
      local rel = (sub == "" and "" or sub:sub(2) .. "/") .. name
      local st = core.fs_stat(dir .. "/" .. rel, true)
      if st and st.type == "dir" then walk("/" .. rel)
      elseif st then out[#out + 1] = { path = rel, size = st.size } end
    end
  end
  walk("")
  return out
end

local function commit_of(rdir, revision)
  if is_commit(revision) then return revision end
  local c = read_text(rdir .. "/refs/" .. revision)
  return c and c:match("^%s*(%x+)%s*$")
end

-- The path a reference names in the cache, or nil, message.
local function cached(ref, s)
  local rdir = M.repo_dir(s.cache, ref.repo)
  local commit = commit_of(rdir, ref.revision)
  if not commit then return nil, ("%s is not in the cache (%s)"):format(ref.repo, s.cache) end
  local snap = rdir .. "/snapshots/" .. commit
  local files = snapshot_files(snap)
  local want, main = M.choose(files, ref)
  if not want then return nil, main end
  if main then return snap .. "/" .. main end
  return snap
end

--- hub.resolve(ref [, settings]) -> path | nil, message
-- The cached file (or snapshot directory) a reference names, without the
-- network: what bitnet.load uses, so a library never downloads behind its
-- caller's back. The message says to run `bitnet pull` when it is absent.
function M.resolve(ref_string, s)
  local ref, err = M.parse_ref(ref_string)
  if not ref then return nil, err end
  s = s or M.settings()
  local path, why = cached(ref, s)
  if path then return path end
  return nil, ("%s; run `bitnet pull %s` first"):format(why, ref_string)
end

-- ---- the Hub ----

local function url_path(p)
  return (p:gsub("[^%w._~/-]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function auth_headers(s)
  return s.token and { "Authorization: Bearer " .. s.token } or {}
end

-- A message for an error response of the Hub, from its status and
-- X-Error-Code, naming the repo or file and what to do.
local function hub_error(resp, ref, s, file)
  local code, status = resp.headers["x-error-code"], resp.status
  local where = ref.repo .. (file and (" file " .. file) or "")
  if code == "GatedRepo" or (status == 403 and not code) then
    if s.token then
      return ("%s is gated and the token in HF_TOKEN has no access: accept its terms on the Hub (HTTP %d)")
        :format(ref.repo, status)
    end
    return ("%s is gated: accept its terms on the Hub, then set HF_TOKEN to an access token (HTTP %d)")
      :format(ref.repo, status)
  elseif code == "RepoNotFound" or (status == 401 and not code) then
    return ("%s: no such repo on %s%s (HTTP %d)"):format(ref.repo, s.endpoint,
      s.token and "" or ", or it is private: set HF_TOKEN", status)
  elseif code == "RevisionNotFound" then
    return ("%s has no revision %s (HTTP %d)"):format(ref.repo, ref.revision, status)
  elseif code == "EntryNotFound" or status == 404 then
    return ("%s: not found on %s (HTTP %d)"):format(where, s.endpoint, status)
  end
  return ("%s: the Hub answered HTTP %d for %s"):format(where, status, resp.url or s.endpoint)
end

local function strip_etag(e)
  return e and (e:gsub("^W/", ""):gsub('^"(.*)"$', "%1"))
end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

-- One file into the cache: HEAD on resolve (the commit, the etag, the
-- size, the storage URL), then the bytes into blobs/{etag} under its lock,
-- then the snapshot's relative link.
local function fetch_file(ref, s, rdir, commit, file, meta, progress)
  local url = ("%s/%s/resolve/%s/%s"):format(s.endpoint, ref.repo, commit, url_path(file))
  local head, err = core.http({ url = url, method = "HEAD", follow = false, headers = auth_headers(s),
    stall_timeout = s.timeout })
  if not head then return nil, err end
  if head.status >= 400 then return nil, hub_error(head, ref, s, file) end
  local h = head.headers
  local etag = strip_etag(h["x-linked-etag"] or h["etag"])
  local size = tonumber(h["x-linked-size"] or (head.status < 300 and h["content-length"]) or "") or meta.size
  if size and (size < 0 or size ~= math.floor(size)) then
    return nil, ("%s: the Hub states a size of %s for %s"):format(ref.repo, tostring(size), file)
  end
  if not etag or not etag:match("^[%w_-]+$") then
    return nil, ("%s: the Hub sent no usable ETag for %s"):format(ref.repo, file)
  end
  if meta.sha256 and meta.sha256 ~= etag then
    return nil, ("%s: %s: the file list states SHA-256 %s, the download %s"):format(ref.repo, file, meta.sha256, etag)
  end
  local target = url
  if head.status >= 300 and head.status < 400 and h["location"] then
    local loc = h["location"]
    if loc:sub(1, 1) == "/" then loc = s.endpoint:match("^(%a+://[^/]+)") .. loc end
    target = loc
  end
  local blob = rdir .. "/blobs/" .. etag
  if not core.fs_stat(blob, true) then
    local locks = s.cache .. "/.locks/" .. basename(rdir)
    local ok, e = core.fs_mkdirs(rdir .. "/blobs")
    if ok then ok, e = core.fs_mkdirs(locks) end
    if not ok then return nil, e end
    local lock, lerr = core.lock(locks .. "/" .. etag .. ".lock")
    if not lock then return nil, lerr end
    if not core.fs_stat(blob, true) then -- another process may have finished it while we waited
      -- the token goes only to the Hub itself, not to a storage host
      local same = target:match("^%a+://[^/]+") == s.endpoint:match("^%a+://[^/]+")
      -- (through pcall: an error raised by a progress callback, Ctrl-C's
      -- among them, must not leave the lock held)
      local called, res
      called, res, e = pcall(core.fetch, {
        url = target, path = blob .. ".incomplete", size = size, sha256 = meta.sha256,
        headers = same and auth_headers(s) or nil, stall_timeout = s.timeout, retries = s.retries, backoff = s.backoff,
        -- always a Lua function: while it runs, the interpreter's Ctrl-C
        -- hook can fire, which cancels the transfer (the partial file kept)
        progress = function(done) if progress then return progress(file, done, size) end end,
      })
      if not called then
        lock:release()
        error(res, 0)
      end
      if res then ok, e = os.rename(blob .. ".incomplete", blob) end
      if not (res and ok) then
        lock:release()
        return nil, e
      end
    end
    lock:release()
  end
  local pointer = rdir .. "/snapshots/" .. commit .. "/" .. file
  local ok, e = core.fs_mkdirs(dirname(pointer))
  if ok then
    local _, depth = file:gsub("/", "")
    ok, e = core.fs_symlink(("../"):rep(2 + depth) .. "blobs/" .. etag, pointer)
  end
  if not ok then return nil, e end
  return true
end

-- The repo's file list at a revision: GET /api/models/{repo}/revision/{rev}?blobs=true.
local function repo_info(ref, s)
  local url = ("%s/api/models/%s/revision/%s?blobs=true"):format(s.endpoint, ref.repo, url_path(ref.revision))
  local resp, err = core.http({ url = url, headers = auth_headers(s), stall_timeout = s.timeout })
  if not resp then return nil, err end
  if resp.status ~= 200 then return nil, hub_error(resp, ref, s) end
  local info = core.json_decode(resp.body)
  if type(info) ~= "table" or type(info.sha) ~= "string" or not is_commit(info.sha) or type(info.siblings) ~= "table" then
    return nil, ("%s: the Hub's answer for %s has no commit and file list"):format(url, ref.repo)
  end
  local files = {}
  for _, sib in ipairs(info.siblings) do
    if type(sib) == "table" and type(sib.rfilename) == "string" then
      -- a name that would leave the snapshot folder is refused, not followed
      local p = sib.rfilename
      if p == "" or p:sub(1, 1) == "/" or p:find("\\", 1, true) or p:find("//", 1, true)
        or ("/" .. p .. "/"):find("/%.%.?/") then
        return nil, ("%s: the Hub lists an unsafe file name %q"):format(ref.repo, p)
      end
      local sha = type(sib.lfs) == "table" and sib.lfs.sha256 or nil
      if sha ~= nil and not (type(sha) == "string" and #sha == 64 and sha:match("^%x+$")) then
        return nil, ("%s: the Hub states no usable SHA-256 for %s"):format(ref.repo, p)
      end
      files[#files + 1] = { path = p, size = tonumber(sib.size), sha256 = sha }
    end
  end
  return info.sha, files
end

--- hub.pull(ref [, opts]) -> path, { repo, commit, files, downloaded } | nil, message
-- Downloads what the reference names into the cache (what is there
-- already is not fetched again) and returns the path bitnet.load takes.
-- opts.progress(done, total) is called as bytes arrive (total: the bytes
-- this pull fetches); opts.settings replaces hub.settings(). Offline
-- (HF_HUB_OFFLINE=1) it answers from the cache alone.
function M.pull(ref_string, opts)
  opts = opts or {}
  local ref, err = M.parse_ref(ref_string)
  if not ref then return nil, err end
  local s = opts.settings or M.settings()
  if s.offline then
    local path, why = cached(ref, s)
    if path then return path, { repo = ref.repo, files = {}, downloaded = 0 } end
    return nil, ("offline (HF_HUB_OFFLINE=1) and %s"):format(why)
  end
  local commit, files = repo_info(ref, s)
  if not commit then return nil, files end
  local want, main = M.choose(files, ref)
  if not want then return nil, main end
  local rdir = M.repo_dir(s.cache, ref.repo)
  local by_path = {}
  for _, f in ipairs(files) do by_path[f.path] = f end
  -- what is missing, and how many bytes that is
  local todo, total = {}, 0
  for _, path in ipairs(want) do
    local st = core.fs_stat(rdir .. "/snapshots/" .. commit .. "/" .. path, true)
    if not st or (by_path[path].size and st.size ~= by_path[path].size) then
      todo[#todo + 1] = path
      total = total + (by_path[path].size or 0)
    end
  end
  local before, progress = 0, nil
  if opts.progress then
    progress = function(_, done) return opts.progress(before + done, total) end
  end
  for _, path in ipairs(todo) do
    local ok, e = fetch_file(ref, s, rdir, commit, path, by_path[path], progress)
    if not ok then return nil, e end
    before = before + (by_path[path].size or 0)
  end
  if ref.revision ~= commit then
    local ok, e = core.fs_mkdirs(dirname(rdir .. "/refs/" .. ref.revision))
    if not ok then return nil, e end
    local f
    f, e = io.open(rdir .. "/refs/" .. ref.revision, "wb")
    if not f then return nil, e end
    f:write(commit)
    f:close()
  end
  local snap = rdir .. "/snapshots/" .. commit
  return main and (snap .. "/" .. main) or snap,
    { repo = ref.repo, commit = commit, files = want, downloaded = total }
end

--- hub.list([settings]) -> { { repo, revisions = { name = commit }, commit, files, size }, ... }
-- Every model repo in the cache (ours and huggingface_hub's), sorted;
-- size counts each blob once.
function M.list(s)
  s = s or M.settings()
  local out = {}
  local entries = core.fs_list(s.cache) or {}
  table.sort(entries)
  for _, name in ipairs(entries) do
    local org, repo = name:match("^models%-%-(.-)%-%-(.+)$")
    if org then
      local rdir = s.cache .. "/" .. name
      local item = { repo = org .. "/" .. repo, revisions = {}, files = 0, size = 0 }
      for _, r in ipairs(core.fs_list(rdir .. "/refs") or {}) do
        item.revisions[r] = commit_of(rdir, r)
      end
      for _, b in ipairs(core.fs_list(rdir .. "/blobs") or {}) do
        local st = core.fs_stat(rdir .. "/blobs/" .. b)
        if st and not b:match("%.incomplete$") then item.size = item.size + st.size end
      end
      local snaps = core.fs_list(rdir .. "/snapshots") or {}
      table.sort(snaps)
      for _, c in ipairs(snaps) do
        item.files = item.files + #snapshot_files(rdir .. "/snapshots/" .. c)
        item.commit = item.commit or c
      end
      item.commit = item.revisions.main or item.commit
      out[#out + 1] = item
    end
  end
  return out
end

--- hub.rm(repo [, settings]) -> true | nil, message
-- Deletes a repo from the cache: its blobs, snapshots, refs and locks.
function M.rm(repo, s)
  local ref, err = M.parse_ref(repo)
  if not ref then return nil, err end
  if ref.file or ref.type or repo:find("@", 1, true) then
    return nil, "bitnet rm takes a repo id (org/name), not a file or a revision"
  end
  s = s or M.settings()
  local rdir = M.repo_dir(s.cache, ref.repo)
  if not core.fs_stat(rdir) then return nil, ("%s is not in the cache (%s)"):format(ref.repo, s.cache) end
  local ok, e = core.fs_remove(rdir)
  if not ok then return nil, e end
  core.fs_remove(s.cache .. "/.locks/" .. basename(rdir))
  return true
end

return M
