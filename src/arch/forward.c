/* forward.c: one batched forward pass of a Llama-family decoder.
 *
 * Per layer: x += Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)), then
 * x += Wdown·(silu(Wgate·n(x)) * Wup·n(x)), with n = RMSNorm. Matmuls run on
 * quantized activations (the weight type's vec_dot type), split by output
 * rows across the pool; attention is split by (token, head) pairs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "forward.h"

/* ---- profiling --------------------------------------------------------- */

const char *cai__op_name(int op)
{
    static const char *names[CAI__OP_COUNT] = {
        "embed",    "attn_norm", "matmul_qkv", "rope_kv", "attention", "matmul_attn_out", "ffn_norm",
        "matmul_gate_up", "silu_mul", "matmul_down", "residual", "output_norm", "matmul_output",
        "sample", "attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"};
    return op >= 0 && op < CAI__OP_COUNT ? names[op] : "?";
}

int cai__op_parent(int op)
{
    return op >= CAI__OP_MM_Q && op <= CAI__OP_MM_V        ? CAI__OP_QKV
           : op >= CAI__OP_MM_GATE && op <= CAI__OP_MM_UP ? CAI__OP_GATE_UP
                                                          : -1;
}

static inline int64_t prof_start(const struct cai__fwd *f)
{
    return f->prof ? cai__now_ns() : 0;
}

static inline void prof_end(struct cai__fwd *f, int layer, int op, int64_t t0, uint64_t bytes,
                            uint64_t flops)
{
    if (!f->prof)
        return;
    struct cai__prof_cell *c = &f->prof[(size_t)layer * CAI__OP_COUNT + (size_t)op];
    c->ns += cai__now_ns() - t0;
    c->bytes += bytes;
    c->flops += flops;
    c->calls++;
}

/* Bytes a matmul reads: the weight rows plus the activations. */
static uint64_t mm_bytes(const struct cai__weight *w, int n_tok)
{
    return (uint64_t)w->row_bytes * (uint64_t)w->ne[1] + (uint64_t)n_tok * (uint64_t)w->ne[0] * 4u;
}

static uint64_t mm_flops(const struct cai__weight *w, int n_tok)
{
    return 2u * (uint64_t)w->ne[0] * (uint64_t)w->ne[1] * (uint64_t)n_tok;
}

/* Attention scratch per thread, in bytes: for one token and one KV head,
 * the scores (then probabilities) of the query heads sharing it
 * [group][n_ctx_pad] floats, their queries rounded to f16 [group][head_dim]
 * floats, and one f16 row [n_ctx_pad]. Decode uses the first row and the
 * f16 row. */
static size_t att_scratch_bytes(const struct cai__fwd *f)
{
    const struct cai__hparams *hp = &f->m->hp;
    const size_t group = (size_t)(hp->n_head / hp->n_head_kv), np = (size_t)f->n_ctx_pad;
    /* scores, the queries as floats, then f16 room for a row of
     * probabilities or one query (head_dim may exceed a short context) */
    size_t b = group * np * sizeof(float) + group * (size_t)hp->head_dim * sizeof(float) +
               CAI_MAX(np, (size_t)hp->head_dim) * sizeof(cai_half);
    return (b + 63) & ~(size_t)63;
}

/* Decode attention over long contexts is split into three passes over the
 * pool (see att_split_eval) from this many positions on: below it one
 * dispatch of per-head items costs less than three. */
#define ATT_SPLIT_MIN 256
#define ATT_SPLIT_POS 128 /* positions per score item: 16 KiB of K at head_dim 64 */
#define ATT_SPLIT_DIM 16  /* value rows per output item */

static size_t att_split_bytes(const struct cai__fwd *f)
{
    const struct cai__hparams *hp = &f->m->hp;
    size_t per_head = (size_t)f->n_ctx_pad * (sizeof(float) + sizeof(cai_half)) +
                      (size_t)hp->head_dim * sizeof(float);
    size_t b;
    if (!cai__mul_size(per_head, (size_t)hp->n_head, &b) || b > SIZE_MAX - 64)
        return 0;
    return (b + 63) & ~(size_t)63;
}

/* ---- setup ------------------------------------------------------------- */

static size_t max_xq_row(const struct cai_model *m, int64_t n_cols)
{
    /* Largest activation row, over the vec_dot types the kernels use. */
    static const uint32_t vdts[] = {CAI_TYPE_Q8_0, CAI_TYPE_Q8_1, CAI_TYPE_Q8_K, CAI_TYPE_F32};
    size_t best = 0;
    (void)m;
    for (size_t i = 0; i < CAI_ARRAY_LEN(vdts); i++) {
        int64_t n = n_cols;
        const struct cai_type_info *ti = cai__type_info(vdts[i]);
        n = (n + ti->block - 1) / ti->block * ti->block;
        size_t rb;
        if (cai__row_bytes(vdts[i], n, &rb) && rb > best)
            best = rb;
    }
    return (best + 63) & ~(size_t)63;
}

static void *zalloc_f(size_t n_elem, size_t elem, bool *ok)
{
    size_t nb;
    if (!*ok || !cai__mul_size(n_elem, elem, &nb)) {
        *ok = false;
        return NULL;
    }
    void *p = cai__malloc_aligned(nb);
    if (!p)
        *ok = false;
    else
        memset(p, 0, nb);
    return p;
}

/* The KV caches: fresh anonymous pages, zero without being written, so only
 * the pages a sequence reaches become resident (a 4096-token SmolLM2 cache is
 * 94 MB; a short chat touches a few). The transposed V cache relies on the
 * zeros: attention reads it up to a padded length, with zero weights. */
static void *kv_map(size_t n_elem, size_t elem, size_t *bytes, bool *ok)
{
    if (!*ok || !cai__mul_size(n_elem, elem, bytes)) {
        *ok = false;
        return NULL;
    }
    void *p = mmap(NULL, *bytes ? *bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) {
        *ok = false;
        return NULL;
    }
    return p;
}

