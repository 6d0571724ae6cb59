/* avx512_packed_k.c: matrix products on packed Q4_K / Q6_K weights (the
 * layouts of ref/packed_k.c) for the "avx512" table.
 *
 * The order is vec_dot's (ref/kquants.c, and avx512_mm.c's K engine): per
 * superblock the exact integer sums, then the fmas. 16 rows go at once:
 * each quant zmm holds one dword of 4 elements per row (lane r = row r), so
 * one vpdpbusd against a broadcast activation dword adds 4 products to
 * every row; a sub-block's sums are then multiplied by the 16 rows' scales
 * (vpmulld) and added up, all per lane, without horizontal sums.
 *   Q4_K: sumi = sum_j sc_j (q . x)_j; the min term sum_j m_j (bsums[2j] +
 *         bsums[2j+1]) is 4 vpdpwssd of the rows' (m_2k, m_2k+1) int16
 *         pairs against the activation's pair sums; then
 *         acc = fma(d dx, sumi, acc), acc = fma(-(dmin dx), summ, acc).
 *   Q6_K: sumi = sum_b sc_b ((q - 32) . x)_b, each sub-block's chain of
 *         vpdpbusd starting at -32 bsums[b] (so q can stay unsigned); then
 *         acc = fma(d dx, sumi, acc).
 *
 * Decode (up to 4 tokens at a time) streams each 16-row group once, in
 * memory order, unpacking nibbles and scales in registers. Prefill (more
 * tokens, with scratch) unpacks one group's K chunk once per token block
 * into scratch (bytes 0..15 resp. 0..63 per element, scales as int16 pairs
 * resp. int32 lanes, d as floats) and runs tiles of up to K_TT tokens over
 * it while it sits in L2; partial sums of a K chunk are parked in y
 * (floats, exact). Q4_K goes two groups at a time (k4_tile2: each
 * broadcast activation word feeds 32 rows) and sums its sub-blocks in
 * int16 halves (k4_halves) instead of vpmulld; the next group's bytes are
 * prefetched while the tiles run. Q4_K GEMM, 8192 x 2048, 1 thread: 282-290
 * -> 315-320 GOP/s. */
#include "../kernels.h"
#include "../ref/ref.h"
#include "x86.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "avx512_words.h"

#define AI static inline __attribute__((always_inline))

#define K4_SB    2304 /* packed bytes of one Q4_K superblock of 16 rows */
#define K6_SB    3360 /* the same for Q6_K */
#define K_DEC    4    /* tokens per decode pass */
#define K_TT     6    /* tokens per prefill tile */
#define K_TB     96   /* tokens per block, at most */
#define K_TB_MIN 48   /* and at least */
/* superblocks per K chunk, at most: two groups' unpacked chunks (80 KB of
 * Q4_K) and a token block's activations stay well inside L2 (K = 8192:
 * Q6_K 3% faster than with all of K in one chunk, Q4_K the same) */
#define K_KC     8
#define K_L2     (256 * 1024) /* activation bytes a token block keeps in L2 */
#define Q8K      292          /* bytes of a Q8_K block: d, qs at 4, bsums at 260 */
/* Decode prefetches the group stream this far ahead in software: without
 * it the Q6_K stream (more instructions per line than Q4_K's) ran at 11
 * GB/s from DRAM here, the hardware prefetchers alone falling behind; 0 to
 * 4 KiB ahead all gave 27-28 GB/s. */
#define K_PF     1024

/* Prefill unpacks one group (or two) per token block and then runs all
 * the block's tiles over it; the next groups' packed bytes are prefetched
 * into L2 slice by slice between those tiles, so that their unpack does not
 * wait for DRAM line by line (Q4_K, 8192 x 2048: 293 -> 307 GOP/s). Slice s
 * of n of [p, p + bytes). */
AI void prefetch_slice(const uint8_t *p, size_t bytes, int s, int n)
{
    const size_t per = (bytes / (size_t)n + 63) & ~(size_t)63;
    const size_t a = per * (size_t)s, b = a + per < bytes ? a + per : bytes;
    for (size_t o = a; o < b; o += 64)
        _mm_prefetch((const char *)(p + o), _MM_HINT_T1);
}

/* One unpacked superblock of 16 rows in scratch: 64 zmm of quants (zmm 8 j
 * + k, resp. 4 b + k: lane r = row r's elements 32 j + 4 k.. of sub-block j,
 * resp. 16 b + 4 k.. of sub-block b), the scales as int32 lanes (8 resp.
 * 16 zmm), Q4_K's min pairs (4 zmm), d (and dmin) as floats. */
#define U_SC  4096
#define U4_MP (U_SC + 8 * 64)
#define U4_D  (U4_MP + 4 * 64)
#define U4    (U4_D + 2 * 64)
#define U6_D  (U_SC + 16 * 64)
#define U6    (U6_D + 64)

