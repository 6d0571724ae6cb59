/* tok_int.h: what the files of the tokenizer module share, and nothing else
 * includes.
 *
 * The module follows llama.cpp's tokenizer (llama-vocab.cpp, unicode.cpp) to
 * the byte: the same pre-tokenizer splits, merge order, special-token
 * partition and piece rendering, so that token ids match for any input. Where
 * llama.cpp would throw (a code point above U+10FFFF, a missing byte token)
 * we pick a defined behaviour instead and say so at the spot. */
#ifndef CAI_TOK_INT_H
#define CAI_TOK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok.h"

/* ---- Unicode (unicode.c, unicode_data.c) ------------------------------- */

/* Code point flags: one general-category class bit, plus WHITESPACE. The
 * values are llama.cpp's, so "flags == 0" means "no code point here" just as
 * its splitters use it (every real code point has at least one bit). */
enum {
    CAI__UNI_UNDEFINED = 0x0001,
    CAI__UNI_NUMBER = 0x0002,
    CAI__UNI_LETTER = 0x0004,
    CAI__UNI_SEPARATOR = 0x0008,
    CAI__UNI_MARK = 0x0010,
    CAI__UNI_PUNCT = 0x0020,
    CAI__UNI_SYMBOL = 0x0040,
    CAI__UNI_CONTROL = 0x0080,
    CAI__UNI_WHITESPACE = 0x0100,
};

extern const uint32_t cai__uni_ranges[];
extern const uint32_t cai__uni_n_ranges;
extern const uint32_t cai__uni_lower_ascii[];
extern const uint32_t cai__uni_n_lower_ascii;

uint16_t cai__uni_flags(uint32_t cpt);
/* Simple lowercase, as far as the contraction rules need it: exact for every
 * code point whose lowercase is ASCII, identity for the rest. */
uint32_t cai__uni_tolower_ascii(uint32_t cpt);

/* Length of the UTF-8 sequence a byte starts, by its high nibble alone
 * (llama.cpp's unicode_len_utf8: 1 for ASCII and stray continuation bytes). */
