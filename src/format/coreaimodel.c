/* coreaimodel.c: the .coreaimodel reader and verifier declared in
 * coreaimodel.h, and the XXH64 checksum they use.
 *
 * Opening checks the fixed header (every field against the others and the
 * file size, plus its checksum), then hands the directory to the GGUF reader
 * (which validates every count, length, type and offset against the bytes
 * that remain), then checks that the directory fills exactly the bytes the
 * header gives it and that each tensor table entry agrees with its directory
 * tensor and with the canonical layout: tensors in directory order, each at
 * the next multiple of the alignment, the file ending after the last one. A
 * file that passes therefore has no byte whose role is unknown, which is what
 * lets cai__cam_verify() cover every byte with a checksum or a zero check. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coreaimodel.h"

/* ---- little-endian helpers --------------------------------------------- */

static uint16_t rd16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (unsigned)b[1] << 8);
}

static uint32_t rd32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t rd64(const uint8_t *b)
{
    return (uint64_t)rd32(b) | (uint64_t)rd32(b + 4) << 32;
}

static void wr16(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/* ---- XXH64 --------------------------------------------------------------- */

#define XXH_P1 0x9E3779B185EBCA87ull
#define XXH_P2 0xC2B2AE3D27D4EB4Full
#define XXH_P3 0x165667B19E3779F9ull
#define XXH_P4 0x85EBCA77C2B2AE63ull
#define XXH_P5 0x27D4EB2F165667C5ull

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * XXH_P2;
    acc = rotl64(acc, 31);
    return acc * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
    acc ^= xxh_round(0, v);
    return acc * XXH_P1 + XXH_P4;
}

void cai__xxh64_init(struct cai_xxh64 *s, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->seed = seed;
    s->v[0] = seed + XXH_P1 + XXH_P2;
    s->v[1] = seed + XXH_P2;
    s->v[2] = seed;
    s->v[3] = seed - XXH_P1;
}

/* Consumes whole 32-byte stripes; returns the bytes consumed. */
static size_t xxh_stripes(uint64_t v[4], const uint8_t *p, size_t n)
{
    size_t done = 0;
    uint64_t v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
    while (n - done >= 32) {
        const uint8_t *q = p + done;
        v0 = xxh_round(v0, rd64(q));
        v1 = xxh_round(v1, rd64(q + 8));
        v2 = xxh_round(v2, rd64(q + 16));
        v3 = xxh_round(v3, rd64(q + 24));
        done += 32;
    }
    v[0] = v0;
    v[1] = v1;
    v[2] = v2;
    v[3] = v3;
    return done;
}

void cai__xxh64_update(struct cai_xxh64 *s, const void *data, size_t n_bytes)
{
    const uint8_t *p = data;
    s->total += n_bytes;
    if (s->n_mem + n_bytes < 32) {
        if (n_bytes)
            memcpy(s->mem + s->n_mem, p, n_bytes);
        s->n_mem += (uint32_t)n_bytes;
        return;
    }
    if (s->n_mem) {
        size_t fill = 32 - s->n_mem;
        memcpy(s->mem + s->n_mem, p, fill);
        xxh_stripes(s->v, s->mem, 32);
        p += fill;
        n_bytes -= fill;
        s->n_mem = 0;
    }
    size_t done = xxh_stripes(s->v, p, n_bytes);
    p += done;
    n_bytes -= done;
    if (n_bytes)
        memcpy(s->mem, p, n_bytes);
    s->n_mem = (uint32_t)n_bytes;
}

uint64_t cai__xxh64_digest(const struct cai_xxh64 *s)
{
    uint64_t h;
    if (s->total >= 32) {
        h = rotl64(s->v[0], 1) + rotl64(s->v[1], 7) + rotl64(s->v[2], 12) + rotl64(s->v[3], 18);
        for (int i = 0; i < 4; i++)
            h = xxh_merge(h, s->v[i]);
    } else {
        h = s->seed + XXH_P5;
    }
    h += s->total;
    const uint8_t *p = s->mem;
    uint32_t n = s->n_mem;
    while (n >= 8) {
        h ^= xxh_round(0, rd64(p));
        h = rotl64(h, 27) * XXH_P1 + XXH_P4;
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        h ^= (uint64_t)rd32(p) * XXH_P1;
        h = rotl64(h, 23) * XXH_P2 + XXH_P3;
        p += 4;
        n -= 4;
    }
    while (n--) {
        h ^= (uint64_t)*p++ * XXH_P5;
        h = rotl64(h, 11) * XXH_P1;
    }
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    h ^= h >> 32;
    return h;
}

