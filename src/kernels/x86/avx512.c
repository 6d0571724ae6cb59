/* avx512.c: the "avx512" kernel table (AVX-512 F/BW/VL/DQ + VNNI, 512-bit).
 *
 * Same contract as avx2.c: to_f32 and the activation quantizers are
 * bit-exact with ref, the integer dot products compute ref's exact integer
 * sums and differ only in float summation order; weight quantizers point at
 * ref. Integer products use vpdpbusd (u8 x s8, four products summed into an
 * int32 lane, no intermediate saturation):
 *   - 4/5-bit weights stay unsigned; the -8/-16 offset of Q4_0/Q5_0 is taken
 *     off with a second vpdpbusd of the constant 8/16 against the activation;
 *     Q4_1/Q5_1 need no correction (their min term uses Q8_1's s);
 *   - Q6_K stays unsigned (0..63); the -32 comes off through Q8_K's bsums;
 *   - 8-bit weights use the sign trick |w| x (x negated where w < 0).
 * 32-element blocks are handled two per zmm (lanes 0-7 block i, 8-15 block
 * i+1), with the per-block scales spread over the lanes by a permute.
 * K-quant sub-block scales multiply the per-lane int32 sums with vpmaddwd:
 * a lane sum of 4 products fits in int16 (at most 4 * 63 * 127 = 32004), and
 * the scale sits in the low half of a lane whose high half is 0. */
#include "../kernels.h"
#include "../ref/ref.h"
#include "x86.h"

#if defined(__x86_64__)

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static inline float h2f(cai_half h)
{
    return _cvtsh_ss(h);
}

static inline uint32_t load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles then high (ymm). */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* Sum of s8 x s8 products, 4 per int32 lane (x must not hold -128): the
 * sign trick |w| x (x negated where w < 0); |-128| reads as u8 128. */
static inline __m512i dot_s8s8(__m512i w, __m512i x)
{
    __mmask64 neg = _mm512_movepi8_mask(w);
    __m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
}

static inline __m256i dot_s8s8_256(__m256i w, __m256i x)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w),
                               _mm256_sign_epi8(x, w));
}

/* 16 int8 -> 16 floats */
static inline __m512 cvt_i8x16(__m128i q)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
}

/* y[0..32) = q * d */
static inline void store_mul(float *y, __m256i q, float d)
{
    __m512 vd = _mm512_set1_ps(d);
    _mm512_storeu_ps(y, _mm512_mul_ps(cvt_i8x16(_mm256_castsi256_si128(q)), vd));
    _mm512_storeu_ps(y + 16, _mm512_mul_ps(cvt_i8x16(_mm256_extracti128_si256(q, 1)), vd));
}

/* y[0..32) = q * d + m (two roundings, as ref) */
static inline void store_mul_add(float *y, __m256i q, float d, float m)
{
    __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(m);
    __m512 f0 = cvt_i8x16(_mm256_castsi256_si128(q));
    __m512 f1 = cvt_i8x16(_mm256_extracti128_si256(q, 1));
    _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(f0, vd), vm));
    _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(f1, vd), vm));
}

/* y[0..32) = d * q - m */
static inline void store_mul_sub(float *y, __m256i q, float d, float m)
{
    __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(m);
    __m512 f0 = cvt_i8x16(_mm256_castsi256_si128(q));
    __m512 f1 = cvt_i8x16(_mm256_extracti128_si256(q, 1));
    _mm512_storeu_ps(y, _mm512_sub_ps(_mm512_mul_ps(vd, f0), vm));
    _mm512_storeu_ps(y + 16, _mm512_sub_ps(_mm512_mul_ps(vd, f1), vm));
}

/* Q5 quants (0..31) of one block: nibbles plus 0x10 where the qh bit is set
 * (bit j of the block's u32 qh belongs to its element j). */
static inline __m256i q5_32(const uint8_t *qs, const uint8_t *qh)
{
    __m256i z = nibbles_32(qs);
    return _mm256_mask_add_epi8(z, _cvtu32_mask32(load_u32(qh)), z, _mm256_set1_epi8(0x10));
}

static inline float hsum_256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32_256(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline __m256i dot_off_256(__m256i q, __m256i y, int off)
{
    __m256i z = _mm256_setzero_si256();
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, q, y),
                            _mm256_dpbusd_epi32(z, _mm256_set1_epi8((char)off), y));
}

static inline __m512i dot_u8s8(__m512i q, __m512i y)
{
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y);
}

static inline __m256i dot_u8s8_256(__m256i q, __m256i y)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y);
}

static inline __m256i load_32(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Per-type integer sums of one block: 8 int32 lanes, lane k the sum over
 * elements 4k..4k+3 (the weight offset of Q4_0/Q5_0 included). */
#define Q4_0_ONE(w, x) dot_off_256(nibbles_32((w)->qs), load_32((x)->qs), 8)
#define Q5_0_ONE(w, x) dot_off_256(q5_32((w)->qs, (w)->qh), load_32((x)->qs), 16)
#define Q8_ONE(w, x)   dot_s8s8_256(load_32((w)->qs), load_32((x)->qs))
#define Q4_1_ONE(w, x) dot_u8s8_256(nibbles_32((w)->qs), load_32((x)->qs))
#define Q5_1_ONE(w, x) dot_u8s8_256(q5_32((w)->qs, (w)->qh), load_32((x)->qs))

/* vec_dot of Q4_1, Q5_1 (and Q8_1 x Q8_1) in ref's order (lanes8_fma in
 * ref/quants.c, llama.cpp's): one 8-lane fma chain over the blocks, hsum_256
 * at the end; the type-1 formats add their min terms m_w * s_x from a
 * separate scalar fma chain. The tiled mm (avx512_mm.c) computes the same
 * bits. */
#define VEC_DOT_LANES8(name, WT, XT, ONE)                                                          \
    static float name(int64_t n, const void *vw, const void *vx)                                   \
    {                                                                                              \
        const WT *w = vw;                                                                          \
        const XT *x = vx;                                                                          \
        __m256 acc = _mm256_setzero_ps();                                                          \
        for (int64_t i = 0; i < n / CAI_QK; i++) {                                                 \
            __m256i s = ONE(w + i, x + i);                                                         \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)),                       \
                                  _mm256_cvtepi32_ps(s), acc);                                     \
        }                                                                                          \
        return hsum_256(acc);                                                                      \
    }

#define VEC_DOT_LANES8_MIN(name, WT, XT, ONE)                                                      \
    static float name(int64_t n, const void *vw, const void *vx)                                   \
    {                                                                                              \
        const WT *w = vw;                                                                          \
        const XT *x = vx;                                                                          \
        __m256 acc = _mm256_setzero_ps();                                                          \
        float summs = 0.0f;                                                                        \
        for (int64_t i = 0; i < n / CAI_QK; i++) {                                                 \
            summs = fmaf(h2f(w[i].m), h2f(x[i].s), summs);                                         \
            __m256i s = ONE(w + i, x + i);                                                         \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)),                       \
                                  _mm256_cvtepi32_ps(s), acc);                                     \
        }                                                                                          \
        return hsum_256(acc) + summs;                                                              \
    }

