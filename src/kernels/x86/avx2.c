/* avx2.c: the "avx2" kernel table (AVX2 + FMA + F16C, 256-bit).
 *
 * Every computed type has a SIMD to_f32 and vec_dot here, and the activation
 * quantizers (Q8_0, Q8_1, Q8_K) and F16/BF16 conversions are vectorized.
 * to_f32 and the quantizers are bit-exact with the ref kernels (same float
 * operations in the same order per element, roundf emulated exactly); the
 * integer dot products compute the same exact per-block integer sums as ref
 * and differ only in float summation order. Weight quantizers point at ref.
 *
 * Integer products use maddubs (u8 x s8 -> pairs of s16): weights are made
 * unsigned (4/5/6-bit quants already are; the offset -8/-16/-32 is taken
 * off with a second maddubs or the Q8_K bsums), and 8-bit weights use the
 * sign trick |w| x sign(x, w). No pair can saturate s16: the largest is
 * 2 * 128 * 127 = 32512 (activation quants are never -128). */
#include "../kernels.h"
#include "../ref/ref.h"

#if defined(__x86_64__)

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hmax_ps(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

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

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles first, then high. */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* Byte j (0..31) = 0x10 when bit j of qh is set, else 0. */
static inline __m256i bits_to_0x10(uint32_t qh)
{
    const __m256i shuf =
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Sum of u8 x s8 products, 8 int32 lanes of 4 products each. */
static inline __m256i dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Sum of s8 x s8 products (x must not hold -128), 8 int32 lanes. */
static inline __m256i dot_s8s8(__m256i w, __m256i x)
{
    return dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

/* 32 int8 -> 4 x 8 floats, in order. */
static inline void cvt_i8x32(__m256i q, __m256 out[4])
{
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* y[0..32) = q * d */
static inline void store_mul(float *y, __m256i q, float d)
{
    __m256 f[4], vd = _mm256_set1_ps(d);
    cvt_i8x32(q, f);
    for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(f[k], vd));
}

/* y[0..32) = q * d + m (two roundings, as ref) */
static inline void store_mul_add(float *y, __m256i q, float d, float m)
{
    __m256 f[4], vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    cvt_i8x32(q, f);
    for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(f[k], vd), vm));
}

/* y[0..32) = d * q - m */
static inline void store_mul_sub(float *y, __m256i q, float d, float m)
{
    __m256 f[4], vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    cvt_i8x32(q, f);
    for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(vd, f[k]), vm));
}

/* 4 x 8 int32 (each in [-128, 127]) -> 32 int8 in order. */
static inline __m256i pack_i32x32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i v = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline __m256 abs_ps(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* ---- Q4_0 --------------------------------------------------------------- */

static void q4_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        __m256i q = _mm256_sub_epi8(nibbles_32(x[i].qs), _mm256_set1_epi8(8));
        store_mul(y, q, h2f(x[i].d));
    }
}

/* The 32-element formats use ref's orders: Q4_0, Q5_0 and Q8_0 one float
 * chain of whole-block integer sums (chain_fma in ref/quants.c), Q4_1 and
 * Q5_1 one 8-lane accumulator of 4-element sums (lanes8_fma). maddubs pairs
 * cannot saturate here (at most 2 * 31 * 127, or 2 * 128 * 127 with the sign
 * trick). */
static float q4_0_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q4_0 *w = vw;
    const struct cai_block_q8_0 *x = vx;
    const __m256i eight = _mm256_set1_epi8(8);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        __m256i y0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i p0 = _mm256_sub_epi16(_mm256_maddubs_epi16(nibbles_32(w[i].qs), y0),
                                      _mm256_maddubs_epi16(eight, y0));
        int isum = hsum_epi32(_mm256_madd_epi16(p0, _mm256_set1_epi16(1)));
        sumf = fmaf(h2f(w[i].d) * h2f(x[i].d), (float)isum, sumf);
    }
    return sumf;
}

/* ---- Q4_1 --------------------------------------------------------------- */

static void q4_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul_add(y, nibbles_32(x[i].qs), h2f(x[i].d), h2f(x[i].m));
}

/* In ref's (llama.cpp's) order, bit for bit: one 8-lane accumulator of
 * 4-element integer sums per block; min terms in their own fma chain. */
