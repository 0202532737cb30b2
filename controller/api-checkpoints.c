/*
 * api-checkpoints.c — content-addressed, incremental workspace checkpoints:
 *   POST   /api/v1/sandbox/:id/checkpoints           create (walk inside, hash, upload new content)
 *   POST   /api/v1/sandbox/:id/checkpoints/restore   write a checkpoint into a running sandbox
 *   GET    /api/v1/checkpoints                       list (sandbox_id, limit, cursor)
 *   GET    /api/v1/checkpoints/:id                   one
 *   DELETE /api/v1/checkpoints/:id                   delete; unreferenced content leaves the store
 *   POST   /api/v1/checkpoints/:id/clone             a new checkpoint sharing the content
 *   POST   /api/v1/checkpoints/compare               manifest diff {added, removed, modified}
 *   GET    /api/v1/checkpoints/:id/tree              lineage: ancestors and descendants
 * Long operations (create, restore, clone, delete) commit the request transaction first and
 * work in short transactions of their own, so no transaction idles while the sandbox or the
 * store is busy; the request transaction is reopened at the end for the result, the event and
 * the audit record. A checkpoint row is 'creating' (invisible to the API) until everything it
 * references is in the store. Worker threads. See docs/internals/CHECKPOINTS.md.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/checkpoint.h"
#include "controller/events.h"
#include "controller/paging.h"
#include "controller/pgjson.h"
#include "controller/plans.h"
#include "controller/sandbox.h"
#include "controller/validate.h"
#include "runtime/runtime.h"
#include "storage/blobstore.h"
#include "storage/db.h"

#define MAX_PATTERNS 100
#define MAX_METADATA_BYTES 16384
#define TREE_MAX_NODES 10000

#define CKPT_COLUMNS                                                                              \
    "id, sandbox_id, org_id, name, description, " SQL_TS("created_at") " AS created_at, size, " \
    "file_count, checksum, metadata, parent_id, generation, bytes_new, files_new, include_env, " \
    "'ready' AS status, to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') AS _cursor"
#define CKPT_TYPES "ssssssiisjsiiibs-"
#define CKPT_CURSOR_COL 16

static void db_failed(struct http_response *resp, int r)
{
    if (r == -EIO || r == -EAGAIN || r == -ETIMEDOUT) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "checkpoint query failed");
        http_error(resp, 500, "internal_error", "internal error");
    }
}

static bool have_store(struct handler_ctx *ctx, struct http_response *resp)
{
    if (ctx->app->blobs)
        return true;
    http_error(resp, 503, "storage_unavailable", "the object store is not configured");
    return false;
}

static void emit_row(struct http_response *resp, int status, const PGresult *res)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    pg_row_to_json(g, res, 0, CKPT_TYPES);
    http_json(resp, status, g);
}

static void emit_event(struct handler_ctx *ctx, const char *org, const char *sid,
                       const char *event, const char *ckpt_id, const char *extra)
{
    _cleanup_free_ char *data =
        xasprintf("{\"checkpoint_id\": \"%s\"%s%s}", ckpt_id, extra ? ", " : "", extra ? extra : "");
    int r = events_emit(ctx->db, org, sid && *sid ? sid : NULL, event, data);
    if (r < 0)
        log_warn("checkpoint %s: event %s not recorded (%s)", ckpt_id, event, strerror(-r));
}

/* A list of path patterns: strings naming /workspace paths (prefix match) or globs. */
static int v_patterns(yajl_val body, const char *key, char ***ret, size_t *ret_n,
                      struct http_response *resp)
{
    yajl_val v = sbx_json_get(body, key);
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_ARRAY(v) || v->u.array.len > MAX_PATTERNS) {
        http_error(resp, 422, "validation_error", "field '%s' must be a list of at most %d paths",
                   key, MAX_PATTERNS);
        return -EINVAL;
    }
    char **out = xcalloc(v->u.array.len + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val s = v->u.array.values[i];
        const char *str = YAJL_IS_STRING(s) ? s->u.string : NULL;
        char *norm = NULL;
        bool glob = str && strpbrk(str, "*?[");
        if (!str || !*str || strlen(str) > SBX_PATH_MAX ||
            (!glob && sbx_path_check(str, strlen(str), &norm) < 0)) {
            for (size_t k = 0; k < n; k++)
                free(out[k]);
            free(out);
            http_error(resp, 422, "validation_error",
                       "field '%s' must hold paths inside /workspace (or glob patterns)", key);
            return -EINVAL;
        }
        if (glob) {
            const char *p = str;
            if (strncmp(p, "/workspace/", 11) == 0)
                p += 11;
            out[n++] = xstrdup(p);
        } else {
            out[n++] = norm;
        }
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

static void patterns_free(char **p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    free(p);
}

/* path matches pattern: equal, below it, or a glob on the whole path or the last name. "" (the
 * workspace itself) matches everything. */
static bool pat_match(const char *pat, const char *path)
{
    size_t pl = strlen(pat);
    if (pl == 0)
        return true;
    if (strpbrk(pat, "*?[")) {
        if (fnmatch(pat, path, FNM_PATHNAME | FNM_PERIOD) == 0)
            return true;
        const char *base = strrchr(path, '/');
        if (!strchr(pat, '/') && fnmatch(pat, base ? base + 1 : path, FNM_PERIOD) == 0)
            return true;
        /* below a directory matched by the glob */
        for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
            _cleanup_free_ char *pre = xstrndup(path, (size_t)(s - path));
            if (fnmatch(pat, pre, FNM_PATHNAME | FNM_PERIOD) == 0)
                return true;
        }
        return false;
    }
    return strncmp(path, pat, pl) == 0 && (path[pl] == '\0' || path[pl] == '/');
}

