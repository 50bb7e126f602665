-- check_layers.lua: the layering rule of csrc/ (README "Building"), checked
-- over the #include lines. Every file in csrc/<folder>/ may include only
-- headers of its own folder or of folders below it:
--   base < net < formats < kernels < tokenizer < grammar < model < runtime < lua
-- and the modules (x.c with its x.h, and x_internal.h: the private half
-- of x's interface, shared by the files of its folder) must not include
-- each other in a cycle. Prints each violation; exits 1 if there is any.
-- Usage: lua5.4 tools/check_layers.lua [csrc]
local root = arg[1] or "csrc"
local RANK = { base = 1, net = 2, formats = 3, kernels = 4, tokenizer = 5, grammar = 6, model = 7, runtime = 8, lua = 9 }

local files = {}
local p = assert(io.popen("find " .. root .. " -name '*.[ch]' | sort"))
for path in p:lines() do files[#files + 1] = path end
p:close()

local problems, edges = {}, {}
local function module_of(rel) return (rel:gsub("%.[ch]$", ""):gsub("_internal$", "")) end

for _, path in ipairs(files) do
  local rel = path:sub(#root + 2)
  local folder = rel:match("^([^/]+)/")
  if not folder or not RANK[folder] then
    problems[#problems + 1] = ("%s: not in a layer folder (%s)"):format(path, "base, net, formats, kernels, tokenizer, grammar, model, runtime, lua")
  else
    local from = module_of(rel)
    edges[from] = edges[from] or {}
    local n = 0
    for line in io.lines(path) do
      n = n + 1
      local inc = line:match('^%s*#%s*include%s+"([^"]+)"')
      if inc then
        local to_folder = inc:match("^([^/]+)/")
        if not to_folder or not RANK[to_folder] then
          problems[#problems + 1] = ("%s:%d: include \"%s\" names no layer folder"):format(path, n, inc)
        elseif RANK[to_folder] > RANK[folder] then
          problems[#problems + 1] = ("%s:%d: %s/ may not include %s (a higher layer)"):format(path, n, folder, inc)
        end
        local to = module_of(inc)
        if to ~= from then edges[from][to] = n end
      end
    end
  end
end

-- cycles among modules: depth-first search, reporting each cycle once
local state, stack = {}, {}
local function visit(m)
  state[m] = "open"
  stack[#stack + 1] = m
  for to in pairs(edges[m] or {}) do
    if state[to] == "open" then
      local cycle, on = {}, false
      for _, s in ipairs(stack) do
        if s == to then on = true end
        if on then cycle[#cycle + 1] = s end
      end
      cycle[#cycle + 1] = to
      problems[#problems + 1] = "include cycle: " .. table.concat(cycle, " -> ")
    elseif not state[to] then
      visit(to)
    end
  end
  stack[#stack] = nil
  state[m] = "done"
end
local mods = {}
for m in pairs(edges) do mods[#mods + 1] = m end
table.sort(mods)
for _, m in ipairs(mods) do
  if not state[m] then visit(m) end
end

for _, msg in ipairs(problems) do io.stderr:write(msg, "\n") end
print(("layers: %d files, %d modules, %d problems"):format(#files, #mods, #problems))
os.exit(#problems == 0 and 0 or 1)
