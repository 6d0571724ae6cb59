/* test_tok.c: tokenizers against llama.cpp, and their edge cases.
 *
 * The golden files (tests/golden/tok_*.txt, from scripts/make_tok_fixtures.py)
 * hold llama.cpp's ids for ~500 strings in both parse_special modes and with
 * add_special, plus its detokenized text. The tokenizer is built from the
 * GGUF file's vocabulary, so those tests skip when the model is absent; the
 * rest runs on small synthetic vocabularies. */
#include "test.h"

#include <stdint.h>

#include "base/base.h"
#include "format/gguf.h"
#include "tok/tok.h"
#include "tok/tok_int.h"

#define SMOLLM2 "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define GEMMA3  "models/gemma-3-270m-q4_k_m.gguf"

/* ---- building a tokenizer from a GGUF file (the loader's job, done here
 * for the test) -------------------------------------------------------------- */

struct gguf_vocab {
    struct cai_gguf    *g;
    struct cai_tok_spec spec;
    const char        **texts;
    uint32_t           *lens;
    float              *scores;
    int32_t            *types;
    const char        **merges;
    uint32_t           *merge_lens;
    char                pre[64];
};

static void gguf_vocab_free(struct gguf_vocab *v)
{
    free(v->texts);
    free(v->lens);
    free(v->scores);
    free(v->types);
    free(v->merges);
    free(v->merge_lens);
    cai__gguf_close(v->g);
    memset(v, 0, sizeof(*v));
}

static void get_id(const struct cai_gguf *g, const char *key, int32_t *id)
{
    uint32_t u;
    if (cai__gguf_get_u32(g, key, false, &u, NULL) == 0)
        *id = (int32_t)u;
}

static int gguf_vocab_load(struct gguf_vocab *v, const char *path, struct cai_error *err)
{
    const struct cai_gguf_kv *kv;
    struct cai_gguf_str       s;
    int                       rc;
    memset(v, 0, sizeof(*v));
    if ((rc = cai__gguf_open(&v->g, path, err)))
        return rc;
    if ((rc = cai__gguf_get_str(v->g, "tokenizer.ggml.model", true, &s, err)))
        return rc;
    v->spec.kind = cai__gguf_str_eq(s, "gpt2")    ? CAI_TOK_BPE
                   : cai__gguf_str_eq(s, "llama") ? CAI_TOK_SPM
                                                  : -1;
    if (cai__gguf_get_str(v->g, "tokenizer.ggml.pre", false, &s, NULL) == 0 &&
        s.len < sizeof(v->pre)) {
        memcpy(v->pre, s.ptr, s.len);
        v->spec.pre = v->pre;
    }
    if ((rc = cai__gguf_get_arr(v->g, "tokenizer.ggml.tokens", true, CAI_GGUF_STRING, &kv, err)))
        return rc;
    uint32_t n = (uint32_t)kv->arr_n;
    v->spec.n_vocab = n;
    v->texts = calloc(n, sizeof(*v->texts));
    v->lens = calloc(n, sizeof(*v->lens));
    for (uint32_t i = 0; i < n; i++) {
        s = cai__gguf_arr_str(kv, i);
        v->texts[i] = s.ptr;
        v->lens[i] = (uint32_t)s.len;
    }
    v->spec.texts = v->texts;
    v->spec.text_lens = v->lens;
    if (cai__gguf_get_arr(v->g, "tokenizer.ggml.scores", false, CAI_GGUF_F32, &kv, NULL) == 0 &&
        kv->arr_n >= n) {
        v->scores = calloc(n, sizeof(*v->scores));
        for (uint32_t i = 0; i < n; i++)
            v->scores[i] = (float)cai__gguf_arr_f64(kv, i);
        v->spec.scores = v->scores;
    }
    if (cai__gguf_get_arr(v->g, "tokenizer.ggml.token_type", false, CAI_GGUF_I32, &kv, NULL) == 0 &&
        kv->arr_n >= n) {
        v->types = calloc(n, sizeof(*v->types));
        for (uint32_t i = 0; i < n; i++)
            v->types[i] = (int32_t)cai__gguf_arr_i64(kv, i);
        v->spec.types = v->types;
    }
    if (cai__gguf_get_arr(v->g, "tokenizer.ggml.merges", false, CAI_GGUF_STRING, &kv, NULL) == 0) {
        uint32_t nm = (uint32_t)kv->arr_n;
        v->merges = calloc(nm ? nm : 1, sizeof(*v->merges));
        v->merge_lens = calloc(nm ? nm : 1, sizeof(*v->merge_lens));
        for (uint32_t i = 0; i < nm; i++) {
            s = cai__gguf_arr_str(kv, i);
            v->merges[i] = s.ptr;
            v->merge_lens[i] = (uint32_t)s.len;
        }
        v->spec.n_merges = nm;
        v->spec.merges = v->merges;
        v->spec.merge_lens = v->merge_lens;
    }
    cai__tok_spec_defaults(&v->spec);
    get_id(v->g, "tokenizer.ggml.bos_token_id", &v->spec.bos);
    get_id(v->g, "tokenizer.ggml.eos_token_id", &v->spec.eos);
    get_id(v->g, "tokenizer.ggml.eot_token_id", &v->spec.eot);
    get_id(v->g, "tokenizer.ggml.eom_token_id", &v->spec.eom);
    get_id(v->g, "tokenizer.ggml.unknown_token_id", &v->spec.unk);
    get_id(v->g, "tokenizer.ggml.seperator_token_id", &v->spec.sep);
    get_id(v->g, "tokenizer.ggml.padding_token_id", &v->spec.pad);
    cai__gguf_get_bool(v->g, "tokenizer.ggml.add_bos_token", false, &v->spec.add_bos, NULL);
    cai__gguf_get_bool(v->g, "tokenizer.ggml.add_eos_token", false, &v->spec.add_eos, NULL);
    cai__gguf_get_bool(v->g, "tokenizer.ggml.add_space_prefix", false, &v->spec.add_space_prefix,
                       NULL);
    return 0;
}

