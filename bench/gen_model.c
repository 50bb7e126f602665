/* gen_model.c: writes a synthetic BitNet b1.58 model of
 * microsoft/bitnet-b1.58-2B-4T's shape (hidden 2560, 30 layers, 20 heads,
 * 5 KV heads, FFN 6912, vocabulary 128256, tied embeddings, squared ReLU)
 * with random ternary weights, as I2_S with F16 embeddings: the layout of
 * the official GGUF. Speed is measured on the same work the real model
 * does; the values are meaningless. Other formats are made from this file
 * by bn_convert_model (bench.c).
 *
 *   gen_model OUT.gguf [layers [VOCAB.gguf]]
 *
 * layers: fewer for a quick check (0: all 30). VOCAB.gguf: a file whose
 * tokenizer.* keys are copied in (the Llama 3 vocabulary of 128256 tokens,
 * the 2B-4T's own, from ../shared), so servers and chats can run on the
 * file too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"

enum { E = 2560, L_DEFAULT = 30, H = 20, KVH = 5, HD = 128, F = 6912, V = 128256 };

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Copies the tokenizer.* keys of the GGUF file at `path` into w. */
static int copy_vocab(bn_gguf_writer *w, const char *path, bn_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_errf(err, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = size > 0 ? malloc((size_t)size) : NULL;
    int ok = data && fread(data, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    if (!ok) {
        free(data);
        return bn_errf(err, "%s: cannot read", path);
    }
    bn_gguf g;
    ok = bn_gguf_parse(&g, data, (size_t)size, path, err);
    for (uint64_t i = 0; ok && i < g.n_kv; i++)
        if (g.kv[i].key.len > 10 && memcmp(g.kv[i].key.ptr, "tokenizer.", 10) == 0) ok = bn_gw_copy_kv(w, &g, &g.kv[i], err);
    if (g.kv) bn_gguf_free(&g);
    free(data); /* bn_gw_copy_kv copied the values */
    return ok;
}

static int die(const bn_err *err) {
    fprintf(stderr, "gen_model: %s\n", err->msg);
    return 1;
}

#define CHUNK (1 << 20)

/* rows x cols ternary weights: random codes 0..2 in every 2-bit field,
 * then the f32 scale and the 28 bytes of padding of the I2_S tail. */
static int write_i2s(bn_gguf_writer *w, uint8_t *buf, int64_t rows, int64_t cols, bn_err *err) {
    static uint8_t valid[81];
    for (int i = 0; i < 81; i++) valid[i] = (uint8_t)((i / 27) << 6 | (i / 9 % 3) << 4 | (i / 3 % 3) << 2 | (i % 3));
    size_t left = (size_t)(rows * cols / 4);
    while (left) {
        size_t n = left < CHUNK ? left : CHUNK;
        for (size_t i = 0; i < n; i++) buf[i] = valid[rnd() % 81];
        if (!bn_gw_write(w, buf, n, err)) return 0;
        left -= n;
    }
    uint8_t tail[32] = {0};
    float scale = 1.0f / sqrtf((float)cols);
    memcpy(tail, &scale, 4);
    return bn_gw_write(w, tail, 32, err);
}

static int write_ones(bn_gguf_writer *w, int64_t n, bn_err *err) {
    float one = 1.0f;
    for (int64_t i = 0; i < n; i++)
        if (!bn_gw_write(w, &one, 4, err)) return 0;
    return 1;
}

/* Embeddings: f16 values of random sign and magnitude within about
 * [2^-8, 2^-4), like a trained model's small entries. */
static int write_embd(bn_gguf_writer *w, uint8_t *buf, bn_err *err) {
    size_t left = (size_t)V * E * 2;
    while (left) {
        size_t n = left < CHUNK ? left : CHUNK;
        uint16_t *h = (uint16_t *)buf;
        for (size_t i = 0; i < n / 2; i++) {
            uint64_t r = rnd();
            h[i] = (uint16_t)((r & 0x8000) | (uint16_t)((7 + (r >> 16) % 4) << 10) | ((r >> 32) & 0x3ff));
        }
        if (!bn_gw_write(w, buf, n, err)) return 0;
        left -= n;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gen_model OUT.gguf [layers [VOCAB.gguf]]\n");
        return 2;
    }
    int layers = argc > 2 ? atoi(argv[2]) : L_DEFAULT;
    if (layers < 1 || layers > L_DEFAULT) layers = L_DEFAULT;
    bn_err err = {0};
    bn_gguf_writer *w = bn_gw_new(32);
    uint8_t *buf = malloc(CHUNK);
    if (!w || !buf) {
        fprintf(stderr, "gen_model: out of memory\n");
        return 1;
    }
    const char *a = "bitnet-b1.58";
    char key[96];
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", a, s), key)
    if (!bn_gw_set_str(w, "general.architecture", a, &err) || !bn_gw_set_str(w, "general.name", "synthetic 2B-4T shape", &err) ||
        !bn_gw_set_u32(w, KEY("block_count"), (uint32_t)layers, &err) || !bn_gw_set_u32(w, KEY("embedding_length"), E, &err) ||
        !bn_gw_set_u32(w, KEY("feed_forward_length"), F, &err) || !bn_gw_set_u32(w, KEY("attention.head_count"), H, &err) ||
        !bn_gw_set_u32(w, KEY("attention.head_count_kv"), KVH, &err) || !bn_gw_set_u32(w, KEY("context_length"), 4096, &err) ||
        !bn_gw_set_u32(w, KEY("vocab_size"), V, &err) || !bn_gw_set_f32(w, KEY("rope.freq_base"), 500000.0f, &err) ||
        !bn_gw_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f, &err))
        return die(&err);
    if (argc > 3 && !copy_vocab(w, argv[3], &err)) return die(&err);
    uint64_t ne[2];
    ne[0] = E, ne[1] = V;
    if (!bn_gw_add_tensor(w, "token_embd.weight", GGML_F16, 2, ne, (uint64_t)E * V * 2, &err)) return die(&err);
    ne[0] = E;
    if (!bn_gw_add_tensor(w, "output_norm.weight", GGML_F32, 1, ne, E * 4, &err)) return die(&err);
    static const struct { const char *name; int64_t in, out; } lin[] = {
        {"attn_q", E, H * HD}, {"attn_k", E, KVH * HD}, {"attn_v", E, KVH * HD}, {"attn_output", H * HD, E},
        {"ffn_gate", E, F},    {"ffn_up", E, F},        {"ffn_down", F, E}};
    char name[96];
    for (int l = 0; l < layers; l++) {
        static const struct { const char *name; int64_t n; } norms[] = {
            {"attn_norm", E}, {"attn_sub_norm", H * HD}, {"ffn_norm", E}, {"ffn_sub_norm", F}};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, norms[i].name);
            ne[0] = (uint64_t)norms[i].n;
            if (!bn_gw_add_tensor(w, name, GGML_F32, 1, ne, ne[0] * 4, &err)) return die(&err);
        }
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lin[i].name);
            ne[0] = (uint64_t)lin[i].in, ne[1] = (uint64_t)lin[i].out;
            if (!bn_gw_add_tensor(w, name, GGML_I2_S, 2, ne, ne[0] * ne[1] / 4 + 32, &err)) return die(&err);
        }
    }
    char part[4096];
    snprintf(part, sizeof part, "%s.part", argv[1]);
    FILE *f = fopen(part, "wb");
    if (!f) {
        perror(part);
        return 1;
    }
    if (!bn_gw_begin(w, f, part, &err) || !write_embd(w, buf, &err) || !write_ones(w, E, &err)) return die(&err);
    for (int l = 0; l < layers; l++) {
        static const int64_t nn[4] = {E, H * HD, E, F};
        for (int i = 0; i < 4; i++)
            if (!write_ones(w, nn[i], &err)) return die(&err);
        for (int i = 0; i < 7; i++)
            if (!write_i2s(w, buf, lin[i].out, lin[i].in, &err)) return die(&err);
    }
    if (!bn_gw_finish(w, &err)) return die(&err);
    if (fclose(f) != 0 || rename(part, argv[1]) != 0) {
        perror(argv[1]);
        return 1;
    }
    bn_gw_free(w);
    free(buf);
    return 0;
}
