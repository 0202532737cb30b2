/*
 * macro.h — small language helpers shared by every module.
 *
 * Cleanup convention (docs/internals/CONVENTIONS.md): locals that own a resource are declared
 * with a _cleanup_*_ attribute and released automatically when they leave scope; ownership is
 * handed on with TAKE_PTR()/TAKE_FD(). Where cleanup order matters a function uses one forward
 * goto chain whose labels say what they undo.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_ __attribute__((warn_unused_result))
#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
    free(*(void **)p);
}

static inline void closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Defines `static inline void name##p(type *p)` calling func(*p) when *p is non-NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                   \
    static inline void func##p(type *p)                                                           \
    {                                                                                             \
        if (*p)                                                                                   \
            func(*p);                                                                             \
    }

/* Take ownership out of a _cleanup_ variable: returns its value and leaves NULL / -1 behind. */
#define TAKE_PTR(p)                                                                               \
    ({                                                                                            \
        __typeof__(p) _tmp = (p);                                                                 \
        (p) = NULL;                                                                               \
        _tmp;                                                                                     \
    })
#define TAKE_FD(fd)                                                                               \
    ({                                                                                            \
        int _tmp = (fd);                                                                          \
        (fd) = -1;                                                                                \
        _tmp;                                                                                     \
    })

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation failure is not recoverable in this daemon: these abort with a message. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
