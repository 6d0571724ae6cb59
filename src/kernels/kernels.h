/* kernels.h: the only interface the runtime sees to the compute kernels.
 *
 * One table per instruction set: "ref" (plain C, the oracle every other
 * variant is tested against), "avx2" and "avx512" (AVX-512 F/BW/VL/DQ with
 * VNNI). cai__kernels_get() picks the best table the CPU and OS support;
 * COREAI_ISA=ref|avx2|avx512 overrides it. A table entry a variant does not
 * implement points at the ref function, so every entry is always non-NULL
 * for the computed types.
 *
 * Matmuls on quantized weights work like this: the f32 activation row is
 * first converted with type[vdt].from_f32 (vdt = type[w].vec_dot_type, one of
 * Q8_0, Q8_1, Q8_K or F32), then type[w].vec_dot(n, w_row, x_row) gives one
 * output element; type[w].mm does the same for a block of rows and tokens.
 * All kernels are pure: no allocation, no locks, no state. */
#ifndef CAI_KERNELS_H
#define CAI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../tensor/types.h"

struct cai_type_kernels {
    /* Type the activation must be converted to for vec_dot (CAI_TYPE_*). */
    uint32_t vec_dot_type;
    /* Dequantize n elements (n % block == 0): x: [n/block] blocks -> y: [n] floats. */
    void (*to_f32)(const void *x, float *y, int64_t n);
    /* Quantize n floats (n % block == 0) into [n/block] blocks, round-to-nearest.
     * Present for every computed type (for weights it is the simple reference
     * quantizer used by tests and converters). */
    void (*from_f32)(const float *x, void *y, int64_t n);
    /* Dot product of n elements: w in this type, x in vec_dot_type. */
    float (*vec_dot)(int64_t n, const void *w, const void *x);
    /* Matrix product, bit for bit the same as vec_dot on every element:
     * for r in [r0, r1) and t in [0, n_tok),
     *     y[t * y_stride + r] = vec_dot(n, w + r * w_stride, x + t * x_stride)
     * (w_stride and x_stride in bytes, y_stride in floats). The SIMD tables
     * compute tiles of rows x tokens at once, each output with its own
     * accumulators in vec_dot's order, so weights are read once per tile.
     * scratch: NULL, or CAI__MM_SCRATCH_BYTES of 64-byte aligned memory the
     * call may use (one per thread); with it, many-token calls repack the
     * weights into a faster layout. Results never depend on it. */
    void (*mm)(int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1, const void *x,
               size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch);
    /* Packed weights (ref/packed.c, and ref/packed_k.c for the K-quants:
     * groups of 16 rows interleaved for 512-bit VNNI; the layout is the
     * type's, the same for every table).
     * NULL in a table that has no fast kernel for it: the runtime then keeps
     * using mm on the original rows.
     * pack: rows [16 g0, min(16 g1, n_rows)) of w into dst, group g0's place
     * in the packed matrix (cai__packed_bytes for all of it; rows past n_rows
     * are zeros). mm_packed: as mm, on the packed matrix wp, the same bits. */
    void (*pack)(int64_t n, const void *w, size_t w_stride, int64_t n_rows, int64_t g0,
                 int64_t g1, void *dst);
    void (*mm_packed)(int64_t n, const void *wp, int64_t r0, int64_t r1, const void *x,
                      size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch);
    /* Row r of a packed matrix back in the original layout (row_bytes at
     * dst); present wherever pack is. */
    void (*unpack_row)(int64_t n, const void *wp, int64_t r, void *dst);
};

/* Rows per group of the packed layouts. */
#define CAI__PACK_ROWS 16

/* Bytes of a packed matrix of n_rows rows of row_bytes each (whole groups). */
static inline size_t cai__packed_bytes(size_t row_bytes, int64_t n_rows)
{
    return (size_t)((n_rows + CAI__PACK_ROWS - 1) / CAI__PACK_ROWS) * CAI__PACK_ROWS * row_bytes;
}

