/* gguf.c: the validating, zero-copy GGUF v2/v3 reader declared in gguf.h.
 *
 * The parse is one forward pass over the bytes with a cursor that never moves
 * past the end: every read asks for its bytes first, and every count or length
 * is compared with the bytes that remain before anything is allocated or
 * walked, so memory stays O(file size) (at worst about 8 bytes of tables per
 * file byte, for a file of nothing but 1-byte kvs) and time O(n log n).
 * Weights are never copied: tensor `data` and all strings point into the
 * mapping.
 *
 * Policies chosen here (the spec leaves them open):
 *   - Versions 2 and 3 only (v1 used 32-bit counts). A byte-swapped version
 *     is reported as a big-endian file, which we do not read.
 *   - `general.alignment`, when present, must be a u32 power of two in
 *     [8, 2^24]. The spec asks for a multiple of 8 and ggml for a power of
 *     two; the intersection guarantees every element type (up to 8 bytes) is
 *     naturally aligned in a page-aligned mapping. Default 32.
 *   - Keys: 1..65535 bytes, no NUL. Tensor names: 1..64 bytes, no NUL.
 *     Keys are unique, tensor names are unique.
 *   - Arrays may nest up to CAI__GGUF_MAX_DEPTH levels (a top-level array is
 *     level 1); nested arrays are validated, not indexed.
 *   - Tensors: 1..4 dims, each in [1, INT64_MAX], element count and byte size
 *     without overflow, a type id the type table knows, ne[0] a multiple of
 *     the block, offset a multiple of the alignment, bytes inside the data
 *     section, no two tensors overlapping (gaps are allowed).
 *   - The data section starts at the aligned end of the tensor infos. A file
 *     with no tensors may end before that padding (vocab-only files do); its
 *     data section is then empty and data_offset is the file size. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "../tensor/types.h"

#define GGUF_MAGIC             0x46554747u /* "GGUF" read as little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MIN_ALIGNMENT     8u
#define GGUF_MAX_ALIGNMENT     (1u << 24)
#define GGUF_MAX_KEY_LEN       65535u
#define GGUF_MAX_NAME_LEN      64u
#define CAI__GGUF_MAX_DEPTH    4
/* Smallest possible encodings, used to bound counts by the bytes left:
 * a kv is a key length, a 1-byte key, a type and a 1-byte value; a tensor
 * info is a name length, a 1-byte name, n_dims, one dim, a type, an offset. */
#define GGUF_MIN_KV_BYTES     (8u + 1u + 4u + 1u)
#define GGUF_MIN_TENSOR_BYTES (8u + 1u + 4u + 8u + 4u + 8u)

/* The object behind struct cai_gguf: lookup tables that are not part of the
 * contract. `pub` comes first, so a struct cai_gguf pointer is this pointer. */
struct gguf_impl {
    struct cai_gguf                pub;
    const struct cai_gguf_kv     **kv_by_key;      /* [n_kv], sorted by key */
    const struct cai_gguf_tensor **tensor_by_name; /* [n_tensors], sorted by name */
    uint64_t                      *str_off_pool;   /* every string array's offsets */
};

/* ---- little-endian decoding -------------------------------------------- */

static uint16_t le16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (unsigned)b[1] << 8);
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const uint8_t *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* ---- value types --------------------------------------------------------- */

static const char *const vtype_names[] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

static const char *vtype_name(uint32_t t)
{
    return t < CAI_ARRAY_LEN(vtype_names) ? vtype_names[t] : "unknown";
}

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown. */
static uint64_t vtype_size(uint32_t t)
{
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < CAI_ARRAY_LEN(sizes) ? sizes[t] : 0;
}

static bool vtype_is_int(uint32_t t)
{
    return t <= CAI_GGUF_I32 || t == CAI_GGUF_U64 || t == CAI_GGUF_I64;
}

static bool vtype_is_signed(uint32_t t)
{
    return t == CAI_GGUF_I8 || t == CAI_GGUF_I16 || t == CAI_GGUF_I32 || t == CAI_GGUF_I64;
}

