/* test_kernels.c: every kernel table the host supports against the ref
 * table, and the ref table against plain float arithmetic.
 *
 * For each table (ref, avx2, avx512; those the CPU cannot run are skipped
 * with a note) and each computed type, over lengths from one block to many
 * (odd counts included): to_f32 and the activation quantizers must match ref
 * bit for bit; vec_dot must match ref within a tolerance scaled by the sum
 * of |w_i x_i| (docs/KERNELS.md explains each tolerance); ref vec_dot must
 * match a double-precision dot of the dequantized operands. Also: the type
 * table, cai__row_bytes overflow cases, exhaustive fp16 and near-exhaustive
 * bf16 conversions, the f32 ops, and the COREAI_ISA override.
 *
 * Set KERNELS_VERBOSE=1 to print the worst error ratio seen per check. */
#include <float.h>
#include <stdint.h>

#include "test.h"

#include "base/base.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "tensor/types.h"

/* ---- tolerances (see docs/KERNELS.md) ----------------------------------- */

/* SIMD vec_dot vs ref vec_dot, relative to S = sum (|w_i| + 2 |off_i|) |x_i|
 * (off_i: the block's offset term, m for Q4_1/Q5_1, dmin*min for Q4_K/Q5_K). */
#define TOL_VEC_DOT 1e-5
/* ref vec_dot vs double dot of the dequantized operands, relative to S. */
#define TOL_REF_DOT 1e-5
/* ... for the Q8_1-based types, whose block sum s is stored as fp16. */
#define TOL_REF_DOT_Q8_1 2e-3
/* f32 ops: dot-like sums relative to sum |a_i b_i|; elementwise ops relative
 * to |ref| (plus a tiny absolute floor). */
#define TOL_DOT_F32   1e-5
#define TOL_ELEMWISE  4e-6
#define TOL_AXPY      2.5e-7

/* ---- deterministic random numbers --------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd64(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static uint32_t rnd32(void)
{
    return (uint32_t)(rnd64() >> 32);
}

static float rnd_unit(void) /* [0, 1) */
{
    return (float)(rnd32() >> 8) * (1.0f / 16777216.0f);
}

static float rnd_normal(void)
{
    float u = rnd_unit() + 1e-7f, v = rnd_unit();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* A sane fp16 scale: magnitude in [2^-12, 2^-3), random sign when `sign`. */
static cai_half rnd_scale(int sign)
{
    float m = ldexpf(1.0f + rnd_unit(), -12 + (int)(rnd32() % 9));
    if (sign && (rnd32() & 1))
        m = -m;
    return cai__f32_to_fp16(m);
}

static void rnd_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rnd32();
}

static void rnd_floats(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = rnd_normal() * scale;
        if (rnd32() % 64 == 0)
            x[i] *= 8.0f; /* occasional outlier */
    }
}

/* ---- helpers ------------------------------------------------------------ */

static const uint32_t computed_types[] = {
    CAI_TYPE_F32,  CAI_TYPE_F16,  CAI_TYPE_BF16, CAI_TYPE_Q4_0, CAI_TYPE_Q4_1,
    CAI_TYPE_Q5_0, CAI_TYPE_Q5_1, CAI_TYPE_Q8_0, CAI_TYPE_Q8_1, CAI_TYPE_Q4_K,
    CAI_TYPE_Q5_K, CAI_TYPE_Q6_K, CAI_TYPE_Q8_K,
};

static const char *const isas[] = {"ref", "avx2", "avx512"};

static int verbose;

static size_t nbytes(uint32_t type, int64_t n)
{
    size_t b = 0;
    if (!cai__row_bytes(type, n, &b))
        abort();
    return b;
}

/* Random but valid data of `type`: random quant bytes, sane scales. As an
 * activation (Q8_*), quants avoid -128 and Q8_1 s / Q8_K bsums are consistent. */
static void rnd_blocks(uint32_t type, void *buf, int64_t n)
{
    const struct cai_type_info *ti = cai__type_info(type);
    int64_t nb = n / ti->block;
    rnd_bytes(buf, nbytes(type, n));
    switch (type) {
    case CAI_TYPE_F32:
        rnd_floats(buf, n, 1.0f);
        break;
    case CAI_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            ((cai_half *)buf)[i] = cai__f32_to_fp16(rnd_normal());
        break;
    case CAI_TYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)buf)[i] = cai__f32_to_bf16(rnd_normal());
        break;
    case CAI_TYPE_Q4_0:
        for (int64_t i = 0; i < nb; i++)
            ((struct cai_block_q4_0 *)buf)[i].d = rnd_scale(1);
        break;
    case CAI_TYPE_Q5_0:
        for (int64_t i = 0; i < nb; i++)
            ((struct cai_block_q5_0 *)buf)[i].d = rnd_scale(1);
        break;
    case CAI_TYPE_Q4_1:
        for (int64_t i = 0; i < nb; i++) {
            ((struct cai_block_q4_1 *)buf)[i].d = rnd_scale(1);
            ((struct cai_block_q4_1 *)buf)[i].m = rnd_scale(1);
        }
        break;
    case CAI_TYPE_Q5_1:
        for (int64_t i = 0; i < nb; i++) {
            ((struct cai_block_q5_1 *)buf)[i].d = rnd_scale(1);
            ((struct cai_block_q5_1 *)buf)[i].m = rnd_scale(1);
        }
        break;
    case CAI_TYPE_Q8_0:
        for (int64_t i = 0; i < nb; i++) {
            struct cai_block_q8_0 *b = (struct cai_block_q8_0 *)buf + i;
            b->d = rnd_scale(1);
            for (int j = 0; j < 32; j++)
                b->qs[j] = b->qs[j] == -128 ? -127 : b->qs[j];
        }
        break;
    case CAI_TYPE_Q8_1:
        for (int64_t i = 0; i < nb; i++) {
            struct cai_block_q8_1 *b = (struct cai_block_q8_1 *)buf + i;
            b->d = rnd_scale(1);
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                b->qs[j] = b->qs[j] == -128 ? -127 : b->qs[j];
                sum += b->qs[j];
            }
            b->s = cai__f32_to_fp16((float)sum * cai__fp16_to_f32(b->d));
        }
        break;
    case CAI_TYPE_Q4_K:
        for (int64_t i = 0; i < nb; i++) {
            ((struct cai_block_q4_k *)buf)[i].d = rnd_scale(0);
            ((struct cai_block_q4_k *)buf)[i].dmin = rnd_scale(0);
        }
        break;
    case CAI_TYPE_Q5_K:
        for (int64_t i = 0; i < nb; i++) {
            ((struct cai_block_q5_k *)buf)[i].d = rnd_scale(0);
            ((struct cai_block_q5_k *)buf)[i].dmin = rnd_scale(0);
        }
        break;
    case CAI_TYPE_Q6_K:
        for (int64_t i = 0; i < nb; i++)
            ((struct cai_block_q6_k *)buf)[i].d = rnd_scale(1);
        break;
    case CAI_TYPE_Q8_K:
        for (int64_t i = 0; i < nb; i++) {
            struct cai_block_q8_k *b = (struct cai_block_q8_k *)buf + i;
            b->d = ldexpf(1.0f + rnd_unit(), -10 + (int)(rnd32() % 6)) * (rnd32() & 1 ? -1.0f : 1.0f);
            for (int j = 0; j < 256; j++)
                b->qs[j] = b->qs[j] == -128 ? -127 : b->qs[j];
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++)
                    s += b->qs[16 * g + l];
                b->bsums[g] = (int16_t)s;
            }
        }
        break;
    default:
        abort();
    }
}

/* |offset| that vec_dot handles as a separate term, for element e of w. */
static double offset_mag(uint32_t type, const void *w, int64_t e)
{
    switch (type) {
    case CAI_TYPE_Q4_1:
        return fabs((double)cai__fp16_to_f32(((const struct cai_block_q4_1 *)w)[e / 32].m));
    case CAI_TYPE_Q5_1:
        return fabs((double)cai__fp16_to_f32(((const struct cai_block_q5_1 *)w)[e / 32].m));
    case CAI_TYPE_Q4_K:
    case CAI_TYPE_Q5_K: {
        const uint8_t *scales;
        cai_half dmin;
        if (type == CAI_TYPE_Q4_K) {
            scales = ((const struct cai_block_q4_k *)w)[e / 256].scales;
            dmin = ((const struct cai_block_q4_k *)w)[e / 256].dmin;
        } else {
            scales = ((const struct cai_block_q5_k *)w)[e / 256].scales;
            dmin = ((const struct cai_block_q5_k *)w)[e / 256].dmin;
        }
        uint8_t sc[8], mn[8];
        cai__unpack_k4_scales(scales, sc, mn);
        return fabs((double)cai__fp16_to_f32(dmin)) * mn[(e % 256) / 32];
    }
    default:
        return 0.0;
    }
}

/* A heap copy of exactly n_bytes (so ASan flags any read past a row's end). */
static void *exact_copy(const void *p, size_t n_bytes)
{
    void *q = malloc(n_bytes ? n_bytes : 1);
    if (!q)
        abort();
    memcpy(q, p, n_bytes);
    return q;
}

