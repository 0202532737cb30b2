/*
 * api-webhooks.c — webhook endpoints (docs/internals/WEBHOOKS.md):
 *   POST   /api/v1/webhooks                  register {url, events, secret?, description?,
 *                                            headers?, retry_count?, retry_delay_ms?,
 *                                            timeout_ms?} → Webhook (+ secret, shown once)
 *   GET    /api/v1/webhooks                  {webhooks: [...]} (never the secret)
 *   DELETE /api/v1/webhooks/:id              {success}
 *   POST   /api/v1/webhooks/:id/test         sends a webhook.test event now → the result
 *   GET    /api/v1/webhooks/:id/deliveries   {deliveries: [...]} newest first, ?limit=
 * Worker threads, inside the caller's organization transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/events.h"
#include "controller/pgjson.h"
#include "controller/secrets.h"
#include "controller/validate.h"
#include "controller/webhooks.h"
#include "storage/db.h"

#define MAX_WEBHOOKS_PER_ORG 50
#define MAX_HEADERS 20
#define MAX_EVENTS 32

#define WEBHOOK_COLUMNS                                                                          \
    "id, url, events, enabled, headers, retry_count, retry_delay_ms, timeout_ms, description, "  \
    "disabled_reason, " SQL_TS("disabled_at") " AS disabled_at, failure_count, "                \
    SQL_TS("created_at") " AS created_at, " SQL_TS("updated_at") " AS updated_at"
#define WEBHOOK_TYPES "ssabjiiisssiss"

static void db_failed(struct http_response *resp, int r)
{
    if (r == -EIO || r == -EAGAIN) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "webhook query failed");
        http_error(resp, 500, "internal_error", "internal error");
    }
}

static bool header_name_ok(const char *k)
{
    static const char *const reserved[] = { "host", "content-type", "content-length",
                                            "webhook-id", "webhook-timestamp",
                                            "webhook-signature", "x-sandbox-signature",
                                            "x-sandbox-event", "transfer-encoding", "connection",
                                            "expect", "user-agent", "cookie", "proxy-authorization" };
    size_t n = strlen(k);
    if (n == 0 || n > 128)
        return false;
    for (const char *c = k; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
        if (strcasecmp(k, reserved[i]) == 0)
            return false;
    return true;
}

static bool header_value_ok(const char *v)
{
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\t')
            return false;
    return true;
}

/* events: "*" or an array of names → a Postgres text[] literal in out. */
static int parse_events(yajl_val body, struct sbx_buf *out, struct http_response *resp)
{
    yajl_val v = sbx_json_get(body, "events");
    int r = 0;
    if (!v || YAJL_IS_NULL(v) || (YAJL_IS_STRING(v) && strcmp(v->u.string, "*") == 0)) {
        r = sbx_buf_puts(out, "{*}");
        return r < 0 ? -EINVAL : 0;
    }
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 || v->u.array.len > MAX_EVENTS) {
        http_error(resp, 422, "validation_error",
                   "field 'events' must be \"*\" or a non-empty array of at most %d event names",
                   MAX_EVENTS);
        return -EINVAL;
    }
    r |= sbx_buf_puts(out, "{");
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        if (!YAJL_IS_STRING(e) || (strcmp(e->u.string, "*") != 0 &&
                                   !events_name_valid(e->u.string))) {
            _cleanup_buf_ struct sbx_buf names = SBX_BUF_INIT;
            for (size_t k = 0; events_names[k]; k++)
                if (sbx_buf_printf(&names, "%s%s", k ? ", " : "", events_names[k]) < 0)
                    break;
            http_error(resp, 422, "validation_error",
                       "field 'events' has an unknown event; valid: *, %s", names.data);
            return -EINVAL;
        }
        r |= sbx_buf_printf(out, "%s\"%s\"", i ? "," : "", e->u.string);
    }
    r |= sbx_buf_puts(out, "}");
    return r < 0 ? -EINVAL : 0;
}

