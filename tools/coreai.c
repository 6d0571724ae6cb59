/* coreai: the command-line front end of the generative engine.
 *
 *   coreai run MODEL -p PROMPT [options]   generate (streamed to stdout)
 *   coreai chat MODEL [options]            interactive multi-turn chat
 *   coreai tokenize MODEL [TEXT]           token ids
 *   coreai inspect MODEL                   architecture, metadata, tensors
 *
 * Uses only the public API in coreai.h. */
#include <errno.h>
#include <signal.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coreai.h"
#include "bench_cmd.h"
#include "eval_cmd.h"
#include "debug_cmd.h"
#include "serve_cmd.h"

static const char *prog = "coreai";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static long parse_long(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("%s: expected an integer in [%ld, %ld], got \"%s\"", opt, lo, hi, v);
    return x;
}

static unsigned long long parse_u64(const char *opt, const char *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        die("%s: expected a non-negative integer, got \"%s\"", opt, v);
    return x;
}

static float parse_float(const char *opt, const char *v, float lo, float hi)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die("%s: expected a number in [%g, %g], got \"%s\"", opt, (double)lo, (double)hi, v);
    return x;
}

static char *read_all(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        die("out of memory");
    for (;;) {
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                die("out of memory");
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    buf[n] = '\0';
    return buf;
}

static struct cai_model *open_model(const char *path)
{
    struct cai_model *m;
    struct cai_error err = {0};
    if (cai_model_open(&m, path, NULL, &err) < 0)
        die("%s", err.msg);
    return m;
}

/* ---- shared generation options ----------------------------------------- */

struct gen_opts {
    const char *model;
    const char *prompt;
    const char *system;
    int         n_predict;
    int         n_threads;
    int         n_ctx;
    bool        chat;
    bool        verbose;
    bool        kv_f32;
    bool        json;
    const char *stop[16];
    int         n_stop;
    struct cai_sampling sampling;
};

static const char gen_opts_help[] =
    "  -n, --n-predict N      tokens to generate (default 256; -1: until end of text)\n"
    "  -t, --threads N        threads (default: all CPUs)\n"
    "  -c, --ctx-size N       context length (default: min(model, 4096))\n"
    "      --temp T           temperature (default 0.8; 0 = greedy)\n"
    "      --top-k K          top-k (default 40; 0 = off)\n"
    "      --top-p P          top-p (default 0.95; 1 = off)\n"
    "      --min-p P          min-p (default 0.05; 0 = off)\n"
    "      --repeat-penalty R repetition penalty (default 1.0 = off)\n"
    "      --repeat-last-n N  tokens the penalties look back on (default 64)\n"
    "      --presence-penalty P, --frequency-penalty P (default 0)\n"
    "  -s, --seed S           RNG seed (default 0; same seed + settings = same text)\n"
    "      --stop TEXT        stop when TEXT is generated (repeatable, up to 16)\n"
    "      --json             JSON mode: the output is one JSON object (only tokens that\n"
    "                         keep it valid are sampled; stops when it closes)\n"
    "      --system TEXT      system message (chat mode)\n"
    "      --kv-f32           f32 KV cache and attention (exact; default f16 as llama.cpp)\n"
    "  -v, --verbose          more statistics on stderr\n";

/* Parses one generation option at argv[*i]; returns false if not one. */
static bool parse_gen_opt(struct gen_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
#define NEXT() (*i + 1 < argc ? argv[++*i] : (die("%s needs a value", a), (char *)NULL))
    if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
        o->n_predict = (int)parse_long(a, NEXT(), -1, INT_MAX);
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
        o->n_threads = (int)parse_long(a, NEXT(), 1, 256);
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
        o->n_ctx = (int)parse_long(a, NEXT(), 0, 1 << 22);
    else if (!strcmp(a, "--temp"))
        o->sampling.temp = parse_float(a, NEXT(), 0.0f, 100.0f);
    else if (!strcmp(a, "--top-k"))
        o->sampling.top_k = (int)parse_long(a, NEXT(), 0, INT_MAX);
    else if (!strcmp(a, "--top-p"))
        o->sampling.top_p = parse_float(a, NEXT(), 0.0f, 1.0f);
    else if (!strcmp(a, "--min-p"))
        o->sampling.min_p = parse_float(a, NEXT(), 0.0f, 1.0f);
    else if (!strcmp(a, "--repeat-penalty"))
        o->sampling.repeat_penalty = parse_float(a, NEXT(), 0.0f, 100.0f);
    else if (!strcmp(a, "--repeat-last-n"))
        o->sampling.penalty_last_n = (int)parse_long(a, NEXT(), 0, 1 << 20);
    else if (!strcmp(a, "--presence-penalty"))
        o->sampling.presence_penalty = parse_float(a, NEXT(), -100.0f, 100.0f);
    else if (!strcmp(a, "--frequency-penalty"))
        o->sampling.frequency_penalty = parse_float(a, NEXT(), -100.0f, 100.0f);
    else if (!strcmp(a, "-s") || !strcmp(a, "--seed"))
        o->sampling.seed = parse_u64(a, NEXT());
    else if (!strcmp(a, "--stop")) {
        if (o->n_stop >= 16)
            die("--stop: at most 16 stop strings");
        o->stop[o->n_stop++] = NEXT();
    } else if (!strcmp(a, "--system"))
        o->system = NEXT();
    else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
        o->verbose = true;
    else if (!strcmp(a, "--kv-f32"))
        o->kv_f32 = true;
    else if (!strcmp(a, "--json"))
        o->json = true;
    else
        return false;
#undef NEXT
    return true;
}

static struct cai_session *open_session(struct cai_model *m, const struct gen_opts *o)
{
    struct cai_session_params sp = cai_session_params_default();
    sp.n_threads = o->n_threads;
    sp.n_ctx = o->n_ctx;
    sp.kv_f32 = o->kv_f32;
    struct cai_session *s;
    struct cai_error err = {0};
    if (cai_session_new(&s, m, &sp, &err) < 0)
        die("%s: %s", o->model, err.msg);
    return s;
}

static int print_piece(void *user, const struct cai_piece *p)
{
    (void)user;
    fwrite(p->text, 1, p->n_bytes, stdout);
    fflush(stdout);
    return 0;
}

static struct cai_gen_params gen_params(const struct gen_opts *o)
{
    struct cai_gen_params gp = cai_gen_params_default();
    gp.max_tokens = o->n_predict;
    gp.json = o->json;
    gp.sampling = o->sampling;
    gp.stop = o->n_stop ? o->stop : NULL;
    gp.n_stop = o->n_stop;
    return gp;
}

static const char *stop_name(int r)
{
    switch (r) {
    case CAI_STOP_EOG: return "end of text";
    case CAI_STOP_MAX_TOKENS: return "max tokens";
    case CAI_STOP_STRING: return "stop string";
    case CAI_STOP_CALLBACK: return "cancelled";
    case CAI_STOP_CTX_FULL: return "context full";
    default: return "none";
    }
}

static void print_stats(double load_ms, const struct cai_gen_result *r)
{
    double tp = (double)r->t_prompt_ns / 1e9, tg = (double)r->t_gen_ns / 1e9;
    int n_eval = r->n_prompt - r->n_reused;
    fprintf(stderr, "\n\nload: %.1f ms\n", load_ms);
    fprintf(stderr, "prompt: %d tokens (%d reused) in %.1f ms, %.1f tokens/s\n", r->n_prompt,
            r->n_reused, tp * 1e3, tp > 0 ? n_eval / tp : 0.0);
    fprintf(stderr, "generation: %d tokens in %.1f ms, %.1f tokens/s (stop: %s)\n", r->n_gen,
            tg * 1e3, r->n_gen > 1 && tg > 0 ? (r->n_gen - 1) / tg : 0.0, stop_name(r->stop_reason));
    fprintf(stderr, "time to first token: %.1f ms\n", (double)r->t_first_ns / 1e6);
}

/* ---- run --------------------------------------------------------------- */

static void usage_run(FILE *f)
{
    fprintf(f, "usage: %s run MODEL -p PROMPT [options]\n\n"
               "Generates a continuation of PROMPT (or, with --chat, a reply to it as a user\n"
               "message, using the model's chat template) and streams it to stdout. Load time,\n"
               "prompt and generation speed go to stderr at the end.\n\n"
               "  -p, --prompt TEXT      the prompt (- or -f FILE: read it from stdin / a file)\n"
               "  -f, --file FILE        read the prompt from FILE\n"
               "      --chat             treat the prompt as a chat message\n%s",
            prog, gen_opts_help);
}

static int cmd_run(int argc, char **argv)
{
    struct gen_opts o = {.n_predict = 256, .sampling = cai_sampling_default()};
    char *owned = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_run(stdout);
            return 0;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (i + 1 >= argc)
                die("%s needs a value", a);
            o.prompt = argv[++i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc)
                die("%s needs a value", a);
            FILE *f = fopen(argv[++i], "rb");
            if (!f)
                die("%s: %s", argv[i], strerror(errno));
            owned = read_all(f);
            fclose(f);
            o.prompt = owned;
        } else if (!strcmp(a, "--chat")) {
            o.chat = true;
        } else if (parse_gen_opt(&o, argc, argv, &i)) {
        } else if (a[0] == '-' && a[1]) {
            die("run: unknown option %s (see %s run --help)", a, prog);
        } else if (!o.model) {
            o.model = a;
        } else {
            die("run: unexpected argument \"%s\"", a);
        }
    }
    if (!o.model) {
        usage_run(stderr);
        return 2;
    }
    if (!o.prompt)
        die("run: no prompt (use -p TEXT)");
    if (!strcmp(o.prompt, "-")) {
        owned = read_all(stdin);
        o.prompt = owned;
    }
    struct timespec a0, a1;
    clock_gettime(CLOCK_MONOTONIC, &a0);
    struct cai_model *m = open_model(o.model);
    struct cai_session *s = open_session(m, &o);
    clock_gettime(CLOCK_MONOTONIC, &a1);
    double load_ms = (double)(a1.tv_sec - a0.tv_sec) * 1e3 + (double)(a1.tv_nsec - a0.tv_nsec) / 1e6;
    struct cai_gen_params gp = gen_params(&o);
    struct cai_gen_result r;
    int rc;
    if (o.chat) {
        struct cai_chat_msg msgs[2];
        size_t n = 0;
        if (o.system)
            msgs[n++] = (struct cai_chat_msg){"system", o.system};
        msgs[n++] = (struct cai_chat_msg){"user", o.prompt};
        rc = cai_chat(s, msgs, n, &gp, print_piece, NULL, &r);
    } else {
        rc = cai_generate(s, o.prompt, &gp, print_piece, NULL, &r);
    }
    if (rc < 0)
        die("%s: %s (%s)", o.model, cai_session_errmsg(s), cai_strerror(rc));
    print_stats(load_ms, &r);
    cai_session_free(s);
    cai_model_close(m);
    free(owned);
    return 0;
}

