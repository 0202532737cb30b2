/*
 * blob-fs.c — the fs blob store backend: one file per object under a directory.
 *
 * DESIGN
 * An object "a/b/c" is the file <dir>/a/b/c (directories 0700, files 0600), so an operator can
 * inspect the store with ls. Keys are checked by sbx_blob_key_valid() (no "..", no empty or "."
 * component) and every open goes through openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) relative
 * to the directory's fd, so nothing outside <dir> is ever reached even if a symlink appeared.
 *
 * put writes "<parent>/.tmp~<random>" ('~' cannot occur in a key, so temp files never collide
 * with objects and list() skips them), hashing while it writes; on success it stores the
 * SHA-256 in the xattr user.sbx.sha256 (when the file system supports it), fsyncs the file,
 * renames it over the object and fsyncs the directory. Readers therefore see the old or the
 * new object, never a mix, and a crash leaves at most a temp file. A digest mismatch or a short
 * source unlinks the temp file: nothing is left behind. get re-hashes what it streams and
 * fails with -EBADMSG when the xattr says otherwise (corruption at rest).
 *
 * Empty directories are removed after del (best effort); put retries its mkdir/open when a
 * concurrent del removed the parent in between.
 *
 * Presigned URLs: <public_url>/api/v1/blobs/<token>, token = base64url(0x01 | key | 0x00 |
 * be64(expiry) | HMAC-SHA256(signing key, all before)). See sbx_blobstore_fs_verify().
 *
 * Limitation: a key cannot also be a "directory" of other keys ("a/b" and "a/b/c"); such a put
 * fails with -EEXIST. Keys built from ids never do this.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/macro.h"
#include "storage/blob-internal.h"
#include "storage/blobstore.h"

#define FS_BUF (1024 * 1024)
#define FS_XATTR "user.sbx.sha256"
#define FS_TMP_PREFIX ".tmp~"
#define FS_TOKEN_VERSION 0x01
#define PRESIGN_MAX_S (7u * 24 * 3600)

struct fs_store {
    struct sbx_blobstore bs;
    int dirfd;
    char *dir;
    uint8_t *sk;
    size_t sk_len;
    char *public_url;
};

static const struct sbx_blobstore_ops fs_ops;

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

static struct fs_store *FS(struct sbx_blobstore *bs)
{
    return (struct fs_store *)bs;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), falling back to openat(O_NOFOLLOW) on kernels
 * without openat2 (keys never hold "..", so the fallback stays beneath dirfd). */
static int open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    if (fd >= 0)
        return fd;
    if (errno != ENOSYS && errno != EPERM)
        return -errno;
    fd = openat(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW, mode);
    return fd < 0 ? -errno : fd;
}

