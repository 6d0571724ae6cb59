/* hf_tokenizer.c: Hugging Face tokenizer.json (+ tokenizer_config.json) to
 * GGUF tokenizer keys (REFERENCE/formats.md §5.4).
 *
 * Two kinds of BPE tokenizer are understood:
 *  - byte-level BPE (a ByteLevel pre-tokenizer or decoder; GPT-2, Llama 3,
 *    Qwen2, SmolLM): tokenizer.ggml.model "gpt2", the pre-tokenizer named by
 *    its split expression (tokenizer.ggml.pre), tokens, token types, merges;
 *  - SentencePiece-style BPE (byte_fallback, "▁" for spaces: Llama 2,
 *    Mistral, TinyLlama): tokenizer.ggml.model "llama", tokens, token types
 *    and scores. The engine merges such vocabularies by score, so each token
 *    made by a merge gets the score -rank of the first merge that makes it,
 *    which orders merges exactly as the merge list does.
 * Special tokens and add_bos/add_eos come from tokenizer_config.json (or the
 * post-processor), the chat template from tokenizer_config.json or
 * chat_template.jinja. Anything else (WordPiece, Unigram, unknown
 * pre-tokenizers or normalizers) is refused with a message naming it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert_int.h"

#define TOKT_NORMAL       1
#define TOKT_UNKNOWN      2
#define TOKT_CONTROL      3
#define TOKT_USER_DEFINED 4
#define TOKT_UNUSED       5
#define TOKT_BYTE         6

static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct vocab {
    uint32_t     n;
    const char **text;  /* [n] */
    uint32_t    *len;   /* [n] */
    int32_t     *type;  /* [n] */
    float       *score; /* [n] */
    uint32_t    *by_text; /* ids sorted by text, for look-ups */
    char       **pads;  /* generated "[PAD<id>]" texts to free */
    uint32_t     n_pads;
};

static int text_cmp(const char *a, uint32_t la, const char *b, uint32_t lb)
{
    int c = memcmp(a, b, CAI_MIN(la, lb));
    return c ? c : (la > lb) - (la < lb);
}

static int cmp_id(const void *x, const void *y, void *ctx)
{
    const struct vocab *v = ctx;
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return text_cmp(v->text[a], v->len[a], v->text[b], v->len[b]);
}