/* Q4_0, Q5_0, Q8_0: ref's chain_fma order, one scalar fma per block with
 * the block's whole integer sum. */
#define VEC_DOT_CHAIN(name, WT, XT, ONE)                                                           \
    static float name(int64_t n, const void *vw, const void *vx)                                   \
    {                                                                                              \
        const WT *w = vw;                                                                          \
        const XT *x = vx;                                                                          \
        float sumf = 0.0f;                                                                         \
        for (int64_t i = 0; i < n / CAI_QK; i++) {                                                 \
            int isum = hsum_epi32_256(ONE(w + i, x + i));                                          \
            sumf = fmaf(h2f(w[i].d) * h2f(x[i].d), (float)isum, sumf);                             \
        }                                                                                          \
        return sumf;                                                                               \
    }

VEC_DOT_CHAIN(q4_0_vec_dot, struct cai_block_q4_0, struct cai_block_q8_0, Q4_0_ONE)
VEC_DOT_CHAIN(q5_0_vec_dot, struct cai_block_q5_0, struct cai_block_q8_0, Q5_0_ONE)
VEC_DOT_CHAIN(q8_0_vec_dot, struct cai_block_q8_0, struct cai_block_q8_0, Q8_ONE)
VEC_DOT_LANES8(q8_1_vec_dot, struct cai_block_q8_1, struct cai_block_q8_1, Q8_ONE)
VEC_DOT_LANES8_MIN(q4_1_vec_dot, struct cai_block_q4_1, struct cai_block_q8_1, Q4_1_ONE)
VEC_DOT_LANES8_MIN(q5_1_vec_dot, struct cai_block_q5_1, struct cai_block_q8_1, Q5_1_ONE)

/* ---- dequantization of the 32-element formats --------------------------- */

static void q4_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul(y, _mm256_sub_epi8(nibbles_32(x[i].qs), _mm256_set1_epi8(8)), h2f(x[i].d));
}

static void q4_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul_add(y, nibbles_32(x[i].qs), h2f(x[i].d), h2f(x[i].m));
}

static void q5_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul(y, _mm256_sub_epi8(q5_32(x[i].qs, x[i].qh), _mm256_set1_epi8(16)),
                  h2f(x[i].d));
}

static void q5_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul_add(y, q5_32(x[i].qs, x[i].qh), h2f(x[i].d), h2f(x[i].m));
}

static void q8_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul(y, load_32(x[i].qs), h2f(x[i].d));
}

static void q8_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul(y, load_32(x[i].qs), h2f(x[i].d));
}

/* ---- activation quantizers ---------------------------------------------- */

/* Quantizes 32 floats with ref's rule (llama.cpp's: d = amax / 127,
 * q = round-half-even(x * (127 / amax))); returns d, writes 32 quants and
 * (when sum != NULL) their sum. */
static inline float quantize_32(const float *x, int8_t *qs, int *sum)
{
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    id = id <= FLT_MAX ? id : 0.0f; /* as ref: tiny blocks quantize to zero */
    __m512 vid = _mm512_set1_ps(id);
    __m512i q0 = _mm512_cvttps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m512i q1 = _mm512_cvttps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtsepi32_epi8(q1));
    if (sum)
        *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    return amax / 127.0f;
}

static void q8_0_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float d = quantize_32(x, y[i].qs, NULL);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void q8_1_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        int sum;
        float d = quantize_32(x, y[i].qs, &sum);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void q8_k_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_k *y = vy;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, x += CAI_QK_K) {
        __m512 vmax = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++)
            vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)));
        float amax = _mm512_reduce_max_ps(vmax);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* The first element of largest magnitude gives the sign (as ref). */
        float max = amax;
        __m512 vamax = _mm512_set1_ps(amax);
        for (int k = 0; k < 16; k++) {
            __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), vamax,
                                             _CMP_EQ_OQ);
            if (m) {
                max = x[16 * k + __builtin_ctz((unsigned)m)];
                break;
            }
        }
        float iscale = -127.0f / max;
        if (!(iscale <= FLT_MAX && iscale >= -FLT_MAX)) { /* as ref */
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        __m512 vis = _mm512_set1_ps(iscale);
        for (int k = 0; k < 16; k++) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), vis);
            __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(y[i].qs + 16 * k), _mm512_cvtsepi32_epi8(q));
        }
        /* bsums: byte sums of 8 (vpsadbw on q + 128), paired, minus 16 * 128 */
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        __m512i u[4];
        for (int k = 0; k < 4; k++) {
            __m512i q = _mm512_loadu_si512((const void *)(y[i].qs + 64 * k));
            __m512i s = _mm512_sad_epu8(_mm512_xor_si512(q, bias), _mm512_setzero_si512());
            u[k] = _mm512_add_epi64(s, _mm512_bsrli_epi128(s, 8));
        }
        const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
        __m512i s01 = _mm512_permutex2var_epi64(u[0], even, u[1]);
        __m512i s23 = _mm512_permutex2var_epi64(u[2], even, u[3]);
        __m256i b = _mm256_set_m128i(_mm512_cvtepi64_epi16(s23), _mm512_cvtepi64_epi16(s01));
        b = _mm256_sub_epi16(b, _mm256_set1_epi16(16 * 128));
        _mm256_storeu_si256((__m256i *)y[i].bsums, b);
        y[i].d = 1.0f / iscale;
    }
}

/* ---- Q8_K --------------------------------------------------------------- */

static void q8_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_k *x = vx;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        __m512 vd = _mm512_set1_ps(x[i].d);
        for (int k = 0; k < 16; k++) {
            __m128i q = _mm_loadu_si128((const __m128i *)(x[i].qs + 16 * k));
            _mm512_storeu_ps(y + 16 * k, _mm512_mul_ps(cvt_i8x16(q), vd));
        }
    }
}

static float q8_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q8_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        __m512i s = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i wq = _mm512_loadu_si512((const void *)(w[i].qs + 64 * k));
            __m512i xq = _mm512_loadu_si512((const void *)(x[i].qs + 64 * k));
            s = _mm512_add_epi32(s, dot_s8s8(wq, xq));
        }
        acc = fmaf(w[i].d * x[i].d, (float)_mm512_reduce_add_epi32(s), acc);
    }
    return acc;
}

/* ---- Q4_K / Q5_K -------------------------------------------------------- */

/* The 12-byte Q4_K/Q5_K scales -> bytes {sc0..sc7, m0..m7}, as
 * cai__unpack_k4_scales. With words A, B, C of the field: sc0-3 = A & 63,
 * m0-3 = B & 63, sc4-7 = (C & 15) | (A >> 6) << 4, m4-7 = (C >> 4) | (B >> 6) << 4.
 * Reads 16 bytes (the field is followed by the quants). */
