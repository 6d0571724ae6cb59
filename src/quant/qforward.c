/* qforward.c: a plain float forward pass of one decoder layer over many
 * tokens, for calibration.
 *
 * The same computation as src/arch/forward.c (RMSNorm, Q/K/V, RoPE as
 * llama.cpp builds its angles, causal grouped-query attention, SwiGLU),
 * but in f32 throughout (no activation quantization, no f16 KV cache) and
 * over all calibration tokens at once, so the quantizer can see each
 * matmul's whole input (the hook) and change the weights the layer runs
 * with. Tokens come as consecutive sequences of seq_len tokens. */
#include <math.h>
#include <string.h>

#include "quant_int.h"

static void run(struct cai_pool *pool, cai_pool_fn fn, void *ctx)
{
    if (pool)
        cai__pool_run(pool, fn, ctx);
    else
        fn(ctx, 0, 1);
}

static int n_threads_of(struct cai_pool *pool)
{
    return pool ? cai__pool_n_threads(pool) : 1;
}

/* ---- matmul -------------------------------------------------------------- */

struct mm_job {
    const struct cai_kernels *k;
    const float              *A, *W, *bias;
    float                    *Y;
    int64_t                   n_tok, n_in, n_out;
};

static void mm_worker(void *ctx, int ith, int nth)
{
    const struct mm_job *j = ctx;
    const int64_t RT = 8, TT = 64;
    int64_t n_rt = (j->n_out + RT - 1) / RT;
    for (int64_t rt = n_rt * ith / nth; rt < n_rt * (ith + 1) / nth; rt++) {
        int64_t o0 = rt * RT, o1 = CAI_MIN(o0 + RT, j->n_out);
        for (int64_t t0 = 0; t0 < j->n_tok; t0 += TT) {
            int64_t t1 = CAI_MIN(t0 + TT, j->n_tok);
            for (int64_t o = o0; o < o1; o++) {
                const float *w = j->W + o * j->n_in;
                float b = j->bias ? j->bias[o] : 0.0f;
                for (int64_t t = t0; t < t1; t++)
                    j->Y[t * j->n_out + o] = j->k->dot_f32(w, j->A + t * j->n_in, j->n_in) + b;
            }
        }
    }
}

void cai__qfwd_matmul(const struct cai_kernels *k, struct cai_pool *pool, const float *A,
                      int64_t n_tok, int64_t n_in, const float *W, int64_t n_out,
                      const float *bias, float *Y)
{
    struct mm_job j = {.k = k, .A = A, .W = W, .bias = bias, .Y = Y, .n_tok = n_tok,
                       .n_in = n_in, .n_out = n_out};
    run(pool, mm_worker, &j);
}

/* ---- statistics ---------------------------------------------------------- */

struct st_job {
    const struct cai_kernels *k;
    const float              *At; /* [n_in][n_tok] */
    float                    *H;
    int64_t                   n_tok, n_in;
};

static void st_worker(void *ctx, int ith, int nth)
{
    const struct st_job *j = ctx;
    /* Rows dealt round-robin so the triangle's work is balanced. */
    for (int64_t i = ith; i < j->n_in; i += nth) {
        const float *ai = j->At + i * j->n_tok;
        for (int64_t c = i; c < j->n_in; c++) {
            float v = j->k->dot_f32(ai, j->At + c * j->n_tok, j->n_tok);
            j->H[i * j->n_in + c] += v;
            if (c != i)
                j->H[c * j->n_in + i] += v;
        }
    }
}

int cai__qfwd_stats(const struct cai_kernels *k, struct cai_pool *pool, const float *A,
                    int64_t n_tok, int64_t n_in, float *H, float *abssum, struct cai_error *err)
{
    if (abssum)
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t i = 0; i < n_in; i++)
                abssum[i] += fabsf(A[t * n_in + i]);
    if (!H)
        return 0;
    float *At = cai__malloc_array((size_t)n_tok * (size_t)n_in, sizeof(float));
    if (!At)
        return cai__fail(err, CAI_ENOMEM, "calibration: out of memory for statistics");
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < n_in; i++)
            At[i * n_tok + t] = A[t * n_in + i];
    struct st_job j = {.k = k, .At = At, .H = H, .n_tok = n_tok, .n_in = n_in};
    run(pool, st_worker, &j);
    cai__free(At);
    return 0;
}

