/* test_coreml_batch.c: batch predictions are the single-row predictions, bit
 * for bit, and the AVX-512 kernels agree with the plain C reference.
 *
 * For every fixture in tests/golden/coreml: the whole test split through
 * cml_predict_batch(), the same rows in uneven chunks (so every block
 * boundary of every batch kernel moves), and each row through cml_predict()
 * must give identical labels, probabilities and values (memcmp). With
 * AVX-512, the model is opened again with COREAI_ISA=ref (the plain C path)
 * and must agree within the fixture's tolerance (tree ensembles exactly).
 * Random tree ensembles (depths 0..7, <= and <, NaN routing both ways,
 * inputs on the thresholds) check the tree kernels the same way. The SIMD
 * kernels are also checked one by one: exp, tanh, sigmoid and softmax
 * against libm, the GEMMs against double sums, and the kernels that must
 * agree bit for bit (the two f64 GEMM layouts, one-row and many-row
 * softmax). */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>

#include "coreml.h"
#include "ml/simd.h"
#include "test.h"

#define DIR_GOLDEN "tests/golden/coreml"
#define MIN(a, b)  ((a) < (b) ? (a) : (b))

/* ---- fixtures ------------------------------------------------------------------ */

struct ref {
    char    kind[16], labels[8], inputs[16];
    size_t  cols, outs, rows;
    double  tol, atol;
    double *x; /* [rows][cols] */
};

static int ref_load(struct ref *r, const char *path)
{
    memset(r, 0, sizeof(*r));
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fscanf(f, " kind %15s labels %7s inputs %15s cols %zu outs %zu tol %lf atol %lf rows %zu",
                    r->kind, r->labels, r->inputs, &r->cols, &r->outs, &r->tol, &r->atol,
                    &r->rows) == 8;
    if (ok) {
        r->x = calloc(r->rows * r->cols + 1, sizeof(double));
        ok = r->x != NULL;
    }
    char tok[256];
    double skip;
    for (size_t i = 0; ok && i < r->rows; i++) {
        for (size_t j = 0; ok && j < r->cols; j++)
            ok = fscanf(f, "%lf", &r->x[i * r->cols + j]) == 1;
        ok = ok && fscanf(f, "%255s", tok) == 1;
        for (size_t j = 0; ok && j < r->outs; j++)
            ok = fscanf(f, "%lf", &skip) == 1;
    }
    fclose(f);
    if (!ok) {
        free(r->x);
        return -1;
    }
    return 0;
}

/* One batch's results. */
struct res {
    size_t   n_rows, n_cls, n_val;
    int32_t *ci;
    double  *pr, *va;
};

static void res_init(struct res *s, const struct cml_model *m, size_t n_rows)
{
    s->n_rows = n_rows;
    s->n_cls = cml_model_n_classes(m);
    s->n_val = cml_model_n_values(m);
    s->ci = calloc(n_rows + 1, sizeof(int32_t));
    s->pr = calloc(n_rows * s->n_cls + 1, sizeof(double));
    s->va = calloc(n_rows * s->n_val + 1, sizeof(double));
}

static void res_free(struct res *s)
{
    free(s->ci);
    free(s->pr);
    free(s->va);
}

/* Rows [r0, r0 + n) of x through cml_predict_batch into s. */
static long batch(struct cml_ctx *c, const struct ref *r, size_t r0, size_t n, struct res *s)
{
    struct cml_batch_out o = {s->ci + r0, s->n_cls ? s->pr + r0 * s->n_cls : NULL,
                              s->n_val ? s->va + r0 * s->n_val : NULL};
    return cml_predict_batch(c, r->x + r0 * r->cols, n, r->cols, &o);
}

static bool same_res(const struct res *a, const struct res *b)
{
    return memcmp(a->ci, b->ci, a->n_rows * sizeof(int32_t)) == 0 &&
           memcmp(a->pr, b->pr, a->n_rows * a->n_cls * sizeof(double)) == 0 &&
           memcmp(a->va, b->va, a->n_rows * a->n_val * sizeof(double)) == 0;
}

