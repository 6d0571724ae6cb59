/* model.c: opening a model file: hyperparameters, weight binding with shape
 * checks, and the tokenizer, for the Llama family (llama, qwen2, mistral)
 * and Gemma 3 (gemma3).
 *
 * Everything read from the file is validated here once, so the forward pass
 * can index weights without checks: each tensor the architecture needs must
 * exist with exactly the expected shape and a type the kernels compute. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../format/coreaimodel.h"
#include "../kernels/kernels.h"
#include "model.h"

struct arch_desc {
    const char *name;
    int         rope_type;
    bool        gemma3;
};

static const struct arch_desc archs[] = {
    {"llama", CAI__ROPE_NORM, false},
    {"mistral", CAI__ROPE_NORM, false},
    {"qwen2", CAI__ROPE_NEOX, false},
    {"gemma3", CAI__ROPE_NEOX, true},
};

/* Limits far above any real model; they keep hostile files from requesting
 * absurd allocations before the tensor shapes are checked. */
#define MAX_EMBD  (1 << 16)
#define MAX_HEADS 1024
#define MAX_FF    (1 << 20)
#define MAX_VOCAB (1 << 22)

static char *str_dup(struct cai_gguf_str s)
{
    return cai__strndup(s.ptr, (size_t)s.len);
}

static int get_hp(const struct cai_model *m, const char *suffix, bool required, uint32_t *out,
                  uint32_t lo, uint32_t hi, struct cai_error *err)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", m->arch, suffix);
    int rc = cai__gguf_get_u32(m->gguf, key, required, out, err);
    if (rc < 0)
        return rc;
    if (rc == 0 && (*out < lo || *out > hi))
        return cai__fail(err, CAI_EFORMAT, "%s: %s = %u is out of range [%u, %u]", m->path, key,
                         *out, lo, hi);
    return 0;
}

static int get_hp_f32(const struct cai_model *m, const char *suffix, float *out,
                      struct cai_error *err)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", m->arch, suffix);
    int rc = cai__gguf_get_f32(m->gguf, key, false, out, err);
    if (rc < 0)
        return rc;
    if (!isfinite(*out))
        return cai__fail(err, CAI_EFORMAT, "%s: %s is not finite", m->path, key);
    return 0;
}