AI int32_t ld_i32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

AI __m512i bcast(const uint8_t *p)
{
    return _mm512_set1_epi32(ld_i32(p));
}

/* A | (B & C) */
AI __m512i or_and(__m512i a, __m512i b, __m512i c)
{
    return _mm512_ternarylogic_epi32(a, b, c, 0xf8);
}

/* ---- Q4_K ------------------------------------------------------------------- */

/* The 16 rows' scales of packed superblock sb as int32 lanes (sc[j]) and
 * their mins as int16 pairs (mp[k] lane r = m_2k, m_2k+1 of row r). */
AI void k4_scales(const uint8_t *sb, __m512i sc[8], __m512i mp[4])
{
    const __m512i hz = _mm512_loadu_si512((const void *)(sb + 192));
    const __m512i m4 = _mm512_set1_epi32(15), m30 = _mm512_set1_epi32(0x30);
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        __m512i a = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(sb + 64 + 16 * p)));
        sc[p] = _mm512_and_si512(a, m4);
        sc[p + 4] = _mm512_srli_epi32(a, 4);
    }
    /* sc_{2k+e}'s high bits sit at 16 e + 8 + 2 k: to bits 4-5 */
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        sc[j] = or_and(sc[j], _mm512_srli_epi32(hz, 4 + 2 * (j / 2) + 16 * (j % 2)), m30);
    const __m512i m4w = _mm512_set1_epi16(15), m30w = _mm512_set1_epi16(0x30);
#pragma GCC unroll 2
    for (int q = 0; q < 2; q++) {
        __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(sb + 128 + 32 * q)));
        mp[q] = _mm512_and_si512(b, m4w);
        mp[q + 2] = _mm512_srli_epi16(b, 4);
    }
    /* m_{2k+e}'s high bits sit at 2 k of word e: to bits 4-5 of the word */
    mp[0] = or_and(mp[0], _mm512_slli_epi16(hz, 4), m30w);
    mp[1] = or_and(mp[1], _mm512_slli_epi16(hz, 2), m30w);
    mp[2] = or_and(mp[2], hz, m30w);
    mp[3] = or_and(mp[3], _mm512_srli_epi16(hz, 2), m30w);
}

/* The activation's bsums pair sums as int16 pairs: word e of dword k =
 * bsums[4k + 2e] + bsums[4k + 2e + 1] (at most 2 * 16 * 127: no overflow). */
AI void k4_bsum_pairs(const uint8_t *xb, int32_t pr[4])
{
    __m256i s =
        _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xb + 260)), _mm256_set1_epi16(1));
    _mm_storeu_si128((__m128i *)pr, _mm256_cvtepi32_epi16(s));
}

/* The float steps of one superblock for one token, in vec_dot's order,
 * with the activation block's bsum pairs (k4_bsum_pairs) given. */
AI __m512 k4_finish_pr(__m512 acc, __m512 dw, __m512 dm, const __m512i *mp, const uint8_t *xb,
                       const int32_t *pr, __m512i isum)
{
    __m512i bt = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        bt = _mm512_dpwssd_epi32(bt, mp[k], _mm512_set1_epi32(pr[k]));
    float dx;
    memcpy(&dx, xb, sizeof(dx));
    const __m512 vdx = _mm512_set1_ps(dx);
    acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, vdx), _mm512_cvtepi32_ps(isum), acc);
    return _mm512_fnmadd_ps(_mm512_mul_ps(dm, vdx), _mm512_cvtepi32_ps(bt), acc);
}

AI __m512 k4_finish(__m512 acc, __m512 dw, __m512 dm, const __m512i *mp, const uint8_t *xb,
                    __m512i isum)
{
    int32_t pr[4];
    k4_bsum_pairs(xb, pr);
    return k4_finish_pr(acc, dw, dm, mp, xb, pr, isum);
}

/* Decode: one packed group (gp) x TT tokens over all nb superblocks, the
 * outputs of the rows in keep stored to yt[t]. */
