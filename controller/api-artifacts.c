/*
 * api-artifacts.c — files a sandbox produced, kept in the object store:
 *   POST   /api/v1/sandbox/:id/artifacts/upload    stream a sandbox file into the store
 *   POST   /api/v1/sandbox/:id/artifacts/download  write an artifact into a sandbox
 *   GET    /api/v1/artifacts                       list (sandbox_id, limit, cursor)
 *   GET    /api/v1/artifacts/:id                   one
 *   GET    /api/v1/artifacts/:id/url?expires_in=   presigned GET URL
 *   DELETE /api/v1/artifacts/:id
 *   GET    /api/v1/blobs/:token                    (public) the fs backend's signed download
 * The object key is orgs/<org>/artifacts/<artifact id> — never derived from the sandbox path.
 * Upload: open_read gives a regular-file fd from inside the sandbox; it is hashed in a first
 * pass, rewound and handed to the store's put with the digest (the store verifies it), so the
 * file is never held in memory. The row is 'uploading' (invisible) until the object is stored;
 * on failure it is removed. Worker threads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

#define MAX_METADATA_BYTES 16384
#define MAX_EXPIRES_IN (365LL * 24 * 3600)
#define URL_DEFAULT_EXPIRES 3600
#define URL_MAX_EXPIRES (7 * 24 * 3600)
#define BLOB_ROUTE_MAX_BYTES (UINT64_C(2) << 30)

#define ART_COLUMNS                                                                               \
    "id, sandbox_id, org_id, path, remote_path, size, checksum, content_type, "                  \
    SQL_TS("created_at") " AS created_at, " SQL_TS("expires_at") " AS expires_at, metadata, "    \
    "status, to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') AS _cursor"
#define ART_TYPES "sssssissssjs-"
#define ART_CURSOR_COL 12

static void db_failed(struct http_response *resp, int r)
{
    if (r == -EIO || r == -EAGAIN || r == -ETIMEDOUT) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
    } else {
        log_error_errno(r, "artifact query failed");
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
    pg_row_to_json(g, res, 0, ART_TYPES);
    http_json(resp, status, g);
}

static bool content_type_ok(const char *s)
{
    if (!*s || strlen(s) > 255 || !strchr(s, '/'))
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return false;
    return true;
}

static void event(struct handler_ctx *ctx, const char *org, const char *sid, const char *name,
                  const char *id, const char *extra)
{
    _cleanup_free_ char *data =
        xasprintf("{\"artifact_id\": \"%s\"%s%s}", id, extra ? ", " : "", extra ? extra : "");
    int r = events_emit(ctx->db, org, sid && *sid ? sid : NULL, name, data);
    if (r < 0)
        log_warn("artifact %s: event %s not recorded (%s)", id, name, strerror(-r));
}

/* Removes the row of a failed upload (own transaction) and, best effort, the object. */
static void upload_cleanup(struct handler_ctx *ctx, const char *org, const char *id,
                           const char *key)
{
    db_rollback(ctx->db);
    char err[256] = "";
    if (ctx->app->blobs->ops->del(ctx->app->blobs, key, err, sizeof(err)) < 0)
        log_warn("artifact %s: removing a partial object failed: %s", id, err);
    if (db_begin(ctx->db, org) < 0)
        return;
    if (db_query(ctx->db, "DELETE FROM artifacts WHERE id = $1 AND status <> 'ready'", 1,
                 (const char *[]){ id }, NULL) < 0 ||
        db_commit(ctx->db) < 0)
        db_rollback(ctx->db);
}

