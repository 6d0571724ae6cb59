/* avx512_mm.c: tiled matrix products of the "avx512" table.
 *
 * mm(n, w, rows r0..r1, x, n_tok tokens) computes every output exactly as
 * the table's vec_dot does (ref's order; see lanes8_fma in ref/quants.c),
 * but many outputs at once, so each weight block is loaded and unpacked
 * once per tile instead of once per (row, token), and the independent
 * accumulator chains of different outputs fill the pipelines.
 *
 * 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0). A tile is 8 rows x up
 * to 4 tokens. One zmm holds one block of two rows as unsigned bytes:
 * bytes 0-31 row a's 32 quants, bytes 32-63 row b's; the activation block
 * is broadcast to both halves, so one vpdpbusd gives both rows' eight
 * 4-element integer sums (lanes 0-7: row a, lanes 8-15: row b), exactly the
 * lanes of vec_dot's order. Then, per lane, acc = fma(d_w * d_x, isum, acc)
 * with the pair's two scale products spread over the halves by a permute.
 * Signed parts become unsigned without changing the integer sums:
 *   - Q4_0 / Q5_0 keep their nibbles (0..15 / 0..31) and start the vpdpbusd
 *     accumulator at -8 (-16) times the activation's 4-element sums;
 *   - Q8_0 adds 128 to each weight (xor 0x80) and starts at -128 times them.
 * (u8 x s8 products of at most 255 * 127, four per lane: no overflow.)
 * The min terms of Q4_1 / Q5_1 (m_w * s_x) run in their own fma chain, one
 * lane per row. At the end each row's eight lanes are reduced in
 * cai__ref_hsum8's order, eight rows at a time.
 *
 * The weight scales of a row group are converted once per token block
 * (gathered from the eight rows into a small table on the stack); tokens run
 * in blocks of MM_TB so a row group's weights stay in L1 while the block's
 * activations stream from L2; K runs in chunks of MM_KC blocks, with the
 * accumulators parked in a stack buffer between chunks (this changes no
 * arithmetic). No allocation. */
#include "../kernels.h"
#include "../ref/ref.h"
#include "x86.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

#define MM_TT 4   /* tokens per tile */
#define MM_TB 64  /* tokens per block */
#define MM_KC 256 /* 32-element blocks per K chunk */

enum { Q32_Q4_0, Q32_Q4_1, Q32_Q5_0, Q32_Q5_1, Q32_Q8_0 };

AI int q32_bytes(int kind)
{
    return kind == Q32_Q4_0 ? 18 : kind == Q32_Q4_1 ? 20 : kind == Q32_Q5_0 ? 22
         : kind == Q32_Q5_1 ? 24 : 34;
}

/* Type-1 formats: min term from Q8_1's s (activations are Q8_1, else Q8_0). */
AI int q32_min(int kind)
{
    return kind == Q32_Q4_1 || kind == Q32_Q5_1;
}

/* What the weights were shifted by to make them unsigned. */
AI int q32_off(int kind)
{
    return kind == Q32_Q4_0 ? 8 : kind == Q32_Q5_0 ? 16 : kind == Q32_Q8_0 ? 128 : 0;
}

AI uint32_t load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

AI float h2f(const void *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof(h));
    return _cvtsh_ss(h);
}

/* Block quants of two rows (block pointers a, b) as unsigned bytes:
 * bytes 0-31 = row a's elements 0..31, bytes 32-63 = row b's. */
AI __m512i q32_wpair(int kind, const uint8_t *a, const uint8_t *b)
{
    if (kind == Q32_Q8_0) {
        __m512i z = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(a + 2)));
        z = _mm512_inserti64x4(z, _mm256_loadu_si256((const __m256i *)(b + 2)), 1);
        return _mm512_xor_si512(z, _mm512_set1_epi8((char)0x80));
    }
    const int qo = kind == Q32_Q4_0 ? 2 : kind == Q32_Q4_1 ? 4 : kind == Q32_Q5_0 ? 6 : 8;
    /* {a, a, b, b} -> {a, a >> 4, b, b >> 4} & 15 */
    __m512i z = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(a + qo)));
    z = _mm512_mask_broadcast_i32x4(z, 0xff00, _mm_loadu_si128((const __m128i *)(b + qo)));
    z = _mm512_mask_srli_epi16(z, 0xff00ff00u, z, 4);
    z = _mm512_and_si512(z, _mm512_set1_epi8(0x0f));
    if (kind == Q32_Q5_0 || kind == Q32_Q5_1) {
        const int ho = kind == Q32_Q5_0 ? 2 : 4;
        uint64_t bits = (uint64_t)load_u32(a + ho) | (uint64_t)load_u32(b + ho) << 32;
        z = _mm512_mask_add_epi8(z, _cvtu64_mask64(bits), z, _mm512_set1_epi8(0x10));
    }
    return z;
}