static inline __m128i k4_unpack(const uint8_t *scales)
{
    __m128i v = _mm_loadu_si128((const __m128i *)scales);
    __m128i lo = _mm_and_si128(v, _mm_setr_epi32(0x3f3f3f3f, 0x3f3f3f3f, 0, 0));
    __m128i c = _mm_srlv_epi32(_mm_shuffle_epi32(v, 0xaa), _mm_setr_epi32(0, 0, 0, 4));
    c = _mm_and_si128(c, _mm_set1_epi8(0x0f));
    __m128i ab = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(v, 0x44), 2), _mm_set1_epi8(0x30));
    __m128i r = _mm_blend_epi32(lo, _mm_or_si128(c, ab), 0xc); /* {sc0-3, m0-3, sc4-7, m4-7} */
    return _mm_shuffle_epi32(r, 0xd8);
}

/* The 8 mins of k4_unpack's result as int16 pairs {m0, m0, m1, m1, ...}. */
static inline __m256i k4_mins_pairs(__m128i sm)
{
    return _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
}

/* Lanes {j x8, j+2 x8} of the unpacked scales. */
static inline __m512i scale_pair2(__m512i sm, int j)
{
    __m512i idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(j)), sm);
}

/* Byte mask {bit j in the first 32 bytes, bit j+2 in the last 32}. */
static inline __m512i qh_bits2(int j)
{
    __m512i v = _mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << j)));
    return _mm512_inserti64x4(v, _mm256_set1_epi8((char)(1 << (j + 2))), 1);
}

/* A Q8_K block's quants in the order the Q4_K/Q5_K quant bytes come: 64
 * bytes of qs (chunks 2k, 2k+1) hold sub-blocks {4k, 4k+2} in their low
 * nibbles and {4k+1, 4k+3} in their high ones, so y[2k] = elements
 * {128k + 0..31, 128k + 64..95} and y[2k+1] = {128k + 32..63, 128k + 96..127}.
 * Reordering the activation (shared by every row) instead of the weights. */
static inline void k4_acts(const struct cai_block_q8_k *x, __m512i y[4])
{
    for (int k = 0; k < 2; k++) {
        const int8_t *q = x->qs + 128 * k;
        y[2 * k] = _mm512_inserti64x4(_mm512_castsi256_si512(load_32(q)), load_32(q + 64), 1);
        y[2 * k + 1] = _mm512_inserti64x4(_mm512_castsi256_si512(load_32(q + 32)), load_32(q + 96), 1);
    }
}

/* One Q4_K/Q5_K superblock (wb) against one Q8_K block: the exact integer
 * sums sum_j sc_j * (q . x)_j (lanes of *sumi) and sum_j m_j * bsums
 * (lanes of *summ). */
static inline __attribute__((always_inline)) void k4_sums(const uint8_t *wb, const __m512i *y,
                                                          __m256i bsums, int five_bit,
                                                          __m512i *sumi_out, __m256i *summ_out)
{
    /* Q4_K and Q5_K share d, dmin and scales; qs sits after qh in Q5_K. */
    const struct cai_block_q4_k *w4 = (const void *)wb;
    const struct cai_block_q5_k *w5 = (const void *)wb;
    const uint8_t *qs = five_bit ? w5->qs : w4->qs;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m128i sm8 = k4_unpack(w4->scales);
    __m512i sm = _mm512_cvtepu8_epi32(sm8); /* lanes: 8 scales, 8 mins */
    *summ_out = _mm256_madd_epi16(bsums, k4_mins_pairs(sm8));
    __m512i qh = five_bit ? _mm512_broadcast_i64x4(load_32(w5->qh)) : _mm512_setzero_si512();
    __m512i sumi = _mm512_setzero_si512();
    for (int k = 0; k < 2; k++) {
        __m512i z = _mm512_loadu_si512((const void *)(qs + 64 * k));
        __m512i lo = _mm512_and_si512(z, m4), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        if (five_bit) {
            const __m512i h = _mm512_set1_epi8(0x10);
            lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh, qh_bits2(4 * k)), lo, h);
            hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(qh, qh_bits2(4 * k + 1)), hi, h);
        }
        __m512i pa = _mm512_madd_epi16(dot_u8s8(lo, y[2 * k]), scale_pair2(sm, 4 * k));
        __m512i pb = _mm512_madd_epi16(dot_u8s8(hi, y[2 * k + 1]), scale_pair2(sm, 4 * k + 1));
        sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(pa, pb));
    }
    *sumi_out = sumi;
}

static inline __attribute__((always_inline)) float k4_vec_dot(int64_t n, const void *vw, const void *vx, int five_bit)
{
    const struct cai_block_q8_k *x = vx;
    const uint8_t *wb = vw;
    size_t stride = five_bit ? sizeof(struct cai_block_q5_k) : sizeof(struct cai_block_q4_k);
    float acc = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, wb += stride) {
        const struct cai_block_q4_k *w4 = (const void *)wb;
        __m512i sumi;
        __m256i summ;
        __m512i y[4];
        k4_acts(&x[i], y);
        k4_sums(wb, y, _mm256_loadu_si256((const __m256i *)x[i].bsums), five_bit, &sumi, &summ);
        float d = h2f(w4->d) * x[i].d, dmin = h2f(w4->dmin) * x[i].d;
        acc = fmaf(d, (float)_mm512_reduce_add_epi32(sumi), acc);
        acc = fmaf(-dmin, (float)hsum_epi32_256(summ), acc);
    }
    return acc;
}

/* The sums of four int32 vectors' lanes: lane r of the result = sum of v[r]. */
static inline __m128i hsum_epi32_x4(const __m512i *v)
{
    __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
    __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
    __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

static inline __m128i hsum_epi32_x4_256(const __m256i *v)
{
    __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(v[0], v[1]), _mm256_unpackhi_epi32(v[0], v[1]));
    __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2], v[3]), _mm256_unpackhi_epi32(v[2], v[3]));
    __m256i u = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
    return _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
}

/* Four rows (w, w + w_stride, ...) against one activation row, each output
 * exactly k4_vec_dot's: the integer sums are exact, and the two fmas per
 * superblock run per lane (lane r = row r) in the same order. The
 * activation loads are shared and the four rows' chains overlap. */
static inline __attribute__((always_inline)) void k4_dot4(int64_t n, const void *vw,
                                                          size_t w_stride, const void *vx,
                                                          float *out, int five_bit)
{
    const struct cai_block_q8_k *x = vx;
    const uint8_t *wb = vw;
    size_t stride = five_bit ? sizeof(struct cai_block_q5_k) : sizeof(struct cai_block_q4_k);
    __m128 acc = _mm_setzero_ps();
    for (int64_t i = 0; i < n / CAI_QK_K; i++, wb += stride) {
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        __m512i sumi[4], y[4];
        __m256i summ[4];
        k4_acts(&x[i], y);
        uint16_t dh[4], mh[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8_t *b = wb + (size_t)r * w_stride;
            const struct cai_block_q4_k *w4 = (const void *)b;
            _mm_prefetch((const char *)b + 8 * stride, _MM_HINT_T0);
            _mm_prefetch((const char *)b + 8 * stride + 64, _MM_HINT_T0);
            if (five_bit)
                _mm_prefetch((const char *)b + 8 * stride + 128, _MM_HINT_T0);
            memcpy(&dh[r], &w4->d, sizeof(dh[r]));
            memcpy(&mh[r], &w4->dmin, sizeof(mh[r]));
            k4_sums(b, y, bsums, five_bit, &sumi[r], &summ[r]);
        }
        const __m128 xd = _mm_set1_ps(x[i].d);
        const __m128 d = _mm_mul_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)dh)), xd);
        const __m128 dmin = _mm_mul_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)mh)), xd);
        acc = _mm_fmadd_ps(d, _mm_cvtepi32_ps(hsum_epi32_x4(sumi)), acc);
        acc = _mm_fnmadd_ps(dmin, _mm_cvtepi32_ps(hsum_epi32_x4_256(summ)), acc);
    }
    _mm_storeu_ps(out, acc);
}

