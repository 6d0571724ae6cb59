/* x86.h: functions shared between the x86 kernel files (internal to
 * src/kernels/x86). The tiled matrix products live in their own files,
 * compiled with the same instruction-set flags as the table that uses them. */
#ifndef CAI_KERNELS_X86_H
#define CAI_KERNELS_X86_H

#include <stddef.h>
#include <stdint.h>

#define CAI__X86_MM_DECL(name)                                                                     \
    void name(int64_t n, const void *w, size_t w_stride, int64_t r0, int64_t r1, const void *x,    \
              size_t x_stride, int n_tok, float *y, size_t y_stride, void *scratch);

/* avx512_mm.c */
CAI__X86_MM_DECL(cai__avx512_q4_0_mm)
CAI__X86_MM_DECL(cai__avx512_q4_1_mm)
CAI__X86_MM_DECL(cai__avx512_q5_0_mm)
CAI__X86_MM_DECL(cai__avx512_q5_1_mm)
CAI__X86_MM_DECL(cai__avx512_q8_0_mm)
CAI__X86_MM_DECL(cai__avx512_q4_k_mm)
CAI__X86_MM_DECL(cai__avx512_q5_k_mm)
CAI__X86_MM_DECL(cai__avx512_q6_k_mm)

/* avx512_packed.c: packing (the bytes of ref's) and mm on the packed
 * layouts (ref/packed.c) */
#define CAI__X86_PACKED_DECL(t)                                                                    \
    void cai__avx512_##t##_pack(int64_t n, const void *w, size_t w_stride, int64_t n_rows,         \
                                int64_t g0, int64_t g1, void *dst);                                \
    void cai__avx512_##t##_mm_packed(int64_t n, const void *wp, int64_t r0, int64_t r1,            \
                                     const void *x, size_t x_stride, int n_tok, float *y,          \
                                     size_t y_stride, void *scratch);
CAI__X86_PACKED_DECL(q4_0)
CAI__X86_PACKED_DECL(q5_0)
CAI__X86_PACKED_DECL(q8_0)

/* avx512_packed_k.c: the same for Q4_K and Q6_K (ref/packed_k.c) */
CAI__X86_PACKED_DECL(q4_k)
CAI__X86_PACKED_DECL(q6_k)

/* avx512.c: four K-quant rows (stride w_stride) against one activation
 * row, out[r] exactly the table's vec_dot of row r (decode tiles). */
void cai__avx512_q4_k_dot4(int64_t n, const void *w, size_t w_stride, const void *x, float *out);
void cai__avx512_q5_k_dot4(int64_t n, const void *w, size_t w_stride, const void *x, float *out);
void cai__avx512_q6_k_dot4(int64_t n, const void *w, size_t w_stride, const void *x, float *out);

#endif /* CAI_KERNELS_X86_H */
