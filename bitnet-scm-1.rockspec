-- luarocks make bitnet-scm-1.rockspec [--tree DIR]
-- The source lists are checked against the tree by spec/rockspec_spec.lua.
rockspec_format = "3.0"
package = "bitnet"
version = "scm-1"
source = {
   url = "git+file:///dev/null", -- built from a checkout with `luarocks make`
}
description = {
   summary = "BitNet b1.58 (ternary) language model inference for Lua, in C",
   detailed = [[
Loads BitNet b1.58 models (GGUF: I2_S, TQ1_0, TQ2_0; Hugging Face safetensors) and runs
them on the CPU with ternary x int8 kernels; sessions with a KV-cache, tokenizers,
sampling, chat templates, streaming generation, a CLI and a REPL.]],
   license = "MIT",
   labels = { "llm", "bitnet", "inference" },
}
dependencies = {
   "lua >= 5.1",
}
external_dependencies = {
   CJSON = { header = "cjson/cJSON.h", library = "cjson" },
}
build = {
   type = "builtin",
   modules = {
      ["bitnet.core"] = {
         sources = {
            "csrc/convert.c",
            "csrc/encode.c",
            "csrc/engine.c",
            "csrc/errbuf.c",
            "csrc/floatfmt.c",
            "csrc/forward.c",
            "csrc/gguf.c",
            "csrc/gguf_model.c",
            "csrc/gguf_writer.c",
            "csrc/head.c",
            "csrc/hf_model.c",
            "csrc/hf_vocab.c",
            "csrc/hugepages.c",
            "csrc/jsonfile.c",
            "csrc/kernels/avx2.c",
            "csrc/kernels/avx512.c",
            "csrc/kernels/neon.c",
            "csrc/kernels/ref.c",
            "csrc/kernels/select.c",
            "csrc/lbitnet.c",
            "csrc/lconvert.c",
            "csrc/ljob.c",
            "csrc/lmodel.c",
            "csrc/lopts.c",
            "csrc/lsampler.c",
            "csrc/lsession.c",
            "csrc/ltokenizer.c",
            "csrc/mapfile.c",
            "csrc/model.c",
            "csrc/model_cache.c",
            "csrc/rope_order.c",
            "csrc/safetensors.c",
            "csrc/sampler.c",
            "csrc/score.c",
            "csrc/session.c",
            "csrc/ternary.c",
            "csrc/threadpool.c",
            "csrc/tok_build.c",
            "csrc/tok_gguf.c",
            "csrc/tok_hf.c",
            "csrc/tok_merge.c",
            "csrc/tok_pretok.c",
            "csrc/tokenizer.c",
            "csrc/unicode.c",
            "csrc/unicode_tables.c",
         },
         incdirs = { "csrc", "$(CJSON_INCDIR)" },
         libdirs = { "$(CJSON_LIBDIR)" },
         libraries = { "cjson", "m", "pthread" },
         defines = { "_DEFAULT_SOURCE" },
      },
      ["bitnet.cli"] = "lua/bitnet/cli.lua",
      ["bitnet.generate"] = "lua/bitnet/generate.lua",
      ["bitnet"] = "lua/bitnet/init.lua",
      ["bitnet.perplexity"] = "lua/bitnet/perplexity.lua",
      ["bitnet.pool"] = "lua/bitnet/pool.lua",
      ["bitnet.sampling"] = "lua/bitnet/sampling.lua",
      ["bitnet.server"] = "lua/bitnet/server.lua",
      ["bitnet.template"] = "lua/bitnet/template/init.lua",
      ["bitnet.template.access"] = "lua/bitnet/template/access.lua",
      ["bitnet.template.budget"] = "lua/bitnet/template/budget.lua",
      ["bitnet.template.filters"] = "lua/bitnet/template/filters.lua",
      ["bitnet.template.globals"] = "lua/bitnet/template/globals.lua",
      ["bitnet.template.json"] = "lua/bitnet/template/json.lua",
      ["bitnet.template.lexer"] = "lua/bitnet/template/lexer.lua",
      ["bitnet.template.parser"] = "lua/bitnet/template/parser.lua",
      ["bitnet.template.tests"] = "lua/bitnet/template/tests.lua",
      ["bitnet.template.value"] = "lua/bitnet/template/value.lua",
   },
   install = {
      bin = { bitnet = "bin/bitnet" },
      -- the shipped model, found by bitnet.default_model() beside the module
      -- and the nginx templates `bitnet serve` fills in (bitnet/openresty/)
      lua = {
         ["bitnet.models.kjv-bitnet-6m"] = "models/kjv-bitnet-6m/kjv-bitnet-6m.gguf",
         ["bitnet.openresty.nginx"] = "openresty/nginx.conf",
         ["bitnet.openresty.front"] = "openresty/front.conf",
      },
   },
}
