/* test_zip.c: the zip reader on a real torch.save archive and on archives
 * built here with one field broken at a time. */
#include <stdint.h>

#include "test.h"
#include "format/zip.h"

struct zb {
    uint8_t b[8192];
    size_t  n;
    size_t  loc[8], cen[8]; /* offsets of local and central headers */
    int     n_ent;
    size_t  eocd;
};

static void put(struct zb *z, const void *d, size_t n)
{
    memcpy(z->b + z->n, d, n);
    z->n += n;
}

static void le(struct zb *z, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        z->b[z->n++] = (uint8_t)(v >> (8 * i));
}

static void set_le(struct zb *z, size_t at, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        z->b[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* A stored archive of the given entries. */
static void build(struct zb *z, const char *const *names, const char *const *datas, int n)
{
    memset(z, 0, sizeof(*z));
    z->n_ent = n;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]), dl = strlen(datas[i]);
        z->loc[i] = z->n;
        le(z, 0x04034b50, 4);
        le(z, 20, 2);
        le(z, 0, 2);  /* flags */
        le(z, 0, 2);  /* method */
        le(z, 0, 4);  /* time, date */
        le(z, cai__crc32(0, datas[i], dl), 4);
        le(z, dl, 4);
        le(z, dl, 4);
        le(z, nl, 2);
        le(z, 0, 2);
        put(z, names[i], nl);
        put(z, datas[i], dl);
    }
    size_t cd = z->n;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]), dl = strlen(datas[i]);
        z->cen[i] = z->n;
        le(z, 0x02014b50, 4);
        le(z, 20, 2);
        le(z, 20, 2);
        le(z, 0, 2);
        le(z, 0, 2);
        le(z, 0, 4);
        le(z, cai__crc32(0, datas[i], dl), 4);
        le(z, dl, 4);
        le(z, dl, 4);
        le(z, nl, 2);
        le(z, 0, 2);
        le(z, 0, 2);
        le(z, 0, 2);
        le(z, 0, 2);
        le(z, 0, 4);
        le(z, z->loc[i], 4);
        put(z, names[i], nl);
    }
    z->eocd = z->n;
    le(z, 0x06054b50, 4);
    le(z, 0, 4);
    le(z, (uint64_t)n, 2);
    le(z, (uint64_t)n, 2);
    le(z, z->eocd - cd, 4);
    le(z, cd, 4);
    le(z, 0, 2);
}

static int open_zb(const struct zb *z, struct cai_error *err)
{
    struct cai_zip *zip = (struct cai_zip *)1;
    int rc = cai__zip_open_buffer(&zip, z->b, z->n, "t.zip", err);
    if (rc == 0)
        cai__zip_close(zip);
    else
        CHECK(zip == NULL && err->msg[0]);
    return rc;
}

static const char *N2[] = {"archive/data.pkl", "archive/data/0"};
static const char *D2[] = {"hello pickle", "0123456789abcdef"};

static void test_good(void)
{
    struct zb z;
    struct cai_error err;
    struct cai_zip *zip;
    build(&z, N2, D2, 2);
    CHECK(cai__zip_open_buffer(&zip, z.b, z.n, "t.zip", &err) == 0);
    const struct cai_zip_entry *e = cai__zip_find(zip, "archive/data/0");
    CHECK(e && e->n_bytes == 16 && memcmp(e->data, D2[1], 16) == 0);
    CHECK(cai__zip_check_crc(zip, e, &err) == 0);
    CHECK(cai__zip_find(zip, "archive/data/1") == NULL);
    cai__zip_close(zip);
    /* A comment after the end record is fine. */
    set_le(&z, z.eocd + 20, 3, 2);
    memcpy(z.b + z.n, "abc", 3);
    z.n += 3;
    CHECK(open_zb(&z, &err) == 0);
    CHECK(cai__crc32(0, "123456789", 9) == 0xCBF43926u);
}