/* include: the entry is under an included path, or is a parent directory of one. */
static bool included(const struct ckpt_entry *e, char **inc, size_t ninc, char **exc, size_t nexc)
{
    for (size_t i = 0; i < nexc; i++)
        if (pat_match(exc[i], e->path))
            return false;
    if (ninc == 0)
        return true;
    for (size_t i = 0; i < ninc; i++) {
        if (pat_match(inc[i], e->path))
            return true;
        size_t el = strlen(e->path);
        if (e->type == 'd' && !strpbrk(inc[i], "*?[") && strncmp(inc[i], e->path, el) == 0 &&
            inc[i][el] == '/')
            return true;
    }
    return false;
}

struct uniq {
    const char *sha;
    uint64_t size;
    size_t entry;       /* first entry with this content */
    bool upload;
    char blob_id[37];
};

static int uniq_cmp(const void *a, const void *b)
{
    return strcmp(((const struct uniq *)a)->sha, ((const struct uniq *)b)->sha);
}

/* Sets the create failure response for a runtime file error while hashing/uploading. */
static void read_failed(struct http_response *resp, int r, const char *path)
{
    if (r == -ENOENT)
        http_error(resp, 409, "sandbox_not_running", "the sandbox stopped during the checkpoint");
    else if (r == -EACCES || r == -EPERM)
        http_error(resp, 422, "workspace_unreadable", "'%s' is not readable by the sandbox user",
                   path);
    else
        http_error(resp, 409, "workspace_changed",
                   "the workspace changed while the checkpoint was taken ('%s'); retry", path);
}

/* Hashing one entry (parallel jobs; each touches only its own entry). */
struct hjob {
    struct sbx_runtime *rt;
    const char *sid;
    struct ckpt_manifest *m;
    uint64_t max;
    bool *gone;
};

static int hash_one(void *ctx, size_t i)
{
    struct hjob *h = ctx;
    struct ckpt_entry *e = &h->m->e[i];
    if (e->type != 'f')
        return 0;
    int r = ckpt_hash_file(h->rt, h->sid, e->path, h->max, &e->size, e->sha256);
    if (r == -ENOENT || r == -EINVAL || r == -ELOOP || r == -EXDEV || r == -EISDIR) {
        h->gone[i] = true;
        return 0;
    }
    return r;
}

/* Uploading one distinct content (parallel jobs). */
struct ujob {
    struct app *app;
    const char *org, *sid, *ckpt;
    const struct ckpt_manifest *m;
    const struct uniq *u;
    const size_t *idx;
    atomic_bool store_failed;
};

static int upload_one(void *ctx, size_t k)
{
    struct ujob *j = ctx;
    const struct uniq *q = &j->u[j->idx[k]];
    const struct ckpt_entry *e = &j->m->e[q->entry];
    int fd = -1;
    uint64_t size;
    int r = j->app->rt->ops->open_read(j->app->rt, j->sid, e->path, &fd, &size);
    if (r < 0)
        return r;
    char key[SBX_BLOB_KEY_MAX], err[256] = "";
    snprintf(key, sizeof(key), "orgs/%s/blobs/%s", j->org, e->sha256);
    r = j->app->blobs->ops->put(j->app->blobs, key, fd, e->size, e->sha256, err, sizeof(err));
    close(fd);
    if (r < 0 && r != -EBADMSG) {
        log_warn("checkpoint %s: upload of %s failed: %s", j->ckpt, key, err);
        atomic_store(&j->store_failed, true);
    }
    return r;
}

