/* avx512_packed.c: matrix products on packed Q4_0 / Q8_0 weights (the x16
 * layouts of ref/packed.c) for the "avx512" table.
 *
 * A packed block of 16 rows is 4 (Q4_0) or 8 (Q8_0) zmm of quants, zmm j
 * lane r holding row r's 4-byte word j, and the 16 rows' f16 scales. One
 * vpdpbusd against a broadcast activation dword then adds 4 products to
 * each of the 16 rows, so a block's exact integer sums for 16 rows take 8
 * vpdpbusd and land one row per lane: no horizontal sums, and one
 * conversion, one multiply and one fma per 16 rows, token and block, in
 * vec_dot's chain order (sumf = fma(d_w * d_x, isum, sumf) over the blocks).
 * Q4_0's nibbles are unsigned quants (q + 8), Q8_0's bytes q + 128: the
 * offsets enter as the integer chain's start value, -off * (the activation
 * block's sum), from a per-call table.
 *
 * Decode reads each 16-row group as one contiguous stream; prefill runs
 * tiles of up to 8 tokens over a group while its weights sit in L1/L2, and
 * token blocks whose activations stay in L2. */
#include "../kernels.h"
#include "../ref/ref.h"
#include "x86.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

#define X_TT        8             /* tokens per tile */
#define X_TB        96            /* tokens per block, at most */
#define X_TB_MIN    48            /* and at least, where the table fits */
#define X_TAB_STACK 2048          /* table entries without scratch */
#define X_L2        (256 * 1024)  /* activation bytes a token block keeps in L2 */
#define X_UB        576           /* bytes of one unpacked Q4_0 block (x16_unpack) */

/* One (token, block) of the activations: scale and the offset's start value. */
struct xtab {
    float   d;
    int32_t off;
};

AI int32_t ld_i32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Blocks [k0, k0 + kn) of tokens [0, tn) (Q8_0 rows x_stride apart). */
AI void x16_table(int off, const uint8_t *x, size_t x_stride, int tn, int64_t k0, int64_t kn,
                  struct xtab *tab)
{
    const __m256i ones = _mm256_set1_epi8(1);
    for (int t = 0; t < tn; t++) {
        const uint8_t *xb = x + (size_t)t * x_stride + (size_t)k0 * 34;
        for (int64_t i = 0; i < kn; i++, xb += 34, tab++) {
            uint16_t h;
            memcpy(&h, xb, 2);
            tab->d = _cvtsh_ss(h);
            __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones,
                                            _mm256_loadu_si256((const __m256i *)(xb + 2)));
            __m128i v = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
            v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
            tab->off = -off * _mm_cvtsi128_si32(v);
        }
    }
}

/* Blocks [k0, k0 + kn) of a Q4_0 group as 8 zmm of bytes and 16 float
 * scales each (X_UB bytes per block), for prefill: the tiles of a token
 * block then read them without unpacking nibbles again. */
AI void x16_unpack(const uint8_t *g, int64_t nb, int64_t k0, int64_t kn, uint8_t *ub)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t i = k0; i < k0 + kn; i++, ub += X_UB) {
        const uint8_t *pb = g + (size_t)(i >> 1) * 576;
        const uint8_t *q = pb + (size_t)(i & 1) * 256;
        const uint8_t *sc = i / 2 * 2 + 1 < nb ? pb + 512 + (size_t)(i & 1) * 32 : pb + 256;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m512i v = _mm512_loadu_si512((const void *)(q + 64 * j));
            _mm512_store_si512((void *)(ub + 64 * j), _mm512_and_si512(v, m4));
            _mm512_store_si512((void *)(ub + 64 * (j + 4)),
                               _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
        }
        _mm512_store_ps(ub + 512, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sc)));
    }
}

/* One tile: a 16-row group (g: its packed bytes) x TT tokens over blocks
 * [k0, k0 + kn). xr[t]: token t's activation row; tab[t]: its table at
 * block k0; yt[t]: its outputs at the group's first row. Accumulators start
 * at zero (first) or from yt (a parked earlier K chunk), and are stored to
 * yt for the rows in keep. */
