/*
 * checkpoint.c — see checkpoint.h.
 *
 * DESIGN
 * Walk: /usr/bin/find runs INSIDE the sandbox (its mount namespace, its uid, seccomp) and
 * prints "type\0mode\0size\0relpath\0linktarget\0" per entry; the daemon never looks at the
 * host copy of the workspace. The output is hostile input: every field is parsed strictly and
 * every path checked lexically. File contents are read through the runtime's open_read
 * (openat2 RESOLVE_BENEATH inside the sandbox) and hashed by the daemon itself — a sandbox
 * cannot claim content it does not have.
 * Content lifetime: blobs.refcount is incremented (row lock) before the upload and decremented
 * when a checkpoint goes; an object is deleted from the store only while its refcount-0 row is
 * locked FOR UPDATE, and the row is deleted in that same transaction (docs/internals/
 * CHECKPOINTS.md has the interleavings).
 */
#include "controller/checkpoint.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "runtime/runtime.h"
#include "storage/blobstore.h"
#include "storage/db.h"

#define WALK_TIMEOUT_MS (10 * 60 * 1000)
#define MANIFEST_MAX_BYTES (512u * 1024 * 1024)
#define GC_BATCH 200
#define STALE_PENDING_S 3600
#define LN_BATCH 200
#define HASH_BUF (256u * 1024)

void ckpt_manifest_free(struct ckpt_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].path);
        free(m->e[i].target);
    }
    free(m->e);
    *m = (struct ckpt_manifest){ 0 };
}

/* A normalised relative path: no leading '/', no empty, "." or ".." components. */
static bool relpath_ok(const char *p, size_t len)
{
    if (len == 0 || len > SBX_PATH_MAX || p[0] == '/' || memchr(p, '\0', len))
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        size_t cl = i - start;
        if (cl == 0 || (cl == 1 && p[start] == '.') ||
            (cl == 2 && p[start] == '.' && p[start + 1] == '.'))
            return false;
        start = i + 1;
    }
    return true;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ckpt_entry *)a)->path, ((const struct ckpt_entry *)b)->path);
}

static void manifest_push(struct ckpt_manifest *m, size_t *cap, struct ckpt_entry e)
{
    if (m->n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        m->e = xrealloc(m->e, *cap * sizeof(*m->e));
    }
    m->e[m->n++] = e;
}

/* Next NUL-terminated field of the walker's output. */
static const char *next_field(const char **pos, const char *end, size_t *ret_len)
{
    const char *p = *pos;
    if (p >= end)
        return NULL;
    const char *z = memchr(p, '\0', (size_t)(end - p));
    if (!z)
        return NULL;
    *ret_len = (size_t)(z - p);
    *pos = z + 1;
    return p;
}

