/* template_filter.c: the filters, tests and methods of chat templates:
 * Jinja's built-in filters and tests that templates use (with Jinja's
 * argument names, keyword or positional), Python's str methods (strip,
 * split, startswith, ...), dict methods (items, keys, values, get) and
 * loop.cycle. Lists stay immutable, as in Hugging Face's sandbox. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

/* ---- arguments --------------------------------------------------------- */

/* Positional argument `i` or the keyword argument `name`; NULL if absent. */
static const struct cai__tv *arg(const struct cai__targs *a, size_t i, const char *name)
{
    if (i < a->n_pos)
        return &a->pos[i];
    for (size_t k = 0; name && k < a->n_kw; k++)
        if (cai__tstr_eq(a->kw_names[k], name))
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
            if (cai__tstr_eq(a->kw_names[k], names[j])) {
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

/* ---- sorting ----------------------------------------------------------- */

struct sort_ctx {
    struct cai__tctx *c;
    const struct cai__tv *attribute;
    bool case_sensitive;
    uint32_t off;
    int rc;
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
        return cai__tmpl_map_case(s->c, key->u.s, CAI__CASE_LOWER, s->off, key);
    return 0;
}

static int sort_cmp(struct sort_ctx *s, const struct cai__tv *a, const struct cai__tv *b)
{
    struct cai__tv ka, kb;
    int cmp = 0;
    if (s->rc)
        return 0;
    /* Each comparison is a step: sorting is the one superlinear filter. */
    if ((s->rc = cai__tmpl_step(s->c, s->off)) || (s->rc = sort_key(s, a, &ka)) ||
        (s->rc = sort_key(s, b, &kb)) || (s->rc = cai__tv_order(s->c, &ka, &kb, s->off, &cmp)))
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

typedef int (*filter_fn)(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                         uint32_t off, struct cai__tv *out);

/* Jinja's map, select, reject, unique and items filters are generators:
 * they run only when their result is used. These run at once, but an
 * error of the template's own (CAI_EFORMAT) is kept in the result, which
 * raises it when iterated; bounds and out of memory fail at once. */
static int lazy(struct cai__tctx *c, filter_fn fn, const struct cai__tv *v,
                const struct cai__targs *a, uint32_t off, struct cai__tv *out)
{
    int rc = fn(c, v, a, off, out);
    if (rc != CAI_EFORMAT)
        return rc;
    const char *msg = "chat template: error in a generator filter";
    if (c->err) {
        size_t n = strlen(c->err->msg);
        char *copy = cai__tmpl_alloc(c->arena, n + 1);
        if (!copy)
            return cai__tmpl_fail_mem(c, off);
        memcpy(copy, c->err->msg, n + 1);
        msg = copy;
    }
    if ((rc = cai__tv_new_list(c, 0, false, off, out)))
        return rc;
    out->u.l->view = CAI__TL_GEN;
    out->u.l->fails = msg;
    return 0;
}

static int f_abs(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    int rc = check_args(c, a, 0, NULL, "abs", off);
    if (rc)
        return rc;
    if (v->t == CAI__TV_FLOAT) {
        *out = cai__tv_float(fabs(v->u.f));
        return 0;
    }
    if (v->t != CAI__TV_INT && v->t != CAI__TV_BOOL)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "bad operand type for abs(): '%s'",
                              cai__tv_type_name(v));
    int64_t x = cai__tv_num_i(v);
    if (x == INT64_MIN)
        return cai__tmpl_overflow(c, off);
    *out = cai__tv_int(x < 0 ? -x : x);
    return 0;
}

static int f_attr(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                  uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"name", NULL};
    const struct cai__tv *name = arg(a, 0, "name");
    int rc = check_args(c, a, 1, names, "attr", off);
    if (rc)
        return rc;
    if (!name)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "attr needs a name");
    if ((rc = need_str(c, name, "attr", off)))
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
    return cai__tmpl_map_case(c, s, mode, off, out);
}

static int f_upper(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    return f_case(c, v, a, off, out, CAI__CASE_UPPER, "upper");
}

static int f_lower(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    return f_case(c, v, a, off, out, CAI__CASE_LOWER, "lower");
}