/* The output a regressor's values come from (as cml_predict_batch picks it). */
static int values_output(const struct cml_model *m)
{
    int o = cml_model_label_output(m);
    for (size_t i = 0; o < 0 && i < cml_model_n_outputs(m); i++) {
        enum cml_type t = cml_model_output(m, i)->type;
        if (t == CML_TYPE_DOUBLE || t == CML_TYPE_MULTIARRAY || t == CML_TYPE_INT64)
            o = (int)i;
    }
    return o;
}

/* Every row through cml_predict(), compared with the batch's bits. Returns
 * the number of rows that differ. */
static size_t single_rows(struct cml_ctx *c, const struct cml_model *m, const struct ref *r,
                          const struct res *s, const char *name)
{
    size_t n_in = cml_model_n_inputs(m), bad = 0;
    int po = cml_model_probs_output(m), vo = values_output(m);
    for (size_t i = 0; i < r->rows; i++) {
        struct cml_value in[64];
        const double *x = r->x + i * r->cols;
        if (strcmp(r->inputs, "array") == 0) {
            in[0] = cml_value_array(x, r->cols);
        } else {
            for (size_t j = 0; j < r->cols && j < 64; j++)
                in[j] = cml_value_double(x[j]);
        }
        if (cml_predict(c, in, n_in) != 0) {
            CHECK_MSG(0, "%s row %zu: %s", name, i, cml_ctx_errmsg(c));
            return r->rows;
        }
        bool ok = true;
        if (s->n_cls) {
            ok = cml_ctx_class_index(c) == s->ci[i];
            if (po >= 0) {
                const struct cml_value *pv = cml_ctx_output(c, (size_t)po);
                ok = ok && pv->n_elem == s->n_cls &&
                     memcmp(pv->data, s->pr + i * s->n_cls, s->n_cls * sizeof(double)) == 0;
            }
        } else if (s->n_val && vo >= 0) {
            const struct cml_value *v = cml_ctx_output(c, (size_t)vo);
            const double *want = s->va + i * s->n_val;
            if (v->type == CML_TYPE_DOUBLE)
                ok = memcmp(&v->f64, want, sizeof(double)) == 0;
            else if (v->type == CML_TYPE_INT64)
                ok = (double)v->i64 == want[0];
            else
                ok = v->n_elem >= s->n_val &&
                     memcmp(v->data, want, s->n_val * sizeof(double)) == 0;
        }
        if (!ok && bad++ < 3)
            fprintf(stderr, "  %s row %zu: cml_predict differs from the batch\n", name, i);
    }
    return bad;
}

static const size_t chunks[] = {1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 31, 33, 64, 65};

static bool is_trees(const struct cml_model *m)
{
    for (size_t i = 0; i < cml_model_n_parts(m); i++)
        if (strstr(cml_model_part_name(m, i), "treeEnsemble"))
            return true;
    return false;
}

/* SIMD against reference: labels equal, numbers within the fixture's
 * tolerance (tree ensembles: equal). */
static void against_ref(const char *path, const struct ref *r, const struct res *s,
                        const char *name)
{
    struct cml_model *m = NULL;
    struct cml_ctx *c = NULL;
    struct cai_error err;
    char *saved = getenv("COREAI_ISA") ? strdup(getenv("COREAI_ISA")) : NULL;
    setenv("COREAI_ISA", "ref", 1);
    int rc = cml_model_open(&m, path, &err);
    if (saved)
        setenv("COREAI_ISA", saved, 1);
    else
        unsetenv("COREAI_ISA");
    free(saved);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc || cml_ctx_new(&c, m, &err) != 0) {
        cml_model_close(m);
        return;
    }
    struct res t;
    res_init(&t, m, r->rows);
    CHECK(batch(c, r, 0, r->rows, &t) == (long)r->rows);
    bool exact = is_trees(m);
    size_t bad = 0, bad_label = 0;
    double worst = 0.0;
    for (size_t i = 0; i < r->rows; i++)
        bad_label += s->n_cls && s->ci[i] != t.ci[i];
    size_t n = r->rows * (s->n_cls ? s->n_cls : s->n_val);
    const double *a = s->n_cls ? s->pr : s->va, *b = s->n_cls ? t.pr : t.va;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]), lim = exact ? 0.0 : r->tol * fabs(b[i]) + r->atol + 1e-15;
        if (!(d <= lim) && !(isnan(a[i]) && isnan(b[i])))
            bad++;
        if (fabs(b[i]) > 1e-12 && d / fabs(b[i]) > worst)
            worst = d / fabs(b[i]);
    }
    CHECK_MSG(bad_label == 0, "%s: %zu labels differ from the reference path", name, bad_label);
    CHECK_MSG(bad == 0, "%s: %zu values differ from the reference path (max rel %g)", name, bad,
              worst);
    res_free(&t);
    cml_ctx_free(c);
    cml_model_close(m);
}