/* ---- chat -------------------------------------------------------------- */

static void usage_chat(FILE *f)
{
    fprintf(f, "usage: %s chat MODEL [options]\n\n"
               "Interactive multi-turn chat. Type a message and press Enter; an empty line\n"
               "or end of input (Ctrl-D) quits; /reset starts a new conversation. Earlier\n"
               "turns are kept in the KV cache and not recomputed.\n\n%s",
            prog, gen_opts_help);
}

struct convo {
    struct cai_chat_msg *msgs;
    size_t               n, cap;
};

static void convo_add(struct convo *c, const char *role, const char *content)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->msgs = realloc(c->msgs, c->cap * sizeof(*c->msgs));
        if (!c->msgs)
            die("out of memory");
    }
    c->msgs[c->n].role = strdup(role);
    c->msgs[c->n].content = strdup(content);
    if (!c->msgs[c->n].role || !c->msgs[c->n].content)
        die("out of memory");
    c->n++;
}

static void convo_clear(struct convo *c, size_t keep)
{
    for (size_t i = keep; i < c->n; i++) {
        free((char *)c->msgs[i].role);
        free((char *)c->msgs[i].content);
    }
    c->n = keep;
}

struct reply_buf {
    char  *text;
    size_t n, cap;
};

static int print_and_keep(void *user, const struct cai_piece *p)
{
    struct reply_buf *b = user;
    fwrite(p->text, 1, p->n_bytes, stdout);
    fflush(stdout);
    if (b->n + p->n_bytes + 1 > b->cap) {
        b->cap = (b->n + p->n_bytes + 1) * 2;
        b->text = realloc(b->text, b->cap);
        if (!b->text)
            die("out of memory");
    }
    memcpy(b->text + b->n, p->text, p->n_bytes);
    b->n += p->n_bytes;
    b->text[b->n] = '\0';
    return 0;
}

