/* test_cli.c: runs tests/cli_test.sh (the `coreai bench` and `coreai
 * profile` subcommands end to end) from the unit test suite, against
 * $B/coreai and the default model (skipped without them). */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static void test_cli_script(void)
{
    const char *b = getenv("B");
    char cmd[512], tool[256];
    snprintf(tool, sizeof(tool), "%s/coreai", b && *b ? b : "build");
    if (access(tool, X_OK) != 0)
        SKIP("%s is not built", tool);
    if (access("models/SmolLM2-135M-Instruct.Q4_1.gguf", R_OK) != 0)
        SKIP("the default model is not in models/ (scripts/get_model.sh)");
    snprintf(cmd, sizeof(cmd), "B=%s bash tests/cli_test.sh", b && *b ? b : "build");
    int st = system(cmd);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    RUN(test_cli_script);
    return test_done();
}
