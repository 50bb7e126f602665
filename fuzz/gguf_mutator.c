/* gguf_mutator.c: a structure-aware libFuzzer mutator for GGUF inputs.
 * Plain byte mutations almost always break the header's counts, lengths or
 * offsets, so the reader refuses them in its first checks. This one splits
 * an input into its metadata entries, tensor infos and data, mutates one
 * part (bytes of one entry, a tensor's shape or type, a number in the
 * metadata, an entry dropped or repeated, some weight bytes), then writes
 * the file back with consistent counts and, when shapes changed, tensor
 * offsets laid out again so the data fits. Inputs it cannot split get
 * libFuzzer's own mutation. Linked into the GGUF targets; no state is kept
 * between calls (the random choices come from libFuzzer's seed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

#define MAX_PARTS 1024 /* entries or tensors: a 2B model has 332 tensors */

typedef struct {
    const uint8_t *p;
    size_t n;
} part;

typedef struct {
    uint32_t version;
    part kv[MAX_PARTS], ti[MAX_PARTS];
    size_t nkv, nti;
    part data;
} layout;

static const uint8_t scalar[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Bytes one value of type t takes at p (at most n available), or 0. */
static size_t value_len(const uint8_t *p, size_t n, uint32_t t, int depth) {
    if (t >= GGUF_T_COUNT || depth > 4) return 0;
    if (t == GGUF_T_STRING) return n >= 8 && rd64(p) <= n - 8 ? 8 + (size_t)rd64(p) : 0;
    if (t != GGUF_T_ARRAY) return scalar[t] <= n ? scalar[t] : 0;
    if (n < 12) return 0;
    uint32_t et = rd32(p);
    uint64_t cnt = rd64(p + 4);
    if (et >= GGUF_T_COUNT) return 0;
    size_t pos = 12;
    if (scalar[et]) return cnt <= (n - pos) / scalar[et] ? pos + (size_t)cnt * scalar[et] : 0;
    if (cnt > (n - pos) / 8) return 0;
    for (uint64_t i = 0; i < cnt; i++) {
        size_t l = value_len(p + pos, n - pos, et, depth + 1);
        if (!l) return 0;
        pos += l;
    }
    return pos;
}

static int split(const uint8_t *d, size_t n, layout *L) {
    if (n < 24 || memcmp(d, "GGUF", 4)) return 0;
    L->version = rd32(d + 4);
    uint64_t nt = rd64(d + 8), nkv = rd64(d + 16);
    if (nt > MAX_PARTS || nkv > MAX_PARTS) return 0;
    size_t pos = 24;
    for (L->nkv = 0; L->nkv < nkv; L->nkv++) {
        size_t k = value_len(d + pos, n - pos, GGUF_T_STRING, 0);
        if (!k || n - pos - k < 4) return 0;
        size_t v = value_len(d + pos + k + 4, n - pos - k - 4, rd32(d + pos + k), 0);
        if (!v) return 0;
        L->kv[L->nkv] = (part){d + pos, k + 4 + v};
        pos += k + 4 + v;
    }
    for (L->nti = 0; L->nti < nt; L->nti++) {
        size_t k = value_len(d + pos, n - pos, GGUF_T_STRING, 0);
        if (!k || n - pos - k < 4) return 0;
        uint32_t dims = rd32(d + pos + k);
        if (dims > 4 || n - pos - k - 4 < (size_t)dims * 8 + 12) return 0;
        size_t len = k + 4 + (size_t)dims * 8 + 12;
        L->ti[L->nti] = (part){d + pos, len};
        pos += len;
    }
    pos = (pos + 31) / 32 * 32;
    L->data = (part){d + (pos < n ? pos : n), pos < n ? n - pos : 0};
    return 1;
}

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static const uint64_t interesting[] = {0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 64, 127, 128, 255, 256, 1024, 4096, 65535,
                                       65536, 0x7fffffff, 0x80000000u, 0xffffffffu, (uint64_t)1 << 32,
                                       (uint64_t)1 << 40, INT64_MAX, UINT64_MAX};
#define N_INTERESTING (sizeof interesting / sizeof interesting[0])

static const uint32_t types[] = {GGML_F32, GGML_F16, GGML_Q8_0, GGML_Q4_K, GGML_Q6_K, GGML_BF16,
                                 GGML_TQ1_0, GGML_TQ2_0, GGML_I2_S, 2, 99};

/* Where a tensor info's fields are: name length k, then n_dims. */
static size_t ti_dims_at(const uint8_t *p) { return 8 + (size_t)rd64(p); }

/* The bytes a tensor info's shape and type need (0 if unknown or over
 * cap), and where its offset field is. */
static uint64_t tensor_bytes(const uint8_t *p, size_t n, size_t cap, size_t *offset_at) {
    if (n < 12 || rd64(p) > n - 12) return 0; /* a byte mutation may have broken the info */
    size_t at = ti_dims_at(p);
    uint32_t dims = rd32(p + at);
    if (dims > 4 || n - at - 4 < (size_t)dims * 8 + 12) return 0;
    uint32_t type = rd32(p + at + 4 + (size_t)dims * 8), blck, bytes;
    *offset_at = at + 4 + (size_t)dims * 8 + 4;
    if (!bn_ggml_block(type, &blck, &bytes)) return 0;
    uint64_t elems = 1;
    for (uint32_t d = 0; d < dims; d++) {
        uint64_t ne = rd64(p + at + 4 + (size_t)d * 8);
        if (ne == 0 || ne > cap || elems > cap / ne) return 0;
        elems *= ne;
    }
    uint64_t sz = elems / blck * bytes + (type == GGML_I2_S ? 4 : 0);
    return sz > cap ? 0 : sz;
}

/* Lays tensors out one after another (each padded to 32 bytes) by the
 * sizes their shapes and types need; 0 if a size is unknown or too big. */
static size_t relayout(uint8_t **ti, const size_t *ti_n, size_t nti, size_t cap) {
    size_t off = 0;
    for (size_t i = 0; i < nti; i++) {
        size_t at;
        if (!ti_n[i]) continue; /* dropped */
        uint64_t sz = tensor_bytes(ti[i], ti_n[i], cap, &at);
        if (!sz || off > cap - sz) return 0;
        memcpy(ti[i] + at, &off, 8);
        off += (size_t)(sz + 31) / 32 * 32;
    }
    return off;
}

/* The end of the tensor data the infos claim (offsets as they stand), or
 * 0 when a size is unknown or an end passes cap. */
static size_t data_extent(uint8_t *const *ti, const size_t *ti_n, size_t nti, size_t cap) {
    size_t end = 0;
    for (size_t i = 0; i < nti; i++) {
        if (!ti_n[i]) continue;
        size_t at;
        uint64_t sz = tensor_bytes(ti[i], ti_n[i], cap, &at);
        if (!sz) return 0;
        uint64_t off = rd64(ti[i] + at);
        if (off > cap - sz) return 0;
        if (off + sz > end) end = (size_t)(off + sz);
    }
    return end;
}

/* Padded inputs (fuzz_util.h's fuzz_unpad: "ZPAD", u32 T, a GGUF file whose
 * data the T zero bytes complete): set by the mutation of the file, T is
 * then made to match what the tensor infos claim, but one time in eight it
 * keeps its old value, so short files stay in play. */
#define PAD_CAP ((size_t)1 << 22) /* fuzz_util.h's FUZZ_MAX_PAD */
static size_t mutate_gguf(uint8_t *data, size_t size, size_t max_size, unsigned int seed, size_t *claimed);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    if (size < 8 || max_size <= 8 || memcmp(data, "ZPAD", 4)) return mutate_gguf(data, size, max_size, seed, NULL);
    size_t claimed = 0, n = mutate_gguf(data + 8, size - 8, max_size - 8, seed, &claimed);
    if (claimed && seed % 8) {
        uint32_t t = claimed > n ? (uint32_t)(claimed - n) : 0;
        memcpy(data + 4, &t, 4);
    }
    return n + 8;
}

