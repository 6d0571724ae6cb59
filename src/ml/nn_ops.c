/* nn_ops.c: the NeuralNetwork layer kernels, plain C in float32.
 *
 * Each kernel reads its input blobs and writes its output blob inside one
 * float array (`mem`); shapes were inferred and checked at load (nn.c), so
 * nothing here validates. The channel axis of a rank >= 3 blob is the third
 * from last; rank 1 and 2 blobs are [C] and [N, C]. */
#include <string.h>

#include "nn.h"
#include "simd.h"

/* Splits a shape into N (leading), C, H, W. */
static void nchw(const struct nn_shape *s, int64_t *n, int64_t *c, int64_t *h, int64_t *w)
{
    int r = s->rank;
    *n = 1;
    if (r >= 3) {
        for (int i = 0; i < r - 3; i++)
            *n *= s->d[i];
        *c = s->d[r - 3];
        *h = s->d[r - 2];
        *w = s->d[r - 1];
    } else if (r == 2) {
        *n = s->d[0];
        *c = s->d[1];
        *h = *w = 1;
    } else {
        *c = r == 1 ? s->d[0] : 1;
        *h = *w = 1;
    }
}

/* The fused activation's output, for the GEMM's epilogue (NULL: none). */
static const struct cml__x512_epi *epilogue(const struct nn_net *net, const struct nn_layer *L,
                                            float *mem, size_t ldy, struct cml__x512_epi *e)
{
    if (!L->fused)
        return NULL;
    *e = (struct cml__x512_epi){.act = L->fused->act, .alpha = L->fused->alpha,
                                .beta = L->fused->beta,
                                .y = mem + net->blobs[L->fused->out].off, .ldy = ldy};
    return e;
}

static void inner(const struct nn_net *net, const struct nn_layer *L, float *mem, const float *x,
                  float *y, size_t n_in)
{
    size_t rows = n_in / (size_t)L->cin;
    if (net->simd) {
        /* y = (sum_i w[o][i] x[i], one FMA chain) + b[o], as in batches */
        struct cml__x512_epi e;
        cml__x512_gemm_f32(rows, (size_t)L->cout, (size_t)L->cin, x, (size_t)L->cin, L->wt,
                           (size_t)L->ldw, L->b, y, (size_t)L->cout,
                           epilogue(net, L, mem, (size_t)L->cout, &e), L->finite);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)L->cin;
        float *yr = y + r * (size_t)L->cout;
        for (int64_t o = 0; o < L->cout; o++) {
            const float *w = L->w + o * L->cin;
            float s = 0.0f;
            if (net->kern) {
                s = net->kern->dot_f32(w, xr, L->cin);
            } else {
                for (int64_t i = 0; i < L->cin; i++)
                    s += w[i] * xr[i];
            }
            yr[o] = s + (L->b ? L->b[o] : 0.0f);
        }
    }
}

static void conv(const struct nn_layer *L, const struct nn_blob *bi, const struct nn_blob *bo,
                 const float *x, float *y)
{
    int64_t N, C, H, W, N2, Co, Ho, Wo;
    nchw(&bi->shape, &N, &C, &H, &W);
    nchw(&bo->shape, &N2, &Co, &Ho, &Wo);
    int64_t cin_g = C / L->groups, cout_g = Co / L->groups;
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * C * H * W;
        float *yn = y + n * Co * Ho * Wo;
        for (int64_t oc = 0; oc < Co; oc++) {
            int64_t g = oc / cout_g;
            const float *wk = L->w + oc * cin_g * L->kh * L->kw;
            float bias = L->b ? L->b[oc] : 0.0f;
            for (int64_t oy = 0; oy < Ho; oy++) {
                for (int64_t ox = 0; ox < Wo; ox++) {
                    float s = 0.0f;
                    for (int64_t ic = 0; ic < cin_g; ic++) {
                        const float *xc = xn + (g * cin_g + ic) * H * W;
                        const float *wc = wk + ic * L->kh * L->kw;
                        for (int64_t ky = 0; ky < L->kh; ky++) {
                            int64_t iy = oy * L->sh - L->pad_t + ky * L->dh;
                            if (iy < 0 || iy >= H)
                                continue;
                            for (int64_t kx = 0; kx < L->kw; kx++) {
                                int64_t ix = ox * L->sw - L->pad_l + kx * L->dw;
                                if (ix < 0 || ix >= W)
                                    continue;
                                s += wc[ky * L->kw + kx] * xc[iy * W + ix];
                            }
                        }
                    }
                    yn[(oc * Ho + oy) * Wo + ox] = s + bias;
                }
            }
        }
    }
}

