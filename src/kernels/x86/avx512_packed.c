/* avx512_packed.c: matrix products on packed Q4_0 / Q5_0 / Q8_0 weights (the x16
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

#include "avx512_words.h"

#define AI static inline __attribute__((always_inline))

#define X_TT        8             /* tokens per tile */
#define X_TB        96            /* tokens per block, at most */
#define X_KC        128           /* blocks per K chunk when unpacking (prefill) */
#define X_STACK     16384         /* activation bytes without scratch (decode) */
#define X_UB        576           /* bytes of one unpacked block (x16_unpack) */
#define PF_Q4       4096 /* Q4_0 and Q5_0: see xk_pf */

/* The packed types (ref/packed.c): quant bytes per 16-row block, file
 * block bytes, the offset the unsigned quants carry, where a file block's
 * quants start. */
enum { X_Q4_0, X_Q8_0, X_Q5_0 };

AI size_t xk_qb(int kind)
{
    return kind == X_Q4_0 ? 256 : kind == X_Q5_0 ? 320 : 512;
}

AI size_t xk_bs(int kind)
{
    return kind == X_Q4_0 ? 18 : kind == X_Q5_0 ? 22 : 34;
}

/* How far ahead decode prefetches its group stream in software (0: not
 * at all). One thread streaming 131072 x 896 rows from DRAM
 * (bench_kernels -n 1, best of 5, engines interleaved): Q4_0 19-23 GB/s
 * without, 24-25 at 1 KiB, 24-28 at 4 KiB over two sets of runs (a third,
 * on a noisier machine, gave medians of 21.5 vs 22.4); Q8_0 27-29 without
 * and 19-24 with: its stream of more bytes per instruction keeps the
 * hardware prefetchers ahead on their own. */
AI size_t xk_pf(int kind)
{
    return kind == X_Q8_0 ? 0 : PF_Q4;
}

AI int xk_off(int kind)
{
    return kind == X_Q4_0 ? 8 : kind == X_Q5_0 ? 16 : 128;
}

/* Eight zmm of unsigned quants of one packed block (q: its quant bytes):
 * nibbles split, Q5_0's fifth bits added from the masks. */
AI void xk_quants(int kind, const uint8_t *q, __m512i *wq)
{
    if (kind == X_Q8_0) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            wq[j] = _mm512_loadu_si512((const void *)(q + 64 * j));
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f), h = _mm512_set1_epi8(0x10);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_loadu_si512((const void *)(q + 64 * j));
        wq[j] = _mm512_and_si512(v, m4);
        wq[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if (kind == X_Q5_0) {
            uint64_t ml, mh;
            memcpy(&ml, q + 256 + 16 * j, 8);
            memcpy(&mh, q + 256 + 16 * j + 8, 8);
            wq[j] = _mm512_mask_add_epi8(wq[j], _cvtu64_mask64(ml), wq[j], h);
            wq[j + 4] = _mm512_mask_add_epi8(wq[j + 4], _cvtu64_mask64(mh), wq[j + 4], h);
        }
    }
}

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

/* Activations of a tile of TT tokens, interleaved so the tile reads them
 * through one pointer: per block, the TT tokens' 32 quant bytes, then their
 * xtab entries (X_XB bytes per token and block). */
#define X_XB 40

/* Blocks [k0, k0 + kn) of tokens [0, tt) (Q8_0 rows x_stride apart) into dst. */
AI void x16_xtile(int off, const uint8_t *x, size_t x_stride, int tt, int64_t k0, int64_t kn,
                  uint8_t *dst)
{
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < kn; i++, dst += (size_t)tt * X_XB) {
        struct xtab *e = (struct xtab *)(dst + (size_t)tt * 32);
        for (int t = 0; t < tt; t++) {
            const uint8_t *xb = x + (size_t)t * x_stride + (size_t)(k0 + i) * 34;
            uint16_t h;
            memcpy(&h, xb, 2);
            const __m256i q = _mm256_loadu_si256((const __m256i *)(xb + 2));
            _mm256_storeu_si256((__m256i *)(dst + 32 * t), q);
            __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, q);
            __m128i v = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
            v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
            e[t].d = _cvtsh_ss(h);
            e[t].off = -off * _mm_cvtsi128_si32(v);
        }
    }
}

/* Blocks [k0, k0 + kn) of a group as 8 zmm of unsigned bytes and 16 float
 * scales each (X_UB bytes per block), for prefill: the tiles of a token
 * block then read them without unpacking nibbles or converting scales
 * again, and two groups can share a tile (x16_tile2). */