/* Size of mm's optional per-thread workspace. */
#define CAI__MM_SCRATCH_BYTES ((size_t)512 * 1024)

/* An mm that calls vec_dot once per output (the definition of mm): the ref
 * table's, and a SIMD table's for types without a tiled kernel. */
#define CAI__MM_LOOP(name, vec_dot_fn)                                                             \
    void name(int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1, const void *x,    \
              size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch)                \
    {                                                                                              \
        (void)scratch;                                                                             \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            const void *wr = (const uint8_t *)w + (size_t)r * w_stride;                            \
            for (int t = 0; t < n_tok; t++)                                                        \
                y[(size_t)t * y_stride + (size_t)r] =                                              \
                    vec_dot_fn(n, wr, (const uint8_t *)x + (size_t)t * x_stride);                  \
        }                                                                                          \
    }

struct cai_kernels {
    const char *isa; /* "ref", "avx2", "avx512" */
    struct cai_type_kernels type[CAI_TYPE_COUNT];

    /* ---- f32 vector ops (n is any length) ---- */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    /* y[i] += a * x[i] */
    void (*axpy_f32)(float *y, float a, const float *x, int64_t n);
    /* y[i] = x[i] * w[i] / sqrt(mean(x^2) + eps); y may alias x. */
    void (*rmsnorm)(float *y, const float *x, const float *w, int64_t n, float eps);
    /* rmsnorm of n_tok rows (strides in floats), each bit for bit as
     * rmsnorm; several rows' sequential sums interleaved. */
    void (*rmsnorm_n)(float *y, size_t y_stride, const float *x, size_t x_stride, const float *w,
                      int64_t n, int n_tok, float eps);
    /* In-place softmax of x[0..n), max-subtracted. */
    void (*softmax)(float *x, int64_t n);
    /* Attention probabilities of a batch row, in one call: x[i] *= scale,
     * softmax, each probability rounded to f16 and back, x[n..n_pad) = 0;
     * bit for bit those steps done one after the other. */
    void (*softmax_att)(float *x, int64_t n, float scale, int64_t n_pad);
    /* Rotary embedding of n_heads vectors of head_dim floats at x, their
     * first n_rot elements in pairs (i, i + n_rot / 2) when neox, else
     * (2i, 2i + 1); cs[2i], cs[2i + 1]: cos and sin of pair i's angle. Each
     * pair: x0' = fma(x0, c, -(x1 * s)), x1' = fma(x0, s, x1 * c). */
    void (*rope)(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox);
    /* y[i] = silu(g[i]) * u[i]; silu(v) = v / (1 + exp(-v)). y may alias g. */
    void (*silu_mul)(float *y, const float *g, const float *u, int64_t n);
    /* y[i] = gelu(g[i]) * u[i], GELU in ggml's CPU form: g rounded to f16
     * indexes cai__gelu_table; 0 for g <= -10, g for g >= 10. y may alias g. */
    void (*gelu_mul)(float *y, const float *g, const float *u, int64_t n);

