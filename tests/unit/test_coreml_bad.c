/* test_coreml_bad.c: hostile .mlmodel input and the protobuf reader.
 *
 * A tiny protobuf writer below builds a valid tree-ensemble model byte by
 * byte; each test breaks one thing (truncation, an 11-byte varint, a length
 * past the end, a wrong wire type, nested pipelines, tree children out of
 * range, cycles, feature indexes out of range) and expects a clear error that
 * names the problem, never a crash. The fuzz corpus is replayed at the end. */
#include <dirent.h>
#include <stdint.h>

#include "coreml.h"
#include "format/protobuf.h"
#include "test.h"

/* ---- a minimal protobuf writer ------------------------------------------------ */

struct buf {
    uint8_t *p;
    size_t   n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void varint(struct buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, t, n);
}

static void f_varint(struct buf *b, uint32_t num, uint64_t v)
{
    varint(b, (uint64_t)num << 3);
    varint(b, v);
}

static void f_double(struct buf *b, uint32_t num, double v)
{
    varint(b, ((uint64_t)num << 3) | 1);
    put(b, &v, 8);
}

static void f_bytes(struct buf *b, uint32_t num, const void *d, size_t n)
{
    varint(b, ((uint64_t)num << 3) | 2);
    varint(b, n);
    put(b, d, n);
}

static void f_msg(struct buf *b, uint32_t num, struct buf *sub)
{
    f_bytes(b, num, sub->p, sub->n);
    free(sub->p);
    memset(sub, 0, sizeof(*sub));
}

static void f_str(struct buf *b, uint32_t num, const char *s)
{
    f_bytes(b, num, s, strlen(s));
}

/* ---- model builders ---------------------------------------------------------------- */

/* Description: input "x" multiarray double [3], output "y" double. */
static void description(struct buf *model)
{
    struct buf d = {0}, in = {0}, ty = {0}, arr = {0}, out = {0}, oty = {0}, dbl = {0};
    f_varint(&arr, 1, 3);
    f_varint(&arr, 2, 65600);
    f_msg(&ty, 5, &arr);
    f_str(&in, 1, "x");
    f_msg(&in, 3, &ty);
    f_msg(&d, 1, &in);
    f_bytes(&oty, 2, "", 0);
    (void)dbl;
    f_str(&out, 1, "y");
    f_msg(&out, 3, &oty);
    f_msg(&d, 10, &out);
    f_msg(model, 2, &d);
}

struct tn {
    int    tree, id, op; /* op 6 = leaf */
    int    feat;
    double thr;
    int    yes, no;
    bool   miss_yes;
    double leaf;
};

static void tree_model(struct buf *model, const struct tn *nodes, size_t n)
{
    struct buf te = {0}, reg = {0};
    f_varint(model, 1, 1);
    description(model);
    for (size_t i = 0; i < n; i++) {
        struct buf nd = {0};
        f_varint(&nd, 1, (uint64_t)nodes[i].tree);
        f_varint(&nd, 2, (uint64_t)nodes[i].id);
        f_varint(&nd, 3, (uint64_t)nodes[i].op);
        if (nodes[i].op == 6) {
            struct buf ev = {0};
            f_varint(&ev, 1, 0);
            f_double(&ev, 2, nodes[i].leaf);
            f_msg(&nd, 20, &ev);
        } else {
            f_varint(&nd, 10, (uint64_t)nodes[i].feat);
            f_double(&nd, 11, nodes[i].thr);
            f_varint(&nd, 12, (uint64_t)nodes[i].yes);
            f_varint(&nd, 13, (uint64_t)nodes[i].no);
            if (nodes[i].miss_yes)
                f_varint(&nd, 14, 1);
        }
        f_msg(&te, 1, &nd);
    }
    f_varint(&te, 2, 1);
    f_msg(&reg, 1, &te);
    f_msg(model, 302, &reg);
}