API_HANDLER(api_artifact_upload)
{
    struct app *app = ctx->app;
    const char *sid = req->params[0], *org = req->who.org_id;
    resp->audit.resource = "artifact";
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *path = NULL, *remote = NULL, *ctype = NULL;
    long long expires_in = 0;
    bool has_exp = false;
    if (v_string(body, "path", true, 1, SBX_PATH_MAX, &path, resp) < 0 ||
        v_string(body, "remote_path", false, 1, 1024, &remote, resp) < 0 ||
        v_string(body, "content_type", false, 1, 255, &ctype, resp) < 0 ||
        v_int(body, "expires_in", false, 1, MAX_EXPIRES_IN, &expires_in, &has_exp, resp) < 0)
        return;
    if (ctype && !content_type_ok(ctype)) {
        http_error(resp, 422, "validation_error",
                   "field 'content_type' must be a media type such as \"text/plain\"");
        return;
    }
    if (remote && !v_not_blank(remote)) {
        http_error(resp, 422, "validation_error", "field 'remote_path' must not be blank");
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
    if (api_check_path(path, resp) < 0)
        return;
    if (sandbox_require_running(ctx, sid, NULL, resp) < 0 || !have_store(ctx, resp))
        return;
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", sid);

    /* Open and hash first: a missing file needs no row. */
    int fd = -1;
    uint64_t size = 0;
    int r = app->rt->ops->open_read(app->rt, sid, path, &fd, &size);
    if (r < 0)
        return api_file_error(resp, r, path);
    _cleanup_close_ int cfd = fd;
    char sha[65];
    uint64_t hashed = 0;
    r = ckpt_hash_fd(cfd, UINT64_MAX, &hashed, sha);
    if (r < 0)
        return api_file_error(resp, r, path);
    if (lseek(cfd, 0, SEEK_SET) < 0)
        return api_file_error(resp, -errno, path);

    /* The plan's storage limit (plans.<p>.storage: checkpoints + artifacts). */
    if (plan_check_storage(ctx, req, hashed, resp) < 0)
        return;
    char id[37], key[SBX_BLOB_KEY_MAX], exp_s[24];
    sbx_uuid4(id);
    snprintf(key, sizeof(key), "orgs/%s/artifacts/%s", org, id);
    snprintf(exp_s, sizeof(exp_s), "%lld", expires_in);
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    r = db_query(ctx->db,
                 "INSERT INTO artifacts (id, org_id, sandbox_id, path, remote_path, storage_key, "
                 "  content_type, status, metadata, created_by_key, expires_at, store_ref) "
                 "VALUES ($1, $2, $3, $4, COALESCE($5, $6), $6, $7, 'uploading', $8::jsonb, $9, "
                 "  CASE WHEN $10::bigint > 0 THEN now() + make_interval(secs => $10::bigint) "
                 "  END, $11)",
                 11,
                 (const char *[]){ id, org, sid, path, remote, key,
                                   ctype ? ctype : "application/octet-stream", meta_json,
                                   req->who.key_id, exp_s, app->instance },
                 NULL);
    if (r >= 0)
        r = db_commit(ctx->db);
    if (r < 0)
        return db_failed(resp, r);

    char err[256] = "";
    r = app->blobs->ops->put(app->blobs, key, cfd, hashed, sha, err, sizeof(err));
    if (r < 0) {
        log_warn("artifact %s: upload failed: %s", id, err);
        upload_cleanup(ctx, org, id, key);
        if (r == -EBADMSG)
            http_error(resp, 409, "file_changed",
                       "'%s' changed while it was uploaded (or the store corrupted it); retry",
                       path);
        else
            ckpt_store_error(resp, r, "artifact upload");
        return;
    }
    char size_s[24];
    snprintf(size_s, sizeof(size_s), "%llu", (unsigned long long)hashed);
    _cleanup_pgres_ PGresult *row = NULL;
    r = db_begin(ctx->db, org);
    if (r >= 0)
        r = db_query(ctx->db,
                     "UPDATE artifacts SET status = 'ready', size = $2::bigint, checksum = $3 "
                     " WHERE id = $1 RETURNING " ART_COLUMNS,
                     3, (const char *[]){ id, size_s, sha }, &row);
    if (r <= 0) {
        upload_cleanup(ctx, org, id, key);
        return db_failed(resp, r < 0 ? r : -EIO);
    }
    char extra[160];
    snprintf(extra, sizeof(extra), "\"size\": %s, \"checksum\": \"%s\"", size_s, sha);
    event(ctx, org, sid, "artifact.uploaded", id, extra);
    emit_row(resp, 201, row);
    resp->audit.details_json = xasprintf("{\"size\": %s, \"checksum\": \"%s\"}", size_s, sha);
}

/* Loads one ready artifact of the org or sets 404. */
static PGresult *load(struct handler_ctx *ctx, const char *id, const char *columns,
                      struct http_response *resp)
{
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such artifact");
        return NULL;
    }
    _cleanup_free_ char *sql =
        xasprintf("SELECT %s FROM artifacts WHERE id = $1 AND status = 'ready' "
                  "AND (expires_at IS NULL OR expires_at > now())", columns);
    PGresult *res = NULL;
    int r = db_query(ctx->db, sql, 1, (const char *[]){ id }, &res);
    if (r < 0) {
        db_failed(resp, r);
        return NULL;
    }
    if (r == 0) {
        PQclear(res);
        http_error(resp, 404, "not_found", "no such artifact");
        return NULL;
    }
    return res;
}