AI void x16_tile(int q8, int TT, const uint8_t *g, int64_t nb, int64_t k0, int64_t kn,
                 const uint8_t *const *xr, const struct xtab *const *tab, float *const *yt,
                 __mmask16 keep, int first, const uint8_t *ub)
{
    const size_t qb = q8 ? 512 : 256, pair = 2 * (qb + 32);
    __m512 acc[X_TT];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(keep, yt[t]);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t i = k0; i < k0 + kn; i++) {
        const uint8_t *pb = g + (size_t)(i >> 1) * pair;
        const uint8_t *q = pb + (size_t)(i & 1) * qb;
        const uint8_t *sc = i / 2 * 2 + 1 < nb ? pb + 2 * qb + (size_t)(i & 1) * 32 : pb + qb;
        __m512 dw;
        __m512i wq[8];
        if (ub) { /* the group's blocks, unpacked by x16_unpack */
            const uint8_t *u = ub + (size_t)(i - k0) * X_UB;
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                wq[j] = _mm512_load_si512((const void *)(u + 64 * j));
            dw = _mm512_load_ps(u + 512);
        } else if (q8) {
            dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sc));
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                wq[j] = _mm512_loadu_si512((const void *)(q + 64 * j));
        } else {
            dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sc));
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m512i v = _mm512_loadu_si512((const void *)(q + 64 * j));
                wq[j] = _mm512_and_si512(v, m4);
                wq[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
            const uint8_t *xq = xr[t] + (size_t)i * 34 + 2;
            const struct xtab e = tab[t][i - k0];
            /* two chains (integer sums are exact: any split, same total) */
            __m512i is = _mm512_set1_epi32(e.off), is1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int j = 0; j < 8; j += 2) {
                is = _mm512_dpbusd_epi32(is, wq[j], _mm512_set1_epi32(ld_i32(xq + 4 * j)));
                is1 = _mm512_dpbusd_epi32(is1, wq[j + 1], _mm512_set1_epi32(ld_i32(xq + 4 * j + 4)));
            }
            is = _mm512_add_epi32(is, is1);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(e.d)),
                                     _mm512_cvtepi32_ps(is), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
}

AI void x16_mm(int q8, int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
               size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)
{
    const int64_t nb = n / CAI_QK;
    const size_t gsz = (size_t)nb * (q8 ? 544 : 288);
    struct xtab stack_tab[X_TAB_STACK];
    struct xtab *tab = scratch ? (struct xtab *)scratch : stack_tab;
    /* Q4_0 prefill: half the scratch holds one group's unpacked K chunk */
    const int unpack = !q8 && scratch && n_tok > X_TT / 2;
    const size_t tab_bytes = unpack ? CAI__MM_SCRATCH_BYTES / 2 : CAI__MM_SCRATCH_BYTES;
    uint8_t *ub = unpack ? (uint8_t *)scratch + tab_bytes : NULL;
    const int64_t cap = scratch ? (int64_t)(tab_bytes / sizeof(struct xtab)) : X_TAB_STACK;
    const int tt_max = n_tok < X_TT ? n_tok : X_TT;
    /* K chunk: all of K when a tile's table (and the unpacked blocks) fit */
    int64_t kc = cap / tt_max;
    kc = kc > nb ? nb : kc;
    if (unpack && kc > (int64_t)(CAI__MM_SCRATCH_BYTES / 2 / X_UB))
        kc = (int64_t)(CAI__MM_SCRATCH_BYTES / 2 / X_UB);
    /* token block: activations within X_L2 (but at least X_TB_MIN tokens),
     * the table within cap */
    int64_t tbm = X_L2 / (kc * 34);
    tbm = tbm < X_TB_MIN ? X_TB_MIN : tbm;
    tbm = tbm > cap / kc ? cap / kc : tbm;
    tbm = tbm > X_TB ? X_TB : tbm;
    tbm = tbm < tt_max ? tt_max : tbm - tbm % tt_max;
    const int off = q8 ? 128 : 8;
    const int64_t g0 = r0 / 16, g1 = (r1 + 15) / 16;
    for (int tb = 0; tb < n_tok; tb += (int)tbm) {
        const int tbn = n_tok - tb < tbm ? n_tok - tb : (int)tbm;
        const uint8_t *xt = (const uint8_t *)x + (size_t)tb * x_stride;
        for (int64_t k0 = 0; k0 < nb; k0 += kc) {
            const int64_t kn = nb - k0 < kc ? nb - k0 : kc;
            x16_table(off, xt, x_stride, tbn, k0, kn, tab);
            for (int64_t g = g0; g < g1; g++) {
                const int64_t a = g * 16 > r0 ? g * 16 : r0, b = g * 16 + 16 < r1 ? g * 16 + 16 : r1;
                const __mmask16 keep = (__mmask16)(((1u << (b - a)) - 1) << (a - g * 16));
                const uint8_t *gp = (const uint8_t *)wp + (size_t)g * gsz;
                if (ub)
                    x16_unpack(gp, nb, k0, kn, ub);
                for (int t0 = 0; t0 < tbn; t0 += X_TT) {
                    const int tt = tbn - t0 < X_TT ? tbn - t0 : X_TT;
                    const uint8_t *xr[X_TT];
                    const struct xtab *tr[X_TT];
                    float *yt[X_TT];
                    for (int t = 0; t < X_TT; t++) {
                        int tc = t0 + (t < tt ? t : tt - 1);
                        xr[t] = xt + (size_t)tc * x_stride;
                        tr[t] = tab + (size_t)tc * (size_t)kn;
                        yt[t] = y + (size_t)(tb + tc) * y_stride + (size_t)g * 16;
                    }
                    switch (tt) { /* TT as a constant: the tile's loops unroll */
#define X_CASE(c)                                                                                  \
    case c:                                                                                        \
        x16_tile(q8, c, gp, nb, k0, kn, xr, tr, yt, keep, k0 == 0, ub);                                \
        break;
                        X_CASE(8) X_CASE(7) X_CASE(6) X_CASE(5) X_CASE(4) X_CASE(3) X_CASE(2)
                    default:
                        x16_tile(q8, 1, gp, nb, k0, kn, xr, tr, yt, keep, k0 == 0, ub);
#undef X_CASE
                    }
                }
            }
        }
    }
}

