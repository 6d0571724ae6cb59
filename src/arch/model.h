/* model.h: a loaded model: hyperparameters, bound weight tensors, tokenizer.
 *
 * The model is immutable after cai_model_open(), except for the packed
 * copies of its matrices (cai__weight.packed, published atomically by the
 * background packer of pack.c) and the packer's own state under pack_lock.
 * Weights point into the file's read-only mapping; shapes were checked
 * against the architecture at load, so the forward pass indexes them
 * without checks. */
#ifndef CAI_MODEL_H
#define CAI_MODEL_H

#include <pthread.h>

#include "../base/base.h"
#include "../format/gguf.h"
#include "../tensor/types.h"
#include "../tok/tok.h"

#define CAI__MAX_LAYERS   512
#define CAI__MAX_HEAD_DIM 512

/* A weight matrix or vector: ne[0] is the row length (input features). */
struct cai__weight {
    const void *data;      /* NULL when the optional tensor is absent */
    uint32_t    type;      /* enum cai_type */
    int64_t     ne[4];
    size_t      row_bytes; /* bytes of one row of ne[0] elements */
    bool        f32_input; /* matmuls take the f32 input as is (no 8-bit activation rounding) */
    /* The packed copy (kernels.h, "Packed weights") once cai__model_pack made
     * it; NULL before and for weights that have none. Read with
     * __atomic_load_n (sessions run while a new one packs). */
    const void *packed;
};

enum cai__rope_type {
    CAI__ROPE_NORM = 0, /* rotate pairs (2i, 2i+1): GGUF llama (Q/K pre-permuted) */
    CAI__ROPE_NEOX = 2, /* rotate pairs (i, i + d/2): qwen2 and others */
};

struct cai__hparams {
    int   n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    int   n_rot;      /* rotary dims (<= head_dim) */
    float rope_base;  /* theta */
    float rope_scale; /* position multiplier (1/linear factor) */
    float rms_eps;
    int   rope_type;  /* enum cai__rope_type */
    /* Gemma 3 (zero / false for the Llama family): */
    float emb_scale;     /* the embedding rows times this (0: not scaled) */
    float q_scale;       /* queries times this after RoPE, scores then unscaled
                          * (0: scores times 1/sqrt(head_dim)) */
    bool  ffn_gelu;      /* gate activation GELU (tanh form) instead of SiLU */
    int   n_swa;         /* sliding window in positions (0: every layer global) */
    float rope_base_swa; /* RoPE theta of the sliding-window layers (scale 1) */
    bool  swa[CAI__MAX_LAYERS]; /* layer il attends over the last n_swa positions */
    float logit_softcap; /* logits = cap * tanh(logits / cap) (0: none) */
};

struct cai__layer {
    struct cai__weight attn_norm;          /* [n_embd] */
    struct cai__weight wq, wk, wv, wo;     /* [n_embd -> n_head*hd], [n_embd -> n_kv*hd] x2, [n_head*hd -> n_embd] */
    struct cai__weight bq, bk, bv;         /* optional biases */
    struct cai__weight ffn_norm;           /* [n_embd] */
    struct cai__weight w_gate, w_up;       /* [n_embd -> n_ff] */
    struct cai__weight w_down;             /* [n_ff -> n_embd] */
    /* Gemma 3 (NULL data otherwise): */
    struct cai__weight q_norm, k_norm;     /* [head_dim] RMSNorm of each head before RoPE */
    struct cai__weight post_attn_norm;     /* [n_embd] on the attention output */
    struct cai__weight post_ffn_norm;      /* [n_embd] on the feed-forward output */
};

struct cai_model {
    char               *path;
    struct cai_gguf    *gguf;
    char               *arch;
    char               *name;
    struct cai__hparams hp;
    struct cai__weight  tok_embd;    /* [n_vocab rows of n_embd] */
    struct cai__weight  output_norm; /* [n_embd] */
    struct cai__weight  output;      /* [n_vocab rows of n_embd]; = tok_embd when tied */
    struct cai__weight  rope_freqs;  /* optional [n_rot/2] f32 frequency divisors */
    struct cai__layer  *layers;      /* [n_layer] */
    struct cai_tok     *tok;
    char               *tokenizer_model;
    char               *chat_template; /* NULL when absent */
    uint64_t            n_params, n_bytes;
    char              **kv_keys;      /* [gguf->n_kv] NUL-terminated copies, for inspection */
    char              **tensor_names; /* [gguf->n_tensors] */
    char               *names_pool;
    /* Packed weights (pack.c), made by the first session that can use them. */
    pthread_mutex_t     pack_lock;
    pthread_cond_t      pack_cond;    /* signalled when pack_done turns true */
    bool                pack_tried;
    bool                pack_done;    /* the packer has finished */
    int                 pack_cancel;  /* atomic: the model is closing */
    int                 pack_go;      /* atomic: the packer may begin */
    pthread_t           pack_thread;
    void               *pack_mem;     /* anonymous mapping of pack_bytes; set
                                       * exactly while pack_thread exists */
    size_t              pack_bytes;
};

struct cai_kernels;
/* Starts making the packed copy of the model's matmul weights for kernel
 * table k (the types it has mm_packed for) in a background thread, unless
 * COREAI_PACK=0, or unless it would take more than half the available
 * memory (models larger than RAM stay demand-loaded from the file) and
 * COREAI_PACK=1 does not force it. Each matrix is used packed as soon as it
 * is done; its file pages are released from this process. Once per model;
 * thread-safe. Failing to pack is not an error: the original rows stay in
 * use. */
void cai__model_pack(struct cai_model *m, const struct cai_kernels *k);
/* Lets the packer begin (it waits for the model's first decode to finish:
 * faulting in fresh memory slows the other vCPU down too on this machine,
 * by up to 1.7x during a prompt, so the first token does not wait for it).
 * Cheap after the first call. */
void cai__model_pack_kick(struct cai_model *m);
/* (cai_model_wait_packed, coreai.h, waits for the packer.) */
/* Stops the packer and releases the packed copy (cai_model_close). */
void cai__model_unpack(struct cai_model *m);

#endif /* CAI_MODEL_H */