static float q4_1_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q4_1 *w = vw;
    const struct cai_block_q8_1 *x = vx;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        __m256i y0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256 s0 = _mm256_cvtepi32_ps(dot_u8s8(nibbles_32(w[i].qs), y0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)), s0, acc);
        summs = fmaf(h2f(w[i].m), h2f(x[i].s), summs);
    }
    return hsum_ps(acc) + summs;
}

/* ---- Q5_0 --------------------------------------------------------------- */

static inline __m256i q5_quants(const uint8_t *qs, const uint8_t *qh)
{
    return _mm256_or_si256(nibbles_32(qs), bits_to_0x10(load_u32(qh)));
}

static void q5_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK) {
        __m256i q = _mm256_sub_epi8(q5_quants(x[i].qs, x[i].qh), _mm256_set1_epi8(16));
        store_mul(y, q, h2f(x[i].d));
    }
}

static float q5_0_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q5_0 *w = vw;
    const struct cai_block_q8_0 *x = vx;
    const __m256i sixteen = _mm256_set1_epi8(16);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        __m256i y0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i p0 = _mm256_sub_epi16(_mm256_maddubs_epi16(q5_quants(w[i].qs, w[i].qh), y0),
                                      _mm256_maddubs_epi16(sixteen, y0));
        int isum = hsum_epi32(_mm256_madd_epi16(p0, _mm256_set1_epi16(1)));
        sumf = fmaf(h2f(w[i].d) * h2f(x[i].d), (float)isum, sumf);
    }
    return sumf;
}

/* ---- Q5_1 --------------------------------------------------------------- */

static void q5_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul_add(y, q5_quants(x[i].qs, x[i].qh), h2f(x[i].d), h2f(x[i].m));
}

static float q5_1_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q5_1 *w = vw;
    const struct cai_block_q8_1 *x = vx;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        __m256i y0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256 s0 = _mm256_cvtepi32_ps(dot_u8s8(q5_quants(w[i].qs, w[i].qh), y0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)), s0, acc);
        summs = fmaf(h2f(w[i].m), h2f(x[i].s), summs);
    }
    return hsum_ps(acc) + summs;
}

/* ---- Q8_0 --------------------------------------------------------------- */

static void q8_0_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul(y, _mm256_loadu_si256((const __m256i *)x[i].qs), h2f(x[i].d));
}

/* Quantizes 32 floats with ref's rule (d = amax / 127, q = round-half-even(x *
 * (127 / amax))); returns d, writes 32 quants and
 * (when sum != NULL) their sum. */
static inline float quantize_32(const float *x, int8_t *qs, int *sum)
{
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, abs_ps(v[k]));
    }
    float am = hmax_ps(amax), d = am / 127.0f;
    float id = am != 0.0f ? 127.0f / am : 0.0f;
    id = id <= FLT_MAX ? id : 0.0f; /* as ref: tiny blocks quantize to zero */
    __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = _mm256_cvttps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], vid),
                                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32(q[0], q[1], q[2], q[3]));
    if (sum)
        *sum = hsum_epi32(
            _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    return d;
}

static void q8_0_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        float d = quantize_32(x, y[i].qs, NULL);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

static float q8_0_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q8_0 *w = vw;
    const struct cai_block_q8_0 *x = vx;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)w[i].qs);
        __m256i y0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        int isum = hsum_epi32(dot_s8s8(w0, y0));
        sumf = fmaf(h2f(w[i].d) * h2f(x[i].d), (float)isum, sumf);
    }
    return sumf;
}

/* ---- Q8_1 --------------------------------------------------------------- */

static void q8_1_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / CAI_QK; i++, y += CAI_QK)
        store_mul(y, _mm256_loadu_si256((const __m256i *)x[i].qs), h2f(x[i].d));
}

static void q8_1_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / CAI_QK; i++, x += CAI_QK) {
        int sum;
        float d = quantize_32(x, y[i].qs, &sum);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

static float q8_1_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q8_1 *w = vw;
    const struct cai_block_q8_1 *x = vx;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / CAI_QK; i++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)w[i].qs);
        __m256i y0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256 s0 = _mm256_cvtepi32_ps(dot_s8s8(w0, y0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)), s0, acc);
    }
    return hsum_ps(acc);
}

