/* pool.c: persistent worker threads with a spin-then-futex handshake.
 *
 * The dispatcher publishes (fn, ctx), bumps `gen` and wakes sleepers; each
 * worker runs its share and decrements `pending`; the dispatcher runs share
 * 0 and waits for `pending` to reach zero. Spinning first keeps the latency
 * of back-to-back dispatches (hundreds per decoded token) near a cache-line
 * transfer; the futex keeps an idle pool at zero CPU. */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "pool.h"

/* Spin budget before sleeping, in nanoseconds. Long enough to bridge the
 * gap between the dispatches of one decode step (a few microseconds), short
 * enough that an oversubscribed machine is not starved by spinners. The clock
 * is read every SPIN_CHECK pause instructions. */
#define SPIN_NS    50000
#define SPIN_CHECK 32

struct cai_pool {
    int          n_threads;
    pthread_t   *threads;
    cai_pool_fn  fn;
    void        *ctx;
    /* Each on its own cache line: they are hammered from different cores. */
    _Alignas(64) unsigned gen;      /* dispatch generation (futex word) */
    _Alignas(64) int      pending;  /* workers still running this generation */
    _Alignas(64) unsigned done_gen; /* futex word the dispatcher sleeps on */
    _Alignas(64) int      n_sleepers;
    int                   stop;
};

struct worker_arg {
    struct cai_pool *pool;
    int              ith;
};

static void futex_wait(unsigned *addr, unsigned val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(unsigned *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* True once the spin budget is used up. */
static inline bool spin_over(int *spins, int64_t *start)
{
    if (++*spins % SPIN_CHECK)
        return false;
    int64_t now = cai__now_ns();
    if (*start == 0)
        *start = now;
    return now - *start > SPIN_NS;
}

static void *worker_main(void *argp)
{
    struct worker_arg *arg = argp;
    struct cai_pool *p = arg->pool;
    int ith = arg->ith;
    cai__free(arg);
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        int64_t spin_start = 0;
        while ((g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE)) == seen) {
            if (!spin_over(&spins, &spin_start)) {
                cpu_relax();
                continue;
            }
            __atomic_add_fetch(&p->n_sleepers, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&p->gen, __ATOMIC_SEQ_CST) == seen)
                futex_wait(&p->gen, seen);
            __atomic_sub_fetch(&p->n_sleepers, 1, __ATOMIC_SEQ_CST);
            spins = 0;
            spin_start = 0;
        }
        seen = g;
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            return NULL;
        p->fn(p->ctx, ith, p->n_threads);
        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            __atomic_store_n(&p->done_gen, seen, __ATOMIC_RELEASE);
            futex_wake(&p->done_gen);
        }
    }
}

int cai__pool_new(struct cai_pool **out, int n_threads)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return CAI_ERANGE;
    struct cai_pool *p = cai__calloc(1, sizeof(*p));
    if (!p)
        return CAI_ENOMEM;
    p->n_threads = n_threads;
    if (n_threads > 1) {
        p->threads = cai__calloc((size_t)n_threads, sizeof(pthread_t));
        if (!p->threads) {
            cai__free(p);
            return CAI_ENOMEM;
        }
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *a = cai__malloc(sizeof(*a));
        if (!a || (a->pool = p, a->ith = i, pthread_create(&p->threads[i], NULL, worker_main, a))) {
            cai__free(a);
            p->n_threads = i; /* join the ones started */
            cai__pool_free(p);
            return CAI_ENOMEM;
        }
    }
    *out = p;
    return 0;
}

void cai__pool_free(struct cai_pool *p)
{
    if (!p)
        return;
    if (p->n_threads > 1) {
        __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&p->gen, 1, __ATOMIC_SEQ_CST);
        futex_wake(&p->gen);
        for (int i = 1; i < p->n_threads; i++)
            pthread_join(p->threads[i], NULL);
    }
    cai__free(p->threads);
    cai__free(p);
}

int cai__pool_n_threads(const struct cai_pool *p)
{
    return p ? p->n_threads : 1;
}

void cai__pool_run(struct cai_pool *p, cai_pool_fn fn, void *ctx)
{
    if (!p || p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    __atomic_store_n(&p->pending, p->n_threads - 1, __ATOMIC_RELAXED);
    unsigned g = __atomic_add_fetch(&p->gen, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->n_sleepers, __ATOMIC_SEQ_CST) > 0)
        futex_wake(&p->gen);
    fn(ctx, 0, p->n_threads);
    int spins = 0;
    int64_t spin_start = 0;
    while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) != 0) {
        if (!spin_over(&spins, &spin_start)) {
            cpu_relax();
            continue;
        }
        unsigned d = __atomic_load_n(&p->done_gen, __ATOMIC_ACQUIRE);
        if (d != g)
            futex_wait(&p->done_gen, d);
        spins = 0;
        spin_start = 0;
    }
}
