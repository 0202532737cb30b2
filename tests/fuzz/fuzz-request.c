/* fuzz-request.c — the parsers an HTTP request meets before any database work: the router
 * (path → route + params), the API key format (apikey_parse), and field validators (UTF-8,
 * e-mail shape). Input: arbitrary bytes; the first byte picks the method. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controller/apikey.h"
#include "controller/router.h"
#include "controller/validate.h"

static void h(struct handler_ctx *c, struct http_request *q, struct http_response *r)
{
    (void)c, (void)q, (void)r;
}

static const struct route table[] = {
    { .method = HTTP_GET, .pattern = "/api/v1/sandbox/:id", .handler = h },
    { .method = HTTP_POST, .pattern = "/api/v1/sandbox/create", .handler = h },
    { .method = HTTP_GET, .pattern = "/api/v1/sandbox/:id/files", .handler = h },
    { .method = HTTP_DELETE, .pattern = "/api/v1/api-keys/:id", .handler = h },
    { .method = HTTP_GET, .pattern = "/a/:b/c/:d/e/:f/g/:h", .handler = h },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    enum http_method m = (enum http_method)(data[0] % _HTTP_METHOD_MAX);
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';

    const struct route *r = NULL;
    char *params[HTTP_MAX_PARAMS];
    size_t np = 0;
    char allow[64];
    if (router_match(table, sizeof(table) / sizeof(table[0]), m, s, &r, params, &np, allow,
                     sizeof(allow)) == 0) {
        if (!r || np > HTTP_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < np; i++) {
            if (strlen(params[i]) == 0 || strlen(params[i]) > ROUTER_PARAM_MAX)
                abort();
            free(params[i]);
        }
    }
    struct apikey_parts parts;
    if (apikey_parse(s, &parts) == 0) {
        char prefix[32];
        apikey_prefix(&parts, prefix, sizeof(prefix));
        if (strncmp(s, prefix, strlen(prefix)) != 0)
            abort();
    }
    (void)v_utf8(s, size - 1);
    (void)v_email(s);
    free(s);
    return 0;
}
