/*
 * api-secrets.c — secrets (docs/internals/SECRETS.md). Values are encrypted before they reach
 * the database and never leave the daemon through the API, the log or the audit trail.
 *   POST   /api/v1/secrets                      {name, value, scope?, allowed_sandbox_patterns?,
 *                                               expires_at?, description?} → Secret
 *   GET    /api/v1/secrets                      {secrets: [...]}
 *   PUT    /api/v1/secrets/:name                {value} → Secret
 *   DELETE /api/v1/secrets/:name                {success}
 *   POST   /api/v1/secrets/:name/check          {value} → {match} (constant time)
 *   POST   /api/v1/sandbox/:id/secrets/inject   {secrets: [names]} | {all: true} → {injected}
 * Worker threads, inside the caller's organization transaction.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/pgjson.h"
#include "controller/secrets.h"
#include "controller/validate.h"
#include "storage/db.h"

#define VALUE_MAX 65536
#define MAX_PATTERNS 20
#define MAX_SECRETS_PER_ORG 500
#define MAX_INJECT 100

#define SECRET_COLUMNS                                                                            \
    "id, name, scope, allowed_sandbox_patterns, description, "                                   \
    SQL_TS("expires_at") " AS expires_at, " SQL_TS("created_at") " AS created_at, "             \
    SQL_TS("updated_at") " AS updated_at"
#define SECRET_TYPES "sssassss"

static void db_failed(struct http_response *resp, int r)
{
    if (r == -EIO || r == -EAGAIN) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "secret query failed");
        http_error(resp, 500, "internal_error", "internal error");
    }
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return false;
    return true;
}

static void emit_one(struct http_response *resp, int status, const PGresult *res)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    pg_row_to_json(g, res, 0, SECRET_TYPES);
    http_json(resp, status, g);
}

/* The value field: a non-empty string of at most VALUE_MAX bytes without NUL. */
static int get_value(yajl_val body, const char **ret, struct http_response *resp)
{
    return v_string(body, "value", true, 1, VALUE_MAX, ret, resp);
}

API_HANDLER(api_secrets_create)
{
    const struct sbx_config *cfg = &ctx->app->cfg;
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, cfg->http.max_json_depth, &body) < 0)
        return;
    resp->audit.resource = "secret";
    if (!YAJL_IS_OBJECT(body)) {
        http_error(resp, 422, "validation_error", "the body must be a JSON object");
        return;
    }
    const char *name = NULL, *value = NULL, *scope = NULL, *expires = NULL, *desc = NULL;
    if (v_string(body, "name", true, 1, 128, &name, resp) < 0 || get_value(body, &value, resp) < 0 ||
        v_string(body, "scope", false, 1, 32, &scope, resp) < 0 ||
        v_string(body, "expires_at", false, 1, 64, &expires, resp) < 0 ||
        v_string(body, "description", false, 0, 2000, &desc, resp) < 0)
        return;
    if (!name_ok(name)) {
        http_error(resp, 422, "validation_error",
                   "field 'name' must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*, "
                   "at most 128 characters)");
        return;
    }
    if (scope && strcmp(scope, "sandbox") != 0 && strcmp(scope, "org") != 0) {
        http_error(resp, 422, "validation_error", "field 'scope' must be 'sandbox' or 'org'");
        return;
    }
    if (expires && !v_iso8601(expires)) {
        http_error(resp, 422, "validation_error", "field 'expires_at' must be an ISO 8601 time");
        return;
    }
    _cleanup_buf_ struct sbx_buf pats = SBX_BUF_INIT;
    yajl_val p = sbx_json_get(body, "allowed_sandbox_patterns");
    int br = sbx_buf_puts(&pats, "{");
    if (p && !YAJL_IS_NULL(p)) {
        if (!YAJL_IS_ARRAY(p) || p->u.array.len > MAX_PATTERNS) {
            http_error(resp, 422, "validation_error",
                       "field 'allowed_sandbox_patterns' must be an array of at most %d patterns",
                       MAX_PATTERNS);
            return;
        }
        for (size_t i = 0; i < p->u.array.len; i++) {
            yajl_val e = p->u.array.values[i];
            if (!YAJL_IS_STRING(e) || !e->u.string[0] || strlen(e->u.string) > 128 ||
                strpbrk(e->u.string, "\"\\{},")) {
                http_error(resp, 422, "validation_error",
                           "field 'allowed_sandbox_patterns' must hold glob patterns of 1 to 128 "
                           "characters");
                return;
            }
            br |= sbx_buf_printf(&pats, "%s\"%s\"", i ? "," : "", e->u.string);
        }
    }
    br |= sbx_buf_puts(&pats, "}");
    if (br < 0)
        return db_failed(resp, -EINVAL);
    _cleanup_pgres_ PGresult *cnt = NULL, *row = NULL;
    int r = db_query(ctx->db, "SELECT count(*) FROM secrets", 0, NULL, &cnt);
    if (r < 0)
        return db_failed(resp, r);
    if (atoi(PQgetvalue(cnt, 0, 0)) >= MAX_SECRETS_PER_ORG) {
        http_error(resp, 409, "limit_exceeded", "an organization can have at most %d secrets",
                   MAX_SECRETS_PER_ORG);
        return;
    }
    _cleanup_free_ char *aad = xasprintf("secret:%s:%s", req->who.org_id, name);
    _cleanup_free_ char *enc = secrets_encrypt(value, strlen(value), aad);
    r = db_query(ctx->db,
                 "INSERT INTO secrets (org_id, name, value_enc, key_id, scope, "
                 "  allowed_sandbox_patterns, expires_at, description) "
                 "VALUES ($1, $2, $3, $4, COALESCE($5, 'sandbox'), $6::text[], $7::timestamptz, $8) "
                 "ON CONFLICT (org_id, name) DO NOTHING RETURNING " SECRET_COLUMNS,
                 8,
                 (const char *[]){ req->who.org_id, name, enc, secrets_key_id(), scope, pats.data,
                                   expires, desc },
                 &row);
    if (r == -EINVAL) {
        http_error(resp, 422, "validation_error", "field 'expires_at' is not a valid time");
        return;
    }
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 409, "secret_exists", "a secret with this name already exists");
        return;
    }
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s",
             PQgetvalue(row, 0, 0));
    emit_one(resp, 201, row);
}

