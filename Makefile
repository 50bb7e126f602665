# Builds bitnet.core for Lua 5.4 and LuaJIT 2.1 from the same sources, and
# runs the specs under each and under AddressSanitizer + UBSan.
CC ?= gcc
CFLAGS ?= -O2 -g
WARN = -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -D_DEFAULT_SOURCE
PIC = -fPIC
LIBS = -lcjson -lcurl -lcrypto -lm -lpthread -ldl
LUA54_INC ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1
BUSTED ?= /usr/bin/busted

SRC = $(wildcard csrc/*/*.c)
HDR = $(wildcard csrc/*/*.h)

LIB54 = build/lua5.4/bitnet/core.so
LIBJIT = build/luajit/bitnet/core.so
LIBASAN = build/asan/bitnet/core.so
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: bench-pull test-grammar bench-grammar bench-grammar-decode all lua54 luajit asan tsan fuzz fuzz-build fuzz-seeds fuzz-regress template-probe bench-engine nvim-bench test test-states check-layers test-lua54 test-luajit test-asan test-kernels test-writer valgrind bench check-neon load-test soak clean

all: lua54 luajit
lua54: $(LIB54)
luajit: $(LIBJIT)
asan: $(LIBASAN)

$(LIB54): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(PIC) -I$(LUA54_INC) -Icsrc -shared -o $@ $(SRC) $(LIBS)

$(LIBJIT): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(PIC) -I$(LUAJIT_INC) -Icsrc -shared -o $@ $(SRC) $(LIBS)

$(LIBASAN): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g $(SANITIZE) $(PIC) -I$(LUA54_INC) -Icsrc -shared -o $@ $(SRC) $(LIBS)

# BUSTED_ARGS lets CI add an output handler; BITNET_BUILD picks the library.
test: check-layers test-kernels test-writer test-grammar test-lua54 test-luajit test-asan test-states

# The layering of csrc/ (README "Building"): no include from a lower folder
# to a higher one, no include cycle between modules.
check-layers:
	lua5.4 tools/check_layers.lua csrc

# One model shared by Lua states on several threads (tests/states_test.c),
# against the ASan + UBSan build.
STEST = build/states_test
$(STEST): tests/states_test.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g $(SANITIZE) -I$(LUA54_INC) -o $@ tests/states_test.c -llua5.4 -lpthread

test-states: $(STEST) $(LIBASAN)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(STEST) build/asan

# ThreadSanitizer: the engine under many Lua states on many threads.
LIBTSAN = build/tsan/bitnet/core.so
$(LIBTSAN): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g -fsanitize=thread $(PIC) -I$(LUA54_INC) -Icsrc -shared -o $@ $(SRC) $(LIBS)

build/states_test.tsan: tests/states_test.c Makefile
	$(CC) $(WARN) -O1 -g -fsanitize=thread -I$(LUA54_INC) -o $@ tests/states_test.c -llua5.4 -lpthread

# and the specs of the engine, pools and saved sessions through an
# interpreter built with TSan (tests/lua_host.c: no preload, so the shells
# the specs start run plain)
build/lua_host.tsan: tests/lua_host.c Makefile
	$(CC) $(WARN) -O1 -g -fsanitize=thread -I$(LUA54_INC) -o $@ tests/lua_host.c -llua5.4

TSAN_SPECS = spec/engine_spec.lua spec/session_file_spec.lua
tsan: $(LIBTSAN) build/states_test.tsan build/lua_host.tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build/states_test.tsan build/tsan
	BITNET_BUILD=build/tsan TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  build/lua_host.tsan $(BUSTED) $(TSAN_SPECS)