API_HANDLER(api_checkpoint_create)
{
    struct app *app = ctx->app;
    const struct sbx_config *cfg = &app->cfg;
    const char *sid = req->params[0];
    const char *org = req->who.org_id;
    resp->audit.resource = "checkpoint";
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, cfg->http.max_json_depth, &body) < 0)
        return;
    const char *name = NULL, *description = NULL;
    bool include_env = false;
    char **inc = NULL, **exc = NULL;
    size_t ninc = 0, nexc = 0;
    if (v_string(body, "name", true, 1, 200, &name, resp) < 0 ||
        v_string(body, "description", false, 0, 2000, &description, resp) < 0 ||
        v_bool(body, "include_env", &include_env, resp) < 0)
        return;
    if (!v_not_blank(name)) {
        http_error(resp, 422, "validation_error", "field 'name' must not be blank");
        return;
    }
    yajl_val metadata = sbx_json_get(body, "metadata");
    if (metadata && !YAJL_IS_NULL(metadata) && !YAJL_IS_OBJECT(metadata)) {
        http_error(resp, 422, "validation_error", "field 'metadata' must be an object");
        return;
    }
    _cleanup_free_ char *meta_json = NULL;
    {
        _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
        if (metadata && YAJL_IS_OBJECT(metadata))
            sbx_jgen_value(g, metadata);
        else {
            yajl_gen_map_open(g);
            yajl_gen_map_close(g);
        }
        meta_json = sbx_jgen_take(g, NULL);
    }
    if (strlen(meta_json) > MAX_METADATA_BYTES) {
        http_error(resp, 422, "validation_error", "field 'metadata' exceeds %d bytes",
                   MAX_METADATA_BYTES);
        return;
    }
    if (v_patterns(body, "include_paths", &inc, &ninc, resp) < 0)
        return;
    if (v_patterns(body, "exclude_paths", &exc, &nexc, resp) < 0) {
        patterns_free(inc, ninc);
        return;
    }
    struct ckpt_manifest m = { 0 };
    struct uniq *u = NULL;
    size_t nu = 0;
    _cleanup_buf_ struct sbx_buf ids = SBX_BUF_INIT;
    _cleanup_pgres_ PGresult *env_res = NULL, *up = NULL, *fin = NULL, *q = NULL;
    _cleanup_buf_ struct sbx_buf shas = SBX_BUF_INIT, sizes = SBX_BUF_INIT;
    _cleanup_buf_ struct sbx_buf uploaded = SBX_BUF_INIT;
    _cleanup_buf_ struct sbx_buf incs = SBX_BUF_INIT, excs = SBX_BUF_INIT;
    _cleanup_free_ char *mjson = NULL;
    char id[37] = "";
    bool pending = false, manifest_put = false;
    int r;

    if (sandbox_require_running(ctx, sid, NULL, resp) < 0 || !have_store(ctx, resp))
        goto out;
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", sid);

    /* Parent: the checkpoint this workspace descends from (if it still exists). */
    r = db_query(ctx->db,
                 "SELECT s.env, c.id, c.generation FROM sandboxes s "
                 "  LEFT JOIN checkpoints c ON c.id = s.source_checkpoint_id AND c.status = 'ready' "
                 " WHERE s.id = $1",
                 1, (const char *[]){ sid }, &env_res);
    if (r <= 0) {
        db_failed(resp, r < 0 ? r : -EIO);
        goto out;
    }
    const char *parent = PQgetisnull(env_res, 0, 1) ? NULL : PQgetvalue(env_res, 0, 1);
    char gen[24];
    snprintf(gen, sizeof(gen), "%lld",
             parent ? strtoll(PQgetvalue(env_res, 0, 2), NULL, 10) + 1 : 0LL);
    struct sbx_buf *lists[2] = { &incs, &excs };
    char **pl[2] = { inc, exc };
    size_t pn[2] = { ninc, nexc };
    for (int k = 0; k < 2; k++) {
        r = sbx_buf_puts(lists[k], "{");
        for (size_t i = 0; i < pn[k] && r == 0; i++) {
            r = sbx_buf_puts(lists[k], i ? "," : "");
            if (r == 0)
                r = sbx_buf_json_str(lists[k], pl[k][i], strlen(pl[k][i]));
        }
        if (r == 0)
            r = sbx_buf_puts(lists[k], "}");
        if (r < 0) {
            db_failed(resp, -EINVAL);
            goto out;
        }
    }
    sbx_uuid4(id);
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    r = db_query(ctx->db,
                 "INSERT INTO checkpoints (id, org_id, sandbox_id, parent_id, generation, name, "
                 "  description, status, include_paths, exclude_paths, include_env, env, "
                 "  metadata, created_by_key, store_ref) "
                 "VALUES ($1, $2, $3, $4, $5::int, $6, $7, 'creating', $8::text[], $9::text[], "
                 "  $10::boolean, CASE WHEN $10::boolean THEN $11::jsonb END, $12::jsonb, $13, $14)",
                 14,
                 (const char *[]){ id, org, sid, parent, gen, name, description, incs.data,
                                   excs.data, include_env ? "true" : "false",
                                   PQgetvalue(env_res, 0, 0), meta_json, req->who.key_id,
                                   app->instance },
                 NULL);
    if (r >= 0)
        r = db_commit(ctx->db);
    if (r < 0) {
        db_failed(resp, r);
        goto out;
    }
    pending = true;

    /* Walk inside the sandbox. */
    char err[256] = "";
    r = ckpt_walk(app->rt, sid, cfg->checkpoints.max_files, &m, err, sizeof(err));
    if (r == -E2BIG) {
        http_error(resp, 422, "too_many_files",
                   "the workspace has more than %u entries (checkpoints.max_files)",
                   cfg->checkpoints.max_files);
        goto out;
    } else if (r == -ENOENT) {
        http_error(resp, 409, "sandbox_not_running", "the sandbox is not running");
        goto out;
    } else if (r < 0) {
        http_error(resp, 422, "workspace_unreadable", "%s", err);
        goto out;
    }
    /* Filter, then hash every regular file through open_read. */
    size_t k = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < m.n; i++) {
        if (!included(&m.e[i], inc, ninc, exc, nexc)) {
            free(m.e[i].path);
            free(m.e[i].target);
            continue;
        }
        m.e[k++] = m.e[i];
    }
    m.n = k;
    for (size_t i = 0; i < m.n; i++)
        if (m.e[i].type == 'f')
            total += m.e[i].size;
    if (total > cfg->checkpoints.max_workspace_bytes)
        goto too_big;
    {
        struct hjob hj = { .rt = app->rt, .sid = sid, .m = &m,
                           .max = cfg->checkpoints.max_workspace_bytes,
                           .gone = xcalloc(m.n ? m.n : 1, sizeof(bool)) };
        size_t bad = 0;
        r = ckpt_parallel(m.n, hash_one, &hj, &bad);
        if (r < 0) {
            free(hj.gone);
            if (r == -EFBIG)
                goto too_big;
            read_failed(resp, r, m.e[bad].path);
            goto out;
        }
        total = 0;
        k = 0;
        for (size_t i = 0; i < m.n; i++) {
            if (hj.gone[i]) {
                /* vanished or replaced since the walk: not part of this checkpoint */
                free(m.e[i].path);
                free(m.e[i].target);
                continue;
            }
            if (m.e[i].type == 'f')
                total += m.e[i].size;
            m.e[k++] = m.e[i];
        }
        free(hj.gone);
        if (total > cfg->checkpoints.max_workspace_bytes)
            goto too_big;
    }
    m.n = k;

    /* Distinct content, sorted (the lock order of the blob rows). */
    u = xcalloc(m.n ? m.n : 1, sizeof(*u));
    size_t file_count = 0;
    for (size_t i = 0; i < m.n; i++)
        if (m.e[i].type == 'f') {
            u[nu++] = (struct uniq){ .sha = m.e[i].sha256, .size = m.e[i].size, .entry = i };
            file_count++;
        }
    qsort(u, nu, sizeof(*u), uniq_cmp);
    k = 0;
    for (size_t i = 0; i < nu; i++)
        if (k == 0 || strcmp(u[k - 1].sha, u[i].sha) != 0)
            u[k++] = u[i];
    nu = k;
    r = sbx_buf_puts(&shas, "{") | sbx_buf_puts(&sizes, "{");
    for (size_t i = 0; i < nu && r == 0; i++)
        r = sbx_buf_printf(&shas, "%s%s", i ? "," : "", u[i].sha) |
            sbx_buf_printf(&sizes, "%s%llu", i ? "," : "", (unsigned long long)u[i].size);
    r |= sbx_buf_puts(&shas, "}") | sbx_buf_puts(&sizes, "}");
    if (r != 0) {
        db_failed(resp, -EINVAL);
        goto out;
    }

    /* Pin the content (refcount + 1 under the row locks) and check the org's quota. */
    r = db_begin(ctx->db, org);
    if (r >= 0)
        r = db_query(ctx->db, "SELECT pg_advisory_xact_lock(hashtextextended($1, 43))", 1,
                     (const char *[]){ org }, NULL);
    if (r >= 0)
        r = db_query(ctx->db,
                     "SELECT (SELECT COALESCE(sum(size), 0) FROM blobs)::bigint, "
                     "       (SELECT COALESCE(sum(u.s), 0) FROM unnest($1::text[], $2::bigint[]) "
                     "           AS u(h, s) WHERE NOT EXISTS "
                     "           (SELECT 1 FROM blobs b WHERE b.sha256 = u.h))::bigint",
                     2, (const char *[]){ shas.data, sizes.data }, &q);
    if (r < 0) {
        db_rollback(ctx->db);
        db_failed(resp, r);
        goto out;
    }
    /* The plan's storage limit (plans.<p>.storage, logical bytes of checkpoints + artifacts). */
    if (plan_check_storage(ctx, req, total, resp) < 0) {
        db_rollback(ctx->db);
        goto out;
    }
    uint64_t used = strtoull(PQgetvalue(q, 0, 0), NULL, 10),
             adding = strtoull(PQgetvalue(q, 0, 1), NULL, 10);
    if (used + adding > cfg->checkpoints.org_quota_bytes) {
        db_rollback(ctx->db);
        http_error(resp, 429, "storage_quota_exceeded",
                   "the checkpoint needs %llu new bytes; the organization stores %llu of its "
                   "%llu-byte quota (checkpoints.org_quota_bytes)",
                   (unsigned long long)adding, (unsigned long long)used,
                   (unsigned long long)cfg->checkpoints.org_quota_bytes);
        goto out;
    }
    r = db_query(ctx->db,
                 "INSERT INTO blobs (org_id, sha256, size, storage_key, refcount) "
                 "SELECT $1::uuid, u.h, u.s, 'orgs/' || $1::text || '/blobs/' || u.h, 1 "
                 "  FROM unnest($2::text[], $3::bigint[]) AS u(h, s) ORDER BY u.h "
                 "ON CONFLICT (org_id, sha256) DO UPDATE "
                 "   SET refcount = blobs.refcount + 1, last_used_at = now() "
                 "RETURNING sha256, id, uploaded",
                 3, (const char *[]){ org, shas.data, sizes.data }, &up);
    if (r >= 0) {
        /* Rows come back in an unspecified order: match them by sha. */
        for (int i = 0; i < PQntuples(up); i++) {
            struct uniq key = { .sha = PQgetvalue(up, i, 0) };
            struct uniq *hit = bsearch(&key, u, nu, sizeof(*u), uniq_cmp);
            if (!hit)
                continue;
            snprintf(hit->blob_id, sizeof(hit->blob_id), "%s", PQgetvalue(up, i, 1));
            hit->upload = strcmp(PQgetvalue(up, i, 2), "t") != 0;
        }
        r = sbx_buf_puts(&ids, "{");
        for (size_t i = 0; i < nu && r == 0; i++)
            r = sbx_buf_printf(&ids, "%s%s", i ? "," : "", u[i].blob_id);
        if (r == 0)
            r = sbx_buf_puts(&ids, "}");
        if (r == 0)
            r = db_query(ctx->db,
                         "INSERT INTO checkpoint_blobs (org_id, checkpoint_id, blob_id) "
                         "SELECT $1, $2, unnest($3::uuid[])",
                         3, (const char *[]){ org, id, ids.data }, NULL);
    }
    if (r >= 0)
        r = db_commit(ctx->db);
    else
        db_rollback(ctx->db);
    if (r < 0) {
        db_failed(resp, r);
        goto out;
    }

    /* Upload what the store does not have yet (in parallel). */
    uint64_t bytes_new = 0;
    unsigned files_new = 0;
    size_t *todo = xcalloc(nu ? nu : 1, sizeof(size_t)), n_todo = 0;
    for (size_t i = 0; i < nu; i++)
        if (u[i].upload)
            todo[n_todo++] = i;
    struct ujob uj = { .app = app, .org = org, .sid = sid, .ckpt = id, .m = &m, .u = u,
                       .idx = todo };
    atomic_init(&uj.store_failed, false);
    size_t bad = 0;
    r = ckpt_parallel(n_todo, upload_one, &uj, &bad);
    if (r < 0) {
        const char *path = m.e[u[todo[bad]].entry].path;
        free(todo);
        if (r == -EBADMSG)
            read_failed(resp, -EBADMSG, path);
        else if (atomic_load(&uj.store_failed))
            ckpt_store_error(resp, r, "checkpoint");
        else
            read_failed(resp, r, path);
        goto out;
    }
    r = sbx_buf_puts(&uploaded, "{");
    for (size_t t = 0; t < n_todo && r == 0; t++) {
        bytes_new += u[todo[t]].size;
        files_new++;
        r = sbx_buf_printf(&uploaded, "%s%s", t ? "," : "", u[todo[t]].blob_id);
    }
    free(todo);
    if (r < 0 || sbx_buf_puts(&uploaded, "}") < 0) {
        db_failed(resp, -EINVAL);
        goto out;
    }

    /* The manifest. */
    size_t mlen = 0;
    mjson = ckpt_manifest_json(&m, &mlen);
    char msha[65], mkey[SBX_BLOB_KEY_MAX];
    sbx_sha256_hex(mjson, mlen, msha);
    snprintf(mkey, sizeof(mkey), "orgs/%s/manifests/%s", org, id);
    err[0] = '\0';
    manifest_put = true; /* may exist even if put reports a failure */
    r = ckpt_store_put_mem(app->blobs, mkey, mjson, mlen, err, sizeof(err));
    if (r < 0) {
        log_warn("checkpoint %s: manifest upload failed: %s", id, err);
        ckpt_store_error(resp, r, "checkpoint");
        goto out;
    }

    /* Ready: in the request transaction, with the event and the audit record. */
    char size_s[24], count_s[24], bn[24], fn[24];
    snprintf(size_s, sizeof(size_s), "%llu", (unsigned long long)total);
    snprintf(count_s, sizeof(count_s), "%zu", file_count);
    snprintf(bn, sizeof(bn), "%llu", (unsigned long long)bytes_new);
    snprintf(fn, sizeof(fn), "%u", files_new);
    r = db_begin(ctx->db, org);
    if (r >= 0)
        r = db_query(ctx->db, "UPDATE blobs SET uploaded = true WHERE id = ANY($1::uuid[])", 1,
                     (const char *[]){ uploaded.data }, NULL);
    if (r >= 0)
        r = db_query(ctx->db,
                     "UPDATE checkpoints SET status = 'ready', manifest_key = $2, "
                     "  manifest_sha256 = $3, checksum = $3, size = $4::bigint, "
                     "  file_count = $5::int, bytes_new = $6::bigint, files_new = $7::int "
                     " WHERE id = $1 AND status = 'creating' RETURNING " CKPT_COLUMNS,
                     7, (const char *[]){ id, mkey, msha, size_s, count_s, bn, fn }, &fin);
    if (r == 0)
        r = -EIO;
    if (r >= 0)
        r = db_query(ctx->db, "UPDATE sandboxes SET source_checkpoint_id = $2 WHERE id = $1", 2,
                     (const char *[]){ sid, id }, NULL);
    if (r < 0) {
        db_rollback(ctx->db);
        db_failed(resp, r);
        goto out;
    }
    pending = false;
    char extra[160];
    snprintf(extra, sizeof(extra), "\"size\": %s, \"file_count\": %s, \"bytes_new\": %s", size_s,
             count_s, bn);
    emit_event(ctx, org, sid, "checkpoint.created", id, extra);
    emit_row(resp, 201, fin);
    resp->audit.details_json = xasprintf("{\"size\": %s, \"file_count\": %s, \"bytes_new\": %s, "
                                         "\"files_new\": %s}", size_s, count_s, bn, fn);
    goto out;