static void pool(const struct nn_layer *L, const struct nn_blob *bi, const struct nn_blob *bo,
                 const float *x, float *y)
{
    int64_t N, C, H, W, N2, C2, Ho, Wo;
    nchw(&bi->shape, &N, &C, &H, &W);
    nchw(&bo->shape, &N2, &C2, &Ho, &Wo);
    int64_t kh = L->global ? H : L->kh, kw = L->global ? W : L->kw;
    int64_t sh = L->global ? 1 : L->sh, sw = L->global ? 1 : L->sw;
    int64_t pt = L->global ? 0 : L->pad_t, pl = L->global ? 0 : L->pad_l;
    for (int64_t p = 0; p < N * C; p++) {
        const float *xc = x + p * H * W;
        float *yc = y + p * Ho * Wo;
        for (int64_t oy = 0; oy < Ho; oy++) {
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t y0 = oy * sh - pt, x0 = ox * sw - pl;
                int64_t y1 = y0 + kh, x1 = x0 + kw;
                /* Window area counted for average pooling with padding
                 * included: the part inside the padded input (Caffe). */
                int64_t ye = y1 < H + L->pad_b ? y1 : H + L->pad_b;
                int64_t xe = x1 < W + L->pad_r ? x1 : W + L->pad_r;
                int64_t area = (ye - y0) * (xe - x0);
                int64_t ya = y0 < 0 ? 0 : y0, xa = x0 < 0 ? 0 : x0;
                int64_t yb = y1 > H ? H : y1, xb = x1 > W ? W : x1;
                float acc = L->pool_type == 0 ? -INFINITY : 0.0f;
                int64_t cnt = 0;
                for (int64_t iy = ya; iy < yb; iy++) {
                    for (int64_t ix = xa; ix < xb; ix++) {
                        float v = xc[iy * W + ix];
                        if (L->pool_type == 0)
                            acc = v > acc ? v : acc;
                        else if (L->pool_type == 1)
                            acc += v;
                        else
                            acc += v * v;
                        cnt++;
                    }
                }
                if (L->pool_type == 1) {
                    int64_t d = L->exclude_pad ? cnt : area;
                    acc = d > 0 ? acc / (float)d : 0.0f;
                } else if (L->pool_type == 2) {
                    acc = sqrtf(acc);
                } else if (cnt == 0) {
                    acc = 0.0f;
                }
                yc[oy * Wo + ox] = acc;
            }
        }
    }
}

static float act1(const struct nn_layer *L, float v, int64_t c)
{
    switch (L->act) {
    case ACT_LINEAR: return L->alpha * v + L->beta;
    case ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ACT_LEAKY: return v >= 0.0f ? v : L->alpha * v;
    case ACT_THRESH: return v > L->alpha ? v : 0.0f;
    case ACT_PRELU: {
        float a = L->alpha_c[L->n_alpha == 1 ? 0 : c];
        return v >= 0.0f ? v : a * v;
    }
    case ACT_TANH: return tanhf(v);
    case ACT_STANH: return L->alpha * tanhf(L->beta * v);
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case ACT_HSIGMOID: {
        float t = L->alpha * v + L->beta;
        return t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    }
    case ACT_ELU: return v >= 0.0f ? v : L->alpha * (expf(v) - 1.0f);
    case ACT_SOFTSIGN: return v / (1.0f + fabsf(v));
    case ACT_SOFTPLUS: return v > 20.0f ? v : log1pf(expf(v));
    case ACT_PSOFTPLUS: {
        float a = L->alpha_c[L->n_alpha == 1 ? 0 : c], b = L->beta_c[L->n_beta == 1 ? 0 : c];
        float t = b * v;
        return a * (t > 20.0f ? t : log1pf(expf(t)));
    }
    default: return v;
    }
}

static void activation(const struct nn_net *net, const struct nn_layer *L,
                       const struct nn_blob *bi, const float *x, float *y)
{
    if (net->simd && cml__x512_act_f32(L->act, L->alpha, L->beta, x, y, bi->n))
        return;
    int64_t N, C, H, W;
    nchw(&bi->shape, &N, &C, &H, &W);
    int64_t hw = H * W;
    for (size_t i = 0; i < bi->n; i++)
        y[i] = act1(L, x[i], ((int64_t)i / hw) % C);
}

