/*
 * api-files.c — moving files in and out of a sandbox's /workspace:
 *   POST /api/v1/sandbox/:id/files   {files: [{path, content (base64), mode?}]}
 *   GET  /api/v1/sandbox/:id/files?path=   a file (content base64, size, mode) or a directory
 *                                           listing (entries)
 * Paths are relative to /workspace or absolute inside it. Every path is checked lexically
 * first (400 invalid_path), and the runtime then resolves it inside the sandbox, as the
 * sandbox user, refusing symlinks that lead out of /workspace — the host never follows a path
 * in the sandbox's tree. Worker threads.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/events.h"
#include "controller/api.h"
#include "controller/sandbox.h"
#include "controller/validate.h"
#include "runtime/runtime.h"
#include "storage/db.h"

void api_file_error(struct http_response *resp, int r, const char *path)
{
    switch (r) {
    case -EINVAL:
    case -EXDEV:
    case -ELOOP:
        http_error(resp, 400, "invalid_path",
                   "path '%s' is not inside /workspace (or leaves it through a symlink)", path);
        break;
    case -ENOENT:
        http_error(resp, 404, "file_not_found", "file not found: '%s'", path);
        break;
    case -ENOTDIR:
        http_error(resp, 409, "not_a_directory", "a parent of '%s' is not a directory", path);
        break;
    case -EISDIR:
        http_error(resp, 409, "is_a_directory", "'%s' is a directory", path);
        break;
    case -EACCES:
    case -EPERM:
    case -EROFS:
        http_error(resp, 403, "permission_denied", "permission denied: '%s'", path);
        break;
    case -EFBIG:
    case -E2BIG:
        http_error(resp, 413, "file_too_large", "'%s' exceeds the file size limit", path);
        break;
    case -ENXIO:
    case -ENODEV:
    case -ETXTBSY:
    case -EOPNOTSUPP:
        http_error(resp, 409, "not_a_regular_file", "'%s' is not a regular file", path);
        break;
    case -ENOSPC:
    case -EDQUOT:
        http_error(resp, 507, "insufficient_storage", "the sandbox's storage is full");
        break;
    default:
        log_error_errno(r, "file operation on '%s' failed", path);
        http_error(resp, 500, "internal_error", "the file operation failed");
    }
}

int api_check_path(const char *path, struct http_response *resp)
{
    if (strlen(path) > SBX_PATH_MAX || sbx_path_check(path, strlen(path), NULL) < 0) {
        http_error(resp, 400, "invalid_path",
                   "path must be relative to /workspace or absolute inside it, without '..' "
                   "leaving it");
        return -EINVAL;
    }
    return 0;
}

API_HANDLER(api_files_write)
{
    const struct sbx_config *cfg = &ctx->app->cfg;
    const char *id = req->params[0];
    resp->audit.resource = "file";
    _cleanup_json_ yajl_val body = NULL;
    if (http_parse_json_body(req, resp, cfg->http.max_json_depth, &body) < 0)
        return;
    yajl_val files = sbx_json_get(body, "files");
    if (!files || !YAJL_IS_ARRAY(files) || files->u.array.len == 0) {
        http_error(resp, 422, "validation_error", "field 'files' must be a non-empty list");
        return;
    }
    if (files->u.array.len > cfg->limits.max_files_per_request) {
        http_error(resp, 422, "validation_error", "at most %u files per request",
                   cfg->limits.max_files_per_request);
        return;
    }
    /* Validate and decode everything before writing anything. */
    size_t nfiles = files->u.array.len;
    struct decoded {
        const char *path;
        uint8_t *data;
        size_t len;
        unsigned mode;
    } *dec = xcalloc(nfiles, sizeof(*dec));
    int r = 0;
    for (size_t i = 0; i < nfiles && r == 0; i++) {
        yajl_val f = files->u.array.values[i];
        const char *path = NULL, *content = NULL;
        long long mode = 0644;
        if (!YAJL_IS_OBJECT(f)) {
            http_error(resp, 422, "validation_error", "files[%zu] must be an object", i);
            r = -EINVAL;
            break;
        }
        if (v_string(f, "path", true, 1, SIZE_MAX, &path, resp) < 0 ||
            v_string(f, "content", true, 0, SIZE_MAX, &content, resp) < 0 ||
            v_int(f, "mode", false, 0, 07777, &mode, NULL, resp) < 0 ||
            (r = api_check_path(path, resp)) < 0) {
            r = -EINVAL;
            break;
        }
        r = sbx_base64_decode(content, strlen(content), cfg->limits.max_file_bytes, &dec[i].data,
                              &dec[i].len);
        if (r == -E2BIG)
            http_error(resp, 413, "file_too_large", "files[%zu] exceeds %llu bytes", i,
                       (unsigned long long)cfg->limits.max_file_bytes);
        else if (r < 0)
            http_error(resp, 422, "validation_error", "files[%zu].content is not valid base64",
                       i);
        dec[i].path = path;
        dec[i].mode = (unsigned)mode;
    }
    if (r == 0 && sandbox_require_running(ctx, id, NULL, resp) < 0)
        r = -ENOENT;
    if (r == 0)
        snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", id);

    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kbool(g, "success", true);
    sbx_jgen_key(g, "files");
    yajl_gen_array_open(g);
    uint64_t total = 0;
    _cleanup_jgen_ yajl_gen eg = sbx_jgen_new(); /* file.written event data */
    yajl_gen_map_open(eg);
    sbx_jgen_key(eg, "paths");
    yajl_gen_array_open(eg);
    for (size_t i = 0; i < nfiles && r == 0; i++) {
        r = sbx_write_file(ctx->app->rt, id, dec[i].path, dec[i].data, dec[i].len, dec[i].mode,
                           SBX_WRITE_MKDIRS);
        if (r < 0) {
            api_file_error(resp, r, dec[i].path);
            break;
        }
        total += dec[i].len;
        sbx_jgen_str(eg, dec[i].path);
        yajl_gen_map_open(g);
        sbx_jgen_kstr(g, "path", dec[i].path);
        sbx_jgen_kint(g, "size", (long long)dec[i].len);
        yajl_gen_map_close(g);
    }
    for (size_t i = 0; i < nfiles; i++)
        free(dec[i].data);
    free(dec);
    if (r < 0)
        return;
    yajl_gen_array_close(eg);
    sbx_jgen_kint(eg, "count", (long long)nfiles);
    sbx_jgen_kint(eg, "bytes", (long long)total);
    yajl_gen_map_close(eg);
    _cleanup_free_ char *ev = sbx_jgen_take(eg, NULL);
    if (events_emit(ctx->db, req->who.org_id, id, "file.written", ev) < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        return;
    }
    yajl_gen_array_close(g);
    sbx_jgen_kint(g, "written", (long long)files->u.array.len);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
    char details[96];
    snprintf(details, sizeof(details), "{\"files\": %zu, \"bytes\": %llu}", files->u.array.len,
             (unsigned long long)total);
    resp->audit.details_json = xstrdup(details);
}

