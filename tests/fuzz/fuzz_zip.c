/* fuzz_zip.c: libFuzzer target for the zip reader: accepted archives have
 * every entry's data inside the input and found by name; CRCs are computed.
 * Build: `make fuzz`; run: build-fuzz/fuzz_zip -max_total_time=60 tests/fuzz/corpus/zip */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

#include "format/zip.h"


static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cai_zip *z = (struct cai_zip *)1;
    struct cai_error err = {0};
    int rc = cai__zip_open_buffer(&z, data, size, "fuzz.zip", &err);
    if (rc) {
        REQUIRE(rc < 0 && z == NULL && err.msg[0]);
        return 0;
    }
    for (uint64_t i = 0; i < z->n_entries; i++) {
        const struct cai_zip_entry *e = &z->entries[i];
        REQUIRE(cai__zip_find(z, e->name) == e);
        REQUIRE(e->data == data + e->offset && e->offset <= size && e->n_bytes <= size - e->offset);
        REQUIRE(e->name[0] && e->name[0] != '/' && !strstr(e->name, "\\"));
        rc = cai__zip_check_crc(z, e, &err);
        REQUIRE(rc == 0 || (rc < 0 && err.msg[0]));
        sink += rc;
    }
    cai__zip_close(z);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include "fuzz_main.h"
#endif
