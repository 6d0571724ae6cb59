/* fuzz_json_gate.c: libFuzzer target for the JSON-mode gate, differential
 * against the JSON parser: text the gate accepts as one complete object
 * must parse, as an object; feeding it in one call or in pieces (split at
 * the first input byte's value) must agree.
 * Build: `make fuzz`; run: build-fuzz/fuzz_json_gate -max_total_time=60 tests/fuzz/corpus/json */
#include <stddef.h>
#include <stdint.h>

#include "base/json.h"
#include "sample/json_gate.h"
#include "fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct cai__jgate whole, parts;
    cai__jgate_init(&whole);
    cai__jgate_init(&parts);
    bool ok_whole = cai__jgate_feed(&whole, s, size);
    size_t step = size ? (size_t)(data[0] % 7) + 1 : 1, i = 0;
    bool ok_parts = true;
    while (ok_parts && i < size) {
        size_t n = size - i < step ? size - i : step;
        ok_parts = cai__jgate_feed(&parts, s + i, n);
        i += n;
    }
    REQUIRE(ok_whole == ok_parts);
    if (ok_whole && cai__jgate_done(&whole)) {
        REQUIRE(cai__jgate_done(&parts));
        struct cai_json *j = NULL;
        int rc = cai__json_parse(&j, s, size, 64, "gate", NULL);
        REQUIRE(rc == 0);
        REQUIRE(cai__json_root(j)->type == CAI_JSON_OBJECT);
        cai__json_free(j);
    }
    return 0;
}
