/* tok.c: building a tokenizer from a vocabulary, the special-token partition
 * that every encode starts with, pieces, and the small accessors.
 *
 * cai__tok_new() copies the vocabulary into flat arrays, hashes it, resolves
 * BPE merges to token ids, marks special and end-of-generation tokens the way
 * llama.cpp's llama_vocab::load does, and renders every token's piece once.
 * After that the tokenizer is read-only: any number of threads may encode
 * with it at once (each call keeps its scratch memory to itself). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"

/* A token's piece may not exceed this (hostile vocabularies could make the
 * [UNK_BYTE_...] rendering quadratic in the token's length). */
#define MAX_PIECE_BYTES (1u << 20)

/* ---- hashing ------------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t       h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key)
{
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

/* Smallest power of two >= 2n (at least 16), or 0 on overflow. */
static uint32_t table_size(uint64_t n)
{
    uint64_t cap = 16;
    while (cap < 2 * n) {
        cap <<= 1;
        if (cap > (1ull << 31))
            return 0;
    }
    return (uint32_t)cap;
}

int32_t cai__tok_lookup(const struct cai_tok *t, const void *s, size_t n)
{
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->vhash_mask;
    for (;;) {
        int32_t id = t->vhash[i];
        if (id < 0)
            return -1;
        uint32_t off = t->text_off[id], len = t->text_off[id + 1] - off;
        if (len == n && memcmp(t->text + off, s, n) == 0)
            return id;
        i = (i + 1) & t->vhash_mask;
    }
}

int32_t cai__tok_merge(const struct cai_tok *t, int32_t left, int32_t right, int32_t *result)
{
    if (left < 0 || right < 0 || !t->mkey)
        return -1;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t i = (uint32_t)hash_pair(key) & t->mhash_mask;
    for (;;) {
        if (t->mkey[i] == UINT64_MAX)
            return -1;
        if (t->mkey[i] == key) {
            *result = t->mresult[i];
            return t->mrank[i];
        }
        i = (i + 1) & t->mhash_mask;
    }
}

/* ---- building ------------------------------------------------------------ */

static const char *tok_text(const struct cai_tok *t, int32_t id, uint32_t *n)
{
    *n = t->text_off[id + 1] - t->text_off[id];
    return t->text + t->text_off[id];
}

static int32_t find_cstr(const struct cai_tok *t, const char *s)
{
    return cai__tok_lookup(t, s, strlen(s));
}

static int copy_vocab(struct cai_tok *t, const struct cai_tok_spec *spec, struct cai_error *err)
{
    uint32_t n = spec->n_vocab;
    uint64_t total = 0;
    char     tmp[32];
    for (uint32_t i = 0; i < n; i++) {
        if (!spec->texts[i] && spec->text_lens[i])
            return cai__fail(err, CAI_EFORMAT, "tokenizer: token %u has no text", i);
        /* llama.cpp renames empty tokens "[EMPTY_<id>]". */
        total += spec->text_lens[i] ? spec->text_lens[i]
                                    : (uint64_t)snprintf(tmp, sizeof(tmp), "[EMPTY_%u]", i);
    }
    if (total >= UINT32_MAX)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: token texts too large (%llu bytes)",
                         (unsigned long long)total);
    t->text = cai__malloc((size_t)total + 1);
    t->text_off = cai__malloc_array((size_t)n + 1, sizeof(*t->text_off));
    t->scores = cai__malloc_array(n, sizeof(*t->scores));
    t->attr = cai__calloc(n, 1);
    if (!t->text || !t->text_off || !t->scores || !t->attr)
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        t->text_off[i] = off;
        uint32_t len = spec->text_lens[i];
        if (len) {
            memcpy(t->text + off, spec->texts[i], len);
        } else {
            len = (uint32_t)snprintf(tmp, sizeof(tmp), "[EMPTY_%u]", i);
            memcpy(t->text + off, tmp, len);
        }
        off += len;
        t->max_text = CAI_MAX(t->max_text, len);
        t->scores[i] = spec->scores ? spec->scores[i] : 0.0f;
        switch (spec->types ? spec->types[i] : CAI_TOKT_NORMAL) {
        case CAI_TOKT_NORMAL: t->attr[i] = CAI__ATTR_NORMAL; break;
        case CAI_TOKT_UNKNOWN: t->attr[i] = CAI__ATTR_UNKNOWN; break;
        case CAI_TOKT_CONTROL: t->attr[i] = CAI__ATTR_CONTROL; break;
        case CAI_TOKT_USER_DEFINED: t->attr[i] = CAI__ATTR_USER_DEFINED; break;
        case CAI_TOKT_UNUSED: t->attr[i] = CAI__ATTR_UNUSED; break;
        case CAI_TOKT_BYTE: t->attr[i] = CAI__ATTR_BYTE; break;
        default: t->attr[i] = 0; break; /* undefined: renders as nothing */
        }
    }
    t->text_off[n] = off;
    t->text[off] = '\0';
    return 0;
}

