/*
 * leader.c — Lease-based leader election with a database fence (see leader.h and
 * docs/internals/LEADER.md).
 *
 * DESIGN
 * One campaign thread, waking every leader.renew_interval (a follower that watches a Lease
 * about to expire wakes at its expiry instead):
 *   GET the Lease →
 *     held by us and we lead         → PUT renewTime (resourceVersion CAS); a 409 means
 *                                      someone else wrote it: step down at once
 *     absent / holder empty / expired / held by our own identity but we do not lead
 *                                    → acquire: epoch = max(leaseTransitions, db epoch) + 1,
 *                                      PUT (or POST) the Lease with it (CAS), then bump
 *                                      leader_epochs with a compare-and-set on the epoch read;
 *                                      only when both succeeded do we lead
 *     otherwise                      → follow
 * Expiry is judged on OUR clock: a Lease is expired once its resourceVersion has not changed
 * for leader.lease_duration since we first saw that version (no clock comparison with the
 * holder). The leader stops acting once its last successful renewal was SENT longer than
 * lease_duration ago, which is no later than any other replica can judge it expired.
 * Correctness does not depend on timing: every transaction the loops open is fenced
 * (leader_fence), and the bump of a new leader waits for in-flight fenced transactions.
 */
#include "controller/leader.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/app.h"
#include "controller/metrics.h"
#include "k8s/k8s.h"
#include "storage/db.h"

static bool enabled;
static struct app *the_app;
static struct k8s_client *client;
static char ns[254], lease_name[254], identity[256];
static uint64_t duration_ms, renew_ms;

static atomic_bool leading;           /* we hold the Lease with epoch `cur_epoch` */
static atomic_uint_fast64_t cur_epoch;
static atomic_uint_fast64_t deadline_ms; /* monotonic: stop acting at this time */

static pthread_t thread;
static bool started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stop_requested;

static void set_gauge(bool on)
{
    metrics_gauge_set("sandboxd_leader",
                      "1 while this replica runs the background loops (leader election).",
                      on ? 1 : 0);
    metrics_gauge_set("sandboxd_leader_epoch", "Epoch of this replica's current leadership.",
                      on ? (double)atomic_load(&cur_epoch) : 0);
}

static void step_down(const char *why)
{
    if (!atomic_exchange(&leading, false))
        return;
    set_gauge(false);
    struct sbx_log_field f[] = { LF_STR("identity", identity), LF_STR("reason", why),
                                 LF_INT("epoch", (long long)atomic_load(&cur_epoch)) };
    sbx_log_fields(SBX_LOG_WARN, "leader: leadership lost", f, ARRAY_SIZE(f));
}

bool leader_is_leader(void)
{
    if (!enabled)
        return true;
    if (!atomic_load(&leading))
        return false;
    if (sbx_now_ms() >= atomic_load(&deadline_ms)) {
        step_down("lease not renewed within the lease duration");
        return false;
    }
    return true;
}

uint64_t leader_epoch(void)
{
    return enabled && atomic_load(&leading) ? atomic_load(&cur_epoch) : 0;
}

int leader_fence(struct db *db)
{
    if (!enabled)
        return 0;
    uint64_t mine = atomic_load(&cur_epoch);
    if (!leader_is_leader())
        return -ESTALE;
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(db, "SELECT epoch FROM leader_epochs WHERE name = $1 FOR SHARE", 1,
                     (const char *[]){ lease_name }, &res);
    if (r < 0)
        return r;
    uint64_t theirs = r > 0 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    if (theirs != mine) {
        char why[128];
        snprintf(why, sizeof(why), "fenced: the database holds epoch %" PRIu64 ", ours is %" PRIu64,
                 theirs, mine);
        step_down(why);
        return -ESTALE;
    }
    return 0;
}

static int fence_hook(struct db *db, void *arg)
{
    (void)arg;
    return leader_fence(db);
}

void leader_attach(struct db *db)
{
    if (enabled && db)
        db_set_begin_hook(db, fence_hook, NULL);
}