void cai__avx512_q4_k_dot4(int64_t n, const void *w, size_t w_stride, const void *x, float *out)
{
    k4_dot4(n, w, w_stride, x, out, 0);
}

void cai__avx512_q5_k_dot4(int64_t n, const void *w, size_t w_stride, const void *x, float *out)
{
    k4_dot4(n, w, w_stride, x, out, 1);
}

static float q4_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    return k4_vec_dot(n, vw, vx, 0);
}

static float q5_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    return k4_vec_dot(n, vw, vx, 1);
}

static void q4_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(x[i].scales, sc, mn);
        for (int c = 0; c < 4; c++) {
            __m256i q = load_32(x[i].qs + 32 * c);
            store_mul_sub(y + 64 * c, _mm256_and_si256(q, m4), d * (float)sc[2 * c],
                          dmin * (float)mn[2 * c]);
            store_mul_sub(y + 64 * c + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                          d * (float)sc[2 * c + 1], dmin * (float)mn[2 * c + 1]);
        }
    }
}

static void q5_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f), h = _mm256_set1_epi8(0x10);
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(x[i].scales, sc, mn);
        __m256i qh = load_32(x[i].qh);
        for (int c = 0; c < 4; c++) {
            __m256i q = load_32(x[i].qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            lo = _mm256_mask_add_epi8(
                lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * c)))), lo, h);
            hi = _mm256_mask_add_epi8(
                hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(2 << (2 * c)))), hi, h);
            store_mul_sub(y + 64 * c, lo, d * (float)sc[2 * c], dmin * (float)mn[2 * c]);
            store_mul_sub(y + 64 * c + 32, hi, d * (float)sc[2 * c + 1],
                          dmin * (float)mn[2 * c + 1]);
        }
    }
}

/* ---- Q6_K --------------------------------------------------------------- */

/* The quants (0..63) of half h of a Q6_K block: lo = elements 128h + 0..63,
 * hi = elements 128h + 64..127. */
static inline void q6_k_half(const struct cai_block_q6_k *b, int h, __m512i *lo, __m512i *hi)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    __m512i l = _mm512_loadu_si512((const void *)(b->ql + 64 * h));
    __m256i hb = load_32(b->qh + 32 * h);
    /* {qh, qh >> 2}: bits 0-1 (and 4-5) of each byte feed the first (second) 32 */
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(hb), _mm256_srli_epi16(hb, 2), 1);
    *lo = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(_mm512_slli_epi16(z, 4), m30));
    *hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_and_si512(z, m30));
}

/* One Q6_K superblock against one Q8_K block: the exact integer sum
 * sum_b sc_b * ((q - 32) . x)_b, in the lanes of the result. */
static inline __attribute__((always_inline)) __m512i q6_k_sums(const struct cai_block_q6_k *w,
                                                               const struct cai_block_q8_k *x,
                                                               __m256i bsums)
{
    const __m512i idx0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m128i sc8 = _mm_loadu_si128((const __m128i *)w->scales);
    /* scales as int16 in the low half of each int32 lane, high half 0 */
    __m512i sc32 = _mm512_cvtepu16_epi32(_mm256_cvtepi8_epi16(sc8));
    __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), bsums);
    __m512i sumi = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
        __m512i lo, hi;
        q6_k_half(w, h, &lo, &hi);
        __m512i ylo = _mm512_loadu_si512((const void *)(x->qs + 128 * h));
        __m512i yhi = _mm512_loadu_si512((const void *)(x->qs + 128 * h + 64));
        __m512i slo = _mm512_permutexvar_epi32(_mm512_add_epi32(idx0, _mm512_set1_epi32(8 * h)), sc32);
        __m512i shi = _mm512_permutexvar_epi32(_mm512_add_epi32(idx0, _mm512_set1_epi32(8 * h + 4)),
                                               sc32);
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(dot_u8s8(lo, ylo), slo));
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(dot_u8s8(hi, yhi), shi));
    }
    /* sum (q - 32) y = sum q y - 32 sum y, the latter from bsums */
    return _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
}

static float q6_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q6_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        __m512i sumi = q6_k_sums(&w[i], &x[i], _mm256_loadu_si256((const __m256i *)x[i].bsums));
        acc = fmaf(h2f(w[i].d) * x[i].d, (float)_mm512_reduce_add_epi32(sumi), acc);
    }
    return acc;
}

/* Four rows at once, each exactly q6_k_vec_dot (see k4_dot4). */
void cai__avx512_q6_k_dot4(int64_t n, const void *vw, size_t w_stride, const void *vx, float *out)
{
    const struct cai_block_q8_k *x = vx;
    const uint8_t *wb = vw;
    __m128 acc = _mm_setzero_ps();
    for (int64_t i = 0; i < n / CAI_QK_K; i++, wb += sizeof(struct cai_block_q6_k)) {
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        __m512i sumi[4];
        uint16_t dh[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const struct cai_block_q6_k *w = (const void *)(wb + (size_t)r * w_stride);
            _mm_prefetch((const char *)w + 4 * sizeof(*w), _MM_HINT_T0);
            _mm_prefetch((const char *)w + 4 * sizeof(*w) + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)w + 4 * sizeof(*w) + 128, _MM_HINT_T0);
            memcpy(&dh[r], &w->d, sizeof(dh[r]));
            sumi[r] = q6_k_sums(w, &x[i], bsums);
        }
        const __m128 d = _mm_mul_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)dh)),
                                    _mm_set1_ps(x[i].d));
        acc = _mm_fmadd_ps(d, _mm_cvtepi32_ps(hsum_epi32_x4(sumi)), acc);
    }
    _mm_storeu_ps(out, acc);
}

