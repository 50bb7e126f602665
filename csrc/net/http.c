/* http.c: a request with its response in memory, over libcurl. */
#include "net/http.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

typedef struct {
    char *data;
    size_t len, cap, max;
    int over;
} buf;

static int buf_add(buf *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    buf *b = ud;
    if (b->max && b->len + n > b->max) {
        b->over = 1;
        return 0;
    }
    return buf_add(b, p, size * n) ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    buf *b = ud;
    /* a new status line starts the next response's block (redirects, 100) */
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) b->len = 0;
    return buf_add(b, p, size * n) ? size * n : 0;
}

void bn_http_common(void *curl, long connect_timeout, long stall_timeout) {
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "bitnet (libcurl; huggingface_hub-compatible cache)");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "identity");
    if (connect_timeout > 0) curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, connect_timeout);
    if (stall_timeout > 0) { /* under 1 byte/s for that long: a stalled server */
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, stall_timeout);
    }
}

int bn_http_fail(bn_err *err, int code, const char *url, long stall_timeout) {
    if (code == CURLE_OPERATION_TIMEDOUT && stall_timeout > 0)
        return bn_errf(err, "%s: timed out: no data for %ld s", url, stall_timeout);
    return bn_errf(err, "%s: %s", url, curl_easy_strerror((CURLcode)code));
}

int bn_http_request(const bn_http_req *req, bn_http_resp *resp, bn_err *err) {
    memset(resp, 0, sizeof *resp);
    CURL *curl = curl_easy_init();
    if (!curl) return bn_errf(err, "cannot start libcurl");
    buf body = {.max = req->max_body}, head = {0};
    struct curl_slist *list = NULL;
    int ok = 1;
    for (const char *const *h = req->headers; h && *h && ok; h++) {
        struct curl_slist *l = curl_slist_append(list, *h);
        if (!l) ok = 0;
        else list = l;
    }
    if (!ok) {
        curl_slist_free_all(list);
        curl_easy_cleanup(curl);
        return bn_errf(err, "out of memory");
    }
    bn_http_common(curl, req->connect_timeout, req->stall_timeout);
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, req->follow ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head);
    const char *method = req->method ? req->method : "GET";
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
        curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        if (body.over) bn_errf(err, "%s: the response is longer than %zu bytes", req->url, req->max_body);
        else bn_http_fail(err, rc, req->url, req->stall_timeout);
        ok = 0;
    } else {
        char *eff = NULL;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
        curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &eff);
        resp->url = strdup(eff ? eff : req->url);
        resp->headers = head.data ? head.data : strdup("");
        resp->body = body.data ? body.data : strdup("");
        resp->body_len = body.len;
        head.data = body.data = NULL;
        if (!resp->url || !resp->headers || !resp->body) {
            bn_http_resp_free(resp);
            ok = bn_errf(err, "out of memory");
        }
    }
    free(body.data);
    free(head.data);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return ok;
}

void bn_http_resp_free(bn_http_resp *resp) {
    free(resp->headers);
    free(resp->body);
    free(resp->url);
    memset(resp, 0, sizeof *resp);
}
