/* cpu.c: CPU and OS feature detection (CPUID plus XGETBV for the register state). */
#include <pthread.h>
#include <unistd.h>

#include "base.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(struct cai_cpu *c)
{
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d))
        return;
    bool osxsave = (cx >> 27) & 1;
    bool avx = (cx >> 28) & 1;
    c->fma = (cx >> 12) & 1;
    c->f16c = (cx >> 29) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm_ok = (xcr0 & 0x6) == 0x6;
    bool zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
    if (!avx || !ymm_ok) {
        c->fma = c->f16c = false;
        return;
    }
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, cx, d);
    c->avx2 = (b >> 5) & 1;
    if (zmm_ok) {
        c->avx512f = (b >> 16) & 1;
        c->avx512dq = (b >> 17) & 1;
        c->avx512bw = (b >> 30) & 1;
        c->avx512vl = (b >> 31) & 1;
        c->avx512vbmi = (cx >> 1) & 1;
        c->avx512vnni = (cx >> 11) & 1;
        __cpuid_count(7, 1, a, b, cx, d);
        c->avx512bf16 = (a >> 5) & 1;
    }
}
#else
static void detect(struct cai_cpu *c)
{
    (void)c;
}
#endif

static struct cai_cpu cpu_info;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_init(void)
{
    detect(&cpu_info);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_info.n_cpus = n > 0 ? (int)n : 1;
}

const struct cai_cpu *cai__cpu(void)
{
    pthread_once(&cpu_once, cpu_init);
    return &cpu_info;
}
