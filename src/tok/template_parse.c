/* template_parse.c: tokens to a syntax tree.
 *
 * A recursive-descent parser with Jinja's grammar and operator precedence
 * (parse_condexpr down to parse_primary mirror jinja2/parser.py), then the
 * compile-time check Jinja makes for unknown filters and tests. Nesting is
 * bounded (CAI__TMPL_MAX_PARSE_NEST, counting every recursion and every
 * link of a left-associative chain), so hostile input cannot exhaust the
 * stack here or in the evaluator. */
#include <string.h>

#include "template_int.h"

/* ---- parser: helpers --------------------------------------------------- */

static struct cai__ttok *cur(struct cai__tparser *p)
{
    return &p->toks[p->pos];
}

static struct cai__ttok *look(struct cai__tparser *p)
{
    return &p->toks[p->pos + 1 < p->n_toks ? p->pos + 1 : p->pos];
}

static void advance(struct cai__tparser *p)
{
    if (p->pos + 1 < p->n_toks)
        p->pos++;
}

static bool str_is(struct cai__tstr s, const char *lit)
{
    size_t m = strlen(lit);
    return s.n == m && memcmp(s.p, lit, m) == 0;
}

static bool tok_is_name(const struct cai__ttok *tk, const char *name)
{
    return tk->kind == CAI__TK_NAME && str_is(tk->s, name);
}

static bool tok_is_op(const struct cai__ttok *tk, uint8_t op)
{
    return tk->kind == CAI__TK_OP && tk->op == op;
}

static const char *tok_desc(const struct cai__ttok *tk)
{
    switch (tk->kind) {
    case CAI__TK_EOF:
        return "end of template";
    case CAI__TK_TEXT:
        return "text";
    case CAI__TK_VAR_BEGIN:
        return "'{{'";
    case CAI__TK_VAR_END:
        return "'}}'";
    case CAI__TK_BLOCK_BEGIN:
        return "'{%'";
    case CAI__TK_BLOCK_END:
        return "'%}'";
    case CAI__TK_NAME:
        return "a name";
    case CAI__TK_STRING:
        return "a string";
    case CAI__TK_INT:
        return "an integer";
    case CAI__TK_FLOAT:
        return "a number";
    default:
        return "an operator";
    }
}

static int unexpected(struct cai__tparser *p, const char *expected)
{
    struct cai__ttok *tk = cur(p);
    if (tk->kind == CAI__TK_NAME)
        return cai__tparse_fail(p, CAI_EFORMAT, tk->off, "expected %s, got '%.*s'", expected,
                                (int)CAI_MIN(tk->s.n, 40), tk->s.p);
    return cai__tparse_fail(p, CAI_EFORMAT, tk->off, "expected %s, got %s", expected, tok_desc(tk));
}

static int expect_op(struct cai__tparser *p, uint8_t op, const char *what)
{
    if (!tok_is_op(cur(p), op))
        return unexpected(p, what);
    advance(p);
    return 0;
}

static int expect_kind(struct cai__tparser *p, uint8_t kind, const char *what)
{
    if (cur(p)->kind != kind)
        return unexpected(p, what);
    advance(p);
    return 0;
}

static int enter(struct cai__tparser *p, uint32_t off)
{
    if (++p->nest > CAI__TMPL_MAX_PARSE_NEST)
        return cai__tparse_fail(p, CAI_ERANGE, off, "nesting deeper than %d",
                                CAI__TMPL_MAX_PARSE_NEST);
    return 0;
}

static struct cai__tnode *new_node(struct cai__tparser *p, uint8_t kind, uint32_t off)
{
    struct cai__tnode *n = cai__tmpl_alloc(p->a, sizeof(*n));
    if (!n) {
        cai__tparse_fail_mem(p, off);
        return NULL;
    }
    n->kind = kind;
    n->off = off;
    return n;
}

/* A growable array of nodes (and names, for keyword arguments). */
struct nvec {
    struct cai__tnode **v;
    struct cai__tstr *names;
    uint32_t n, cap;
};

static int nvec_push(struct cai__tparser *p, struct nvec *vec, struct cai__tnode *node,
                     struct cai__tstr name, bool with_names)
{
    if (vec->n == vec->cap) {
        uint32_t cap = vec->cap ? vec->cap * 2 : 4;
        struct cai__tnode **nv = cai__tmpl_alloc(p->a, cap * sizeof(*nv));
        struct cai__tstr *nn = with_names ? cai__tmpl_alloc(p->a, cap * sizeof(*nn)) : NULL;
        if (!nv || (with_names && !nn))
            return cai__tparse_fail_mem(p, node ? node->off : 0);
        if (vec->n)
            memcpy(nv, vec->v, vec->n * sizeof(*nv));
        if (with_names && vec->n)
            memcpy(nn, vec->names, vec->n * sizeof(*nn));
        vec->v = nv;
        vec->names = nn;
        vec->cap = cap;
    }
    if (with_names)
        vec->names[vec->n] = name;
    vec->v[vec->n++] = node;
    return 0;
}

/* ---- parser: expressions ----------------------------------------------- */

static struct cai__tnode *parse_expression(struct cai__tparser *p, bool with_condexpr);
static struct cai__tnode *parse_tuple(struct cai__tparser *p, bool simplified, bool with_condexpr,
                                      const char *extra_end, bool explicit_parens);
static struct cai__tnode *parse_unary(struct cai__tparser *p, bool with_filter);
static struct cai__tnode *parse_primary(struct cai__tparser *p);
static struct cai__tnode *parse_postfix(struct cai__tparser *p, struct cai__tnode *node);
static struct cai__tnode *parse_filter(struct cai__tparser *p, struct cai__tnode *node,
                                       bool start_inline);

