/* generate.c: the decode loop: prompt reuse, sampling, streaming, stop
 * conditions, and chat on top of it.
 *
 * Text reaches the caller in whole UTF-8 characters. When stop strings are
 * set, text that could still become the start of a stop string is held back
 * until it either completes one (then it is dropped and generation stops)
 * or can no longer do so. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../sample/json_gate.h"
#include "../sample/sample.h"
#include "../tok/template.h"
#include "session.h"

struct cai_gen_params cai_gen_params_default(void)
{
    struct cai_gen_params p;
    memset(&p, 0, sizeof(p));
    p.max_tokens = 256;
    p.sampling = cai_sampling_default();
    p.add_special = true;
    return p;
}

/* ---- JSON mode ----------------------------------------------------------- */

/* Every token's text (special tokens render empty), built once per
 * generation, and the gate the output so far has passed. */
struct jmode {
    struct cai__jgate g;
    char             *text; /* all pieces back to back */
    uint32_t         *off;  /* [n_vocab + 1] */
};

static void jmode_free(struct jmode *j)
{
    cai__free(j->text);
    cai__free(j->off);
}

static int jmode_init(struct jmode *j, const struct cai_tok *t, int n_vocab)
{
    memset(j, 0, sizeof(*j));
    cai__jgate_init(&j->g);
    size_t cap = cai__tok_max_piece(t) + 64, size = 0;
    char *buf = cai__malloc(cap);
    j->off = cai__malloc(((size_t)n_vocab + 1) * sizeof(*j->off));
    if (!buf || !j->off)
        goto oom;
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (int id = 0; id < n_vocab; id++) {
            int n = cai__tok_piece(t, id, false, buf, cap);
            if (n < 0 || (size_t)n > cap)
                n = 0; /* a piece that does not render is never allowed */
            if (pass == 1)
                memcpy(j->text + at, buf, (size_t)n);
            j->off[id] = (uint32_t)at;
            at += (size_t)n;
            if (at > UINT32_MAX)
                goto oom;
        }
        j->off[n_vocab] = (uint32_t)at;
        size = at;
        if (pass == 0 && !(j->text = cai__malloc(size ? size : 1)))
            goto oom;
    }
    cai__free(buf);
    return 0;
oom:
    cai__free(buf);
    jmode_free(j);
    return CAI_ENOMEM;
}

/* Sets the logits of tokens that cannot continue the object to -inf;
 * returns how many remain. End-of-generation tokens only once it closed. */
static int jmode_mask(const struct jmode *j, const struct cai_tok *t, float *lg, int n_vocab)
{
    bool done = cai__jgate_done(&j->g);
    int n_ok = 0;
    /* Which first bytes the gate takes now: most tokens fail on their first
     * byte, and that costs one table look-up instead of a gate copy. */
    bool first[256];
    for (int c = 0; c < 256; c++) {
        struct cai__jgate g = j->g;
        char b = (char)c;
        first[c] = !done && cai__jgate_feed(&g, &b, 1);
    }
    for (int id = 0; id < n_vocab; id++) {
        if (lg[id] == -INFINITY)
            continue;
        bool ok;
        uint32_t len = j->off[id + 1] - j->off[id];
        if (cai__tok_is_eog(t, id)) {
            ok = done;
        } else if (done || len == 0 || !first[(unsigned char)j->text[j->off[id]]]) {
            ok = false;
        } else if (len == 1) {
            ok = true;
        } else {
            struct cai__jgate g = j->g;
            ok = cai__jgate_feed(&g, j->text + j->off[id], len);
        }
        if (ok)
            n_ok++;
        else
            lg[id] = -INFINITY;
    }
    return n_ok;
}

/* ---- output with stop strings ------------------------------------------ */

struct emitter {
    cai_piece_fn        fn;
    void               *user;
    const char *const  *stop;
    int                 n_stop;
    char               *hold;      /* text not yet passed to fn */
    size_t              n_hold, cap_hold;
    bool                stopped_by_string;
    bool                stopped_by_callback;
};