/* Decodes a fixed-size value into the three scalar views of a kv. */
static void decode_scalar(uint32_t t, const uint8_t *b, uint64_t *u, int64_t *i, double *f)
{
    switch (t) {
    case CAI_GGUF_U8:
    case CAI_GGUF_BOOL: *u = b[0]; *i = (int64_t)*u; *f = (double)*u; return;
    case CAI_GGUF_I8: *i = (int8_t)b[0]; break;
    case CAI_GGUF_U16: *u = le16(b); *i = (int64_t)*u; *f = (double)*u; return;
    case CAI_GGUF_I16: *i = (int16_t)le16(b); break;
    case CAI_GGUF_U32: *u = le32(b); *i = (int64_t)*u; *f = (double)*u; return;
    case CAI_GGUF_I32: *i = (int32_t)le32(b); break;
    case CAI_GGUF_U64: *u = le64(b); *i = (int64_t)*u; *f = (double)*u; return;
    case CAI_GGUF_I64: *i = (int64_t)le64(b); break;
    case CAI_GGUF_F32: *u = 0; *i = 0; *f = (double)bits_f32(le32(b)); return;
    case CAI_GGUF_F64: *u = 0; *i = 0; *f = bits_f64(le64(b)); return;
    default: *u = 0; *i = 0; *f = 0; return;
    }
    /* signed types */
    *u = (uint64_t)*i;
    *f = (double)*i;
}

/* ---- strings --------------------------------------------------------------- */

