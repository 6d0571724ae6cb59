/* avx512_mm.c: tiled matrix products of the "avx512" table.
 *
 * mm(n, w, rows r0..r1, x, n_tok tokens) computes every output exactly as
 * the table's vec_dot does (ref's orders: lanes8_fma for Q4_1 / Q5_1,
 * chain_fma for Q4_0 / Q5_0 / Q8_0; see ref/quants.c), many outputs at once,
 * so weights are unpacked once per tile and the independent accumulator
 * chains of different outputs fill the pipelines. Integer sums are exact, so
 * only the float operations per output need to keep their order, and they
 * do: each output has its own lanes.
 *
 * Weights become unsigned bytes without changing the integer sums: Q4_x and
 * Q5_x keep their 4/5-bit quants (Q4_0 / Q5_0's -8 / -16 offsets become
 * -8 / -16 times the activation's sums), Q8_0 adds 128 (xor 0x80, offset
 * -128). vpdpbusd multiplies u8 by s8 (at most 255 * 127, four per lane).
 *
 * Two engines:
 *
 * 1. Few tokens (decode), "pair" layout: one zmm holds one block of two
 *    rows (bytes 0-31 row a, 32-63 row b) and the activation block is
 *    broadcast to both halves, so one vpdpbusd gives both rows' eight
 *    4-element sums (lanes 0-7 row a, 8-15 row b). Tiles of 8 rows x up to 4
 *    tokens. Q4_1 / Q5_1 then do, per lane, acc = fma(d_w * d_x, isum, acc)
 *    (the pair's two scale products spread over the halves by a permute) and
 *    reduce each row's lanes in cai__ref_hsum8's order at the end. Q4_0 /
 *    Q5_0 / Q8_0 add each row's eight lanes (a transpose-and-add tree over
 *    four pairs) and do one fma per row and block. The offsets are folded
 *    into the vpdpbusd accumulator's start value.
 *
 * 2. Many tokens (prefill, when the caller gives scratch memory), "R16"
 *    layout: each group of 16 rows is repacked once per token block into 8
 *    zmm per block, zmm j lane r holding row r's elements 4j..4j+3 (a 16 x 8
 *    dword transpose), with the 16 rows' scales as floats beside. Then
 *    vpdpbusd against one broadcast activation dword computes 16 rows at
 *    once: lane r of the result is row r's sum over 4 elements, exactly the
 *    lane j of lanes8_fma's order, so Q4_1 / Q5_1 keep one fma chain per lane
 *    j (8 per 16 rows); Q4_0 / Q5_0 / Q8_0 chain the 8 vpdpbusd into the
 *    block's whole sum and do one fma per 16 rows. The activation scales (and
 *    offset sums, min sums) are converted once per token block into a table.
 *
 * K runs in chunks, with accumulators parked in memory between chunks (no
 * arithmetic changes). No allocation: small buffers on the stack, big ones
 * in the caller's scratch. Both engines prefetch the next row group in
 * software: the hardware prefetchers do not follow 8 or 16 short interleaved
 * row streams. */
#include "../kernels.h"
#include "../ref/ref.h"
#include "x86.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

enum { Q32_Q4_0, Q32_Q4_1, Q32_Q5_0, Q32_Q5_1, Q32_Q8_0 };

AI int q32_bytes(int kind)
{
    return kind == Q32_Q4_0 ? 18 : kind == Q32_Q4_1 ? 20 : kind == Q32_Q5_0 ? 22
         : kind == Q32_Q5_1 ? 24 : 34;
}

/* Type-1 formats: lanes8 order, min term from Q8_1's s (activations are
 * Q8_1, 36-byte blocks); the others: chain order, Q8_0 activations (34). */
AI int q32_min(int kind)
{
    return kind == Q32_Q4_1 || kind == Q32_Q5_1;
}

/* What the weights were shifted by to make them unsigned. */
AI int q32_off(int kind)
{
    return kind == Q32_Q4_0 ? 8 : kind == Q32_Q5_0 ? 16 : kind == Q32_Q8_0 ? 128 : 0;
}

AI int q32_xbytes(int kind)
{
    return q32_min(kind) ? 36 : 34;
}

AI int q32_xqs(int kind)
{
    return q32_min(kind) ? 4 : 2;
}

AI uint32_t load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

AI int32_t load_i32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

AI float h2f(const void *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof(h));
    return _cvtsh_ss(h);
}

/* ---- the pair engine (few tokens) ---------------------------------------- */

#define P_TT 4   /* tokens per tile */
#define P_TB 64  /* tokens per block */
#define P_KC 256 /* blocks per K chunk */
#define P_PF_AHEAD 256 /* software prefetch distance in each striped row stream */

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

/* The first 32-bit words of block o of 8 rows, transposed into one ymm
 * (vpgatherdd is far slower on this CPU than loads and unpacks). */
AI __m256i q32_words8(const uint8_t *const *wr, size_t o)
{
    __m128i v[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        v[j] = _mm_cvtsi32_si128((int)load_u32(wr[j] + o));
    __m128i a = _mm_unpacklo_epi64(_mm_unpacklo_epi32(v[0], v[1]), _mm_unpacklo_epi32(v[2], v[3]));
    __m128i b = _mm_unpacklo_epi64(_mm_unpacklo_epi32(v[4], v[5]), _mm_unpacklo_epi32(v[6], v[7]));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

/* The weight scales (and mins) of blocks [0, nb) of 8 rows (row pointers
 * wr), as floats: dws[8 * i + j] = d of row j's block i, ms likewise for m.
 * Also prefetches a later row group: pf_step bytes from pf + i * pf_step
 * per block (the hardware prefetchers do not follow eight short interleaved
 * streams well). */
AI void q32_scales8(int kind, const uint8_t *const *wr, int64_t nb, float *dws, float *ms,
                    uintptr_t pf, size_t pf_step)
{
    const int bs = q32_bytes(kind);
    for (int64_t i = 0; i < nb; i++) {
        for (size_t b = 0; b < pf_step; b += 64)
            _mm_prefetch((const char *)(pf + (size_t)i * pf_step + b), _MM_HINT_T0);
        __m256i g = q32_words8(wr, (size_t)i * bs);
        _mm256_store_ps(dws + 8 * i, _mm256_cvtph_ps(_mm256_cvtepi32_epi16(g)));
        if (q32_min(kind))
            _mm256_store_ps(ms + 8 * i,
                            _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(g, 16))));
    }
}

