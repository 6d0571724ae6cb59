/* http.c: the incremental HTTP/1.1 request parser and the response helpers
 * (see http.h for what is accepted and refused). */
#include "http.h"

#include <string.h>
#include <strings.h>
#include <time.h>

struct cai__http_limits cai__http_limits_default(void)
{
    struct cai__http_limits l = {
        .max_line = 8192,
        .max_head = 32768,
        .max_headers = 64,
        .max_body = (size_t)8 << 20,
    };
    return l;
}

void cai__http_parser_init(struct cai__http_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/* ---- character classes (RFC 9110 §5.6.2) ------------------------------ */

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value bytes: visible ASCII, space, tab and obs-text. */
static bool is_vchar_ws(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

static bool eq_nocase(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

static int fail(struct cai__http_parser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return -1;
}

/* ---- request line ------------------------------------------------------ */

static int parse_method(const char *m, size_t n)
{
    static const struct {
        const char *s;
        int         method;
    } tab[] = {
        {"GET", CAI_HTTP_GET},     {"HEAD", CAI_HTTP_HEAD},       {"POST", CAI_HTTP_POST},
        {"PUT", CAI_HTTP_PUT},     {"DELETE", CAI_HTTP_DELETE},   {"OPTIONS", CAI_HTTP_OPTIONS},
        {"PATCH", CAI_HTTP_PATCH},
    };
    /* Methods are case-sensitive (RFC 9110 §9.1). */
    for (size_t i = 0; i < CAI_ARRAY_LEN(tab); i++)
        if (strlen(tab[i].s) == n && memcmp(tab[i].s, m, n) == 0)
            return tab[i].method;
    return CAI_HTTP_OTHER;
}

/* Parses line[0..n) (no line end) into r. */
static int parse_request_line(struct cai__http_parser *p, const char *line, size_t n,
                              struct cai__http_request *r)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= n || line[i] != ' ')
        return fail(p, 400, "malformed request line (method)");
    r->method_str = line;
    r->method_len = i;
    r->method = parse_method(line, i);
    size_t t0 = ++i;
    while (i < n && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7F)
        i++;
    if (i == t0 || i >= n || line[i] != ' ')
        return fail(p, 400, "malformed request line (target)");
    r->target = line + t0;
    r->target_len = i - t0;
    const char *v = line + i + 1;
    size_t vn = n - i - 1;
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return fail(p, 400, "malformed request line (version)");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(p, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    r->version = v[7] == '1' ? 11 : 10;

    /* Request target: origin-form, absolute-form or asterisk-form. */
    const char *t = r->target;
    size_t tn = r->target_len;
    if (memchr(t, '#', tn))
        return fail(p, 400, "request target contains a fragment");
    if (t[0] == '*') {
        if (tn != 1 || r->method != CAI_HTTP_OPTIONS)
            return fail(p, 400, "asterisk-form target is only valid with OPTIONS");
        r->path = t;
        r->path_len = 1;
        return 0;
    }
    if (t[0] != '/') {
        size_t skip = tn >= 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                      : tn >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                      : 0;
        if (!skip)
            return fail(p, 400, "malformed request target");
        size_t k = skip;
        while (k < tn && t[k] != '/' && t[k] != '?')
            k++;
        if (k == skip)
            return fail(p, 400, "absolute-form target without a host");
        if (k == tn || t[k] == '?') {
            /* No path: it is "/" (RFC 9112 §3.2.2). */
            r->path = "/";
            r->path_len = 1;
            if (k < tn) {
                r->query = t + k + 1;
                r->query_len = tn - k - 1;
            }
            return 0;
        }
        t += k;
        tn -= k;
    }
    const char *q = memchr(t, '?', tn);
    r->path = t;
    r->path_len = q ? (size_t)(q - t) : tn;
    if (q) {
        r->query = q + 1;
        r->query_len = tn - r->path_len - 1;
    }
    return 0;
}

/* ---- header fields ----------------------------------------------------- */

/* Strips the line end: [s, e) is a line without its LF; drops one CR. */
static size_t line_len_without_cr(const char *s, size_t n)
{
    return n > 0 && s[n - 1] == '\r' ? n - 1 : n;
}

static int parse_content_length(struct cai__http_parser *p, const char *v, size_t n,
                                const struct cai__http_limits *lim, uint64_t *out)
{
    if (n == 0)
        return fail(p, 400, "empty Content-Length");
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail(p, 400, "malformed Content-Length");
        if (x > (UINT64_MAX - 9) / 10)
            return fail(p, 413, "request body too large");
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > lim->max_body)
        return fail(p, 413, "request body too large");
    *out = x;
    return 0;
}

/* Looks for "close" and "keep-alive" in a comma-separated Connection value. */
static void parse_connection(const char *v, size_t n, bool *close, bool *keep)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (eq_nocase(v + s, e - s, "close"))
            *close = true;
        else if (eq_nocase(v + s, e - s, "keep-alive"))
            *keep = true;
        i++; /* past the comma */
    }
}

