/* test_gguf.c: the GGUF reader and writer.
 *
 * Round trips through the writer (every value type, arrays, nested arrays,
 * alignments, v2 and v3, files), the malformed-file table (one row per check
 * the reader makes, each with the expected code and the words its message
 * must contain), truncation at every byte, out-of-memory at every allocation,
 * and a check of the real default model when it is present.
 *
 * `test_gguf --write-corpus DIR` writes the fuzzer's seed files instead. */
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

#include "base/base.h"
#include "format/gguf.h"
#include "format/gguf_write.h"
#include "tensor/types.h"
#include "test.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define CORPUS_DIR "tests/fuzz/corpus/gguf"

/* ---- helpers --------------------------------------------------------------- */

/* A file's bytes in an exactly-sized heap copy, so ASan sees any over-read. */
struct opened {
    uint8_t         *copy;
    struct cai_gguf *g;
};

static int open_bytes(struct opened *o, const uint8_t *bytes, size_t n, const char *name,
                      struct cai_error *err)
{
    o->copy = malloc(n ? n : 1);
    if (n)
        memcpy(o->copy, bytes, n);
    o->g = NULL;
    return cai__gguf_open_buffer(&o->g, o->copy, n, name, err);
}

static void close_bytes(struct opened *o)
{
    cai__gguf_close(o->g);
    free(o->copy);
    o->g = NULL;
    o->copy = NULL;
}

/* Growable byte buffer for handcrafted files. */
struct rb {
    uint8_t *p;
    size_t   n, cap;
};

static void rb_bytes(struct rb *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void rb_le(struct rb *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    rb_bytes(b, t, (size_t)n);
}

static void rb_u8(struct rb *b, uint8_t v) { rb_le(b, v, 1); }
static void rb_u32(struct rb *b, uint32_t v) { rb_le(b, v, 4); }
static void rb_u64(struct rb *b, uint64_t v) { rb_le(b, v, 8); }

static void rb_str(struct rb *b, const char *s)
{
    rb_u64(b, strlen(s));
    rb_bytes(b, s, strlen(s));
}

static bool has(const char *msg, const char *sub)
{
    return sub == NULL || strstr(msg, sub) != NULL;
}

static uint8_t *serialize(struct cai_gguf_writer *w, size_t *n)
{
    struct cai_error err = {0};
    uint8_t *buf = NULL;
    int rc = cai__gguf_writer_serialize(w, &buf, n, &err);
    CHECK_MSG(rc == 0, "serialize: %s", err.msg);
    return buf;
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131u + seed * 17u + 7u);
}

/* ---- round trips ------------------------------------------------------------- */

static void add_every_scalar(struct cai_gguf_writer *w)
{
    struct cai_error err = {0};
    CHECK(cai__gguf_writer_add_u8(w, "t.u8", 255, &err) == 0);
    CHECK(cai__gguf_writer_add_i8(w, "t.i8", -128, &err) == 0);
    CHECK(cai__gguf_writer_add_u16(w, "t.u16", 65535, &err) == 0);
    CHECK(cai__gguf_writer_add_i16(w, "t.i16", -32768, &err) == 0);
    CHECK(cai__gguf_writer_add_u32(w, "t.u32", UINT32_MAX, &err) == 0);
    CHECK(cai__gguf_writer_add_i32(w, "t.i32", INT32_MIN, &err) == 0);
    CHECK(cai__gguf_writer_add_f32(w, "t.f32", 1.5f, &err) == 0);
    CHECK(cai__gguf_writer_add_bool(w, "t.true", true, &err) == 0);
    CHECK(cai__gguf_writer_add_bool(w, "t.false", false, &err) == 0);
    CHECK(cai__gguf_writer_add_u64(w, "t.u64", UINT64_MAX, &err) == 0);
    CHECK(cai__gguf_writer_add_i64(w, "t.i64", INT64_MIN, &err) == 0);
    CHECK(cai__gguf_writer_add_f64(w, "t.f64", 3.141592653589793, &err) == 0);
    CHECK(cai__gguf_writer_add_str(w, "t.str", "h\xc3\xa9llo", &err) == 0);
    CHECK(cai__gguf_writer_add_str(w, "t.empty", "", &err) == 0);
    CHECK(cai__gguf_writer_add_strn(w, "t.nul", "a\0b", 3, &err) == 0);
    CHECK(cai__gguf_writer_add_i32(w, "t.neg", -1, &err) == 0);
    CHECK(cai__gguf_writer_add_u64(w, "t.big", (uint64_t)1 << 32, &err) == 0);
    CHECK(cai__gguf_writer_add_f64(w, "t.huge", 1e300, &err) == 0);
    CHECK_MSG(err.code == 0, "%s", err.msg);
}

