/* router.c — static route table matching (see router.h). Pure; any thread. */
#include "controller/router.h"

#include <errno.h>
#include <string.h>

static bool param_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

/* Matches one pattern; on success stores (start,len) of each parameter. */
static bool match_one(const char *pattern, const char *path, const char *starts[],
                      size_t lens[], size_t *ret_n)
{
    size_t n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == ':') {
            while (*p && *p != '/')
                p++;
            const char *b = s;
            while (*s && *s != '/') {
                if (!param_char(*s))
                    return false;
                s++;
            }
            size_t len = (size_t)(s - b);
            if (len == 0 || len > ROUTER_PARAM_MAX || n >= HTTP_MAX_PARAMS)
                return false;
            starts[n] = b;
            lens[n] = len;
            n++;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    if (*p || *s)
        return false;
    *ret_n = n;
    return true;
}

int router_match(const struct route *table, size_t n, enum http_method method, const char *path,
                 const struct route **ret, char *params[HTTP_MAX_PARAMS], size_t *ret_nparams,
                 char *allowed, size_t allowed_len)
{
    bool path_matched = false;
    enum http_method want = method == HTTP_HEAD ? HTTP_GET : method;
    if (allowed && allowed_len)
        allowed[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *starts[HTTP_MAX_PARAMS];
        size_t lens[HTTP_MAX_PARAMS], np = 0;
        if (!match_one(table[i].pattern, path, starts, lens, &np))
            continue;
        if (table[i].method != want) {
            path_matched = true;
            if (allowed && allowed_len) {
                size_t used = strlen(allowed);
                const char *m = http_method_name(table[i].method);
                if (used + strlen(m) + 3 < allowed_len) {
                    if (used)
                        strcat(allowed, ", ");
                    strcat(allowed, m);
                }
            }
            continue;
        }
        for (size_t j = 0; j < np; j++)
            params[j] = xstrndup(starts[j], lens[j]);
        *ret_nparams = np;
        *ret = &table[i];
        return 0;
    }
    return path_matched ? -EPERM : -ENOENT;
}
