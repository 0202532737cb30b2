/*
 * sandbox.h — the sandbox domain shared by the API handlers, the reaper and the reconciler:
 * database rows, lifecycle transitions, per-sandbox serialisation, and usage metering.
 *
 * Threads: worker threads and the background loops (each with its own struct db). Lifecycle
 * changes of one sandbox (create/stop/destroy in the runtime) are serialised with
 * sandbox_lock(), an in-process striped mutex keyed by the sandbox id.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "controller/app.h"

struct db;

/* Lock/unlock the lifecycle of one sandbox id (striped; never held across a network wait). */
void sandbox_lock(const char *id);
void sandbox_unlock(const char *id);

/* Inside the caller's org transaction: checks that sandbox `id` exists in the org (uuid-shaped,
 * visible through RLS) and is running. On failure sets the response (404 not_found for a
 * missing or foreign id, 409 sandbox_not_running with the status otherwise) and returns -errno.
 * ret_env (may be NULL) receives the sandbox's default env as a malloc'd NULL-terminated
 * KEY=VAL array (free with sandbox_env_free). */
int sandbox_require_running(struct handler_ctx *ctx, const char *id, char ***ret_env,
                            struct http_response *resp);
void sandbox_env_free(char **env);

/* Records a finished command (executions row + exec_count usage) inside the open
 * transaction. reason: NULL, "timeout", "oom", "signal". Returns 0 or -errno. */
int sandbox_record_exec(struct db *db, const char *org_id, const char *sandbox_id,
                        const char *command_text, int exit_code, const char *reason,
                        uint64_t duration_ms, uint64_t stdout_bytes, uint64_t stderr_bytes);

/* Appends a usage event inside the open transaction. */
int usage_record(struct db *db, const char *org_id, const char *sandbox_id, const char *kind,
                 double quantity);

/* SQL select list producing the Sandbox JSON object (with pg_row_to_json and
 * SANDBOX_JSON_TYPES). */
#define SANDBOX_COLUMNS                                                                           \
    "id AS sandbox_id, id, org_id, session_id, status, status_reason, template, cpus, memory, "   \
    "cpus_milli, memory_bytes, timeout_seconds, metadata, pod_ip, "                               \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, " \
    "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS started_at, " \
    "to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS expires_at, " \
    "to_char(stopped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS stopped_at, " \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') AS _cursor"
#define SANDBOX_JSON_TYPES "sssssssssiiijsssss-"

/* Ends a sandbox: status terminating → runtime stop (or destroy when remove_workspace) →
 * terminated with `reason`, metering the final usage. Uses its own transactions on db (none
 * may be open). Idempotent: an already terminated sandbox only gets the runtime cleanup.
 * Serialised by sandbox_lock(). Returns 0, -ENOENT (no such row in org), or -errno. */
int sandbox_terminate(struct app *app, struct db *db, const char *org_id, const char *id,
                      const char *reason, bool remove_workspace, bool mark_deleted);

/* Meters a running sandbox's usage since the last sample (sandbox seconds, CPU seconds,
 * memory GB-seconds, peak memory) inside an open transaction. */
int sandbox_meter(struct app *app, struct db *db, const char *org_id, const char *id);

/* Truncates s in place to at most max bytes without splitting a UTF-8 sequence. */
void utf8_truncate(char *s, size_t max);
