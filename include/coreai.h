/* coreai.h: the public C API of the coreai generative engine.
 *
 * Conventions. Every function that can fail returns 0 (or a count) on success
 * and a negative CAI_E* code on failure. Functions that create an object take
 * the output pointer first. Where no object exists yet, an optional
 * `struct cai_error *` receives a one-line reason naming the file, field or
 * offset at fault. The library never prints, exits or aborts.
 *
 * Threads. A `struct cai_model` is immutable once opened: share it across
 * threads and sessions freely; it must outlive them. A `struct cai_session`
 * is used by one thread at a time. */
#ifndef COREAI_H
#define COREAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CAI_API
#else
#define CAI_API __attribute__((visibility("default")))
#endif

#define CAI_VERSION_MAJOR 0
#define CAI_VERSION_MINOR 1
#define CAI_VERSION_PATCH 0

/* ---- errors ------------------------------------------------------------ */

#define CAI_ERRORS(X)                                                                              \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(IO, -2, "input/output error")                                                                \
    X(FORMAT, -3, "malformed or unsupported model file")                                           \
    X(RANGE, -4, "argument out of range")                                                          \
    X(CTX_FULL, -5, "context window is full")                                                      \
    X(UNSUPPORTED, -6, "not supported by this build or CPU")                                       \
    X(INVAL, -7, "invalid argument")                                                               \
    X(CANCELLED, -8, "cancelled")                                                                  \
    X(TIMEOUT, -9, "timed out")                                                                    \
    X(STATE, -10, "operation not valid in this state")

enum cai_status {
    CAI_OK = 0,
#define CAI__ERR_ENUM(name, code, msg) CAI_E##name = (code),
    CAI_ERRORS(CAI__ERR_ENUM)
#undef CAI__ERR_ENUM
};

struct cai_error {
    int  code;     /* 0 or a CAI_E* value */
    char msg[256]; /* one line, NUL-terminated, "" when code is 0 */
};

/* Static description of a code ("out of memory"); never NULL. */
CAI_API const char *cai_strerror(int code);
/* Name of a code ("CAI_ENOMEM"); never NULL. */
CAI_API const char *cai_err_name(int code);


/* ---- sampling ---------------------------------------------------------- */

/* How the next token is chosen. The chain runs in this order: penalties,
 * top-k, top-p, min-p, temperature, then a seeded draw. temp <= 0 is greedy
 * (argmax after penalties). Zero or negative values disable a stage:
 * top_k <= 0, top_p >= 1, min_p <= 0, repeat_penalty == 1, presence and
 * frequency penalties == 0. */
struct cai_sampling {
    float    temp;              /* default 0.8 */
    int      top_k;             /* default 40 */
    float    top_p;             /* default 0.95 */
    float    min_p;             /* default 0.05 */
    float    repeat_penalty;    /* default 1.0 (off) */
    float    presence_penalty;  /* default 0 */
    float    frequency_penalty; /* default 0 */
    int      penalty_last_n;    /* tokens of history the penalties see; default 64 */
    uint64_t seed;              /* same seed + same settings = same text */
};
CAI_API struct cai_sampling cai_sampling_default(void);

/* A sampler: the chain above with its own token history (for the
 * penalties) and random state, for callers that run their own decode loop
 * (cai_generate keeps one internally). One per sequence; not thread-safe. */
struct cai_model;
struct cai_sampler;
/* p NULL: cai_sampling_default(). Invalid parameters fail with CAI_EINVAL
 * naming the field. */
CAI_API int  cai_sampler_new(struct cai_sampler **out, const struct cai_model *m,
                             const struct cai_sampling *p, struct cai_error *err);
CAI_API void cai_sampler_free(struct cai_sampler *s); /* NULL is a no-op */
/* Records a token (of the prompt, say) in the history the penalties see;
 * cai_session_sample records the tokens it picks itself. */
CAI_API void cai_sampler_accept(struct cai_sampler *s, int32_t token);

/* ---- chat -------------------------------------------------------------- */

