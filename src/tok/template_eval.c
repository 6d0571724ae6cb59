/* template_eval.c: runs a parsed chat template.
 *
 * A tree-walking interpreter: statements write into the current output
 * buffer, expressions produce values (template_int.h). Scopes follow Jinja:
 * each loop iteration and each macro call gets its own scope, `if` does not,
 * and `set` writes to the innermost one, which is why templates carry state
 * out of loops in namespace() objects. Every evaluation counts a step and
 * nests one level; loops count iterations; the arena bounds memory; the
 * buffers bound output. Any of these running out is CAI_ERANGE. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "template_int.h"

enum { CTL_BREAK = 1, CTL_CONTINUE = 2 };

/* ---- errors and bounds ------------------------------------------------- */

int cai__tmpl_fail(struct cai__tctx *c, int code, uint32_t off, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cai__fail(c->err, code, "chat template: offset %zu: %s",
                     cai__tmpl_orig_off(c->tmpl, off), msg);
}

int cai__tmpl_fail_mem(struct cai__tctx *c, uint32_t off)
{
    if (c->arena->rc == CAI_ERANGE)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "rendering needs more than %zu bytes of memory",
                              c->lim.max_memory_bytes);
    return cai__tmpl_fail(c, CAI_ENOMEM, off, "out of memory");
}

int cai__tmpl_step(struct cai__tctx *c, uint32_t off)
{
    if (++c->n_steps > c->lim.max_steps)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "more than %llu evaluation steps",
                              (unsigned long long)c->lim.max_steps);
    return 0;
}

int cai__tbuf_put(struct cai__tctx *c, struct cai__tbuf *b, const char *s, size_t n, uint32_t off)
{
    if (n == 0)
        return 0;
    if (n > c->lim.max_output_bytes || b->n > c->lim.max_output_bytes - n)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "output larger than %zu bytes",
                              c->lim.max_output_bytes);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = cai__tmpl_alloc(c->arena, cap);
        if (!p)
            return cai__tmpl_fail_mem(c, off);
        if (b->n)
            memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* ---- values ------------------------------------------------------------ */

struct cai__tv cai__tv_str(const char *p, size_t n)
{
    struct cai__tv v = {.t = CAI__TV_STR};
    v.u.s.p = p ? p : "";
    v.u.s.n = n;
    return v;
}

struct cai__tv cai__tv_int(int64_t i)
{
    struct cai__tv v = {.t = CAI__TV_INT};
    v.u.i = i;
    return v;
}

struct cai__tv cai__tv_bool(bool b)
{
    struct cai__tv v = {.t = CAI__TV_BOOL};
    v.u.b = b;
    return v;
}

int cai__tv_new_list(struct cai__tctx *c, size_t n, bool tuple, uint32_t off, struct cai__tv *out)
{
    size_t bytes;
    struct cai__tlist *l = cai__tmpl_alloc(c->arena, sizeof(*l));
    if (!l || !cai__mul_size(n ? n : 1, sizeof(struct cai__tv), &bytes))
        return cai__tmpl_fail_mem(c, off);
    l->v = cai__tmpl_alloc(c->arena, bytes);
    if (!l->v)
        return cai__tmpl_fail_mem(c, off);
    l->n = n;
    l->tuple = tuple;
    out->t = CAI__TV_LIST;
    out->u.l = l;
    return 0;
}

int cai__tv_new_dict(struct cai__tctx *c, size_t cap, uint32_t off, struct cai__tv *out)
{
    struct cai__tdict *d = cai__tmpl_alloc(c->arena, sizeof(*d));
    if (!d)
        return cai__tmpl_fail_mem(c, off);
    if (cap) {
        d->k = cai__tmpl_alloc(c->arena, cap * sizeof(struct cai__tv));
        d->v = cai__tmpl_alloc(c->arena, cap * sizeof(struct cai__tv));
        if (!d->k || !d->v)
            return cai__tmpl_fail_mem(c, off);
        d->cap = cap;
    }
    out->t = CAI__TV_DICT;
    out->u.d = d;
    return 0;
}

static bool key_equal(const struct cai__tv *a, const struct cai__tv *b)
{
    /* Hashable keys only: strings, numbers, booleans, none. */
    if (a->t == CAI__TV_STR || b->t == CAI__TV_STR)
        return a->t == b->t && a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    if (a->t == CAI__TV_NONE || b->t == CAI__TV_NONE)
        return a->t == b->t;
    bool an = a->t == CAI__TV_INT || a->t == CAI__TV_BOOL || a->t == CAI__TV_FLOAT;
    bool bn = b->t == CAI__TV_INT || b->t == CAI__TV_BOOL || b->t == CAI__TV_FLOAT;
    if (!an || !bn)
        return false;
    double x = a->t == CAI__TV_FLOAT ? a->u.f : a->t == CAI__TV_INT ? (double)a->u.i : a->u.b;
    double y = b->t == CAI__TV_FLOAT ? b->u.f : b->t == CAI__TV_INT ? (double)b->u.i : b->u.b;
    if (a->t != CAI__TV_FLOAT && b->t != CAI__TV_FLOAT) {
        int64_t i = a->t == CAI__TV_INT ? a->u.i : a->u.b;
        int64_t j = b->t == CAI__TV_INT ? b->u.i : b->u.b;
        return i == j;
    }
    return x == y;
}

const struct cai__tv *cai__tdict_get(const struct cai__tdict *d, const struct cai__tv *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (key_equal(&d->k[i], key))
            return &d->v[i];
    return NULL;
}

const struct cai__tv *cai__tdict_get_str(const struct cai__tdict *d, const char *p, size_t n)
{
    struct cai__tv k = cai__tv_str(p, n);
    return cai__tdict_get(d, &k);
}

