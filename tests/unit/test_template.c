/* test_template.c: chat templates.
 *
 * The golden part replays tests/golden/templates/cases.txt (written by
 * scripts/make_template_fixtures.py with Python's jinja2): real chat
 * templates (SmolLM2, Gemma 3, Llama 3.x, Qwen2.5, Qwen3, Llama 2, Phi-3,
 * Mistral) over a range of conversations, and one case per interpreter
 * feature, each compared byte for byte, or by error code. The rest checks
 * what jinja2 cannot tell us: error offsets and codes, the resource bounds,
 * the built-in families and their detection, the fallback, and argument
 * handling. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "base/base.h"
#include "tok/template.h"

#define GOLDEN_DIR "tests/golden/templates/"

/* ---- golden cases ------------------------------------------------------ */

struct golden_case {
    char name[128];
    char *tmpl; /* owned */
    size_t tmpl_len;
    struct cai_chat_msg *msgs; /* strings point into the cases file */
    size_t n_msgs;
    bool agp;
    char *bos, *eos, *expect;
    size_t expect_len;
    int expect_err; /* 0: expect text */
};

/* Cursor over cases.txt. Strings are NUL-terminated in place (the byte
 * after each blob is the newline that the format puts there). */
struct reader {
    char *p, *end;
    bool bad;
};

static char *read_line(struct reader *r)
{
    if (r->bad || r->p >= r->end)
        return NULL;
    char *s = r->p, *nl = memchr(s, '\n', (size_t)(r->end - s));
    if (!nl) {
        r->bad = true;
        return NULL;
    }
    *nl = '\0';
    r->p = nl + 1;
    return s;
}

/* "<key> <n>\n<bytes>\n" → the bytes, NUL-terminated. */
static char *read_blob(struct reader *r, const char *key, size_t *len)
{
    char *line = read_line(r);
    size_t k = strlen(key);
    if (!line || strncmp(line, key, k) != 0 || line[k] != ' ') {
        r->bad = true;
        return NULL;
    }
    size_t n = strtoull(line + k + 1, NULL, 10);
    if ((size_t)(r->end - r->p) < n + 1 || r->p[n] != '\n') {
        r->bad = true;
        return NULL;
    }
    char *s = r->p;
    s[n] = '\0';
    r->p += n + 1;
    if (len)
        *len = n;
    return s;
}

static int err_code(const char *name)
{
    if (strcmp(name, "EFORMAT") == 0)
        return CAI_EFORMAT;
    if (strcmp(name, "EINVAL") == 0)
        return CAI_EINVAL;
    if (strcmp(name, "ERANGE") == 0)
        return CAI_ERANGE;
    return 1;
}

static bool read_case(struct reader *r, struct golden_case *gc)
{
    char *line;
    memset(gc, 0, sizeof(*gc));
    do {
        line = read_line(r);
        if (!line)
            return false;
    } while (line[0] == '#' || line[0] == '\0');
    if (strncmp(line, "case ", 5) != 0) {
        r->bad = true;
        return false;
    }
    snprintf(gc->name, sizeof(gc->name), "%s", line + 5);
    if (strncmp(r->p, "tmpl_file ", 10) == 0) {
        char path[256];
        line = read_line(r);
        snprintf(path, sizeof(path), GOLDEN_DIR "%s", line + 10);
        if (cai__read_file(path, &gc->tmpl, &gc->tmpl_len, NULL) != 0) {
            r->bad = true;
            return false;
        }
    } else {
        size_t n;
        char *t = read_blob(r, "tmpl", &n);
        if (!t)
            return false;
        gc->tmpl = cai__malloc(n + 1);
        memcpy(gc->tmpl, t, n + 1);
        gc->tmpl_len = n;
    }
    line = read_line(r);
    if (!line || sscanf(line, "msgs %zu", &gc->n_msgs) != 1) {
        r->bad = true;
        return false;
    }
    gc->msgs = calloc(gc->n_msgs + 1, sizeof(*gc->msgs));
    for (size_t i = 0; i < gc->n_msgs; i++) {
        gc->msgs[i].role = read_blob(r, "role", NULL);
        if (strncmp(r->p, "content none\n", 13) == 0)
            read_line(r);
        else
            gc->msgs[i].content = read_blob(r, "content", NULL);
    }
    line = read_line(r);
    gc->agp = line && strcmp(line, "agp 1") == 0;
    gc->bos = read_blob(r, "bos", NULL);
    gc->eos = read_blob(r, "eos", NULL);
    if (strncmp(r->p, "error ", 6) == 0) {
        line = read_line(r);
        gc->expect_err = err_code(line + 6);
    } else {
        gc->expect = read_blob(r, "expect", &gc->expect_len);
    }
    line = read_line(r);
    if (!line || strcmp(line, "end") != 0)
        r->bad = true;
    return !r->bad;
}