API_HANDLER(api_webhooks_create)
{
    const struct sbx_config *cfg = &ctx->app->cfg;
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, cfg->http.max_json_depth, &body) < 0)
        return;
    if (!YAJL_IS_OBJECT(body)) {
        http_error(resp, 422, "validation_error", "the body must be a JSON object");
        return;
    }
    resp->audit.resource = "webhook";
    const char *url = NULL, *secret = NULL, *description = NULL;
    long long retry_count = webhooks_default_retries(), retry_delay = 1000, timeout = 30000;
    yajl_val headers = NULL;
    if (v_string(body, "url", true, 1, 2048, &url, resp) < 0 ||
        v_string(body, "secret", false, 16, 256, &secret, resp) < 0 ||
        v_string(body, "description", false, 0, 2000, &description, resp) < 0 ||
        v_int(body, "retry_count", false, 0, 20, &retry_count, NULL, resp) < 0 ||
        v_int(body, "retry_delay_ms", false, 0, 86400000, &retry_delay, NULL, resp) < 0 ||
        v_int(body, "timeout_ms", false, 100, 120000, &timeout, NULL, resp) < 0 ||
        v_string_map(body, "headers", MAX_HEADERS, 1024, &headers, resp) < 0)
        return;
    char err[160];
    if (webhooks_url_valid(url, err, sizeof(err)) < 0) {
        http_error(resp, 422, "validation_error", "%s", err);
        return;
    }
    if (secret && !header_value_ok(secret)) {
        http_error(resp, 422, "validation_error", "field 'secret' must be printable text");
        return;
    }
    for (size_t i = 0; headers && i < headers->u.object.len; i++)
        if (!header_name_ok(headers->u.object.keys[i]) ||
            !header_value_ok(headers->u.object.values[i]->u.string)) {
            http_error(resp, 422, "validation_error",
                       "field 'headers' has an invalid or reserved header name or value");
            return;
        }
    _cleanup_buf_ struct sbx_buf events = SBX_BUF_INIT;
    if (parse_events(body, &events, resp) < 0)
        return;

    _cleanup_pgres_ PGresult *cnt = NULL, *row = NULL;
    int r = db_query(ctx->db, "SELECT count(*) FROM webhooks", 0, NULL, &cnt);
    if (r < 0)
        return db_failed(resp, r);
    if (atoi(PQgetvalue(cnt, 0, 0)) >= MAX_WEBHOOKS_PER_ORG) {
        http_error(resp, 409, "limit_exceeded", "an organization can have at most %d webhooks",
                   MAX_WEBHOOKS_PER_ORG);
        return;
    }
    char gen[64];
    if (!secret) {
        uint8_t raw[32];
        sbx_random_bytes(raw, sizeof(raw));
        _cleanup_free_ char *b64 = sbx_base64_encode(raw, sizeof(raw), NULL);
        explicit_bzero(raw, sizeof(raw));
        snprintf(gen, sizeof(gen), "whsec_%s", b64);
        explicit_bzero(b64, strlen(b64));
        secret = gen;
    }
    char id[37];
    sbx_uuid4(id);
    _cleanup_free_ char *aad = xasprintf("webhook:%s:%s", req->who.org_id, id);
    _cleanup_free_ char *enc = secrets_encrypt(secret, strlen(secret), aad);
    _cleanup_jgen_ yajl_gen hg = sbx_jgen_new();
    if (headers)
        sbx_jgen_value(hg, headers);
    else {
        yajl_gen_map_open(hg);
        yajl_gen_map_close(hg);
    }
    _cleanup_free_ char *headers_json = sbx_jgen_take(hg, NULL);
    char rc[16], rd[16], to[16];
    snprintf(rc, sizeof(rc), "%lld", retry_count);
    snprintf(rd, sizeof(rd), "%lld", retry_delay);
    snprintf(to, sizeof(to), "%lld", timeout);
    r = db_query(ctx->db,
                 "INSERT INTO webhooks (id, org_id, url, events, secret, headers, description, "
                 "  retry_count, retry_delay_ms, timeout_ms) "
                 "VALUES ($1, $2, $3, $4::text[], $5, $6::jsonb, $7, $8, $9, $10) "
                 "RETURNING " WEBHOOK_COLUMNS,
                 10,
                 (const char *[]){ id, req->who.org_id, url, events.data, enc, headers_json,
                                   description, rc, rd, to },
                 &row);
    if (r <= 0) {
        if (secret == gen)
            explicit_bzero(gen, sizeof(gen));
        return db_failed(resp, r < 0 ? r : -EIO);
    }
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    pg_row_members(g, row, 0, WEBHOOK_TYPES);
    sbx_jgen_kstr(g, "secret", secret);
    yajl_gen_map_close(g);
    if (secret == gen)
        explicit_bzero(gen, sizeof(gen));
    http_json(resp, 201, g);
}

API_HANDLER(api_webhooks_list)
{
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT " WEBHOOK_COLUMNS " FROM webhooks ORDER BY created_at DESC, id",
                     0, NULL, &res);
    if (r < 0)
        return db_failed(resp, r);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "webhooks");
    yajl_gen_array_open(g);
    for (int i = 0; i < PQntuples(res); i++)
        pg_row_to_json(g, res, i, WEBHOOK_TYPES);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

