/* fsops.c: mkdir -p, symlinks, recursive removal, flock, listings. */
#include "base/fsops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int bn_mkdirs(const char *path, bn_err *err) {
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return bn_errf(err, "out of memory");
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return bn_errf(err, "cannot make the directory %s: %s", path, strerror(e));
        }
        p[i] = c;
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return bn_errf(err, "%s is not a directory", path);
    return 1;
}

int bn_symlink(const char *target, const char *link, bn_err *err) {
    if (unlink(link) != 0 && errno != ENOENT)
        return bn_errf(err, "cannot replace %s: %s", link, strerror(errno));
    if (symlink(target, link) != 0 && errno != EEXIST)
        return bn_errf(err, "cannot link %s -> %s: %s", link, target, strerror(errno));
    return 1;
}

typedef struct {
    const char *dir;
    bn_err *err;
} tree;

static int remove_entry(void *ud, const char *name) {
    tree *t = ud;
    size_t n = strlen(t->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) return bn_errf(t->err, "out of memory");
    snprintf(p, n, "%s/%s", t->dir, name);
    int ok = bn_remove_tree(p, t->err);
    free(p);
    return ok;
}

int bn_remove_tree(const char *path, bn_err *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 1 : bn_errf(err, "cannot remove %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        tree t = {path, err};
        if (!bn_list_dir(path, remove_entry, &t, err)) return 0;
        if (rmdir(path) != 0) return bn_errf(err, "cannot remove %s: %s", path, strerror(errno));
        return 1;
    }
    if (unlink(path) != 0 && errno != ENOENT) return bn_errf(err, "cannot remove %s: %s", path, strerror(errno));
    return 1;
}

int bn_lock(const char *path, bn_err *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        bn_errf(err, "cannot open the lock %s: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        bn_errf(err, "cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void bn_unlock(int fd) {
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}

int bn_list_dir(const char *path, int (*fn)(void *ud, const char *name), void *ud, bn_err *err) {
    DIR *d = opendir(path);
    if (!d) return bn_errf(err, "cannot read the directory %s: %s", path, strerror(errno));
    struct dirent *e;
    int ok = 1;
    while (ok && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        ok = fn(ud, e->d_name);
    }
    closedir(d);
    return ok;
}