/* ---- packing ---------------------------------------------------------------- */

/* Bytes [o, o + 16) of 16 rows (rows[r]) -> 4 zmm at dst: zmm j lane r =
 * row r's word j (ref/packed.c's quant layout), xor'd with flip. */
AI void x16_words(const uint8_t *const *rows, size_t o, uint8_t *dst, __m512i flip)
{
    __m512i z[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) /* 128-bit lane L of z[k]: row 4 k + L */
        z[k] = _mm512_inserti32x4(
            _mm512_inserti32x4(
                _mm512_inserti32x4(_mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rows[4 * k] + o))),
                                   _mm_loadu_si128((const __m128i *)(rows[4 * k + 1] + o)), 1),
                _mm_loadu_si128((const __m128i *)(rows[4 * k + 2] + o)), 2),
            _mm_loadu_si128((const __m128i *)(rows[4 * k + 3] + o)), 3);
    /* lane L, element e of u[j]: row 4 e + L's word j */
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    __m512i u[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                    _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
    /* row r = 4 e + L is element 4 L + e */
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
        _mm512_storeu_si512((void *)(dst + 64 * j),
                            _mm512_xor_si512(_mm512_permutexvar_epi32(idx, u[j]), flip));
}

AI void x16_pack(int q8, int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                 int64_t g1, void *dst)
{
    const int64_t nb = n / CAI_QK;
    const size_t bs = q8 ? 34 : 18, qb = q8 ? 512 : 256, pair = 2 * (qb + 32);
    const size_t group = (size_t)nb * bs * 16;
    const __m512i flip = _mm512_set1_epi8(q8 ? (char)0x80 : 0);
    uint8_t *out = dst;
    for (int64_t g = g0; g < g1; g++, out += group) {
        const int nr = n_rows - g * 16 < 16 ? (int)(n_rows - g * 16) : 16;
        if (nr < 16) { /* the last, partial group: ref's code zero-pads it */
            cai__kernels_ref.type[q8 ? CAI_TYPE_Q8_0 : CAI_TYPE_Q4_0].pack(n, w, w_stride, n_rows,
                                                                          g, g + 1, out);
            continue;
        }
        const uint8_t *rows[16];
        for (int r = 0; r < 16; r++)
            rows[r] = (const uint8_t *)w + (size_t)(g * 16 + r) * w_stride;
        for (int64_t i = 0; i < nb; i++) {
            uint8_t *pb = out + (size_t)(i >> 1) * pair;
            uint8_t *q = pb + (size_t)(i & 1) * qb;
            uint8_t *sc = i / 2 * 2 + 1 < nb ? pb + 2 * qb + (size_t)(i & 1) * 32 : pb + qb;
            const size_t o = (size_t)i * bs;
            for (int r = 0; r < 16; r++)
                memcpy(sc + 2 * r, rows[r] + o, 2);
            x16_words(rows, o + 2, q, flip);
            if (q8)
                x16_words(rows, o + 18, q + 256, flip);
        }
    }
}

void cai__avx512_q4_0_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                           int64_t g1, void *dst)
{
    x16_pack(0, n, w, w_stride, n_rows, g0, g1, dst);
}

void cai__avx512_q8_0_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                           int64_t g1, void *dst)
{
    x16_pack(1, n, w, w_stride, n_rows, g0, g1, dst);
}

void cai__avx512_q4_0_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                                size_t x_stride, int n_tok, float *y, size_t y_stride,
                                void *scratch)
{
    x16_mm(0, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);
}

void cai__avx512_q8_0_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                                size_t x_stride, int n_tok, float *y, size_t y_stride,
                                void *scratch)
{
    x16_mm(1, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);
}

#endif /* __x86_64__ */
