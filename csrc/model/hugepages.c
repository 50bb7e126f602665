/* hugepages.c: the streamed weights, copied to 2 MB pages at load. */
#include "model/hugepages.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define SLICE ((size_t)32 << 20)

static const bn_mapfile *mapping_of(const bn_model *m, const void *p, size_t n) {
    const uint8_t *b = p;
    for (int i = 0; i < m->n_maps; i++) {
        const bn_mapfile *mf = &m->maps[i];
        if (b >= mf->data && b + n <= mf->data + mf->size) return mf;
    }
    return NULL;
}

void bn_model_drop_file_pages(const bn_model *m, const void *p, size_t n) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !mapping_of(m, p, n)) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    uintptr_t b = ((uintptr_t)p + n) / (uintptr_t)page * (uintptr_t)page;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static size_t up64(size_t n) { return (n + 63) / 64 * 64; }

/* The streamed tensors: (pointer to the data pointer, bytes). */
typedef struct {
    const uint8_t **data;
    size_t bytes;
} piece;

static int collect(bn_model *m, piece *out, int max) {
    int n = 0;
    for (int l = 0; l < m->hp.n_layers; l++) {
        bn_layer *L = &m->layers[l];
        bn_ternary *t[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++) {
            size_t bytes = (size_t)t[i]->rows * t[i]->row_bytes;
            if (!t[i]->owned && n < max && mapping_of(m, t[i]->codes, bytes)) out[n++] = (piece){&t[i]->codes, bytes};
        }
    }
    size_t head = (size_t)m->output.rows * m->output.row_bytes;
    if (!m->head_i8 && n < max && mapping_of(m, m->output.data, head)) out[n++] = (piece){&m->output.data, head};
    return n;
}

int bn_model_to_hugepages(bn_model *m, bn_err *err) {
    int cap = m->hp.n_layers * 7 + 1;
    piece *pc = malloc(sizeof *pc * (size_t)cap);
    if (!pc) return bn_errf(err, "out of memory");
    int n = collect(m, pc, cap);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += up64(pc[i].bytes);
    if (total == 0) {
        free(pc);
        return 1;
    }
    size_t size = (total + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *block = NULL;
    if (posix_memalign(&block, HUGE_PAGE, size) != 0 || !bn_model_own(m, block)) {
        free(pc);
        return bn_errf(err, "out of memory for %zu MB of weights in huge pages", size >> 20);
    }
#ifdef MADV_HUGEPAGE
    madvise(block, size, MADV_HUGEPAGE);
#endif
    uint8_t *dst = block;
    const uint8_t *embd = m->tok_embd.data;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = *pc[i].data;
        /* in slices, each dropped from the mapping at once, so that the
         * source and the copy are never both resident (peak RSS) */
        for (size_t off = 0; off < pc[i].bytes; off += SLICE) {
            size_t len = pc[i].bytes - off < SLICE ? pc[i].bytes - off : SLICE;
            memcpy(dst + off, src + off, len);
            bn_model_drop_file_pages(m, src + off, len);
        }
        *pc[i].data = dst;
        if (pc[i].data == &m->output.data && embd == src) m->tok_embd.data = dst; /* tied: the same bytes */
        dst += up64(pc[i].bytes);
    }
    free(pc);
    return 1;
}
