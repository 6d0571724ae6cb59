/* pretok.c: the pre-tokenizers of byte-level BPE vocabularies.
 *
 * llama.cpp splits text with a list of regular expressions per
 * tokenizer.ggml.pre value; each expression splits the pieces the previous
 * one produced, and both its matches and the gaps between them become pieces.
 * The common expressions are written here as hand-made matchers over code
 * points and their Unicode flags, each one reproducing the matcher (custom or
 * std::regex) llama.cpp runs for it, down to its quirks: \s is the 25 code
 * point White_Space set, a piece's look-ahead stops at the piece's end, and
 * the contractions of the GPT-2 pattern are lowercase only. */
#include <string.h>

#include "tok_int.h"

/* ---- recipes ------------------------------------------------------------ */

#define P(...) {__VA_ARGS__, CAI__PASS_END}

/* name, passes, ignore_merges, add_bos, clean_spaces (llama_vocab::load). */
static const struct cai__pretok recipes[] = {
    {"default", P(CAI__PASS_PUNCT_RUNS, CAI__PASS_GPT2, CAI__PASS_NUMBER_RUNS, CAI__PASS_DIGITS3),
     false, false, true},
    /* Llama 3 and friends: ignore_merges, and BOS by default. */
    {"llama3", P(CAI__PASS_LLAMA3), true, true, true},
    {"llama-v3", P(CAI__PASS_LLAMA3), true, true, true},
    {"llama-bpe", P(CAI__PASS_LLAMA3), true, true, true},
    {"falcon3", P(CAI__PASS_LLAMA3), true, true, true},
    {"falcon-h1", P(CAI__PASS_LLAMA3), true, true, true},
    {"pixtral", P(CAI__PASS_LLAMA3), true, true, true},
    {"midm-2.0", P(CAI__PASS_LLAMA3), true, true, true},
    {"lfm2", P(CAI__PASS_LLAMA3), true, true, true},
    {"jina-v5-nano", P(CAI__PASS_LLAMA3), true, true, true},
    /* Same expression, without the Llama 3 extras. */
    {"dbrx", P(CAI__PASS_LLAMA3), false, false, true},
    {"smaug-bpe", P(CAI__PASS_LLAMA3), false, false, true},
    {"glm4", P(CAI__PASS_LLAMA3), false, false, true},
    {"chatglm-bpe", P(CAI__PASS_LLAMA3), false, false, true},
    {"falcon", P(CAI__PASS_PUNCT_RUNS_BT, CAI__PASS_GPT2, CAI__PASS_DIGITS3), false, false, true},
    /* Plain GPT-2. */
    {"gpt-2", P(CAI__PASS_GPT2), false, false, true},
    {"phi-2", P(CAI__PASS_GPT2), false, false, true},
    {"jina-es", P(CAI__PASS_GPT2), false, false, true},
    {"jina-de", P(CAI__PASS_GPT2), false, false, true},
    {"gigachat", P(CAI__PASS_GPT2), false, false, true},
    {"jina-v2-es", P(CAI__PASS_GPT2), false, false, true},
    {"jina-v2-de", P(CAI__PASS_GPT2), false, false, true},
    {"jina-v1-en", P(CAI__PASS_GPT2), false, false, true},
    {"jina-v2-code", P(CAI__PASS_GPT2), false, false, true},
    {"roberta-bpe", P(CAI__PASS_GPT2), false, false, true},
    {"a.x-4.0", P(CAI__PASS_GPT2), false, false, true},
    {"mellum", P(CAI__PASS_GPT2), false, false, true},
    {"modern-bert", P(CAI__PASS_GPT2), false, false, true},
    {"mpt", P(CAI__PASS_GPT2), false, false, true},
    {"olmo", P(CAI__PASS_GPT2), false, false, true},
    {"jais", P(CAI__PASS_GPT2), false, false, true},
    {"trillion", P(CAI__PASS_GPT2), false, false, false},
    {"granite-docling", P(CAI__PASS_GPT2), false, false, false},
    {"exaone4", P(CAI__PASS_GPT2), false, false, true},
    /* Digits one by one, then GPT-2 (SmolLM, StarCoder...). */
    {"smollm", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, false},
    {"starcoder", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, true},
    {"refact", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, true},
    {"command-r", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, false},
    {"codeshell", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, true},
    {"exaone", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, true},
    {"minerva-7b", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, true},
    {"mellum2", P(CAI__PASS_EACH_NUMBER, CAI__PASS_GPT2), false, false, true},
    /* Qwen2: the Llama 3 expression with single digits. */
    {"qwen2", P(CAI__PASS_QWEN2), false, false, false},
    {"deepseek-r1-qwen", P(CAI__PASS_QWEN2), false, false, false},
    {"kormo", P(CAI__PASS_QWEN2), false, false, false},
    {"f2llmv2", P(CAI__PASS_QWEN2), false, false, false},
    {"megrez", P(CAI__PASS_QWEN2), false, false, true},
    {"stablelm2", P(CAI__PASS_QWEN2), false, false, true},
    {"hunyuan", P(CAI__PASS_QWEN2), false, false, false},
    {"solar-open", P(CAI__PASS_QWEN2), false, false, false},
    {"qwen35", P(CAI__PASS_QWEN35), false, false, false},
    {"laguna", P(CAI__PASS_NEWLINES, CAI__PASS_QWEN2), false, false, false},
};