static void check_fixture(const char *name)
{
    char path[512];
    struct ref r;
    struct cai_error err;
    struct cml_model *m = NULL;
    struct cml_ctx *c = NULL;
    snprintf(path, sizeof(path), "%s/%s.ref", DIR_GOLDEN, name);
    if (ref_load(&r, path) != 0) {
        CHECK_MSG(0, "%s: cannot read", path);
        return;
    }
    snprintf(path, sizeof(path), "%s/%s.mlmodel", DIR_GOLDEN, name);
    int rc = cml_model_open(&m, path, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc == 0)
        rc = cml_ctx_new(&c, m, &err);
    if (rc) {
        cml_model_close(m);
        free(r.x);
        return;
    }
    struct res full, part;
    res_init(&full, m, r.rows);
    res_init(&part, m, r.rows);
    CHECK_MSG(batch(c, &r, 0, r.rows, &full) == (long)r.rows, "%s: %s", name,
              cml_ctx_errmsg(c));
    /* Uneven chunks: the same bits whatever the block boundaries. */
    size_t k = 0;
    for (size_t r0 = 0; r0 < r.rows; k++) {
        size_t n = MIN(chunks[k % (sizeof(chunks) / sizeof(chunks[0]))], r.rows - r0);
        CHECK(batch(c, &r, r0, n, &part) == (long)n);
        r0 += n;
    }
    CHECK_MSG(same_res(&full, &part), "%s: chunked batches differ from the whole batch", name);
    size_t bad = single_rows(c, m, &r, &full, name);
    CHECK_MSG(bad == 0, "%s: %zu of %zu rows differ between cml_predict and the batch", name,
              bad, r.rows);
    if (cml__simd_supported())
        against_ref(path, &r, &full, name);
    res_free(&full);
    res_free(&part);
    cml_ctx_free(c);
    cml_model_close(m);
    free(r.x);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_fixtures(void)
{
    DIR *d = opendir(DIR_GOLDEN);
    if (!d)
        SKIP("%s missing", DIR_GOLDEN);
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".ref") == 0)
            names[n++] = strndup(e->d_name, len - 4);
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_str);
    CHECK(n >= 20);
    for (size_t i = 0; i < n; i++) {
        check_fixture(names[i]);
        free(names[i]);
    }
    printf("  %zu fixtures: batch == chunked batches == cml_predict%s\n", n,
           cml__simd_supported() ? ", AVX-512 ~ reference" : " (no AVX-512: reference only)");
}

/* ---- random tree ensembles --------------------------------------------------------- */

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

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11) % n;
}

/* Thresholds and inputs share a small grid, so x == t is common. */
static double grid(void)
{
    static const double g[] = {-1.0, -0.5, -0.0, 0.0, 0.25, 0.5, 1.0};
    return g[rnd(7)];
}

struct forest_spec {
    size_t n_feat, n_dims, n_trees;
    int    max_depth;
    int    op;       /* 0 <=, 1 <, -1 mixed (every op) */
    bool   same_dim; /* each tree's leaves add to one dimension */
};

