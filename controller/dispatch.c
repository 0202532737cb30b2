/*
 * dispatch.c — what a worker does with one request: authenticate, check scope, open the
 * organization's transaction, run the handler, commit or roll back, write the audit record.
 *
 * DESIGN
 * Runs on worker threads only; each worker owns `ctx->db` (opened lazily, reconnected by the
 * db layer). Authentication uses the SECURITY DEFINER lookup sbx_auth_key() (no organization
 * is known yet); everything after it runs in one transaction with sbx.org_id set, so row-level
 * security scopes every query of the handler. Public routes (health, register) manage their
 * own transactions. An error response rolls the transaction back; the audit record of a
 * failed mutating call is then written in a transaction of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/crypto.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/apikey.h"
#include "controller/app.h"
#include "controller/audit.h"
#include "controller/idempotency.h"
#include "controller/jwt.h"
#include "controller/plans.h"
#include "controller/ratelimit.h"
#include "storage/db.h"

/* A worker's recent API-key verdicts. A hit skips the key lookup for AUTH_CACHE_MS, so a
 * revocation or expiry takes effect within that time (the API promises "within seconds");
 * the presented secret is still compared, in constant time, against the hash that was
 * verified. last_used_at is written at most every TOUCH_EVERY_MS per key and worker. */
#define AUTH_CACHE_SLOTS 64
#define AUTH_CACHE_MS 1000
#define TOUCH_EVERY_MS 10000

struct auth_cache_slot {
    char key_id[APIKEY_ID_LEN + 1];
    char hash[SBX_SHA256_HEX_LEN + 1];
    struct auth_identity who;
    uint64_t verified_ms;
    uint64_t touched_ms;
};

struct auth_cache {
    struct auth_cache_slot slot[AUTH_CACHE_SLOTS];
};

static struct auth_cache_slot *cache_slot(struct handler_ctx *ctx, const char *key_id)
{
    if (!ctx->auth_cache)
        ctx->auth_cache = xcalloc(1, sizeof(*ctx->auth_cache));
    return &ctx->auth_cache->slot[sbx_crc32(key_id, strlen(key_id)) % AUTH_CACHE_SLOTS];
}

void handler_ctx_init(struct handler_ctx *ctx, struct app *app, unsigned worker_id)
{
    *ctx = (struct handler_ctx){ .app = app, .worker_id = worker_id };
}

void handler_ctx_done(struct handler_ctx *ctx)
{
    free(ctx->auth_cache);
    ctx->auth_cache = NULL;
    if (ctx->db)
        db_close(ctx->db);
    ctx->db = NULL;
}

int handler_db(struct handler_ctx *ctx, struct http_response *resp)
{
    if (ctx->db)
        return 0;
    char err[256];
    int r = db_open(ctx->app->cfg.database.url, &ctx->db, err, sizeof(err));
    if (r < 0) {
        log_error("worker %u: database connection failed: %s", ctx->worker_id, err);
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
        return r;
    }
    return 0;
}

/* Extracts the key from "ApiKey <key>" or "Bearer <key>". */
static const char *auth_token(const char *hdr)
{
    if (!hdr)
        return NULL;
    const char *p;
    if (strncasecmp(hdr, "ApiKey ", 7) == 0)
        p = hdr + 7;
    else if (strncasecmp(hdr, "Bearer ", 7) == 0)
        p = hdr + 7;
    else
        return NULL;
    while (*p == ' ')
        p++;
    return *p ? p : NULL;
}

static unsigned scopes_from_pg_array(const char *arr)
{
    /* text[] output: {read,write} */
    unsigned bits = 0;
    char name[32];
    size_t n = 0;
    for (const char *c = arr; c && *c; c++) {
        if (*c == '{' || *c == '"')
            continue;
        if (*c == ',' || *c == '}') {
            name[n] = '\0';
            if (n)
                bits |= apikey_scope_bit(name);
            n = 0;
            continue;
        }
        if (n < sizeof(name) - 1)
            name[n++] = *c;
    }
    return bits;
}

/* Authorization: Bearer <JWT> (controller/jwt.h): the organization comes from the claims. */
static int authenticate_jwt(struct handler_ctx *ctx, struct http_request *req,
                            struct http_response *resp, const char *token)
{
    struct jwt_claims c;
    char err[128] = "the token is not valid";
    if (strncasecmp(req->authorization, "Bearer ", 7) != 0 ||
        jwt_verify(jwt_from_config(&ctx->app->cfg), token, (int64_t)time(NULL), &c, err,
                   sizeof(err)) < 0) {
        http_error(resp, 401, "invalid_token", "%s", err);
        return -EACCES;
    }
    if (req->org_header && strcmp(req->org_header, c.org_id) != 0) {
        http_error(resp, 401, "org_mismatch",
                   "X-Org-Id does not match the organization of the token");
        return -EACCES;
    }
    int r = handler_db(ctx, resp);
    if (r < 0)
        return r;
    req->who.authenticated = true;
    req->who.jwt = true;
    req->who.key_id[0] = '\0';
    snprintf(req->who.org_id, sizeof(req->who.org_id), "%s", c.org_id);
    snprintf(req->who.subject, sizeof(req->who.subject), "%s", c.subject);
    req->who.scopes = c.scopes;
    req->who.test_mode = false;
    return 0;
}