static const struct tn good_tree[] = {
    {0, 0, 0, 0, 0.5, 1, 2, true, 0},  {0, 1, 6, 0, 0, 0, 0, false, 10.0},
    {0, 2, 6, 0, 0, 0, 0, false, 20.0}, {1, 0, 1, 2, 0.0, 1, 2, false, 0},
    {1, 1, 6, 0, 0, 0, 0, false, 1.0},  {1, 2, 6, 0, 0, 0, 0, false, 2.0},
};

static int open_buf(struct buf *b, struct cml_model **m, struct cai_error *err)
{
    memset(err, 0, sizeof(*err));
    return cml_model_open_buffer(m, b->p, b->n, err);
}

static double predict3(struct cml_model *m, double a, double b, double c)
{
    struct cml_ctx *ctx;
    double x[3] = {a, b, c}, y = -1;
    if (cml_ctx_new(&ctx, m, NULL) != 0)
        return -1;
    struct cml_batch_out o = {.values = &y};
    if (cml_predict_batch(ctx, x, 1, 3, &o) != 1)
        y = -2;
    cml_ctx_free(ctx);
    return y;
}

/* The builder's model is valid and evaluates as designed, NaN routing included. */
static void test_good_model(void)
{
    struct buf b = {0};
    struct cml_model *m;
    struct cai_error err;
    tree_model(&b, good_tree, 6);
    int rc = open_buf(&b, &m, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK_NEAR(predict3(m, 0.0, 0, -1), 10 + 1, 0);  /* x1 <= .5: 10; x2 < 0: 1 */
        CHECK_NEAR(predict3(m, 1.0, 0, 0.0), 20 + 2, 0); /* x2 < 0 false */
        CHECK_NEAR(predict3(m, (double)NAN, 0, (double)NAN), 10 + 2, 0); /* NaN: tree 0 true, tree 1 false */
        cml_model_close(m);
    }
    free(b.p);
}

static void test_truncated(void)
{
    struct buf b = {0};
    struct cml_model *m;
    struct cai_error err;
    tree_model(&b, good_tree, 6);
    size_t n_fail = 0;
    for (size_t n = 0; n < b.n; n++) {
        memset(&err, 0, sizeof(err));
        int rc = cml_model_open_buffer(&m, b.p, n, &err);
        if (rc == 0) {
            cml_model_close(m);
            continue;
        }
        n_fail++;
        CHECK(rc < 0 && err.msg[0] != '\0');
    }
    /* Every proper prefix is rejected: the type field comes last. */
    CHECK_EQ_INT(n_fail, b.n);
    memset(&err, 0, sizeof(err));
    CHECK(cml_model_open_buffer(&m, b.p, b.n / 2, &err) < 0);
    CHECK_MSG(strstr(err.msg, "truncated") || strstr(err.msg, "exceeds") ||
                  strstr(err.msg, "no model type"), "%s", err.msg);
    free(b.p);
}

static void test_varint_too_long(void)
{
    uint8_t d[16] = {0x08};
    memset(d + 1, 0x80, 11);
    d[12] = 0x01;
    struct cml_model *m;
    struct cai_error err = {0};
    CHECK_EQ_INT(cml_model_open_buffer(&m, d, 13, &err), CAI_EFORMAT);
    CHECK_MSG(strstr(err.msg, "longer than 10 bytes") != NULL, "%s", err.msg);
    CHECK(m == NULL);
    /* A 10-byte varint whose last byte overflows 64 bits. */
    uint8_t e[12] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    CHECK_EQ_INT(cml_model_open_buffer(&m, e, 11, &err), CAI_EFORMAT);
    /* The raw reader on the same bytes. */
    const uint8_t *p = d + 1;
    uint64_t v;
    CHECK_EQ_INT(cml__pb_varint(&p, d + 13, &v), CAI_EFORMAT);
}