/* Scratch buffers, big enough for the longest row tested. */
#define MAX_N (64 * 256)
static float xf[MAX_N + 16], wf[MAX_N + 16], yf[MAX_N + 16], y2[MAX_N + 16], y3[MAX_N + 16];
static uint8_t wq[MAX_N * 4 + 4096], xq[MAX_N * 4 + 4096], xq2[MAX_N * 4 + 4096];

struct worst {
    const char *what;
    double ratio;
};

static void note(struct worst *w, double err, double scale)
{
    double r = scale > 0 ? err / scale : (err > 0 ? (double)INFINITY : 0.0);
    if (r > w->ratio)
        w->ratio = r;
}

static void report(const char *isa, const char *type, struct worst *w)
{
    if (verbose)
        fprintf(stderr, "    %-6s %-5s %-22s worst ratio %.3g\n", isa, type, w->what, w->ratio);
}

/* Lengths in blocks for the block formats; elements for the float ones. */
static const int64_t block_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 64};
static const int64_t float_lengths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                                        100, 255, 256, 1000, 4099};

static int n_lengths(uint32_t type)
{
    return cai__type_info(type)->block == 1 ? (int)CAI_ARRAY_LEN(float_lengths)
                                             : (int)CAI_ARRAY_LEN(block_counts);
}

static int64_t length_at(uint32_t type, int k)
{
    int block = cai__type_info(type)->block;
    return block == 1 ? float_lengths[k] : block_counts[k] * block;
}

/* ---- type table and row sizes ------------------------------------------- */

static void test_type_info(void)
{
    static const struct {
        uint32_t id;
        int block, size;
    } known[] = {
        {0, 1, 4},      {1, 1, 2},      {2, 32, 18},    {3, 32, 20},    {6, 32, 22},
        {7, 32, 24},    {8, 32, 34},    {9, 32, 36},    {10, 256, 84},  {11, 256, 110},
        {12, 256, 144}, {13, 256, 176}, {14, 256, 210}, {15, 256, 292}, {16, 256, 66},
        {17, 256, 74},  {18, 256, 98},  {19, 256, 50},  {20, 32, 18},   {21, 256, 110},
        {22, 256, 82},  {23, 256, 136}, {24, 1, 1},     {25, 1, 2},     {26, 1, 4},
        {27, 1, 8},     {28, 1, 8},     {29, 256, 56},  {30, 1, 2},     {34, 256, 54},
        {35, 256, 66},  {39, 32, 17},   {40, 64, 36},
    };
    for (size_t k = 0; k < CAI_ARRAY_LEN(known); k++) {
        const struct cai_type_info *ti = cai__type_info(known[k].id);
        CHECK_MSG(ti != NULL, "id %u", known[k].id);
        if (!ti)
            continue;
        CHECK_EQ_INT(ti->block, known[k].block);
        CHECK_EQ_INT(ti->type_size, known[k].size);
        CHECK_EQ_INT(ti->quantized, known[k].block > 1);
    }
    static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 41, 42, 43, 44, 1000,
                                       0xffffffffu};
    for (size_t k = 0; k < CAI_ARRAY_LEN(unknown); k++)
        CHECK_MSG(cai__type_info(unknown[k]) == NULL, "id %u", unknown[k]);
    int n_computed = 0;
    for (uint32_t t = 0; t < CAI_TYPE_COUNT; t++) {
        const struct cai_type_info *ti = cai__type_info(t);
        if (ti && ti->computed)
            n_computed++;
    }
    CHECK_EQ_INT(n_computed, (int)CAI_ARRAY_LEN(computed_types));
    for (size_t k = 0; k < CAI_ARRAY_LEN(computed_types); k++)
        CHECK(cai__type_info(computed_types[k])->computed);
    CHECK_STR(cai__type_info(CAI_TYPE_Q4_K)->name, "q4_K");
    CHECK_STR(cai__type_info(CAI_TYPE_BF16)->name, "bf16");
}

static void test_row_bytes(void)
{
    size_t b = 1;
    CHECK(cai__row_bytes(CAI_TYPE_F32, 0, &b) && b == 0);
    CHECK(cai__row_bytes(CAI_TYPE_F32, 7, &b) && b == 28);
    CHECK(cai__row_bytes(CAI_TYPE_Q4_0, 576, &b) && b == 18 * 18);
    CHECK(cai__row_bytes(CAI_TYPE_Q6_K, 4096, &b) && b == 16 * 210);
    CHECK(cai__row_bytes(CAI_TYPE_IQ2_XXS, 256, &b) && b == 66);
    CHECK(!cai__row_bytes(CAI_TYPE_Q4_0, 33, &b));
    CHECK(!cai__row_bytes(CAI_TYPE_Q4_K, 576, &b));
    CHECK(!cai__row_bytes(CAI_TYPE_F32, -1, &b));
    CHECK(!cai__row_bytes(CAI_TYPE_Q8_0, -32, &b));
    CHECK(!cai__row_bytes(4, 32, &b));
    CHECK(!cai__row_bytes(CAI_TYPE_COUNT, 32, &b));
    CHECK(!cai__row_bytes(0xffffffffu, 32, &b));
    /* overflow: INT64_MAX elements of 8 bytes */
    CHECK(!cai__row_bytes(CAI_TYPE_I64, INT64_MAX, &b));
    CHECK(!cai__row_bytes(CAI_TYPE_F32, INT64_MAX, &b));
    CHECK(!cai__row_bytes(CAI_TYPE_F64, INT64_MAX / 4 + 1, &b));
    if (SIZE_MAX >= UINT64_MAX) { /* 2^63 and 2^64 - 2 bytes still fit */
        CHECK(cai__row_bytes(CAI_TYPE_F32, INT64_MAX / 4 + 1, &b) && b == (size_t)1 << 63);
        CHECK(cai__row_bytes(CAI_TYPE_F16, INT64_MAX, &b) && b == SIZE_MAX - 1);
    }
    /* the largest exact F16 row that fits, and one past it */
    int64_t n = (int64_t)(SIZE_MAX / 2 < (size_t)INT64_MAX ? SIZE_MAX / 2 : (size_t)INT64_MAX);
    if ((uint64_t)n * 2 <= SIZE_MAX)
        CHECK(cai__row_bytes(CAI_TYPE_F16, n, &b) && b == (size_t)n * 2);
    /* a whole-block count whose byte size overflows 64 bits: 2^63 - 256 Q8_K elements
     * is (2^55 - 1) blocks of 292 bytes, about 1.05e19 > 2^63 but < 2^64: fits u64 */
    int64_t nk = INT64_MAX - INT64_MAX % 256;
    uint64_t need = (uint64_t)(nk / 256) * 292u;
    CHECK(cai__row_bytes(CAI_TYPE_Q8_K, nk, &b) == (need <= SIZE_MAX));
}

/* ---- fp16 / bf16 -------------------------------------------------------- */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* fp16 value by the definition, in double. */
static double fp16_value(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

static void test_fp16_to_f32_exhaustive(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cai__fp16_to_f32((cai_half)h);
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            uint32_t want = (h & 0x8000u) << 16 | 0x7f800000u | (uint32_t)m << 13 |
                            (m ? 0x00400000u : 0);
            bad += bits_of(f) != want;
        } else {
            bad += (double)f != fp16_value((uint16_t)h) || (bits_of(f) >> 31) != (h >> 15);
            /* round trip */
            bad += cai__f32_to_fp16(f) != h;
        }
        if (e == 31 && m)
            bad += cai__f32_to_fp16(f) != (h | 0x200u); /* NaN comes back quieted */
    }
    CHECK_EQ_INT(bad, 0);
}

/* Nearest fp16 of f by the definition (ties to even), compared by value. */
static int check_f32_to_fp16(float f)
{
    cai_half h = cai__f32_to_fp16(f);
    if (isnan(f)) {
        uint32_t a = bits_of(f);
        return h == (cai_half)((a >> 16 & 0x8000u) | 0x7e00u | ((a & 0x7fffffu) >> 13));
    }
    double r = fabs((double)f);
    double want;
    if (r >= 65520.0) {
        want = (double)INFINITY;
    } else {
        int e;
        frexp(r, &e); /* r = m 2^e, m in [0.5, 1) */
        e = e - 1 < -14 ? -14 : e - 1;
        double ulp = ldexp(1.0, e - 10);
        want = nearbyint(r / ulp) * ulp; /* default rounding: to even */
    }
    int e16 = (h >> 10) & 31;
    double got = e16 == 31 ? ((h & 1023) ? (double)NAN : (double)INFINITY) : fabs(fp16_value(h));
    return got == want && (h >> 15) == (bits_of(f) >> 31);
}

