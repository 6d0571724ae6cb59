/* simd.h: the classic engine's AVX-512 kernels (simd.c).
 *
 * Every model type keeps its plain C evaluation (the reference, run when the
 * CPU has no AVX-512 or COREAI_ISA names another table) and, when
 * `cml_model.simd` is set at load, evaluates through these kernels instead,
 * for single rows and batches alike. The kernels are written so that a
 * row's result never depends on the rows evaluated with it: a GEMM output is
 * one FMA chain over the inputs in order, whatever the tiling; kernels that
 * put rows in lanes do exactly the scalar operations per lane. So
 * cml_predict() and cml_predict_batch() return the same bits for a row; the
 * SIMD path differs from the reference only by rounding (FMA, a polynomial
 * exp, summation order), within the fixtures' tolerances.
 *
 * The functions exist in every build; calling one when cml__simd_supported()
 * is false is the caller's error. Nothing here allocates. */
#ifndef CML_SIMD_H
#define CML_SIMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the CPU and OS run the kernels (AVX-512 F/VL/BW/DQ and FMA) and
 * COREAI_ISA does not name another kernel table ("ref", "avx2"). Read when a
 * model is opened. */
bool cml__simd_supported(void);

/* ---- elementwise ------------------------------------------------------------------ */

/* y[i] = exp(x[i]) (within 2 ulp; NaN, +-inf and overflow as libm). */
void cml__x512_exp(const double *x, double *y, size_t n);
/* y[i] = 1 / (1 + exp(-x[i])) */
void cml__x512_sigmoid(const double *x, double *y, size_t n);
/* The sum of x[0..n) in a fixed order (8 lane partial sums, then a tree). */
double cml__x512_sum(const double *x, size_t n);
/* x[i] *= s */
void cml__x512_scale(double *x, size_t n, double s);
/* Platt's sigmoid as libsvm computes it, per element:
 * z = f * a + b; y = z >= 0 ? exp(-z) / (1 + exp(-z)) : 1 / (1 + exp(z)),
 * then clipped to [lo, 1 - lo]. lanes 1: f, y are [n] with a[i], b[i];
 * lanes 8: f, y are [n][8] (rows in lanes) with a[i], b[i] for row i. */
void cml__x512_platt(const double *f, const double *a, const double *b, double *y, size_t n,
                     size_t lanes, double lo);

/* ---- GEMM ---------------------------------------------------------------------------- */

/* y[r][o] = (sum_k x[r][k] * w[k][o]) + b[o] for r < n_rows, o < n_out, the
 * sum one FMA chain from 0 in k order. x rows are ldx apart, y rows ldy; w
 * is [n_in][ldw], ldw a multiple of 8 (16 for f32) at least n_out, padded
 * with zeros; b may be NULL (0). Only y[r][0..n_out) is written. */
void cml__x512_gemm_f64(size_t n_rows, size_t n_out, size_t n_in, const double *x, size_t ldx,
                        const double *w, size_t ldw, const double *b, double *y, size_t ldy);
/* For the f32 GEMM: also store act(y[r][o]) (cml__x512_act_f32's function)
 * into epi.y[r][o], rows epi.ldy apart: an inner product fused with the
 * activation that follows it, with the bits of the two run apart. */
struct cml__x512_epi {
    int    act;
    float  alpha, beta;
    float *y;
    size_t ldy;
};
/* skip_zeros: leave out the inputs that are zero in every row of a tile
 * (common after ReLU, and in sparse inputs); exact only for finite w. */
void cml__x512_gemm_f32(size_t n_rows, size_t n_out, size_t n_in, const float *x, size_t ldx,
                        const float *w, size_t ldw, const float *b, float *y, size_t ldy,
                        const struct cml__x512_epi *epi, bool skip_zeros);

/* The same sums with the rows in lanes, for n_rows <= 16 rows in two groups
 * of 8: zt[g][o][8] (lane r of group g: row 8g + r) = (sum_k x[r][k] *
 * w[o][k]) + b[o], w row-major [n_out][n_in], each sum the same FMA chain as
 * cml__x512_gemm_f64's (so the same bits). xt: scratch of 16 * n_in rounded
 * up to 8 doubles; ks: n_in rounded up to 8, plus 8, ints. skip_zeros as for
 * cml__x512_gemm_f32. */
void cml__x512_gemm8_f64(size_t n_rows, size_t n_out, size_t n_in, const double *x, size_t ldx,
                         const double *w, const double *b, double *zt, double *xt, int32_t *ks,
                         bool skip_zeros);
/* One-vs-rest probabilities in lanes, in place: p = 1 / (1 + exp(-z)) per
 * element of pt[k][8], then each lane multiplied by 1 / its sum (taken in k
 * order) when that is positive. Per lane the operations of glm.c's single
 * row. */