static void check_every_scalar(const struct cai_gguf *g)
{
    const struct cai_gguf_kv *kv;
    struct cai_error err = {0};
    kv = cai__gguf_find_kv(g, "t.u8");
    CHECK(kv && kv->type == CAI_GGUF_U8 && kv->u64 == 255 && kv->i64 == 255);
    kv = cai__gguf_find_kv(g, "t.i8");
    CHECK(kv && kv->type == CAI_GGUF_I8 && kv->i64 == -128);
    kv = cai__gguf_find_kv(g, "t.u16");
    CHECK(kv && kv->type == CAI_GGUF_U16 && kv->u64 == 65535);
    kv = cai__gguf_find_kv(g, "t.i16");
    CHECK(kv && kv->type == CAI_GGUF_I16 && kv->i64 == -32768);
    kv = cai__gguf_find_kv(g, "t.u32");
    CHECK(kv && kv->type == CAI_GGUF_U32 && kv->u64 == UINT32_MAX);
    kv = cai__gguf_find_kv(g, "t.i32");
    CHECK(kv && kv->type == CAI_GGUF_I32 && kv->i64 == INT32_MIN);
    kv = cai__gguf_find_kv(g, "t.f32");
    CHECK(kv && kv->type == CAI_GGUF_F32 && kv->f64 == 1.5);
    kv = cai__gguf_find_kv(g, "t.true");
    CHECK(kv && kv->type == CAI_GGUF_BOOL && kv->u64 == 1);
    kv = cai__gguf_find_kv(g, "t.false");
    CHECK(kv && kv->type == CAI_GGUF_BOOL && kv->u64 == 0);
    kv = cai__gguf_find_kv(g, "t.u64");
    CHECK(kv && kv->type == CAI_GGUF_U64 && kv->u64 == UINT64_MAX);
    kv = cai__gguf_find_kv(g, "t.i64");
    CHECK(kv && kv->type == CAI_GGUF_I64 && kv->i64 == INT64_MIN);
    kv = cai__gguf_find_kv(g, "t.f64");
    CHECK(kv && kv->type == CAI_GGUF_F64 && kv->f64 == 3.141592653589793);
    kv = cai__gguf_find_kv(g, "t.str");
    CHECK(kv && kv->type == CAI_GGUF_STRING && cai__gguf_str_eq(kv->str, "h\xc3\xa9llo"));
    kv = cai__gguf_find_kv(g, "t.empty");
    CHECK(kv && kv->type == CAI_GGUF_STRING && kv->str.len == 0 && cai__gguf_str_eq(kv->str, ""));
    kv = cai__gguf_find_kv(g, "t.nul");
    CHECK(kv && kv->str.len == 3 && memcmp(kv->str.ptr, "a\0b", 3) == 0);
    CHECK(cai__gguf_find_kv(g, "t.missing") == NULL);
    CHECK(cai__gguf_find_kv(g, "t.u") == NULL);
    CHECK(cai__gguf_find_kv(g, "") == NULL);

    /* Typed getters. */
    uint32_t u32 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    bool b = false;
    struct cai_gguf_str s = {0};
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.u8", true, &u32, &err), 0);
    CHECK_EQ_INT(u32, 255);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.u32", true, &u32, &err), 0);
    CHECK(u32 == UINT32_MAX);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.neg", true, &u32, &err), CAI_EFORMAT);
    CHECK_MSG(has(err.msg, "\"t.neg\"") && has(err.msg, "does not fit u32"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.big", true, &u32, &err), CAI_EFORMAT);
    CHECK_MSG(has(err.msg, "\"t.big\"") && has(err.msg, "4294967296"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.f32", true, &u32, &err), CAI_EFORMAT);
    CHECK_MSG(has(err.msg, "expected an integer, got f32"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.true", true, &u32, &err), CAI_EFORMAT);
    CHECK_EQ_INT(cai__gguf_get_i64(g, "t.i64", true, &i64, &err), 0);
    CHECK(i64 == INT64_MIN);
    CHECK_EQ_INT(cai__gguf_get_i64(g, "t.u16", true, &i64, &err), 0);
    CHECK_EQ_INT(i64, 65535);
    CHECK_EQ_INT(cai__gguf_get_i64(g, "t.u64", true, &i64, &err), CAI_EFORMAT);
    CHECK_MSG(has(err.msg, "does not fit i64"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_get_f32(g, "t.f32", true, &f32, &err), 0);
    CHECK(f32 == 1.5f);
    CHECK_EQ_INT(cai__gguf_get_f32(g, "t.f64", true, &f32, &err), 0);
    CHECK(f32 == (float)3.141592653589793);
    CHECK_EQ_INT(cai__gguf_get_f32(g, "t.huge", true, &f32, &err), CAI_EFORMAT);
    CHECK_MSG(has(err.msg, "does not fit f32"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_get_f32(g, "t.u8", true, &f32, &err), CAI_EFORMAT);
    CHECK_EQ_INT(cai__gguf_get_bool(g, "t.true", true, &b, &err), 0);
    CHECK(b == true);
    CHECK_EQ_INT(cai__gguf_get_bool(g, "t.u8", true, &b, &err), CAI_EFORMAT);
    CHECK_MSG(has(err.msg, "expected bool, got u8"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_get_str(g, "t.str", true, &s, &err), 0);
    CHECK(cai__gguf_str_eq(s, "h\xc3\xa9llo"));
    CHECK_EQ_INT(cai__gguf_get_str(g, "t.u32", true, &s, &err), CAI_EFORMAT);
    /* Absent keys: optional leaves *out alone, required fails naming it. */
    u32 = 77;
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.absent", false, &u32, &err), 1);
    CHECK_EQ_INT(u32, 77);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "t.absent", true, &u32, &err), CAI_EFORMAT);
    CHECK_MSG(has(err.msg, "required key \"t.absent\" is missing") && has(err.msg, g->path),
              "%s", err.msg);
    const struct cai_gguf_kv *arr = NULL;
    CHECK_EQ_INT(cai__gguf_get_arr(g, "t.u8", true, UINT32_MAX, &arr, &err), CAI_EFORMAT);
    CHECK_EQ_INT(cai__gguf_get_arr(g, "t.absent", false, UINT32_MAX, &arr, &err), 1);
}

static void test_roundtrip_scalars(void)
{
    for (uint32_t version = 2; version <= 3; version++) {
        struct cai_gguf_writer *w;
        struct cai_error err = {0};
        struct opened o;
        size_t n;
        CHECK_EQ_INT(cai__gguf_writer_new(&w, version, &err), 0);
        add_every_scalar(w);
        uint8_t *buf = serialize(w, &n);
        CHECK_EQ_INT(n, cai__gguf_writer_size(w));
        int rc = open_bytes(&o, buf, n, "scalars.gguf", &err);
        CHECK_MSG(rc == 0, "v%u: %s", version, err.msg);
        if (rc == 0) {
            CHECK_EQ_INT(o.g->version, version);
            CHECK_EQ_INT(o.g->n_kv, 18);
            CHECK_EQ_INT(o.g->n_tensors, 0);
            CHECK_EQ_INT(o.g->alignment, 32);
            CHECK_EQ_INT(o.g->data_offset, n);
            CHECK_STR(o.g->path, "scalars.gguf");
            check_every_scalar(o.g);
        }
        close_bytes(&o);
        cai__free(buf);
        cai__gguf_writer_free(w);
    }
}

static void test_roundtrip_arrays(void)
{
    static const uint8_t a_u8[] = {1, 2, 255};
    static const int8_t a_i8[] = {-128, 0, 127};
    static const uint16_t a_u16[] = {0, 65535};
    static const int16_t a_i16[] = {-32768, 32767};
    static const uint32_t a_u32[] = {7, UINT32_MAX};
    static const int32_t a_i32[] = {INT32_MIN, -1, 3};
    static const float a_f32[] = {0.5f, -2.25f};
    static const bool a_bool[] = {true, false, true};
    static const uint64_t a_u64[] = {UINT64_MAX};
    static const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    static const double a_f64[] = {3.141592653589793, -1e-300};
    static const char *const a_str[] = {"", "a", "h\xc3\xa9llo", "tokens with spaces"};
    struct cai_gguf_writer *w;
    struct cai_error err = {0};
    struct opened o;
    size_t n;

    CHECK_EQ_INT(cai__gguf_writer_new(&w, 3, &err), 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.u8", CAI_GGUF_U8, a_u8, 3, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.i8", CAI_GGUF_I8, a_i8, 3, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.u16", CAI_GGUF_U16, a_u16, 2, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.i16", CAI_GGUF_I16, a_i16, 2, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.u32", CAI_GGUF_U32, a_u32, 2, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.i32", CAI_GGUF_I32, a_i32, 3, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.f32", CAI_GGUF_F32, a_f32, 2, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.bool", CAI_GGUF_BOOL, a_bool, 3, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.u64", CAI_GGUF_U64, a_u64, 1, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.i64", CAI_GGUF_I64, a_i64, 2, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.f64", CAI_GGUF_F64, a_f64, 2, &err) == 0);
    CHECK(cai__gguf_writer_add_arr_str(w, "a.str", a_str, 4, &err) == 0);
    CHECK(cai__gguf_writer_add_arr_str(w, "a.str1", a_str + 2, 1, &err) == 0);
    CHECK(cai__gguf_writer_add_arr_str(w, "a.str0", a_str, 0, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "a.empty", CAI_GGUF_F32, NULL, 0, &err) == 0);
    CHECK_MSG(err.code == 0, "%s", err.msg);
    uint8_t *buf = serialize(w, &n);
    int rc = open_bytes(&o, buf, n, "arrays.gguf", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        const struct cai_gguf *g = o.g;
        const struct cai_gguf_kv *kv;
        CHECK_EQ_INT(cai__gguf_get_arr(g, "a.u8", true, CAI_GGUF_U8, &kv, &err), 0);
        CHECK(kv->arr_n == 3 && cai__gguf_arr_i64(kv, 2) == 255 && cai__gguf_arr_f64(kv, 0) == 1);
        CHECK_EQ_INT(cai__gguf_get_arr(g, "a.u8", true, CAI_GGUF_I8, &kv, &err), CAI_EFORMAT);
        CHECK_MSG(has(err.msg, "expected array of i8, got array of u8"), "%s", err.msg);
        CHECK_EQ_INT(cai__gguf_get_arr(g, "a.i8", true, UINT32_MAX, &kv, &err), 0);
        CHECK(kv->arr_type == CAI_GGUF_I8 && cai__gguf_arr_i64(kv, 0) == -128 &&
              cai__gguf_arr_i64(kv, 2) == 127);
        kv = cai__gguf_find_kv(g, "a.u16");
        CHECK(kv && cai__gguf_arr_i64(kv, 1) == 65535);
        kv = cai__gguf_find_kv(g, "a.i16");
        CHECK(kv && cai__gguf_arr_i64(kv, 0) == -32768 && cai__gguf_arr_f64(kv, 1) == 32767);
        kv = cai__gguf_find_kv(g, "a.u32");
        CHECK(kv && cai__gguf_arr_i64(kv, 1) == UINT32_MAX);
        kv = cai__gguf_find_kv(g, "a.i32");
        CHECK(kv && kv->arr_n == 3 && cai__gguf_arr_i64(kv, 0) == INT32_MIN &&
              cai__gguf_arr_i64(kv, 1) == -1);
        kv = cai__gguf_find_kv(g, "a.f32");
        CHECK(kv && cai__gguf_arr_f64(kv, 0) == 0.5 && cai__gguf_arr_f64(kv, 1) == -2.25 &&
              cai__gguf_arr_i64(kv, 1) == -2);
        kv = cai__gguf_find_kv(g, "a.bool");
        CHECK(kv && kv->arr_type == CAI_GGUF_BOOL && cai__gguf_arr_i64(kv, 0) == 1 &&
              cai__gguf_arr_i64(kv, 1) == 0 && cai__gguf_arr_f64(kv, 2) == 1);
        kv = cai__gguf_find_kv(g, "a.u64");
        CHECK(kv && (uint64_t)cai__gguf_arr_i64(kv, 0) == UINT64_MAX);
        kv = cai__gguf_find_kv(g, "a.i64");
        CHECK(kv && cai__gguf_arr_i64(kv, 0) == INT64_MIN && cai__gguf_arr_i64(kv, 1) == INT64_MAX);
        kv = cai__gguf_find_kv(g, "a.f64");
        CHECK(kv && cai__gguf_arr_f64(kv, 0) == 3.141592653589793 &&
              cai__gguf_arr_f64(kv, 1) == -1e-300);
        CHECK_EQ_INT(cai__gguf_get_arr(g, "a.str", true, CAI_GGUF_STRING, &kv, &err), 0);
        CHECK(kv->arr_n == 4 && kv->arr_str_off != NULL);
        for (uint64_t i = 0; i < 4 && kv->arr_n == 4; i++)
            CHECK_MSG(cai__gguf_str_eq(cai__gguf_arr_str(kv, i), a_str[i]), "element %d",
                      (int)i);
        kv = cai__gguf_find_kv(g, "a.str1");
        CHECK(kv && kv->arr_n == 1 && cai__gguf_str_eq(cai__gguf_arr_str(kv, 0), a_str[2]));
        kv = cai__gguf_find_kv(g, "a.str0");
        CHECK(kv && kv->arr_n == 0 && kv->arr_type == CAI_GGUF_STRING);
        kv = cai__gguf_find_kv(g, "a.empty");
        CHECK(kv && kv->arr_n == 0 && kv->arr_type == CAI_GGUF_F32);
    }
    close_bytes(&o);
    cai__free(buf);
    cai__gguf_writer_free(w);
}

/* Encodes `levels` nested arrays, the innermost holding `n` u32 values. */
static void nested_payload(struct rb *b, int levels, uint32_t n)
{
    for (int i = 1; i < levels; i++) {
        rb_u32(b, CAI_GGUF_ARRAY);
        rb_u64(b, 1);
    }
    rb_u32(b, CAI_GGUF_U32);
    rb_u64(b, n);
    for (uint32_t i = 0; i < n; i++)
        rb_u32(b, i);
}

static void test_nested_arrays(void)
{
    struct cai_gguf_writer *w;
    struct cai_error err = {0};
    struct opened o;
    struct rb b = {0};
    size_t n;

    /* [[1, 2], ["x"]]: an array of two arrays of different element types. */
    rb_u32(&b, CAI_GGUF_ARRAY);
    rb_u64(&b, 2);
    rb_u32(&b, CAI_GGUF_U32);
    rb_u64(&b, 2);
    rb_u32(&b, 1);
    rb_u32(&b, 2);
    rb_u32(&b, CAI_GGUF_STRING);
    rb_u64(&b, 1);
    rb_str(&b, "x");
    CHECK_EQ_INT(cai__gguf_writer_new(&w, 3, &err), 0);
    CHECK(cai__gguf_writer_add_raw(w, "n.two", CAI_GGUF_ARRAY, b.p, b.n, &err) == 0);
    b.n = 0;
    nested_payload(&b, 4, 3); /* the deepest nesting the reader accepts */
    CHECK(cai__gguf_writer_add_raw(w, "n.deep", CAI_GGUF_ARRAY, b.p, b.n, &err) == 0);
    CHECK(cai__gguf_writer_add_u32(w, "n.after", 9, &err) == 0);
    uint8_t *buf = serialize(w, &n);
    int rc = open_bytes(&o, buf, n, "nested.gguf", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        const struct cai_gguf_kv *kv = cai__gguf_find_kv(o.g, "n.two");
        CHECK(kv && kv->type == CAI_GGUF_ARRAY && kv->arr_type == CAI_GGUF_ARRAY &&
              kv->arr_n == 2 && kv->arr_str_off == NULL);
        kv = cai__gguf_find_kv(o.g, "n.deep");
        CHECK(kv && kv->arr_type == CAI_GGUF_ARRAY && kv->arr_n == 1);
        uint32_t v = 0;
        CHECK_EQ_INT(cai__gguf_get_u32(o.g, "n.after", true, &v, &err), 0);
        CHECK_EQ_INT(v, 9);
    }
    close_bytes(&o);
    cai__free(buf);
    cai__gguf_writer_free(w);
    free(b.p);
}

/* Three tensors whose sizes force padding between them. */
static const int64_t shape_a[1] = {3};          /* f32: 12 bytes */
static const int64_t shape_b[2] = {5, 3};       /* f16: 30 bytes */
static const int64_t shape_c[3] = {64, 2, 1};   /* q8_0: 2 blocks per row, 136 bytes */
static const int64_t shape_d[4] = {256, 1, 2, 2}; /* q4_K: 4 rows of 144 bytes */

static void test_alignment_variants(void)
{
    static const uint32_t aligns[] = {0, 8, 16, 64, 4096};
    uint8_t da[12], db[30], dc[136], dd[576];
    fill_pattern(da, sizeof(da), 1);
    fill_pattern(db, sizeof(db), 2);
    fill_pattern(dc, sizeof(dc), 3);
    fill_pattern(dd, sizeof(dd), 4);
    for (size_t k = 0; k < CAI_ARRAY_LEN(aligns); k++) {
        for (uint32_t version = 2; version <= 3; version++) {
            uint32_t align = aligns[k] ? aligns[k] : 32;
            struct cai_gguf_writer *w;
            struct cai_error err = {0};
            struct opened o;
            size_t n;
            CHECK_EQ_INT(cai__gguf_writer_new(&w, version, &err), 0);
            CHECK(cai__gguf_writer_add_str(w, "general.architecture", "test", &err) == 0);
            CHECK(cai__gguf_writer_add_tensor(w, "a", 1, shape_a, CAI_TYPE_F32, da, 12, &err) ==
                  0);
            if (aligns[k])
                CHECK(cai__gguf_writer_set_alignment(w, aligns[k], &err) == 0);
            CHECK(cai__gguf_writer_add_tensor(w, "blk.0.b", 2, shape_b, CAI_TYPE_F16, db, 30,
                                              &err) == 0);
            CHECK(cai__gguf_writer_add_tensor(w, "c", 3, shape_c, CAI_TYPE_Q8_0, dc, 136,
                                              &err) == 0);
            CHECK(cai__gguf_writer_add_tensor(w, "d", 4, shape_d, CAI_TYPE_Q4_K, dd, 576,
                                              &err) == 0);
            CHECK_MSG(err.code == 0, "%s", err.msg);
            uint8_t *buf = serialize(w, &n);
            int rc = open_bytes(&o, buf, n, "align.gguf", &err);
            CHECK_MSG(rc == 0, "align %u v%u: %s", align, version, err.msg);
            if (rc == 0) {
                const struct cai_gguf *g = o.g;
                CHECK_EQ_INT(g->alignment, align);
                CHECK_EQ_INT(g->n_kv, aligns[k] ? 2 : 1);
                CHECK_EQ_INT(g->data_offset % align, 0);
                CHECK_EQ_INT(g->n_tensors, 4);
                const struct cai_gguf_tensor *t = cai__gguf_find_tensor(g, "a");
                CHECK(t && t->n_dims == 1 && t->ne[0] == 3 && t->ne[1] == 1 && t->ne[3] == 1 &&
                      t->type == CAI_TYPE_F32 && t->n_bytes == 12 && t->offset == 0 &&
                      memcmp(t->data, da, 12) == 0);
                t = cai__gguf_find_tensor(g, "blk.0.b");
                CHECK(t && t->n_dims == 2 && t->ne[0] == 5 && t->ne[1] == 3 &&
                      t->type == CAI_TYPE_F16 && t->n_bytes == 30 &&
                      t->offset == (12 + align - 1) / align * align &&
                      memcmp(t->data, db, 30) == 0);
                t = cai__gguf_find_tensor(g, "c");
                CHECK(t && t->n_dims == 3 && t->ne[0] == 64 && t->ne[1] == 2 && t->ne[2] == 1 &&
                      t->n_bytes == 136 && memcmp(t->data, dc, 136) == 0);
                t = cai__gguf_find_tensor(g, "d");
                CHECK(t && t->n_dims == 4 && t->ne[0] == 256 && t->ne[3] == 2 &&
                      t->type == CAI_TYPE_Q4_K && t->n_bytes == 576 &&
                      memcmp(t->data, dd, 576) == 0);
                /* The file ends at the last tensor; every tensor is aligned. */
                CHECK(t && (const uint8_t *)t->data + t->n_bytes == g->base + g->n_bytes);
                for (uint64_t i = 0; i < g->n_tensors; i++) {
                    const struct cai_gguf_tensor *ti = &g->tensors[i];
                    CHECK_EQ_INT(ti->offset % align, 0);
                    CHECK((const uint8_t *)ti->data == g->base + g->data_offset + ti->offset);
                }
                CHECK(cai__gguf_find_tensor(g, "e") == NULL);
                CHECK(cai__gguf_find_tensor(g, "") == NULL);
                CHECK(cai__gguf_find_tensor(g, "blk.0") == NULL);
            }
            close_bytes(&o);
            cai__free(buf);
            cai__gguf_writer_free(w);
        }
    }
}

/* A vocab-only file may end before the padding that would start its (empty)
 * data section. */
static void test_no_tensors(void)
{
    struct rb b = {0};
    struct opened o;
    struct cai_error err = {0};
    rb_u32(&b, 0x46554747u);
    rb_u32(&b, 3);
    rb_u64(&b, 0);
    rb_u64(&b, 1);
    rb_str(&b, "general.name");
    rb_u32(&b, CAI_GGUF_STRING);
    rb_str(&b, "x"); /* ends at byte 24 + 20 + 4 + 9 = 57, not aligned */
    int rc = open_bytes(&o, b.p, b.n, "vocab.gguf", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK_EQ_INT(o.g->n_tensors, 0);
        CHECK_EQ_INT(o.g->data_offset, b.n);
        CHECK(o.g->tensors == NULL || o.g->n_tensors == 0);
    }
    close_bytes(&o);
    /* The smallest valid file: a header with no kvs and no tensors. */
    b.n = 24;
    memset(b.p + 8, 0, 16);
    rc = open_bytes(&o, b.p, b.n, "empty.gguf", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0)
        CHECK(o.g->n_kv == 0 && cai__gguf_find_kv(o.g, "x") == NULL &&
              cai__gguf_find_tensor(o.g, "x") == NULL);
    close_bytes(&o);
    free(b.p);
}

static void tmp_path(char *buf, size_t cap, const char *tag)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, cap, "%s/cai_test_gguf_%ld_%s.gguf", dir && *dir ? dir : "/tmp", (long)getpid(),
             tag);
}

static void test_file_roundtrip(void)
{
    char path[512], bad[600];
    struct cai_gguf_writer *w;
    struct cai_error err = {0};
    struct cai_gguf *g = NULL;
    uint8_t da[12];
    fill_pattern(da, sizeof(da), 9);
    tmp_path(path, sizeof(path), "file");
    CHECK_EQ_INT(cai__gguf_writer_new(&w, 3, &err), 0);
    CHECK(cai__gguf_writer_add_str(w, "general.architecture", "test", &err) == 0);
    CHECK(cai__gguf_writer_add_tensor(w, "a", 1, shape_a, CAI_TYPE_F32, da, 12, &err) == 0);
    CHECK(cai__gguf_writer_add_tensor(w, "zeros", 2, shape_b, CAI_TYPE_F16, NULL, 30, &err) == 0);
    int rc = cai__gguf_writer_write_file(w, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    rc = cai__gguf_open(&g, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK_STR(g->path, path);
        CHECK(g->map.mapped && g->base == g->map.data);
        CHECK_EQ_INT(g->n_bytes, cai__gguf_writer_size(w));
        const struct cai_gguf_tensor *t = cai__gguf_find_tensor(g, "a");
        CHECK(t && memcmp(t->data, da, 12) == 0);
        t = cai__gguf_find_tensor(g, "zeros");
        CHECK(t && t->n_bytes == 30 && ((const uint8_t *)t->data)[29] == 0);
        struct cai_gguf_str s;
        CHECK_EQ_INT(cai__gguf_get_str(g, "general.architecture", true, &s, &err), 0);
        CHECK(cai__gguf_str_eq(s, "test"));
    }
    cai__gguf_close(g);
    cai__gguf_close(NULL);
    unlink(path);

    /* Missing files and directories fail with CAI_EIO naming the path. */
    rc = cai__gguf_open(&g, path, &err);
    CHECK_EQ_INT(rc, CAI_EIO);
    CHECK(g == NULL);
    CHECK_MSG(has(err.msg, path), "%s", err.msg);
    snprintf(bad, sizeof(bad), "%s.nodir/x.gguf", path);
    rc = cai__gguf_writer_write_file(w, bad, &err);
    CHECK_EQ_INT(rc, CAI_EIO);
    CHECK_MSG(has(err.msg, bad), "%s", err.msg);
    /* A truncated file on disk fails at open, not later. */
    rc = cai__gguf_writer_write_file(w, path, &err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(truncate(path, (off_t)cai__gguf_writer_size(w) - 1), 0);
    rc = cai__gguf_open(&g, path, &err);
    CHECK_EQ_INT(rc, CAI_EFORMAT);
    CHECK_MSG(has(err.msg, path) && has(err.msg, "tensor \"zeros\"") && has(err.msg, "outside"),
              "%s", err.msg);
    unlink(path);
    cai__gguf_writer_free(w);
}

static void test_writer_errors(void)
{
    struct cai_gguf_writer *w = NULL;
    struct cai_error err = {0};
    uint8_t d[64] = {0};
    int64_t ne[4] = {16, 1, 1, 1};
    CHECK_EQ_INT(cai__gguf_writer_new(&w, 1, &err), CAI_EINVAL);
    CHECK(w == NULL);
    CHECK_EQ_INT(cai__gguf_writer_new(&w, 4, &err), CAI_EINVAL);
    CHECK_EQ_INT(cai__gguf_writer_new(&w, 3, &err), 0);
    CHECK_EQ_INT(cai__gguf_writer_add_u32(w, "k", 1, &err), 0);
    CHECK_EQ_INT(cai__gguf_writer_add_str(w, "k", "x", &err), CAI_EINVAL);
    CHECK_MSG(has(err.msg, "\"k\"") && has(err.msg, "already"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_writer_add_u32(w, "", 1, &err), CAI_EINVAL);
    CHECK_EQ_INT(cai__gguf_writer_add_arr(w, "s", CAI_GGUF_STRING, d, 1, &err), CAI_EINVAL);
    CHECK_EQ_INT(cai__gguf_writer_set_alignment(w, 3, &err), CAI_EINVAL);
    CHECK_EQ_INT(cai__gguf_writer_set_alignment(w, 4, &err), CAI_EINVAL);
    CHECK_EQ_INT(cai__gguf_writer_set_alignment(w, 16, &err), 0);
    CHECK_EQ_INT(cai__gguf_writer_set_alignment(w, 64, &err), 0); /* updates in place */
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, "t", 1, ne, CAI_TYPE_F32, d, 64, &err), 0);
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, "t", 1, ne, CAI_TYPE_F32, d, 64, &err),
                 CAI_EINVAL);
    CHECK_MSG(has(err.msg, "tensor \"t\"") && has(err.msg, "already"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, "u", 1, ne, CAI_TYPE_F32, d, 63, &err),
                 CAI_EINVAL);
    CHECK_MSG(has(err.msg, "63 bytes given") && has(err.msg, "need 64"), "%s", err.msg);
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, "u", 1, ne, CAI_TYPE_Q4_0, d, 18, &err),
                 CAI_EINVAL);
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, "u", 0, ne, CAI_TYPE_F32, d, 64, &err),
                 CAI_EINVAL);
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, "u", 1, ne, 4, d, 64, &err), CAI_EINVAL);
    ne[0] = 0;
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, "u", 1, ne, CAI_TYPE_F32, d, 0, &err),
                 CAI_EINVAL);
    char longname[80];
    memset(longname, 'x', 65);
    longname[65] = '\0';
    ne[0] = 16;
    CHECK_EQ_INT(cai__gguf_writer_add_tensor(w, longname, 1, ne, CAI_TYPE_F32, d, 64, &err),
                 CAI_EINVAL);
    /* The failures left the writer usable and unchanged. */
    size_t n;
    struct opened o;
    uint8_t *buf = serialize(w, &n);
    int rc = open_bytes(&o, buf, n, "w.gguf", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK_EQ_INT(o.g->n_kv, 2);
        CHECK_EQ_INT(o.g->n_tensors, 1);
        CHECK_EQ_INT(o.g->alignment, 64);
        CHECK_EQ_INT(o.g->data_offset % 64, 0);
    }
    close_bytes(&o);
    cai__free(buf);
    /* general.alignment added by hand with another type cannot be "set". */
    cai__gguf_writer_free(w);
    CHECK_EQ_INT(cai__gguf_writer_new(&w, 2, &err), 0);
    CHECK_EQ_INT(cai__gguf_writer_add_i32(w, "general.alignment", 64, &err), 0);
    CHECK_EQ_INT(cai__gguf_writer_set_alignment(w, 64, &err), CAI_EINVAL);
    cai__gguf_writer_free(w);
    cai__gguf_writer_free(NULL);
}

