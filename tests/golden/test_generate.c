/* test_generate.c: the decode loop on SmolLM2-135M-Instruct: streaming in
 * whole UTF-8 characters, stop strings, stopping from the callback, max
 * tokens, seeded sampling, multi-turn chat reusing the KV cache, and
 * asynchronous generation with cancellation. Skips when the model
 * (scripts/get_model.sh) is absent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "coreai.h"
#include "test.h"

#define MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static struct cai_model *model;

struct collect {
    char   text[8192];
    size_t n;
    int    pieces;
    int    bad_utf8;
    int    stop_after; /* stop after this many pieces (0: never) */
};

/* True when s[0..n) is complete, valid UTF-8. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

static int collect_fn(void *user, const struct cai_piece *p)
{
    struct collect *c = user;
    if (!utf8_ok((const unsigned char *)p->text, p->n_bytes))
        c->bad_utf8++;
    if (c->n + p->n_bytes < sizeof(c->text)) {
        memcpy(c->text + c->n, p->text, p->n_bytes);
        c->n += p->n_bytes;
        c->text[c->n] = '\0';
    }
    c->pieces++;
    return c->stop_after && c->pieces >= c->stop_after;
}

static struct cai_session *new_session(void)
{
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = 512;
    struct cai_session *s = NULL;
    struct cai_error err = {0};
    if (cai_session_new(&s, model, &sp, &err) < 0)
        fprintf(stderr, "%s\n", err.msg);
    return s;
}

static struct cai_gen_params greedy(int n)
{
    struct cai_gen_params p = cai_gen_params_default();
    p.max_tokens = n;
    p.sampling.temp = 0.0f;
    return p;
}

static void test_greedy_and_max_tokens(void)
{
    struct cai_session *s = new_session();
    struct collect c = {0};
    struct cai_gen_params p = greedy(8);
    struct cai_gen_result r;
    CHECK_EQ_INT(cai_generate(s, "The capital of France is", &p, collect_fn, &c, &r), 0);
    CHECK_EQ_INT(r.n_gen, 8);
    CHECK_EQ_INT(r.stop_reason, CAI_STOP_MAX_TOKENS);
    CHECK(strncmp(c.text, " Paris.", 7) == 0);
    CHECK_EQ_INT(c.bad_utf8, 0);
    CHECK(r.t_first_ns > 0 && r.n_prompt == 5);
    cai_session_free(s);
}

/* Multi-byte characters reach the callback whole, never split. */
static void test_utf8_pieces(void)
{
    struct cai_session *s = new_session();
    struct collect c = {0};
    struct cai_gen_params p = greedy(40);
    p.parse_special = true;
    CHECK_EQ_INT(cai_generate(s,
                              "<|im_start|>user\nWrite the word 'café' and a smiley emoji 😀 "
                              "three times.<|im_end|>\n<|im_start|>assistant\n",
                              &p, collect_fn, &c, NULL),
                 0);
    CHECK(c.pieces > 0);
    CHECK_EQ_INT(c.bad_utf8, 0);
    CHECK(utf8_ok((const unsigned char *)c.text, c.n));
    cai_session_free(s);
}

static void test_stop_string(void)
{
    struct cai_session *s = new_session();
    struct collect c = {0};
    struct cai_gen_params p = greedy(32);
    const char *stops[] = {"States"};
    p.stop = stops;
    p.n_stop = 1;
    struct cai_gen_result r;
    /* Greedy continuation: " Paris.\n\nThe United States has ..." */
    CHECK_EQ_INT(cai_generate(s, "The capital of France is", &p, collect_fn, &c, &r), 0);
    CHECK_EQ_INT(r.stop_reason, CAI_STOP_STRING);
    CHECK_STR(c.text, " Paris.\n\nThe United ");
    cai_session_free(s);
}

static void test_callback_stop(void)
{
    struct cai_session *s = new_session();
    struct collect c = {.stop_after = 3};
    struct cai_gen_params p = greedy(32);
    struct cai_gen_result r;
    CHECK_EQ_INT(cai_generate(s, "Once upon a time", &p, collect_fn, &c, &r), 0);
    CHECK_EQ_INT(r.stop_reason, CAI_STOP_CALLBACK);
    CHECK_EQ_INT(c.pieces, 3);
    cai_session_free(s);
}