static int load_hparams(struct cai_model *m, struct cai_error *err)
{
    struct cai__hparams *hp = &m->hp;
    uint32_t v;
    int rc;
    if ((rc = get_hp(m, "block_count", true, &v, 1, CAI__MAX_LAYERS, err)) < 0)
        return rc;
    hp->n_layer = (int)v;
    if ((rc = get_hp(m, "embedding_length", true, &v, 1, MAX_EMBD, err)) < 0)
        return rc;
    hp->n_embd = (int)v;
    if ((rc = get_hp(m, "feed_forward_length", true, &v, 1, MAX_FF, err)) < 0)
        return rc;
    hp->n_ff = (int)v;
    if ((rc = get_hp(m, "attention.head_count", true, &v, 1, MAX_HEADS, err)) < 0)
        return rc;
    hp->n_head = (int)v;
    v = (uint32_t)hp->n_head;
    if ((rc = get_hp(m, "attention.head_count_kv", false, &v, 1, MAX_HEADS, err)) < 0)
        return rc;
    hp->n_head_kv = (int)v;
    v = 4096;
    if ((rc = get_hp(m, "context_length", false, &v, 1, 1u << 24, err)) < 0)
        return rc;
    hp->n_ctx_train = (int)v;
    if (hp->n_head % hp->n_head_kv != 0)
        return cai__fail(err, CAI_EFORMAT,
                         "%s: %s.attention.head_count (%d) is not a multiple of head_count_kv (%d)",
                         m->path, m->arch, hp->n_head, hp->n_head_kv);
    v = 0;
    if ((rc = get_hp(m, "attention.key_length", false, &v, 1, CAI__MAX_HEAD_DIM, err)) < 0)
        return rc;
    if (v == 0) {
        if (hp->n_embd % hp->n_head != 0)
            return cai__fail(err, CAI_EFORMAT,
                             "%s: %s.embedding_length (%d) is not a multiple of "
                             "attention.head_count (%d)",
                             m->path, m->arch, hp->n_embd, hp->n_head);
        v = (uint32_t)(hp->n_embd / hp->n_head);
        if (v > CAI__MAX_HEAD_DIM)
            return cai__fail(err, CAI_EFORMAT, "%s: head dimension %u is larger than %d", m->path,
                             v, CAI__MAX_HEAD_DIM);
    }
    hp->head_dim = (int)v;
    if (hp->head_dim % 2 != 0)
        return cai__fail(err, CAI_EFORMAT, "%s: head dimension %d is odd", m->path, hp->head_dim);
    v = (uint32_t)hp->head_dim;
    if ((rc = get_hp(m, "rope.dimension_count", false, &v, 2, (uint32_t)hp->head_dim, err)) < 0)
        return rc;
    if (v % 2 != 0)
        return cai__fail(err, CAI_EFORMAT, "%s: %s.rope.dimension_count %u is odd", m->path,
                         m->arch, v);
    hp->n_rot = (int)v;
    hp->rope_base = 10000.0f;
    if ((rc = get_hp_f32(m, "rope.freq_base", &hp->rope_base, err)) < 0)
        return rc;
    if (hp->rope_base <= 1.0f)
        return cai__fail(err, CAI_EFORMAT, "%s: %s.rope.freq_base %g must be > 1", m->path,
                         m->arch, (double)hp->rope_base);
    hp->rms_eps = 1e-5f;
    if ((rc = get_hp_f32(m, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err)) < 0)
        return rc;
    if (hp->rms_eps <= 0.0f || hp->rms_eps > 1.0f)
        return cai__fail(err, CAI_EFORMAT, "%s: %s.attention.layer_norm_rms_epsilon %g is out of "
                         "range", m->path, m->arch, (double)hp->rms_eps);
    hp->rope_scale = 1.0f;
    char key[128];
    struct cai_gguf_str stype = {0};
    snprintf(key, sizeof(key), "%s.rope.scaling.type", m->arch);
    if ((rc = cai__gguf_get_str(m->gguf, key, false, &stype, err)) < 0)
        return rc;
    float factor = 0.0f;
    snprintf(key, sizeof(key), "%s.rope.scaling.factor", m->arch);
    if ((rc = cai__gguf_get_f32(m->gguf, key, false, &factor, err)) < 0)
        return rc;
    if (rc == 0 && stype.ptr == NULL) {
        /* Older files: a bare factor means linear scaling. */
        stype.ptr = "linear";
        stype.len = 6;
    }
    if (stype.ptr && !cai__gguf_str_eq(stype, "none")) {
        if (cai__gguf_str_eq(stype, "linear")) {
            if (!(factor > 0.0f) || !isfinite(factor))
                return cai__fail(err, CAI_EFORMAT, "%s: %s.rope.scaling.factor must be > 0",
                                 m->path, m->arch);
            hp->rope_scale = 1.0f / factor;
        } else {
            return cai__fail(err, CAI_EUNSUPPORTED, "%s: rope scaling type \"%.*s\" is not "
                             "supported yet", m->path, (int)CAI_MIN(stype.len, 32), stype.ptr);
        }
    }
    return 0;
}

/* Gemma 3's additions (as llama.cpp reads them): the embedding scaled by
 * sqrt(n_embd); queries scaled by 1/sqrt(head_dim) after RoPE (the 27B's
 * 62 layers: 1/sqrt(n_embd / n_head)); a GELU gate; sliding-window layers
 * (attention.sliding_window positions; attention.sliding_window_pattern, a
 * period (default 6: every sixth layer global) or one bool per layer) with
 * their own RoPE base (rope.freq_base_swa, default 10000, scale 1); an
 * optional final logit soft cap. */
