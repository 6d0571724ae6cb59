/* test_coreml.c: golden tests of the classic engine against the libraries
 * the models came from.
 *
 * Every tests/golden/coreml/NAME.ref (written by
 * scripts/make_coreml_fixtures.py) holds a test split's inputs and the source
 * library's predictions; NAME.mlmodel is the coremltools conversion. Each
 * model is run through cml_predict_batch() and, for a sample of rows, through
 * cml_predict(); labels must be identical and probabilities/values within the
 * file's relative tolerance. One summary line per model is printed. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "coreml.h"
#include "test.h"

#define DIR_GOLDEN "tests/golden/coreml"

struct ref {
    char    kind[16], labels[8], inputs[16];
    size_t  cols, outs, rows;
    double  tol, atol;
    double *x;     /* [rows][cols] */
    char  **label; /* [rows] */
    double *y;     /* [rows][outs] */
};

static void ref_free(struct ref *r)
{
    free(r->x);
    free(r->y);
    if (r->label)
        for (size_t i = 0; i < r->rows; i++)
            free(r->label[i]);
    free(r->label);
}

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
        r->y = calloc(r->rows * r->outs + 1, sizeof(double));
        r->label = calloc(r->rows + 1, sizeof(char *));
        ok = r->x && r->y && r->label;
    }
    char tok[256];
    for (size_t i = 0; ok && i < r->rows; i++) {
        for (size_t j = 0; ok && j < r->cols; j++)
            ok = fscanf(f, "%lf", &r->x[i * r->cols + j]) == 1;
        ok = ok && fscanf(f, "%255s", tok) == 1;
        if (ok)
            r->label[i] = strdup(tok);
        for (size_t j = 0; ok && j < r->outs; j++)
            ok = fscanf(f, "%lf", &r->y[i * r->outs + j]) == 1;
    }
    fclose(f);
    if (!ok) {
        ref_free(r);
        return -1;
    }
    return 0;
}

struct stats {
    double max_abs, max_rel;
    size_t n_label_ok, n_label;
    size_t n_bad;
};

static void compare(struct stats *s, double got, double want, double tol, double atol)
{
    double d = fabs(got - want);
    if (d > s->max_abs)
        s->max_abs = d;
    if (fabs(want) > 1e-9 && d / fabs(want) > s->max_rel)
        s->max_rel = d / fabs(want);
    if (!(d <= tol * fabs(want) + atol))
        s->n_bad++;
}

static bool label_matches(const struct cml_model *m, int idx, const char *want, bool is_str)
{
    if (idx < 0)
        return false;
    if (is_str)
        return strcmp(cml_model_class_str(m, (size_t)idx), want) == 0;
    return cml_model_class_i64(m, (size_t)idx) == strtoll(want, NULL, 10);
}