AI void k4_dec(int TT, const uint8_t *gp, int64_t nb, const uint8_t *const *xr, float *const *yt,
               __mmask16 keep)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[K_DEC];
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *sb = gp + (size_t)i * K4_SB;
        for (int l = 0; l < K4_SB; l += 64)
            _mm_prefetch((const char *)(sb + K_PF + l), _MM_HINT_T0);
        __m512i sc[8], mp[4], isum[K_DEC];
        k4_scales(sb, sc, mp);
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++)
            isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
        for (int c = 0; c < 4; c++) { /* qs chunk c: sub-blocks 2c (low), 2c+1 (high) */
            __m512i ia[K_DEC], ib[K_DEC];
#pragma GCC unroll 4
            for (int t = 0; t < TT; t++)
                ia[t] = ib[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(sb + 256 + 64 * (8 * c + k)));
                __m512i lo = _mm512_and_si512(v, m4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
#pragma GCC unroll 4
                for (int t = 0; t < TT; t++) {
                    const uint8_t *xq = xr[t] + (size_t)i * Q8K + 4 + 64 * c + 4 * k;
                    ia[t] = _mm512_dpbusd_epi32(ia[t], lo, bcast(xq));
                    ib[t] = _mm512_dpbusd_epi32(ib[t], hi, bcast(xq + 32));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < TT; t++)
                isum[t] = _mm512_add_epi32(
                    isum[t], _mm512_add_epi32(_mm512_mullo_epi32(ia[t], sc[2 * c]),
                                              _mm512_mullo_epi32(ib[t], sc[2 * c + 1])));
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sb));
        const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sb + 32)));
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++)
            acc[t] = k4_finish(acc[t], dw, dm, mp, xr[t] + (size_t)i * Q8K, isum[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
        _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
}

/* Prefill's sub-block sums without vpmulld (the GEMM ran 14% faster with
 * it replaced by an add, for timing only): a sub-block's products are summed in
 * two halves of 16 elements, each within int16 (|sum| <= 16 * 15 * 128 =
 * 30720), the halves packed as an int16 pair per lane, and one vpdpwssd
 * against the (sc, sc) pair adds sc * (a + b) to the lane's int32 sum:
 * the same integer as before. */
AI __m512i k4_halves(__m512i a, __m512i b)
{
    return or_and(_mm512_slli_epi32(b, 16), a, _mm512_set1_epi32(0xffff));
}

/* Prefill: superblocks [k0, k0 + kn) of a group, unpacked into ub. */
AI void k4_unpack(const uint8_t *gp, int64_t k0, int64_t kn, uint8_t *ub)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t i = k0; i < k0 + kn; i++, ub += U4) {
        const uint8_t *sb = gp + (size_t)i * K4_SB;
        __m512i sc[8], mp[4];
        k4_scales(sb, sc, mp);
        for (int c = 0; c < 4; c++)
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(sb + 256 + 64 * (8 * c + k)));
                _mm512_store_si512((void *)(ub + 64 * (16 * c + k)), _mm512_and_si512(v, m4));
                _mm512_store_si512((void *)(ub + 64 * (16 * c + 8 + k)),
                                   _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
            }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) /* as int16 pairs (sc, sc): see k4_halves */
            _mm512_store_si512((void *)(ub + U_SC + 64 * j),
                               _mm512_or_si512(sc[j], _mm512_slli_epi32(sc[j], 16)));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            _mm512_store_si512((void *)(ub + U4_MP + 64 * k), mp[k]);
        _mm512_store_ps(ub + U4_D, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sb)));
        _mm512_store_ps(ub + U4_D + 64,
                        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sb + 32))));
    }
}

/* One prefill tile: an unpacked K chunk (ub, kn superblocks) x TT tokens
 * (xr[t] at the chunk's first superblock); accumulators start at zero
 * (first) or from yt (the earlier chunks' parked sums). */
