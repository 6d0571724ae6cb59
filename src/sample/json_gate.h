/* json_gate.h: decides, byte by byte, whether a text can still become one
 * JSON object (RFC 8259), for JSON-mode generation: a token whose bytes
 * would leave every valid object behind is never sampled, and generation
 * ends when the object closes.
 *
 * The gate is a small value type (copy it to try a token without committing
 * to it). It accepts: optional whitespace, then one object, nested to at
 * most CAI__JGATE_MAX_DEPTH containers; strings with JSON escapes (a
 * \u high surrogate only when a \u low surrogate follows, never a lone low
 * one) and valid UTF-8 (no overlongs, no surrogates, nothing above
 * U+10FFFF); numbers in
 * JSON's grammar, at most CAI__JGATE_MAX_NUMBER characters; true, false,
 * null. Runs of whitespace longer than CAI__JGATE_MAX_WS are refused so a
 * model cannot pad forever. No
 * allocation; depends on nothing. */
#ifndef CAI_JSON_GATE_H
#define CAI_JSON_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAI__JGATE_MAX_DEPTH 32
#define CAI__JGATE_MAX_WS    16
#define CAI__JGATE_MAX_NUMBER 64 /* characters in one number */

struct cai__jgate {
    uint8_t  st;       /* parser state (json_gate.c) */
    uint8_t  sub;      /* number sub-state / literal position / hex digits left */
    uint8_t  lit;      /* which literal (true/false/null) */
    uint8_t  utf_left; /* UTF-8 continuation bytes still expected */
    uint8_t  utf_lo, utf_hi; /* allowed range of the next continuation byte */
    uint8_t  ws;       /* length of the current whitespace run */
    uint8_t  num_len;  /* characters of the number being read */
    uint8_t  key;      /* the string being read is an object key */
    uint8_t  low;      /* the \u escape being read must be a low surrogate */
    uint16_t cp;       /* hex digits of that escape so far */
    uint8_t  depth;
    uint8_t  stack[CAI__JGATE_MAX_DEPTH]; /* '{' or '[' */
};

void cai__jgate_init(struct cai__jgate *g);
/* Feeds n bytes. false when they cannot continue a valid object (g is then
 * unspecified: feed a copy when trying). */
bool cai__jgate_feed(struct cai__jgate *g, const char *s, size_t n);
/* The object is complete: nothing may follow. */
bool cai__jgate_done(const struct cai__jgate *g);

#endif /* CAI_JSON_GATE_H */