/* Arguments in parentheses, for calls, filters and tests. */
static int parse_call_args(struct cai__tparser *p, struct cai__tnode *n)
{
    struct nvec pos = {0}, kw = {0};
    if (expect_op(p, CAI__TO_LPAREN, "'('"))
        return p->rc;
    bool need_comma = false;
    while (!tok_is_op(cur(p), CAI__TO_RPAREN)) {
        if (need_comma) {
            if (expect_op(p, CAI__TO_COMMA, "',' or ')'"))
                return p->rc;
            if (tok_is_op(cur(p), CAI__TO_RPAREN))
                break;
        }
        if (tok_is_op(cur(p), CAI__TO_MUL) || tok_is_op(cur(p), CAI__TO_POW))
            return cai__tparse_fail(p, CAI_EFORMAT, cur(p)->off,
                                    "*args and **kwargs are not supported");
        if (cur(p)->kind == CAI__TK_NAME && tok_is_op(look(p), CAI__TO_ASSIGN)) {
            struct cai__tstr name = cur(p)->s;
            advance(p);
            advance(p);
            struct cai__tnode *v = parse_expression(p, true);
            if (!v || nvec_push(p, &kw, v, name, true))
                return p->rc;
        } else {
            if (kw.n)
                return cai__tparse_fail(p, CAI_EFORMAT, cur(p)->off,
                                        "positional argument after keyword argument");
            struct cai__tnode *v = parse_expression(p, true);
            if (!v || nvec_push(p, &pos, v, (struct cai__tstr){0}, false))
                return p->rc;
        }
        need_comma = true;
    }
    advance(p);
    n->kids = pos.v;
    n->n_kids = pos.n;
    n->kids2 = kw.v;
    n->n_kids2 = kw.n;
    n->kw = kw.names;
    return 0;
}

/* A name, possibly dotted (filter and test names). */
static int parse_dotted_name(struct cai__tparser *p, struct cai__tstr *out)
{
    if (cur(p)->kind != CAI__TK_NAME)
        return unexpected(p, "a name");
    const char *start = cur(p)->s.p;
    const char *end = start + cur(p)->s.n;
    advance(p);
    while (tok_is_op(cur(p), CAI__TO_DOT) && look(p)->kind == CAI__TK_NAME) {
        advance(p);
        end = cur(p)->s.p + cur(p)->s.n;
        advance(p);
    }
    out->p = start;
    out->n = (size_t)(end - start);
    return 0;
}

static struct cai__tnode *parse_filter(struct cai__tparser *p, struct cai__tnode *node,
                                       bool start_inline)
{
    int nest = p->nest;
    while (tok_is_op(cur(p), CAI__TO_PIPE) || start_inline) {
        if (enter(p, cur(p)->off))
            return NULL;
        if (!start_inline)
            advance(p);
        start_inline = false;
        uint32_t off = cur(p)->off;
        struct cai__tnode *f = new_node(p, CAI__TN_FILTER, off);
        if (!f || parse_dotted_name(p, &f->s))
            return NULL;
        if (tok_is_op(cur(p), CAI__TO_LPAREN) && parse_call_args(p, f))
            return NULL;
        f->a = node;
        node = f;
    }
    p->nest = nest;
    return node;
}

static struct cai__tnode *parse_test(struct cai__tparser *p, struct cai__tnode *node)
{
    advance(p); /* is */
    uint32_t off = cur(p)->off;
    struct cai__tnode *t = new_node(p, CAI__TN_TEST, off);
    if (!t)
        return NULL;
    if (tok_is_name(cur(p), "not")) {
        t->neg = true;
        advance(p);
        off = cur(p)->off;
    }
    if (parse_dotted_name(p, &t->s))
        return NULL;
    struct cai__ttok *tk = cur(p);
    if (tok_is_op(tk, CAI__TO_LPAREN)) {
        if (parse_call_args(p, t))
            return NULL;
    } else if ((tk->kind == CAI__TK_NAME || tk->kind == CAI__TK_STRING || tk->kind == CAI__TK_INT ||
                tk->kind == CAI__TK_FLOAT || tok_is_op(tk, CAI__TO_LBRACKET) ||
                tok_is_op(tk, CAI__TO_LBRACE)) &&
               !tok_is_name(tk, "else") && !tok_is_name(tk, "or") && !tok_is_name(tk, "and")) {
        if (tok_is_name(tk, "is")) {
            cai__tparse_fail(p, CAI_EFORMAT, tk->off, "cannot chain tests with 'is'");
            return NULL;
        }
        struct cai__tnode *arg = parse_primary(p);
        if (!arg || !(arg = parse_postfix(p, arg)))
            return NULL;
        t->kids = cai__tmpl_alloc(p->a, sizeof(*t->kids));
        if (!t->kids) {
            cai__tparse_fail_mem(p, off);
            return NULL;
        }
        t->kids[0] = arg;
        t->n_kids = 1;
    }
    t->a = node;
    return t;
}

static struct cai__tnode *parse_subscribed(struct cai__tparser *p)
{
    struct cai__tnode *parts[3] = {NULL, NULL, NULL};
    uint32_t off = cur(p)->off;
    if (tok_is_op(cur(p), CAI__TO_COLON)) {
        advance(p);
    } else {
        struct cai__tnode *e = parse_expression(p, true);
        if (!e || !tok_is_op(cur(p), CAI__TO_COLON))
            return e;
        advance(p);
        parts[0] = e;
    }
    if (!tok_is_op(cur(p), CAI__TO_COLON) && !tok_is_op(cur(p), CAI__TO_RBRACKET) &&
        !tok_is_op(cur(p), CAI__TO_COMMA)) {
        if (!(parts[1] = parse_expression(p, true)))
            return NULL;
    }
    if (tok_is_op(cur(p), CAI__TO_COLON)) {
        advance(p);
        if (!tok_is_op(cur(p), CAI__TO_RBRACKET) && !tok_is_op(cur(p), CAI__TO_COMMA)) {
            if (!(parts[2] = parse_expression(p, true)))
                return NULL;
        }
    }
    struct cai__tnode *s = new_node(p, CAI__TN_SLICE, off);
    if (!s)
        return NULL;
    s->b = parts[0];
    s->c = parts[1];
    s->d = parts[2];
    return s;
}