static void q6_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q6_k *x = vx;
    const __m512i off = _mm512_set1_epi8(32);
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d);
        for (int h = 0; h < 2; h++) {
            __m512i q[2];
            q6_k_half(&x[i], h, &q[0], &q[1]);
            for (int k = 0; k < 2; k++) {
                __m512i s = _mm512_sub_epi8(q[k], off);
                for (int j = 0; j < 4; j++) {
                    int b = 8 * h + 4 * k + j; /* sub-block of 16 */
                    __m128i q16 = _mm512_extracti32x4_epi32(s, 0);
                    if (j == 1)
                        q16 = _mm512_extracti32x4_epi32(s, 1);
                    else if (j == 2)
                        q16 = _mm512_extracti32x4_epi32(s, 2);
                    else if (j == 3)
                        q16 = _mm512_extracti32x4_epi32(s, 3);
                    __m512 vd = _mm512_set1_ps(d * (float)x[i].scales[b]);
                    _mm512_storeu_ps(y + 16 * b, _mm512_mul_ps(vd, cvt_i8x16(q16)));
                }
            }
        }
    }
}

/* ---- float types and f32 ops -------------------------------------------- */

static inline __mmask16 tail_mask(int64_t left)
{
    return (__mmask16)((1u << left) - 1);
}

