/* gguf.h: a validating, zero-copy reader for GGUF v2 and v3 files.
 *
 * cai__gguf_open() maps the file read-only and checks everything before any
 * of it is used: every count, string length, array length, dimension, type
 * id, offset and size is bounded by the bytes that remain; tensor data lies
 * inside the data section, aligned, without overlaps; names and keys are
 * unique. After a successful open every pointer in the structs below points
 * inside the mapping and may be used without further checks. The reader never
 * prints or aborts; failures return a negative CAI_E* code and a message that
 * names the file, the field and the problem. */
#ifndef CAI_GGUF_H
#define CAI_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"

enum cai_gguf_vtype {
    CAI_GGUF_U8 = 0,
    CAI_GGUF_I8 = 1,
    CAI_GGUF_U16 = 2,
    CAI_GGUF_I16 = 3,
    CAI_GGUF_U32 = 4,
    CAI_GGUF_I32 = 5,
    CAI_GGUF_F32 = 6,
    CAI_GGUF_BOOL = 7,
    CAI_GGUF_STRING = 8,
    CAI_GGUF_ARRAY = 9,
    CAI_GGUF_U64 = 10,
    CAI_GGUF_I64 = 11,
    CAI_GGUF_F64 = 12,
};

/* A string inside the mapping: not NUL-terminated. */
struct cai_gguf_str {
    const char *ptr;
    uint64_t    len;
};

struct cai_gguf_kv {
    struct cai_gguf_str key;
    uint32_t            type;     /* enum cai_gguf_vtype */
    /* Scalars (type != ARRAY): the decoded value. Integers are in u64 (zero-
     * extended) and i64 (sign-extended) both; floats in f64; bool in u64. */
    uint64_t            u64;
    int64_t             i64;
    double              f64;
    struct cai_gguf_str str;      /* type == STRING */
    /* Arrays (type == ARRAY): element type and count; elements are read with
     * the cai__gguf_arr_* accessors. Nested arrays are validated and skipped;
     * their elements are not accessible. */
    uint32_t            arr_type;
    uint64_t            arr_n;
    const uint8_t      *arr_data; /* first element in the mapping */
    uint64_t           *arr_str_off; /* STRING arrays: offset of element i from arr_data */
};

struct cai_gguf_tensor {
    struct cai_gguf_str name;
    uint32_t            n_dims;   /* 1..4 */
    int64_t             ne[4];    /* ne[0] innermost; unused dims are 1 */
    uint32_t            type;     /* enum cai_type */
    uint64_t            offset;   /* relative to the data section */
    uint64_t            n_bytes;
    const void         *data;     /* inside the mapping */
};

struct cai_gguf {
    char                   *path;      /* for messages; "<buffer>" name for buffers */
    struct cai_map          map;       /* the whole file */
    const uint8_t          *base;      /* file bytes (map.data or the borrowed buffer) */
    uint64_t                n_bytes;
    uint32_t                version;   /* 2 or 3 */
    uint32_t                alignment; /* general.alignment or 32 */
    uint64_t                n_kv;
    struct cai_gguf_kv     *kv;
    uint64_t                n_tensors;
    struct cai_gguf_tensor *tensors;
    uint64_t                data_offset; /* file offset of the data section */
};

int  cai__gguf_open(struct cai_gguf **out, const char *path, struct cai_error *err);
/* Parses a caller-owned buffer (borrowed; must outlive the result). `name`
 * appears in messages. For fuzzing and tests. */
int  cai__gguf_open_buffer(struct cai_gguf **out, const void *data, uint64_t n_bytes,
                           const char *name, struct cai_error *err);
void cai__gguf_close(struct cai_gguf *g); /* NULL is a no-op */

/* Look-ups by NUL-terminated name; NULL when absent. */
const struct cai_gguf_kv     *cai__gguf_find_kv(const struct cai_gguf *g, const char *key);
const struct cai_gguf_tensor *cai__gguf_find_tensor(const struct cai_gguf *g, const char *name);

/* Typed getters. When the key is absent: returns 1 and leaves *out untouched
 * if !required, else fails. Fails (CAI_EFORMAT, message names file and key)
 * when the value has the wrong type or does not fit. Integer getters accept
 * any integer type whose value fits; the float getter accepts F32 and F64. */
int cai__gguf_get_u32(const struct cai_gguf *g, const char *key, bool required, uint32_t *out,
                      struct cai_error *err);
int cai__gguf_get_i64(const struct cai_gguf *g, const char *key, bool required, int64_t *out,
                      struct cai_error *err);
int cai__gguf_get_f32(const struct cai_gguf *g, const char *key, bool required, float *out,
                      struct cai_error *err);
int cai__gguf_get_bool(const struct cai_gguf *g, const char *key, bool required, bool *out,
                       struct cai_error *err);
int cai__gguf_get_str(const struct cai_gguf *g, const char *key, bool required,
                      struct cai_gguf_str *out, struct cai_error *err);
/* An array of `elem_type` (any element type if elem_type is UINT32_MAX). */
int cai__gguf_get_arr(const struct cai_gguf *g, const char *key, bool required, uint32_t elem_type,
                      const struct cai_gguf_kv **out, struct cai_error *err);

/* Element i (< arr_n, unchecked) of an array of strings / numbers. */
struct cai_gguf_str cai__gguf_arr_str(const struct cai_gguf_kv *kv, uint64_t i);
double              cai__gguf_arr_f64(const struct cai_gguf_kv *kv, uint64_t i); /* any numeric */
int64_t             cai__gguf_arr_i64(const struct cai_gguf_kv *kv, uint64_t i); /* integer/bool */

/* Compares a gguf string with a C string. */
bool cai__gguf_str_eq(struct cai_gguf_str s, const char *c);

#endif /* CAI_GGUF_H */
