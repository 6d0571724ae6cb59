/* template_value.c: what values are in a chat template. Printing (Python
 * str() and repr()), JSON (Hugging Face's tojson: json.dumps without ASCII
 * escaping), equality and ordering, arithmetic, case mapping and the string
 * operations the filters and methods share, each with Python's semantics.
 * Recursion over nested values is bounded (CAI__TMPL_MAX_VALUE_NEST)
 * because templates can build deep values in loops.
 *
 * Case mapping (upper, lower, title, capitalize) covers ASCII, Latin-1,
 * Latin Extended-A, Greek and Cyrillic; other scripts pass unchanged, and
 * one-to-many mappings such as German sharp s are not applied. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

/* ---- basics ------------------------------------------------------------ */

bool cai__tv_truthy(const struct cai__tv *v)
{
    switch (v->t) {
    case CAI__TV_UNDEF:
    case CAI__TV_NONE:
        return false;
    case CAI__TV_BOOL:
        return v->u.b;
    case CAI__TV_INT:
        return v->u.i != 0;
    case CAI__TV_FLOAT:
        return v->u.f != 0.0;
    case CAI__TV_STR:
        return v->u.s.n != 0;
    case CAI__TV_LIST:
        return v->u.l->n != 0 || v->u.l->view == CAI__TL_GEN || v->u.l->view == CAI__TL_ITER;
    case CAI__TV_DICT:
        return v->u.d->n != 0;
    default:
        return true;
    }
}

const char *cai__tv_type_name(const struct cai__tv *v)
{
    switch (v->t) {
    case CAI__TV_UNDEF:
        return "Undefined";
    case CAI__TV_NONE:
        return "NoneType";
    case CAI__TV_BOOL:
        return "bool";
    case CAI__TV_INT:
        return "int";
    case CAI__TV_FLOAT:
        return "float";
    case CAI__TV_STR:
        return "str";
    case CAI__TV_LIST:
        switch (v->u.l->view) {
        case CAI__TL_GEN:
            return "generator";
        case CAI__TL_ITER:
            return "list_reverseiterator";
        case CAI__TL_RANGE:
            return "range";
        case CAI__TL_ITEMS:
            return "dict_items";
        case CAI__TL_KEYS:
            return "dict_keys";
        case CAI__TL_VALUES:
            return "dict_values";
        default:
            return v->u.l->tuple ? "tuple" : "list";
        }
    case CAI__TV_DICT:
        return "dict";
    case CAI__TV_NS:
        return "Namespace";
    case CAI__TV_LOOP:
        return "LoopContext";
    case CAI__TV_MACRO:
        return "Macro";
    default:
        return "function";
    }
}

int cai__tbuf_put_cp(struct cai__tctx *c, struct cai__tbuf *b, uint32_t cp, uint32_t off)
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
    return cai__tbuf_put(c, b, u, n, off);
}

/* ---- case mapping ------------------------------------------------------ */

uint32_t cai__tmpl_lower(uint32_t cp)
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

uint32_t cai__tmpl_upper(uint32_t cp)
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

bool cai__tmpl_is_cased(uint32_t cp)
{
    return cai__tmpl_lower(cp) != cp || cai__tmpl_upper(cp) != cp;
}