static void test_f32_to_fp16(void)
{
    int bad = 0;
    /* every fp16 value, the midpoints to its neighbours and a hair either side */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double v = fp16_value((uint16_t)h), next = fp16_value((uint16_t)(h + 1));
        float mid = (float)((v + next) / 2);
        float cases[] = {(float)v, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int k = 0; k < 4; k++) {
            bad += !check_f32_to_fp16(cases[k]);
            bad += !check_f32_to_fp16(-cases[k]);
        }
    }
    /* a sweep over all f32 bit patterns, stride 4099 (about a million values) */
    for (uint64_t u = 0; u < (1ull << 32); u += 4099)
        bad += !check_f32_to_fp16(float_of((uint32_t)u));
    bad += !check_f32_to_fp16(65504.0f) + !check_f32_to_fp16(65519.99f) +
           !check_f32_to_fp16(65520.0f) + !check_f32_to_fp16(INFINITY) +
           !check_f32_to_fp16(-INFINITY) + !check_f32_to_fp16(FLT_MIN) +
           !check_f32_to_fp16(FLT_TRUE_MIN) + !check_f32_to_fp16(ldexpf(1.0f, -25)) +
           !check_f32_to_fp16(nextafterf(ldexpf(1.0f, -25), 1.0f));
    CHECK_EQ_INT(bad, 0);
}

static void test_bf16(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cai__bf16_to_f32((uint16_t)h);
        bad += bits_of(f) != h << 16;
        if (!isnan(f))
            bad += cai__f32_to_bf16(f) != h;
        else
            bad += cai__f32_to_bf16(f) != (h | 0x40u);
    }
    /* near-exhaustive RNE check against double arithmetic */
    for (uint64_t u = 0; u < (1ull << 32); u += 4099) {
        float f = float_of((uint32_t)u);
        uint16_t b = cai__f32_to_bf16(f);
        if (isnan(f)) {
            bad += !isnan(cai__bf16_to_f32(b));
            continue;
        }
        uint32_t lo = (uint32_t)u & 0xffff0000u, hi = lo + 0x10000u;
        double dl = (double)float_of(lo), dh;
        uint32_t want;
        if ((lo & 0x7f800000u) == 0x7f800000u) {
            want = lo; /* infinity stays */
        } else {
            /* the next bf16 up in magnitude; past the largest finite it is infinity */
            dh = (hi & 0x7fffffffu) == 0x7f800000u ? ldexp(1.0, 128) * (lo >> 31 ? -1 : 1)
                                                   : (double)float_of(hi);
            double dv = (double)f, a = fabs(dv - dl), c = fabs(dh - dv);
            want = a < c ? lo : a > c ? hi : ((lo >> 16) & 1 ? hi : lo);
        }
        bad += b != (uint16_t)(want >> 16);
    }
    CHECK_EQ_INT(bad, 0);
}

/* Every supported SIMD table converts exactly as the scalar functions. */
static void test_simd_conversions(void)
{
    for (size_t t = 1; t < CAI_ARRAY_LEN(isas); t++) {
        const struct cai_kernels *k = cai__kernels_by_name(isas[t]);
        if (!k)
            continue;
        int bad = 0;
        enum { CHUNK = 4099 };
        static float in[CHUNK];
        static cai_half h_simd[CHUNK];
        static uint16_t b_simd[CHUNK];
        static float back[CHUNK];
        uint32_t u = 0x12345u;
        for (int round = 0; round < 256; round++) {
            for (int i = 0; i < CHUNK; i++, u += 4093u * 257u + 1u)
                in[i] = float_of(u);
            int n = CHUNK - round % 17;
            k->f32_to_f16(in, h_simd, n);
            k->type[CAI_TYPE_BF16].from_f32(in, b_simd, n);
            for (int i = 0; i < n; i++) {
                bad += h_simd[i] != cai__f32_to_fp16(in[i]);
                bad += b_simd[i] != cai__f32_to_bf16(in[i]);
            }
        }
        /* all fp16 / bf16 values back to f32 */
        static uint16_t all[65536];
        static float all_f[65536];
        for (uint32_t h = 0; h < 65536; h++)
            all[h] = (uint16_t)h;
        k->type[CAI_TYPE_F16].to_f32(all, all_f, 65535);
        for (uint32_t h = 0; h < 65535; h++)
            bad += bits_of(all_f[h]) != bits_of(cai__fp16_to_f32((cai_half)h));
        k->type[CAI_TYPE_BF16].to_f32(all, all_f, 65535);
        for (uint32_t h = 0; h < 65535; h++)
            bad += bits_of(all_f[h]) != bits_of(cai__bf16_to_f32((uint16_t)h));
        (void)back;
        CHECK_MSG(bad == 0, "%s: %d mismatches", isas[t], bad);
    }
}

/* ---- the type kernels --------------------------------------------------- */

static void check_to_f32(const struct cai_kernels *k, uint32_t type)
{
    const struct cai_kernels *ref = &cai__kernels_ref;
    const struct cai_type_info *ti = cai__type_info(type);
    int bad = 0;
    for (int l = 0; l < n_lengths(type); l++) {
        int64_t n = length_at(type, l);
        for (int rep = 0; rep < 3; rep++) {
            if (rep < 2) {
                rnd_blocks(type, wq, n);
            } else { /* round trip of real data through the quantizer */
                rnd_floats(xf, n, 0.3f);
                ref->type[type].from_f32(xf, wq, n);
            }
            memset(yf, 0xcc, sizeof(float) * (size_t)(n + 1));
            memset(y2, 0xcc, sizeof(float) * (size_t)(n + 1));
            ref->type[type].to_f32(wq, yf, n);
            void *w_exact = exact_copy(wq, nbytes(type, n));
            float *y_exact = malloc(sizeof(float) * (size_t)n);
            k->type[type].to_f32(w_exact, y_exact, n);
            memcpy(y2, y_exact, sizeof(float) * (size_t)n);
            free(w_exact);
            free(y_exact);
            if (memcmp(yf, y2, sizeof(float) * (size_t)(n + 1)) != 0) {
                if (!bad)
                    fprintf(stderr, "    %s %s to_f32 differs at n=%lld\n", k->isa, ti->name,
                            (long long)n);
                bad++;
            }
        }
    }
    CHECK_MSG(bad == 0, "%s %s to_f32", k->isa, ti->name);
}

/* Activation data of type `vdt` for n elements from floats xf. */
static void make_activation(const struct cai_kernels *k, uint32_t vdt, int64_t n, int random)
{
    if (random && vdt != CAI_TYPE_F32)
        rnd_blocks(vdt, xq, n);
    else
        k->type[vdt].from_f32(xf, xq, n);
}

static void check_vec_dot(const struct cai_kernels *k, uint32_t type)
{
    const struct cai_kernels *ref = &cai__kernels_ref;
    const struct cai_type_info *ti = cai__type_info(type);
    uint32_t vdt = k->type[type].vec_dot_type;
    CHECK_EQ_INT(vdt, ref->type[type].vec_dot_type);
    struct worst w_simd = {"vec_dot vs ref", 0}, w_ref = {"ref vec_dot vs float", 0};
    int bad = 0;
    double tol_ref = (vdt == CAI_TYPE_Q8_1 && type != CAI_TYPE_Q8_1) ? TOL_REF_DOT_Q8_1
                                                                     : TOL_REF_DOT;
    for (int l = 0; l < n_lengths(type); l++) {
        int64_t n = length_at(type, l);
        if (n % cai__type_info(vdt)->block)
            continue;
        for (int rep = 0; rep < 4; rep++) {
            rnd_blocks(type, wq, n);
            if (rep == 3) { /* quantized real weights */
                rnd_floats(wf, n, 0.05f);
                ref->type[type].from_f32(wf, wq, n);
            }
            rnd_floats(xf, n, rep == 1 ? 100.0f : 1.0f);
            make_activation(ref, vdt, n, rep == 2);
            float r = ref->type[type].vec_dot(n, wq, xq);
            void *w_exact = exact_copy(wq, nbytes(type, n));
            void *x_exact = exact_copy(xq, nbytes(vdt, n));
            float s = k->type[type].vec_dot(n, w_exact, x_exact);
            free(w_exact);
            free(x_exact);
            /* magnitude S from the dequantized operands */
            ref->type[type].to_f32(wq, wf, n);
            ref->type[vdt].to_f32(xq, yf, n);
            double S = 0, exact = 0;
            for (int64_t i = 0; i < n; i++) {
                S += (fabs((double)wf[i]) + 2 * offset_mag(type, wq, i)) * fabs((double)yf[i]);
                exact += (double)wf[i] * (double)yf[i];
            }
            S += 1e-30;
            double e1 = fabs((double)s - (double)r), e2 = fabs((double)r - exact);
            note(&w_simd, e1, S);
            note(&w_ref, e2, S);
            if (!(e1 <= TOL_VEC_DOT * S) || !(e2 <= tol_ref * S)) {
                if (bad < 3)
                    fprintf(stderr,
                            "    %s %s n=%lld rep=%d: simd %.9g ref %.9g exact %.9g (S %.3g)\n",
                            k->isa, ti->name, (long long)n, rep, (double)s, (double)r, exact, S);
                bad++;
            }
        }
    }
    /* n = 0 is an empty sum */
    CHECK(k->type[type].vec_dot(0, wq, xq) == 0.0f);
    CHECK_MSG(bad == 0, "%s %s vec_dot: %d failures", k->isa, ti->name, bad);
    report(k->isa, ti->name, &w_simd);
    if (k == ref)
        report(k->isa, ti->name, &w_ref);
}

/* Inputs that exercise the quantizers' corner cases: zeros, exact ties
 * (x.5 after scaling), sign of the largest element, huge and tiny values. */