int ckpt_walk(struct sbx_runtime *rt, const char *sid, uint32_t max_entries,
              struct ckpt_manifest *ret, char *err, size_t errlen)
{
    const char *argv[] = { "/usr/bin/find", "/workspace", "-xdev", "-mindepth", "1",
                           "-printf", "%y\\0%m\\0%s\\0%P\\0%l\\0", NULL };
    const char *env[] = { "LD_PRELOAD=", "LD_LIBRARY_PATH=", "LC_ALL=C", NULL };
    struct sbx_exec_spec spec = { .argv = argv, .env = env, .cwd = "/workspace" };
    /* Room for max_entries entries of typical length; more output means more entries. */
    size_t max_out = MIN((size_t)max_entries * 512 + (1u << 20), (size_t)512 << 20);
    struct sbx_exec_output out = { 0 };
    int r = sbx_exec_run_buffered(rt, sid, &spec, NULL, 0, WALK_TIMEOUT_MS, max_out, &out);
    if (r < 0) {
        snprintf(err, errlen, "the workspace could not be listed");
        return r == -ENOENT ? -ENOENT : -EIO;
    }
    if (out.truncated) {
        sbx_exec_output_free(&out);
        snprintf(err, errlen, "the workspace has more than %u entries", max_entries);
        return -E2BIG;
    }
    if (out.reason != SBX_EXEC_EXITED || out.result.exit_code != 0) {
        snprintf(err, errlen, "the workspace could not be listed completely (unreadable "
                              "directories?)");
        sbx_exec_output_free(&out);
        return -EIO;
    }
    struct ckpt_manifest m = { 0 };
    size_t cap = 0;
    const char *pos = out.out, *end = out.out + out.out_len;
    r = 0;
    while (pos < end) {
        size_t tl = 0, ml = 0, sl = 0, pl = 0, ll = 0;
        const char *t = next_field(&pos, end, &tl), *mo = next_field(&pos, end, &ml),
                   *sz = next_field(&pos, end, &sl), *p = next_field(&pos, end, &pl),
                   *l = next_field(&pos, end, &ll);
        if (!t || !mo || !sz || !p || !l || tl != 1 || ml == 0 || ml > 5 || sl == 0 ||
            sl > 20) {
            r = -EIO;
            snprintf(err, errlen, "the workspace listing was malformed");
            break;
        }
        char *e1, *e2;
        unsigned long mode = strtoul(mo, &e1, 8);
        unsigned long long size = strtoull(sz, &e2, 10);
        if (e1 != mo + ml || e2 != sz + sl || mo[0] == '-' || sz[0] == '-') {
            r = -EIO;
            snprintf(err, errlen, "the workspace listing was malformed");
            break;
        }
        char type = t[0] == 'f' ? 'f' : t[0] == 'd' ? 'd' : t[0] == 'l' ? 'l' : 0;
        if (!type) {
            m.skipped++;
            continue;
        }
        if (!relpath_ok(p, pl) || (type == 'l' && (ll == 0 || ll > SBX_PATH_MAX))) {
            r = -EIO;
            snprintf(err, errlen, "the workspace listing had an invalid path");
            break;
        }
        if (m.n >= max_entries) {
            r = -E2BIG;
            snprintf(err, errlen, "the workspace has more than %u entries", max_entries);
            break;
        }
        struct ckpt_entry e = { .path = xstrndup(p, pl), .type = type,
                                .mode = (unsigned)(mode & 07777),
                                .size = type == 'f' ? size : 0,
                                .target = type == 'l' ? xstrndup(l, ll) : NULL };
        manifest_push(&m, &cap, e);
    }
    sbx_exec_output_free(&out);
    if (r < 0) {
        ckpt_manifest_free(&m);
        return r;
    }
    if (m.n)
        qsort(m.e, m.n, sizeof(*m.e), entry_cmp);
    *ret = m;
    return 0;
}

int ckpt_hash_fd(int fd, uint64_t max, uint64_t *ret_size, char ret_sha[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        abort();
    _cleanup_free_ char *buf = xmalloc(HASH_BUF);
    uint64_t total = 0;
    int r = 0;
    for (;;) {
        ssize_t n = read(fd, buf, HASH_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        total += (uint64_t)n;
        if (total > max) {
            r = -EFBIG;
            break;
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    uint8_t dig[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, dig, &dl);
    EVP_MD_CTX_free(md);
    if (r < 0)
        return r;
    sbx_hex(dig, 32, ret_sha);
    *ret_size = total;
    return 0;
}

int ckpt_hash_file(struct sbx_runtime *rt, const char *sid, const char *path, uint64_t max,
                   uint64_t *ret_size, char ret_sha[65])
{
    int fd = -1;
    uint64_t size;
    int r = rt->ops->open_read(rt, sid, path, &fd, &size);
    if (r < 0)
        return r;
    _cleanup_close_ int cfd = fd;
    return ckpt_hash_fd(cfd, max, ret_size, ret_sha);
}

struct par {
    size_t n;
    ckpt_job_fn fn;
    void *ctx;
    atomic_size_t next;
    atomic_bool stop;
    pthread_mutex_t lock;
    int err;
    size_t err_index;
};

static void *par_main(void *arg)
{
    struct par *p = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n || atomic_load(&p->stop))
            return NULL;
        int r = p->fn(p->ctx, i);
        if (r < 0) {
            pthread_mutex_lock(&p->lock);
            if (p->err == 0 || i < p->err_index) {
                p->err = r;
                p->err_index = i;
            }
            pthread_mutex_unlock(&p->lock);
            atomic_store(&p->stop, true);
            return NULL;
        }
    }
}

int ckpt_parallel(size_t n, ckpt_job_fn fn, void *ctx, size_t *ret_failed)
{
    struct par p = { .n = n, .fn = fn, .ctx = ctx, .lock = PTHREAD_MUTEX_INITIALIZER };
    atomic_init(&p.next, 0);
    atomic_init(&p.stop, false);
    size_t nt = MIN((size_t)CKPT_PARALLEL, n);
    pthread_t th[CKPT_PARALLEL];
    size_t started = 0;
    for (size_t i = 1; i < nt; i++)
        if (pthread_create(&th[started], NULL, par_main, &p) == 0)
            started++;
    par_main(&p); /* the calling worker takes part */
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p.lock);
    if (p.err < 0 && ret_failed)
        *ret_failed = p.err_index;
    return p.err;
}

char *ckpt_manifest_json(const struct ckpt_manifest *m, size_t *ret_len)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kint(g, "version", 1);
    sbx_jgen_key(g, "entries");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < m->n; i++) {
        const struct ckpt_entry *e = &m->e[i];
        yajl_gen_map_open(g);
        sbx_jgen_kstr(g, "path", e->path);
        sbx_jgen_kstr(g, "type", e->type == 'f' ? "file" : e->type == 'd' ? "dir" : "symlink");
        sbx_jgen_kint(g, "mode", e->mode);
        if (e->type == 'f') {
            sbx_jgen_kint(g, "size", (long long)e->size);
            sbx_jgen_kstr(g, "sha256", e->sha256);
        } else if (e->type == 'l') {
            sbx_jgen_kstr(g, "target", e->target);
        }
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    return sbx_jgen_take(g, ret_len);
}