AI void k4_tile(int TT, const uint8_t *ub, int64_t kn, const uint8_t *const *xr, float *const *yt,
                __mmask16 keep, int first)
{
    __m512 acc[K_TT];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(keep, yt[t]);
    for (int64_t i = 0; i < kn; i++, ub += U4) {
        __m512i isum[K_TT];
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
            isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            __m512i wq[8];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++)
                wq[k] = _mm512_load_si512((const void *)(ub + 64 * (8 * j + k)));
            const __m512i sc = _mm512_load_si512((const void *)(ub + U_SC + 64 * j));
#pragma GCC unroll 8
            for (int t = 0; t < TT; t++) {
                const uint8_t *xq = xr[t] + (size_t)i * Q8K + 4 + 32 * j;
                __m512i is = _mm512_setzero_si512(), is1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    is = _mm512_dpbusd_epi32(is, wq[k], bcast(xq + 4 * k));
                    is1 = _mm512_dpbusd_epi32(is1, wq[k + 4], bcast(xq + 16 + 4 * k));
                }
                isum[t] = _mm512_dpwssd_epi32(isum[t], k4_halves(is, is1), sc);
            }
        }
        __m512i mp[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            mp[k] = _mm512_load_si512((const void *)(ub + U4_MP + 64 * k));
        const __m512 dw = _mm512_load_ps(ub + U4_D), dm = _mm512_load_ps(ub + U4_D + 64);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
            acc[t] = k4_finish(acc[t], dw, dm, mp, xr[t] + (size_t)i * Q8K, isum[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
}

/* Two unpacked groups (u0, u1) x TT tokens: each broadcast activation word
 * serves 32 rows. The accumulators live in y (yt[t]: group 0's 16 outputs,
 * group 1's follow), loaded and stored once per superblock: the registers
 * hold both groups' quants of a sub-block and the tokens' integer sums. */
AI void k4_tile2(int TT, const uint8_t *u0, const uint8_t *u1, int64_t kn,
                 const uint8_t *const *xr, const int32_t *const *pt, float *const *yt, int first)
{
    for (int64_t i = 0; i < kn; i++, u0 += U4, u1 += U4) {
        __m512i s0[4], s1[4];
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++)
            s0[t] = s1[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            __m512i w0[8], w1[8];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                w0[k] = _mm512_load_si512((const void *)(u0 + 64 * (8 * j + k)));
                w1[k] = _mm512_load_si512((const void *)(u1 + 64 * (8 * j + k)));
            }
#pragma GCC unroll 4
            for (int t = 0; t < TT; t++) {
                const uint8_t *xq = xr[t] + (size_t)i * Q8K + 4 + 32 * j;
                __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
                __m512i b0 = _mm512_setzero_si512(), b1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const __m512i xa = bcast(xq + 4 * k), xb = bcast(xq + 16 + 4 * k);
                    a0 = _mm512_dpbusd_epi32(a0, w0[k], xa);
                    a1 = _mm512_dpbusd_epi32(a1, w1[k], xa);
                    b0 = _mm512_dpbusd_epi32(b0, w0[k + 4], xb);
                    b1 = _mm512_dpbusd_epi32(b1, w1[k + 4], xb);
                }
                s0[t] = _mm512_dpwssd_epi32(s0[t], k4_halves(a0, b0),
                                            _mm512_load_si512((const void *)(u0 + U_SC + 64 * j)));
                s1[t] = _mm512_dpwssd_epi32(s1[t], k4_halves(a1, b1),
                                            _mm512_load_si512((const void *)(u1 + U_SC + 64 * j)));
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            const uint8_t *xb = xr[t] + (size_t)i * Q8K;
            const int init = first && i == 0;
            __m512 a0 = init ? _mm512_setzero_ps() : _mm512_loadu_ps(yt[t]);
            __m512 a1 = init ? _mm512_setzero_ps() : _mm512_loadu_ps(yt[t] + 16);
            const int32_t *pr = pt[t] + 4 * i; /* the block's bsum pairs, made once */
            a0 = k4_finish_pr(a0, _mm512_load_ps(u0 + U4_D), _mm512_load_ps(u0 + U4_D + 64),
                              (const __m512i *)(u0 + U4_MP), xb, pr, s0[t]);
            a1 = k4_finish_pr(a1, _mm512_load_ps(u1 + U4_D), _mm512_load_ps(u1 + U4_D + 64),
                              (const __m512i *)(u1 + U4_MP), xb, pr, s1[t]);
            _mm512_storeu_ps(yt[t], a0);
            _mm512_storeu_ps(yt[t] + 16, a1);
        }
    }
}

/* ---- Q6_K ------------------------------------------------------------------- */

/* Where superblock i's parts sit in a group of nb (ref/packed_k.c: pairs of
 * superblocks, scales and d first; a last odd one alone). */
#define K6_QB 3072
AI size_t k6_scales_at(int64_t i)
{
    return (size_t)(i >> 1) * (2 * K6_SB) + (size_t)(i & 1) * 256;
}

AI size_t k6_d_at(int64_t nb, int64_t i)
{
    return (size_t)(i >> 1) * (2 * K6_SB) + (i / 2 * 2 + 1 < nb ? 512 + (size_t)(i & 1) * 32 : 256);
}

AI size_t k6_quants_at(int64_t nb, int64_t i)
{
    return (size_t)(i >> 1) * (2 * K6_SB) +
           (i / 2 * 2 + 1 < nb ? 576 + (size_t)(i & 1) * K6_QB : 288);
}

/* The quants (0..63) of dword m (< 8) of half h for the four quarters
 * (elements 128 h + 32 qq + 4 m..), from the packed ql and qh dwords. */
AI void k6_quants(const uint8_t *qb, int h, int m, __m512i q[4])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const uint8_t *v =
        qb + 64 * (24 * h + 3 * m); /* ql dwords 16 h + m, 16 h + 8 + m, qh's 8 h + m */
    const __m512i a = _mm512_loadu_si512((const void *)v);
    const __m512i b = _mm512_loadu_si512((const void *)(v + 64));
    const __m512i hb = _mm512_loadu_si512((const void *)(v + 128));
    /* quarter qq's two high bits sit at bits 2 qq of qh's bytes: to bits
     * 4-5 (word shifts: what crosses a byte lands outside 0x30) */
    q[0] = or_and(_mm512_and_si512(a, m4), _mm512_slli_epi16(hb, 4), m30);
    q[1] = or_and(_mm512_and_si512(b, m4), _mm512_slli_epi16(hb, 2), m30);
    q[2] = or_and(_mm512_and_si512(_mm512_srli_epi16(a, 4), m4), hb, m30);
    q[3] = or_and(_mm512_and_si512(_mm512_srli_epi16(b, 4), m4), _mm512_srli_epi16(hb, 2), m30);
}

