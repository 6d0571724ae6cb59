/* test_safetensors.c: the safetensors reader on good files and on a table of
 * malformed ones (sizes, dtypes, offsets, shapes, truncation). */
#include <stdint.h>
#include <unistd.h>

#include "test.h"
#include "format/safetensors.h"

/* u64 header length + header + `n_data` bytes of pattern. */
static uint8_t *make(const char *header, size_t n_data, size_t *n)
{
    size_t hl = strlen(header);
    *n = 8 + hl + n_data;
    uint8_t *b = malloc(*n ? *n : 1);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < n_data; i++)
        b[8 + hl + i] = (uint8_t)(i * 13 + 1);
    return b;
}

static int open_hdr(const char *header, size_t n_data, struct cai_error *err)
{
    size_t n;
    uint8_t *b = make(header, n_data, &n);
    struct cai_safetensors *st = (struct cai_safetensors *)1;
    int rc = cai__st_open_buffer(&st, b, n, "m.safetensors", err);
    if (rc == 0)
        cai__st_close(st);
    else
        CHECK(st == NULL && err->msg[0]);
    free(b);
    return rc;
}

#define GOOD                                                                                       \
    "{\"__metadata__\":{\"format\":\"pt\"},"                                                     \
    "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"                            \
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"                           \
    "\"e\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[32,32]},"                         \
    "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]}}     "

static void test_good(void)
{
    size_t n;
    uint8_t *b = make(GOOD, 40, &n);
    struct cai_safetensors *st;
    struct cai_error err;
    int rc = cai__st_open_buffer(&st, b, n, "good", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(st->n_tensors == 4);
        const struct cai_st_tensor *a = cai__st_find(st, "a"), *t;
        CHECK(a && a->dtype == CAI_ST_F32 && a->n_dims == 2 && a->shape[0] == 2 &&
              a->shape[1] == 3 && a->n_bytes == 24 && a->data == b + 8 + strlen(GOOD));
        t = cai__st_find(st, "b");
        CHECK(t && t->dtype == CAI_ST_F16 && t->n_elem == 4 && t->data == a->data + 24);
        t = cai__st_find(st, "e");
        CHECK(t && t->n_bytes == 0 && t->n_elem == 0);
        t = cai__st_find(st, "s");
        CHECK(t && t->n_dims == 0 && t->n_elem == 1 && t->n_bytes == 8);
        CHECK(cai__st_find(st, "zz") == NULL);
        CHECK(cai__st_meta(st, "format") && strcmp(cai__st_meta(st, "format"), "pt") == 0);
        CHECK(cai__st_meta(st, "x") == NULL);
        cai__st_close(st);
    }
    /* The same through a file. */
    char path[128];
    snprintf(path, sizeof(path), "/tmp/cai_test_st_%ld.safetensors", (long)getpid());
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n);
    fclose(f);
    rc = cai__st_open(&st, path, &err);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(memcmp(cai__st_find(st, "a")->data, b + 8 + strlen(GOOD), 24) == 0);
        cai__st_close(st);
    }
    unlink(path);
    CHECK(cai__st_open(&st, path, &err) == CAI_EIO);
    /* Every truncation is refused. */
    for (size_t len = 0; len < n; len++) {
        rc = cai__st_open_buffer(&st, b, len, "trunc", &err);
        CHECK_MSG(rc == CAI_EFORMAT, "length %zu", len);
    }
    free(b);
    CHECK(open_hdr("{}", 0, &err) == 0); /* no tensors at all */
}

static void test_malformed(void)
{
    struct {
        const char *header;
        size_t      n_data;
        const char *msg;
    } cases[] = {
        {"[]", 0, "start with"},
        {" {}", 0, "start with '{'"},
        {"{\"a\":", 0, "JSON"},
        {"{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "string \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "array \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
         "overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "give 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, "two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, "two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 6, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2, "out of range"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9, "trailing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[18446744073709551612,18446744073709551616]}}", 4, "two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice"},
        {"{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, "whole bytes"},
        {"{\"a\":[1]}", 0, "not an object"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "NUL"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "must be strings"},
        {"{\"__metadata__\":[]}", 0, "not an object"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, "trailing content"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}\xff", 4, "JSON"},
        {"{\"a\":[[[[[[[[[[[[]]]]]]]]]]]]}", 0, "too deep"},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(cases); i++) {
        struct cai_error err = {0};
        int rc = open_hdr(cases[i].header, cases[i].n_data, &err);
        CHECK_MSG(rc == CAI_EFORMAT && strstr(err.msg, cases[i].msg), "case %zu: rc %d, \"%s\"", i,
                  rc, err.msg);
    }
    /* F4 with an even count is fine (2 elements per byte). */
    struct cai_error err;
    CHECK(open_hdr("{\"a\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}", 2, &err) ==
          0);
}

static void test_header_sizes(void)
{
    struct cai_error err;
    struct cai_safetensors *st;
    uint8_t b[16] = {0};
    /* Shorter than 8 bytes. */
    CHECK(cai__st_open_buffer(&st, b, 5, "s", &err) == CAI_EFORMAT && strstr(err.msg, "too short"));
    /* Header length past the file. */
    b[0] = 100;
    CHECK(cai__st_open_buffer(&st, b, 16, "s", &err) == CAI_EFORMAT &&
          strstr(err.msg, "truncated"));
    /* Oversized header length (> 100,000,000), and the u64 maximum. */
    uint64_t big = 100000001;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(big >> (8 * i));
    CHECK(cai__st_open_buffer(&st, b, 16, "s", &err) == CAI_EFORMAT &&
          strstr(err.msg, "exceeds the limit"));
    memset(b, 0xff, 8);
    CHECK(cai__st_open_buffer(&st, b, 16, "s", &err) == CAI_EFORMAT &&
          strstr(err.msg, "exceeds the limit"));
    /* Zero-length header. */
    memset(b, 0, 8);
    CHECK(cai__st_open_buffer(&st, b, 16, "s", &err) == CAI_EFORMAT);
}

int main(void)
{
    RUN(test_good);
    RUN(test_malformed);
    RUN(test_header_sizes);
    return test_done();
}