void cml__x512_ovr8(double *pt, size_t k);

/* best[r] = the first k maximizing pt[k][r], for lanes r < n_rows. */
void cml__x512_argmax8(const double *pt, size_t k, size_t n_rows, int32_t *best);
/* y[r][i] = pt[i][r] for r < n_rows, i < k (y rows ldy apart). tmp: 64
 * doubles. */
void cml__x512_untranspose8(const double *pt, size_t k, size_t n_rows, double *y, size_t ldy,
                            double *tmp);

/* ---- neural network layers ------------------------------------------------------------ */

/* y[i] = (float)x[i] */
void cml__x512_to_f32(const double *x, float *y, size_t n);
/* Activations without per-channel parameters, in float32 (tanh and exp
 * within a few float ulps of libm's). Returns false when `act` (enum nn_act)
 * is not vectorized here; the caller then runs its scalar loop. */
bool cml__x512_act_f32(int act, float alpha, float beta, const float *x, float *y, size_t n);
/* y = softmax(x) over n contiguous floats: e = exp(x - max), then e / the
 * sum of e taken in element order. */
void cml__x512_softmax_f32(const float *x, float *y, size_t n);
/* The same softmax for n_rows <= 16 rows (ldx apart) at once, one row per
 * lane, as the classifier output of a batch: probs[r][i] (doubles) and
 * best[r], the first i of the largest probability (either may be NULL).
 * tmp: 16 n floats. Each row gets cml__x512_softmax_f32's bits. */
void cml__x512_softmax_rows(const float *x, size_t ldx, size_t n_rows, size_t n, float *tmp,
                            double *probs, int32_t *best);

/* ---- support vector machines ------------------------------------------------------------- */

struct cml__x512_svm {
    int           kernel; /* 1 linear, 2 RBF, 3 polynomial, 4 sigmoid */
    double        gamma, c;
    int           degree;
    size_t        n_sv, n_feat;
    const double *svt; /* [n_feat][ld]: support vectors in columns, zero padded */
    size_t        ld;  /* a multiple of 8, >= n_sv */
};

/* Kernel values of n_rows rows against every support vector: kv[r][s]
 * (rows ld apart; kv[r][n_sv..ld) is scratch). */
void cml__x512_svm_kernel(const struct cml__x512_svm *s, const double *x, size_t ldx,
                          size_t n_rows, double *kv);
/* sum_{s in [lo1,hi1)} c1[s] kv[s] + sum_{s in [lo2,hi2)} c2[s] kv[s] - rho,
 * in a fixed order (8-lane partial sums, then a tree). */
double cml__x512_svm_dot(const double *kv, const double *c1, size_t lo1, size_t hi1,
                         const double *c2, size_t lo2, size_t hi2, double rho);
/* libsvm's pairwise coupling (Wu, Lin, Weng 2004, method 2) for 8 rows at
 * once, one row per lane, each lane doing exactly the scalar operations of
 * svm.c's couple() (and so returning its bits). r: [k][k][8] pairwise
 * probabilities; q: [k][k][8] and qp: [k][8] scratch; p: [k][8] out. */
void cml__x512_couple8(size_t k, const double *r, double *q, double *qp, double *p);

/* ---- tree ensembles ---------------------------------------------------------------------- */

/* A tree ensemble compiled to complete trees of one depth (1..4), each node
 * tested for every row ("compare all"): a node whose test fails clears the
 * leaves of its true subtree from a per-row bit set (leaves numbered left to
 * right, true child on the left), and the lowest leaf left is the one the
 * row reaches. Shallower or incomplete trees are padded with nodes whose two
 * children are the same leaf. Every leaf adds one value to one output
 * dimension per tree (-0.0 for a leaf that adds nothing). */
struct cml__x512_forest {
    size_t          n_trees, depth, n_dims, n_feat;
    size_t          n_nodes; /* per tree: 2^depth - 1 */
    bool            lt;      /* branches test x < t (else x <= t) */
    const int32_t  *feat;    /* [n_trees][n_nodes] */
    const double   *thr;     /* [n_trees][n_nodes] */
    const uint8_t  *miss;    /* [n_trees][n_nodes] 1: NaN goes to the true child */
    const uint64_t *keep;    /* [n_nodes] leaves kept when the test fails */
    const double   *leaf;    /* [n_trees][16] */
    const uint32_t *dim;     /* [n_trees] */
};

/* Scratch doubles cml__x512_forest_eval needs. */
size_t cml__x512_forest_scratch(size_t n_feat, size_t n_dims);

/* raw[r][d] = base[d] + the leaf values row r (< n_rows <= 8) reaches, in
 * tree order. */
void cml__x512_forest_eval(const struct cml__x512_forest *F, const double *x, size_t ldx,
                           size_t n_rows, const double *base, double *raw, double *scratch);

#endif /* CML_SIMD_H */
