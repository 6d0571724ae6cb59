/* dispatch.c: picks the kernel table for this CPU.
 *
 * "avx2" needs AVX2, FMA and F16C; "avx512" needs AVX-512 F, BW, VL, DQ and
 * VNNI (plus what avx2 needs). cai__cpu() already folds in the OS's XGETBV
 * answer, so a CPU whose OS does not save the wide registers reports none of
 * them. COREAI_ISA=ref|avx2|avx512 overrides the choice; the environment is
 * read on every call (it is cheap), so tests can change it at run time. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#include "../base/base.h"

static bool have_avx2(const struct cai_cpu *c)
{
    return c->avx2 && c->fma && c->f16c;
}

static bool have_avx512(const struct cai_cpu *c)
{
    return have_avx2(c) && c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq &&
           c->avx512vnni;
}

int cai__kernels_supported(const char *isa)
{
    if (!isa)
        return 0;
    if (strcmp(isa, "ref") == 0)
        return 1;
#if defined(__x86_64__)
    if (strcmp(isa, "avx2") == 0)
        return have_avx2(cai__cpu());
    if (strcmp(isa, "avx512") == 0)
        return have_avx512(cai__cpu());
#endif
    return 0;
}

const struct cai_kernels *cai__kernels_by_name(const char *isa)
{
    if (!cai__kernels_supported(isa))
        return NULL;
    if (strcmp(isa, "avx512") == 0)
        return &cai__kernels_avx512;
    if (strcmp(isa, "avx2") == 0)
        return &cai__kernels_avx2;
    return &cai__kernels_ref;
}

const struct cai_kernels *cai__kernels_get(void)
{
    const char *force = getenv("COREAI_ISA");
    if (force && *force)
        return cai__kernels_by_name(force);
    if (cai__kernels_supported("avx512"))
        return &cai__kernels_avx512;
    if (cai__kernels_supported("avx2"))
        return &cai__kernels_avx2;
    return &cai__kernels_ref;
}

/* ---- the per-output tables ---------------------------------------------- */

/* mm of table `isa`, type T, as one vec_dot per output: the definition the
 * tiled kernels must reproduce bit for bit (tests and benchmarks compare the
 * whole forward pass on both). */
#define LOOP_MM(isa, T)                                                                            \
    static void loop_##isa##_##T(int64_t n, const void *w, size_t w_stride, int64_t r0,           \
                                 int64_t r1, const void *x, size_t x_stride, int n_tok, float *y,  \
                                 size_t y_stride, void *scratch)                                   \
    {                                                                                              \
        (void)scratch;                                                                             \
        float (*vd)(int64_t, const void *, const void *) = cai__kernels_##isa.type[T].vec_dot;     \
        for (int64_t r = r0; r < r1; r++)                                                          \
            for (int t = 0; t < n_tok; t++)                                                        \
                y[(size_t)t * y_stride + (size_t)r] =                                              \
                    vd(n, (const uint8_t *)w + (size_t)r * w_stride,                               \
                       (const uint8_t *)x + (size_t)t * x_stride);                                 \
    }

#define LOOP_MM_ALL(isa)                                                                           \
    LOOP_MM(isa, CAI_TYPE_F32)                                                                     \
    LOOP_MM(isa, CAI_TYPE_F16)                                                                     \
    LOOP_MM(isa, CAI_TYPE_BF16)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q4_0)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q4_1)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q5_0)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q5_1)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q8_0)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q8_1)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q4_K)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q5_K)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q6_K)                                                                    \
    LOOP_MM(isa, CAI_TYPE_Q8_K)                                                                    \
    static void set_loops_##isa(struct cai_kernels *k)                                             \
    {                                                                                              \
        k->type[CAI_TYPE_F32].mm = loop_##isa##_CAI_TYPE_F32;                                      \
        k->type[CAI_TYPE_F16].mm = loop_##isa##_CAI_TYPE_F16;                                      \
        k->type[CAI_TYPE_BF16].mm = loop_##isa##_CAI_TYPE_BF16;                                    \
        k->type[CAI_TYPE_Q4_0].mm = loop_##isa##_CAI_TYPE_Q4_0;                                    \
        k->type[CAI_TYPE_Q4_1].mm = loop_##isa##_CAI_TYPE_Q4_1;                                    \
        k->type[CAI_TYPE_Q5_0].mm = loop_##isa##_CAI_TYPE_Q5_0;                                    \
        k->type[CAI_TYPE_Q5_1].mm = loop_##isa##_CAI_TYPE_Q5_1;                                    \
        k->type[CAI_TYPE_Q8_0].mm = loop_##isa##_CAI_TYPE_Q8_0;                                    \
        k->type[CAI_TYPE_Q8_1].mm = loop_##isa##_CAI_TYPE_Q8_1;                                    \
        k->type[CAI_TYPE_Q4_K].mm = loop_##isa##_CAI_TYPE_Q4_K;                                    \
        k->type[CAI_TYPE_Q5_K].mm = loop_##isa##_CAI_TYPE_Q5_K;                                    \
        k->type[CAI_TYPE_Q6_K].mm = loop_##isa##_CAI_TYPE_Q6_K;                                    \
        k->type[CAI_TYPE_Q8_K].mm = loop_##isa##_CAI_TYPE_Q8_K;                                    \
        for (int t_ = 0; t_ < CAI_TYPE_COUNT; t_++) /* the original rows only */                   \
            k->type[t_].mm_packed = NULL;                                                          \
    }

LOOP_MM_ALL(ref)
LOOP_MM_ALL(avx2)
LOOP_MM_ALL(avx512)

static struct cai_kernels loop_tables[3];
static pthread_once_t loop_once = PTHREAD_ONCE_INIT;

static void init_loop_tables(void)
{
    loop_tables[0] = cai__kernels_ref;
    set_loops_ref(&loop_tables[0]);
    loop_tables[1] = cai__kernels_avx2;
    set_loops_avx2(&loop_tables[1]);
    loop_tables[2] = cai__kernels_avx512;
    set_loops_avx512(&loop_tables[2]);
}

const struct cai_kernels *cai__kernels_loop_by_name(const char *isa)
{
    const struct cai_kernels *k = cai__kernels_by_name(isa);
    if (!k)
        return NULL;
    pthread_once(&loop_once, init_loop_tables);
    return k == &cai__kernels_avx512 ? &loop_tables[2]
         : k == &cai__kernels_avx2   ? &loop_tables[1]
                                     : &loop_tables[0];
}
