/* awq.c: activation-aware per-input-channel scaling (AWQ, Lin et al. 2023).
 *
 * y = W x = (W diag(s)) (x / s) for any s > 0. Multiplying the columns that
 * meet large activations by s > 1 gives them a finer grid relative to their
 * size once W diag(s) is quantized, at the expense of the others; the 1 / s
 * on the input is folded into whatever produces x (an RMSNorm weight, or
 * the rows of the previous matmul), so it costs nothing at run time. The
 * scales come from a one-parameter family s = a^alpha (a = mean |x| per
 * channel, normalised by sqrt(max * min)); alpha is chosen on a grid by the
 * output error of the quantized result on the calibration inputs, measured
 * exactly as e^T H e on a sample of rows. */
#include <math.h>
#include <string.h>

#include "quant_int.h"

int cai__act_block(const struct cai_kernels *k, uint32_t type)
{
    switch (k->type[type].vec_dot_type) {
    case CAI_TYPE_Q8_0:
    case CAI_TYPE_Q8_1: return 32;
    case CAI_TYPE_Q8_K: return 256;
    default: return 0;
    }
}

/* sum_t D_tj^2 / 12 for every channel j (D: the 8-bit step of x_t / s in
 * j's block of `block` channels), over up to 512 sampled tokens scaled to
 * all n_tok. */
static void act_noise(const float *X, int64_t n_tok, int64_t n_in, const float *s, int block,
                      double *m)
{
    int64_t ns = CAI_MIN((int64_t)512, n_tok);
    memset(m, 0, (size_t)n_in * sizeof(double));
    for (int64_t i = 0; i < ns; i++) {
        const float *x = X + (i * n_tok / ns) * n_in;
        for (int64_t b0 = 0; b0 < n_in; b0 += block) {
            int64_t b1 = CAI_MIN(b0 + block, n_in);
            float amax = 0.0f;
            for (int64_t j = b0; j < b1; j++) {
                float v = fabsf(x[j] / s[j]);
                amax = v > amax ? v : amax;
            }
            double d = (double)amax / 127.0;
            for (int64_t j = b0; j < b1; j++)
                m[j] += d * d / 12.0;
        }
    }
    for (int64_t j = 0; j < n_in; j++)
        m[j] *= (double)n_tok / (double)ns;
}

int cai__awq_search(const struct cai_kernels *k, const struct cai__awq_mat *mats, int n_mats,
                    const float *X, int64_t n_tok, int64_t n_in, const float *absmean,
                    const float *H, const int32_t *tie, int n_grid, int sample_rows, float *s,
                    float *alpha_out, float *gain_out, struct cai_pool *pool,
                    struct cai_error *err)
{
    if (n_mats <= 0 || n_in <= 0 || n_grid < 1 || sample_rows < 1)
        return cai__fail(err, CAI_EINVAL, "awq: bad arguments");
    int64_t n_rows = 0;
    for (int m = 0; m < n_mats; m++)
        n_rows += CAI_MIN((int64_t)sample_rows, mats[m].n_out);
    size_t row_max = 0;
    for (int m = 0; m < n_mats; m++) {
        size_t rb;
        if (!cai__row_bytes(mats[m].fmt->type, n_in, &rb))
            return cai__fail(err, CAI_EINVAL, "awq: rows of %lld do not fit %s", (long long)n_in,
                             mats[m].fmt->name);
        row_max = CAI_MAX(row_max, rb);
    }
    float *a = cai__malloc_array((size_t)n_in, sizeof(float));
    float *cand = cai__malloc_array((size_t)n_in, sizeof(float));
    float *imp = cai__malloc_array((size_t)n_in, sizeof(float));
    float *wrow = cai__malloc_array((size_t)n_in, sizeof(float));
    float *E = cai__malloc_array((size_t)n_rows * (size_t)n_in, sizeof(float));
    uint8_t *blk = cai__malloc(row_max);
    double *colsq = cai__calloc((size_t)n_mats * (size_t)n_in, sizeof(double));
    double *noise = cai__malloc_array((size_t)n_in, sizeof(double));
    int rc = 0;
    if (!a || !cand || !imp || !wrow || !E || !blk || !colsq || !noise) {
        rc = cai__fail(err, CAI_ENOMEM, "awq: out of memory");
        goto out;
    }
    /* Channel magnitudes, shared within tie groups. */
    for (int64_t j = 0; j < n_in; j++)
        a[j] = absmean[j];
    if (tie) {
        memset(cand, 0, (size_t)n_in * sizeof(float));
        memset(imp, 0, (size_t)n_in * sizeof(float));
        for (int64_t j = 0; j < n_in; j++) {
            cand[tie[j]] += absmean[j];
            imp[tie[j]] += 1.0f;
        }
        for (int64_t j = 0; j < n_in; j++)
            a[j] = cand[tie[j]] / imp[tie[j]];
    }
    float amax = 0.0f;
    for (int64_t j = 0; j < n_in; j++)
        amax = a[j] > amax ? a[j] : amax;
    for (int64_t j = 0; j < n_in; j++)
        a[j] = a[j] > amax * 1e-6f ? a[j] : amax * 1e-6f;
    if (!(amax > 0.0f)) {
        for (int64_t j = 0; j < n_in; j++)
            s[j] = 1.0f;
        *alpha_out = 0.0f;
        *gain_out = 1.0f;
        goto out;
    }

