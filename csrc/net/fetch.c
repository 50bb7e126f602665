/* fetch.c: resumable, retried, verified download of one file (fetch.h). */
#include "net/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "net/http.h"
#include "net/sha256.h"

/* ---- the hashing thread: reads the file back behind the writer ---- */

enum { HASH_CHUNK = 1 << 20, HASH_BATCH = 8 << 20 };

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    long long avail;  /* bytes the writer has put in the file */
    long long hashed; /* bytes hashed so far */
    int done;         /* the writer finished: hash up to avail and stop */
    int waiting;      /* the thread sleeps until woken */
    int failed;       /* a read failed (errno in err_no) */
    int err_no;
    bn_sha256 *h;
    unsigned char *chunk;
    pthread_t thread;
    int running;
} hasher;

static void *hash_loop(void *ud) {
    hasher *hs = ud;
    pthread_mutex_lock(&hs->mu);
    for (;;) {
        while (hs->hashed == hs->avail && !hs->done) {
            hs->waiting = 1;
            pthread_cond_wait(&hs->cv, &hs->mu);
            hs->waiting = 0;
        }
        if (hs->hashed == hs->avail) break; /* done and caught up */
        long long from = hs->hashed, to = hs->avail;
        pthread_mutex_unlock(&hs->mu);
        while (from < to) {
            size_t want = (size_t)(to - from < HASH_CHUNK ? to - from : HASH_CHUNK);
            ssize_t got = pread(hs->fd, hs->chunk, want, (off_t)from);
            if (got <= 0) {
                pthread_mutex_lock(&hs->mu);
                hs->failed = 1;
                hs->err_no = got < 0 ? errno : EIO;
                pthread_mutex_unlock(&hs->mu);
                return NULL;
            }
            bn_sha256_update(hs->h, hs->chunk, (size_t)got);
            from += got;
        }
        pthread_mutex_lock(&hs->mu);
        hs->hashed = to;
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

/* Starts hashing the file from byte 0, `avail` bytes present. */
static int hasher_start(hasher *hs, int fd, long long avail) {
    memset(hs, 0, sizeof *hs);
    hs->fd = fd;
    hs->avail = avail;
    hs->h = bn_sha256_new();
    hs->chunk = malloc(HASH_CHUNK);
    if (!hs->h || !hs->chunk) goto fail;
    pthread_mutex_init(&hs->mu, NULL);
    pthread_cond_init(&hs->cv, NULL);
    if (pthread_create(&hs->thread, NULL, hash_loop, hs) != 0) {
        pthread_mutex_destroy(&hs->mu);
        pthread_cond_destroy(&hs->cv);
        goto fail;
    }
    hs->running = 1;
    return 1;
fail:
    bn_sha256_free(hs->h);
    free(hs->chunk);
    return 0;
}

/* The writer's new length. The thread is woken once a batch has piled up,
 * not for every write: a wake-up per 16 KB costs more than the hashing. */
static void hasher_advance(hasher *hs, long long avail) {
    pthread_mutex_lock(&hs->mu);
    hs->avail = avail;
    if (hs->waiting && avail - hs->hashed >= HASH_BATCH) pthread_cond_signal(&hs->cv);
    pthread_mutex_unlock(&hs->mu);
}

/* Waits for the thread to hash everything written; writes the digest
 * (when hex is not NULL and no read failed) and frees the state. Returns
 * 0 when a read failed. */
static int hasher_finish(hasher *hs, char hex[65]) {
    if (!hs->running) return 0;
    pthread_mutex_lock(&hs->mu);
    hs->done = 1;
    pthread_cond_signal(&hs->cv);
    pthread_mutex_unlock(&hs->mu);
    pthread_join(hs->thread, NULL);
    int ok = !hs->failed;
    if (ok && hex) bn_sha256_hex(hs->h, hex);
    if (!ok) errno = hs->err_no;
    pthread_mutex_destroy(&hs->mu);
    pthread_cond_destroy(&hs->cv);
    bn_sha256_free(hs->h);
    free(hs->chunk);
    hs->running = 0;
    return ok;
}

/* ---- one attempt ---- */

typedef struct {
    const bn_fetch_req *req;
    int fd;
    long long offset;    /* file length when the attempt started */
    long long written;   /* bytes of this attempt written */
    long status;         /* status of the response now being received */
    int restart;         /* the server ignored the Range: start the file over */
    int write_errno;
    int cancelled;
    double last_report;
    hasher *hs;
    CURL *curl;
} attempt;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    attempt *a = ud;
    if (size * n <= 2 && (p[0] == '\r' || p[0] == '\n')) { /* end of one response's headers */
        curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &a->status);
        if (a->status == 200 && a->offset > 0) a->restart = 1;
    }
    return size * n;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    attempt *a = ud;
    size_t len = size * n;
    if (a->status < 200 || a->status >= 300) return len; /* an error page: not the file */
    if (a->restart) { /* a 200 to a Range request: the whole file follows */
        if (ftruncate(a->fd, 0) != 0) {
            a->write_errno = errno;
            return 0;
        }
        hasher_finish(a->hs, NULL);
        if (!hasher_start(a->hs, a->fd, 0)) {
            a->write_errno = ENOMEM;
            return 0;
        }
        a->offset = 0;
        a->restart = 0;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(a->fd, p + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            a->write_errno = errno;
            return 0;
        }
        done += (size_t)w;
    }
    a->written += (long long)len;
    hasher_advance(a->hs, a->offset + a->written);
    return len;
}

