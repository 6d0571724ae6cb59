/* fuzz_safetensors.c: libFuzzer target for the safetensors reader. Accepted
 * files must keep every promise: tensors inside the buffer, contiguous and
 * covering it, sizes matching shapes, look-ups finding each tensor.
 * Build: `make fuzz`; run: build-fuzz/fuzz_safetensors -max_total_time=60
 * tests/fuzz/corpus/safetensors */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

#include "format/safetensors.h"


static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cai_safetensors *st = (struct cai_safetensors *)1;
    struct cai_error err = {0};
    int rc = cai__st_open_buffer(&st, data, size, "fuzz.safetensors", &err);
    if (rc) {
        REQUIRE(rc < 0 && st == NULL && err.msg[0]);
        return 0;
    }
    uint64_t covered = 0;
    const uint8_t *buf = data + 8 + st->header_bytes;
    for (uint64_t i = 0; i < st->n_tensors; i++) {
        const struct cai_st_tensor *t = &st->tensors[i];
        REQUIRE(cai__st_find(st, t->name) == t);
        REQUIRE(t->data == buf + t->begin && t->begin + t->n_bytes <= size - 8 - st->header_bytes);
        REQUIRE(t->n_elem * cai__st_dtype_bits(t->dtype) == t->n_bytes * 8);
        if (t->n_bytes)
            sink += t->data[0] + t->data[t->n_bytes - 1];
        covered += t->n_bytes;
    }
    REQUIRE(covered == size - 8 - st->header_bytes);
    for (uint64_t i = 0; i < st->n_meta; i++)
        REQUIRE(cai__st_meta(st, st->meta_keys[i]) != NULL);
    cai__st_close(st);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include "fuzz_main.h"
#endif
