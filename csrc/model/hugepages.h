/* hugepages.h: moving the weights a decoded token streams (every ternary
 * matrix and the output head) out of the file mapping into memory backed by
 * 2 MB pages. A file mapping is made of 4 KB page-cache pages: streaming
 * 1.2 GB through them costs a TLB miss per 4 KB and stops the hardware
 * prefetcher at every page; measured on this project's benchmark machine,
 * the copy decodes markedly faster (bench/RESULTS.md). The cost is a copy at
 * load (the `hugepages` load option). */
#ifndef BN_HUGEPAGES_H
#define BN_HUGEPAGES_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "model/model.h"

/* Copies the mapped ternary matrices and the output head of m into one
 * huge-page-aligned heap block owned by the model, repoints them, and drops
 * the copied file pages from the mapping. Returns 1, or 0 with err set
 * (out of memory; m is unchanged then). */
int bn_model_to_hugepages(bn_model *m, bn_err *err);

/* Drops the pages of [p, p + n) from m's file mapping, if the range lies in
 * one (they stay in the page cache and come back on use); does nothing for
 * any other memory, where MADV_DONTNEED would zero private data. */
void bn_model_drop_file_pages(const bn_model *m, const void *p, size_t n);

#endif
