/* bench_cmd.h: `coreai bench`, prompt-processing and generation speed in the
 * same terms as llama.cpp's llama-bench.
 *
 * Included once into tools/coreai.c, which dispatches "bench" to cmd_bench().
 * Uses only the public API in coreai.h and libc; every name it defines
 * starts with bench_ (or is cmd_bench), so it cannot clash with the CLI's own.
 *
 * What is measured (mirrors llama-bench, tools/llama-bench in llama.cpp):
 *   ppN  decode N random token ids from an empty context, in batches of -b
 *        (default 512) tokens, logits for the last token only; t/s = N / time.
 *   tgN  from an empty context, decode N tokens one at a time (random ids),
 *        each producing logits; t/s = N / time.
 *   Each test runs one untimed warm-up (the whole pp run; one tg token), then
 *   -r timed repetitions, each from a cleared context. avg_ts / stddev_ts are
 *   the mean and sample standard deviation of the per-repetition t/s.
 * And, once per thread count, before any warm-up:
 *   load_ms  cai_model_open + cai_session_new (the model is opened once; for
 *            the 2nd and later thread counts its open time is reused)
 *   ttft_ms  load_ms + decoding a --ttft-prompt token prompt (default 128; in
 *            one pass when it fits in -b) + the argmax of its logits: the first
 *            token, load included
 *   max_rss_kib  the process's peak RSS so far (getrusage) after each test.
 * The timed tests start once the weights' background repacking (started by
 * the first session) has finished: they measure the steady state, as
 * llama-bench does after its load-time repacking; load_ms and ttft_ms do
 * not wait for it. */
#ifndef COREAI_BENCH_CMD_H
#define COREAI_BENCH_CMD_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "coreai.h"

#define BENCH_MAX_LIST 16
#define BENCH_MAX_REPS 1000

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: coreai bench MODEL [-p N] [-n N] [-t T] [-r R] [-o md|json] [options]\n\n"
            "Measures prompt processing (ppN: N random tokens decoded in batches from an\n"
            "empty context) and generation (tgN: N tokens decoded one at a time from an\n"
            "empty context) in tokens/s, mean +- sd over R repetitions after one warm-up,\n"
            "as llama.cpp's llama-bench does; plus load time and time to first token\n"
            "(load + a --ttft-prompt token prompt + argmax), measured once per thread\n"
            "count before any warm-up.\n\n"
            "  -p, --n-prompt N[,N..]  prompt lengths (default 512; 0: no pp test; with\n"
            "                          -p 0 -n 0 only load time and TTFT are measured)\n"
            "  -n, --n-gen N[,N..]     generation lengths (default 128; 0: no tg test)\n"
            "  -d, --n-depth N[,N..]   context already filled before each pp/tg run\n"
            "                          (default 0; filled once, untimed, and kept: each\n"
            "                          run starts at that position; llama-bench's -d)\n"
            "  -t, --threads T[,T..]   thread counts (default: all online CPUs)\n"
            "  -r, --repetitions R     timed repetitions per test (default 5)\n"
            "  -b, --batch-size N      most tokens per decode call in pp (default 512)\n"
            "  -o, --output md|json    table (default) or a JSON array, one object per\n"
            "                          test, with llama-bench's field names (n_threads,\n"
            "                          n_prompt, n_gen, n_depth, avg_ts, stddev_ts, avg_ns,\n"
            "                          stddev_ns, samples_ts, samples_ns, model_filename,\n"
            "                          model_size, model_n_params) and ttft_ms, load_ms,\n"
            "                          ttft_n_prompt, max_rss_kib\n"
            "      --ttft-prompt N     prompt tokens for the TTFT measurement (default\n"
            "                          128; 0: skip it)\n"
            "      --no-warmup         skip the warm-up runs\n"
            "  -v, --verbose           progress on stderr\n"
            "  -h, --help              this text\n");
}

static double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long bench_max_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss; /* KiB on Linux */
}

/* Parses "a,b,c" of integers in [lo, hi] into out; returns the count or -1. */
static int bench_parse_list(const char *s, int lo, int hi, int *out, int cap)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < lo || v > hi || n == cap)
            return -1;
        out[n++] = (int)v;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

