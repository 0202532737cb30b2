/*
 * plans.h — plans and quotas from the configuration (plans.<name>.* settings, see
 * docs/internals/LIMITS.md). The effective per-sandbox maximum of a request is the smaller of
 * the plan's and the daemon configuration's (limits.*). Zero means unlimited for the monthly
 * count, concurrency, duration and storage.
 *
 * plan_get() is pure; the plan_check_*() helpers run on worker threads inside the caller's
 * organization transaction and, when a limit is reached, set the error response:
 *   {"error":{"code","message","request_id","limit","current","maximum","plan"}}
 * with status 429 (monthly count, concurrency, storage) or 422 (per-sandbox maximums).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "controller/config.h"
#include "controller/http.h"

struct handler_ctx;

struct plan_limits {
    const char *name;             /* "free" | "pro" | "team" | "enterprise" */
    uint32_t max_cpus_milli;
    uint64_t max_memory_bytes;
    uint64_t max_timeout_s;       /* 0 = unlimited */
    uint32_t max_concurrent;      /* 0 = unlimited */
    uint32_t monthly_sandboxes;   /* 0 = unlimited */
    uint64_t storage_bytes;       /* 0 = unlimited */
    uint32_t rate_limit, rate_burst;         /* per key; rate 0 = off */
    uint32_t org_rate_limit, org_rate_burst; /* per org; rate 0 = off */
};

/* The known plan names, NULL-terminated. */
extern const char *const plan_names[];

/* True when name is one of plan_names. */
bool plan_name_valid(const char *name);

/* The limits of a plan by name; unknown names get the most restrictive plan ("free"). */
void plan_get(const struct sbx_config *cfg, const char *name, struct plan_limits *ret);

/* Sets a quota error response with the structured fields (limit, current, maximum, plan).
 * current/maximum are numbers; unit (may be NULL) is added as "unit". */
void plan_error(const struct http_request *req, struct http_response *resp, int status,
                const char *code, const char *limit, double current, double maximum,
                const char *unit, const char *plan, const char *fmt, ...)
    __attribute__((format(printf, 10, 11)));

/* The organization's plan (org transaction open). Returns 0 or -errno (-EIO database). */
int plan_of_org(struct handler_ctx *ctx, const char *org_id, struct plan_limits *ret);

/*
 * Storage quota for checkpoints and artifacts: call inside the org transaction before storing
 * `add_bytes` more. Counts the org's checkpoints + artifacts (of the request's mode: test data
 * has its own budget). Returns 0 when it fits; otherwise sets a 429 `storage_limit_exceeded`
 * response (or 503 on a database failure) and returns -E2BIG (or -EIO).
 */
int plan_check_storage(struct handler_ctx *ctx, const struct http_request *req,
                       uint64_t add_bytes, struct http_response *resp);
