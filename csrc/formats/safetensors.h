/* safetensors.h: a validating reader for safetensors files held in memory
 * (mmap). The JSON header is parsed with cJSON; every dtype, shape and data
 * offset is checked against the file before a tensor is handed out. Several
 * files (the shards of one checkpoint) can be collected into one set. */
#ifndef BN_SAFETENSORS_H
#define BN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"

#define BN_ST_MAX_DIMS 8

/* The dtypes safetensors defines; the loader uses F32/F16/BF16/U8. */
typedef enum {
    BN_ST_F64, BN_ST_F32, BN_ST_F16, BN_ST_BF16, BN_ST_I64, BN_ST_I32, BN_ST_I16,
    BN_ST_I8, BN_ST_U8, BN_ST_BOOL, BN_ST_F8_E4M3, BN_ST_F8_E5M2, BN_ST_U16,
    BN_ST_U32, BN_ST_U64
} bn_st_dtype;

typedef struct {
    char *name;               /* owned, NUL-terminated */
    bn_st_dtype dtype;
    int n_dims;
    int64_t shape[BN_ST_MAX_DIMS]; /* outermost first, as PyTorch writes it */
    int64_t n_elems;
    const uint8_t *data;      /* into the file's mapping */
    size_t nbytes;
    const char *file;         /* the set's copy of the file name, for messages */
} bn_st_tensor;

typedef struct {
    bn_st_tensor *tensors;
    size_t n, cap;
    size_t *by_name;          /* indices of tensors sorted by name, for lookups */
    char **files;             /* owned copies of the parsed file names */
    size_t n_files;
} bn_st_set;

/* Parses the header of one safetensors file of `size` bytes at `data` and
 * appends its tensors to the set (which must start zeroed). `name` is used
 * in messages. A tensor name already in the set is an error. On failure the
 * set must still be freed, and bn_st_find finds nothing in it. */
int bn_st_parse(bn_st_set *set, const uint8_t *data, size_t size, const char *name, bn_err *err);
void bn_st_free(bn_st_set *set);

/* The tensor called `name`, or NULL (a binary search: headers may hold
 * millions of entries). */
const bn_st_tensor *bn_st_find(const bn_st_set *set, const char *name);

/* "F32", "BF16", ... */
const char *bn_st_dtype_name(bn_st_dtype t);
/* Bytes per element. */
size_t bn_st_dtype_size(bn_st_dtype t);

#endif