static void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* xorshift64*: the random token ids (their values do not affect speed). */
static uint64_t bench_rng_state = 0x9E3779B97F4A7C15ull;
static int32_t bench_rand_token(int n_vocab)
{
    bench_rng_state ^= bench_rng_state >> 12;
    bench_rng_state ^= bench_rng_state << 25;
    bench_rng_state ^= bench_rng_state >> 27;
    return (int32_t)((bench_rng_state * 0x2545F4914F6CDD1Dull >> 33) % (uint64_t)n_vocab);
}

struct bench_ctx {
    struct cai_session   *s;
    struct cai_model_info info;
    int32_t              *toks; /* scratch, n_batch (or more) tokens */
    int                   n_batch;
    int                   depth; /* tokens of context every run starts from */
};

static void bench_fill(struct bench_ctx *b, int n, bool first)
{
    for (int i = 0; i < n; i++)
        b->toks[i] = bench_rand_token(b->info.n_vocab);
    if (first && b->info.bos >= 0)
        b->toks[0] = b->info.bos;
}

/* n_prompt tokens in batches, appended at position `at`. */
static int bench_append(struct bench_ctx *b, int n_prompt, int at)
{
    for (int done = 0; done < n_prompt;) {
        int n = n_prompt - done < b->n_batch ? n_prompt - done : b->n_batch;
        bench_fill(b, n, at + done == 0);
        int rc = cai_session_decode(b->s, b->toks, n, false);
        if (rc < 0)
            return rc;
        done += n;
    }
    return 0;
}

/* Brings the session to exactly b->depth tokens of context (untimed): what
 * it holds beyond the depth (a run's tokens) is dropped, what it lacks is
 * appended; every token is random, so the context kept from earlier runs
 * serves as well as a fresh one. */
static int bench_prep(struct bench_ctx *b)
{
    const int have = cai_session_n_tokens(b->s);
    if (have >= b->depth) {
        cai_session_truncate(b->s, b->depth);
        return 0;
    }
    return bench_append(b, b->depth - have, have);
}

/* One pp run: n_prompt tokens after the depth. Returns 0 or an error. */
static int bench_pp(struct bench_ctx *b, int n_prompt)
{
    return bench_append(b, n_prompt, b->depth);
}

/* One tg run: n_gen single-token decodes after the depth. */
static int bench_tg(struct bench_ctx *b, int n_gen)
{
    for (int i = 0; i < n_gen; i++) {
        bench_fill(b, 1, b->depth + i == 0);
        int rc = cai_session_decode(b->s, b->toks, 1, false);
        if (rc < 0)
            return rc;
    }
    return 0;
}

struct bench_result {
    int    n_threads, n_prompt, n_gen, n_depth, reps;
    double samples_ns[BENCH_MAX_REPS];
    double samples_ts[BENCH_MAX_REPS];
    double avg_ns, stddev_ns, avg_ts, stddev_ts;
    double ttft_ms, load_ms;
    int    ttft_n_prompt;
    long   max_rss_kib;
};

/* Mean and sample standard deviation (0 for one sample), as llama-bench. */
static void bench_stats(const double *v, int n, double *mean, double *sd)
{
    double s = 0, sq = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++)
        sq += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(sq / (n - 1)) : 0;
}

static void bench_print_md_header(void)
{
    printf("| model | size | params | threads | test | t/s | ttft ms | load ms |\n"
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
}

static void bench_print_md(const struct cai_model_info *info, const char *path,
                           const struct bench_result *r)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char test[32];
    if (r->n_prompt)
        snprintf(test, sizeof(test), "pp%d", r->n_prompt);
    else if (r->n_gen)
        snprintf(test, sizeof(test), "tg%d", r->n_gen);
    else
        snprintf(test, sizeof(test), "ttft%d", r->ttft_n_prompt);
    if (r->n_depth > 0 && (r->n_prompt || r->n_gen)) {
        size_t l = strlen(test);
        snprintf(test + l, sizeof(test) - l, " @ d%d", r->n_depth);
    }
    printf("| %s (%s) | %.2f MiB | %.2f M | %d | %s | %.2f ± %.2f | %.1f | %.1f |\n", base,
           info->arch, (double)info->n_bytes / (1024.0 * 1024.0), (double)info->n_params / 1e6,
           r->n_threads, test, r->avg_ts, r->stddev_ts, r->ttft_ms, r->load_ms);
    fflush(stdout);
}

