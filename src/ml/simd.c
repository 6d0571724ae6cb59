/* simd.c: the classic engine's AVX-512 kernels (see simd.h for the contract).
 *
 * Compiled with the baseline flags like the rest of src/ml: each function
 * carries a target attribute, so this file needs no per-file -m flags and
 * the rest of the engine runs on any x86-64. Only cml__simd_supported() may
 * be called on a CPU without AVX-512.
 *
 * Row independence is what every kernel here is built around (a row's bits
 * must not depend on its batch): GEMM tiles only change which registers hold
 * a sum, never the order of its FMAs; reductions over a row's values run in
 * a fixed order; kernels with rows in lanes do per lane what the scalar
 * code does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/base.h"
#include "simd.h"

/* -DCML_HAVE_X512=0 builds without the AVX-512 kernels, as on hosts other
 * than x86-64 (and as a test of that build): cml__simd_supported() is then
 * false and every classic model runs its portable C path. */
#ifndef CML_HAVE_X512
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CML_HAVE_X512 1
#else
#define CML_HAVE_X512 0
#endif
#endif

bool cml__simd_supported(void)
{
#if CML_HAVE_X512
    const char *force = getenv("COREAI_ISA");
    if (force && *force && strcmp(force, "avx512") != 0)
        return false;
    const struct cai_cpu *c = cai__cpu();
    return c->avx512f && c->avx512vl && c->avx512bw && c->avx512dq && c->fma;
#else
    return false;
#endif
}

#if CML_HAVE_X512

#include <immintrin.h>

#define X512_TARGET "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"
#define X512        __attribute__((target(X512_TARGET)))
#define X512_INLINE static inline __attribute__((always_inline, target(X512_TARGET)))

/* Full unrolling of the register-tile loops (constant trip counts), so that
 * the accumulator arrays become registers. Clang unrolls them unasked (and
 * its unroll(full) pragma makes sanitizer builds of this file crawl). */
#if defined(__clang__)
#define UNROLL
#elif defined(__GNUC__)
#define UNROLL _Pragma("GCC unroll 16")
#else
#define UNROLL
#endif

/* ---- exp and friends ------------------------------------------------------------------ */

/* ln 2 split so that n * LN2_HI is exact for |n| < 2^11. */
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10

/* exp(x) = 2^n e^r, n = round(x / ln 2), |r| <= ln 2 / 2, e^r by its Taylor
 * series to r^13 (truncation under 1e-17 relative), 2^n applied by scalef
 * (which rounds once into the subnormals and saturates to 0 and inf). */
X512_INLINE __m512d exp8(__m512d x)
{
    /* max/min return their second operand for NaN, so NaN passes through. */
    x = _mm512_max_pd(_mm512_set1_pd(-1000.0), x);
    x = _mm512_min_pd(_mm512_set1_pd(1000.0), x);
    __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(LN2_HI), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(LN2_LO), r);
    __m512d p = _mm512_set1_pd(1.0 / 6227020800.0);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 479001600.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 39916800.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 3628800.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 362880.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 40320.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 5040.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    return _mm512_scalef_pd(p, n);
}

/* -x, as C's unary minus (a sign flip: 0 - x would turn -0 into +0). */
X512_INLINE __m512d neg8(__m512d x)
{
    return _mm512_castsi512_pd(_mm512_xor_si512(
        _mm512_castpd_si512(x), _mm512_set1_epi64((long long)0x8000000000000000ull)));
}

X512_INLINE __m512d sigmoid8(__m512d x)
{
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d e = exp8(neg8(x));
    return _mm512_div_pd(one, _mm512_add_pd(one, e));
}

/* tanh x = sign(x) (1 - 2 / (e^{2|x|} + 1)); absolute error about 2e-16,
 * and x itself below 2^-27 where tanh x rounds to x. */
X512_INLINE __m512d tanh8(__m512d x)
{
    const __m512d one = _mm512_set1_pd(1.0);
    const __m512i sign = _mm512_set1_epi64((long long)0x8000000000000000ull);
    __m512d ax = _mm512_castsi512_pd(_mm512_andnot_si512(sign, _mm512_castpd_si512(x)));
    __m512d e = exp8(_mm512_add_pd(ax, ax));
    __m512d t = _mm512_sub_pd(one, _mm512_div_pd(_mm512_set1_pd(2.0), _mm512_add_pd(e, one)));
    __mmask8 tiny = _mm512_cmp_pd_mask(ax, _mm512_set1_pd(0x1p-27), _CMP_LT_OQ);
    t = _mm512_mask_blend_pd(tiny, t, ax);
    return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(t),
                                               _mm512_and_si512(sign, _mm512_castpd_si512(x))));
}

/* x^d for an integer d >= 0, by squaring (d = 0 gives 1, as pow does). */
X512_INLINE __m512d ipow8(__m512d x, int d)
{
    __m512d y = _mm512_set1_pd(1.0);
    while (d > 0) {
        if (d & 1)
            y = _mm512_mul_pd(y, x);
        d >>= 1;
        if (d)
            x = _mm512_mul_pd(x, x);
    }
    return y;
}

X512_INLINE __mmask8 tail8(size_t n)
{
    return n >= 8 ? (__mmask8)0xff : (__mmask8)((1u << n) - 1u);
}

X512_INLINE __mmask16 tail16(size_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

X512 void cml__x512_exp(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        __mmask8 m = tail8(n - i);
        _mm512_mask_storeu_pd(y + i, m, exp8(_mm512_maskz_loadu_pd(m, x + i)));
    }
}

X512 void cml__x512_sigmoid(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        __mmask8 m = tail8(n - i);
        _mm512_mask_storeu_pd(y + i, m, sigmoid8(_mm512_maskz_loadu_pd(m, x + i)));
    }
}

X512 double cml__x512_sum(const double *x, size_t n)
{
    __m512d acc = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 8)
        acc = _mm512_add_pd(acc, _mm512_maskz_loadu_pd(tail8(n - i), x + i));
    return _mm512_reduce_add_pd(acc);
}

X512 void cml__x512_scale(double *x, size_t n, double s)
{
    const __m512d sv = _mm512_set1_pd(s);
    for (size_t i = 0; i < n; i += 8) {
        __mmask8 m = tail8(n - i);
        _mm512_mask_storeu_pd(x + i, m, _mm512_mul_pd(_mm512_maskz_loadu_pd(m, x + i), sv));
    }
}