static int load_gemma3(struct cai_model *m, struct cai_error *err)
{
    struct cai__hparams *hp = &m->hp;
    char key[128];
    int rc;
    hp->emb_scale = sqrtf((float)hp->n_embd);
    hp->q_scale = hp->n_layer == 62 ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
                                    : 1.0f / sqrtf((float)hp->head_dim);
    if (!isfinite(hp->q_scale))
        return cai__fail(err, CAI_EFORMAT, "%s: %s: query scale 1/sqrt(%d / %d) is not finite",
                         m->path, m->arch, hp->n_embd, hp->n_head);
    hp->ffn_gelu = true;
    uint32_t v = 0;
    if ((rc = get_hp(m, "attention.sliding_window", false, &v, 0, 1u << 24, err)) < 0)
        return rc;
    hp->n_swa = (int)v;
    if (hp->n_swa > 0) {
        snprintf(key, sizeof(key), "%s.attention.sliding_window_pattern", m->arch);
        const struct cai_gguf_kv *kv = cai__gguf_find_kv(m->gguf, key);
        if (kv && kv->type == CAI_GGUF_ARRAY) {
            if (kv->arr_n != (uint64_t)hp->n_layer ||
                (kv->arr_type != CAI_GGUF_BOOL && kv->arr_type != CAI_GGUF_U8 &&
                 kv->arr_type != CAI_GGUF_I32 && kv->arr_type != CAI_GGUF_U32))
                return cai__fail(err, CAI_EFORMAT, "%s: %s must hold one bool per layer (%d)",
                                 m->path, key, hp->n_layer);
            for (int il = 0; il < hp->n_layer; il++)
                hp->swa[il] = cai__gguf_arr_i64(kv, (uint64_t)il) != 0;
        } else {
            uint32_t period = 6;
            if ((rc = get_hp(m, "attention.sliding_window_pattern", false, &period, 0, 1u << 16,
                             err)) < 0)
                return rc;
            for (int il = 0; il < hp->n_layer; il++)
                hp->swa[il] = period == 0 || (uint32_t)il % period < period - 1;
        }
        hp->rope_base_swa = 10000.0f;
        if ((rc = get_hp_f32(m, "rope.freq_base_swa", &hp->rope_base_swa, err)) < 0)
            return rc;
        if (hp->rope_base_swa <= 1.0f)
            return cai__fail(err, CAI_EFORMAT, "%s: %s.rope.freq_base_swa %g must be > 1",
                             m->path, m->arch, (double)hp->rope_base_swa);
    }
    hp->logit_softcap = 0.0f;
    if ((rc = get_hp_f32(m, "final_logit_softcapping", &hp->logit_softcap, err)) < 0)
        return rc;
    if (hp->logit_softcap < 0.0f)
        return cai__fail(err, CAI_EFORMAT, "%s: %s.final_logit_softcapping %g is negative",
                         m->path, m->arch, (double)hp->logit_softcap);
    return 0;
}

/* Binds tensor `name` expecting shape [ne0] (ne1 == 0) or [ne0, ne1]. */
static int bind(struct cai_model *m, const char *name, int64_t ne0, int64_t ne1, bool required,
                bool need_f32, struct cai__weight *w, struct cai_error *err)
{
    memset(w, 0, sizeof(*w));
    const struct cai_gguf_tensor *t = cai__gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (required)
            return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\" is missing", m->path, name);
        return 0;
    }
    int want_dims = ne1 ? 2 : 1;
    int64_t t1 = t->ne[1] * t->ne[2] * t->ne[3]; /* products checked by the reader */
    bool ok = t->ne[0] == ne0 && (ne1 ? (t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1)
                                      : t1 == 1);
    if (!ok)
        return cai__fail(err, CAI_EFORMAT,
                         "%s: tensor \"%s\" has shape [%lld, %lld, %lld, %lld], expected "
                         "[%lld%s%lld] (%d dims)",
                         m->path, name, (long long)t->ne[0], (long long)t->ne[1],
                         (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
                         ne1 ? ", " : "", (long long)(ne1 ? ne1 : 1), want_dims);
    const struct cai_type_info *ti = cai__type_info(t->type);
    if (!ti || !ti->computed || t->type == CAI_TYPE_Q8_1 || t->type == CAI_TYPE_Q8_K)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: tensor \"%s\" has type %s, which this "
                         "build cannot compute", m->path, name, ti && ti->name ? ti->name : "?");
    if (need_f32 && t->type != CAI_TYPE_F32)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: tensor \"%s\" must be f32, is %s", m->path,
                         name, ti->name);
    w->data = t->data;
    w->type = t->type;
    w->ne[0] = t->ne[0];
    w->ne[1] = t->ne[1];
    w->ne[2] = w->ne[3] = 1;
    if (!cai__row_bytes(t->type, t->ne[0], &w->row_bytes))
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": row of %lld is not a whole number "
                         "of blocks", m->path, name, (long long)t->ne[0]);
    return 0;
}

