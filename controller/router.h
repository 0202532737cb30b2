/*
 * router.h — maps (method, path) to a route from a static table.
 *
 * Patterns are literal segments and `:name` parameters ("/api/v1/api-keys/:id"). A parameter
 * matches one non-empty segment of at most ROUTER_PARAM_MAX bytes of [A-Za-z0-9._~-]; anything
 * else does not match (→ 404). Pure functions, any thread.
 */
#pragma once

#include <stdbool.h>

#include "controller/http.h"

#define ROUTER_PARAM_MAX 512 /* fs presigned-URL tokens (/api/v1/blobs/:token) are ~200 */

struct handler_ctx;
typedef void (*route_handler_fn)(struct handler_ctx *ctx, struct http_request *req,
                                 struct http_response *resp);

struct route {
    enum http_method method;
    const char *pattern;   /* also the metrics/log label */
    unsigned scope;        /* AUTH_SCOPE_* required; 0 with auth = any valid key */
    bool auth;             /* false: public route (health, register) */
    const char *action;    /* audit action for mutating routes, NULL = not audited */
    route_handler_fn handler;
    bool streams;          /* handler may return a stream (SSE / WebSocket) */
    bool long_running;     /* the handler may legitimately run up to limits.exec_timeout_max */
};

/* Returns 0 and fills *ret / params on a match; -ENOENT when no pattern matches the path;
 * -EPERM (→ 405) when the path matches but not with this method. HEAD matches GET routes.
 * params receive malloc'd copies; *ret_allowed (may be NULL) receives an "Allow" list. */
int router_match(const struct route *table, size_t n, enum http_method method, const char *path,
                 const struct route **ret, char *params[HTTP_MAX_PARAMS], size_t *ret_nparams,
                 char *allowed, size_t allowed_len);