X512 void cml__x512_platt(const double *f, const double *a, const double *b, double *y, size_t n,
                          size_t lanes, double lo)
{
    const __m512d one = _mm512_set1_pd(1.0), vlo = _mm512_set1_pd(lo);
    const __m512d vhi = _mm512_set1_pd(1.0 - lo);
    const __m512i sign = _mm512_set1_epi64((long long)0x8000000000000000ull);
    size_t total = n * lanes;
    for (size_t i = 0; i < total; i += 8) {
        __mmask8 m = tail8(total - i);
        __m512d av, bv;
        if (lanes == 8) {
            av = _mm512_set1_pd(a[i / 8]);
            bv = _mm512_set1_pd(b[i / 8]);
        } else {
            av = _mm512_maskz_loadu_pd(m, a + i);
            bv = _mm512_maskz_loadu_pd(m, b + i);
        }
        __m512d z = _mm512_add_pd(_mm512_mul_pd(_mm512_maskz_loadu_pd(m, f + i), av), bv);
        __m512d az = _mm512_castsi512_pd(_mm512_andnot_si512(sign, _mm512_castpd_si512(z)));
        __m512d e = exp8(neg8(az));
        __m512d den = _mm512_add_pd(one, e);
        __mmask8 pos = _mm512_cmp_pd_mask(z, _mm512_setzero_pd(), _CMP_GE_OQ);
        __m512d v = _mm512_div_pd(_mm512_mask_blend_pd(pos, one, e), den);
        v = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(v, vlo, _CMP_LT_OQ), v, vlo);
        v = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(v, vhi, _CMP_GT_OQ), v, vhi);
        _mm512_mask_storeu_pd(y + i, m, v);
    }
}

/* ---- float32 activations ---------------------------------------------------------- */

/* The activation codes of nn.h's enum nn_act that are vectorized here. */
enum { A_LINEAR = 5, A_RELU = 10, A_TANH = 30, A_STANH = 31, A_SIGMOID = 40 };

/* expf: exp(x) = 2^n e^r as exp8 does, in float, e^r to r^7 (truncation
 * 5e-9 relative, under float's 6e-8). */
X512_INLINE __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-200.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(200.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* tanhf: below |x| = 0.625, x + x u P(u) with u = x^2 and P a degree-4
 * least-squares fit of (tanh(x)/x - 1)/u (relative error 4.5e-9); above,
 * 1 - 2 / (e^{2|x|} + 1), which has no cancellation there. */
X512_INLINE __m512 tanh16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
    __m512 u = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-0.005704042524758004f);
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(0.020637861489057614f));
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(-0.05373915650358899f));
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(0.13331431753508544f));
    p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(-0.33333281284113053f));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(ax, u), p, ax);
    __m512 e = exp16(_mm512_add_ps(ax, ax));
    __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
    __mmask16 lo = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    __m512 t = _mm512_mask_blend_ps(lo, big, small);
    return _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(sign, _mm512_castps_si512(x))));
}

X512_INLINE __m512 sigmoid16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = exp16(_mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    return _mm512_div_ps(one, _mm512_add_ps(one, e));
}

/* One vector of an activation cml__x512_act_f32 vectorizes. */
X512_INLINE __m512 act16(int act, __m512 v, __m512 va, __m512 vb)
{
    switch (act) {
    case A_LINEAR: return _mm512_add_ps(_mm512_mul_ps(va, v), vb);
    /* v > 0 ? v : 0: max returns its second operand (0) for NaN too */
    case A_RELU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case A_TANH: return tanh16(v);
    case A_STANH: return _mm512_mul_ps(va, tanh16(_mm512_mul_ps(vb, v)));
    case A_SIGMOID: return sigmoid16(v);
    default: return v;
    }
}

/* ---- GEMM ------------------------------------------------------------------------------ */

/* One R x J tile: R rows, J vectors of outputs. The constant R and J come
 * from the switch below, so the loops unroll and acc lives in registers.
 * mlast masks the last output vector. */
X512_INLINE void tile_f64(const int R, const int J, size_t n_in, const double *x, size_t ldx,
                          const double *w, size_t ldw, const double *b, __mmask8 mlast, double *y,
                          size_t ldy)
{
    __m512d acc[8][4];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int j = 0; j < J; j++)
            acc[r][j] = _mm512_setzero_pd();
    for (size_t k = 0; k < n_in; k++) {
        __m512d wv[4];
        UNROLL for (int j = 0; j < J; j++)
            wv[j] = _mm512_loadu_pd(w + k * ldw + 8 * j);
        UNROLL for (int r = 0; r < R; r++) {
            __m512d xv = _mm512_set1_pd(x[(size_t)r * ldx + k]);
            UNROLL for (int j = 0; j < J; j++)
                acc[r][j] = _mm512_fmadd_pd(xv, wv[j], acc[r][j]);
        }
    }
    UNROLL for (int j = 0; j < J; j++) {
        __mmask8 m = j == J - 1 ? mlast : (__mmask8)0xff;
        __m512d bv = b ? _mm512_maskz_loadu_pd(m, b + 8 * j) : _mm512_setzero_pd();
        UNROLL for (int r = 0; r < R; r++)
            _mm512_mask_storeu_pd(y + (size_t)r * ldy + 8 * j, m, _mm512_add_pd(acc[r][j], bv));
    }
}

/* Rows of x are read in chunks of KCHUNK inputs: the inputs some row of the
 * tile has nonzero (all of them when !skip) are listed first, and only those
 * feed the FMAs. A zero input adds x w = +-0 to a sum that is never -0
 * (it starts at +0, and x + (-x) rounds to +0), which leaves it unchanged
 * when w is finite: the caller sets `skip` only for finite weights. */
#define KCHUNK 256

