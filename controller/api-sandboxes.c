/*
 * api-sandboxes.c — sandbox lifecycle endpoints:
 *   POST   /api/v1/sandbox/create      create and start (status creating → running | error)
 *   GET    /api/v1/sandbox/:id         the Sandbox object
 *   GET    /api/v1/sandbox/:id/status  lightweight status
 *   GET    /api/v1/sandboxes           list, filters status / metadata.<key>, cursor pagination
 *   POST   /api/v1/sandbox/:id/stop    end it, keep nothing running (workspace kept on disk)
 *   DELETE /api/v1/sandbox/:id         end it and remove its workspace; hidden afterwards
 * Worker threads, inside the caller's organization transaction (create commits its
 * 'creating' row before the runtime starts the sandbox, so the reconciler can see it).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/events.h"
#include "controller/checkpoint.h"
#include "controller/paging.h"
#include "controller/pgjson.h"
#include "controller/plans.h"
#include "controller/sandbox.h"
#include "controller/templates.h"
#include "controller/templates-k8s.h"
#include "controller/validate.h"
#include "controller/warmpool.h"
#include "k8s/k8s-runtime.h"
#include "runtime/runtime.h"
#include "storage/db.h"

#define MAX_ENV 256
#define MAX_METADATA_BYTES 16384
#define DEFAULT_PIDS_MAX 512

static void db_failed(struct http_response *resp, int r)
{
    if (r == -EIO || r == -EAGAIN) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "sandbox query failed");
        http_error(resp, 500, "internal_error", "internal error");
    }
}

static void emit_sandbox(struct http_response *resp, int status, const PGresult *res)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    pg_row_to_json(g, res, 0, SANDBOX_JSON_TYPES);
    http_json(resp, status, g);
}

/* cpus: "1", "0.5", "500m" or a JSON number → milli-CPUs. */
static int parse_cpus(yajl_val body, uint32_t def, uint32_t *ret, char *text, size_t textlen,
                      struct http_response *resp)
{
    yajl_val v = sbx_json_get(body, "cpus");
    if (!v || YAJL_IS_NULL(v)) {
        *ret = def;
        sbx_config_format_cpus(def, text, textlen);
        return 0;
    }
    char buf[32];
    if (YAJL_IS_STRING(v) && strlen(v->u.string) < sizeof(buf))
        snprintf(buf, sizeof(buf), "%s", v->u.string);
    else if (YAJL_IS_NUMBER(v) && strlen(v->u.number.r) < sizeof(buf))
        snprintf(buf, sizeof(buf), "%s", v->u.number.r);
    else
        buf[0] = '\0';
    uint32_t m;
    if (!buf[0] || sbx_config_parse_cpus(buf, &m) < 0 || m == 0) {
        http_error(resp, 422, "validation_error",
                   "field 'cpus' must be a positive CPU count such as \"1\", \"0.5\" or \"500m\"");
        return -EINVAL;
    }
    *ret = m;
    snprintf(text, textlen, "%s", buf);
    return 0;
}

/* memory: "512Mi", "1Gi" or a JSON integer of bytes. */
static int parse_memory(yajl_val body, uint64_t def, uint64_t *ret, char *text, size_t textlen,
                        struct http_response *resp)
{
    yajl_val v = sbx_json_get(body, "memory");
    if (!v || YAJL_IS_NULL(v)) {
        *ret = def;
        sbx_config_format_size(def, text, textlen);
        return 0;
    }
    char buf[32];
    if (YAJL_IS_STRING(v) && strlen(v->u.string) < sizeof(buf))
        snprintf(buf, sizeof(buf), "%s", v->u.string);
    else if (YAJL_IS_INTEGER(v) && strlen(v->u.number.r) < sizeof(buf))
        snprintf(buf, sizeof(buf), "%s", v->u.number.r);
    else
        buf[0] = '\0';
    uint64_t b;
    if (!buf[0] || sbx_config_parse_size(buf, &b) < 0 || b < 16 * 1024 * 1024) {
        http_error(resp, 422, "validation_error",
                   "field 'memory' must be a size of at least 16Mi such as \"512Mi\" or \"1Gi\"");
        return -EINVAL;
    }
    *ret = b;
    snprintf(text, textlen, "%s", buf);
    return 0;
}