int dispatch_authenticate(struct handler_ctx *ctx, struct http_request *req,
                          struct http_response *resp)
{
    const char *token = auth_token(req->authorization);
    if (!token) {
        http_error(resp, 401, "unauthorized",
                   "missing credentials: send 'Authorization: ApiKey <key>' or 'Bearer <key>'");
        return -EACCES;
    }
    if (jwt_looks_like(token))
        return authenticate_jwt(ctx, req, resp, token);
    struct apikey_parts parts;
    if (apikey_parse(token, &parts) < 0) {
        http_error(resp, 401, "invalid_api_key", "the API key is malformed");
        return -EACCES;
    }
    char hash[SBX_SHA256_HEX_LEN + 1];
    sbx_sha256_hex(parts.secret, APIKEY_SECRET_LEN, hash);
    struct auth_cache_slot *slot = cache_slot(ctx, parts.key_id);
    uint64_t now_ms = sbx_now_ms();
    if (strcmp(slot->key_id, parts.key_id) == 0 && now_ms - slot->verified_ms < AUTH_CACHE_MS &&
        sbx_ct_equal(hash, SBX_SHA256_HEX_LEN, slot->hash, SBX_SHA256_HEX_LEN)) {
        if (req->org_header && strcmp(req->org_header, slot->who.org_id) != 0) {
            http_error(resp, 401, "org_mismatch",
                       "X-Org-Id does not match the organization of the API key");
            return -EACCES;
        }
        req->who = slot->who;
        return handler_db(ctx, resp);
    }
    int r = handler_db(ctx, resp);
    if (r < 0)
        return r;
    const char *params[] = { parts.key_id };
    _cleanup_pgres_ PGresult *res = NULL;
    r = db_query(ctx->db,
                 "SELECT id, org_id, encode(key_hash, 'hex'), scopes, mode, "
                 "       COALESCE(expires_at <= now(), false), revoked_at IS NOT NULL "
                 "  FROM sbx_auth_key($1)",
                 1, params, &res);
    if (r < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
        return r;
    }
    if (PQntuples(res) != 1 ||
        !sbx_ct_equal(hash, SBX_SHA256_HEX_LEN, PQgetvalue(res, 0, 2),
                      (size_t)PQgetlength(res, 0, 2))) {
        http_error(resp, 401, "invalid_api_key", "the API key is not valid");
        return -EACCES;
    }
    if (strcmp(PQgetvalue(res, 0, 6), "t") == 0) {
        http_error(resp, 401, "api_key_revoked", "the API key has been revoked");
        return -EACCES;
    }
    if (strcmp(PQgetvalue(res, 0, 5), "t") == 0) {
        http_error(resp, 401, "api_key_expired", "the API key has expired");
        return -EACCES;
    }
    const char *org = PQgetvalue(res, 0, 1);
    if (req->org_header && strcmp(req->org_header, org) != 0) {
        http_error(resp, 401, "org_mismatch",
                   "X-Org-Id does not match the organization of the API key");
        return -EACCES;
    }
    req->who.authenticated = true;
    snprintf(req->who.key_id, sizeof(req->who.key_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(req->who.org_id, sizeof(req->who.org_id), "%s", org);
    req->who.scopes = scopes_from_pg_array(PQgetvalue(res, 0, 3));
    req->who.test_mode = strcmp(PQgetvalue(res, 0, 4), "test") == 0;
    if (strcmp(slot->key_id, parts.key_id) != 0)
        slot->touched_ms = 0;
    snprintf(slot->key_id, sizeof(slot->key_id), "%s", parts.key_id);
    memcpy(slot->hash, hash, sizeof(slot->hash));
    slot->who = req->who;
    slot->verified_ms = now_ms;
    return 0;
}

static void touch_key(struct handler_ctx *ctx, const struct http_request *req)
{
    if (!req->who.key_id[0])
        return;
    /* The cache slot of this key (if the key came through it) says when we last wrote. */
    struct apikey_parts parts;
    const char *token = auth_token(req->authorization);
    if (token && apikey_parse(token, &parts) == 0) {
        struct auth_cache_slot *slot = cache_slot(ctx, parts.key_id);
        uint64_t now_ms = sbx_now_ms();
        if (strcmp(slot->key_id, parts.key_id) == 0) {
            if (slot->touched_ms && now_ms - slot->touched_ms < TOUCH_EVERY_MS)
                return;
            slot->touched_ms = now_ms;
        }
    }
    const char *params[] = { req->who.key_id };
    _cleanup_pgres_ PGresult *res = NULL;
    (void)db_query(ctx->db,
                   "UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND "
                   "(last_used_at IS NULL OR last_used_at < now() - interval '10 seconds')",
                   1, params, &res);
}

static void internal_error(struct http_response *resp)
{
    http_error(resp, 500, "internal_error", "internal error");
}

static void run_handler(struct handler_ctx *ctx, struct http_request *req,
                        struct http_response *resp, bool audited);

/* In the open org transaction: the org's plan, and sbx.mode for the test-mode policies. */
static int enter_mode(struct handler_ctx *ctx, const struct http_request *req,
                      struct plan_limits *ret_plan)
{
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT plan, set_config('sbx.mode', $2, true) FROM orgs WHERE id = $1", 2,
                     (const char *[]){ req->who.org_id, req->who.test_mode ? "test" : "live" },
                     &res);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    plan_get(&ctx->app->cfg, PQgetvalue(res, 0, 0), ret_plan);
    return 0;
}

void dispatch_request(struct handler_ctx *ctx, struct http_request *req,
                      struct http_response *resp)
{
    const struct route *route = req->route;

