/* fuzz_pickle.c: libFuzzer target for the restricted pickle reader. It must
 * never crash, never loop, and only ever produce the value types it
 * declares; tensors it returns have consistent ranks.
 * Build: `make fuzz`; run: build-fuzz/fuzz_pickle -max_total_time=60 tests/fuzz/corpus/pickle */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

#include "format/pickle.h"


static volatile uint64_t sink;

static void touch(const struct cai_pk_obj *o, const uint8_t *data, size_t size)
{
    REQUIRE(o->type <= CAI_PK_TENSOR);
    if (o->type == CAI_PK_STR || o->type == CAI_PK_BYTES)
        REQUIRE((const uint8_t *)o->s >= data && o->len <= size &&
                (const uint8_t *)o->s + o->len <= data + size);
    if (o->type == CAI_PK_DICT)
        REQUIRE(o->n % 2 == 0);
    if (o->type == CAI_PK_TENSOR) {
        REQUIRE(o->n_dims <= CAI_PK_MAX_DIMS && o->storage->type == CAI_PK_STORAGE);
        REQUIRE(cai__pk_storage_elem_size(o->storage->storage_type) > 0);
    }
    sink += o->n + (uint64_t)o->i;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cai_pickle *p = (struct cai_pickle *)1;
    const struct cai_pk_obj *root;
    struct cai_error err = {0};
    int rc = cai__pk_parse(&p, &root, data, size, "fuzz.pkl", &err);
    if (rc) {
        REQUIRE(rc < 0 && p == NULL && err.msg[0]);
        return 0;
    }
    touch(root, data, size);
    /* One level of children (the graph may share nodes; no deep walk). */
    for (uint32_t i = 0; i < root->n && root->type >= CAI_PK_TUPLE && root->type <= CAI_PK_DICT;
         i++)
        touch(root->items[i], data, size);
    cai__pk_free(p);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include "fuzz_main.h"
#endif