    /* ---- f16 helpers for the KV cache ---- */
    float (*dot_f16_f32)(const cai_half *a, const float *b, int64_t n);
    /* Dot product of two f16 vectors in llama.cpp's order (16-lane float
     * accumulators four wide over chunks of 64, reduced as (a0+a2)+(a1+a3)
     * then across lanes; the n % 64 tail added in double). Every table
     * returns the same bits, so attention matches llama.cpp's. */
    float (*dot_f16)(const cai_half *a, const cai_half *b, int64_t n);
    /* The same product as llama.cpp's batched f16 GEMM computes it: one
     * 16-lane accumulator chained over chunks of 16, then reduced across
     * lanes. n must be a multiple of 16. */
    float (*dot_f16_chain)(const cai_half *a, const cai_half *b, int64_t n);
    /* Many dot products at once, each bit for bit as the single function:
     * out[v] = dot_f16(a + v * a_stride, b, n) (resp. dot_f16_chain) for v in
     * [0, n_vec); a_stride in elements. Attention's K.Q over positions and
     * P.V over dimensions. */
    void (*dot_f16_n)(const cai_half *a, size_t a_stride, int64_t n_vec, const cai_half *b,
                      int64_t n, float *out);
    void (*dot_f16_chain_n)(const cai_half *a, size_t a_stride, int64_t n_vec,
                            const cai_half *b, int64_t n, float *out);
    /* dot_f16_chain's order with f32 right-hand vectors, many of them:
     * out[j * out_stride + v] = sum over the 16 lanes (reduced as
     * dot_f16_chain does) of lane l's chain acc = fma(a_v[i + l], b_j[i + l],
     * acc), i = 0, 16, .., n - 16; a_v = a + v * a_stride (f16), b_j = b + j *
     * b_stride (f32), v < n_vec, j < n_b, n a multiple of 16. With b_j
     * holding f16 values it equals dot_f16_chain(a_v, f16(b_j)) bit for bit.
     * Attention of batches: the query heads sharing a KV head (and their
     * probabilities) against one K (V) read. */
    void (*dot_f16_chain_mn)(const cai_half *a, size_t a_stride, int64_t n_vec, const float *b,
                             size_t b_stride, int n_b, int64_t n, float *out, size_t out_stride);
    /* dot_f16's order with f32 right-hand vectors, many of them:
     * out[j * out_stride + v] = lane accumulators acc[c][l] = fma(a_v[i + 16 c
     * + l], b_j[i + 16 c + l], acc[c][l]) over the chunks of 64, reduced as
     * (acc0 + acc2) + (acc1 + acc3) and across the lanes as dot_f16 does, plus
     * the n % 64 tail's float products added in double; a_v = a + v *
     * a_stride (f16), b_j = b + j * b_stride (f32). With b_j holding f16
     * values it equals dot_f16(a_v, f16(b_j)) bit for bit. Decode attention:
     * the query heads sharing a KV head (and their probabilities) against
     * one conversion of each K (V) row. */
    void (*dot_f16_mn)(const cai_half *a, size_t a_stride, int64_t n_vec, const float *b,
                       size_t b_stride, int n_b, int64_t n, float *out, size_t out_stride);
    /* y[i] += a * x[i] with x in f16 */
    void (*axpy_f16)(float *y, float a, const cai_half *x, int64_t n);
    void (*f32_to_f16)(const float *x, cai_half *y, int64_t n);
};

/* The f16 results of the tanh-form GELU for every f16 input (65536 entries
 * and one of padding, so a 4-byte gather at the last entry stays inside),
 * built once on first use (ref/ops.c). Thread-safe. */
const uint16_t *cai__gelu_table(void);

/* The tables. A table exists in every build; calling a SIMD one on a CPU
 * without the instructions is the caller's error: use cai__kernels_supported. */
extern const struct cai_kernels cai__kernels_ref;
extern const struct cai_kernels cai__kernels_avx2;
extern const struct cai_kernels cai__kernels_avx512;

/* True when the CPU and OS can run the table named `isa`. */
int cai__kernels_supported(const char *isa);
/* Returns the best supported table, or the one named by the environment
 * variable COREAI_ISA when set and supported. NULL only when COREAI_ISA names
 * an unknown or unsupported table (the caller reports it). Thread-safe. */
const struct cai_kernels *cai__kernels_get(void);
/* The table named `isa` if the host supports it, else NULL. */
const struct cai_kernels *cai__kernels_by_name(const char *isa);
/* The same table with every mm replaced by one vec_dot call per output (the
 * definition of mm) and no mm_packed (so the runtime uses the original
 * rows), for tests and benchmarks of the tiled kernels; NULL
 * when cai__kernels_by_name(isa) is. */
const struct cai_kernels *cai__kernels_loop_by_name(const char *isa);

#endif /* CAI_KERNELS_H */
