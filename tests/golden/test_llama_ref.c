/* test_llama_ref.c: SmolLM2-135M-Instruct and Gemma 3 270M against llama.cpp.
 *
 * Each fixture (scripts/make_logit_fixtures.py) holds, for each prompt,
 * llama.cpp's greedy continuation and its top-K log-probabilities at every
 * position. We teacher-force the same tokens and measure top-1 agreement and
 * KL(llama.cpp || coreai) over all positions, then run our own greedy decode
 * and count continuations identical token for token. Each case skips when
 * its model (scripts/get_model.sh, scripts/get_gemma3.sh) is absent. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coreai.h"
#include "test.h"

struct ref_case {
    const char *name, *model, *fixture, *fetch;
    int         n_ctx;
    double      min_top1, max_kl; /* top-1 agreement, mean KL */
    bool        all_identical;    /* every greedy continuation token for token */
};

struct fx {
    uint8_t *buf;
    size_t   n, off;
};

static int rd(struct fx *f, void *dst, size_t n)
{
    if (f->n - f->off < n)
        return -1;
    memcpy(dst, f->buf + f->off, n);
    f->off += n;
    return 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz);
    if (b && fread(b, 1, (size_t)sz, fp) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void run_case(const struct ref_case *rc)
{
    FILE *probe = fopen(rc->model, "rb");
    if (!probe)
        SKIP("%s absent (run %s)", rc->model, rc->fetch);
    fclose(probe);
    struct fx f = {0};
    f.buf = slurp(rc->fixture, &f.n);
    CHECK(f.buf != NULL);
    if (!f.buf)
        return;
    char magic[8];
    uint32_t hdr[3];
    CHECK(rd(&f, magic, 8) == 0 && memcmp(magic, "CAILOGT1", 8) == 0);
    CHECK(rd(&f, hdr, sizeof(hdr)) == 0);
    uint32_t n_vocab = hdr[0], K = hdr[1], n_cases = hdr[2];

    struct cai_model *m;
    struct cai_error err = {0};
    CHECK_EQ_INT(cai_model_open(&m, rc->model, NULL, &err), 0);
    if (err.code)
        fprintf(stderr, "%s\n", err.msg);
    struct cai_model_info info;
    cai_model_get_info(m, &info);
    CHECK_EQ_INT(info.n_vocab, (int)n_vocab);
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = rc->n_ctx;
    struct cai_session *s;
    CHECK_EQ_INT(cai_session_new(&s, m, &sp, &err), 0);

    int32_t *ids = malloc(K * sizeof(int32_t));
    float *lp = malloc(K * sizeof(float));
    double *qlog = malloc(n_vocab * sizeof(double));
    long n_pos = 0, n_top1 = 0;
    double kl_sum = 0, kl_max = 0, rest_max = 0;
    int n_identical = 0;
    for (uint32_t c = 0; c < n_cases; c++) {
        uint32_t np_nt[2];
        CHECK(rd(&f, np_nt, 8) == 0);
        uint32_t n_prompt = np_nt[0], n_total = np_nt[1];
        int32_t *toks = malloc(n_total * sizeof(int32_t));
        CHECK(rd(&f, toks, n_total * sizeof(int32_t)) == 0);
        /* As the fixture was made: the prompt in batches (all rows kept;
         * 256 tokens at a time bounds the logits to 256 rows), then the
         * continuation a token at a time. */
        cai_session_truncate(s, 0);
        for (uint32_t p = 0; p < n_total; p++) {
            const float *lg;
            if (p < n_prompt) {
                const uint32_t r = p % 256;
                if (r == 0) {
                    const uint32_t n = n_prompt - p < 256 ? n_prompt - p : 256;
                    CHECK_EQ_INT(cai_session_decode(s, toks + p, (int)n, true), 0);
                }
                lg = cai_session_logits(s, (int)r);
            } else {
                CHECK_EQ_INT(cai_session_decode(s, toks + p, 1, false), 0);
                lg = cai_session_logits(s, -1);
            }
            CHECK(lg != NULL);
            if (!lg)
                break;
            float rest;
            CHECK(rd(&f, ids, K * 4) == 0 && rd(&f, lp, K * 4) == 0 && rd(&f, &rest, 4) == 0);
            /* coreai log-softmax */
            double mx = (double)lg[0];
            for (uint32_t i = 1; i < n_vocab; i++)
                mx = (double)lg[i] > mx ? (double)lg[i] : mx;
            double se = 0;
            for (uint32_t i = 0; i < n_vocab; i++)
                se += exp((double)lg[i] - mx);
            double lse = mx + log(se);
            double kl = 0, q_top = 0;
            for (uint32_t k = 0; k < K; k++) {
                double pk = exp((double)lp[k]);
                double lq = (double)lg[ids[k]] - lse;
                q_top += exp(lq);
                kl += pk * ((double)lp[k] - lq);
            }
            double q_rest = 1.0 - q_top;
            if (rest > 0 && q_rest > 0)
                kl += (double)rest * (log((double)rest) - log(q_rest));
            kl_sum += kl;
            kl_max = kl > kl_max ? kl : kl_max;
            rest_max = (double)rest > rest_max ? (double)rest : rest_max;
            n_top1 += argmax(lg, (int)n_vocab) == ids[0];
            n_pos++;
        }
        /* Our own greedy continuation from the prompt. */
        cai_session_truncate(s, 0);
        CHECK_EQ_INT(cai_session_decode(s, toks, (int)n_prompt, false), 0);
        bool same = true;
        for (uint32_t p = n_prompt; p < n_total; p++) {
            int32_t t = argmax(cai_session_logits(s, -1), (int)n_vocab);
            if (t != toks[p]) {
                same = false;
                break;
            }
            if (p + 1 < n_total)
                CHECK_EQ_INT(cai_session_decode(s, &t, 1, false), 0);
        }
        n_identical += same;
        free(toks);
    }
    double top1 = (double)n_top1 / (double)n_pos, kl_mean = kl_sum / (double)n_pos;
    printf("%s vs llama.cpp: %ld positions, top-1 agreement %.4f, mean KL %.3g, max KL %.3g "
           "(max rest mass %.2g), greedy identical %d/%u\n",
           rc->name, n_pos, top1, kl_mean, kl_max, rest_max, n_identical, n_cases);
    CHECK(top1 >= rc->min_top1);
    CHECK(kl_mean <= rc->max_kl);
    if (rc->all_identical)
        CHECK_EQ_INT(n_identical, (int)n_cases);
    free(ids);
    free(lp);
    free(qlog);
    free(f.buf);
    cai_session_free(s);
    cai_model_close(m);
}

/* Q4_1 is computed in llama.cpp's order (docs/NUMERICS.md): the same bits,
 * so every top-1 and every greedy continuation agrees, and the KL is that
 * of identical rows (nonzero only through the fixture's f32 rounding). */
static void test_smollm2_vs_llamacpp(void)
{
    const struct ref_case c = {"smollm2", "models/SmolLM2-135M-Instruct.Q4_1.gguf",
                               "tests/golden/logits_smollm2.bin", "scripts/get_model.sh", 512,
                               0.999, 1e-5, true};
    run_case(&c);
}

/* Gemma 3 270M (Q4_K_M): the embedding scale, Q/K norms, post-attention
 * and post-FFN norms, the GELU gate, and sliding-window layers (one prompt
 * runs past the 512-position window). Its Q5_0, Q8_0, Q4_K and Q6_K
 * matmuls use our own summation orders, not llama.cpp's, so rows differ in
 * the last bits and greedy continuations part where two tokens nearly tie:
 * top-1 and KL are the measure (measured 0.9908 and 1.6e-3, as SmolLM2's
 * own Q4_K_M file gives 0.955 and 5.0e-3; without the sliding window,
 * 0.929 and 0.21; with the global RoPE base on the window layers, 0.872
 * and 0.29). */
static void test_gemma3_vs_llamacpp(void)
{
    const struct ref_case c = {"gemma3", "models/gemma-3-270m-q4_k_m.gguf",
                               "tests/golden/logits_gemma3.bin", "scripts/get_gemma3.sh", 1024,
                               0.98, 2e-3, false};
    run_case(&c);
}

/* A context shorter than Gemma 3's head_dim (256): the attention scratch
 * holds a query's f16 copy too (it overflowed before: ASan in `make asan`),
 * and the logits do not depend on the context length. */
static void test_gemma3_short_context(void)
{
    const char *path = "models/gemma-3-270m-q4_k_m.gguf";
    FILE *probe = fopen(path, "rb");
    if (!probe)
        SKIP("%s absent (run scripts/get_gemma3.sh)", path);
    fclose(probe);
    struct cai_model *m;
    struct cai_error err = {0};
    CHECK_EQ_INT(cai_model_open(&m, path, NULL, &err), 0);
    if (err.code)
        return;
    int32_t tok[40];
    for (int i = 0; i < 40; i++)
        tok[i] = 1000 + 37 * i;
    const int n_ctx[2] = {64, 1024};
    float *last[2] = {NULL, NULL};
    int n_vocab = 0;
    for (int c = 0; c < 2; c++) {
        struct cai_session_params sp = cai_session_params_default();
        sp.n_ctx = n_ctx[c];
        struct cai_session *s;
        CHECK_EQ_INT(cai_session_new(&s, m, &sp, &err), 0);
        CHECK_EQ_INT(cai_session_decode(s, tok, 30, false), 0);
        for (int i = 30; i < 40; i++)
            CHECK_EQ_INT(cai_session_decode(s, &tok[i], 1, false), 0);
        struct cai_model_info info;
        cai_model_get_info(m, &info);
        n_vocab = info.n_vocab;
        last[c] = malloc((size_t)n_vocab * sizeof(float));
        memcpy(last[c], cai_session_logits(s, -1), (size_t)n_vocab * sizeof(float));
        cai_session_free(s);
    }
    CHECK(memcmp(last[0], last[1], (size_t)n_vocab * sizeof(float)) == 0);
    free(last[0]);
    free(last[1]);
    cai_model_close(m);
}

int main(void)
{
    RUN(test_smollm2_vs_llamacpp);
    RUN(test_gemma3_vs_llamacpp);
    RUN(test_gemma3_short_context);
    return test_done();
}
