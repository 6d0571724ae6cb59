/* test_model.c: model loading checks (the malformed-model table) and
 * forward-pass invariants on a tiny random model. */
#include <math.h>
#include <unistd.h>

#include "base/base.h"
#include "coreai.h"
#include "test.h"
#include "tiny_model.h"

static char tmp_path[64];

static int write_tmp(const uint8_t *buf, size_t n)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/coreai-test-%d.gguf", (int)getpid());
    FILE *f = fopen(tmp_path, "wb");
    if (!f)
        return -1;
    fwrite(buf, 1, n, f);
    fclose(f);
    return 0;
}

/* Builds the tiny model with `o`, opens it, returns the open status and the
 * message in err; the model is closed again. */
static int open_tiny(const struct tiny_opts *o, struct cai_error *err, struct cai_model **keep)
{
    uint8_t *buf;
    size_t n;
    if (tiny_model_build(o, &buf, &n) < 0)
        return -1000;
    write_tmp(buf, n);
    cai__free(buf);
    struct cai_model *m = NULL;
    memset(err, 0, sizeof(*err));
    int rc = cai_model_open(&m, tmp_path, NULL, err);
    unlink(tmp_path);
    if (keep)
        *keep = m;
    else
        cai_model_close(m);
    return rc;
}

static void test_tiny_opens(void)
{
    struct tiny_opts o = {0};
    struct cai_error err;
    struct cai_model *m;
    int rc = open_tiny(&o, &err, &m);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    struct cai_model_info in;
    cai_model_get_info(m, &in);
    CHECK_STR(in.arch, "llama");
    CHECK_EQ_INT(in.n_layer, TINY_LAYER);
    CHECK_EQ_INT(in.n_vocab, TINY_VOCAB);
    CHECK_EQ_INT(in.head_dim, 16);
    CHECK_EQ_INT(in.bos, 256);
    cai_model_close(m);
}

struct bad_case {
    const char      *what;
    struct tiny_opts o;
    int              code;
    const char      *needle; /* must appear in the message */
};

