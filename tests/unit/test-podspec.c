/*
 * test-podspec.c — k8s/podspec.c: golden JSON of the sandbox pod, the warm-pool pod, its claim
 * patch and the NetworkPolicies (tests/unit/data/podspec-*.json; SBX_UPDATE_GOLDEN=1 rewrites
 * them), the pod name rules, and
 * the generated pod checked field by field against the "restricted" Pod Security Standard plus
 * our own hardening.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "k8s/podspec.h"
#include "runtime/runtime.h"
#include "tap.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = malloc(1 << 20);
    *len = fread(b, 1, (1 << 20) - 1, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static void golden(const char *name, const char *json, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/unit/data/%s", SBX_SOURCE_DIR, name);
    if (getenv("SBX_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(json, 1, len, f);
            fputc('\n', f);
            fclose(f);
        }
    }
    size_t glen = 0;
    char *g = slurp(path, &glen);
    while (g && glen && g[glen - 1] == '\n')
        g[--glen] = 0;
    ok(g && glen == len && memcmp(g, json, len) == 0, "golden %s", name);
    if (!(g && glen == len && memcmp(g, json, len) == 0))
        diag("got: %s", json);
    free(g);
}

static yajl_val at(yajl_val v, const char *const *path)
{
    for (; v && *path; path++)
        v = sbx_json_get(v, *path);
    return v;
}
#define AT(v, ...) at(v, (const char *const[]){ __VA_ARGS__, NULL })

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }
static bool is_true(yajl_val v) { return v && YAJL_IS_TRUE(v); }
static bool is_false(yajl_val v) { return v && YAJL_IS_FALSE(v); }

/* The restricted profile (kubernetes-protocol.md §4.1) + baseline + our additions. */
static void check_restricted(yajl_val pod)
{
    yajl_val spec = AT(pod, "spec");
    ok(is_true(AT(spec, "securityContext", "runAsNonRoot")), "pod runAsNonRoot");
    yajl_val u = AT(spec, "securityContext", "runAsUser");
    ok(u && YAJL_IS_INTEGER(u) && YAJL_GET_INTEGER(u) != 0, "pod runAsUser non-zero");
    yajl_val gr = AT(spec, "securityContext", "runAsGroup");
    ok(gr && YAJL_IS_INTEGER(gr) && YAJL_GET_INTEGER(gr) != 0, "runAsGroup non-zero");
    yajl_val fg = AT(spec, "securityContext", "fsGroup");
    ok(fg && YAJL_IS_INTEGER(fg) && YAJL_GET_INTEGER(fg) != 0, "fsGroup non-zero");
    const char *sc = sbx_json_get_str(AT(spec, "securityContext", "seccompProfile"), "type");
    ok(sc && (!strcmp(sc, "RuntimeDefault") || !strcmp(sc, "Localhost")), "seccomp %s", sc);
    ok(is_false(AT(spec, "automountServiceAccountToken")), "no service-account token");
    ok(is_false(AT(spec, "enableServiceLinks")), "no service links");
    ok(!is_true(AT(spec, "hostNetwork")) && !is_true(AT(spec, "hostPID")) &&
           !is_true(AT(spec, "hostIPC")), "no host namespaces");
    yajl_val vols = AT(spec, "volumes");
    ok(vols && YAJL_IS_ARRAY(vols), "volumes");
    static const char *allowed[] = { "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                     "persistentVolumeClaim", "projected", "secret" };
    for (size_t i = 0; vols && i < vols->u.array.len; i++) {
        yajl_val v = vols->u.array.values[i];
        bool good = true;
        for (size_t k = 0; k < v->u.object.len; k++) {
            const char *key = v->u.object.keys[k];
            if (!strcmp(key, "name"))
                continue;
            bool found = false;
            for (size_t a = 0; a < sizeof allowed / sizeof allowed[0]; a++)
                found |= !strcmp(key, allowed[a]);
            good &= found;
        }
        ok(good && AT(v, "emptyDir", "sizeLimit"), "volume %zu: allowed type, size-limited", i);
    }
    yajl_val cs = AT(spec, "containers");
    ok(cs && YAJL_IS_ARRAY(cs) && cs->u.array.len == 1, "one container");
    for (size_t i = 0; cs && i < cs->u.array.len; i++) {
        yajl_val c = cs->u.array.values[i];
        yajl_val csc = AT(c, "securityContext");
        ok(is_false(AT(csc, "allowPrivilegeEscalation")), "allowPrivilegeEscalation false");
        ok(is_false(AT(csc, "privileged")), "not privileged");
        ok(is_true(AT(csc, "readOnlyRootFilesystem")), "read-only root filesystem");
        yajl_val drop = AT(csc, "capabilities", "drop");
        bool all = false;
        for (size_t k = 0; drop && YAJL_IS_ARRAY(drop) && k < drop->u.array.len; k++)
            all |= YAJL_IS_STRING(drop->u.array.values[k]) &&
                   streq(YAJL_GET_STRING(drop->u.array.values[k]), "ALL");
        ok(all, "capabilities drop ALL");
        ok(!AT(csc, "capabilities", "add"), "no capabilities added");
        yajl_val cu = AT(csc, "runAsUser");
        ok(!cu || (YAJL_IS_INTEGER(cu) && YAJL_GET_INTEGER(cu) != 0), "container uid non-zero");
        yajl_val mounts = AT(c, "volumeMounts");
        bool ws = false, tmp = false;
        for (size_t k = 0; mounts && k < mounts->u.array.len; k++) {
            const char *mp = sbx_json_get_str(mounts->u.array.values[k], "mountPath");
            ws |= mp && !strcmp(mp, "/workspace");
            tmp |= mp && !strcmp(mp, "/tmp");
        }
        ok(ws && tmp, "/workspace and /tmp are writable mounts");
        ok(AT(c, "resources", "limits", "memory") && AT(c, "resources", "limits", "cpu") &&
               AT(c, "resources", "limits", "ephemeral-storage"), "limits set");
        ok(sbx_json_get(c, "ports") == NULL, "no hostPort/ports");
    }
}

/* Kubernetes syntax of template placement values, and the overlay of a placement on a pod. */
static void placement_checks(void)
{
    ok(k8s_label_key_ok("gpu") && k8s_label_key_ok("node.kubernetes.io/instance-type") &&
           k8s_label_key_ok("sandboxd.io/pool"), "label keys accepted");
    ok(!k8s_label_key_ok("") && !k8s_label_key_ok("/x") && !k8s_label_key_ok("Ex.com/x") &&
           !k8s_label_key_ok("a/b/c") && !k8s_label_key_ok("x y") && !k8s_label_key_ok("-x"),
       "bad label keys refused");
    ok(k8s_label_value_ok("gvisor") && !k8s_label_value_ok("") && !k8s_label_value_ok("a b") &&
           !k8s_label_value_ok("x-"), "label values");
    char long_value[70];
    memset(long_value, 'a', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = 0;
    ok(!k8s_label_value_ok(long_value) && !k8s_label_key_ok(long_value), "over 63 refused");
    ok(k8s_dns_subdomain_ok("kata-qemu") && k8s_dns_subdomain_ok("a.b") &&
           !k8s_dns_subdomain_ok("Gvisor") && !k8s_dns_subdomain_ok("a_b") &&
           !k8s_dns_subdomain_ok(".a"), "DNS-1123 subdomains");

    const char *ns[] = { "pool=gpu", NULL };
    struct sbx_toleration tol[] = { { "gpu", "Exists", NULL, "NoSchedule" } };
    struct sbx_placement pl = { .image = "registry.example/py:1", .runtime_class = "kata",
                                .node_selector = ns, .tolerations = tol, .n_tolerations = 1 };
    struct k8s_pod_opts o = { .sandbox_id = "s1", .image = "default:1", .runtime_class = "gvisor" };
    struct k8s_toleration tols[K8S_TOLERATIONS_MAX];
    ok(k8s_placement_apply(&pl, &o, tols) == 0 && streq(o.image, "registry.example/py:1") &&
           streq(o.runtime_class, "kata") && o.node_selector == ns && o.n_tolerations == 1 &&
           streq(o.tolerations[0].op, "Exists") && !o.tolerations[0].value,
       "placement overlaid");
    char *json;
    size_t len;
    yajl_val pod = NULL;
    char err[128];
    ok(k8s_podspec_pod(&o, &json, &len) == 0 &&
           sbx_json_parse(json, len, 1 << 20, 32, &pod, err, sizeof err) == 0,
       "placed pod generated");
    ok(streq(sbx_json_get_str(AT(pod, "spec", "nodeSelector"), "pool"), "gpu") &&
           streq(sbx_json_get_str(AT(pod, "spec", "tolerations")->u.array.values[0], "operator"),
                 "Exists") &&
           streq(sbx_json_get_str(sbx_json_get(pod, "spec"), "runtimeClassName"), "kata"),
       "nodeSelector, tolerations and runtimeClassName in the pod");
    yajl_tree_free(pod);
    free(json);

    struct sbx_placement empty = { .image = "", .runtime_class = "" };
    struct k8s_pod_opts d = { .sandbox_id = "s1", .image = "default:1", .runtime_class = "gvisor" };
    ok(k8s_placement_apply(&empty, &d, tols) == 0 && streq(d.image, "default:1") &&
           streq(d.runtime_class, "gvisor") && !d.node_selector && !d.tolerations,
       "empty placement keeps the defaults");
    ok(k8s_placement_apply(NULL, &d, tols) == 0 && streq(d.image, "default:1"), "NULL placement");
    struct sbx_placement many = { .tolerations = tol, .n_tolerations = K8S_TOLERATIONS_MAX + 1 };
    ok(k8s_placement_apply(&many, &d, tols) == -E2BIG, "too many tolerations refused");
}

int main(void)
{
    plan_no_plan();
    char name[K8S_POD_NAME_MAX];
    ok(k8s_pod_name("0f8e5a6c-1b2d-4e3f-8a9b-0c1d2e3f4a5b", name) == 0 &&
           !strcmp(name, "sbx-0f8e5a6c-1b2d-4e3f-8a9b-0c1d2e3f4a5b"), "uuid id → %s", name);
    char n2[K8S_POD_NAME_MAX];
    ok(k8s_pod_name("Abc_D", name) == 0 && k8s_pod_name("abc-d", n2) == 0 && strcmp(name, n2) &&
           strncmp(name, "sbx-abc-d-", 10) == 0, "lossy id gets a hash suffix: %s vs %s", name, n2);
    ok(k8s_pod_name("x-", name) == 0 && name[strlen(name) - 1] != '-', "ends alphanumeric: %s",
       name);
    ok(k8s_pod_name("a/b", name) == -EINVAL && k8s_pod_name("", name) == -EINVAL,
       "invalid ids refused");
    char same[K8S_POD_NAME_MAX];
    ok(k8s_pod_name("Abc_D", same) == 0 && k8s_pod_name("Abc_D", name) == 0 && !strcmp(same, name),
       "deterministic");

    const char *env[] = { "LANG=C.UTF-8", "A=b=c", NULL };
    const char *ns[] = { "sandboxd.io/pool=gvisor", NULL };
    struct k8s_toleration tol[] = { { "sandbox", "Equal", "true", "NoSchedule" } };
    struct k8s_pod_opts o = {
        .sandbox_id = "0f8e5a6c-1b2d-4e3f-8a9b-0c1d2e3f4a5b",
        .org_id = "11111111-2222-3333-4444-555555555555",
        .image = "docker.io/library/python:3.12-slim",
        .runtime_class = "gvisor",
        .cpus_milli = 500,
        .memory_bytes = 512ULL << 20,
        .timeout_s = 3600,
        .env = env,
        .node_selector = ns,
        .tolerations = tol,
        .n_tolerations = 1,
        .network = true,
    };
    char *json;
    size_t len;
    ok(k8s_podspec_pod(&o, &json, &len) == 0, "pod generated");
    golden("podspec-pod.json", json, len);
    yajl_val pod = NULL;
    char err[128];
    ok(sbx_json_parse(json, len, 1 << 20, 32, &pod, err, sizeof err) == 0, "pod JSON parses");
    check_restricted(pod);
    ok(streq(sbx_json_get_str(AT(pod, "metadata", "labels"), "app"), "sandboxd") &&
           streq(sbx_json_get_str(AT(pod, "metadata", "labels"), K8S_LABEL_SANDBOX), o.sandbox_id) &&
           streq(sbx_json_get_str(AT(pod, "metadata", "labels"), K8S_LABEL_ORG), o.org_id),
       "labels");
    yajl_val ad = AT(pod, "spec", "activeDeadlineSeconds");
    ok(ad && YAJL_GET_INTEGER(ad) == 3600, "activeDeadlineSeconds");
    ok(streq(sbx_json_get_str(sbx_json_get(pod, "spec"), "runtimeClassName"), "gvisor"), "runtimeClass");
    yajl_val cmd = AT(pod, "spec", "containers")->u.array.values[0];
    cmd = AT(cmd, "command");
    ok(cmd && cmd->u.array.len == 2 && streq(YAJL_GET_STRING(cmd->u.array.values[1]), "infinity"),
       "kept alive with sleep infinity");
    yajl_tree_free(pod);
    free(json);

    /* minimal options: still restricted, no optional fields */
    struct k8s_pod_opts m = { .sandbox_id = "s1", .image = "busybox" };
    ok(k8s_podspec_pod(&m, &json, &len) == 0, "minimal pod");
    golden("podspec-pod-minimal.json", json, len);
    pod = NULL;
    ok(sbx_json_parse(json, len, 1 << 20, 32, &pod, err, sizeof err) == 0, "parses");
    ok(!sbx_json_get(sbx_json_get(pod, "spec"), "runtimeClassName") && !AT(pod, "spec", "activeDeadlineSeconds") &&
           !AT(pod, "spec", "nodeSelector") && !AT(pod, "spec", "tolerations"),
       "optional fields omitted");
    yajl_tree_free(pod);
    free(json);

    struct k8s_pod_opts bad = o;
    bad.image = NULL;
    ok(k8s_podspec_pod(&bad, &json, &len) == -EINVAL, "no image refused");
    bad = o;
    bad.org_id = "not a label";
    ok(k8s_podspec_pod(&bad, &json, &len) == -EINVAL, "bad org id refused");
    const char *badenv[] = { "NOEQUALS", NULL };
    bad = o;
    bad.env = badenv;
    ok(k8s_podspec_pod(&bad, &json, &len) == -EINVAL, "bad env refused");

    /* warm-pool pod: the same restricted pod, owned by nobody (no sandbox/org label or
     * annotation, no env), with the pool's label and annotations */
    struct k8s_pod_opts po = o;
    po.sandbox_id = po.org_id = NULL;
    po.env = NULL;
    ok(k8s_podspec_pool_pod(&po, "sbxw-base-0123456789", "base", "00112233aabbccdd", &json,
                            &len) == 0, "pool pod generated");
    golden("podspec-pool-pod.json", json, len);
    pod = NULL;
    ok(sbx_json_parse(json, len, 1 << 20, 32, &pod, err, sizeof err) == 0, "pool pod parses");
    check_restricted(pod);
    yajl_val labels = AT(pod, "metadata", "labels"), ann = AT(pod, "metadata", "annotations");
    ok(streq(sbx_json_get_str(labels, K8S_LABEL_APP), "sandboxd") &&
           streq(sbx_json_get_str(labels, K8S_LABEL_POOL), "base") &&
           !sbx_json_get(labels, K8S_LABEL_SANDBOX) && !sbx_json_get(labels, K8S_LABEL_ORG),
       "pool labels: app + pool, no sandbox or org");
    ok(streq(sbx_json_get_str(ann, K8S_ANNOTATION_POOL), "base") &&
           streq(sbx_json_get_str(ann, K8S_ANNOTATION_POOL_SHAPE), "00112233aabbccdd") &&
           !sbx_json_get(ann, K8S_ANNOTATION_SANDBOX), "pool annotations");
    ok(streq(sbx_json_get_str(AT(pod, "metadata"), "name"), "sbxw-base-0123456789"), "pool name");
    ok(!sbx_json_get(AT(pod, "spec", "containers")->u.array.values[0], "env"),
       "no env in a pool pod");
    yajl_tree_free(pod);
    free(json);
    ok(k8s_podspec_pool_pod(&o, "sbxw-x-1", "base", "0", &json, &len) == -EINVAL,
       "a pool pod with a sandbox id refused");
    ok(k8s_podspec_pool_pod(&po, "Bad_Name", "base", "0", &json, &len) == -EINVAL &&
           k8s_podspec_pool_pod(&po, "sbxw-x-1", "", "0", &json, &len) == -EINVAL &&
           k8s_podspec_pool_pod(&po, "sbxw-x-1", "base", "not a shape", &json, &len) == -EINVAL,
       "bad pool pod name, template, shape refused");
    char lv[K8S_LABEL_VALUE_MAX + 1], lv2[K8S_LABEL_VALUE_MAX + 1];
    char longname[130];
    memset(longname, 'a', 128);
    longname[128] = 0;
    k8s_pool_label_value("python-basic", lv);
    ok(streq(lv, "python-basic"), "template as label value");
    k8s_pool_label_value(longname, lv);
    k8s_pool_label_value("x.", lv2);
    ok(strncmp(lv, "h-", 2) == 0 && strlen(lv) == 18 && strncmp(lv2, "h-", 2) == 0 &&
           strcmp(lv, lv2) != 0, "invalid label values hashed: %s %s", lv, lv2);

    /* the claim: one merge patch, resourceVersion precondition, pool label removed */
    ok(k8s_podspec_claim_patch("1234", o.sandbox_id, o.org_id, &json, &len) == 0, "claim patch");
    golden("podspec-claim-patch.json", json, len);
    pod = NULL;
    ok(sbx_json_parse(json, len, 1 << 20, 32, &pod, err, sizeof err) == 0, "claim patch parses");
    labels = AT(pod, "metadata", "labels");
    yajl_val pl = labels ? sbx_json_get(labels, K8S_LABEL_POOL) : NULL;
    ok(streq(sbx_json_get_str(AT(pod, "metadata"), "resourceVersion"), "1234") &&
           streq(sbx_json_get_str(AT(pod, "metadata", "annotations"), K8S_ANNOTATION_SANDBOX),
                 o.sandbox_id) &&
           streq(sbx_json_get_str(labels, K8S_LABEL_SANDBOX), o.sandbox_id) &&
           streq(sbx_json_get_str(labels, K8S_LABEL_ORG), o.org_id) && pl && YAJL_IS_NULL(pl),
       "claim patch: precondition, identity, pool label null");
    yajl_tree_free(pod);
    free(json);
    ok(k8s_podspec_claim_patch("", o.sandbox_id, NULL, &json, &len) == -EINVAL &&
           k8s_podspec_claim_patch("1", "a/b", NULL, &json, &len) == -EINVAL &&
           k8s_podspec_claim_patch("1", o.sandbox_id, "not a label", &json, &len) == -EINVAL,
       "claim patch: no rv, bad id, bad org refused");

    ok(k8s_podspec_netpol_deny(&json, &len) == 0, "deny policy");
    golden("podspec-netpol-deny.json", json, len);
    free(json);
    ok(k8s_podspec_netpol_egress(false, &json, &len) == 0, "egress policy");
    golden("podspec-netpol-egress.json", json, len);
    ok(strstr(json, "\"169.254.0.0/16\"") && strstr(json, "\"10.0.0.0/8\"") &&
           strstr(json, "\"192.168.0.0/16\"") && strstr(json, "\"172.16.0.0/12\""),
       "metadata and private ranges excluded");
    free(json);
    ok(k8s_podspec_netpol_egress(true, &json, &len) == 0 && strstr(json, "169.254.0.0/16") &&
           !strstr(json, "10.0.0.0/8"), "allow_private: only metadata excluded");
    free(json);
    placement_checks();
    return done();
}
