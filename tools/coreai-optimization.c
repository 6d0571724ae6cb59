/* coreai-optimization: quantizes models into the engine's block formats.
 *
 *   coreai-optimization quantize --model IN --precision int8|int4|mixed|f16
 *       [--calibration TEXT] [--target-bpw B] [--target-device NAME] --output OUT
 *
 * Prints one line per weight matrix (format, bits per weight, relative
 * error, AWQ exponent, sensitivity) and a quality summary; a progress bar on
 * stderr when it is a terminal. Methods: docs/QUANTIZATION.md. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "coreai.h"
#include "coreai_quant.h"

static const char usage_text[] =
    "usage: coreai-optimization quantize --model IN --precision int8|int4|mixed|f16\n"
    "           [--calibration TEXT_FILE] [--target-bpw B] [--target-device NAME]\n"
    "           --output OUT [options]\n"
    "\n"
    "Quantizes the weight matrices of a GGUF or .coreaimodel model into the engine's\n"
    "block formats and writes OUT (GGUF when OUT ends in .gguf, else .coreaimodel).\n"
    "\n"
    "  --precision P        int8   q8_0, round-to-nearest per group of 32\n"
    "                       int4   q4_0 (q4_K for rows that are multiples of 256);\n"
    "                              with --calibration: AWQ scaling + GPTQ rounding\n"
    "                       mixed  a format per matrix from measured sensitivity, to meet\n"
    "                              --target-bpw with the lowest predicted KL divergence\n"
    "                              (needs --calibration)\n"
    "                       f16    every matrix to f16 (e.g. a dequantized source)\n"
    "  --calibration FILE   plain text the model is run on to collect activation\n"
    "                       statistics (calibrated int4/int8, mixed)\n"
    "  --target-bpw B       mixed: bits per weight over all 2-D weights (token embedding\n"
    "                       included, kept at q8_0)\n"
    "  --target-device D    kernel layout to store: cpu (default), ref, avx2, avx512 (all\n"
    "                       use the canonical GGUF block layout today)\n"
    "  --output OUT         the file to write (atomically)\n"
    "\n"
    "  --embd-type T        format of the token embedding and output matrix (default\n"
    "                       q8_0): f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k\n"
    "  --head-input I       the output head's input: f32 (as computed; default for int8)\n"
    "                       or 8bit (rounded per block of 32 like every other matmul\n"
    "                       input; default for int4 and mixed: faster decode)\n"
    "  --formats LIST       mixed: the candidate formats, comma-separated (default all:\n"
    "                       q4_0,q4_K,q4_1,q5_0,q5_K,q5_1,q6_K,q8_0)\n"
    "  --reorder            with calibration: regroup residual and feed-forward channels\n"
    "                       by activation size (an exact change; off by default)\n"
    "  --no-awq             skip activation-aware scaling\n"
    "  --no-gptq            round to nearest (importance-weighted) instead of GPTQ\n"
    "  --calib-tokens N     most calibration tokens (default 4096)\n"
    "  --seq-len N          calibration sequence length (default 512)\n"
    "  --sens-tokens N      mixed: tokens of each sensitivity probe (default 64)\n"
    "  --damp F             GPTQ damping, fraction of mean diag(H) (default 0.01)\n"
    "  --awq-grid N         AWQ exponents tried past 0 (default 10)\n"
    "  -t, --threads N      threads (default: all online CPUs)\n"
    "  -q, --quiet          only the summary\n"
    "  -h, --help           this text\n";

static bool quiet, tty;
static int  bar_shown;

static void clear_bar(void)
{
    if (bar_shown) {
        fputs("\r\033[K", stderr);
        bar_shown = 0;
    }
}

static void on_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user;
    if (quiet || total == 0)
        return;
    if (!tty) {
        /* Logs: a line when a stage starts and at each tenth. */
        static char last_stage[32];
        static int last_tenth = -1;
        int tenth = (int)(done * 10 / total);
        if (strncmp(last_stage, stage, sizeof(last_stage) - 1) != 0) {
            snprintf(last_stage, sizeof(last_stage), "%s", stage);
            last_tenth = -1;
        }
        if (tenth != last_tenth && strcmp(stage, "quantize") != 0) {
            last_tenth = tenth;
            fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 "\n", stage, done, total);
        }
        return;
    }
    int pct = (int)(done * 100 / total), bar = pct * 30 / 100;
    char b[31];
    for (int i = 0; i < 30; i++)
        b[i] = i < bar ? '#' : '.';
    b[30] = '\0';
    fprintf(stderr, "\r%-12s [%s] %3d%%  %" PRIu64 "/%" PRIu64, stage, b, pct, done, total);
    fflush(stderr);
    bar_shown = 1;
}