/* The weight scales (and mins) of blocks [0, nb) of 8 rows (row pointers
 * wr), as floats: dws[8 * i + j] = d of row j's block i, ms likewise for m.
 * The first 32-bit word of each block (d, then m or quants) is transposed
 * with unpacks: vpgatherdd is far slower on this CPU. */
AI void q32_scales(int kind, const uint8_t *const *wr, int64_t nb, float *dws, float *ms,
                   uintptr_t pf, size_t pf_step)
{
    const int bs = q32_bytes(kind);
    for (int64_t i = 0; i < nb; i++) {
        const size_t o = (size_t)i * bs;
        /* Software prefetch of a later row group (the hardware prefetchers
         * do not follow eight short interleaved streams well). */
        for (size_t b = 0; b < pf_step; b += 64)
            _mm_prefetch((const char *)(pf + (size_t)i * pf_step + b), _MM_HINT_T0);
        __m128i v[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            v[j] = _mm_cvtsi32_si128((int)load_u32(wr[j] + o));
        __m128i a = _mm_unpacklo_epi64(_mm_unpacklo_epi32(v[0], v[1]), _mm_unpacklo_epi32(v[2], v[3]));
        __m128i b = _mm_unpacklo_epi64(_mm_unpacklo_epi32(v[4], v[5]), _mm_unpacklo_epi32(v[6], v[7]));
        __m256i g = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
        _mm256_store_ps(dws + 8 * i, _mm256_cvtph_ps(_mm256_cvtepi32_epi16(g)));
        if (q32_min(kind))
            _mm256_store_ps(ms + 8 * i,
                            _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(g, 16))));
    }
}

/* Eight rows' sums from four pair accumulators (pair p: lanes 0-7 row 2p,
 * 8-15 row 2p+1), each row reduced in cai__ref_hsum8's order:
 * ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)). Returns rows 0..7 in order. */
AI __m256 q32_reduce8(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    /* 128-bit lane k of b: row k's (a_j + a_{j+4}), j = 0..3 (rows 4..7 in b2) */
    __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 b2 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 1, 3, 1)));
    /* lane k: {row k: r0+r2, r1+r3, row 4+k: r0+r2, r1+r3} */
    __m512 c = _mm512_add_ps(_mm512_shuffle_ps(b, b2, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(b, b2, _MM_SHUFFLE(3, 2, 3, 2)));
    /* lane k: {row k, row 4+k, ...} */
    __m512 f = _mm512_add_ps(_mm512_shuffle_ps(c, c, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(c, c, _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps256(_mm512_permutexvar_ps(order, f));
}

/* Accumulators of one tile, parked between K chunks. */
struct q32_spill {
    __m512 acc[4][MM_TT];
    __m256 sm[MM_TT];
};

/* One tile: 8 rows (block pointers wr[j] at the chunk's first block) x TT
 * tokens (xr[t] likewise), over nb blocks. first: start from zero, else from
 * *sp; last: reduce and store rows [0, nr) to yt[t][0..nr), else park in *sp. */
AI void q32_tile(int kind, int TT, const uint8_t *const *wr, const uint8_t *const *xr,
                 int64_t nb, const float *dws, const float *ms, int first, int last,
                 struct q32_spill *sp, float *const *yt, int nr)
{
    const int bs = q32_bytes(kind), mn = q32_min(kind), off = q32_off(kind);
    const int xbs = mn ? 36 : 34, xqo = mn ? 4 : 2;
    __m512 acc[4][MM_TT];
    __m256 sm[MM_TT];
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++) {
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++)
            acc[p][t] = first ? _mm512_setzero_ps() : sp->acc[p][t];
        sm[t] = first || !mn ? _mm256_setzero_ps() : sp->sm[t];
    }
    const __m512i pidx0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i two = _mm512_set1_epi32(2);
    for (int64_t i = 0; i < nb; i++) {
        const size_t wo = (size_t)i * bs;
        __m512i wz[4];
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++)
            wz[p] = q32_wpair(kind, wr[2 * p] + wo, wr[2 * p + 1] + wo);
        const __m512 dw = _mm512_zextps256_ps512(_mm256_load_ps(dws + 8 * i));
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            const uint8_t *xb = xr[t] + (size_t)i * xbs;
            const __m512i xv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(xb + xqo)));
            __m512i init = _mm512_setzero_si512();
            if (off)
                init = _mm512_sub_epi32(init, _mm512_dpbusd_epi32(init, _mm512_set1_epi8((char)off), xv));
            const __m512 dd8 = _mm512_mul_ps(dw, _mm512_set1_ps(h2f(xb)));
            __m512i pidx = pidx0;
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                __m512 dd = _mm512_permutexvar_ps(pidx, dd8);
                __m512i is = _mm512_dpbusd_epi32(init, wz[p], xv);
                acc[p][t] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(is), acc[p][t]);
                pidx = _mm512_add_epi32(pidx, two);
            }
            if (mn)
                sm[t] = _mm256_fmadd_ps(_mm256_load_ps(ms + 8 * i), _mm256_set1_ps(h2f(xb + 2)),
                                        sm[t]);
        }
    }
    if (!last) {
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++)
                sp->acc[p][t] = acc[p][t];
            sp->sm[t] = sm[t];
        }
        return;
    }
    const __mmask8 keep = (__mmask8)((1u << nr) - 1);
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++) {
        __m256 r = q32_reduce8(acc[0][t], acc[1][t], acc[2][t], acc[3][t]);
        if (mn)
            r = _mm256_add_ps(r, sm[t]);
        _mm256_mask_storeu_ps(yt[t], keep, r);
    }
}