static bool env_name_ok(const char *k)
{
    if (!*k || strlen(k) > 256 || (*k >= '0' && *k <= '9'))
        return false;
    for (const char *c = k; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return false;
    return true;
}

/* Builds the spec's env array from the validated jsonb text. */
static char **env_array(yajl_val env)
{
    size_t n = env ? env->u.object.len : 0;
    char **arr = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        arr[i] = xasprintf("%s=%s", env->u.object.keys[i], env->u.object.values[i]->u.string);
    return arr;
}

static char *json_text(yajl_val v)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    if (v)
        sbx_jgen_value(g, v);
    else {
        yajl_gen_map_open(g);
        yajl_gen_map_close(g);
    }
    return sbx_jgen_take(g, NULL);
}

API_HANDLER(api_sandbox_create)
{
    const struct sbx_config *cfg = &ctx->app->cfg;
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, cfg->http.max_json_depth, &body) < 0)
        return;
    const char *template = NULL;
    long long timeout = 0;
    bool has_timeout = false;
    yajl_val env = NULL, metadata = NULL;
    uint32_t cpus;
    uint64_t memory;
    char cpus_text[32], memory_text[32];
    /* A template's defaults apply where the request sets nothing (controller/templates.h). */
    const struct sbx_template *tpl = templates_find(sbx_json_get_str(body, "template"));
    uint32_t def_cpus = tpl && tpl->cpus_milli ? tpl->cpus_milli : cfg->limits.default_cpus;
    uint64_t def_mem = tpl && tpl->memory_bytes ? tpl->memory_bytes : cfg->limits.default_memory;
    if (v_string(body, "template", false, 1, 128, &template, resp) < 0 ||
        v_int(body, "timeout_seconds", false, 1, 365LL * 24 * 3600, &timeout, &has_timeout,
              resp) < 0 ||
        v_string_map(body, "env", MAX_ENV, 32768, &env, resp) < 0 ||
        parse_cpus(body, def_cpus, &cpus, cpus_text, sizeof(cpus_text), resp) < 0 ||
        parse_memory(body, def_mem, &memory, memory_text, sizeof(memory_text), resp) < 0)
        return;
    for (size_t i = 0; env && i < env->u.object.len; i++)
        if (!env_name_ok(env->u.object.keys[i])) {
            http_error(resp, 422, "validation_error",
                       "field 'env' has an invalid variable name (use [A-Za-z_][A-Za-z0-9_]*)");
            return;
        }
    metadata = sbx_json_get(body, "metadata");
    if (metadata && YAJL_IS_NULL(metadata))
        metadata = NULL;
    if (metadata && !YAJL_IS_OBJECT(metadata)) {
        http_error(resp, 422, "validation_error", "field 'metadata' must be an object");
        return;
    }
    _cleanup_json_ yajl_val tpl_env = tpl ? templates_merge_env(tpl, env) : NULL;
    if (tpl_env)
        env = tpl_env;
    _cleanup_free_ char *metadata_json = json_text(metadata);
    _cleanup_free_ char *env_json = json_text(env);
    if (strlen(metadata_json) > MAX_METADATA_BYTES) {
        http_error(resp, 422, "validation_error", "field 'metadata' exceeds %d bytes",
                   MAX_METADATA_BYTES);
        return;
    }
    /* An org-private template (promoted from a checkpoint) starts with that workspace. */
    char tpl_ckpt[37] = "";
    if (template && !tpl) {
        int tr = templates_org_checkpoint(ctx->db, template, tpl_ckpt);
        if (tr < 0 && tr != -ENOENT) {
            http_error(resp, 503, "database_unavailable", "the database is not reachable");
            resp->retry_after = 1;
            return;
        }
        if (tr == -ENOENT) {
            http_error(resp, 400, "unknown_template",
                       "unknown template '%s'; valid templates: %s (and the organization's own)",
                       template, templates_names());
            return;
        }
    }
    if (tpl && !tpl->available) {
        http_error(resp, 422, "template_unavailable", "template '%s' is not available: %s",
                   tpl->name, tpl->unavailable_reason);
        return;
    }
    if (!has_timeout)
        timeout = tpl && tpl->timeout_s ? (long long)tpl->timeout_s
                                        : (long long)cfg->limits.default_timeout;
    /* from_checkpoint: start with a checkpoint's workspace (fork; controller/checkpoint.h). */
    const char *from_ckpt = NULL;
    _cleanup_free_ char *ck_key = NULL, *ck_sum = NULL, *ck_env = NULL;
    if (v_string(body, "from_checkpoint", false, 1, 64, &from_ckpt, resp) < 0)
        return;
    if (tpl_ckpt[0]) {
        if (from_ckpt) {
            http_error(resp, 422, "validation_error",
                       "template '%s' starts from a checkpoint; do not also give "
                       "'from_checkpoint'",
                       template);
            return;
        }
        from_ckpt = tpl_ckpt;
    }
    if (from_ckpt && !ctx->app->blobs) {
        http_error(resp, 503, "storage_unavailable", "the object store is not configured");
        return;
    }
    if (from_ckpt && ckpt_lookup(ctx->db, from_ckpt, &ck_key, &ck_sum, &ck_env, resp) < 0)
        return;

    /* Plan and configuration maximums (controller/plans.h). */
    _cleanup_pgres_ PGresult *cnt = NULL, *row = NULL;
    struct plan_limits plan;
    int r = plan_of_org(ctx, req->who.org_id, &plan);
    if (r < 0)
        return db_failed(resp, r == -ENOENT ? -EIO : r);
    uint32_t max_cpus = MIN(plan.max_cpus_milli, cfg->limits.max_cpus);
    uint64_t max_mem = MIN(plan.max_memory_bytes, cfg->limits.max_memory);
    uint64_t max_timeout = plan.max_timeout_s ? MIN(plan.max_timeout_s, cfg->limits.max_timeout)
                                              : cfg->limits.max_timeout;
    uint32_t max_conc = plan.max_concurrent
                            ? MIN(plan.max_concurrent, cfg->limits.max_sandboxes_per_org)
                            : cfg->limits.max_sandboxes_per_org;
    char lim[32], got[32];
    if (cpus > max_cpus) {
        sbx_config_format_cpus(max_cpus, lim, sizeof(lim));
        sbx_config_format_cpus(cpus, got, sizeof(got));
        plan_error(req, resp, 422, "cpus_limit_exceeded", "max_cpus", cpus / 1000.0,
                   max_cpus / 1000.0, "cpus", plan.name,
                   "cpus limit exceeded: requested %s, plan '%s' allows at most %s", got,
                   plan.name, lim);
        return;
    }
    if (memory > max_mem) {
        sbx_config_format_size(max_mem, lim, sizeof(lim));
        sbx_config_format_size(memory, got, sizeof(got));
        plan_error(req, resp, 422, "memory_limit_exceeded", "max_memory", (double)memory,
                   (double)max_mem, "bytes", plan.name,
                   "memory limit exceeded: requested %s, plan '%s' allows at most %s", got,
                   plan.name, lim);
        return;
    }
    if ((uint64_t)timeout > max_timeout) {
        plan_error(req, resp, 422, "duration_limit_exceeded", "max_duration", (double)timeout,
                   (double)max_timeout, "seconds", plan.name,
                   "duration limit exceeded: timeout_seconds %lld, plan '%s' allows at most "
                   "%llu seconds",
                   timeout, plan.name, (unsigned long long)max_timeout);
        return;
    }
    if (!ctx->app->rt) {
        http_error(resp, 503, "runtime_unavailable", "the sandbox runtime is not available");
        return;
    }

    /* Concurrency and the monthly count: serialise creates of one org, count what is alive
     * and what was created this calendar month (UTC). Under the request's mode (RLS): test
     * keys have their own budget with the same limits. */
    r = db_query(ctx->db, "SELECT pg_advisory_xact_lock(hashtextextended($1, 42))", 1,
                 (const char *[]){ req->who.org_id }, NULL);
    if (r >= 0)
        r = db_query(ctx->db,
                     "SELECT (SELECT count(*) FROM sandboxes "
                     "         WHERE status IN ('creating', 'running', 'terminating')), "
                     "       (SELECT COALESCE(sum(quantity), 0)::bigint FROM usage_events "
                     "         WHERE kind = 'sandbox_created' AND billing_status = $1 "
                     "           AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') "
                     "                             AT TIME ZONE 'UTC')",
                     1, (const char *[]){ req->who.test_mode ? "sandbox" : "live" }, &cnt);
    if (r < 0)
        return db_failed(resp, r);
    unsigned long long active = strtoull(PQgetvalue(cnt, 0, 0), NULL, 10);
    unsigned long long month = strtoull(PQgetvalue(cnt, 0, 1), NULL, 10);
    if (active >= max_conc) {
        plan_error(req, resp, 429, "concurrency_limit_exceeded", "max_concurrent",
                   (double)active, (double)max_conc, "sandboxes", plan.name,
                   "concurrent sandbox limit reached: %llu active, plan '%s' allows %u",
                   active, plan.name, max_conc);
        return;
    }
    if (plan.monthly_sandboxes && month >= plan.monthly_sandboxes) {
        plan_error(req, resp, 429, "monthly_limit_exceeded", "monthly_sandboxes",
                   (double)month, (double)plan.monthly_sandboxes, "sandboxes", plan.name,
                   "monthly sandbox limit reached: %llu created this month, plan '%s' allows "
                   "%u",
                   month, plan.name, plan.monthly_sandboxes);
        return;
    }

    char id[37], cpus_milli[16], mem_bytes[32], timeout_s[32];
    sbx_uuid4(id);
    snprintf(cpus_milli, sizeof(cpus_milli), "%u", cpus);
    snprintf(mem_bytes, sizeof(mem_bytes), "%llu", (unsigned long long)memory);
    snprintf(timeout_s, sizeof(timeout_s), "%lld", timeout);
    const char *params[] = { id,          req->who.org_id, template ? template : "default",
                             cpus_text,   memory_text,     cpus_milli,
                             mem_bytes,   timeout_s,       env_json,
                             metadata_json, req->who.key_id[0] ? req->who.key_id : NULL,
                             ctx->app->instance };
    r = db_query(ctx->db,
                 "INSERT INTO sandboxes (id, org_id, status, template, cpus, memory, cpus_milli, "
                 "  memory_bytes, timeout_seconds, env, metadata, runtime, created_by_key, "
                 "  runtime_ref, expires_at) "
                 "VALUES ($1, $2, 'creating', $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, "
                 "  'local', $11, $12, now() + make_interval(secs => $8::int))",
                 12, params, NULL);
    if (r >= 0)
        r = usage_record(ctx->db, req->who.org_id, id, "sandbox_created", 1);
    _cleanup_free_ char *ev_data = xasprintf(
        "{\"template\":\"%s\",\"cpus\":\"%s\",\"memory\":\"%s\",\"timeout_seconds\":%lld}",
        tpl ? tpl->name : "default", cpus_text, memory_text, timeout);
    if (r >= 0)
        r = events_emit(ctx->db, req->who.org_id, id, "sandbox.created", ev_data);
    if (r >= 0)
        r = db_commit(ctx->db);
    if (r >= 0)
        r = db_begin(ctx->db, req->who.org_id);
    if (r < 0)
        return db_failed(resp, r);
    resp->audit.resource = "sandbox";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", id);

    /* Start it. */
    char **env_arr = env_array(env);
    /* k8s: the template's image and scheduling; a create without a template gets the
     * `default` template's, as the warm pool it may claim from does */
    const struct sbx_template *ptpl = tpl ? tpl : template ? NULL : templates_find("default");
    struct sbx_placement placement = { 0 };
    if (ptpl)
        templates_placement(ptpl, &placement);
    struct sbx_sandbox_spec spec = {
        .id = id,
        .cpus_milli = cpus,
        .memory_bytes = memory,
        .pids_max = DEFAULT_PIDS_MAX,
        .network = tpl && tpl->allow_network && cfg->runtime.allow_network,
        .env = (const char *const *)env_arr,
        .org_id = req->who.org_id,
        .pool = warmpool_key(template, tpl), /* k8s: claim a warm pod of this shape */
        .placement = &placement,
    };
    char err[256] = "";
    sandbox_lock(id);
    int rr = sbx_rt_create(ctx->app->rt, &spec, err, sizeof(err));
    sandbox_unlock(id);
    sandbox_env_free(env_arr);
    if (rr < 0) {
        log_error("sandbox %s: create failed: %s", id, err);
        /* Kubernetes: the typed reason the pod watch saw (image_pull, oom, evicted, ...) */
        char why[32] = "";
        if (strcmp(ctx->app->rt->ops->name, "kubernetes") == 0)
            k8s_runtime_reason(ctx->app->rt, id, why, sizeof(why));
        const char *reason = why[0] ? why : "the sandbox could not be started";
        /* only from 'creating': the reconciler may have recorded the failure already */
        r = db_query(ctx->db,
                     "UPDATE sandboxes SET status = 'error', status_reason = $2, "
                     "  stopped_at = now() WHERE id = $1 AND status = 'creating'",
                     2, (const char *[]){ id, reason }, NULL);
        if (r > 0) {
            _cleanup_free_ char *data = events_data_reason(reason);
            r = events_emit(ctx->db, req->who.org_id, id, "sandbox.error", data);
        }
        if (r >= 0)
            db_commit(ctx->db);
        else
            db_rollback(ctx->db);
        if (why[0])
            http_error(resp, 500, "sandbox_start_failed",
                       "the sandbox could not be started (%s)", why);
        else
            http_error(resp, 500, "sandbox_start_failed", "the sandbox could not be started");
        return;
    }
    if (from_ckpt) {
        /* Write the checkpoint in before answering; no transaction idles meanwhile. */
        char why[400] = "";
        r = db_commit(ctx->db);
        rr = ckpt_restore_checkpoint(ctx->app, req->who.org_id, id, ck_key, ck_sum, why,
                                     sizeof(why));
        if (db_begin(ctx->db, req->who.org_id) < 0)
            return db_failed(resp, -EIO);
        if (rr < 0) {
            log_error("sandbox %s: from_checkpoint %s failed: %s", id, from_ckpt, why);
            sandbox_lock(id);
            ctx->app->rt->ops->stop(ctx->app->rt, id);
            sandbox_unlock(id);
            if (db_query(ctx->db,
                         "UPDATE sandboxes SET status = 'error', status_reason = $2, "
                         "  stopped_at = now() WHERE id = $1",
                         2, (const char *[]){ id, why }, NULL) >= 0)
                db_commit(ctx->db);
            else
                db_rollback(ctx->db);
            http_error(resp, rr == -EIO || rr == -ETIMEDOUT ? 503 : 500,
                       "checkpoint_restore_failed",
                       "sandbox %s could not be started from checkpoint %s: %s", id, from_ckpt,
                       why);
            return;
        }
        r = db_query(ctx->db,
                     "UPDATE sandboxes SET env = COALESCE($2::jsonb, '{}'::jsonb) || env, "
                     "  source_checkpoint_id = $3 WHERE id = $1",
                     3, (const char *[]){ id, ck_env, from_ckpt }, NULL);
        if (r < 0)
            return db_failed(resp, r);
    }
    r = db_query(ctx->db,
                 "UPDATE sandboxes SET status = 'running', started_at = now(), "
                 "  metered_until = now() WHERE id = $1 AND status = 'creating' "
                 "RETURNING " SANDBOX_COLUMNS,
                 1, (const char *[]){ id }, &row);
    if (r <= 0) {
        /* Ended while starting (deleted or reaped): report what it is now. */
        if (r == 0) {
            PQclear(TAKE_PTR(row)); /* the UPDATE's empty result */
            r = db_query(ctx->db, "SELECT " SANDBOX_COLUMNS " FROM sandboxes WHERE id = $1", 1,
                         (const char *[]){ id }, &row);
        }
        if (r <= 0)
            return db_failed(resp, r < 0 ? r : -EIO);
    } else if ((r = events_emit(ctx->db, req->who.org_id, id, "sandbox.ready", ev_data)) < 0) {
        return db_failed(resp, r);
    }
    emit_sandbox(resp, 201, row);
}

