/* template_lib.c: what values do in a chat template. Printing (Python str()
 * and repr()), JSON (Hugging Face's tojson: json.dumps without ASCII
 * escaping), equality and ordering, arithmetic, and the filters, tests and
 * string/dict methods that chat templates use, each with Python's or
 * Jinja's semantics. Recursion over nested values is bounded
 * (CAI__TMPL_MAX_VALUE_NEST) because templates can build deep values in
 * loops.
 *
 * Case mapping (upper, lower, title, capitalize) covers ASCII, Latin-1,
 * Latin Extended-A, Greek and Cyrillic; other scripts pass unchanged, and
 * one-to-many mappings such as German sharp s are not applied. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

/* ---- basics ------------------------------------------------------------ */

static bool str_eq(struct cai__tstr s, const char *lit)
{
    size_t m = strlen(lit);
    return s.n == m && memcmp(s.p, lit, m) == 0;
}

static bool is_num(const struct cai__tv *v)
{
    return v->t == CAI__TV_INT || v->t == CAI__TV_FLOAT || v->t == CAI__TV_BOOL;
}

static double num_f(const struct cai__tv *v)
{
    return v->t == CAI__TV_FLOAT ? v->u.f : v->t == CAI__TV_INT ? (double)v->u.i : (double)v->u.b;
}

static int64_t num_i(const struct cai__tv *v)
{
    return v->t == CAI__TV_INT ? v->u.i : v->t == CAI__TV_BOOL ? (int64_t)v->u.b : 0;
}

static struct cai__tv tv_float(double f)
{
    struct cai__tv v = {.t = CAI__TV_FLOAT};
    v.u.f = f;
    return v;
}

bool cai__tv_truthy(const struct cai__tv *v)
{
    switch (v->t) {
    case CAI__TV_UNDEF:
    case CAI__TV_NONE: return false;
    case CAI__TV_BOOL: return v->u.b;
    case CAI__TV_INT: return v->u.i != 0;
    case CAI__TV_FLOAT: return v->u.f != 0.0;
    case CAI__TV_STR: return v->u.s.n != 0;
    case CAI__TV_LIST: return v->u.l->n != 0;
    case CAI__TV_DICT: return v->u.d->n != 0;
    default: return true;
    }
}

const char *cai__tv_type_name(const struct cai__tv *v)
{
    switch (v->t) {
    case CAI__TV_UNDEF: return "Undefined";
    case CAI__TV_NONE: return "NoneType";
    case CAI__TV_BOOL: return "bool";
    case CAI__TV_INT: return "int";
    case CAI__TV_FLOAT: return "float";
    case CAI__TV_STR: return "str";
    case CAI__TV_LIST: return v->u.l->tuple ? "tuple" : "list";
    case CAI__TV_DICT: return "dict";
    case CAI__TV_NS: return "Namespace";
    case CAI__TV_LOOP: return "LoopContext";
    case CAI__TV_MACRO: return "Macro";
    default: return "function";
    }
}

static int put(struct cai__tctx *c, struct cai__tbuf *b, const char *s, size_t n, uint32_t off)
{
    return cai__tbuf_put(c, b, s, n, off);
}

static int puts_(struct cai__tctx *c, struct cai__tbuf *b, const char *s, uint32_t off)
{
    return cai__tbuf_put(c, b, s, strlen(s), off);
}

static int put_cp(struct cai__tctx *c, struct cai__tbuf *b, uint32_t cp, uint32_t off)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return put(c, b, u, n, off);
}

/* The character at s[*i] as bytes (an invalid byte stays one byte). */
static uint32_t next_char(struct cai__tstr s, size_t *i, struct cai__tstr *ch)
{
    size_t start = *i;
    uint32_t cp = cai__utf8_next(s.p, s.n, i);
    ch->p = s.p + start;
    ch->n = *i - start;
    return cp;
}

static struct cai__tv buf_value(const struct cai__tbuf *b)
{
    return cai__tv_str(b->p, b->n);
}

/* ---- case mapping ------------------------------------------------------ */

static uint32_t to_lower(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if ((cp >= 0xc0 && cp <= 0xde && cp != 0xd7) || (cp >= 0x391 && cp <= 0x3ab && cp != 0x3a2) ||
        (cp >= 0x410 && cp <= 0x42f))
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40f)
        return cp + 80;
    if (cp == 0x178)
        return 0xff;
    if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177))
        return cp | 1;
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e))
        return (cp & 1) ? cp + 1 : cp;
    return cp;
}

static uint32_t to_upper(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'a' && cp <= 'z' ? cp - 32 : cp;
    if ((cp >= 0xe0 && cp <= 0xfe && cp != 0xf7) || (cp >= 0x3b1 && cp <= 0x3cb && cp != 0x3c2) ||
        (cp >= 0x430 && cp <= 0x44f))
        return cp - 32;
    if (cp == 0x3c2)
        return 0x3a3;
    if (cp >= 0x450 && cp <= 0x45f)
        return cp - 80;
    if (cp == 0xff)
        return 0x178;
    if (cp == 0xb5)
        return 0x39c;
    if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177))
        return cp & ~1u;
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e))
        return (cp & 1) ? cp : cp - 1;
    return cp;
}

static bool is_cased(uint32_t cp)
{
    return to_lower(cp) != cp || to_upper(cp) != cp;
}

enum { CASE_UPPER, CASE_LOWER, CASE_CAPITALIZE, CASE_TITLE_METHOD };

static int map_case(struct cai__tctx *c, struct cai__tstr s, int mode, uint32_t off,
                    struct cai__tv *out)
{
    struct cai__tbuf b = {0};
    size_t i = 0;
    bool prev_cased = false, first = true;
    int rc = 0;
    while (i < s.n && !rc) {
        struct cai__tstr ch;
        uint32_t cp = next_char(s, &i, &ch), m;
        switch (mode) {
        case CASE_UPPER: m = to_upper(cp); break;
        case CASE_LOWER: m = to_lower(cp); break;
        case CASE_CAPITALIZE: m = first ? to_upper(cp) : to_lower(cp); break;
        default: m = prev_cased ? to_lower(cp) : to_upper(cp); break;
        }
        first = false;
        prev_cased = is_cased(cp);
        rc = m == cp ? put(c, &b, ch.p, ch.n, off) : put_cp(c, &b, m, off);
    }
    if (!rc)
        *out = buf_value(&b);
    return rc;
}

/* ---- numbers as text --------------------------------------------------- */

/* Python's repr(float): the shortest digits that read back the same, in
 * fixed notation for exponents -4..15 and scientific notation otherwise. */
static void fmt_float(double x, char *out, size_t cap)
{
    if (isnan(x)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(x)) {
        snprintf(out, cap, x < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    char digits[24];
    size_t nd = 0;
    const char *q = tmp;
    bool neg = *q == '-';
    if (neg)
        q++;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < sizeof(digits) - 1)
            digits[nd++] = *q;
    digits[nd] = '\0';
    int exp10 = *q == 'e' ? atoi(q + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = '\0';
    size_t o = 0;
#define EMIT(ch) do { if (o + 1 < cap) out[o++] = (ch); } while (0)
    if (neg)
        EMIT('-');
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            EMIT('0');
            EMIT('.');
            for (int k = 0; k < -exp10 - 1; k++)
                EMIT('0');
            for (size_t k = 0; k < nd; k++)
                EMIT(digits[k]);
        } else {
            for (int k = 0; k <= exp10; k++)
                EMIT((size_t)k < nd ? digits[k] : '0');
            EMIT('.');
            if ((size_t)exp10 + 1 < nd) {
                for (size_t k = (size_t)exp10 + 1; k < nd; k++)
                    EMIT(digits[k]);
            } else {
                EMIT('0');
            }
        }
        out[o] = '\0';
    } else {
        EMIT(digits[0]);
        if (nd > 1) {
            EMIT('.');
            for (size_t k = 1; k < nd; k++)
                EMIT(digits[k]);
        }
        out[o] = '\0';
        snprintf(out + o, cap - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
#undef EMIT
}

/* ---- str() and repr() -------------------------------------------------- */

static int write_repr_str(struct cai__tctx *c, struct cai__tbuf *b, struct cai__tstr s,
                          uint32_t off)
{
    bool has_sq = memchr(s.p, '\'', s.n) != NULL, has_dq = memchr(s.p, '"', s.n) != NULL;
    char quote = has_sq && !has_dq ? '"' : '\'';
    int rc = put(c, b, &quote, 1, off);
    size_t i = 0;
    while (i < s.n && !rc) {
        struct cai__tstr ch;
        uint32_t cp = next_char(s, &i, &ch);
        char esc[12];
        if (cp == (uint32_t)quote || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            rc = put(c, b, esc, 2, off);
        } else if (cp == '\n') {
            rc = put(c, b, "\\n", 2, off);
        } else if (cp == '\r') {
            rc = put(c, b, "\\r", 2, off);
        } else if (cp == '\t') {
            rc = put(c, b, "\\t", 2, off);
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) {
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
            rc = put(c, b, esc, 4, off);
        } else {
            rc = put(c, b, ch.p, ch.n, off);
        }
    }
    return rc ? rc : put(c, b, &quote, 1, off);
}

int cai__tv_write(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__tv *v, bool repr,
                  int nest, uint32_t off)
{
    char num[64];
    int rc = 0;
    if (nest > CAI__TMPL_MAX_VALUE_NEST)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "value nested deeper than %d",
                              CAI__TMPL_MAX_VALUE_NEST);
    switch (v->t) {
    case CAI__TV_UNDEF: return repr ? puts_(c, b, "Undefined", off) : 0;
    case CAI__TV_NONE: return puts_(c, b, "None", off);
    case CAI__TV_BOOL: return puts_(c, b, v->u.b ? "True" : "False", off);
    case CAI__TV_INT:
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        return puts_(c, b, num, off);
    case CAI__TV_FLOAT:
        fmt_float(v->u.f, num, sizeof(num));
        return puts_(c, b, num, off);
    case CAI__TV_STR:
        return repr ? write_repr_str(c, b, v->u.s, off) : put(c, b, v->u.s.p, v->u.s.n, off);
    case CAI__TV_LIST: {
        const struct cai__tlist *l = v->u.l;
        rc = puts_(c, b, l->tuple ? "(" : "[", off);
        for (size_t i = 0; i < l->n && !rc; i++) {
            if (i)
                rc = puts_(c, b, ", ", off);
            if (!rc)
                rc = cai__tv_write(c, b, &l->v[i], true, nest + 1, off);
        }
        if (!rc && l->tuple && l->n == 1)
            rc = puts_(c, b, ",", off);
        return rc ? rc : puts_(c, b, l->tuple ? ")" : "]", off);
    }
    case CAI__TV_DICT:
    case CAI__TV_NS: {
        const struct cai__tdict *d = v->u.d;
        rc = puts_(c, b, v->t == CAI__TV_NS ? "<Namespace {" : "{", off);
        for (size_t i = 0; i < d->n && !rc; i++) {
            if (i)
                rc = puts_(c, b, ", ", off);
            if (!rc)
                rc = cai__tv_write(c, b, &d->k[i], true, nest + 1, off);
            if (!rc)
                rc = puts_(c, b, ": ", off);
            if (!rc)
                rc = cai__tv_write(c, b, &d->v[i], true, nest + 1, off);
        }
        return rc ? rc : puts_(c, b, v->t == CAI__TV_NS ? "}>" : "}", off);
    }
    case CAI__TV_LOOP:
        snprintf(num, sizeof(num), "<LoopContext %zu/%zu>", v->u.loop->i + 1, v->u.loop->n);
        return puts_(c, b, num, off);
    case CAI__TV_MACRO: {
        struct cai__tstr name = v->u.macro->def->s;
        if ((rc = puts_(c, b, "<Macro '", off)) || (rc = put(c, b, name.p, name.n, off)))
            return rc;
        return puts_(c, b, "'>", off);
    }
    default:
        return puts_(c, b, "<function>", off);
    }
}

int cai__tv_to_str(struct cai__tctx *c, const struct cai__tv *v, uint32_t off,
                   struct cai__tstr *out)
{
    if (v->t == CAI__TV_STR) {
        *out = v->u.s;
        return 0;
    }
    struct cai__tbuf b = {0};
    int rc = cai__tv_write(c, &b, v, false, 0, off);
    if (!rc) {
        out->p = b.p ? b.p : "";
        out->n = b.n;
    }
    return rc;
}

/* ---- JSON -------------------------------------------------------------- */

struct json_opts {
    bool             indent;
    struct cai__tstr indent_str;
    struct cai__tstr item_sep, key_sep;
    bool             sort_keys;
};

static int json_str(struct cai__tctx *c, struct cai__tbuf *b, struct cai__tstr s, uint32_t off)
{
    int rc = put(c, b, "\"", 1, off);
    size_t start = 0;
    for (size_t i = 0; i < s.n && !rc; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        char esc[8];
        rc = put(c, b, s.p + start, i - start, off);
        start = i + 1;
        switch (ch) {
        case '"': memcpy(esc, "\\\"", 3); break;
        case '\\': memcpy(esc, "\\\\", 3); break;
        case '\n': memcpy(esc, "\\n", 3); break;
        case '\r': memcpy(esc, "\\r", 3); break;
        case '\t': memcpy(esc, "\\t", 3); break;
        case '\b': memcpy(esc, "\\b", 3); break;
        case '\f': memcpy(esc, "\\f", 3); break;
        default: snprintf(esc, sizeof(esc), "\\u%04x", ch); break;
        }
        if (!rc)
            rc = puts_(c, b, esc, off);
    }
    if (!rc)
        rc = put(c, b, s.p + start, s.n - start, off);
    return rc ? rc : put(c, b, "\"", 1, off);
}

static int json_newline(struct cai__tctx *c, struct cai__tbuf *b, const struct json_opts *o,
                        int level, uint32_t off)
{
    int rc = put(c, b, "\n", 1, off);
    for (int k = 0; k < level && !rc; k++)
        rc = put(c, b, o->indent_str.p, o->indent_str.n, off);
    return rc;
}

static int json_key(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__tv *k,
                    uint32_t off)
{
    char num[64];
    switch (k->t) {
    case CAI__TV_STR: return json_str(c, b, k->u.s, off);
    case CAI__TV_NONE: return puts_(c, b, "\"null\"", off);
    case CAI__TV_BOOL: return puts_(c, b, k->u.b ? "\"true\"" : "\"false\"", off);
    case CAI__TV_INT: snprintf(num, sizeof(num), "\"%lld\"", (long long)k->u.i); break;
    case CAI__TV_FLOAT: {
        char f[48];
        double x = k->u.f;
        if (isnan(x))
            snprintf(f, sizeof(f), "NaN");
        else if (isinf(x))
            snprintf(f, sizeof(f), x < 0 ? "-Infinity" : "Infinity");
        else
            fmt_float(x, f, sizeof(f));
        snprintf(num, sizeof(num), "\"%s\"", f);
        break;
    }
    default:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "keys must be str, int, float, bool or None, "
                              "not %s", cai__tv_type_name(k));
    }
    return puts_(c, b, num, off);
}

