/* json.c: the strict JSON parser declared in json.h.
 *
 * One pass with an explicit stack of open containers (bounded by max_depth)
 * instead of recursion. Strings are decoded in place in a private copy of the
 * text: an escape never decodes to more bytes than it occupies, so the write
 * cursor never passes the read cursor. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define JSON_MAX_BYTES   ((size_t)1 << 31)
#define JSON_MAX_NUMBER  400 /* characters in one number literal */

struct cai_json {
    struct cai_json_node *nodes;
    uint32_t              n_nodes;
    char                 *text; /* private copy, NUL-terminated */
};

struct jp {
    struct cai_json  *j;
    char             *t;     /* the copy */
    size_t            n;
    size_t            pos;
    uint32_t          cap;
    const char       *name;
    struct cai_error *err;
};

static int jfail(struct jp *p, const char *what)
{
    return cai__fail(p->err, CAI_EFORMAT, "%s: JSON: %s at byte %zu", p->name, what, p->pos);
}

static void skip_ws(struct jp *p)
{
    while (p->pos < p->n) {
        char c = p->t[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int new_node(struct jp *p, uint8_t type, uint32_t *idx)
{
    if (p->j->n_nodes == p->cap) {
        uint32_t cap = p->cap ? p->cap : 64;
        if (cap > UINT32_MAX / 2)
            return jfail(p, "too many values");
        cap *= 2;
        struct cai_json_node *nn = cai__realloc(p->j->nodes, (size_t)cap * sizeof(*nn));
        if (!nn)
            return cai__fail(p->err, CAI_ENOMEM, "%s: JSON: out of memory", p->name);
        p->j->nodes = nn;
        p->cap = cap;
    }
    *idx = p->j->n_nodes++;
    struct cai_json_node *x = &p->j->nodes[*idx];
    memset(x, 0, sizeof(*x));
    x->type = type;
    x->offset = (uint32_t)p->pos;
    x->end = *idx + 1;
    return 0;
}

/* ---- strings --------------------------------------------------------------- */

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Parses the string whose opening quote is at p->pos into node idx. */
static int parse_string(struct jp *p, uint32_t idx)
{
    size_t r = p->pos + 1, w = r;
    char *t = p->t;
    for (;;) {
        if (r >= p->n) {
            p->pos = r;
            return jfail(p, "unterminated string");
        }
        unsigned char c = (unsigned char)t[r];
        if (c == '"')
            break;
        if (c < 0x20) {
            p->pos = r;
            return jfail(p, "control character in a string");
        }
        if (c == '\\') {
            if (r + 1 >= p->n) {
                p->pos = r;
                return jfail(p, "unterminated escape");
            }
            char e = t[r + 1];
            char rep = 0;
            switch (e) {
            case '"': rep = '"'; break;
            case '\\': rep = '\\'; break;
            case '/': rep = '/'; break;
            case 'b': rep = '\b'; break;
            case 'f': rep = '\f'; break;
            case 'n': rep = '\n'; break;
            case 'r': rep = '\r'; break;
            case 't': rep = '\t'; break;
            case 'u': break;
            default: p->pos = r; return jfail(p, "invalid escape");
            }
            if (e != 'u') {
                t[w++] = rep;
                r += 2;
                continue;
            }
            uint32_t cp, lo;
            if (p->n - r < 6 || hex4(t + r + 2, &cp)) {
                p->pos = r;
                return jfail(p, "invalid \\u escape");
            }
            r += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                p->pos = r - 6;
                return jfail(p, "unpaired low surrogate escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->n - r < 6 || t[r] != '\\' || t[r + 1] != 'u' || hex4(t + r + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF) {
                    p->pos = r - 6;
                    return jfail(p, "unpaired high surrogate escape");
                }
                r += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            w += put_utf8(t + w, cp);
            continue;
        }
        size_t len = utf8_len((const unsigned char *)t + r, p->n - r);
        if (!len) {
            p->pos = r;
            return jfail(p, "invalid UTF-8 in a string");
        }
        memmove(t + w, t + r, len);
        w += len;
        r += len;
    }
    struct cai_json_node *x = &p->j->nodes[idx];
    x->s = t + p->pos + 1;
    x->len = w - (p->pos + 1);
    t[w] = '\0'; /* w <= r, the closing quote: safe */
    p->pos = r + 1;
    return 0;
}

/* ---- numbers ------------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct jp *p, uint32_t idx)
{
    size_t s = p->pos, i = s;
    const char *t = p->t;
    bool neg = false, integer = true;
    if (i < p->n && t[i] == '-') {
        neg = true;
        i++;
    }
    if (i >= p->n || !is_digit(t[i]))
        return jfail(p, "invalid number");
    if (t[i] == '0') {
        i++;
    } else {
        while (i < p->n && is_digit(t[i]))
            i++;
    }
    size_t int_end = i;
    if (i < p->n && t[i] == '.') {
        integer = false;
        i++;
        if (i >= p->n || !is_digit(t[i])) {
            p->pos = i;
            return jfail(p, "invalid number (digits must follow '.')");
        }
        while (i < p->n && is_digit(t[i]))
            i++;
    }
    if (i < p->n && (t[i] == 'e' || t[i] == 'E')) {
        integer = false;
        i++;
        if (i < p->n && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= p->n || !is_digit(t[i])) {
            p->pos = i;
            return jfail(p, "invalid number (digits must follow the exponent)");
        }
        while (i < p->n && is_digit(t[i]))
            i++;
    }
    if (i - s > JSON_MAX_NUMBER)
        return jfail(p, "number literal too long");
    struct cai_json_node *x = &p->j->nodes[idx];
    char buf[JSON_MAX_NUMBER + 1];
    memcpy(buf, t + s, i - s);
    buf[i - s] = '\0';
    char *end;
    x->num = strtod(buf, &end);
    if (*end == '.') {
        /* The C library follows the host's LC_NUMERIC: retry with its point. */
        const char *dp = localeconv()->decimal_point;
        if (dp && strlen(dp) == 1) {
            char *q = strchr(buf, '.');
            *q = dp[0];
            x->num = strtod(buf, &end);
        }
    }
    if (integer) {
        uint64_t v = 0;
        bool ok = true;
        for (size_t k = s + (neg ? 1 : 0); k < int_end; k++) {
            unsigned d = (unsigned)(t[k] - '0');
            if (v > (UINT64_MAX - d) / 10) {
                ok = false;
                break;
            }
            v = v * 10 + d;
        }
        if (ok && (!neg || v <= (uint64_t)INT64_MAX + 1)) {
            x->is_int = true;
            x->neg = neg && v != 0;
            x->mag = v;
        }
    }
    p->pos = i;
    return 0;
}

/* ---- values ---------------------------------------------------------------------- */

static int literal(struct jp *p, const char *word, uint8_t type)
{
    size_t len = strlen(word);
    uint32_t idx;
    if (p->n - p->pos < len || memcmp(p->t + p->pos, word, len) != 0)
        return jfail(p, "invalid literal");
    int rc = new_node(p, type, &idx);
    p->pos += len;
    return rc;
}

int cai__json_parse(struct cai_json **out, const char *text, size_t n_bytes, int max_depth,
                    const char *name, struct cai_error *err)
{
    *out = NULL;
    if (!name)
        name = "<json>";
    if (max_depth <= 0)
        max_depth = CAI_JSON_DEFAULT_DEPTH;
    if (n_bytes >= JSON_MAX_BYTES)
        return cai__fail(err, CAI_EFORMAT, "%s: JSON document of %zu bytes is too large", name,
                         n_bytes);
    if (!text && n_bytes)
        return cai__fail(err, CAI_EINVAL, "%s: NULL text", name);
    struct cai_json *j = cai__calloc(1, sizeof(*j));
    uint32_t *stack = cai__malloc_array((size_t)max_depth, sizeof(*stack));
    char *copy = cai__malloc(n_bytes + 1);
    if (!j || !stack || !copy) {
        cai__free(j);
        cai__free(stack);
        cai__free(copy);
        return cai__fail(err, CAI_ENOMEM, "%s: JSON: out of memory", name);
    }
    if (n_bytes)
        memcpy(copy, text, n_bytes);
    copy[n_bytes] = '\0';
    j->text = copy;
    struct jp p = {.j = j, .t = copy, .n = n_bytes, .name = name, .err = err};
    int depth = 0, rc = 0;
    uint32_t idx;
    /* States: expecting a value; or, inside a container, what may follow. */
    enum { VALUE, KEY_OR_CLOSE, KEY, COMMA_OR_CLOSE } st = VALUE;
    for (;;) {
        skip_ws(&p);
        if (st == VALUE) {
            if (p.pos >= p.n) {
                rc = jfail(&p, "unexpected end of input (a value was expected)");
                goto out;
            }
            char c = p.t[p.pos];
            if (c == '{' || c == '[') {
                if (depth >= max_depth) {
                    rc = jfail(&p, "nesting too deep");
                    goto out;
                }
                if ((rc = new_node(&p, c == '{' ? CAI_JSON_OBJECT : CAI_JSON_ARRAY, &idx)) < 0)
                    goto out;
                stack[depth++] = idx;
                p.pos++;
                st = c == '{' ? KEY_OR_CLOSE : VALUE;
                if (c == '[') {
                    skip_ws(&p);
                    if (p.pos < p.n && p.t[p.pos] == ']') {
                        p.pos++;
                        depth--;
                        j->nodes[idx].end = j->n_nodes;
                        goto value_done;
                    }
                }
                continue;
            }
            if (c == '"') {
                if ((rc = new_node(&p, CAI_JSON_STRING, &idx)) < 0 ||
                    (rc = parse_string(&p, idx)) < 0)
                    goto out;
            } else if (c == '-' || is_digit(c)) {
                if ((rc = new_node(&p, CAI_JSON_NUMBER, &idx)) < 0 ||
                    (rc = parse_number(&p, idx)) < 0)
                    goto out;
            } else if (c == 't') {
                if ((rc = literal(&p, "true", CAI_JSON_TRUE)) < 0)
                    goto out;
            } else if (c == 'f') {
                if ((rc = literal(&p, "false", CAI_JSON_FALSE)) < 0)
                    goto out;
            } else if (c == 'n') {
                if ((rc = literal(&p, "null", CAI_JSON_NULL)) < 0)
                    goto out;
            } else {
                rc = jfail(&p, "unexpected character (a value was expected)");
                goto out;
            }
        value_done:
            if (depth == 0)
                break;
            j->nodes[stack[depth - 1]].n++;
            st = COMMA_OR_CLOSE;
            continue;
        }
        if (p.pos >= p.n) {
            rc = jfail(&p, "unexpected end of input (unclosed container)");
            goto out;
        }
        char c = p.t[p.pos];
        struct cai_json_node *top = &j->nodes[stack[depth - 1]];
        if (st == COMMA_OR_CLOSE) {
            if (c == ',') {
                p.pos++;
                st = top->type == CAI_JSON_OBJECT ? KEY : VALUE;
                continue;
            }
            if (c == (top->type == CAI_JSON_OBJECT ? '}' : ']')) {
                p.pos++;
                top->end = j->n_nodes;
                depth--;
                goto value_done;
            }
            rc = jfail(&p, top->type == CAI_JSON_OBJECT ? "expected ',' or '}'"
                                                        : "expected ',' or ']'");
            goto out;
        }
        /* KEY_OR_CLOSE or KEY */
        if (st == KEY_OR_CLOSE && c == '}') {
            p.pos++;
            top->end = j->n_nodes;
            depth--;
            goto value_done;
        }
        if (c != '"') {
            rc = jfail(&p, "expected a string key");
            goto out;
        }
        if ((rc = new_node(&p, CAI_JSON_STRING, &idx)) < 0 || (rc = parse_string(&p, idx)) < 0)
            goto out;
        skip_ws(&p);
        if (p.pos >= p.n || p.t[p.pos] != ':') {
            rc = jfail(&p, "expected ':' after a key");
            goto out;
        }
        p.pos++;
        /* The member is counted when its value completes (value_done counts
         * for the container); keys are not counted separately. */
        st = VALUE;
    }
    skip_ws(&p);
    if (p.pos != p.n)
        rc = jfail(&p, "trailing content after the document");
out:
    cai__free(stack);
    if (rc) {
        cai__json_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

void cai__json_free(struct cai_json *j)
{
    if (!j)
        return;
    cai__free(j->nodes);
    cai__free(j->text);
    cai__free(j);
}

/* ---- access ------------------------------------------------------------------------ */

const struct cai_json_node *cai__json_root(const struct cai_json *j)
{
    return j && j->n_nodes ? &j->nodes[0] : NULL;
}

uint32_t cai__json_n_nodes(const struct cai_json *j)
{
    return j ? j->n_nodes : 0;
}

const struct cai_json_node *cai__json_first(const struct cai_json *j,
                                            const struct cai_json_node *parent)
{
    if (!parent || (parent->type != CAI_JSON_ARRAY && parent->type != CAI_JSON_OBJECT) ||
        parent->n == 0)
        return NULL;
    return parent + 1 < j->nodes + j->n_nodes ? parent + 1 : NULL;
}

const struct cai_json_node *cai__json_next(const struct cai_json *j,
                                           const struct cai_json_node *parent,
                                           const struct cai_json_node *cur)
{
    if (!parent || !cur)
        return NULL;
    uint32_t nxt = parent->type == CAI_JSON_OBJECT ? cur[1].end : cur->end;
    return nxt < parent->end && nxt < j->n_nodes ? &j->nodes[nxt] : NULL;
}

const struct cai_json_node *cai__json_value(const struct cai_json_node *key)
{
    return key ? key + 1 : NULL;
}

const struct cai_json_node *cai__json_get(const struct cai_json *j,
                                          const struct cai_json_node *obj, const char *key)
{
    if (!obj || obj->type != CAI_JSON_OBJECT)
        return NULL;
    for (const struct cai_json_node *k = cai__json_first(j, obj); k; k = cai__json_next(j, obj, k))
        if (cai__json_str_eq(k, key))
            return k + 1;
    return NULL;
}

bool cai__json_is(const struct cai_json_node *n, int type)
{
    return n && n->type == type;
}

bool cai__json_str_eq(const struct cai_json_node *n, const char *s)
{
    size_t len = strlen(s);
    return n && n->type == CAI_JSON_STRING && n->len == len && memcmp(n->s, s, len) == 0;
}

bool cai__json_u64(const struct cai_json_node *n, uint64_t *out)
{
    if (!n || n->type != CAI_JSON_NUMBER || !n->is_int || n->neg)
        return false;
    *out = n->mag;
    return true;
}

bool cai__json_i64(const struct cai_json_node *n, int64_t *out)
{
    if (!n || n->type != CAI_JSON_NUMBER || !n->is_int)
        return false;
    if (n->neg) {
        *out = n->mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n->mag;
        return true;
    }
    if (n->mag > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)n->mag;
    return true;
}

bool cai__json_f64(const struct cai_json_node *n, double *out)
{
    if (!n || n->type != CAI_JSON_NUMBER)
        return false;
    *out = n->num;
    return true;
}

bool cai__json_bool(const struct cai_json_node *n, bool *out)
{
    if (!n || (n->type != CAI_JSON_TRUE && n->type != CAI_JSON_FALSE))
        return false;
    *out = n->type == CAI_JSON_TRUE;
    return true;
}