static int build_vocab_hash(struct cai_tok *t, struct cai_error *err)
{
    uint32_t cap = table_size(t->n_vocab);
    if (!cap)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: vocabulary too large");
    t->vhash = cai__malloc_array(cap, sizeof(*t->vhash));
    if (!t->vhash)
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    memset(t->vhash, 0xFF, (size_t)cap * sizeof(*t->vhash));
    t->vhash_mask = cap - 1;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        uint32_t    n;
        const char *s = tok_text(t, (int32_t)id, &n);
        int32_t     dup = cai__tok_lookup(t, s, n);
        if (dup >= 0)
            return cai__fail(err, CAI_EFORMAT, "tokenizer: duplicate token '%.*s' (ids %d and %u)",
                             (int)CAI_MIN(n, 64u), s, dup, id);
        uint32_t i = (uint32_t)hash_bytes(s, n) & t->vhash_mask;
        while (t->vhash[i] >= 0)
            i = (i + 1) & t->vhash_mask;
        t->vhash[i] = (int32_t)id;
    }
    return 0;
}

static int build_merges(struct cai_tok *t, const struct cai_tok_spec *spec, struct cai_error *err)
{
    uint32_t n = spec->n_merges;
    if (n == 0)
        return 0;
    if (!spec->merges || !spec->merge_lens)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: %u merges but no merge texts", n);
    uint32_t cap = table_size(n);
    if (!cap)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: too many merges (%u)", n);
    char *cat = cai__malloc((size_t)2 * t->max_text + 1);
    t->mkey = cai__malloc_array(cap, sizeof(*t->mkey));
    t->mrank = cai__malloc_array(cap, sizeof(*t->mrank));
    t->mresult = cai__malloc_array(cap, sizeof(*t->mresult));
    if (!cat || !t->mkey || !t->mrank || !t->mresult) {
        cai__free(cat);
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    }
    memset(t->mkey, 0xFF, (size_t)cap * sizeof(*t->mkey));
    t->mhash_mask = cap - 1;
    int rc = 0;
    for (uint32_t r = 0; r < n && !rc; r++) {
        const char *m = spec->merges[r];
        uint32_t    len = spec->merge_lens[r];
        /* "left right", split at the first space after the first byte. */
        const char *sp = (m && len > 1) ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!sp) {
            rc = cai__fail(err, CAI_EFORMAT, "tokenizer: merge %u ('%.*s') has no space", r,
                           (int)CAI_MIN(len, 64u), m ? m : "");
            break;
        }
        size_t  nl = (size_t)(sp - m), nr = len - nl - 1;
        int32_t l = cai__tok_lookup(t, m, nl), rt = cai__tok_lookup(t, sp + 1, nr);
        int32_t res = -1;
        if (l >= 0 && rt >= 0 && nl + nr <= 2 * (size_t)t->max_text) {
            memcpy(cat, m, nl);
            memcpy(cat + nl, sp + 1, nr);
            res = cai__tok_lookup(t, cat, nl + nr);
        }
        if (l < 0 || rt < 0 || res < 0) {
            rc = cai__fail(err, CAI_EFORMAT, "tokenizer: merge %u ('%.*s') names an unknown token",
                           r, (int)CAI_MIN(len, 64u), m);
            break;
        }
        uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)rt;
        uint32_t i = (uint32_t)hash_pair(key) & t->mhash_mask;
        while (t->mkey[i] != UINT64_MAX && t->mkey[i] != key)
            i = (i + 1) & t->mhash_mask;
        if (t->mkey[i] == key)
            continue; /* a repeated merge keeps its first rank (std::map::emplace) */
        t->mkey[i] = key;
        t->mrank[i] = (int32_t)r;
        t->mresult[i] = res;
    }
    cai__free(cat);
    return rc;
}

