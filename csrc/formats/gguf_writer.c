#include "formats/gguf_writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_VERSION 3u

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf;

typedef struct {
    char *name;
    uint32_t type;
    int n_dims;
    uint64_t ne[4];
    uint64_t nbytes, offset;
} wtensor;

struct bn_gguf_writer {
    uint32_t alignment;
    buf kv;                 /* encoded key/value pairs */
    uint64_t n_kv;
    char **keys;            /* for duplicate checks */
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
    uint64_t data_size;     /* running offset of the next tensor */
    FILE *f;                /* set by bn_gw_begin */
    const char *what;
    size_t cur;             /* tensor being written */
    uint64_t cur_written;
    int failed;
};

static const uint8_t scalar_size[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static int put(buf *b, const void *p, size_t n) {
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) return 0;
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 1;
}

static int put_u32(buf *b, uint32_t v) { return put(b, &v, 4); }
static int put_u64(buf *b, uint64_t v) { return put(b, &v, 8); }
static int put_str(buf *b, const char *s, uint64_t n) { return put_u64(b, n) && put(b, s, (size_t)n); }

bn_gguf_writer *bn_gw_new(uint32_t alignment) {
    if (alignment == 0) alignment = 32;
    if (alignment & (alignment - 1)) return NULL;
    bn_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->alignment = alignment;
    if (alignment != 32 && !bn_gw_set_u32(w, "general.alignment", alignment, NULL)) {
        bn_gw_free(w);
        return NULL;
    }
    return w;
}

void bn_gw_free(bn_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

/* Starts a pair: checks the key, records it, encodes key and type. */
static int begin_kv(bn_gguf_writer *w, const char *key, uint32_t type, bn_err *err) {
    if (w->f) return bn_errf(err, "GGUF writer: metadata '%s' added after the header was written", key);
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return bn_errf(err, "GGUF writer: metadata key '%s' set twice", key);
    char **keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
    if (!keys) return bn_errf(err, "GGUF writer: out of memory");
    w->keys = keys;
    size_t n = strlen(key);
    char *k = malloc(n + 1);
    if (!k) return bn_errf(err, "GGUF writer: out of memory");
    memcpy(k, key, n + 1);
    if (!put_str(&w->kv, key, n) || !put_u32(&w->kv, type)) {
        free(k);
        return bn_errf(err, "GGUF writer: out of memory");
    }
    w->keys[w->n_kv++] = k;
    return 1;
}

static int oom(bn_err *err) { return bn_errf(err, "GGUF writer: out of memory"); }

int bn_gw_set_scalar(bn_gguf_writer *w, const char *key, uint32_t type, const void *v, bn_err *err) {
    if (type >= GGUF_T_COUNT || !scalar_size[type])
        return bn_errf(err, "GGUF writer: metadata '%s': type %u is not a numeric scalar", key, type);
    return begin_kv(w, key, type, err) && (put(&w->kv, v, scalar_size[type]) || oom(err));
}

int bn_gw_set_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_err *err) {
    return bn_gw_set_scalar(w, key, GGUF_T_U32, &v, err);
}
int bn_gw_set_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_err *err) {
    return bn_gw_set_scalar(w, key, GGUF_T_I32, &v, err);
}
int bn_gw_set_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_err *err) {
    return bn_gw_set_scalar(w, key, GGUF_T_U64, &v, err);
}
int bn_gw_set_f32(bn_gguf_writer *w, const char *key, float v, bn_err *err) {
    return bn_gw_set_scalar(w, key, GGUF_T_F32, &v, err);
}
int bn_gw_set_bool(bn_gguf_writer *w, const char *key, int v, bn_err *err) {
    uint8_t b = v ? 1 : 0;
    return bn_gw_set_scalar(w, key, GGUF_T_BOOL, &b, err);
}

int bn_gw_set_strn(bn_gguf_writer *w, const char *key, const char *s, uint64_t len, bn_err *err) {
    return begin_kv(w, key, GGUF_T_STRING, err) && (put_str(&w->kv, s, len) || oom(err));
}

int bn_gw_set_str(bn_gguf_writer *w, const char *key, const char *s, bn_err *err) {
    return bn_gw_set_strn(w, key, s, strlen(s), err);
}

int bn_gw_set_array(bn_gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n,
                    bn_err *err) {
    if (elem_type >= GGUF_T_COUNT || !scalar_size[elem_type])
        return bn_errf(err, "GGUF writer: metadata '%s': element type %u is not numeric", key, elem_type);
    if (n > SIZE_MAX / scalar_size[elem_type]) return oom(err);
    return begin_kv(w, key, GGUF_T_ARRAY, err) &&
           ((put_u32(&w->kv, elem_type) && put_u64(&w->kv, n) && put(&w->kv, data, (size_t)n * scalar_size[elem_type])) ||
            oom(err));
}

int bn_gw_set_str_array(bn_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                        uint64_t n, bn_err *err) {
    if (!begin_kv(w, key, GGUF_T_ARRAY, err)) return 0;
    if (!put_u32(&w->kv, GGUF_T_STRING) || !put_u64(&w->kv, n)) return oom(err);
    for (uint64_t i = 0; i < n; i++)
        if (!put_str(&w->kv, strs[i], lens ? lens[i] : strlen(strs[i]))) return oom(err);
    return 1;
}