    /* Column energies |W[:, j]|^2 of each matrix. */
    for (int m = 0; m < n_mats; m++)
        for (int64_t r = 0; r < mats[m].n_out; r++)
            for (int64_t j = 0; j < n_in; j++) {
                double w = (double)mats[m].w[r * n_in + j];
                colsq[(size_t)m * (size_t)n_in + (size_t)j] += w * w;
            }

    double err0 = -1.0, best = (double)INFINITY;
    float best_alpha = 0.0f;
    for (int gi = 0; gi <= n_grid; gi++) {
        float alpha = (float)gi / (float)n_grid;
        float mx = 0.0f, mn = INFINITY;
        for (int64_t j = 0; j < n_in; j++) {
            cand[j] = powf(a[j], alpha);
            mx = cand[j] > mx ? cand[j] : mx;
            mn = cand[j] < mn ? cand[j] : mn;
        }
        float norm = 1.0f / sqrtf(mx * mn);
        for (int64_t j = 0; j < n_in; j++) {
            cand[j] *= norm;
            imp[j] = H[j * n_in + j] / (cand[j] * cand[j]);
        }
        double e = 0.0;
        int64_t e_row = 0;
        for (int m = 0; m < n_mats; m++) {
            const struct cai__awq_mat *mt = &mats[m];
            int64_t ns = CAI_MIN((int64_t)sample_rows, mt->n_out);
            int64_t row0 = e_row;
            for (int64_t i = 0; i < ns; i++) {
                int64_t r = i * mt->n_out / ns;
                const float *w = mt->w + r * n_in;
                for (int64_t j = 0; j < n_in; j++)
                    wrow[j] = w[j] * cand[j];
                cai__qfmt_quantize_row(mt->fmt, wrow, imp, blk, n_in);
                float *er = E + e_row * n_in;
                k->type[mt->fmt->type].to_f32(blk, er, n_in);
                for (int64_t j = 0; j < n_in; j++)
                    er[j] = er[j] / cand[j] - w[j];
                e_row++;
            }
            double ew = cai__quad_form_rows(k, E + row0 * n_in, ns, n_in, H, pool);
            if (ew < 0.0) {
                rc = cai__fail(err, CAI_ENOMEM, "awq: out of memory");
                goto out;
            }
            e += ew * (double)mt->n_out / (double)ns;
            if (mt->act_block > 0 && X) {
                act_noise(X, n_tok, n_in, cand, mt->act_block, noise);
                const double *cs = colsq + (size_t)m * (size_t)n_in;
                for (int64_t j = 0; j < n_in; j++)
                    e += cs[j] * (double)cand[j] * (double)cand[j] * noise[j];
            }
        }
        if (gi == 0)
            err0 = e;
        if (e < best) {
            best = e;
            best_alpha = alpha;
            memcpy(s, cand, (size_t)n_in * sizeof(float));
        }
    }
    *alpha_out = best_alpha;
    *gain_out = err0 > 0.0 ? (float)(best / err0) : 1.0f;
    if (best_alpha == 0.0f)
        for (int64_t j = 0; j < n_in; j++)
            s[j] = 1.0f;
out:
    cai__free(a);
    cai__free(cand);
    cai__free(imp);
    cai__free(wrow);
    cai__free(E);
    cai__free(blk);
    cai__free(colsq);
    cai__free(noise);
    return rc;
}

/* ---- folding ------------------------------------------------------------- */

void cai__awq_tie_gqa(int n_head, int n_head_kv, int head_dim, int32_t *tie)
{
    int group = n_head / n_head_kv;
    for (int64_t col = 0; col < (int64_t)n_head * head_dim; col++) {
        int h = (int)(col / head_dim), dd = (int)(col % head_dim);
        tie[col] = (int32_t)((int64_t)(h / group) * group * head_dim + dd);
    }
}

void cai__awq_scale_cols(float *W, int64_t n_rows, int64_t n_in, const float *s, bool divide)
{
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t j = 0; j < n_in; j++)
            W[r * n_in + j] = divide ? W[r * n_in + j] / s[j] : W[r * n_in + j] * s[j];
}

int cai__awq_fold_rows(uint32_t type, void *rows, size_t row_bytes, int64_t n_rows, int64_t row_len,
                       const float *s, int group, int head_dim, float *bias)
{
    for (int64_t i = 0; i < n_rows; i++) {
        float si = s[(i / head_dim) * group * head_dim + i % head_dim];
        int rc = cai__qfmt_scale_row(type, (uint8_t *)rows + (size_t)i * row_bytes, row_len,
                                     1.0f / si);
        if (rc < 0)
            return rc;
        if (bias)
            bias[i] /= si;
    }
    return 0;
}