API_HANDLER(api_secrets_list)
{
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db, "SELECT " SECRET_COLUMNS " FROM secrets ORDER BY name", 0, NULL,
                     &res);
    if (r < 0)
        return db_failed(resp, r);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "secrets");
    yajl_gen_array_open(g);
    for (int i = 0; i < PQntuples(res); i++)
        pg_row_to_json(g, res, i, SECRET_TYPES);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

static bool name_param(const char *name, struct http_response *resp)
{
    if (!name_ok(name)) {
        http_error(resp, 404, "not_found", "no such secret");
        return false;
    }
    return true;
}

API_HANDLER(api_secrets_update)
{
    const char *name = req->params[0];
    resp->audit.resource = "secret";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%.63s", name);
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    if (!name_param(name, resp))
        return;
    const char *value = NULL;
    if (get_value(body, &value, resp) < 0)
        return;
    _cleanup_free_ char *aad = xasprintf("secret:%s:%s", req->who.org_id, name);
    _cleanup_free_ char *enc = secrets_encrypt(value, strlen(value), aad);
    _cleanup_pgres_ PGresult *row = NULL;
    int r = db_query(ctx->db,
                     "UPDATE secrets SET value_enc = $2, key_id = $3 WHERE name = $1 "
                     "RETURNING " SECRET_COLUMNS,
                     3, (const char *[]){ name, enc, secrets_key_id() }, &row);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such secret");
        return;
    }
    emit_one(resp, 200, row);
}

API_HANDLER(api_secrets_delete)
{
    const char *name = req->params[0];
    resp->audit.resource = "secret";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%.63s", name);
    if (!name_param(name, resp))
        return;
    int r = db_query(ctx->db, "DELETE FROM secrets WHERE name = $1", 1,
                     (const char *[]){ name }, NULL);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such secret");
        return;
    }
    http_success(resp);
}

API_HANDLER(api_secrets_check)
{
    const char *name = req->params[0];
    resp->audit.resource = "secret";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%.63s", name);
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    if (!name_param(name, resp))
        return;
    const char *value = NULL;
    if (get_value(body, &value, resp) < 0)
        return;
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db, "SELECT value_enc FROM secrets WHERE name = $1", 1,
                     (const char *[]){ name }, &res);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such secret");
        return;
    }
    _cleanup_free_ char *aad = xasprintf("secret:%s:%s", req->who.org_id, name);
    char *plain = NULL;
    size_t len = 0;
    if (secrets_decrypt(PQgetvalue(res, 0, 0), aad, &plain, &len) < 0) {
        log_error("a secret of the organization could not be decrypted (key missing?)");
        http_error(resp, 500, "internal_error", "the secret could not be read");
        return;
    }
    /* Compare digests so neither the length nor the content leaks through timing. */
    uint8_t a[SBX_SHA256_LEN], b[SBX_SHA256_LEN];
    sbx_sha256(plain, len, a);
    sbx_sha256(value, strlen(value), b);
    bool match = sbx_ct_equal(a, sizeof(a), b, sizeof(b));
    explicit_bzero(plain, len);
    free(plain);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kbool(g, "match", match);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