static int report(attempt *a, int final) {
    const bn_fetch_req *req = a->req;
    if (!req->progress) return 0;
    double t = now_s();
    if (!final && t - a->last_report < 0.1) return 0;
    a->last_report = t;
    if (req->progress(req->ud, a->offset + a->written, req->size)) a->cancelled = 1;
    return a->cancelled;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return report(ud, 0);
}

static long long file_length(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (long long)st.st_size : -1;
}

/* Runs one request from the file's current length. Returns the libcurl
 * code; a->status holds the last HTTP status. */
static CURLcode run_attempt(attempt *a, struct curl_slist *headers) {
    const bn_fetch_req *req = a->req;
    char range[64];
    struct curl_slist *list = headers;
    CURL *curl = a->curl;
    curl_easy_reset(curl);
    bn_http_common(curl, req->connect_timeout, req->stall_timeout);
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, a);
    if (a->offset > 0) {
        snprintf(range, sizeof range, "%lld-", a->offset);
        curl_easy_setopt(curl, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    return curl_easy_perform(curl);
}

static int retryable(CURLcode rc, long status) {
    if (rc == CURLE_OK) return status >= 500 || status == 408 || status == 429;
    switch (rc) {
    case CURLE_PARTIAL_FILE: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT: case CURLE_COULDNT_CONNECT: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int bn_fetch(const bn_fetch_req *req, bn_fetch_result *res, bn_err *err) {
    memset(res, 0, sizeof *res);
    struct curl_slist *list = NULL;
    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *l = curl_slist_append(list, *h);
        if (!l) {
            curl_slist_free_all(list);
            return bn_errf(err, "out of memory");
        }
        list = l;
    }
    int fd = open(req->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        curl_slist_free_all(list);
        return bn_errf(err, "cannot write %s: %s", req->path, strerror(errno));
    }
    long long have = file_length(fd);
    if (req->size >= 0 && have > req->size) { /* longer than the file: not a prefix of it */
        if (ftruncate(fd, 0) != 0) have = -1;
        else have = 0;
    }
    hasher hs;
    CURL *curl = curl_easy_init();
    int ok = 0, hashing = 0;
    if (have < 0 || !curl || !(hashing = hasher_start(&hs, fd, have))) {
        bn_errf(err, "cannot start the download of %s", req->url);
        goto out;
    }
    attempt a = {.req = req, .fd = fd, .hs = &hs, .curl = curl};
    CURLcode rc = CURLE_OK;
    double wait = req->backoff;
    for (int i = 0; i <= req->retries; i++) {
        a.offset = file_length(fd);
        a.written = 0;
        a.status = 0;
        a.restart = 0;
        if (req->size >= 0 && a.offset == req->size) { /* already whole (resumed at its end) */
            rc = CURLE_OK;
            a.status = 206;
            break;
        }
        if (i > 0) {
            sleep_s(wait);
            wait *= 2;
        }
        if (res->attempts == 0) res->resumed_from = a.offset;
        res->attempts++;
        rc = run_attempt(&a, list);
        res->status = a.status;
        if (a.cancelled || a.write_errno) break;
        if (rc == CURLE_OK && a.status == 416 && a.offset > 0) { /* our prefix is not theirs */
            if (ftruncate(fd, 0) != 0) break;
            hasher_finish(&hs, NULL);
            if (!(hashing = hasher_start(&hs, fd, 0))) break;
            continue;
        }
        if (!retryable(rc, a.status)) break;
    }
    res->bytes = file_length(fd);
    if (a.cancelled) {
        res->cancelled = 1;
        bn_errf(err, "%s: cancelled (%lld bytes kept in %s)", req->url, res->bytes, req->path);
    } else if (a.write_errno) {
        bn_errf(err, "cannot write %s: %s", req->path, strerror(a.write_errno));
    } else if (rc != CURLE_OK) {
        bn_http_fail(err, rc, req->url, req->stall_timeout);
        if (res->attempts > 1) { /* say how hard we tried */
            bn_err e2 = {0};
            bn_errf(&e2, "%s (after %d attempts)", err->msg, res->attempts);
            memcpy(err->msg, e2.msg, sizeof e2.msg);
        }
    } else if (a.status < 200 || a.status >= 300) {
        bn_errf(err, "%s: HTTP %ld%s", req->url, a.status, res->attempts > 1 ? " (after retries)" : "");
    } else if (req->size >= 0 && res->bytes != req->size) {
        bn_errf(err, "%s: got %lld bytes where the file has %lld", req->url, res->bytes, req->size);
        unlink(req->path);
    } else {
        report(&a, 1);
        ok = 1;
    }
    /* the digest: only of a whole file */
    int hashed = hasher_finish(&hs, ok ? res->sha256 : NULL);
    hashing = 0;
    if (ok && !hashed) ok = bn_errf(err, "cannot read back %s: %s", req->path, strerror(errno));
    if (ok && req->sha256 && strcmp(req->sha256, res->sha256) != 0) {
        ok = bn_errf(err, "%s: SHA-256 mismatch: the Hub states %s, the bytes received hash to %s; deleted %s",
                     req->url, req->sha256, res->sha256, req->path);
        unlink(req->path);
    }
out:
    if (hashing) hasher_finish(&hs, NULL);
    if (curl) curl_easy_cleanup(curl);
    curl_slist_free_all(list);
    close(fd);
    return ok;
}