X512_INLINE void tile_f32(const int R, const int J, size_t n_in, const float *x, size_t ldx,
                          const float *w, size_t ldw, const float *b, __mmask16 mlast, float *y,
                          size_t ldy, bool skip)
{
    __m512 acc[8][4];
    int32_t ks[KCHUNK + 16];
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int j = 0; j < J; j++)
            acc[r][j] = _mm512_setzero_ps();
    for (size_t k0 = 0; k0 < n_in; k0 += KCHUNK) {
        size_t kend = CAI_MIN(n_in, k0 + KCHUNK), n = 0;
        for (size_t k = k0; k < kend; k += 16) {
            __mmask16 m = tail16(kend - k), nz = m;
            if (skip) {
                nz = 0;
                UNROLL for (int r = 0; r < R; r++)
                    nz |= _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, x + (size_t)r * ldx + k),
                                                  _mm512_setzero_ps(), _CMP_NEQ_UQ);
            }
            _mm512_storeu_si512((void *)(ks + n),
                                _mm512_maskz_compress_epi32(
                                    nz, _mm512_add_epi32(iota, _mm512_set1_epi32((int)k))));
            n += (size_t)__builtin_popcount(nz);
        }
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)ks[i];
            __m512 wv[4];
            UNROLL for (int j = 0; j < J; j++)
                wv[j] = _mm512_loadu_ps(w + k * ldw + 16 * j);
            UNROLL for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_set1_ps(x[(size_t)r * ldx + k]);
                UNROLL for (int j = 0; j < J; j++)
                    acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
            }
        }
    }
    UNROLL for (int j = 0; j < J; j++) {
        __mmask16 m = j == J - 1 ? mlast : (__mmask16)0xffff;
        __m512 bv = b ? _mm512_maskz_loadu_ps(m, b + 16 * j) : _mm512_setzero_ps();
        UNROLL for (int r = 0; r < R; r++)
            _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16 * j, m, _mm512_add_ps(acc[r][j], bv));
    }
}

/* Up to 16 accumulators: 8 rows for 1-2 output vectors, 4 rows for 3-4;
 * the rows left over go by 4, 2 and 1. */
#define TILE_CASES(F)                                                                              \
    F(1, 1) F(2, 1) F(4, 1) F(8, 1) F(1, 2) F(2, 2) F(4, 2) F(8, 2)                                \
    F(1, 3) F(2, 3) F(4, 3) F(1, 4) F(2, 4) F(4, 4)

/* The largest power of two <= min(rmax, left). */
static inline size_t tile_rows(size_t rmax, size_t left)
{
    size_t r = rmax;
    while (r > left)
        r /= 2;
    return r;
}

X512 void cml__x512_gemm_f64(size_t n_rows, size_t n_out, size_t n_in, const double *x,
                             size_t ldx, const double *w, size_t ldw, const double *b, double *y,
                             size_t ldy)
{
    for (size_t o = 0; o < n_out; o += 32) {
        size_t left = n_out - o;
        int J = (int)(left >= 32 ? 4 : (left + 7) / 8);
        __mmask8 mlast = tail8(left - 8 * (size_t)(J - 1));
        int rmax = J <= 2 ? 8 : 4;
        const double *bo = b ? b + o : NULL;
        for (size_t r0 = 0, R; r0 < n_rows; r0 += R) {
            R = tile_rows((size_t)rmax, n_rows - r0);
            const double *xr = x + r0 * ldx;
            double *yr = y + r0 * ldy + o;
            switch (R * 8 + (size_t)J) {
#define F64_CASE(RR, JJ)                                                                           \
    case (RR) * 8 + (JJ): tile_f64(RR, JJ, n_in, xr, ldx, w + o, ldw, bo, mlast, yr, ldy); break;
                TILE_CASES(F64_CASE)
#undef F64_CASE
            default: break;
            }
        }
    }
}

X512 void cml__x512_gemm_f32(size_t n_rows, size_t n_out, size_t n_in, const float *x, size_t ldx,
                             const float *w, size_t ldw, const float *b, float *y, size_t ldy,
                             const struct cml__x512_epi *epi, bool skip_zeros)
{
    for (size_t o = 0; o < n_out; o += 64) {
        size_t left = n_out - o;
        int J = (int)(left >= 64 ? 4 : (left + 15) / 16);
        __mmask16 mlast = tail16(left - 16 * (size_t)(J - 1));
        int rmax = J <= 2 ? 8 : 4;
        const float *bo = b ? b + o : NULL;
        for (size_t r0 = 0, R; r0 < n_rows; r0 += R) {
            R = tile_rows((size_t)rmax, n_rows - r0);
            const float *xr = x + r0 * ldx;
            float *yr = y + r0 * ldy + o;
            switch (R * 8 + (size_t)J) {
#define F32_CASE(RR, JJ)                                                                           \
    case (RR) * 8 + (JJ):                                                                          \
        tile_f32(RR, JJ, n_in, xr, ldx, w + o, ldw, bo, mlast, yr, ldy, skip_zeros);               \
        break;
                TILE_CASES(F32_CASE)
#undef F32_CASE
            default: break;
            }
            /* the fused activation, while the tile's outputs are in L1 */
            for (size_t r = 0; epi && r < R; r++)
                cml__x512_act_f32(epi->act, epi->alpha, epi->beta, yr + r * ldy,
                                  epi->y + (r0 + r) * epi->ldy + o, CAI_MIN((size_t)64, left));
        }
    }
}

/* Rows in lanes: xt[k][8] = x[r][k] for the n_rows (<= 8) rows, k < n_in
 * rounded up to 8 (zeros past n_in and n_rows), by 8x8 transposes. */
