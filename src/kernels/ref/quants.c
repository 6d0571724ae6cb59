/* quants.c: reference kernels of the 32-element block formats
 * (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
 *
 * Layouts and formulas follow ggml-common.h / ggml-quants.c (see
 * REFERENCE/formats.md §5.1). Element j of a 4-bit block sits in the low
 * nibble of qs[j] for j < 16 and in the high nibble of qs[j - 16] otherwise;
 * Q5's fifth bit of element j is bit j of the little-endian u32 qh.
 *
 * vec_dot computes exact integer sums of products per block, then
 * accumulates them in float with one fma by d_w * d_x per block: Q4_1 and
 * Q5_1 in eight lanes of 4-element sums (llama.cpp's x86 order, lanes8_fma;
 * their min terms m_w * s_x in a separate chain), Q4_0, Q5_0 and Q8_0 in one
 * chain of whole-block sums (chain_fma). Every kernel table computes these
 * bit for bit, in vec_dot and in mm. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "ref.h"

/* Round half to even, independent of the current rounding mode. */
static inline float rint_even(float v)
{
    float r = roundf(v);
    if (fabsf(v - truncf(v)) == 0.5f && fmodf(r, 2.0f) != 0.0f)
        r -= copysignf(1.0f, v);
    return r;
}

static inline float h2f(cai_half h)
{
    return cai__fp16_to_f32(h);
}

static inline cai_half f2h(float f)
{
    return cai__f32_to_fp16(f);
}

static inline uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The float order of the type-1 formats (Q4_1, Q5_1) and of Q8_1 x Q8_1
 * (llama.cpp's x86 one, which its Q4_1 matches bit for bit): eight float
 * lanes, lane k holding the exact integer sum of elements 4k..4k+3 of each
 * block, accumulated across blocks as acc[k] = fma(dd, isum[k], acc[k])
 * with dd = d_w * d_x; the lanes are reduced with cai__ref_hsum8 at the end.
 * q holds the block's 32 weight quants. */
static inline void lanes8_fma(float acc[8], float dd, const int q[32], const int8_t *x)
{
    for (int k = 0; k < 8; k++) {
        int isum = 0;
        for (int j = 4 * k; j < 4 * k + 4; j++)
            isum += q[j] * x[j];
        acc[k] = fmaf(dd, (float)isum, acc[k]);
    }
}

/* The order of Q4_0, Q5_0 and Q8_0: one float chain over the blocks,
 * sumf = fma(d_w * d_x, isum, sumf), isum the exact integer sum of the whole
 * block (q with its offset applied). A row-interleaved matmul then needs one
 * conversion and one fma per block for 16 rows at once. */
static inline float chain_fma(float sumf, float dd, const int q[32], const int8_t *x)
{
    int isum = 0;
    for (int j = 0; j < 32; j++)
        isum += q[j] * x[j];
    return fmaf(dd, (float)isum, sumf);
}

/* 1 / d, or 0 when d is 0 or so small (below ~2^-128) that 1 / d overflows:
 * such a block quantizes to all zeros (its fp16 scale is 0 anyway). */
static inline float inv_or_zero(float d)
{
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    return id <= FLT_MAX && id >= -FLT_MAX ? id : 0.0f;
}

/* ---- Q4_0: y = (q - 8) * d ---------------------------------------------- */

/* x: [n/32] blocks -> y: [n] */
void cai__ref_q4_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        float d = h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((x[i].qs[j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* As ggml's quantize_row_q4_0_ref: the element of largest magnitude maps to -8. */
void cai__ref_q4_0_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < CAI_QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = inv_or_zero(d);
        y[i].d = f2h(d);
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)(x[j] * id + 8.5f), 0, 15);
            int q1 = clampi((int)(x[j + 16] * id + 8.5f), 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* w: [n/32] q4_0 blocks, x: [n/32] q8_0 blocks (chain_fma's order) */
float cai__ref_q4_0_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q4_0 *w = vw;
    const struct cai_block_q8_0 *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (w[i].qs[j] & 0x0f) - 8;
            q[j + 16] = (w[i].qs[j] >> 4) - 8;
        }
        sumf = chain_fma(sumf, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    return sumf;
}

/* ---- Q4_1: y = q * d + m ------------------------------------------------ */

void cai__ref_q4_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(x[i].qs[j] & 0x0f) * d + m;
            y[j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void cai__ref_q4_1_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float min = x[0], max = x[0];
        for (int j = 1; j < CAI_QK; j++) {
            min = x[j] < min ? x[j] : min;
            max = x[j] > max ? x[j] : max;
        }
        float d = (max - min) / 15.0f;
        float id = inv_or_zero(d);
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)((x[j] - min) * id + 0.5f), 0, 15);
            int q1 = clampi((int)((x[j + 16] - min) * id + 0.5f), 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* w: [n/32] q4_1 blocks, x: [n/32] q8_1 blocks.
 * Summation order as llama.cpp's x86 kernel, so results match it bit for
 * bit: lanes8_fma's eight lanes (low nibbles are elements 0..15, high
 * 16..31), reduced as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)); the min terms
 * m_w * s_x go into a separate fma chain added at the end. */
float cai__ref_q4_1_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q4_1 *w = vw;
    const struct cai_block_q8_1 *x = vx;
    float acc[8] = {0};
    float summs = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = w[i].qs[j] & 0x0f;
            q[j + 16] = w[i].qs[j] >> 4;
        }
        summs = fmaf(h2f(w[i].m), h2f(x[i].s), summs);
        lanes8_fma(acc, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    return cai__ref_hsum8(acc) + summs;
}

