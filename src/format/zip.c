/* zip.c: the ZIP reader declared in zip.h (PKWARE APPNOTE 6.3: end of
 * central directory, ZIP64 locator and record, central and local headers). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zip.h"

#define SIG_EOCD    0x06054b50u
#define SIG_LOC64   0x07064b50u
#define SIG_EOCD64  0x06064b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_LOCAL   0x04034b50u
#define MAX_NAME    4096u

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

uint32_t cai__crc32(uint32_t crc, const void *data, uint64_t n_bytes)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (uint64_t i = 0; i < n_bytes; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void label(char out[72], const char *s, size_t len)
{
    size_t n = len < 64 ? len : 64;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[n] = '\0';
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_NAME || s[0] == '/' || memchr(s, 0, n) || memchr(s, '\\', n))
        return false;
    /* No ".." path component. */
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (i - start == 2 && s[start] == '.' && s[start + 1] == '.')
                return false;
            start = i + 1;
        }
    }
    return true;
}

struct span {
    uint64_t begin, end;
    uint64_t idx;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct cai_zip_entry *)a)->name,
                  ((const struct cai_zip_entry *)b)->name);
}

/* Reads the zip64 extra field values for those that are saturated. */
static int zip64_extra(const uint8_t *ex, uint32_t n, uint64_t *usize, uint64_t *csize,
                       uint64_t *off, bool need_u, bool need_c, bool need_o)
{
    uint32_t i = 0;
    while (i + 4 <= n) {
        uint16_t id = rd16(ex + i), len = rd16(ex + i + 2);
        if (i + 4 + (uint32_t)len > n)
            return -1;
        if (id == 0x0001) {
            const uint8_t *p = ex + i + 4;
            uint32_t need = 8u * ((unsigned)need_u + (unsigned)need_c + (unsigned)need_o);
            if (len < need)
                return -1;
            if (need_u) {
                *usize = rd64(p);
                p += 8;
            }
            if (need_c) {
                *csize = rd64(p);
                p += 8;
            }
            if (need_o)
                *off = rd64(p);
            return 0;
        }
        i += 4 + (uint32_t)len;
    }
    return (need_u || need_c || need_o) ? -1 : 0;
}

