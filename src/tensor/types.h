/* types.h: tensor element types and their block layouts.
 *
 * Ids are GGUF's ggml_type ids, so a type read from a file needs no mapping.
 * The table knows the block geometry of every id GGUF defines (so a reader can
 * validate sizes of any file), and marks which ones the kernels compute. */
#ifndef CAI_TYPES_H
#define CAI_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cai_type {
    CAI_TYPE_F32 = 0,
    CAI_TYPE_F16 = 1,
    CAI_TYPE_Q4_0 = 2,
    CAI_TYPE_Q4_1 = 3,
    CAI_TYPE_Q5_0 = 6,
    CAI_TYPE_Q5_1 = 7,
    CAI_TYPE_Q8_0 = 8,
    CAI_TYPE_Q8_1 = 9,
    CAI_TYPE_Q2_K = 10,
    CAI_TYPE_Q3_K = 11,
    CAI_TYPE_Q4_K = 12,
    CAI_TYPE_Q5_K = 13,
    CAI_TYPE_Q6_K = 14,
    CAI_TYPE_Q8_K = 15,
    CAI_TYPE_IQ2_XXS = 16,
    CAI_TYPE_IQ2_XS = 17,
    CAI_TYPE_IQ3_XXS = 18,
    CAI_TYPE_IQ1_S = 19,
    CAI_TYPE_IQ4_NL = 20,
    CAI_TYPE_IQ3_S = 21,
    CAI_TYPE_IQ2_S = 22,
    CAI_TYPE_IQ4_XS = 23,
    CAI_TYPE_I8 = 24,
    CAI_TYPE_I16 = 25,
    CAI_TYPE_I32 = 26,
    CAI_TYPE_I64 = 27,
    CAI_TYPE_F64 = 28,
    CAI_TYPE_IQ1_M = 29,
    CAI_TYPE_BF16 = 30,
    CAI_TYPE_TQ1_0 = 34,
    CAI_TYPE_TQ2_0 = 35,
    CAI_TYPE_MXFP4 = 39,
    CAI_TYPE_NVFP4 = 40,
    CAI_TYPE_COUNT = 43 /* one past the largest id GGUF defines */
};

#define CAI_QK   32  /* elements per block of the 32-element formats */
#define CAI_QK_K 256 /* elements per super-block of the K formats */

struct cai_type_info {
    const char *name;      /* "q4_0"; NULL for ids GGUF does not define */
    int         block;     /* elements per block (1 for plain types) */
    int         type_size; /* bytes per block */
    bool        quantized;
    bool        computed;  /* the kernels can dequantize it and dot with it */
};

/* Info for a type id, or NULL when the id is not a known GGUF type. */
const struct cai_type_info *cai__type_info(uint32_t type);
/* Bytes of one row of n_elem elements. false when n_elem is not a multiple
 * of the block size, the type is unknown, or the size overflows. */
bool cai__row_bytes(uint32_t type, int64_t n_elem, size_t *out);

/* Block structs, exactly as stored in GGUF (little-endian, packed by size). */
typedef uint16_t cai_half; /* IEEE binary16 bits */

struct cai_block_q4_0 { cai_half d; uint8_t qs[16]; };
struct cai_block_q4_1 { cai_half d, m; uint8_t qs[16]; };
struct cai_block_q5_0 { cai_half d; uint8_t qh[4]; uint8_t qs[16]; };
struct cai_block_q5_1 { cai_half d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct cai_block_q8_0 { cai_half d; int8_t qs[32]; };
struct cai_block_q8_1 { cai_half d, s; int8_t qs[32]; }; /* s = d * sum(qs) */
struct cai_block_q4_k { cai_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct cai_block_q5_k { cai_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct cai_block_q6_k { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; cai_half d; };
struct cai_block_q8_k { float d; int8_t qs[256]; int16_t bsums[16]; }; /* activations only */

_Static_assert(sizeof(struct cai_block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(struct cai_block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(struct cai_block_q5_0) == 22, "q5_0");
_Static_assert(sizeof(struct cai_block_q5_1) == 24, "q5_1");
_Static_assert(sizeof(struct cai_block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(struct cai_block_q8_1) == 36, "q8_1");
_Static_assert(sizeof(struct cai_block_q4_k) == 144, "q4_k");
_Static_assert(sizeof(struct cai_block_q5_k) == 176, "q5_k");
_Static_assert(sizeof(struct cai_block_q6_k) == 210, "q6_k");
_Static_assert(sizeof(struct cai_block_q8_k) == 292, "q8_k");

/* Scalar conversions (exact, round-to-nearest-even for narrowing). */
float    cai__fp16_to_f32(cai_half h);
cai_half cai__f32_to_fp16(float f);
float    cai__bf16_to_f32(uint16_t h);
uint16_t cai__f32_to_bf16(float f);

#endif /* CAI_TYPES_H */