API_HANDLER(api_artifact_download)
{
    struct app *app = ctx->app;
    const char *sid = req->params[0], *org = req->who.org_id;
    resp->audit.resource = "artifact";
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, app->cfg.http.max_json_depth, &body) < 0)
        return;
    const char *aid = NULL, *path = NULL;
    if (v_string(body, "artifact_id", true, 1, 64, &aid, resp) < 0 ||
        v_string(body, "path", true, 1, SBX_PATH_MAX, &path, resp) < 0)
        return;
    if (api_check_path(path, resp) < 0)
        return;
    if (sandbox_require_running(ctx, sid, NULL, resp) < 0 || !have_store(ctx, resp))
        return;
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", sid);
    _cleanup_pgres_ PGresult *a = load(ctx, aid, "storage_key, size, checksum", resp);
    if (!a)
        return;
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", aid);
    _cleanup_free_ char *key = xstrdup(PQgetvalue(a, 0, 0));
    uint64_t want = strtoull(PQgetvalue(a, 0, 1), NULL, 10);
    int r = db_commit(ctx->db);
    if (r < 0)
        return db_failed(resp, r);
    int fd = -1;
    r = app->rt->ops->open_write(app->rt, sid, path, 0644, SBX_WRITE_MKDIRS, &fd);
    if (r < 0)
        return api_file_error(resp, r, path);
    uint64_t got = 0;
    char err[256] = "";
    r = app->blobs->ops->get(app->blobs, key, fd, &got, err, sizeof(err));
    int cr = sbx_rt_close_write(app->rt, sid, fd);
    if (r < 0) {
        log_warn("artifact %s: download failed: %s", aid, err);
        return ckpt_store_error(resp, r, "artifact download");
    }
    if (cr < 0)
        return api_file_error(resp, cr, path);
    if (got != want)
        return ckpt_store_error(resp, -EBADMSG, "artifact download");
    if (db_begin(ctx->db, org) < 0)
        return db_failed(resp, -EIO);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kbool(g, "success", true);
    sbx_jgen_kstr(g, "artifact_id", aid);
    sbx_jgen_kstr(g, "path", path);
    sbx_jgen_kint(g, "size", (long long)got);
    sbx_jgen_kstr(g, "checksum", PQgetvalue(a, 0, 2));
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
    resp->audit.details_json = xasprintf("{\"artifact_id\": \"%s\", \"size\": %llu}", aid,
                                         (unsigned long long)got);
}

API_HANDLER(api_artifact_get)
{
    _cleanup_pgres_ PGresult *res = load(ctx, req->params[0], ART_COLUMNS, resp);
    if (res)
        emit_row(resp, 200, res);
}