static float dot_f32(const float *a, const float *b, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(),
           s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static float f32_vec_dot(int64_t n, const void *w, const void *x)
{
    return dot_f32(w, x, n);
}

static inline __m512 load_f16x16(const cai_half *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static inline __m512 maskz_load_f16(__mmask16 m, const cai_half *p)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline __m512 load_bf16x16(const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

static inline __m512 maskz_load_bf16(__mmask16 m, const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

/* f16 · f16 in llama.cpp's order (see kernels.h): four 16-lane
 * accumulators over chunks of 64, (a0+a2)+(a1+a3), reduce_add, tail in double. */
static float dot_f16(const cai_half *a, const cai_half *b, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t np = n & ~(int64_t)63, i = 0;
    for (; i < np; i += 64) {
        s0 = _mm512_fmadd_ps(load_f16x16(a + i), load_f16x16(b + i), s0);
        s1 = _mm512_fmadd_ps(load_f16x16(a + i + 16), load_f16x16(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(load_f16x16(a + i + 32), load_f16x16(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(load_f16x16(a + i + 48), load_f16x16(b + i + 48), s3);
    }
    s0 = _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3));
    double sum = (double)_mm512_reduce_add_ps(s0);
    for (; i < n; i++)
        sum += (double)(h2f(a[i]) * h2f(b[i]));
    return (float)sum;
}

static float dot_f16_chain(const cai_half *a, const cai_half *b, int64_t n)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16)
        acc = _mm512_fmadd_ps(load_f16x16(a + i), load_f16x16(b + i), acc);
    return _mm512_reduce_add_ps(acc);
}

/* The sums of 16 vectors' lanes at once, each in _mm512_reduce_add_ps's
 * order (cai__ref_hsum16: halves of 8, of 4, then (q0+q2)+(q1+q3)): a
 * transpose-and-add tree, 46 instructions for 16 reductions. Lane v of the
 * result is the sum of a[v]. */
static inline __m512 hsum16_x16(const __m512 *a)
{
    __m512 t[8], q[4], r[2];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) /* lanes 0-7: a[2k]'s t, 8-15: a[2k+1]'s */
        t[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) /* 128-bit lane j: q0..q3 of vector 4k + j */
        q[k] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
    for (int k = 0; k < 2; k++) /* lane j: {q0+q2, q1+q3} of vectors 8k + j, 8k + 4 + j */
        r[k] = _mm512_add_ps(_mm512_shuffle_ps(q[2 * k], q[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(q[2 * k], q[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* lane j: vectors j, 4 + j, 8 + j, 12 + j */
    __m512 f = _mm512_add_ps(_mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, f);
}

/* 16 chained dot products at a time (16 independent accumulators). */
static void dot_f16_chain_n(const cai_half *a, size_t a_stride, int64_t n_vec, const cai_half *b,
                            int64_t n, float *out)
{
    int64_t v = 0;
    for (; v + 16 <= n_vec; v += 16) {
        const cai_half *av = a + (size_t)v * a_stride;
        __m512 acc[16];
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++)
            acc[k] = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) {
            const __m512 bv = load_f16x16(b + i);
#pragma GCC unroll 16
            for (int k = 0; k < 16; k++)
                acc[k] = _mm512_fmadd_ps(load_f16x16(av + (size_t)k * a_stride + i), bv, acc[k]);
        }
        _mm512_storeu_ps(out + v, hsum16_x16(acc));
    }
    for (; v < n_vec; v++)
        out[v] = dot_f16_chain(a + (size_t)v * a_stride, b, n);
}

/* dot_f16_chain_mn: tiles of 4 vectors of a x NB vectors of b, 4 * NB
 * accumulators (one per dot, 16 lanes each); each a chunk is converted
 * once for the NB dots that use it, and the tile's dots are reduced
 * together (unused slots of the 16 stay zero). */
static inline __attribute__((always_inline)) void chain_mn_tile(const cai_half *a,
                                                                size_t a_stride, const float *b,
                                                                size_t b_stride, int NB,
                                                                int64_t n, float *out,
                                                                size_t out_stride, int nv)
{
    __m512 acc[16];
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++)
        acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __m512 av[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) /* past nv: the last vector again, not stored */
            av[k] = load_f16x16(a + (size_t)(k < nv ? k : nv - 1) * a_stride + i);
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            const __m512 bv = _mm512_loadu_ps(b + (size_t)j * b_stride + i);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                acc[4 * j + k] = _mm512_fmadd_ps(av[k], bv, acc[4 * j + k]);
        }
    }
    float s[16];
    _mm512_storeu_ps(s, hsum16_x16(acc));
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++)
        _mm_mask_storeu_ps(out + (size_t)j * out_stride, (__mmask8)((1u << nv) - 1),
                           _mm_loadu_ps(s + 4 * j));
}

static void dot_f16_chain_mn(const cai_half *a, size_t a_stride, int64_t n_vec, const float *b,
                             size_t b_stride, int n_b, int64_t n, float *out, size_t out_stride)
{
    for (int j = 0; j < n_b; j += 4) {
        const int nb = n_b - j < 4 ? n_b - j : 4;
        const float *bj = b + (size_t)j * b_stride;
        float *oj = out + (size_t)j * out_stride;
        for (int64_t v = 0; v < n_vec; v += 4) {
            const cai_half *av = a + (size_t)v * a_stride;
            const int nv = n_vec - v < 4 ? (int)(n_vec - v) : 4;
            switch (nb) {
            case 4:
                chain_mn_tile(av, a_stride, bj, b_stride, 4, n, oj + v, out_stride, nv);
                break;
            case 3:
                chain_mn_tile(av, a_stride, bj, b_stride, 3, n, oj + v, out_stride, nv);
                break;
            case 2:
                chain_mn_tile(av, a_stride, bj, b_stride, 2, n, oj + v, out_stride, nv);
                break;
            default:
                chain_mn_tile(av, a_stride, bj, b_stride, 1, n, oj + v, out_stride, nv);
                break;
            }
        }
    }
}

/* dot_f16_mn: 16 vectors of a at a time, one after another, each chunk
 * of 64 converted once for the NB (<= 4) right-hand vectors: 4 NB
 * accumulators; each dot's (a0+a2)+(a1+a3) is parked until the 16 are
 * reduced together per right-hand vector; the tails one by one. */
static inline __attribute__((always_inline)) void mn_block(const cai_half *a, size_t a_stride,
                                                           const float *b, size_t b_stride,
                                                           int NB, int64_t n, float *out,
                                                           size_t out_stride, int nv)
{
    const int64_t np = n & ~(int64_t)63;
    __m512 r[4][16];
    for (int k = nv; k < 16; k++) /* rows past nv: zero sums, not stored */
        for (int j = 0; j < NB; j++)
            r[j][k] = _mm512_setzero_ps();
    for (int k = 0; k < nv; k++) {
        const cai_half *ak = a + (size_t)k * a_stride;
        /* From DRAM the rows come in too slowly by themselves (short strided
         * K rows, long V rows crossing pages): the start of the row 32
         * ahead, and 8 KiB ahead within the row (a 30-layer 2048-position
         * cache, 1 thread: K pass 145 -> 93-97 us, V pass 100 -> 79 us a
         * layer; 8 rows / 2 KiB, 16 / 4 KiB and 64 / 8 KiB were slower). */
        const char *pf = (const char *)(ak + 32 * a_stride);
        _mm_prefetch(pf, _MM_HINT_T0);
        _mm_prefetch(pf + 64, _MM_HINT_T0);
        __m512 s[4][4];
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = _mm512_setzero_ps();
        for (int64_t i = 0; i < np; i += 64) {
            _mm_prefetch((const char *)(ak + i + 4096), _MM_HINT_T0);
            const __m512 a0 = load_f16x16(ak + i), a1 = load_f16x16(ak + i + 16);
            const __m512 a2 = load_f16x16(ak + i + 32), a3 = load_f16x16(ak + i + 48);
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) {
                const float *bj = b + (size_t)j * b_stride + i;
                s[j][0] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(bj), s[j][0]);
                s[j][1] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(bj + 16), s[j][1]);
                s[j][2] = _mm512_fmadd_ps(a2, _mm512_loadu_ps(bj + 32), s[j][2]);
                s[j][3] = _mm512_fmadd_ps(a3, _mm512_loadu_ps(bj + 48), s[j][3]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
            r[j][k] = _mm512_add_ps(_mm512_add_ps(s[j][0], s[j][2]),
                                    _mm512_add_ps(s[j][1], s[j][3]));
    }
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        float sums[16];
        const float *bj = b + (size_t)j * b_stride;
        _mm512_storeu_ps(sums, hsum16_x16(r[j]));
        for (int k = 0; k < nv; k++) {
            const cai_half *ak = a + (size_t)k * a_stride;
            double sum = (double)sums[k];
            for (int64_t i = np; i < n; i++)
                sum += (double)(h2f(ak[i]) * bj[i]);
            out[(size_t)j * out_stride + (size_t)k] = (float)sum;
        }
    }
}

static void dot_f16_mn(const cai_half *a, size_t a_stride, int64_t n_vec, const float *b,
                       size_t b_stride, int n_b, int64_t n, float *out, size_t out_stride)
{
    for (int j = 0; j < n_b; j += 4) {
        const int nb = n_b - j < 4 ? n_b - j : 4;
        const float *bj = b + (size_t)j * b_stride;
        float *oj = out + (size_t)j * out_stride;
        for (int64_t v = 0; v < n_vec; v += 16) {
            const cai_half *av = a + (size_t)v * a_stride;
            const int nv = n_vec - v < 16 ? (int)(n_vec - v) : 16;
            switch (nb) {
            case 4: mn_block(av, a_stride, bj, b_stride, 4, n, oj + v, out_stride, nv); break;
            case 3: mn_block(av, a_stride, bj, b_stride, 3, n, oj + v, out_stride, nv); break;
            case 2: mn_block(av, a_stride, bj, b_stride, 2, n, oj + v, out_stride, nv); break;
            default: mn_block(av, a_stride, bj, b_stride, 1, n, oj + v, out_stride, nv); break;
            }
        }
    }
}

/* dot_f16 16 at a time: each vector's four accumulators as in dot_f16,
 * the cross-lane sums together, the tails one by one. */
static void dot_f16_n(const cai_half *a, size_t a_stride, int64_t n_vec, const cai_half *b,
                      int64_t n, float *out)
{
    const int64_t np = n & ~(int64_t)63;
    int64_t v = 0;
    for (; v + 16 <= n_vec; v += 16) {
        const cai_half *av = a + (size_t)v * a_stride;
        __m512 r[16];
        for (int k = 0; k < 16; k += 4) { /* 4 vectors share each chunk of b */
            __m512 s[4][4];
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                s[q][0] = s[q][1] = s[q][2] = s[q][3] = _mm512_setzero_ps();
            for (int64_t i = 0; i < np; i += 64) {
                const __m512 b0 = load_f16x16(b + i), b1 = load_f16x16(b + i + 16);
                const __m512 b2 = load_f16x16(b + i + 32), b3 = load_f16x16(b + i + 48);
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    const cai_half *ak = av + (size_t)(k + q) * a_stride + i;
                    s[q][0] = _mm512_fmadd_ps(load_f16x16(ak), b0, s[q][0]);
                    s[q][1] = _mm512_fmadd_ps(load_f16x16(ak + 16), b1, s[q][1]);
                    s[q][2] = _mm512_fmadd_ps(load_f16x16(ak + 32), b2, s[q][2]);
                    s[q][3] = _mm512_fmadd_ps(load_f16x16(ak + 48), b3, s[q][3]);
                }
            }
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                r[k + q] = _mm512_add_ps(_mm512_add_ps(s[q][0], s[q][2]),
                                         _mm512_add_ps(s[q][1], s[q][3]));
        }
        __m512 sums = hsum16_x16(r);
        if (np == n) {
            _mm512_storeu_ps(out + v, sums);
            continue;
        }
        float red[16];
        _mm512_storeu_ps(red, sums);
        for (int k = 0; k < 16; k++) {
            const cai_half *ak = av + (size_t)k * a_stride;
            double sum = (double)red[k];
            for (int64_t i = np; i < n; i++)
                sum += (double)(h2f(ak[i]) * h2f(b[i]));
            out[v + k] = (float)sum;
        }
    }
    for (; v < n_vec; v++)
        out[v] = dot_f16(a + (size_t)v * a_stride, b, n);
}

