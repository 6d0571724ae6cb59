/* template.h: chat templates. Turns a list of chat messages into the prompt
 * text a model was trained on.
 *
 * Models carry a Jinja2 template in their metadata (GGUF
 * `tokenizer.chat_template`). This module interprets a safe subset of Jinja2
 * that covers the published templates (ChatML/Qwen, Llama 3, Gemma, Llama 2,
 * Phi-3, SmolLM and others): output and statement tags with whitespace
 * control, if/elif/else, for loops with `loop.*` and else/break/continue,
 * set (also block set and namespace attributes), macros, expressions with
 * Python semantics, the filters and tests chat templates use, a few string
 * and dict methods, and the globals raise_exception(), namespace() and
 * range(). Rendering follows Hugging Face's environment: trim_blocks and
 * lstrip_blocks on, one trailing newline of the template dropped, tojson
 * without ASCII escaping. `strftime_now` is deliberately left undefined, so
 * templates that use it fall back to their built-in date and the output
 * stays deterministic.
 *
 * Safety. A template is hostile input. It has no access to anything but
 * the values passed in; parsing bounds nesting depth, and rendering bounds
 * the steps, loop iterations, memory and output size (struct
 * cai__tmpl_limits); the nesting bounds keep the stack under about 256 KiB.
 * Nothing here prints, exits or aborts.
 *
 * Errors. A syntax error, or an evaluation error such as an unknown filter,
 * is CAI_EFORMAT with the byte offset into the template; a resource limit is
 * CAI_ERANGE with the offset; raise_exception() is CAI_EINVAL carrying the
 * template's own message (the conversation is what the template rejected).
 * Thread-safe: there is no global state. */
#ifndef CAI_TEMPLATE_H
#define CAI_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/base.h"

/* Resource bounds for one render. Zero fields take the default. */
struct cai__tmpl_limits {
    size_t   max_output_bytes; /* default 16 MiB */
    size_t   max_memory_bytes; /* values built while rendering; default 64 MiB */
    uint64_t max_steps;        /* expression and statement evaluations; default 10^7 */
    uint64_t max_loop_iters;   /* for-loop iterations, all loops together; default 10^6 */
};

/* Well-known prompt formats rendered natively when a model has no usable
 * template. */
enum cai__chat_family {
    CAI__CHAT_CHATML, /* <|im_start|>role\n...<|im_end|>\n (also the default) */
    CAI__CHAT_LLAMA3, /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    CAI__CHAT_GEMMA,  /* <start_of_turn>user\n...<end_of_turn>\n, assistant is "model" */
    CAI__CHAT_LLAMA2, /* <s>[INST] <<SYS>>...<</SYS>> user [/INST] answer </s> */
    CAI__CHAT_PHI3,   /* <|user|>\n...<|end|>\n */
};

/* Renders the conversation with the model's template, or with a built-in
 * format when there is none. With a template (tmpl_len > 0) the Jinja
 * interpreter runs first; if the template does not parse or fails to
 * evaluate (CAI_EFORMAT or CAI_ERANGE), the family named by its marker
 * strings (cai__chat_detect) is rendered instead. CAI_EINVAL from the
 * template (raise_exception) is returned as is, as are CAI_ENOMEM and invalid
 * arguments. `tmpl` need not be NUL-terminated; NULL with tmpl_len 0 means no
 * template. Every message needs a role; a NULL content is the value none.
 * bos_token and eos_token may be NULL (empty). On success *out is a
 * NUL-terminated string of *out_len bytes that the caller frees with
 * cai__free; on failure *out is NULL. */
int cai__chat_render(const char *tmpl, size_t tmpl_len, const struct cai_chat_msg *msgs,
                     size_t n_msgs, bool add_generation_prompt, const char *bos_token,
                     const char *eos_token, char **out, size_t *out_len, struct cai_error *err);

/* The Jinja interpreter alone: no fallback. `limits` may be NULL. */
int cai__chat_render_jinja(const char *tmpl, size_t tmpl_len, const struct cai_chat_msg *msgs,
                           size_t n_msgs, bool add_generation_prompt, const char *bos_token,
                           const char *eos_token, const struct cai__tmpl_limits *limits,
                           char **out, size_t *out_len, struct cai_error *err);

/* Only parses: 0, or CAI_EFORMAT/CAI_ERANGE with the offset in err. */
int cai__chat_template_check(const char *tmpl, size_t tmpl_len, struct cai_error *err);

/* Guesses the family from marker strings in a template (NULL allowed):
 * ChatML `<|im_start|>`, Llama 3 `<|start_header_id|>`, Gemma
 * `<start_of_turn>`, Phi-3 `<|user|>`, Llama 2 `[INST]`, otherwise ChatML. */
enum cai__chat_family cai__chat_detect(const char *tmpl, size_t tmpl_len);

/* Renders one built-in family natively. Same contract as cai__chat_render. */
int cai__chat_render_family(enum cai__chat_family family, const struct cai_chat_msg *msgs,
                            size_t n_msgs, bool add_generation_prompt, const char *bos_token,
                            const char *eos_token, char **out, size_t *out_len,
                            struct cai_error *err);

/* "chatml", "llama3", ... */
const char *cai__chat_family_name(enum cai__chat_family family);

#endif /* CAI_TEMPLATE_H */