/* -32 bsums[b] of an activation block: each sub-block chain's start value. */
AI void k6_bias(const uint8_t *xb, int32_t bias[16])
{
    __m512i s = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(xb + 260)));
    _mm512_storeu_si512((void *)bias,
                        _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, 5)));
}

AI __m512 k6_finish(__m512 acc, __m512 dw, const uint8_t *xb, __m512i isum)
{
    float dx;
    memcpy(&dx, xb, sizeof(dx));
    return _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(dx)), _mm512_cvtepi32_ps(isum), acc);
}

AI void k6_dec(int TT, const uint8_t *gp, int64_t nb, const uint8_t *const *xr, float *const *yt,
               __mmask16 keep)
{
    __m512 acc[K_DEC];
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *qb = gp + k6_quants_at(nb, i);
        const uint8_t *scb = gp + k6_scales_at(i);
        for (int l = 0; l < K6_SB; l += 64)
            _mm_prefetch((const char *)(gp + (size_t)i * K6_SB + K_PF + l), _MM_HINT_T0);
        int32_t bias[K_DEC][16];
        __m512i isum[K_DEC];
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            k6_bias(xr[t] + (size_t)i * Q8K, bias[t]);
            isum[t] = _mm512_setzero_si512();
        }
#pragma GCC unroll 1
        for (int hm = 0; hm < 4; hm++) { /* half h, dwords 4 mq .. 4 mq + 3 */
            const int h = hm >> 1, mq = hm & 1;
            __m512i is[4][K_DEC]; /* per quarter: sub-block 8 h + 2 qq + mq */
#pragma GCC unroll 4
            for (int qq = 0; qq < 4; qq++)
#pragma GCC unroll 4
                for (int t = 0; t < TT; t++)
                    is[qq][t] = _mm512_set1_epi32(bias[t][8 * h + 2 * qq + mq]);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const int m = 4 * mq + k;
                __m512i q[4];
                k6_quants(qb, h, m, q);
#pragma GCC unroll 4
                for (int qq = 0; qq < 4; qq++)
#pragma GCC unroll 4
                    for (int t = 0; t < TT; t++)
                        is[qq][t] = _mm512_dpbusd_epi32(
                            is[qq][t], q[qq],
                            bcast(xr[t] + (size_t)i * Q8K + 4 + 128 * h + 32 * qq + 4 * m));
            }
#pragma GCC unroll 4
            for (int qq = 0; qq < 4; qq++) {
                const __m512i sc = _mm512_cvtepi8_epi32(
                    _mm_loadu_si128((const __m128i *)(scb + 16 * (8 * h + 2 * qq + mq))));
#pragma GCC unroll 4
                for (int t = 0; t < TT; t++)
                    isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(is[qq][t], sc));
            }
        }
        const __m512 dw =
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gp + k6_d_at(nb, i))));
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++)
            acc[t] = k6_finish(acc[t], dw, xr[t] + (size_t)i * Q8K, isum[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
        _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
}

AI void k6_unpack(const uint8_t *gp, int64_t nb, int64_t k0, int64_t kn, uint8_t *ub)
{
    for (int64_t i = k0; i < k0 + kn; i++, ub += U6) {
        const uint8_t *qb = gp + k6_quants_at(nb, i);
        const uint8_t *scb = gp + k6_scales_at(i);
        for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) {
                __m512i q[4];
                k6_quants(qb, h, m, q);
                /* elements 128 h + 32 qq + 4 m..: sub-block 8 h + 2 qq + m / 4,
                 * dword m % 4 of it */
#pragma GCC unroll 4
                for (int qq = 0; qq < 4; qq++)
                    _mm512_store_si512((void *)(ub + 64 * (32 * h + 8 * qq + m)), q[qq]);
            }
#pragma GCC unroll 16
        for (int b = 0; b < 16; b++)
            _mm512_store_si512((void *)(ub + U_SC + 64 * b), _mm512_cvtepi8_epi32(_mm_loadu_si128(
                                                                 (const __m128i *)(scb + 16 * b))));
        _mm512_store_ps(
            ub + U6_D, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gp + k6_d_at(nb, i)))));
    }
}

