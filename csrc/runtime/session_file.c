/* session_file.c: the session file (session_file.h). Little-endian:
 *   "BNSESSN\0"  magic (8 bytes)
 *   u32 version (1), u32 kv_f16, u32 n_ctx, u32 pos, u32 have_logits,
 *   u32 n_layers, n_kv_heads, head_dim, n_vocab
 *   u64 model fingerprint
 *   i32 tokens[pos]
 *   for each layer, each KV head: K[pos][head_dim], then V[pos][head_dim],
 *     as the cache stores them (f32, or f16 when kv_f16)
 *   f32 logits[n_vocab] when have_logits
 *   u64 FNV-1a of every byte above
 * Only the positions held are written, in position order (the cache's K
 * tiles are undone), so a file is independent of BN_KV_TILE. */
#include "runtime/session_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MAGIC[8] = {'B', 'N', 'S', 'E', 'S', 'S', 'N', 0};
#define VERSION 1u
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static uint64_t hash_sample(uint64_t h, const uint8_t *p, size_t n) {
    size_t take = n < 4096 ? n : 4096;
    h = fnv(h, p, take);
    if (n > take) h = fnv(h, p + n - take, take); /* the end too */
    return fnv(h, &n, sizeof n);
}

uint64_t bn_model_fingerprint(const bn_model *m) {
    const bn_hparams *hp = &m->hp;
    uint64_t h = fnv(FNV_OFFSET, hp, sizeof *hp);
    h = hash_sample(h, (const uint8_t *)m->output_norm, sizeof(float) * (size_t)hp->n_embd);
    h = hash_sample(h, m->tok_embd.data, m->tok_embd.row_bytes * (size_t)m->tok_embd.rows);
    for (int l = 0; l < hp->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        const bn_ternary *mats[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++) {
            h = hash_sample(h, mats[i]->codes, mats[i]->row_bytes * (size_t)mats[i]->rows);
            h = fnv(h, &mats[i]->scale, sizeof mats[i]->scale);
        }
    }
    return h;
}

/* ---- writing ---- */