X512_INLINE void transpose_rows8(const double *x, size_t ldx, size_t n_rows, size_t n_in,
                                 double *xt, uint8_t *nz)
{
    const __m512i i_lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i i_hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    for (size_t k0 = 0; k0 < n_in; k0 += 8) {
        __mmask8 m = tail8(n_in - k0);
        __m512d r[8], t[8], u[8];
        UNROLL for (int i = 0; i < 8; i++)
            r[i] = (size_t)i < n_rows ? _mm512_maskz_loadu_pd(m, x + (size_t)i * ldx + k0) :
                                        _mm512_setzero_pd();
        if (nz) {
            /* bit j: some row has x[k0 + j] != 0 (-0 counts as 0, NaN as not) */
            __m512d a = _mm512_or_pd(_mm512_or_pd(_mm512_or_pd(r[0], r[1]), _mm512_or_pd(r[2], r[3])),
                                     _mm512_or_pd(_mm512_or_pd(r[4], r[5]), _mm512_or_pd(r[6], r[7])));
            nz[k0 / 8] |= (uint8_t)_mm512_test_epi64_mask(
                _mm512_castpd_si512(a), _mm512_set1_epi64(0x7fffffffffffffffll));
        }
        UNROLL for (int i = 0; i < 8; i += 2) {
            t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);     /* c0 c2 c4 c6 of rows i, i+1 */
            t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]); /* c1 c3 c5 c7 */
        }
        UNROLL for (int h = 0; h < 8; h += 4) {
            /* rows h..h+3: u[h] = c0 | c4, u[h+1] = c2 | c6, u[h+2] = c1 | c5, u[h+3] = c3 | c7 */
            u[h] = _mm512_permutex2var_pd(t[h], i_lo, t[h + 2]);
            u[h + 1] = _mm512_permutex2var_pd(t[h], i_hi, t[h + 2]);
            u[h + 2] = _mm512_permutex2var_pd(t[h + 1], i_lo, t[h + 3]);
            u[h + 3] = _mm512_permutex2var_pd(t[h + 1], i_hi, t[h + 3]);
        }
        double *o = xt + 8 * k0;
        _mm512_storeu_pd(o + 0, _mm512_shuffle_f64x2(u[0], u[4], 0x44));
        _mm512_storeu_pd(o + 32, _mm512_shuffle_f64x2(u[0], u[4], 0xee));
        _mm512_storeu_pd(o + 16, _mm512_shuffle_f64x2(u[1], u[5], 0x44));
        _mm512_storeu_pd(o + 48, _mm512_shuffle_f64x2(u[1], u[5], 0xee));
        _mm512_storeu_pd(o + 8, _mm512_shuffle_f64x2(u[2], u[6], 0x44));
        _mm512_storeu_pd(o + 40, _mm512_shuffle_f64x2(u[2], u[6], 0xee));
        _mm512_storeu_pd(o + 24, _mm512_shuffle_f64x2(u[3], u[7], 0x44));
        _mm512_storeu_pd(o + 56, _mm512_shuffle_f64x2(u[3], u[7], 0xee));
    }
}

/* O (1..12) outputs for G (1..2) groups of 8 rows, group g in xt[g] and
 * written to zt[g]. */
X512_INLINE void gemm8_chunk(const int O, const int G, const int32_t *ks, size_t n_k,
                             size_t n_in, const double *const *xt, const double *w,
                             const double *b, double *const *zt)
{
    __m512d acc[12][2];
    UNROLL for (int o = 0; o < O; o++)
        UNROLL for (int g = 0; g < G; g++)
            acc[o][g] = _mm512_setzero_pd();
    const double *x0 = xt[0], *x1 = xt[G - 1];
    for (size_t i = 0; i < n_k; i++) {
        size_t k = (size_t)ks[i];
        __m512d xv[2];
        xv[0] = _mm512_loadu_pd(x0 + 8 * k);
        if (G > 1)
            xv[1] = _mm512_loadu_pd(x1 + 8 * k);
        UNROLL for (int o = 0; o < O; o++) {
            __m512d wv = _mm512_set1_pd(w[(size_t)o * n_in + k]);
            UNROLL for (int g = 0; g < G; g++)
                acc[o][g] = _mm512_fmadd_pd(xv[g], wv, acc[o][g]);
        }
    }
    UNROLL for (int o = 0; o < O; o++)
        UNROLL for (int g = 0; g < G; g++)
            _mm512_storeu_pd(zt[g] + 8 * o, _mm512_add_pd(acc[o][g], _mm512_set1_pd(b ? b[o] : 0.0)));
}

X512 void cml__x512_gemm8_f64(size_t n_rows, size_t n_out, size_t n_in, const double *x,
                              size_t ldx, const double *w, const double *b, double *zt,
                              double *xt, int32_t *ks, bool skip_zeros)
{
    size_t kp = (n_in + 7) / 8 * 8, n_k = 0;
    int G = n_rows > 8 ? 2 : 1;
    /* The inputs some row has nonzero (tile_f32's zero skipping), one bit
     * per input in nz, found while transposing. */
    uint8_t *nz = skip_zeros ? (uint8_t *)(ks + kp) : NULL;
    if (nz)
        memset(nz, 0, kp / 8);
    transpose_rows8(x, ldx, CAI_MIN((size_t)8, n_rows), n_in, xt, nz);
    if (G > 1)
        transpose_rows8(x + 8 * ldx, ldx, n_rows - 8, n_in, xt + 8 * kp, nz);
    const __m256i iota = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    for (size_t k = 0; k < n_in; k += 8) {
        __mmask8 m = nz ? nz[k / 8] : tail8(n_in - k);
        _mm256_storeu_si256((__m256i *)(ks + n_k),
                            _mm256_maskz_compress_epi32(
                                m, _mm256_add_epi32(iota, _mm256_set1_epi32((int)k))));
        n_k += (size_t)__builtin_popcount(m);
    }
    for (size_t o = 0; o < n_out; o += 12) {
        const double *wo = w + o * n_in, *bo = b ? b + o : NULL;
        const double *xs[2] = {xt, xt + 8 * kp};
        double *zs[2] = {zt + 8 * o, zt + 8 * n_out + 8 * o};
        switch (CAI_MIN((size_t)12, n_out - o) * 2 + (size_t)(G - 1)) {
#define G8(OO)                                                                                     \
    case (OO) * 2: gemm8_chunk(OO, 1, ks, n_k, n_in, xs, wo, bo, zs); break;                       \
    case (OO) * 2 + 1: gemm8_chunk(OO, 2, ks, n_k, n_in, xs, wo, bo, zs); break;
            G8(1) G8(2) G8(3) G8(4) G8(5) G8(6) G8(7) G8(8) G8(9) G8(10) G8(11) G8(12)
#undef G8
        default: break;
        }
    }
}

X512 void cml__x512_ovr8(double *pt, size_t k)
{
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d sum = _mm512_setzero_pd();
    for (size_t i = 0; i < k; i++) {
        __m512d p = _mm512_div_pd(one, _mm512_add_pd(one, exp8(neg8(_mm512_loadu_pd(pt + 8 * i)))));
        _mm512_storeu_pd(pt + 8 * i, p);
        sum = _mm512_add_pd(sum, p);
    }
    __mmask8 pos = _mm512_cmp_pd_mask(sum, _mm512_setzero_pd(), _CMP_GT_OQ);
    __m512d inv = _mm512_div_pd(one, sum);
    for (size_t i = 0; i < k; i++)
        _mm512_mask_storeu_pd(pt + 8 * i, pos, _mm512_mul_pd(_mm512_loadu_pd(pt + 8 * i), inv));
}