static int bind_layer(struct cai_model *m, int il, struct cai_error *err)
{
    const struct cai__hparams *hp = &m->hp;
    struct cai__layer *l = &m->layers[il];
    int64_t nq = (int64_t)hp->n_head * hp->head_dim, nkv = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    int rc = 0;
#define B(field, suffix, ne0, ne1, req, f32)                                                      \
    do {                                                                                           \
        snprintf(name, sizeof(name), "blk.%d.%s", il, suffix);                                     \
        if ((rc = bind(m, name, ne0, ne1, req, f32, &l->field, err)) < 0)                          \
            return rc;                                                                             \
    } while (0)
    B(attn_norm, "attn_norm.weight", hp->n_embd, 0, true, true);
    B(wq, "attn_q.weight", hp->n_embd, nq, true, false);
    B(wk, "attn_k.weight", hp->n_embd, nkv, true, false);
    B(wv, "attn_v.weight", hp->n_embd, nkv, true, false);
    B(wo, "attn_output.weight", nq, hp->n_embd, true, false);
    B(bq, "attn_q.bias", nq, 0, false, true);
    B(bk, "attn_k.bias", nkv, 0, false, true);
    B(bv, "attn_v.bias", nkv, 0, false, true);
    B(ffn_norm, "ffn_norm.weight", hp->n_embd, 0, true, true);
    B(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, true, false);
    B(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, true, false);
    B(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, true, false);
    const bool g3 = hp->ffn_gelu; /* Gemma 3's norms */
    B(q_norm, "attn_q_norm.weight", hp->head_dim, 0, g3, true);
    B(k_norm, "attn_k_norm.weight", hp->head_dim, 0, g3, true);
    B(post_attn_norm, "post_attention_norm.weight", hp->n_embd, 0, g3, true);
    B(post_ffn_norm, "post_ffw_norm.weight", hp->n_embd, 0, g3, true);
#undef B
    return 0;
}

/* ---- tokenizer --------------------------------------------------------- */

static int get_special(const struct cai_model *m, const char *key, uint32_t n_vocab, int32_t *out,
                       struct cai_error *err)
{
    uint32_t v;
    int rc = cai__gguf_get_u32(m->gguf, key, false, &v, err); /* absent: keep the default */
    if (rc < 0)
        return rc;
    if (rc == 1)
        return 0;
    if (v >= n_vocab) {
        /* Some converters write -1 as u32 for "none". */
        if (v == UINT32_MAX) {
            *out = -1;
            return 0;
        }
        return cai__fail(err, CAI_EFORMAT, "%s: %s = %u is out of range (vocabulary has %u "
                         "tokens)", m->path, key, v, n_vocab);
    }
    *out = (int32_t)v;
    return 0;
}