AI void x16_unpack(int kind, const uint8_t *g, int64_t nb, int64_t k0, int64_t kn, uint8_t *ub)
{
    const size_t qb = xk_qb(kind), pair = 2 * (qb + 32);
    for (int64_t i = k0; i < k0 + kn; i++, ub += X_UB) {
        const uint8_t *pb = g + (size_t)(i >> 1) * pair;
        const uint8_t *q = pb + (size_t)(i & 1) * qb;
        const uint8_t *sc = i / 2 * 2 + 1 < nb ? pb + 2 * qb + (size_t)(i & 1) * 32 : pb + qb;
        __m512i wq[8];
        xk_quants(kind, q, wq);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            _mm512_store_si512((void *)(ub + 64 * j), wq[j]);
        _mm512_store_ps(ub + 512, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sc)));
    }
}

/* One tile: a 16-row group (g: its packed bytes, or ub: its blocks
 * unpacked by x16_unpack from block k0 on) x TT tokens (xt: their x16_xtile
 * data from block k0 on) over blocks [k0, k0 + kn); yt[t]: token t's outputs
 * at the group's first row. Accumulators start at zero (first) or from yt
 * (a parked earlier K chunk), and are stored to yt for the rows in keep. */
AI void x16_tile(int kind, int TT, const uint8_t *g, const uint8_t *ub, int64_t nb, int64_t k0,
                 int64_t kn, const uint8_t *xt, float *const *yt, __mmask16 keep, int first)
{
    const size_t qb = xk_qb(kind), pair = 2 * (qb + 32);
    __m512 acc[X_TT];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(keep, yt[t]);
    for (int64_t i = k0; i < k0 + kn; i++, xt += (size_t)TT * X_XB) {
        __m512 dw;
        __m512i wq[8];
        if (ub) {
            const uint8_t *u = ub + (size_t)(i - k0) * X_UB;
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                wq[j] = _mm512_load_si512((const void *)(u + 64 * j));
            dw = _mm512_load_ps(u + 512);
        } else {
            const uint8_t *pb = g + (size_t)(i >> 1) * pair;
            if (xk_pf(kind) && !(i & 1))
                for (size_t l = 0; l < pair; l += 64)
                    _mm_prefetch((const char *)(pb + xk_pf(kind) + l), _MM_HINT_T0);
            const uint8_t *q = pb + (size_t)(i & 1) * qb;
            const uint8_t *sc = i / 2 * 2 + 1 < nb ? pb + 2 * qb + (size_t)(i & 1) * 32 : pb + qb;
            dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sc));
            xk_quants(kind, q, wq);
        }
        const struct xtab *e = (const struct xtab *)(xt + (size_t)TT * 32);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
            const uint8_t *xq = xt + 32 * t;
            /* two chains (integer sums are exact: any split, same total) */
            __m512i is = _mm512_set1_epi32(e[t].off), is1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int j = 0; j < 8; j += 2) {
                is = _mm512_dpbusd_epi32(is, wq[j], _mm512_set1_epi32(ld_i32(xq + 4 * j)));
                is1 = _mm512_dpbusd_epi32(is1, wq[j + 1], _mm512_set1_epi32(ld_i32(xq + 4 * j + 4)));
            }
            is = _mm512_add_epi32(is, is1);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(e[t].d)),
                                     _mm512_cvtepi32_ps(is), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
}

/* Two unpacked groups (u0, u1: x16_unpack of each) x TT tokens, tokens
 * t_off.. of an x16_xtile tile of TS tokens: each broadcast activation
 * word serves 32 rows. As x16_tile otherwise (both groups fully kept). */
