/*
 * api-health.c — /healthz (process alive), /readyz (database reachable and migrations
 * applied), /metrics (Prometheus text), and the OpenAPI document. Worker threads.
 */
#include "controller/api.h"

#include "common/log.h"
#include "controller/metrics.h"
#include "controller/openapi.h"
#include "controller/warmpool.h"
#include "storage/db.h"

void api_healthz(struct handler_ctx *ctx, struct http_request *req, struct http_response *resp)
{
    http_raw(resp, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

void api_readyz(struct handler_ctx *ctx, struct http_request *req, struct http_response *resp)
{
    if (handler_db(ctx, resp) < 0)
        return;
    if (!db_ping(ctx->db)) {
        http_error(resp, 503, "not_ready", "the database is not reachable");
        resp->retry_after = 1;
        return;
    }
    if (db_migrations_current(ctx->db, ctx->app->cfg.database.migrations_dir) != 0) {
        http_error(resp, 503, "not_ready", "database migrations are not applied");
        resp->retry_after = 1;
        return;
    }
    http_raw(resp, 200, "application/json", "{\"status\":\"ready\"}", 18);
}

void api_metrics(struct handler_ctx *ctx, struct http_request *req, struct http_response *resp)
{
    _cleanup_buf_ struct sbx_buf out = SBX_BUF_INIT;
    if (metrics_render(&out) < 0 || warmpool_metrics(ctx->app, &out) < 0) {
        http_error(resp, 500, "internal_error", "internal error");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = sbx_buf_steal(&out, &resp->body_len);
}

void api_openapi(struct handler_ctx *ctx, struct http_request *req, struct http_response *resp)
{
    http_raw(resp, 200, "application/yaml", openapi_yaml, openapi_yaml_len);
}
