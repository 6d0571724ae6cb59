/* quant_int.h: the quantizer's internal pieces (docs/QUANTIZATION.md).
 *
 *   qfmt.c     block formats: importance-weighted fits of a group's scales,
 *              code packing, row round-to-nearest, row rescaling
 *   gptq.c     error-compensating rounding with a calibration Hessian
 *   awq.c      activation-aware per-input-channel scales
 *   qforward.c a plain float forward pass of one layer over many tokens,
 *              with hook points where the quantizer sees each matmul input
 *   quantize.c the pipeline, the mixed-precision allocation and the writer
 *   sha256.c   the calibration digest
 *
 * Nothing here prints or exits. Matrices are row-major, W[n_out][n_in] as
 * GGUF stores weights (ne[0] = n_in is the row). */
#ifndef CAI_QUANT_INT_H
#define CAI_QUANT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../arch/model.h"
#include "../base/base.h"
#include "../base/pool.h"
#include "../kernels/kernels.h"
#include "../tensor/types.h"

/* ---- block formats (qfmt.c) ---------------------------------------------- */

#define CAI__QFMT_MAX_GROUP 256

/* One quantized format seen as "a group of `group` elements whose fitted
 * parameters give every element a grid scale[l] * q + offset[l] with the
 * integer code q in [qmin, qmax]". fit() chooses the parameters (stored in
 * the block's header bytes); pack() stores the codes. Rounding each element
 * to its nearest grid point and packing gives round-to-nearest; GPTQ picks
 * the codes one column at a time instead. */
struct cai__qfmt {
    uint32_t    type;        /* CAI_TYPE_* */
    const char *name;
    int         group;       /* elements fitted together: 32, or 256 for K formats */
    int         block_bytes; /* bytes of one group */
    int         qmin, qmax;
    /* x[group] with importance imp[group] (NULL: uniform). Writes the
     * header fields of blk and scale/offset of each element. */
    void (*fit)(const float *x, const float *imp, void *blk, float *scale, float *offset);
    /* Stores codes q[group] (each in [qmin, qmax]) into blk. */
    void (*pack)(void *blk, const int *q);
};

/* The format of a type, or NULL when this quantizer cannot produce it. */
const struct cai__qfmt *cai__qfmt_get(uint32_t type);
/* The nearest code of x on one element's grid. */
int cai__qfmt_code(const struct cai__qfmt *f, float x, float scale, float offset);
/* Round-to-nearest of a row of n (a multiple of f->group) elements with
 * importance imp[n] (NULL: uniform) into n / group blocks. */
void cai__qfmt_quantize_row(const struct cai__qfmt *f, const float *x, const float *imp, void *dst,
                            int64_t n);
/* Multiplies every value a row of `type` represents by factor (> 0) by
 * rescaling its blocks' scales (and minimums); codes are untouched. */
int cai__qfmt_scale_row(uint32_t type, void *row, int64_t n, float factor);
/* Bits per weight of a type (8 * block bytes / block elements). */
double cai__type_bpw(uint32_t type);

/* ---- GPTQ (gptq.c) ------------------------------------------------------- */

/* The upper-triangular U with U^T U = (H + damp * mean(diag H) * I)^-1, from
 * the n x n symmetric H (only read). Columns whose diag(H) is 0 (inputs never
 * active) get a unit diagonal first. Returns a malloc'd n*n float array (free
 * with cai__free) or NULL on failure (out of memory, H not positive definite
 * even after damping), with err set. */
float *cai__gptq_factor(const float *H, int64_t n, float damp, struct cai_error *err);

/* Quantizes W[n_out][n_in] to `f` column by column, spreading each column's
 * rounding error over the columns not yet quantized through U (from
 * cai__gptq_factor). Each group's parameters are fitted when the loop
 * reaches it, to the weights as updated so far, weighted by imp[n_in] (the
 * Hessian diagonal; NULL: uniform). W is overwritten (scratch). dst gets the
 * rows' blocks. Returns the sum over rows of the GPTQ loss (the damped
 * quadratic form of the error), or -1 when out of memory. Runs on `pool`
 * (may be NULL). */
double cai__gptq_quantize(const struct cai__qfmt *f, float *W, int64_t n_out, int64_t n_in,
                          const float *U, const float *imp, void *dst, struct cai_pool *pool);

/* e^T H e summed over the rows of E[n_rows][n] (H symmetric n x n); -1
 * when out of memory. */
double cai__quad_form_rows(const struct cai_kernels *k, const float *E, int64_t n_rows, int64_t n,
                           const float *H, struct cai_pool *pool);

/* ---- AWQ (awq.c) --------------------------------------------------------- */

/* One weight matrix that reads the input being scaled, with the format its
 * rows will be quantized to and the block size the engine quantizes its
 * input activations in (32 for q8_0/q8_1, 256 for q8_K; 0: not quantized). */
struct cai__awq_mat {
    const float             *w; /* [n_out][n_in] */
    int64_t                  n_out;
    const struct cai__qfmt  *fmt;
    int                      act_block;
};

/* The block size the engine's matmul quantizes a `type` weight's input
 * activations in (kernels' vec_dot_type), or 0 when it does not. */
int cai__act_block(const struct cai_kernels *k, uint32_t type);

