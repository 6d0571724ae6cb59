/* json.h: a strict, length-bounded, non-recursive JSON (RFC 8259) parser.
 *
 * cai__json_parse() reads exactly n_bytes (no NUL needed) into a flat array
 * of nodes in document order: a container is followed by its children, and
 * each node records the index one past its subtree, so walking never
 * recurses. Object members are a STRING key node followed by its value node.
 * Strings are decoded (escapes, surrogate pairs) into the document's own
 * copy of the text and carry a length, so they may hold NUL bytes.
 *
 * Refused, with a message naming the byte offset: anything outside the
 * grammar, trailing content, invalid UTF-8 (overlongs, surrogates, > U+10FFFF),
 * unpaired surrogate escapes, raw control characters in strings, nesting
 * deeper than max_depth, and documents of more than 2^31 bytes. Memory is
 * O(n_bytes). Numbers are kept as doubles and, for integer literals, exactly
 * as 64-bit integers. The library never prints or aborts. */
#ifndef CAI_JSON_H
#define CAI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

enum cai_json_type {
    CAI_JSON_NULL = 0,
    CAI_JSON_FALSE,
    CAI_JSON_TRUE,
    CAI_JSON_NUMBER,
    CAI_JSON_STRING,
    CAI_JSON_ARRAY,
    CAI_JSON_OBJECT,
};

#define CAI_JSON_DEFAULT_DEPTH 64

struct cai_json_node {
    uint8_t     type;   /* enum cai_json_type */
    bool        is_int; /* NUMBER: integer literal whose value fits int64 or uint64 */
    bool        neg;    /* NUMBER: negative integer literal */
    uint32_t    n;      /* ARRAY: elements; OBJECT: members */
    uint32_t    end;    /* index one past this node's subtree */
    uint32_t    offset; /* byte offset in the text, for messages */
    const char *s;      /* STRING: decoded bytes (NUL-terminated too) */
    size_t      len;    /* STRING: byte length */
    double      num;    /* NUMBER */
    uint64_t    mag;    /* NUMBER, is_int: |value| */
};

struct cai_json;

/* Parses text[0..n_bytes). max_depth <= 0 means CAI_JSON_DEFAULT_DEPTH.
 * `name` appears in messages. */
int  cai__json_parse(struct cai_json **out, const char *text, size_t n_bytes, int max_depth,
                     const char *name, struct cai_error *err);
void cai__json_free(struct cai_json *j); /* NULL is a no-op */

const struct cai_json_node *cai__json_root(const struct cai_json *j);
uint32_t                    cai__json_n_nodes(const struct cai_json *j);

/* Children: the first element of an array or the first key of an object;
 * NULL when empty or not a container. cai__json_next gives the next element
 * or key after `cur` (a child of `parent`), or NULL. A key's value is
 * cai__json_value(key). */
const struct cai_json_node *cai__json_first(const struct cai_json *j,
                                            const struct cai_json_node *parent);
const struct cai_json_node *cai__json_next(const struct cai_json *j,
                                           const struct cai_json_node *parent,
                                           const struct cai_json_node *cur);
const struct cai_json_node *cai__json_value(const struct cai_json_node *key);
/* The value of the first member named `key` of object `obj`, or NULL. */
const struct cai_json_node *cai__json_get(const struct cai_json *j,
                                          const struct cai_json_node *obj, const char *key);

/* Typed views; false when the node is NULL or of another type / range. */
bool cai__json_is(const struct cai_json_node *n, int type);
bool cai__json_str_eq(const struct cai_json_node *n, const char *s);
bool cai__json_u64(const struct cai_json_node *n, uint64_t *out); /* integer >= 0 */
bool cai__json_i64(const struct cai_json_node *n, int64_t *out);  /* integer */
bool cai__json_f64(const struct cai_json_node *n, double *out);   /* any number */
bool cai__json_bool(const struct cai_json_node *n, bool *out);

#endif /* CAI_JSON_H */
