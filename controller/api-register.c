/*
 * api-register.c — POST /api/v1/register: creates an organization, its owner and a first API
 * key in one transaction, and shows the key once. Public route; worker thread.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/apikey.h"
#include "controller/audit.h"
#include "controller/validate.h"
#include "storage/db.h"

#define NAME_MAX_LEN 200
#define USE_CASE_MAX_LEN 2000
#define SLUG_MAX_LEN 63

/* Slug: lower-case [a-z0-9] runs joined by single '-', trimmed to SLUG_MAX_LEN. */
static void make_slug(const char *name, char *out, size_t outlen)
{
    size_t n = 0;
    bool dash = false;
    for (const unsigned char *c = (const unsigned char *)name; *c && n + 1 < outlen; c++) {
        if (isalnum(*c) && *c < 0x80) {
            if (dash && n > 0 && n + 2 < outlen)
                out[n++] = '-';
            dash = false;
            out[n++] = (char)tolower(*c);
        } else {
            dash = true;
        }
        if (n >= SLUG_MAX_LEN)
            break;
    }
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = '\0';
    if (n == 0) {
        /* Nothing usable in the name (e.g. only non-Latin letters): a random slug. */
        char rnd[9];
        sbx_random_base62(rnd, 8);
        for (char *c = rnd; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        snprintf(out, outlen, "org-%s", rnd);
    }
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void emit(struct http_response *resp, const char *org_id, const char *org_name,
                 const char *slug, const char *user_id, const char *email, const char *key,
                 const char *prefix)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "organization");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "id", org_id);
    sbx_jgen_kstr(g, "name", org_name);
    sbx_jgen_kstr(g, "slug", slug);
    sbx_jgen_kstr(g, "plan", "free");
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "user");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "id", user_id);
    sbx_jgen_kstr(g, "email", email);
    sbx_jgen_kstr(g, "role", "owner");
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "api_key");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "key", key);
    sbx_jgen_kstr(g, "key_prefix", prefix);
    sbx_jgen_kstr(g, "name", "default");
    sbx_jgen_key(g, "scopes");
    yajl_gen_array_open(g);
    for (unsigned b = 1; b <= AUTH_SCOPE_ADMIN; b <<= 1)
        sbx_jgen_str(g, apikey_scope_name(b));
    yajl_gen_array_close(g);
    sbx_jgen_kstr(g, "mode", "live");
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 201, g);
}

API_HANDLER(api_register)
{
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *email = NULL, *org_name = NULL, *first = NULL, *last = NULL, *use_case = NULL;
    if (v_string(body, "email", true, 1, 254, &email, resp) < 0 ||
        v_string(body, "organization_name", true, 1, NAME_MAX_LEN, &org_name, resp) < 0 ||
        v_string(body, "first_name", false, 0, NAME_MAX_LEN, &first, resp) < 0 ||
        v_string(body, "last_name", false, 0, NAME_MAX_LEN, &last, resp) < 0 ||
        v_string(body, "use_case", false, 0, USE_CASE_MAX_LEN, &use_case, resp) < 0)
        return;
    if (!v_not_blank(org_name)) {
        http_error(resp, 422, "validation_error", "field 'organization_name' must not be blank");
        return;
    }
    if (!v_email(email)) {
        http_error(resp, 422, "validation_error", "field 'email' is not a valid e-mail address");
        return;
    }
    if (handler_db(ctx, resp) < 0)
        return;

    _cleanup_pgres_ PGresult *r1 = NULL, *r2 = NULL, *r3 = NULL;
    int r = 0;
    char org_id[37], slug[SLUG_MAX_LEN + 1], key[APIKEY_MAX_LEN + 1], prefix[32];
    char hash[SBX_SHA256_HEX_LEN + 1];
    _cleanup_free_ char *email_lc = xstrdup(email);
    lower(email_lc);
    make_slug(org_name, slug, sizeof(slug));
    sbx_uuid4(org_id);
    struct apikey_parts parts;
    apikey_generate(false, key, &parts);
    apikey_prefix(&parts, prefix, sizeof(prefix));
    sbx_sha256_hex(parts.secret, APIKEY_SECRET_LEN, hash);

    if (db_begin(ctx->db, org_id) < 0)
        goto unavailable;
    r = db_query(ctx->db, "INSERT INTO orgs (id, name, slug) VALUES ($1, $2, $3)", 3,
                     (const char *[]){ org_id, org_name, slug }, &r1);
    if (r == -EEXIST) {
        db_rollback(ctx->db);
        http_error(resp, 409, "conflict", "an organization with the slug '%s' already exists",
                   slug);
        return;
    }
    if (r < 0)
        goto failed;
    r = db_query(ctx->db,
                 "INSERT INTO users (org_id, email, first_name, last_name, role, use_case) "
                 "VALUES ($1, $2, $3, $4, 'owner', $5) RETURNING id",
                 5, (const char *[]){ org_id, email_lc, first, last, use_case }, &r2);
    if (r == -EEXIST) {
        db_rollback(ctx->db);
        http_error(resp, 409, "conflict", "a user with this e-mail address already exists");
        return;
    }
    if (r < 0)
        goto failed;
    const char *user_id = PQgetvalue(r2, 0, 0);
    r = db_query(ctx->db,
                 "INSERT INTO api_keys (org_id, key_id, name, key_prefix, key_hash, scopes, mode, "
                 "  created_by_user) "
                 "VALUES ($1, $2, 'default', $3, decode($4, 'hex'), "
                 "  '{read,write,execute,admin}', 'live', $5) RETURNING id",
                 5, (const char *[]){ org_id, parts.key_id, prefix, hash, user_id }, &r3);
    if (r < 0)
        goto failed;

    req->who.authenticated = true;
    snprintf(req->who.org_id, sizeof(req->who.org_id), "%s", org_id);
    snprintf(req->who.key_id, sizeof(req->who.key_id), "%s", PQgetvalue(r3, 0, 0));
    req->who.scopes = AUTH_SCOPE_ALL;
    emit(resp, org_id, org_name, slug, user_id, email_lc, key, prefix);
    resp->audit.action = "org.register";
    resp->audit.resource = "organization";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", org_id);
    r = audit_write(ctx, req, resp, true);
    if (r >= 0)
        r = db_commit(ctx->db);
    if (r < 0) {
        free(resp->body);
        resp->body = NULL;
        goto failed;
    }
    return;

failed:
    db_rollback(ctx->db);
    if (r == -EIO)
        goto unavailable;
    log_error("registration failed: %s", db_last_error(ctx->db)->message);
    http_error(resp, 500, "internal_error", "internal error");
    return;
unavailable:
    http_error(resp, 503, "database_unavailable", "the database is not reachable");
    resp->retry_after = 1;
}