static int cmd_chat(int argc, char **argv)
{
    struct gen_opts o = {.n_predict = 512, .sampling = cai_sampling_default()};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_chat(stdout);
            return 0;
        } else if (parse_gen_opt(&o, argc, argv, &i)) {
        } else if (a[0] == '-' && a[1]) {
            die("chat: unknown option %s (see %s chat --help)", a, prog);
        } else if (!o.model) {
            o.model = a;
        } else {
            die("chat: unexpected argument \"%s\"", a);
        }
    }
    if (!o.model) {
        usage_chat(stderr);
        return 2;
    }
    struct cai_model *m = open_model(o.model);
    struct cai_session *s = open_session(m, &o);
    struct cai_gen_params gp = gen_params(&o);
    struct convo c = {0};
    size_t base = 0;
    if (o.system) {
        convo_add(&c, "system", o.system);
        base = 1;
    }
    bool tty = isatty(0);
    char *line = NULL;
    size_t line_cap = 0;
    for (;;) {
        if (tty) {
            fputs("\n> ", stdout);
            fflush(stdout);
        }
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            break;
        if (!strcmp(line, "/reset")) {
            convo_clear(&c, base);
            cai_session_truncate(s, 0);
            continue;
        }
        convo_add(&c, "user", line);
        struct reply_buf rb = {0};
        struct cai_gen_result r;
        int rc = cai_chat(s, c.msgs, c.n, &gp, print_and_keep, &rb, &r);
        if (rc < 0)
            die("%s: %s (%s)", o.model, cai_session_errmsg(s), cai_strerror(rc));
        fputc('\n', stdout);
        if (o.verbose)
            fprintf(stderr, "[%d prompt tokens, %d reused, %d generated, %.1f tokens/s]\n",
                    r.n_prompt, r.n_reused, r.n_gen,
                    r.t_gen_ns > 0 ? (r.n_gen - 1) / ((double)r.t_gen_ns / 1e9) : 0.0);
        convo_add(&c, "assistant", rb.text ? rb.text : "");
        free(rb.text);
    }
    free(line);
    convo_clear(&c, 0);
    free(c.msgs);
    cai_session_free(s);
    cai_model_close(m);
    return 0;
}