/* Eight rows' sums from four pair accumulators (pair p: lanes 0-7 row 2p,
 * 8-15 row 2p+1), each row reduced in cai__ref_hsum8's order:
 * ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)). Returns rows 0..7 in order. */
AI __m256 pair_hsum8(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
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

/* Eight rows' whole-block integer sums from four pair vpdpbusd results
 * (exact: any order). Returns rows 0..7 in order. */
AI __m256i pair_isum8(__m512i z0, __m512i z1, __m512i z2, __m512i z3)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    /* 4 lanes per row: rows 0-3 in a, 4-7 in b */
    __m512i a = _mm512_add_epi32(_mm512_permutex2var_epi32(z0, ev, z1),
                                 _mm512_permutex2var_epi32(z0, od, z1));
    __m512i b = _mm512_add_epi32(_mm512_permutex2var_epi32(z2, ev, z3),
                                 _mm512_permutex2var_epi32(z2, od, z3));
    /* 2 lanes per row */
    __m512i c = _mm512_add_epi32(_mm512_permutex2var_epi32(a, ev, b),
                                 _mm512_permutex2var_epi32(a, od, b));
    /* 1: the even 32-bit lanes */
    c = _mm512_add_epi32(c, _mm512_srli_epi64(c, 32));
    return _mm512_cvtepi64_epi32(c);
}

/* Accumulators of one pair tile, parked between K chunks. */
struct pair_spill {
    __m512 acc[4][P_TT];
    __m256 sm[P_TT];
};

/* One pair tile: 8 rows (block pointers wr[j] at the chunk's first block) x
 * TT tokens (xr[t] likewise), over nb blocks. first: start from zero, else
 * from *sp; last: finish and store rows [0, nr) to yt[t][0..nr), else park
 * in *sp. The chain kinds keep one ymm accumulator per token (8 rows) in
 * acc[0][t]'s low half. */
AI void pair_tile(int kind, int TT, const uint8_t *const *wr, const uint8_t *const *xr,
                  int64_t nb, const float *dws, const float *ms, int first, int last,
                  struct pair_spill *sp, float *const *yt, int nr, int inl, uintptr_t pf,
                  size_t pf_step, const int64_t *rows)
{
    const int bs = q32_bytes(kind), mn = q32_min(kind), off = q32_off(kind);
    const int xbs = q32_xbytes(kind), xqo = q32_xqs(kind);
    __m512 acc[4][P_TT];
    __m256 sm[P_TT];
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
        __m256 dw8, m8 = _mm256_setzero_ps();
        if (inl) { /* one token group: scales here, in the streaming pass */
            if (rows) { /* striped rows: each slot streams on, prefetch ahead in it */
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    _mm_prefetch((const char *)(wr[j] + wo + P_PF_AHEAD), _MM_HINT_T0);
            }
            for (size_t b = 0; b < pf_step; b += 64)
                _mm_prefetch((const char *)(pf + (size_t)i * pf_step + b), _MM_HINT_T0);
            __m256i g = q32_words8(wr, wo);
            dw8 = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(g));
            if (mn)
                m8 = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(g, 16)));
        } else {
            dw8 = _mm256_load_ps(dws + 8 * i);
            if (mn)
                m8 = _mm256_load_ps(ms + 8 * i);
        }
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            const uint8_t *xb = xr[t] + (size_t)i * xbs;
            const __m512i xv =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(xb + xqo)));
            if (mn) {
                const __m512 dd8 = _mm512_mul_ps(_mm512_zextps256_ps512(dw8),
                                                 _mm512_set1_ps(h2f(xb)));
                __m512i pidx = pidx0;
#pragma GCC unroll 4
                for (int p = 0; p < 4; p++) {
                    __m512 dd = _mm512_permutexvar_ps(pidx, dd8);
                    __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wz[p], xv);
                    acc[p][t] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(is), acc[p][t]);
                    pidx = _mm512_add_epi32(pidx, two);
                }
                sm[t] = _mm256_fmadd_ps(m8, _mm256_set1_ps(h2f(xb + 2)), sm[t]);
            } else {
                /* start at -off * (the activation's 4-element sums) */
                __m512i init = _mm512_setzero_si512();
                init = _mm512_sub_epi32(
                    init, _mm512_dpbusd_epi32(init, _mm512_set1_epi8((char)off), xv));
                __m512i z[4];
#pragma GCC unroll 4
                for (int p = 0; p < 4; p++)
                    z[p] = _mm512_dpbusd_epi32(init, wz[p], xv);
                __m256 is = _mm256_cvtepi32_ps(pair_isum8(z[0], z[1], z[2], z[3]));
                __m256 dd = _mm256_mul_ps(dw8, _mm256_set1_ps(h2f(xb)));
                __m256 a = _mm512_castps512_ps256(acc[0][t]);
                acc[0][t] = _mm512_castps256_ps512(_mm256_fmadd_ps(dd, is, a));
            }
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
        __m256 r;
        if (mn)
            r = _mm256_add_ps(pair_hsum8(acc[0][t], acc[1][t], acc[2][t], acc[3][t]), sm[t]);
        else
            r = _mm512_castps512_ps256(acc[0][t]);
        if (rows) {
            float v[8];
            _mm256_storeu_ps(v, r);
            for (int j = 0; j < nr; j++)
                yt[t][rows[j]] = v[j];
        } else {
            _mm256_mask_storeu_ps(yt[t], keep, r);
        }
    }
}

/* Few tokens (one tile of them: decode): each tile takes 8 rows striped
 * over the range, rows r0 + j * S + g (j = 0..7) for g = 0..S-1, so each
 * of the tile's 8 load streams walks a contiguous run of rows from start to
 * end, as a plain row-by-row loop does: the hardware prefetchers follow
 * that, not 8 short interleaved rows. */