uint64_t cai__xxh64(const void *data, size_t n_bytes, uint64_t seed)
{
    struct cai_xxh64 s;
    cai__xxh64_init(&s, seed);
    cai__xxh64_update(&s, data, n_bytes);
    return cai__xxh64_digest(&s);
}

/* ---- header and entries ---------------------------------------------------- */

bool cai__cam_is_file(const uint8_t *head, size_t n)
{
    return head && n >= CAI_CAM_MAGIC_BYTES && memcmp(head, CAI_CAM_MAGIC, CAI_CAM_MAGIC_BYTES) == 0;
}

static void header_decode(const uint8_t *b, struct cai_cam_header *h)
{
    h->version_major = rd16(b + 8);
    h->version_minor = rd16(b + 10);
    h->header_bytes = rd32(b + 12);
    h->alignment = rd32(b + 16);
    h->checksum_kind = rd32(b + 20);
    h->file_bytes = rd64(b + 24);
    h->n_tensors = rd64(b + 32);
    h->table_offset = rd64(b + 40);
    h->dir_offset = rd64(b + 48);
    h->dir_bytes = rd64(b + 56);
    h->data_offset = rd64(b + 64);
    h->data_bytes = rd64(b + 72);
    h->meta_checksum = rd64(b + 80);
    h->header_checksum = rd64(b + 120);
}

void cai__cam_header_encode(struct cai_cam_header *h, uint8_t out[CAI_CAM_HEADER_BYTES])
{
    memset(out, 0, CAI_CAM_HEADER_BYTES);
    memcpy(out, CAI_CAM_MAGIC, CAI_CAM_MAGIC_BYTES);
    wr16(out + 8, h->version_major);
    wr16(out + 10, h->version_minor);
    wr32(out + 12, h->header_bytes);
    wr32(out + 16, h->alignment);
    wr32(out + 20, h->checksum_kind);
    wr64(out + 24, h->file_bytes);
    wr64(out + 32, h->n_tensors);
    wr64(out + 40, h->table_offset);
    wr64(out + 48, h->dir_offset);
    wr64(out + 56, h->dir_bytes);
    wr64(out + 64, h->data_offset);
    wr64(out + 72, h->data_bytes);
    wr64(out + 80, h->meta_checksum);
    h->header_checksum = cai__xxh64(out, 120, 0);
    wr64(out + 120, h->header_checksum);
}

static void entry_decode(const uint8_t *b, struct cai_cam_entry *e)
{
    e->offset = rd64(b);
    e->n_bytes = rd64(b + 8);
    e->checksum = rd64(b + 16);
    e->layout = rd16(b + 24);
    e->flags = rd16(b + 26);
}

void cai__cam_entry_encode(const struct cai_cam_entry *e, uint8_t out[CAI_CAM_ENTRY_BYTES])
{
    memset(out, 0, CAI_CAM_ENTRY_BYTES);
    wr64(out, e->offset);
    wr64(out + 8, e->n_bytes);
    wr64(out + 16, e->checksum);
    wr16(out + 24, e->layout);
    wr16(out + 26, e->flags);
}

bool cai__cam_header(const struct cai_gguf *g, struct cai_cam_header *out)
{
    if (!g || !g->base || g->n_bytes < CAI_CAM_HEADER_BYTES ||
        !cai__cam_is_file(g->base, (size_t)g->n_bytes))
        return false;
    header_decode(g->base, out);
    return true;
}

bool cai__cam_entry(const struct cai_gguf *g, uint64_t i, struct cai_cam_entry *out)
{
    struct cai_cam_header h;
    if (!cai__cam_header(g, &h) || i >= g->n_tensors)
        return false;
    entry_decode(g->base + CAI_CAM_HEADER_BYTES + i * CAI_CAM_ENTRY_BYTES, out);
    return true;
}

