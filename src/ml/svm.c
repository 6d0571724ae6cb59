/* svm.c: SupportVectorRegressor (Model field 301) and SupportVectorClassifier
 * (401), evaluated as libsvm does.
 *
 * The message is libsvm's svm_model: support vectors grouped by class
 * (numberOfSupportVectorsPerClass), K-1 coefficient rows over all of them,
 * one rho per class pair (i < j in order), optional Platt parameters
 * probA/probB per pair. Kernels: linear u.v, RBF exp(-gamma |u-v|^2),
 * polynomial (gamma u.v + c)^degree, sigmoid tanh(gamma u.v + c).
 *
 * Classifier: for each pair (i, j) the decision value is
 *   sum_{s in class i} coef[j-1][s] K(x, s) + sum_{s in class j} coef[i][s] K(x, s) - rho
 * and a positive value votes for i, else for j; the label is the class with
 * the most votes (the first on ties), as libsvm's svm_predict and
 * scikit-learn's SVC.predict give. Probabilities (when probA/probB are
 * present) follow libsvm's svm_predict_probability: each pair's Platt
 * sigmoid 1 / (1 + exp(A f + B)), clipped to [1e-7, 1 - 1e-7], combined by
 * the pairwise coupling of Wu, Lin and Weng (2004), method 2, iterated to
 * libsvm's stopping rule (for two classes too, as scikit-learn does). Without probA/probB the probability output holds
 * the vote shares. Regressor: sum_s coef[s] K(x, s) - rho.
 *
 * Support vectors (sparse ones included) are stored dense, [n_sv][n_feat],
 * so a kernel row is one contiguous pass. */
#include <stdio.h>
#include <string.h>

#include "ml.h"
#include "simd.h"

/* Rows per batch block (the coupling runs one row per lane). */
#define BLOCK 8

enum { K_LINEAR = 1, K_RBF = 2, K_POLY = 3, K_SIGMOID = 4 };

struct svm {
    int     kernel;
    double  gamma, c;
    int     degree;
    size_t  n_sv, n_feat, n_classes, n_pairs;
    double *sv;    /* [n_sv][n_feat] */
    double *coef;  /* [n_rows][n_sv]: K-1 rows (classifier) or 1 (regressor) */
    double *rho;   /* [n_pairs] (regressor: 1) */
    double *prob_a, *prob_b; /* [n_pairs] or NULL */
    size_t *start; /* [n_classes + 1] first SV of each class */
    /* SIMD path: the support vectors in columns (x512.svt), and kernel
     * values computed for x512.ld >= n_sv vectors */
    bool                  simd;
    struct cml__x512_svm  x512;
};

/* ---- evaluation ------------------------------------------------------------------- */

static double kernel(const struct svm *s, const double *x, const double *v)
{
    size_t n = s->n_feat;
    double acc = 0.0;
    if (s->kernel == K_RBF) {
        for (size_t i = 0; i < n; i++) {
            double d = x[i] - v[i];
            acc += d * d;
        }
        return exp(-s->gamma * acc);
    }
    for (size_t i = 0; i < n; i++)
        acc += x[i] * v[i];
    switch (s->kernel) {
    case K_POLY: return pow(s->gamma * acc + s->c, (double)s->degree);
    case K_SIGMOID: return tanh(s->gamma * acc + s->c);
    default: return acc;
    }
}

/* libsvm's sigmoid_predict, written to avoid overflow on either side. */
static double platt(double f, double a, double b)
{
    double z = f * a + b;
    return z >= 0.0 ? exp(-z) / (1.0 + exp(-z)) : 1.0 / (1.0 + exp(z));
}

/* Pairwise coupling (Wu, Lin, Weng 2004, method 2) as libsvm iterates it.
 * r: [k][k] pairwise probabilities; q: [k][k] scratch; qp: [k]; p: [k] out. */
