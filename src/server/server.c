/* server.c: the event loop, connections, the request queue and the slots
 * (see server.h for the shape).
 *
 * Ownership. Everything reachable from struct cai__server is touched only by
 * the loop thread, except each slot's `sh` block, which the slot's relay
 * thread and the loop share under the slot's mutex. A task (one generation
 * request) belongs to the loop; while it runs, its relay thread reads its
 * request fields, which the loop does not change, and the loop frees it only
 * after the relay reported it done. A connection closed while its task runs
 * only detaches (task->conn = NULL) and cancels. Closed connections are freed
 * after the current batch of epoll events, so a later event in the batch
 * never sees freed memory. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/json.h"
#include "api.h"
#include "json_out.h"

#define MAX_SLOTS        64
#define MAX_QUEUE        4096
#define MAX_EVENTS       64
#define READ_CHUNK       16384
#define OUT_HIGH_WATER   ((size_t)1 << 20) /* stop parsing pipelined requests above this */
#define MAX_REPLY_BYTES  ((size_t)64 << 20)
#define LINGER_MS        2000
#define TICK_MS          250
#define N_STATUS_COUNTED 16

enum conn_state {
    C_READING, /* waiting for (or parsing) a request */
    C_BUSY,    /* its generation is queued or running */
    C_CLOSING, /* send what is left, then close */
    C_LINGER,  /* write side shut; discarding input until EOF or a deadline */
};

struct task;

struct conn {
    int                     fd;
    int                     state; /* enum conn_state */
    struct conn            *prev, *next;
    struct cai__buf         in;  /* received, not yet consumed */
    struct cai__buf         out; /* to send, from out_pos on */
    size_t                  out_pos;
    struct cai__http_parser parser;
    bool                    sent_continue;
    bool                    peer_closed; /* the client shut down its side (EOF or RDHUP) */
    uint32_t                events;      /* registered epoll mask */
    int64_t                 t_active;   /* last read or write progress */
    int64_t                 t_req;      /* first byte of the request being received */
    int64_t                 t_linger;   /* C_LINGER deadline */
    struct task            *task;
    /* The request being answered. */
    struct {
        bool    head_only;  /* HEAD: headers without the body */
        bool    keep_alive;
        bool    ollama;     /* error bodies in Ollama's shape */
        int     version;    /* 10 or 11 */
        int64_t t0;
        char    method[12];
        char    path[96];
    } cur;
};

struct task {
    struct conn            *conn; /* NULL once the client went away */
    struct cai__api_request req;
    struct cai__api_reply   reply;
    bool                    stream, chunked, head_sent;
    int                     slot; /* -1 while queued */
    int64_t                 t0;
    char                    id[48];
    char                   *model_echo;
    struct cai__buf         text; /* the reply so far */
    struct cai__buf         key;  /* the conversation, for slot affinity */
    float                  *emb;  /* embedding requests: [n_inputs][emb_dim], by the relay */
    int                     emb_dim;
};

struct slot {
    struct cai__server *srv;
    int                 idx;
    struct cai_session *sess;
    pthread_t           thread;
    bool                started;
    pthread_mutex_t     mu;
    pthread_cond_t      cv;
    struct {            /* shared with the relay thread, under mu */
        struct task    *task_in; /* handed over, not yet taken */
        bool            quit;
        bool            cancel;
        struct cai_job *job;
        struct cai__buf out; /* pieces not yet taken by the loop */
        bool            done;
        int             status;
        struct cai_gen_result res;
        char            errmsg[256];
    } sh;
    /* Loop only. */
    struct task    *task;
    struct cai__buf key; /* the conversation its KV cache holds */
    int64_t         last_used;
};

struct metrics {
    uint64_t requests, rejected, generations, cancelled, failed;
    uint64_t prompt_tokens, reused_tokens, gen_tokens, connections;
    double   prompt_s, gen_s, last_tps;
    int      status_code[N_STATUS_COUNTED];
    uint64_t status_count[N_STATUS_COUNTED];
};

struct cai__server {
    struct cai__server_params p;
    struct cai_model         *model;
    struct cai__api_model     info;
    char                      host[64];
    char                      alias[128];
    char                      path[1024];
    int                       listen_fd, epfd, efd;
    int                       port;
    bool                      loopback;
    atomic_int                stop_requested;
    bool                      ran;
    bool                      stopping, cancelled_all;
    int64_t                   t_start, t_deadline, t_accept_resume;
    bool                      accept_paused;
    struct slot               slots[MAX_SLOTS];
    int                       n_slots;
    struct task             **queue; /* [queue_max] FIFO */
    int                       n_queued;
    struct conn              *conns, *graveyard;
    int                       n_conns;
    uint64_t                  next_id, id_base;
    struct cai__buf           tmp; /* response bodies, built one at a time */
    struct metrics            m;
    char                      tag_listen, tag_bell; /* epoll data for the two non-connection fds */
};

