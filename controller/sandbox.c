/*
 * sandbox.c — sandbox rows, per-sandbox serialisation and usage metering (see sandbox.h).
 * Worker threads and background loops.
 */
#include "controller/sandbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/events.h"
#include "runtime/runtime.h"
#include "storage/db.h"

#define LOCK_STRIPES 64

static pthread_mutex_t stripes[LOCK_STRIPES] = {
    [0 ... LOCK_STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t *stripe(const char *id)
{
    return &stripes[sbx_crc32(id, strlen(id)) % LOCK_STRIPES];
}

void sandbox_lock(const char *id)
{
    pthread_mutex_lock(stripe(id));
}

void sandbox_unlock(const char *id)
{
    pthread_mutex_unlock(stripe(id));
}

void sandbox_env_free(char **env)
{
    if (!env)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

/* jsonb object of strings → KEY=VAL array. */
static char **env_from_json(const char *json)
{
    yajl_val v = yajl_tree_parse(json, NULL, 0);
    size_t n = v && YAJL_IS_OBJECT(v) ? v->u.object.len : 0;
    char **env = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        yajl_val e = v->u.object.values[i];
        if (YAJL_IS_STRING(e))
            env[k++] = xasprintf("%s=%s", v->u.object.keys[i], e->u.string);
    }
    yajl_tree_free(v);
    return env;
}

int sandbox_require_running(struct handler_ctx *ctx, const char *id, char ***ret_env,
                            struct http_response *resp)
{
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such sandbox");
        return -ENOENT;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT status, env FROM sandboxes WHERE id = $1 AND deleted_at IS NULL", 1,
                     (const char *[]){ id }, &res);
    if (r < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        return r;
    }
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such sandbox");
        return -ENOENT;
    }
    const char *status = PQgetvalue(res, 0, 0);
    if (strcmp(status, "running") != 0) {
        http_error(resp, 409, "sandbox_not_running", "the sandbox is %s", status);
        return -EBUSY;
    }
    if (!ctx->app->rt) {
        http_error(resp, 503, "runtime_unavailable", "the sandbox runtime is not available");
        return -EIO;
    }
    if (ret_env)
        *ret_env = env_from_json(PQgetvalue(res, 0, 1));
    return 0;
}

int usage_record(struct db *db, const char *org_id, const char *sandbox_id, const char *kind,
                 double quantity)
{
    char q[64];
    snprintf(q, sizeof(q), "%.6f", quantity);
    return db_query(db,
                    "INSERT INTO usage_events (org_id, sandbox_id, kind, quantity) "
                    "VALUES ($1, $2, $3, $4)",
                    4, (const char *[]){ org_id, sandbox_id, kind, q }, NULL);
}

int sandbox_record_exec(struct db *db, const char *org_id, const char *sandbox_id,
                        const char *command_text, int exit_code, const char *reason,
                        uint64_t duration_ms, uint64_t stdout_bytes, uint64_t stderr_bytes)
{
    char code[16], dur[32], out[32], err[32];
    snprintf(code, sizeof(code), "%d", exit_code);
    snprintf(dur, sizeof(dur), "%llu", (unsigned long long)duration_ms);
    snprintf(out, sizeof(out), "%llu", (unsigned long long)stdout_bytes);
    snprintf(err, sizeof(err), "%llu", (unsigned long long)stderr_bytes);
    const char *status = !reason                         ? "completed"
                         : strcmp(reason, "timeout") == 0 ? "timeout"
                                                          : "killed";
    /* Command text is capped: it is for the audit trail, not for replay. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s", command_text ? command_text : "");
    utf8_truncate(cmd, sizeof(cmd) - 1);
    /* One round trip: the execution row and its exec_count usage event together. */
    int r = db_query(db,
                     "WITH e AS (INSERT INTO executions (org_id, sandbox_id, command, status, "
                     "    exit_code, reason, duration_ms, stdout_bytes, stderr_bytes, "
                     "    finished_at, started_at) "
                     "  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), "
                     "    now() - make_interval(secs => $7::bigint / 1000.0)) RETURNING 1) "
                     "INSERT INTO usage_events (org_id, sandbox_id, kind, quantity) "
                     "SELECT $1, $2, 'exec_count', 1 FROM e",
                     9,
                     (const char *[]){ org_id, sandbox_id, cmd, status, code, reason, dur, out,
                                       err },
                     NULL);
    return r < 0 ? r : 0;
}

