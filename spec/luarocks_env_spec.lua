-- The plugin and `bitnet serve` in the environment of a luarocks user:
-- LUA_PATH / LUA_CPATH exactly as `luarocks --lua-version 5.4 path --tree T`
-- prints them (the shell profile's `eval "$(luarocks path)"`), for a tree
-- where bitnet is installed for Lua 5.4, whose core.so LuaJIT cannot load.
-- The trees are laid out as `luarocks make` installs the rockspec (each
-- module of build.modules and build.install.lua under share/lua/5.x, the C
-- module under lib/lua/5.x, bin/ scripts), from this checkout's files; the
-- rockspec spec checks a real `luarocks make` gives that layout.
local shell = require("support.shell")
local checks = require("support.checks")

local ROOT = shell.read("pwd"):match("[^\n]+")

local function load_rockspec()
  local env = {}
  local chunk = assert(loadfile("bitnet-scm-1.rockspec"))
  if setfenv then setfenv(chunk, env) else chunk = assert(loadfile("bitnet-scm-1.rockspec", "t", env)) end
  chunk()
  return env
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Installs the checkout into tree for Lua `version` ("5.4" or "5.1") with
-- the C module built at `core`, as `luarocks --lua-version V make` would.
local function install(tree, version, core)
  local spec = load_rockspec()
  local share, lib = tree .. "/share/lua/" .. version, tree .. "/lib/lua/" .. version
  local function place(name, file, ext)
    -- luarocks keeps an init.lua's name: module bitnet from lua/bitnet/init.lua is bitnet/init.lua
    if file:match("/init%.lua$") then ext = "/init.lua" end
    local dest = share .. "/" .. name:gsub("%.", "/") .. ext
    shell.run(("mkdir -p %s && cp %s %s"):format(q(dest:match("^(.*)/")), q(file), q(dest)))
  end
  for name, file in pairs(spec.build.modules) do
    if type(file) == "string" then place(name, file, ".lua") end
  end
  for name, file in pairs(spec.build.install.lua) do place(name, file, file:match("%.[^.]+$")) end
  shell.run(("mkdir -p %s/bitnet %s/bin && cp %s %s/bitnet/core.so && cp bin/bitnet %s/bin/bitnet"):format(
    q(lib), q(tree), q(core), q(lib), q(tree)))
end

-- The environment `luarocks path` prints for the tree, as `env` arguments.
local function luarocks_env(tree)
  local text = shell.read(("luarocks --lua-version 5.4 path --tree %s"):format(q(tree)))
  local path = assert(text:match("export LUA_PATH='([^']*)'"), text)
  local cpath = assert(text:match("export LUA_CPATH='([^']*)'"), text)
  assert(path:find(tree .. "/share/lua/5.4/?.lua", 1, true) == 1, path)
  return ("LUA_PATH=%s LUA_CPATH=%s"):format(q(path), q(cpath))
end

local function tmpdir()
  local d = checks.tmpname()
  os.remove(d)
  shell.run("mkdir -p " .. q(d))
  return d
end

-- Runs `cmd`; returns its exit status (0 success) and its output.
local function run(cmd)
  local log = checks.tmpname()
  local ok, _, code = os.execute(("unset LD_PRELOAD; %s >%s 2>&1"):format(cmd, q(log)))
  -- LuaJIT gives the wait status alone; Lua 5.4 true/nil, "exit", the code
  local status = type(ok) == "number" and math.floor(ok / 256) or (ok and 0 or code)
  local text = checks.read_file_if(log) or ""
  os.remove(log)
  return status, text
end

describe("a luarocks user's environment (LUA_PATH / LUA_CPATH of a Lua 5.4 tree)", function()
  local tree, env
  setup(function()
    assert(io.open("build/lua5.4/bitnet/core.so", "rb"), "build/lua5.4 is not built (make lua54)")
    tree = tmpdir()
    install(tree, "5.4", "build/lua5.4/bitnet/core.so")
    env = luarocks_env(tree)
  end)
  teardown(function() shell.run("rm -rf " .. q(tree)) end)

  it("bitnet serve from the tree names the command that installs the LuaJIT build, then finds it #noasan", function()
    local prefix = tmpdir()
    local cmd = ("env %s lua5.4 %s/bin/bitnet serve --config-only --prefix %s"):format(env, q(tree), q(prefix))
    if run("test -x /usr/sbin/nginx") ~= 0 then return pending("nginx is not installed") end
    local status, text = run(cmd)
    assert.are.equal(1, status, text)
    assert.matches(("needs the LuaJIT build of bitnet.core, which the luarocks tree %s does not hold "
      .. "(%s/lib/lua/5.1/bitnet/core.so): install it from a bitnet checkout with "
      .. "`luarocks --lua-version 5.1 --tree %s make bitnet-scm-1.rockspec`"):format(tree, tree, tree), text, 1, true)
    assert(io.open("build/luajit/bitnet/core.so", "rb"), "build/luajit is not built (make luajit)")
    install(tree, "5.1", "build/luajit/bitnet/core.so")
    status, text = run(cmd)
    assert.are.equal(0, status, text)
    local conf = checks.read_file(prefix .. "/conf/nginx.conf")
    assert.matches(('lua_package_path "%s/share/lua/5.1/?.lua;%s/share/lua/5.1/?/init.lua;;";'):format(tree, tree),
      conf, 1, true)
    assert.matches(('lua_package_cpath "%s/lib/lua/5.1/?.so;;";'):format(tree), conf, 1, true)
    shell.run("rm -rf " .. q(prefix) .. " " .. q(tree .. "/share/lua/5.1") .. " " .. q(tree .. "/lib/lua/5.1"))
  end)

  describe("the Neovim plugin #nvim #noasan", function()
    -- Starts nvim with the plugin at rtp (its nvim/ folder) in the luarocks
    -- environment; returns what nvim/test/library_test.lua wrote.
    local function nvim(rtp)
      local out = checks.tmpname()
      local cmd = ("cd %s && env -u LD_PRELOAD %s BITNET_NVIM_OUT=%s nvim --headless --clean -u NONE "
        .. "--cmd %s -c %s </dev/null"):format(q(ROOT), env, q(out), q("set rtp+=" .. rtp),
          q("luafile " .. ROOT .. "/nvim/test/library_test.lua"))
      run(cmd)
      local result = checks.read_file_if(out)
      os.remove(out)
      assert(result, "nvim wrote no result (" .. cmd .. ")")
      return result
    end

    it("skips the 5.4 rock for the checkout it lives in", function()
      assert(io.open("build/luajit/bitnet/core.so", "rb"), "build/luajit is not built (make luajit)")
      local result = nvim(ROOT .. "/nvim")
      assert.are.equal("ok", result:match("^[^\n]*"), result)
      assert.are.equal(ROOT .. "/lua/bitnet/init.lua", result:match("library=([^\n]+)"))
      assert.are.equal(ROOT .. "/build/luajit/bitnet/core.so", result:match("core=([^\n]+)"))
      assert.is_truthy(result:match("text=[^\n]+"))
    end)

    it("outside a checkout, says every place it tried; then finds the tree's LuaJIT build", function()
      local copy = tmpdir() -- the plugin alone, as a plugin manager might copy it
      shell.run(("cp -r nvim %s/"):format(q(copy)))
      local result = nvim(copy .. "/nvim")
      local first = result:match("^[^\n]*")
      assert.matches("^fail: cannot load the bitnet module", first)
      assert.matches("`luarocks --lua-version 5.1 make`", first, 1, true)
      assert.matches("1. package.path / package.cpath:\n      error loading module 'bitnet.core' from file '"
        .. tree .. "/lib/lua/5.4/bitnet/core.so'", result, 1, true)
      assert.matches("undefined symbol", result, 1, true)
      assert.matches("2. the checkout " .. copy .. " (lua/, build/luajit):\n      ", result, 1, true)
      assert.is_nil(result:find("loop or previous error", 1, true), result)
      assert.is_nil(result:find("3. ", 1, true), result) -- the tree has no 5.1 build yet
      install(tree, "5.1", "build/luajit/bitnet/core.so")
      result = nvim(copy .. "/nvim")
      assert.are.equal("ok", result:match("^[^\n]*"), result)
      assert.are.equal(tree .. "/share/lua/5.1/bitnet/init.lua", result:match("library=([^\n]+)"))
      assert.are.equal(tree .. "/lib/lua/5.1/bitnet/core.so", result:match("core=([^\n]+)"))
      shell.run("rm -rf " .. q(copy) .. " " .. q(tree .. "/share/lua/5.1") .. " " .. q(tree .. "/lib/lua/5.1"))
    end)
  end)
end)