int cai__tmpl_map_case(struct cai__tctx *c, struct cai__tstr s, int mode, uint32_t off,
                       struct cai__tv *out)
{
    struct cai__tbuf b = {0};
    size_t i = 0;
    bool prev_cased = false, first = true;
    int rc = 0;
    while (i < s.n && !rc) {
        struct cai__tstr ch;
        uint32_t cp = cai__tstr_next_char(s, &i, &ch), m;
        switch (mode) {
        case CAI__CASE_UPPER:
            m = cai__tmpl_upper(cp);
            break;
        case CAI__CASE_LOWER:
            m = cai__tmpl_lower(cp);
            break;
        case CAI__CASE_CAPITALIZE:
            m = first ? cai__tmpl_upper(cp) : cai__tmpl_lower(cp);
            break;
        default:
            m = prev_cased ? cai__tmpl_lower(cp) : cai__tmpl_upper(cp);
            break;
        }
        first = false;
        prev_cased = cai__tmpl_is_cased(cp);
        rc = m == cp ? cai__tbuf_put(c, &b, ch.p, ch.n, off) : cai__tbuf_put_cp(c, &b, m, off);
    }
    if (!rc)
        *out = cai__tbuf_value(&b);
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
#define EMIT(ch)                                                                                   \
    do {                                                                                           \
        if (o + 1 < cap)                                                                           \
            out[o++] = (ch);                                                                       \
    } while (0)
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
    int rc = cai__tbuf_put(c, b, &quote, 1, off);
    size_t i = 0;
    while (i < s.n && !rc) {
        struct cai__tstr ch;
        uint32_t cp = cai__tstr_next_char(s, &i, &ch);
        char esc[12];
        if (cp == (uint32_t)quote || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            rc = cai__tbuf_put(c, b, esc, 2, off);
        } else if (cp == '\n') {
            rc = cai__tbuf_put(c, b, "\\n", 2, off);
        } else if (cp == '\r') {
            rc = cai__tbuf_put(c, b, "\\r", 2, off);
        } else if (cp == '\t') {
            rc = cai__tbuf_put(c, b, "\\t", 2, off);
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) {
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
            rc = cai__tbuf_put(c, b, esc, 4, off);
        } else {
            rc = cai__tbuf_put(c, b, ch.p, ch.n, off);
        }
    }
    return rc ? rc : cai__tbuf_put(c, b, &quote, 1, off);
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
    case CAI__TV_UNDEF:
        return repr ? cai__tbuf_puts(c, b, "Undefined", off) : 0;
    case CAI__TV_NONE:
        return cai__tbuf_puts(c, b, "None", off);
    case CAI__TV_BOOL:
        return cai__tbuf_puts(c, b, v->u.b ? "True" : "False", off);
    case CAI__TV_INT:
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        return cai__tbuf_puts(c, b, num, off);
    case CAI__TV_FLOAT:
        fmt_float(v->u.f, num, sizeof(num));
        return cai__tbuf_puts(c, b, num, off);
    case CAI__TV_STR:
        return repr ? write_repr_str(c, b, v->u.s, off)
                    : cai__tbuf_put(c, b, v->u.s.p, v->u.s.n, off);
    case CAI__TV_LIST: {
        const struct cai__tlist *l = v->u.l;
        const char *open = l->tuple ? "(" : "[", *close = l->tuple ? ")" : "]";
        switch (l->view) {
        case CAI__TL_GEN:
            return cai__tbuf_puts(c, b, "<generator object>", off);
        case CAI__TL_ITER:
            return cai__tbuf_puts(c, b, "<list_reverseiterator object>", off);
        case CAI__TL_RANGE:
            if (l->r_step == 1)
                snprintf(num, sizeof(num), "range(%lld, %lld)", (long long)l->r_start,
                         (long long)l->r_stop);
            else
                snprintf(num, sizeof(num), "range(%lld, %lld, %lld)", (long long)l->r_start,
                         (long long)l->r_stop, (long long)l->r_step);
            return cai__tbuf_puts(c, b, num, off);
        case CAI__TL_ITEMS:
            open = "dict_items([", close = "])";
            break;
        case CAI__TL_KEYS:
            open = "dict_keys([", close = "])";
            break;
        case CAI__TL_VALUES:
            open = "dict_values([", close = "])";
            break;
        default:
            break;
        }
        rc = cai__tbuf_puts(c, b, open, off);
        for (size_t i = 0; i < l->n && !rc; i++) {
            if (i)
                rc = cai__tbuf_puts(c, b, ", ", off);
            if (!rc)
                rc = cai__tv_write(c, b, &l->v[i], true, nest + 1, off);
        }
        if (!rc && l->tuple && l->n == 1)
            rc = cai__tbuf_puts(c, b, ",", off);
        return rc ? rc : cai__tbuf_puts(c, b, close, off);
    }
    case CAI__TV_DICT:
    case CAI__TV_NS: {
        const struct cai__tdict *d = v->u.d;
        rc = cai__tbuf_puts(c, b, v->t == CAI__TV_NS ? "<Namespace {" : "{", off);
        for (size_t i = 0; i < d->n && !rc; i++) {
            if (i)
                rc = cai__tbuf_puts(c, b, ", ", off);
            if (!rc)
                rc = cai__tv_write(c, b, &d->k[i], true, nest + 1, off);
            if (!rc)
                rc = cai__tbuf_puts(c, b, ": ", off);
            if (!rc)
                rc = cai__tv_write(c, b, &d->v[i], true, nest + 1, off);
        }
        return rc ? rc : cai__tbuf_puts(c, b, v->t == CAI__TV_NS ? "}>" : "}", off);
    }
    case CAI__TV_LOOP:
        snprintf(num, sizeof(num), "<LoopContext %zu/%zu>", v->u.loop->i + 1, v->u.loop->n);
        return cai__tbuf_puts(c, b, num, off);
    case CAI__TV_MACRO: {
        struct cai__tstr name = v->u.macro->def->s;
        if ((rc = cai__tbuf_puts(c, b, "<Macro '", off)) ||
            (rc = cai__tbuf_put(c, b, name.p, name.n, off)))
            return rc;
        return cai__tbuf_puts(c, b, "'>", off);
    }
    default:
        return cai__tbuf_puts(c, b, "<function>", off);
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

static int json_str(struct cai__tctx *c, struct cai__tbuf *b, struct cai__tstr s, uint32_t off)
{
    int rc = cai__tbuf_put(c, b, "\"", 1, off);
    size_t start = 0;
    for (size_t i = 0; i < s.n && !rc; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        char esc[8];
        rc = cai__tbuf_put(c, b, s.p + start, i - start, off);
        start = i + 1;
        switch (ch) {
        case '"':
            memcpy(esc, "\\\"", 3);
            break;
        case '\\':
            memcpy(esc, "\\\\", 3);
            break;
        case '\n':
            memcpy(esc, "\\n", 3);
            break;
        case '\r':
            memcpy(esc, "\\r", 3);
            break;
        case '\t':
            memcpy(esc, "\\t", 3);
            break;
        case '\b':
            memcpy(esc, "\\b", 3);
            break;
        case '\f':
            memcpy(esc, "\\f", 3);
            break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            break;
        }
        if (!rc)
            rc = cai__tbuf_puts(c, b, esc, off);
    }
    if (!rc)
        rc = cai__tbuf_put(c, b, s.p + start, s.n - start, off);
    return rc ? rc : cai__tbuf_put(c, b, "\"", 1, off);
}

static int json_newline(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__json_opts *o,
                        int level, uint32_t off)
{
    int rc = cai__tbuf_put(c, b, "\n", 1, off);
    for (int k = 0; k < level && !rc; k++)
        rc = cai__tbuf_put(c, b, o->indent_str.p, o->indent_str.n, off);
    return rc;
}

static int json_key(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__tv *k, uint32_t off)
{
    char num[64];
    switch (k->t) {
    case CAI__TV_STR:
        return json_str(c, b, k->u.s, off);
    case CAI__TV_NONE:
        return cai__tbuf_puts(c, b, "\"null\"", off);
    case CAI__TV_BOOL:
        return cai__tbuf_puts(c, b, k->u.b ? "\"true\"" : "\"false\"", off);
    case CAI__TV_INT:
        snprintf(num, sizeof(num), "\"%lld\"", (long long)k->u.i);
        break;
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
        return cai__tmpl_fail(c, CAI_EFORMAT, off,
                              "keys must be str, int, float, bool or None, "
                              "not %s",
                              cai__tv_type_name(k));
    }
    return cai__tbuf_puts(c, b, num, off);
}

int cai__tmpl_json(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__tv *v,
                   const struct cai__json_opts *o, int level, uint32_t off)
{
    char num[64];
    int rc = 0;
    if (level > CAI__TMPL_MAX_VALUE_NEST)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "value nested deeper than %d",
                              CAI__TMPL_MAX_VALUE_NEST);
    switch (v->t) {
    case CAI__TV_NONE:
        return cai__tbuf_puts(c, b, "null", off);
    case CAI__TV_BOOL:
        return cai__tbuf_puts(c, b, v->u.b ? "true" : "false", off);
    case CAI__TV_INT:
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        return cai__tbuf_puts(c, b, num, off);
    case CAI__TV_FLOAT:
        if (isnan(v->u.f))
            return cai__tbuf_puts(c, b, "NaN", off);
        if (isinf(v->u.f))
            return cai__tbuf_puts(c, b, v->u.f < 0 ? "-Infinity" : "Infinity", off);
        fmt_float(v->u.f, num, sizeof(num));
        return cai__tbuf_puts(c, b, num, off);
    case CAI__TV_STR:
        return json_str(c, b, v->u.s, off);
    case CAI__TV_LIST: {
        const struct cai__tlist *l = v->u.l;
        if (l->view != CAI__TL_LIST)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "object of type %s is not JSON serializable",
                                  cai__tv_type_name(v));
        if (l->n == 0)
            return cai__tbuf_puts(c, b, "[]", off);
        rc = cai__tbuf_puts(c, b, "[", off);
        for (size_t i = 0; i < l->n && !rc; i++) {
            if (i)
                rc = cai__tbuf_put(c, b, o->item_sep.p, o->item_sep.n, off);
            if (!rc && o->indent)
                rc = json_newline(c, b, o, level + 1, off);
            if (!rc)
                rc = cai__tmpl_json(c, b, &l->v[i], o, level + 1, off);
        }
        if (!rc && o->indent)
            rc = json_newline(c, b, o, level, off);
        return rc ? rc : cai__tbuf_puts(c, b, "]", off);
    }
    case CAI__TV_DICT: {
        const struct cai__tdict *d = v->u.d;
        if (d->n == 0)
            return cai__tbuf_puts(c, b, "{}", off);
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
        rc = cai__tbuf_puts(c, b, "{", off);
        for (size_t i = 0; i < d->n && !rc; i++) {
            size_t k = order[i];
            if (i)
                rc = cai__tbuf_put(c, b, o->item_sep.p, o->item_sep.n, off);
            if (!rc && o->indent)
                rc = json_newline(c, b, o, level + 1, off);
            if (!rc)
                rc = json_key(c, b, &d->k[k], off);
            if (!rc)
                rc = cai__tbuf_put(c, b, o->key_sep.p, o->key_sep.n, off);
            if (!rc)
                rc = cai__tmpl_json(c, b, &d->v[k], o, level + 1, off);
        }
        if (!rc && o->indent)
            rc = json_newline(c, b, o, level, off);
        return rc ? rc : cai__tbuf_puts(c, b, "}", off);
    }
    default:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "object of type %s is not JSON serializable",
                              cai__tv_type_name(v));
    }
}