static void test_length_beyond_buffer(void)
{
    struct buf b = {0};
    struct cml_model *m;
    struct cai_error err = {0};
    f_varint(&b, 1, 1);
    varint(&b, (2 << 3) | 2);
    varint(&b, 1000);
    put(&b, "abc", 3);
    CHECK_EQ_INT(cml_model_open_buffer(&m, b.p, b.n, &err), CAI_EFORMAT);
    CHECK_MSG(strstr(err.msg, "length 1000 exceeds the 3 bytes left") != NULL, "%s", err.msg);
    /* A huge length that would wrap a pointer. */
    b.n = 0;
    varint(&b, (2 << 3) | 2);
    varint(&b, UINT64_MAX);
    CHECK_EQ_INT(cml_model_open_buffer(&m, b.p, b.n, &err), CAI_EFORMAT);
    free(b.p);
}

static void test_wrong_wire_type(void)
{
    struct buf b = {0};
    struct cml_model *m;
    struct cai_error err = {0};
    f_double(&b, 1, 1.0); /* specificationVersion as a double */
    CHECK_EQ_INT(cml_model_open_buffer(&m, b.p, b.n, &err), CAI_EFORMAT);
    CHECK_MSG(strstr(err.msg, "Model.specificationVersion") && strstr(err.msg, "wrong wire type"),
              "%s", err.msg);
    b.n = 0;
    f_varint(&b, 2, 5); /* description as a varint */
    CHECK_EQ_INT(cml_model_open_buffer(&m, b.p, b.n, &err), CAI_EFORMAT);
    CHECK_MSG(strstr(err.msg, "Model.description") != NULL, "%s", err.msg);
    b.n = 0;
    varint(&b, (7 << 3) | 3); /* start-group */
    CHECK_EQ_INT(cml_model_open_buffer(&m, b.p, b.n, &err), CAI_EFORMAT);
    CHECK_MSG(strstr(err.msg, "wire type 3") != NULL, "%s", err.msg);
    b.n = 0;
    varint(&b, 0); /* field number 0 */
    varint(&b, 0);
    CHECK_EQ_INT(cml_model_open_buffer(&m, b.p, b.n, &err), CAI_EFORMAT);
    CHECK_MSG(strstr(err.msg, "invalid field number") != NULL, "%s", err.msg);
    /* Tree node threshold written as a varint. */
    b.n = 0;
    struct tn t[3];
    memcpy(t, good_tree, sizeof(t));
    tree_model(&b, t, 3);
    size_t n_good = b.n;
    (void)n_good;
    free(b.p);
}

/* Pipelines nested a thousand deep: refused with a message, no stack blow-up. */
static void test_nesting_bomb(void)
{
    struct buf inner = {0};
    tree_model(&inner, good_tree, 6);
    for (int depth = 0; depth < 1000; depth++) {
        struct buf pl = {0}, model = {0};
        f_msg(&pl, 1, &inner); /* Pipeline.models */
        f_varint(&model, 1, 1);
        description(&model);
        f_msg(&model, 202, &pl);
        inner = model;
    }
    struct cml_model *m;
    struct cai_error err = {0};
    int rc = cml_model_open_buffer(&m, inner.p, inner.n, &err);
    CHECK(rc < 0);
    CHECK_MSG(strstr(err.msg, "deeper than") != NULL, "%s", err.msg);
    free(inner.p);
    memset(&inner, 0, sizeof(inner));

    /* A few levels are fine. */
    tree_model(&inner, good_tree, 6);
    for (int depth = 0; depth < 3; depth++) {
        struct buf pl = {0}, model = {0};
        f_msg(&pl, 1, &inner);
        f_varint(&model, 1, 1);
        description(&model);
        f_msg(&model, 202, &pl);
        inner = model;
    }
    rc = cml_model_open_buffer(&m, inner.p, inner.n, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK_NEAR(predict3(m, 0.0, 0, -1), 11, 0);
        cml_model_close(m);
    }
    free(inner.p);
}

static void expect_tree_error(const struct tn *nodes, size_t n, const char *want)
{
    struct buf b = {0};
    struct cml_model *m;
    struct cai_error err;
    tree_model(&b, nodes, n);
    int rc = open_buf(&b, &m, &err);
    CHECK_EQ_INT(rc, CAI_EFORMAT);
    CHECK_MSG(strstr(err.msg, want) != NULL, "want \"%s\", got \"%s\"", want, err.msg);
    if (rc == 0)
        cml_model_close(m);
    free(b.p);
}

