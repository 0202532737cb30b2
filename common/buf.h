/*
 * buf.h — a growable byte buffer with an optional size cap (curl's dynbuf idea).
 *
 * The data is always NUL-terminated (the NUL is not counted in len). Appends beyond `max`
 * (0 = unlimited) fail with -E2BIG and leave the buffer unchanged. Not thread-safe; one owner.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct sbx_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

#define SBX_BUF_INIT { NULL, 0, 0, 0 }

void sbx_buf_init(struct sbx_buf *b, size_t max);
void sbx_buf_free(struct sbx_buf *b);
void sbx_buf_reset(struct sbx_buf *b);
int sbx_buf_append(struct sbx_buf *b, const void *p, size_t n) _warn_unused_;
int sbx_buf_puts(struct sbx_buf *b, const char *s) _warn_unused_;
int sbx_buf_printf(struct sbx_buf *b, const char *fmt, ...) _printf_(2, 3) _warn_unused_;
int sbx_buf_vprintf(struct sbx_buf *b, const char *fmt, va_list ap) _printf_(2, 0) _warn_unused_;
/* Appends s as a JSON string literal (with quotes), escaping as RFC 8259 requires. */
int sbx_buf_json_str(struct sbx_buf *b, const char *s, size_t n) _warn_unused_;
/* Detaches the data (caller frees); the buffer becomes empty. Never NULL. */
char *sbx_buf_steal(struct sbx_buf *b, size_t *ret_len);

static inline void sbx_buf_freep(struct sbx_buf *b)
{
    sbx_buf_free(b);
}
#define _cleanup_buf_ _cleanup_(sbx_buf_freep)
