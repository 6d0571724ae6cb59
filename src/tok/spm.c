/* spm.c: SentencePiece-style BPE over token scores, with byte fallback.
 *
 * As llama.cpp's llm_tokenizer_spm: spaces become "▁" (U+2581), with one
 * prepended when asked; the text is cut into UTF-8 characters (by the lead
 * byte alone, so invalid bytes stand alone); then, repeatedly, the adjacent
 * pair whose concatenation is a token with the highest score (leftmost on
 * ties) is merged. Symbols left that are not tokens become their bytes'
 * <0xNN> tokens. */
#include <string.h>

#include "tok_int.h"

enum {
    SLOT_TEXT = 0,
    SLOT_SYMS = 1,
    SLOT_HEAP = 2,
};

struct sym {
    uint32_t off, n; /* bytes in the escaped text; n == 0 once merged away */
    int32_t  prev, next;
};

struct bigram {
    float    score;
    int32_t  left, right;
    uint32_t size;
};

static bool bigram_before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(struct bigram *h, size_t *n, struct bigram b)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = b;
}

static struct bigram heap_pop(struct bigram *h, size_t *n)
{
    struct bigram top = h[0], last = h[--*n];
    size_t        i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && bigram_before(&h[c + 1], &h[c]))
            c++;
        if (!bigram_before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

static void try_bigram(const struct cai_tok *t, const uint8_t *text, const struct sym *s,
                       int32_t l, int32_t r, struct bigram *heap, size_t *n_heap)
{
    if (l < 0 || r < 0)
        return;
    uint32_t size = s[l].n + s[r].n;
    int32_t  id = cai__tok_lookup(t, text + s[l].off, size);
    if (id < 0)
        return;
    heap_push(heap, n_heap,
              (struct bigram){.score = t->scores[id], .left = l, .right = r, .size = size});
}

int cai__spm_encode(const struct cai_tok *t, const uint8_t *text, size_t n, bool space_prefix,
                    struct cai__ids *out, struct cai__scratch *sc)
{
    size_t cap;
    if (!cai__mul_size(n + 1, 3, &cap))
        return CAI_ENOMEM;
    uint8_t *e = cai__scratch_get(sc, SLOT_TEXT, cap);
    if (!e)
        return CAI_ENOMEM;
    size_t ne = 0;
    if (space_prefix) {
        memcpy(e, "\xe2\x96\x81", 3);
        ne = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') {
            memcpy(e + ne, "\xe2\x96\x81", 3);
            ne += 3;
        } else {
            e[ne++] = text[i];
        }
    }
    if (ne == 0)
        return 0;
    if (ne > UINT32_MAX / 2)
        return CAI_ERANGE;

    size_t         n_sym = 0, n_heap = 0, cap_heap;
    struct sym    *s = cai__scratch_get(sc, SLOT_SYMS, ne * sizeof(*s));
    if (!cai__mul_size(3 * ne, sizeof(struct bigram), &cap_heap))
        return CAI_ENOMEM;
    struct bigram *heap = cai__scratch_get(sc, SLOT_HEAP, cap_heap);
    if (!s || !heap)
        return CAI_ENOMEM;
    for (size_t off = 0; off < ne;) {
        size_t len = CAI_MIN(cai__utf8_len(e[off]), ne - off);
        s[n_sym] = (struct sym){.off = (uint32_t)off, .n = (uint32_t)len,
                                .prev = (int32_t)n_sym - 1, .next = -1};
        off += len;
        if (off < ne)
            s[n_sym].next = (int32_t)n_sym + 1;
        n_sym++;
    }
    for (size_t i = 1; i < n_sym; i++)
        try_bigram(t, e, s, (int32_t)i - 1, (int32_t)i, heap, &n_heap);

    while (n_heap) {
        struct bigram b = heap_pop(heap, &n_heap);
        struct sym   *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = b.left;
        try_bigram(t, e, s, l->prev, b.left, heap, &n_heap);
        try_bigram(t, e, s, b.left, l->next, heap, &n_heap);
    }

    for (int32_t i = 0; i >= 0; i = s[i].next) {
        int32_t id = cai__tok_lookup(t, e + s[i].off, s[i].n);
        int     rc = 0;
        if (id >= 0) {
            rc = cai__ids_push(out, id);
        } else {
            /* Byte fallback. llama.cpp throws when a byte has no token; we
             * use the unknown token then, or drop the byte without one. */
            for (uint32_t k = 0; k < s[i].n && !rc; k++) {
                int32_t bt = t->byte_tok[e[s[i].off + k]];
                if (bt < 0)
                    bt = t->unk;
                if (bt >= 0)
                    rc = cai__ids_push(out, bt);
            }
        }
        if (rc)
            return rc;
    }
    return 0;
}
