/* glm.c: GLMRegressor (Model field 300) and GLMClassifier (400).
 *
 * z_k = w_k . x + offset_k for each weight row k, then a post-evaluation
 * transform. Regressor transforms: NoTransform=0, Logit=1, Probit=2.
 * Classifier transforms: Logit=0, Probit=1. Classifier class encodings:
 *  - one weight row and two classes: P(class 1) = T(z), P(class 0) = 1 - P;
 *  - OneVsRest (1), one row per class: p_k = T(z_k), normalized to sum 1
 *    (what scikit-learn's one-vs-rest LogisticRegression.predict_proba does);
 *  - ReferenceClass (0), one row per class but the first: the first class
 *    scores 0 and probabilities are the softmax of (0, z_1, ..., z_{K-1}).
 * The label is the class with the highest probability (first on ties). */
#include <string.h>

#include "ml.h"
#include "simd.h"

/* Rows per batch block: z[BLOCK][n_out] lives in the context's scratch. */
#define BLOCK 32

enum { GLM_NONE, GLM_LOGIT, GLM_PROBIT };
enum { ENC_REFERENCE = 0, ENC_OVR = 1, ENC_BINARY = 2 };

struct glm {
    size_t  n_out, n_feat;
    double *w; /* [n_out][n_feat] */
    double *b; /* [n_out] */
    int     transform;
    int     encoding;
    size_t  n_classes;
    /* SIMD path: the weights transposed, [n_feat][ldw], zero padded */
    bool    simd;
    bool    finite; /* every weight finite: zero inputs may be skipped */
    double *wt;
    size_t  ldw;
};

static double apply(int t, double z)
{
    return t == GLM_LOGIT ? cml__sigmoid(z) : t == GLM_PROBIT ? cml__probit(z) : z;
}

static void linear_ref(const struct glm *g, const double *x, double *z)
{
    for (size_t k = 0; k < g->n_out; k++) {
        const double *w = g->w + k * g->n_feat;
        double s = g->b[k];
        for (size_t j = 0; j < g->n_feat; j++)
            s += w[j] * x[j];
        z[k] = s;
    }
}

/* z[r][k] = w_k . x_r + offset_k for n_rows rows (ldx apart). */
static void linear(const struct glm *g, const double *x, size_t n_rows, size_t ldx, double *z)
{
    if (g->simd) {
        cml__x512_gemm_f64(n_rows, g->n_out, g->n_feat, x, ldx, g->wt, g->ldw, g->b, z, g->n_out);
        return;
    }
    for (size_t r = 0; r < n_rows; r++)
        linear_ref(g, x + r * ldx, z + r * g->n_out);
}

static void transform(const struct glm *g, double *y)
{
    if (g->transform == GLM_LOGIT && g->simd)
        cml__x512_sigmoid(y, y, g->n_out);
    else if (g->transform != GLM_NONE)
        for (size_t k = 0; k < g->n_out; k++)
            y[k] = apply(g->transform, y[k]);
}

/* Class probabilities p[n_classes] from the scores z[n_out]. */
static void classify(const struct glm *g, const double *z, double *p)
{
    if (g->encoding == ENC_BINARY) {
        double p1 = apply(g->transform, z[0]);
        p[0] = 1.0 - p1;
        p[1] = p1;
    } else if (g->encoding == ENC_OVR) {
        double sum = 0.0;
        if (g->simd && g->transform == GLM_LOGIT) {
            /* cml__x512_ovr8's lane operations: the sum in class order */
            cml__x512_sigmoid(z, p, g->n_classes);
            for (size_t k = 0; k < g->n_classes; k++)
                sum += p[k];
            if (sum > 0.0)
                cml__x512_scale(p, g->n_classes, 1.0 / sum);
            return;
        }
        for (size_t k = 0; k < g->n_classes; k++) {
            p[k] = apply(g->transform, z[k]);
            sum += p[k];
        }
        if (sum > 0.0)
            for (size_t k = 0; k < g->n_classes; k++)
                p[k] /= sum;
    } else {
        double mx = 0.0, sum = 0.0;
        for (size_t k = 0; k < g->n_out; k++)
            mx = z[k] > mx ? z[k] : mx;
        p[0] = exp(-mx);
        sum = p[0];
        for (size_t k = 0; k < g->n_out; k++) {
            p[k + 1] = exp(z[k] - mx);
            sum += p[k + 1];
        }
        for (size_t k = 0; k < g->n_classes; k++)
            p[k] /= sum;
    }
}

