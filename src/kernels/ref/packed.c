/* packed.c: the packed weight layouts ("x16") and their reference kernels.
 *
 * A packed matrix keeps the file's bits, rearranged so that one 512-bit
 * vpdpbusd against a broadcast activation dword computes 16 rows at once,
 * with no per-block horizontal sums and no repacking per call. It is made
 * once per model (cai__model_pack) and has exactly the size of the original
 * rows (16 * row_bytes per group; a last partial group is zero-padded).
 *
 * Layout of one type with QB quant bytes per 16-row block (Q4_0: 256,
 * Q5_0: 320, Q8_0: 512): rows are grouped by 16; group g starts at
 * g * 16 * row_bytes; inside a group the blocks come in pairs, each pair
 * stored as
 *     quants of block 2p (QB), quants of block 2p+1 (QB),
 *     scales of block 2p (32), scales of block 2p+1 (32)
 * (a last unpaired block: quants, then scales), so every quant vector of an
 * even-length row starts on a 64-byte line. Scales: the 16 rows' f16 d in
 * row order. Quants: byte 64 j + 4 r + c is row r's quant byte 4 j + c:
 *     Q4_0, Q5_0: qs[4 j + c] (j < 4): low nibbles are elements 4j..4j+3,
 *           high nibbles elements 16+4j..16+4j+3;
 *     Q8_0: qs[4 j + c] + 128 as an unsigned byte (j < 8).
 * Q5_0 then has eight 64-bit masks (bytes 256..319), one per nibble half
 * of each quant vector: bit 4 r + c of mask 2 j (low nibbles of vector j)
 * is the fifth bit of row r's element 4 j + c, of mask 2 j + 1 (high
 * nibbles) that of element 16 + 4 j + c, so a masked byte add puts the
 * fifth bits in place for all 16 rows.
 * mm_packed computes every output in vec_dot's order (chain_fma): the same
 * bits as mm on the original rows. */
#include <string.h>

#include "ref.h"

static int qb_bytes(uint32_t type)
{
    return type == CAI_TYPE_Q4_0 ? 256 : type == CAI_TYPE_Q5_0 ? 320 : 512;
}

static size_t block_bytes(uint32_t type)
{
    return type == CAI_TYPE_Q4_0   ? sizeof(struct cai_block_q4_0)
           : type == CAI_TYPE_Q5_0 ? sizeof(struct cai_block_q5_0)
                                   : sizeof(struct cai_block_q8_0);
}

/* Offset of the quant bytes in a file block (after d, and qh for Q5_0). */
static int qs_offset(uint32_t type)
{
    return type == CAI_TYPE_Q5_0 ? 6 : 2;
}

size_t cai__packed_quants_offset(uint32_t type, int64_t nb, int64_t i)
{
    const size_t qb = (size_t)qb_bytes(type), pair = 2 * (qb + 32);
    (void)nb;
    return (size_t)(i / 2) * pair + (size_t)(i % 2) * qb;
}

size_t cai__packed_scales_offset(uint32_t type, int64_t nb, int64_t i)
{
    const size_t qb = (size_t)qb_bytes(type), pair = 2 * (qb + 32);
    const int paired = i / 2 * 2 + 1 < nb;
    return (size_t)(i / 2) * pair + (paired ? 2 * qb + (size_t)(i % 2) * 32 : qb);
}

static uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Rows [16 g0, 16 g1) of w (n_rows rows of n elements, w_stride bytes
 * apart) into dst, which points at group g0's place in the packed matrix. */
static void pack_groups(uint32_t type, int64_t n, const void *w, size_t w_stride, int64_t n_rows,
                        int64_t g0, int64_t g1, void *dst)
{
    const int64_t nb = n / CAI_QK;
    const size_t bs = block_bytes(type), group = (size_t)nb * bs * 16;
    const int qo = qs_offset(type), nw = type == CAI_TYPE_Q8_0 ? 8 : 4;
    uint8_t *out = dst;
    for (int64_t g = g0; g < g1; g++, out += group) {
        memset(out, 0, group);
        for (int r = 0; r < 16 && g * 16 + r < n_rows; r++) {
            const uint8_t *row = (const uint8_t *)w + (size_t)(g * 16 + r) * w_stride;
            for (int64_t i = 0; i < nb; i++) {
                const uint8_t *b = row + (size_t)i * bs; /* d first in every type */
                uint8_t *q = out + cai__packed_quants_offset(type, nb, i);
                memcpy(out + cai__packed_scales_offset(type, nb, i) + 2 * r, b, 2);
                for (int j = 0; j < nw; j++)
                    for (int c = 0; c < 4; c++) {
                        uint8_t v = b[qo + 4 * j + c];
                        q[64 * j + 4 * r + c] = type == CAI_TYPE_Q8_0 ? (uint8_t)(v ^ 0x80) : v;
                    }
                if (type == CAI_TYPE_Q5_0) {
                    const uint32_t qh = load_u32(b + 2);
                    for (int j = 0; j < 4; j++)
                        for (int c = 0; c < 4; c++) {
                            int bit = 4 * r + c;
                            q[256 + 16 * j + bit / 8] |= (uint8_t)(((qh >> (4 * j + c)) & 1) << (bit % 8));
                            q[256 + 16 * j + 8 + bit / 8] |=
                                (uint8_t)(((qh >> (16 + 4 * j + c)) & 1) << (bit % 8));
                        }
                }
            }
        }
    }
}

