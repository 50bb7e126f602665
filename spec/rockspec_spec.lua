-- The rockspec lists every source and module in the tree, and
-- `luarocks make --tree DIR` into an empty tree gives a working module.
local rockspec_path = "bitnet-scm-1.rockspec"
local shell = require("support.shell")

local function load_rockspec()
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadfile(rockspec_path))
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(rockspec_path, "t", env))
  end
  chunk()
  return env
end

local function lines(cmd)
  local out = {}
  for l in shell.read(cmd):gmatch("[^\n]+") do out[#out + 1] = l end
  table.sort(out)
  return out
end

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

describe("rockspec", function()
  local spec = load_rockspec()

  it("lists every C source the Makefile builds", function()
    local want = lines("ls csrc/*/*.c")
    assert.are.same(want, sorted(spec.build.modules["bitnet.core"].sources))
  end)

  it("lists every Lua module under lua/bitnet, packages included, by its path", function()
    local want, got = {}, {}
    for _, f in ipairs(lines("find lua/bitnet -name '*.lua'")) do
      -- lua/bitnet/x/y.lua is bitnet.x.y; lua/bitnet/x/init.lua is bitnet.x
      local name = ("bitnet/" .. f:match("^lua/bitnet/(.-)%.lua$")):gsub("/init$", ""):gsub("/", ".")
      want[name] = f
    end
    for name, v in pairs(spec.build.modules) do
      if type(v) == "string" then got[name] = v end
    end
    assert.is_not_nil(want["bitnet.template.parser"]) -- the walk does reach packages
    assert.are.same(want, got)
  end)

  it("installs the shipped model", function()
    local installed = spec.build.install.lua["bitnet.models.kjv-bitnet-6m"]
    assert.are.equal("models/kjv-bitnet-6m/kjv-bitnet-6m.gguf", installed)
    assert.is_truthy(io.open(installed, "rb"))
  end)

  it("installs every command in bin/", function()
    local want = {}
    for _, f in ipairs(lines("ls bin 2>/dev/null")) do want[#want + 1] = "bin/" .. f end
    local got = {}
    for _, v in pairs(spec.build.install and spec.build.install.bin or {}) do got[#got + 1] = v end
    assert.are.same(want, sorted(got))
  end)

  it("builds and installs into an empty tree with luarocks make #noasan", function()
    if _VERSION ~= "Lua 5.4" then return end
    local tree = os.tmpname()
    os.remove(tree)
    local ok = pcall(shell.run, ("luarocks --lua-version 5.4 make %s --tree %s >%s.log 2>&1"):format(rockspec_path, tree, tree))
    assert.is_true(ok, "luarocks make failed: see " .. tree .. ".log")
    local probe = ([[lua5.4 -e 'package.path="%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua"
      package.cpath="%s/lib/lua/5.4/?.so"
      local b = require "bitnet"
      local m = assert(b.load("%s/fixtures/gguf/b158-relu2-i2_s/model.gguf"))
      local shipped = assert(b.load())
      io.write(m:info().arch, " ", shipped:info().n_vocab)']]):format(tree, tree, tree, (os.getenv("BITNET_SHARED") or "../shared"))
    local ok_probe, out = pcall(shell.read, probe)
    if not ok_probe then out = tostring(out) end
    local has_bin = io.open(tree .. "/bin/bitnet") ~= nil
    -- the installed command finds the installed module; the checkout's
    -- bin/bitnet its own, with the paths `luarocks path` prints for the tree
    local lines = "printf 'print(package.searchpath(\"bitnet.repl\", package.path))\\nprint(model:info().n_vocab)\\n' | "
    local ok_installed, installed = pcall(shell.read, lines .. tree .. "/bin/bitnet repl 2>&1")
    local ok_checkout, checkout = pcall(shell.read, ('eval "$(luarocks --lua-version 5.4 path --tree %s)" && %s'
      .. "lua5.4 bin/bitnet repl 2>&1"):format(tree, lines))
    -- where `bitnet serve` looks for its nginx templates in a tree
    local has_conf = io.open(tree .. "/share/lua/5.4/bitnet/openresty/nginx.conf") ~= nil
      and io.open(tree .. "/share/lua/5.4/bitnet/openresty/front.conf") ~= nil
    -- luarocks builds in place: leave the checkout as it was
    shell.run("rm -rf bitnet csrc/*/*.o " .. tree .. " " .. tree .. ".log")
    assert.are.equal("bitnet-b1.58 4096", out)
    assert.are.equal(tree .. "/share/lua/5.4/bitnet/repl.lua\n4096\n", ok_installed and installed or tostring(installed))
    assert.are.equal("bin/../lua/bitnet/repl.lua\n4096\n", ok_checkout and checkout or tostring(checkout))
    assert.is_true(has_bin, "bin/bitnet was not installed")
    assert.is_true(has_conf, "the nginx templates were not installed in bitnet/openresty/")
  end)
end)