X512 void cml__x512_argmax8(const double *pt, size_t k, size_t n_rows, int32_t *best)
{
    __m512d bv = _mm512_loadu_pd(pt);
    __m256i bi = _mm256_setzero_si256();
    for (size_t i = 1; i < k; i++) {
        __m512d v = _mm512_loadu_pd(pt + 8 * i);
        __mmask8 gt = _mm512_cmp_pd_mask(v, bv, _CMP_GT_OQ);
        bv = _mm512_mask_mov_pd(bv, gt, v);
        bi = _mm256_mask_mov_epi32(bi, gt, _mm256_set1_epi32((int)i));
    }
    _mm256_mask_storeu_epi32(best, tail8(n_rows), bi);
}

X512 void cml__x512_untranspose8(const double *pt, size_t k, size_t n_rows, double *y, size_t ldy,
                                 double *tmp)
{
    for (size_t k0 = 0; k0 < k; k0 += 8) {
        transpose_rows8(pt + 8 * k0, 8, CAI_MIN((size_t)8, k - k0), 8, tmp, NULL);
        __mmask8 m = tail8(k - k0);
        for (size_t r = 0; r < n_rows; r++)
            _mm512_mask_storeu_pd(y + r * ldy + k0, m, _mm512_loadu_pd(tmp + 8 * r));
    }
}

/* ---- neural network layers ---------------------------------------------------------------- */

X512 void cml__x512_to_f32(const double *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        __mmask8 m = tail8(n - i);
        _mm256_mask_storeu_ps(y + i, m, _mm512_cvtpd_ps(_mm512_maskz_loadu_pd(m, x + i)));
    }
}

X512 bool cml__x512_act_f32(int act, float alpha, float beta, const float *x, float *y, size_t n)
{
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    switch (act) {
#define ACT_LOOP(A)                                                                                \
    case A:                                                                                        \
        for (size_t i = 0; i < n; i += 16) {                                                       \
            __mmask16 m = tail16(n - i);                                                           \
            _mm512_mask_storeu_ps(y + i, m, act16(A, _mm512_maskz_loadu_ps(m, x + i), va, vb));    \
        }                                                                                          \
        return true;
        ACT_LOOP(A_LINEAR) ACT_LOOP(A_RELU) ACT_LOOP(A_TANH) ACT_LOOP(A_STANH) ACT_LOOP(A_SIGMOID)
#undef ACT_LOOP
    default:
        return false;
    }
}

X512 void cml__x512_softmax_f32(const float *x, float *y, size_t n)
{
    if (n == 0)
        return;
    __m512 mv = _mm512_set1_ps(x[0]);
    for (size_t i = 0; i < n; i += 16)
        mv = _mm512_mask_max_ps(mv, tail16(n - i), mv, _mm512_maskz_loadu_ps(tail16(n - i), x + i));
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx)));
    }
    /* the sum in element order, as cml__x512_softmax_rows takes it per lane */
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++)
        sum += y[i];
    const __m512 s = _mm512_set1_ps(sum);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, y + i), s));
    }
}

X512 void cml__x512_softmax_rows(const float *x, size_t ldx, size_t n_rows, size_t n, float *tmp,
                                 double *probs, int32_t *best)
{
    const __mmask16 live = tail16(n_rows);
    /* rows into lanes (plain copies: as fast as 16-lane gathers here) */
    for (size_t r = 0; r < 16; r++)
        for (size_t i = 0; i < n; i++)
            tmp[16 * i + r] = r < n_rows ? x[r * ldx + i] : 0.0f;
    __m512 mx = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i++) {
        __m512 v = _mm512_loadu_ps(tmp + 16 * i);
        mx = i ? _mm512_max_ps(mx, v) : v;
    }
    __m512 sum = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i++) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(tmp + 16 * i), mx));
        _mm512_storeu_ps(tmp + 16 * i, e);
        sum = i ? _mm512_add_ps(sum, e) : e;
    }
    __m512 bv = _mm512_setzero_ps();
    __m512i bi = _mm512_setzero_si512();
    for (size_t i = 0; i < n; i++) {
        __m512 p = _mm512_div_ps(_mm512_loadu_ps(tmp + 16 * i), sum);
        _mm512_storeu_ps(tmp + 16 * i, p);
        __mmask16 gt = i ? _mm512_cmp_ps_mask(p, bv, _CMP_GT_OQ) : (__mmask16)0xffff;
        bv = _mm512_mask_mov_ps(bv, gt, p);
        bi = _mm512_mask_mov_epi32(bi, gt, _mm512_set1_epi32((int)i));
    }
    if (best)
        _mm512_mask_storeu_epi32(best, live, bi);
    if (probs)
        for (size_t r = 0; r < n_rows; r++)
            for (size_t i = 0; i < n; i++)
                probs[r * n + i] = (double)tmp[16 * i + r];
}

/* ---- support vector machines ----------------------------------------------------------- */