int cai__fwd_init(struct cai__fwd *f, const struct cai_model *m, const struct cai_kernels *k,
                  int n_ctx, int n_batch, int n_threads, bool kv_f32, struct cai_error *err)
{
    const struct cai__hparams *hp = &m->hp;
    memset(f, 0, sizeof(*f));
    f->m = m;
    f->k = k;
    f->n_ctx = n_ctx;
    f->n_batch = n_batch;
    f->n_threads = n_threads;
    f->kv_f32 = kv_f32;
    f->kv_dim = hp->n_head_kv * hp->head_dim;
    f->q_dim = hp->n_head * hp->head_dim;
    int rc = cai__pool_new(&f->pool, n_threads);
    if (rc < 0)
        return cai__fail(err, rc, "cannot start %d threads", n_threads);
    bool ok = true;
    size_t nb = (size_t)n_batch;
    size_t kv_elems;
    if (!cai__mul_size((size_t)hp->n_layer * (size_t)n_ctx, (size_t)f->kv_dim, &kv_elems))
        ok = false;
    f->n_ctx_pad = (n_ctx + 63) & ~63;
    size_t v_elems;
    if (!cai__mul_size((size_t)hp->n_layer * (size_t)f->n_ctx_pad, (size_t)f->kv_dim, &v_elems))
        ok = false;
    size_t kv_size = kv_f32 ? sizeof(float) : sizeof(cai_half);
    f->k_cache = kv_map(kv_elems, kv_size, &f->k_bytes, &ok);
    f->v_cache = kv_map(v_elems, kv_size, &f->v_bytes, &ok);
    size_t wide = (size_t)CAI_MAX(hp->n_embd, f->q_dim);
    f->x = zalloc_f(nb * (size_t)hp->n_embd, sizeof(float), &ok);
    f->xb = zalloc_f(nb * wide, sizeof(float), &ok);
    f->q = zalloc_f(nb * (size_t)f->q_dim, sizeof(float), &ok);
    f->kt = zalloc_f(nb * (size_t)f->kv_dim, sizeof(float), &ok);
    f->vt = zalloc_f(nb * (size_t)f->kv_dim, sizeof(float), &ok);
    f->hg = zalloc_f(nb * (size_t)hp->n_ff, sizeof(float), &ok);
    f->hu = zalloc_f(nb * (size_t)hp->n_ff, sizeof(float), &ok);
    f->tmp = zalloc_f(nb * (size_t)hp->n_embd, sizeof(float), &ok);
    f->xq_stride = max_xq_row(m, CAI_MAX((int64_t)wide, (int64_t)hp->n_ff));
    f->xq = zalloc_f(nb, f->xq_stride, &ok);
    f->scores = zalloc_f((size_t)n_threads, att_scratch_bytes(f), &ok);
    f->att_split_min = ATT_SPLIT_MIN;
    const char *env = getenv("COREAI_ATT_SPLIT");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 0 && v <= INT32_MAX)
            f->att_split_min = (int)v;
    }
    if (f->att_split_min > 0 && f->att_split_min <= n_ctx && !kv_f32 &&
        att_split_bytes(f) > 0)
        f->att_split = zalloc_f(1, att_split_bytes(f), &ok);
    /* mm workspaces only help batches (prefill); decode-only states skip them */
    if (n_batch > 1 && ok) {
        /* not zeroed: the kernels write before they read */
        f->mm_scratch = cai__malloc_aligned((size_t)n_threads * CAI__MM_SCRATCH_BYTES);
        ok = f->mm_scratch != NULL;
    }
    f->inv_freq = zalloc_f((size_t)hp->n_rot / 2, sizeof(float), &ok);
    f->rope_cs = zalloc_f(nb * (size_t)hp->n_rot, sizeof(float), &ok);
    if (hp->n_swa > 0)
        f->rope_cs_swa = zalloc_f(nb * (size_t)hp->n_rot, sizeof(float), &ok);
    f->kq_scale = hp->q_scale > 0.0f ? 1.0f : 1.0f / sqrtf((float)hp->head_dim);
    if (!ok) {
        cai__fwd_deinit(f);
        return cai__fail(err, CAI_ENOMEM, "out of memory for a %d-token context", n_ctx);
    }
    const float *ff = m->rope_freqs.data;
    for (int i = 0; i < hp->n_rot / 2; i++) {
        double inv = pow((double)hp->rope_base, -2.0 * i / hp->n_rot);
        if (ff)
            inv /= (double)ff[i];
        f->inv_freq[i] = (float)inv * hp->rope_scale;
    }
    return 0;
}

void cai__fwd_deinit(struct cai__fwd *f)
{
    cai__pool_free(f->pool);
    if (f->k_cache)
        munmap(f->k_cache, f->k_bytes ? f->k_bytes : 1);
    if (f->v_cache)
        munmap(f->v_cache, f->v_bytes ? f->v_bytes : 1);
    cai__free_aligned(f->x);
    cai__free_aligned(f->xb);
    cai__free_aligned(f->q);
    cai__free_aligned(f->kt);
    cai__free_aligned(f->vt);
    cai__free_aligned(f->hg);
    cai__free_aligned(f->hu);
    cai__free_aligned(f->tmp);
    cai__free_aligned(f->xq);
    cai__free_aligned(f->scores);
    cai__free_aligned(f->att_split);
    cai__free_aligned(f->mm_scratch);
    cai__free_aligned(f->inv_freq);
    cai__free_aligned(f->rope_cs);
    cai__free_aligned(f->rope_cs_swa);
    cai__free(f->prof);
    memset(f, 0, sizeof(*f));
}

/* ---- matmul ------------------------------------------------------------ */

#define MM_MAX 3

/* Up to three matmuls sharing one input, split by output rows. */
struct mm_job {
    const struct cai_kernels *k;
    const struct cai__weight *w[MM_MAX];
    float                    *y[MM_MAX]; /* [n_tok][w->ne[1]] */
    int                       n_w;
    const uint8_t            *xq;        /* [n_tok][xq_stride] */
    size_t                    xq_stride;
    int                       n_tok;
    int64_t                   n_rows;    /* sum of the weights' rows */
    uint8_t                  *scratch;   /* [n_threads][CAI__MM_SCRATCH_BYTES] */
    int64_t                   n_items;   /* row ranges, claimed by the threads */
    int64_t                  *tns;       /* profiling: thread ns per tensor (by src), or NULL */
    int                       src[MM_MAX]; /* w[i] is the caller's weight src[i] */
};

/* Rows per work unit: a multiple of the kernels' 8-row tiles, and 64 bytes
 * of output so neighbouring threads don't share output lines. */
#define MM_ROW_CHUNK 16

/* Work items per thread of a dispatch (cai__pool_for): enough that a
 * descheduled worker leaves little for the others to wait on, few enough
 * that each matmul item keeps long row streams. */
#define ITEMS_PER_THREAD 4

/* For batched matmuls of the 32-element types, fewer: each mm call
 * prepares every token's activations for its tiles, so more calls repeat
 * more of that. SmolLM2 Q4_0 pp512 at 2 threads: 1712-1773 t/s with 4 items
 * per thread, 1869-1877 with 2 (1873-1895 with 1, which would leave no
 * slack for a preempted worker). The K-quants (Q8_K activations) keep 4:
 * with 2, Llama-1B-shape Q4_K_M pp512 went 141 -> 136 t/s (1 thread) and
 * 283 -> 271 (2 threads). */
#define MM_BATCH_ITEMS_PER_THREAD 2

