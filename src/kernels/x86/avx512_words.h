/* avx512_words.h: the 16-row word transpose both packers use (include only
 * from files compiled with the avx512 flags). */
#ifndef CAI_KERNELS_X86_AVX512_WORDS_H
#define CAI_KERNELS_X86_AVX512_WORDS_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes [o, o + 16) of 16 rows (rows[r]) -> 4 zmm: out[j] lane r = row r's
 * 4-byte word j (the packed layouts' quant order). */
static inline __attribute__((always_inline)) void cai__x16_words(const uint8_t *const *rows,
                                                                 size_t o, __m512i out[4])
{
    __m512i z[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) /* 128-bit lane L of z[k]: row 4 k + L */
        z[k] = _mm512_inserti32x4(
            _mm512_inserti32x4(
                _mm512_inserti32x4(
                    _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rows[4 * k] + o))),
                    _mm_loadu_si128((const __m128i *)(rows[4 * k + 1] + o)), 1),
                _mm_loadu_si128((const __m128i *)(rows[4 * k + 2] + o)), 2),
            _mm_loadu_si128((const __m128i *)(rows[4 * k + 3] + o)), 3);
    /* lane L, element e of u[j]: row 4 e + L's word j */
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    __m512i u[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                    _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
    /* row r = 4 e + L is element 4 L + e */
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
        out[j] = _mm512_permutexvar_epi32(idx, u[j]);
}

#endif /* CAI_KERNELS_X86_AVX512_WORDS_H */
