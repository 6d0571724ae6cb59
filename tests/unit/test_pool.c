/* test_pool.c: the thread pool runs every share exactly once per dispatch. */
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "base/pool.h"
#include "test.h"

struct count_ctx {
    int hits[16];
    int nth_seen[16];
};

static void count_fn(void *ctx, int ith, int nth)
{
    struct count_ctx *c = ctx;
    c->hits[ith]++;
    c->nth_seen[ith] = nth;
}

static void test_pool_shares(void)
{
    for (int n = 1; n <= 4; n++) {
        struct cai_pool *p;
        CHECK_EQ_INT(cai__pool_new(&p, n), 0);
        struct count_ctx c = {0};
        for (int r = 0; r < 2000; r++)
            cai__pool_run(p, count_fn, &c);
        for (int i = 0; i < n; i++) {
            CHECK_EQ_INT(c.hits[i], 2000);
            CHECK_EQ_INT(c.nth_seen[i], n);
        }
        CHECK_EQ_INT(c.hits[n], 0);
        cai__pool_free(p);
    }
}

static void test_pool_sleep_wake(void)
{
    struct cai_pool *p;
    CHECK_EQ_INT(cai__pool_new(&p, 3), 0);
    struct count_ctx c = {0};
    cai__pool_run(p, count_fn, &c);
    usleep(200000); /* long enough for the workers to fall asleep */
    cai__pool_run(p, count_fn, &c);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(c.hits[i], 2);
    cai__pool_free(p);
}

struct sum_ctx {
    const int *v;
    int n;
    long long partial[8];
};

static void sum_fn(void *ctx, int ith, int nth)
{
    struct sum_ctx *s = ctx;
    int per = (s->n + nth - 1) / nth, a = ith * per, b = CAI_MIN(s->n, a + per);
    long long acc = 0;
    for (int i = a; i < b; i++)
        acc += s->v[i];
    s->partial[ith] = acc;
}

static void test_pool_partition(void)
{
    static int v[10007];
    long long want = 0;
    for (int i = 0; i < 10007; i++) {
        v[i] = i * 7 % 13;
        want += v[i];
    }
    struct cai_pool *p;
    CHECK_EQ_INT(cai__pool_new(&p, 2), 0);
    struct sum_ctx s = {.v = v, .n = 10007};
    cai__pool_run(p, sum_fn, &s);
    CHECK_EQ_INT(s.partial[0] + s.partial[1], want);
    cai__pool_free(p);
    CHECK(cai__pool_new(&p, 0) == CAI_ERANGE);
    cai__pool_free(NULL);
}

struct item_ctx {
    int hits[5000];
    int bad_ith;
    int nth;
};

static void item_fn(void *ctx, int64_t item, int ith)
{
    struct item_ctx *c = ctx;
    __atomic_add_fetch(&c->hits[item], 1, __ATOMIC_RELAXED);
    if (ith < 0 || ith >= c->nth)
        __atomic_add_fetch(&c->bad_ith, 1, __ATOMIC_RELAXED);
}

/* cai__pool_for runs every item exactly once, interleaved with
 * cai__pool_run dispatches and with workers asleep, for 1-4 threads. */
static void test_pool_items(void)
{
    static struct item_ctx c;
    for (int n = 1; n <= 4; n++) {
        struct cai_pool *p;
        CHECK_EQ_INT(cai__pool_new(&p, n), 0);
        struct count_ctx cc = {0};
        int runs = 0, bad = 0;
        for (int r = 0; r < 300; r++) {
            int64_t n_items = (r * 37) % 5000;
            memset(&c, 0, sizeof(c));
            c.nth = n;
            cai__pool_for(p, n_items, item_fn, &c);
            for (int64_t i = 0; i < 5000; i++)
                bad += c.hits[i] != (i < n_items);
            bad += c.bad_ith;
            if (r % 3 == 0) {
                cai__pool_run(p, count_fn, &cc);
                runs++;
            }
            if (r % 100 == 50)
                usleep(100000); /* workers fall asleep */
        }
        CHECK_MSG(bad == 0, "%d threads: %d items run other than once", n, bad);
        for (int i = 0; i < n; i++)
            CHECK_EQ_INT(cc.hits[i], runs);
        cai__pool_free(p);
    }
}

int main(void)
{
    RUN(test_pool_shares);
    RUN(test_pool_sleep_wake);
    RUN(test_pool_partition);
    RUN(test_pool_items);
    return test_done();
}