/* The end-of-generation and control marking of llama_vocab::load, by token
 * text (GGUF files carry no attribute for it). */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL,
};
static const char *const fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>",
    "<|code_prefix|>", "<|prefix|>", NULL,
};
static const char *const fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>",
    "<|code_suffix|>", "<|suffix|>", NULL,
};
static const char *const fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>",
    "<|code_middle|>", "<|middle|>", NULL,
};
static const char *const fim_pad_texts[] = {
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL,
};
static const char *const fim_rep_texts[] = {
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL,
};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};

/* The lowest id among the candidate texts, made a control token; -1 if none.
 * (llama.cpp takes the first its hash map yields; ids make it stable.) */
static int32_t detect(struct cai_tok *t, const char *const *texts)
{
    int32_t best = -1;
    for (int i = 0; texts[i]; i++) {
        int32_t id = find_cstr(t, texts[i]);
        if (id >= 0 && (best < 0 || id < best))
            best = id;
    }
    if (best >= 0)
        t->attr[best] |= CAI__ATTR_CONTROL;
    return best;
}

static void mark_eog(struct cai_tok *t)
{
    if (t->eot < 0)
        t->eot = detect(t, eot_texts);
    if (t->eom < 0) {
        static const char *const eom_texts[] = {"<|eom_id|>", NULL};
        t->eom = detect(t, eom_texts);
    }
    detect(t, fim_pre_texts);
    detect(t, fim_suf_texts);
    detect(t, fim_mid_texts);
    int32_t fim_eog[3] = {detect(t, fim_pad_texts), detect(t, fim_rep_texts),
                          detect(t, fim_sep_texts)};
    for (int i = 0; i < 3; i++)
        if (fim_eog[i] >= 0)
            t->attr[fim_eog[i]] |= CAI__ATTR_EOG;
    for (size_t i = 0; i < CAI_ARRAY_LEN(eog_texts); i++) {
        int32_t id = find_cstr(t, eog_texts[i]);
        if (id >= 0)
            t->attr[id] |= CAI__ATTR_EOG | CAI__ATTR_CONTROL;
    }
    /* gpt-oss: these always render. */
    static const char *const harmony_ud[] = {"<|channel|>", "<|message|>", "<|start|>",
                                             "<|constrain|>"};
    for (size_t i = 0; i < CAI_ARRAY_LEN(harmony_ud); i++) {
        int32_t id = find_cstr(t, harmony_ud[i]);
        if (id >= 0)
            t->attr[id] = CAI__ATTR_USER_DEFINED | (t->attr[id] & CAI__ATTR_EOG);
    }
    int32_t special[3] = {t->eos, t->eot, t->eom};
    for (int i = 0; i < 3; i++)
        if (special[i] >= 0)
            t->attr[special[i]] |= CAI__ATTR_EOG;
    /* o200k_harmony / solar-open: "<|end|>" is not the end when "<|return|>"
     * and "<|call|>" (or "<|calls|>" and "<|flush|>") are there. */
    int32_t end = find_cstr(t, "<|end|>"), ret = find_cstr(t, "<|return|>");
    int32_t call = find_cstr(t, "<|call|>"), calls = find_cstr(t, "<|calls|>");
    int32_t flush = find_cstr(t, "<|flush|>");
    bool    has_call = (call >= 0 && (t->attr[call] & CAI__ATTR_EOG)) ||
                    (calls >= 0 && (t->attr[calls] & CAI__ATTR_EOG));
    if (end >= 0 && (t->attr[end] & CAI__ATTR_EOG) && has_call &&
        ((ret >= 0 && (t->attr[ret] & CAI__ATTR_EOG)) ||
         (flush >= 0 && (t->attr[flush] & CAI__ATTR_EOG))))
        t->attr[end] = CAI__ATTR_USER_DEFINED;
    /* Gemma 4 / PaddleOCR: "</s>" is not the end when "<|tool_response>" is. */
    int32_t tr = find_cstr(t, "<|tool_response>"), s = find_cstr(t, "</s>");
    if (tr >= 0 && s >= 0 && (t->attr[tr] & CAI__ATTR_EOG) && (t->attr[s] & CAI__ATTR_EOG))
        t->attr[s] = CAI__ATTR_NORMAL;
}