API_HANDLER(api_artifacts_list)
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
                     "SELECT " ART_COLUMNS " FROM artifacts WHERE status = 'ready' "
                     "   AND (expires_at IS NULL OR expires_at > now()) "
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
    page_emit(g, "artifacts", res, ART_TYPES, &pq, ART_CURSOR_COL, 0);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_artifact_url)
{
    long long expires = URL_DEFAULT_EXPIRES;
    const char *q = http_query(req, "expires_in");
    if (q) {
        char *end;
        expires = strtoll(q, &end, 10);
        if (!*q || *end || expires < 1 || expires > URL_MAX_EXPIRES) {
            http_error(resp, 400, "invalid_query", "expires_in must be an integer from 1 to %d",
                       URL_MAX_EXPIRES);
            return;
        }
    }
    if (!have_store(ctx, resp))
        return;
    _cleanup_pgres_ PGresult *a =
        load(ctx, req->params[0], "storage_key, extract(epoch FROM expires_at - now())", resp);
    if (!a)
        return;
    /* Never beyond the artifact's own expiry. */
    if (!PQgetisnull(a, 0, 1)) {
        double left = strtod(PQgetvalue(a, 0, 1), NULL);
        if (left < (double)expires)
            expires = left < 1 ? 1 : (long long)left;
    }
    _cleanup_free_ char *url = NULL;
    int r = ctx->app->blobs->ops->presign_get(ctx->app->blobs, PQgetvalue(a, 0, 0),
                                              (unsigned)expires, &url);
    if (r < 0)
        return ckpt_store_error(resp, r, "presign");
    _cleanup_pgres_ PGresult *t = NULL;
    char ex[24];
    snprintf(ex, sizeof(ex), "%lld", expires);
    r = db_query(ctx->db, "SELECT " SQL_TS("(now() + make_interval(secs => $1::int))"), 1,
                 (const char *[]){ ex }, &t);
    if (r <= 0)
        return db_failed(resp, r < 0 ? r : -EIO);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "url", url);
    sbx_jgen_kstr(g, "expires_at", PQgetvalue(t, 0, 0));
    sbx_jgen_kint(g, "expires_in", expires);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_artifact_delete)
{
    const char *id = req->params[0], *org = req->who.org_id;
    resp->audit.resource = "artifact";
    if (!have_store(ctx, resp))
        return;
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such artifact");
        return;
    }
    _cleanup_pgres_ PGresult *a = NULL;
    int r = db_query(ctx->db,
                     "DELETE FROM artifacts WHERE id = $1 AND status = 'ready' "
                     "RETURNING storage_key, sandbox_id",
                     1, (const char *[]){ id }, &a);
    if (r < 0)
        return db_failed(resp, r);
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such artifact");
        return;
    }
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    const char *sid = PQgetisnull(a, 0, 1) ? NULL : PQgetvalue(a, 0, 1);
    if (sid)
        snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", sid);
    /* The row delete commits only if the object is gone (the dispatcher commits on success). */
    char err[256] = "";
    const char *key = PQgetvalue(a, 0, 0);
    r = sbx_blob_key_valid(key) ? ctx->app->blobs->ops->del(ctx->app->blobs, key, err,
                                                            sizeof(err))
                                : 0;
    if (r < 0) {
        log_warn("artifact %s: delete failed: %s", id, err);
        return ckpt_store_error(resp, r, "artifact delete");
    }
    (void)org;
    event(ctx, req->who.org_id, sid, "artifact.deleted", id, NULL);
    http_success(resp);
}

/* Public: GET /api/v1/blobs/:token — the fs backend's presigned download. The token is the
 * credential (HMAC over key and expiry); every refusal is the same 403. */
API_HANDLER(api_blob_get)
{
    struct sbx_blobstore *bs = ctx->app->blobs;
    if (!bs) {
        http_error(resp, 404, "not_found", "not found");
        return;
    }
    _cleanup_free_ char *key = NULL;
    int r = sbx_blobstore_fs_verify(bs, req->params[0], &key);
    if (r < 0) {
        http_error(resp, 403, "invalid_signature",
                   "the download link is invalid or has expired");
        return;
    }
    if (bs->ops->open_read) {
        /* Streamed from the object file by the event loop (any size, constant memory). */
        uint64_t size = 0;
        int fd = bs->ops->open_read(bs, key, &size);
        if (fd == -ENOENT) {
            http_error(resp, 404, "not_found", "the object no longer exists");
            return;
        }
        if (fd < 0)
            return ckpt_store_error(resp, fd, "download");
        http_body_fd(resp, "application/octet-stream", fd, size);
        return;
    }
    struct sbx_blob_info info = { 0 };
    r = bs->ops->head(bs, key, &info);
    if (r == -ENOENT) {
        http_error(resp, 404, "not_found", "the object no longer exists");
        return;
    }
    if (r < 0)
        return ckpt_store_error(resp, r, "download");
    if (info.size > BLOB_ROUTE_MAX_BYTES) {
        http_error(resp, 413, "object_too_large", "the object is too large for this route");
        return;
    }
    char *data = NULL;
    size_t len = 0;
    char err[256] = "";
    r = ckpt_store_get_mem(bs, key, BLOB_ROUTE_MAX_BYTES, &data, &len, err, sizeof(err));
    if (r == -ENOENT) {
        http_error(resp, 404, "not_found", "the object no longer exists");
        return;
    }
    if (r < 0)
        return ckpt_store_error(resp, r, "download");
    free(resp->body);
    resp->status = 200;
    resp->content_type = "application/octet-stream";
    resp->body = data;
    resp->body_len = len;
}