static void mm_worker(void *ctx, int64_t item, int ith)
{
    const struct mm_job *j = ctx;
    int64_t n_chunks = (j->n_rows + MM_ROW_CHUNK - 1) / MM_ROW_CHUNK;
    int64_t c0 = n_chunks * item / j->n_items, c1 = n_chunks * (item + 1) / j->n_items;
    int64_t r0 = c0 * MM_ROW_CHUNK, r1 = CAI_MIN(c1 * MM_ROW_CHUNK, j->n_rows);
    int64_t base = 0;
    for (int wi = 0; wi < j->n_w; wi++) {
        const struct cai__weight *w = j->w[wi];
        int64_t rows = w->ne[1];
        int64_t a = CAI_MAX(r0 - base, 0), b = CAI_MIN(r1 - base, rows);
        if (a < b) {
            const int64_t ts = j->tns ? cai__now_ns() : 0;
            const struct cai_type_kernels *tk = &j->k->type[w->type];
            const void *wp = __atomic_load_n(&w->packed, __ATOMIC_ACQUIRE);
            void *scratch = j->scratch ? j->scratch + (size_t)ith * CAI__MM_SCRATCH_BYTES : NULL;
            if (wp && tk->mm_packed)
                tk->mm_packed(w->ne[0], wp, a, b, j->xq, j->xq_stride, j->n_tok, j->y[wi],
                              (size_t)rows, scratch);
            else
                tk->mm(w->ne[0], w->data, w->row_bytes, a, b, j->xq, j->xq_stride, j->n_tok,
                       j->y[wi], (size_t)rows, scratch);
            if (j->tns)
                __atomic_fetch_add(&j->tns[j->src[wi]], cai__now_ns() - ts, __ATOMIC_RELAXED);
        }
        base += rows;
    }
}

/* ---- token-parallel steps ------------------------------------------------ */

/* Batches of at least this many tokens spread their per-token work (norms,
 * activation quantization, RoPE and cache writes, residuals, SwiGLU) over
 * the pool; smaller ones (decode) run it on the caller, where a dispatch
 * would cost more than the work. Per-token work is independent, so the
 * split changes no result. */
#define PAR_MIN_TOK 4

typedef void (*tok_fn)(struct cai__fwd *f, void *ctx, int t0, int t1);

struct tok_job {
    struct cai__fwd *f;
    tok_fn           fn;
    void            *ctx;
    int              n_tok;
    int              n_items;
};

static void tok_worker(void *vctx, int64_t item, int ith)
{
    const struct tok_job *j = vctx;
    (void)ith;
    int t0 = (int)((int64_t)j->n_tok * item / j->n_items);
    int t1 = (int)((int64_t)j->n_tok * (item + 1) / j->n_items);
    if (t0 < t1)
        j->fn(j->f, j->ctx, t0, t1);
}

/* fn(f, ctx, t0, t1) over tokens [0, n_tok), split over the pool for batches. */
static void for_tokens(struct cai__fwd *f, tok_fn fn, void *ctx, int n_tok)
{
    if (n_tok < PAR_MIN_TOK || f->n_threads == 1) {
        fn(f, ctx, 0, n_tok);
        return;
    }
    struct tok_job j = {.f = f, .fn = fn, .ctx = ctx, .n_tok = n_tok};
    j.n_items = CAI_MIN(f->n_threads * ITEMS_PER_THREAD, n_tok);
    cai__pool_for(f->pool, j.n_items, tok_worker, &j);
}

struct quant_ctx {
    uint32_t     vdt;
    const float *x;
    size_t       ld;
    int64_t      n_cols;
};

static void quant_tokens(struct cai__fwd *f, void *vctx, int t0, int t1)
{
    const struct quant_ctx *c = vctx;
    for (int t = t0; t < t1; t++)
        f->k->type[c->vdt].from_f32(c->x + (size_t)t * c->ld, f->xq + (size_t)t * f->xq_stride,
                                    c->n_cols);
}

/* Converts x[n_tok][n_cols] (row stride ld) to the vec_dot type of `type`. */
static const uint8_t *quantize_input(struct cai__fwd *f, uint32_t wtype, const float *x, int n_tok,
                                     int64_t n_cols, size_t ld, size_t *stride)
{
    uint32_t vdt = f->k->type[wtype].vec_dot_type;
    if (vdt == CAI_TYPE_F32) {
        *stride = ld * sizeof(float);
        return (const uint8_t *)x;
    }
    struct quant_ctx c = {.vdt = vdt, .x = x, .ld = ld, .n_cols = n_cols};
    for_tokens(f, quant_tokens, &c, n_tok);
    *stride = f->xq_stride;
    return f->xq;
}

/* ---- matmul on f32 inputs ------------------------------------------------ */

/* For weights marked f32_input: each row is dequantized in slices of
 * F32IN_SLICE elements (type[w].to_f32) and dotted with every token's f32
 * input (dot_f32), the slices' partial dots added in order. Every output is
 * computed the same way whatever the batch size and thread count. */
#define F32IN_SLICE 1024

struct f32in_job {
    const struct cai_kernels *k;
    const struct cai__weight *w;
    float                    *y; /* [n_tok][w->ne[1]] */
    const float              *x; /* [n_tok][ld] */
    size_t                    ld;
    int                       n_tok;
    int64_t                   n_items; /* row ranges, claimed by the threads */
};

static void f32in_worker(void *ctx, int64_t item, int ith)
{
    const struct f32in_job *j = ctx;
    (void)ith;
    const struct cai__weight *w = j->w;
    const struct cai_type_kernels *tk = &j->k->type[w->type];
    int64_t n = w->ne[0], rows = w->ne[1];
    int64_t n_chunks = (rows + MM_ROW_CHUNK - 1) / MM_ROW_CHUNK;
    int64_t r0 = n_chunks * item / j->n_items * MM_ROW_CHUNK;
    int64_t r1 = CAI_MIN(n_chunks * (item + 1) / j->n_items * MM_ROW_CHUNK, rows);
    const struct cai_type_info *ti = cai__type_info(w->type); /* known: the model bound it */
    size_t blk = (size_t)ti->block, blk_bytes = (size_t)ti->type_size;
    _Alignas(64) float buf[F32IN_SLICE];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int64_t c0 = 0; c0 < n; c0 += F32IN_SLICE) {
            int64_t len = CAI_MIN((int64_t)F32IN_SLICE, n - c0);
            tk->to_f32(wr + (size_t)c0 / blk * blk_bytes, buf, len);
            for (int t = 0; t < j->n_tok; t++) {
                float d = j->k->dot_f32(buf, j->x + (size_t)t * j->ld + (size_t)c0, len);
                float *yt = &j->y[(size_t)t * (size_t)rows + (size_t)r];
                *yt = c0 == 0 ? d : *yt + d;
            }
        }
    }
}

