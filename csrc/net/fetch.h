/* fetch.h: one file over HTTP into a partial file on disk, resumed with a
 * Range request from what the file already holds, retried on a cut
 * connection, a timeout or a 5xx, and checked against the size and SHA-256
 * it must have. The hash runs on a second thread a little behind the
 * writes, so checking costs no time after the last byte. */
#ifndef BN_FETCH_H
#define BN_FETCH_H

#include "base/errbuf.h"

typedef struct {
    const char *url;
    const char *const *headers; /* "Name: value" lines, NULL-terminated; may be NULL */
    const char *path;           /* the partial file: created, or resumed from its length */
    long long size;             /* the length it must reach; -1 unknown */
    const char *sha256;         /* the hex digest it must have; NULL: size only */
    int retries;                /* attempts after the first one fails */
    double backoff;             /* seconds before the first retry, doubled each time */
    long connect_timeout, stall_timeout; /* seconds (0: none) */
    /* called at most every 0.1 s and at the end; nonzero cancels (the
     * partial file is kept for the next attempt) */
    int (*progress)(void *ud, long long done, long long total);
    void *ud;
} bn_fetch_req;

typedef struct {
    long status;             /* the last HTTP status (0: none came) */
    long long bytes;         /* the file's length at the end */
    long long resumed_from;  /* the offset of the first Range request; 0 if none */
    int attempts;            /* requests made */
    int cancelled;           /* progress asked to stop */
    char sha256[65];         /* the file's digest ("" when not complete) */
} bn_fetch_result;

/* 1: the file at req->path is whole and verified. 0: a message naming the
 * URL and the problem; on a SHA-256 or size mismatch the file is deleted
 * (a bad file must not be resumed), otherwise kept to resume from. */
int bn_fetch(const bn_fetch_req *req, bn_fetch_result *res, bn_err *err);

#endif
