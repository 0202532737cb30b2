/*
 * ratelimit.c — token buckets in memory, merged with Postgres (see ratelimit.h and
 * docs/internals/LIMITS.md).
 *
 * DESIGN
 * A bucket holds `tokens` (refilled at `rate` per second up to `burst`) and `used`, what this
 * process took since the last merge. The merge (sbx_ratelimit_sync, one statement for all
 * dirty buckets) refills the stored row from its own updated_at, subtracts `used`, and
 * returns the level, which replaces the local one (minus what was taken while the statement
 * ran). N replicas can therefore overspend by at most N × (rate × interval) per interval
 * before they see each other's consumption; a restart loses at most one interval of
 * consumption. The table is pruned by the reaper (rows idle for a day are full anyway).
 */
#include "controller/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/app.h"
#include "controller/plans.h"
#include "storage/db.h"

#define NBUCKETS 4096
#define MAX_ENTRIES 200000
#define IDLE_EVICT_S 3600.0

struct bucket {
    struct bucket *next;
    char org[37];
    char name[80];
    double tokens, rate, burst;
    double used;        /* taken since the last merge */
    double last;        /* monotonic seconds of the last refill */
    double last_use;
    bool loaded;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct bucket *table[NBUCKETS];
static size_t n_entries;

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static bool stop_requested, started;
static pthread_t thread;

static double now_s(void)
{
    return (double)sbx_now_us() / 1e6;
}

static unsigned hash(const char *org, const char *name)
{
    unsigned h = 2166136261u;
    for (const char *p = org; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % NBUCKETS;
}

/* Under lock. */
static struct bucket *find(const char *org, const char *name, bool create)
{
    unsigned h = hash(org, name);
    for (struct bucket *b = table[h]; b; b = b->next)
        if (strcmp(b->org, org) == 0 && strcmp(b->name, name) == 0)
            return b;
    if (!create || n_entries >= MAX_ENTRIES)
        return NULL;
    struct bucket *b = xcalloc(1, sizeof(*b));
    snprintf(b->org, sizeof(b->org), "%s", org);
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->next = table[h];
    table[h] = b;
    n_entries++;
    return b;
}

static void refill(struct bucket *b, double rate, double burst, double t)
{
    b->rate = rate;
    b->burst = burst;
    if (t > b->last)
        b->tokens += (t - b->last) * rate;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last = t;
}

/* Loads the stored level of a bucket not seen before (merge with used = 0). */
static void load(struct db *db, const char *org, const char *name, double rate, double burst,
                 double *ret_tokens)
{
    char o[64], k[128], rr[32], bb[32];
    snprintf(o, sizeof(o), "{%s}", org);
    snprintf(k, sizeof(k), "{\"%s\"}", name);
    snprintf(rr, sizeof(rr), "{%.6f}", rate);
    snprintf(bb, sizeof(bb), "{%.6f}", burst);
    const char *params[] = { o, k, "{0}", rr, bb };
    _cleanup_pgres_ PGresult *res = NULL;
    if (db_query(db, "SELECT tokens FROM sbx_ratelimit_sync($1, $2, $3, $4, $5)", 5, params,
                 &res) > 0)
        *ret_tokens = strtod(PQgetvalue(res, 0, 0), NULL);
}

static bool ensure_loaded(struct db *db, const char *org, const char *name, double rate,
                          double burst)
{
    pthread_mutex_lock(&lock);
    struct bucket *b = find(org, name, false);
    bool loaded = b && b->loaded;
    pthread_mutex_unlock(&lock);
    if (loaded)
        return true;
    double tokens = burst;
    if (db)
        load(db, org, name, rate, burst, &tokens);
    pthread_mutex_lock(&lock);
    b = find(org, name, true);
    if (b && !b->loaded) {
        b->tokens = tokens;
        b->last = now_s();
        b->loaded = true;
    }
    pthread_mutex_unlock(&lock);
    return b != NULL;
}

static void fill_result(const struct bucket *b, const char *scope, struct ratelimit_result *r)
{
    r->applied = true;
    r->scope = scope;
    r->limit = (uint32_t)b->burst;
    r->remaining = b->tokens > 0 ? (uint32_t)floor(b->tokens) : 0;
    r->reset_s = b->rate > 0 ? (uint32_t)ceil((b->burst - b->tokens) / b->rate) : 0;
    r->window_s = b->rate > 0 ? (uint32_t)ceil(b->burst / b->rate) : 0;
    if (r->window_s == 0)
        r->window_s = 1;
}

void ratelimit_take(struct app *app, struct db *db, const char *org_id, const char *principal,
                    const struct plan_limits *plan, struct ratelimit_result *ret)
{
    *ret = (struct ratelimit_result){ .allowed = true };
    if (!app->cfg.ratelimit.enabled)
        return;
    char kname[80];
    snprintf(kname, sizeof(kname), "key:%s", principal && *principal ? principal : "-");
    bool use_key = plan->rate_limit > 0, use_org = plan->org_rate_limit > 0;
    if (use_key)
        use_key = ensure_loaded(db, org_id, kname, plan->rate_limit, plan->rate_burst);
    if (use_org)
        use_org = ensure_loaded(db, org_id, "org", plan->org_rate_limit, plan->org_rate_burst);
    if (!use_key && !use_org)
        return;

    pthread_mutex_lock(&lock);
    double t = now_s();
    struct bucket *kb = use_key ? find(org_id, kname, false) : NULL;
    struct bucket *ob = use_org ? find(org_id, "org", false) : NULL;
    if (kb)
        refill(kb, plan->rate_limit, plan->rate_burst, t), kb->last_use = t;
    if (ob)
        refill(ob, plan->org_rate_limit, plan->org_rate_burst, t), ob->last_use = t;
    struct bucket *deny = kb && kb->tokens < 1.0 ? kb : ob && ob->tokens < 1.0 ? ob : NULL;
    if (deny) {
        ret->allowed = false;
        fill_result(deny, deny == kb ? "key" : "org", ret);
        ret->retry_after = (uint32_t)ceil((1.0 - deny->tokens) / deny->rate);
        if (ret->retry_after == 0)
            ret->retry_after = 1;
    } else {
        if (kb)
            kb->tokens -= 1.0, kb->used += 1.0;
        if (ob)
            ob->tokens -= 1.0, ob->used += 1.0;
        /* report the tighter bucket */
        struct bucket *rep = kb;
        if (!rep || (ob && ob->tokens < kb->tokens))
            rep = ob;
        fill_result(rep, rep == kb ? "key" : "org", ret);
    }
    pthread_mutex_unlock(&lock);
}

struct pending {
    char org[37];
    char name[80];
    double used, rate, burst;
};

void ratelimit_sync_once(struct app *app, struct db *db)
{
    (void)app;
    struct pending *p = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&lock);
    double t = now_s();
    for (size_t h = 0; h < NBUCKETS; h++) {
        for (struct bucket **bp = &table[h]; *bp;) {
            struct bucket *b = *bp;
            if (b->used == 0 && b->loaded && t - b->last_use > IDLE_EVICT_S) {
                *bp = b->next;
                free(b);
                n_entries--;
                continue;
            }
            if (b->used > 0 && b->loaded) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    p = xrealloc(p, cap * sizeof(*p));
                }
                snprintf(p[n].org, sizeof(p[n].org), "%s", b->org);
                snprintf(p[n].name, sizeof(p[n].name), "%s", b->name);
                p[n].used = b->used;
                p[n].rate = b->rate;
                p[n].burst = b->burst;
                b->used = 0;
                n++;
            }
            bp = &b->next;
        }
    }
    pthread_mutex_unlock(&lock);
    if (n == 0) {
        free(p);
        return;
    }
    struct sbx_buf o = SBX_BUF_INIT, k = SBX_BUF_INIT, u = SBX_BUF_INIT, r = SBX_BUF_INIT,
                   bu = SBX_BUF_INIT;
    int e = 0;
    for (size_t i = 0; i < n; i++) {
        const char *sep = i ? "," : "{";
        e |= sbx_buf_printf(&o, "%s%s", sep, p[i].org);
        e |= sbx_buf_printf(&k, "%s\"%s\"", sep, p[i].name);
        e |= sbx_buf_printf(&u, "%s%.6f", sep, p[i].used);
        e |= sbx_buf_printf(&r, "%s%.6f", sep, p[i].rate);
        e |= sbx_buf_printf(&bu, "%s%.6f", sep, p[i].burst);
    }
    e |= sbx_buf_puts(&o, "}") | sbx_buf_puts(&k, "}") | sbx_buf_puts(&u, "}") |
         sbx_buf_puts(&r, "}") | sbx_buf_puts(&bu, "}");
    if (e < 0)
        abort();
    const char *params[] = { o.data, k.data, u.data, r.data, bu.data };
    _cleanup_pgres_ PGresult *res = NULL;
    int q = db_query(db, "SELECT org_id, bucket, tokens FROM sbx_ratelimit_sync($1, $2, $3, $4, $5)",
                     5, params, &res);
    pthread_mutex_lock(&lock);
    if (q < 0) {
        /* give the consumption back to be merged next time */
        for (size_t i = 0; i < n; i++) {
            struct bucket *b = find(p[i].org, p[i].name, false);
            if (b)
                b->used += p[i].used;
        }
    } else {
        double t2 = now_s();
        for (int i = 0; i < PQntuples(res); i++) {
            struct bucket *b = find(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
            if (!b)
                continue;
            /* the stored level, minus what was taken here while the merge ran */
            b->tokens = strtod(PQgetvalue(res, i, 2), NULL) - b->used;
            b->last = t2;
        }
    }
    pthread_mutex_unlock(&lock);
    sbx_buf_free(&o);
    sbx_buf_free(&k);
    sbx_buf_free(&u);
    sbx_buf_free(&r);
    sbx_buf_free(&bu);
    free(p);
}