static int json_value(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__tv *v,
                      const struct json_opts *o, int level, uint32_t off)
{
    char num[64];
    int rc = 0;
    if (level > CAI__TMPL_MAX_VALUE_NEST)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "value nested deeper than %d",
                              CAI__TMPL_MAX_VALUE_NEST);
    switch (v->t) {
    case CAI__TV_NONE: return puts_(c, b, "null", off);
    case CAI__TV_BOOL: return puts_(c, b, v->u.b ? "true" : "false", off);
    case CAI__TV_INT:
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        return puts_(c, b, num, off);
    case CAI__TV_FLOAT:
        if (isnan(v->u.f))
            return puts_(c, b, "NaN", off);
        if (isinf(v->u.f))
            return puts_(c, b, v->u.f < 0 ? "-Infinity" : "Infinity", off);
        fmt_float(v->u.f, num, sizeof(num));
        return puts_(c, b, num, off);
    case CAI__TV_STR: return json_str(c, b, v->u.s, off);
    case CAI__TV_LIST: {
        const struct cai__tlist *l = v->u.l;
        if (l->n == 0)
            return puts_(c, b, "[]", off);
        rc = puts_(c, b, "[", off);
        for (size_t i = 0; i < l->n && !rc; i++) {
            if (i)
                rc = put(c, b, o->item_sep.p, o->item_sep.n, off);
            if (!rc && o->indent)
                rc = json_newline(c, b, o, level + 1, off);
            if (!rc)
                rc = json_value(c, b, &l->v[i], o, level + 1, off);
        }
        if (!rc && o->indent)
            rc = json_newline(c, b, o, level, off);
        return rc ? rc : puts_(c, b, "]", off);
    }
    case CAI__TV_DICT: {
        const struct cai__tdict *d = v->u.d;
        if (d->n == 0)
            return puts_(c, b, "{}", off);
        size_t *order = cai__tmpl_alloc(c->arena, d->n * sizeof(size_t));
        if (!order)
            return cai__tmpl_fail_mem(c, off);
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        if (o->sort_keys) {
            /* Insertion sort: dicts in templates are small. */
            for (size_t i = 0; i < d->n; i++) {
                if (d->k[i].t != CAI__TV_STR)
                    return cai__tmpl_fail(c, CAI_EFORMAT, off, "sort_keys needs string keys");
            }
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                for (; j > 0; j--) {
                    struct cai__tstr a = d->k[order[j - 1]].u.s, bb = d->k[x].u.s;
                    int cmp = memcmp(a.p, bb.p, CAI_MIN(a.n, bb.n));
                    if (cmp < 0 || (cmp == 0 && a.n <= bb.n))
                        break;
                    order[j] = order[j - 1];
                }
                order[j] = x;
            }
        }
        rc = puts_(c, b, "{", off);
        for (size_t i = 0; i < d->n && !rc; i++) {
            size_t k = order[i];
            if (i)
                rc = put(c, b, o->item_sep.p, o->item_sep.n, off);
            if (!rc && o->indent)
                rc = json_newline(c, b, o, level + 1, off);
            if (!rc)
                rc = json_key(c, b, &d->k[k], off);
            if (!rc)
                rc = put(c, b, o->key_sep.p, o->key_sep.n, off);
            if (!rc)
                rc = json_value(c, b, &d->v[k], o, level + 1, off);
        }
        if (!rc && o->indent)
            rc = json_newline(c, b, o, level, off);
        return rc ? rc : puts_(c, b, "}", off);
    }
    default:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "object of type %s is not JSON serializable",
                              cai__tv_type_name(v));
    }
}

/* ---- comparison -------------------------------------------------------- */

static int equal_n(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b,
                   int nest, uint32_t off, bool *eq)
{
    int rc;
    if (nest > CAI__TMPL_MAX_VALUE_NEST)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "value nested deeper than %d",
                              CAI__TMPL_MAX_VALUE_NEST);
    *eq = false;
    if (is_num(a) && is_num(b)) {
        if (a->t != CAI__TV_FLOAT && b->t != CAI__TV_FLOAT)
            *eq = num_i(a) == num_i(b);
        else
            *eq = num_f(a) == num_f(b);
        return 0;
    }
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case CAI__TV_UNDEF:
    case CAI__TV_NONE: *eq = true; return 0;
    case CAI__TV_STR:
        *eq = a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
        return 0;
    case CAI__TV_LIST: {
        const struct cai__tlist *x = a->u.l, *y = b->u.l;
        if (x->tuple != y->tuple || x->n != y->n)
            return 0;
        for (size_t i = 0; i < x->n; i++) {
            bool e;
            if ((rc = equal_n(c, &x->v[i], &y->v[i], nest + 1, off, &e)))
                return rc;
            if (!e)
                return 0;
        }
        *eq = true;
        return 0;
    }
    case CAI__TV_DICT: {
        const struct cai__tdict *x = a->u.d, *y = b->u.d;
        if (x->n != y->n)
            return 0;
        for (size_t i = 0; i < x->n; i++) {
            const struct cai__tv *w = cai__tdict_get(y, &x->k[i]);
            bool e;
            if (!w)
                return 0;
            if ((rc = equal_n(c, &x->v[i], w, nest + 1, off, &e)))
                return rc;
            if (!e)
                return 0;
        }
        *eq = true;
        return 0;
    }
    case CAI__TV_NS: *eq = a->u.d == b->u.d; return 0;
    case CAI__TV_LOOP: *eq = a->u.loop == b->u.loop; return 0;
    case CAI__TV_MACRO: *eq = a->u.macro == b->u.macro; return 0;
    case CAI__TV_FUNC: *eq = a->u.fn == b->u.fn; return 0;
    default: return 0;
    }
}

int cai__tv_equal(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b,
                  uint32_t off, bool *eq)
{
    return equal_n(c, a, b, 0, off, eq);
}

static int order_n(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b,
                   int nest, uint32_t off, int *cmp)
{
    int rc;
    if (nest > CAI__TMPL_MAX_VALUE_NEST)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "value nested deeper than %d",
                              CAI__TMPL_MAX_VALUE_NEST);
    if (is_num(a) && is_num(b)) {
        if (a->t != CAI__TV_FLOAT && b->t != CAI__TV_FLOAT) {
            int64_t x = num_i(a), y = num_i(b);
            *cmp = x < y ? -1 : x > y;
        } else {
            double x = num_f(a), y = num_f(b);
            *cmp = x < y ? -1 : x > y; /* NaN compares as equal-ish: neither < nor > */
        }
        return 0;
    }
    if (a->t == CAI__TV_STR && b->t == CAI__TV_STR) {
        int r = memcmp(a->u.s.p, b->u.s.p, CAI_MIN(a->u.s.n, b->u.s.n));
        *cmp = r ? (r < 0 ? -1 : 1) : a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
        return 0;
    }
    if (a->t == CAI__TV_LIST && b->t == CAI__TV_LIST && a->u.l->tuple == b->u.l->tuple) {
        const struct cai__tlist *x = a->u.l, *y = b->u.l;
        for (size_t i = 0; i < x->n && i < y->n; i++) {
            bool e;
            if ((rc = equal_n(c, &x->v[i], &y->v[i], nest + 1, off, &e)))
                return rc;
            if (!e)
                return order_n(c, &x->v[i], &y->v[i], nest + 1, off, cmp);
        }
        *cmp = x->n < y->n ? -1 : x->n > y->n;
        return 0;
    }
    return cai__tmpl_fail(c, CAI_EFORMAT, off, "'<' not supported between '%s' and '%s'",
                          cai__tv_type_name(a), cai__tv_type_name(b));
}