int cai__tdict_set(struct cai__tctx *c, struct cai__tdict *d, const struct cai__tv *key,
                   const struct cai__tv *val, uint32_t off)
{
    for (size_t i = 0; i < d->n; i++) {
        if (key_equal(&d->k[i], key)) {
            d->v[i] = *val;
            return 0;
        }
    }
    if (key->t != CAI__TV_STR && key->t != CAI__TV_INT && key->t != CAI__TV_BOOL &&
        key->t != CAI__TV_FLOAT && key->t != CAI__TV_NONE)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "unhashable dict key of type %s",
                              cai__tv_type_name(key));
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct cai__tv *nk = cai__tmpl_alloc(c->arena, cap * sizeof(*nk));
        struct cai__tv *nv = cai__tmpl_alloc(c->arena, cap * sizeof(*nv));
        if (!nk || !nv)
            return cai__tmpl_fail_mem(c, off);
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(*nk));
            memcpy(nv, d->v, d->n * sizeof(*nv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = *key;
    d->v[d->n] = *val;
    d->n++;
    return 0;
}

/* ---- scopes ------------------------------------------------------------ */

struct cai__tscope {
    struct cai__tscope *parent;
    uint32_t n, cap;
    struct cai__tstr *names;
    struct cai__tv *vals;
};

static struct cai__tscope *scope_new(struct cai__tctx *c, struct cai__tscope *parent)
{
    struct cai__tscope *s = cai__tmpl_alloc(c->arena, sizeof(*s));
    if (s)
        s->parent = parent;
    return s;
}

static bool name_eq(struct cai__tstr a, struct cai__tstr b)
{
    return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static const struct cai__tv *scope_get(const struct cai__tscope *s, struct cai__tstr name)
{
    for (; s; s = s->parent)
        for (uint32_t i = s->n; i-- > 0;)
            if (name_eq(s->names[i], name))
                return &s->vals[i];
    return NULL;
}

static int scope_set(struct cai__tctx *c, struct cai__tscope *s, struct cai__tstr name,
                     const struct cai__tv *val, uint32_t off)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (name_eq(s->names[i], name)) {
            s->vals[i] = *val;
            return 0;
        }
    }
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 4;
        struct cai__tstr *nn = cai__tmpl_alloc(c->arena, cap * sizeof(*nn));
        struct cai__tv *nv = cai__tmpl_alloc(c->arena, cap * sizeof(*nv));
        if (!nn || !nv)
            return cai__tmpl_fail_mem(c, off);
        if (s->n) {
            memcpy(nn, s->names, s->n * sizeof(*nn));
            memcpy(nv, s->vals, s->n * sizeof(*nv));
        }
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = *val;
    s->n++;
    return 0;
}

static struct cai__tstr lit(const char *s)
{
    return (struct cai__tstr){s, strlen(s)};
}

/* ---- attribute and item access ----------------------------------------- */

int cai__tv_getattr(struct cai__tctx *c, const struct cai__tv *obj, struct cai__tstr name,
                    uint32_t off, struct cai__tv *out)
{
    struct cai__tv copy = *obj; /* out may alias obj */
    const struct cai__tv *v = &copy;
    out->t = CAI__TV_UNDEF;
    switch (v->t) {
    case CAI__TV_UNDEF:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "attribute '%.*s' of an undefined value",
                              (int)CAI_MIN(name.n, 40), name.p);
    case CAI__TV_DICT:
    case CAI__TV_NS: {
        const struct cai__tv *r = cai__tdict_get_str(v->u.d, name.p, name.n);
        if (r)
            *out = *r;
        return 0;
    }
    case CAI__TV_LOOP: {
        const struct cai__tloop *l = v->u.loop;
        int64_t n = (int64_t)l->n, i = (int64_t)l->i;
        if (name_eq(name, lit("index")))
            *out = cai__tv_int(i + 1);
        else if (name_eq(name, lit("index0")))
            *out = cai__tv_int(i);
        else if (name_eq(name, lit("revindex")))
            *out = cai__tv_int(n - i);
        else if (name_eq(name, lit("revindex0")))
            *out = cai__tv_int(n - i - 1);
        else if (name_eq(name, lit("first")))
            *out = cai__tv_bool(i == 0);
        else if (name_eq(name, lit("last")))
            *out = cai__tv_bool(i == n - 1);
        else if (name_eq(name, lit("length")))
            *out = cai__tv_int(n);
        else if (name_eq(name, lit("depth")))
            *out = cai__tv_int(1);
        else if (name_eq(name, lit("depth0")))
            *out = cai__tv_int(0);
        else if (name_eq(name, lit("previtem")) && i > 0)
            *out = l->items[i - 1];
        else if (name_eq(name, lit("nextitem")) && i + 1 < n)
            *out = l->items[i + 1];
        return 0;
    }
    default:
        return 0;
    }
}

/* Python's index normalization for a sequence of n items. */
static bool seq_index(const struct cai__tv *key, size_t n, size_t *idx)
{
    int64_t i;
    if (key->t == CAI__TV_INT)
        i = key->u.i;
    else if (key->t == CAI__TV_BOOL)
        i = key->u.b;
    else
        return false;
    if (i < 0)
        i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n)
        return false;
    *idx = (size_t)i;
    return true;
}

int cai__tv_getitem(struct cai__tctx *c, const struct cai__tv *obj, const struct cai__tv *key_in,
                    uint32_t off, struct cai__tv *out)
{
    struct cai__tv copy = *obj, key_copy = *key_in; /* out may alias either */
    const struct cai__tv *v = &copy, *key = &key_copy;
    size_t idx;
    out->t = CAI__TV_UNDEF;
    switch (v->t) {
    case CAI__TV_UNDEF:
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "subscript of an undefined value");
    case CAI__TV_LIST:
        /* Generators, iterators and dict views have no items by index. */
        if (cai__tl_is_seq(v->u.l) && seq_index(key, v->u.l->n, &idx))
            *out = v->u.l->v[idx];
        return 0;
    case CAI__TV_STR: {
        const char *s = v->u.s.p;
        size_t n = v->u.s.n;
        if (!seq_index(key, cai__utf8_count(s, n), &idx))
            return 0;
        size_t i = 0;
        for (size_t k = 0; k < idx; k++)
            cai__utf8_next(s, n, &i);
        size_t start = i;
        cai__utf8_next(s, n, &i);
        *out = cai__tv_str(s + start, i - start);
        return 0;
    }
    case CAI__TV_DICT: {
        const struct cai__tv *r = cai__tdict_get(v->u.d, key);
        if (r)
            *out = *r;
        return 0;
    }
    case CAI__TV_NS:
    case CAI__TV_LOOP:
        if (key->t == CAI__TV_STR)
            return cai__tv_getattr(c, v, key->u.s, off, out);
        return 0;
    default:
        return 0;
    }
}

