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

/* Operations the profiler separates. */
enum cai__op {
    CAI__OP_EMBED,
    CAI__OP_ATTN_NORM,
    CAI__OP_QKV,      /* matmul attn_q/k/v (with activation quantization) */
    CAI__OP_ROPE_KV,  /* biases, RoPE, KV-cache write */
    CAI__OP_ATTN,     /* scores, softmax, weighted values */
    CAI__OP_ATTN_OUT, /* matmul attn_output */
    CAI__OP_FFN_NORM,
    CAI__OP_GATE_UP,  /* matmul ffn_gate/ffn_up */
    CAI__OP_SILU,
    CAI__OP_DOWN,     /* matmul ffn_down */
    CAI__OP_RESIDUAL,
    CAI__OP_OUT_NORM,
    CAI__OP_OUTPUT,   /* matmul output (logits) */
    CAI__OP_SAMPLE,   /* recorded by the generation loop */
    /* Each tensor's share of a fused matmul above (its wall time split in
     * proportion to the threads' time in each tensor's rows): */
    CAI__OP_MM_Q,     /* of CAI__OP_QKV */
    CAI__OP_MM_K,
    CAI__OP_MM_V,
    CAI__OP_MM_GATE,  /* of CAI__OP_GATE_UP */
    CAI__OP_MM_UP,
    CAI__OP_COUNT
};
/* The fused op a tensor-share op belongs to, or -1. */
int cai__op_parent(int op);

/* Accumulated time, bytes and arithmetic per (layer, op); layer n_layer
 * holds the ops outside the layers. */
struct cai__prof_cell {
    int64_t  ns;
    uint64_t bytes, flops, calls;
};

struct cai__fwd {
    const struct cai_model   *m;
    const struct cai_kernels *k;
    struct cai_pool          *pool;
    int       n_ctx, n_batch, n_threads;
    int       kv_dim;      /* n_head_kv * head_dim */
    int       q_dim;       /* n_head * head_dim */
    bool      kv_f32;      /* caches hold f32 (else f16); see cai_session_params.kv_f32 */
    void     *k_cache;     /* [n_layer][n_ctx][kv_dim] (mmap'd, k_bytes) */
    size_t    k_bytes, v_bytes;
    void     *v_cache;     /* [n_layer][kv_dim][n_ctx_pad] transposed, as llama.cpp keeps V
                            * without flash attention, so the weighted sum over positions
                            * is one contiguous dot product per dimension */
    int       n_ctx_pad;   /* n_ctx rounded up to 64 */
    float    *x;           /* [n_batch][n_embd] residual stream */
    float    *xb;          /* [n_batch][max(n_embd, q_dim)] normed input / attention output */
    float    *q;           /* [n_batch][q_dim] */
    float    *kt, *vt;     /* [n_batch][kv_dim] new keys and values */
    float    *hg, *hu;     /* [n_batch][n_ff] gate and up projections */
    float    *tmp;         /* [n_batch][n_embd] projection output before the residual add */
    uint8_t  *xq;          /* [n_batch][xq_stride] activations in a vec_dot type */
    size_t    xq_stride;
    float    *scores;      /* [n_threads][n_ctx] attention scratch */
    /* Decode attention split over the pool from att_split_min positions on
     * (0: never; COREAI_ATT_SPLIT overrides): every head's scores [n_head]
     * [n_ctx_pad] floats, then probabilities [n_head][n_ctx_pad] f16, and
     * the queries [n_head][head_dim] f16; NULL when never used. */
    int       att_split_min;
    uint8_t  *att_split;
    uint8_t  *mm_scratch;  /* [n_threads][CAI__MM_SCRATCH_BYTES] matmul workspaces, or NULL */
    float    *inv_freq;    /* [n_rot/2] rotary frequencies (scale and factors applied) */
    float    *rope_cs;     /* [n_batch][n_rot] cos,sin pairs for the current batch */
    float    *rope_cs_swa; /* the same with the sliding-window layers' base, or NULL */
    float     kq_scale;    /* scores = kq_scale * K.Q (1 when the queries were scaled) */
    struct cai__prof_cell *prof; /* [n_layer + 1][CAI__OP_COUNT] or NULL when off */
    /* Layer debugger (cai_session_set_layer_hook): the residual stream after
     * the embedding (layer -1) and after each layer; NULL when off. */
    void (*layer_hook)(void *user, int layer, int pos0, int n_tok, int n_embd, const float *x);
    void  *layer_hook_user;
};

const char *cai__op_name(int op);

int  cai__fwd_init(struct cai__fwd *f, const struct cai_model *m, const struct cai_kernels *k,
                   int n_ctx, int n_batch, int n_threads, bool kv_f32, struct cai_error *err);
void cai__fwd_deinit(struct cai__fwd *f);

/* Evaluates tokens[0..n) (n <= n_batch, all ids < n_vocab, pos0 + n <=
 * n_ctx: the caller checks) at positions pos0.., writing their keys and
 * values into the cache. Logits for the last n_out tokens go to
 * logits[n_out][n_vocab] (n_out 0..n). */
void cai__fwd_eval(struct cai__fwd *f, const int32_t *tokens, int n, int pos0, int n_out,
                   float *logits);

#endif /* CAI_FORWARD_H */