/* ---- Q8_K --------------------------------------------------------------- */

static void q8_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q8_k *x = vx;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K)
        for (int c = 0; c < 8; c++)
            store_mul(y + 32 * c, _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c)),
                      x[i].d);
}

/* Sums of 4 vectors of 8 int32 each -> 4 int32 {sum(a), sum(b), sum(c), sum(d)}. */
static inline __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    __m256i abcd = _mm256_hadd_epi32(ab, cd);
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

static void q8_k_from_f32(const float *x, void *vy, int64_t n)
{
    struct cai_block_q8_k *y = vy;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, x += CAI_QK_K) {
        __m256 vmax = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++)
            vmax = _mm256_max_ps(vmax, abs_ps(_mm256_loadu_ps(x + 8 * k)));
        float amax = hmax_ps(vmax);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* The first element of largest magnitude gives the sign (as ref). */
        float max = amax;
        __m256 vamax = _mm256_set1_ps(amax);
        for (int k = 0; k < 32; k++) {
            int m = _mm256_movemask_ps(
                _mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * k)), vamax, _CMP_EQ_OQ));
            if (m) {
                max = x[8 * k + __builtin_ctz((unsigned)m)];
                break;
            }
        }
        float iscale = -127.0f / max;
        if (!(iscale <= FLT_MAX && iscale >= -FLT_MAX)) { /* as ref */
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        __m256 vis = _mm256_set1_ps(iscale);
        __m256i sums[16];
        for (int c = 0; c < 8; c++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * k), vis);
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(127));
            }
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * c), pack_i32x32(q[0], q[1], q[2], q[3]));
            sums[2 * c] = _mm256_add_epi32(q[0], q[1]);
            sums[2 * c + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        for (int g = 0; g < 4; g++) {
            __m128i s = hsum4_epi32(sums[4 * g], sums[4 * g + 1], sums[4 * g + 2], sums[4 * g + 3]);
            _mm_storel_epi64((__m128i *)(y[i].bsums + 4 * g), _mm_packs_epi32(s, s));
        }
        y[i].d = 1.0f / iscale;
    }
}

static float q8_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q8_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        __m256i s = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            __m256i y0 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            s = _mm256_add_epi32(s, dot_s8s8(w0, y0));
        }
        acc = fmaf(w[i].d * x[i].d, (float)hsum_epi32(s), acc);
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

static void q4_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q4_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(x[i].scales, sc, mn);
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            store_mul_sub(y + 64 * c, _mm256_and_si256(q, m4), d * (float)sc[2 * c],
                          dmin * (float)mn[2 * c]);
            store_mul_sub(y + 64 * c + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                          d * (float)sc[2 * c + 1], dmin * (float)mn[2 * c + 1]);
        }
    }
}

static float q4_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q4_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float acc = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        uint8_t sc[16]; /* 8 scales, 8 mins */
        __m128i sm = k4_unpack(w[i].scales);
        _mm_storeu_si128((__m128i *)sc, sm);
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        __m256i summ = _mm256_madd_epi16(bsums, k4_mins_pairs(sm));
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            __m256i y0 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * c));
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * c + 32));
            __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(q, m4), y0);
            __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), y1);
            p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c]));
            p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        float d = h2f(w[i].d) * x[i].d, dmin = h2f(w[i].dmin) * x[i].d;
        acc = fmaf(d, (float)hsum_epi32(sumi), acc);
        acc = fmaf(-dmin, (float)hsum_epi32(summ), acc);
    }
    return acc;
}

/* Byte l = 0x10 when bit `bit` of qh[l] is set. */
static inline __m256i qh_bit_0x10(__m256i qh, int bit)
{
    __m256i b = _mm256_set1_epi8((char)(1 << bit));
    __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(qh, b), b);
    return _mm256_and_si256(m, _mm256_set1_epi8(0x10));
}

static void q5_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q5_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(x[i].scales, sc, mn);
        __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), qh_bit_0x10(qh, 2 * c));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                         qh_bit_0x10(qh, 2 * c + 1));
            store_mul_sub(y + 64 * c, lo, d * (float)sc[2 * c], dmin * (float)mn[2 * c]);
            store_mul_sub(y + 64 * c + 32, hi, d * (float)sc[2 * c + 1],
                          dmin * (float)mn[2 * c + 1]);
        }
    }
}

