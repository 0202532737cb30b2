/*
 * loops.c — reaper and reconciler threads (see loops.h).
 *
 * DESIGN
 * Reaper, every reaper.interval: ends sandboxes whose expires_at passed (reason "timeout"),
 * and every METER_EVERY_S meters running sandboxes' usage.
 * Reconciler, at start, every reconciler.interval and — on the k8s runtime — as soon as the
 * pod watch reports a sandbox's pod failed or gone (on_runtime_event; coalesced): lists what the runtime has FIRST, then
 * the active rows (a sandbox is created in the runtime only after its 'creating' row
 * committed, so any runtime sandbox started before the list has a row visible to the later
 * query). Then, per row:
 *   running, runtime not RUNNING            → error "sandbox process exited" (Kubernetes: the
 *                                             pod's typed reason; without one, the API server
 *                                             is asked first: the watch may lag), leftovers
 *                                             cleaned
 *   creating, older than CREATE_GRACE_S     → running if the runtime has it (daemon died between
 *                                             the runtime create and the status update), else
 *                                             error "creation did not complete"
 *   creating, Kubernetes                    → the pod decides at once: Ready → running; a typed
 *                                             reason (image_pull, ...) → error with it; a pod
 *                                             still pending waits out the pod start timeout
 *   terminating                             → finish the termination
 * Adopting a row as running emits sandbox.ready (reason "adopted"); the creating API call, if
 * still alive, finds the row no longer 'creating' and reports it as it is.
 * and per runtime sandbox without an active row → stopped (orphan; the workspace is kept).
 * Every action takes the sandbox's lifecycle lock, so it never races an API call. Only rows
 * whose runtime_ref is this daemon's instance are considered: daemons sharing a database
 * leave each other's sandboxes alone.
 */
#include "controller/loops.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "controller/app.h"
#include "controller/checkpoint.h"
#include "controller/events.h"
#include "controller/leader.h"
#include "controller/sandbox.h"
#include "controller/testmode.h"
#include "k8s/k8s-runtime.h"
#include "runtime/runtime.h"
#include "storage/db.h"

#define CREATE_GRACE_S 60.0
#define METER_EVERY_S 30
#define CKPT_REAP_EVERY_S 2

#define COALESCE_MS 200 /* a watch-requested pass waits this long for more events */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stop_requested;
static bool reconcile_requested; /* a watch saw a sandbox fail or vanish (k8s runtime) */
static pthread_t reaper_thread, reconciler_thread;
static bool started;

static void deadline_in(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Sleeps up to secs, or (early != NULL) until *early is set — then clears it and waits
 * COALESCE_MS more so a burst of events makes one pass. False when the loops must stop. */
static bool nap(uint64_t secs, bool *early)
{
    struct timespec until;
    deadline_in(&until, (secs ? secs : 1) * 1000);
    pthread_mutex_lock(&lock);
    while (!stop_requested && !(early && *early))
        if (pthread_cond_timedwait(&wake, &lock, &until) == ETIMEDOUT)
            break;
    if (early && *early && !stop_requested) {
        deadline_in(&until, COALESCE_MS);
        while (!stop_requested && pthread_cond_timedwait(&wake, &lock, &until) != ETIMEDOUT)
            ;
        *early = false;
    }
    bool go_on = !stop_requested;
    pthread_mutex_unlock(&lock);
    return go_on;
}

/* The k8s runtime's watch thread: a sandbox's pod failed or vanished (a typed reason: oom,
 * evicted, deleted, ...). The reconciler runs a pass now instead of at its next interval.
 * Never blocks beyond this module's mutex (held only briefly). */
static void on_runtime_event(const char *id, enum sbx_state st, const char *reason, void *ud)
{
    (void)id;
    (void)ud;
    if (st == SBX_STATE_RUNNING || !reason || !reason[0])
        return;
    pthread_mutex_lock(&lock);
    reconcile_requested = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
}

static struct db *connect_db(struct app *app, const char *who)
{
    struct db *db = NULL;
    char err[256];
    if (db_open(app->cfg.database.url, &db, err, sizeof(err)) < 0) {
        log_warn("%s: database unavailable: %s", who, err);
        return NULL;
    }
    leader_attach(db); /* every transaction of the loops is fenced (leader.h) */
    return db;
}

static void reap_expired(struct app *app, struct db *db)
{
    _cleanup_pgres_ PGresult *res = NULL;
    if (db_query(db,
                 "SELECT id, org_id FROM sbx_sandboxes_expired(now(), 10000) "
                 " WHERE runtime_ref = $1 LIMIT 100",
                 1, (const char *[]){ app->instance }, &res) < 0)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0), *org = PQgetvalue(res, i, 1);
        int r = sandbox_terminate(app, db, org, id, "timeout", false, false);
        struct sbx_log_field f[] = { LF_STR("sandbox_id", id), LF_STR("org_id", org),
                                     LF_INT("result", r) };
        sbx_log_fields(SBX_LOG_INFO, "sandbox expired", f, ARRAY_SIZE(f));
    }
}

