/* fuzz_gguf.c: libFuzzer target for the GGUF reader.
 *
 * Parses each input with cai__gguf_open_buffer and, when it is accepted,
 * walks everything the contract promises is safe to use: every key, value,
 * array element and tensor byte, every getter, and both look-ups. It traps on
 * a broken promise (a pointer outside the input, a look-up that does not find
 * its own entry, a failure without a message), so the fuzzer reports those
 * as well as sanitizer errors.
 *
 * Build: `make fuzz`; run: build-fuzz/fuzz_gguf -max_total_time=60 tests/fuzz/corpus/gguf.
 * With -DCAI_FUZZ_STANDALONE it gets a main() that replays files, for
 * running the corpus as a plain regression test. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/gguf.h"
#include "fuzz.h"


static volatile uint64_t sink;
static char name_buf[65536 + 1];

static bool inside(const void *p, uint64_t n, const uint8_t *data, size_t size)
{
    const uint8_t *b = p;
    return b >= data && b <= data + size && n <= (uint64_t)(data + size - b);
}

static const char *cstr(struct cai_gguf_str s)
{
    REQUIRE(s.len < sizeof(name_buf));
    memcpy(name_buf, s.ptr, s.len);
    name_buf[s.len] = '\0';
    return name_buf;
}

static void touch_kv(const struct cai_gguf *g, const struct cai_gguf_kv *kv, const uint8_t *data,
                     size_t size)
{
    struct cai_error err;
    uint32_t u32;
    int64_t i64;
    float f32;
    bool b;
    struct cai_gguf_str s;
    const struct cai_gguf_kv *arr;

    REQUIRE(kv->key.len > 0 && inside(kv->key.ptr, kv->key.len, data, size));
    const char *key = cstr(kv->key);
    REQUIRE(cai__gguf_find_kv(g, key) == kv);
    /* Present keys: every getter either succeeds or fails with a message. */
    int rcs[7] = {
        cai__gguf_get_u32(g, key, true, &u32, &err),
        cai__gguf_get_i64(g, key, true, &i64, &err),
        cai__gguf_get_f32(g, key, true, &f32, &err),
        cai__gguf_get_bool(g, key, true, &b, &err),
        cai__gguf_get_str(g, key, true, &s, &err),
        cai__gguf_get_arr(g, key, true, UINT32_MAX, &arr, &err),
        cai__gguf_get_arr(g, key, false, CAI_GGUF_U8, &arr, &err),
    };
    for (int i = 0; i < 7; i++)
        REQUIRE(rcs[i] == 0 || (rcs[i] < 0 && err.msg[0]));
    sink += kv->u64 + (uint64_t)kv->i64 + (uint64_t)(kv->f64 == kv->f64);

    if (kv->type == CAI_GGUF_STRING) {
        REQUIRE(inside(kv->str.ptr, kv->str.len, data, size));
        if (kv->str.len)
            sink += (uint8_t)kv->str.ptr[kv->str.len - 1];
        return;
    }
    if (kv->type != CAI_GGUF_ARRAY)
        return;
    REQUIRE(kv->arr_type <= CAI_GGUF_F64);
    if (kv->arr_type == CAI_GGUF_STRING) {
        REQUIRE(kv->arr_n == 0 || kv->arr_str_off != NULL);
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            struct cai_gguf_str e = cai__gguf_arr_str(kv, i);
            REQUIRE(inside(e.ptr, e.len, data, size));
            sink += e.len;
            if (e.len)
                sink += (uint8_t)e.ptr[0] + (uint8_t)e.ptr[e.len - 1];
        }
    } else if (kv->arr_type != CAI_GGUF_ARRAY) {
        REQUIRE(inside(kv->arr_data, 0, data, size));
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            double f = cai__gguf_arr_f64(kv, i);
            sink += (uint64_t)cai__gguf_arr_i64(kv, i) + (uint64_t)(f == f);
        }
    }
}

static void touch_tensor(const struct cai_gguf *g, const struct cai_gguf_tensor *t,
                         const uint8_t *data, size_t size)
{
    REQUIRE(t->name.len > 0 && inside(t->name.ptr, t->name.len, data, size));
    REQUIRE(cai__gguf_find_tensor(g, cstr(t->name)) == t);
    REQUIRE(t->n_dims >= 1 && t->n_dims <= 4);
    for (int d = 0; d < 4; d++)
        REQUIRE(t->ne[d] >= 1);
    REQUIRE(t->offset % g->alignment == 0 && t->n_bytes > 0);
    REQUIRE((const uint8_t *)t->data == data + g->data_offset + t->offset);
    REQUIRE(inside(t->data, t->n_bytes, data, size));
    const uint8_t *p = t->data;
    sink += p[0] + p[t->n_bytes - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cai_gguf *g = (struct cai_gguf *)1;
    struct cai_error err = {0};
    int rc = cai__gguf_open_buffer(&g, data, size, "fuzz.gguf", &err);
    if (rc != 0) {
        REQUIRE(rc < 0 && g == NULL && err.code == rc && err.msg[0]);
        return 0;
    }
    REQUIRE(g->version == 2 || g->version == 3);
    REQUIRE(g->alignment >= 8 && (g->alignment & (g->alignment - 1)) == 0);
    REQUIRE(g->data_offset <= size && g->n_bytes == size);
    for (uint64_t i = 0; i < g->n_kv; i++)
        touch_kv(g, &g->kv[i], data, size);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        touch_tensor(g, &g->tensors[i], data, size);
    /* A probe name the input may or may not contain: look-ups agree. */
    static const char probe[] = "\x01 absent";
    const struct cai_gguf_kv *kv = cai__gguf_find_kv(g, probe);
    const struct cai_gguf_tensor *t = cai__gguf_find_tensor(g, probe);
    REQUIRE(!kv || cai__gguf_str_eq(kv->key, probe));
    REQUIRE(!t || cai__gguf_str_eq(t->name, probe));
    uint32_t u = 0;
    rc = cai__gguf_get_u32(g, probe, false, &u, &err);
    REQUIRE(kv ? rc <= 0 : rc == 1);
    rc = cai__gguf_get_u32(g, probe, true, &u, &err);
    REQUIRE(kv ? rc <= 0 : rc < 0);
    cai__gguf_close(g);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include <stdio.h>
#include <stdlib.h>

/* Replays each file named on the command line. */
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
            fclose(f);
            return 1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
    }
    printf("%d files replayed\n", argc - 1);
    return 0;
}
#endif /* CAI_FUZZ_STANDALONE */