/* Python's slice.indices(): the first index, the count, the step. */
static int slice_indices(struct cai__tctx *c, const struct cai__tv *b[3], size_t n, uint32_t off,
                         int64_t *start_out, int64_t *stop_out, size_t *count, int64_t *step_out)
{
    int64_t v[3] = {0, 0, 1};
    bool given[3];
    for (int k = 0; k < 3; k++) {
        given[k] = b[k] && b[k]->t != CAI__TV_NONE;
        if (!given[k])
            continue;
        if (b[k]->t == CAI__TV_INT)
            v[k] = b[k]->u.i;
        else if (b[k]->t == CAI__TV_BOOL)
            v[k] = b[k]->u.b;
        else
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "slice indices must be integers");
    }
    int64_t len = (int64_t)n, step = given[2] ? v[2] : 1;
    if (step == 0)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "slice step cannot be zero");
    int64_t lower = step < 0 ? -1 : 0, upper = step < 0 ? len - 1 : len;
    int64_t start, stop;
    if (!given[0]) {
        start = step < 0 ? upper : lower;
    } else {
        start = v[0];
        if (start < 0) {
            start = start < -len ? lower : start + len;
        } else if (start > upper) {
            start = upper;
        }
    }
    if (!given[1]) {
        stop = step < 0 ? lower : upper;
    } else {
        stop = v[1];
        if (stop < 0) {
            stop = stop < -len ? lower : stop + len;
        } else if (stop > upper) {
            stop = upper;
        }
    }
    size_t cnt = 0;
    if (step > 0 && start < stop)
        cnt = (size_t)((stop - start - 1) / step + 1);
    else if (step < 0 && start > stop)
        cnt = (size_t)((start - stop - 1) / (-step) + 1);
    *start_out = start;
    *stop_out = stop;
    *count = cnt;
    *step_out = step;
    return 0;
}

static int do_slice(struct cai__tctx *c, const struct cai__tv *v, const struct cai__tv *b[3],
                    bool folded, uint32_t off, struct cai__tv *out)
{
    int64_t start, stop, step;
    size_t cnt;
    int rc;
    if (v->t == CAI__TV_UNDEF)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "slice of an undefined value");
    /* Jinja compiles a slice to Python's own subscript, so a value that
     * cannot be sliced is an error; only when it folds a constant {{ }} at
     * compile time does it go through getitem, which gives undefined. */
    if (v->t != CAI__TV_STR && (v->t != CAI__TV_LIST || !cai__tl_is_seq(v->u.l))) {
        out->t = CAI__TV_UNDEF;
        return folded ? 0
                      : cai__tmpl_fail(c, CAI_EFORMAT, off, "'%s' object is not subscriptable",
                                       cai__tv_type_name(v));
    }
    if (v->t == CAI__TV_LIST) {
        const struct cai__tlist *l = v->u.l;
        if ((rc = slice_indices(c, b, l->n, off, &start, &stop, &cnt, &step)) ||
            (rc = cai__tv_new_list(c, cnt, l->tuple, off, out)))
            return rc;
        for (size_t k = 0; k < cnt; k++)
            out->u.l->v[k] = l->v[start + (int64_t)k * step];
        if (l->view == CAI__TL_RANGE) { /* a range slices into a range */
            struct cai__tlist *r = out->u.l;
            int64_t a, z;
            r->view = CAI__TL_RANGE;
            if (__builtin_mul_overflow(start, l->r_step, &a) ||
                __builtin_add_overflow(l->r_start, a, &r->r_start) ||
                __builtin_mul_overflow(stop, l->r_step, &z) ||
                __builtin_add_overflow(l->r_start, z, &r->r_stop) ||
                __builtin_mul_overflow(l->r_step, step, &r->r_step))
                return cai__tmpl_fail(c, CAI_ERANGE, off, "integer overflow");
        }
        return 0;
    }
    if (v->t == CAI__TV_STR) {
        const char *s = v->u.s.p;
        size_t n = v->u.s.n, n_cp = cai__utf8_count(s, n);
        if ((rc = slice_indices(c, b, n_cp, off, &start, &stop, &cnt, &step)))
            return rc;
        if (step == 1) {
            size_t i = 0, k = 0;
            for (; k < (size_t)start; k++)
                cai__utf8_next(s, n, &i);
            size_t from = i;
            for (k = 0; k < cnt; k++)
                cai__utf8_next(s, n, &i);
            *out = cai__tv_str(s + from, i - from);
            return 0;
        }
        size_t *pos = cai__tmpl_alloc(c->arena, (n_cp + 1) * sizeof(size_t));
        char *d = cai__tmpl_alloc(c->arena, n + 1);
        if (!pos || !d)
            return cai__tmpl_fail_mem(c, off);
        size_t i = 0, j = 0;
        for (size_t k = 0; k < n_cp; k++) {
            pos[k] = i;
            cai__utf8_next(s, n, &i);
        }
        pos[n_cp] = n;
        for (size_t k = 0; k < cnt; k++) {
            size_t q = (size_t)(start + (int64_t)k * step);
            memcpy(d + j, s + pos[q], pos[q + 1] - pos[q]);
            j += pos[q + 1] - pos[q];
        }
        *out = cai__tv_str(d, j);
        return 0;
    }
    out->t = CAI__TV_UNDEF;
    return 0;
}

/* ---- expressions ------------------------------------------------------- */

struct frame {
    struct cai__tscope *scope;
    const struct cai__tv *blockval; /* the rendered body a filter block works on */
};

static int eval(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n,
                struct cai__tv *out);
static int exec(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n);

/* Whether Jinja's compile-time folding (Node.as_const) succeeds for `n`:
 * literals and what operators, filters, tests and subscripts make of them
 * (no names, no calls); a conditional needs only its test and the branch
 * taken, `and`/`or` only what they evaluate. Tests are evaluated here, as
 * Jinja does, with folding on. */
