/* embed.c: cai_embed, mean-pooled final hidden states (see coreai.h).
 *
 * The decode loop is the ordinary one; a layer hook (the one the layer
 * debugger uses) sees the residual stream after the last layer, applies the
 * model's output norm to each token's row as the logits path does, and adds
 * the rows up in double. The caller's own hook is set aside meanwhile. */
#include <math.h>
#include <string.h>

#include "session.h"

struct embed_acc {
    struct cai_session *s;
    double             *sum;  /* [n_embd] */
    float              *row;  /* [n_embd] one normed row */
    int                 rows;
};

static void embed_hook(void *user, int layer, int pos0, int n_tok, int n_embd, const float *x)
{
    struct embed_acc *a = user;
    const struct cai_model *m = a->s->m;
    (void)pos0;
    if (layer != m->hp.n_layer - 1)
        return;
    for (int t = 0; t < n_tok; t++) {
        a->s->fwd.k->rmsnorm(a->row, x + (size_t)t * (size_t)n_embd, m->output_norm.data,
                             n_embd, m->hp.rms_eps);
        for (int c = 0; c < n_embd; c++)
            a->sum[c] += (double)a->row[c];
        a->rows++;
    }
}

int cai_embed(struct cai_session *s, const char *text, size_t n_bytes, float *out, int cap,
              int *n_tokens)
{
    const int d = s->m->hp.n_embd;
    s->errmsg[0] = '\0';
    if (n_tokens)
        *n_tokens = 0;
    if (!text && n_bytes)
        return cai__session_fail(s, CAI_EINVAL, "embed: NULL text");
    if (cap < d)
        return d;
    int n = cai_tokenize(s->m, text ? text : "", n_bytes, true, false, NULL, 0);
    if (n < 0)
        return cai__session_fail(s, n, "embed: cannot tokenize the text");
    if (n == 0)
        return cai__session_fail(s, CAI_EINVAL, "embed: the text gives no tokens");
    if (n > s->fwd.n_ctx)
        return cai__session_fail(s, CAI_ECTX_FULL, "embed: %d tokens do not fit the %d-token "
                                 "context", n, s->fwd.n_ctx);
    int32_t *toks = cai__malloc_array((size_t)n, sizeof(int32_t));
    struct embed_acc a = {.s = s};
    a.sum = cai__calloc((size_t)d, sizeof(double));
    a.row = cai__malloc_array((size_t)d, sizeof(float));
    int rc;
    if (!toks || !a.sum || !a.row) {
        rc = cai__session_fail(s, CAI_ENOMEM, "embed: out of memory");
        goto out;
    }
    n = cai_tokenize(s->m, text ? text : "", n_bytes, true, false, toks, n);
    if (n <= 0) {
        rc = cai__session_fail(s, n < 0 ? n : CAI_EINVAL, "embed: cannot tokenize the text");
        goto out;
    }
    void (*user_hook)(void *, int, int, int, int, const float *) = s->fwd.layer_hook;
    void *user_data = s->fwd.layer_hook_user;
    s->fwd.layer_hook = embed_hook;
    s->fwd.layer_hook_user = &a;
    cai_session_truncate(s, 0);
    rc = cai_session_decode(s, toks, n, false);
    s->fwd.layer_hook = user_hook;
    s->fwd.layer_hook_user = user_data;
    if (rc < 0)
        goto out;
    if (a.rows != n) {
        rc = cai__session_fail(s, CAI_EINVAL, "embed: saw %d of %d rows", a.rows, n);
        goto out;
    }
    double norm = 0.0;
    for (int c = 0; c < d; c++) {
        a.sum[c] /= n;
        norm += a.sum[c] * a.sum[c];
    }
    norm = norm > 0.0 ? 1.0 / sqrt(norm) : 0.0;
    for (int c = 0; c < d; c++)
        out[c] = (float)(a.sum[c] * norm);
    if (n_tokens)
        *n_tokens = n;
    rc = d;
out:
    cai__free(toks);
    cai__free(a.sum);
    cai__free(a.row);
    return rc;
}