/* ---- setup --------------------------------------------------------------- */

static float *alloc_f(size_t n, bool *ok)
{
    if (!*ok)
        return NULL;
    float *p = cai__malloc_array(n ? n : 1, sizeof(float));
    if (!p)
        *ok = false;
    return p;
}

static void rope_table(struct cai__qfwd *f, const float *freq_factors);

int cai__qfwd_init(struct cai__qfwd *f, const struct cai__hparams *hp, const float *freq_factors,
                   const struct cai_kernels *k, struct cai_pool *pool, int64_t n_tok, int seq_len,
                   struct cai_error *err)
{
    memset(f, 0, sizeof(*f));
    if (hp->ffn_gelu || hp->emb_scale > 0.0f || hp->q_scale > 0.0f || hp->n_swa > 0)
        return cai__fail(err, CAI_EUNSUPPORTED,
                         "calibration: this pass computes Llama-family layers; Gemma 3's (norms "
                         "around attention and FFN, GELU, sliding windows) are not supported yet: "
                         "use a method without calibration");
    if (n_tok <= 0 || seq_len <= 0 || n_tok % seq_len != 0)
        return cai__fail(err, CAI_EINVAL, "calibration: %lld tokens are not whole sequences of %d",
                         (long long)n_tok, seq_len);
    f->hp = hp;
    f->k = k;
    f->pool = pool;
    f->n_tok = n_tok;
    f->seq_len = seq_len;
    size_t nt = (size_t)n_tok;
    size_t q_dim = (size_t)hp->n_head * (size_t)hp->head_dim;
    size_t kv_dim = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    size_t wide = CAI_MAX((size_t)hp->n_embd, q_dim);
    bool ok = true;
    f->xn = alloc_f(nt * wide, &ok);
    f->q = alloc_f(nt * q_dim, &ok);
    f->kk = alloc_f(nt * kv_dim, &ok);
    f->v = alloc_f(nt * kv_dim, &ok);
    f->att = alloc_f(nt * q_dim + (size_t)n_threads_of(pool) * (size_t)seq_len, &ok);
    f->g = alloc_f(nt * (size_t)hp->n_ff, &ok);
    f->u = alloc_f(nt * (size_t)hp->n_ff, &ok);
    f->tmp = alloc_f(nt * (size_t)hp->n_embd, &ok);
    f->inv_freq = alloc_f((size_t)seq_len * (size_t)hp->n_rot, &ok);
    if (!ok) {
        cai__qfwd_deinit(f);
        return cai__fail(err, CAI_ENOMEM, "calibration: out of memory for %lld tokens",
                         (long long)n_tok);
    }
    rope_table(f, freq_factors);
    return 0;
}

/* cos/sin per position and rotary pair, built as the engine builds them. */
static void rope_table(struct cai__qfwd *f, const float *freq_factors)
{
    const struct cai__hparams *hp = f->hp;
    const float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    int half = hp->n_rot / 2;
    for (int p = 0; p < f->seq_len; p++) {
        float *cs = f->inv_freq + (size_t)p * hp->n_rot;
        float theta = (float)p;
        for (int i = 0; i < half; i++) {
            float th = hp->rope_scale * (freq_factors ? theta / freq_factors[i] : theta);
            cs[2 * i] = cosf(th);
            cs[2 * i + 1] = sinf(th);
            theta *= theta_scale;
        }
    }
}

void cai__qfwd_deinit(struct cai__qfwd *f)
{
    cai__free(f->xn);
    cai__free(f->q);
    cai__free(f->kk);
    cai__free(f->v);
    cai__free(f->att);
    cai__free(f->g);
    cai__free(f->u);
    cai__free(f->tmp);
    cai__free(f->inv_freq);
    memset(f, 0, sizeof(*f));
}

/* ---- the layer ----------------------------------------------------------- */

static void rope(const struct cai__qfwd *f, float *v, int n_heads, int pos)
{
    const struct cai__hparams *hp = f->hp;
    const float *cs = f->inv_freq + (size_t)pos * hp->n_rot;
    int half = hp->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hp->head_dim;
        for (int i = 0; i < half; i++) {
            int a = hp->rope_type == CAI__ROPE_NEOX ? i : 2 * i;
            int b = hp->rope_type == CAI__ROPE_NEOX ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
    }
}

struct att_job {
    struct cai__qfwd *f;
};