static void log_line(struct cai__server *s, const char *fmt, ...) CAI__PRINTF(2, 3);
static void log_line(struct cai__server *s, const char *fmt, ...)
{
    if (!s->p.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->p.log(s->p.log_user, line);
}

struct cai__server_params cai__server_params_default(void)
{
    struct cai__server_params p;
    memset(&p, 0, sizeof(p));
    p.host = "127.0.0.1";
    p.port = 8080;
    p.n_slots = 1;
    p.queue_max = 16;
    p.max_conns = 256;
    p.session = cai_session_params_default();
    p.http = cai__http_limits_default();
    p.default_max_tokens = 0;
    p.idle_timeout_ms = 30000;
    p.request_timeout_ms = 30000;
    p.write_timeout_ms = 60000;
    p.shutdown_grace_ms = 10000;
    p.max_pending_out = (size_t)16 << 20;
    return p;
}

static void ring(struct cai__server *s)
{
    uint64_t one = 1;
    ssize_t r = write(s->efd, &one, sizeof(one));
    (void)r; /* EAGAIN: the counter is saturated, so the loop is woken anyway */
}

/* ---- slots: the relay threads ------------------------------------------ */

/* Runs one generation for task t on the slot's session: starts the job,
 * moves its pieces to the outbox, and reports the end. Never touches the
 * model directly; cai_job_* does the work on its own thread. */
/* An embedding request: each input in turn on the slot's session. Written
 * into t->emb, which the loop reads only after the end report. */
static int relay_embed(struct slot *sl, struct task *t, struct cai_gen_result *res, char *errmsg,
                       size_t cap)
{
    struct cai_model_info info;
    cai_model_get_info(sl->srv->model, &info);
    t->emb_dim = info.n_embd;
    t->emb = cai__malloc_array((size_t)t->req.n_inputs * (size_t)info.n_embd, sizeof(float));
    if (!t->emb) {
        snprintf(errmsg, cap, "out of memory for %d embeddings", t->req.n_inputs);
        return CAI_ENOMEM;
    }
    int64_t t0 = cai__now_ns();
    for (int i = 0; i < t->req.n_inputs; i++) {
        pthread_mutex_lock(&sl->mu);
        bool cancelled = sl->sh.cancel;
        pthread_mutex_unlock(&sl->mu);
        if (cancelled)
            return CAI_ECANCELLED;
        int n_tok = 0;
        const char *in = t->req.inputs[i];
        int rc = cai_embed(sl->sess, in, strlen(in), t->emb + (size_t)i * (size_t)info.n_embd,
                           info.n_embd, &n_tok);
        if (rc < 0) {
            snprintf(errmsg, cap, "input %d: %s", i, cai_session_errmsg(sl->sess));
            return rc;
        }
        res->n_prompt += n_tok;
    }
    res->t_prompt_ns = cai__now_ns() - t0;
    return 0;
}

static void relay_one(struct slot *sl, struct task *t)
{
    struct cai__server *s = sl->srv;
    struct cai_gen_result res;
    memset(&res, 0, sizeof(res));
    char errmsg[256] = "";
    int status;
    pthread_mutex_lock(&sl->mu);
    bool cancelled = sl->sh.cancel;
    pthread_mutex_unlock(&sl->mu);
    struct cai_job *job = NULL;
    if (cancelled) {
        status = CAI_ECANCELLED;
        res.stop_reason = CAI_STOP_CALLBACK;
    } else if (cai__api_is_embed(t->req.kind)) {
        status = relay_embed(sl, t, &res, errmsg, sizeof(errmsg));
    } else {
        status = cai_job_start(&job, sl->sess, t->req.prompt, t->req.prompt ? NULL : t->req.msgs,
                               t->req.n_msgs, &t->req.gp);
        if (status < 0)
            snprintf(errmsg, sizeof(errmsg), "cannot start the generation: %s",
                     cai_strerror(status));
    }
    if (job) {
        pthread_mutex_lock(&sl->mu);
        sl->sh.job = job;
        if (sl->sh.cancel) /* cancelled while starting (cai_job_start clears the flag) */
            cai_job_cancel(job);
        pthread_mutex_unlock(&sl->mu);
        struct cai_piece piece;
        int rc;
        bool too_big = false;
        while ((rc = cai_job_next(job, &piece, -1)) == 1) {
            pthread_mutex_lock(&sl->mu);
            if (!too_big && !cai__buf_put(&sl->sh.out, piece.text, piece.n_bytes)) {
                too_big = true;
                cai_job_cancel(job);
            }
            pthread_mutex_unlock(&sl->mu);
            ring(s);
        }
        status = cai_job_result(job, &res);
        if (rc < 0 && status >= 0)
            status = rc;
        if (status < 0)
            snprintf(errmsg, sizeof(errmsg), "%s", cai_session_errmsg(sl->sess));
        if (too_big && status >= 0) {
            status = CAI_ENOMEM;
            snprintf(errmsg, sizeof(errmsg), "the reply is too large");
        }
        pthread_mutex_lock(&sl->mu);
        sl->sh.job = NULL;
        pthread_mutex_unlock(&sl->mu);
        cai_job_free(job);
    }
    if (status < 0 && !errmsg[0])
        snprintf(errmsg, sizeof(errmsg), "%s", cai_strerror(status));
    pthread_mutex_lock(&sl->mu);
    sl->sh.done = true;
    sl->sh.status = status;
    sl->sh.res = res;
    memcpy(sl->sh.errmsg, errmsg, sizeof(errmsg));
    pthread_mutex_unlock(&sl->mu);
    ring(s);
}

static void *relay_main(void *arg)
{
    struct slot *sl = arg;
    for (;;) {
        pthread_mutex_lock(&sl->mu);
        while (!sl->sh.task_in && !sl->sh.quit)
            pthread_cond_wait(&sl->cv, &sl->mu);
        struct task *t = sl->sh.task_in;
        sl->sh.task_in = NULL;
        pthread_mutex_unlock(&sl->mu);
        if (!t)
            break; /* quit */
        relay_one(sl, t);
    }
    return NULL;
}

static void slot_cancel(struct slot *sl)
{
    pthread_mutex_lock(&sl->mu);
    sl->sh.cancel = true;
    if (sl->sh.job)
        cai_job_cancel(sl->sh.job);
    pthread_mutex_unlock(&sl->mu);
}

/* ---- small helpers ----------------------------------------------------- */

static int64_t ms_to_ns(int ms)
{
    return (int64_t)ms * 1000000;
}

static void count_status(struct cai__server *s, int status)
{
    s->m.requests++;
    for (int i = 0; i < N_STATUS_COUNTED; i++) {
        if (s->m.status_code[i] == status || s->m.status_code[i] == 0) {
            s->m.status_code[i] = status;
            s->m.status_count[i]++;
            return;
        }
    }
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- connections ------------------------------------------------------- */

static void conn_set_events(struct cai__server *s, struct conn *c)
{
    if (c->fd < 0)
        return;
    uint32_t ev = 0;
    if (c->out.n > c->out_pos)
        ev |= EPOLLOUT;
    /* Read while there is room, in C_BUSY too (pipelined bytes, and to notice
     * a client leaving); closing connections read to discard. */
    if (!c->peer_closed) {
        ev |= EPOLLRDHUP;
        if (c->in.n < c->in.max || c->state == C_CLOSING || c->state == C_LINGER)
            ev |= EPOLLIN;
    }
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->events = ev;
}

static void task_free(struct task *t);
static void schedule(struct cai__server *s);

/* Removes a queued task from the queue; false when it is not queued. */
static bool queue_remove(struct cai__server *s, struct task *t)
{
    for (int i = 0; i < s->n_queued; i++) {
        if (s->queue[i] == t) {
            memmove(&s->queue[i], &s->queue[i + 1], (size_t)(s->n_queued - i - 1) * sizeof(t));
            s->n_queued--;
            return true;
        }
    }
    return false;
}

static void conn_close(struct cai__server *s, struct conn *c)
{
    if (c->fd < 0)
        return;
    struct task *t = c->task;
    if (t) {
        t->conn = NULL;
        c->task = NULL;
        if (t->slot >= 0) {
            slot_cancel(&s->slots[t->slot]); /* freed when the slot reports done */
        } else if (queue_remove(s, t)) {
            s->m.cancelled++;
            task_free(t);
        }
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->graveyard;
    s->graveyard = c;
    s->n_conns--;
}

static void bury(struct cai__server *s)
{
    while (s->graveyard) {
        struct conn *c = s->graveyard;
        s->graveyard = c->next;
        cai__buf_free(&c->in);
        cai__buf_free(&c->out);
        cai__free(c);
    }
}

/* Sends what it can without blocking; closes the connection when sending
 * fails or the client reads too slowly. */
static void conn_flush(struct cai__server *s, struct conn *c)
{
    while (c->fd >= 0 && c->out_pos < c->out.n) {
        ssize_t w = send(c->fd, c->out.data + c->out_pos, c->out.n - c->out_pos, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_pos += (size_t)w;
            c->t_active = cai__now_ns();
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(s, c); /* the client went away */
        return;
    }
    if (c->fd < 0)
        return;
    if (c->out_pos == c->out.n) {
        cai__buf_reset(&c->out);
        c->out_pos = 0;
    } else if (c->out.n - c->out_pos > s->p.max_pending_out) {
        conn_close(s, c); /* too slow a reader */
    }
}

static bool conn_process(struct cai__server *s, struct conn *c);

/* Moves a connection along after anything happened to it: answers buffered
 * requests, sends, and closes it when it is done. Every path that changes a
 * connection ends here. */
static void conn_service(struct cai__server *s, struct conn *c)
{
    for (int guard = 0; guard < 10000 && c->fd >= 0; guard++) {
        bool held = c->state == C_READING && conn_process(s, c);
        if (c->fd < 0)
            return;
        conn_flush(s, c);
        if (c->fd < 0)
            return;
        if (c->out_pos < c->out.n)
            break; /* wait for EPOLLOUT */
        if (held)
            continue; /* output drained: parse the requests held back */
        if (c->state == C_CLOSING) {
            if (c->peer_closed) {
                conn_close(s, c);
                return;
            }
            /* Close gracefully: a client still sending would otherwise get a
             * reset that can destroy the response it has not read yet. */
            shutdown(c->fd, SHUT_WR);
            c->state = C_LINGER;
            c->t_linger = cai__now_ns() + ms_to_ns(LINGER_MS);
        } else if (c->peer_closed && (c->state == C_READING || c->state == C_LINGER)) {
            conn_close(s, c); /* nothing more can arrive */
            return;
        }
        break;
    }
    if (c->fd >= 0 && c->peer_closed && c->state == C_BUSY) {
        conn_close(s, c); /* the client left: cancel its generation */
        return;
    }
    conn_set_events(s, c);
}

/* Ends the answer to the current request: logs it and either waits for the
 * next request on the connection or closes it. */
static void response_done(struct cai__server *s, struct conn *c, int status)
{
    count_status(s, status);
    log_line(s, "%s %s %d %.3f s", c->cur.method, c->cur.path, status,
             (double)(cai__now_ns() - c->cur.t0) / 1e9);
    c->state = c->cur.keep_alive && !s->stopping ? C_READING : C_CLOSING;
    c->t_req = c->in.n ? cai__now_ns() : 0;
}

/* A complete response with a body of known length. */
static void respond(struct cai__server *s, struct conn *c, int status, const char *type,
                    const char *body, size_t n, const char *extra_headers)
{
    if (c->fd < 0)
        return;
    cai__http_write_head(&c->out, status, type, (int64_t)n, false, c->cur.keep_alive,
                         extra_headers);
    if (!c->cur.head_only)
        cai__buf_put(&c->out, body, n);
    if (c->out.failed) { /* cannot happen with sane limits; drop the client */
        conn_close(s, c);
        return;
    }
    response_done(s, c, status);
}

static void respond_error(struct cai__server *s, struct conn *c, int status, const char *msg,
                          const char *extra_headers)
{
    cai__buf_reset(&s->tmp);
    cai__api_error(&s->tmp, c->cur.ollama, status, msg);
    respond(s, c, status, "application/json", s->tmp.data, s->tmp.n, extra_headers);
}

static void respond_json(struct cai__server *s, struct conn *c, bool ok)
{
    if (!ok) {
        respond_error(s, c, 500, "cannot build the response", NULL);
        return;
    }
    respond(s, c, 200, "application/json", s->tmp.data, s->tmp.n, NULL);
}

/* ---- tasks ------------------------------------------------------------- */

static void task_free(struct task *t)
{
    if (!t)
        return;
    cai__api_request_free(&t->req);
    cai__buf_free(&t->reply.scratch);
    cai__buf_free(&t->text);
    cai__buf_free(&t->key);
    cai__free(t->model_echo);
    cai__free(t->emb);
    cai__free(t);
}

/* The conversation as one string: messages as role, 0x1f, content, 0x1e;
 * a raw prompt after 0x01. A continued conversation extends it. */
static void task_key(struct task *t)
{
    struct cai__buf *k = &t->key;
    if (t->req.prompt) {
        cai__buf_putc(k, '\x01');
        cai__buf_puts(k, t->req.prompt);
        return;
    }
    for (size_t i = 0; i < t->req.n_msgs; i++) {
        cai__buf_puts(k, t->req.msgs[i].role);
        cai__buf_putc(k, '\x1f');
        cai__buf_puts(k, t->req.msgs[i].content);
        cai__buf_putc(k, '\x1e');
    }
}

static size_t common_prefix(const struct cai__buf *a, const struct cai__buf *b)
{
    size_t n = CAI_MIN(a->n, b->n), i = 0;
    while (i < n && a->data[i] == b->data[i])
        i++;
    return i;
}

/* Starts queued tasks on free slots, oldest first, each on the free slot
 * whose last conversation shares the longest prefix with it. */
static void schedule(struct cai__server *s)
{
    while (s->n_queued > 0) {
        struct task *t = s->queue[0];
        int best = -1;
        size_t best_len = 0;
        for (int i = 0; i < s->n_slots; i++) {
            struct slot *sl = &s->slots[i];
            if (sl->task)
                continue;
            size_t len = sl->key.failed ? 0 : common_prefix(&sl->key, &t->key);
            if (best < 0 || len > best_len ||
                (len == best_len && sl->last_used < s->slots[best].last_used)) {
                best = i;
                best_len = len;
            }
        }
        if (best < 0)
            return;
        queue_remove(s, t);
        struct slot *sl = &s->slots[best];
        sl->task = t;
        sl->last_used = cai__now_ns();
        t->slot = best;
        pthread_mutex_lock(&sl->mu);
        sl->sh.task_in = t;
        sl->sh.cancel = false;
        sl->sh.done = false;
        cai__buf_reset(&sl->sh.out);
        pthread_cond_signal(&sl->cv);
        pthread_mutex_unlock(&sl->mu);
    }
}

static int status_for(int code)
{
    switch (code) {
    case CAI_EINVAL:
    case CAI_ERANGE:
    case CAI_ECTX_FULL: return 400;
    case CAI_ENOMEM: return 503;
    default: return 500;
    }
}

static void stream_head(struct task *t)
{
    struct conn *c = t->conn;
    const char *type = cai__api_is_ollama(t->req.kind) ? "application/x-ndjson"
                                                        : "text/event-stream";
    if (!t->chunked)
        c->cur.keep_alive = false; /* HTTP/1.0: the body ends when the connection does */
    cai__http_write_head(&c->out, 200, type, -1, t->chunked, c->cur.keep_alive,
                         "Cache-Control: no-cache\r\n");
    t->head_sent = true;
}

/* Delivers newly generated text to the task's client. */
static void task_text(struct cai__server *s, struct task *t, const char *text, size_t n)
{
    cai__buf_put(&t->text, text, n);
    struct conn *c = t->conn;
    if (!c || !t->stream || n == 0)
        return;
    if (!t->head_sent)
        stream_head(t);
    cai__api_stream_piece(&c->out, &t->reply, text, n);
    conn_service(s, c);
}

/* The slot reported the end of t's generation: account for it, answer the
 * client (if it is still there) and free the task. */
static void task_done(struct cai__server *s, struct task *t, int status,
                      const struct cai_gen_result *res, const char *errmsg)
{
    struct slot *sl = &s->slots[t->slot];
    sl->task = NULL;
    /* What the slot's KV cache now holds: the conversation and the reply. */
    cai__buf_reset(&sl->key);
    bool embed = cai__api_is_embed(t->req.kind); /* the cache holds no conversation then */
    if (status >= 0 && !embed && !t->key.failed && !t->text.failed) {
        cai__buf_put(&sl->key, t->key.data, t->key.n);
        if (!t->req.prompt)
            cai__buf_puts(&sl->key, "assistant\x1f");
        cai__buf_put(&sl->key, t->text.data, t->text.n);
    }
    int64_t total = cai__now_ns() - t->t0;
    if (status >= 0) {
        s->m.generations++;
        s->m.prompt_tokens += (uint64_t)res->n_prompt;
        s->m.reused_tokens += (uint64_t)res->n_reused;
        s->m.gen_tokens += (uint64_t)res->n_gen;
        s->m.prompt_s += (double)res->t_prompt_ns / 1e9;
        s->m.gen_s += (double)res->t_gen_ns / 1e9;
        if (res->n_gen > 1 && res->t_gen_ns > 0)
            s->m.last_tps = (double)(res->n_gen - 1) / ((double)res->t_gen_ns / 1e9);
    }
    if (!t->conn || status == CAI_ECANCELLED)
        s->m.cancelled++;
    else if (status < 0)
        s->m.failed++;

    struct conn *c = t->conn;
    if (c) {
        c->task = NULL;
        if (status < 0 && t->stream && t->head_sent) {
            cai__api_stream_error(&c->out, &t->reply, errmsg);
            response_done(s, c, 200);
        } else if (status < 0) {
            respond_error(s, c, status_for(status), errmsg, NULL);
        } else if (embed) {
            cai__buf_reset(&s->tmp);
            respond_json(s, c, cai__api_embed_final(&s->tmp, &t->reply, t->emb, t->req.n_inputs,
                                                    t->emb_dim, res->n_prompt, total));
        } else if (t->stream) {
            if (!t->head_sent)
                stream_head(t);
            cai__api_stream_end(&c->out, &t->reply, res, total);
            response_done(s, c, 200);
        } else {
            cai__buf_reset(&s->tmp);
            bool ok = cai__api_final(&s->tmp, &t->reply, t->text.data ? t->text.data : "",
                                     t->text.n, res, total);
            respond_json(s, c, ok);
        }
        log_line(s, "  slot %d: %d prompt tokens (%d reused), %d generated, %s", t->slot,
                 res->n_prompt, res->n_reused, res->n_gen,
                 status < 0 ? errmsg : cai__api_finish_reason(res->stop_reason));
    }
    task_free(t);
    if (c)
        conn_service(s, c);
}

/* Takes the slots' outboxes and end reports (after a doorbell). */
static void drain_slots(struct cai__server *s)
{
    uint64_t v;
    while (read(s->efd, &v, sizeof(v)) > 0) {
    }
    for (int i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        struct task *t = sl->task;
        if (!t)
            continue;
        pthread_mutex_lock(&sl->mu);
        /* Swap the outbox with an empty buffer: no copy under the lock. */
        struct cai__buf text = sl->sh.out;
        cai__buf_init(&sl->sh.out, MAX_REPLY_BYTES);
        bool done = sl->sh.done;
        int status = sl->sh.status;
        struct cai_gen_result res = sl->sh.res;
        char errmsg[256];
        memcpy(errmsg, sl->sh.errmsg, sizeof(errmsg));
        pthread_mutex_unlock(&sl->mu);
        if (text.n)
            task_text(s, t, text.data, text.n);
        cai__buf_free(&text);
        if (done)
            task_done(s, t, status, &res, errmsg);
    }
    schedule(s);
}

/* ---- request handling -------------------------------------------------- */

static bool host_allowed(const struct cai__server *s, const struct cai__http_request *rq)
{
    if (!s->loopback || !rq->host)
        return true;
    const char *h = rq->host;
    size_t n = rq->host_len;
    if (n && h[0] == '[') { /* [v6]:port */
        const char *e = memchr(h, ']', n);
        if (!e)
            return false;
        return (size_t)(e - h) == 4 && memcmp(h, "[::1", 4) == 0;
    }
    const char *colon = memchr(h, ':', n);
    if (colon)
        n = (size_t)(colon - h);
    if (n == 9 && strncasecmp(h, "localhost", 9) == 0)
        return true;
    if (n >= 4 && memcmp(h, "127.", 4) == 0) {
        for (size_t i = 4; i < n; i++)
            if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.'))
                return false;
        return true;
    }
    return false;
}

static void handle_generation(struct cai__server *s, struct conn *c,
                              const struct cai__http_request *rq, int kind)
{
    if (s->stopping) {
        respond_error(s, c, 503, "the server is shutting down", NULL);
        return;
    }
    struct task *t = cai__calloc(1, sizeof(*t));
    if (!t) {
        respond_error(s, c, 503, "out of memory", NULL);
        return;
    }
    t->slot = -1;
    t->t0 = c->cur.t0;
    cai__buf_init(&t->text, MAX_REPLY_BYTES);
    cai__buf_init(&t->key, MAX_REPLY_BYTES);
    struct cai_error err = {0};
    int rc = cai__api_parse(&t->req, kind, rq->body, rq->body_len, s->p.default_max_tokens, &err);
    if (rc < 0) {
        task_free(t);
        respond_error(s, c, rc == CAI_ENOMEM ? 503 : 400, err.msg, NULL);
        return;
    }
    t->stream = t->req.stream;
    t->chunked = c->cur.version >= 11;
    bool ollama = cai__api_is_ollama(kind);
    t->model_echo = cai__strdup(ollama && t->req.model && t->req.model[0] ? t->req.model
                                                                           : s->info.name);
    uint64_t n = ++s->next_id;
    snprintf(t->id, sizeof(t->id), "%s-%016llx",
             kind == CAI_API_OAI_COMPLETION ? "cmpl" : "chatcmpl",
             (unsigned long long)mix64(s->id_base + n));
    t->reply.kind = kind;
    t->reply.chunked = t->chunked;
    t->reply.include_usage = t->req.include_usage;
    t->reply.id = t->id;
    t->reply.model = t->model_echo ? t->model_echo : "";
    t->reply.created = (int64_t)time(NULL);
    if (!t->req.seed_set)
        t->req.gp.sampling.seed = mix64((uint64_t)cai__now_ns() ^ (s->id_base + n));
    if (t->req.load_only) {
        cai__buf_reset(&s->tmp);
        bool ok = cai__api_ollama_load(&s->tmp, &t->reply);
        task_free(t);
        if (!ok) {
            respond_error(s, c, 500, "cannot build the response", NULL);
            return;
        }
        respond(s, c, 200, "application/json", s->tmp.data, s->tmp.n, NULL);
        return;
    }
    task_key(t);
    bool slot_free = false;
    for (int i = 0; i < s->n_slots; i++)
        slot_free |= s->slots[i].task == NULL;
    if (!slot_free && s->n_queued >= s->p.queue_max) {
        task_free(t);
        s->m.rejected++;
        respond_error(s, c, 503, "the server is busy: too many requests are waiting",
                      "Retry-After: 1\r\n");
        return;
    }
    t->conn = c;
    c->task = t;
    c->state = C_BUSY;
    s->queue[s->n_queued++] = t;
    schedule(s);
}

static void metrics_text(struct cai__server *s, struct cai__buf *b)
{
    int busy = 0;
    for (int i = 0; i < s->n_slots; i++)
        busy += s->slots[i].task != NULL;
    struct {
        const char *name, *type, *help;
        double      v;
    } rows[] = {
        {"coreai_requests_rejected_total", "counter", "Requests refused because the queue was full.",
         (double)s->m.rejected},
        {"coreai_generations_total", "counter", "Generations finished.", (double)s->m.generations},
        {"coreai_generations_cancelled_total", "counter",
         "Generations cancelled because the client went away.", (double)s->m.cancelled},
        {"coreai_generations_failed_total", "counter", "Generations that ended in an error.",
         (double)s->m.failed},
        {"coreai_prompt_tokens_total", "counter", "Prompt tokens of finished generations.",
         (double)s->m.prompt_tokens},
        {"coreai_prompt_tokens_reused_total", "counter", "Prompt tokens found in a slot's KV cache.",
         (double)s->m.reused_tokens},
        {"coreai_tokens_generated_total", "counter", "Tokens generated.", (double)s->m.gen_tokens},
        {"coreai_prompt_seconds_total", "counter", "Time spent processing prompts.", s->m.prompt_s},
        {"coreai_generation_seconds_total", "counter", "Time spent generating tokens.",
         s->m.gen_s},
        {"coreai_tokens_per_second", "gauge", "Generation speed of the last generation.",
         s->m.last_tps},
        {"coreai_queue_depth", "gauge", "Requests waiting for a slot.", (double)s->n_queued},
        {"coreai_queue_capacity", "gauge", "Most requests that may wait.", (double)s->p.queue_max},
        {"coreai_slots_busy", "gauge", "Slots generating.", (double)busy},
        {"coreai_slots_total", "gauge", "Slots.", (double)s->n_slots},
        {"coreai_connections", "gauge", "Open connections.", (double)s->n_conns},
        {"coreai_connections_total", "counter", "Connections accepted.", (double)s->m.connections},
    };
    cai__buf_puts(b, "# HELP coreai_requests_total HTTP requests answered, by status code.\n"
                     "# TYPE coreai_requests_total counter\n");
    for (int i = 0; i < N_STATUS_COUNTED && s->m.status_code[i]; i++)
        cai__buf_printf(b, "coreai_requests_total{code=\"%d\"} %llu\n", s->m.status_code[i],
                        (unsigned long long)s->m.status_count[i]);
    for (size_t i = 0; i < CAI_ARRAY_LEN(rows); i++) {
        double v = rows[i].v;
        cai__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", rows[i].name, rows[i].help,
                        rows[i].name, rows[i].type);
        if (v < 9e15 && v > -9e15 && v == (double)(int64_t)v)
            cai__buf_printf(b, "%s %lld\n", rows[i].name, (long long)v);
        else
            cai__buf_printf(b, "%s %.9g\n", rows[i].name, v);
    }
}

/* Answers one complete request. */
static void handle_request(struct cai__server *s, struct conn *c, const struct cai__http_request *rq)
{
    c->cur.head_only = rq->method == CAI_HTTP_HEAD;
    c->cur.keep_alive = rq->keep_alive;
    c->cur.version = rq->version;
    c->cur.t0 = c->t_req ? c->t_req : cai__now_ns();
    c->cur.ollama = rq->path_len >= 5 && memcmp(rq->path, "/api/", 5) == 0;
    snprintf(c->cur.method, sizeof(c->cur.method), "%.*s", (int)CAI_MIN(rq->method_len, 11),
             rq->method_str);
    snprintf(c->cur.path, sizeof(c->cur.path), "%.*s", (int)CAI_MIN(rq->path_len, 95), rq->path);
    if (!host_allowed(s, rq)) {
        respond_error(s, c, 403, "Host not allowed (the server is bound to loopback)", NULL);
        return;
    }
    static const struct {
        const char *path;
        bool        post; /* else GET (and HEAD) */
        int         id;
    } routes[] = {
        {"/", false, 1},
        {"/health", false, 2},
        {"/metrics", false, 3},
        {"/v1/models", false, 4},
        {"/v1/chat/completions", true, 10 + CAI_API_OAI_CHAT},
        {"/v1/completions", true, 10 + CAI_API_OAI_COMPLETION},
        {"/api/generate", true, 10 + CAI_API_OLLAMA_GENERATE},
        {"/api/chat", true, 10 + CAI_API_OLLAMA_CHAT},
        {"/api/tags", false, 5},
        {"/api/ps", false, 6},
        {"/api/version", false, 7},
        {"/api/show", true, 8},
        {"/v1/embeddings", true, 10 + CAI_API_OAI_EMBED},
        {"/api/embed", true, 10 + CAI_API_OLLAMA_EMBED},
        {"/api/embeddings", true, 10 + CAI_API_OLLAMA_EMBEDDINGS},
    };
    int route = -1;
    for (size_t i = 0; i < CAI_ARRAY_LEN(routes); i++)
        if (cai__http_path_is(rq, routes[i].path))
            route = (int)i;
    if (route < 0) {
        respond_error(s, c, 404, "no such endpoint", NULL);
        return;
    }
    bool post = routes[route].post;
    const char *allow = post ? "Allow: POST, OPTIONS\r\n" : "Allow: GET, HEAD, OPTIONS\r\n";
    if (rq->method == CAI_HTTP_OPTIONS) {
        c->cur.head_only = true;
        respond(s, c, 204, NULL, "", 0, allow);
        return;
    }
    bool method_ok = post ? rq->method == CAI_HTTP_POST
                          : rq->method == CAI_HTTP_GET || rq->method == CAI_HTTP_HEAD;
    if (!method_ok) {
        respond_error(s, c, 405, "method not allowed", allow);
        return;
    }
    int id = routes[route].id;
    if (id >= 10) {
        handle_generation(s, c, rq, id - 10);
        return;
    }
    cai__buf_reset(&s->tmp);
    switch (id) {
    case 1: {
        size_t n;
        const char *page = cai__api_chat_page(&n);
        respond(s, c, 200, "text/html; charset=utf-8", page, n, NULL);
        return;
    }
    case 2: {
        int busy = 0;
        for (int i = 0; i < s->n_slots; i++)
            busy += s->slots[i].task != NULL;
        cai__buf_printf(&s->tmp,
                        "{\"status\":\"%s\",\"slots_idle\":%d,\"slots_processing\":%d,"
                        "\"queue_depth\":%d}",
                        s->stopping ? "shutting down" : "ok", s->n_slots - busy, busy,
                        s->n_queued);
        respond(s, c, s->stopping ? 503 : 200, "application/json", s->tmp.data, s->tmp.n, NULL);
        return;
    }
    case 3:
        metrics_text(s, &s->tmp);
        respond(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", s->tmp.data, s->tmp.n,
                NULL);
        return;
    case 4: respond_json(s, c, cai__api_oai_models(&s->tmp, &s->info)); return;
    case 5: respond_json(s, c, cai__api_ollama_tags(&s->tmp, &s->info, false)); return;
    case 6: respond_json(s, c, cai__api_ollama_tags(&s->tmp, &s->info, true)); return;
    case 7: respond_json(s, c, cai__api_ollama_version(&s->tmp)); return;
    case 8: {
        /* The body names a model; there is one, so any name (or none) shows it. */
        struct cai_json *j = NULL;
        struct cai_error err = {0};
        if (rq->body_len && cai__json_parse(&j, rq->body, rq->body_len, 8, "request body", &err) < 0) {
            respond_error(s, c, 400, err.msg, NULL);
            return;
        }
        cai__json_free(j);
        respond_json(s, c, cai__api_ollama_show(&s->tmp, &s->info));
        return;
    }
    default: respond_error(s, c, 500, "unknown route", NULL); return;
    }
}

/* Parses and answers the requests waiting in c->in, one at a time, until
 * one needs more bytes or starts a generation. Returns true when it stopped
 * only because too much output is waiting to be sent. */
static bool conn_process(struct cai__server *s, struct conn *c)
{
    for (int guard = 0; guard < 10000 && c->fd >= 0 && c->state == C_READING; guard++) {
        if (c->in.n == 0)
            return false;
        if (c->out.n - c->out_pos > OUT_HIGH_WATER)
            return true;
        if (!c->t_req)
            c->t_req = cai__now_ns();
        int64_t n = cai__http_parse(&c->parser, c->in.data, c->in.n, &s->p.http);
        if (n == 0) {
            const struct cai__http_parser *p = &c->parser;
            if (p->head_done && p->req.expect_continue && p->req.version >= 11 &&
                !c->sent_continue) {
                cai__buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                c->sent_continue = true;
            }
            return false;
        }
        if (n < 0) {
            /* The byte stream cannot be resynchronized: answer and close. */
            memset(&c->cur, 0, sizeof(c->cur));
            c->cur.t0 = c->t_req;
            snprintf(c->cur.method, sizeof(c->cur.method), "-");
            snprintf(c->cur.path, sizeof(c->cur.path), "-");
            respond_error(s, c, c->parser.status, c->parser.reason, NULL);
            return false;
        }
        handle_request(s, c, &c->parser.req);
        if (c->fd < 0)
            return false;
        cai__buf_consume(&c->in, (size_t)n);
        cai__http_parser_init(&c->parser);
        c->sent_continue = false;
        c->t_req = 0;
    }
    return false;
}

/* Reads what has arrived. In C_CLOSING and C_LINGER the bytes are discarded.
 * EOF marks the peer closed (conn_service decides what that means). */
static void conn_read(struct cai__server *s, struct conn *c)
{
    for (int guard = 0; guard < 64 && c->fd >= 0 && !c->peer_closed; guard++) {
        char junk[4096];
        bool discard = c->state == C_CLOSING || c->state == C_LINGER;
        size_t room = discard ? sizeof(junk) : c->in.max - c->in.n;
        if (room == 0)
            return;
        room = CAI_MIN(room, (size_t)READ_CHUNK);
        if (!discard && !cai__buf_reserve(&c->in, room)) {
            conn_close(s, c);
            return;
        }
        ssize_t r = recv(c->fd, discard ? junk : c->in.data + c->in.n, room, 0);
        if (r > 0) {
            if (!discard) {
                c->in.n += (size_t)r;
                c->in.data[c->in.n] = '\0';
            }
            c->t_active = cai__now_ns();
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0) {
            conn_close(s, c); /* reset: nothing can be sent either */
            return;
        }
        c->peer_closed = true;
    }
}

static void accept_all(struct cai__server *s)
{
    for (int guard = 0; guard < 256; guard++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment rather than spin. */
                epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
                s->accept_paused = true;
                s->t_accept_resume = cai__now_ns() + ms_to_ns(200);
            }
            return;
        }
        if (s->n_conns >= s->p.max_conns) {
            static const char busy[] =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                "Content-Length: 82\r\nConnection: close\r\n\r\n"
                "{\"error\":{\"message\":\"too many connections\",\"type\":\"unavailable_error\","
                "\"code\":503}}";
            ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            count_status(s, 503);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = cai__calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = C_READING;
        size_t in_max = s->p.http.max_head + s->p.http.max_body + 4096;
        cai__buf_init(&c->in, in_max);
        cai__buf_init(&c->out, (size_t)1 << 40); /* bounded by max_pending_out instead */
        cai__http_parser_init(&c->parser);
        c->t_active = cai__now_ns();
        c->events = EPOLLIN | EPOLLRDHUP;
        struct epoll_event e = {.events = c->events, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            cai__free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        s->m.connections++;
    }
}

/* ---- timers and shutdown ----------------------------------------------- */

static void sweep(struct cai__server *s, int64_t now)
{
    if (s->accept_paused && !s->stopping && now >= s->t_accept_resume) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->tag_listen};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &e) == 0)
            s->accept_paused = false;
    }
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        bool pending = c->out_pos < c->out.n;
        if (pending && now - c->t_active > ms_to_ns(s->p.write_timeout_ms)) {
            conn_close(s, c);
        } else if (c->state == C_LINGER && now >= c->t_linger) {
            conn_close(s, c);
        } else if (c->state == C_READING && !pending) {
            if (c->in.n == 0 && now - c->t_active > ms_to_ns(s->p.idle_timeout_ms)) {
                conn_close(s, c);
            } else if (c->in.n > 0 && c->t_req &&
                       now - c->t_req > ms_to_ns(s->p.request_timeout_ms)) {
                memset(&c->cur, 0, sizeof(c->cur));
                c->cur.t0 = c->t_req;
                snprintf(c->cur.method, sizeof(c->cur.method), "-");
                snprintf(c->cur.path, sizeof(c->cur.path), "-");
                respond_error(s, c, 408, "the request took too long to arrive", NULL);
                conn_service(s, c);
            }
        }
    }
}

