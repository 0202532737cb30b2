/*
 * log.h — structured logging: one JSON object per line on stdout.
 *
 * Every line has "ts" (RFC 3339, UTC, ms), "level" and "msg"; callers add fields with
 * sbx_log_fields(). Thread-safe (one write(2) per line). Values are escaped as JSON strings.
 * Secrets (API keys, webhook secrets, passwords) MUST NOT be passed as values: log a key's
 * prefix or id instead. Lines are capped at SBX_LOG_LINE_MAX bytes (the message is truncated).
 *
 * Convention: common/, storage/ and runtime/ libraries return errors and log at most at debug
 * level; controller/ logs at the boundary where it decides what an error means.
 */
#pragma once

#include "common/macro.h"

enum sbx_log_level { SBX_LOG_DEBUG, SBX_LOG_INFO, SBX_LOG_WARN, SBX_LOG_ERROR };

#define SBX_LOG_LINE_MAX 4096

/* A key/value pair. type 's' = string, 'i' = int64, 'd' = double, 'b' = bool. */
struct sbx_log_field {
    const char *key;
    char type;
    union {
        const char *s;
        long long i;
        double d;
        int b;
    } v;
};

#define LF_STR(k, val) ((struct sbx_log_field){ .key = (k), .type = 's', .v.s = (val) })
#define LF_INT(k, val) ((struct sbx_log_field){ .key = (k), .type = 'i', .v.i = (val) })
#define LF_DBL(k, val) ((struct sbx_log_field){ .key = (k), .type = 'd', .v.d = (val) })
#define LF_BOOL(k, val) ((struct sbx_log_field){ .key = (k), .type = 'b', .v.b = (val) })

void sbx_log_set_level(enum sbx_log_level min);
int sbx_log_parse_level(const char *s, enum sbx_log_level *ret);
/* Redirect output (tests). fd must stay open; default STDOUT_FILENO. */
void sbx_log_set_fd(int fd);

void sbx_log(enum sbx_log_level lvl, const char *fmt, ...) _printf_(2, 3);
void sbx_log_fields(enum sbx_log_level lvl, const char *msg, const struct sbx_log_field *fields,
                    size_t n);

#define log_debug(...) sbx_log(SBX_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) sbx_log(SBX_LOG_INFO, __VA_ARGS__)
#define log_warn(...) sbx_log(SBX_LOG_WARN, __VA_ARGS__)
#define log_error(...) sbx_log(SBX_LOG_ERROR, __VA_ARGS__)

/* Logs "<msg>: <strerror(-r)>" at error level and returns r (a -errno value). */
int log_error_errno(int r, const char *fmt, ...) _printf_(2, 3);
