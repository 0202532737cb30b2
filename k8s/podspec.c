/*
 * podspec.c — sandbox Pod and NetworkPolicy JSON. See podspec.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "k8s/podspec.h"
#include "runtime/runtime.h"

static bool id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

int k8s_pod_name(const char *sandbox_id, char out[K8S_POD_NAME_MAX])
{
    if (!id_ok(sandbox_id))
        return -EINVAL;
    char s[80];
    size_t n = strlen(sandbox_id);
    bool lossless = true;
    for (size_t i = 0; i < n; i++) {
        char c = sandbox_id[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
            lossless = false;
        } else if (c == '_') {
            c = '-';
            lossless = false;
        }
        s[i] = c;
    }
    s[n] = 0;
    if (s[n - 1] == '-')
        lossless = false; /* must end alphanumeric: the hash suffix does */
    if (lossless) {
        snprintf(out, K8S_POD_NAME_MAX, "sbx-%s", s);
    } else {
        char hex[SBX_SHA256_HEX_LEN + 1];
        sbx_sha256_hex(sandbox_id, n, hex);
        snprintf(out, K8S_POD_NAME_MAX, "sbx-%s-%.8s", s, hex);
    }
    return 0;
}

/* 1..max of [a-z0-9.-] (label_charset: also [A-Z_]), alphanumeric at both ends. */
static bool name_token_ok(const char *s, size_t max, bool label_charset)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (label_charset && c >= 'A' && c <= 'Z');
        if (!an && c != '-' && c != '.' && !(label_charset && c == '_'))
            return false;
        if (!an && (i == 0 || i == n - 1))
            return false;
    }
    return true;
}

bool k8s_label_value_ok(const char *v)
{
    return name_token_ok(v, 63, true);
}

int k8s_placement_apply(const struct sbx_placement *pl, struct k8s_pod_opts *o,
                        struct k8s_toleration tols[K8S_TOLERATIONS_MAX])
{
    if (!pl)
        return 0;
    if (pl->n_tolerations > K8S_TOLERATIONS_MAX)
        return -E2BIG;
    if (pl->image && pl->image[0])
        o->image = pl->image;
    if (pl->runtime_class && pl->runtime_class[0])
        o->runtime_class = pl->runtime_class;
    o->node_selector = pl->node_selector;
    for (size_t i = 0; i < pl->n_tolerations; i++)
        tols[i] = (struct k8s_toleration){ .key = pl->tolerations[i].key,
                                           .op = pl->tolerations[i].op,
                                           .value = pl->tolerations[i].value,
                                           .effect = pl->tolerations[i].effect };
    o->tolerations = pl->n_tolerations ? tols : NULL;
    o->n_tolerations = pl->n_tolerations;
    return 0;
}

bool k8s_dns_subdomain_ok(const char *s)
{
    return name_token_ok(s, 253, false);
}

bool k8s_label_key_ok(const char *k)
{
    const char *slash = strchr(k, '/');
    if (!slash)
        return k8s_label_value_ok(k);
    char prefix[254];
    size_t n = (size_t)(slash - k);
    if (n == 0 || n >= sizeof prefix)
        return false;
    memcpy(prefix, k, n);
    prefix[n] = 0;
    return k8s_dns_subdomain_ok(prefix) && k8s_label_value_ok(slash + 1);
}

static void kquantity(yajl_gen g, const char *k, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    sbx_jgen_kstr(g, k, b);
}

static void resources(yajl_gen g, const struct k8s_pod_opts *o, uint64_t ws, uint64_t tmp)
{
    char cpu[32];
    snprintf(cpu, sizeof cpu, "%um", o->cpus_milli);
    sbx_jgen_key(g, "resources");
    yajl_gen_map_open(g);
    const char *which[] = { "limits", "requests" };
    for (int i = 0; i < 2; i++) {
        sbx_jgen_key(g, which[i]);
        yajl_gen_map_open(g);
        if (o->cpus_milli)
            sbx_jgen_kstr(g, "cpu", cpu);
        kquantity(g, "ephemeral-storage", ws + tmp);
        if (o->memory_bytes)
            kquantity(g, "memory", o->memory_bytes);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
}

static void volume(yajl_gen g, const char *name, uint64_t size)
{
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "emptyDir");
    yajl_gen_map_open(g);
    kquantity(g, "sizeLimit", size);
    yajl_gen_map_close(g);
    sbx_jgen_kstr(g, "name", name);
    yajl_gen_map_close(g);
}

