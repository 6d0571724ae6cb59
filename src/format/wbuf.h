/* wbuf.h: a growing byte buffer with little-endian appends, shared by the
 * GGUF and .coreaimodel writers. Every append either succeeds whole or
 * leaves the buffer as it was and returns false (size overflow or out of
 * memory). Free with cai__free(b->p). */
#ifndef CAI_FORMAT_WBUF_H
#define CAI_FORMAT_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../base/base.h"

struct cai__wbuf {
    uint8_t *p;
    size_t   n, cap;
};

/* Makes room for `extra` more bytes (capacity doubles from 256). */
static inline bool cai__wb_reserve(struct cai__wbuf *b, size_t extra)
{
    size_t need;
    if (!cai__add_size(b->n, extra, &need))
        return false;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        if (!cai__mul_size(cap, 2, &cap))
            return false;
    uint8_t *p = cai__realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static inline bool cai__wb_put(struct cai__wbuf *b, const void *d, size_t n)
{
    if (!cai__wb_reserve(b, n))
        return false;
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
    return true;
}

static inline bool cai__wb_zeros(struct cai__wbuf *b, size_t n)
{
    if (!cai__wb_reserve(b, n))
        return false;
    memset(b->p + b->n, 0, n);
    b->n += n;
    return true;
}

/* dst[0..n) = the n low bytes of v, least significant first. */
static inline void cai__put_le(uint8_t *dst, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t cai__get_le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static inline bool cai__wb_u32(struct cai__wbuf *b, uint32_t v)
{
    uint8_t t[4];
    cai__put_le(t, v, 4);
    return cai__wb_put(b, t, 4);
}

static inline bool cai__wb_u64(struct cai__wbuf *b, uint64_t v)
{
    uint8_t t[8];
    cai__put_le(t, v, 8);
    return cai__wb_put(b, t, 8);
}

/* A GGUF string: u64 length, then the bytes. */
static inline bool cai__wb_str(struct cai__wbuf *b, const char *s, uint64_t len)
{
    size_t at = b->n;
    if (len > SIZE_MAX || !cai__wb_u64(b, len))
        return false;
    if (!cai__wb_put(b, s, (size_t)len)) {
        b->n = at;
        return false;
    }
    return true;
}

#endif /* CAI_FORMAT_WBUF_H */