static void couple(size_t k, const double *r, double *q, double *qp, double *p)
{
    size_t max_iter = k > 100 ? k : 100;
    double eps = 0.005 / (double)k;
    for (size_t t = 0; t < k; t++) {
        p[t] = 1.0 / (double)k;
        q[t * k + t] = 0.0;
        for (size_t j = 0; j < k; j++) {
            if (j == t)
                continue;
            q[t * k + t] += r[j * k + t] * r[j * k + t];
            q[t * k + j] = -r[j * k + t] * r[t * k + j];
        }
    }
    for (size_t iter = 0; iter < max_iter; iter++) {
        double pqp = 0.0, max_err = 0.0;
        for (size_t t = 0; t < k; t++) {
            qp[t] = 0.0;
            for (size_t j = 0; j < k; j++)
                qp[t] += q[t * k + j] * p[j];
            pqp += p[t] * qp[t];
        }
        for (size_t t = 0; t < k; t++) {
            double e = fabs(qp[t] - pqp);
            max_err = e > max_err ? e : max_err;
        }
        if (max_err < eps)
            break;
        for (size_t t = 0; t < k; t++) {
            double diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t * k + t] + 2.0 * qp[t])) / (1.0 + diff) /
                  (1.0 + diff);
            for (size_t j = 0; j < k; j++) {
                qp[j] = (qp[j] + diff * q[t * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

/* The n_pairs decision values of one row from its kernel values kv, into
 * dec[p * ls]; votes (K, zeroed here) count the wins. */
static void decide(const struct svm *s, const double *kv, double *dec, size_t ls, double *votes)
{
    size_t K = s->n_classes, p = 0;
    memset(votes, 0, K * sizeof(double));
    for (size_t i = 0; i < K; i++) {
        for (size_t j = i + 1; j < K; j++, p++) {
            const double *ci = s->coef + (j - 1) * s->n_sv, *cj = s->coef + i * s->n_sv;
            double sum;
            if (s->simd) {
                sum = cml__x512_svm_dot(kv, ci, s->start[i], s->start[i + 1], cj, s->start[j],
                                        s->start[j + 1], s->rho[p]);
            } else {
                sum = 0.0;
                for (size_t k = s->start[i]; k < s->start[i + 1]; k++)
                    sum += ci[k] * kv[k];
                for (size_t k = s->start[j]; k < s->start[j + 1]; k++)
                    sum += cj[k] * kv[k];
                sum -= s->rho[p];
            }
            dec[p * ls] = sum;
            votes[sum > 0.0 ? i : j] += 1.0;
        }
    }
}

/* The class with the most votes, the first on ties. */
static size_t vote_winner(const double *votes, size_t K)
{
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
        if (votes[k] > votes[best])
            best = k;
    return best;
}

#define PLATT_LO 1e-7

/* Pairwise probabilities r[K][K] from the decision values of one row:
 * Platt's sigmoid, clipped. pv: n_pairs scratch. */
static void pairwise(const struct svm *s, const double *dec, double *r, double *pv)
{
    const double lo = PLATT_LO;
    size_t K = s->n_classes, p = 0;
    if (s->simd)
        cml__x512_platt(dec, s->prob_a, s->prob_b, pv, s->n_pairs, 1, lo);
    for (size_t i = 0; i < K; i++) {
        for (size_t j = i + 1; j < K; j++, p++) {
            double v;
            if (s->simd) {
                v = pv[p];
            } else {
                v = platt(dec[p], s->prob_a[p], s->prob_b[p]);
                v = v < lo ? lo : v > 1.0 - lo ? 1.0 - lo : v;
            }
            r[i * K + j] = v;
            r[j * K + i] = 1.0 - v;
        }
    }
}

/* Kernel values of n_rows rows (ldx apart) into kv[n_rows][kv_ld]. */
static void kernels(const struct svm *s, const double *x, size_t ldx, size_t n_rows, double *kv,
                    size_t kv_ld)
{
    if (s->simd) {
        cml__x512_svm_kernel(&s->x512, x, ldx, n_rows, kv);
        return;
    }
    for (size_t r = 0; r < n_rows; r++)
        for (size_t i = 0; i < s->n_sv; i++)
            kv[r * kv_ld + i] = kernel(s, x + r * ldx, s->sv + i * s->n_feat);
}

static int run_classifier(const struct cml__node *nd, struct cml__exec *x)
{
    const struct svm *s = nd->impl;
    size_t K = s->n_classes;
    double *sc = x->scratch;
    const double *in = cml__gather(x, nd, s->n_feat, sc);
    if (!in)
        return x->err->code;
    /* scratch: [n_feat] input | [ld] kernel | [n_pairs] dec | [K] votes |
     * [K] probs | [K*K] r | [K*K] q | [K] qp | [n_pairs] Platt */
    double *kv = sc + s->n_feat, *dec = kv + s->x512.ld, *votes = dec + s->n_pairs;
    double *pfb = votes + K, *r = pfb + K, *q = r + K * K, *qp = q + K * K, *pv = qp + K;
    kernels(s, in, s->n_feat, 1, kv, s->x512.ld);
    decide(s, kv, dec, 1, votes);
    size_t best = vote_winner(votes, K);
    double *prob = cml__probs_buf(x, nd, pfb);
    if (s->prob_a) {
        pairwise(s, dec, r, pv);
        /* Coupling for two classes too: scikit-learn's libsvm does so
         * (libsvm 3.x itself returns r[0][1] and r[1][0] directly, which
         * differs by up to the coupling's stopping tolerance, 0.0025). */
        couple(K, r, q, qp, prob);
    } else {
        for (size_t k = 0; k < K; k++)
            prob[k] = votes[k] / (double)s->n_pairs;
    }
    cml__publish_class(x, nd, prob);
    /* The label comes from the votes (libsvm svm_predict, sklearn predict),
     * which can differ from the most probable class. */
    if (x->class_index != (int)best) {
        x->class_index = (int)best;
        if (nd->label_out >= 0) {
            struct cml_value *lv = &x->vals[nd->out[nd->label_out]];
            if (nd->labels->is_str) {
                lv->str = nd->labels->str[best];
            } else {
                lv->i64 = nd->labels->i64[best];
                lv->f64 = (double)lv->i64;
            }
        }
    }
    return 0;
}

static double regress(const struct svm *s, const double *kv)
{
    if (s->simd)
        return cml__x512_svm_dot(kv, s->coef, 0, s->n_sv, NULL, 0, 0, s->rho[0]);
    double sum = -s->rho[0];
    for (size_t i = 0; i < s->n_sv; i++)
        sum += s->coef[i] * kv[i];
    return sum;
}

static int run_regressor(const struct cml__node *nd, struct cml__exec *x)
{
    const struct svm *s = nd->impl;
    const double *in = cml__gather(x, nd, s->n_feat, x->scratch);
    if (!in)
        return x->err->code;
    double *kv = x->scratch + s->n_feat;
    kernels(s, in, s->n_feat, 1, kv, s->x512.ld);
    int32_t o = nd->out[nd->values_out];
    x->buf[o][0] = regress(s, kv);
    cml__publish(x, o, 1);
    return 0;
}

/* Batches of BLOCK rows: kernel values for the block, then per row the
 * decision values and votes of a single prediction. The SIMD path then
 * takes Platt's sigmoid of the block's decision values in lanes (rows of
 * dec8[n_pairs][BLOCK]) and couples the rows in lanes, each lane doing the
 * single-row operations. scratch: see the layout below. */
static int run_batch(const struct cml__node *nd, const double *X, size_t n_rows, size_t n_cols,
                     double *scratch, const struct cml_batch_out *out)
{
    const struct svm *s = nd->impl;
    size_t K = s->n_classes, P = s->n_pairs, ld = s->x512.ld;
    if (n_cols != s->n_feat)
        return CAI_EINVAL;
    double *kv = scratch, *dec8 = kv + BLOCK * ld, *votes = dec8 + BLOCK * P;
    double *r8 = votes + K, *q8 = r8 + BLOCK * K * K, *qp8 = q8 + BLOCK * K * K;
    double *p8 = qp8 + BLOCK * K, *pv = p8 + BLOCK * K, *pb = pv + BLOCK * P;
    bool lanes = nd->labels && s->prob_a && s->simd;
    for (size_t r0 = 0; r0 < n_rows; r0 += BLOCK) {
        size_t nb = CAI_MIN((size_t)BLOCK, n_rows - r0);
        kernels(s, X + r0 * n_cols, n_cols, nb, kv, ld);
        for (size_t r = 0; r < nb; r++) {
            const double *kr = kv + r * ld;
            if (!nd->labels) {
                if (out->values)
                    out->values[r0 + r] = regress(s, kr);
                continue;
            }
            decide(s, kr, lanes ? dec8 + r : dec8, lanes ? BLOCK : 1, votes);
            if (out->class_index)
                out->class_index[r0 + r] = (int32_t)vote_winner(votes, K);
            double *p = out->probs ? out->probs + (r0 + r) * K : pb;
            if (!s->prob_a) {
                for (size_t k = 0; k < K; k++)
                    p[k] = votes[k] / (double)P;
            } else if (!lanes) {
                pairwise(s, dec8, r8, pv);
                couple(K, r8, q8, qp8, p);
            }
        }
        if (!lanes)
            continue;
        /* Lanes past nb copy row 0, so that every lane converges. */
        for (size_t p = 0; p < P; p++)
            for (size_t r = nb; r < BLOCK; r++)
                dec8[p * BLOCK + r] = dec8[p * BLOCK];
        cml__x512_platt(dec8, s->prob_a, s->prob_b, pv, P, BLOCK, PLATT_LO);
        for (size_t i = 0, p = 0; i < K; i++) {
            for (size_t j = i + 1; j < K; j++, p++) {
                for (size_t r = 0; r < BLOCK; r++) {
                    double v = pv[p * BLOCK + r];
                    r8[(i * K + j) * BLOCK + r] = v;
                    r8[(j * K + i) * BLOCK + r] = 1.0 - v;
                }
            }
        }
        cml__x512_couple8(K, r8, q8, qp8, p8);
        if (out->probs)
            cml__x512_untranspose8(p8, K, nb, out->probs + r0 * K, K, q8);
    }
    return 0;
}

/* ---- loading --------------------------------------------------------------------- */

static int load_kernel(struct cml__build *b, const struct cml__pb *msg, struct svm *s)
{
    struct cml__pb_field f, g;
    struct cml__pb sub;
    int rc = cml__mm_find(msg, 1, &f, b->err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return cai__fail(b->err, CAI_EFORMAT, "SVM.kernel: missing");
    if ((rc = cml__pb_len(&f, "SVM.kernel", b->err)))
        return rc;
    struct cml__pb km;
    cml__pb_sub(&km, msg, &f);
    struct cml__pb r = km;
    s->kernel = 0;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num < 1 || f.num > 4)
            continue;
        if ((rc = cml__pb_len(&f, "Kernel", b->err)))
            return rc;
        s->kernel = (int)f.num;
        s->gamma = s->c = 0.0;
        s->degree = 0;
        cml__pb_sub(&sub, &km, &f);
        while ((rc = cml__pb_next(&sub, &g, b->err)) > 0) {
            if (f.num == K_RBF && g.num == 1)
                rc = cml__pb_double(&g, "RBFKernel.gamma", &s->gamma, b->err);
            else if (f.num == K_POLY && g.num == 1)
                rc = cml__pb_i32(&g, "PolyKernel.degree", &s->degree, b->err);
            else if (f.num == K_POLY && g.num == 2)
                rc = cml__pb_double(&g, "PolyKernel.c", &s->c, b->err);
            else if (f.num == K_POLY && g.num == 3)
                rc = cml__pb_double(&g, "PolyKernel.gamma", &s->gamma, b->err);
            else if (f.num == K_SIGMOID && g.num == 1)
                rc = cml__pb_double(&g, "SigmoidKernel.gamma", &s->gamma, b->err);
            else if (f.num == K_SIGMOID && g.num == 2)
                rc = cml__pb_double(&g, "SigmoidKernel.c", &s->c, b->err);
            if (rc < 0)
                return rc;
        }
        if (rc < 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    if (s->kernel == 0)
        return cai__fail(b->err, CAI_EFORMAT, "SVM.kernel: no kernel type");
    if (s->kernel == K_POLY && (s->degree < 0 || s->degree > 64))
        return cai__fail(b->err, CAI_EFORMAT, "PolyKernel.degree: %d out of range", s->degree);
    return 0;
}

/* Support vectors, dense or sparse, into s->sv [n_sv][n_feat]. n_feat_decl:
 * the declared input size (0 when unknown). */
static int load_vectors(struct cml__build *b, const struct cml__pb *msg, uint32_t sparse_field,
                        uint32_t dense_field, size_t n_feat_decl, struct svm *s)
{
    struct cml__pb r = *msg, vs, v;
    struct cml__pb_field f, last = {0};
    int rc;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0)
        if (f.num == sparse_field || f.num == dense_field)
            last = f;
    if (rc < 0)
        return rc;
    if (last.num == 0)
        return cai__fail(b->err, CAI_EFORMAT, "SVM: no support vectors");
    if ((rc = cml__pb_len(&last, "SVM.supportVectors", b->err)))
        return rc;
    cml__pb_sub(&vs, msg, &last);
    bool sparse = last.num == sparse_field;
    if ((rc = cml__mm_count(&vs, 1, &s->n_sv, b->err)))
        return rc;
    if (s->n_sv == 0)
        return cai__fail(b->err, CAI_EFORMAT, "SVM: no support vectors");
    /* First pass: the feature count. */
    size_t n_feat = n_feat_decl, idx = 0;
    r = vs;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != 1)
            continue;
        if ((rc = cml__pb_len(&f, "SVM.vectors", b->err)))
            return rc;
        cml__pb_sub(&v, &vs, &f);
        size_t n;
        if (!sparse) {
            if ((rc = cml__mm_count(&v, 1, &n, b->err)))
                return rc;
            double *d;
            if ((rc = cml__mm_doubles(&b->m->arena, &v, 1, "DenseVector.values", &d, &n,
                                      b->err)))
                return rc;
            if (n_feat_decl && n != n_feat_decl)
                return cai__fail(b->err, CAI_EFORMAT,
                                 "DenseSupportVectors.vectors[%zu]: %zu values, input has %zu",
                                 idx, n, n_feat_decl);
            if (idx > 0 && n != n_feat)
                return cai__fail(b->err, CAI_EFORMAT,
                                 "DenseSupportVectors.vectors[%zu]: %zu values, expected %zu", idx,
                                 n, n_feat);
            n_feat = n;
        } else {
            struct cml__pb nr = v, node;
            struct cml__pb_field g, h;
            while ((rc = cml__pb_next(&nr, &g, b->err)) > 0) {
                if (g.num != 1)
                    continue;
                if ((rc = cml__pb_len(&g, "SparseVector.nodes", b->err)))
                    return rc;
                cml__pb_sub(&node, &v, &g);
                int32_t index = 0;
                while ((rc = cml__pb_next(&node, &h, b->err)) > 0)
                    if (h.num == 1 && (rc = cml__pb_i32(&h, "SparseNode.index", &index, b->err)))
                        return rc;
                if (rc < 0)
                    return rc;
                if (index < 1 || (n_feat_decl && (size_t)index > n_feat_decl) || index > (1 << 24))
                    return cai__fail(b->err, CAI_EFORMAT,
                                     "SparseSupportVectors.vectors[%zu]: index %d out of range",
                                     idx, index);
                if (!n_feat_decl && (size_t)index > n_feat)
                    n_feat = (size_t)index;
            }
            if (rc < 0)
                return rc;
        }
        idx++;
    }
    if (rc < 0)
        return rc;
    if (n_feat == 0)
        return cai__fail(b->err, CAI_EFORMAT, "SVM: support vectors have no features");
    s->n_feat = n_feat;
    s->sv = cml__arena_array(&b->m->arena, s->n_sv, n_feat * sizeof(double));
    if (!s->sv)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory for %zu support vectors", s->n_sv);
    /* Second pass: values. */
    idx = 0;
    r = vs;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != 1)
            continue;
        cml__pb_sub(&v, &vs, &f);
        double *row = s->sv + idx * n_feat;
        if (!sparse) {
            double *d;
            size_t n;
            if ((rc = cml__mm_doubles(&b->m->arena, &v, 1, "DenseVector.values", &d, &n,
                                      b->err)))
                return rc;
            memcpy(row, d, n * sizeof(double));
        } else {
            struct cml__pb nr = v, node;
            struct cml__pb_field g, h;
            while ((rc = cml__pb_next(&nr, &g, b->err)) > 0) {
                if (g.num != 1)
                    continue;
                cml__pb_sub(&node, &v, &g);
                int32_t index = 0;
                double val = 0.0;
                while ((rc = cml__pb_next(&node, &h, b->err)) > 0) {
                    if (h.num == 1)
                        rc = cml__pb_i32(&h, "SparseNode.index", &index, b->err);
                    else if (h.num == 2)
                        rc = cml__pb_double(&h, "SparseNode.value", &val, b->err);
                    if (rc < 0)
                        return rc;
                }
                if (rc < 0)
                    return rc;
                row[index - 1] = val;
            }
            if (rc < 0)
                return rc;
        }
        idx++;
    }
    return rc;
}