/* ---- tokenize ---------------------------------------------------------- */

static void usage_tokenize(FILE *f)
{
    fprintf(f, "usage: %s tokenize MODEL [TEXT]\n\n"
               "Prints the token ids of TEXT (or of standard input when TEXT is absent),\n"
               "space-separated on one line. By default no BOS/EOS is added and text that\n"
               "spells a special token is tokenized as plain text.\n\n"
               "      --special          add BOS/EOS as the model asks and parse special tokens\n"
               "      --pieces           print id:'piece' pairs instead of bare ids\n",
            prog);
}

static void usage_embed(FILE *f)
{
    fprintf(f, "usage: %s embed MODEL [TEXT] [-t THREADS] [-c CTX]\n\n"
               "Prints the embedding of TEXT (or standard input) as one JSON object:\n"
               "{\"n_tokens\": N, \"embedding\": [...]}. The embedding is the model's final-norm\n"
               "hidden states averaged over the tokens and scaled to unit length (mean\n"
               "pooling, as llama.cpp's --pooling mean).\n\n"
               "  -t, --threads N        threads (default: all CPUs)\n"
               "  -c, --ctx-size N       context length (default: min(model, 4096))\n"
               "  -h, --help             this text\n",
            prog);
}

static int cmd_embed(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    struct cai_session_params sp = cai_session_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_embed(stdout);
            return 0;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc)
                die("embed: %s needs a value", a);
            sp.n_threads = (int)parse_long(a, argv[++i], 1, 256);
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (i + 1 >= argc)
                die("embed: %s needs a value", a);
            sp.n_ctx = (int)parse_long(a, argv[++i], 0, 1 << 22);
        } else if (a[0] == '-' && a[1]) {
            die("embed: unknown option %s (see %s embed --help)", a, prog);
        } else if (!model) {
            model = a;
        } else if (!text) {
            text = a;
        } else {
            die("embed: unexpected argument \"%s\"", a);
        }
    }
    if (!model) {
        usage_embed(stderr);
        return 2;
    }
    char *owned = NULL;
    if (!text)
        text = owned = read_all(stdin);
    struct cai_model *m = open_model(model);
    struct cai_model_info info;
    cai_model_get_info(m, &info);
    struct cai_session *s = NULL;
    struct cai_error err = {0};
    if (cai_session_new(&s, m, &sp, &err) < 0)
        die("%s", err.msg);
    float *v = malloc((size_t)info.n_embd * sizeof(float));
    if (!v)
        die("out of memory");
    int n_tok = 0;
    int n = cai_embed(s, text, strlen(text), v, info.n_embd, &n_tok);
    if (n < 0)
        die("%s: %s", model, cai_session_errmsg(s));
    printf("{\"n_tokens\": %d, \"embedding\": [", n_tok);
    for (int i = 0; i < n; i++)
        printf("%s%.9g", i ? ", " : "", (double)v[i]);
    printf("]}\n");
    free(v);
    free(owned);
    cai_session_free(s);
    cai_model_close(m);
    return 0;
}

