/* kquants.c: reference kernels of the 256-element K formats
 * (Q4_K, Q5_K, Q6_K, and the Q8_K activation format).
 *
 * Layouts and dequantization follow ggml-common.h / ggml-quants.c (see
 * REFERENCE/formats.md §5.1). Q4_K/Q5_K: 8 sub-blocks of 32 with 6-bit
 * scales and mins, y = d*sc*q - dmin*m. Q6_K: 16 sub-blocks of 16 with int8
 * scales, y = d*sc*(q - 32). The dot products follow llama.cpp: exact
 * integer sums per super-block, the min terms taken from Q8_K's bsums.
 *
 * The weight quantizers here are simple min/max fits with a short search
 * over the sub-block scale; they are for tests and converters, not the
 * importance-weighted search llama.cpp's quantize tool runs. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "ref.h"

static inline float h2f(cai_half h)
{
    return cai__fp16_to_f32(h);
}

static inline cai_half f2h(float f)
{
    return cai__f32_to_fp16(f);
}

static inline int nearest_int(float v)
{
    return (int)lrintf(v); /* round half to even, as ggml's nearest_int */
}

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Inverse of cai__unpack_k4_scales: 8 scales and 8 mins (each < 64) -> 12 bytes. */
static void pack_k4_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | (mn[j + 4] & 0x0f) << 4);
    }
}

/* Fits x[0..32) as scale * q - offset with q in [0, nmax], offset >= 0.
 * Tries a few scales around (max - min) / nmax and keeps the one with the
 * smallest squared error. */
static void fit_min_max(const float *x, int nmax, float *scale, float *offset)
{
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; j++) {
        min = x[j] < min ? x[j] : min;
        max = x[j] > max ? x[j] : max;
    }
    if (min > 0.0f)
        min = 0.0f;
    *offset = -min;
    *scale = 0.0f;
    if (max == min)
        return;
    float best_err = INFINITY;
    for (int step = -4; step <= 4; step++) {
        float s = (max - min) / ((float)nmax + 0.25f * (float)step);
        float err = 0.0f;
        for (int j = 0; j < 32; j++) {
            int q = clampi(nearest_int((x[j] - min) / s), 0, nmax);
            float e = s * (float)q + min - x[j];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            *scale = s;
        }
    }
}

/* Shared by Q4_K and Q5_K: fits 8 sub-blocks, fills d, dmin, scales and
 * writes the unsigned quants (0..nmax) to q[256]. */
static void quantize_k4_block(const float *x, int nmax, cai_half *d_out, cai_half *dmin_out,
                              uint8_t scales[12], uint8_t q[256])
{
    float sub_scale[8], sub_offset[8], max_scale = 0.0f, max_offset = 0.0f;
    for (int j = 0; j < 8; j++) {
        fit_min_max(x + 32 * j, nmax, &sub_scale[j], &sub_offset[j]);
        max_scale = sub_scale[j] > max_scale ? sub_scale[j] : max_scale;
        max_offset = sub_offset[j] > max_offset ? sub_offset[j] : max_offset;
    }
    *d_out = f2h(max_scale / 63.0f);
    *dmin_out = f2h(max_offset / 63.0f);
    float d = h2f(*d_out), dmin = h2f(*dmin_out);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0.0f ? clampi(nearest_int(sub_scale[j] / d), 0, 63) : 0);
        mn[j] = (uint8_t)(dmin > 0.0f ? clampi(nearest_int(sub_offset[j] / dmin), 0, 63) : 0);
        float ds = d * (float)sc[j], dm = dmin * (float)mn[j];
        for (int l = 0; l < 32; l++) {
            int v = ds > 0.0f ? nearest_int((x[32 * j + l] + dm) / ds) : 0;
            q[32 * j + l] = (uint8_t)clampi(v, 0, nmax);
        }
    }
    pack_k4_scales(sc, mn, scales);
}

/* ---- Q4_K --------------------------------------------------------------- */

/* x: [n/256] blocks -> y: [n]. Byte l of chunk c (qs[32c + l]) holds element
 * 64c + l in its low nibble and element 64c + 32 + l in its high nibble. */