too_big:
    http_error(resp, 413, "workspace_too_large",
               "the workspace holds more than %llu bytes (checkpoints.max_workspace_bytes)",
               (unsigned long long)cfg->checkpoints.max_workspace_bytes);
out:
    if (pending) {
        db_rollback(ctx->db);
        int rr = ckpt_release(app, ctx->db, org, id, manifest_put);
        if (rr < 0 && rr != -ENOENT)
            log_warn("checkpoint %s: clean-up after failure deferred to the reaper (%s)", id,
                     strerror(-rr));
    }
    /* Success needs the request transaction open (audit + commit); failures are audited by the
     * dispatcher in a transaction of its own. */
    if (resp->status < 400 && !db_in_transaction(ctx->db))
        db_begin(ctx->db, org);
    free(u);
    ckpt_manifest_free(&m);
    patterns_free(inc, ninc);
    patterns_free(exc, nexc);
}

/* Loads one ready checkpoint of the org or sets 404. */
static PGresult *load(struct handler_ctx *ctx, const char *id, const char *columns, bool lock,
                      struct http_response *resp)
{
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such checkpoint");
        return NULL;
    }
    _cleanup_free_ char *sql = xasprintf("SELECT %s FROM checkpoints WHERE id = $1 AND "
                                         "status = 'ready'%s",
                                         columns, lock ? " FOR SHARE" : "");
    PGresult *res = NULL;
    int r = db_query(ctx->db, sql, 1, (const char *[]){ id }, &res);
    if (r < 0) {
        db_failed(resp, r);
        return NULL;
    }
    if (r == 0) {
        PQclear(res);
        http_error(resp, 404, "not_found", "no such checkpoint");
        return NULL;
    }
    return res;
}

