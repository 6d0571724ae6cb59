/* bpe.c: byte-level BPE (GPT-2 style) over one fragment of raw text.
 *
 * The fragment is decoded to code points (invalid bytes become U+FFFD, as in
 * llama.cpp), split by the vocabulary's pre-tokenizer, and each pre-token is
 * re-encoded to UTF-8 and merged: every byte starts as the token of its GPT-2
 * character, and the adjacent pair with the lowest merge rank (leftmost on
 * ties) is merged until no pair has a rank. A min-heap of candidate pairs
 * makes that O(n log n) per pre-token. */
#include <string.h>

#include "tok_int.h"

enum {
    SLOT_CPTS,
    SLOT_FLAGS,
    SLOT_SEGS,
    SLOT_TMP,
    SLOT_WORD,
    SLOT_SYMS,
    SLOT_HEAP,
};

struct sym {
    int32_t id;   /* token id; -1: no token (a byte whose character is not in the vocab) */
    int32_t prev; /* -1: none */
    int32_t next;
    uint8_t byte; /* the byte this symbol started as */
    bool    dead;
};

struct pair {
    int32_t rank;
    int32_t left, right;
    int32_t left_id, right_id, result;
};

static bool pair_before(const struct pair *a, const struct pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(struct pair *h, size_t *n, struct pair p)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
}

static struct pair heap_pop(struct pair *h, size_t *n)
{
    struct pair top = h[0], last = h[--*n];
    size_t      i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && pair_before(&h[c + 1], &h[c]))
            c++;
        if (!pair_before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

static void try_pair(const struct cai_tok *t, const struct sym *s, int32_t l, int32_t r,
                     struct pair *heap, size_t *n_heap)
{
    if (l < 0 || r < 0)
        return;
    int32_t res, rank = cai__tok_merge(t, s[l].id, s[r].id, &res);
    if (rank < 0)
        return;
    heap_push(heap, n_heap,
              (struct pair){.rank = rank, .left = l, .right = r, .left_id = s[l].id,
                            .right_id = s[r].id, .result = res});
}

/* A symbol that is no token: llama.cpp looks up each byte of its text as a
 * one-byte token and keeps those it finds. */
static int emit_unknown(const struct cai_tok *t, uint8_t byte, struct cai__ids *out)
{
    uint8_t u[4];
    int     nu = cai__utf8_encode(cai__byte_to_cpt(byte), u);
    for (int k = 0; k < nu; k++) {
        int32_t id = t->raw_byte_tok[u[k]];
        if (id >= 0) {
            int rc = cai__ids_push(out, id);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int bpe_word(const struct cai_tok *t, const uint8_t *w, size_t n, struct cai__ids *out,
                    struct cai__scratch *sc)
{
    if (t->pre->ignore_merges) {
        /* The whole pre-token, if it is a token, is taken as it is. */
        uint8_t *enc = cai__scratch_get(sc, SLOT_HEAP, 2 * n);
        size_t   ne = 0;
        if (!enc)
            return CAI_ENOMEM;
        for (size_t i = 0; i < n; i++)
            ne += (size_t)cai__utf8_encode(cai__byte_to_cpt(w[i]), enc + ne);
        int32_t id = cai__tok_lookup(t, enc, ne);
        if (id >= 0)
            return cai__ids_push(out, id);
    }
    if (n == 1) {
        int32_t id = t->byte_tok[w[0]];
        return id >= 0 ? cai__ids_push(out, id) : emit_unknown(t, w[0], out);
    }

    size_t       cap_heap;
    struct sym  *s = cai__scratch_get(sc, SLOT_SYMS, n * sizeof(*s));
    /* Each merge pushes at most two pairs on top of the n - 1 first ones. */
    if (!cai__mul_size(3 * n, sizeof(struct pair), &cap_heap))
        return CAI_ENOMEM;
    struct pair *heap = cai__scratch_get(sc, SLOT_HEAP, cap_heap);
    size_t       n_heap = 0;
    if (!s || !heap)
        return CAI_ENOMEM;
    for (size_t i = 0; i < n; i++)
        s[i] = (struct sym){.id = t->byte_tok[w[i]], .prev = (int32_t)i - 1,
                            .next = i + 1 < n ? (int32_t)i + 1 : -1, .byte = w[i]};
    for (size_t i = 1; i < n; i++)
        try_pair(t, s, (int32_t)i - 1, (int32_t)i, heap, &n_heap);

    while (n_heap) {
        struct pair p = heap_pop(heap, &n_heap);
        struct sym *l = &s[p.left], *r = &s[p.right];
        /* Skip pairs made stale by an earlier merge (llama.cpp compares the
         * texts; equal ids on both live, adjacent symbols is the same test). */
        if (l->dead || r->dead || l->next != p.right || l->id != p.left_id || r->id != p.right_id)
            continue;
        l->id = p.result;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = p.left;
        r->dead = true;
        try_pair(t, s, l->prev, p.left, heap, &n_heap);
        try_pair(t, s, p.left, l->next, heap, &n_heap);
    }

    for (int32_t i = 0; i >= 0; i = s[i].next) {
        int rc = s[i].id >= 0 ? cai__ids_push(out, s[i].id) : emit_unknown(t, s[i].byte, out);
        if (rc)
            return rc;
    }
    return 0;
}

int cai__bpe_encode(const struct cai_tok *t, const uint8_t *text, size_t n, struct cai__ids *out,
                    struct cai__scratch *sc)
{
    uint32_t *cpts = cai__scratch_get(sc, SLOT_CPTS, n * sizeof(*cpts));
    uint16_t *flags = cai__scratch_get(sc, SLOT_FLAGS, n * sizeof(*flags));
    uint32_t *segs = cai__scratch_get(sc, SLOT_SEGS, (n + 1) * sizeof(*segs));
    uint32_t *tmp = cai__scratch_get(sc, SLOT_TMP, (n + 1) * sizeof(*tmp));
    if (!cpts || !flags || !segs || !tmp)
        return CAI_ENOMEM;
    size_t m = 0;
    for (size_t off = 0; off < n;) {
        cpts[m] = cai__utf8_decode(text, n, &off);
        flags[m] = cai__uni_flags(cpts[m]);
        m++;
    }
    size_t n_segs;
    cai__pretok_split(t->pre, cpts, flags, m, segs, &n_segs, tmp);

    size_t start = 0;
    for (size_t i = 0; i < n_segs; i++) {
        /* Re-encode the pre-token (invalid input is now EF BF BD). */
        uint8_t *w = cai__scratch_get(sc, SLOT_WORD, (size_t)segs[i] * 4);
        size_t   nw = 0;
        if (!w)
            return CAI_ENOMEM;
        for (size_t k = start; k < start + segs[i]; k++)
            nw += (size_t)cai__utf8_encode(cpts[k], w + nw);
        start += segs[i];
        int rc = bpe_word(t, w, nw, out, sc);
        if (rc)
            return rc;
    }
    return 0;
}