/* One mutation of a GGUF file in place; its new size. Sets *claimed (when
 * given) to the end of the tensor data the result's infos claim, 0 when
 * unknown. */
static size_t mutate_gguf(uint8_t *data, size_t size, size_t max_size, unsigned int seed, size_t *claimed) {
    if (claimed) *claimed = 0;
    layout *L = malloc(sizeof *L);
    uint8_t *out = L ? malloc(max_size) : NULL;
    uint8_t **owned = L ? calloc(2 * MAX_PARTS, sizeof *owned) : NULL;
    size_t *owned_n = L ? calloc(2 * MAX_PARTS, sizeof *owned_n) : NULL;
    size_t result = 0;
    if (!L || !out || !owned || !owned_n || !split(data, size, L)) goto plain;
    uint64_t r = seed * 2654435761u + 1;
    /* every part gets a private copy the mutation may change */
    size_t n_parts = L->nkv + L->nti;
    for (size_t i = 0; i < n_parts; i++) {
        part src = i < L->nkv ? L->kv[i] : L->ti[i - L->nkv];
        owned[i] = malloc(src.n + 64);
        if (!owned[i]) goto plain;
        memcpy(owned[i], src.p, src.n);
        owned_n[i] = src.n;
    }
    size_t data_n = L->data.n, data_cap = max_size;
    uint8_t *blob = malloc(data_cap);
    if (!blob) goto plain;
    memcpy(blob, L->data.p, data_n);
    int relay = 0;
    switch (next_rand(&r) % 8) {
    case 0: /* bytes of one metadata entry (its key, type or value) */
    case 1: /* ... or of one tensor info */
        if (n_parts) {
            size_t i = next_rand(&r) % n_parts;
            owned_n[i] = LLVMFuzzerMutate(owned[i], owned_n[i], owned_n[i] + 64);
        }
        break;
    case 2: /* one dimension of a tensor to an interesting value */
        if (L->nti) {
            uint8_t *p = owned[L->nkv + next_rand(&r) % L->nti];
            size_t at = ti_dims_at(p);
            uint32_t dims = rd32(p + at);
            if (dims) {
                uint64_t v = interesting[next_rand(&r) % N_INTERESTING];
                memcpy(p + at + 4 + (next_rand(&r) % dims) * 8, &v, 8);
                relay = 1;
            }
        }
        break;
    case 3: /* a tensor's type */
        if (L->nti) {
            uint8_t *p = owned[L->nkv + next_rand(&r) % L->nti];
            size_t at = ti_dims_at(p);
            uint32_t t = types[next_rand(&r) % (sizeof types / sizeof types[0])];
            memcpy(p + at + 4 + (size_t)rd32(p + at) * 8, &t, 4);
            relay = 1;
        }
        break;
    case 4: /* a numeric metadata value (a hyperparameter) to an interesting value */
        if (L->nkv) {
            size_t i = next_rand(&r) % L->nkv;
            uint8_t *p = owned[i];
            size_t at = 8 + (size_t)rd64(p);
            uint32_t t = rd32(p + at);
            if (t < GGUF_T_COUNT && scalar[t]) {
                uint64_t v = interesting[next_rand(&r) % N_INTERESTING];
                memcpy(p + at + 4, &v, scalar[t]);
            }
        }
        break;
    case 5: /* drop an entry */
        if (n_parts) {
            size_t i = next_rand(&r) % n_parts;
            owned_n[i] = 0;
        }
        break;
    case 6: /* some weight bytes */
        if (data_n) {
            size_t at = next_rand(&r) % data_n, n = data_n - at < 64 ? data_n - at : 64;
            LLVMFuzzerMutate(blob + at, n, n);
        }
        break;
    default: /* lay the tensors out again (after shape changes of earlier rounds) */
        relay = 1;
        break;
    }
    if (relay) {
        /* a padded input keeps only the data it has; the padding grows */
        size_t total = relayout(owned + L->nkv, owned_n + L->nkv, L->nti, claimed ? PAD_CAP : max_size);
        if (claimed && total && total < data_n) data_n = total;
        else if (!claimed && total && total <= data_cap) {
            if (total > data_n) memset(blob + data_n, 0, total - data_n);
            data_n = total;
        }
    }
    /* write the file back with counts that match */
    uint64_t nkv = 0, nt = 0;
    size_t pos = 24;
    for (size_t i = 0; i < n_parts; i++) {
        if (!owned_n[i]) continue;
        if (pos + owned_n[i] > max_size) goto plain_blob;
        memcpy(out + pos, owned[i], owned_n[i]);
        pos += owned_n[i];
        if (i < L->nkv) nkv++;
        else nt++;
    }
    memcpy(out, "GGUF", 4);
    memcpy(out + 4, &L->version, 4);
    memcpy(out + 8, &nt, 8);
    memcpy(out + 16, &nkv, 8);
    size_t dpos = (pos + 31) / 32 * 32;
    if (dpos > max_size) goto plain_blob;
    memset(out + pos, 0, dpos - pos);
    if (data_n > max_size - dpos) data_n = max_size - dpos;
    memcpy(out + dpos, blob, data_n);
    result = dpos + data_n;
    memcpy(data, out, result);
    if (claimed) {
        size_t extent = data_extent(owned + L->nkv, owned_n + L->nkv, L->nti, PAD_CAP);
        *claimed = extent && extent <= PAD_CAP - dpos ? dpos + extent : 0;
    }
plain_blob:
    free(blob);
plain:
    for (size_t i = 0; owned && i < 2 * MAX_PARTS; i++) free(owned[i]);
    free(owned);
    free(owned_n);
    free(out);
    free(L);
    return result ? result : LLVMFuzzerMutate(data, size, max_size);
}