AI void q32_mm(int kind, int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1,
               const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride)
{
    const int64_t nb = n / CAI_QK;
    const int bs = q32_bytes(kind);
    _Alignas(64) float dws[MM_KC * 8];
    _Alignas(64) float ms[MM_KC * 8];
    struct q32_spill spill[MM_TB / MM_TT];
    for (int tb = 0; tb < n_tok; tb += MM_TB) {
        const int tb_n = n_tok - tb < MM_TB ? n_tok - tb : MM_TB;
        for (int64_t rg = r0; rg < r1; rg += 8) {
            const int nr = r1 - rg < 8 ? (int)(r1 - rg) : 8;
            const uint8_t *w0 = (const uint8_t *)w + (size_t)rg * w_stride;
            for (int64_t k0 = 0; k0 < nb; k0 += MM_KC) {
                const int64_t kn = nb - k0 < MM_KC ? nb - k0 : MM_KC;
                const int first = k0 == 0, last = k0 + kn == nb;
                const uint8_t *wr[8];
                for (int j = 0; j < 8; j++)
                    wr[j] = w0 + (size_t)(j < nr ? j : nr - 1) * w_stride + (size_t)k0 * bs;
                /* prefetch: the rows two groups ahead, 1/kn of them per block */
                const uintptr_t pf = (uintptr_t)w0 + 16 * w_stride + (size_t)k0 * bs;
                q32_scales(kind, wr, kn, dws, ms, pf, (size_t)8 * bs);
                const int xbs = q32_min(kind) ? 36 : 34;
                for (int t0 = 0; t0 < tb_n; t0 += MM_TT) {
                    const int tt = tb_n - t0 < MM_TT ? tb_n - t0 : MM_TT;
                    const uint8_t *xr[MM_TT];
                    float *yt[MM_TT];
                    for (int t = 0; t < MM_TT; t++) {
                        int tc = tb + t0 + (t < tt ? t : tt - 1);
                        xr[t] = (const uint8_t *)x + (size_t)tc * x_stride + (size_t)k0 * xbs;
                        yt[t] = y + (size_t)tc * y_stride + (size_t)rg;
                    }
                    struct q32_spill *sp = &spill[t0 / MM_TT];
                    switch (tt) {
                    case 4:
                        q32_tile(kind, 4, wr, xr, kn, dws, ms, first, last, sp, yt, nr);
                        break;
                    case 3:
                        q32_tile(kind, 3, wr, xr, kn, dws, ms, first, last, sp, yt, nr);
                        break;
                    case 2:
                        q32_tile(kind, 2, wr, xr, kn, dws, ms, first, last, sp, yt, nr);
                        break;
                    default:
                        q32_tile(kind, 1, wr, xr, kn, dws, ms, first, last, sp, yt, nr);
                        break;
                    }
                }
            }
        }
    }
}

#define Q32_MM(name, kind)                                                                         \
    void name(int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1, const void *x,    \
              size_t x_stride, int n_tok, float *y, size_t y_stride)                               \
    {                                                                                              \
        q32_mm(kind, n, w, w_stride, r0, r1, x, x_stride, n_tok, y, y_stride);                     \
    }

Q32_MM(cai__avx512_q4_0_mm, Q32_Q4_0)
Q32_MM(cai__avx512_q4_1_mm, Q32_Q4_1)
Q32_MM(cai__avx512_q5_0_mm, Q32_Q5_0)
Q32_MM(cai__avx512_q5_1_mm, Q32_Q5_1)
Q32_MM(cai__avx512_q8_0_mm, Q32_Q8_0)

#endif /* __x86_64__ */