/* Parses the complete head data[lead..head_len) into r. */
static int parse_head(struct cai__http_parser *p, const char *data, size_t lead, size_t head_len,
                      const struct cai__http_limits *lim, struct cai__http_request *r)
{
    memset(r, 0, sizeof(*r));
    const char *end = data + head_len;
    const char *ls = data + lead;
    const char *lf = memchr(ls, '\n', (size_t)(end - ls));
    if (!lf)
        return fail(p, 400, "malformed request head");
    if (parse_request_line(p, ls, line_len_without_cr(ls, (size_t)(lf - ls)), r) < 0)
        return -1;
    bool has_cl = false, has_te = false, conn_close = false, conn_keep = false;
    uint32_t max_headers = CAI_MIN(lim->max_headers, (uint32_t)CAI__HTTP_MAX_HEADERS);
    for (ls = lf + 1; ls < end; ls = lf + 1) {
        lf = memchr(ls, '\n', (size_t)(end - ls));
        if (!lf)
            return fail(p, 400, "malformed request head");
        size_t n = line_len_without_cr(ls, (size_t)(lf - ls));
        if (n == 0)
            break; /* the blank line that ends the head */
        if (ls[0] == ' ' || ls[0] == '\t')
            return fail(p, 400, "obsolete header line folding is not accepted");
        size_t k = 0;
        while (k < n && is_tchar((unsigned char)ls[k]))
            k++;
        if (k == 0 || k >= n || ls[k] != ':')
            return fail(p, 400, "malformed header field");
        const char *v = ls + k + 1;
        size_t vn = n - k - 1;
        for (size_t i = 0; i < vn; i++)
            if (!is_vchar_ws((unsigned char)v[i]))
                return fail(p, 400, "control character in a header value");
        while (vn && (v[0] == ' ' || v[0] == '\t'))
            v++, vn--;
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (r->n_headers >= max_headers)
            return fail(p, 431, "too many header fields");
        struct cai__http_header *h = &r->headers[r->n_headers++];
        h->name = ls;
        h->name_len = k;
        h->value = v;
        h->value_len = vn;
        if (eq_nocase(ls, k, "content-length")) {
            if (has_cl)
                return fail(p, 400, "duplicate Content-Length");
            has_cl = true;
            if (parse_content_length(p, v, vn, lim, &r->content_length) < 0)
                return -1;
        } else if (eq_nocase(ls, k, "transfer-encoding")) {
            has_te = true;
        } else if (eq_nocase(ls, k, "host")) {
            if (r->host)
                return fail(p, 400, "duplicate Host");
            r->host = v;
            r->host_len = vn;
        } else if (eq_nocase(ls, k, "connection")) {
            parse_connection(v, vn, &conn_close, &conn_keep);
        } else if (eq_nocase(ls, k, "expect")) {
            if (!eq_nocase(v, vn, "100-continue"))
                return fail(p, 417, "unsupported Expect");
            r->expect_continue = true;
        }
    }
    if (has_te && has_cl)
        return fail(p, 400, "both Transfer-Encoding and Content-Length");
    if (has_te)
        return fail(p, 411, "chunked request bodies are not supported; send a Content-Length");
    if (r->version == 11 && !r->host)
        return fail(p, 400, "HTTP/1.1 request without Host");
    r->keep_alive = r->version == 11 ? !conn_close : (conn_keep && !conn_close);
    r->head_len = head_len;
    return 0;
}

/* ---- the incremental driver -------------------------------------------- */

int64_t cai__http_parse(struct cai__http_parser *p, const char *data, size_t n_bytes,
                        const struct cai__http_limits *lim)
{
    if (p->status)
        return -1;
    if (!p->line_ok) {
        /* Skip empty lines before the request line (RFC 9112 §2.2). */
        size_t i = p->lead;
        for (;;) {
            if (i < n_bytes && data[i] == '\n') {
                i++;
            } else if (i + 1 < n_bytes && data[i] == '\r' && data[i + 1] == '\n') {
                i += 2;
            } else {
                break;
            }
        }
        p->lead = i;
        if (p->lead > lim->max_head)
            return fail(p, 431, "request head too large");
        if (i >= n_bytes || (data[i] == '\r' && i + 1 == n_bytes))
            return 0;
        if (p->scan < p->lead)
            p->scan = p->lead;
        const char *lf = memchr(data + p->scan, '\n', n_bytes - p->scan);
        /* The limits are checked as if the bytes arrived one at a time, so
         * the answer does not depend on how they were split: a prefix of
         * t414 bytes without a line feed has too long a request line, one of
         * t431 bytes too large a head; the first of the two to be reached
         * before the line feed (at index e) decides. */
        size_t e = lf ? (size_t)(lf - data) : n_bytes;
        size_t t414 = p->lead + lim->max_line + 2, t431 = lim->max_head + 1;
        if (CAI_MIN(t414, t431) <= e)
            return t414 <= t431 ? fail(p, 414, "request line too long")
                                : fail(p, 431, "request head too large");
        if (!lf) {
            p->scan = n_bytes;
            return 0;
        }
        size_t n_line = line_len_without_cr(data + p->lead, e - p->lead);
        if (n_line > lim->max_line)
            return fail(p, 414, "request line too long");
        if (parse_request_line(p, data + p->lead, n_line, &p->req) < 0)
            return -1;
        p->line_ok = true;
        p->scan = e; /* the head may end right after the request line */
    }
    if (!p->head_done) {
        /* Look for LF (CR) LF from where the last call stopped. */
        size_t i = p->scan, end = 0;
        for (; i < n_bytes; i++) {
            if (data[i] != '\n')
                continue;
            if (i + 1 >= n_bytes)
                break;
            if (data[i + 1] == '\n') {
                end = i + 2;
                break;
            }
            if (data[i + 1] == '\r') {
                if (i + 2 >= n_bytes)
                    break;
                if (data[i + 2] == '\n') {
                    end = i + 3;
                    break;
                }
            }
        }
        if (!end) {
            p->scan = i;
            if (n_bytes > lim->max_head)
                return fail(p, 431, "request head too large");
            return 0;
        }
        if (end > lim->max_head)
            return fail(p, 431, "request head too large");
        if (parse_head(p, data, p->lead, end, lim, &p->req) < 0)
            return -1;
        p->head_done = true;
        p->head_len = end;
    }
    uint64_t total = (uint64_t)p->head_len + p->req.content_length;
    if ((uint64_t)n_bytes < total)
        return 0;
    /* The data may have moved since the head was parsed: point into it again. */
    if (parse_head(p, data, p->lead, p->head_len, lim, &p->req) < 0)
        return -1;
    p->req.body = data + p->head_len;
    p->req.body_len = (size_t)p->req.content_length;
    return (int64_t)total;
}