static bool foldable(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n)
{
    struct cai__tv v;
    bool t;
    if (!n)
        return true;
    switch (n->kind) {
    case CAI__TN_CONST:
        return true;
    case CAI__TN_LIST:
    case CAI__TN_TUPLE:
    case CAI__TN_DICT:
    case CAI__TN_CONCAT:
    case CAI__TN_COMPARE:
    case CAI__TN_FILTER:
    case CAI__TN_TEST:
        for (uint32_t i = 0; i < n->n_kids; i++)
            if (!foldable(c, f, n->kids[i]))
                return false;
        for (uint32_t i = 0; i < n->n_kids2; i++)
            if (!foldable(c, f, n->kids2[i]))
                return false;
        return foldable(c, f, n->a);
    case CAI__TN_BINARY:
        if (n->op != CAI__TOP_AND && n->op != CAI__TOP_OR)
            return foldable(c, f, n->a) && foldable(c, f, n->b);
        if (!foldable(c, f, n->a) || eval(c, f, n->a, &v))
            return false;
        t = cai__tv_truthy(&v);
        return (n->op == CAI__TOP_AND) != t || foldable(c, f, n->b);
    case CAI__TN_COND:
        if (!foldable(c, f, n->b) || eval(c, f, n->b, &v))
            return false;
        return cai__tv_truthy(&v) ? foldable(c, f, n->a) : n->c && foldable(c, f, n->c);
    case CAI__TN_UNARY:
    case CAI__TN_ATTR:
    case CAI__TN_INDEX:
    case CAI__TN_SLICE:
        return foldable(c, f, n->a) && foldable(c, f, n->b) && foldable(c, f, n->c) &&
               foldable(c, f, n->d);
    default:
        return false;
    }
}

static int eval_args(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n,
                     struct cai__targs *args)
{
    int rc;
    memset(args, 0, sizeof(*args));
    args->n_pos = n->n_kids;
    args->n_kw = n->n_kids2;
    args->kw_names = n->kw;
    if (n->n_kids) {
        args->pos = cai__tmpl_alloc(c->arena, n->n_kids * sizeof(struct cai__tv));
        if (!args->pos)
            return cai__tmpl_fail_mem(c, n->off);
        for (uint32_t i = 0; i < n->n_kids; i++)
            if ((rc = eval(c, f, n->kids[i], &args->pos[i])))
                return rc;
    }
    if (n->n_kids2) {
        args->kw = cai__tmpl_alloc(c->arena, n->n_kids2 * sizeof(struct cai__tv));
        if (!args->kw)
            return cai__tmpl_fail_mem(c, n->off);
        for (uint32_t i = 0; i < n->n_kids2; i++)
            if ((rc = eval(c, f, n->kids2[i], &args->kw[i])))
                return rc;
    }
    return 0;
}

/* Renders `body` into a fresh buffer and returns the text as a string. */
static int capture(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *body,
                   struct cai__tv *out, int *ctl)
{
    struct cai__tbuf buf = {0}, *saved = c->out;
    c->out = &buf;
    int rc = exec(c, f, body);
    c->out = saved;
    if (rc < 0)
        return rc;
    if (ctl)
        *ctl = rc;
    *out = cai__tv_str(buf.p, buf.n);
    return 0;
}

static int call_macro(struct cai__tctx *c, const struct cai__tmacro *m,
                      const struct cai__targs *args, uint32_t off, struct cai__tv *out)
{
    const struct cai__tnode *def = m->def;
    int rc;
    if (args->n_pos > def->n_kids)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "macro '%.*s' takes at most %u argument(s)",
                              (int)CAI_MIN(def->s.n, 40), def->s.p, (unsigned)def->n_kids);
    for (size_t k = 0; k < args->n_kw; k++) {
        bool ok = false;
        for (uint32_t i = 0; i < def->n_kids && !ok; i++)
            ok = name_eq(def->kids[i]->s, args->kw_names[k]);
        if (!ok)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "macro '%.*s' has no argument '%.*s'",
                                  (int)CAI_MIN(def->s.n, 40), def->s.p,
                                  (int)CAI_MIN(args->kw_names[k].n, 40), args->kw_names[k].p);
    }
    struct frame mf = {.scope = scope_new(c, m->scope)};
    if (!mf.scope)
        return cai__tmpl_fail_mem(c, off);
    for (uint32_t i = 0; i < def->n_kids; i++) {
        const struct cai__tnode *param = def->kids[i];
        struct cai__tv v = {.t = CAI__TV_UNDEF};
        bool have = false;
        if (i < args->n_pos) {
            v = args->pos[i];
            have = true;
        }
        for (size_t k = 0; k < args->n_kw && !have; k++) {
            if (name_eq(param->s, args->kw_names[k])) {
                v = args->kw[k];
                have = true;
            }
        }
        if (!have && param->b && (rc = eval(c, &mf, param->b, &v)))
            return rc;
        if ((rc = scope_set(c, mf.scope, param->s, &v, off)))
            return rc;
    }
    return capture(c, &mf, def->d, out, NULL);
}

static int call_global(struct cai__tctx *c, int fn, const struct cai__targs *args, uint32_t off,
                       struct cai__tv *out)
{
    int rc;
    if (fn == CAI__TF_RAISE) {
        struct cai__tstr msg = {"", 0};
        if (args->n_pos > 0 && (rc = cai__tv_to_str(c, &args->pos[0], off, &msg)))
            return rc;
        return cai__tmpl_fail(c, CAI_EINVAL, off, "%.*s", (int)CAI_MIN(msg.n, 180), msg.p);
    }
    if (fn == CAI__TF_NAMESPACE) {
        if ((rc = cai__tv_new_dict(c, 4, off, out)))
            return rc;
        out->t = CAI__TV_NS;
        for (size_t i = 0; i < args->n_pos; i++) {
            const struct cai__tv *a = &args->pos[i];
            if (a->t != CAI__TV_DICT && a->t != CAI__TV_NS)
                return cai__tmpl_fail(c, CAI_EFORMAT, off, "namespace() takes a dict");
            for (size_t k = 0; k < a->u.d->n; k++)
                if ((rc = cai__tdict_set(c, out->u.d, &a->u.d->k[k], &a->u.d->v[k], off)))
                    return rc;
        }
        for (size_t i = 0; i < args->n_kw; i++) {
            struct cai__tv key = cai__tv_str(args->kw_names[i].p, args->kw_names[i].n);
            if ((rc = cai__tdict_set(c, out->u.d, &key, &args->kw[i], off)))
                return rc;
        }
        return 0;
    }
    /* range(stop), range(start, stop[, step]) */
    int64_t v[3] = {0, 0, 1};
    if (args->n_pos < 1 || args->n_pos > 3 || args->n_kw)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "range() takes 1 to 3 integers");
    for (size_t i = 0; i < args->n_pos; i++) {
        const struct cai__tv *a = &args->pos[i];
        if (a->t != CAI__TV_INT && a->t != CAI__TV_BOOL)
            return cai__tmpl_fail(c, CAI_EFORMAT, off, "range() takes integers");
        v[args->n_pos == 1 ? 1 : i] = a->t == CAI__TV_INT ? a->u.i : a->u.b;
    }
    int64_t start = v[0], stop = v[1], step = v[2];
    if (step == 0)
        return cai__tmpl_fail(c, CAI_EFORMAT, off, "range() step must not be zero");
    uint64_t cnt = 0;
    if (step > 0 && start < stop)
        cnt = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
    else if (step < 0 && start > stop)
        cnt = ((uint64_t)start - (uint64_t)stop - 1) / ((uint64_t)0 - (uint64_t)step) + 1;
    if (cnt > c->lim.max_loop_iters)
        return cai__tmpl_fail(c, CAI_ERANGE, off, "range() of more than %llu items",
                              (unsigned long long)c->lim.max_loop_iters);
    if ((rc = cai__tv_new_list(c, (size_t)cnt, false, off, out)))
        return rc;
    for (uint64_t i = 0; i < cnt; i++)
        out->u.l->v[i] = /* wraps back into range: the value lies between start and stop */
            cai__tv_int((int64_t)((uint64_t)start + i * (uint64_t)step));
    out->u.l->view = CAI__TL_RANGE;
    out->u.l->r_start = start;
    out->u.l->r_stop = stop;
    out->u.l->r_step = step;
    return 0;
}