/* ---- the malformed-file table ---------------------------------------------- */

/* A handcrafted file: the default is valid (3 kvs, tensors "a" f32 [8] at 0
 * and "b" q4_0 [32, 2] at 32, 68 data bytes); each table row changes it. */
struct tspec {
    const char *name;
    uint64_t    name_len; /* declared length; UINT64_MAX-style lies allowed */
    uint32_t    n_dims;
    uint64_t    ne[5];
    uint32_t    type;
    uint64_t    offset;
    size_t      write_len; /* name bytes written; 0: strlen(name) */
};

struct spec {
    uint32_t     magic, version;
    bool         n_tensors_set, n_kv_set;
    uint64_t     n_tensors, n_kv;
    struct rb    kvs;
    uint64_t     kv_count;
    struct tspec t[3];
    int          nt;
    uint32_t     align;    /* layout alignment for the padding */
    uint64_t     data_len; /* data section bytes written */
    bool         cut_set;
    size_t       cut;      /* keep only this many bytes */
    bool         cut_infos; /* end the file right after the tensor infos */
};

static void kv_key_raw(struct spec *s, uint64_t len, const void *bytes, size_t n)
{
    rb_u64(&s->kvs, len);
    rb_bytes(&s->kvs, bytes, n);
    s->kv_count++;
}

