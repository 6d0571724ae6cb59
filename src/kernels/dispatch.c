/* dispatch.c: picks the kernel table for this CPU.
 *
 * "avx2" needs AVX2, FMA and F16C; "avx512" needs AVX-512 F, BW, VL, DQ and
 * VNNI (plus what avx2 needs). cai__cpu() already folds in the OS's XGETBV
 * answer, so a CPU whose OS does not save the wide registers reports none of
 * them. COREAI_ISA=ref|avx2|avx512 overrides the choice; the environment is
 * read on every call (it is cheap), so tests can change it at run time. */
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