/* repeated Coefficients { repeated double alpha = 1; } at `field`: n_rows x n_sv. */
static int load_coef(struct cml__build *b, const struct cml__pb *msg, uint32_t field,
                     size_t n_rows, struct svm *s)
{
    size_t n;
    int rc = cml__mm_count(msg, field, &n, b->err);
    if (rc)
        return rc;
    if (n != n_rows)
        return cai__fail(b->err, CAI_EFORMAT, "SVM.coefficients: %zu rows, expected %zu", n,
                         n_rows);
    s->coef = cml__arena_array(&b->m->arena, n_rows, s->n_sv * sizeof(double));
    if (!s->coef)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    size_t k = 0;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != field)
            continue;
        if ((rc = cml__pb_len(&f, "SVM.coefficients", b->err)))
            return rc;
        cml__pb_sub(&sub, msg, &f);
        double *a;
        size_t na;
        if ((rc = cml__mm_doubles(&b->m->arena, &sub, 1, "Coefficients.alpha", &a, &na, b->err)))
            return rc;
        if (na != s->n_sv)
            return cai__fail(b->err, CAI_EFORMAT,
                             "SVM.coefficients[%zu]: %zu values for %zu support vectors", k, na,
                             s->n_sv);
        memcpy(s->coef + k * s->n_sv, a, na * sizeof(double));
        k++;
    }
    return rc;
}