static int str_cmp(struct cai_gguf_str a, struct cai_gguf_str b)
{
    uint64_t n = CAI_MIN(a.len, b.len);
    int c = n ? memcmp(a.ptr, b.ptr, (size_t)n) : 0;
    if (c)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

bool cai__gguf_str_eq(struct cai_gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

/* Writes `s` into `buf` for a message: printable ASCII as is, other bytes as
 * \xNN, cut to about 48 characters with "..." so a message stays one line. */
static void str_quote(char *buf, size_t cap, const char *s, uint64_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, limit = CAI_MIN(cap - 4, (size_t)48);
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? 1 : 4;
        if (o + need > limit) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (need == 1) {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    buf[o] = '\0';
}

/* ---- the parser ------------------------------------------------------------ */

struct parser {
    const uint8_t    *base;
    uint64_t          n_bytes;
    uint64_t          pos;    /* never > n_bytes */
    const char       *name;   /* the file, for messages */
    struct cai_error *err;
    char              where[96]; /* the field being read: "kv[3] \"general.name\"" */
};

static int pfail(struct parser *p, int code, const char *fmt, ...) CAI__PRINTF(3, 4);

/* Fails with "file: where: message". */
static int pfail(struct parser *p, int code, const char *fmt, ...)
{
    char msg[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cai__fail(p->err, code, "%s: %s: %s", p->name, p->where, msg);
}

static void set_where_named(struct parser *p, const char *what, uint64_t i, struct cai_gguf_str s)
{
    char q[64];
    str_quote(q, sizeof(q), s.ptr, s.len);
    if (i == UINT64_MAX)
        snprintf(p->where, sizeof(p->where), "%s \"%s\"", what, q);
    else
        snprintf(p->where, sizeof(p->where), "%s[%" PRIu64 "] \"%s\"", what, i, q);
}

static uint64_t left(const struct parser *p)
{
    return p->n_bytes - p->pos;
}

/* Takes `n` bytes at the cursor, or fails naming `field`. */
static int take(struct parser *p, uint64_t n, const char *field, const uint8_t **out)
{
    *out = NULL;
    if (n > left(p))
        return pfail(p, CAI_EFORMAT,
                     "%s at byte %" PRIu64 " needs %" PRIu64 " bytes, only %" PRIu64
                     " left (truncated file)",
                     field, p->pos, n, left(p));
    *out = p->base + p->pos;
    p->pos += n;
    return 0;
}

static int read_u32(struct parser *p, const char *field, uint32_t *v)
{
    const uint8_t *b;
    int rc = take(p, 4, field, &b);
    if (rc == 0)
        *v = le32(b);
    return rc;
}

static int read_u64(struct parser *p, const char *field, uint64_t *v)
{
    const uint8_t *b;
    int rc = take(p, 8, field, &b);
    if (rc == 0)
        *v = le64(b);
    return rc;
}

/* Reads a gguf_string (u64 length + bytes) of at most `max_len` bytes. */
static int read_str(struct parser *p, const char *field, uint64_t max_len, struct cai_gguf_str *s)
{
    uint64_t at = p->pos, len;
    const uint8_t *b;
    int rc = read_u64(p, field, &len);
    if (rc)
        return rc;
    if (len > left(p))
        return pfail(p, CAI_EFORMAT,
                     "%s at byte %" PRIu64 ": length %" PRIu64 " exceeds the %" PRIu64
                     " bytes left",
                     field, at, len, left(p));
    if (len > max_len)
        return pfail(p, CAI_EFORMAT,
                     "%s at byte %" PRIu64 ": length %" PRIu64 " exceeds the limit of %" PRIu64,
                     field, at, len, max_len);
    rc = take(p, len, field, &b);
    if (rc)
        return rc;
    s->ptr = (const char *)b;
    s->len = len;
    return 0;
}

/* Validates one array body (element type, count, elements) at the cursor.
 * `depth` is its nesting level (1 for a kv's own array). A non-NULL `kv`
 * receives the element type, count and first element; `n_str` counts the
 * strings of top-level string arrays, for the offsets pool. */
static int parse_array(struct parser *p, int depth, struct cai_gguf_kv *kv, uint64_t *n_str)
{
    uint64_t at = p->pos, n;
    uint32_t et;
    int rc = read_u32(p, "array element type", &et);
    if (rc)
        return rc;
    if (et > CAI_GGUF_F64)
        return pfail(p, CAI_EFORMAT, "array at byte %" PRIu64 ": unknown element type %" PRIu32,
                     at, et);
    if (et == CAI_GGUF_ARRAY && depth >= CAI__GGUF_MAX_DEPTH)
        return pfail(p, CAI_EFORMAT,
                     "array at byte %" PRIu64 ": arrays nested deeper than %d levels", at,
                     CAI__GGUF_MAX_DEPTH);
    rc = read_u64(p, "array length", &n);
    if (rc)
        return rc;
    uint64_t min = et == CAI_GGUF_STRING ? 8 : et == CAI_GGUF_ARRAY ? 12 : vtype_size(et);
    if (n > left(p) / min)
        return pfail(p, CAI_EFORMAT,
                     "array at byte %" PRIu64 ": %" PRIu64 " %s elements cannot fit in the %" PRIu64
                     " bytes left (at least %" PRIu64 " bytes each)",
                     at, n, vtype_name(et), left(p), min);
    const uint8_t *data = p->base + p->pos;
    if (et == CAI_GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t eat = p->pos, len;
            if (left(p) < 8)
                return pfail(p, CAI_EFORMAT,
                             "array string %" PRIu64 " at byte %" PRIu64
                             ": length needs 8 bytes, only %" PRIu64 " left (truncated file)",
                             i, eat, left(p));
            len = le64(p->base + p->pos);
            if (len > left(p) - 8)
                return pfail(p, CAI_EFORMAT,
                             "array string %" PRIu64 " at byte %" PRIu64 ": length %" PRIu64
                             " exceeds the %" PRIu64 " bytes left",
                             i, eat, len, left(p) - 8);
            p->pos += 8 + len;
        }
    } else if (et == CAI_GGUF_ARRAY) {
        for (uint64_t i = 0; i < n; i++) {
            rc = parse_array(p, depth + 1, NULL, NULL);
            if (rc)
                return rc;
        }
    } else {
        if (et == CAI_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++)
                if (data[i] > 1)
                    return pfail(p, CAI_EFORMAT,
                                 "array bool %" PRIu64 " at byte %" PRIu64
                                 ": value %u is not 0 or 1",
                                 i, p->pos + i, data[i]);
        }
        p->pos += n * min; /* n <= left / min: no overflow, stays in bounds */
    }
    if (kv) {
        kv->arr_type = et;
        kv->arr_n = n;
        kv->arr_data = data;
        if (et == CAI_GGUF_STRING)
            *n_str += n;
    }
    return 0;
}

static int parse_kv(struct parser *p, uint64_t idx, struct cai_gguf_kv *kv, uint64_t *n_str)
{
    uint64_t at;
    uint32_t t;
    snprintf(p->where, sizeof(p->where), "kv[%" PRIu64 "]", idx);
    int rc = read_str(p, "key", GGUF_MAX_KEY_LEN, &kv->key);
    if (rc)
        return rc;
    if (kv->key.len == 0)
        return pfail(p, CAI_EFORMAT, "empty key at byte %" PRIu64, p->pos - 8);
    if (memchr(kv->key.ptr, 0, (size_t)kv->key.len))
        return pfail(p, CAI_EFORMAT, "key contains a NUL byte");
    set_where_named(p, "kv", idx, kv->key);
    at = p->pos;
    rc = read_u32(p, "value type", &t);
    if (rc)
        return rc;
    if (t > CAI_GGUF_F64)
        return pfail(p, CAI_EFORMAT, "unknown value type %" PRIu32 " at byte %" PRIu64, t, at);
    kv->type = t;
    if (t == CAI_GGUF_STRING)
        return read_str(p, "string value", UINT64_MAX, &kv->str);
    if (t == CAI_GGUF_ARRAY)
        return parse_array(p, 1, kv, n_str);
    const uint8_t *b;
    at = p->pos;
    rc = take(p, vtype_size(t), "value", &b);
    if (rc)
        return rc;
    if (t == CAI_GGUF_BOOL && b[0] > 1)
        return pfail(p, CAI_EFORMAT, "bool value %u at byte %" PRIu64 " is not 0 or 1", b[0], at);
    decode_scalar(t, b, &kv->u64, &kv->i64, &kv->f64);
    return 0;
}

static int parse_tensor_info(struct parser *p, uint64_t idx, uint32_t alignment,
                             struct cai_gguf_tensor *t)
{
    uint64_t at, n_elem = 1;
    snprintf(p->where, sizeof(p->where), "tensor[%" PRIu64 "]", idx);
    int rc = read_str(p, "name", GGUF_MAX_NAME_LEN, &t->name);
    if (rc)
        return rc;
    if (t->name.len == 0)
        return pfail(p, CAI_EFORMAT, "empty name at byte %" PRIu64, p->pos - 8);
    if (memchr(t->name.ptr, 0, (size_t)t->name.len))
        return pfail(p, CAI_EFORMAT, "name contains a NUL byte");
    set_where_named(p, "tensor", UINT64_MAX, t->name);

    at = p->pos;
    rc = read_u32(p, "n_dims", &t->n_dims);
    if (rc)
        return rc;
    if (t->n_dims < 1 || t->n_dims > 4)
        return pfail(p, CAI_EFORMAT, "n_dims %" PRIu32 " at byte %" PRIu64 " is not in 1..4",
                     t->n_dims, at);
    for (uint32_t d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t dim;
        at = p->pos;
        rc = read_u64(p, "dimension", &dim);
        if (rc)
            return rc;
        if (dim == 0 || dim > (uint64_t)INT64_MAX)
            return pfail(p, CAI_EFORMAT,
                         "ne[%" PRIu32 "] = %" PRIu64 " at byte %" PRIu64
                         " is not in 1..INT64_MAX",
                         d, dim, at);
        if (n_elem > (uint64_t)INT64_MAX / dim)
            return pfail(p, CAI_EFORMAT,
                         "element count overflows int64 at ne[%" PRIu32 "] = %" PRIu64, d, dim);
        n_elem *= dim;
        t->ne[d] = (int64_t)dim;
    }

    at = p->pos;
    rc = read_u32(p, "type", &t->type);
    if (rc)
        return rc;
    const struct cai_type_info *ti = cai__type_info(t->type);
    if (!ti || !ti->name || ti->block <= 0 || ti->type_size <= 0)
        return pfail(p, CAI_EFORMAT, "unknown tensor type %" PRIu32 " at byte %" PRIu64, t->type,
                     at);
    if (t->ne[0] % ti->block != 0)
        return pfail(p, CAI_EFORMAT,
                     "ne[0] = %" PRId64 " is not a multiple of the %s block size %d", t->ne[0],
                     ti->name, ti->block);
    size_t row;
    uint64_t n_bytes;
    if (!cai__row_bytes(t->type, t->ne[0], &row) ||
        !cai__mul_u64((uint64_t)row, (uint64_t)(n_elem / (uint64_t)t->ne[0]), &n_bytes))
        return pfail(p, CAI_EFORMAT, "byte size of %" PRIu64 " %s elements overflows", n_elem,
                     ti->name);
    t->n_bytes = n_bytes;

    at = p->pos;
    rc = read_u64(p, "offset", &t->offset);
    if (rc)
        return rc;
    if (t->offset % alignment != 0)
        return pfail(p, CAI_EFORMAT,
                     "offset %" PRIu64 " at byte %" PRIu64
                     " is not a multiple of the alignment %" PRIu32,
                     t->offset, at, alignment);
    return 0;
}

/* ---- sorting and lookups ----------------------------------------------- */

static int cmp_kv_key(const void *x, const void *y)
{
    const struct cai_gguf_kv *a = *(const struct cai_gguf_kv *const *)x;
    const struct cai_gguf_kv *b = *(const struct cai_gguf_kv *const *)y;
    int c = str_cmp(a->key, b->key);
    return c ? c : (a > b) - (a < b);
}

static int cmp_tensor_name(const void *x, const void *y)
{
    const struct cai_gguf_tensor *a = *(const struct cai_gguf_tensor *const *)x;
    const struct cai_gguf_tensor *b = *(const struct cai_gguf_tensor *const *)y;
    int c = str_cmp(a->name, b->name);
    return c ? c : (a > b) - (a < b);
}

static int cmp_tensor_offset(const void *x, const void *y)
{
    const struct cai_gguf_tensor *a = *(const struct cai_gguf_tensor *const *)x;
    const struct cai_gguf_tensor *b = *(const struct cai_gguf_tensor *const *)y;
    if (a->offset != b->offset)
        return (a->offset > b->offset) - (a->offset < b->offset);
    return (a > b) - (a < b);
}

const struct cai_gguf_kv *cai__gguf_find_kv(const struct cai_gguf *g, const char *key)
{
    const struct gguf_impl *im = (const struct gguf_impl *)g;
    struct cai_gguf_str k = {key, strlen(key)};
    uint64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = str_cmp(im->kv_by_key[mid]->key, k);
        if (c == 0)
            return im->kv_by_key[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct cai_gguf_tensor *cai__gguf_find_tensor(const struct cai_gguf *g, const char *name)
{
    const struct gguf_impl *im = (const struct gguf_impl *)g;
    struct cai_gguf_str k = {name, strlen(name)};
    uint64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = str_cmp(im->tensor_by_name[mid]->name, k);
        if (c == 0)
            return im->tensor_by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- the whole file -------------------------------------------------------- */

static int oom(struct parser *p, const char *what, uint64_t n)
{
    return pfail(p, CAI_ENOMEM, "out of memory for %s (%" PRIu64 " entries)", what, n);
}

/* Reads the header and the kvs; checks key uniqueness and the alignment. */
static int parse_header_kvs(struct gguf_impl *im, struct parser *p)
{
    struct cai_gguf *g = &im->pub;
    uint32_t magic;
    uint64_t n_str = 0;
    int rc;

    snprintf(p->where, sizeof(p->where), "header");
    rc = read_u32(p, "magic", &magic);
    if (rc)
        return rc;
    if (magic != GGUF_MAGIC)
        return pfail(p, CAI_EFORMAT,
                     "bad magic %02x %02x %02x %02x at byte 0 (expected \"GGUF\"): not a GGUF file",
                     magic & 0xff, (magic >> 8) & 0xff, (magic >> 16) & 0xff, magic >> 24);
    rc = read_u32(p, "version", &g->version);
    if (rc)
        return rc;
    if (g->version == 1)
        return pfail(p, CAI_EFORMAT,
                     "version 1 is not supported (GGUF v1 used 32-bit counts; re-convert the "
                     "model to v2 or v3)");
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return pfail(p, CAI_EFORMAT, "version %" PRIu32 " reads as a big-endian GGUF file, "
                     "which is not supported", g->version >> 24);
    if (g->version != 2 && g->version != 3)
        return pfail(p, CAI_EFORMAT, "version %" PRIu32 " is not supported (only 2 and 3)",
                     g->version);
    rc = read_u64(p, "tensor_count", &g->n_tensors);
    if (rc)
        return rc;
    rc = read_u64(p, "kv_count", &g->n_kv);
    if (rc)
        return rc;
    /* Bound both counts by the bytes left before allocating for either. */
    if (g->n_tensors > left(p) / GGUF_MIN_TENSOR_BYTES)
        return pfail(p, CAI_EFORMAT,
                     "tensor_count %" PRIu64 " cannot fit in the %" PRIu64
                     " bytes left (at least %u bytes each)",
                     g->n_tensors, left(p), GGUF_MIN_TENSOR_BYTES);
    if (g->n_kv > left(p) / GGUF_MIN_KV_BYTES ||
        g->n_kv * GGUF_MIN_KV_BYTES > left(p) - g->n_tensors * GGUF_MIN_TENSOR_BYTES)
        return pfail(p, CAI_EFORMAT,
                     "kv_count %" PRIu64 " cannot fit in the %" PRIu64
                     " bytes left (at least %u bytes each)",
                     g->n_kv, left(p), GGUF_MIN_KV_BYTES);

    if (g->n_kv) {
        g->kv = cai__calloc((size_t)g->n_kv, sizeof(*g->kv));
        if (!g->kv)
            return oom(p, "the kv table", g->n_kv);
    }
    for (uint64_t i = 0; i < g->n_kv; i++) {
        rc = parse_kv(p, i, &g->kv[i], &n_str);
        if (rc)
            return rc;
    }

    /* Offsets of the elements of every string array, so access is O(1). */
    if (n_str) {
        im->str_off_pool = cai__malloc_array((size_t)n_str, sizeof(uint64_t));
        if (!im->str_off_pool)
            return oom(p, "string array offsets", n_str);
        uint64_t *o = im->str_off_pool;
        for (uint64_t i = 0; i < g->n_kv; i++) {
            struct cai_gguf_kv *kv = &g->kv[i];
            if (kv->type != CAI_GGUF_ARRAY || kv->arr_type != CAI_GGUF_STRING || !kv->arr_n)
                continue;
            kv->arr_str_off = o;
            uint64_t off = 0;
            for (uint64_t j = 0; j < kv->arr_n; j++) {
                *o++ = off;
                off += 8 + le64(kv->arr_data + off);
            }
        }
    }

    if (g->n_kv) {
        im->kv_by_key = cai__malloc_array((size_t)g->n_kv, sizeof(*im->kv_by_key));
        if (!im->kv_by_key)
            return oom(p, "the key index", g->n_kv);
        for (uint64_t i = 0; i < g->n_kv; i++)
            im->kv_by_key[i] = &g->kv[i];
        if (g->n_kv > 1)
            qsort(im->kv_by_key, (size_t)g->n_kv, sizeof(*im->kv_by_key), cmp_kv_key);
        for (uint64_t i = 1; i < g->n_kv; i++) {
            const struct cai_gguf_kv *a = im->kv_by_key[i - 1], *b = im->kv_by_key[i];
            if (str_cmp(a->key, b->key) == 0) {
                set_where_named(p, "kv", (uint64_t)(b - g->kv), b->key);
                return pfail(p, CAI_EFORMAT, "duplicate key (also kv[%" PRIu64 "])",
                             (uint64_t)(a - g->kv));
            }
        }
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct cai_gguf_kv *al = cai__gguf_find_kv(g, "general.alignment");
    if (al) {
        set_where_named(p, "kv", (uint64_t)(al - g->kv), al->key);
        if (al->type != CAI_GGUF_U32)
            return pfail(p, CAI_EFORMAT, "must be of type u32, not %s", vtype_name(al->type));
        uint64_t a = al->u64;
        if (a < GGUF_MIN_ALIGNMENT || a > GGUF_MAX_ALIGNMENT || (a & (a - 1)) != 0)
            return pfail(p, CAI_EFORMAT, "alignment %" PRIu64 " is not a power of two in %u..%u",
                         a, GGUF_MIN_ALIGNMENT, GGUF_MAX_ALIGNMENT);
        g->alignment = (uint32_t)a;
    }
    return 0;
}

/* Reads the tensor infos, places the data section and checks every range. */
static int parse_tensors(struct gguf_impl *im, struct parser *p)
{
    struct cai_gguf *g = &im->pub;
    int rc;
    if (g->n_tensors) {
        g->tensors = cai__calloc((size_t)g->n_tensors, sizeof(*g->tensors));
        if (!g->tensors)
            return oom(p, "the tensor table", g->n_tensors);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        rc = parse_tensor_info(p, i, g->alignment, &g->tensors[i]);
        if (rc)
            return rc;
    }

    /* The data section starts at the aligned end of the infos. p->pos <=
     * n_bytes and the alignment is <= 2^24, so the sum cannot wrap. */
    uint64_t end = p->pos;
    g->data_offset = (end + g->alignment - 1) / g->alignment * g->alignment;
    if (g->data_offset > p->n_bytes) {
        if (g->n_tensors) {
            snprintf(p->where, sizeof(p->where), "data section");
            return pfail(p, CAI_EFORMAT,
                         "starts at byte %" PRIu64 " (infos end at %" PRIu64
                         ", aligned to %" PRIu32 "), past the end of the %" PRIu64
                         "-byte file (truncated file)",
                         g->data_offset, end, g->alignment, p->n_bytes);
        }
        g->data_offset = p->n_bytes;
    }
    uint64_t data_size = p->n_bytes - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct cai_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
            set_where_named(p, "tensor", UINT64_MAX, t->name);
            return pfail(p, CAI_EFORMAT,
                         "data at offset %" PRIu64 " + %" PRIu64
                         " bytes lies outside the %" PRIu64 "-byte data section at byte %" PRIu64
                         " (truncated file?)",
                         t->offset, t->n_bytes, data_size, g->data_offset);
        }
        t->data = p->base + g->data_offset + t->offset;
    }

    if (!g->n_tensors)
        return 0;
    im->tensor_by_name = cai__malloc_array((size_t)g->n_tensors, sizeof(*im->tensor_by_name));
    if (!im->tensor_by_name)
        return oom(p, "the tensor index", g->n_tensors);
    const struct cai_gguf_tensor **ix = im->tensor_by_name;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        ix[i] = &g->tensors[i];

    /* Overlaps: sort by offset, then each tensor must end before the next. */
    if (g->n_tensors > 1)
        qsort(ix, (size_t)g->n_tensors, sizeof(*ix), cmp_tensor_offset);
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const struct cai_gguf_tensor *a = ix[i - 1], *b = ix[i];
        if (a->offset + a->n_bytes > b->offset) { /* both within data_size: no wrap */
            char qa[64];
            str_quote(qa, sizeof(qa), a->name.ptr, a->name.len);
            set_where_named(p, "tensor", UINT64_MAX, b->name);
            return pfail(p, CAI_EFORMAT,
                         "data at offset %" PRIu64 " overlaps tensor \"%s\" (offset %" PRIu64
                         ", %" PRIu64 " bytes)",
                         b->offset, qa, a->offset, a->n_bytes);
        }
    }

    /* Names: sort by name for lookups; equal neighbours are duplicates. */
    if (g->n_tensors > 1)
        qsort(ix, (size_t)g->n_tensors, sizeof(*ix), cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const struct cai_gguf_tensor *a = ix[i - 1], *b = ix[i];
        if (str_cmp(a->name, b->name) == 0) {
            set_where_named(p, "tensor", UINT64_MAX, b->name);
            return pfail(p, CAI_EFORMAT,
                         "duplicate tensor name (tensor[%" PRIu64 "] and tensor[%" PRIu64 "])",
                         (uint64_t)(a - g->tensors), (uint64_t)(b - g->tensors));
        }
    }
    return 0;
}

static int gguf_new(struct gguf_impl **out, const char *name, struct cai_error *err)
{
    struct gguf_impl *im = cai__calloc(1, sizeof(*im));
    *out = NULL;
    if (!im)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", name);
    im->pub.map.fd = -1;
    im->pub.path = cai__strdup(name);
    if (!im->pub.path) {
        cai__free(im);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", name);
    }
    *out = im;
    return 0;
}

static int gguf_parse(struct gguf_impl *im, struct cai_error *err)
{
    struct parser p = {
        .base = im->pub.base,
        .n_bytes = im->pub.n_bytes,
        .pos = 0,
        .name = im->pub.path,
        .err = err,
    };
    int rc = parse_header_kvs(im, &p);
    if (rc == 0)
        rc = parse_tensors(im, &p);
    return rc;
}

int cai__gguf_open_buffer(struct cai_gguf **out, const void *data, uint64_t n_bytes,
                          const char *name, struct cai_error *err)
{
    struct gguf_impl *im;
    *out = NULL;
    if (!name)
        name = "<buffer>";
    if (!data && n_bytes)
        return cai__fail(err, CAI_EINVAL, "%s: NULL buffer of %" PRIu64 " bytes", name, n_bytes);
    int rc = gguf_new(&im, name, err);
    if (rc)
        return rc;
    im->pub.base = data;
    im->pub.n_bytes = n_bytes;
    rc = gguf_parse(im, err);
    if (rc) {
        cai__gguf_close(&im->pub);
        return rc;
    }
    *out = &im->pub;
    return 0;
}

int cai__gguf_open(struct cai_gguf **out, const char *path, struct cai_error *err)
{
    struct gguf_impl *im;
    *out = NULL;
    int rc = gguf_new(&im, path, err);
    if (rc)
        return rc;
    rc = cai__map_open(&im->pub.map, path, err);
    if (rc == 0) {
        im->pub.base = im->pub.map.data;
        im->pub.n_bytes = im->pub.map.n_bytes;
        rc = gguf_parse(im, err);
    }
    if (rc) {
        cai__gguf_close(&im->pub);
        return rc;
    }
    *out = &im->pub;
    return 0;
}

void cai__gguf_close(struct cai_gguf *g)
{
    struct gguf_impl *im = (struct gguf_impl *)g;
    if (!g)
        return;
    cai__map_close(&g->map);
    cai__free(im->kv_by_key);
    cai__free(im->tensor_by_name);
    cai__free(im->str_off_pool);
    cai__free(g->kv);
    cai__free(g->tensors);
    cai__free(g->path);
    cai__free(im);
}

/* ---- typed getters --------------------------------------------------------- */

/* Finds `key`: 0 found, 1 absent and optional, < 0 absent and required. */
static int lookup(const struct cai_gguf *g, const char *key, bool required,
                  const struct cai_gguf_kv **kv, struct cai_error *err)
{
    *kv = cai__gguf_find_kv(g, key);
    if (*kv)
        return 0;
    if (!required)
        return 1;
    return cai__fail(err, CAI_EFORMAT, "%s: required key \"%s\" is missing", g->path, key);
}

static int wrong_type(const struct cai_gguf *g, const struct cai_gguf_kv *kv, const char *want,
                      struct cai_error *err)
{
    char q[64];
    str_quote(q, sizeof(q), kv->key.ptr, kv->key.len);
    if (kv->type == CAI_GGUF_ARRAY)
        return cai__fail(err, CAI_EFORMAT, "%s: key \"%s\": expected %s, got array of %s",
                         g->path, q, want, vtype_name(kv->arr_type));
    return cai__fail(err, CAI_EFORMAT, "%s: key \"%s\": expected %s, got %s", g->path, q, want,
                     vtype_name(kv->type));
}

static int no_fit(const struct cai_gguf *g, const struct cai_gguf_kv *kv, const char *want,
                  struct cai_error *err)
{
    char q[64];
    str_quote(q, sizeof(q), kv->key.ptr, kv->key.len);
    if (vtype_is_signed(kv->type))
        return cai__fail(err, CAI_EFORMAT, "%s: key \"%s\": %s value %" PRId64 " does not fit %s",
                         g->path, q, vtype_name(kv->type), kv->i64, want);
    if (vtype_is_int(kv->type))
        return cai__fail(err, CAI_EFORMAT, "%s: key \"%s\": %s value %" PRIu64 " does not fit %s",
                         g->path, q, vtype_name(kv->type), kv->u64, want);
    return cai__fail(err, CAI_EFORMAT, "%s: key \"%s\": %s value %g does not fit %s", g->path, q,
                     vtype_name(kv->type), kv->f64, want);
}

int cai__gguf_get_u32(const struct cai_gguf *g, const char *key, bool required, uint32_t *out,
                      struct cai_error *err)
{
    const struct cai_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, err);
    if (rc)
        return rc;
    if (!vtype_is_int(kv->type))
        return wrong_type(g, kv, "an integer", err);
    if (vtype_is_signed(kv->type) ? (kv->i64 < 0 || kv->i64 > (int64_t)UINT32_MAX)
                                  : kv->u64 > UINT32_MAX)
        return no_fit(g, kv, "u32", err);
    *out = (uint32_t)kv->u64;
    return 0;
}

int cai__gguf_get_i64(const struct cai_gguf *g, const char *key, bool required, int64_t *out,
                      struct cai_error *err)
{
    const struct cai_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, err);
    if (rc)
        return rc;
    if (!vtype_is_int(kv->type))
        return wrong_type(g, kv, "an integer", err);
    if (!vtype_is_signed(kv->type) && kv->u64 > (uint64_t)INT64_MAX)
        return no_fit(g, kv, "i64", err);
    *out = kv->i64;
    return 0;
}

int cai__gguf_get_f32(const struct cai_gguf *g, const char *key, bool required, float *out,
                      struct cai_error *err)
{
    const struct cai_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, err);
    if (rc)
        return rc;
    if (kv->type != CAI_GGUF_F32 && kv->type != CAI_GGUF_F64)
        return wrong_type(g, kv, "f32 or f64", err);
    if (isfinite(kv->f64) && fabs(kv->f64) > (double)FLT_MAX)
        return no_fit(g, kv, "f32", err);
    *out = (float)kv->f64;
    return 0;
}