static float q5_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q5_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float acc = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        uint8_t sc[16]; /* 8 scales, 8 mins */
        __m128i sm = k4_unpack(w[i].scales);
        _mm_storeu_si128((__m128i *)sc, sm);
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        __m256i summ = _mm256_madd_epi16(bsums, k4_mins_pairs(sm));
        __m256i qh = _mm256_loadu_si256((const __m256i *)w[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), qh_bit_0x10(qh, 2 * c));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                         qh_bit_0x10(qh, 2 * c + 1));
            __m256i y0 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * c));
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 64 * c + 32));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0),
                                           _mm256_set1_epi16(sc[2 * c]));
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1),
                                           _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        float d = h2f(w[i].d) * x[i].d, dmin = h2f(w[i].dmin) * x[i].d;
        acc = fmaf(d, (float)hsum_epi32(sumi), acc);
        acc = fmaf(-dmin, (float)hsum_epi32(summ), acc);
    }
    return acc;
}

/* ---- Q6_K --------------------------------------------------------------- */

/* The four 32-quant groups (0..63, unsigned) of half h of a Q6_K block:
 * q[k] holds elements 128h + 32k .. 128h + 32k + 31. */
static inline void q6_k_half(const struct cai_block_q6_k *b, int h, __m256i q[4])
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    __m256i a = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    __m256i c = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    __m256i hb = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4);
    __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4);
    __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4);
    __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4);
    q[0] = _mm256_or_si256(_mm256_and_si256(a, m4), h0);
    q[1] = _mm256_or_si256(_mm256_and_si256(c, m4), h1);
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), h2);
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), h3);
}

static void q6_k_to_f32(const void *vx, float *y, int64_t n)
{
    const struct cai_block_q6_k *x = vx;
    for (int64_t i = 0; i < n / CAI_QK_K; i++, y += CAI_QK_K) {
        float d = h2f(x[i].d);
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_k_half(&x[i], h, q);
            for (int k = 0; k < 4; k++) {
                __m256 f[4];
                cvt_i8x32(_mm256_sub_epi8(q[k], _mm256_set1_epi8(32)), f);
                int s = 8 * h + 2 * k; /* scale index of the first 16 */
                __m256 d0 = _mm256_set1_ps(d * (float)x[i].scales[s]);
                __m256 d1 = _mm256_set1_ps(d * (float)x[i].scales[s + 1]);
                float *o = y + 128 * h + 32 * k;
                _mm256_storeu_ps(o, _mm256_mul_ps(d0, f[0]));
                _mm256_storeu_ps(o + 8, _mm256_mul_ps(d0, f[1]));
                _mm256_storeu_ps(o + 16, _mm256_mul_ps(d1, f[2]));
                _mm256_storeu_ps(o + 24, _mm256_mul_ps(d1, f[3]));
            }
        }
    }
}

static float q6_k_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const struct cai_block_q6_k *w = vw;
    const struct cai_block_q8_k *x = vx;
    /* picks int16 pair i of a dword-broadcast: low lane word 0, high lane word 1 */
    const __m256i split = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
                                           2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    float acc = 0.0f;
    for (int64_t i = 0; i < n / CAI_QK_K; i++) {
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales));
        __m256i bsums = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        __m256i corr = _mm256_madd_epi16(sc16, bsums); /* sum sc * bsums, in pairs */
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_k_half(&w[i], h, q);
            for (int k = 0; k < 4; k++) {
                __m256i y0 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 128 * h + 32 * k));
                __m256i scv = _mm256_shuffle_epi8(
                    _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(4 * h + k)), split);
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], y0), scv);
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
        acc = fmaf(h2f(w[i].d) * x[i].d, (float)hsum_epi32(sumi), acc);
    }
    return acc;
}

/* ---- float types -------------------------------------------------------- */

