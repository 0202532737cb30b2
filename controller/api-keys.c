/*
 * api-keys.c — GET/POST /api/v1/api-keys, DELETE /api/v1/api-keys/:id. Worker threads, inside
 * the caller's organization transaction. The full key is returned once, at creation; only its
 * SHA-256 is stored. A key can only create keys with a subset of its own scopes.
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
#include "controller/validate.h"
#include "storage/db.h"

#define KEY_COLUMNS                                                                               \
    "id, name, key_prefix, scopes, mode, " SQL_TS("last_used_at") " AS last_used_at, "            \
    SQL_TS("expires_at") " AS expires_at, " SQL_TS("created_at") " AS created_at"

static const char key_types[] = "sssassss";

static void db_failed(struct http_response *resp, int r)
{
    if (r == -EIO) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "api-keys query failed");
        http_error(resp, 500, "internal_error", "internal error");
    }
}

API_HANDLER(api_keys_list)
{
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT " KEY_COLUMNS " FROM api_keys WHERE revoked_at IS NULL "
                     "ORDER BY created_at, id",
                     0, NULL, &res);
    if (r < 0)
        return db_failed(resp, r);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "api_keys");
    yajl_gen_array_open(g);
    for (int i = 0; i < PQntuples(res); i++)
        pg_row_to_json(g, res, i, key_types);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

/* Parses "scopes" into bits. Absent → the caller's own scopes. */
static int parse_scopes(yajl_val body, unsigned own, unsigned *ret, struct http_response *resp)
{
    yajl_val v = sbx_json_get(body, "scopes");
    if (!v || YAJL_IS_NULL(v)) {
        *ret = own;
        return 0;
    }
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 || v->u.array.len > 16) {
        http_error(resp, 422, "validation_error",
                   "field 'scopes' must be a non-empty list of scope names");
        return -EINVAL;
    }
    unsigned bits = 0;
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        unsigned b = YAJL_IS_STRING(e) ? apikey_scope_bit(e->u.string) : 0;
        if (!b) {
            http_error(resp, 422, "validation_error",
                       "field 'scopes' may contain only read, write, execute, admin");
            return -EINVAL;
        }
        bits |= b;
    }
    *ret = bits;
    return 0;
}

static char *scopes_literal(unsigned bits)
{
    struct sbx_buf b = SBX_BUF_INIT;
    int r = sbx_buf_puts(&b, "{");
    for (unsigned bit = 1; bit <= AUTH_SCOPE_ADMIN; bit <<= 1)
        if (bits & bit)
            r |= sbx_buf_printf(&b, "%s%s", b.len > 1 ? "," : "", apikey_scope_name(bit));
    r |= sbx_buf_puts(&b, "}");
    if (r < 0)
        abort();
    return sbx_buf_steal(&b, NULL);
}

API_HANDLER(api_keys_create)
{
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *name = "default", *mode = NULL;
    long long days = 0;
    bool has_days = false;
    unsigned scopes = 0;
    if (v_string(body, "name", false, 1, 200, &name, resp) < 0 ||
        v_int(body, "expires_in_days", false, 1, 3650, &days, &has_days, resp) < 0 ||
        v_string(body, "mode", false, 1, 8, &mode, resp) < 0 ||
        parse_scopes(body, req->who.scopes, &scopes, resp) < 0)
        return;
    bool test_mode = req->who.test_mode;
    if (mode) {
        if (strcmp(mode, "live") != 0 && strcmp(mode, "test") != 0) {
            http_error(resp, 422, "validation_error", "field 'mode' must be 'live' or 'test'");
            return;
        }
        test_mode = strcmp(mode, "test") == 0;
    }
    if ((scopes & ~req->who.scopes) != 0) {
        http_error(resp, 403, "insufficient_scope",
                   "a key cannot grant scopes it does not have itself");
        return;
    }
    if (req->who.test_mode && !test_mode) {
        http_error(resp, 403, "insufficient_scope", "a test-mode key cannot create live keys");
        return;
    }

    char key[APIKEY_MAX_LEN + 1], prefix[32], hash[SBX_SHA256_HEX_LEN + 1], days_s[16];
    struct apikey_parts parts;
    apikey_generate(test_mode, key, &parts);
    apikey_prefix(&parts, prefix, sizeof(prefix));
    sbx_sha256_hex(parts.secret, APIKEY_SECRET_LEN, hash);
    snprintf(days_s, sizeof(days_s), "%lld", days);
    _cleanup_free_ char *scope_lit = scopes_literal(scopes);

    _cleanup_pgres_ PGresult *res = NULL;
    const char *params[] = { req->who.org_id, parts.key_id, name, prefix, hash, scope_lit,
                             test_mode ? "test" : "live", has_days ? days_s : NULL,
                             req->who.key_id };
    int r = db_query(ctx->db,
                     "INSERT INTO api_keys (org_id, key_id, name, key_prefix, key_hash, scopes, "
                     "  mode, expires_at, created_by_key) "
                     "VALUES ($1, $2, $3, $4, decode($5, 'hex'), $6::text[], $7, "
                     "  now() + make_interval(days => $8::int), $9) "
                     "RETURNING " KEY_COLUMNS,
                     9, params, &res);
    if (r < 0)
        return db_failed(resp, r);

    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "api_key");
    yajl_gen_map_open(g);
    pg_row_members(g, res, 0, key_types);
    sbx_jgen_kstr(g, "key", key);
    yajl_gen_map_close(g);
    sbx_jgen_kstr(g, "key", key);
    yajl_gen_map_close(g);
    http_json(resp, 201, g);
    resp->audit.resource = "api_key";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s",
             PQgetvalue(res, 0, 0));
}

API_HANDLER(api_keys_delete)
{
    const char *id = req->params[0];
    resp->audit.resource = "api_key";
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such API key");
        return;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
                     "RETURNING id",
                     1, (const char *[]){ id }, &res);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such API key");
        return;
    }
    http_success(resp);
}