static void begin_shutdown(struct cai__server *s, int64_t now)
{
    s->stopping = true;
    s->t_deadline = now + ms_to_ns(s->p.shutdown_grace_ms);
    if (!s->accept_paused)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
    s->accept_paused = true;
    log_line(s, "shutting down");
    while (s->n_queued > 0) {
        struct task *t = s->queue[0];
        queue_remove(s, t);
        struct conn *c = t->conn;
        task_free(t);
        if (c) {
            c->task = NULL;
            respond_error(s, c, 503, "the server is shutting down", NULL);
            s->m.rejected++;
        }
    }
    /* Idle connections close now, the others once their answer is sent. */
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == C_READING) {
            if (c->out_pos == c->out.n) {
                conn_close(s, c);
                continue;
            }
            c->state = C_CLOSING;
        }
        conn_service(s, c);
    }
}

static bool slots_idle(const struct cai__server *s)
{
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].task)
            return false;
    return true;
}

int cai__server_run(struct cai__server *s)
{
    if (s->ran)
        return CAI_ESTATE;
    s->ran = true;
    s->t_start = cai__now_ns();
    struct epoll_event evs[MAX_EVENTS];
    int rc = 0;
    for (;;) {
        int64_t now = cai__now_ns();
        if (!s->stopping &&
            (atomic_load(&s->stop_requested) ||
             (s->p.max_lifetime_ms > 0 && now - s->t_start > ms_to_ns(s->p.max_lifetime_ms))))
            begin_shutdown(s, now);
        if (s->stopping) {
            if (!s->cancelled_all && now >= s->t_deadline) {
                s->cancelled_all = true;
                for (struct conn *c = s->conns, *next; c; c = next) {
                    next = c->next;
                    conn_close(s, c); /* cancels running generations */
                }
            }
            if (slots_idle(s) && !s->conns)
                break;
        }
        bury(s);
        int n = epoll_wait(s->epfd, evs, MAX_EVENTS, TICK_MS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = CAI_EIO;
            break;
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (tag == &s->tag_listen) {
                if (!s->stopping)
                    accept_all(s);
                continue;
            }
            if (tag == &s->tag_bell) {
                drain_slots(s);
                continue;
            }
            struct conn *c = tag;
            if (c->fd < 0)
                continue; /* closed earlier in this batch */
            if (ev & EPOLLERR) {
                conn_close(s, c);
                continue;
            }
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
                conn_read(s, c);
            if (c->fd >= 0 && (ev & (EPOLLRDHUP | EPOLLHUP)))
                c->peer_closed = true; /* even when the buffer had no room to read to EOF */
            if (c->fd >= 0)
                conn_service(s, c);
        }
        sweep(s, cai__now_ns());
    }
    /* Error exit: drop every connection (cancelling their generations). */
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(s, c);
    }
    bury(s);
    return rc;
}