static int run_regressor(const struct cml__node *nd, struct cml__exec *x)
{
    const struct glm *g = nd->impl;
    const double *in = cml__gather(x, nd, g->n_feat, x->scratch);
    if (!in)
        return x->err->code;
    int32_t s = nd->out[nd->values_out];
    double *y = x->buf[s];
    linear(g, in, 1, g->n_feat, y);
    transform(g, y);
    cml__publish(x, s, g->n_out);
    return 0;
}

static int run_classifier(const struct cml__node *nd, struct cml__exec *x)
{
    const struct glm *g = nd->impl;
    const double *in = cml__gather(x, nd, g->n_feat, x->scratch);
    if (!in)
        return x->err->code;
    double *p = cml__probs_buf(x, nd, x->scratch + g->n_feat);
    double *z = x->scratch + g->n_feat + g->n_classes;
    linear(g, in, 1, g->n_feat, z);
    classify(g, z, p);
    cml__publish_class(x, nd, p);
    return 0;
}

/* Writes row r's results: its class probabilities (and label) or values. */
static void emit(const struct glm *g, const struct cml__node *nd, double *z, size_t r,
                 double *pbuf, const struct cml_batch_out *out)
{
    size_t K = g->n_classes;
    if (!nd->labels) {
        transform(g, z);
        if (out->values)
            memcpy(out->values + r * g->n_out, z, g->n_out * sizeof(double));
        return;
    }
    double *p = out->probs ? out->probs + r * K : pbuf;
    classify(g, z, p);
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
        if (p[k] > p[best])
            best = k;
    if (out->class_index)
        out->class_index[r] = (int32_t)best;
}

static void emit8(const struct glm *g, const struct cml__node *nd, double *zt, size_t r0,
                  size_t nb, double *z, double *pbuf, double *tmp,
                  const struct cml_batch_out *out);

/* SIMD batches: 8 rows at a time in the lanes of the scores zt[n_out][8]
 * (the same sums as a single row's), then one-vs-rest logit probabilities in
 * lanes too; other transforms per row through emit(). scratch: xt (the
 * block transposed), zt, a row of z, p. */
static void batch_simd(const struct glm *g, const struct cml__node *nd, const double *X,
                       size_t n_rows, size_t n_cols, double *scratch,
                       const struct cml_batch_out *out)
{
    size_t n_out = g->n_out;
    double *xt = scratch, *zt = xt + 16 * ((g->n_feat + 7) / 8 * 8), *z = zt + 16 * n_out;
    double *pbuf = z + n_out;
    int32_t *ks = (int32_t *)(pbuf + g->n_classes + 1);
    for (size_t r16 = 0; r16 < n_rows; r16 += 16) {
        cml__x512_gemm8_f64(CAI_MIN((size_t)16, n_rows - r16), n_out, g->n_feat,
                            X + r16 * n_cols, n_cols, g->w, g->b, zt, xt, ks, g->finite);
        for (size_t r0 = r16; r0 < n_rows && r0 < r16 + 16; r0 += 8)
            emit8(g, nd, zt + (r0 - r16) * n_out, r0, CAI_MIN((size_t)8, n_rows - r0), z, pbuf,
                  xt, out);
    }
}

static void emit8(const struct glm *g, const struct cml__node *nd, double *zt, size_t r0,
                  size_t nb, double *z, double *pbuf, double *tmp,
                  const struct cml_batch_out *out)
{
    size_t K = g->n_classes, n_out = g->n_out;
    bool ovr = nd->labels && g->encoding == ENC_OVR && g->transform == GLM_LOGIT;
    {
        if (ovr) {
            cml__x512_ovr8(zt, K);
            if (out->class_index)
                cml__x512_argmax8(zt, K, nb, out->class_index + r0);
            if (out->probs)
                cml__x512_untranspose8(zt, K, nb, out->probs + r0 * K, K, tmp);
            return;
        }
        for (size_t r = 0; r < nb; r++) {
            for (size_t k = 0; k < n_out; k++)
                z[k] = zt[8 * k + r];
            emit(g, nd, z, r0 + r, pbuf, out);
        }
    }
}

/* Batches: the scores of BLOCK rows at a time, then the same per-row
 * transform as a single prediction. scratch: z[BLOCK][n_out], p. */
