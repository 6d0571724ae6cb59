/* test.h: a tiny test harness. Each tests/.../test_x.c is one binary:
 *
 *     static void test_something(void) { CHECK(1 + 1 == 2); CHECK_EQ_INT(a, b); }
 *     int main(void) { RUN(test_something); return test_done(); }
 *
 * A test fails when any CHECK in it fails; every failing CHECK prints its
 * file:line and values. test_done() prints "N passed, M failed" and returns
 * the exit status. Fixtures are read relative to the repository root (the
 * runner's working directory). */
#ifndef CAI_TEST_H
#define CAI_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_n_pass, test_n_fail, test_cur_failed, test_n_skip;
static const char *test_cur_name = "";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s: CHECK(%s)\n", __FILE__, __LINE__, test_cur_name,   \
                    #cond);                                                                        \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s: CHECK(%s): ", __FILE__, __LINE__, test_cur_name,   \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "  FAIL %s:%d: %s: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__,     \
                    test_cur_name, #a, #b, va_, vb_);                                              \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double va_ = (double)(a), vb_ = (double)(b), vt_ = (double)(tol);                          \
        if (!(fabs(va_ - vb_) <= vt_)) {                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s: |%s - %s| <= %g (%.9g vs %.9g)\n", __FILE__,        \
                    __LINE__, test_cur_name, #a, #b, vt_, va_, vb_);                               \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            fprintf(stderr, "  FAIL %s:%d: %s: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__, \
                    test_cur_name, #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");            \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)

/* Marks the current test skipped (e.g. a model file is absent) and returns. */
#define SKIP(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "  SKIP %s: ", test_cur_name);                                             \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        test_cur_failed = -1;                                                                      \
        return;                                                                                    \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        test_cur_name = #fn;                                                                       \
        test_cur_failed = 0;                                                                       \
        fn();                                                                                      \
        if (test_cur_failed > 0) {                                                                 \
            test_n_fail++;                                                                         \
            fprintf(stderr, "not ok %s\n", #fn);                                                   \
        } else if (test_cur_failed < 0) {                                                          \
            test_n_skip++;                                                                         \
        } else {                                                                                   \
            test_n_pass++;                                                                         \
        }                                                                                          \
    } while (0)

static inline int test_done(void)
{
    if (test_n_skip)
        printf("%d passed, %d failed, %d skipped\n", test_n_pass, test_n_fail, test_n_skip);
    else
        printf("%d passed, %d failed\n", test_n_pass, test_n_fail);
    return test_n_fail ? 1 : 0;
}

#endif /* CAI_TEST_H */