static void special_floats(float *x, int64_t n, int kind)
{
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0:
            x[i] = 0.0f;
            break;
        case 1: /* amax = 127 per 32 and per 256, so d = 1: ties at .5 */
            x[i] = (float)((i * 7) % 200 - 100) + 0.5f;
            if (i % 32 == 5)
                x[i] = 127.0f;
            if (i % 256 == 77)
                x[i] = -127.0f;
            break;
        case 2: /* both +a and -a present as the largest magnitude */
            x[i] = rnd_normal();
            if (i % 32 == 3)
                x[i] = -10.0f;
            if (i % 32 == 9)
                x[i] = 10.0f;
            break;
        case 3:
            x[i] = rnd_normal() * 1e30f;
            break;
        case 4:
            x[i] = rnd_normal() * 1e-41f; /* subnormal */
            break;
        default: /* ties with negative d: max is -127 per 256, +127 per 32 */
            x[i] = (float)((i * 5) % 240 - 120) + 0.5f;
            if (i % 256 == 1)
                x[i] = -127.0f;
            if (i % 32 == 2 && i % 256 != 2)
                x[i] = 126.0f;
            break;
        }
    }
}

static void check_from_f32(const struct cai_kernels *k, uint32_t type)
{
    const struct cai_kernels *ref = &cai__kernels_ref;
    const struct cai_type_info *ti = cai__type_info(type);
    int bad = 0;
    for (int l = 0; l < n_lengths(type); l++) {
        int64_t n = length_at(type, l);
        size_t nb = nbytes(type, n);
        for (int rep = 0; rep < 9; rep++) {
            if (rep < 6)
                special_floats(xf, n, rep);
            else
                rnd_floats(xf, n, rep == 8 ? 1e-3f : 1.0f);
            memset(xq, 0x5a, nb + 1);
            memset(xq2, 0x5a, nb + 1);
            ref->type[type].from_f32(xf, xq, n);
            float *x_exact = exact_copy(xf, sizeof(float) * (size_t)n);
            void *q_exact = malloc(nb);
            k->type[type].from_f32(x_exact, q_exact, n);
            memcpy(xq2, q_exact, nb);
            free(x_exact);
            free(q_exact);
            if (memcmp(xq, xq2, nb + 1) != 0) {
                if (!bad)
                    fprintf(stderr, "    %s %s from_f32 differs at n=%lld case %d\n", k->isa,
                            ti->name, (long long)n, rep);
                bad++;
            }
        }
    }
    CHECK_MSG(bad == 0, "%s %s from_f32", k->isa, ti->name);
}

static void test_tables_complete(void)
{
    for (size_t t = 0; t < CAI_ARRAY_LEN(isas); t++) {
        /* the tables exist in every build, supported or not */
        const struct cai_kernels *k = t == 0 ? &cai__kernels_ref
                                      : t == 1 ? &cai__kernels_avx2
                                               : &cai__kernels_avx512;
        CHECK_STR(k->isa, isas[t]);
        for (uint32_t ty = 0; ty < CAI_TYPE_COUNT; ty++) {
            const struct cai_type_info *ti = cai__type_info(ty);
            const struct cai_type_kernels *tk = &k->type[ty];
            if (ti && ti->computed) {
                CHECK_MSG(tk->to_f32 && tk->from_f32 && tk->vec_dot && tk->mm, "%s type %u",
                          k->isa, ty);
                CHECK_EQ_INT(tk->vec_dot_type, cai__kernels_ref.type[ty].vec_dot_type);
            } else {
                CHECK_MSG(!tk->to_f32 && !tk->from_f32 && !tk->vec_dot && !tk->mm, "%s type %u",
                          k->isa, ty);
            }
        }
        CHECK(k->dot_f32 && k->axpy_f32 && k->rmsnorm && k->rmsnorm_n && k->rope && k->softmax &&
              k->softmax_att &&
              k->silu_mul && k->gelu_mul && k->dot_f16_f32 && k->axpy_f16 && k->f32_to_f16 && k->dot_f16 &&
              k->dot_f16_chain && k->dot_f16_n && k->dot_f16_chain_n && k->dot_f16_chain_mn &&
              k->dot_f16_mn);
    }
    const struct cai_kernels *r = &cai__kernels_ref;
    CHECK_EQ_INT(r->type[CAI_TYPE_Q4_0].vec_dot_type, CAI_TYPE_Q8_0);
    CHECK_EQ_INT(r->type[CAI_TYPE_Q5_0].vec_dot_type, CAI_TYPE_Q8_0);
    CHECK_EQ_INT(r->type[CAI_TYPE_Q8_0].vec_dot_type, CAI_TYPE_Q8_0);
    CHECK_EQ_INT(r->type[CAI_TYPE_Q4_1].vec_dot_type, CAI_TYPE_Q8_1);
    CHECK_EQ_INT(r->type[CAI_TYPE_Q5_1].vec_dot_type, CAI_TYPE_Q8_1);
    CHECK_EQ_INT(r->type[CAI_TYPE_Q4_K].vec_dot_type, CAI_TYPE_Q8_K);
    CHECK_EQ_INT(r->type[CAI_TYPE_Q5_K].vec_dot_type, CAI_TYPE_Q8_K);
    CHECK_EQ_INT(r->type[CAI_TYPE_Q6_K].vec_dot_type, CAI_TYPE_Q8_K);
    CHECK_EQ_INT(r->type[CAI_TYPE_F32].vec_dot_type, CAI_TYPE_F32);
    CHECK_EQ_INT(r->type[CAI_TYPE_F16].vec_dot_type, CAI_TYPE_F32);
    CHECK_EQ_INT(r->type[CAI_TYPE_BF16].vec_dot_type, CAI_TYPE_F32);
}

static void test_types_all_tables(void)
{
    for (size_t t = 0; t < CAI_ARRAY_LEN(isas); t++) {
        const struct cai_kernels *k = cai__kernels_by_name(isas[t]);
        if (!k) {
            fprintf(stderr, "  note: %s kernels not supported on this CPU, not tested\n", isas[t]);
            continue;
        }
        for (size_t j = 0; j < CAI_ARRAY_LEN(computed_types); j++) {
            uint32_t type = computed_types[j];
            check_to_f32(k, type);
            check_from_f32(k, type);
            check_vec_dot(k, type);
        }
    }
}

/* One mm call against the same table's vec_dot, bit for bit: rows
 * [r0, r0 + nr) of a weight matrix with row stride ws bytes, n_tok tokens
 * with stride xs bytes, outputs with stride ys floats; outputs outside the
 * rows must stay untouched. */
static void *mm_scratch;

static int check_mm_case(const struct cai_kernels *k, uint32_t type, int64_t n, int64_t r0,
                         int64_t nr, int n_tok, size_t w_pad, size_t x_pad, size_t y_pad,
                         int with_scratch, int packed)
{
    const struct cai_type_kernels *tk = &k->type[type];
    uint32_t vdt = tk->vec_dot_type;
    /* Rows in real files are aligned to their block's fields (GGUF data is
     * 32-byte aligned and every block size is even, Q8_K's a multiple of 4):
     * keep the padding a multiple of 4 bytes so the test makes no misaligned
     * field loads (UBSan). */
    w_pad = (w_pad + 3) & ~(size_t)3;
    x_pad = (x_pad + 3) & ~(size_t)3;
    size_t rb = nbytes(type, n), xb = nbytes(vdt, n);
    size_t ws = rb + w_pad, xs = xb + x_pad, ys = (size_t)(r0 + nr) + y_pad;
    int64_t rows = r0 + nr;
    uint8_t *w = malloc(ws * (size_t)rows), *x = malloc(xs * (size_t)n_tok);
    float *y = malloc(ys * (size_t)n_tok * sizeof(float));
    if (!w || !x || !y)
        abort();
    for (int64_t r = 0; r < rows; r++)
        rnd_blocks(type, w + (size_t)r * ws, n);
    float *xfl = malloc((size_t)n * sizeof(float));
    if (!xfl)
        abort();
    for (int t = 0; t < n_tok; t++) {
        if (vdt == CAI_TYPE_F32 || t % 3 == 2) {
            rnd_floats(xfl, n, t % 2 ? 30.0f : 1.0f);
            k->type[vdt].from_f32(xfl, x + (size_t)t * xs, n);
        } else {
            rnd_blocks(vdt, x + (size_t)t * xs, n);
        }
    }
    const uint32_t sentinel = 0x7fc12345u; /* a NaN no kernel produces */
    for (size_t i = 0; i < ys * (size_t)n_tok; i++)
        memcpy(&y[i], &sentinel, sizeof(float));
    void *wp = NULL;
    if (packed) { /* the table's packing must give ref's bytes */
        size_t pb = cai__packed_bytes(rb, rows);
        wp = aligned_alloc(64, (pb + 63) / 64 * 64);
        void *wr = malloc(pb);
        if (!wp || !wr)
            abort();
        memset(wp, 0xa5, pb);
        memset(wr, 0x5a, pb);
        tk->pack(n, w, ws, rows, 0, (rows + 15) / 16, wp);
        cai__kernels_ref.type[type].pack(n, w, ws, rows, 0, (rows + 15) / 16, wr);
        CHECK_MSG(memcmp(wp, wr, pb) == 0, "%s %s pack differs from ref's", k->isa,
                  cai__type_info(type)->name);
        free(wr);
        uint8_t *row = malloc(rb);
        if (!row)
            abort();
        for (int64_t r = 0; r < rows; r++) { /* and gives the rows back */
            tk->unpack_row(n, wp, r, row);
            CHECK_MSG(memcmp(row, w + (size_t)r * ws, rb) == 0, "%s %s unpack_row %lld differs",
                      k->isa, cai__type_info(type)->name, (long long)r);
        }
        free(row);
        tk->mm_packed(n, wp, r0, r0 + nr, x, xs, n_tok, y, ys, with_scratch ? mm_scratch : NULL);
    } else {
        tk->mm(n, w, ws, r0, r0 + nr, x, xs, n_tok, y, ys, with_scratch ? mm_scratch : NULL);
    }
    free(wp);
    int bad = 0;
    for (int t = 0; t < n_tok; t++) {
        for (size_t r = 0; r < ys; r++) {
            float got = y[(size_t)t * ys + r];
            bool inside = (int64_t)r >= r0 && (int64_t)r < r0 + nr;
            float want;
            if (inside)
                want = tk->vec_dot(n, w + r * ws, x + (size_t)t * xs);
            else
                memcpy(&want, &sentinel, sizeof(float));
            if (memcmp(&got, &want, sizeof(float)) != 0) {
                if (bad < 3)
                    fprintf(stderr,
                            "    %s %s mm%s n=%lld rows %lld+%lld tok %d: y[%d][%zu] = %.9g, "
                            "vec_dot %.9g\n",
                            k->isa, cai__type_info(type)->name, packed ? "_packed" : "",
                            (long long)n, (long long)r0,
                            (long long)nr, n_tok, t, r, (double)got, (double)want);
                bad++;
            }
        }
    }
    free(w);
    free(x);
    free(y);
    free(xfl);
    return bad;
}