static void check_model(const char *name)
{
    char path[512];
    struct ref r;
    struct cai_error err = {0};
    struct cml_model *m = NULL;
    struct cml_ctx *ctx = NULL;
    snprintf(path, sizeof(path), "%s/%s.ref", DIR_GOLDEN, name);
    if (ref_load(&r, path) != 0) {
        CHECK_MSG(0, "%s: cannot read", path);
        return;
    }
    snprintf(path, sizeof(path), "%s/%s.mlmodel", DIR_GOLDEN, name);
    int rc = cml_model_open(&m, path, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc) {
        ref_free(&r);
        return;
    }
    rc = cml_ctx_new(&ctx, m, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    bool cls = strcmp(r.kind, "classifier") == 0;
    bool is_str = strcmp(r.labels, "str") == 0;
    size_t n_cls = cml_model_n_classes(m);
    if (cls)
        CHECK_MSG(n_cls == r.outs, "%s: %zu classes, ref has %zu", name, n_cls, r.outs);
    else
        CHECK_MSG(cml_model_n_values(m) == r.outs, "%s: %zu values, ref has %zu", name,
                  cml_model_n_values(m), r.outs);
    int32_t *ci = calloc(r.rows, sizeof(int32_t));
    double *out = calloc(r.rows * r.outs + 1, sizeof(double));
    struct cml_batch_out bo = {0};
    if (cls) {
        bo.class_index = ci;
        bo.probs = out;
    } else {
        bo.values = out;
    }
    struct stats st = {0};
    if (!ctx || cls ? n_cls != r.outs : cml_model_n_values(m) != r.outs)
        goto done;
    long n = cml_predict_batch(ctx, r.x, r.rows, r.cols, &bo);
    CHECK_MSG(n == (long)r.rows, "%s: batch returned %ld: %s", name, n, cml_ctx_errmsg(ctx));
    if (n != (long)r.rows)
        goto done;
    for (size_t i = 0; i < r.rows; i++) {
        if (cls) {
            st.n_label++;
            st.n_label_ok += label_matches(m, ci[i], r.label[i], is_str);
        }
        for (size_t j = 0; j < r.outs; j++)
            compare(&st, out[i * r.outs + j], r.y[i * r.outs + j], r.tol, r.atol);
    }
    /* Single-row API on a few rows: the same answers as the batch. */
    for (size_t i = 0; i < r.rows; i += 17) {
        struct cml_value in[64];
        size_t n_in = cml_model_n_inputs(m);
        if (strcmp(r.inputs, "array") == 0) {
            in[0] = cml_value_array(&r.x[i * r.cols], r.cols);
        } else {
            for (size_t j = 0; j < r.cols && j < 64; j++)
                in[j] = cml_value_double(r.x[i * r.cols + j]);
        }
        rc = cml_predict(ctx, in, n_in);
        CHECK_MSG(rc == 0, "%s row %zu: %s", name, i, cml_ctx_errmsg(ctx));
        if (rc)
            break;
        if (cls) {
            CHECK_EQ_INT(cml_ctx_class_index(ctx), ci[i]);
            int po = cml_model_probs_output(m);
            if (po >= 0) {
                const struct cml_value *pv = cml_ctx_output(ctx, (size_t)po);
                CHECK(pv->type == CML_TYPE_DICT && pv->n_elem == n_cls);
                for (size_t j = 0; j < n_cls && j < pv->n_elem; j++)
                    CHECK(pv->data[j] == out[i * r.outs + j]);
            }
            int lo = cml_model_label_output(m);
            if (lo >= 0) {
                const struct cml_value *lv = cml_ctx_output(ctx, (size_t)lo);
                if (is_str)
                    CHECK_STR(lv->str, r.label[i]);
                else
                    CHECK_EQ_INT(lv->i64, strtoll(r.label[i], NULL, 10));
            }
        }
    }
    printf("  %-20s %-22s rows %4zu  labels %4zu/%-4zu  max abs %.3g  max rel %.3g\n", name,
           cml_model_type_name(m), r.rows, st.n_label_ok, st.n_label, st.max_abs, st.max_rel);
    CHECK_MSG(st.n_label_ok == st.n_label, "%s: %zu of %zu labels differ", name,
              st.n_label - st.n_label_ok, st.n_label);
    CHECK_MSG(st.n_bad == 0, "%s: %zu values beyond tolerance %g (max rel %g)", name, st.n_bad,
              r.tol, st.max_rel);
done:
    free(ci);
    free(out);
    cml_ctx_free(ctx);
    cml_model_close(m);
    ref_free(&r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden_all(void)
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
        check_model(names[i]);
        free(names[i]);
    }
}

/* Description of a converted classifier: names, types, shapes, labels. */
static void test_describe(void)
{
    struct cml_model *m;
    struct cai_error err;
    int rc = cml_model_open(&m, DIR_GOLDEN "/glm_iris.mlmodel", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK_STR(cml_model_type_name(m), "glmClassifier");
    CHECK_EQ_INT(cml_model_n_inputs(m), 1);
    const struct cml_feature *in = cml_model_input(m, 0);
    CHECK_STR(in->name, "input");
    CHECK_EQ_INT(in->type, CML_TYPE_MULTIARRAY);
    CHECK_EQ_INT(in->n_dims, 1);
    CHECK_EQ_INT(in->shape[0], 4);
    CHECK_EQ_INT(in->array_type, CML_ARRAY_DOUBLE);
    CHECK_EQ_INT(cml_model_n_outputs(m), 2);
    CHECK_STR(cml_model_output(m, (size_t)cml_model_label_output(m))->name, "classLabel");
    CHECK_STR(cml_model_output(m, (size_t)cml_model_probs_output(m))->name, "classProbability");
    CHECK_EQ_INT(cml_model_n_classes(m), 3);
    CHECK(!cml_model_labels_are_strings(m));
    CHECK_EQ_INT(cml_model_class_i64(m, 2), 2);
    cml_model_close(m);

    rc = cml_model_open(&m, DIR_GOLDEN "/dt_iris_str.mlmodel", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK(cml_model_labels_are_strings(m));
    CHECK_STR(cml_model_class_str(m, 1), "versicolor");
    cml_model_close(m);
}

/* Wrong inputs at prediction time: a clear error, never a crash. */
static void test_bad_inputs(void)
{
    struct cml_model *m;
    struct cml_ctx *ctx;
    struct cai_error err;
    int rc = cml_model_open(&m, DIR_GOLDEN "/glm_iris.mlmodel", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK(cml_ctx_new(&ctx, m, &err) == 0);
    double x[5] = {5.1, 3.5, 1.4, 0.2, 9};
    struct cml_value v = cml_value_array(x, 3);
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), CAI_EINVAL);
    CHECK(strstr(cml_ctx_errmsg(ctx), "expected 4 values, got 3") != NULL);
    v = cml_value_string("hello");
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), CAI_EINVAL);
    CHECK(strstr(cml_ctx_errmsg(ctx), "expected multiarray, got string") != NULL);
    CHECK_EQ_INT(cml_predict(ctx, &v, 0), CAI_EINVAL);
    double row[5] = {0};
    CHECK(cml_predict_batch(ctx, row, 1, 5, NULL) < 0);
    v = cml_value_array(x, 4);
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), 0);
    CHECK_STR(cml_ctx_errmsg(ctx), "");
    CHECK_EQ_INT(cml_ctx_class_index(ctx), 0);
    cml_ctx_free(ctx);
    cml_model_close(m);

    /* Scalar inputs (XGBoost): wrong count and wrong type. */
    rc = cml_model_open(&m, DIR_GOLDEN "/xgb_iris.mlmodel", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK(cml_ctx_new(&ctx, m, &err) == 0);
    struct cml_value in[4] = {cml_value_double(1), cml_value_double(2), cml_value_double(3),
                              cml_value_string("x")};
    CHECK_EQ_INT(cml_predict(ctx, in, 3), CAI_EINVAL);
    CHECK_EQ_INT(cml_predict(ctx, in, 4), CAI_EINVAL);
    CHECK(strstr(cml_ctx_errmsg(ctx), "input 'f3'") != NULL);
    in[3] = cml_value_int64(1);
    CHECK_EQ_INT(cml_predict(ctx, in, 4), 0);
    cml_ctx_free(ctx);
    cml_model_close(m);
}