int leader_init(struct app *app, char *err, size_t errlen)
{
    const struct sbx_config *cfg = &app->cfg;
    the_app = app;
    enabled = cfg->leader.enabled;
    if (!enabled) {
        set_gauge(true);
        return 0;
    }
    duration_ms = cfg->leader.lease_duration * 1000;
    renew_ms = cfg->leader.renew_interval * 1000;
    if (renew_ms >= duration_ms)
        renew_ms = duration_ms / 3 ? duration_ms / 3 : 1;
    snprintf(lease_name, sizeof(lease_name), "%s", cfg->leader.lease_name);
    const char *pod = getenv("POD_NAME");
    if (pod && *pod) {
        snprintf(identity, sizeof(identity), "%s", pod);
    } else {
        char host[200] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(identity, sizeof(identity), "%s-%ld", host[0] ? host : "sandboxd", (long)getpid());
    }
    struct k8s_config *kc = NULL;
    char kerr[256] = "";
    int r = k8s_config_auto(cfg->k8s.kubeconfig[0] ? cfg->k8s.kubeconfig : NULL, &kc, kerr,
                            sizeof(kerr));
    if (r < 0) {
        snprintf(err, errlen, "leader election: %s", kerr);
        return r;
    }
    struct k8s_client_opts o = {
        .timeout_ms = (unsigned)(renew_ms < 10000 ? renew_ms : 10000),
        .connect_timeout_ms = (unsigned)(renew_ms < 5000 ? renew_ms : 5000),
        .max_retries = K8S_NO_RETRIES, /* the campaign loop is the retry */
    };
    r = k8s_client_new(kc, &o, &client, kerr, sizeof(kerr));
    if (r < 0) {
        snprintf(err, errlen, "leader election: %s", kerr);
        return r;
    }
    snprintf(ns, sizeof(ns), "%s",
             cfg->k8s.namespace[0] ? cfg->k8s.namespace : k8s_client_namespace(client));
    set_gauge(false);
    return 0;
}

/* ---- the Lease ------------------------------------------------------------------------- */

static void now_micro(char *out, size_t n)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    sbx_format_rfc3339(tv.tv_sec, tv.tv_usec, out, n);
}

/* Lease JSON; rv NULL for a create; holder NULL clears it (release). */
static char *lease_json(const char *rv, const char *holder, uint64_t transitions,
                        const char *acquire_time)
{
    char now[40];
    now_micro(now, sizeof(now));
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "apiVersion", "coordination.k8s.io/v1");
    sbx_jgen_kstr(g, "kind", "Lease");
    sbx_jgen_key(g, "metadata");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "name", lease_name);
    sbx_jgen_kstr(g, "namespace", ns);
    if (rv)
        sbx_jgen_kstr(g, "resourceVersion", rv);
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "spec");
    yajl_gen_map_open(g);
    if (holder)
        sbx_jgen_kstr(g, "holderIdentity", holder);
    sbx_jgen_kint(g, "leaseDurationSeconds", (long long)(duration_ms / 1000));
    if (acquire_time)
        sbx_jgen_kstr(g, "acquireTime", acquire_time[0] ? acquire_time : now);
    sbx_jgen_kstr(g, "renewTime", now);
    sbx_jgen_kint(g, "leaseTransitions", (long long)transitions);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return sbx_jgen_take(g, NULL);
}

static const char *jstr(yajl_val obj, const char *a, const char *b)
{
    const char *path[] = { a, b, NULL };
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

static uint64_t jnum(yajl_val obj, const char *a, const char *b)
{
    const char *path[] = { a, b, NULL };
    yajl_val v = yajl_tree_get(obj, path, yajl_t_number);
    return v && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) > 0 ? (uint64_t)YAJL_GET_INTEGER(v) : 0;
}

/* What we last saw of the Lease, to judge expiry on our own clock. */
static char seen_rv[64];
static uint64_t seen_at_ms;
static char acquired_at[40];

static struct db *campaign_db;

