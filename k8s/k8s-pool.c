/*
 * k8s-pool.c — the warm pool of the Kubernetes runtime backend (see k8s-pool.h,
 * docs/internals/K8S-RUNTIME.md "Warm pool").
 *
 * DESIGN
 * A pool pod is an ordinary sandbox pod (same restricted spec) that belongs to nobody yet:
 * random name `sbxw-<template>-<hex>`, label sandboxd.io/warm-pool, annotations with the
 * template and the pool's shape (16 hex of sha256 of the pod JSON generated for the pool, so
 * any change of image, limits, deadline or of podspec.c itself makes older pods stale).
 *
 * State: the runtime's one pod watch feeds k8s_pool_observe(); a pod with the sandbox
 * annotation is a sandbox's (claimed), not the pool's. No polling anywhere.
 *
 * Claim (any replica, a worker thread): pick the oldest idle ready pod of the right shape,
 * mark it busy, then ONE merge PATCH that adds the sandbox's annotation and labels, removes the
 * pool label and carries the resourceVersion we saw: if another replica claimed the pod first
 * (or anything else changed it), the API server answers 409 and we try the next pod. A pod is
 * therefore claimed at most once; the sandbox's identity lives on the pod (its annotation), so
 * the runtime finds it by the watch after a restart as it finds a cold pod — no pod name needs
 * storing. When the PATCH failed on the server (500/503) a GET tells whether it was applied;
 * when it may still land (504, timeout, lost connection) and the GET does not show it as ours,
 * the create fails rather than risk a second pod for the same sandbox (the reconciler deletes
 * the pod if the PATCH lands later: its sandbox row is no longer active).
 *
 * Filler (one thread, only while may_fill(): the leader): on every watch event (and each
 * second) compare the cache with the configuration; delete idle pods that have no pool, a stale
 * shape, a failure, too many of them or too much age (DELETE with the resourceVersion as
 * precondition, so a pod claimed in the meantime is never deleted), create the missing ones,
 * then wait until the watch shows what was created before the next pass (no double creation).
 * Failures back off per pool (1 s doubling to 60 s). Its writes go to the Kubernetes API, not
 * Postgres, so the leader fence does not cover them: a deposed leader can create at most one
 * pass of surplus pods, which the next leader deletes.
 *
 * Locking: p->mu guards the cache and the counters; it is never held across an API call. The
 * watch thread calls in holding the runtime's own mutex (order: runtime → pool, never back).
 */
#include "k8s/k8s-pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "common/macro.h"

#define POOL_MAX_PODS 65536      /* idle pods tracked (the cache is fed by the API) */
#define CREATES_PER_PASS 8       /* per pool, so one pass never blocks for long */
#define ACTIONS_MAX 256
#define PENDING_S 10             /* a created pod normally shows up within one watch event */
#define CLAIM_ATTEMPTS 5
#define BACKOFF_MAX_S 60
#define SHAPE_LEN 16

struct ppod {
    char name[K8S_POD_NAME_MAX];
    char tpl[K8S_POOL_TEMPLATE_MAX + 1];
    char shape[SHAPE_LEN + 1];
    char rv[64];
    char bad_rv[64];      /* a claim at this resourceVersion got 409: wait for the watch */
    time_t created;       /* metadata.creationTimestamp */
    bool ready, failed, terminating;
    bool busy;            /* a claim or a delete of ours is in flight */
    bool claimed;         /* claimed by us; the watch has not reported it yet */
    bool seen;            /* resync bookkeeping */
};

struct pool {
    char *tpl;
    unsigned size, cpus;
    uint64_t mem;
    bool net;
    const struct sbx_placement *placement; /* borrowed (k8s_pool_spec) */
    char shape[SHAPE_LEN + 1];
    unsigned backoff_s;
    time_t next_create;
    uint64_t claims, misses;
};

/* A pod the filler created that the watch has not shown yet: counted, so it is not made twice. */
struct pending {
    char name[K8S_POD_NAME_MAX];
    size_t pool;
    time_t until;
};

struct k8s_pool {
    struct k8s_client *c;
    char *ns, *image, *runtime_class;
    uint32_t uid;
    uint64_t timeout_s, max_age;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* CLOCK_MONOTONIC; broadcast on every watch event */
    struct ppod *pods;
    size_t n, cap;
    struct pool *pools;
    size_t npools;
    struct pending pending[ACTIONS_MAX];
    size_t npending;
    bool (*may_fill)(void);
    bool started, stop;
    pthread_t thread;
};

