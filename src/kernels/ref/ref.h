/* ref.h: the plain C reference kernels, shared by every kernel table.
 *
 * These are the specification: plain C11, no intrinsics, written for
 * reading. The SIMD tables point entries they do not vectorize at these
 * functions, and the tests compare every SIMD entry against them. Integer
 * dot products follow llama.cpp's numerics: per block, an exact integer sum
 * of products, then one float multiply by the two scales, plus the offset
 * terms from the activation's block sums (Q8_1 s, Q8_K bsums).
 *
 * Activation blocks (Q8_0, Q8_1, Q8_K) must be well formed as produced by
 * their from_f32: quants in [-127, 127], Q8_K bsums equal to the sums of
 * their 16 quants. Weight blocks may hold any bytes. */
#ifndef CAI_KERNELS_REF_H
#define CAI_KERNELS_REF_H

#include <math.h>
#include <stdint.h>

#include "../kernels.h"

/* Declares to_f32, from_f32, vec_dot and mm of one type, e.g. cai__ref_q4_0_to_f32. */
#define CAI__REF_TYPE_DECL(t)                                                                      \
    void  cai__ref_##t##_to_f32(const void *x, float *y, int64_t n);                               \
    void  cai__ref_##t##_from_f32(const float *x, void *y, int64_t n);                             \
    float cai__ref_##t##_vec_dot(int64_t n, const void *w, const void *x);                         \
    void  cai__ref_##t##_mm(int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1,     \
                            const void *x, size_t x_stride, int n_tok, float *y, size_t y_stride,  \
                            void *scratch);

CAI__REF_TYPE_DECL(f32)
CAI__REF_TYPE_DECL(f16)
CAI__REF_TYPE_DECL(bf16)
CAI__REF_TYPE_DECL(q4_0)
CAI__REF_TYPE_DECL(q4_1)
CAI__REF_TYPE_DECL(q5_0)
CAI__REF_TYPE_DECL(q5_1)
CAI__REF_TYPE_DECL(q8_0)
CAI__REF_TYPE_DECL(q8_1)
CAI__REF_TYPE_DECL(q4_k)
CAI__REF_TYPE_DECL(q5_k)
CAI__REF_TYPE_DECL(q6_k)
CAI__REF_TYPE_DECL(q8_k)

/* llama.cpp's order for reducing eight float lanes (its hsum_float_8):
 * ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)). */
static inline float cai__ref_hsum8(const float a[8])
{
    float r0 = a[0] + a[4], r1 = a[1] + a[5], r2 = a[2] + a[6], r3 = a[3] + a[7];
    return (r0 + r2) + (r1 + r3);
}

/* The order of _mm512_reduce_add_ps (as GCC implements it) on 16 lanes:
 * halves of 8, then of 4, then pairs (0,2),(1,3), then the two. */
static inline float cai__ref_hsum16(const float a[16])
{
    float t[8], q[4];
    for (int i = 0; i < 8; i++)
        t[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++)
        q[i] = t[i + 4] + t[i];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* exp(x) exactly as llama.cpp's vectorized ggml_v_expf computes it (an
 * Arm optimized-routines style polynomial, max error about 1.5 ulp), one
 * lane at a time; the SIMD tables compute the same operations, so all
 * agree bit for bit. */
static inline float cai__ref_expf_ggml(float x)
{
    const float r = 0x1.8p23f;
    float z = fmaf(x, 0x1.715476p+0f, r);
    float n = z - r;
    float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    float u = b * b;
    float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                        fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                   u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f)
        return n > 0.0f ? (float)INFINITY : 0.0f;
    return ldexpf(j, (int)n);
}

float cai__ref_dot_f32(const float *a, const float *b, int64_t n);
void  cai__ref_axpy_f32(float *y, float a, const float *x, int64_t n);
void  cai__ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
void  cai__ref_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox);
void  cai__ref_rmsnorm_n(float *y, size_t y_stride, const float *x, size_t x_stride,
                         const float *w, int64_t n, int n_tok, float eps);