/* ---- the directory's extent ------------------------------------------------ */

static uint64_t value_size(uint32_t t)
{
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < CAI_ARRAY_LEN(sizes) ? sizes[t] : 0;
}

/* Skips one array body (element type, count, elements) that the GGUF reader
 * has already validated, without trusting that: every step is bounded by
 * `end`. Returns the position after it, or NULL. Depth is bounded by the
 * GGUF reader's own nesting limit; the explicit bound here keeps it so. */
const uint8_t *cai__cam_skip_array(const uint8_t *p, const uint8_t *end, int depth)
{
    if (depth > 8 || end - p < 12)
        return NULL;
    uint32_t et = rd32(p);
    uint64_t n = rd64(p + 4);
    p += 12;
    uint64_t size = value_size(et);
    if (size) {
        if (n > (uint64_t)(end - p) / size)
            return NULL;
        return p + n * size;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (et == CAI_GGUF_STRING) {
            if (end - p < 8)
                return NULL;
            uint64_t len = rd64(p);
            if (len > (uint64_t)(end - p) - 8)
                return NULL;
            p += 8 + len;
        } else if (et == CAI_GGUF_ARRAY) {
            p = cai__cam_skip_array(p, end, depth + 1);
            if (!p)
                return NULL;
        } else {
            return NULL;
        }
    }
    return p;
}

/* The end of the GGUF header in the buffer [start, end): after the last
 * tensor info, or the last kv, or the 24-byte preamble. NULL on a mismatch
 * (which would mean the GGUF reader accepted something unexpected). */
static const uint8_t *gguf_header_end(const struct cai_gguf *g, const uint8_t *start,
                                      const uint8_t *end)
{
    if (g->n_tensors) {
        const struct cai_gguf_tensor *t = &g->tensors[g->n_tensors - 1];
        return (const uint8_t *)t->name.ptr + t->name.len + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
    }
    if (!g->n_kv)
        return start + 24;
    const struct cai_gguf_kv *kv = &g->kv[g->n_kv - 1];
    const uint8_t *v = (const uint8_t *)kv->key.ptr + kv->key.len + 4;
    if (kv->type == CAI_GGUF_STRING)
        return (const uint8_t *)kv->str.ptr + kv->str.len;
    if (kv->type == CAI_GGUF_ARRAY)
        return cai__cam_skip_array(v, end, 1);
    return v + value_size(kv->type);
}

/* ---- open ----------------------------------------------------------------- */

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a; /* callers keep x + a from wrapping */
}

static int hfail(struct cai_error *err, const char *name, const char *fmt, ...) CAI__PRINTF(3, 4);

static int hfail(struct cai_error *err, const char *name, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cai__fail(err, CAI_EFORMAT, "%s: %s", name, msg);
}