API_HANDLER(api_checkpoint_get)
{
    _cleanup_pgres_ PGresult *res = load(ctx, req->params[0], CKPT_COLUMNS, false, resp);
    if (res)
        emit_row(resp, 200, res);
}

API_HANDLER(api_checkpoints_list)
{
    struct page_query pq;
    if (page_query_parse(req, &pq, resp) < 0)
        return;
    const char *sid = http_query(req, "sandbox_id");
    if (sid && !sbx_uuid_valid(sid)) {
        http_error(resp, 400, "invalid_query", "sandbox_id must be a sandbox id");
        return;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT " CKPT_COLUMNS " FROM checkpoints WHERE status = 'ready' "
                     "   AND ($1::uuid IS NULL OR sandbox_id = $1::uuid) "
                     "   AND ($2::text IS NULL OR (created_at, id) < "
                     "        (to_timestamp($2, 'YYYYMMDDHH24MISSUS') AT TIME ZONE 'UTC', "
                     "         $3::uuid)) "
                     " ORDER BY created_at DESC, id DESC LIMIT $4::int",
                     4,
                     (const char *[]){ sid, page_cursor_ts(&pq), page_cursor_id(&pq),
                                       pq.limit_plus_one },
                     &res);
    if (r < 0)
        return db_failed(resp, r);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    page_emit(g, "checkpoints", res, CKPT_TYPES, &pq, CKPT_CURSOR_COL, 0);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_checkpoint_delete)
{
    const char *id = req->params[0], *org = req->who.org_id;
    resp->audit.resource = "checkpoint";
    if (!have_store(ctx, resp))
        return;
    _cleanup_pgres_ PGresult *res = load(ctx, id, "id, sandbox_id", false, resp);
    if (!res)
        return;
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    _cleanup_free_ char *sid = xstrdup(PQgetvalue(res, 0, 1));
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", sid);
    int r = db_commit(ctx->db);
    if (r >= 0)
        r = ckpt_release(ctx->app, ctx->db, org, id, true);
    if (r == -ENOENT) {
        http_error(resp, 404, "not_found", "no such checkpoint");
        return;
    }
    if (r == -EBUSY) {
        http_error(resp, 409, "checkpoint_in_use",
                   "checkpoint %s is the source of a template; delete the template first", id);
        return;
    }
    if (r == -EIO && ctx->app->blobs && db_ping(ctx->db))
        return ckpt_store_error(resp, r, "checkpoint delete");
    if (r < 0 && (r == -EIO || r == -EAGAIN || r == -ETIMEDOUT))
        return db_failed(resp, r);
    if (r < 0)
        return ckpt_store_error(resp, r, "checkpoint delete");
    if (db_begin(ctx->db, org) < 0)
        return db_failed(resp, -EIO);
    emit_event(ctx, org, sid, "checkpoint.deleted", id, NULL);
    http_success(resp);
}

