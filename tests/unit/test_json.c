/* test_json.c: the strict JSON parser: values, walking, escapes, UTF-8, and
 * a table of documents it must refuse. */
#include <stdint.h>

#include "test.h"
#include "base/json.h"

static struct cai_json *parse(const char *s, struct cai_error *err)
{
    struct cai_json *j = NULL;
    int rc = cai__json_parse(&j, s, strlen(s), 0, "t.json", err);
    return rc == 0 ? j : NULL;
}

static void test_values(void)
{
    struct cai_error err;
    struct cai_json *j = parse(" {\"a\": 1, \"b\": [true, false, null, -2.5e1, \"x\"],"
                               " \"c\": {}, \"d\": [], \"e\": 18446744073709551615,"
                               " \"f\": -9223372036854775808, \"g\": 1e400, \"a\": 2} ", &err);
    CHECK_MSG(j != NULL, "%s", err.msg);
    if (!j)
        return;
    const struct cai_json_node *r = cai__json_root(j), *v;
    CHECK(cai__json_is(r, CAI_JSON_OBJECT) && r->n == 8);
    uint64_t u;
    int64_t i;
    double f;
    bool b;
    CHECK(cai__json_u64(cai__json_get(j, r, "a"), &u) && u == 1); /* first of duplicates */
    v = cai__json_get(j, r, "b");
    CHECK(cai__json_is(v, CAI_JSON_ARRAY) && v->n == 5);
    const struct cai_json_node *x = cai__json_first(j, v);
    CHECK(cai__json_bool(x, &b) && b);
    x = cai__json_next(j, v, x);
    CHECK(cai__json_bool(x, &b) && !b);
    x = cai__json_next(j, v, x);
    CHECK(cai__json_is(x, CAI_JSON_NULL));
    x = cai__json_next(j, v, x);
    CHECK(cai__json_f64(x, &f) && f == -25.0 && !cai__json_i64(x, &i));
    x = cai__json_next(j, v, x);
    CHECK(cai__json_str_eq(x, "x"));
    CHECK(cai__json_next(j, v, x) == NULL);
    CHECK(cai__json_first(j, cai__json_get(j, r, "c")) == NULL);
    CHECK(cai__json_first(j, cai__json_get(j, r, "d")) == NULL);
    CHECK(cai__json_u64(cai__json_get(j, r, "e"), &u) && u == UINT64_MAX);
    CHECK(!cai__json_i64(cai__json_get(j, r, "e"), &i));
    CHECK(cai__json_i64(cai__json_get(j, r, "f"), &i) && i == INT64_MIN);
    CHECK(!cai__json_u64(cai__json_get(j, r, "f"), &u));
    CHECK(cai__json_f64(cai__json_get(j, r, "g"), &f) && f > 1e300);
    CHECK(cai__json_get(j, r, "zz") == NULL);
    /* Walking keys in order. */
    const char *keys[] = {"a", "b", "c", "d", "e", "f", "g", "a"};
    int k = 0;
    for (x = cai__json_first(j, r); x; x = cai__json_next(j, r, x), k++)
        CHECK(k < 8 && cai__json_str_eq(x, keys[k]));
    CHECK(k == 8);
    cai__json_free(j);

    /* Scalars as documents; a too-large integer stays a double. */
    j = parse("12345678901234567890123", &err);
    CHECK(j && !cai__json_u64(cai__json_root(j), &u) && cai__json_f64(cai__json_root(j), &f) &&
          f > 1.2e22);
    cai__json_free(j);
    j = parse("-0", &err);
    CHECK(j && cai__json_i64(cai__json_root(j), &i) && i == 0);
    cai__json_free(j);
}