/* Same seed and settings: same text; another seed: (almost surely) another. */
static void test_seeded_sampling(void)
{
    struct cai_session *s = new_session();
    struct cai_gen_params p = cai_gen_params_default();
    p.max_tokens = 24;
    p.sampling.temp = 1.0f;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.min_p = 0.0f;
    p.sampling.seed = 42;
    struct collect a = {0}, b = {0}, c = {0};
    CHECK_EQ_INT(cai_generate(s, "Once upon a time", &p, collect_fn, &a, NULL), 0);
    CHECK_EQ_INT(cai_generate(s, "Once upon a time", &p, collect_fn, &b, NULL), 0);
    p.sampling.seed = 43;
    CHECK_EQ_INT(cai_generate(s, "Once upon a time", &p, collect_fn, &c, NULL), 0);
    CHECK_STR(a.text, b.text);
    CHECK(strcmp(a.text, c.text) != 0);
    cai_session_free(s);
}

/* A second turn reuses the first turn's tokens from the KV cache. */
static void test_chat_reuses_cache(void)
{
    struct cai_session *s = new_session();
    struct cai_gen_params p = greedy(24);
    struct collect c1 = {0}, c2 = {0};
    struct cai_gen_result r1, r2;
    struct cai_chat_msg msgs[3] = {{"user", "What is the capital of France? Answer in one sentence."}, {NULL, NULL},
                                   {NULL, NULL}};
    CHECK_EQ_INT(cai_chat(s, msgs, 1, &p, collect_fn, &c1, &r1), 0);
    CHECK(strstr(c1.text, "Paris") != NULL);
    CHECK_EQ_INT(r1.n_reused, 0);
    msgs[1] = (struct cai_chat_msg){"assistant", c1.text};
    msgs[2] = (struct cai_chat_msg){"user", "What is the capital of Italy? Answer in one sentence."};
    CHECK_EQ_INT(cai_chat(s, msgs, 3, &p, collect_fn, &c2, &r2), 0);
    CHECK(r2.n_reused >= r1.n_prompt); /* the whole first prompt, and more */
    CHECK(r2.n_prompt > r1.n_prompt + r1.n_gen);
    CHECK_MSG(strstr(c2.text, "Rome") != NULL, "second turn: \"%s\"", c2.text);
    char *text = NULL;
    struct cai_error err = {0};
    CHECK_EQ_INT(cai_chat_render(model, msgs, 3, true, &text, &err), 0);
    CHECK(text && strstr(text, "<|im_start|>assistant\n") != NULL);
    cai_free(text);
    cai_session_free(s);
}

/* True when text is exactly one JSON object (leading whitespace allowed). */
static bool is_json_object(const char *text)
{
    struct cai_json *j = NULL;
    if (cai__json_parse(&j, text, strlen(text), 64, "output", NULL) < 0)
        return false;
    bool ok = cai__json_root(j)->type == CAI_JSON_OBJECT;
    cai__json_free(j);
    return ok;
}

/* JSON mode: the output is one object and generation ends when it closes,
 * greedy and sampled, from a chat request and from a plain prompt the model
 * would otherwise continue in prose. */
