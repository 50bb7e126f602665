-- Every ```lua block of README.md runs, in order, as one program (so later
-- blocks see the locals of earlier ones, as a reader would), against the
-- shipped model.
local function readme_blocks()
  local f = assert(io.open("README.md", "rb"))
  local text = f:read("*a")
  f:close()
  local blocks = {}
  for code in text:gmatch("\n```lua\n(.-)\n```") do blocks[#blocks + 1] = code end
  return blocks
end

describe("README", function()
  it("has Lua examples", function()
    assert.is_true(#readme_blocks() >= 5)
  end)

  it("runs every Lua example", function()
    local source = table.concat(readme_blocks(), "\n")
    local printed = {}
    local env = setmetatable({
      print = function(...)
        local parts = {}
        for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
        printed[#printed + 1] = table.concat(parts, "\t")
      end,
      io = setmetatable({ write = function(...) printed[#printed + 1] = table.concat({ ... }) end }, { __index = io }),
    }, { __index = _G })
    local chunk, err
    if setfenv then
      chunk, err = loadstring(source, "=README.md")
      if chunk then setfenv(chunk, env) end
    else
      chunk, err = load(source, "=README.md", "t", env)
    end
    assert(chunk, err)
    chunk()
    assert.is_true(#printed >= 5)
    assert.is_truthy(printed[1]:find("^bitnet%.Model<"))
  end)
end)
