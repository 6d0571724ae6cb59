/* base.h: the bottom layer every other module uses.
 *
 * Errors (codes plus a one-line message naming the field at fault), checked
 * size arithmetic, allocation, read-only file mappings, timing and CPU
 * feature detection. Nothing here prints, exits or aborts: the library
 * reports problems through return codes and `struct cai_error`. */
#ifndef CAI_BASE_H
#define CAI_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coreai.h"

#define CAI_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CAI_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define CAI_MAX(a, b)    ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define CAI__PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CAI__LIKELY(x)    __builtin_expect(!!(x), 1)
#define CAI__UNLIKELY(x)  __builtin_expect(!!(x), 0)
#else
#define CAI__PRINTF(f, a)
#define CAI__LIKELY(x)   (x)
#define CAI__UNLIKELY(x) (x)
#endif

/* ---- errors ------------------------------------------------------------ */

/* Records `code` and a formatted message in `err` (which may be NULL) and
 * returns `code`, so callers write `return cai__fail(err, CAI_EFORMAT, ...)`. */
int cai__fail(struct cai_error *err, int code, const char *fmt, ...) CAI__PRINTF(3, 4);
int cai__vfail(struct cai_error *err, int code, const char *fmt, va_list ap) CAI__PRINTF(3, 0);
/* Prefixes the message already in `err` with "prefix: " (for adding a file name). */
void cai__error_prefix(struct cai_error *err, const char *prefix);

/* ---- checked arithmetic ------------------------------------------------ */

static inline bool cai__mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cai__add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
static inline bool cai__mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cai__add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* ---- allocation -------------------------------------------------------- */

/* Thin wrappers so a test build can inject failures. Sizes of 0 return a
 * unique pointer or NULL as malloc does; callers check n_bytes themselves. */
void *cai__malloc(size_t n_bytes);
void *cai__calloc(size_t n, size_t size);
void *cai__realloc(void *p, size_t n_bytes);
void  cai__free(void *p);
/* malloc(n * size) with overflow check; NULL on overflow or OOM. */
void *cai__malloc_array(size_t n, size_t size);
/* 64-byte aligned allocation for SIMD scratch; free with cai__free_aligned. */
void *cai__malloc_aligned(size_t n_bytes);
void  cai__free_aligned(void *p);
char *cai__strdup(const char *s);
char *cai__strndup(const char *s, size_t n);

/* Fail the n-th allocation from now on (1 = the next one); 0 disables.
 * Only for tests of out-of-memory paths. */
void cai__alloc_fail_after(long n);

/* ---- files ------------------------------------------------------------- */

/* A read-only mapping of a whole file. `data` is NULL for an empty file. */
struct cai_map {
    const uint8_t *data;
    size_t         n_bytes;
    int            fd;
    bool           mapped; /* false: data is a malloc'd copy (tests) */
};

/* Maps `path` read-only. On failure returns a negative code and fills err
 * with a message naming the path. */
int  cai__map_open(struct cai_map *m, const char *path, struct cai_error *err);
void cai__map_close(struct cai_map *m);
/* Reads a whole file into a NUL-terminated malloc'd buffer (for text files). */
int cai__read_file(const char *path, char **out, size_t *n_bytes, struct cai_error *err);

/* ---- time -------------------------------------------------------------- */

/* Monotonic clock in nanoseconds. */
int64_t cai__now_ns(void);

/* ---- CPU features ------------------------------------------------------ */

struct cai_cpu {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avx512vbmi;
    int  n_cpus; /* online logical CPUs */
};

/* Detects what both the CPU and the OS (XGETBV) support. Cached; thread-safe. */
const struct cai_cpu *cai__cpu(void);

#endif /* CAI_BASE_H */
