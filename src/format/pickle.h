/* pickle.h: a restricted pickle reader for PyTorch state_dicts.
 *
 * This is not an unpickler: no code from the file ever runs and no Python
 * object is created. It is a small stack machine over the opcodes a
 * torch.save'd state_dict uses (protocols 2 to 5) that builds a tree of
 * plain values: None, bools, integers, floats, strings, bytes, tuples,
 * lists, dicts, storages (persistent ids) and tensors. GLOBAL may name only
 *
 *     collections.OrderedDict            torch._utils._rebuild_tensor_v2
 *     torch._utils._rebuild_parameter    torch.<Type>Storage (Float, Half,
 *                                        BFloat16, Double, Long, Int, Short,
 *                                        Char, Byte, Bool)
 *
 * and REDUCE may only call the first three. Any other global (os.system,
 * builtins.eval, a model class...) fails with a message naming it; a model
 * class gets a hint to save model.state_dict() instead. Limits: stack and
 * object count bounded by the input size and by CAI_PK_MAX_STACK, MARK
 * nesting by CAI_PK_MAX_MARKS, memo indexes below CAI_PK_MAX_MEMO, tensor
 * ranks up to 8. Nothing recurses on the input's nesting. */
#ifndef CAI_PICKLE_H
#define CAI_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define CAI_PK_MAX_STACK (1u << 22)
#define CAI_PK_MAX_MARKS 4096u
#define CAI_PK_MAX_MEMO  (1u << 22)
#define CAI_PK_MAX_DIMS  8

enum cai_pk_type {
    CAI_PK_NONE = 0,
    CAI_PK_BOOL,
    CAI_PK_INT,
    CAI_PK_FLOAT,
    CAI_PK_STR,
    CAI_PK_BYTES,
    CAI_PK_TUPLE,
    CAI_PK_LIST,
    CAI_PK_DICT,
    CAI_PK_GLOBAL,  /* one of the allowed globals (g_id) */
    CAI_PK_STORAGE, /* a persistent id ('storage', type, key, location, numel) */
    CAI_PK_TENSOR,
};

/* Allowed globals. */
enum cai_pk_global {
    CAI_PKG_ORDERED_DICT = 1,
    CAI_PKG_REBUILD_TENSOR_V2,
    CAI_PKG_REBUILD_PARAMETER,
    CAI_PKG_STORAGE_FIRST, /* storage types follow, see cai__pk_storage_name */
};

struct cai_pk_obj {
    uint8_t             type;  /* enum cai_pk_type */
    int64_t             i;     /* INT, BOOL; GLOBAL: enum cai_pk_global; STORAGE: numel */
    double              f;     /* FLOAT */
    const char         *s;     /* STR/BYTES (into the input); STORAGE: key */
    size_t              len;
    uint32_t            n;     /* items; a DICT has n / 2 pairs (key, value, ...) */
    uint32_t            cap;
    struct cai_pk_obj **items;
    /* STORAGE: storage type (a GLOBAL id >= CAI_PKG_STORAGE_FIRST).
     * TENSOR: storage object, offset, shape and stride (elements). */
    int                 storage_type;
    struct cai_pk_obj  *storage;
    int64_t             offset;
    uint32_t            n_dims;
    int64_t             shape[CAI_PK_MAX_DIMS];
    int64_t             stride[CAI_PK_MAX_DIMS];
};

struct cai_pickle;

/* Parses data[0..n_bytes) (borrowed: strings point into it). `name` is used
 * in messages. On success *root is the value STOP returned. */
int  cai__pk_parse(struct cai_pickle **out, const struct cai_pk_obj **root, const void *data,
                   size_t n_bytes, const char *name, struct cai_error *err);
void cai__pk_free(struct cai_pickle *p); /* NULL is a no-op */

/* "FloatStorage" etc. for a storage type id; NULL when out of range. */
const char *cai__pk_storage_name(int storage_type);
/* Element size in bytes of a storage type. */
uint32_t    cai__pk_storage_elem_size(int storage_type);

#endif /* CAI_PICKLE_H */