/* ---- comparison -------------------------------------------------------- */

static int equal_n(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b, int nest,
                   uint32_t off, bool *eq)
{
    int rc;
    if (nest > CAI__TMPL_MAX_VALUE_NEST)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "value nested deeper than %d",
                              CAI__TMPL_MAX_VALUE_NEST);
    *eq = false;
    if (cai__tv_is_num(a) && cai__tv_is_num(b)) {
        if (a->t != CAI__TV_FLOAT && b->t != CAI__TV_FLOAT)
            *eq = cai__tv_num_i(a) == cai__tv_num_i(b);
        else
            *eq = cai__tv_num_f(a) == cai__tv_num_f(b);
        return 0;
    }
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case CAI__TV_UNDEF:
    case CAI__TV_NONE:
        *eq = true;
        return 0;
    case CAI__TV_STR:
        *eq = a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
        return 0;
    case CAI__TV_LIST: {
        const struct cai__tlist *x = a->u.l, *y = b->u.l;
        if (x->tuple != y->tuple || x->view != y->view)
            return 0;
        if (x->view == CAI__TL_GEN || x->view == CAI__TL_ITER || x->view == CAI__TL_VALUES) {
            *eq = x == y; /* compared by identity */
            return 0;
        }
        if (x->n != y->n)
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
    case CAI__TV_NS:
        *eq = a->u.d == b->u.d;
        return 0;
    case CAI__TV_LOOP:
        *eq = a->u.loop == b->u.loop;
        return 0;
    case CAI__TV_MACRO:
        *eq = a->u.macro == b->u.macro;
        return 0;
    case CAI__TV_FUNC:
        *eq = a->u.fn == b->u.fn;
        return 0;
    default:
        return 0;
    }
}

