/* threadpool.h: a fixed set of worker threads that run one function on
 * every thread at once (the caller is thread 0), with a barrier between
 * the phases of that function. Workers sleep on a condition variable
 * between jobs; only the barrier inside a job spins, briefly, because the
 * phases it separates are microseconds apart. */
#ifndef BN_THREADPOOL_H
#define BN_THREADPOOL_H

#include <stdint.h>

typedef struct bn_pool bn_pool;

/* fn(ctx, ith, nth) runs once on each of the nth threads, ith = 0..nth-1. */
typedef void (*bn_pool_fn)(void *ctx, int ith, int nth);

/* Creates a pool of nthreads threads in all (nthreads - 1 workers); fewer
 * if the system refuses to start some. Returns NULL only when out of memory. */
bn_pool *bn_pool_new(int nthreads);
/* Stops and joins the workers; NULL is accepted. */
void bn_pool_free(bn_pool *p);
/* Number of threads a job runs on (workers + the caller). */
int bn_pool_size(const bn_pool *p);
/* Runs fn on the first nth threads (1 <= nth <= size; the others stay
 * asleep) and returns when all have finished. */
void bn_pool_run(bn_pool *p, int nth, bn_pool_fn fn, void *ctx);
/* Waits until every thread of the running job has reached this call. Call
 * it from inside fn, the same number of times on every thread. */
void bn_pool_barrier(bn_pool *p);

/* The share [*a, *b) of n items for thread ith of nth, boundaries rounded
 * to multiples of align (the last share takes the rest). */
void bn_split(int64_t n, int ith, int nth, int64_t align, int64_t *a, int64_t *b);

/* Physical cores this process may run on (at least 1): the default
 * thread count, since two hyperthreads share one core's vector units. */
int bn_physical_cores(void);

#endif
