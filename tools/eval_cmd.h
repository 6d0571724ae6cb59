/* eval_cmd.h: `coreai eval`, perplexity and (against a reference model) KL
 * divergence and top-1 agreement over a text, the llama-perplexity
 * --kl-divergence idea.
 *
 * Included once into tools/coreai.c, which dispatches "eval" to cmd_eval().
 * Uses only the public API in coreai.h and libc; every name it defines
 * starts with eval_ (or is cmd_eval).
 *
 * What is measured (as llama-perplexity does it): the text is tokenized
 * once (without special tokens) and cut into non-overlapping chunks of
 * -c tokens; each chunk starts with BOS when the model adds one (then
 * carries c - 1 text tokens) and is decoded from an empty context. In each
 * chunk the logits at positions c/2 .. c-2 are scored against the next
 * token, so every scored token has at least c/2 tokens of context.
 *   ppl       exp(mean negative log-likelihood of the scored tokens)
 *   kld_mean  mean over scored positions of KL(P_ref || P_model), in nats,
 *             both distributions the full softmax over the vocabulary
 *   kld_max   its largest value; kld_p99 the 99th percentile
 *   top1      fraction of positions where both models' argmax agree
 * Both models must tokenize the text identically. */
#ifndef COREAI_EVAL_CMD_H
#define COREAI_EVAL_CMD_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreai.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: coreai eval MODEL --text FILE [--kld-against REF_MODEL] [-o text|json]\n"
            "                   [-c N] [-b N] [-t N] [--chunks N]\n\n"
            "Perplexity of MODEL over a text and, with a reference model, the mean and max\n"
            "KL divergence KL(P_ref || P_model) and the top-1 agreement over the same tokens\n"
            "(llama-perplexity's --kl-divergence). The text is cut into chunks of -c tokens\n"
            "(BOS first when the model adds one), each decoded from an empty context; the\n"
            "second half of every chunk is scored.\n\n"
            "  --text FILE          the text (UTF-8)\n"
            "  --kld-against REF    reference model (same tokenizer)\n"
            "  -c, --ctx N          chunk length in tokens (default 512)\n"
            "  -b, --batch N        tokens per decode call (default: the chunk length)\n"
            "  --chunks N           score at most N chunks (default: all)\n"
            "  -t, --threads N      threads (default: all online CPUs)\n"
            "  -o, --output F       text (default) or json: one object with n_tokens, ppl, bpw\n"
            "                       (over the 2-D weights) and, with a reference, kld_mean,\n"
            "                       kld_mean_se, kld_max, kld_p99, top1, ref_ppl\n"
            "  -h, --help           this text\n");
}

static bool eval_parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static char *eval_read_text(const char *path, size_t *n_bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap > ((size_t)1 << 30)) { /* 1 GiB of text is surely a mistake */
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool io_err = ferror(f);
    fclose(f);
    if (!buf || io_err) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *n_bytes = n;
    return buf;
}

/* log-sum-exp of a row, and its argmax. */
static double eval_lse(const float *x, int n, int *argmax)
{
    float mx = x[0];
    int am = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > mx) {
            mx = x[i];
            am = i;
        }
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += exp((double)x[i] - (double)mx);
    *argmax = am;
    return (double)mx + log(s);
}

static int eval_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void eval_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* Tokenizes the whole text without special tokens; *out is malloc'd. */
static int eval_tokenize(const struct cai_model *m, const char *text, size_t n, int32_t **out)
{
    int need = cai_tokenize(m, text, n, false, false, NULL, 0);
    if (need < 0)
        return need;
    int32_t *t = malloc(((size_t)need + 1) * sizeof(int32_t));
    if (!t)
        return CAI_ENOMEM;
    int got = cai_tokenize(m, text, n, false, false, t, need);
    if (got < 0) {
        free(t);
        return got;
    }
    *out = t;
    return got;
}