/* Checks the header fields of a file of n bytes; fills *h. */
static int check_header(const uint8_t *b, uint64_t n, const char *name, struct cai_cam_header *h,
                        struct cai_error *err)
{
    if (n < CAI_CAM_MAGIC_BYTES || !cai__cam_is_file(b, (size_t)n))
        return hfail(err, name, "not a .coreaimodel file (bad magic at byte 0)");
    if (n < CAI_CAM_HEADER_BYTES)
        return hfail(err, name, "header needs %u bytes, the file has %" PRIu64
                     " (truncated file)", CAI_CAM_HEADER_BYTES, n);
    header_decode(b, h);
    if (h->version_major != CAI_CAM_VERSION_MAJOR)
        return cai__fail(err, CAI_EUNSUPPORTED,
                         "%s: .coreaimodel version %u.%u is not supported (this reader reads "
                         "version %u.x)", name, h->version_major, h->version_minor,
                         CAI_CAM_VERSION_MAJOR);
    uint64_t sum = cai__xxh64(b, 120, 0);
    if (sum != h->header_checksum)
        return hfail(err, name, "header checksum %016" PRIx64 " does not match its bytes (%016"
                     PRIx64 "): corrupt header", h->header_checksum, sum);
    if (h->header_bytes != CAI_CAM_HEADER_BYTES)
        return hfail(err, name, "header_bytes is %" PRIu32 ", expected %u", h->header_bytes,
                     CAI_CAM_HEADER_BYTES);
    uint32_t a = h->alignment;
    if (a < CAI_CAM_MIN_ALIGNMENT || a > CAI_CAM_MAX_ALIGNMENT || (a & (a - 1)))
        return hfail(err, name, "alignment %" PRIu32 " is not a power of two in [%u, %u]", a,
                     CAI_CAM_MIN_ALIGNMENT, CAI_CAM_MAX_ALIGNMENT);
    if (h->checksum_kind != CAI_CAM_CHECKSUM_XXH64)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: checksum kind %" PRIu32 " is not supported "
                         "(1 = XXH64 is)", name, h->checksum_kind);
    if (h->file_bytes != n)
        return hfail(err, name, "the file has %" PRIu64 " bytes but its header says %" PRIu64
                     " (%s)", n, h->file_bytes,
                     n < h->file_bytes ? "truncated file" : "bytes appended");
    if (h->table_offset != CAI_CAM_HEADER_BYTES)
        return hfail(err, name, "table_offset is %" PRIu64 ", expected %u", h->table_offset,
                     CAI_CAM_HEADER_BYTES);
    if (h->n_tensors > (n - CAI_CAM_HEADER_BYTES) / CAI_CAM_ENTRY_BYTES)
        return hfail(err, name, "n_tensors %" PRIu64 " cannot fit in the file", h->n_tensors);
    uint64_t table_end = CAI_CAM_HEADER_BYTES + h->n_tensors * CAI_CAM_ENTRY_BYTES;
    if (h->dir_offset != align_up(table_end, a))
        return hfail(err, name, "dir_offset %" PRIu64 " is not the aligned end of the tensor "
                     "table (%" PRIu64 ")", h->dir_offset, align_up(table_end, a));
    if (h->dir_offset > n || h->dir_bytes < 24 || h->dir_bytes > n - h->dir_offset)
        return hfail(err, name, "directory at %" PRIu64 " + %" PRIu64 " bytes lies outside the %"
                     PRIu64 "-byte file", h->dir_offset, h->dir_bytes, n);
    uint64_t dir_end = h->dir_offset + h->dir_bytes; /* <= n: no wrap below */
    if (h->data_offset != align_up(dir_end, a))
        return hfail(err, name, "data_offset %" PRIu64 " is not the aligned end of the "
                     "directory (%" PRIu64 ")", h->data_offset, align_up(dir_end, a));
    if (h->data_offset > n)
        return hfail(err, name, "data section at %" PRIu64 " starts past the end of the %" PRIu64
                     "-byte file (truncated file)", h->data_offset, n);
    if (h->data_bytes != n - h->data_offset)
        return hfail(err, name, "data_bytes %" PRIu64 " disagrees with the file (%" PRIu64 ")",
                     h->data_bytes, n - h->data_offset);
    return 0;
}