/* mm (and mm_packed on the packed rows, where a table has it) equals
 * vec_dot bit for bit, for every table and type, with and without scratch,
 * over shapes that cover partial row groups, token tails,
 * token blocks, K chunks and strides. */
static void test_mm_exact(void)
{
    static const int64_t rows[][2] = {{0, 1}, {0, 8}, {3, 5}, {1, 13}, {0, 17}, {5, 24}, {2, 33}};
    static const int toks[] = {1, 2, 3, 4, 5, 7, 9, 13};
    mm_scratch = aligned_alloc(64, CAI__MM_SCRATCH_BYTES);
    if (!mm_scratch)
        abort();
    for (size_t ti = 0; ti < CAI_ARRAY_LEN(isas); ti++) {
        const struct cai_kernels *k = cai__kernels_by_name(isas[ti]);
        if (!k)
            continue;
        for (size_t j = 0; j < CAI_ARRAY_LEN(computed_types); j++) {
            uint32_t type = computed_types[j];
            int64_t blk = cai__type_info(type)->block;
            if (blk < cai__type_info(k->type[type].vec_dot_type)->block)
                blk = cai__type_info(k->type[type].vec_dot_type)->block;
            int bad = 0;
            for (int v = 0; v < 4; v++) { /* packed or not, scratch or not */
                int pk = v / 2, sc = v % 2;
                if (pk && !(k->type[type].pack && k->type[type].mm_packed))
                    continue;
                for (size_t a = 0; a < CAI_ARRAY_LEN(rows); a++) {
                    for (size_t b = 0; b < CAI_ARRAY_LEN(toks); b++) {
                        int64_t n = blk * (int64_t)(1 + (a + b) % 7);
                        bad += check_mm_case(k, type, n, rows[a][0], rows[a][1], toks[b], a % 3,
                                             b % 2 ? 5 : 0, a % 2, sc, pk);
                    }
                }
                /* token counts past one token block, and K past one chunk */
                bad += check_mm_case(k, type, blk * 18, 2, 9, 70, 0, 0, 3, sc, pk);
                bad += check_mm_case(k, type, blk * 5, 0, 20, 131, 0, 0, 0, sc, pk);
                if (blk == 32) {
                    bad += check_mm_case(k, type, 32 * 259, 0, 11, 6, 1, 0, 0, sc, pk);
                    bad += check_mm_case(k, type, 32 * 600, 1, 17, 7, 0, 0, 0, sc, pk);
                    /* decode past the packed kernel's stack table */
                    bad += check_mm_case(k, type, 32 * 2100, 3, 30, 1, 0, 0, 0, sc, pk);
                } else {
                    bad += check_mm_case(k, type, blk * 33, 0, 11, 6, 1, 0, 0, sc, pk);
                    if (blk == 256) { /* past one K chunk of the K-quant engine */
                        bad += check_mm_case(k, type, 256 * 100, 0, 5, 7, 0, 0, 0, sc, pk);
                        /* and with a pair of whole row groups */
                        bad += check_mm_case(k, type, 256 * 100, 0, 37, 9, 0, 0, 0, sc, pk);
                    }
                }
            }
            CHECK_MSG(bad == 0, "%s %s mm: %d outputs differ from vec_dot", k->isa,
                      cai__type_info(type)->name, bad);
        }
    }
    free(mm_scratch);
}

/* The batched f16 dots equal the single ones (and ref's) bit for bit. */
static void test_dot_f16_batched(void)
{
    static const int64_t nvecs[] = {1, 5, 16, 17, 33, 48};
    static const int64_t ns_chain[] = {16, 64, 80, 512};
    static const int64_t ns_plain[] = {1, 7, 63, 64, 65, 130, 512};
    const struct cai_kernels *ref = &cai__kernels_ref;
    for (size_t ti = 0; ti < CAI_ARRAY_LEN(isas); ti++) {
        const struct cai_kernels *k = cai__kernels_by_name(isas[ti]);
        if (!k)
            continue;
        int bad = 0;
        for (int chain = 0; chain < 2; chain++) {
            const int64_t *ns = chain ? ns_chain : ns_plain;
            size_t n_ns = chain ? CAI_ARRAY_LEN(ns_chain) : CAI_ARRAY_LEN(ns_plain);
            for (size_t a = 0; a < CAI_ARRAY_LEN(nvecs); a++) {
                for (size_t b = 0; b < n_ns; b++) {
                    int64_t nv = nvecs[a], n = ns[b];
                    size_t stride = (size_t)n + (a % 2 ? 24 : 0);
                    cai_half *m = malloc((stride * (size_t)nv + 64) * sizeof(cai_half));
                    cai_half *bv = malloc((size_t)n * sizeof(cai_half));
                    float *out = malloc((size_t)nv * sizeof(float));
                    if (!m || !bv || !out)
                        abort();
                    for (size_t i = 0; i < stride * (size_t)nv + 64; i++)
                        m[i] = cai__f32_to_fp16(rnd_normal());
                    for (int64_t i = 0; i < n; i++)
                        bv[i] = cai__f32_to_fp16(b % 2 ? rnd_unit() : rnd_normal());
                    if (chain)
                        k->dot_f16_chain_n(m, stride, nv, bv, n, out);
                    else
                        k->dot_f16_n(m, stride, nv, bv, n, out);
                    for (int64_t v = 0; v < nv; v++) {
                        const cai_half *row = m + (size_t)v * stride;
                        float one = chain ? k->dot_f16_chain(row, bv, n) : k->dot_f16(row, bv, n);
                        float r = chain ? ref->dot_f16_chain(row, bv, n) : ref->dot_f16(row, bv, n);
                        bad += memcmp(&out[v], &one, sizeof(float)) != 0 ||
                               memcmp(&out[v], &r, sizeof(float)) != 0;
                    }
                    free(m);
                    free(bv);
                    free(out);
                }
            }
        }
        CHECK_MSG(bad == 0, "%s batched f16 dots: %d differ", k->isa, bad);
    }
}

/* Runs the body once per table the host supports, with k pointing at it. */
#define FOR_EACH_TABLE(k)                                                                          \
    for (size_t ti_ = 0; ti_ < CAI_ARRAY_LEN(isas); ti_++)                                         \
        for (const struct cai_kernels *k = cai__kernels_by_name(isas[ti_]); k; k = NULL)

/* rope equals ref's bit for bit, both pairings, partial rotation. */
static void test_rope(void)
{
    static const int dims[][3] = {{64, 64, 9}, {64, 32, 3}, {128, 128, 2}, {80, 64, 2}, {64, 24, 2}};
    const struct cai_kernels *ref = &cai__kernels_ref;
    FOR_EACH_TABLE(k) {
        int bad = 0;
        for (size_t a = 0; a < CAI_ARRAY_LEN(dims); a++) {
            for (int neox = 0; neox < 2; neox++) {
                const int hd = dims[a][0], nr = dims[a][1], nh = dims[a][2];
                const size_t nx = (size_t)hd * (size_t)nh;
                float *x = malloc(nx * sizeof(float)), *y = malloc(nx * sizeof(float));
                float *cs = malloc((size_t)nr * sizeof(float));
                if (!x || !y || !cs)
                    abort();
                for (size_t i = 0; i < nx; i++)
                    x[i] = y[i] = rnd_normal() * 4.0f;
                for (int i = 0; i < nr / 2; i++) {
                    float th = (float)(a * 7 + 1) * powf(10000.0f, -2.0f * (float)i / (float)nr);
                    cs[2 * i] = cosf(th);
                    cs[2 * i + 1] = sinf(th);
                }
                k->rope(x, nh, hd, nr, cs, neox);
                ref->rope(y, nh, hd, nr, cs, neox);
                bad += memcmp(x, y, nx * sizeof(float)) != 0;
                free(x);
                free(y);
                free(cs);
            }
        }
        CHECK_MSG(bad == 0, "%s rope: %d cases differ", k->isa, bad);
    }
}

