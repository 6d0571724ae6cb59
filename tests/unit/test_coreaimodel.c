/* test_coreaimodel.c: the .coreaimodel writer, reader and verifier, the
 * XXH64 checksum, lossless GGUF import, and a table of corrupt files.
 *
 * With COREAI_CAM_CORPUS=DIR set, also writes seed files for the fuzzer. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "coreai.h"
#include "convert/convert.h"
#include "format/coreaimodel.h"
#include "format/coreaimodel_write.h"
#include "format/gguf.h"
#include "format/gguf_write.h"
#include "tensor/types.h"

static bool has(const char *msg, const char *sub)
{
    bool ok = strstr(msg, sub) != NULL;
    if (!ok)
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", msg, sub);
    return ok;
}

static void tmp_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/cai_test_cam_%ld_%s.coreaimodel", (long)getpid(), tag);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* No "<path>.tmp-*" file is left beside path. */
static bool no_temp_left(const char *path)
{
    char pat[600];
    snprintf(pat, sizeof(pat), "ls %s.tmp-* >/dev/null 2>&1", path);
    return system(pat) != 0;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    char *buf;
    if (cai__read_file(path, &buf, n, NULL) != 0)
        return NULL;
    return (uint8_t *)buf;
}

static void write_all_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n);
    if (f)
        fclose(f);
}

/* ---- XXH64 ---------------------------------------------------------------- */

static void test_xxh64_vectors(void)
{
    /* Reference values from the xxhash Python package (the C reference). */
    uint8_t seq[768];
    for (int i = 0; i < 768; i++)
        seq[i] = (uint8_t)i;
    char x31[31], y32[32], z33[33];
    memset(x31, 'x', 31);
    memset(y32, 'y', 32);
    memset(z33, 'z', 33);
    CHECK(cai__xxh64("", 0, 0) == 0xef46db3751d8e999ull);
    CHECK(cai__xxh64("a", 1, 0) == 0xd24ec4f1a98c6e5bull);
    CHECK(cai__xxh64("abc", 3, 0) == 0x44bc2cf5ad770999ull);
    CHECK(cai__xxh64("abc", 3, 1) == 0xbea9ca8199328908ull);
    CHECK(cai__xxh64(seq, 768, 0) == 0x8e03c838c596036full);
    CHECK(cai__xxh64(x31, 31, 0) == 0x60dd0d01083b99f0ull);
    CHECK(cai__xxh64(y32, 32, 0) == 0x64da1f1d3495ce66ull);
    CHECK(cai__xxh64(z33, 33, 0) == 0xc5241253c64e0268ull);
    /* Streaming in odd pieces gives the one-shot value. */
    for (size_t step = 1; step < 70; step += 3) {
        struct cai_xxh64 s;
        cai__xxh64_init(&s, 0);
        for (size_t o = 0; o < 768; o += step)
            cai__xxh64_update(&s, seq + o, CAI_MIN(step, 768 - o));
        CHECK(cai__xxh64_digest(&s) == 0x8e03c838c596036full);
    }
}

/* ---- a small model built with the writer ------------------------------------ */

static float t_a[64 * 3];
static uint16_t t_b[32];
static uint8_t t_q[34 * 4]; /* q8_0: 4 blocks = [64, 2] */

static int fill_b(void *user, void *dst, uint64_t n, struct cai_error *err)
{
    (void)err;
    CHECK(n == sizeof(t_b));
    memcpy(dst, user, (size_t)n);
    return 0;
}

static int fill_fail(void *user, void *dst, uint64_t n, struct cai_error *err)
{
    (void)user;
    (void)dst;
    (void)n;
    return cai__fail(err, CAI_EIO, "source exploded");
}

static struct cai_cam_writer *small_writer(uint32_t alignment)
{
    struct cai_cam_writer *w;
    struct cai_error err;
    for (size_t i = 0; i < CAI_ARRAY_LEN(t_a); i++)
        t_a[i] = (float)i * 0.5f - 3.0f;
    for (size_t i = 0; i < CAI_ARRAY_LEN(t_b); i++)
        t_b[i] = cai__f32_to_fp16((float)i);
    for (size_t i = 0; i < sizeof(t_q); i++)
        t_q[i] = (uint8_t)(i * 7);
    CHECK(cai__cam_writer_new(&w, &err) == 0);
    if (alignment)
        CHECK(cai__cam_writer_set_alignment(w, alignment, &err) == 0);
    CHECK(cai__cam_writer_add_str(w, "general.architecture", "llama", &err) == 0);
    CHECK(cai__cam_writer_add_u32(w, "llama.block_count", 2, &err) == 0);
    CHECK(cai__cam_writer_add_i32(w, "test.i32", -5, &err) == 0);
    CHECK(cai__cam_writer_add_u64(w, "test.u64", 1ull << 40, &err) == 0);
    CHECK(cai__cam_writer_add_f32(w, "test.f32", 0.25f, &err) == 0);
    CHECK(cai__cam_writer_add_bool(w, "test.bool", true, &err) == 0);
    CHECK(cai__cam_writer_add_strn(w, "test.bytes", "a\0b", 3, &err) == 0);
    const char *toks[] = {"<s>", "hello", ""};
    CHECK(cai__cam_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 3, &err) == 0);
    float scores[] = {0.0f, -1.5f, 2.0f};
    CHECK(cai__cam_writer_add_arr(w, "tokenizer.ggml.scores", CAI_GGUF_F32, scores, 3, &err) == 0);
    int32_t types[] = {3, 1, 1};
    CHECK(cai__cam_writer_add_arr(w, "tokenizer.ggml.token_type", CAI_GGUF_I32, types, 3, &err) ==
          0);
    int64_t ne_a[] = {64, 3}, ne_b[] = {32}, ne_q[] = {64, 2}, ne_e[] = {32, 1, 2};
    CHECK(cai__cam_writer_add_tensor(w, "a.weight", 2, ne_a, CAI_TYPE_F32, t_a, &err) == 0);
    CHECK(cai__cam_writer_add_tensor_fn(w, "b.weight", 1, ne_b, CAI_TYPE_F16, fill_b, t_b, &err) ==
          0);
    CHECK(cai__cam_writer_add_tensor(w, "q.weight", 2, ne_q, CAI_TYPE_Q8_0, t_q, &err) == 0);
    CHECK(cai__cam_writer_add_tensor(w, "blk.0.ffn_up_exps.weight", 3, ne_e, CAI_TYPE_F32, t_a,
                                     &err) == 0);
    return w;
}