static int64_t find_tok(const struct vocab *v, const char *s, size_t len)
{
    uint32_t lo = 0, hi = v->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, id = v->by_text[mid];
        int c = text_cmp(v->text[id], v->len[id], s, (uint32_t)len);
        if (c == 0)
            return id;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void vocab_free(struct vocab *v)
{
    for (uint32_t i = 0; i < v->n_pads; i++)
        cai__free(v->pads[i]);
    cai__free(v->pads);
    cai__free(v->text);
    cai__free(v->len);
    cai__free(v->type);
    cai__free(v->score);
    cai__free(v->by_text);
}

/* Does a pre-tokenizer / normalizer / decoder tree contain a node of `type`?
 * Walks only the documented shapes (a node or a Sequence of nodes). */
static const struct cai_json_node *find_type(const struct cai_json *j,
                                             const struct cai_json_node *n, const char *type)
{
    if (!cai__json_is(n, CAI_JSON_OBJECT))
        return NULL;
    if (cai__json_str_eq(cai__json_get(j, n, "type"), type))
        return n;
    const char *lists[] = {"pretokenizers", "normalizers", "decoders"};
    for (size_t i = 0; i < CAI_ARRAY_LEN(lists); i++) {
        const struct cai_json_node *arr = cai__json_get(j, n, lists[i]);
        if (!cai__json_is(arr, CAI_JSON_ARRAY))
            continue;
        for (const struct cai_json_node *x = cai__json_first(j, arr); x;
             x = cai__json_next(j, arr, x)) {
            if (!cai__json_is(x, CAI_JSON_OBJECT))
                continue;
            if (cai__json_str_eq(cai__json_get(j, x, "type"), type))
                return x;
        }
    }
    return NULL;
}

/* The name of a byte-level pre-tokenizer, from its Split expression. */
static int byte_level_pre(const struct cai_json *j, const struct cai_json_node *pre,
                          const char **name, struct cai_error *err, const char *path)
{
    const struct cai_json_node *split = find_type(j, pre, "Split");
    const struct cai_json_node *bl = find_type(j, pre, "ByteLevel");
    const struct cai_json_node *digits = find_type(j, pre, "Digits");
    if (split) {
        const struct cai_json_node *re = cai__json_get(j, cai__json_get(j, split, "pattern"),
                                                       "Regex");
        if (cai__json_str_eq(re, QWEN2_RE)) {
            *name = "qwen2";
            return 0;
        }
        if (cai__json_str_eq(re, LLAMA3_RE)) {
            *name = "llama-bpe";
            return 0;
        }
        if (cai__json_str_eq(re, GPT2_RE)) {
            *name = "gpt-2";
            return 0;
        }
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: the pre-tokenizer's split expression \"%.80s\""
                         " is not one the engine implements (GPT-2, Llama 3, Qwen2)", path,
                         re ? re->s : "(not a regex)");
    }
    bool use_regex = true;
    if (bl)
        cai__json_bool(cai__json_get(j, bl, "use_regex"), &use_regex);
    if (!use_regex)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: a byte-level pre-tokenizer without a split "
                         "expression is not supported", path);
    if (digits) {
        bool each = false;
        cai__json_bool(cai__json_get(j, digits, "individual_digits"), &each);
        if (!each)
            return cai__fail(err, CAI_EUNSUPPORTED, "%s: Digits pre-tokenizer without "
                             "individual_digits is not supported", path);
        *name = "smollm";
        return 0;
    }
    *name = "gpt-2";
    return 0;
}

/* A token named in tokenizer_config.json: a string or {"content": ...}. */
static const struct cai_json_node *config_token(const struct cai_json *cfg, const char *key)
{
    if (!cfg)
        return NULL;
    const struct cai_json_node *v = cai__json_get(cfg, cai__json_root(cfg), key);
    if (cai__json_is(v, CAI_JSON_OBJECT))
        v = cai__json_get(cfg, v, "content");
    return cai__json_is(v, CAI_JSON_STRING) ? v : NULL;
}

static int add_special(struct cai_cam_writer *w, const struct vocab *v, const char *gguf_key,
                       const struct cai_json_node *tok, const char *path, struct cai_error *err)
{
    if (!tok)
        return 0;
    int64_t id = find_tok(v, tok->s, tok->len);
    if (id < 0)
        return cai__fail(err, CAI_EFORMAT, "%s: special token \"%.64s\" (%s) is not in the "
                         "vocabulary", path, tok->s, gguf_key);
    return cai__cam_writer_add_u32(w, gguf_key, (uint32_t)id, err);
}