static void bench_print_json(const struct cai_model_info *info, const char *path, int n_batch,
                             const struct bench_result *r, bool first)
{
    char date[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s  {\n", first ? "" : ",\n");
    printf("    \"engine\": \"coreai\",\n    \"coreai_version\": \"%d.%d.%d\",\n",
           CAI_VERSION_MAJOR, CAI_VERSION_MINOR, CAI_VERSION_PATCH);
    printf("    \"model_filename\": ");
    bench_json_str(stdout, path);
    printf(",\n    \"model_type\": ");
    bench_json_str(stdout, info->arch);
    printf(",\n    \"model_size\": %llu,\n    \"model_n_params\": %llu,\n",
           (unsigned long long)info->n_bytes, (unsigned long long)info->n_params);
    printf("    \"n_batch\": %d,\n    \"n_threads\": %d,\n    \"n_prompt\": %d,\n"
           "    \"n_gen\": %d,\n    \"n_depth\": %d,\n    \"test_time\": \"%s\",\n",
           n_batch, r->n_threads, r->n_prompt, r->n_gen, r->n_depth, date);
    printf("    \"avg_ns\": %.0f,\n    \"stddev_ns\": %.0f,\n    \"avg_ts\": %.6f,\n"
           "    \"stddev_ts\": %.6f,\n",
           r->avg_ns, r->stddev_ns, r->avg_ts, r->stddev_ts);
    printf("    \"ttft_ms\": %.3f,\n    \"ttft_n_prompt\": %d,\n    \"load_ms\": %.3f,\n"
           "    \"max_rss_kib\": %ld,\n",
           r->ttft_ms, r->ttft_n_prompt, r->load_ms, r->max_rss_kib);
    printf("    \"samples_ns\": [ ");
    for (int i = 0; i < r->reps; i++)
        printf("%s%.0f", i ? ", " : "", r->samples_ns[i]);
    printf(" ],\n    \"samples_ts\": [ ");
    for (int i = 0; i < r->reps; i++)
        printf("%s%.6f", i ? ", " : "", r->samples_ts[i]);
    printf(" ]\n  }");
    fflush(stdout);
}

static const char *bench_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "coreai bench: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return argv[++*i];
}

/* Reads option argv[*i]'s integer value in [lo, hi] into *out. */
static bool bench_int_opt(int argc, char **argv, int *i, int lo, int hi, int *out)
{
    const char *a = argv[*i];
    const char *v = bench_value(argc, argv, i);
    if (bench_parse_list(v, lo, hi, out, 1) != 1) {
        fprintf(stderr, "coreai bench: %s: expected an integer in [%d, %d], got \"%s\"\n", a, lo,
                hi, v);
        return false;
    }
    return true;
}

static int cmd_bench(int argc, char **argv)
{
    const char *path = NULL;
    int pp[BENCH_MAX_LIST] = {512}, n_pp = 1;
    int tg[BENCH_MAX_LIST] = {128}, n_tg = 1;
    int th[BENCH_MAX_LIST] = {0}, n_th = 1;
    int dp[BENCH_MAX_LIST] = {0}, n_dp = 1;
    int reps = 5, n_batch = 512, ttft_prompt = 128;
    bool json = false, warmup = true, verbose = false;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    th[0] = ncpu > 0 ? (int)ncpu : 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int *list = NULL, *count = NULL, lo = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            list = pp, count = &n_pp;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            list = tg, count = &n_tg;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
            list = dp, count = &n_dp;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            list = th, count = &n_th, lo = 1;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!bench_int_opt(argc, argv, &i, 1, BENCH_MAX_REPS, &reps))
                return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (!bench_int_opt(argc, argv, &i, 1, 1 << 20, &n_batch))
                return 2;
        } else if (!strcmp(a, "--ttft-prompt")) {
            if (!bench_int_opt(argc, argv, &i, 0, 1 << 20, &ttft_prompt))
                return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            const char *v = bench_value(argc, argv, &i);
            if (!strcmp(v, "json")) {
                json = true;
            } else if (!strcmp(v, "md")) {
                json = false;
            } else {
                fprintf(stderr, "coreai bench: -o: expected md or json, got \"%s\"\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--no-warmup")) {
            warmup = false;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "coreai bench: unknown option %s (see --help)\n", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "coreai bench: one model only (got \"%s\" and \"%s\")\n", path, a);
            return 2;
        }
        if (list) {
            const char *v = bench_value(argc, argv, &i);
            int n = bench_parse_list(v, lo, lo ? 1024 : 1 << 20, list, BENCH_MAX_LIST);
            if (n < 0) {
                fprintf(stderr, "coreai bench: %s: expected a comma-separated list of integers "
                                "(at most %d) in [%d, %d], got \"%s\"\n",
                        a, BENCH_MAX_LIST, lo, lo ? 1024 : 1 << 20, v);
                return 2;
            }
            *count = n;
        }
    }
    if (!path) {
        bench_usage(stderr);
        return 2;
    }

    /* Context: the deepest start plus the longest single test. */
    int n_test = 0, max_depth = 0;
    for (int i = 0; i < n_pp; i++)
        n_test = pp[i] > n_test ? pp[i] : n_test;
    for (int i = 0; i < n_tg; i++)
        n_test = tg[i] > n_test ? tg[i] : n_test;
    for (int i = 0; i < n_dp; i++)
        max_depth = dp[i] > max_depth ? dp[i] : max_depth;
    int n_ctx = max_depth + n_test > ttft_prompt ? max_depth + n_test : ttft_prompt;
    if (n_ctx < 1)
        n_ctx = 1;
    int scratch = n_batch;

    struct bench_ctx b;
    memset(&b, 0, sizeof(b));
    b.n_batch = n_batch;
    b.toks = malloc(sizeof(*b.toks) * (size_t)(scratch > 0 ? scratch : 1));
    struct bench_result *r = malloc(sizeof(*r));
    if (!b.toks || !r) {
        fprintf(stderr, "coreai bench: out of memory\n");
        return 1;
    }

    struct cai_error err = {0};
    struct cai_model *m = NULL;
    double t0 = bench_now_ms();
    if (cai_model_open(&m, path, NULL, &err) < 0) {
        fprintf(stderr, "coreai bench: %s\n", err.msg);
        free(b.toks);
        free(r);
        return 1;
    }
    double open_ms = bench_now_ms() - t0;
    cai_model_get_info(m, &b.info);
    if (b.info.n_vocab < 1) {
        fprintf(stderr, "coreai bench: %s: empty vocabulary\n", path);
        cai_model_close(m);
        free(b.toks);
        free(r);
        return 1;
    }

    int status = 0;
    bool first_json = true;
    if (json)
        printf("[\n");
    else
        bench_print_md_header();

    for (int it = 0; it < n_th && status == 0; it++) {
        struct cai_session_params sp = cai_session_params_default();
        sp.n_threads = th[it];
        sp.n_ctx = n_ctx;
        sp.n_batch = n_batch;
        double ts0 = bench_now_ms();
        if (cai_session_new(&b.s, m, &sp, &err) < 0) {
            fprintf(stderr, "coreai bench: %s\n", err.msg);
            status = 1;
            break;
        }
        double load_ms = open_ms + (bench_now_ms() - ts0);

        /* Time to first token: load + one pass over the prompt + argmax. */
        double ttft_ms = 0;
        b.depth = 0;
        if (ttft_prompt > 0) {
            double tp = bench_now_ms();
            cai_session_truncate(b.s, 0);
            int rc = bench_pp(&b, ttft_prompt); /* one pass when <= -b tokens */
            const float *lg = rc < 0 ? NULL : cai_session_logits(b.s, -1);
            if (!lg) {
                fprintf(stderr, "coreai bench: TTFT prompt decode failed: %s\n",
                        rc < 0 ? cai_strerror(rc) : "no logits");
                status = 1;
            } else {
                int best = 0;
                for (int i = 1; i < b.info.n_vocab; i++)
                    best = lg[i] > lg[best] ? i : best;
                ttft_ms = load_ms + (bench_now_ms() - tp);
                if (verbose)
                    fprintf(stderr, "coreai bench: t=%d load %.1f ms, ttft %.1f ms (token %d)\n",
                            th[it], load_ms, ttft_ms, best);
            }
        }

        /* The timed tests measure the steady state: after the weights'
         * background repacking (load and TTFT above do not wait for it). */
        if (status == 0) {
            double tw = bench_now_ms();
            cai_model_wait_packed(m);
            if (verbose)
                fprintf(stderr, "coreai bench: waited %.1f ms for the packed weights\n",
                        bench_now_ms() - tw);
        }

        /* The tests: per depth, all pp lengths, then all tg lengths
         * (llama-bench's order). */
        for (int kk = 0; kk < n_dp * (n_pp + n_tg) && status == 0; kk++) {
            const int k = kk % (n_pp + n_tg);
            bool is_pp = k < n_pp;
            int n = is_pp ? pp[k] : tg[k - n_pp];
            if (n <= 0)
                continue;
            b.depth = dp[kk / (n_pp + n_tg)];
            memset(r, 0, sizeof(*r));
            r->n_threads = th[it];
            r->n_prompt = is_pp ? n : 0;
            r->n_gen = is_pp ? 0 : n;
            r->n_depth = b.depth;
            r->reps = reps;
            r->ttft_ms = ttft_ms;
            r->ttft_n_prompt = ttft_prompt;
            r->load_ms = load_ms;
            int rc = bench_prep(&b);
            if (warmup && rc == 0) {
                rc = is_pp ? bench_pp(&b, n) : bench_tg(&b, 1);
                if (rc == 0)
                    rc = bench_prep(&b);
            }
            for (int rep = 0; rep < reps && rc == 0; rep++) {
                if (verbose)
                    fprintf(stderr, "coreai bench: t=%d %s%d @ d%d rep %d/%d\n", th[it],
                            is_pp ? "pp" : "tg", n, b.depth, rep + 1, reps);
                if (rep > 0 && (rc = bench_prep(&b)) < 0)
                    break;
                double ta = bench_now_ms();
                rc = is_pp ? bench_pp(&b, n) : bench_tg(&b, n);
                double dt = bench_now_ms() - ta;
                r->samples_ns[rep] = dt * 1e6;
                r->samples_ts[rep] = dt > 0 ? n / (dt / 1e3) : 0;
            }
            if (rc < 0) {
                fprintf(stderr, "coreai bench: decode failed: %s (%s)\n", cai_strerror(rc),
                        cai_session_errmsg(b.s));
                status = 1;
                break;
            }
            bench_stats(r->samples_ns, reps, &r->avg_ns, &r->stddev_ns);
            bench_stats(r->samples_ts, reps, &r->avg_ts, &r->stddev_ts);
            r->max_rss_kib = bench_max_rss_kib();
            if (json) {
                bench_print_json(&b.info, path, n_batch, r, first_json);
                first_json = false;
            } else {
                bench_print_md(&b.info, path, r);
            }
        }
        /* No pp/tg test (-p 0 -n 0): one record with the TTFT and load time. */
        bool any = false;
        for (int k = 0; k < n_pp; k++)
            any = any || pp[k] > 0;
        for (int k = 0; k < n_tg; k++)
            any = any || tg[k] > 0;
        if (!any && status == 0) {
            memset(r, 0, sizeof(*r));
            r->n_threads = th[it];
            r->ttft_ms = ttft_ms;
            r->ttft_n_prompt = ttft_prompt;
            r->load_ms = load_ms;
            r->max_rss_kib = bench_max_rss_kib();
            if (json) {
                bench_print_json(&b.info, path, n_batch, r, first_json);
                first_json = false;
            } else {
                bench_print_md(&b.info, path, r);
            }
        }
        cai_session_free(b.s);
        b.s = NULL;
    }
    if (json)
        printf("\n]\n");
    cai_model_close(m);
    free(b.toks);
    free(r);
    return status;
}

#endif /* COREAI_BENCH_CMD_H */