static float dot_f32(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

static float f32_vec_dot(int64_t n, const void *w, const void *x)
{
    return dot_f32(w, x, n);
}

static inline __m256 load_f16x8(const cai_half *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* f16 · f16 in llama.cpp's AVX-512 order (see kernels.h), each 16-lane
 * accumulator held as a low and a high 8-lane half, so the bits match. */
static float dot_f16(const cai_half *a, const cai_half *b, int64_t n)
{
    __m256 lo[4], hi[4];
    for (int j = 0; j < 4; j++)
        lo[j] = hi[j] = _mm256_setzero_ps();
    int64_t np = n & ~(int64_t)63, i = 0;
    for (; i < np; i += 64)
        for (int j = 0; j < 4; j++) {
            const cai_half *pa = a + i + 16 * j, *pb = b + i + 16 * j;
            lo[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)pa)),
                                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)pb)), lo[j]);
            hi[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pa + 8))),
                                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pb + 8))),
                                    hi[j]);
        }
    __m256 l = _mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3]));
    __m256 h = _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3]));
    /* _mm512_reduce_add_ps: upper 8 + lower 8, then upper 4 + lower 4, then
     * (q0+q2) + (q1+q3). */
    __m256 t = _mm256_add_ps(h, l);
    __m128 q = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    __m128 r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    double sum = (double)_mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)));
    for (; i < n; i++)
        sum += (double)(h2f(a[i]) * h2f(b[i]));
    return (float)sum;
}

/* One 16-lane accumulator held as two 8-lane halves; reduced in the
 * _mm512_reduce_add_ps order. */
static float dot_f16_chain(const cai_half *a, const cai_half *b, int64_t n)
{
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        lo = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), lo);
        hi = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8))), hi);
    }
    __m256 t = _mm256_add_ps(hi, lo);
    __m128 q = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    __m128 r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)));
}

static float dot_f16_f32(const cai_half *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(load_f16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16x8(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16x8(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), s0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        sum += h2f(a[i]) * b[i];
    return sum;
}

static float f16_vec_dot(int64_t n, const void *w, const void *x)
{
    return dot_f16_f32(w, x, n);
}

static void f16_to_f32(const void *vx, float *y, int64_t n)
{
    const cai_half *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; i++)
        y[i] = h2f(x[i]);
}

static void f32_to_f16(const float *x, cai_half *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

static void softmax(float *x, int64_t n);

static void softmax_att(float *x, int64_t n, float scale, int64_t n_pad)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(scale)));
    for (; i < n; i++)
        x[i] *= scale;
    softmax(x, n);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                                                _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++)
        x[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
    for (i = n < 0 ? 0 : n; i < n_pad; i++)
        x[i] = 0.0f;
}

static void f16_from_f32(const float *x, void *y, int64_t n)
{
    f32_to_f16(x, y, n);
}

static float bf16_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const uint16_t *w = vw;
    const float *x = vx;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(load_bf16x8(w + i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(load_bf16x8(w + i + 8), _mm256_loadu_ps(x + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(load_bf16x8(w + i), _mm256_loadu_ps(x + i), s0);
    float sum = hsum_ps(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        sum += cai__bf16_to_f32(w[i]) * x[i];
    return sum;
}

static void bf16_to_f32(const void *vx, float *y, int64_t n)
{
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, load_bf16x8(x + i));
    for (; i < n; i++)
        y[i] = cai__bf16_to_f32(x[i]);
}

/* Round to nearest even; NaNs quieted (as cai__f32_to_bf16). */
static void bf16_from_f32(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; k++) {
            __m256 v = _mm256_loadu_ps(x + i + 8 * k);
            __m256i u = _mm256_castps_si256(v);
            __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
            __m256i rn = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd));
            rn = _mm256_srli_epi32(rn, 16);
            __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
            __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            r[k] = _mm256_blendv_epi8(rn, qn, nan);
        }
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++)
        y[i] = cai__f32_to_bf16(x[i]);
}

/* ---- f32 vector ops ----------------------------------------------------- */

