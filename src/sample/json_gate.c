/* json_gate.c: the JSON-object gate declared in json_gate.h. One state
 * machine over bytes: the parser states below plus sub-states for numbers,
 * literals, escapes and UTF-8 sequences. */
#include "json_gate.h"

#include <string.h>

enum {
    S_START,      /* before the object: whitespace or '{' */
    S_VALUE,      /* a value must come */
    S_ARR_FIRST,  /* after '[': a value or ']' */
    S_KEY_FIRST,  /* after '{': a key or '}' */
    S_KEY,        /* after ',' in an object: a key */
    S_COLON,      /* after a key */
    S_AFTER,      /* after a value: ',' or the container's end */
    S_STRING,     /* inside a string */
    S_ESCAPE,     /* after a backslash */
    S_UHEX,       /* inside \uXXXX (sub = hex digits left) */
    S_LOW_BS,     /* after a high surrogate escape: '\\' must follow */
    S_LOW_U,      /* then 'u' */
    S_NUMBER,     /* inside a number (sub = N_*) */
    S_LITERAL,    /* inside true/false/null (sub = bytes matched) */
    S_DONE,       /* the object closed */
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char *const literals[3] = {"true", "false", "null"};

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

void cai__jgate_init(struct cai__jgate *g)
{
    memset(g, 0, sizeof(*g));
    g->st = S_START;
}

bool cai__jgate_done(const struct cai__jgate *g)
{
    return g->st == S_DONE;
}

/* A value has ended: what may follow depends on the enclosing container. */
static void value_done(struct cai__jgate *g)
{
    g->st = S_AFTER;
}

static bool push(struct cai__jgate *g, uint8_t c)
{
    if (g->depth >= CAI__JGATE_MAX_DEPTH)
        return false;
    g->stack[g->depth++] = c;
    g->st = c == '{' ? S_KEY_FIRST : S_ARR_FIRST;
    return true;
}

static bool pop(struct cai__jgate *g, uint8_t close)
{
    if (g->depth == 0 || g->stack[g->depth - 1] != (close == '}' ? '{' : '['))
        return false;
    g->depth--;
    if (g->depth == 0)
        g->st = S_DONE;
    else
        value_done(g);
    return true;
}

/* The first byte of a value. */
static bool value_start(struct cai__jgate *g, unsigned char c)
{
    switch (c) {
    case '{':
    case '[': return push(g, c);
    case '"':
        g->st = S_STRING;
        g->key = 0;
        return true;
    case '-':
        g->st = S_NUMBER;
        g->sub = N_MINUS;
        g->num_len = 1;
        return true;
    case 't':
    case 'f':
    case 'n':
        g->st = S_LITERAL;
        g->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        g->sub = 1;
        return true;
    default:
        if (!is_digit(c))
            return false;
        g->st = S_NUMBER;
        g->sub = c == '0' ? N_ZERO : N_INT;
        g->num_len = 1;
        return true;
    }
}

/* A byte inside a string (not after a backslash). */
static bool string_byte(struct cai__jgate *g, unsigned char c)
{
    if (g->utf_left) {
        if (c < g->utf_lo || c > g->utf_hi)
            return false;
        g->utf_left--;
        g->utf_lo = 0x80;
        g->utf_hi = 0xBF;
        return true;
    }
    if (c == '"') {
        if (g->key)
            g->st = S_COLON;
        else
            value_done(g);
        return true;
    }
    if (c == '\\') {
        g->st = S_ESCAPE;
        return true;
    }
    if (c < 0x20)
        return false;
    if (c < 0x80)
        return true;
    /* UTF-8 lead bytes and the range of the byte after them (RFC 3629). */
    g->utf_lo = 0x80;
    g->utf_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        g->utf_left = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        g->utf_left = 2;
        if (c == 0xE0)
            g->utf_lo = 0xA0;
        else if (c == 0xED)
            g->utf_hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        g->utf_left = 3;
        if (c == 0xF0)
            g->utf_lo = 0x90;
        else if (c == 0xF4)
            g->utf_hi = 0x8F;
    } else {
        return false;
    }
    return true;
}

/* A hex digit of a \u escape. Refused as soon as the digits so far can only
 * spell a lone low surrogate (or, after a high one, anything but a low one),
 * as the JSON parser refuses those. */