static int eval_call(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n,
                     struct cai__tv *out)
{
    const struct cai__tnode *callee = n->a;
    struct cai__tv fn, obj;
    struct cai__targs args;
    int rc;
    if (callee->kind == CAI__TN_ATTR) {
        if ((rc = eval(c, f, callee->a, &obj)))
            return rc;
        if (obj.t == CAI__TV_UNDEF)
            return cai__tmpl_fail(c, CAI_EFORMAT, callee->off,
                                  "method '%.*s' of an undefined value",
                                  (int)CAI_MIN(callee->s.n, 40), callee->s.p);
        if ((rc = eval_args(c, f, n, &args)))
            return rc;
        bool found = false;
        if ((rc = cai__tmpl_method(c, &obj, callee->s, &args, n->off, out, &found)) || found)
            return rc;
        if ((rc = cai__tv_getattr(c, &obj, callee->s, callee->off, &fn)))
            return rc;
    } else {
        if ((rc = eval(c, f, callee, &fn)) || (rc = eval_args(c, f, n, &args)))
            return rc;
    }
    if (fn.t == CAI__TV_MACRO) {
        if (++c->depth > CAI__TMPL_MAX_EVAL_DEPTH)
            return cai__tmpl_fail(c, CAI_ERANGE, n->off, "calls nested deeper than %d",
                                  CAI__TMPL_MAX_EVAL_DEPTH);
        rc = call_macro(c, fn.u.macro, &args, n->off, out);
        c->depth--;
        return rc;
    }
    if (fn.t == CAI__TV_FUNC)
        return call_global(c, fn.u.fn, &args, n->off, out);
    if (fn.t == CAI__TV_UNDEF) {
        if (callee->kind == CAI__TN_NAME || callee->kind == CAI__TN_ATTR)
            return cai__tmpl_fail(c, CAI_EFORMAT, n->off, "'%.*s' is undefined",
                                  (int)CAI_MIN(callee->s.n, 40), callee->s.p);
        return cai__tmpl_fail(c, CAI_EFORMAT, n->off, "call of an undefined value");
    }
    return cai__tmpl_fail(c, CAI_EFORMAT, n->off, "'%s' object is not callable",
                          cai__tv_type_name(&fn));
}

static int compare(struct cai__tctx *c, int op, const struct cai__tv *a, const struct cai__tv *b,
                   uint32_t off, bool *res)
{
    int rc, cmp;
    bool r;
    switch (op) {
    case CAI__TOP_EQ:
    case CAI__TOP_NE:
        if ((rc = cai__tv_equal(c, a, b, off, &r)))
            return rc;
        *res = op == CAI__TOP_EQ ? r : !r;
        return 0;
    case CAI__TOP_IN:
    case CAI__TOP_NOTIN:
        if ((rc = cai__tv_contains(c, b, a, off, &r)))
            return rc;
        *res = op == CAI__TOP_IN ? r : !r;
        return 0;
    default:
        if ((rc = cai__tv_order(c, a, b, off, &cmp)))
            return rc;
        *res = op == CAI__TOP_LT   ? cmp < 0
               : op == CAI__TOP_LE ? cmp <= 0
               : op == CAI__TOP_GT ? cmp > 0
                                   : cmp >= 0;
        return 0;
    }
}

