/* api.h: the OpenAI and Ollama request and response bodies, with no I/O.
 *
 * cai__api_parse() turns the JSON body of a generation request (OpenAI
 * /v1/chat/completions and /v1/completions, Ollama /api/generate and
 * /api/chat) into generation parameters the engine takes, copying every
 * string, and refuses anything out of range or unsupported with a message
 * meant for the client (the server answers 400 with it). The rest of this
 * header writes the responses: streamed events (OpenAI server-sent events,
 * Ollama NDJSON lines), complete non-streamed bodies, error bodies, and the
 * model listings. The server does the transport; everything here is pure
 * and is what tests/fuzz/fuzz_http.c exercises. */
#ifndef CAI_SERVER_API_H
#define CAI_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coreai.h"
#include "json_out.h"

enum cai__api_kind {
    CAI_API_OAI_CHAT = 0,    /* POST /v1/chat/completions */
    CAI_API_OAI_COMPLETION,  /* POST /v1/completions */
    CAI_API_OLLAMA_GENERATE, /* POST /api/generate */
    CAI_API_OLLAMA_CHAT,     /* POST /api/chat */
    CAI_API_OAI_EMBED,       /* POST /v1/embeddings */
    CAI_API_OLLAMA_EMBED,    /* POST /api/embed */
    CAI_API_OLLAMA_EMBEDDINGS, /* POST /api/embeddings (Ollama's older route) */
};

static inline bool cai__api_is_ollama(int kind)
{
    return kind == CAI_API_OLLAMA_GENERATE || kind == CAI_API_OLLAMA_CHAT ||
           kind == CAI_API_OLLAMA_EMBED || kind == CAI_API_OLLAMA_EMBEDDINGS;
}

static inline bool cai__api_is_embed(int kind)
{
    return kind == CAI_API_OAI_EMBED || kind == CAI_API_OLLAMA_EMBED ||
           kind == CAI_API_OLLAMA_EMBEDDINGS;
}

#define CAI__API_MAX_STOP     16  /* stop strings per request */
#define CAI__API_MAX_STOP_LEN 512 /* bytes per stop string */
#define CAI__API_MAX_DEPTH    32  /* JSON nesting of a request body */
#define CAI__API_MAX_INPUTS   256 /* texts per embedding request */

/* A parsed generation request. Owns every pointer in it. */
struct cai__api_request {
    int                  kind;          /* enum cai__api_kind */
    bool                 stream;        /* OpenAI default false, Ollama default true */
    bool                 include_usage; /* OpenAI stream_options.include_usage */
    bool                 load_only;     /* Ollama: no prompt or messages: report "load" */
    bool                 seed_set;      /* the request chose a seed */
    char                *model;         /* the "model" field, or NULL */
    char                *prompt;        /* raw prompt (no template), or NULL */
    struct cai_chat_msg *msgs;          /* chat messages, or NULL */
    size_t               n_msgs;
    char                *stop[CAI__API_MAX_STOP];
    int                  n_stop;
    struct cai_gen_params gp; /* gp.stop points at stop[] */
    char               **inputs;        /* embedding requests: the texts */
    int                  n_inputs;
};

/* Parses body[0..n_bytes) as a request of the given kind. default_max_tokens
 * applies when the request sets no limit (<= 0: until end of generation or a
 * full context). On success returns 0 and fills *out (free it with
 * cai__api_request_free); on failure returns CAI_EINVAL (or CAI_ENOMEM)
 * with a one-line reason for the client in err->msg. */
int  cai__api_parse(struct cai__api_request *out, int kind, const char *body, size_t n_bytes,
                    int default_max_tokens, struct cai_error *err);
void cai__api_request_free(struct cai__api_request *r);

/* ---- responses --------------------------------------------------------- */