static void kv_key(struct spec *s, const char *key)
{
    kv_key_raw(s, strlen(key), key, strlen(key));
}

static void kv_u32(struct spec *s, const char *key, uint32_t v)
{
    kv_key(s, key);
    rb_u32(&s->kvs, CAI_GGUF_U32);
    rb_u32(&s->kvs, v);
}

static void kv_str(struct spec *s, const char *key, const char *v)
{
    kv_key(s, key);
    rb_u32(&s->kvs, CAI_GGUF_STRING);
    rb_str(&s->kvs, v);
}

static void base_spec(struct spec *s)
{
    memset(s, 0, sizeof(*s));
    s->magic = 0x46554747u;
    s->version = 3;
    kv_str(s, "general.architecture", "test");
    kv_u32(s, "test.count", 7);
    kv_str(s, "general.name", "tiny");
    s->t[0] = (struct tspec){.name = "a", .name_len = 1, .n_dims = 1, .ne = {8},
                             .type = CAI_TYPE_F32, .offset = 0};
    s->t[1] = (struct tspec){.name = "b", .name_len = 1, .n_dims = 2, .ne = {32, 2},
                             .type = CAI_TYPE_Q4_0, .offset = 32};
    s->nt = 2;
    s->align = 32;
    s->data_len = 68;
}

static void build(const struct spec *s, struct rb *out)
{
    out->n = 0;
    rb_u32(out, s->magic);
    rb_u32(out, s->version);
    rb_u64(out, s->n_tensors_set ? s->n_tensors : (uint64_t)s->nt);
    rb_u64(out, s->n_kv_set ? s->n_kv : s->kv_count);
    rb_bytes(out, s->kvs.p, s->kvs.n);
    for (int i = 0; i < s->nt; i++) {
        const struct tspec *t = &s->t[i];
        rb_u64(out, t->name_len);
        rb_bytes(out, t->name, t->write_len ? t->write_len : strlen(t->name));
        rb_u32(out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 5; d++)
            rb_u64(out, t->ne[d]);
        rb_u32(out, t->type);
        rb_u64(out, t->offset);
    }
    if (s->cut_infos)
        return;
    while (out->n % s->align)
        rb_u8(out, 0);
    for (uint64_t i = 0; i < s->data_len; i++)
        rb_u8(out, (uint8_t)(i * 7 + 1));
    if (s->cut_set && s->cut < out->n)
        out->n = s->cut;
}