AI void x16_tile2(int TT, int TS, int t_off, const uint8_t *u0, const uint8_t *u1, int64_t kn,
                  const uint8_t *xt, float *const *yt, int first)
{
    __m512 acc[2][4];
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++) {
        acc[0][t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(yt[t]);
        acc[1][t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(yt[t] + 16);
    }
    for (int64_t i = 0; i < kn; i++, xt += (size_t)TS * X_XB, u0 += X_UB, u1 += X_UB) {
        __m512i w0[8], w1[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            w0[j] = _mm512_load_si512((const void *)(u0 + 64 * j));
            w1[j] = _mm512_load_si512((const void *)(u1 + 64 * j));
        }
        const __m512 d0 = _mm512_load_ps(u0 + 512), d1 = _mm512_load_ps(u1 + 512);
        const struct xtab *e = (const struct xtab *)(xt + (size_t)TS * 32) + t_off;
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            const uint8_t *xq = xt + 32 * (t_off + t);
            __m512i a0 = _mm512_set1_epi32(e[t].off), a1 = a0;
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const __m512i xv = _mm512_set1_epi32(ld_i32(xq + 4 * j));
                a0 = _mm512_dpbusd_epi32(a0, w0[j], xv);
                a1 = _mm512_dpbusd_epi32(a1, w1[j], xv);
            }
            const __m512 dx = _mm512_set1_ps(e[t].d);
            acc[0][t] = _mm512_fmadd_ps(_mm512_mul_ps(d0, dx), _mm512_cvtepi32_ps(a0), acc[0][t]);
            acc[1][t] = _mm512_fmadd_ps(_mm512_mul_ps(d1, dx), _mm512_cvtepi32_ps(a1), acc[1][t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++) {
        _mm512_storeu_ps(yt[t], acc[0][t]);
        _mm512_storeu_ps(yt[t] + 16, acc[1][t]);
    }
}

AI void x16_mm(int kind, int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
               size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)
{
    const int64_t nb = n / CAI_QK;
    const size_t gsz = (size_t)nb * xk_bs(kind) * 16;
    _Alignas(64) uint8_t stack_buf[X_STACK];
    const int tt_max = n_tok < X_TT ? n_tok : X_TT;
    /* prefill: two groups' unpacked K chunks in the scratch */
    const int unpack = scratch && n_tok > X_TT / 2;
    uint8_t *buf = scratch ? (uint8_t *)scratch : stack_buf;
    size_t room = scratch ? CAI__MM_SCRATCH_BYTES : X_STACK;
    /* K chunk: all of K when one tile's activations fit (at most X_KC
     * blocks when unpacking), the rest of the room for a token block */
    int64_t kc = unpack ? X_KC : (int64_t)(room / ((size_t)tt_max * X_XB));
    kc = kc > nb ? nb : kc;
    uint8_t *ub = unpack ? buf + room - 2 * (size_t)kc * X_UB : NULL;
    uint8_t *ub2 = unpack ? ub + (size_t)kc * X_UB : NULL;
    room -= unpack ? 2 * (size_t)kc * X_UB : 0;
    int64_t tbm = (int64_t)(room / ((size_t)kc * X_XB));
    tbm = tbm > X_TB ? X_TB : tbm;
    tbm = tbm < tt_max ? tt_max : tbm - tbm % tt_max;
    const int off = xk_off(kind);
    const int64_t g0 = r0 / 16, g1 = (r1 + 15) / 16;
    for (int tb = 0; tb < n_tok; tb += (int)tbm) {
        const int tbn = n_tok - tb < tbm ? n_tok - tb : (int)tbm;
        const uint8_t *xb = (const uint8_t *)x + (size_t)tb * x_stride;
        for (int64_t k0 = 0; k0 < nb; k0 += kc) {
            const int64_t kn = nb - k0 < kc ? nb - k0 : kc;
            for (int t0 = 0; t0 < tbn; t0 += X_TT) {
                const int tt = tbn - t0 < X_TT ? tbn - t0 : X_TT;
                x16_xtile(off, xb + (size_t)t0 * x_stride, x_stride, tt, k0, kn,
                          buf + (size_t)t0 * (size_t)kn * X_XB);
            }
            int64_t g = g0;
            /* pairs of whole groups, 4 tokens at a time */
            for (; ub && g + 1 < g1 && g * 16 >= r0 && g * 16 + 32 <= r1; g += 2) {
                const uint8_t *gp = (const uint8_t *)wp + (size_t)g * gsz;
                x16_unpack(kind, gp, nb, k0, kn, ub);
                x16_unpack(kind, gp + gsz, nb, k0, kn, ub2);
                for (int t0 = 0; t0 < tbn; t0 += X_TT) {
                    const int tt = tbn - t0 < X_TT ? tbn - t0 : X_TT;
                    const uint8_t *xt = buf + (size_t)t0 * (size_t)kn * X_XB;
                    for (int s0 = 0; s0 < tt; s0 += 4) {
                        float *yt[4];
                        const int sn = tt - s0 < 4 ? tt - s0 : 4;
                        for (int t = 0; t < 4; t++)
                            yt[t] = y + (size_t)(tb + t0 + s0 + (t < sn ? t : sn - 1)) * y_stride +
                                    (size_t)g * 16;
#define X2_CASE(TS, SN)                                                                            \
    if (tt == TS && sn == SN) {                                                                    \
        x16_tile2(SN, TS, s0, ub, ub2, kn, xt, yt, k0 == 0);                                       \
        continue;                                                                                  \
    }
                        X2_CASE(8, 4)
                        for (int t = 0; t < sn; t++) { /* token tails: one by one */
                            float *y1[1] = {yt[t]};
                            switch (tt) {
                            case 8: x16_tile2(1, 8, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            case 7: x16_tile2(1, 7, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            case 6: x16_tile2(1, 6, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            case 5: x16_tile2(1, 5, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            case 4: x16_tile2(1, 4, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            case 3: x16_tile2(1, 3, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            case 2: x16_tile2(1, 2, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            default: x16_tile2(1, 1, s0 + t, ub, ub2, kn, xt, y1, k0 == 0); break;
                            }
                        }
#undef X2_CASE
                    }
                }
            }
            for (; g < g1; g++) {
                const int64_t a = g * 16 > r0 ? g * 16 : r0, b = g * 16 + 16 < r1 ? g * 16 + 16 : r1;
                const __mmask16 keep = (__mmask16)(((1u << (b - a)) - 1) << (a - g * 16));
                const uint8_t *gp = (const uint8_t *)wp + (size_t)g * gsz;
                if (ub)
                    x16_unpack(kind, gp, nb, k0, kn, ub);
                for (int t0 = 0; t0 < tbn; t0 += X_TT) {
                    const int tt = tbn - t0 < X_TT ? tbn - t0 : X_TT;
                    const uint8_t *xt = buf + (size_t)t0 * (size_t)kn * X_XB;
                    float *yt[X_TT];
                    for (int t = 0; t < X_TT; t++)
                        yt[t] = y + (size_t)(tb + t0 + (t < tt ? t : tt - 1)) * y_stride +
                                (size_t)g * 16;
                    switch (tt) { /* TT as a constant: the tile's loops unroll */
#define X_CASE(c)                                                                                  \
    case c:                                                                                        \
        x16_tile(kind, c, gp, ub, nb, k0, kn, xt, yt, keep, k0 == 0);                                \
        break;
                        X_CASE(8) X_CASE(7) X_CASE(6) X_CASE(5) X_CASE(4) X_CASE(3) X_CASE(2)
                    default:
                        x16_tile(kind, 1, gp, ub, nb, k0, kn, xt, yt, keep, k0 == 0);
#undef X_CASE
                    }
                }
            }
        }
    }
}

/* ---- packing ---------------------------------------------------------------- */

/* Bytes [o, o + 16) of 16 rows -> 4 zmm at dst (the quant layout), xor'd
 * with flip. */
AI void x16_words(const uint8_t *const *rows, size_t o, uint8_t *dst, __m512i flip)
{
    __m512i v[4];
    cai__x16_words(rows, o, v);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
        _mm512_storeu_si512((void *)(dst + 64 * j), _mm512_xor_si512(v[j], flip));
}

AI void x16_pack(int kind, int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                 int64_t g1, void *dst)
{
    static const uint32_t ref_type[] = {CAI_TYPE_Q4_0, CAI_TYPE_Q8_0, CAI_TYPE_Q5_0};
    const int64_t nb = n / CAI_QK;
    const size_t bs = xk_bs(kind), qb = xk_qb(kind), pair = 2 * (qb + 32);
    const size_t group = (size_t)nb * bs * 16, qo = kind == X_Q5_0 ? 6 : 2;
    const __m512i flip = _mm512_set1_epi8(kind == X_Q8_0 ? (char)0x80 : 0);
    uint8_t *out = dst;
    for (int64_t g = g0; g < g1; g++, out += group) {
        const int nr = n_rows - g * 16 < 16 ? (int)(n_rows - g * 16) : 16;
        if (nr < 16) { /* the last, partial group: ref's code zero-pads it */
            cai__kernels_ref.type[ref_type[kind]].pack(n, w, w_stride, n_rows, g, g + 1, out);
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
            x16_words(rows, o + qo, q, flip);
            if (kind == X_Q8_0)
                x16_words(rows, o + 18, q + 256, flip);
            if (kind == X_Q5_0) { /* fifth bits: 4 per row per mask */
                uint64_t mk[8] = {0};
                for (int r = 0; r < 16; r++) {
                    uint32_t qh;
                    memcpy(&qh, rows[r] + o + 2, 4);
                    for (int j = 0; j < 4; j++) {
                        mk[2 * j] |= (uint64_t)((qh >> (4 * j)) & 15) << (4 * r);
                        mk[2 * j + 1] |= (uint64_t)((qh >> (16 + 4 * j)) & 15) << (4 * r);
                    }
                }
                memcpy(q + 256, mk, sizeof(mk));
            }
        }
    }
}

#define X_ENTRY_POINTS(t, K)                                                                       \
    void cai__avx512_##t##_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows,         \
                                int64_t g0, int64_t g1, void *dst)                                 \
    {                                                                                              \
        x16_pack(K, n, w, w_stride, n_rows, g0, g1, dst);                                          \
    }                                                                                              \
    void cai__avx512_##t##_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1,            \
                                     const void *x, size_t x_stride, int n_tok, float *y,          \
                                     size_t y_stride, void *scratch)                               \
    {                                                                                              \
        x16_mm(K, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);                        \
    }

X_ENTRY_POINTS(q4_0, X_Q4_0)
X_ENTRY_POINTS(q5_0, X_Q5_0)
X_ENTRY_POINTS(q8_0, X_Q8_0)

#endif /* __x86_64__ */