static void free_case(struct golden_case *gc)
{
    cai__free(gc->tmpl);
    free(gc->msgs);
}

/* Prints where two renders first differ, with some context. */
static void show_diff(const char *name, const char *got, size_t got_len, const char *want,
                      size_t want_len)
{
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  %s: differs at byte %zu (got %zu bytes, want %zu)\n", name, i, got_len,
            want_len);
    fprintf(stderr, "    got:  \"");
    for (size_t k = from; k < got_len && k < i + 40; k++)
        fputc(got[k] == '\n' ? '|' : got[k], stderr);
    fprintf(stderr, "\"\n    want: \"");
    for (size_t k = from; k < want_len && k < i + 40; k++)
        fputc(want[k] == '\n' ? '|' : want[k], stderr);
    fprintf(stderr, "\"\n");
}

static int golden_total, golden_real;

static void test_golden_cases(void)
{
    char *data = NULL;
    size_t n_data = 0;
    struct cai_error err = {0};
    if (cai__read_file(GOLDEN_DIR "cases.txt", &data, &n_data, &err) != 0) {
        CHECK_MSG(0, "cannot read cases.txt: %s", err.msg);
        return;
    }
    struct reader r = {data, data + n_data, false};
    struct golden_case gc;
    int n = 0, n_fail = 0;
    while (read_case(&r, &gc)) {
        char *out = NULL;
        size_t out_len = 0;
        memset(&err, 0, sizeof(err));
        int rc = cai__chat_render_jinja(gc.tmpl, gc.tmpl_len, gc.msgs, gc.n_msgs, gc.agp, gc.bos,
                                        gc.eos, NULL, &out, &out_len, &err);
        n++;
        if (strncmp(gc.name, "expr/", 5) != 0)
            golden_real++;
        if (gc.expect_err) {
            if (rc != gc.expect_err) {
                n_fail++;
                fprintf(stderr, "  %s: want %s, got %d (%s)\n", gc.name,
                        cai_err_name(gc.expect_err), rc, rc ? err.msg : out);
            } else if (!strstr(err.msg, "offset ")) {
                n_fail++;
                fprintf(stderr, "  %s: error without an offset: %s\n", gc.name, err.msg);
            }
        } else if (rc != 0) {
            n_fail++;
            fprintf(stderr, "  %s: failed: %s\n", gc.name, err.msg);
        } else if (out_len != gc.expect_len || memcmp(out, gc.expect, out_len) != 0 ||
                   strlen(out) != out_len) {
            n_fail++;
            show_diff(gc.name, out, out_len, gc.expect, gc.expect_len);
        }
        cai__free(out);
        free_case(&gc);
    }
    CHECK_MSG(!r.bad, "cases.txt is malformed near byte %td", r.p - data);
    CHECK_MSG(n >= 250, "only %d golden cases", n);
    CHECK_MSG(n_fail == 0, "%d of %d golden cases failed", n_fail, n);
    golden_total = n;
    cai__free(data);
}

/* ---- helpers ----------------------------------------------------------- */

static const struct cai_chat_msg conv_multi[] = {
    {"system", "You are a terse assistant."},
    {"user", "What is the capital of France?"},
    {"assistant", "Paris."},
    {"user", "And of Italy?"},
};

static const struct cai_chat_msg conv_nosys[] = {
    {"user", "  Hello!\n"},
    {"assistant", "Hi, how can I help?"},
    {"user", "Tell me a joke."},
};

/* Renders `tmpl` with conv_multi; returns the code, the text in *out (freed
 * by the caller) and the message in err. */
static int render_lim(const char *tmpl, const struct cai__tmpl_limits *lim, char **out,
                      struct cai_error *err)
{
    size_t n;
    memset(err, 0, sizeof(*err));
    return cai__chat_render_jinja(tmpl, strlen(tmpl), conv_multi, CAI_ARRAY_LEN(conv_multi), true,
                                  "<s>", "</s>", lim, out, &n, err);
}

static int render(const char *tmpl, char **out, struct cai_error *err)
{
    return render_lim(tmpl, NULL, out, err);
}

/* Expects `tmpl` to render to `want`. */
static void expect_render(const char *tmpl, const char *want)
{
    char *out = NULL;
    struct cai_error err;
    int rc = render(tmpl, &out, &err);
    CHECK_MSG(rc == 0, "%s: %s", tmpl, err.msg);
    if (rc == 0)
        CHECK_STR(out, want);
    cai__free(out);
}