static int run_batch(const struct cml__node *nd, const double *X, size_t n_rows, size_t n_cols,
                     double *scratch, const struct cml_batch_out *out)
{
    const struct glm *g = nd->impl;
    if (n_cols != g->n_feat)
        return CAI_EINVAL;
    if (g->simd) {
        batch_simd(g, nd, X, n_rows, n_cols, scratch, out);
        return 0;
    }
    double *z = scratch, *pbuf = scratch + BLOCK * g->n_out;
    for (size_t r0 = 0; r0 < n_rows; r0 += BLOCK) {
        size_t nb = CAI_MIN((size_t)BLOCK, n_rows - r0);
        linear(g, X + r0 * n_cols, nb, n_cols, z);
        for (size_t r = 0; r < nb; r++)
            emit(g, nd, z + r * g->n_out, r0 + r, pbuf, out);
    }
    return 0;
}

/* repeated DoubleArray weights = 1 { repeated double value = 1; } */
static int load_weights(struct cml__build *b, const struct cml__pb *msg, struct glm *g)
{
    size_t n_rows;
    int rc = cml__mm_count(msg, 1, &n_rows, b->err);
    if (rc)
        return rc;
    if (n_rows == 0)
        return cai__fail(b->err, CAI_EFORMAT, "GLM.weights: no weight rows");
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    size_t k = 0;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != 1)
            continue;
        if ((rc = cml__pb_len(&f, "GLM.weights", b->err)) != 0)
            return rc;
        cml__pb_sub(&sub, &r, &f);
        double *row;
        size_t n;
        if ((rc = cml__mm_doubles(&b->m->arena, &sub, 1, "GLM.weights.value", &row, &n, b->err)))
            return rc;
        if (k == 0) {
            g->n_feat = n;
            if (n == 0)
                return cai__fail(b->err, CAI_EFORMAT, "GLM.weights[0]: empty row");
            g->w = cml__arena_array(&b->m->arena, n_rows, n * sizeof(double));
            if (!g->w)
                return cai__fail(b->err, CAI_ENOMEM, "out of memory");
        } else if (n != g->n_feat) {
            return cai__fail(b->err, CAI_EFORMAT,
                             "GLM.weights[%zu]: %zu values, expected %zu like row 0", k, n,
                             g->n_feat);
        }
        memcpy(g->w + k * g->n_feat, row, n * sizeof(double));
        k++;
    }
    if (rc < 0)
        return rc;
    g->n_out = k;
    return 0;
}