static int zip_parse(struct cai_zip *z, const uint8_t *b, uint64_t n, struct cai_error *err)
{
    const char *path = z->path;
    if (n < 22)
        return cai__fail(err, CAI_EFORMAT, "%s: %" PRIu64 " bytes is too short for a zip archive",
                         path, n);
    /* The end record: the last signature whose comment reaches the end. */
    uint64_t eocd = UINT64_MAX;
    uint64_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
    for (uint64_t i = n - 22 + 1; i-- > lo;) {
        if (rd32(b + i) == SIG_EOCD && i + 22 + rd16(b + i + 20) == n) {
            eocd = i;
            break;
        }
    }
    if (eocd == UINT64_MAX)
        return cai__fail(err, CAI_EFORMAT, "%s: no zip end-of-central-directory record (not a zip "
                         "archive, or truncated)", path);
    const uint8_t *e = b + eocd;
    uint64_t n_total = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    uint32_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
    uint64_t n_disk = rd16(e + 8);
    if (n_total == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < 20 || rd32(b + eocd - 20) != SIG_LOC64)
            return cai__fail(err, CAI_EFORMAT, "%s: zip64 sizes without a zip64 locator", path);
        const uint8_t *l = b + eocd - 20;
        uint64_t r = rd64(l + 8);
        if (rd32(l + 4) != 0 || rd32(l + 16) > 1)
            return cai__fail(err, CAI_EUNSUPPORTED, "%s: multi-disk zip archives are not supported",
                             path);
        if (r > eocd - 20 || eocd - 20 - r < 56 || rd32(b + r) != SIG_EOCD64)
            return cai__fail(err, CAI_EFORMAT, "%s: zip64 end record offset %" PRIu64 " is invalid",
                             path, r);
        const uint8_t *e64 = b + r;
        disk = rd32(e64 + 16);
        cd_disk = rd32(e64 + 20);
        n_disk = rd64(e64 + 24);
        n_total = rd64(e64 + 32);
        cd_size = rd64(e64 + 40);
        cd_off = rd64(e64 + 48);
        eocd = r; /* the central directory must end before the zip64 record */
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: multi-disk zip archives are not supported",
                         path);
    if (cd_off > eocd || cd_size > eocd - cd_off)
        return cai__fail(err, CAI_EFORMAT, "%s: central directory at %" PRIu64 " + %" PRIu64
                         " lies outside the archive", path, cd_off, cd_size);
    if (n_total > cd_size / 46)
        return cai__fail(err, CAI_EFORMAT, "%s: %" PRIu64 " entries cannot fit in a %" PRIu64
                         "-byte central directory", path, n_total, cd_size);
    z->entries = cai__calloc(n_total ? (size_t)n_total : 1, sizeof(*z->entries));
    struct span *spans = cai__calloc(n_total ? (size_t)n_total : 1, sizeof(*spans));
    int rc = 0;
    if (!z->entries || !spans) {
        cai__free(spans);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    }
    uint64_t pos = cd_off, cd_end = cd_off + cd_size;
    char nm[72];
    for (uint64_t i = 0; i < n_total; i++) {
        if (cd_end - pos < 46 || rd32(b + pos) != SIG_CENTRAL) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: central directory entry %" PRIu64 " at %" PRIu64
                           " is malformed", path, i, pos);
            goto out;
        }
        const uint8_t *c = b + pos;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint32_t crc = rd32(c + 16);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), loff = rd32(c + 42);
        uint32_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        uint32_t dstart = rd16(c + 34);
        if ((uint64_t)nlen + xlen + clen > cd_end - pos - 46) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: central directory entry %" PRIu64 ": name and "
                           "fields run past the directory", path, i);
            goto out;
        }
        const char *name = (const char *)c + 46;
        label(nm, name, nlen);
        if (!name_ok(name, nlen)) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: entry %" PRIu64 " has an unsafe or invalid name "
                           "\"%s\"", path, i, nm);
            goto out;
        }
        if (zip64_extra(c + 46 + nlen, xlen, &usize, &csize, &loff, usize == 0xFFFFFFFFu,
                        csize == 0xFFFFFFFFu, loff == 0xFFFFFFFFu) < 0) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: entry \"%s\": bad zip64 extra field", path, nm);
            goto out;
        }
        if (flags & 1) {
            rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: entry \"%s\" is encrypted", path, nm);
            goto out;
        }
        if (method != 0) {
            rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: entry \"%s\" is compressed (method %u); only "
                           "stored entries are supported, which is what torch.save writes", path,
                           nm, method);
            goto out;
        }
        if (dstart != 0) {
            rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: multi-disk zip archives are not supported",
                           path);
            goto out;
        }
        if (csize != usize) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: entry \"%s\": stored entry sizes differ (%" PRIu64
                           " compressed, %" PRIu64 " uncompressed)", path, nm, csize, usize);
            goto out;
        }
        /* The local header: signature, same name, data inside the file. */
        if (loff > cd_off || cd_off - loff < 30 || rd32(b + loff) != SIG_LOCAL) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: entry \"%s\": no local header at %" PRIu64, path,
                           nm, loff);
            goto out;
        }
        uint32_t lnlen = rd16(b + loff + 26), lxlen = rd16(b + loff + 28);
        uint64_t data = loff + 30 + lnlen + lxlen;
        if (data > cd_off || lnlen != nlen || memcmp(b + loff + 30, name, nlen) != 0 ||
            rd16(b + loff + 8) != method) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: entry \"%s\": local header disagrees with the "
                           "central directory", path, nm);
            goto out;
        }
        if (usize > cd_off - data) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: entry \"%s\": %" PRIu64 " bytes at %" PRIu64
                           " run past the data area (bad size or truncated file)", path, nm,
                           usize, data);
            goto out;
        }
        struct cai_zip_entry *ze = &z->entries[i];
        ze->name = cai__strndup(name, nlen);
        if (!ze->name) {
            rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        z->n_entries = i + 1;
        ze->offset = data;
        ze->n_bytes = usize;
        ze->crc32 = crc;
        ze->data = b + data;
        spans[i].begin = loff;
        spans[i].end = data + usize;
        spans[i].idx = i;
        pos += 46 + (uint64_t)nlen + xlen + clen;
    }
    /* Entries may not overlap (overlapping entries are how zip bombs work). */
    if (n_total > 1)
        qsort(spans, (size_t)n_total, sizeof(*spans), cmp_span);
    for (uint64_t i = 1; i < n_total; i++)
        if (spans[i].begin < spans[i - 1].end) {
            const char *a = z->entries[spans[i - 1].idx].name, *bn = z->entries[spans[i].idx].name;
            rc = cai__fail(err, CAI_EFORMAT, "%s: entries \"%.64s\" and \"%.64s\" overlap", path, a,
                           bn);
            goto out;
        }
    if (n_total > 1)
        qsort(z->entries, (size_t)n_total, sizeof(*z->entries), cmp_entry);
    for (uint64_t i = 1; i < n_total; i++)
        if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: entry \"%.64s\" appears twice", path,
                           z->entries[i].name);
            goto out;
        }