struct gen {
    struct buf               *te;
    const struct forest_spec *sp;
    int                       tree, next_id, dim;
};

/* Writes node `id` of the current tree and its subtree. */
static void gen_node(struct gen *g, int id, int depth)
{
    struct buf nd = {0};
    f_varint(&nd, 1, (uint64_t)g->tree);
    f_varint(&nd, 2, (uint64_t)id);
    bool leaf = depth >= g->sp->max_depth || (depth > 0 && rnd(4) == 0);
    if (leaf) {
        f_varint(&nd, 3, 6);
        int n_eval = rnd(8) == 0 ? 0 : g->sp->same_dim ? 1 : 1 + (int)rnd(2);
        for (int e = 0; e < n_eval; e++) {
            struct buf ev = {0};
            f_varint(&ev, 1, g->sp->same_dim ? (uint64_t)g->dim : rnd((uint32_t)g->sp->n_dims));
            f_double(&ev, 2, (double)((int)rnd(2001) - 1000) / 64.0);
            f_msg(&nd, 20, &ev);
        }
        f_msg(g->te, 1, &nd);
        return;
    }
    int yes = g->next_id++, no = g->next_id++;
    f_varint(&nd, 3, (uint64_t)(g->sp->op >= 0 ? g->sp->op : (int)rnd(6)));
    f_varint(&nd, 10, rnd((uint32_t)g->sp->n_feat));
    f_double(&nd, 11, grid());
    f_varint(&nd, 12, (uint64_t)yes);
    f_varint(&nd, 13, (uint64_t)no);
    if (rnd(2))
        f_varint(&nd, 14, 1);
    f_msg(g->te, 1, &nd);
    gen_node(g, yes, depth + 1);
    gen_node(g, no, depth + 1);
}

/* A TreeEnsembleRegressor on x: multiarray double [n_feat] -> y. */
static void forest_model(struct buf *model, const struct forest_spec *sp)
{
    struct buf d = {0}, in = {0}, ty = {0}, arr = {0}, out = {0}, oty = {0}, oarr = {0};
    struct buf te = {0}, reg = {0};
    f_varint(model, 1, 1);
    f_varint(&arr, 1, sp->n_feat);
    f_varint(&arr, 2, 65600);
    f_msg(&ty, 5, &arr);
    f_bytes(&in, 1, "x", 1);
    f_msg(&in, 3, &ty);
    f_msg(&d, 1, &in);
    if (sp->n_dims == 1) {
        f_bytes(&oty, 2, "", 0);
    } else {
        f_varint(&oarr, 1, sp->n_dims);
        f_varint(&oarr, 2, 65600);
        f_msg(&oty, 5, &oarr);
    }
    f_bytes(&out, 1, "y", 1);
    f_msg(&out, 3, &oty);
    f_msg(&d, 10, &out);
    f_msg(model, 2, &d);
    for (size_t t = 0; t < sp->n_trees; t++) {
        struct gen g = {.te = &te, .sp = sp, .tree = (int)t, .next_id = 1,
                        .dim = (int)rnd((uint32_t)sp->n_dims)};
        gen_node(&g, 0, 0);
    }
    f_varint(&te, 2, sp->n_dims);
    for (size_t k = 0; k < sp->n_dims; k++)
        f_double(&te, 3, 0.125 * (double)k - 0.0);
    f_msg(&reg, 1, &te);
    f_msg(model, 302, &reg);
}

static struct cml_model *open_forest(struct buf *b, bool ref)
{
    struct cml_model *m = NULL;
    struct cai_error err;
    if (ref)
        setenv("COREAI_ISA", "ref", 1);
    int rc = cml_model_open_buffer(&m, b->p, b->n, &err);
    if (ref)
        unsetenv("COREAI_ISA");
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc == 0 ? m : NULL;
}

