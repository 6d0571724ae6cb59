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

int main(void)
{
    RUN(test_golden_cases);
    fprintf(stderr, "golden: %d cases (%d with real templates)\n", golden_total, golden_real);
    return test_done();
}
