/* qfmt.c: importance-weighted fits of the engine's block formats.
 *
 * Each format is "a group of elements, a grid per element, integer codes"
 * (struct cai__qfmt). The fits minimise the importance-weighted squared
 * error sum_i imp_i (x_i - grid(q_i))^2 by trying a short list of scales,
 * rounding to each, and solving the weighted least-squares scale (and
 * offset) for the codes found; the best candidate wins. The scales are then
 * stored as the format stores them (f16, 6-bit sub-block scales of the K
 * formats, int8 of Q6_K) and every element's grid is the one the stored
 * scales give, so the codes chosen afterwards decode exactly to the grid
 * (the kernels' to_f32 is the check, in the unit tests).
 *
 * Codes: Q4_0 [-8, 7], Q5_0 [-16, 15], Q8_0 [-128, 127], Q6_K [-32, 31]
 * (value = scale * q); Q4_1, Q4_K [0, 15] and Q5_1, Q5_K [0, 31] (value =
 * scale * q + offset). Layouts: REFERENCE/formats.md and the ref kernels. */
#include <math.h>
#include <string.h>

#include "quant_int.h"

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static inline int nearest(float v)
{
    return (int)lrintf(v);
}

static inline float impw(const float *imp, int i)
{
    return imp ? imp[i] : 1.0f;
}

/* ---- scalar fits --------------------------------------------------------- */

/* y = s * q, q in [qmin, qmax]. The element of largest magnitude is mapped
 * near either end of the range; for each candidate the codes are rounded
 * and the weighted least-squares s for them computed. Returns the best s
 * (its sign orients the grid). */
static float fit_sym(const float *x, const float *imp, int n, int qmin, int qmax, int n_step)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-30f)
        return 0.0f;
    double sxx = 0.0;
    for (int i = 0; i < n; i++)
        sxx += (double)impw(imp, i) * (double)x[i] * (double)x[i];
    float step = (float)(qmax - qmin + 1) / 160.0f;
    float best_s = (float)qmin != 0.0f ? max / (float)qmin : 0.0f;
    double best_err = (double)INFINITY;
    for (int side = 0; side < 2; side++) {
        float target = side ? (float)qmax : (float)qmin;
        for (int k = -n_step; k <= n_step; k++) {
            float iscale = (target + step * (float)k) / max;
            double sxq = 0.0, sqq = 0.0;
            for (int i = 0; i < n; i++) {
                int q = clampi(nearest(iscale * x[i]), qmin, qmax);
                double w = (double)impw(imp, i);
                sxq += w * (double)x[i] * q;
                sqq += w * (double)q * q;
            }
            if (sqq <= 0.0)
                continue;
            double err = sxx - sxq * sxq / sqq;
            if (err < best_err) {
                best_err = err;
                best_s = (float)(sxq / sqq);
            }
        }
    }
    return best_s;
}

/* Weighted squared error of x on the grid s * q + m, q nearest in [0, qmax]. */
static double asym_err(const float *x, const float *imp, int n, int qmax, float s, float m)
{
    double e = 0.0;
    float is = s > 0.0f ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) {
        int q = clampi(nearest((x[i] - m) * is), 0, qmax);
        float d = s * (float)q + m - x[i];
        e += (double)impw(imp, i) * (double)d * (double)d;
    }
    return e;
}

/* y = s * q + m, q in [0, qmax], s >= 0; with m_nonpos the offset is
 * limited to m <= 0 (the K formats store -m as an unsigned minimum). */
