/* debug_cmd.h: `coreai debug`, the layer debugger: what the residual
 * stream looks like after the embedding and after every layer for a
 * prompt, and, against a reference model, where the two part.
 *
 * Included once into tools/coreai.c after eval_cmd.h (whose eval_lse,
 * eval_json_str, eval_tokenize and eval_parse_int it uses), which
 * dispatches "debug" to cmd_debug(). Uses only the public API.
 *
 * Per layer, over all prompt tokens:
 *   rms         sqrt(mean x^2)
 *   max_abs     the largest |x| and the channel it sits in (massive
 *               activations show up here)
 *   nonfinite   NaN and infinite values
 * and with --ref (same tokenizer, same width and depth):
 *   rel_err     ||x - x_ref|| / ||x_ref|| over all tokens
 *   cos_min     the lowest per-token cosine similarity
 *   max_diff    the largest |x - x_ref|
 * then the logits of every position: mean KL(P_ref || P) and top-1
 * agreement. */
#ifndef COREAI_DEBUG_CMD_H
#define COREAI_DEBUG_CMD_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreai.h"

static void debug_usage(FILE *f)
{
    fprintf(f,
            "usage: coreai debug MODEL -p PROMPT [--ref REF_MODEL] [-t N] [-o table|json]\n"
            "                    [--kv-f32]\n\n"
            "The layer debugger: runs PROMPT through MODEL and prints, for the residual\n"
            "stream after the embedding and after every layer, its RMS, its largest\n"
            "magnitude and that value's channel, and any NaN or infinite values. With\n"
            "--ref, the same prompt also runs through REF_MODEL (same tokenizer, width\n"
            "and depth, e.g. the unquantized model) and every layer shows how far MODEL\n"
            "has drifted: relative error, lowest per-token cosine similarity, largest\n"
            "difference; then the logits' mean KL divergence and top-1 agreement.\n\n"
            "  -p, --prompt TEXT    the prompt (BOS added as the model asks)\n"
            "  -f, --file FILE      read the prompt from FILE\n"
            "  --ref REF_MODEL      reference model to compare against\n"
            "  -t, --threads N      threads (default: all online CPUs)\n"
            "  -o, --output F       table (default) or json\n"
            "  --kv-f32             f32 KV cache and attention\n"
            "  -h, --help           this text\n");
}

/* The residual stream of every layer for every prompt token. */
struct debug_trace {
    int    n_layer, n_embd, n_tok;
    float *x;      /* [n_layer + 1][n_tok][n_embd]; slot 0 is the embedding */
    float *logits; /* [n_tok][n_vocab] */
    int    n_vocab;
    bool   bad;    /* the hook saw a shape it did not expect */
};

static void debug_hook(void *user, int layer, int pos0, int n_tok, int n_embd, const float *x)
{
    struct debug_trace *tr = user;
    if (layer < -1 || layer >= tr->n_layer || n_embd != tr->n_embd || pos0 < 0 ||
        n_tok > tr->n_tok - pos0) {
        tr->bad = true;
        return;
    }
    float *dst = tr->x + ((size_t)(layer + 1) * (size_t)tr->n_tok + (size_t)pos0) * (size_t)n_embd;
    memcpy(dst, x, (size_t)n_tok * (size_t)n_embd * sizeof(float));
}

/* Runs the tokens through model m (opened from path), filling tr. */
static int debug_run(struct cai_model *m, const char *path, const int32_t *toks, int n,
                     int n_threads, bool kv_f32, struct debug_trace *tr)
{
    struct cai_session *s = NULL;
    struct cai_error err = {0};
    int rc;
    struct cai_model_info info;
    cai_model_get_info(m, &info);
    struct cai_session_params sp = cai_session_params_default();
    sp.n_ctx = n + 8;
    sp.n_batch = n < 512 ? n : 512;
    sp.n_threads = n_threads;
    sp.kv_f32 = kv_f32;
    memset(tr, 0, sizeof(*tr));
    tr->n_layer = info.n_layer;
    tr->n_embd = info.n_embd;
    tr->n_tok = n;
    tr->n_vocab = info.n_vocab;
    tr->x = malloc((size_t)(info.n_layer + 1) * (size_t)n * (size_t)info.n_embd * sizeof(float));
    tr->logits = malloc((size_t)n * (size_t)info.n_vocab * sizeof(float));
    if (!tr->x || !tr->logits) {
        fprintf(stderr, "coreai debug: out of memory for the trace of %d tokens\n", n);
        rc = CAI_ENOMEM;
        goto out;
    }
    if ((rc = cai_session_new(&s, m, &sp, &err)) < 0) {
        fprintf(stderr, "coreai debug: %s\n", err.msg);
        goto out;
    }
    cai_session_set_layer_hook(s, debug_hook, tr);
    if ((rc = cai_session_decode(s, toks, n, true)) < 0) {
        fprintf(stderr, "coreai debug: %s: %s\n", path, cai_session_errmsg(s));
        goto out;
    }
    if (tr->bad) {
        fprintf(stderr, "coreai debug: %s: unexpected layer callback\n", path);
        rc = CAI_EINVAL;
        goto out;
    }
    for (int t = 0; t < n; t++)
        memcpy(tr->logits + (size_t)t * (size_t)info.n_vocab, cai_session_logits(s, t),
               (size_t)info.n_vocab * sizeof(float));
out:
    cai_session_free(s);
    return rc;
}

