/* fuzz_tok.c: libFuzzer target for the tokenizers.
 *
 * The first input byte picks a tokenizer, the rest is text:
 *   0..9    byte-level BPE over a small synthetic vocabulary (256 byte
 *           characters, a few merges, control and user-defined tokens) with
 *           one of ten pre-tokenizers;
 *   10, 11  SentencePiece-style, without and with add_space_prefix;
 *   12      the input itself is a vocabulary (hostile): NUL-separated fields,
 *           the first is the text, each other is one type byte then a token
 *           text (texts with a space are also merges); building may fail.
 * Each text is encoded with parse_special off and on, then detokenized whole
 * and streamed token by token. It traps when a promise breaks: an id out of
 * range, a count that changes with the buffer size, a streamed chunk that is
 * not valid UTF-8, a byte-level round trip that loses bytes of valid UTF-8.
 *
 * Build: `make fuzz`; run: build-fuzz/fuzz_tok -max_total_time=60 tests/fuzz/corpus/tok.
 * With -DCAI_FUZZ_STANDALONE it gets a main() that replays files. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"
#include "tok/tok_int.h"
#include "fuzz.h"


#define MAX_TEXT 4096

static const char *const pre_names[10] = {"default", "gpt-2", "llama-bpe", "qwen2", "smollm",
                                          "qwen35", "falcon", "dbrx", "laguna", "starcoder"};
static struct cai_tok *toks[12];

/* ---- synthetic vocabularies ------------------------------------------------ */

struct vocab {
    char    *texts[600];
    uint32_t lens[600];
    int32_t  types[600];
    float    scores[600];
    char    *merges[64];
    uint32_t merge_lens[64];
    uint32_t n, n_merges;
};

static void add(struct vocab *v, const char *s, size_t n, int type, float score)
{
    v->texts[v->n] = malloc(n + 1);
    memcpy(v->texts[v->n], s, n);
    v->texts[v->n][n] = '\0';
    v->lens[v->n] = (uint32_t)n;
    v->types[v->n] = type;
    v->scores[v->n] = score;
    v->n++;
}

static void gpt2(const char *in, char *out)
{
    size_t o = 0;
    for (const uint8_t *p = (const uint8_t *)in; *p; p++)
        o += (size_t)cai__utf8_encode(cai__byte_to_cpt(*p), (uint8_t *)out + o);
    out[o] = '\0';
}

static struct cai_tok *build(struct vocab *v, int kind, const char *pre, bool space)
{
    struct cai_tok_spec spec = {.kind = kind, .pre = pre, .n_vocab = v->n};
    spec.texts = (const char **)v->texts;
    spec.text_lens = v->lens;
    spec.types = v->types;
    spec.scores = v->scores;
    spec.n_merges = v->n_merges;
    spec.merges = (const char **)v->merges;
    spec.merge_lens = v->merge_lens;
    cai__tok_spec_defaults(&spec);
    spec.add_space_prefix = space;
    struct cai_tok *t = NULL;
    cai__tok_new(&t, &spec, NULL);
    return t;
}

static void free_vocab(struct vocab *v)
{
    for (uint32_t i = 0; i < v->n; i++)
        free(v->texts[i]);
    for (uint32_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
}

static void make_bpe(void)
{
    static const char *pairs[][2] = {{"h", "e"},   {"l", "l"},     {"he", "ll"}, {"hell", "o"},
                                     {" ", "w"},   {"o", "r"},     {" w", "or"}, {"l", "d"},
                                     {" wor", "ld"}, {" ", " "},   {"  ", "  "}, {"\n", "\n"},
                                     {"1", "2"},   {"12", "3"},    {"'", "s"},   {"\xe4", "\xbd"},
                                     {"\xe4\xbd", "\xa0"}, {"\xf0", "\x9f"}};
    struct vocab v;
    memset(&v, 0, sizeof(v));
    for (int b = 0; b < 256; b++) {
        char raw[2] = {(char)b, 0}, s[8];
        if (b == 0) {
            uint8_t u[4];
            int     nu = cai__utf8_encode(cai__byte_to_cpt(0), u);
            add(&v, (const char *)u, (size_t)nu, CAI_TOKT_NORMAL, 0);
            continue;
        }
        gpt2(raw, s);
        add(&v, s, strlen(s), CAI_TOKT_NORMAL, 0);
    }
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char l[32], r[32], m[64];
        gpt2(pairs[i][0], l);
        gpt2(pairs[i][1], r);
        snprintf(m, sizeof(m), "%s%s", l, r);
        add(&v, m, strlen(m), CAI_TOKT_NORMAL, 0);
        snprintf(m, sizeof(m), "%s %s", l, r);
        v.merges[v.n_merges] = strdup(m);
        v.merge_lens[v.n_merges++] = (uint32_t)strlen(m);
    }
    static const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im"};
    for (size_t i = 0; i < 4; i++)
        add(&v, specials[i], strlen(specials[i]), CAI_TOKT_CONTROL, 0);
    add(&v, "<tag>", 5, CAI_TOKT_USER_DEFINED, 0);
    add(&v, "<ta", 3, CAI_TOKT_USER_DEFINED, 0);
    for (int k = 0; k < 10; k++)
        toks[k] = build(&v, CAI_TOK_BPE, pre_names[k], false);
    free_vocab(&v);
}