/* R rows (1..4) against J vectors of support vectors starting at s0. */
X512_INLINE void svm_tile(const int R, const int J, const bool rbf,
                          const struct cml__x512_svm *s, const double *x, size_t ldx, size_t s0,
                          double *kv)
{
    __m512d acc[4][4];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int j = 0; j < J; j++)
            acc[r][j] = _mm512_setzero_pd();
    for (size_t k = 0; k < s->n_feat; k++) {
        __m512d sv[4];
        UNROLL for (int j = 0; j < J; j++)
            sv[j] = _mm512_loadu_pd(s->svt + k * s->ld + s0 + 8 * j);
        UNROLL for (int r = 0; r < R; r++) {
            __m512d xv = _mm512_set1_pd(x[(size_t)r * ldx + k]);
            UNROLL for (int j = 0; j < J; j++) {
                if (rbf) {
                    __m512d d = _mm512_sub_pd(xv, sv[j]);
                    acc[r][j] = _mm512_fmadd_pd(d, d, acc[r][j]);
                } else {
                    acc[r][j] = _mm512_fmadd_pd(xv, sv[j], acc[r][j]);
                }
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int j = 0; j < J; j++)
            _mm512_storeu_pd(kv + (size_t)r * s->ld + s0 + 8 * j, acc[r][j]);
}

/* The kernel function of the sums (squared distances or dot products) in
 * kv[0..n), in place. */
static X512 void svm_finish(const struct cml__x512_svm *s, double *kv, size_t n)
{
    const __m512d g = _mm512_set1_pd(s->gamma), c = _mm512_set1_pd(s->c);
    const __m512d ng = _mm512_set1_pd(-s->gamma);
    for (size_t i = 0; i < n; i += 8) {
        __m512d a = _mm512_loadu_pd(kv + i);
        switch (s->kernel) {
        case 2: a = exp8(_mm512_mul_pd(ng, a)); break;
        case 3: a = ipow8(_mm512_add_pd(_mm512_mul_pd(g, a), c), s->degree); break;
        case 4: a = tanh8(_mm512_add_pd(_mm512_mul_pd(g, a), c)); break;
        default: break;
        }
        _mm512_storeu_pd(kv + i, a);
    }
}

X512 void cml__x512_svm_kernel(const struct cml__x512_svm *s, const double *x, size_t ldx,
                               size_t n_rows, double *kv)
{
    bool rbf = s->kernel == 2;
    /* Support vectors outer, rows inner: a chunk of 32 vectors (n_feat x
     * 256 bytes) is read from L2 once and reused from L1 by every row. */
    for (size_t s0 = 0; s0 < s->ld; s0 += 32) {
        int J = (int)CAI_MIN((size_t)4, (s->ld - s0) / 8);
        for (size_t r0 = 0; r0 < n_rows; r0 += 4) {
            const double *xr = x + r0 * ldx;
            double *kr = kv + r0 * s->ld;
            if (n_rows - r0 >= 4) {
                switch (J * 2 + rbf) {
#define SVM4(JJ)                                                                                   \
    case (JJ) * 2: svm_tile(4, JJ, false, s, xr, ldx, s0, kr); break;                              \
    case (JJ) * 2 + 1: svm_tile(4, JJ, true, s, xr, ldx, s0, kr); break;
                    SVM4(1) SVM4(2) SVM4(3) SVM4(4)
#undef SVM4
                default: break;
                }
                continue;
            }
            for (size_t r = r0; r < n_rows; r++, xr += ldx, kr += s->ld) {
                switch (J * 2 + rbf) {
#define SVM1(JJ)                                                                                   \
    case (JJ) * 2: svm_tile(1, JJ, false, s, xr, ldx, s0, kr); break;                              \
    case (JJ) * 2 + 1: svm_tile(1, JJ, true, s, xr, ldx, s0, kr); break;
                    SVM1(1) SVM1(2) SVM1(3) SVM1(4)
#undef SVM1
                default: break;
                }
            }
        }
    }
    for (size_t r = 0; r < n_rows; r++)
        svm_finish(s, kv + r * s->ld, s->ld);
}

X512 double cml__x512_svm_dot(const double *kv, const double *c1, size_t lo1, size_t hi1,
                              const double *c2, size_t lo2, size_t hi2, double rho)
{
    __m512d acc = _mm512_setzero_pd();
    for (size_t i = lo1; i < hi1; i += 8) {
        __mmask8 m = tail8(hi1 - i);
        acc = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(m, c1 + i), _mm512_maskz_loadu_pd(m, kv + i),
                              acc);
    }
    for (size_t i = lo2; i < hi2; i += 8) {
        __mmask8 m = tail8(hi2 - i);
        acc = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(m, c2 + i), _mm512_maskz_loadu_pd(m, kv + i),
                              acc);
    }
    return _mm512_reduce_add_pd(acc) - rho;
}

/* svm.c's couple(), statement for statement, with a lane per row. Lanes
 * that have converged stop changing (their break), so each lane runs the
 * scalar iteration count. No FMA: each product and sum rounds as in C. */
X512 void cml__x512_couple8(size_t k, const double *r, double *q, double *qp, double *p)
{
#define V(a, i) ((a) + (size_t)(i) * 8)
    size_t max_iter = k > 100 ? k : 100;
    const __m512d eps = _mm512_set1_pd(0.005 / (double)k), one = _mm512_set1_pd(1.0);
    const __m512d two = _mm512_set1_pd(2.0);
    for (size_t t = 0; t < k; t++) {
        _mm512_storeu_pd(V(p, t), _mm512_set1_pd(1.0 / (double)k));
        __m512d qtt = _mm512_setzero_pd();
        for (size_t j = 0; j < k; j++) {
            if (j == t)
                continue;
            __m512d rjt = _mm512_loadu_pd(V(r, j * k + t));
            qtt = _mm512_add_pd(qtt, _mm512_mul_pd(rjt, rjt));
            _mm512_storeu_pd(V(q, t * k + j),
                             _mm512_mul_pd(neg8(rjt), _mm512_loadu_pd(V(r, t * k + j))));
        }
        _mm512_storeu_pd(V(q, t * k + t), qtt);
    }
    __mmask8 live = 0xff;
    for (size_t iter = 0; iter < max_iter && live; iter++) {
        __m512d pqp = _mm512_setzero_pd(), max_err = _mm512_setzero_pd();
        for (size_t t = 0; t < k; t++) {
            __m512d a = _mm512_setzero_pd();
            for (size_t j = 0; j < k; j++)
                a = _mm512_add_pd(a, _mm512_mul_pd(_mm512_loadu_pd(V(q, t * k + j)),
                                                   _mm512_loadu_pd(V(p, j))));
            _mm512_mask_storeu_pd(V(qp, t), live, a);
            pqp = _mm512_add_pd(pqp, _mm512_mul_pd(_mm512_loadu_pd(V(p, t)), a));
        }
        for (size_t t = 0; t < k; t++) {
            __m512d d = _mm512_sub_pd(_mm512_loadu_pd(V(qp, t)), pqp);
            __m512d e = _mm512_castsi512_pd(_mm512_andnot_si512(
                _mm512_set1_epi64((long long)0x8000000000000000ull), _mm512_castpd_si512(d)));
            /* e > max_err ? e : max_err, as max_pd(e, max_err) computes */
            max_err = _mm512_max_pd(e, max_err);
        }
        live &= (__mmask8)~_mm512_cmp_pd_mask(max_err, eps, _CMP_LT_OQ);
        if (!live)
            break;
        for (size_t t = 0; t < k; t++) {
            __m512d qtt = _mm512_loadu_pd(V(q, t * k + t));
            __m512d qpt = _mm512_loadu_pd(V(qp, t));
            __m512d diff = _mm512_div_pd(_mm512_add_pd(neg8(qpt), pqp), qtt);
            __m512d pt = _mm512_add_pd(_mm512_loadu_pd(V(p, t)), diff);
            _mm512_mask_storeu_pd(V(p, t), live, pt);
            __m512d opd = _mm512_add_pd(one, diff);
            __m512d inner = _mm512_add_pd(_mm512_mul_pd(diff, qtt), _mm512_mul_pd(two, qpt));
            __m512d np = _mm512_div_pd(_mm512_div_pd(_mm512_add_pd(pqp, _mm512_mul_pd(diff, inner)),
                                                     opd),
                                       opd);
            pqp = _mm512_mask_mov_pd(pqp, live, np);
            for (size_t j = 0; j < k; j++) {
                __m512d qpj = _mm512_loadu_pd(V(qp, j));
                __m512d v = _mm512_div_pd(
                    _mm512_add_pd(qpj, _mm512_mul_pd(diff, _mm512_loadu_pd(V(q, t * k + j)))),
                    opd);
                _mm512_mask_storeu_pd(V(qp, j), live, v);
                _mm512_mask_storeu_pd(V(p, j), live,
                                      _mm512_div_pd(_mm512_loadu_pd(V(p, j)), opd));
            }
        }
    }
#undef V
}