static int load_tokenizer(struct cai_model *m, struct cai_error *err)
{
    struct cai_gguf_str smodel, spre = {0};
    const struct cai_gguf_kv *tokens, *scores = NULL, *types = NULL, *merges = NULL;
    int rc;
    if ((rc = cai__gguf_get_str(m->gguf, "tokenizer.ggml.model", true, &smodel, err)) < 0)
        return rc;
    m->tokenizer_model = str_dup(smodel);
    if (!m->tokenizer_model)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", m->path);
    int kind;
    if (cai__gguf_str_eq(smodel, "gpt2"))
        kind = CAI_TOK_BPE;
    else if (cai__gguf_str_eq(smodel, "llama"))
        kind = CAI_TOK_SPM;
    else
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: tokenizer.ggml.model \"%s\" is not supported "
                         "(gpt2 and llama are)", m->path, m->tokenizer_model);
    if ((rc = cai__gguf_get_str(m->gguf, "tokenizer.ggml.pre", false, &spre, err)) < 0)
        return rc;
    if ((rc = cai__gguf_get_arr(m->gguf, "tokenizer.ggml.tokens", true, CAI_GGUF_STRING, &tokens,
                                err)) < 0)
        return rc;
    if ((rc = cai__gguf_get_arr(m->gguf, "tokenizer.ggml.scores", false, CAI_GGUF_F32, &scores,
                                err)) < 0)
        return rc;
    if ((rc = cai__gguf_get_arr(m->gguf, "tokenizer.ggml.token_type", false, CAI_GGUF_I32, &types,
                                err)) < 0)
        return rc;
    if ((rc = cai__gguf_get_arr(m->gguf, "tokenizer.ggml.merges", kind == CAI_TOK_BPE,
                                CAI_GGUF_STRING, &merges, err)) < 0)
        return rc;
    if (rc == 1)
        merges = NULL;
    uint64_t n_vocab = tokens->arr_n;
    if (n_vocab == 0 || n_vocab > MAX_VOCAB)
        return cai__fail(err, CAI_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries", m->path,
                         (unsigned long long)n_vocab);
    if (scores && scores->arr_n != n_vocab)
        return cai__fail(err, CAI_EFORMAT, "%s: tokenizer.ggml.scores has %llu entries but "
                         "tokenizer.ggml.tokens has %llu", m->path,
                         (unsigned long long)scores->arr_n, (unsigned long long)n_vocab);
    if (types && types->arr_n != n_vocab)
        return cai__fail(err, CAI_EFORMAT, "%s: tokenizer.ggml.token_type has %llu entries but "
                         "tokenizer.ggml.tokens has %llu", m->path,
                         (unsigned long long)types->arr_n, (unsigned long long)n_vocab);
    if (n_vocab != (uint64_t)m->hp.n_vocab)
        return cai__fail(err, CAI_EFORMAT, "%s: tokenizer has %llu tokens but token_embd.weight "
                         "has %d rows", m->path, (unsigned long long)n_vocab, m->hp.n_vocab);

    struct cai_tok_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.kind = kind;
    spec.n_vocab = (uint32_t)n_vocab;
    char *pre = spre.ptr ? str_dup(spre) : NULL;
    spec.pre = pre;
    uint64_t n_merges = merges ? merges->arr_n : 0;
    const char **texts = cai__malloc_array((size_t)n_vocab, sizeof(*texts));
    uint32_t *lens = cai__malloc_array((size_t)n_vocab, sizeof(*lens));
    float *sc = scores ? cai__malloc_array((size_t)n_vocab, sizeof(*sc)) : NULL;
    int32_t *ty = types ? cai__malloc_array((size_t)n_vocab, sizeof(*ty)) : NULL;
    const char **mt = n_merges ? cai__malloc_array((size_t)n_merges, sizeof(*mt)) : NULL;
    uint32_t *ml = n_merges ? cai__malloc_array((size_t)n_merges, sizeof(*ml)) : NULL;
    if ((spre.ptr && !pre) || !texts || !lens || (scores && !sc) || (types && !ty) ||
        (n_merges && (!mt || !ml))) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory building the tokenizer", m->path);
        goto out;
    }
    for (uint64_t i = 0; i < n_vocab; i++) {
        struct cai_gguf_str s = cai__gguf_arr_str(tokens, i);
        if (s.len > UINT32_MAX) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: token %llu is too long", m->path,
                           (unsigned long long)i);
            goto out;
        }
        texts[i] = s.ptr;
        lens[i] = (uint32_t)s.len;
        if (sc)
            sc[i] = (float)cai__gguf_arr_f64(scores, i);
        if (ty)
            ty[i] = (int32_t)cai__gguf_arr_i64(types, i);
    }
    for (uint64_t i = 0; i < n_merges; i++) {
        struct cai_gguf_str s = cai__gguf_arr_str(merges, i);
        if (s.len > UINT32_MAX) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: merge %llu is too long", m->path,
                           (unsigned long long)i);
            goto out;
        }
        mt[i] = s.ptr;
        ml[i] = (uint32_t)s.len;
    }
    cai__tok_spec_defaults(&spec); /* what llama.cpp assumes for absent keys */
    spec.texts = texts;
    spec.text_lens = lens;
    spec.scores = sc;
    spec.types = ty;
    spec.n_merges = (uint32_t)n_merges;
    spec.merges = mt;
    spec.merge_lens = ml;
    uint32_t nv = (uint32_t)n_vocab;
    if ((rc = get_special(m, "tokenizer.ggml.bos_token_id", nv, &spec.bos, err)) < 0 ||
        (rc = get_special(m, "tokenizer.ggml.eos_token_id", nv, &spec.eos, err)) < 0 ||
        (rc = get_special(m, "tokenizer.ggml.eot_token_id", nv, &spec.eot, err)) < 0 ||
        (rc = get_special(m, "tokenizer.ggml.eom_token_id", nv, &spec.eom, err)) < 0 ||
        (rc = get_special(m, "tokenizer.ggml.unknown_token_id", nv, &spec.unk, err)) < 0 ||
        (rc = get_special(m, "tokenizer.ggml.padding_token_id", nv, &spec.pad, err)) < 0 ||
        (rc = get_special(m, "tokenizer.ggml.seperator_token_id", nv, &spec.sep, err)) < 0)
        goto out;
    if ((rc = cai__gguf_get_bool(m->gguf, "tokenizer.ggml.add_bos_token", false, &spec.add_bos,
                                 err)) < 0 ||
        (rc = cai__gguf_get_bool(m->gguf, "tokenizer.ggml.add_eos_token", false, &spec.add_eos,
                                 err)) < 0 ||
        (rc = cai__gguf_get_bool(m->gguf, "tokenizer.ggml.add_space_prefix", false,
                                 &spec.add_space_prefix, err)) < 0)
        goto out;
    rc = cai__tok_new(&m->tok, &spec, err);
    if (rc < 0)
        cai__error_prefix(err, m->path);