static int f_capitalize(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return f_case(c, v, a, off, out, CAI__CASE_CAPITALIZE, "capitalize");
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
        uint32_t cp = cai__tstr_next_char(s, &i, &ch);
        bool sep =
            cai__tmpl_is_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        uint32_t m = sep ? cp : word_start ? cai__tmpl_upper(cp) : cai__tmpl_lower(cp);
        rc = m == cp ? cai__tbuf_put(c, &b, ch.p, ch.n, off) : cai__tbuf_put_cp(c, &b, m, off);
        word_start = sep;
    }
    if (!rc)
        *out = cai__tbuf_value(&b);
    return rc;
}

static int f_length(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    int rc = check_args(c, a, 0, NULL, "length", off);
    if (rc)
        return rc;
    switch (v->t) {
    case CAI__TV_UNDEF:
        *out = cai__tv_int(0);
        return 0;
    case CAI__TV_STR:
        *out = cai__tv_int((int64_t)cai__utf8_count(v->u.s.p, v->u.s.n));
        return 0;
    case CAI__TV_LIST:
        if (v->u.l->view == CAI__TL_GEN || v->u.l->view == CAI__TL_ITER)
            break;
        *out = cai__tv_int((int64_t)v->u.l->n);
        return 0;
    case CAI__TV_DICT:
        *out = cai__tv_int((int64_t)v->u.d->n);
        return 0;
    case CAI__TV_LOOP:
        *out = cai__tv_int((int64_t)v->u.loop->n);
        return 0;
    default:
        break;
    }
    return cai__tmpl_fail(c, CAI_EFORMAT, off, "object of type '%s' has no len()",
                          cai__tv_type_name(v));
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
    if (rc)
        return rc;
    /* last is next(reversed(seq)): generators and iterators cannot. */
    if (last && v->t == CAI__TV_LIST &&
        (v->u.l->view == CAI__TL_GEN || v->u.l->view == CAI__TL_ITER))
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "'%s' object is not reversible",
                              cai__tv_type_name(v));
    if ((rc = cai__tv_iterate(c, v, off, &items)))
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
    return cai__tmpl_join(c, &items, sep, attribute, off, out);
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
    s = cai__tstr_strip(s, chars && chars->t == CAI__TV_STR ? &chars->u.s : NULL, true, true);
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
    return cai__tmpl_replace(c, s, so, sn, count && count->t == CAI__TV_INT ? count->u.i : -1, off,
                             out);
}