int cai__tv_order(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b,
                  uint32_t off, int *cmp)
{
    return order_n(c, a, b, 0, off, cmp);
}

static bool find_sub(struct cai__tstr hay, struct cai__tstr needle, size_t from, size_t *at)
{
    if (needle.n == 0) {
        *at = from;
        return from <= hay.n;
    }
    for (size_t i = from; i + needle.n <= hay.n; i++) {
        if (hay.p[i] == needle.p[0] && memcmp(hay.p + i, needle.p, needle.n) == 0) {
            *at = i;
            return true;
        }
    }
    return false;
}

int cai__tv_contains(struct cai__tctx *c, const struct cai__tv *hay, const struct cai__tv *needle,
                     uint32_t off, bool *in)
{
    size_t at;
    int rc;
    *in = false;
    switch (hay->t) {
    case CAI__TV_UNDEF: return 0;
    case CAI__TV_STR:
        if (needle->t != CAI__TV_STR)
            return cai__tmpl_fail(c, CAI_EFORMAT, off,
                                  "'in <string>' requires string as left operand, not %s",
                                  cai__tv_type_name(needle));
        *in = find_sub(hay->u.s, needle->u.s, 0, &at);
        return 0;
    case CAI__TV_LIST:
        for (size_t i = 0; i < hay->u.l->n && !*in; i++)
            if ((rc = cai__tv_equal(c, &hay->u.l->v[i], needle, off, in)))
                return rc;
        return 0;
    case CAI__TV_DICT:
    case CAI__TV_NS:
        if (needle->t == CAI__TV_LIST || needle->t == CAI__TV_DICT)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "unhashable type: '%s'",
                                  cai__tv_type_name(needle));
        *in = cai__tdict_get(hay->u.d, needle) != NULL;
        return 0;
    default:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "argument of type '%s' is not iterable",
                              cai__tv_type_name(hay));
    }
}

int cai__tv_iterate(struct cai__tctx *c, const struct cai__tv *v, uint32_t off,
                    struct cai__tlist *out)
{
    memset(out, 0, sizeof(*out));
    switch (v->t) {
    case CAI__TV_UNDEF: return 0;
    case CAI__TV_LIST: *out = *v->u.l; out->tuple = false; return 0;
    case CAI__TV_DICT:
    case CAI__TV_NS:
        out->n = v->u.d->n;
        out->v = v->u.d->k;
        return 0;
    case CAI__TV_STR: {
        size_t n = cai__utf8_count(v->u.s.p, v->u.s.n), i = 0;
        out->v = cai__tmpl_alloc(c->arena, (n ? n : 1) * sizeof(struct cai__tv));
        if (!out->v)
            return cai__tmpl_fail_mem(c, off);
        for (size_t k = 0; k < n; k++) {
            struct cai__tstr ch;
            next_char(v->u.s, &i, &ch);
            out->v[k] = cai__tv_str(ch.p, ch.n);
        }
        out->n = n;
        return 0;
    }
    default:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "'%s' object is not iterable",
                              cai__tv_type_name(v));
    }
}

/* ---- arithmetic -------------------------------------------------------- */

static int repeat(struct cai__tctx *c, const struct cai__tv *seq, int64_t times, uint32_t off,
                  struct cai__tv *out)
{
    size_t unit = seq->t == CAI__TV_STR ? seq->u.s.n : seq->u.l->n, total;
    size_t k = times > 0 ? (size_t)times : 0;
    if ((uint64_t)(times > 0 ? times : 0) > SIZE_MAX || !cai__mul_size(unit, k, &total) ||
        total > c->lim.max_output_bytes)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "repetition larger than %zu",
                              c->lim.max_output_bytes);
    if (seq->t == CAI__TV_STR) {
        char *d = cai__tmpl_alloc(c->arena, total + 1);
        if (!d)
            return cai__tmpl_fail_mem(c, off);
        for (size_t i = 0; i < k; i++)
            memcpy(d + i * unit, seq->u.s.p, unit);
        *out = cai__tv_str(d, total);
        return 0;
    }
    int rc = cai__tv_new_list(c, total, seq->u.l->tuple, off, out);
    if (rc)
        return rc;
    for (size_t i = 0; i < k; i++)
        memcpy(out->u.l->v + i * unit, seq->u.l->v, unit * sizeof(struct cai__tv));
    return 0;
}

static int type_error(struct cai__tctx *c, const char *op, const struct cai__tv *a,
                      const struct cai__tv *b, uint32_t off)
{
    return cai__tmpl_fail(c, CAI_EFORMAT, off, "unsupported operand types for %s: '%s' and '%s'",
                          op, cai__tv_type_name(a), cai__tv_type_name(b));
}

static int overflow(struct cai__tctx *c, uint32_t off)
{
    return cai__tmpl_fail(c, CAI_ERANGE, off, "integer overflow");
}

int cai__tv_arith(struct cai__tctx *c, int op, const struct cai__tv *a, const struct cai__tv *b,
                  uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**"};
    const char *name = op <= CAI__TOP_POW ? names[op] : "?";
    int rc;
    if (a->t == CAI__TV_UNDEF || b->t == CAI__TV_UNDEF)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "undefined value in arithmetic (%s)", name);
    if (!is_num(a) || !is_num(b)) {
        if (op == CAI__TOP_ADD && a->t == CAI__TV_STR && b->t == CAI__TV_STR) {
            size_t n;
            if (!cai__add_size(a->u.s.n, b->u.s.n, &n) || n > c->lim.max_output_bytes)
                return cai__tmpl_fail(c, CAI_ERANGE, off, "string larger than %zu bytes",
                                      c->lim.max_output_bytes);
            char *d = cai__tmpl_alloc(c->arena, n + 1);
            if (!d)
                return cai__tmpl_fail_mem(c, off);
            memcpy(d, a->u.s.p, a->u.s.n);
            memcpy(d + a->u.s.n, b->u.s.p, b->u.s.n);
            *out = cai__tv_str(d, n);
            return 0;
        }
        if (op == CAI__TOP_ADD && a->t == CAI__TV_LIST && b->t == CAI__TV_LIST &&
            a->u.l->tuple == b->u.l->tuple) {
            size_t n = a->u.l->n + b->u.l->n;
            if ((rc = cai__tv_new_list(c, n, a->u.l->tuple, off, out)))
                return rc;
            if (a->u.l->n)
                memcpy(out->u.l->v, a->u.l->v, a->u.l->n * sizeof(struct cai__tv));
            if (b->u.l->n)
                memcpy(out->u.l->v + a->u.l->n, b->u.l->v, b->u.l->n * sizeof(struct cai__tv));
            return 0;
        }
        if (op == CAI__TOP_MUL) {
            bool a_seq = a->t == CAI__TV_STR || a->t == CAI__TV_LIST;
            bool b_seq = b->t == CAI__TV_STR || b->t == CAI__TV_LIST;
            if (a_seq && (b->t == CAI__TV_INT || b->t == CAI__TV_BOOL))
                return repeat(c, a, num_i(b), off, out);
            if (b_seq && (a->t == CAI__TV_INT || a->t == CAI__TV_BOOL))
                return repeat(c, b, num_i(a), off, out);
        }
        return type_error(c, name, a, b, off);
    }
    bool ints = a->t != CAI__TV_FLOAT && b->t != CAI__TV_FLOAT;
    int64_t x = num_i(a), y = num_i(b), r;
    double fx = num_f(a), fy = num_f(b);
    switch (op) {
    case CAI__TOP_ADD:
        if (!ints)
            break;
        if (__builtin_add_overflow(x, y, &r))
            return overflow(c, off);
        *out = cai__tv_int(r);
        return 0;
    case CAI__TOP_SUB:
        if (!ints)
            break;
        if (__builtin_sub_overflow(x, y, &r))
            return overflow(c, off);
        *out = cai__tv_int(r);
        return 0;
    case CAI__TOP_MUL:
        if (!ints)
            break;
        if (__builtin_mul_overflow(x, y, &r))
            return overflow(c, off);
        *out = cai__tv_int(r);
        return 0;
    case CAI__TOP_DIV:
        if (fy == 0.0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "division by zero");
        *out = tv_float(fx / fy);
        return 0;
    case CAI__TOP_FLOORDIV:
    case CAI__TOP_MOD:
        if (ints) {
            if (y == 0)
                return cai__tmpl_fail(c, CAI_EFORMAT, off, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1)
                return op == CAI__TOP_MOD ? (*out = cai__tv_int(0), 0) : overflow(c, off);
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q--;
                m += y;
            }
            *out = cai__tv_int(op == CAI__TOP_MOD ? m : q);
            return 0;
        }
        if (fy == 0.0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "float division or modulo by zero");
        {
            /* CPython's float divmod. */
            double m = fmod(fx, fy), div = (fx - m) / fy, q;
            if (m != 0.0) {
                if ((fy < 0) != (m < 0)) {
                    m += fy;
                    div -= 1.0;
                }
            } else {
                m = copysign(0.0, fy);
            }
            if (div != 0.0) {
                q = floor(div);
                if (div - q > 0.5)
                    q += 1.0;
            } else {
                q = copysign(0.0, fx / fy);
            }
            *out = tv_float(op == CAI__TOP_MOD ? m : q);
        }
        return 0;
    case CAI__TOP_POW:
        if (ints && y >= 0) {
            int64_t base = x, acc = 1, e = y;
            while (e > 0) {
                if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                    return overflow(c, off);
                e >>= 1;
                if (e > 0 && __builtin_mul_overflow(base, base, &base))
                    return overflow(c, off);
            }
            *out = cai__tv_int(acc);
            return 0;
        }
        if (fx == 0.0 && fy < 0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "0.0 cannot be raised to a negative power");
        *out = tv_float(pow(fx, fy));
        return 0;
    default:
        return type_error(c, name, a, b, off);
    }
    /* float + - * */
    *out = tv_float(op == CAI__TOP_ADD ? fx + fy : op == CAI__TOP_SUB ? fx - fy : fx * fy);
    return 0;
}

/* ---- arguments --------------------------------------------------------- */

