/* http.h: one HTTP request through libcurl, the response kept in memory
 * (API calls and redirects; files go through fetch.h). TLS, HTTP/2,
 * proxies from the environment (HTTPS_PROXY, NO_PROXY) are libcurl's. */
#ifndef BN_HTTP_H
#define BN_HTTP_H

#include <stddef.h>

#include "base/errbuf.h"

typedef struct {
    const char *method;          /* "GET" (default), "HEAD" or "POST" */
    const char *url;
    const char *const *headers;  /* "Name: value" lines, NULL-terminated; may be NULL */
    const char *body;            /* POST body (may be NULL) */
    size_t body_len;
    int follow;                  /* follow redirects */
    long connect_timeout;        /* seconds to connect (0: libcurl's default) */
    long stall_timeout;          /* seconds without a byte before giving up (0: never) */
    size_t max_body;             /* a longer body fails the request */
} bn_http_req;

typedef struct {
    long status;
    char *headers;       /* the last response's header block, NUL-terminated */
    char *body;          /* NUL-terminated (body_len excludes the NUL) */
    size_t body_len;
    char *url;           /* the URL the response came from (after redirects) */
} bn_http_resp;

/* Runs the request. A transport failure (no connection, timeout, cut)
 * returns 0 with a message naming the URL; any HTTP status returns 1. */
int bn_http_request(const bn_http_req *req, bn_http_resp *resp, bn_err *err);
void bn_http_resp_free(bn_http_resp *resp);

/* Applies the settings every transfer shares (user agent, timeouts, proxies,
 * TLS) to a libcurl easy handle; fetch.c uses it too. */
void bn_http_common(void *curl, long connect_timeout, long stall_timeout);

/* A message for a libcurl failure code: the timeouts in words. */
int bn_http_fail(bn_err *err, int code, const char *url, long stall_timeout);

#endif