#undef P

const struct cai__pretok *cai__pretok_find(const char *name)
{
    if (!name || !*name)
        return &recipes[0];
    for (size_t i = 0; i < CAI_ARRAY_LEN(recipes); i++)
        if (strcmp(recipes[i].name, name) == 0)
            return &recipes[i];
    return NULL;
}

/* ---- one pass over one piece -------------------------------------------- */

/* A piece being split: code points [ini, end) of the fragment. Outside it
 * the look-ups see "nothing" (flags 0, code point OUT), as llama.cpp's
 * _get_cpt/_get_flags do. */
struct piece {
    const uint32_t *cpts;
    const uint16_t *flags;
    size_t          ini, end;
    size_t          prev_end; /* end of the last emitted token */
    uint32_t       *out;
    size_t          n_out;
};

#define OUT      0xFFFFFFFFu
#define WS       CAI__UNI_WHITESPACE
#define LETTER   CAI__UNI_LETTER
#define NUMBER   CAI__UNI_NUMBER
#define MARK     CAI__UNI_MARK

static uint32_t cpt_at(const struct piece *p, size_t pos)
{
    return (pos >= p->ini && pos < p->end) ? p->cpts[pos] : OUT;
}

static uint16_t flags_at(const struct piece *p, size_t pos)
{
    return (pos >= p->ini && pos < p->end) ? p->flags[pos] : 0;
}

/* Emits the token that ends at `end`; returns its length. */
static size_t emit(struct piece *p, size_t end)
{
    size_t len = end - p->prev_end;
    if (len > 0)
        p->out[p->n_out++] = (uint32_t)len;
    p->prev_end = end;
    return len;
}

static bool is_contraction1(uint32_t c)
{
    return c == 's' || c == 't' || c == 'm' || c == 'd';
}

