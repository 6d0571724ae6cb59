/* template_parse.c: from template text to a syntax tree.
 *
 * Three passes, each following Jinja 3's own rules: newline normalization
 * (\r\n and \r become \n, one trailing newline is dropped), a lexer that
 * splits text from tags and applies whitespace control (trim_blocks,
 * lstrip_blocks and the -/+ markers exactly as Jinja's regular expressions
 * do), and a recursive-descent parser with Jinja's operator precedence.
 * Nesting is bounded, so hostile input cannot exhaust the stack; every error
 * names the byte offset in the caller's template. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

/* ---- arena ------------------------------------------------------------- */

struct cai__tmpl_chunk {
    struct cai__tmpl_chunk *next;
    size_t                  cap, used;
    /* data follows, 16-byte aligned */
};

#define CHUNK_HDR   ((sizeof(struct cai__tmpl_chunk) + 15) & ~(size_t)15)
#define CHUNK_BYTES ((size_t)64 << 10)

void *cai__tmpl_alloc(struct cai__tmpl_arena *a, size_t n_bytes)
{
    if (a->rc)
        return NULL;
    size_t need = (n_bytes + 15) & ~(size_t)15;
    if (need < n_bytes) {
        a->rc = CAI_ERANGE;
        return NULL;
    }
    if (need == 0)
        need = 16;
    struct cai__tmpl_chunk *ch = a->head;
    if (!ch || ch->cap - ch->used < need) {
        size_t cap = need > CHUNK_BYTES / 4 ? need : CHUNK_BYTES;
        size_t total;
        if (!cai__add_size(cap, CHUNK_HDR, &total) || total > a->n_limit - CAI_MIN(a->n_used, a->n_limit)) {
            a->rc = CAI_ERANGE;
            return NULL;
        }
        struct cai__tmpl_chunk *nc = cai__malloc(total);
        if (!nc) {
            a->rc = CAI_ENOMEM;
            return NULL;
        }
        a->n_used += total;
        nc->cap = cap;
        nc->used = 0;
        /* A big block gets its own chunk behind the current one, so the
         * current chunk's free space stays usable. */
        if (ch && cap != CHUNK_BYTES) {
            nc->next = ch->next;
            ch->next = nc;
        } else {
            nc->next = ch;
            a->head = nc;
        }
        ch = nc;
    }
    void *p = (char *)ch + CHUNK_HDR + ch->used;
    ch->used += need;
    memset(p, 0, need);
    return p;
}

void cai__tmpl_arena_free(struct cai__tmpl_arena *a)
{
    struct cai__tmpl_chunk *ch = a->head;
    while (ch) {
        struct cai__tmpl_chunk *next = ch->next;
        cai__free(ch);
        ch = next;
    }
    a->head = NULL;
    a->n_used = 0;
}

/* ---- characters -------------------------------------------------------- */

uint32_t cai__utf8_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    *i = k + 1;
    if (c < 0x80)
        return c;
    int len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || k + (size_t)len > n)
        return 0xdc00 | c;
    uint32_t cp = c & (0x7f >> len);
    for (int j = 1; j < len; j++) {
        if ((u[k + (size_t)j] & 0xc0) != 0x80)
            return 0xdc00 | c;
        cp = (cp << 6) | (u[k + (size_t)j] & 0x3f);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0xdc00 | c; /* overlong, out of range, or a surrogate */
    *i = k + (size_t)len;
    return cp;
}

size_t cai__utf8_count(const char *s, size_t n)
{
    size_t i = 0, count = 0;
    while (i < n) {
        cai__utf8_next(s, n, &i);
        count++;
    }
    return count;
}

bool cai__tmpl_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 ||
           cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Byte length of the whitespace character at s[i], or 0. */
static size_t space_at(const char *s, size_t n, size_t i)
{
    size_t j = i;
    if (i >= n)
        return 0;
    uint32_t cp = cai__utf8_next(s, n, &j);
    return cai__tmpl_is_space(cp) ? j - i : 0;
}

/* Byte length of the whitespace character that ends at s[end], or 0. */
static size_t space_before(const char *s, size_t start, size_t end)
{
    if (end <= start)
        return 0;
    size_t k = end - 1;
    while (k > start && ((unsigned char)s[k] & 0xc0) == 0x80 && end - k < 4)
        k--;
    size_t j = k;
    uint32_t cp = cai__utf8_next(s, end, &j);
    return j == end && cai__tmpl_is_space(cp) ? end - k : 0;
}