/* DictVectorizer and the sparse one-hot path take dictionary inputs. */
static void test_dict_vectorizer(void)
{
    struct cml_model *m;
    struct cml_ctx *ctx;
    struct cai_error err;
    int rc = cml_model_open(&m, DIR_GOLDEN "/dictvec.mlmodel", &err);
    if (rc)
        SKIP("dictvec.mlmodel: %s", err.msg);
    CHECK(cml_ctx_new(&ctx, m, &err) == 0);
    const char *keys[] = {"c", "zzz", "a"};
    double vals[] = {3.0, 7.0, 1.5};
    struct cml_value v = {0};
    v.type = CML_TYPE_DICT;
    v.keys_str = keys;
    v.data = vals;
    v.n_elem = 3;
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), 0);
    const struct cml_value *o = cml_ctx_output(ctx, 0);
    CHECK_EQ_INT(o->n_elem, 3);
    if (o->n_elem == 3) {
        CHECK(o->data[0] == 1.5 && o->data[1] == 0.0 && o->data[2] == 3.0);
    }
    v.keys_str = NULL;
    CHECK_EQ_INT(cml_predict(ctx, &v, 1), CAI_EINVAL);
    cml_ctx_free(ctx);
    cml_model_close(m);
}

/* A model shared read-only by threads, one context each. */
#include <pthread.h>
struct thr {
    const struct cml_model *m;
    int                     bad;
};
static void *thr_main(void *p)
{
    struct thr *t = p;
    struct cml_ctx *ctx;
    if (cml_ctx_new(&ctx, t->m, NULL) != 0) {
        t->bad = 1;
        return NULL;
    }
    double x[10];
    for (int it = 0; it < 2000; it++) {
        for (int j = 0; j < 10; j++)
            x[j] = 0.01 * ((it * 7 + j * 13) % 11 - 5);
        double v1, v2;
        struct cml_batch_out bo = {.values = &v1};
        cml_predict_batch(ctx, x, 1, 10, &bo);
        bo.values = &v2;
        cml_predict_batch(ctx, x, 1, 10, &bo);
        t->bad += v1 != v2;
    }
    cml_ctx_free(ctx);
    return NULL;
}

