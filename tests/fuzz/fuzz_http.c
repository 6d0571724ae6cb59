/* fuzz_http.c: libFuzzer target for the server's request handling: the
 * incremental HTTP parser and the OpenAI/Ollama request-body parser, with
 * the response bodies built from what was accepted.
 *
 * The first byte picks the mode; the rest is the input:
 *   even: raw HTTP. The bytes arrive in pseudo-random slices, each call with
 *         a freshly allocated copy of everything so far (stale pointers into
 *         an old buffer would be caught by ASan); the result must equal a
 *         one-shot parse of the same bytes. Each complete request is checked
 *         (spans inside the input, lengths add up), its body goes through the
 *         API parser for the route its path names (or all seven kinds), and
 *         pipelined requests follow. Bit 1 set: small limits.
 *   odd:  the rest is a request body, parsed as each of the seven kinds.
 * Accepted requests produce streamed events, an end, a final body and an
 * error body; every one must be valid JSON.
 * Build: `make fuzz`; run: build-fuzz/fuzz_http -max_total_time=60 tests/fuzz/corpus/http */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "base/json.h"
#include "server/api.h"
#include "server/http.h"


static bool valid_json(const char *s, size_t n)
{
    struct cai_json *j = NULL;
    bool ok = cai__json_parse(&j, s, n, 0, "fuzz", NULL) == 0;
    cai__json_free(j);
    return ok;
}

/* Every line of an unchunked stream that carries JSON must parse. */
static void check_events(const struct cai__buf *b, bool ollama)
{
    if (!b->n)
        return;
    const char *s = b->data, *end = b->data + b->n;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (ollama && len)
            REQUIRE(valid_json(s, len));
        if (!ollama && len > 6 && !memcmp(s, "data: ", 6) && !(len == 12 && !memcmp(s + 6, "[DONE]", 6)))
            REQUIRE(valid_json(s + 6, len - 6));
        s = nl ? nl + 1 : end;
    }
}

static void exercise_api(int kind, const char *body, size_t n, const uint8_t *text, size_t n_text)
{
    struct cai__api_request r;
    struct cai_error err = {0};
    int rc = cai__api_parse(&r, kind, body, n, 16, &err);
    if (rc < 0) {
        REQUIRE(err.msg[0] && r.msgs == NULL && r.prompt == NULL && r.model == NULL);
        struct cai__buf b;
        cai__buf_init(&b, 1 << 16);
        REQUIRE(cai__api_error(&b, cai__api_is_ollama(kind), 400, err.msg));
        REQUIRE(valid_json(b.data, b.n));
        cai__buf_free(&b);
        return;
    }
    if (cai__api_is_embed(kind)) {
        REQUIRE(r.n_inputs >= 1 && r.n_inputs <= CAI__API_MAX_INPUTS && r.inputs);
        for (int i = 0; i < r.n_inputs; i++)
            REQUIRE(r.inputs[i]);
        float v[3 * 4] = {0.5f, -1e-7f, 3.0f, 0.0f};
        struct cai__api_reply er = {.kind = kind, .model = r.model ? r.model : "m"};
        struct cai__buf eb;
        cai__buf_init(&eb, 1 << 16);
        REQUIRE(cai__api_embed_final(&eb, &er, v, 3, 4, 7, 1));
        REQUIRE(valid_json(eb.data, eb.n));
        cai__buf_free(&eb);
        cai__api_request_free(&r);
        return;
    }
    REQUIRE((r.prompt != NULL) + (r.msgs != NULL) <= 1);
    REQUIRE(r.load_only || r.prompt || r.msgs);
    REQUIRE(r.n_stop >= 0 && r.n_stop <= CAI__API_MAX_STOP && r.gp.n_stop == r.n_stop);
    for (size_t i = 0; i < r.n_msgs; i++)
        REQUIRE(r.msgs[i].role && r.msgs[i].content);
    struct cai__api_reply rep = {.kind = kind, .include_usage = r.include_usage,
                                 .id = "id", .model = r.model ? r.model : "m", .created = 1};
    struct cai_gen_result res = {.n_prompt = 3, .n_gen = 2, .stop_reason = CAI_STOP_EOG};
    struct cai__buf b;
    cai__buf_init(&b, 1 << 20);
    const char *t = r.prompt ? r.prompt : r.n_msgs ? r.msgs[r.n_msgs - 1].content : "";
    REQUIRE(cai__api_stream_piece(&b, &rep, t, strlen(t)));
    REQUIRE(cai__api_stream_piece(&b, &rep, (const char *)text, n_text));
    REQUIRE(cai__api_stream_end(&b, &rep, &res, 1));
    check_events(&b, cai__api_is_ollama(kind));
    cai__buf_reset(&b);
    REQUIRE(cai__api_final(&b, &rep, (const char *)text, n_text, &res, 1));
    REQUIRE(valid_json(b.data, b.n));
    cai__buf_reset(&b);
    REQUIRE(cai__api_stream_error(&b, &rep, t));
    check_events(&b, cai__api_is_ollama(kind));
    if (cai__api_is_ollama(kind)) {
        cai__buf_reset(&b);
        REQUIRE(cai__api_ollama_load(&b, &rep));
        REQUIRE(valid_json(b.data, b.n - 1));
    }
    cai__buf_free(&b);
    cai__buf_free(&rep.scratch);
    cai__api_request_free(&r);
}

