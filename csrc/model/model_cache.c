/* model_cache.c: the process-wide registry of loaded models (model_cache.h).
 * This is the module's one piece of global state, on purpose: sharing
 * weights between Lua states is its whole point. A mutex guards it; the
 * registry holds no references, so a model goes when its last user lets
 * go, and a lookup takes a reference only from a model still alive. */
#include "model/model_cache.h"

#include "model/load.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct entry {
    struct entry *next;
    bn_model *model;
    int64_t id;
    char key[1536];
} entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static entry *cache_head;
static int64_t cache_next_id = 1;

static const char *or_empty(const char *s) { return s ? s : ""; }

/* The file's identity and every option that changes the loaded model. */
static int make_key(char *key, size_t cap, const char *path, const bn_load_opts *o, int n_ctx, bn_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        bn_errf(err, "%s: no such file or directory", path);
        return 0;
    }
    bn_load_opts none = {0};
    if (!o) o = &none;
    int n = snprintf(key, cap, "%llu:%llu:%lld:%lld.%09ld|%d|%s|%s|%d|%s|%d|%llu", (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec, o->threads, or_empty(o->kernel), or_empty(o->output_head), o->hugepages,
                     or_empty(o->scale_convention), n_ctx, (unsigned long long)o->max_memory);
    if (n < 0 || (size_t)n >= cap) {
        bn_errf(err, "%s: load options too long", path);
        return 0;
    }
    return 1;
}

/* A reference to m unless its last one is already gone (it is on its way
 * out of the registry then). */
static int retain_if_alive(bn_model *m) {
    int refs = atomic_load(&m->refs);
    while (refs > 0)
        if (atomic_compare_exchange_weak(&m->refs, &refs, refs + 1)) return 1;
    return 0;
}

bn_model *bn_model_open(const char *path, const bn_load_opts *opts, int n_ctx, bn_err *err) {
    char key[sizeof(((entry *)0)->key)];
    if (!make_key(key, sizeof key, path, opts, n_ctx, err)) return NULL;
    pthread_mutex_lock(&cache_lock);
    for (entry *e = cache_head; e; e = e->next)
        if (strcmp(e->key, key) == 0 && retain_if_alive(e->model)) {
            pthread_mutex_unlock(&cache_lock);
            return e->model;
        }
    /* loading under the lock: a second caller waits and then shares */
    entry *e = calloc(1, sizeof *e);
    bn_model *m = e ? bn_model_load(path, opts, err) : NULL;
    if (!e) bn_errf(err, "out of memory");
    if (m) {
        m->default_n_ctx = n_ctx;
        m->cache_id = cache_next_id++;
        m->cache_forget = bn_model_cache_forget;
        memcpy(e->key, key, sizeof key);
        e->model = m;
        e->id = m->cache_id;
        e->next = cache_head;
        cache_head = e;
    } else {
        free(e);
    }
    pthread_mutex_unlock(&cache_lock);
    return m;
}

bn_model *bn_model_attach(int64_t id) {
    bn_model *m = NULL;
    pthread_mutex_lock(&cache_lock);
    for (entry *e = cache_head; e; e = e->next)
        if (e->id == id && retain_if_alive(e->model)) {
            m = e->model;
            break;
        }
    pthread_mutex_unlock(&cache_lock);
    return m;
}

void bn_model_cache_forget(bn_model *m) {
    pthread_mutex_lock(&cache_lock);
    for (entry **p = &cache_head; *p; p = &(*p)->next)
        if ((*p)->model == m) {
            entry *e = *p;
            *p = e->next;
            free(e);
            break;
        }
    pthread_mutex_unlock(&cache_lock);
}