AI void pair_mm_striped(int kind, int64_t n, const void *w, size_t w_stride, int64_t r0,
                        int64_t r1, const void *x, size_t x_stride, int n_tok, float *y,
                        size_t y_stride)
{
    const int64_t nb = n / CAI_QK, S = (r1 - r0 + 7) / 8;
    const int bs = q32_bytes(kind), xbs = q32_xbytes(kind);
    struct pair_spill spill;
    for (int64_t g = 0; g < S; g++) {
        int64_t rows[8];
        int nr = 0;
        for (int j = 0; j < 8; j++)
            if (r0 + j * S + g < r1)
                rows[nr++] = r0 + j * S + g;
        for (int64_t k0 = 0; k0 < nb; k0 += P_KC) {
            const int64_t kn = nb - k0 < P_KC ? nb - k0 : P_KC;
            const int first = k0 == 0, last = k0 + kn == nb;
            const uint8_t *wr[8];
            for (int j = 0; j < 8; j++)
                wr[j] = (const uint8_t *)w + (size_t)rows[j < nr ? j : nr - 1] * w_stride +
                        (size_t)k0 * bs;
            const uint8_t *xr[P_TT];
            float *yt[P_TT];
            for (int t = 0; t < P_TT; t++) {
                int tc = t < n_tok ? t : n_tok - 1;
                xr[t] = (const uint8_t *)x + (size_t)tc * x_stride + (size_t)k0 * xbs;
                yt[t] = y + (size_t)tc * y_stride;
            }
            switch (n_tok) {
            case 4:
                pair_tile(kind, 4, wr, xr, kn, NULL, NULL, first, last, &spill, yt, nr, 1, 0, 0,
                          rows);
                break;
            case 3:
                pair_tile(kind, 3, wr, xr, kn, NULL, NULL, first, last, &spill, yt, nr, 1, 0, 0,
                          rows);
                break;
            case 2:
                pair_tile(kind, 2, wr, xr, kn, NULL, NULL, first, last, &spill, yt, nr, 1, 0, 0,
                          rows);
                break;
            default:
                pair_tile(kind, 1, wr, xr, kn, NULL, NULL, first, last, &spill, yt, nr, 1, 0, 0,
                          rows);
                break;
            }
        }
    }
}

AI void pair_mm(int kind, int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1,
                const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride)
{
    if (n_tok <= P_TT) {
        pair_mm_striped(kind, n, w, w_stride, r0, r1, x, x_stride, n_tok, y, y_stride);
        return;
    }
    const int64_t nb = n / CAI_QK;
    const int bs = q32_bytes(kind), xbs = q32_xbytes(kind);
    _Alignas(64) float dws[P_KC * 8];
    _Alignas(64) float ms[P_KC * 8];
    struct pair_spill spill[P_TB / P_TT];
    for (int tb = 0; tb < n_tok; tb += P_TB) {
        const int tb_n = n_tok - tb < P_TB ? n_tok - tb : P_TB;
        for (int64_t rg = r0; rg < r1; rg += 8) {
            const int nr = r1 - rg < 8 ? (int)(r1 - rg) : 8;
            const uint8_t *w0 = (const uint8_t *)w + (size_t)rg * w_stride;
            for (int64_t k0 = 0; k0 < nb; k0 += P_KC) {
                const int64_t kn = nb - k0 < P_KC ? nb - k0 : P_KC;
                const int first = k0 == 0, last = k0 + kn == nb;
                const uint8_t *wr[8];
                for (int j = 0; j < 8; j++)
                    wr[j] = w0 + (size_t)(j < nr ? j : nr - 1) * w_stride + (size_t)k0 * bs;
                /* prefetch: the rows two groups ahead, 1/kn of them per block */
                const uintptr_t pf = (uintptr_t)w0 + 16 * w_stride + (size_t)k0 * bs;
                const size_t pf_step = (size_t)8 * bs;
                const int inl = tb_n <= P_TT;
                if (!inl)
                    q32_scales8(kind, wr, kn, dws, ms, pf, pf_step);
                for (int t0 = 0; t0 < tb_n; t0 += P_TT) {
                    const int tt = tb_n - t0 < P_TT ? tb_n - t0 : P_TT;
                    const uint8_t *xr[P_TT];
                    float *yt[P_TT];
                    for (int t = 0; t < P_TT; t++) {
                        int tc = tb + t0 + (t < tt ? t : tt - 1);
                        xr[t] = (const uint8_t *)x + (size_t)tc * x_stride + (size_t)k0 * xbs;
                        yt[t] = y + (size_t)tc * y_stride + (size_t)rg;
                    }
                    struct pair_spill *sp = &spill[t0 / P_TT];
                    switch (tt) {
                    case 4:
                        pair_tile(kind, 4, wr, xr, kn, dws, ms, first, last, sp, yt, nr, inl, pf,
                                  pf_step, NULL);
                        break;
                    case 3:
                        pair_tile(kind, 3, wr, xr, kn, dws, ms, first, last, sp, yt, nr, inl, pf,
                                  pf_step, NULL);
                        break;
                    case 2:
                        pair_tile(kind, 2, wr, xr, kn, dws, ms, first, last, sp, yt, nr, inl, pf,
                                  pf_step, NULL);
                        break;
                    default:
                        pair_tile(kind, 1, wr, xr, kn, dws, ms, first, last, sp, yt, nr, inl, pf,
                                  pf_step, NULL);
                        break;
                    }
                }
            }
        }
    }
}

/* ---- the R16 engine (many tokens) ---------------------------------------- */

#define R_MIN_TOK 4        /* fewer tokens: the pair engine */
#define R_TB      96       /* tokens per block (at most) */
#define R_TB_MIN  48
#define R_TT_CH   8        /* tokens per tile, chain kinds */
#define R_TT_L8   2        /* tokens per tile, lanes8 kinds */
#define R_REPACK  (640)    /* scratch bytes per block of a 16-row group */