/* Positional argument `i` or the keyword argument `name`; NULL if absent. */
static const struct cai__tv *arg(const struct cai__targs *a, size_t i, const char *name)
{
    if (i < a->n_pos)
        return &a->pos[i];
    for (size_t k = 0; name && k < a->n_kw; k++)
        if (str_eq(a->kw_names[k], name))
            return &a->kw[k];
    return NULL;
}

/* Rejects more than max_pos positional arguments and keywords not in the
 * NULL-terminated `names` (which also name the positional slots). */
static int check_args(struct cai__tctx *c, const struct cai__targs *a, size_t max_pos,
                      const char *const *names, const char *what, uint32_t off)
{
    if (a->n_pos > max_pos)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "%s takes at most %zu argument(s)", what,
                              max_pos);
    for (size_t k = 0; k < a->n_kw; k++) {
        size_t j = 0;
        bool ok = false;
        for (; names && names[j]; j++) {
            if (str_eq(a->kw_names[k], names[j])) {
                ok = j >= a->n_pos; /* not given twice */
                break;
            }
        }
        if (!ok)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "%s: unexpected argument '%.*s'", what,
                                  (int)CAI_MIN(a->kw_names[k].n, 40), a->kw_names[k].p);
    }
    return 0;
}

static int need_str(struct cai__tctx *c, const struct cai__tv *v, const char *what, uint32_t off)
{
    if (v->t != CAI__TV_STR)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "%s needs a string, not %s", what,
                              cai__tv_type_name(v));
    return 0;
}

/* ---- string operations ------------------------------------------------- */

static bool in_chars(uint32_t cp, const struct cai__tstr *chars)
{
    if (!chars)
        return cai__tmpl_is_space(cp);
    size_t i = 0;
    while (i < chars->n)
        if (cai__utf8_next(chars->p, chars->n, &i) == cp)
            return true;
    return false;
}

static struct cai__tstr strip(struct cai__tstr s, const struct cai__tstr *chars, bool left,
                              bool right)
{
    size_t start = 0, end = s.n;
    if (left) {
        while (start < end) {
            size_t i = start;
            if (!in_chars(cai__utf8_next(s.p, end, &i), chars))
                break;
            start = i;
        }
    }
    if (right) {
        while (end > start) {
            size_t k = end - 1;
            while (k > start && ((unsigned char)s.p[k] & 0xc0) == 0x80 && end - k < 4)
                k--;
            size_t i = k;
            uint32_t cp = cai__utf8_next(s.p, end, &i);
            if (i != end) { /* the last byte is not a whole character */
                k = end - 1;
                i = k;
                cp = cai__utf8_next(s.p, end, &i);
            }
            if (!in_chars(cp, chars))
                break;
            end = k;
        }
    }
    return (struct cai__tstr){s.p + start, end - start};
}

static int replace(struct cai__tctx *c, struct cai__tstr s, struct cai__tstr old,
                   struct cai__tstr new_, int64_t count, uint32_t off, struct cai__tv *out)
{
    struct cai__tbuf b = {0};
    size_t i = 0, at;
    int64_t done = 0;
    int rc = 0;
    if (old.n == 0) {
        /* Python inserts `new` before every character and at the end. */
        while (!rc) {
            if (count < 0 || done < count) {
                rc = put(c, &b, new_.p, new_.n, off);
                done++;
            }
            if (rc || i >= s.n)
                break;
            struct cai__tstr ch;
            next_char(s, &i, &ch);
            rc = put(c, &b, ch.p, ch.n, off);
        }
    } else {
        while (!rc && (count < 0 || done < count) && find_sub(s, old, i, &at)) {
            if (!(rc = put(c, &b, s.p + i, at - i, off)))
                rc = put(c, &b, new_.p, new_.n, off);
            i = at + old.n;
            done++;
        }
        if (!rc)
            rc = put(c, &b, s.p + i, s.n - i, off);
    }
    if (!rc)
        *out = buf_value(&b);
    return rc;
}

/* Python's str.split(sep, maxsplit) (sep NULL: runs of whitespace). */
static int split(struct cai__tctx *c, struct cai__tstr s, const struct cai__tstr *sep,
                 int64_t maxsplit, uint32_t off, struct cai__tv *out)
{
    struct cai__tstr parts_small[16], *parts = parts_small;
    size_t n_parts = 0, cap = CAI_ARRAY_LEN(parts_small);
    size_t i = 0;
    int rc;
    if (sep && sep->n == 0)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "empty separator");
    for (;;) {
        struct cai__tstr piece;
        bool last = false;
        if (sep) {
            size_t at;
            if ((maxsplit >= 0 && (int64_t)n_parts >= maxsplit) || !find_sub(s, *sep, i, &at)) {
                piece = (struct cai__tstr){s.p + i, s.n - i};
                last = true;
            } else {
                piece = (struct cai__tstr){s.p + i, at - i};
                i = at + sep->n;
            }
        } else {
            while (i < s.n) { /* skip whitespace */
                size_t k = i;
                if (!cai__tmpl_is_space(cai__utf8_next(s.p, s.n, &k)))
                    break;
                i = k;
            }
            if (i >= s.n)
                break;
            if (maxsplit >= 0 && (int64_t)n_parts >= maxsplit) {
                piece = (struct cai__tstr){s.p + i, s.n - i};
                last = true;
            } else {
                size_t start = i;
                while (i < s.n) {
                    size_t k = i;
                    if (cai__tmpl_is_space(cai__utf8_next(s.p, s.n, &k)))
                        break;
                    i = k;
                }
                piece = (struct cai__tstr){s.p + start, i - start};
            }
        }
        if (n_parts == cap) {
            struct cai__tstr *np = cai__tmpl_alloc(c->arena, cap * 2 * sizeof(*np));
            if (!np)
                return cai__tmpl_fail_mem(c, off);
            memcpy(np, parts, n_parts * sizeof(*np));
            parts = np;
            cap *= 2;
        }
        parts[n_parts++] = piece;
        if (last)
            break;
    }
    if ((rc = cai__tv_new_list(c, n_parts, false, off, out)))
        return rc;
    for (size_t k = 0; k < n_parts; k++)
        out->u.l->v[k] = cai__tv_str(parts[k].p, parts[k].n);
    return 0;
}

static bool affix(struct cai__tstr s, struct cai__tstr a, bool end)
{
    if (a.n > s.n)
        return false;
    return memcmp(end ? s.p + s.n - a.n : s.p, a.p, a.n) == 0;
}

/* startswith/endswith take a string or a tuple of strings. */
static int affix_test(struct cai__tctx *c, struct cai__tstr s, const struct cai__tv *a, bool end,
                      uint32_t off, bool *res)
{
    *res = false;
    if (a && a->t == CAI__TV_STR) {
        *res = affix(s, a->u.s, end);
        return 0;
    }
    if (a && a->t == CAI__TV_LIST && a->u.l->tuple) {
        for (size_t i = 0; i < a->u.l->n; i++) {
            if (a->u.l->v[i].t != CAI__TV_STR)
                return cai__tmpl_fail(c, CAI_EFORMAT, off, "tuple for %s must only contain str",
                                      end ? "endswith" : "startswith");
            if (affix(s, a->u.l->v[i].u.s, end))
                *res = true;
        }
        return 0;
    }
    return cai__tmpl_fail(c, CAI_EFORMAT, off, "%s needs a string or a tuple of strings",
                          end ? "endswith" : "startswith");
}

static int join(struct cai__tctx *c, const struct cai__tlist *items, struct cai__tstr sep,
                const struct cai__tv *attribute, uint32_t off, struct cai__tv *out)
{
    struct cai__tbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < items->n && !rc; i++) {
        struct cai__tv v = items->v[i];
        if (i)
            rc = put(c, &b, sep.p, sep.n, off);
        if (!rc && attribute)
            rc = attribute->t == CAI__TV_STR ? cai__tv_getattr(c, &v, attribute->u.s, off, &v)
                                             : cai__tv_getitem(c, &v, attribute, off, &v);
        if (!rc)
            rc = cai__tv_write(c, &b, &v, false, 0, off);
    }
    if (!rc)
        *out = buf_value(&b);
    return rc;
}

/* ---- sorting ----------------------------------------------------------- */

struct sort_ctx {
    struct cai__tctx     *c;
    const struct cai__tv *attribute;
    bool                  case_sensitive;
    uint32_t              off;
    int                   rc;
};

/* The key Jinja sorts and compares by: the attribute, and lowercase text
 * unless case_sensitive. */
static int sort_key(struct sort_ctx *s, const struct cai__tv *v, struct cai__tv *key)
{
    int rc;
    *key = *v;
    if (s->attribute) {
        if (s->attribute->t == CAI__TV_STR) {
            /* Dotted paths ("a.b") and integer parts, as Jinja's attrgetter. */
            struct cai__tstr path = s->attribute->u.s;
            size_t i = 0;
            while (i <= path.n) {
                size_t j = i;
                while (j < path.n && path.p[j] != '.')
                    j++;
                struct cai__tstr part = {path.p + i, j - i};
                bool digits = part.n > 0 && part.n < 18;
                int64_t idx = 0;
                for (size_t k = 0; k < part.n && digits; k++) {
                    digits = part.p[k] >= '0' && part.p[k] <= '9';
                    idx = idx * 10 + (part.p[k] - '0');
                }
                if (digits) {
                    struct cai__tv ik = cai__tv_int(idx);
                    rc = cai__tv_getitem(s->c, key, &ik, s->off, key);
                } else {
                    struct cai__tv sk = cai__tv_str(part.p, part.n);
                    rc = cai__tv_getitem(s->c, key, &sk, s->off, key);
                }
                if (rc)
                    return rc;
                i = j + 1;
            }
        } else if ((rc = cai__tv_getitem(s->c, key, s->attribute, s->off, key))) {
            return rc;
        }
    }
    if (!s->case_sensitive && key->t == CAI__TV_STR)
        return map_case(s->c, key->u.s, CASE_LOWER, s->off, key);
    return 0;
}

static int sort_cmp(struct sort_ctx *s, const struct cai__tv *a, const struct cai__tv *b)
{
    struct cai__tv ka, kb;
    int cmp = 0;
    if (s->rc)
        return 0;
    if ((s->rc = sort_key(s, a, &ka)) || (s->rc = sort_key(s, b, &kb)) ||
        (s->rc = cai__tv_order(s->c, &ka, &kb, s->off, &cmp)))
        return 0;
    return cmp;
}

/* Stable merge sort of v[0..n) (tmp has n slots). */
static void merge_sort(struct sort_ctx *s, struct cai__tv *v, struct cai__tv *tmp, size_t n,
                       bool reverse)
{
    if (n < 2 || s->rc)
        return;
    size_t h = n / 2;
    merge_sort(s, v, tmp, h, reverse);
    merge_sort(s, v + h, tmp, n - h, reverse);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int cmp = sort_cmp(s, &v[i], &v[j]);
        if (reverse ? cmp >= 0 : cmp <= 0)
            tmp[k++] = v[i++];
        else
            tmp[k++] = v[j++];
    }
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