/* Reads vocab + added tokens into v (padded to n_vocab). */
static int read_vocab(const struct cai_json *j, const struct cai_json_node *model,
                      uint32_t n_vocab, struct vocab *v, const char *path, struct cai_error *err)
{
    const struct cai_json_node *root = cai__json_root(j);
    const struct cai_json_node *voc = cai__json_get(j, model, "vocab");
    const struct cai_json_node *added = cai__json_get(j, root, "added_tokens");
    if (!cai__json_is(voc, CAI_JSON_OBJECT))
        return cai__fail(err, CAI_EFORMAT, "%s: model.vocab is not an object", path);
    v->n = n_vocab;
    v->text = cai__calloc(n_vocab, sizeof(*v->text));
    v->len = cai__calloc(n_vocab, sizeof(*v->len));
    v->type = cai__calloc(n_vocab, sizeof(*v->type));
    v->score = cai__calloc(n_vocab, sizeof(*v->score));
    v->by_text = cai__calloc(n_vocab, sizeof(*v->by_text));
    v->pads = cai__calloc(n_vocab, sizeof(*v->pads));
    if (!v->text || !v->len || !v->type || !v->score || !v->by_text || !v->pads)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    for (int pass = 0; pass < 2; pass++) {
        const struct cai_json_node *list = pass == 0 ? voc : added;
        if (pass == 1 && !cai__json_is(added, CAI_JSON_ARRAY))
            break;
        for (const struct cai_json_node *x = cai__json_first(j, list); x;
             x = cai__json_next(j, list, x)) {
            const struct cai_json_node *txt = x, *idn = cai__json_value(x);
            bool special = false;
            if (pass == 1) {
                txt = cai__json_get(j, x, "content");
                idn = cai__json_get(j, x, "id");
                cai__json_bool(cai__json_get(j, x, "special"), &special);
            }
            uint64_t id;
            if (!cai__json_is(txt, CAI_JSON_STRING) || !cai__json_u64(idn, &id))
                return cai__fail(err, CAI_EFORMAT, "%s: a %s entry lacks a string or an id", path,
                                 pass ? "added_tokens" : "model.vocab");
            if (id >= n_vocab)
                return cai__fail(err, CAI_EFORMAT, "%s: token \"%.64s\" has id %" PRIu64 " but "
                                 "the embedding has only %u rows", path, txt->s, id, n_vocab);
            if (txt->len > UINT32_MAX)
                return cai__fail(err, CAI_EFORMAT, "%s: token %" PRIu64 " is too long", path, id);
            if (v->text[id] && (v->len[id] != txt->len || memcmp(v->text[id], txt->s, txt->len)))
                return cai__fail(err, CAI_EFORMAT, "%s: id %" PRIu64 " names two tokens (\"%.32s\""
                                 " and \"%.32s\")", path, id, v->text[id], txt->s);
            v->text[id] = txt->s;
            v->len[id] = (uint32_t)txt->len;
            if (pass == 1)
                v->type[id] = special ? TOKT_CONTROL : TOKT_USER_DEFINED;
            else if (!v->type[id])
                v->type[id] = TOKT_NORMAL;
        }
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (v->text[i])
            continue;
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "[PAD%u]", i);
        v->pads[v->n_pads] = cai__strdup(buf);
        if (!v->pads[v->n_pads])
            return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
        v->text[i] = v->pads[v->n_pads++];
        v->len[i] = (uint32_t)n;
        v->type[i] = TOKT_UNUSED;
    }
    for (uint32_t i = 0; i < n_vocab; i++)
        v->by_text[i] = i;
    qsort_r(v->by_text, n_vocab, sizeof(*v->by_text), cmp_id, v);
    for (uint32_t i = 1; i < n_vocab; i++) {
        uint32_t a = v->by_text[i - 1], b = v->by_text[i];
        if (text_cmp(v->text[a], v->len[a], v->text[b], v->len[b]) == 0)
            return cai__fail(err, CAI_EFORMAT, "%s: token \"%.64s\" has two ids (%u and %u)", path,
                             v->text[a], a, b);
    }
    return 0;
}

/* One merge as "left right" into buf (caller frees); NULL on a bad entry. */
static char *merge_text(const struct cai_json *j, const struct cai_json_node *m, size_t *len,
                        const char **right, size_t *left_len)
{
    if (cai__json_is(m, CAI_JSON_STRING)) {
        const char *sp = memchr(m->s, ' ', m->len);
        if (!sp || sp == m->s || (size_t)(sp - m->s) + 1 >= m->len)
            return NULL;
        char *s = cai__strndup(m->s, m->len);
        if (s) {
            *len = m->len;
            *left_len = (size_t)(sp - m->s);
            *right = s + *left_len + 1;
        }
        return s;
    }
    if (!cai__json_is(m, CAI_JSON_ARRAY) || m->n != 2)
        return NULL;
    const struct cai_json_node *a = cai__json_first(j, m), *b = cai__json_next(j, m, a);
    if (!cai__json_is(a, CAI_JSON_STRING) || !cai__json_is(b, CAI_JSON_STRING) || !a->len ||
        !b->len)
        return NULL;
    char *s = cai__malloc(a->len + b->len + 2);
    if (s) {
        memcpy(s, a->s, a->len);
        s[a->len] = ' ';
        memcpy(s + a->len + 1, b->s, b->len);
        s[a->len + 1 + b->len] = '\0';
        *len = a->len + 1 + b->len;
        *left_len = a->len;
        *right = s + a->len + 1;
    }
    return s;
}

