-- bitnet.normalize_path and the shipped model's path as printed.
local bitnet = require("bitnet")

describe("paths", function()
  it("are normalized textually", function()
    local n = bitnet.normalize_path
    assert.are.equal("models/x.gguf", n("bin/../lua/bitnet/../../models/x.gguf"))
    assert.are.equal("/a/c", n("/a/./b/../c"))
    assert.are.equal("../x", n("../x"))
    assert.are.equal("../../x", n("a/../../../x"))
    assert.are.equal(".", n("a/.."))
    assert.are.equal("a/b", n("a//b/"))
  end)

  it("of the shipped model has no .. segments from a checkout", function()
    local path = assert(bitnet.default_model())
    assert.is_nil(path:find("/../", 1, true))
    assert.is_truthy(path:find("models/kjv%-bitnet%-6m/kjv%-bitnet%-6m%.gguf$"))
  end)
end)