static int sorted(struct cai__tctx *c, const struct cai__tlist *items, struct sort_ctx *s,
                  bool reverse, uint32_t off, struct cai__tv *out)
{
    int rc = cai__tv_new_list(c, items->n, false, off, out);
    if (rc)
        return rc;
    if (items->n == 0)
        return 0;
    memcpy(out->u.l->v, items->v, items->n * sizeof(struct cai__tv));
    struct cai__tv *tmp = cai__tmpl_alloc(c->arena, items->n * sizeof(*tmp));
    if (!tmp)
        return cai__tmpl_fail_mem(c, off);
    merge_sort(s, out->u.l->v, tmp, items->n, reverse);
    return s->rc;
}

/* ---- filters ----------------------------------------------------------- */

typedef int (*filter_fn)(struct cai__tctx *c, const struct cai__tv *v,
                         const struct cai__targs *a, uint32_t off, struct cai__tv *out);

static int f_abs(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    int rc = check_args(c, a, 0, NULL, "abs", off);
    if (rc)
        return rc;
    if (v->t == CAI__TV_FLOAT) {
        *out = tv_float(fabs(v->u.f));
        return 0;
    }
    if (v->t != CAI__TV_INT && v->t != CAI__TV_BOOL)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "bad operand type for abs(): '%s'",
                              cai__tv_type_name(v));
    int64_t x = num_i(v);
    if (x == INT64_MIN)
        return overflow(c, off);
    *out = cai__tv_int(x < 0 ? -x : x);
    return 0;
}

static int f_attr(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"name", NULL};
    const struct cai__tv *name = arg(a, 0, "name");
    int rc = check_args(c, a, 1, names, "attr", off);
    if (rc || (rc = need_str(c, name ? name : v, "attr", off)))
        return rc;
    if (v->t == CAI__TV_DICT) { /* a Python attribute, not an item */
        out->t = CAI__TV_UNDEF;
        return 0;
    }
    return cai__tv_getattr(c, v, name->u.s, off, out);
}

static int f_case(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out, int mode, const char *what)
{
    struct cai__tstr s;
    int rc = check_args(c, a, 0, NULL, what, off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    return map_case(c, s, mode, off, out);
}

static int f_upper(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    return f_case(c, v, a, off, out, CASE_UPPER, "upper");
}

static int f_lower(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    return f_case(c, v, a, off, out, CASE_LOWER, "lower");
}

static int f_capitalize(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return f_case(c, v, a, off, out, CASE_CAPITALIZE, "capitalize");
}

/* Jinja's title filter: words start after whitespace, '-', or an opening
 * bracket; the first letter of each goes upper, the rest lower. */
static int f_title(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    struct cai__tstr s;
    struct cai__tbuf b = {0};
    int rc = check_args(c, a, 0, NULL, "title", off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    size_t i = 0;
    bool word_start = true;
    while (i < s.n && !rc) {
        struct cai__tstr ch;
        uint32_t cp = next_char(s, &i, &ch);
        bool sep = cai__tmpl_is_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' ||
                   cp == '<';
        uint32_t m = sep ? cp : word_start ? to_upper(cp) : to_lower(cp);
        rc = m == cp ? put(c, &b, ch.p, ch.n, off) : put_cp(c, &b, m, off);
        word_start = sep;
    }
    if (!rc)
        *out = buf_value(&b);
    return rc;
}

static int f_length(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    int rc = check_args(c, a, 0, NULL, "length", off);
    if (rc)
        return rc;
    switch (v->t) {
    case CAI__TV_UNDEF: *out = cai__tv_int(0); return 0;
    case CAI__TV_STR: *out = cai__tv_int((int64_t)cai__utf8_count(v->u.s.p, v->u.s.n)); return 0;
    case CAI__TV_LIST: *out = cai__tv_int((int64_t)v->u.l->n); return 0;
    case CAI__TV_DICT: *out = cai__tv_int((int64_t)v->u.d->n); return 0;
    case CAI__TV_LOOP: *out = cai__tv_int((int64_t)v->u.loop->n); return 0;
    default:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "object of type '%s' has no len()",
                              cai__tv_type_name(v));
    }
}

static int f_default(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                     uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"default_value", "boolean", NULL};
    const struct cai__tv *dv = arg(a, 0, "default_value"), *boolean = arg(a, 1, "boolean");
    int rc = check_args(c, a, 2, names, "default", off);
    if (rc)
        return rc;
    bool use = v->t == CAI__TV_UNDEF || (boolean && cai__tv_truthy(boolean) && !cai__tv_truthy(v));
    if (!use)
        *out = *v;
    else if (dv)
        *out = *dv;
    else
        *out = cai__tv_str("", 0);
    return 0;
}

static int f_first_last(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out, bool last)
{
    struct cai__tlist items;
    int rc = check_args(c, a, 0, NULL, last ? "last" : "first", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)))
        return rc;
    if (items.n == 0)
        out->t = CAI__TV_UNDEF;
    else
        *out = items.v[last ? items.n - 1 : 0];
    return 0;
}

static int f_first(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    return f_first_last(c, v, a, off, out, false);
}

static int f_last(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    return f_first_last(c, v, a, off, out, true);
}

static int f_join(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"d", "attribute", NULL};
    const struct cai__tv *d = arg(a, 0, "d"), *attribute = arg(a, 1, "attribute");
    struct cai__tstr sep = {"", 0};
    struct cai__tlist items;
    int rc = check_args(c, a, 2, names, "join", off);
    if (rc || (d && (rc = cai__tv_to_str(c, d, off, &sep))) ||
        (rc = cai__tv_iterate(c, v, off, &items)))
        return rc;
    return join(c, &items, sep, attribute, off, out);
}

static int f_list(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    struct cai__tlist items;
    int rc = check_args(c, a, 0, NULL, "list", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)) ||
        (rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    if (items.n)
        memcpy(out->u.l->v, items.v, items.n * sizeof(struct cai__tv));
    return 0;
}

static int f_string(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    struct cai__tstr s;
    int rc = check_args(c, a, 0, NULL, "string", off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    *out = cai__tv_str(s.p, s.n);
    return 0;
}

static int f_trim(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"chars", NULL};
    const struct cai__tv *chars = arg(a, 0, "chars");
    struct cai__tstr s;
    int rc = check_args(c, a, 1, names, "trim", off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    if (chars && chars->t != CAI__TV_NONE && (rc = need_str(c, chars, "trim", off)))
        return rc;
    s = strip(s, chars && chars->t == CAI__TV_STR ? &chars->u.s : NULL, true, true);
    *out = cai__tv_str(s.p, s.n);
    return 0;
}

static int f_replace(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                     uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"old", "new", "count", NULL};
    const struct cai__tv *old = arg(a, 0, "old"), *new_ = arg(a, 1, "new");
    const struct cai__tv *count = arg(a, 2, "count");
    struct cai__tstr s, so, sn;
    int rc = check_args(c, a, 3, names, "replace", off);
    if (rc)
        return rc;
    if (!old || !new_)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "replace needs old and new");
    if ((rc = cai__tv_to_str(c, v, off, &s)) || (rc = cai__tv_to_str(c, old, off, &so)) ||
        (rc = cai__tv_to_str(c, new_, off, &sn)))
        return rc;
    if (count && count->t != CAI__TV_NONE && count->t != CAI__TV_INT)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "replace count must be an integer");
    return replace(c, s, so, sn, count && count->t == CAI__TV_INT ? count->u.i : -1, off, out);
}

static int f_tojson(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys",
                                        NULL};
    const struct cai__tv *ascii = arg(a, 0, "ensure_ascii"), *indent = arg(a, 1, "indent");
    const struct cai__tv *seps = arg(a, 2, "separators"), *sort = arg(a, 3, "sort_keys");
    struct json_opts o = {.item_sep = {", ", 2}, .key_sep = {": ", 2}};
    struct cai__tbuf b = {0};
    char spaces[65];
    int rc = check_args(c, a, 4, names, "tojson", off);
    if (rc)
        return rc;
    if (ascii && cai__tv_truthy(ascii))
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "tojson: ensure_ascii is not supported");
    if (indent && indent->t != CAI__TV_NONE) {
        o.indent = true;
        o.item_sep = (struct cai__tstr){",", 1};
        if (indent->t == CAI__TV_STR) {
            o.indent_str = indent->u.s;
        } else if (indent->t == CAI__TV_INT || indent->t == CAI__TV_BOOL) {
            int64_t k = num_i(indent);
            if (k > 64)
                return cai__tmpl_fail(c, CAI_ERANGE, off, "tojson: indent larger than 64");
            k = k < 0 ? 0 : k;
            memset(spaces, ' ', (size_t)k);
            o.indent_str = (struct cai__tstr){spaces, (size_t)k};
        } else {
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "tojson: indent must be an int or str");
        }
    }
    if (seps && seps->t != CAI__TV_NONE) {
        if (seps->t != CAI__TV_LIST || seps->u.l->n != 2 || seps->u.l->v[0].t != CAI__TV_STR ||
            seps->u.l->v[1].t != CAI__TV_STR)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "tojson: separators must be two strings");
        o.item_sep = seps->u.l->v[0].u.s;
        o.key_sep = seps->u.l->v[1].u.s;
    }
    o.sort_keys = sort && cai__tv_truthy(sort);
    if ((rc = json_value(c, &b, v, &o, 0, off)))
        return rc;
    *out = buf_value(&b);
    return 0;
}

static int f_int(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"default", "base", NULL};
    const struct cai__tv *def = arg(a, 0, "default"), *base = arg(a, 1, "base");
    int rc = check_args(c, a, 2, names, "int", off);
    if (rc)
        return rc;
    if (v->t == CAI__TV_INT || v->t == CAI__TV_BOOL) {
        *out = cai__tv_int(num_i(v));
        return 0;
    }
    if (v->t == CAI__TV_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18) {
        *out = cai__tv_int((int64_t)v->u.f);
        return 0;
    }
    if (v->t == CAI__TV_STR) {
        char tmp[64];
        struct cai__tstr s = strip(v->u.s, NULL, true, true);
        int b = base && (base->t == CAI__TV_INT) ? (int)base->u.i : 10;
        if (s.n > 0 && s.n < sizeof(tmp) && b >= 2 && b <= 36) {
            size_t k = 0;
            for (size_t i = 0; i < s.n; i++)
                if (s.p[i] != '_')
                    tmp[k++] = s.p[i];
            tmp[k] = '\0';
            char *end;
            errno = 0;
            long long x = strtoll(tmp, &end, b);
            if (*end == '\0' && errno == 0 && end != tmp) {
                *out = cai__tv_int(x);
                return 0;
            }
            double f = strtod(tmp, &end);
            if (*end == '\0' && end != tmp && isfinite(f) && fabs(f) < 9.2e18 && b == 10) {
                *out = cai__tv_int((int64_t)f);
                return 0;
            }
        }
    }
    *out = def ? *def : cai__tv_int(0);
    return 0;
}

