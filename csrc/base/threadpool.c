/* threadpool.c: pthreads workers woken per job, spinning barrier inside. */
#define _GNU_SOURCE
#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

struct worker {
    bn_pool *pool;
    int ith;
    pthread_t thread;
};

struct bn_pool {
    int n;                      /* threads in all, caller included */
    int job_n;                  /* threads the running job uses */
    pthread_mutex_t mu;
    pthread_cond_t work, done;  /* a job is posted / the last worker finished */
    uint64_t job;               /* generation of the posted job */
    int pending;                /* workers still running the job */
    int quit;
    bn_pool_fn fn;
    void *ctx;
    atomic_int bar_count;
    atomic_uint bar_gen;        /* bumped when the last thread arrives */
    atomic_int bar_sleepers;    /* threads asleep on bar_gen */
    struct worker *workers;
    int n_workers;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    bn_pool *p = w->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->job == seen && !p->quit) pthread_cond_wait(&p->work, &p->mu);
        if (p->quit) break;
        seen = p->job;
        bn_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        if (w->ith < p->job_n) fn(ctx, w->ith, p->job_n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

bn_pool *bn_pool_new(int nthreads) {
    if (nthreads < 1) nthreads = 1;
    bn_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->bar_count, 0);
    atomic_init(&p->bar_gen, 0u);
    atomic_init(&p->bar_sleepers, 0);
    p->n = 1;
    if (nthreads > 1) {
        p->workers = calloc((size_t)nthreads - 1, sizeof *p->workers);
        if (!p->workers) {
            bn_pool_free(p);
            return NULL;
        }
        for (int i = 0; i < nthreads - 1; i++) {
            struct worker *w = &p->workers[p->n_workers];
            w->pool = p;
            w->ith = p->n_workers + 1;
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) break; /* run with fewer */
            p->n_workers++;
        }
        p->n = p->n_workers + 1;
    }
    return p;
}

void bn_pool_free(bn_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int bn_pool_size(const bn_pool *p) { return p ? p->n : 1; }

void bn_pool_run(bn_pool *p, int nth, bn_pool_fn fn, void *ctx) {
    if (!p || nth <= 1 || p->n == 1) {
        if (p) p->job_n = 1;
        fn(ctx, 0, 1);
        return;
    }
    if (nth > p->n) nth = p->n;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->job_n = nth;
    p->pending = p->n_workers;
    p->job++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, nth);
    pthread_mutex_lock(&p->mu);
    while (p->pending) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Sleeping on the barrier word: a futex on Linux, a yield elsewhere. */
static void bar_sleep(bn_pool *p, unsigned gen) {
#if defined(__linux__)
    syscall(SYS_futex, (unsigned *)&p->bar_gen, FUTEX_WAIT_PRIVATE, gen, NULL, NULL, 0);
#else
    (void)p, (void)gen;
    sched_yield();
#endif
}

static void bar_wake(bn_pool *p) {
#if defined(__linux__)
    syscall(SYS_futex, (unsigned *)&p->bar_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)p;
#endif
}

#define BAR_SPINS 2000 /* about 50 microseconds of pause instructions */

void bn_pool_barrier(bn_pool *p) {
    if (!p || p->job_n <= 1) return;
    unsigned gen = atomic_load(&p->bar_gen);
    if (atomic_fetch_add(&p->bar_count, 1) == p->job_n - 1) {
        atomic_store(&p->bar_count, 0);
        atomic_fetch_add(&p->bar_gen, 1u);
        if (atomic_load(&p->bar_sleepers) > 0) bar_wake(p);
        return;
    }
    /* spin briefly (the others are microseconds away on an idle machine),
     * then sleep: on a busy machine a spinning thread would hold the core
     * the late thread is waiting for */
    for (int spins = 0; spins < BAR_SPINS; spins++) {
        if (atomic_load(&p->bar_gen) != gen) return;
        CPU_RELAX();
    }
    atomic_fetch_add(&p->bar_sleepers, 1);
    while (atomic_load(&p->bar_gen) == gen) bar_sleep(p, gen);
    atomic_fetch_sub(&p->bar_sleepers, 1);
}

void bn_split(int64_t n, int ith, int nth, int64_t align, int64_t *a, int64_t *b) {
    if (align < 1) align = 1;
    int64_t units = (n + align - 1) / align;
    int64_t ua = units * ith / nth, ub = units * (ith + 1) / nth;
    *a = ua * align < n ? ua * align : n;
    *b = ub * align < n ? ub * align : n;
}

/* Counts distinct (package, core) pairs among the CPUs in our affinity
 * mask, from sysfs; falls back to the CPU count. */
int bn_physical_cores(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int ncpu = CPU_COUNT(&set);
    if (ncpu < 1) return 1;
    long seen[256];
    int n_seen = 0, unknown = 0;
    for (int c = 0; c < CPU_SETSIZE && n_seen < 256; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        char path[128];
        long pkg = 0, core = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", c);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &core) != 1) core = -1;
            fclose(f);
        }
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", c);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &pkg) != 1) pkg = 0;
            fclose(f);
        }
        if (core < 0) {
            unknown = 1;
            break;
        }
        long key = pkg * 65536 + core;
        int dup = 0;
        for (int i = 0; i < n_seen; i++) dup |= seen[i] == key;
        if (!dup) seen[n_seen++] = key;
    }
    if (unknown || n_seen == 0) return ncpu;
    return n_seen;
}