static void test_strings(void)
{
    struct cai_error err;
    struct cai_json *j = parse("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\\ud83d\\ude00\","
                               " \"\\u0000x\", \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", \"\"]",
                               &err);
    CHECK_MSG(j != NULL, "%s", err.msg);
    if (!j)
        return;
    const struct cai_json_node *r = cai__json_root(j), *x = cai__json_first(j, r);
    CHECK(x->len == 12 && memcmp(x->s, "a\"b\\c/d\b\f\n\r\t", 12) == 0);
    x = cai__json_next(j, r, x);
    CHECK(x->len == 2 + 3 + 4 && memcmp(x->s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9) == 0);
    x = cai__json_next(j, r, x);
    CHECK(x->len == 2 && x->s[0] == '\0' && x->s[1] == 'x');
    x = cai__json_next(j, r, x);
    CHECK(x->len == 9);
    x = cai__json_next(j, r, x);
    CHECK(x->len == 0 && x->s[0] == '\0');
    cai__json_free(j);
}

static void test_refused(void)
{
    static const char *bad[] = {
        "", " ", "{", "[", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{1:2}",
        "{\"a\" 1}", "[1 2]", "01", "1.", ".5", "1e", "1e+", "-", "+1", "0x10", "tru", "nul",
        "falsey", "[true false]", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"a\tb\"", "\"\x01\"",
        "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"\x80\"",
        "[1] x", "{} {}", "NaN", "Infinity", "[-]", "{\"a\":1]", "[1}", "'a'",
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(bad); i++) {
        struct cai_error err = {0};
        struct cai_json *j = (struct cai_json *)1;
        int rc = cai__json_parse(&j, bad[i], strlen(bad[i]), 0, "bad.json", &err);
        CHECK_MSG(rc == CAI_EFORMAT && j == NULL && strstr(err.msg, "bad.json: JSON: ") &&
                      strstr(err.msg, "at byte"),
                  "case %zu \"%s\": rc %d", i, bad[i], rc);
    }
    /* Length-bounded: bytes past n_bytes are never read. */
    struct cai_json *j;
    struct cai_error err;
    CHECK(cai__json_parse(&j, "[1]garbage", 3, 0, "n", &err) == 0);
    cai__json_free(j);
    CHECK(cai__json_parse(&j, "[12345", 3, 0, "n", &err) == CAI_EFORMAT);
}

static void test_depth(void)
{
    char buf[2048];
    struct cai_error err;
    struct cai_json *j;
    for (int d = 1; d <= 1000; d *= 10) {
        int n = 0;
        for (int i = 0; i < d; i++)
            buf[n++] = '[';
        for (int i = 0; i < d; i++)
            buf[n++] = ']';
        int rc = cai__json_parse(&j, buf, (size_t)n, 64, "deep", &err);
        CHECK(d <= 64 ? rc == 0 : (rc == CAI_EFORMAT && strstr(err.msg, "too deep")));
        if (rc == 0)
            cai__json_free(j);
    }
    /* Exactly the limit, then one more. */
    memset(buf, '[', 8);
    memset(buf + 8, ']', 8);
    CHECK(cai__json_parse(&j, buf, 16, 8, "d", &err) == 0);
    cai__json_free(j);
    memset(buf, '[', 9);
    memset(buf + 9, ']', 9);
    CHECK(cai__json_parse(&j, buf, 18, 8, "d", &err) == CAI_EFORMAT);
}

/* Out of memory at every allocation: a clean failure each time. */
static void test_oom(void)
{
    const char *doc = "{\"a\": [1, 2, {\"b\": \"c\"}], \"d\": \"e\"}";
    for (long n = 1; n < 20; n++) {
        struct cai_json *j;
        struct cai_error err;
        cai__alloc_fail_after(n);
        int rc = cai__json_parse(&j, doc, strlen(doc), 0, "oom", &err);
        cai__alloc_fail_after(0);
        CHECK(rc == 0 || rc == CAI_ENOMEM);
        if (rc == 0)
            cai__json_free(j);
    }
}

int main(void)
{
    RUN(test_values);
    RUN(test_strings);
    RUN(test_refused);
    RUN(test_depth);
    RUN(test_oom);
    return test_done();
}