static void fit_asym(const float *x, const float *imp, int n, int qmax, bool m_nonpos, int n_step,
                     float *s_out, float *m_out)
{
    float min = x[0], max = x[0];
    for (int i = 1; i < n; i++) {
        min = x[i] < min ? x[i] : min;
        max = x[i] > max ? x[i] : max;
    }
    if (m_nonpos && min > 0.0f)
        min = 0.0f;
    if (max - min < 1e-30f) {
        *s_out = 0.0f;
        *m_out = min;
        return;
    }
    float best_s = (max - min) / (float)qmax, best_m = min;
    double best_err = asym_err(x, imp, n, qmax, best_s, best_m);
    for (int k = -n_step; k <= n_step; k++) {
        float s = (max - min) / ((float)qmax + 0.25f * (float)k);
        float m = min;
        if (s <= 0.0f)
            continue;
        for (int it = 0; it < 2; it++) {
            double A = 0, B = 0, C = 0, D = 0, E = 0;
            float is = 1.0f / s;
            for (int i = 0; i < n; i++) {
                double w = (double)impw(imp, i);
                int q = clampi(nearest((x[i] - m) * is), 0, qmax);
                A += w * q * q;
                B += w * q;
                C += w;
                D += w * (double)x[i] * q;
                E += w * (double)x[i];
            }
            double det = A * C - B * B;
            if (det <= 1e-30 * (A * C + 1e-30))
                break;
            double ns = (C * D - B * E) / det, nm = (A * E - B * D) / det;
            if (m_nonpos && nm > 0.0) {
                nm = 0.0;
                ns = A > 0 ? D / A : 0.0;
            }
            if (!(ns > 0.0))
                break;
            s = (float)ns;
            m = (float)nm;
        }
        double err = asym_err(x, imp, n, qmax, s, m);
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_m = m;
        }
    }
    *s_out = best_s;
    *m_out = best_m;
}

static inline float h2f(cai_half h)
{
    return cai__fp16_to_f32(h);
}

static inline cai_half f2h(float f)
{
    return cai__f32_to_fp16(f);
}

/* ---- 32-element formats -------------------------------------------------- */

#define N_STEP 8

static void fit_q4_0(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q4_0 *b = blk;
    b->d = f2h(fit_sym(x, imp, 32, -8, 7, N_STEP));
    float d = h2f(b->d);
    for (int i = 0; i < 32; i++) {
        scale[i] = d;
        offset[i] = 0.0f;
    }
}

static void pack_q4_0(void *blk, const int *q)
{
    struct cai_block_q4_0 *b = blk;
    for (int j = 0; j < 16; j++)
        b->qs[j] = (uint8_t)((q[j] + 8) | (q[j + 16] + 8) << 4);
}

static void fit_q5_0(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q5_0 *b = blk;
    b->d = f2h(fit_sym(x, imp, 32, -16, 15, N_STEP));
    float d = h2f(b->d);
    for (int i = 0; i < 32; i++) {
        scale[i] = d;
        offset[i] = 0.0f;
    }
}

static void pack5(uint8_t qs[16], uint8_t qh[4], const int *u)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((u[j] & 0x0f) | (u[j + 16] & 0x0f) << 4);
        h |= (uint32_t)(u[j] >> 4) << j;
        h |= (uint32_t)(u[j + 16] >> 4) << (j + 16);
    }
    for (int j = 0; j < 4; j++)
        qh[j] = (uint8_t)(h >> (8 * j));
}

static void pack_q5_0(void *blk, const int *q)
{
    struct cai_block_q5_0 *b = blk;
    int u[32];
    for (int i = 0; i < 32; i++)
        u[i] = q[i] + 16;
    pack5(b->qs, b->qh, u);
}

static void fit_q8_0(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q8_0 *b = blk;
    b->d = f2h(fit_sym(x, imp, 32, -128, 127, 2));
    float d = h2f(b->d);
    for (int i = 0; i < 32; i++) {
        scale[i] = d;
        offset[i] = 0.0f;
    }
}

static void pack_q8_0(void *blk, const int *q)
{
    struct cai_block_q8_0 *b = blk;
    for (int i = 0; i < 32; i++)
        b->qs[i] = (int8_t)q[i];
}