static void meter_running(struct app *app, struct db *db)
{
    _cleanup_pgres_ PGresult *res = NULL;
    if (db_query(db,
                 "SELECT id, org_id FROM sbx_sandboxes_active() "
                 " WHERE status = 'running' AND runtime_ref = $1",
                 1, (const char *[]){ app->instance }, &res) < 0)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0), *org = PQgetvalue(res, i, 1);
        if (db_begin(db, org) < 0)
            return;
        if (sandbox_meter(app, db, org, id) < 0 || db_commit(db) < 0)
            db_rollback(db);
    }
}

static void *reaper_main(void *arg)
{
    struct app *app = arg;
    struct db *db = NULL;
    uint64_t last_meter = sbx_now_ms();
    uint64_t last_ckpt = 0;
    do {
        if (!db)
            db = connect_db(app, "reaper");
        if (!db || !leader_is_leader())
            continue; /* only the leader runs the loops (leader.h) */
        reap_expired(app, db);
        testmode_reap(app, db); /* test tenants, test-data retention, limit tables (2 s) */
        if (sbx_now_ms() - last_ckpt >= CKPT_REAP_EVERY_S * 1000) {
            ckpt_reap(app, db); /* expired artifacts, stale pending checkpoints, content gc */
            last_ckpt = sbx_now_ms();
        }
        if (sbx_now_ms() - last_meter >= METER_EVERY_S * 1000) {
            meter_running(app, db);
            last_meter = sbx_now_ms();
        }
    } while (nap(app->cfg.reaper.interval, NULL));
    db_close(db);
    return NULL;
}

static enum sbx_state runtime_state(const struct sbx_sandbox_info *infos, int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (strcmp(infos[i].id, id) == 0)
            return infos[i].state;
    return SBX_STATE_ABSENT;
}

/* Sets a row's status if it still has `from`; returns rows changed or -errno. */
static int set_status(struct db *db, const char *org, const char *id, const char *from,
                      const char *to, const char *reason)
{
    if (db_begin(db, org) < 0)
        return -EIO;
    int r = db_query(db,
                     "UPDATE sandboxes SET status = $3, status_reason = $4, "
                     "  started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, now()) "
                     "      ELSE started_at END, "
                     "  metered_until = CASE WHEN $3 = 'running' "
                     "      THEN COALESCE(metered_until, now()) ELSE metered_until END, "
                     "  stopped_at = CASE WHEN $3 IN ('error', 'terminated') THEN now() "
                     "      ELSE stopped_at END "
                     " WHERE id = $1 AND status = $2",
                     4, (const char *[]){ id, from, to, reason }, NULL);
    if (r > 0 && (strcmp(to, "error") == 0 || strcmp(to, "running") == 0)) {
        _cleanup_free_ char *data = events_data_reason(reason ? reason : "adopted");
        int er = events_emit(db, org, id, strcmp(to, "error") == 0 ? "sandbox.error"
                                                                   : "sandbox.ready", data);
        if (er < 0)
            r = er;
    }
    if (r < 0 || db_commit(db) < 0) {
        db_rollback(db);
        return r < 0 ? r : -EIO;
    }
    return r;
}

static void log_action(const char *what, const char *id, const char *org)
{
    struct sbx_log_field f[] = { LF_STR("sandbox_id", id), LF_STR("org_id", org),
                                 LF_STR("action", what) };
    sbx_log_fields(SBX_LOG_INFO, "reconciler", f, ARRAY_SIZE(f));
}