static size_t utf8_boundary_back(const char *s, size_t i)
{
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static int emit_raw(struct emitter *e, const char *text, size_t n, int32_t tok)
{
    if (n == 0 || !e->fn)
        return 0;
    struct cai_piece p = {.text = text, .n_bytes = n, .token = tok};
    if (e->fn(e->user, &p) != 0) {
        e->stopped_by_callback = true;
        return 1;
    }
    return 0;
}

/* Adds text; returns 1 when generation must stop, negative on OOM. */
static int emit(struct emitter *e, const char *text, size_t n, int32_t tok, bool final)
{
    if (e->n_stop == 0)
        return emit_raw(e, text, n, tok);
    if (e->n_hold + n + 1 > e->cap_hold) {
        size_t cap = CAI_MAX(e->cap_hold * 2, e->n_hold + n + 64);
        char *nh = cai__realloc(e->hold, cap);
        if (!nh)
            return CAI_ENOMEM;
        e->hold = nh;
        e->cap_hold = cap;
    }
    memcpy(e->hold + e->n_hold, text, n);
    e->n_hold += n;
    /* A complete stop string: emit what precedes it and stop. */
    size_t best = SIZE_MAX;
    for (int i = 0; i < e->n_stop; i++) {
        size_t ls = strlen(e->stop[i]);
        if (ls == 0 || ls > e->n_hold)
            continue;
        const char *hit = memmem(e->hold, e->n_hold, e->stop[i], ls);
        if (hit && (size_t)(hit - e->hold) < best)
            best = (size_t)(hit - e->hold);
    }
    if (best != SIZE_MAX) {
        e->stopped_by_string = true;
        emit_raw(e, e->hold, best, tok);
        e->n_hold = 0;
        return 1;
    }
    /* Hold back the longest suffix that is a prefix of some stop string. */
    size_t keep = 0;
    if (!final) {
        for (int i = 0; i < e->n_stop; i++) {
            size_t ls = strlen(e->stop[i]);
            for (size_t k = CAI_MIN(ls - 1, e->n_hold); k > keep; k--)
                if (memcmp(e->hold + e->n_hold - k, e->stop[i], k) == 0) {
                    keep = k;
                    break;
                }
        }
    }
    size_t cut = utf8_boundary_back(e->hold, e->n_hold - keep);
    if (keep == 0)
        cut = e->n_hold;
    int rc = emit_raw(e, e->hold, cut, tok);
    memmove(e->hold, e->hold + cut, e->n_hold - cut);
    e->n_hold -= cut;
    return rc;
}

/* ---- generation -------------------------------------------------------- */

static int tokenize_alloc(const struct cai_model *m, const char *text, bool add_special,
                          bool parse_special, int32_t **out)
{
    size_t len = strlen(text);
    int cap = (int)CAI_MIN(len + 16, (size_t)1 << 24);
    int32_t *buf = cai__malloc_array((size_t)cap, sizeof(int32_t));
    if (!buf)
        return CAI_ENOMEM;
    int n = cai__tok_encode(m->tok, text, len, add_special, parse_special, buf, cap);
    if (n > cap) {
        cai__free(buf);
        cap = n;
        buf = cai__malloc_array((size_t)cap, sizeof(int32_t));
        if (!buf)
            return CAI_ENOMEM;
        n = cai__tok_encode(m->tok, text, len, add_special, parse_special, buf, cap);
    }
    if (n < 0) {
        cai__free(buf);
        return n;
    }
    *out = buf;
    return n;
}

/* Picks a token from lg with smp, records it in smp's history and, with
 * profiling on, the time since ts in the "sample" row. */
static int32_t sample_row(struct cai_session *s, struct cai_sampler *smp, float *lg, int64_t ts)
{
    const int32_t tok = cai__sampler_sample(smp, lg);
    cai__sampler_accept(smp, tok);
    if (s->fwd.prof) {
        const int n_vocab = s->m->hp.n_vocab;
        struct cai__prof_cell *c =
            &s->fwd.prof[(size_t)s->m->hp.n_layer * CAI__OP_COUNT + CAI__OP_SAMPLE];
        c->ns += cai__now_ns() - ts;
        c->bytes += (uint64_t)n_vocab * 4u;
        c->calls++;
    }
    return tok;
}

int cai_sampler_new(struct cai_sampler **out, const struct cai_model *m,
                    const struct cai_sampling *p, struct cai_error *err)
{
    if (!m) {
        if (out)
            *out = NULL;
        return cai__fail(err, CAI_EINVAL, "sampler: model is NULL");
    }
    const struct cai_sampling def = cai_sampling_default();
    return cai__sampler_new(out, p ? p : &def, (uint32_t)m->hp.n_vocab, err);
}

void cai_sampler_free(struct cai_sampler *s)
{
    cai__sampler_free(s);
}

void cai_sampler_accept(struct cai_sampler *s, int32_t token)
{
    cai__sampler_accept(s, token);
}

int32_t cai_session_sample(struct cai_session *s, struct cai_sampler *smp)
{
    const int64_t ts = cai__now_ns();
    const int n_vocab = s->m->hp.n_vocab;
    if (!smp)
        return cai__session_fail(s, CAI_EINVAL, "sample: sampler is NULL");
    if (cai__sampler_n_vocab(smp) != (uint32_t)n_vocab)
        return cai__session_fail(s, CAI_EINVAL,
                                 "sample: the sampler was made for %u tokens, the model has %d",
                                 cai__sampler_n_vocab(smp), n_vocab);
    if (s->logits_rows <= 0)
        return cai__session_fail(s, CAI_EINVAL, "sample: no logits yet (decode first)");
    return sample_row(s, smp, s->logits + (size_t)(s->logits_rows - 1) * (size_t)n_vocab, ts);
}

static int generate_tokens(struct cai_session *s, const int32_t *prompt, int n_prompt,
                           const struct cai_gen_params *p, cai_piece_fn fn, void *user,
                           struct cai_gen_result *res, int64_t t_start)
{
    const struct cai_model *m = s->m;
    int rc;
    if (n_prompt <= 0)
        return cai__session_fail(s, CAI_EINVAL, "generate: the prompt is empty");
    if (n_prompt >= s->fwd.n_ctx)
        return cai__session_fail(s, CAI_ECTX_FULL, "generate: prompt of %d tokens does not fit the "
                              "%d-token context", n_prompt, s->fwd.n_ctx);
    /* Reuse the longest common prefix; always re-evaluate at least one
     * token so there are fresh logits. */
    int common = 0;
    while (common < s->n_tokens && common < n_prompt && s->tokens[common] == prompt[common])
        common++;
    if (common == n_prompt)
        common--;
    cai_session_truncate(s, common);
    res->n_prompt = n_prompt;
    res->n_reused = common;

    struct cai_sampler *smp = NULL;
    struct cai_error err = {0};
    struct jmode jm;
    if ((rc = cai__sampler_new(&smp, &p->sampling, (uint32_t)m->hp.n_vocab, &err)) < 0)
        return cai__session_fail(s, rc, "%s", err.msg);
    if (p->json && (rc = jmode_init(&jm, m->tok, m->hp.n_vocab)) < 0) {
        cai__sampler_free(smp);
        return cai__session_fail(s, rc, "generate: out of memory for JSON mode");
    }
    int hist = p->sampling.penalty_last_n > 0 ? p->sampling.penalty_last_n : 0;
    for (int i = CAI_MAX(0, n_prompt - hist); i < n_prompt; i++)
        cai__sampler_accept(smp, prompt[i]);

    int64_t t0 = cai__now_ns();
    rc = cai_session_decode(s, prompt + common, n_prompt - common, false);
    if (rc < 0) {
        cai__sampler_free(smp);
        if (p->json)
            jmode_free(&jm);
        return rc;
    }
    res->t_prompt_ns = cai__now_ns() - t0;

    struct emitter em = {.fn = fn, .user = user, .stop = p->stop, .n_stop = p->stop ? p->n_stop
                                                                                    : 0};
    struct cai_detok dt;
    cai__detok_init(&dt, m->tok, p->render_special);
    char piece[512];
    int64_t t_gen0 = 0;
    int max_tokens = p->max_tokens > 0 ? p->max_tokens : INT32_MAX;
    res->stop_reason = CAI_STOP_NONE;
    for (;;) {
        if (__atomic_load_n(&s->cancel, __ATOMIC_RELAXED)) {
            res->stop_reason = CAI_STOP_CALLBACK;
            break;
        }
        float *lg = s->logits + (size_t)(s->logits_rows - 1) * (size_t)m->hp.n_vocab;
        int64_t ts = cai__now_ns();
        if (p->json && jmode_mask(&jm, m->tok, lg, m->hp.n_vocab) == 0) {
            res->stop_reason = CAI_STOP_EOG; /* nothing can continue the object */
            break;
        }
        int32_t tok = sample_row(s, smp, lg, ts);
        if (res->n_gen == 0) {
            res->t_first_ns = cai__now_ns() - t_start;
            t_gen0 = cai__now_ns();
        }
        res->n_gen++;
        if (cai__tok_is_eog(m->tok, tok)) {
            res->stop_reason = CAI_STOP_EOG;
            break;
        }
        int n = cai__detok_push(&dt, tok, piece, sizeof(piece));
        if (n < 0) {
            rc = n;
            break;
        }
        int st = emit(&em, piece, (size_t)n, tok, false);
        if (st < 0) {
            rc = st;
            break;
        }
        if (st > 0) {
            res->stop_reason = em.stopped_by_string ? CAI_STOP_STRING : CAI_STOP_CALLBACK;
            break;
        }
        if (p->json) {
            /* The mask let only tokens through that the gate accepts. */
            cai__jgate_feed(&jm.g, jm.text + jm.off[tok], jm.off[tok + 1] - jm.off[tok]);
            if (cai__jgate_done(&jm.g)) {
                res->stop_reason = CAI_STOP_EOG;
                break;
            }
        }
        if (res->n_gen >= max_tokens) {
            res->stop_reason = CAI_STOP_MAX_TOKENS;
            break;
        }
        if (s->n_tokens >= s->fwd.n_ctx) {
            res->stop_reason = CAI_STOP_CTX_FULL;
            break;
        }
        if ((rc = cai_session_decode(s, &tok, 1, false)) < 0)
            break;
    }
    if (rc >= 0 && res->stop_reason != CAI_STOP_STRING && res->stop_reason != CAI_STOP_CALLBACK) {
        int n = cai__detok_flush(&dt, piece, sizeof(piece));
        if (n > 0 || em.n_hold > 0)
            emit(&em, piece, (size_t)(n > 0 ? n : 0), -1, true);
    }
    if (t_gen0)
        res->t_gen_ns = cai__now_ns() - t_gen0;
    cai__free(em.hold);
    cai__sampler_free(smp);
    if (p->json)
        jmode_free(&jm);
    return rc < 0 ? rc : 0;
}

int cai_generate(struct cai_session *s, const char *prompt, const struct cai_gen_params *params,
                 cai_piece_fn fn, void *user, struct cai_gen_result *res)
{
    struct cai_gen_params p = params ? *params : cai_gen_params_default();
    struct cai_gen_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof(*res));
    s->errmsg[0] = '\0';
    int64_t t_start = cai__now_ns();
    int32_t *toks = NULL;
    int n = tokenize_alloc(s->m, prompt, p.add_special, p.parse_special, &toks);
    if (n < 0)
        return cai__session_fail(s, n, "generate: cannot tokenize the prompt");
    int rc = generate_tokens(s, toks, n, &p, fn, user, res, t_start);
    cai__free(toks);
    return rc;
}