/* Q4_1 / Q5_1: d and m stored as f16. */
static void fit_q41_common(const float *x, const float *imp, int qmax, cai_half *dh, cai_half *mh,
                           float *scale, float *offset)
{
    float s, m;
    fit_asym(x, imp, 32, qmax, false, N_STEP, &s, &m);
    *dh = f2h(s);
    *mh = f2h(m);
    float d = h2f(*dh), mm = h2f(*mh);
    for (int i = 0; i < 32; i++) {
        scale[i] = d;
        offset[i] = mm;
    }
}

static void fit_q4_1(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q4_1 *b = blk;
    fit_q41_common(x, imp, 15, &b->d, &b->m, scale, offset);
}

static void pack_q4_1(void *blk, const int *q)
{
    struct cai_block_q4_1 *b = blk;
    for (int j = 0; j < 16; j++)
        b->qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
}

static void fit_q5_1(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q5_1 *b = blk;
    fit_q41_common(x, imp, 31, &b->d, &b->m, scale, offset);
}

static void pack_q5_1(void *blk, const int *q)
{
    struct cai_block_q5_1 *b = blk;
    pack5(b->qs, b->qh, q);
}

/* ---- K formats ----------------------------------------------------------- */

/* 8 scales and 8 mins (each < 64) -> the 12 packed bytes (get_scale_min_k4's inverse). */
static void pack_k4_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | (mn[j + 4] & 0x0f) << 4);
    }
}

/* Picks the super-block scale for 8 non-negative sub-block values v[j]
 * stored as d * c with c in [0, 63]: tries d = max / (63 - t) for a few t
 * and keeps the one with the smallest weighted error (weights: each
 * sub-block's total importance). */
static float fit_6bit(const float v[8], const double wsub[8], uint8_t c[8])
{
    float max = 0.0f;
    for (int j = 0; j < 8; j++)
        max = v[j] > max ? v[j] : max;
    if (max <= 0.0f) {
        memset(c, 0, 8);
        return 0.0f;
    }
    float best_d = max / 63.0f;
    double best_e = (double)INFINITY;
    for (int t = 0; t < 6; t++) {
        float d = cai__fp16_to_f32(cai__f32_to_fp16(max / (63.0f - 0.5f * (float)t)));
        if (!(d > 0.0f))
            continue;
        double e = 0.0;
        for (int j = 0; j < 8; j++) {
            int cj = clampi(nearest(v[j] / d), 0, 63);
            double r = (double)d * cj - (double)v[j];
            e += wsub[j] * r * r;
        }
        if (e < best_e) {
            best_e = e;
            best_d = d;
        }
    }
    for (int j = 0; j < 8; j++)
        c[j] = (uint8_t)clampi(nearest(v[j] / best_d), 0, 63);
    return best_d;
}

static void fit_k4_common(const float *x, const float *imp, int qmax, cai_half *dh, cai_half *dminh,
                          uint8_t scales[12], float *scale, float *offset)
{
    float s[8], mneg[8];
    double wsub[8];
    for (int j = 0; j < 8; j++) {
        float m;
        fit_asym(x + 32 * j, imp ? imp + 32 * j : NULL, 32, qmax, true, N_STEP / 2, &s[j], &m);
        mneg[j] = -m;
        wsub[j] = 0.0;
        for (int i = 0; i < 32; i++)
            wsub[j] += (double)impw(imp, 32 * j + i);
    }
    uint8_t sc[8], mn[8];
    float d = fit_6bit(s, wsub, sc);
    float dmin = fit_6bit(mneg, wsub, mn);
    *dh = f2h(d);
    *dminh = f2h(dmin);
    d = h2f(*dh);
    dmin = h2f(*dminh);
    pack_k4_scales(sc, mn, scales);
    for (int j = 0; j < 8; j++) {
        for (int i = 0; i < 32; i++) {
            scale[32 * j + i] = d * (float)sc[j];
            offset[32 * j + i] = -dmin * (float)mn[j];
        }
    }
}

static void fit_q4_k(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q4_k *b = blk;
    fit_k4_common(x, imp, 15, &b->d, &b->dmin, b->scales, scale, offset);
}

