/* session.c: sessions (one token sequence and its KV cache), the public
 * tokenizer entry points, and decoding. */
#include <stdio.h>
#include <string.h>

#include "session.h"

struct cai_session_params cai_session_params_default(void)
{
    struct cai_session_params p = {.n_ctx = 0, .n_batch = 0, .n_threads = 0, .kv_f32 = false};
    return p;
}

void cai_free(void *p)
{
    cai__free(p);
}

int cai_session_new(struct cai_session **out, struct cai_model *m,
                    const struct cai_session_params *params, struct cai_error *err)
{
    struct cai_session_params p = params ? *params : cai_session_params_default();
    *out = NULL;
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_threads > 256)
        return cai__fail(err, CAI_EINVAL, "session params: negative n_ctx, n_batch or n_threads, "
                         "or n_threads > 256");
    if (p.n_ctx == 0)
        p.n_ctx = CAI_MIN(m->hp.n_ctx_train, 4096);
    if (p.n_ctx > m->hp.n_ctx_train * 4 || p.n_ctx > (1 << 22))
        return cai__fail(err, CAI_ERANGE, "session params: n_ctx %d is too large (model trained "
                         "on %d)", p.n_ctx, m->hp.n_ctx_train);
    if (p.n_batch == 0)
        p.n_batch = 256;
    p.n_batch = CAI_MIN(p.n_batch, p.n_ctx);
    if (p.n_threads == 0)
        p.n_threads = cai__cpu()->n_cpus;
    const struct cai_kernels *k = cai__kernels_get();
    if (!k)
        return cai__fail(err, CAI_EUNSUPPORTED, "COREAI_ISA names an unknown instruction set or "
                         "one this CPU lacks (use ref, avx2 or avx512)");
    struct cai_session *s = cai__calloc(1, sizeof(*s));
    if (!s)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    s->m = m;
    int rc = cai__fwd_init(&s->fwd, m, k, p.n_ctx, p.n_batch, p.n_threads, p.kv_f32, err);
    if (rc < 0) {
        cai__free(s);
        return rc;
    }
    cai__model_pack(m, k);
    s->tokens = cai__malloc_array((size_t)p.n_ctx, sizeof(int32_t));
    s->logits_cap = 1;
    s->logits = cai__malloc_array((size_t)m->hp.n_vocab, sizeof(float));
    if (!s->tokens || !s->logits) {
        cai_session_free(s);
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    }
    *out = s;
    return 0;
}

void cai_session_free(struct cai_session *s)
{
    if (!s)
        return;
    cai__fwd_deinit(&s->fwd);
    cai__free(s->tokens);
    cai__free(s->logits);
    cai__free(s);
}

const char *cai_session_errmsg(const struct cai_session *s)
{
    return s->errmsg;
}

int cai_session_n_tokens(const struct cai_session *s)
{
    return s->n_tokens;
}

const int32_t *cai_session_tokens(const struct cai_session *s)
{
    return s->tokens;
}

void cai_session_truncate(struct cai_session *s, int n_keep)
{
    if (n_keep < 0)
        n_keep = 0;
    if (n_keep < s->n_tokens)
        s->n_tokens = n_keep;
    s->logits_rows = 0;
}

int cai__session_fail(struct cai_session *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    return code;
}