static int trie_add(struct cai_tok *t, const uint8_t *s, uint32_t n, int32_t tok, uint32_t *cap)
{
    int32_t *link = &t->trie_root[s[0]];
    int32_t  node = -1;
    for (uint32_t d = 0; d < n; d++) {
        /* Find the child for s[d] on the list at *link (the root level is
         * indexed by byte, so its list has one node). */
        int32_t c = *link;
        while (c >= 0 && t->trie[c].byte != s[d])
            c = t->trie[c].sibling;
        if (c < 0) {
            if (t->n_trie == *cap) {
                uint32_t               ncap = *cap ? *cap * 2 : 256;
                struct cai__trie_node *nt;
                if (ncap > (1u << 30))
                    return CAI_ENOMEM;
                nt = cai__realloc(t->trie, (size_t)ncap * sizeof(*nt));
                if (!nt)
                    return CAI_ENOMEM;
                t->trie = nt;
                *cap = ncap;
                if (node >= 0)
                    link = &t->trie[node].child;
            }
            c = (int32_t)t->n_trie++;
            t->trie[c] = (struct cai__trie_node){.child = -1, .sibling = *link, .tok = -1,
                                                 .byte = s[d]};
            *link = c;
        }
        node = c;
        link = &t->trie[node].child;
    }
    t->trie[node].tok = tok;
    return 0;
}

static int build_specials(struct cai_tok *t, struct cai_error *err)
{
    const uint8_t special = CAI__ATTR_CONTROL | CAI__ATTR_USER_DEFINED | CAI__ATTR_UNKNOWN;
    uint32_t      n = 0, cap = 0;
    for (int i = 0; i < 256; i++)
        t->trie_root[i] = -1;
    t->special_prio = cai__malloc_array(t->n_vocab, sizeof(*t->special_prio));
    if (!t->special_prio)
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        t->special_prio[id] = UINT32_MAX;
        n += (t->attr[id] & special) != 0;
    }
    t->n_special = n;
    if (n == 0)
        return 0;
    int32_t *ids = cai__malloc_array(n, sizeof(*ids));
    if (!ids)
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    n = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & special)
            ids[n++] = (int32_t)id;
    /* Longest text first, then lowest id (llama.cpp sorts by length with an
     * unstable sort; ties between equal-length overlapping tokens are rare). */
    {
        int32_t *tmp = cai__malloc_array(n, sizeof(*tmp));
        if (!tmp) {
            cai__free(ids);
            return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
        }
        for (uint32_t w = 1; w < n; w *= 2) {
            for (uint32_t lo = 0; lo < n; lo += 2 * w) {
                uint32_t mid = CAI_MIN(lo + w, n), hi = CAI_MIN(lo + 2 * w, n);
                uint32_t a = lo, b = mid, k = lo;
                while (a < mid && b < hi) {
                    uint32_t na = t->text_off[ids[a] + 1] - t->text_off[ids[a]];
                    uint32_t nb = t->text_off[ids[b] + 1] - t->text_off[ids[b]];
                    bool     take_a = na > nb || (na == nb && ids[a] < ids[b]);
                    tmp[k++] = take_a ? ids[a++] : ids[b++];
                }
                while (a < mid)
                    tmp[k++] = ids[a++];
                while (b < hi)
                    tmp[k++] = ids[b++];
            }
            memcpy(ids, tmp, (size_t)n * sizeof(*ids));
        }
        cai__free(tmp);
    }
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        uint32_t    len;
        const char *s = tok_text(t, ids[i], &len);
        t->special_prio[ids[i]] = i;
        rc = trie_add(t, (const uint8_t *)s, len, ids[i], &cap);
    }
    cai__free(ids);
    return rc ? cai__fail(err, rc, "tokenizer: out of memory") : 0;
}

/* strtol(text.substr(3, 2), 16) as llama.cpp's token_to_byte does it. */
static uint8_t byte_token_value(const char *s, uint32_t n)
{
    const char *p = s + 3, *end = s + CAI_MIN(n, 5u);
    int         sign = 1, v = 0;
    while (p < end && (*p == ' ' || (*p >= '\t' && *p <= '\r')))
        p++;
    if (p < end && (*p == '+' || *p == '-'))
        sign = *p++ == '-' ? -1 : 1;
    for (; p < end; p++) {
        int d = (*p >= '0' && *p <= '9')   ? *p - '0'
                : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
                : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10
                                           : -1;
        if (d < 0)
            break;
        v = v * 16 + d;
    }
    return (uint8_t)(sign * v);
}

/* Writes token id's piece (special = true) to out (NULL: just measure);
 * returns its length, or UINT32_MAX when it would exceed MAX_PIECE_BYTES. */