/* One block of one row as 32 unsigned bytes in element order. */
AI __m256i r16_row(int kind, const uint8_t *b)
{
    if (kind == Q32_Q8_0)
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + 2)),
                                _mm256_set1_epi8((char)0x80));
    const int qo = kind == Q32_Q4_0 ? 2 : kind == Q32_Q4_1 ? 4 : kind == Q32_Q5_0 ? 6 : 8;
    __m128i q = _mm_loadu_si128((const __m128i *)(b + qo));
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q),
                                 _mm256_set1_epi8(0x0f));
    if (kind == Q32_Q5_0 || kind == Q32_Q5_1) {
        const int ho = kind == Q32_Q5_0 ? 2 : 4;
        v = _mm256_mask_add_epi8(v, _cvtu32_mask32(load_u32(b + ho)), v, _mm256_set1_epi8(0x10));
    }
    return v;
}

/* Repacks blocks [0, nb) of 16 rows (block pointers wr[r] at the first
 * block) into dst: per block 8 x 64 bytes (zmm j: lane r = row r's bytes
 * 4j..4j+3), then 16 float scales, then (type-1) 16 float mins. */
/* 16 rows x 8 dwords -> 8 x 16 dwords: z[k] holds row k (bytes 0-31) and
 * row k + 8 (bytes 32-63); dst gets 8 zmm, zmm j lane r = row r's dword j. */
AI void r16_transpose(const __m512i *z, uint8_t *dst)
{
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    __m512i t[8], s[8];
    /* 8 x 8 dword transposes in both 256-bit halves at once */
#pragma GCC unroll 4
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm512_unpacklo_epi32(z[k], z[k + 1]);
        t[k + 1] = _mm512_unpackhi_epi32(z[k], z[k + 1]);
    }
#pragma GCC unroll 2
    for (int k = 0; k < 8; k += 4) {
        s[k] = _mm512_unpacklo_epi64(t[k], t[k + 2]);
        s[k + 1] = _mm512_unpackhi_epi64(t[k], t[k + 2]);
        s[k + 2] = _mm512_unpacklo_epi64(t[k + 1], t[k + 3]);
        s[k + 3] = _mm512_unpackhi_epi64(t[k + 1], t[k + 3]);
    }
    /* s[c] (rows 0-3) and s[4 + c] (rows 4-7): 128-bit lane 0 = dword c,
     * lane 1 = dword c + 4 (lanes 2, 3: rows 8-15) */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        _mm512_store_si512((void *)(dst + 64 * c), _mm512_permutex2var_epi64(s[c], lo, s[4 + c]));
        _mm512_store_si512((void *)(dst + 64 * (c + 4)),
                           _mm512_permutex2var_epi64(s[c], hi, s[4 + c]));
    }
}

AI void r16_repack(int kind, const uint8_t *const *wr, int64_t nb, uint8_t *dst, uintptr_t pf,
                   size_t pf_step)
{
    const int bs = q32_bytes(kind);
    for (int64_t i = 0; i < nb; i++, dst += R_REPACK) {
        const size_t o = (size_t)i * bs;
        /* the next group's rows, linearly (as in q32_scales8) */
        for (size_t b = 0; b < pf_step; b += 64)
            _mm_prefetch((const char *)(pf + (size_t)i * pf_step + b), _MM_HINT_T0);
        __m512i z[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            z[k] = _mm512_inserti64x4(_mm512_castsi256_si512(r16_row(kind, wr[k] + o)),
                                      r16_row(kind, wr[k + 8] + o), 1);
        r16_transpose(z, dst);
        __m256i g0 = q32_words8(wr, o), g1 = q32_words8(wr + 8, o);
        __m512i g = _mm512_inserti64x4(_mm512_castsi256_si512(g0), g1, 1);
        _mm512_store_ps(dst + 512, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
        if (q32_min(kind))
            _mm512_store_ps(dst + 576, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16))));
    }
}

/* Per (token, block) of a token block: the activation scale as a float and
 * a second word: -off * sum(q) (chain kinds with an offset) or s as a float
 * (type-1). tab[2 * (t * nb + i) + 0 / 1]. */
AI void r16_tokens(int kind, const uint8_t *x, size_t x_stride, int tn, int64_t nb, uint32_t *tab)
{
    const int xbs = q32_xbytes(kind), xqo = q32_xqs(kind), off = q32_off(kind);
    for (int t = 0; t < tn; t++) {
        const uint8_t *xr = x + (size_t)t * x_stride;
        for (int64_t i = 0; i < nb; i++, tab += 2) {
            const uint8_t *xb = xr + (size_t)i * xbs;
            float d = h2f(xb);
            memcpy(&tab[0], &d, sizeof(d));
            if (q32_min(kind)) {
                float sx = h2f(xb + 2);
                memcpy(&tab[1], &sx, sizeof(sx));
            } else {
                __m256i q = _mm256_loadu_si256((const __m256i *)(xb + xqo));
                __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
                tab[1] = (uint32_t)(-off * _mm_cvtsi128_si32(h));
            }
        }
    }
}

/* Accumulators of one R16 tile, parked between K chunks: chain kinds use
 * v[t], lanes8 kinds v[9 t + j] (j < 8) and v[9 t + 8] (min terms). */
struct r16_spill {
    __m512 v[9 * R_TT_L8 > R_TT_CH ? 9 * R_TT_L8 : R_TT_CH];
};

/* One R16 tile: 16 repacked rows (qb at the chunk's first block) x TT
 * tokens (xr[t]: the token's activation at the chunk's first block, tab[t]:
 * its table entries there), over nb blocks. */