void cai__server_stop(struct cai__server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop_requested, 1);
    uint64_t one = 1;
    ssize_t r = write(s->efd, &one, sizeof(one));
    (void)r;
}

int cai__server_port(const struct cai__server *s)
{
    return s->port;
}

/* ---- setup and teardown ------------------------------------------------ */

static int open_listener(struct cai__server *s, struct cai_error *err)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", s->p.port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(s->host, port, &hints, &res);
    if (gai != 0)
        return cai__fail(err, CAI_EINVAL, "serve: cannot resolve host \"%s\": %s", s->host,
                         gai_strerror(gai));
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            if (a->ai_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)a->ai_addr;
                s->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
            } else if (a->ai_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a->ai_addr;
                s->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
            }
            break;
        }
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return cai__fail(err, CAI_EIO, "serve: cannot listen on %s:%d: %s", s->host, s->p.port,
                         strerror(e));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    return 0;
}

int cai__server_new(struct cai__server **out, struct cai_model *m,
                    const struct cai__server_params *params, struct cai_error *err)
{
    *out = NULL;
    struct cai__server_params p = params ? *params : cai__server_params_default();
    if (!m)
        return cai__fail(err, CAI_EINVAL, "serve: no model");
    if (p.n_slots < 1 || p.n_slots > MAX_SLOTS)
        return cai__fail(err, CAI_EINVAL, "serve: slots must be in [1, %d]", MAX_SLOTS);
    if (p.queue_max < 0 || p.queue_max > MAX_QUEUE)
        return cai__fail(err, CAI_EINVAL, "serve: queue must be in [0, %d]", MAX_QUEUE);
    if (p.port < 0 || p.port > 65535)
        return cai__fail(err, CAI_EINVAL, "serve: port must be in [0, 65535]");
    if (p.max_conns < 1)
        return cai__fail(err, CAI_EINVAL, "serve: max_conns must be at least 1");
    if (p.http.max_headers > CAI__HTTP_MAX_HEADERS || p.http.max_line == 0 ||
        p.http.max_head < p.http.max_line || p.http.max_body > ((size_t)1 << 30))
        return cai__fail(err, CAI_EINVAL, "serve: HTTP limits out of range");
    struct cai__server *s = cai__calloc(1, sizeof(*s));
    if (!s)
        return cai__fail(err, CAI_ENOMEM, "serve: out of memory");
    s->listen_fd = s->epfd = s->efd = -1;
    s->model = m;
    s->p = p;
    snprintf(s->host, sizeof(s->host), "%s", p.host ? p.host : "127.0.0.1");
    snprintf(s->alias, sizeof(s->alias), "%s", p.model_alias ? p.model_alias : "");
    snprintf(s->path, sizeof(s->path), "%s", p.model_path ? p.model_path : "");
    s->p.host = s->host;
    s->p.model_alias = s->alias[0] ? s->alias : NULL;
    s->p.model_path = s->path[0] ? s->path : NULL;
    s->id_base = mix64((uint64_t)cai__now_ns() ^ (uint64_t)(uintptr_t)s);
    cai__buf_init(&s->tmp, (size_t)256 << 20);
    atomic_init(&s->stop_requested, 0);
    int rc;
    s->queue = cai__calloc((size_t)(p.queue_max > 0 ? p.queue_max : 1) + 1, sizeof(*s->queue));
    if (!s->queue) {
        rc = cai__fail(err, CAI_ENOMEM, "serve: out of memory");
        goto fail;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->efd < 0) {
        rc = cai__fail(err, CAI_EIO, "serve: epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    if ((rc = open_listener(s, err)) < 0)
        goto fail;
    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &s->tag_listen};
    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &s->tag_bell};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &e1) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &e2) < 0) {
        rc = cai__fail(err, CAI_EIO, "serve: epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < p.n_slots; i++) {
        struct slot *sl = &s->slots[i];
        sl->srv = s;
        sl->idx = i;
        pthread_mutex_init(&sl->mu, NULL);
        pthread_cond_init(&sl->cv, NULL);
        cai__buf_init(&sl->sh.out, MAX_REPLY_BYTES);
        cai__buf_init(&sl->key, MAX_REPLY_BYTES);
        s->n_slots = i + 1;
        if ((rc = cai_session_new(&sl->sess, m, &p.session, err)) < 0) {
            cai__error_prefix(err, "serve: slot session");
            goto fail;
        }
        if (pthread_create(&sl->thread, NULL, relay_main, sl) != 0) {
            rc = cai__fail(err, CAI_ENOMEM, "serve: cannot start a slot thread");
            goto fail;
        }
        sl->started = true;
    }
    /* A slot's context: the session's default when the params leave it 0. */
    struct cai_model_info mi;
    cai_model_get_info(m, &mi);
    int n_ctx = p.session.n_ctx > 0 ? p.session.n_ctx : CAI_MIN(mi.n_ctx_train, 4096);
    cai__api_model_describe(&s->info, m, s->p.model_path, s->p.model_alias, n_ctx);
    *out = s;
    return 0;
fail:
    cai__server_free(s);
    return rc;
}

void cai__server_free(struct cai__server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->started) {
            pthread_mutex_lock(&sl->mu);
            sl->sh.quit = true;
            sl->sh.cancel = true;
            if (sl->sh.job)
                cai_job_cancel(sl->sh.job);
            pthread_cond_signal(&sl->cv);
            pthread_mutex_unlock(&sl->mu);
            pthread_join(sl->thread, NULL);
        }
        task_free(sl->task); /* only if run() ended with the slot busy */
        cai_session_free(sl->sess);
        cai__buf_free(&sl->sh.out);
        cai__buf_free(&sl->key);
        pthread_mutex_destroy(&sl->mu);
        pthread_cond_destroy(&sl->cv);
    }
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        c->task = NULL;
        close(c->fd);
        cai__buf_free(&c->in);
        cai__buf_free(&c->out);
        cai__free(c);
    }
    bury(s);
    for (int i = 0; s->queue && i < s->n_queued; i++)
        task_free(s->queue[i]);
    cai__free(s->queue);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->efd >= 0)
        close(s->efd);
    cai__buf_free(&s->tmp);
    cai__free(s);
}
