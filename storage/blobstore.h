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
    /* Optional (NULL when the backend has no local files; fs only): a read-only fd of the
     * object (a consistent snapshot: objects are replaced by rename) and its size, for
     * streaming it without a copy. The stored sha256 is NOT verified on this path. Returns
     * the fd, or -ENOENT / -EINVAL / -errno. */
    int (*open_read)(struct sbx_blobstore *bs, const char *key, uint64_t *ret_size);
    void (*free)(struct sbx_blobstore *bs);
};

struct sbx_blobstore {
    const struct sbx_blobstore_ops *ops;
    void *priv;
};

bool sbx_blob_key_valid(const char *key);
void sbx_blob_keys_free(char **keys, size_t n);

/* ---- additions (storage work, issue 4) --------------------------------------------------- */

struct sbx_config;

/* Calls bs->ops->free(bs); NULL is accepted. */
void sbx_blobstore_free(struct sbx_blobstore *bs);

/* The daemon's store, chosen by cfg->storage.kind ("fs" | "s3"): fs under storage.fs_dir
 * ("" = <state_dir>/blobs; created 0700), presigned daemon URLs under storage.public_url
 * ("" = http://<listen.address>:<listen.port>) signed with storage.signing_key ("" = a key
 * generated once into <state_dir>/blob-signing.key, mode 0600); s3 from storage.s3.*
 * (credentials fall back to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN).
 * Does no network I/O (an unreachable S3 endpoint is found on the first call).
 * Returns 0, -EINVAL (bad setting, message in err), or the -errno of the state files. */
int sbx_blobstore_open(const struct sbx_config *cfg, struct sbx_blobstore **ret, char *err,
                       size_t errlen);

/* fs backend, without the daemon's config (tools, tests). */
struct sbx_blobstore_fs_opts {
    const char *dir;             /* created (0700) when missing */
    const void *signing_key;     /* HMAC key of presigned URLs; >= 16 bytes */
    size_t signing_key_len;
    const char *public_url;      /* "http://host:port", no trailing '/' needed */
};
int sbx_blobstore_fs_new(const struct sbx_blobstore_fs_opts *o, struct sbx_blobstore **ret,
                         char *err, size_t errlen);

/* Checks a token from an fs presigned URL ("<public_url>/api/v1/blobs/<token>"): base64url
 * of 0x01 | key | 0x00 | be64(expiry unix s) | HMAC-SHA256(signing key, everything before).
 * Constant-time MAC comparison, then the expiry. *ret_key (malloc'd) is the key on success.
 * -EINVAL malformed token, -EACCES bad signature, -EKEYEXPIRED expired, -EOPNOTSUPP bs is not
 * an fs store. The HTTP route answers 403 to all of them (404 when the object is gone). */
int sbx_blobstore_fs_verify(struct sbx_blobstore *bs, const char *token, char **ret_key);

/* s3 backend, without the daemon's config (tools, tests). Strings are copied. */
struct sbx_blobstore_s3_opts {
    const char *endpoint;          /* "http(s)://host[:port]"; NULL/"" = https://s3.<region>.amazonaws.com */
    const char *region;            /* NULL/"" = us-east-1 */
    const char *bucket;            /* required */
    const char *access_key_id;     /* NULL/"" = $AWS_ACCESS_KEY_ID */
    const char *secret_access_key; /* NULL/"" = $AWS_SECRET_ACCESS_KEY */
    const char *session_token;     /* NULL/"" = $AWS_SESSION_TOKEN (if the key came from env) */
    bool path_style;               /* true: <endpoint>/<bucket>/<key>; false: <bucket>.<host>/<key> */
    bool insecure;                 /* skip TLS verification (tests against self-signed endpoints) */
    const char *ca_file;           /* NULL/"" = system CAs */
    uint64_t multipart_threshold;  /* 0 = 16 MiB; objects >= this use multipart upload */
    uint64_t part_size;            /* 0 = 8 MiB; >= 5 MiB (S3's minimum), <= 5 GiB */
    unsigned max_attempts;         /* 0 = 4 (1 + 3 retries with backoff) */
    unsigned connect_timeout_ms;   /* 0 = 5000 */
    unsigned low_speed_timeout_s;  /* 0 = 30: a transfer slower than 1 KiB/s for this long fails */
};
int sbx_blobstore_s3_new(const struct sbx_blobstore_s3_opts *o, struct sbx_blobstore **ret,
                         char *err, size_t errlen);
