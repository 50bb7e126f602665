#include "formats/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_DEPTH 8       /* nested arrays deeper than this are refused */

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *name;
    bn_err *err;
} reader;

static int need(reader *r, uint64_t n, const char *what) {
    if (n > r->size - r->pos)
        return bn_errf(r->err, "%s: truncated file: %s at offset %zu needs %llu bytes, %zu left",
                       r->name, what, r->pos, (unsigned long long)n, r->size - r->pos);
    return 1;
}

static int rd_u32(reader *r, uint32_t *v, const char *what) {
    if (!need(r, 4, what)) return 0;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return 1;
}

static int rd_u64(reader *r, uint64_t *v, const char *what) {
    if (!need(r, 8, what)) return 0;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return 1;
}

static int rd_str(reader *r, bn_str *s, const char *what) {
    uint64_t len;
    if (!rd_u64(r, &len, what)) return 0;
    if (!need(r, len, what)) return 0;
    s->ptr = (const char *)(r->p + r->pos);
    s->len = len;
    r->pos += (size_t)len;
    return 1;
}

static const uint8_t scalar_size[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Skips one value of type t (validating nested arrays and string lengths). */
static int skip_value(reader *r, uint32_t t, int depth, const char *key) {
    if (t >= GGUF_T_COUNT)
        return bn_errf(r->err, "%s: metadata '%s' has unknown value type %u", r->name, key, t);
    if (t == GGUF_T_STRING) {
        bn_str s;
        return rd_str(r, &s, "metadata string");
    }
    if (t != GGUF_T_ARRAY) return need(r, scalar_size[t], "metadata value") && (r->pos += scalar_size[t], 1);
    if (depth >= GGUF_MAX_DEPTH)
        return bn_errf(r->err, "%s: metadata '%s' nests arrays deeper than %d", r->name, key, GGUF_MAX_DEPTH);
    uint32_t et;
    uint64_t n;
    if (!rd_u32(r, &et, "array type") || !rd_u64(r, &n, "array length")) return 0;
    if (et >= GGUF_T_COUNT)
        return bn_errf(r->err, "%s: metadata '%s' has unknown array element type %u", r->name, key, et);
    if (et != GGUF_T_STRING && et != GGUF_T_ARRAY) {
        uint64_t bytes = n * scalar_size[et];
        if (n > (r->size - r->pos) / scalar_size[et]) return need(r, UINT64_MAX, "array data");
        r->pos += (size_t)bytes;
        return 1;
    }
    /* each string or array element takes at least 8 bytes: bound the loop */
    if (n > (r->size - r->pos) / 8)
        return bn_errf(r->err, "%s: truncated file: metadata '%s' claims %llu elements", r->name, key,
                       (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++)
        if (!skip_value(r, et, depth + 1, key)) return 0;
    return 1;
}

static const struct { uint32_t id; const char *name; uint32_t blck, bytes; } ggml_types[] = {
    {GGML_F32, "F32", 1, 4},       {GGML_F16, "F16", 1, 2},
    {GGML_Q4_0, "Q4_0", 0, 0},     {GGML_Q4_1, "Q4_1", 0, 0},
    {GGML_Q5_0, "Q5_0", 0, 0},     {GGML_Q5_1, "Q5_1", 0, 0},
    {GGML_Q8_0, "Q8_0", 32, 34},   {GGML_Q8_1, "Q8_1", 0, 0},
    {GGML_Q2_K, "Q2_K", 0, 0},     {GGML_Q3_K, "Q3_K", 0, 0},
    {GGML_Q4_K, "Q4_K", 256, 144}, {GGML_Q5_K, "Q5_K", 0, 0},
    {GGML_Q6_K, "Q6_K", 256, 210}, {GGML_Q8_K, "Q8_K", 0, 0},
    {GGML_BF16, "BF16", 1, 2},     {GGML_TQ1_0, "TQ1_0", 256, 54},
    {GGML_TQ2_0, "TQ2_0", 256, 66}, {GGML_I2_S, "I2_S", 128, 32},
};

const char *bn_ggml_type_name(uint32_t type) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == type) return ggml_types[i].name;
    return NULL;
}