static void pack_q4_k(void *blk, const int *q)
{
    struct cai_block_q4_k *b = blk;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
}

static void fit_q5_k(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q5_k *b = blk;
    fit_k4_common(x, imp, 31, &b->d, &b->dmin, b->scales, scale, offset);
}

static void pack_q5_k(void *blk, const int *q)
{
    struct cai_block_q5_k *b = blk;
    memset(b->qh, 0, sizeof(b->qh));
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            int q1 = q[64 * c + l], q2 = q[64 * c + 32 + l];
            b->qs[32 * c + l] = (uint8_t)((q1 & 0x0f) | (q2 & 0x0f) << 4);
            b->qh[l] |= (uint8_t)((q1 >> 4) << (2 * c) | (q2 >> 4) << (2 * c + 1));
        }
    }
}

static void fit_q6_k(const float *x, const float *imp, void *blk, float *scale, float *offset)
{
    struct cai_block_q6_k *b = blk;
    float s[16], amax = 0.0f;
    double wsub[16];
    for (int j = 0; j < 16; j++) {
        s[j] = fit_sym(x + 16 * j, imp ? imp + 16 * j : NULL, 16, -32, 31, N_STEP / 2);
        amax = fabsf(s[j]) > amax ? fabsf(s[j]) : amax;
        wsub[j] = 0.0;
        for (int i = 0; i < 16; i++)
            wsub[j] += (double)impw(imp, 16 * j + i);
    }
    float best_d = amax / 127.0f;
    double best_e = (double)INFINITY;
    for (int t = 0; t < 6 && amax > 0.0f; t++) {
        float d = h2f(f2h(amax / (127.0f - (float)t)));
        if (!(d > 0.0f))
            continue;
        double e = 0.0;
        for (int j = 0; j < 16; j++) {
            int c = clampi(nearest(s[j] / d), -128, 127);
            double r = (double)d * c - (double)s[j];
            e += wsub[j] * r * r;
        }
        if (e < best_e) {
            best_e = e;
            best_d = d;
        }
    }
    b->d = f2h(best_d);
    float d = h2f(b->d);
    for (int j = 0; j < 16; j++) {
        int c = d > 0.0f ? clampi(nearest(s[j] / d), -128, 127) : 0;
        b->scales[j] = (int8_t)c;
        for (int i = 0; i < 16; i++) {
            scale[16 * j + i] = d * (float)c;
            offset[16 * j + i] = 0.0f;
        }
    }
}

static void pack_q6_k(void *blk, const int *q)
{
    struct cai_block_q6_k *b = blk;
    memset(b->ql, 0, sizeof(b->ql));
    memset(b->qh, 0, sizeof(b->qh));
    for (int e = 0; e < CAI_QK_K; e++) {
        int u = q[e] + 32;
        int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
        uint8_t *ql = b->ql + 64 * h + l + (quarter & 1 ? 32 : 0);
        *ql |= (uint8_t)((u & 0x0f) << (quarter & 2 ? 4 : 0));
        b->qh[32 * h + l] |= (uint8_t)((u >> 4) << (2 * quarter));
    }
}

/* ---- the table ----------------------------------------------------------- */

static const struct cai__qfmt formats[] = {
    {CAI_TYPE_Q4_0, "q4_0", 32, 18, -8, 7, fit_q4_0, pack_q4_0},
    {CAI_TYPE_Q4_1, "q4_1", 32, 20, 0, 15, fit_q4_1, pack_q4_1},
    {CAI_TYPE_Q5_0, "q5_0", 32, 22, -16, 15, fit_q5_0, pack_q5_0},
    {CAI_TYPE_Q5_1, "q5_1", 32, 24, 0, 31, fit_q5_1, pack_q5_1},
    {CAI_TYPE_Q8_0, "q8_0", 32, 34, -128, 127, fit_q8_0, pack_q8_0},
    {CAI_TYPE_Q4_K, "q4_K", 256, 144, 0, 15, fit_q4_k, pack_q4_k},
    {CAI_TYPE_Q5_K, "q5_K", 256, 176, 0, 31, fit_q5_k, pack_q5_k},
    {CAI_TYPE_Q6_K, "q6_K", 256, 210, -32, 31, fit_q6_k, pack_q6_k},
};