/* ---- chat -------------------------------------------------------------- */

int cai_chat_render(const struct cai_model *m, const struct cai_chat_msg *msgs, size_t n_msgs,
                    bool add_generation_prompt, char **out, struct cai_error *err)
{
    char bos[256] = "", eos[256] = "";
    int32_t b = cai__tok_bos(m->tok), e = cai__tok_eos(m->tok);
    if (b >= 0) {
        int n = cai__tok_piece(m->tok, b, true, bos, sizeof(bos) - 1);
        bos[n > 0 && n < (int)sizeof(bos) ? n : 0] = '\0';
    }
    if (e >= 0) {
        int n = cai__tok_piece(m->tok, e, true, eos, sizeof(eos) - 1);
        eos[n > 0 && n < (int)sizeof(eos) ? n : 0] = '\0';
    }
    const char *tmpl = m->chat_template;
    size_t out_len;
    if (!tmpl) {
        /* No template in the file (some Gemma 3 GGUFs): the format the
         * vocabulary's turn markers name, else ChatML. */
        enum cai__chat_family fam = CAI__CHAT_CHATML;
        if (cai__tok_find(m->tok, "<start_of_turn>", 15) >= 0)
            fam = CAI__CHAT_GEMMA;
        else if (cai__tok_find(m->tok, "<|start_header_id|>", 19) >= 0)
            fam = CAI__CHAT_LLAMA3;
        return cai__chat_render_family(fam, msgs, n_msgs, add_generation_prompt, bos, eos, out,
                                       &out_len, err);
    }
    return cai__chat_render(tmpl, strlen(tmpl), msgs, n_msgs, add_generation_prompt, bos, eos,
                            out, &out_len, err);
}

int cai_chat(struct cai_session *s, const struct cai_chat_msg *msgs, size_t n_msgs,
             const struct cai_gen_params *params, cai_piece_fn fn, void *user,
             struct cai_gen_result *res)
{
    struct cai_gen_params p = params ? *params : cai_gen_params_default();
    struct cai_error err = {0};
    char *text = NULL;
    int rc = cai_chat_render(s->m, msgs, n_msgs, true, &text, &err);
    if (rc < 0)
        return cai__session_fail(s, rc, "chat: %s", err.msg);
    p.parse_special = true;
    /* Templates that spell the BOS token themselves must not get a second one. */
    char bos[256];
    int32_t b = cai__tok_bos(s->m->tok);
    int nb = b >= 0 ? cai__tok_piece(s->m->tok, b, true, bos, sizeof(bos)) : 0;
    if (nb > 0 && nb < (int)sizeof(bos) && strncmp(text, bos, (size_t)nb) == 0)
        p.add_special = false;
    rc = cai_generate(s, text, &p, fn, user, res);
    cai__free(text);
    return rc;
}