static inline size_t cai__utf8_len(uint8_t c)
{
    static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

/* Decodes one code point at s[*off] the way llama.cpp does (lenient: no
 * overlong or surrogate checks), advancing *off. An invalid sequence gives
 * U+FFFD and advances one byte. Sequences above U+10FFFF (on which llama.cpp
 * throws) count as invalid. */
uint32_t cai__utf8_decode(const uint8_t *s, size_t n, size_t *off);
/* Encodes a code point (<= 0x10FFFF) into out[4]; returns the length. */
int      cai__utf8_encode(uint32_t cpt, uint8_t *out);
/* GPT-2 byte <-> unicode mapping. */
uint32_t cai__byte_to_cpt(uint8_t b);
int      cai__cpt_to_byte(uint32_t cpt); /* -1 when the code point is not one of the 256 */

/* ---- pre-tokenizers (pretok.c) ------------------------------------------ */

enum cai__pre_pass {
    CAI__PASS_END = 0,
    /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    CAI__PASS_GPT2,
    CAI__PASS_LLAMA3,       /* Llama 3: ... \p{N}{1,3} ... */
    CAI__PASS_QWEN2,        /* Llama 3 with single digits */
    CAI__PASS_QWEN35,       /* Qwen2 with [\p{L}\p{M}]+ letters */
    CAI__PASS_EACH_NUMBER,  /* \p{N} (each number code point alone) */
    CAI__PASS_NUMBER_RUNS,  /* \p{N}+ */
    CAI__PASS_PUNCT_RUNS,   /* [\p{P}\$\+<=>\^~\|]+ */
    CAI__PASS_PUNCT_RUNS_BT, /* [\p{P}\$\+<=>\^~\|`]+ (Falcon) */
    CAI__PASS_DIGITS3,      /* [0-9][0-9][0-9] */
    CAI__PASS_NEWLINES,     /* [^\n]+|[\n]+ */
};

#define CAI__PRE_MAX_PASSES 5 /* four passes and the END mark */

struct cai__pretok {
    const char *name;
    uint8_t     passes[CAI__PRE_MAX_PASSES]; /* enum cai__pre_pass, END-terminated */
    bool        ignore_merges;               /* whole pre-token in vocab: take it */
    bool        add_bos;                     /* llama.cpp's default when the file is silent */
    bool        clean_spaces;                /* detokenize drops " ?", " 's"... spaces */
};

/* The recipe for a tokenizer.ggml.pre name, or NULL when unknown. NULL or ""
 * gives "default". */
const struct cai__pretok *cai__pretok_find(const char *name);

/* Splits cpts[0..n) into pre-tokens. On entry segs[0] = n, *n_segs = 1 ...
 * On return segs holds the lengths (in code points) of the pieces in order.
 * segs and tmp must each hold n + 1 entries. */
void cai__pretok_split(const struct cai__pretok *pre, const uint32_t *cpts, const uint16_t *flags,
                       size_t n, uint32_t *segs, size_t *n_segs, uint32_t *tmp);

/* ---- the tokenizer object (tok.c) ---------------------------------------- */

/* Token attributes (llama.cpp's llama_token_attr subset we use). */
enum {
    CAI__ATTR_UNKNOWN = 1 << 0,
    CAI__ATTR_UNUSED = 1 << 1,
    CAI__ATTR_NORMAL = 1 << 2,
    CAI__ATTR_CONTROL = 1 << 3,
    CAI__ATTR_USER_DEFINED = 1 << 4,
    CAI__ATTR_BYTE = 1 << 5,
    CAI__ATTR_EOG = 1 << 6, /* ours: ends a generation */
};

struct cai__trie_node {
    int32_t child;   /* first child, -1 none */
    int32_t sibling; /* next sibling, -1 none */
    int32_t tok;     /* special token ending here, -1 none */
    uint8_t byte;
};

struct cai_tok {
    int                        kind; /* enum cai_tok_kind */
    const struct cai__pretok  *pre;  /* BPE only */
    uint32_t                   n_vocab;
    char                      *text;     /* all token texts, back to back */
    uint32_t                  *text_off; /* [n_vocab + 1] */
    float                     *scores;   /* [n_vocab] */
    uint8_t                   *attr;     /* [n_vocab] CAI__ATTR_* */
    int32_t                   *vhash;    /* [vhash_mask + 1] open-addressed ids, -1 empty */
    uint32_t                   vhash_mask;
    /* BPE merges: key (left id << 32 | right id) -> rank, result id. */
    uint64_t                  *mkey;     /* [mhash_mask + 1], UINT64_MAX empty */
    int32_t                   *mrank;
    int32_t                   *mresult;
    uint32_t                   mhash_mask;
    /* BPE: the token of each byte's GPT-2 character; SPM: the byte-fallback
     * token (<0xNN>, else the raw one-byte token); -1 when missing. */
    int32_t                    byte_tok[256];
    /* BPE: tokens whose text is one raw byte (for the unmatched-symbol path). */
    int32_t                    raw_byte_tok[256];
    /* Special tokens (control, user-defined, unknown) for the partition. */
    struct cai__trie_node     *trie;
    uint32_t                   n_trie;
    int32_t                    trie_root[256]; /* first-level children by byte */
    uint32_t                   n_special;
    uint32_t                  *special_prio; /* [n_vocab] partition rank, UINT32_MAX: none */
    /* Pieces rendered with special = true (llama.cpp's piece cache). */
    char                      *piece;
    uint32_t                  *piece_off; /* [n_vocab + 1] */
    uint32_t                   max_piece;
    uint32_t                   max_text;
    int32_t                    bos, eos, eot, eom, unk, pad, sep;
    bool                       add_bos, add_eos, add_space_prefix;
    bool                       clean_spaces;
};

/* The id of the token whose text is s[0..n), or -1. */
int32_t cai__tok_lookup(const struct cai_tok *t, const void *s, size_t n);
/* Merge of (left, right): returns the rank and sets *result, or -1. */
int32_t cai__tok_merge(const struct cai_tok *t, int32_t left, int32_t right, int32_t *result);

/* ---- encoders (bpe.c, spm.c) -------------------------------------------- */

/* A growable id list for one encode call. */
struct cai__ids {
    int32_t *v;
    size_t   n, cap;
};
int cai__ids_push(struct cai__ids *ids, int32_t id); /* 0 or CAI_ENOMEM */

/* Scratch memory reused across the fragments of one encode call. */
struct cai__scratch {
    void  *buf[8];
    size_t cap[8];
};
void *cai__scratch_get(struct cai__scratch *s, int slot, size_t n_bytes);
void  cai__scratch_free(struct cai__scratch *s);

/* Encode one raw-text fragment (no special tokens in it) and append the ids.
 * Return 0 or a negative code. */
int cai__bpe_encode(const struct cai_tok *t, const uint8_t *text, size_t n, struct cai__ids *out,
                    struct cai__scratch *s);
int cai__spm_encode(const struct cai_tok *t, const uint8_t *text, size_t n, bool space_prefix,
                    struct cai__ids *out, struct cai__scratch *s);

#endif /* CAI_TOK_INT_H */