static int eval(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n,
                struct cai__tv *out)
{
    int rc;
    if ((rc = cai__tmpl_step(c, n->off)))
        return rc;
    if (++c->depth > CAI__TMPL_MAX_EVAL_DEPTH) {
        c->depth--;
        return cai__tmpl_fail(c, CAI_ERANGE, n->off, "evaluation nested deeper than %d",
                              CAI__TMPL_MAX_EVAL_DEPTH);
    }
    struct cai__tv a, b;
    out->t = CAI__TV_UNDEF;
    switch (n->kind) {
    case CAI__TN_CONST:
        *out = n->val;
        break;
    case CAI__TN_NAME: {
        const struct cai__tv *v = scope_get(f->scope, n->s);
        if (v)
            *out = *v;
        break;
    }
    case CAI__TN_LIST:
    case CAI__TN_TUPLE:
        if ((rc = cai__tv_new_list(c, n->n_kids, n->kind == CAI__TN_TUPLE, n->off, out)))
            break;
        for (uint32_t i = 0; i < n->n_kids && !rc; i++)
            rc = eval(c, f, n->kids[i], &out->u.l->v[i]);
        break;
    case CAI__TN_DICT:
        if ((rc = cai__tv_new_dict(c, n->n_kids, n->off, out)))
            break;
        for (uint32_t i = 0; i < n->n_kids && !rc; i++) {
            if (!(rc = eval(c, f, n->kids[i], &a)) && !(rc = eval(c, f, n->kids2[i], &b)))
                rc = cai__tdict_set(c, out->u.d, &a, &b, n->kids[i]->off);
        }
        break;
    case CAI__TN_ATTR:
        if (!(rc = eval(c, f, n->a, &a)))
            rc = cai__tv_getattr(c, &a, n->s, n->off, out);
        break;
    case CAI__TN_INDEX:
        if (!(rc = eval(c, f, n->a, &a)) && !(rc = eval(c, f, n->b, &b)))
            rc = cai__tv_getitem(c, &a, &b, n->off, out);
        break;
    case CAI__TN_SLICE: {
        struct cai__tv parts[3];
        const struct cai__tv *pp[3] = {NULL, NULL, NULL};
        const struct cai__tnode *pn[3] = {n->b, n->c, n->d};
        if (!n->a) {
            rc = cai__tmpl_fail(c, CAI_EFORMAT, n->off, "a slice is only allowed alone in []");
            break;
        }
        if ((rc = eval(c, f, n->a, &a)))
            break;
        for (int k = 0; k < 3 && !rc; k++)
            if (pn[k] && !(rc = eval(c, f, pn[k], &parts[k])))
                pp[k] = &parts[k];
        if (!rc)
            rc = do_slice(c, &a, pp, c->folding, n->off, out);
        break;
    }
    case CAI__TN_CALL:
        rc = eval_call(c, f, n, out);
        break;
    case CAI__TN_FILTER: {
        struct cai__targs args;
        if (!(rc = eval(c, f, n->a, &a)) && !(rc = eval_args(c, f, n, &args)))
            rc = cai__tmpl_filter(c, n->s, &a, &args, n->off, out);
        break;
    }
    case CAI__TN_TEST: {
        struct cai__targs args;
        bool r;
        if (!(rc = eval(c, f, n->a, &a)) && !(rc = eval_args(c, f, n, &args)) &&
            !(rc = cai__tmpl_test(c, n->s, &a, &args, n->off, &r)))
            *out = cai__tv_bool(n->neg ? !r : r);
        break;
    }
    case CAI__TN_UNARY:
        if ((rc = eval(c, f, n->a, &a)))
            break;
        if (n->op == CAI__TOP_NOT) {
            *out = cai__tv_bool(!cai__tv_truthy(&a));
        } else if (a.t == CAI__TV_FLOAT) {
            *out = a;
            if (n->op == CAI__TOP_NEG)
                out->u.f = -a.u.f;
        } else if (a.t == CAI__TV_INT || a.t == CAI__TV_BOOL) {
            int64_t i = a.t == CAI__TV_INT ? a.u.i : a.u.b;
            if (n->op == CAI__TOP_NEG && i == INT64_MIN)
                rc = cai__tmpl_fail(c, CAI_ERANGE, n->off, "integer overflow");
            else
                *out = cai__tv_int(n->op == CAI__TOP_NEG ? -i : i);
        } else {
            rc = cai__tmpl_fail(c, CAI_EFORMAT, n->off, "bad operand type for unary %c: '%s'",
                                n->op == CAI__TOP_NEG ? '-' : '+', cai__tv_type_name(&a));
        }
        break;
    case CAI__TN_BINARY:
        if ((rc = eval(c, f, n->a, &a)))
            break;
        if (n->op == CAI__TOP_AND || n->op == CAI__TOP_OR) {
            bool t = cai__tv_truthy(&a);
            if ((n->op == CAI__TOP_AND) == t)
                rc = eval(c, f, n->b, out);
            else
                *out = a;
            break;
        }
        if (!(rc = eval(c, f, n->b, &b)))
            rc = cai__tv_arith(c, n->op, &a, &b, n->off, out);
        break;
    case CAI__TN_CONCAT: {
        struct cai__tbuf buf = {0};
        for (uint32_t i = 0; i < n->n_kids && !rc; i++)
            if (!(rc = eval(c, f, n->kids[i], &a)))
                rc = cai__tv_write(c, &buf, &a, false, 0, n->off);
        if (!rc)
            *out = cai__tv_str(buf.p, buf.n);
        break;
    }
    case CAI__TN_COMPARE: {
        bool r = true;
        if ((rc = eval(c, f, n->kids[0], &a)))
            break;
        for (uint32_t i = 0; i + 1 < n->n_kids && r && !rc; i++) {
            if (!(rc = eval(c, f, n->kids[i + 1], &b)))
                rc = compare(c, n->ops[i], &a, &b, n->off, &r);
            a = b;
        }
        if (!rc)
            *out = cai__tv_bool(r);
        break;
    }
    case CAI__TN_COND:
        if ((rc = eval(c, f, n->b, &a)))
            break;
        if (cai__tv_truthy(&a))
            rc = eval(c, f, n->a, out);
        else if (n->c)
            rc = eval(c, f, n->c, out);
        break;
    case CAI__TN_BLOCKVAL:
        if (f->blockval)
            *out = *f->blockval;
        break;
    default:
        rc = cai__tmpl_fail(c, CAI_EFORMAT, n->off, "not an expression");
        break;
    }
    c->depth--;
    return rc;
}

/* ---- statements -------------------------------------------------------- */

static int assign(struct cai__tctx *c, struct cai__tscope *s, const struct cai__tnode *target,
                  const struct cai__tv *v)
{
    int rc;
    if (target->kind == CAI__TN_NAME)
        return scope_set(c, s, target->s, v, target->off);
    if (target->kind == CAI__TN_NSREF) {
        const struct cai__tv *ns = scope_get(s, target->s);
        if (!ns || ns->t != CAI__TV_NS)
            return cai__tmpl_fail(c, CAI_EFORMAT, target->off,
                                  "cannot assign an attribute of '%.*s': not a namespace",
                                  (int)CAI_MIN(target->s.n, 40), target->s.p);
        struct cai__tv key = cai__tv_str(target->s2.p, target->s2.n);
        return cai__tdict_set(c, ns->u.d, &key, v, target->off);
    }
    /* A tuple of names unpacks an iterable of the same length. */
    struct cai__tlist items;
    if (v->t != CAI__TV_LIST && v->t != CAI__TV_STR && v->t != CAI__TV_DICT)
        return cai__tmpl_fail(c, CAI_EFORMAT, target->off, "cannot unpack a '%s' value",
                              cai__tv_type_name(v));
    if ((rc = cai__tv_iterate(c, v, target->off, &items)))
        return rc;
    if (items.n != target->n_kids)
        return cai__tmpl_fail(c, CAI_EFORMAT, target->off,
                              "cannot unpack %zu value(s) into %u name(s)", items.n,
                              (unsigned)target->n_kids);
    for (uint32_t i = 0; i < target->n_kids; i++)
        if ((rc = scope_set(c, s, target->kids[i]->s, &items.v[i], target->off)))
            return rc;
    return 0;
}

