/* test_scripts.c: runs the end-to-end shell tests from the unit test suite,
 * against the tools of $B (default build), each skipped when what it needs
 * is missing:
 *   tests/convert_kill_test.sh  conversions killed with SIGKILL at random
 *                               points, a file-size limit, a full disk
 *                               ($B/coreai-torch);
 *   tests/cli_test.sh           `coreai bench` and `coreai profile` end to
 *                               end ($B/coreai and the default model). */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* B=$B bash SCRIPT, which must exit 0; skipped without $B/TOOL or NEED (a
 * file that must be readable, or NULL). */
static void run_script(const char *tool, const char *need, const char *script)
{
    const char *b = getenv("B");
    char cmd[512], path[256];
    b = b && *b ? b : "build";
    snprintf(path, sizeof(path), "%s/%s", b, tool);
    if (access(path, X_OK) != 0)
        SKIP("%s is not built", path);
    if (need && access(need, R_OK) != 0)
        SKIP("%s is missing (scripts/get_model.sh)", need);
    snprintf(cmd, sizeof(cmd), "B=%s bash %s", b, script);
    int st = system(cmd);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_convert_kill(void)
{
    run_script("coreai-torch", NULL, "tests/convert_kill_test.sh");
}

static void test_cli(void)
{
    run_script("coreai", "models/SmolLM2-135M-Instruct.Q4_1.gguf", "tests/cli_test.sh");
}

int main(void)
{
    RUN(test_convert_kill);
    RUN(test_cli);
    return test_done();
}