#define U64MAX UINT64_MAX
#define P63    ((uint64_t)1 << 63)

/* name, expected code, two words the message must contain (NULL: none).
 * Every message must also contain the file name. */
#define MALFORMED(X)                                                                               \
    X(EMPTY_FILE, CAI_EFORMAT, "header: magic", "truncated")                                       \
    X(THREE_BYTES, CAI_EFORMAT, "header: magic", "only 3 left")                                    \
    X(MAGIC_ONLY, CAI_EFORMAT, "header: version", "at byte 4")                                     \
    X(BAD_MAGIC, CAI_EFORMAT, "bad magic 47 47 55 58", "not a GGUF file")                          \
    X(VERSION_0, CAI_EFORMAT, "version 0 is not supported", NULL)                                  \
    X(VERSION_1, CAI_EFORMAT, "version 1 is not supported", "32-bit counts")                       \
    X(VERSION_4, CAI_EFORMAT, "version 4 is not supported", "only 2 and 3")                        \
    X(VERSION_BIG_ENDIAN, CAI_EFORMAT, "big-endian", NULL)                                         \
    X(VERSION_MAX, CAI_EFORMAT, "version 4294967295", NULL)                                        \
    X(N_TENSORS_U64MAX, CAI_EFORMAT, "tensor_count 18446744073709551615", "cannot fit")            \
    X(N_TENSORS_2P63, CAI_EFORMAT, "tensor_count 9223372036854775808", "cannot fit")               \
    X(N_TENSORS_TOO_MANY, CAI_EFORMAT, "tensor_count 20", "cannot fit")                            \
    X(N_KV_U64MAX, CAI_EFORMAT, "kv_count 18446744073709551615", "cannot fit")                     \
    X(N_KV_2P63, CAI_EFORMAT, "kv_count 9223372036854775808", "cannot fit")                        \
    X(N_KV_TOO_MANY, CAI_EFORMAT, "kv_count 1000", "cannot fit")                                   \
    X(KEY_LEN_U64MAX, CAI_EFORMAT, "kv[3]: key", "length 18446744073709551615")                    \
    X(KEY_LEN_2P63, CAI_EFORMAT, "kv[3]: key", "length 9223372036854775808")                       \
    X(KEY_LEN_PAST_EOF, CAI_EFORMAT, "kv[3]: key", "length 1000 exceeds")                          \
    X(KEY_TOO_LONG, CAI_EFORMAT, "kv[3]: key", "limit of 65535")                                   \
    X(KEY_EMPTY, CAI_EFORMAT, "kv[3]: empty key", NULL)                                            \
    X(KEY_NUL, CAI_EFORMAT, "kv[3]: key contains a NUL", NULL)                                     \
    X(STR_LEN_U64MAX, CAI_EFORMAT, "kv[3] \"x.s\": string value", "length 18446744073709551615")   \
    X(STR_LEN_2P63, CAI_EFORMAT, "kv[3] \"x.s\": string value", "length 9223372036854775808")      \
    X(STR_LEN_PAST_EOF, CAI_EFORMAT, "kv[3] \"x.s\": string value", "length 1000 exceeds")         \
    X(VALUE_TYPE_13, CAI_EFORMAT, "kv[3] \"x.v\"", "unknown value type 13")                        \
    X(VALUE_TYPE_MAX, CAI_EFORMAT, "kv[3] \"x.v\"", "unknown value type 4294967295")               \
    X(BOOL_2, CAI_EFORMAT, "kv[3] \"x.flag\"", "bool value 2")                                     \
    X(BOOL_255_ODD_KEY, CAI_EFORMAT, "kv[3] \"\\x01odd\\x22key\\xff\"", "bool value 255")          \
    X(SCALAR_PAST_EOF, CAI_EFORMAT, "kv[3] \"x.u64\": value", "needs 8 bytes, only 3 left")        \
    X(ARR_BOOL_2, CAI_EFORMAT, "kv[3] \"x.bools\"", "array bool 1")                                \
    X(ARR_ELEM_TYPE_13, CAI_EFORMAT, "kv[3] \"x.arr\"", "unknown element type 13")                 \
    X(ARR_LEN_U64MAX, CAI_EFORMAT, "kv[3] \"x.arr\"", "18446744073709551615 u8 elements")          \
    X(ARR_LEN_WRAPS, CAI_EFORMAT, "kv[3] \"x.arr\"", "2305843009213693953 f64 elements")           \
    X(ARR_AMPLIFY, CAI_EFORMAT, "kv[3] \"x.arr\"", "10 f64 elements")                              \
    X(ARR_STR_LEN_2P63, CAI_EFORMAT, "kv[3] \"x.strs\"", "9223372036854775808 string elements")    \
    X(ARR_STR_PAST_EOF, CAI_EFORMAT, "kv[3] \"x.strs\"", "array string 1")                         \
    X(ARR_OF_ARR_U64MAX, CAI_EFORMAT, "kv[3] \"x.arr\"", "array elements")                         \
    X(ARR_DEPTH_5, CAI_EFORMAT, "kv[3] \"x.deep\"", "nested deeper than 4")                        \
    X(ARR_DEPTH_BOMB, CAI_EFORMAT, "kv[3] \"x.deep\"", "nested deeper than 4")                     \
    X(DUP_KEY, CAI_EFORMAT, "kv[3] \"general.architecture\"", "duplicate key (also kv[0])")        \
    X(ALIGN_0, CAI_EFORMAT, "\"general.alignment\"", "alignment 0 is not a power of two")          \
    X(ALIGN_3, CAI_EFORMAT, "\"general.alignment\"", "alignment 3 is not")                         \
    X(ALIGN_4, CAI_EFORMAT, "\"general.alignment\"", "alignment 4 is not")                         \
    X(ALIGN_2P31, CAI_EFORMAT, "\"general.alignment\"", "alignment 2147483648")                    \
    X(ALIGN_I32, CAI_EFORMAT, "\"general.alignment\"", "must be of type u32, not i32")             \
    X(ALIGN_STR, CAI_EFORMAT, "\"general.alignment\"", "not string")                               \
    X(ALIGN_U64, CAI_EFORMAT, "\"general.alignment\"", "not u64")                                  \
    X(ALIGN_64_OFFSET_32, CAI_EFORMAT, "tensor \"b\"", "not a multiple of the alignment 64")       \
    X(NAME_LEN_U64MAX, CAI_EFORMAT, "tensor[1]: name", "length 18446744073709551615")              \
    X(NAME_TOO_LONG, CAI_EFORMAT, "tensor[1]: name", "limit of 64")                                \
    X(NAME_EMPTY, CAI_EFORMAT, "tensor[1]: empty name", NULL)                                      \
    X(NAME_NUL, CAI_EFORMAT, "tensor[1]: name contains a NUL", NULL)                               \
    X(N_DIMS_0, CAI_EFORMAT, "tensor \"b\"", "n_dims 0")                                           \
    X(N_DIMS_5, CAI_EFORMAT, "tensor \"b\"", "n_dims 5")                                           \
    X(N_DIMS_MAX, CAI_EFORMAT, "tensor \"b\"", "n_dims 4294967295")                                \
    X(DIM_ZERO, CAI_EFORMAT, "tensor \"b\"", "ne[1] = 0 ")                                         \
    X(DIM_NEGATIVE, CAI_EFORMAT, "tensor \"b\"", "ne[1] = 18446744073709551615")                   \
    X(DIMS_OVERFLOW, CAI_EFORMAT, "tensor \"b\"", "element count overflows")                       \
    X(DIMS_2P32_SQUARED, CAI_EFORMAT, "tensor \"a\"", "element count overflows")                   \
    X(BYTES_OVERFLOW, CAI_EFORMAT, "tensor \"a\"", "byte size of 4611686018427387904 f32")         \
    X(TYPE_REMOVED_4, CAI_EFORMAT, "tensor \"b\"", "unknown tensor type 4")                        \
    X(TYPE_COUNT, CAI_EFORMAT, "tensor \"b\"", "unknown tensor type 43")                           \
    X(TYPE_1000, CAI_EFORMAT, "tensor \"b\"", "unknown tensor type 1000")                          \
    X(NE0_NOT_BLOCK, CAI_EFORMAT, "tensor \"b\"", "ne[0] = 16 is not a multiple of the q4_0")      \
    X(NE0_NOT_K_BLOCK, CAI_EFORMAT, "tensor \"b\"", "q4_K block size 256")                         \
    X(OFFSET_UNALIGNED, CAI_EFORMAT, "tensor \"b\"", "offset 36 at byte")                          \
    X(OFFSET_OUT_OF_RANGE, CAI_EFORMAT, "tensor \"b\"", "outside the 68-byte data section")        \
    X(OFFSET_WRAPS, CAI_EFORMAT, "tensor \"b\"", "offset 18446744073709551584 + 36")               \
    X(DATA_ONE_SHORT, CAI_EFORMAT, "tensor \"b\"", "outside the 67-byte data section")             \
    X(DATA_SECTION_PAST_EOF, CAI_EFORMAT, "data section", "past the end")                          \
    X(OVERLAP_SAME, CAI_EFORMAT, "tensor \"b\"", "overlaps tensor \"a\" (offset 0, 32 bytes)")     \
    X(OVERLAP_PARTIAL, CAI_EFORMAT, "tensor \"b\"", "overlaps tensor \"a\" (offset 0, 64 bytes)")  \
    X(DUP_TENSOR, CAI_EFORMAT, "tensor \"a\"", "duplicate tensor name (tensor[0] and tensor[1])")  \
    X(VALID_BASE, 0, NULL, NULL)