int cai__hf_tokenizer(struct cai_cam_writer *w, const char *dir, uint32_t n_vocab,
                      struct cai_error *err)
{
    struct cai_json *j = NULL, *cfg = NULL;
    struct vocab v;
    char path[4096];
    char **merges = NULL;
    uint32_t *merge_lens = NULL;
    uint64_t n_merges = 0;
    memset(&v, 0, sizeof(v));
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    int rc = cai__json_load(&j, dir, "tokenizer.json", false, err);
    if (rc == 1)
        return cai__fail(err, CAI_EIO, "%s: not found (tokenizer.model alone is not supported: "
                         "the converter needs the Hugging Face tokenizer.json)", path);
    if (rc)
        return rc;
    if ((rc = cai__json_load(&cfg, dir, "tokenizer_config.json", false, err)) < 0)
        goto out;
    const struct cai_json_node *root = cai__json_root(j);
    const struct cai_json_node *model = cai__json_get(j, root, "model");
    const struct cai_json_node *mtype = cai__json_get(j, model, "type");
    if (!cai__json_is(model, CAI_JSON_OBJECT) || (mtype && !cai__json_str_eq(mtype, "BPE"))) {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: model type \"%.32s\" is not supported (only "
                       "BPE is)", path, mtype && mtype->type == CAI_JSON_STRING ? mtype->s : "?");
        goto out;
    }
    if ((rc = read_vocab(j, model, n_vocab, &v, path, err)) < 0)
        goto out;

    const struct cai_json_node *pre = cai__json_get(j, root, "pre_tokenizer");
    const struct cai_json_node *norm = cai__json_get(j, root, "normalizer");
    const struct cai_json_node *dec = cai__json_get(j, root, "decoder");
    bool byte_fallback = false;
    cai__json_bool(cai__json_get(j, model, "byte_fallback"), &byte_fallback);
    bool byte_level = find_type(j, pre, "ByteLevel") || find_type(j, dec, "ByteLevel");
    const struct cai_json_node *meta = find_type(j, pre, "Metaspace");
    const struct cai_json_node *prepend = find_type(j, norm, "Prepend");
    bool spm = !byte_level && (byte_fallback || meta || prepend);
    if (!byte_level && !spm) {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: neither a byte-level nor a SentencePiece-style "
                       "BPE tokenizer", path);
        goto out;
    }
    if (byte_level && norm && norm->type != CAI_JSON_NULL && !find_type(j, norm, "NFC")) {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: normalizer \"%.32s\" is not supported with a "
                       "byte-level tokenizer", path,
                       cai__json_is(cai__json_get(j, norm, "type"), CAI_JSON_STRING)
                           ? cai__json_get(j, norm, "type")->s : "?");
        goto out;
    }

    /* Merges: "a b" strings or ["a", "b"] pairs; rank = index. */
    const struct cai_json_node *ml = cai__json_get(j, model, "merges");
    if (ml && !cai__json_is(ml, CAI_JSON_ARRAY)) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: model.merges is not an array", path);
        goto out;
    }
    if (ml && ml->n) {
        merges = cai__calloc(ml->n, sizeof(*merges));
        merge_lens = cai__calloc(ml->n, sizeof(*merge_lens));
        if (!merges || !merge_lens) {
            rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        bool *scored = spm ? cai__calloc(n_vocab, sizeof(bool)) : NULL;
        if (spm && !scored) {
            rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        for (const struct cai_json_node *m = cai__json_first(j, ml); m;
             m = cai__json_next(j, ml, m)) {
            size_t len, left_len;
            const char *right;
            char *s = merge_text(j, m, &len, &right, &left_len);
            if (!s || len > UINT32_MAX) {
                cai__free(s);
                cai__free(scored);
                rc = cai__fail(err, CAI_EFORMAT, "%s: merge %" PRIu64 " is not \"a b\" or "
                               "[\"a\", \"b\"]", path, n_merges);
                goto out;
            }
            merges[n_merges] = s;
            merge_lens[n_merges] = (uint32_t)len;
            if (spm) {
                /* The token this merge makes: left and right joined. */
                char *joined = cai__malloc(len);
                if (!joined) {
                    cai__free(scored);
                    rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
                    goto out;
                }
                memcpy(joined, s, left_len);
                memcpy(joined + left_len, right, len - left_len - 1);
                int64_t id = find_tok(&v, joined, len - 1);
                cai__free(joined);
                if (id >= 0 && !scored[id]) {
                    scored[id] = true;
                    v.score[id] = -(float)n_merges;
                }
            }
            n_merges++;
        }
        if (spm) {
            /* Tokens no merge makes (added, special, bytes) rank last. */
            for (uint32_t i = 0; i < n_vocab; i++)
                if (!scored[i] && v.len[i] > 1 && v.type[i] == TOKT_NORMAL)
                    v.score[i] = -1e9f;
        }
        cai__free(scored);
    }

    const struct cai_json_node *unk = cai__json_get(j, model, "unk_token");
    if (cai__json_is(unk, CAI_JSON_STRING)) {
        int64_t id = find_tok(&v, unk->s, unk->len);
        if (id >= 0)
            v.type[id] = TOKT_UNKNOWN;
    }
    if (spm && byte_fallback) {
        for (uint32_t i = 0; i < n_vocab; i++) {
            const char *t = v.text[i];
            if (v.len[i] == 6 && t[0] == '<' && t[1] == '0' && t[2] == 'x' && t[5] == '>')
                v.type[i] = TOKT_BYTE;
        }
    }

    rc = cai__cam_writer_add_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", err);
    if (!rc && byte_level) {
        const char *pre_name;
        rc = byte_level_pre(j, pre, &pre_name, err, path);
        if (!rc)
            rc = cai__cam_writer_add_str(w, "tokenizer.ggml.pre", pre_name, err);
    }
    if (!rc)
        rc = cai__cam_writer_add_arr_str(w, "tokenizer.ggml.tokens", v.text, v.len, n_vocab, err);
    if (!rc && spm)
        rc = cai__cam_writer_add_arr(w, "tokenizer.ggml.scores", CAI_GGUF_F32, v.score, n_vocab,
                                     err);
    if (!rc)
        rc = cai__cam_writer_add_arr(w, "tokenizer.ggml.token_type", CAI_GGUF_I32, v.type, n_vocab,
                                     err);
    if (!rc && n_merges)
        rc = cai__cam_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges,
                                         merge_lens, n_merges, err);
    if (rc)
        goto out;

    /* Special tokens and flags. */
    char cfg_path[4096];
    snprintf(cfg_path, sizeof(cfg_path), "%s/tokenizer_config.json", dir);
    if ((rc = add_special(w, &v, "tokenizer.ggml.bos_token_id", config_token(cfg, "bos_token"),
                          cfg_path, err)) < 0 ||
        (rc = add_special(w, &v, "tokenizer.ggml.eos_token_id", config_token(cfg, "eos_token"),
                          cfg_path, err)) < 0 ||
        (rc = add_special(w, &v, "tokenizer.ggml.padding_token_id", config_token(cfg, "pad_token"),
                          cfg_path, err)) < 0)
        goto out;
    const struct cai_json_node *unk_cfg = config_token(cfg, "unk_token");
    if (!unk_cfg && cai__json_is(unk, CAI_JSON_STRING))
        unk_cfg = unk;
    if ((rc = add_special(w, &v, "tokenizer.ggml.unknown_token_id", unk_cfg, path, err)) < 0)
        goto out;
    bool add_bos = false, add_eos = false, have_bos = false;
    if (cfg) {
        have_bos = cai__json_bool(cai__json_get(cfg, cai__json_root(cfg), "add_bos_token"),
                                  &add_bos);
        cai__json_bool(cai__json_get(cfg, cai__json_root(cfg), "add_eos_token"), &add_eos);
    }
    if (!have_bos) {
        /* A TemplateProcessing post-processor that starts with a special token. */
        const struct cai_json_node *tp = find_type(j, cai__json_get(j, root, "post_processor"),
                                                   "TemplateProcessing");
        const struct cai_json_node *single = cai__json_get(j, tp, "single");
        const struct cai_json_node *first = cai__json_first(j, single);
        add_bos = first && cai__json_get(j, first, "SpecialToken") != NULL;
    }
    if ((rc = cai__cam_writer_add_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err)) < 0 ||
        (rc = cai__cam_writer_add_bool(w, "tokenizer.ggml.add_eos_token", add_eos, err)) < 0)
        goto out;
    if (spm) {
        bool prefix = prepend != NULL;
        if (meta) {
            const struct cai_json_node *ps = cai__json_get(j, meta, "prepend_scheme");
            bool aps = false;
            prefix = cai__json_str_eq(ps, "first") || cai__json_str_eq(ps, "always") ||
                     (cai__json_bool(cai__json_get(j, meta, "add_prefix_space"), &aps) && aps);
        }
        if ((rc = cai__cam_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", prefix, err)) <
            0)
            goto out;
    }

    /* Chat template(s). */
    const struct cai_json_node *ct = cfg ? cai__json_get(cfg, cai__json_root(cfg), "chat_template")
                                         : NULL;
    if (cai__json_is(ct, CAI_JSON_STRING)) {
        rc = cai__cam_writer_add_strn(w, "tokenizer.chat_template", ct->s, ct->len, err);
    } else if (cai__json_is(ct, CAI_JSON_ARRAY)) {
        for (const struct cai_json_node *x = cai__json_first(cfg, ct); x && !rc;
             x = cai__json_next(cfg, ct, x)) {
            const struct cai_json_node *nm = cai__json_get(cfg, x, "name");
            const struct cai_json_node *tt = cai__json_get(cfg, x, "template");
            if (!cai__json_is(nm, CAI_JSON_STRING) || !cai__json_is(tt, CAI_JSON_STRING) ||
                nm->len > 64 || memchr(nm->s, 0, nm->len))
                continue;
            char key[128];
            if (cai__json_str_eq(nm, "default"))
                snprintf(key, sizeof(key), "tokenizer.chat_template");
            else
                snprintf(key, sizeof(key), "tokenizer.chat_template.%s", nm->s);
            rc = cai__cam_writer_add_strn(w, key, tt->s, tt->len, err);
        }
    } else {
        char tpath[4096], *text;
        size_t tn;
        struct stat st;
        snprintf(tpath, sizeof(tpath), "%s/chat_template.jinja", dir);
        if (stat(tpath, &st) == 0 && (rc = cai__read_file(tpath, &text, &tn, err)) == 0) {
            rc = cai__cam_writer_add_strn(w, "tokenizer.chat_template", text, tn, err);
            cai__free(text);
        }
    }
out:
    for (uint64_t i = 0; i < n_merges; i++)
        cai__free(merges[i]);
    cai__free(merges);
    cai__free(merge_lens);
    vocab_free(&v);
    cai__json_free(j);
    cai__json_free(cfg);
    return rc < 0 ? rc : 0;
}
