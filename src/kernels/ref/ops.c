/* ops.c: reference kernels of the float types (F32, F16, BF16) and the f32
 * vector ops (dot, axpy, rmsnorm, softmax, silu_mul, f16 KV helpers).
 *
 * Sums that feed a normalization or a dot product are accumulated in double
 * here, so the reference is at least as accurate as any SIMD variant (which
 * accumulates in float across many lanes); the tests bound the difference. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "ref.h"

/* ---- F32 ---------------------------------------------------------------- */

void cai__ref_f32_to_f32(const void *x, float *y, int64_t n)
{
    memcpy(y, x, (size_t)n * sizeof(float));
}

void cai__ref_f32_from_f32(const float *x, void *y, int64_t n)
{
    memcpy(y, x, (size_t)n * sizeof(float));
}

/* w, x: [n] f32 */
float cai__ref_f32_vec_dot(int64_t n, const void *w, const void *x)
{
    return cai__ref_dot_f32(w, x, n);
}

/* ---- F16 ---------------------------------------------------------------- */

void cai__ref_f16_to_f32(const void *vx, float *y, int64_t n)
{
    const cai_half *x = vx;
    for (int64_t i = 0; i < n; i++)
        y[i] = cai__fp16_to_f32(x[i]);
}

void cai__ref_f16_from_f32(const float *x, void *vy, int64_t n)
{
    cai__ref_f32_to_f16(x, vy, n);
}

/* w: [n] f16, x: [n] f32 */
float cai__ref_f16_vec_dot(int64_t n, const void *w, const void *x)
{
    return cai__ref_dot_f16_f32(w, x, n);
}

/* ---- BF16 --------------------------------------------------------------- */

void cai__ref_bf16_to_f32(const void *vx, float *y, int64_t n)
{
    const uint16_t *x = vx;
    for (int64_t i = 0; i < n; i++)
        y[i] = cai__bf16_to_f32(x[i]);
}

void cai__ref_bf16_from_f32(const float *x, void *vy, int64_t n)
{
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++)
        y[i] = cai__f32_to_bf16(x[i]);
}

/* w: [n] bf16, x: [n] f32 */
float cai__ref_bf16_vec_dot(int64_t n, const void *vw, const void *vx)
{
    const uint16_t *w = vw;
    const float *x = vx;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(cai__bf16_to_f32(w[i]) * x[i]);
    return (float)sum;
}

/* ---- f32 vector ops ----------------------------------------------------- */

/* a, b: [n] */
float cai__ref_dot_f32(const float *a, const float *b, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

/* y, x: [n]; y += a * x */
void cai__ref_axpy_f32(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* y, x, w: [n]; y = (x * scale) * w with scale = 1 / sqrt(mean(x^2) + eps),
 * as ggml's rms_norm followed by the weight multiply. */
void cai__ref_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox)
{
    const int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float x0 = v[a], x1 = v[b];
            v[a] = fmaf(x0, c, -(x1 * s));
            v[b] = fmaf(x0, s, x1 * c);
        }
    }
}

/* rmsnorm's second half, from the row's sequential double sum of squares */
static void rms_scale(float *y, const float *x, const float *w, int64_t n, float eps, double sum)
{
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

void cai__ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    rms_scale(y, x, w, n, eps, sum);
}

/* Four rows' sums side by side: each is still one sequential chain of
 * double additions (the order of rmsnorm), but the four chains overlap. */