static int f_tojson(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    const struct cai__tv *ascii = arg(a, 0, "ensure_ascii"), *indent = arg(a, 1, "indent");
    const struct cai__tv *seps = arg(a, 2, "separators"), *sort = arg(a, 3, "sort_keys");
    struct cai__json_opts o = {.item_sep = {", ", 2}, .key_sep = {": ", 2}};
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
            int64_t k = cai__tv_num_i(indent);
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
    if ((rc = cai__tmpl_json(c, &b, v, &o, 0, off)))
        return rc;
    *out = cai__tbuf_value(&b);
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
    if (v->t == CAI__TV_UNDEF) /* int(Undefined) and float(Undefined) raise */
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "%s of an undefined value", "int");
    if (v->t == CAI__TV_INT || v->t == CAI__TV_BOOL) {
        *out = cai__tv_int(cai__tv_num_i(v));
        return 0;
    }
    if (v->t == CAI__TV_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18) {
        *out = cai__tv_int((int64_t)v->u.f);
        return 0;
    }
    if (v->t == CAI__TV_STR) {
        char tmp[64];
        struct cai__tstr s = cai__tstr_strip(v->u.s, NULL, true, true);
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
    if (v->t == CAI__TV_UNDEF) /* int(Undefined) and float(Undefined) raise */
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "%s of an undefined value", "float");
    if (cai__tv_is_num(v)) {
        *out = cai__tv_float(cai__tv_num_f(v));
        return 0;
    }
    if (v->t == CAI__TV_STR) {
        char tmp[64];
        struct cai__tstr s = cai__tstr_strip(v->u.s, NULL, true, true);
        if (s.n > 0 && s.n < sizeof(tmp)) {
            memcpy(tmp, s.p, s.n);
            tmp[s.n] = '\0';
            char *end;
            double f = strtod(tmp, &end);
            if (*end == '\0') {
                *out = cai__tv_float(f);
                return 0;
            }
        }
    }
    *out = def ? *def : cai__tv_float(0.0);
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
    if (!cai__tv_is_num(v))
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "round needs a number");
    int64_t p = prec ? cai__tv_num_i(prec) : 0;
    if (p < -30 || p > 30)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "round precision out of range");
    double scale = pow(10.0, (double)p), x = cai__tv_num_f(v) * scale, r;
    if (!method || (method->t == CAI__TV_STR && cai__tstr_eq(method->u.s, "common"))) {
        if (v->t != CAI__TV_FLOAT) { /* Python's round() keeps an int an int */
            *out = cai__tv_int(cai__tv_num_i(v));
            return 0;
        }
        r = nearbyint(x); /* round half to even, as Python */
    } else if (method->t == CAI__TV_STR && cai__tstr_eq(method->u.s, "floor")) {
        r = floor(x);
    } else if (method->t == CAI__TV_STR && cai__tstr_eq(method->u.s, "ceil")) {
        r = ceil(x);
    } else {
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "method must be common, ceil or floor");
    }
    *out = cai__tv_float(r / scale);
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
            rc = cai__tbuf_put(c, &b, items.v[i].u.s.p, items.v[i].u.s.n, off);
        if (!rc)
            *out = cai__tbuf_value(&b);
        return rc;
    }
    if ((rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    for (size_t i = 0; i < items.n; i++)
        out->u.l->v[i] = items.v[items.n - 1 - i];
    /* Python's reversed() gives an iterator; a generator cannot be
     * reversed, so Jinja makes it a list first. */
    if (v->t != CAI__TV_LIST || (v->u.l->view != CAI__TL_GEN && v->u.l->view != CAI__TL_ITER))
        out->u.l->view = CAI__TL_ITER;
    return 0;
}

static int f_items_now(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                       uint32_t off, struct cai__tv *out)
{
    int rc = check_args(c, a, 0, NULL, "items", off);
    if (rc)
        return rc;
    if (v->t != CAI__TV_DICT && v->t != CAI__TV_UNDEF)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "items needs a mapping, not %s",
                              cai__tv_type_name(v));
    static const struct cai__tdict empty;
    const struct cai__tdict *d = v->t == CAI__TV_DICT ? v->u.d : &empty;
    if ((rc = cai__tv_new_list(c, d->n, false, off, out)))
        return rc;
    out->u.l->view = CAI__TL_GEN; /* Jinja's items filter is a generator */
    for (size_t i = 0; i < d->n; i++) {
        struct cai__tv *pair = &out->u.l->v[i];
        if ((rc = cai__tv_new_list(c, 2, true, off, pair)))
            return rc;
        pair->u.l->v[0] = d->k[i];
        pair->u.l->v[1] = d->v[i];
    }
    return 0;
}

static int f_items(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                   uint32_t off, struct cai__tv *out)
{
    return lazy(c, f_items_now, v, a, off, out);
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
    if (rc)
        return rc;
    if (v->t != CAI__TV_DICT)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "dictsort needs a dict, not %s",
                              cai__tv_type_name(v));
    if ((rc = f_items(c, v, &none, off, &pairs)))
        return rc;
    struct cai__tv idx = cai__tv_int(by && by->t == CAI__TV_STR && cai__tstr_eq(by->u.s, "value"));
    struct sort_ctx s = {
        .c = c, .attribute = &idx, .case_sensitive = cs && cai__tv_truthy(cs), .off = off};
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
    struct sort_ctx s = {.c = c,
                         .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = cs && cai__tv_truthy(cs),
                         .off = off};
    return sorted(c, &items, &s, rev && cai__tv_truthy(rev), off, out);
}

