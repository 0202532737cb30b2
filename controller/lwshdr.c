/* lwshdr.c — header copies out of lws' header table (see lwshdr.h). Event-loop thread. */
#include "controller/lwshdr.h"

#include <string.h>

#include "common/macro.h"

char *lwshdr_dup(struct lws *wsi, enum lws_token_indexes tok)
{
    int len = lws_hdr_total_length(wsi, tok);
    if (len <= 0)
        return NULL;
    char *s = xmalloc((size_t)len + 1);
    if (lws_hdr_copy(wsi, s, len + 1, tok) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

char *lwshdr_custom_dup(struct lws *wsi, const char *name)
{
    int nlen = (int)strlen(name);
    int len = lws_hdr_custom_length(wsi, name, nlen);
    if (len <= 0)
        return NULL;
    char *s = xmalloc((size_t)len + 1);
    if (lws_hdr_custom_copy(wsi, s, len + 1, name, nlen) < 0) {
        free(s);
        return NULL;
    }
    return s;
}