void cai__ref_rmsnorm_n(float *y, size_t y_stride, const float *x, size_t x_stride,
                        const float *w, int64_t n, int n_tok, float eps)
{
    int t = 0;
    for (; t + 4 <= n_tok; t += 4) {
        const float *x0 = x + (size_t)t * x_stride, *x1 = x0 + x_stride;
        const float *x2 = x1 + x_stride, *x3 = x2 + x_stride;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (int64_t i = 0; i < n; i++) {
            s0 += (double)(x0[i] * x0[i]);
            s1 += (double)(x1[i] * x1[i]);
            s2 += (double)(x2[i] * x2[i]);
            s3 += (double)(x3[i] * x3[i]);
        }
        const double s[4] = {s0, s1, s2, s3};
        for (int r = 0; r < 4; r++)
            rms_scale(y + (size_t)(t + r) * y_stride, x + (size_t)(t + r) * x_stride, w, n, eps,
                      s[r]);
    }
    for (; t < n_tok; t++)
        cai__ref_rmsnorm(y + (size_t)t * y_stride, x + (size_t)t * x_stride, w, n, eps);
}

/* x: [n], in place: x = exp(x - max) / sum, with llama.cpp's numerics:
 * exp as ggml_v_expf; the sum built from chunks of 16 values, each reduced
 * in the order of _mm512_reduce_add_ps, accumulated in double; the result
 * multiplied by (float)(1 / sum). */
void cai__ref_softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i += 16) {
        float v[16] = {0};
        for (int64_t j = 0; j < 16 && i + j < n; j++)
            v[j] = x[i + j] = cai__ref_expf_ggml(x[i + j] - max);
        sum += (double)cai__ref_hsum16(v);
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

void cai__ref_softmax_att(float *x, int64_t n, float scale, int64_t n_pad)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= scale;
    cai__ref_softmax(x, n);
    for (int64_t i = 0; i < n; i++)
        x[i] = cai__fp16_to_f32(cai__f32_to_fp16(x[i]));
    for (int64_t i = n < 0 ? 0 : n; i < n_pad; i++)
        x[i] = 0.0f;
}

/* y, g, u: [n]; y = g / (1 + exp(-g)) * u, exp as ggml_v_expf (llama.cpp's
 * swiglu). */
void cai__ref_silu_mul(float *y, const float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = g[i] / (1.0f + cai__ref_expf_ggml(-g[i])) * u[i];
}

/* GELU, tanh form, as ggml computes it on the CPU (its GGML_GELU_FP16
 * path): the input rounded to f16 indexes a table of f16 results of
 * 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))); at or below -10 the
 * result is 0, at or above 10 it is x. The table (128 KiB) is built once. */
static uint16_t        gelu_table[(1 << 16) + 1];
static pthread_once_t  gelu_once = PTHREAD_ONCE_INIT;

static float gelu_f32(float x)
{
    const float c = 0.79788456080286535587989211986876f, a = 0.044715f;
    return 0.5f * x * (1.0f + tanhf(c * x * (1.0f + a * x * x)));
}

static void gelu_init(void)
{
    for (uint32_t i = 0; i < (1u << 16); i++)
        gelu_table[i] = cai__f32_to_fp16(gelu_f32(cai__fp16_to_f32((cai_half)i)));
}

const uint16_t *cai__gelu_table(void)
{
    pthread_once(&gelu_once, gelu_init);
    return gelu_table;
}

/* y, g, u: [n]; y = gelu(g) * u (llama.cpp's geglu). y may be g. */
void cai__ref_gelu_mul(float *y, const float *g, const float *u, int64_t n)
{
    const uint16_t *tab = cai__gelu_table();
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i];
        if (x <= -10.0f)
            y[i] = 0.0f;
        else if (x >= 10.0f)
            y[i] = x * u[i];
        else
            y[i] = cai__fp16_to_f32(tab[cai__f32_to_fp16(x)]) * u[i];
    }
}

/* a: [n] f16, b: [n] f32 */
float cai__ref_dot_f16_f32(const cai_half *a, const float *b, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(cai__fp16_to_f32(a[i]) * b[i]);
    return (float)sum;
}