int cai__tv_equal(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b,
                  uint32_t off, bool *eq)
{
    return equal_n(c, a, b, 0, off, eq);
}

static int order_n(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b, int nest,
                   uint32_t off, int *cmp)
{
    int rc;
    if (nest > CAI__TMPL_MAX_VALUE_NEST)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "value nested deeper than %d",
                              CAI__TMPL_MAX_VALUE_NEST);
    if (cai__tv_is_num(a) && cai__tv_is_num(b)) {
        if (a->t != CAI__TV_FLOAT && b->t != CAI__TV_FLOAT) {
            int64_t x = cai__tv_num_i(a), y = cai__tv_num_i(b);
            *cmp = x < y ? -1 : x > y;
        } else {
            double x = cai__tv_num_f(a), y = cai__tv_num_f(b);
            *cmp = x < y ? -1 : x > y; /* NaN compares as equal-ish: neither < nor > */
        }
        return 0;
    }
    if (a->t == CAI__TV_STR && b->t == CAI__TV_STR) {
        int r = memcmp(a->u.s.p, b->u.s.p, CAI_MIN(a->u.s.n, b->u.s.n));
        *cmp = r ? (r < 0 ? -1 : 1) : a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
        return 0;
    }
    if (a->t == CAI__TV_LIST && b->t == CAI__TV_LIST && a->u.l->tuple == b->u.l->tuple &&
        a->u.l->view == CAI__TL_LIST && b->u.l->view == CAI__TL_LIST) {
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

bool cai__tstr_find(struct cai__tstr hay, struct cai__tstr needle, size_t from, size_t *at)
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
    case CAI__TV_UNDEF:
        return 0;
    case CAI__TV_STR:
        if (needle->t != CAI__TV_STR)
            return cai__tmpl_fail(c, CAI_EFORMAT, off,
                                  "'in <string>' requires string as left operand, not %s",
                                  cai__tv_type_name(needle));
        *in = cai__tstr_find(hay->u.s, needle->u.s, 0, &at);
        return 0;
    case CAI__TV_LIST:
        for (size_t i = 0; i < hay->u.l->n && !*in; i++)
            if ((rc = cai__tv_equal(c, &hay->u.l->v[i], needle, off, in)))
                return rc;
        return 0;
    case CAI__TV_DICT:
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
    case CAI__TV_UNDEF:
        return 0;
    case CAI__TV_LIST:
        if (v->u.l->fails) /* a generator filter failed: now it shows */
            return cai__fail(c->err, CAI_EFORMAT, "%s", v->u.l->fails);
        *out = *v->u.l;
        out->tuple = false;
        out->view = CAI__TL_LIST;
        return 0;
    case CAI__TV_DICT:
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
            cai__tstr_next_char(v->u.s, &i, &ch);
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

int cai__tmpl_overflow(struct cai__tctx *c, uint32_t off)
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
    if (!cai__tv_is_num(a) || !cai__tv_is_num(b)) {
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
            a->u.l->tuple == b->u.l->tuple && a->u.l->view == CAI__TL_LIST &&
            b->u.l->view == CAI__TL_LIST) {
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
            bool a_seq =
                a->t == CAI__TV_STR || (a->t == CAI__TV_LIST && a->u.l->view == CAI__TL_LIST);
            bool b_seq =
                b->t == CAI__TV_STR || (b->t == CAI__TV_LIST && b->u.l->view == CAI__TL_LIST);
            if (a_seq && (b->t == CAI__TV_INT || b->t == CAI__TV_BOOL))
                return repeat(c, a, cai__tv_num_i(b), off, out);
            if (b_seq && (a->t == CAI__TV_INT || a->t == CAI__TV_BOOL))
                return repeat(c, b, cai__tv_num_i(a), off, out);
        }
        return type_error(c, name, a, b, off);
    }
    bool ints = a->t != CAI__TV_FLOAT && b->t != CAI__TV_FLOAT;
    int64_t x = cai__tv_num_i(a), y = cai__tv_num_i(b), r;
    double fx = cai__tv_num_f(a), fy = cai__tv_num_f(b);
    switch (op) {
    case CAI__TOP_ADD:
        if (!ints)
            break;
        if (__builtin_add_overflow(x, y, &r))
            return cai__tmpl_overflow(c, off);
        *out = cai__tv_int(r);
        return 0;
    case CAI__TOP_SUB:
        if (!ints)
            break;
        if (__builtin_sub_overflow(x, y, &r))
            return cai__tmpl_overflow(c, off);
        *out = cai__tv_int(r);
        return 0;
    case CAI__TOP_MUL:
        if (!ints)
            break;
        if (__builtin_mul_overflow(x, y, &r))
            return cai__tmpl_overflow(c, off);
        *out = cai__tv_int(r);
        return 0;
    case CAI__TOP_DIV:
        if (fy == 0.0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "division by zero");
        *out = cai__tv_float(fx / fy);
        return 0;
    case CAI__TOP_FLOORDIV:
    case CAI__TOP_MOD:
        if (ints) {
            if (y == 0)
                return cai__tmpl_fail(c, CAI_EFORMAT, off, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1)
                return op == CAI__TOP_MOD ? (*out = cai__tv_int(0), 0) : cai__tmpl_overflow(c, off);
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
            *out = cai__tv_float(op == CAI__TOP_MOD ? m : q);
        }
        return 0;
    case CAI__TOP_POW:
        if (ints && y >= 0) {
            int64_t base = x, acc = 1, e = y;
            while (e > 0) {
                if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                    return cai__tmpl_overflow(c, off);
                e >>= 1;
                if (e > 0 && __builtin_mul_overflow(base, base, &base))
                    return cai__tmpl_overflow(c, off);
            }
            *out = cai__tv_int(acc);
            return 0;
        }
        if (fx == 0.0 && fy < 0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "0.0 cannot be raised to a negative power");
        *out = cai__tv_float(pow(fx, fy));
        return 0;
    default:
        return type_error(c, name, a, b, off);
    }
    /* float + - * */
    *out = cai__tv_float(op == CAI__TOP_ADD ? fx + fy : op == CAI__TOP_SUB ? fx - fy : fx * fy);
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

