/* packed_k.c: the packed layouts of the K-quants Q4_K and Q6_K and their
 * reference kernels (packed.c explains packed weights in general).
 *
 * As there, rows come in groups of 16, group g at g * 16 * row_bytes, each
 * of exactly 16 * row_bytes (a last partial group zero-padded): the packed
 * copy replaces the file's rows byte for byte in size. Inside a group the
 * 16 rows' superblocks are interleaved so that one 512-bit vpdpbusd
 * against a broadcast activation dword works on 16 rows (zmm lane r = row
 * r), and each superblock's scales sit where a kernel unpacks them with a
 * few vector instructions for all 16 rows at once.
 *
 * Q4_K (144 bytes a row and superblock): superblock i of the group at
 * i * 2304, 64-byte aligned, as
 *     [0, 32)      d of rows 0..15 (f16)
 *     [32, 64)     dmin of rows 0..15 (f16)
 *     [64, 128)    scale low nibbles: byte 64 + 16 p + r =
 *                  (sc_p & 15) | (sc_{p+4} & 15) << 4        (p < 4)
 *     [128, 192)   min low nibbles: byte 128 + 32 q + 2 r + e =
 *                  (m_{2q+e} & 15) | (m_{2q+e+4} & 15) << 4  (q, e < 2)
 *     [192, 256)   high bits, a little-endian u32 per row at 192 + 4 r:
 *                  bits 16 e + 2 k: m_{2k+e} >> 4, bits 16 e + 8 + 2 k:
 *                  sc_{2k+e} >> 4 (two bits each; k, e < 2 resp. 4)
 *     [256, 2304)  quants: byte 256 + 64 j + 4 r + c = row r's qs[4 j + c]
 *                  (j < 32: nibbles as in the file, low = sub-block 2 (j/8),
 *                  high = sub-block 2 (j/8) + 1)
 * sc_j, m_j: the 6-bit scales and mins of cai__unpack_k4_scales. So a
 * kernel gets each sub-block's 16 scales as int32 lanes (zero-extend 16
 * bytes, mask or shift, or in two high bits) and each pair of mins as the
 * int16 pairs vpdpwssd wants (zero-extend 32 bytes to words, the same).
 *
 * Q6_K (210 bytes a row and superblock, not a multiple of 64): superblocks
 * in pairs of 6720 bytes,
 *     scales of 2p (256), scales of 2p+1 (256), d of 2p (32), d of 2p+1 (32),
 *     quants of 2p (3072), quants of 2p+1 (3072)
 * (a last unpaired superblock: scales, d, quants), so every quant vector
 * of a group starts on a 64-byte line when the group does (always, for an
 * even number of superblocks per row), and a decode reads the pair front
 * to back. Scales: byte 16 b + r = row r's scales[b] (b < 16); d: the 16
 * rows' f16 d in row order. Quants: 48 vectors of 64 bytes, vector v byte
 * 4 r + c = row r's byte 4 j + c of ql ++ qh (the file's bits in place)
 * for the dword j in slot v: for half h (< 2) and m (< 8), slots
 * 24 h + 3 m, +1, +2 hold ql's dwords 16 h + m, 16 h + 8 + m and qh's
 * dword 8 h + m, the three that make elements 128 h + 32 qq + 4 m + c
 * (qq < 4), so the vectors are consumed in memory order.
 *
 * mm_packed computes every output in vec_dot's order (kquants.c): exact
 * integer sums per superblock, then vec_dot's fmas; the same bits as mm on
 * the original rows. */
#include <stddef.h>
#include <string.h>

#include "ref.h"

#define K4_BLOCK 144
#define K4_SB    (16 * K4_BLOCK) /* bytes of one superblock of 16 rows */
#define K4_DMIN  32
#define K4_SCLO  64
#define K4_MNLO  128
#define K4_HI    192
#define K4_QS    256

#define K6_BLOCK 210
#define K6_QB    3072 /* quant bytes of one superblock of 16 rows */
#define K6_SCB   256  /* scale bytes */
#define K6_PAIR  (2 * 16 * K6_BLOCK)

size_t cai__packed_q6_k_scales_offset(int64_t nb, int64_t i)
{
    (void)nb; /* an unpaired superblock is even: at the pair's start too */
    return (size_t)(i / 2) * K6_PAIR + (size_t)(i % 2) * K6_SCB;
}

