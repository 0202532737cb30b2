/* test-buf.c — common/buf.c: capped growable buffer, printf, JSON string escaping. */
#include "common/buf.h"

#include <errno.h>
#include <string.h>

#include "tests/unit/tap.h"

static void test_basic(void)
{
    _cleanup_buf_ struct sbx_buf b = SBX_BUF_INIT;
    is_int(sbx_buf_puts(&b, "hello"), 0, "puts");
    is_int(sbx_buf_append(&b, ", ", 2), 0, "append");
    is_int(sbx_buf_printf(&b, "%s %d!", "world", 42), 0, "printf");
    is_str(b.data, "hello, world 42!", "content");
    is_int(b.len, 16, "len excludes the NUL");
    is_int(sbx_buf_append(&b, NULL, 0), 0, "append nothing");
    is_int(b.len, 16, "len unchanged by empty append");

    /* growth across many doublings keeps the content */
    for (int i = 0; i < 10000; i++)
        if (sbx_buf_printf(&b, "%04d", i % 10000) < 0)
            break;
    is_int(b.len, 16 + 40000, "10000 printf appends");
    ok(memcmp(b.data + b.len - 4, "9999", 4) == 0 && b.data[b.len] == '\0',
       "tail and NUL terminator");

    sbx_buf_reset(&b);
    is_int(b.len, 0, "reset empties");
    is_str(b.data, "", "reset keeps a NUL-terminated buffer");

    is_int(sbx_buf_append(&b, "a\0b", 3), 0, "binary append");
    is_int(b.len, 3, "binary length");
    size_t n;
    char *s = sbx_buf_steal(&b, &n);
    is_int(n, 3, "steal length");
    ok(memcmp(s, "a\0b", 4) == 0, "steal content with NUL terminator");
    ok(b.data == NULL && b.len == 0, "steal empties the buffer");
    free(s);

    struct sbx_buf e = SBX_BUF_INIT;
    s = sbx_buf_steal(&e, &n);
    ok(s != NULL && s[0] == '\0' && n == 0, "steal of an empty buffer is \"\"");
    free(s);
    sbx_buf_free(&e);
    sbx_buf_free(&e);
    ok(e.data == NULL, "free is idempotent");
}

static void test_cap(void)
{
    _cleanup_buf_ struct sbx_buf b;
    sbx_buf_init(&b, 10);
    is_int(sbx_buf_puts(&b, "0123456789"), 0, "fill to exactly the cap");
    is_int(sbx_buf_append(&b, "x", 1), -E2BIG, "one byte over the cap → -E2BIG");
    is_str(b.data, "0123456789", "unchanged after refused append");
    sbx_buf_reset(&b);
    is_int(sbx_buf_puts(&b, "01234"), 0, "half");
    is_int(sbx_buf_printf(&b, "%s", "abcdef"), -E2BIG, "printf over the cap → -E2BIG");
    is_str(b.data, "01234", "unchanged after refused printf");
    is_int(b.len, 5, "len unchanged after refused printf");
    is_int(sbx_buf_printf(&b, "%d", 12345), 0, "printf to exactly the cap");
    is_str(b.data, "0123412345", "content at the cap");
    is_int(sbx_buf_append(&b, "", 0), 0, "empty append at the cap");
    is_int(sbx_buf_append(&b, "x", SIZE_MAX), -E2BIG, "huge length refused before copying");
}

static void json_is(const char *in, size_t n, const char *want, const char *what)
{
    _cleanup_buf_ struct sbx_buf b = SBX_BUF_INIT;
    is_int(sbx_buf_json_str(&b, in, n), 0, "%s: ok", what);
    is_str(b.data, want, "%s", what);
}

static void test_json_str(void)
{
    json_is("plain", 5, "\"plain\"", "plain");
    json_is("", 0, "\"\"", "empty");
    json_is("a\"b\\c", 5, "\"a\\\"b\\\\c\"", "quote and backslash");
    json_is("\n\r\t", 3, "\"\\n\\r\\t\"", "short escapes");
    json_is("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"", "control characters");
    json_is("a\0b", 3, "\"a\\u0000b\"", "embedded NUL");
    json_is("\b\f", 2, "\"\\u0008\\u000c\"", "backspace and form feed");
    json_is("/ \xc3\xa9 \xf0\x9f\x98\x80", 9, "\"/ \xc3\xa9 \xf0\x9f\x98\x80\"",
            "slash and UTF-8 pass through");
    json_is("\xe2\x80\xa8", 3, "\"\xe2\x80\xa8\"", "U+2028 passes through (valid JSON)");

    _cleanup_buf_ struct sbx_buf b;
    sbx_buf_init(&b, 8);
    is_int(sbx_buf_puts(&b, "ab"), 0, "prefix");
    is_int(sbx_buf_json_str(&b, "\x01\x02", 2), -E2BIG, "escaped string over the cap");
    is_str(b.data, "ab", "buffer restored after a partial escape");
    is_int(b.len, 2, "len restored");
    is_int(sbx_buf_json_str(&b, "xyz", 3), 0, "fits exactly");
    is_str(b.data, "ab\"xyz\"", "content");
}

int main(void)
{
    plan_no_plan();
    test_basic();
    test_cap();
    test_json_str();
    return done();
}