static bool hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

int ckpt_manifest_parse(const char *data, size_t len, struct ckpt_manifest *ret)
{
    _cleanup_json_ yajl_val root = NULL;
    char jerr[128];
    if (sbx_json_parse(data, len, MANIFEST_MAX_BYTES, 8, &root, jerr, sizeof(jerr)) < 0)
        return -EBADMSG;
    yajl_val v = sbx_json_get(root, "version"), ents = sbx_json_get(root, "entries");
    if (!v || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) != 1 || !ents || !YAJL_IS_ARRAY(ents))
        return -EBADMSG;
    struct ckpt_manifest m = { 0 };
    m.e = xcalloc(ents->u.array.len ? ents->u.array.len : 1, sizeof(*m.e));
    for (size_t i = 0; i < ents->u.array.len; i++) {
        yajl_val o = ents->u.array.values[i];
        const char *path = sbx_json_get_str(o, "path"), *type = sbx_json_get_str(o, "type");
        yajl_val mode = sbx_json_get(o, "mode");
        if (!path || !type || !relpath_ok(path, strlen(path)) || !mode || !YAJL_IS_INTEGER(mode))
            goto bad;
        struct ckpt_entry *e = &m.e[m.n];
        e->mode = (unsigned)(YAJL_GET_INTEGER(mode) & 07777);
        if (strcmp(type, "file") == 0) {
            yajl_val sz = sbx_json_get(o, "size");
            const char *sha = sbx_json_get_str(o, "sha256");
            if (!sz || !YAJL_IS_INTEGER(sz) || YAJL_GET_INTEGER(sz) < 0 || !hex64(sha))
                goto bad;
            e->type = 'f';
            e->size = (uint64_t)YAJL_GET_INTEGER(sz);
            memcpy(e->sha256, sha, 65);
        } else if (strcmp(type, "dir") == 0) {
            e->type = 'd';
        } else if (strcmp(type, "symlink") == 0) {
            const char *t = sbx_json_get_str(o, "target");
            if (!t || !*t || strlen(t) > SBX_PATH_MAX)
                goto bad;
            e->type = 'l';
            e->target = xstrdup(t);
        } else {
            goto bad;
        }
        e->path = xstrdup(path);
        m.n++;
        if (m.n > 1 && strcmp(m.e[m.n - 2].path, e->path) >= 0)
            goto bad; /* sorted, no duplicates */
    }
    *ret = m;
    return 0;
bad:
    ckpt_manifest_free(&m);
    return -EBADMSG;
}