int bn_ggml_block(uint32_t type, uint32_t *blck, uint32_t *bytes) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == type && ggml_types[i].blck) {
            *blck = ggml_types[i].blck;
            *bytes = ggml_types[i].bytes;
            return 1;
        }
    return 0;
}

int bn_str_eq(bn_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

static int str_eq2(bn_str a, bn_str b) { return a.len == b.len && memcmp(a.ptr, b.ptr, (size_t)a.len) == 0; }

/* Computes the bytes a tensor occupies; 0 with an error if the shape does
 * not fit the type. */
static int tensor_bytes(reader *r, bn_gguf_tensor *t) {
    const char *tn = bn_ggml_type_name(t->type);
    uint32_t blck, bytes;
    if (!tn)
        return bn_errf(r->err, "%s: tensor '%.*s' has unknown type %u", r->name, (int)t->name.len,
                       t->name.ptr, t->type);
    if (!bn_ggml_block(t->type, &blck, &bytes))
        return bn_errf(r->err, "%s: tensor '%.*s' has type %s, which bitnet does not read", r->name,
                       (int)t->name.len, t->name.ptr, tn);
    uint64_t rows = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
    if (t->ne[0] % blck)
        return bn_errf(r->err, "%s: tensor '%.*s' (%s) has rows of %llu elements, not a multiple of %u",
                       r->name, (int)t->name.len, t->name.ptr, tn, (unsigned long long)t->ne[0], blck);
    uint64_t row_bytes = t->ne[0] / blck * bytes;
    if (rows && row_bytes > (uint64_t)SIZE_MAX / rows)
        return bn_errf(r->err, "%s: tensor '%.*s' is too large", r->name, (int)t->name.len, t->name.ptr);
    uint64_t total = row_bytes * rows;
    /* I2_S keeps one f32 scale after the codes (then padding to 32 bytes,
     * which a file may omit at its very end) */
    if (t->type == GGML_I2_S) total += 4;
    if (total > r->size)
        return bn_errf(r->err, "%s: truncated file: tensor '%.*s' needs %llu bytes, more than the file's %zu", r->name,
                       (int)t->name.len, t->name.ptr, (unsigned long long)total, r->size);
    t->nbytes = (size_t)total;
    return 1;
}

static int cmp_offset(const void *a, const void *b) {
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a, *y = *(const bn_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int bn_gguf_parse(bn_gguf *g, const uint8_t *data, size_t size, const char *name, bn_err *err) {
    memset(g, 0, sizeof *g);
    g->data = data;
    g->size = size;
    reader r = {data, size, 0, name, err};
    uint32_t magic;
    if (size < 4 || (memcpy(&magic, data, 4), magic != GGUF_MAGIC))
        return bn_errf(err, "%s: not a GGUF file (bad magic)", name);
    r.pos = 4;
    if (!rd_u32(&r, &g->version, "version")) return 0;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return bn_errf(err, "%s: big-endian GGUF files are not supported", name);
    if (g->version != 2 && g->version != 3)
        return bn_errf(err, "%s: unsupported GGUF version %u (2 and 3 are read)", name, g->version);
    if (!rd_u64(&r, &g->n_tensors, "tensor count") || !rd_u64(&r, &g->n_kv, "metadata count")) return 0;
    /* each metadata pair takes >= 13 bytes and each tensor info >= 32 */
    if (g->n_kv > (size - r.pos) / 13)
        return bn_errf(err, "%s: truncated file: header claims %llu metadata entries", name,
                       (unsigned long long)g->n_kv);
    if (g->n_tensors > (size - r.pos) / 32)
        return bn_errf(err, "%s: truncated file: header claims %llu tensors", name,
                       (unsigned long long)g->n_tensors);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) {
        bn_gguf_free(g);
        return bn_errf(err, "%s: out of memory reading the header", name);
    }
    char keybuf[96];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        bn_gguf_kv *kv = &g->kv[i];
        if (!rd_str(&r, &kv->key, "metadata key") || !rd_u32(&r, &kv->type, "metadata type")) goto fail;
        snprintf(keybuf, sizeof keybuf, "%.*s", (int)(kv->key.len > 80 ? 80 : kv->key.len), kv->key.ptr);
        for (uint64_t j = 0; j < i; j++)
            if (str_eq2(g->kv[j].key, kv->key)) {
                bn_errf(err, "%s: metadata key '%s' appears twice", name, keybuf);
                goto fail;
            }
        if (kv->type == GGUF_T_ARRAY) {
            size_t start = r.pos;
            if (!rd_u32(&r, &kv->arr_type, "array type") || !rd_u64(&r, &kv->count, "array length")) goto fail;
            kv->pos = r.pos;
            r.pos = start;
        } else {
            kv->pos = r.pos;
        }
        if (!skip_value(&r, kv->type, 0, keybuf)) goto fail;
    }
    int64_t align = 32;
    int ar = bn_gguf_get_int(g, "general.alignment", &align);
    if (ar < 0 || (ar > 0 && (align <= 0 || align > (1 << 20) || (align & (align - 1))))) {
        bn_errf(err, "%s: general.alignment must be a power of two up to 1 MiB", name);
        goto fail;
    }
    g->alignment = (uint32_t)align;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        uint64_t off;
        if (!rd_str(&r, &t->name, "tensor name") || !rd_u32(&r, &t->n_dims, "tensor dims")) goto fail;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) {
            bn_errf(err, "%s: tensor '%.*s' has %u dimensions (1 to 4 allowed)", name, (int)t->name.len,
                    t->name.ptr, t->n_dims);
            goto fail;
        }
        uint64_t elems = 1;
        for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (!rd_u64(&r, &t->ne[d], "tensor shape")) goto fail;
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) || elems > ((uint64_t)1 << 40) / t->ne[d]) {
                bn_errf(err, "%s: tensor '%.*s' has an impossible shape", name, (int)t->name.len, t->name.ptr);
                goto fail;
            }
            elems *= t->ne[d];
        }
        if (!rd_u32(&r, &t->type, "tensor type") || !rd_u64(&r, &off, "tensor offset")) goto fail;
        if (off % g->alignment) {
            bn_errf(err, "%s: tensor '%.*s' data offset %llu is not aligned to %u", name, (int)t->name.len,
                    t->name.ptr, (unsigned long long)off, g->alignment);
            goto fail;
        }
        t->offset = (size_t)(off > SIZE_MAX ? SIZE_MAX : off);
        for (uint64_t j = 0; j < i; j++)
            if (str_eq2(g->tensors[j].name, t->name)) {
                bn_errf(err, "%s: tensor '%.*s' appears twice", name, (int)t->name.len, t->name.ptr);
                goto fail;
            }
        if (!tensor_bytes(&r, t)) goto fail;
    }
    g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors && g->data_offset > size) {
        bn_errf(err, "%s: truncated file: tensor data would start at %zu, file has %zu bytes", name,
                g->data_offset, size);
        goto fail;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        if (t->offset > size - g->data_offset || t->nbytes > size - g->data_offset - t->offset) {
            bn_errf(err, "%s: tensor '%.*s' (%zu bytes at data offset %zu) runs past the end of the file (%zu bytes; truncated?)",
                    name, (int)t->name.len, t->name.ptr, t->nbytes, t->offset, size);
            goto fail;
        }
        t->offset += g->data_offset;
    }
    if (g->n_tensors > 1) {
        bn_gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
        if (!order) {
            bn_errf(err, "%s: out of memory", name);
            goto fail;
        }
        for (uint64_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
        qsort(order, g->n_tensors, sizeof *order, cmp_offset);
        for (uint64_t i = 1; i < g->n_tensors; i++)
            if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
                bn_errf(err, "%s: tensors '%.*s' and '%.*s' overlap", name, (int)order[i - 1]->name.len,
                        order[i - 1]->name.ptr, (int)order[i]->name.len, order[i]->name.ptr);
                free(order);
                goto fail;
            }
        free(order);
    }
    return 1;