AI void k6_tile(int TT, const uint8_t *ub, int64_t kn, const uint8_t *const *xr, float *const *yt,
                __mmask16 keep, int first)
{
    __m512 acc[K_TT];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(keep, yt[t]);
    for (int64_t i = 0; i < kn; i++, ub += U6) {
        int32_t bias[K_TT][16];
        __m512i isum[K_TT];
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
            k6_bias(xr[t] + (size_t)i * Q8K, bias[t]);
            isum[t] = _mm512_setzero_si512();
        }
#pragma GCC unroll 1
        for (int b = 0; b < 16; b += 2) {
            __m512i wq[8];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++)
                wq[k] = _mm512_load_si512((const void *)(ub + 64 * (4 * b + k)));
            const __m512i sc0 = _mm512_load_si512((const void *)(ub + U_SC + 64 * b));
            const __m512i sc1 = _mm512_load_si512((const void *)(ub + U_SC + 64 * b + 64));
#pragma GCC unroll 8
            for (int t = 0; t < TT; t++) {
                const uint8_t *xq = xr[t] + (size_t)i * Q8K + 4 + 16 * b;
                __m512i is = _mm512_set1_epi32(bias[t][b]);
                __m512i is1 = _mm512_set1_epi32(bias[t][b + 1]);
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    is = _mm512_dpbusd_epi32(is, wq[k], bcast(xq + 4 * k));
                    is1 = _mm512_dpbusd_epi32(is1, wq[k + 4], bcast(xq + 16 + 4 * k));
                }
                isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(_mm512_mullo_epi32(is, sc0),
                                                                     _mm512_mullo_epi32(is1, sc1)));
            }
        }
        const __m512 dw = _mm512_load_ps(ub + U6_D);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
            acc[t] = k6_finish(acc[t], dw, xr[t] + (size_t)i * Q8K, isum[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        _mm512_mask_storeu_ps(yt[t], keep, acc[t]);
}

/* ---- drivers ------------------------------------------------------------------ */

AI __mmask16 group_keep(int64_t g, int64_t r0, int64_t r1)
{
    const int64_t a = g * 16 > r0 ? g * 16 : r0, b = g * 16 + 16 < r1 ? g * 16 + 16 : r1;
    return (__mmask16)(((1u << (b - a)) - 1) << (a - g * 16));
}

/* One decode group and one prefill tile, with the token count as a
 * constant in each call so that the kernels' token loops unroll. */
static void dec_group(int q6, int tt, const uint8_t *gp, int64_t nb, const uint8_t *const *xr,
                      float *const *yt, __mmask16 keep)
{
    switch (tt) {
    case 4:
        q6 ? k6_dec(4, gp, nb, xr, yt, keep) : k4_dec(4, gp, nb, xr, yt, keep);
        break;
    case 3:
        q6 ? k6_dec(3, gp, nb, xr, yt, keep) : k4_dec(3, gp, nb, xr, yt, keep);
        break;
    case 2:
        q6 ? k6_dec(2, gp, nb, xr, yt, keep) : k4_dec(2, gp, nb, xr, yt, keep);
        break;
    default:
        q6 ? k6_dec(1, gp, nb, xr, yt, keep) : k4_dec(1, gp, nb, xr, yt, keep);
    }
}

static void tile(int q6, int tt, const uint8_t *ub, int64_t kn, const uint8_t *const *xr,
                 float *const *yt, __mmask16 keep, int first)
{
    switch (tt) {
    case 6:
        q6 ? k6_tile(6, ub, kn, xr, yt, keep, first) : k4_tile(6, ub, kn, xr, yt, keep, first);
        break;
    case 5:
        q6 ? k6_tile(5, ub, kn, xr, yt, keep, first) : k4_tile(5, ub, kn, xr, yt, keep, first);
        break;
    case 4:
        q6 ? k6_tile(4, ub, kn, xr, yt, keep, first) : k4_tile(4, ub, kn, xr, yt, keep, first);
        break;
    case 3:
        q6 ? k6_tile(3, ub, kn, xr, yt, keep, first) : k4_tile(3, ub, kn, xr, yt, keep, first);
        break;
    case 2:
        q6 ? k6_tile(2, ub, kn, xr, yt, keep, first) : k4_tile(2, ub, kn, xr, yt, keep, first);
        break;
    default:
        q6 ? k6_tile(1, ub, kn, xr, yt, keep, first) : k4_tile(1, ub, kn, xr, yt, keep, first);
    }
}

static void tile2(int tt, const uint8_t *u0, const uint8_t *u1, int64_t kn,
                  const uint8_t *const *xr, const int32_t *const *pt, float *const *yt, int first)
{
    switch (tt) {
    case 4: k4_tile2(4, u0, u1, kn, xr, pt, yt, first); break;
    case 3: k4_tile2(3, u0, u1, kn, xr, pt, yt, first); break;
    case 2: k4_tile2(2, u0, u1, kn, xr, pt, yt, first); break;
    default: k4_tile2(1, u0, u1, kn, xr, pt, yt, first);
    }
}

AI void k_decode(int q6, int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                 size_t x_stride, int n_tok, float *y, size_t y_stride)
{
    const int64_t nb = n / CAI_QK_K;
    const size_t gsz = (size_t)nb * (q6 ? K6_SB : K4_SB);
    for (int t0 = 0; t0 < n_tok; t0 += K_DEC) {
        const int tt = n_tok - t0 < K_DEC ? n_tok - t0 : K_DEC;
        const uint8_t *xr[K_DEC];
        for (int t = 0; t < K_DEC; t++)
            xr[t] = (const uint8_t *)x + (size_t)(t0 + (t < tt ? t : tt - 1)) * x_stride;
        for (int64_t g = r0 / 16; g < (r1 + 15) / 16; g++) {
            const uint8_t *gp = (const uint8_t *)wp + (size_t)g * gsz;
            const __mmask16 keep = group_keep(g, r0, r1);
            float *yt[K_DEC];
            for (int t = 0; t < K_DEC; t++)
                yt[t] = y + (size_t)(t0 + (t < tt ? t : tt - 1)) * y_stride + (size_t)g * 16;
            dec_group(q6, tt, gp, nb, xr, yt, keep);
        }
    }
}

AI void k_prefill(int q6, int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                  size_t x_stride, int n_tok, float *y, size_t y_stride, uint8_t *ub)
{
    const int64_t nb = n / CAI_QK_K;
    const size_t gsz = (size_t)nb * (q6 ? K6_SB : K4_SB), usz = q6 ? U6 : U4;
    /* K chunk: as much as fits the scratch (all of K up to K_KC superblocks) */
    int64_t kc = (int64_t)(CAI__MM_SCRATCH_BYTES / (2 * usz)); /* room for two groups */
    kc = kc > K_KC ? K_KC : kc;
    kc = kc > nb ? nb : kc;
    /* token block: its activations of one K chunk within K_L2 */
    int64_t tbm = K_L2 / (kc * Q8K);
    tbm = tbm < K_TB_MIN ? K_TB_MIN : tbm > K_TB ? K_TB : tbm;
    tbm -= tbm % K_TT;
    int32_t prs[K_TB][K_KC][4]; /* Q4_K: each (token, superblock)'s bsum pairs */
    for (int tb = 0; tb < n_tok; tb += (int)tbm) {
        const int tbn = n_tok - tb < tbm ? n_tok - tb : (int)tbm;
        for (int64_t k0 = 0; k0 < nb; k0 += kc) {
            const int64_t kn = nb - k0 < kc ? nb - k0 : kc;
            const int64_t g1 = (r1 + 15) / 16;
            const int n_tiles = (tbn + K_TT - 1) / K_TT;
            /* the K chunk's bytes in a group (Q6_K's pairs: k0 is even,
             * k0 + kn even or nb) */
            const size_t c0 = (size_t)k0 * (gsz / (size_t)nb), cn = (size_t)kn * (gsz / (size_t)nb);
            int64_t g = r0 / 16;
            /* the token block's bsum pairs of this K chunk, once for all
             * the group pairs below (k4_finish would redo them per pair);
             * only when there is a pair (the loop's own condition) */
            if (!q6 && g + 1 < g1 && g * 16 >= r0 && g * 16 + 32 <= r1)
                for (int t = 0; t < tbn; t++)
                    for (int64_t i = 0; i < kn; i++)
                        k4_bsum_pairs((const uint8_t *)x + (size_t)(tb + t) * x_stride +
                                          (size_t)(k0 + i) * Q8K,
                                      prs[t][i]);
            /* pairs of whole Q4_K groups, 4 tokens at a time */
            for (; !q6 && g + 1 < g1 && g * 16 >= r0 && g * 16 + 32 <= r1; g += 2) {
                const uint8_t *gp = (const uint8_t *)wp + (size_t)g * gsz;
                uint8_t *ub1 = ub + (size_t)kn * U4;
                k4_unpack(gp, k0, kn, ub);
                k4_unpack(gp + gsz, k0, kn, ub1);
                const int n_t4 = (tbn + 3) / 4;
                for (int t0 = 0; t0 < tbn; t0 += 4) {
                    const int tt = tbn - t0 < 4 ? tbn - t0 : 4;
                    for (int64_t h = g + 2; h < g + 4 && h < g1; h++) /* the next pair's chunks */
                        prefetch_slice((const uint8_t *)wp + (size_t)h * gsz + c0, cn, t0 / 4,
                                            n_t4);
                    const uint8_t *xr[4];
                    const int32_t *pt[4];
                    float *yt[4];
                    for (int t = 0; t < 4; t++) {
                        const int tc = tb + t0 + (t < tt ? t : tt - 1);
                        xr[t] = (const uint8_t *)x + (size_t)tc * x_stride + (size_t)k0 * Q8K;
                        pt[t] = &prs[tc - tb][0][0];
                        yt[t] = y + (size_t)tc * y_stride + (size_t)g * 16;
                    }
                    tile2(tt, ub, ub1, kn, xr, pt, yt, k0 == 0);
                }
            }
            for (; g < g1; g++) {
                const uint8_t *gp = (const uint8_t *)wp + (size_t)g * gsz;
                const __mmask16 keep = group_keep(g, r0, r1);
                if (q6)
                    k6_unpack(gp, nb, k0, kn, ub);
                else
                    k4_unpack(gp, k0, kn, ub);
                for (int t0 = 0; t0 < tbn; t0 += K_TT) {
                    const int tt = tbn - t0 < K_TT ? tbn - t0 : K_TT;
                    if (g + 1 < g1)
                        prefetch_slice(gp + gsz + c0, cn, t0 / K_TT, n_tiles);
                    const uint8_t *xr[K_TT];
                    float *yt[K_TT];
                    for (int t = 0; t < K_TT; t++) {
                        const int tc = tb + t0 + (t < tt ? t : tt - 1);
                        xr[t] = (const uint8_t *)x + (size_t)tc * x_stride + (size_t)k0 * Q8K;
                        yt[t] = y + (size_t)tc * y_stride + (size_t)g * 16;
                    }
                    tile(q6, tt, ub, kn, xr, yt, keep, k0 == 0);
                }
            }
        }
    }
}

/* ---- packing ------------------------------------------------------------------ */

/* The slot of dword j of ql ++ qh (ref's cai__packed_q6_k_slot). */
AI int k6_slot(int j)
{
    return j < 32 ? 24 * (j / 16) + 3 * (j % 8) + (j % 16) / 8
                  : 24 * ((j - 32) / 8) + 3 * (j % 8) + 2;
}

AI void k_pack(int q6, int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
               int64_t g1, void *dst)
{
    const int64_t nb = n / CAI_QK_K;
    const size_t bs = q6 ? 210 : 144, group = (size_t)nb * bs * 16;
    uint8_t *out = dst;
    for (int64_t g = g0; g < g1; g++, out += group) {
        if (n_rows - g * 16 < 16) { /* the last, partial group: ref's code zero-pads it */
            cai__kernels_ref.type[q6 ? CAI_TYPE_Q6_K : CAI_TYPE_Q4_K].pack(n, w, w_stride, n_rows,
                                                                           g, g + 1, out);
            continue;
        }
        const uint8_t *blk[16];
        for (int64_t i = 0; i < nb; i++) {
            for (int r = 0; r < 16; r++)
                blk[r] = (const uint8_t *)w + (size_t)(g * 16 + r) * w_stride + (size_t)i * bs;
            if (q6) {
                uint8_t *q = out + k6_quants_at(nb, i);
                cai__packed_q6_k_scales(blk, out + k6_scales_at(i), out + k6_d_at(nb, i));
                for (int j = 0; j < 12; j++) { /* ql ++ qh: the block's first 192 bytes */
                    __m512i v[4];
                    cai__x16_words(blk, (size_t)16 * j, v);
                    for (int c = 0; c < 4; c++)
                        _mm512_storeu_si512((void *)(q + 64 * k6_slot(4 * j + c)), v[c]);
                }
            } else {
                uint8_t *sb = out + (size_t)i * K4_SB;
                cai__packed_q4_k_header(blk, sb);
                for (int j = 0; j < 8; j++) {
                    __m512i v[4];
                    cai__x16_words(blk, 16 + (size_t)16 * j, v);
                    for (int c = 0; c < 4; c++)
                        _mm512_storeu_si512((void *)(sb + 256 + 256 * j + 64 * c), v[c]);
                }
            }
        }
    }
}

/* ---- entry points --------------------------------------------------------------- */

AI void k_mm(int q6, int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
             size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)
{
    if (scratch && n_tok > K_DEC)
        k_prefill(q6, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);
    else
        k_decode(q6, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride);
}

void cai__avx512_q4_k_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                           int64_t g1, void *dst)
{
    k_pack(0, n, w, w_stride, n_rows, g0, g1, dst);
}

void cai__avx512_q6_k_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                           int64_t g1, void *dst)
{
    k_pack(1, n, w, w_stride, n_rows, g0, g1, dst);
}

void cai__avx512_q4_k_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                                size_t x_stride, int n_tok, float *y, size_t y_stride,
                                void *scratch)
{
    k_mm(0, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);
}

void cai__avx512_q6_k_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                                size_t x_stride, int n_tok, float *y, size_t y_stride,
                                void *scratch)
{
    k_mm(1, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride, scratch);
}

#endif /* __x86_64__ */