size_t cai__packed_q6_k_d_offset(int64_t nb, int64_t i)
{
    const int paired = i / 2 * 2 + 1 < nb;
    return (size_t)(i / 2) * K6_PAIR + (paired ? 2 * K6_SCB + (size_t)(i % 2) * 32 : K6_SCB);
}

size_t cai__packed_q6_k_quants_offset(int64_t nb, int64_t i)
{
    const int paired = i / 2 * 2 + 1 < nb;
    return (size_t)(i / 2) * K6_PAIR +
           (paired ? 2 * (K6_SCB + 32) + (size_t)(i % 2) * K6_QB : K6_SCB + 32);
}

/* The slot (vector) of dword j (< 48) of ql ++ qh in a packed superblock. */
int cai__packed_q6_k_slot(int j)
{
    return j < 32 ? 24 * (j / 16) + 3 * (j % 8) + (j % 16) / 8
                  : 24 * ((j - 32) / 8) + 3 * (j % 8) + 2;
}

/* The 256 header bytes of one packed Q4_K superblock from 16 rows' blocks
 * (blk[r]: row r's block; NULL for a padding row, whose fields stay 0). */
void cai__packed_q4_k_header(const uint8_t *const blk[16], uint8_t *dst)
{
    memset(dst, 0, K4_QS);
    for (int r = 0; r < 16; r++) {
        if (!blk[r])
            continue;
        const struct cai_block_q4_k *b = (const void *)blk[r];
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(b->scales, sc, mn);
        memcpy(dst + 2 * r, &b->d, 2);
        memcpy(dst + K4_DMIN + 2 * r, &b->dmin, 2);
        for (int p = 0; p < 4; p++)
            dst[K4_SCLO + 16 * p + r] = (uint8_t)((sc[p] & 15) | (sc[p + 4] & 15) << 4);
        uint32_t hi = 0;
        for (int e = 0; e < 2; e++) {
            for (int q = 0; q < 2; q++)
                dst[K4_MNLO + 32 * q + 2 * r + e] =
                    (uint8_t)((mn[2 * q + e] & 15) | (mn[2 * q + e + 4] & 15) << 4);
            for (int k = 0; k < 4; k++) {
                hi |= (uint32_t)(mn[2 * k + e] >> 4) << (16 * e + 2 * k);
                hi |= (uint32_t)(sc[2 * k + e] >> 4) << (16 * e + 8 + 2 * k);
            }
        }
        for (int c = 0; c < 4; c++)
            dst[K4_HI + 4 * r + c] = (uint8_t)(hi >> (8 * c));
    }
}

/* The scales and d of one packed Q6_K superblock (as the header above). */
void cai__packed_q6_k_scales(const uint8_t *const blk[16], uint8_t *sc, uint8_t *d)
{
    memset(sc, 0, K6_SCB);
    memset(d, 0, 32);
    for (int r = 0; r < 16; r++) {
        if (!blk[r])
            continue;
        const struct cai_block_q6_k *b = (const void *)blk[r];
        for (int j = 0; j < 16; j++)
            sc[16 * j + r] = (uint8_t)b->scales[j];
        memcpy(d + 2 * r, &b->d, 2);
    }
}

/* Rows [16 g0, 16 g1) of w into dst (group g0's place). */
static void pack_groups(uint32_t type, int64_t n, const void *w, size_t w_stride, int64_t n_rows,
                        int64_t g0, int64_t g1, void *dst)
{
    const int64_t nb = n / CAI_QK_K;
    const int q6 = type == CAI_TYPE_Q6_K;
    const size_t bs = q6 ? K6_BLOCK : K4_BLOCK, group = (size_t)nb * bs * 16;
    uint8_t *out = dst;
    for (int64_t g = g0; g < g1; g++, out += group) {
        memset(out, 0, group);
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *blk[16];
            for (int r = 0; r < 16; r++)
                blk[r] = g * 16 + r < n_rows
                             ? (const uint8_t *)w + (size_t)(g * 16 + r) * w_stride + (size_t)i * bs
                             : NULL;
            uint8_t *q;
            size_t qo; /* where the quant bytes start in the file's block */
            int nw;
            if (q6) {
                q = out + cai__packed_q6_k_quants_offset(nb, i);
                cai__packed_q6_k_scales(blk, out + cai__packed_q6_k_scales_offset(nb, i),
                                        out + cai__packed_q6_k_d_offset(nb, i));
                qo = offsetof(struct cai_block_q6_k, ql);
                nw = 48;
            } else {
                uint8_t *sb = out + (size_t)i * K4_SB;
                cai__packed_q4_k_header(blk, sb);
                q = sb + K4_QS;
                qo = offsetof(struct cai_block_q4_k, qs);
                nw = 32;
            }
            for (int r = 0; r < 16; r++) {
                if (!blk[r])
                    continue;
                const uint8_t *src = blk[r] + qo;
                for (int j = 0; j < nw; j++)
                    memcpy(q + 64 * (q6 ? cai__packed_q6_k_slot(j) : j) + 4 * r, src + 4 * j, 4);
            }
        }
    }
}