static void make_spm(void)
{
    static const struct {
        const char *s;
        float       score;
    } pieces[] = {{"\xe2\x96\x81", -1}, {"h", -2}, {"e", -2}, {"l", -2}, {"o", -2},
                  {"\xe2\x96\x81h", -3}, {"ll", -1.5f}, {"he", -4}, {"llo", -1.2f},
                  {"\xe2\x96\x81hello", -0.5f}, {"\xe2\x96\x81\xe2\x96\x81", -1.1f}, {"\n", -2}};
    struct vocab v;
    memset(&v, 0, sizeof(v));
    add(&v, "<unk>", 5, CAI_TOKT_UNKNOWN, 0);
    add(&v, "<s>", 3, CAI_TOKT_CONTROL, 0);
    add(&v, "</s>", 4, CAI_TOKT_CONTROL, 0);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof(s), "<0x%02X>", b);
        add(&v, s, 6, CAI_TOKT_BYTE, 0);
    }
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
        add(&v, pieces[i].s, strlen(pieces[i].s), CAI_TOKT_NORMAL, pieces[i].score);
    add(&v, "<start_of_turn>", 15, CAI_TOKT_CONTROL, 0);
    add(&v, "<end_of_turn>", 13, CAI_TOKT_CONTROL, 0);
    add(&v, "\t\t", 2, CAI_TOKT_USER_DEFINED, 0);
    toks[10] = build(&v, CAI_TOK_SPM, NULL, false);
    toks[11] = build(&v, CAI_TOK_SPM, NULL, true);
    free_vocab(&v);
}

/* ---- checks ---------------------------------------------------------------- */

static void check_text(const struct cai_tok *t, const uint8_t *text, size_t n, bool round_trip)
{
    static int32_t ids[4 * MAX_TEXT + 16];
    static char    whole[16 * MAX_TEXT + 64], joined[16 * MAX_TEXT + 64];
    static char    streamed[48 * MAX_TEXT + 64];
    const int      cap_ids = (int)(sizeof(ids) / sizeof(ids[0]));
    uint32_t       n_vocab = cai__tok_n_vocab(t);
    for (int mode = 0; mode < 2; mode++) {
        bool special = mode == 1;
        int  k = cai__tok_encode(t, (const char *)text, n, false, special, ids, cap_ids);
        REQUIRE(k >= 0 && k <= cap_ids);
        for (int i = 0; i < k; i++)
            REQUIRE(ids[i] >= 0 && (uint32_t)ids[i] < n_vocab);
        /* The count does not depend on the room given. */
        REQUIRE(cai__tok_encode(t, (const char *)text, n, false, special, NULL, 0) == k);
        if (k > 1) {
            int32_t first;
            REQUIRE(cai__tok_encode(t, (const char *)text, n, false, special, &first, 1) == k);
            REQUIRE(first == ids[0]);
        }
        /* add_special adds BOS and EOS around the same ids. */
        int ka = cai__tok_encode(t, (const char *)text, n, true, special, NULL, 0);
        REQUIRE(ka == k + (t->add_bos ? 1 : 0) + (t->add_eos ? 1 : 0));

        int nw = cai__tok_detokenize(t, ids, k, true, whole, sizeof(whole));
        REQUIRE(nw >= 0 && (size_t)nw <= sizeof(whole));

        /* The pieces, joined (the SPM prefix space dropped as a stream does). */
        size_t nj = 0;
        for (int i = 0; i < k; i++) {
            int m = cai__tok_piece(t, ids[i], true, joined + nj, sizeof(joined) - nj);
            REQUIRE(m >= 0 && nj + (size_t)m <= sizeof(joined));
            if (i == 0 && t->add_space_prefix && m > 0 && joined[0] == ' ') {
                memmove(joined, joined + 1, (size_t)m - 1);
                m--;
            }
            nj += (size_t)m;
        }

        /* Streaming: every chunk valid UTF-8, and all of it the joined pieces
         * whenever those are valid UTF-8. */
        struct cai_detok d;
        size_t           ns = 0;
        char             chunk[1024];
        cai__detok_init(&d, t, true);
        for (int i = 0; i <= k; i++) {
            int m = i < k ? cai__detok_push(&d, ids[i], chunk, sizeof(chunk))
                          : cai__detok_flush(&d, chunk, sizeof(chunk));
            REQUIRE(m >= 0 && (size_t)m <= sizeof(chunk));
            REQUIRE(cai__utf8_is_valid(chunk, (size_t)m));
            REQUIRE(ns + (size_t)m <= sizeof(streamed));
            memcpy(streamed + ns, chunk, (size_t)m);
            ns += (size_t)m;
        }
        REQUIRE(d.n_pending == 0);
        if (cai__utf8_is_valid(joined, nj))
            REQUIRE(ns == nj && memcmp(streamed, joined, ns) == 0);
        if (!t->clean_spaces)
            REQUIRE((size_t)nw == nj && memcmp(whole, joined, nj) == 0);
        /* Byte-level BPE (every byte has a token) and SPM without the space
         * prefix lose nothing of valid UTF-8 text. */
        if (round_trip && cai__utf8_is_valid((const char *)text, n))
            REQUIRE(nj == n && memcmp(joined, text, n) == 0);
    }
}

