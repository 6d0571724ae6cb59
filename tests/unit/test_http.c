/* test_http.c: the server's pure parts, without sockets or a model.
 *   - the HTTP request parser: a table of good and bad requests with the
 *     status each must get, pipelining, byte-by-byte arrival in a buffer that
 *     moves between calls (ASan catches stale pointers), inputs without a NUL
 *     after them, limits;
 *   - the response helpers (head, chunks, server-sent events);
 *   - the JSON writer: escaping, invalid UTF-8, structure misuse, numbers,
 *     bounded buffers, and a seeded round trip through the JSON parser;
 *   - OpenAI/Ollama request parsing and the response bodies it builds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "server/api.h"
#include "server/http.h"
#include "server/json_out.h"
#include "test.h"

/* ---- helpers ----------------------------------------------------------- */

/* Parses text from an exact-size heap copy (no NUL after it). */
static int64_t parse_all(const char *text, size_t n, struct cai__http_parser *p,
                         const struct cai__http_limits *lim)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    cai__http_parser_init(p);
    int64_t r = cai__http_parse(p, copy, n, lim);
    free(copy);
    return r;
}

/* Parses a whole request; returns the status it gets: 200 for a complete
 * request, 0 for "needs more", else the parser's error status. */
static int status_of(const char *text)
{
    struct cai__http_limits lim = cai__http_limits_default();
    struct cai__http_parser p;
    int64_t r = parse_all(text, strlen(text), &p, &lim);
    return r > 0 ? 200 : r == 0 ? 0 : p.status;
}