fail:
    bn_gguf_free(g);
    return 0;
}

void bn_gguf_free(bn_gguf *g) {
    free(g->kv);
    free(g->tensors);
    g->kv = NULL;
    g->tensors = NULL;
}

const bn_gguf_kv *bn_gguf_find(const bn_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (bn_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const bn_gguf_tensor *bn_gguf_tensor_find(const bn_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (bn_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* Reads one numeric scalar of type t at p as double / int64. */
static int num_at(const uint8_t *p, uint32_t t, double *d, int64_t *i, int *is_int) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } v;
    if (t >= GGUF_T_COUNT || !scalar_size[t]) return 0;
    memcpy(&v, p, scalar_size[t]);
    *is_int = 1;
    switch (t) {
    case GGUF_T_U8: case GGUF_T_BOOL: *i = v.u8; break;
    case GGUF_T_I8: *i = v.i8; break;
    case GGUF_T_U16: *i = v.u16; break;
    case GGUF_T_I16: *i = v.i16; break;
    case GGUF_T_U32: *i = v.u32; break;
    case GGUF_T_I32: *i = v.i32; break;
    case GGUF_T_U64: *i = v.u64 > INT64_MAX ? INT64_MAX : (int64_t)v.u64; break;
    case GGUF_T_I64: *i = v.i64; break;
    case GGUF_T_F32: *d = v.f32; *is_int = 0; return 1;
    case GGUF_T_F64: *d = v.f64; *is_int = 0; return 1;
    default: return 0;
    }
    *d = (double)*i;
    return 1;
}

/* A numeric scalar by key: 1 found, 0 missing, -1 not a number (bools are
 * not numbers here). */
static int get_num(const bn_gguf *g, const char *key, double *d, int64_t *i, int *is_int) {
    const bn_gguf_kv *kv = bn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type == GGUF_T_BOOL || !num_at(g->data + kv->pos, kv->type, d, i, is_int)) return -1;
    return 1;
}

int bn_gguf_get_int(const bn_gguf *g, const char *key, int64_t *out) {
    double d;
    int64_t i;
    int is_int, r = get_num(g, key, &d, &i, &is_int);
    if (r <= 0) return r;
    if (!is_int) return -1;
    *out = i;
    return 1;
}

int bn_gguf_get_float(const bn_gguf *g, const char *key, double *out) {
    double d;
    int64_t i;
    int is_int, r = get_num(g, key, &d, &i, &is_int);
    if (r <= 0) return r;
    *out = d;
    return 1;
}

int bn_gguf_get_bool(const bn_gguf *g, const char *key, int *out) {
    const bn_gguf_kv *kv = bn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_T_BOOL) return -1;
    *out = g->data[kv->pos] != 0;
    return 1;
}

