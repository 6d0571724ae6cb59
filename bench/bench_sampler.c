/* bench_sampler.c: time per token of the sampler chain on one logits row.
 *
 *   build-perf/bench/bench_sampler [-v VOCAB,..] [-r REPS] [--greedy]
 *
 * For each vocabulary size (default 49152 = SmolLM2, 151936 = Qwen2.5,
 * 128256 = Llama 3), draws a row of logits uniform in [-5, 5) (fixed seed),
 * then times cai__sampler_sample on a fresh copy of it REPS times (default
 * 50) with the default chain (penalties off, top-k 40, top-p 0.95, min-p
 * 0.05, temperature 0.8) or argmax (--greedy), and prints the best and the
 * median in microseconds, plus the sum of the drawn ids (the same sum means
 * the same tokens). Build: make -f bench/kernels.mk (after make B=build-perf). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coreai.h"
#include "sample/sample.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int vocab[8] = {49152, 151936, 128256}, n_vocab = 3, reps = 50;
    bool greedy = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v") && i + 1 < argc) {
            n_vocab = 0;
            for (char *s = argv[++i], *end; *s && n_vocab < 8; s = *end ? end + 1 : end) {
                long v = strtol(s, &end, 10);
                if (end == s || v < 1 || v > 1 << 24) {
                    fprintf(stderr, "bench_sampler: -v: bad list\n");
                    return 2;
                }
                vocab[n_vocab++] = (int)v;
            }
        } else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1 || reps > 100000) {
                fprintf(stderr, "bench_sampler: -r: 1..100000\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--greedy")) {
            greedy = true;
        } else {
            fprintf(stderr, "usage: %s [-v VOCAB,..] [-r REPS] [--greedy]\n", argv[0]);
            return strcmp(argv[i], "-h") && strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    for (int vi = 0; vi < n_vocab; vi++) {
        const int n = vocab[vi];
        float *row = malloc((size_t)n * sizeof(float)), *tmp = malloc((size_t)n * sizeof(float));
        double *t = malloc((size_t)reps * sizeof(double));
        if (!row || !tmp || !t)
            return 1;
        uint32_t r = 1;
        for (int i = 0; i < n; i++) {
            r = r * 1664525u + 1013904223u;
            row[i] = (float)(r >> 8) / 16777216.0f * 10.0f - 5.0f;
        }
        struct cai_sampling p = cai_sampling_default();
        if (greedy)
            p.temp = 0.0f;
        struct cai_sampler *s;
        struct cai_error err = {0};
        if (cai__sampler_new(&s, &p, (uint32_t)n, &err) < 0) {
            fprintf(stderr, "bench_sampler: %s\n", err.msg);
            return 1;
        }
        long sum = 0;
        for (int k = 0; k < reps; k++) {
            memcpy(tmp, row, (size_t)n * sizeof(float));
            const double t0 = now_us();
            sum += cai__sampler_sample(s, tmp);
            t[k] = now_us() - t0;
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        printf("vocab %6d %s: best %7.1f us, median %7.1f us (ids sum %ld)\n", n,
               greedy ? "greedy" : "default chain", t[0], t[reps / 2], sum);
        cai__sampler_free(s);
        free(row);
        free(tmp);
        free(t);
    }
    return 0;
}