int ckpt_store_put_mem(struct sbx_blobstore *bs, const char *key, const void *data, size_t len,
                       char *err, size_t errlen)
{
    _cleanup_close_ int fd = memfd_create("sbx-ckpt", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        off += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    char sha[65];
    sbx_sha256_hex(data, len, sha);
    return bs->ops->put(bs, key, fd, len, sha, err, errlen);
}

int ckpt_store_get_mem(struct sbx_blobstore *bs, const char *key, size_t max, char **ret,
                       size_t *ret_len, char *err, size_t errlen)
{
    _cleanup_close_ int fd = memfd_create("sbx-ckpt", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = bs->ops->get(bs, key, fd, NULL, err, errlen);
    if (r < 0)
        return r;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size > max)
        return -EFBIG;
    size_t len = (size_t)st.st_size;
    char *buf = xmalloc(len + 1);
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return n < 0 ? -errno : -EIO;
        }
        got += (size_t)n;
    }
    buf[len] = '\0';
    *ret = buf;
    *ret_len = len;
    return 0;
}

int ckpt_manifest_load(struct sbx_blobstore *bs, const char *key, const char *checksum,
                       struct ckpt_manifest *ret)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    char err[256] = "";
    int r = ckpt_store_get_mem(bs, key, MANIFEST_MAX_BYTES, &data, &len, err, sizeof(err));
    if (r < 0) {
        log_warn("checkpoint manifest %s: %s", key, err[0] ? err : strerror(-r));
        return r;
    }
    char sha[65];
    sbx_sha256_hex(data, len, sha);
    if (!checksum || strcmp(sha, checksum) != 0) {
        log_error("checkpoint manifest %s: checksum mismatch", key);
        return -EBADMSG;
    }
    return ckpt_manifest_parse(data, len, ret);
}

void ckpt_store_error(struct http_response *resp, int r, const char *what)
{
    switch (r) {
    case -EBADMSG:
        http_error(resp, 502, "storage_integrity_error",
                   "%s: the object store returned content that does not match its checksum",
                   what);
        break;
    case -ENOENT:
        http_error(resp, 502, "storage_object_missing", "%s: an object is missing from the store",
                   what);
        break;
    case -EACCES:
        http_error(resp, 502, "storage_access_denied", "%s: the object store refused the "
                                                       "credentials", what);
        break;
    case -EIO:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EAGAIN:
        http_error(resp, 503, "storage_unavailable", "%s: the object store is not available",
                   what);
        resp->retry_after = 2;
        break;
    default:
        log_error_errno(r, "%s: blob store operation failed", what);
        http_error(resp, 503, "storage_unavailable", "%s: the object store operation failed",
                   what);
        resp->retry_after = 2;
    }
}

/* ---- content refcounts and garbage collection ------------------------------------------- */

int ckpt_gc(struct app *app, struct db *db, const char *org_id)
{
    struct sbx_blobstore *bs = app->blobs;
    int deleted = 0;
    for (;;) {
        int r = db_begin(db, org_id);
        if (r < 0)
            return r;
        _cleanup_pgres_ PGresult *res = NULL;
        char lim[16];
        snprintf(lim, sizeof(lim), "%d", GC_BATCH);
        r = db_query(db,
                     "SELECT id, storage_key FROM blobs WHERE refcount = 0 "
                     " ORDER BY sha256 LIMIT $1::int FOR UPDATE SKIP LOCKED",
                     1, (const char *[]){ lim }, &res);
        if (r < 0) {
            db_rollback(db);
            return r;
        }
        int n = PQntuples(res), done = 0, err_r = 0;
        for (int i = 0; i < n; i++) {
            char err[256] = "";
            const char *key = PQgetvalue(res, i, 1);
            r = sbx_blob_key_valid(key) ? bs->ops->del(bs, key, err, sizeof(err)) : 0;
            if (r < 0) {
                log_warn("checkpoint gc: deleting %s failed: %s", key, err);
                err_r = r;
                break;
            }
            r = db_query(db, "DELETE FROM blobs WHERE id = $1 AND refcount = 0", 1,
                         (const char *[]){ PQgetvalue(res, i, 0) }, NULL);
            if (r < 0) {
                err_r = r;
                break;
            }
            done++;
        }
        r = db_commit(db);
        if (r < 0)
            return r;
        deleted += done;
        if (err_r < 0)
            return err_r;
        if (n < GC_BATCH)
            return deleted;
    }
}