static float dot_f16_f32(const cai_half *a, const float *b, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(),
           s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(load_f16x16(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(load_f16x16(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(load_f16x16(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(load_f16x16(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(load_f16x16(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        s1 = _mm512_fmadd_ps(maskz_load_f16(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static float f16_vec_dot(int64_t n, const void *w, const void *x)
{
    return dot_f16_f32(w, x, n);
}

static void f16_to_f32(const void *vx, float *y, int64_t n)
{
    const cai_half *x = vx;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, load_f16x16(x + i));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, maskz_load_f16(m, x + i));
    }
}

static void f32_to_f16(const float *x, cai_half *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(y + i, m, h);
    }
}

static void f16_from_f32(const float *x, void *y, int64_t n)
{
    f32_to_f16(x, y, n);
}

static float bf16_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const uint16_t *w = vw;
    const float *x = vx;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(load_bf16x16(w + i), _mm512_loadu_ps(x + i), s0);
        s1 = _mm512_fmadd_ps(load_bf16x16(w + i + 16), _mm512_loadu_ps(x + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(load_bf16x16(w + i), _mm512_loadu_ps(x + i), s0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        s1 = _mm512_fmadd_ps(maskz_load_bf16(m, w + i), _mm512_maskz_loadu_ps(m, x + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void bf16_to_f32(const void *vx, float *y, int64_t n)
{
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, load_bf16x16(x + i));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, maskz_load_bf16(m, x + i));
    }
}

/* Round to nearest even; NaNs quieted (as cai__f32_to_bf16). Not
 * vcvtneps2bf16, which flushes subnormals. */
static inline __m256i f32_to_bf16x16(__m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i rn = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m512i r = _mm512_mask_or_epi32(rn, nan, u, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

static void bf16_from_f32(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), f32_to_bf16x16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm256_mask_storeu_epi16(y + i, m, f32_to_bf16x16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void axpy_f32(float *y, float a, const float *x, int64_t n)
{
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 r = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

static void axpy_f16(float *y, float a, const cai_half *x, int64_t n)
{
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, load_f16x16(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 r = _mm512_fmadd_ps(va, maskz_load_f16(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

/* rmsnorm of many rows, each bit for bit cai__ref_rmsnorm: the rows' sums
 * are sequential chains of double additions (llama.cpp's order), so 16 rows
 * run side by side, one row per double lane (8x8 transposes of the floats
 * squared in float, then widened), two chains of 8 rows overlapping; the
 * scaling is (x * scale) * w per element as in ref. Rows past the last 16
 * go to ref's four-at-a-time loop. */
static void rms_scale_row(float *y, const float *x, const float *w, int64_t n, float eps,
                          double sum)
{
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    const __m512 sv = _mm512_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), sv),
                                              _mm512_loadu_ps(w + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv),
                                                      _mm512_maskz_loadu_ps(m, w + i)));
    }
}

/* Adds x[r][i..i+7]^2 (r < 8, rows rs floats apart) to lane r of s, element
 * by element in order. */
static inline __attribute__((always_inline)) __m512d rms_step8(__m512d s, const float *x,
                                                               size_t rs, int64_t i)
{
    __m256 v[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++)
        v[r] = _mm256_loadu_ps(x + (size_t)r * rs + i);
    __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    /* c[k]: element i + k of rows 0..7 */
    __m256 c[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                   _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                   _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                   _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm256_mul_ps(c[k], c[k])));
    return s;
}

static void rmsnorm_n(float *y, size_t y_stride, const float *x, size_t x_stride, const float *w,
                      int64_t n, int n_tok, float eps)
{
    int t = 0;
    for (; t + 16 <= n_tok; t += 16) {
        const float *x0 = x + (size_t)t * x_stride, *x1 = x0 + 8 * x_stride;
        __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            s0 = rms_step8(s0, x0, x_stride, i);
            s1 = rms_step8(s1, x1, x_stride, i);
        }
        double sum[16];
        _mm512_storeu_pd(sum, s0);
        _mm512_storeu_pd(sum + 8, s1);
        for (int r = 0; r < 16; r++) {
            const float *xr = x0 + (size_t)r * x_stride;
            for (int64_t k = i; k < n; k++) /* the tail, still in order */
                sum[r] += (double)(xr[k] * xr[k]);
        }
        for (int r = 0; r < 16; r++)
            rms_scale_row(y + (size_t)(t + r) * y_stride, x0 + (size_t)r * x_stride, w, n, eps,
                          sum[r]);
    }
    if (t < n_tok)
        cai__ref_rmsnorm_n(y + (size_t)t * y_stride, y_stride, x + (size_t)t * x_stride, x_stride,
                           w, n, n_tok - t, eps);
}

/* exp(x) for 16 floats exactly as llama.cpp's ggml_v_expf (see the ref's
 * cai__ref_expf_ggml): the same operations, so the same bits. */
static inline __m512 exp_ps(__m512 x)
{
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b,
                                        _mm512_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b,
                                        _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (!big)
        return res;
    const __m512 alt = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ), _mm512_set1_ps(INFINITY),
        _mm512_setzero_ps());
    return _mm512_mask_blend_ps(big, res, alt);
}

static void softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    __m512 vmax = _mm512_set1_ps(x[0]);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
    }
    __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    double sum = 0.0;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum += (double)_mm512_reduce_add_ps(e);
    }
    float inv = (float)(1.0 / sum);
    __m512 vi = _mm512_set1_ps(inv);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vi));
    }
}

/* softmax with the scale folded into its max pass and the f16 rounding
 * into its normalizing pass: three passes over the row instead of six. */
static void softmax_att(float *x, int64_t n, float scale, int64_t n_pad)
{
    if (n > 0) {
        const __m512 vs = _mm512_set1_ps(scale);
        __m512 vmax = _mm512_set1_ps(x[0] * scale);
        for (int64_t i = 0; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
            const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
            _mm512_mask_storeu_ps(x + i, m, v);
            vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
        }
        const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
        double sum = 0.0;
        for (int64_t i = 0; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
            __m512 e =
                _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
            _mm512_mask_storeu_ps(x + i, m, e);
            sum += (double)_mm512_reduce_add_ps(e);
        }
        const __m512 vi = _mm512_set1_ps((float)(1.0 / sum));
        for (int64_t i = 0; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
            const __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vi);
            _mm512_mask_storeu_ps(
                x + i, m,
                _mm512_cvtph_ps(_mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
        }
    }
    for (int64_t i = n < 0 ? 0 : n; i < n_pad; i++)
        x[i] = 0.0f;
}

/* ref's rotation 16 pairs at a time (same roundings: x1 * s and x1 * c
 * rounded, then one fma each); n_rot not a multiple of 32: ref. */
static void rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox)
{
    if (n_rot % 32) {
        cai__ref_rope(x, n_heads, head_dim, n_rot, cs, neox);
        return;
    }
    const int half = n_rot / 2;
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        if (neox) {
            for (int i = 0; i < half; i += 16) {
                const __m512 c0 = _mm512_loadu_ps(cs + 2 * i), c1 = _mm512_loadu_ps(cs + 2 * i + 16);
                const __m512 c = _mm512_permutex2var_ps(c0, ev, c1);
                const __m512 s = _mm512_permutex2var_ps(c0, od, c1);
                const __m512 x0 = _mm512_loadu_ps(v + i), x1 = _mm512_loadu_ps(v + i + half);
                _mm512_storeu_ps(v + i, _mm512_fmsub_ps(x0, c, _mm512_mul_ps(x1, s)));
                _mm512_storeu_ps(v + i + half, _mm512_fmadd_ps(x0, s, _mm512_mul_ps(x1, c)));
            }
            continue;
        }
        /* pairs in adjacent lanes: even lanes x0 * c - x1 * s, odd lanes
         * x0 * s + x1 * c, with cs = {c, s} pairs matching the lanes */
        for (int i = 0; i < n_rot; i += 16) {
            const __m512 cs2 = _mm512_loadu_ps(cs + i), xv = _mm512_loadu_ps(v + i);
            const __m512 x0 = _mm512_moveldup_ps(xv), x1 = _mm512_movehdup_ps(xv);
            const __m512 p = _mm512_mul_ps(x1, _mm512_permute_ps(cs2, 0xb1)); /* x1*s, x1*c */
            _mm512_storeu_ps(v + i, _mm512_fmaddsub_ps(x0, cs2, p));
        }
    }
}

static void silu_mul(float *y, const float *g, const float *u, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 vg = _mm512_maskz_loadu_ps(m, g + i);
        __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), vg));
        __m512 s = _mm512_div_ps(vg, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

/* The table lookup 16 at a time: vcvtps2ph rounds as cai__f32_to_fp16 (to
 * nearest even, NaN kept quiet), a 4-byte gather at 2-byte steps reads each
 * entry (the table has one of padding), vcvtph2ps widens it exactly; the
 * +-10 cut-offs as the reference (NaN fails both, so it takes the table). */
static void gelu_mul(float *y, const float *g, const float *u, int64_t n)
{
    const uint16_t *tab = cai__gelu_table();
    const __m512 lo = _mm512_set1_ps(-10.0f), hi = _mm512_set1_ps(10.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i), vu = _mm512_maskz_loadu_ps(m, u + i);
        const __m512i idx =
            _mm512_cvtepu16_epi32(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m512i w = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, tab, 2);
        __m512 v = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w));
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GE_OQ), v, x);
        /* at or below -10: +0 itself (not 0 times u, which may be -0) */
        const __m512 r = _mm512_maskz_mul_ps(~_mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ), v, vu);
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

