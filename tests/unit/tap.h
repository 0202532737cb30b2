/*
 * tap.h — a minimal TAP producer for the unit tests (header-only, one per test binary).
 *
 *   plan(n);                       or plan_no_plan() and the plan is printed by done()
 *   ok(cond, "fmt", ...);          is_int(got, want, "fmt", ...);  is_str(got, want, "fmt", ...)
 *   diag("fmt", ...);              skip_all("reason") exits 77
 *   return done();                 exit status: 0 all passed, 1 something failed
 *
 * Failures print the file, line and the values compared as "#" diagnostics.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_run, tap_failed, tap_planned = -1;

static inline void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline void plan_no_plan(void)
{
    tap_planned = -1;
}

__attribute__((format(printf, 1, 2))) static inline void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

__attribute__((noreturn)) static inline void skip_all(const char *reason)
{
    printf("1..0 # SKIP %s\n", reason);
    fflush(stdout);
    exit(77);
}

__attribute__((format(printf, 4, 0))) static inline bool tap_vok(bool pass, const char *file,
                                                                  int line, const char *fmt,
                                                                  va_list ap)
{
    tap_run++;
    if (!pass)
        tap_failed++;
    printf("%sok %d - ", pass ? "" : "not ", tap_run);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    if (!pass)
        printf("#   failed at %s:%d\n", file, line);
    fflush(stdout);
    return pass;
}

__attribute__((format(printf, 4, 5))) static inline bool tap_ok(bool pass, const char *file,
                                                                 int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool r = tap_vok(pass, file, line, fmt, ap);
    va_end(ap);
    return r;
}

__attribute__((format(printf, 5, 6))) static inline bool
tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool r = tap_vok(got == want, file, line, fmt, ap);
    va_end(ap);
    if (!r)
        printf("#          got: %lld\n#     expected: %lld\n", got, want);
    return r;
}

__attribute__((format(printf, 5, 6))) static inline bool
tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    bool pass = (got && want) ? strcmp(got, want) == 0 : got == want;
    va_start(ap, fmt);
    bool r = tap_vok(pass, file, line, fmt, ap);
    va_end(ap);
    if (!r)
        printf("#          got: '%s'\n#     expected: '%s'\n", got ? got : "(null)",
               want ? want : "(null)");
    return r;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                                                    \
    tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

static inline int done(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_run);
    else if (tap_planned != tap_run)
        printf("# planned %d tests but ran %d\n", tap_planned, tap_run);
    if (tap_failed)
        printf("# failed %d of %d tests\n", tap_failed, tap_run);
    fflush(stdout);
    return (tap_failed || (tap_planned >= 0 && tap_planned != tap_run)) ? 1 : 0;
}