static void test_threads(void)
{
    struct cml_model *m;
    struct cai_error err;
    if (cml_model_open(&m, DIR_GOLDEN "/gbr_diabetes.mlmodel", &err) != 0)
        SKIP("%s", err.msg);
    pthread_t th[4];
    struct thr t[4];
    for (int i = 0; i < 4; i++) {
        t[i].m = m;
        t[i].bad = 0;
        pthread_create(&th[i], NULL, thr_main, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(t[i].bad, 0);
    }
    cml_model_close(m);
}

/* The CLI end to end (skipped when the binary is not built): a digit given as
 * a PNG file through the CNN, and CSV rows through the MLP. */
static void test_cli(void)
{
    const char *b = getenv("B");
    char exe[256], cmd[1024], out[4096];
    snprintf(exe, sizeof(exe), "%s/coreml", b && b[0] ? b : "build");
    FILE *f = fopen(exe, "rb");
    if (!f)
        SKIP("%s not built", exe);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s predict %s/nn_cnn_digits_image.mlmodel --input %s/digit_1.png",
             exe, DIR_GOLDEN, DIR_GOLDEN);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p)
        return;
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    CHECK_EQ_INT(pclose(p), 0);
    CHECK_MSG(strstr(out, "\"classLabel\":1}") != NULL, "%s", out);

    /* Two digits rows as CSV (64 columns of a single array input). */
    struct ref r;
    if (ref_load(&r, DIR_GOLDEN "/nn_mlp_digits.ref") != 0) {
        CHECK(0);
        return;
    }
    char csv[] = "/tmp/coreml_cli_XXXXXX";
    int fd = mkstemp(csv);
    CHECK(fd >= 0);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f) {
        for (size_t j = 0; j < r.cols; j++)
            fprintf(f, "%spx%zu", j ? "," : "", j);
        fprintf(f, "\n");
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < r.cols; j++)
                fprintf(f, "%.17g%s", r.x[i * r.cols + j], j + 1 < r.cols ? "," : "\n");
        fclose(f);
        snprintf(cmd, sizeof(cmd), "%s predict %s/nn_mlp_digits.mlmodel --input %s --format csv",
                 exe, DIR_GOLDEN, csv);
        p = popen(cmd, "r");
        n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
        out[n] = '\0';
        CHECK(p && pclose(p) == 0);
        /* header, then one line per row ending in the label */
        char *l1 = strchr(out, '\n'), *l2 = l1 ? strchr(l1 + 1, '\n') : NULL;
        CHECK(l1 && l2);
        if (l1 && l2) {
            *l2 = '\0';
            char *last = strrchr(l1 + 1, ',');
            CHECK_MSG(last && strcmp(last + 1, r.label[0]) == 0, "%s vs %s", l1 + 1, r.label[0]);
        }
        unlink(csv);
    }
    ref_free(&r);
}

int main(void)
{
    RUN(test_describe);
    RUN(test_golden_all);
    RUN(test_bad_inputs);
    RUN(test_dict_vectorizer);
    RUN(test_threads);
    RUN(test_cli);
    return test_done();
}