out:
    cai__free(pre);
    cai__free(texts);
    cai__free(lens);
    cai__free(sc);
    cai__free(ty);
    cai__free(mt);
    cai__free(ml);
    return rc < 0 ? rc : 0;
}

/* ---- open / close ------------------------------------------------------ */

/* NUL-terminated copies of all keys and tensor names, in one allocation. */
static int copy_names(struct cai_model *m, struct cai_error *err)
{
    const struct cai_gguf *g = m->gguf;
    size_t total = 0, n = (size_t)(g->n_kv + g->n_tensors);
    for (uint64_t i = 0; i < g->n_kv; i++)
        total += (size_t)g->kv[i].key.len + 1;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        total += (size_t)g->tensors[i].name.len + 1;
    m->names_pool = cai__malloc(total);
    m->kv_keys = cai__malloc_array(n ? n : 1, sizeof(char *));
    if (!m->names_pool || !m->kv_keys)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", m->path);
    m->tensor_names = m->kv_keys + g->n_kv;
    char *p = m->names_pool;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        memcpy(p, g->kv[i].key.ptr, (size_t)g->kv[i].key.len);
        p[g->kv[i].key.len] = '\0';
        m->kv_keys[i] = p;
        p += g->kv[i].key.len + 1;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        memcpy(p, g->tensors[i].name.ptr, (size_t)g->tensors[i].name.len);
        p[g->tensors[i].name.len] = '\0';
        m->tensor_names[i] = p;
        p += g->tensors[i].name.len + 1;
    }
    return 0;
}

struct cai_model_params cai_model_params_default(void)
{
    struct cai_model_params p = {.use_mmap = true};
    return p;
}

