/* timeutil.c — clocks and timestamp formatting (see timeutil.h). */
#include "common/timeutil.h"

#include <stdio.h>

uint64_t sbx_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t sbx_now_ms(void)
{
    return sbx_now_us() / 1000u;
}

void sbx_format_rfc3339(int64_t sec, int64_t usec, char *out, size_t outlen)
{
    struct tm tm;
    time_t t = (time_t)sec;
    gmtime_r(&t, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)usec);
}