/* Checks :id names a webhook of the org; sets 404 otherwise. */
static bool webhook_exists(struct handler_ctx *ctx, const char *id, struct http_response *resp)
{
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such webhook");
        return false;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db, "SELECT 1 FROM webhooks WHERE id = $1", 1,
                     (const char *[]){ id }, &res);
    if (r < 0) {
        db_failed(resp, r);
        return false;
    }
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such webhook");
        return false;
    }
    return true;
}

API_HANDLER(api_webhooks_delete)
{
    const char *id = req->params[0];
    resp->audit.resource = "webhook";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such webhook");
        return;
    }
    int r = db_query(ctx->db, "DELETE FROM webhooks WHERE id = $1", 1, (const char *[]){ id },
                     NULL);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such webhook");
        return;
    }
    http_success(resp);
}

API_HANDLER(api_webhooks_test)
{
    const char *id = req->params[0];
    resp->audit.resource = "webhook";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    if (!webhook_exists(ctx, id, resp))
        return;
    /* The event and its one delivery, written directly (no fan-out to other endpoints). */
    char ev[37], dl[37];
    sbx_uuid4(ev);
    sbx_uuid4(dl);
    int r = db_query(ctx->db,
                     "INSERT INTO webhook_events (id, org_id, event, payload, dispatched_at, "
                     "  instance) VALUES ($1, $2, 'webhook.test', "
                     "  jsonb_build_object('message', 'This is a test event from sandboxd.', "
                     "                     'webhook_id', $3::text), now(), $4)",
                     4, (const char *[]){ ev, req->who.org_id, id, ctx->app->instance }, NULL);
    if (r >= 0)
        r = db_query(ctx->db,
                     "INSERT INTO webhook_deliveries (id, org_id, webhook_id, event_id, event, "
                     "  instance) VALUES ($1, $2, $3, $4, 'webhook.test', $5)",
                     5, (const char *[]){ dl, req->who.org_id, id, ev, ctx->app->instance },
                     NULL);
    if (r >= 0)
        r = db_commit(ctx->db);
    if (r < 0) {
        db_rollback(ctx->db);
        db_failed(resp, r);
        if (db_begin(ctx->db, req->who.org_id) < 0)
            log_error("webhook test: could not reopen the request transaction");
        return;
    }
    struct webhook_attempt a = { 0 };
    r = webhooks_attempt(ctx->app, ctx->db, req->who.org_id, dl, true, &a);
    if (db_begin(ctx->db, req->who.org_id) < 0)
        log_error("webhook test: could not reopen the request transaction");
    if (r < 0)
        return db_failed(resp, r);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kbool(g, "success", a.success);
    sbx_jgen_kstr(g, "delivery_id", dl);
    sbx_jgen_kstr(g, "event_id", ev);
    sbx_jgen_kstr(g, "event", "webhook.test");
    sbx_jgen_kstr(g, "status", a.done ? a.status : "pending");
    if (a.response_status)
        sbx_jgen_kint(g, "response_status", a.response_status);
    else
        sbx_jgen_knull(g, "response_status");
    sbx_jgen_kint(g, "latency_ms", a.latency_ms);
    sbx_jgen_kstr(g, "error", a.error[0] ? a.error : NULL);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_webhooks_deliveries)
{
    const char *id = req->params[0];
    long long limit = 50;
    const char *q = http_query(req, "limit");
    if (q) {
        char *end;
        limit = strtoll(q, &end, 10);
        if (!*q || *end || limit < 1 || limit > 200) {
            http_error(resp, 400, "invalid_query", "limit must be an integer from 1 to 200");
            return;
        }
    }
    if (!webhook_exists(ctx, id, resp))
        return;
    char lim[16];
    snprintf(lim, sizeof(lim), "%lld", limit);
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT id, webhook_id, event_id, event, status, attempts, "
                     SQL_TS("last_attempt_at") " AS last_attempt_at, response_status, error, "
                     "latency_ms, response_snippet, "
                     SQL_TS("next_attempt_at") " AS next_attempt_at, "
                     SQL_TS("created_at") " AS created_at "
                     "FROM webhook_deliveries WHERE webhook_id = $1 "
                     "ORDER BY created_at DESC, id LIMIT $2::int",
                     2, (const char *[]){ id, lim }, &res);
    if (r < 0)
        return db_failed(resp, r);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "deliveries");
    yajl_gen_array_open(g);
    for (int i = 0; i < PQntuples(res); i++) {
        yajl_gen_map_open(g);
        pg_row_members(g, res, i, "sssssisisisss");
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}
