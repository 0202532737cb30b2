/*
 * log.c — JSON-lines logger (see log.h).
 *
 * Each line is formatted into a stack buffer and emitted with a single write(2), so lines from
 * different threads never interleave. No locks; the level is an atomic int.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int min_level = SBX_LOG_INFO;
static atomic_int out_fd = STDOUT_FILENO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void sbx_log_set_level(enum sbx_log_level min)
{
    atomic_store(&min_level, (int)min);
}

void sbx_log_set_fd(int fd)
{
    atomic_store(&out_fd, fd);
}

int sbx_log_parse_level(const char *s, enum sbx_log_level *ret)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *ret = (enum sbx_log_level)i;
            return 0;
        }
    return -EINVAL;
}

/* Appends a JSON-escaped string into [*p, end), never overflowing; truncates quietly. */
static void put_json_str(char **p, char *end, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char *q = *p;
    if (q < end)
        *q++ = '"';
    for (; s && *s && q + 7 < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *q++ = '\\';
            *q++ = (char)c;
        } else if (c == '\n') {
            *q++ = '\\';
            *q++ = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(q, "\\u00", 4);
            q[4] = hex[c >> 4];
            q[5] = hex[c & 15];
            q += 6;
        } else {
            *q++ = (char)c;
        }
    }
    if (q < end)
        *q++ = '"';
    *p = q;
}

static void put_raw(char **p, char *end, const char *fmt, ...) _printf_(3, 4);
static void put_raw(char **p, char *end, const char *fmt, ...)
{
    if (*p >= end)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*p, (size_t)(end - *p), fmt, ap);
    va_end(ap);
    if (n > 0)
        *p += MIN((size_t)n, (size_t)(end - *p) - 1);
}

static void emit(enum sbx_log_level lvl, const char *msg, const struct sbx_log_field *fields,
                 size_t n)
{
    char line[SBX_LOG_LINE_MAX];
    char *p = line, *end = line + sizeof(line) - 2; /* room for "}\n" */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    put_raw(&p, end, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level_names[lvl]);
    put_json_str(&p, end, msg);
    for (size_t i = 0; i < n; i++) {
        put_raw(&p, end, ",");
        put_json_str(&p, end, fields[i].key);
        put_raw(&p, end, ":");
        switch (fields[i].type) {
        case 'i':
            put_raw(&p, end, "%lld", fields[i].v.i);
            break;
        case 'd':
            put_raw(&p, end, "%.3f", fields[i].v.d);
            break;
        case 'b':
            put_raw(&p, end, "%s", fields[i].v.b ? "true" : "false");
            break;
        default:
            if (fields[i].v.s)
                put_json_str(&p, end, fields[i].v.s);
            else
                put_raw(&p, end, "null");
        }
    }
    *p++ = '}';
    *p++ = '\n';
    ssize_t w _unused_ = write(atomic_load(&out_fd), line, (size_t)(p - line));
}

void sbx_log_fields(enum sbx_log_level lvl, const char *msg, const struct sbx_log_field *fields,
                    size_t n)
{
    if ((int)lvl < atomic_load(&min_level))
        return;
    emit(lvl, msg, fields, n);
}

void sbx_log(enum sbx_log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < atomic_load(&min_level))
        return;
    char msg[SBX_LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(lvl, msg, NULL, 0);
}

int log_error_errno(int r, const char *fmt, ...)
{
    char msg[SBX_LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(r < 0 ? -r : r));
    if (atomic_load(&min_level) <= SBX_LOG_ERROR)
        emit(SBX_LOG_ERROR, msg, NULL, 0);
    return r;
}
