/* protobuf.h: a zero-copy reader for the protobuf wire format.
 *
 * A `struct cml__pb` is a cursor over the bytes of one message. Each call to
 * cml__pb_next() decodes one record (tag plus value) and never reads past the
 * end of the message: varints are limited to 10 bytes, lengths are compared
 * with the bytes that remain, field numbers must be 1..2^29-1, and the group
 * wire types (deprecated, never written by proto3) are rejected. LEN values
 * are returned as a pointer into the caller's buffer; nothing is copied or
 * allocated. Nesting depth is the caller's to bound: every decoder that opens
 * a sub-message passes depth + 1 and checks it against CML__PB_MAX_DEPTH.
 *
 * Errors name the byte offset from the start of the file (`base`), so a
 * message reads "offset 1234: varint longer than 10 bytes". */
#ifndef CML_PROTOBUF_H
#define CML_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

enum cml__pb_wire {
    CML__PB_VARINT = 0,
    CML__PB_I64 = 1,
    CML__PB_LEN = 2,
    CML__PB_SGROUP = 3,
    CML__PB_EGROUP = 4,
    CML__PB_I32 = 5,
};

/* Deepest message nesting any decoder accepts. */
#define CML__PB_MAX_DEPTH 64

/* A cursor over one message: [p, end). `base` is the start of the whole
 * buffer, used only to report offsets. */
struct cml__pb {
    const uint8_t *p;
    const uint8_t *end;
    const uint8_t *base;
};

/* One decoded record. For VARINT, `u` holds the value; for I64 and I32 the
 * raw little-endian bits; for LEN, `data`/`n_bytes` the payload (inside the
 * buffer, not NUL-terminated). `off` is the record's offset in the buffer. */
struct cml__pb_field {
    uint32_t       num;
    uint32_t       wire;
    uint64_t       u;
    const uint8_t *data;
    size_t         n_bytes;
    size_t         off;
};

static inline void cml__pb_init(struct cml__pb *r, const void *data, size_t n_bytes)
{
    r->p = data;
    r->end = r->p + n_bytes;
    r->base = r->p;
}

/* A cursor over the payload of LEN field `f` (same base as `parent`). */
static inline void cml__pb_sub(struct cml__pb *sub, const struct cml__pb *parent,
                               const struct cml__pb_field *f)
{
    sub->p = f->data;
    sub->end = f->data + f->n_bytes;
    sub->base = parent->base;
}

/* Reads the next record into *f. Returns 1 when one was read, 0 at the end of
 * the message, or a negative CAI_E* code (message in err). */
int cml__pb_next(struct cml__pb *r, struct cml__pb_field *f, struct cai_error *err);

/* Reads one varint from [*p, end), advancing *p. Returns 0 or CAI_EFORMAT. */
int cml__pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out);

/* ---- typed views of one record ------------------------------------------
 * Each checks the wire type and returns 0 or CAI_EFORMAT with a message that
 * names `what` (a field name such as "TreeNode.branchFeatureValue"). */
int cml__pb_u64(const struct cml__pb_field *f, const char *what, uint64_t *out,
                struct cai_error *err);
int cml__pb_i64(const struct cml__pb_field *f, const char *what, int64_t *out,
                struct cai_error *err);
/* int32 / enum: a varint whose value fits in int32 (negative ones are
 * sign-extended to 64 bits on the wire). */
int cml__pb_i32(const struct cml__pb_field *f, const char *what, int32_t *out,
                struct cai_error *err);
int cml__pb_bool(const struct cml__pb_field *f, const char *what, bool *out,
                 struct cai_error *err);
int cml__pb_double(const struct cml__pb_field *f, const char *what, double *out,
                   struct cai_error *err);
int cml__pb_float(const struct cml__pb_field *f, const char *what, float *out,
                  struct cai_error *err);
/* LEN field as bytes/string/sub-message payload. */
int cml__pb_len(const struct cml__pb_field *f, const char *what, struct cai_error *err);

/* ---- repeated scalars, packed or not -------------------------------------
 * proto3 writes repeated numbers packed (one LEN record) but a reader must
 * accept one record per element too, and both forms mixed. These helpers
 * count the elements a record contributes, and decode them into out[]. */

/* Elements that record `f` holds for a repeated double (I64) / float (I32) /
 * varint field: 1 for an unpacked record, n for a packed one. CAI_EFORMAT if
 * the wire type or a packed length does not fit. */
int cml__pb_count_repeated(const struct cml__pb_field *f, enum cml__pb_wire elem_wire,
                           const char *what, size_t *n, struct cai_error *err);
/* Appends the elements of record `f` to out[*n..cap). */
int cml__pb_read_doubles(const struct cml__pb_field *f, const char *what, double *out,
                         size_t cap, size_t *n, struct cai_error *err);
int cml__pb_read_floats(const struct cml__pb_field *f, const char *what, float *out, size_t cap,
                        size_t *n, struct cai_error *err);
/* Varint elements as uint64 (int64 and enums cast by the caller). */
int cml__pb_read_varints(const struct cml__pb_field *f, const char *what, uint64_t *out,
                         size_t cap, size_t *n, struct cai_error *err);

#endif /* CML_PROTOBUF_H */