static void test_roundtrip(void)
{
    char path[256];
    struct cai_error err;
    struct cai_gguf *g;
    tmp_path(path, sizeof(path), "rt");
    struct cai_cam_writer *w = small_writer(0);
    CHECK(cai__cam_writer_write(w, path, NULL, NULL, &err) == 0);
    cai__cam_writer_free(w);
    CHECK(no_temp_left(path));

    int rc = cai__cam_open(&g, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    struct cai_cam_header h;
    CHECK(cai__cam_header(g, &h));
    CHECK_EQ_INT(h.alignment, CAI_CAM_DEFAULT_ALIGNMENT);
    CHECK_EQ_INT(h.n_tensors, 4);
    CHECK_EQ_INT(h.dir_offset, CAI_CAM_DEFAULT_ALIGNMENT);
    CHECK_EQ_INT(g->data_offset, h.data_offset);
    CHECK_EQ_INT(g->n_bytes, h.file_bytes);
    CHECK(g->alignment == CAI_CAM_DEFAULT_ALIGNMENT);
    struct cai_gguf_str s;
    uint32_t u;
    int64_t i64;
    float f;
    bool b;
    CHECK(cai__gguf_get_str(g, "general.architecture", true, &s, &err) == 0 &&
          cai__gguf_str_eq(s, "llama"));
    CHECK(cai__gguf_get_u32(g, "llama.block_count", true, &u, &err) == 0 && u == 2);
    CHECK(cai__gguf_get_i64(g, "test.i32", true, &i64, &err) == 0 && i64 == -5);
    CHECK(cai__gguf_get_i64(g, "test.u64", true, &i64, &err) == 0 && i64 == (1ll << 40));
    CHECK(cai__gguf_get_f32(g, "test.f32", true, &f, &err) == 0 && f == 0.25f);
    CHECK(cai__gguf_get_bool(g, "test.bool", true, &b, &err) == 0 && b);
    CHECK(cai__gguf_get_str(g, "test.bytes", true, &s, &err) == 0 && s.len == 3 &&
          memcmp(s.ptr, "a\0b", 3) == 0);
    const struct cai_gguf_kv *kv;
    CHECK(cai__gguf_get_arr(g, "tokenizer.ggml.tokens", true, CAI_GGUF_STRING, &kv, &err) == 0 &&
          kv->arr_n == 3 && cai__gguf_str_eq(cai__gguf_arr_str(kv, 1), "hello") &&
          cai__gguf_arr_str(kv, 2).len == 0);
    CHECK(cai__gguf_get_arr(g, "tokenizer.ggml.scores", true, CAI_GGUF_F32, &kv, &err) == 0 &&
          cai__gguf_arr_f64(kv, 1) == -1.5);
    CHECK(cai__gguf_get_u32(g, "general.alignment", true, &u, &err) == 0 &&
          u == CAI_CAM_DEFAULT_ALIGNMENT);

    const struct cai_gguf_tensor *ta = cai__gguf_find_tensor(g, "a.weight");
    const struct cai_gguf_tensor *tb = cai__gguf_find_tensor(g, "b.weight");
    const struct cai_gguf_tensor *tq = cai__gguf_find_tensor(g, "q.weight");
    const struct cai_gguf_tensor *te = cai__gguf_find_tensor(g, "blk.0.ffn_up_exps.weight");
    CHECK(ta && tb && tq && te);
    if (ta && tb && tq && te) {
        CHECK(ta->n_bytes == sizeof(t_a) && memcmp(ta->data, t_a, sizeof(t_a)) == 0);
        CHECK(tb->n_bytes == sizeof(t_b) && memcmp(tb->data, t_b, sizeof(t_b)) == 0);
        CHECK(tq->n_bytes == sizeof(t_q) && memcmp(tq->data, t_q, sizeof(t_q)) == 0);
        CHECK(tq->ne[0] == 64 && tq->ne[1] == 2 && tq->type == CAI_TYPE_Q8_0);
        CHECK(te->n_dims == 3 && te->ne[2] == 2);
        /* Page-aligned in the file, which is page-aligned in memory. */
        for (uint64_t i = 0; i < g->n_tensors; i++)
            CHECK(((uintptr_t)g->tensors[i].data - (uintptr_t)g->base) % h.alignment == 0);
        struct cai_cam_entry e;
        CHECK(cai__cam_entry(g, 3, &e) && e.flags == CAI_CAM_FLAG_EXPERT_MAJOR);
        CHECK(cai__cam_entry(g, 0, &e) && e.flags == 0 && e.layout == 0 &&
              e.checksum == cai__xxh64(t_a, sizeof(t_a), 0));
        CHECK(!cai__cam_entry(g, 4, &e));
    }
    struct cai_cam_verify_result r;
    CHECK(cai__cam_verify(g, NULL, NULL, &r, &err) == 0);
    CHECK(r.n_tensors == 4 && r.n_bad == 0 && r.meta_ok && r.padding_ok);
    cai__gguf_close(g);

    /* Smallest alignment and a GGUF file: cai__cam_header says no. */
    w = small_writer(4096);
    CHECK(cai__cam_writer_write(w, path, NULL, NULL, &err) == 0);
    cai__cam_writer_free(w);
    CHECK(cai__cam_open(&g, path, &err) == 0 && cai__cam_header(g, &h) && h.alignment == 4096);
    cai__gguf_close(g);
    unlink(path);
}

static void test_empty_model(void)
{
    char path[256];
    struct cai_error err;
    struct cai_cam_writer *w;
    struct cai_gguf *g;
    tmp_path(path, sizeof(path), "empty");
    CHECK(cai__cam_writer_new(&w, &err) == 0);
    CHECK(cai__cam_writer_write(w, path, NULL, NULL, &err) == 0);
    cai__cam_writer_free(w);
    int rc = cai__cam_open(&g, path, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(g->n_tensors == 0 && g->n_kv == 1);
        CHECK(cai__cam_verify(g, NULL, NULL, NULL, &err) == 0);
        cai__gguf_close(g);
    }
    unlink(path);
}

static void test_writer_errors(void)
{
    struct cai_error err;
    struct cai_cam_writer *w;
    char path[256];
    int64_t ne[] = {33, 1};
    CHECK(cai__cam_writer_new(&w, &err) == 0);
    CHECK(cai__cam_writer_set_alignment(w, 1000, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_set_alignment(w, 2048, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_u32(w, "general.alignment", 32, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_u32(w, "k", 1, &err) == 0);
    CHECK(cai__cam_writer_add_u32(w, "k", 2, &err) == CAI_EINVAL && has(err.msg, "duplicate"));
    CHECK(cai__cam_writer_add_u32(w, "", 2, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_raw(w, "t", 99, "", 0, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_arr(w, "s", CAI_GGUF_STRING, NULL, 0, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_tensor(w, "q", 2, ne, CAI_TYPE_Q8_0, t_q, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_tensor(w, "x", 2, ne, 77, t_q, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_tensor(w, "x", 5, ne, CAI_TYPE_F32, t_a, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_tensor(w, "x", 1, ne, CAI_TYPE_F32, NULL, &err) == CAI_EINVAL);
    CHECK(cai__cam_writer_add_tensor(w, "x", 1, ne, CAI_TYPE_F32, t_a, &err) == 0);
    CHECK(cai__cam_writer_add_tensor(w, "x", 1, ne, CAI_TYPE_F32, t_a, &err) == CAI_EINVAL);
    char long_name[80];
    memset(long_name, 'n', 65);
    long_name[65] = '\0';
    CHECK(cai__cam_writer_add_tensor(w, long_name, 1, ne, CAI_TYPE_F32, t_a, &err) == CAI_EINVAL);

    /* A missing folder: a clear error, nothing created. */
    CHECK(cai__cam_writer_write(w, "/nonexistent-dir/x.coreaimodel", NULL, NULL, &err) ==
          CAI_EIO);
    CHECK(has(err.msg, "/nonexistent-dir"));

    /* A failing tensor source: an existing file stays as it was. */
    tmp_path(path, sizeof(path), "fail");
    write_all_file(path, (const uint8_t *)"old", 3);
    int64_t nb[] = {32};
    CHECK(cai__cam_writer_add_tensor_fn(w, "b", 1, nb, CAI_TYPE_F16, fill_fail, NULL, &err) == 0);
    CHECK(cai__cam_writer_write(w, path, NULL, NULL, &err) == CAI_EIO);
    CHECK(has(err.msg, "source exploded"));
    size_t n;
    uint8_t *old = read_all(path, &n);
    CHECK(old && n == 3 && memcmp(old, "old", 3) == 0);
    cai__free(old);
    CHECK(no_temp_left(path));
    unlink(path);
    cai__cam_writer_free(w);
}

/* In a child: a file-size limit below the file's size, SIGXFSZ ignored as
 * the tools do. The write must fail with EFBIG's message, leaving nothing. */
static void test_file_size_limit(void)
{
    char path[256];
    tmp_path(path, sizeof(path), "fsize");
    unlink(path);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {.rlim_cur = 20000, .rlim_max = 20000};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(3);
        struct cai_error err;
        struct cai_cam_writer *w = small_writer(0); /* ~82 KB */
        int rc = cai__cam_writer_write(w, path, NULL, NULL, &err);
        cai__cam_writer_free(w);
        _exit(rc == CAI_EIO && strstr(err.msg, "ulimit -f") ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(!file_exists(path));
    CHECK(no_temp_left(path));
}

/* ---- corrupt files ------------------------------------------------------------ */

static uint8_t *small_file(size_t *n)
{
    char path[256];
    struct cai_error err;
    tmp_path(path, sizeof(path), "small");
    struct cai_cam_writer *w = small_writer(4096);
    CHECK(cai__cam_writer_write(w, path, NULL, NULL, &err) == 0);
    cai__cam_writer_free(w);
    uint8_t *b = read_all(path, n);
    unlink(path);
    return b;
}

static int open_buf(const uint8_t *b, size_t n, struct cai_error *err)
{
    struct cai_gguf *g = (struct cai_gguf *)1;
    int rc = cai__cam_open_buffer(&g, b, n, "bad.coreaimodel", err);
    if (rc == 0)
        cai__gguf_close(g);
    else
        CHECK(g == NULL && err->msg[0]);
    return rc;
}

static void reheader(uint8_t *b, void (*edit)(struct cai_cam_header *))
{
    struct cai_cam_header h;
    memset(&h, 0, sizeof(h));
    h.version_major = (uint16_t)(b[8] | b[9] << 8);
    h.version_minor = (uint16_t)(b[10] | b[11] << 8);
    uint64_t f[12];
    for (int i = 0; i < 12; i++) {
        f[i] = 0;
        for (int k = 0; k < 8; k++)
            f[i] |= (uint64_t)b[24 + 8 * i + k] << (8 * k);
    }
    h.header_bytes = (uint32_t)(b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24);
    h.alignment = (uint32_t)(b[16] | b[17] << 8 | b[18] << 16 | (uint32_t)b[19] << 24);
    h.checksum_kind = (uint32_t)(b[20] | b[21] << 8 | b[22] << 16 | (uint32_t)b[23] << 24);
    h.file_bytes = f[0];
    h.n_tensors = f[1];
    h.table_offset = f[2];
    h.dir_offset = f[3];
    h.dir_bytes = f[4];
    h.data_offset = f[5];
    h.data_bytes = f[6];
    h.meta_checksum = f[7];
    edit(&h);
    cai__cam_header_encode(&h, b);
}

static void e_major(struct cai_cam_header *h) { h->version_major = 2; }
static void e_minor(struct cai_cam_header *h) { h->version_minor = 7; }
static void e_hbytes(struct cai_cam_header *h) { h->header_bytes = 64; }
static void e_align(struct cai_cam_header *h) { h->alignment = 3000; }
static void e_align_small(struct cai_cam_header *h) { h->alignment = 2048; }
static void e_kind(struct cai_cam_header *h) { h->checksum_kind = 2; }
static void e_size(struct cai_cam_header *h) { h->file_bytes += 1; }
static void e_ntens(struct cai_cam_header *h) { h->n_tensors = UINT64_MAX / 16; }
static void e_ntens1(struct cai_cam_header *h) { h->n_tensors -= 1; }
static void e_table(struct cai_cam_header *h) { h->table_offset = 64; }
static void e_dir(struct cai_cam_header *h) { h->dir_offset += 4096; }
static void e_dirbytes(struct cai_cam_header *h) { h->dir_bytes += 1; }
static void e_dirbytes_huge(struct cai_cam_header *h) { h->dir_bytes = UINT64_MAX - 10; }
static void e_data(struct cai_cam_header *h) { h->data_offset += 4096; }
static void e_databytes(struct cai_cam_header *h) { h->data_bytes -= 1; }
static void e_meta(struct cai_cam_header *h) { h->meta_checksum ^= 1; }

static void test_malformed_headers(void)
{
    size_t n;
    uint8_t *good = small_file(&n);
    CHECK(good != NULL);
    if (!good)
        return;
    uint8_t *b = cai__malloc(n + 8);
    struct cai_error err;
    struct {
        void (*edit)(struct cai_cam_header *);
        int         rc;
        const char *msg;
    } cases[] = {
        {e_major, CAI_EUNSUPPORTED, "version 2.0"},
        {e_minor, 0, ""},
        {e_hbytes, CAI_EFORMAT, "header_bytes"},
        {e_align, CAI_EFORMAT, "alignment 3000"},
        {e_align_small, CAI_EFORMAT, "alignment 2048"},
        {e_kind, CAI_EUNSUPPORTED, "checksum kind"},
        {e_size, CAI_EFORMAT, "truncated"},
        {e_ntens, CAI_EFORMAT, "n_tensors"},
        {e_ntens1, CAI_EFORMAT, "the header 3"},
        {e_table, CAI_EFORMAT, "table_offset"},
        {e_dir, CAI_EFORMAT, "dir_offset"},
        {e_dirbytes, CAI_EFORMAT, "directory is"},
        {e_dirbytes_huge, CAI_EFORMAT, "outside"},
        {e_data, CAI_EFORMAT, "data_offset"},
        {e_databytes, CAI_EFORMAT, "data_bytes"},
        {e_meta, 0, ""}, /* only verify sees it */
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(cases); i++) {
        memcpy(b, good, n);
        reheader(b, cases[i].edit);
        int rc = open_buf(b, n, &err);
        CHECK_MSG(rc == cases[i].rc, "case %zu: rc %d (%s)", i, rc, err.msg);
        if (rc && cases[i].rc)
            CHECK_MSG(has(err.msg, cases[i].msg), "case %zu", i);
    }

    /* A flipped header byte fails the header checksum. */
    memcpy(b, good, n);
    b[30] ^= 0x10;
    CHECK(open_buf(b, n, &err) == CAI_EFORMAT && has(err.msg, "header checksum"));
    /* Not our magic; too short for a header. */
    memcpy(b, good, n);
    b[1] = 'X';
    CHECK(open_buf(b, n, &err) == CAI_EFORMAT && has(err.msg, "bad magic"));
    CHECK(open_buf(good, 100, &err) == CAI_EFORMAT && has(err.msg, "truncated"));
    CHECK(open_buf(good, 3, &err) == CAI_EFORMAT && has(err.msg, "bad magic"));
    /* Bytes appended. */
    memcpy(b, good, n);
    memset(b + n, 0, 8);
    CHECK(open_buf(b, n + 8, &err) == CAI_EFORMAT && has(err.msg, "appended"));

    /* Table entries that disagree with the directory, an unknown layout,
     * unknown flags. Entry 1 starts at byte 128 + 32. */
    struct {
        size_t      off;
        uint8_t     val;
        int         rc;
        const char *msg;
    } ent[] = {
        {128 + 32 + 0, 0x01, CAI_EFORMAT, "disagrees"},     /* offset */
        {128 + 32 + 8, 0x01, CAI_EFORMAT, "disagrees"},     /* n_bytes */
        {128 + 32 + 24, 0x01, CAI_EUNSUPPORTED, "layout 1"},
        {128 + 32 + 26, 0x04, CAI_EUNSUPPORTED, "flags"},
        {128 + 32 + 28, 0x04, 0, ""},                       /* reserved: ignored */
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(ent); i++) {
        memcpy(b, good, n);
        b[ent[i].off] ^= ent[i].val;
        int rc = open_buf(b, n, &err);
        CHECK_MSG(rc == ent[i].rc, "entry case %zu: rc %d (%s)", i, rc, err.msg);
        if (rc)
            CHECK(has(err.msg, ent[i].msg));
    }
    cai__free(b);
    cai__free(good);
}

/* Every prefix of a valid file is refused cleanly. */
static void test_truncation(void)
{
    size_t n;
    uint8_t *good = small_file(&n);
    if (!good)
        return;
    struct cai_error err;
    for (size_t len = 0; len < n; len += (len < 20000 ? 1 : 97)) {
        uint8_t *b = cai__malloc(len ? len : 1);
        memcpy(b, good, len);
        int rc = open_buf(b, len, &err);
        CHECK_MSG(rc == CAI_EFORMAT, "length %zu accepted", len);
        cai__free(b);
    }
    cai__free(good);
}

/* Directory corruption: every single-byte change inside the directory is
 * either refused by open or caught by verify's meta checksum; none crash. */
static void test_directory_bitflips(void)
{
    size_t n;
    uint8_t *good = small_file(&n);
    if (!good)
        return;
    uint64_t dir_off = 4096, dir_bytes = 0;
    for (int k = 0; k < 8; k++)
        dir_bytes |= (uint64_t)good[56 + k] << (8 * k);
    uint8_t *b = cai__malloc(n);
    int refused = 0, caught = 0;
    for (uint64_t i = 0; i < dir_bytes; i++) {
        memcpy(b, good, n);
        b[dir_off + i] ^= 0x41;
        struct cai_gguf *g;
        struct cai_error err;
        if (cai__cam_open_buffer(&g, b, n, "flip", &err) != 0) {
            refused++;
            continue;
        }
        struct cai_cam_verify_result r;
        if (cai__cam_verify(g, NULL, NULL, &r, &err) != 0 && !r.meta_ok)
            caught++;
        cai__gguf_close(g);
    }
    CHECK_EQ_INT(refused + caught, dir_bytes);
    cai__free(b);
    cai__free(good);
}

static int count_cb(void *user, uint64_t i, const char *name, bool ok, uint64_t done,
                    uint64_t total)
{
    (void)i;
    (void)done;
    (void)total;
    if (!ok && strcmp(name, "q.weight") == 0)
        ++*(int *)user;
    return 0;
}

static void test_verify_detects(void)
{
    size_t n;
    uint8_t *good = small_file(&n);
    if (!good)
        return;
    uint8_t *b = cai__malloc(n);
    struct cai_error err;
    struct cai_gguf *g;
    struct cai_cam_verify_result r;

    /* A flipped tensor byte: open succeeds, verify names the tensor. */
    memcpy(b, good, n);
    CHECK(cai__cam_open_buffer(&g, b, n, "v", &err) == 0);
    const struct cai_gguf_tensor *tq = cai__gguf_find_tensor(g, "q.weight");
    size_t qoff = (size_t)((const uint8_t *)tq->data - b);
    cai__gguf_close(g);
    b[qoff + 5] ^= 1;
    CHECK(cai__cam_open_buffer(&g, b, n, "v", &err) == 0);
    int bad = 0;
    CHECK(cai__cam_verify(g, count_cb, &bad, &r, &err) == CAI_EFORMAT);
    CHECK(bad == 1 && r.n_bad == 1 && r.meta_ok && has(err.msg, "q.weight"));
    cai__gguf_close(g);

    /* Nonzero padding between tensors. */
    memcpy(b, good, n);
    b[qoff - 1] = 7;
    CHECK(cai__cam_open_buffer(&g, b, n, "v", &err) == 0);
    CHECK(cai__cam_verify(g, NULL, NULL, &r, &err) == CAI_EFORMAT && !r.padding_ok &&
          has(err.msg, "padding"));
    cai__gguf_close(g);

    /* A flipped checksum in the table: meta checksum and the tensor fail. */
    memcpy(b, good, n);
    b[128 + 16] ^= 1;
    CHECK(cai__cam_open_buffer(&g, b, n, "v", &err) == 0);
    CHECK(cai__cam_verify(g, NULL, NULL, &r, &err) == CAI_EFORMAT && !r.meta_ok && r.n_bad == 1);
    cai__gguf_close(g);

    /* A GGUF directory is not a .coreaimodel. */
    struct cai_gguf_writer *gw;
    uint8_t *gb;
    size_t gn;
    CHECK(cai__gguf_writer_new(&gw, 3, &err) == 0);
    CHECK(cai__gguf_writer_add_str(gw, "general.architecture", "llama", &err) == 0);
    CHECK(cai__gguf_writer_serialize(gw, &gb, &gn, &err) == 0);
    CHECK(cai__gguf_open_buffer(&g, gb, gn, "g.gguf", &err) == 0);
    struct cai_cam_header h;
    CHECK(!cai__cam_header(g, &h));
    CHECK(cai__cam_verify(g, NULL, NULL, NULL, &err) == CAI_EINVAL);
    CHECK(!cai__cam_is_file(gb, gn));
    cai__gguf_close(g);
    CHECK(open_buf(gb, gn, &err) == CAI_EFORMAT && has(err.msg, "not a .coreaimodel"));
    cai__free(gb);
    cai__gguf_writer_free(gw);
    cai__free(b);
    cai__free(good);
}

/* ---- GGUF import ---------------------------------------------------------------- */

/* Every kv of a equals the same kv of b, byte for byte where it matters. */
static void same_directory(const struct cai_gguf *a, const struct cai_gguf *b)
{
    uint64_t skipped = 0;
    for (uint64_t i = 0; i < a->n_kv; i++) {
        const struct cai_gguf_kv *x = &a->kv[i];
        if (cai__gguf_str_eq(x->key, "general.alignment")) {
            skipped++;
            continue;
        }
        const struct cai_gguf_kv *y = &b->kv[i - skipped];
        CHECK(x->key.len == y->key.len && memcmp(x->key.ptr, y->key.ptr, x->key.len) == 0);
        CHECK(x->type == y->type);
        if (x->type == CAI_GGUF_STRING) {
            CHECK(x->str.len == y->str.len && memcmp(x->str.ptr, y->str.ptr, x->str.len) == 0);
        } else if (x->type == CAI_GGUF_ARRAY) {
            CHECK(x->arr_type == y->arr_type && x->arr_n == y->arr_n);
            if (x->arr_type == CAI_GGUF_STRING) {
                for (uint64_t k = 0; k < x->arr_n; k++) {
                    struct cai_gguf_str p = cai__gguf_arr_str(x, k), q = cai__gguf_arr_str(y, k);
                    if (p.len != q.len || memcmp(p.ptr, q.ptr, p.len) != 0) {
                        CHECK_MSG(0, "array %llu element %llu differs", (unsigned long long)i,
                                  (unsigned long long)k);
                        break;
                    }
                }
            } else if (x->arr_type != CAI_GGUF_ARRAY) {
                for (uint64_t k = 0; k < x->arr_n; k++)
                    if (cai__gguf_arr_f64(x, k) != cai__gguf_arr_f64(y, k)) {
                        CHECK_MSG(0, "array element differs");
                        break;
                    }
            }
        } else {
            CHECK(x->u64 == y->u64 && x->i64 == y->i64);
            CHECK(x->f64 == y->f64 || (x->f64 != x->f64 && y->f64 != y->f64));
        }
    }
    CHECK_EQ_INT(a->n_tensors, b->n_tensors);
    for (uint64_t i = 0; i < a->n_tensors && i < b->n_tensors; i++) {
        const struct cai_gguf_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        CHECK(x->name.len == y->name.len && memcmp(x->name.ptr, y->name.ptr, x->name.len) == 0);
        CHECK(x->type == y->type && x->n_dims == y->n_dims && x->n_bytes == y->n_bytes);
        CHECK(memcmp(x->ne, y->ne, sizeof(x->ne)) == 0);
        CHECK(memcmp(x->data, y->data, (size_t)x->n_bytes) == 0);
    }
}

static void test_import_gguf(void)
{
    char gpath[256], cpath[256];
    struct cai_error err;
    struct cai_gguf_writer *gw;
    snprintf(gpath, sizeof(gpath), "/tmp/cai_test_cam_%ld.gguf", (long)getpid());
    tmp_path(cpath, sizeof(cpath), "import");
    CHECK(cai__gguf_writer_new(&gw, 3, &err) == 0);
    CHECK(cai__gguf_writer_set_alignment(gw, 64, &err) == 0);
    CHECK(cai__gguf_writer_add_str(gw, "general.architecture", "llama", &err) == 0);
    CHECK(cai__gguf_writer_add_f64(gw, "x.f64", -0.125, &err) == 0);
    CHECK(cai__gguf_writer_add_i8(gw, "x.i8", -3, &err) == 0);
    CHECK(cai__gguf_writer_add_u16(gw, "x.u16", 65535, &err) == 0);
    CHECK(cai__gguf_writer_add_i64(gw, "x.i64", INT64_MIN, &err) == 0);
    /* A nested array: [[1, 2], [3]] of u8. */
    uint8_t nested[] = {9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,          /* array of 2 arrays */
                        0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2,    /* u8 x2 */
                        0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3};      /* u8 x1 */
    CHECK(cai__gguf_writer_add_raw(gw, "x.nested", CAI_GGUF_ARRAY, nested, sizeof(nested), &err) ==
          0);
    const char *strs[] = {"a", "bc", ""};
    CHECK(cai__gguf_writer_add_arr_str(gw, "x.strs", strs, 3, &err) == 0);
    int64_t ne[] = {64, 2};
    CHECK(cai__gguf_writer_add_tensor(gw, "q.weight", 2, ne, CAI_TYPE_Q8_0, t_q, sizeof(t_q),
                                      &err) == 0);
    CHECK(cai__gguf_writer_add_tensor(gw, "a.weight", 1, ne, CAI_TYPE_F32, t_a, 256, &err) == 0);
    CHECK(cai__gguf_writer_write_file(gw, gpath, &err) == 0);
    cai__gguf_writer_free(gw);

    int rc = cai__convert_gguf(gpath, cpath, 0, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    struct cai_gguf *a, *b;
    CHECK(cai__gguf_open(&a, gpath, &err) == 0);
    rc = cai__cam_open(&b, cpath, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        same_directory(a, b);
        struct cai_gguf_str s;
        CHECK(cai__gguf_get_str(b, "coreai.quantization.method", true, &s, &err) == 0 &&
              cai__gguf_str_eq(s, "gguf"));
        CHECK(cai__gguf_get_str(b, "coreai.source.format", true, &s, &err) == 0 &&
              cai__gguf_str_eq(s, "gguf"));
        CHECK(cai__cam_verify(b, NULL, NULL, NULL, &err) == 0);
        /* Re-importing the .coreaimodel gives the same directory again. */
        char c2[300];
        snprintf(c2, sizeof(c2), "%s.2", cpath);
        CHECK(cai__convert_gguf(cpath, c2, 4096, NULL, NULL, &err) == 0);
        struct cai_gguf *c;
        CHECK(cai__cam_open(&c, c2, &err) == 0);
        same_directory(b, c);
        cai__gguf_close(c);
        unlink(c2);
        cai__gguf_close(b);
    }
    cai__gguf_close(a);
    /* A missing input and a non-GGUF input: clear errors, no output. */
    unlink(cpath);
    CHECK(cai__convert_gguf("/nonexistent.gguf", cpath, 0, NULL, NULL, &err) == CAI_EIO);
    write_all_file(gpath, (const uint8_t *)"hello world, not a model", 24);
    CHECK(cai__convert_gguf(gpath, cpath, 0, NULL, NULL, &err) == CAI_EFORMAT);
    CHECK(!file_exists(cpath));
    unlink(gpath);
}

/* Resident pages of this process (from /proc/self/statm), in KiB. */
static long rss_kib(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Best of n opens: seconds and resident growth while open. */
static void time_open(const char *path, bool cam, double *best_s, long *rss_delta)
{
    *best_s = 1e9;
    *rss_delta = 0;
    for (int i = 0; i < 7; i++) {
        struct cai_gguf *g;
        struct cai_error err;
        long r0 = rss_kib();
        int64_t t0 = cai__now_ns();
        int rc = cam ? cai__cam_open(&g, path, &err) : cai__gguf_open(&g, path, &err);
        int64_t t1 = cai__now_ns();
        long r1 = rss_kib();
        CHECK(rc == 0);
        if (rc)
            return;
        *best_s = CAI_MIN(*best_s, (double)(t1 - t0) * 1e-9);
        *rss_delta = i == 0 ? r1 - r0 : CAI_MIN(*rss_delta, r1 - r0);
        cai__gguf_close(g);
    }
}

/* Resident pages of mapped files (RssFile), KiB. */
static long rss_file_kib(void)
{
    long v = -1;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "RssFile: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* The same through the public API (tokenizer and all): the least growth of
 * the file-backed resident set over 5 opens, after one warm-up open. Both
 * files build the same tokenizer on the heap, so the mapped pages are what
 * the formats change (and the heap's growth depends on the allocator: ASan
 * keeps freed blocks in quarantine). */
static long model_open_rss(const char *path)
{
    long best = -1;
    for (int i = 0; i < 6; i++) {
        struct cai_model *m;
        long r0 = rss_file_kib();
        if (r0 < 0 || cai_model_open(&m, path, NULL, NULL) != 0)
            return -1;
        long d = rss_file_kib() - r0;
        cai_model_close(m);
        if (i > 0)
            best = best < 0 ? d : CAI_MIN(best, d);
    }
    return best;
}

/* Logits of a short prompt through the public API; NULL if it cannot open. */
static float *run_logits(const char *path, int *n_vocab, char *why, size_t cap)
{
    struct cai_model *m;
    struct cai_session *s;
    struct cai_error err;
    struct cai_model_params mp = cai_model_params_default();
    if (cai_model_open(&m, path, &mp, &err) != 0) {
        snprintf(why, cap, "%s", err.msg);
        return NULL;
    }
    struct cai_model_info info;
    cai_model_get_info(m, &info);
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 64;
    sp.n_threads = 2;
    int32_t toks[32];
    int n = cai_tokenize(m, "The capital of France is", 24, true, false, toks, 32);
    float *out = NULL;
    if (cai_session_new(&s, m, &sp, &err) == 0) {
        if (n > 0 && n <= 32 && cai_session_decode(s, toks, n, true) == 0) {
            out = cai__malloc_array((size_t)n * (size_t)info.n_vocab, sizeof(float));
            for (int i = 0; out && i < n; i++)
                memcpy(out + (size_t)i * (size_t)info.n_vocab, cai_session_logits(s, i),
                       (size_t)info.n_vocab * sizeof(float));
            *n_vocab = info.n_vocab * n;
        }
        cai_session_free(s);
    }
    cai_model_close(m);
    return out;
}

/* The real SmolLM2 GGUF (when present): import, compare, verify, open cost,
 * and bit-identical logits from the engine on both files. */
static void test_import_real_model(void)
{
    const char *gpath = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    char cpath[256];
    struct cai_error err;
    if (!file_exists(gpath))
        SKIP("%s not present (scripts/get_model.sh fetches it)", gpath);
    tmp_path(cpath, sizeof(cpath), "smollm2");
    int rc = cai__convert_gguf(gpath, cpath, 0, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    struct cai_gguf *a, *b;
    CHECK(cai__gguf_open(&a, gpath, &err) == 0);
    rc = cai__cam_open(&b, cpath, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        same_directory(a, b);
        CHECK(cai__cam_verify(b, NULL, NULL, NULL, &err) == 0);
        cai__gguf_close(b);
    }
    cai__gguf_close(a);

    double tg, tc;
    long rg, rcam;
    time_open(gpath, false, &tg, &rg);
    time_open(cpath, true, &tc, &rcam);
    printf("  open (best of 7): GGUF %.3f ms, +%ld KiB resident; .coreaimodel %.3f ms, +%ld KiB "
           "resident\n", tg * 1e3, rg, tc * 1e3, rcam);
    /* The open times are printed, not checked: speed belongs to benchmarks
     * (a timed check failed under ASan on this shared machine). What makes
     * the open cheap is checked: the pages it leaves resident. */
    /* The header and tensor table add one aligned region before the
     * directory; with the kernel's fault-around that is a constant 64-128
     * KiB of clean page cache, whatever the model's size. */
    CHECK(rcam <= rg + 256);
    /* A whole model open: the reader gives the header and table pages back
     * once parsed (cai__cam_open), so it keeps no more of its file resident
     * than the GGUF does. */
    long mc = model_open_rss(cpath), mg = model_open_rss(gpath);
    printf("  cai_model_open: GGUF +%ld KiB of the file resident, .coreaimodel +%ld KiB\n", mg,
           mc);
    CHECK(mg > 0 && mc > 0 && mc <= mg);

    int na = 0, nb = 0;
    char why[256] = "";
    float *la = run_logits(gpath, &na, why, sizeof(why));
    float *lb = run_logits(cpath, &nb, why, sizeof(why));
    CHECK(la != NULL);
    CHECK_MSG(lb != NULL, "engine cannot run the .coreaimodel: %s", why);
    if (la && lb) {
        CHECK(na == nb && memcmp(la, lb, (size_t)na * sizeof(float)) == 0);
        printf("  logits: .coreaimodel and GGUF bit-identical over %d values\n", na);
    } else if (la) {
        printf("  logits: cai_model_open does not read .coreaimodel yet (%s)\n", why);
    }
    cai__free(la);
    cai__free(lb);
    unlink(cpath);
}

/* ---- fuzz seeds ------------------------------------------------------------------ */

static void write_corpus(const char *dir)
{
    char path[512];
    size_t n;
    uint8_t *b = small_file(&n);
    snprintf(path, sizeof(path), "%s/small.coreaimodel", dir);
    write_all_file(path, b, n);
    cai__free(b);
    struct cai_cam_writer *w;
    struct cai_error err;
    char tmp[256];
    tmp_path(tmp, sizeof(tmp), "seed");
    CHECK(cai__cam_writer_new(&w, &err) == 0);
    cai__cam_writer_set_alignment(w, 4096, &err);
    cai__cam_writer_add_str(w, "general.architecture", "llama", &err);
    cai__cam_writer_write(w, tmp, NULL, NULL, &err);
    cai__cam_writer_free(w);
    b = read_all(tmp, &n);
    snprintf(path, sizeof(path), "%s/empty.coreaimodel", dir);
    write_all_file(path, b, n);
    cai__free(b);
    unlink(tmp);
}

int main(void)
{
    RUN(test_xxh64_vectors);
    RUN(test_roundtrip);
    RUN(test_empty_model);
    RUN(test_writer_errors);
    RUN(test_file_size_limit);
    RUN(test_malformed_headers);
    RUN(test_truncation);
    RUN(test_directory_bitflips);
    RUN(test_verify_detects);
    RUN(test_import_gguf);
    RUN(test_import_real_model);
    const char *corpus = getenv("COREAI_CAM_CORPUS");
    if (corpus)
        write_corpus(corpus);
    return test_done();
}