static void axpy_f32(float *y, float a, const float *x, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

static void axpy_f16(float *y, float a, const cai_half *x, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16x8(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * h2f(x[i]);
}

/* exp(x) for 8 floats with llama.cpp's AVX-512 ggml_v_expf operations (see
 * the ref's cai__ref_expf_ggml), so results match the other tables. The
 * final scaling by 2^n is exact for n >= -126; below that (results under
 * 2^-126, which never survive the additions and f16 roundings they feed)
 * it is done in two steps. */
static inline __m256 exp_ps(__m256 x)
{
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
                                        _mm256_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
                                        _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    /* 2^n for n in [-192, 192]: n in [-126, 127] directly; below, as
     * 2^(n+128) times the exact subnormal constant 2^-128 (one rounding, as
     * vscalefps); above, as 2^(n-128) times 2^64 twice (exact or inf). */
    __m256 nc = _mm256_max_ps(_mm256_min_ps(n, _mm256_set1_ps(192.0f)), _mm256_set1_ps(-192.0f));
    __m256 low = _mm256_cmp_ps(nc, _mm256_set1_ps(-126.0f), _CMP_LT_OQ);
    __m256 high = _mm256_cmp_ps(nc, _mm256_set1_ps(127.0f), _CMP_GT_OQ);
    __m256 n1 = _mm256_blendv_ps(nc, _mm256_add_ps(nc, _mm256_set1_ps(128.0f)), low);
    n1 = _mm256_blendv_ps(n1, _mm256_sub_ps(nc, _mm256_set1_ps(128.0f)), high);
    __m256i e1 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n1), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(j, _mm256_castsi256_ps(e1));
    res = _mm256_blendv_ps(res, _mm256_mul_ps(res, _mm256_set1_ps(0x1p-128f)), low);
    __m256 two64 = _mm256_set1_ps(0x1p64f);
    res = _mm256_blendv_ps(res, _mm256_mul_ps(_mm256_mul_ps(res, two64), two64), high);
    __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(192.0f),
                               _CMP_GT_OQ);
    __m256 alt = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                  _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    return _mm256_blendv_ps(res, alt, big);
}

/* As ref: exp per element, the sum over chunks of 16 in the order of
 * _mm512_reduce_add_ps (two 8-lane halves here), accumulated in double. */
static void softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    __m256 vm = _mm256_set1_ps(max);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i += 16) {
        float buf[16] = {0};
        int64_t m = n - i < 16 ? n - i : 16;
        memcpy(buf, x + i, (size_t)m * sizeof(float));
        __m256 lo = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(buf), vm));
        __m256 hi = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(buf + 8), vm));
        _mm256_storeu_ps(buf, lo);
        _mm256_storeu_ps(buf + 8, hi);
        for (int64_t k = m; k < 16; k++)
            buf[k] = 0.0f;
        memcpy(x + i, buf, (size_t)m * sizeof(float));
        lo = _mm256_loadu_ps(buf);
        hi = _mm256_loadu_ps(buf + 8);
        __m256 t = _mm256_add_ps(hi, lo);
        __m128 q = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
        __m128 rr = _mm_add_ps(q, _mm_movehl_ps(q, q));
        sum += (double)_mm_cvtss_f32(_mm_add_ss(rr, _mm_movehdup_ps(rr)));
    }
    float inv = (float)(1.0 / sum);
    __m256 vi = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    for (; i < n; i++)
        x[i] *= inv;
}

