/*
 * api-admin.c — the operator API, authenticated by the admin.token setting (header
 * X-Admin-Token, compared in constant time; the API answers 404 while the setting is empty):
 *   PUT  /api/v1/admin/orgs/:id/plan  {plan}               → {organization: {id, name, slug, plan}}
 *   POST /api/v1/test-tenants         {name, ttl_days?, ttl_seconds?, plan?}
 *                                     → {tenant_id, name, plan, api_key, expires_at}
 * A test tenant is an organization with an expiry and one sk_test_ key with every scope; the
 * reaper deletes it with all its data after expires_at (controller/loops.c). Worker threads;
 * public routes (no API key), own transactions.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/apikey.h"
#include "controller/pgjson.h"
#include "controller/plans.h"
#include "controller/validate.h"
#include "storage/db.h"

/* Checks X-Admin-Token; on failure sets the response and returns false. */
static bool admin_ok(struct handler_ctx *ctx, const struct http_request *req,
                     struct http_response *resp)
{
    const char *want = ctx->app->cfg.admin.token;
    if (!want || !*want) {
        http_error(resp, 404, "not_found", "the admin API is not enabled on this server");
        return false;
    }
    const char *got = req->admin_token;
    if (!got || !sbx_ct_equal(got, strlen(got), want, strlen(want))) {
        http_error(resp, 401, "invalid_admin_token",
                   "missing or wrong X-Admin-Token for the admin API");
        return false;
    }
    return handler_db(ctx, resp) >= 0;
}

static void db_failed(struct http_response *resp, int r)
{
    if (r == -EIO) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "admin query failed");
        http_error(resp, 500, "internal_error", "internal error");
    }
}

API_HANDLER(api_admin_org_plan)
{
    if (!admin_ok(ctx, req, resp))
        return;
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *plan = NULL, *id = req->params[0];
    if (v_string(body, "plan", true, 1, 32, &plan, resp) < 0)
        return;
    if (!plan_name_valid(plan)) {
        http_error(resp, 422, "validation_error",
                   "field 'plan' must be one of free, pro, team, enterprise");
        return;
    }
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such organization");
        return;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db, "SELECT id, name, slug, plan FROM sbx_admin_set_plan($1, $2)", 2,
                     (const char *[]){ id, plan }, &res);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such organization");
        return;
    }
    log_info("admin: organization %s moved to plan %s", id, plan);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "organization");
    pg_row_to_json(g, res, 0, "ssss");
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_test_tenant_create)
{
    if (!admin_ok(ctx, req, resp))
        return;
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *name = NULL, *plan = NULL;
    long long days = 7, secs = 0;
    bool has_days = false, has_secs = false;
    if (v_string(body, "name", true, 1, 200, &name, resp) < 0 ||
        v_int(body, "ttl_days", false, 1, 365, &days, &has_days, resp) < 0 ||
        v_int(body, "ttl_seconds", false, 1, 365LL * 86400, &secs, &has_secs, resp) < 0 ||
        v_string(body, "plan", false, 1, 32, &plan, resp) < 0)
        return;
    if (!v_not_blank(name)) {
        http_error(resp, 422, "validation_error", "field 'name' must not be blank");
        return;
    }
    if (plan && !plan_name_valid(plan)) {
        http_error(resp, 422, "validation_error",
                   "field 'plan' must be one of free, pro, team, enterprise");
        return;
    }
    char ttl[32], org_id[37], slug[64], key[APIKEY_MAX_LEN + 1], prefix[32];
    char hash[SBX_SHA256_HEX_LEN + 1];
    snprintf(ttl, sizeof(ttl), "%lld", has_secs ? secs : days * 86400);
    sbx_uuid4(org_id);
    snprintf(slug, sizeof(slug), "test-tenant-%.8s", org_id);
    struct apikey_parts parts;
    apikey_generate(true, key, &parts);
    apikey_prefix(&parts, prefix, sizeof(prefix));
    sbx_sha256_hex(parts.secret, APIKEY_SECRET_LEN, hash);

    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_begin(ctx->db, org_id);
    if (r >= 0)
        r = db_query(ctx->db,
                     "INSERT INTO orgs (id, name, slug, plan, expires_at, test_tenant) "
                     "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::bigint), true) "
                     "RETURNING " SQL_TS("expires_at") ", plan",
                     5, (const char *[]){ org_id, name, slug, plan ? plan : "free", ttl }, &res);
    if (r >= 0)
        r = db_query(ctx->db,
                     "INSERT INTO api_keys (org_id, key_id, name, key_prefix, key_hash, scopes, "
                     "  mode, expires_at) "
                     "VALUES ($1, $2, 'test-tenant', $3, decode($4, 'hex'), "
                     "  '{read,write,execute,admin}', 'test', "
                     "  now() + make_interval(secs => $5::bigint))",
                     5, (const char *[]){ org_id, parts.key_id, prefix, hash, ttl }, NULL);
    if (r >= 0)
        r = db_commit(ctx->db);
    if (r < 0) {
        db_rollback(ctx->db);
        return db_failed(resp, r == -EEXIST ? -EIO : r);
    }
    log_info("admin: test tenant %s created (expires %s)", org_id, PQgetvalue(res, 0, 0));
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "tenant_id", org_id);
    sbx_jgen_kstr(g, "name", name);
    sbx_jgen_kstr(g, "plan", PQgetvalue(res, 0, 1));
    sbx_jgen_kstr(g, "api_key", key);
    sbx_jgen_kstr(g, "key_prefix", prefix);
    sbx_jgen_kstr(g, "expires_at", PQgetvalue(res, 0, 0));
    yajl_gen_map_close(g);
    http_json(resp, 201, g);
}
