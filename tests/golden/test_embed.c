/* test_embed.c: cai_embed on SmolLM2-135M-Instruct against llama.cpp's
 * mean-pooled, normalized embeddings of the same texts
 * (tests/golden/embed_smollm2.txt, from scripts/make_embed_fixture.py with
 * llama-cpp-python 0.3.36), and its error cases. Skips when the model
 * (scripts/get_model.sh) is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "coreai.h"
#include "test.h"

#define MODEL   "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define FIXTURE "tests/golden/embed_smollm2.txt"
#define N_EMBD  576
#define N_CASES 4

static char  *texts[N_CASES];
static double ref[N_CASES][N_EMBD];

static bool load_fixture(void)
{
    FILE *f = fopen(FIXTURE, "r");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool ok = true;
    for (int c = 0; c < N_CASES && ok; c++) {
        ok = getline(&line, &cap, f) > 0;
        struct cai_json *j = NULL;
        ok = ok && cai__json_parse(&j, line, strlen(line), 0, FIXTURE, NULL) == 0 &&
             cai__json_root(j)->type == CAI_JSON_STRING;
        if (ok)
            texts[c] = strdup(cai__json_root(j)->s);
        cai__json_free(j);
        ok = ok && getline(&line, &cap, f) > 0;
        char *p = line;
        for (int i = 0; ok && i < N_EMBD; i++) {
            char *end;
            ref[c][i] = strtod(p, &end);
            ok = end != p;
            p = end;
        }
    }
    free(line);
    fclose(f);
    return ok;
}

static void test_against_llama_cpp(void)
{
    if (access(MODEL, R_OK) != 0)
        SKIP("model not fetched (scripts/get_model.sh)");
    CHECK(load_fixture());
    struct cai_model *m = NULL;
    struct cai_session *s = NULL;
    CHECK_EQ_INT(cai_model_open(&m, MODEL, NULL, NULL), 0);
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 256;
    sp.n_threads = 2;
    CHECK_EQ_INT(cai_session_new(&s, m, &sp, NULL), 0);
    static float v[N_CASES][N_EMBD];
    for (int c = 0; c < N_CASES; c++) {
        int n_tok = 0;
        CHECK_EQ_INT(cai_embed(s, texts[c], strlen(texts[c]), v[c], N_EMBD, &n_tok), N_EMBD);
        CHECK(n_tok > 3);
        double worst = 0.0, norm = 0.0;
        for (int i = 0; i < N_EMBD; i++) {
            worst = fmax(worst, fabs((double)v[c][i] - ref[c][i]));
            norm += (double)v[c][i] * (double)v[c][i];
        }
        CHECK_MSG(worst <= 1e-6, "case %d: max |ours - llama.cpp| = %.3g", c, worst);
        CHECK(fabs(norm - 1.0) < 1e-5);
        /* The session now holds the text; embedding again gives the same bits. */
        float again[N_EMBD];
        CHECK_EQ_INT(cai_embed(s, texts[c], strlen(texts[c]), again, N_EMBD, NULL), N_EMBD);
        CHECK(memcmp(again, v[c], sizeof(again)) == 0);
    }
    /* Different texts, different embeddings. */
    double dot = 0.0;
    for (int i = 0; i < N_EMBD; i++)
        dot += (double)v[0][i] * (double)v[1][i];
    CHECK(dot < 0.99);
    /* Too small a buffer: the size, nothing written; no tokens: an error. */
    float small[4] = {7, 7, 7, 7};
    CHECK_EQ_INT(cai_embed(s, "x", 1, small, 4, NULL), N_EMBD);
    CHECK(small[0] == 7 && small[3] == 7);
    CHECK_EQ_INT(cai_embed(s, "", 0, v[0], N_EMBD, NULL), CAI_EINVAL); /* SmolLM2 adds no BOS */
    CHECK(strstr(cai_session_errmsg(s), "no tokens") != NULL);
    char *big = malloc(20000);
    memset(big, 'a', 19999);
    for (int i = 0; i < 19999; i += 2)
        big[i] = ' ';
    big[19999] = '\0';
    CHECK_EQ_INT(cai_embed(s, big, strlen(big), v[0], N_EMBD, NULL), CAI_ECTX_FULL);
    CHECK(strstr(cai_session_errmsg(s), "context") != NULL);
    free(big);
    cai_session_free(s);
    cai_model_close(m);
    for (int c = 0; c < N_CASES; c++)
        free(texts[c]);
}

int main(void)
{
    RUN(test_against_llama_cpp);
    return test_done();
}
