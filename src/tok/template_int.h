/* template_int.h: internals of the chat-template interpreter, shared by
 * template_lex.c (arena, UTF-8, newline normalization, lexer),
 * template_parse.c (parser), template_eval.c (statements, expressions,
 * scopes, the render entry points), template_value.c (values as text and
 * JSON, comparison, arithmetic, string operations) and template_filter.c
 * (filters, tests, methods).
 *
 * Everything a parse or a render builds lives in one arena whose total is
 * bounded (max_memory_bytes) and which is freed in one go; nothing is freed
 * piecemeal, so error paths never leak. Strings are byte ranges (UTF-8, not
 * NUL-terminated) that point into the arena, the template, or the caller's
 * messages, all of which outlive the render. Lists and dicts are immutable
 * once built, except a namespace's attribute table. */
#ifndef CAI_TEMPLATE_INT_H
#define CAI_TEMPLATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "template.h"

/* Bounds that are not in struct cai__tmpl_limits. */
#define CAI__TMPL_MAX_SOURCE     ((size_t)4 << 20) /* template bytes */
#define CAI__TMPL_MAX_PARSE_NEST 200               /* nested expressions and blocks */
#define CAI__TMPL_MAX_EVAL_DEPTH 600               /* nested evaluations, macros included */
#define CAI__TMPL_MAX_VALUE_NEST 200               /* nested lists/dicts when printed or compared */

/* ---- arena ------------------------------------------------------------- */

struct cai__tmpl_chunk;

struct cai__tmpl_arena {
    struct cai__tmpl_chunk *head;
    size_t n_used;  /* bytes taken from the allocator */
    size_t n_limit; /* most bytes it may take */
    int rc;         /* CAI_ENOMEM or CAI_ERANGE after a failed allocation */
};

/* Zeroed, 16-byte-aligned memory; NULL (and a->rc set) past the limit or on OOM. */
void *cai__tmpl_alloc(struct cai__tmpl_arena *a, size_t n_bytes);
void cai__tmpl_arena_free(struct cai__tmpl_arena *a);

struct cai__tstr {
    const char *p;
    size_t n;
};

/* ---- values ------------------------------------------------------------ */

enum cai__tv_type {
    CAI__TV_UNDEF, /* Jinja's Undefined: falsy, prints as "", fails on use */
    CAI__TV_NONE,
    CAI__TV_BOOL,
    CAI__TV_INT,
    CAI__TV_FLOAT,
    CAI__TV_STR,
    CAI__TV_LIST, /* also tuples (list->tuple) */
    CAI__TV_DICT,
    CAI__TV_NS,   /* namespace(): a dict whose attributes `set` may change */
    CAI__TV_LOOP, /* the `loop` variable */
    CAI__TV_MACRO,
    CAI__TV_FUNC, /* a global function, u.fn is enum cai__tfunc */
};

enum cai__tfunc { CAI__TF_RAISE, CAI__TF_NAMESPACE, CAI__TF_RANGE };

struct cai__tlist;
struct cai__tdict;
struct cai__tloop;
struct cai__tmacro;

struct cai__tv {
    uint8_t t; /* enum cai__tv_type */
    union {
        bool b;
        int64_t i;
        double f;
        struct cai__tstr s;
        struct cai__tlist *l;
        struct cai__tdict *d; /* DICT and NS */
        struct cai__tloop *loop;
        struct cai__tmacro *macro;
        int fn;
    } u;
};

/* What Python object a list value stands for. Lists, tuples and ranges are
 * sequences; the others are what Jinja's filters and dict methods return:
 * generators (map, select, unique, items, ...) and reverse iterators are
 * always true and have no length, dict views have a length but no items by
 * index, and none of them is JSON. All iterate like a list. */
enum cai__tl_view {
    CAI__TL_LIST,   /* list, or tuple with `tuple` set */
    CAI__TL_GEN,    /* generator */
    CAI__TL_ITER,   /* reversed() iterator */
    CAI__TL_RANGE,  /* range(r_start, r_stop, r_step) */
    CAI__TL_ITEMS,  /* dict.items() */
    CAI__TL_KEYS,   /* dict.keys() */
    CAI__TL_VALUES, /* dict.values() */
};

struct cai__tlist {
    size_t n;
    struct cai__tv *v;
    bool tuple;
    uint8_t view;                    /* enum cai__tl_view */
    const char *fails;               /* GEN: the error that iterating it raises, or NULL */
    int64_t r_start, r_stop, r_step; /* RANGE, for repr() */
};

