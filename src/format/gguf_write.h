/* gguf_write.h: an in-memory GGUF builder for tests and tools.
 *
 * Collect key/value pairs and tensors, then serialize to a buffer or write a
 * file (through a temporary file and rename, so a reader never sees half a
 * file). The output is GGUF v2 or v3, little-endian: the header, the kvs in
 * the order they were added, the tensor infos in the order they were added,
 * zero padding to the alignment, then each tensor's bytes at the next aligned
 * offset. The file ends right after the last tensor (no trailing padding);
 * a file without tensors ends after the kvs.
 *
 * Tensor data is borrowed: the pointer given to add_tensor must stay valid
 * until the last serialize/write_file call. Keys and names are copied.
 *
 * Every function returns 0 or a negative CAI_E* code and, when `err` is not
 * NULL, a message naming the key or tensor. Bad arguments (duplicate keys or
 * tensor names, a tensor whose byte count does not match its shape and type,
 * an unknown type) are CAI_EINVAL. A writer is used by one thread at a time. */
#ifndef CAI_GGUF_WRITE_H
#define CAI_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

struct cai_gguf_writer;

/* `version` is 2 or 3. */
int  cai__gguf_writer_new(struct cai_gguf_writer **out, uint32_t version, struct cai_error *err);
void cai__gguf_writer_free(struct cai_gguf_writer *w); /* NULL is a no-op */

/* Sets the data alignment (a power of two in [8, 2^24]) and records it as the
 * u32 kv `general.alignment` (added, or updated in place if already added
 * as a u32). Without this call the alignment is GGUF's default, 32, and no
 * key is written. Adding `general.alignment` with add_u32 writes the key but
 * does not change the layout. */
int cai__gguf_writer_set_alignment(struct cai_gguf_writer *w, uint32_t alignment,
                                   struct cai_error *err);

/* Scalars. `key` is NUL-terminated, 1..65535 bytes, and must be new. */
int cai__gguf_writer_add_u8(struct cai_gguf_writer *w, const char *key, uint8_t v,
                            struct cai_error *err);
int cai__gguf_writer_add_i8(struct cai_gguf_writer *w, const char *key, int8_t v,
                            struct cai_error *err);
int cai__gguf_writer_add_u16(struct cai_gguf_writer *w, const char *key, uint16_t v,
                             struct cai_error *err);
int cai__gguf_writer_add_i16(struct cai_gguf_writer *w, const char *key, int16_t v,
                             struct cai_error *err);
int cai__gguf_writer_add_u32(struct cai_gguf_writer *w, const char *key, uint32_t v,
                             struct cai_error *err);
int cai__gguf_writer_add_i32(struct cai_gguf_writer *w, const char *key, int32_t v,
                             struct cai_error *err);
int cai__gguf_writer_add_f32(struct cai_gguf_writer *w, const char *key, float v,
                             struct cai_error *err);
int cai__gguf_writer_add_bool(struct cai_gguf_writer *w, const char *key, bool v,
                              struct cai_error *err);
int cai__gguf_writer_add_u64(struct cai_gguf_writer *w, const char *key, uint64_t v,
                             struct cai_error *err);
int cai__gguf_writer_add_i64(struct cai_gguf_writer *w, const char *key, int64_t v,
                             struct cai_error *err);
int cai__gguf_writer_add_f64(struct cai_gguf_writer *w, const char *key, double v,
                             struct cai_error *err);
/* A NUL-terminated string, or `len` bytes (which may contain anything). */
int cai__gguf_writer_add_str(struct cai_gguf_writer *w, const char *key, const char *v,
                             struct cai_error *err);
int cai__gguf_writer_add_strn(struct cai_gguf_writer *w, const char *key, const char *v,
                              uint64_t len, struct cai_error *err);

/* An array of `n` fixed-size elements of `elem_type` (any value type but
 * STRING and ARRAY), given in the host's representation: uint8_t[] for U8,
 * int16_t[] for I16, float[] for F32, bool[] for BOOL (0/1), and so on. */
int cai__gguf_writer_add_arr(struct cai_gguf_writer *w, const char *key, uint32_t elem_type,
                             const void *elems, uint64_t n, struct cai_error *err);
/* An array of `n` NUL-terminated strings. */
int cai__gguf_writer_add_arr_str(struct cai_gguf_writer *w, const char *key,
                                 const char *const *strs, uint64_t n, struct cai_error *err);
/* The same with lens[i] bytes for string i (lens == NULL: NUL-terminated). */
int cai__gguf_writer_add_arr_strn(struct cai_gguf_writer *w, const char *key,
                                  const char *const *strs, const uint32_t *lens, uint64_t n,
                                  struct cai_error *err);
/* Any value, already encoded: `n_bytes` bytes that follow the u32 type in
 * the file (for a nested array: element type, count, elements). Not checked:
 * this is how tests write values the reader must reject. */
int cai__gguf_writer_add_raw(struct cai_gguf_writer *w, const char *key, uint32_t type,
                             const void *value, size_t n_bytes, struct cai_error *err);

/* Whether `key` was added. */
bool cai__gguf_writer_has_kv(const struct cai_gguf_writer *w, const char *key);
/* The encoded kv records, back to back in the order added (GGUF's encoding
 * of each: key string, u32 type, value), valid until the next add; returns
 * how many. For containers that embed a GGUF directory (.coreaimodel). */
uint64_t cai__gguf_writer_kv_records(const struct cai_gguf_writer *w, const uint8_t **records,
                                     size_t *n_bytes);
/* The name key errors give the writer ("gguf writer" by default); `label`
 * is borrowed and must outlive the writer. */
void cai__gguf_writer_set_label(struct cai_gguf_writer *w, const char *label);

/* A tensor of `n_dims` (1..4) dimensions `ne` (ne[0] innermost, each >= 1)
 * and GGUF type id `type`; `n_bytes` must equal the size the shape and type
 * imply. `data` is borrowed (see above); NULL writes zeros. The name is
 * 1..64 bytes and must be new. */
int cai__gguf_writer_add_tensor(struct cai_gguf_writer *w, const char *name, uint32_t n_dims,
                                const int64_t *ne, uint32_t type, const void *data,
                                uint64_t n_bytes, struct cai_error *err);

/* The size the file will have. */
uint64_t cai__gguf_writer_size(const struct cai_gguf_writer *w);

/* Serializes into a new buffer (free with cai__free). */
int cai__gguf_writer_serialize(const struct cai_gguf_writer *w, uint8_t **out, size_t *n_bytes,
                               struct cai_error *err);

/* Writes `path` atomically: a temporary file in the same directory, fsync,
 * then rename over `path`. On failure `path` is untouched and no temporary
 * file is left behind. */
int cai__gguf_writer_write_file(const struct cai_gguf_writer *w, const char *path,
                                struct cai_error *err);

#endif /* CAI_GGUF_WRITE_H */