struct cai_chat_msg {
    const char *role;    /* "system", "user", "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
};

/* ---- models ------------------------------------------------------------ */

struct cai_model;

struct cai_model_params {
    bool use_mmap; /* map weights read-only (default true; the only mode today) */
};
CAI_API struct cai_model_params cai_model_params_default(void);

/* Opens a model file (GGUF). Validates the whole file, binds the
 * architecture's tensors and builds the tokenizer; weights stay in the
 * read-only mapping. On failure returns a negative code, sets *out to NULL
 * and writes a reason naming the file and the field into err (may be NULL). */
CAI_API int  cai_model_open(struct cai_model **out, const char *path,
                            const struct cai_model_params *params, struct cai_error *err);
CAI_API void cai_model_close(struct cai_model *m); /* NULL is a no-op */

/* The first session on a model starts repacking its weights for the CPU
 * kernels in a background thread (docs/KERNELS.md, "Packed weights";
 * COREAI_PACK=0 disables it); sessions run meanwhile, on the original
 * layout, with the same results, and get faster as matrices are done. This
 * waits until that work has finished (returns at once if none runs): for
 * benchmarks and profiles that want the steady state. */
CAI_API void cai_model_wait_packed(struct cai_model *m);

struct cai_model_info {
    const char *arch;        /* "llama", "qwen2", ... */
    const char *name;        /* general.name or "" */
    int      n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    float    rope_base, rope_scale, rms_eps;
    uint64_t n_params;       /* elements in all weight tensors */
    uint64_t n_bytes;        /* bytes of all weight tensors */
    const char *tokenizer;   /* "gpt2" (byte-level BPE) or "llama" (SentencePiece) */
    int32_t  bos, eos;       /* -1 when absent */
    bool     has_chat_template;
};
CAI_API void cai_model_get_info(const struct cai_model *m, struct cai_model_info *out);

/* Metadata and tensor directory for `coreai inspect`. Strings are owned by
 * the model. cai_model_meta returns false past the last index. The value is
 * rendered as text (arrays abbreviated). */
CAI_API bool cai_model_meta(const struct cai_model *m, int i, const char **key, char *value,
                            size_t value_cap);
CAI_API bool cai_model_tensor(const struct cai_model *m, int i, const char **name,
                              const char **type_name, int64_t ne[4], int *n_dims,
                              uint64_t *n_bytes);
/* The model's chat template source, or NULL. */
CAI_API const char *cai_model_chat_template(const struct cai_model *m);

/* ---- files ------------------------------------------------------------- */

/* Progress of a long file operation: bytes done of the total. */
typedef void (*cai_progress_fn)(void *user, uint64_t done, uint64_t total);

/* Imports a GGUF file losslessly into a .coreaimodel (docs/FORMAT.md). The
 * output appears only when complete (temporary file, fsync, rename). */
CAI_API int cai_convert_gguf(const char *in_path, const char *out_path, cai_progress_fn progress,
                             void *user, struct cai_error *err);

/* Checks every checksum of a .coreaimodel. Returns 0 when all match; else
 * a negative code with err naming the first tensor that fails. The counts
 * go to n_tensors and n_bad when not NULL. */
CAI_API int cai_verify(const char *path, uint64_t *n_tensors, uint64_t *n_bad,
                       struct cai_error *err);

/* ---- tokens ------------------------------------------------------------ */

/* Tokenizes n_bytes of text. add_special: BOS/EOS as the model asks;
 * parse_special: text spelling a special token becomes that token. Writes up
 * to n_max ids and returns how many the text needs (retry with a bigger
 * buffer if that exceeds n_max), or a negative code. */
CAI_API int cai_tokenize(const struct cai_model *m, const char *text, size_t n_bytes,
                         bool add_special, bool parse_special, int32_t *out, int n_max);
/* The text of a token (control tokens only when `special`). Returns its full
 * length (writes at most cap bytes), or a negative code. */
CAI_API int cai_token_to_piece(const struct cai_model *m, int32_t id, bool special, char *buf,
                               size_t cap);
CAI_API bool cai_token_is_eog(const struct cai_model *m, int32_t id);

/* ---- sessions: one sequence of tokens with its KV cache ---------------- */

struct cai_session;

struct cai_session_params {
    int  n_ctx;     /* context length in tokens; 0: min(training context, 4096) */
    int  n_batch;   /* most tokens per forward pass; 0: 256 */
    int  n_threads; /* 0: one per online CPU */
    bool kv_f32;    /* keep K/V and attention in f32 (exact; twice the cache memory).
                     * Default false: an f16 cache with llama.cpp's arithmetic. */
};
CAI_API struct cai_session_params cai_session_params_default(void);

CAI_API int  cai_session_new(struct cai_session **out, struct cai_model *m,
                             const struct cai_session_params *params, struct cai_error *err);
CAI_API void cai_session_free(struct cai_session *s); /* NULL is a no-op */
/* The last error message of this session ("" if none); valid until the next call. */
CAI_API const char *cai_session_errmsg(const struct cai_session *s);

/* Appends tokens to the sequence and runs the model over them. With
 * all_logits, logits for every appended token are kept (n_tokens rows),
 * else only for the last. Returns 0 or a negative code (CAI_ECTX_FULL when
 * the context would overflow; nothing is appended then). */
CAI_API int cai_session_decode(struct cai_session *s, const int32_t *tokens, int n_tokens,
                               bool all_logits);
/* Logits row i of the last decode (i = -1: the last row); NULL if absent.
 * Valid until the next decode. */
CAI_API const float *cai_session_logits(const struct cai_session *s, int i);
/* Tokens currently in the sequence (and so in the KV cache). */
CAI_API int  cai_session_n_tokens(const struct cai_session *s);
CAI_API const int32_t *cai_session_tokens(const struct cai_session *s);
/* Drops tokens from position n_keep on (0 clears the sequence). */
CAI_API void cai_session_truncate(struct cai_session *s, int n_keep);

/* Picks the next token from the session's last logits row (which it uses
 * as scratch: read cai_session_logits first if you need them) with smp,
 * records it in smp's history and, while profiling is on, times it as the
 * profile's "sample" operation. Returns the token, or a negative code (no
 * logits yet, or a sampler made for another vocabulary size). */
CAI_API int32_t cai_session_sample(struct cai_session *s, struct cai_sampler *smp);

/* ---- profiling --------------------------------------------------------- */

/* One row of the per-layer, per-operation profile. */
struct cai_profile_entry {
    int         layer;  /* 0..n_layer-1, or -1 for work outside the layers */
    const char *op;     /* "matmul_qkv", "attention", "attn_norm", "sample", ... (static string) */
    double      ms;     /* wall time accumulated */
    uint64_t    bytes;  /* bytes read and written (weights, activations, KV) */
    uint64_t    flops;  /* arithmetic operations (multiply-add = 2) */
    uint64_t    calls;
    /* NULL, or for one tensor's share of a fused matmul (op "attn_q", "attn_k",
     * "attn_v", "ffn_gate", "ffn_up") that matmul's op ("matmul_qkv",
     * "matmul_gate_up"): its wall time split in proportion to the threads'
     * time in each tensor's rows; bytes and flops are the tensor's own. Such
     * rows are a breakdown of their parent, not extra time. */
    const char *part_of;
};

/* Turns per-operation timing on (resetting the counters) or off. */
CAI_API int cai_session_profile_enable(struct cai_session *s, bool on);
/* Copies up to n_max non-empty profile rows (layers in order, then the rest)
 * and returns how many there are. */
CAI_API int cai_session_profile_read(const struct cai_session *s, struct cai_profile_entry *out,
                                     int n_max);

/* ---- layer debugger ---------------------------------------------------- */

/* Called during every decode with the residual stream of the batch being
 * evaluated: once after the embedding lookup (layer -1), then after each
 * layer (0..n_layer-1). x[n_tok][n_embd] holds tokens at positions pos0..;
 * it is only valid during the call. Runs on the decoding thread; it must not
 * call back into the session. */
typedef void (*cai_layer_fn)(void *user, int layer, int pos0, int n_tok, int n_embd,
                             const float *x);
/* Sets (fn non-NULL) or clears the hook. */
CAI_API void cai_session_set_layer_hook(struct cai_session *s, cai_layer_fn fn, void *user);

/* ---- embeddings -------------------------------------------------------- */

/* The embedding of a text: the model's final-norm hidden states averaged
 * over the text's tokens (BOS added as the model asks), scaled to unit
 * length; llama.cpp's mean pooling. Clears the session's sequence first
 * (the text must fit its context) and leaves the text in it. Writes
 * n_embd floats to out (cap of them at most) and returns n_embd (more than
 * cap: nothing written), or a negative CAI_E* code with a message in
 * cai_session_errmsg. *n_tokens (may be NULL) gets the text's tokens. */
CAI_API int cai_embed(struct cai_session *s, const char *text, size_t n_bytes, float *out,
                      int cap, int *n_tokens);

/* ---- generation -------------------------------------------------------- */

struct cai_piece {
    const char *text;    /* whole UTF-8 characters; not NUL-terminated */
    size_t      n_bytes;
    int32_t     token;   /* the token that completed this text (-1 for a final flush) */
};

/* Called for each piece of generated text, on the generating thread.
 * Return nonzero to stop the generation. */
typedef int (*cai_piece_fn)(void *user, const struct cai_piece *piece);

enum cai_stop_reason {
    CAI_STOP_NONE = 0,
    CAI_STOP_EOG,        /* end-of-generation token (JSON mode: or the object closed) */
    CAI_STOP_MAX_TOKENS,
    CAI_STOP_STRING,     /* a stop string matched (it is not emitted) */
    CAI_STOP_CALLBACK,   /* the callback or a cancel asked to stop */
    CAI_STOP_CTX_FULL,
};

struct cai_gen_params {
    int                 max_tokens;   /* default 256; <= 0: until EOG or context full */
    struct cai_sampling sampling;
    const char *const  *stop;         /* stop strings, or NULL */
    int                 n_stop;
    bool                add_special;  /* add BOS etc. as the model asks (default true) */
    bool                parse_special;/* special-token text in the prompt (default false; chat: true) */
    bool                render_special; /* emit control tokens' text (default false) */
    /* JSON mode (default false): the output is one JSON object. Tokens whose
     * text cannot continue a valid object are never sampled, and generation
     * stops (CAI_STOP_EOG) when the object closes; max_tokens, stop strings
     * and a full context can still cut it short. */
    bool                json;
};
CAI_API struct cai_gen_params cai_gen_params_default(void);

struct cai_gen_result {
    int     n_prompt;        /* prompt tokens */
    int     n_reused;        /* of which were already in the KV cache */
    int     n_gen;           /* generated tokens */
    int     stop_reason;     /* enum cai_stop_reason */
    int64_t t_prompt_ns;     /* prompt processing time */
    int64_t t_gen_ns;        /* generation time (after the first token) */
    int64_t t_first_ns;      /* time to first token, from the call */
};

/* Generates a continuation of `prompt`. The session keeps the conversation:
 * the longest prefix of the new prompt's tokens already in the cache is
 * reused, the rest is processed. Blocks until done; calls on_piece (may be
 * NULL) per piece. */
CAI_API int cai_generate(struct cai_session *s, const char *prompt, const struct cai_gen_params *p,
                         cai_piece_fn on_piece, void *user, struct cai_gen_result *res);

/* Renders `msgs` with the model's chat template (adding the assistant
 * prompt) and generates the reply. Multi-turn: pass the whole conversation
 * each time; the already-processed part is reused from the KV cache. */
CAI_API int cai_chat(struct cai_session *s, const struct cai_chat_msg *msgs, size_t n_msgs,
                     const struct cai_gen_params *p, cai_piece_fn on_piece, void *user,
                     struct cai_gen_result *res);
/* Renders msgs with the model's template into a malloc'd string (free with
 * cai_free). */
CAI_API int cai_chat_render(const struct cai_model *m, const struct cai_chat_msg *msgs,
                            size_t n_msgs, bool add_generation_prompt, char **out,
                            struct cai_error *err);
CAI_API void cai_free(void *p);

/* ---- asynchronous generation ------------------------------------------- */

struct cai_job;

/* Starts cai_generate (prompt != NULL) or cai_chat (msgs != NULL) on a
 * background thread. The session belongs to the job until cai_job_free. The
 * prompt, messages and stop strings are copied. */
CAI_API int cai_job_start(struct cai_job **out, struct cai_session *s, const char *prompt,
                          const struct cai_chat_msg *msgs, size_t n_msgs,
                          const struct cai_gen_params *p);
/* Waits up to timeout_ms (-1: forever) for the next piece. Returns 1 with a
 * piece (text valid until the next call), 0 when the generation has ended
 * (see cai_job_result), CAI_ETIMEOUT, or another negative code on failure. */
CAI_API int  cai_job_next(struct cai_job *j, struct cai_piece *out, int timeout_ms);
/* Asks the generation to stop soon; cai_job_next then drains and returns 0. */
CAI_API void cai_job_cancel(struct cai_job *j);
/* The result once cai_job_next returned 0; the status of the generation. */
CAI_API int  cai_job_result(struct cai_job *j, struct cai_gen_result *res);
/* Cancels if running, joins the thread, frees. NULL is a no-op. */
CAI_API void cai_job_free(struct cai_job *j);

#ifdef __cplusplus
}
#endif
#endif /* COREAI_H */
