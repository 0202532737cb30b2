/* validate.c — request field validation (see validate.h). */
#include "controller/validate.h"

#include <errno.h>
#include <string.h>

static int fail(struct http_response *resp, const char *key, const char *what)
{
    http_error(resp, 422, "validation_error", "field '%s' %s", key, what);
    return -EINVAL;
}

int v_string(yajl_val obj, const char *key, bool required, size_t min_len, size_t max_len,
             const char **ret, struct http_response *resp)
{
    yajl_val v = yajl_tree_get(obj, (const char *[]){ key, NULL }, yajl_t_any);
    if (!v || YAJL_IS_NULL(v))
        return required ? fail(resp, key, "is required") : 0;
    if (!YAJL_IS_STRING(v))
        return fail(resp, key, "must be a string");
    size_t n = strlen(v->u.string);
    if (n < min_len)
        return fail(resp, key, min_len == 1 ? "must not be empty" : "is too short");
    if (n > max_len) {
        http_error(resp, 422, "validation_error", "field '%s' must be at most %zu bytes", key,
                   max_len);
        return -EINVAL;
    }
    *ret = v->u.string;
    return 0;
}

int v_int(yajl_val obj, const char *key, bool required, long long min, long long max,
          long long *ret, bool *present, struct http_response *resp)
{
    if (present)
        *present = false;
    yajl_val v = yajl_tree_get(obj, (const char *[]){ key, NULL }, yajl_t_any);
    if (!v || YAJL_IS_NULL(v))
        return required ? fail(resp, key, "is required") : 0;
    if (!YAJL_IS_INTEGER(v))
        return fail(resp, key, "must be an integer");
    long long x = YAJL_GET_INTEGER(v);
    if (x < min || x > max) {
        http_error(resp, 422, "validation_error", "field '%s' must be between %lld and %lld",
                   key, min, max);
        return -EINVAL;
    }
    *ret = x;
    if (present)
        *present = true;
    return 0;
}

int v_bool(yajl_val obj, const char *key, bool *ret, struct http_response *resp)
{
    yajl_val v = yajl_tree_get(obj, (const char *[]){ key, NULL }, yajl_t_any);
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
        return fail(resp, key, "must be a boolean");
    *ret = YAJL_IS_TRUE(v);
    return 0;
}

int v_string_map(yajl_val obj, const char *key, size_t max_entries, size_t max_len,
                 yajl_val *ret, struct http_response *resp)
{
    yajl_val v = yajl_tree_get(obj, (const char *[]){ key, NULL }, yajl_t_any);
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_OBJECT(v))
        return fail(resp, key, "must be an object of strings");
    if (v->u.object.len > max_entries) {
        http_error(resp, 422, "validation_error", "field '%s' has more than %zu entries", key,
                   max_entries);
        return -EINVAL;
    }
    for (size_t i = 0; i < v->u.object.len; i++) {
        yajl_val e = v->u.object.values[i];
        if (!YAJL_IS_STRING(e) || strlen(e->u.string) > max_len ||
            strlen(v->u.object.keys[i]) > 256)
            return fail(resp, key, "must map names to strings of bounded length");
    }
    *ret = v;
    return 0;
}

bool v_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t len;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        p += len;
    }
    return true;
}

bool v_email(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 254)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@'))
        return false;
    const char *dot = strrchr(at + 1, '.');
    if (!dot || dot == at + 1 || dot[1] == '\0')
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '"' || *c == '<' || *c == '>' || *c == ',' ||
            *c == ';' || *c == '\\' || (unsigned char)*c == 0x7f)
            return false;
    return true;
}

static bool digits(const char **p, int n)
{
    for (int i = 0; i < n; i++, (*p)++)
        if (**p < '0' || **p > '9')
            return false;
    return true;
}

bool v_iso8601(const char *s)
{
    const char *p = s;
    if (!s || strlen(s) > 40 || !digits(&p, 4) || *p++ != '-' || !digits(&p, 2) ||
        *p++ != '-' || !digits(&p, 2))
        return false;
    if (!*p)
        return true;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return false;
    p++;
    if (!digits(&p, 2) || *p++ != ':' || !digits(&p, 2))
        return false;
    if (*p == ':') {
        p++;
        if (!digits(&p, 2))
            return false;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9')
                return false;
            while (*p >= '0' && *p <= '9')
                p++;
        }
    }
    if (!*p)
        return true;
    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if (*p != '+' && *p != '-')
        return false;
    p++;
    if (!digits(&p, 2))
        return false;
    if (*p == ':')
        p++;
    if (*p && !digits(&p, 2))
        return false;
    return *p == '\0';
}

bool v_not_blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' && *s != '\v')
            return true;
    return false;
}