void reconcile_once(struct app *app, struct db *db)
{
    if (!app->rt)
        return;
    struct sbx_sandbox_info *infos = NULL;
    int n = app->rt->ops->list(app->rt, &infos);
    if (n < 0) {
        log_error_errno(n, "reconciler: listing the runtime failed");
        return;
    }
    _cleanup_pgres_ PGresult *rows = NULL;
    if (db_query(db,
                 "SELECT id, org_id, status, age_seconds FROM sbx_sandboxes_active() "
                 " WHERE runtime_ref = $1",
                 1, (const char *[]){ app->instance }, &rows) < 0) {
        free(infos);
        return;
    }
    for (int i = 0; i < PQntuples(rows); i++) {
        const char *id = PQgetvalue(rows, i, 0), *org = PQgetvalue(rows, i, 1);
        const char *status = PQgetvalue(rows, i, 2);
        double age = strtod(PQgetvalue(rows, i, 3), NULL);
        enum sbx_state st = runtime_state(infos, n, id);
        if (strcmp(status, "terminating") == 0) {
            log_action("finish termination", id, org);
            sandbox_terminate(app, db, org, id, "stopped", false, false);
            continue;
        }
        sandbox_lock(id);
        enum sbx_state now_st = st;
        app->rt->ops->status(app->rt, id, &now_st, NULL); /* re-check under the lock */
        /* Kubernetes: the typed reason the pod watch saw (deleted, oom, evicted, ...) */
        bool kube = strcmp(app->rt->ops->name, "kubernetes") == 0;
        char why[32] = "";
        if (kube)
            k8s_runtime_reason(app->rt, id, why, sizeof(why));
        /* A running row whose pod this daemon's watch shows not running, for no reason it saw:
         * the cache may lag behind the replica that created it — the API server decides. */
        if (kube && strcmp(status, "running") == 0 && now_st != SBX_STATE_RUNNING && !why[0] &&
            k8s_runtime_status_live(app->rt, id, &now_st) < 0) {
            sandbox_unlock(id); /* cannot tell now: next pass */
            continue;
        }
        /* a pending pod (listed, not running, no reason) may still start */
        double grace = kube && st == SBX_STATE_EXITED && !why[0]
                           ? K8S_RUNTIME_CREATE_TIMEOUT_S + CREATE_GRACE_S
                           : CREATE_GRACE_S;
        if (strcmp(status, "running") == 0 && now_st != SBX_STATE_RUNNING) {
            if (set_status(db, org, id, "running", "error",
                           why[0] ? why : "sandbox process exited") > 0) {
                log_action("lost: marked error", id, org);
                app->rt->ops->stop(app->rt, id);
            }
        } else if (strcmp(status, "creating") == 0 && now_st == SBX_STATE_RUNNING &&
                   (kube || age > CREATE_GRACE_S)) {
            if (set_status(db, org, id, "creating", "running", NULL) > 0)
                log_action("adopted", id, org);
        } else if (strcmp(status, "creating") == 0 && (kube && why[0])) {
            if (set_status(db, org, id, "creating", "error", why) > 0) {
                log_action("failed create: marked error", id, org);
                app->rt->ops->stop(app->rt, id);
            }
        } else if (strcmp(status, "creating") == 0 && age > grace) {
            if (set_status(db, org, id, "creating", "error", "creation did not complete") > 0) {
                log_action("stale create: marked error", id, org);
                app->rt->ops->stop(app->rt, id);
            }
        }
        sandbox_unlock(id);
    }
    /* Runtime sandboxes without an active row are orphans. */
    for (int k = 0; k < n; k++) {
        if (infos[k].state != SBX_STATE_RUNNING && infos[k].state != SBX_STATE_EXITED)
            continue;
        bool known = false;
        for (int i = 0; i < PQntuples(rows) && !known; i++)
            known = strcmp(PQgetvalue(rows, i, 0), infos[k].id) == 0;
        if (known)
            continue;
        sandbox_lock(infos[k].id);
        log_action("orphan: stopped", infos[k].id, NULL);
        app->rt->ops->stop(app->rt, infos[k].id);
        sandbox_unlock(infos[k].id);
    }
    free(infos);
}

static void *reconciler_main(void *arg)
{
    struct app *app = arg;
    struct db *db = NULL;
    do {
        if (!db)
            db = connect_db(app, "reconciler");
        if (db && leader_is_leader())
            reconcile_once(app, db);
    } while (nap(app->cfg.reconciler.interval, &reconcile_requested));
    db_close(db);
    return NULL;
}

void loops_start(struct app *app)
{
    if (app->rt && strcmp(app->rt->ops->name, "kubernetes") == 0)
        k8s_runtime_set_callback(app->rt, on_runtime_event, NULL);
    if (pthread_create(&reaper_thread, NULL, reaper_main, app) != 0 ||
        pthread_create(&reconciler_thread, NULL, reconciler_main, app) != 0)
        abort();
    started = true;
}

void loops_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&lock);
    stop_requested = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(reaper_thread, NULL);
    pthread_join(reconciler_thread, NULL);
    started = false;
}