/* ---- tree ensembles ---------------------------------------------------------------------- */

size_t cml__x512_forest_scratch(size_t n_feat, size_t n_dims)
{
    /* columns (n_feat rounded up to 8), NaN masks (one byte each), accumulators */
    return 8 * ((n_feat + 7) / 8 * 8) + (n_feat + 7) / 8 + 1 + 8 * n_dims;
}

/* xt[f][8] = the n_rows rows' feature f (0 in unused lanes), nanm[f] the
 * lanes where it is NaN. Returns the lanes holding a NaN anywhere. */
X512_INLINE __mmask8 columns8(const double *x, size_t ldx, size_t n_rows, size_t n_feat,
                              double *xt, uint8_t *nanm)
{
    __mmask8 any = 0;
    transpose_rows8(x, ldx, n_rows, n_feat, xt, NULL);
    for (size_t f = 0; f < n_feat; f++) {
        __m512d col = _mm512_loadu_pd(xt + 8 * f);
        __mmask8 m = _mm512_cmp_pd_mask(col, col, _CMP_UNORD_Q);
        nanm[f] = m;
        any |= m;
    }
    return any;
}

/* The leaf each lane reaches, from its set of remaining leaves: the lowest
 * set bit, found through the exponent of its conversion to double. */
X512_INLINE __m512d leaf_value(__m512i v, const double *leaf)
{
    __m512i low = _mm512_and_si512(v, _mm512_sub_epi64(_mm512_setzero_si512(), v));
    __m512i e = _mm512_srli_epi64(_mm512_castpd_si512(_mm512_cvtepi64_pd(low)), 52);
    __m512i idx = _mm512_sub_epi64(e, _mm512_set1_epi64(1023));
    return _mm512_permutex2var_pd(_mm512_loadu_pd(leaf), idx, _mm512_loadu_pd(leaf + 8));
}

/* No NaN in the block: a test fails when x > t (x <= t trees) or x >= t. */
X512_INLINE void forest_fast(const int NN, const bool LT, const bool ONE,
                             const struct cml__x512_forest *F, const double *xt, double *acc)
{
    const __m512i all = _mm512_set1_epi64((long long)((1u << (NN + 1)) - 1u));
    __m512d a0 = _mm512_loadu_pd(acc);
    for (size_t t = 0; t < F->n_trees; t++) {
        const int32_t *ft = F->feat + t * (size_t)NN;
        const double *th = F->thr + t * (size_t)NN;
        __m512i v = all;
        UNROLL for (int p = 0; p < NN; p++) {
            __m512d col = _mm512_loadu_pd(xt + 8 * (size_t)ft[p]);
            __mmask8 no = LT ? _mm512_cmp_pd_mask(col, _mm512_set1_pd(th[p]), _CMP_GE_OQ) :
                               _mm512_cmp_pd_mask(col, _mm512_set1_pd(th[p]), _CMP_GT_OQ);
            v = _mm512_mask_and_epi64(v, no, v, _mm512_set1_epi64((long long)F->keep[p]));
        }
        __m512d lv = leaf_value(v, F->leaf + 16 * t);
        if (ONE) {
            a0 = _mm512_add_pd(a0, lv);
        } else {
            double *ad = acc + 8 * (size_t)F->dim[t];
            _mm512_storeu_pd(ad, _mm512_add_pd(_mm512_loadu_pd(ad), lv));
        }
    }
    if (ONE)
        _mm512_storeu_pd(acc, a0);
}

/* Some lane has a NaN: a test fails when !(x <= t) (or !(x < t)), NaN
 * included, unless the node sends NaN to its true child. */
static X512 void forest_nan(const struct cml__x512_forest *F, const double *xt,
                            const uint8_t *nanm, double *acc)
{
    const size_t nn = F->n_nodes;
    const __m512i all = _mm512_set1_epi64((long long)((1u << (nn + 1)) - 1u));
    for (size_t t = 0; t < F->n_trees; t++) {
        const int32_t *ft = F->feat + t * nn;
        const double *th = F->thr + t * nn;
        const uint8_t *mi = F->miss + t * nn;
        __m512i v = all;
        for (size_t p = 0; p < nn; p++) {
            __m512d col = _mm512_loadu_pd(xt + 8 * (size_t)ft[p]);
            __m512d tv = _mm512_set1_pd(th[p]);
            __mmask8 no = F->lt ? _mm512_cmp_pd_mask(col, tv, _CMP_NLT_UQ) :
                                  _mm512_cmp_pd_mask(col, tv, _CMP_NLE_UQ);
            if (mi[p])
                no &= (__mmask8)~nanm[ft[p]];
            v = _mm512_mask_and_epi64(v, no, v, _mm512_set1_epi64((long long)F->keep[p]));
        }
        double *ad = acc + 8 * (size_t)F->dim[t];
        _mm512_storeu_pd(ad, _mm512_add_pd(_mm512_loadu_pd(ad), leaf_value(v, F->leaf + 16 * t)));
    }
}

