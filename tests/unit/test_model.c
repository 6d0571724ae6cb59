/* test_model.c: model loading checks (the malformed-model table) and
 * forward-pass invariants on a tiny random model. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/base.h"
#include "coreai.h"
#include "sample/sample.h"
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

/* The tiny model with weights of `type` and a session on it (n_ctx,
 * n_threads); false (with the failure recorded) when either fails. */
static bool tiny_session(uint32_t type, int n_ctx, int n_threads, struct cai_model **m,
                         struct cai_session **s)
{
    struct tiny_opts o = {.weight_type = type};
    struct cai_error err;
    *s = NULL;
    if (open_tiny(&o, &err, m) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return false;
    }
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = n_ctx;
    sp.n_threads = n_threads;
    if (cai_session_new(s, *m, &sp, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        cai_model_close(*m);
        return false;
    }
    return true;
}

static const struct cai_profile_entry *prof_find(const struct cai_profile_entry *e, int n,
                                                 int layer, const char *op)
{
    for (int i = 0; i < n; i++)
        if (e[i].layer == layer && !strcmp(e[i].op, op))
            return &e[i];
    return NULL;
}

/* The profiler: every layer's operations with their call counts, bytes and
 * arithmetic as the shapes give them; the fused matmuls' per-tensor shares
 * summing to their parent's time; sampling timed through
 * cai_session_sample; nothing recorded when it is off. */
static void test_profile(void)
{
    const uint32_t types[2] = {CAI_TYPE_F32, CAI_TYPE_Q8_0};
    for (int ti = 0; ti < 2; ti++) {
        struct cai_error err;
        struct cai_model *m;
        struct cai_session *s;
        if (!tiny_session(types[ti], 32, 2, &m, &s))
            return;
        cai_model_wait_packed(m);
        struct cai_sampler *smp;
        CHECK_EQ_INT(cai_sampler_new(&smp, m, NULL, &err), 0);
        /* No logits yet: sampling fails with a message. */
        CHECK(cai_session_sample(s, smp) < 0);
        CHECK(strstr(cai_session_errmsg(s), "no logits") != NULL);
        CHECK_EQ_INT(cai_session_profile_read(s, NULL, 0), 0); /* off */

        CHECK_EQ_INT(cai_session_profile_enable(s, true), 0);
        const int32_t toks[6] = {72, 101, 108, 108, 111, 44};
        CHECK_EQ_INT(cai_session_decode(s, toks, 6, false), 0); /* call 1: 6 tokens */
        int32_t next = cai_session_sample(s, smp);
        CHECK(next >= 0 && next < TINY_VOCAB);
        CHECK_EQ_INT(cai_session_decode(s, &next, 1, false), 0); /* call 2: 1 token */
        struct cai_profile_entry e[128];
        const int n = cai_session_profile_read(s, e, 128);
        CHECK(n > 0 && n <= 128);
        const int hd = TINY_EMBD / 4, q_dim = 4 * hd, kv_dim = 2 * hd, n_tok = 7;
        static const char *ops[] = {"attn_norm", "matmul_qkv", "rope_kv", "attention",
                                    "matmul_attn_out", "ffn_norm", "matmul_gate_up",
                                    "silu_mul", "matmul_down", "residual", "attn_q",
                                    "attn_k", "attn_v", "ffn_gate", "ffn_up"};
        for (int l = 0; l < TINY_LAYER; l++)
            for (size_t k = 0; k < CAI_ARRAY_LEN(ops); k++) {
                const struct cai_profile_entry *r = prof_find(e, n, l, ops[k]);
                CHECK_MSG(r && r->calls == 2 && r->ms >= 0, "layer %d %s", l, ops[k]);
            }
        /* Per-tensor rows: own flops, parent's sums, time split of the parent. */
        const int64_t out_rows[5] = {q_dim, kv_dim, kv_dim, TINY_FF, TINY_FF};
        const char *parts[5] = {"attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"};
        for (int l = 0; l < TINY_LAYER; l++) {
            for (int g = 0; g < 2; g++) {
                const struct cai_profile_entry *par =
                    prof_find(e, n, l, g ? "matmul_gate_up" : "matmul_qkv");
                if (!par)
                    break;
                CHECK(par->part_of == NULL);
                double ms = 0;
                uint64_t bytes = 0, flops = 0;
                for (int k = g ? 3 : 0; k < (g ? 5 : 3); k++) {
                    const struct cai_profile_entry *r = prof_find(e, n, l, parts[k]);
                    if (!r)
                        continue;
                    CHECK(r->part_of && !strcmp(r->part_of, par->op));
                    /* the last layer's feed-forward: only the rows with logits */
                    const int rows = g && l == TINY_LAYER - 1 ? 2 : n_tok;
                    CHECK_EQ_INT(r->flops, (uint64_t)(2 * TINY_EMBD * out_rows[k] * rows));
                    ms += r->ms;
                    bytes += r->bytes;
                    flops += r->flops;
                }
                CHECK_EQ_INT(bytes, par->bytes);
                CHECK_EQ_INT(flops, par->flops);
                /* shares are whole nanoseconds rounded down, one per call */
                CHECK_MSG(ms <= par->ms + 1e-9 && ms >= par->ms - 1e-5 * 2 * 3,
                          "layer %d: parts %.6f ms of %.6f", l, ms, par->ms);
            }
        }
        const struct cai_profile_entry *smpl = prof_find(e, n, -1, "sample");
        CHECK(smpl && smpl->calls == 1 && smpl->bytes == (uint64_t)TINY_VOCAB * 4u);
        const struct cai_profile_entry *att = prof_find(e, n, 0, "attention");
        CHECK(att && att->flops == (uint64_t)(6 * 7 / 2 + 7) * 4u * (uint64_t)q_dim);
        /* the last layer attends for the last token of each call: 6 + 7 positions */
        att = prof_find(e, n, TINY_LAYER - 1, "attention");
        CHECK(att && att->flops == (uint64_t)(6 + 7) * 4u * (uint64_t)q_dim);
        CHECK(prof_find(e, n, -1, "matmul_output") != NULL);
        /* Off again: nothing. */
        CHECK_EQ_INT(cai_session_profile_enable(s, false), 0);
        CHECK_EQ_INT(cai_session_profile_read(s, e, 128), 0);
        cai_sampler_free(smp);
        cai_session_free(s);
        cai_model_close(m);
    }
}

/* Decode attention split over the pool (from COREAI_ATT_SPLIT positions on)
 * gives the per-head path's logits bit for bit, at 1 and 3 threads, on f32
 * and Q8_0 weights, at every position from 1 to 150 (the score blocks of
 * 128 positions and the value blocks both end inside the context). */
static void test_att_split_exact(void)
{
    const uint32_t types[2] = {CAI_TYPE_F32, CAI_TYPE_Q8_0};
    for (int ti = 0; ti < 2; ti++)
        for (int nt = 1; nt <= 3; nt += 2) {
            struct cai_error err;
            struct cai_model *m;
            struct cai_session *a, *b;
            setenv("COREAI_ATT_SPLIT", "0", 1); /* never */
            if (!tiny_session(types[ti], 160, nt, &m, &a))
                return;
            setenv("COREAI_ATT_SPLIT", "1", 1); /* from the first position */
            struct cai_session_params sp = cai_session_params_default();
            sp.n_ctx = 160;
            sp.n_threads = nt;
            CHECK_EQ_INT(cai_session_new(&b, m, &sp, &err), 0);
            unsetenv("COREAI_ATT_SPLIT");
            uint32_t r = 99;
            int bad = -1;
            for (int i = 0; i < 150 && bad < 0; i++) {
                r = r * 1664525u + 1013904223u;
                const int32_t tok = (int32_t)((r >> 8) % 256);
                CHECK_EQ_INT(cai_session_decode(a, &tok, 1, false), 0);
                CHECK_EQ_INT(cai_session_decode(b, &tok, 1, false), 0);
                const float *la = cai_session_logits(a, -1), *lb = cai_session_logits(b, -1);
                if (!la || !lb || memcmp(la, lb, TINY_VOCAB * sizeof(float)) != 0)
                    bad = i;
            }
            CHECK_MSG(bad < 0, "type %u, %d threads: logits differ at position %d", types[ti], nt,
                      bad);
            cai_session_free(a);
            cai_session_free(b);
            cai_model_close(m);
        }
}

static void count_rows(void *user, int layer, int pos0, int n_tok, int n_embd, const float *x)
{
    (void)layer, (void)pos0, (void)n_embd, (void)x;
    *(int *)user += n_tok;
}

/* The last layer computes only the rows whose logits are wanted (and
 * nothing past the KV write for a chunk that wants none): the last row's
 * logits, and the next token's after it, have the same bits as a pass that
 * keeps every row's logits, and as one with a layer hook (which keeps every
 * row), over prompts of one to three chunks. */
static void test_last_rows_exact(void)
{
    const uint32_t types[3] = {CAI_TYPE_F32, CAI_TYPE_Q8_0, CAI_TYPE_Q4_0};
    const int lens[3] = {2, 17, 40};
    for (int ti = 0; ti < 3; ti++)
        for (int nt = 1; nt <= 2; nt++) {
            struct tiny_opts o = {.weight_type = types[ti]};
            struct cai_error err;
            struct cai_model *m;
            if (open_tiny(&o, &err, &m) != 0) {
                CHECK_MSG(0, "%s", err.msg);
                return;
            }
            struct cai_session_params sp = cai_session_params_default();
            sp.n_ctx = 64;
            sp.n_batch = 16;
            sp.n_threads = nt;
            for (int li = 0; li < 3; li++) {
                const int n = lens[li];
                int32_t tok[41];
                uint32_t r = 7u + (uint32_t)n;
                for (int i = 0; i <= n; i++) {
                    r = r * 1664525u + 1013904223u;
                    tok[i] = (int32_t)((r >> 8) % 256);
                }
                struct cai_session *s[3];
                int rows = 0;
                for (int k = 0; k < 3; k++)
                    CHECK_EQ_INT(cai_session_new(&s[k], m, &sp, &err), 0);
                cai_session_set_layer_hook(s[2], count_rows, &rows);
                CHECK_EQ_INT(cai_session_decode(s[0], tok, n, true), 0);
                CHECK_EQ_INT(cai_session_decode(s[1], tok, n, false), 0);
                CHECK_EQ_INT(cai_session_decode(s[2], tok, n, false), 0);
                CHECK_EQ_INT(rows, n * (TINY_LAYER + 1));
                const float *l0 = cai_session_logits(s[0], n - 1);
                for (int k = 1; k < 3; k++) {
                    const float *lk = cai_session_logits(s[k], -1);
                    CHECK_MSG(l0 && lk && memcmp(l0, lk, TINY_VOCAB * sizeof(float)) == 0,
                              "type %u, %d threads, %d tokens: last row differs (session %d)",
                              types[ti], nt, n, k);
                }
                for (int k = 0; k < 3; k++)
                    CHECK_EQ_INT(cai_session_decode(s[k], &tok[n], 1, false), 0);
                l0 = cai_session_logits(s[0], -1);
                for (int k = 1; k < 3; k++) {
                    const float *lk = cai_session_logits(s[k], -1);
                    CHECK_MSG(l0 && lk && memcmp(l0, lk, TINY_VOCAB * sizeof(float)) == 0,
                              "type %u, %d threads, %d tokens: next token differs (session %d)",
                              types[ti], nt, n, k);
                }
                for (int k = 0; k < 3; k++)
                    cai_session_free(s[k]);
            }
            cai_model_close(m);
        }
}

/* Gemma 3's sliding window: with every layer sliding (window 8, 2 layers:
 * the last token sees 14 positions back at most), two 40-token sequences
 * that differ only in their first two tokens end in the same logits, bit for
 * bit, on the batch path, the single-token path and the split decode path;
 * with the second layer global (period 2), or no window, they differ. */
static void gemma3_last_logits_o(struct tiny_opts o, const int32_t *tok, int n, int n_batch_tok,
                                 float *out)
{
    struct cai_error err;
    struct cai_model *m;
    tiny_rng = 777; /* the same weights for every call */
    if (open_tiny(&o, &err, &m) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 64;
    sp.n_threads = 2;
    struct cai_session *s;
    CHECK_EQ_INT(cai_session_new(&s, m, &sp, &err), 0);
    CHECK_EQ_INT(cai_session_decode(s, tok, n_batch_tok, false), 0);
    for (int i = n_batch_tok; i < n; i++)
        CHECK_EQ_INT(cai_session_decode(s, &tok[i], 1, false), 0);
    const float *l = cai_session_logits(s, -1);
    CHECK(l != NULL);
    if (l)
        memcpy(out, l, TINY_VOCAB * sizeof(float));
    cai_session_free(s);
    cai_model_close(m);
}

static void gemma3_last_logits(uint32_t swa, uint32_t period, const int32_t *tok, int n,
                               int n_batch_tok, float *out)
{
    struct tiny_opts o = {.arch = "gemma3", .swa = swa, .swa_period = period};
    gemma3_last_logits_o(o, tok, n, n_batch_tok, out);
}

static void test_gemma3_window(void)
{
    int32_t a[40], b[40];
    uint32_t r = 5;
    for (int i = 0; i < 40; i++) {
        r = r * 1664525u + 1013904223u;
        a[i] = b[i] = (int32_t)((r >> 8) % 256);
    }
    b[0] = (a[0] + 1) % 256;
    b[1] = (a[1] + 7) % 256;
    static float la[TINY_VOCAB], lb[TINY_VOCAB];
    const int splits[3] = {40, 20, 1}; /* one batch; batch + 20 single; all single */
    for (int k = 0; k < 3; k++)
        for (int split = 0; split < 2; split++) {
            if (split)
                setenv("COREAI_ATT_SPLIT", "1", 1); /* decode in three passes */
            gemma3_last_logits(8, 0, a, 40, splits[k], la);
            gemma3_last_logits(8, 0, b, 40, splits[k], lb);
            CHECK_MSG(memcmp(la, lb, sizeof(la)) == 0, "all sliding, %d batched, split %d: logits "
                      "depend on tokens outside the window", splits[k], split);
            gemma3_last_logits(8, 2, a, 40, splits[k], la);
            gemma3_last_logits(8, 2, b, 40, splits[k], lb);
            CHECK_MSG(memcmp(la, lb, sizeof(la)) != 0, "a global layer: logits should differ");
            unsetenv("COREAI_ATT_SPLIT");
        }
    gemma3_last_logits(0, 0, a, 40, 40, la);
    gemma3_last_logits(0, 0, b, 40, 40, lb);
    CHECK(memcmp(la, lb, sizeof(la)) != 0);
    /* the pattern as one bool per layer: {1, 0} is period 2, {1, 1} period 0 */
    static const uint8_t p10[2] = {1, 0}, p11[2] = {1, 1};
    struct tiny_opts o = {.arch = "gemma3", .swa = 8, .swa_layers = p10};
    gemma3_last_logits(8, 2, a, 40, 40, la);
    gemma3_last_logits_o(o, a, 40, 40, lb);
    CHECK(memcmp(la, lb, sizeof(la)) == 0);
    o.swa_layers = p11;
    gemma3_last_logits(8, 0, a, 40, 40, la);
    gemma3_last_logits_o(o, a, 40, 40, lb);
    CHECK(memcmp(la, lb, sizeof(la)) == 0);
    gemma3_last_logits(8, 2, a, 40, 40, lb); /* and the two patterns differ */
    CHECK(memcmp(la, lb, sizeof(la)) != 0);
}

/* A sliding-window pattern array whose length is not the layer count is
 * refused with the key's name. */
static void test_gemma3_bad_pattern(void)
{
    static const uint8_t p3[3] = {1, 0, 1};
    struct tiny_opts o = {.arch = "gemma3", .swa = 8, .swa_layers = p3, .swa_layers_n = 3};
    struct cai_error err;
    CHECK(open_tiny(&o, &err, NULL) == CAI_EFORMAT);
    CHECK(strstr(err.msg, "sliding_window_pattern") != NULL);
}

/* cai_session_sample refuses a sampler made for another vocabulary. */
static void test_sample_vocab_mismatch(void)
{
    struct cai_error err;
    struct cai_model *m;
    struct cai_session *s;
    if (!tiny_session(CAI_TYPE_F32, 16, 1, &m, &s))
        return;
    const int32_t tok = 72;
    CHECK_EQ_INT(cai_session_decode(s, &tok, 1, false), 0);
    CHECK(cai_session_sample(s, NULL) < 0);
    struct cai_sampler *smp;
    const struct cai_sampling def = cai_sampling_default();
    CHECK_EQ_INT(cai__sampler_new(&smp, &def, 100, &err), 0);
    CHECK(cai_session_sample(s, smp) < 0);
    CHECK(strstr(cai_session_errmsg(s), "made for 100 tokens") != NULL);
    cai__sampler_free(smp);
    CHECK_EQ_INT(cai_sampler_new(&smp, m, NULL, &err), 0);
    const int32_t t1 = cai_session_sample(s, smp);
    CHECK(t1 >= 0 && t1 < TINY_VOCAB);
    cai_sampler_free(smp);
    struct cai_sampling bad = cai_sampling_default();
    bad.top_p = 2.0f;
    CHECK(cai_sampler_new(&smp, m, &bad, &err) < 0 && smp == NULL);
    CHECK(strstr(err.msg, "top_p") != NULL);
    CHECK(cai_sampler_new(&smp, NULL, NULL, &err) < 0);
    cai_sampler_free(NULL);
    cai_session_free(s);
    cai_model_close(m);
}

int main(void)
{
    RUN(test_tiny_opens);
    RUN(test_malformed_models);
    RUN(test_missing_file);
    RUN(test_kv_cache_consistency);
    RUN(test_profile);
    RUN(test_att_split_exact);
    RUN(test_last_rows_exact);
    RUN(test_gemma3_window);
    RUN(test_gemma3_bad_pattern);
    RUN(test_sample_vocab_mismatch);
    return test_done();
}