/* Block i's quants of row rr (0..15) of a packed group, offsets applied. */
static void packed_block_q(uint32_t type, const uint8_t *q, int rr, int out[32])
{
    for (int j = 0; j < (type == CAI_TYPE_Q8_0 ? 8 : 4); j++)
        for (int c = 0; c < 4; c++) {
            uint8_t v = q[64 * j + 4 * rr + c];
            if (type == CAI_TYPE_Q8_0) {
                out[4 * j + c] = (int)v - 128;
            } else if (type == CAI_TYPE_Q4_0) {
                out[4 * j + c] = (v & 0x0f) - 8;
                out[16 + 4 * j + c] = (v >> 4) - 8;
            } else { /* Q5_0: the fifth bits from the masks */
                int bit = 4 * rr + c;
                int lo = (q[256 + 16 * j + bit / 8] >> (bit % 8)) & 1;
                int hi = (q[256 + 16 * j + 8 + bit / 8] >> (bit % 8)) & 1;
                out[4 * j + c] = ((v & 0x0f) | lo << 4) - 16;
                out[16 + 4 * j + c] = ((v >> 4) | hi << 4) - 16;
            }
        }
}

/* Row r of a packed matrix back in the original block layout. */
static void unpack_row(uint32_t type, int64_t n, const void *wp, int64_t r, void *dst)
{
    const int64_t nb = n / CAI_QK;
    const size_t bs = block_bytes(type);
    const uint8_t *g = (const uint8_t *)wp + (size_t)(r / 16) * (size_t)nb * bs * 16;
    const int rr = (int)(r % 16), qo = qs_offset(type);
    uint8_t *out = dst;
    for (int64_t i = 0; i < nb; i++, out += bs) {
        const uint8_t *q = g + cai__packed_quants_offset(type, nb, i);
        memcpy(out, g + cai__packed_scales_offset(type, nb, i) + 2 * rr, 2);
        int v[32];
        packed_block_q(type, q, rr, v);
        if (type == CAI_TYPE_Q8_0) {
            for (int k = 0; k < 32; k++)
                out[qo + k] = (uint8_t)(int8_t)v[k];
            continue;
        }
        const int off = type == CAI_TYPE_Q4_0 ? 8 : 16;
        uint32_t qh = 0;
        for (int k = 0; k < 16; k++) {
            int lo = v[k] + off, hi = v[16 + k] + off;
            out[qo + k] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
            qh |= (uint32_t)(lo >> 4) << k | (uint32_t)(hi >> 4) << (16 + k);
        }
        if (type == CAI_TYPE_Q5_0)
            memcpy(out + 2, &qh, 4);
    }
}

/* Each output's chain runs in y: y[t][r] = fma(d_w * d_x, isum, y[t][r])
 * over the blocks in order, from zero (vec_dot's order). */
static void mm_packed(uint32_t type, int64_t n, const void *wp, int64_t r0, int64_t r1,
                      const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride)
{
    const int64_t nb = n / CAI_QK;
    const size_t group = (size_t)nb * block_bytes(type) * 16;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *g = (const uint8_t *)wp + (size_t)(r / 16) * group;
        const int rr = (int)(r % 16);
        for (int t = 0; t < n_tok; t++)
            y[(size_t)t * y_stride + (size_t)r] = 0.0f;
        for (int64_t i = 0; i < nb; i++) {
            int q[32];
            packed_block_q(type, g + cai__packed_quants_offset(type, nb, i), rr, q);
            cai_half d;
            memcpy(&d, g + cai__packed_scales_offset(type, nb, i) + 2 * rr, 2);
            const float dw = cai__fp16_to_f32(d);
            for (int t = 0; t < n_tok; t++) {
                const struct cai_block_q8_0 *xb =
                    (const struct cai_block_q8_0 *)((const uint8_t *)x + (size_t)t * x_stride) + i;
                int isum = 0;
                for (int k = 0; k < CAI_QK; k++)
                    isum += q[k] * xb->qs[k];
                float *yo = &y[(size_t)t * y_stride + (size_t)r];
                *yo = fmaf(dw * cai__fp16_to_f32(xb->d), (float)isum, *yo);
            }
        }
    }
}

#define PACKED_ENTRY_POINTS(t, T)                                                                  \
    void cai__ref_##t##_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows,            \
                             int64_t g0, int64_t g1, void *dst)                                    \
    {                                                                                              \
        pack_groups(T, n, w, w_stride, n_rows, g0, g1, dst);                                       \
    }                                                                                              \
    void cai__ref_##t##_unpack_row(int64_t n, const void *wp, int64_t r, void *dst)                \
    {                                                                                              \
        unpack_row(T, n, wp, r, dst);                                                              \
    }                                                                                              \
    void cai__ref_##t##_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1,               \
                                  const void *x, size_t x_stride, int n_tok, float *y,             \
                                  size_t y_stride, void *scratch)                                  \
    {                                                                                              \
        (void)scratch;                                                                             \
        mm_packed(T, n, wp, r0, r1, x, x_stride, n_tok, y, y_stride);                              \
    }

PACKED_ENTRY_POINTS(q4_0, CAI_TYPE_Q4_0)
PACKED_ENTRY_POINTS(q5_0, CAI_TYPE_Q5_0)
PACKED_ENTRY_POINTS(q8_0, CAI_TYPE_Q8_0)