int cai_session_decode(struct cai_session *s, const int32_t *tokens, int n_tokens, bool all_logits)
{
    const struct cai__hparams *hp = &s->m->hp;
    s->errmsg[0] = '\0';
    if (n_tokens <= 0)
        return cai__session_fail(s, CAI_EINVAL, "decode: no tokens");
    if (n_tokens > s->fwd.n_ctx - s->n_tokens)
        return cai__session_fail(s, CAI_ECTX_FULL, "decode: %d tokens do not fit (%d of %d used)", n_tokens,
                       s->n_tokens, s->fwd.n_ctx);
    for (int i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return cai__session_fail(s, CAI_ERANGE, "decode: token %d at index %d is out of range [0, %d)",
                           tokens[i], i, hp->n_vocab);
    int rows = all_logits ? n_tokens : 1;
    if (rows > s->logits_cap) {
        float *nl = cai__malloc_array((size_t)rows * (size_t)hp->n_vocab, sizeof(float));
        if (!nl)
            return cai__session_fail(s, CAI_ENOMEM, "decode: out of memory for %d rows of logits", rows);
        cai__free(s->logits);
        s->logits = nl;
        s->logits_cap = rows;
    }
    s->logits_rows = 0;
    for (int done = 0; done < n_tokens;) {
        int n = CAI_MIN(s->fwd.n_batch, n_tokens - done);
        bool last = done + n == n_tokens;
        int n_out = all_logits ? n : (last ? 1 : 0);
        float *dst = s->logits + (all_logits ? (size_t)done * (size_t)hp->n_vocab : 0);
        cai__fwd_eval(&s->fwd, tokens + done, n, s->n_tokens, n_out, dst);
        memcpy(s->tokens + s->n_tokens, tokens + done, (size_t)n * sizeof(int32_t));
        s->n_tokens += n;
        done += n;
    }
    s->logits_rows = rows;
    cai__model_pack_kick(s->m); /* the first pass is done: packing may start */
    return 0;
}

const float *cai_session_logits(const struct cai_session *s, int i)
{
    if (i < 0)
        i = s->logits_rows - 1;
    if (i < 0 || i >= s->logits_rows)
        return NULL;
    return s->logits + (size_t)i * (size_t)s->m->hp.n_vocab;
}

/* ---- tokens ------------------------------------------------------------ */

int cai_tokenize(const struct cai_model *m, const char *text, size_t n_bytes, bool add_special,
                 bool parse_special, int32_t *out, int n_max)
{
    return cai__tok_encode(m->tok, text, n_bytes, add_special, parse_special, out, n_max);
}

int cai_token_to_piece(const struct cai_model *m, int32_t id, bool special, char *buf, size_t cap)
{
    return cai__tok_piece(m->tok, id, special, buf, cap);
}

bool cai_token_is_eog(const struct cai_model *m, int32_t id)
{
    return cai__tok_is_eog(m->tok, id);
}

/* ---- layer debugger ---------------------------------------------------- */

void cai_session_set_layer_hook(struct cai_session *s, cai_layer_fn fn, void *user)
{
    s->fwd.layer_hook = fn;
    s->fwd.layer_hook_user = fn ? user : NULL;
}

/* ---- profiling --------------------------------------------------------- */

int cai_session_profile_enable(struct cai_session *s, bool on)
{
    cai__free(s->fwd.prof);
    s->fwd.prof = NULL;
    if (!on)
        return 0;
    s->fwd.prof = cai__calloc((size_t)(s->m->hp.n_layer + 1) * CAI__OP_COUNT,
                              sizeof(struct cai__prof_cell));
    return s->fwd.prof ? 0 : CAI_ENOMEM;
}

int cai_session_profile_read(const struct cai_session *s, struct cai_profile_entry *out, int n_max)
{
    if (!s->fwd.prof)
        return 0;
    int n = 0, n_layer = s->m->hp.n_layer;
    for (int l = 0; l <= n_layer; l++)
        for (int op = 0; op < CAI__OP_COUNT; op++) {
            const struct cai__prof_cell *c = &s->fwd.prof[(size_t)l * CAI__OP_COUNT + (size_t)op];
            if (!c->calls)
                continue;
            if (n < n_max) {
                out[n].layer = l == n_layer ? -1 : l;
                out[n].op = cai__op_name(op);
                out[n].ms = (double)c->ns / 1e6;
                out[n].bytes = c->bytes;
                out[n].flops = c->flops;
                out[n].calls = c->calls;
                out[n].part_of = cai__op_parent(op) >= 0 ? cai__op_name(cai__op_parent(op)) : NULL;
            }
            n++;
        }
    return n;
}