/* rmsnorm_n equals rmsnorm row by row, bit for bit, also in place. */
static void test_rmsnorm_n(void)
{
    static const int ntoks[] = {1, 3, 4, 5, 9, 16, 21, 35};
    static const int64_t ns[] = {1, 7, 64, 576, 2049};
    FOR_EACH_TABLE(k) {
        int bad = 0;
        for (size_t a = 0; a < CAI_ARRAY_LEN(ntoks); a++) {
            for (size_t b = 0; b < CAI_ARRAY_LEN(ns); b++) {
                const int nt = ntoks[a];
                const int64_t n = ns[b];
                const size_t xs = (size_t)n + (a % 2 ? 3 : 0), ys = (size_t)n + (b % 2 ? 5 : 0);
                float *x = malloc(xs * (size_t)nt * sizeof(float));
                float *y = malloc(ys * (size_t)nt * sizeof(float));
                float *w = malloc((size_t)n * sizeof(float));
                float *one = malloc((size_t)n * sizeof(float));
                if (!x || !y || !w || !one)
                    abort();
                for (size_t i = 0; i < xs * (size_t)nt; i++)
                    x[i] = rnd_normal() * (i % 7 == 0 ? 1e-3f : 3.0f);
                for (int64_t i = 0; i < n; i++)
                    w[i] = rnd_normal();
                k->rmsnorm_n(y, ys, x, xs, w, n, nt, 1e-6f);
                for (int t = 0; t < nt; t++) {
                    k->rmsnorm(one, x + (size_t)t * xs, w, n, 1e-6f);
                    bad += memcmp(one, y + (size_t)t * ys, (size_t)n * sizeof(float)) != 0;
                }
                /* in place: the expected rows are in y */
                k->rmsnorm_n(x, xs, x, xs, w, n, nt, 1e-6f);
                for (int t = 0; t < nt; t++)
                    bad += memcmp(x + (size_t)t * xs, y + (size_t)t * ys,
                                  (size_t)n * sizeof(float)) != 0;
                free(x);
                free(y);
                free(w);
                free(one);
            }
        }
        CHECK_MSG(bad == 0, "%s rmsnorm_n: %d rows differ", k->isa, bad);
    }
}

/* dot_f16_chain_mn (chain) / dot_f16_mn equal ref's bit for bit for any
 * f32 right-hand vectors, and dot_f16_chain / dot_f16 when they hold f16
 * values; outputs outside [0, n_vec) of each row stay untouched. Lengths:
 * multiples of 16 for the chain; dot_f16_mn also has tails of 8. */
static void check_f16_mn(bool chain)
{
    static const int64_t nvecs[] = {1, 3, 4, 7, 16, 33};
    static const int nbs[] = {1, 2, 3, 4, 5, 7, 8};
    static const int64_t ns[] = {16, 64, 80, 512, 200};
    const size_t n_ns = CAI_ARRAY_LEN(ns) - (chain ? 1 : 0);
    const struct cai_kernels *ref = &cai__kernels_ref;
    FOR_EACH_TABLE(k) {
        int bad = 0;
        for (size_t a = 0; a < CAI_ARRAY_LEN(nvecs); a++) {
            for (size_t c = 0; c < CAI_ARRAY_LEN(nbs); c++) {
                for (size_t d = 0; d < n_ns; d++) {
                    const int64_t nv = nvecs[a], n = ns[d];
                    const int nb = nbs[c];
                    const int f16_exact = (int)((a + c + d) % 2);
                    size_t as = (size_t)n + (a % 2 ? 24 : 0), bs = (size_t)n + (c % 2 ? 16 : 0);
                    size_t os = (size_t)nv + 3;
                    cai_half *m = malloc(as * (size_t)nv * sizeof(cai_half));
                    float *bv = malloc(bs * (size_t)nb * sizeof(float));
                    cai_half *bh = malloc((size_t)n * sizeof(cai_half));
                    float *out = malloc(os * (size_t)nb * sizeof(float));
                    float *want = malloc(os * (size_t)nb * sizeof(float));
                    if (!m || !bv || !bh || !out || !want)
                        abort();
                    for (size_t i = 0; i < as * (size_t)nv; i++)
                        m[i] = cai__f32_to_fp16(rnd_normal());
                    for (size_t i = 0; i < bs * (size_t)nb; i++) {
                        float x = d % 2 ? rnd_unit() : rnd_normal();
                        bv[i] = f16_exact ? cai__fp16_to_f32(cai__f32_to_fp16(x)) : x;
                    }
                    for (size_t i = 0; i < os * (size_t)nb; i++)
                        out[i] = want[i] = -7.0f;
                    (chain ? k->dot_f16_chain_mn : k->dot_f16_mn)(m, as, nv, bv, bs, nb, n, out,
                                                                  os);
                    (chain ? ref->dot_f16_chain_mn : ref->dot_f16_mn)(m, as, nv, bv, bs, nb, n,
                                                                      want, os);
                    bad += memcmp(out, want, os * (size_t)nb * sizeof(float)) != 0;
                    for (int j = 0; f16_exact && j < nb; j++) {
                        for (int64_t i = 0; i < n; i++)
                            bh[i] = cai__f32_to_fp16(bv[(size_t)j * bs + (size_t)i]);
                        for (int64_t v = 0; v < nv; v++) {
                            float one = (chain ? ref->dot_f16_chain : ref->dot_f16)(
                                m + (size_t)v * as, bh, n);
                            bad += memcmp(&out[(size_t)j * os + (size_t)v], &one, sizeof(float)) != 0;
                        }
                    }
                    free(m);
                    free(bv);
                    free(bh);
                    free(out);
                    free(want);
                }
            }
        }
        CHECK_MSG(bad == 0, "%s %s: %d cases differ", k->isa,
                  chain ? "dot_f16_chain_mn" : "dot_f16_mn", bad);
    }
}

static void test_dot_f16_chain_mn(void)
{
    check_f16_mn(true);
}

static void test_dot_f16_mn(void)
{
    check_f16_mn(false);
}

/* Every quantized format computes in one order in every table: SIMD
 * vec_dot equals ref's bit for bit. */
static void test_q_orders_identical(void)
{
    static const uint32_t q32[] = {CAI_TYPE_Q4_0, CAI_TYPE_Q4_1, CAI_TYPE_Q5_0, CAI_TYPE_Q5_1,
                                   CAI_TYPE_Q8_0, CAI_TYPE_Q8_1, CAI_TYPE_Q4_K, CAI_TYPE_Q5_K,
                                   CAI_TYPE_Q6_K, CAI_TYPE_Q8_K};
    const struct cai_kernels *ref = &cai__kernels_ref;
    for (size_t ti = 1; ti < CAI_ARRAY_LEN(isas); ti++) {
        const struct cai_kernels *k = cai__kernels_by_name(isas[ti]);
        if (!k)
            continue;
        for (size_t j = 0; j < CAI_ARRAY_LEN(q32); j++) {
            uint32_t type = q32[j], vdt = ref->type[type].vec_dot_type;
            int bad = 0;
            for (int l = 0; l < n_lengths(type); l++) {
                int64_t n = length_at(type, l);
                for (int rep = 0; rep < 4; rep++) {
                    rnd_blocks(type, wq, n);
                    rnd_floats(xf, n, rep == 1 ? 100.0f : 1.0f);
                    make_activation(ref, vdt, n, rep == 2);
                    float a = ref->type[type].vec_dot(n, wq, xq);
                    float b = k->type[type].vec_dot(n, wq, xq);
                    bad += memcmp(&a, &b, sizeof(float)) != 0;
                }
            }
            CHECK_MSG(bad == 0, "%s %s vec_dot differs from ref in %d cases", k->isa,
                      cai__type_info(type)->name, bad);
        }
    }
}

/* Round-trip error of the ref quantizers on normal data, relative to the
 * data's RMS (normal data with 1/64 outliers x8). Bounds are about 1.4x
 * what the quantizers achieve. */