AI void r16_tile(int kind, int TT, const uint8_t *qb, const uint8_t *const *xr,
                 const uint32_t *const *tab, int64_t nb, int first, int last,
                 struct r16_spill *sp, float *const *yt, int nr)
{
    const int xbs = q32_xbytes(kind), xqo = q32_xqs(kind);
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    if (!q32_min(kind)) {
        __m512 acc[R_TT_CH];
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
            acc[t] = first ? _mm512_setzero_ps() : sp->v[t];
        for (int64_t i = 0; i < nb; i++, qb += R_REPACK) {
            __m512i wq[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                wq[j] = _mm512_load_si512((const void *)(qb + 64 * j));
            const __m512 dw = _mm512_load_ps(qb + 512);
#pragma GCC unroll 8
            for (int t = 0; t < TT; t++) {
                const uint8_t *xq = xr[t] + (size_t)i * xbs + xqo;
                const uint32_t *e = tab[t] + 2 * i;
                /* two half chains (exact integer sums: any split gives
                 * the same total) halve the vpdpbusd latency chain */
                __m512i is = _mm512_set1_epi32((int)e[1]), is1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int j = 0; j < 8; j += 2) {
                    is = _mm512_dpbusd_epi32(is, wq[j], _mm512_set1_epi32(load_i32(xq + 4 * j)));
                    is1 = _mm512_dpbusd_epi32(is1, wq[j + 1],
                                              _mm512_set1_epi32(load_i32(xq + 4 * j + 4)));
                }
                is = _mm512_add_epi32(is, is1);
                float dx;
                memcpy(&dx, &e[0], sizeof(dx));
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(dx)),
                                         _mm512_cvtepi32_ps(is), acc[t]);
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
            if (last)
                _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
            else
                sp->v[t] = acc[t];
        }
        return;
    }
    __m512 acc[R_TT_L8][8], sm[R_TT_L8];
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            acc[t][j] = first ? _mm512_setzero_ps() : sp->v[9 * t + j];
        sm[t] = first ? _mm512_setzero_ps() : sp->v[9 * t + 8];
    }
    for (int64_t i = 0; i < nb; i++, qb += R_REPACK) {
        __m512i wq[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            wq[j] = _mm512_load_si512((const void *)(qb + 64 * j));
        const __m512 dw = _mm512_load_ps(qb + 512), mw = _mm512_load_ps(qb + 576);
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) {
            const uint8_t *xq = xr[t] + (size_t)i * xbs + xqo;
            const uint32_t *e = tab[t] + 2 * i;
            float dx, sx;
            memcpy(&dx, &e[0], sizeof(dx));
            memcpy(&sx, &e[1], sizeof(sx));
            sm[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(sx), sm[t]);
            const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(dx));
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[j],
                                                 _mm512_set1_epi32(load_i32(xq + 4 * j)));
                acc[t][j] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(is), acc[t][j]);
            }
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++) {
        if (!last) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                sp->v[9 * t + j] = acc[t][j];
            sp->v[9 * t + 8] = sm[t];
            continue;
        }
        /* cai__ref_hsum8's order, lane by lane, then the min terms */
        __m512 r = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][4]), _mm512_add_ps(acc[t][2], acc[t][6])),
            _mm512_add_ps(_mm512_add_ps(acc[t][1], acc[t][5]), _mm512_add_ps(acc[t][3], acc[t][7])));
        _mm512_mask_storeu_ps(yt[t], keep, _mm512_add_ps(r, sm[t]));
    }
}

/* The R16 driver. scratch layout: token table, spills, one group's repack. */
AI void r16_mm(int kind, int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1,
               const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride,
               uint8_t *scratch)
{
    const int64_t nb = n / CAI_QK;
    const int bs = q32_bytes(kind), xbs = q32_xbytes(kind);
    const int TT = q32_min(kind) ? R_TT_L8 : R_TT_CH;
    /* Budget: a third of the scratch for the token table, the rest for the
     * spills and one repacked K chunk. */
    const size_t tab_bytes = CAI__MM_SCRATCH_BYTES / 3 / 64 * 64;
    int tb_max = (int)(tab_bytes / ((size_t)nb * 8));
    /* up to R_TB tokens share a repack while their activations stay well
     * inside L2, at least R_TB_MIN */
    int tb_l2 = (int)(((size_t)256 * 1024) / ((size_t)nb * (size_t)xbs));
    tb_l2 = tb_l2 < R_TB_MIN ? R_TB_MIN : tb_l2;
    tb_max = tb_max > tb_l2 ? tb_l2 : tb_max;
    tb_max = tb_max > R_TB ? R_TB : tb_max;
    tb_max -= tb_max % TT;
    const size_t spill_bytes = (size_t)(R_TB / R_TT_L8 + 1) * sizeof(struct r16_spill);
    const int64_t kc = (int64_t)((CAI__MM_SCRATCH_BYTES - tab_bytes - spill_bytes) / R_REPACK);
    uint32_t *tab = (uint32_t *)scratch;
    struct r16_spill *spill = (struct r16_spill *)(scratch + tab_bytes);
    uint8_t *qbuf = scratch + tab_bytes + spill_bytes;
    for (int tb = 0; tb < n_tok; tb += tb_max) {
        const int tb_n = n_tok - tb < tb_max ? n_tok - tb : tb_max;
        r16_tokens(kind, (const uint8_t *)x + (size_t)tb * x_stride, x_stride, tb_n, nb, tab);
        for (int64_t rg = r0; rg < r1; rg += 16) {
            const int nr = r1 - rg < 16 ? (int)(r1 - rg) : 16;
            const uint8_t *w0 = (const uint8_t *)w + (size_t)rg * w_stride;
            for (int64_t k0 = 0; k0 < nb; k0 += kc) {
                const int64_t kn = nb - k0 < kc ? nb - k0 : kc;
                const int first = k0 == 0, last = k0 + kn == nb;
                const uint8_t *wr[16];
                for (int j = 0; j < 16; j++)
                    wr[j] = w0 + (size_t)(j < nr ? j : nr - 1) * w_stride + (size_t)k0 * bs;
                r16_repack(kind, wr, kn, qbuf,
                           (uintptr_t)w0 + 16 * w_stride + (size_t)k0 * bs, (size_t)16 * bs);
                if (last && rg + 16 < r1) /* the next group's output lines, for writing */
                    for (int t = 0; t < tb_n; t++)
                        _mm_prefetch((const char *)(y + (size_t)(tb + t) * y_stride +
                                                    (size_t)rg + 16),
                                     _MM_HINT_ET0);
                for (int t0 = 0; t0 < tb_n; t0 += TT) {
                    const int tt = tb_n - t0 < TT ? tb_n - t0 : TT;
                    const uint8_t *xr[R_TT_CH];
                    const uint32_t *tr[R_TT_CH];
                    float *yt[R_TT_CH];
                    for (int t = 0; t < TT; t++) {
                        int tc = t0 + (t < tt ? t : tt - 1);
                        xr[t] = (const uint8_t *)x + (size_t)(tb + tc) * x_stride +
                                (size_t)k0 * xbs;
                        tr[t] = tab + 2 * ((size_t)tc * (size_t)nb + (size_t)k0);
                        yt[t] = y + (size_t)(tb + tc) * y_stride + (size_t)rg;
                    }
                    struct r16_spill *sp = &spill[t0 / TT];
                    if (q32_min(kind)) {
                        if (tt == 2)
                            r16_tile(kind, 2, qbuf, xr, tr, kn, first, last, sp, yt, nr);
                        else
                            r16_tile(kind, 1, qbuf, xr, tr, kn, first, last, sp, yt, nr);
                        continue;
                    }
                    switch (tt) { /* TT as a constant: the tile's loops unroll */
#define R16_CASE(n)                                                                                \
    case n:                                                                                        \
        r16_tile(kind, n, qbuf, xr, tr, kn, first, last, sp, yt, nr);                              \
        break;
                        R16_CASE(8) R16_CASE(7) R16_CASE(6) R16_CASE(5) R16_CASE(4)
                        R16_CASE(3) R16_CASE(2)
                    default:
                        r16_tile(kind, 1, qbuf, xr, tr, kn, first, last, sp, yt, nr);
#undef R16_CASE
                    }
                }
            }
        }
    }
}