void cai__ref_q4_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_k *x = vx;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(x[i].scales, sc, mn);
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = x[i].qs + 32 * c;
            float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            for (int l = 0; l < 32; l++) {
                y[64 * c + l] = d1 * (float)(q[l] & 0x0f) - m1;
                y[64 * c + 32 + l] = d2 * (float)(q[l] >> 4) - m2;
            }
        }
    }
}

void cai__ref_q4_k_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q4_k *y = vy;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, x += CAI_QK_K) {
        uint8_t q[256];
        quantize_k4_block(x, 15, &y[i].d, &y[i].dmin, y[i].scales, q);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}

/* w: [n/256] q4_K blocks, x: [n/256] q8_K blocks */
float cai__ref_q4_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q4_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(w[i].scales, sc, mn);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = w[i].qs + 32 * (j / 2);
            int shift = 4 * (j % 2), s = 0;
            for (int l = 0; l < 32; l++)
                s += ((q[l] >> shift) & 0x0f) * x[i].qs[32 * j + l];
            sumi += sc[j] * s;
            summ += mn[j] * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
        }
        float d = h2f(w[i].d) * x[i].d, dmin = h2f(w[i].dmin) * x[i].d;
        sumf = fmaf(d, (float)sumi, sumf);
        sumf = fmaf(-dmin, (float)summ, sumf);
    }
    return sumf;
}

/* ---- Q5_K: Q4_K plus a fifth bit; bit j of qh[l] belongs to element 32j + l */

void cai__ref_q5_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_k *x = vx;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(x[i].scales, sc, mn);
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = x[i].qs + 32 * c;
            float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            for (int l = 0; l < 32; l++) {
                int h1 = (x[i].qh[l] >> (2 * c)) & 1, h2 = (x[i].qh[l] >> (2 * c + 1)) & 1;
                y[64 * c + l] = d1 * (float)((q[l] & 0x0f) | h1 << 4) - m1;
                y[64 * c + 32 + l] = d2 * (float)((q[l] >> 4) | h2 << 4) - m2;
            }
        }
    }
}

void cai__ref_q5_k_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q5_k *y = vy;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, x += CAI_QK_K) {
        uint8_t q[256];
        quantize_k4_block(x, 31, &y[i].d, &y[i].dmin, y[i].scales, q);
        memset(y[i].qh, 0, sizeof(y[i].qh));
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                int q1 = q[64 * c + l], q2 = q[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t)((q1 & 0x0f) | (q2 & 0x0f) << 4);
                y[i].qh[l] |= (uint8_t)((q1 >> 4) << (2 * c) | (q2 >> 4) << (2 * c + 1));
            }
        }
    }
}

/* w: [n/256] q5_K blocks, x: [n/256] q8_K blocks */
float cai__ref_q5_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q5_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(w[i].scales, sc, mn);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = w[i].qs + 32 * (j / 2);
            int shift = 4 * (j % 2), s = 0;
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 0x0f) | ((w[i].qh[l] >> j) & 1) << 4;
                s += v * x[i].qs[32 * j + l];
            }
            sumi += sc[j] * s;
            summ += mn[j] * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
        }
        float d = h2f(w[i].d) * x[i].d, dmin = h2f(w[i].dmin) * x[i].d;
        sumf = fmaf(d, (float)sumi, sumf);
        sumf = fmaf(-dmin, (float)summ, sumf);
    }
    return sumf;
}

/* ---- Q6_K --------------------------------------------------------------- */

/* The 6-bit quant of element e (0..255) of a Q6_K block, in [0, 63]
 * (ggml's layout: two halves of 128, each from 64 ql bytes and 32 qh bytes). */
static inline int q6_k_quant(const struct cai_block_q6_k *b, int e)
{
    int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    int lo = quarter & 1 ? ql[l + 32] : ql[l];
    lo = quarter & 2 ? lo >> 4 : lo & 0x0f;
    int hi = (qh[l] >> (2 * quarter)) & 3;
    return lo | hi << 4;
}