static int db_epoch(uint64_t *ret)
{
    char err[256];
    if (!campaign_db && db_open(the_app->cfg.database.url, &campaign_db, err, sizeof(err)) < 0) {
        log_warn("leader: database unavailable: %s", err);
        campaign_db = NULL;
        return -EIO;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(campaign_db, "SELECT epoch FROM leader_epochs WHERE name = $1", 1,
                     (const char *[]){ lease_name }, &res);
    if (r < 0)
        return r;
    *ret = r > 0 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    return 0;
}

/* The compare-and-set: epoch old → new, in one statement (one transaction). 1 = done,
 * 0 = someone else moved it, -errno. */
static int db_bump(uint64_t old, uint64_t new_epoch)
{
    char o[32], n[32];
    snprintf(o, sizeof(o), "%" PRIu64, old);
    snprintf(n, sizeof(n), "%" PRIu64, new_epoch);
    const char *p[] = { lease_name, o, n, identity };
    if (old == 0)
        return db_query(campaign_db,
                        "INSERT INTO leader_epochs (name, epoch, holder) VALUES ($1, $3::bigint, $4) "
                        "ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch, "
                        "  holder = EXCLUDED.holder, updated_at = now() "
                        "  WHERE leader_epochs.epoch = $2::bigint",
                        4, p, NULL);
    return db_query(campaign_db,
                    "UPDATE leader_epochs SET epoch = $3::bigint, holder = $4, updated_at = now() "
                    " WHERE name = $1 AND epoch = $2::bigint",
                    4, p, NULL);
}

static void acquire(yajl_val lease)
{
    uint64_t dbe;
    if (db_epoch(&dbe) < 0)
        return;
    uint64_t lt = lease ? jnum(lease, "spec", "leaseTransitions") : 0;
    uint64_t e = (lt > dbe ? lt : dbe) + 1;
    uint64_t sent = sbx_now_ms();
    acquired_at[0] = '\0';
    _cleanup_free_ char *body =
        lease_json(lease ? k8s_obj_resource_version(lease) : NULL, identity, e, acquired_at);
    struct k8s_error kerr = { 0 };
    _cleanup_json_ yajl_val got = NULL;
    int r = lease ? k8s_lease_update(client, ns, lease_name, body, &got, &kerr)
                  : k8s_lease_create(client, ns, body, &got, &kerr);
    if (r < 0) {
        if (kerr.type != K8S_CONFLICT && kerr.type != K8S_ALREADY_EXISTS)
            log_warn("leader: acquiring the Lease %s/%s failed: %s", ns, lease_name,
                     kerr.message);
        return; /* lost the race, or the API is unreachable: try again next round */
    }
    const char *at = jstr(got, "spec", "acquireTime");
    snprintf(acquired_at, sizeof(acquired_at), "%s", at ? at : "");
    const char *rv = k8s_obj_resource_version(got);
    snprintf(seen_rv, sizeof(seen_rv), "%s", rv ? rv : "");
    seen_at_ms = sbx_now_ms();
    /* The Lease is ours; now the fence. Waits for the old leader's in-flight fenced
     * transactions (they hold the row FOR SHARE). */
    r = db_bump(dbe, e);
    if (r <= 0) {
        log_warn("leader: Lease acquired but the epoch compare-and-set %" PRIu64 " -> %" PRIu64
                 " failed (%s); retrying",
                 dbe, e, r < 0 ? db_last_error(campaign_db)->message : "moved concurrently");
        return;
    }
    atomic_store(&cur_epoch, e);
    atomic_store(&deadline_ms, sent + duration_ms);
    atomic_store(&leading, true);
    set_gauge(true);
    struct sbx_log_field f[] = { LF_STR("identity", identity), LF_INT("epoch", (long long)e),
                                 LF_STR("lease", lease_name), LF_STR("namespace", ns) };
    sbx_log_fields(SBX_LOG_INFO, "leader: acquired", f, ARRAY_SIZE(f));
}

static void renew(yajl_val lease)
{
    uint64_t sent = sbx_now_ms();
    _cleanup_free_ char *body = lease_json(k8s_obj_resource_version(lease), identity,
                                           atomic_load(&cur_epoch), acquired_at);
    struct k8s_error kerr = { 0 };
    _cleanup_json_ yajl_val got = NULL;
    int r = k8s_lease_update(client, ns, lease_name, body, &got, &kerr);
    if (r < 0) {
        if (kerr.type == K8S_CONFLICT || kerr.type == K8S_NOT_FOUND)
            step_down("the Lease was changed by someone else");
        else
            log_warn("leader: renewing the Lease failed: %s", kerr.message);
        return; /* leader_is_leader() gives up at the deadline */
    }
    const char *rv = k8s_obj_resource_version(got);
    snprintf(seen_rv, sizeof(seen_rv), "%s", rv ? rv : "");
    seen_at_ms = sbx_now_ms();
    atomic_store(&deadline_ms, sent + duration_ms);
}

/* One round; returns how long to sleep (ms). */
static uint64_t campaign_once(void)
{
    struct k8s_error kerr = { 0 };
    _cleanup_json_ yajl_val lease = NULL;
    int r = k8s_lease_get(client, ns, lease_name, &lease, &kerr);
    if (r < 0 && kerr.type != K8S_NOT_FOUND) {
        log_warn("leader: reading the Lease %s/%s failed: %s", ns, lease_name, kerr.message);
        return renew_ms;
    }
    if (r < 0) {
        step_down("the Lease is gone");
        acquire(NULL);
        return renew_ms;
    }
    const char *holder = jstr(lease, "spec", "holderIdentity");
    const char *rv = k8s_obj_resource_version(lease);
    uint64_t now = sbx_now_ms();
    if (!rv || strcmp(rv, seen_rv) != 0) {
        snprintf(seen_rv, sizeof(seen_rv), "%s", rv ? rv : "");
        seen_at_ms = now;
    }
    bool mine = holder && strcmp(holder, identity) == 0;
    if (mine && atomic_load(&leading)) {
        renew(lease);
        return renew_ms;
    }
    if (!mine && atomic_load(&leading))
        step_down("the Lease names another holder");
    uint64_t dur = jnum(lease, "spec", "leaseDurationSeconds") * 1000;
    if (!dur)
        dur = duration_ms;
    bool expired = now - seen_at_ms >= dur;
    if (!holder || !holder[0] || mine || expired) {
        acquire(lease);
        return renew_ms;
    }
    uint64_t left = seen_at_ms + dur - now;
    return left + 50 < renew_ms ? left + 50 : renew_ms;
}

static bool nap_ms(uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&lock);
    while (!stop_requested)
        if (pthread_cond_timedwait(&wake, &lock, &until) == ETIMEDOUT)
            break;
    bool go_on = !stop_requested;
    pthread_mutex_unlock(&lock);
    return go_on;
}

