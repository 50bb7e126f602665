/* gguf.h: a validating reader for GGUF v2/v3 files held in memory (mmap).
 * Every count, length and offset is checked against the buffer before use;
 * nothing here allocates in proportion to an unchecked number. */
#ifndef BN_GGUF_H
#define BN_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"

enum {
    GGUF_T_U8 = 0, GGUF_T_I8, GGUF_T_U16, GGUF_T_I16, GGUF_T_U32, GGUF_T_I32,
    GGUF_T_F32, GGUF_T_BOOL, GGUF_T_STRING, GGUF_T_ARRAY, GGUF_T_U64,
    GGUF_T_I64, GGUF_T_F64, GGUF_T_COUNT
};

/* GGML tensor types we know by name (the ones we read, and the others so
 * that errors can name them). */
enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6,
    GGML_Q5_1 = 7, GGML_Q8_0 = 8, GGML_Q8_1 = 9, GGML_Q2_K = 10,
    GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14,
    GGML_Q8_K = 15, GGML_BF16 = 30, GGML_TQ1_0 = 34, GGML_TQ2_0 = 35,
    GGML_I2_S = 36
};

typedef struct {
    const char *ptr; /* not NUL-terminated: points into the file */
    uint64_t len;
} bn_str;

typedef struct {
    bn_str key;
    uint32_t type;     /* GGUF_T_* */
    uint32_t arr_type; /* element type when type == GGUF_T_ARRAY */
    uint64_t count;    /* element count when type == GGUF_T_ARRAY */
    size_t pos;        /* offset of the value (of the first element for arrays) */
} bn_gguf_kv;

typedef struct {
    bn_str name;
    uint32_t n_dims;
    uint64_t ne[4];    /* ne[0] is the row length (innermost) */
    uint32_t type;     /* GGML_* */
    size_t offset;     /* absolute offset of the data in the file */
    size_t nbytes;     /* bytes the data occupies */
} bn_gguf_tensor;

typedef struct {
    const uint8_t *data;
    size_t size;
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;
    uint64_t n_kv, n_tensors;
    bn_gguf_kv *kv;
    bn_gguf_tensor *tensors;
} bn_gguf;

/* Parses and validates the whole header. `name` is used in messages. */
int bn_gguf_parse(bn_gguf *g, const uint8_t *data, size_t size, const char *name,
                  bn_err *err);
void bn_gguf_free(bn_gguf *g);

const bn_gguf_kv *bn_gguf_find(const bn_gguf *g, const char *key);
const bn_gguf_tensor *bn_gguf_tensor_find(const bn_gguf *g, const char *name);

/* Typed getters: 1 found and converted, 0 missing, -1 present with a type
 * that cannot be converted (the caller names the key in its error). */
int bn_gguf_get_int(const bn_gguf *g, const char *key, int64_t *out);
int bn_gguf_get_float(const bn_gguf *g, const char *key, double *out);
int bn_gguf_get_bool(const bn_gguf *g, const char *key, int *out);
int bn_gguf_get_str(const bn_gguf *g, const char *key, bn_str *out);

/* Array readers; `out` has kv->count elements. Numeric readers convert from
 * any numeric element type; they return 0 when the element type is a string
 * or array. bn_gguf_arr_str returns 0 unless elements are strings. */
int bn_gguf_arr_str(const bn_gguf *g, const bn_gguf_kv *kv, bn_str *out);
int bn_gguf_arr_f32(const bn_gguf *g, const bn_gguf_kv *kv, float *out);
int bn_gguf_arr_i64(const bn_gguf *g, const bn_gguf_kv *kv, int64_t *out);

/* Name of a GGML tensor type ("F32", "TQ2_0", ...), or NULL if unknown. */
const char *bn_ggml_type_name(uint32_t type);
/* Block geometry: elements per block and bytes per block; 0 if unsupported. */
int bn_ggml_block(uint32_t type, uint32_t *blck, uint32_t *bytes);

/* Compares a file string with a C string. */
int bn_str_eq(bn_str s, const char *c);

#endif