static void mount(yajl_gen g, const char *name, const char *path)
{
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "mountPath", path);
    sbx_jgen_kstr(g, "name", name);
    yajl_gen_map_close(g);
}

/* Checks what both pod kinds share; fills uid and the emptyDir sizes. */
static int common_opts(const struct k8s_pod_opts *o, uint32_t *uid, uint64_t *ws, uint64_t *tmp)
{
    if (!o || !o->image || !o->image[0])
        return -EINVAL;
    *uid = o->uid ? o->uid : 10001;
    *ws = o->workspace_bytes ? o->workspace_bytes : 1ULL << 30;
    *tmp = o->tmp_bytes ? o->tmp_bytes : 256ULL << 20;
    for (size_t i = 0; o->env && o->env[i]; i++)
        if (!strchr(o->env[i], '=') || o->env[i][0] == '=')
            return -EINVAL;
    for (size_t i = 0; o->node_selector && o->node_selector[i]; i++)
        if (!strchr(o->node_selector[i], '=') || o->node_selector[i][0] == '=')
            return -EINVAL;
    return 0;
}

static void pod_spec(yajl_gen g, const struct k8s_pod_opts *o, uint32_t uid, uint64_t ws,
                     uint64_t tmp);

int k8s_podspec_pod(const struct k8s_pod_opts *o, char **ret, size_t *ret_len)
{
    char name[K8S_POD_NAME_MAX];
    uint32_t uid;
    uint64_t ws, tmp;
    if (common_opts(o, &uid, &ws, &tmp) < 0 || k8s_pod_name(o->sandbox_id, name) < 0)
        return -EINVAL;
    if (o->org_id && !k8s_label_value_ok(o->org_id))
        return -EINVAL;

    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "apiVersion", "v1");
    sbx_jgen_kstr(g, "kind", "Pod");
    sbx_jgen_key(g, "metadata");
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "annotations");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, K8S_ANNOTATION_SANDBOX, o->sandbox_id);
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "labels");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, K8S_LABEL_APP, K8S_APP_VALUE);
    if (o->network)
        sbx_jgen_kstr(g, K8S_LABEL_NETWORK, "egress");
    if (o->org_id)
        sbx_jgen_kstr(g, K8S_LABEL_ORG, o->org_id);
    /* the label holds the id when it is a valid label value, else the pod name's suffix */
    sbx_jgen_kstr(g, K8S_LABEL_SANDBOX, k8s_label_value_ok(o->sandbox_id) ? o->sandbox_id : name + 4);
    yajl_gen_map_close(g);
    sbx_jgen_kstr(g, "name", name);
    yajl_gen_map_close(g);
    pod_spec(g, o, uid, ws, tmp);
    yajl_gen_map_close(g);
    *ret = sbx_jgen_take(g, ret_len);
    return 0;
}

void k8s_pool_label_value(const char *tpl, char out[K8S_LABEL_VALUE_MAX + 1])
{
    if (tpl && k8s_label_value_ok(tpl)) {
        snprintf(out, K8S_LABEL_VALUE_MAX + 1, "%s", tpl);
        return;
    }
    char hex[SBX_SHA256_HEX_LEN + 1];
    sbx_sha256_hex(tpl ? tpl : "", tpl ? strlen(tpl) : 0, hex);
    snprintf(out, K8S_LABEL_VALUE_MAX + 1, "h-%.16s", hex);
}

int k8s_podspec_pool_pod(const struct k8s_pod_opts *o, const char *pod_name, const char *tpl,
                         const char *shape, char **ret, size_t *ret_len)
{
    uint32_t uid;
    uint64_t ws, tmp;
    if (common_opts(o, &uid, &ws, &tmp) < 0 || o->sandbox_id || o->org_id || o->env ||
        !pod_name || !k8s_label_value_ok(pod_name) || !tpl || !tpl[0] || !shape ||
        !k8s_label_value_ok(shape))
        return -EINVAL;
    for (const char *c = pod_name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
            return -EINVAL; /* DNS-1123 label */
    char lv[K8S_LABEL_VALUE_MAX + 1];
    k8s_pool_label_value(tpl, lv);

    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "apiVersion", "v1");
    sbx_jgen_kstr(g, "kind", "Pod");
    sbx_jgen_key(g, "metadata");
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "annotations");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, K8S_ANNOTATION_POOL, tpl);
    sbx_jgen_kstr(g, K8S_ANNOTATION_POOL_SHAPE, shape);
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "labels");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, K8S_LABEL_APP, K8S_APP_VALUE);
    if (o->network)
        sbx_jgen_kstr(g, K8S_LABEL_NETWORK, "egress");
    sbx_jgen_kstr(g, K8S_LABEL_POOL, lv);
    yajl_gen_map_close(g);
    sbx_jgen_kstr(g, "name", pod_name);
    yajl_gen_map_close(g);
    pod_spec(g, o, uid, ws, tmp);
    yajl_gen_map_close(g);
    *ret = sbx_jgen_take(g, ret_len);
    return 0;
}

