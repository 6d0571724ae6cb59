/* gguf_write.c: the in-memory GGUF builder declared in gguf_write.h.
 *
 * Key/value records are encoded as they are added into one growing buffer
 * (with an index of where each starts, for duplicate checks); tensors are
 * kept as descriptors with borrowed data. Layout (tensor offsets, padding)
 * is computed when serializing, so the alignment may be set at any time. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_write.h"
#include "gguf.h"
#include "wbuf.h"
#include "../tensor/types.h"

#define W_MAX_KEY_LEN  65535u
#define W_MAX_NAME_LEN 64u

struct wtensor {
    char       *name;
    uint32_t    n_dims;
    int64_t     ne[4];
    uint32_t    type;
    const void *data; /* borrowed; NULL = zeros */
    uint64_t    n_bytes;
};

struct cai_gguf_writer {
    const char     *label;  /* how key errors name the writer */
    uint32_t        version;
    uint32_t        alignment;
    struct cai__wbuf     kvs;    /* encoded kv records, back to back */
    size_t         *kv_off; /* [n_kv] start of each record in kvs */
    uint64_t        n_kv;
    size_t          kv_cap;
    struct wtensor *tensors;
    uint64_t        n_tensors;
    size_t          t_cap;
};

/* ---- writer ------------------------------------------------------------------ */

int cai__gguf_writer_new(struct cai_gguf_writer **out, uint32_t version, struct cai_error *err)
{
    *out = NULL;
    if (version != 2 && version != 3)
        return cai__fail(err, CAI_EINVAL, "gguf writer: version %" PRIu32 " (only 2 or 3)",
                         version);
    struct cai_gguf_writer *w = cai__calloc(1, sizeof(*w));
    if (!w)
        return cai__fail(err, CAI_ENOMEM, "gguf writer: out of memory");
    w->label = "gguf writer";
    w->version = version;
    w->alignment = 32;
    *out = w;
    return 0;
}

void cai__gguf_writer_free(struct cai_gguf_writer *w)
{
    if (!w)
        return;
    for (uint64_t i = 0; i < w->n_tensors; i++)
        cai__free(w->tensors[i].name);
    cai__free(w->tensors);
    cai__free(w->kv_off);
    cai__free(w->kvs.p);
    cai__free(w);
}

/* Index of the kv whose key is `key` (`len` bytes), or UINT64_MAX. */
static uint64_t find_key(const struct cai_gguf_writer *w, const char *key, size_t len)
{
    for (uint64_t i = 0; i < w->n_kv; i++) {
        const uint8_t *r = w->kvs.p + w->kv_off[i];
        if (cai__get_le64(r) == len && memcmp(r + 8, key, len) == 0)
            return i;
    }
    return UINT64_MAX;
}

/* Starts a kv record: checks the key, makes room in the index, writes the
 * key and type. `*mark` is where the record starts (for kv_end). */
static int kv_begin(struct cai_gguf_writer *w, const char *key, uint32_t type, size_t *mark,
                    struct cai_error *err)
{
    size_t len = strlen(key);
    if (len == 0 || len > W_MAX_KEY_LEN)
        return cai__fail(err, CAI_EINVAL, "%s: key \"%.48s\": length %zu not in 1..%u",
                         w->label, key, len, W_MAX_KEY_LEN);
    if (find_key(w, key, len) != UINT64_MAX)
        return cai__fail(err, CAI_EINVAL, "%s: duplicate key \"%.48s\": already added", w->label, key);
    if (w->n_kv == w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap * 2 : 16;
        size_t *p = cai__realloc(w->kv_off, cap * sizeof(*p));
        if (!p)
            return cai__fail(err, CAI_ENOMEM, "%s: key \"%.48s\": out of memory", w->label, key);
        w->kv_off = p;
        w->kv_cap = cap;
    }
    *mark = w->kvs.n;
    if (!cai__wb_str(&w->kvs, key, len) || !cai__wb_u32(&w->kvs, type)) {
        w->kvs.n = *mark;
        return cai__fail(err, CAI_ENOMEM, "%s: key \"%.48s\": out of memory", w->label, key);
    }
    return 0;
}

/* Commits the record started at `mark` if `ok`, else drops it. */
static int kv_end(struct cai_gguf_writer *w, const char *key, size_t mark, bool ok,
                  struct cai_error *err)
{
    if (!ok) {
        w->kvs.n = mark;
        return cai__fail(err, CAI_ENOMEM, "%s: key \"%.48s\": out of memory", w->label, key);
    }
    w->kv_off[w->n_kv++] = mark;
    return 0;
}

