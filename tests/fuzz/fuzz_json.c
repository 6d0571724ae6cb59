/* fuzz_json.c: libFuzzer target for the JSON parser. Accepted documents are
 * walked completely (every node, every typed view) without recursion, and
 * the walk must visit exactly the nodes the parser made.
 * Build: `make fuzz`; run: build-fuzz/fuzz_json -max_total_time=60 tests/fuzz/corpus/json */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

#include "base/json.h"


static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cai_json *j = (struct cai_json *)1;
    struct cai_error err = {0};
    int rc = cai__json_parse(&j, (const char *)data, size, 32, "fuzz.json", &err);
    if (rc) {
        REQUIRE(rc < 0 && j == NULL && err.msg[0]);
        return 0;
    }
    uint32_t n = cai__json_n_nodes(j);
    const struct cai_json_node *root = cai__json_root(j);
    REQUIRE(root && n >= 1 && root->end == n);
    for (uint32_t i = 0; i < n; i++) {
        const struct cai_json_node *x = root + i;
        uint64_t u;
        int64_t v;
        double f;
        bool b;
        REQUIRE(x->end > i && x->end <= n);
        if (x->type == CAI_JSON_STRING) {
            REQUIRE(x->s[x->len] == '\0');
            sink += x->len ? (uint8_t)x->s[x->len - 1] : 0;
        }
        sink += cai__json_u64(x, &u) + cai__json_i64(x, &v) + cai__json_f64(x, &f) +
                cai__json_bool(x, &b);
        uint32_t count = 0;
        for (const struct cai_json_node *c = cai__json_first(j, x); c; c = cai__json_next(j, x, c)) {
            REQUIRE(c > x && c < root + x->end);
            count++;
        }
        if (x->type == CAI_JSON_ARRAY || x->type == CAI_JSON_OBJECT)
            REQUIRE(count == x->n);
        if (x->type == CAI_JSON_OBJECT && x->n)
            sink += (uintptr_t)cai__json_get(j, x, "a");
    }
    cai__json_free(j);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
#include "fuzz_main.h"
#endif