static bool span_is(const char *s, size_t n, const char *lit)
{
    return s && n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* ---- parser: table ----------------------------------------------------- */

static void test_parse_table(void)
{
    static const struct {
        const char *req;
        int         status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200},
        {"GET / HTTP/1.0\r\n\r\n", 200},
        {"GET / HTTP/1.1\nHost: x\n\n", 200}, /* bare LF line ends */
        {"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 200}, /* leading empty lines */
        {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 200},
        {"GET http://localhost:8080/v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 200},
        {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 200},
        {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab", 0},
        {"GET / HTTP/1.1\r\nHost: x\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: x\r\n\r", 0},
        {"GET / HTT", 0},
        {"", 0},
        {"\r\n", 0},
        /* bad request lines */
        {"GET /\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},
        {" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        {"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505},
        {"GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET http:// HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\rHost: x\r\n\r\n", 400}, /* bare CR */
        {"\x16\x03\x01\x02\x01\x01\xfc\x03\x03\r\n\r\n", 400}, /* TLS-like bytes */
        /* bad header fields */
        {"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n", 200}, /* obs-text is fine */
        {"GET / HTTP/1.1\r\n\r\n", 400},                             /* no Host in 1.1 */
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        /* Content-Length and Transfer-Encoding */
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-length: 2\r\n\r\nab", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8388609\r\n\r\n", 413},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab", 200},
        {"POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 2\r\n\r\nab", 417},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(cases); i++) {
        int got = status_of(cases[i].req);
        CHECK_MSG(got == cases[i].status, "case %zu: got %d, want %d", i, got, cases[i].status);
    }
}

static void test_parse_fields(void)
{
    struct cai__http_limits lim = cai__http_limits_default();
    struct cai__http_parser p;
    const char *req = "POST /v1/chat/completions?x=1&y HTTP/1.1\r\n"
                      "Host:  localhost:8080  \r\n"
                      "content-TYPE: application/json\r\n"
                      "Connection: Upgrade, close\r\n"
                      "Content-Length: 2\r\n\r\n{}";
    int64_t r = parse_all(req, strlen(req), &p, &lim);
    CHECK_EQ_INT(r, (int64_t)strlen(req));
    /* The copy is gone; only check scalar fields and lengths here. */
    CHECK_EQ_INT(p.req.method, CAI_HTTP_POST);
    CHECK_EQ_INT(p.req.version, 11);
    CHECK_EQ_INT(p.req.n_headers, 4);
    CHECK_EQ_INT(p.req.content_length, 2);
    CHECK_EQ_INT(p.req.body_len, 2);
    CHECK(!p.req.keep_alive);
    CHECK_EQ_INT(p.req.path_len, strlen("/v1/chat/completions"));
    CHECK_EQ_INT(p.req.query_len, strlen("x=1&y"));
    CHECK_EQ_INT(p.req.host_len, strlen("localhost:8080"));

    /* With the data kept alive, check the spans themselves. */
    cai__http_parser_init(&p);
    r = cai__http_parse(&p, req, strlen(req), &lim);
    CHECK(r > 0);
    CHECK(span_is(p.req.method_str, p.req.method_len, "POST"));
    CHECK(span_is(p.req.path, p.req.path_len, "/v1/chat/completions"));
    CHECK(cai__http_path_is(&p.req, "/v1/chat/completions"));
    CHECK(!cai__http_path_is(&p.req, "/v1/chat"));
    CHECK(span_is(p.req.query, p.req.query_len, "x=1&y"));
    CHECK(span_is(p.req.host, p.req.host_len, "localhost:8080"));
    CHECK(span_is(p.req.body, p.req.body_len, "{}"));
    size_t n = 0;
    const char *v = cai__http_header(&p.req, "Content-Type", &n);
    CHECK(span_is(v, n, "application/json"));
    CHECK(cai__http_header(&p.req, "X-Missing", &n) == NULL);

    /* Keep-alive defaults and the Connection header. */
    static const struct {
        const char *req;
        bool        keep;
    } ka[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", false},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(ka); i++) {
        r = parse_all(ka[i].req, strlen(ka[i].req), &p, &lim);
        CHECK(r > 0);
        CHECK_MSG(p.req.keep_alive == ka[i].keep, "keep-alive case %zu", i);
    }

    /* Absolute-form targets. */
    const char *abs1 = "GET http://127.0.0.1:8080/api/tags?a=b HTTP/1.1\r\nHost: x\r\n\r\n";
    cai__http_parser_init(&p);
    CHECK(cai__http_parse(&p, abs1, strlen(abs1), &lim) > 0);
    CHECK(cai__http_path_is(&p.req, "/api/tags"));
    CHECK(span_is(p.req.query, p.req.query_len, "a=b"));
    const char *abs2 = "GET HTTPS://example.com HTTP/1.1\r\nHost: x\r\n\r\n";
    cai__http_parser_init(&p);
    CHECK(cai__http_parse(&p, abs2, strlen(abs2), &lim) > 0);
    CHECK(cai__http_path_is(&p.req, "/"));
    const char *lower = "get / HTTP/1.1\r\nHost: x\r\n\r\n"; /* methods are case-sensitive */
    cai__http_parser_init(&p);
    CHECK(cai__http_parse(&p, lower, strlen(lower), &lim) > 0);
    CHECK_EQ_INT(p.req.method, CAI_HTTP_OTHER);
}

static void test_parse_pipelined(void)
{
    struct cai__http_limits lim = cai__http_limits_default();
    const char *reqs = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                       "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /c HTTP/1.0\r\n\r\n"
                       "GET /d HTTP/1.1\r\nHo";
    size_t n = strlen(reqs), off = 0;
    const char *paths[] = {"/a", "/b", "/c"};
    struct cai__http_parser p;
    for (int i = 0; i < 3; i++) {
        cai__http_parser_init(&p);
        int64_t r = cai__http_parse(&p, reqs + off, n - off, &lim);
        CHECK(r > 0);
        if (r <= 0)
            return;
        CHECK(cai__http_path_is(&p.req, paths[i]));
        if (i == 0)
            CHECK(span_is(p.req.body, p.req.body_len, "hello"));
        off += (size_t)r;
    }
    cai__http_parser_init(&p);
    CHECK_EQ_INT(cai__http_parse(&p, reqs + off, n - off, &lim), 0); /* the partial 4th */
}

/* Feeds the request one byte at a time in a buffer that is reallocated
 * (moved) before every call, as a connection's input buffer may be. */
static void test_parse_byte_by_byte(void)
{
    struct cai__http_limits lim = cai__http_limits_default();
    const char *req = "\r\nPOST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Expect: 100-continue\r\nContent-Length: 11\r\n\r\n{\"a\": true}";
    size_t n = strlen(req);
    struct cai__http_parser p;
    cai__http_parser_init(&p);
    char *buf = NULL;
    int64_t r = 0;
    bool saw_head = false;
    for (size_t i = 1; i <= n; i++) {
        char *nb = malloc(i); /* a fresh block each time: the old one is freed */
        memcpy(nb, req, i);
        free(buf);
        buf = nb;
        r = cai__http_parse(&p, buf, i, &lim);
        if (i < n) {
            CHECK_MSG(r == 0, "prefix %zu: %lld", i, (long long)r);
            if (p.head_done && !saw_head) {
                saw_head = true;
                CHECK(p.req.expect_continue);
                CHECK_EQ_INT(p.req.content_length, 11);
            }
        }
    }
    CHECK(saw_head);
    CHECK_EQ_INT(r, (int64_t)n);
    CHECK(cai__http_path_is(&p.req, "/v1/completions"));
    CHECK(span_is(p.req.body, p.req.body_len, "{\"a\": true}"));
    free(buf);
}

static void test_parse_limits(void)
{
    struct cai__http_limits lim = cai__http_limits_default();
    lim.max_line = 64;
    lim.max_head = 256;
    lim.max_headers = 4;
    lim.max_body = 10;
    struct cai__http_parser p;
    char big[1024];

    /* A long request line is refused before its end arrives. */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    CHECK_EQ_INT(parse_all(big, 100, &p, &lim), -1);
    CHECK_EQ_INT(p.status, 414);
    /* At the limit it is fine. */
    snprintf(big, sizeof(big), "GET /%0*d HTTP/1.1\r\nHost: x\r\n\r\n", 64 - 14, 0);
    CHECK_EQ_INT(parse_all(big, strlen(big), &p, &lim), (int64_t)strlen(big));
    snprintf(big, sizeof(big), "GET /%0*d HTTP/1.1\r\nHost: x\r\n\r\n", 64 - 13, 0);
    CHECK_EQ_INT(parse_all(big, strlen(big), &p, &lim), -1);
    CHECK_EQ_INT(p.status, 414);

    /* A head that grows past max_head, with or without its end. */
    int k = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + k, 'b', 300);
    CHECK_EQ_INT(parse_all(big, (size_t)k + 300, &p, &lim), -1);
    CHECK_EQ_INT(p.status, 431);
    /* Only empty lines: still bounded. */
    memset(big, '\n', 300);
    CHECK_EQ_INT(parse_all(big, 300, &p, &lim), -1);
    CHECK_EQ_INT(p.status, 431);

    /* Header count. */
    const char *many = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    CHECK_EQ_INT(parse_all(many, strlen(many), &p, &lim), -1);
    CHECK_EQ_INT(p.status, 431);
    const char *four = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK(parse_all(four, strlen(four), &p, &lim) > 0);

    /* Body size: refused from the head alone. */
    const char *body = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
    CHECK_EQ_INT(parse_all(body, strlen(body), &p, &lim), -1);
    CHECK_EQ_INT(p.status, 413);
    const char *ok = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
    CHECK_EQ_INT(parse_all(ok, strlen(ok), &p, &lim), (int64_t)strlen(ok));

    /* Errors are sticky. */
    cai__http_parser_init(&p);
    CHECK_EQ_INT(cai__http_parse(&p, "BAD\r\n\r\n", 7, &lim), -1);
    CHECK_EQ_INT(cai__http_parse(&p, "GET / HTTP/1.0\r\n\r\n", 18, &lim), -1);
    CHECK(p.reason != NULL && p.reason[0]);
}

/* ---- responses --------------------------------------------------------- */

static void test_response_writer(void)
{
    struct cai__buf b;
    cai__buf_init(&b, 1 << 20);
    CHECK(cai__http_write_head(&b, 200, "application/json", 2, false, true, "X-A: 1\r\n"));
    CHECK(strncmp(b.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(b.data, "Content-Type: application/json\r\n") != NULL);
    CHECK(strstr(b.data, "Content-Length: 2\r\n") != NULL);
    CHECK(strstr(b.data, "Connection: keep-alive\r\n") != NULL);
    CHECK(strstr(b.data, "X-A: 1\r\n\r\n") != NULL);
    CHECK(strstr(b.data, "Transfer-Encoding") == NULL);

    cai__buf_reset(&b);
    CHECK(cai__http_write_head(&b, 503, NULL, -1, true, true, NULL));
    CHECK(strncmp(b.data, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    CHECK(strstr(b.data, "Transfer-Encoding: chunked\r\n") != NULL);

    cai__buf_reset(&b); /* 204: no body, so no length, and keep-alive is fine */
    CHECK(cai__http_write_head(&b, 204, NULL, 0, false, true, "Allow: GET\r\n"));
    CHECK(strstr(b.data, "Content-Length") == NULL && strstr(b.data, "Transfer-Encoding") == NULL);
    CHECK(strstr(b.data, "Connection: keep-alive\r\n") != NULL);

    cai__buf_reset(&b); /* neither length nor chunks: the connection must close */
    CHECK(cai__http_write_head(&b, 200, NULL, -1, false, true, NULL));
    CHECK(strstr(b.data, "Connection: close\r\n") != NULL);

    cai__buf_reset(&b);
    CHECK(cai__http_write_chunk(&b, true, "hello world, this is sixteen+", 29));
    CHECK_STR(b.data, "1d\r\nhello world, this is sixteen+\r\n");
    cai__buf_reset(&b);
    CHECK(cai__http_write_chunk(&b, true, "", 0)); /* never an accidental end */
    CHECK_EQ_INT(b.n, 0);
    CHECK(cai__http_write_last_chunk(&b, true));
    CHECK_STR(b.data, "0\r\n\r\n");
    cai__buf_reset(&b);
    CHECK(cai__http_write_chunk(&b, false, "raw", 3));
    CHECK(cai__http_write_last_chunk(&b, false));
    CHECK_STR(b.data, "raw");

    /* SSE: one data line per line of the payload; the chunk size is exact. */
    const char *payloads[] = {"{\"a\":1}", "[DONE]", "two\nlines", "", "a\r\nb\rc\n"};
    const char *events[] = {"data: {\"a\":1}\n\n", "data: [DONE]\n\n",
                            "data: two\ndata: lines\n\n", "data: \n\n",
                            "data: a\ndata: \ndata: b\ndata: c\ndata: \n\n"};
    for (size_t i = 0; i < CAI_ARRAY_LEN(payloads); i++) {
        cai__buf_reset(&b);
        CHECK(cai__http_write_sse(&b, false, payloads[i], strlen(payloads[i])));
        CHECK_STR(b.data, events[i]);
        cai__buf_reset(&b);
        CHECK(cai__http_write_sse(&b, true, payloads[i], strlen(payloads[i])));
        char *end;
        unsigned long size = strtoul(b.data, &end, 16);
        CHECK(end[0] == '\r' && end[1] == '\n');
        CHECK_EQ_INT(size, strlen(events[i]));
        CHECK_EQ_INT(b.n, (size_t)(end - b.data) + 2 + size + 2);
    }
    CHECK_STR(cai__http_reason(404), "Not Found");
    CHECK_STR(cai__http_reason(799), "Unknown");
    cai__buf_free(&b);
}

/* ---- JSON writer ------------------------------------------------------- */

static void test_json_escape(void)
{
    static const struct {
        const char *in;
        size_t      n;
        const char *out;
    } cases[] = {
        {"plain", 5, "plain"},
        {"q\"b\\s/", 6, "q\\\"b\\\\s/"},
        {"\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t"},
        {"\x01\x1f\x7f", 3, "\\u0001\\u001f\x7f"},
        {"a\0b", 3, "a\\u0000b"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"\xff", 1, "\\ufffd"},
        {"\xc0\x80", 2, "\\ufffd\\ufffd"},         /* overlong NUL */
        {"\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd"}, /* a surrogate */
        {"\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* past U+10FFFF */
        {"\xe2\x82", 2, "\\ufffd\\ufffd"},          /* truncated */
        {"x\xe2\x82", 3, "x\\ufffd\\ufffd"},
        {"\xc3\xa9\x80", 3, "\xc3\xa9\\ufffd"},     /* stray continuation */
    };
    struct cai__buf b;
    cai__buf_init(&b, 4096);
    for (size_t i = 0; i < CAI_ARRAY_LEN(cases); i++) {
        cai__buf_reset(&b);
        CHECK(cai__json_escape(&b, cases[i].in, cases[i].n));
        CHECK_MSG(b.n == strlen(cases[i].out) && memcmp(b.data, cases[i].out, b.n) == 0,
                  "case %zu: got \"%s\"", i, b.data);
    }
    cai__buf_free(&b);
}

static void test_json_writer(void)
{
    struct cai__buf b;
    cai__buf_init(&b, 1 << 16);
    struct cai__jw w;
    cai__jw_init(&w, &b);
    cai__jw_obj(&w);
    cai__jw_key(&w, "a");
    cai__jw_arr(&w);
    cai__jw_int(&w, INT64_MIN);
    cai__jw_int(&w, INT64_MAX);
    cai__jw_uint(&w, UINT64_MAX);
    cai__jw_num(&w, 0.1);
    cai__jw_num(&w, -1e300);
    cai__jw_num(&w, 0.0 / 0.0);
    cai__jw_bool(&w, true);
    cai__jw_null(&w);
    cai__jw_obj(&w);
    cai__jw_obj_end(&w);
    cai__jw_arr(&w);
    cai__jw_arr_end(&w);
    cai__jw_arr_end(&w);
    cai__jw_key(&w, "k\"ey");
    cai__jw_str(&w, NULL);
    cai__jw_key(&w, "s");
    cai__jw_strn(&w, "x\ny", 3);
    cai__jw_obj_end(&w);
    CHECK(cai__jw_ok(&w));
    CHECK_STR(b.data, "{\"a\":[-9223372036854775808,9223372036854775807,18446744073709551615,"
                      "0.1,-1e+300,null,true,null,{},[]],\"k\\\"ey\":null,\"s\":\"x\\ny\"}");
    struct cai_json *j = NULL;
    CHECK(cai__json_parse(&j, b.data, b.n, 0, "out", NULL) == 0);
    cai__json_free(j);

    /* Misuse is reported, not written silently. */
    cai__buf_reset(&b);
    cai__jw_init(&w, &b);
    cai__jw_obj(&w);
    cai__jw_int(&w, 1); /* a value without a key */
    CHECK(!cai__jw_ok(&w));
    cai__buf_reset(&b);
    cai__jw_init(&w, &b);
    cai__jw_arr(&w);
    cai__jw_key(&w, "k"); /* a key in an array */
    CHECK(!cai__jw_ok(&w));
    cai__buf_reset(&b);
    cai__jw_init(&w, &b);
    cai__jw_arr(&w);
    cai__jw_obj_end(&w); /* mismatched close */
    CHECK(!cai__jw_ok(&w));
    cai__buf_reset(&b);
    cai__jw_init(&w, &b);
    cai__jw_int(&w, 1);
    cai__jw_int(&w, 2); /* two top-level values */
    CHECK(!cai__jw_ok(&w));
    cai__buf_reset(&b);
    cai__jw_init(&w, &b);
    cai__jw_arr(&w); /* unclosed */
    CHECK(!cai__jw_ok(&w));
    cai__buf_reset(&b);
    cai__jw_init(&w, &b);
    CHECK(!cai__jw_ok(&w)); /* nothing written */
    cai__buf_reset(&b);
    cai__jw_init(&w, &b);
    for (int i = 0; i < CAI__JW_MAX_DEPTH + 5; i++)
        cai__jw_arr(&w);
    for (int i = 0; i < CAI__JW_MAX_DEPTH + 5; i++)
        cai__jw_arr_end(&w);
    CHECK(!cai__jw_ok(&w));
    CHECK(b.n <= (size_t)CAI__JW_MAX_DEPTH + 1);
    cai__buf_free(&b);
}

static void test_buf_bounds(void)
{
    struct cai__buf b;
    cai__buf_init(&b, 10);
    CHECK(cai__buf_puts(&b, "0123456789"));
    CHECK_EQ_INT(b.n, 10);
    CHECK(!cai__buf_putc(&b, 'x'));
    CHECK(b.failed);
    CHECK(!cai__buf_puts(&b, "")); /* stays failed */
    CHECK_EQ_INT(b.n, 10);
    CHECK_STR(b.data, "0123456789");
    cai__buf_reset(&b);
    CHECK(!b.failed);
    CHECK(cai__buf_printf(&b, "%d-%s", 42, "ab"));
    CHECK_STR(b.data, "42-ab");
    cai__buf_consume(&b, 3);
    CHECK_STR(b.data, "ab");
    cai__buf_consume(&b, 99);
    CHECK_EQ_INT(b.n, 0);
    CHECK(!cai__buf_printf(&b, "%s", "a long string past the limit"));
    CHECK(b.failed);
    CHECK(!cai__buf_reserve(&b, SIZE_MAX));
    cai__buf_free(&b);

    /* A long formatted write goes through the second vsnprintf path. */
    cai__buf_init(&b, 1 << 20);
    char big[2000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK(cai__buf_printf(&b, "<%s>", big));
    CHECK_EQ_INT(b.n, sizeof(big) + 1);
    CHECK(b.data[0] == '<' && b.data[b.n - 1] == '>' && b.data[b.n] == '\0');

    /* Output that would pass the limit fails the writer. */
    struct cai__buf small;
    cai__buf_init(&small, 8);
    struct cai__jw w;
    cai__jw_init(&w, &small);
    cai__jw_str(&w, "more than eight bytes");
    CHECK(!cai__jw_ok(&w));
    cai__buf_free(&small);
    cai__buf_free(&b);
}

/* Random byte strings: escaped output always parses, and decodes to the
 * input when the input was valid UTF-8. */
static void test_json_roundtrip(void)
{
    uint64_t x = 0x1234567;
    struct cai__buf b;
    cai__buf_init(&b, 1 << 16);
    int n_valid = 0;
    for (int iter = 0; iter < 3000; iter++) {
        unsigned char s[48];
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = (size_t)(x >> 59) + (size_t)(x >> 61); /* 0..38 */
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(x >> 56);
            /* Mostly ASCII and well-formed UTF-8 pieces, sometimes junk. */
            s[i] = r < 120 ? (unsigned char)(0x20 + r % 95)
                   : r < 160 ? (unsigned char)(r % 32)
                   : r < 200 ? (unsigned char)"\xc3\xa9\xe2\x82\xac"[r % 5]
                             : (unsigned char)r;
        }
        cai__buf_reset(&b);
        struct cai__jw w;
        cai__jw_init(&w, &b);
        cai__jw_strn(&w, (const char *)s, n);
        CHECK(cai__jw_ok(&w));
        struct cai_json *j = NULL;
        struct cai_error err = {0};
        int rc = cai__json_parse(&j, b.data, b.n, 0, "rt", &err);
        CHECK_MSG(rc == 0, "iteration %d: %s", iter, err.msg);
        if (rc)
            continue;
        const struct cai_json_node *root = cai__json_root(j);
        CHECK(root->type == CAI_JSON_STRING);
        /* Valid input comes back byte for byte. */
        struct cai__buf esc;
        cai__buf_init(&esc, 1 << 12);
        cai__json_escape(&esc, (const char *)s, n);
        bool valid = strstr(esc.data ? esc.data : "", "\\ufffd") == NULL;
        cai__buf_free(&esc);
        if (valid) {
            n_valid++;
            CHECK(root->len == n && memcmp(root->s, s, n) == 0);
        }
        cai__json_free(j);
    }
    CHECK(n_valid > 100);
    cai__buf_free(&b);
}

/* ---- OpenAI / Ollama requests ----------------------------------------- */

static int api(int kind, const char *body, struct cai__api_request *r, struct cai_error *err)
{
    memset(err, 0, sizeof(*err));
    return cai__api_parse(r, kind, body, strlen(body), 0, err);
}

static void test_api_requests(void)
{
    struct cai__api_request r;
    struct cai_error err;

    CHECK_EQ_INT(api(CAI_API_OAI_CHAT,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                     "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null},"
                     "{\"role\":\"developer\",\"content\":\"x\"}],"
                     "\"max_tokens\":16,\"temperature\":0.5,\"top_p\":0.9,\"seed\":7,"
                     "\"stop\":[\"\\n\\n\",\"END\"],\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true},\"n\":1,\"user\":\"u\"}",
                     &r, &err),
                 0);
    CHECK_STR(r.model, "m");
    CHECK_EQ_INT(r.n_msgs, 4);
    if (r.n_msgs == 4) {
        CHECK_STR(r.msgs[0].role, "system");
        CHECK_STR(r.msgs[1].content, "a\nb");
        CHECK_STR(r.msgs[2].content, "");
        CHECK_STR(r.msgs[3].role, "system");
    }
    CHECK(r.prompt == NULL);
    CHECK_EQ_INT(r.gp.max_tokens, 16);
    CHECK_NEAR(r.gp.sampling.temp, 0.5, 1e-6);
    CHECK_NEAR(r.gp.sampling.top_p, 0.9, 1e-6);
    CHECK(r.seed_set && r.gp.sampling.seed == 7);
    CHECK_EQ_INT(r.gp.n_stop, 2);
    CHECK(r.gp.stop && !strcmp(r.gp.stop[0], "\n\n") && !strcmp(r.gp.stop[1], "END"));
    CHECK(r.stream && r.include_usage);
    cai__api_request_free(&r);

    CHECK_EQ_INT(api(CAI_API_OAI_COMPLETION,
                     "{\"prompt\":[\"Once\"],\"max_completion_tokens\":3,\"stop\":\"x\"}", &r, &err),
                 0);
    CHECK_STR(r.prompt, "Once");
    CHECK_EQ_INT(r.gp.max_tokens, 3);
    CHECK_EQ_INT(r.n_stop, 1);
    CHECK(!r.stream);
    cai__api_request_free(&r);

    /* Ollama: streaming by default, options, system + prompt become messages. */
    CHECK_EQ_INT(api(CAI_API_OLLAMA_GENERATE,
                     "{\"model\":\"smollm\",\"prompt\":\"hi\",\"system\":\"sys\",\"options\":"
                     "{\"num_predict\":5,\"temperature\":0,\"top_k\":20,\"seed\":-1,"
                     "\"stop\":[\"a\"],\"repeat_penalty\":1.1,\"num_ctx\":2048}}",
                     &r, &err),
                 0);
    CHECK(r.stream && !r.load_only && !r.seed_set);
    CHECK_EQ_INT(r.n_msgs, 2);
    CHECK_EQ_INT(r.gp.max_tokens, 5);
    CHECK_EQ_INT(r.gp.sampling.top_k, 20);
    CHECK_EQ_INT(r.n_stop, 1);
    cai__api_request_free(&r);

    CHECK_EQ_INT(api(CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"<x>\",\"raw\":true,\"stream\":false,"
                                             "\"options\":{\"num_predict\":-1}}",
                     &r, &err),
                 0);
    CHECK_STR(r.prompt, "<x>");
    CHECK(!r.stream && r.gp.max_tokens == 0 && r.gp.parse_special);
    cai__api_request_free(&r);

    CHECK_EQ_INT(api(CAI_API_OLLAMA_GENERATE, "{\"model\":\"m\"}", &r, &err), 0);
    CHECK(r.load_only);
    cai__api_request_free(&r);
    CHECK_EQ_INT(api(CAI_API_OLLAMA_CHAT, "{\"model\":\"m\",\"messages\":[]}", &r, &err), 0);
    CHECK(r.load_only);
    cai__api_request_free(&r);
    CHECK_EQ_INT(api(CAI_API_OLLAMA_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
                     &r, &err),
                 0);
    CHECK(!r.load_only && r.n_msgs == 1 && r.stream);
    cai__api_request_free(&r);

    /* Refusals, each with a message. */
    static const struct {
        int         kind;
        const char *body;
    } bad[] = {
        {CAI_API_OAI_CHAT, "{\"messages\": [}"},
        {CAI_API_OAI_CHAT, ""},
        {CAI_API_OAI_CHAT, "[]"},
        {CAI_API_OAI_CHAT, "{}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":\"hi\"}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[1]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                           "\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"temperature\":\"hot\"}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"temperature\":-1}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":1.5}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"max_tokens\":1.5}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":"
                           "[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\","
                           "\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"stream\":\"yes\"}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"tools\":[{\"type\":\"function\"}]}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"logprobs\":true}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"response_format\":{\"type\":\"json_schema\"}}"},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"repeat_penalty\":0}"},
        {CAI_API_OAI_CHAT, "{\"model\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"},
        {CAI_API_OAI_COMPLETION, "{}"},
        {CAI_API_OAI_COMPLETION, "{\"prompt\":[1,2,3]}"},
        {CAI_API_OAI_COMPLETION, "{\"prompt\":\"x\",\"echo\":true}"},
        {CAI_API_OAI_COMPLETION, "{\"prompt\":\"x\",\"suffix\":\"y\"}"},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"options\":[]}"},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"format\":{\"type\":\"object\"}}"},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"format\":\"yaml\"}"},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"images\":[\"aGk=\"]}"},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"template\":\"{{ .Prompt }}\"}"},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"options\":{\"top_k\":-1}}"},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":3}"},
        {CAI_API_OLLAMA_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\","
                              "\"images\":[\"aGk=\"]}]}"},
        {CAI_API_OLLAMA_CHAT, "{\"messages\":{}}"},
        {CAI_API_OLLAMA_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[]}]}"},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(bad); i++) {
        int rc = api(bad[i].kind, bad[i].body, &r, &err);
        CHECK_MSG(rc == CAI_EINVAL && err.msg[0], "bad case %zu: rc %d", i, rc);
        CHECK(r.msgs == NULL && r.prompt == NULL && r.model == NULL && r.n_stop == 0);
    }

    /* JSON mode from either API; text and an empty format leave it off. */
    static const struct {
        int         kind;
        const char *body;
        bool        json;
    } jm[] = {
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"response_format\":{\"type\":\"json_object\"}}", true},
        {CAI_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"response_format\":{\"type\":\"text\"}}", false},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"format\":\"json\"}", true},
        {CAI_API_OLLAMA_GENERATE, "{\"prompt\":\"x\",\"format\":\"\"}", false},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(jm); i++) {
        CHECK_MSG(api(jm[i].kind, jm[i].body, &r, &err) == 0, "json case %zu: %s", i, err.msg);
        CHECK_MSG(r.gp.json == jm[i].json, "json case %zu", i);
        cai__api_request_free(&r);
    }

    /* Deep nesting is refused by the parser's depth bound. */
    char deep[200];
    int k = snprintf(deep, sizeof(deep), "{\"messages\":");
    for (int i = 0; i < 40; i++)
        deep[k++] = '[';
    deep[k] = '\0';
    CHECK_EQ_INT(api(CAI_API_OAI_CHAT, deep, &r, &err), CAI_EINVAL);
}