static inline bool cai__tl_is_seq(const struct cai__tlist *l)
{
    return l->view == CAI__TL_LIST || l->view == CAI__TL_RANGE;
}

/* Insertion-ordered; keys compare with Python equality. */
struct cai__tdict {
    size_t n, cap;
    struct cai__tv *k, *v;
};

struct cai__tloop {
    const struct cai__tv *items; /* [n] after the loop's `if` filter */
    size_t n, i;
};

struct cai__tscope;
struct cai__tnode;

struct cai__tmacro {
    const struct cai__tnode *def; /* the MACRO statement */
    struct cai__tscope *scope;    /* where it was defined */
};

/* ---- syntax tree ------------------------------------------------------- */

enum cai__tnode_kind {
    /* statements */
    CAI__TN_BODY,   /* kids: statements */
    CAI__TN_TEXT,   /* s: literal text */
    CAI__TN_OUTPUT, /* a: expression */
    CAI__TN_IF,     /* a: condition, b: then-BODY, c: else (BODY, IF for elif, or NULL) */
    CAI__TN_FOR, /* a: target, b: iterable, c: `if` filter or NULL, d: BODY, e: else-BODY or NULL */
    CAI__TN_SET, /* a: target (NAME, NSREF or TUPLE of NAMEs), b: value */
    CAI__TN_SETBLOCK, /* a: target, d: BODY, b: filter chain on a BLOCKVAL or NULL */
    CAI__TN_MACRO,    /* s: name, kids: parameter NAMEs (their b: default or NULL), d: BODY */
    CAI__TN_BREAK,
    CAI__TN_CONTINUE,
    CAI__TN_FILTERBLOCK, /* b: filter chain on a BLOCKVAL, d: BODY */
    CAI__TN_WITH,        /* kids: SET statements, d: BODY */
    /* expressions */
    CAI__TN_CONST,    /* val */
    CAI__TN_NAME,     /* s */
    CAI__TN_NSREF,    /* s: variable, s2: attribute (assignment target only) */
    CAI__TN_LIST,     /* kids */
    CAI__TN_TUPLE,    /* kids */
    CAI__TN_DICT,     /* kids: keys, kids2: values */
    CAI__TN_ATTR,     /* a: object, s: attribute */
    CAI__TN_INDEX,    /* a: object, b: index */
    CAI__TN_SLICE,    /* a: object, b, c, d: start, stop, step (each may be NULL) */
    CAI__TN_CALL,     /* a: callee, kids: positional, kids2: keyword values, kw: their names */
    CAI__TN_FILTER,   /* a: operand, s: name, arguments as CALL */
    CAI__TN_TEST,     /* a: operand, s: name, arguments as CALL; neg: `is not` */
    CAI__TN_UNARY,    /* op: CAI__TOP_NOT/NEG/POS, a */
    CAI__TN_BINARY,   /* op, a, b (AND and OR short-circuit and return an operand) */
    CAI__TN_CONCAT,   /* kids: operands of `~` */
    CAI__TN_COMPARE,  /* kids: n+1 operands, ops: n operators (a chain a < b < c) */
    CAI__TN_COND,     /* a if b else c (c may be NULL) */
    CAI__TN_BLOCKVAL, /* the rendered body of a filter block or block set */
};

enum cai__top {
    CAI__TOP_ADD,
    CAI__TOP_SUB,
    CAI__TOP_MUL,
    CAI__TOP_DIV,
    CAI__TOP_FLOORDIV,
    CAI__TOP_MOD,
    CAI__TOP_POW,
    CAI__TOP_AND,
    CAI__TOP_OR,
    CAI__TOP_NOT,
    CAI__TOP_NEG,
    CAI__TOP_POS,
    CAI__TOP_EQ,
    CAI__TOP_NE,
    CAI__TOP_LT,
    CAI__TOP_LE,
    CAI__TOP_GT,
    CAI__TOP_GE,
    CAI__TOP_IN,
    CAI__TOP_NOTIN,
};

struct cai__tnode {
    uint8_t kind; /* enum cai__tnode_kind */
    uint8_t op;   /* enum cai__top */
    bool neg;
    uint32_t off; /* byte offset in the normalized template */
    struct cai__tstr s, s2;
    struct cai__tnode *a, *b, *c, *d, *e;
    struct cai__tnode **kids, **kids2;
    uint32_t n_kids, n_kids2;
    const struct cai__tstr *kw; /* [n_kids2] */
    const uint8_t *ops;         /* [n_kids - 1] */
    struct cai__tv val;
};