struct k8s_pool *k8s_pool_new(const struct k8s_pool_base *b)
{
    struct k8s_pool *p = xcalloc(1, sizeof *p);
    p->c = b->c;
    p->ns = xstrdup(b->ns);
    p->image = xstrdup(b->image);
    p->runtime_class = b->runtime_class && b->runtime_class[0] ? xstrdup(b->runtime_class)
                                                               : NULL;
    p->uid = b->uid;
    p->timeout_s = b->timeout_s;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

void k8s_pool_free(struct k8s_pool *p)
{
    if (!p)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < p->npools; i++)
        free(p->pools[i].tpl);
    free(p->pools);
    free(p->pods);
    free(p->ns);
    free(p->image);
    free(p->runtime_class);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

/* ---- the cache (p->mu held) ---- */

static struct ppod *ppod_find(struct k8s_pool *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->pods[i].name, name) == 0)
            return &p->pods[i];
    return NULL;
}

static void ppod_remove(struct k8s_pool *p, struct ppod *pp)
{
    *pp = p->pods[--p->n];
}

static struct pool *pool_find(struct k8s_pool *p, const char *tpl)
{
    for (size_t i = 0; tpl && i < p->npools; i++)
        if (strcmp(p->pools[i].tpl, tpl) == 0)
            return &p->pools[i];
    return NULL;
}

static time_t parse_time(const char *s)
{
    struct tm tm = { 0 };
    if (s && sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec) == 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return timegm(&tm);
    }
    return time(NULL); /* unknown: counts as new */
}

