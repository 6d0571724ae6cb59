/* time.c: the monotonic clock. */
#include <time.h>

#include "base.h"

int64_t cai__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