void  cai__ref_softmax(float *x, int64_t n);
void  cai__ref_softmax_att(float *x, int64_t n, float scale, int64_t n_pad);
void  cai__ref_silu_mul(float *y, const float *g, const float *u, int64_t n);
void  cai__ref_gelu_mul(float *y, const float *g, const float *u, int64_t n);
float cai__ref_dot_f16_f32(const cai_half *a, const float *b, int64_t n);
void  cai__ref_axpy_f16(float *y, float a, const cai_half *x, int64_t n);
float cai__ref_dot_f16(const cai_half *a, const cai_half *b, int64_t n);
float cai__ref_dot_f16_chain(const cai_half *a, const cai_half *b, int64_t n);
void  cai__ref_dot_f16_n(const cai_half *a, size_t a_stride, int64_t n_vec, const cai_half *b,
                         int64_t n, float *out);
void  cai__ref_dot_f16_chain_n(const cai_half *a, size_t a_stride, int64_t n_vec,
                               const cai_half *b, int64_t n, float *out);
void  cai__ref_dot_f16_chain_mn(const cai_half *a, size_t a_stride, int64_t n_vec,
                                const float *b, size_t b_stride, int n_b, int64_t n, float *out,
                                size_t out_stride);
void  cai__ref_dot_f16_mn(const cai_half *a, size_t a_stride, int64_t n_vec, const float *b,
                          size_t b_stride, int n_b, int64_t n, float *out, size_t out_stride);
void  cai__ref_f32_to_f16(const float *x, cai_half *y, int64_t n);

/* The packed layouts (packed.c): pack and mm_packed of Q4_0, Q5_0, Q8_0, and
 * where block i's quants and scales sit inside a 16-row group of nb blocks. */
#define CAI__REF_PACKED_DECL(t)                                                                    \
    void cai__ref_##t##_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows,            \
                             int64_t g0, int64_t g1, void *dst);                                   \
    void cai__ref_##t##_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1,               \
                                  const void *x, size_t x_stride, int n_tok, float *y,             \
                                  size_t y_stride, void *scratch);                                 \
    void cai__ref_##t##_unpack_row(int64_t n, const void *wp, int64_t r, void *dst);
CAI__REF_PACKED_DECL(q4_0)
CAI__REF_PACKED_DECL(q5_0)
CAI__REF_PACKED_DECL(q8_0)
size_t cai__packed_quants_offset(uint32_t type, int64_t nb, int64_t i);
size_t cai__packed_scales_offset(uint32_t type, int64_t nb, int64_t i);
/* The K-quant layouts (packed_k.c): pack and mm_packed of Q4_K and Q6_K;
 * where superblock i's parts sit in a Q6_K group of nb superblocks; the
 * scale parts of one superblock of 16 rows (blk[r]: row r's block, NULL
 * for padding), for the SIMD packers. */
CAI__REF_PACKED_DECL(q4_k)
CAI__REF_PACKED_DECL(q6_k)
size_t cai__packed_q6_k_quants_offset(int64_t nb, int64_t i);
size_t cai__packed_q6_k_scales_offset(int64_t nb, int64_t i);
size_t cai__packed_q6_k_d_offset(int64_t nb, int64_t i);
int    cai__packed_q6_k_slot(int j);
void   cai__packed_q4_k_header(const uint8_t *const blk[16], uint8_t *dst);
void   cai__packed_q6_k_scales(const uint8_t *const blk[16], uint8_t *sc, uint8_t *d);

/* A type entry made of ref functions, e.g. CAI__REF_TYPE(q4_0, CAI_TYPE_Q8_0). */
#define CAI__REF_TYPE(t, vdt)                                                                      \
    {                                                                                              \
        .vec_dot_type = (vdt), .to_f32 = cai__ref_##t##_to_f32,                                    \
        .from_f32 = cai__ref_##t##_from_f32, .vec_dot = cai__ref_##t##_vec_dot,                    \
        .mm = cai__ref_##t##_mm,                                                                   \
    }
