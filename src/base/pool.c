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

/* The job word: generation (bits 32-63), STATIC (cai__pool_run: every
 * thread must take part) or CLOSED (cai__pool_for: no more workers may
 * join), and the number of workers that joined (bits 0-29). */
#define JOB_STATIC (1ull << 31)
#define JOB_CLOSED (1ull << 30)
#define JOB_COUNT  ((1ull << 30) - 1)

struct cai_pool {
    int              n_threads;
    pthread_t       *threads;
    cai_pool_fn      fn;
    cai_pool_item_fn item_fn;
    void            *ctx;
    int64_t          n_items;
    unsigned         last_gen; /* the dispatcher's generation counter */
    /* Each on its own cache line: they are hammered from different cores. */
    _Alignas(64) uint64_t job;      /* the job word, published before gen */
    _Alignas(64) int64_t next_item; /* cai__pool_for: next unclaimed item */
    _Alignas(64) int      exited;   /* cai__pool_for: joined workers done */
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

/* A worker's part of a cai__pool_for job: join it unless it is closed or
 * over (then it is none of this worker's business: the caller did the
 * items), claim items until none are left, leave. Joining is a
 * compare-and-swap on the job word, so a worker joins only the job the word
 * names, and the caller does not return (and the job fields do not change)
 * until every worker that joined has left. */
static void run_items(struct cai_pool *p, uint64_t w, int ith)
{
    const uint64_t g = w >> 32;
    for (;;) {
        /* closed, or already followed by another job: not for this worker */
        if ((w >> 32) != g || (w & (JOB_CLOSED | JOB_STATIC)))
            return;
        if (__atomic_compare_exchange_n(&p->job, &w, w + 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            break;
    }
    int64_t i;
    while ((i = __atomic_fetch_add(&p->next_item, 1, __ATOMIC_RELAXED)) < p->n_items)
        p->item_fn(p->ctx, i, ith);
    __atomic_add_fetch(&p->exited, 1, __ATOMIC_RELEASE);
}

static void *worker_main(void *argp)
{
    struct worker_arg *arg = argp;
    struct cai_pool *p = arg->pool;
    int ith = arg->ith;
    cai__free(arg);
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        int64_t spin_start = 0;
        while (__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen) {
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
        /* the job word names the current job; it is published before gen,
         * so it may name a job this worker already did while gen still
         * shows the one before: then wait for gen to catch up */
        uint64_t w = __atomic_load_n(&p->job, __ATOMIC_ACQUIRE);
        if ((unsigned)(w >> 32) == seen) {
            cpu_relax();
            continue;
        }
        seen = (unsigned)(w >> 32);
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            return NULL;
        if (!(w & JOB_STATIC)) {
            run_items(p, w, ith);
            continue;
        }
        /* cai__pool_run: the caller waits for every worker, so this job is
         * still the current one */
        p->fn(p->ctx, ith, p->n_threads);
        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            __atomic_store_n(&p->done_gen, seen, __ATOMIC_RELEASE);
            futex_wake(&p->done_gen);
        }
    }
}

/* Publishes job word w (generation last_gen + 1) and wakes the workers. */
static unsigned publish(struct cai_pool *p, uint64_t flags)
{
    unsigned g = ++p->last_gen;
    if (g == 0) /* 0 is the workers' initial "seen" */
        g = ++p->last_gen;
    __atomic_store_n(&p->job, (uint64_t)g << 32 | flags, __ATOMIC_RELEASE);
    __atomic_store_n(&p->gen, g, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->n_sleepers, __ATOMIC_SEQ_CST) > 0)
        futex_wake(&p->gen);
    return g;
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
        publish(p, JOB_CLOSED);
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

void cai__pool_for(struct cai_pool *p, int64_t n_items, cai_pool_item_fn fn, void *ctx)
{
    if (!p || p->n_threads == 1 || n_items <= 1) {
        for (int64_t i = 0; i < n_items; i++)
            fn(ctx, i, 0);
        return;
    }
    /* every worker of the previous job has left it: the fields are free */
    p->item_fn = fn;
    p->ctx = ctx;
    p->n_items = n_items;
    __atomic_store_n(&p->next_item, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->exited, 0, __ATOMIC_RELAXED);
    publish(p, 0);
    int64_t i;
    while ((i = __atomic_fetch_add(&p->next_item, 1, __ATOMIC_RELAXED)) < n_items)
        fn(ctx, i, 0);
    /* close the job; wait for the workers that joined (each finishes the
     * item it holds), not for those that did not get to it */
    uint64_t w = __atomic_fetch_or(&p->job, JOB_CLOSED, __ATOMIC_ACQ_REL);
    int joined = (int)(w & JOB_COUNT);
    while (__atomic_load_n(&p->exited, __ATOMIC_ACQUIRE) != joined)
        cpu_relax();
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
    unsigned g = publish(p, JOB_STATIC);
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