/* a, b: [n] f16; see kernels.h for the order. */
float cai__ref_dot_f16(const cai_half *a, const cai_half *b, int64_t n)
{
    float acc[4][16] = {{0}};
    int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) {
                int64_t k = i + 16 * j + l;
                acc[j][l] = fmaf(cai__fp16_to_f32(a[k]), cai__fp16_to_f32(b[k]), acc[j][l]);
            }
    float r[16];
    for (int l = 0; l < 16; l++)
        r[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    double sum = (double)cai__ref_hsum16(r);
    for (int64_t i = np; i < n; i++)
        sum += (double)(cai__fp16_to_f32(a[i]) * cai__fp16_to_f32(b[i]));
    return (float)sum;
}

/* a, b: [n] f16, n % 16 == 0; see kernels.h for the order. */
float cai__ref_dot_f16_chain(const cai_half *a, const cai_half *b, int64_t n)
{
    float acc[16] = {0};
    for (int64_t i = 0; i < n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] = fmaf(cai__fp16_to_f32(a[i + l]), cai__fp16_to_f32(b[i + l]), acc[l]);
    return cai__ref_hsum16(acc);
}

/* out[v] = dot of row v of a (stride a_stride elements) with b */
void cai__ref_dot_f16_n(const cai_half *a, size_t a_stride, int64_t n_vec, const cai_half *b,
                        int64_t n, float *out)
{
    for (int64_t v = 0; v < n_vec; v++)
        out[v] = cai__ref_dot_f16(a + (size_t)v * a_stride, b, n);
}

void cai__ref_dot_f16_chain_n(const cai_half *a, size_t a_stride, int64_t n_vec,
                              const cai_half *b, int64_t n, float *out)
{
    for (int64_t v = 0; v < n_vec; v++)
        out[v] = cai__ref_dot_f16_chain(a + (size_t)v * a_stride, b, n);
}

void cai__ref_dot_f16_chain_mn(const cai_half *a, size_t a_stride, int64_t n_vec,
                               const float *b, size_t b_stride, int n_b, int64_t n, float *out,
                               size_t out_stride)
{
    for (int j = 0; j < n_b; j++) {
        const float *bj = b + (size_t)j * b_stride;
        for (int64_t v = 0; v < n_vec; v++) {
            const cai_half *av = a + (size_t)v * a_stride;
            float acc[16] = {0};
            for (int64_t i = 0; i < n; i += 16)
                for (int l = 0; l < 16; l++)
                    acc[l] = fmaf(cai__fp16_to_f32(av[i + l]), bj[i + l], acc[l]);
            out[(size_t)j * out_stride + (size_t)v] = cai__ref_hsum16(acc);
        }
    }
}

void cai__ref_dot_f16_mn(const cai_half *a, size_t a_stride, int64_t n_vec, const float *b,
                         size_t b_stride, int n_b, int64_t n, float *out, size_t out_stride)
{
    const int64_t np = n & ~(int64_t)63;
    for (int j = 0; j < n_b; j++) {
        const float *bj = b + (size_t)j * b_stride;
        for (int64_t v = 0; v < n_vec; v++) {
            const cai_half *av = a + (size_t)v * a_stride;
            float acc[4][16] = {{0}};
            for (int64_t i = 0; i < np; i += 64)
                for (int c = 0; c < 4; c++)
                    for (int l = 0; l < 16; l++) {
                        const int64_t k = i + 16 * c + l;
                        acc[c][l] = fmaf(cai__fp16_to_f32(av[k]), bj[k], acc[c][l]);
                    }
            float r[16];
            for (int l = 0; l < 16; l++)
                r[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
            double sum = (double)cai__ref_hsum16(r);
            for (int64_t i = np; i < n; i++)
                sum += (double)(cai__fp16_to_f32(av[i]) * bj[i]);
            out[(size_t)j * out_stride + (size_t)v] = (float)sum;
        }
    }
}

/* y: [n] f32, x: [n] f16; y += a * x */
void cai__ref_axpy_f16(float *y, float a, const cai_half *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * cai__fp16_to_f32(x[i]);
}

/* x: [n] f32 -> y: [n] f16, round to nearest even */
void cai__ref_f32_to_f16(const float *x, cai_half *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = cai__f32_to_fp16(x[i]);
}