/* A container that will never start (image problems) or a finished pod. */
static bool pod_failed(yajl_val obj)
{
    const char *phase = k8s_obj_str(obj, "status", "phase", NULL);
    if (phase && (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded")))
        return true;
    yajl_val cs = sbx_json_get(sbx_json_get(obj, "status"), "containerStatuses");
    for (size_t i = 0; cs && YAJL_IS_ARRAY(cs) && i < cs->u.array.len; i++) {
        const char *w = k8s_obj_str(cs->u.array.values[i], "state", "waiting", "reason", NULL);
        if (w && (!strcmp(w, "ErrImagePull") || !strcmp(w, "ImagePullBackOff") ||
                  !strcmp(w, "InvalidImageName") || !strcmp(w, "ErrImageNeverPull") ||
                  !strcmp(w, "CreateContainerConfigError")))
            return true;
    }
    return false;
}

static void pending_drop(struct k8s_pool *p, const char *name)
{
    for (size_t i = 0; i < p->npending; i++)
        if (strcmp(p->pending[i].name, name) == 0) {
            p->pending[i] = p->pending[--p->npending];
            return;
        }
}

static void observe_pod(struct k8s_pool *p, yajl_val obj)
{
    const char *name = k8s_obj_name(obj);
    if (!name)
        return;
    pending_drop(p, name);
    struct ppod *pp = ppod_find(p, name);
    const char *tpl = k8s_obj_str(obj, "metadata", "annotations", K8S_ANNOTATION_POOL, NULL);
    const char *sid = k8s_obj_str(obj, "metadata", "annotations", K8S_ANNOTATION_SANDBOX, NULL);
    const char *rv = k8s_obj_resource_version(obj);
    if (!tpl || sid || !rv || strlen(name) >= sizeof pp->name ||
        strlen(tpl) > K8S_POOL_TEMPLATE_MAX || strlen(rv) >= sizeof pp->rv) {
        if (pp)
            ppod_remove(p, pp); /* claimed (ours or another replica's), or not a pool pod */
        return;
    }
    if (!pp) {
        if (p->n == POOL_MAX_PODS)
            return;
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 16;
            p->pods = xrealloc(p->pods, p->cap * sizeof *p->pods);
        }
        pp = &p->pods[p->n++];
        memset(pp, 0, sizeof *pp);
        snprintf(pp->name, sizeof pp->name, "%s", name);
    }
    snprintf(pp->tpl, sizeof pp->tpl, "%s", tpl);
    const char *shape =
        k8s_obj_str(obj, "metadata", "annotations", K8S_ANNOTATION_POOL_SHAPE, NULL);
    snprintf(pp->shape, sizeof pp->shape, "%s", shape && strlen(shape) == SHAPE_LEN ? shape : "");
    snprintf(pp->rv, sizeof pp->rv, "%s", rv);
    pp->created = parse_time(k8s_obj_str(obj, "metadata", "creationTimestamp", NULL));
    pp->terminating = k8s_obj_str(obj, "metadata", "deletionTimestamp", NULL) != NULL;
    pp->failed = pod_failed(obj);
    const char *phase = k8s_obj_str(obj, "status", "phase", NULL);
    pp->ready = false;
    yajl_val conds = sbx_json_get(sbx_json_get(obj, "status"), "conditions");
    for (size_t i = 0; conds && YAJL_IS_ARRAY(conds) && i < conds->u.array.len; i++) {
        const char *t = sbx_json_get_str(conds->u.array.values[i], "type");
        const char *s = sbx_json_get_str(conds->u.array.values[i], "status");
        if (t && s && !strcmp(t, "Ready"))
            pp->ready = !strcmp(s, "True") && phase && !strcmp(phase, "Running");
    }
    pp->seen = true;
}

void k8s_pool_observe(struct k8s_pool *p, enum k8s_watch_type type, yajl_val obj)
{
    pthread_mutex_lock(&p->mu);
    switch (type) {
    case K8S_WATCH_RESYNC: {
        yajl_val items = k8s_list_items(obj);
        for (size_t i = 0; i < p->n; i++)
            p->pods[i].seen = false;
        for (size_t j = 0; items && j < items->u.array.len; j++)
            observe_pod(p, items->u.array.values[j]);
        for (size_t i = p->n; i-- > 0;)
            if (!p->pods[i].seen)
                ppod_remove(p, &p->pods[i]);
        break;
    }
    case K8S_WATCH_ADDED:
    case K8S_WATCH_MODIFIED:
        observe_pod(p, obj);
        break;
    case K8S_WATCH_DELETED: {
        const char *name = k8s_obj_name(obj);
        struct ppod *pp = name ? ppod_find(p, name) : NULL;
        if (pp)
            ppod_remove(p, pp);
        if (name)
            pending_drop(p, name);
        break;
    }
    default:
        break;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Idle: a pool pod nobody is claiming or deleting, that is not on its way out. */
static bool idle(const struct ppod *pp)
{
    return !pp->busy && !pp->claimed && !pp->terminating;
}

/* Idle and fit for the pool it names: current shape, not failed, not too old. */
static bool usable(const struct k8s_pool *p, const struct ppod *pp, const struct pool *pl,
                   time_t now)
{
    return idle(pp) && pl && !strcmp(pp->shape, pl->shape) && !pp->failed &&
           now - pp->created < (time_t)p->max_age;
}

/* ---- configuration ---- */

static void pool_opts(const struct k8s_pool *p, const struct pool *pl, struct k8s_pod_opts *o,
                      struct k8s_toleration tols[K8S_TOLERATIONS_MAX])
{
    *o = (struct k8s_pod_opts){
        .image = p->image,
        .runtime_class = p->runtime_class,
        .cpus_milli = pl->cpus,
        .memory_bytes = pl->mem,
        /* an idle pod may wait max_age (measured on two clocks) before its sandbox's lifetime */
        .timeout_s = p->timeout_s ? p->timeout_s + 2 * p->max_age : 0,
        .uid = p->uid,
        .network = pl->net,
    };
    (void)k8s_placement_apply(pl->placement, o, tols); /* checked by k8s_pool_start */
}

static int shape_of(const struct k8s_pool *p, struct pool *pl)
{
    struct k8s_pod_opts o;
    struct k8s_toleration tols[K8S_TOLERATIONS_MAX];
    pool_opts(p, pl, &o, tols);
    _cleanup_free_ char *json = NULL;
    size_t len;
    int r = k8s_podspec_pool_pod(&o, "shape", pl->tpl, "0", &json, &len);
    if (r < 0)
        return r;
    char hex[SBX_SHA256_HEX_LEN + 1];
    sbx_sha256_hex(json, len, hex);
    snprintf(pl->shape, sizeof pl->shape, "%.*s", SHAPE_LEN, hex);
    return 0;
}

static void *filler_main(void *arg);

int k8s_pool_start(struct k8s_pool *p, const struct k8s_pool_spec *pools, size_t n,
                   uint64_t max_age_s, bool (*may_fill)(void), char *err, size_t errlen)
{
    if (p->started || n > K8S_POOL_MAX || max_age_s == 0) {
        snprintf(err, errlen, "warm pool: invalid configuration");
        return -EINVAL;
    }
    struct pool *pl = xcalloc(n ? n : 1, sizeof *pl);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        const struct k8s_pool_spec *s = &pools[i];
        pl[i] = (struct pool){ .tpl = xstrdup(s->template ? s->template : ""), .size = s->size,
                               .cpus = s->cpus_milli, .mem = s->memory_bytes,
                               .net = s->network, .placement = s->placement };
        if (!pl[i].tpl[0] || strlen(pl[i].tpl) > K8S_POOL_TEMPLATE_MAX ||
            s->size > K8S_POOL_MAX_SIZE ||
            (s->placement && s->placement->n_tolerations > K8S_TOLERATIONS_MAX)) {
            snprintf(err, errlen, "warm pool '%s': invalid template or size", pl[i].tpl);
            r = -EINVAL;
        }
        for (size_t j = 0; r == 0 && j < i; j++)
            if (strcmp(pl[j].tpl, pl[i].tpl) == 0) {
                snprintf(err, errlen, "warm pool '%s' configured twice", pl[i].tpl);
                r = -EINVAL;
            }
    }
    pthread_mutex_lock(&p->mu);
    p->max_age = max_age_s;
    for (size_t i = 0; r == 0 && i < n; i++)
        if ((r = shape_of(p, &pl[i])) < 0)
            snprintf(err, errlen, "warm pool '%s': the pod spec is invalid", pl[i].tpl);
    if (r < 0) {
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < n; i++)
            free(pl[i].tpl);
        free(pl);
        return r;
    }
    p->pools = pl;
    p->npools = n;
    p->may_fill = may_fill;
    pthread_mutex_unlock(&p->mu);
    if (pthread_create(&p->thread, NULL, filler_main, p) != 0) {
        snprintf(err, errlen, "warm pool: cannot start the filler thread");
        return -EAGAIN;
    }
    p->started = true;
    return 0;
}

/* ---- filler ---- */

struct action {
    bool create;
    size_t pool;
    char name[K8S_POD_NAME_MAX];
    char rv[64];
    const char *why;
};

static void backoff(struct pool *pl, time_t now)
{
    pl->backoff_s = pl->backoff_s ? MIN(pl->backoff_s * 2, BACKOFF_MAX_S) : 1;
    pl->next_create = now + pl->backoff_s;
}

static void pool_pod_name(const char *tpl, char out[K8S_POD_NAME_MAX])
{
    char s[41];
    size_t k = 0;
    for (const char *c = tpl; *c && k < sizeof s - 1; c++) {
        char ch = *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c;
        s[k++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ? ch : '-';
    }
    s[k] = 0;
    uint8_t rnd[5];
    sbx_random_bytes(rnd, sizeof rnd);
    snprintf(out, K8S_POD_NAME_MAX, "sbxw-%s-%02x%02x%02x%02x%02x", s, rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4]);
}

static void add_delete(struct action *a, size_t *na, struct ppod *pp, const char *why)
{
    if (*na == ACTIONS_MAX)
        return;
    pp->busy = true;
    a[*na] = (struct action){ .why = why };
    snprintf(a[*na].name, sizeof a[*na].name, "%s", pp->name);
    snprintf(a[*na].rv, sizeof a[*na].rv, "%s", pp->rv);
    (*na)++;
}

/* Decides one pass (p->mu held). */
static size_t plan(struct k8s_pool *p, struct action *a, time_t now)
{
    size_t na = 0;
    for (size_t i = p->npending; i-- > 0;)
        if (now >= p->pending[i].until)
            p->pending[i] = p->pending[--p->npending];
    for (size_t i = 0; i < p->n; i++) {
        struct ppod *pp = &p->pods[i];
        if (!idle(pp))
            continue;
        struct pool *pl = pool_find(p, pp->tpl);
        if (!pl)
            add_delete(a, &na, pp, "no pool for its template");
        else if (strcmp(pp->shape, pl->shape) != 0)
            add_delete(a, &na, pp, "outdated shape");
        else if (pp->failed) {
            add_delete(a, &na, pp, "failed");
            backoff(pl, now);
        } else if (now - pp->created >= (time_t)p->max_age)
            add_delete(a, &na, pp, "older than the maximum age");
    }
    for (size_t k = 0; k < p->npools; k++) {
        struct pool *pl = &p->pools[k];
        unsigned have = 0;
        for (size_t i = 0; i < p->n; i++) {
            struct ppod *pp = &p->pods[i];
            if (!strcmp(pp->tpl, pl->tpl) && usable(p, pp, pl, now)) {
                have++;
                if (pp->ready)
                    pl->backoff_s = 0;
            }
        }
        unsigned coming = 0;
        for (size_t i = 0; i < p->npending; i++)
            coming += p->pending[i].pool == k;
        /* surplus (a deposed leader's pass, a smaller size): not-ready ones first, then the
         * youngest */
        while (have > pl->size) {
            struct ppod *victim = NULL;
            for (size_t i = 0; i < p->n; i++) {
                struct ppod *pp = &p->pods[i];
                if (strcmp(pp->tpl, pl->tpl) || !usable(p, pp, pl, now))
                    continue;
                if (!victim || (victim->ready && !pp->ready) ||
                    (victim->ready == pp->ready && pp->created > victim->created))
                    victim = pp;
            }
            add_delete(a, &na, victim, "surplus");
            have--;
        }
        for (unsigned c = 0; have + coming + c < pl->size && c < CREATES_PER_PASS &&
                             now >= pl->next_create && na < ACTIONS_MAX &&
                             p->npending + c < ACTIONS_MAX;
             c++) {
            a[na] = (struct action){ .create = true, .pool = k };
            pool_pod_name(pl->tpl, a[na].name);
            na++;
        }
    }
    return na;
}

/* Runs the actions (p->mu dropped meanwhile). */
static void act(struct k8s_pool *p, struct action *a, size_t na)
{
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < na; i++) {
        struct k8s_error e = { 0 };
        if (!a[i].create) {
            /* the precondition: a pod claimed since we looked has another resourceVersion */
            struct k8s_delete_opts o = { .grace_period_s = 0, .precondition_rv = a[i].rv };
            int r = k8s_pod_delete(p->c, p->ns, a[i].name, &o, &e);
            log_debug("warm pool: delete %s (%s): %d %s", a[i].name, a[i].why, r, e.message);
            if (r < 0) {
                pthread_mutex_lock(&p->mu);
                struct ppod *pp = ppod_find(p, a[i].name);
                if (pp)
                    pp->busy = false;
                pthread_mutex_unlock(&p->mu);
            }
            continue;
        }
        if (p->may_fill && !p->may_fill())
            break; /* lost the leadership mid-pass */
        pthread_mutex_lock(&p->mu);
        struct pool *pl = &p->pools[a[i].pool];
        struct k8s_pod_opts o;
        struct k8s_toleration tols[K8S_TOLERATIONS_MAX];
        pool_opts(p, pl, &o, tols);
        _cleanup_free_ char *json = NULL;
        size_t len;
        int r = k8s_podspec_pool_pod(&o, a[i].name, pl->tpl, pl->shape, &json, &len);
        pthread_mutex_unlock(&p->mu);
        if (r == 0)
            r = k8s_pod_create(p->c, p->ns, json, NULL, &e);
        if (r < 0) {
            log_warn("warm pool %s: creating pod %s failed: %s (%s)", pl->tpl, a[i].name,
                     e.message[0] ? e.message : strerror(-r), k8s_err_type_name(e.type));
            pthread_mutex_lock(&p->mu);
            backoff(pl, time(NULL));
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        pthread_mutex_lock(&p->mu);
        if (!ppod_find(p, a[i].name) && p->npending < ACTIONS_MAX) {
            struct pending *pe = &p->pending[p->npending++];
            snprintf(pe->name, sizeof pe->name, "%s", a[i].name);
            pe->pool = a[i].pool;
            pe->until = time(NULL) + PENDING_S;
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
}

static void *filler_main(void *arg)
{
    struct k8s_pool *p = arg;
    struct action *a = xcalloc(ACTIONS_MAX, sizeof *a);
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        size_t na = !p->may_fill || p->may_fill() ? plan(p, a, time(NULL)) : 0;
        if (na > 0)
            act(p, a, na);
        if (p->stop)
            break;
        /* the next pass on the next watch event (what we just did shows up there), else in a
         * second: leadership and ages change without events */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    free(a);
    return NULL;
}

/* ---- claim ---- */

static bool definite_refusal(enum k8s_err_type t)
{
    return t == K8S_BAD_REQUEST || t == K8S_INVALID || t == K8S_FORBIDDEN ||
           t == K8S_UNAUTHORIZED || t == K8S_TOO_MANY_REQUESTS;
}

/* Whether the pod now carries the sandbox's annotation (one GET). */
static bool claimed_by(struct k8s_pool *p, const char *name, const char *id)
{
    _cleanup_json_ yajl_val obj = NULL;
    if (k8s_pod_get(p->c, p->ns, name, &obj, NULL) < 0)
        return false;
    const char *sid = k8s_obj_str(obj, "metadata", "annotations", K8S_ANNOTATION_SANDBOX, NULL);
    return sid && strcmp(sid, id) == 0;
}

int k8s_pool_claim(struct k8s_pool *p, const struct sbx_sandbox_spec *spec,
                   char ret_name[K8S_POD_NAME_MAX], char *err, size_t errlen)
{
    if (!spec->pool)
        return -ENOENT;
    pthread_mutex_lock(&p->mu);
    struct pool *pl = pool_find(p, spec->pool);
    if (!pl || pl->cpus != spec->cpus_milli || pl->mem != spec->memory_bytes ||
        pl->net != spec->network) {
        pthread_mutex_unlock(&p->mu);
        return -ENOENT; /* no pool of this shape */
    }
    int r = -ENOENT;
    for (int attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        time_t now = time(NULL);
        struct ppod *cand = NULL;
        for (size_t i = 0; i < p->n; i++) {
            struct ppod *pp = &p->pods[i];
            if (!strcmp(pp->tpl, pl->tpl) && usable(p, pp, pl, now) && pp->ready &&
                strcmp(pp->rv, pp->bad_rv) != 0 && (!cand || pp->created < cand->created))
                cand = pp;
        }
        if (!cand)
            break;
        cand->busy = true;
        char name[K8S_POD_NAME_MAX], rv[64];
        snprintf(name, sizeof name, "%s", cand->name);
        snprintf(rv, sizeof rv, "%s", cand->rv);
        pthread_mutex_unlock(&p->mu);

        _cleanup_free_ char *patch = NULL;
        size_t len;
        struct k8s_error e = { 0 };
        r = k8s_podspec_claim_patch(rv, spec->id, spec->org_id, &patch, &len);
        if (r == 0)
            r = k8s_pod_patch(p->c, p->ns, name, patch, NULL, &e);
        bool ours = r == 0;
        /* unknown outcome: the server failed (500/503: the request is over, so a GET tells)
         * or we do not know whether it got there (504, timeout, transport: it may still land) */
        bool unknown = r < 0 && e.type != K8S_OK && e.type != K8S_CONFLICT &&
                       e.type != K8S_NOT_FOUND && !definite_refusal(e.type);
        bool finished = e.type == K8S_SERVER_ERROR &&
                        (e.http_status == 500 || e.http_status == 503);
        if (unknown)
            ours = claimed_by(p, name, spec->id);
        log_debug("warm pool %s: claim %s for %s: %d %s", spec->pool, name, spec->id, r,
                  e.message);

        pthread_mutex_lock(&p->mu);
        pl = pool_find(p, spec->pool); /* the configuration is fixed once started */
        cand = ppod_find(p, name);
        if (cand) {
            cand->busy = false;
            cand->claimed = ours;
            if (e.type == K8S_CONFLICT)
                snprintf(cand->bad_rv, sizeof cand->bad_rv, "%s", rv);
        }
        if (ours) {
            pl->claims++;
            pthread_mutex_unlock(&p->mu);
            snprintf(ret_name, K8S_POD_NAME_MAX, "%s", name);
            return 0;
        }
        if (unknown && !finished) {
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errlen, "claiming pool pod %s: %s (%s)", name,
                     e.message[0] ? e.message : strerror(-r), k8s_err_type_name(e.type));
            return -EIO;
        }
        r = -ENOENT;
        if (!unknown && e.type != K8S_CONFLICT && e.type != K8S_NOT_FOUND)
            break; /* refused outright (RBAC, validation, throttling): create cold */
    }
    pl->misses++;
    pthread_mutex_unlock(&p->mu);
    return r;
}

size_t k8s_pool_stats(struct k8s_pool *p, struct k8s_pool_stat *out, size_t max)
{
    pthread_mutex_lock(&p->mu);
    time_t now = time(NULL);
    for (size_t k = 0; k < p->npools && k < max; k++) {
        const struct pool *pl = &p->pools[k];
        struct k8s_pool_stat *s = &out[k];
        *s = (struct k8s_pool_stat){ .size = pl->size, .claims = pl->claims,
                                     .misses = pl->misses };
        snprintf(s->template, sizeof s->template, "%s", pl->tpl);
        for (size_t i = 0; i < p->n; i++) {
            const struct ppod *pp = &p->pods[i];
            if (strcmp(pp->tpl, pl->tpl) || !usable(p, pp, pl, now))
                continue;
            if (pp->ready)
                s->ready++;
            else
                s->starting++;
        }
    }
    size_t n = p->npools;
    pthread_mutex_unlock(&p->mu);
    return n;
}
