/* llama_ttft.c: time to first token of llama.cpp, measured the same way as
 * `coreai bench` measures ours. Our code, built by bench/build_llamacpp.sh
 * against the libllama it builds in the cache directory (never by `make`).
 *
 * One process = one measurement: t0 is taken before llama_backend_init; the
 * model is loaded, a context created, a prompt of N random token ids (BOS
 * first when the model adds one) decoded in one batch, and the argmax of the
 * last row of logits taken: that instant is the first token. Prints one JSON
 * object: load_ms (backend init + model load + context), prompt_ms, ttft_ms.
 *
 * usage: llama-ttft -m FILE [-p 128] [-t 1] [-lm mmap|none] [-v] */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)level;
    (void)text;
    (void)user;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: llama-ttft -m FILE [-p N_PROMPT=128] [-t N_THREADS=1] [-lm mmap|none] [-v]\n"
               "Loads FILE with llama.cpp, decodes N_PROMPT random tokens in one batch and takes\n"
               "the argmax; prints {\"load_ms\",\"prompt_ms\",\"ttft_ms\",...} as one JSON line.\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int n_prompt = 128, n_threads = 1;
    bool use_mmap = true, verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v")) {
            verbose = true;
        } else if (v && !strcmp(a, "-m")) {
            path = v, i++;
        } else if (v && !strcmp(a, "-p")) {
            n_prompt = atoi(v), i++;
        } else if (v && !strcmp(a, "-t")) {
            n_threads = atoi(v), i++;
        } else if (v && !strcmp(a, "-lm")) {
            if (!strcmp(v, "mmap")) {
                use_mmap = true;
            } else if (!strcmp(v, "none")) {
                use_mmap = false;
            } else {
                fprintf(stderr, "llama-ttft: -lm takes mmap or none\n");
                return 2;
            }
            i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path || n_prompt < 1 || n_threads < 1) {
        usage(stderr);
        return 2;
    }

    const double t0 = now_ms();
    if (!verbose)
        llama_log_set(quiet_log, NULL);
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.load_mode = use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) {
        fprintf(stderr, "llama-ttft: cannot load %s\n", path);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_prompt + 16;
    cp.n_batch = (uint32_t)n_prompt;
    cp.n_ubatch = n_prompt < 512 ? (uint32_t)n_prompt : 512;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama-ttft: cannot create a context for %s\n", path);
        llama_model_free(model);
        return 1;
    }
    const double t1 = now_ms();

    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token *toks = malloc(sizeof *toks * (size_t)n_prompt);
    if (!toks)
        return 1;
    srand(1);
    for (int i = 0; i < n_prompt; i++)
        toks[i] = rand() % n_vocab;
    if (llama_vocab_get_add_bos(vocab) && llama_vocab_bos(vocab) >= 0)
        toks[0] = llama_vocab_bos(vocab);
    if (llama_decode(ctx, llama_batch_get_one(toks, n_prompt)) != 0) {
        fprintf(stderr, "llama-ttft: decode failed\n");
        return 1;
    }
    const float *logits = llama_get_logits_ith(ctx, -1);
    int best = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    const double t2 = now_ms();

    printf("{\"engine\": \"llama.cpp\", \"model_filename\": \"%s\", \"n_threads\": %d, "
           "\"n_prompt\": %d, \"use_mmap\": %s, \"load_ms\": %.3f, \"prompt_ms\": %.3f, "
           "\"ttft_ms\": %.3f, \"first_token\": %d}\n",
           path, n_threads, n_prompt, use_mmap ? "true" : "false", t1 - t0, t2 - t1, t2 - t0,
           best);
    free(toks);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
