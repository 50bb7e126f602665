/* fsops.h: the file-system steps a download cache needs that standard C
 * lacks: directories made and removed whole, relative symlinks, exclusive
 * locks, directory listings. POSIX only. */
#ifndef BN_FSOPS_H
#define BN_FSOPS_H

#include "base/errbuf.h"

/* mkdir -p; 1 or 0 with a message. */
int bn_mkdirs(const char *path, bn_err *err);

/* Points `link` at `target` (written as given: relative paths stay
 * relative), replacing whatever link was there. */
int bn_symlink(const char *target, const char *link, bn_err *err);

/* Removes path and, for a directory, everything under it (links are
 * removed, never followed). A missing path is not an error. */
int bn_remove_tree(const char *path, bn_err *err);

/* Takes an exclusive flock on `path` (created if missing), waiting while
 * another process holds it; the same lock huggingface_hub's filelock takes.
 * Returns the descriptor to pass to bn_unlock, or -1 with a message. */
int bn_lock(const char *path, bn_err *err);
void bn_unlock(int fd);

/* Calls fn for each entry of the directory but "." and ".."; stops and
 * returns 0 when fn does. Returns 0 with a message when it cannot be read. */
int bn_list_dir(const char *path, int (*fn)(void *ud, const char *name), void *ud, bn_err *err);

#endif