/* A parsed template: the tree plus what maps its offsets back to the
 * caller's bytes (newline normalization shifts them). */
struct cai__tmpl {
    struct cai__tnode *root; /* BODY */
    const char *src;         /* normalized source */
    size_t n_src;
    const uint32_t *orig_off; /* [n_src + 1] or NULL when offsets did not move */
};

/* ---- tokens and the parser state (template_lex.c, template_parse.c) ---- */

enum cai__ttok_kind {
    CAI__TK_EOF,
    CAI__TK_TEXT,
    CAI__TK_VAR_BEGIN,
    CAI__TK_VAR_END,
    CAI__TK_BLOCK_BEGIN,
    CAI__TK_BLOCK_END,
    CAI__TK_NAME,
    CAI__TK_STRING,
    CAI__TK_INT,
    CAI__TK_FLOAT,
    CAI__TK_OP,
};

enum cai__ttok_op {
    CAI__TO_ADD,
    CAI__TO_SUB,
    CAI__TO_DIV,
    CAI__TO_FLOORDIV,
    CAI__TO_MUL,
    CAI__TO_MOD,
    CAI__TO_POW,
    CAI__TO_TILDE,
    CAI__TO_LBRACKET,
    CAI__TO_RBRACKET,
    CAI__TO_LPAREN,
    CAI__TO_RPAREN,
    CAI__TO_LBRACE,
    CAI__TO_RBRACE,
    CAI__TO_EQ,
    CAI__TO_NE,
    CAI__TO_GT,
    CAI__TO_GTEQ,
    CAI__TO_LT,
    CAI__TO_LTEQ,
    CAI__TO_ASSIGN,
    CAI__TO_DOT,
    CAI__TO_COLON,
    CAI__TO_PIPE,
    CAI__TO_COMMA,
    CAI__TO_SEMICOLON,
};

struct cai__ttok {
    uint8_t kind, op;
    uint32_t off;
    struct cai__tstr s; /* NAME: the identifier; STRING, TEXT: the value */
    int64_t i;
    double f;
};

struct cai__tparser {
    struct cai__tmpl_arena *a;
    const struct cai__tmpl *t;
    const char *src;
    size_t n_src;
    struct cai__ttok *toks;
    size_t n_toks, cap_toks, pos;
    int nest, loop_depth;
    int rc;
    struct cai_error *err;
};

/* Records the first error ("chat template: offset N: ...") and returns it. */
int cai__tparse_fail(struct cai__tparser *p, int code, uint32_t off, const char *fmt, ...)
    CAI__PRINTF(4, 5);
int cai__tparse_fail_mem(struct cai__tparser *p, uint32_t off);
/* Normalizes the template into t and fills p's token array. */
int cai__tmpl_lex(struct cai__tparser *p, struct cai__tmpl *t, const char *tmpl, size_t tmpl_len);

/* Parses tmpl into t, allocating from a. On failure returns CAI_EFORMAT or
 * CAI_ERANGE (CAI_ENOMEM) with "chat template: offset N: ..." in err. */
int cai__tmpl_parse(struct cai__tmpl *t, const char *tmpl, size_t tmpl_len,
                    struct cai__tmpl_arena *a, struct cai_error *err);

/* The offset in the caller's template of normalized offset `off`. */
size_t cai__tmpl_orig_off(const struct cai__tmpl *t, uint32_t off);

/* Whether a filter or test of this name exists (the parser rejects others,
 * as Jinja does at compile time). */
bool cai__tmpl_filter_known(struct cai__tstr name);
bool cai__tmpl_test_known(struct cai__tstr name);

/* ---- render context ---------------------------------------------------- */

/* A growable text buffer in the arena, bounded by max_output_bytes. */
struct cai__tbuf {
    char *p;
    size_t n, cap;
};

struct cai__tctx {
    struct cai__tmpl_arena *arena;
    const struct cai__tmpl *tmpl;
    struct cai__tmpl_limits lim;
    uint64_t n_steps, n_iters;
    int depth;
    bool folding; /* evaluating a constant {{ }} (Jinja folds it) */
    struct cai__tbuf *out;
    struct cai_error *err;
};

/* Positional and keyword arguments of a call, filter, test or method. */
struct cai__targs {
    size_t n_pos, n_kw;
    struct cai__tv *pos;
    const struct cai__tstr *kw_names;
    struct cai__tv *kw;
};

