/* api.c: OpenAI and Ollama request parsing and response bodies (see api.h).
 *
 * Field handling follows the two APIs' documentation: absent and null mean
 * "use the default", numbers must be finite and in range, strings must not
 * contain NUL (the engine takes C strings), and features the engine does not
 * have (n > 1, tools, images, logprobs, structured output, suffixes) are
 * refused with a message instead of being silently ignored. Sampling
 * parameters are finally checked by the sampler's own validator, so a request
 * is answered before any work starts. */
#include "api.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "../base/json.h"
#include "../sample/sample.h"
#include "http.h"

/* ---- field access ------------------------------------------------------ */

CAI__PRINTF(2, 3)
static int bad(struct cai_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cai__vfail(err, CAI_EINVAL, fmt, ap);
    va_end(ap);
    return rc;
}

/* The member `key` of obj, with null treated as absent. */
static const struct cai_json_node *field(const struct cai_json *j, const struct cai_json_node *obj,
                                         const char *key)
{
    const struct cai_json_node *v = cai__json_get(j, obj, key);
    return v && v->type != CAI_JSON_NULL ? v : NULL;
}

/* Copies a JSON string, refusing embedded NUL bytes. */
static int copy_str(const struct cai_json_node *v, const char *what, char **out,
                    struct cai_error *err)
{
    if (!v || v->type != CAI_JSON_STRING)
        return bad(err, "%s must be a string", what);
    if (memchr(v->s, '\0', v->len))
        return bad(err, "%s contains a NUL character", what);
    *out = cai__strndup(v->s, v->len);
    return *out ? 0 : cai__fail(err, CAI_ENOMEM, "out of memory");
}

/* 1 and *out when present, 0 when absent, < 0 when not a number in [lo, hi]. */
static int get_num(const struct cai_json *j, const struct cai_json_node *obj, const char *key,
                   double lo, double hi, double *out, struct cai_error *err)
{
    const struct cai_json_node *v = field(j, obj, key);
    if (!v)
        return 0;
    double x;
    if (!cai__json_f64(v, &x) || !isfinite(x))
        return bad(err, "%s must be a number", key);
    if (x < lo || x > hi)
        return bad(err, "%s must be in [%g, %g]", key, lo, hi);
    *out = x;
    return 1;
}

/* Like get_num for integers; an integral floating-point literal (16.0) counts. */
static int get_int(const struct cai_json *j, const struct cai_json_node *obj, const char *key,
                   int64_t lo, int64_t hi, int64_t *out, struct cai_error *err)
{
    const struct cai_json_node *v = field(j, obj, key);
    if (!v)
        return 0;
    int64_t x;
    double d;
    if (cai__json_i64(v, &x)) {
        /* exact */
    } else if (cai__json_f64(v, &d) && isfinite(d) && d == floor(d) && d >= -9.2e18 &&
               d <= 9.2e18) {
        x = (int64_t)d;
    } else if (v->type == CAI_JSON_NUMBER && v->is_int && !v->neg) {
        x = INT64_MAX; /* a huge positive integer: clamp, the range check decides */
    } else {
        return bad(err, "%s must be an integer", key);
    }
    if (x < lo || x > hi)
        return bad(err, "%s must be in [%lld, %lld]", key, (long long)lo, (long long)hi);
    *out = x;
    return 1;
}

static int get_bool(const struct cai_json *j, const struct cai_json_node *obj, const char *key,
                    bool *out, struct cai_error *err)
{
    const struct cai_json_node *v = field(j, obj, key);
    if (!v)
        return 0;
    if (!cai__json_bool(v, out))
        return bad(err, "%s must be true or false", key);
    return 1;
}

/* True when a field is present with a "non-empty" value: a non-empty string
 * or array, an object with members, true, or a nonzero number. */
static bool present(const struct cai_json *j, const struct cai_json_node *obj, const char *key)
{
    const struct cai_json_node *v = field(j, obj, key);
    if (!v)
        return false;
    switch (v->type) {
    case CAI_JSON_FALSE: return false;
    case CAI_JSON_STRING: return v->len > 0;
    case CAI_JSON_ARRAY:
    case CAI_JSON_OBJECT: return v->n > 0;
    case CAI_JSON_NUMBER: return v->num != 0.0;
    default: return true;
    }
}

/* ---- request pieces ---------------------------------------------------- */

static int add_stop(struct cai__api_request *r, const struct cai_json_node *v,
                    struct cai_error *err)
{
    if (v->type != CAI_JSON_STRING)
        return bad(err, "stop must be a string or an array of strings");
    if (v->len == 0)
        return 0; /* an empty stop string would stop at once: ignore it */
    if (v->len > CAI__API_MAX_STOP_LEN)
        return bad(err, "a stop string is longer than %d bytes", CAI__API_MAX_STOP_LEN);
    if (r->n_stop >= CAI__API_MAX_STOP)
        return bad(err, "at most %d stop strings", CAI__API_MAX_STOP);
    int rc = copy_str(v, "stop", &r->stop[r->n_stop], err);
    if (rc < 0)
        return rc;
    r->n_stop++;
    return 0;
}

