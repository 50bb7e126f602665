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
sampling, chat templates, streaming generation, a CLI and a REPL; models pulled by name
from the Hugging Face Hub into its shared cache.]],
   license = "MIT",
   labels = { "llm", "bitnet", "inference" },
}
dependencies = {
   "lua >= 5.1",
}
external_dependencies = {
   CJSON = { header = "cjson/cJSON.h", library = "cjson" },
   -- `bitnet pull` (Debian: libcurl4-openssl-dev); the library only: Debian keeps
   -- curl/curl.h in the multiarch folder, which the compiler finds and luarocks does not
   CURL = { library = "curl" },
   OPENSSL = { header = "openssl/evp.h", library = "crypto" }, -- SHA-256 of pulled files (Debian: libssl-dev)
}
build = {
   type = "builtin",
   modules = {
      ["bitnet.core"] = {
         sources = {
            "csrc/base/errbuf.c",
            "csrc/base/fsops.c",
            "csrc/base/threadpool.c",
            "csrc/formats/floatfmt.c",
            "csrc/formats/gguf.c",
            "csrc/formats/gguf_writer.c",
            "csrc/formats/jsonfile.c",
            "csrc/formats/mapfile.c",
            "csrc/formats/safetensors.c",
            "csrc/grammar/earley.c",
            "csrc/grammar/ecma_regex.c",
            "csrc/grammar/gbnf.c",
            "csrc/grammar/gbuild.c",
            "csrc/grammar/grammar.c",
            "csrc/grammar/json_schema.c",
            "csrc/grammar/json_schema_emit.c",
            "csrc/grammar/json_schema_formats.c",
            "csrc/grammar/json_schema_numbers.c",
            "csrc/grammar/json_schema_rxalg.c",
            "csrc/grammar/json_schema_shape.c",
            "csrc/grammar/json_schema_strings.c",
            "csrc/grammar/lexer.c",
            "csrc/grammar/matcher.c",
            "csrc/grammar/regex.c",
            "csrc/grammar/token_classes.c",
            "csrc/grammar/vocab.c",
            "csrc/kernels/avx2.c",
            "csrc/kernels/avx512.c",
            "csrc/kernels/neon.c",
            "csrc/kernels/ref.c",
            "csrc/kernels/select.c",
            "csrc/lua/lbitnet.c",
            "csrc/lua/lconvert.c",
            "csrc/lua/lgrammar.c",
            "csrc/lua/lhub.c",
            "csrc/lua/ljob.c",
            "csrc/lua/ljson.c",
            "csrc/lua/lmodel.c",
            "csrc/lua/lopts.c",
            "csrc/lua/lsampler.c",
            "csrc/lua/lsession.c",
            "csrc/lua/ltokenizer.c",
            "csrc/model/convert.c",
            "csrc/model/encode.c",
            "csrc/model/gguf_model.c",
            "csrc/model/head.c",
            "csrc/model/hf_model.c",
            "csrc/model/hugepages.c",
            "csrc/model/load.c",
            "csrc/model/model.c",
            "csrc/model/model_cache.c",
            "csrc/model/rope_order.c",
            "csrc/model/ternary.c",
            "csrc/net/fetch.c",
            "csrc/net/http.c",
            "csrc/net/sha256.c",
            "csrc/runtime/engine.c",
            "csrc/runtime/forward.c",
            "csrc/runtime/kv_shift.c",
            "csrc/runtime/sampler.c",
            "csrc/runtime/score.c",
            "csrc/runtime/session.c",
            "csrc/runtime/session_file.c",
            "csrc/tokenizer/hf_vocab.c",
            "csrc/tokenizer/ids.c",
            "csrc/tokenizer/tok_build.c",
            "csrc/tokenizer/tok_gguf.c",
            "csrc/tokenizer/tok_hf.c",
            "csrc/tokenizer/tok_merge.c",
            "csrc/tokenizer/tok_pretok.c",
            "csrc/tokenizer/tokenizer.c",
            "csrc/tokenizer/unicode.c",
            "csrc/tokenizer/unicode_tables.c",
         },
         incdirs = { "csrc", "$(CJSON_INCDIR)", "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
         libdirs = { "$(CJSON_LIBDIR)", "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
         libraries = { "cjson", "curl", "crypto", "m", "pthread" },
         defines = { "_DEFAULT_SOURCE" },
      },
      ["bitnet.cli"] = "lua/bitnet/cli.lua",
      ["bitnet.errors"] = "lua/bitnet/errors.lua",
      ["bitnet.generate"] = "lua/bitnet/generate.lua",
      ["bitnet.grammar"] = "lua/bitnet/grammar.lua",
      ["bitnet.hub"] = "lua/bitnet/hub.lua",
      ["bitnet"] = "lua/bitnet/init.lua",
      ["bitnet.perplexity"] = "lua/bitnet/perplexity.lua",
      ["bitnet.pool"] = "lua/bitnet/pool.lua",
      ["bitnet.sampling"] = "lua/bitnet/sampling.lua",
      ["bitnet.server"] = "lua/bitnet/server.lua",
      ["bitnet.server_structured"] = "lua/bitnet/server_structured.lua",
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
      ["bitnet.tools"] = "lua/bitnet/tools.lua",
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