static uint32_t render_piece(const struct cai_tok *t, int32_t id, char *out)
{
    uint32_t       n;
    const char    *s = tok_text(t, id, &n);
    uint8_t        a = t->attr[id];
    if (a & (CAI__ATTR_UNKNOWN | CAI__ATTR_CONTROL | CAI__ATTR_USER_DEFINED)) {
        if (out)
            memcpy(out, s, n);
        return n;
    }
    if (a & CAI__ATTR_NORMAL) {
        uint64_t len = 0;
        if (t->kind == CAI_TOK_SPM) {
            /* "▁" (E2 96 81) becomes a space. */
            for (uint32_t i = 0; i < n; i++) {
                char c = s[i];
                if (i + 2 < n && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 &&
                    (uint8_t)s[i + 2] == 0x81) {
                    c = ' ';
                    i += 2;
                }
                if (out)
                    out[len] = c;
                len++;
            }
            return (uint32_t)len;
        }
        /* Byte-level: each code point stands for one byte; one that does not
         * becomes "[UNK_BYTE_0x<its utf-8 in hex><the whole token text>]". */
        size_t off = 0;
        while (off < n) {
            uint32_t cpt = cai__utf8_decode((const uint8_t *)s, n, &off);
            int      b = cai__cpt_to_byte(cpt);
            if (b >= 0) {
                if (out)
                    out[len] = (char)b;
                len++;
                continue;
            }
            uint8_t u[4];
            int     nu = cai__utf8_encode(cpt, u);
            if (out) {
                memcpy(out + len, "[UNK_BYTE_0x", 12);
                for (int k = 0; k < nu; k++) {
                    static const char hex[] = "0123456789abcdef";
                    out[len + 12 + 2 * k] = hex[u[k] >> 4];
                    out[len + 13 + 2 * k] = hex[u[k] & 15];
                }
                memcpy(out + len + 12 + 2 * nu, s, n);
                out[len + 12 + 2 * nu + n] = ']';
            }
            len += 12 + 2 * (uint64_t)nu + n + 1;
            if (len > MAX_PIECE_BYTES)
                return UINT32_MAX;
        }
        return (uint32_t)len;
    }
    if (a & CAI__ATTR_BYTE) {
        if (out)
            out[0] = (char)byte_token_value(s, n);
        return 1;
    }
    return 0;
}

static int build_pieces(struct cai_tok *t, struct cai_error *err)
{
    uint64_t total = 0;
    t->piece_off = cai__malloc_array((size_t)t->n_vocab + 1, sizeof(*t->piece_off));
    if (!t->piece_off)
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        uint32_t    n;
        const char *s = tok_text(t, (int32_t)id, &n);
        if ((t->attr[id] & CAI__ATTR_BYTE) && !(t->attr[id] & ~CAI__ATTR_BYTE & 0x3F) && n < 3)
            return cai__fail(err, CAI_EFORMAT, "tokenizer: byte token %u ('%.*s') is malformed", id,
                             (int)n, s);
        uint32_t len = render_piece(t, (int32_t)id, NULL);
        if (len == UINT32_MAX)
            return cai__fail(err, CAI_EFORMAT, "tokenizer: token %u renders too long a piece", id);
        t->piece_off[id] = (uint32_t)total;
        total += len;
        if (total >= UINT32_MAX)
            return cai__fail(err, CAI_EFORMAT, "tokenizer: pieces too large");
        t->max_piece = CAI_MAX(t->max_piece, len);
    }
    t->piece_off[t->n_vocab] = (uint32_t)total;
    t->piece = cai__malloc((size_t)total + 1);
    if (!t->piece)
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    for (uint32_t id = 0; id < t->n_vocab; id++)
        render_piece(t, (int32_t)id, t->piece + t->piece_off[id]);
    return 0;
}

static void build_byte_tokens(struct cai_tok *t)
{
    for (int b = 0; b < 256; b++) {
        uint8_t raw = (uint8_t)b;
        t->raw_byte_tok[b] = cai__tok_lookup(t, &raw, 1);
        if (t->kind == CAI_TOK_BPE) {
            uint8_t u[4];
            int     nu = cai__utf8_encode(cai__byte_to_cpt(raw), u);
            t->byte_tok[b] = cai__tok_lookup(t, u, (size_t)nu);
        } else {
            static const char hex[] = "0123456789ABCDEF";
            char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            t->byte_tok[b] = cai__tok_lookup(t, name, 6);
            if (t->byte_tok[b] < 0)
                t->byte_tok[b] = t->raw_byte_tok[b];
        }
    }
}

static int check_special_id(int32_t id, uint32_t n_vocab, const char *name, struct cai_error *err)
{
    if (id < -1 || (id >= 0 && (uint32_t)id >= n_vocab))
        return cai__fail(err, CAI_EFORMAT, "tokenizer: %s id %d out of range (n_vocab %u)", name,
                         id, n_vocab);
    return 0;
}

