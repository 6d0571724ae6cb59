/* template.c: chat templates, the public side. Renders a conversation with
 * the model's Jinja template (template_parse.c, template_eval.c) and falls
 * back to a built-in prompt format, chosen by marker strings in the
 * template, when there is no template or it cannot be used.
 *
 * The built-in formats reproduce what the published templates of each
 * family render for plain role/content messages. */
#include <string.h>

#include "template_int.h"

/* ---- output buffer ----------------------------------------------------- */

struct fam_buf {
    char *p;
    size_t n, cap;
    int rc;
};

static void fb_put(struct fam_buf *b, const char *s, size_t n)
{
    if (b->rc || n == 0)
        return;
    if (n > ((size_t)16 << 20) - b->n) { /* the default output bound */
        b->rc = CAI_ERANGE;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = cai__realloc(b->p, cap);
        if (!p) {
            b->rc = CAI_ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void fb_puts(struct fam_buf *b, const char *s)
{
    if (s)
        fb_put(b, s, strlen(s));
}

/* Appends `s` without leading and trailing whitespace (Python's strip(),
 * which Jinja's trim filter is). */
static void fb_put_trimmed(struct fam_buf *b, const char *s)
{
    if (!s)
        return;
    struct cai__tstr t = cai__tstr_strip((struct cai__tstr){s, strlen(s)}, NULL, true, true);
    fb_put(b, t.p, t.n);
}

static bool role_is(const struct cai_chat_msg *m, const char *role)
{
    return m->role && strcmp(m->role, role) == 0;
}

/* ---- built-in families ------------------------------------------------- */

static void render_chatml(struct fam_buf *b, const struct cai_chat_msg *msgs, size_t n_msgs,
                          bool add_generation_prompt)
{
    for (size_t i = 0; i < n_msgs; i++) {
        fb_puts(b, "<|im_start|>");
        fb_puts(b, msgs[i].role);
        fb_puts(b, "\n");
        fb_puts(b, msgs[i].content);
        fb_puts(b, "<|im_end|>\n");
    }
    if (add_generation_prompt)
        fb_puts(b, "<|im_start|>assistant\n");
}

static void render_llama3(struct fam_buf *b, const struct cai_chat_msg *msgs, size_t n_msgs,
                          bool add_generation_prompt, const char *bos)
{
    fb_puts(b, bos);
    for (size_t i = 0; i < n_msgs; i++) {
        fb_puts(b, "<|start_header_id|>");
        fb_puts(b, msgs[i].role);
        fb_puts(b, "<|end_header_id|>\n\n");
        fb_put_trimmed(b, msgs[i].content);
        fb_puts(b, "<|eot_id|>");
    }
    if (add_generation_prompt)
        fb_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Gemma has no system role: the system text opens the first user turn. */
static void render_gemma(struct fam_buf *b, const struct cai_chat_msg *msgs, size_t n_msgs,
                         bool add_generation_prompt, const char *bos)
{
    const char *sys = NULL;
    size_t i = 0;
    fb_puts(b, bos);
    if (n_msgs > 0 && role_is(&msgs[0], "system")) {
        sys = msgs[0].content ? msgs[0].content : "";
        i = 1;
    }
    for (; i < n_msgs; i++) {
        fb_puts(b, "<start_of_turn>");
        fb_puts(b, role_is(&msgs[i], "assistant") ? "model" : msgs[i].role);
        fb_puts(b, "\n");
        if (sys) {
            fb_puts(b, sys);
            fb_puts(b, "\n\n");
            sys = NULL;
        }
        fb_put_trimmed(b, msgs[i].content);
        fb_puts(b, "<end_of_turn>\n");
    }
    if (add_generation_prompt)
        fb_puts(b, "<start_of_turn>model\n");
}

/* Llama 2: every user turn is "<s>[INST] ... [/INST]", every answer
 * " ... </s>"; the system prompt sits in <<SYS>> inside the first turn. */
static void render_llama2(struct fam_buf *b, const struct cai_chat_msg *msgs, size_t n_msgs,
                          const char *bos, const char *eos)
{
    const char *sys = NULL;
    size_t i = 0;
    if (n_msgs > 0 && role_is(&msgs[0], "system")) {
        sys = msgs[0].content ? msgs[0].content : "";
        i = 1;
    }
    for (; i < n_msgs; i++) {
        if (role_is(&msgs[i], "assistant")) {
            fb_puts(b, " ");
            fb_put_trimmed(b, msgs[i].content);
            fb_puts(b, " ");
            fb_puts(b, eos);
            continue;
        }
        fb_puts(b, bos);
        fb_puts(b, "[INST] ");
        if (sys) {
            /* The published template strips the whole first turn, system
             * block included. */
            struct fam_buf turn = {0};
            fb_puts(&turn, "<<SYS>>\n");
            fb_puts(&turn, sys);
            fb_puts(&turn, "\n<</SYS>>\n\n");
            fb_puts(&turn, msgs[i].content);
            if (turn.rc)
                b->rc = turn.rc;
            fb_put_trimmed(b, turn.p);
            cai__free(turn.p);
            sys = NULL;
        } else {
            fb_put_trimmed(b, msgs[i].content);
        }
        fb_puts(b, " [/INST]");
    }
}

static void render_phi3(struct fam_buf *b, const struct cai_chat_msg *msgs, size_t n_msgs,
                        bool add_generation_prompt)
{
    for (size_t i = 0; i < n_msgs; i++) {
        fb_puts(b, "<|");
        fb_puts(b, msgs[i].role);
        fb_puts(b, "|>\n");
        fb_puts(b, msgs[i].content);
        fb_puts(b, "<|end|>\n");
    }
    if (add_generation_prompt)
        fb_puts(b, "<|assistant|>\n");
}

const char *cai__chat_family_name(enum cai__chat_family family)
{
    switch (family) {
    case CAI__CHAT_CHATML:
        return "chatml";
    case CAI__CHAT_LLAMA3:
        return "llama3";
    case CAI__CHAT_GEMMA:
        return "gemma";
    case CAI__CHAT_LLAMA2:
        return "llama2";
    case CAI__CHAT_PHI3:
        return "phi3";
    }
    return "unknown";
}

static bool has_marker(const char *s, size_t n, const char *marker)
{
    size_t m = strlen(marker);
    if (!s || n < m)
        return false;
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == marker[0] && memcmp(s + i, marker, m) == 0)
            return true;
    return false;
}

enum cai__chat_family cai__chat_detect(const char *tmpl, size_t tmpl_len)
{
    if (!tmpl)
        return CAI__CHAT_CHATML;
    if (has_marker(tmpl, tmpl_len, "<|im_start|>"))
        return CAI__CHAT_CHATML;
    if (has_marker(tmpl, tmpl_len, "<|start_header_id|>"))
        return CAI__CHAT_LLAMA3;
    if (has_marker(tmpl, tmpl_len, "<start_of_turn>"))
        return CAI__CHAT_GEMMA;
    if (has_marker(tmpl, tmpl_len, "<|user|>"))
        return CAI__CHAT_PHI3;
    if (has_marker(tmpl, tmpl_len, "[INST]"))
        return CAI__CHAT_LLAMA2;
    return CAI__CHAT_CHATML;
}

static int check_msgs(const struct cai_chat_msg *msgs, size_t n_msgs, char **out, size_t *out_len,
                      struct cai_error *err)
{
    if (!out || !out_len)
        return cai__fail(err, CAI_EINVAL, "chat template: out and out_len are required");
    *out = NULL;
    *out_len = 0;
    if (n_msgs > 0 && !msgs)
        return cai__fail(err, CAI_EINVAL, "chat template: msgs is NULL");
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role)
            return cai__fail(err, CAI_EINVAL, "chat template: message %zu has no role", i);
    return 0;
}

int cai__chat_render_family(enum cai__chat_family family, const struct cai_chat_msg *msgs,
                            size_t n_msgs, bool add_generation_prompt, const char *bos_token,
                            const char *eos_token, char **out, size_t *out_len,
                            struct cai_error *err)
{
    int rc = check_msgs(msgs, n_msgs, out, out_len, err);
    if (rc)
        return rc;
    const char *bos = bos_token ? bos_token : "";
    const char *eos = eos_token ? eos_token : "";
    struct fam_buf b = {0};
    switch (family) {
    case CAI__CHAT_LLAMA3:
        render_llama3(&b, msgs, n_msgs, add_generation_prompt, bos);
        break;
    case CAI__CHAT_GEMMA:
        render_gemma(&b, msgs, n_msgs, add_generation_prompt, bos);
        break;
    case CAI__CHAT_LLAMA2:
        render_llama2(&b, msgs, n_msgs, bos, eos);
        break;
    case CAI__CHAT_PHI3:
        render_phi3(&b, msgs, n_msgs, add_generation_prompt);
        break;
    case CAI__CHAT_CHATML:
    default:
        render_chatml(&b, msgs, n_msgs, add_generation_prompt);
        break;
    }
    fb_put(&b, "", 0);
    if (!b.rc && !b.p) {
        b.p = cai__malloc(1);
        if (!b.p)
            b.rc = CAI_ENOMEM;
        else
            b.p[0] = '\0';
    }
    if (b.rc) {
        cai__free(b.p);
        return cai__fail(err, b.rc, "chat template: %s rendering: %s",
                         cai__chat_family_name(family),
                         b.rc == CAI_ENOMEM ? "out of memory" : "output too large");
    }
    *out = b.p;
    *out_len = b.n;
    return 0;
}

int cai__chat_render(const char *tmpl, size_t tmpl_len, const struct cai_chat_msg *msgs,
                     size_t n_msgs, bool add_generation_prompt, const char *bos_token,
                     const char *eos_token, char **out, size_t *out_len, struct cai_error *err)
{
    int rc = check_msgs(msgs, n_msgs, out, out_len, err);
    if (rc)
        return rc;
    if (tmpl && tmpl_len > 0) {
        rc = cai__chat_render_jinja(tmpl, tmpl_len, msgs, n_msgs, add_generation_prompt, bos_token,
                                    eos_token, NULL, out, out_len, err);
        if (rc != CAI_EFORMAT && rc != CAI_ERANGE)
            return rc;
    }
    rc = cai__chat_render_family(cai__chat_detect(tmpl, tmpl_len), msgs, n_msgs,
                                 add_generation_prompt, bos_token, eos_token, out, out_len, err);
    if (rc == 0 && err) { /* the template's error is not the result */
        err->code = 0;
        err->msg[0] = '\0';
    }
    return rc;
}
