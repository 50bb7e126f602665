/* fuzz_encode.c: encode and decode arbitrary bytes with real vocabularies:
 * LLaMA-3's byte-level BPE and LLaMA's SentencePiece (paths from
 * BITNET_FUZZ_BPE / BITNET_FUZZ_SPM, defaults in ../shared). The first
 * byte picks the vocabulary and options; the rest is the text, and also
 * read as token ids to decode. Byte-level BPE must give the text back.
 *
 * State: the two vocabularies, loaded once per process. Building LLaMA-3's
 * takes about a second, and libFuzzer's API gives a harness nowhere to keep
 * anything but a static set in LLVMFuzzerInitialize; they are read-only
 * afterwards. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

static bn_tokenizer *vocab[2]; /* set once in LLVMFuzzerInitialize, then only read */

static bn_tokenizer *load(const char *env, const char *def) {
    const char *p = getenv(env) ? getenv(env) : def;
    bn_err err = {0};
    bn_tokenizer *t = bn_tokenizer_load(p, &err);
    if (!t) {
        fprintf(stderr, "fuzz_encode: %s (set %s)\n", err.msg, env);
        exit(1);
    }
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    vocab[0] = load("BITNET_FUZZ_BPE", "../shared/tokenizer-tests/ggml-vocab-llama3-bpe.gguf");
    vocab[1] = load("BITNET_FUZZ_SPM", "../shared/tokenizer-tests/ggml-vocab-llama-spm.gguf");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int flags = data[0], spm = flags & 1, special = (flags >> 1) & 1, bos = (flags >> 2) % 3 - 1;
    const bn_tokenizer *t = vocab[spm];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    bn_err err = {0};
    bn_ids ids = {0};
    bn_bytes out = {0};
    size_t bad;
    bn_encode_opts o = {.add_bos = special ? bos : 0, .parse_special = special};
    if (!bn_tokenizer_encode(t, text, len, &o, &ids, &err)) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        abort();
    }
    for (size_t i = 0; i < ids.n; i++)
        if (ids.v[i] < 0 || ids.v[i] >= bn_tokenizer_n_vocab(t)) abort();
    int r = bn_tokenizer_decode(t, ids.v, ids.n, special, spm, &out, &bad);
    if (r != 1) abort();
    /* byte-level BPE spells every byte: the text comes back as it was */
    if (!spm && !special && (out.n != len || (len && memcmp(out.p, text, len) != 0))) {
        fprintf(stderr, "round trip changed the text (%zu bytes in, %zu out)\n", len, out.n);
        abort();
    }
    bn_ids_free(&ids);
    bn_bytes_free(&out);
    /* the same bytes as ids, some out of range: decode stops at the first bad one */
    size_t n = len / 4;
    int32_t *raw = malloc((n ? n : 1) * sizeof *raw);
    if (!raw) return 0;
    memcpy(raw, text, n * 4);
    for (size_t i = 0; i < n; i++) raw[i] = (int32_t)((uint32_t)raw[i] % (uint32_t)(bn_tokenizer_n_vocab(t) + 8));
    r = bn_tokenizer_decode(t, raw, n, special, spm, &out, &bad);
    if (r == 0 && (bad >= n || raw[bad] < bn_tokenizer_n_vocab(t))) abort();
    for (size_t i = 0; i < n && i < 64; i++) {
        size_t pl;
        bn_tokenizer_piece(t, raw[i], &pl);
        bn_tokenizer_text(t, raw[i], &pl);
        bn_tokenizer_is_eog(t, raw[i]);
    }
    bn_bytes_free(&out);
    free(raw);
    return 0;
}