struct debug_row {
    double rms, max_abs, rel_err, cos_min, max_diff;
    int    max_ch;
    long   nonfinite;
};

static void debug_stats(const struct debug_trace *a, const struct debug_trace *ref, int slot,
                        struct debug_row *r)
{
    const size_t d = (size_t)a->n_embd;
    const float *x = a->x + (size_t)slot * (size_t)a->n_tok * d;
    const float *y = ref ? ref->x + (size_t)slot * (size_t)a->n_tok * d : NULL;
    double ss = 0.0, dd = 0.0, rr = 0.0;
    memset(r, 0, sizeof(*r));
    r->cos_min = 1.0;
    for (int t = 0; t < a->n_tok; t++) {
        double xy = 0.0, xx = 0.0, yy = 0.0;
        for (size_t c = 0; c < d; c++) {
            double v = (double)x[(size_t)t * d + c];
            if (!isfinite(v)) {
                r->nonfinite++;
                continue;
            }
            ss += v * v;
            if (fabs(v) > r->max_abs) {
                r->max_abs = fabs(v);
                r->max_ch = (int)c;
            }
            if (y) {
                double w = (double)y[(size_t)t * d + c], e = v - w;
                dd += e * e;
                rr += w * w;
                xy += v * w;
                xx += v * v;
                yy += w * w;
                r->max_diff = fmax(r->max_diff, fabs(e));
            }
        }
        if (y && xx > 0.0 && yy > 0.0)
            r->cos_min = fmin(r->cos_min, xy / sqrt(xx * yy));
    }
    r->rms = sqrt(ss / ((double)a->n_tok * (double)d));
    r->rel_err = rr > 0.0 ? sqrt(dd / rr) : (dd > 0.0 ? (double)INFINITY : 0.0);
}