static int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    bool special = false, pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_tokenize(stdout);
            return 0;
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else if (!strcmp(a, "--pieces")) {
            pieces = true;
        } else if (a[0] == '-' && a[1]) {
            die("tokenize: unknown option %s", a);
        } else if (!model) {
            model = a;
        } else if (!text) {
            text = a;
        } else {
            die("tokenize: unexpected argument \"%s\"", a);
        }
    }
    if (!model) {
        usage_tokenize(stderr);
        return 2;
    }
    char *owned = NULL;
    if (!text)
        text = owned = read_all(stdin);
    struct cai_model *m = open_model(model);
    size_t len = strlen(text);
    int cap = (int)(len + 16 > (size_t)INT_MAX ? INT_MAX : len + 16);
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    if (!ids)
        die("out of memory");
    int n = cai_tokenize(m, text, len, special, special, ids, cap);
    if (n > cap) {
        cap = n;
        ids = realloc(ids, (size_t)cap * sizeof(int32_t));
        if (!ids)
            die("out of memory");
        n = cai_tokenize(m, text, len, special, special, ids, cap);
    }
    if (n < 0)
        die("%s: tokenization failed: %s", model, cai_strerror(n));
    for (int i = 0; i < n; i++) {
        if (pieces) {
            char buf[256];
            int pl = cai_token_to_piece(m, ids[i], true, buf, sizeof(buf) - 1);
            buf[pl > 0 && pl < (int)sizeof(buf) ? pl : 0] = '\0';
            printf("%s%d:'%s'", i ? " " : "", ids[i], buf);
        } else {
            printf("%s%d", i ? " " : "", ids[i]);
        }
    }
    printf("\n");
    free(ids);
    free(owned);
    cai_model_close(m);
    return 0;
}

/* ---- inspect ----------------------------------------------------------- */

static void usage_inspect(FILE *f)
{
    fprintf(f, "usage: %s inspect MODEL [--no-tensors] [--no-meta]\n\n"
               "Prints the architecture, hyperparameters, tokenizer, metadata and the tensor\n"
               "directory (name, type, shape, bytes).\n",
            prog);
}

static int cmd_inspect(int argc, char **argv)
{
    const char *model = NULL;
    bool tensors = true, meta = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_inspect(stdout);
            return 0;
        } else if (!strcmp(a, "--no-tensors")) {
            tensors = false;
        } else if (!strcmp(a, "--no-meta")) {
            meta = false;
        } else if (a[0] == '-' && a[1]) {
            die("inspect: unknown option %s", a);
        } else if (!model) {
            model = a;
        } else {
            die("inspect: unexpected argument \"%s\"", a);
        }
    }
    if (!model) {
        usage_inspect(stderr);
        return 2;
    }
    struct cai_model *m = open_model(model);
    struct cai_model_info in;
    cai_model_get_info(m, &in);
    printf("model:        %s\n", model);
    printf("name:         %s\n", in.name);
    printf("architecture: %s\n", in.arch);
    printf("parameters:   %.1f M (%.1f MiB of weights, %.2f bits/weight)\n",
           (double)in.n_params / 1e6, (double)in.n_bytes / (1024.0 * 1024.0),
           in.n_params ? 8.0 * (double)in.n_bytes / (double)in.n_params : 0.0);
    printf("layers %d, embedding %d, feed-forward %d, heads %d (kv %d), head dim %d\n", in.n_layer,
           in.n_embd, in.n_ff, in.n_head, in.n_head_kv, in.head_dim);
    printf("context (trained) %d, rope base %g, rope scale %g, rms eps %g\n", in.n_ctx_train,
           (double)in.rope_base, (double)in.rope_scale, (double)in.rms_eps);
    printf("tokenizer:    %s, %d tokens, bos %d, eos %d, chat template: %s\n", in.tokenizer,
           in.n_vocab, in.bos, in.eos, in.has_chat_template ? "yes" : "no");
    if (meta) {
        printf("\nmetadata:\n");
        const char *key;
        char val[160];
        for (int i = 0; cai_model_meta(m, i, &key, val, sizeof(val)); i++)
            printf("  %-44s %s\n", key, val);
    }
    if (tensors) {
        printf("\ntensors:\n");
        const char *name, *tn;
        int64_t ne[4];
        int nd;
        uint64_t nb;
        for (int i = 0; cai_model_tensor(m, i, &name, &tn, ne, &nd, &nb); i++) {
            char shape[96];
            int o = snprintf(shape, sizeof(shape), "[%lld", (long long)ne[0]);
            for (int d = 1; d < nd; d++)
                o += snprintf(shape + o, sizeof(shape) - (size_t)o, ", %lld", (long long)ne[d]);
            snprintf(shape + o, sizeof(shape) - (size_t)o, "]");
            printf("  %-36s %-6s %-20s %10llu bytes\n", name, tn, shape, (unsigned long long)nb);
        }
    }
    cai_model_close(m);
    return 0;
}


/* ---- profile ----------------------------------------------------------- */