void cai__ref_q6_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q6_k *x = vx;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d);
        for (int e = 0; e < CAI_QK_K; e++)
            y[e] = d * (float)x[i].scales[e / 16] * (float)(q6_k_quant(&x[i], e) - 32);
    }
}

void cai__ref_q6_k_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q6_k *y = vy;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, x += CAI_QK_K) {
        /* Per 16: the element of largest magnitude maps to -32. */
        float sub[16], amax_sub = 0.0f, max_sub = 0.0f;
        for (int b = 0; b < 16; b++) {
            float amax = 0.0f, max = 0.0f;
            for (int l = 0; l < 16; l++) {
                if (amax < fabsf(x[16 * b + l])) {
                    amax = fabsf(x[16 * b + l]);
                    max = x[16 * b + l];
                }
            }
            sub[b] = max / -32.0f;
            if (amax_sub < fabsf(sub[b])) {
                amax_sub = fabsf(sub[b]);
                max_sub = sub[b];
            }
        }
        /* The sub-block scale of largest magnitude maps to -128 .. 127. */
        float iscale = max_sub != 0.0f ? -128.0f / max_sub : 0.0f;
        y[i].d = f2h(iscale != 0.0f ? 1.0f / iscale : 0.0f);
        float d = h2f(y[i].d);
        uint8_t q[256];
        for (int b = 0; b < 16; b++) {
            int s = clampi(nearest_int(iscale * sub[b]), -128, 127);
            y[i].scales[b] = (int8_t)s;
            float ds = d * (float)s;
            for (int l = 0; l < 16; l++) {
                int v = ds != 0.0f ? nearest_int(x[16 * b + l] / ds) : 0;
                q[16 * b + l] = (uint8_t)(clampi(v, -32, 31) + 32);
            }
        }
        memset(y[i].ql, 0, sizeof(y[i].ql));
        memset(y[i].qh, 0, sizeof(y[i].qh));
        for (int e = 0; e < CAI_QK_K; e++) {
            int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
            uint8_t *ql = y[i].ql + 64 * h + l + (quarter & 1 ? 32 : 0);
            *ql |= (uint8_t)((q[e] & 0x0f) << (quarter & 2 ? 4 : 0));
            y[i].qh[32 * h + l] |= (uint8_t)((q[e] >> 4) << (2 * quarter));
        }
    }
}

/* w: [n/256] q6_K blocks, x: [n/256] q8_K blocks */
float cai__ref_q6_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q6_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        int sumi = 0;
        for (int b = 0; b < 16; b++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += (q6_k_quant(&w[i], 16 * b + l) - 32) * x[i].qs[16 * b + l];
            sumi += w[i].scales[b] * s;
        }
        sumf = fmaf(h2f(w[i].d) * x[i].d, (float)sumi, sumf);
    }
    return sumf;
}

/* ---- Q8_K: float d, bsums[j] = sum of quants 16j .. 16j + 15 ------------- */

void cai__ref_q8_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_k *x = vx;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K)
        for (int j = 0; j < CAI_QK_K; j++)
            y[j] = (float)x[i].qs[j] * x[i].d;
}

/* As ggml's quantize_row_q8_K_ref: the first element of largest magnitude
 * maps to -127 (iscale = -127 / max), q = nearest (ties to even), d = 1 /
 * iscale. An all-zero block gets d = 0 and zero quants and sums, and so
 * does a block so small that -127 / max overflows (llama.cpp leaves that
 * case undefined). */
void cai__ref_q8_k_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_k *y = vy;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, x += CAI_QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < CAI_QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        float iscale = -127.0f / max;
        if (!(iscale <= FLT_MAX && iscale >= -FLT_MAX)) { /* max below ~2^-120 */
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        for (int j = 0; j < CAI_QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int b = 0; b < 16; b++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += y[i].qs[16 * b + l];
            y[i].bsums[b] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* w, x: [n/256] q8_K blocks */
float cai__ref_q8_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q8_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < CAI_QK_K; j++)
            sumi += w[i].qs[j] * x[i].qs[j];
        sumf = fmaf(w[i].d * x[i].d, (float)sumi, sumf);
    }
    return sumf;
}