/* Strips the SSE / NDJSON / chunk framing the api functions add and checks
 * every event is one valid JSON document (or [DONE]); returns the count. */
static int count_events(const char *s, bool ollama, int *n_done)
{
    int n = 0;
    *n_done = 0;
    const char *line = s;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *json = NULL;
        size_t jlen = 0;
        if (!ollama && len > 6 && !strncmp(line, "data: ", 6)) {
            json = line + 6;
            jlen = len - 6;
        } else if (ollama && len > 0 && line[0] == '{') {
            json = line;
            jlen = len;
        }
        if (json && jlen == 6 && !memcmp(json, "[DONE]", 6)) {
            (*n_done)++;
        } else if (json) {
            struct cai_json *j = NULL;
            if (cai__json_parse(&j, json, jlen, 0, "event", NULL) == 0)
                n++;
            else
                n = -1000;
            cai__json_free(j);
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    return n;
}

static void test_api_responses(void)
{
    struct cai_gen_result res = {.n_prompt = 10, .n_reused = 4, .n_gen = 3,
                                 .stop_reason = CAI_STOP_MAX_TOKENS, .t_prompt_ns = 1000000,
                                 .t_gen_ns = 2000000};
    const int kinds[] = {CAI_API_OAI_CHAT, CAI_API_OAI_COMPLETION, CAI_API_OLLAMA_GENERATE,
                         CAI_API_OLLAMA_CHAT};
    for (size_t i = 0; i < CAI_ARRAY_LEN(kinds); i++) {
        struct cai__api_reply r = {.kind = kinds[i], .chunked = false, .include_usage = true,
                                   .id = "chatcmpl-1", .model = "m\"odel", .created = 1};
        struct cai__buf out;
        cai__buf_init(&out, 1 << 20);
        bool ollama = cai__api_is_ollama(kinds[i]);
        CHECK(cai__api_stream_piece(&out, &r, "Hel", 3));
        CHECK(cai__api_stream_piece(&out, &r, "lo \"\n\xff", 6));
        CHECK(cai__api_stream_end(&out, &r, &res, 5000000));
        int n_done;
        int n = count_events(out.data, ollama, &n_done);
        CHECK_EQ_INT(n, ollama ? 3 : 4); /* OpenAI: 2 pieces, finish, usage */
        CHECK_EQ_INT(n_done, ollama ? 0 : 1);
        CHECK(strstr(out.data, ollama ? "\"done_reason\":\"length\"" : "\"finish_reason\":\"length\"")
              != NULL);
        CHECK(strstr(out.data, "lo \\\"\\n\\ufffd") != NULL);
        if (ollama)
            CHECK(strstr(out.data, "\"eval_count\":3") && strstr(out.data, "\"prompt_eval_count\":10"));
        else
            CHECK(strstr(out.data, "\"completion_tokens\":3") &&
                  strstr(out.data, "\"cached_tokens\":4"));
        if (kinds[i] == CAI_API_OAI_CHAT)
            CHECK(strstr(out.data, "\"role\":\"assistant\"") != NULL);

        cai__buf_reset(&out);
        CHECK(cai__api_final(&out, &r, "whole", 5, &res, 5000000));
        struct cai_json *j = NULL;
        CHECK(cai__json_parse(&j, out.data, out.n, 0, "final", NULL) == 0);
        cai__json_free(j);
        CHECK(strstr(out.data, "whole") != NULL);

        cai__buf_reset(&out);
        CHECK(cai__api_stream_error(&out, &r, "boom"));
        n = count_events(out.data, ollama, &n_done);
        CHECK_EQ_INT(n, 1);
        CHECK(strstr(out.data, "boom") != NULL);

        cai__buf_reset(&out);
        CHECK(cai__api_error(&out, ollama, 400, "bad \"thing\""));
        CHECK_STR(out.data, ollama ? "{\"error\":\"bad \\\"thing\\\"\"}"
                                   : "{\"error\":{\"message\":\"bad \\\"thing\\\"\","
                                     "\"type\":\"invalid_request_error\",\"code\":400}}");
        if (ollama) {
            cai__buf_reset(&out);
            CHECK(cai__api_ollama_load(&out, &r));
            CHECK(strstr(out.data, "\"done_reason\":\"load\"") != NULL);
        }
        cai__buf_free(&out);
        cai__buf_free(&r.scratch);
    }
    CHECK_STR(cai__api_finish_reason(CAI_STOP_EOG), "stop");
    CHECK_STR(cai__api_finish_reason(CAI_STOP_STRING), "stop");
    CHECK_STR(cai__api_finish_reason(CAI_STOP_CTX_FULL), "length");

    /* Model listings from a description (no model needed). */
    struct cai__api_model m;
    memset(&m, 0, sizeof(m));
    snprintf(m.name, sizeof(m.name), "tiny");
    snprintf(m.family, sizeof(m.family), "llama");
    snprintf(m.quant, sizeof(m.quant), "Q4_1");
    m.chat_template = "{{ messages }}";
    struct cai__buf out;
    cai__buf_init(&out, 1 << 20);
    bool (*fns[])(struct cai__buf *, const struct cai__api_model *) = {cai__api_oai_models,
                                                                      cai__api_ollama_show};
    for (size_t i = 0; i < CAI_ARRAY_LEN(fns); i++) {
        cai__buf_reset(&out);
        CHECK(fns[i](&out, &m));
        struct cai_json *j = NULL;
        CHECK(cai__json_parse(&j, out.data, out.n, 0, "models", NULL) == 0);
        cai__json_free(j);
    }
    cai__buf_reset(&out);
    CHECK(cai__api_ollama_tags(&out, &m, false));
    CHECK(strstr(out.data, "\"name\":\"tiny:latest\"") != NULL);
    cai__buf_reset(&out);
    CHECK(cai__api_ollama_version(&out));
    CHECK(strncmp(out.data, "{\"version\":\"", 12) == 0);
    char ts[40];
    cai__api_timestamp(ts);
    CHECK(strlen(ts) == 30 && ts[4] == '-' && ts[10] == 'T' && ts[29] == 'Z');
    size_t n_page;
    const char *page = cai__api_chat_page(&n_page);
    CHECK(n_page > 100 && strlen(page) == n_page && strstr(page, "/v1/chat/completions"));
    cai__buf_free(&out);
}

int main(void)
{
    RUN(test_parse_table);
    RUN(test_parse_fields);
    RUN(test_parse_pipelined);
    RUN(test_parse_byte_by_byte);
    RUN(test_parse_limits);
    RUN(test_response_writer);
    RUN(test_json_escape);
    RUN(test_json_writer);
    RUN(test_buf_bounds);
    RUN(test_json_roundtrip);
    RUN(test_api_requests);
    RUN(test_api_responses);
    return test_done();
}