static size_t skip_spaces(const char *s, size_t n, size_t i)
{
    size_t k;
    while ((k = space_at(s, n, i)) > 0)
        i += k;
    return i;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident(char c)
{
    return is_ident_start(c) || is_digit(c);
}

/* ---- tokens ------------------------------------------------------------ */

enum tok_kind {
    K_EOF, K_TEXT, K_VAR_BEGIN, K_VAR_END, K_BLOCK_BEGIN, K_BLOCK_END,
    K_NAME, K_STRING, K_INT, K_FLOAT, K_OP,
};

enum tok_op {
    O_ADD, O_SUB, O_DIV, O_FLOORDIV, O_MUL, O_MOD, O_POW, O_TILDE, O_LBRACKET, O_RBRACKET,
    O_LPAREN, O_RPAREN, O_LBRACE, O_RBRACE, O_EQ, O_NE, O_GT, O_GTEQ, O_LT, O_LTEQ, O_ASSIGN,
    O_DOT, O_COLON, O_PIPE, O_COMMA, O_SEMICOLON,
};

static const struct {
    const char *text;
    uint8_t     op;
} op_table[] = {
    /* two-character operators first: the lexer takes the longest match */
    {"//", O_FLOORDIV}, {"**", O_POW}, {"==", O_EQ}, {"!=", O_NE}, {">=", O_GTEQ},
    {"<=", O_LTEQ},     {"+", O_ADD},  {"-", O_SUB}, {"/", O_DIV}, {"*", O_MUL},
    {"%", O_MOD},       {"~", O_TILDE}, {"[", O_LBRACKET}, {"]", O_RBRACKET}, {"(", O_LPAREN},
    {")", O_RPAREN},    {"{", O_LBRACE}, {"}", O_RBRACE}, {">", O_GT}, {"<", O_LT},
    {"=", O_ASSIGN},    {".", O_DOT},  {":", O_COLON}, {"|", O_PIPE}, {",", O_COMMA},
    {";", O_SEMICOLON},
};

struct tok {
    uint8_t          kind, op;
    uint32_t         off;
    struct cai__tstr s; /* NAME: the identifier; STRING, TEXT: the value */
    int64_t          i;
    double           f;
};

struct parser {
    struct cai__tmpl_arena *a;
    const struct cai__tmpl *t;
    const char             *src;
    size_t                  n_src;
    struct tok             *toks;
    size_t                  n_toks, cap_toks, pos;
    int                     nest, loop_depth;
    int                     rc;
    struct cai_error       *err;
};

static int perr(struct parser *p, int code, uint32_t off, const char *fmt, ...) CAI__PRINTF(4, 5);

static int perr(struct parser *p, int code, uint32_t off, const char *fmt, ...)
{
    if (p->rc)
        return p->rc; /* keep the first error */
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->rc = code;
    return cai__fail(p->err, code, "chat template: offset %zu: %s", cai__tmpl_orig_off(p->t, off),
                     msg);
}

static int perr_mem(struct parser *p, uint32_t off)
{
    return perr(p, p->a->rc ? p->a->rc : CAI_ENOMEM, off, "%s",
                p->a->rc == CAI_ERANGE ? "template needs more than the memory bound"
                                       : "out of memory");
}

size_t cai__tmpl_orig_off(const struct cai__tmpl *t, uint32_t off)
{
    if (!t || !t->orig_off)
        return off;
    return t->orig_off[off <= t->n_src ? off : t->n_src];
}

static struct tok *push_tok(struct parser *p, uint8_t kind, uint32_t off)
{
    if (p->n_toks == p->cap_toks) {
        size_t cap = p->cap_toks ? p->cap_toks * 2 : 256;
        struct tok *nt = cai__tmpl_alloc(p->a, cap * sizeof(*nt));
        if (!nt) {
            perr_mem(p, off);
            return NULL;
        }
        if (p->n_toks)
            memcpy(nt, p->toks, p->n_toks * sizeof(*nt));
        p->toks = nt;
        p->cap_toks = cap;
    }
    struct tok *tk = &p->toks[p->n_toks++];
    memset(tk, 0, sizeof(*tk));
    tk->kind = kind;
    tk->off = off;
    return tk;
}

/* ---- newline normalization --------------------------------------------- */

static int normalize(struct parser *p, struct cai__tmpl *t, const char *tmpl, size_t n)
{
    bool has_cr = memchr(tmpl, '\r', n) != NULL;
    char *dst = cai__tmpl_alloc(p->a, n + 1);
    uint32_t *map = has_cr ? cai__tmpl_alloc(p->a, (n + 1) * sizeof(uint32_t)) : NULL;
    if (!dst || (has_cr && !map))
        return perr_mem(p, 0);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (map)
            map[j] = (uint32_t)i;
        if (tmpl[i] == '\r') {
            dst[j++] = '\n';
            if (i + 1 < n && tmpl[i + 1] == '\n')
                i++;
        } else {
            dst[j++] = tmpl[i];
        }
    }
    if (map)
        map[j] = (uint32_t)n;
    /* Jinja splits the source into lines and joins them again; a final
     * empty line (the template ends with a newline) is dropped. */
    if (j > 0 && dst[j - 1] == '\n')
        j--;
    dst[j] = '\0';
    t->src = dst;
    t->n_src = j;
    t->orig_off = map;
    return 0;
}

/* ---- lexer ------------------------------------------------------------- */

/* The text before a tag, after the tag's whitespace control: `-` strips all
 * trailing whitespace; otherwise (lstrip_blocks, for statement, comment and
 * raw tags without `+`) spaces between the start of the line and the tag go. */
static int emit_text(struct parser *p, size_t start, size_t end, char sign, bool lstrip,
                     bool line_starting)
{
    const char *s = p->src;
    if (sign == '-') {
        size_t k;
        while (end > start && (k = space_before(s, start, end)) > 0)
            end -= k;
    } else if (sign != '+' && lstrip) {
        size_t l_pos = end;
        while (l_pos > start && s[l_pos - 1] != '\n')
            l_pos--;
        if ((l_pos > start || line_starting) && l_pos < end && skip_spaces(s, end, l_pos) == end)
            end = l_pos;
    }
    if (end > start) {
        struct tok *tk = push_tok(p, K_TEXT, (uint32_t)start);
        if (!tk)
            return p->rc;
        tk->s.p = s + start;
        tk->s.n = end - start;
    }
    return 0;
}

static bool starts(const char *s, size_t n, size_t i, const char *lit)
{
    size_t m = strlen(lit);
    return i <= n && n - i >= m && memcmp(s + i, lit, m) == 0;
}

/* Matches `{%(-|+)?\s*<word>\s*` then a statement end at s[i]; returns the
 * end of the match (0: no match), the sign in *sign. With `raw_begin` the end
 * is `-%}\s*` or `%}` (Jinja does not trim after {% raw %}); otherwise it is
 * `+%}`, `-%}\s*` or `%}\n?`. */
static size_t match_word_tag(const char *s, size_t n, size_t i, const char *word, bool raw_begin,
                             char *sign)
{
    if (!starts(s, n, i, "{%"))
        return 0;
    i += 2;
    *sign = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        *sign = s[i++];
    i = skip_spaces(s, n, i);
    if (!starts(s, n, i, word))
        return 0;
    i = skip_spaces(s, n, i + strlen(word));
    if (!raw_begin && starts(s, n, i, "+%}"))
        return i + 3;
    if (starts(s, n, i, "-%}"))
        return skip_spaces(s, n, i + 3);
    if (starts(s, n, i, "%}")) {
        i += 2;
        if (!raw_begin && i < n && s[i] == '\n')
            i++;
        return i;
    }
    return 0;
}

/* Decodes a string literal's body as Python's unicode-escape codec does
 * after Jinja's backslashreplace (so non-ASCII text survives unchanged). */