static void test_bad_trees(void)
{
    struct tn t[8];
    /* Child out of range. */
    memcpy(t, good_tree, sizeof(good_tree));
    t[0].yes = 7;
    expect_tree_error(t, 6, "trueChildNodeId 7 is not a node of tree 0");
    /* Child in another tree. */
    memcpy(t, good_tree, sizeof(good_tree));
    t[3].no = 5;
    expect_tree_error(t, 6, "falseChildNodeId 5 is not a node of tree 1");
    /* Cycle through the root: node 1 points back at 0 -> no root. */
    struct tn cyc[] = {{0, 0, 0, 0, 0.5, 1, 2, false, 0},
                       {0, 1, 0, 0, 0.5, 0, 2, false, 0},
                       {0, 2, 6, 0, 0, 0, 0, false, 1}};
    expect_tree_error(cyc, 3, "more than one parent");
    /* A cycle away from the root: 3 -> 4 -> 3. */
    struct tn cyc2[] = {{0, 0, 0, 0, 0.5, 1, 2, false, 0}, {0, 1, 6, 0, 0, 0, 0, false, 1},
                        {0, 2, 6, 0, 0, 0, 0, false, 2},   {0, 3, 0, 0, 0.5, 4, 1, false, 0},
                        {0, 4, 0, 0, 0.5, 3, 2, false, 0}};
    expect_tree_error(cyc2, 5, "more than one parent");
    struct tn cyc3[] = {{0, 0, 0, 0, 0.5, 1, 2, false, 0}, {0, 1, 6, 0, 0, 0, 0, false, 1},
                        {0, 2, 6, 0, 0, 0, 0, false, 2},   {0, 3, 0, 0, 0.5, 4, 4, false, 0},
                        {0, 4, 0, 0, 0.5, 3, 3, false, 0}};
    expect_tree_error(cyc3, 5, "not reachable from the root");
    /* Self loop. */
    struct tn self[] = {{0, 0, 0, 0, 0.5, 0, 1, false, 0}, {0, 1, 6, 0, 0, 0, 0, false, 1}};
    expect_tree_error(self, 2, "more than one parent");
    /* Two roots. */
    struct tn roots[] = {{0, 0, 6, 0, 0, 0, 0, false, 1}, {0, 1, 6, 0, 0, 0, 0, false, 2}};
    expect_tree_error(roots, 2, "second root");
    /* Feature index beyond the 3 inputs. */
    memcpy(t, good_tree, sizeof(good_tree));
    t[0].feat = 3;
    expect_tree_error(t, 6, "branchFeatureIndex 3 out of range (3 input features)");
    /* Unknown behavior, duplicate id. */
    memcpy(t, good_tree, sizeof(good_tree));
    t[1].op = 9;
    expect_tree_error(t, 6, "unknown nodeBehavior 9");
    memcpy(t, good_tree, sizeof(good_tree));
    t[2].id = 1;
    expect_tree_error(t, 6, "duplicate node id");
}