/* The same with the packed layout's kernels. */
#define CAI__REF_TYPE_PACKED(t, vdt)                                                               \
    {                                                                                              \
        .vec_dot_type = (vdt), .to_f32 = cai__ref_##t##_to_f32,                                    \
        .from_f32 = cai__ref_##t##_from_f32, .vec_dot = cai__ref_##t##_vec_dot,                    \
        .mm = cai__ref_##t##_mm, .pack = cai__ref_##t##_pack,                                      \
        .mm_packed = cai__ref_##t##_mm_packed, .unpack_row = cai__ref_##t##_unpack_row,            \
    }

/* The initializer of a whole table of ref functions named `isa_name`: the
 * ref table itself, and the SIMD tables in builds for other architectures. */
#define CAI__REF_KERNELS_INIT(isa_name)                                                            \
    {                                                                                              \
        .isa = (isa_name),                                                                         \
        .type =                                                                                    \
            {                                                                                      \
                [CAI_TYPE_F32] = CAI__REF_TYPE(f32, CAI_TYPE_F32),                                 \
                [CAI_TYPE_F16] = CAI__REF_TYPE(f16, CAI_TYPE_F32),                                 \
                [CAI_TYPE_BF16] = CAI__REF_TYPE(bf16, CAI_TYPE_F32),                               \
                [CAI_TYPE_Q4_0] = CAI__REF_TYPE_PACKED(q4_0, CAI_TYPE_Q8_0),                       \
                [CAI_TYPE_Q4_1] = CAI__REF_TYPE(q4_1, CAI_TYPE_Q8_1),                              \
                [CAI_TYPE_Q5_0] = CAI__REF_TYPE_PACKED(q5_0, CAI_TYPE_Q8_0),                       \
                [CAI_TYPE_Q5_1] = CAI__REF_TYPE(q5_1, CAI_TYPE_Q8_1),                              \
                [CAI_TYPE_Q8_0] = CAI__REF_TYPE_PACKED(q8_0, CAI_TYPE_Q8_0),                       \
                [CAI_TYPE_Q8_1] = CAI__REF_TYPE(q8_1, CAI_TYPE_Q8_1),                              \
                [CAI_TYPE_Q4_K] = CAI__REF_TYPE_PACKED(q4_k, CAI_TYPE_Q8_K),                       \
                [CAI_TYPE_Q5_K] = CAI__REF_TYPE(q5_k, CAI_TYPE_Q8_K),                              \
                [CAI_TYPE_Q6_K] = CAI__REF_TYPE_PACKED(q6_k, CAI_TYPE_Q8_K),                       \
                [CAI_TYPE_Q8_K] = CAI__REF_TYPE(q8_k, CAI_TYPE_Q8_K),                              \
            },                                                                                     \
        .dot_f32 = cai__ref_dot_f32, .axpy_f32 = cai__ref_axpy_f32, .rmsnorm = cai__ref_rmsnorm,   \
        .rmsnorm_n = cai__ref_rmsnorm_n, .rope = cai__ref_rope,                                    \
        .softmax = cai__ref_softmax, .softmax_att = cai__ref_softmax_att,                          \
        .silu_mul = cai__ref_silu_mul, .gelu_mul = cai__ref_gelu_mul,                              \
        .dot_f16_f32 = cai__ref_dot_f16_f32, .axpy_f16 = cai__ref_axpy_f16,                        \
        .dot_f16 = cai__ref_dot_f16, .dot_f16_chain = cai__ref_dot_f16_chain,                      \
        .dot_f16_n = cai__ref_dot_f16_n, .dot_f16_chain_n = cai__ref_dot_f16_chain_n,              \
        .dot_f16_chain_mn = cai__ref_dot_f16_chain_mn, .dot_f16_mn = cai__ref_dot_f16_mn,          \
        .f32_to_f16 = cai__ref_f32_to_f16,                                                         \
    }

/* Unpacks the 12-byte Q4_K/Q5_K scale field into 8 six-bit scales and 8
 * six-bit mins (ggml's get_scale_min_k4 for j = 0..7). */
static inline void cai__unpack_k4_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0f) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

#endif /* CAI_KERNELS_REF_H */