static int f_unique_now(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    const struct cai__tv *cs = arg(a, 0, "case_sensitive"), *attr = arg(a, 1, "attribute");
    struct cai__tlist items;
    int rc = check_args(c, a, 2, names, "unique", off);
    if (rc || (rc = cai__tv_iterate(c, v, off, &items)) ||
        (rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    struct sort_ctx s = {.c = c,
                         .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = cs && cai__tv_truthy(cs),
                         .off = off};
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
            if ((rc = cai__tmpl_step(c, off)) || (rc = cai__tv_equal(c, &keys[j], &k, off, &seen)))
                return rc;
        if (!seen) {
            keys[n] = k;
            out->u.l->v[n++] = items.v[i];
        }
    }
    out->u.l->n = n;
    out->u.l->view = CAI__TL_GEN;
    return 0;
}

static int f_unique(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    return lazy(c, f_unique_now, v, a, off, out);
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
    struct sort_ctx s = {.c = c,
                         .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = cs && cai__tv_truthy(cs),
                         .off = off};
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
    struct sort_ctx s = {.c = c,
                         .attribute = attr && attr->t != CAI__TV_NONE ? attr : NULL,
                         .case_sensitive = true,
                         .off = off};
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
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&#34;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        if (!(rc = cai__tbuf_put(c, &b, s.p + start, i - start, off)))
            rc = cai__tbuf_puts(c, &b, rep, off);
        start = i + 1;
    }
    if (!rc)
        rc = cai__tbuf_put(c, &b, s.p + start, s.n - start, off);
    if (!rc)
        *out = cai__tbuf_value(&b);
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
    if (rc)
        return rc;
    if (v->t != CAI__TV_STR) /* Jinja appends "\n" to it: only text works */
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "indent needs a string, not %s",
                              cai__tv_type_name(v));
    s = v->u.s;
    if (width && width->t == CAI__TV_STR) {
        ind = width->u.s;
    } else {
        int64_t w = width ? cai__tv_num_i(width) : 4;
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
        rc = cai__tbuf_put(c, &b, ind.p, ind.n, off);
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
            rc = cai__tbuf_put(c, &b, "\n", 1, off);
            if (!rc && (text.n || ind_blank))
                rc = cai__tbuf_put(c, &b, ind.p, ind.n, off);
        }
        if (!rc)
            rc = cai__tbuf_put(c, &b, text.p, text.n, off);
        first_line = false;
        if (i >= s.n)
            break;
        i += k;
        line = i;
    }
    if (!rc)
        *out = cai__tbuf_value(&b);
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

static int f_map_now(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                     uint32_t off, struct cai__tv *out)
{
    struct cai__tlist items;
    int rc;
    if ((rc = cai__tv_iterate(c, v, off, &items)) ||
        (rc = cai__tv_new_list(c, items.n, false, off, out)))
        return rc;
    out->u.l->view = CAI__TL_GEN;
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

static int f_map(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                 uint32_t off, struct cai__tv *out)
{
    return lazy(c, f_map_now, v, a, off, out);
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
    struct sort_ctx s = {
        .c = c, .attribute = by_attr ? &a->pos[0] : NULL, .case_sensitive = true, .off = off};
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
    out->u.l->view = CAI__TL_GEN;
    return 0;
}

static int f_select_now(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, true, false);
}

static int f_select(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    return lazy(c, f_select_now, v, a, off, out);
}

static int f_reject_now(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, false, false);
}

static int f_reject(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                    uint32_t off, struct cai__tv *out)
{
    return lazy(c, f_reject_now, v, a, off, out);
}

static int f_selectattr_now(struct cai__tctx *c, const struct cai__tv *v,
                            const struct cai__targs *a, uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, true, true);
}

static int f_selectattr(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return lazy(c, f_selectattr_now, v, a, off, out);
}

static int f_rejectattr_now(struct cai__tctx *c, const struct cai__tv *v,
                            const struct cai__targs *a, uint32_t off, struct cai__tv *out)
{
    return select_common(c, v, a, off, out, false, true);
}

static int f_rejectattr(struct cai__tctx *c, const struct cai__tv *v, const struct cai__targs *a,
                        uint32_t off, struct cai__tv *out)
{
    return lazy(c, f_rejectattr_now, v, a, off, out);
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
    int64_t w = width ? cai__tv_num_i(width) : 80, len = (int64_t)cai__utf8_count(s.p, s.n);
    if (w > 4096)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "center width larger than 4096");
    int64_t pad = w > len ? w - len : 0;
    /* Python's str.center puts the odd space on the right unless the
     * width is odd and the text is even. */
    int64_t left = pad / 2 + (pad & w & 1);
    for (int64_t i = 0; i < left && !rc; i++)
        rc = cai__tbuf_put(c, &b, " ", 1, off);
    if (!rc)
        rc = cai__tbuf_put(c, &b, s.p, s.n, off);
    for (int64_t i = left; i < pad && !rc; i++)
        rc = cai__tbuf_put(c, &b, " ", 1, off);
    if (!rc)
        *out = cai__tbuf_value(&b);
    return rc;
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