/* Names a tensor in a message: up to 64 bytes, non-printables as '?'. */
static void tensor_label(char buf[72], const struct cai_gguf_tensor *t)
{
    size_t n = (size_t)CAI_MIN(t->name.len, 64);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t->name.ptr[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[n] = '\0';
}

/* Checks the directory and the table against the header. */
static int check_directory(const uint8_t *b, uint64_t n, const char *name,
                           const struct cai_cam_header *h, struct cai_gguf *g,
                           struct cai_error *err)
{
    if (g->version != 3)
        return hfail(err, name, "directory is GGUF version %" PRIu32 ", expected 3", g->version);
    if (g->n_tensors != h->n_tensors)
        return hfail(err, name, "directory has %" PRIu64 " tensors, the header %" PRIu64,
                     g->n_tensors, h->n_tensors);
    if (g->alignment != h->alignment || !cai__gguf_find_kv(g, "general.alignment"))
        return hfail(err, name, "directory alignment (general.alignment) %" PRIu32
                     " differs from the header's %" PRIu32, g->alignment, h->alignment);
    const uint8_t *dir = b + h->dir_offset;
    const uint8_t *dend = gguf_header_end(g, dir, b + n);
    if (!dend || (uint64_t)(dend - dir) != h->dir_bytes)
        return hfail(err, name, "directory is %" PRIu64 " bytes long, the header says %" PRIu64,
                     dend ? (uint64_t)(dend - dir) : 0, h->dir_bytes);
    if (g->data_offset + h->dir_offset != h->data_offset)
        return hfail(err, name, "directory places data at %" PRIu64 ", the header at %" PRIu64,
                     g->data_offset + h->dir_offset, h->data_offset);
    uint64_t expect = h->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct cai_gguf_tensor *t = &g->tensors[i];
        struct cai_cam_entry e;
        char label[72];
        entry_decode(b + CAI_CAM_HEADER_BYTES + i * CAI_CAM_ENTRY_BYTES, &e);
        tensor_label(label, t);
        /* expect <= n (it is a previous tensor's end, inside the file), so
         * the aligned value fits: n < 2^64 - 2^24. */
        if (i > 0)
            expect = align_up(expect, h->alignment);
        if (h->data_offset + t->offset != expect)
            return hfail(err, name, "tensor[%" PRIu64 "] \"%s\": data at offset %" PRIu64
                         " is not where the canonical layout puts it (%" PRIu64 ")",
                         i, label, h->data_offset + t->offset, expect);
        if (e.offset != expect || e.n_bytes != t->n_bytes)
            return hfail(err, name, "tensor[%" PRIu64 "] \"%s\": table entry (offset %" PRIu64
                         ", %" PRIu64 " bytes) disagrees with the directory (%" PRIu64 ", %"
                         PRIu64 ")", i, label, e.offset, e.n_bytes, expect, t->n_bytes);
        if (e.layout != 0)
            return cai__fail(err, CAI_EUNSUPPORTED, "%s: tensor \"%s\" uses layout %u, which "
                             "this reader does not know (a newer coreai wrote it)", name, label,
                             e.layout);
        if (e.flags & ~CAI_CAM_FLAG_EXPERT_MAJOR)
            return cai__fail(err, CAI_EUNSUPPORTED, "%s: tensor \"%s\" has unknown flags 0x%x",
                             name, label, e.flags);
        expect += t->n_bytes; /* inside the data section: checked by the GGUF reader */
    }
    if (expect != n)
        return hfail(err, name, "%" PRIu64 " bytes follow the last tensor (which ends at %" PRIu64
                     ")", n - expect, expect);
    return 0;
}

static int cam_parse(struct cai_gguf **out, const uint8_t *b, uint64_t n, const char *name,
                     struct cai_error *err)
{
    struct cai_cam_header h;
    struct cai_gguf *g;
    *out = NULL;
    int rc = check_header(b, n, name, &h, err);
    if (rc)
        return rc;
    rc = cai__gguf_open_buffer(&g, b + h.dir_offset, n - h.dir_offset, name, err);
    if (rc)
        return rc;
    rc = check_directory(b, n, name, &h, g, err);
    if (rc) {
        cai__gguf_close(g);
        return rc;
    }
    g->base = b;
    g->n_bytes = n;
    g->data_offset = h.data_offset;
    *out = g;
    return 0;
}

int cai__cam_open_buffer(struct cai_gguf **out, const void *data, uint64_t n_bytes,
                         const char *name, struct cai_error *err)
{
    *out = NULL;
    if (!name)
        name = "<buffer>";
    if (!data && n_bytes)
        return cai__fail(err, CAI_EINVAL, "%s: NULL buffer of %" PRIu64 " bytes", name, n_bytes);
    return cam_parse(out, data, n_bytes, name, err);
}