static void test_quantizer_quality(void)
{
    static const struct {
        uint32_t type;
        double max_rel_rms;
    } bounds[] = {
        {CAI_TYPE_F32, 0.0},    {CAI_TYPE_F16, 3e-4},   {CAI_TYPE_BF16, 2.5e-3},
        {CAI_TYPE_Q4_0, 0.2},   {CAI_TYPE_Q4_1, 0.14},  {CAI_TYPE_Q5_0, 0.1},
        {CAI_TYPE_Q5_1, 0.07},  {CAI_TYPE_Q8_0, 0.013}, {CAI_TYPE_Q8_1, 0.013},
        {CAI_TYPE_Q4_K, 0.14},  {CAI_TYPE_Q5_K, 0.07},  {CAI_TYPE_Q6_K, 0.04},
        {CAI_TYPE_Q8_K, 0.03},
    };
    int64_t n = 64 * 256;
    for (size_t k = 0; k < CAI_ARRAY_LEN(bounds); k++) {
        uint32_t type = bounds[k].type;
        rnd_floats(xf, n, 1.0f);
        cai__kernels_ref.type[type].from_f32(xf, wq, n);
        cai__kernels_ref.type[type].to_f32(wq, yf, n);
        double err = 0, sig = 0;
        for (int64_t i = 0; i < n; i++) {
            err += ((double)yf[i] - (double)xf[i]) * ((double)yf[i] - (double)xf[i]);
            sig += (double)xf[i] * (double)xf[i];
        }
        double rel = sqrt(err / sig);
        if (verbose)
            fprintf(stderr, "    %-5s round-trip rel rms %.4g\n", cai__type_info(type)->name, rel);
        CHECK_MSG(rel <= bounds[k].max_rel_rms, "%s: %g", cai__type_info(type)->name, rel);
    }
}

/* ---- f32 ops ------------------------------------------------------------ */

static int close_rel(float got, float want, double tol, double floor)
{
    return fabs((double)got - (double)want) <= tol * fabs((double)want) + floor;
}

static void test_f32_ops(void)
{
    static const int64_t lens[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 576, 1000, 4099};
    for (size_t t = 1; t < CAI_ARRAY_LEN(isas); t++) {
        const struct cai_kernels *k = cai__kernels_by_name(isas[t]);
        if (!k)
            continue;
        const struct cai_kernels *r = &cai__kernels_ref;
        int bad_dot = 0, bad_axpy = 0, bad_rms = 0, bad_soft = 0, bad_silu = 0, bad_h = 0,
            bad_hc = 0, bad_hd = 0, bad_hx = 0, bad_hx_first = 1;
        for (size_t l = 0; l < CAI_ARRAY_LEN(lens); l++) {
            int64_t n = lens[l];
            rnd_floats(xf, n, 1.0f);
            rnd_floats(wf, n, 1.0f);
            double S = 1e-30;
            for (int64_t i = 0; i < n; i++)
                S += fabs((double)xf[i] * (double)wf[i]);
            bad_dot += !(fabs((double)k->dot_f32(xf, wf, n) - (double)r->dot_f32(xf, wf, n)) <=
                         TOL_DOT_F32 * S);
            /* f16 KV helpers */
            static cai_half h1[4200], h2[4200];
            r->f32_to_f16(xf, h1, n);
            memset(h2, 0, sizeof(h2));
            k->f32_to_f16(xf, h2, n);
            bad_hc += memcmp(h1, h2, sizeof(cai_half) * (size_t)n) != 0 || h2[n] != 0;
            double Sh = 1e-30;
            for (int64_t i = 0; i < n; i++)
                Sh += fabs((double)cai__fp16_to_f32(h1[i]) * (double)wf[i]);
            bad_hd += !(fabs((double)k->dot_f16_f32(h1, wf, n) - (double)r->dot_f16_f32(h1, wf, n)) <=
                       TOL_DOT_F32 * Sh);
            /* f16 x f16 dots: llama.cpp's summation orders, so bit-exact */
            {
                static cai_half h3[4200];
                r->f32_to_f16(wf, h3, n);
                bad_hx += k->dot_f16(h1, h3, n) != r->dot_f16(h1, h3, n);
                int64_t n16 = n & ~(int64_t)15;
                bad_hx += k->dot_f16_chain(h1, h3, n16) != r->dot_f16_chain(h1, h3, n16);
                /* and the ref against a double-precision dot */
                double dd = 0, d16 = 0, sa = 1e-30;
                for (int64_t i = 0; i < n; i++) {
                    double p = (double)cai__fp16_to_f32(h1[i]) * (double)cai__fp16_to_f32(h3[i]);
                    dd += p;
                    d16 += i < n16 ? p : 0.0;
                    sa += fabs(p);
                }
                bad_hx += !(fabs((double)r->dot_f16(h1, h3, n) - dd) <= TOL_DOT_F32 * sa);
                bad_hx += !(fabs((double)r->dot_f16_chain(h1, h3, n16) - d16) <= TOL_DOT_F32 * sa);
                if (bad_hx && bad_hx_first) {
                    bad_hx_first = 0;
                    fprintf(stderr, "    %s n=%lld: dot_f16 %.9g ref %.9g, chain %.9g ref %.9g, "
                            "double %.9g\n", k->isa, (long long)n, (double)k->dot_f16(h1, h3, n),
                            (double)r->dot_f16(h1, h3, n), (double)k->dot_f16_chain(h1, h3, n16),
                            (double)r->dot_f16_chain(h1, h3, n16), dd);
                }
            }
            memcpy(yf, wf, sizeof(float) * (size_t)n);
            memcpy(y2, wf, sizeof(float) * (size_t)n);
            r->axpy_f16(yf, 0.37f, h1, n);
            k->axpy_f16(y2, 0.37f, h1, n);
            for (int64_t i = 0; i < n; i++)
                bad_h += !(fabs((double)y2[i] - (double)yf[i]) <=
                           TOL_AXPY * (fabs((double)wf[i]) + fabs(0.37 * (double)cai__fp16_to_f32(h1[i]))));
            /* axpy */
            memcpy(yf, wf, sizeof(float) * (size_t)n);
            memcpy(y2, wf, sizeof(float) * (size_t)n);
            r->axpy_f32(yf, -1.7f, xf, n);
            k->axpy_f32(y2, -1.7f, xf, n);
            for (int64_t i = 0; i < n; i++)
                bad_axpy += !(fabs((double)y2[i] - (double)yf[i]) <=
                              TOL_AXPY * (fabs((double)wf[i]) + fabs(1.7 * (double)xf[i])));
            y2[n] = 12345.0f; /* no writes past n */
            if (n == 0)
                continue;
            /* rmsnorm, also in place */
            r->rmsnorm(yf, xf, wf, n, 1e-6f);
            k->rmsnorm(y2, xf, wf, n, 1e-6f);
            memcpy(y3, xf, sizeof(float) * (size_t)n);
            k->rmsnorm(y3, y3, wf, n, 1e-6f);
            for (int64_t i = 0; i < n; i++)
                bad_rms += !close_rel(y2[i], yf[i], TOL_ELEMWISE, 1e-30) ||
                           !close_rel(y3[i], yf[i], TOL_ELEMWISE, 1e-30);
            bad_rms += y2[n] != 12345.0f;
            /* softmax: logits spread wide enough to underflow some exps */
            for (int64_t i = 0; i < n; i++)
                yf[i] = y2[i] = xf[i] * 30.0f;
            if (n > 3)
                yf[3] = y2[3] = -INFINITY; /* a masked position */
            r->softmax(yf, n);
            k->softmax(y2, n);
            for (int64_t i = 0; i < n; i++)
                bad_soft += memcmp(&y2[i], &yf[i], sizeof(float)) != 0; /* bit-exact */
            /* softmax_att: scaled, rounded through f16, padded with zeros to
             * the next 16 (written over a sentinel), bit-exact against ref */
            const int64_t n_pad = (n + 15) & ~(int64_t)15;
            for (int64_t i = 0; i < n_pad + 1; i++)
                yf[i] = y2[i] = i < n ? xf[i] * 240.0f : 777.0f;
            if (n > 3)
                yf[3] = y2[3] = -INFINITY;
            r->softmax_att(yf, n, 0.125f, n_pad);
            k->softmax_att(y2, n, 0.125f, n_pad);
            for (int64_t i = 0; i < n_pad; i++)
                bad_soft += memcmp(&y2[i], &yf[i], sizeof(float)) != 0 || (i >= n && y2[i] != 0.0f);
            bad_soft += y2[n_pad] != 777.0f;
            /* and ref's is the steps one after the other */
            for (int64_t i = 0; i < n; i++)
                y3[i] = xf[i] * 240.0f * 0.125f;
            if (n > 3)
                y3[3] = -INFINITY;
            r->softmax(y3, n);
            for (int64_t i = 0; i < n; i++)
                bad_soft += memcmp(&yf[i], &(float){cai__fp16_to_f32(cai__f32_to_fp16(y3[i]))},
                                   sizeof(float)) != 0;
            /* silu_mul, also in place (y aliases g) */
            for (int64_t i = 0; i < n; i++)
                y3[i] = xf[i] * 20.0f;
            r->silu_mul(yf, y3, wf, n);
            k->silu_mul(y2, y3, wf, n);
            k->silu_mul(y3, y3, wf, n);
            for (int64_t i = 0; i < n; i++)
                bad_silu += memcmp(&y2[i], &yf[i], sizeof(float)) != 0 ||
                            memcmp(&y3[i], &yf[i], sizeof(float)) != 0; /* bit-exact */
        }
        CHECK_MSG(bad_dot == 0, "%s dot_f32", k->isa);
        CHECK_MSG(bad_axpy == 0, "%s axpy_f32", k->isa);
        CHECK_MSG(bad_rms == 0, "%s rmsnorm", k->isa);
        CHECK_MSG(bad_soft == 0, "%s softmax", k->isa);
        CHECK_MSG(bad_silu == 0, "%s silu_mul", k->isa);
        CHECK_MSG(bad_h == 0, "%s axpy_f16", k->isa);
        CHECK_MSG(bad_hc == 0, "%s f32_to_f16", k->isa);
        CHECK_MSG(bad_hd == 0, "%s dot_f16_f32", k->isa);
        CHECK_MSG(bad_hx == 0, "%s dot_f16 / dot_f16_chain", k->isa);
    }
}

