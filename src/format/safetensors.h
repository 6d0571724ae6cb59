/* safetensors.h: a validating, zero-copy reader for .safetensors files.
 *
 * Layout: u64 N (little-endian), N bytes of UTF-8 JSON, then the byte buffer.
 * The JSON object maps tensor names to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the buffer, end exclusive) and may hold
 * "__metadata__": {string: string}.
 *
 * Validation is at least as strict as the reference implementation
 * (huggingface/safetensors `Metadata::validate`): N <= 100,000,000 and
 * 8 + N within the file; the header is a JSON object (first byte '{'); every
 * entry has a known dtype, a shape of non-negative integers and two offsets
 * with begin <= end; sorted by offset, the tensors are contiguous from 0,
 * without gaps or overlaps, and the last one ends exactly at the end of the
 * file; each tensor's byte size equals numel * bits / 8 (a whole number of
 * bytes) without overflow. Beyond the reference: duplicate tensor names are
 * refused, and so are shapes of more than 8 dimensions.
 *
 * Tensor data pointers point into the mapping and may be unaligned. */
#ifndef CAI_SAFETENSORS_H
#define CAI_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"

#define CAI_ST_MAX_HEADER (100u * 1000u * 1000u)
#define CAI_ST_MAX_DIMS   8

enum cai_st_dtype {
    CAI_ST_BOOL, CAI_ST_F4, CAI_ST_F6_E2M3, CAI_ST_F6_E3M2, CAI_ST_U8, CAI_ST_I8,
    CAI_ST_F8_E5M2, CAI_ST_F8_E4M3, CAI_ST_F8_E8M0, CAI_ST_F8_E4M3FNUZ, CAI_ST_F8_E5M2FNUZ,
    CAI_ST_I16, CAI_ST_U16, CAI_ST_F16, CAI_ST_BF16, CAI_ST_I32, CAI_ST_U32, CAI_ST_F32,
    CAI_ST_C64, CAI_ST_F64, CAI_ST_I64, CAI_ST_U64,
    CAI_ST_DTYPE_COUNT
};

struct cai_st_tensor {
    char          *name;     /* NUL-terminated (may not contain NUL: refused) */
    int            dtype;    /* enum cai_st_dtype */
    uint32_t       n_dims;   /* 0 for a scalar */
    int64_t        shape[CAI_ST_MAX_DIMS]; /* outermost first, as in PyTorch */
    uint64_t       n_elem;
    uint64_t       begin;    /* offsets in the byte buffer */
    uint64_t       n_bytes;
    const uint8_t *data;
};

struct cai_safetensors {
    char                 *path;
    struct cai_map        map;
    uint64_t              header_bytes; /* N */
    uint64_t              n_tensors;
    struct cai_st_tensor *tensors;      /* sorted by name */
    uint64_t              n_meta;
    char                **meta_keys, **meta_values; /* __metadata__ */
};

/* Name ("F16") and bits per element of a dtype; NULL / 0 if out of range. */
const char *cai__st_dtype_name(int dtype);
uint32_t    cai__st_dtype_bits(int dtype);

int  cai__st_open(struct cai_safetensors **out, const char *path, struct cai_error *err);
/* Over a caller-owned buffer (borrowed; must outlive the result). */
int  cai__st_open_buffer(struct cai_safetensors **out, const void *data, uint64_t n_bytes,
                         const char *name, struct cai_error *err);
void cai__st_close(struct cai_safetensors *st); /* NULL is a no-op */

const struct cai_st_tensor *cai__st_find(const struct cai_safetensors *st, const char *name);
/* The value of __metadata__[key], or NULL. */
const char *cai__st_meta(const struct cai_safetensors *st, const char *key);

#endif /* CAI_SAFETENSORS_H */