static void gen_restore_result(yajl_gen g, const struct ckpt_restore_result *rr)
{
    sbx_jgen_kint(g, "restored", (long long)rr->files + rr->symlinks);
    sbx_jgen_kint(g, "files", rr->files);
    sbx_jgen_kint(g, "symlinks", rr->symlinks);
    sbx_jgen_kint(g, "directories", rr->dirs);
    sbx_jgen_kint(g, "bytes", (long long)rr->bytes);
    sbx_jgen_key(g, "skipped");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < rr->n_skipped; i++)
        sbx_jgen_str(g, rr->skipped[i]);
    yajl_gen_array_close(g);
    sbx_jgen_kint(g, "skipped_count", (long long)rr->total_skipped);
    sbx_jgen_key(g, "unsafe_symlinks");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < rr->n_unsafe; i++)
        sbx_jgen_str(g, rr->unsafe[i]);
    yajl_gen_array_close(g);
}

API_HANDLER(api_checkpoint_restore)
{
    struct app *app = ctx->app;
    const char *sid = req->params[0], *org = req->who.org_id;
    resp->audit.resource = "checkpoint";
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *ckpt = NULL;
    bool restore_files = true, restore_env = false, overwrite = false;
    if (v_string(body, "checkpoint_id", true, 1, 64, &ckpt, resp) < 0 ||
        v_bool(body, "restore_files", &restore_files, resp) < 0 ||
        v_bool(body, "restore_env", &restore_env, resp) < 0 ||
        v_bool(body, "overwrite", &overwrite, resp) < 0)
        return;
    if (sandbox_require_running(ctx, sid, NULL, resp) < 0 || !have_store(ctx, resp))
        return;
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", sid);
    _cleanup_free_ char *mkey = NULL, *checksum = NULL, *env = NULL;
    if (ckpt_lookup(ctx->db, ckpt, &mkey, &checksum, &env, resp) < 0)
        return;
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", ckpt);
    int r = db_commit(ctx->db);
    if (r < 0)
        return db_failed(resp, r);
    struct ckpt_restore_result rr = { 0 };
    if (restore_files) {
        struct ckpt_manifest m = { 0 };
        r = ckpt_manifest_load(app->blobs, mkey, checksum, &m);
        if (r < 0)
            return ckpt_store_error(resp, r, "restore");
        r = ckpt_restore_into(app, org, sid, &m, overwrite, &rr, resp);
        ckpt_manifest_free(&m);
        if (r < 0)
            return;
    }
    bool env_restored = false;
    r = db_begin(ctx->db, org);
    if (r >= 0 && restore_env && env) {
        r = db_query(ctx->db, "UPDATE sandboxes SET env = env || $2::jsonb WHERE id = $1", 2,
                     (const char *[]){ sid, env }, NULL);
        env_restored = r > 0;
    }
    if (r >= 0)
        r = db_query(ctx->db, "UPDATE sandboxes SET source_checkpoint_id = $2 WHERE id = $1", 2,
                     (const char *[]){ sid, ckpt }, NULL);
    if (r < 0) {
        ckpt_restore_result_free(&rr);
        return db_failed(resp, r);
    }
    char extra[96];
    snprintf(extra, sizeof(extra), "\"files\": %u, \"skipped\": %zu", rr.files, rr.total_skipped);
    emit_event(ctx, org, sid, "checkpoint.restored", ckpt, extra);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kbool(g, "success", true);
    sbx_jgen_kstr(g, "checkpoint_id", ckpt);
    sbx_jgen_kstr(g, "sandbox_id", sid);
    gen_restore_result(g, &rr);
    sbx_jgen_kbool(g, "env_restored", env_restored);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
    resp->audit.details_json = xasprintf("{\"checkpoint_id\": \"%s\", \"files\": %u, "
                                         "\"skipped\": %zu}", ckpt, rr.files, rr.total_skipped);
    ckpt_restore_result_free(&rr);
}