int ckpt_release(struct app *app, struct db *db, const char *org_id, const char *ckpt_id,
                 bool manifest_may_exist)
{
    int r = db_begin(db, org_id);
    if (r < 0)
        return r;
    _cleanup_pgres_ PGresult *row = NULL;
    r = db_query(db, "SELECT manifest_key FROM checkpoints WHERE id = $1 FOR UPDATE", 1,
                 (const char *[]){ ckpt_id }, &row);
    if (r == 0) {
        db_rollback(db);
        return -ENOENT;
    }
    /* A template promoted from it keeps it (the promote holds FOR SHARE on the row). */
    if (r > 0) {
        r = db_query(db, "SELECT 1 FROM templates WHERE checkpoint_id = $1 LIMIT 1", 1,
                     (const char *[]){ ckpt_id }, NULL);
        if (r > 0) {
            db_rollback(db);
            return -EBUSY;
        }
        if (r == 0)
            r = 1;
    }
    if (r > 0)
        r = db_query(db,
                     "UPDATE blobs b SET refcount = b.refcount - 1, last_used_at = now() "
                     "  FROM (SELECT bl.id FROM blobs bl "
                     "          JOIN checkpoint_blobs cb ON cb.blob_id = bl.id "
                     "         WHERE cb.checkpoint_id = $1 "
                     "         ORDER BY bl.sha256 FOR UPDATE OF bl) l "
                     " WHERE b.id = l.id",
                     1, (const char *[]){ ckpt_id }, NULL);
    if (r >= 0)
        r = db_query(db, "DELETE FROM checkpoints WHERE id = $1", 1, (const char *[]){ ckpt_id },
                     NULL);
    /* The manifest goes while the row is locked and before the deletion commits: if the store
     * is down nothing changes (retry later); the id is never reused, so nothing else races. */
    if (r >= 0 && manifest_may_exist) {
        char key[SBX_BLOB_KEY_MAX], err[256] = "";
        snprintf(key, sizeof(key), "orgs/%s/manifests/%s", org_id, ckpt_id);
        r = app->blobs->ops->del(app->blobs, key, err, sizeof(err));
        if (r < 0)
            log_warn("checkpoint %s: deleting the manifest failed: %s", ckpt_id, err);
    }
    if (r >= 0)
        r = db_commit(db);
    else
        db_rollback(db);
    if (r < 0)
        return r;
    r = ckpt_gc(app, db, org_id);
    if (r < 0)
        log_warn("checkpoint %s: content clean-up deferred to the reaper (%s)", ckpt_id,
                 strerror(-r));
    return 0;
}

/* ---- restore -------------------------------------------------------------------------------- */

void ckpt_restore_result_free(struct ckpt_restore_result *r)
{
    for (size_t i = 0; i < r->n_skipped; i++)
        free(r->skipped[i]);
    for (size_t i = 0; i < r->n_unsafe; i++)
        free(r->unsafe[i]);
    free(r->skipped);
    free(r->unsafe);
    *r = (struct ckpt_restore_result){ 0 };
}

/* True if the symlink at rel (relative to /workspace) pointing to target resolves lexically
 * inside /workspace. */
static bool symlink_inside(const char *rel, const char *target)
{
    _cleanup_free_ char *joined = NULL;
    if (target[0] == '/') {
        joined = xstrdup(target);
    } else {
        const char *slash = strrchr(rel, '/');
        if (slash)
            joined = xasprintf("/workspace/%.*s/%s", (int)(slash - rel), rel, target);
        else
            joined = xasprintf("/workspace/%s", target);
    }
    return sbx_path_check(joined, strlen(joined), NULL) == 0;
}