static int add_scalar(struct cai_gguf_writer *w, const char *key, uint32_t type, uint64_t bits,
                      size_t n, struct cai_error *err)
{
    size_t mark;
    uint8_t t[8];
    int rc = kv_begin(w, key, type, &mark, err);
    if (rc)
        return rc;
    cai__put_le(t, bits, n);
    return kv_end(w, key, mark, cai__wb_put(&w->kvs, t, n), err);
}

int cai__gguf_writer_add_u8(struct cai_gguf_writer *w, const char *key, uint8_t v,
                            struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_U8, v, 1, err);
}

int cai__gguf_writer_add_i8(struct cai_gguf_writer *w, const char *key, int8_t v,
                            struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_I8, (uint8_t)v, 1, err);
}

int cai__gguf_writer_add_u16(struct cai_gguf_writer *w, const char *key, uint16_t v,
                             struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_U16, v, 2, err);
}

int cai__gguf_writer_add_i16(struct cai_gguf_writer *w, const char *key, int16_t v,
                             struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_I16, (uint16_t)v, 2, err);
}

int cai__gguf_writer_add_u32(struct cai_gguf_writer *w, const char *key, uint32_t v,
                             struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_U32, v, 4, err);
}

int cai__gguf_writer_add_i32(struct cai_gguf_writer *w, const char *key, int32_t v,
                             struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_I32, (uint32_t)v, 4, err);
}

int cai__gguf_writer_add_f32(struct cai_gguf_writer *w, const char *key, float v,
                             struct cai_error *err)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return add_scalar(w, key, CAI_GGUF_F32, bits, 4, err);
}

int cai__gguf_writer_add_bool(struct cai_gguf_writer *w, const char *key, bool v,
                              struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_BOOL, v ? 1 : 0, 1, err);
}

int cai__gguf_writer_add_u64(struct cai_gguf_writer *w, const char *key, uint64_t v,
                             struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_U64, v, 8, err);
}

int cai__gguf_writer_add_i64(struct cai_gguf_writer *w, const char *key, int64_t v,
                             struct cai_error *err)
{
    return add_scalar(w, key, CAI_GGUF_I64, (uint64_t)v, 8, err);
}

int cai__gguf_writer_add_f64(struct cai_gguf_writer *w, const char *key, double v,
                             struct cai_error *err)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return add_scalar(w, key, CAI_GGUF_F64, bits, 8, err);
}

int cai__gguf_writer_add_strn(struct cai_gguf_writer *w, const char *key, const char *v,
                              uint64_t len, struct cai_error *err)
{
    size_t mark;
    if (len > SIZE_MAX)
        return cai__fail(err, CAI_EINVAL, "%s: key \"%.48s\": string too long", w->label, key);
    int rc = kv_begin(w, key, CAI_GGUF_STRING, &mark, err);
    if (rc)
        return rc;
    bool ok = cai__wb_u64(&w->kvs, len) && cai__wb_put(&w->kvs, v, (size_t)len);
    return kv_end(w, key, mark, ok, err);
}

int cai__gguf_writer_add_str(struct cai_gguf_writer *w, const char *key, const char *v,
                             struct cai_error *err)
{
    return cai__gguf_writer_add_strn(w, key, v, strlen(v), err);
}

/* Bytes of one fixed-size element; 0 for STRING, ARRAY and unknown ids. */
static size_t elem_size(uint32_t t)
{
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < CAI_ARRAY_LEN(sizes) ? sizes[t] : 0;
}