/* y = W · x with x kept in f32. */
static void matmul_f32in(struct cai__fwd *f, const struct cai__weight *w, float *y,
                         const float *x, int n_tok, size_t ld)
{
    struct f32in_job j = {.k = f->k, .w = w, .y = y, .x = x, .ld = ld, .n_tok = n_tok};
    int64_t n_chunks = (w->ne[1] + MM_ROW_CHUNK - 1) / MM_ROW_CHUNK;
    j.n_items = CAI_MIN((int64_t)f->n_threads * ITEMS_PER_THREAD, n_chunks);
    cai__pool_for(f->pool, j.n_items, f32in_worker, &j);
}

/* y[i] = w[i]·x for up to three weights with the same input width, in one
 * dispatch per activation (vec_dot) type. tns (or NULL) gets the threads'
 * time in each weight's rows, in ns. */
static void matmul(struct cai__fwd *f, const struct cai__weight *const *w, float *const *y, int n_w,
                   const float *x, int n_tok, size_t ld, int64_t *tns)
{
    int done = 0;
    bool used[MM_MAX] = {false};
    while (done < n_w) {
        struct mm_job j = {.k = f->k, .n_tok = n_tok, .scratch = f->mm_scratch, .tns = tns};
        uint32_t vdt = 0;
        for (int i = 0; i < n_w; i++) {
            if (used[i])
                continue;
            uint32_t v = f->k->type[w[i]->type].vec_dot_type;
            if (j.n_w == 0)
                vdt = v;
            if (v != vdt)
                continue;
            used[i] = true;
            j.src[j.n_w] = i;
            j.w[j.n_w] = w[i];
            j.y[j.n_w] = y[i];
            j.n_rows += w[i]->ne[1];
            j.n_w++;
            done++;
        }
        j.xq = quantize_input(f, j.w[0]->type, x, n_tok, j.w[0]->ne[0], ld, &j.xq_stride);
        int64_t n_chunks = (j.n_rows + MM_ROW_CHUNK - 1) / MM_ROW_CHUNK;
        const int per_thread = n_tok >= PAR_MIN_TOK && vdt != CAI_TYPE_Q8_K
                                   ? MM_BATCH_ITEMS_PER_THREAD
                                   : ITEMS_PER_THREAD;
        j.n_items = CAI_MIN((int64_t)f->n_threads * per_thread, n_chunks);
        cai__pool_for(f->pool, j.n_items, mm_worker, &j);
    }
}

static void matmul1(struct cai__fwd *f, const struct cai__weight *w, float *y, const float *x,
                    int n_tok, size_t ld)
{
    if (w->f32_input) {
        matmul_f32in(f, w, y, x, n_tok, ld);
        return;
    }
    const struct cai__weight *ws[1] = {w};
    float *ys[1] = {y};
    matmul(f, ws, ys, 1, x, n_tok, ld, NULL);
}

/* The profile of a fused matmul started at t0: the op's row, and each
 * tensor's (ops op0..) with the wall time split by the threads' time. */
static void prof_mm(struct cai__fwd *f, int layer, int op, int op0,
                    const struct cai__weight *const *w, int n_w, const int64_t *tns, int64_t t0,
                    int n_tok)
{
    if (!f->prof)
        return;
    const int64_t wall = cai__now_ns() - t0;
    uint64_t bytes = 0, flops = 0;
    int64_t busy = 0;
    for (int i = 0; i < n_w; i++) {
        bytes += mm_bytes(w[i], n_tok);
        flops += mm_flops(w[i], n_tok);
        busy += tns[i];
    }
    for (int i = 0; i < n_w; i++) {
        struct cai__prof_cell *c = &f->prof[(size_t)layer * CAI__OP_COUNT + (size_t)(op0 + i)];
        c->ns += busy > 0 ? (int64_t)((double)wall * (double)tns[i] / (double)busy) : 0;
        c->bytes += mm_bytes(w[i], n_tok);
        c->flops += mm_flops(w[i], n_tok);
        c->calls++;
    }
    struct cai__prof_cell *c = &f->prof[(size_t)layer * CAI__OP_COUNT + (size_t)op];
    c->ns += wall;
    c->bytes += bytes;
    c->flops += flops;
    c->calls++;
}

/* ---- rotary embedding -------------------------------------------------- */

/* cos/sin of every rotary pair for the batch's positions. The angle is
 * built the way llama.cpp builds it (a float running product of
 * base^(-2/n_rot), divided by the frequency factor, times the linear scale)
 * so positions round identically: this model family amplifies last-bit
 * differences through 8-bit activation quantization. */
static void rope_table(const struct cai__fwd *f, float *table, float base, float scale, int n,
                       int pos0)
{
    const struct cai__hparams *hp = &f->m->hp;
    const float *ff = f->m->rope_freqs.data;
    const float theta_scale = powf(base, -2.0f / (float)hp->n_rot);
    int half = hp->n_rot / 2;
    for (int t = 0; t < n; t++) {
        float *cs = table + (size_t)t * hp->n_rot;
        float theta = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            float th = scale * (ff ? theta / ff[i] : theta);
            cs[2 * i] = cosf(th);
            cs[2 * i + 1] = sinf(th);
            theta *= theta_scale;
        }
    }
}

/* The tables of the batch's positions: the model's base and linear scale;
 * for sliding-window layers (Gemma 3), their own base at scale 1. */
static void rope_prepare(struct cai__fwd *f, int n, int pos0)
{
    const struct cai__hparams *hp = &f->m->hp;
    rope_table(f, f->rope_cs, hp->rope_base, hp->rope_scale, n, pos0);
    if (f->rope_cs_swa)
        rope_table(f, f->rope_cs_swa, hp->rope_base_swa, 1.0f, n, pos0);
}

static void rope_apply(const struct cai__fwd *f, float *v, int n_heads, int t, bool swa)
{
    /* The fused forms llama.cpp's compiled rotation uses (checked bit for
     * bit against it): see kernels.h */
    const struct cai__hparams *hp = &f->m->hp;
    const float *cs = swa ? f->rope_cs_swa : f->rope_cs;
    f->k->rope(v, n_heads, hp->head_dim, hp->n_rot, cs + (size_t)t * hp->n_rot,
               hp->rope_type == CAI__ROPE_NEOX);
}

/* Sliding-window layers (Gemma 3): the first position the query at qpos
 * sees; 0 for global layers. */
static int att_first(const struct cai__fwd *f, int layer, int qpos)
{
    const struct cai__hparams *hp = &f->m->hp;
    return hp->n_swa > 0 && hp->swa[layer] ? CAI_MAX(0, qpos - hp->n_swa + 1) : 0;
}

/* Scores of the positions before the window: -inf, so that the softmax
 * gives them zero weight with the row's chunks where llama.cpp has them
 * (its mask), and the weighted sums add exact zeros. */
static void att_mask(float *sc, int lo)
{
    for (int p = 0; p < lo; p++)
        sc[p] = -INFINITY;
}

/* ---- attention --------------------------------------------------------- */

