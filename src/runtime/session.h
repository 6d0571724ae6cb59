/* session.h: internal view of a session, shared by the generation loop and
 * the asynchronous job runner. */
#ifndef CAI_SESSION_H
#define CAI_SESSION_H

#include "../arch/forward.h"

struct cai_session {
    struct cai_model *m;
    struct cai__fwd   fwd;
    int32_t          *tokens;      /* [n_ctx] the sequence in the KV cache */
    int               n_tokens;
    float            *logits;      /* [logits_cap rows][n_vocab] */
    int               logits_rows; /* rows valid after the last decode */
    int               logits_cap;
    int               cancel;      /* set by cai_job_cancel from another thread; atomic access */
    char              errmsg[256];
};

/* Records a message as the session's last error and returns code. */
int cai__session_fail(struct cai_session *s, int code, const char *fmt, ...) CAI__PRINTF(3, 4);

#endif /* CAI_SESSION_H */