static int f_float(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"default", NULL};
    const struct cai__tv *def = arg(a, 0, "default");
    int rc = check_args(c, a, 1, names, "float", off);
    if (rc)
        return rc;
    if (is_num(v)) {
        *out = tv_float(num_f(v));
        return 0;
    }
    if (v->t == CAI__TV_STR) {
        char tmp[64];
        struct cai__tstr s = strip(v->u.s, NULL, true, true);
        if (s.n > 0 && s.n < sizeof(tmp)) {
            memcpy(tmp, s.p, s.n);
            tmp[s.n] = '\0';
            char *end;
            double f = strtod(tmp, &end);
            if (*end == '\0') {
                *out = tv_float(f);
                return 0;
            }
        }
    }
    *out = def ? *def : tv_float(0.0);
    return 0;
}

static int f_round(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"precision", "method", NULL};
    const struct cai__tv *prec = arg(a, 0, "precision"), *method = arg(a, 1, "method");
    int rc = check_args(c, a, 2, names, "round", off);
    if (rc)
        return rc;
    if (!is_num(v))
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "round needs a number");
    int64_t p = prec ? num_i(prec) : 0;
    if (p < -30 || p > 30)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "round precision out of range");
    double scale = pow(10.0, (double)p), x = num_f(v) * scale, r;
    if (!method || (method->t == CAI__TV_STR && str_eq(method->u.s, "common"))) {
        if (v->t != CAI__TV_FLOAT) { /* Python's round() keeps an int an int */
            *out = cai__tv_int(num_i(v));
            return 0;
        }
        r = nearbyint(x); /* round half to even, as Python */
    } else if (method->t == CAI__TV_STR && str_eq(method->u.s, "floor")) {
        r = floor(x);
    } else if (method->t == CAI__TV_STR && str_eq(method->u.s, "ceil")) {
        r = ceil(x);
    } else {
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "method must be common, ceil or floor");
    }
    *out = tv_float(r / scale);
    return 0;
}

static int f_reverse(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                     uint32_t off, struct cai__tv *out)
{
    struct cai__tlist items;
    int rc = check_args(c, a, 0, NULL, "reverse", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)))
        return rc;
    if (v->t == CAI__TV_STR) {
        struct cai__tbuf b = {0};
        for (size_t i = items.n; i-- > 0 && !rc;)
            rc = put(c, &b, items.v[i].u.s.p, items.v[i].u.s.n, off);
        if (!rc)
            *out = buf_value(&b);
        return rc;
    }
    if ((rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    for (size_t i = 0; i < items.n; i++)
        out->u.l->v[i] = items.v[items.n - 1 - i];
    return 0;
}

static int f_items(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    int rc = check_args(c, a, 0, NULL, "items", off);
    if (rc)
        return rc;
    if (v->t == CAI__TV_UNDEF)
        return cai__tv_new_list(c, 0, false, off, out);
    if (v->t != CAI__TV_DICT)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "items needs a mapping");
    const struct cai__tdict *d = v->u.d;
    if ((rc = cai__tv_new_list(c, d->n, false, off, out)))
        return rc;
    for (size_t i = 0; i < d->n; i++) {
        struct cai__tv *pair = &out->u.l->v[i];
        if ((rc = cai__tv_new_list(c, 2, true, off, pair)))
            return rc;
        pair->u.l->v[0] = d->k[i];
        pair->u.l->v[1] = d->v[i];
    }
    return 0;
}

static int f_dictsort(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                      uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"case_sensitive", "by", "reverse", NULL};
    const struct cai__tv *cs = arg(a, 0, "case_sensitive"), *by = arg(a, 1, "by");
    const struct cai__tv *rev = arg(a, 2, "reverse");
    struct cai__targs none = {0};
    struct cai__tv pairs;
    int rc = check_args(c, a, 3, names, "dictsort", off);
    if (rc || (rc = f_items(c, v, &none, off, &pairs)))
        return rc;
    struct cai__tv idx = cai__tv_int(by && by->t == CAI__TV_STR && str_eq(by->u.s, "value"));
    struct sort_ctx s = {.c = c, .attribute = &idx, .case_sensitive = cs && cai__tv_truthy(cs),
                         .off = off};
    return sorted(c, pairs.u.l, &s, rev && cai__tv_truthy(rev), off, out);
}

static int f_sort(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"reverse", "case_sensitive", "attribute", NULL};
    const struct cai__tv *rev = arg(a, 0, "reverse"), *cs = arg(a, 1, "case_sensitive");
    const struct cai__tv *attr = arg(a, 2, "attribute");
    struct cai__tlist items;
    int rc = check_args(c, a, 3, names, "sort", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)))
        return rc;
    struct sort_ctx s = {.c = c, .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = cs && cai__tv_truthy(cs), .off = off};
    return sorted(c, &items, &s, rev && cai__tv_truthy(rev), off, out);
}

static int f_unique(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    const struct cai__tv *cs = arg(a, 0, "case_sensitive"), *attr = arg(a, 1, "attribute");
    struct cai__tlist items;
    int rc = check_args(c, a, 2, names, "unique", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)) ||
        (rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    struct sort_ctx s = {.c = c, .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = cs && cai__tv_truthy(cs), .off = off};
    struct cai__tv *keys = cai__tmpl_alloc(c->arena, (items.n ? items.n : 1) * sizeof(*keys));
    if (!keys)
        return cai__tmpl_fail_mem(c, off);
    size_t n = 0;
    for (size_t i = 0; i < items.n; i++) {
        struct cai__tv k;
        bool seen = false;
        if ((rc = sort_key(&s, &items.v[i], &k)))
            return rc;
        for (size_t j = 0; j < n && !seen; j++)
            if ((rc = cai__tv_equal(c, &keys[j], &k, off, &seen)))
                return rc;
        if (!seen) {
            keys[n] = k;
            out->u.l->v[n++] = items.v[i];
        }
    }
    out->u.l->n = n;
    return 0;
}

static int f_minmax(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out, bool max)
{
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    const struct cai__tv *cs = arg(a, 0, "case_sensitive"), *attr = arg(a, 1, "attribute");
    struct cai__tlist items;
    int rc = check_args(c, a, 2, names, max ? "max" : "min", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)))
        return rc;
    struct sort_ctx s = {.c = c, .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = cs && cai__tv_truthy(cs), .off = off};
    out->t = CAI__TV_UNDEF;
    if (items.n == 0)
        return 0;
    size_t best = 0;
    for (size_t i = 1; i < items.n; i++) {
        int cmp = sort_cmp(&s, &items.v[i], &items.v[best]);
        if (s.rc)
            return s.rc;
        if (max ? cmp > 0 : cmp < 0)
            best = i;
    }
    *out = items.v[best];
    return 0;
}

static int f_max(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    return f_minmax(c, v, a, off, out, true);
}

static int f_min(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    return f_minmax(c, v, a, off, out, false);
}

static int f_sum(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"attribute", "start", NULL};
    const struct cai__tv *attr = arg(a, 0, "attribute"), *start = arg(a, 1, "start");
    struct cai__tlist items;
    int rc = check_args(c, a, 2, names, "sum", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)))
        return rc;
    struct sort_ctx s = {.c = c, .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = true, .off = off};
    struct cai__tv acc = start ? *start : cai__tv_int(0);
    for (size_t i = 0; i < items.n; i++) {
        struct cai__tv k;
        if ((rc = sort_key(&s, &items.v[i], &k)) ||
            (rc = cai__tv_arith(c, CAI__TOP_ADD, &acc, &k, off, &acc)))
            return rc;
    }
    *out = acc;
    return 0;
}

static int f_escape(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    struct cai__tstr s;
    struct cai__tbuf b = {0};
    int rc = check_args(c, a, 0, NULL, "escape", off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    size_t start = 0;
    for (size_t i = 0; i < s.n && !rc; i++) {
        const char *rep = NULL;
        switch (s.p[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        if (!(rc = put(c, &b, s.p + start, i - start, off)))
            rc = puts_(c, &b, rep, off);
        start = i + 1;
    }
    if (!rc)
        rc = put(c, &b, s.p + start, s.n - start, off);
    if (!rc)
        *out = buf_value(&b);
    return rc;
}

static int f_safe(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    return f_string(c, v, a, off, out);
}

/* Python's str.splitlines() boundaries: the length of the line break at
 * s[i], or 0. */
static size_t line_break_at(struct cai__tstr s, size_t i)
{
    unsigned char ch = (unsigned char)s.p[i];
    if (ch == '\r')
        return i + 1 < s.n && s.p[i + 1] == '\n' ? 2 : 1;
    if (ch == '\n' || ch == '\v' || ch == '\f' || (ch >= 0x1c && ch <= 0x1e))
        return 1;
    if (ch >= 0x80) {
        size_t k = i;
        uint32_t cp = cai__utf8_next(s.p, s.n, &k);
        if (cp == 0x85 || cp == 0x2028 || cp == 0x2029)
            return k - i;
    }
    return 0;
}

static int f_indent(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"width", "first", "blank", NULL};
    const struct cai__tv *width = arg(a, 0, "width"), *first = arg(a, 1, "first");
    const struct cai__tv *blank = arg(a, 2, "blank");
    struct cai__tstr s, ind;
    char spaces[257];
    struct cai__tbuf b = {0};
    int rc = check_args(c, a, 3, names, "indent", off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    if (width && width->t == CAI__TV_STR) {
        ind = width->u.s;
    } else {
        int64_t w = width ? num_i(width) : 4;
        if (width && width->t != CAI__TV_INT && width->t != CAI__TV_BOOL)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "indent width must be an int or str");
        if (w > 256)
            return cai__tmpl_fail(c, CAI_ERANGE, off, "indent width larger than 256");
        w = w < 0 ? 0 : w;
        memset(spaces, ' ', (size_t)w);
        ind = (struct cai__tstr){spaces, (size_t)w};
    }
    /* Jinja: text += "\n"; lines = text.splitlines(); the first line
     * as is, each later one indented unless blank (blank=true: all). */
    bool ind_blank = blank && cai__tv_truthy(blank);
    if (first && cai__tv_truthy(first))
        rc = put(c, &b, ind.p, ind.n, off);
    size_t i = 0, line = 0;
    bool first_line = true;
    while (!rc && line <= s.n) {
        size_t k = i < s.n ? line_break_at(s, i) : 1; /* the appended "\n" */
        if (k == 0) {
            i++;
            continue;
        }
        struct cai__tstr text = {s.p + line, i - line};
        if (!first_line) {
            rc = put(c, &b, "\n", 1, off);
            if (!rc && (text.n || ind_blank))
                rc = put(c, &b, ind.p, ind.n, off);
        }
        if (!rc)
            rc = put(c, &b, text.p, text.n, off);
        first_line = false;
        if (i >= s.n)
            break;
        i += k;
        line = i;
    }
    if (!rc)
        *out = buf_value(&b);
    return rc;
}

static int f_wordcount(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                       uint32_t off, struct cai__tv *out)
{
    struct cai__tstr s;
    int rc = check_args(c, a, 0, NULL, "wordcount", off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    int64_t n = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp = cai__utf8_next(s.p, s.n, &i);
        bool w = cp >= 0x80 ? !cai__tmpl_is_space(cp)
                            : (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
                                  (cp >= 'A' && cp <= 'Z') || cp == '_';
        if (w && !in_word)
            n++;
        in_word = w;
    }
    *out = cai__tv_int(n);
    return 0;
}

static int f_map(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    struct cai__tlist items;
    int rc = cai__tv_iterate(c, v, off, &items);
    if (rc || (rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    if (a->n_pos == 0) {
        static const char *const names[] = {"attribute", "default", NULL};
        const struct cai__tv *attr = arg(a, 99, "attribute"), *def = arg(a, 99, "default");
        if ((rc = check_args(c, a, 0, names, "map", off)))
            return rc;
        if (!attr)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "map needs a filter name or attribute=");
        struct sort_ctx s = {.c = c, .attribute = attr, .case_sensitive = true, .off = off};
        for (size_t i = 0; i < items.n; i++) {
            struct cai__tv *r = &out->u.l->v[i];
            if ((rc = sort_key(&s, &items.v[i], r)))
                return rc;
            if (r->t == CAI__TV_UNDEF && def)
                *r = *def;
        }
        return 0;
    }
    if (a->pos[0].t != CAI__TV_STR)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "map needs a filter name");
    struct cai__targs rest = *a;
    rest.pos++;
    rest.n_pos--;
    for (size_t i = 0; i < items.n; i++)
        if ((rc = cai__tmpl_filter(c, a->pos[0].u.s, &items.v[i], &rest, off, &out->u.l->v[i])))
            return rc;
    return 0;
}

/* select/reject(test, args...) and selectattr/rejectattr(attr, test, args...). */
static int select_common(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                         uint32_t off, struct cai__tv *out, bool keep, bool by_attr)
{
    struct cai__tlist items;
    size_t skip = by_attr ? 1 : 0;
    int rc;
    if (a->n_kw)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "select filters take no keyword arguments");
    if (by_attr && (a->n_pos < 1 || a->pos[0].t != CAI__TV_STR))
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "selectattr needs an attribute name");
    if (a->n_pos > skip && a->pos[skip].t != CAI__TV_STR)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "select needs a test name");
    if (a->n_pos > skip && !cai__tmpl_test_known(a->pos[skip].u.s))
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "no test named '%.*s'",
                              (int)CAI_MIN(a->pos[skip].u.s.n, 40), a->pos[skip].u.s.p);
    if ((rc = cai__tv_iterate(c, v, off, &items)) ||
        (rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    struct cai__targs rest = {0};
    if (a->n_pos > skip + 1) {
        rest.pos = a->pos + skip + 1;
        rest.n_pos = a->n_pos - skip - 1;
    }
    struct sort_ctx s = {.c = c, .attribute = by_attr ? &a->pos[0] : NULL, .case_sensitive = true,
                         .off = off};
    size_t n = 0;
    for (size_t i = 0; i < items.n; i++) {
        struct cai__tv k;
        bool r;
        if ((rc = sort_key(&s, &items.v[i], &k)))
            return rc;
        if (a->n_pos > skip) {
            if ((rc = cai__tmpl_test(c, a->pos[skip].u.s, &k, &rest, off, &r)))
                return rc;
        } else {
            r = cai__tv_truthy(&k);
        }
        if (r == keep)
            out->u.l->v[n++] = items.v[i];
    }
    out->u.l->n = n;
    return 0;
}

static int f_select(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, true, false);
}