static int decode_string(struct parser *p, const char *s, size_t n, uint32_t off,
                         struct cai__tstr *out)
{
    /* Escapes never grow the text by more than 4x (a \ before a non-ASCII
     * character becomes \ plus up to 9 characters of its escape). */
    size_t cap;
    if (!cai__mul_size(n, 4, &cap) || !cai__add_size(cap, 16, &cap))
        return perr(p, CAI_ERANGE, off, "string literal too long");
    char *d = cai__tmpl_alloc(p->a, cap);
    if (!d)
        return perr_mem(p, off);
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\') {
            d[j++] = s[i++];
            continue;
        }
        if (i + 1 >= n)
            return perr(p, CAI_EFORMAT, off, "string literal ends with a backslash");
        unsigned char e = (unsigned char)s[i + 1];
        uint32_t cp = 0;
        int n_hex = 0;
        i += 2;
        switch (e) {
        case '\n': continue;
        case '\\': d[j++] = '\\'; continue;
        case '\'': d[j++] = '\''; continue;
        case '"': d[j++] = '"'; continue;
        case 'a': d[j++] = '\a'; continue;
        case 'b': d[j++] = '\b'; continue;
        case 'f': d[j++] = '\f'; continue;
        case 'n': d[j++] = '\n'; continue;
        case 'r': d[j++] = '\r'; continue;
        case 't': d[j++] = '\t'; continue;
        case 'v': d[j++] = '\v'; continue;
        case 'x': n_hex = 2; break;
        case 'u': n_hex = 4; break;
        case 'U': n_hex = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                cp = e - '0';
                for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                break;
            }
            d[j++] = '\\';
            if (e >= 0x80) {
                /* backslashreplace turned the character into \xhh, \uhhhh
                 * or \Uhhhhhhhh; the backslash before it escaped that one. */
                size_t k = i - 1;
                uint32_t u = cai__utf8_next(s, n, &k);
                int w = u < 0x100 ? 2 : u < 0x10000 ? 4 : 8;
                j += (size_t)snprintf(d + j, cap - j, "%c%0*x", w == 2 ? 'x' : w == 4 ? 'u' : 'U',
                                      w, (unsigned)u);
                i = k;
            } else {
                d[j++] = (char)e;
            }
            continue;
        }
        if (n_hex) {
            for (int k = 0; k < n_hex; k++, i++) {
                char h = i < n ? s[i] : 0;
                int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                      : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (v < 0)
                    return perr(p, CAI_EFORMAT, off, "truncated \\%c escape in string literal", e);
                cp = cp * 16 + (uint32_t)v;
            }
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return perr(p, CAI_EFORMAT, off, "invalid code point U+%X in string literal",
                        (unsigned)cp);
        if (cp < 0x80) {
            d[j++] = (char)cp;
        } else if (cp < 0x800) {
            d[j++] = (char)(0xc0 | (cp >> 6));
            d[j++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            d[j++] = (char)(0xe0 | (cp >> 12));
            d[j++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            d[j++] = (char)(0x80 | (cp & 0x3f));
        } else {
            d[j++] = (char)(0xf0 | (cp >> 18));
            d[j++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            d[j++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            d[j++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    out->p = d;
    out->n = j;
    return 0;
}

/* Digits with single underscores between them: returns the end, or i. */
static size_t match_digits(const char *s, size_t n, size_t i)
{
    if (i >= n || !is_digit(s[i]))
        return i;
    size_t k = i + 1;
    for (;;) {
        if (k < n && is_digit(s[k]))
            k++;
        else if (k + 1 < n && s[k] == '_' && is_digit(s[k + 1]))
            k += 2;
        else
            return k;
    }
}

/* Jinja's float_re: digits, then an exponent (with an optional fraction
 * before it) or a fraction. Not right after a dot. */
static size_t match_float(const char *s, size_t n, size_t i)
{
    if (i > 0 && s[i - 1] == '.')
        return 0;
    size_t k = match_digits(s, n, i);
    if (k == i)
        return 0;
    size_t frac = 0;
    if (k < n && s[k] == '.') {
        size_t m = match_digits(s, n, k + 1);
        if (m > k + 1)
            frac = m;
    }
    size_t e = frac ? frac : k;
    if (e < n && (s[e] == 'e' || s[e] == 'E')) {
        size_t m = e + 1;
        if (m < n && (s[m] == '+' || s[m] == '-'))
            m++;
        size_t d = match_digits(s, n, m);
        if (d > m)
            return d;
    }
    return frac;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return 99;
}

/* Jinja's integer_re: 0b/0o/0x with optional underscores, decimal, or zeros. */
static size_t match_int(const char *s, size_t n, size_t i, int64_t *val, bool *overflow)
{
    int base = 10;
    size_t k = i;
    *overflow = false;
    if (k + 1 < n && s[k] == '0' && s[k + 1] != '\0' && strchr("bBoOxX", s[k + 1])) {
        char b = (char)(s[k + 1] | 0x20);
        base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
        k += 2;
        size_t start = k;
        for (;;) {
            size_t m = k < n && s[k] == '_' ? k + 1 : k;
            if (m < n && hex_val(s[m]) < base)
                k = m + 1;
            else
                break;
        }
        if (k == start)
            base = 10, k = i; /* just "0" followed by a name */
        else
            goto convert;
    }
    if (k < n && s[k] == '0') {
        k++;
        for (;;) {
            size_t m = k < n && s[k] == '_' ? k + 1 : k;
            if (m < n && s[m] == '0')
                k = m + 1;
            else
                break;
        }
    } else {
        k = match_digits(s, n, k);
        if (k == i)
            return 0;
    }
convert:;
    uint64_t v = 0;
    size_t d = i + (base == 10 ? 0 : 2);
    for (; d < k; d++) {
        if (s[d] == '_')
            continue;
        unsigned dv = (unsigned)hex_val(s[d]);
        if (v > (UINT64_MAX - dv) / (unsigned)base)
            *overflow = true;
        v = v * (unsigned)base + dv;
    }
    if (v > INT64_MAX)
        *overflow = true;
    *val = (int64_t)v;
    return k;
}

/* Lexes the inside of a {{ }} or {% %} tag starting at *pos. */
static int lex_tag(struct parser *p, size_t *pos, bool block, uint32_t tag_off, bool *line_starting)
{
    const char *s = p->src;
    size_t n = p->n_src, i = *pos;
    char balance[64];
    size_t n_bal = 0;
    for (;;) {
        if (i >= n)
            return perr(p, CAI_EFORMAT, tag_off, "unexpected end of template: unclosed %s tag",
                        block ? "{%" : "{{");
        if (n_bal == 0) {
            size_t end = 0;
            if (block) {
                if (starts(s, n, i, "+%}"))
                    end = i + 3;
                else if (starts(s, n, i, "-%}"))
                    end = skip_spaces(s, n, i + 3);
                else if (starts(s, n, i, "%}"))
                    end = i + 2 + (i + 2 < n && s[i + 2] == '\n');
            } else {
                if (starts(s, n, i, "-}}"))
                    end = skip_spaces(s, n, i + 3);
                else if (starts(s, n, i, "}}"))
                    end = i + 2;
            }
            if (end) {
                if (!push_tok(p, block ? K_BLOCK_END : K_VAR_END, (uint32_t)i))
                    return p->rc;
                *line_starting = s[end - 1] == '\n';
                *pos = end;
                return 0;
            }
        }
        size_t k = space_at(s, n, i);
        if (k) {
            i += k;
            continue;
        }
        char c = s[i];
        size_t e;
        if ((e = match_float(s, n, i)) > 0) {
            char tmp[64];
            size_t m = 0;
            for (size_t q = i; q < e && m + 1 < sizeof(tmp); q++)
                if (s[q] != '_')
                    tmp[m++] = s[q];
            if (m + 1 >= sizeof(tmp))
                return perr(p, CAI_EFORMAT, (uint32_t)i, "float literal too long");
            tmp[m] = '\0';
            struct tok *tk = push_tok(p, K_FLOAT, (uint32_t)i);
            if (!tk)
                return p->rc;
            tk->f = strtod(tmp, NULL);
            i = e;
            continue;
        }
        if (is_digit(c)) {
            int64_t v = 0;
            bool overflow = false;
            e = match_int(s, n, i, &v, &overflow);
            if (overflow)
                return perr(p, CAI_EFORMAT, (uint32_t)i, "integer literal too large");
            struct tok *tk = push_tok(p, K_INT, (uint32_t)i);
            if (!tk)
                return p->rc;
            tk->i = v;
            i = e;
            continue;
        }
        if (is_ident_start(c)) {
            e = i + 1;
            while (e < n && is_ident(s[e]))
                e++;
            struct tok *tk = push_tok(p, K_NAME, (uint32_t)i);
            if (!tk)
                return p->rc;
            tk->s.p = s + i;
            tk->s.n = e - i;
            i = e;
            continue;
        }
        if (c == '\'' || c == '"') {
            e = i + 1;
            while (e < n && s[e] != c)
                e += s[e] == '\\' ? 2 : 1;
            if (e >= n)
                return perr(p, CAI_EFORMAT, (uint32_t)i, "unterminated string literal");
            struct tok *tk = push_tok(p, K_STRING, (uint32_t)i);
            if (!tk)
                return p->rc;
            if (decode_string(p, s + i + 1, e - i - 1, (uint32_t)i, &tk->s))
                return p->rc;
            i = e + 1;
            continue;
        }
        size_t o;
        for (o = 0; o < CAI_ARRAY_LEN(op_table); o++)
            if (starts(s, n, i, op_table[o].text))
                break;
        if (o == CAI_ARRAY_LEN(op_table))
            return perr(p, CAI_EFORMAT, (uint32_t)i, "unexpected character '%c'",
                        (unsigned char)c >= 0x20 && (unsigned char)c < 0x7f ? c : '?');
        uint8_t op = op_table[o].op;
        if (op == O_LBRACE || op == O_LPAREN || op == O_LBRACKET) {
            if (n_bal == sizeof(balance))
                return perr(p, CAI_ERANGE, (uint32_t)i, "brackets nested too deeply");
            balance[n_bal++] = op == O_LBRACE ? '}' : op == O_LPAREN ? ')' : ']';
        } else if (op == O_RBRACE || op == O_RPAREN || op == O_RBRACKET) {
            if (n_bal == 0 || balance[n_bal - 1] != c)
                return perr(p, CAI_EFORMAT, (uint32_t)i, "unexpected '%c'", c);
            n_bal--;
        }
        struct tok *tk = push_tok(p, K_OP, (uint32_t)i);
        if (!tk)
            return p->rc;
        tk->op = op;
        i += strlen(op_table[o].text);
    }
}

static int lex(struct parser *p)
{
    const char *s = p->src;
    size_t n = p->n_src, pos = 0;
    bool line_starting = true;
    while (pos < n) {
        size_t q = pos;
        while (q + 1 < n && !(s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')))
            q++;
        if (q + 1 >= n) {
            if (emit_text(p, pos, n, 0, false, false))
                return p->rc;
            break;
        }
        char kind = s[q + 1];
        char sign = q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+') ? s[q + 2] : 0;
        char raw_sign;
        size_t raw_end = kind == '%' ? match_word_tag(s, n, q, "raw", true, &raw_sign) : 0;
        if (emit_text(p, pos, q, sign, kind != '{', line_starting))
            return p->rc;
        if (raw_end) {
            /* Everything up to {% endraw %} is text. */
            bool ls = s[raw_end - 1] == '\n';
            size_t i = raw_end, end = 0;
            char end_sign = 0;
            for (; i < n; i++)
                if (s[i] == '{' && (end = match_word_tag(s, n, i, "endraw", false, &end_sign)) > 0)
                    break;
            if (!end)
                return perr(p, CAI_EFORMAT, (uint32_t)q, "missing end of raw directive");
            if (emit_text(p, raw_end, i, end_sign, true, ls))
                return p->rc;
            line_starting = s[end - 1] == '\n';
            pos = end;
            continue;
        }
        size_t body = q + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t i = body, end = 0;
            for (; i < n; i++) {
                if (starts(s, n, i, "+#}")) {
                    end = i + 3;
                } else if (starts(s, n, i, "-#}")) {
                    end = skip_spaces(s, n, i + 3);
                } else if (starts(s, n, i, "#}")) {
                    end = i + 2 + (i + 2 < n && s[i + 2] == '\n');
                }
                if (end)
                    break;
            }
            if (!end)
                return perr(p, CAI_EFORMAT, (uint32_t)q, "missing end of comment tag");
            line_starting = s[end - 1] == '\n';
            pos = end;
            continue;
        }
        bool block = kind == '%';
        if (!push_tok(p, block ? K_BLOCK_BEGIN : K_VAR_BEGIN, (uint32_t)q))
            return p->rc;
        pos = body;
        if (lex_tag(p, &pos, block, (uint32_t)q, &line_starting))
            return p->rc;
    }
    return push_tok(p, K_EOF, (uint32_t)n) ? 0 : p->rc;
}

/* ---- parser: helpers --------------------------------------------------- */

static struct tok *cur(struct parser *p)
{
    return &p->toks[p->pos];
}

static struct tok *look(struct parser *p)
{
    return &p->toks[p->pos + 1 < p->n_toks ? p->pos + 1 : p->pos];
}

static void advance(struct parser *p)
{
    if (p->pos + 1 < p->n_toks)
        p->pos++;
}

static bool str_is(struct cai__tstr s, const char *lit)
{
    size_t m = strlen(lit);
    return s.n == m && memcmp(s.p, lit, m) == 0;
}

static bool tok_is_name(const struct tok *tk, const char *name)
{
    return tk->kind == K_NAME && str_is(tk->s, name);
}

static bool tok_is_op(const struct tok *tk, uint8_t op)
{
    return tk->kind == K_OP && tk->op == op;
}

static const char *tok_desc(const struct tok *tk)
{
    switch (tk->kind) {
    case K_EOF: return "end of template";
    case K_TEXT: return "text";
    case K_VAR_BEGIN: return "'{{'";
    case K_VAR_END: return "'}}'";
    case K_BLOCK_BEGIN: return "'{%'";
    case K_BLOCK_END: return "'%}'";
    case K_NAME: return "a name";
    case K_STRING: return "a string";
    case K_INT: return "an integer";
    case K_FLOAT: return "a number";
    default: return "an operator";
    }
}

static int unexpected(struct parser *p, const char *expected)
{
    struct tok *tk = cur(p);
    if (tk->kind == K_NAME)
        return perr(p, CAI_EFORMAT, tk->off, "expected %s, got '%.*s'", expected,
                    (int)CAI_MIN(tk->s.n, 40), tk->s.p);
    return perr(p, CAI_EFORMAT, tk->off, "expected %s, got %s", expected, tok_desc(tk));
}

static int expect_op(struct parser *p, uint8_t op, const char *what)
{
    if (!tok_is_op(cur(p), op))
        return unexpected(p, what);
    advance(p);
    return 0;
}

static int expect_kind(struct parser *p, uint8_t kind, const char *what)
{
    if (cur(p)->kind != kind)
        return unexpected(p, what);
    advance(p);
    return 0;
}

static int enter(struct parser *p, uint32_t off)
{
    if (++p->nest > CAI__TMPL_MAX_PARSE_NEST)
        return perr(p, CAI_ERANGE, off, "nesting deeper than %d", CAI__TMPL_MAX_PARSE_NEST);
    return 0;
}

static struct cai__tnode *new_node(struct parser *p, uint8_t kind, uint32_t off)
{
    struct cai__tnode *n = cai__tmpl_alloc(p->a, sizeof(*n));
    if (!n) {
        perr_mem(p, off);
        return NULL;
    }
    n->kind = kind;
    n->off = off;
    return n;
}

/* A growable array of nodes (and names, for keyword arguments). */
struct nvec {
    struct cai__tnode **v;
    struct cai__tstr   *names;
    uint32_t            n, cap;
};

static int nvec_push(struct parser *p, struct nvec *vec, struct cai__tnode *node,
                     struct cai__tstr name, bool with_names)
{
    if (vec->n == vec->cap) {
        uint32_t cap = vec->cap ? vec->cap * 2 : 4;
        struct cai__tnode **nv = cai__tmpl_alloc(p->a, cap * sizeof(*nv));
        struct cai__tstr *nn = with_names ? cai__tmpl_alloc(p->a, cap * sizeof(*nn)) : NULL;
        if (!nv || (with_names && !nn))
            return perr_mem(p, node ? node->off : 0);
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

static struct cai__tnode *parse_expression(struct parser *p, bool with_condexpr);
static struct cai__tnode *parse_tuple(struct parser *p, bool simplified, bool with_condexpr,
                                      const char *extra_end, bool explicit_parens);
static struct cai__tnode *parse_unary(struct parser *p, bool with_filter);
static struct cai__tnode *parse_primary(struct parser *p);
static struct cai__tnode *parse_postfix(struct parser *p, struct cai__tnode *node);
static struct cai__tnode *parse_filter(struct parser *p, struct cai__tnode *node,
                                       bool start_inline);

/* Arguments in parentheses, for calls, filters and tests. */
static int parse_call_args(struct parser *p, struct cai__tnode *n)
{
    struct nvec pos = {0}, kw = {0};
    if (expect_op(p, O_LPAREN, "'('"))
        return p->rc;
    bool need_comma = false;
    while (!tok_is_op(cur(p), O_RPAREN)) {
        if (need_comma) {
            if (expect_op(p, O_COMMA, "',' or ')'"))
                return p->rc;
            if (tok_is_op(cur(p), O_RPAREN))
                break;
        }
        if (tok_is_op(cur(p), O_MUL) || tok_is_op(cur(p), O_POW))
            return perr(p, CAI_EFORMAT, cur(p)->off, "*args and **kwargs are not supported");
        if (cur(p)->kind == K_NAME && tok_is_op(look(p), O_ASSIGN)) {
            struct cai__tstr name = cur(p)->s;
            advance(p);
            advance(p);
            struct cai__tnode *v = parse_expression(p, true);
            if (!v || nvec_push(p, &kw, v, name, true))
                return p->rc;
        } else {
            if (kw.n)
                return perr(p, CAI_EFORMAT, cur(p)->off,
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
static int parse_dotted_name(struct parser *p, struct cai__tstr *out)
{
    if (cur(p)->kind != K_NAME)
        return unexpected(p, "a name");
    const char *start = cur(p)->s.p;
    const char *end = start + cur(p)->s.n;
    advance(p);
    while (tok_is_op(cur(p), O_DOT) && look(p)->kind == K_NAME) {
        advance(p);
        end = cur(p)->s.p + cur(p)->s.n;
        advance(p);
    }
    out->p = start;
    out->n = (size_t)(end - start);
    return 0;
}

static struct cai__tnode *parse_filter(struct parser *p, struct cai__tnode *node,
                                       bool start_inline)
{
    int nest = p->nest;
    while (tok_is_op(cur(p), O_PIPE) || start_inline) {
        if (enter(p, cur(p)->off))
            return NULL;
        if (!start_inline)
            advance(p);
        start_inline = false;
        uint32_t off = cur(p)->off;
        struct cai__tnode *f = new_node(p, CAI__TN_FILTER, off);
        if (!f || parse_dotted_name(p, &f->s))
            return NULL;
        if (tok_is_op(cur(p), O_LPAREN) && parse_call_args(p, f))
            return NULL;
        f->a = node;
        node = f;
    }
    p->nest = nest;
    return node;
}

static struct cai__tnode *parse_test(struct parser *p, struct cai__tnode *node)
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
    struct tok *tk = cur(p);
    if (tok_is_op(tk, O_LPAREN)) {
        if (parse_call_args(p, t))
            return NULL;
    } else if ((tk->kind == K_NAME || tk->kind == K_STRING || tk->kind == K_INT ||
                tk->kind == K_FLOAT || tok_is_op(tk, O_LBRACKET) || tok_is_op(tk, O_LBRACE)) &&
               !tok_is_name(tk, "else") && !tok_is_name(tk, "or") && !tok_is_name(tk, "and")) {
        if (tok_is_name(tk, "is")) {
            perr(p, CAI_EFORMAT, tk->off, "cannot chain tests with 'is'");
            return NULL;
        }
        struct cai__tnode *arg = parse_primary(p);
        if (!arg || !(arg = parse_postfix(p, arg)))
            return NULL;
        t->kids = cai__tmpl_alloc(p->a, sizeof(*t->kids));
        if (!t->kids) {
            perr_mem(p, off);
            return NULL;
        }
        t->kids[0] = arg;
        t->n_kids = 1;
    }
    t->a = node;
    return t;
}

static struct cai__tnode *parse_subscribed(struct parser *p)
{
    struct cai__tnode *parts[3] = {NULL, NULL, NULL};
    uint32_t off = cur(p)->off;
    if (tok_is_op(cur(p), O_COLON)) {
        advance(p);
    } else {
        struct cai__tnode *e = parse_expression(p, true);
        if (!e || !tok_is_op(cur(p), O_COLON))
            return e;
        advance(p);
        parts[0] = e;
    }
    if (!tok_is_op(cur(p), O_COLON) && !tok_is_op(cur(p), O_RBRACKET) &&
        !tok_is_op(cur(p), O_COMMA)) {
        if (!(parts[1] = parse_expression(p, true)))
            return NULL;
    }
    if (tok_is_op(cur(p), O_COLON)) {
        advance(p);
        if (!tok_is_op(cur(p), O_RBRACKET) && !tok_is_op(cur(p), O_COMMA)) {
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

static struct cai__tnode *parse_subscript(struct parser *p, struct cai__tnode *node)
{
    struct tok *tk = cur(p);
    uint32_t off = tk->off;
    advance(p);
    if (tk->op == O_DOT) {
        struct tok *attr = cur(p);
        if (attr->kind == K_NAME) {
            struct cai__tnode *n = new_node(p, CAI__TN_ATTR, off);
            if (!n)
                return NULL;
            n->a = node;
            n->s = attr->s;
            advance(p);
            return n;
        }
        if (attr->kind == K_INT) {
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
    while (!tok_is_op(cur(p), O_RBRACKET)) {
        if (args.n && expect_op(p, O_COMMA, "',' or ']'"))
            return NULL;
        if (tok_is_op(cur(p), O_RBRACKET))
            break;
        struct cai__tnode *a = parse_subscribed(p);
        if (!a || nvec_push(p, &args, a, (struct cai__tstr){0}, false))
            return NULL;
    }
    advance(p);
    if (args.n == 0) {
        perr(p, CAI_EFORMAT, off, "empty subscript");
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

static struct cai__tnode *parse_postfix(struct parser *p, struct cai__tnode *node)
{
    int nest = p->nest;
    while (node) {
        struct tok *tk = cur(p);
        if (enter(p, tk->off))
            return NULL;
        if (tok_is_op(tk, O_DOT) || tok_is_op(tk, O_LBRACKET)) {
            node = parse_subscript(p, node);
        } else if (tok_is_op(tk, O_LPAREN)) {
            struct cai__tnode *c = new_node(p, CAI__TN_CALL, tk->off);
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

static struct cai__tnode *parse_filter_expr(struct parser *p, struct cai__tnode *node)
{
    int nest = p->nest;
    while (node) {
        struct tok *tk = cur(p);
        if (enter(p, tk->off))
            return NULL;
        if (tok_is_op(tk, O_PIPE)) {
            node = parse_filter(p, node, false);
        } else if (tok_is_name(tk, "is")) {
            node = parse_test(p, node);
        } else if (tok_is_op(tk, O_LPAREN)) {
            struct cai__tnode *c = new_node(p, CAI__TN_CALL, tk->off);
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

static struct cai__tnode *parse_list_or_dict(struct parser *p, bool dict)
{
    uint32_t off = cur(p)->off;
    struct nvec keys = {0}, vals = {0};
    uint8_t close = dict ? O_RBRACE : O_RBRACKET;
    advance(p);
    while (!tok_is_op(cur(p), close)) {
        if (keys.n && expect_op(p, O_COMMA, dict ? "',' or '}'" : "',' or ']'"))
            return NULL;
        if (tok_is_op(cur(p), close))
            break;
        struct cai__tnode *k = parse_expression(p, true);
        if (!k || nvec_push(p, &keys, k, (struct cai__tstr){0}, false))
            return NULL;
        if (dict) {
            if (expect_op(p, O_COLON, "':'"))
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

static struct cai__tnode *parse_primary(struct parser *p)
{
    struct tok *tk = cur(p);
    struct cai__tnode *n;
    if (enter(p, tk->off))
        return NULL;
    switch (tk->kind) {
    case K_NAME:
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
    case K_STRING: {
        /* Adjacent literals concatenate. */
        size_t total = 0, k = p->pos;
        for (; p->toks[k].kind == K_STRING; k++)
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
            perr_mem(p, tk->off);
            n = NULL;
            break;
        }
        size_t j = 0;
        while (cur(p)->kind == K_STRING) {
            memcpy(buf + j, cur(p)->s.p, cur(p)->s.n);
            j += cur(p)->s.n;
            advance(p);
        }
        n->val = cai__tv_str(buf, j);
        break;
    }
    case K_INT:
    case K_FLOAT:
        n = new_node(p, CAI__TN_CONST, tk->off);
        if (!n)
            break;
        if (tk->kind == K_INT) {
            n->val = cai__tv_int(tk->i);
        } else {
            n->val.t = CAI__TV_FLOAT;
            n->val.u.f = tk->f;
        }
        advance(p);
        break;
    case K_OP:
        if (tk->op == O_LPAREN) {
            advance(p);
            n = parse_tuple(p, false, true, NULL, true);
            if (n && expect_op(p, O_RPAREN, "')'"))
                n = NULL;
            break;
        }
        if (tk->op == O_LBRACKET || tk->op == O_LBRACE) {
            n = parse_list_or_dict(p, tk->op == O_LBRACE);
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

static struct cai__tnode *new_unary(struct parser *p, uint8_t op, uint32_t off,
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

static struct cai__tnode *new_binary(struct parser *p, uint8_t op, uint32_t off,
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

static struct cai__tnode *parse_unary(struct parser *p, bool with_filter)
{
    struct tok *tk = cur(p);
    struct cai__tnode *n;
    if (enter(p, tk->off))
        return NULL;
    if (tok_is_op(tk, O_SUB) || tok_is_op(tk, O_ADD)) {
        advance(p);
        n = new_unary(p, tk->op == O_SUB ? CAI__TOP_NEG : CAI__TOP_POS, tk->off,
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

static struct cai__tnode *parse_pow(struct parser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_unary(p, true);
    while (left && tok_is_op(cur(p), O_POW)) {
        uint32_t off = cur(p)->off;
        if (enter(p, off))
            return NULL;
        advance(p);
        left = new_binary(p, CAI__TOP_POW, off, left, parse_unary(p, true));
    }
    p->nest = nest;
    return left;
}

static struct cai__tnode *parse_math2(struct parser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_pow(p);
    while (left) {
        struct tok *tk = cur(p);
        uint8_t op;
        if (tok_is_op(tk, O_MUL))
            op = CAI__TOP_MUL;
        else if (tok_is_op(tk, O_DIV))
            op = CAI__TOP_DIV;
        else if (tok_is_op(tk, O_FLOORDIV))
            op = CAI__TOP_FLOORDIV;
        else if (tok_is_op(tk, O_MOD))
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

static struct cai__tnode *parse_concat(struct parser *p)
{
    uint32_t off = cur(p)->off;
    struct cai__tnode *first = parse_math2(p);
    if (!first || !tok_is_op(cur(p), O_TILDE))
        return first;
    struct nvec args = {0};
    if (nvec_push(p, &args, first, (struct cai__tstr){0}, false))
        return NULL;
    while (tok_is_op(cur(p), O_TILDE)) {
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

static struct cai__tnode *parse_math1(struct parser *p)
{
    int nest = p->nest;
    struct cai__tnode *left = parse_concat(p);
    while (left && (tok_is_op(cur(p), O_ADD) || tok_is_op(cur(p), O_SUB))) {
        struct tok *tk = cur(p);
        if (enter(p, tk->off))
            return NULL;
        advance(p);
        left = new_binary(p, tk->op == O_ADD ? CAI__TOP_ADD : CAI__TOP_SUB, tk->off, left,
                          parse_concat(p));
    }
    p->nest = nest;
    return left;
}

static struct cai__tnode *parse_compare(struct parser *p)
{
    uint32_t off = cur(p)->off;
    struct cai__tnode *first = parse_math1(p);
    if (!first)
        return NULL;
    struct nvec args = {0};
    uint8_t ops[64];
    for (;;) {
        struct tok *tk = cur(p);
        int op = -1;
        if (tk->kind == K_OP) {
            switch (tk->op) {
            case O_EQ: op = CAI__TOP_EQ; break;
            case O_NE: op = CAI__TOP_NE; break;
            case O_LT: op = CAI__TOP_LT; break;
            case O_LTEQ: op = CAI__TOP_LE; break;
            case O_GT: op = CAI__TOP_GT; break;
            case O_GTEQ: op = CAI__TOP_GE; break;
            default: break;
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
            perr(p, CAI_ERANGE, tk->off, "comparison chain too long");
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
        perr_mem(p, off);
        return NULL;
    }
    memcpy(o, ops, args.n - 1);
    n->kids = args.v;
    n->n_kids = args.n;
    n->ops = o;
    return n;
}

static struct cai__tnode *parse_not(struct parser *p)
{
    struct tok *tk = cur(p);
    if (!tok_is_name(tk, "not"))
        return parse_compare(p);
    if (enter(p, tk->off))
        return NULL;
    advance(p);
    struct cai__tnode *n = new_unary(p, CAI__TOP_NOT, tk->off, parse_not(p));
    p->nest--;
    return n;
}

static struct cai__tnode *parse_and(struct parser *p)
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

static struct cai__tnode *parse_or(struct parser *p)
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

static struct cai__tnode *parse_condexpr(struct parser *p)
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

static struct cai__tnode *parse_expression(struct parser *p, bool with_condexpr)
{
    if (enter(p, cur(p)->off))
        return NULL;
    struct cai__tnode *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    p->nest--;
    return n;
}

static bool is_tuple_end(struct parser *p, const char *extra_end)
{
    struct tok *tk = cur(p);
    return tk->kind == K_VAR_END || tk->kind == K_BLOCK_END || tok_is_op(tk, O_RPAREN) ||
           (extra_end && tok_is_name(tk, extra_end));
}

static struct cai__tnode *parse_tuple(struct parser *p, bool simplified, bool with_condexpr,
                                      const char *extra_end, bool explicit_parens)
{
    uint32_t off = cur(p)->off;
    struct nvec args = {0};
    bool is_tuple = false;
    for (;;) {
        if (args.n && expect_op(p, O_COMMA, "','"))
            return NULL;
        if (is_tuple_end(p, extra_end))
            break;
        struct cai__tnode *e =
            simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        if (!e || nvec_push(p, &args, e, (struct cai__tstr){0}, false))
            return NULL;
        if (tok_is_op(cur(p), O_COMMA))
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

static struct cai__tnode *subparse(struct parser *p, const char *const *ends);

/* Expects `{% <name>` was just consumed up to the name; consumes the name
 * and the closing %}. */
static int end_tag(struct parser *p)
{
    advance(p);
    return expect_kind(p, K_BLOCK_END, "'%}'");
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

static struct cai__tnode *parse_assign_target(struct parser *p, bool with_namespace,
                                              const char *extra_end)
{
    struct tok *tk = cur(p);
    struct cai__tnode *t;
    if (with_namespace && tk->kind == K_NAME && tok_is_op(look(p), O_DOT)) {
        t = new_node(p, CAI__TN_NSREF, tk->off);
        if (!t)
            return NULL;
        t->s = tk->s;
        advance(p);
        advance(p);
        if (cur(p)->kind != K_NAME) {
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
        perr(p, CAI_EFORMAT, t->off, "cannot assign to this expression");
        return NULL;
    }
    return t;
}

static struct cai__tnode *parse_if(struct parser *p, uint32_t off)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends_else[] = {"endif", NULL};
    struct cai__tnode *root = NULL, *tail = NULL;
    for (;;) {
        struct cai__tnode *n = new_node(p, CAI__TN_IF, off);
        if (!n || !(n->a = parse_tuple(p, false, false, NULL, false)) ||
            expect_kind(p, K_BLOCK_END, "'%}'") || !(n->b = subparse(p, ends)))
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

static struct cai__tnode *parse_for(struct parser *p, uint32_t off)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const ends_else[] = {"endfor", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_FOR, off);
    if (!n || !(n->a = parse_assign_target(p, false, "in")))
        return NULL;
    if (n->a->kind == CAI__TN_NSREF) {
        perr(p, CAI_EFORMAT, n->a->off, "cannot assign to a namespace attribute in a for loop");
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
        perr(p, CAI_EFORMAT, cur(p)->off, "recursive loops are not supported");
        return NULL;
    }
    if (expect_kind(p, K_BLOCK_END, "'%}'"))
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

static struct cai__tnode *parse_set(struct parser *p, uint32_t off)
{
    static const char *const ends[] = {"endset", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_SET, off);
    if (!n || !(n->a = parse_assign_target(p, true, NULL)))
        return NULL;
    if (tok_is_op(cur(p), O_ASSIGN)) {
        advance(p);
        if (!(n->b = parse_tuple(p, false, true, NULL, false)) ||
            expect_kind(p, K_BLOCK_END, "'%}'"))
            return NULL;
        return n;
    }
    if (n->a->kind == CAI__TN_TUPLE) {
        unexpected(p, "'='");
        return NULL;
    }
    n->kind = CAI__TN_SETBLOCK;
    if (tok_is_op(cur(p), O_PIPE)) {
        struct cai__tnode *hole = new_node(p, CAI__TN_BLOCKVAL, cur(p)->off);
        if (!hole || !(n->b = parse_filter(p, hole, false)))
            return NULL;
    }
    if (expect_kind(p, K_BLOCK_END, "'=' or '%}'") || !(n->d = subparse(p, ends)))
        return NULL;
    return end_tag(p) ? NULL : n;
}

static struct cai__tnode *parse_macro(struct parser *p, uint32_t off)
{
    static const char *const ends[] = {"endmacro", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_MACRO, off);
    if (!n)
        return NULL;
    if (cur(p)->kind != K_NAME) {
        unexpected(p, "a macro name");
        return NULL;
    }
    n->s = cur(p)->s;
    advance(p);
    struct nvec params = {0};
    if (expect_op(p, O_LPAREN, "'('"))
        return NULL;
    bool defaults = false;
    while (!tok_is_op(cur(p), O_RPAREN)) {
        if (params.n && expect_op(p, O_COMMA, "',' or ')'"))
            return NULL;
        if (cur(p)->kind != K_NAME) {
            unexpected(p, "a parameter name");
            return NULL;
        }
        struct cai__tnode *param = new_node(p, CAI__TN_NAME, cur(p)->off);
        if (!param)
            return NULL;
        param->s = cur(p)->s;
        advance(p);
        if (tok_is_op(cur(p), O_ASSIGN)) {
            advance(p);
            if (!(param->b = parse_expression(p, true)))
                return NULL;
            defaults = true;
        } else if (defaults) {
            perr(p, CAI_EFORMAT, param->off, "non-default argument follows default argument");
            return NULL;
        }
        if (nvec_push(p, &params, param, (struct cai__tstr){0}, false))
            return NULL;
    }
    advance(p);
    if (expect_kind(p, K_BLOCK_END, "'%}'"))
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

static struct cai__tnode *parse_with(struct parser *p, uint32_t off)
{
    static const char *const ends[] = {"endwith", NULL};
    struct cai__tnode *n = new_node(p, CAI__TN_WITH, off);
    struct nvec sets = {0};
    if (!n)
        return NULL;
    while (cur(p)->kind != K_BLOCK_END) {
        if (sets.n && expect_op(p, O_COMMA, "','"))
            return NULL;
        struct cai__tnode *s = new_node(p, CAI__TN_SET, cur(p)->off);
        if (!s || !(s->a = parse_assign_target(p, false, NULL)) ||
            expect_op(p, O_ASSIGN, "'='") || !(s->b = parse_expression(p, true)) ||
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

static struct cai__tnode *parse_statement(struct parser *p)
{
    struct tok *tk = cur(p);
    uint32_t off = tk->off;
    if (tk->kind != K_NAME) {
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
            perr(p, CAI_EFORMAT, off, "'%.*s' outside a loop", (int)name.n, name.p);
        else if ((n = new_node(p, str_is(name, "break") ? CAI__TN_BREAK : CAI__TN_CONTINUE,
                               off)) &&
                 expect_kind(p, K_BLOCK_END, "'%}'"))
            n = NULL;
    } else if (str_is(name, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        struct cai__tnode *hole = new_node(p, CAI__TN_BLOCKVAL, off);
        n = new_node(p, CAI__TN_FILTERBLOCK, off);
        if (!hole || !n || !(n->b = parse_filter(p, hole, true)) ||
            expect_kind(p, K_BLOCK_END, "'%}'") || !(n->d = subparse(p, ends)) || end_tag(p))
            n = NULL;
    } else if (str_is(name, "generation")) {
        /* Hugging Face's assistant-mask marker: renders its body in a
         * scope of its own (it is a call block there). */
        static const char *const ends[] = {"endgeneration", NULL};
        n = new_node(p, CAI__TN_WITH, off);
        if (!n || expect_kind(p, K_BLOCK_END, "'%}'") || !(n->d = subparse(p, ends)) ||
            end_tag(p))
            n = NULL;
    } else {
        perr(p, CAI_EFORMAT, off, "unknown or unsupported tag '%.*s'", (int)CAI_MIN(name.n, 40),
             name.p);
    }
    p->nest--;
    return n;
}

/* Parses text and tags until `{% <one of ends>` (left with the name as the
 * current token) or, with ends NULL, the end of the template. */
static struct cai__tnode *subparse(struct parser *p, const char *const *ends)
{
    uint32_t off = cur(p)->off;
    struct nvec body = {0};
    for (;;) {
        struct tok *tk = cur(p);
        struct cai__tnode *n = NULL;
        if (tk->kind == K_EOF) {
            if (ends) {
                perr(p, CAI_EFORMAT, tk->off, "unexpected end of template, expected '%s'",
                     ends[0]);
                return NULL;
            }
            break;
        }
        if (tk->kind == K_TEXT) {
            if ((n = new_node(p, CAI__TN_TEXT, tk->off)))
                n->s = tk->s;
            advance(p);
        } else if (tk->kind == K_VAR_BEGIN) {
            advance(p);
            n = new_node(p, CAI__TN_OUTPUT, tk->off);
            if (n && (!(n->a = parse_tuple(p, false, true, NULL, false)) ||
                      expect_kind(p, K_VAR_END, "'}}'")))
                n = NULL;
        } else if (tk->kind == K_BLOCK_BEGIN) {
            advance(p);
            if (ends && cur(p)->kind == K_NAME)
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
static int check_names(struct parser *p, const struct cai__tnode *n, bool soft)
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
                   ? p->rc : 0;
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
            return perr(p, CAI_EFORMAT, n->off, "no filter named '%.*s'",
                        (int)CAI_MIN(n->s.n, 40), n->s.p);
        break;
    case CAI__TN_TEST:
        if (!soft && !cai__tmpl_test_known(n->s))
            return perr(p, CAI_EFORMAT, n->off, "no test named '%.*s'",
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
    struct parser p = {.a = a, .t = NULL, .err = err};
    memset(t, 0, sizeof(*t));
    if (!tmpl && tmpl_len)
        return cai__fail(err, CAI_EINVAL, "chat template: NULL template");
    if (tmpl_len > CAI__TMPL_MAX_SOURCE)
        return cai__fail(err, CAI_ERANGE, "chat template: offset 0: template larger than %zu bytes",
                         CAI__TMPL_MAX_SOURCE);
    if (normalize(&p, t, tmpl ? tmpl : "", tmpl_len))
        return p.rc;
    p.t = t;
    p.src = t->src;
    p.n_src = t->n_src;
    if (lex(&p))
        return p.rc;
    t->root = subparse(&p, NULL);
    if (!t->root)
        return p.rc ? p.rc : perr_mem(&p, 0);
    return check_names(&p, t->root, false);
}