static struct cai__tnode *parse_subscript(struct cai__tparser *p, struct cai__tnode *node)
{
    struct cai__ttok *tk = cur(p);
    uint32_t off = tk->off;
    advance(p);
    if (tk->op == CAI__TO_DOT) {
        struct cai__ttok *attr = cur(p);
        if (attr->kind == CAI__TK_NAME) {
            struct cai__tnode *n = new_node(p, CAI__TN_ATTR, off);
            if (!n)
                return NULL;
            n->a = node;
            n->s = attr->s;
            advance(p);
            return n;
        }
        if (attr->kind == CAI__TK_INT) {
            struct cai__tnode *n = new_node(p, CAI__TN_INDEX, off);
            struct cai__tnode *k = new_node(p, CAI__TN_CONST, attr->off);
            if (!n || !k)
                return NULL;
            k->val = cai__tv_int(attr->i);
            n->a = node;
            n->b = k;
            advance(p);
            return n;
        }
        unexpected(p, "a name or number after '.'");
        return NULL;
    }
    struct nvec args = {0};
    while (!tok_is_op(cur(p), CAI__TO_RBRACKET)) {
        if (args.n && expect_op(p, CAI__TO_COMMA, "',' or ']'"))
            return NULL;
        if (tok_is_op(cur(p), CAI__TO_RBRACKET))
            break;
        struct cai__tnode *a = parse_subscribed(p);
        if (!a || nvec_push(p, &args, a, (struct cai__tstr){0}, false))
            return NULL;
    }
    advance(p);
    if (args.n == 0) {
        cai__tparse_fail(p, CAI_EFORMAT, off, "empty subscript");
        return NULL;
    }
    if (args.n == 1 && args.v[0]->kind == CAI__TN_SLICE) {
        args.v[0]->a = node;
        return args.v[0];
    }
    struct cai__tnode *n = new_node(p, CAI__TN_INDEX, off);
    if (!n)
        return NULL;
    n->a = node;
    if (args.n == 1) {
        n->b = args.v[0];
    } else {
        struct cai__tnode *t = new_node(p, CAI__TN_TUPLE, off);
        if (!t)
            return NULL;
        t->kids = args.v;
        t->n_kids = args.n;
        n->b = t;
    }
    return n;
}

static struct cai__tnode *parse_postfix(struct cai__tparser *p, struct cai__tnode *node)
{
    int nest = p->nest;
    while (node) {
        struct cai__ttok *tk = cur(p);
        if (enter(p, tk->off))
            return NULL;
        if (tok_is_op(tk, CAI__TO_DOT) || tok_is_op(tk, CAI__TO_LBRACKET)) {
            node = parse_subscript(p, node);
        } else if (tok_is_op(tk, CAI__TO_LPAREN)) {
            struct cai__tnode *c = new_node(p, CAI__TN_CALL, node->off);
            if (!c || parse_call_args(p, c))
                return NULL;
            c->a = node;
            node = c;
        } else {
            break;
        }
    }
    p->nest = nest;
    return node;
}

static struct cai__tnode *parse_filter_expr(struct cai__tparser *p, struct cai__tnode *node)
{
    int nest = p->nest;
    while (node) {
        struct cai__ttok *tk = cur(p);
        if (enter(p, tk->off))
            return NULL;
        if (tok_is_op(tk, CAI__TO_PIPE)) {
            node = parse_filter(p, node, false);
        } else if (tok_is_name(tk, "is")) {
            node = parse_test(p, node);
        } else if (tok_is_op(tk, CAI__TO_LPAREN)) {
            struct cai__tnode *c = new_node(p, CAI__TN_CALL, node->off);
            if (!c || parse_call_args(p, c))
                return NULL;
            c->a = node;
            node = c;
        } else {
            break;
        }
    }
    p->nest = nest;
    return node;
}

static struct cai__tnode *parse_list_or_dict(struct cai__tparser *p, bool dict)
{
    uint32_t off = cur(p)->off;
    struct nvec keys = {0}, vals = {0};
    uint8_t close = dict ? CAI__TO_RBRACE : CAI__TO_RBRACKET;
    advance(p);
    while (!tok_is_op(cur(p), close)) {
        if (keys.n && expect_op(p, CAI__TO_COMMA, dict ? "',' or '}'" : "',' or ']'"))
            return NULL;
        if (tok_is_op(cur(p), close))
            break;
        struct cai__tnode *k = parse_expression(p, true);
        if (!k || nvec_push(p, &keys, k, (struct cai__tstr){0}, false))
            return NULL;
        if (dict) {
            if (expect_op(p, CAI__TO_COLON, "':'"))
                return NULL;
            struct cai__tnode *v = parse_expression(p, true);
            if (!v || nvec_push(p, &vals, v, (struct cai__tstr){0}, false))
                return NULL;
        }
    }
    advance(p);
    struct cai__tnode *n = new_node(p, dict ? CAI__TN_DICT : CAI__TN_LIST, off);
    if (!n)
        return NULL;
    n->kids = keys.v;
    n->n_kids = keys.n;
    n->kids2 = vals.v;
    n->n_kids2 = vals.n;
    return n;
}

