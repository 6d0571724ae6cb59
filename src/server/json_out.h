/* json_out.h: a bounded byte buffer and a JSON writer on top of it, for the
 * server's responses.
 *
 * struct cai__buf grows on demand up to a hard limit (`max`); a write that
 * would pass the limit, or an allocation that fails, sets `failed` and is
 * dropped, and every later write is dropped too, so callers check once at
 * the end instead of after every call. Bytes may be taken off the front
 * (cai__buf_consume), which makes the same type serve as an output queue.
 *
 * struct cai__jw writes RFC 8259 JSON: strings are escaped (quote, backslash,
 * control characters), valid UTF-8 passes through unchanged and every byte
 * of an invalid sequence becomes U+FFFD, so the output is always valid UTF-8
 * and valid JSON. Commas are placed automatically; nesting is bounded by
 * CAI__JW_MAX_DEPTH. Non-finite numbers are written as null. Nothing here
 * prints or aborts. */
#ifndef CAI_SERVER_JSON_OUT_H
#define CAI_SERVER_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

/* ---- bounded buffer ---------------------------------------------------- */

struct cai__buf {
    char  *data;   /* [cap] bytes; data[0..n) valid; NUL after n when cap > n */
    size_t n;      /* bytes in use */
    size_t cap;    /* bytes allocated */
    size_t max;    /* most bytes it may ever hold */
    bool   failed; /* a write was dropped (limit or out of memory) */
};

/* Prepares an empty buffer that may hold up to max_bytes. Allocates nothing. */
void cai__buf_init(struct cai__buf *b, size_t max_bytes);
void cai__buf_free(struct cai__buf *b);
/* Empties the buffer and clears `failed`, keeping the allocation. */
void cai__buf_reset(struct cai__buf *b);
/* Makes room for `extra` more bytes; false (and `failed`) if it cannot. */
bool cai__buf_reserve(struct cai__buf *b, size_t extra);
bool cai__buf_put(struct cai__buf *b, const void *data, size_t n_bytes);
bool cai__buf_puts(struct cai__buf *b, const char *s);
bool cai__buf_putc(struct cai__buf *b, char c);
bool cai__buf_printf(struct cai__buf *b, const char *fmt, ...) CAI__PRINTF(2, 3);
/* Drops the first n_bytes (all of them when n_bytes >= n). */
void cai__buf_consume(struct cai__buf *b, size_t n_bytes);

/* ---- JSON writer ------------------------------------------------------- */

#define CAI__JW_MAX_DEPTH 32

struct cai__jw {
    struct cai__buf *b;
    int              depth;                        /* open containers */
    bool             first[CAI__JW_MAX_DEPTH + 1];  /* no element yet at this level */
    bool             is_obj[CAI__JW_MAX_DEPTH + 1]; /* the container at this level is an object */
    bool             after_key;                    /* a key was written, its value is next */
    bool             failed;                       /* misuse (depth, key outside object) */
};

/* Starts writing one JSON value into b (appending). */
void cai__jw_init(struct cai__jw *w, struct cai__buf *b);
void cai__jw_obj(struct cai__jw *w);     /* { */
void cai__jw_obj_end(struct cai__jw *w); /* } */
void cai__jw_arr(struct cai__jw *w);     /* [ */
void cai__jw_arr_end(struct cai__jw *w); /* ] */
/* A member name; the next call writes its value. */
void cai__jw_key(struct cai__jw *w, const char *key);
void cai__jw_str(struct cai__jw *w, const char *s); /* NULL writes null */
void cai__jw_strn(struct cai__jw *w, const char *s, size_t n_bytes);
void cai__jw_int(struct cai__jw *w, int64_t v);
void cai__jw_uint(struct cai__jw *w, uint64_t v);
void cai__jw_num(struct cai__jw *w, double v); /* %.17g; NaN and infinities as null */
void cai__jw_bool(struct cai__jw *w, bool v);
void cai__jw_null(struct cai__jw *w);
/* True when everything so far was written and every container is closed. */
bool cai__jw_ok(const struct cai__jw *w);

/* Appends s[0..n) as the inside of a JSON string (no quotes), escaped as
 * described above. Exposed for writers of other formats and for tests. */
bool cai__json_escape(struct cai__buf *b, const char *s, size_t n_bytes);

#endif /* CAI_SERVER_JSON_OUT_H */