static int find_existing(const struct ckpt_manifest *cur, const char *path)
{
    size_t lo = 0, hi = cur->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(cur->e[mid].path, path);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Runs argv (prefix + paths) inside the sandbox in batches. */
static int run_batched(struct sbx_runtime *rt, const char *sid, const char *const *prefix,
                       size_t nprefix, char **args, size_t nargs, size_t per_call)
{
    for (size_t off = 0; off < nargs; off += per_call) {
        size_t n = MIN(per_call, nargs - off);
        const char **argv = xcalloc(nprefix + n + 1, sizeof(char *));
        for (size_t i = 0; i < nprefix; i++)
            argv[i] = prefix[i];
        for (size_t i = 0; i < n; i++)
            argv[nprefix + i] = args[off + i];
        const char *env[] = { "LD_PRELOAD=", "LD_LIBRARY_PATH=", NULL };
        struct sbx_exec_spec spec = { .argv = argv, .env = env, .cwd = "/workspace" };
        struct sbx_exec_output out = { 0 };
        int r = sbx_exec_run_buffered(rt, sid, &spec, NULL, 0, 60000, 65536, &out);
        free(argv);
        if (r < 0)
            return r;
        bool ok = out.reason == SBX_EXEC_EXITED && out.result.exit_code == 0;
        if (!ok)
            log_warn("sandbox %s: %s failed: %.*s", sid, prefix[0], (int)MIN(out.err_len, 200),
                     out.err ? out.err : "");
        sbx_exec_output_free(&out);
        if (!ok)
            return -EIO;
    }
    return 0;
}

static void push_str(char ***arr, size_t *n, const char *s)
{
    *arr = xrealloc(*arr, (*n + 1) * sizeof(char *));
    (*arr)[(*n)++] = xstrdup(s);
}

static void restore_file_error(struct http_response *resp, int r, const char *path)
{
    switch (r) {
    case -ENOSPC:
    case -EDQUOT:
        http_error(resp, 507, "insufficient_storage", "the sandbox's storage is full");
        break;
    case -EACCES:
    case -EPERM:
    case -EROFS:
        http_error(resp, 409, "restore_failed", "'%s' could not be written (permission denied)",
                   path);
        break;
    case -ENOTDIR:
    case -EISDIR:
    case -EINVAL:
    case -EXDEV:
    case -ELOOP:
        http_error(resp, 409, "restore_failed",
                   "'%s' could not be written (a conflicting entry is in the way)", path);
        break;
    default:
        log_error_errno(r, "restore of '%s' failed", path);
        http_error(resp, 500, "restore_failed", "'%s' could not be restored", path);
    }
}

struct wjob {
    struct app *app;
    const char *org_id, *sid;
    const struct ckpt_manifest *m;
    const size_t *idx;
    atomic_uint_fast64_t bytes;
    atomic_bool store_failed;  /* a store error (not a sandbox file error) happened */
};

/* One file of a restore: open_write inside the sandbox, stream the blob into it. */
static int write_one(void *ctx, size_t k)
{
    struct wjob *w = ctx;
    struct sbx_runtime *rt = w->app->rt;
    struct sbx_blobstore *bs = w->app->blobs;
    const struct ckpt_entry *e = &w->m->e[w->idx[k]];
    int fd = -1;
    int r = rt->ops->open_write(rt, w->sid, e->path, e->mode, SBX_WRITE_MKDIRS, &fd);
    if (r < 0)
        return r;
    char key[SBX_BLOB_KEY_MAX], err[256] = "";
    snprintf(key, sizeof(key), "orgs/%s/blobs/%s", w->org_id, e->sha256);
    uint64_t got = 0;
    r = bs->ops->get(bs, key, fd, &got, err, sizeof(err));
    int cr = sbx_rt_close_write(rt, w->sid, fd);
    if (r >= 0 && got != e->size)
        r = -EBADMSG;
    if (r < 0) {
        log_warn("restore %s: %s", key, err[0] ? err : strerror(-r));
        atomic_store(&w->store_failed, true);
        return r;
    }
    if (cr < 0)
        return cr; /* a file error inside the sandbox */
    atomic_fetch_add(&w->bytes, got);
    return 0;
}

int ckpt_restore_into(struct app *app, const char *org_id, const char *sid,
                      const struct ckpt_manifest *m, bool overwrite,
                      struct ckpt_restore_result *ret, struct http_response *resp)
{
    struct sbx_runtime *rt = app->rt;
    struct ckpt_restore_result res = { 0 };
    struct ckpt_manifest cur = { 0 };
    char err[256] = "";
    int r = ckpt_walk(rt, sid, UINT32_MAX, &cur, err, sizeof(err));
    if (r < 0) {
        if (r == -ENOENT)
            http_error(resp, 409, "sandbox_not_running", "the sandbox is not running");
        else
            http_error(resp, 409, "restore_failed", "%s", err);
        return r;
    }
    /* Decide per entry: skip (exists, overwrite false), remove first (conflicting type or a
     * symlink in the way), write. */
    bool *skip = xcalloc(m->n ? m->n : 1, sizeof(bool));
    char **rm = NULL, **ln = NULL;
    size_t n_rm = 0, n_ln = 0;
    for (size_t i = 0; i < m->n; i++) {
        const struct ckpt_entry *e = &m->e[i];
        int k = find_existing(&cur, e->path);
        if (k >= 0) {
            char have = cur.e[k].type;
            if (e->type == 'd' && have == 'd')
                continue;
            if (!overwrite) {
                skip[i] = true;
                res.total_skipped++;
                if (res.n_skipped < CKPT_MAX_REPORTED)
                    push_str(&res.skipped, &res.n_skipped, e->path);
                continue;
            }
            if (have != e->type || have == 'l' || have == 'd') {
                _cleanup_free_ char *abs = xasprintf("/workspace/%s", e->path);
                push_str(&rm, &n_rm, abs);
            }
        }
    }
    if (n_rm) {
        const char *pre[] = { "/usr/bin/rm", "-rf", "--" };
        r = run_batched(rt, sid, pre, 3, rm, n_rm, LN_BATCH);
        if (r < 0) {
            http_error(resp, 409, "restore_failed", "existing entries could not be replaced");
            goto out;
        }
    }
    size_t *files = xcalloc(m->n ? m->n : 1, sizeof(size_t)), n_files = 0;
    for (size_t i = 0; i < m->n && r >= 0; i++) {
        const struct ckpt_entry *e = &m->e[i];
        if (skip[i])
            continue;
        if (e->type == 'd') {
            r = rt->ops->mkdir_p(rt, sid, e->path, e->mode & 0777 ? e->mode & 01777 : 0755);
            if (r < 0) {
                restore_file_error(resp, r, e->path);
                break;
            }
            res.dirs++;
        } else if (e->type == 'l') {
            if (!symlink_inside(e->path, e->target)) {
                push_str(&res.unsafe, &res.n_unsafe, e->path);
                continue;
            }
            _cleanup_free_ char *abs = xasprintf("/workspace/%s", e->path);
            push_str(&ln, &n_ln, e->target);
            push_str(&ln, &n_ln, abs);
        } else {
            files[n_files++] = i;
        }
    }
    if (r >= 0 && n_files) {
        struct wjob w = { .app = app, .org_id = org_id, .sid = sid, .m = m, .idx = files };
        atomic_init(&w.bytes, 0);
        atomic_init(&w.store_failed, false);
        size_t bad = 0;
        r = ckpt_parallel(n_files, write_one, &w, &bad);
        if (r < 0) {
            const char *path = m->e[files[bad]].path;
            if (atomic_load(&w.store_failed))
                ckpt_store_error(resp, r, "restore");
            else
                restore_file_error(resp, r, path);
        } else {
            res.files = (unsigned)n_files;
            res.bytes = atomic_load(&w.bytes);
        }
    }
    free(files);
    if (r >= 0 && n_ln) {
        /* ln -sfn -- target path, pairs; -n: never descend into a symlinked directory. */
        for (size_t off = 0; off < n_ln && r >= 0; off += 2) {
            const char *pre[] = { "/usr/bin/ln", "-sfn", "--" };
            r = run_batched(rt, sid, pre, 3, ln + off, 2, 2);
        }
        if (r < 0)
            http_error(resp, 409, "restore_failed", "symbolic links could not be created");
        else
            res.symlinks = (unsigned)(n_ln / 2);
    }
out:
    for (size_t i = 0; i < n_rm; i++)
        free(rm[i]);
    for (size_t i = 0; i < n_ln; i++)
        free(ln[i]);
    free(rm);
    free(ln);
    free(skip);
    ckpt_manifest_free(&cur);
    if (r < 0) {
        ckpt_restore_result_free(&res);
        return r;
    }
    *ret = res;
    return 0;
}

int ckpt_lookup(struct db *db, const char *ckpt_id, char **ret_manifest_key,
                char **ret_checksum, char **ret_env, struct http_response *resp)
{
    if (!sbx_uuid_valid(ckpt_id)) {
        http_error(resp, 404, "not_found", "no such checkpoint");
        return -ENOENT;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(db,
                     "SELECT manifest_key, checksum, env FROM checkpoints "
                     " WHERE id = $1 AND status = 'ready'",
                     1, (const char *[]){ ckpt_id }, &res);
    if (r < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        resp->retry_after = 1;
        return r;
    }
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such checkpoint");
        return -ENOENT;
    }
    *ret_manifest_key = xstrdup(PQgetvalue(res, 0, 0));
    *ret_checksum = xstrdup(PQgetvalue(res, 0, 1));
    if (ret_env)
        *ret_env = PQgetisnull(res, 0, 2) ? NULL : xstrdup(PQgetvalue(res, 0, 2));
    return 0;
}

int ckpt_restore_checkpoint(struct app *app, const char *org_id, const char *sid,
                            const char *manifest_key, const char *checksum, char *why,
                            size_t whylen)
{
    struct ckpt_manifest m = { 0 };
    int r = ckpt_manifest_load(app->blobs, manifest_key, checksum, &m);
    if (r < 0) {
        snprintf(why, whylen, "the checkpoint's manifest could not be read from the object "
                              "store");
        return r;
    }
    struct http_response tmp = { 0 };
    struct ckpt_restore_result res = { 0 };
    r = ckpt_restore_into(app, org_id, sid, &m, true, &res, &tmp);
    ckpt_manifest_free(&m);
    if (r < 0)
        snprintf(why, whylen, "restoring the checkpoint failed: %s",
                 tmp.error_message ? tmp.error_message : "internal error");
    else
        ckpt_restore_result_free(&res);
    http_response_free(&tmp);
    return r;
}

/* ---- reaper ------------------------------------------------------------------------------- */

static void reap_artifacts(struct app *app, struct db *db)
{
    _cleanup_pgres_ PGresult *res = NULL;
    if (db_query(db,
                 "SELECT id, org_id FROM sbx_artifacts_expired(now(), 1000) "
                 " WHERE store_ref IS NULL OR store_ref = $1 LIMIT 100",
                 1, (const char *[]){ app->instance }, &res) < 0)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0), *org = PQgetvalue(res, i, 1);
        if (db_begin(db, org) < 0)
            return;
        _cleanup_pgres_ PGresult *row = NULL;
        int r = db_query(db,
                         "SELECT storage_key FROM artifacts WHERE id = $1 FOR UPDATE SKIP LOCKED",
                         1, (const char *[]){ id }, &row);
        if (r > 0 && !PQgetisnull(row, 0, 0) && sbx_blob_key_valid(PQgetvalue(row, 0, 0))) {
            char err[256] = "";
            r = app->blobs->ops->del(app->blobs, PQgetvalue(row, 0, 0), err, sizeof(err));
            if (r < 0)
                log_warn("reaper: deleting artifact %s failed: %s", id, err);
        }
        if (r >= 0)
            r = db_query(db, "DELETE FROM artifacts WHERE id = $1", 1, (const char *[]){ id },
                         NULL);
        if (r < 0 || db_commit(db) < 0) {
            db_rollback(db);
            continue;
        }
        struct sbx_log_field f[] = { LF_STR("artifact_id", id), LF_STR("org_id", org) };
        sbx_log_fields(SBX_LOG_INFO, "artifact expired", f, ARRAY_SIZE(f));
    }
}

