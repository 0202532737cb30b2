/*
 * api-testmode.c — POST /api/v1/test/reset (sk_test_ keys only; a live key gets 403
 * test_mode_required): stops and deletes the organization's test sandboxes, deletes its test
 * checkpoints (releasing their content references) and webhooks, and expires its test
 * artifacts (the artifact reaper removes the objects) →
 *   {deleted: {sandboxes, checkpoints, artifacts, webhooks}, message, timestamp}.
 * Live rows are never touched: every statement runs with sbx.mode = 'test', so the
 * mode_isolation policies (sql/0006) hide live rows, and each also says `WHERE test`.
 * Plus testmode_reap() for the reaper (testmode.h). Scope: docs/internals/LIMITS.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/api.h"
#include "controller/sandbox.h"
#include "controller/testmode.h"
#include "storage/db.h"

static int set_test_mode(struct db *db)
{
    return db_query(db, "SELECT set_config('sbx.mode', 'test', true)", 0, NULL, NULL);
}

/* Inside an org transaction: deletes test checkpoints matching `where` (SQL on c.*), giving
 * their content references back. Returns the count or -errno. */
static int delete_test_checkpoints(struct db *db, const char *where, int nparams,
                                   const char *const *params)
{
    _cleanup_pgres_ PGresult *has = NULL;
    int r = db_query(db, "SELECT to_regclass('public.checkpoint_blobs') IS NOT NULL", 0, NULL,
                     &has);
    if (r < 0)
        return r;
    if (strcmp(PQgetvalue(has, 0, 0), "t") == 0) {
        _cleanup_free_ char *sql = xasprintf(
            "UPDATE blobs b SET refcount = GREATEST(b.refcount - c.n, 0), last_used_at = now() "
            "  FROM (SELECT cb.blob_id, count(*) AS n FROM checkpoint_blobs cb "
            "          JOIN checkpoints c ON c.id = cb.checkpoint_id "
            "         WHERE c.test AND %s GROUP BY cb.blob_id) c "
            " WHERE b.id = c.blob_id",
            where);
        r = db_query(db, sql, nparams, params, NULL);
        if (r < 0)
            return r;
    }
    _cleanup_free_ char *del = xasprintf("DELETE FROM checkpoints c WHERE c.test AND %s", where);
    return db_query(db, del, nparams, params, NULL);
}

static void emit_reset(struct http_response *resp, int n_sbx, int n_ckpt, int n_art, int n_hook)
{
    char ts[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    sbx_format_rfc3339(now.tv_sec, now.tv_nsec / 1000, ts, sizeof(ts));
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "deleted");
    yajl_gen_map_open(g);
    sbx_jgen_kint(g, "sandboxes", n_sbx);
    sbx_jgen_kint(g, "checkpoints", n_ckpt);
    sbx_jgen_kint(g, "artifacts", n_art);
    sbx_jgen_kint(g, "webhooks", n_hook);
    yajl_gen_map_close(g);
    sbx_jgen_kstr(g, "message", "test data reset; live data was not touched");
    sbx_jgen_kstr(g, "timestamp", ts);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_test_reset)
{
    if (!req->who.test_mode) {
        http_error(resp, 403, "test_mode_required",
                   "test/reset needs a test-mode key (sk_test_…); live data is never reset");
        return;
    }
    const char *org = req->who.org_id;
    _cleanup_pgres_ PGresult *active = NULL;
    int r = db_query(ctx->db,
                     "SELECT id FROM sandboxes WHERE test AND status IN "
                     "  ('creating', 'running', 'terminating')",
                     0, NULL, &active);
    if (r >= 0)
        r = db_commit(ctx->db);
    if (r < 0)
        goto failed;
    for (int i = 0; i < PQntuples(active); i++) {
        int t = sandbox_terminate(ctx->app, ctx->db, org, PQgetvalue(active, i, 0), "reset",
                                  true, true);
        if (t < 0 && t != -ENOENT)
            log_error_errno(t, "test reset: stopping sandbox %s failed",
                            PQgetvalue(active, i, 0));
    }
    int n_ckpt = 0, n_art = 0, n_hook = 0, n_sbx = 0;
    r = db_begin(ctx->db, org);
    if (r >= 0)
        r = set_test_mode(ctx->db);
    if (r >= 0)
        r = n_ckpt = delete_test_checkpoints(ctx->db, "true", 0, NULL);
    if (r >= 0)
        r = n_art = db_query(ctx->db,
                             "UPDATE artifacts SET expires_at = now() WHERE test AND "
                             "  (expires_at IS NULL OR expires_at > now())",
                             0, NULL, NULL);
    if (r >= 0)
        r = n_hook = db_query(ctx->db, "DELETE FROM webhooks WHERE test", 0, NULL, NULL);
    if (r >= 0)
        r = n_sbx = db_query(ctx->db,
                             "DELETE FROM sandboxes WHERE test AND status IN "
                             "  ('terminated', 'error')",
                             0, NULL, NULL);
    if (r < 0)
        goto failed;
    emit_reset(resp, n_sbx, n_ckpt, n_art, n_hook);
    resp->audit.resource = "organization";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", org);
    return;
failed:
    if (!db_in_transaction(ctx->db))
        (void)db_begin(ctx->db, org); /* dispatch rolls back */
    log_error_errno(r, "test reset failed");
    http_error(resp, r == -EIO ? 503 : 500, r == -EIO ? "database_unavailable" : "internal_error",
               r == -EIO ? "the database is not reachable" : "internal error");
}