void cai__ref_q4_k_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                        int64_t g1, void *dst)
{
    pack_groups(CAI_TYPE_Q4_K, n, w, w_stride, n_rows, g0, g1, dst);
}

void cai__ref_q6_k_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                        int64_t g1, void *dst)
{
    pack_groups(CAI_TYPE_Q6_K, n, w, w_stride, n_rows, g0, g1, dst);
}

/* ---- reading the layouts back: the definition of the kernels ------------ */

static float h2f_at(const uint8_t *p)
{
    cai_half h;
    memcpy(&h, p, sizeof(h));
    return cai__fp16_to_f32(h);
}

/* Row r of a packed Q4_K superblock sb: its scales, mins and quants (one
 * per element, 0..15), as the file's block would give them. */
static void k4_row(const uint8_t *sb, int r, uint8_t sc[8], uint8_t mn[8], uint8_t q[256])
{
    uint32_t hi = 0;
    for (int c = 0; c < 4; c++)
        hi |= (uint32_t)sb[K4_HI + 4 * r + c] << (8 * c);
    for (int j = 0; j < 8; j++) {
        int k = j / 2, e = j % 2;
        uint8_t slo = sb[K4_SCLO + 16 * (j % 4) + r];
        uint8_t mlo = sb[K4_MNLO + 32 * (k % 2) + 2 * r + e];
        sc[j] = (uint8_t)((j < 4 ? slo & 15 : slo >> 4) | ((hi >> (16 * e + 8 + 2 * k)) & 3) << 4);
        mn[j] = (uint8_t)((k < 2 ? mlo & 15 : mlo >> 4) | ((hi >> (16 * e + 2 * k)) & 3) << 4);
    }
    for (int b = 0; b < 128; b++) { /* qs[b] of the file's block */
        uint8_t v = sb[K4_QS + 64 * (b / 4) + 4 * r + b % 4];
        int c = b / 32, l = b % 32;
        q[64 * c + l] = v & 15;
        q[64 * c + 32 + l] = v >> 4;
    }
}

/* Row r of a packed Q6_K superblock: quant (0..63) of element e, as q6_k_quant. */
static int k6_quant(const uint8_t *qb, int r, int e)
{
    int h = e / 128, rr = e % 128, quarter = rr / 32, l = rr % 32;
    int lb = 64 * h + l + (quarter & 1 ? 32 : 0), hb = 128 + 32 * h + l; /* (ql ++ qh) bytes */
    uint8_t lo = qb[64 * cai__packed_q6_k_slot(lb / 4) + 4 * r + lb % 4];
    uint8_t hi = qb[64 * cai__packed_q6_k_slot(hb / 4) + 4 * r + hb % 4];
    return (quarter & 2 ? lo >> 4 : lo & 15) | ((hi >> (2 * quarter)) & 3) << 4;
}

