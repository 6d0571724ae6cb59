/* fuzz_coreaimodel.c: libFuzzer target for the .coreaimodel reader and
 * verifier. Accepted files: every tensor inside the input and page-aligned,
 * table entries agreeing with the directory, look-ups finding each tensor,
 * and verify running over everything without faults.
 * Build: `make fuzz`; run: build-fuzz/fuzz_coreaimodel -max_total_time=60
 * tests/fuzz/corpus/coreaimodel */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

#include "format/coreaimodel.h"


static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cai_gguf *g = (struct cai_gguf *)1;
    struct cai_error err = {0};
    int rc = cai__cam_open_buffer(&g, data, size, "fuzz.coreaimodel", &err);
    if (rc) {
        REQUIRE(rc < 0 && g == NULL && err.msg[0]);
        return 0;
    }
    struct cai_cam_header h;
    REQUIRE(cai__cam_header(g, &h) && h.file_bytes == size && g->base == data);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct cai_gguf_tensor *t = &g->tensors[i];
        struct cai_cam_entry e;
        char name[80];
        REQUIRE(cai__cam_entry(g, i, &e) && e.n_bytes == t->n_bytes);
        REQUIRE((const uint8_t *)t->data == data + e.offset && e.offset % h.alignment == 0);
        REQUIRE(e.offset <= size && t->n_bytes <= size - e.offset);
        REQUIRE(t->name.len < sizeof(name));
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        REQUIRE(cai__gguf_find_tensor(g, name) == t);
    }
    for (uint64_t i = 0; i < g->n_kv; i++)
        sink += g->kv[i].type;
    struct cai_cam_verify_result r;
    rc = cai__cam_verify(g, NULL, NULL, &r, &err);
    REQUIRE(rc == 0 || (rc < 0 && err.msg[0]));
    REQUIRE(r.n_tensors == g->n_tensors);
    cai__gguf_close(g);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include "fuzz_main.h"
#endif
