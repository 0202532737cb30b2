/*
 * checkpoint.h — the checkpoint and artifact domain shared by api-checkpoints.c,
 * api-artifacts.c, the from_checkpoint path of sandbox create and the reaper: walking a
 * sandbox's /workspace from INSIDE the sandbox, manifests, content refcounts and garbage
 * collection, restore, and blob store error mapping. See docs/internals/CHECKPOINTS.md.
 *
 * Threads: worker threads and the reaper, each with its own struct db. Everything blocks
 * (runtime, store, database); nothing runs on the event-loop thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/app.h"
#include "controller/http.h"

struct db;
struct sbx_blobstore;

/* One manifest entry. Paths are relative to /workspace, normalised (no "", ".", ".."). */
struct ckpt_entry {
    char *path;
    char type;          /* 'f' file, 'd' directory, 'l' symlink */
    unsigned mode;      /* permission bits (& 07777) */
    uint64_t size;      /* files */
    char sha256[65];    /* files: lower-case hex */
    char *target;       /* symlinks */
};

struct ckpt_manifest {
    struct ckpt_entry *e;
    size_t n;
    size_t skipped;     /* walk only: special files (fifo, socket, device) left out */
};

void ckpt_manifest_free(struct ckpt_manifest *m);

/* Lists /workspace of a running sandbox by running find(1) inside it (NUL-separated, strictly
 * parsed), sorted by path. -E2BIG when it has more than max_entries entries, -EIO when the
 * walk failed (err says why), -ENOENT sandbox not running. */
int ckpt_walk(struct sbx_runtime *rt, const char *sid, uint32_t max_entries,
              struct ckpt_manifest *ret, char *err, size_t errlen);

/* Streams a file of the sandbox through SHA-256 (open_read: refuses paths leaving
 * /workspace). ret_size: bytes actually read; -EFBIG past max. */
int ckpt_hash_file(struct sbx_runtime *rt, const char *sid, const char *path, uint64_t max,
                   uint64_t *ret_size, char ret_sha[65]);
/* SHA-256 of everything readable from fd (from its current offset). */
int ckpt_hash_fd(int fd, uint64_t max, uint64_t *ret_size, char ret_sha[65]);

/* Runs fn(ctx, i) for i in [0, n) on up to CKPT_PARALLEL threads (the caller's included);
 * stops at the first error and returns it (*ret_failed: its index), else 0. The runtime and
 * blob store ops are thread-safe; each job uses only its own entry. */
#define CKPT_PARALLEL 8
typedef int (*ckpt_job_fn)(void *ctx, size_t i);
int ckpt_parallel(size_t n, ckpt_job_fn fn, void *ctx, size_t *ret_failed);

/* Manifest (de)serialisation: {"version":1,"entries":[…]}. parse validates every entry. */
char *ckpt_manifest_json(const struct ckpt_manifest *m, size_t *ret_len);
int ckpt_manifest_parse(const char *data, size_t len, struct ckpt_manifest *ret);

/* Memory <-> store helpers (through a memfd). get: -EFBIG over max. */
int ckpt_store_put_mem(struct sbx_blobstore *bs, const char *key, const void *data, size_t len,
                       char *err, size_t errlen);
int ckpt_store_get_mem(struct sbx_blobstore *bs, const char *key, size_t max, char **ret,
                       size_t *ret_len, char *err, size_t errlen);
/* Loads and verifies (sha256 == checksum) a checkpoint's manifest. */
int ckpt_manifest_load(struct sbx_blobstore *bs, const char *key, const char *checksum,
                       struct ckpt_manifest *ret);

/* Sets the response for a blob store error (503 storage_unavailable, 502 …). */
void ckpt_store_error(struct http_response *resp, int r, const char *what);

/* Drops a checkpoint row (pending or ready) with its content references and (when it may exist)
 * its manifest object, in a transaction of its own on db (none may be open): a store failure
 * rolls everything back (-EIO …, retry later). Then garbage-collects content of the org nobody
 * references (a failure there is left to the reaper). Returns 0, -ENOENT, -EBUSY (an org
 * template promoted from it references it; nothing changed), or -errno. */
int ckpt_release(struct app *app, struct db *db, const char *org_id, const char *ckpt_id,
                 bool manifest_may_exist);
/* Deletes every blob of the org whose refcount is 0 (row lock held while the object is
 * deleted from the store). Own transactions. Returns objects deleted or -errno. */
int ckpt_gc(struct app *app, struct db *db, const char *org_id);

/* Result of writing a manifest into a sandbox. */
struct ckpt_restore_result {
    unsigned files, symlinks, dirs;
    uint64_t bytes;
    char **skipped;          /* kept because overwrite=false (at most CKPT_MAX_REPORTED) */
    size_t n_skipped, total_skipped;
    char **unsafe;           /* symlinks not created: they would point outside /workspace */
    size_t n_unsafe;
};
#define CKPT_MAX_REPORTED 1000
void ckpt_restore_result_free(struct ckpt_restore_result *r);

/* Writes the manifest's entries into a running sandbox (mkdir_p, open_write + store get,
 * symlinks via ln inside the sandbox when they stay inside /workspace). With overwrite false,
 * existing paths are kept and listed in skipped. On failure sets the response and returns
 * -errno (files written so far stay). */
int ckpt_restore_into(struct app *app, const char *org_id, const char *sid,
                      const struct ckpt_manifest *m, bool overwrite,
                      struct ckpt_restore_result *ret, struct http_response *resp);

/* For sandbox create's from_checkpoint: looks the checkpoint up in the open org transaction.
 * On failure sets 404 / 503 and returns -errno. *ret_* malloc'd. ret_env: the saved env
 * (JSON object text) or NULL. */
int ckpt_lookup(struct db *db, const char *ckpt_id, char **ret_manifest_key,
                char **ret_checksum, char **ret_env, struct http_response *resp);
/* Restores checkpoint ckpt_id (already looked up) into sandbox sid; no transaction may be open.
 * On failure writes a line for the API user into why. */
int ckpt_restore_checkpoint(struct app *app, const char *org_id, const char *sid,
                            const char *manifest_key, const char *checksum, char *why,
                            size_t whylen);

/* Reaper step: expired artifacts, stale pending checkpoints, unreferenced content. */
void ckpt_reap(struct app *app, struct db *db);