out:
    cai__free(spans);
    return rc;
}

static int zip_new(struct cai_zip **out, const char *name, struct cai_error *err)
{
    *out = cai__calloc(1, sizeof(**out));
    if (*out) {
        (*out)->map.fd = -1;
        (*out)->path = cai__strdup(name);
    }
    if (!*out || !(*out)->path) {
        cai__free(*out);
        *out = NULL;
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", name);
    }
    return 0;
}

int cai__zip_open_buffer(struct cai_zip **out, const void *data, uint64_t n_bytes,
                         const char *name, struct cai_error *err)
{
    struct cai_zip *z;
    *out = NULL;
    if (!name)
        name = "<buffer>";
    if (!data && n_bytes)
        return cai__fail(err, CAI_EINVAL, "%s: NULL buffer", name);
    int rc = zip_new(&z, name, err);
    if (rc)
        return rc;
    if ((rc = zip_parse(z, data, n_bytes, err)) < 0) {
        cai__zip_close(z);
        return rc;
    }
    *out = z;
    return 0;
}

int cai__zip_open(struct cai_zip **out, const char *path, struct cai_error *err)
{
    struct cai_zip *z;
    *out = NULL;
    int rc = zip_new(&z, path, err);
    if (rc)
        return rc;
    rc = cai__map_open(&z->map, path, err);
    if (rc == 0)
        rc = zip_parse(z, z->map.data, z->map.n_bytes, err);
    if (rc) {
        cai__zip_close(z);
        return rc;
    }
    *out = z;
    return 0;
}

void cai__zip_close(struct cai_zip *z)
{
    if (!z)
        return;
    for (uint64_t i = 0; i < z->n_entries; i++)
        cai__free(z->entries[i].name);
    cai__free(z->entries);
    cai__map_close(&z->map);
    cai__free(z->path);
    cai__free(z);
}

const struct cai_zip_entry *cai__zip_find(const struct cai_zip *z, const char *name)
{
    uint64_t lo = 0, hi = z->n_entries;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->entries[mid].name, name);
        if (c == 0)
            return &z->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int cai__zip_check_crc(const struct cai_zip *z, const struct cai_zip_entry *e,
                       struct cai_error *err)
{
    uint32_t c = cai__crc32(0, e->data, e->n_bytes);
    if (c != e->crc32)
        return cai__fail(err, CAI_EFORMAT, "%s: entry \"%.64s\": CRC-32 %08x does not match the "
                         "recorded %08x (corrupt archive)", z->path, e->name, c, e->crc32);
    return 0;
}