static bool patterns_allow(const char *pg_array, const char *sandbox_id)
{
    /* text[] in text form: {} or {a,"b c"}; patterns never hold quotes or commas */
    if (!pg_array || strcmp(pg_array, "{}") == 0)
        return true;
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", pg_array + 1);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '}')
        buf[n - 1] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t tl = strlen(t);
        if (tl >= 2 && t[0] == '"' && t[tl - 1] == '"') {
            t[tl - 1] = '\0';
            t++;
        }
        if (fnmatch(t, sandbox_id, 0) == 0)
            return true;
    }
    return false;
}

API_HANDLER(api_secrets_inject)
{
    const char *id = req->params[0];
    resp->audit.resource = "sandbox";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such sandbox");
        return;
    }
    _cleanup_pgres_ PGresult *sb = NULL, *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT status FROM sandboxes WHERE id = $1 AND deleted_at IS NULL", 1,
                     (const char *[]){ id }, &sb);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such sandbox");
        return;
    }
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", id);
    bool all = false;
    if (v_bool(body, "all", &all, resp) < 0)
        return;
    yajl_val names = sbx_json_get(body, "secrets");
    if (names && YAJL_IS_NULL(names))
        names = NULL;
    if (!all && (!names || !YAJL_IS_ARRAY(names) || names->u.array.len == 0 ||
                 names->u.array.len > MAX_INJECT)) {
        http_error(resp, 422, "validation_error",
                   "give 'secrets' (a non-empty array of at most %d names) or 'all': true",
                   MAX_INJECT);
        return;
    }
    if (all && names) {
        http_error(resp, 422, "validation_error", "give either 'secrets' or 'all', not both");
        return;
    }
    _cleanup_buf_ struct sbx_buf list = SBX_BUF_INIT;
    int br = sbx_buf_puts(&list, "{");
    for (size_t i = 0; names && i < names->u.array.len; i++) {
        yajl_val e = names->u.array.values[i];
        if (!YAJL_IS_STRING(e) || !name_ok(e->u.string)) {
            http_error(resp, 422, "validation_error", "field 'secrets' must hold secret names");
            return;
        }
        br |= sbx_buf_printf(&list, "%s%s", i ? "," : "", e->u.string);
    }
    br |= sbx_buf_puts(&list, "}");
    if (br < 0)
        return db_failed(resp, -EINVAL);
    r = db_query(ctx->db,
                 "SELECT id, name, allowed_sandbox_patterns::text, "
                 "    (expires_at IS NOT NULL AND expires_at <= now()) "
                 "  FROM secrets WHERE $1::bool OR name = ANY ($2::text[]) ORDER BY name",
                 2, (const char *[]){ all ? "true" : "false", list.data }, &res);
    if (r < 0)
        return db_failed(resp, r);
    size_t want = all ? 0 : names->u.array.len;
    if (!all) {
        /* every named secret must exist (duplicates in the request count once) */
        for (size_t i = 0; i < want; i++) {
            bool found = false;
            for (int k = 0; k < PQntuples(res); k++)
                if (strcmp(PQgetvalue(res, k, 1), names->u.array.values[i]->u.string) == 0)
                    found = true;
            if (!found) {
                http_error(resp, 404, "secret_not_found", "no secret named '%s'",
                           names->u.array.values[i]->u.string);
                return;
            }
        }
    }
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    _cleanup_jgen_ yajl_gen dg = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "injected");
    yajl_gen_array_open(g);
    yajl_gen_map_open(dg);
    sbx_jgen_key(dg, "secrets");
    yajl_gen_array_open(dg);
    for (int k = 0; k < PQntuples(res); k++) {
        const char *sid = PQgetvalue(res, k, 0), *sname = PQgetvalue(res, k, 1);
        bool expired = strcmp(PQgetvalue(res, k, 3), "t") == 0;
        bool allowed = patterns_allow(PQgetvalue(res, k, 2), id);
        if (expired || !allowed) {
            if (all)
                continue;
            http_error(resp, 403, "secret_not_allowed",
                       "secret '%s' is %s", sname,
                       expired ? "expired" : "not allowed for this sandbox");
            return;
        }
        r = db_query(ctx->db,
                     "INSERT INTO sandbox_secrets (org_id, sandbox_id, secret_id) "
                     "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                     3, (const char *[]){ req->who.org_id, id, sid }, NULL);
        if (r < 0)
            return db_failed(resp, r);
        sbx_jgen_str(g, sname);
        sbx_jgen_str(dg, sname);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_array_close(dg);
    yajl_gen_map_close(dg);
    resp->audit.details_json = sbx_jgen_take(dg, NULL);
    http_json(resp, 200, g);
}