int cai__gguf_writer_add_arr(struct cai_gguf_writer *w, const char *key, uint32_t elem_type,
                             const void *elems, uint64_t n, struct cai_error *err)
{
    size_t es = elem_size(elem_type), total, mark;
    if (!es)
        return cai__fail(err, CAI_EINVAL,
                         "%s: key \"%.48s\": element type %" PRIu32
                         " is not a fixed-size type",
                         w->label, key, elem_type);
    if (n > SIZE_MAX || !cai__mul_size((size_t)n, es, &total))
        return cai__fail(err, CAI_EINVAL, "%s: key \"%.48s\": array too large", w->label, key);
    int rc = kv_begin(w, key, CAI_GGUF_ARRAY, &mark, err);
    if (rc)
        return rc;
    bool ok = cai__wb_u32(&w->kvs, elem_type) && cai__wb_u64(&w->kvs, n) &&
              cai__wb_reserve(&w->kvs, total);
    if (ok) {
        const uint8_t *src = elems;
        uint8_t *dst = w->kvs.p + w->kvs.n;
        for (size_t i = 0; i < (size_t)n; i++) {
            const uint8_t *e = src + i * es;
            uint64_t v = 0;
            if (elem_type == CAI_GGUF_BOOL) {
                bool b;
                memcpy(&b, e, sizeof(b));
                v = b ? 1 : 0;
            } else if (es == 1) {
                v = e[0];
            } else if (es == 2) {
                uint16_t x;
                memcpy(&x, e, 2);
                v = x;
            } else if (es == 4) {
                uint32_t x;
                memcpy(&x, e, 4);
                v = x;
            } else {
                memcpy(&v, e, 8);
            }
            cai__put_le(dst + i * es, v, es);
        }
        w->kvs.n += total;
    }
    return kv_end(w, key, mark, ok, err);
}

int cai__gguf_writer_add_arr_strn(struct cai_gguf_writer *w, const char *key,
                                  const char *const *strs, const uint32_t *lens, uint64_t n,
                                  struct cai_error *err)
{
    size_t mark;
    int rc = kv_begin(w, key, CAI_GGUF_ARRAY, &mark, err);
    if (rc)
        return rc;
    bool ok = cai__wb_u32(&w->kvs, CAI_GGUF_STRING) && cai__wb_u64(&w->kvs, n);
    for (uint64_t i = 0; ok && i < n; i++)
        ok = cai__wb_str(&w->kvs, strs[i], lens ? lens[i] : strlen(strs[i]));
    return kv_end(w, key, mark, ok, err);
}

int cai__gguf_writer_add_arr_str(struct cai_gguf_writer *w, const char *key,
                                 const char *const *strs, uint64_t n, struct cai_error *err)
{
    return cai__gguf_writer_add_arr_strn(w, key, strs, NULL, n, err);
}

int cai__gguf_writer_add_raw(struct cai_gguf_writer *w, const char *key, uint32_t type,
                             const void *value, size_t n_bytes, struct cai_error *err)
{
    size_t mark;
    int rc = kv_begin(w, key, type, &mark, err);
    if (rc)
        return rc;
    return kv_end(w, key, mark, cai__wb_put(&w->kvs, value, n_bytes), err);
}

void cai__gguf_writer_set_label(struct cai_gguf_writer *w, const char *label)
{
    w->label = label;
}

bool cai__gguf_writer_has_kv(const struct cai_gguf_writer *w, const char *key)
{
    return find_key(w, key, strlen(key)) != UINT64_MAX;
}

uint64_t cai__gguf_writer_kv_records(const struct cai_gguf_writer *w, const uint8_t **records,
                                     size_t *n_bytes)
{
    *records = w->kvs.p;
    *n_bytes = w->kvs.n;
    return w->n_kv;
}

int cai__gguf_writer_set_alignment(struct cai_gguf_writer *w, uint32_t alignment,
                                   struct cai_error *err)
{
    static const char key[] = "general.alignment";
    if (alignment < 8 || alignment > (1u << 24) || (alignment & (alignment - 1)) != 0)
        return cai__fail(err, CAI_EINVAL,
                         "gguf writer: alignment %" PRIu32 " is not a power of two in 8..%u",
                         alignment, 1u << 24);
    uint64_t i = find_key(w, key, sizeof(key) - 1);
    if (i == UINT64_MAX) {
        int rc = cai__gguf_writer_add_u32(w, key, alignment, err);
        if (rc)
            return rc;
    } else {
        uint8_t *r = w->kvs.p + w->kv_off[i] + 8 + (sizeof(key) - 1);
        if (r[0] != CAI_GGUF_U32 || r[1] || r[2] || r[3])
            return cai__fail(err, CAI_EINVAL,
                             "gguf writer: key \"%s\" was already added with another type", key);
        cai__put_le(r + 4, alignment, 4);
    }
    w->alignment = alignment;
    return 0;
}