static void per_channel(const struct nn_layer *L, const struct nn_blob *bi, const float *x,
                        float *y)
{
    int64_t N, C, H, W;
    nchw(&bi->shape, &N, &C, &H, &W);
    int64_t hw = H * W;
    for (size_t i = 0; i < bi->n; i++) {
        int64_t c = ((int64_t)i / hw) % C;
        float m = L->mul ? L->mul[L->cout == 1 ? 0 : c] : 1.0f;
        float a = L->add ? L->add[L->cout == 1 ? 0 : c] : 0.0f;
        y[i] = x[i] * m + a;
    }
}

static void softmax(const struct nn_net *net, const struct nn_layer *L, const struct nn_blob *bi,
                    const float *x, float *y)
{
    const struct nn_shape *s = &bi->shape;
    int64_t outer = 1, len = s->d[L->axis], in = 1;
    for (int i = 0; i < L->axis; i++)
        outer *= s->d[i];
    for (int i = L->axis + 1; i < s->rank; i++)
        in *= s->d[i];
    if (net->simd && in == 1) {
        for (int64_t o = 0; o < outer; o++)
            cml__x512_softmax_f32(x + o * len, y + o * len, (size_t)len);
        return;
    }
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t k = 0; k < in; k++) {
            const float *xs = x + o * len * in + k;
            float *ys = y + o * len * in + k;
            float mx = xs[0], sum = 0.0f;
            for (int64_t i = 1; i < len; i++)
                mx = xs[i * in] > mx ? xs[i * in] : mx;
            for (int64_t i = 0; i < len; i++) {
                ys[i * in] = expf(xs[i * in] - mx);
                sum += ys[i * in];
            }
            for (int64_t i = 0; i < len; i++)
                ys[i * in] /= sum;
        }
    }
}

static void transpose(const struct nn_layer *L, const struct nn_blob *bi, const struct nn_blob *bo,
                      const float *x, float *y)
{
    int r = bi->shape.rank;
    int64_t in_stride[NN_MAX_RANK], idx[NN_MAX_RANK] = {0};
    in_stride[r - 1] = 1;
    for (int i = r - 2; i >= 0; i--)
        in_stride[i] = in_stride[i + 1] * bi->shape.d[i + 1];
    for (size_t o = 0; o < bo->n; o++) {
        int64_t src = 0;
        for (int i = 0; i < r; i++)
            src += idx[i] * in_stride[L->perm[i]];
        y[o] = x[src];
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < bo->shape.d[i])
                break;
            idx[i] = 0;
        }
    }
}

static void concat(const struct nn_net *net, const struct nn_layer *L, float *mem)
{
    const struct nn_blob *bo = &net->blobs[L->out];
    int64_t outer = 1, in = 1;
    for (int i = 0; i < L->axis; i++)
        outer *= bo->shape.d[i];
    for (int i = L->axis + 1; i < bo->shape.rank; i++)
        in *= bo->shape.d[i];
    float *y = mem + bo->off;
    int64_t row = bo->shape.d[L->axis] * in, at = 0;
    for (int k = 0; k < L->n_in; k++) {
        const struct nn_blob *bi = &net->blobs[L->in[k]];
        int64_t chunk = bi->shape.d[L->axis] * in;
        const float *x = mem + bi->off;
        for (int64_t o = 0; o < outer; o++)
            memcpy(y + o * row + at, x + o * chunk, (size_t)chunk * sizeof(float));
        at += chunk;
    }
}

static float combine(enum nn_kind k, float a, float b)
{
    switch (k) {
    case NN_ADD:
    case NN_AVERAGE: return a + b;
    case NN_MUL: return a * b;
    case NN_SUB: return a - b;
    case NN_MAX: return a > b ? a : b;
    default: return a < b ? a : b;
    }
}