/* pre: a tokenizer.ggml.pre to use instead of the file's, or NULL. */
static struct cai_tok *open_model_tok(const char *path, const char *pre)
{
    struct gguf_vocab v;
    struct cai_error  err = {0};
    struct cai_tok   *t = NULL;
    if (gguf_vocab_load(&v, path, &err) == 0) {
        if (pre) {
            v.spec.pre = pre;
            /* What llama.cpp then assumes, less what the file states. */
            struct cai_tok_spec d = v.spec;
            cai__tok_spec_defaults(&d);
            bool stated;
            if (cai__gguf_get_bool(v.g, "tokenizer.ggml.add_bos_token", false, &stated, NULL))
                v.spec.add_bos = d.add_bos;
        }
        int rc = cai__tok_new(&t, &v.spec, &err);
        if (rc)
            fprintf(stderr, "  tok_new(%s): %s\n", path, err.msg);
    } else {
        fprintf(stderr, "  gguf(%s): %s\n", path, err.msg);
    }
    gguf_vocab_free(&v);
    return t;
}

static bool file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* ---- fixtures ------------------------------------------------------------ */

struct buf {
    uint8_t *p;
    size_t   n;
};

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static struct buf parse_hex(const char *s, size_t n)
{
    struct buf b = {malloc(n / 2 + 1), 0};
    for (size_t i = 0; i + 1 < n; i += 2)
        b.p[b.n++] = (uint8_t)(hexval(s[i]) * 16 + hexval(s[i + 1]));
    return b;
}

struct idv {
    int32_t *v;
    int      n;
};

static struct idv parse_ids(const char *s, size_t n)
{
    struct idv r = {malloc((n / 2 + 1) * sizeof(int32_t)), 0};
    size_t     i = 0;
    while (i < n) {
        long v = 0;
        while (i < n && s[i] != ',')
            v = v * 10 + (s[i++] - '0');
        r.v[r.n++] = (int32_t)v;
        i++;
    }
    return r;
}

static bool ids_equal(const int32_t *a, int na, struct idv b)
{
    return na == b.n && (na == 0 || memcmp(a, b.v, (size_t)na * sizeof(*a)) == 0);
}

