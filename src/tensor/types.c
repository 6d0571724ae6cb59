/* types.c: the element-type table and the scalar fp16/bf16 conversions.
 *
 * The table covers every ggml_type id GGUF defines, with the block geometry
 * from ggml-common.h (element count and byte size of one block), so a reader
 * can validate the size of any tensor even when the kernels cannot compute
 * with its type. The conversions are exact bit manipulations (no F16C): they
 * are the reference the SIMD conversions are tested against, and they treat
 * NaNs the way the x86 conversion instructions do (quieted, payload kept). */
#include <string.h>

#include "types.h"

#include "../base/base.h"

/* clang-format off */
static const struct cai_type_info type_table[CAI_TYPE_COUNT] = {
    [CAI_TYPE_F32]     = { "f32",     1,        4,   false, true  },
    [CAI_TYPE_F16]     = { "f16",     1,        2,   false, true  },
    [CAI_TYPE_Q4_0]    = { "q4_0",    CAI_QK,   18,  true,  true  },
    [CAI_TYPE_Q4_1]    = { "q4_1",    CAI_QK,   20,  true,  true  },
    [CAI_TYPE_Q5_0]    = { "q5_0",    CAI_QK,   22,  true,  true  },
    [CAI_TYPE_Q5_1]    = { "q5_1",    CAI_QK,   24,  true,  true  },
    [CAI_TYPE_Q8_0]    = { "q8_0",    CAI_QK,   34,  true,  true  },
    [CAI_TYPE_Q8_1]    = { "q8_1",    CAI_QK,   36,  true,  true  },
    [CAI_TYPE_Q2_K]    = { "q2_K",    CAI_QK_K, 84,  true,  false },
    [CAI_TYPE_Q3_K]    = { "q3_K",    CAI_QK_K, 110, true,  false },
    [CAI_TYPE_Q4_K]    = { "q4_K",    CAI_QK_K, 144, true,  true  },
    [CAI_TYPE_Q5_K]    = { "q5_K",    CAI_QK_K, 176, true,  true  },
    [CAI_TYPE_Q6_K]    = { "q6_K",    CAI_QK_K, 210, true,  true  },
    [CAI_TYPE_Q8_K]    = { "q8_K",    CAI_QK_K, 292, true,  true  },
    [CAI_TYPE_IQ2_XXS] = { "iq2_xxs", CAI_QK_K, 66,  true,  false },
    [CAI_TYPE_IQ2_XS]  = { "iq2_xs",  CAI_QK_K, 74,  true,  false },
    [CAI_TYPE_IQ3_XXS] = { "iq3_xxs", CAI_QK_K, 98,  true,  false },
    [CAI_TYPE_IQ1_S]   = { "iq1_s",   CAI_QK_K, 50,  true,  false },
    [CAI_TYPE_IQ4_NL]  = { "iq4_nl",  CAI_QK,   18,  true,  false },
    [CAI_TYPE_IQ3_S]   = { "iq3_s",   CAI_QK_K, 110, true,  false },
    [CAI_TYPE_IQ2_S]   = { "iq2_s",   CAI_QK_K, 82,  true,  false },
    [CAI_TYPE_IQ4_XS]  = { "iq4_xs",  CAI_QK_K, 136, true,  false },
    [CAI_TYPE_I8]      = { "i8",      1,        1,   false, false },
    [CAI_TYPE_I16]     = { "i16",     1,        2,   false, false },
    [CAI_TYPE_I32]     = { "i32",     1,        4,   false, false },
    [CAI_TYPE_I64]     = { "i64",     1,        8,   false, false },
    [CAI_TYPE_F64]     = { "f64",     1,        8,   false, false },
    [CAI_TYPE_IQ1_M]   = { "iq1_m",   CAI_QK_K, 56,  true,  false },
    [CAI_TYPE_BF16]    = { "bf16",    1,        2,   false, true  },
    [CAI_TYPE_TQ1_0]   = { "tq1_0",   CAI_QK_K, 54,  true,  false },
    [CAI_TYPE_TQ2_0]   = { "tq2_0",   CAI_QK_K, 66,  true,  false },
    [CAI_TYPE_MXFP4]   = { "mxfp4",   32,       17,  true,  false },
    /* ggml.c type_traits: QK_NVFP4 = 64, sizeof(block_nvfp4) = 4 + 32. */
    [CAI_TYPE_NVFP4]   = { "nvfp4",   64,       36,  true,  false },
    /* 41 (q1_0) and 42 (q2_0) are left unknown: public sources disagree on
     * their block geometry. */
};
/* clang-format on */

const struct cai_type_info *cai__type_info(uint32_t type)
{
    if (type >= CAI_TYPE_COUNT || type_table[type].name == NULL)
        return NULL;
    return &type_table[type];
}

bool cai__row_bytes(uint32_t type, int64_t n_elem, size_t *out)
{
    const struct cai_type_info *ti = cai__type_info(type);
    if (!ti || n_elem < 0 || n_elem % ti->block != 0)
        return false;
    uint64_t n_blocks = (uint64_t)(n_elem / ti->block);
    uint64_t bytes;
    if (!cai__mul_u64(n_blocks, (uint64_t)ti->type_size, &bytes) || bytes > SIZE_MAX)
        return false;
    *out = (size_t)bytes;
    return true;
}

/* ---- fp16 / bf16 ------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

float cai__fp16_to_f32(cai_half h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) /* inf, or NaN quieted with its payload kept (as vcvtph2ps) */
        return bits_f32(sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0));
    if (exp == 0) {
        if (mant == 0)
            return bits_f32(sign);
        /* subnormal: mant * 2^-24, renormalized */
        int e = -14;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        mant &= 0x3ffu;
        return bits_f32(sign | ((uint32_t)(e + 127) << 23) | (mant << 13));
    }
    return bits_f32(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

cai_half cai__f32_to_fp16(float f)
{
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, keep the top payload bits (as vcvtps2ph) */
        return (cai_half)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return (cai_half)(sign | 0x7c00u);
    uint32_t e = a >> 23;
    if (e < 113) { /* below 2^-14: an fp16 subnormal (or zero) */
        uint32_t s = 126 - e; /* value = mant_full * 2^-24 >> s */
        if (s >= 25)
            return (cai_half)sign;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t n = m >> s;
        uint32_t rem = m & ((1u << s) - 1);
        uint32_t half = 1u << (s - 1);
        if (rem > half || (rem == half && (n & 1)))
            n++;
        return (cai_half)(sign | n);
    }
    uint32_t h = ((e - 127 + 15) << 10) | ((a >> 13) & 0x3ffu);
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* a carry into the exponent is the correct rounding */
    return (cai_half)(sign | h);
}

float cai__bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t cai__f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