/* Unknown fields are skipped; packed and unpacked repeated numbers both read. */
static void test_unknown_fields_and_packing(void)
{
    struct buf b = {0};
    struct cml_model *m;
    struct cai_error err;
    f_str(&b, 99, "future field");
    f_varint(&b, 12345, 7);
    tree_model(&b, good_tree, 6);
    int rc = open_buf(&b, &m, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0)
        cml_model_close(m);
    free(b.p);

    /* Repeated doubles: one packed record plus one unpacked, in order. */
    struct buf msg = {0};
    double two[2] = {1.5, 2.5};
    f_bytes(&msg, 3, two, sizeof(two));
    f_double(&msg, 3, 3.5);
    struct cml__pb r;
    struct cml__pb_field f;
    double out[3];
    size_t n = 0;
    cml__pb_init(&r, msg.p, msg.n);
    while (cml__pb_next(&r, &f, &err) > 0)
        CHECK_EQ_INT(cml__pb_read_doubles(&f, "t", out, 3, &n, &err), 0);
    CHECK_EQ_INT(n, 3);
    CHECK(out[0] == 1.5 && out[1] == 2.5 && out[2] == 3.5);
    /* A packed length that is not a multiple of 8. */
    msg.n = 0;
    f_bytes(&msg, 3, two, 7);
    cml__pb_init(&r, msg.p, msg.n);
    CHECK_EQ_INT(cml__pb_next(&r, &f, &err), 1);
    n = 0;
    CHECK_EQ_INT(cml__pb_read_doubles(&f, "t", out, 3, &n, &err), CAI_EFORMAT);
    free(msg.p);
}

static void test_wrong_inputs_for_tree(void)
{
    struct buf b = {0};
    struct cml_model *m;
    struct cai_error err;
    tree_model(&b, good_tree, 6);
    if (open_buf(&b, &m, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        free(b.p);
        return;
    }
    struct cml_ctx *ctx;
    CHECK(cml_ctx_new(&ctx, m, &err) == 0);
    double x[4] = {1, 2, 3, 4};
    struct cml_value v = cml_value_array(x, 4);
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), CAI_EINVAL);
    CHECK(strstr(cml_ctx_errmsg(ctx), "input 'x': expected 3 values, got 4") != NULL);
    v = cml_value_int64(3);
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), CAI_EINVAL);
    CHECK(strstr(cml_ctx_errmsg(ctx), "expected multiarray, got int64") != NULL);
    v = cml_value_array(NULL, 3);
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), CAI_EINVAL);
    CHECK(cml_predict_batch(ctx, x, 2, 4, NULL) < 0);
    CHECK(strstr(cml_ctx_errmsg(ctx), "row 0") != NULL);
    cml_ctx_free(ctx);
    cml_model_close(m);
    free(b.p);
}

static void test_empty_and_garbage(void)
{
    struct cml_model *m;
    struct cai_error err = {0};
    CHECK(cml_model_open_buffer(&m, "", 0, &err) < 0);
    CHECK(strstr(err.msg, "no model type") != NULL);
    CHECK(cml_model_open(&m, "tests/golden/coreml/does-not-exist.mlmodel", &err) == CAI_EIO);
    CHECK(cml_model_open(&m, "tests/golden/coreml/glm_iris.ref", &err) < 0);
    const char junk[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    CHECK(cml_model_open_buffer(&m, junk, sizeof(junk) - 1, &err) < 0);
}

/* Every file of the fuzz corpus (crashers included) loads or fails cleanly. */
static void test_fuzz_corpus(void)
{
    const char *dir = "tests/fuzz/corpus/mlmodel";
    DIR *d = opendir(dir);
    if (!d)
        SKIP("%s missing", dir);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct cml_model *m;
        struct cai_error err = {0};
        if (cml_model_open(&m, path, &err) == 0) {
            struct cml_ctx *ctx;
            if (cml_ctx_new(&ctx, m, NULL) == 0) {
                double x[64] = {0};
                cml_predict_batch(ctx, x, 1, cml_model_n_inputs(m) == 1 ? 4 : 0, NULL);
                cml_ctx_free(ctx);
            }
            cml_model_close(m);
        } else {
            CHECK(err.msg[0] != '\0');
        }
        n++;
    }
    closedir(d);
    CHECK(n > 0);
}

int main(void)
{
    RUN(test_good_model);
    RUN(test_truncated);
    RUN(test_varint_too_long);
    RUN(test_length_beyond_buffer);
    RUN(test_wrong_wire_type);
    RUN(test_nesting_bomb);
    RUN(test_bad_trees);
    RUN(test_unknown_fields_and_packing);
    RUN(test_wrong_inputs_for_tree);
    RUN(test_empty_and_garbage);
    RUN(test_fuzz_corpus);
    return test_done();
}