/* f32 cache: exact products, no f16 roundings. */
static void att_head_f32(const struct cai__fwd *f, int layer, int t, int h, int n_pos, float *sc)
{
    const struct cai__hparams *hp = &f->m->hp;
    const int hd = hp->head_dim, kvh = h / (hp->n_head / hp->n_head_kv), np = f->n_ctx_pad;
    const float *kc = (const float *)f->k_cache + (size_t)layer * f->n_ctx * f->kv_dim;
    const float *vt = (const float *)f->v_cache + (size_t)layer * f->kv_dim * np;
    const float *q = f->q + (size_t)t * f->q_dim + (size_t)h * hd;
    const float scale = f->kq_scale;
    const int lo = att_first(f, layer, n_pos - 1);
    for (int p = lo; p < n_pos; p++)
        sc[p] = f->k->dot_f32(kc + (size_t)p * f->kv_dim + (size_t)kvh * hd, q, hd) * scale;
    att_mask(sc, lo);
    f->k->softmax(sc, n_pos);
    float *out = f->xb + (size_t)t * f->q_dim + (size_t)h * hd;
    for (int dd = 0; dd < hd; dd++)
        out[dd] = f->k->dot_f32(vt + ((size_t)kvh * hd + (size_t)dd) * np, sc, n_pos);
}

struct att_job {
    struct cai__fwd *f;
    int              layer, n_tok, pos0;
    int              t_first; /* items cover tokens t_first..n_tok-1 */
};

/* Batches: token t's query heads sharing KV head kvh, together. As llama.cpp
 * without flash attention computes a batch (its GEMM): Q and the
 * probabilities rounded to f16 for their products with the f16 cache, each
 * product in dot_f16_chain's order; the scores scaled after the dot
 * product, the softmax over the row, positions n_pos..n_pad with zero
 * probabilities. One K (V) read serves the group's heads. */
static void att_group(struct cai__fwd *f, const struct att_job *j, int t, int kvh, uint8_t *scr)
{
    const struct cai__hparams *hp = &f->m->hp;
    const struct cai_kernels *k = f->k;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, np = f->n_ctx_pad;
    const float scale = f->kq_scale;
    float *pr = (float *)scr;                          /* [group][np] */
    float *qr = pr + (size_t)group * np;               /* [group][hd] */
    cai_half *tmp = (cai_half *)(qr + (size_t)group * hd); /* [np] */
    void (*h2f)(const void *, float *, int64_t) = k->type[CAI_TYPE_F16].to_f32;
    const cai_half *kc = (const cai_half *)f->k_cache + (size_t)j->layer * f->n_ctx * f->kv_dim +
                         (size_t)kvh * hd;
    const cai_half *vt = (const cai_half *)f->v_cache + (size_t)j->layer * f->kv_dim * np +
                         (size_t)kvh * hd * np;
    const int n_pos = j->pos0 + t + 1, n_pad = (n_pos + 15) & ~15;
    const float *q = f->q + (size_t)t * f->q_dim + (size_t)kvh * group * hd;
    for (int g = 0; g < group; g++) {
        k->f32_to_f16(q + (size_t)g * hd, tmp, hd);
        h2f(tmp, qr + (size_t)g * hd, hd);
    }
    /* a sliding window's scores from its first position on (each score is
     * its own dot product); the weighted sums skip the window's leading
     * whole chunks of zero probabilities (each lane's chain stays +0
     * through them): the same bits as the full rows */
    const int lo = att_first(f, j->layer, n_pos - 1), l16 = lo & ~15;
    k->dot_f16_chain_mn(kc + (size_t)lo * f->kv_dim, (size_t)f->kv_dim, n_pos - lo, qr,
                        (size_t)hd, group, hd, pr + lo, (size_t)np);
    for (int g = 0; g < group; g++) {
        att_mask(pr + (size_t)g * np, lo);
        k->softmax_att(pr + (size_t)g * np, n_pos, scale, n_pad);
    }
    float *out = f->xb + (size_t)t * f->q_dim + (size_t)kvh * group * hd;
    k->dot_f16_chain_mn(vt + l16, (size_t)np, hd, pr + l16, (size_t)np, group, n_pad - l16, out,
                        (size_t)hd);
}

/* Items: (token, KV head) pairs for batches, (token, head) pairs for
 * single tokens or the f32 cache; claimed by whichever thread is free, so
 * the long rows of the last tokens are shared out too. */
static bool att_batched(const struct cai__fwd *f, int n_tok)
{
    return n_tok > 1 && f->m->hp.head_dim % 16 == 0 && !f->kv_f32;
}

static void att_worker(void *ctx, int64_t it, int ith)
{
    const struct att_job *j = ctx;
    struct cai__fwd *f = j->f;
    const struct cai__hparams *hp = &f->m->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, np = f->n_ctx_pad;
    const float scale = f->kq_scale;
    uint8_t *scr = (uint8_t *)f->scores + (size_t)ith * att_scratch_bytes(f);
    float *sc = (float *)scr;
    cai_half *ph = (cai_half *)(sc + (size_t)group * np + (size_t)group * hd);
    const cai_half *kc = (const cai_half *)f->k_cache + (size_t)j->layer * f->n_ctx * f->kv_dim;
    const cai_half *vt = (const cai_half *)f->v_cache + (size_t)j->layer * f->kv_dim * np;
    const bool batch = att_batched(f, j->n_tok);
    const int per_tok = batch ? hp->n_head_kv : hp->n_head;
    int t = j->t_first + (int)(it / per_tok), h = (int)(it % per_tok);
    if (batch) {
        att_group(f, j, t, h, scr);
        return;
    }
    int kvh = h / group;
    int n_pos = j->pos0 + t + 1; /* causal: positions 0..pos0+t */
    if (f->kv_f32) {
        att_head_f32(f, j->layer, t, h, n_pos, sc);
        return;
    }
    /* One token: llama.cpp's single-token dot product order (dot_f16),
     * otherwise as att_group. */
    int n_pad = (n_pos + 63) & ~63;
    cai_half qh[CAI__MAX_HEAD_DIM];
    f->k->f32_to_f16(f->q + (size_t)t * f->q_dim + (size_t)h * hd, qh, hd);
    /* K.Q for every position, then P.V for every dimension: independent
     * dot products, computed many at a time, each in its own order */
    /* a sliding window: as att_group, in dot_f16's chunks of 64 */
    const int lo = att_first(f, j->layer, n_pos - 1), l64 = lo & ~63;
    f->k->dot_f16_n(kc + (size_t)lo * f->kv_dim + (size_t)kvh * hd, (size_t)f->kv_dim,
                    n_pos - lo, qh, hd, sc + lo);
    for (int p = lo; p < n_pos; p++)
        sc[p] *= scale;
    att_mask(sc, lo);
    f->k->softmax(sc, n_pos);
    f->k->f32_to_f16(sc, ph, n_pos);
    memset(ph + n_pos, 0, (size_t)(n_pad - n_pos) * sizeof(cai_half));
    float *out = f->xb + (size_t)t * f->q_dim + (size_t)h * hd;
    f->k->dot_f16_n(vt + (size_t)kvh * hd * np + l64, (size_t)np, hd, ph + l64, n_pad - l64,
                    out);
}

