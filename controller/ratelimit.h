/*
 * ratelimit.h — per-key and per-organization token buckets (docs/internals/LIMITS.md).
 *
 * Buckets live in process memory (one mutex) and are merged with the rate_limit_buckets
 * table every ratelimit.sync_interval by a background thread (ratelimit_start): the thread
 * sends what this process consumed since the last merge and takes back the merged level, so
 * replicas share one budget (within one interval) and a restart continues from the stored
 * level instead of a full bucket. A bucket seen for the first time is loaded from the table
 * (on the worker, with its connection) before it is used.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct app;
struct db;
struct plan_limits;

struct ratelimit_result {
    bool allowed;
    bool applied;          /* false: no limit configured (no headers) */
    uint32_t limit;        /* bucket size of the reported bucket */
    uint32_t remaining;
    uint32_t reset_s;      /* seconds until the reported bucket is full again */
    uint32_t retry_after;  /* when !allowed: seconds until one request fits */
    uint32_t window_s;     /* limit / rate: the policy window */
    const char *scope;     /* "key" | "org" */
};

/* Takes one token from the caller's key bucket (`principal`: api key id, or "jwt:<user>")
 * and from the organization's bucket. db (may be NULL) loads unknown buckets. Worker threads. */
void ratelimit_take(struct app *app, struct db *db, const char *org_id, const char *principal,
                    const struct plan_limits *plan, struct ratelimit_result *ret);

/* Background merge thread. */
void ratelimit_start(struct app *app);
void ratelimit_stop(void);
/* One merge now (tests, shutdown). */
void ratelimit_sync_once(struct app *app, struct db *db);