/* ---- Q5_0: y = (q - 16) * d, q = nibble | bit << 4 ---------------------- */

void cai__ref_q5_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        float d = h2f(x[i].d);
        uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < 16; j++) {
            int q0 = (x[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int q1 = (x[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(q0 - 16) * d;
            y[j + 16] = (float)(q1 - 16) * d;
        }
    }
}

void cai__ref_q5_0_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q5_0 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < CAI_QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -16.0f;
        float id = inv_or_zero(d);
        y[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)(x[j] * id + 16.5f), 0, 31);
            int q1 = clampi((int)(x[j + 16] * id + 16.5f), 0, 31);
            y[i].qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        for (int b = 0; b < 4; b++)
            y[i].qh[b] = (uint8_t)(qh >> (8 * b));
    }
}

/* w: [n/32] q5_0 blocks, x: [n/32] q8_0 blocks (chain_fma's order) */
float cai__ref_q5_0_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q5_0 *w = vw;
    const struct cai_block_q8_0 *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        uint32_t qh = load_qh(w[i].qh);
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = ((w[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4) - 16;
            q[j + 16] = ((w[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
        }
        sumf = chain_fma(sumf, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    return sumf;
}

/* ---- Q5_1: y = q * d + m ------------------------------------------------ */

void cai__ref_q5_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        float d = h2f(x[i].d), m = h2f(x[i].m);
        uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < 16; j++) {
            int q0 = (x[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int q1 = (x[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)q0 * d + m;
            y[j + 16] = (float)q1 * d + m;
        }
    }
}

void cai__ref_q5_1_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q5_1 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float min = x[0], max = x[0];
        for (int j = 1; j < CAI_QK; j++) {
            min = x[j] < min ? x[j] : min;
            max = x[j] > max ? x[j] : max;
        }
        float d = (max - min) / 31.0f;
        float id = inv_or_zero(d);
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)((x[j] - min) * id + 0.5f), 0, 31);
            int q1 = clampi((int)((x[j + 16] - min) * id + 0.5f), 0, 31);
            y[i].qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        for (int b = 0; b < 4; b++)
            y[i].qh[b] = (uint8_t)(qh >> (8 * b));
    }
}

/* w: [n/32] q5_1 blocks, x: [n/32] q8_1 blocks (as Q4_1) */
float cai__ref_q5_1_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q5_1 *w = vw;
    const struct cai_block_q8_1 *x = vx;
    float acc[8] = {0};
    float summs = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        uint32_t qh = load_qh(w[i].qh);
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (w[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            q[j + 16] = (w[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        }
        summs = fmaf(h2f(w[i].m), h2f(x[i].s), summs);
        lanes8_fma(acc, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    return cai__ref_hsum8(acc) + summs;
}

/* ---- Q8_0: y = q * d (also the activation format of Q4_0, Q5_0, Q8_0) --- */

void cai__ref_q8_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        float d = h2f(x[i].d);
        for (int j = 0; j < CAI_QK; j++)
            y[j] = (float)x[i].qs[j] * d;
    }
}

/* llama.cpp's x86 activation quantizer (the one its matmuls use here):
 * d = amax / 127, q = round-half-even(x * (127 / amax)), so q is always in
 * [-127, 127]. The multiplier is 127 / amax, not 1 / d: the two differ in
 * the last bit, and this model family turns last-bit differences into
 * visible logit differences. A block whose multiplier overflows (amax below
 * ~2^-121) gets zero quants. */
static inline float act_scale(const float *x, float *id)
{
    float amax = 0.0f;
    for (int j = 0; j < CAI_QK; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float m = amax != 0.0f ? 127.0f / amax : 0.0f;
    *id = m <= FLT_MAX ? m : 0.0f;
    return amax / 127.0f;
}

void cai__ref_q8_0_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float id, d = act_scale(x, &id);
        y[i].d = f2h(d);
        for (int j = 0; j < CAI_QK; j++)
            y[i].qs[j] = (int8_t)rint_even(x[j] * id);
    }
}

/* w, x: [n/32] q8_0 blocks (chain_fma's order) */
float cai__ref_q8_0_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q8_0 *w = vw;
    const struct cai_block_q8_0 *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        int q[32];
        for (int j = 0; j < CAI_QK; j++)
            q[j] = w[i].qs[j];
        sumf = chain_fma(sumf, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    return sumf;
}

/* ---- Q8_1: Q8_0 plus s = d * sum(q) (activations of Q4_1, Q5_1) -------- */

void cai__ref_q8_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        float d = h2f(x[i].d);
        for (int j = 0; j < CAI_QK; j++)
            y[j] = (float)x[i].qs[j] * d;
    }
}

/* As Q8_0 (same rule), plus s = fp16(d * sum(q)). */
void cai__ref_q8_1_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float id, d = act_scale(x, &id);
        int sum = 0;
        for (int j = 0; j < CAI_QK; j++) {
            y[i].qs[j] = (int8_t)rint_even(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = f2h(d);
        y[i].s = f2h(d * (float)sum);
    }
}

/* w, x: [n/32] q8_1 blocks (s is not used: both sides are signed;
 * lanes8_fma's order) */
float cai__ref_q8_1_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q8_1 *w = vw;
    const struct cai_block_q8_1 *x = vx;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        int q[32];
        for (int j = 0; j < CAI_QK; j++)
            q[j] = w[i].qs[j];
        lanes8_fma(acc, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    return cai__ref_hsum8(acc);
}