void utf8_truncate(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < max)
        return;
    n = MIN(n, max);
    /* Back off over continuation bytes, then drop the lead byte of the cut sequence unless
     * the sequence is complete. */
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i > 0 && ((unsigned char)s[i - 1] & 0x80)) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t need = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : 4;
        if (n - (i - 1) < need)
            n = i - 1;
    }
    s[n] = '\0';
}

/* resource.warning (≥ 80 % of the memory limit) / resource.critical (≥ 95 %): at most one
 * event per level until usage drops below the level again (sandboxes.resource_alert). */
static int resource_alert(struct db *db, const char *org_id, const char *id, uint64_t used)
{
    char u[32];
    snprintf(u, sizeof(u), "%llu", (unsigned long long)used);
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(db,
                     "WITH cur AS (SELECT id, resource_alert AS old, memory_bytes, "
                     "    CASE WHEN memory_bytes > 0 AND $2::bigint * 100 >= memory_bytes * 95 "
                     "           THEN 'critical' "
                     "         WHEN memory_bytes > 0 AND $2::bigint * 100 >= memory_bytes * 80 "
                     "           THEN 'warning' END AS lvl "
                     "    FROM sandboxes WHERE id = $1 FOR UPDATE) "
                     "UPDATE sandboxes s SET resource_alert = cur.lvl FROM cur "
                     " WHERE s.id = cur.id AND cur.lvl IS DISTINCT FROM cur.old "
                     "RETURNING cur.lvl, cur.old, cur.memory_bytes",
                     2, (const char *[]){ id, u }, &res);
    if (r <= 0)
        return r;
    if (PQgetisnull(res, 0, 0))
        return 0; /* dropped below: re-arm */
    const char *lvl = PQgetvalue(res, 0, 0);
    /* warning → critical announces critical; critical → warning is a drop, no event */
    if (!PQgetisnull(res, 0, 1) && strcmp(lvl, "warning") == 0)
        return 0;
    const char *limit = PQgetvalue(res, 0, 2);
    _cleanup_free_ char *data = xasprintf(
        "{\"resource\":\"memory\",\"used_bytes\":%s,\"limit_bytes\":%s,\"level\":\"%s\"}", u,
        limit && *limit ? limit : "0", lvl ? lvl : "warning");
    return events_emit(db, org_id, id,
                       strcmp(lvl, "critical") == 0 ? "resource.critical" : "resource.warning",
                       data);
}

int sandbox_meter(struct app *app, struct db *db, const char *org_id, const char *id)
{
    struct sbx_sandbox_stats st = { 0 };
    bool have_stats = app->rt && app->rt->ops->stats(app->rt, id, &st) == 0;
    char cpu[32], peak[32];
    snprintf(cpu, sizeof(cpu), "%llu", (unsigned long long)st.cpu_usec);
    snprintf(peak, sizeof(peak), "%llu", (unsigned long long)st.memory_peak_bytes);
    _cleanup_pgres_ PGresult *res = NULL;
    /* One statement computes the deltas and advances the markers, so a sample is never
     * counted twice (the row lock serialises concurrent meters). */
    int r = db_query(db,
                     "WITH prev AS (SELECT id, COALESCE(metered_until, started_at) AS since, "
                     "    metered_cpu_usec, memory_bytes FROM sandboxes "
                     "    WHERE id = $1 AND started_at IS NOT NULL FOR UPDATE) "
                     "UPDATE sandboxes s SET metered_until = now(), "
                     "    metered_cpu_usec = GREATEST(s.metered_cpu_usec, $2::bigint), "
                     "    memory_peak_bytes = GREATEST(s.memory_peak_bytes, $3::bigint) "
                     "  FROM prev WHERE s.id = prev.id "
                     "RETURNING GREATEST(extract(epoch FROM now() - prev.since), 0), "
                     "    GREATEST($2::bigint - prev.metered_cpu_usec, 0) / 1e6, "
                     "    COALESCE(prev.memory_bytes, 0) / 1073741824.0",
                     3, (const char *[]){ id, have_stats ? cpu : "0", have_stats ? peak : "0" },
                     &res);
    if (r <= 0)
        return r;
    double secs = strtod(PQgetvalue(res, 0, 0), NULL);
    double cpu_s = strtod(PQgetvalue(res, 0, 1), NULL);
    double mem_gb = strtod(PQgetvalue(res, 0, 2), NULL);
    if (secs > 0 && (r = usage_record(db, org_id, id, "sandbox_seconds", secs)) < 0)
        return r;
    if (secs > 0 && mem_gb > 0 &&
        (r = usage_record(db, org_id, id, "memory_gb_seconds", secs * mem_gb)) < 0)
        return r;
    if (cpu_s > 0 && (r = usage_record(db, org_id, id, "cpu_seconds", cpu_s)) < 0)
        return r;
    if (have_stats && st.memory_peak_bytes > 0)
        r = usage_record(db, org_id, id, "memory_peak_bytes", (double)st.memory_peak_bytes);
    if (r >= 0 && have_stats)
        r = resource_alert(db, org_id, id, st.memory_bytes);
    return r < 0 ? r : 0;
}