static int cmd_debug(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL, *ref_path = NULL;
    const char *fmt = "table";
    int n_threads = 0;
    bool kv_f32 = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            debug_usage(stdout);
            return 0;
        }
        bool takes = !strcmp(a, "-p") || !strcmp(a, "--prompt") || !strcmp(a, "-f") ||
                     !strcmp(a, "--file") || !strcmp(a, "--ref") || !strcmp(a, "-t") ||
                     !strcmp(a, "--threads") || !strcmp(a, "-o") || !strcmp(a, "--output");
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "coreai debug: %s needs a value (see coreai debug --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            prompt = argv[++i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            prompt_file = argv[++i];
        } else if (!strcmp(a, "--ref")) {
            ref_path = argv[++i];
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!eval_parse_int(argv[++i], 1, 256, &n_threads)) {
                fprintf(stderr, "coreai debug: -t: \"%s\" is not in 1..256\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            fmt = argv[++i];
            if (strcmp(fmt, "table") && strcmp(fmt, "json")) {
                fprintf(stderr, "coreai debug: -o: expected table or json, got \"%s\"\n", fmt);
                return 2;
            }
        } else if (!strcmp(a, "--kv-f32")) {
            kv_f32 = true;
        } else if (a[0] != '-' && !model_path) {
            model_path = a;
        } else {
            fprintf(stderr, "coreai debug: unexpected argument \"%s\" (see coreai debug --help)\n",
                    a);
            return 2;
        }
    }
    if (!model_path || (!prompt) == (!prompt_file)) {
        fprintf(stderr, "coreai debug: MODEL and one of -p PROMPT or -f FILE are required (see "
                        "coreai debug --help)\n");
        return 2;
    }
    size_t n_text = 0;
    char *text = NULL;
    if (prompt_file) {
        text = eval_read_text(prompt_file, &n_text);
        if (!text) {
            fprintf(stderr, "coreai debug: cannot read %s\n", prompt_file);
            return 1;
        }
        prompt = text;
    } else {
        n_text = strlen(prompt);
    }

    int rc = 1;
    struct cai_model *m = NULL, *rm = NULL;
    struct debug_trace tr = {0}, rt = {0};
    int32_t *toks = NULL;
    struct cai_error err = {0};
    if (cai_model_open(&m, model_path, NULL, &err) < 0) {
        fprintf(stderr, "coreai debug: %s\n", err.msg);
        goto out;
    }
    int need = cai_tokenize(m, prompt, n_text, true, false, NULL, 0);
    toks = need > 0 ? malloc((size_t)need * sizeof(int32_t)) : NULL;
    int n = toks ? cai_tokenize(m, prompt, n_text, true, false, toks, need) : need;
    if (n <= 0) {
        fprintf(stderr, "coreai debug: the prompt gives no tokens\n");
        goto out;
    }
    if (n > 4096) {
        fprintf(stderr, "coreai debug: the prompt has %d tokens; at most 4096\n", n);
        goto out;
    }
    if (debug_run(m, model_path, toks, n, n_threads, kv_f32, &tr) < 0)
        goto out;
    if (ref_path) {
        if (cai_model_open(&rm, ref_path, NULL, &err) < 0) {
            fprintf(stderr, "coreai debug: %s\n", err.msg);
            goto out;
        }
        if (debug_run(rm, ref_path, toks, n, n_threads, kv_f32, &rt) < 0)
            goto out;
        if (rt.n_layer != tr.n_layer || rt.n_embd != tr.n_embd || rt.n_vocab != tr.n_vocab) {
            fprintf(stderr, "coreai debug: %s has %d layers x %d wide (vocabulary %d), %s %d x %d "
                            "(%d): not comparable\n", model_path, tr.n_layer, tr.n_embd,
                    tr.n_vocab, ref_path, rt.n_layer, rt.n_embd, rt.n_vocab);
            goto out;
        }
    }
    const struct debug_trace *ref = ref_path ? &rt : NULL;
    bool json = !strcmp(fmt, "json");
    if (json) {
        printf("{\"model\": ");
        eval_json_str(model_path);
        printf(", \"n_tokens\": %d, \"layers\": [", n);
    } else {
        printf("%d prompt tokens, %d layers x %d%s%s\n\n", n, tr.n_layer, tr.n_embd,
               ref ? ", against " : "", ref ? ref_path : "");
        printf("%-6s %12s %12s %7s %9s", "layer", "rms", "max|x|", "channel", "nonfinite");
        if (ref)
            printf(" %12s %10s %12s", "rel_err", "cos_min", "max_diff");
        printf("\n");
    }
    for (int slot = 0; slot <= tr.n_layer; slot++) {
        struct debug_row r;
        debug_stats(&tr, ref, slot, &r);
        if (json) {
            printf("%s{\"layer\": %d, \"rms\": %.6g, \"max_abs\": %.6g, \"max_channel\": %d, "
                   "\"nonfinite\": %ld", slot ? ", " : "", slot - 1, r.rms, r.max_abs, r.max_ch,
                   r.nonfinite);
            if (ref)
                printf(", \"rel_err\": %.6g, \"cos_min\": %.9g, \"max_diff\": %.6g", r.rel_err,
                       r.cos_min, r.max_diff);
            printf("}");
        } else {
            char name[16];
            if (slot == 0)
                snprintf(name, sizeof(name), "embed");
            else
                snprintf(name, sizeof(name), "%d", slot - 1);
            printf("%-6s %12.5g %12.5g %7d %9ld", name, r.rms, r.max_abs, r.max_ch, r.nonfinite);
            if (ref)
                printf(" %12.4e %10.6f %12.5g", r.rel_err, r.cos_min, r.max_diff);
            printf("\n");
        }
    }
    if (ref) {
        double kl_sum = 0.0, kl_max = 0.0;
        int agree = 0;
        for (int t = 0; t < n; t++) {
            const float *p = rt.logits + (size_t)t * (size_t)rt.n_vocab;
            const float *q = tr.logits + (size_t)t * (size_t)tr.n_vocab;
            int ap, aq;
            double lp = eval_lse(p, rt.n_vocab, &ap), lq = eval_lse(q, tr.n_vocab, &aq);
            double kl = 0.0;
            for (int v = 0; v < rt.n_vocab; v++) {
                double lpv = (double)p[v] - lp;
                kl += exp(lpv) * (lpv - ((double)q[v] - lq));
            }
            kl = fmax(kl, 0.0);
            kl_sum += kl;
            kl_max = fmax(kl_max, kl);
            agree += ap == aq;
        }
        if (json)
            printf("], \"logits\": {\"kld_mean\": %.6e, \"kld_max\": %.6e, \"top1\": %.6f}}\n",
                   kl_sum / n, kl_max, (double)agree / n);
        else
            printf("\nlogits over %d positions: mean KL %.4e, max KL %.4e, top-1 agreement "
                   "%.4f\n", n, kl_sum / n, kl_max, (double)agree / n);
    } else if (json) {
        printf("]}\n");
    }
    rc = 0;
out:
    cai_model_close(m);
    cai_model_close(rm);
    free(tr.x);
    free(tr.logits);
    free(rt.x);
    free(rt.logits);
    free(toks);
    free(text);
    return rc;
}

#endif /* COREAI_DEBUG_CMD_H */