bool cai__tmpl_filter_known(struct cai__tstr name)
{
    for (size_t i = 0; i < CAI_ARRAY_LEN(filters); i++)
        if (cai__tstr_eq(name, filters[i].name))
            return true;
    return false;
}

int cai__tmpl_filter(struct cai__tctx *c, struct cai__tstr name, const struct cai__tv *v,
                     const struct cai__targs *args, uint32_t off, struct cai__tv *out)
{
    int rc = cai__tmpl_step(c, off);
    if (rc)
        return rc;
    for (size_t i = 0; i < CAI_ARRAY_LEN(filters); i++) {
        if (!cai__tstr_eq(name, filters[i].name))
            continue;
        /* map('map', 'map', ...) nests filters as deep as it has arguments. */
        if (++c->depth > CAI__TMPL_MAX_EVAL_DEPTH)
            rc = cai__tmpl_fail(c, CAI_ERANGE, off, "filters nested deeper than %d",
                                CAI__TMPL_MAX_EVAL_DEPTH);
        else
            rc = filters[i].fn(c, v, args, off, out);
        c->depth--;
        return rc;
    }
    return cai__tmpl_fail(c, CAI_EFORMAT, off, "no filter named '%.*s'", (int)CAI_MIN(name.n, 40),
                          name.p);
}

/* ---- tests ------------------------------------------------------------- */

static const char *const test_names[] = {
    "boolean",     "callable", "defined", "divisibleby", "eq",   "equalto",   "==",     "escaped",
    "even",        "false",    "filter",  "float",       "ge",   ">=",        "gt",     ">",
    "greaterthan", "in",       "integer", "iterable",    "le",   "<=",        "lower",  "lt",
    "<",           "lessthan", "mapping", "ne",          "!=",   "none",      "number", "odd",
    "sameas",      "sequence", "string",  "test",        "true", "undefined", "upper",  NULL,
};

bool cai__tmpl_test_known(struct cai__tstr name)
{
    for (size_t i = 0; test_names[i]; i++)
        if (cai__tstr_eq(name, test_names[i]))
            return true;
    return false;
}