struct cai__tstr cai__tstr_strip(struct cai__tstr s, const struct cai__tstr *chars, bool left,
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

int cai__tmpl_replace(struct cai__tctx *c, struct cai__tstr s, struct cai__tstr old,
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
                rc = cai__tbuf_put(c, &b, new_.p, new_.n, off);
                done++;
            }
            if (rc || i >= s.n)
                break;
            struct cai__tstr ch;
            cai__tstr_next_char(s, &i, &ch);
            rc = cai__tbuf_put(c, &b, ch.p, ch.n, off);
        }
    } else {
        while (!rc && (count < 0 || done < count) && cai__tstr_find(s, old, i, &at)) {
            if (!(rc = cai__tbuf_put(c, &b, s.p + i, at - i, off)))
                rc = cai__tbuf_put(c, &b, new_.p, new_.n, off);
            i = at + old.n;
            done++;
        }
        if (!rc)
            rc = cai__tbuf_put(c, &b, s.p + i, s.n - i, off);
    }
    if (!rc)
        *out = cai__tbuf_value(&b);
    return rc;
}

/* Python's str.split(sep, maxsplit) (sep NULL: runs of whitespace). */
int cai__tmpl_split(struct cai__tctx *c, struct cai__tstr s, const struct cai__tstr *sep,
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
            if ((maxsplit >= 0 && (int64_t)n_parts >= maxsplit) ||
                !cai__tstr_find(s, *sep, i, &at)) {
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
int cai__tmpl_affix_test(struct cai__tctx *c, struct cai__tstr s, const struct cai__tv *a, bool end,
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

int cai__tmpl_join(struct cai__tctx *c, const struct cai__tlist *items, struct cai__tstr sep,
                   const struct cai__tv *attribute, uint32_t off, struct cai__tv *out)
{
    struct cai__tbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < items->n && !rc; i++) {
        struct cai__tv v = items->v[i];
        if (i)
            rc = cai__tbuf_put(c, &b, sep.p, sep.n, off);
        if (!rc && attribute)
            rc = attribute->t == CAI__TV_STR ? cai__tv_getattr(c, &v, attribute->u.s, off, &v)
                                             : cai__tv_getitem(c, &v, attribute, off, &v);
        if (!rc)
            rc = cai__tv_write(c, &b, &v, false, 0, off);
    }
    if (!rc)
        *out = cai__tbuf_value(&b);
    return rc;
}
