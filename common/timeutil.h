/* timeutil.h — clocks and timestamp formatting. Any thread. */
#pragma once

#include <stdint.h>
#include <time.h>

/* Monotonic time in microseconds / milliseconds. */
uint64_t sbx_now_us(void);
uint64_t sbx_now_ms(void);
/* Formats a UNIX time (seconds + microseconds) as RFC 3339 UTC "2026-01-02T03:04:05.123456Z".
 * out must hold at least 32 bytes. */
void sbx_format_rfc3339(int64_t sec, int64_t usec, char *out, size_t outlen);
