/*
 * blobstore.c — backend-independent helpers of the blob store (see blobstore.h).
 */
#include "storage/blobstore.h"

#include <stdlib.h>
#include <string.h>

bool sbx_blob_key_valid(const char *key)
{
    if (!key)
        return false;
    size_t n = strnlen(key, SBX_BLOB_KEY_MAX + 1);
    if (n == 0 || n > SBX_BLOB_KEY_MAX)
        return false;
    /* components: non-empty, not "." or "..", only [A-Za-z0-9._-] */
    const char *p = key;
    for (;;) {
        size_t len = strcspn(p, "/");
        if (len == 0)
            return false; /* leading '/', "//" or trailing '/' */
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        for (size_t i = 0; i < len; i++) {
            char c = p[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-'))
                return false;
        }
        if (p[len] == '\0')
            return true;
        p += len + 1;
    }
}

void sbx_blob_keys_free(char **keys, size_t n)
{
    if (!keys)
        return;
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

void sbx_blobstore_free(struct sbx_blobstore *bs)
{
    if (bs)
        bs->ops->free(bs);
}

/* ---- helpers of blob-internal.h --------------------------------------------------------- */

#include <errno.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/macro.h"
#include "storage/blob-internal.h"

bool sbx_blob_prefix_valid(const char *prefix)
{
    if (!prefix)
        return false;
    size_t n = strnlen(prefix, SBX_BLOB_KEY_MAX + 1);
    if (n > SBX_BLOB_KEY_MAX || prefix[0] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = prefix[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/'))
            return false;
    }
    return true;
}

bool sbx_blob_sha256_hex_valid(const char *hex)
{
    if (!hex || strlen(hex) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char c = hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void sbx_blob_keys_sort(char **keys, size_t n)
{
    if (n > 1)
        qsort(keys, n, sizeof(*keys), cmp_keys);
}

int sbx_blob_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

ssize_t sbx_blob_read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

char *sbx_blob_base64url(const void *data, size_t len)
{
    size_t n;
    char *s = sbx_base64_encode(data, len, &n);
    while (n > 0 && s[n - 1] == '=')
        s[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    return s;
}

int sbx_blob_base64url_decode(const char *in, size_t max, uint8_t **ret, size_t *ret_len)
{
    size_t n = strnlen(in, max * 2 + 8);
    if (n > (max + 2) / 3 * 4)
        return -E2BIG;
    _cleanup_free_ char *s = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '+' || c == '/' || c == '=')
            return -EINVAL; /* strict: url alphabet only, no padding */
        s[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    s[n] = '\0';
    return sbx_base64_decode(s, n, max, ret, ret_len);
}
