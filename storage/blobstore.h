/*
 * blobstore.h — object storage for checkpoint content, manifests and artifacts.
 *
 * Backends: `fs` (embedded default: files under a directory, atomic writes by rename) and `s3`
 * (any S3-compatible service: SigV4, presigned URLs, multipart for large objects). The
 * controller holds one `struct sbx_blobstore` and calls it from worker threads; every op is
 * BLOCKING (network or disk) and thread-safe; none may run on the event-loop thread.
 *
 * Keys: '/'-separated, [A-Za-z0-9._/-], 1..512 bytes, no "..", no leading '/'. They are built
 * from organization and database ids only (e.g. "orgs/<org>/blobs/<sha256>",
 * "orgs/<org>/artifacts/<id>") — never from names that came out of a sandbox or an archive.
 * sbx_blob_key_valid() checks the shape; backends refuse invalid keys with -EINVAL.
 *
 * Data moves through file descriptors so large objects are never held whole in memory:
 * put reads `len` bytes from `fd` (a pipe, socket or file; the caller gives the length and
 * the expected SHA-256 so the backend can send and verify a checksum), get writes the object
 * to `fd`.
 *
 * Errors: 0 on success or -errno: -ENOENT no such object, -EINVAL bad key/arguments,
 * -EBADMSG checksum mismatch (content corrupted in transit or at rest), -EIO the store failed
 * (after bounded retries), -ETIMEDOUT, -EACCES credentials refused. `err` (when given) gets one
 * line for logs (never a secret).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_BLOB_KEY_MAX 512

struct sbx_blobstore;

struct sbx_blob_info {
    uint64_t size;
    char sha256[65];          /* hex, "" if the backend does not know it */
    int64_t mtime;            /* unix seconds */
};

struct sbx_blobstore_ops {
    const char *name;         /* "fs", "s3" */
    /* Store `len` bytes read from fd under key; sha256_hex (64 hex chars, may be NULL) is the
     * expected digest: the backend verifies it (and S3 gets it as x-amz-checksum-sha256 /
     * x-amz-content-sha256) and fails with -EBADMSG on mismatch, leaving no object behind.
     * Overwrites atomically: readers see the old or the new object, never a mix. */
    int (*put)(struct sbx_blobstore *bs, const char *key, int fd, uint64_t len,
               const char *sha256_hex, char *err, size_t errlen);
    /* Write the object to fd. *ret_size (may be NULL) gets the size. */
    int (*get)(struct sbx_blobstore *bs, const char *key, int fd, uint64_t *ret_size, char *err,
               size_t errlen);
    int (*head)(struct sbx_blobstore *bs, const char *key, struct sbx_blob_info *ret);
    /* Deleting a missing object is not an error. */
    int (*del)(struct sbx_blobstore *bs, const char *key, char *err, size_t errlen);
    /* Keys under prefix (sorted); *ret is a malloc'd array of malloc'd strings (free with
     * sbx_blob_keys_free). Returns the count. */
    int (*list)(struct sbx_blobstore *bs, const char *prefix, char ***ret);
    /* A URL a plain HTTP client can GET for expires_s seconds (S3: a SigV4 presigned URL;
     * fs: a daemon URL with an HMAC token, verified by sbx_blobstore_fs_verify). *ret malloc'd. */
    int (*presign_get)(struct sbx_blobstore *bs, const char *key, unsigned expires_s,
                       char **ret);
    void (*free)(struct sbx_blobstore *bs);
};

struct sbx_blobstore {
    const struct sbx_blobstore_ops *ops;
    void *priv;
};

bool sbx_blob_key_valid(const char *key);
void sbx_blob_keys_free(char **keys, size_t n);