static void usage_profile(FILE *f)
{
    fprintf(f, "usage: %s profile MODEL [-p N] [-n N] [-t THREADS] [--greedy] [-o table|json]\n"
               "                      [--per-layer]\n\n"
               "Runs a prefill of N prompt tokens (default 128, random ids) and N generated\n"
               "tokens (default 32; the default sampling chain, or argmax with --greedy) with\n"
               "per-operation timing, then prints, per operation (summed over layers), the\n"
               "time, bytes moved, arithmetic, and achieved GB/s and GOP/s; then each tensor's\n"
               "share of the fused Q/K/V and gate/up matmuls (their time split by the threads'\n"
               "time in each tensor's rows); with --per-layer, time per layer. Sampling is the\n"
               "\"sample\" row. Prefill and generation are profiled separately.\n",
            prog);
}

struct prof_agg {
    const char *op, *part_of;
    double      ms;
    uint64_t    bytes, flops, calls;
};

/* Sums the rows per op: main ops (part_of NULL) first in agg, then the
 * tensor shares; returns the count, *n_main the main ones. */
static int prof_aggregate(const struct cai_profile_entry *e, int n, struct prof_agg *agg, int cap,
                          int *n_main)
{
    int n_agg = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if ((e[i].part_of != NULL) != (pass == 1))
                continue;
            int j = 0;
            while (j < n_agg && strcmp(agg[j].op, e[i].op) != 0)
                j++;
            if (j == n_agg) {
                if (n_agg == cap)
                    continue;
                agg[n_agg++] = (struct prof_agg){e[i].op, e[i].part_of, 0, 0, 0, 0};
            }
            agg[j].ms += e[i].ms;
            agg[j].bytes += e[i].bytes;
            agg[j].flops += e[i].flops;
            agg[j].calls += e[i].calls;
        }
        if (pass == 0)
            *n_main = n_agg;
    }
    return n_agg;
}

static double rate(uint64_t amount, double ms)
{
    return ms > 0 ? (double)amount / (ms * 1e6) : 0.0;
}

static void print_profile(struct cai_session *s, const char *phase, int n_tok, bool json,
                          bool per_layer, bool *first_json)
{
    int n = cai_session_profile_read(s, NULL, 0);
    struct cai_profile_entry *e = calloc((size_t)n + 1, sizeof(*e));
    if (!e)
        die("out of memory");
    cai_session_profile_read(s, e, n);
    struct prof_agg agg[48];
    int n_main = 0;
    const int n_agg = prof_aggregate(e, n, agg, 48, &n_main);
    double total = 0;
    int max_layer = -1;
    for (int i = 0; i < n; i++) {
        if (!e[i].part_of)
            total += e[i].ms;
        if (e[i].layer > max_layer)
            max_layer = e[i].layer;
    }
    if (json) {
        printf("%s{\"phase\": \"%s\", \"n_tokens\": %d, \"total_ms\": %.3f, \"ops\": [",
               *first_json ? "" : ",\n", phase, n_tok, total);
        *first_json = false;
        for (int j = 0; j < n_agg; j++) {
            if (j == n_main)
                printf("], \"tensors\": [");
            printf("%s{\"op\": \"%s\", ", j && j != n_main ? ", " : "", agg[j].op);
            if (agg[j].part_of)
                printf("\"part_of\": \"%s\", ", agg[j].part_of);
            printf("\"ms\": %.4f, \"bytes\": %llu, \"flops\": %llu, \"calls\": %llu, "
                   "\"gbps\": %.3f, \"gops\": %.3f}",
                   agg[j].ms, (unsigned long long)agg[j].bytes, (unsigned long long)agg[j].flops,
                   (unsigned long long)agg[j].calls, rate(agg[j].bytes, agg[j].ms),
                   rate(agg[j].flops, agg[j].ms));
        }
        if (n_main == n_agg)
            printf("], \"tensors\": [");
        printf("], \"layers\": [");
        for (int i = 0; i < n; i++) {
            printf("%s{\"layer\": %d, \"op\": \"%s\", ", i ? ", " : "", e[i].layer, e[i].op);
            if (e[i].part_of)
                printf("\"part_of\": \"%s\", ", e[i].part_of);
            printf("\"ms\": %.4f, \"bytes\": %llu, \"flops\": %llu}", e[i].ms,
                   (unsigned long long)e[i].bytes, (unsigned long long)e[i].flops);
        }
        printf("]}");
    } else {
        printf("\n%s: %d tokens, %.2f ms profiled (%.1f tokens/s)\n", phase, n_tok, total,
               total > 0 ? n_tok / (total / 1e3) : 0.0);
        printf("  %-18s %10s %6s %10s %12s %9s %9s\n", "op", "ms", "%", "calls", "MB moved",
               "GB/s", "GOP/s");
        for (int j = 0; j < n_main; j++)
            printf("  %-18s %10.3f %6.1f %10llu %12.2f %9.2f %9.2f\n", agg[j].op, agg[j].ms,
                   total > 0 ? 100.0 * agg[j].ms / total : 0.0, (unsigned long long)agg[j].calls,
                   (double)agg[j].bytes / 1e6, rate(agg[j].bytes, agg[j].ms),
                   rate(agg[j].flops, agg[j].ms));
        if (n_agg > n_main) {
            printf("  matmul by tensor (share of the fused op, split by thread time):\n");
            printf("  %-10s %-16s %10s %6s %12s %9s %9s\n", "tensor", "of", "ms", "%", "MB moved",
                   "GB/s", "GOP/s");
            for (int j = n_main; j < n_agg; j++)
                printf("  %-10s %-16s %10.3f %6.1f %12.2f %9.2f %9.2f\n", agg[j].op,
                       agg[j].part_of, agg[j].ms, total > 0 ? 100.0 * agg[j].ms / total : 0.0,
                       (double)agg[j].bytes / 1e6, rate(agg[j].bytes, agg[j].ms),
                       rate(agg[j].flops, agg[j].ms));
        }
        if (per_layer) {
            printf("  per layer:\n  %-6s %10s %12s\n", "layer", "ms", "MB moved");
            for (int l = -1; l <= max_layer; l++) {
                double ms = 0;
                uint64_t b = 0;
                for (int i = 0; i < n; i++)
                    if (e[i].layer == l && !e[i].part_of) {
                        ms += e[i].ms;
                        b += e[i].bytes;
                    }
                if (l == -1)
                    printf("  %-6s %10.3f %12.2f\n", "other", ms, (double)b / 1e6);
                else
                    printf("  %-6d %10.3f %12.2f\n", l, ms, (double)b / 1e6);
            }
        }
    }
    free(e);
}