int bn_gguf_get_str(const bn_gguf *g, const char *key, bn_str *out) {
    const bn_gguf_kv *kv = bn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_T_STRING) return -1;
    memcpy(&out->len, g->data + kv->pos, 8);
    out->ptr = (const char *)g->data + kv->pos + 8;
    return 1;
}

int bn_gguf_arr_str(const bn_gguf *g, const bn_gguf_kv *kv, bn_str *out) {
    if (kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_STRING) return 0;
    size_t pos = kv->pos; /* lengths were validated by the parser */
    for (uint64_t i = 0; i < kv->count; i++) {
        memcpy(&out[i].len, g->data + pos, 8);
        out[i].ptr = (const char *)g->data + pos + 8;
        pos += 8 + (size_t)out[i].len;
    }
    return 1;
}

/* A float element read as an integer (a file may store token types as
 * floats): truncated, NaN as 0, out-of-range values saturated (a plain cast
 * of those is undefined behaviour). */
static int64_t double_to_i64(double d) {
    if (d != d) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

static int arr_num(const bn_gguf *g, const bn_gguf_kv *kv, float *f, int64_t *n) {
    if (kv->type != GGUF_T_ARRAY || kv->arr_type >= GGUF_T_COUNT || !scalar_size[kv->arr_type]) return 0;
    size_t step = scalar_size[kv->arr_type];
    for (uint64_t i = 0; i < kv->count; i++) {
        double d;
        int64_t v;
        int is_int;
        num_at(g->data + kv->pos + i * step, kv->arr_type, &d, &v, &is_int);
        if (f) f[i] = (float)d;
        if (n) n[i] = is_int ? v : double_to_i64(d);
    }
    return 1;
}

int bn_gguf_arr_f32(const bn_gguf *g, const bn_gguf_kv *kv, float *out) { return arr_num(g, kv, out, NULL); }
int bn_gguf_arr_i64(const bn_gguf *g, const bn_gguf_kv *kv, int64_t *out) { return arr_num(g, kv, NULL, out); }
