/* plans.c — plans and quotas from the configuration (see plans.h, docs/internals/LIMITS.md). */
#include "controller/plans.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "controller/app.h"
#include "storage/db.h"

const char *const plan_names[] = { "free", "pro", "team", "enterprise", NULL };

bool plan_name_valid(const char *name)
{
    for (size_t i = 0; name && plan_names[i]; i++)
        if (strcmp(plan_names[i], name) == 0)
            return true;
    return false;
}

void plan_get(const struct sbx_config *cfg, const char *name, struct plan_limits *ret)
{
    const struct sbx_plan_config *p = &cfg->plans.free;
    const char *n = "free";
    if (name && strcmp(name, "pro") == 0)
        p = &cfg->plans.pro, n = "pro";
    else if (name && strcmp(name, "team") == 0)
        p = &cfg->plans.team, n = "team";
    else if (name && strcmp(name, "enterprise") == 0)
        p = &cfg->plans.enterprise, n = "enterprise";
    *ret = (struct plan_limits){
        .name = n,
        .max_cpus_milli = p->max_cpus,
        .max_memory_bytes = p->max_memory,
        .max_timeout_s = p->max_duration,
        .max_concurrent = p->max_concurrent,
        .monthly_sandboxes = p->monthly_sandboxes,
        .storage_bytes = p->storage,
        .rate_limit = p->rate_limit,
        .rate_burst = p->rate_burst,
        .org_rate_limit = p->org_rate_limit,
        .org_rate_burst = p->org_rate_burst,
    };
}

static void kdbl_or_int(yajl_gen g, const char *k, double v)
{
    if (v >= 0 && v < 9e15 && v == (double)(long long)v)
        sbx_jgen_kint(g, k, (long long)v);
    else
        sbx_jgen_kdbl(g, k, v);
}

void plan_error(const struct http_request *req, struct http_response *resp, int status,
                const char *code, const char *limit, double current, double maximum,
                const char *unit, const char *plan, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    http_error(resp, status, code, "%s", msg);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "error");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "code", code);
    sbx_jgen_kstr(g, "message", msg);
    sbx_jgen_kstr(g, "request_id", req->request_id);
    sbx_jgen_kstr(g, "limit", limit);
    kdbl_or_int(g, "current", current);
    kdbl_or_int(g, "maximum", maximum);
    if (unit)
        sbx_jgen_kstr(g, "unit", unit);
    sbx_jgen_kstr(g, "plan", plan);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    resp->body = sbx_jgen_take(g, &resp->body_len);
}

int plan_of_org(struct handler_ctx *ctx, const char *org_id, struct plan_limits *ret)
{
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db, "SELECT plan FROM orgs WHERE id = $1", 1,
                     (const char *[]){ org_id }, &res);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    plan_get(&ctx->app->cfg, PQgetvalue(res, 0, 0), ret);
    return 0;
}

int plan_check_storage(struct handler_ctx *ctx, const struct http_request *req,
                       uint64_t add_bytes, struct http_response *resp)
{
    struct plan_limits plan;
    int r = plan_of_org(ctx, req->who.org_id, &plan);
    if (r < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
        return -EIO;
    }
    if (plan.storage_bytes == 0)
        return 0;
    _cleanup_pgres_ PGresult *res = NULL;
    r = db_query(ctx->db,
                 "SELECT (SELECT COALESCE(sum(size), 0) FROM checkpoints "
                 "         WHERE status <> 'failed') + "
                 "       (SELECT COALESCE(sum(size), 0) FROM artifacts "
                 "         WHERE status <> 'failed' AND (expires_at IS NULL OR expires_at > now()))",
                 0, NULL, &res);
    if (r <= 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
        return -EIO;
    }
    double used = strtod(PQgetvalue(res, 0, 0), NULL);
    if (used + (double)add_bytes > (double)plan.storage_bytes) {
        char lim[32];
        sbx_config_format_size(plan.storage_bytes, lim, sizeof(lim));
        plan_error(req, resp, 429, "storage_limit_exceeded", "storage", used,
                   (double)plan.storage_bytes, "bytes", plan.name,
                   "storage limit reached: %.0f bytes used + %llu requested exceeds the %s "
                   "allowed by plan '%s'",
                   used, (unsigned long long)add_bytes, lim, plan.name);
        return -E2BIG;
    }
    return 0;
}