/* The SIMD layout: support vectors in columns, [n_feat][ld], ld = n_sv
 * rounded up to 8 (x512.ld is n_sv on the plain path). */
static int setup_simd(struct cml__build *b, struct svm *s)
{
    struct cml__x512_svm *v = &s->x512;
    *v = (struct cml__x512_svm){.kernel = s->kernel, .gamma = s->gamma, .c = s->c,
                                .degree = s->degree, .n_sv = s->n_sv, .n_feat = s->n_feat,
                                .ld = s->n_sv};
    if (!b->m->simd)
        return 0;
    v->ld = (s->n_sv + 7) / 8 * 8;
    double *t = cml__arena_array(&b->m->arena, s->n_feat, v->ld * sizeof(double));
    if (!t)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->n_sv; i++)
        for (size_t k = 0; k < s->n_feat; k++)
            t[k * v->ld + i] = s->sv[i * s->n_feat + k];
    v->svt = t;
    s->simd = true;
    return 0;
}

int cml__load_svm(struct cml__build *b, const struct cml__mm_model *mm)
{
    bool cls = mm->type_field == CML__MM_SVC;
    const char *tn = cls ? "SupportVectorClassifier" : "SupportVectorRegressor";
    const struct cml__pb *msg = &mm->type_msg;
    struct svm *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    struct cml__labels *labels = cml__arena_alloc(&b->m->arena, sizeof(*labels));
    int rc;
    if (!s || !labels)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    struct cml__node *nd = cml__node_add(b, mm);
    if (!nd)
        return b->err ? b->err->code : CAI_ENOMEM;
    if ((rc = cml__bind_inputs(b, nd, mm)))
        return rc;
    size_t n_feat = 0;
    for (size_t i = 0; i < nd->n_in; i++) {
        size_t e = cml__input_elems(b, nd, i);
        if (e == 0) {
            n_feat = 0;
            break;
        }
        n_feat += e;
    }
    if ((rc = load_kernel(b, msg, s)) ||
        (rc = load_vectors(b, msg, cls ? 3 : 2, cls ? 4 : 3, n_feat, s))) {
        cai__error_prefix(b->err, tn);
        return rc;
    }
    if (!cls) {
        if ((rc = load_coef(b, msg, 4, 1, s)))
            return rc;
        struct cml__pb_field f;
        s->rho = cml__arena_alloc(&b->m->arena, sizeof(double));
        if (!s->rho)
            return cai__fail(b->err, CAI_ENOMEM, "out of memory");
        if ((rc = cml__mm_find(msg, 5, &f, b->err)) < 0)
            return rc;
        if (rc && (rc = cml__pb_double(&f, "SupportVectorRegressor.rho", s->rho, b->err)))
            return rc;
        nd->impl = s;
        nd->run = run_regressor;
        if ((rc = setup_simd(b, s)))
            return rc;
        nd->n_scratch = CAI_MAX(s->n_feat + s->x512.ld, BLOCK * s->x512.ld);
        if ((rc = cml__bind_outputs(b, nd, mm, NULL, 1)) || (rc = cml__bind_regressor(b, nd, mm)))
            return rc;
        if (cml__batch_values_ok(b, nd, 1))
            nd->run_batch = run_batch;
    } else {
        uint64_t *nsv;
        size_t K, n;
        if ((rc = cml__mm_varints(&b->m->arena, msg, 2, "numberOfSupportVectorsPerClass", &nsv,
                                  &K, b->err)))
            return rc;
        if ((rc = cml__mm_labels(&b->m->arena, msg, 100, 101, "SVC.ClassLabels", labels,
                                 b->err)))
            return rc;
        if (K < 2 || K > 4096 || labels->n != K)
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: %zu classes in numberOfSupportVectorsPerClass, %zu labels", tn,
                             K, labels->n);
        s->n_classes = K;
        s->n_pairs = K * (K - 1) / 2;
        s->start = cml__arena_array(&b->m->arena, K + 1, sizeof(size_t));
        if (!s->start)
            return cai__fail(b->err, CAI_ENOMEM, "out of memory");
        for (size_t k = 0; k < K; k++) {
            if (nsv[k] > s->n_sv - s->start[k])
                return cai__fail(b->err, CAI_EFORMAT,
                                 "%s.numberOfSupportVectorsPerClass: counts exceed the %zu "
                                 "support vectors", tn, s->n_sv);
            s->start[k + 1] = s->start[k] + (size_t)nsv[k];
        }
        if (s->start[K] != s->n_sv)
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s.numberOfSupportVectorsPerClass: sum %zu != %zu support vectors",
                             tn, s->start[K], s->n_sv);
        if ((rc = load_coef(b, msg, 5, K - 1, s)))
            return rc;
        if ((rc = cml__mm_doubles(&b->m->arena, msg, 6, "SVC.rho", &s->rho, &n, b->err)))
            return rc;
        if (n != s->n_pairs)
            return cai__fail(b->err, CAI_EFORMAT, "%s.rho: %zu values for %zu class pairs", tn, n,
                             s->n_pairs);
        size_t na, nb;
        if ((rc = cml__mm_doubles(&b->m->arena, msg, 7, "SVC.probA", &s->prob_a, &na, b->err)) ||
            (rc = cml__mm_doubles(&b->m->arena, msg, 8, "SVC.probB", &s->prob_b, &nb, b->err)))
            return rc;
        if (na != nb || (na != 0 && na != s->n_pairs))
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: probA/probB have %zu/%zu values for %zu class pairs", tn, na, nb,
                             s->n_pairs);
        if (na == 0)
            s->prob_a = s->prob_b = NULL;
        nd->impl = s;
        nd->run = run_classifier;
        nd->run_batch = run_batch;
        if ((rc = setup_simd(b, s)))
            return rc;
        size_t ld = s->x512.ld;
        nd->n_scratch = CAI_MAX(s->n_feat + ld + 2 * s->n_pairs + 3 * K + 2 * K * K,
                                BLOCK * (ld + 2 * s->n_pairs + 2 * K * K + 2 * K + 8) + 2 * K);
        if ((rc = cml__bind_outputs(b, nd, mm, NULL, K)) ||
            (rc = cml__bind_classifier(b, nd, mm, labels)))
            return rc;
    }
    static const char *const kn[] = {"?", "linear", "rbf", "poly", "sigmoid"};
    cml__node_info(b, nd, "%s kernel, %zu support vectors, %zu features%s%s", kn[s->kernel],
                   s->n_sv, s->n_feat, cls ? ", " : "",
                   cls ? (s->prob_a ? "probabilities" : "votes") : "");
    return 0;
}