enum malformed {
#define MALFORMED_ENUM(name, rc, s1, s2) M_##name,
    MALFORMED(MALFORMED_ENUM)
#undef MALFORMED_ENUM
    M_COUNT
};

static void apply(enum malformed m, struct spec *s)
{
    struct tspec *a = &s->t[0], *b = &s->t[1];
    struct rb *k = &s->kvs;
    switch (m) {
    case M_EMPTY_FILE: s->cut_set = true; s->cut = 0; break;
    case M_THREE_BYTES: s->cut_set = true; s->cut = 3; break;
    case M_MAGIC_ONLY: s->cut_set = true; s->cut = 4; break;
    case M_BAD_MAGIC: s->magic = 0x58554747u; break;
    case M_VERSION_0: s->version = 0; break;
    case M_VERSION_1: s->version = 1; break;
    case M_VERSION_4: s->version = 4; break;
    case M_VERSION_BIG_ENDIAN: s->version = 0x03000000u; break;
    case M_VERSION_MAX: s->version = UINT32_MAX; break;
    case M_N_TENSORS_U64MAX: s->n_tensors_set = true; s->n_tensors = U64MAX; break;
    case M_N_TENSORS_2P63: s->n_tensors_set = true; s->n_tensors = P63; break;
    case M_N_TENSORS_TOO_MANY: s->n_tensors_set = true; s->n_tensors = 20; break;
    case M_N_KV_U64MAX: s->n_kv_set = true; s->n_kv = U64MAX; break;
    case M_N_KV_2P63: s->n_kv_set = true; s->n_kv = P63; break;
    case M_N_KV_TOO_MANY: s->n_kv_set = true; s->n_kv = 1000; break;
    case M_KEY_LEN_U64MAX: kv_key_raw(s, U64MAX, "abc", 3); break;
    case M_KEY_LEN_2P63: kv_key_raw(s, P63, "abc", 3); break;
    case M_KEY_LEN_PAST_EOF: s->nt = 0; s->cut_infos = true; kv_key_raw(s, 1000, "abc", 3); break;
    case M_KEY_TOO_LONG: {
        static char big[70000];
        memset(big, 'k', sizeof(big));
        kv_key_raw(s, sizeof(big), big, sizeof(big));
        rb_u32(k, CAI_GGUF_U8);
        rb_u8(k, 1);
        break;
    }
    case M_KEY_EMPTY: kv_key_raw(s, 0, "", 0); rb_u32(k, CAI_GGUF_U8); rb_u8(k, 1); break;
    case M_KEY_NUL: kv_key_raw(s, 3, "a\0b", 3); rb_u32(k, CAI_GGUF_U8); rb_u8(k, 1); break;
    case M_STR_LEN_U64MAX: kv_key(s, "x.s"); rb_u32(k, CAI_GGUF_STRING); rb_u64(k, U64MAX); break;
    case M_STR_LEN_2P63: kv_key(s, "x.s"); rb_u32(k, CAI_GGUF_STRING); rb_u64(k, P63); break;
    case M_STR_LEN_PAST_EOF:
        s->nt = 0;
        s->cut_infos = true;
        kv_key(s, "x.s");
        rb_u32(k, CAI_GGUF_STRING);
        rb_u64(k, 1000);
        rb_bytes(k, "short", 5);
        break;
    case M_VALUE_TYPE_13: kv_key(s, "x.v"); rb_u32(k, 13); rb_u32(k, 0); break;
    case M_VALUE_TYPE_MAX: kv_key(s, "x.v"); rb_u32(k, UINT32_MAX); rb_u32(k, 0); break;
    case M_BOOL_2: kv_key(s, "x.flag"); rb_u32(k, CAI_GGUF_BOOL); rb_u8(k, 2); break;
    case M_BOOL_255_ODD_KEY:
        kv_key(s, "\x01odd\"key\xff");
        rb_u32(k, CAI_GGUF_BOOL);
        rb_u8(k, 255);
        break;
    case M_SCALAR_PAST_EOF:
        s->nt = 0;
        s->cut_infos = true;
        kv_key(s, "x.u64");
        rb_u32(k, CAI_GGUF_U64);
        rb_bytes(k, "\1\2\3", 3);
        break;
    case M_ARR_BOOL_2:
        kv_key(s, "x.bools");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, CAI_GGUF_BOOL);
        rb_u64(k, 3);
        rb_bytes(k, "\1\2\0", 3);
        break;
    case M_ARR_ELEM_TYPE_13:
        kv_key(s, "x.arr");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, 13);
        rb_u64(k, 0);
        break;
    case M_ARR_LEN_U64MAX:
        kv_key(s, "x.arr");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, CAI_GGUF_U8);
        rb_u64(k, U64MAX);
        break;
    case M_ARR_LEN_WRAPS: /* 8 * (2^61 + 1) wraps to 8 in 64 bits */
        kv_key(s, "x.arr");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, CAI_GGUF_F64);
        rb_u64(k, ((uint64_t)1 << 61) + 1);
        rb_u64(k, 0);
        break;
    case M_ARR_AMPLIFY: /* 10 f64 = 80 bytes declared, 40 present */
        s->nt = 0;
        s->cut_infos = true;
        kv_key(s, "x.arr");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, CAI_GGUF_F64);
        rb_u64(k, 10);
        for (int i = 0; i < 5; i++)
            rb_u64(k, 0);
        break;
    case M_ARR_STR_LEN_2P63:
        kv_key(s, "x.strs");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, CAI_GGUF_STRING);
        rb_u64(k, P63);
        break;
    case M_ARR_STR_PAST_EOF:
        s->nt = 0;
        s->cut_infos = true;
        kv_key(s, "x.strs");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, CAI_GGUF_STRING);
        rb_u64(k, 2);
        rb_str(k, "ok");
        rb_u64(k, 500);
        rb_bytes(k, "abcdefghijklmnop", 16);
        break;
    case M_ARR_OF_ARR_U64MAX:
        kv_key(s, "x.arr");
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u32(k, CAI_GGUF_ARRAY);
        rb_u64(k, U64MAX);
        break;
    case M_ARR_DEPTH_5:
        kv_key(s, "x.deep");
        rb_u32(k, CAI_GGUF_ARRAY);
        nested_payload(k, 5, 1);
        break;
    case M_ARR_DEPTH_BOMB:
        kv_key(s, "x.deep");
        rb_u32(k, CAI_GGUF_ARRAY);
        nested_payload(k, 100000, 1);
        break;
    case M_DUP_KEY: kv_str(s, "general.architecture", "again"); break;
    case M_ALIGN_0: kv_u32(s, "general.alignment", 0); break;
    case M_ALIGN_3: kv_u32(s, "general.alignment", 3); break;
    case M_ALIGN_4: kv_u32(s, "general.alignment", 4); break;
    case M_ALIGN_2P31: kv_u32(s, "general.alignment", 1u << 31); break;
    case M_ALIGN_I32:
        kv_key(s, "general.alignment");
        rb_u32(k, CAI_GGUF_I32);
        rb_u32(k, 32);
        break;
    case M_ALIGN_STR: kv_str(s, "general.alignment", "32"); break;
    case M_ALIGN_U64:
        kv_key(s, "general.alignment");
        rb_u32(k, CAI_GGUF_U64);
        rb_u64(k, 32);
        break;
    case M_ALIGN_64_OFFSET_32: kv_u32(s, "general.alignment", 64); s->align = 64; break;
    case M_NAME_LEN_U64MAX: b->name_len = U64MAX; break;
    case M_NAME_TOO_LONG: {
        static char name[66];
        memset(name, 'b', 65);
        b->name = name;
        b->name_len = 65;
        break;
    }
    case M_NAME_EMPTY: b->name = ""; b->name_len = 0; break;
    case M_NAME_NUL: b->name = "b\0"; b->name_len = 2; b->write_len = 2; break;
    case M_N_DIMS_0: b->n_dims = 0; break;
    case M_N_DIMS_5: b->n_dims = 5; b->ne[2] = b->ne[3] = b->ne[4] = 1; break;
    case M_N_DIMS_MAX: b->n_dims = UINT32_MAX; break;
    case M_DIM_ZERO: b->ne[1] = 0; break;
    case M_DIM_NEGATIVE: b->ne[1] = U64MAX; break;
    case M_DIMS_OVERFLOW: b->ne[1] = (uint64_t)INT64_MAX; break;
    case M_DIMS_2P32_SQUARED:
        a->n_dims = 2;
        a->ne[0] = (uint64_t)1 << 32;
        a->ne[1] = (uint64_t)1 << 32;
        break;
    case M_BYTES_OVERFLOW: a->ne[0] = (uint64_t)1 << 62; break;
    case M_TYPE_REMOVED_4: b->type = 4; break;
    case M_TYPE_COUNT: b->type = CAI_TYPE_COUNT; break;
    case M_TYPE_1000: b->type = 1000; break;
    case M_NE0_NOT_BLOCK: b->ne[0] = 16; break;
    case M_NE0_NOT_K_BLOCK: b->type = CAI_TYPE_Q4_K; break;
    case M_OFFSET_UNALIGNED: b->offset = 36; break;
    case M_OFFSET_OUT_OF_RANGE: b->offset = (uint64_t)1 << 40; break;
    case M_OFFSET_WRAPS: b->offset = U64MAX & ~(uint64_t)31; break;
    case M_DATA_ONE_SHORT: s->data_len = 67; break;
    case M_DATA_SECTION_PAST_EOF: s->cut_infos = true; break;
    case M_OVERLAP_SAME: b->offset = 0; break;
    case M_OVERLAP_PARTIAL: a->ne[0] = 16; s->data_len = 96; break;
    case M_DUP_TENSOR: b->name = "a"; break;
    case M_VALID_BASE: break;
    case M_COUNT: break;
    }
}