static int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *text_path = NULL, *ref_path = NULL, *fmt = "text";
    int n_ctx = 512, n_batch = 0, n_threads = 0, max_chunks = 0;
    static const char *const with_value[] = {"--text", "--kld-against", "-c", "--ctx", "-b",
                                             "--batch", "-t", "--threads", "--chunks", "-o",
                                             "--output"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            eval_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || !a[1]) {
            if (model_path) {
                fprintf(stderr, "eval: unexpected argument \"%s\"\n", a);
                return 2;
            }
            model_path = a;
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            known = known || !strcmp(a, with_value[k]);
        if (!known) {
            fprintf(stderr, "eval: unknown option %s (see coreai eval --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "eval: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--text")) {
            text_path = v;
        } else if (!strcmp(a, "--kld-against")) {
            ref_path = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!eval_parse_int(v, 8, 1 << 20, &n_ctx)) {
                fprintf(stderr, "eval: -c: \"%s\" is not in 8..1048576\n", v);
                return 2;
            }
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
            if (!eval_parse_int(v, 1, 1 << 20, &n_batch)) {
                fprintf(stderr, "eval: -b: \"%s\" is not in 1..1048576\n", v);
                return 2;
            }
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!eval_parse_int(v, 1, 1024, &n_threads)) {
                fprintf(stderr, "eval: -t: \"%s\" is not in 1..1024\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--chunks")) {
            if (!eval_parse_int(v, 1, 1 << 30, &max_chunks)) {
                fprintf(stderr, "eval: --chunks: \"%s\" is not a positive number\n", v);
                return 2;
            }
        } else {
            if (strcmp(v, "text") && strcmp(v, "json")) {
                fprintf(stderr, "eval: -o: \"%s\" is not text or json\n", v);
                return 2;
            }
            fmt = v;
        }
    }
    if (!model_path || !text_path) {
        fprintf(stderr, "eval: MODEL and --text FILE are required\n");
        eval_usage(stderr);
        return 2;
    }
    if (n_batch <= 0 || n_batch > n_ctx)
        n_batch = n_ctx;
    bool json = !strcmp(fmt, "json");

    size_t n_text = 0;
    char *text = eval_read_text(text_path, &n_text);
    if (!text) {
        fprintf(stderr, "eval: cannot read %s: %s\n", text_path, strerror(errno ? errno : EIO));
        return 1;
    }
    struct cai_model *m = NULL, *rm = NULL;
    struct cai_session *s = NULL, *rs = NULL;
    int32_t *toks = NULL, *rtoks = NULL;
    double *klds = NULL;
    struct cai_error err = {0};
    int ret = 1, rc;
    struct cai_model_params mp = cai_model_params_default();
    if ((rc = cai_model_open(&m, model_path, &mp, &err)) < 0) {
        fprintf(stderr, "eval: %s\n", err.msg[0] ? err.msg : cai_strerror(rc));
        goto out;
    }
    if (ref_path && (rc = cai_model_open(&rm, ref_path, &mp, &err)) < 0) {
        fprintf(stderr, "eval: %s\n", err.msg[0] ? err.msg : cai_strerror(rc));
        goto out;
    }
    struct cai_model_info info, rinfo;
    cai_model_get_info(m, &info);
    /* Bits per weight over the 2-D weight tensors (docs/FORMAT.md). */
    double bits2 = 0.0, elems2 = 0.0;
    {
        const char *tn, *ttype;
        int64_t ne[4];
        int nd;
        uint64_t nb;
        for (int i = 0; cai_model_tensor(m, i, &tn, &ttype, ne, &nd, &nb); i++) {
            if (nd < 2)
                continue;
            bits2 += 8.0 * (double)nb;
            elems2 += (double)ne[0] * (double)ne[1] * (double)(nd > 2 ? ne[2] : 1) *
                      (double)(nd > 3 ? ne[3] : 1);
        }
    }
    double bpw = elems2 > 0.0 ? bits2 / elems2 : 0.0;
    if (rm) {
        cai_model_get_info(rm, &rinfo);
        if (rinfo.n_vocab != info.n_vocab) {
            fprintf(stderr, "eval: the models' vocabularies differ (%d vs %d tokens)\n",
                    info.n_vocab, rinfo.n_vocab);
            goto out;
        }
    }
    int n_tok = eval_tokenize(m, text, n_text, &toks);
    if (n_tok < 0) {
        fprintf(stderr, "eval: cannot tokenize %s: %s\n", text_path, cai_strerror(n_tok));
        goto out;
    }
    if (rm) {
        int rn = eval_tokenize(rm, text, n_text, &rtoks);
        if (rn != n_tok || (rn > 0 && memcmp(toks, rtoks, (size_t)rn * sizeof(int32_t)) != 0)) {
            fprintf(stderr, "eval: the two models tokenize the text differently; KL divergence "
                            "needs the same tokens\n");
            goto out;
        }
    }
    /* BOS first when the model adds one. */
    int32_t probe[4];
    bool add_bos = info.bos >= 0 && cai_tokenize(m, "", 0, true, false, probe, 4) == 1 &&
                   probe[0] == info.bos;
    int body = n_ctx - (add_bos ? 1 : 0);
    int n_chunks = body > 0 ? n_tok / body : 0;
    if (max_chunks > 0 && n_chunks > max_chunks)
        n_chunks = max_chunks;
    if (n_chunks < 1) {
        fprintf(stderr, "eval: %s has %d tokens; one chunk needs %d (use a smaller -c)\n",
                text_path, n_tok, body);
        goto out;
    }
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = n_ctx;
    sp.n_batch = n_batch;
    sp.n_threads = n_threads;
    if ((rc = cai_session_new(&s, m, &sp, &err)) < 0 ||
        (rm && (rc = cai_session_new(&rs, rm, &sp, &err)) < 0)) {
        fprintf(stderr, "eval: %s\n", err.msg[0] ? err.msg : cai_strerror(rc));
        goto out;
    }
    int first = n_ctx / 2;
    int per_chunk = n_ctx - 1 - first;
    klds = malloc((size_t)n_chunks * (size_t)per_chunk * sizeof(double));
    int32_t *chunk = malloc((size_t)n_ctx * sizeof(int32_t));
    if (!klds || !chunk) {
        free(chunk);
        fprintf(stderr, "eval: out of memory\n");
        goto out;
    }
    double nll = 0.0, rnll = 0.0;
    long n_scored = 0, n_agree = 0;
    for (int c = 0; c < n_chunks; c++) {
        int o = 0;
        if (add_bos)
            chunk[o++] = info.bos;
        memcpy(chunk + o, toks + (size_t)c * (size_t)body, (size_t)body * sizeof(int32_t));
        cai_session_truncate(s, 0);
        if (rs)
            cai_session_truncate(rs, 0);
        for (int b0 = 0; b0 < n_ctx; b0 += n_batch) {
            int nb = n_ctx - b0 < n_batch ? n_ctx - b0 : n_batch;
            if ((rc = cai_session_decode(s, chunk + b0, nb, true)) < 0 ||
                (rs && (rc = cai_session_decode(rs, chunk + b0, nb, true)) < 0)) {
                fprintf(stderr, "eval: decode failed: %s (%s)\n", cai_strerror(rc),
                        cai_session_errmsg(s));
                free(chunk);
                goto out;
            }
            for (int i = 0; i < nb; i++) {
                int j = b0 + i;
                if (j < first || j >= n_ctx - 1)
                    continue;
                const float *lg = cai_session_logits(s, i);
                int am, ram;
                double lse = eval_lse(lg, info.n_vocab, &am);
                int32_t next = chunk[j + 1];
                nll += lse - (double)lg[next];
                if (rs) {
                    const float *rl = cai_session_logits(rs, i);
                    double rlse = eval_lse(rl, info.n_vocab, &ram);
                    rnll += rlse - (double)rl[next];
                    double kl = 0.0;
                    for (int v = 0; v < info.n_vocab; v++) {
                        double lp = (double)rl[v] - rlse;
                        double lq = (double)lg[v] - lse;
                        kl += exp(lp) * (lp - lq);
                    }
                    klds[n_scored] = kl > 0.0 ? kl : 0.0;
                    n_agree += am == ram;
                }
                n_scored++;
            }
        }
        if (!json)
            fprintf(stderr, "\reval: chunk %d/%d", c + 1, n_chunks);
    }
    free(chunk);
    if (!json)
        fprintf(stderr, "\n");
    double ppl = exp(nll / (double)n_scored);
    double kmean = 0.0, kmax = 0.0, kp99 = 0.0, kse = 0.0;
    if (rs) {
        for (long i = 0; i < n_scored; i++) {
            kmean += klds[i];
            kmax = klds[i] > kmax ? klds[i] : kmax;
        }
        kmean /= (double)n_scored;
        for (long i = 0; i < n_scored; i++)
            kse += (klds[i] - kmean) * (klds[i] - kmean);
        kse = n_scored > 1 ? sqrt(kse / (double)(n_scored - 1) / (double)n_scored) : 0.0;
        qsort(klds, (size_t)n_scored, sizeof(double), eval_cmp_double);
        kp99 = klds[(size_t)((double)(n_scored - 1) * 0.99)];
    }
    if (json) {
        printf("{\"model\": ");
        eval_json_str(model_path);
        printf(", \"text\": ");
        eval_json_str(text_path);
        printf(", \"bpw\": %.4f, \"n_ctx\": %d, \"n_chunks\": %d, \"n_tokens\": %ld, "
               "\"ppl\": %.6f", bpw, n_ctx, n_chunks, n_scored, ppl);
        if (rs) {
            printf(", \"ref_model\": ");
            eval_json_str(ref_path);
            printf(", \"ref_ppl\": %.6f, \"kld_mean\": %.6e, \"kld_mean_se\": %.3e, "
                   "\"kld_max\": %.6e, \"kld_p99\": %.6e, \"top1\": %.6f",
                   exp(rnll / (double)n_scored), kmean, kse, kmax, kp99,
                   (double)n_agree / (double)n_scored);
        }
        printf("}\n");
    } else {
        printf("model      %s (%.4f bits per weight)\n", model_path, bpw);
        printf("text       %s: %d tokens, %d chunks of %d, %ld scored\n", text_path, n_tok,
               n_chunks, n_ctx, n_scored);
        printf("ppl        %.4f\n", ppl);
        if (rs) {
            printf("reference  %s: ppl %.4f\n", ref_path, exp(rnll / (double)n_scored));
            printf("kld        mean %.6f +- %.6f, p99 %.6f, max %.6f\n", kmean, kse, kp99, kmax);
            printf("top1       %.2f %%\n", 100.0 * (double)n_agree / (double)n_scored);
        }
    }
    ret = 0;
out:
    cai_session_free(s);
    cai_session_free(rs);
    cai_model_close(m);
    cai_model_close(rm);
    free(toks);
    free(rtoks);
    free(klds);
    free(text);
    return ret;
}

#endif /* COREAI_EVAL_CMD_H */