static bool all_cased(struct cai__tstr s, bool upper)
{
    bool any = false;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp = cai__utf8_next(s.p, s.n, &i);
        if (!cai__tmpl_is_cased(cp))
            continue;
        any = true;
        if ((upper ? cai__tmpl_upper(cp) : cai__tmpl_lower(cp)) != cp)
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
    if (cai__tstr_eq(name, "defined")) {
        *out = v->t != CAI__TV_UNDEF;
    } else if (cai__tstr_eq(name, "undefined")) {
        *out = v->t == CAI__TV_UNDEF;
    } else if (cai__tstr_eq(name, "none")) {
        *out = v->t == CAI__TV_NONE;
    } else if (cai__tstr_eq(name, "boolean")) {
        *out = v->t == CAI__TV_BOOL;
    } else if (cai__tstr_eq(name, "true")) {
        *out = v->t == CAI__TV_BOOL && v->u.b;
    } else if (cai__tstr_eq(name, "false")) {
        *out = v->t == CAI__TV_BOOL && !v->u.b;
    } else if (cai__tstr_eq(name, "string")) {
        *out = v->t == CAI__TV_STR;
    } else if (cai__tstr_eq(name, "number")) {
        *out = cai__tv_is_num(v);
    } else if (cai__tstr_eq(name, "integer")) {
        *out = v->t == CAI__TV_INT;
    } else if (cai__tstr_eq(name, "float")) {
        *out = v->t == CAI__TV_FLOAT;
    } else if (cai__tstr_eq(name, "mapping")) {
        *out = v->t == CAI__TV_DICT;
    } else if (cai__tstr_eq(name, "iterable")) {
        *out = v->t == CAI__TV_UNDEF || v->t == CAI__TV_STR || v->t == CAI__TV_LIST ||
               v->t == CAI__TV_DICT || v->t == CAI__TV_LOOP;
    } else if (cai__tstr_eq(name, "sequence")) {
        *out = v->t == CAI__TV_UNDEF || v->t == CAI__TV_STR || v->t == CAI__TV_DICT ||
               (v->t == CAI__TV_LIST && cai__tl_is_seq(v->u.l));
    } else if (cai__tstr_eq(name, "callable")) {
        *out = v->t == CAI__TV_MACRO || v->t == CAI__TV_FUNC;
    } else if (cai__tstr_eq(name, "escaped")) {
        *out = false;
    } else if (cai__tstr_eq(name, "lower") || cai__tstr_eq(name, "upper")) {
        struct cai__tstr s;
        if ((rc = cai__tv_to_str(c, v, off, &s)))
            return rc;
        *out = all_cased(s, cai__tstr_eq(name, "upper"));
    } else if (cai__tstr_eq(name, "odd") || cai__tstr_eq(name, "even")) {
        /* Jinja: value % 2 == 1 (or == 0), so floats work too. */
        struct cai__tv two = cai__tv_int(2), m, want = cai__tv_int(cai__tstr_eq(name, "odd"));
        if (!cai__tv_is_num(v))
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "odd/even need a number, not %s",
                                  cai__tv_type_name(v));
        if ((rc = cai__tv_arith(c, CAI__TOP_MOD, v, &two, off, &m)) ||
            (rc = cai__tv_equal(c, &m, &want, off, out)))
            return rc;
    } else if (cai__tstr_eq(name, "filter") || cai__tstr_eq(name, "test")) {
        *out = v->t == CAI__TV_STR && (cai__tstr_eq(name, "filter") ? cai__tmpl_filter_known(v->u.s)
                                                                    : cai__tmpl_test_known(v->u.s));
    } else if (!x) {
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "test '%.*s' needs an argument",
                              (int)CAI_MIN(name.n, 40), name.p);
    } else if (cai__tstr_eq(name, "divisibleby")) {
        struct cai__tv m;
        bool z;
        struct cai__tv zero = cai__tv_int(0);
        if ((rc = cai__tv_arith(c, CAI__TOP_MOD, v, x, off, &m)) ||
            (rc = cai__tv_equal(c, &m, &zero, off, &z)))
            return rc;
        *out = z;
    } else if (cai__tstr_eq(name, "in")) {
        return cai__tv_contains(c, x, v, off, out);
    } else if (cai__tstr_eq(name, "sameas")) {
        if (v->t != x->t)
            *out = false;
        else if (v->t == CAI__TV_LIST)
            *out = v->u.l == x->u.l;
        else if (v->t == CAI__TV_DICT || v->t == CAI__TV_NS)
            *out = v->u.d == x->u.d;
        else
            return cai__tv_equal(c, v, x, off, out);
    } else if (cai__tstr_eq(name, "eq") || cai__tstr_eq(name, "equalto") ||
               cai__tstr_eq(name, "==")) {
        op = CAI__TOP_EQ;
    } else if (cai__tstr_eq(name, "ne") || cai__tstr_eq(name, "!=")) {
        op = CAI__TOP_NE;
    } else if (cai__tstr_eq(name, "lt") || cai__tstr_eq(name, "<") ||
               cai__tstr_eq(name, "lessthan")) {
        op = CAI__TOP_LT;
    } else if (cai__tstr_eq(name, "le") || cai__tstr_eq(name, "<=")) {
        op = CAI__TOP_LE;
    } else if (cai__tstr_eq(name, "gt") || cai__tstr_eq(name, ">") ||
               cai__tstr_eq(name, "greaterthan")) {
        op = CAI__TOP_GT;
    } else if (cai__tstr_eq(name, "ge") || cai__tstr_eq(name, ">=")) {
        op = CAI__TOP_GE;
    } else {
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "no test named '%.*s'", (int)CAI_MIN(name.n, 40),
                              name.p);
    }
    if (op == CAI__TOP_EQ || op == CAI__TOP_NE) {
        if ((rc = cai__tv_equal(c, v, x, off, out)))
            return rc;
        *out = op == CAI__TOP_EQ ? *out : !*out;
    } else if (op >= 0) {
        int cmp;
        if ((rc = cai__tv_order(c, v, x, off, &cmp)))
            return rc;
        *out = op == CAI__TOP_LT   ? cmp < 0
               : op == CAI__TOP_LE ? cmp <= 0
               : op == CAI__TOP_GT ? cmp > 0
                                   : cmp >= 0;
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
    if (cai__tstr_eq(name, "strip") || cai__tstr_eq(name, "lstrip") ||
        cai__tstr_eq(name, "rstrip")) {
        const struct cai__tv *chars = arg(a, 0, "chars");
        if ((rc = check_args(c, a, 1, chars_names, "strip", off)))
            return rc;
        if (chars && chars->t != CAI__TV_NONE && (rc = need_str(c, chars, "strip", off)))
            return rc;
        struct cai__tstr r =
            cai__tstr_strip(s, chars && chars->t == CAI__TV_STR ? &chars->u.s : NULL,
                            name.p[0] != 'r', name.p[0] != 'l');
        *out = cai__tv_str(r.p, r.n);
        return 0;
    }
    if (cai__tstr_eq(name, "split")) {
        const struct cai__tv *sep = arg(a, 0, "sep"), *maxsplit = arg(a, 1, "maxsplit");
        if ((rc = check_args(c, a, 2, split_names, "split", off)))
            return rc;
        if (sep && sep->t != CAI__TV_NONE && (rc = need_str(c, sep, "split", off)))
            return rc;
        if (maxsplit && maxsplit->t != CAI__TV_INT)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "split maxsplit must be an integer");
        return cai__tmpl_split(c, s, sep && sep->t == CAI__TV_STR ? &sep->u.s : NULL,
                               maxsplit ? maxsplit->u.i : -1, off, out);
    }
    if (cai__tstr_eq(name, "startswith") || cai__tstr_eq(name, "endswith")) {
        bool r;
        if ((rc = check_args(c, a, 1, NULL, "startswith", off)) ||
            (rc = cai__tmpl_affix_test(c, s, a0, name.p[0] == 'e', off, &r)))
            return rc;
        *out = cai__tv_bool(r);
        return 0;
    }
    if (cai__tstr_eq(name, "upper") || cai__tstr_eq(name, "lower") ||
        cai__tstr_eq(name, "capitalize") || cai__tstr_eq(name, "title")) {
        if ((rc = check_args(c, a, 0, NULL, "case method", off)))
            return rc;
        int mode = name.p[0] == 'u'   ? CAI__CASE_UPPER
                   : name.p[0] == 'l' ? CAI__CASE_LOWER
                   : name.p[0] == 'c' ? CAI__CASE_CAPITALIZE
                                      : CAI__CASE_TITLE;
        return cai__tmpl_map_case(c, s, mode, off, out);
    }
    if (cai__tstr_eq(name, "replace")) {
        if ((rc = check_args(c, a, 3, NULL, "replace", off)))
            return rc;
        const struct cai__tv *count = arg(a, 2, NULL);
        if (!a0 || !a1 || a0->t != CAI__TV_STR || a1->t != CAI__TV_STR ||
            (count && count->t != CAI__TV_INT))
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "replace needs two strings");
        return cai__tmpl_replace(c, s, a0->u.s, a1->u.s, count ? count->u.i : -1, off, out);
    }
    if (cai__tstr_eq(name, "find") || cai__tstr_eq(name, "count") || cai__tstr_eq(name, "rfind")) {
        size_t at, from = 0;
        int64_t n = 0, pos = -1;
        if ((rc = check_args(c, a, 1, NULL, "find", off)))
            return rc;
        if (!a0 || a0->t != CAI__TV_STR)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "find needs a string");
        while (cai__tstr_find(s, a0->u.s, from, &at)) {
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
    if (cai__tstr_eq(name, "join")) {
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
        return cai__tmpl_join(c, &items, s, NULL, off, out);
    }
    if (cai__tstr_eq(name, "splitlines")) {
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
    if (cai__tstr_eq(name, "isdigit") || cai__tstr_eq(name, "isalpha") ||
        cai__tstr_eq(name, "isspace") || cai__tstr_eq(name, "isupper") ||
        cai__tstr_eq(name, "islower") || cai__tstr_eq(name, "isalnum")) {
        bool r = s.n > 0;
        if ((rc = check_args(c, a, 0, NULL, name.p, off)))
            return rc;
        if (cai__tstr_eq(name, "isupper") || cai__tstr_eq(name, "islower")) {
            r = all_cased(s, name.p[2] == 'u');
        } else {
            for (size_t i = 0; i < s.n && r;) {
                uint32_t cp = cai__utf8_next(s.p, s.n, &i);
                bool digit = cp >= '0' && cp <= '9';
                bool alpha = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
                             (cp >= 0x80 && cai__tmpl_is_cased(cp));
                r = name.p[2] == 'd'   ? digit
                    : name.p[2] == 's' ? cai__tmpl_is_space(cp)
                    : name.p[4] == 'p' ? alpha
                                       : alpha || digit;
            }
        }
        *out = cai__tv_bool(r);
        return 0;
    }
    *found = false;
    return 0;
}

static int dict_method(struct cai__tctx *c, const struct cai__tv *obj, struct cai__tstr name,
                       const struct cai__targs *a, uint32_t off, struct cai__tv *out, bool *found)
{
    const struct cai__tdict *d = obj->u.d;
    struct cai__targs none = {0};
    int rc;
    *found = true;
    if (cai__tstr_eq(name, "items")) {
        if ((rc = check_args(c, a, 0, NULL, "items", off)))
            return rc;
        if ((rc = f_items(c, obj, &none, off, out)))
            return rc;
        out->u.l->view = CAI__TL_ITEMS;
        return 0;
    }
    if (cai__tstr_eq(name, "keys") || cai__tstr_eq(name, "values")) {
        if ((rc = check_args(c, a, 0, NULL, "keys", off)) ||
            (rc = cai__tv_new_list(c, d->n, false, off, out)))
            return rc;
        if (d->n)
            memcpy(out->u.l->v, name.p[0] == 'k' ? d->k : d->v, d->n * sizeof(struct cai__tv));
        out->u.l->view = name.p[0] == 'k' ? CAI__TL_KEYS : CAI__TL_VALUES;
        return 0;
    }
    if (cai__tstr_eq(name, "get")) {
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
                     const struct cai__targs *args, uint32_t off, struct cai__tv *out, bool *found)
{
    int rc = cai__tmpl_step(c, off);
    *found = false;
    if (rc)
        return rc;
    if (obj->t == CAI__TV_STR)
        return str_method(c, obj->u.s, name, args, off, out, found);
    if (obj->t == CAI__TV_DICT)
        return dict_method(c, obj, name, args, off, out, found);
    if (obj->t == CAI__TV_LOOP && cai__tstr_eq(name, "cycle")) {
        *found = true;
        if (args->n_pos == 0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "loop.cycle needs arguments");
        *out = args->pos[obj->u.loop->i % args->n_pos];
        return 0;
    }
    if (obj->t == CAI__TV_LIST && cai__tl_is_seq(obj->u.l) &&
        (cai__tstr_eq(name, "count") || cai__tstr_eq(name, "index"))) {
        /* The read-only list methods. */
        const struct cai__tv *x = arg(args, 0, NULL);
        int64_t n = 0, at = -1;
        *found = true;
        if ((rc = check_args(c, args, 1, NULL, name.p, off)))
            return rc;
        if (!x)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "%s needs an argument", name.p);
        for (size_t i = 0; i < obj->u.l->n; i++) {
            bool eq;
            if ((rc = cai__tv_equal(c, &obj->u.l->v[i], x, off, &eq)))
                return rc;
            if (eq && at < 0)
                at = (int64_t)i;
            n += eq;
        }
        if (name.p[0] == 'i' && at < 0)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "value is not in list");
        *out = cai__tv_int(name.p[0] == 'c' ? n : at);
        return 0;
    }
    if (obj->t == CAI__TV_LIST && (cai__tstr_eq(name, "append") || cai__tstr_eq(name, "pop") ||
                                   cai__tstr_eq(name, "insert") || cai__tstr_eq(name, "extend"))) {
        /* Hugging Face renders in Jinja's immutable sandbox. */
        *found = true;
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "cannot modify an immutable list");
    }
    return 0;
}