int k8s_podspec_claim_patch(const char *rv, const char *sandbox_id, const char *org_id,
                            char **ret, size_t *ret_len)
{
    char name[K8S_POD_NAME_MAX];
    if (!rv || !rv[0] || k8s_pod_name(sandbox_id, name) < 0 ||
        (org_id && !k8s_label_value_ok(org_id)))
        return -EINVAL;
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "metadata");
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "annotations");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, K8S_ANNOTATION_SANDBOX, sandbox_id);
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "labels");
    yajl_gen_map_open(g);
    if (org_id)
        sbx_jgen_kstr(g, K8S_LABEL_ORG, org_id);
    sbx_jgen_kstr(g, K8S_LABEL_SANDBOX, k8s_label_value_ok(sandbox_id) ? sandbox_id : name + 4);
    sbx_jgen_knull(g, K8S_LABEL_POOL); /* merge patch: null removes the key */
    yajl_gen_map_close(g);
    sbx_jgen_kstr(g, "resourceVersion", rv); /* the precondition: 409 Conflict if it moved */
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    *ret = sbx_jgen_take(g, ret_len);
    return 0;
}

static void pod_spec(yajl_gen g, const struct k8s_pod_opts *o, uint32_t uid, uint64_t ws,
                     uint64_t tmp)
{
    sbx_jgen_key(g, "spec");
    yajl_gen_map_open(g);
    if (o->timeout_s)
        sbx_jgen_kint(g, "activeDeadlineSeconds", (long long)o->timeout_s);
    sbx_jgen_kbool(g, "automountServiceAccountToken", false);
    sbx_jgen_key(g, "containers");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "command");
    yajl_gen_array_open(g);
    sbx_jgen_str(g, "sleep");
    sbx_jgen_str(g, "infinity");
    yajl_gen_array_close(g);
    if (o->env && o->env[0]) {
        sbx_jgen_key(g, "env");
        yajl_gen_array_open(g);
        for (size_t i = 0; o->env[i]; i++) {
            const char *eq = strchr(o->env[i], '=');
            yajl_gen_map_open(g);
            sbx_jgen_key(g, "name");
            sbx_jgen_strn(g, o->env[i], (size_t)(eq - o->env[i]));
            sbx_jgen_kstr(g, "value", eq + 1);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
    }
    sbx_jgen_kstr(g, "image", o->image);
    sbx_jgen_kstr(g, "imagePullPolicy", "IfNotPresent");
    sbx_jgen_kstr(g, "name", K8S_CONTAINER_NAME);
    resources(g, o, ws, tmp);
    sbx_jgen_key(g, "securityContext");
    yajl_gen_map_open(g);
    sbx_jgen_kbool(g, "allowPrivilegeEscalation", false);
    sbx_jgen_key(g, "capabilities");
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "drop");
    yajl_gen_array_open(g);
    sbx_jgen_str(g, "ALL");
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    sbx_jgen_kbool(g, "privileged", false);
    sbx_jgen_kbool(g, "readOnlyRootFilesystem", true);
    sbx_jgen_kbool(g, "runAsNonRoot", true);
    sbx_jgen_kint(g, "runAsUser", uid);
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "volumeMounts");
    yajl_gen_array_open(g);
    mount(g, "workspace", "/workspace");
    mount(g, "tmp", "/tmp");
    yajl_gen_array_close(g);
    sbx_jgen_kstr(g, "workingDir", "/workspace");
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    sbx_jgen_kbool(g, "enableServiceLinks", false);
    sbx_jgen_kbool(g, "hostIPC", false);
    sbx_jgen_kbool(g, "hostNetwork", false);
    sbx_jgen_kbool(g, "hostPID", false);
    if (o->node_selector && o->node_selector[0]) {
        sbx_jgen_key(g, "nodeSelector");
        yajl_gen_map_open(g);
        for (size_t i = 0; o->node_selector[i]; i++) {
            const char *eq = strchr(o->node_selector[i], '=');
            sbx_jgen_strn(g, o->node_selector[i], (size_t)(eq - o->node_selector[i]));
            sbx_jgen_str(g, eq + 1);
        }
        yajl_gen_map_close(g);
    }
    sbx_jgen_kstr(g, "restartPolicy", "Never");
    if (o->runtime_class && o->runtime_class[0])
        sbx_jgen_kstr(g, "runtimeClassName", o->runtime_class);
    sbx_jgen_key(g, "securityContext");
    yajl_gen_map_open(g);
    sbx_jgen_kint(g, "fsGroup", uid);
    sbx_jgen_kint(g, "runAsGroup", uid);
    sbx_jgen_kbool(g, "runAsNonRoot", true);
    sbx_jgen_kint(g, "runAsUser", uid);
    sbx_jgen_key(g, "seccompProfile");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "type", "RuntimeDefault");
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    sbx_jgen_kint(g, "terminationGracePeriodSeconds", 5);
    if (o->n_tolerations) {
        sbx_jgen_key(g, "tolerations");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < o->n_tolerations; i++) {
            const struct k8s_toleration *t = &o->tolerations[i];
            yajl_gen_map_open(g);
            if (t->effect)
                sbx_jgen_kstr(g, "effect", t->effect);
            if (t->key)
                sbx_jgen_kstr(g, "key", t->key);
            if (t->op)
                sbx_jgen_kstr(g, "operator", t->op);
            if (t->value)
                sbx_jgen_kstr(g, "value", t->value);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
    }
    sbx_jgen_key(g, "volumes");
    yajl_gen_array_open(g);
    volume(g, "workspace", ws);
    volume(g, "tmp", tmp);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
}

