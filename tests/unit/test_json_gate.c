/* test_json_gate.c: the JSON-object gate of JSON-mode generation. Every
 * case is fed byte by byte and as one chunk; prefixes of valid objects must
 * pass, and each bad text must be refused at exactly the byte that breaks it. */
#include <string.h>

#include "base/json.h"
#include "sample/json_gate.h"
#include "test.h"

/* Feeds text; returns the index of the first refused byte, or -1. */
static int refused_at(const char *text, size_t n, bool *done)
{
    struct cai__jgate g;
    cai__jgate_init(&g);
    for (size_t i = 0; i < n; i++) {
        if (!cai__jgate_feed(&g, text + i, 1))
            return (int)i;
    }
    *done = cai__jgate_done(&g);
    return -1;
}

static void test_valid_objects(void)
{
    static const char *ok[] = {
        "{}",
        " \n{ }",
        "{\"a\":1}",
        "{\"a\": -0.5e+10, \"b\": [1, 2.0, 3E-2, 0, -0], \"c\": {}}",
        "{\"s\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"}",
        "{\"t\": true, \"f\": false, \"n\": null, \"arr\": [true, [null, []], {\"x\": \"y\"}]}",
        "{\"utf8\": \"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf\"}",
        "{\"k\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        bool done = false;
        size_t n = strlen(ok[i]);
        int at = refused_at(ok[i], n, &done);
        CHECK_MSG(at == -1, "case %zu refused at byte %d: %s", i, at, ok[i]);
        CHECK_MSG(done, "case %zu not complete: %s", i, ok[i]);
        /* Every proper prefix is accepted and incomplete. */
        for (size_t k = 0; k < n; k++) {
            bool d = false;
            CHECK(refused_at(ok[i], k, &d) == -1 && !d);
        }
        /* One chunk gives the same answer; our JSON parser agrees it is valid. */
        struct cai__jgate g;
        cai__jgate_init(&g);
        CHECK(cai__jgate_feed(&g, ok[i], n) && cai__jgate_done(&g));
        struct cai_json *j = NULL;
        CHECK_MSG(cai__json_parse(&j, ok[i], n, 64, "case", NULL) == 0, "parser refuses case %zu", i);
        cai__json_free(j);
    }
}

static void test_refused(void)
{
    static const struct {
        const char *text;
        int         at; /* first refused byte */
    } bad[] = {
        {"[1]", 0},                 /* the top level must be an object */
        {"\"s\"", 0},
        {"1", 0},
        {"{1:2}", 1},               /* keys are strings */
        {"{\"a\" 1}", 5},           /* colon missing */
        {"{\"a\":}", 5},            /* value missing */
        {"{\"a\":1,}", 7},          /* trailing comma */
        {"{\"a\":[1,]}", 8},
        {"{\"a\":01}", 6},          /* leading zero */
        {"{\"a\":-}", 6},
        {"{\"a\":1.}", 7},
        {"{\"a\":1e}", 7},
        {"{\"a\":.5}", 5},
        {"{\"a\":+1}", 5},
        {"{\"a\":tru}", 8},
        {"{\"a\":nul1}", 8},
        {"{\"a\":\"x\ny\"}", 7},     /* raw control character in a string */
        {"{\"a\":\"\\x\"}", 7},      /* unknown escape */
        {"{\"a\":\"\\u12G4\"}", 10},
        {"{\"a\":\"\\uDC00\"}", 9},       /* lone low surrogate */
        {"{\"a\":\"\\ud83dx\"}", 12},      /* high surrogate without its low one */
        {"{\"a\":\"\\ud83d\\u0041\"}", 14}, /* ... followed by a non-surrogate */
        {"{\"a\":\"\xc0\xaf\"}", 6}, /* overlong */
        {"{\"a\":\"\xed\xa0\x80\"}", 7}, /* UTF-16 surrogate as UTF-8 */
        {"{\"a\":\"\xf4\x90\x80\x80\"}", 7}, /* above U+10FFFF */
        {"{\"a\":\"\xe2\x82\"}", 8},  /* truncated sequence */
        {"{\"a\":[}", 6},           /* mismatched close */
        {"{\"a\":1]", 6},
        {"{} ", 2},                 /* nothing after the object */
        {"{}{}", 2},
        {"{                 }", 17}, /* whitespace run over the limit */
        {"{\"k\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 36}, /* deeper than 32 */
    };
    /* A number of 64 characters is fine, a 65th is refused. */
    char num[128] = "{\"n\":";
    size_t at = strlen(num);
    memset(num + at, '7', 64);
    num[at + 64] = '\0';
    bool done = true;
    CHECK(refused_at(num, strlen(num), &done) == -1 && !done);
    num[at + 64] = '7';
    num[at + 65] = '\0';
    CHECK_EQ_INT(refused_at(num, strlen(num), &done), (int)(at + 64));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        done = false;
        int got = refused_at(bad[i].text, strlen(bad[i].text), &done);
        CHECK_MSG(got == bad[i].at, "case %zu (%s): refused at %d, expected %d", i, bad[i].text,
                  got, bad[i].at);
    }
}

int main(void)
{
    RUN(test_valid_objects);
    RUN(test_refused);
    return test_done();
}
