/*
 * podspec.h — the sandbox pod and its NetworkPolicies as JSON (yajl generation), for the
 * Kubernetes runtime backend. Pure functions: no I/O, deterministic output (golden-tested in
 * tests/unit/test-podspec.c).
 *
 * The pod follows the "restricted" Pod Security Standard plus the hardening beyond it
 * (shared/reference/kubernetes-protocol.md §4.1, security-threats.md §1.1–1.2):
 * runAsNonRoot, non-zero runAsUser/runAsGroup/fsGroup, seccomp RuntimeDefault,
 * allowPrivilegeEscalation false, capabilities drop ALL, privileged false,
 * readOnlyRootFilesystem with size-limited emptyDir /workspace and /tmp,
 * automountServiceAccountToken false, enableServiceLinks false, no host namespaces,
 * restartPolicy Never, activeDeadlineSeconds, requests = limits from cpus/memory (+
 * ephemeral-storage), optional runtimeClassName / nodeSelector / tolerations. The container
 * runs `sleep infinity` so that exec works for the sandbox's whole life.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define K8S_POD_NAME_MAX 96
#define K8S_LABEL_APP "app"
#define K8S_APP_VALUE "sandboxd"
#define K8S_LABEL_SANDBOX "sandboxd.io/sandbox-id"
#define K8S_LABEL_ORG "sandboxd.io/org-id"
#define K8S_LABEL_NETWORK "sandboxd.io/network"    /* "egress" when the template allows it */
#define K8S_ANNOTATION_SANDBOX "sandboxd.io/sandbox-id" /* the exact id (labels are ≤ 63) */
/* Warm pool (docs/internals/K8S-RUNTIME.md "Warm pool"): an idle pool pod has the label (the
 * template as a label value) and both annotations (the exact template, the pool shape) but no
 * sandbox label or annotation; a claim adds those and removes the label. */
#define K8S_LABEL_POOL "sandboxd.io/warm-pool"
#define K8S_ANNOTATION_POOL "sandboxd.io/warm-pool"
#define K8S_ANNOTATION_POOL_SHAPE "sandboxd.io/warm-pool-shape"
#define K8S_LABEL_VALUE_MAX 63
#define K8S_CONTAINER_NAME "sandbox"
#define K8S_NETPOL_DENY "sandboxd-deny-all"
#define K8S_NETPOL_EGRESS "sandboxd-public-egress"

struct k8s_toleration {
    const char *key, *op, *value, *effect; /* op: "Equal" / "Exists"; NULL fields omitted */
};

struct k8s_pod_opts {
    const char *sandbox_id;     /* required, [A-Za-z0-9_-]{1,64} */
    const char *org_id;         /* NULL = no org label */
    const char *image;          /* required */
    const char *runtime_class;  /* NULL/"" = none */
    unsigned cpus_milli;        /* 0 = no cpu request/limit */
    uint64_t memory_bytes;      /* 0 = no memory request/limit */
    uint64_t timeout_s;         /* activeDeadlineSeconds; 0 = omitted */
    uint64_t workspace_bytes;   /* emptyDir sizeLimit of /workspace; 0 = 1 GiB */
    uint64_t tmp_bytes;         /* emptyDir sizeLimit of /tmp; 0 = 256 MiB */
    uint32_t uid;               /* runAsUser/runAsGroup/fsGroup; 0 → 10001 (never root) */
    bool network;               /* label the pod for public egress (see the policies) */
    const char *const *env;     /* KEY=VAL, NULL-terminated or NULL */
    const char *const *node_selector; /* "key=value", NULL-terminated or NULL */
    const struct k8s_toleration *tolerations;
    size_t n_tolerations;
};

/* Kubernetes syntax checks for values that come from configuration (templates).
 * Label value: ≤ 63 of [A-Za-z0-9_.-], alphanumeric at both ends (empty refused).
 * DNS-1123 subdomain: ≤ 253 of [a-z0-9.-], alphanumeric at both ends.
 * Label key: [subdomain "/"] name, the name as a label value. */
bool k8s_label_value_ok(const char *v);
bool k8s_dns_subdomain_ok(const char *s);
bool k8s_label_key_ok(const char *k);

/* Overlays a sandbox's placement (runtime/runtime.h; NULL = none) on o: its image and
 * runtime class when set, its node selector, and its tolerations copied into tols (o points
 * at them; tols must outlive o). -E2BIG more than K8S_TOLERATIONS_MAX tolerations. */
#define K8S_TOLERATIONS_MAX 32
struct sbx_placement;
int k8s_placement_apply(const struct sbx_placement *pl, struct k8s_pod_opts *o,
                        struct k8s_toleration tols[K8S_TOLERATIONS_MAX]);

/* Deterministic DNS-1123 pod name for a sandbox id: "sbx-<id lowercased>" when that is
 * lossless, else "sbx-<sanitised>-<8 hex of sha256(id)>". -EINVAL for an invalid id. */
int k8s_pod_name(const char *sandbox_id, char out[K8S_POD_NAME_MAX]);

/* The Pod object (apiVersion v1). *ret malloc'ed, NUL-terminated. -EINVAL bad options. */
int k8s_podspec_pod(const struct k8s_pod_opts *o, char **ret, size_t *ret_len);

/* An idle warm-pool pod: the same pod as k8s_podspec_pod (o->sandbox_id, o->org_id and o->env
 * must be NULL: a pool pod belongs to nobody yet) named pod_name (a DNS-1123 label), with
 * K8S_LABEL_POOL (k8s_pool_label_value(tpl)), K8S_ANNOTATION_POOL = tpl and
 * K8S_ANNOTATION_POOL_SHAPE = shape (a label-value-safe token). -EINVAL bad options. */
int k8s_podspec_pool_pod(const struct k8s_pod_opts *o, const char *pod_name, const char *tpl,
                         const char *shape, char **ret, size_t *ret_len);

/* The JSON merge patch that claims a pool pod for a sandbox: metadata.resourceVersion = rv (the
 * API server refuses it with 409 Conflict if the pod changed since), the sandbox annotation and
 * labels as k8s_podspec_pod sets them (org label only when org_id), K8S_LABEL_POOL removed.
 * -EINVAL for an invalid id, org id or empty rv. */
int k8s_podspec_claim_patch(const char *rv, const char *sandbox_id, const char *org_id,
                            char **ret, size_t *ret_len);

/* A template name as a label value: itself when valid, else "h-" + 16 hex of its sha256. */
void k8s_pool_label_value(const char *tpl, char out[K8S_LABEL_VALUE_MAX + 1]);

/* The NetworkPolicies for the sandbox namespace (both must exist; creating them is
 * idempotent through AlreadyExists):
 *   K8S_NETPOL_DENY   selects app=sandboxd: policyTypes Ingress+Egress with no rules → no
 *                     ingress at all and no egress (not even cluster DNS).
 *   K8S_NETPOL_EGRESS selects app=sandboxd + sandboxd.io/network=egress: egress to 0.0.0.0/0
 *                     and ::/0 except cloud metadata (169.254.0.0/16, fd00:ec2::254 via
 *                     fc00::/7) and, unless allow_private, RFC 1918, CGNAT 100.64.0.0/10,
 *                     loopback, fc00::/7, fe80::/10.
 * NetworkPolicies are additive, so a pod without the network label gets nothing. */
int k8s_podspec_netpol_deny(char **ret, size_t *ret_len);
int k8s_podspec_netpol_egress(bool allow_private, char **ret, size_t *ret_len);
