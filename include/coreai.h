/* coreai.h: the public C API of the coreai generative engine.
 *
 * Conventions. Every function that can fail returns 0 (or a count) on success
 * and a negative CAI_E* code on failure. Functions that create an object take
 * the output pointer first. Where no object exists yet, an optional
 * `struct cai_error *` receives a one-line reason naming the file, field or
 * offset at fault. The library never prints, exits or aborts.
 *
 * Threads. A `struct cai_model` is immutable once opened: share it across
 * threads and sessions freely; it must outlive them. A `struct cai_session`
 * is used by one thread at a time. */
#ifndef COREAI_H
#define COREAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CAI_API
#else
#define CAI_API __attribute__((visibility("default")))
#endif

#define CAI_VERSION_MAJOR 0
#define CAI_VERSION_MINOR 1
#define CAI_VERSION_PATCH 0

/* ---- errors ------------------------------------------------------------ */

#define CAI_ERRORS(X)                                                                              \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(IO, -2, "input/output error")                                                                \
    X(FORMAT, -3, "malformed or unsupported model file")                                           \
    X(RANGE, -4, "argument out of range")                                                          \
    X(CTX_FULL, -5, "context window is full")                                                      \
    X(UNSUPPORTED, -6, "not supported by this build or CPU")                                       \
    X(INVAL, -7, "invalid argument")                                                               \
    X(CANCELLED, -8, "cancelled")                                                                  \
    X(TIMEOUT, -9, "timed out")                                                                    \
    X(STATE, -10, "operation not valid in this state")

enum cai_status {
    CAI_OK = 0,
#define CAI__ERR_ENUM(name, code, msg) CAI_E##name = (code),
    CAI_ERRORS(CAI__ERR_ENUM)
#undef CAI__ERR_ENUM
};

struct cai_error {
    int  code;     /* 0 or a CAI_E* value */
    char msg[256]; /* one line, NUL-terminated, "" when code is 0 */
};

/* Static description of a code ("out of memory"); never NULL. */
CAI_API const char *cai_strerror(int code);
/* Name of a code ("CAI_ENOMEM"); never NULL. */
CAI_API const char *cai_err_name(int code);


/* ---- sampling ---------------------------------------------------------- */

/* How the next token is chosen. The chain runs in this order: penalties,
 * top-k, top-p, min-p, temperature, then a seeded draw. temp <= 0 is greedy
 * (argmax after penalties). Zero or negative values disable a stage:
 * top_k <= 0, top_p >= 1, min_p <= 0, repeat_penalty == 1, presence and
 * frequency penalties == 0. */
struct cai_sampling {
    float    temp;              /* default 0.8 */
    int      top_k;             /* default 40 */
    float    top_p;             /* default 0.95 */
    float    min_p;             /* default 0.05 */
    float    repeat_penalty;    /* default 1.0 (off) */
    float    presence_penalty;  /* default 0 */
    float    frequency_penalty; /* default 0 */
    int      penalty_last_n;    /* tokens of history the penalties see; default 64 */
    uint64_t seed;              /* same seed + same settings = same text */
};
CAI_API struct cai_sampling cai_sampling_default(void);

/* ---- chat -------------------------------------------------------------- */

struct cai_chat_msg {
    const char *role;    /* "system", "user", "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
};

#ifdef __cplusplus
}
#endif
#endif /* COREAI_H */