/* ---- reaper ---------------------------------------------------------------------------- */

static uint64_t last_run_ms;

static void reap_tenants(struct app *app, struct db *db)
{
    _cleanup_pgres_ PGresult *orgs = NULL;
    if (db_query(db, "SELECT id FROM sbx_orgs_expired(now(), 100)", 0, NULL, &orgs) < 0)
        return;
    for (int i = 0; i < PQntuples(orgs); i++) {
        const char *org = PQgetvalue(orgs, i, 0);
        _cleanup_pgres_ PGresult *sbx = NULL;
        if (db_begin(db, org) < 0)
            return;
        int r = db_query(db,
                         "SELECT id, runtime_ref = $1 FROM sandboxes "
                         " WHERE status IN ('creating', 'running', 'terminating')",
                         1, (const char *[]){ app->instance }, &sbx);
        db_rollback(db);
        if (r < 0)
            continue;
        bool foreign = false;
        for (int k = 0; k < PQntuples(sbx); k++) {
            if (strcmp(PQgetvalue(sbx, k, 1), "t") != 0) {
                foreign = true; /* another daemon's sandbox: that daemon stops it */
                continue;
            }
            sandbox_terminate(app, db, org, PQgetvalue(sbx, k, 0), "tenant_expired", true, true);
        }
        if (foreign)
            continue;
        _cleanup_pgres_ PGresult *del = NULL;
        if (db_query(db, "SELECT sbx_org_delete($1)", 1, (const char *[]){ org }, &del) > 0) {
            struct sbx_log_field f[] = { LF_STR("org_id", org),
                                         LF_STR("deleted", PQgetvalue(del, 0, 0)) };
            sbx_log_fields(SBX_LOG_INFO, "test tenant expired and deleted", f, ARRAY_SIZE(f));
        }
    }
}

static void reap_retention(struct app *app, struct db *db)
{
    char secs[32];
    snprintf(secs, sizeof(secs), "%llu", (unsigned long long)app->cfg.test_mode.retention);
    _cleanup_pgres_ PGresult *rows = NULL;
    if (db_query(db,
                 "SELECT kind, id, org_id, active, COALESCE(runtime_ref = $2, false) "
                 "  FROM sbx_test_data_expired(now() - make_interval(secs => $1::bigint), 100)",
                 2, (const char *[]){ secs, app->instance }, &rows) < 0)
        return;
    for (int i = 0; i < PQntuples(rows); i++) {
        const char *kind = PQgetvalue(rows, i, 0), *id = PQgetvalue(rows, i, 1),
                   *org = PQgetvalue(rows, i, 2);
        bool active = strcmp(PQgetvalue(rows, i, 3), "t") == 0;
        bool mine = strcmp(PQgetvalue(rows, i, 4), "t") == 0;
        if (strcmp(kind, "sandbox") == 0 && active) {
            if (mine)
                sandbox_terminate(app, db, org, id, "test_retention", true, true);
            continue; /* deleted on a later pass, once terminated */
        }
        if (db_begin(db, org) < 0 || set_test_mode(db) < 0) {
            db_rollback(db);
            return;
        }
        const char *p[] = { id };
        int r;
        if (strcmp(kind, "sandbox") == 0)
            r = db_query(db,
                         "DELETE FROM sandboxes WHERE id = $1 AND test AND status IN "
                         "  ('terminated', 'error')",
                         1, p, NULL);
        else if (strcmp(kind, "checkpoint") == 0)
            r = delete_test_checkpoints(db, "c.id = $1", 1, p);
        else
            r = db_query(db, "UPDATE artifacts SET expires_at = now() WHERE id = $1 AND test", 1,
                         p, NULL);
        if (r < 0 || db_commit(db) < 0)
            db_rollback(db);
        else if (r > 0) {
            struct sbx_log_field f[] = { LF_STR("kind", kind), LF_STR("id", id),
                                         LF_STR("org_id", org) };
            sbx_log_fields(SBX_LOG_INFO, "test data past retention deleted", f, ARRAY_SIZE(f));
        }
    }
}

void testmode_reap(struct app *app, struct db *db)
{
    uint64_t now = sbx_now_ms();
    if (last_run_ms && now - last_run_ms < 2000)
        return;
    last_run_ms = now;
    reap_tenants(app, db);
    reap_retention(app, db);
    _cleanup_pgres_ PGresult *res = NULL;
    (void)db_query(db, "SELECT sbx_ratelimit_prune(now() - interval '1 day')", 0, NULL, &res);
    _cleanup_pgres_ PGresult *res2 = NULL;
    char ttl[32];
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)app->cfg.idempotency.ttl);
    (void)db_query(db, "SELECT sbx_idempotency_prune(now() - make_interval(secs => $1::bigint))",
                   1, (const char *[]){ ttl }, &res2);
}