/* Loads one visible sandbox row or sets 404. */
static PGresult *load(struct handler_ctx *ctx, const char *id, const char *columns,
                      struct http_response *resp)
{
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such sandbox");
        return NULL;
    }
    _cleanup_free_ char *sql =
        xasprintf("SELECT %s FROM sandboxes WHERE id = $1 AND deleted_at IS NULL", columns);
    PGresult *res = NULL;
    int r = db_query(ctx->db, sql, 1, (const char *[]){ id }, &res);
    if (r < 0) {
        db_failed(resp, r);
        return NULL;
    }
    if (r == 0) {
        PQclear(res);
        http_error(resp, 404, "not_found", "no such sandbox");
        return NULL;
    }
    return res;
}

API_HANDLER(api_sandbox_get)
{
    _cleanup_pgres_ PGresult *res = load(ctx, req->params[0], SANDBOX_COLUMNS, resp);
    if (res)
        emit_sandbox(resp, 200, res);
}

API_HANDLER(api_sandbox_status)
{
    _cleanup_pgres_ PGresult *res =
        load(ctx, req->params[0],
             "id AS sandbox_id, status, status_reason, "
             SQL_TS("expires_at") " AS expires_at, " SQL_TS("started_at") " AS started_at",
             resp);
    if (!res)
        return;
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    pg_row_to_json(g, res, 0, "sssss");
    http_json(resp, 200, g);
}