static void test_json_mode(void)
{
    struct cai_session *s = new_session();
    struct cai_gen_params p = greedy(200);
    p.json = true;
    struct collect c = {0};
    struct cai_gen_result r;
    struct cai_chat_msg msg = {"user", "Give me a JSON object describing a cat with fields name, age "
                                       "and color."};
    CHECK_EQ_INT(cai_chat(s, &msg, 1, &p, collect_fn, &c, &r), 0);
    CHECK_EQ_INT(r.stop_reason, CAI_STOP_EOG);
    CHECK_MSG(is_json_object(c.text), "not one JSON object: \"%s\"", c.text);
    CHECK(strstr(c.text, "\"name\"") != NULL);

    /* Unconstrained, this prompt continues in prose ... */
    struct cai_gen_params q = greedy(8);
    struct collect prose = {0};
    CHECK_EQ_INT(cai_generate(s, "The capital of France is", &q, collect_fn, &prose, &r), 0);
    CHECK(!is_json_object(prose.text));
    /* ... and in JSON mode every closed output is an object. */
    int closed = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        q = greedy(160);
        q.json = true;
        q.sampling.temp = 0.7f;
        q.sampling.seed = seed;
        struct collect cj = {0};
        CHECK_EQ_INT(cai_generate(s, "The capital of France is", &q, collect_fn, &cj, &r), 0);
        CHECK(r.stop_reason == CAI_STOP_EOG || r.stop_reason == CAI_STOP_MAX_TOKENS);
        if (r.stop_reason == CAI_STOP_EOG) {
            CHECK_MSG(is_json_object(cj.text), "seed %d: \"%s\"", (int)seed, cj.text);
            closed++;
        }
        size_t lead = strspn(cj.text, " \t\r\n");
        CHECK_MSG(cj.text[lead] == '{', "seed %d: \"%s\"", (int)seed, cj.text);
    }
    CHECK(closed >= 1);
    cai_session_free(s);
}

static void test_async_job(void)
{
    struct cai_session *s = new_session();
    struct cai_gen_params p = greedy(8);
    struct cai_job *j;
    CHECK_EQ_INT(cai_job_start(&j, s, "The capital of France is", NULL, 0, &p), 0);
    char text[1024] = "";
    size_t n = 0;
    struct cai_piece pc;
    int rc, pieces = 0;
    while ((rc = cai_job_next(j, &pc, 10000)) == 1) {
        memcpy(text + n, pc.text, pc.n_bytes);
        n += pc.n_bytes;
        text[n] = '\0';
        pieces++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK(pieces > 0);
    CHECK(strncmp(text, " Paris.", 7) == 0);
    struct cai_gen_result r;
    CHECK_EQ_INT(cai_job_result(j, &r), 0);
    CHECK_EQ_INT(r.n_gen, 8);
    cai_job_free(j);

    /* Cancellation: a long generation stops soon after cai_job_cancel. */
    p = greedy(400);
    struct cai_chat_msg m = {"user", "Write a very long story about a dragon."};
    CHECK_EQ_INT(cai_job_start(&j, s, NULL, &m, 1, &p), 0);
    CHECK(cai_job_next(j, &pc, 20000) == 1);
    cai_job_cancel(j);
    while ((rc = cai_job_next(j, &pc, 20000)) == 1)
        ;
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(cai_job_result(j, &r), 0);
    CHECK_EQ_INT(r.stop_reason, CAI_STOP_CALLBACK);
    CHECK(r.n_gen < 400);
    cai_job_free(j);
    CHECK_EQ_INT(cai_job_start(&j, s, "x", &m, 1, &p), CAI_EINVAL);
    cai_session_free(s);
}

static void test_errors(void)
{
    struct cai_session *s = new_session();
    struct cai_gen_params p = greedy(4);
    CHECK_EQ_INT(cai_generate(s, "", &p, NULL, NULL, NULL), CAI_EINVAL);
    CHECK(strstr(cai_session_errmsg(s), "empty") != NULL);
    p.sampling.top_p = 2.0f;
    p.sampling.temp = 0.5f;
    CHECK(cai_generate(s, "Hi", &p, NULL, NULL, NULL) < 0);
    cai_session_free(s);
}

int main(void)
{
    if (access(MODEL, R_OK) != 0) {
        fprintf(stderr, "  SKIP %s absent (run scripts/get_model.sh)\n", MODEL);
        printf("0 passed, 0 failed, 8 skipped\n");
        return 0;
    }
    struct cai_error err = {0};
    if (cai_model_open(&model, MODEL, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_greedy_and_max_tokens);
    RUN(test_utf8_pieces);
    RUN(test_stop_string);
    RUN(test_callback_stop);
    RUN(test_seeded_sampling);
    RUN(test_chat_reuses_cache);
    RUN(test_json_mode);
    RUN(test_async_job);
    RUN(test_errors);
    cai_model_close(model);
    return test_done();
}
