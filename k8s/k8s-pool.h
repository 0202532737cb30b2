/*
 * k8s-pool.h — the warm pool of the Kubernetes runtime backend, internal to k8s/ (the
 * controller uses k8s-runtime.h). See k8s-pool.c and docs/internals/K8S-RUNTIME.md.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s/k8s-runtime.h"
#include "k8s/k8s.h"
#include "k8s/podspec.h"

struct k8s_pool;

/* What every pool pod shares (copied); the client and namespace must outlive the pool. */
struct k8s_pool_base {
    struct k8s_client *c;
    const char *ns;
    const char *image;
    const char *runtime_class;   /* NULL = none */
    uint32_t uid;
    uint64_t timeout_s;          /* the sandboxes' safety-net deadline; 0 = none */
};

struct k8s_pool *k8s_pool_new(const struct k8s_pool_base *b);
/* Stops the filler (if started) and frees. Call after the watch has stopped. NULL is fine. */
void k8s_pool_free(struct k8s_pool *p);

/* Feeds one event of the runtime's pod watch (app=sandboxd) into the pool's cache. Called on
 * the watch thread; never blocks on the API. */
void k8s_pool_observe(struct k8s_pool *p, enum k8s_watch_type type, yajl_val obj);

/* See k8s_runtime_pool_start(). */
int k8s_pool_start(struct k8s_pool *p, const struct k8s_pool_spec *pools, size_t n,
                   uint64_t max_age_s, bool (*may_fill)(void), char *err, size_t errlen);

/* Claims an idle ready pod of spec->pool's pool for spec (its shape must match): one merge
 * PATCH with the pod's resourceVersion as precondition; 409/404 (and 500/503 when a GET then
 * shows the pod is not ours) → the next pod. 0 and the pod's name; -ENOENT nothing claimable
 * (or the API refused the claim outright): create cold; -EIO (err): the PATCH may still land
 * (504, timeout, connection lost) and a GET did not show the pod as ours — no other pod may be
 * made for this sandbox. Blocking (worker threads). */
int k8s_pool_claim(struct k8s_pool *p, const struct sbx_sandbox_spec *spec,
                   char ret_name[K8S_POD_NAME_MAX], char *err, size_t errlen);

size_t k8s_pool_stats(struct k8s_pool *p, struct k8s_pool_stat *out, size_t max);