static bool nap(uint64_t secs)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(secs ? secs : 1);
    pthread_mutex_lock(&stop_lock);
    while (!stop_requested)
        if (pthread_cond_timedwait(&stop_cond, &stop_lock, &until) == ETIMEDOUT)
            break;
    bool go_on = !stop_requested;
    pthread_mutex_unlock(&stop_lock);
    return go_on;
}

static void *sync_main(void *arg)
{
    struct app *app = arg;
    struct db *db = NULL;
    bool go_on;
    do {
        go_on = nap(app->cfg.ratelimit.sync_interval);
        if (!db) {
            char err[256];
            if (db_open(app->cfg.database.url, &db, err, sizeof(err)) < 0) {
                log_warn("ratelimit: database unavailable: %s", err);
                db = NULL;
                continue;
            }
        }
        ratelimit_sync_once(app, db);
    } while (go_on);
    db_close(db);
    return NULL;
}

void ratelimit_start(struct app *app)
{
    if (!app->cfg.ratelimit.enabled)
        return;
    if (pthread_create(&thread, NULL, sync_main, app) != 0)
        abort();
    started = true;
}

void ratelimit_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&stop_lock);
    stop_requested = true;
    pthread_cond_broadcast(&stop_cond);
    pthread_mutex_unlock(&stop_lock);
    pthread_join(thread, NULL);
    started = false;
    pthread_mutex_lock(&lock);
    for (size_t h = 0; h < NBUCKETS; h++)
        while (table[h]) {
            struct bucket *b = table[h];
            table[h] = b->next;
            free(b);
        }
    n_entries = 0;
    pthread_mutex_unlock(&lock);
}