int cai__tok_new(struct cai_tok **out, const struct cai_tok_spec *spec, struct cai_error *err)
{
    int rc;
    if (!out)
        return cai__fail(err, CAI_EINVAL, "tokenizer: no output pointer");
    *out = NULL;
    if (!spec)
        return cai__fail(err, CAI_EINVAL, "tokenizer: no spec");
    if (spec->kind != CAI_TOK_BPE && spec->kind != CAI_TOK_SPM)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: unknown kind %d", spec->kind);
    if (spec->n_vocab == 0 || spec->n_vocab > (1u << 30))
        return cai__fail(err, CAI_EFORMAT, "tokenizer: bad vocabulary size %u", spec->n_vocab);
    if (!spec->texts || !spec->text_lens)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: no token texts");
    const struct cai__pretok *pre = NULL;
    if (spec->kind == CAI_TOK_BPE) {
        pre = cai__pretok_find(spec->pre);
        if (!pre)
            return cai__fail(err, CAI_EFORMAT, "tokenizer: unknown pre-tokenizer '%.64s'",
                             spec->pre);
    }
    struct {
        int32_t     id;
        const char *name;
    } ids[] = {{spec->bos, "bos"}, {spec->eos, "eos"}, {spec->eot, "eot"}, {spec->eom, "eom"},
               {spec->unk, "unk"}, {spec->pad, "pad"}, {spec->sep, "sep"}};
    for (size_t i = 0; i < CAI_ARRAY_LEN(ids); i++)
        if ((rc = check_special_id(ids[i].id, spec->n_vocab, ids[i].name, err)))
            return rc;
    if (spec->add_bos && spec->bos < 0)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: add_bos is set but there is no bos token");
    if (spec->add_eos && spec->eos < 0)
        return cai__fail(err, CAI_EFORMAT, "tokenizer: add_eos is set but there is no eos token");

    struct cai_tok *t = cai__calloc(1, sizeof(*t));
    if (!t)
        return cai__fail(err, CAI_ENOMEM, "tokenizer: out of memory");
    t->kind = spec->kind;
    t->pre = pre;
    t->n_vocab = spec->n_vocab;
    t->bos = spec->bos;
    t->eos = spec->eos;
    t->eot = spec->eot;
    t->eom = spec->eom;
    t->unk = spec->unk;
    t->pad = spec->pad;
    t->sep = spec->sep;
    t->add_bos = spec->add_bos;
    t->add_eos = spec->add_eos;
    t->add_space_prefix = spec->kind == CAI_TOK_SPM && spec->add_space_prefix;
    t->clean_spaces = pre && pre->clean_spaces;

    if ((rc = copy_vocab(t, spec, err)) || (rc = build_vocab_hash(t, err)))
        goto fail;
    if (t->kind == CAI_TOK_BPE && (rc = build_merges(t, spec, err)))
        goto fail;
    build_byte_tokens(t);
    mark_eog(t);
    if ((rc = build_specials(t, err)) || (rc = build_pieces(t, err)))
        goto fail;
    *out = t;
    return 0;
fail:
    cai__tok_free(t);
    return rc;
}

void cai__tok_free(struct cai_tok *t)
{
    if (!t)
        return;
    cai__free(t->text);
    cai__free(t->text_off);
    cai__free(t->scores);
    cai__free(t->attr);
    cai__free(t->vhash);
    cai__free(t->mkey);
    cai__free(t->mrank);
    cai__free(t->mresult);
    cai__free(t->trie);
    cai__free(t->special_prio);
    cai__free(t->piece);
    cai__free(t->piece_off);
    cai__free(t);
}

void cai__tok_spec_defaults(struct cai_tok_spec *spec)
{
    bool spm = spec->kind == CAI_TOK_SPM;
    spec->bos = spec->eos = spec->eot = spec->eom = spec->unk = spec->pad = spec->sep = -1;
    spec->add_bos = false;
    spec->add_eos = false;
    spec->add_space_prefix = spm;
    if (spm) {
        spec->bos = spec->n_vocab > 1 ? 1 : -1;
        spec->eos = spec->n_vocab > 2 ? 2 : -1;
        spec->unk = spec->n_vocab > 0 ? 0 : -1;
        spec->add_bos = spec->bos >= 0;
    } else if (spec->kind == CAI_TOK_BPE) {
        /* llama.cpp's BPE default is id 11 for both, when it exists. */
        spec->bos = spec->eos = spec->n_vocab > 11 ? 11 : -1;
        const struct cai__pretok *pre = cai__pretok_find(spec->pre);
        spec->add_bos = pre && pre->add_bos && spec->bos >= 0;
    }
}