static bool is_contraction2(uint32_t c1, uint32_t c2)
{
    return (c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l');
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(struct piece *p)
{
    size_t pos = p->ini;
    while (pos < p->end) {
        uint32_t cpt = cpt_at(p, pos);
        uint16_t fl = flags_at(p, pos);

        if (cpt == '\'' && pos + 1 < p->end) {
            uint32_t c1 = cpt_at(p, pos + 1);
            if (is_contraction1(c1)) {
                pos += emit(p, pos + 2);
                continue;
            }
            if (pos + 2 < p->end && is_contraction2(c1, cpt_at(p, pos + 2))) {
                pos += emit(p, pos + 3);
                continue;
            }
        }

        uint16_t f2 = cpt == ' ' ? flags_at(p, pos + 1) : fl;
        if (f2 & LETTER) {
            pos += (cpt == ' ');
            while (f2 & LETTER)
                f2 = flags_at(p, ++pos);
            emit(p, pos);
            continue;
        }
        if (f2 & NUMBER) {
            pos += (cpt == ' ');
            while (f2 & NUMBER)
                f2 = flags_at(p, ++pos);
            emit(p, pos);
            continue;
        }
        if (!(f2 & (WS | LETTER | NUMBER)) && f2) {
            pos += (cpt == ' ');
            while (!(f2 & (WS | LETTER | NUMBER)) && f2)
                f2 = flags_at(p, ++pos);
            emit(p, pos);
            continue;
        }

        size_t n_ws = 0;
        while (flags_at(p, pos + n_ws) & WS)
            n_ws++;
        if (n_ws > 1 && cpt_at(p, pos + n_ws) != OUT) { /* \s+(?!\S) */
            pos += n_ws - 1;
            emit(p, pos);
            continue;
        }
        if (n_ws > 0) { /* \s+ */
            pos += n_ws;
            emit(p, pos);
            continue;
        }
        emit(p, ++pos); /* no match: one code point alone */
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * With `marks`, \p{L} reads [\p{L}\p{M}] (Qwen 3.5). */
static void split_llama3(struct piece *p, int max_digits, bool marks)
{
    const uint16_t letter = marks ? (LETTER | MARK) : LETTER;
    size_t         pos = p->ini;
    while (pos < p->end) {
        uint32_t cpt = cpt_at(p, pos);
        uint16_t fl = flags_at(p, pos);

        if (cpt == '\'' && pos + 1 < p->end) {
            uint32_t c1 = cai__uni_tolower_ascii(cpt_at(p, pos + 1));
            if (is_contraction1(c1)) {
                pos += emit(p, pos + 2);
                continue;
            }
            if (pos + 2 < p->end &&
                is_contraction2(c1, cai__uni_tolower_ascii(cpt_at(p, pos + 2)))) {
                pos += emit(p, pos + 3);
                continue;
            }
        }

        if (!(cpt == '\r' || cpt == '\n' || (fl & NUMBER))) {
            if ((fl & letter) || (flags_at(p, pos + 1) & letter)) {
                pos++;
                while (flags_at(p, pos) & letter)
                    pos++;
                emit(p, pos);
                continue;
            }
        }

        if (fl & NUMBER) {
            if (max_digits == 1) {
                pos++;
            } else {
                size_t ini = pos;
                while (flags_at(p, pos) & NUMBER) {
                    if (++pos - ini >= (size_t)max_digits) {
                        emit(p, pos);
                        ini = pos;
                    }
                }
            }
            emit(p, pos);
            continue;
        }

        uint16_t f2 = cpt == ' ' ? flags_at(p, pos + 1) : fl;
        if (!(f2 & (WS | letter | NUMBER)) && fl) {
            pos += (cpt == ' ');
            while (!(f2 & (WS | letter | NUMBER)) && f2)
                f2 = flags_at(p, ++pos);
            uint32_t c2 = cpt_at(p, pos);
            while (c2 == '\r' || c2 == '\n')
                c2 = cpt_at(p, ++pos);
            emit(p, pos);
            continue;
        }

        size_t n_ws = 0, last_rn = 0;
        while (flags_at(p, pos + n_ws) & WS) {
            uint32_t c2 = cpt_at(p, pos + n_ws);
            if (c2 == '\r' || c2 == '\n')
                last_rn = pos + n_ws + 1;
            n_ws++;
        }
        if (last_rn > 0) { /* \s*[\r\n]+ */
            pos = last_rn;
            emit(p, pos);
            continue;
        }
        if (n_ws > 1 && cpt_at(p, pos + n_ws) != OUT) { /* \s+(?!\S) */
            pos += n_ws - 1;
            emit(p, pos);
            continue;
        }
        if (n_ws > 0) {
            pos += n_ws;
            emit(p, pos);
            continue;
        }
        emit(p, ++pos);
    }
}

/* The single-class expressions llama.cpp runs through std::regex: each run of
 * code points in the class is a piece (or each code point, for `single`),
 * and so is each gap between runs. */
static bool in_punct_class(uint32_t cpt, uint16_t fl, bool backtick)
{
    /* [\p{P}\$\+<=>\^~\|]: std::regex sees non-ASCII whitespace as \v. */
    if ((fl & CAI__UNI_PUNCT) && !(fl & WS))
        return true;
    return cpt < 0x80 && cpt && (strchr("$+<=>^~|", (int)cpt) != NULL || (backtick && cpt == '`'));
}

static bool in_class(int pass, uint32_t cpt, uint16_t fl)
{
    switch (pass) {
    case CAI__PASS_PUNCT_RUNS:
        return in_punct_class(cpt, fl, false);
    case CAI__PASS_PUNCT_RUNS_BT:
        return in_punct_class(cpt, fl, true);
    default: /* EACH_NUMBER, NUMBER_RUNS */
        return (fl & NUMBER) != 0;
    }
}

static void split_class(struct piece *p, int pass)
{
    size_t pos = p->ini;
    while (pos < p->end) {
        uint32_t cpt = p->cpts[pos];
        uint16_t fl = p->flags[pos];
        bool     hit = pass == CAI__PASS_NEWLINES || in_class(pass, cpt, fl);
        if (!hit) {
            pos++;
            continue;
        }
        emit(p, pos); /* the gap before the match */
        if (pass == CAI__PASS_EACH_NUMBER) {
            pos++;
        } else if (pass == CAI__PASS_NEWLINES) {
            bool nl = cpt == '\n';
            while (pos < p->end && (p->cpts[pos] == '\n') == nl)
                pos++;
        } else {
            while (pos < p->end && in_class(pass, p->cpts[pos], p->flags[pos]))
                pos++;
        }
        emit(p, pos);
    }
    emit(p, p->end);
}

/* [0-9][0-9][0-9]: leftmost triples of ASCII digits, gaps between. */
static void split_digits3(struct piece *p)
{
    size_t pos = p->ini;
    while (pos + 3 <= p->end) {
        const uint32_t *c = p->cpts + pos;
        if (c[0] - '0' < 10 && c[1] - '0' < 10 && c[2] - '0' < 10) {
            emit(p, pos);
            pos += 3;
            emit(p, pos);
        } else {
            pos++;
        }
    }
    emit(p, p->end);
}

void cai__pretok_split(const struct cai__pretok *pre, const uint32_t *cpts, const uint16_t *flags,
                       size_t n, uint32_t *segs, size_t *n_segs, uint32_t *tmp)
{
    segs[0] = (uint32_t)n;
    *n_segs = n ? 1 : 0;
    for (int k = 0; pre->passes[k] != CAI__PASS_END; k++) {
        struct piece p = {.cpts = cpts, .flags = flags, .out = tmp, .n_out = 0};
        size_t       start = 0;
        for (size_t i = 0; i < *n_segs; i++) {
            p.ini = start;
            p.end = start + segs[i];
            p.prev_end = start;
            start = p.end;
            switch (pre->passes[k]) {
            case CAI__PASS_GPT2:
                split_gpt2(&p);
                break;
            case CAI__PASS_LLAMA3:
                split_llama3(&p, 3, false);
                break;
            case CAI__PASS_QWEN2:
                split_llama3(&p, 1, false);
                break;
            case CAI__PASS_QWEN35:
                split_llama3(&p, 1, true);
                break;
            case CAI__PASS_DIGITS3:
                split_digits3(&p);
                break;
            default:
                split_class(&p, pre->passes[k]);
                break;
            }
        }
        memcpy(segs, tmp, p.n_out * sizeof(*segs));
        *n_segs = p.n_out;
    }
}