API_HANDLER(api_checkpoint_clone)
{
    struct app *app = ctx->app;
    const char *src = req->params[0], *org = req->who.org_id;
    resp->audit.resource = "checkpoint";
    _cleanup_json_ yajl_val body = NULL;
    const char *name = NULL, *description = NULL;
    if (req->body.len) {
        if (http_parse_json_body(req, resp, app->cfg.http.max_json_depth, &body) < 0)
            return;
        if (v_string(body, "name", false, 1, 200, &name, resp) < 0 ||
            v_string(body, "description", false, 0, 2000, &description, resp) < 0)
            return;
        if (name && !v_not_blank(name)) {
            http_error(resp, 422, "validation_error", "field 'name' must not be blank");
            return;
        }
    }
    if (!have_store(ctx, resp))
        return;
    _cleanup_pgres_ PGresult *s = load(ctx, src, "manifest_key, checksum, name", false, resp);
    if (!s)
        return;
    _cleanup_free_ char *mkey = xstrdup(PQgetvalue(s, 0, 0));
    _cleanup_free_ char *def_name = NULL;
    if (!name) {
        def_name = xasprintf("%.180s (clone)", PQgetvalue(s, 0, 2));
        name = def_name;
    }
    int r = db_commit(ctx->db);
    if (r < 0)
        return db_failed(resp, r);
    /* Copy the manifest (each checkpoint owns its manifest object). */
    char id[37], nkey[SBX_BLOB_KEY_MAX], err[256] = "";
    sbx_uuid4(id);
    snprintf(nkey, sizeof(nkey), "orgs/%s/manifests/%s", org, id);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    r = ckpt_store_get_mem(app->blobs, mkey, 512u << 20, &data, &len, err, sizeof(err));
    if (r >= 0)
        r = ckpt_store_put_mem(app->blobs, nkey, data, len, err, sizeof(err));
    if (r < 0) {
        log_warn("checkpoint clone %s: %s", src, err);
        return ckpt_store_error(resp, r, "clone");
    }
    _cleanup_pgres_ PGresult *row = NULL;
    r = db_begin(ctx->db, org);
    if (r >= 0)
        r = db_query(ctx->db,
                     "INSERT INTO checkpoints (id, org_id, sandbox_id, parent_id, generation, name, "
                     "  description, status, manifest_key, manifest_sha256, size, file_count, "
                     "  checksum, include_paths, exclude_paths, include_env, env, metadata, "
                     "  created_by_key, store_ref) "
                     "SELECT $1, org_id, sandbox_id, id, generation + 1, $3, "
                     "  COALESCE($4, description), 'ready', $5, manifest_sha256, size, file_count, "
                     "  checksum, include_paths, exclude_paths, include_env, env, metadata, $6, $7 "
                     "  FROM checkpoints WHERE id = $2 AND status = 'ready' FOR SHARE "
                     "RETURNING id",
                     7, (const char *[]){ id, src, name, description, nkey, req->who.key_id,
                                          app->instance },
                     NULL);
    if (r == 0) {
        db_rollback(ctx->db);
        app->blobs->ops->del(app->blobs, nkey, err, sizeof(err));
        http_error(resp, 404, "not_found", "no such checkpoint");
        return;
    }
    if (r > 0)
        r = db_query(ctx->db,
                     "INSERT INTO checkpoint_blobs (org_id, checkpoint_id, blob_id) "
                     "SELECT org_id, $1, blob_id FROM checkpoint_blobs WHERE checkpoint_id = $2",
                     2, (const char *[]){ id, src }, NULL);
    if (r >= 0)
        r = db_query(ctx->db,
                     "UPDATE blobs b SET refcount = b.refcount + 1, last_used_at = now() "
                     "  FROM (SELECT bl.id FROM blobs bl "
                     "          JOIN checkpoint_blobs cb ON cb.blob_id = bl.id "
                     "         WHERE cb.checkpoint_id = $1 "
                     "         ORDER BY bl.sha256 FOR UPDATE OF bl) l "
                     " WHERE b.id = l.id",
                     1, (const char *[]){ id }, NULL);
    if (r >= 0)
        r = db_query(ctx->db, "SELECT " CKPT_COLUMNS " FROM checkpoints WHERE id = $1", 1,
                     (const char *[]){ id }, &row);
    if (r <= 0) {
        db_rollback(ctx->db);
        app->blobs->ops->del(app->blobs, nkey, err, sizeof(err));
        db_failed(resp, r < 0 ? r : -EIO);
        return;
    }
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    const char *sid = PQgetisnull(row, 0, 1) ? NULL : PQgetvalue(row, 0, 1);
    if (sid)
        snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", sid);
    char extra[80];
    snprintf(extra, sizeof(extra), "\"source_id\": \"%s\"", src);
    emit_event(ctx, org, sid, "checkpoint.cloned", id, extra);
    emit_row(resp, 201, row);
    resp->audit.details_json = xasprintf("{\"source_id\": \"%s\"}", src);
}