static void *campaign_main(void *arg)
{
    (void)arg;
    struct sbx_log_field f[] = { LF_STR("identity", identity), LF_STR("lease", lease_name),
                                 LF_STR("namespace", ns) };
    sbx_log_fields(SBX_LOG_INFO, "leader: campaigning", f, ARRAY_SIZE(f));
    uint64_t sleep_ms;
    do
        sleep_ms = campaign_once();
    while (nap_ms(sleep_ms));
    return NULL;
}

void leader_start(struct app *app)
{
    (void)app;
    if (!enabled)
        return;
    if (pthread_create(&thread, NULL, campaign_main, NULL) != 0)
        abort();
    started = true;
}

/* Graceful release: clear holderIdentity so a follower takes over at once. */
static void release(void)
{
    if (!atomic_load(&leading))
        return;
    atomic_store(&leading, false);
    set_gauge(false);
    struct k8s_error kerr = { 0 };
    _cleanup_json_ yajl_val lease = NULL;
    if (k8s_lease_get(client, ns, lease_name, &lease, &kerr) < 0)
        return;
    const char *holder = jstr(lease, "spec", "holderIdentity");
    if (!holder || strcmp(holder, identity) != 0)
        return;
    _cleanup_free_ char *body = lease_json(k8s_obj_resource_version(lease), NULL,
                                           jnum(lease, "spec", "leaseTransitions"), acquired_at);
    int r = k8s_lease_update(client, ns, lease_name, body, NULL, &kerr);
    struct sbx_log_field f[] = { LF_STR("identity", identity), LF_INT("result", r) };
    sbx_log_fields(SBX_LOG_INFO, "leader: released", f, ARRAY_SIZE(f));
}

void leader_stop(void)
{
    if (!enabled)
        return;
    if (started) {
        pthread_mutex_lock(&lock);
        stop_requested = true;
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&lock);
        pthread_join(thread, NULL);
        started = false;
    }
    release();
    db_close(campaign_db);
    campaign_db = NULL;
    k8s_client_free(client);
    client = NULL;
}