static bool status_ok(const char *s, size_t n)
{
    static const char *const names[] = { "creating", "running", "terminating", "terminated",
                                         "error" };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strlen(names[i]) == n && strncmp(names[i], s, n) == 0)
            return true;
    return false;
}

API_HANDLER(api_sandboxes_list)
{
    const char *q;
    struct page_query pq;
    if (page_query_parse(req, &pq, resp) < 0)
        return;
    if ((q = http_query(req, "org_id")) && strcmp(q, req->who.org_id) != 0) {
        http_error(resp, 403, "forbidden", "org_id does not match the API key's organization");
        return;
    }
    /* status=running,creating */
    _cleanup_buf_ struct sbx_buf statuses = SBX_BUF_INIT;
    if ((q = http_query(req, "status"))) {
        if (!*q) {
            http_error(resp, 400, "invalid_query", "status must not be empty");
            return;
        }
        int r = sbx_buf_puts(&statuses, "{");
        for (const char *p = q; r == 0 && *p;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (!status_ok(p, n)) {
                http_error(resp, 400, "invalid_query",
                           "status must be a comma-separated list of creating, running, "
                           "terminating, terminated, error");
                return;
            }
            r = sbx_buf_printf(&statuses, "%s%.*s", statuses.len > 1 ? "," : "", (int)n, p);
            p += n + (comma ? 1 : 0);
        }
        if (r < 0 || sbx_buf_puts(&statuses, "}") < 0)
            return db_failed(resp, -EINVAL);
    }
    /* metadata.<key>=<value> filters → a jsonb containment object. */
    _cleanup_jgen_ yajl_gen mg = sbx_jgen_new();
    yajl_gen_map_open(mg);
    bool has_meta = false;
    for (size_t i = 0; i < req->n_query; i++) {
        const char *name = req->query[i].name;
        if (strncmp(name, "metadata.", 9) == 0 && name[9]) {
            if (!v_utf8(name, strlen(name)) || !v_utf8(req->query[i].value,
                                                       strlen(req->query[i].value))) {
                http_error(resp, 400, "invalid_query", "metadata filters must be UTF-8");
                return;
            }
            sbx_jgen_kstr(mg, name + 9, req->query[i].value);
            has_meta = true;
        }
    }
    yajl_gen_map_close(mg);
    _cleanup_free_ char *meta_json = has_meta ? sbx_jgen_take(mg, NULL) : NULL;
    const char *params[] = { statuses.len ? statuses.data : NULL, meta_json,
                             page_cursor_ts(&pq), page_cursor_id(&pq), pq.limit_plus_one };
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT " SANDBOX_COLUMNS " FROM sandboxes "
                     " WHERE deleted_at IS NULL "
                     "   AND ($1::text[] IS NULL OR status = ANY($1::text[])) "
                     "   AND ($2::jsonb IS NULL OR metadata @> $2::jsonb) "
                     "   AND ($3::text IS NULL OR (created_at, id) < "
                     "        (to_timestamp($3, 'YYYYMMDDHH24MISSUS') AT TIME ZONE 'UTC', "
                     "         $4::uuid)) "
                     " ORDER BY created_at DESC, id DESC LIMIT $5::int",
                     5, params, &res);
    if (r < 0)
        return db_failed(resp, r);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    page_emit(g, "sandboxes", res, SANDBOX_JSON_TYPES, &pq, 18, 1);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