static int f_reject(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, false, false);
}

static int f_selectattr(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, true, true);
}

static int f_rejectattr(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, false, true);
}

static int f_center(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"width", NULL};
    const struct cai__tv *width = arg(a, 0, "width");
    struct cai__tstr s;
    struct cai__tbuf b = {0};
    int rc = check_args(c, a, 1, names, "center", off);
    if (rc || (rc = cai__tv_to_str(c, v, off, &s)))
        return rc;
    int64_t w = width ? num_i(width) : 80, len = (int64_t)cai__utf8_count(s.p, s.n);
    if (w > 4096)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "center width larger than 4096");
    int64_t pad = w > len ? w - len : 0;
    /* Python's str.center puts the odd space on the right unless the
     * width is odd and the text is even. */
    int64_t left = pad / 2 + (pad & w & 1);
    for (int64_t i = 0; i < left && !rc; i++)
        rc = put(c, &b, " ", 1, off);
    if (!rc)
        rc = put(c, &b, s.p, s.n, off);
    for (int64_t i = left; i < pad && !rc; i++)
        rc = put(c, &b, " ", 1, off);
    if (!rc)
        *out = buf_value(&b);
    return rc;
}

static const struct {
    const char *name;
    filter_fn   fn;
} filters[] = {
    {"abs", f_abs},           {"attr", f_attr},       {"capitalize", f_capitalize},
    {"center", f_center},     {"count", f_length},    {"d", f_default},
    {"default", f_default},   {"dictsort", f_dictsort}, {"e", f_escape},
    {"escape", f_escape},     {"first", f_first},     {"float", f_float},
    {"indent", f_indent},     {"int", f_int},         {"items", f_items},
    {"join", f_join},         {"last", f_last},       {"length", f_length},
    {"list", f_list},         {"lower", f_lower},     {"map", f_map},
    {"max", f_max},           {"min", f_min},         {"reject", f_reject},
    {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
    {"round", f_round},       {"safe", f_safe},       {"select", f_select},
    {"selectattr", f_selectattr}, {"sort", f_sort},   {"string", f_string},
    {"sum", f_sum},           {"title", f_title},     {"tojson", f_tojson},
    {"trim", f_trim},         {"unique", f_unique},   {"upper", f_upper},
    {"wordcount", f_wordcount},
};

bool cai__tmpl_filter_known(struct cai__tstr name)
{
    for (size_t i = 0; i < CAI_ARRAY_LEN(filters); i++)
        if (str_eq(name, filters[i].name))
            return true;
    return false;
}

int cai__tmpl_filter(struct cai__tctx *c, struct cai__tstr name, const struct cai__tv *v,
                     const struct cai__targs *args, uint32_t off, struct cai__tv *out)
{
    int rc = cai__tmpl_step(c, off);
    if (rc)
        return rc;
    for (size_t i = 0; i < CAI_ARRAY_LEN(filters); i++)
        if (str_eq(name, filters[i].name))
            return filters[i].fn(c, v, args, off, out);
    return cai__tmpl_fail(c, CAI_EFORMAT, off, "no filter named '%.*s'",
                          (int)CAI_MIN(name.n, 40), name.p);
}

/* ---- tests ------------------------------------------------------------- */

static const char *const test_names[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even",
    "false", "filter", "float", "ge", ">=", "gt", ">", "greaterthan", "in", "integer",
    "iterable", "le", "<=", "lower", "lt", "<", "lessthan", "mapping", "ne", "!=", "none",
    "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper", NULL,
};

bool cai__tmpl_test_known(struct cai__tstr name)
{
    for (size_t i = 0; test_names[i]; i++)
        if (str_eq(name, test_names[i]))
            return true;
    return false;
}

static bool all_cased(struct cai__tstr s, bool upper)
{
    bool any = false;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp = cai__utf8_next(s.p, s.n, &i);
        if (!is_cased(cp))
            continue;
        any = true;
        if ((upper ? to_upper(cp) : to_lower(cp)) != cp)
            return false;
    }
    return any;
}

int cai__tmpl_test(struct cai__tctx *c, struct cai__tstr name, const struct cai__tv *v,
                   const struct cai__targs *args, uint32_t off, bool *out)
{
    const struct cai__tv *x = arg(args, 0, NULL);
    int rc = cai__tmpl_step(c, off);
    int op = -1;
    if (rc)
        return rc;
    *out = false;
    if (str_eq(name, "defined")) {
        *out = v->t != CAI__TV_UNDEF;
    } else if (str_eq(name, "undefined")) {
        *out = v->t == CAI__TV_UNDEF;
    } else if (str_eq(name, "none")) {
        *out = v->t == CAI__TV_NONE;
    } else if (str_eq(name, "boolean")) {
        *out = v->t == CAI__TV_BOOL;
    } else if (str_eq(name, "true")) {
        *out = v->t == CAI__TV_BOOL && v->u.b;
    } else if (str_eq(name, "false")) {
        *out = v->t == CAI__TV_BOOL && !v->u.b;
    } else if (str_eq(name, "string")) {
        *out = v->t == CAI__TV_STR;
    } else if (str_eq(name, "number")) {
        *out = is_num(v);
    } else if (str_eq(name, "integer")) {
        *out = v->t == CAI__TV_INT;
    } else if (str_eq(name, "float")) {
        *out = v->t == CAI__TV_FLOAT;
    } else if (str_eq(name, "mapping")) {
        *out = v->t == CAI__TV_DICT;
    } else if (str_eq(name, "iterable")) {
        *out = v->t == CAI__TV_UNDEF || v->t == CAI__TV_STR || v->t == CAI__TV_LIST ||
               v->t == CAI__TV_DICT || v->t == CAI__TV_LOOP;
    } else if (str_eq(name, "sequence")) {
        *out = v->t == CAI__TV_UNDEF || v->t == CAI__TV_STR || v->t == CAI__TV_LIST ||
               v->t == CAI__TV_DICT;
    } else if (str_eq(name, "callable")) {
        *out = v->t == CAI__TV_MACRO || v->t == CAI__TV_FUNC;
    } else if (str_eq(name, "escaped")) {
        *out = false;
    } else if (str_eq(name, "lower") || str_eq(name, "upper")) {
        struct cai__tstr s;
        if ((rc = cai__tv_to_str(c, v, off, &s)))
            return rc;
        *out = all_cased(s, str_eq(name, "upper"));
    } else if (str_eq(name, "odd") || str_eq(name, "even")) {
        if (v->t != CAI__TV_INT && v->t != CAI__TV_BOOL)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "odd/even need an integer");
        *out = (num_i(v) & 1) == str_eq(name, "odd");
    } else if (str_eq(name, "filter") || str_eq(name, "test")) {
        *out = v->t == CAI__TV_STR &&
               (str_eq(name, "filter") ? cai__tmpl_filter_known(v->u.s)
                                       : cai__tmpl_test_known(v->u.s));
    } else if (!x) {
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "test '%.*s' needs an argument",
                              (int)CAI_MIN(name.n, 40), name.p);
    } else if (str_eq(name, "divisibleby")) {
        struct cai__tv m;
        bool z;
        struct cai__tv zero = cai__tv_int(0);
        if ((rc = cai__tv_arith(c, CAI__TOP_MOD, v, x, off, &m)) ||
            (rc = cai__tv_equal(c, &m, &zero, off, &z)))
            return rc;
        *out = z;
    } else if (str_eq(name, "in")) {
        return cai__tv_contains(c, x, v, off, out);
    } else if (str_eq(name, "sameas")) {
        if (v->t != x->t)
            *out = false;
        else if (v->t == CAI__TV_LIST)
            *out = v->u.l == x->u.l;
        else if (v->t == CAI__TV_DICT || v->t == CAI__TV_NS)
            *out = v->u.d == x->u.d;
        else
            return cai__tv_equal(c, v, x, off, out);
    } else if (str_eq(name, "eq") || str_eq(name, "equalto") || str_eq(name, "==")) {
        op = CAI__TOP_EQ;
    } else if (str_eq(name, "ne") || str_eq(name, "!=")) {
        op = CAI__TOP_NE;
    } else if (str_eq(name, "lt") || str_eq(name, "<") || str_eq(name, "lessthan")) {
        op = CAI__TOP_LT;
    } else if (str_eq(name, "le") || str_eq(name, "<=")) {
        op = CAI__TOP_LE;
    } else if (str_eq(name, "gt") || str_eq(name, ">") || str_eq(name, "greaterthan")) {
        op = CAI__TOP_GT;
    } else if (str_eq(name, "ge") || str_eq(name, ">=")) {
        op = CAI__TOP_GE;
    } else {
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "no test named '%.*s'",
                              (int)CAI_MIN(name.n, 40), name.p);
    }
    if (op == CAI__TOP_EQ || op == CAI__TOP_NE) {
        if ((rc = cai__tv_equal(c, v, x, off, out)))
            return rc;
        *out = op == CAI__TOP_EQ ? *out : !*out;
    } else if (op >= 0) {
        int cmp;
        if ((rc = cai__tv_order(c, v, x, off, &cmp)))
            return rc;
        *out = op == CAI__TOP_LT ? cmp < 0 : op == CAI__TOP_LE ? cmp <= 0
             : op == CAI__TOP_GT ? cmp > 0 : cmp >= 0;
    }
    return 0;
}