static void mm_packed(uint32_t type, int64_t n, const void *wp, int64_t r0, int64_t r1,
                      const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride)
{
    const int64_t nb = n / CAI_QK_K;
    const int q6 = type == CAI_TYPE_Q6_K;
    const size_t group = (size_t)nb * 16 * (q6 ? K6_BLOCK : K4_BLOCK);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *g = (const uint8_t *)wp + (size_t)(r / 16) * group;
        const int rg = (int)(r % 16);
        for (int t = 0; t < n_tok; t++) {
            const struct cai_block_q8_k *xb =
                (const void *)((const uint8_t *)x + (size_t)t * x_stride);
            float sumf = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                if (q6) { /* cai__ref_q6_k_vec_dot */
                    const uint8_t *qb = g + cai__packed_q6_k_quants_offset(nb, i);
                    const uint8_t *sc = g + cai__packed_q6_k_scales_offset(nb, i);
                    int sumi = 0;
                    for (int b = 0; b < 16; b++) {
                        int s = 0;
                        for (int l = 0; l < 16; l++)
                            s += (k6_quant(qb, rg, 16 * b + l) - 32) * xb[i].qs[16 * b + l];
                        sumi += (int8_t)sc[16 * b + rg] * s;
                    }
                    float d = h2f_at(g + cai__packed_q6_k_d_offset(nb, i) + 2 * rg);
                    sumf = fmaf(d * xb[i].d, (float)sumi, sumf);
                    continue;
                }
                /* cai__ref_q4_k_vec_dot */
                const uint8_t *sb = g + (size_t)i * K4_SB;
                uint8_t sc[8], mn[8], q[256];
                k4_row(sb, rg, sc, mn, q);
                int sumi = 0, summ = 0;
                for (int j = 0; j < 8; j++) {
                    int s = 0;
                    for (int l = 0; l < 32; l++)
                        s += q[32 * j + l] * xb[i].qs[32 * j + l];
                    sumi += sc[j] * s;
                    summ += mn[j] * (xb[i].bsums[2 * j] + xb[i].bsums[2 * j + 1]);
                }
                float d = h2f_at(sb + 2 * rg) * xb[i].d;
                float dmin = h2f_at(sb + K4_DMIN + 2 * rg) * xb[i].d;
                sumf = fmaf(d, (float)sumi, sumf);
                sumf = fmaf(-dmin, (float)summ, sumf);
            }
            y[(size_t)t * y_stride + (size_t)r] = sumf;
        }
    }
}

void cai__ref_q4_k_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                             size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)
{
    (void)scratch;
    mm_packed(CAI_TYPE_Q4_K, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride);
}

void cai__ref_q6_k_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                             size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)
{
    (void)scratch;
    mm_packed(CAI_TYPE_Q6_K, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride);
}

/* Row r of a packed matrix back in the file's block layout. */
void cai__ref_q4_k_unpack_row(int64_t n, const void *wp, int64_t r, void *dst)
{
    const int64_t nb = n / CAI_QK_K;
    const uint8_t *g = (const uint8_t *)wp + (size_t)(r / 16) * (size_t)nb * K4_SB;
    const int rr = (int)(r % 16);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *sb = g + (size_t)i * K4_SB;
        struct cai_block_q4_k *b = (struct cai_block_q4_k *)dst + i;
        uint8_t sc[8], mn[8], q[256];
        k4_row(sb, rr, sc, mn, q);
        memcpy(&b->d, sb + 2 * rr, 2);
        memcpy(&b->dmin, sb + K4_DMIN + 2 * rr, 2);
        for (int j = 0; j < 4; j++) { /* the inverse of cai__unpack_k4_scales */
            b->scales[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
            b->scales[j + 4] = (uint8_t)((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
            b->scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
        }
        for (int k = 0; k < 128; k++)
            b->qs[k] = sb[K4_QS + 64 * (k / 4) + 4 * rr + k % 4];
    }
}

void cai__ref_q6_k_unpack_row(int64_t n, const void *wp, int64_t r, void *dst)
{
    const int64_t nb = n / CAI_QK_K;
    const uint8_t *g = (const uint8_t *)wp + (size_t)(r / 16) * (size_t)nb * 16 * K6_BLOCK;
    const int rr = (int)(r % 16);
    for (int64_t i = 0; i < nb; i++) {
        struct cai_block_q6_k *b = (struct cai_block_q6_k *)dst + i;
        const uint8_t *q = g + cai__packed_q6_k_quants_offset(nb, i);
        uint8_t qlh[192];
        for (int j = 0; j < 48; j++)
            memcpy(qlh + 4 * j, q + 64 * cai__packed_q6_k_slot(j) + 4 * rr, 4);
        memcpy(b->ql, qlh, 128);
        memcpy(b->qh, qlh + 128, 64);
        const uint8_t *sc = g + cai__packed_q6_k_scales_offset(nb, i);
        for (int j = 0; j < 16; j++)
            b->scales[j] = (int8_t)sc[16 * j + rr];
        memcpy(&b->d, g + cai__packed_q6_k_d_offset(nb, i) + 2 * rr, 2);
    }
}