/* The ref f32 ops against double arithmetic. */
/* gelu_mul: every f16 input value, values around the +-10 cut-offs, random
 * values, NaN, infinities and signed zeros, against u of both signs (and
 * -0, inf), in place too, with tails: each table bit for bit as ref; ref
 * against the formula at a few points. */
static void test_gelu_mul(void)
{
    const int64_t n = 65536 + 2 * 1024 + 37;
    float *g = malloc((size_t)n * sizeof(float)), *u = malloc((size_t)n * sizeof(float));
    float *yr = malloc((size_t)n * sizeof(float)), *yk = malloc((size_t)n * sizeof(float));
    float *yi = malloc((size_t)n * sizeof(float));
    uint32_t r = 11;
    for (int64_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        const float rnd = (float)(r >> 8) / 16777216.0f; /* [0, 1) */
        if (i < 65536)
            g[i] = cai__fp16_to_f32((cai_half)i);
        else if (i < 65536 + 1024)
            g[i] = (rnd - 0.5f) * 25.0f;
        else
            g[i] = (i & 1 ? 10.0f : -10.0f) + (rnd - 0.5f) * 1e-3f; /* the cut-offs */
        u[i] = (rnd - 0.5f) * 4.0f;
    }
    const float sp[] = {10.0f, -10.0f, nextafterf(10.0f, 0.0f), nextafterf(-10.0f, 0.0f),
                        NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < CAI_ARRAY_LEN(sp); i++) {
        g[n - 1 - (int64_t)i] = sp[i];
        u[n - 1 - (int64_t)i] = i % 3 == 0 ? -0.0f : i % 3 == 1 ? INFINITY : -2.0f;
    }
    cai__ref_gelu_mul(yr, g, u, n);
    /* the formula: gelu(1) = 0.8412, gelu(-1) = -0.1588, the cut-offs exact */
    const float one = 1.0f, mone = -1.0f, big = 12.0f, neg = -11.0f, w = -3.0f;
    float o;
    cai__ref_gelu_mul(&o, &one, &one, 1);
    CHECK(fabsf(o - 0.8412f) < 1e-3f);
    cai__ref_gelu_mul(&o, &mone, &one, 1);
    CHECK(fabsf(o + 0.1588f) < 1e-3f);
    cai__ref_gelu_mul(&o, &big, &w, 1);
    CHECK(o == -36.0f);
    cai__ref_gelu_mul(&o, &neg, &w, 1);
    CHECK(o == 0.0f && !signbit(o));
    static const int64_t lens[] = {1, 15, 16, 17, 100};
    for (size_t t = 1; t < CAI_ARRAY_LEN(isas); t++) {
        const struct cai_kernels *k = cai__kernels_by_name(isas[t]);
        if (!k)
            continue;
        k->gelu_mul(yk, g, u, n);
        memcpy(yi, g, (size_t)n * sizeof(float));
        k->gelu_mul(yi, yi, u, n);
        int bad = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (memcmp(&yk[i], &yr[i], 4) || memcmp(&yi[i], &yr[i], 4)) {
                bad++;
                first = first < 0 ? (int)i : first;
            }
        for (size_t l = 0; l < CAI_ARRAY_LEN(lens); l++) { /* tails write nothing past n */
            yk[lens[l]] = 777.0f;
            k->gelu_mul(yk, g + 65536, u + 65536, lens[l]);
            bad += yk[lens[l]] != 777.0f || memcmp(yk, yr + 65536, (size_t)lens[l] * 4) != 0;
        }
        CHECK_MSG(bad == 0, "%s gelu_mul: %d differ, first at %d", k->isa, bad, first);
    }
    free(g);
    free(u);
    free(yr);
    free(yk);
    free(yi);
}

static void test_ref_f32_ops(void)
{
    const struct cai_kernels *r = &cai__kernels_ref;
    int64_t n = 1000;
    rnd_floats(xf, n, 1.0f);
    rnd_floats(wf, n, 1.0f);
    double dot = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        dot += (double)xf[i] * (double)wf[i];
        ss += (double)xf[i] * (double)xf[i];
    }
    CHECK_NEAR(r->dot_f32(xf, wf, n), dot, 1e-6 * fabs(dot) + 1e-4);
    r->rmsnorm(yf, xf, wf, n, 1e-5f);
    double sc = 1.0 / sqrt(ss / (double)n + 1e-5);
    for (int64_t i = 0; i < n; i += 97) {
        double want = (double)xf[i] * sc * (double)wf[i];
        CHECK_NEAR(yf[i], want, 1e-6 * fabs(want) + 1e-7);
    }
    memcpy(yf, xf, sizeof(float) * (size_t)n);
    r->softmax(yf, n);
    double sum = 0, mx = -(double)INFINITY, z = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)yf[i];
        mx = (double)xf[i] > mx ? (double)xf[i] : mx;
    }
    for (int64_t i = 0; i < n; i++)
        z += exp((double)xf[i] - mx);
    CHECK_NEAR(sum, 1.0, 1e-5);
    CHECK_NEAR(yf[10], exp((double)xf[10] - mx) / z, 1e-6);
    r->silu_mul(yf, xf, wf, n);
    CHECK_NEAR(yf[5], (double)xf[5] / (1 + exp(-(double)xf[5])) * (double)wf[5], 1e-6);
}

/* ---- dispatch ----------------------------------------------------------- */

static void test_dispatch(void)
{
    const struct cai_cpu *cpu = cai__cpu();
    int avx2 = cpu->avx2 && cpu->fma && cpu->f16c;
    int avx512 = avx2 && cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512dq &&
                 cpu->avx512vnni;
#if !defined(__x86_64__)
    avx2 = avx512 = 0;
#endif
    CHECK(cai__kernels_supported("ref"));
    CHECK_EQ_INT(!!cai__kernels_supported("avx2"), avx2);
    CHECK_EQ_INT(!!cai__kernels_supported("avx512"), avx512);
    CHECK(!cai__kernels_supported("neon"));
    CHECK(!cai__kernels_supported(NULL));
    CHECK(cai__kernels_by_name("ref") == &cai__kernels_ref);
    CHECK(cai__kernels_by_name("avx2") == (avx2 ? &cai__kernels_avx2 : NULL));
    CHECK(cai__kernels_by_name("avx512") == (avx512 ? &cai__kernels_avx512 : NULL));
    CHECK(cai__kernels_by_name("AVX2") == NULL);
    CHECK(cai__kernels_by_name(NULL) == NULL);

    char *saved = getenv("COREAI_ISA") ? strdup(getenv("COREAI_ISA")) : NULL;
    unsetenv("COREAI_ISA");
    const struct cai_kernels *best = cai__kernels_get();
    CHECK(best != NULL);
    if (best)
        CHECK_STR(best->isa, avx512 ? "avx512" : avx2 ? "avx2" : "ref");
    setenv("COREAI_ISA", "", 1);
    CHECK(cai__kernels_get() == best);
    setenv("COREAI_ISA", "ref", 1);
    CHECK(cai__kernels_get() == &cai__kernels_ref);
    setenv("COREAI_ISA", "avx2", 1);
    CHECK(cai__kernels_get() == (avx2 ? &cai__kernels_avx2 : NULL));
    setenv("COREAI_ISA", "avx512", 1);
    CHECK(cai__kernels_get() == (avx512 ? &cai__kernels_avx512 : NULL));
    setenv("COREAI_ISA", "sse9", 1);
    CHECK(cai__kernels_get() == NULL);
    if (saved) {
        setenv("COREAI_ISA", saved, 1);
        free(saved);
    } else {
        unsetenv("COREAI_ISA");
    }
}

int main(void)
{
    verbose = getenv("KERNELS_VERBOSE") != NULL;
    RUN(test_type_info);
    RUN(test_row_bytes);
    RUN(test_fp16_to_f32_exhaustive);
    RUN(test_f32_to_fp16);
    RUN(test_bf16);
    RUN(test_simd_conversions);
    RUN(test_tables_complete);
    RUN(test_types_all_tables);
    RUN(test_mm_exact);
    RUN(test_q_orders_identical);
    RUN(test_dot_f16_batched);
    RUN(test_dot_f16_chain_mn);
    RUN(test_dot_f16_mn);
    RUN(test_rmsnorm_n);
    RUN(test_rope);
    RUN(test_quantizer_quality);
    RUN(test_f32_ops);
    RUN(test_gelu_mul);
    RUN(test_ref_f32_ops);
    RUN(test_dispatch);
    return test_done();
}