/* One token's attention over a long context in three passes over the pool,
 * so that both threads share every head's work (per-head items split 9
 * heads 5:4, or whole KV groups 2:1), and each K and V row is read and
 * converted from f16 once for all the query heads sharing it (dot_f16_mn,
 * with the queries and probabilities rounded to f16 and held as floats).
 * Each score and each output is the per-head path's dot_f16 on the same
 * rows: the same bits. */
struct att_split_job {
    struct cai__fwd *f;
    int              layer, n_pos, n_pad, n_chunks, n_dchunks;
};

static float *split_scores(const struct cai__fwd *f, int h)
{
    return (float *)f->att_split + (size_t)h * f->n_ctx_pad;
}

static cai_half *split_probs(const struct cai__fwd *f, int h)
{
    const struct cai__hparams *hp = &f->m->hp;
    return (cai_half *)(f->att_split + (size_t)hp->n_head * f->n_ctx_pad * sizeof(float)) +
           (size_t)h * f->n_ctx_pad;
}

/* the query of head h, rounded to f16 and back */
static float *split_query(const struct cai__fwd *f, int h)
{
    const struct cai__hparams *hp = &f->m->hp;
    return (float *)(void *)split_probs(f, hp->n_head) + (size_t)h * hp->head_dim;
}

/* Pass 1, item (KV head, block of positions): the scaled scores of the
 * group's heads. */
static void att_split_scores(void *ctx, int64_t it, int ith)
{
    (void)ith;
    const struct att_split_job *j = ctx;
    const struct cai__fwd *f = j->f;
    const struct cai__hparams *hp = &f->m->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const int kvh = (int)(it / j->n_chunks), p0 = (int)(it % j->n_chunks) * ATT_SPLIT_POS;
    /* a sliding window: from its first position (pass 2 masks the rest) */
    const int lo = CAI_MAX(p0, att_first(f, j->layer, j->n_pos - 1));
    const int n = CAI_MIN(j->n_pos, p0 + ATT_SPLIT_POS) - lo;
    if (n <= 0)
        return;
    const float scale = f->kq_scale;
    const cai_half *kc = (const cai_half *)f->k_cache + (size_t)j->layer * f->n_ctx * f->kv_dim +
                         (size_t)lo * f->kv_dim + (size_t)kvh * hd;
    f->k->dot_f16_mn(kc, (size_t)f->kv_dim, n, split_query(f, kvh * group), (size_t)hd, group, hd,
                     split_scores(f, kvh * group) + lo, (size_t)f->n_ctx_pad);
    for (int g = 0; g < group; g++) {
        float *sc = split_scores(f, kvh * group + g) + lo;
        for (int p = 0; p < n; p++)
            sc[p] *= scale;
    }
}

/* Pass 2, item head: softmax, probabilities rounded to f16 (and back, in
 * place of the scores), zero padding. */
static void att_split_softmax(void *ctx, int64_t h, int ith)
{
    (void)ith;
    const struct att_split_job *j = ctx;
    const struct cai__fwd *f = j->f;
    float *sc = split_scores(f, (int)h);
    cai_half *ph = split_probs(f, (int)h);
    att_mask(sc, att_first(f, j->layer, j->n_pos - 1));
    f->k->softmax(sc, j->n_pos);
    f->k->f32_to_f16(sc, ph, j->n_pos);
    memset(ph + j->n_pos, 0, (size_t)(j->n_pad - j->n_pos) * sizeof(cai_half));
    f->k->type[CAI_TYPE_F16].to_f32(ph, sc, j->n_pad);
}

/* Pass 3, item (KV head, block of value rows): those output dimensions of
 * the group's heads. */
static void att_split_values(void *ctx, int64_t it, int ith)
{
    (void)ith;
    const struct att_split_job *j = ctx;
    const struct cai__fwd *f = j->f;
    const struct cai__hparams *hp = &f->m->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, np = f->n_ctx_pad;
    const int kvh = (int)(it / j->n_dchunks), d0 = (int)(it % j->n_dchunks) * ATT_SPLIT_DIM;
    const int nd = CAI_MIN(ATT_SPLIT_DIM, hd - d0);
    const cai_half *vt = (const cai_half *)f->v_cache + (size_t)j->layer * f->kv_dim * np +
                         ((size_t)kvh * hd + (size_t)d0) * np;
    float *out = f->xb + (size_t)kvh * group * hd + d0; /* the batch's one token */
    const int l64 = att_first(f, j->layer, j->n_pos - 1) & ~63; /* as att_worker */
    f->k->dot_f16_mn(vt + l64, (size_t)np, nd, split_scores(f, kvh * group) + l64, (size_t)np,
                     group, j->n_pad - l64, out, (size_t)hd);
}

/* Whether a batch of n_tok tokens at pos0 takes the split path: a single
 * token seeing at least att_split_min positions. */
static bool att_split_on(const struct cai__fwd *f, int n_tok, int pos0)
{
    return n_tok == 1 && f->att_split && pos0 + 1 >= f->att_split_min;
}

static void att_split_eval(struct cai__fwd *f, int layer, int pos0)
{
    const struct cai__hparams *hp = &f->m->hp;
    const int hd = hp->head_dim;
    struct att_split_job j = {.f = f, .layer = layer, .n_pos = pos0 + 1};
    j.n_pad = (j.n_pos + 63) & ~63; /* as the per-head path */
    j.n_chunks = (j.n_pos + ATT_SPLIT_POS - 1) / ATT_SPLIT_POS;
    j.n_dchunks = (hd + ATT_SPLIT_DIM - 1) / ATT_SPLIT_DIM;
    cai_half qh[CAI__MAX_HEAD_DIM];
    for (int h = 0; h < hp->n_head; h++) {
        f->k->f32_to_f16(f->q + (size_t)h * hd, qh, hd);
        f->k->type[CAI_TYPE_F16].to_f32(qh, split_query(f, h), hd);
    }
    cai__pool_for(f->pool, (int64_t)hp->n_head_kv * j.n_chunks, att_split_scores, &j);
    cai__pool_for(f->pool, hp->n_head, att_split_softmax, &j);
    cai__pool_for(f->pool, (int64_t)hp->n_head_kv * j.n_dchunks, att_split_values, &j);
}

/* ---- the pass ---------------------------------------------------------- */

static void add_bias(float *y, const struct cai__weight *b, int t0, int t1, int64_t n)
{
    if (!b->data)
        return;
    const float *bv = b->data;
    for (int t = t0; t < t1; t++)
        for (int64_t i = 0; i < n; i++)
            y[(size_t)t * (size_t)n + (size_t)i] += bv[i];
}