static void on_tensor(void *user, const struct cai_quant_tensor *t)
{
    (void)user;
    if (quiet)
        return;
    clear_bar();
    printf("%-28s %-6s %6.3f bpw  rel_err %.3e", t->name, t->type, t->bpw, t->rel_err);
    if (t->awq_alpha >= 0.0f)
        printf("  awq_alpha %.2f", (double)t->awq_alpha);
    if (t->sens > 0.0)
        printf("  sens_kld %.3e", t->sens);
    putchar('\n');
    fflush(stdout);
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || v != v)
        return false;
    *out = v;
    return true;
}

__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "coreai-optimization: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see coreai-optimization quantize --help)\n");
    va_end(ap);
    return 2;
}

static int cmd_quantize(int argc, char **argv)
{
    struct cai_quant_params p = cai_quant_params_default();
    const char *model = NULL, *output = NULL, *precision = NULL;
    bool have_precision = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (!v)                                                                                    \
            return bad("%s needs a value", a);                                                     \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            NEED_VALUE();
            model = v;
        } else if (!strcmp(a, "--output") || !strcmp(a, "-o")) {
            NEED_VALUE();
            output = v;
        } else if (!strcmp(a, "--precision")) {
            NEED_VALUE();
            precision = v;
            p.precision = cai_quant_precision_parse(v);
            if (p.precision < 0)
                return bad("unknown precision \"%s\" (valid: int8, int4, mixed, f16)", v);
            have_precision = true;
        } else if (!strcmp(a, "--calibration")) {
            NEED_VALUE();
            p.calibration_path = v;
        } else if (!strcmp(a, "--target-bpw")) {
            NEED_VALUE();
            if (!parse_float(v, &p.target_bpw) || !(p.target_bpw > 0.0f))
                return bad("--target-bpw: \"%s\" is not a positive number", v);
        } else if (!strcmp(a, "--target-device")) {
            NEED_VALUE();
            const char *const *dev = cai_quant_devices();
            bool ok = false;
            for (int d = 0; dev[d]; d++)
                ok = ok || !strcmp(dev[d], v);
            if (!ok) {
                fprintf(stderr, "coreai-optimization: unknown target device \"%s\"; valid:", v);
                for (int d = 0; dev[d]; d++)
                    fprintf(stderr, " %s", dev[d]);
                fprintf(stderr, "\n");
                return 2;
            }
            p.target_device = v;
        } else if (!strcmp(a, "--embd-type")) {
            NEED_VALUE();
            static const struct { const char *name; int type; } et[] = {
                {"f32", 0}, {"f16", 1}, {"q4_0", 2}, {"q4_1", 3}, {"q5_0", 6}, {"q5_1", 7},
                {"q8_0", 8}, {"q4_k", 12}, {"q5_k", 13}, {"q6_k", 14}};
            p.embd_type = -1;
            for (size_t e = 0; e < sizeof(et) / sizeof(et[0]); e++)
                if (!strcasecmp(v, et[e].name))
                    p.embd_type = et[e].type;
            if (p.embd_type < 0)
                return bad("--embd-type: \"%s\" is not one of f32, f16, q4_0, q4_1, q5_0, q5_1, "
                           "q8_0, q4_k, q5_k, q6_k", v);
        } else if (!strcmp(a, "--head-input")) {
            NEED_VALUE();
            if (!strcmp(v, "f32"))
                p.head_f32_input = 1;
            else if (!strcmp(v, "8bit"))
                p.head_f32_input = 0;
            else
                return bad("--head-input: \"%s\" is not f32 or 8bit", v);
        } else if (!strcmp(a, "--formats")) {
            NEED_VALUE();
            p.formats = v;
        } else if (!strcmp(a, "--reorder")) {
            p.reorder = true;
        } else if (!strcmp(a, "--no-awq")) {
            p.awq = false;
        } else if (!strcmp(a, "--no-gptq")) {
            p.gptq = false;
        } else if (!strcmp(a, "--calib-tokens")) {
            NEED_VALUE();
            if (!parse_int(v, 8, 1 << 22, &p.n_calib_tokens))
                return bad("--calib-tokens: \"%s\" is not in 8..4194304", v);
        } else if (!strcmp(a, "--seq-len")) {
            NEED_VALUE();
            if (!parse_int(v, 8, 1 << 16, &p.seq_len))
                return bad("--seq-len: \"%s\" is not in 8..65536", v);
        } else if (!strcmp(a, "--sens-tokens")) {
            NEED_VALUE();
            if (!parse_int(v, 8, 1 << 16, &p.n_sens_tokens))
                return bad("--sens-tokens: \"%s\" is not in 8..65536", v);
        } else if (!strcmp(a, "--damp")) {
            NEED_VALUE();
            if (!parse_float(v, &p.damp) || p.damp < 0.0f)
                return bad("--damp: \"%s\" is not a non-negative number", v);
        } else if (!strcmp(a, "--awq-grid")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 1000, &p.awq_grid))
                return bad("--awq-grid: \"%s\" is not in 1..1000", v);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 1024, &p.n_threads))
                return bad("--threads: \"%s\" is not in 1..1024", v);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else {
            return bad("unknown argument \"%s\"", a);
        }