API_HANDLER(api_checkpoints_compare)
{
    struct app *app = ctx->app;
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *a = NULL, *b = NULL;
    if (v_string(body, "checkpoint_a", true, 1, 64, &a, resp) < 0 ||
        v_string(body, "checkpoint_b", true, 1, 64, &b, resp) < 0 || !have_store(ctx, resp))
        return;
    _cleanup_free_ char *ka = NULL, *ca = NULL, *kb = NULL, *cb = NULL;
    if (ckpt_lookup(ctx->db, a, &ka, &ca, NULL, resp) < 0 ||
        ckpt_lookup(ctx->db, b, &kb, &cb, NULL, resp) < 0)
        return;
    struct ckpt_manifest ma = { 0 }, mb = { 0 };
    int r = ckpt_manifest_load(app->blobs, ka, ca, &ma);
    if (r >= 0)
        r = ckpt_manifest_load(app->blobs, kb, cb, &mb);
    if (r < 0) {
        ckpt_manifest_free(&ma);
        return ckpt_store_error(resp, r, "compare");
    }
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "checkpoint_a", a);
    sbx_jgen_kstr(g, "checkpoint_b", b);
    const char *const tname[] = { ['f'] = "file", ['d'] = "dir", ['l'] = "symlink" };
    size_t n_add = 0, n_rem = 0, n_mod = 0, n_same = 0;
    for (int pass = 0; pass < 3; pass++) {
        sbx_jgen_key(g, pass == 0 ? "added" : pass == 1 ? "removed" : "modified");
        yajl_gen_array_open(g);
        size_t i = 0, j = 0;
        while (i < ma.n || j < mb.n) {
            int c = i >= ma.n ? 1 : j >= mb.n ? -1 : strcmp(ma.e[i].path, mb.e[j].path);
            if (c < 0) { /* only in a: removed */
                if (pass == 1) {
                    yajl_gen_map_open(g);
                    sbx_jgen_kstr(g, "path", ma.e[i].path);
                    sbx_jgen_kstr(g, "type", tname[(int)ma.e[i].type]);
                    sbx_jgen_kint(g, "size", (long long)ma.e[i].size);
                    yajl_gen_map_close(g);
                    n_rem++;
                }
                i++;
            } else if (c > 0) { /* only in b: added */
                if (pass == 0) {
                    yajl_gen_map_open(g);
                    sbx_jgen_kstr(g, "path", mb.e[j].path);
                    sbx_jgen_kstr(g, "type", tname[(int)mb.e[j].type]);
                    sbx_jgen_kint(g, "size", (long long)mb.e[j].size);
                    yajl_gen_map_close(g);
                    n_add++;
                }
                j++;
            } else {
                const struct ckpt_entry *x = &ma.e[i], *y = &mb.e[j];
                bool diff = x->type != y->type || x->mode != y->mode ||
                            (x->type == 'f' && strcmp(x->sha256, y->sha256) != 0) ||
                            (x->type == 'l' && strcmp(x->target, y->target) != 0);
                if (pass == 2 && diff) {
                    yajl_gen_map_open(g);
                    sbx_jgen_kstr(g, "path", x->path);
                    sbx_jgen_kstr(g, "type", tname[(int)y->type]);
                    sbx_jgen_kint(g, "size_a", (long long)x->size);
                    sbx_jgen_kint(g, "size_b", (long long)y->size);
                    sbx_jgen_kbool(g, "content_changed",
                                   x->type != y->type || (x->type == 'f' &&
                                                          strcmp(x->sha256, y->sha256) != 0) ||
                                       (x->type == 'l' && strcmp(x->target, y->target) != 0));
                    sbx_jgen_kbool(g, "mode_changed", x->mode != y->mode);
                    yajl_gen_map_close(g);
                    n_mod++;
                } else if (pass == 2) {
                    n_same++;
                }
                i++;
                j++;
            }
        }
        yajl_gen_array_close(g);
    }
    sbx_jgen_key(g, "summary");
    yajl_gen_map_open(g);
    sbx_jgen_kint(g, "added", (long long)n_add);
    sbx_jgen_kint(g, "removed", (long long)n_rem);
    sbx_jgen_kint(g, "modified", (long long)n_mod);
    sbx_jgen_kint(g, "unchanged", (long long)n_same);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    ckpt_manifest_free(&ma);
    ckpt_manifest_free(&mb);
    http_json(resp, 200, g);
}

/* ---- lineage ------------------------------------------------------------------------------ */

struct tnode {
    const char *id, *parent;
    int row;
};

static void tree_emit(yajl_gen g, const PGresult *res, struct tnode *nodes, int n, int at,
                      unsigned depth)
{
    yajl_gen_map_open(g);
    pg_row_members(g, res, nodes[at].row, "sssssis");
    sbx_jgen_key(g, "children");
    yajl_gen_array_open(g);
    if (depth < 4000)
        for (int i = 0; i < n; i++)
            if (nodes[i].parent && strcmp(nodes[i].parent, nodes[at].id) == 0)
                tree_emit(g, res, nodes, n, i, depth + 1);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
}

API_HANDLER(api_checkpoint_tree)
{
    const char *id = req->params[0];
    _cleanup_pgres_ PGresult *self = load(ctx, id, "id", false, resp);
    if (!self)
        return;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", TREE_MAX_NODES);
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "WITH RECURSIVE anc AS ( "
                     "    SELECT id, parent_id, 0 AS depth FROM checkpoints WHERE id = $1 "
                     "  UNION ALL "
                     "    SELECT c.id, c.parent_id, anc.depth + 1 FROM checkpoints c "
                     "      JOIN anc ON c.id = anc.parent_id WHERE anc.depth < 1000), "
                     "desc_ AS ( "
                     "    SELECT id FROM checkpoints WHERE id = $1 "
                     "  UNION "
                     "    SELECT c.id FROM checkpoints c JOIN desc_ ON c.parent_id = desc_.id), "
                     "ids AS (SELECT id, depth FROM anc UNION "
                     "        SELECT id, NULL::int FROM desc_) "
                     "SELECT c.id, c.name, c.sandbox_id, c.parent_id, " SQL_TS("c.created_at")
                     "       AS created_at, c.generation, c.status, max(ids.depth) AS depth "
                     "  FROM checkpoints c JOIN ids ON ids.id = c.id "
                     " WHERE c.status = 'ready' "
                     " GROUP BY c.id ORDER BY max(ids.depth) DESC NULLS LAST, c.created_at "
                     " LIMIT $2::int",
                     2, (const char *[]){ id, lim }, &res);
    if (r < 0)
        return db_failed(resp, r);
    int n = PQntuples(res);
    struct tnode *nodes = xcalloc(n ? n : 1, sizeof(*nodes));
    int root = -1;
    for (int i = 0; i < n; i++) {
        nodes[i] = (struct tnode){ .id = PQgetvalue(res, i, 0),
                                   .parent = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3),
                                   .row = i };
    }
    /* The root: the deepest ancestor (rows come deepest first); its parent is outside the set. */
    for (int i = 0; i < n && root < 0; i++)
        if (!PQgetisnull(res, i, 7))
            root = i;
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "checkpoint_id", id);
    sbx_jgen_key(g, "ancestors");
    yajl_gen_array_open(g);
    for (int i = 0; i < n; i++)
        if (!PQgetisnull(res, i, 7) && strcmp(PQgetvalue(res, i, 7), "0") != 0)
            sbx_jgen_str(g, nodes[i].id);
    yajl_gen_array_close(g);
    int n_desc = 0;
    for (int i = 0; i < n; i++)
        if (PQgetisnull(res, i, 7))
            n_desc++;
    sbx_jgen_kint(g, "descendant_count", n_desc);
    sbx_jgen_key(g, "tree");
    if (root >= 0) {
        /* The root's own parent (deleted, or beyond the limit) is not part of the tree. */
        nodes[root].parent = NULL;
        tree_emit(g, res, nodes, n, root, 0);
    } else {
        yajl_gen_null(g);
    }
    yajl_gen_map_close(g);
    free(nodes);
    http_json(resp, 200, g);
}
