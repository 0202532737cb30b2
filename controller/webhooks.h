/*
 * webhooks.h — the webhook dispatcher: fans outbox rows (events.h) out into deliveries and
 * delivers them with libcurl, signed two ways, with retries, endpoint disabling and SSRF
 * protection. See docs/internals/WEBHOOKS.md.
 *
 * Threads: webhooks_init() on the main thread before any thread starts; one dispatcher thread
 * (webhooks_start/stop) with its own DB connection; webhooks_attempt() also runs on a worker
 * for POST /webhooks/:id/test (each caller with its own struct db, no transaction open).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct app;
struct db;
struct sbx_config;

/* Parses webhooks.allow_cidrs and webhooks.retry_schedule, initialises libcurl. Returns 0 or
 * -EINVAL with a reason in err. */
int webhooks_init(const struct sbx_config *cfg, char *err, size_t errlen);
void webhooks_start(struct app *app);
void webhooks_stop(void);
/* Wakes the dispatcher (after a commit that wrote events); any thread. */
void webhooks_kick(void);

/* Retries an endpoint gets when it sets no retry_count: the schedule's length (≤ 20). */
int webhooks_default_retries(void);

/* Syntax check of an endpoint URL (http/https, host, no userinfo, no fragment, ≤ 2048). */
int webhooks_url_valid(const char *url, char *err, size_t errlen);

struct webhook_attempt {
    bool done;               /* an attempt was made (false: delivery not claimable) */
    bool success;
    int response_status;     /* 0 = no HTTP response */
    long latency_ms;
    char status[16];         /* delivery status afterwards */
    char error[256];
};

/* Claims delivery `id` of org (force: even if it is leased or not yet due), makes one attempt
 * and records the outcome. Uses its own transactions on db. Returns 0 or -errno (database). */
int webhooks_attempt(struct app *app, struct db *db, const char *org_id, const char *id,
                     bool force, struct webhook_attempt *ret);
