/* mapfile.h: a whole file mapped read-only. Model data is used straight from
 * the mapping whenever its layout is the one the kernels use. */
#ifndef BN_MAPFILE_H
#define BN_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"

typedef struct {
    const uint8_t *data;
    size_t size;
} bn_mapfile;

/* Maps path; on failure returns 0 with a message naming the file. */
int bn_mapfile_open(bn_mapfile *mf, const char *path, bn_err *err);
void bn_mapfile_close(bn_mapfile *mf);

#endif
