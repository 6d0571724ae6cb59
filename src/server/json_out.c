/* json_out.c: the bounded buffer and the JSON writer (see json_out.h). */
#include "json_out.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bounded buffer ---------------------------------------------------- */

void cai__buf_init(struct cai__buf *b, size_t max_bytes)
{
    memset(b, 0, sizeof(*b));
    b->max = max_bytes;
}

void cai__buf_free(struct cai__buf *b)
{
    cai__free(b->data);
    size_t max = b->max;
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void cai__buf_reset(struct cai__buf *b)
{
    b->n = 0;
    b->failed = false;
    if (b->data)
        b->data[0] = '\0';
}

bool cai__buf_reserve(struct cai__buf *b, size_t extra)
{
    if (b->failed)
        return false;
    size_t need;
    /* One byte more than asked for, so the contents can stay NUL-terminated. */
    if (!cai__add_size(b->n, extra, &need) || need > b->max || !cai__add_size(need, 1, &need)) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = cai__realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

bool cai__buf_put(struct cai__buf *b, const void *data, size_t n_bytes)
{
    if (!cai__buf_reserve(b, n_bytes))
        return false;
    if (n_bytes)
        memcpy(b->data + b->n, data, n_bytes);
    b->n += n_bytes;
    b->data[b->n] = '\0';
    return true;
}

bool cai__buf_puts(struct cai__buf *b, const char *s)
{
    return cai__buf_put(b, s, strlen(s));
}

bool cai__buf_putc(struct cai__buf *b, char c)
{
    return cai__buf_put(b, &c, 1);
}

bool cai__buf_printf(struct cai__buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return false;
    }
    if ((size_t)n < sizeof(small))
        return cai__buf_put(b, small, (size_t)n);
    if (!cai__buf_reserve(b, (size_t)n))
        return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
    return true;
}

void cai__buf_consume(struct cai__buf *b, size_t n_bytes)
{
    if (n_bytes >= b->n) {
        b->n = 0;
    } else {
        memmove(b->data, b->data + n_bytes, b->n - n_bytes);
        b->n -= n_bytes;
    }
    if (b->data)
        b->data[b->n] = '\0';
}

/* ---- escaping ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool cai__json_escape(struct cai__buf *b, const char *s, size_t n_bytes)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n_bytes) {
        /* Copy the longest run that needs no escaping in one call. */
        size_t run = i;
        while (run < n_bytes && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i && !cai__buf_put(b, p + i, run - i))
            return false;
        i = run;
        if (i >= n_bytes)
            break;
        unsigned c = p[i];
        if (c >= 0x80) {
            size_t len = utf8_len(p + i, n_bytes - i);
            if (len) {
                if (!cai__buf_put(b, p + i, len))
                    return false;
                i += len;
            } else {
                if (!cai__buf_puts(b, "\\ufffd"))
                    return false;
                i++;
            }
            continue;
        }
        char esc[7];
        size_t n_esc = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0';
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            n_esc = 6;
            break;
        }
        if (!cai__buf_put(b, esc, n_esc))
            return false;
        i++;
    }
    return !b->failed;
}

/* ---- writer ------------------------------------------------------------ */

void cai__jw_init(struct cai__jw *w, struct cai__buf *b)
{
    memset(w, 0, sizeof(*w));
    w->b = b;
    w->first[0] = true;
}

/* Writes the separator a new value needs at the current level; false on
 * misuse (a second top-level value, a value inside an object without a key). */
static bool value_start(struct cai__jw *w)
{
    if (w->failed)
        return false;
    if (w->after_key) {
        w->after_key = false;
        return true;
    }
    if (w->depth == 0) {
        if (!w->first[0]) { /* a second top-level value */
            w->failed = true;
            return false;
        }
        w->first[0] = false;
        return true;
    }
    if (w->is_obj[w->depth]) { /* a value inside an object needs a key */
        w->failed = true;
        return false;
    }
    if (w->first[w->depth]) {
        w->first[w->depth] = false;
        return true;
    }
    return cai__buf_putc(w->b, ',');
}

static void open_container(struct cai__jw *w, char c, bool is_obj)
{
    if (w->depth >= CAI__JW_MAX_DEPTH || !value_start(w)) {
        w->failed = true;
        return;
    }
    cai__buf_putc(w->b, c);
    w->depth++;
    w->first[w->depth] = true;
    w->is_obj[w->depth] = is_obj;
}

static void close_container(struct cai__jw *w, char c)
{
    if (w->failed || w->depth == 0 || w->after_key || w->is_obj[w->depth] != (c == '}')) {
        w->failed = true;
        return;
    }
    cai__buf_putc(w->b, c);
    w->depth--;
}

void cai__jw_obj(struct cai__jw *w)
{
    open_container(w, '{', true);
}

void cai__jw_obj_end(struct cai__jw *w)
{
    close_container(w, '}');
}

void cai__jw_arr(struct cai__jw *w)
{
    open_container(w, '[', false);
}

void cai__jw_arr_end(struct cai__jw *w)
{
    close_container(w, ']');
}

void cai__jw_key(struct cai__jw *w, const char *key)
{
    if (w->failed || !w->is_obj[w->depth] || w->after_key) {
        w->failed = true;
        return;
    }
    if (!w->first[w->depth])
        cai__buf_putc(w->b, ',');
    w->first[w->depth] = false;
    cai__buf_putc(w->b, '"');
    cai__json_escape(w->b, key, strlen(key));
    cai__buf_put(w->b, "\":", 2);
    w->after_key = true;
}

void cai__jw_strn(struct cai__jw *w, const char *s, size_t n_bytes)
{
    if (!value_start(w))
        return;
    cai__buf_putc(w->b, '"');
    cai__json_escape(w->b, s, n_bytes);
    cai__buf_putc(w->b, '"');
}

void cai__jw_str(struct cai__jw *w, const char *s)
{
    if (!s)
        cai__jw_null(w);
    else
        cai__jw_strn(w, s, strlen(s));
}

void cai__jw_int(struct cai__jw *w, int64_t v)
{
    if (value_start(w))
        cai__buf_printf(w->b, "%lld", (long long)v);
}

void cai__jw_uint(struct cai__jw *w, uint64_t v)
{
    if (value_start(w))
        cai__buf_printf(w->b, "%llu", (unsigned long long)v);
}

void cai__jw_num(struct cai__jw *w, double v)
{
    if (!value_start(w))
        return;
    if (!isfinite(v)) {
        cai__buf_puts(w->b, "null");
        return;
    }
    /* Shortest of %.15g and %.17g that reads back exactly. */
    char tmp[40];
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof(tmp), "%.17g", v);
    cai__buf_puts(w->b, tmp);
}

void cai__jw_bool(struct cai__jw *w, bool v)
{
    if (value_start(w))
        cai__buf_puts(w->b, v ? "true" : "false");
}

void cai__jw_null(struct cai__jw *w)
{
    if (value_start(w))
        cai__buf_puts(w->b, "null");
}

bool cai__jw_ok(const struct cai__jw *w)
{
    return !w->failed && !w->b->failed && w->depth == 0 && !w->after_key && !w->first[0];
}