int cai__gguf_get_bool(const struct cai_gguf *g, const char *key, bool required, bool *out,
                       struct cai_error *err)
{
    const struct cai_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, err);
    if (rc)
        return rc;
    if (kv->type != CAI_GGUF_BOOL)
        return wrong_type(g, kv, "bool", err);
    *out = kv->u64 != 0;
    return 0;
}

int cai__gguf_get_str(const struct cai_gguf *g, const char *key, bool required,
                      struct cai_gguf_str *out, struct cai_error *err)
{
    const struct cai_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, err);
    if (rc)
        return rc;
    if (kv->type != CAI_GGUF_STRING)
        return wrong_type(g, kv, "string", err);
    *out = kv->str;
    return 0;
}

int cai__gguf_get_arr(const struct cai_gguf *g, const char *key, bool required, uint32_t elem_type,
                      const struct cai_gguf_kv **out, struct cai_error *err)
{
    const struct cai_gguf_kv *kv;
    int rc = lookup(g, key, required, &kv, err);
    if (rc)
        return rc;
    if (kv->type != CAI_GGUF_ARRAY || (elem_type != UINT32_MAX && kv->arr_type != elem_type)) {
        char want[32];
        snprintf(want, sizeof(want), "array of %s",
                 elem_type == UINT32_MAX ? "any type" : vtype_name(elem_type));
        return wrong_type(g, kv, want, err);
    }
    *out = kv;
    return 0;
}

