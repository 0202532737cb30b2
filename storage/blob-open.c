/*
 * blob-open.c — sbx_blobstore_open(): the daemon's blob store from its configuration.
 *
 * This file reads struct sbx_config (controller/config.h, a plain struct: no code of the
 * controller is linked); the backends themselves take option structs so tools and tests use
 * them without a configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/macro.h"
#include "controller/config.h"
#include "storage/blob-internal.h"
#include "storage/blobstore.h"

#define SIGNING_KEY_FILE "blob-signing.key"

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

static int mkdir_p(const char *path, mode_t mode)
{
    _cleanup_free_ char *buf = xstrdup(path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
            *p = c;
            if (!c)
                return 0;
        }
    }
}

/* Reads the key file: 64 hex characters (+ optional newline); the key is those characters. */
static int read_key_file(int dirfd, char out[65])
{
    _cleanup_close_ int fd = openat(dirfd, SIGNING_KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077))
        return -EPERM; /* must be a regular file readable by its owner only */
    char buf[80];
    ssize_t n = sbx_blob_read_full(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return (int)n;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n != 64 || !sbx_blob_sha256_hex_valid(buf))
        return -EINVAL;
    memcpy(out, buf, 65);
    return 0;
}

/* Loads <state_dir>/blob-signing.key, creating it (atomically: temp file + link) when it does
 * not exist yet. Two daemons starting at once agree on one key. */
static int load_signing_key(const char *state_dir, char out[65], char *err, size_t errlen)
{
    int r = mkdir_p(state_dir, 0711);
    if (r < 0) {
        seterr(err, errlen, "cannot create the state directory %s: %s", state_dir, strerror(-r));
        return r;
    }
    _cleanup_close_ int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        r = -errno;
        seterr(err, errlen, "cannot open %s: %s", state_dir, strerror(-r));
        return r;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        r = read_key_file(dfd, out);
        if (r == 0)
            return 0;
        if (r != -ENOENT) {
            seterr(err, errlen, "%s/%s: %s", state_dir, SIGNING_KEY_FILE,
                   r == -EPERM ? "must be a regular file of mode 0600"
                   : r == -EINVAL ? "must hold 64 hex characters"
                                  : strerror(-r));
            return r;
        }
        uint8_t rnd[32];
        char hex[66], tmp[64];
        sbx_random_bytes(rnd, sizeof(rnd));
        sbx_hex(rnd, sizeof(rnd), hex);
        hex[64] = '\n';
        char suffix[17];
        sbx_random_base62(suffix, 16);
        snprintf(tmp, sizeof(tmp), ".%s.%s", SIGNING_KEY_FILE, suffix);
        int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            r = -errno;
            seterr(err, errlen, "cannot create %s/%s: %s", state_dir, tmp, strerror(-r));
            return r;
        }
        r = sbx_blob_write_all(fd, hex, 65);
        if (r == 0 && fsync(fd) < 0)
            r = -errno;
        close(fd);
        if (r == 0 && linkat(dfd, tmp, dfd, SIGNING_KEY_FILE, 0) < 0 && errno != EEXIST)
            r = -errno;
        unlinkat(dfd, tmp, 0);
        memset(hex, 0, sizeof(hex));
        memset(rnd, 0, sizeof(rnd));
        if (r < 0) {
            seterr(err, errlen, "cannot write %s/%s: %s", state_dir, SIGNING_KEY_FILE,
                   strerror(-r));
            return r;
        }
        (void)fsync(dfd);
        /* loop: read back what won (ours, or a concurrent daemon's) */
    }
    seterr(err, errlen, "%s/%s: cannot be created", state_dir, SIGNING_KEY_FILE);
    return -EIO;
}

int sbx_blobstore_open(const struct sbx_config *cfg, struct sbx_blobstore **ret, char *err,
                       size_t errlen)
{
    const char *kind = cfg->storage.kind;
    if (strcmp(kind, "s3") == 0) {
        if (!cfg->storage.s3.bucket[0]) {
            seterr(err, errlen, "storage.s3.bucket is required when storage.kind is s3");
            return -EINVAL;
        }
        struct sbx_blobstore_s3_opts o = {
            .endpoint = cfg->storage.s3.endpoint,
            .region = cfg->storage.s3.region,
            .bucket = cfg->storage.s3.bucket,
            .access_key_id = cfg->storage.s3.access_key_id,
            .secret_access_key = cfg->storage.s3.secret_access_key,
            .session_token = cfg->storage.s3.session_token,
            .path_style = cfg->storage.s3.path_style,
            .insecure = !cfg->storage.s3.verify_tls,
            .ca_file = cfg->storage.s3.ca_file,
            .multipart_threshold = cfg->storage.s3.multipart_threshold,
            .part_size = cfg->storage.s3.part_size,
        };
        return sbx_blobstore_s3_new(&o, ret, err, errlen);
    }
    if (strcmp(kind, "fs") != 0) {
        seterr(err, errlen, "unknown storage.kind '%s'", kind);
        return -EINVAL;
    }

    char keyhex[65];
    const void *sk;
    size_t sklen;
    if (cfg->storage.signing_key[0]) {
        sk = cfg->storage.signing_key;
        sklen = strlen(cfg->storage.signing_key);
        if (sklen < 16) {
            seterr(err, errlen, "storage.signing_key must be at least 16 characters");
            return -EINVAL;
        }
    } else {
        int r = load_signing_key(cfg->state_dir, keyhex, err, errlen);
        if (r < 0)
            return r;
        sk = keyhex;
        sklen = 64;
    }

    _cleanup_free_ char *dir = cfg->storage.fs_dir[0] ? xstrdup(cfg->storage.fs_dir)
                                                      : xasprintf("%s/blobs", cfg->state_dir);
    _cleanup_free_ char *url = NULL;
    if (cfg->storage.public_url[0]) {
        url = xstrdup(cfg->storage.public_url);
    } else {
        const char *a = cfg->listen.address;
        bool v6 = strchr(a, ':') != NULL && a[0] != '[';
        url = xasprintf("http://%s%s%s:%u", v6 ? "[" : "", a, v6 ? "]" : "",
                        (unsigned)cfg->listen.port);
    }
    struct sbx_blobstore_fs_opts o = {
        .dir = dir,
        .signing_key = sk,
        .signing_key_len = sklen,
        .public_url = url,
    };
    int r = sbx_blobstore_fs_new(&o, ret, err, errlen);
    memset(keyhex, 0, sizeof(keyhex));
    return r;
}