/* Expects `tmpl` to fail with `code` and "offset <off>:" in the message
 * (off < 0: any offset). */
static void expect_error_lim(const char *tmpl, const struct cai__tmpl_limits *lim, int code,
                             long off)
{
    char *out = (char *)1;
    struct cai_error err;
    int rc = render_lim(tmpl, lim, &out, &err);
    CHECK_MSG(rc == code, "%.60s: want %s, got %d (%s)", tmpl, cai_err_name(code), rc,
              rc ? err.msg : "ok");
    CHECK(out == NULL);
    CHECK(err.code == rc);
    char want[48];
    if (off >= 0) {
        snprintf(want, sizeof(want), "offset %ld:", off);
        CHECK_MSG(strstr(err.msg, want) != NULL, "%.60s: want '%s' in '%s'", tmpl, want, err.msg);
    } else {
        CHECK_MSG(strstr(err.msg, "offset ") != NULL, "%.60s: no offset in '%s'", tmpl, err.msg);
    }
    if (rc == 0)
        cai__free(out);
}

static void expect_error(const char *tmpl, int code, long off)
{
    expect_error_lim(tmpl, NULL, code, off);
}

/* A template of `n` copies of `unit` between `head` and `tail`. */
static char *repeat_str(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

/* ---- expressions, filters, whitespace ---------------------------------- */

static void test_expressions(void)
{
    expect_render("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 7 / 2 }}",
                  "7|3|2|1024|3.5");
    expect_render("{{ 'a' ~ 1 ~ none }}|{{ 'x' + 'y' }}|{{ [1] + [2] }}", "a1None|xy|[1, 2]");
    expect_render("{{ 1 < 2 < 3 }}{{ 'b' in 'abc' }}{{ 3 not in [1, 2] }}{{ not none }}",
                  "TrueTrueTrueTrue");
    expect_render("{{ messages[0]['role'] }}|{{ messages[1].content }}|{{ messages[1:]|length }}",
                  "system|What is the capital of France?|3");
    expect_render("{{ messages[-1].content[4:6] }}|{{ 'abc'[::-1] }}", "of|cba");
    expect_render("{{ 'x' if messages else 'y' }}{{ 'z' if false }}", "x");
    expect_render("{{ nothing }}|{{ nothing is defined }}|{{ nothing|default('d') }}|{{ tools }}",
                  "|False|d|");
    expect_render("{{ 0.1 + 0.2 }}|{{ 1e100 }}|{{ 3.0 }}|{{ 2.5e-7 }}",
                  "0.30000000000000004|1e+100|3.0|2.5e-07");
    expect_render("{{ {'a': [1, 'x', none, true]} }}|{{ ('t',) }}",
                  "{'a': [1, 'x', None, True]}|('t',)");
}

static void test_filters(void)
{
    expect_render("[{{ '  hi  '|trim }}]{{ 'Ab'|upper }}{{ 'Ab'|lower }}{{ [1, 2]|length }}",
                  "[hi]ABab2");
    expect_render("{{ {'k': ['v', 1.5, none, false]}|tojson }}",
                  "{\"k\": [\"v\", 1.5, null, false]}");
    expect_render("{{ 'caf\xc3\xa9 \"q\"\n'|tojson }}", "\"caf\xc3\xa9 \\\"q\\\"\\n\"");
    expect_render("{{ [3, 1, 2]|first }}{{ [3, 1, 2]|last }}{{ ['a', 'b']|join('-') }}", "32a-b");
    expect_render(
        "{{ 'aXbX'|replace('X', '.') }}|{{ nothing|default('u') }}|{{ ''|default('e', true) }}",
        "a.b.|u|e");
    expect_render("{{ ' a b '.strip() }}|{{ 'xhix'.lstrip('x') }}|{{ 'a,b'.split(',') }}|"
                  "{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}",
                  "a b|hix|['a', 'b']|TrueTrue");
    expect_render(
        "{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(';') }}",
        "What is the capital of France?;And of Italy?");
}

static void test_statements(void)
{
    expect_render("{% for m in messages %}{{ loop.index }}{{ m.role[0] }}{% if not loop.last %},{% "
                  "endif %}{% endfor %}",
                  "1s,2u,3a,4u");
    expect_render("{% for m in messages if m.role != 'system' %}{{ loop.index0 }}/{{ loop.length "
                  "}} {% endfor %}",
                  "0/3 1/3 2/3 ");
    expect_render("{% set ns = namespace(x=false) %}{% for m in messages %}{% set ns.x = true %}{% "
                  "endfor %}{{ ns.x }}",
                  "True");
    expect_render("{% set x = 1 %}{% for m in messages %}{% set x = 2 %}{% endfor %}{{ x }}", "1");
    expect_render(
        "{% macro tag(n, v='x') %}<{{ n }}={{ v }}>{% endmacro %}{{ tag('a') }}{{ tag('b', v=2) }}",
        "<a=x><b=2>");
    expect_render("{% for i in range(10) %}{% if i > 2 %}{% break %}{% endif %}{{ i }}{% endfor %}",
                  "012");
    expect_render("a{# comment #}b{% raw %}{{ c }}{% endraw %}", "ab{{ c }}");
}

static void test_whitespace_control(void)
{
    expect_render("{% if true %}\n  yes\n{% endif %}\n", "  yes\n");
    expect_render("x\n    {% if true %}\ny\n    {% endif %}\nz", "x\ny\nz");
    expect_render("a  {{- 'b' -}}  \n c", "abc");
    expect_render("a\n  {%- if true %} b{% endif %}", "a b");
    expect_render("{{ 'v' }}\n{{ 'w' }}", "v\nw"); /* no trim after }} */
    expect_render("  {{ 'kept' }}", "  kept");     /* no lstrip before {{ */
    expect_render("a\n\n", "a\n");                 /* one trailing newline dropped */
}

/* Message content that looks like template syntax is data, never code. */
static void test_content_is_literal(void)
{
    const struct cai_chat_msg msgs[] = {
        {"user", "{{ not code }} {% if x %}y{% endif %} {# c #} {{ raise_exception('x') }}"},
    };
    const char *tmpl = "{% for m in messages %}[{{ m.content }}]{% endfor %}";
    char *out = NULL;
    size_t n;
    struct cai_error err;
    int rc = cai__chat_render_jinja(tmpl, strlen(tmpl), msgs, 1, false, NULL, NULL, NULL, &out, &n,
                                    &err);
    CHECK_EQ_INT(rc, 0);
    CHECK_STR(out, "[{{ not code }} {% if x %}y{% endif %} {# c #} {{ raise_exception('x') }}]");
    cai__free(out);
}

/* ---- errors ------------------------------------------------------------ */

static void test_syntax_errors(void)
{
    expect_error("abc{{ 'x' ", CAI_EFORMAT, 3);         /* unclosed {{ */
    expect_error("abc{% if true %}x", CAI_EFORMAT, 17); /* expected endif at the end */
    expect_error("ab{# open", CAI_EFORMAT, 2);          /* unclosed comment */
    expect_error("{{ 'abc }}", CAI_EFORMAT, 3);         /* unterminated string */
    expect_error("{% raw %}x", CAI_EFORMAT, 0);         /* missing endraw */
    expect_error("{{ 1 + }}", CAI_EFORMAT, 7);
    expect_error("{{ (1 ] }}", CAI_EFORMAT, 6);
    expect_error("{{ a.b.c( }}", CAI_EFORMAT, -1);
    expect_error("{% if true %}{% endfor %}", CAI_EFORMAT, 16);
    expect_error("{% include 'x' %}", CAI_EFORMAT, 3);
    expect_error("{% for x in y %}{% else %}{% else %}{% endfor %}", CAI_EFORMAT, -1);
    expect_error("{% break %}", CAI_EFORMAT, 3);
    expect_error("{% macro m(a=1, b) %}{% endmacro %}", CAI_EFORMAT, -1);
    expect_error("{% set 1 = 2 %}", CAI_EFORMAT, 7);
    expect_error("{{ 'x'|nosuchfilter }}", CAI_EFORMAT, 7);
    expect_error("{{ 1 is nosuchtest }}", CAI_EFORMAT, 8);
    expect_error("{{ '\\x4' }}", CAI_EFORMAT, 3);
    expect_error("{{ 99999999999999999999 }}", CAI_EFORMAT, 3);
    expect_error("{{ $ }}", CAI_EFORMAT, 3);
    expect_error("{{ 1 }", CAI_EFORMAT, 5);
    /* Offsets count the caller's bytes, before \r\n became \n. */
    expect_error("a\r\n\r\n{{ 1 + }}", CAI_EFORMAT, 12);
    struct cai_error err;
    CHECK_EQ_INT(cai__chat_template_check("{% if x %}", 10, &err), CAI_EFORMAT);
    CHECK(strstr(err.msg, "offset 10:") != NULL);
    CHECK_EQ_INT(cai__chat_template_check("{{ x }}", 7, &err), 0);
    CHECK_EQ_INT(cai__chat_template_check(NULL, 0, &err), 0);
}

static void test_render_errors(void)
{
    expect_error("{{ 'a' + 1 }}", CAI_EFORMAT, 7);
    expect_error("xx{{ nothing.attr }}", CAI_EFORMAT, 12);
    expect_error("{{ nothing() }}", CAI_EFORMAT, 3);
    expect_error("{{ 1 / 0 }}", CAI_EFORMAT, 5);
    expect_error("{{ nothing|tojson }}", CAI_EFORMAT, -1);
    expect_error("{% for x in 3 %}{% endfor %}", CAI_EFORMAT, 12);
    expect_error("{% if true %}{{ 'x'|nosuchfilter }}{% endif %}", CAI_EFORMAT, 20);
    expect_error("{% set l = [] %}{{ l.append(1) }}", CAI_EFORMAT, -1);
    expect_error("{{ 9223372036854775807 + 1 }}", CAI_ERANGE, -1);
    expect_error("{{ '<i>'|attr }}", CAI_EFORMAT, 9); /* found by fuzz_template */
    /* raise_exception is the template rejecting the conversation. */
    char *out = NULL;
    struct cai_error err;
    int rc = render("ok{{ raise_exception('Only user and assistant roles are supported!') }}", &out,
                    &err);
    CHECK_EQ_INT(rc, CAI_EINVAL);
    CHECK(out == NULL);
    CHECK(strstr(err.msg, "offset 5: Only user and assistant roles are supported!") != NULL);
}

/* ---- resource bounds --------------------------------------------------- */

static void test_depth_bombs(void)
{
    char *t = repeat_str("{{ ", "(", 100000, "1 }}");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    t = repeat_str("{{ ", "[", 100000, "");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    t = repeat_str("", "{% if true %}", 50000, "x");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    t = repeat_str("{{ 1", " + 1", 100000, " }}");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    t = repeat_str("{{ x", "|trim", 100000, " }}");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    t = repeat_str("{{ x", ".a", 100000, " }}");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    t = repeat_str("{{ ", "not ", 100000, "x }}");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    t = repeat_str("{% set ns = namespace(v=[1]) %}{% for i in range(3000) %}{% set ns.v = [ns.v] %}"
                   "{% endfor %}{{ ns.v|map('map'",
                   ", 'map'", 3000, ")|list }}");
    expect_error(t, CAI_ERANGE, -1);
    free(t);
    /* A long elif chain and a long flat body are fine: not nesting. */
    t = repeat_str("{% if false %}", "{% elif false %}", 20000, "{% else %}ok{% endif %}");
    expect_render(t, "ok");
    free(t);
    /* Unbounded recursion at run time. */
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", CAI_ERANGE, -1);
    /* Values nested by a loop, then printed or serialized. */
    expect_error("{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}"
                 "{% endfor %}{{ ns.v|tojson }}",
                 CAI_ERANGE, -1);
    expect_error("{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}"
                 "{% endfor %}{{ ns.v }}",
                 CAI_ERANGE, -1);
    expect_error("{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}"
                 "{% endfor %}{{ ns.v == ns.v }}",
                 CAI_ERANGE, -1);
}

static void test_limits(void)
{
    struct cai__tmpl_limits lim = {0};
    lim.max_output_bytes = 1000;
    expect_error_lim("{% for i in range(2000) %}x{% endfor %}", &lim, CAI_ERANGE, 26);
    expect_error_lim("{{ 'ab' * 1000 }}", &lim, CAI_ERANGE, -1);
    char *out = NULL;
    struct cai_error err;
    CHECK_EQ_INT(render_lim("{% for i in range(1000) %}x{% endfor %}", &lim, &out, &err), 0);
    CHECK(out && strlen(out) == 1000);
    cai__free(out);

    memset(&lim, 0, sizeof(lim));
    lim.max_loop_iters = 100;
    expect_error_lim("{% for i in range(50) %}{% for j in range(3) %}{% endfor %}{% endfor %}",
                     &lim, CAI_ERANGE, -1);
    expect_error_lim("{{ range(1000)|length }}", &lim, CAI_ERANGE, -1);

    memset(&lim, 0, sizeof(lim));
    lim.max_steps = 1000;
    expect_error_lim("{% for i in range(900) %}{{ i }}{% endfor %}", &lim, CAI_ERANGE, -1);

    memset(&lim, 0, sizeof(lim));
    lim.max_memory_bytes = 1 << 20;
    expect_error_lim("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
                     "{% set ns.s = ns.s + 'xxxxxxxxxx' %}{% endfor %}",
                     &lim, CAI_ERANGE, -1);

    /* Defaults: 10^6 iterations, 16 MiB of output, 10^7 steps. */
    expect_error("{{ 'x' * 100000000 }}", CAI_ERANGE, -1);
    expect_error("{% for i in range(100000000) %}{% endfor %}", CAI_ERANGE, -1);
    expect_error("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(10) %}"
                 "{% endfor %}{% endfor %}{% endfor %}",
                 CAI_ERANGE, -1);
    /* Superlinear filters count their comparisons as steps. */
    expect_error("{{ range(200000)|unique|list|length }}", CAI_ERANGE, -1);
    expect_error("{% set ns = namespace(l=[]) %}{% for i in range(300000) %}"
                 "{% set ns.l = [i] %}{% endfor %}{{ (range(900000)|list)|sort|length }}",
                 CAI_ERANGE, -1);
}

/* Every allocation failing in turn: the result is success or CAI_ENOMEM
 * (or the render falls back), never a crash or a leak (ASan checks). */
static void test_out_of_memory(void)
{
    char *tmpl = NULL;
    size_t n_tmpl = 0;
    if (cai__read_file(GOLDEN_DIR "qwen3.jinja", &tmpl, &n_tmpl, NULL) != 0) {
        CHECK_MSG(0, "cannot read qwen3.jinja");
        return;
    }
    int n_ok = 0, n_nomem = 0;
    for (long k = 1; k < 100000; k++) {
        char *out = NULL;
        size_t n;
        struct cai_error err;
        cai__alloc_fail_after(k);
        int rc = cai__chat_render_jinja(tmpl, n_tmpl, conv_multi, CAI_ARRAY_LEN(conv_multi), true,
                                        "", "", NULL, &out, &n, &err);
        cai__alloc_fail_after(0);
        CHECK(rc == 0 || rc == CAI_ENOMEM);
        CHECK(rc != 0 || out != NULL);
        cai__free(out);
        if (rc == 0) {
            n_ok++;
            break;
        }
        n_nomem++;
    }
    CHECK(n_ok == 1 && n_nomem > 0);
    cai__free(tmpl);
}

/* ---- arguments --------------------------------------------------------- */

static void test_arguments(void)
{
    char *out = (char *)1;
    size_t n = 7;
    struct cai_error err;
    const struct cai_chat_msg bad[] = {{NULL, "x"}};
    const struct cai_chat_msg none_content[] = {{"user", NULL}};
    CHECK_EQ_INT(cai__chat_render("x", 1, bad, 1, false, NULL, NULL, &out, &n, &err), CAI_EINVAL);
    CHECK(out == NULL && n == 0);
    CHECK_EQ_INT(cai__chat_render_jinja("x", 1, NULL, 1, false, NULL, NULL, NULL, &out, &n, &err),
                 CAI_EINVAL);
    CHECK_EQ_INT(cai__chat_render("x", 1, conv_multi, 1, false, NULL, NULL, NULL, &n, &err),
                 CAI_EINVAL);
    /* A NULL content is none; NULL bos/eos are empty. */
    const char *t = "{{ bos_token }}[{{ messages[0].content }}]{{ messages[0].content is none }}{{ "
                    "eos_token }}";
    CHECK_EQ_INT(cai__chat_render_jinja(t, strlen(t), none_content, 1, false, NULL, NULL, NULL,
                                        &out, &n, &err),
                 0);
    CHECK_STR(out, "[None]True");
    CHECK_EQ_INT(n, 10);
    cai__free(out);
    /* No messages at all, and a template that is not NUL-terminated. */
    const char buf[] = {'a', 'b', '{', '{', ' ', '1', ' ', '}', '}', 'X'};
    CHECK_EQ_INT(cai__chat_render_jinja(buf, 9, NULL, 0, true, NULL, NULL, NULL, &out, &n, &err),
                 0);
    CHECK_STR(out, "ab1");
    cai__free(out);
    /* Errors met on the way to a success do not stay in err. */
    const char *lazy = "{% set g = 5|map('string') %}{% if g %}ok{% endif %}";
    CHECK_EQ_INT(
        cai__chat_render_jinja(lazy, strlen(lazy), NULL, 0, true, NULL, NULL, NULL, &out, &n, &err),
        0);
    CHECK_STR(out, "ok");
    CHECK(err.code == 0 && err.msg[0] == '\0');
    cai__free(out);
    /* An empty render is an empty string, not NULL. */
    CHECK_EQ_INT(
        cai__chat_render_jinja("{# #}", 5, NULL, 0, true, NULL, NULL, NULL, &out, &n, &err), 0);
    CHECK(out && out[0] == '\0' && n == 0);
    cai__free(out);
}

/* ---- built-in families and the fallback -------------------------------- */

static char *family(enum cai__chat_family f, const struct cai_chat_msg *m, size_t n, bool agp,
                    const char *bos, const char *eos)
{
    char *out = NULL;
    size_t len;
    struct cai_error err;
    int rc = cai__chat_render_family(f, m, n, agp, bos, eos, &out, &len, &err);
    CHECK_MSG(rc == 0, "%s: %s", cai__chat_family_name(f), err.msg);
    CHECK(!out || strlen(out) == len);
    return out;
}

static void test_families(void)
{
    char *s = family(CAI__CHAT_CHATML, conv_multi, 4, true, "<s>", "</s>");
    CHECK_STR(s, "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n"
                 "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                 "<|im_start|>assistant\nParis.<|im_end|>\n"
                 "<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n");
    cai__free(s);
    s = family(CAI__CHAT_LLAMA3, conv_nosys, 3, true, "<|begin_of_text|>", "");
    CHECK_STR(s, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\nHi, how can I help?<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    cai__free(s);
    s = family(CAI__CHAT_PHI3, conv_nosys, 1, false, "", "");
    CHECK_STR(s, "<|user|>\n  Hello!\n<|end|>\n");
    cai__free(s);
    s = family(CAI__CHAT_CHATML, NULL, 0, false, NULL, NULL);
    CHECK_STR(s, "");
    cai__free(s);
    CHECK_STR(cai__chat_family_name(CAI__CHAT_GEMMA), "gemma");
}

/* The native Gemma, Llama 2 and Phi-3 renders equal what the published
 * templates render (through the interpreter) for plain conversations. */
static void test_families_match_templates(void)
{
    static const struct {
        const char *file;
        enum cai__chat_family fam;
        const char *bos, *eos;
        bool agp_only;
    } cmp[] = {
        {"gemma3.jinja", CAI__CHAT_GEMMA, "<bos>", "<eos>", false},
        {"llama2.jinja", CAI__CHAT_LLAMA2, "<s>", "</s>", false},
        {"phi3.jinja", CAI__CHAT_PHI3, "", "", true},
        {"smollm2.jinja", CAI__CHAT_CHATML, "", "", false},
    };
    const struct cai_chat_msg *convs[] = {conv_multi, conv_nosys};
    const size_t n_convs[] = {4, 3};
    for (size_t i = 0; i < CAI_ARRAY_LEN(cmp); i++) {
        char *tmpl;
        size_t n_tmpl;
        char path[128];
        snprintf(path, sizeof(path), GOLDEN_DIR "%s", cmp[i].file);
        if (cai__read_file(path, &tmpl, &n_tmpl, NULL) != 0) {
            CHECK_MSG(0, "cannot read %s", path);
            continue;
        }
        for (size_t c = 0; c < 2; c++) {
            for (int agp = cmp[i].agp_only; agp < 2; agp++) {
                /* SmolLM2 adds a default system prompt when there is none. */
                if (cmp[i].fam == CAI__CHAT_CHATML && c == 1)
                    continue;
                char *want = NULL, *got;
                size_t n;
                struct cai_error err;
                int rc = cai__chat_render_jinja(tmpl, n_tmpl, convs[c], n_convs[c], agp, cmp[i].bos,
                                                cmp[i].eos, NULL, &want, &n, &err);
                CHECK_MSG(rc == 0, "%s: %s", cmp[i].file, err.msg);
                got = family(cmp[i].fam, convs[c], n_convs[c], agp, cmp[i].bos, cmp[i].eos);
                if (rc == 0 && got)
                    CHECK_MSG(strcmp(got, want) == 0, "%s conv %zu agp %d:\n got  %s\n want %s",
                              cmp[i].file, c, agp, got, want);
                cai__free(want);
                cai__free(got);
            }
        }
        cai__free(tmpl);
    }
}

static void test_detect(void)
{
    static const struct {
        const char *tmpl;
        enum cai__chat_family want;
    } cases[] = {
        {"{{ '<|im_start|>' + role }}", CAI__CHAT_CHATML},
        {"{{ '<|start_header_id|>' }}", CAI__CHAT_LLAMA3},
        {"<start_of_turn>user", CAI__CHAT_GEMMA},
        {"{{ '[INST] ' + content }}", CAI__CHAT_LLAMA2},
        {"{{ '<|user|>\\n' }}", CAI__CHAT_PHI3},
        {"{{ unknown format }}", CAI__CHAT_CHATML},
        {"", CAI__CHAT_CHATML},
    };
    for (size_t i = 0; i < CAI_ARRAY_LEN(cases); i++)
        CHECK_MSG(cai__chat_detect(cases[i].tmpl, strlen(cases[i].tmpl)) == cases[i].want, "%s",
                  cases[i].tmpl);
    CHECK(cai__chat_detect(NULL, 0) == CAI__CHAT_CHATML);
    /* Markers past tmpl_len do not count. */
    CHECK(cai__chat_detect("ab<start_of_turn>", 2) == CAI__CHAT_CHATML);
}

static void test_fallback(void)
{
    char *out = NULL, *want;
    size_t n;
    struct cai_error err;
    /* No template: ChatML. */
    CHECK_EQ_INT(cai__chat_render(NULL, 0, conv_multi, 4, true, "<s>", "</s>", &out, &n, &err), 0);
    want = family(CAI__CHAT_CHATML, conv_multi, 4, true, "<s>", "</s>");
    CHECK_STR(out, want);
    cai__free(out);
    cai__free(want);
    /* A Llama 3 template the interpreter cannot run: the native Llama 3. */
    const char *broken = "{{ '<|start_header_id|>' + m|nosuchfilter }}";
    CHECK_EQ_INT(
        cai__chat_render(broken, strlen(broken), conv_nosys, 3, true, "<b>", "", &out, &n, &err),
        0);
    want = family(CAI__CHAT_LLAMA3, conv_nosys, 3, true, "<b>", "");
    CHECK_STR(out, want);
    cai__free(out);
    cai__free(want);
    CHECK(err.code == 0 && err.msg[0] == '\0'); /* a fallback is a success */
    /* A Gemma template that fails while rendering. */
    const char *fails = "{{ '<start_of_turn>' + 1 }}";
    CHECK_EQ_INT(
        cai__chat_render(fails, strlen(fails), conv_nosys, 3, false, "<bos>", "", &out, &n, &err),
        0);
    want = family(CAI__CHAT_GEMMA, conv_nosys, 3, false, "<bos>", "");
    CHECK_STR(out, want);
    cai__free(out);
    cai__free(want);
    /* A resource bound hit: the fallback too. */
    const char *big = "<|user|>{% for i in range(100000000) %}{% endfor %}";
    CHECK_EQ_INT(cai__chat_render(big, strlen(big), conv_nosys, 1, true, "", "", &out, &n, &err),
                 0);
    CHECK_STR(out, "<|user|>\n  Hello!\n<|end|>\n<|assistant|>\n");
    cai__free(out);
    /* raise_exception is the template's verdict: no fallback. */
    const char *raises = "<|im_start|>{{ raise_exception('no system role') }}";
    out = (char *)1;
    CHECK_EQ_INT(
        cai__chat_render(raises, strlen(raises), conv_multi, 4, true, "", "", &out, &n, &err),
        CAI_EINVAL);
    CHECK(out == NULL);
    CHECK(strstr(err.msg, "no system role") != NULL);
    /* A working template is used as is. */
    const char *ok = "{% for m in messages %}{{ m.role }};{% endfor %}";
    CHECK_EQ_INT(cai__chat_render(ok, strlen(ok), conv_multi, 4, true, "", "", &out, &n, &err), 0);
    CHECK_STR(out, "system;user;assistant;user;");
    cai__free(out);
}

/* The model's own template through the public API, when the model is here. */
static void test_smollm2_model(void)
{
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    FILE *f = fopen(path, "rb");
    if (!f)
        SKIP("%s not present", path);
    fclose(f);
    struct cai_model *m = NULL;
    struct cai_error err;
    CHECK_EQ_INT(cai_model_open(&m, path, NULL, &err), 0);
    if (!m)
        return;
    const char *tmpl = cai_model_chat_template(m);
    CHECK(tmpl && strstr(tmpl, "named SmolLM"));
    char *out = NULL;
    CHECK_EQ_INT(cai_chat_render(m, conv_nosys, 3, true, &out, &err), 0);
    CHECK_STR(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                   "Hugging Face<|im_end|>\n<|im_start|>user\n  Hello!\n<|im_end|>\n"
                   "<|im_start|>assistant\nHi, how can I help?<|im_end|>\n"
                   "<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n");
    cai_free(out);
    cai_model_close(m);
}

int main(void)
{
    RUN(test_golden_cases);
    RUN(test_expressions);
    RUN(test_filters);
    RUN(test_statements);
    RUN(test_whitespace_control);
    RUN(test_content_is_literal);
    RUN(test_syntax_errors);
    RUN(test_render_errors);
    RUN(test_depth_bombs);
    RUN(test_limits);
    RUN(test_out_of_memory);
    RUN(test_arguments);
    RUN(test_families);
    RUN(test_families_match_templates);
    RUN(test_detect);
    RUN(test_fallback);
    RUN(test_smollm2_model);
    fprintf(stderr, "golden: %d cases (%d with real templates)\n", golden_total, golden_real);
    return test_done();
}