static void scope_reset(struct cai__tscope *s)
{
    s->n = 0;
}

static int exec_for(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n)
{
    struct cai__tv seq;
    struct cai__tlist items;
    int rc;
    if ((rc = eval(c, f, n->b, &seq)))
        return rc;
    if (seq.t != CAI__TV_LIST && seq.t != CAI__TV_DICT && seq.t != CAI__TV_STR &&
        seq.t != CAI__TV_UNDEF)
        return cai__tmpl_fail(c, CAI_EFORMAT, n->b->off, "'%s' object is not iterable",
                              cai__tv_type_name(&seq));
    if ((rc = cai__tv_iterate(c, &seq, n->off, &items)))
        return rc;
    struct frame inner = {.scope = scope_new(c, f->scope), .blockval = f->blockval};
    if (!inner.scope)
        return cai__tmpl_fail_mem(c, n->off);
    if (n->c) {
        /* The loop's `if` filters first, so loop.length and friends count
         * only the items that pass. */
        struct cai__tv *kept = items.n ? cai__tmpl_alloc(c->arena, items.n * sizeof(*kept)) : NULL;
        size_t n_kept = 0;
        if (items.n && !kept)
            return cai__tmpl_fail_mem(c, n->off);
        for (size_t i = 0; i < items.n; i++) {
            struct cai__tv cond;
            if (++c->n_iters > c->lim.max_loop_iters)
                return cai__tmpl_fail(c, CAI_ERANGE, n->off, "more than %llu loop iterations",
                                      (unsigned long long)c->lim.max_loop_iters);
            scope_reset(inner.scope);
            if ((rc = assign(c, inner.scope, n->a, &items.v[i])) ||
                (rc = eval(c, &inner, n->c, &cond)))
                return rc;
            if (cai__tv_truthy(&cond))
                kept[n_kept++] = items.v[i];
        }
        items.v = kept;
        items.n = n_kept;
    }
    if (items.n == 0) {
        scope_reset(inner.scope);
        return n->e ? exec(c, &inner, n->e) : 0;
    }
    struct cai__tloop *loop = cai__tmpl_alloc(c->arena, sizeof(*loop));
    if (!loop)
        return cai__tmpl_fail_mem(c, n->off);
    loop->items = items.v;
    loop->n = items.n;
    struct cai__tv loop_v = {.t = CAI__TV_LOOP};
    loop_v.u.loop = loop;
    for (size_t i = 0; i < items.n; i++) {
        if (++c->n_iters > c->lim.max_loop_iters)
            return cai__tmpl_fail(c, CAI_ERANGE, n->off, "more than %llu loop iterations",
                                  (unsigned long long)c->lim.max_loop_iters);
        loop->i = i;
        scope_reset(inner.scope);
        if ((rc = scope_set(c, inner.scope, lit("loop"), &loop_v, n->off)) ||
            (rc = assign(c, inner.scope, n->a, &items.v[i])))
            return rc;
        rc = exec(c, &inner, n->d);
        if (rc < 0)
            return rc;
        if (rc == CTL_BREAK)
            break;
    }
    return 0;
}

static int exec(struct cai__tctx *c, const struct frame *f, const struct cai__tnode *n)
{
    int rc;
    if ((rc = cai__tmpl_step(c, n->off)))
        return rc;
    if (++c->depth > CAI__TMPL_MAX_EVAL_DEPTH) {
        c->depth--;
        return cai__tmpl_fail(c, CAI_ERANGE, n->off, "statements nested deeper than %d",
                              CAI__TMPL_MAX_EVAL_DEPTH);
    }
    struct cai__tv v, w;
    switch (n->kind) {
    case CAI__TN_BODY:
        for (uint32_t i = 0; i < n->n_kids && !rc; i++)
            rc = exec(c, f, n->kids[i]);
        break;
    case CAI__TN_TEXT:
        rc = cai__tbuf_put(c, c->out, n->s.p, n->s.n, n->off);
        break;
    case CAI__TN_OUTPUT:
        /* Jinja evaluates a constant {{ }} at compile time, where a failed
         * slice gives undefined instead of an error (see do_slice). */
        c->folding = true;
        c->folding = foldable(c, f, n->a);
        rc = eval(c, f, n->a, &v);
        c->folding = false;
        if (!rc)
            rc = cai__tv_write(c, c->out, &v, false, 0, n->a->off);
        break;
    case CAI__TN_IF: {
        const struct cai__tnode *branch = n;
        while (branch && branch->kind == CAI__TN_IF) {
            if ((rc = eval(c, f, branch->a, &v)))
                break;
            if (cai__tv_truthy(&v)) {
                rc = exec(c, f, branch->b);
                break;
            }
            branch = branch->c;
        }
        if (!rc && branch && branch->kind != CAI__TN_IF)
            rc = exec(c, f, branch);
        break;
    }
    case CAI__TN_FOR:
        rc = exec_for(c, f, n);
        break;
    case CAI__TN_SET:
        if (!(rc = eval(c, f, n->b, &v)))
            rc = assign(c, f->scope, n->a, &v);
        break;
    case CAI__TN_SETBLOCK:
    case CAI__TN_FILTERBLOCK: {
        int ctl = 0;
        if ((rc = capture(c, f, n->d, &v, &ctl)))
            break;
        if (n->b) {
            struct frame ff = {.scope = f->scope, .blockval = &v};
            if ((rc = eval(c, &ff, n->b, &w)))
                break;
            v = w;
        }
        if (n->kind == CAI__TN_SETBLOCK)
            rc = assign(c, f->scope, n->a, &v);
        else
            rc = cai__tv_write(c, c->out, &v, false, 0, n->off);
        if (!rc)
            rc = ctl;
        break;
    }
    case CAI__TN_MACRO: {
        struct cai__tmacro *m = cai__tmpl_alloc(c->arena, sizeof(*m));
        if (!m) {
            rc = cai__tmpl_fail_mem(c, n->off);
            break;
        }
        m->def = n;
        m->scope = f->scope;
        v.t = CAI__TV_MACRO;
        v.u.macro = m;
        rc = scope_set(c, f->scope, n->s, &v, n->off);
        break;
    }
    case CAI__TN_BREAK:
        rc = CTL_BREAK;
        break;
    case CAI__TN_CONTINUE:
        rc = CTL_CONTINUE;
        break;
    case CAI__TN_WITH: {
        struct frame wf = {.scope = scope_new(c, f->scope), .blockval = f->blockval};
        if (!wf.scope) {
            rc = cai__tmpl_fail_mem(c, n->off);
            break;
        }
        for (uint32_t i = 0; i < n->n_kids && !rc; i++)
            if (!(rc = eval(c, f, n->kids[i]->b, &v)))
                rc = assign(c, wf.scope, n->kids[i]->a, &v);
        if (!rc)
            rc = exec(c, &wf, n->d);
        break;
    }
    default:
        rc = cai__tmpl_fail(c, CAI_EFORMAT, n->off, "not a statement");
        break;
    }
    c->depth--;
    return rc;
}

