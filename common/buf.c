/* buf.c — growable capped byte buffer (see buf.h). */
#include "common/buf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void sbx_buf_init(struct sbx_buf *b, size_t max)
{
    *b = (struct sbx_buf){ .max = max };
}

void sbx_buf_free(struct sbx_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sbx_buf_reset(struct sbx_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(struct sbx_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return -E2BIG;
    size_t need = b->len + extra + 1;
    if (b->max && need - 1 > b->max)
        return -E2BIG;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int sbx_buf_append(struct sbx_buf *b, const void *p, size_t n)
{
    int r = reserve(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sbx_buf_puts(struct sbx_buf *b, const char *s)
{
    return sbx_buf_append(b, s, strlen(s));
}

int sbx_buf_vprintf(struct sbx_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    int r = reserve(b, (size_t)n);
    if (r < 0)
        return r;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sbx_buf_printf(struct sbx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = sbx_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

int sbx_buf_json_str(struct sbx_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    int r = sbx_buf_append(b, "\"", 1);
    for (size_t i = 0; r == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        switch (c) {
        case '"':
            r = sbx_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            r = sbx_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            r = sbx_buf_append(b, "\\n", 2);
            break;
        case '\r':
            r = sbx_buf_append(b, "\\r", 2);
            break;
        case '\t':
            r = sbx_buf_append(b, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                esc[0] = '\\';
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                r = sbx_buf_append(b, esc, 6);
            } else {
                r = sbx_buf_append(b, &s[i], 1);
            }
        }
    }
    if (r == 0)
        r = sbx_buf_append(b, "\"", 1);
    if (r < 0) {
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return r;
}

char *sbx_buf_steal(struct sbx_buf *b, size_t *ret_len)
{
    char *p = b->data ? b->data : xstrdup("");
    if (ret_len)
        *ret_len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