typedef struct {
    FILE *f;
    uint64_t sum;
    int failed;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    w->sum = fnv(w->sum, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->failed = 1;
}

static void put_u32(writer *w, uint32_t v) { put(w, &v, 4); }

/* One (layer, head)'s K or V for positions 0..pos-1 in position order. */
static void put_kv(writer *w, const bn_session *s, int v, int l, int h, void *buf) {
    int hd = s->model->hp.head_dim;
    size_t esz = s->kv_f16 ? 2 : 4, row = (size_t)hd * esz;
    const char *c = bn_session_kv(s, v, l, h);
    if (v) {
        put(w, c, row * (size_t)s->pos);
        return;
    }
    for (int p = 0; p < s->pos; p++) {
        for (int d = 0; d < hd; d++) {
            size_t i = (size_t)(p / BN_KV_TILE) * (size_t)hd * BN_KV_TILE + (size_t)d * BN_KV_TILE + (size_t)(p % BN_KV_TILE);
            memcpy((char *)buf + (size_t)d * esz, c + i * esz, esz);
        }
        put(w, buf, row);
    }
}

int bn_session_save(const bn_session *s, const char *path, bn_err *err) {
    const bn_hparams *hp = &s->model->hp;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 6);
    if (!tmp) return bn_errf(err, "%s: out of memory", path), -1;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".part", 6);
    writer w = {fopen(tmp, "wb"), FNV_OFFSET, 0};
    if (!w.f) {
        bn_errf(err, "%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    char buf[1024 * 4];
    put(&w, MAGIC, sizeof MAGIC);
    put_u32(&w, VERSION);
    put_u32(&w, (uint32_t)s->kv_f16);
    put_u32(&w, (uint32_t)s->n_ctx);
    put_u32(&w, (uint32_t)s->pos);
    put_u32(&w, (uint32_t)(s->have_logits != 0));
    put_u32(&w, (uint32_t)hp->n_layers);
    put_u32(&w, (uint32_t)hp->n_kv_heads);
    put_u32(&w, (uint32_t)hp->head_dim);
    put_u32(&w, (uint32_t)hp->n_vocab);
    uint64_t fp = bn_model_fingerprint(s->model);
    put(&w, &fp, 8);
    put(&w, s->tokens, sizeof(int32_t) * (size_t)s->pos);
    for (int l = 0; l < hp->n_layers; l++)
        for (int h = 0; h < hp->n_kv_heads; h++) {
            put_kv(&w, s, 0, l, h, buf);
            put_kv(&w, s, 1, l, h, buf);
        }
    if (s->have_logits) put(&w, s->logits, sizeof(float) * (size_t)hp->n_vocab);
    uint64_t sum = w.sum;
    put(&w, &sum, 8);
    int failed = w.failed;
    if (fclose(w.f) != 0) failed = 1;
    if (failed || rename(tmp, path) != 0) {
        bn_errf(err, "%s: cannot write: %s", failed ? tmp : path, strerror(errno ? errno : EIO));
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* ---- reading ---- */

typedef struct {
    FILE *f;
    uint64_t sum;
    const char *path;
    bn_err *err;
    int failed;
} reader;

static int get(reader *r, void *p, size_t n) {
    if (r->failed) return 0;
    if (n && fread(p, 1, n, r->f) != n) {
        r->failed = 1;
        bn_errf(r->err, "%s: truncated session file", r->path);
        return 0;
    }
    r->sum = fnv(r->sum, p, n);
    return 1;
}

static uint32_t get_u32(reader *r) {
    uint32_t v = 0;
    get(r, &v, 4);
    return v;
}

static void get_kv(reader *r, bn_session *s, int v, int l, int h, int pos, void *buf) {
    int hd = s->model->hp.head_dim;
    size_t esz = s->kv_f16 ? 2 : 4, row = (size_t)hd * esz;
    char *c = bn_session_kv(s, v, l, h);
    if (v) {
        get(r, c, row * (size_t)pos);
        return;
    }
    for (int p = 0; p < pos; p++) {
        if (!get(r, buf, row)) return;
        for (int d = 0; d < hd; d++) {
            size_t i = (size_t)(p / BN_KV_TILE) * (size_t)hd * BN_KV_TILE + (size_t)d * BN_KV_TILE + (size_t)(p % BN_KV_TILE);
            memcpy(c + i * esz, (char *)buf + (size_t)d * esz, esz);
        }
    }
}

bn_session *bn_session_load(bn_model *m, const char *path, int n_ctx, bn_err *err) {
    const bn_hparams *hp = &m->hp;
    reader r = {fopen(path, "rb"), FNV_OFFSET, path, err, 0};
    if (!r.f) {
        bn_errf(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    bn_session *s = NULL;
    char magic[8], buf[1024 * 4];
    if (!get(&r, magic, 8) || memcmp(magic, MAGIC, 8) != 0) {
        bn_errf(err, "%s: not a bitnet session file", path);
        goto fail;
    }
    uint32_t version = get_u32(&r);
    if (!r.failed && version != VERSION) {
        bn_errf(err, "%s: session file version %u; this build reads version %u", path, version, VERSION);
        goto fail;
    }
    uint32_t kv_f16 = get_u32(&r), saved_ctx = get_u32(&r), pos = get_u32(&r), have_logits = get_u32(&r);
    uint32_t n_layers = get_u32(&r), n_kv = get_u32(&r), hd = get_u32(&r), n_vocab = get_u32(&r);
    uint64_t fp = 0;
    get(&r, &fp, 8);
    if (r.failed) goto fail;
    if (n_layers != (uint32_t)hp->n_layers || n_kv != (uint32_t)hp->n_kv_heads || hd != (uint32_t)hp->head_dim ||
        n_vocab != (uint32_t)hp->n_vocab || fp != bn_model_fingerprint(m)) {
        bn_errf(err, "%s: the session was saved with another model", path);
        goto fail;
    }
    if (kv_f16 > 1 || have_logits > 1 || saved_ctx == 0 || saved_ctx > (1u << 20) || pos > saved_ctx) {
        bn_errf(err, "%s: corrupt session header", path);
        goto fail;
    }
    if (n_ctx == 0) n_ctx = (int)saved_ctx;
    if ((uint32_t)n_ctx < pos) {
        bn_errf(err, "%s: the session holds %u positions; n_ctx %d is smaller", path, pos, n_ctx);
        goto fail;
    }
    bn_session_opts o = {n_ctx, (int)kv_f16};
    if (!(s = bn_session_open(m, &o, err))) goto fail;
    get(&r, s->tokens, sizeof(int32_t) * pos);
    for (uint32_t i = 0; i < pos && !r.failed; i++)
        if (s->tokens[i] < 0 || s->tokens[i] >= hp->n_vocab) {
            bn_errf(err, "%s: corrupt session: token %d at position %u", path, s->tokens[i], i);
            goto fail;
        }
    for (int l = 0; l < hp->n_layers; l++)
        for (int h = 0; h < hp->n_kv_heads; h++) {
            get_kv(&r, s, 0, l, h, (int)pos, buf);
            get_kv(&r, s, 1, l, h, (int)pos, buf);
        }
    if (have_logits) get(&r, s->logits, sizeof(float) * (size_t)hp->n_vocab);
    uint64_t want = r.sum, sum = 0;
    get(&r, &sum, 8);
    if (r.failed) goto fail;
    if (sum != want || fgetc(r.f) != EOF) {
        bn_errf(err, "%s: corrupt session file (checksum mismatch)", path);
        goto fail;
    }
    fclose(r.f);
    s->pos = (int)pos;
    s->have_logits = (int)have_logits;
    return s;
fail:
    bn_session_free(s);
    fclose(r.f);
    return NULL;
}