/* Bytes one value of type t at pos occupies (the parser validated them). */
static size_t value_bytes(const bn_gguf *g, uint32_t t, size_t pos) {
    if (t == GGUF_T_STRING) {
        uint64_t len;
        memcpy(&len, g->data + pos, 8);
        return 8 + (size_t)len;
    }
    if (t != GGUF_T_ARRAY) return scalar_size[t];
    uint32_t et;
    uint64_t n;
    memcpy(&et, g->data + pos, 4);
    memcpy(&n, g->data + pos + 4, 8);
    size_t total = 12;
    if (et != GGUF_T_STRING && et != GGUF_T_ARRAY) return total + (size_t)n * scalar_size[et];
    for (uint64_t i = 0; i < n; i++) total += value_bytes(g, et, pos + total);
    return total;
}

int bn_gw_copy_kv(bn_gguf_writer *w, const bn_gguf *g, const bn_gguf_kv *kv, bn_err *err) {
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(kv->key.len > 255 ? 255 : kv->key.len), kv->key.ptr);
    size_t start = kv->type == GGUF_T_ARRAY ? kv->pos - 12 : kv->pos; /* arrays: from their element type */
    size_t n = value_bytes(g, kv->type, start);
    return begin_kv(w, key, kv->type, err) && (put(&w->kv, g->data + start, n) || oom(err));
}

static uint64_t align_up(uint64_t v, uint32_t a) { return (v + a - 1) / a * a; }

int bn_gw_add_tensor(bn_gguf_writer *w, const char *name, uint32_t ggml_type, int n_dims, const uint64_t *ne,
                     uint64_t nbytes, bn_err *err) {
    if (w->f) return bn_errf(err, "GGUF writer: tensor '%s' added after the header was written", name);
    if (n_dims < 1 || n_dims > 4) return bn_errf(err, "GGUF writer: tensor '%s' has %d dimensions", name, n_dims);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return bn_errf(err, "GGUF writer: tensor '%s' added twice", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        wtensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) return oom(err);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    size_t n = strlen(name);
    if (!(t->name = malloc(n + 1))) return oom(err);
    memcpy(t->name, name, n + 1);
    t->type = ggml_type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->ne[d] = ne[d];
    t->nbytes = nbytes;
    t->offset = w->data_size;
    w->data_size = align_up(w->data_size + nbytes, w->alignment);
    w->n_tensors++;
    return 1;
}

static int io_fail(bn_gguf_writer *w, bn_err *err) {
    w->failed = 1;
    return bn_errf(err, "%s: write failed: %s", w->what, strerror(errno ? errno : EIO));
}

static int pad(bn_gguf_writer *w, uint64_t n, bn_err *err) {
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        if (fwrite(zeros, 1, k, w->f) != k) return io_fail(w, err);
        n -= k;
    }
    return 1;
}

int bn_gw_begin(bn_gguf_writer *w, FILE *f, const char *what, bn_err *err) {
    if (w->f) return bn_errf(err, "%s: GGUF header written twice", what);
    buf h = {0};
    int ok = put(&h, GGUF_MAGIC, 4) && put_u32(&h, GGUF_VERSION) && put_u64(&h, w->n_tensors) &&
             put_u64(&h, w->n_kv) && put(&h, w->kv.p, w->kv.len);
    for (size_t i = 0; ok && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        ok = put_str(&h, t->name, strlen(t->name)) && put_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; ok && d < t->n_dims; d++) ok = put_u64(&h, t->ne[d]);
        ok = ok && put_u32(&h, t->type) && put_u64(&h, t->offset);
    }
    if (!ok) {
        free(h.p);
        return oom(err);
    }
    w->f = f;
    w->what = what;
    errno = 0;
    int wrote = fwrite(h.p, 1, h.len, f) == h.len;
    uint64_t header = h.len;
    free(h.p);
    if (!wrote) return io_fail(w, err);
    return pad(w, align_up(header, w->alignment) - header, err);
}

int bn_gw_write(bn_gguf_writer *w, const void *data, size_t n, bn_err *err) {
    if (!w->f || w->failed) return bn_errf(err, "GGUF writer: data written before the header or after a failure");
    const uint8_t *p = data;
    while (n) {
        if (w->cur >= w->n_tensors) return bn_errf(err, "%s: more tensor data than declared", w->what);
        wtensor *t = &w->tensors[w->cur];
        uint64_t room = t->nbytes - w->cur_written;
        size_t k = n < room ? n : (size_t)room;
        errno = 0;
        if (k && fwrite(p, 1, k, w->f) != k) return io_fail(w, err);
        p += k;
        n -= k;
        w->cur_written += k;
        if (w->cur_written == t->nbytes) { /* tensor complete: pad to the next one */
            if (!pad(w, align_up(t->nbytes, w->alignment) - t->nbytes, err)) return 0;
            w->cur++;
            w->cur_written = 0;
        }
    }
    /* zero-byte tensors complete without a write */
    while (w->cur < w->n_tensors && w->tensors[w->cur].nbytes == 0) w->cur++;
    return 1;
}

int bn_gw_finish(bn_gguf_writer *w, bn_err *err) {
    if (!w->f || w->failed) return bn_errf(err, "GGUF writer: nothing written, or a write failed");
    if (!bn_gw_write(w, NULL, 0, err)) return 0;
    if (w->cur != w->n_tensors)
        return bn_errf(err, "%s: tensor '%s' is missing %llu bytes of data", w->what, w->tensors[w->cur].name,
                       (unsigned long long)(w->tensors[w->cur].nbytes - w->cur_written));
    errno = 0;
    if (fflush(w->f) != 0) return io_fail(w, err);
    return 1;
}