/* Mode 12: the input is the vocabulary. */
static void hostile_vocab(const uint8_t *data, size_t size)
{
    struct cai_tok_spec spec = {.kind = (size && (data[0] & 1)) ? CAI_TOK_SPM : CAI_TOK_BPE};
    const char         *texts[256], *merges[256];
    uint32_t            lens[256], mlens[256];
    int32_t             types[256];
    float               scores[256];
    uint32_t            n = 0, nm = 0;
    const uint8_t      *p = data + (size ? 1 : 0), *end = data + size;
    const uint8_t      *text = p;
    const uint8_t      *z = memchr(p, 0, (size_t)(end - p));
    size_t              n_text = z ? (size_t)(z - p) : (size_t)(end - p);
    p = z ? z + 1 : end;
    while (p < end && n < 256) {
        z = memchr(p, 0, (size_t)(end - p));
        const uint8_t *e = z ? z : end;
        if (e > p) {
            types[n] = p[0] % 8;
            scores[n] = (float)(int8_t)p[0];
            texts[n] = (const char *)p + 1;
            lens[n] = (uint32_t)(e - p - 1);
            if (memchr(p + 1, ' ', lens[n]) && nm < 256) {
                merges[nm] = texts[n];
                mlens[nm++] = lens[n];
            }
            n++;
        }
        p = z ? z + 1 : end;
    }
    spec.n_vocab = n;
    spec.texts = texts;
    spec.text_lens = lens;
    spec.types = types;
    spec.scores = scores;
    spec.merges = merges;
    spec.merge_lens = mlens;
    spec.n_merges = nm;
    cai__tok_spec_defaults(&spec);
    struct cai_tok *t = NULL;
    struct cai_error err;
    if (cai__tok_new(&t, &spec, &err) == 0) {
        check_text(t, text, n_text, false);
        cai__tok_free(t);
    } else {
        REQUIRE(t == NULL && err.code < 0 && err.msg[0]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        make_bpe();
        make_spm();
        for (int k = 0; k < 12; k++)
            REQUIRE(toks[k] != NULL);
        ready = true;
    }
    if (size == 0)
        return 0;
    int sel = data[0] % 13;
    if (sel == 12) {
        hostile_vocab(data + 1, size - 1 > 8 * MAX_TEXT ? 8 * MAX_TEXT : size - 1);
        return 0;
    }
    size_t n = size - 1 > MAX_TEXT ? MAX_TEXT : size - 1;
    const struct cai_tok *t = toks[sel];
    bool round_trip = sel < 10 || (sel == 10 && !memmem(data + 1, n, "\xe2\x96\x81", 3));
    check_text(t, data + 1, n, round_trip);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
/* Replays each file named on the command line. */
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
            fclose(f);
            return 1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
    }
    printf("%d files replayed\n", argc - 1);
    return 0;
}
#endif /* CAI_FUZZ_STANDALONE */