/* out[t] = rmsnorm(x[t]) * w, after x[t] += add[t] when add is not NULL. */
struct norm_ctx {
    float       *x;
    const float *add;
    const float *w;
    float       *out;
};

static void norm_tokens(struct cai__fwd *f, void *vctx, int t0, int t1)
{
    const struct norm_ctx *c = vctx;
    const int d = f->m->hp.n_embd;
    for (int t = t0; t < t1 && c->add; t++) {
        float *x = c->x + (size_t)t * d;
        const float *a = c->add + (size_t)t * d;
        for (int i = 0; i < d; i++)
            x[i] += a[i];
    }
    if (c->out)
        f->k->rmsnorm_n(c->out + (size_t)t0 * d, (size_t)d, c->x + (size_t)t0 * d, (size_t)d,
                        c->w, d, t1 - t0, f->m->hp.rms_eps);
}

/* x[t] += add[t] */
static void residual(struct cai__fwd *f, float *x, const float *add, int n_tok)
{
    struct norm_ctx c = {.x = x, .add = add};
    for_tokens(f, norm_tokens, &c, n_tok);
}

struct rope_ctx {
    const struct cai__layer *L;
    int                      il, pos0;
};

/* Biases, RoPE, and the new keys and values into the caches. */
static void rope_kv_tokens(struct cai__fwd *f, void *vctx, int t0, int t1)
{
    const struct rope_ctx *c = vctx;
    const struct cai__hparams *hp = &f->m->hp;
    const struct cai_kernels *k = f->k;
    add_bias(f->q, &c->L->bq, t0, t1, f->q_dim);
    add_bias(f->kt, &c->L->bk, t0, t1, f->kv_dim);
    add_bias(f->vt, &c->L->bv, t0, t1, f->kv_dim);
    size_t layer_off = (size_t)c->il * f->n_ctx * f->kv_dim;
    const bool swa = hp->n_swa > 0 && hp->swa[c->il];
    const int hd = hp->head_dim;
    for (int t = t0; t < t1; t++) {
        float *q = f->q + (size_t)t * f->q_dim, *kt = f->kt + (size_t)t * f->kv_dim;
        if (c->L->q_norm.data) { /* Gemma 3: each head RMS-normed before RoPE */
            k->rmsnorm_n(q, (size_t)hd, q, (size_t)hd, c->L->q_norm.data, hd, hp->n_head,
                         hp->rms_eps);
            k->rmsnorm_n(kt, (size_t)hd, kt, (size_t)hd, c->L->k_norm.data, hd, hp->n_head_kv,
                         hp->rms_eps);
        }
        rope_apply(f, q, hp->n_head, t, swa);
        rope_apply(f, kt, hp->n_head_kv, t, swa);
        if (hp->q_scale > 0.0f)
            for (int i = 0; i < f->q_dim; i++)
                q[i] *= hp->q_scale;
        size_t off = layer_off + (size_t)(c->pos0 + t) * f->kv_dim;
        size_t voff = (size_t)c->il * f->kv_dim * f->n_ctx_pad + (size_t)(c->pos0 + t);
        const float *vsrc = f->vt + (size_t)t * f->kv_dim;
        if (f->kv_f32) {
            memcpy((float *)f->k_cache + off, f->kt + (size_t)t * f->kv_dim,
                   (size_t)f->kv_dim * sizeof(float));
            float *vt = (float *)f->v_cache + voff;
            for (int i = 0; i < f->kv_dim; i++)
                vt[(size_t)i * f->n_ctx_pad] = vsrc[i];
        } else {
            k->f32_to_f16(f->kt + (size_t)t * f->kv_dim, (cai_half *)f->k_cache + off,
                          f->kv_dim);
            /* V: converted as a row (same bits as cai__f32_to_fp16) into
             * token t's row of xb (free between the QKV matmul and
             * attention; at least q_dim floats), then scattered into the
             * transposed cache */
            cai_half *vh = (cai_half *)(f->xb + (size_t)t * f->q_dim);
            cai_half *vt = (cai_half *)f->v_cache + voff;
            k->f32_to_f16(vsrc, vh, f->kv_dim);
            for (int i = 0; i < f->kv_dim; i++)
                vt[(size_t)i * f->n_ctx_pad] = vh[i];
        }
    }
}

static void gate_act_tokens(struct cai__fwd *f, void *vctx, int t0, int t1)
{
    (void)vctx;
    size_t nf = (size_t)f->m->hp.n_ff;
    if (f->m->hp.ffn_gelu)
        f->k->gelu_mul(f->hg + (size_t)t0 * nf, f->hg + (size_t)t0 * nf, f->hu + (size_t)t0 * nf,
                       (int64_t)(t1 - t0) * (int64_t)nf);
    else
        f->k->silu_mul(f->hg + (size_t)t0 * nf, f->hg + (size_t)t0 * nf, f->hu + (size_t)t0 * nf,
                       (int64_t)(t1 - t0) * (int64_t)nf);
}

/* tmp[t] = rmsnorm(tmp[t]) * w for the nr rows, when w exists (Gemma 3's
 * post-attention and post-FFN norms). */
static void post_norm(struct cai__fwd *f, const struct cai__weight *w, int nr)
{
    if (!w->data)
        return;
    struct norm_ctx c = {.x = f->tmp, .w = w->data, .out = f->tmp};
    for_tokens(f, norm_tokens, &c, nr);
}