int cai_model_open(struct cai_model **out, const char *path, const struct cai_model_params *params,
                   struct cai_error *err)
{
    (void)params;
    int rc;
    struct cai_gguf_str s;
    *out = NULL;
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
    struct cai_model *m = cai__calloc(1, sizeof(*m));
    if (!m)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    pthread_mutex_init(&m->pack_lock, NULL);
    pthread_cond_init(&m->pack_cond, NULL);
    m->path = cai__strdup(path);
    if (!m->path) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* .coreaimodel files carry the same directory as GGUF (docs/FORMAT.md). */
    bool cam = false;
    {
        struct cai_map hm;
        if (cai__map_open(&hm, path, NULL) == 0) {
            cam = cai__cam_is_file(hm.data, hm.n_bytes);
            cai__map_close(&hm);
        }
    }
    if ((rc = cam ? cai__cam_open(&m->gguf, path, err) : cai__gguf_open(&m->gguf, path, err)) < 0)
        goto fail;
    if ((rc = copy_names(m, err)) < 0)
        goto fail;
    if ((rc = cai__gguf_get_str(m->gguf, "general.architecture", true, &s, err)) < 0)
        goto fail;
    m->arch = str_dup(s);
    if (!m->arch) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    const struct arch_desc *ad = NULL;
    for (size_t i = 0; i < CAI_ARRAY_LEN(archs); i++)
        if (strcmp(archs[i].name, m->arch) == 0)
            ad = &archs[i];
    if (!ad) {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: architecture \"%.64s\" is not supported "
                       "(llama, mistral, qwen2, gemma3 are)", path, m->arch);
        goto fail;
    }
    m->hp.rope_type = ad->rope_type;
    s.ptr = NULL;
    if ((rc = cai__gguf_get_str(m->gguf, "general.name", false, &s, err)) < 0)
        goto fail;
    m->name = s.ptr ? str_dup(s) : cai__strdup("");
    if (!m->name) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((rc = load_hparams(m, err)) < 0 || (ad->gemma3 && (rc = load_gemma3(m, err)) < 0))
        goto fail;

    /* The embedding's row count defines the vocabulary size. */
    const struct cai_gguf_tensor *te = cai__gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: tensor \"token_embd.weight\" is missing", path);
        goto fail;
    }
    if (te->ne[1] < 1 || te->ne[1] > MAX_VOCAB) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: tensor \"token_embd.weight\" has %lld rows", path,
                       (long long)te->ne[1]);
        goto fail;
    }
    m->hp.n_vocab = (int)te->ne[1];
    if ((rc = bind(m, "token_embd.weight", m->hp.n_embd, m->hp.n_vocab, true, false,
                   &m->tok_embd, err)) < 0 ||
        (rc = bind(m, "output_norm.weight", m->hp.n_embd, 0, true, true, &m->output_norm, err)) <
            0 ||
        (rc = bind(m, "output.weight", m->hp.n_embd, m->hp.n_vocab, false, false, &m->output,
                   err)) < 0 ||
        (rc = bind(m, "rope_freqs.weight", m->hp.n_rot / 2, 0, false, true, &m->rope_freqs,
                   err)) < 0)
        goto fail;
    if (!m->output.data)
        m->output = m->tok_embd; /* tied embeddings */
    /* Written by coreai-optimization when the head's error is dominated by
     * rounding its input to 8 bits (docs/FORMAT.md 4.1). */
    if ((rc = cai__gguf_get_bool(m->gguf, "coreai.head.f32_input", false, &m->output.f32_input,
                                 err)) < 0)
        goto fail;
    m->layers = cai__calloc((size_t)m->hp.n_layer, sizeof(*m->layers));
    if (!m->layers) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int il = 0; il < m->hp.n_layer; il++)
        if ((rc = bind_layer(m, il, err)) < 0)
            goto fail;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const struct cai_gguf_tensor *t = &m->gguf->tensors[i];
        m->n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        m->n_bytes += t->n_bytes;
    }
    if ((rc = load_tokenizer(m, err)) < 0)
        goto fail;
    s.ptr = NULL;
    if ((rc = cai__gguf_get_str(m->gguf, "tokenizer.chat_template", false, &s, err)) < 0)
        goto fail;
    if (s.ptr) {
        m->chat_template = str_dup(s);
        if (!m->chat_template) {
            rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
    }
    *out = m;
    return 0;
fail:
    cai_model_close(m);
    return rc;
}

void cai_model_close(struct cai_model *m)
{
    if (!m)
        return;
    cai__model_unpack(m);
    pthread_mutex_destroy(&m->pack_lock);
    pthread_cond_destroy(&m->pack_cond);
    cai__tok_free(m->tok);
    cai__gguf_close(m->gguf);
    cai__free(m->layers);
    cai__free(m->kv_keys);
    cai__free(m->names_pool);
    cai__free(m->chat_template);
    cai__free(m->tokenizer_model);
    cai__free(m->name);
    cai__free(m->arch);
    cai__free(m->path);
    cai__free(m);
}