/* ---- K-quants (Q4_K, Q5_K, Q6_K): the R16 engine ----------------------------
 *
 * Superblocks of 256, Q8_K activations (float d, int16 sums of 16). The
 * order (ref/kquants.c): per superblock the exact integer sums
 *   Q4_K / Q5_K: sumi = sum_j sc_j * (q . x over sub-block j of 32),
 *                summ = sum_j m_j * (bsums[2j] + bsums[2j+1]);
 *                sumf = fma(d_w d_x, sumi, sumf); sumf = fma(-dmin_w d_x, summ, sumf)
 *   Q6_K:        sumi = sum_b sc_b * ((q - 32) . x over sub-block b of 16),
 *                computed as sum_b sc_b (q . x) - 32 sum_b sc_b bsums[b];
 *                sumf = fma(d_w d_x, sumi, sumf).
 * Per 16 rows, each sub-block's 4-element groups go through vpdpbusd as in
 * the 32-element R16 engine, times the rows' sub-block scales (vpmulld); the
 * bsums terms are vpdpwssd of the rows' (scale, scale) int16 pairs against
 * the activation's bsums pairs. Decode (few tokens, or no scratch) uses one
 * vec_dot per output. */

enum { QK_Q4_K, QK_Q5_K, QK_Q6_K };

#define K_REPACK   5760 /* scratch bytes per superblock of a 16-row group */
#define K_SC       4096 /* offsets in it: scales (int32 per row and sub-block) */
#define K_PAIRS    5120 /* int16 pairs for the bsums terms: 8 zmm */
#define K_D        5632 /* d (and dmin at + 64) as floats */
#define K_TT       6
#define K_TB       R_TB /* tokens per block (at most) */

AI int qk_bytes(int kind)
{
    return kind == QK_Q4_K ? 144 : kind == QK_Q5_K ? 176 : 210;
}

/* One superblock of one row as 256 unsigned bytes in element order. */
AI void qk_row(int kind, const uint8_t *b, uint8_t *out)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    if (kind == QK_Q6_K) {
        const struct cai_block_q6_k *q6 = (const void *)b;
        const __m512i m4z = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
        for (int h = 0; h < 2; h++) {
            __m512i l = _mm512_loadu_si512((const void *)(q6->ql + 64 * h));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(q6->qh + 32 * h));
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(hb), _mm256_srli_epi16(hb, 2), 1);
            __m512i lo = _mm512_or_si512(_mm512_and_si512(l, m4z),
                                         _mm512_and_si512(_mm512_slli_epi16(z, 4), m30));
            __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4z),
                                         _mm512_and_si512(z, m30));
            _mm512_storeu_si512((void *)(out + 128 * h), lo);
            _mm512_storeu_si512((void *)(out + 128 * h + 64), hi);
        }
        return;
    }
    const uint8_t *qs = b + (kind == QK_Q5_K ? 48 : 16);
    __m256i qh = kind == QK_Q5_K ? _mm256_loadu_si256((const __m256i *)(b + 16))
                                 : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (kind == QK_Q5_K) {
            const __m256i h = _mm256_set1_epi8(0x10);
            lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * c)))),
                                      lo, h);
            hi = _mm256_mask_add_epi8(hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(2 << (2 * c)))),
                                      hi, h);
        }
        _mm256_storeu_si256((__m256i *)(out + 64 * c), lo);
        _mm256_storeu_si256((__m256i *)(out + 64 * c + 32), hi);
    }
}

/* Repacks superblocks [0, nb) of 16 rows into dst (K_REPACK bytes each):
 * 64 zmm of quants (zmm g lane r = row r's dword g), then per sub-block the
 * rows' scales as int32 (8 for Q4_K/Q5_K, 16 for Q6_K), then 8 zmm of int16
 * pairs (m_j, m_j) resp. (sc_2k, sc_2k+1), then d (and dmin) as floats. */