/* What a response needs to know about its request. */
struct cai__api_reply {
    int         kind;          /* enum cai__api_kind */
    bool        chunked;       /* HTTP/1.1 chunked framing for streams */
    bool        include_usage; /* OpenAI: a usage chunk before [DONE] */
    bool        sent_first;    /* OpenAI chat: the role chunk went out */
    const char *id;            /* "chatcmpl-..." / "cmpl-..." */
    const char *model;         /* the name to echo */
    int64_t     created;       /* Unix seconds */
    struct cai__buf scratch;   /* for building one event; freed by the caller */
};

/* "stop" or "length" for a stop reason. */
const char *cai__api_finish_reason(int stop_reason);

/* Appends one streamed event carrying text (framed: an SSE event for OpenAI,
 * an NDJSON line for Ollama, each in one HTTP chunk when chunked). */
bool cai__api_stream_piece(struct cai__buf *out, struct cai__api_reply *r, const char *text,
                           size_t n_bytes);
/* Appends the events that end a stream (final chunk, usage, [DONE]; or the
 * Ollama done object) and the last HTTP chunk. total_ns: request wall time. */
bool cai__api_stream_end(struct cai__buf *out, struct cai__api_reply *r,
                         const struct cai_gen_result *res, int64_t total_ns);
/* Appends an error event to a stream that already started, and ends it. */
bool cai__api_stream_error(struct cai__buf *out, struct cai__api_reply *r, const char *message);
/* Writes the whole non-streamed JSON body for a finished generation. */
bool cai__api_final(struct cai__buf *out, struct cai__api_reply *r, const char *text,
                    size_t n_bytes, const struct cai_gen_result *res, int64_t total_ns);
/* The body answering an embedding request: vecs[n_vec][dim] in input
 * order; n_tokens: all inputs' tokens. */
bool cai__api_embed_final(struct cai__buf *out, const struct cai__api_reply *r, const float *vecs,
                          int n_vec, int dim, int64_t n_tokens, int64_t total_ns);
/* The Ollama answer to a request without a prompt ("done_reason": "load"),
 * as one object (stream or not: a single NDJSON line either way). */
bool cai__api_ollama_load(struct cai__buf *out, const struct cai__api_reply *r);

/* An error body: {"error": {"message", "type", "code"}} for OpenAI routes
 * (ollama false), {"error": "..."} for Ollama routes. */
bool cai__api_error(struct cai__buf *out, bool ollama, int status, const char *message);

/* ---- models ------------------------------------------------------------ */

/* The one model the server holds, as the listings describe it. */
struct cai__api_model {
    char        name[128];       /* the id clients use */
    char        family[32];      /* architecture: "llama", ... */
    char        quant[16];       /* most common weight type by bytes: "Q4_1" */
    char        param_size[16];  /* "135M", "1.5B" */
    char        format[16];      /* "gguf" or "coreaimodel" */
    uint64_t    n_params;
    uint64_t    file_bytes;
    int64_t     mtime;           /* Unix seconds */
    int         n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_vocab, n_ctx_slot;
    const char *chat_template;   /* owned by the model, or NULL */
};

/* Fills *out from an open model and its path (name: `alias`, or the file
 * name without its extension). Never fails: what cannot be found is empty. */
void cai__api_model_describe(struct cai__api_model *out, const struct cai_model *m,
                             const char *path, const char *alias, int n_ctx_slot);

bool cai__api_oai_models(struct cai__buf *out, const struct cai__api_model *m);
bool cai__api_ollama_tags(struct cai__buf *out, const struct cai__api_model *m, bool running);
bool cai__api_ollama_show(struct cai__buf *out, const struct cai__api_model *m);
bool cai__api_ollama_version(struct cai__buf *out);

/* Writes an RFC 3339 UTC timestamp of the current time with nanoseconds. */
void cai__api_timestamp(char out[40]);

/* The chat page served at "/" (HTML with inline JS), and its length. */
const char *cai__api_chat_page(size_t *n_bytes);

#endif /* CAI_SERVER_API_H */