int sandbox_terminate(struct app *app, struct db *db, const char *org_id, const char *id,
                      const char *reason, bool remove_workspace, bool mark_deleted)
{
    int r;
    sandbox_lock(id);
    /* 1. Announce: terminating (unless already over). */
    _cleanup_pgres_ PGresult *res = NULL;
    if ((r = db_begin(db, org_id)) < 0)
        goto out;
    r = db_query(db,
                 "UPDATE sandboxes SET status = CASE WHEN status IN ('creating', 'running') "
                 "    THEN 'terminating' ELSE status END "
                 " WHERE id = $1 AND deleted_at IS NULL RETURNING status",
                 1, (const char *[]){ id }, &res);
    if (r == 0)
        r = -ENOENT;
    if (r < 0 || (r = sandbox_meter(app, db, org_id, id)) < 0 || (r = db_commit(db)) < 0) {
        db_rollback(db);
        goto out;
    }
    bool announce = strcmp(PQgetvalue(res, 0, 0), "terminating") == 0;

    /* 2. The runtime: kill everything (and remove the workspace for delete). */
    int rr = 0;
    if (app->rt)
        rr = remove_workspace ? app->rt->ops->destroy(app->rt, id)
                              : app->rt->ops->stop(app->rt, id);
    if (rr < 0)
        log_error_errno(rr, "sandbox %s: runtime cleanup failed", id);

    /* 3. Record the end. A failed cleanup is an error state the reconciler retries. */
    if ((r = db_begin(db, org_id)) < 0)
        goto out;
    const char *final_status = rr < 0 ? "error" : "terminated";
    r = db_query(db,
                 "UPDATE sandboxes SET "
                 "  status = CASE WHEN status = 'terminating' THEN $2 ELSE status END, "
                 "  status_reason = CASE WHEN status = 'terminating' THEN $3 "
                 "      ELSE status_reason END, "
                 "  stopped_at = COALESCE(stopped_at, now()), "
                 "  deleted_at = CASE WHEN $4 THEN now() ELSE deleted_at END "
                 " WHERE id = $1",
                 4,
                 (const char *[]){ id, final_status,
                                   rr < 0 ? "runtime cleanup failed" : reason,
                                   mark_deleted ? "true" : "false" },
                 NULL);
    if (r > 0 && announce) {
        const char *ev = rr < 0                                  ? "sandbox.error"
                         : reason && strcmp(reason, "timeout") == 0 ? "sandbox.timeout"
                                                                    : "sandbox.stopped";
        _cleanup_free_ char *data =
            events_data_reason(rr < 0 ? "runtime cleanup failed" : reason);
        int er = events_emit(db, org_id, id, ev, data);
        if (er < 0)
            r = er;
    }
    if (r < 0 || (r = db_commit(db)) < 0)
        db_rollback(db);
    else
        r = rr < 0 ? rr : 0;
out:
    sandbox_unlock(id);
    return r;
}
