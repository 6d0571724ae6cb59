/* protobuf.c: the wire-format reader. See protobuf.h for the contract.
 *
 * Every read is bounded by the message end; nothing here allocates. */
#include <string.h>

#include "protobuf.h"

static size_t off_of(const struct cml__pb *r, const uint8_t *p)
{
    return (size_t)(p - r->base);
}

int cml__pb_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= end)
            return CAI_EFORMAT;
        uint8_t b = *p++;
        /* The 10th byte may only carry the top bit of a 64-bit value. */
        if (i == 9 && b > 1)
            return CAI_EFORMAT;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return CAI_EFORMAT;
}

static uint64_t load_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int cml__pb_next(struct cml__pb *r, struct cml__pb_field *f, struct cai_error *err)
{
    if (r->p >= r->end)
        return 0;
    const uint8_t *start = r->p;
    uint64_t tag;
    memset(f, 0, sizeof(*f));
    f->off = off_of(r, start);
    if (cml__pb_varint(&r->p, r->end, &tag) != 0) {
        r->p = r->end;
        return cai__fail(err, CAI_EFORMAT, "offset %zu: field tag is truncated or longer than 10 bytes",
                         f->off);
    }
    uint64_t num = tag >> 3;
    f->wire = (uint32_t)(tag & 7);
    if (num == 0 || num > 0x1fffffff) {
        r->p = r->end;
        return cai__fail(err, CAI_EFORMAT, "offset %zu: invalid field number %llu", f->off,
                         (unsigned long long)num);
    }
    f->num = (uint32_t)num;
    size_t left;
    switch (f->wire) {
    case CML__PB_VARINT:
        if (cml__pb_varint(&r->p, r->end, &f->u) != 0) {
            r->p = r->end;
            return cai__fail(err, CAI_EFORMAT,
                             "offset %zu: field %u: varint truncated or longer than 10 bytes",
                             f->off, f->num);
        }
        return 1;
    case CML__PB_I64:
    case CML__PB_I32: {
        int n = f->wire == CML__PB_I64 ? 8 : 4;
        left = (size_t)(r->end - r->p);
        if (left < (size_t)n) {
            r->p = r->end;
            return cai__fail(err, CAI_EFORMAT, "offset %zu: field %u: %d-byte value truncated",
                             f->off, f->num, n);
        }
        f->u = load_le(r->p, n);
        r->p += n;
        return 1;
    }
    case CML__PB_LEN: {
        uint64_t len;
        if (cml__pb_varint(&r->p, r->end, &len) != 0) {
            r->p = r->end;
            return cai__fail(err, CAI_EFORMAT, "offset %zu: field %u: length varint truncated",
                             f->off, f->num);
        }
        left = (size_t)(r->end - r->p);
        if (len > left) {
            r->p = r->end;
            return cai__fail(err, CAI_EFORMAT,
                             "offset %zu: field %u: length %llu exceeds the %zu bytes left", f->off,
                             f->num, (unsigned long long)len, left);
        }
        f->data = r->p;
        f->n_bytes = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        r->p = r->end;
        return cai__fail(err, CAI_EFORMAT, "offset %zu: field %u: unsupported wire type %u",
                         f->off, f->num, f->wire);
    }
}

/* ---- typed views -------------------------------------------------------- */

static int wrong_wire(const struct cml__pb_field *f, const char *what, const char *want,
                      struct cai_error *err)
{
    return cai__fail(err, CAI_EFORMAT, "%s (offset %zu): wrong wire type %u, expected %s", what,
                     f->off, f->wire, want);
}

int cml__pb_u64(const struct cml__pb_field *f, const char *what, uint64_t *out,
                struct cai_error *err)
{
    if (f->wire != CML__PB_VARINT)
        return wrong_wire(f, what, "varint", err);
    *out = f->u;
    return 0;
}

int cml__pb_i64(const struct cml__pb_field *f, const char *what, int64_t *out,
                struct cai_error *err)
{
    if (f->wire != CML__PB_VARINT)
        return wrong_wire(f, what, "varint", err);
    *out = (int64_t)f->u;
    return 0;
}

int cml__pb_i32(const struct cml__pb_field *f, const char *what, int32_t *out,
                struct cai_error *err)
{
    if (f->wire != CML__PB_VARINT)
        return wrong_wire(f, what, "varint", err);
    int64_t v = (int64_t)f->u;
    if (v < INT32_MIN || v > INT32_MAX)
        return cai__fail(err, CAI_EFORMAT, "%s (offset %zu): value %lld does not fit in int32", what,
                         f->off, (long long)v);
    *out = (int32_t)v;
    return 0;
}

int cml__pb_bool(const struct cml__pb_field *f, const char *what, bool *out,
                 struct cai_error *err)
{
    if (f->wire != CML__PB_VARINT)
        return wrong_wire(f, what, "varint", err);
    *out = f->u != 0;
    return 0;
}

int cml__pb_double(const struct cml__pb_field *f, const char *what, double *out,
                   struct cai_error *err)
{
    if (f->wire != CML__PB_I64)
        return wrong_wire(f, what, "64-bit", err);
    memcpy(out, &f->u, sizeof(*out));
    return 0;
}

int cml__pb_float(const struct cml__pb_field *f, const char *what, float *out,
                  struct cai_error *err)
{
    if (f->wire != CML__PB_I32)
        return wrong_wire(f, what, "32-bit", err);
    uint32_t bits = (uint32_t)f->u;
    memcpy(out, &bits, sizeof(*out));
    return 0;
}

int cml__pb_len(const struct cml__pb_field *f, const char *what, struct cai_error *err)
{
    if (f->wire != CML__PB_LEN)
        return wrong_wire(f, what, "length-delimited", err);
    return 0;
}

/* ---- repeated scalars --------------------------------------------------- */

static int count_varints(const uint8_t *p, const uint8_t *end, size_t *n)
{
    size_t c = 0;
    while (p < end) {
        uint64_t v;
        if (cml__pb_varint(&p, end, &v) != 0)
            return CAI_EFORMAT;
        c++;
    }
    *n = c;
    return 0;
}

int cml__pb_count_repeated(const struct cml__pb_field *f, enum cml__pb_wire elem_wire,
                           const char *what, size_t *n, struct cai_error *err)
{
    if (f->wire == (uint32_t)elem_wire) {
        *n = 1;
        return 0;
    }
    if (f->wire != CML__PB_LEN)
        return wrong_wire(f, what, elem_wire == CML__PB_VARINT ? "varint or packed" :
                                   elem_wire == CML__PB_I64  ? "64-bit or packed" :
                                                               "32-bit or packed", err);
    if (elem_wire == CML__PB_VARINT) {
        if (count_varints(f->data, f->data + f->n_bytes, n) != 0)
            return cai__fail(err, CAI_EFORMAT, "%s (offset %zu): bad varint in packed array", what,
                             f->off);
        return 0;
    }
    size_t w = elem_wire == CML__PB_I64 ? 8 : 4;
    if (f->n_bytes % w != 0)
        return cai__fail(err, CAI_EFORMAT,
                         "%s (offset %zu): packed length %zu is not a multiple of %zu", what,
                         f->off, f->n_bytes, w);
    *n = f->n_bytes / w;
    return 0;
}

static int overflow(const struct cml__pb_field *f, const char *what, struct cai_error *err)
{
    /* Callers size out[] from a counting pass over the same bytes, so this
     * only fires if the two passes disagree: a bug, reported not trusted. */
    return cai__fail(err, CAI_EFORMAT, "%s (offset %zu): more elements than counted", what,
                     f->off);
}

int cml__pb_read_doubles(const struct cml__pb_field *f, const char *what, double *out,
                         size_t cap, size_t *n, struct cai_error *err)
{
    size_t k;
    int rc = cml__pb_count_repeated(f, CML__PB_I64, what, &k, err);
    if (rc)
        return rc;
    if (k > cap - *n)
        return overflow(f, what, err);
    if (f->wire == CML__PB_I64) {
        memcpy(&out[*n], &f->u, 8);
    } else {
        for (size_t i = 0; i < k; i++) {
            uint64_t bits = load_le(f->data + 8 * i, 8);
            memcpy(&out[*n + i], &bits, 8);
        }
    }
    *n += k;
    return 0;
}

int cml__pb_read_floats(const struct cml__pb_field *f, const char *what, float *out, size_t cap,
                        size_t *n, struct cai_error *err)
{
    size_t k;
    int rc = cml__pb_count_repeated(f, CML__PB_I32, what, &k, err);
    if (rc)
        return rc;
    if (k > cap - *n)
        return overflow(f, what, err);
    if (f->wire == CML__PB_I32) {
        uint32_t bits = (uint32_t)f->u;
        memcpy(&out[*n], &bits, 4);
    } else {
        for (size_t i = 0; i < k; i++) {
            uint32_t bits = (uint32_t)load_le(f->data + 4 * i, 4);
            memcpy(&out[*n + i], &bits, 4);
        }
    }
    *n += k;
    return 0;
}

int cml__pb_read_varints(const struct cml__pb_field *f, const char *what, uint64_t *out,
                         size_t cap, size_t *n, struct cai_error *err)
{
    size_t k;
    int rc = cml__pb_count_repeated(f, CML__PB_VARINT, what, &k, err);
    if (rc)
        return rc;
    if (k > cap - *n)
        return overflow(f, what, err);
    if (f->wire == CML__PB_VARINT) {
        out[*n] = f->u;
    } else {
        const uint8_t *p = f->data, *end = f->data + f->n_bytes;
        for (size_t i = 0; i < k; i++)
            (void)cml__pb_varint(&p, end, &out[*n + i]); /* validated by the count */
    }
    *n += k;
    return 0;
}