/* ---- array elements ------------------------------------------------------- */

struct cai_gguf_str cai__gguf_arr_str(const struct cai_gguf_kv *kv, uint64_t i)
{
    const uint8_t *e = kv->arr_data + kv->arr_str_off[i];
    struct cai_gguf_str s = {(const char *)(e + 8), le64(e)};
    return s;
}

double cai__gguf_arr_f64(const struct cai_gguf_kv *kv, uint64_t i)
{
    uint64_t u;
    int64_t s;
    double f;
    uint64_t size = vtype_size(kv->arr_type);
    if (!size)
        return 0;
    decode_scalar(kv->arr_type, kv->arr_data + i * size, &u, &s, &f);
    return f;
}

int64_t cai__gguf_arr_i64(const struct cai_gguf_kv *kv, uint64_t i)
{
    uint64_t u;
    int64_t s;
    double f;
    uint64_t size = vtype_size(kv->arr_type);
    if (!size)
        return 0;
    decode_scalar(kv->arr_type, kv->arr_data + i * size, &u, &s, &f);
    if (kv->arr_type == CAI_GGUF_F32 || kv->arr_type == CAI_GGUF_F64)
        return (f >= -9223372036854775808.0 && f < 9223372036854775808.0) ? (int64_t)f : 0;
    return s;
}