static void test_random_forests(void)
{
    if (getenv("COREAI_ISA"))
        SKIP("COREAI_ISA is set");
    size_t n_models = 0, n_rows = 203;
    for (int depth = 0; depth <= 7; depth++) {
        for (int variant = 0; variant < 6; variant++) {
            struct forest_spec sp = {.n_feat = 1 + rnd(20), .n_dims = variant % 3 == 2 ? 3 : 1,
                                     .n_trees = 1 + rnd(40), .max_depth = depth,
                                     .op = variant == 5 ? -1 : variant % 2,
                                     .same_dim = variant != 4};
            struct buf b = {0};
            forest_model(&b, &sp);
            struct cml_model *m = open_forest(&b, false), *mr = open_forest(&b, true);
            struct cml_ctx *c = NULL, *cr = NULL;
            if (!m || !mr || cml_ctx_new(&c, m, NULL) || cml_ctx_new(&cr, mr, NULL)) {
                CHECK(0);
                goto next;
            }
            struct ref r = {.cols = sp.n_feat, .rows = n_rows};
            strcpy(r.inputs, "array");
            r.x = calloc(n_rows * sp.n_feat, sizeof(double));
            for (size_t i = 0; i < n_rows * sp.n_feat; i++) {
                uint32_t k = rnd(10);
                r.x[i] = k == 0 ? (double)NAN :
                         k < 6  ? grid() : (double)((int)rnd(4001) - 2000) / 1000.0;
            }
            struct res full, part, viaref;
            res_init(&full, m, n_rows);
            res_init(&part, m, n_rows);
            res_init(&viaref, mr, n_rows);
            CHECK(batch(c, &r, 0, n_rows, &full) == (long)n_rows);
            CHECK(batch(cr, &r, 0, n_rows, &viaref) == (long)n_rows);
            size_t k = 0;
            for (size_t r0 = 0; r0 < n_rows; k++) {
                size_t n = MIN(chunks[k % (sizeof(chunks) / sizeof(chunks[0]))], n_rows - r0);
                CHECK(batch(c, &r, r0, n, &part) == (long)n);
                r0 += n;
            }
            char name[64];
            snprintf(name, sizeof(name), "forest depth %d variant %d", depth, variant);
            CHECK_MSG(same_res(&full, &part), "%s: chunks differ", name);
            CHECK_MSG(same_res(&full, &viaref), "%s: differs from the reference path", name);
            CHECK_MSG(single_rows(c, m, &r, &full, name) == 0, "%s: single rows differ", name);
            res_free(&full);
            res_free(&part);
            res_free(&viaref);
            free(r.x);
            n_models++;
        next:
            cml_ctx_free(c);
            cml_ctx_free(cr);
            cml_model_close(m);
            cml_model_close(mr);
            free(b.p);
        }
    }
    printf("  %zu random tree ensembles: batch == single rows == reference\n", n_models);
}

/* ---- the kernels one by one --------------------------------------------------------- */

/* Distance in units in the last place between two finite doubles. */
static double ulps(double a, double b)
{
    if (a == b)
        return 0.0;
    double u = fabs(nextafter(b, (double)INFINITY) - b);
    return fabs(a - b) / (u > 0.0 ? u : 4.9e-324);
}

static double ulpsf(float a, float b)
{
    if (a == b)
        return 0.0;
    float u = fabsf(nextafterf(b, INFINITY) - b);
    return (double)(fabsf(a - b) / (u > 0.0f ? u : 1.4e-45f));
}