/* ---- entry points ------------------------------------------------------ */

static int set_global(struct cai__tctx *c, struct cai__tscope *s, const char *name,
                      struct cai__tv v)
{
    return scope_set(c, s, lit(name), &v, 0);
}

static struct cai__tv func_value(int fn)
{
    struct cai__tv v = {.t = CAI__TV_FUNC};
    v.u.fn = fn;
    return v;
}

int cai__chat_render_jinja(const char *tmpl, size_t tmpl_len, const struct cai_chat_msg *msgs,
                           size_t n_msgs, bool add_generation_prompt, const char *bos_token,
                           const char *eos_token, const struct cai__tmpl_limits *limits, char **out,
                           size_t *out_len, struct cai_error *err)
{
    if (!out || !out_len)
        return cai__fail(err, CAI_EINVAL, "chat template: out and out_len are required");
    *out = NULL;
    *out_len = 0;
    if ((n_msgs > 0 && !msgs) || (!tmpl && tmpl_len > 0))
        return cai__fail(err, CAI_EINVAL, "chat template: NULL messages or template");
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role)
            return cai__fail(err, CAI_EINVAL, "chat template: message %zu has no role", i);

    struct cai__tmpl_limits lim = {0};
    if (limits)
        lim = *limits;
    if (!lim.max_output_bytes)
        lim.max_output_bytes = (size_t)16 << 20;
    if (!lim.max_memory_bytes)
        lim.max_memory_bytes = (size_t)64 << 20;
    if (!lim.max_steps)
        lim.max_steps = 10000000;
    if (!lim.max_loop_iters)
        lim.max_loop_iters = 1000000;

    struct cai__tmpl_arena arena = {.n_limit = lim.max_memory_bytes};
    struct cai__tmpl t;
    int rc = cai__tmpl_parse(&t, tmpl, tmpl_len, &arena, err);
    if (rc) {
        cai__tmpl_arena_free(&arena);
        return rc;
    }
    struct cai__tbuf buf = {0};
    struct cai__tctx c = {.arena = &arena, .tmpl = &t, .lim = lim, .out = &buf, .err = err};
    struct cai__tscope *globals = scope_new(&c, NULL);
    struct frame f = {.scope = globals ? scope_new(&c, globals) : NULL};
    struct cai__tv messages;
    if (!f.scope) {
        rc = cai__tmpl_fail_mem(&c, 0);
        goto done;
    }
    if ((rc = cai__tv_new_list(&c, n_msgs, false, 0, &messages)))
        goto done;
    for (size_t i = 0; i < n_msgs; i++) {
        struct cai__tv *m = &messages.u.l->v[i], key, val;
        if ((rc = cai__tv_new_dict(&c, 2, 0, m)))
            goto done;
        key = cai__tv_str("role", 4);
        val = cai__tv_str(msgs[i].role, strlen(msgs[i].role));
        if ((rc = cai__tdict_set(&c, m->u.d, &key, &val, 0)))
            goto done;
        key = cai__tv_str("content", 7);
        if (msgs[i].content)
            val = cai__tv_str(msgs[i].content, strlen(msgs[i].content));
        else
            val.t = CAI__TV_NONE;
        if ((rc = cai__tdict_set(&c, m->u.d, &key, &val, 0)))
            goto done;
    }
    bos_token = bos_token ? bos_token : "";
    eos_token = eos_token ? eos_token : "";
    if ((rc = set_global(&c, globals, "messages", messages)) ||
        (rc = set_global(&c, globals, "add_generation_prompt",
                         cai__tv_bool(add_generation_prompt))) ||
        (rc = set_global(&c, globals, "bos_token", cai__tv_str(bos_token, strlen(bos_token)))) ||
        (rc = set_global(&c, globals, "eos_token", cai__tv_str(eos_token, strlen(eos_token)))) ||
        (rc = set_global(&c, globals, "raise_exception", func_value(CAI__TF_RAISE))) ||
        (rc = set_global(&c, globals, "namespace", func_value(CAI__TF_NAMESPACE))) ||
        (rc = set_global(&c, globals, "range", func_value(CAI__TF_RANGE))))
        goto done;
    rc = exec(&c, &f, t.root);
    if (rc > 0)
        rc = 0; /* break/continue cannot leave a loop: the parser checks */
    if (rc)
        goto done;
    *out = cai__malloc(buf.n + 1);
    if (!*out) {
        rc = cai__fail(err, CAI_ENOMEM, "chat template: out of memory");
        goto done;
    }
    if (buf.n)
        memcpy(*out, buf.p, buf.n);
    (*out)[buf.n] = '\0';
    *out_len = buf.n;
    if (err) { /* errors met on the way (folding attempts, lazy filters) were not the result */
        err->code = 0;
        err->msg[0] = '\0';
    }
done:
    cai__tmpl_arena_free(&arena);
    return rc;
}

int cai__chat_template_check(const char *tmpl, size_t tmpl_len, struct cai_error *err)
{
    struct cai__tmpl_arena arena = {.n_limit = (size_t)64 << 20};
    struct cai__tmpl t;
    int rc = cai__tmpl_parse(&t, tmpl, tmpl_len, &arena, err);
    cai__tmpl_arena_free(&arena);
    return rc;
}