static void silu_mul(float *y, const float *g, const float *u, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vg = _mm256_loadu_ps(g + i);
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), vg));
        __m256 s = _mm256_div_ps(vg, _mm256_add_ps(one, e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        y[i] = g[i] / (1.0f + cai__ref_expf_ggml(-g[i])) * u[i];
}

static void dot_f16_n(const cai_half *a, size_t a_stride, int64_t n_vec, const cai_half *b,
                      int64_t n, float *out)
{
    for (int64_t v = 0; v < n_vec; v++)
        out[v] = dot_f16(a + (size_t)v * a_stride, b, n);
}

static void dot_f16_chain_n(const cai_half *a, size_t a_stride, int64_t n_vec, const cai_half *b,
                            int64_t n, float *out)
{
    for (int64_t v = 0; v < n_vec; v++)
        out[v] = dot_f16_chain(a + (size_t)v * a_stride, b, n);
}

/* ---- the table ---------------------------------------------------------- */

/* mm as one vec_dot per output (this table has no tiled kernels). */
static CAI__MM_LOOP(f32_mm, f32_vec_dot)
static CAI__MM_LOOP(f16_mm, f16_vec_dot)
static CAI__MM_LOOP(bf16_mm, bf16_vec_dot)
static CAI__MM_LOOP(q4_0_mm, q4_0_vec_dot)
static CAI__MM_LOOP(q4_1_mm, q4_1_vec_dot)
static CAI__MM_LOOP(q5_0_mm, q5_0_vec_dot)
static CAI__MM_LOOP(q5_1_mm, q5_1_vec_dot)
static CAI__MM_LOOP(q8_0_mm, q8_0_vec_dot)
static CAI__MM_LOOP(q8_1_mm, q8_1_vec_dot)
static CAI__MM_LOOP(q4_k_mm, q4_k_vec_dot)
static CAI__MM_LOOP(q5_k_mm, q5_k_vec_dot)
static CAI__MM_LOOP(q6_k_mm, q6_k_vec_dot)
static CAI__MM_LOOP(q8_k_mm, q8_k_vec_dot)

#define SIMD_TYPE(t, vdt, from)                                                                    \
    {                                                                                              \
        .vec_dot_type = (vdt), .to_f32 = t##_to_f32, .from_f32 = (from), .vec_dot = t##_vec_dot,   \
        .mm = t##_mm,                                                                              \
    }

const struct cai_kernels cai__kernels_avx2 = {
    .isa = "avx2",
    .type =
        {
            [CAI_TYPE_F32] = {.vec_dot_type = CAI_TYPE_F32, .to_f32 = cai__ref_f32_to_f32,
                              .from_f32 = cai__ref_f32_from_f32, .vec_dot = f32_vec_dot,
                              .mm = f32_mm},
            [CAI_TYPE_F16] = SIMD_TYPE(f16, CAI_TYPE_F32, f16_from_f32),
            [CAI_TYPE_BF16] = SIMD_TYPE(bf16, CAI_TYPE_F32, bf16_from_f32),
            [CAI_TYPE_Q4_0] = SIMD_TYPE(q4_0, CAI_TYPE_Q8_0, cai__ref_q4_0_from_f32),
            [CAI_TYPE_Q4_1] = SIMD_TYPE(q4_1, CAI_TYPE_Q8_1, cai__ref_q4_1_from_f32),
            [CAI_TYPE_Q5_0] = SIMD_TYPE(q5_0, CAI_TYPE_Q8_0, cai__ref_q5_0_from_f32),
            [CAI_TYPE_Q5_1] = SIMD_TYPE(q5_1, CAI_TYPE_Q8_1, cai__ref_q5_1_from_f32),
            [CAI_TYPE_Q8_0] = SIMD_TYPE(q8_0, CAI_TYPE_Q8_0, q8_0_from_f32),
            [CAI_TYPE_Q8_1] = SIMD_TYPE(q8_1, CAI_TYPE_Q8_1, q8_1_from_f32),
            [CAI_TYPE_Q4_K] = SIMD_TYPE(q4_k, CAI_TYPE_Q8_K, cai__ref_q4_k_from_f32),
            [CAI_TYPE_Q5_K] = SIMD_TYPE(q5_k, CAI_TYPE_Q8_K, cai__ref_q5_k_from_f32),
            [CAI_TYPE_Q6_K] = SIMD_TYPE(q6_k, CAI_TYPE_Q8_K, cai__ref_q6_k_from_f32),
            [CAI_TYPE_Q8_K] = SIMD_TYPE(q8_k, CAI_TYPE_Q8_K, q8_k_from_f32),
        },
    .dot_f32 = dot_f32,
    .axpy_f32 = axpy_f32,
    .rmsnorm = cai__ref_rmsnorm, /* sequential double sum, as llama.cpp: exact match */
    .rmsnorm_n = cai__ref_rmsnorm_n,
    .rope = cai__ref_rope,
    .softmax = softmax,
    .softmax_att = softmax_att,
    .silu_mul = silu_mul,
    .gelu_mul = cai__ref_gelu_mul,
    .dot_f16_f32 = dot_f16_f32,
    .axpy_f16 = axpy_f16,
    .dot_f16 = dot_f16,
    .dot_f16_chain = dot_f16_chain,
    .dot_f16_n = dot_f16_n,
    .dot_f16_chain_n = dot_f16_chain_n,
    .dot_f16_chain_mn = cai__ref_dot_f16_chain_mn,
    .dot_f16_mn = cai__ref_dot_f16_mn,
    .f32_to_f16 = f32_to_f16,
};

#else /* !__x86_64__ */

const struct cai_kernels cai__kernels_avx2 = CAI__REF_KERNELS_INIT("avx2");

#endif /* __x86_64__ */
