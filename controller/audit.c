/* audit.c — writing audit records (see audit.h). Worker threads. */
#include "controller/audit.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "storage/db.h"

static int insert(struct handler_ctx *ctx, const char *org_id, const struct http_request *req,
                  const struct http_response *resp)
{
    const struct http_audit *a = &resp->audit;
    const char *action = a->action ? a->action : req->route->action;
    bool ok = resp->status < 400;
    char duration[32], err[600] = "";
    snprintf(duration, sizeof(duration), "%llu",
             (unsigned long long)((sbx_now_us() - req->start_us) / 1000));
    if (!ok)
        snprintf(err, sizeof(err), "%s: %s", resp->error_code ? resp->error_code : "error",
                 resp->error_message ? resp->error_message : "");
    const char *params[] = {
        org_id,
        req->request_id,
        req->who.authenticated && req->who.key_id[0] ? req->who.key_id : NULL,
        action,
        a->resource,
        a->resource_id[0] ? a->resource_id : (req->n_params ? req->params[0] : NULL),
        a->sandbox_id[0] ? a->sandbox_id : NULL,
        ok ? "success" : "failure",
        ok ? NULL : err,
        a->details_json ? a->details_json : "{}",
        duration,
    };
    _cleanup_pgres_ PGresult *res = NULL;
    return db_query(ctx->db,
                    "INSERT INTO audit_logs (org_id, request_id, actor_key_id, action, "
                    "  resource_type, resource_id, sandbox_id, outcome, error_message, details, "
                    "  duration_ms) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)",
                    11, params, &res);
}

int audit_write(struct handler_ctx *ctx, const struct http_request *req,
                const struct http_response *resp, bool in_tx)
{
    if (!req->who.authenticated)
        return 0;
    if (in_tx)
        return insert(ctx, req->who.org_id, req, resp);
    return audit_write_org(ctx, req->who.org_id, req, resp);
}

int audit_write_org(struct handler_ctx *ctx, const char *org_id, const struct http_request *req,
                    const struct http_response *resp)
{
    int r = db_begin(ctx->db, org_id);
    if (r >= 0) {
        r = insert(ctx, org_id, req, resp);
        if (r >= 0)
            r = db_commit(ctx->db);
        else
            db_rollback(ctx->db);
    }
    if (r < 0)
        log_error_errno(r, "writing the audit record of request %s failed", req->request_id);
    return r;
}
