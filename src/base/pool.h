/* pool.h: a persistent thread pool for data-parallel kernels.
 *
 * cai__pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once on each of the
 * pool's nth threads (the caller is thread 0) and returns when all calls
 * have returned: it is a fork and a join in one, with no allocation. Idle
 * workers spin briefly (the next dispatch of a decode step comes within
 * microseconds) and then sleep on a futex, so an idle pool costs no CPU.
 * One caller at a time per pool. */
#ifndef CAI_POOL_H
#define CAI_POOL_H

#include <stdint.h>

typedef void (*cai_pool_fn)(void *ctx, int ith, int nth);
/* One item of cai__pool_for: the item, and the index (< nth) of the thread
 * running it, for per-thread scratch. */
typedef void (*cai_pool_item_fn)(void *ctx, int64_t item, int ith);

struct cai_pool;

/* n_threads >= 1 (1 = no worker threads; fn runs on the caller). */
int  cai__pool_new(struct cai_pool **out, int n_threads);
void cai__pool_free(struct cai_pool *p); /* NULL is a no-op */
void cai__pool_run(struct cai_pool *p, cai_pool_fn fn, void *ctx);
/* fn(ctx, i, ith) for every i in [0, n_items), the items claimed one at a
 * time by whichever thread is free, the caller included; returns when all
 * have returned. A worker that is descheduled (other processes on the
 * machine) delays the call by at most the item it holds, not by a whole
 * static share: a worker that has not joined when the caller runs out of
 * items is not waited for. */
void cai__pool_for(struct cai_pool *p, int64_t n_items, cai_pool_item_fn fn, void *ctx);
int  cai__pool_n_threads(const struct cai_pool *p);

#endif /* CAI_POOL_H */