AI void qk_repack(int kind, const uint8_t *const *wr, int64_t nb, uint8_t *dst, uintptr_t pf,
                  size_t pf_step)
{
    const int bs = qk_bytes(kind);
    _Alignas(64) uint8_t rows[16][256];
    _Alignas(64) int32_t scl[16][16];
    _Alignas(64) int32_t prs[8][16];
    _Alignas(64) float dd[2][16];
    for (int64_t i = 0; i < nb; i++, dst += K_REPACK) {
        const size_t o = (size_t)i * bs;
        for (size_t b = 0; b < pf_step; b += 64)
            _mm_prefetch((const char *)(pf + (size_t)i * pf_step + b), _MM_HINT_T0);
        for (int r = 0; r < 16; r++) {
            const uint8_t *blk = wr[r] + o;
            qk_row(kind, blk, rows[r]);
            if (kind == QK_Q6_K) {
                const struct cai_block_q6_k *q6 = (const void *)blk;
                for (int j = 0; j < 16; j++)
                    scl[j][r] = q6->scales[j];
                for (int k = 0; k < 8; k++)
                    prs[k][r] = (int32_t)((uint32_t)(uint16_t)q6->scales[2 * k] |
                                          (uint32_t)(uint16_t)q6->scales[2 * k + 1] << 16);
                dd[0][r] = h2f(&q6->d);
            } else {
                const struct cai_block_q4_k *q4 = (const void *)blk;
                uint8_t sc[8], mn[8];
                cai__unpack_k4_scales(q4->scales, sc, mn);
                for (int j = 0; j < 8; j++) {
                    scl[j][r] = sc[j];
                    prs[j][r] = (int32_t)((uint32_t)mn[j] | (uint32_t)mn[j] << 16);
                }
                dd[0][r] = h2f(&q4->d);
                dd[1][r] = h2f(&q4->dmin);
            }
        }
        for (int g = 0; g < 8; g++) {
            __m512i z[8];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++)
                z[k] = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_load_si256((const __m256i *)(rows[k] + 32 * g))),
                    _mm256_load_si256((const __m256i *)(rows[k + 8] + 32 * g)), 1);
            r16_transpose(z, dst + 512 * g);
        }
        const int n_sc = kind == QK_Q6_K ? 16 : 8;
        for (int j = 0; j < n_sc; j++)
            _mm512_store_si512((void *)(dst + K_SC + 64 * j), _mm512_load_si512(scl[j]));
        for (int k = 0; k < 8; k++)
            _mm512_store_si512((void *)(dst + K_PAIRS + 64 * k), _mm512_load_si512(prs[k]));
        _mm512_store_ps(dst + K_D, _mm512_load_ps(dd[0]));
        if (kind != QK_Q6_K)
            _mm512_store_ps(dst + K_D + 64, _mm512_load_ps(dd[1]));
    }
}

/* One K tile: 16 repacked rows x TT tokens (xr[t]: the token's Q8_K block
 * at the chunk's first superblock), over nb superblocks. */
AI void qk_tile(int kind, int TT, const uint8_t *qb, const uint8_t *const *xr, int64_t nb,
                int first, int last, __m512 *sp, float *const *yt, int nr)
{
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    __m512 acc[K_TT];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        acc[t] = first ? _mm512_setzero_ps() : sp[t];
    for (int64_t i = 0; i < nb; i++, qb += K_REPACK) {
        const size_t xo = (size_t)i * sizeof(struct cai_block_q8_k);
        __m512i isum[K_TT];
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
            isum[t] = _mm512_setzero_si512();
        if (kind == QK_Q6_K) {
            for (int b = 0; b < 16; b++) { /* sub-blocks of 16: 4 dwords */
                __m512i wq[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    wq[k] = _mm512_load_si512((const void *)(qb + 64 * (4 * b + k)));
                const __m512i sc = _mm512_load_si512((const void *)(qb + K_SC + 64 * b));
#pragma GCC unroll 8
                for (int t = 0; t < TT; t++) {
                    const uint8_t *xq = xr[t] + xo + 4 + 16 * b;
                    __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[0],
                                                     _mm512_set1_epi32(load_i32(xq)));
                    __m512i is1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[1],
                                                      _mm512_set1_epi32(load_i32(xq + 4)));
                    is = _mm512_dpbusd_epi32(is, wq[2], _mm512_set1_epi32(load_i32(xq + 8)));
                    is1 = _mm512_dpbusd_epi32(is1, wq[3], _mm512_set1_epi32(load_i32(xq + 12)));
                    is = _mm512_add_epi32(is, is1);
                    isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(is, sc));
                }
            }
        } else {
            for (int j = 0; j < 8; j++) { /* sub-blocks of 32: 8 dwords */
                __m512i wq[8];
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++)
                    wq[k] = _mm512_load_si512((const void *)(qb + 64 * (8 * j + k)));
                const __m512i sc = _mm512_load_si512((const void *)(qb + K_SC + 64 * j));
#pragma GCC unroll 8
                for (int t = 0; t < TT; t++) {
                    const uint8_t *xq = xr[t] + xo + 4 + 32 * j;
                    /* two half chains (exact integers), as r16_tile */
                    __m512i is = _mm512_setzero_si512(), is1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                    for (int k = 0; k < 8; k += 2) {
                        is = _mm512_dpbusd_epi32(is, wq[k], _mm512_set1_epi32(load_i32(xq + 4 * k)));
                        is1 = _mm512_dpbusd_epi32(is1, wq[k + 1],
                                                  _mm512_set1_epi32(load_i32(xq + 4 * k + 4)));
                    }
                    is = _mm512_add_epi32(is, is1);
                    isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(is, sc));
                }
            }
        }
        const __m512 dw = _mm512_load_ps(qb + K_D);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
            const uint8_t *xb = xr[t] + xo;
            float dx;
            memcpy(&dx, xb, sizeof(dx));
            /* the bsums terms: int16 pairs against the activation's pairs */
            __m512i bt = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++)
                bt = _mm512_dpwssd_epi32(bt, _mm512_load_si512((const void *)(qb + K_PAIRS + 64 * k)),
                                         _mm512_set1_epi32(load_i32(xb + 260 + 4 * k)));
            const __m512 vdx = _mm512_set1_ps(dx);
            if (kind == QK_Q6_K) {
                __m512i is = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(bt, 5));
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, vdx), _mm512_cvtepi32_ps(is), acc[t]);
            } else {
                const __m512 dm = _mm512_load_ps(qb + K_D + 64);
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, vdx), _mm512_cvtepi32_ps(isum[t]), acc[t]);
                acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dm, vdx), _mm512_cvtepi32_ps(bt), acc[t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
        if (last)
            _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
        else
            sp[t] = acc[t];
    }
}

/* The K driver. scratch: spills (one zmm per token of a block), then one
 * group's repacked K chunk. */