# Every kernel path this CPU runs against the C reference, bit for bit.
KTEST = build/kernels_test
KTEST_SRC = tests/kernels_test.c $(wildcard csrc/kernels/*.c) csrc/formats/floatfmt.c csrc/formats/gguf.c csrc/base/errbuf.c csrc/formats/mapfile.c
$(KTEST): $(KTEST_SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Icsrc -o $@ $(KTEST_SRC) -lm

test-kernels: $(KTEST)
	$(KTEST)

# The GGUF writer against the project's GGUF reader, under ASan + UBSan.
WTEST = build/gguf_writer_test
WTEST_SRC = tests/gguf_writer_test.c csrc/formats/gguf_writer.c csrc/formats/gguf.c csrc/base/errbuf.c
$(WTEST): $(WTEST_SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g $(SANITIZE) -Icsrc -o $@ $(WTEST_SRC)

test-writer: $(WTEST)
	$(WTEST)

# The grammar engine (csrc/grammar/) under ASan + UBSan: its front ends
# (GBNF, ECMA patterns; tests/grammar_front_test.c) and its masks against
# brute force over real vocabularies (tests/grammar_test.c).
GRAMMAR_SRC = $(wildcard csrc/grammar/*.c) $(wildcard csrc/tokenizer/*.c) $(wildcard csrc/formats/*.c) csrc/base/errbuf.c
GTEST = build/grammar_test
$(GTEST): tests/grammar_test.c $(GRAMMAR_SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g $(SANITIZE) -Icsrc -o $@ tests/grammar_test.c $(GRAMMAR_SRC) -lcjson -lm -lpthread
GFTEST = build/grammar_front_test
$(GFTEST): tests/grammar_front_test.c $(GRAMMAR_SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g $(SANITIZE) -Icsrc -o $@ tests/grammar_front_test.c $(GRAMMAR_SRC) -lcjson -lm -lpthread

JSTEST = build/json_schema_test
$(JSTEST): tests/json_schema_test.c $(GRAMMAR_SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g $(SANITIZE) -Icsrc -o $@ tests/json_schema_test.c $(GRAMMAR_SRC) -lcjson -lm -lpthread

test-grammar: $(GTEST) $(GFTEST) $(JSTEST)
	$(GFTEST)
	$(JSTEST) $(SHARED)/tokenizer-tests/llama3/tokenizer.json
	$(GTEST) $(SHARED)/tokenizer-tests

# Structured output on JSONSchemaBench's MaskBench protocol (not CI: about
# a minute): schemas passing, invalid instances accepted, mask and compile
# percentiles on the dev sample in ../shared/structured, Llama 3's vocabulary.
build/grammar_bench: bench/grammar_bench.c $(GRAMMAR_SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Icsrc -o $@ bench/grammar_bench.c $(GRAMMAR_SRC) -lcjson -lm -lpthread

bench-grammar: build/grammar_bench
	build/grammar_bench $(SHARED)/tokenizer-tests/llama3/tokenizer.json $(SHARED)/structured/maskbench-dev.jsonl \
	  --failures build/grammar_bench_failures.tsv

# The NEON paths cross-compiled for AArch64 and, where qemu-user is
# installed, run against the reference with and without the dot-product
# extension (Debian packages gcc-aarch64-linux-gnu, qemu-user).
NEON_CC ?= aarch64-linux-gnu-gcc
NEON_TEST = build/kernels_test.aarch64
check-neon:
	@mkdir -p build
	$(NEON_CC) $(WARN) -O2 -static -Icsrc -o $(NEON_TEST) $(KTEST_SRC) -lm
	@if command -v qemu-aarch64 >/dev/null 2>&1; then \
	  qemu-aarch64 -cpu max $(NEON_TEST) && qemu-aarch64 -cpu cortex-a53 $(NEON_TEST); \
	else echo "qemu-aarch64 is not installed: NEON kernels compiled, not run"; fi

# The speed benchmark (not part of CI): writes the synthetic 2B-4T-shaped
# model into bench/cache once (about 1.2 GB, plus converted variants), then
# measures; results in bench/RESULTS.md. BENCH_QUICK=1 for a smoke run.
GEN_SRC = bench/gen_model.c csrc/formats/gguf_writer.c csrc/formats/gguf.c csrc/base/errbuf.c csrc/formats/floatfmt.c
build/gen_model: $(GEN_SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Icsrc -o $@ $(GEN_SRC) -lm

build/bench: bench/bench.c $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -I$(LUA54_INC) -Icsrc -o $@ bench/bench.c $(SRC) -llua5.4 $(LIBS)

bench: build/gen_model build/bench bench-engine bench-grammar-decode
	build/bench

# The background engine's figures (streams, host stall, cancel, prefix
# reuse, verify cost, speculative decoding, saved sessions) on the same
# file; the speculative task reads Genesis 1 from Debian's bible-kjv.
SYNTH = bench/cache/synth-2b-i2_s-f16.gguf
$(SYNTH): | build/gen_model
	@mkdir -p $(dir $@)
	build/gen_model $@ 0 $(wildcard $(SHARED)/tokenizer-tests/ggml-vocab-llama3-bpe.gguf)

# What constrained decoding costs: decode tokens/s with and without a
# grammar on the same file (bench/grammar_decode_bench.lua).
bench-grammar-decode: $(SYNTH) $(LIB54)
	lua5.4 bench/grammar_decode_bench.lua $(SYNTH)

# bitnet pull of a 1 GiB file from the stand-in Hub against curl on the same
# server, and the pull's peak memory (bench/pull_bench.sh; not CI: writes
# 1 GiB into bench/cache/pull and about 2 GiB more while it runs).
bench-pull: $(LIB54)
	bash bench/pull_bench.sh

bench-engine: $(SYNTH) $(LIB54)
	BENCH_OUT=bench/cache/engine-results.md lua5.4 bench/engine_bench.lua

# The Neovim plugin's figures (bench/nvim_bench.lua; not CI): completion
# latency and tokens fed over 50 pauses (the shipped model, then the
# 2B-shaped file), and the largest UI gap while the 2B-shaped file
# generates. NVIM_BENCH_MODEL picks another file.
NVIM_BENCH_MODEL ?= $(SYNTH)
nvim-bench: $(NVIM_BENCH_MODEL) $(LIBJIT)
	env -u LD_PRELOAD NVIM_BENCH_MODEL=$(NVIM_BENCH_MODEL) nvim --headless --clean -u NONE \
	  --cmd "set rtp+=$(CURDIR)/nvim" -c "luafile bench/nvim_bench.lua"

# spec/nvim_spec.lua (tag nvim) starts Neovim on build/luajit: the LuaJIT run has it.
# The OpenResty server under load (not part of CI): 4 workers, 32 concurrent
# streams for 60 s, loopback only; tools/load_test.sh has the settings.
load-test: $(LIBJIT) $(LIB54)
	bash tools/load_test.sh

# The pseudo-terminal driver spec/repl_spec.lua types at `bitnet repl` with.
PTY_DRIVE = build/pty_drive
$(PTY_DRIVE): tests/pty_drive.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g -o $@ tests/pty_drive.c -lutil

# (the LuaJIT build too: `bitnet serve --config-only` checks for the library nginx will load)
test-lua54: $(LIB54) $(LIBJIT) $(PTY_DRIVE)
	BITNET_BUILD=build/lua5.4 lua5.4 $(BUSTED) --exclude-tags=nvim $(BUSTED_ARGS)

test-luajit: $(LIBJIT) $(PTY_DRIVE)
	BITNET_BUILD=build/luajit luajit $(BUSTED) $(BUSTED_ARGS)

# The interpreter is not built with ASan, so the runtime is preloaded.
# LSan does not scan threads' TLS (use_tls=0): with libcurl and OpenSSL
# dlopened beside core.so, GCC 12's LeakSanitizer on glibc 2.36 crashed in
# its tracer while reading dynamic TLS at exit ("Tracer caught signal 11"),
# depending on the heap's layout. Not scanning TLS can only add reports (an
# object reachable only from TLS counts as leaked); the loader's own
# bookkeeping, reachable that way, is suppressed (spec/support/lsan.supp).
test-asan: $(LIBASAN) $(PTY_DRIVE)
	BITNET_BUILD=build/asan LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=use_tls=0:suppressions=$(CURDIR)/spec/support/lsan.supp:print_suppressions=0 \
	  lua5.4 $(BUSTED) --exclude-tags=slow,noasan $(BUSTED_ARGS)

# Specs tagged timed bound a time for this machine's own speed (a 10 MB
# schema refused within 30 s); under valgrind's ~50x they cannot hold.
valgrind: $(LIB54) $(PTY_DRIVE)
	BITNET_BUILD=build/lua5.4 valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  lua5.4 $(BUSTED) --exclude-tags=slow,nvim,timed $(BUSTED_ARGS)

# Fuzzing with libFuzzer (clang): one target per input surface (fuzz/*.c,
# see fuzz/RESULTS.md). `make fuzz FUZZ_SECONDS=N` runs each for N seconds,
# niced, one at a time; new inputs go to build/fuzz/corpus/<target>, crashes
# to build/fuzz/crashes/<target>. Seeds come from ../shared and the shipped
# model (fuzz/make_seeds.lua). `make fuzz-regress` replays spec/data/fuzz.
FUZZ_CC ?= clang
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = gguf tok_gguf hf tok_hf encode template sampler gbnf schema
FUZZ_LIB_SRC = $(filter-out csrc/lua/%.c,$(SRC))
FUZZ_OBJ = $(patsubst csrc/%.c,build/fuzz/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_BIN = $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))
# target:max_len (model inputs are padded: headers and a little data; vocabularies cut to ~1000)
FUZZ_RUNS = gguf:65536 tok_gguf:65536 hf:65536 tok_hf:65536 encode:4096 template:8192 sampler:65536 gbnf:4096 schema:8192
SHARED ?= ../shared

# The grammar engine's internals (the regex algebra's hash-consing, the
# lexer's derivatives, the Earley chart, the token walk) compare node, state
# and item ids: tracing those comparisons told libFuzzer nothing and took
# half of the schema target's time. Their edges stay instrumented; the front
# ends that read the input (GBNF, JSON Schema, ECMA regex) keep trace-cmp.
FUZZ_NO_CMP = grammar/regex grammar/json_schema_rxalg grammar/lexer grammar/earley grammar/token_classes

build/fuzz/obj/%.o: csrc/%.c $(HDR) Makefile fuzz/coverage_ignore.txt
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(WARN) -Wno-unknown-attributes -g -O1 -fsanitize=fuzzer-no-link \
	  $(if $(filter $*,$(FUZZ_NO_CMP)),-fno-sanitize-coverage=trace-cmp) \
	  -fsanitize-coverage-ignorelist=fuzz/coverage_ignore.txt $(FUZZ_SAN) -Icsrc -c -o $@ $<

build/fuzz/libbitnet.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $(FUZZ_OBJ)

build/fuzz/fuzz_gguf build/fuzz/fuzz_tok_gguf: build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/gguf_mutator.c fuzz/fuzz_util.h build/fuzz/libbitnet.a
	$(FUZZ_CC) $(WARN) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) -Icsrc -o $@ $< fuzz/gguf_mutator.c build/fuzz/libbitnet.a $(LIBS)

build/fuzz/fuzz_template: fuzz/fuzz_template.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(WARN) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) -I$(LUA54_INC) -o $@ $< -llua5.4

build/fuzz/fuzz_gbnf build/fuzz/fuzz_schema: build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_grammar.h build/fuzz/libbitnet.a
	$(FUZZ_CC) $(WARN) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) -Icsrc -o $@ $< build/fuzz/libbitnet.a $(LIBS)

build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h build/fuzz/libbitnet.a
	$(FUZZ_CC) $(WARN) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) -Icsrc -o $@ $< build/fuzz/libbitnet.a $(LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz-seeds: fuzz/make_seeds.lua
	lua5.4 fuzz/make_seeds.lua $(SHARED) build/fuzz/seeds

# Each target alone for FUZZ_SECONDS, at the lowest priority, one process.
# No allocation stacks kept (malloc_context_size=0): recording one per
# malloc took a sixth of the schema target's time. A crash's report then
# lacks where the memory was allocated and freed: replay its input
# (build/fuzz/fuzz_T FILE) for the full report.
fuzz: fuzz-build fuzz-seeds
	@for r in $(FUZZ_RUNS); do t=$${r%%:*}; \
	  mkdir -p build/fuzz/corpus/$$t build/fuzz/crashes/$$t build/fuzz/logs spec/data/fuzz/$$t; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=malloc_context_size=0 nice -n 19 build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -jobs=1 -workers=1 -timeout=20 -rss_limit_mb=3072 \
	    -max_len=$${r#*:} -artifact_prefix=build/fuzz/crashes/$$t/ \
	    build/fuzz/corpus/$$t build/fuzz/seeds/$$t spec/data/fuzz/$$t >/dev/null 2>&1; \
	  mv fuzz-0.log build/fuzz/logs/$$t.log 2>/dev/null; \
	  grep -E '^#[0-9]+' build/fuzz/logs/$$t.log | tail -1; grep -E '^Done' build/fuzz/logs/$$t.log; \
	  grep -E 'ERROR|SUMMARY|deadly|timeout' build/fuzz/logs/$$t.log | head -3; \
	done

# Every saved regression input, once, through its target.
fuzz-regress: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  files=$$(ls spec/data/fuzz/$$t/* 2>/dev/null); \
	  if [ -n "$$files" ]; then build/fuzz/fuzz_$$t -rss_limit_mb=3072 $$files || exit 1; fi; \
	done

# Every template filter, test, global and method with every kind of argument (fuzz/template_probe.lua).
template-probe:
	lua5.4 fuzz/template_probe.lua lua
	luajit fuzz/template_probe.lua lua

clean:
	rm -rf build

# The soak run (not CI; tools/soak.lua): 1000 cycles of load, generate (sync
# and async), cancel, save/load a session, close. RSS must stay flat in the
# plain build (ASan's quarantine makes RSS meaningless there); ASan + UBSan
# run the full count with leak detection, valgrind memcheck a smaller one.
SOAK_CYCLES ?= 1000
SOAK_VALGRIND_CYCLES ?= 100
soak: $(LIB54) $(LIBASAN)
	BITNET_BUILD=build/lua5.4 lua5.4 bin/bitnet lua tools/soak.lua $(SOAK_CYCLES) 2048
	BITNET_BUILD=build/asan LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  lua5.4 bin/bitnet lua tools/soak.lua $(SOAK_CYCLES)
	BITNET_BUILD=build/lua5.4 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
	  lua5.4 bin/bitnet lua tools/soak.lua $(SOAK_VALGRIND_CYCLES)