static void test_exp(void)
{
    if (!cml__simd_supported())
        SKIP("no AVX-512");
    enum { N = 20000 };
    double *x = malloc(N * sizeof(double)), *y = malloc(N * sizeof(double));
    for (size_t i = 0; i < N; i++)
        x[i] = -745.0 + 1454.0 * (double)i / (double)N + 1e-3 * (double)rnd(1000);
    cml__x512_exp(x, y, N);
    double worst = 0.0;
    for (size_t i = 0; i < N; i++)
        if (exp(x[i]) >= 0x1p-1022) /* normal results */
            worst = fmax(worst, ulps(y[i], exp(x[i])));
    CHECK_MSG(worst <= 2.0, "exp: %g ulp", worst);
    double w_exp = worst;
    const double inf = (double)INFINITY;
    double s[] = {0.0, -0.0, (double)NAN, inf, -inf, 710.0, -746.0, 1e-300, -1e-300, 709.7};
    double t[10];
    cml__x512_exp(s, t, 10);
    CHECK(t[0] == 1.0 && t[1] == 1.0 && isnan(t[2]) && t[3] == inf && t[4] == 0.0);
    CHECK(t[5] == inf && t[6] == 0.0 && t[7] == 1.0 && t[8] == 1.0);
    CHECK(ulps(t[9], exp(709.7)) <= 2.0);
    cml__x512_sigmoid(x, y, N);
    worst = 0.0;
    for (size_t i = 0; i < N; i++)
        worst = fmax(worst, fabs(y[i] - 1.0 / (1.0 + exp(-x[i]))));
    CHECK_MSG(worst <= 4e-16, "sigmoid: %g", worst);
    printf("  exp within %.2f ulp of libm on [-745, 709], sigmoid within %.2g\n", w_exp, worst);
    free(x);
    free(y);
}

static void test_act_f32(void)
{
    if (!cml__simd_supported())
        SKIP("no AVX-512");
    enum { N = 40000 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++)
        x[i] = -20.0f + 40.0f * (float)i / (float)N;
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = 1e-30f;
    x[3] = -3e-8f;
    CHECK(cml__x512_act_f32(30, 1.0f, 1.0f, x, y, N)); /* tanh */
    double worst = 0.0;
    for (size_t i = 0; i < N; i++)
        worst = fmax(worst, ulpsf(y[i], tanhf(x[i])));
    CHECK_MSG(worst <= 3.0, "tanh: %g ulp", worst);
    CHECK(y[0] == 0.0f && signbit(y[1]) && y[2] == x[2]);
    double wt = worst;
    CHECK(cml__x512_act_f32(40, 1.0f, 1.0f, x, y, N)); /* sigmoid */
    worst = 0.0;
    for (size_t i = 0; i < N; i++)
        worst = fmax(worst, ulpsf(y[i], (float)(1.0 / (1.0 + exp(-(double)x[i])))));
    CHECK_MSG(worst <= 4.0, "sigmoid: %g ulp", worst);
    CHECK(cml__x512_act_f32(10, 1.0f, 1.0f, x, y, N)); /* relu */
    for (size_t i = 0; i < N; i++)
        CHECK(y[i] == (x[i] > 0.0f ? x[i] : 0.0f));
    CHECK(!cml__x512_act_f32(25, 1.0f, 1.0f, x, y, N)); /* PReLU: not here */
    printf("  tanh within %.1f ulp, sigmoid within %.1f ulp of libm (float)\n", wt, worst);
    free(x);
    free(y);
}

static void test_softmax(void)
{
    if (!cml__simd_supported())
        SKIP("no AVX-512");
    float x[16 * 41], y[41], tmp[16 * 41];
    double p[16 * 41];
    int32_t best[16];
    for (size_t n = 1; n <= 41; n += 4) {
        for (size_t rows = 1; rows <= 16; rows += 5) {
            for (size_t i = 0; i < rows * n; i++)
                x[i] = (float)((int)rnd(2001) - 1000) / 37.0f;
            cml__x512_softmax_rows(x, n, rows, n, tmp, p, best);
            for (size_t r = 0; r < rows; r++) {
                cml__x512_softmax_f32(x + r * n, y, n);
                double sum = 0.0;
                size_t b = 0;
                for (size_t i = 0; i < n; i++) {
                    CHECK((double)y[i] == p[r * n + i]);
                    sum += (double)y[i];
                    b = y[i] > y[b] ? i : b;
                    double e = exp((double)x[r * n + i]), t = 0.0;
                    for (size_t j = 0; j < n; j++)
                        t += exp((double)x[r * n + j]);
                    /* float's x - max rounds by up to 2^-24 |x - max| */
                    CHECK(fabs((double)y[i] - e / t) <= 4e-6 * e / t + 1e-9);
                }
                CHECK_EQ_INT(best[r], (int32_t)b);
                CHECK(fabs(sum - 1.0) < 1e-5);
            }
        }
    }
}

