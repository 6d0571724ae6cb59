/* alloc.c: allocation wrappers, with failure injection for out-of-memory tests. */
#include <stdlib.h>
#include <string.h>

#include "base.h"

static long alloc_fail_countdown; /* test-only; 0 = never fail */

void cai__alloc_fail_after(long n)
{
    __atomic_store_n(&alloc_fail_countdown, n, __ATOMIC_RELAXED);
}

static bool should_fail(void)
{
    long n = __atomic_load_n(&alloc_fail_countdown, __ATOMIC_RELAXED);
    if (CAI__LIKELY(n == 0))
        return false;
    if (__atomic_sub_fetch(&alloc_fail_countdown, 1, __ATOMIC_RELAXED) == 0)
        return true;
    return false;
}

void *cai__malloc(size_t n_bytes)
{
    return should_fail() ? NULL : malloc(n_bytes ? n_bytes : 1);
}

void *cai__calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *cai__realloc(void *p, size_t n_bytes)
{
    return should_fail() ? NULL : realloc(p, n_bytes ? n_bytes : 1);
}

void cai__free(void *p)
{
    free(p);
}

void *cai__malloc_array(size_t n, size_t size)
{
    size_t total;
    if (!cai__mul_size(n, size, &total))
        return NULL;
    return cai__malloc(total);
}

void *cai__malloc_aligned(size_t n_bytes)
{
    void *p = NULL;
    if (should_fail())
        return NULL;
    n_bytes = (n_bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n_bytes ? n_bytes : 64) != 0)
        return NULL;
    return p;
}

void cai__free_aligned(void *p)
{
    free(p);
}

char *cai__strndup(const char *s, size_t n)
{
    char *d = cai__malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *cai__strdup(const char *s)
{
    return cai__strndup(s, strlen(s));
}
