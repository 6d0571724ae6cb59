/* coreaimodel_write.h: writes .coreaimodel files (docs/FORMAT.md).
 *
 * Collect key/values and tensor descriptions, then cai__cam_writer_write()
 * lays the file out, streams each tensor's bytes (hashing them on the way)
 * and publishes the file atomically: it is written as an unnamed temporary
 * file in the destination folder (O_TMPFILE; a named temporary file where
 * that is unavailable), synced, and only then linked and renamed over the
 * destination. A writer killed at any point (SIGKILL) or failing (disk full,
 * file-size limit, a tensor source error) leaves no file under the
 * destination name, and removes its named temporary file when it can.
 *
 * Tensor bytes come either from a borrowed pointer (valid until write
 * returns) or from a fill callback called once, during write, with a buffer
 * of exactly the tensor's size. Keys and names are copied.
 *
 * `general.alignment` is written by the writer itself (it must equal the
 * file's alignment); adding it is refused and copying it is skipped.
 * Functions return 0 or a negative CAI_E* code with a message in `err`
 * (which may be NULL). A writer is used by one thread at a time. */
#ifndef CAI_COREAIMODEL_WRITE_H
#define CAI_COREAIMODEL_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "gguf.h"

struct cai_cam_writer;

int  cai__cam_writer_new(struct cai_cam_writer **out, struct cai_error *err);
void cai__cam_writer_free(struct cai_cam_writer *w); /* NULL is a no-op */

/* A power of two in [4096, 2^24]; default CAI_CAM_DEFAULT_ALIGNMENT. */
int cai__cam_writer_set_alignment(struct cai_cam_writer *w, uint32_t alignment,
                                  struct cai_error *err);

/* ---- key/values (GGUF value types, enum cai_gguf_vtype) ------------------ */

/* Any value, already encoded as GGUF encodes it after the u32 type. */
int cai__cam_writer_add_raw(struct cai_cam_writer *w, const char *key, uint32_t type,
                            const void *value, size_t n_bytes, struct cai_error *err);
int cai__cam_writer_add_u32(struct cai_cam_writer *w, const char *key, uint32_t v,
                            struct cai_error *err);
int cai__cam_writer_add_i32(struct cai_cam_writer *w, const char *key, int32_t v,
                            struct cai_error *err);
int cai__cam_writer_add_u64(struct cai_cam_writer *w, const char *key, uint64_t v,
                            struct cai_error *err);
int cai__cam_writer_add_f32(struct cai_cam_writer *w, const char *key, float v,
                            struct cai_error *err);
int cai__cam_writer_add_bool(struct cai_cam_writer *w, const char *key, bool v,
                             struct cai_error *err);
int cai__cam_writer_add_str(struct cai_cam_writer *w, const char *key, const char *v,
                            struct cai_error *err);
int cai__cam_writer_add_strn(struct cai_cam_writer *w, const char *key, const char *v,
                             uint64_t len, struct cai_error *err);
/* n fixed-size elements in host representation (uint32_t[] for U32, float[]
 * for F32, int32_t[] for I32, ...). */
int cai__cam_writer_add_arr(struct cai_cam_writer *w, const char *key, uint32_t elem_type,
                            const void *elems, uint64_t n, struct cai_error *err);
/* n strings; lens[i] gives each length, or lens == NULL for NUL-terminated. */
int cai__cam_writer_add_arr_str(struct cai_cam_writer *w, const char *key,
                                const char *const *strs, const uint32_t *lens, uint64_t n,
                                struct cai_error *err);
/* Copies kv (of the directory `src`) exactly, nested arrays included. */
int cai__cam_writer_copy_kv(struct cai_cam_writer *w, const struct cai_gguf *src,
                            const struct cai_gguf_kv *kv, struct cai_error *err);
bool cai__cam_writer_has_kv(const struct cai_cam_writer *w, const char *key);

/* ---- tensors -------------------------------------------------------------- */

/* Fills dst (n_bytes, the tensor's size) with the tensor's bytes. */
typedef int (*cai_cam_fill_fn)(void *user, void *dst, uint64_t n_bytes, struct cai_error *err);

/* A tensor of n_dims (1..4) dims ne (ne[0] innermost) and GGUF type `type`,
 * name 1..64 bytes, new. Its bytes: `data` (borrowed), or `fill` called with
 * `user` during write. Tensors are stored in the order they are added. */
int cai__cam_writer_add_tensor(struct cai_cam_writer *w, const char *name, uint32_t n_dims,
                               const int64_t *ne, uint32_t type, const void *data,
                               struct cai_error *err);
int cai__cam_writer_add_tensor_fn(struct cai_cam_writer *w, const char *name, uint32_t n_dims,
                                  const int64_t *ne, uint32_t type, cai_cam_fill_fn fill,
                                  void *user, struct cai_error *err);
/* 3-D tensors named "*_exps.*" are flagged expert-major (docs/FORMAT.md §7). */
uint64_t cai__cam_writer_n_tensors(const struct cai_cam_writer *w);
uint64_t cai__cam_writer_data_bytes(const struct cai_cam_writer *w);

/* ---- writing -------------------------------------------------------------- */

/* Called as tensor data is written: bytes done of the total. */
typedef void (*cai_cam_progress_fn)(void *user, uint64_t done_bytes, uint64_t total_bytes);

/* Writes the file at `path` (see the top of this header). May be called more
 * than once. On failure `path` is untouched (an existing file stays as it
 * was) and the message says why: no space left, the file-size limit
 * (EFBIG: callers should ignore SIGXFSZ to get this instead of a signal),
 * or the fill callback's error. */
int cai__cam_writer_write(struct cai_cam_writer *w, const char *path, cai_cam_progress_fn progress,
                          void *user, struct cai_error *err);

#endif /* CAI_COREAIMODEL_WRITE_H */