const struct cai__qfmt *cai__qfmt_get(uint32_t type)
{
    for (size_t i = 0; i < CAI_ARRAY_LEN(formats); i++)
        if (formats[i].type == type)
            return &formats[i];
    return NULL;
}

int cai__qfmt_code(const struct cai__qfmt *f, float x, float scale, float offset)
{
    if (scale == 0.0f)
        return clampi(0, f->qmin, f->qmax);
    float v = (x - offset) / scale;
    if (!(v > (float)f->qmin))
        return f->qmin;
    if (!(v < (float)f->qmax))
        return f->qmax;
    return clampi(nearest(v), f->qmin, f->qmax);
}

void cai__qfmt_quantize_row(const struct cai__qfmt *f, const float *x, const float *imp, void *dst,
                            int64_t n)
{
    float scale[CAI__QFMT_MAX_GROUP], offset[CAI__QFMT_MAX_GROUP];
    int q[CAI__QFMT_MAX_GROUP];
    uint8_t *out = dst;
    for (int64_t g = 0; g < n / f->group; g++) {
        const float *xg = x + g * f->group;
        void *blk = out + (size_t)g * (size_t)f->block_bytes;
        f->fit(xg, imp ? imp + g * f->group : NULL, blk, scale, offset);
        for (int i = 0; i < f->group; i++)
            q[i] = cai__qfmt_code(f, xg[i], scale[i], offset[i]);
        f->pack(blk, q);
    }
}

static cai_half scale_h(cai_half h, float factor)
{
    return f2h(h2f(h) * factor);
}

int cai__qfmt_scale_row(uint32_t type, void *row, int64_t n, float factor)
{
    const struct cai_type_info *ti = cai__type_info(type);
    if (!ti || !(factor > 0.0f) || n % ti->block != 0)
        return CAI_EINVAL;
    int64_t nb = n / ti->block;
    uint8_t *p = row;
    for (int64_t i = 0; i < nb; i++, p += ti->type_size) {
        switch (type) {
        case CAI_TYPE_F32: {
            float v;
            memcpy(&v, p, 4);
            v *= factor;
            memcpy(p, &v, 4);
            break;
        }
        case CAI_TYPE_F16: {
            cai_half h;
            memcpy(&h, p, 2);
            h = scale_h(h, factor);
            memcpy(p, &h, 2);
            break;
        }
        case CAI_TYPE_Q4_0: case CAI_TYPE_Q5_0: case CAI_TYPE_Q8_0: {
            cai_half h; /* d first */
            memcpy(&h, p, 2);
            h = scale_h(h, factor);
            memcpy(p, &h, 2);
            break;
        }
        case CAI_TYPE_Q4_1: case CAI_TYPE_Q5_1: case CAI_TYPE_Q4_K: case CAI_TYPE_Q5_K: {
            cai_half h[2]; /* d, m (or dmin) */
            memcpy(h, p, 4);
            h[0] = scale_h(h[0], factor);
            h[1] = scale_h(h[1], factor);
            memcpy(p, h, 4);
            break;
        }
        case CAI_TYPE_Q6_K: {
            struct cai_block_q6_k *b = (struct cai_block_q6_k *)(void *)p;
            cai_half h;
            memcpy(&h, &b->d, 2);
            h = scale_h(h, factor);
            memcpy(&b->d, &h, 2);
            break;
        }
        default:
            return CAI_EUNSUPPORTED;
        }
    }
    return 0;
}

double cai__type_bpw(uint32_t type)
{
    const struct cai_type_info *ti = cai__type_info(type);
    return ti ? 8.0 * ti->type_size / ti->block : 0.0;
}