static void test_malformed_table(void)
{
    static const struct {
        const char *name;
        int         rc;
        const char *s1, *s2;
    } rows[] = {
#define MALFORMED_ROW(name, rc, s1, s2) {#name, rc, s1, s2},
        MALFORMED(MALFORMED_ROW)
#undef MALFORMED_ROW
    };
    _Static_assert(CAI_ARRAY_LEN(rows) == M_COUNT, "one row per case");
    struct rb file = {0};
    for (int m = 0; m < M_COUNT; m++) {
        struct spec s;
        struct opened o;
        struct cai_error err = {0};
        base_spec(&s);
        apply((enum malformed)m, &s);
        build(&s, &file);
        int rc = open_bytes(&o, file.p, file.n, "case.gguf", &err);
        if (getenv("CAI_TEST_VERBOSE"))
            printf("  %-22s %s\n", rows[m].name, err.msg);
        CHECK_MSG(rc == rows[m].rc, "%s: rc %d (%s), want %d", rows[m].name, rc, err.msg,
                  rows[m].rc);
        if (rows[m].rc) {
            CHECK_MSG(o.g == NULL, "%s: *out not NULL on failure", rows[m].name);
            CHECK_MSG(err.code == rc, "%s: err.code %d", rows[m].name, err.code);
            CHECK_MSG(strncmp(err.msg, "case.gguf: ", 11) == 0 && has(err.msg, rows[m].s1) &&
                          has(err.msg, rows[m].s2),
                      "%s: message \"%s\" lacks \"%s\" / \"%s\"", rows[m].name, err.msg,
                      rows[m].s1, rows[m].s2 ? rows[m].s2 : "");
        }
        close_bytes(&o);
        free(s.kvs.p);
    }
    free(file.p);
    printf("  malformed table: %d cases\n", (int)M_COUNT - 1);
}

/* A valid file with a bit of everything; used for truncation and OOM. */
static uint8_t *rich_file(size_t *n, uint32_t version, uint32_t align)
{
    static const char *const toks[] = {"<s>", "</s>", "a", "", "hello"};
    static const float scores[] = {0, -1, -2, -3, -4};
    static uint8_t d1[64], d2[36];
    struct cai_gguf_writer *w;
    struct cai_error err = {0};
    uint8_t nest[64];
    struct rb b = {.p = NULL};
    int64_t ne1[2] = {4, 4}, ne2[2] = {32, 2};
    fill_pattern(d1, sizeof(d1), 5);
    fill_pattern(d2, sizeof(d2), 6);
    CHECK_EQ_INT(cai__gguf_writer_new(&w, version, &err), 0);
    CHECK(cai__gguf_writer_add_str(w, "general.architecture", "llama", &err) == 0);
    CHECK(cai__gguf_writer_add_u32(w, "llama.block_count", 1, &err) == 0);
    CHECK(cai__gguf_writer_add_f32(w, "llama.eps", 1e-5f, &err) == 0);
    CHECK(cai__gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, &err) == 0);
    CHECK(cai__gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, 5, &err) == 0);
    CHECK(cai__gguf_writer_add_arr(w, "tokenizer.ggml.scores", CAI_GGUF_F32, scores, 5, &err) ==
          0);
    CHECK(cai__gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", toks + 2, 3, &err) == 0);
    nested_payload(&b, 2, 2);
    memcpy(nest, b.p, b.n);
    CHECK(cai__gguf_writer_add_raw(w, "x.nested", CAI_GGUF_ARRAY, nest, b.n, &err) == 0);
    free(b.p);
    if (align)
        CHECK(cai__gguf_writer_set_alignment(w, align, &err) == 0);
    CHECK(cai__gguf_writer_add_tensor(w, "token_embd.weight", 2, ne1, CAI_TYPE_F32, d1, 64,
                                      &err) == 0);
    CHECK(cai__gguf_writer_add_tensor(w, "blk.0.attn_q.weight", 2, ne2, CAI_TYPE_Q4_0, d2, 36,
                                      &err) == 0);
    CHECK_MSG(err.code == 0, "%s", err.msg);
    uint8_t *buf = serialize(w, n);
    cai__gguf_writer_free(w);
    return buf;
}

static void test_truncation_every_byte(void)
{
    static const uint32_t versions[] = {2, 3};
    int n_cases = 0;
    for (size_t v = 0; v < 2; v++) {
        size_t n;
        uint8_t *buf = rich_file(&n, versions[v], v ? 64 : 0);
        for (size_t len = 0; len <= n; len++) {
            struct opened o;
            struct cai_error err = {0};
            int rc = open_bytes(&o, buf, len, "cut.gguf", &err);
            if (len == n) {
                CHECK_MSG(rc == 0, "full file: %s", err.msg);
                if (rc == 0) {
                    const struct cai_gguf_kv *kv = cai__gguf_find_kv(o.g, "tokenizer.ggml.tokens");
                    CHECK(kv && kv->arr_n == 5 &&
                          cai__gguf_str_eq(cai__gguf_arr_str(kv, 4), "hello") &&
                          cai__gguf_str_eq(cai__gguf_arr_str(kv, 3), ""));
                }
            } else {
                CHECK_MSG(rc == CAI_EFORMAT, "cut at %zu of %zu: rc %d", len, n, rc);
                CHECK_MSG(o.g == NULL && strncmp(err.msg, "cut.gguf: ", 10) == 0,
                          "cut at %zu: %s", len, err.msg);
                n_cases++;
            }
            close_bytes(&o);
        }
        cai__free(buf);
    }
    printf("  truncation: %d cut points\n", n_cases);
}

/* Every allocation the reader makes may fail: each failure must come back as
 * CAI_ENOMEM with nothing leaked (ASan checks the leaks). */
static void test_out_of_memory(void)
{
    size_t n;
    uint8_t *buf = rich_file(&n, 3, 0);
    char path[512];
    struct cai_error err = {0};
    tmp_path(path, sizeof(path), "oom");
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(buf, 1, n, f) == n);
    if (f)
        fclose(f);
    for (int from_file = 0; from_file < 2; from_file++) {
        int ok_at = 0;
        for (long k = 1; k < 200 && !ok_at; k++) {
            struct opened o = {0};
            struct cai_gguf *g = NULL;
            int rc;
            cai__alloc_fail_after(k);
            if (from_file) {
                rc = cai__gguf_open(&g, path, &err);
            } else {
                rc = open_bytes(&o, buf, n, "oom.gguf", &err);
                g = o.g;
            }
            cai__alloc_fail_after(0);
            if (rc == 0) {
                ok_at = (int)k;
                CHECK(g && g->n_tensors == 2);
            } else {
                CHECK_MSG(rc == CAI_ENOMEM, "alloc %ld: rc %d: %s", k, rc, err.msg);
                CHECK_MSG(has(err.msg, "out of memory") && g == NULL, "alloc %ld: %s", k,
                          err.msg);
            }
            if (from_file)
                cai__gguf_close(g);
            else
                close_bytes(&o);
        }
        CHECK_MSG(ok_at > 3, "succeeded at allocation %d", ok_at);
    }
    unlink(path);
    cai__free(buf);

    /* The writer too: a failed call returns CAI_ENOMEM and leaves it usable. */
    for (long k = 1; k < 100; k++) {
        struct cai_gguf_writer *w = NULL;
        int64_t ne[1] = {4};
        float d[4] = {1, 2, 3, 4};
        static const char *const strs[] = {"a", "b"};
        uint8_t *out = NULL;
        size_t n_out;
        int rc, failed = 0;
        cai__alloc_fail_after(k);
        rc = cai__gguf_writer_new(&w, 3, &err);
        if (rc == 0) {
            int r[5];
            r[0] = cai__gguf_writer_add_str(w, "a", "x", &err);
            r[1] = cai__gguf_writer_add_arr_str(w, "b", strs, 2, &err);
            r[2] = cai__gguf_writer_set_alignment(w, 64, &err);
            r[3] = cai__gguf_writer_add_tensor(w, "t", 1, ne, CAI_TYPE_F32, d, 16, &err);
            r[4] = cai__gguf_writer_serialize(w, &out, &n_out, &err);
            for (int i = 0; i < 5; i++) {
                CHECK_MSG(r[i] == 0 || r[i] == CAI_ENOMEM, "alloc %ld step %d: %d", k, i, r[i]);
                failed |= r[i] != 0;
            }
        } else {
            CHECK_EQ_INT(rc, CAI_ENOMEM);
            failed = 1;
        }
        cai__alloc_fail_after(0);
        cai__free(out);
        cai__gguf_writer_free(w);
        if (!failed)
            break;
    }
}

