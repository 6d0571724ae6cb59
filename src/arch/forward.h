/* forward.h: the Llama-family forward pass over a contiguous KV cache.
 *
 * A `struct cai__fwd` is the mutable compute state of one sequence: the KV
 * cache and scratch buffers, sized once from the hyperparameters, n_ctx and
 * n_batch, so evaluation allocates nothing. One thread drives it at a time;
 * kernels fan out over the thread pool. */
#ifndef CAI_FORWARD_H
#define CAI_FORWARD_H

#include "../base/pool.h"
#include "../kernels/kernels.h"
#include "model.h"

struct cai__fwd {
    const struct cai_model   *m;
    const struct cai_kernels *k;
    struct cai_pool          *pool;
    int       n_ctx, n_batch, n_threads;
    int       kv_dim;      /* n_head_kv * head_dim */
    int       q_dim;       /* n_head * head_dim */
    cai_half *k_cache;     /* [n_layer][n_ctx][kv_dim] */
    cai_half *v_cache;     /* [n_layer][n_ctx][kv_dim] */
    float    *x;           /* [n_batch][n_embd] residual stream */
    float    *xb;          /* [n_batch][max(n_embd, q_dim)] normed input / attention output */
    float    *q;           /* [n_batch][q_dim] */
    float    *kt, *vt;     /* [n_batch][kv_dim] new keys and values */
    float    *hg, *hu;     /* [n_batch][n_ff] gate and up projections */
    float    *tmp;         /* [n_batch][n_embd] projection output before the residual add */
    uint8_t  *xq;          /* [n_batch][xq_stride] activations in a vec_dot type */
    size_t    xq_stride;
    float    *scores;      /* [n_threads][n_ctx] attention scratch */
    float    *inv_freq;    /* [n_rot/2] rotary frequencies (scale and factors applied) */
    float    *rope_cs;     /* [n_batch][n_rot] cos,sin pairs for the current batch */
};

int  cai__fwd_init(struct cai__fwd *f, const struct cai_model *m, const struct cai_kernels *k,
                   int n_ctx, int n_batch, int n_threads, struct cai_error *err);
void cai__fwd_deinit(struct cai__fwd *f);

/* Evaluates tokens[0..n) (n <= n_batch, all ids < n_vocab, pos0 + n <=
 * n_ctx: the caller checks) at positions pos0.., writing their keys and
 * values into the cache. Logits for the last n_out tokens go to
 * logits[n_out][n_vocab] (n_out 0..n). */
void cai__fwd_eval(struct cai__fwd *f, const int32_t *tokens, int n, int pos0, int n_out,
                   float *logits);

#endif /* CAI_FORWARD_H */
