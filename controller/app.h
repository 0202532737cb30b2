/*
 * app.h — the daemon's shared state and the per-worker handler context.
 *
 * `struct app` is built by main() before any thread starts and is read-only afterwards, except
 * the fields documented as atomic. `struct handler_ctx` belongs to exactly one worker thread.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "controller/config.h"
#include "controller/http.h"
#include "controller/router.h"

struct db;
struct sbx_runtime;
struct sbx_blobstore;
struct server;

struct app {
    struct sbx_config cfg;
    struct sbx_runtime *rt;          /* NULL when the runtime failed to start (degraded) */
    char runtime_error[256];         /* why rt is NULL */
    struct sbx_blobstore *blobs;     /* NULL when the blob store failed to open (storage 503) */
    char blobs_error[256];           /* why blobs is NULL */
    char instance[128];              /* this daemon's runtime instance (sandboxes.runtime_ref) */
    struct server *server;
    atomic_bool stopping;
};

struct auth_cache;

struct handler_ctx {
    struct app *app;
    struct db *db;                   /* this worker's own connection */
    unsigned worker_id;
    struct auth_cache *auth_cache;   /* recent API-key verdicts of this worker (dispatch.c) */
};

/* Worker set-up/tear-down (dispatch.c): opens the worker's database connection lazily. */
void handler_ctx_init(struct handler_ctx *ctx, struct app *app, unsigned worker_id);
void handler_ctx_done(struct handler_ctx *ctx);
/* Runs one request on a worker: auth, transaction, handler, audit. Never fails: any error
 * becomes an error response. */
void dispatch_request(struct handler_ctx *ctx, struct http_request *req,
                      struct http_response *resp);
/* The static route table (routes.c). */
extern const struct route routes[];
extern const size_t n_routes;

/* Makes sure ctx->db is connected; on failure sets a 503 response and returns -errno. */
int handler_db(struct handler_ctx *ctx, struct http_response *resp);
/* Authenticates req from req->authorization / req->org_header (API key lookup, expiry,
 * revocation, X-Org-Id match) and fills req->who. On failure sets a 401/503 response and
 * returns -errno. Worker thread (uses ctx->db). */
int dispatch_authenticate(struct handler_ctx *ctx, struct http_request *req,
                          struct http_response *resp);