/* Records an error at node offset `off` and returns `code`. */
int cai__tmpl_fail(struct cai__tctx *c, int code, uint32_t off, const char *fmt, ...)
    CAI__PRINTF(4, 5);
/* The arena's failure as an error (out of memory or over the memory bound). */
int cai__tmpl_fail_mem(struct cai__tctx *c, uint32_t off);
int cai__tmpl_step(struct cai__tctx *c, uint32_t off);

int cai__tbuf_put(struct cai__tctx *c, struct cai__tbuf *b, const char *s, size_t n, uint32_t off);

/* Values. */
struct cai__tv cai__tv_str(const char *p, size_t n);
struct cai__tv cai__tv_int(int64_t i);
struct cai__tv cai__tv_bool(bool b);
bool cai__tv_truthy(const struct cai__tv *v);
const char *cai__tv_type_name(const struct cai__tv *v);
int cai__tv_new_list(struct cai__tctx *c, size_t n, bool tuple, uint32_t off, struct cai__tv *out);
int cai__tv_new_dict(struct cai__tctx *c, size_t cap, uint32_t off, struct cai__tv *out);
/* Sets d[key] = val (replacing an equal key). */
int cai__tdict_set(struct cai__tctx *c, struct cai__tdict *d, const struct cai__tv *key,
                   const struct cai__tv *val, uint32_t off);
/* d[key] or NULL. */
const struct cai__tv *cai__tdict_get(const struct cai__tdict *d, const struct cai__tv *key);
const struct cai__tv *cai__tdict_get_str(const struct cai__tdict *d, const char *p, size_t n);

/* Python str(): the text `{{ v }}` prints. */
int cai__tv_to_str(struct cai__tctx *c, const struct cai__tv *v, uint32_t off,
                   struct cai__tstr *out);
/* Appends str(v) or repr(v) to b. */
int cai__tv_write(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__tv *v, bool repr,
                  int nest, uint32_t off);
/* Python ==, and the order of < (error for types without one). */
int cai__tv_equal(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b,
                  uint32_t off, bool *eq);
int cai__tv_order(struct cai__tctx *c, const struct cai__tv *a, const struct cai__tv *b,
                  uint32_t off, int *cmp);
/* `needle in hay`. */
int cai__tv_contains(struct cai__tctx *c, const struct cai__tv *hay, const struct cai__tv *needle,
                     uint32_t off, bool *in);
/* The items a for loop (or list()) sees: list items, dict keys, string
 * characters; an undefined value is empty. */
int cai__tv_iterate(struct cai__tctx *c, const struct cai__tv *v, uint32_t off,
                    struct cai__tlist *out);
/* v[key] and v.name with Jinja's lookup rules (missing: undefined). */
int cai__tv_getitem(struct cai__tctx *c, const struct cai__tv *v, const struct cai__tv *key,
                    uint32_t off, struct cai__tv *out);
int cai__tv_getattr(struct cai__tctx *c, const struct cai__tv *v, struct cai__tstr name,
                    uint32_t off, struct cai__tv *out);

/* Filters, tests, methods (template_filter.c). *found is false when
 * `name` is not a method of v's type. */
int cai__tmpl_filter(struct cai__tctx *c, struct cai__tstr name, const struct cai__tv *v,
                     const struct cai__targs *args, uint32_t off, struct cai__tv *out);
int cai__tmpl_test(struct cai__tctx *c, struct cai__tstr name, const struct cai__tv *v,
                   const struct cai__targs *args, uint32_t off, bool *out);
int cai__tmpl_method(struct cai__tctx *c, const struct cai__tv *obj, struct cai__tstr name,
                     const struct cai__targs *args, uint32_t off, struct cai__tv *out, bool *found);

/* Binary arithmetic (+ - * / // % **) with Python semantics. */
int cai__tv_arith(struct cai__tctx *c, int op, const struct cai__tv *a, const struct cai__tv *b,
                  uint32_t off, struct cai__tv *out);

/* UTF-8 helpers: the code point at s[*i], advancing *i. An invalid byte is
 * taken alone and returned as 0xDC00 + byte (Python's surrogateescape), so
 * it never equals a real character. Also the number of code points. */
uint32_t cai__utf8_next(const char *s, size_t n, size_t *i);
size_t cai__utf8_count(const char *s, size_t n);
/* Python's str.isspace() for one code point. */
bool cai__tmpl_is_space(uint32_t cp);

