/* job.c: asynchronous generation. A job runs cai_generate or cai_chat on
 * its own thread; pieces travel to the caller through a mutex-protected
 * queue, so the caller never blocks on the model. Cancellation sets a flag
 * the decode loop checks before every token. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "session.h"

struct qpiece {
    struct qpiece *next;
    int32_t        token;
    size_t         n_bytes;
    char           text[]; /* n_bytes + NUL */
};

struct cai_job {
    struct cai_session   *s;
    pthread_t             thread;
    bool                  started;
    pthread_mutex_t       mu;
    pthread_cond_t        cv;
    struct qpiece        *head, *tail;
    struct qpiece        *current; /* handed out by the last cai_job_next */
    bool                  finished;
    int                   status;
    struct cai_gen_result res;
    /* Request copies. */
    char                 *prompt;
    struct cai_chat_msg  *msgs;
    size_t                n_msgs;
    char                **stop;
    struct cai_gen_params params;
};

static int push_piece(void *user, const struct cai_piece *p)
{
    struct cai_job *j = user;
    struct qpiece *q = cai__malloc(sizeof(*q) + p->n_bytes + 1);
    if (!q)
        return 1; /* out of memory: stop generating */
    q->next = NULL;
    q->token = p->token;
    q->n_bytes = p->n_bytes;
    memcpy(q->text, p->text, p->n_bytes);
    q->text[p->n_bytes] = '\0';
    pthread_mutex_lock(&j->mu);
    if (j->tail)
        j->tail->next = q;
    else
        j->head = q;
    j->tail = q;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return __atomic_load_n(&j->s->cancel, __ATOMIC_RELAXED) ? 1 : 0;
}

static void *job_main(void *arg)
{
    struct cai_job *j = arg;
    int rc;
    if (j->msgs)
        rc = cai_chat(j->s, j->msgs, j->n_msgs, &j->params, push_piece, j, &j->res);
    else
        rc = cai_generate(j->s, j->prompt, &j->params, push_piece, j, &j->res);
    pthread_mutex_lock(&j->mu);
    j->status = rc;
    j->finished = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static void job_destroy(struct cai_job *j)
{
    for (struct qpiece *q = j->head; q;) {
        struct qpiece *n = q->next;
        cai__free(q);
        q = n;
    }
    cai__free(j->current);
    cai__free(j->prompt);
    if (j->msgs) {
        for (size_t i = 0; i < j->n_msgs; i++) {
            cai__free((char *)j->msgs[i].role);
            cai__free((char *)j->msgs[i].content);
        }
        cai__free(j->msgs);
    }
    if (j->stop) {
        for (int i = 0; i < j->params.n_stop; i++)
            cai__free(j->stop[i]);
        cai__free(j->stop);
    }
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    cai__free(j);
}

int cai_job_start(struct cai_job **out, struct cai_session *s, const char *prompt,
                  const struct cai_chat_msg *msgs, size_t n_msgs, const struct cai_gen_params *p)
{
    *out = NULL;
    if ((prompt == NULL) == (msgs == NULL))
        return CAI_EINVAL; /* exactly one of prompt and msgs */
    struct cai_job *j = cai__calloc(1, sizeof(*j));
    if (!j)
        return CAI_ENOMEM;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->s = s;
    j->params = p ? *p : cai_gen_params_default();
    bool ok = true;
    if (prompt) {
        j->prompt = cai__strdup(prompt);
        ok = j->prompt != NULL;
    } else {
        j->msgs = cai__calloc(n_msgs ? n_msgs : 1, sizeof(*j->msgs));
        ok = j->msgs != NULL;
        j->n_msgs = ok ? n_msgs : 0;
        for (size_t i = 0; ok && i < n_msgs; i++) {
            j->msgs[i].role = cai__strdup(msgs[i].role ? msgs[i].role : "");
            j->msgs[i].content = cai__strdup(msgs[i].content ? msgs[i].content : "");
            ok = j->msgs[i].role && j->msgs[i].content;
        }
    }
    if (ok && j->params.stop && j->params.n_stop > 0) {
        j->stop = cai__calloc((size_t)j->params.n_stop, sizeof(char *));
        ok = j->stop != NULL;
        for (int i = 0; ok && i < j->params.n_stop; i++)
            ok = (j->stop[i] = cai__strdup(j->params.stop[i])) != NULL;
        if (j->stop)
            j->params.stop = (const char *const *)j->stop;
    } else {
        j->params.stop = NULL;
        j->params.n_stop = 0;
    }
    if (!ok) {
        job_destroy(j);
        return CAI_ENOMEM;
    }
    __atomic_store_n(&s->cancel, 0, __ATOMIC_RELAXED);
    if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
        job_destroy(j);
        return CAI_ENOMEM;
    }
    j->started = true;
    *out = j;
    return 0;
}

int cai_job_next(struct cai_job *j, struct cai_piece *out, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&j->mu);
    cai__free(j->current);
    j->current = NULL;
    while (!j->head && !j->finished) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&j->cv, &j->mu);
        } else if (pthread_cond_timedwait(&j->cv, &j->mu, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&j->mu);
            return CAI_ETIMEOUT;
        }
    }
    if (j->head) {
        struct qpiece *q = j->head;
        j->head = q->next;
        if (!j->head)
            j->tail = NULL;
        j->current = q;
        pthread_mutex_unlock(&j->mu);
        out->text = q->text;
        out->n_bytes = q->n_bytes;
        out->token = q->token;
        return 1;
    }
    int st = j->status;
    pthread_mutex_unlock(&j->mu);
    return st < 0 ? st : 0;
}

void cai_job_cancel(struct cai_job *j)
{
    if (j)
        __atomic_store_n(&j->s->cancel, 1, __ATOMIC_RELAXED);
}

int cai_job_result(struct cai_job *j, struct cai_gen_result *res)
{
    pthread_mutex_lock(&j->mu);
    bool fin = j->finished;
    int st = j->status;
    if (fin && res)
        *res = j->res;
    pthread_mutex_unlock(&j->mu);
    return fin ? st : CAI_ESTATE;
}

void cai_job_free(struct cai_job *j)
{
    if (!j)
        return;
    if (j->started) {
        __atomic_store_n(&j->s->cancel, 1, __ATOMIC_RELAXED);
        pthread_join(j->thread, NULL);
        __atomic_store_n(&j->s->cancel, 0, __ATOMIC_RELAXED);
    }
    job_destroy(j);
}