int cai__gguf_writer_add_tensor(struct cai_gguf_writer *w, const char *name, uint32_t n_dims,
                                const int64_t *ne, uint32_t type, const void *data,
                                uint64_t n_bytes, struct cai_error *err)
{
    size_t len = strlen(name), row;
    uint64_t rows = 1, want;
    if (len == 0 || len > W_MAX_NAME_LEN)
        return cai__fail(err, CAI_EINVAL,
                         "gguf writer: tensor \"%.64s\": name length %zu not in 1..%u", name, len,
                         W_MAX_NAME_LEN);
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return cai__fail(err, CAI_EINVAL, "gguf writer: tensor \"%s\": already added", name);
    if (n_dims < 1 || n_dims > 4)
        return cai__fail(err, CAI_EINVAL, "gguf writer: tensor \"%s\": n_dims %" PRIu32
                         " not in 1..4", name, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1)
            return cai__fail(err, CAI_EINVAL,
                             "gguf writer: tensor \"%s\": ne[%" PRIu32 "] = %" PRId64 " < 1", name,
                             d, ne[d]);
        if (d > 0 && !cai__mul_u64(rows, (uint64_t)ne[d], &rows))
            return cai__fail(err, CAI_EINVAL, "gguf writer: tensor \"%s\": shape overflows",
                             name);
    }
    const struct cai_type_info *ti = cai__type_info(type);
    if (!ti)
        return cai__fail(err, CAI_EINVAL, "gguf writer: tensor \"%s\": unknown type %" PRIu32,
                         name, type);
    if (!cai__row_bytes(type, ne[0], &row) || !cai__mul_u64(row, rows, &want))
        return cai__fail(err, CAI_EINVAL,
                         "gguf writer: tensor \"%s\": ne[0] = %" PRId64
                         " is not a multiple of the %s block %d, or the size overflows",
                         name, ne[0], ti->name, ti->block);
    if (want != n_bytes)
        return cai__fail(err, CAI_EINVAL,
                         "gguf writer: tensor \"%s\": %" PRIu64 " bytes given, shape and type %s "
                         "need %" PRIu64,
                         name, n_bytes, ti->name, want);
    if (w->n_tensors == w->t_cap) {
        size_t cap = w->t_cap ? w->t_cap * 2 : 16;
        struct wtensor *p = cai__realloc(w->tensors, cap * sizeof(*p));
        if (!p)
            return cai__fail(err, CAI_ENOMEM, "gguf writer: tensor \"%s\": out of memory", name);
        w->tensors = p;
        w->t_cap = cap;
    }
    struct wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof(*t));
    t->name = cai__strndup(name, len);
    if (!t->name)
        return cai__fail(err, CAI_ENOMEM, "gguf writer: tensor \"%s\": out of memory", name);
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < 4; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->data = data;
    t->n_bytes = n_bytes;
    w->n_tensors++;
    return 0;
}

/* ---- layout and output ----------------------------------------------------- */

/* Rounds up to the alignment; false on overflow. */
static bool align_up(uint64_t x, uint32_t a, uint64_t *out)
{
    if (!cai__add_u64(x, a - 1, out))
        return false;
    *out = *out / a * a;
    return true;
}

/* Where the data section starts and where the file ends. */
static bool layout(const struct cai_gguf_writer *w, uint64_t *meta_end, uint64_t *data_offset,
                   uint64_t *total)
{
    uint64_t m = 24 + (uint64_t)w->kvs.n, end = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        m += 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        uint64_t off;
        if (!align_up(end, w->alignment, &off) || !cai__add_u64(off, t->n_bytes, &end))
            return false;
    }
    *meta_end = m;
    if (!w->n_tensors) {
        *data_offset = m;
        *total = m;
        return true;
    }
    return align_up(m, w->alignment, data_offset) && cai__add_u64(*data_offset, end, total);
}

uint64_t cai__gguf_writer_size(const struct cai_gguf_writer *w)
{
    uint64_t m, d, total;
    return layout(w, &m, &d, &total) ? total : UINT64_MAX;
}

