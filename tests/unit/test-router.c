/* test-router.c — controller/router.c: matching, parameters, 404 vs 405, limits. */
#include "controller/router.h"

#include <errno.h>
#include <string.h>

#include "tests/unit/tap.h"

static void h(struct handler_ctx *c, struct http_request *q, struct http_response *r)
{
    (void)c, (void)q, (void)r;
}

static const struct route table[] = {
    { .method = HTTP_GET, .pattern = "/healthz", .handler = h },
    { .method = HTTP_GET, .pattern = "/api/v1/api-keys", .handler = h },
    { .method = HTTP_POST, .pattern = "/api/v1/api-keys", .handler = h },
    { .method = HTTP_DELETE, .pattern = "/api/v1/api-keys/:id", .handler = h },
    { .method = HTTP_GET, .pattern = "/api/v1/sandbox/:id", .handler = h },
    { .method = HTTP_GET, .pattern = "/api/v1/sandbox/:id/files", .handler = h },
    { .method = HTTP_POST, .pattern = "/api/v1/sandbox/create", .handler = h },
    { .method = HTTP_GET, .pattern = "/a/:x/b/:y", .handler = h },
};
#define N (sizeof(table) / sizeof(table[0]))

static int match(enum http_method m, const char *path, const struct route **r, char **params,
                 size_t *np, char *allow)
{
    return router_match(table, N, m, path, r, params, np, allow, 64);
}

static void free_params(char **p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
}

int main(void)
{
    plan_no_plan();
    const struct route *r = NULL;
    char *p[HTTP_MAX_PARAMS];
    size_t np = 0;
    char allow[64];

    is_int(match(HTTP_GET, "/healthz", &r, p, &np, allow), 0, "static path");
    ok(r == &table[0] && np == 0, "right route, no params");
    is_int(match(HTTP_HEAD, "/healthz", &r, p, &np, allow), 0, "HEAD matches GET routes");

    is_int(match(HTTP_DELETE, "/api/v1/api-keys/abc-123", &r, p, &np, allow), 0, "param route");
    ok(r == &table[3] && np == 1, "one param");
    is_str(p[0], "abc-123", "param value");
    free_params(p, np);

    is_int(match(HTTP_GET, "/a/1/b/2", &r, p, &np, allow), 0, "two params");
    ok(np == 2 && strcmp(p[0], "1") == 0 && strcmp(p[1], "2") == 0, "both values");
    free_params(p, np);

    /* Literal beats parameter by table order: /sandbox/create is a POST route. */
    is_int(match(HTTP_POST, "/api/v1/sandbox/create", &r, p, &np, allow), 0, "literal route");
    ok(r == &table[6], "create, not :id");
    is_int(match(HTTP_GET, "/api/v1/sandbox/create", &r, p, &np, allow), 0,
           "GET /sandbox/create is the :id route (a 404 from the handler)");
    free_params(p, np);

    is_int(match(HTTP_GET, "/nope", &r, p, &np, allow), -ENOENT, "unknown path → 404");
    is_int(match(HTTP_GET, "/api/v1/api-keys/", &r, p, &np, allow), -ENOENT,
           "empty parameter does not match");
    is_int(match(HTTP_GET, "/api/v1/api-keys/x/y", &r, p, &np, allow), -ENOENT,
           "extra segment does not match");
    is_int(match(HTTP_GET, "/healthz/", &r, p, &np, allow), -ENOENT, "trailing slash");
    is_int(match(HTTP_DELETE, "/api/v1/api-keys/a%20b", &r, p, &np, allow), -ENOENT,
           "parameter with a character outside [A-Za-z0-9._~-]");
    is_int(match(HTTP_DELETE, "/api/v1/api-keys/a b", &r, p, &np, allow), -ENOENT,
           "parameter with a space");
    char longp[ROUTER_PARAM_MAX + 64] = "/api/v1/api-keys/";
    memset(longp + strlen(longp), 'a', ROUTER_PARAM_MAX + 1);
    is_int(match(HTTP_DELETE, longp, &r, p, &np, allow), -ENOENT, "over-long parameter");

    is_int(match(HTTP_PUT, "/api/v1/api-keys", &r, p, &np, allow), -EPERM,
           "known path, wrong method → 405");
    is_str(allow, "GET, POST", "Allow lists the methods");
    is_int(match(HTTP_POST, "/api/v1/api-keys/k1", &r, p, &np, allow), -EPERM,
           "param path, wrong method → 405");
    is_str(allow, "DELETE", "Allow for the param route");
    return done();
}