static void test_real_checkpoint(void)
{
    struct cai_zip *zip;
    struct cai_error err;
    int rc = cai__zip_open(&zip, "tests/golden/torch/llama/pytorch_model.bin", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK(zip->n_entries > 10);
    CHECK(cai__zip_find(zip, "pytorch_model/data.pkl") != NULL);
    for (uint64_t i = 0; i < zip->n_entries; i++)
        CHECK(cai__zip_check_crc(zip, &zip->entries[i], &err) == 0);
    /* torch aligns storages to 64 bytes. */
    const struct cai_zip_entry *e = cai__zip_find(zip, "pytorch_model/data/0");
    CHECK(e && e->offset % 64 == 0);
    cai__zip_close(zip);
}

static void test_malformed(void)
{
    struct zb z;
    struct cai_error err;
    struct {
        const char *name0;   /* replaces entry 0's name (same length) or NULL */
        size_t      field;   /* central header field offset to patch, 0 = none */
        uint64_t    value;
        int         width;
        int         rc;
        const char *msg;
    } cases[] = {
        {"archive/../pkl..", 0, 0, 0, CAI_EFORMAT, "unsafe"},
        {"/archive/data.pk", 0, 0, 0, CAI_EFORMAT, "unsafe"},
        {"archive\\data.pkl", 0, 0, 0, CAI_EFORMAT, "unsafe"},
        {NULL, 10, 8, 2, CAI_EUNSUPPORTED, "compressed"},
        {NULL, 8, 1, 2, CAI_EUNSUPPORTED, "encrypted"},
        {NULL, 20, 5, 4, CAI_EFORMAT, "sizes differ"},
        {NULL, 20, 100000, 4, CAI_EFORMAT, "sizes differ"},
        {NULL, 42, 7, 4, CAI_EFORMAT, "local header"},
        {NULL, 42, 0xFFFFFFF0u, 4, CAI_EFORMAT, "local header"},
        {NULL, 28, 200, 2, CAI_EFORMAT, "run past"},
        {NULL, 0, 0, 0, 0, ""},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(cases); i++) {
        build(&z, N2, D2, 2);
        if (cases[i].name0) {
            memcpy(z.b + z.loc[0] + 30, cases[i].name0, 16);
            memcpy(z.b + z.cen[0] + 46, cases[i].name0, 16);
        }
        if (cases[i].field)
            set_le(&z, z.cen[0] + cases[i].field, cases[i].value, cases[i].width);
        int rc = open_zb(&z, &err);
        CHECK_MSG(rc == cases[i].rc && (rc == 0 || strstr(err.msg, cases[i].msg)),
                  "case %zu: rc %d \"%s\"", i, rc, err.msg);
    }
    /* Sizes equal but too large: data runs into the central directory. */
    build(&z, N2, D2, 2);
    set_le(&z, z.cen[1] + 20, 500, 4);
    set_le(&z, z.cen[1] + 24, 500, 4);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "run past"));
    /* Two central entries for one local header: overlap (or name mismatch). */
    build(&z, N2, D2, 2);
    set_le(&z, z.cen[1] + 42, z.loc[0], 4);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT);
    /* Duplicate names. */
    const char *dup[] = {"a/x", "a/x"};
    build(&z, dup, D2, 2);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "twice"));
    /* Empty name. */
    const char *empty[] = {"", "a"};
    build(&z, empty, D2, 2);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "unsafe or invalid"));
    /* Entry count that cannot fit; multi-disk; no end record. */
    build(&z, N2, D2, 2);
    set_le(&z, z.eocd + 10, 1000, 2);
    set_le(&z, z.eocd + 8, 1000, 2);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "cannot fit"));
    build(&z, N2, D2, 2);
    set_le(&z, z.eocd + 4, 1, 2);
    CHECK(open_zb(&z, &err) == CAI_EUNSUPPORTED);
    build(&z, N2, D2, 2);
    set_le(&z, z.eocd, 0, 4);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "end-of-central-directory"));
    /* Central directory outside the file; zip64 markers without a locator. */
    build(&z, N2, D2, 2);
    set_le(&z, z.eocd + 16, 0x7FFFFFF0u, 4);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "outside"));
    build(&z, N2, D2, 2);
    set_le(&z, z.eocd + 16, 0xFFFFFFFFu, 4);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "zip64"));
    /* Every truncation fails cleanly. */
    build(&z, N2, D2, 2);
    size_t full = z.n;
    for (size_t len = 0; len < full; len++) {
        z.n = len;
        CHECK(open_zb(&z, &err) != 0);
    }
    /* A corrupt byte in a stored entry fails its CRC. */
    build(&z, N2, D2, 2);
    z.b[z.loc[1] + 30 + strlen(N2[1])] ^= 1;
    struct cai_zip *zip;
    CHECK(cai__zip_open_buffer(&zip, z.b, z.n, "t.zip", &err) == 0);
    CHECK(cai__zip_check_crc(zip, cai__zip_find(zip, N2[1]), &err) == CAI_EFORMAT &&
          strstr(err.msg, "CRC"));
    cai__zip_close(zip);
}

/* ZIP64: the end record's fields saturated, the real values in a zip64 end
 * record found through the locator. */
static void test_zip64(void)
{
    struct zb z;
    struct cai_error err;
    build(&z, N2, D2, 2);
    size_t eocd = z.eocd;
    uint64_t cd_size = z.b[eocd + 12] | (uint64_t)z.b[eocd + 13] << 8;
    uint64_t cd_off = z.b[eocd + 16] | (uint64_t)z.b[eocd + 17] << 8;
    z.n = eocd;
    size_t r = z.n;
    le(&z, 0x06064b50, 4);
    le(&z, 44, 8);
    le(&z, 45, 2);
    le(&z, 45, 2);
    le(&z, 0, 4);
    le(&z, 0, 4);
    le(&z, 2, 8);
    le(&z, 2, 8);
    le(&z, cd_size, 8);
    le(&z, cd_off, 8);
    le(&z, 0x07064b50, 4);
    le(&z, 0, 4);
    le(&z, r, 8);
    le(&z, 1, 4);
    z.eocd = z.n;
    le(&z, 0x06054b50, 4);
    le(&z, 0, 4);
    le(&z, 0xFFFF, 2);
    le(&z, 0xFFFF, 2);
    le(&z, 0xFFFFFFFFu, 4);
    le(&z, 0xFFFFFFFFu, 4);
    le(&z, 0, 2);
    CHECK_MSG(open_zb(&z, &err) == 0, "%s", err.msg);
    /* A locator pointing nowhere. */
    set_le(&z, z.eocd - 20 + 8, 3, 8);
    CHECK(open_zb(&z, &err) == CAI_EFORMAT && strstr(err.msg, "zip64"));
}

int main(void)
{
    RUN(test_good);
    RUN(test_real_checkpoint);
    RUN(test_malformed);
    RUN(test_zip64);
    return test_done();
}