#undef NEED_VALUE
    }
    if (!model)
        return bad("%s", "--model is required");
    if (!output)
        return bad("%s", "--output is required");
    if (!have_precision)
        return bad("%s", "--precision is required (int8, int4, mixed or f16)");
    if (p.precision == CAI_QUANT_MIXED && !(p.target_bpw > 0.0f))
        return bad("%s", "--precision mixed needs --target-bpw");
    if (p.precision == CAI_QUANT_MIXED && !p.calibration_path)
        return bad("%s", "--precision mixed needs --calibration");
    if (p.precision != CAI_QUANT_MIXED && p.target_bpw > 0.0f)
        return bad("--target-bpw applies to --precision mixed, not %s", precision);
    if (p.calibration_path && access(p.calibration_path, R_OK) != 0)
        return bad("cannot read the calibration file \"%s\"", p.calibration_path);
    if (!p.calibration_path && !quiet && (p.precision == CAI_QUANT_INT4))
        fprintf(stderr, "note: no --calibration: plain round-to-nearest int4\n");

    tty = isatty(2);
    p.progress = on_progress;
    p.on_tensor = on_tensor;
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit becomes an error, not a signal */
    struct cai_quant_summary s;
    struct cai_error err = {0};
    int rc = cai_quantize(model, output, &p, &s, &err);
    clear_bar();
    if (rc < 0) {
        fprintf(stderr, "coreai-optimization: %s: %s\n", cai_err_name(rc),
                err.msg[0] ? err.msg : cai_strerror(rc));
        return 1;
    }
    printf("\n== quality summary ==\n");
    printf("output            %s\n", output);
    printf("method            %s (%s)\n", s.method, precision);
    printf("weight matrices   %d, %" PRIu64 " weights in 2-D tensors\n", s.n_tensors, s.n_weights);
    printf("bits per weight   %.4f over the 2-D weights, %.4f over all tensors\n", s.bpw,
           s.bpw_all);
    printf("relative error    mean %.3e, max %.3e (%s)\n", s.mean_rel_err, s.max_rel_err,
           s.worst);
    if (s.calib_tokens)
        printf("calibration       %" PRIu64 " tokens\n", s.calib_tokens);
    if (p.precision == CAI_QUANT_MIXED) {
        printf("predicted KLD     %.4e (sum of per-matrix predictions)\n", s.predicted_kld);
        if (s.bpw < (double)p.target_bpw - 0.01)
            printf("note              %.4f bpw left unused: no further upgrade lowers the "
                   "predicted KLD\n", (double)p.target_bpw - s.bpw);
    }
    printf("time              %.1f s\n", s.seconds);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "quantize"))
        return cmd_quantize(argc - 1, argv + 1);
    fprintf(stderr, "coreai-optimization: unknown command \"%s\" (only: quantize)\n", argv[1]);
    return 2;
}