static void test_malformed_models(void)
{
    const struct bad_case cases[] = {
        {"missing tensor", {.skip_tensor = "blk.1.ffn_down.weight"}, CAI_EFORMAT,
         "\"blk.1.ffn_down.weight\" is missing"},
        {"missing embedding", {.skip_tensor = "token_embd.weight"}, CAI_EFORMAT,
         "token_embd.weight"},
        {"wrong shape", {.bad_shape = "blk.0.attn_q.weight"}, CAI_EFORMAT,
         "\"blk.0.attn_q.weight\" has shape"},
        {"wrong norm shape", {.bad_shape = "blk.1.ffn_norm.weight"}, CAI_EFORMAT,
         "blk.1.ffn_norm.weight"},
        {"head count 0", {.head_count_zero = true}, CAI_EFORMAT, "attention.head_count"},
        {"head count huge", {.head_count = 0x7fffffff}, CAI_EFORMAT, "attention.head_count"},
        {"heads not dividing width", {.head_count = 6}, CAI_EFORMAT, "attention.head_count"},
        {"kv heads not dividing heads", {.head_count = 4, .head_count_kv = 3}, CAI_EFORMAT,
         "head_count_kv"},
        {"width disagrees with tensors", {.embd = 32}, CAI_EFORMAT, "has shape"},
        {"scores length", {.n_scores = 10}, CAI_EFORMAT, "tokenizer.ggml.scores"},
        {"token types length", {.n_types = 100}, CAI_EFORMAT, "tokenizer.ggml.token_type"},
        {"bos out of range", {.bos = 5000}, CAI_EFORMAT, "bos_token_id"},
        {"unknown architecture", {.arch = "gpt9"}, CAI_EUNSUPPORTED, "gpt9"},
        {"unknown tokenizer", {.tok_model = "bert-ish"}, CAI_EUNSUPPORTED, "tokenizer.ggml.model"},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(cases); i++) {
        struct cai_error err;
        int rc = open_tiny(&cases[i].o, &err, NULL);
        CHECK_MSG(rc == cases[i].code, "%s: rc %d (%s), want %d", cases[i].what, rc, err.msg,
                  cases[i].code);
        CHECK_MSG(strstr(err.msg, cases[i].needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
                  cases[i].what, err.msg, cases[i].needle);
        CHECK_MSG(strstr(err.msg, "/tmp/coreai-test-") != NULL, "%s: message \"%s\" lacks the path",
                  cases[i].what, err.msg);
    }
}

static void test_missing_file(void)
{
    struct cai_model *m = (struct cai_model *)1;
    struct cai_error err = {0};
    CHECK_EQ_INT(cai_model_open(&m, "/nonexistent/x.gguf", NULL, &err), CAI_EIO);
    CHECK(m == NULL);
    CHECK(strstr(err.msg, "/nonexistent/x.gguf") != NULL);
}

static double max_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* Decoding a sequence at once, in chunks, or token by token gives the same
 * logits: the KV cache and the causal mask are consistent. */
static void test_kv_cache_consistency(void)
{
    struct tiny_opts o = {0};
    struct cai_error err;
    struct cai_model *m;
    if (open_tiny(&o, &err, &m) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    const int32_t toks[12] = {72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100};
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 64;
    sp.n_threads = 2;
    struct cai_session *a, *b, *c;
    CHECK_EQ_INT(cai_session_new(&a, m, &sp, &err), 0);
    sp.n_batch = 5;
    sp.n_threads = 1;
    CHECK_EQ_INT(cai_session_new(&b, m, &sp, &err), 0);
    CHECK_EQ_INT(cai_session_new(&c, m, &sp, &err), 0);
    CHECK_EQ_INT(cai_session_decode(a, toks, 12, true), 0);
    CHECK_EQ_INT(cai_session_decode(b, toks, 12, true), 0); /* chunks of 5 */
    for (int i = 0; i < 12; i++) {
        CHECK_EQ_INT(cai_session_decode(c, &toks[i], 1, false), 0);
        const float *la = cai_session_logits(a, i), *lb = cai_session_logits(b, i);
        const float *lc = cai_session_logits(c, -1);
        CHECK(la && lb && lc);
        if (!la || !lb || !lc)
            break;
        CHECK_NEAR(max_diff(la, lb, TINY_VOCAB), 0, 1e-4);
        CHECK_NEAR(max_diff(la, lc, TINY_VOCAB), 0, 1e-4);
        bool finite = true;
        for (int v = 0; v < TINY_VOCAB; v++)
            finite &= isfinite(la[v]);
        CHECK(finite);
    }
    CHECK_EQ_INT(cai_session_n_tokens(c), 12);
    /* Truncate and re-decode: same logits as the first time. */
    cai_session_truncate(c, 6);
    CHECK_EQ_INT(cai_session_decode(c, toks + 6, 6, false), 0);
    CHECK_NEAR(max_diff(cai_session_logits(a, 11), cai_session_logits(c, -1), TINY_VOCAB), 0,
               1e-4);
    /* Bad inputs. */
    int32_t bad = TINY_VOCAB;
    CHECK_EQ_INT(cai_session_decode(c, &bad, 1, false), CAI_ERANGE);
    CHECK(strstr(cai_session_errmsg(c), "out of range") != NULL);
    int32_t many[64] = {0};
    CHECK_EQ_INT(cai_session_decode(c, many, 64, false), CAI_ECTX_FULL);
    CHECK_EQ_INT(cai_session_decode(c, many, 0, false), CAI_EINVAL);
    cai_session_free(a);
    cai_session_free(b);
    cai_session_free(c);
    cai_model_close(m);
}

int main(void)
{
    RUN(test_tiny_opens);
    RUN(test_malformed_models);
    RUN(test_missing_file);
    RUN(test_kv_cache_consistency);
    return test_done();
}
