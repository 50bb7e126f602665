/* fuzz_util.h: small helpers the fuzz harnesses share (built with
 * -D_GNU_SOURCE for memfd_create). Header-only so each
 * harness stays one file plus the library; none keeps state. */
#ifndef BN_FUZZ_UTIL_H
#define BN_FUZZ_UTIL_H


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

/* The loaders take paths: the bytes go to an anonymous in-memory file,
 * named by /proc/self/fd/N in path. Returns the descriptor (close it when
 * done), or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("bitnet-fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* Inputs of the model targets may be padded: "ZPAD", a u32 little-endian
 * count T, then the file's bytes, which stand for those bytes followed by T
 * zero bytes. Their tensor data is mostly zeros, so keeping it in the input
 * made libFuzzer copy and hash a megabyte per execution (90% of the time);
 * this way an input is its headers and the loaders still see a whole model.
 * Sets *pad (0 for an unpadded input) and moves data past the prefix. */
#define FUZZ_MAX_PAD ((uint32_t)1 << 22) /* 4 MiB: a model of 16M weights at most */
static inline void fuzz_unpad(const uint8_t **data, size_t *size, size_t *pad) {
    *pad = 0;
    if (*size < 8 || memcmp(*data, "ZPAD", 4)) return;
    uint32_t t;
    memcpy(&t, *data + 4, 4);
    *pad = t < FUZZ_MAX_PAD ? t : FUZZ_MAX_PAD;
    *data += 8;
    *size -= 8;
}

/* Extends the file behind fd by pad zero bytes (a hole: nothing is
 * written). 1 on success. */
static inline int fuzz_pad_fd(int fd, size_t size, size_t pad) {
    return pad == 0 || ftruncate(fd, (off_t)(size + pad)) == 0;
}

/* The first n bytes of the file behind fd, mapped read-only (NULL when
 * that fails or n is 0); munmap(p, n) when done. */
static inline const uint8_t *fuzz_map(int fd, size_t n) {
    if (n == 0) return NULL;
    void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    return p == MAP_FAILED ? NULL : (const uint8_t *)p;
}

/* A scratch directory of this process (derived from the pid, so nothing
 * is remembered between calls); the directory loaders read files in it.
 * In /dev/shm when there is one: on ext4, closing a rewritten file flushed
 * it to disk, an eighth of the HF target's time. */
static inline void fuzz_dir(char *path, size_t cap) {
    struct stat st;
    snprintf(path, cap, "%s/bitnet-fuzz-%ld", stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    mkdir(path, 0700);
}

/* Writes data to dir/name, then pad zero bytes (or removes the file when
 * data is NULL). 1 on success. */
static inline int fuzz_put(const char *dir, const char *name, const uint8_t *data, size_t size, size_t pad) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (!data) return unlink(p), 1;
    FILE *f = fopen(p, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, size, f) == size && fflush(f) == 0 && fuzz_pad_fd(fileno(f), size, pad);
    return fclose(f) == 0 && ok;
}

/* Inputs holding two files: a 4-byte little-endian length of the first,
 * the first, then the second (what is left). */
static inline void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na, const uint8_t **b,
                              size_t *nb) {
    uint32_t n = 0;
    if (size >= 4) memcpy(&n, data, 4);
    size_t rest = size >= 4 ? size - 4 : 0;
    *na = n < rest ? n : rest;
    *a = data + (size >= 4 ? 4 : size);
    *b = *a + *na;
    *nb = rest - *na;
}

/* Two tokens through a model that loaded: the forward pass on whatever
 * shapes the input gave it. */
static inline void fuzz_run_model(bn_model *m) {
    bn_err err = {0};
    bn_session *s = bn_session_new(m, 8, &err);
    if (s) {
        int32_t ids[2] = {0, m->hp.n_vocab - 1};
        bn_session_eval(s, ids, 2, NULL);
        bn_session_free(s);
    }
}

/* A text with the hard cases (multi-byte, emoji, invalid UTF-8, specials),
 * encoded and decoded with a tokenizer that loaded, with and without
 * special tokens. */
static inline void fuzz_run_tokenizer(const bn_tokenizer *t) {
    static const char text[] = "Hello world! \xC3\xA9t\xC3\xA9 <s> <|eot_id|>\n\n  123 \xF0\x9F\x98\x80 \xFF\xFE end";
    for (int special = 0; special < 2; special++) {
        bn_err err = {0};
        bn_ids ids = {0};
        bn_bytes out = {0};
        bn_encode_opts o = {.add_bos = -1, .parse_special = special};
        size_t bad;
        if (bn_tokenizer_encode(t, text, sizeof text - 1, &o, &ids, &err))
            bn_tokenizer_decode(t, ids.v, ids.n, special, 1, &out, &bad);
        bn_ids_free(&ids);
        bn_bytes_free(&out);
    }
}

#endif