static struct cai__tnode *parse_primary(struct cai__tparser *p)
{
    struct cai__ttok *tk = cur(p);
    struct cai__tnode *n;
    if (enter(p, tk->off))
        return NULL;
    switch (tk->kind) {
    case CAI__TK_NAME:
        n = new_node(p, CAI__TN_CONST, tk->off);
        if (!n)
            break;
        if (str_is(tk->s, "true") || str_is(tk->s, "True")) {
            n->val = cai__tv_bool(true);
        } else if (str_is(tk->s, "false") || str_is(tk->s, "False")) {
            n->val = cai__tv_bool(false);
        } else if (str_is(tk->s, "none") || str_is(tk->s, "None")) {
            n->val.t = CAI__TV_NONE;
        } else {
            n->kind = CAI__TN_NAME;
            n->s = tk->s;
        }
        advance(p);
        break;
    case CAI__TK_STRING: {
        /* Adjacent literals concatenate. */
        size_t total = 0, k = p->pos;
        for (; p->toks[k].kind == CAI__TK_STRING; k++)
            total += p->toks[k].s.n;
        n = new_node(p, CAI__TN_CONST, tk->off);
        if (!n)
            break;
        if (k == p->pos + 1) {
            n->val = cai__tv_str(tk->s.p, tk->s.n);
            advance(p);
            break;
        }
        char *buf = cai__tmpl_alloc(p->a, total + 1);
        if (!buf) {
            cai__tparse_fail_mem(p, tk->off);
            n = NULL;
            break;
        }
        size_t j = 0;
        while (cur(p)->kind == CAI__TK_STRING) {
            memcpy(buf + j, cur(p)->s.p, cur(p)->s.n);
            j += cur(p)->s.n;
            advance(p);
        }
        n->val = cai__tv_str(buf, j);
        break;
    }
    case CAI__TK_INT:
    case CAI__TK_FLOAT:
        n = new_node(p, CAI__TN_CONST, tk->off);
        if (!n)
            break;
        if (tk->kind == CAI__TK_INT) {
            n->val = cai__tv_int(tk->i);
        } else {
            n->val.t = CAI__TV_FLOAT;
            n->val.u.f = tk->f;
        }
        advance(p);
        break;
    case CAI__TK_OP:
        if (tk->op == CAI__TO_LPAREN) {
            advance(p);
            n = parse_tuple(p, false, true, NULL, true);
            if (n && expect_op(p, CAI__TO_RPAREN, "')'"))
                n = NULL;
            break;
        }
        if (tk->op == CAI__TO_LBRACKET || tk->op == CAI__TO_LBRACE) {
            n = parse_list_or_dict(p, tk->op == CAI__TO_LBRACE);
            break;
        }
        /* fall through */
    default:
        unexpected(p, "an expression");
        n = NULL;
        break;
    }
    p->nest--;
    return n;
}

static struct cai__tnode *new_unary(struct cai__tparser *p, uint8_t op, uint32_t off,
                                    struct cai__tnode *a)
{
    if (!a)
        return NULL;
    struct cai__tnode *n = new_node(p, CAI__TN_UNARY, off);
    if (!n)
        return NULL;
    n->op = op;
    n->a = a;
    return n;
}

