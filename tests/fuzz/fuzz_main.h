/* fuzz_main.h: a main() that replays files through LLVMFuzzerTestOneInput,
 * for running a corpus as a plain regression test without libFuzzer
 * (build a target with -DCAI_FUZZ_STANDALONE). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        size_t cap = 1 << 16, n = 0;
        uint8_t *buf = malloc(cap);
        for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
            n += r;
            if (n == cap)
                buf = realloc(buf, cap *= 2);
        }
        fclose(f);
        if (!buf)
            return 1;
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    printf("%d files replayed\n", argc - 1);
    return 0;
}
