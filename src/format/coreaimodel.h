/* coreaimodel.h: the validating, zero-copy `.coreaimodel` reader.
 *
 * The format is specified in docs/FORMAT.md: a 128-byte header, a tensor
 * table (checksum, layout and flags per tensor), a directory encoded as a
 * GGUF v3 header, and page-aligned tensor data. cai__cam_open() returns the
 * same `struct cai_gguf` the GGUF reader returns, pointing into a read-only
 * mapping of the whole file, so everything that reads GGUF (the model loader,
 * inspect) reads a .coreaimodel unchanged; cai__gguf_close() frees it.
 *
 * Everything is checked before use: header fields against each other and the
 * file size, the header checksum, the directory with the GGUF reader's rules,
 * and every table entry against the directory. Tensor checksums are checked
 * by cai__cam_verify() (opening does not read tensor data). No function here
 * prints or aborts; failures return a negative CAI_E* code and a message. */
#ifndef CAI_COREAIMODEL_H
#define CAI_COREAIMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "gguf.h"

#define CAI_CAM_MAGIC         "\x89" "CAI\r\n\x1a\n"
#define CAI_CAM_MAGIC_BYTES   8
#define CAI_CAM_VERSION_MAJOR 1
#define CAI_CAM_VERSION_MINOR 0
#define CAI_CAM_HEADER_BYTES  128
#define CAI_CAM_ENTRY_BYTES   32
#define CAI_CAM_MIN_ALIGNMENT 4096u
#define CAI_CAM_MAX_ALIGNMENT (1u << 24)
#define CAI_CAM_DEFAULT_ALIGNMENT 16384u
#define CAI_CAM_CHECKSUM_XXH64 1u
#define CAI_CAM_FLAG_EXPERT_MAJOR 1u

/* The decoded file header (docs/FORMAT.md §3). */
struct cai_cam_header {
    uint16_t version_major, version_minor;
    uint32_t header_bytes;
    uint32_t alignment;
    uint32_t checksum_kind;
    uint64_t file_bytes;
    uint64_t n_tensors;
    uint64_t table_offset;
    uint64_t dir_offset, dir_bytes;
    uint64_t data_offset, data_bytes;
    uint64_t meta_checksum;
    uint64_t header_checksum;
};

/* One tensor table entry (docs/FORMAT.md §5). */
struct cai_cam_entry {
    uint64_t offset;   /* absolute file offset */
    uint64_t n_bytes;
    uint64_t checksum; /* XXH64, seed 0 */
    uint16_t layout;   /* 0: canonical GGUF layout */
    uint16_t flags;    /* CAI_CAM_FLAG_* */
};

/* True when the first n bytes of a file start with the .coreaimodel magic. */
bool cai__cam_is_file(const uint8_t *head, size_t n);

/* Opens and validates `path`. On success *out is a directory exactly like the
 * GGUF reader's (kv[], tensors[] pointing into the mapping; `base` and
 * `n_bytes` the whole file; `data_offset` the absolute data offset; `version`
 * the directory's GGUF version, 3). Free it with cai__gguf_close(). */
int cai__cam_open(struct cai_gguf **out, const char *path, struct cai_error *err);
/* The same over a caller-owned buffer (borrowed; must outlive the result).
 * `name` appears in messages. For fuzzing and tests. */
int cai__cam_open_buffer(struct cai_gguf **out, const void *data, uint64_t n_bytes,
                         const char *name, struct cai_error *err);

/* Reads the header and table entry i of a directory that cai__cam_open*
 * returned. Both return false when `g` is not a .coreaimodel (a GGUF file)
 * or i is out of range. */
bool cai__cam_header(const struct cai_gguf *g, struct cai_cam_header *out);
bool cai__cam_entry(const struct cai_gguf *g, uint64_t i, struct cai_cam_entry *out);

/* Called by cai__cam_verify after each tensor: its index, name (NUL-
 * terminated), whether its checksum matched, and the bytes hashed so far of
 * the total. Return nonzero to stop early (verify then fails CAI_ECANCELLED). */
typedef int (*cai_cam_verify_fn)(void *user, uint64_t i, const char *name, bool ok,
                                 uint64_t done_bytes, uint64_t total_bytes);

struct cai_cam_verify_result {
    uint64_t n_tensors;
    uint64_t n_bad;         /* tensors whose checksum does not match */
    bool     meta_ok;       /* the meta checksum matched */
    bool     padding_ok;    /* every padding byte is zero */
    uint64_t bytes_hashed;
};

/* Checks every checksum of an opened .coreaimodel (docs/FORMAT.md §8): the
 * meta checksum, each tensor's, and that padding is zero. Returns 0 when all
 * match, CAI_EFORMAT (naming the first failure) when any does not, or
 * CAI_EINVAL when `g` is not a .coreaimodel. `res` and `cb` may be NULL. */
int cai__cam_verify(const struct cai_gguf *g, cai_cam_verify_fn cb, void *user,
                    struct cai_cam_verify_result *res, struct cai_error *err);

/* ---- XXH64 ------------------------------------------------------------- */

/* Streaming XXH64 (xxHash 64-bit, per its specification). */
struct cai_xxh64 {
    uint64_t v[4];
    uint64_t total;
    uint64_t seed;
    uint8_t  mem[32];
    uint32_t n_mem;
};

void     cai__xxh64_init(struct cai_xxh64 *s, uint64_t seed);
void     cai__xxh64_update(struct cai_xxh64 *s, const void *data, size_t n_bytes);
uint64_t cai__xxh64_digest(const struct cai_xxh64 *s);
uint64_t cai__xxh64(const void *data, size_t n_bytes, uint64_t seed);

/* Encodes / decodes a header (128 bytes). encode fills header_checksum. */
void cai__cam_header_encode(struct cai_cam_header *h, uint8_t out[CAI_CAM_HEADER_BYTES]);
void cai__cam_entry_encode(const struct cai_cam_entry *e, uint8_t out[CAI_CAM_ENTRY_BYTES]);

/* Skips one encoded GGUF array body (element type, count, elements) at p,
 * never reading past `end`; nesting deeper than 8 fails. Returns the position
 * after it, or NULL when it does not fit. `depth` is 1 for a kv's array. */
const uint8_t *cai__cam_skip_array(const uint8_t *p, const uint8_t *end, int depth);

#endif /* CAI_COREAIMODEL_H */
