/* test_quant.c: the quantizer (src/quant, coreai_quant.h) and `coreai eval`.
 *
 * Block-format fits decode exactly to their grids and beat the simple
 * reference quantizers; scale rescaling; importance weighting; GPTQ beats
 * round-to-nearest on a correlated synthetic problem and its loss is the
 * quadratic form; AWQ folding leaves a layer's output unchanged before
 * rounding and the search picks scaling when outlier channels are present;
 * the whole pipeline on a tiny random model (int8, calibrated int4, mixed
 * within its budget, metadata, eval); bad arguments give clear errors. */
#include <fcntl.h>
#include <unistd.h>

#include "test.h"
#include "tiny_model.h"

#include "coreai_quant.h"
#include "quant/quant_int.h"

#include "../../tools/eval_cmd.h"
#include "../../tools/debug_cmd.h"
#include "base/json.h"

static uint32_t rng = 2024;
static float randu(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 16777216.0f;
}
/* Roughly Gaussian: sum of four uniforms, centred. */
static float randn(void)
{
    return (randu() + randu() + randu() + randu() - 2.0f) * 1.7f;
}

static const uint32_t all_types[] = {CAI_TYPE_Q4_0, CAI_TYPE_Q4_1, CAI_TYPE_Q5_0, CAI_TYPE_Q5_1,
                                     CAI_TYPE_Q8_0, CAI_TYPE_Q4_K, CAI_TYPE_Q5_K, CAI_TYPE_Q6_K};

static const struct cai_kernels *K(void)
{
    return &cai__kernels_ref;
}

static double sq_err(const float *a, const float *b, int n, const float *w)
{
    double e = 0.0;
    for (int i = 0; i < n; i++)
        e += (w ? (double)w[i] : 1.0) * ((double)a[i] - (double)b[i]) * ((double)a[i] - (double)b[i]);
    return e;
}

/* ---- SHA-256 ------------------------------------------------------------- */

