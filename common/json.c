/* json.c — bounded JSON parsing and generation helpers (see json.h). Any thread. */
#include "common/json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Scans for nesting depth outside strings. Returns the max depth seen, stopping early once it
 * exceeds limit. Sets *nul_escape when a string holds "\u0000" (yajl's tree keeps C strings,
 * so such a string would be silently truncated). */
static unsigned scan_depth(const char *p, size_t n, unsigned limit, bool *nul_escape)
{
    unsigned depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') {
                if (n - i >= 6 && memcmp(p + i + 1, "u0000", 5) == 0)
                    *nul_escape = true;
                i++;
            } else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
            if (max > limit)
                return max;
        } else if (c == '}' || c == ']') {
            if (depth)
                depth--;
        }
    }
    return max;
}

int sbx_json_parse(const char *data, size_t len, size_t max_bytes, unsigned max_depth,
                   yajl_val *ret, char *errbuf, size_t errlen)
{
    if (len > max_bytes) {
        snprintf(errbuf, errlen, "JSON document exceeds %zu bytes", max_bytes);
        return -E2BIG;
    }
    bool nul_escape = false;
    if (scan_depth(data, len, max_depth, &nul_escape) > max_depth) {
        snprintf(errbuf, errlen, "JSON nesting exceeds depth %u", max_depth);
        return -ELOOP;
    }
    if (memchr(data, '\0', len) || nul_escape) {
        snprintf(errbuf, errlen, "JSON contains a NUL byte");
        return -EINVAL;
    }
    _cleanup_free_ char *copy = xstrndup(data, len); /* yajl_tree_parse wants a C string */
    char yerr[256] = "";
    yajl_val v = yajl_tree_parse(copy, yerr, sizeof(yerr));
    if (!v) {
        /* yajl's message spans lines and quotes the input; keep the first line only. */
        char *nl = strchr(yerr, '\n');
        if (nl)
            *nl = '\0';
        snprintf(errbuf, errlen, "malformed JSON: %s", yerr[0] ? yerr : "parse error");
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

yajl_val sbx_json_get(yajl_val obj, const char *key)
{
    if (!obj || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

const char *sbx_json_get_str(yajl_val obj, const char *key)
{
    yajl_val v = sbx_json_get(obj, key);
    return v && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

bool sbx_json_is_int(yajl_val v)
{
    return v && YAJL_IS_INTEGER(v);
}

yajl_gen sbx_jgen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        abort();
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
}

void sbx_jgen_strn(yajl_gen g, const char *s, size_t n)
{
    if (yajl_gen_string(g, (const unsigned char *)s, n) == yajl_gen_invalid_string)
        yajl_gen_string(g, (const unsigned char *)"\xef\xbf\xbd", 3); /* U+FFFD */
}

void sbx_jgen_str(yajl_gen g, const char *s)
{
    if (!s)
        yajl_gen_null(g);
    else
        sbx_jgen_strn(g, s, strlen(s));
}

void sbx_jgen_key(yajl_gen g, const char *k)
{
    /* Same U+FFFD replacement as values: an invalid key must not drop out of the document. */
    sbx_jgen_strn(g, k, strlen(k));
}

void sbx_jgen_kstr(yajl_gen g, const char *k, const char *v)
{
    sbx_jgen_key(g, k);
    sbx_jgen_str(g, v);
}

void sbx_jgen_kint(yajl_gen g, const char *k, long long v)
{
    sbx_jgen_key(g, k);
    yajl_gen_integer(g, v);
}

void sbx_jgen_kdbl(yajl_gen g, const char *k, double v)
{
    sbx_jgen_key(g, k);
    yajl_gen_double(g, v);
}

void sbx_jgen_kbool(yajl_gen g, const char *k, bool v)
{
    sbx_jgen_key(g, k);
    yajl_gen_bool(g, v);
}

void sbx_jgen_knull(yajl_gen g, const char *k)
{
    sbx_jgen_key(g, k);
    yajl_gen_null(g);
}

void sbx_jgen_value(yajl_gen g, yajl_val v)
{
    if (!v) {
        yajl_gen_null(g);
    } else if (YAJL_IS_STRING(v)) {
        sbx_jgen_str(g, v->u.string);
    } else if (YAJL_IS_INTEGER(v)) {
        yajl_gen_integer(g, v->u.number.i);
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_TRUE(v)) {
        yajl_gen_bool(g, 1);
    } else if (YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, 0);
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            sbx_jgen_key(g, v->u.object.keys[i]);
            sbx_jgen_value(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            sbx_jgen_value(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else {
        yajl_gen_null(g);
    }
}

char *sbx_jgen_take(yajl_gen g, size_t *ret_len)
{
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char *out = xmalloc(len + 1);
    memcpy(out, buf, len);
    out[len] = '\0';
    if (ret_len)
        *ret_len = len;
    return out;
}