static void netpol_head(yajl_gen g, const char *name, bool egress_label)
{
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "apiVersion", "networking.k8s.io/v1");
    sbx_jgen_kstr(g, "kind", "NetworkPolicy");
    sbx_jgen_key(g, "metadata");
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "labels");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, K8S_LABEL_APP, K8S_APP_VALUE);
    yajl_gen_map_close(g);
    sbx_jgen_kstr(g, "name", name);
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "spec");
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "podSelector");
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "matchLabels");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, K8S_LABEL_APP, K8S_APP_VALUE);
    if (egress_label)
        sbx_jgen_kstr(g, K8S_LABEL_NETWORK, "egress");
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
}

int k8s_podspec_netpol_deny(char **ret, size_t *ret_len)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    netpol_head(g, K8S_NETPOL_DENY, false);
    sbx_jgen_key(g, "egress");
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
    sbx_jgen_key(g, "ingress");
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
    sbx_jgen_key(g, "policyTypes");
    yajl_gen_array_open(g);
    sbx_jgen_str(g, "Ingress");
    sbx_jgen_str(g, "Egress");
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    *ret = sbx_jgen_take(g, ret_len);
    return 0;
}

static void ipblock(yajl_gen g, const char *cidr, const char *const *except)
{
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "ipBlock");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "cidr", cidr);
    sbx_jgen_key(g, "except");
    yajl_gen_array_open(g);
    for (size_t i = 0; except[i]; i++)
        sbx_jgen_str(g, except[i]);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
}

int k8s_podspec_netpol_egress(bool allow_private, char **ret, size_t *ret_len)
{
    static const char *const v4_strict[] = { "10.0.0.0/8",     "100.64.0.0/10", "127.0.0.0/8",
                                             "169.254.0.0/16", "172.16.0.0/12",
                                             "192.168.0.0/16", NULL };
    static const char *const v4_meta[] = { "169.254.0.0/16", NULL };
    static const char *const v6_strict[] = { "::1/128", "fc00::/7", "fe80::/10", NULL };
    static const char *const v6_meta[] = { "fd00:ec2::254/128", "fe80::/10", NULL };
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    netpol_head(g, K8S_NETPOL_EGRESS, true);
    sbx_jgen_key(g, "egress");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "to");
    yajl_gen_array_open(g);
    ipblock(g, "0.0.0.0/0", allow_private ? v4_meta : v4_strict);
    ipblock(g, "::/0", allow_private ? v6_meta : v6_strict);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    sbx_jgen_key(g, "policyTypes");
    yajl_gen_array_open(g);
    sbx_jgen_str(g, "Egress");
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    *ret = sbx_jgen_take(g, ret_len);
    return 0;
}
