/*
 * api-templates.c — GET /api/v1/templates → {templates: [...]}, GET /api/v1/templates/:name,
 * and the organization's private templates promoted from checkpoints:
 * POST /api/v1/checkpoints/:id/promote {template_name, description?} and
 * DELETE /api/v1/templates/:name. The registry is controller/templates.c (built-in or
 * templates.file); org templates are rows of `templates` with checkpoint_id set (RLS-scoped).
 * Worker threads.
 */
#include <errno.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/pgjson.h"
#include "controller/templates.h"
#include "controller/validate.h"
#include "storage/db.h"

#define ORG_TPL_COLUMNS                                                                           \
    "name, description, checkpoint_id, " SQL_TS("created_at") " AS created_at"

static void org_template_json(yajl_gen g, const PGresult *res, int row);
static void tpl_db_failed(struct http_response *resp, int r);

API_HANDLER(api_templates_list)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "templates");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < templates_count(); i++)
        templates_json(g, templates_at(i));
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT " ORG_TPL_COLUMNS " FROM templates WHERE checkpoint_id IS NOT NULL "
                     "ORDER BY name",
                     0, NULL, &res);
    if (r < 0)
        return tpl_db_failed(resp, r);
    for (int i = 0; i < r; i++)
        org_template_json(g, res, i);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_templates_get)
{
    const struct sbx_template *t = templates_find(req->params[0]);
    if (!t && templates_name_valid(req->params[0])) {
        _cleanup_pgres_ PGresult *res = NULL;
        int r = db_query(ctx->db,
                         "SELECT " ORG_TPL_COLUMNS " FROM templates WHERE name = $1 "
                         "  AND checkpoint_id IS NOT NULL",
                         1, (const char *[]){ req->params[0] }, &res);
        if (r < 0)
            return tpl_db_failed(resp, r);
        if (r > 0) {
            _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
            org_template_json(g, res, 0);
            http_json(resp, 200, g);
            return;
        }
    }
    if (!t) {
        http_error(resp, 404, "not_found", "no such template (valid: %s)", templates_names());
        return;
    }
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    templates_json(g, t);
    http_json(resp, 200, g);
}

/* ---- org-private templates promoted from checkpoints (table templates, checkpoint_id) ---- */


/* An org template as the Template object: the built-in shape plus checkpoint_id and
 * source "checkpoint"; defaults (cpus, memory, timeout, env) are the configured ones. */
static void org_template_json(yajl_gen g, const PGresult *res, int row)
{
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "name", PQgetvalue(res, row, 0));
    sbx_jgen_kstr(g, "description",
                  PQgetisnull(res, row, 1) ? NULL : PQgetvalue(res, row, 1));
    sbx_jgen_knull(g, "image");
    sbx_jgen_kstr(g, "runtime_notes", "starts with the workspace of checkpoint_id");
    sbx_jgen_knull(g, "requires");
    sbx_jgen_knull(g, "cpus");
    sbx_jgen_knull(g, "memory");
    sbx_jgen_knull(g, "timeout_seconds");
    sbx_jgen_key(g, "env");
    yajl_gen_map_open(g);
    yajl_gen_map_close(g);
    sbx_jgen_kbool(g, "allow_network", false);
    sbx_jgen_kint(g, "warm_pool_size", 0);
    sbx_jgen_kbool(g, "available", true);
    sbx_jgen_knull(g, "unavailable_reason");
    sbx_jgen_kstr(g, "source", "checkpoint");
    sbx_jgen_kbool(g, "org_private", true);
    sbx_jgen_kstr(g, "checkpoint_id", PQgetvalue(res, row, 2));
    sbx_jgen_kstr(g, "created_at", PQgetvalue(res, row, 3));
    yajl_gen_map_close(g);
}

static void tpl_db_failed(struct http_response *resp, int r)
{
    if (r == -EIO || r == -EAGAIN || r == -ETIMEDOUT) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "template query failed");
        http_error(resp, 500, "internal_error", "internal error");
    }
}

bool templates_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > TEMPLATE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_' && c != '.')))
            return false;
    }
    return true;
}

int templates_org_checkpoint(struct db *db, const char *name, char ret_ckpt_id[37])
{
    if (!templates_name_valid(name))
        return -ENOENT;
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(db,
                     "SELECT checkpoint_id FROM templates WHERE name = $1 "
                     "  AND checkpoint_id IS NOT NULL",
                     1, (const char *[]){ name }, &res);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    snprintf(ret_ckpt_id, 37, "%s", PQgetvalue(res, 0, 0));
    return 0;
}

API_HANDLER(api_template_promote)
{
    const char *ckpt = req->params[0];
    resp->audit.resource = "template";
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, ctx->app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *name = NULL, *description = NULL;
    if (v_string(body, "template_name", true, 1, TEMPLATE_NAME_MAX, &name, resp) < 0 ||
        v_string(body, "description", false, 0, 2000, &description, resp) < 0)
        return;
    if (!templates_name_valid(name)) {
        http_error(resp, 422, "validation_error",
                   "field 'template_name' must be 1-%d characters of a-z, 0-9, '-', '_', '.' "
                   "starting with a letter or digit",
                   TEMPLATE_NAME_MAX);
        return;
    }
    if (templates_find(name)) {
        http_error(resp, 409, "template_exists", "'%s' is the name of a built-in template",
                   name);
        return;
    }
    /* The checkpoint must be one of the org's ready checkpoints (RLS scopes the query);
     * FOR SHARE serializes against a concurrent delete (ckpt_release takes FOR UPDATE). */
    _cleanup_pgres_ PGresult *ck = NULL;
    int r = sbx_uuid_valid(ckpt)
                ? db_query(ctx->db,
                           "SELECT id, sandbox_id FROM checkpoints WHERE id = $1 "
                           "  AND status = 'ready' FOR SHARE",
                           1, (const char *[]){ ckpt }, &ck)
                : 0;
    if (r < 0)
        return tpl_db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such checkpoint");
        return;
    }
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", name);
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s",
             PQgetvalue(ck, 0, 1));
    _cleanup_pgres_ PGresult *row = NULL;
    r = db_query(ctx->db,
                 "INSERT INTO templates (org_id, name, description, checkpoint_id) "
                 "VALUES ($1, $2, $3, $4) RETURNING " ORG_TPL_COLUMNS,
                 4, (const char *[]){ req->who.org_id, name, description, ckpt }, &row);
    if (r == -EEXIST) {
        http_error(resp, 409, "template_exists", "a template named '%s' already exists", name);
        return;
    }
    if (r <= 0)
        return tpl_db_failed(resp, r < 0 ? r : -EIO);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    org_template_json(g, row, 0);
    http_json(resp, 201, g);
}

API_HANDLER(api_template_delete)
{
    const char *name = req->params[0];
    resp->audit.resource = "template";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%.63s", name);
    if (templates_find(name)) {
        http_error(resp, 409, "template_builtin", "built-in templates cannot be deleted");
        return;
    }
    int r = templates_name_valid(name)
                ? db_query(ctx->db,
                           "DELETE FROM templates WHERE name = $1 AND checkpoint_id IS NOT NULL "
                           "RETURNING id",
                           1, (const char *[]){ name }, NULL)
                : 0;
    if (r < 0)
        return tpl_db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such template");
        return;
    }
    http_success(resp);
}
