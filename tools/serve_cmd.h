/* serve_cmd.h: `coreai serve`, the OpenAI- and Ollama-compatible HTTP server
 * (src/server/server.h; endpoints and fields in docs/SERVER.md).
 *
 * Included once into tools/coreai.c, which dispatches "serve" to
 * cmd_serve(). Uses the public API in coreai.h and src/server/server.h;
 * every name it defines starts with serve_ (or is cmd_serve). SIGINT and
 * SIGTERM shut the server down gracefully: it stops accepting, answers
 * queued requests with 503 and lets running generations finish (up to
 * --grace seconds); a second signal during that time exits at once. */
#ifndef COREAI_SERVE_CMD_H
#define COREAI_SERVE_CMD_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coreai.h"
#include "server/server.h"

static struct cai__server *volatile serve_srv;
static volatile sig_atomic_t serve_signals;

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: coreai serve MODEL [--host 127.0.0.1] [--port 8080] [--slots 1] [-t THREADS]\n"
            "                    [-c CTX] [--queue 16] [options]\n\n"
            "Serves MODEL over HTTP with the OpenAI API (/v1/chat/completions,\n"
            "/v1/completions, /v1/models) and the Ollama API (/api/generate, /api/chat,\n"
            "/api/tags, /api/show, /api/ps, /api/version), streaming as server-sent events\n"
            "(OpenAI) or NDJSON (Ollama), plus /health, Prometheus /metrics and a chat page\n"
            "at /. See docs/SERVER.md.\n\n"
            "  --host ADDR          address to bind (default 127.0.0.1: this machine only)\n"
            "  --port N             TCP port (default 8080; 0 picks a free one)\n"
            "  --slots N            generations running at once, each with its own KV cache\n"
            "                       (default 1)\n"
            "  -t, --threads N      threads per slot (default: online CPUs / slots)\n"
            "  -c, --ctx N          context length per slot in tokens (default: min(training\n"
            "                       context, 4096))\n"
            "  --queue N            requests that may wait for a slot; more get 503\n"
            "                       (default 16)\n"
            "  -n, --max-tokens N   tokens per reply when a request sets no limit (default:\n"
            "                       until the end of generation or a full context)\n"
            "  --alias NAME         the model's name in the APIs (default: the file name)\n"
            "  --max-conns N        open connections (default 256)\n"
            "  --max-body BYTES     largest request body (default 8388608)\n"
            "  --grace SECONDS      on SIGINT/SIGTERM, let running generations finish for\n"
            "                       this long (default 10)\n"
            "  -q, --quiet          no access log on stderr\n"
            "  -h, --help           this text\n");
}

static void serve_on_signal(int sig)
{
    (void)sig;
    if (serve_signals++ > 0) {
        static const char msg[] = "coreai: second signal, exiting now\n";
        ssize_t r = write(2, msg, sizeof(msg) - 1);
        (void)r;
        _exit(130);
    }
    if (serve_srv)
        cai__server_stop(serve_srv);
}

static void serve_log(void *user, const char *line)
{
    (void)user;
    char ts[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
    fprintf(stderr, "%s %s\n", ts, line);
}

static int serve_parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "coreai serve: %s: expected an integer in [%ld, %ld], got \"%s\"\n", opt,
                lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    struct cai__server_params p = cai__server_params_default();
    const char *model_path = NULL;
    long threads = 0, v;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--host") && next) {
            p.host = argv[++i];
        } else if (!strcmp(a, "--port")) {
            if (serve_parse_long(a, next, 0, 65535, &v) < 0)
                return 2;
            p.port = (int)v, i++;
        } else if (!strcmp(a, "--slots")) {
            if (serve_parse_long(a, next, 1, 64, &v) < 0)
                return 2;
            p.n_slots = (int)v, i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (serve_parse_long(a, next, 1, 256, &threads) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (serve_parse_long(a, next, 16, 1 << 20, &v) < 0)
                return 2;
            p.session.n_ctx = (int)v, i++;
        } else if (!strcmp(a, "--queue")) {
            if (serve_parse_long(a, next, 0, 4096, &v) < 0)
                return 2;
            p.queue_max = (int)v, i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
            if (serve_parse_long(a, next, 1, 1 << 20, &v) < 0)
                return 2;
            p.default_max_tokens = (int)v, i++;
        } else if (!strcmp(a, "--alias") && next) {
            p.model_alias = argv[++i];
        } else if (!strcmp(a, "--max-conns")) {
            if (serve_parse_long(a, next, 1, 100000, &v) < 0)
                return 2;
            p.max_conns = (int)v, i++;
        } else if (!strcmp(a, "--max-body")) {
            if (serve_parse_long(a, next, 1024, 1L << 30, &v) < 0)
                return 2;
            p.http.max_body = (size_t)v, i++;
        } else if (!strcmp(a, "--grace")) {
            if (serve_parse_long(a, next, 0, 3600, &v) < 0)
                return 2;
            p.shutdown_grace_ms = (int)v * 1000, i++;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "coreai serve: unknown option or missing value: %s (see coreai serve "
                            "--help)\n", a);
            return 2;
        } else if (!model_path) {
            model_path = a;
        } else {
            fprintf(stderr, "coreai serve: unexpected argument \"%s\"\n", a);
            return 2;
        }
    }
    if (!model_path) {
        serve_usage(stderr);
        return 2;
    }
    if (!threads) {
        long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n_cpu > 0 ? n_cpu / p.n_slots : 1;
        if (threads < 1)
            threads = 1;
    }
    p.session.n_threads = (int)threads;
    p.model_path = model_path;
    if (!quiet)
        p.log = serve_log;

    struct cai_error err = {0};
    struct cai_model *m = NULL;
    struct cai_model_params mp = cai_model_params_default();
    if (cai_model_open(&m, model_path, &mp, &err) < 0) {
        fprintf(stderr, "coreai serve: %s\n", err.msg);
        return 1;
    }
    /* Only this thread takes SIGINT and SIGTERM: the server's threads (and
     * the engine's, which they start) inherit the blocked mask. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = serve_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    struct cai__server *srv = NULL;
    int rc = cai__server_new(&srv, m, &p, &err);
    serve_srv = srv;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        fprintf(stderr, "coreai serve: %s\n", err.msg);
        cai_model_close(m);
        return 1;
    }
    bool v6 = strchr(p.host, ':') != NULL;
    fprintf(stderr, "coreai serve: %s on http://%s%s%s:%d (%d slot%s, %ld thread%s each, queue %d)\n",
            model_path, v6 ? "[" : "", p.host, v6 ? "]" : "", cai__server_port(srv), p.n_slots,
            p.n_slots == 1 ? "" : "s", threads, threads == 1 ? "" : "s", p.queue_max);
    rc = cai__server_run(srv);
    serve_srv = NULL;
    cai__server_free(srv);
    cai_model_close(m);
    if (rc < 0) {
        fprintf(stderr, "coreai serve: the event loop failed: %s\n", cai_strerror(rc));
        return 1;
    }
    fprintf(stderr, "coreai serve: stopped\n");
    return 0;
}

#endif /* COREAI_SERVE_CMD_H */
