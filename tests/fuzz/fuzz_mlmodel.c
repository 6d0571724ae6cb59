/* fuzz_mlmodel.c: libFuzzer target for the Core ML model reader.
 *
 * Opens each input with cml_model_open_buffer() and, when it is accepted,
 * walks the description and predicts with it: zeros for every numeric input,
 * an empty string, an empty dictionary. A failure must carry a message; an
 * accepted model must describe itself consistently. Sanitizer errors and
 * these traps are what the fuzzer reports.
 *
 * Build: `make fuzz`; run: build-fuzz/fuzz_mlmodel -max_total_time=60
 * tests/fuzz/corpus/mlmodel. With -DCAI_FUZZ_STANDALONE it gets a main()
 * that replays files (the corpus is also replayed by test_coreml_bad). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreml.h"
#include "fuzz.h"


static double zeros[4096];
static const char *no_keys[1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cml_model *m = NULL;
    struct cai_error err = {0};
    if (cml_model_open_buffer(&m, data, size, &err) != 0) {
        REQUIRE(m == NULL && err.code < 0 && err.msg[0] != '\0');
        return 0;
    }
    size_t n_in = cml_model_n_inputs(m);
    REQUIRE(n_in > 0 && cml_model_n_outputs(m) > 0);
    for (size_t i = 0; i < cml_model_n_outputs(m); i++)
        REQUIRE(cml_model_find_output(m, cml_model_output(m, i)->name) >= 0);
    for (size_t i = 0; i < cml_model_n_parts(m); i++)
        REQUIRE(cml_model_part_name(m, i) && cml_model_part_info(m, i));
    for (size_t i = 0; i < cml_model_n_classes(m); i++)
        (void)(cml_model_labels_are_strings(m) ? (void)strlen(cml_model_class_str(m, i)) :
                                                 (void)cml_model_class_i64(m, i));
    struct cml_ctx *ctx;
    if (cml_ctx_new(&ctx, m, &err) == 0) {
        struct cml_value in[16];
        if (n_in <= 16) {
            uint8_t px[16 * 16 * 4] = {0};
            for (size_t i = 0; i < n_in; i++) {
                const struct cml_feature *f = cml_model_input(m, i);
                struct cml_value v = cml_value_double(0);
                size_t n = 1;
                switch (f->type) {
                case CML_TYPE_INT64: v = cml_value_int64(0); break;
                case CML_TYPE_STRING: v = cml_value_string(""); break;
                case CML_TYPE_MULTIARRAY:
                    for (int k = 0; k < f->n_dims; k++)
                        n *= (size_t)f->shape[k];
                    v = cml_value_array(zeros, n < 4096 ? n : 4096);
                    break;
                case CML_TYPE_DICT:
                    v.type = CML_TYPE_DICT;
                    v.keys_str = no_keys;
                    v.data = zeros;
                    v.n_elem = 0;
                    break;
                case CML_TYPE_IMAGE:
                    v.type = CML_TYPE_IMAGE;
                    v.pixels = px;
                    v.width = v.height = 16;
                    v.channels = 4;
                    v.stride = 64;
                    break;
                default: break;
                }
                in[i] = v;
            }
            if (cml_predict(ctx, in, n_in) == 0) {
                for (size_t i = 0; i < cml_model_n_outputs(m); i++)
                    REQUIRE(cml_ctx_output(ctx, i) != NULL);
            } else {
                REQUIRE(cml_ctx_errmsg(ctx)[0] != '\0');
            }
        }
        cml_predict_batch(ctx, zeros, 2, 4, NULL);
        cml_ctx_free(ctx);
    }
    cml_model_close(m);
    return 0;
}

#ifdef CAI_FUZZ_STANDALONE
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f)
            continue;
        static uint8_t buf[1 << 22];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    return 0;
}
#endif
