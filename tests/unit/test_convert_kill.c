/* test_convert_kill.c: runs tests/convert_kill_test.sh (conversions killed
 * with SIGKILL at random points, a file-size limit, a full disk) from the
 * unit test suite, against $B/coreai-torch. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static void test_kill_script(void)
{
    const char *b = getenv("B");
    char cmd[512], tool[256];
    snprintf(tool, sizeof(tool), "%s/coreai-torch", b && *b ? b : "build");
    if (access(tool, X_OK) != 0)
        SKIP("%s is not built", tool);
    snprintf(cmd, sizeof(cmd), "B=%s bash tests/convert_kill_test.sh", b && *b ? b : "build");
    int st = system(cmd);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    RUN(test_kill_script);
    return test_done();
}
