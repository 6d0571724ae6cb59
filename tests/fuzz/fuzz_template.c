/* fuzz_template.c: libFuzzer target for the chat-template interpreter.
 *
 * Input: one flags byte, then the template, then (after the first NUL byte
 * of the rest, if any) the conversation as NUL-separated role and content
 * strings; a content of exactly "\x01" stands for a NULL content (none).
 * Flags: bit 0 add_generation_prompt, bit 1 tight limits (tiny output,
 * memory, steps and loops, to reach every bound), bit 2 also run
 * cai__chat_render (the fallback path) and compare.
 *
 * It traps when a promise breaks: a result code outside the contract, a
 * failure without "chat template: offset" in the message, a success
 * without a NUL-terminated string of the stated length, output over the
 * bound, a render that does not parse when cai__chat_template_check said it
 * does (or the other way round), or two runs of the same input that differ.
 * Sanitizers catch the rest.
 *
 * Build: `make fuzz`; run:
 * build-fuzz/fuzz_template -max_total_time=60 tests/fuzz/corpus/template.
 * With -DCAI_FUZZ_STANDALONE it gets a main() that replays files. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "tok/template.h"


#define MAX_MSGS 64

static bool has_offset(const struct cai_error *err)
{
    return strncmp(err->msg, "chat template: offset ", 22) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 16))
        return 0;
    uint8_t flags = data[0];
    const char *text = (const char *)data + 1;
    size_t n_text = size - 1;
    const char *nul = memchr(text, '\0', n_text);
    size_t tmpl_len = nul ? (size_t)(nul - text) : n_text;

    /* The conversation: a private NUL-terminated copy of the rest. */
    struct cai_chat_msg msgs[MAX_MSGS];
    size_t n_msgs = 0;
    char *rest = NULL;
    if (nul) {
        size_t n_rest = n_text - tmpl_len - 1;
        rest = malloc(n_rest + 1);
        REQUIRE(rest);
        memcpy(rest, nul + 1, n_rest);
        rest[n_rest] = '\0';
        char *p = rest, *end = rest + n_rest;
        while (p < end && n_msgs < MAX_MSGS) {
            const char *role = p;
            p += strlen(p) + 1;
            const char *content = p < end ? p : "";
            if (p < end)
                p += strlen(p) + 1;
            msgs[n_msgs].role = role;
            msgs[n_msgs].content = strcmp(content, "\x01") == 0 ? NULL : content;
            n_msgs++;
        }
    }

    struct cai__tmpl_limits lim = {.max_output_bytes = 1 << 20,
                                   .max_memory_bytes = 16 << 20,
                                   .max_steps = 200000,
                                   .max_loop_iters = 20000};
    if (flags & 2) {
        lim.max_output_bytes = 512;
        lim.max_memory_bytes = 256 << 10;
        lim.max_steps = 2000;
        lim.max_loop_iters = 100;
    }
    bool agp = flags & 1;

    struct cai_error err = {0};
    int check_rc = cai__chat_template_check(text, tmpl_len, &err);
    REQUIRE(check_rc == 0 || check_rc == CAI_EFORMAT || check_rc == CAI_ERANGE);
    REQUIRE(check_rc == 0 || has_offset(&err));

    char *out = NULL, *out2 = NULL;
    size_t out_len = 0, out_len2 = 0;
    memset(&err, 0, sizeof(err));
    int rc = cai__chat_render_jinja(text, tmpl_len, msgs, n_msgs, agp, "<s>", "</s>", &lim, &out,
                                    &out_len, &err);
    REQUIRE(rc == 0 || rc == CAI_EFORMAT || rc == CAI_ERANGE || rc == CAI_EINVAL);
    if (rc == 0) {
        REQUIRE(check_rc == 0);
        REQUIRE(out && out[out_len] == '\0' && out_len <= lim.max_output_bytes);
    } else {
        REQUIRE(!out && has_offset(&err) && err.code == rc);
        REQUIRE(check_rc == 0 || rc == check_rc || rc == CAI_ERANGE);
    }
    /* Deterministic: the same input renders the same way. */
    struct cai_error err2 = {0};
    int rc2 = cai__chat_render_jinja(text, tmpl_len, msgs, n_msgs, agp, "<s>", "</s>", &lim, &out2,
                                     &out_len2, &err2);
    REQUIRE(rc2 == rc);
    REQUIRE(rc != 0 || (out_len2 == out_len && memcmp(out, out2, out_len) == 0));
    REQUIRE(rc == 0 || strcmp(err.msg, err2.msg) == 0);

    if (flags & 4 && rc != CAI_ERANGE) {
        /* The public entry with the fallback and the default limits, which
         * are all at least the fuzzing ones: a render that fit them renders
         * the same, raise_exception still fails, anything else falls back
         * to a built-in format. (A bound hit is skipped: it would be slow.) */
        char *fb = NULL;
        size_t fb_len = 0;
        memset(&err2, 0, sizeof(err2));
        int rc3 =
            cai__chat_render(text, tmpl_len, msgs, n_msgs, agp, "<s>", "</s>", &fb, &fb_len, &err2);
        if (rc == CAI_EINVAL) {
            REQUIRE(rc3 == CAI_EINVAL && !fb && has_offset(&err2));
        } else {
            REQUIRE(rc3 == 0 && fb && fb[fb_len] == '\0');
            REQUIRE(rc != 0 || tmpl_len == 0 ||
                    (fb_len == out_len && memcmp(fb, out, out_len) == 0));
        }
        cai__free(fb);
    }
    cai__free(out);
    cai__free(out2);
    free(rest);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include "fuzz_main.h"
#endif /* CAI_FUZZ_STANDALONE */