static void test_gemm(void)
{
    if (!cml__simd_supported())
        SKIP("no AVX-512");
    enum { MR = 19, MO = 41, MI = 70 };
    static double x[MR * MI], xs[MR * MI], w[MO * MI], wt[MI * 48], b[MO], y[MR * MO];
    static double y8[2 * MO * 8], xt[16 * 72];
    static int32_t ks[MI + 32];
    static float xf[MR * MI], wtf[MI * 48], bf[MO], yf[MR * MO];
    size_t n_cases = 0;
    for (size_t n_in = 1; n_in <= MI; n_in += 23) {
        for (size_t n_out = 1; n_out <= MO; n_out += 8) {
            size_t ldw = (n_out + 7) / 8 * 8, ldwf = (n_out + 15) / 16 * 16;
            for (size_t i = 0; i < MR * n_in; i++) {
                /* half zeros, for the zero skipping */
                x[i] = rnd(2) ? 0.0 : (double)((int)rnd(2001) - 1000) / 256.0;
                xf[i] = (float)x[i];
            }
            memset(wt, 0, sizeof(wt));
            memset(wtf, 0, sizeof(wtf));
            for (size_t o = 0; o < n_out; o++) {
                b[o] = (double)((int)rnd(201) - 100) / 8.0;
                bf[o] = (float)b[o];
                for (size_t k = 0; k < n_in; k++) {
                    w[o * n_in + k] = (double)((int)rnd(2001) - 1000) / 512.0;
                    wt[k * ldw + o] = w[o * n_in + k];
                    wtf[k * ldwf + o] = (float)w[o * n_in + k];
                }
            }
            for (size_t rows = 1; rows <= MR; rows += 6) {
                cml__x512_gemm_f64(rows, n_out, n_in, x, n_in, wt, ldw, b, y, n_out);
                cml__x512_gemm_f32(rows, n_out, n_in, xf, n_in, wtf, ldwf, bf, yf, n_out, NULL,
                                   n_in % 2 == 0);
                for (size_t r = 0; r < rows; r++) {
                    for (size_t o = 0; o < n_out; o++) {
                        double s = 0.0;
                        for (size_t k = 0; k < n_in; k++)
                            s += x[r * n_in + k] * w[o * n_in + k];
                        s += b[o];
                        /* small integers over powers of 2: the sums are exact */
                        CHECK(y[r * n_out + o] == s);
                        CHECK(fabs((double)yf[r * n_out + o] - s) <= 1e-5 * fabs(s) + 1e-4);
                    }
                }
                /* The rows-in-lanes layout: the same bits, on random reals. */
                for (size_t i = 0; i < rows * n_in; i++)
                    xs[i] = rnd(3) == 0 ? 0.0 : sin((double)i * 0.37 + (double)n_out);
                cml__x512_gemm_f64(rows, n_out, n_in, xs, n_in, wt, ldw, b, y, n_out);
                for (size_t r0 = 0; r0 < rows; r0 += 16) {
                    size_t nb = MIN((size_t)16, rows - r0);
                    cml__x512_gemm8_f64(nb, n_out, n_in, xs + r0 * n_in, n_in, w, b, y8, xt, ks,
                                        (r0 / 16) % 2 == 0);
                    for (size_t r = 0; r < nb; r++)
                        for (size_t o = 0; o < n_out; o++)
                            CHECK(y8[(r / 8) * 8 * n_out + 8 * o + r % 8] ==
                                  y[(r0 + r) * n_out + o]);
                }
                n_cases++;
            }
        }
    }
    printf("  %zu GEMM shapes: f64 exact, f32 close, both f64 layouts identical\n", n_cases);
}

int main(void)
{
    RUN(test_fixtures);
    RUN(test_random_forests);
    RUN(test_exp);
    RUN(test_act_f32);
    RUN(test_softmax);
    RUN(test_gemm);
    return test_done();
}