    if (!route->auth) {
        route->handler(ctx, req, resp);
        if (!resp->status)
            internal_error(resp);
        return;
    }
    if (dispatch_authenticate(ctx, req, resp) < 0)
        return;

    bool audited = route->action != NULL;
    if (route->scope && (req->who.scopes & route->scope) != route->scope) {
        http_error(resp, 403, "insufficient_scope", "this API key lacks the '%s' scope",
                   apikey_scope_name(route->scope));
        if (audited)
            audit_write(ctx, req, resp, false);
        return;
    }

    if (db_begin(ctx->db, req->who.org_id) < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
        return;
    }
    /* Plan, test/live mode (RLS), rate limits, idempotency: docs/internals/LIMITS.md. */
    struct plan_limits plan;
    int mr = enter_mode(ctx, req, &plan);
    if (mr < 0) {
        db_rollback(ctx->db);
        if (mr == -ENOENT)
            http_error(resp, 401, "unknown_organization", "the organization does not exist");
        else {
            http_error(resp, 503, "database_unavailable", "the database is not reachable");
            resp->retry_after = 1;
        }
        return;
    }
    struct ratelimit_result rl;
    ratelimit_take(ctx->app, ctx->db, req->who.org_id,
                   req->who.jwt ? req->who.subject : req->who.key_id, &plan, &rl);
    if (rl.applied) {
        resp->ratelimit.applied = true;
        resp->ratelimit.limit = rl.limit;
        resp->ratelimit.remaining = rl.remaining;
        resp->ratelimit.reset = rl.reset_s;
        resp->ratelimit.window = rl.window_s;
    }
    if (!rl.allowed) {
        db_rollback(ctx->db);
        http_error(resp, 429, "rate_limited",
                   "rate limit exceeded for this %s (%u requests, plan '%s'); retry after %u s",
                   strcmp(rl.scope, "org") == 0 ? "organization" : "API key", rl.limit,
                   plan.name, rl.retry_after);
        resp->retry_after = rl.retry_after;
        return;
    }
    bool claimed = false;
    if (req->method == HTTP_POST && req->idempotency_key) {
        db_rollback(ctx->db);
        if (idem_claim(ctx, req, resp, &claimed) == IDEM_DONE)
            return;
        if (db_begin(ctx->db, req->who.org_id) < 0 || enter_mode(ctx, req, &plan) < 0) {
            db_rollback(ctx->db);
            http_error(resp, 503, "database_unavailable", "the database is not reachable");
            resp->retry_after = 1;
            idem_finish(ctx, req, resp);
            return;
        }
    }
    run_handler(ctx, req, resp, audited);
    if (claimed)
        idem_finish(ctx, req, resp);
}

static void run_handler(struct handler_ctx *ctx, struct http_request *req,
                        struct http_response *resp, bool audited)
{
    const struct route *route = req->route;
    touch_key(ctx, req);
    route->handler(ctx, req, resp);
    if (!resp->status)
        internal_error(resp);

    bool ok = resp->status < 400;
    if (ok) {
        if (audited && audit_write(ctx, req, resp, true) < 0) {
            db_rollback(ctx->db);
            internal_error(resp);
            return;
        }
        if (db_commit(ctx->db) < 0) {
            http_error(resp, 503, "database_unavailable", "the change could not be committed");
            resp->retry_after = 1;
        }
        return;
    }
    db_rollback(ctx->db);
    if (audited && resp->status != 503)
        audit_write(ctx, req, resp, false);
}