static void end_sandbox(struct handler_ctx *ctx, struct http_request *req,
                        struct http_response *resp, bool remove)
{
    const char *id = req->params[0];
    resp->audit.resource = "sandbox";
    _cleanup_pgres_ PGresult *res = load(ctx, id, "id", resp);
    if (!res)
        return;
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", id);
    /* sandbox_terminate runs its own transactions: close the request's first. */
    int r = db_commit(ctx->db);
    if (r >= 0)
        r = sandbox_terminate(ctx->app, ctx->db, req->who.org_id, id,
                              remove ? "deleted" : "stopped", remove, remove);
    if (r == -ENOENT) {
        http_error(resp, 404, "not_found", "no such sandbox");
    } else if (r < 0 && r != -EIO) {
        log_error_errno(r, "sandbox %s: terminate failed", id);
        http_error(resp, 500, "internal_error", "the sandbox could not be stopped cleanly");
    } else if (r < 0) {
        db_failed(resp, r);
    } else {
        http_success(resp);
    }
    /* The dispatcher commits the audit record in a transaction of its own. */
    if (db_begin(ctx->db, req->who.org_id) < 0)
        log_error("sandbox %s: could not reopen the request transaction", id);
}

API_HANDLER(api_sandbox_stop)
{
    end_sandbox(ctx, req, resp, false);
}

API_HANDLER(api_sandbox_delete)
{
    end_sandbox(ctx, req, resp, true);
}
