/*
 * k8s-runtime.h — the Kubernetes runtime backend (struct sbx_runtime_ops, runtime/runtime.h):
 * one pod per sandbox, exec and files through pods/exec. See docs/internals/K8S-RUNTIME.md.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

/* How long create waits for the pod to be Running and Ready (image pull included). */
#define K8S_RUNTIME_CREATE_TIMEOUT_S 180

struct k8s_runtime_config {
    const char *kubeconfig;     /* NULL/"" = in-cluster if KUBERNETES_SERVICE_HOST, else $KUBECONFIG */
    const char *ns;             /* NULL/"" = the config's namespace */
    const char *image;          /* sandbox image (needs sh, tar, find, readlink, sha256sum) */
    const char *runtime_class;  /* NULL/"" = none */
    uint32_t uid;               /* 0 = 10001 */
    uint64_t timeout_s;         /* activeDeadlineSeconds safety net; 0 = none */
    bool allow_private_egress;  /* NetworkPolicy: allow RFC 1918 egress for network sandboxes */
};

/* Connects, ensures the NetworkPolicies (a failure there is a warning in err), starts the pod
 * watch and waits for its first list. Blocking. Must run before worker threads need it; it
 * starts threads itself (no fork happens in this backend). */
int k8s_runtime_start(const struct k8s_runtime_config *c, struct sbx_runtime **ret, char *err,
                      size_t errlen);

/* Typed reason of the sandbox's pod as the watch saw it: "image_pull", "oom", "evicted",
 * "deleted" (the pod disappeared without our delete), "timeout" (activeDeadlineSeconds),
 * "failed"; "" while healthy or unknown. Copies into buf. Thread-safe. */
void k8s_runtime_reason(struct sbx_runtime *rt, const char *id, char *buf, size_t len);

/* The sandbox's state as the API server has it now (GET of its pod; 404 = ABSENT), bypassing
 * the watch cache, which may lag behind what another replica (or a daemon before a restart)
 * already saw. Blocking; -EIO when the API server cannot be asked. */
int k8s_runtime_status_live(struct sbx_runtime *rt, const char *id, enum sbx_state *ret);

/* The namespace of the sandbox pods (the configured one, else the config's). */
const char *k8s_runtime_namespace(struct sbx_runtime *rt);

/* Called from the watch thread whenever a sandbox's observed state changes (for a
 * watch-driven reconciler). Must not block. */
typedef void (*k8s_runtime_event_cb)(const char *id, enum sbx_state st, const char *reason,
                                     void *userdata);
void k8s_runtime_set_callback(struct sbx_runtime *rt, k8s_runtime_event_cb cb, void *userdata);

/* ---- warm pool (k8s/k8s-pool.c; docs/internals/K8S-RUNTIME.md "Warm pool") ----------------- */

#define K8S_POOL_TEMPLATE_MAX 128 /* template names (controller/templates.c) */
#define K8S_POOL_MAX 128          /* pools */
#define K8S_POOL_MAX_SIZE 1000    /* idle pods per pool */

/* One pool: `size` idle, ready pods of one shape. A create whose sbx_sandbox_spec.pool is
 * `template` and whose cpus, memory and network equal the pool's claims one of them instead of
 * creating a pod; anything else is a cold create. */
struct k8s_pool_spec {
    const char *template;
    unsigned size;
    unsigned cpus_milli;
    uint64_t memory_bytes;
    bool network;
    const struct sbx_placement *placement; /* the template's; borrowed for the runtime's life */
};

/* Configures the pools (copied) and starts the filler thread. The filler acts only while
 * may_fill() is true (the controller passes leader_is_leader; NULL = always): it creates the
 * missing idle pods, and deletes idle pods of templates without a pool (n = 0: all of them),
 * of an outdated shape, failed ones, surplus ones, and those older than max_age_s (pool pods
 * get activeDeadlineSeconds = the runtime's timeout_s + 2 × max_age_s, so a claimed pod always
 * has at least timeout_s left). Call once, after k8s_runtime_start. -EINVAL bad specs (err). */
int k8s_runtime_pool_start(struct sbx_runtime *rt, const struct k8s_pool_spec *pools, size_t n,
                           uint64_t max_age_s, bool (*may_fill)(void), char *err,
                           size_t errlen);

struct k8s_pool_stat {
    char template[K8S_POOL_TEMPLATE_MAX + 1];
    unsigned size;      /* configured */
    unsigned ready;     /* idle and ready: claimable now */
    unsigned starting;  /* idle, not ready yet */
    uint64_t claims;    /* creates served from the pool by this process */
    uint64_t misses;    /* creates of the pool's shape that found no ready pod (went cold) */
};
/* Copies up to max pools' figures into out; returns how many pools there are. Thread-safe. */
size_t k8s_runtime_pool_stats(struct sbx_runtime *rt, struct k8s_pool_stat *out, size_t max);