const char *cai__http_header(const struct cai__http_request *r, const char *name, size_t *len)
{
    for (uint32_t i = 0; i < r->n_headers; i++) {
        const struct cai__http_header *h = &r->headers[i];
        if (eq_nocase(h->name, h->name_len, name)) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

bool cai__http_path_is(const struct cai__http_request *r, const char *s)
{
    return r->path && strlen(s) == r->path_len && memcmp(r->path, s, r->path_len) == 0;
}

/* ---- responses --------------------------------------------------------- */

const char *cai__http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

bool cai__http_write_head(struct cai__buf *b, int status, const char *content_type,
                          int64_t content_length, bool chunked, bool keep_alive,
                          const char *extra_headers)
{
    char date[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cai__buf_printf(b, "HTTP/1.1 %d %s\r\nServer: coreai\r\nDate: %s\r\n", status,
                    cai__http_reason(status), date);
    /* 1xx, 204 and 304 responses have no body and may not say how long it is. */
    bool no_body = status < 200 || status == 204 || status == 304;
    if (content_type)
        cai__buf_printf(b, "Content-Type: %s\r\n", content_type);
    if (!no_body && content_length >= 0)
        cai__buf_printf(b, "Content-Length: %lld\r\n", (long long)content_length);
    else if (!no_body && chunked)
        cai__buf_puts(b, "Transfer-Encoding: chunked\r\n");
    bool delimited = no_body || content_length >= 0 || chunked;
    cai__buf_puts(b, keep_alive && delimited ? "Connection: keep-alive\r\n"
                                             : "Connection: close\r\n");
    if (extra_headers)
        cai__buf_puts(b, extra_headers);
    return cai__buf_put(b, "\r\n", 2);
}

bool cai__http_write_chunk(struct cai__buf *b, bool chunked, const void *data, size_t n_bytes)
{
    if (n_bytes == 0)
        return !b->failed;
    if (chunked)
        cai__buf_printf(b, "%zx\r\n", n_bytes);
    cai__buf_put(b, data, n_bytes);
    if (chunked)
        cai__buf_put(b, "\r\n", 2);
    return !b->failed;
}

bool cai__http_write_last_chunk(struct cai__buf *b, bool chunked)
{
    if (chunked)
        cai__buf_put(b, "0\r\n\r\n", 5);
    return !b->failed;
}

bool cai__http_write_sse(struct cai__buf *b, bool chunked, const char *data, size_t n_bytes)
{
    /* Every CR or LF in data starts a new "data:" line (SSE treats both as
     * line ends). Size the event first so it can go out as one chunk:
     * "data: " + line + "\n" per line, and the blank line that ends it. */
    size_t n_lines = 1;
    for (size_t i = 0; i < n_bytes; i++)
        n_lines += data[i] == '\n' || data[i] == '\r';
    size_t size;
    if (!cai__mul_size(n_lines, 6, &size) || !cai__add_size(size, n_bytes, &size) ||
        !cai__add_size(size, 2, &size)) {
        b->failed = true;
        return false;
    }
    if (chunked)
        cai__buf_printf(b, "%zx\r\n", size);
    size_t s = 0;
    for (size_t i = 0; i <= n_bytes; i++) {
        if (i == n_bytes || data[i] == '\n' || data[i] == '\r') {
            cai__buf_put(b, "data: ", 6);
            cai__buf_put(b, data + s, i - s);
            cai__buf_putc(b, '\n');
            s = i + 1;
        }
    }
    cai__buf_putc(b, '\n');
    if (chunked)
        cai__buf_put(b, "\r\n", 2);
    return !b->failed;
}
