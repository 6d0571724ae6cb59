/* gptq.c: error-compensating rounding (GPTQ, Frantar et al. 2022).
 *
 * For a layer y = W x, the calibration inputs give H = sum x x^T. Rounding
 * column j of W changes the output by (w_j - q_j) x_j; the optimal
 * correction of the columns not yet rounded is w_k -= e * U[j][k] with
 * e = (w_j - q_j) / U[j][j], where U is the upper Cholesky factor of H^-1
 * (U^T U = H^-1). Going column by column, every rounding error is pushed
 * onto the columns after it; the output error left is sum_j e_j^2.
 *
 * The engine's formats share a scale per group of 32 (or 256) columns, so a
 * group's scales are fitted when the loop reaches its first column, to the
 * weights as corrected so far (static groups would fit them before any
 * correction). Rows are independent given U: they run in tiles across the
 * thread pool. */
#include <math.h>
#include <string.h>

#include "quant_int.h"

/* ---- the factor ---------------------------------------------------------- */

static double dot_d(const double *a, const double *b, int64_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] * b[i];
    return (s0 + s2) + (s1 + s3);
}

/* In place: A (n x n, lower triangle read) -> L with A = L L^T in the lower
 * triangle. false when a pivot is not positive. */
static bool cholesky_lower(double *A, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        double *rj = A + j * n;
        double d = rj[j] - dot_d(rj, rj, j);
        if (!(d > 0.0))
            return false;
        d = sqrt(d);
        rj[j] = d;
        double inv = 1.0 / d;
        for (int64_t i = j + 1; i < n; i++) {
            double *ri = A + i * n;
            ri[j] = (ri[j] - dot_d(ri, rj, j)) * inv;
        }
    }
    return true;
}

/* M = L^-1 (both lower, n x n), row by row: row i of M is
 * -(1 / L_ii) sum_{k<i} L_ik M_k, plus 1 / L_ii on the diagonal. */