static void hex(const uint8_t d[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_sha256(void)
{
    uint8_t d[32];
    char h[65];
    cai__sha256("", 0, d);
    hex(d, h);
    CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cai__sha256("abc", 3, d);
    hex(d, h);
    CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
    cai__sha256(m, strlen(m), d);
    hex(d, h);
    CHECK_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* ---- block formats -------------------------------------------------------- */

/* Fit + nearest codes + pack decode (through the kernels' to_f32) exactly to
 * scale * q + offset, and the error is small for each format. */
static void test_rtn_roundtrip(void)
{
    enum { N = 512 };
    float x[N], y[N], ref[N];
    uint8_t blk[N * 2];
    for (int i = 0; i < N; i++)
        x[i] = randn() * 0.05f;
    double wnorm = sq_err(x, (float[N]){0}, N, NULL);
    for (size_t ti = 0; ti < CAI_ARRAY_LEN(all_types); ti++) {
        const struct cai__qfmt *f = cai__qfmt_get(all_types[ti]);
        CHECK(f != NULL);
        if (!f)
            continue;
        /* Exact grid: one group at a time. */
        float scale[256], offset[256];
        int q[256];
        bool exact = true;
        for (int g = 0; g < N / f->group; g++) {
            const float *xg = x + g * f->group;
            uint8_t *b = blk + (size_t)g * (size_t)f->block_bytes;
            f->fit(xg, NULL, b, scale, offset);
            for (int i = 0; i < f->group; i++) {
                q[i] = cai__qfmt_code(f, xg[i], scale[i], offset[i]);
                CHECK(q[i] >= f->qmin && q[i] <= f->qmax);
            }
            f->pack(b, q);
            K()->type[f->type].to_f32(b, y, f->group);
            for (int i = 0; i < f->group; i++)
                exact = exact && y[i] == scale[i] * (float)q[i] + offset[i];
        }
        CHECK_MSG(exact, "%s: decoded values are off the fitted grid", f->name);
        /* Whole-row RTN error bounds, and at least as good as the ref quantizer. */
        cai__qfmt_quantize_row(f, x, NULL, blk, N);
        K()->type[f->type].to_f32(blk, y, N);
        double rel = sq_err(x, y, N, NULL) / wnorm;
        K()->type[f->type].from_f32(x, blk, N);
        K()->type[f->type].to_f32(blk, ref, N);
        double rel_ref = sq_err(x, ref, N, NULL) / wnorm;
        double bound = f->type == CAI_TYPE_Q8_0 ? 1e-4 : f->type == CAI_TYPE_Q6_K ? 1e-3
                       : f->qmax - f->qmin >= 31 ? 5e-3 : 2e-2;
        CHECK_MSG(rel < bound, "%s: relative error %.3g >= %.3g", f->name, rel, bound);
        CHECK_MSG(rel <= rel_ref * 1.001, "%s: %.4g worse than the simple quantizer's %.4g",
                  f->name, rel, rel_ref);
    }
}

static void test_group_sizes_and_rescale(void)
{
    for (size_t ti = 0; ti < CAI_ARRAY_LEN(all_types); ti++) {
        const struct cai__qfmt *f = cai__qfmt_get(all_types[ti]);
        bool k = all_types[ti] == CAI_TYPE_Q4_K || all_types[ti] == CAI_TYPE_Q5_K ||
                 all_types[ti] == CAI_TYPE_Q6_K;
        CHECK_EQ_INT(f->group, k ? 256 : 32);
        CHECK_EQ_INT(f->block_bytes, cai__type_info(f->type)->type_size);
        CHECK_NEAR(cai__type_bpw(f->type),
                   8.0 * cai__type_info(f->type)->type_size / cai__type_info(f->type)->block, 0);
        /* Three groups; rescaling multiplies every decoded value. */
        int n = 3 * f->group;
        float x[768], y0[768], y1[768];
        uint8_t blk[1024];
        for (int i = 0; i < n; i++)
            x[i] = randn();
        cai__qfmt_quantize_row(f, x, NULL, blk, n);
        K()->type[f->type].to_f32(blk, y0, n);
        CHECK_EQ_INT(cai__qfmt_scale_row(f->type, blk, n, 0.37f), 0);
        K()->type[f->type].to_f32(blk, y1, n);
        double worst = 0.0, big = 0.0;
        for (int i = 0; i < n; i++) {
            worst = fmax(worst, fabs((double)y1[i] - 0.37 * (double)y0[i]));
            big = fmax(big, fabs(0.37 * (double)y0[i]));
        }
        worst /= big;
        CHECK_MSG(worst < 2e-3, "%s: rescaled values off by %.3g", f->name, worst);
        CHECK(cai__qfmt_scale_row(f->type, blk, n, 0.0f) < 0);
        CHECK(cai__qfmt_scale_row(f->type, blk, n + 1, 1.0f) < 0);
    }
    CHECK(cai__qfmt_get(CAI_TYPE_Q2_K) == NULL);
    CHECK(cai__qfmt_get(CAI_TYPE_F16) == NULL);
}

/* Importance-weighted fits lower the weighted error. */
static void test_importance(void)
{
    enum { N = 256 };
    float x[N], w[N], y[N];
    uint8_t blk[N * 2];
    for (int i = 0; i < N; i++) {
        x[i] = randn();
        w[i] = i % 8 == 0 ? 50.0f : 0.1f;
    }
    for (size_t ti = 0; ti < CAI_ARRAY_LEN(all_types); ti++) {
        const struct cai__qfmt *f = cai__qfmt_get(all_types[ti]);
        cai__qfmt_quantize_row(f, x, NULL, blk, N);
        K()->type[f->type].to_f32(blk, y, N);
        double plain = sq_err(x, y, N, w);
        cai__qfmt_quantize_row(f, x, w, blk, N);
        K()->type[f->type].to_f32(blk, y, N);
        double weighted = sq_err(x, y, N, w);
        CHECK_MSG(weighted <= plain, "%s: weighted fit %.4g > plain %.4g", f->name, weighted,
                  plain);
    }
}

/* ---- GPTQ ------------------------------------------------------------------ */

static void test_gptq_beats_rtn(void)
{
    enum { NO = 48, NI = 128, NT = 1024 };
    float *W = malloc(sizeof(float) * NO * NI), *Wc = malloc(sizeof(float) * NO * NI);
    float *X = malloc(sizeof(float) * NT * NI), *H = calloc(NI * NI, sizeof(float));
    float *E = malloc(sizeof(float) * NO * NI), *imp = malloc(sizeof(float) * NI);
    uint8_t *blk = malloc((size_t)NO * NI);
    /* Correlated inputs: a few shared factors plus noise, uneven channel scales. */
    for (int t = 0; t < NT; t++) {
        float f0 = randn(), f1 = randn(), f2 = randn();
        for (int j = 0; j < NI; j++) {
            float sc = 0.3f + (float)(j % 7);
            X[t * NI + j] = sc * (0.8f * (j % 3 == 0 ? f0 : j % 3 == 1 ? f1 : f2) + 0.4f * randn());
        }
    }
    for (int i = 0; i < NO * NI; i++)
        W[i] = randn() * 0.1f;
    CHECK_EQ_INT(cai__qfwd_stats(K(), NULL, X, NT, NI, H, NULL, NULL), 0);
    for (int j = 0; j < NI; j++)
        imp[j] = H[j * NI + j];
    const struct cai__qfmt *f = cai__qfmt_get(CAI_TYPE_Q4_0);
    size_t rb = (size_t)(NI / 32) * 18;
    /* RTN (importance-weighted). */
    for (int r = 0; r < NO; r++)
        cai__qfmt_quantize_row(f, W + r * NI, imp, blk + r * rb, NI);
    for (int r = 0; r < NO; r++) {
        K()->type[f->type].to_f32(blk + r * rb, E + r * NI, NI);
        for (int j = 0; j < NI; j++)
            E[r * NI + j] -= W[r * NI + j];
    }
    double e_rtn = cai__quad_form_rows(K(), E, NO, NI, H, NULL);
    /* GPTQ. */
    struct cai_error err = {0};
    float *U = cai__gptq_factor(H, NI, 0.01f, &err);
    CHECK(U != NULL);
    if (U) {
        memcpy(Wc, W, sizeof(float) * NO * NI);
        double loss = cai__gptq_quantize(f, Wc, NO, NI, U, imp, blk, NULL);
        for (int r = 0; r < NO; r++) {
            K()->type[f->type].to_f32(blk + r * rb, E + r * NI, NI);
            for (int j = 0; j < NI; j++)
                E[r * NI + j] -= W[r * NI + j];
        }
        double e_gptq = cai__quad_form_rows(K(), E, NO, NI, H, NULL);
        CHECK_MSG(e_gptq < 0.8 * e_rtn, "GPTQ error %.4g not well below RTN's %.4g", e_gptq,
                  e_rtn);
        /* The loss is the damped quadratic form of the final error. */
        float mean = 0.0f;
        for (int j = 0; j < NI; j++)
            mean += H[j * NI + j] / NI;
        for (int j = 0; j < NI; j++)
            H[j * NI + j] += 0.01f * mean;
        double e_damped = cai__quad_form_rows(K(), E, NO, NI, H, NULL);
        CHECK_NEAR(loss / e_damped, 1.0, 1e-3);
        /* U^T U = (H + damp)^-1: check (U^T U) H ~ I on a few entries. */
        double worst = 0.0;
        for (int a = 0; a < NI; a += 17) {
            for (int b = 0; b < NI; b += 13) {
                double s = 0.0;
                for (int m = 0; m < NI; m++) {
                    double hinv = 0.0;
                    for (int r = 0; r <= CAI_MIN(a, m); r++)
                        hinv += (double)U[r * NI + a] * (double)U[r * NI + m];
                    s += hinv * (double)H[m * NI + b];
                }
                worst = fmax(worst, fabs(s - (a == b)));
            }
        }
        CHECK_MSG(worst < 1e-3, "U^T U H differs from I by %.3g", worst);
    }
    free(U);
    free(W);
    free(Wc);
    free(X);
    free(H);
    free(E);
    free(imp);
    free(blk);
}

/* ---- AWQ ------------------------------------------------------------------- */

static float *randv(size_t n, float scale)
{
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = randn() * scale;
    return v;
}

/* Folding scales at all four inputs of a layer leaves its output as it was
 * (before any rounding). */
static void test_awq_fold_preserves_output(void)
{
    struct cai__hparams hp = {.n_vocab = 10, .n_embd = 64, .n_layer = 1, .n_head = 4,
                              .n_head_kv = 2, .head_dim = 16, .n_ff = 96, .n_ctx_train = 64,
                              .n_rot = 16, .rope_base = 10000.0f, .rope_scale = 1.0f,
                              .rms_eps = 1e-5f, .rope_type = 0};
    const int d = 64, qd = 64, kvd = 32, ff = 96, N = 24;
    float *wq = randv((size_t)qd * d, 0.2f), *wk = randv((size_t)kvd * d, 0.2f);
    float *wv = randv((size_t)kvd * d, 0.2f), *wo = randv((size_t)d * qd, 0.2f);
    float *wg = randv((size_t)ff * d, 0.2f), *wu = randv((size_t)ff * d, 0.2f);
    float *wd = randv((size_t)d * ff, 0.2f), *bv = randv((size_t)kvd, 0.1f);
    float an[64], fn[64];
    for (int i = 0; i < d; i++) {
        an[i] = 1.0f + 0.3f * randn();
        fn[i] = 1.0f + 0.3f * randn();
    }
    float *x0 = randv((size_t)N * d, 1.0f), *x1 = malloc(sizeof(float) * N * d);
    memcpy(x1, x0, sizeof(float) * N * d);
    struct cai__qfwd f;
    CHECK_EQ_INT(cai__qfwd_init(&f, &hp, NULL, K(), NULL, N, 12, NULL), 0);
    struct cai__qlayer lw = {.wq = wq, .wk = wk, .wv = wv, .wo = wo, .wg = wg, .wu = wu,
                             .wd = wd, .bv = bv, .attn_norm = an, .ffn_norm = fn};
    CHECK_EQ_INT(cai__qfwd_layer(&f, &lw, 0, x0, NULL, NULL), 0);

    float s1[64], s2[64], s3[64], s4[96];
    for (int i = 0; i < d; i++) {
        s1[i] = 0.25f + 3.0f * randu();
        s3[i] = 0.25f + 3.0f * randu();
    }
    for (int i = 0; i < ff; i++)
        s4[i] = 0.25f + 3.0f * randu();
    int32_t tie[64];
    cai__awq_tie_gqa(hp.n_head, hp.n_head_kv, hp.head_dim, tie);
    for (int i = 0; i < qd; i++)
        s2[i] = tie[i] == i ? 0.25f + 3.0f * randu() : 0.0f;
    for (int i = 0; i < qd; i++)
        s2[i] = s2[tie[i]];
    /* attn_q/k/v input: norm / s1, columns * s1. */
    for (int j = 0; j < d; j++)
        an[j] /= s1[j];
    cai__awq_scale_cols(wq, qd, d, s1, false);
    cai__awq_scale_cols(wk, kvd, d, s1, false);
    cai__awq_scale_cols(wv, kvd, d, s1, false);
    /* attn_output input: value rows (and bias) / s2 (tied per group), columns * s2. */
    CHECK_EQ_INT(cai__awq_fold_rows(CAI_TYPE_F32, wv, (size_t)d * 4, kvd, d, s2,
                                    hp.n_head / hp.n_head_kv, hp.head_dim, bv), 0);
    cai__awq_scale_cols(wo, d, qd, s2, false);
    /* ffn_gate/up input. */
    for (int j = 0; j < d; j++)
        fn[j] /= s3[j];
    cai__awq_scale_cols(wg, ff, d, s3, false);
    cai__awq_scale_cols(wu, ff, d, s3, false);
    /* ffn_down input: up rows / s4, columns * s4. */
    CHECK_EQ_INT(cai__awq_fold_rows(CAI_TYPE_F32, wu, (size_t)d * 4, ff, d, s4, 1, ff, NULL), 0);
    cai__awq_scale_cols(wd, d, ff, s4, false);
    CHECK_EQ_INT(cai__qfwd_layer(&f, &lw, 0, x1, NULL, NULL), 0);
    double worst = 0.0, norm = 0.0;
    for (int i = 0; i < N * d; i++) {
        worst = fmax(worst, fabs((double)x1[i] - (double)x0[i]));
        norm = fmax(norm, fabs((double)x0[i]));
    }
    CHECK_MSG(worst < 1e-4 * norm, "folded layer output differs by %.3g (scale %.3g)", worst,
              norm);
    cai__qfwd_deinit(&f);
    free(wq);
    free(wk);
    free(wv);
    free(wo);
    free(wg);
    free(wu);
    free(wd);
    free(bv);
    free(x0);
    free(x1);
}

/* With a few large-activation channels the search scales them (alpha > 0)
 * and predicts a lower error than no scaling. */
static void test_awq_search_outliers(void)
{
    enum { NO = 64, NI = 128, NT = 512 };
    float *W = randv((size_t)NO * NI, 0.1f), *X = malloc(sizeof(float) * NT * NI);
    float *H = calloc(NI * NI, sizeof(float)), abssum[NI] = {0}, s[NI];
    for (int t = 0; t < NT; t++)
        for (int j = 0; j < NI; j++)
            X[t * NI + j] = randn() * (j % 16 == 3 ? 30.0f : 0.5f);
    CHECK_EQ_INT(cai__qfwd_stats(K(), NULL, X, NT, NI, H, abssum, NULL), 0);
    for (int j = 0; j < NI; j++)
        abssum[j] /= NT;
    struct cai__awq_mat m = {.w = W, .n_out = NO, .fmt = cai__qfmt_get(CAI_TYPE_Q4_0),
                             .act_block = 32};
    float alpha = -1.0f, gain = 2.0f;
    CHECK_EQ_INT(cai__awq_search(K(), &m, 1, X, NT, NI, abssum, H, NULL, 10, 32, s, &alpha,
                                 &gain, NULL, NULL), 0);
    CHECK_MSG(alpha > 0.0f && gain < 1.0f, "alpha %.2f gain %.3f", (double)alpha, (double)gain);
    CHECK(s[3] > s[4]);
    free(W);
    free(X);
    free(H);
}

/* ---- the pipeline on a tiny model ------------------------------------------ */

static char src_path[64], out_path[64], cal_path[64], out2_path[64];

static bool write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return false;
    bool ok = fwrite(data, 1, n, fp) == n;
    return fclose(fp) == 0 && ok;
}

static bool setup_tiny(void)
{
    snprintf(src_path, sizeof(src_path), "/tmp/coreai-tq-%d.gguf", (int)getpid());
    snprintf(out_path, sizeof(out_path), "/tmp/coreai-tq-%d.out.gguf", (int)getpid());
    snprintf(out2_path, sizeof(out2_path), "/tmp/coreai-tq-%d.coreaimodel", (int)getpid());
    snprintf(cal_path, sizeof(cal_path), "/tmp/coreai-tq-%d.txt", (int)getpid());
    uint8_t *buf;
    size_t n;
    struct tiny_opts o = {0};
    if (tiny_model_build(&o, &buf, &n) < 0)
        return false;
    bool ok = write_file(src_path, buf, n);
    cai__free(buf);
    char text[3000];
    static const char *words[] = {"the ", "light ", "keeper ", "walked ", "up ", "a ", "stone ",
                                  "stair, ", "and ", "bread ", "rises. ", "Water "};
    size_t o2 = 0;
    for (int i = 0; o2 + 16 < sizeof(text); i++) {
        const char *w = words[(i * 7 + i / 3) % 12];
        memcpy(text + o2, w, strlen(w));
        o2 += strlen(w);
    }
    return ok && write_file(cal_path, text, o2);
}

static void cleanup_tiny(void)
{
    unlink(src_path);
    unlink(out_path);
    unlink(out2_path);
    unlink(cal_path);
}

static int n_reported;
static void count_tensor(void *user, const struct cai_quant_tensor *t)
{
    (void)user;
    (void)t;
    n_reported++;
}

/* Logits of the first few tokens are finite and close to the source's. */
static double max_logit_diff(const char *a, const char *b)
{
    struct cai_model *ma = NULL, *mb = NULL;
    struct cai_session *sa = NULL, *sb = NULL;
    double worst = -1.0;
    if (cai_model_open(&ma, a, NULL, NULL) < 0 || cai_model_open(&mb, b, NULL, NULL) < 0)
        goto out;
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 32;
    sp.n_threads = 1;
    if (cai_session_new(&sa, ma, &sp, NULL) < 0 || cai_session_new(&sb, mb, &sp, NULL) < 0)
        goto out;
    int32_t toks[8] = {72, 101, 108, 108, 111, 32, 119, 111};
    if (cai_session_decode(sa, toks, 8, false) < 0 || cai_session_decode(sb, toks, 8, false) < 0)
        goto out;
    const float *la = cai_session_logits(sa, -1), *lb = cai_session_logits(sb, -1);
    worst = 0.0;
    for (int i = 0; i < TINY_VOCAB; i++) {
        if (!isfinite(la[i]) || !isfinite(lb[i]))
            return 1e30;
        worst = fmax(worst, fabs((double)la[i] - (double)lb[i]));
    }
out:
    cai_session_free(sa);
    cai_session_free(sb);
    cai_model_close(ma);
    cai_model_close(mb);
    return worst;
}

static bool has_meta(const char *path, const char *key, const char *want)
{
    struct cai_model *m = NULL;
    bool found = false;
    if (cai_model_open(&m, path, NULL, NULL) < 0)
        return false;
    const char *k;
    char v[256];
    for (int i = 0; cai_model_meta(m, i, &k, v, sizeof(v)); i++)
        if (!strcmp(k, key))
            found = !want || strstr(v, want) != NULL;
    cai_model_close(m);
    return found;
}

/* Logits of the 8 tokens of max_logit_diff's prompt, decoded in one batch
 * (batch true) or one token at a time, into out[8][TINY_VOCAB]. */
static bool logits8(const char *path, bool batch, float *out)
{
    struct cai_model *m = NULL;
    struct cai_session *s = NULL;
    bool ok = false;
    int32_t toks[8] = {72, 101, 108, 108, 111, 32, 119, 111};
    if (cai_model_open(&m, path, NULL, NULL) < 0)
        return false;
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 32;
    sp.n_threads = 2;
    if (cai_session_new(&s, m, &sp, NULL) < 0)
        goto out;
    for (int i = 0; i < 8; i++) {
        if (batch) {
            if (cai_session_decode(s, toks, 8, true) < 0)
                goto out;
            for (int j = 0; j < 8; j++)
                memcpy(out + (size_t)j * TINY_VOCAB, cai_session_logits(s, j),
                       TINY_VOCAB * sizeof(float));
            break;
        }
        if (cai_session_decode(s, toks + i, 1, false) < 0)
            goto out;
        memcpy(out + (size_t)i * TINY_VOCAB, cai_session_logits(s, -1), TINY_VOCAB * sizeof(float));
    }
    ok = true;
out:
    cai_session_free(s);
    cai_model_close(m);
    return ok;
}

/* int8 files take the head's input in f32 by default (coreai.head.f32_input):
 * the flag is written, it changes the logits toward the source's, and a batch
 * gives the same bits as token-by-token decoding. */
static void test_head_f32_input(void)
{
    if (!setup_tiny())
        SKIP("cannot write temporary files");
    struct cai_quant_params p = cai_quant_params_default();
    struct cai_error err = {0};
    p.n_threads = 2;
    p.precision = CAI_QUANT_INT8;
    CHECK_EQ_INT(cai_quantize(src_path, out_path, &p, NULL, &err), 0);
    p.head_f32_input = 0;
    CHECK_EQ_INT(cai_quantize(src_path, out2_path, &p, NULL, &err), 0);
    CHECK(has_meta(out_path, "coreai.head.f32_input", "true"));
    CHECK(!has_meta(out2_path, "coreai.head.f32_input", NULL));

    size_t n = (size_t)8 * TINY_VOCAB;
    float *ref = malloc(n * sizeof(float)), *f32h = malloc(n * sizeof(float));
    float *q8h = malloc(n * sizeof(float)), *one = malloc(n * sizeof(float));
    CHECK(ref && f32h && q8h && one);
    if (ref && f32h && q8h && one) {
        CHECK(logits8(src_path, true, ref));
        CHECK(logits8(out_path, true, f32h));
        CHECK(logits8(out2_path, true, q8h));
        CHECK(logits8(out_path, false, one));
        CHECK(memcmp(f32h, one, n * sizeof(float)) == 0);
        double e_f32 = 0.0, e_q8 = 0.0, d_heads = 0.0;
        for (size_t i = 0; i < n; i++) {
            e_f32 += fabs((double)f32h[i] - (double)ref[i]);
            e_q8 += fabs((double)q8h[i] - (double)ref[i]);
            d_heads = fmax(d_heads, fabs((double)f32h[i] - (double)q8h[i]));
        }
        CHECK_MSG(d_heads > 0.0, "the flag changed nothing");
        CHECK_MSG(e_f32 < e_q8, "f32 head %.4g vs 8-bit head %.4g (sum |logit - source|)", e_f32,
                  e_q8);
    }
    free(ref);
    free(f32h);
    free(q8h);
    free(one);
    cleanup_tiny();
}

/* The layer hook: one call per layer and the embedding, in order, with the
 * batch's positions; the logits do not change with it on. */
struct hook_log {
    int calls, next_layer, pos0[2], bad;
};

static void hook_fn(void *user, int layer, int pos0, int n_tok, int n_embd, const float *x)
{
    struct hook_log *h = user;
    if (layer != h->next_layer || n_embd != TINY_EMBD || n_tok < 1 || !x)
        h->bad++;
    if (layer == -1 && h->calls / (TINY_LAYER + 1) < 2)
        h->pos0[h->calls / (TINY_LAYER + 1)] = pos0;
    h->next_layer = layer + 1 == TINY_LAYER ? -1 : layer + 1;
    h->calls++;
}

/* Runs `coreai debug` with argv, stdout into a buffer; returns its exit code. */
static int run_debug(int argc, char **argv, char *out, size_t cap)
{
    char path[] = "/tmp/coreai-debug-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = cmd_debug(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    ssize_t n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

static void test_layer_debugger(void)
{
    if (!setup_tiny())
        SKIP("cannot write temporary files");
    struct cai_model *m = NULL;
    struct cai_session *s = NULL;
    CHECK_EQ_INT(cai_model_open(&m, src_path, NULL, NULL), 0);
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 32;
    sp.n_threads = 1;
    CHECK_EQ_INT(cai_session_new(&s, m, &sp, NULL), 0);
    int32_t toks[8] = {72, 101, 108, 108, 111, 32, 119, 111};
    float plain[TINY_VOCAB];
    CHECK_EQ_INT(cai_session_decode(s, toks, 5, false), 0);
    memcpy(plain, cai_session_logits(s, -1), sizeof(plain));
    cai_session_truncate(s, 0);
    struct hook_log h = {.next_layer = -1};
    cai_session_set_layer_hook(s, hook_fn, &h);
    CHECK_EQ_INT(cai_session_decode(s, toks, 5, false), 0);
    CHECK(memcmp(plain, cai_session_logits(s, -1), sizeof(plain)) == 0);
    CHECK_EQ_INT(cai_session_decode(s, toks + 5, 3, false), 0);
    CHECK_EQ_INT(h.calls, 2 * (TINY_LAYER + 1));
    CHECK_EQ_INT(h.bad, 0);
    CHECK(h.pos0[0] == 0 && h.pos0[1] == 5);
    cai_session_set_layer_hook(s, NULL, NULL);
    CHECK_EQ_INT(cai_session_decode(s, toks, 1, false), 0);
    CHECK_EQ_INT(h.calls, 2 * (TINY_LAYER + 1));
    cai_session_free(s);
    cai_model_close(m);

    /* `coreai debug`: a model against itself has no drift; its int8
     * quantization drifts a little at every layer. */
    struct cai_quant_params p = cai_quant_params_default();
    p.precision = CAI_QUANT_INT8;
    p.n_threads = 1;
    CHECK_EQ_INT(cai_quantize(src_path, out_path, &p, NULL, NULL), 0);
    static char out[1 << 16];
    for (int pass = 0; pass < 2; pass++) {
        char *argv[] = {"debug", pass ? out_path : src_path, "-p", "Hello world, hello.", "--ref",
                        src_path, "-o", "json", "-t", "1", NULL};
        CHECK_EQ_INT(run_debug(10, argv, out, sizeof(out)), 0);
        struct cai_json *j = NULL;
        CHECK_MSG(cai__json_parse(&j, out, strlen(out), 0, "debug", NULL) == 0, "%s", out);
        if (!j)
            continue;
        const struct cai_json_node *layers = cai__json_get(j, cai__json_root(j), "layers");
        CHECK(layers && layers->type == CAI_JSON_ARRAY && layers->n == TINY_LAYER + 1);
        int n_zero = 0, n_small = 0;
        for (const struct cai_json_node *e = layers ? cai__json_first(j, layers) : NULL; e;
             e = cai__json_next(j, layers, e)) {
            const struct cai_json_node *re = cai__json_get(j, e, "rel_err");
            n_zero += re && re->num == 0.0;
            n_small += re && re->num > 0.0 && re->num < 0.05;
        }
        const struct cai_json_node *lg = cai__json_get(j, cai__json_root(j), "logits");
        const struct cai_json_node *kl = lg ? cai__json_get(j, lg, "kld_mean") : NULL;
        if (pass == 0) {
            CHECK_EQ_INT(n_zero, TINY_LAYER + 1);
            CHECK(kl && kl->num == 0.0);
        } else {
            CHECK_EQ_INT(n_small, TINY_LAYER + 1); /* the embedding is q8_0 too: all drift */
            CHECK(kl && kl->num > 0.0 && kl->num < 0.05);
        }
        cai__json_free(j);
    }
    char *bad[] = {"debug", src_path, NULL};
    CHECK_EQ_INT(run_debug(2, bad, out, sizeof(out)), 2);
    cleanup_tiny();
}

static void test_pipeline_tiny(void)
{
    if (!setup_tiny())
        SKIP("cannot write temporary files");
    struct cai_quant_params p = cai_quant_params_default();
    struct cai_quant_summary s;
    struct cai_error err = {0};
    p.n_threads = 2;
    p.on_tensor = count_tensor;

    /* int8, round to nearest. */
    p.precision = CAI_QUANT_INT8;
    n_reported = 0;
    CHECK_EQ_INT(cai_quantize(src_path, out_path, &p, &s, &err), 0);
    CHECK_MSG(err.code == 0, "%s", err.msg);
    CHECK_EQ_INT(n_reported, 1 + TINY_LAYER * 7);
    CHECK_NEAR(s.bpw, 8.5, 1e-9);
    CHECK(s.max_rel_err < 1e-4);
    CHECK(max_logit_diff(src_path, out_path) < 0.05);
    CHECK(has_meta(out_path, "coreai.quantization.method", "rtn"));
    CHECK(has_meta(out_path, "coreai.quantization.target_device", "cpu"));

    /* Calibrated int4 into a .coreaimodel. */
    p.precision = CAI_QUANT_INT4;
    p.calibration_path = cal_path;
    p.seq_len = 64;
    p.n_calib_tokens = 1024;
    p.target_device = "avx2";
    n_reported = 0;
    CHECK_EQ_INT(cai_quantize(src_path, out2_path, &p, &s, &err), 0);
    CHECK_MSG(err.code == 0, "%s", err.msg);
    CHECK_EQ_INT(n_reported, 1 + TINY_LAYER * 7);
    CHECK_EQ_INT((int)s.calib_tokens, 1024);
    CHECK(s.bpw < 8.5 && s.bpw > 4.5);
    CHECK(max_logit_diff(src_path, out2_path) < 1.0);
    CHECK(has_meta(out2_path, "coreai.quantization.method", "awq+gptq"));
    CHECK(has_meta(out2_path, "coreai.quantization.calibration_digest", "sha256:"));
    CHECK(has_meta(out2_path, "coreai.quantization.target_device", "avx2"));

    /* Calibrated int4 must beat plain round-to-nearest on the calibration text's statistics. */
    double rel_cal = s.mean_rel_err;
    p.awq = false;
    p.gptq = false;
    CHECK_EQ_INT(cai_quantize(src_path, out2_path, &p, &s, &err), 0);
    CHECK(has_meta(out2_path, "coreai.quantization.method", "rtn-imatrix"));
    p.calibration_path = NULL;
    CHECK_EQ_INT(cai_quantize(src_path, out_path, &p, &s, &err), 0);
    CHECK_MSG(rel_cal < s.mean_rel_err * 1.5, "calibrated %.3g vs rtn %.3g", rel_cal,
              s.mean_rel_err);
    p.awq = true;
    p.gptq = true;

    /* Mixed: meets the budget; a budget below 4.5-bit layers is refused. */
    p.precision = CAI_QUANT_MIXED;
    p.calibration_path = cal_path;
    p.n_sens_tokens = 32;
    p.target_device = NULL;
    for (float target = 5.6f; target < 8.0f; target += 1.2f) {
        p.target_bpw = target;
        CHECK_EQ_INT(cai_quantize(src_path, out_path, &p, &s, &err), 0);
        CHECK_MSG(s.bpw <= (double)target + 1e-6, "bpw %.4f over the target %.2f", s.bpw, (double)target);
        CHECK_MSG(s.bpw > (double)target - 1.0, "bpw %.4f far under the target %.2f", s.bpw,
                  (double)target);
        CHECK(s.predicted_kld >= 0.0);
        CHECK(has_meta(out_path, "coreai.quantization.method", "mixed-awq+gptq"));
    }
    p.target_bpw = 5.0f;
    CHECK_EQ_INT(cai_quantize(src_path, out_path, &p, &s, &err), CAI_ERANGE);
    CHECK(strstr(err.msg, "below the smallest") != NULL);

    /* eval: the model against itself (KLD 0), and int8 against the source. */
    int fd = dup(1);
    int null = open("/dev/null", O_WRONLY);
    fflush(stdout);
    dup2(null, 1);
    char *argv1[] = {"eval", src_path, "--text", cal_path, "--kld-against", src_path, "-c", "64",
                     "-o", "json", "-t", "1", NULL};
    int rc1 = cmd_eval(12, argv1);
    char *argv2[] = {"eval", src_path, "--text", "/nonexistent/x.txt", NULL};
    int rc2 = cmd_eval(4, argv2);
    char *argv3[] = {"eval", src_path, "--bogus", NULL};
    int rc3 = cmd_eval(3, argv3);
    fflush(stdout);
    dup2(fd, 1);
    close(fd);
    close(null);
    CHECK_EQ_INT(rc1, 0);
    CHECK_EQ_INT(rc2, 1);
    CHECK_EQ_INT(rc3, 2);
    cleanup_tiny();
}

static void test_bad_arguments(void)
{
    struct cai_quant_params p = cai_quant_params_default();
    struct cai_error err = {0};
    p.target_device = "tpu9000";
    CHECK_EQ_INT(cai_quantize("a.gguf", "b.gguf", &p, NULL, &err), CAI_EINVAL);
    CHECK(strstr(err.msg, "tpu9000") && strstr(err.msg, "avx512") && strstr(err.msg, "cpu"));
    p = cai_quant_params_default();
    p.precision = CAI_QUANT_MIXED;
    CHECK_EQ_INT(cai_quantize("a.gguf", "b.gguf", &p, NULL, &err), CAI_EINVAL);
    CHECK(strstr(err.msg, "--target-bpw") != NULL);
    p.target_bpw = 5.0f;
    CHECK_EQ_INT(cai_quantize("a.gguf", "b.gguf", &p, NULL, &err), CAI_EINVAL);
    CHECK(strstr(err.msg, "--calibration") != NULL);
    p = cai_quant_params_default();
    p.target_bpw = 5.0f;
    CHECK_EQ_INT(cai_quantize("a.gguf", "b.gguf", &p, NULL, &err), CAI_EINVAL);
    CHECK(strstr(err.msg, "mixed") != NULL);
    p = cai_quant_params_default();
    CHECK_EQ_INT(cai_quantize("a.gguf", "a.gguf", &p, NULL, &err), CAI_EINVAL);
    CHECK(strstr(err.msg, "overwrite") != NULL);
    p.precision = CAI_QUANT_F16;
    p.calibration_path = "x.txt";
    CHECK_EQ_INT(cai_quantize("a.gguf", "b.gguf", &p, NULL, &err), CAI_EINVAL);
    p = cai_quant_params_default();
    p.precision = 9;
    CHECK_EQ_INT(cai_quantize("a.gguf", "b.gguf", &p, NULL, &err), CAI_EINVAL);
    CHECK(strstr(err.msg, "int4") != NULL);
    p = cai_quant_params_default();
    CHECK(cai_quantize("/nonexistent/model.gguf", "/tmp/never.gguf", &p, NULL, &err) < 0);
    CHECK(strstr(err.msg, "/nonexistent/model.gguf") != NULL);
    CHECK(access("/tmp/never.gguf", F_OK) != 0);
    CHECK_EQ_INT(cai_quant_precision_parse("int4"), CAI_QUANT_INT4);
    CHECK_EQ_INT(cai_quant_precision_parse("int3"), -1);
    CHECK_EQ_INT(cai_quant_precision_parse(NULL), -1);
    const char *const *dev = cai_quant_devices();
    CHECK_STR(dev[0], "cpu");
    /* A calibration file that does not exist: the model is checked first,
     * then the text; either way an error naming the file. */
    if (setup_tiny()) {
        p = cai_quant_params_default();
        p.calibration_path = "/nonexistent/cal.txt";
        CHECK(cai_quantize(src_path, out_path, &p, NULL, &err) < 0);
        CHECK(strstr(err.msg, "/nonexistent/cal.txt") != NULL);
        /* Too little text for one sequence. */
        write_file(cal_path, "hi", 2);
        p.calibration_path = cal_path;
        CHECK_EQ_INT(cai_quantize(src_path, out_path, &p, NULL, &err), CAI_EINVAL);
        CHECK(strstr(err.msg, "tokens") != NULL);
        CHECK(access(out_path, F_OK) != 0);
        cleanup_tiny();
    }
}

int main(void)
{
    RUN(test_sha256);
    RUN(test_rtn_roundtrip);
    RUN(test_group_sizes_and_rescale);
    RUN(test_importance);
    RUN(test_gptq_beats_rtn);
    RUN(test_awq_fold_preserves_output);
    RUN(test_awq_search_outliers);
    RUN(test_pipeline_tiny);
    RUN(test_head_f32_input);
    RUN(test_layer_debugger);
    RUN(test_bad_arguments);
    return test_done();
}