static bool uhex_byte(struct cai__jgate *g, unsigned char c)
{
    if (!is_hex(c))
        return false;
    unsigned v = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    g->cp = (uint16_t)(g->cp << 4 | v);
    g->sub--;
    if (g->low && g->sub == 3 && g->cp != 0xD)
        return false;
    if (g->sub == 2 && (g->cp >= 0xDC && g->cp <= 0xDF) != (g->low != 0))
        return false;
    if (g->sub == 0)
        g->st = !g->low && g->cp >= 0xD800 && g->cp <= 0xDBFF ? S_LOW_BS : S_STRING;
    return true;
}

/* A byte inside a number; a byte that ends it is handed back (*reprocess). */
static bool number_byte(struct cai__jgate *g, unsigned char c, bool *reprocess)
{
    bool more = g->num_len < CAI__JGATE_MAX_NUMBER;
    g->num_len++;
    if (!more && (is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
        return false;
    switch (g->sub) {
    case N_MINUS:
        if (!is_digit(c))
            return false;
        g->sub = c == '0' ? N_ZERO : N_INT;
        return true;
    case N_INT:
        if (is_digit(c))
            return true;
        /* fall through */
    case N_ZERO:
        if (c == '.') {
            g->sub = N_DOT;
            return true;
        }
        if (c == 'e' || c == 'E') {
            g->sub = N_E;
            return true;
        }
        break;
    case N_DOT:
        if (!is_digit(c))
            return false;
        g->sub = N_FRAC;
        return true;
    case N_FRAC:
        if (is_digit(c))
            return true;
        if (c == 'e' || c == 'E') {
            g->sub = N_E;
            return true;
        }
        break;
    case N_E:
        if (c == '+' || c == '-') {
            g->sub = N_ESIGN;
            return true;
        }
        /* fall through */
    case N_ESIGN:
        if (!is_digit(c))
            return false;
        g->sub = N_EXP;
        return true;
    case N_EXP:
        if (is_digit(c))
            return true;
        break;
    default: return false;
    }
    /* A complete number followed by something else. */
    value_done(g);
    *reprocess = true;
    return true;
}

static bool feed1(struct cai__jgate *g, unsigned char c)
{
    bool again;
    do {
        again = false;
        bool ws_state = g->st == S_START || g->st == S_VALUE || g->st == S_ARR_FIRST ||
                        g->st == S_KEY_FIRST || g->st == S_KEY || g->st == S_COLON ||
                        g->st == S_AFTER;
        if (ws_state && is_ws(c)) {
            if (++g->ws > CAI__JGATE_MAX_WS)
                return false;
            return true;
        }
        g->ws = 0;
        switch (g->st) {
        case S_START:
            if (c != '{')
                return false;
            return push(g, c);
        case S_VALUE: return value_start(g, c);
        case S_ARR_FIRST:
            if (c == ']')
                return pop(g, c);
            return value_start(g, c);
        case S_KEY_FIRST:
            if (c == '}')
                return pop(g, c);
            /* fall through */
        case S_KEY:
            if (c != '"')
                return false;
            g->st = S_STRING;
            g->key = 1;
            return true;
        case S_COLON:
            if (c != ':')
                return false;
            g->st = S_VALUE;
            return true;
        case S_AFTER:
            if (c == ',') {
                g->st = g->stack[g->depth - 1] == '{' ? S_KEY : S_VALUE;
                return true;
            }
            if (c == '}' || c == ']')
                return pop(g, c);
            return false;
        case S_STRING: return string_byte(g, c);
        case S_ESCAPE:
            if (c == 'u') {
                g->st = S_UHEX;
                g->sub = 4;
                g->cp = 0;
                g->low = 0;
                return true;
            }
            if (!strchr("\"\\/bfnrt", c) || c == 0)
                return false;
            g->st = S_STRING;
            return true;
        case S_UHEX: return uhex_byte(g, c);
        case S_LOW_BS:
            if (c != '\\')
                return false;
            g->st = S_LOW_U;
            return true;
        case S_LOW_U:
            if (c != 'u')
                return false;
            g->st = S_UHEX;
            g->sub = 4;
            g->cp = 0;
            g->low = 1;
            return true;
        case S_NUMBER:
            if (!number_byte(g, c, &again))
                return false;
            break;
        case S_LITERAL: {
            const char *l = literals[g->lit];
            if ((unsigned char)l[g->sub] != c)
                return false;
            if (l[++g->sub] == '\0')
                value_done(g);
            return true;
        }
        default: return false; /* S_DONE: nothing may follow */
        }
    } while (again);
    return true;
}

bool cai__jgate_feed(struct cai__jgate *g, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!feed1(g, (unsigned char)s[i]))
            return false;
    return true;
}