X512 void cml__x512_forest_eval(const struct cml__x512_forest *F, const double *x, size_t ldx,
                                size_t n_rows, const double *base, double *raw, double *scratch)
{
    size_t n_col = (F->n_feat + 7) / 8 * 8;
    double *xt = scratch;
    uint8_t *nanm = (uint8_t *)(scratch + 8 * n_col);
    double *acc = scratch + 8 * n_col + (F->n_feat + 7) / 8 + 1;
    __mmask8 any_nan = columns8(x, ldx, n_rows, F->n_feat, xt, nanm);
    for (size_t d = 0; d < F->n_dims; d++)
        _mm512_storeu_pd(acc + 8 * d, _mm512_set1_pd(base[d]));
    if (any_nan) {
        forest_nan(F, xt, nanm, acc);
    } else {
        bool one = F->n_dims == 1;
        switch ((F->n_nodes * 2 + F->lt) * 2 + one) {
#define FOREST(NN)                                                                                 \
    case ((NN) * 2 + 0) * 2 + 0: forest_fast(NN, false, false, F, xt, acc); break;                 \
    case ((NN) * 2 + 0) * 2 + 1: forest_fast(NN, false, true, F, xt, acc); break;                  \
    case ((NN) * 2 + 1) * 2 + 0: forest_fast(NN, true, false, F, xt, acc); break;                  \
    case ((NN) * 2 + 1) * 2 + 1: forest_fast(NN, true, true, F, xt, acc); break;
            FOREST(1) FOREST(3) FOREST(7) FOREST(15)
#undef FOREST
        default: forest_nan(F, xt, nanm, acc); break;
        }
    }
    for (size_t r = 0; r < n_rows; r++)
        for (size_t d = 0; d < F->n_dims; d++)
            raw[r * F->n_dims + d] = acc[8 * d + r];
}

#else /* !CML_HAVE_X512: the entry points still link, but no caller reaches
       * them: each call site is behind cml__simd_supported(), which is false
       * here, and takes the portable C path instead. */

void cml__x512_exp(const double *x, double *y, size_t n)
{
    (void)x, (void)y, (void)n;
}
void cml__x512_sigmoid(const double *x, double *y, size_t n)
{
    (void)x, (void)y, (void)n;
}
double cml__x512_sum(const double *x, size_t n)
{
    (void)x, (void)n;
    return 0.0;
}
void cml__x512_scale(double *x, size_t n, double s)
{
    (void)x, (void)n, (void)s;
}
void cml__x512_platt(const double *f, const double *a, const double *b, double *y, size_t n,
                     size_t lanes, double lo)
{
    (void)f, (void)a, (void)b, (void)y, (void)n, (void)lanes, (void)lo;
}
void cml__x512_gemm_f64(size_t n_rows, size_t n_out, size_t n_in, const double *x, size_t ldx,
                        const double *w, size_t ldw, const double *b, double *y, size_t ldy)
{
    (void)n_rows, (void)n_out, (void)n_in, (void)x, (void)ldx, (void)w, (void)ldw, (void)b,
        (void)y, (void)ldy;
}
void cml__x512_gemm_f32(size_t n_rows, size_t n_out, size_t n_in, const float *x, size_t ldx,
                        const float *w, size_t ldw, const float *b, float *y, size_t ldy,
                        const struct cml__x512_epi *epi, bool skip_zeros)
{
    (void)n_rows, (void)n_out, (void)n_in, (void)x, (void)ldx, (void)w, (void)ldw, (void)b,
        (void)y, (void)ldy, (void)epi, (void)skip_zeros;
}
void cml__x512_gemm8_f64(size_t n_rows, size_t n_out, size_t n_in, const double *x, size_t ldx,
                         const double *w, const double *b, double *zt, double *xt, int32_t *ks,
                         bool skip_zeros)
{
    (void)n_rows, (void)n_out, (void)n_in, (void)x, (void)ldx, (void)w, (void)b, (void)zt,
        (void)xt, (void)ks, (void)skip_zeros;
}
void cml__x512_ovr8(double *pt, size_t k)
{
    (void)pt, (void)k;
}
void cml__x512_argmax8(const double *pt, size_t k, size_t n_rows, int32_t *best)
{
    (void)pt, (void)k, (void)n_rows, (void)best;
}
void cml__x512_untranspose8(const double *pt, size_t k, size_t n_rows, double *y, size_t ldy,
                            double *tmp)
{
    (void)pt, (void)k, (void)n_rows, (void)y, (void)ldy, (void)tmp;
}
void cml__x512_to_f32(const double *x, float *y, size_t n)
{
    (void)x, (void)y, (void)n;
}
bool cml__x512_act_f32(int act, float alpha, float beta, const float *x, float *y, size_t n)
{
    (void)act, (void)alpha, (void)beta, (void)x, (void)y, (void)n;
    return false;
}
void cml__x512_softmax_f32(const float *x, float *y, size_t n)
{
    (void)x, (void)y, (void)n;
}
void cml__x512_softmax_rows(const float *x, size_t ldx, size_t n_rows, size_t n, float *tmp,
                            double *probs, int32_t *best)
{
    (void)x, (void)ldx, (void)n_rows, (void)n, (void)tmp, (void)probs, (void)best;
}
void cml__x512_svm_kernel(const struct cml__x512_svm *s, const double *x, size_t ldx,
                          size_t n_rows, double *kv)
{
    (void)s, (void)x, (void)ldx, (void)n_rows, (void)kv;
}
double cml__x512_svm_dot(const double *kv, const double *c1, size_t lo1, size_t hi1,
                         const double *c2, size_t lo2, size_t hi2, double rho)
{
    (void)kv, (void)c1, (void)lo1, (void)hi1, (void)c2, (void)lo2, (void)hi2;
    return rho;
}
void cml__x512_couple8(size_t k, const double *r, double *q, double *qp, double *p)
{
    (void)k, (void)r, (void)q, (void)qp, (void)p;
}
size_t cml__x512_forest_scratch(size_t n_feat, size_t n_dims)
{
    return n_feat + n_dims;
}
void cml__x512_forest_eval(const struct cml__x512_forest *F, const double *x, size_t ldx,
                           size_t n_rows, const double *base, double *raw, double *scratch)
{
    (void)F, (void)x, (void)ldx, (void)n_rows, (void)base, (void)raw, (void)scratch;
}

#endif