static void reap_checkpoints(struct app *app, struct db *db)
{
    _cleanup_pgres_ PGresult *res = NULL;
    char secs[16];
    snprintf(secs, sizeof(secs), "%d", STALE_PENDING_S);
    if (db_query(db,
                 "SELECT id, org_id FROM sbx_checkpoints_stale("
                 "   now() - make_interval(secs => $2::int), 1000) "
                 " WHERE store_ref IS NULL OR store_ref = $1 LIMIT 20",
                 2, (const char *[]){ app->instance, secs }, &res) < 0)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0), *org = PQgetvalue(res, i, 1);
        int r = ckpt_release(app, db, org, id, true);
        struct sbx_log_field f[] = { LF_STR("checkpoint_id", id), LF_STR("org_id", org),
                                     LF_INT("result", r) };
        sbx_log_fields(SBX_LOG_INFO, "stale pending checkpoint released", f, ARRAY_SIZE(f));
    }
    _cleanup_pgres_ PGresult *orgs = NULL;
    if (db_query(db, "SELECT org_id FROM sbx_blobs_unreferenced_orgs(20)", 0, NULL, &orgs) < 0)
        return;
    for (int i = 0; i < PQntuples(orgs); i++)
        (void)ckpt_gc(app, db, PQgetvalue(orgs, i, 0));
}

void ckpt_reap(struct app *app, struct db *db)
{
    if (!app->blobs)
        return;
    reap_artifacts(app, db);
    reap_checkpoints(app, db);
}