/* ---- methods ----------------------------------------------------------- */

static int str_method(struct cai__tctx *c, struct cai__tstr s, struct cai__tstr name,
                      const struct cai__targs *a, uint32_t off, struct cai__tv *out, bool *found)
{
    static const char *const chars_names[] = {"chars", NULL};
    static const char *const split_names[] = {"sep", "maxsplit", NULL};
    const struct cai__tv *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
    int rc;
    *found = true;
    if (str_eq(name, "strip") || str_eq(name, "lstrip") || str_eq(name, "rstrip")) {
        const struct cai__tv *chars = arg(a, 0, "chars");
        if ((rc = check_args(c, a, 1, chars_names, "strip", off)))
            return rc;
        if (chars && chars->t != CAI__TV_NONE && (rc = need_str(c, chars, "strip", off)))
            return rc;
        struct cai__tstr r = strip(s, chars && chars->t == CAI__TV_STR ? &chars->u.s : NULL,
                                   name.p[0] != 'r', name.p[0] != 'l');
        *out = cai__tv_str(r.p, r.n);
        return 0;
    }
    if (str_eq(name, "split")) {
        const struct cai__tv *sep = arg(a, 0, "sep"), *maxsplit = arg(a, 1, "maxsplit");
        if ((rc = check_args(c, a, 2, split_names, "split", off)))
            return rc;
        if (sep && sep->t != CAI__TV_NONE && (rc = need_str(c, sep, "split", off)))
            return rc;
        if (maxsplit && maxsplit->t != CAI__TV_INT)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "split maxsplit must be an integer");
        return split(c, s, sep && sep->t == CAI__TV_STR ? &sep->u.s : NULL,
                     maxsplit ? maxsplit->u.i : -1, off, out);
    }
    if (str_eq(name, "startswith") || str_eq(name, "endswith")) {
        bool r;
        if ((rc = check_args(c, a, 1, NULL, "startswith", off)) ||
            (rc = affix_test(c, s, a0, name.p[0] == 'e', off, &r)))
            return rc;
        *out = cai__tv_bool(r);
        return 0;
    }
    if (str_eq(name, "upper") || str_eq(name, "lower") || str_eq(name, "capitalize") ||
        str_eq(name, "title")) {
        if ((rc = check_args(c, a, 0, NULL, "case method", off)))
            return rc;
        int mode = name.p[0] == 'u' ? CASE_UPPER : name.p[0] == 'l' ? CASE_LOWER
                 : name.p[0] == 'c' ? CASE_CAPITALIZE : CASE_TITLE_METHOD;
        return map_case(c, s, mode, off, out);
    }
    if (str_eq(name, "replace")) {
        if ((rc = check_args(c, a, 3, NULL, "replace", off)))
            return rc;
        const struct cai__tv *count = arg(a, 2, NULL);
        if (!a0 || !a1 || a0->t != CAI__TV_STR || a1->t != CAI__TV_STR ||
            (count && count->t != CAI__TV_INT))
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "replace needs two strings");
        return replace(c, s, a0->u.s, a1->u.s, count ? count->u.i : -1, off, out);
    }
    if (str_eq(name, "find") || str_eq(name, "count") || str_eq(name, "rfind")) {
        size_t at, from = 0;
        int64_t n = 0, pos = -1;
        if ((rc = check_args(c, a, 1, NULL, "find", off)))
            return rc;
        if (!a0 || a0->t != CAI__TV_STR)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "find needs a string");
        while (find_sub(s, a0->u.s, from, &at)) {
            if (pos < 0 || name.p[0] == 'r')
                pos = (int64_t)cai__utf8_count(s.p, at);
            n++;
            if (name.p[0] == 'f')
                break;
            from = at + (a0->u.s.n ? a0->u.s.n : 1);
            if (from > s.n)
                break;
        }
        *out = cai__tv_int(name.p[0] == 'c' ? n : pos);
        return 0;
    }
    if (str_eq(name, "join")) {
        struct cai__tlist items;
        if ((rc = check_args(c, a, 1, NULL, "join", off)))
            return rc;
        if (!a0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "join needs an iterable");
        if ((rc = cai__tv_iterate(c, a0, off, &items)))
            return rc;
        for (size_t i = 0; i < items.n; i++)
            if (items.v[i].t != CAI__TV_STR)
                return cai__tmpl_fail(c, CAI_EFORMAT, off, "join: item %zu is not a string", i);
        return join(c, &items, s, NULL, off, out);
    }
    if (str_eq(name, "splitlines")) {
        struct cai__tv parts;
        if ((rc = check_args(c, a, 0, NULL, "splitlines", off)) ||
            (rc = cai__tv_new_list(c, 0, false, off, &parts)))
            return rc;
        size_t line = 0, i = 0, n = 0, cap = 0;
        struct cai__tv *v = NULL;
        while (i < s.n) {
            size_t k = line_break_at(s, i);
            if (!k) {
                i++;
                continue;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct cai__tv *nv = cai__tmpl_alloc(c->arena, ncap * sizeof(*nv));
                if (!nv)
                    return cai__tmpl_fail_mem(c, off);
                if (n)
                    memcpy(nv, v, n * sizeof(*nv));
                v = nv;
                cap = ncap;
            }
            v[n++] = cai__tv_str(s.p + line, i - line);
            i += k;
            line = i;
        }
        if (line < s.n) {
            struct cai__tv *nv = cai__tmpl_alloc(c->arena, (n + 1) * sizeof(*nv));
            if (!nv)
                return cai__tmpl_fail_mem(c, off);
            if (n)
                memcpy(nv, v, n * sizeof(*nv));
            v = nv;
            v[n++] = cai__tv_str(s.p + line, s.n - line);
        }
        parts.u.l->v = v;
        parts.u.l->n = n;
        *out = parts;
        return 0;
    }
    if (str_eq(name, "isdigit") || str_eq(name, "isalpha") || str_eq(name, "isspace") ||
        str_eq(name, "isupper") || str_eq(name, "islower") || str_eq(name, "isalnum")) {
        bool r = s.n > 0;
        if ((rc = check_args(c, a, 0, NULL, name.p, off)))
            return rc;
        if (str_eq(name, "isupper") || str_eq(name, "islower")) {
            r = all_cased(s, name.p[2] == 'u');
        } else {
            for (size_t i = 0; i < s.n && r;) {
                uint32_t cp = cai__utf8_next(s.p, s.n, &i);
                bool digit = cp >= '0' && cp <= '9';
                bool alpha = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
                             (cp >= 0x80 && is_cased(cp));
                r = name.p[2] == 'd' ? digit : name.p[2] == 's' ? cai__tmpl_is_space(cp)
                  : name.p[4] == 'p' ? alpha : alpha || digit;
            }
        }
        *out = cai__tv_bool(r);
        return 0;
    }
    *found = false;
    return 0;
}

static int dict_method(struct cai__tctx *c, const struct cai__tv *obj, struct cai__tstr name,
                       const struct cai__targs *a, uint32_t off, struct cai__tv *out,
                       bool *found)
{
    const struct cai__tdict *d = obj->u.d;
    struct cai__targs none = {0};
    int rc;
    *found = true;
    if (str_eq(name, "items")) {
        if ((rc = check_args(c, a, 0, NULL, "items", off)))
            return rc;
        return f_items(c, obj, &none, off, out);
    }
    if (str_eq(name, "keys") || str_eq(name, "values")) {
        if ((rc = check_args(c, a, 0, NULL, "keys", off)) ||
            (rc = cai__tv_new_list(c, d->n, false, off, out)))
            return rc;
        if (d->n)
            memcpy(out->u.l->v, name.p[0] == 'k' ? d->k : d->v, d->n * sizeof(struct cai__tv));
        return 0;
    }
    if (str_eq(name, "get")) {
        const struct cai__tv *key = arg(a, 0, NULL), *def = arg(a, 1, NULL);
        if ((rc = check_args(c, a, 2, NULL, "get", off)))
            return rc;
        if (!key)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "get needs a key");
        const struct cai__tv *r = cai__tdict_get(d, key);
        if (r)
            *out = *r;
        else if (def)
            *out = *def;
        else
            out->t = CAI__TV_NONE;
        return 0;
    }
    *found = false;
    return 0;
}

int cai__tmpl_method(struct cai__tctx *c, const struct cai__tv *obj, struct cai__tstr name,
                     const struct cai__targs *args, uint32_t off, struct cai__tv *out,
                     bool *found)
{
    int rc = cai__tmpl_step(c, off);
    *found = false;
    if (rc)
        return rc;
    if (obj->t == CAI__TV_STR)
        return str_method(c, obj->u.s, name, args, off, out, found);
    if (obj->t == CAI__TV_DICT)
        return dict_method(c, obj, name, args, off, out, found);
    if (obj->t == CAI__TV_LOOP && str_eq(name, "cycle")) {
        *found = true;
        if (args->n_pos == 0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "loop.cycle needs arguments");
        *out = args->pos[obj->u.loop->i % args->n_pos];
        return 0;
    }
    if (obj->t == CAI__TV_LIST && (str_eq(name, "append") || str_eq(name, "pop") ||
                                   str_eq(name, "insert") || str_eq(name, "extend"))) {
        /* Hugging Face renders in Jinja's immutable sandbox. */
        *found = true;
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "cannot modify an immutable list");
    }
    return 0;
}