AI void qk_mm(int kind, int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1,
              const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride, uint8_t *scratch)
{
    const int64_t nb = n / CAI_QK_K;
    const int bs = qk_bytes(kind);
    const size_t xbs = sizeof(struct cai_block_q8_k);
    /* token blocks: the repack is shared by more tokens while their
     * activations stay well inside L2 */
    int tb_max = (int)(((size_t)256 * 1024) / ((size_t)nb * xbs));
    tb_max = tb_max > K_TB ? K_TB : tb_max < R_TB_MIN ? R_TB_MIN : tb_max;
    tb_max -= tb_max % K_TT;
    __m512 *spill = (__m512 *)scratch;
    uint8_t *qbuf = scratch + (size_t)K_TB * 64;
    const int64_t kc = (int64_t)((CAI__MM_SCRATCH_BYTES - (size_t)K_TB * 64) / K_REPACK);
    for (int tb = 0; tb < n_tok; tb += tb_max) {
        const int tb_n = n_tok - tb < tb_max ? n_tok - tb : tb_max;
        for (int64_t rg = r0; rg < r1; rg += 16) {
            const int nr = r1 - rg < 16 ? (int)(r1 - rg) : 16;
            const uint8_t *w0 = (const uint8_t *)w + (size_t)rg * w_stride;
            for (int64_t k0 = 0; k0 < nb; k0 += kc) {
                const int64_t kn = nb - k0 < kc ? nb - k0 : kc;
                const int first = k0 == 0, last = k0 + kn == nb;
                const uint8_t *wr[16];
                for (int j = 0; j < 16; j++)
                    wr[j] = w0 + (size_t)(j < nr ? j : nr - 1) * w_stride + (size_t)k0 * bs;
                qk_repack(kind, wr, kn, qbuf, (uintptr_t)w0 + 16 * w_stride + (size_t)k0 * bs,
                          (size_t)16 * bs);
                if (last && rg + 16 < r1)
                    for (int t = 0; t < tb_n; t++)
                        _mm_prefetch((const char *)(y + (size_t)(tb + t) * y_stride +
                                                    (size_t)rg + 16),
                                     _MM_HINT_ET0);
                for (int t0 = 0; t0 < tb_n; t0 += K_TT) {
                    const int tt = tb_n - t0 < K_TT ? tb_n - t0 : K_TT;
                    const uint8_t *xr[K_TT];
                    float *yt[K_TT];
                    for (int t = 0; t < K_TT; t++) {
                        int tc = tb + t0 + (t < tt ? t : tt - 1);
                        xr[t] = (const uint8_t *)x + (size_t)tc * x_stride + (size_t)k0 * xbs;
                        yt[t] = y + (size_t)tc * y_stride + (size_t)rg;
                    }
                    __m512 *sp = spill + t0;
                    switch (tt) { /* TT as a constant: the tile's loops unroll */
#define QK_CASE(n)                                                                                 \
    case n:                                                                                        \
        qk_tile(kind, n, qbuf, xr, kn, first, last, sp, yt, nr);                                   \
        break;
                        QK_CASE(6) QK_CASE(5) QK_CASE(4) QK_CASE(3) QK_CASE(2)
                    default:
                        qk_tile(kind, 1, qbuf, xr, kn, first, last, sp, yt, nr);
#undef QK_CASE
                    }
                }
            }
        }
    }
}

/* Few tokens: four rows per token at a time (dot4), striped over the range
 * (rows r0 + g + j * q, j < 4) so each of the four load streams walks
 * contiguous rows, as the pair engine does; the rest one by one. */
#define QK_MM(name, kind, vec_dot, dot4)                                                           \
    void name(int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1, const void *x,    \
              size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)                \
    {                                                                                              \
        if (scratch && n_tok >= R_MIN_TOK) {                                                       \
            qk_mm(kind, n, w, w_stride, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);         \
            return;                                                                                \
        }                                                                                          \
        const int64_t q = (r1 - r0) / 4;                                                          \
        for (int64_t g = 0; g < q; g++)                                                            \
            for (int t = 0; t < n_tok; t++) {                                                      \
                float o[4];                                                                        \
                dot4(n, (const uint8_t *)w + (size_t)(r0 + g) * w_stride, (size_t)q * w_stride,   \
                     (const uint8_t *)x + (size_t)t * x_stride, o);                                \
                for (int j = 0; j < 4; j++)                                                        \
                    y[(size_t)t * y_stride + (size_t)(r0 + g + j * q)] = o[j];                     \
            }                                                                                      \
        r0 += 4 * q;                                                                               \
        for (int64_t r = r0; r < r1; r++)                                                          \
            for (int t = 0; t < n_tok; t++)                                                        \
                y[(size_t)t * y_stride + (size_t)r] =                                              \
                    vec_dot(n, (const uint8_t *)w + (size_t)r * w_stride,                          \
                            (const uint8_t *)x + (size_t)t * x_stride);                            \
    }

QK_MM(cai__avx512_q4_k_mm, QK_Q4_K, cai__kernels_avx512.type[CAI_TYPE_Q4_K].vec_dot,
      cai__avx512_q4_k_dot4)
QK_MM(cai__avx512_q5_k_mm, QK_Q5_K, cai__kernels_avx512.type[CAI_TYPE_Q5_K].vec_dot,
      cai__avx512_q5_k_dot4)
QK_MM(cai__avx512_q6_k_mm, QK_Q6_K, cai__kernels_avx512.type[CAI_TYPE_Q6_K].vec_dot,
      cai__avx512_q6_k_dot4)

/* ---- entry points -------------------------------------------------------- */

AI void q32_mm(int kind, int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1,
               const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride,
               void *scratch)
{
    const int64_t nb = n / CAI_QK;
    /* the R16 engine needs room for at least one token tile's table */
    if (scratch && n_tok >= R_MIN_TOK && (size_t)nb * 8 * R_TT_CH <= CAI__MM_SCRATCH_BYTES / 3)
        r16_mm(kind, n, w, w_stride, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);
    else
        pair_mm(kind, n, w, w_stride, r0, r1, x, x_stride, n_tok, y, y_stride);
}

#define Q32_MM(name, kind)                                                                         \
    void name(int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1, const void *x,    \
              size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)                \
    {                                                                                              \
        q32_mm(kind, n, w, w_stride, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);            \
    }

Q32_MM(cai__avx512_q4_0_mm, Q32_Q4_0)
Q32_MM(cai__avx512_q4_1_mm, Q32_Q4_1)
Q32_MM(cai__avx512_q5_0_mm, Q32_Q5_0)
Q32_MM(cai__avx512_q5_1_mm, Q32_Q5_1)
Q32_MM(cai__avx512_q8_0_mm, Q32_Q8_0)

#endif /* __x86_64__ */
