/* http.h: an incremental HTTP/1.1 request parser with hard limits, and the
 * few response-writing helpers the server needs (status line and headers,
 * chunked transfer coding, server-sent events, NDJSON lines).
 *
 * The parser works on lengths, never on NUL-terminated text, and never
 * copies: it is called with the bytes received so far (the same start each
 * time, possibly in a moved buffer) and answers "need more", "a complete
 * request of N bytes", or an error with the 4xx/5xx status to send. It
 * remembers how far it searched for the end of the head, so feeding a
 * request one byte at a time costs O(total bytes), not O(n^2).
 *
 * What it accepts (RFC 9112): a request line `METHOD SP target SP
 * HTTP/1.x` (origin-form, absolute-form, or `*`), header fields
 * `name: value` with token names, and a body whose length comes from one
 * Content-Length. Lines end in CRLF or a bare LF; empty lines before the
 * request line are skipped. Refused, with the status in parentheses:
 * request line longer than max_line (414); head longer than max_head or more
 * than max_headers fields (431); Content-Length over max_body (413); a
 * Transfer-Encoding (411: chunked request bodies are not supported), or one
 * next to a Content-Length (400); obsolete line folding, malformed or
 * duplicate Content-Length, duplicate Host, a bare CR, control characters,
 * a space before the colon, a missing Host in HTTP/1.1, a bad request line
 * (400); an Expect other than 100-continue (417); an HTTP version other than
 * 1.0 and 1.1 (505). After an error the connection cannot be resynchronized
 * and should be closed once the error response is sent. */
#ifndef CAI_SERVER_HTTP_H
#define CAI_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_out.h"

/* ---- request parser ---------------------------------------------------- */

/* Capacity of the header array; cai__http_limits.max_headers may not exceed it. */
#define CAI__HTTP_MAX_HEADERS 100

struct cai__http_limits {
    size_t   max_line;    /* request line bytes, without its line end */
    size_t   max_head;    /* request line, header fields and the blank line */
    uint32_t max_headers; /* header fields */
    size_t   max_body;    /* Content-Length */
};
/* 8 KiB line, 32 KiB head, 64 headers, 8 MiB body. */
struct cai__http_limits cai__http_limits_default(void);

enum cai__http_method {
    CAI_HTTP_OTHER = 0,
    CAI_HTTP_GET,
    CAI_HTTP_HEAD,
    CAI_HTTP_POST,
    CAI_HTTP_PUT,
    CAI_HTTP_DELETE,
    CAI_HTTP_OPTIONS,
    CAI_HTTP_PATCH,
};

struct cai__http_header {
    const char *name; /* not NUL-terminated; points into the caller's data */
    size_t      name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t      value_len;
};

/* A parsed request. Every pointer points into the data given to the call
 * that produced it and is valid as long as those bytes are. */
struct cai__http_request {
    int         method; /* enum cai__http_method */
    const char *method_str;
    size_t      method_len;
    const char *target; /* as sent */
    size_t      target_len;
    const char *path; /* target without scheme, authority and query; "/..." */
    size_t      path_len;
    const char *query; /* after '?', or NULL */
    size_t      query_len;
    int         version; /* 10 (HTTP/1.0) or 11 (HTTP/1.1) */
    struct cai__http_header headers[CAI__HTTP_MAX_HEADERS];
    uint32_t    n_headers;
    const char *host; /* the Host field value, or NULL */
    size_t      host_len;
    uint64_t    content_length; /* 0 without a Content-Length */
    bool        keep_alive;      /* from the version and Connection */
    bool        expect_continue; /* Expect: 100-continue */
    size_t      head_len;        /* bytes of the head, blank line included */
    const char *body;            /* [content_length] bytes */
    size_t      body_len;
};

struct cai__http_parser {
    size_t scan;        /* bytes already searched for the end of the head */
    size_t lead;        /* empty lines' bytes before the request line */
    bool   line_ok;     /* the request line arrived and was valid */
    bool   head_done;   /* the whole head arrived and was valid */
    size_t head_len;    /* valid when head_done */
    int    status;      /* HTTP status of the error, when one occurred */
    const char *reason; /* static text naming the error */
    struct cai__http_request req;
};

void cai__http_parser_init(struct cai__http_parser *p);

/* Parses the request at the start of data[0..n_bytes), which must hold the
 * same bytes as the previous call's data plus any that arrived since.
 * Returns the request's length in bytes (head and body; the request is in
 * p->req) when it is complete, 0 when more bytes are needed, or -1 on
 * error (p->status and p->reason say why). While 0 is returned after the
 * head arrived, p->head_done is true and p->req describes the head (for
 * Expect: 100-continue). After a complete request, call
 * cai__http_parser_init before parsing the next one. */
int64_t cai__http_parse(struct cai__http_parser *p, const char *data, size_t n_bytes,
                        const struct cai__http_limits *lim);

/* The value of the first header named `name` (ASCII case-insensitive), or
 * NULL; its length goes to *len. */
const char *cai__http_header(const struct cai__http_request *r, const char *name, size_t *len);

/* True when path[0..n) equals the NUL-terminated s. */
bool cai__http_path_is(const struct cai__http_request *r, const char *s);

/* ---- responses --------------------------------------------------------- */

/* "OK", "Not Found", ...; "Unknown" for codes not in the table. */
const char *cai__http_reason(int status);

/* Appends a status line and headers, ending with the blank line.
 * content_length >= 0 writes Content-Length; otherwise the body is chunked
 * when `chunked` (HTTP/1.1) or delimited by closing the connection. Status
 * 1xx, 204 and 304 get neither (they have no body).
 * extra_headers (may be NULL) is zero or more complete "Name: value\r\n"
 * lines. Returns false when the buffer failed. */
bool cai__http_write_head(struct cai__buf *b, int status, const char *content_type,
                          int64_t content_length, bool chunked, bool keep_alive,
                          const char *extra_headers);
/* Appends data as one chunk (or raw when !chunked). Empty data writes
 * nothing, since an empty chunk would end the body. */
bool cai__http_write_chunk(struct cai__buf *b, bool chunked, const void *data, size_t n_bytes);
/* Ends a chunked body (nothing when !chunked). */
bool cai__http_write_last_chunk(struct cai__buf *b, bool chunked);
/* One server-sent event carrying `data` (each line of it becomes a "data:"
 * line), as one chunk. */
bool cai__http_write_sse(struct cai__buf *b, bool chunked, const char *data, size_t n_bytes);

#endif /* CAI_SERVER_HTTP_H */