static int cmd_profile(int argc, char **argv)
{
    const char *model = NULL;
    int n_prompt = 128, n_gen = 32, n_threads = 0;
    bool json = false, per_layer = false, greedy = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXTV() (i + 1 < argc ? argv[++i] : (die("%s needs a value", a), (char *)NULL))
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_profile(stdout);
            return 0;
        } else if (!strcmp(a, "-p")) {
            n_prompt = (int)parse_long(a, NEXTV(), 1, 1 << 16);
        } else if (!strcmp(a, "-n")) {
            n_gen = (int)parse_long(a, NEXTV(), 0, 1 << 16);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            n_threads = (int)parse_long(a, NEXTV(), 1, 256);
        } else if (!strcmp(a, "-o")) {
            const char *v = NEXTV();
            if (!strcmp(v, "json"))
                json = true;
            else if (strcmp(v, "table") != 0)
                die("-o: expected table or json, got \"%s\"", v);
        } else if (!strcmp(a, "--per-layer")) {
            per_layer = true;
        } else if (!strcmp(a, "--greedy")) {
            greedy = true;
        } else if (a[0] == '-' && a[1]) {
            die("profile: unknown option %s", a);
        } else if (!model) {
            model = a;
        } else {
            die("profile: unexpected argument \"%s\"", a);
        }
#undef NEXTV
    }
    if (!model) {
        usage_profile(stderr);
        return 2;
    }
    struct cai_model *m = open_model(model);
    struct cai_model_info in;
    cai_model_get_info(m, &in);
    struct cai_session_params sp = cai_session_params_default();
    sp.n_threads = n_threads;
    sp.n_ctx = n_prompt + n_gen + 1;
    sp.n_batch = n_prompt;
    struct cai_session *s;
    struct cai_error err = {0};
    if (cai_session_new(&s, m, &sp, &err) < 0)
        die("%s: %s", model, err.msg);
    struct cai_sampling sc = cai_sampling_default();
    if (greedy)
        sc.temp = 0;
    struct cai_sampler *smp;
    if (cai_sampler_new(&smp, m, &sc, &err) < 0)
        die("%s: %s", model, err.msg);
    cai_model_wait_packed(m); /* profile the steady state */
    int32_t *toks = malloc((size_t)n_prompt * sizeof(int32_t));
    if (!toks)
        die("out of memory");
    uint32_t r = 1;
    for (int i = 0; i < n_prompt; i++) {
        r = r * 1664525u + 1013904223u;
        toks[i] = (int32_t)((r >> 8) % (uint32_t)in.n_vocab);
    }
    /* Warm-up pass so page faults and first-touch costs stay out of the profile. */
    if (cai_session_decode(s, toks, n_prompt < 8 ? n_prompt : 8, false) < 0)
        die("%s: %s", model, cai_session_errmsg(s));
    cai_session_truncate(s, 0);
    bool first_json = true;
    if (json)
        printf("[");
    cai_session_profile_enable(s, true);
    if (cai_session_decode(s, toks, n_prompt, false) < 0)
        die("%s: %s", model, cai_session_errmsg(s));
    print_profile(s, "prefill", n_prompt, json, per_layer, &first_json);
    if (n_gen > 0) {
        for (int i = 0; i < n_prompt; i++)
            cai_sampler_accept(smp, toks[i]);
        cai_session_profile_enable(s, true);
        for (int i = 0; i < n_gen; i++) {
            int32_t next = cai_session_sample(s, smp);
            if (next < 0 || cai_session_decode(s, &next, 1, false) < 0)
                die("%s: %s", model, cai_session_errmsg(s));
        }
        print_profile(s, "generation", n_gen, json, per_layer, &first_json);
    }
    if (json)
        printf("]\n");
    free(toks);
    cai_sampler_free(smp);
    cai_session_free(s);
    cai_model_close(m);
    return 0;
}