/* Header, kvs, tensor infos and padding up to the data section. */
static int build_meta(const struct cai_gguf_writer *w, struct cai__wbuf *b, uint64_t data_offset,
                      struct cai_error *err)
{
    bool ok = cai__wb_reserve(b, (size_t)data_offset) && cai__wb_u32(b, 0x46554747u) &&
              cai__wb_u32(b, w->version) && cai__wb_u64(b, w->n_tensors) &&
              cai__wb_u64(b, w->n_kv) &&
              cai__wb_put(b, w->kvs.p, w->kvs.n);
    uint64_t end = 0;
    for (uint64_t i = 0; ok && i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        uint64_t off;
        align_up(end, w->alignment, &off); /* checked by layout() */
        end = off + t->n_bytes;
        size_t len = strlen(t->name);
        ok = cai__wb_u64(b, len) && cai__wb_put(b, t->name, len) && cai__wb_u32(b, t->n_dims);
        for (uint32_t d = 0; ok && d < t->n_dims; d++)
            ok = cai__wb_u64(b, (uint64_t)t->ne[d]);
        ok = ok && cai__wb_u32(b, t->type) && cai__wb_u64(b, off);
    }
    if (ok && b->n < data_offset)
        ok = cai__wb_zeros(b, (size_t)(data_offset - b->n));
    if (!ok) {
        cai__free(b->p);
        b->p = NULL;
        return cai__fail(err, CAI_ENOMEM, "gguf writer: out of memory");
    }
    return 0;
}

int cai__gguf_writer_serialize(const struct cai_gguf_writer *w, uint8_t **out, size_t *n_bytes,
                               struct cai_error *err)
{
    uint64_t meta_end, data_offset, total;
    struct cai__wbuf b = {0};
    *out = NULL;
    *n_bytes = 0;
    if (!layout(w, &meta_end, &data_offset, &total) || total > SIZE_MAX)
        return cai__fail(err, CAI_EINVAL, "gguf writer: file too large for memory");
    int rc = build_meta(w, &b, data_offset, err);
    if (rc)
        return rc;
    if (!cai__wb_reserve(&b, (size_t)(total - b.n))) {
        cai__free(b.p);
        return cai__fail(err, CAI_ENOMEM, "gguf writer: out of memory for %" PRIu64 " bytes",
                         total);
    }
    uint64_t end = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        uint64_t off;
        align_up(end, w->alignment, &off);
        cai__wb_zeros(&b, (size_t)(off - end)); /* room reserved above */
        if (t->data)
            cai__wb_put(&b, t->data, (size_t)t->n_bytes);
        else
            cai__wb_zeros(&b, (size_t)t->n_bytes);
        end = off + t->n_bytes;
    }
    *out = b.p;
    *n_bytes = b.n;
    return 0;
}

static int write_all(int fd, const void *data, uint64_t n)
{
    const uint8_t *p = data;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = write(fd, p, chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? errno : EIO;
        p += r;
        n -= (uint64_t)r;
    }
    return 0;
}

static int write_zeros(int fd, uint64_t n)
{
    static const uint8_t zeros[4096];
    while (n) {
        uint64_t chunk = n > sizeof(zeros) ? sizeof(zeros) : n;
        int e = write_all(fd, zeros, chunk);
        if (e)
            return e;
        n -= chunk;
    }
    return 0;
}

int cai__gguf_writer_write_file(const struct cai_gguf_writer *w, const char *path,
                                struct cai_error *err)
{
    uint64_t meta_end, data_offset, total;
    struct cai__wbuf b = {0};
    if (!layout(w, &meta_end, &data_offset, &total) || data_offset > SIZE_MAX)
        return cai__fail(err, CAI_EINVAL, "%s: gguf writer: file too large", path);
    int rc = build_meta(w, &b, data_offset, err);
    if (rc)
        return rc;
    size_t plen = strlen(path);
    char *tmp = cai__malloc(plen + 8);
    if (!tmp) {
        cai__free(b.p);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        cai__free(tmp);
        cai__free(b.p);
        return cai__fail(err, CAI_EIO, "%s: cannot create a temporary file: %s", path,
                         strerror(e));
    }
    int e = fchmod(fd, 0644) ? errno : 0;
    if (!e)
        e = write_all(fd, b.p, b.n);
    uint64_t end = 0;
    for (uint64_t i = 0; !e && i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        uint64_t off;
        align_up(end, w->alignment, &off);
        e = write_zeros(fd, off - end);
        if (!e)
            e = t->data ? write_all(fd, t->data, t->n_bytes) : write_zeros(fd, t->n_bytes);
        end = off + t->n_bytes;
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e)
        unlink(tmp);
    cai__free(tmp);
    cai__free(b.p);
    if (e)
        return cai__fail(err, CAI_EIO, "%s: write failed: %s", path, strerror(e));
    /* Make the rename durable (best effort). */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}