static void invert_lower(const double *L, double *M, int64_t n)
{
    memset(M, 0, (size_t)n * (size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        double *mi = M + i * n;
        const double *li = L + i * n;
        for (int64_t k = 0; k < i; k++) {
            double c = li[k];
            if (c == 0.0)
                continue;
            const double *mk = M + k * n;
            for (int64_t j = 0; j <= k; j++)
                mi[j] += c * mk[j];
        }
        double inv = 1.0 / li[i];
        for (int64_t j = 0; j < i; j++)
            mi[j] *= -inv;
        mi[i] = inv;
    }
}

float *cai__gptq_factor(const float *H, int64_t n, float damp, struct cai_error *err)
{
    size_t nn;
    if (n <= 0 || !cai__mul_size((size_t)n, (size_t)n, &nn)) {
        cai__fail(err, CAI_EINVAL, "gptq: bad size %lld", (long long)n);
        return NULL;
    }
    double *A = cai__malloc_array(nn, sizeof(double));
    double *M = cai__malloc_array(nn, sizeof(double));
    float *U = cai__malloc_array(nn, sizeof(float));
    if (!A || !M || !U) {
        cai__free(A);
        cai__free(M);
        cai__free(U);
        cai__fail(err, CAI_ENOMEM, "gptq: out of memory for a %lld x %lld Hessian", (long long)n,
                  (long long)n);
        return NULL;
    }
    double mean = 0.0;
    int64_t alive = 0;
    for (int64_t j = 0; j < n; j++) {
        double d = (double)H[j * n + j];
        if (d > 0.0) {
            mean += d;
            alive++;
        }
    }
    mean = alive ? mean / (double)alive : 1.0;
    bool ok = false;
    for (int attempt = 0; attempt < 6 && !ok; attempt++) {
        double lambda = (double)damp * mean * pow(10.0, attempt);
        /* The reversed matrix P H P: its lower Cholesky factor L~ gives
         * U = P L~^-1 P, upper triangular with U^T U = H^-1. */
        for (int64_t i = 0; i < n; i++) {
            int64_t ri = n - 1 - i;
            for (int64_t j = 0; j <= i; j++) {
                int64_t rj = n - 1 - j;
                A[i * n + j] = (double)H[ri * n + rj];
            }
            double d = (double)H[ri * n + ri];
            A[i * n + i] = (d > 0.0 ? d : 1.0) + lambda;
        }
        /* Rows and columns of dead inputs: only their unit diagonal. */
        for (int64_t i = 0; i < n; i++) {
            if (H[(n - 1 - i) * n + (n - 1 - i)] > 0.0f)
                continue;
            for (int64_t j = 0; j < i; j++)
                A[i * n + j] = 0.0;
            for (int64_t j = i + 1; j < n; j++)
                A[j * n + i] = 0.0;
        }
        ok = cholesky_lower(A, n);
    }
    if (!ok) {
        cai__free(A);
        cai__free(M);
        cai__free(U);
        cai__fail(err, CAI_EINVAL, "gptq: the calibration Hessian (%lld inputs) is not positive "
                  "definite even with heavy damping", (long long)n);
        return NULL;
    }
    invert_lower(A, M, n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            U[i * n + j] = j >= i ? (float)M[(n - 1 - i) * n + (n - 1 - j)] : 0.0f;
    cai__free(A);
    cai__free(M);
    return U;
}

/* ---- the rounding loop --------------------------------------------------- */

#define TILE 8

struct gptq_job {
    const struct cai__qfmt   *f;
    const struct cai_kernels *k;
    float                    *W;
    int64_t                   n_out, n_in;
    const float              *U, *imp;
    uint8_t                  *dst;
    size_t                    row_bytes;
    double                   *row_loss; /* [n_out] */
};

static void gptq_worker(void *ctx, int ith, int nth)
{
    const struct gptq_job *j = ctx;
    const struct cai__qfmt *f = j->f;
    const int64_t n = j->n_in, G = f->group;
    int64_t n_tiles = (j->n_out + TILE - 1) / TILE;
    float scale[TILE][CAI__QFMT_MAX_GROUP], offset[TILE][CAI__QFMT_MAX_GROUP];
    int codes[TILE][CAI__QFMT_MAX_GROUP];
    for (int64_t t = n_tiles * ith / nth; t < n_tiles * (ith + 1) / nth; t++) {
        int64_t r0 = t * TILE;
        int nr = (int)CAI_MIN((int64_t)TILE, j->n_out - r0);
        double loss[TILE] = {0};
        for (int64_t g0 = 0; g0 < n; g0 += G) {
            for (int r = 0; r < nr; r++) {
                void *blk = j->dst + (size_t)(r0 + r) * j->row_bytes +
                            (size_t)(g0 / G) * (size_t)f->block_bytes;
                f->fit(j->W + (r0 + r) * n + g0, j->imp ? j->imp + g0 : NULL, blk, scale[r],
                       offset[r]);
            }
            for (int64_t c = g0; c < g0 + G; c++) {
                const float *uc = j->U + c * n;
                float ucc = uc[c];
                for (int r = 0; r < nr; r++) {
                    float *w = j->W + (r0 + r) * n;
                    int l = (int)(c - g0);
                    int q = cai__qfmt_code(f, w[c], scale[r][l], offset[r][l]);
                    codes[r][l] = q;
                    float e = (w[c] - (scale[r][l] * (float)q + offset[r][l])) / ucc;
                    loss[r] += (double)e * (double)e;
                    if (c + 1 < n && e != 0.0f)
                        j->k->axpy_f32(w + c + 1, -e, uc + c + 1, n - c - 1);
                }
            }
            for (int r = 0; r < nr; r++)
                f->pack(j->dst + (size_t)(r0 + r) * j->row_bytes +
                            (size_t)(g0 / G) * (size_t)f->block_bytes,
                        codes[r]);
        }
        for (int r = 0; r < nr; r++)
            j->row_loss[r0 + r] = loss[r];
    }
}

static void run(struct cai_pool *pool, cai_pool_fn fn, void *ctx)
{
    if (pool)
        cai__pool_run(pool, fn, ctx);
    else
        fn(ctx, 0, 1);
}

double cai__gptq_quantize(const struct cai__qfmt *f, float *W, int64_t n_out, int64_t n_in,
                          const float *U, const float *imp, void *dst, struct cai_pool *pool)
{
    double *row_loss = cai__malloc_array((size_t)n_out, sizeof(double));
    if (!row_loss)
        return -1.0;
    struct gptq_job j = {
        .f = f, .k = cai__kernels_get(), .W = W, .n_out = n_out, .n_in = n_in, .U = U,
        .imp = imp, .dst = dst, .row_bytes = (size_t)(n_in / f->group) * (size_t)f->block_bytes,
        .row_loss = row_loss,
    };
    if (!j.k)
        j.k = &cai__kernels_ref;
    run(pool, gptq_worker, &j);
    double s = 0.0;
    for (int64_t r = 0; r < n_out; r++)
        s += row_loss[r];
    cai__free(row_loss);
    return s;
}

/* ---- quadratic forms ----------------------------------------------------- */

struct quad_job {
    const struct cai_kernels *k;
    const float              *E, *H;
    int64_t                   n_rows, n;
    double                   *out; /* [n_rows] */
};

static void quad_worker(void *ctx, int ith, int nth)
{
    const struct quad_job *j = ctx;
    for (int64_t r = j->n_rows * ith / nth; r < j->n_rows * (ith + 1) / nth; r++) {
        const float *e = j->E + r * j->n;
        double s = 0.0;
        for (int64_t i = 0; i < j->n; i++)
            if (e[i] != 0.0f)
                s += (double)e[i] * (double)j->k->dot_f32(j->H + i * j->n, e, j->n);
        j->out[r] = s;
    }
}

double cai__quad_form_rows(const struct cai_kernels *k, const float *E, int64_t n_rows, int64_t n,
                           const float *H, struct cai_pool *pool)
{
    double *out = cai__malloc_array((size_t)(n_rows > 0 ? n_rows : 1), sizeof(double));
    if (!out)
        return -1.0;
    struct quad_job j = {.k = k, .E = E, .H = H, .n_rows = n_rows, .n = n, .out = out};
    run(pool, quad_worker, &j);
    double s = 0.0;
    for (int64_t r = 0; r < n_rows; r++)
        s += out[r];
    cai__free(out);
    return s;
}