/* ---- convert / verify -------------------------------------------------- */

static bool progress_tty;

static void progress_bar(void *user, uint64_t done, uint64_t total)
{
    (void)user;
    if (!progress_tty || total == 0)
        return;
    int width = 40, filled = (int)((double)done / (double)total * width);
    fprintf(stderr, "\r[");
    for (int i = 0; i < width; i++)
        fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %5.1f%% %8.1f MB", 100.0 * (double)done / (double)total,
            (double)done / 1e6);
    if (done >= total)
        fputc('\n', stderr);
}

static int cmd_convert(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: %s convert IN.gguf OUT.coreaimodel\n\n"
               "Imports a GGUF model losslessly into the .coreaimodel format (docs/FORMAT.md):\n"
               "same tensors and metadata, page-aligned for mmap, a checksum per tensor. The\n"
               "output appears only when complete. For PyTorch / safetensors models use\n"
               "coreai-torch convert.\n",
               prog);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s convert IN.gguf OUT.coreaimodel\n", prog);
        return 2;
    }
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit becomes a clear error */
    progress_tty = isatty(2);
    struct cai_error err = {0};
    if (cai_convert_gguf(argv[1], argv[2], progress_bar, NULL, &err) < 0)
        die("%s", err.msg);
    fprintf(stderr, "wrote %s\n", argv[2]);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: %s verify FILE.coreaimodel\n\n"
               "Checks the metadata checksum and every tensor's checksum; exits non-zero and\n"
               "names the first bad tensor when any fails.\n",
               prog);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s verify FILE.coreaimodel\n", prog);
        return 2;
    }
    struct cai_error err = {0};
    uint64_t n = 0, bad = 0;
    if (cai_verify(argv[1], &n, &bad, &err) < 0)
        die("%s (%llu of %llu tensors bad)", err.msg, (unsigned long long)bad,
            (unsigned long long)n);
    printf("%s: OK, %llu tensors\n", argv[1], (unsigned long long)n);
    return 0;
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: %s COMMAND [options]\n\n"
               "commands:\n"
               "  run MODEL -p PROMPT   generate text (streamed)\n"
               "  chat MODEL            interactive chat\n"
               "  tokenize MODEL [TEXT] print token ids\n"
               "  embed MODEL [TEXT]    the text's embedding (mean-pooled hidden states)\n"
               "  inspect MODEL         architecture, metadata and tensors\n"
               "  serve MODEL           HTTP server: OpenAI and Ollama APIs, chat page at /\n"
               "  bench MODEL           prompt and generation speed (llama-bench terms)\n"
               "  eval MODEL --text F   perplexity; KL divergence and top-1 against a reference\n"
               "  profile MODEL         time, bytes and GB/s per layer and operation\n"
               "  debug MODEL -p TEXT   the layer debugger: each layer's activations, and\n"
               "                        where they part from a reference model (--ref)\n"
               "  convert IN.gguf OUT   import a GGUF file into .coreaimodel\n"
               "  verify FILE           check every checksum of a .coreaimodel\n\n"
               "Run '%s COMMAND --help' for a command's options. MODEL is a GGUF or\n"
               ".coreaimodel file.\n"
               "Environment: COREAI_ISA=ref|avx2|avx512 forces a kernel set.\n",
            prog, prog);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("coreai %d.%d.%d\n", CAI_VERSION_MAJOR, CAI_VERSION_MINOR, CAI_VERSION_PATCH);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat"))
        return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize"))
        return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect"))
        return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "embed"))
        return cmd_embed(argc - 1, argv + 1);
    if (!strcmp(cmd, "debug"))
        return cmd_debug(argc - 1, argv + 1);
    if (!strcmp(cmd, "profile"))
        return cmd_profile(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command \"%s\"\n", prog, cmd);
    usage(stderr);
    return 2;
}
