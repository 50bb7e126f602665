/* ids.c: the growable id and byte vectors of encoding and decoding, apart
 * so that the merge loops (tok_merge.c) and the encoder (tokenizer.c) both
 * sit on them without calling each other. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

int bn_ids_push(bn_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) return 0;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 1;
}

void bn_ids_free(bn_ids *v) {
    free(v->v);
    memset(v, 0, sizeof *v);
}

void bn_bytes_free(bn_bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}