/* ---- shared helpers (template_value.c) --------------------------------- */

static inline bool cai__tstr_eq(struct cai__tstr s, const char *lit)
{
    size_t m = strlen(lit);
    return s.n == m && memcmp(s.p, lit, m) == 0;
}

static inline bool cai__tv_is_num(const struct cai__tv *v)
{
    return v->t == CAI__TV_INT || v->t == CAI__TV_FLOAT || v->t == CAI__TV_BOOL;
}

static inline double cai__tv_num_f(const struct cai__tv *v)
{
    return v->t == CAI__TV_FLOAT ? v->u.f : v->t == CAI__TV_INT ? (double)v->u.i : (double)v->u.b;
}

static inline int64_t cai__tv_num_i(const struct cai__tv *v)
{
    return v->t == CAI__TV_INT ? v->u.i : v->t == CAI__TV_BOOL ? (int64_t)v->u.b : 0;
}

static inline struct cai__tv cai__tv_float(double f)
{
    struct cai__tv v = {.t = CAI__TV_FLOAT};
    v.u.f = f;
    return v;
}

static inline int cai__tbuf_puts(struct cai__tctx *c, struct cai__tbuf *b, const char *s,
                                 uint32_t off)
{
    return cai__tbuf_put(c, b, s, strlen(s), off);
}

static inline struct cai__tv cai__tbuf_value(const struct cai__tbuf *b)
{
    return cai__tv_str(b->p, b->n);
}

/* The character at s[*i] (advancing *i) and its bytes in *ch. */
static inline uint32_t cai__tstr_next_char(struct cai__tstr s, size_t *i, struct cai__tstr *ch)
{
    size_t start = *i;
    uint32_t cp = cai__utf8_next(s.p, s.n, i);
    ch->p = s.p + start;
    ch->n = *i - start;
    return cp;
}

int cai__tbuf_put_cp(struct cai__tctx *c, struct cai__tbuf *b, uint32_t cp, uint32_t off);
int cai__tmpl_overflow(struct cai__tctx *c, uint32_t off);

/* Simple case mapping (see template_value.c for its coverage). */
enum { CAI__CASE_UPPER, CAI__CASE_LOWER, CAI__CASE_CAPITALIZE, CAI__CASE_TITLE };
uint32_t cai__tmpl_upper(uint32_t cp);
uint32_t cai__tmpl_lower(uint32_t cp);
bool cai__tmpl_is_cased(uint32_t cp);
/* str.upper(), str.lower(), str.capitalize(), str.title() */
int cai__tmpl_map_case(struct cai__tctx *c, struct cai__tstr s, int mode, uint32_t off,
                       struct cai__tv *out);

/* json.dumps(v) with these options. */
struct cai__json_opts {
    bool indent;
    struct cai__tstr indent_str;
    struct cai__tstr item_sep, key_sep;
    bool sort_keys;
};
int cai__tmpl_json(struct cai__tctx *c, struct cai__tbuf *b, const struct cai__tv *v,
                   const struct cai__json_opts *o, int level, uint32_t off);

/* Python string operations. chars NULL: whitespace; sep NULL: runs of
 * whitespace; count/maxsplit < 0: no limit. */
bool cai__tstr_find(struct cai__tstr hay, struct cai__tstr needle, size_t from, size_t *at);
struct cai__tstr cai__tstr_strip(struct cai__tstr s, const struct cai__tstr *chars, bool left,
                                 bool right);
int cai__tmpl_replace(struct cai__tctx *c, struct cai__tstr s, struct cai__tstr old,
                      struct cai__tstr new_, int64_t count, uint32_t off, struct cai__tv *out);
int cai__tmpl_split(struct cai__tctx *c, struct cai__tstr s, const struct cai__tstr *sep,
                    int64_t maxsplit, uint32_t off, struct cai__tv *out);
/* s.startswith(a) / s.endswith(a), a a string or a tuple of strings. */
int cai__tmpl_affix_test(struct cai__tctx *c, struct cai__tstr s, const struct cai__tv *a, bool end,
                         uint32_t off, bool *res);
/* sep.join(str(item[attribute]) for item in items); attribute may be NULL. */
int cai__tmpl_join(struct cai__tctx *c, const struct cai__tlist *items, struct cai__tstr sep,
                   const struct cai__tv *attribute, uint32_t off, struct cai__tv *out);

#endif /* CAI_TEMPLATE_INT_H */