static void print_ids(const char *what, const int32_t *v, int n)
{
    fprintf(stderr, "      %s:", what);
    for (int i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", v[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* llama_detokenize's text for ids. */
static struct buf detok_whole(const struct cai_tok *t, const int32_t *ids, int n, bool special)
{
    int        len = cai__tok_detokenize(t, ids, n, special, NULL, 0);
    struct buf b = {malloc(len > 0 ? (size_t)len : 1), 0};
    if (len > 0 && cai__tok_detokenize(t, ids, n, special, (char *)b.p, (size_t)len) == len)
        b.n = (size_t)len;
    return b;
}

/* Streams ids through a detokenizer; checks every chunk is valid UTF-8. */
static struct buf detok_stream(const struct cai_tok *t, const int32_t *ids, int n, bool special,
                               bool *chunks_valid)
{
    struct cai_detok d;
    size_t           cap_chunk = 3 * (cai__tok_max_piece(t) + 4) + 64;
    char            *chunk = malloc(cap_chunk);
    struct buf       b = {malloc(64 + 3 * 64 * (size_t)(n + 1)), 0};
    size_t           cap = 64 + 3 * 64 * (size_t)(n + 1);
    cai__detok_init(&d, t, special);
    *chunks_valid = true;
    for (int i = 0; i <= n; i++) {
        int k = i < n ? cai__detok_push(&d, ids[i], chunk, cap_chunk)
                      : cai__detok_flush(&d, chunk, cap_chunk);
        if (k < 0) {
            *chunks_valid = false;
            continue;
        }
        if (!cai__utf8_is_valid(chunk, (size_t)k))
            *chunks_valid = false;
        while (b.n + (size_t)k > cap)
            b.p = realloc(b.p, cap *= 2);
        memcpy(b.p + b.n, chunk, (size_t)k);
        b.n += (size_t)k;
    }
    free(chunk);
    return b;
}

static bool buf_eq(struct buf a, struct buf b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void run_fixture(const char *fixture, const char *model)
{
    if (!file_exists(model))
        SKIP("%s absent (scripts/get_model.sh / scripts/get_gemma3.sh)", model);
    char            *data = NULL;
    size_t           n_data = 0;
    struct cai_error err;
    CHECK(cai__read_file(fixture, &data, &n_data, &err) == 0);
    if (!data)
        return;
    /* "# pre: NAME": the vocabulary with another pre-tokenizer. */
    char        pre[64] = "";
    const char *pl = strstr(data, "\n# pre: ");
    if (pl) {
        pl += 8;
        size_t n = strcspn(pl, "\n");
        if (n < sizeof(pre)) {
            memcpy(pre, pl, n);
            pre[n] = '\0';
        }
    }
    struct cai_tok *t = open_model_tok(model, pre[0] ? pre : NULL);
    CHECK(t != NULL);
    if (!t) {
        free(data);
        return;
    }

    int     n_cases = 0, ok[7] = {0};
    int32_t *ids = malloc(sizeof(int32_t) * 1 << 20);
    char    *line = data;
    while (line < data + n_data) {
        char  *eol = memchr(line, '\n', (size_t)(data + n_data - line));
        size_t len = eol ? (size_t)(eol - line) : (size_t)(data + n_data - line);
        char  *next = eol ? eol + 1 : data + n_data;
        if (len > 0 && line[0] == '#') {
            if (len > 7 && memcmp(line, "# eog: ", 7) == 0) {
                struct idv eog = parse_ids(line + 7, len - 7);
                int        n_eog = 0;
                for (uint32_t id = 0; id < cai__tok_n_vocab(t); id++)
                    n_eog += cai__tok_is_eog(t, (int32_t)id);
                CHECK_EQ_INT(n_eog, eog.n);
                for (int i = 0; i < eog.n; i++)
                    CHECK_MSG(cai__tok_is_eog(t, eog.v[i]), "id %d should end a generation",
                              eog.v[i]);
                free(eog.v);
            } else if (len > 7 && memcmp(line, "# bos: ", 7) == 0) {
                CHECK_EQ_INT(cai__tok_bos(t), atoi(line + 7));
            } else if (len > 7 && memcmp(line, "# eos: ", 7) == 0) {
                CHECK_EQ_INT(cai__tok_eos(t), atoi(line + 7));
            }
            line = next;
            continue;
        }
        /* Seven tab-separated fields. */
        const char *f[7];
        size_t      fl[7];
        const char *p = line;
        int         nf = 0;
        while (nf < 7) {
            const char *tab = memchr(p, '\t', (size_t)(line + len - p));
            const char *e = tab ? tab : line + len;
            f[nf] = p;
            fl[nf++] = (size_t)(e - p);
            if (!tab)
                break;
            p = tab + 1;
        }
        line = next;
        if (nf != 7)
            continue;
        n_cases++;
        struct buf text = parse_hex(f[0], fl[0]);
        bool       good[7] = {true, true, true, true, true, true, true};
        for (int mode = 0; mode < 3; mode++) {
            struct idv want = parse_ids(f[1 + mode], fl[1 + mode]);
            int        n = cai__tok_encode(t, (const char *)text.p, text.n, mode == 2, mode >= 1,
                                           ids, 1 << 20);
            good[1 + mode] = n >= 0 && ids_equal(ids, n, want);
            if (!good[1 + mode]) {
                fprintf(stderr, "    %s case %d mode %d: '%.*s'\n", fixture, n_cases - 1, mode,
                        (int)CAI_MIN(text.n, 60u), (const char *)text.p);
                print_ids("want", want.v, want.n);
                print_ids("got ", ids, n);
            }
            if (mode < 2) {
                /* Detokenize llama.cpp's ids, so a wrong encode does not hide
                 * a right decode. */
                struct buf want_det = parse_hex(f[4 + mode], fl[4 + mode]);
                struct buf got = detok_whole(t, want.v, want.n, mode == 1);
                good[4 + mode] = buf_eq(got, want_det);
                if (!good[4 + mode])
                    fprintf(stderr, "    %s case %d: detok (special=%d) differs\n", fixture,
                            n_cases - 1, mode);
                free(got.p);
                free(want_det.p);
                if (mode == 1) {
                    struct buf want_utf = parse_hex(f[6], fl[6]);
                    bool       valid;
                    struct buf s = detok_stream(t, want.v, want.n, true, &valid);
                    good[6] = valid && buf_eq(s, want_utf);
                    if (!good[6])
                        fprintf(stderr, "    %s case %d: streaming detok differs\n", fixture,
                                n_cases - 1);
                    free(s.p);
                    free(want_utf.p);
                }
            }
            free(want.v);
        }
        for (int k = 1; k < 7; k++)
            ok[k] += good[k];
        free(text.p);
    }
    fprintf(stderr,
            "  %s: %d cases; match: ids(parse_special=0) %d, ids(parse_special=1) %d, "
            "ids(add_special) %d, detok %d/%d, streaming %d\n",
            fixture, n_cases, ok[1], ok[2], ok[3], ok[4], ok[5], ok[6]);
    CHECK(n_cases >= 300);
    for (int k = 1; k < 7; k++)
        CHECK_EQ_INT(ok[k], n_cases);
    free(ids);
    free(data);
    cai__tok_free(t);
}

static void test_fixture_smollm2(void)
{
    run_fixture("tests/golden/tok_smollm2.txt", SMOLLM2);
}

static void test_fixture_gemma3(void)
{
    run_fixture("tests/golden/tok_gemma3.txt", GEMMA3);
}

/* The SmolLM2 vocabulary under other pre-tokenizers (llama.cpp ran them on a
 * copy of the file with tokenizer.ggml.pre replaced). */
static void test_fixture_pre_llama3(void)
{
    run_fixture("tests/golden/tok_pre_llama-bpe.txt", SMOLLM2);
}

static void test_fixture_pre_qwen2(void)
{
    run_fixture("tests/golden/tok_pre_qwen2.txt", SMOLLM2);
}

static void test_fixture_pre_gpt2(void)
{
    run_fixture("tests/golden/tok_pre_gpt-2.txt", SMOLLM2);
}

static void test_fixture_pre_default(void)
{
    run_fixture("tests/golden/tok_pre_default.txt", SMOLLM2);
}

/* A 100 KB text through the real vocabulary: well under a second. */
static void test_long_input_model(void)
{
    if (!file_exists(SMOLLM2))
        SKIP("%s absent", SMOLLM2);
    struct cai_tok *t = open_model_tok(SMOLLM2, NULL);
    CHECK(t != NULL);
    if (!t)
        return;
    const char *unit = "The quick brown fox, 12345 times! Ünïcödé 你好😀 <|im_end|>\n\t  ";
    size_t      nu = strlen(unit), n = 0;
    char       *text = malloc(100 * 1024 + 128);
    while (n + nu <= 100 * 1024) {
        memcpy(text + n, unit, nu);
        n += nu;
    }
    /* One long word too: no spaces for 20 KB. */
    memset(text + n - 20000, 'a', 20000);
    int64_t t0 = cai__now_ns();
    int     k0 = cai__tok_encode(t, text, n, false, true, NULL, 0);
    int     k1 = cai__tok_encode(t, text, n, false, false, NULL, 0);
    double  secs = (double)(cai__now_ns() - t0) / 1e9;
    fprintf(stderr, "  100 KB, both modes: %d + %d tokens in %.3f s\n", k0, k1, secs);
    CHECK(k0 > 1000 && k1 > k0);
    CHECK(secs < 1.0);
    free(text);
    cai__tok_free(t);
}

/* ---- synthetic vocabularies ---------------------------------------------- */

/* A byte-level BPE vocabulary: 256 byte characters, then tokens made by the
 * merges below, then special tokens. */
struct synth {
    char               *texts[512];
    uint32_t            lens[512];
    int32_t             types[512];
    const char         *merges[64];
    uint32_t            merge_lens[64];
    struct cai_tok_spec spec;
};

static void synth_add(struct synth *s, const char *text, int type)
{
    uint32_t i = s->spec.n_vocab++;
    s->texts[i] = strdup(text);
    s->lens[i] = (uint32_t)strlen(text);
    s->types[i] = type;
}

static void synth_free(struct synth *s)
{
    for (uint32_t i = 0; i < s->spec.n_vocab; i++)
        free(s->texts[i]);
}

/* GPT-2 text of a byte string. */
static void gpt2_text(const char *in, char *out)
{
    size_t o = 0;
    for (const uint8_t *p = (const uint8_t *)in; *p; p++)
        o += (size_t)cai__utf8_encode(cai__byte_to_cpt(*p), (uint8_t *)out + o);
    out[o] = '\0';
}

static void synth_bpe(struct synth *s, const char *pre)
{
    static const char *merged[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
                                      {" ", "w"}, {"o", "r"}, {" w", "or"}, {" wor", "ld"},
                                      {"l", "d"}, {"\xe4", "\xbd"}, {"\xe4\xbd", "\xa0"}};
    memset(s, 0, sizeof(*s));
    s->spec.kind = CAI_TOK_BPE;
    s->spec.pre = pre;
    for (int b = 0; b < 256; b++) {
        char    raw[2] = {(char)b, 0}, txt[8];
        uint8_t u[4];
        int     nu = cai__utf8_encode(cai__byte_to_cpt((uint8_t)b), u);
        memcpy(txt, u, (size_t)nu);
        txt[nu] = '\0';
        (void)raw;
        synth_add(s, txt, CAI_TOKT_NORMAL);
    }
    static char merge_buf[64][32];
    for (size_t i = 0; i < CAI_ARRAY_LEN(merged); i++) {
        char l[16], r[16], both[32];
        gpt2_text(merged[i][0], l);
        gpt2_text(merged[i][1], r);
        snprintf(both, sizeof(both), "%s%s", l, r);
        snprintf(merge_buf[i], sizeof(merge_buf[i]), "%s %s", l, r);
        s->merges[i] = merge_buf[i];
        s->merge_lens[i] = (uint32_t)strlen(merge_buf[i]);
        synth_add(s, both, CAI_TOKT_NORMAL);
    }
    s->spec.n_merges = (uint32_t)CAI_ARRAY_LEN(merged);
    synth_add(s, "<|bos|>", CAI_TOKT_CONTROL);
    synth_add(s, "<|eos|>", CAI_TOKT_CONTROL);
    synth_add(s, "<|im_end|>", CAI_TOKT_CONTROL);
    synth_add(s, "<tag>", CAI_TOKT_USER_DEFINED);
    s->spec.texts = (const char **)s->texts;
    s->spec.text_lens = s->lens;
    s->spec.types = s->types;
    s->spec.merges = s->merges;
    s->spec.merge_lens = s->merge_lens;
    cai__tok_spec_defaults(&s->spec);
    s->spec.bos = (int32_t)s->spec.n_vocab - 4;
    s->spec.eos = (int32_t)s->spec.n_vocab - 3;
}

static struct cai_tok *synth_new(struct synth *s)
{
    struct cai_tok  *t = NULL;
    struct cai_error err = {0};
    int              rc = cai__tok_new(&t, &s->spec, &err);
    if (rc)
        fprintf(stderr, "  tok_new: %s\n", err.msg);
    return t;
}

static void test_bpe_synthetic(void)
{
    struct synth s;
    synth_bpe(&s, "gpt-2");
    struct cai_tok *t = synth_new(&s);
    CHECK(t != NULL);
    if (!t) {
        synth_free(&s);
        return;
    }
    int32_t ids[64];
    char    hello[16], world[16];
    gpt2_text("hello", hello);
    gpt2_text(" world", world);
    int n = cai__tok_encode(t, "hello world", 11, false, false, ids, 64);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[0], cai__tok_find(t, hello, strlen(hello)));
    CHECK_EQ_INT(ids[1], cai__tok_find(t, world, strlen(world)));
    /* n_max smaller than needed: the total, and only n_max written. */
    ids[0] = ids[1] = -7;
    CHECK_EQ_INT(cai__tok_encode(t, "hello world", 11, false, false, ids, 1), 2);
    CHECK(ids[0] >= 0 && ids[1] == -7);
    /* Special tokens: control ones only with parse_special, user-defined always. */
    const char *txt = "hello<|im_end|><tag>";
    int         n0 = cai__tok_encode(t, txt, strlen(txt), false, false, ids, 64);
    CHECK(n0 > 3 && ids[n0 - 1] == cai__tok_find(t, "<tag>", 5));
    int n1 = cai__tok_encode(t, txt, strlen(txt), false, true, ids, 64);
    CHECK_EQ_INT(n1, 3);
    CHECK_EQ_INT(ids[1], cai__tok_find(t, "<|im_end|>", 10));
    CHECK(cai__tok_is_eog(t, ids[1]));
    CHECK(cai__tok_is_eog(t, s.spec.eos));
    CHECK(!cai__tok_is_eog(t, ids[0]));
    CHECK(!cai__tok_is_eog(t, -1) && !cai__tok_is_eog(t, 1 << 30));
    /* Pieces. */
    char p[64];
    CHECK_EQ_INT(cai__tok_piece(t, ids[0], false, p, sizeof(p)), 5);
    CHECK(memcmp(p, "hello", 5) == 0);
    CHECK_EQ_INT(cai__tok_piece(t, ids[1], false, p, sizeof(p)), 0);
    CHECK_EQ_INT(cai__tok_piece(t, ids[1], true, p, sizeof(p)), 10);
    CHECK_EQ_INT(cai__tok_piece(t, -1, true, p, sizeof(p)), CAI_ERANGE);
    CHECK_EQ_INT(cai__tok_piece(t, (int32_t)s.spec.n_vocab, true, p, sizeof(p)), CAI_ERANGE);
    uint32_t nt;
    CHECK(cai__tok_text(t, ids[1], &nt) != NULL && nt == 10);
    CHECK(cai__tok_text(t, -1, &nt) == NULL);
    CHECK_EQ_INT(cai__tok_find(t, "nope", 4), -1);
    CHECK_EQ_INT(cai__tok_n_vocab(t), s.spec.n_vocab);
    cai__tok_free(t);
    synth_free(&s);
}

static void test_empty_and_bos_eos(void)
{
    struct synth s;
    synth_bpe(&s, NULL);
    s.spec.add_bos = true;
    s.spec.add_eos = true;
    struct cai_tok *t = synth_new(&s);
    CHECK(t != NULL);
    if (t) {
        int32_t ids[8];
        CHECK_EQ_INT(cai__tok_encode(t, "", 0, false, true, ids, 8), 0);
        CHECK_EQ_INT(cai__tok_encode(t, NULL, 0, false, false, NULL, 0), 0);
        CHECK_EQ_INT(cai__tok_encode(t, "", 0, true, true, ids, 8), 2);
        CHECK(ids[0] == s.spec.bos && ids[1] == s.spec.eos);
        int n = cai__tok_encode(t, "hello", 5, true, false, ids, 8);
        CHECK_EQ_INT(n, 3);
        CHECK(ids[0] == cai__tok_bos(t) && ids[2] == cai__tok_eos(t));
        CHECK_EQ_INT(cai__tok_encode(t, NULL, 3, false, false, ids, 8), CAI_EINVAL);
        CHECK_EQ_INT(cai__tok_encode(t, "x", 1, false, false, NULL, 4), CAI_EINVAL);
        CHECK_EQ_INT(cai__tok_encode(t, "x", 1, false, false, ids, -1), CAI_EINVAL);
        cai__tok_free(t);
    }
    synth_free(&s);
}

static void expect_build_error(struct synth *s, const char *why)
{
    struct cai_tok  *t = NULL;
    struct cai_error err = {0};
    int              rc = cai__tok_new(&t, &s->spec, &err);
    CHECK_MSG(rc == CAI_EFORMAT && t == NULL, "%s: rc %d", why, rc);
    CHECK_MSG(err.msg[0] != '\0', "%s: no message", why);
    cai__tok_free(t);
}

static void test_build_errors(void)
{
    struct synth s;
    synth_bpe(&s, "gpt-2");
    s.spec.bos = (int32_t)s.spec.n_vocab;
    expect_build_error(&s, "bos out of range");
    s.spec.bos = -1;
    s.spec.eot = -5;
    expect_build_error(&s, "eot negative");
    s.spec.eot = -1;
    s.spec.unk = 1 << 30;
    expect_build_error(&s, "unk out of range");
    s.spec.unk = -1;
    s.spec.add_bos = true;
    expect_build_error(&s, "add_bos without bos");
    s.spec.add_bos = false;
    s.spec.pre = "no-such-pre";
    expect_build_error(&s, "unknown pre");
    s.spec.pre = NULL;
    s.spec.kind = 99;
    expect_build_error(&s, "unknown kind");
    s.spec.kind = CAI_TOK_BPE;
    const char *bad_merge = "zz qq";
    s.merges[0] = bad_merge;
    s.merge_lens[0] = 5;
    expect_build_error(&s, "merge with unknown tokens");
    s.merges[0] = "hello";
    expect_build_error(&s, "merge without space");
    synth_free(&s);

    synth_bpe(&s, "gpt-2");
    free(s.texts[266]);
    s.texts[266] = strdup("a");
    s.lens[266] = 1;
    expect_build_error(&s, "duplicate token");
    synth_free(&s);

    struct cai_tok *t = NULL;
    CHECK_EQ_INT(cai__tok_new(&t, NULL, NULL), CAI_EINVAL);
    struct cai_tok_spec empty = {.kind = CAI_TOK_BPE};
    CHECK_EQ_INT(cai__tok_new(&t, &empty, NULL), CAI_EFORMAT);
    cai__tok_free(NULL);
}

/* Multi-byte characters split over byte tokens come out whole. */
static void test_detok_never_splits(void)
{
    struct synth s;
    synth_bpe(&s, "gpt-2");
    struct cai_tok *t = synth_new(&s);
    CHECK(t != NULL);
    if (!t) {
        synth_free(&s);
        return;
    }
    const char      *text = "h\xc3\xa9llo \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87!";
    size_t           n = strlen(text);
    struct cai_detok d;
    char             out[128], all[256];
    size_t           n_all = 0;
    cai__detok_init(&d, t, false);
    for (size_t i = 0; i < n; i++) {
        /* Each byte's own token: the worst case for a streaming decoder. */
        int k = cai__detok_push(&d, t->byte_tok[(uint8_t)text[i]], out, sizeof(out));
        CHECK(k >= 0);
        if (k < 0)
            break;
        CHECK(cai__utf8_is_valid(out, (size_t)k));
        memcpy(all + n_all, out, (size_t)k);
        n_all += (size_t)k;
        if ((uint8_t)text[i] == 0xf0 || (uint8_t)text[i] == 0x9f)
            CHECK_EQ_INT(k, 0); /* held back: the emoji is not complete */
    }
    CHECK_EQ_INT(cai__detok_flush(&d, out, sizeof(out)), 0);
    CHECK(n_all == n && memcmp(all, text, n) == 0);

    /* Invalid bytes become U+FFFD; an unfinished character too, at flush. */
    cai__detok_init(&d, t, false);
    CHECK_EQ_INT(cai__detok_push(&d, t->byte_tok[0xff], out, sizeof(out)), 3);
    CHECK(memcmp(out, "\xef\xbf\xbd", 3) == 0);
    CHECK_EQ_INT(cai__detok_push(&d, t->byte_tok[0xe4], out, sizeof(out)), 0);
    CHECK_EQ_INT(cai__detok_push(&d, t->byte_tok[0xb8], out, sizeof(out)), 0);
    CHECK_EQ_INT(cai__detok_push(&d, t->byte_tok['a'], out, sizeof(out)), 4);
    CHECK(memcmp(out, "\xef\xbf\xbd" "a", 4) == 0);
    CHECK_EQ_INT(cai__detok_push(&d, t->byte_tok[0xf0], out, sizeof(out)), 0);
    CHECK_EQ_INT(cai__detok_flush(&d, out, sizeof(out)), 3);
    CHECK_EQ_INT(cai__detok_flush(&d, out, sizeof(out)), 0);
    /* Too small a buffer fails and changes nothing. */
    cai__detok_init(&d, t, true);
    int32_t im_end = cai__tok_find(t, "<|im_end|>", 10);
    CHECK_EQ_INT(cai__detok_push(&d, im_end, out, 4), CAI_ERANGE);
    CHECK_EQ_INT(cai__detok_push(&d, im_end, out, sizeof(out)), 10);
    CHECK_EQ_INT(cai__detok_push(&d, -3, out, sizeof(out)), CAI_ERANGE);
    cai__tok_free(t);
    synth_free(&s);
}

static void test_invalid_utf8_input(void)
{
    struct synth s;
    synth_bpe(&s, "smollm");
    struct cai_tok *t = synth_new(&s);
    CHECK(t != NULL);
    if (!t) {
        synth_free(&s);
        return;
    }
    static const char *bad[] = {"\xff", "\x80\x80", "\xc3", "a\xe4\xbd", "\xf5\x80\x80\x80",
                                "\xf4\x90\x80\x80", "\xed\xa0\x80", "\xc0\xaf 123 \xfe"};
    int32_t ids[64];
    for (size_t i = 0; i < CAI_ARRAY_LEN(bad); i++) {
        int n = cai__tok_encode(t, bad[i], strlen(bad[i]), false, true, ids, 64);
        CHECK(n > 0 && n <= 64);
        /* Invalid bytes are read as U+FFFD, as llama.cpp does. */
        struct cai_detok d;
        char             out[256];
        cai__detok_init(&d, t, true);
        for (int k = 0; k < n; k++) {
            int m = cai__detok_push(&d, ids[k], out, sizeof(out));
            CHECK(m >= 0 && cai__utf8_is_valid(out, (size_t)m));
        }
    }
    cai__tok_free(t);
    synth_free(&s);
}

static void test_pretok_names(void)
{
    static const char *names[] = {"default", "gpt-2", "llama-bpe", "qwen2", "smollm", "qwen35",
                                  "falcon", "starcoder", "dbrx", "laguna"};
    for (size_t i = 0; i < CAI_ARRAY_LEN(names); i++) {
        struct synth s;
        synth_bpe(&s, names[i]);
        struct cai_tok *t = synth_new(&s);
        CHECK_MSG(t != NULL, "%s", names[i]);
        if (t) {
            const char *text = "hello world 12345 it's IT'S \xe4\xbd\xa0 !!\n\n  x\r\n";
            int32_t     ids[128];
            int         n = cai__tok_encode(t, text, strlen(text), false, false, ids, 128);
            CHECK(n > 0);
            /* Every byte survives the round trip. */
            char   out[256];
            size_t o = 0;
            for (int k = 0; k < n; k++)
                o += (size_t)cai__tok_piece(t, ids[k], false, out + o, sizeof(out) - o);
            CHECK_MSG(o == strlen(text) && memcmp(out, text, o) == 0, "%s round trip", names[i]);
            cai__tok_free(t);
        }
        synth_free(&s);
    }
    struct cai_tok_spec spec = {.kind = CAI_TOK_BPE, .pre = "llama-bpe", .n_vocab = 100};
    cai__tok_spec_defaults(&spec);
    CHECK(spec.add_bos && spec.bos == 11);
    spec.kind = CAI_TOK_SPM;
    cai__tok_spec_defaults(&spec);
    CHECK(spec.add_bos && spec.bos == 1 && spec.eos == 2 && spec.unk == 0 && spec.add_space_prefix);
}

/* SentencePiece: scores pick the merges, unknown bytes fall back to <0xNN>. */
static void test_spm_synthetic(void)
{
    struct synth s;
    memset(&s, 0, sizeof(s));
    float scores[512] = {0};
    s.spec.kind = CAI_TOK_SPM;
    synth_add(&s, "<unk>", CAI_TOKT_UNKNOWN);
    synth_add(&s, "<s>", CAI_TOKT_CONTROL);
    synth_add(&s, "</s>", CAI_TOKT_CONTROL);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        synth_add(&s, name, CAI_TOKT_BYTE);
    }
    static const struct {
        const char *text;
        float       score;
    } pieces[] = {{"\xe2\x96\x81", -1.0f}, {"h", -2.0f}, {"e", -2.0f}, {"l", -2.0f}, {"o", -2.0f},
                  {"\xe2\x96\x81h", -3.0f}, {"ll", -1.5f}, {"he", -4.0f}, {"\xe2\x96\x81he", -2.5f},
                  {"llo", -1.2f}, {"\xe2\x96\x81hello", -0.5f}, {"w", -2.0f}};
    for (size_t i = 0; i < CAI_ARRAY_LEN(pieces); i++) {
        scores[s.spec.n_vocab] = pieces[i].score;
        synth_add(&s, pieces[i].text, CAI_TOKT_NORMAL);
    }
    synth_add(&s, "<start_of_turn>", CAI_TOKT_CONTROL);
    s.spec.texts = (const char **)s.texts;
    s.spec.text_lens = s.lens;
    s.spec.types = s.types;
    s.spec.scores = scores;
    cai__tok_spec_defaults(&s.spec);
    struct cai_tok *t = synth_new(&s);
    CHECK(t != NULL);
    if (!t) {
        synth_free(&s);
        return;
    }
    int32_t ids[32];
    int     n = cai__tok_encode(t, "hello", 5, true, false, ids, 32);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], cai__tok_find(t, "\xe2\x96\x81hello", 8));
    /* "hw!" : no token for "!", so its byte token. */
    n = cai__tok_encode(t, "hw!", 3, false, false, ids, 32);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(ids[2], cai__tok_find(t, "<0x21>", 6));
    /* A space after a special token gets the prefix again. */
    n = cai__tok_encode(t, "<start_of_turn>hello", 20, false, true, ids, 32);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[1], cai__tok_find(t, "\xe2\x96\x81hello", 8));
    /* Decoding: the first piece's space is dropped, bytes are bytes. */
    struct cai_detok d;
    char             out[64];
    cai__detok_init(&d, t, false);
    CHECK_EQ_INT(cai__detok_push(&d, cai__tok_find(t, "\xe2\x96\x81hello", 8), out, 64), 5);
    CHECK(memcmp(out, "hello", 5) == 0);
    CHECK_EQ_INT(cai__detok_push(&d, cai__tok_find(t, "\xe2\x96\x81hello", 8), out, 64), 6);
    CHECK(memcmp(out, " hello", 6) == 0);
    CHECK_EQ_INT(cai__detok_push(&d, cai__tok_find(t, "<0xC3>", 6), out, 64), 0);
    CHECK_EQ_INT(cai__detok_push(&d, cai__tok_find(t, "<0xA9>", 6), out, 64), 2);
    CHECK(memcmp(out, "\xc3\xa9", 2) == 0);
    CHECK_EQ_INT(cai__detok_push(&d, 0, out, 64), 0); /* <unk> is special */
    cai__tok_free(t);
    synth_free(&s);
}