/* ---- encoding: the special-token partition -------------------------------- */

int cai__ids_push(struct cai__ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        if (ids->cap >= (size_t)INT32_MAX)
            return CAI_ERANGE;
        size_t   cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = cai__realloc(ids->v, cap * sizeof(*v));
        if (!v)
            return CAI_ENOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

void *cai__scratch_get(struct cai__scratch *s, int slot, size_t n_bytes)
{
    if (n_bytes > s->cap[slot]) {
        size_t cap = CAI_MAX(n_bytes, s->cap[slot] + s->cap[slot] / 2);
        void  *p = cai__realloc(s->buf[slot], cap);
        if (!p)
            return NULL;
        s->buf[slot] = p;
        s->cap[slot] = cap;
    }
    return s->buf[slot];
}

void cai__scratch_free(struct cai__scratch *s)
{
    for (size_t i = 0; i < CAI_ARRAY_LEN(s->buf); i++)
        cai__free(s->buf[i]);
}

struct frag {
    size_t  off, len;
    int32_t tok; /* -1: raw text */
};

struct frags {
    struct frag *v;
    size_t       n, cap;
};

static int frags_push(struct frags *f, size_t off, size_t len, int32_t tok)
{
    if (f->n == f->cap) {
        size_t       cap = f->cap ? f->cap * 2 : 16;
        struct frag *v = cai__realloc(f->v, cap * sizeof(*v));
        if (!v)
            return CAI_ENOMEM;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (struct frag){off, len, tok};
    return 0;
}

static bool special_allowed(const struct cai_tok *t, int32_t id, bool parse_special)
{
    /* Without parse_special only user-defined tokens split the text. */
    return parse_special || !(t->attr[id] & (CAI__ATTR_CONTROL | CAI__ATTR_UNKNOWN));
}

/* llama.cpp's tokenizer_st_partition: for each special token, longest first,
 * every occurrence (leftmost first, not overlapping) inside what is still raw
 * text becomes that token. Only the tokens that occur at all are tried; a
 * trie walk finds them. */
static int partition(const struct cai_tok *t, const uint8_t *text, size_t n, bool parse_special,
                     struct frags *f)
{
    f->n = 0;
    if (n == 0)
        return 0;
    int rc = frags_push(f, 0, n, -1);
    if (rc || t->n_special == 0)
        return rc;

    uint8_t *seen = cai__calloc(t->n_special, 1);
    if (!seen)
        return CAI_ENOMEM;
    uint32_t n_seen = 0;
    for (size_t pos = 0; pos < n; pos++) {
        int32_t node = t->trie_root[text[pos]];
        for (size_t d = pos; node >= 0;) {
            int32_t tok = t->trie[node].tok;
            if (tok >= 0 && special_allowed(t, tok, parse_special)) {
                uint32_t p = t->special_prio[tok];
                n_seen += !seen[p];
                seen[p] = 1;
            }
            if (++d >= n)
                break;
            node = t->trie[node].child;
            while (node >= 0 && t->trie[node].byte != text[d])
                node = t->trie[node].sibling;
        }
    }
    if (n_seen == 0) {
        cai__free(seen);
        return 0;
    }

    /* Tokens by priority: walk the priority ranks that were seen. The rank
     * -> id map is rebuilt from special_prio on demand. */
    int32_t *by_prio = cai__malloc_array(t->n_special, sizeof(*by_prio));
    struct frags next = {0};
    if (!by_prio) {
        cai__free(seen);
        return CAI_ENOMEM;
    }
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if (t->special_prio[id] != UINT32_MAX && seen[t->special_prio[id]])
            by_prio[t->special_prio[id]] = (int32_t)id;

    for (uint32_t p = 0; p < t->n_special && !rc; p++) {
        if (!seen[p])
            continue;
        int32_t     tok = by_prio[p];
        uint32_t    tl;
        const char *tt = tok_text(t, tok, &tl);
        next.n = 0;
        for (size_t i = 0; i < f->n && !rc; i++) {
            struct frag fr = f->v[i];
            if (fr.tok >= 0) {
                rc = frags_push(&next, fr.off, fr.len, fr.tok);
                continue;
            }
            size_t off = fr.off, end = fr.off + fr.len;
            while (!rc) {
                const uint8_t *m = memmem(text + off, end - off, tt, tl);
                if (!m) {
                    rc = frags_push(&next, off, end - off, -1);
                    break;
                }
                size_t at = (size_t)(m - text);
                if (at > off)
                    rc = frags_push(&next, off, at - off, -1);
                if (!rc)
                    rc = frags_push(&next, at, tl, tok);
                off = at + tl;
                if (off >= end)
                    break;
            }
        }
        struct frags tmp = *f;
        *f = next;
        next = tmp;
    }
    cai__free(next.v);
    cai__free(by_prio);
    cai__free(seen);
    return rc;
}

int cai__tok_encode(const struct cai_tok *t, const char *text, size_t n_bytes, bool add_special,
                    bool parse_special, int32_t *out, int n_max)
{
    if (!t || (!text && n_bytes) || n_max < 0 || (!out && n_max > 0))
        return CAI_EINVAL;
    if (n_bytes > (size_t)INT32_MAX)
        return CAI_ERANGE;
    struct cai__ids     ids = {0};
    struct cai__scratch scratch = {0};
    struct frags        f = {0};
    const uint8_t      *s = (const uint8_t *)text;
    int                 rc = 0;

    if (add_special && t->add_bos)
        rc = cai__ids_push(&ids, t->bos);
    if (!rc)
        rc = partition(t, s, n_bytes, parse_special, &f);
    bool prev_special = true; /* SPM: a space before the first text, and after specials */
    for (size_t i = 0; i < f.n && !rc; i++) {
        if (f.v[i].tok >= 0) {
            rc = cai__ids_push(&ids, f.v[i].tok);
            prev_special = true;
        } else if (t->kind == CAI_TOK_BPE) {
            rc = cai__bpe_encode(t, s + f.v[i].off, f.v[i].len, &ids, &scratch);
        } else {
            rc = cai__spm_encode(t, s + f.v[i].off, f.v[i].len,
                                 t->add_space_prefix && prev_special, &ids, &scratch);
            prev_special = false;
        }
    }
    if (!rc && add_special && t->add_eos)
        rc = cai__ids_push(&ids, t->eos);
    if (!rc && ids.n > (size_t)INT32_MAX)
        rc = CAI_ERANGE;
    if (!rc) {
        size_t n_copy = CAI_MIN(ids.n, (size_t)n_max);
        if (n_copy)
            memcpy(out, ids.v, n_copy * sizeof(*out));
        rc = (int)ids.n;
    }
    cai__free(f.v);
    cai__free(ids.v);
    cai__scratch_free(&scratch);
    return rc;
}

/* ---- pieces and accessors -------------------------------------------------- */

int cai__tok_piece(const struct cai_tok *t, int32_t id, bool special, char *buf, size_t cap)
{
    if (!t || id < 0 || (uint32_t)id >= t->n_vocab)
        return CAI_ERANGE;
    if (!special && (t->attr[id] & (CAI__ATTR_UNKNOWN | CAI__ATTR_CONTROL)))
        return 0;
    uint32_t off = t->piece_off[id], n = t->piece_off[id + 1] - off;
    if (buf && cap)
        memcpy(buf, t->piece + off, CAI_MIN((size_t)n, cap));
    return (int)n;
}

size_t cai__tok_max_piece(const struct cai_tok *t)
{
    return t ? t->max_piece : 0;
}

uint32_t cai__tok_n_vocab(const struct cai_tok *t)
{
    return t ? t->n_vocab : 0;
}

int32_t cai__tok_bos(const struct cai_tok *t)
{
    return t ? t->bos : -1;
}

int32_t cai__tok_eos(const struct cai_tok *t)
{
    return t ? t->eos : -1;
}

bool cai__tok_is_eog(const struct cai_tok *t, int32_t id)
{
    return t && id >= 0 && (uint32_t)id < t->n_vocab && (t->attr[id] & CAI__ATTR_EOG);
}

int32_t cai__tok_find(const struct cai_tok *t, const char *text, size_t n_bytes)
{
    if (!t || (!text && n_bytes))
        return -1;
    return cai__tok_lookup(t, text ? text : "", n_bytes);
}

const char *cai__tok_text(const struct cai_tok *t, int32_t id, uint32_t *n_bytes)
{
    if (!t || id < 0 || (uint32_t)id >= t->n_vocab)
        return NULL;
    uint32_t    n;
    const char *s = tok_text(t, id, &n);
    if (n_bytes)
        *n_bytes = n;
    return s;
}