static struct cai__tnode *new_binary(struct cai__tparser *p, uint8_t op, uint32_t off,
                                     struct cai__tnode *a, struct cai__tnode *b)
{
    if (!a || !b)
        return NULL;
    struct cai__tnode *n = new_node(p, CAI__TN_BINARY, off);
    if (!n)
        return NULL;
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static struct cai__tnode *parse_unary(struct cai__tparser *p, bool with_filter)
{
    struct cai__ttok *tk = cur(p);
    struct cai__tnode *n;
    if (enter(p, tk->off))
        return NULL;
    if (tok_is_op(tk, CAI__TO_SUB) || tok_is_op(tk, CAI__TO_ADD)) {
        advance(p);
        n = new_unary(p, tk->op == CAI__TO_SUB ? CAI__TOP_NEG : CAI__TOP_POS, tk->off,
                      parse_unary(p, false));
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filter_expr(p, n);
    p->nest--;
    return n;
}

static struct cai__tnode *parse_pow(struct cai__tparser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_unary(p, true);
    while (left && tok_is_op(cur(p), CAI__TO_POW)) {
        uint32_t off = cur(p)->off;
        if (enter(p, off))
            return NULL;
        advance(p);
        left = new_binary(p, CAI__TOP_POW, off, left, parse_unary(p, true));
    }
    p->nest = nest;
    return left;
}

static struct cai__tnode *parse_math2(struct cai__tparser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_pow(p);
    while (left) {
        struct cai__ttok *tk = cur(p);
        uint8_t op;
        if (tok_is_op(tk, CAI__TO_MUL))
            op = CAI__TOP_MUL;
        else if (tok_is_op(tk, CAI__TO_DIV))
            op = CAI__TOP_DIV;
        else if (tok_is_op(tk, CAI__TO_FLOORDIV))
            op = CAI__TOP_FLOORDIV;
        else if (tok_is_op(tk, CAI__TO_MOD))
            op = CAI__TOP_MOD;
        else
            break;
        if (enter(p, tk->off))
            return NULL;
        advance(p);
        left = new_binary(p, op, tk->off, left, parse_pow(p));
    }
    p->nest = nest;
    return left;
}

static struct cai__tnode *parse_concat(struct cai__tparser *p)
{
    uint32_t off = cur(p)->off;
    struct cai__tnode *first = parse_math2(p);
    if (!first || !tok_is_op(cur(p), CAI__TO_TILDE))
        return first;
    struct nvec args = {0};
    if (nvec_push(p, &args, first, (struct cai__tstr){0}, false))
        return NULL;
    while (tok_is_op(cur(p), CAI__TO_TILDE)) {
        advance(p);
        struct cai__tnode *e = parse_math2(p);
        if (!e || nvec_push(p, &args, e, (struct cai__tstr){0}, false))
            return NULL;
    }
    struct cai__tnode *n = new_node(p, CAI__TN_CONCAT, off);
    if (!n)
        return NULL;
    n->kids = args.v;
    n->n_kids = args.n;
    return n;
}

static struct cai__tnode *parse_math1(struct cai__tparser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_concat(p);
    while (left && (tok_is_op(cur(p), CAI__TO_ADD) || tok_is_op(cur(p), CAI__TO_SUB))) {
        struct cai__ttok *tk = cur(p);
        if (enter(p, tk->off))
            return NULL;
        advance(p);
        left = new_binary(p, tk->op == CAI__TO_ADD ? CAI__TOP_ADD : CAI__TOP_SUB, tk->off, left,
                          parse_concat(p));
    }
    p->nest = nest;
    return left;
}

static struct cai__tnode *parse_compare(struct cai__tparser *p)
{
    uint32_t off = cur(p)->off;
    struct cai__tnode *first = parse_math1(p);
    if (!first)
        return NULL;
    struct nvec args = {0};
    uint8_t ops[64];
    for (;;) {
        struct cai__ttok *tk = cur(p);
        int op = -1;
        if (tk->kind == CAI__TK_OP) {
            switch (tk->op) {
            case CAI__TO_EQ:
                op = CAI__TOP_EQ;
                break;
            case CAI__TO_NE:
                op = CAI__TOP_NE;
                break;
            case CAI__TO_LT:
                op = CAI__TOP_LT;
                break;
            case CAI__TO_LTEQ:
                op = CAI__TOP_LE;
                break;
            case CAI__TO_GT:
                op = CAI__TOP_GT;
                break;
            case CAI__TO_GTEQ:
                op = CAI__TOP_GE;
                break;
            default:
                break;
            }
            if (op >= 0)
                advance(p);
        } else if (tok_is_name(tk, "in")) {
            op = CAI__TOP_IN;
            advance(p);
        } else if (tok_is_name(tk, "not") && tok_is_name(look(p), "in")) {
            op = CAI__TOP_NOTIN;
            advance(p);
            advance(p);
        }
        if (op < 0)
            break;
        if (args.n == 0 && nvec_push(p, &args, first, (struct cai__tstr){0}, false))
            return NULL;
        if (args.n > CAI_ARRAY_LEN(ops)) {
            cai__tparse_fail(p, CAI_ERANGE, tk->off, "comparison chain too long");
            return NULL;
        }
        ops[args.n - 1] = (uint8_t)op;
        struct cai__tnode *e = parse_math1(p);
        if (!e || nvec_push(p, &args, e, (struct cai__tstr){0}, false))
            return NULL;
    }
    if (args.n == 0)
        return first;
    struct cai__tnode *n = new_node(p, CAI__TN_COMPARE, off);
    uint8_t *o = cai__tmpl_alloc(p->a, args.n);
    if (!n || !o) {
        cai__tparse_fail_mem(p, off);
        return NULL;
    }
    memcpy(o, ops, args.n - 1);
    n->kids = args.v;
    n->n_kids = args.n;
    n->ops = o;
    return n;
}

static struct cai__tnode *parse_not(struct cai__tparser *p)
{
    struct cai__ttok *tk = cur(p);
    if (!tok_is_name(tk, "not"))
        return parse_compare(p);
    if (enter(p, tk->off))
        return NULL;
    advance(p);
    struct cai__tnode *n = new_unary(p, CAI__TOP_NOT, tk->off, parse_not(p));
    p->nest--;
    return n;
}

static struct cai__tnode *parse_and(struct cai__tparser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_not(p);
    while (left && tok_is_name(cur(p), "and")) {
        uint32_t off = cur(p)->off;
        if (enter(p, off))
            return NULL;
        advance(p);
        left = new_binary(p, CAI__TOP_AND, off, left, parse_not(p));
    }
    p->nest = nest;
    return left;
}

static struct cai__tnode *parse_or(struct cai__tparser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_and(p);
    while (left && tok_is_name(cur(p), "or")) {
        uint32_t off = cur(p)->off;
        if (enter(p, off))
            return NULL;
        advance(p);
        left = new_binary(p, CAI__TOP_OR, off, left, parse_and(p));
    }
    p->nest = nest;
    return left;
}

static struct cai__tnode *parse_condexpr(struct cai__tparser *p)
{
    struct cai__tnode *e1 = parse_or(p);
    while (e1 && tok_is_name(cur(p), "if")) {
        uint32_t off = cur(p)->off;
        advance(p);
        struct cai__tnode *n = new_node(p, CAI__TN_COND, off);
        if (!n || !(n->b = parse_or(p)))
            return NULL;
        n->a = e1;
        if (tok_is_name(cur(p), "else")) {
            advance(p);
            if (enter(p, off))
                return NULL;
            n->c = parse_condexpr(p);
            p->nest--;
            if (!n->c)
                return NULL;
        }
        e1 = n;
    }
    return e1;
}

static struct cai__tnode *parse_expression(struct cai__tparser *p, bool with_condexpr)
{
    if (enter(p, cur(p)->off))
        return NULL;
    struct cai__tnode *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    p->nest--;
    return n;
}

static bool is_tuple_end(struct cai__tparser *p, const char *extra_end)
{
    struct cai__ttok *tk = cur(p);
    return tk->kind == CAI__TK_VAR_END || tk->kind == CAI__TK_BLOCK_END ||
           tok_is_op(tk, CAI__TO_RPAREN) || (extra_end && tok_is_name(tk, extra_end));
}

static struct cai__tnode *parse_tuple(struct cai__tparser *p, bool simplified, bool with_condexpr,
                                      const char *extra_end, bool explicit_parens)
{
    uint32_t off = cur(p)->off;
    struct nvec args = {0};
    bool is_tuple = false;
    for (;;) {
        if (args.n && expect_op(p, CAI__TO_COMMA, "','"))
            return NULL;
        if (is_tuple_end(p, extra_end))
            break;
        struct cai__tnode *e = simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        if (!e || nvec_push(p, &args, e, (struct cai__tstr){0}, false))
            return NULL;
        if (tok_is_op(cur(p), CAI__TO_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (args.n)
            return args.v[0];
        if (!explicit_parens) {
            unexpected(p, "an expression");
            return NULL;
        }
    }
    struct cai__tnode *n = new_node(p, CAI__TN_TUPLE, off);
    if (!n)
        return NULL;
    n->kids = args.v;
    n->n_kids = args.n;
    return n;
}

/* ---- parser: statements ------------------------------------------------ */

static struct cai__tnode *subparse(struct cai__tparser *p, const char *const *ends);

/* Expects `{% <name>` was just consumed up to the name; consumes the name
 * and the closing %}. */
static int end_tag(struct cai__tparser *p)
{
    advance(p);
    return expect_kind(p, CAI__TK_BLOCK_END, "'%}'");
}

static bool can_assign(const struct cai__tnode *t)
{
    if (t->kind == CAI__TN_NAME || t->kind == CAI__TN_NSREF)
        return true;
    if (t->kind != CAI__TN_TUPLE || t->n_kids == 0)
        return false;
    for (uint32_t i = 0; i < t->n_kids; i++)
        if (t->kids[i]->kind != CAI__TN_NAME)
            return false;
    return true;
}

static struct cai__tnode *parse_assign_target(struct cai__tparser *p, bool with_namespace,
                                              const char *extra_end)
{
    struct cai__ttok *tk = cur(p);
    struct cai__tnode *t;
    if (with_namespace && tk->kind == CAI__TK_NAME && tok_is_op(look(p), CAI__TO_DOT)) {
        t = new_node(p, CAI__TN_NSREF, tk->off);
        if (!t)
            return NULL;
        t->s = tk->s;
        advance(p);
        advance(p);
        if (cur(p)->kind != CAI__TK_NAME) {
            unexpected(p, "an attribute name");
            return NULL;
        }
        t->s2 = cur(p)->s;
        advance(p);
    } else {
        t = parse_tuple(p, true, true, extra_end, false);
        if (!t)
            return NULL;
    }
    if (!can_assign(t)) {
        cai__tparse_fail(p, CAI_EFORMAT, t->off, "cannot assign to this expression");
        return NULL;
    }
    return t;
}

static struct cai__tnode *parse_if(struct cai__tparser *p, uint32_t off)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends_else[] = {"endif", NULL};
    struct cai__tnode *root = NULL, *tail = NULL;
    for (;;) {
        struct cai__tnode *n = new_node(p, CAI__TN_IF, off);
        if (!n || !(n->a = parse_tuple(p, false, false, NULL, false)) ||
            expect_kind(p, CAI__TK_BLOCK_END, "'%}'") || !(n->b = subparse(p, ends)))
            return NULL;
        if (tail)
            tail->c = n;
        else
            root = n;
        tail = n;
        if (tok_is_name(cur(p), "elif")) {
            off = cur(p)->off;
            advance(p);
            continue;
        }
        if (tok_is_name(cur(p), "else")) {
            if (end_tag(p) || !(n->c = subparse(p, ends_else)))
                return NULL;
        }
        return end_tag(p) ? NULL : root;
    }
}

static struct cai__tnode *parse_for(struct cai__tparser *p, uint32_t off)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const ends_else[] = {"endfor", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_FOR, off);
    if (!n || !(n->a = parse_assign_target(p, false, "in")))
        return NULL;
    if (n->a->kind == CAI__TN_NSREF) {
        cai__tparse_fail(p, CAI_EFORMAT, n->a->off,
                         "cannot assign to a namespace attribute in a for loop");
        return NULL;
    }
    if (!tok_is_name(cur(p), "in")) {
        unexpected(p, "'in'");
        return NULL;
    }
    advance(p);
    if (!(n->b = parse_tuple(p, false, false, "recursive", false)))
        return NULL;
    if (tok_is_name(cur(p), "if")) {
        advance(p);
        if (!(n->c = parse_expression(p, true)))
            return NULL;
    }
    if (tok_is_name(cur(p), "recursive")) {
        cai__tparse_fail(p, CAI_EFORMAT, cur(p)->off, "recursive loops are not supported");
        return NULL;
    }
    if (expect_kind(p, CAI__TK_BLOCK_END, "'%}'"))
        return NULL;
    p->loop_depth++;
    n->d = subparse(p, ends);
    p->loop_depth--;
    if (!n->d)
        return NULL;
    if (tok_is_name(cur(p), "else")) {
        if (end_tag(p) || !(n->e = subparse(p, ends_else)))
            return NULL;
    }
    return end_tag(p) ? NULL : n;
}

static struct cai__tnode *parse_set(struct cai__tparser *p, uint32_t off)
{
    static const char *const ends[] = {"endset", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_SET, off);
    if (!n || !(n->a = parse_assign_target(p, true, NULL)))
        return NULL;
    if (tok_is_op(cur(p), CAI__TO_ASSIGN)) {
        advance(p);
        if (!(n->b = parse_tuple(p, false, true, NULL, false)) ||
            expect_kind(p, CAI__TK_BLOCK_END, "'%}'"))
            return NULL;
        return n;
    }
    if (n->a->kind == CAI__TN_TUPLE) {
        unexpected(p, "'='");
        return NULL;
    }
    n->kind = CAI__TN_SETBLOCK;
    if (tok_is_op(cur(p), CAI__TO_PIPE)) {
        struct cai__tnode *hole = new_node(p, CAI__TN_BLOCKVAL, cur(p)->off);
        if (!hole || !(n->b = parse_filter(p, hole, false)))
            return NULL;
    }
    if (expect_kind(p, CAI__TK_BLOCK_END, "'=' or '%}'") || !(n->d = subparse(p, ends)))
        return NULL;
    return end_tag(p) ? NULL : n;
}

static struct cai__tnode *parse_macro(struct cai__tparser *p, uint32_t off)
{
    static const char *const ends[] = {"endmacro", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_MACRO, off);
    if (!n)
        return NULL;
    if (cur(p)->kind != CAI__TK_NAME) {
        unexpected(p, "a macro name");
        return NULL;
    }
    n->s = cur(p)->s;
    advance(p);
    struct nvec params = {0};
    if (expect_op(p, CAI__TO_LPAREN, "'('"))
        return NULL;
    bool defaults = false;
    while (!tok_is_op(cur(p), CAI__TO_RPAREN)) {
        if (params.n && expect_op(p, CAI__TO_COMMA, "',' or ')'"))
            return NULL;
        if (cur(p)->kind != CAI__TK_NAME) {
            unexpected(p, "a parameter name");
            return NULL;
        }
        struct cai__tnode *param = new_node(p, CAI__TN_NAME, cur(p)->off);
        if (!param)
            return NULL;
        param->s = cur(p)->s;
        advance(p);
        if (tok_is_op(cur(p), CAI__TO_ASSIGN)) {
            advance(p);
            if (!(param->b = parse_expression(p, true)))
                return NULL;
            defaults = true;
        } else if (defaults) {
            cai__tparse_fail(p, CAI_EFORMAT, param->off,
                             "non-default argument follows default argument");
            return NULL;
        }
        if (nvec_push(p, &params, param, (struct cai__tstr){0}, false))
            return NULL;
    }
    advance(p);
    if (expect_kind(p, CAI__TK_BLOCK_END, "'%}'"))
        return NULL;
    int saved = p->loop_depth;
    p->loop_depth = 0;
    n->d = subparse(p, ends);
    p->loop_depth = saved;
    if (!n->d)
        return NULL;
    n->kids = params.v;
    n->n_kids = params.n;
    return end_tag(p) ? NULL : n;
}

static struct cai__tnode *parse_with(struct cai__tparser *p, uint32_t off)
{
    static const char *const ends[] = {"endwith", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_WITH, off);
    struct nvec sets = {0};
    if (!n)
        return NULL;
    while (cur(p)->kind != CAI__TK_BLOCK_END) {
        if (sets.n && expect_op(p, CAI__TO_COMMA, "','"))
            return NULL;
        struct cai__tnode *s = new_node(p, CAI__TN_SET, cur(p)->off);
        if (!s || !(s->a = parse_assign_target(p, false, NULL)) ||
            expect_op(p, CAI__TO_ASSIGN, "'='") || !(s->b = parse_expression(p, true)) ||
            nvec_push(p, &sets, s, (struct cai__tstr){0}, false))
            return NULL;
    }
    advance(p);
    if (!(n->d = subparse(p, ends)))
        return NULL;
    n->kids = sets.v;
    n->n_kids = sets.n;
    return end_tag(p) ? NULL : n;
}

static struct cai__tnode *parse_statement(struct cai__tparser *p)
{
    struct cai__ttok *tk = cur(p);
    uint32_t off = tk->off;
    if (tk->kind != CAI__TK_NAME) {
        unexpected(p, "a statement name");
        return NULL;
    }
    if (enter(p, off))
        return NULL;
    struct cai__tstr name = tk->s;
    struct cai__tnode *n = NULL;
    advance(p);
    if (str_is(name, "if")) {
        n = parse_if(p, off);
    } else if (str_is(name, "for")) {
        n = parse_for(p, off);
    } else if (str_is(name, "set")) {
        n = parse_set(p, off);
    } else if (str_is(name, "macro")) {
        n = parse_macro(p, off);
    } else if (str_is(name, "with")) {
        n = parse_with(p, off);
    } else if (str_is(name, "break") || str_is(name, "continue")) {
        if (p->loop_depth == 0)
            cai__tparse_fail(p, CAI_EFORMAT, off, "'%.*s' outside a loop", (int)name.n, name.p);
        else if ((n = new_node(p, str_is(name, "break") ? CAI__TN_BREAK : CAI__TN_CONTINUE, off)) &&
                 expect_kind(p, CAI__TK_BLOCK_END, "'%}'"))
            n = NULL;
    } else if (str_is(name, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        struct cai__tnode *hole = new_node(p, CAI__TN_BLOCKVAL, off);
        n = new_node(p, CAI__TN_FILTERBLOCK, off);
        if (!hole || !n || !(n->b = parse_filter(p, hole, true)) ||
            expect_kind(p, CAI__TK_BLOCK_END, "'%}'") || !(n->d = subparse(p, ends)) || end_tag(p))
            n = NULL;
    } else if (str_is(name, "generation")) {
        /* Hugging Face's assistant-mask marker: renders its body in a
         * scope of its own (it is a call block there). */
        static const char *const ends[] = {"endgeneration", NULL};
        n = new_node(p, CAI__TN_WITH, off);
        if (!n || expect_kind(p, CAI__TK_BLOCK_END, "'%}'") || !(n->d = subparse(p, ends)) ||
            end_tag(p))
            n = NULL;
    } else {
        cai__tparse_fail(p, CAI_EFORMAT, off, "unknown or unsupported tag '%.*s'",
                         (int)CAI_MIN(name.n, 40), name.p);
    }
    p->nest--;
    return n;
}

/* Parses text and tags until `{% <one of ends>` (left with the name as the
 * current token) or, with ends NULL, the end of the template. */
static struct cai__tnode *subparse(struct cai__tparser *p, const char *const *ends)
{
    uint32_t off = cur(p)->off;
    struct nvec body = {0};
    for (;;) {
        struct cai__ttok *tk = cur(p);
        struct cai__tnode *n = NULL;
        if (tk->kind == CAI__TK_EOF) {
            if (ends) {
                cai__tparse_fail(p, CAI_EFORMAT, tk->off,
                                 "unexpected end of template, expected '%s'", ends[0]);
                return NULL;
            }
            break;
        }
        if (tk->kind == CAI__TK_TEXT) {
            if ((n = new_node(p, CAI__TN_TEXT, tk->off)))
                n->s = tk->s;
            advance(p);
        } else if (tk->kind == CAI__TK_VAR_BEGIN) {
            advance(p);
            n = new_node(p, CAI__TN_OUTPUT, tk->off);
            if (n && (!(n->a = parse_tuple(p, false, true, NULL, false)) ||
                      expect_kind(p, CAI__TK_VAR_END, "'}}'")))
                n = NULL;
        } else if (tk->kind == CAI__TK_BLOCK_BEGIN) {
            advance(p);
            if (ends && cur(p)->kind == CAI__TK_NAME)
                for (const char *const *e = ends; *e; e++)
                    if (str_is(cur(p)->s, *e))
                        goto done;
            n = parse_statement(p);
        } else {
            unexpected(p, "text or a tag");
        }
        if (!n || nvec_push(p, &body, n, (struct cai__tstr){0}, false))
            return NULL;
    }
done:;
    struct cai__tnode *b = new_node(p, CAI__TN_BODY, off);
    if (!b)
        return NULL;
    b->kids = body.v;
    b->n_kids = body.n;
    return b;
}

/* ---- compile-time name checks ------------------------------------------ */

/* Jinja rejects an unknown filter or test when it compiles the template,
 * except in a "soft" frame (an if statement's condition and branches, a
 * conditional expression), where the error waits until the branch runs.
 * Loop, macro, filter-block, set-block and with bodies are not soft. */
static int check_names(struct cai__tparser *p, const struct cai__tnode *n, bool soft)
{
    if (!n)
        return 0;
    switch (n->kind) {
    case CAI__TN_IF:
        for (; n && n->kind == CAI__TN_IF; n = n->c)
            if (check_names(p, n->a, true) || check_names(p, n->b, true))
                return p->rc;
        return check_names(p, n, true);
    case CAI__TN_COND:
        soft = true;
        break;
    case CAI__TN_FOR:
        return check_names(p, n->b, soft) || check_names(p, n->c, false) ||
                       check_names(p, n->d, false) || check_names(p, n->e, false)
                   ? p->rc
                   : 0;
    case CAI__TN_MACRO:
    case CAI__TN_SETBLOCK:
    case CAI__TN_FILTERBLOCK:
        soft = false;
        break;
    case CAI__TN_WITH:
        for (uint32_t i = 0; i < n->n_kids; i++)
            if (check_names(p, n->kids[i], soft))
                return p->rc;
        return check_names(p, n->d, false);
    case CAI__TN_FILTER:
        if (!soft && !cai__tmpl_filter_known(n->s))
            return cai__tparse_fail(p, CAI_EFORMAT, n->off, "no filter named '%.*s'",
                                    (int)CAI_MIN(n->s.n, 40), n->s.p);
        break;
    case CAI__TN_TEST:
        if (!soft && !cai__tmpl_test_known(n->s))
            return cai__tparse_fail(p, CAI_EFORMAT, n->off, "no test named '%.*s'",
                                    (int)CAI_MIN(n->s.n, 40), n->s.p);
        break;
    default:
        break;
    }
    const struct cai__tnode *kids[5] = {n->a, n->b, n->c, n->d, n->e};
    for (int i = 0; i < 5; i++)
        if (check_names(p, kids[i], soft))
            return p->rc;
    for (uint32_t i = 0; i < n->n_kids; i++)
        if (check_names(p, n->kids[i], soft))
            return p->rc;
    for (uint32_t i = 0; i < n->n_kids2; i++)
        if (check_names(p, n->kids2[i], soft))
            return p->rc;
    return 0;
}

int cai__tmpl_parse(struct cai__tmpl *t, const char *tmpl, size_t tmpl_len,
                    struct cai__tmpl_arena *a, struct cai_error *err)
{
    struct cai__tparser p = {.a = a, .t = NULL, .err = err};
    memset(t, 0, sizeof(*t));
    if (!tmpl && tmpl_len)
        return cai__fail(err, CAI_EINVAL, "chat template: NULL template");
    if (tmpl_len > CAI__TMPL_MAX_SOURCE)
        return cai__fail(err, CAI_ERANGE, "chat template: offset 0: template larger than %zu bytes",
                         CAI__TMPL_MAX_SOURCE);
    if (cai__tmpl_lex(&p, t, tmpl ? tmpl : "", tmpl_len))
        return p.rc;
    t->root = subparse(&p, NULL);
    if (!t->root)
        return p.rc ? p.rc : cai__tparse_fail_mem(&p, 0);
    return check_names(&p, t->root, false);
}
