/* fuzz.h: what every libFuzzer target shares. REQUIRE states an invariant
 * of the code under test; a violation traps, which libFuzzer reports as a
 * crash with the input that caused it. */
#ifndef CAI_FUZZ_H
#define CAI_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#endif /* CAI_FUZZ_H */