static void emit_listing(struct http_response *resp, const char *path, struct sbx_dirent *d,
                         size_t n)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "path", path);
    sbx_jgen_kstr(g, "type", "directory");
    sbx_jgen_key(g, "entries");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        sbx_jgen_kstr(g, "name", d[i].name);
        sbx_jgen_kstr(g, "type", d[i].type == 'd'   ? "directory"
                                 : d[i].type == 'f' ? "file"
                                 : d[i].type == 'l' ? "symlink"
                                                    : "other");
        sbx_jgen_kint(g, "size", (long long)d[i].size);
        sbx_jgen_kint(g, "mode", d[i].mode);
        sbx_jgen_kint(g, "mtime", d[i].mtime);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_files_read)
{
    const struct sbx_config *cfg = &ctx->app->cfg;
    const char *id = req->params[0];
    resp->audit.resource = "file";
    const char *path = http_query(req, "path");
    if (!path || !*path) {
        http_error(resp, 400, "invalid_path", "query parameter 'path' is required");
        return;
    }
    if (api_check_path(path, resp) < 0)
        return;
    if (sandbox_require_running(ctx, id, NULL, resp) < 0)
        return;
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", id);

    int fd = -1;
    uint64_t size = 0;
    int r = ctx->app->rt->ops->open_read(ctx->app->rt, id, path, &fd, &size);
    if (r == -EISDIR) {
        struct sbx_dirent *d = NULL;
        int n = ctx->app->rt->ops->list_dir(ctx->app->rt, id, path, &d);
        if (n < 0)
            return api_file_error(resp, n, path);
        emit_listing(resp, path, d, (size_t)n);
        sbx_dirents_free(d, (size_t)n);
        return;
    }
    if (r < 0)
        return api_file_error(resp, r, path);
    _cleanup_close_ int cfd = fd;
    if (size > cfg->limits.max_file_bytes)
        return api_file_error(resp, -EFBIG, path);
    struct stat st;
    unsigned mode = fstat(cfd, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0644;
    /* The size may change while we read (the sandbox keeps running): read to EOF, growing
     * the buffer, and refuse once past the cap. */
    size_t cap = (size_t)size + 1, got = 0;
    _cleanup_free_ char *data = xmalloc(cap);
    for (;;) {
        if (got == cap) {
            if (cap > cfg->limits.max_file_bytes)
                return api_file_error(resp, -EFBIG, path);
            cap = MIN(cap * 2, (size_t)cfg->limits.max_file_bytes + 1);
            data = xrealloc(data, cap);
        }
        ssize_t n = read(cfd, data + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return api_file_error(resp, -errno, path);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    _cleanup_free_ char *b64 = sbx_base64_encode(data, got, NULL);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "path", path);
    sbx_jgen_kstr(g, "type", "file");
    sbx_jgen_kstr(g, "content", b64);
    sbx_jgen_kint(g, "size", (long long)got);
    sbx_jgen_kint(g, "mode", mode);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}
