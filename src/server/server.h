/* server.h: `coreai serve`, an HTTP server speaking the OpenAI and Ollama
 * APIs for one model (docs/SERVER.md lists the endpoints and fields).
 *
 * Shape (STYLE.md §8.7, §8.12). One event-loop thread (the caller of
 * cai__server_run) owns every socket, parses HTTP, writes responses and
 * never runs the model. The model runs in a fixed number of slots, each a
 * session with its own KV cache. A slot's relay thread starts one
 * cai_job_* generation at a time, moves the pieces it yields into the slot's
 * outbox and rings an eventfd doorbell; the loop then takes them and streams
 * them out. Requests wait for a slot in a bounded FIFO queue; when it is full
 * they get 503 at once. A client that disconnects cancels its queued or
 * running generation. A slot is chosen by the longest match between the new
 * conversation and the last one it ran, so a continued conversation finds its
 * prefix already in that slot's KV cache.
 *
 * Threads. cai__server_stop may be called from any thread and from a signal
 * handler; every other function from one thread. The model must outlive the
 * server. The library never prints: access lines go to the optional log
 * callback, on the loop thread. Linux only (epoll, eventfd). */
#ifndef CAI_SERVER_SERVER_H
#define CAI_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coreai.h"
#include "http.h"

struct cai__server;

/* Receives one line of text (no newline), e.g. an access-log line. */
typedef void (*cai__server_log_fn)(void *user, const char *line);

struct cai__server_params {
    const char *host;        /* address to bind; default "127.0.0.1" */
    int         port;        /* default 8080; 0 picks a free port (see cai__server_port) */
    int         n_slots;     /* concurrent generations, each with its own session; default 1 */
    int         queue_max;   /* requests that may wait for a slot; default 16 */
    int         max_conns;   /* open connections; default 256 */
    struct cai_session_params session; /* per slot (n_ctx, n_threads, ...) */
    const char *model_path;  /* for the listings' name, size and date; may be NULL */
    const char *model_alias; /* the model's name in the APIs; NULL: the file name */
    struct cai__http_limits http;
    int         default_max_tokens; /* when a request sets none; <= 0: until EOG or a full context */
    int         idle_timeout_ms;    /* an idle keep-alive connection is closed; default 30000 */
    int         request_timeout_ms; /* to receive one whole request (408); default 30000 */
    int         write_timeout_ms;   /* a client that reads nothing for this long is dropped; 60000 */
    int         shutdown_grace_ms;  /* running generations may finish for this long; default 10000 */
    int         max_lifetime_ms;    /* > 0: shut down by itself after this long (tests) */
    size_t      max_pending_out;    /* bytes queued for a slow client before it is dropped; 16 MiB */
    cai__server_log_fn log;         /* may be NULL */
    void              *log_user;
};
struct cai__server_params cai__server_params_default(void);

/* Binds and listens, creates the slots' sessions and relay threads. The
 * server does not serve until cai__server_run. On failure returns a negative
 * code, sets *out to NULL and writes a reason into err (may be NULL). */
int cai__server_new(struct cai__server **out, struct cai_model *m,
                    const struct cai__server_params *p, struct cai_error *err);
/* The port actually bound (useful with port 0). */
int cai__server_port(const struct cai__server *s);
/* Serves until cai__server_stop (or max_lifetime_ms), then shuts down
 * gracefully: stops accepting, answers queued requests with 503, lets running
 * generations finish for shutdown_grace_ms and cancels the rest. Returns 0, or
 * a negative code if the event loop failed. Call at most once. */
int cai__server_run(struct cai__server *s);
/* Asks the loop to shut down. Async-signal-safe; idempotent. */
void cai__server_stop(struct cai__server *s);
/* Joins the relay threads and frees everything. Call after cai__server_run
 * returned, or instead of it. NULL is a no-op. */
void cai__server_free(struct cai__server *s);

#endif /* CAI_SERVER_SERVER_H */