/* Every allocation failing in turn: clean errors, no leaks (under ASan). */
static void test_out_of_memory(void)
{
    struct synth s;
    synth_bpe(&s, "llama-bpe");
    int ok_build = 0;
    for (long k = 1; k < 200 && !ok_build; k++) {
        struct cai_tok *t = NULL;
        cai__alloc_fail_after(k);
        int rc = cai__tok_new(&t, &s.spec, NULL);
        cai__alloc_fail_after(0);
        CHECK(rc == 0 || rc == CAI_ENOMEM);
        CHECK((rc == 0) == (t != NULL));
        if (t) {
            ok_build = 1;
            for (long j = 1; j < 60; j++) {
                int32_t     ids[64];
                const char *text = "hello <tag> world 123 \xff";
                cai__alloc_fail_after(j);
                int n = cai__tok_encode(t, text, strlen(text), true, true, ids, 64);
                cai__alloc_fail_after(0);
                CHECK(n > 0 || n == CAI_ENOMEM);
            }
        }
        cai__tok_free(t);
    }
    CHECK(ok_build);
    synth_free(&s);
}

/* The synthetic vocabulary on a long input: linear, not quadratic. */
static void test_long_input_synthetic(void)
{
    struct synth s;
    synth_bpe(&s, "llama-bpe");
    struct cai_tok *t = synth_new(&s);
    CHECK(t != NULL);
    if (!t) {
        synth_free(&s);
        return;
    }
    size_t n = 100 * 1024;
    char  *text = malloc(n);
    for (size_t i = 0; i < n; i++)
        text[i] = "hello world<tag>"[i % 16];
    int64_t t0 = cai__now_ns();
    int     k = cai__tok_encode(t, text, n, false, false, NULL, 0);
    memset(text, 'l', n); /* one 100 KB word */
    int    k2 = cai__tok_encode(t, text, n, false, false, NULL, 0);
    double secs = (double)(cai__now_ns() - t0) / 1e9;
    CHECK(k > 0 && k2 == (int)n / 2);
    CHECK(secs < 1.0);
    free(text);
    cai__tok_free(t);
    synth_free(&s);
}

int main(void)
{
    RUN(test_bpe_synthetic);
    RUN(test_empty_and_bos_eos);
    RUN(test_build_errors);
    RUN(test_detok_never_splits);
    RUN(test_invalid_utf8_input);
    RUN(test_pretok_names);
    RUN(test_spm_synthetic);
    RUN(test_out_of_memory);
    RUN(test_long_input_synthetic);
    RUN(test_fixture_smollm2);
    RUN(test_fixture_gemma3);
    RUN(test_fixture_pre_llama3);
    RUN(test_fixture_pre_qwen2);
    RUN(test_fixture_pre_gpt2);
    RUN(test_fixture_pre_default);
    RUN(test_long_input_model);
    return test_done();
}