static int parse_stop(const struct cai_json *j, const struct cai_json_node *obj,
                      struct cai__api_request *r, struct cai_error *err)
{
    const struct cai_json_node *v = field(j, obj, "stop");
    if (!v)
        return 0;
    if (v->type == CAI_JSON_STRING)
        return add_stop(r, v, err);
    if (v->type != CAI_JSON_ARRAY)
        return bad(err, "stop must be a string or an array of strings");
    for (const struct cai_json_node *e = cai__json_first(j, v); e; e = cai__json_next(j, v, e)) {
        int rc = add_stop(r, e, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sampling fields of `o`: the request object (OpenAI) or "options" (Ollama). */
static int parse_sampling(const struct cai_json *j, const struct cai_json_node *o, bool ollama,
                          struct cai__api_request *r, struct cai_error *err)
{
    struct cai_sampling *s = &r->gp.sampling;
    double x;
    int64_t n;
    int rc;
    if ((rc = get_num(j, o, "temperature", 0.0, 100.0, &x, err)) < 0)
        return rc;
    if (rc)
        s->temp = (float)x;
    if ((rc = get_num(j, o, "top_p", 0.0, 1.0, &x, err)) < 0)
        return rc;
    if (rc) {
        if (x <= 0.0) /* top_p 0 keeps only the most likely token */
            s->temp = 0.0f;
        else
            s->top_p = (float)x;
    }
    if ((rc = get_num(j, o, "min_p", 0.0, 1.0, &x, err)) < 0)
        return rc;
    if (rc)
        s->min_p = (float)x;
    if ((rc = get_int(j, o, "top_k", 0, INT32_MAX, &n, err)) < 0)
        return rc;
    if (rc)
        s->top_k = (int)n;
    if ((rc = get_num(j, o, "presence_penalty", -2.0, 2.0, &x, err)) < 0)
        return rc;
    if (rc)
        s->presence_penalty = (float)x;
    if ((rc = get_num(j, o, "frequency_penalty", -2.0, 2.0, &x, err)) < 0)
        return rc;
    if (rc)
        s->frequency_penalty = (float)x;
    if ((rc = get_num(j, o, "repeat_penalty", 0.0, 100.0, &x, err)) < 0)
        return rc;
    if (rc)
        s->repeat_penalty = (float)x;
    if ((rc = get_int(j, o, "repeat_last_n", -1, 1 << 20, &n, err)) < 0)
        return rc;
    if (rc)
        s->penalty_last_n = n < 0 ? 1 << 20 : (int)n; /* Ollama: -1 = the whole context */
    if ((rc = get_int(j, o, "seed", INT64_MIN, INT64_MAX, &n, err)) < 0)
        return rc;
    if (rc && n >= 0) { /* Ollama: -1 = random */
        s->seed = (uint64_t)n;
        r->seed_set = true;
    }
    const char *limit = ollama ? "num_predict" : "max_tokens";
    if ((rc = get_int(j, o, limit, ollama ? INT64_MIN : 1, INT64_MAX, &n, err)) < 0)
        return rc;
    if (!rc && !ollama) {
        limit = "max_completion_tokens";
        if ((rc = get_int(j, o, limit, 1, INT64_MAX, &n, err)) < 0)
            return rc;
    }
    if (rc) /* Ollama: -1 and -2 (and 0) mean no limit */
        r->gp.max_tokens = n <= 0 ? 0 : n > INT32_MAX ? INT32_MAX : (int)n;
    if ((rc = parse_stop(j, o, r, err)) < 0)
        return rc;
    struct cai_error verr = {0};
    if (cai__sampling_validate(s, &verr) < 0)
        return bad(err, "%s", verr.msg);
    return 0;
}

static const char *map_role(const struct cai_json_node *v)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    for (size_t i = 0; i < CAI_ARRAY_LEN(roles); i++)
        if (cai__json_str_eq(v, roles[i]))
            return roles[i];
    if (cai__json_str_eq(v, "developer")) /* OpenAI's newer name for system */
        return "system";
    return NULL;
}

/* OpenAI content: a string, null, or an array of parts of which only text
 * parts are supported (joined with newlines). */
static int oai_content(const struct cai_json *j, const struct cai_json_node *v, char **out,
                       struct cai_error *err)
{
    if (!v || v->type == CAI_JSON_NULL) {
        *out = cai__strdup("");
        return *out ? 0 : cai__fail(err, CAI_ENOMEM, "out of memory");
    }
    if (v->type == CAI_JSON_STRING)
        return copy_str(v, "message content", out, err);
    if (v->type != CAI_JSON_ARRAY)
        return bad(err, "message content must be a string or an array of parts");
    struct cai__buf b;
    cai__buf_init(&b, (size_t)1 << 30);
    int rc = 0;
    bool first = true;
    for (const struct cai_json_node *p = cai__json_first(j, v); p && !rc;
         p = cai__json_next(j, v, p)) {
        const struct cai_json_node *type = cai__json_get(j, p, "type");
        const struct cai_json_node *text = cai__json_get(j, p, "text");
        if (p->type != CAI_JSON_OBJECT || !cai__json_str_eq(type, "text")) {
            rc = bad(err, "only text content parts are supported");
        } else if (!text || text->type != CAI_JSON_STRING) {
            rc = bad(err, "a text content part needs a \"text\" string");
        } else if (memchr(text->s, '\0', text->len)) {
            rc = bad(err, "message content contains a NUL character");
        } else {
            if (!first)
                cai__buf_putc(&b, '\n');
            cai__buf_put(&b, text->s, text->len);
            first = false;
        }
    }
    if (!rc && !cai__buf_putc(&b, '\0'))
        rc = cai__fail(err, CAI_ENOMEM, "out of memory");
    if (rc) {
        cai__buf_free(&b);
        return rc;
    }
    *out = b.data; /* taken over; NUL-terminated */
    return 0;
}

static int parse_messages(const struct cai_json *j, const struct cai_json_node *v, bool ollama,
                          struct cai__api_request *r, struct cai_error *err)
{
    if (!v)
        return ollama ? 0 : bad(err, "messages is required");
    if (v->type != CAI_JSON_ARRAY)
        return bad(err, "messages must be an array");
    if (v->n == 0)
        return ollama ? 0 : bad(err, "messages must not be empty");
    r->msgs = cai__calloc(v->n, sizeof(*r->msgs));
    if (!r->msgs)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    for (const struct cai_json_node *m = cai__json_first(j, v); m; m = cai__json_next(j, v, m)) {
        if (m->type != CAI_JSON_OBJECT)
            return bad(err, "messages[%zu] must be an object", r->n_msgs);
        const char *role = map_role(cai__json_get(j, m, "role"));
        if (!role)
            return bad(err, "messages[%zu].role must be system, user, assistant or tool",
                       r->n_msgs);
        if (present(j, m, "images"))
            return bad(err, "images are not supported");
        char *content = NULL;
        const struct cai_json_node *c = cai__json_get(j, m, "content");
        int rc;
        if (!ollama)
            rc = oai_content(j, c, &content, err);
        else if (c && c->type != CAI_JSON_NULL)
            rc = copy_str(c, "message content", &content, err);
        else
            rc = (content = cai__strdup("")) ? 0 : cai__fail(err, CAI_ENOMEM, "out of memory");
        if (rc < 0)
            return rc;
        r->msgs[r->n_msgs].role = role;
        r->msgs[r->n_msgs].content = content;
        r->n_msgs++;
    }
    return 0;
}

/* ---- requests ---------------------------------------------------------- */

static int parse_oai(const struct cai_json *j, const struct cai_json_node *o,
                     struct cai__api_request *r, struct cai_error *err)
{
    int64_t n;
    int rc;
    if ((rc = get_int(j, o, "n", 1, 1, &n, err)) < 0)
        return bad(err, "only n = 1 is supported");
    if ((rc = get_bool(j, o, "stream", &r->stream, err)) < 0)
        return rc;
    const struct cai_json_node *so = field(j, o, "stream_options");
    if (so && so->type != CAI_JSON_OBJECT)
        return bad(err, "stream_options must be an object");
    if (so && (rc = get_bool(j, so, "include_usage", &r->include_usage, err)) < 0)
        return rc;
    if (present(j, o, "logprobs") || present(j, o, "top_logprobs"))
        return bad(err, "logprobs are not supported");
    if (present(j, o, "tools") || present(j, o, "functions"))
        return bad(err, "tools are not supported");
    if (present(j, o, "logit_bias"))
        return bad(err, "logit_bias is not supported");
    const struct cai_json_node *rf = field(j, o, "response_format");
    if (rf) {
        const struct cai_json_node *type = cai__json_get(j, rf, "type");
        if (cai__json_str_eq(type, "json_object"))
            r->gp.json = true;
        else if (!cai__json_str_eq(type, "text"))
            return bad(err, "response_format: type must be \"text\" or \"json_object\" "
                       "(json_schema is not supported)");
    }
    if (r->kind == CAI_API_OAI_CHAT)
        return parse_messages(j, field(j, o, "messages"), false, r, err);

    if (present(j, o, "echo"))
        return bad(err, "echo is not supported");
    if (present(j, o, "suffix"))
        return bad(err, "suffix is not supported");
    if ((rc = get_int(j, o, "best_of", 1, 1, &n, err)) < 0)
        return bad(err, "only best_of = 1 is supported");
    const struct cai_json_node *p = field(j, o, "prompt");
    if (p && p->type == CAI_JSON_ARRAY) {
        const struct cai_json_node *e = cai__json_first(j, p);
        if (p->n != 1 || e->type != CAI_JSON_STRING)
            return bad(err, "prompt must be a string (or an array of one string)");
        p = e;
    }
    if (!p)
        return bad(err, "prompt is required");
    return copy_str(p, "prompt", &r->prompt, err);
}

static int parse_ollama(const struct cai_json *j, const struct cai_json_node *o,
                        struct cai__api_request *r, struct cai_error *err)
{
    int rc;
    r->stream = true;
    if ((rc = get_bool(j, o, "stream", &r->stream, err)) < 0)
        return rc;
    const struct cai_json_node *fmt = field(j, o, "format");
    if (fmt && cai__json_str_eq(fmt, "json"))
        r->gp.json = true;
    else if (fmt && !(fmt->type == CAI_JSON_STRING && fmt->len == 0))
        return bad(err, "format must be \"json\" (JSON schemas are not supported)");
    if (present(j, o, "images"))
        return bad(err, "images are not supported");
    if (present(j, o, "tools"))
        return bad(err, "tools are not supported");
    if (present(j, o, "template"))
        return bad(err, "custom templates are not supported; the model's own is used");
    const struct cai_json_node *opts = field(j, o, "options");
    if (opts && opts->type != CAI_JSON_OBJECT)
        return bad(err, "options must be an object");
    if (opts && (rc = parse_sampling(j, opts, true, r, err)) < 0)
        return rc;
    if (r->kind == CAI_API_OLLAMA_CHAT) {
        if ((rc = parse_messages(j, field(j, o, "messages"), true, r, err)) < 0)
            return rc;
        r->load_only = r->n_msgs == 0;
        return 0;
    }

    if (present(j, o, "suffix"))
        return bad(err, "suffix (fill-in-the-middle) is not supported");
    bool raw = false;
    if ((rc = get_bool(j, o, "raw", &raw, err)) < 0)
        return rc;
    char *prompt = NULL, *system = NULL;
    const struct cai_json_node *p = field(j, o, "prompt"), *sys = field(j, o, "system");
    if (p && (rc = copy_str(p, "prompt", &prompt, err)) < 0)
        return rc;
    if (sys && (rc = copy_str(sys, "system", &system, err)) < 0) {
        cai__free(prompt);
        return rc;
    }
    if (!prompt || !prompt[0]) {
        r->load_only = true; /* Ollama loads the model and answers "load" */
        cai__free(prompt);
        cai__free(system);
        return 0;
    }
    if (raw) {
        cai__free(system);
        r->prompt = prompt;
        r->gp.parse_special = true; /* a raw prompt spells the template itself */
        return 0;
    }
    size_t n = system && system[0] ? 2 : 1;
    r->msgs = cai__calloc(n, sizeof(*r->msgs));
    if (!r->msgs) {
        cai__free(prompt);
        cai__free(system);
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    }
    if (n == 2) {
        r->msgs[r->n_msgs].role = "system";
        r->msgs[r->n_msgs++].content = system;
        system = NULL;
    }
    cai__free(system);
    r->msgs[r->n_msgs].role = "user";
    r->msgs[r->n_msgs++].content = prompt;
    return 0;
}

/* Embedding requests: OpenAI {"input": string | [string], "encoding_format":
 * "float"}, Ollama /api/embed {"input": string | [string]}, /api/embeddings
 * {"prompt": string}. */
static int parse_embed(const struct cai_json *j, const struct cai_json_node *o,
                       struct cai__api_request *r, struct cai_error *err)
{
    const char *key = r->kind == CAI_API_OLLAMA_EMBEDDINGS ? "prompt" : "input";
    const struct cai_json_node *in = field(j, o, key);
    if (r->kind == CAI_API_OAI_EMBED) {
        const struct cai_json_node *ef = field(j, o, "encoding_format");
        if (ef && !cai__json_str_eq(ef, "float"))
            return bad(err, "encoding_format: only \"float\" is supported");
        if (present(j, o, "dimensions"))
            return bad(err, "dimensions is not supported");
    }
    if (!in)
        return bad(err, "%s is required", key);
    size_t n = in->type == CAI_JSON_ARRAY ? in->n : 1;
    if (in->type != CAI_JSON_STRING && in->type != CAI_JSON_ARRAY)
        return bad(err, "%s must be a string%s", key,
                   r->kind == CAI_API_OLLAMA_EMBEDDINGS ? "" : " or an array of strings");
    if (in->type == CAI_JSON_ARRAY && r->kind == CAI_API_OLLAMA_EMBEDDINGS)
        return bad(err, "prompt must be a string");
    if (n == 0 || n > CAI__API_MAX_INPUTS)
        return bad(err, "%s: between 1 and %d texts", key, CAI__API_MAX_INPUTS);
    r->inputs = cai__calloc(n, sizeof(*r->inputs));
    if (!r->inputs)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    const struct cai_json_node *e = in->type == CAI_JSON_ARRAY ? cai__json_first(j, in) : in;
    for (size_t i = 0; i < n; i++) {
        if (e->type != CAI_JSON_STRING)
            return bad(err, "%s: every element must be a string (token arrays are not "
                       "supported)", key);
        int rc = copy_str(e, key, &r->inputs[r->n_inputs], err);
        if (rc < 0)
            return rc;
        r->n_inputs++;
        if (in->type == CAI_JSON_ARRAY)
            e = cai__json_next(j, in, e);
    }
    return 0;
}

int cai__api_parse(struct cai__api_request *out, int kind, const char *body, size_t n_bytes,
                   int default_max_tokens, struct cai_error *err)
{
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    out->gp = cai_gen_params_default();
    out->gp.max_tokens = default_max_tokens > 0 ? default_max_tokens : 0;
    struct cai_json *j = NULL;
    struct cai_error jerr = {0};
    if (cai__json_parse(&j, body, n_bytes, CAI__API_MAX_DEPTH, "request body", &jerr) < 0)
        return bad(err, "invalid JSON: %s", jerr.msg);
    const struct cai_json_node *o = cai__json_root(j);
    int rc;
    if (o->type != CAI_JSON_OBJECT) {
        rc = bad(err, "the request body must be a JSON object");
    } else {
        const struct cai_json_node *model = field(j, o, "model");
        rc = model ? copy_str(model, "model", &out->model, err) : 0;
        if (!rc && cai__api_is_embed(kind))
            rc = parse_embed(j, o, out, err);
        else if (!rc)
            rc = cai__api_is_ollama(kind) ? parse_ollama(j, o, out, err)
                                          : parse_oai(j, o, out, err);
        if (!rc && !cai__api_is_ollama(kind) && !cai__api_is_embed(kind))
            rc = parse_sampling(j, o, false, out, err);
    }
    cai__json_free(j);
    if (rc < 0) {
        cai__api_request_free(out);
        return rc;
    }
    out->gp.stop = out->n_stop ? (const char *const *)out->stop : NULL;
    out->gp.n_stop = out->n_stop;
    return 0;
}

void cai__api_request_free(struct cai__api_request *r)
{
    if (!r)
        return;
    cai__free(r->model);
    cai__free(r->prompt);
    for (size_t i = 0; r->msgs && i < r->n_msgs; i++)
        cai__free((char *)r->msgs[i].content); /* roles are static strings */
    cai__free(r->msgs);
    for (int i = 0; i < r->n_stop; i++)
        cai__free(r->stop[i]);
    for (int i = 0; r->inputs && i < r->n_inputs; i++)
        cai__free(r->inputs[i]);
    cai__free(r->inputs);
    memset(r, 0, sizeof(*r));
}

/* ---- responses --------------------------------------------------------- */

void cai__api_timestamp(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (!gmtime_r(&ts.tv_sec, &tm)) {
        snprintf(out, 40, "1970-01-01T00:00:00Z");
        return;
    }
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09ldZ", (long)ts.tv_nsec);
}

const char *cai__api_finish_reason(int stop_reason)
{
    return stop_reason == CAI_STOP_MAX_TOKENS || stop_reason == CAI_STOP_CTX_FULL ? "length"
                                                                                 : "stop";
}

static void oai_head(struct cai__jw *w, const struct cai__api_reply *r, const char *object)
{
    cai__jw_obj(w);
    cai__jw_key(w, "id");
    cai__jw_str(w, r->id);
    cai__jw_key(w, "object");
    cai__jw_str(w, object);
    cai__jw_key(w, "created");
    cai__jw_int(w, r->created);
    cai__jw_key(w, "model");
    cai__jw_str(w, r->model);
}

static void oai_usage(struct cai__jw *w, const struct cai_gen_result *res)
{
    cai__jw_key(w, "usage");
    cai__jw_obj(w);
    cai__jw_key(w, "prompt_tokens");
    cai__jw_int(w, res->n_prompt);
    cai__jw_key(w, "completion_tokens");
    cai__jw_int(w, res->n_gen);
    cai__jw_key(w, "total_tokens");
    cai__jw_int(w, (int64_t)res->n_prompt + res->n_gen);
    cai__jw_key(w, "prompt_tokens_details");
    cai__jw_obj(w);
    cai__jw_key(w, "cached_tokens");
    cai__jw_int(w, res->n_reused);
    cai__jw_obj_end(w);
    cai__jw_obj_end(w);
    /* llama.cpp's timings object, for tools that read it. */
    cai__jw_key(w, "timings");
    cai__jw_obj(w);
    cai__jw_key(w, "prompt_n");
    cai__jw_int(w, res->n_prompt - res->n_reused);
    cai__jw_key(w, "prompt_ms");
    cai__jw_num(w, (double)res->t_prompt_ns / 1e6);
    cai__jw_key(w, "predicted_n");
    cai__jw_int(w, res->n_gen);
    cai__jw_key(w, "predicted_ms");
    cai__jw_num(w, (double)res->t_gen_ns / 1e6);
    cai__jw_key(w, "predicted_per_second");
    cai__jw_num(w, res->t_gen_ns > 0 && res->n_gen > 1
                       ? (double)(res->n_gen - 1) / ((double)res->t_gen_ns / 1e9)
                       : 0.0);
    cai__jw_obj_end(w);
}

/* One OpenAI stream chunk with optional text and finish reason. */
static void oai_chunk(struct cai__jw *w, struct cai__api_reply *r, const char *text, size_t n,
                      const char *finish)
{
    bool chat = r->kind == CAI_API_OAI_CHAT;
    oai_head(w, r, chat ? "chat.completion.chunk" : "text_completion");
    cai__jw_key(w, "choices");
    cai__jw_arr(w);
    cai__jw_obj(w);
    cai__jw_key(w, "index");
    cai__jw_int(w, 0);
    if (chat) {
        cai__jw_key(w, "delta");
        cai__jw_obj(w);
        if (!r->sent_first) {
            cai__jw_key(w, "role");
            cai__jw_str(w, "assistant");
            r->sent_first = true;
        }
        if (text) {
            cai__jw_key(w, "content");
            cai__jw_strn(w, text, n);
        }
        cai__jw_obj_end(w);
    } else {
        cai__jw_key(w, "text");
        cai__jw_strn(w, text ? text : "", text ? n : 0);
        cai__jw_key(w, "logprobs");
        cai__jw_null(w);
    }
    cai__jw_key(w, "finish_reason");
    cai__jw_str(w, finish);
    cai__jw_obj_end(w);
    cai__jw_arr_end(w);
    cai__jw_obj_end(w);
}

static void ollama_head(struct cai__jw *w, const struct cai__api_reply *r)
{
    char ts[40];
    cai__api_timestamp(ts);
    cai__jw_obj(w);
    cai__jw_key(w, "model");
    cai__jw_str(w, r->model);
    cai__jw_key(w, "created_at");
    cai__jw_str(w, ts);
}

static void ollama_text(struct cai__jw *w, const struct cai__api_reply *r, const char *text,
                        size_t n)
{
    if (r->kind == CAI_API_OLLAMA_CHAT) {
        cai__jw_key(w, "message");
        cai__jw_obj(w);
        cai__jw_key(w, "role");
        cai__jw_str(w, "assistant");
        cai__jw_key(w, "content");
        cai__jw_strn(w, text, n);
        cai__jw_obj_end(w);
    } else {
        cai__jw_key(w, "response");
        cai__jw_strn(w, text, n);
    }
}

static void ollama_done(struct cai__jw *w, const struct cai__api_reply *r, const char *text,
                        size_t n, const struct cai_gen_result *res, int64_t total_ns)
{
    ollama_head(w, r);
    ollama_text(w, r, text, n);
    cai__jw_key(w, "done");
    cai__jw_bool(w, true);
    cai__jw_key(w, "done_reason");
    cai__jw_str(w, cai__api_finish_reason(res->stop_reason));
    cai__jw_key(w, "total_duration");
    cai__jw_int(w, total_ns);
    cai__jw_key(w, "load_duration");
    cai__jw_int(w, 0);
    cai__jw_key(w, "prompt_eval_count");
    cai__jw_int(w, res->n_prompt);
    cai__jw_key(w, "prompt_eval_duration");
    cai__jw_int(w, res->t_prompt_ns);
    cai__jw_key(w, "eval_count");
    cai__jw_int(w, res->n_gen);
    cai__jw_key(w, "eval_duration");
    cai__jw_int(w, res->t_gen_ns);
    cai__jw_obj_end(w);
}

/* Frames the JSON in r->scratch as an event and appends it to out. */
static bool emit(struct cai__buf *out, struct cai__api_reply *r, const struct cai__jw *w)
{
    if (!cai__jw_ok(w)) {
        out->failed = true;
        return false;
    }
    if (cai__api_is_ollama(r->kind)) {
        cai__buf_putc(&r->scratch, '\n');
        return cai__http_write_chunk(out, r->chunked, r->scratch.data, r->scratch.n);
    }
    return cai__http_write_sse(out, r->chunked, r->scratch.data, r->scratch.n);
}

static struct cai__jw *start(struct cai__api_reply *r, struct cai__jw *w)
{
    if (!r->scratch.max)
        cai__buf_init(&r->scratch, (size_t)64 << 20);
    cai__buf_reset(&r->scratch);
    cai__jw_init(w, &r->scratch);
    return w;
}

bool cai__api_stream_piece(struct cai__buf *out, struct cai__api_reply *r, const char *text,
                           size_t n_bytes)
{
    struct cai__jw w;
    start(r, &w);
    if (cai__api_is_ollama(r->kind)) {
        ollama_head(&w, r);
        ollama_text(&w, r, text, n_bytes);
        cai__jw_key(&w, "done");
        cai__jw_bool(&w, false);
        cai__jw_obj_end(&w);
    } else {
        oai_chunk(&w, r, text, n_bytes, NULL);
    }
    return emit(out, r, &w);
}

bool cai__api_stream_end(struct cai__buf *out, struct cai__api_reply *r,
                         const struct cai_gen_result *res, int64_t total_ns)
{
    struct cai__jw w;
    start(r, &w);
    if (cai__api_is_ollama(r->kind)) {
        ollama_done(&w, r, "", 0, res, total_ns);
        emit(out, r, &w);
    } else {
        oai_chunk(&w, r, NULL, 0, cai__api_finish_reason(res->stop_reason));
        emit(out, r, &w);
        if (r->include_usage) {
            start(r, &w);
            oai_head(&w, r, r->kind == CAI_API_OAI_CHAT ? "chat.completion.chunk"
                                                       : "text_completion");
            cai__jw_key(&w, "choices");
            cai__jw_arr(&w);
            cai__jw_arr_end(&w);
            oai_usage(&w, res);
            cai__jw_obj_end(&w);
            emit(out, r, &w);
        }
        cai__http_write_sse(out, r->chunked, "[DONE]", 6);
    }
    return cai__http_write_last_chunk(out, r->chunked);
}

bool cai__api_stream_error(struct cai__buf *out, struct cai__api_reply *r, const char *message)
{
    struct cai__jw w;
    start(r, &w);
    cai__jw_obj(&w);
    cai__jw_key(&w, "error");
    if (cai__api_is_ollama(r->kind)) {
        cai__jw_str(&w, message);
    } else {
        cai__jw_obj(&w);
        cai__jw_key(&w, "message");
        cai__jw_str(&w, message);
        cai__jw_key(&w, "type");
        cai__jw_str(&w, "server_error");
        cai__jw_obj_end(&w);
    }
    cai__jw_obj_end(&w);
    emit(out, r, &w);
    return cai__http_write_last_chunk(out, r->chunked);
}

bool cai__api_final(struct cai__buf *out, struct cai__api_reply *r, const char *text,
                    size_t n_bytes, const struct cai_gen_result *res, int64_t total_ns)
{
    struct cai__jw w;
    cai__jw_init(&w, out);
    if (cai__api_is_ollama(r->kind)) {
        ollama_done(&w, r, text, n_bytes, res, total_ns);
        return cai__jw_ok(&w);
    }
    bool chat = r->kind == CAI_API_OAI_CHAT;
    oai_head(&w, r, chat ? "chat.completion" : "text_completion");
    cai__jw_key(&w, "choices");
    cai__jw_arr(&w);
    cai__jw_obj(&w);
    cai__jw_key(&w, "index");
    cai__jw_int(&w, 0);
    if (chat) {
        cai__jw_key(&w, "message");
        cai__jw_obj(&w);
        cai__jw_key(&w, "role");
        cai__jw_str(&w, "assistant");
        cai__jw_key(&w, "content");
        cai__jw_strn(&w, text, n_bytes);
        cai__jw_obj_end(&w);
    } else {
        cai__jw_key(&w, "text");
        cai__jw_strn(&w, text, n_bytes);
        cai__jw_key(&w, "logprobs");
        cai__jw_null(&w);
    }
    cai__jw_key(&w, "finish_reason");
    cai__jw_str(&w, cai__api_finish_reason(res->stop_reason));
    cai__jw_obj_end(&w);
    cai__jw_arr_end(&w);
    oai_usage(&w, res);
    cai__jw_obj_end(&w);
    return cai__jw_ok(&w);
}

static void embed_vec(struct cai__jw *w, const float *v, int dim)
{
    cai__jw_arr(w);
    for (int i = 0; i < dim; i++)
        cai__jw_num(w, (double)v[i]);
    cai__jw_arr_end(w);
}

bool cai__api_embed_final(struct cai__buf *out, const struct cai__api_reply *r, const float *vecs,
                          int n_vec, int dim, int64_t n_tokens, int64_t total_ns)
{
    struct cai__jw w;
    cai__jw_init(&w, out);
    cai__jw_obj(&w);
    if (r->kind == CAI_API_OLLAMA_EMBEDDINGS) {
        cai__jw_key(&w, "embedding");
        embed_vec(&w, vecs, n_vec > 0 ? dim : 0);
    } else if (r->kind == CAI_API_OLLAMA_EMBED) {
        cai__jw_key(&w, "model");
        cai__jw_str(&w, r->model);
        cai__jw_key(&w, "embeddings");
        cai__jw_arr(&w);
        for (int i = 0; i < n_vec; i++)
            embed_vec(&w, vecs + (size_t)i * (size_t)dim, dim);
        cai__jw_arr_end(&w);
        cai__jw_key(&w, "total_duration");
        cai__jw_int(&w, total_ns);
        cai__jw_key(&w, "load_duration");
        cai__jw_int(&w, 0);
        cai__jw_key(&w, "prompt_eval_count");
        cai__jw_int(&w, n_tokens);
    } else {
        cai__jw_key(&w, "object");
        cai__jw_str(&w, "list");
        cai__jw_key(&w, "data");
        cai__jw_arr(&w);
        for (int i = 0; i < n_vec; i++) {
            cai__jw_obj(&w);
            cai__jw_key(&w, "object");
            cai__jw_str(&w, "embedding");
            cai__jw_key(&w, "index");
            cai__jw_int(&w, i);
            cai__jw_key(&w, "embedding");
            embed_vec(&w, vecs + (size_t)i * (size_t)dim, dim);
            cai__jw_obj_end(&w);
        }
        cai__jw_arr_end(&w);
        cai__jw_key(&w, "model");
        cai__jw_str(&w, r->model);
        cai__jw_key(&w, "usage");
        cai__jw_obj(&w);
        cai__jw_key(&w, "prompt_tokens");
        cai__jw_int(&w, n_tokens);
        cai__jw_key(&w, "total_tokens");
        cai__jw_int(&w, n_tokens);
        cai__jw_obj_end(&w);
    }
    cai__jw_obj_end(&w);
    return cai__jw_ok(&w);
}

bool cai__api_ollama_load(struct cai__buf *out, const struct cai__api_reply *r)
{
    struct cai__jw w;
    cai__jw_init(&w, out);
    ollama_head(&w, r);
    ollama_text(&w, r, "", 0);
    cai__jw_key(&w, "done");
    cai__jw_bool(&w, true);
    cai__jw_key(&w, "done_reason");
    cai__jw_str(&w, "load");
    cai__jw_obj_end(&w);
    return cai__jw_ok(&w) && cai__buf_putc(out, '\n');
}

bool cai__api_error(struct cai__buf *out, bool ollama, int status, const char *message)
{
    struct cai__jw w;
    cai__jw_init(&w, out);
    cai__jw_obj(&w);
    cai__jw_key(&w, "error");
    if (ollama) {
        cai__jw_str(&w, message);
    } else {
        const char *type = status == 404   ? "not_found_error"
                           : status == 403 ? "permission_error"
                           : status == 503 ? "unavailable_error"
                           : status >= 500 ? "server_error"
                                           : "invalid_request_error";
        cai__jw_obj(&w);
        cai__jw_key(&w, "message");
        cai__jw_str(&w, message);
        cai__jw_key(&w, "type");
        cai__jw_str(&w, type);
        cai__jw_key(&w, "code");
        cai__jw_int(&w, status);
        cai__jw_obj_end(&w);
    }
    cai__jw_obj_end(&w);
    return cai__jw_ok(&w);
}

/* ---- models ------------------------------------------------------------ */

void cai__api_model_describe(struct cai__api_model *out, const struct cai_model *m,
                             const char *path, const char *alias, int n_ctx_slot)
{
    memset(out, 0, sizeof(*out));
    struct cai_model_info info;
    cai_model_get_info(m, &info);
    out->n_params = info.n_params;
    out->n_ctx_train = info.n_ctx_train;
    out->n_embd = info.n_embd;
    out->n_layer = info.n_layer;
    out->n_head = info.n_head;
    out->n_head_kv = info.n_head_kv;
    out->n_vocab = info.n_vocab;
    out->n_ctx_slot = n_ctx_slot;
    out->chat_template = cai_model_chat_template(m);
    snprintf(out->family, sizeof(out->family), "%s", info.arch ? info.arch : "");

    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path ? path : "model";
    const char *dot = strrchr(base, '.');
    bool gguf = dot && strcasecmp(dot, ".gguf") == 0;
    snprintf(out->format, sizeof(out->format), "%s", gguf ? "gguf" : "coreaimodel");
    if (alias && alias[0]) {
        snprintf(out->name, sizeof(out->name), "%s", alias);
    } else {
        bool strip = dot && (gguf || strcasecmp(dot, ".coreaimodel") == 0) && dot > base;
        int len = (int)CAI_MIN(strip ? (size_t)(dot - base) : strlen(base), sizeof(out->name) - 1);
        snprintf(out->name, sizeof(out->name), "%.*s", len, base);
    }
    struct stat st;
    if (path && stat(path, &st) == 0) {
        out->file_bytes = (uint64_t)st.st_size;
        out->mtime = (int64_t)st.st_mtime;
    }
    double p = (double)info.n_params;
    if (p >= 1e9)
        snprintf(out->param_size, sizeof(out->param_size), "%.1fB", p / 1e9);
    else
        snprintf(out->param_size, sizeof(out->param_size), "%.0fM", p / 1e6);

    /* The weight type holding the most bytes names the quantization. */
    struct {
        const char *name;
        uint64_t    bytes;
    } types[32];
    int n_types = 0;
    const char *tname, *ttype;
    int64_t ne[4];
    int n_dims;
    uint64_t nb;
    for (int i = 0; i < (1 << 20) && cai_model_tensor(m, i, &tname, &ttype, ne, &n_dims, &nb);
         i++) {
        int k = 0;
        while (k < n_types && strcmp(types[k].name, ttype) != 0)
            k++;
        if (k == n_types) {
            if (n_types == (int)CAI_ARRAY_LEN(types))
                continue;
            types[n_types].name = ttype;
            types[n_types++].bytes = 0;
        }
        types[k].bytes += nb;
    }
    int best = -1;
    for (int k = 0; k < n_types; k++)
        if (best < 0 || types[k].bytes > types[best].bytes)
            best = k;
    if (best >= 0) {
        size_t i = 0;
        for (; types[best].name[i] && i + 1 < sizeof(out->quant); i++) {
            char c = types[best].name[i];
            out->quant[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
        }
        out->quant[i] = '\0';
    }
}

static void modified_at(const struct cai__api_model *m, char out[40])
{
    time_t t = (time_t)m->mtime;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 40, "1970-01-01T00:00:00Z");
}

/* Ollama names carry a tag; add ":latest" when the name has none. */
static void ollama_name(const struct cai__api_model *m, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", m->name, strchr(m->name, ':') ? "" : ":latest");
}

static void ollama_details(struct cai__jw *w, const struct cai__api_model *m)
{
    cai__jw_key(w, "details");
    cai__jw_obj(w);
    cai__jw_key(w, "parent_model");
    cai__jw_str(w, "");
    cai__jw_key(w, "format");
    cai__jw_str(w, m->format);
    cai__jw_key(w, "family");
    cai__jw_str(w, m->family);
    cai__jw_key(w, "families");
    cai__jw_arr(w);
    cai__jw_str(w, m->family);
    cai__jw_arr_end(w);
    cai__jw_key(w, "parameter_size");
    cai__jw_str(w, m->param_size);
    cai__jw_key(w, "quantization_level");
    cai__jw_str(w, m->quant);
    cai__jw_obj_end(w);
}

bool cai__api_oai_models(struct cai__buf *out, const struct cai__api_model *m)
{
    struct cai__jw w;
    cai__jw_init(&w, out);
    cai__jw_obj(&w);
    cai__jw_key(&w, "object");
    cai__jw_str(&w, "list");
    cai__jw_key(&w, "data");
    cai__jw_arr(&w);
    cai__jw_obj(&w);
    cai__jw_key(&w, "id");
    cai__jw_str(&w, m->name);
    cai__jw_key(&w, "object");
    cai__jw_str(&w, "model");
    cai__jw_key(&w, "created");
    cai__jw_int(&w, m->mtime);
    cai__jw_key(&w, "owned_by");
    cai__jw_str(&w, "coreai");
    cai__jw_key(&w, "meta");
    cai__jw_obj(&w);
    cai__jw_key(&w, "n_params");
    cai__jw_uint(&w, m->n_params);
    cai__jw_key(&w, "n_ctx_train");
    cai__jw_int(&w, m->n_ctx_train);
    cai__jw_key(&w, "n_ctx");
    cai__jw_int(&w, m->n_ctx_slot);
    cai__jw_key(&w, "n_vocab");
    cai__jw_int(&w, m->n_vocab);
    cai__jw_key(&w, "size");
    cai__jw_uint(&w, m->file_bytes);
    cai__jw_obj_end(&w);
    cai__jw_obj_end(&w);
    cai__jw_arr_end(&w);
    cai__jw_obj_end(&w);
    return cai__jw_ok(&w);
}

bool cai__api_ollama_tags(struct cai__buf *out, const struct cai__api_model *m, bool running)
{
    char name[160], mod[40];
    ollama_name(m, name, sizeof(name));
    modified_at(m, mod);
    struct cai__jw w;
    cai__jw_init(&w, out);
    cai__jw_obj(&w);
    cai__jw_key(&w, "models");
    cai__jw_arr(&w);
    cai__jw_obj(&w);
    cai__jw_key(&w, "name");
    cai__jw_str(&w, name);
    cai__jw_key(&w, "model");
    cai__jw_str(&w, name);
    if (!running) {
        cai__jw_key(&w, "modified_at");
        cai__jw_str(&w, mod);
    }
    cai__jw_key(&w, "size");
    cai__jw_uint(&w, m->file_bytes);
    cai__jw_key(&w, "digest");
    cai__jw_str(&w, "");
    ollama_details(&w, m);
    if (running) {
        cai__jw_key(&w, "expires_at");
        cai__jw_str(&w, "9999-12-31T23:59:59Z"); /* loaded for the server's lifetime */
        cai__jw_key(&w, "size_vram");
        cai__jw_int(&w, 0);
    }
    cai__jw_obj_end(&w);
    cai__jw_arr_end(&w);
    cai__jw_obj_end(&w);
    return cai__jw_ok(&w);
}

bool cai__api_ollama_show(struct cai__buf *out, const struct cai__api_model *m)
{
    char mod[40], key[64];
    modified_at(m, mod);
    struct cai__jw w;
    cai__jw_init(&w, out);
    cai__jw_obj(&w);
    cai__jw_key(&w, "license");
    cai__jw_str(&w, "");
    cai__jw_key(&w, "modelfile");
    cai__jw_str(&w, "");
    cai__jw_key(&w, "parameters");
    cai__jw_str(&w, "");
    cai__jw_key(&w, "template");
    cai__jw_str(&w, m->chat_template ? m->chat_template : "");
    ollama_details(&w, m);
    cai__jw_key(&w, "model_info");
    cai__jw_obj(&w);
    cai__jw_key(&w, "general.architecture");
    cai__jw_str(&w, m->family);
    cai__jw_key(&w, "general.parameter_count");
    cai__jw_uint(&w, m->n_params);
    static const char *const keys[] = {"context_length", "embedding_length", "block_count",
                                       "attention.head_count", "attention.head_count_kv",
                                       "vocab_size"};
    const int vals[] = {m->n_ctx_train, m->n_embd, m->n_layer, m->n_head, m->n_head_kv,
                        m->n_vocab};
    for (size_t i = 0; i < CAI_ARRAY_LEN(keys); i++) {
        snprintf(key, sizeof(key), "%s.%s", m->family, keys[i]);
        cai__jw_key(&w, key);
        cai__jw_int(&w, vals[i]);
    }
    cai__jw_obj_end(&w);
    cai__jw_key(&w, "capabilities");
    cai__jw_arr(&w);
    cai__jw_str(&w, "completion");
    cai__jw_arr_end(&w);
    cai__jw_key(&w, "modified_at");
    cai__jw_str(&w, mod);
    cai__jw_obj_end(&w);
    return cai__jw_ok(&w);
}

bool cai__api_ollama_version(struct cai__buf *out)
{
    return cai__buf_printf(out, "{\"version\":\"%d.%d.%d\"}", CAI_VERSION_MAJOR,
                           CAI_VERSION_MINOR, CAI_VERSION_PATCH);
}