/* Chooses per-input-channel scales s[n_in] for matrices that share one
 * input X[n_tok][n_in]: s = a^alpha / sqrt(max * min) with a[j] = mean |x_j|,
 * alpha in {0, 1/n_grid, ..., 1}. The alpha kept minimises the predicted
 * output error of the engine's computation Q(W diag(s)) q8(x / s):
 *   weight rounding  e^T H e (H = X^T X, e the rounding error of W diag(s)
 *                    mapped back by 1/s), measured on up to `sample_rows`
 *                    rows per matrix and scaled to all rows;
 *   activation rounding  sum_j |column j of W diag(s)|^2 * sum_t D_tj^2 / 12,
 *                    D_tj = the 8-bit step (block amax / 127) of x_t / s in
 *                    the block holding channel j (up to 512 tokens sampled).
 * `tie` (NULL: none) maps channel j to a representative channel tie[j]
 * whose scale it must share (grouped-query attention: the query heads of a
 * group read the same value channel). Writes the chosen alpha (0 means
 * s = 1: no scaling) and the ratio of its predicted error to alpha = 0's. */
int cai__awq_search(const struct cai_kernels *k, const struct cai__awq_mat *mats, int n_mats,
                    const float *X, int64_t n_tok, int64_t n_in, const float *absmean,
                    const float *H, const int32_t *tie, int n_grid, int sample_rows, float *s,
                    float *alpha_out, float *gain_out, struct cai_pool *pool,
                    struct cai_error *err);

/* The scales' home. The consumer matrices get W[:, j] * s_j and their
 * input x_j / s_j; the producer of x absorbs the 1 / s_j: an RMSNorm weight
 * (divide it by s), or the output rows of the matmul that made x. */

/* tie[col] for the attention-output input: column h*hd + d shares the scale
 * of (the first head of h's group)*hd + d, since all the query heads of a
 * group read value channel (h / group)*hd + d. */
void cai__awq_tie_gqa(int n_head, int n_head_kv, int head_dim, int32_t *tie);
/* W[r][j] *= s[j] (or /= with divide), for rows of n_in. */
void cai__awq_scale_cols(float *W, int64_t n_rows, int64_t n_in, const float *s, bool divide);
/* Divides producer output row i (rows of `type`, row_len elements each, and
 * bias[i] when bias is not NULL) by the scale of the consumer column it
 * feeds, s[(i / head_dim) * group * head_dim + i % head_dim]: the value
 * rows for attn_output (group = query heads per KV head), or with group 1
 * and head_dim = n_rows, row i <-> column i (ffn_up for ffn_down). Scales
 * quantized rows through their block scales (cai__qfmt_scale_row). */
int cai__awq_fold_rows(uint32_t type, void *rows, size_t row_bytes, int64_t n_rows, int64_t row_len,
                       const float *s, int group, int head_dim, float *bias);

/* ---- the float forward pass (qforward.c) --------------------------------- */

enum cai__qpoint {
    CAI__QP_ATTN = 0,  /* input of attn_q/k/v: rmsnorm(x) * attn_norm */
    CAI__QP_ATTN_OUT,  /* input of attn_output: the attention heads' output */
    CAI__QP_FFN,       /* input of ffn_gate/up: rmsnorm(x) * ffn_norm */
    CAI__QP_FFN_DOWN,  /* input of ffn_down: silu(gate) * up */
    CAI__QP_COUNT
};

/* f32 weights of one layer; rows of n_in. Biases may be NULL. */
struct cai__qlayer {
    const float *wq, *wk, *wv, *wo, *wg, *wu, *wd;
    const float *bq, *bk, *bv;
    const float *attn_norm, *ffn_norm;
};

/* Called with the input A[n_tok][n_in] of the matmuls at `point`, before
 * they run. It may change A (dividing channels by scales folded into the
 * weights) and the weight pointers of *lw the matmuls use. Nonzero stops. */
typedef int (*cai__qhook)(void *user, int layer, int point, float *A, int64_t n_tok, int64_t n_in,
                          struct cai__qlayer *lw);

/* Scratch for running layers over n_tok tokens made of sequences of
 * seq_len tokens each (positions restart at 0 in each). */
struct cai__qfwd {
    const struct cai__hparams *hp;
    const struct cai_kernels  *k;
    struct cai_pool           *pool;
    int64_t n_tok;
    int     seq_len;
    float  *xn, *q, *kk, *v, *att, *g, *u, *tmp, *inv_freq;
};

/* freq_factors: the model's optional rope_freqs (NULL when absent). */
int  cai__qfwd_init(struct cai__qfwd *f, const struct cai__hparams *hp, const float *freq_factors,
                    const struct cai_kernels *k, struct cai_pool *pool, int64_t n_tok, int seq_len,
                    struct cai_error *err);
void cai__qfwd_deinit(struct cai__qfwd *f);
/* x[n_tok][n_embd] += layer(x). The hook may be NULL. */
int cai__qfwd_layer(struct cai__qfwd *f, struct cai__qlayer *lw, int layer, float *x,
                    cai__qhook hook, void *user);
/* Y[n_tok][n_out] = A[n_tok][n_in] W^T (+ bias). */
void cai__qfwd_matmul(const struct cai_kernels *k, struct cai_pool *pool, const float *A,
                      int64_t n_tok, int64_t n_in, const float *W, int64_t n_out,
                      const float *bias, float *Y);
/* Adds A^T A to H[n_in][n_in] (when H is not NULL) and the column sums of
 * |A| to abssum[n_in] (when not NULL). */
int cai__qfwd_stats(const struct cai_kernels *k, struct cai_pool *pool, const float *A,
                    int64_t n_tok, int64_t n_in, float *H, float *abssum, struct cai_error *err);

/* ---- sha256.c ------------------------------------------------------------ */

void cai__sha256(const void *data, size_t n_bytes, uint8_t out[32]);

#endif /* CAI_QUANT_INT_H */
