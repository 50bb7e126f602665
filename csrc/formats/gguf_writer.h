/* gguf_writer.h: writes GGUF v3 files, streaming tensor data to a FILE so a
 * model never has to be held in memory whole.
 *
 * Use: create a writer, set metadata (any GGUF value type, arrays included)
 * and declare every tensor (name, GGML type, shape, byte size); then
 * bn_gw_begin writes the header and tensor table; then the data of each
 * tensor, in declaration order, in as many bn_gw_write calls as convenient;
 * bn_gw_finish checks that every declared byte was written. The writer pads
 * each tensor's data to the alignment (general.alignment, default 32). */
#ifndef BN_GGUF_WRITER_H
#define BN_GGUF_WRITER_H

#include <stdint.h>
#include <stdio.h>

#include "base/errbuf.h"
#include "formats/gguf.h"

typedef struct bn_gguf_writer bn_gguf_writer;

/* alignment: a power of two (0: 32, GGUF's default). When it is not 32 the
 * writer records it as general.alignment. NULL when out of memory. */
bn_gguf_writer *bn_gw_new(uint32_t alignment);
void bn_gw_free(bn_gguf_writer *w);

/* Metadata setters. Each returns 1, or 0 with a message in err (a key set
 * twice, out of memory). Keys are copied; values are encoded at once. */
int bn_gw_set_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_err *err);
int bn_gw_set_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_err *err);
int bn_gw_set_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_err *err);
int bn_gw_set_f32(bn_gguf_writer *w, const char *key, float v, bn_err *err);
int bn_gw_set_bool(bn_gguf_writer *w, const char *key, int v, bn_err *err);
int bn_gw_set_str(bn_gguf_writer *w, const char *key, const char *s, bn_err *err);
int bn_gw_set_strn(bn_gguf_writer *w, const char *key, const char *s, uint64_t len, bn_err *err);
/* A scalar of any numeric GGUF_T_* type from the bytes at v (little-endian,
 * the type's size). */
int bn_gw_set_scalar(bn_gguf_writer *w, const char *key, uint32_t type, const void *v, bn_err *err);
/* An array of n numeric elements of GGUF_T_* elem_type, packed at data. */
int bn_gw_set_array(bn_gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n,
                    bn_err *err);
/* An array of n strings; lens may be NULL for NUL-terminated strings. */
int bn_gw_set_str_array(bn_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                        uint64_t n, bn_err *err);
/* Copies one key/value of a parsed GGUF file verbatim (any type, nested
 * arrays included), under its own key. */
int bn_gw_copy_kv(bn_gguf_writer *w, const bn_gguf *g, const bn_gguf_kv *kv, bn_err *err);

/* Declares a tensor; ne[0] is the row length (innermost), as in GGUF.
 * nbytes is the data size the type and shape need (the caller knows the
 * type's layout: e.g. I2_S adds its 32-byte scale tail). */
int bn_gw_add_tensor(bn_gguf_writer *w, const char *name, uint32_t ggml_type, int n_dims, const uint64_t *ne,
                     uint64_t nbytes, bn_err *err);

/* Writes the header, metadata and tensor table to f (positioned at the
 * start of the file) and pads to the data section. `what` names the
 * destination in messages. After this no metadata or tensor may be added. */
int bn_gw_begin(bn_gguf_writer *w, FILE *f, const char *what, bn_err *err);
/* Appends n bytes of the current tensor's data (tensors in declaration
 * order; a write may not run past the current tensor's end). */
int bn_gw_write(bn_gguf_writer *w, const void *data, size_t n, bn_err *err);
/* Checks that every declared tensor byte was written and flushes f. */
int bn_gw_finish(bn_gguf_writer *w, bn_err *err);

#endif