/* Numpy-style broadcasting of every input to the output shape. */
static void elementwise(const struct nn_net *net, const struct nn_layer *L, float *mem)
{
    const struct nn_blob *bo = &net->blobs[L->out];
    float *y = mem + bo->off;
    int r = bo->shape.rank;
    if (L->n_in == 1) {
        const float *x = mem + net->blobs[L->in[0]].off;
        for (size_t i = 0; i < bo->n; i++)
            y[i] = combine(L->kind, x[i], L->scalar);
        return;
    }
    for (int k = 0; k < L->n_in; k++) {
        const struct nn_blob *bi = &net->blobs[L->in[k]];
        const float *x = mem + bi->off;
        int64_t st[NN_MAX_RANK], idx[NN_MAX_RANK] = {0}, s = 1;
        int off = r - bi->shape.rank;
        for (int i = r - 1; i >= 0; i--) {
            int64_t d = i >= off ? bi->shape.d[i - off] : 1;
            st[i] = d == 1 ? 0 : s;
            s *= d;
        }
        /* In place on y when it aliases an input would be wrong for k > 0:
         * the loader gives every layer its own output blob. */
        for (size_t o = 0; o < bo->n; o++) {
            int64_t src = 0;
            for (int i = 0; i < r; i++)
                src += idx[i] * st[i];
            y[o] = k == 0 ? x[src] : combine(L->kind, y[o], x[src]);
            for (int i = r - 1; i >= 0; i--) {
                if (++idx[i] < bo->shape.d[i])
                    break;
                idx[i] = 0;
            }
        }
    }
    if (L->kind == NN_AVERAGE)
        for (size_t i = 0; i < bo->n; i++)
            y[i] /= (float)L->n_in;
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void pad(const struct nn_layer *L, const struct nn_blob *bi, const struct nn_blob *bo,
                const float *x, float *y)
{
    int64_t N, C, H, W, N2, C2, Ho, Wo;
    nchw(&bi->shape, &N, &C, &H, &W);
    nchw(&bo->shape, &N2, &C2, &Ho, &Wo);
    for (int64_t p = 0; p < N * C; p++) {
        const float *xc = x + p * H * W;
        float *yc = y + p * Ho * Wo;
        for (int64_t oy = 0; oy < Ho; oy++) {
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t iy = oy - L->pad_t, ix = ox - L->pad_l;
                float v;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                    v = xc[iy * W + ix];
                } else if (L->pad_mode == 0) {
                    v = L->pad_value;
                } else if (L->pad_mode == 1) {
                    iy = iy < 0 ? -iy : iy >= H ? 2 * (H - 1) - iy : iy;
                    ix = ix < 0 ? -ix : ix >= W ? 2 * (W - 1) - ix : ix;
                    v = xc[clampi(iy, 0, H - 1) * W + clampi(ix, 0, W - 1)];
                } else {
                    v = xc[clampi(iy, 0, H - 1) * W + clampi(ix, 0, W - 1)];
                }
                yc[oy * Wo + ox] = v;
            }
        }
    }
}

static float src_coord(int mode, int64_t o, int64_t n_in, int64_t n_out)
{
    if (mode == 1)
        return n_out > 1 ? (float)o * (float)(n_in - 1) / (float)(n_out - 1) : 0.0f;
    float s = ((float)o + 0.5f) * (float)n_in / (float)n_out - 0.5f;
    return s < 0.0f ? 0.0f : s;
}

static void upsample(const struct nn_layer *L, const struct nn_blob *bi, const struct nn_blob *bo,
                     const float *x, float *y)
{
    int64_t N, C, H, W, N2, C2, Ho, Wo;
    nchw(&bi->shape, &N, &C, &H, &W);
    nchw(&bo->shape, &N2, &C2, &Ho, &Wo);
    for (int64_t p = 0; p < N * C; p++) {
        const float *xc = x + p * H * W;
        float *yc = y + p * Ho * Wo;
        for (int64_t oy = 0; oy < Ho; oy++) {
            for (int64_t ox = 0; ox < Wo; ox++) {
                float v;
                if (L->up_mode == 0) {
                    v = xc[(oy / L->up_h) * W + ox / L->up_w];
                } else {
                    float fy = src_coord(L->up_mode, oy, H, Ho);
                    float fx = src_coord(L->up_mode, ox, W, Wo);
                    int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
                    int64_t y1 = y0 + 1 < H ? y0 + 1 : y0, x1 = x0 + 1 < W ? x0 + 1 : x0;
                    float ay = fy - (float)y0, ax = fx - (float)x0;
                    float a = xc[y0 * W + x0], b = xc[y0 * W + x1];
                    float c = xc[y1 * W + x0], d = xc[y1 * W + x1];
                    v = (a + (b - a) * ax) * (1.0f - ay) + (c + (d - c) * ax) * ay;
                }
                yc[oy * Wo + ox] = v;
            }
        }
    }
}