/* mkdir -p of the directory part of key (relative to dirfd). */
static int mkdir_parents(int dirfd, const char *key)
{
    char path[SBX_BLOB_KEY_MAX + 1];
    snprintf(path, sizeof(path), "%s", key);
    for (char *p = path; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdirat(dirfd, path, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

/* Removes the now-empty parent directories of key (best effort, stops at the first
 * non-empty one). */
static void prune_parents(int dirfd, const char *key)
{
    char path[SBX_BLOB_KEY_MAX + 1];
    snprintf(path, sizeof(path), "%s", key);
    for (char *slash; (slash = strrchr(path, '/'));) {
        *slash = '\0';
        if (unlinkat(dirfd, path, AT_REMOVEDIR) < 0)
            return;
    }
}

static const char *leaf_of(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

/* Opens the parent directory of key, creating it; retried when a concurrent del pruned it. */
static int open_parent(struct fs_store *s, const char *key)
{
    const char *leaf = leaf_of(key);
    if (leaf == key)
        return open_beneath(s->dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
    _cleanup_free_ char *parent = xstrndup(key, (size_t)(leaf - key - 1));
    int r = -ENOENT;
    for (int attempt = 0; attempt < 5 && r == -ENOENT; attempt++) {
        r = mkdir_parents(s->dirfd, key);
        if (r == -ENOTDIR || r == -EEXIST)
            return -EEXIST;
        if (r < 0 && r != -ENOENT)
            return r;
        r = open_beneath(s->dirfd, parent, O_RDONLY | O_DIRECTORY, 0);
    }
    return r == -ENOTDIR ? -EEXIST : r;
}

static int fs_put(struct sbx_blobstore *bs, const char *key, int fd, uint64_t len,
                  const char *sha256_hex, char *err, size_t errlen)
{
    struct fs_store *s = FS(bs);
    if (!sbx_blob_key_valid(key)) {
        seterr(err, errlen, "invalid blob key");
        return -EINVAL;
    }
    if (sha256_hex && !sbx_blob_sha256_hex_valid(sha256_hex)) {
        seterr(err, errlen, "invalid sha256");
        return -EINVAL;
    }
    _cleanup_close_ int pfd = open_parent(s, key);
    if (pfd < 0) {
        seterr(err, errlen, "%s: cannot create the parent directory: %s", key,
               pfd == -EEXIST ? "a key with that name exists" : strerror(-pfd));
        return pfd;
    }
    char tmp[sizeof(FS_TMP_PREFIX) + 20];
    _cleanup_close_ int tfd = -1;
    for (int attempt = 0; attempt < 8 && tfd < 0; attempt++) {
        char rnd[17];
        sbx_random_base62(rnd, 16);
        snprintf(tmp, sizeof(tmp), FS_TMP_PREFIX "%s", rnd);
        tfd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (tfd < 0 && errno != EEXIST) {
            int r = -errno;
            seterr(err, errlen, "%s: cannot create a temporary file: %s", key, strerror(-r));
            return r;
        }
    }
    if (tfd < 0)
        return -EEXIST;

    int r = 0;
    _cleanup_free_ uint8_t *buf = xmalloc(FS_BUF);
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        abort();
    uint64_t left = len;
    while (left > 0) {
        size_t want = left < FS_BUF ? (size_t)left : FS_BUF;
        ssize_t got = sbx_blob_read_full(fd, buf, want);
        if (got < 0) {
            r = (int)got;
            seterr(err, errlen, "%s: reading the source: %s", key, strerror(-r));
            goto out_unlink_tmp;
        }
        if (got == 0) {
            r = -EIO;
            seterr(err, errlen, "%s: the source ended after %llu of %llu bytes", key,
                   (unsigned long long)(len - left), (unsigned long long)len);
            goto out_unlink_tmp;
        }
        EVP_DigestUpdate(md, buf, (size_t)got);
        r = sbx_blob_write_all(tfd, buf, (size_t)got);
        if (r < 0) {
            seterr(err, errlen, "%s: writing: %s", key, strerror(-r));
            goto out_unlink_tmp;
        }
        left -= (uint64_t)got;
    }
    uint8_t dig[32];
    char hex[65];
    EVP_DigestFinal_ex(md, dig, NULL);
    sbx_hex(dig, sizeof(dig), hex);
    if (sha256_hex && strcasecmp(hex, sha256_hex) != 0) {
        r = -EBADMSG;
        seterr(err, errlen, "%s: sha256 mismatch (expected %s, got %s)", key, sha256_hex, hex);
        goto out_unlink_tmp;
    }
    (void)fsetxattr(tfd, FS_XATTR, hex, 64, 0); /* optional: tmpfs before 6.6 has none */
    if (fsync(tfd) < 0) {
        r = -errno;
        seterr(err, errlen, "%s: fsync: %s", key, strerror(-r));
        goto out_unlink_tmp;
    }
    if (renameat(pfd, tmp, pfd, leaf_of(key)) < 0) {
        r = -errno;
        if (r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST)
            r = -EEXIST;
        seterr(err, errlen, "%s: rename: %s", key,
               r == -EEXIST ? "other keys exist below this key" : strerror(-r));
        goto out_unlink_tmp;
    }
    (void)fsync(pfd);
    return 0;

out_unlink_tmp:
    unlinkat(pfd, tmp, 0);
    return r;
}

static int open_object(struct fs_store *s, const char *key, struct stat *st)
{
    int fd = open_beneath(s->dirfd, key, O_RDONLY, 0);
    if (fd < 0)
        return fd == -ENOTDIR || fd == -ELOOP || fd == -EXDEV ? -ENOENT : fd;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

static void read_xattr_sha(int fd, char out[65])
{
    out[0] = '\0';
    ssize_t n = fgetxattr(fd, FS_XATTR, out, 64);
    if (n == 64) {
        out[64] = '\0';
        if (!sbx_blob_sha256_hex_valid(out))
            out[0] = '\0';
    } else {
        out[0] = '\0';
    }
}

static int fs_get(struct sbx_blobstore *bs, const char *key, int fd, uint64_t *ret_size,
                  char *err, size_t errlen)
{
    struct fs_store *s = FS(bs);
    if (!sbx_blob_key_valid(key)) {
        seterr(err, errlen, "invalid blob key");
        return -EINVAL;
    }
    struct stat st;
    _cleanup_close_ int ofd = open_object(s, key, &st);
    if (ofd < 0) {
        seterr(err, errlen, "%s: %s", key, ofd == -ENOENT ? "no such object" : strerror(-ofd));
        return ofd;
    }
    char want[65];
    read_xattr_sha(ofd, want);
    _cleanup_free_ uint8_t *buf = xmalloc(FS_BUF);
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        abort();
    uint64_t total = 0;
    for (;;) {
        ssize_t got = sbx_blob_read_full(ofd, buf, FS_BUF);
        if (got < 0) {
            seterr(err, errlen, "%s: read: %s", key, strerror((int)-got));
            return (int)got;
        }
        if (got == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)got);
        int r = sbx_blob_write_all(fd, buf, (size_t)got);
        if (r < 0) {
            seterr(err, errlen, "%s: writing to the destination: %s", key, strerror(-r));
            return r;
        }
        total += (uint64_t)got;
    }
    if (want[0]) {
        uint8_t dig[32];
        char hex[65];
        EVP_DigestFinal_ex(md, dig, NULL);
        sbx_hex(dig, sizeof(dig), hex);
        if (strcmp(hex, want) != 0) {
            seterr(err, errlen, "%s: sha256 mismatch on read (stored %s, read %s)", key, want,
                   hex);
            return -EBADMSG;
        }
    }
    if (ret_size)
        *ret_size = total;
    return 0;
}

static int fs_open_read(struct sbx_blobstore *bs, const char *key, uint64_t *ret_size)
{
    struct fs_store *s = FS(bs);
    if (!sbx_blob_key_valid(key))
        return -EINVAL;
    struct stat st;
    int ofd = open_object(s, key, &st);
    if (ofd < 0)
        return ofd;
    if (ret_size)
        *ret_size = (uint64_t)st.st_size;
    return ofd;
}

static int fs_head(struct sbx_blobstore *bs, const char *key, struct sbx_blob_info *ret)
{
    struct fs_store *s = FS(bs);
    if (!sbx_blob_key_valid(key))
        return -EINVAL;
    struct stat st;
    _cleanup_close_ int ofd = open_object(s, key, &st);
    if (ofd < 0)
        return ofd;
    if (ret) {
        ret->size = (uint64_t)st.st_size;
        ret->mtime = (int64_t)st.st_mtime;
        read_xattr_sha(ofd, ret->sha256);
    }
    return 0;
}

static int fs_del(struct sbx_blobstore *bs, const char *key, char *err, size_t errlen)
{
    struct fs_store *s = FS(bs);
    if (!sbx_blob_key_valid(key)) {
        seterr(err, errlen, "invalid blob key");
        return -EINVAL;
    }
    /* the parent is resolved beneath the store; the leaf is never followed by unlinkat */
    const char *leaf = leaf_of(key);
    _cleanup_close_ int pfd = -1;
    if (leaf == key) {
        pfd = open_beneath(s->dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
    } else {
        _cleanup_free_ char *parent = xstrndup(key, (size_t)(leaf - key - 1));
        pfd = open_beneath(s->dirfd, parent, O_RDONLY | O_DIRECTORY, 0);
    }
    if (pfd < 0)
        return pfd == -ENOENT || pfd == -ENOTDIR ? 0 : pfd;
    if (unlinkat(pfd, leaf, 0) < 0) {
        int r = -errno;
        if (r == -ENOENT || r == -EISDIR || r == -EPERM) /* EPERM: Linux's answer for a dir */
            return 0;
        seterr(err, errlen, "%s: unlink: %s", key, strerror(-r));
        return r;
    }
    prune_parents(s->dirfd, key);
    return 0;
}

struct keyvec {
    char **v;
    size_t n, cap;
};

static void keyvec_push(struct keyvec *kv, char *k)
{
    if (kv->n == kv->cap) {
        kv->cap = kv->cap ? kv->cap * 2 : 64;
        kv->v = xrealloc(kv->v, kv->cap * sizeof(*kv->v));
    }
    kv->v[kv->n++] = k;
}

/* Walks the directory `rel` ("" = the root; else ends with '/'), adding keys that start
 * with prefix. */
static int walk(int dirfd, const char *rel, const char *prefix, struct keyvec *kv, unsigned depth)
{
    if (depth > SBX_BLOB_KEY_MAX / 2)
        return -ELOOP;
    int fd = open_beneath(dirfd, rel[0] ? rel : ".", O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd == -ENOENT || fd == -ENOTDIR ? 0 : fd;
    _cleanup_(closedirp) DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    size_t plen = strlen(prefix), rlen = strlen(rel);
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '~'))
            continue;
        size_t nlen = strlen(name);
        if (rlen + nlen + 1 > SBX_BLOB_KEY_MAX)
            continue;
        char path[SBX_BLOB_KEY_MAX + 2];
        snprintf(path, sizeof(path), "%s%s", rel, name);
        unsigned char type = de->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_REG) {
            if (strncmp(path, prefix, plen) == 0 && sbx_blob_key_valid(path))
                keyvec_push(kv, xstrdup(path));
        } else if (type == DT_DIR) {
            size_t l = strlen(path);
            path[l] = '/';
            path[l + 1] = '\0';
            /* descend only where keys can still start with prefix */
            if (strncmp(path, prefix, MIN(l + 1, plen)) != 0)
                continue;
            int r = walk(dirfd, path, prefix, kv, depth + 1);
            if (r < 0)
                return r;
        }
    }
    return errno ? -errno : 0;
}

static int fs_list(struct sbx_blobstore *bs, const char *prefix, char ***ret)
{
    struct fs_store *s = FS(bs);
    if (!prefix)
        prefix = "";
    if (!sbx_blob_prefix_valid(prefix))
        return -EINVAL;
    /* start at the deepest directory named completely by the prefix */
    const char *slash = strrchr(prefix, '/');
    _cleanup_free_ char *base = xstrndup(prefix, slash ? (size_t)(slash - prefix + 1) : 0);
    size_t bl = strlen(base);
    if (bl > 0) {
        /* a base with an empty, "." or ".." component matches no valid key */
        base[bl - 1] = '\0';
        bool ok = sbx_blob_key_valid(base);
        base[bl - 1] = '/';
        if (!ok) {
            *ret = xcalloc(1, sizeof(char *));
            return 0;
        }
    }
    struct keyvec kv = { 0 };
    int r = walk(s->dirfd, base, prefix, &kv, 0);
    if (r < 0) {
        sbx_blob_keys_free(kv.v, kv.n);
        return r;
    }
    if (kv.n > INT32_MAX) {
        sbx_blob_keys_free(kv.v, kv.n);
        return -E2BIG;
    }
    sbx_blob_keys_sort(kv.v, kv.n);
    *ret = kv.v ? kv.v : xcalloc(1, sizeof(char *));
    return (int)kv.n;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int fs_presign_get(struct sbx_blobstore *bs, const char *key, unsigned expires_s,
                          char **ret)
{
    struct fs_store *s = FS(bs);
    if (!sbx_blob_key_valid(key) || expires_s == 0 || expires_s > PRESIGN_MAX_S)
        return -EINVAL;
    size_t klen = strlen(key);
    size_t n = 1 + klen + 1 + 8;
    uint8_t raw[1 + SBX_BLOB_KEY_MAX + 1 + 8 + 32];
    raw[0] = FS_TOKEN_VERSION;
    memcpy(raw + 1, key, klen);
    raw[1 + klen] = 0;
    put_be64(raw + 2 + klen, (uint64_t)time(NULL) + expires_s);
    sbx_hmac_sha256(s->sk, s->sk_len, raw, n, raw + n);
    _cleanup_free_ char *tok = sbx_blob_base64url(raw, n + 32);
    *ret = xasprintf("%s/api/v1/blobs/%s", s->public_url, tok);
    return 0;
}

int sbx_blobstore_fs_verify(struct sbx_blobstore *bs, const char *token, char **ret_key)
{
    if (!bs || bs->ops != &fs_ops)
        return -EOPNOTSUPP;
    struct fs_store *s = FS(bs);
    if (!token)
        return -EINVAL;
    _cleanup_free_ uint8_t *raw = NULL;
    size_t n;
    int r = sbx_blob_base64url_decode(token, 1 + SBX_BLOB_KEY_MAX + 1 + 8 + 32, &raw, &n);
    if (r < 0)
        return -EINVAL;
    if (n < 1 + 1 + 1 + 8 + 32 || raw[0] != FS_TOKEN_VERSION)
        return -EINVAL;
    size_t body = n - 32, klen = body - 1 - 1 - 8;
    if (raw[1 + klen] != 0 || memchr(raw + 1, 0, klen))
        return -EINVAL;
    uint8_t mac[32];
    sbx_hmac_sha256(s->sk, s->sk_len, raw, body, mac);
    if (!sbx_ct_equal(mac, sizeof(mac), raw + body, 32))
        return -EACCES;
    _cleanup_free_ char *key = xstrndup((const char *)raw + 1, klen);
    if (!sbx_blob_key_valid(key))
        return -EINVAL;
    uint64_t exp = get_be64(raw + 2 + klen);
    if ((uint64_t)time(NULL) > exp)
        return -EKEYEXPIRED;
    *ret_key = TAKE_PTR(key);
    return 0;
}

static void fs_free(struct sbx_blobstore *bs)
{
    struct fs_store *s = FS(bs);
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->dir);
    if (s->sk)
        OPENSSL_cleanse(s->sk, s->sk_len);
    free(s->sk);
    free(s->public_url);
    free(s);
}

static const struct sbx_blobstore_ops fs_ops = {
    .name = "fs",
    .put = fs_put,
    .get = fs_get,
    .head = fs_head,
    .del = fs_del,
    .list = fs_list,
    .presign_get = fs_presign_get,
    .open_read = fs_open_read,
    .free = fs_free,
};

/* mkdir -p with mode 0700 for the components this call creates. */
static int mkdir_p(const char *path)
{
    _cleanup_free_ char *buf = xstrdup(path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -errno;
            *p = c;
            if (!c)
                return 0;
        }
    }
}

int sbx_blobstore_fs_new(const struct sbx_blobstore_fs_opts *o, struct sbx_blobstore **ret,
                         char *err, size_t errlen)
{
    if (!o || !o->dir || !o->dir[0]) {
        seterr(err, errlen, "fs blob store: no directory");
        return -EINVAL;
    }
    if (!o->signing_key || o->signing_key_len < 16) {
        seterr(err, errlen, "fs blob store: the signing key must be at least 16 bytes");
        return -EINVAL;
    }
    const char *url = o->public_url && o->public_url[0] ? o->public_url : "http://127.0.0.1:8080";
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        seterr(err, errlen, "fs blob store: public URL must start with http:// or https://");
        return -EINVAL;
    }
    int r = mkdir_p(o->dir);
    if (r < 0) {
        seterr(err, errlen, "fs blob store: cannot create %s: %s", o->dir, strerror(-r));
        return r;
    }
    int dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        r = -errno;
        seterr(err, errlen, "fs blob store: cannot open %s: %s", o->dir, strerror(-r));
        return r;
    }
    struct fs_store *s = xcalloc(1, sizeof(*s));
    s->bs.ops = &fs_ops;
    s->bs.priv = s;
    s->dirfd = dfd;
    s->dir = xstrdup(o->dir);
    s->sk = xmalloc(o->signing_key_len);
    memcpy(s->sk, o->signing_key, o->signing_key_len);
    s->sk_len = o->signing_key_len;
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/')
        ul--;
    s->public_url = xstrndup(url, ul);
    *ret = &s->bs;
    return 0;
}