void cai__fwd_eval(struct cai__fwd *f, const int32_t *tokens, int n, int pos0, int n_out,
                   float *logits)
{
    const struct cai_model *m = f->m;
    const struct cai__hparams *hp = &m->hp;
    const struct cai_kernels *k = f->k;
    const int d = hp->n_embd, top = hp->n_layer;
    int64_t t0;

    /* Embedding rows. */
    t0 = prof_start(f);
    const struct cai_type_kernels *et = &k->type[m->tok_embd.type];
    /* A tied embedding that was packed is read back from the packed copy:
     * its file pages were released, and faulting single rows back in maps
     * 64 KiB around each (the kernel's fault-around). */
    const void *ep = m->output.data == m->tok_embd.data
                         ? __atomic_load_n(&m->output.packed, __ATOMIC_ACQUIRE)
                         : NULL;
    for (int t = 0; t < n; t++) {
        const void *row =
            (const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes;
        if (ep && et->unpack_row && m->tok_embd.row_bytes <= f->xq_stride) {
            et->unpack_row(d, ep, tokens[t], f->xq);
            row = f->xq;
        }
        et->to_f32(row, f->x + (size_t)t * d, d);
        if (hp->emb_scale > 0.0f) /* Gemma 3: x * sqrt(n_embd), as ggml_scale */
            for (int i = 0; i < d; i++)
                f->x[(size_t)t * d + i] *= hp->emb_scale;
    }
    rope_prepare(f, n, pos0);
    prof_end(f, top, CAI__OP_EMBED, t0, (uint64_t)n * m->tok_embd.row_bytes, 0);
    if (f->layer_hook)
        f->layer_hook(f->layer_hook_user, -1, pos0, n, d, f->x);

    for (int il = 0; il < hp->n_layer; il++) {
        const struct cai__layer *L = &m->layers[il];
        /* Attention block: xb = norm(x); q,k,v = W·xb. */
        t0 = prof_start(f);
        {
            struct norm_ctx c = {.x = f->x, .w = L->attn_norm.data, .out = f->xb};
            for_tokens(f, norm_tokens, &c, n);
        }
        prof_end(f, il, CAI__OP_ATTN_NORM, t0, (uint64_t)n * d * 8u, (uint64_t)n * d * 4u);
        t0 = prof_start(f);
        {
            const struct cai__weight *ws[3] = {&L->wq, &L->wk, &L->wv};
            float *ys[3] = {f->q, f->kt, f->vt};
            int64_t tns[3] = {0};
            matmul(f, ws, ys, 3, f->xb, n, (size_t)d, f->prof ? tns : NULL);
            prof_mm(f, il, CAI__OP_QKV, CAI__OP_MM_Q, ws, 3, tns, t0, n);
        }
        t0 = prof_start(f);
        {
            struct rope_ctx c = {.L = L, .il = il, .pos0 = pos0};
            for_tokens(f, rope_kv_tokens, &c, n);
        }
        prof_end(f, il, CAI__OP_ROPE_KV, t0, (uint64_t)n * (f->q_dim + 2u * f->kv_dim) * 4u,
                 (uint64_t)n * (f->q_dim + f->kv_dim) * 3u);
        /* From here on the last layer computes only the rows whose logits
         * are wanted (r0..n-1; their keys and values above went into the
         * cache for every token), as llama.cpp does: the other rows' outputs
         * feed nothing. Rows are computed alone, so the kept rows get the
         * same bits. Not when a layer hook wants every row. */
        const int r0 = il == top - 1 && n_out < n && !f->layer_hook ? n - CAI_MAX(n_out, 0) : 0;
        const int nr = n - r0;
        if (nr == 0)
            break; /* no logits wanted: the last layer's keys and values were all */
        float *xr = f->x + (size_t)r0 * d;
        /* Attention over positions 0..pos0+t; output into xb[t][q_dim]. */
        t0 = prof_start(f);
        struct att_job aj = {.f = f, .layer = il, .n_tok = n, .pos0 = pos0, .t_first = r0};
        if (att_split_on(f, n, pos0))
            att_split_eval(f, il, pos0);
        else
            cai__pool_for(f->pool,
                          (int64_t)nr * (att_batched(f, n) ? hp->n_head_kv : hp->n_head),
                          att_worker, &aj);
        uint64_t ctx_pos = (uint64_t)nr * (uint64_t)pos0 +
                           ((uint64_t)n * (uint64_t)(n + 1) - (uint64_t)r0 * (uint64_t)(r0 + 1)) / 2u;
        prof_end(f, il, CAI__OP_ATTN, t0, ctx_pos * 2u * (uint64_t)f->kv_dim * 2u,
                 ctx_pos * 4u * (uint64_t)f->q_dim);
        t0 = prof_start(f);
        matmul1(f, &L->wo, f->tmp, f->xb + (size_t)r0 * f->q_dim, nr, (size_t)f->q_dim);
        prof_end(f, il, CAI__OP_ATTN_OUT, t0, mm_bytes(&L->wo, nr), mm_flops(&L->wo, nr));
        /* Residual and the feed-forward block's norm in one step:
         * x += attn_out; xb = norm(x). Then x += Wdown·(silu(Wgate·xb) * Wup·xb).
         * Gemma 3 norms attn_out first (counted with ffn_norm). */
        t0 = prof_start(f);
        post_norm(f, &L->post_attn_norm, nr);
        {
            struct norm_ctx c = {.x = xr, .add = f->tmp, .w = L->ffn_norm.data, .out = f->xb};
            for_tokens(f, norm_tokens, &c, nr);
        }
        prof_end(f, il, CAI__OP_FFN_NORM, t0, (uint64_t)nr * d * 20u, (uint64_t)nr * d * 5u);
        t0 = prof_start(f);
        {
            const struct cai__weight *ws[2] = {&L->w_gate, &L->w_up};
            float *ys[2] = {f->hg, f->hu};
            int64_t tns[2] = {0};
            matmul(f, ws, ys, 2, f->xb, nr, (size_t)d, f->prof ? tns : NULL);
            prof_mm(f, il, CAI__OP_GATE_UP, CAI__OP_MM_GATE, ws, 2, tns, t0, nr);
        }
        t0 = prof_start(f);
        for_tokens(f, gate_act_tokens, NULL, nr);
        prof_end(f, il, CAI__OP_SILU, t0, (uint64_t)nr * hp->n_ff * 12u,
                 (uint64_t)nr * hp->n_ff * 5u);
        t0 = prof_start(f);
        matmul1(f, &L->w_down, f->tmp, f->hg, nr, (size_t)hp->n_ff);
        prof_end(f, il, CAI__OP_DOWN, t0, mm_bytes(&L->w_down, nr), mm_flops(&L->w_down, nr));
        t0 = prof_start(f); /* Gemma 3: the FFN output normed (counted with the residual) */
        post_norm(f, &L->post_ffn_norm, nr);
        residual(f, xr, f->tmp, nr);
        prof_end(f, il, CAI__OP_RESIDUAL, t0, (uint64_t)nr * d * 12u, (uint64_t)nr * d);
        if (f->layer_hook)
            f->layer_hook(f->layer_hook_user, il, pos0, n, d, f->x);
    }

    if (n_out <= 0)
        return;
    /* Logits only for the rows the caller wants. */
    int first = n - n_out;
    t0 = prof_start(f);
    for (int t = first; t < n; t++)
        k->rmsnorm(f->xb + (size_t)(t - first) * d, f->x + (size_t)t * d, m->output_norm.data, d,
                   hp->rms_eps);
    prof_end(f, top, CAI__OP_OUT_NORM, t0, (uint64_t)n_out * d * 8u, (uint64_t)n_out * d * 4u);
    t0 = prof_start(f);
    matmul1(f, &m->output, logits, f->xb, n_out, (size_t)d);
    if (hp->logit_softcap > 0.0f) { /* cap * tanh(logits / cap), as llama.cpp's three ops */
        const float cap = hp->logit_softcap, inv = 1.0f / cap;
        for (size_t i = 0; i < (size_t)n_out * (size_t)hp->n_vocab; i++)
            logits[i] = tanhf(logits[i] * inv) * cap;
    }
    prof_end(f, top, CAI__OP_OUTPUT, t0, mm_bytes(&m->output, n_out), mm_flops(&m->output, n_out));
}
