/* template_eval.c: the Jinja interpreter (work in progress). */
#include "template.h"

int cai__chat_render_jinja(const char *tmpl, size_t tmpl_len, const struct cai_chat_msg *msgs,
                           size_t n_msgs, bool add_generation_prompt, const char *bos_token,
                           const char *eos_token, const struct cai__tmpl_limits *limits,
                           char **out, size_t *out_len, struct cai_error *err)
{
    (void)tmpl; (void)tmpl_len; (void)msgs; (void)n_msgs; (void)add_generation_prompt;
    (void)bos_token; (void)eos_token; (void)limits;
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    return cai__fail(err, CAI_EFORMAT, "chat template: offset 0: interpreter not available");
}

int cai__chat_template_check(const char *tmpl, size_t tmpl_len, struct cai_error *err)
{
    (void)tmpl; (void)tmpl_len;
    return cai__fail(err, CAI_EFORMAT, "chat template: offset 0: interpreter not available");
}