/* ---- the real default model -------------------------------------------------- */

static void test_real_model(void)
{
    struct cai_gguf *g = NULL;
    struct cai_error err = {0};
    if (access(MODEL_PATH, R_OK) != 0)
        SKIP("%s not present", MODEL_PATH);
    int rc = cai__gguf_open(&g, MODEL_PATH, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_EQ_INT(g->version, 3);
    CHECK_EQ_INT(g->n_kv, 33);
    CHECK_EQ_INT(g->n_tensors, 272);
    CHECK_EQ_INT(g->alignment, 32);
    CHECK_EQ_INT(g->data_offset, 1785664);

    struct cai_gguf_str s;
    uint32_t u = 0;
    float f = 0;
    bool b = true;
    CHECK_EQ_INT(cai__gguf_get_str(g, "general.architecture", true, &s, &err), 0);
    CHECK(cai__gguf_str_eq(s, "llama"));
    CHECK_EQ_INT(cai__gguf_get_u32(g, "llama.block_count", true, &u, &err), 0);
    CHECK_EQ_INT(u, 30);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "llama.embedding_length", true, &u, &err), 0);
    CHECK_EQ_INT(u, 576);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "llama.attention.head_count", true, &u, &err), 0);
    CHECK_EQ_INT(u, 9);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "llama.attention.head_count_kv", true, &u, &err), 0);
    CHECK_EQ_INT(u, 3);
    CHECK_EQ_INT(cai__gguf_get_u32(g, "llama.context_length", true, &u, &err), 0);
    CHECK_EQ_INT(u, 8192);
    CHECK_EQ_INT(cai__gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", true, &f, &err),
                 0);
    CHECK_NEAR(f, 1e-5, 1e-12);
    CHECK_EQ_INT(cai__gguf_get_f32(g, "llama.rope.freq_base", true, &f, &err), 0);
    CHECK_NEAR(f, 100000.0, 0);
    CHECK_EQ_INT(cai__gguf_get_bool(g, "tokenizer.ggml.add_bos_token", true, &b, &err), 0);
    CHECK(b == false);
    CHECK_EQ_INT(cai__gguf_get_str(g, "tokenizer.ggml.model", true, &s, &err), 0);
    CHECK(cai__gguf_str_eq(s, "gpt2"));

    const struct cai_gguf_kv *kv = NULL;
    CHECK_EQ_INT(cai__gguf_get_arr(g, "tokenizer.ggml.tokens", true, CAI_GGUF_STRING, &kv, &err),
                 0);
    if (kv) {
        CHECK_EQ_INT(kv->arr_n, 49152);
        CHECK(cai__gguf_str_eq(cai__gguf_arr_str(kv, 0), "<|endoftext|>"));
        CHECK(cai__gguf_str_eq(cai__gguf_arr_str(kv, 2), "<|im_end|>"));
        CHECK(cai__gguf_str_eq(cai__gguf_arr_str(kv, 100), "t"));
        CHECK(cai__gguf_str_eq(cai__gguf_arr_str(kv, 49151), "ectable"));
    }
    kv = NULL;
    CHECK_EQ_INT(cai__gguf_get_arr(g, "tokenizer.ggml.merges", true, CAI_GGUF_STRING, &kv, &err),
                 0);
    if (kv) {
        CHECK_EQ_INT(kv->arr_n, 48900);
        CHECK(cai__gguf_str_eq(cai__gguf_arr_str(kv, 0), "\xc4\xa0 t"));
        CHECK(cai__gguf_str_eq(cai__gguf_arr_str(kv, 48899), "ect able"));
    }
    kv = NULL;
    CHECK_EQ_INT(cai__gguf_get_arr(g, "tokenizer.ggml.token_type", true, CAI_GGUF_I32, &kv, &err),
                 0);
    if (kv)
        CHECK(kv->arr_n == 49152 && cai__gguf_arr_i64(kv, 0) == 3 &&
              cai__gguf_arr_i64(kv, 100) == 1);

    const struct cai_gguf_tensor *t = cai__gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->type == CAI_TYPE_Q8_0 && t->n_dims == 2 && t->ne[0] == 576 &&
          t->ne[1] == 49152 && t->offset == 0 && t->n_bytes == 30081024);
    t = cai__gguf_find_tensor(g, "output_norm.weight");
    CHECK(t && t->type == CAI_TYPE_F32 && t->n_dims == 1 && t->ne[0] == 576 && t->n_bytes == 2304 &&
          (const uint8_t *)t->data + t->n_bytes == g->base + g->n_bytes);
    t = cai__gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(t && t->type == CAI_TYPE_Q4_1 && t->ne[0] == 1536 && t->ne[1] == 576);
    int per_type[CAI_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++)
        per_type[g->tensors[i].type]++;
    CHECK_EQ_INT(per_type[CAI_TYPE_Q4_1], 210);
    CHECK_EQ_INT(per_type[CAI_TYPE_F32], 61);
    CHECK_EQ_INT(per_type[CAI_TYPE_Q8_0], 1);
    for (int l = 0; l < 30; l++) {
        char name[64];
        snprintf(name, sizeof(name), "blk.%d.attn_q.weight", l);
        CHECK_MSG(cai__gguf_find_tensor(g, name) != NULL, "%s", name);
    }
    CHECK(cai__gguf_find_tensor(g, "blk.30.attn_q.weight") == NULL);
    cai__gguf_close(g);
}

/* ---- fuzz corpus ------------------------------------------------------------ */

/* Replays the fuzz corpus (seeds and every input that ever broke something):
 * each must open or fail cleanly; the generated seeds (*-v2/-v3.gguf) open. */
static void test_corpus_replay(void)
{
    DIR *d = opendir(CORPUS_DIR);
    int n = 0;
    if (!d)
        SKIP("%s not present", CORPUS_DIR);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[1024];
        struct cai_gguf *g = NULL;
        struct cai_error err = {0};
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, e->d_name);
        int rc = cai__gguf_open(&g, path, &err);
        size_t len = strlen(e->d_name);
        bool seed = len > 8 && (strcmp(e->d_name + len - 8, "-v2.gguf") == 0 ||
                                strcmp(e->d_name + len - 8, "-v3.gguf") == 0);
        if (seed)
            CHECK_MSG(rc == 0, "%s", err.msg);
        else
            CHECK_MSG(rc == 0 || (rc == CAI_EFORMAT && has(err.msg, path)), "%s", err.msg);
        cai__gguf_close(g);
        n++;
    }
    closedir(d);
    CHECK(n >= 5);
}

static int write_seed(const char *dir, const char *name, struct cai_gguf_writer *w)
{
    char path[1024];
    struct cai_error err = {0};
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int rc = cai__gguf_writer_write_file(w, path, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    cai__gguf_writer_free(w);
    return rc;
}

/* Small valid files that between them use every value type and several
 * tensor types, so the fuzzer starts from deep inside the format. */
static int write_corpus(const char *dir)
{
    struct cai_gguf_writer *w;
    struct cai_error err = {0};
    int rc = 0;
    uint8_t d[64];
    int64_t ne1[1] = {8}, ne2[2] = {32, 1};
    fill_pattern(d, sizeof(d), 1);

    cai__gguf_writer_new(&w, 3, &err);
    cai__gguf_writer_add_str(w, "general.architecture", "llama", &err);
    cai__gguf_writer_add_tensor(w, "a", 1, ne1, CAI_TYPE_F32, d, 32, &err);
    rc |= write_seed(dir, "minimal-v3.gguf", w);

    cai__gguf_writer_new(&w, 2, &err);
    add_every_scalar(w);
    rc |= write_seed(dir, "scalars-v2.gguf", w);

    size_t n;
    uint8_t *buf = rich_file(&n, 3, 0);
    char path[1024];
    snprintf(path, sizeof(path), "%s/rich-v3.gguf", dir);
    FILE *f = fopen(path, "wb");
    rc |= !f || fwrite(buf, 1, n, f) != n;
    if (f)
        fclose(f);
    cai__free(buf);

    cai__gguf_writer_new(&w, 3, &err);
    cai__gguf_writer_set_alignment(w, 8, &err);
    cai__gguf_writer_add_tensor(w, "x.f16", 1, ne1, CAI_TYPE_F16, d, 16, &err);
    cai__gguf_writer_add_tensor(w, "x.q8", 2, ne2, CAI_TYPE_Q8_0, d, 34, &err);
    cai__gguf_writer_add_tensor(w, "x.q4", 2, ne2, CAI_TYPE_Q4_1, d, 20, &err);
    rc |= write_seed(dir, "align8-v3.gguf", w);

    struct rb b = {0};
    nested_payload(&b, 3, 2);
    cai__gguf_writer_new(&w, 3, &err);
    cai__gguf_writer_add_raw(w, "x.nested", CAI_GGUF_ARRAY, b.p, b.n, &err);
    free(b.p);
    rc |= write_seed(dir, "nested-v3.gguf", w);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    RUN(test_roundtrip_scalars);
    RUN(test_roundtrip_arrays);
    RUN(test_nested_arrays);
    RUN(test_alignment_variants);
    RUN(test_no_tensors);
    RUN(test_file_roundtrip);
    RUN(test_writer_errors);
    RUN(test_malformed_table);
    RUN(test_truncation_every_byte);
    RUN(test_out_of_memory);
    RUN(test_real_model);
    RUN(test_corpus_replay);
    return test_done();
}