static void att_worker(void *ctx, int ith, int nth)
{
    struct cai__qfwd *f = ((const struct att_job *)ctx)->f;
    const struct cai__hparams *hp = f->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const int64_t q_dim = (int64_t)hp->n_head * hd, kv_dim = (int64_t)hp->n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *sc = f->att + f->n_tok * q_dim + (int64_t)ith * f->seq_len;
    int64_t n_items = f->n_tok * hp->n_head;
    for (int64_t it = n_items * ith / nth; it < n_items * (ith + 1) / nth; it++) {
        int64_t t = it / hp->n_head;
        int h = (int)(it % hp->n_head), kvh = h / group;
        int pos = (int)(t % f->seq_len);
        int64_t t0 = t - pos; /* first token of this sequence */
        const float *qv = f->q + t * q_dim + (int64_t)h * hd;
        float max = -INFINITY;
        for (int p = 0; p <= pos; p++) {
            sc[p] = f->k->dot_f32(qv, f->kk + (t0 + p) * kv_dim + (int64_t)kvh * hd, hd) * scale;
            max = sc[p] > max ? sc[p] : max;
        }
        float sum = 0.0f;
        for (int p = 0; p <= pos; p++) {
            sc[p] = expf(sc[p] - max);
            sum += sc[p];
        }
        float *out = f->att + t * q_dim + (int64_t)h * hd;
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p <= pos; p++)
            f->k->axpy_f32(out, sc[p] / sum, f->v + (t0 + p) * kv_dim + (int64_t)kvh * hd, hd);
    }
}

int cai__qfwd_layer(struct cai__qfwd *f, struct cai__qlayer *lw, int layer, float *x,
                    cai__qhook hook, void *user)
{
    const struct cai__hparams *hp = f->hp;
    const struct cai_kernels *k = f->k;
    const int64_t d = hp->n_embd, N = f->n_tok;
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    int rc;

    for (int64_t t = 0; t < N; t++)
        k->rmsnorm(f->xn + t * d, x + t * d, lw->attn_norm, d, hp->rms_eps);
    if (hook && (rc = hook(user, layer, CAI__QP_ATTN, f->xn, N, d, lw)) != 0)
        return rc;
    cai__qfwd_matmul(k, f->pool, f->xn, N, d, lw->wq, q_dim, lw->bq, f->q);
    cai__qfwd_matmul(k, f->pool, f->xn, N, d, lw->wk, kv_dim, lw->bk, f->kk);
    cai__qfwd_matmul(k, f->pool, f->xn, N, d, lw->wv, kv_dim, lw->bv, f->v);
    for (int64_t t = 0; t < N; t++) {
        int pos = (int)(t % f->seq_len);
        rope(f, f->q + t * q_dim, hp->n_head, pos);
        rope(f, f->kk + t * kv_dim, hp->n_head_kv, pos);
    }
    struct att_job aj = {.f = f};
    run(f->pool, att_worker, &aj);
    if (hook && (rc = hook(user, layer, CAI__QP_ATTN_OUT, f->att, N, q_dim, lw)) != 0)
        return rc;
    cai__qfwd_matmul(k, f->pool, f->att, N, q_dim, lw->wo, d, NULL, f->tmp);
    for (int64_t i = 0; i < N * d; i++)
        x[i] += f->tmp[i];

    for (int64_t t = 0; t < N; t++)
        k->rmsnorm(f->xn + t * d, x + t * d, lw->ffn_norm, d, hp->rms_eps);
    if (hook && (rc = hook(user, layer, CAI__QP_FFN, f->xn, N, d, lw)) != 0)
        return rc;
    cai__qfwd_matmul(k, f->pool, f->xn, N, d, lw->wg, hp->n_ff, NULL, f->g);
    cai__qfwd_matmul(k, f->pool, f->xn, N, d, lw->wu, hp->n_ff, NULL, f->u);
    k->silu_mul(f->g, f->g, f->u, N * hp->n_ff);
    if (hook && (rc = hook(user, layer, CAI__QP_FFN_DOWN, f->g, N, hp->n_ff, lw)) != 0)
        return rc;
    cai__qfwd_matmul(k, f->pool, f->g, N, hp->n_ff, lw->wd, d, NULL, f->tmp);
    for (int64_t i = 0; i < N * d; i++)
        x[i] += f->tmp[i];
    return 0;
}