static void unary(const struct nn_layer *L, const struct nn_blob *bi, const float *x, float *y)
{
    for (size_t i = 0; i < bi->n; i++) {
        float v = L->scale * x[i] + L->shift;
        switch (L->unary) {
        case 0: v = sqrtf(v); break;
        case 1: v = 1.0f / sqrtf(v + L->eps); break;
        case 2: v = 1.0f / (v + L->eps); break;
        case 3: v = powf(v, L->alpha); break;
        case 4: v = expf(v); break;
        case 5: v = logf(v + L->eps); break;
        case 6: v = fabsf(v); break;
        default: v = v > L->alpha ? v : L->alpha; break;
        }
        y[i] = v;
    }
}

void cml__nn_run_layer(const struct nn_net *net, const struct nn_layer *L, float *mem)
{
    const struct nn_blob *bi = &net->blobs[L->in[0]], *bo = &net->blobs[L->out];
    const float *x = mem + bi->off;
    float *y = mem + bo->off;
    if (L->skip)
        return;
    switch (L->kind) {
    case NN_INNER: inner(net, L, mem, x, y, bi->n); break;
    case NN_CONV: conv(L, bi, bo, x, y); break;
    case NN_POOL: pool(L, bi, bo, x, y); break;
    case NN_ACT: activation(net, L, bi, x, y); break;
    case NN_BN:
    case NN_SCALE:
    case NN_BIAS: per_channel(L, bi, x, y); break;
    case NN_SOFTMAX: softmax(net, L, bi, x, y); break;
    case NN_COPY:
        if (!L->chan_last_flatten) {
            memcpy(y, x, bi->n * sizeof(float));
        } else {
            /* [.., C, H, W] -> [.., H, W, C] order */
            int64_t N, C, H, W;
            nchw(&bi->shape, &N, &C, &H, &W);
            for (int64_t n = 0; n < N; n++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t i = 0; i < H * W; i++)
                        y[n * C * H * W + i * C + c] = x[n * C * H * W + c * H * W + i];
        }
        break;
    case NN_TRANSPOSE: transpose(L, bi, bo, x, y); break;
    case NN_CONCAT: concat(net, L, mem); break;
    case NN_ADD:
    case NN_MUL:
    case NN_SUB:
    case NN_MAX:
    case NN_MIN:
    case NN_AVERAGE: elementwise(net, L, mem); break;
    case NN_PAD: pad(L, bi, bo, x, y); break;
    case NN_UPSAMPLE: upsample(L, bi, bo, x, y); break;
    case NN_UNARY: unary(L, bi, x, y); break;
    }
}

void cml__nn_run_layer_rows(const struct nn_net *net, const struct nn_layer *L, float *mem,
                            size_t n_rows, size_t stride)
{
    const struct nn_blob *bi = &net->blobs[L->in[0]], *bo = &net->blobs[L->out];
    if (L->skip)
        return;
    if (net->simd && L->kind == NN_INNER && bi->n == (size_t)L->cin) {
        struct cml__x512_epi e;
        cml__x512_gemm_f32(n_rows, (size_t)L->cout, (size_t)L->cin, mem + bi->off, stride, L->wt,
                           (size_t)L->ldw, L->b, mem + bo->off, stride,
                           epilogue(net, L, mem, stride, &e), L->finite);
        return;
    }
    /* What cml__nn_run_layer would call per row, without its dispatch. */
    if (net->simd && L->kind == NN_ACT &&
        cml__x512_act_f32(L->act, L->alpha, L->beta, mem + bi->off, mem + bo->off, 0)) {
        for (size_t r = 0; r < n_rows; r++)
            cml__x512_act_f32(L->act, L->alpha, L->beta, mem + r * stride + bi->off,
                              mem + r * stride + bo->off, bi->n);
        return;
    }
    if (net->simd && L->kind == NN_SOFTMAX) {
        int64_t in = 1;
        for (int i = L->axis + 1; i < bi->shape.rank; i++)
            in *= bi->shape.d[i];
        size_t len = (size_t)bi->shape.d[L->axis];
        if (in == 1) {
            for (size_t r = 0; r < n_rows; r++)
                for (size_t o = 0; o < bi->n; o += len)
                    cml__x512_softmax_f32(mem + r * stride + bi->off + o,
                                          mem + r * stride + bo->off + o, len);
            return;
        }
    }
    for (size_t r = 0; r < n_rows; r++)
        cml__nn_run_layer(net, L, mem + r * stride);
}