/* ---- the table ---------------------------------------------------------- */

/* mm: tiled for the 32-element formats and the K-quants (avx512_mm.c), else
 * one vec_dot per output. */
static CAI__MM_LOOP(f32_mm, f32_vec_dot)
static CAI__MM_LOOP(f16_mm, f16_vec_dot)
static CAI__MM_LOOP(bf16_mm, bf16_vec_dot)
static CAI__MM_LOOP(q8_1_mm, q8_1_vec_dot)
static CAI__MM_LOOP(q8_k_mm, q8_k_vec_dot)
#define q4_0_mm cai__avx512_q4_0_mm
#define q4_1_mm cai__avx512_q4_1_mm
#define q5_0_mm cai__avx512_q5_0_mm
#define q5_1_mm cai__avx512_q5_1_mm
#define q8_0_mm cai__avx512_q8_0_mm
#define q4_k_mm cai__avx512_q4_k_mm
#define q5_k_mm cai__avx512_q5_k_mm
#define q6_k_mm cai__avx512_q6_k_mm

#define SIMD_TYPE(t, vdt, from)                                                                    \
    {                                                                                              \
        .vec_dot_type = (vdt), .to_f32 = t##_to_f32, .from_f32 = (from), .vec_dot = t##_vec_dot,   \
        .mm = t##_mm,                                                                              \
    }
/* With the packed layout. */
#define SIMD_TYPE_PACKED(t, vdt, from)                                                             \
    {                                                                                              \
        .vec_dot_type = (vdt), .to_f32 = t##_to_f32, .from_f32 = (from), .vec_dot = t##_vec_dot,   \
        .mm = t##_mm, .pack = cai__avx512_##t##_pack, .mm_packed = cai__avx512_##t##_mm_packed,       \
        .unpack_row = cai__ref_##t##_unpack_row,                                                   \
    }

const struct cai_kernels cai__kernels_avx512 = {
    .isa = "avx512",
    .type =
        {
            [CAI_TYPE_F32] = {.vec_dot_type = CAI_TYPE_F32, .to_f32 = cai__ref_f32_to_f32,
                              .from_f32 = cai__ref_f32_from_f32, .vec_dot = f32_vec_dot,
                              .mm = f32_mm},
            [CAI_TYPE_F16] = SIMD_TYPE(f16, CAI_TYPE_F32, f16_from_f32),
            [CAI_TYPE_BF16] = SIMD_TYPE(bf16, CAI_TYPE_F32, bf16_from_f32),
            [CAI_TYPE_Q4_0] = SIMD_TYPE_PACKED(q4_0, CAI_TYPE_Q8_0, cai__ref_q4_0_from_f32),
            [CAI_TYPE_Q4_1] = SIMD_TYPE(q4_1, CAI_TYPE_Q8_1, cai__ref_q4_1_from_f32),
            [CAI_TYPE_Q5_0] = SIMD_TYPE_PACKED(q5_0, CAI_TYPE_Q8_0, cai__ref_q5_0_from_f32),
            [CAI_TYPE_Q5_1] = SIMD_TYPE(q5_1, CAI_TYPE_Q8_1, cai__ref_q5_1_from_f32),
            [CAI_TYPE_Q8_0] = SIMD_TYPE_PACKED(q8_0, CAI_TYPE_Q8_0, q8_0_from_f32),
            [CAI_TYPE_Q8_1] = SIMD_TYPE(q8_1, CAI_TYPE_Q8_1, q8_1_from_f32),
            [CAI_TYPE_Q4_K] = SIMD_TYPE_PACKED(q4_k, CAI_TYPE_Q8_K, cai__ref_q4_k_from_f32),
            [CAI_TYPE_Q5_K] = SIMD_TYPE(q5_k, CAI_TYPE_Q8_K, cai__ref_q5_k_from_f32),
            [CAI_TYPE_Q6_K] = SIMD_TYPE_PACKED(q6_k, CAI_TYPE_Q8_K, cai__ref_q6_k_from_f32),
            [CAI_TYPE_Q8_K] = SIMD_TYPE(q8_k, CAI_TYPE_Q8_K, q8_k_from_f32),
        },
    .dot_f32 = dot_f32,
    .axpy_f32 = axpy_f32,
    .rmsnorm = cai__ref_rmsnorm, /* sequential double sum, as llama.cpp: exact match */
    .rmsnorm_n = rmsnorm_n,
    .rope = rope,
    .softmax = softmax,
    .softmax_att = softmax_att,
    .silu_mul = silu_mul,
    .gelu_mul = gelu_mul,
    .dot_f16_f32 = dot_f16_f32,
    .axpy_f16 = axpy_f16,
    .dot_f16 = dot_f16,
    .dot_f16_chain = dot_f16_chain,
    .dot_f16_n = dot_f16_n,
    .dot_f16_chain_n = dot_f16_chain_n,
    .dot_f16_chain_mn = dot_f16_chain_mn,
    .dot_f16_mn = dot_f16_mn,
    .f32_to_f16 = f32_to_f16,
};

#else /* !__x86_64__ */

const struct cai_kernels cai__kernels_avx512 = CAI__REF_KERNELS_INIT("avx512");

#endif /* __x86_64__ */
