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

int cai__awq_search(const struct cai_kernels *k, const struct cai__awq_mat *mats, int n_mats,
                    int64_t n_in, const float *absmean, const float *H, const int32_t *tie,
                    int n_grid, int sample_rows, float *s, float *alpha_out, float *gain_out,
                    struct cai_pool *pool, struct cai_error *err)
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
    int rc = 0;
    if (!a || !cand || !imp || !wrow || !E || !blk) {
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

    double err0 = -1.0, best = INFINITY;
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
        int64_t e_row = 0;
        for (int m = 0; m < n_mats; m++) {
            const struct cai__awq_mat *mt = &mats[m];
            int64_t ns = CAI_MIN((int64_t)sample_rows, mt->n_out);
            for (int64_t i = 0; i < ns; i++) {
                int64_t r = i * mt->n_out / ns;
                const float *w = mt->w + r * n_in;
                for (int64_t j = 0; j < n_in; j++)
                    wrow[j] = w[j] * cand[j];
                cai__qfmt_quantize_row(mt->fmt, wrow, imp, blk, n_in);
                float *e = E + e_row * n_in;
                k->type[mt->fmt->type].to_f32(blk, e, n_in);
                for (int64_t j = 0; j < n_in; j++)
                    e[j] = e[j] / cand[j] - w[j];
                e_row++;
            }
        }
        double e = cai__quad_form_rows(k, E, n_rows, n_in, H, pool);
        if (e < 0.0) {
            rc = cai__fail(err, CAI_ENOMEM, "awq: out of memory");
            goto out;
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
    return rc;
}
