/* tok.h: tokenizers (byte-level BPE and SentencePiece-style) and streaming
 * detokenization.
 *
 * This layer depends only on base/: the model loader reads the vocabulary out
 * of a file and hands it over as plain arrays in a `struct cai_tok_spec`. A
 * tokenizer is immutable after cai__tok_new() and may be shared by threads. */
#ifndef CAI_TOK_H
#define CAI_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

enum cai_tok_kind {
    CAI_TOK_BPE = 1, /* byte-level BPE, GPT-2 style (GGUF tokenizer.ggml.model = "gpt2") */
    CAI_TOK_SPM = 2, /* SentencePiece-style BPE over scores, byte fallback ("llama") */
};

/* GGUF token types (tokenizer.ggml.token_type). */
enum cai_tok_type {
    CAI_TOKT_NORMAL = 1,
    CAI_TOKT_UNKNOWN = 2,
    CAI_TOKT_CONTROL = 3,
    CAI_TOKT_USER_DEFINED = 4,
    CAI_TOKT_UNUSED = 5,
    CAI_TOKT_BYTE = 6,
};

/* Everything a tokenizer is built from. Borrowed for the call: cai__tok_new
 * copies what it keeps. Strings are given with lengths (not NUL-terminated). */
struct cai_tok_spec {
    int             kind;        /* enum cai_tok_kind */
    const char     *pre;         /* pre-tokenizer name (tokenizer.ggml.pre), NULL = "default" */
    uint32_t        n_vocab;
    const char    **texts;       /* [n_vocab] token texts as stored in the file */
    const uint32_t *text_lens;   /* [n_vocab] */
    const float    *scores;      /* [n_vocab] or NULL */
    const int32_t  *types;       /* [n_vocab] enum cai_tok_type, or NULL (all normal) */
    uint32_t        n_merges;    /* BPE only */
    const char    **merges;      /* [n_merges] "left right" */
    const uint32_t *merge_lens;  /* [n_merges] */
    int32_t bos, eos, eot, eom, unk, pad, sep; /* -1 when absent */
    bool    add_bos, add_eos;
    bool    add_space_prefix;    /* SPM: prepend a space to the text */
};

struct cai_tok;

/* Sets the fields llama.cpp assumes when a GGUF file leaves them out, from
 * spec->kind, spec->pre and spec->n_vocab: special ids (SPM: bos 1, eos 2,
 * unk 0; byte-level BPE: bos = eos = 11 when the vocabulary has it, as
 * llama.cpp does), add_bos (SPM, and Llama-3-style pre-tokenizers such as
 * "llama-bpe"), add_eos false, add_space_prefix (SPM only). A loader calls it
 * first and then overwrites whatever the file states. */
void cai__tok_spec_defaults(struct cai_tok_spec *spec);

/* Builds a tokenizer. Fails with CAI_EFORMAT (message names the problem:
 * duplicate token, merge naming an unknown token, special id out of range,
 * unknown pre-tokenizer...) or CAI_ENOMEM. */
int  cai__tok_new(struct cai_tok **out, const struct cai_tok_spec *spec, struct cai_error *err);
void cai__tok_free(struct cai_tok *t); /* NULL is a no-op */

/* Encodes `text` (n_bytes bytes; any bytes, invalid UTF-8 included).
 * add_special: add BOS/EOS as the vocabulary asks. parse_special: text that
 * spells a control or user-defined token becomes that token; otherwise it is
 * tokenized as plain text. Writes at most n_max ids to out and returns the
 * total number of ids the text needs (call again with a bigger buffer when the
 * result exceeds n_max), or a negative code. */
int cai__tok_encode(const struct cai_tok *t, const char *text, size_t n_bytes, bool add_special,
                    bool parse_special, int32_t *out, int n_max);

/* The bytes token `id` stands for (byte-level BPE decoded, SPM "▁" as space,
 * <0xNN> byte tokens as that byte). Control tokens give their text only when
 * `special` is true, else nothing. Writes at most cap bytes and returns the
 * full length, or a negative code for an id out of range. */
int cai__tok_piece(const struct cai_tok *t, int32_t id, bool special, char *buf, size_t cap);

/* The text of a whole sequence, as llama_detokenize(remove_special = false,
 * unparse_special = special): the pieces joined, the leading space an SPM
 * vocabulary prepends dropped, and for vocabularies whose pre-tokenizer asks
 * for it (GPT-2, Llama 3...) llama.cpp's space clean-up (" ?" -> "?",
 * " 's" -> "'s"...). Not streaming: bytes are passed through as they are.
 * Writes at most cap bytes and returns the full length, or a negative code. */
int cai__tok_detokenize(const struct cai_tok *t, const int32_t *ids, int n_ids, bool special,
                        char *out, size_t cap);
/* The longest piece any token renders to (with special = true). */
size_t   cai__tok_max_piece(const struct cai_tok *t);
/* True when s[0..n) is well-formed UTF-8. */
bool     cai__utf8_is_valid(const char *s, size_t n);

uint32_t cai__tok_n_vocab(const struct cai_tok *t);
int32_t  cai__tok_bos(const struct cai_tok *t); /* -1 when none */
int32_t  cai__tok_eos(const struct cai_tok *t);
/* True for tokens that end a generation: eos, eot, eom, and control tokens
 * the vocabulary marks as end-of-turn (e.g. "<|im_end|>", "<end_of_turn>"). */
bool     cai__tok_is_eog(const struct cai_tok *t, int32_t id);
/* The id of a token whose text is exactly `text`, or -1. */
int32_t  cai__tok_find(const struct cai_tok *t, const char *text, size_t n_bytes);
/* Raw token text as stored in the vocabulary; NULL for ids out of range. */
const char *cai__tok_text(const struct cai_tok *t, int32_t id, uint32_t *n_bytes);

/* Streaming detokenizer: pushes tokens, emits only whole UTF-8 characters.
 * Bytes of an incomplete character are held until it completes; invalid
 * sequences are emitted as U+FFFD. Caller-owned; one per stream. */
struct cai_detok {
    const struct cai_tok *tok;
    bool    special;     /* render control tokens */
    bool    strip_space; /* SPM: drop the leading space of the first piece */
    bool    started;
    uint8_t pending[8];
    int     n_pending;
};

void cai__detok_init(struct cai_detok *d, const struct cai_tok *t, bool special);
/* Appends the complete characters now available after token `id` to out
 * (at most cap bytes) and returns how many bytes were written, or a negative
 * code. cap >= 64 + the longest token is enough unless the piece holds
 * invalid UTF-8, which grows threefold as U+FFFD; 3 * (cai__tok_max_piece()
 * + 4) always is. When out is too small the call fails with CAI_ERANGE and
 * changes nothing, so it can be repeated with a bigger buffer. */
int  cai__detok_push(struct cai_detok *d, int32_t id, char *out, size_t cap);
/* Emits whatever is still pending (as U+FFFD for incomplete characters). */
int  cai__detok_flush(struct cai_detok *d, char *out, size_t cap);

#endif /* CAI_TOK_H */