void cai_model_get_info(const struct cai_model *m, struct cai_model_info *o)
{
    memset(o, 0, sizeof(*o));
    const struct cai__hparams *hp = &m->hp;
    o->arch = m->arch;
    o->name = m->name;
    o->n_vocab = hp->n_vocab;
    o->n_embd = hp->n_embd;
    o->n_layer = hp->n_layer;
    o->n_head = hp->n_head;
    o->n_head_kv = hp->n_head_kv;
    o->head_dim = hp->head_dim;
    o->n_ff = hp->n_ff;
    o->n_ctx_train = hp->n_ctx_train;
    o->rope_base = hp->rope_base;
    o->rope_scale = hp->rope_scale;
    o->rms_eps = hp->rms_eps;
    o->n_params = m->n_params;
    o->n_bytes = m->n_bytes;
    o->tokenizer = m->tokenizer_model;
    o->bos = cai__tok_bos(m->tok);
    o->eos = cai__tok_eos(m->tok);
    o->has_chat_template = m->chat_template != NULL;
}

const char *cai_model_chat_template(const struct cai_model *m)
{
    return m->chat_template;
}

/* ---- inspection -------------------------------------------------------- */

static const char *vtype_name(uint32_t t)
{
    static const char *names[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t < CAI_ARRAY_LEN(names) ? names[t] : "?";
}

static void render_scalar(const struct cai_gguf_kv *kv, char *buf, size_t cap)
{
    switch (kv->type) {
    case CAI_GGUF_F32:
    case CAI_GGUF_F64: snprintf(buf, cap, "%g", kv->f64); break;
    case CAI_GGUF_BOOL: snprintf(buf, cap, "%s", kv->u64 ? "true" : "false"); break;
    case CAI_GGUF_I8:
    case CAI_GGUF_I16:
    case CAI_GGUF_I32:
    case CAI_GGUF_I64: snprintf(buf, cap, "%lld", (long long)kv->i64); break;
    case CAI_GGUF_STRING: {
        /* One line: escape newlines, cut long strings. */
        size_t o = 0;
        if (cap < 8)
            break;
        for (uint64_t i = 0; i < kv->str.len && o + 5 < cap; i++) {
            char c = kv->str.ptr[i];
            if (c == '\n') {
                buf[o++] = '\\';
                buf[o++] = 'n';
            } else {
                buf[o++] = (unsigned char)c < 0x20 ? '?' : c;
            }
        }
        if (o + 5 >= cap)
            memcpy(buf + o, "...", 3), o += 3;
        buf[o] = '\0';
        break;
    }
    default: snprintf(buf, cap, "%llu", (unsigned long long)kv->u64); break;
    }
}

bool cai_model_meta(const struct cai_model *m, int i, const char **key, char *value,
                    size_t value_cap)
{
    if (i < 0 || (uint64_t)i >= m->gguf->n_kv)
        return false;
    const struct cai_gguf_kv *kv = &m->gguf->kv[i];
    *key = m->kv_keys[i];
    if (value_cap == 0)
        return true;
    if (kv->type == CAI_GGUF_ARRAY) {
        size_t o = (size_t)snprintf(value, value_cap, "[%s x %llu]", vtype_name(kv->arr_type),
                                    (unsigned long long)kv->arr_n);
        if (o < value_cap && kv->arr_type == CAI_GGUF_STRING && kv->arr_n > 0) {
            struct cai_gguf_str s0 = cai__gguf_arr_str(kv, 0);
            snprintf(value + o, value_cap - o, " \"%.*s\", ...", (int)CAI_MIN(s0.len, 24),
                     s0.ptr);
        }
    } else {
        render_scalar(kv, value, value_cap);
    }
    return true;
}

bool cai_model_tensor(const struct cai_model *m, int i, const char **name, const char **type_name,
                      int64_t ne[4], int *n_dims, uint64_t *n_bytes)
{
    if (i < 0 || (uint64_t)i >= m->gguf->n_tensors)
        return false;
    const struct cai_gguf_tensor *t = &m->gguf->tensors[i];
    *name = m->tensor_names[i];
    const struct cai_type_info *ti = cai__type_info(t->type);
    *type_name = ti && ti->name ? ti->name : "?";
    for (int d = 0; d < 4; d++)
        ne[d] = t->ne[d];
    *n_dims = (int)t->n_dims;
    *n_bytes = t->n_bytes;
    return true;
}
