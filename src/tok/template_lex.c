/* template_lex.c: template text to tokens.
 *
 * Newline normalization (\r\n and \r become \n, one trailing newline is
 * dropped) and a lexer that splits text from tags and applies whitespace
 * control exactly as Jinja 3's regular expressions do with Hugging Face's
 * settings (trim_blocks, lstrip_blocks, the - and + markers). Also the
 * arena and the UTF-8 helpers the interpreter shares. Every error names the
 * byte offset in the caller's template. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

/* ---- arena ------------------------------------------------------------- */

struct cai__tmpl_chunk {
    struct cai__tmpl_chunk *next;
    size_t cap, used;
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
        if (!cai__add_size(cap, CHUNK_HDR, &total) ||
            total > a->n_limit - CAI_MIN(a->n_used, a->n_limit)) {
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
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
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

/* ---- tokens and errors ------------------------------------------------- */

static const struct {
    const char *text;
    uint8_t op;
} op_table[] = {
    /* two-character operators first: the lexer takes the longest match */
    {"//", CAI__TO_FLOORDIV}, {"**", CAI__TO_POW},      {"==", CAI__TO_EQ},
    {"!=", CAI__TO_NE},       {">=", CAI__TO_GTEQ},     {"<=", CAI__TO_LTEQ},
    {"+", CAI__TO_ADD},       {"-", CAI__TO_SUB},       {"/", CAI__TO_DIV},
    {"*", CAI__TO_MUL},       {"%", CAI__TO_MOD},       {"~", CAI__TO_TILDE},
    {"[", CAI__TO_LBRACKET},  {"]", CAI__TO_RBRACKET},  {"(", CAI__TO_LPAREN},
    {")", CAI__TO_RPAREN},    {"{", CAI__TO_LBRACE},    {"}", CAI__TO_RBRACE},
    {">", CAI__TO_GT},        {"<", CAI__TO_LT},        {"=", CAI__TO_ASSIGN},
    {".", CAI__TO_DOT},       {":", CAI__TO_COLON},     {"|", CAI__TO_PIPE},
    {",", CAI__TO_COMMA},     {";", CAI__TO_SEMICOLON},
};

int cai__tparse_fail(struct cai__tparser *p, int code, uint32_t off, const char *fmt, ...)
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

int cai__tparse_fail_mem(struct cai__tparser *p, uint32_t off)
{
    return cai__tparse_fail(p, p->a->rc ? p->a->rc : CAI_ENOMEM, off, "%s",
                            p->a->rc == CAI_ERANGE ? "template needs more than the memory bound"
                                                   : "out of memory");
}

size_t cai__tmpl_orig_off(const struct cai__tmpl *t, uint32_t off)
{
    if (!t || !t->orig_off)
        return off;
    return t->orig_off[off <= t->n_src ? off : t->n_src];
}

static struct cai__ttok *push_tok(struct cai__tparser *p, uint8_t kind, uint32_t off)
{
    if (p->n_toks == p->cap_toks) {
        size_t cap = p->cap_toks ? p->cap_toks * 2 : 256;
        struct cai__ttok *nt = cai__tmpl_alloc(p->a, cap * sizeof(*nt));
        if (!nt) {
            cai__tparse_fail_mem(p, off);
            return NULL;
        }
        if (p->n_toks)
            memcpy(nt, p->toks, p->n_toks * sizeof(*nt));
        p->toks = nt;
        p->cap_toks = cap;
    }
    struct cai__ttok *tk = &p->toks[p->n_toks++];
    memset(tk, 0, sizeof(*tk));
    tk->kind = kind;
    tk->off = off;
    return tk;
}

/* ---- newline normalization --------------------------------------------- */

static int normalize(struct cai__tparser *p, struct cai__tmpl *t, const char *tmpl, size_t n)
{
    bool has_cr = memchr(tmpl, '\r', n) != NULL;
    char *dst = cai__tmpl_alloc(p->a, n + 1);
    uint32_t *map = has_cr ? cai__tmpl_alloc(p->a, (n + 1) * sizeof(uint32_t)) : NULL;
    if (!dst || (has_cr && !map))
        return cai__tparse_fail_mem(p, 0);
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
static int emit_text(struct cai__tparser *p, size_t start, size_t end, char sign, bool lstrip,
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
        struct cai__ttok *tk = push_tok(p, CAI__TK_TEXT, (uint32_t)start);
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
static int decode_string(struct cai__tparser *p, const char *s, size_t n, uint32_t off,
                         struct cai__tstr *out)
{
    /* Escapes never grow the text by more than 4x (a \ before a non-ASCII
     * character becomes \ plus up to 9 characters of its escape). */
    size_t cap;
    if (!cai__mul_size(n, 4, &cap) || !cai__add_size(cap, 16, &cap))
        return cai__tparse_fail(p, CAI_ERANGE, off, "string literal too long");
    char *d = cai__tmpl_alloc(p->a, cap);
    if (!d)
        return cai__tparse_fail_mem(p, off);
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\') {
            d[j++] = s[i++];
            continue;
        }
        if (i + 1 >= n)
            return cai__tparse_fail(p, CAI_EFORMAT, off, "string literal ends with a backslash");
        unsigned char e = (unsigned char)s[i + 1];
        uint32_t cp = 0;
        int n_hex = 0;
        i += 2;
        switch (e) {
        case '\n':
            continue;
        case '\\':
            d[j++] = '\\';
            continue;
        case '\'':
            d[j++] = '\'';
            continue;
        case '"':
            d[j++] = '"';
            continue;
        case 'a':
            d[j++] = '\a';
            continue;
        case 'b':
            d[j++] = '\b';
            continue;
        case 'f':
            d[j++] = '\f';
            continue;
        case 'n':
            d[j++] = '\n';
            continue;
        case 'r':
            d[j++] = '\r';
            continue;
        case 't':
            d[j++] = '\t';
            continue;
        case 'v':
            d[j++] = '\v';
            continue;
        case 'x':
            n_hex = 2;
            break;
        case 'u':
            n_hex = 4;
            break;
        case 'U':
            n_hex = 8;
            break;
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
                j += (size_t)snprintf(d + j, cap - j, "%c%0*x",
                                      w == 2   ? 'x'
                                      : w == 4 ? 'u'
                                               : 'U',
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
                int v = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (v < 0)
                    return cai__tparse_fail(p, CAI_EFORMAT, off,
                                            "truncated \\%c escape in string literal", e);
                cp = cp * 16 + (uint32_t)v;
            }
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return cai__tparse_fail(p, CAI_EFORMAT, off,
                                    "invalid code point U+%X in string literal", (unsigned)cp);
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
static int lex_tag(struct cai__tparser *p, size_t *pos, bool block, uint32_t tag_off,
                   bool *line_starting)
{
    const char *s = p->src;
    size_t n = p->n_src, i = *pos;
    char balance[64];
    size_t n_bal = 0;
    for (;;) {
        if (i >= n)
            return cai__tparse_fail(p, CAI_EFORMAT, tag_off,
                                    "unexpected end of template: unclosed %s tag",
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
                if (!push_tok(p, block ? CAI__TK_BLOCK_END : CAI__TK_VAR_END, (uint32_t)i))
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
                return cai__tparse_fail(p, CAI_EFORMAT, (uint32_t)i, "float literal too long");
            tmp[m] = '\0';
            struct cai__ttok *tk = push_tok(p, CAI__TK_FLOAT, (uint32_t)i);
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
                return cai__tparse_fail(p, CAI_EFORMAT, (uint32_t)i, "integer literal too large");
            struct cai__ttok *tk = push_tok(p, CAI__TK_INT, (uint32_t)i);
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
            struct cai__ttok *tk = push_tok(p, CAI__TK_NAME, (uint32_t)i);
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
                return cai__tparse_fail(p, CAI_EFORMAT, (uint32_t)i, "unterminated string literal");
            struct cai__ttok *tk = push_tok(p, CAI__TK_STRING, (uint32_t)i);
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
            return cai__tparse_fail(p, CAI_EFORMAT, (uint32_t)i, "unexpected character '%c'",
                                    (unsigned char)c >= 0x20 && (unsigned char)c < 0x7f ? c : '?');
        uint8_t op = op_table[o].op;
        if (op == CAI__TO_LBRACE || op == CAI__TO_LPAREN || op == CAI__TO_LBRACKET) {
            if (n_bal == sizeof(balance))
                return cai__tparse_fail(p, CAI_ERANGE, (uint32_t)i, "brackets nested too deeply");
            balance[n_bal++] = op == CAI__TO_LBRACE ? '}' : op == CAI__TO_LPAREN ? ')' : ']';
        } else if (op == CAI__TO_RBRACE || op == CAI__TO_RPAREN || op == CAI__TO_RBRACKET) {
            if (n_bal == 0 || balance[n_bal - 1] != c)
                return cai__tparse_fail(p, CAI_EFORMAT, (uint32_t)i, "unexpected '%c'", c);
            n_bal--;
        }
        struct cai__ttok *tk = push_tok(p, CAI__TK_OP, (uint32_t)i);
        if (!tk)
            return p->rc;
        tk->op = op;
        i += strlen(op_table[o].text);
    }
}

static int lex(struct cai__tparser *p)
{
    const char *s = p->src;
    size_t n = p->n_src, pos = 0;
    bool line_starting = true;
    while (pos < n) {
        size_t q = pos;
        while (q + 1 < n &&
               !(s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')))
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
                return cai__tparse_fail(p, CAI_EFORMAT, (uint32_t)q,
                                        "missing end of raw directive");
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
                return cai__tparse_fail(p, CAI_EFORMAT, (uint32_t)q, "missing end of comment tag");
            line_starting = s[end - 1] == '\n';
            pos = end;
            continue;
        }
        bool block = kind == '%';
        if (!push_tok(p, block ? CAI__TK_BLOCK_BEGIN : CAI__TK_VAR_BEGIN, (uint32_t)q))
            return p->rc;
        pos = body;
        if (lex_tag(p, &pos, block, (uint32_t)q, &line_starting))
            return p->rc;
    }
    return push_tok(p, CAI__TK_EOF, (uint32_t)n) ? 0 : p->rc;
}

int cai__tmpl_lex(struct cai__tparser *p, struct cai__tmpl *t, const char *tmpl, size_t tmpl_len)
{
    if (normalize(p, t, tmpl, tmpl_len))
        return p->rc;
    p->t = t;
    p->src = t->src;
    p->n_src = t->n_src;
    return lex(p);
}
