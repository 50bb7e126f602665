#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* A header larger than this is refused before it is parsed: real headers of
 * 100B-parameter checkpoints are a few MB. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

static const struct { const char *name; size_t size; } dtypes[] = {
    [BN_ST_F64] = {"F64", 8},       [BN_ST_F32] = {"F32", 4},   [BN_ST_F16] = {"F16", 2},
    [BN_ST_BF16] = {"BF16", 2},     [BN_ST_I64] = {"I64", 8},   [BN_ST_I32] = {"I32", 4},
    [BN_ST_I16] = {"I16", 2},       [BN_ST_I8] = {"I8", 1},     [BN_ST_U8] = {"U8", 1},
    [BN_ST_BOOL] = {"BOOL", 1},     [BN_ST_F8_E4M3] = {"F8_E4M3", 1},
    [BN_ST_F8_E5M2] = {"F8_E5M2", 1}, [BN_ST_U16] = {"U16", 2}, [BN_ST_U32] = {"U32", 4},
    [BN_ST_U64] = {"U64", 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *bn_st_dtype_name(bn_st_dtype t) { return (size_t)t < N_DTYPES ? dtypes[t].name : "?"; }
size_t bn_st_dtype_size(bn_st_dtype t) { return (size_t)t < N_DTYPES ? dtypes[t].size : 0; }

const bn_st_tensor *bn_st_find(const bn_st_set *set, const char *name) {
    size_t lo = 0, hi = set->by_name ? set->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(set->tensors[set->by_name[mid]].name, name);
        if (c == 0) return &set->tensors[set->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Merge sort of tensor indices by name (stable, O(n log n) on any input). */
static void sort_indices(size_t *idx, size_t *tmp, size_t n, const bn_st_tensor *t) {
    if (n < 2) return;
    size_t h = n / 2;
    sort_indices(idx, tmp, h, t);
    sort_indices(idx + h, tmp, n - h, t);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = strcmp(t[idx[i]].name, t[idx[j]].name) <= 0 ? idx[i++] : idx[j++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* Rebuilds the sorted index over every tensor and reports a name that
 * occurs twice (within one file or across shards). */
static int index_names(bn_st_set *set, const char *file, bn_err *err) {
    size_t *idx = realloc(set->by_name, (set->n ? set->n : 1) * sizeof *idx);
    size_t *tmp = malloc((set->n ? set->n : 1) * sizeof *tmp);
    if (idx) set->by_name = idx;
    if (!idx || !tmp) {
        free(tmp);
        free(set->by_name);
        set->by_name = NULL;
        return bn_errf(err, "%s: out of memory", file);
    }
    for (size_t i = 0; i < set->n; i++) idx[i] = i;
    sort_indices(idx, tmp, set->n, set->tensors);
    free(tmp);
    for (size_t i = 1; i < set->n; i++)
        if (strcmp(set->tensors[idx[i - 1]].name, set->tensors[idx[i]].name) == 0)
            return bn_errf(err, "%s: tensor '%s' appears twice", file, set->tensors[idx[i]].name);
    return 1;
}

void bn_st_free(bn_st_set *set) {
    for (size_t i = 0; i < set->n; i++) free(set->tensors[i].name);
    for (size_t i = 0; i < set->n_files; i++) free(set->files[i]);
    free(set->tensors);
    free(set->by_name);
    free(set->files);
    memset(set, 0, sizeof *set);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A JSON number that is a non-negative integer up to 2^53 (exact in a double). */
static int json_uint(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return 0;
    *out = (int64_t)d;
    return 1;
}

/* Validates one header entry against the data area [base, base+avail). */
static int read_entry(bn_st_tensor *t, const cJSON *e, const uint8_t *base, uint64_t avail, const char *file,
                      bn_err *err) {
    const char *tn = t->name;
    if (!cJSON_IsObject(e)) return bn_errf(err, "%s: header entry '%s' is not an object", file, tn);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return bn_errf(err, "%s: tensor '%s' has no dtype string", file, tn);
    size_t k;
    for (k = 0; k < N_DTYPES; k++)
        if (strcmp(dtypes[k].name, dt->valuestring) == 0) break;
    if (k == N_DTYPES) return bn_errf(err, "%s: tensor '%s' has unknown dtype '%.32s'", file, tn, dt->valuestring);
    t->dtype = (bn_st_dtype)k;
    if (!cJSON_IsArray(shape)) return bn_errf(err, "%s: tensor '%s' has no shape array", file, tn);
    int nd = cJSON_GetArraySize(shape);
    if (nd > BN_ST_MAX_DIMS)
        return bn_errf(err, "%s: tensor '%s' has %d dimensions (at most %d are read)", file, tn, nd, BN_ST_MAX_DIMS);
    t->n_dims = nd;
    uint64_t elems = 1;
    int d = 0;
    for (const cJSON *v = shape->child; v; v = v->next, d++) {
        int64_t n;
        if (!json_uint(v, &n)) return bn_errf(err, "%s: tensor '%s' has a shape entry that is not a count", file, tn);
        if (n && elems > ((uint64_t)1 << 48) / (uint64_t)n)
            return bn_errf(err, "%s: tensor '%s' has an impossible shape", file, tn);
        t->shape[d] = n;
        elems *= (uint64_t)n;
    }
    t->n_elems = (int64_t)elems;
    int64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &begin) ||
        !json_uint(offs->child->next, &end))
        return bn_errf(err, "%s: tensor '%s' has no valid data_offsets [begin, end]", file, tn);
    if (end < begin) return bn_errf(err, "%s: tensor '%s' has data_offsets that end before they begin", file, tn);
    if ((uint64_t)end > avail)
        return bn_errf(err, "%s: tensor '%s' data [%lld, %lld) runs past the end of the file (%llu data bytes; truncated?)",
                       file, tn, (long long)begin, (long long)end, (unsigned long long)avail);
    uint64_t want = elems * dtypes[k].size;
    if ((uint64_t)(end - begin) != want)
        return bn_errf(err, "%s: tensor '%s' is %s with %llu elements (%llu bytes) but its data holds %lld bytes", file,
                       tn, dtypes[k].name, (unsigned long long)elems, (unsigned long long)want,
                       (long long)(end - begin));
    t->data = base + begin;
    t->nbytes = (size_t)want;
    t->file = file;
    return 1;
}

static int cmp_data(const void *a, const void *b) {
    const bn_st_tensor *x = *(const bn_st_tensor *const *)a, *y = *(const bn_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Tensors of one file may not share bytes (a hostile header could alias). */
static int check_overlap(bn_st_set *set, size_t first, const char *file, bn_err *err) {
    size_t n = set->n - first;
    if (n < 2) return 1;
    const bn_st_tensor **order = malloc(n * sizeof *order);
    if (!order) return bn_errf(err, "%s: out of memory", file);
    for (size_t i = 0; i < n; i++) order[i] = &set->tensors[first + i];
    qsort(order, n, sizeof *order, cmp_data);
    int ok = 1;
    for (size_t i = 1; i < n && ok; i++)
        if (order[i - 1]->data + order[i - 1]->nbytes > order[i]->data)
            ok = bn_errf(err, "%s: tensors '%s' and '%s' overlap", file, order[i - 1]->name, order[i]->name);
    free(order);
    return ok;
}

static int grow(bn_st_set *set, size_t extra) {
    if (set->n + extra <= set->cap) return 1;
    size_t cap = set->cap ? set->cap : 64;
    while (cap < set->n + extra) cap *= 2;
    bn_st_tensor *t = realloc(set->tensors, cap * sizeof *t);
    if (!t) return 0;
    set->tensors = t;
    set->cap = cap;
    return 1;
}

int bn_st_parse(bn_st_set *set, const uint8_t *data, size_t size, const char *name, bn_err *err) {
    uint64_t hlen;
    if (size < 8) return bn_errf(err, "%s: not a safetensors file (%zu bytes, too short for a header)", name, size);
    memcpy(&hlen, data, 8);
    if (hlen > ST_MAX_HEADER)
        return bn_errf(err, "%s: safetensors header claims %llu bytes (more than the %llu allowed)", name,
                       (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > size - 8)
        return bn_errf(err, "%s: safetensors header of %llu bytes runs past the end of the file (%zu bytes; truncated?)",
                       name, (unsigned long long)hlen, size);
    char **files = realloc(set->files, (set->n_files + 1) * sizeof *files);
    if (!files) return bn_errf(err, "%s: out of memory", name);
    set->files = files;
    char *file = dup_str(name);
    if (!file) return bn_errf(err, "%s: out of memory", name);
    set->files[set->n_files++] = file;
    cJSON *root = cJSON_ParseWithLength((const char *)data + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bn_errf(err, "%s: safetensors header is not a JSON object", name);
    }
    int count = cJSON_GetArraySize(root);
    const uint8_t *base = data + 8 + hlen;
    uint64_t avail = size - 8 - hlen;
    size_t first = set->n;
    int ok = grow(set, (size_t)count) ? 1 : bn_errf(err, "%s: out of memory", name);
    for (const cJSON *e = root->child; e && ok; e = e->next) {
        if (!e->string) continue;
        if (strcmp(e->string, "__metadata__") == 0) continue;
        bn_st_tensor *t = &set->tensors[set->n];
        memset(t, 0, sizeof *t);
        t->name = dup_str(e->string);
        if (!t->name) {
            ok = bn_errf(err, "%s: out of memory", name);
            break;
        }
        set->n++;
        ok = read_entry(t, e, base, avail, file, err);
    }
    cJSON_Delete(root);
    ok = ok && index_names(set, file, err) && check_overlap(set, first, file, err);
    if (!ok) { /* the index may not cover every entry: lookups find nothing */
        free(set->by_name);
        set->by_name = NULL;
    }
    return ok;
}