int cml__load_glm(struct cml__build *b, const struct cml__mm_model *mm)
{
    const struct cml__pb *msg = &mm->type_msg;
    bool cls = mm->type_field == CML__MM_GLM_CLASSIFIER;
    const char *tn = cls ? "GLMClassifier" : "GLMRegressor";
    struct glm *g = cml__arena_alloc(&b->m->arena, sizeof(*g));
    struct cml__labels *labels = cml__arena_alloc(&b->m->arena, sizeof(*labels));
    struct cml__pb_field f;
    int rc;
    if (!g || !labels)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if ((rc = load_weights(b, msg, g)) != 0)
        return rc;
    double *off;
    size_t n_off;
    if ((rc = cml__mm_doubles(&b->m->arena, msg, 2, "GLM.offset", &off, &n_off, b->err)))
        return rc;
    if (n_off != 0 && n_off != g->n_out)
        return cai__fail(b->err, CAI_EFORMAT, "%s.offset: %zu values for %zu weight rows", tn,
                         n_off, g->n_out);
    g->b = n_off ? off : cml__arena_array(&b->m->arena, g->n_out, sizeof(double));
    if (!g->b)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    int32_t t = 0, enc = 0;
    if ((rc = cml__mm_find(msg, 3, &f, b->err)) < 0)
        return rc;
    if (rc && (rc = cml__pb_i32(&f, "GLM.postEvaluationTransform", &t, b->err)) != 0)
        return rc;
    if (cls) {
        if (t < 0 || t > 1)
            return cai__fail(b->err, CAI_EFORMAT, "%s.postEvaluationTransform: unknown value %d",
                             tn, t);
        g->transform = t == 0 ? GLM_LOGIT : GLM_PROBIT;
        if ((rc = cml__mm_find(msg, 4, &f, b->err)) < 0)
            return rc;
        if (rc && (rc = cml__pb_i32(&f, "GLMClassifier.classEncoding", &enc, b->err)) != 0)
            return rc;
        if (enc < 0 || enc > 1)
            return cai__fail(b->err, CAI_EFORMAT, "%s.classEncoding: unknown value %d", tn, enc);
        if ((rc = cml__mm_labels(&b->m->arena, msg, 100, 101, "GLMClassifier.ClassLabels", labels,
                                 b->err)))
            return rc;
        g->n_classes = labels->n;
        if (labels->n < 2)
            return cai__fail(b->err, CAI_EFORMAT, "%s: needs at least 2 class labels, has %zu",
                             tn, labels->n);
        if (g->n_out == 1 && labels->n == 2)
            g->encoding = ENC_BINARY;
        else if (enc == 1 && g->n_out == labels->n)
            g->encoding = ENC_OVR;
        else if (enc == 0 && g->n_out + 1 == labels->n)
            g->encoding = ENC_REFERENCE;
        else
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: %zu weight rows do not fit %zu classes with %s encoding", tn,
                             g->n_out, labels->n, enc ? "OneVsRest" : "ReferenceClass");
        if (g->encoding == ENC_REFERENCE && g->transform != GLM_LOGIT)
            return cai__fail(b->err, CAI_EUNSUPPORTED,
                             "%s: ReferenceClass encoding is only supported with Logit", tn);
    } else {
        if (t < 0 || t > 2)
            return cai__fail(b->err, CAI_EFORMAT, "%s.postEvaluationTransform: unknown value %d",
                             tn, t);
        g->transform = t == 0 ? GLM_NONE : t == 1 ? GLM_LOGIT : GLM_PROBIT;
    }

    struct cml__node *nd = cml__node_add(b, mm);
    if (!nd)
        return b->err ? b->err->code : CAI_ENOMEM;
    nd->impl = g;
    nd->n_scratch = CAI_MAX(g->n_feat + 2 * (g->n_classes + g->n_out),
                            BLOCK * g->n_out + g->n_classes);
    nd->n_scratch = CAI_MAX(nd->n_scratch, 16 * ((g->n_feat + 7) / 8 * 8) + 17 * g->n_out +
                                               g->n_classes + 1 + (g->n_feat + 24) / 2);
    if (b->m->simd) {
        g->ldw = (g->n_out + 7) / 8 * 8;
        g->wt = cml__arena_array(&b->m->arena, g->n_feat, g->ldw * sizeof(double));
        if (!g->wt)
            return cai__fail(b->err, CAI_ENOMEM, "out of memory");
        g->finite = true;
        for (size_t k = 0; k < g->n_out; k++) {
            for (size_t j = 0; j < g->n_feat; j++) {
                g->wt[j * g->ldw + k] = g->w[k * g->n_feat + j];
                g->finite &= isfinite(g->w[k * g->n_feat + j]) != 0;
            }
        }
        g->simd = true;
    }
    if ((rc = cml__bind_inputs(b, nd, mm)) != 0)
        return rc;
    if ((rc = cml__bind_outputs(b, nd, mm, NULL, g->n_out)) != 0)
        return rc;
    size_t want = 0;
    for (size_t i = 0; i < nd->n_in; i++) {
        size_t e = cml__input_elems(b, nd, i);
        if (e == 0) {
            want = 0;
            break;
        }
        want += e;
    }
    if (want && want != g->n_feat)
        return cai__fail(b->err, CAI_EFORMAT, "%s: %zu weights per row but %zu input values", tn,
                         g->n_feat, want);
    if (cls) {
        nd->run = run_classifier;
        nd->run_batch = run_batch;
        rc = cml__bind_classifier(b, nd, mm, labels);
        cml__node_info(b, nd, "%zu features, %zu classes, %s, %s", g->n_feat, labels->n,
                       g->encoding == ENC_OVR ? "one-vs-rest" :
                       g->encoding == ENC_BINARY ? "binary" : "reference class",
                       g->transform == GLM_LOGIT ? "logit" : "probit");
    } else {
        nd->run = run_regressor;
        rc = cml__bind_regressor(b, nd, mm);
        if (rc == 0 && cml__batch_values_ok(b, nd, g->n_out))
            nd->run_batch = run_batch;
        cml__node_info(b, nd, "%zu features, %zu outputs", g->n_feat, g->n_out);
    }
    return rc;
}