int cai__cam_open(struct cai_gguf **out, const char *path, struct cai_error *err)
{
    struct cai_map map;
    *out = NULL;
    int rc = cai__map_open(&map, path, err);
    if (rc)
        return rc;
    rc = cam_parse(out, map.data, map.n_bytes, path, err);
    if (rc) {
        cai__map_close(&map);
        return rc;
    }
    (*out)->map = map; /* cai__gguf_close unmaps it */
    /* The header and the tensor table are only needed to open (and to
     * verify, which reads them again): give their pages back, so an open
     * .coreaimodel keeps no more of its file resident than a GGUF does. The
     * mapping is read-only, so a later read faults the same bytes back in. */
    if (map.mapped && map.n_bytes >= CAI_CAM_HEADER_BYTES) {
        uint64_t dir = rd64(map.data + 48); /* dir_offset, checked by the parse */
        long page = sysconf(_SC_PAGESIZE);
        if (page > 0 && dir >= (uint64_t)page && dir <= map.n_bytes)
            madvise((void *)(uintptr_t)map.data, (size_t)(dir / (uint64_t)page * (uint64_t)page),
                    MADV_DONTNEED);
    }
    return 0;
}

/* ---- verify --------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int cai__cam_verify(const struct cai_gguf *g, cai_cam_verify_fn cb, void *user,
                    struct cai_cam_verify_result *res, struct cai_error *err)
{
    struct cai_cam_verify_result r;
    struct cai_cam_header h;
    memset(&r, 0, sizeof(r));
    if (res)
        *res = r;
    if (!cai__cam_header(g, &h))
        return cai__fail(err, CAI_EINVAL, "%s: not a .coreaimodel file", g ? g->path : "(null)");
    const uint8_t *b = g->base;
    uint64_t table_end = CAI_CAM_HEADER_BYTES + h.n_tensors * CAI_CAM_ENTRY_BYTES;
    uint64_t dir_end = h.dir_offset + h.dir_bytes;

    struct cai_xxh64 s;
    cai__xxh64_init(&s, 0);
    cai__xxh64_update(&s, b + CAI_CAM_HEADER_BYTES, (size_t)(table_end - CAI_CAM_HEADER_BYTES));
    cai__xxh64_update(&s, b + h.dir_offset, (size_t)h.dir_bytes);
    r.meta_ok = cai__xxh64_digest(&s) == h.meta_checksum;
    r.padding_ok = all_zero(b + table_end, h.dir_offset - table_end) &&
                   all_zero(b + dir_end, h.data_offset - dir_end);

    uint64_t total = 0, done = 0, prev_end = h.data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        total += g->tensors[i].n_bytes;
    r.n_tensors = g->n_tensors;
    int64_t first_bad = -1;
    char name[72];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct cai_gguf_tensor *t = &g->tensors[i];
        struct cai_cam_entry e;
        entry_decode(b + CAI_CAM_HEADER_BYTES + i * CAI_CAM_ENTRY_BYTES, &e);
        if (!all_zero(b + prev_end, e.offset - prev_end))
            r.padding_ok = false;
        prev_end = e.offset + e.n_bytes;
        bool ok = cai__xxh64(t->data, (size_t)t->n_bytes, 0) == e.checksum;
        if (!ok) {
            r.n_bad++;
            if (first_bad < 0)
                first_bad = (int64_t)i;
        }
        done += t->n_bytes;
        if (cb) {
            tensor_label(name, t);
            if (cb(user, i, name, ok, done, total)) {
                r.bytes_hashed = done;
                if (res)
                    *res = r;
                return cai__fail(err, CAI_ECANCELLED, "%s: verification stopped", g->path);
            }
        }
    }
    r.bytes_hashed = done;
    if (res)
        *res = r;
    if (r.n_bad) {
        tensor_label(name, &g->tensors[first_bad]);
        return cai__fail(err, CAI_EFORMAT, "%s: %" PRIu64 " of %" PRIu64 " tensors fail their "
                         "checksum (first: \"%s\")", g->path, r.n_bad, r.n_tensors, name);
    }
    if (!r.meta_ok)
        return cai__fail(err, CAI_EFORMAT, "%s: the metadata (tensor table and directory) fails "
                         "its checksum", g->path);
    if (!r.padding_ok)
        return cai__fail(err, CAI_EFORMAT, "%s: padding between sections holds nonzero bytes",
                         g->path);
    return 0;
}
