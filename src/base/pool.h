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

typedef void (*cai_pool_fn)(void *ctx, int ith, int nth);

struct cai_pool;

/* n_threads >= 1 (1 = no worker threads; fn runs on the caller). */
int  cai__pool_new(struct cai_pool **out, int n_threads);
void cai__pool_free(struct cai_pool *p); /* NULL is a no-op */
void cai__pool_run(struct cai_pool *p, cai_pool_fn fn, void *ctx);
int  cai__pool_n_threads(const struct cai_pool *p);

#endif /* CAI_POOL_H */
