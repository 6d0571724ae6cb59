/* bench_kernels.c: speed of the matrix-product kernels, one table at a time.
 *
 *   build-perf/bench/bench_kernels [-t TYPE] [-k K] [-m ROWS] [-n TOKENS,..] [-i ISA]
 *                                  [-r REPS] [--loop]
 *
 * For each token count, times mm over ROWS x K weights of TYPE (random valid
 * blocks, the activations quantized from random floats) and prints the best
 * of REPS calls: microseconds, weight GB/s (weights read once per call) and
 * integer GOP/s (2 ops per multiply-add). --loop times the plain
 * one-vec_dot-per-output loop instead (what mm replaced), --ab both,
 * alternating call by call; --packed times mm_packed on the packed rows
 * (with --ab: against mm on the original rows). The minimum over
 * repetitions is the figure to compare on this shared, noisy machine.
 *
 *   build-perf/bench/bench_kernels --model FILE [-T THREADS] [-p N] [-r REPS] [-i ISA]
 *                                  [--packed]
 *
 * A/B of the whole forward pass in one process: the table's tiled mm
 * against the same table with one vec_dot per output
 * (cai__kernels_loop_by_name), or with --packed the model's packed weights
 * (cai__model_pack) against the original rows, alternating run by run: a prompt of N tokens
 * (default 64; logits for the last) and single-token decode steps at
 * position N. Prints min and median ms and checks the logits are identical.
 * Build: make -f bench/kernels.mk (after make B=build-perf). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch/forward.h"
#include "arch/model.h"
#include "coreai.h"
#include "kernels/kernels.h"
#include "tensor/types.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static float rnd_f(void)
{
    return ((float)(rnd32() >> 8) / 16777216.0f - 0.5f) * 2.0f;
}

static const struct cai_kernels *g_k;
static float (*g_vd)(int64_t, const void *, const void *);

static void loop_mm(int64_t n, const void *w, size_t ws, int64_t r0, int64_t r1, const void *x,
                    size_t xs, int n_tok, float *y, size_t ys, void *scratch)
{
    (void)scratch;
    for (int64_t r = r0; r < r1; r++)
        for (int t = 0; t < n_tok; t++)
            y[(size_t)t * ys + (size_t)r] =
                g_vd(n, (const uint8_t *)w + (size_t)r * ws, (const uint8_t *)x + (size_t)t * xs);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define AB_MAX_REPS 200

/* Alternating A/B of the forward pass (see the header comment). */
static int model_ab(const char *path, const char *isa, int n_threads, int n_prompt, int reps,
                    int packed)
{
    struct cai_model *m;
    struct cai_error err = {0};
    if (cai_model_open(&m, path, NULL, &err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return 1;
    }
    const struct cai_kernels *ka = isa ? cai__kernels_by_name(isa) : cai__kernels_get();
    const struct cai_kernels *kb = cai__kernels_loop_by_name(ka ? ka->isa : "ref");
    static struct cai_kernels unpacked;
    if (!ka || !kb)
        return 2;
    if (packed) { /* B: the same table on the original rows */
        unpacked = *ka;
        for (int t = 0; t < CAI_TYPE_COUNT; t++)
            unpacked.type[t].mm_packed = NULL;
        kb = &unpacked;
    }
    struct cai__fwd f[2];
    const struct cai_kernels *ks[2] = {ka, kb};
    int nv = m->hp.n_vocab;
    float *logits[2];
    int32_t *toks = malloc((size_t)(n_prompt + 1) * sizeof(int32_t));
    for (int i = 0; i <= n_prompt; i++)
        toks[i] = (int32_t)(rnd32() % (uint32_t)nv);
    for (int v = 0; v < 2; v++) {
        if (cai__fwd_init(&f[v], m, ks[v], n_prompt + 8, n_prompt, n_threads, false, &err)) {
            fprintf(stderr, "fwd: %s\n", err.msg);
            return 1;
        }
        logits[v] = malloc((size_t)nv * sizeof(float));
    }
    if (packed) {
        setenv("COREAI_PACK", "1", 1);
        cai__model_pack(m, ka);
        cai_model_wait_packed(m);
    }
    reps = reps > AB_MAX_REPS ? AB_MAX_REPS : reps;
    double tp[2][AB_MAX_REPS], td[2][AB_MAX_REPS];
    int same = 1;
    for (int r = 0; r < reps; r++) {
        for (int v = 0; v < 2; v++) {
            double t0 = now_s();
            cai__fwd_eval(&f[v], toks, n_prompt, 0, 1, logits[v]);
            tp[v][r] = now_s() - t0;
        }
        same &= memcmp(logits[0], logits[1], (size_t)nv * sizeof(float)) == 0;
        for (int k = 0; k < 4; k++) {
            for (int v = 0; v < 2; v++) {
                double t0 = now_s();
                cai__fwd_eval(&f[v], toks + n_prompt, 1, n_prompt, 1, logits[v]);
                double dt = now_s() - t0;
                if (k == 0 || dt < td[v][r])
                    td[v][r] = dt;
            }
            same &= memcmp(logits[0], logits[1], (size_t)nv * sizeof(float)) == 0;
        }
    }
    printf("%s, %d thread(s), %s: %s, %d rounds\n", path, n_threads, ka->isa,
           packed ? "packed weights (A) vs the original rows (B)"
                  : "tiled mm (A) vs one vec_dot per output (B)",
           reps);
    for (int v = 0; v < 2; v++) {
        qsort(tp[v], (size_t)reps, sizeof(double), cmp_double);
        qsort(td[v], (size_t)reps, sizeof(double), cmp_double);
        printf("  %c: pp%d min %8.2f ms (%7.1f t/s) median %8.2f ms | tg min %7.3f ms (%6.1f t/s) "
               "median %7.3f ms\n",
               v ? 'B' : 'A', n_prompt, tp[v][0] * 1e3, n_prompt / tp[v][0],
               tp[v][reps / 2] * 1e3, td[v][0] * 1e3, 1.0 / td[v][0], td[v][reps / 2] * 1e3);
    }
    printf("  logits identical: %s\n", same ? "yes" : "NO");
    for (int v = 0; v < 2; v++) {
        cai__fwd_deinit(&f[v]);
        free(logits[v]);
    }
    free(toks);
    cai_model_close(m);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--model")) {
            const char *isa = NULL;
            int nt = 1, np = 64, reps = 10, packed = 0;
            for (int j = 1; j < argc; j++) {
                if (!strcmp(argv[j], "-T") && j + 1 < argc)
                    nt = atoi(argv[++j]);
                else if (!strcmp(argv[j], "-p") && j + 1 < argc)
                    np = atoi(argv[++j]);
                else if (!strcmp(argv[j], "-r") && j + 1 < argc)
                    reps = atoi(argv[++j]);
                else if (!strcmp(argv[j], "-i") && j + 1 < argc)
                    isa = argv[++j];
                else if (!strcmp(argv[j], "--packed"))
                    packed = 1;
            }
            return model_ab(argv[i + 1], isa, nt, np, reps, packed);
        }
    }
    const char *type_name = "q4_1", *isa = NULL, *toks = "1,4,64";
    int64_t K = 576, M = 1536;
    int reps = 20, use_loop = 0, use_packed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            type_name = argv[++i];
        else if (!strcmp(argv[i], "-k") && i + 1 < argc)
            K = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc)
            M = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            toks = argv[++i];
        else if (!strcmp(argv[i], "-i") && i + 1 < argc)
            isa = argv[++i];
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--loop"))
            use_loop = 1;
        else if (!strcmp(argv[i], "--ab"))
            use_loop = 2;
        else if (!strcmp(argv[i], "--packed"))
            use_packed = 1;
        else {
            fprintf(stderr, "usage: %s [-t TYPE] [-k K] [-m ROWS] [-n TOKENS,..] [-i ISA] "
                            "[-r REPS] [--loop|--ab] [--packed]\n", argv[0]);
            return 2;
        }
    }
    uint32_t type = CAI_TYPE_COUNT;
    for (uint32_t t = 0; t < CAI_TYPE_COUNT; t++) {
        const struct cai_type_info *ti = cai__type_info(t);
        if (ti && ti->computed && !strcasecmp(ti->name, type_name))
            type = t;
    }
    g_k = isa ? cai__kernels_by_name(isa) : cai__kernels_get();
    if (type == CAI_TYPE_COUNT || !g_k) {
        fprintf(stderr, "unknown type %s or unsupported isa\n", type_name);
        return 2;
    }
    const struct cai_type_kernels *tk = &g_k->type[type];
    uint32_t vdt = tk->vec_dot_type;
    g_vd = tk->vec_dot;
    size_t ws, xs;
    if (!cai__row_bytes(type, K, &ws) || !cai__row_bytes(vdt, K, &xs)) {
        fprintf(stderr, "K=%lld is not a multiple of the block size\n", (long long)K);
        return 2;
    }
    int max_tok = 1;
    for (const char *p = toks; *p;) {
        int v = atoi(p);
        max_tok = v > max_tok ? v : max_tok;
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    float *xf = malloc((size_t)K * sizeof(float));
    uint8_t *w = malloc(ws * (size_t)M), *x = malloc(xs * (size_t)max_tok);
    float *y = malloc((size_t)M * (size_t)max_tok * sizeof(float));
    void *scratch = aligned_alloc(64, CAI__MM_SCRATCH_BYTES);
    if (!xf || !w || !x || !y || !scratch)
        return 1;
    for (int64_t r = 0; r < M; r++) {
        for (int64_t i = 0; i < K; i++)
            xf[i] = rnd_f() * 0.05f;
        cai__kernels_ref.type[type].from_f32(xf, w + (size_t)r * ws, K);
    }
    void *wp = NULL;
    if (use_packed) {
        if (!tk->pack || !tk->mm_packed) {
            fprintf(stderr, "%s has no packed kernels for %s\n", g_k->isa, type_name);
            return 2;
        }
        wp = aligned_alloc(64, (cai__packed_bytes(ws, M) + 63) / 64 * 64);
        if (!wp)
            return 1;
        tk->pack(K, w, ws, M, 0, (M + CAI__PACK_ROWS - 1) / CAI__PACK_ROWS, wp);
    }
    for (int t = 0; t < max_tok; t++) {
        for (int64_t i = 0; i < K; i++)
            xf[i] = rnd_f();
        g_k->type[vdt].from_f32(xf, x + (size_t)t * xs, K);
    }
    printf("%s %s%s%s: %lld rows x %lld (%.2f MB of weights)\n", g_k->isa, type_name,
           use_packed ? " packed" : "", use_loop == 1 ? " (vec_dot loop)" : "", (long long)M,
           (long long)K,
           (double)(ws * (size_t)M) / 1e6);
    for (const char *p = toks; *p;) {
        int nt = atoi(p);
        /* use_loop 2: alternate mm and the loop, both reported */
        double best[2] = {1e30, 1e30};
        for (int r = 0; r < reps; r++) {
            for (int v = 0; v < 2; v++) {
                int lp = use_loop == 2 ? v : use_loop;
                if (use_loop != 2 && v)
                    break;
                double t0 = now_s();
                if (lp && use_packed) /* --ab --packed: packed vs tiled mm */
                    tk->mm(K, w, ws, 0, M, x, xs, nt, y, (size_t)M, scratch);
                else if (lp)
                    loop_mm(K, w, ws, 0, M, x, xs, nt, y, (size_t)M, NULL);
                else if (use_packed)
                    tk->mm_packed(K, wp, 0, M, x, xs, nt, y, (size_t)M, scratch);
                else
                    tk->mm(K, w, ws, 0, M, x, xs, nt, y, (size_t)M, scratch);
                double dt = now_s() - t0;
                best[v] = dt < best[v] ? dt : best[v];
            }
        }
        for (int v = 0; v < (use_loop == 2 ? 2 : 1); v++)
            printf("  n_tok %4d%s: %9.1f us  %6.2f GB/s weights  %7.1f GOP/s\n", nt,
                   use_loop == 2 ? (v ? (use_packed ? " mm  " : " loop") : (use_packed ? " pack" : " mm  ")) : "", best[v] * 1e6,
                   (double)(ws * (size_t)M) / best[v] / 1e9,
                   2.0 * (double)K * (double)M * nt / best[v] / 1e9);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    free(xf);
    free(w);
    free(x);
    free(y);
    free(scratch);
    free(wp);
    return 0;
}