static void route_body(const struct cai__http_request *rq, const uint8_t *text, size_t n_text)
{
    static const struct {
        const char *path;
        int         kind;
    } routes[] = {
        {"/v1/chat/completions", CAI_API_OAI_CHAT},
        {"/v1/completions", CAI_API_OAI_COMPLETION},
        {"/api/generate", CAI_API_OLLAMA_GENERATE},
        {"/api/chat", CAI_API_OLLAMA_CHAT},
        {"/v1/embeddings", CAI_API_OAI_EMBED},
        {"/api/embed", CAI_API_OLLAMA_EMBED},
        {"/api/embeddings", CAI_API_OLLAMA_EMBEDDINGS},
    };
    bool routed = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (cai__http_path_is(rq, routes[i].path)) {
            exercise_api(routes[i].kind, rq->body, rq->body_len, text, n_text);
            routed = true;
        }
    }
    if (!routed && rq->body_len)
        for (int k = 0; k <= CAI_API_OLLAMA_EMBEDDINGS; k++)
            exercise_api(k, rq->body, rq->body_len, text, n_text);
}

static bool within(const char *p, size_t n, const char *base, size_t size)
{
    return !p ? n == 0 : p >= base && n <= size && (size_t)(p - base) <= size - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if (mode & 1) {
        for (int k = 0; k <= CAI_API_OLLAMA_EMBEDDINGS; k++)
            exercise_api(k, in, n, data + 1, n < 64 ? n : 64);
        return 0;
    }
    struct cai__http_limits lim = cai__http_limits_default();
    if (mode & 2) {
        lim.max_line = 64;
        lim.max_head = 256;
        lim.max_headers = 8;
        lim.max_body = 512;
    }
    uint32_t rng = 0x9e3779b9u ^ mode ^ (uint32_t)size;
    size_t off = 0;
    for (int n_req = 0; n_req < 64 && off < n; n_req++) {
        const char *rest = in + off;
        size_t left = n - off;
        /* One shot. */
        struct cai__http_parser one;
        cai__http_parser_init(&one);
        int64_t r1 = cai__http_parse(&one, rest, left, &lim);
        /* Incremental, a fresh copy per call. */
        struct cai__http_parser inc;
        cai__http_parser_init(&inc);
        int64_t r2 = 0;
        char *copy = NULL;
        size_t have = 0;
        while (have < left) {
            rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
            size_t step = 1 + rng % 23;
            have = have + step > left ? left : have + step;
            char *nc = malloc(have);
            memcpy(nc, rest, have);
            free(copy);
            copy = nc;
            r2 = cai__http_parse(&inc, copy, have, &lim);
            if (r2 != 0)
                break;
        }
        free(copy);
        REQUIRE(r1 == r2);
        if (r1 < 0) {
            REQUIRE(one.status == inc.status && one.reason && one.reason[0]);
            REQUIRE(one.status == 400 || one.status == 411 || one.status == 413 ||
                    one.status == 414 || one.status == 417 || one.status == 431 ||
                    one.status == 505);
            return 0;
        }
        if (r1 == 0)
            return 0;
        const struct cai__http_request *rq = &one.req;
        REQUIRE((size_t)r1 <= left);
        REQUIRE(rq->head_len + rq->body_len == (size_t)r1);
        REQUIRE(rq->body_len == rq->content_length && rq->body_len <= lim.max_body);
        REQUIRE(rq->head_len <= lim.max_head);
        REQUIRE(rq->version == 10 || rq->version == 11);
        REQUIRE(rq->n_headers <= lim.max_headers);
        REQUIRE(within(rq->method_str, rq->method_len, rest, left));
        REQUIRE(within(rq->target, rq->target_len, rest, left));
        REQUIRE(within(rq->query, rq->query_len, rest, left));
        REQUIRE(within(rq->host, rq->host_len, rest, left));
        REQUIRE(rq->body == rest + rq->head_len);
        REQUIRE(rq->path && rq->path_len >= 1 && (rq->path[0] == '/' || rq->path[0] == '*'));
        for (uint32_t i = 0; i < rq->n_headers; i++) {
            REQUIRE(within(rq->headers[i].name, rq->headers[i].name_len, rest, left));
            REQUIRE(within(rq->headers[i].value, rq->headers[i].value_len, rest, left));
        }
        route_body(rq, (const uint8_t *)rest, left < 64 ? left : 64);
        off += (size_t)r1;
    }
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include "fuzz_main.h"
#endif
