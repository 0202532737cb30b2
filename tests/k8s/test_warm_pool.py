"""The warm pool of the Kubernetes runtime (k8s/k8s-pool.c, controller/warmpool.c) end to end:
real sandboxd processes with runtime.kind k8s against the Kubernetes API emulator
(tests/kube-emulator), whose pods run as local sandboxes.

Pool sizes come from the templates file (`warm_pool_size`); each test starts its own daemon(s)
with the configuration it needs, in the emulator namespace sbx-warm, and deletes every pod of
that namespace afterwards. Needs root, the emulator's rtctl ($KUBE_EMULATOR_RTCTL), a daemon
($SANDBOXD_BIN) and the test Postgres ($SANDBOXD_TEST_PG_DIR / $SANDBOXD_TEST_PG_PORT):

    SANDBOXD_BIN=build/controller/sandboxd KUBE_EMULATOR_RTCTL=build/runtime/rtctl \\
        /usr/bin/python3 -m pytest tests/k8s/test_warm_pool.py
"""
import base64
import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import requests

NS = "sbx-warm"
POOL_LABEL = "sandboxd.io/warm-pool"
LEASE_S, RENEW_S = 4, 1


from test_runtime_k8s import H, wait_until  # noqa: E402  (the API harness, loaded once)
from apihelpers import auth, unique_email, unique_name  # noqa: E402


# ---- the emulator's side (its plain-HTTP port: not counted with the daemon's TLS requests) ----

def kreq(emu, method, path, body=None):
    req = urllib.request.Request(emu.http + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def pods(emu, selector="app=sandboxd"):
    st, body = kreq(emu, "GET", f"/api/v1/namespaces/{NS}/pods?labelSelector="
                    + urllib.parse.quote(selector))
    assert st == 200, body
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def ready(pod):
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def pool(emu, tpl="base"):
    """Names of the idle pool pods of a template."""
    return {p["metadata"]["name"] for p in pods(emu, f"{POOL_LABEL}={tpl}")}


def ready_pool(emu, tpl="base"):
    return {p["metadata"]["name"] for p in pods(emu, f"{POOL_LABEL}={tpl}") if ready(p)}


def pod_of(emu, sid):
    got = pods(emu, f"sandboxd.io/sandbox-id={sid}")
    assert len(got) <= 1, f"{len(got)} pods for sandbox {sid}"
    return got[0] if got else None


def delete_all_pods(emu):
    for p in pods(emu):
        kreq(emu, "DELETE", f"/api/v1/namespaces/{NS}/pods/{p['metadata']['name']}"
             "?gracePeriodSeconds=0")
    assert wait_until(lambda: not pods(emu), 30), [p["metadata"]["name"] for p in pods(emu)]


def requests_since(emu, mark):
    with open(os.path.join(emu.workdir, "requests.log"), "rb") as f:
        f.seek(mark)
        return f.read().decode(errors="replace").splitlines()


def log_mark(emu):
    return os.path.getsize(os.path.join(emu.workdir, "requests.log"))


# ---- daemons ------------------------------------------------------------------------------------

TEMPLATES = """templates:
  - name: base
    description: pooled shell
    requires: /bin/sh
    warm_pool_size: {base}
  - name: other
    description: another shell
    requires: /bin/sh
    warm_pool_size: {other}
"""


@pytest.fixture(scope="module")
def pg(kube_emulator):
    if not H.daemon_binary().exists():
        pytest.skip(f"no daemon binary {H.daemon_binary()} (set SANDBOXD_BIN)")
    st, body = kreq(kube_emulator, "POST", "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    assert st in (201, 409), body
    p = H.Postgres(os.environ.get("SANDBOXD_TEST_PG_DIR") or H.default_pg_dir(),
                   os.environ.get("SANDBOXD_TEST_PG_PORT", "55433"))
    p.start()  # no reset: other suites share the database
    return p


class Warm:
    """Starts daemons of one test; stops them (checked) and deletes every pod at the end."""

    def __init__(self, pg, emu, workdir):
        self.pg, self.emu, self.workdir = pg, emu, Path(workdir)
        self.daemons = []

    def templates(self, base=2, other=0, other_memory=None):
        text = TEMPLATES.format(base=base, other=other)
        if other_memory:
            text += f"    memory: {other_memory}\n"
        path = self.workdir / f"templates-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(text)
        return str(path)

    def start(self, templates, name=None, extra=None):
        env = {
            "SANDBOXD_RUNTIME_KIND": "k8s",
            "SANDBOXD_K8S_KUBECONFIG": self.emu.kubeconfig_https,
            "SANDBOXD_K8S_NAMESPACE": NS,
            "SANDBOXD_K8S_IMAGE": "sandbox:test",
            "SANDBOXD_RECONCILER_INTERVAL": "1s",
            "SANDBOXD_TEMPLATES_FILE": templates,
            "SANDBOXD_PLANS_FREE_MAX_CONCURRENT": "20",
        }
        env.update(extra or {})
        d = H.Daemon(self.pg, self.workdir, name or f"warm-{len(self.daemons)}", env)
        H._DAEMONS.append(d)
        d.start()
        self.daemons.append(d)
        return d

    def close(self):
        problems = []
        for d in self.daemons:
            if d.proc is not None and d.proc.poll() is None:
                problems += [f"{d.name}: {p}" for p in H.shutdown_problems(d)]
        delete_all_pods(self.emu)
        for d in self.daemons:
            H.reap_sandboxes(d.state_dir)
        return problems


@pytest.fixture
def warm(pg, kube_emulator, tmp_path):
    kube_emulator.fault({"clear": True})
    delete_all_pods(kube_emulator)
    w = Warm(pg, kube_emulator, tmp_path)
    yield w
    kube_emulator.fault({"clear": True})
    problems = w.close()
    assert not problems, problems


class Client:
    def __init__(self, d):
        self.base = d.base
        r = requests.post(d.base + "/api/v1/register",
                          json={"email": unique_email(), "organization_name": unique_name("Wp")},
                          timeout=30)
        assert r.status_code in (200, 201), r.text
        self.key = r.json()["api_key"]["key"]
        self.org = r.json()["organization"]["id"]

    def create_raw(self, **body):
        return requests.post(self.base + "/api/v1/sandbox/create", headers=auth(self.key),
                             json=body, timeout=200)

    def create(self, **body):
        r = self.create_raw(**body)
        assert r.status_code == 201, f"create: {r.status_code} {r.text[:500]}"
        assert r.json()["status"] == "running", r.json()
        return r.json()["sandbox_id"]

    def run(self, sid, command):
        r = requests.post(f"{self.base}/api/v1/sandbox/{sid}/execute", headers=auth(self.key),
                          json={"command": command}, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()

    def delete(self, sid):
        r = requests.delete(f"{self.base}/api/v1/sandbox/{sid}", headers=auth(self.key),
                            timeout=120)
        assert r.status_code in (200, 202, 204), r.text


def metric(d, name, tpl="base"):
    text = requests.get(d.base + "/metrics", timeout=10).text
    m = re.search(r"^%s\{template=\"%s\"\} (\d+)$" % (re.escape(name), re.escape(tpl)), text,
                  re.M)
    return int(m.group(1)) if m else None


def row(pg, sid):
    rows = pg.sql("SELECT status, status_reason FROM sandboxes WHERE id = %s", (sid,))
    return rows[0] if rows else None


# ---- tests --------------------------------------------------------------------------------------

def test_claim_takes_a_ready_pod_and_the_pool_refills(warm):
    emu = warm.emu
    d = warm.start(warm.templates(base=2))
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20), pods(emu)
    before = ready_pool(emu)
    assert all(n.startswith("sbxw-base-") for n in before), before
    for p in pods(emu, POOL_LABEL):  # pool pods are sandbox pods nobody owns yet
        md = p["metadata"]
        assert md["labels"]["app"] == "sandboxd" and "sandboxd.io/sandbox-id" not in md["labels"]
        assert md["annotations"]["sandboxd.io/warm-pool"] == "base"
        assert "sandboxd.io/sandbox-id" not in md["annotations"]
        sc = p["spec"]["securityContext"]
        assert sc["runAsNonRoot"] is True and p["spec"]["automountServiceAccountToken"] is False
    c = Client(d)
    mark = log_mark(emu)
    sid = c.create(template="base")
    pod = pod_of(emu, sid)
    assert pod and pod["metadata"]["name"] in before, (pod and pod["metadata"]["name"], before)
    md = pod["metadata"]
    assert md["annotations"]["sandboxd.io/sandbox-id"] == sid
    assert md["labels"]["sandboxd.io/sandbox-id"] == sid
    assert md["labels"]["sandboxd.io/org-id"] == c.org
    assert POOL_LABEL not in md["labels"]
    # exactly one write for the claim, no cold create, no GET of a pod
    lines = [ln.split()[1:3] for ln in requests_since(emu, mark) if ln.endswith(" tls")]
    assert [m for m, p in lines if m in ("PATCH", "PUT")] == ["PATCH"], lines
    assert not [p for m, p in lines if m == "GET" and "watch=" not in p
                and not p.split("?")[0].endswith("/exec")], lines
    # the sandbox works: exec, env from the create, files
    assert c.run(sid, "echo hi; id -u")["stdout"].split()[0] == "hi"
    sid2 = c.create(template="base", env={"FROM_CREATE": "yes"})
    assert c.run(sid2, 'echo "$FROM_CREATE"')["stdout"] == "yes\n"
    r = requests.post(f"{c.base}/api/v1/sandbox/{sid}/files", headers=auth(c.key),
                      json={"files": [{"path": "a.txt",
                                       "content": base64.b64encode(b"pooled").decode()}]},
                      timeout=60)
    assert r.status_code == 200, r.text
    assert c.run(sid, "cat a.txt")["stdout"] == "pooled"
    # refilled in the background with new pods
    assert wait_until(lambda: len(ready_pool(emu)) == 2 and not (ready_pool(emu) & before), 20), \
        (ready_pool(emu), before)
    assert metric(d, "sandboxd_warm_pool_size") == 2
    assert metric(d, "sandboxd_warm_pool_claims_total") == 2
    assert wait_until(lambda: metric(d, "sandboxd_warm_pool_ready") == 2, 10)
    # delete removes the claimed pod; the pool stays as it is
    c.delete(sid)
    assert wait_until(lambda: pod_of(emu, sid) is None, 20)
    c.delete(sid2)
    assert wait_until(lambda: pod_of(emu, sid2) is None, 20)
    time.sleep(1.5)
    assert len(pool(emu)) == 2 and len(pods(emu)) == 2, [p["metadata"]["name"] for p in pods(emu)]


def test_cold_create_on_shape_mismatch_other_template_or_empty_pool(warm):
    emu = warm.emu
    d = warm.start(warm.templates(base=2))
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    c = Client(d)
    # another shape (cpus), another template, no template: cold pods with the sandbox's name
    for body in ({"template": "base", "cpus": "0.5"}, {"template": "base", "memory": "256Mi"},
                 {"template": "other"}, {}):
        sid = c.create(**body)
        assert pod_of(emu, sid)["metadata"]["name"] == f"sbx-{sid}", body
        assert c.run(sid, "echo ok")["stdout"] == "ok\n"
    assert len(ready_pool(emu)) == 2
    assert metric(d, "sandboxd_warm_pool_claims_total") == 0
    # empty pool: claim both, hold the refill back (slow pod POSTs; the path's GETs would be
    # slowed too, so nothing here lists pods meanwhile), the third create is cold
    emu.fault({"latency_ms": 3000, "latency_path": f"^/api/v1/namespaces/{NS}/pods$",
               "latency_count": 4})
    a, b, cold = (c.create(template="base") for _ in range(3))
    emu.fault({"clear": True})
    for sid in (a, b):
        assert pod_of(emu, sid)["metadata"]["name"].startswith("sbxw-base-")
    assert pod_of(emu, cold)["metadata"]["name"] == f"sbx-{cold}"
    assert metric(d, "sandboxd_warm_pool_misses_total") == 1
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 30)


def test_refill_after_out_of_band_loss_and_recycle_by_age(warm):
    emu = warm.emu
    d = warm.start(warm.templates(base=2), extra={"SANDBOXD_K8S_WARM_POOL_MAX_AGE": "4s"})
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    first = ready_pool(emu)
    gone, killed = sorted(first)
    emu.fault({"delete_pod": f"{NS}/{gone}"})      # the pod object disappears
    emu.fault({"kill_pod": f"{NS}/{killed}"})      # the pod fails (exit 137): replaced too
    assert wait_until(lambda: len(ready_pool(emu)) == 2 and not (ready_pool(emu) & first), 20), \
        (ready_pool(emu), first)
    # older than k8s.warm_pool_max_age: replaced
    second = ready_pool(emu)
    assert wait_until(lambda: len(ready_pool(emu)) == 2 and not (ready_pool(emu) & second), 20)
    assert len(pool(emu)) <= 2
    assert d.alive()


def test_reconciler_leaves_pool_pods_alone_and_unconfigured_pools_are_deleted(warm):
    emu = warm.emu
    d = warm.start(warm.templates(base=2))
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    before = ready_pool(emu)
    c = Client(d)
    sid = c.create(template="other")  # a running sandbox: the reconciler passes have work
    time.sleep(3.5)                    # three reconciler passes (1 s)
    assert ready_pool(emu) == before
    assert not [o for o in d.lines() if o.get("msg") == "reconciler"
                and "orphan" in str(o.get("action"))], "a pool pod was taken for an orphan"
    # the pool pods outlive the daemon like sandboxes do
    assert not H.shutdown_problems(d)
    assert pool(emu) == before
    # restarted with the pool moved to another template: base's pods go, other's come;
    # the running sandbox is adopted, not touched
    d2 = warm.start(warm.templates(base=0, other=1), name="warm-restarted")
    assert wait_until(lambda: not pool(emu) and len(ready_pool(emu, "other")) == 1, 20), \
        [p["metadata"]["name"] for p in pods(emu)]
    c.base = d2.base
    assert c.run(sid, "echo still")["stdout"] == "still\n"
    assert pod_of(emu, sid)["metadata"]["name"] == f"sbx-{sid}"
    # a shape change (the template's memory) replaces the idle pods too
    old = ready_pool(emu, "other")
    assert not H.shutdown_problems(d2)
    d3 = warm.start(warm.templates(base=0, other=1, other_memory="256Mi"), name="warm-reshaped")
    assert wait_until(lambda: len(ready_pool(emu, "other")) == 1
                      and not (ready_pool(emu, "other") & old), 20)
    shaped = pods(emu, f"{POOL_LABEL}=other")[0]
    assert shaped["spec"]["containers"][0]["resources"]["limits"]["memory"] == str(256 << 20)
    c.base = d3.base
    c.delete(sid)


@pytest.mark.parametrize("outcome", ["claimed", "not-claimed"])
def test_kill_mid_claim_leaves_no_duplicate_and_no_leak(warm, outcome):
    """kill -9 while the claim PATCH is in flight. "claimed": the PATCH lands after the daemon
    died (the pod carries the sandbox id, the row is still 'creating'); "not-claimed": it
    fails. Restarted, the pool is refilled without counting the claimed pod, and once the row is
    past the creation grace (aged here instead of waiting 60 s) the reconciler adopts the pod or
    marks the row error; either way one pod at most for the sandbox, none leaked."""
    emu = warm.emu
    tpl = warm.templates(base=2)
    d = warm.start(tpl)
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    c = Client(d)
    faults = {"latency_ms": 2500, "latency_path": f"^/api/v1/namespaces/{NS}/pods/sbxw-",
              "latency_count": 1}
    if outcome == "not-claimed":
        faults["errors"] = [{"path": f"^/api/v1/namespaces/{NS}/pods/sbxw-", "method": "PATCH",
                             "status": 500, "count": 1}]
    emu.fault(faults)
    mark = log_mark(emu)

    def create():
        try:
            c.create_raw(template="base")
        except requests.RequestException:
            pass  # the daemon dies under it

    threading.Thread(target=create, daemon=True).start()
    assert wait_until(lambda: any(" PATCH " in ln for ln in requests_since(emu, mark)), 20)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=10)
    d.proc = None
    time.sleep(3)  # the delayed PATCH is answered (to nobody)
    emu.fault({"clear": True})
    sid = str(pg_sql_one(warm.pg, "SELECT id FROM sandboxes WHERE org_id = %s", (c.org,)))
    assert row(warm.pg, sid)[0] == "creating"
    claimed = pod_of(emu, sid)
    assert (claimed is not None) == (outcome == "claimed"), claimed
    d2 = warm.start(tpl, name="warm-after-kill")
    # the pool is whole again (the claimed pod is a sandbox's, not the pool's)
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    warm.pg.sql("UPDATE sandboxes SET created_at = now() - interval '5 minutes' WHERE id = %s",
                (sid,))
    want = "running" if outcome == "claimed" else "error"
    assert wait_until(lambda: row(warm.pg, sid)[0] == want, 20), row(warm.pg, sid)
    c.base = d2.base
    if outcome == "claimed":
        assert c.run(sid, "echo adopted")["stdout"] == "adopted\n"
        assert pod_of(emu, sid)["metadata"]["name"] == claimed["metadata"]["name"]
        c.delete(sid)
    else:
        assert row(warm.pg, sid)[1] == "creation did not complete"
    assert wait_until(lambda: pod_of(emu, sid) is None, 20)
    time.sleep(1.5)
    names = [p["metadata"]["name"] for p in pods(emu)]
    assert len(names) == 2 and set(names) == pool(emu), names


def pg_sql_one(pg, q, params):
    rows = pg.sql(q, params)
    assert len(rows) == 1, rows
    return rows[0][0]


def test_patch_outcome_unknown_fails_the_create_without_a_second_pod(warm):
    """A 504 on the claim may still land: the create fails rather than make another pod; a 500
    is over, so a GET shows it was not applied and the claim goes on."""
    emu = warm.emu
    d = warm.start(warm.templates(base=2))
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    c = Client(d)
    emu.fault({"errors": [{"path": f"^/api/v1/namespaces/{NS}/pods/sbxw-", "method": "PATCH",
                           "status": 500, "count": 1}]})
    sid = c.create(template="base")
    assert pod_of(emu, sid)["metadata"]["name"].startswith("sbxw-base-")
    emu.fault({"errors": [{"path": f"^/api/v1/namespaces/{NS}/pods/sbxw-", "method": "PATCH",
                           "status": 504, "count": 1}]})
    before = ready_pool(emu)
    r = c.create_raw(template="base")
    assert r.status_code == 500, r.text
    bad = pg_sql_one(warm.pg, "SELECT id FROM sandboxes WHERE org_id = %s AND status = 'error'",
                     (c.org,))
    assert pod_of(emu, str(bad)) is None
    assert before <= pool(emu)  # the pod it tried is still in the pool
    assert d.alive()


def test_two_replicas_only_the_leader_fills(warm):
    emu = warm.emu
    tpl = warm.templates(base=2)
    lease = "wp-" + uuid.uuid4().hex[:10]
    common = {"SANDBOXD_LEADER_ENABLED": "true", "SANDBOXD_LEADER_LEASE_NAME": lease,
              "SANDBOXD_LEADER_LEASE_DURATION": f"{LEASE_S}s",
              "SANDBOXD_LEADER_RENEW_INTERVAL": f"{RENEW_S}s",
              "SANDBOXD_SECRETS_KEY": base64.b64encode(os.urandom(32)).decode()}
    ds = [warm.start(tpl, name=f"warm-r{i}", extra=dict(common, POD_NAME=f"{lease}-r{i}"))
          for i in range(2)]

    def leader():
        leading = [d for d in ds if d.alive() and metric_plain(d, "sandboxd_leader") == 1]
        return leading[0] if len(leading) == 1 else None

    first = wait_until(leader, LEASE_S * 3)
    assert first
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    for _ in range(15):  # two replicas, one filler: never more than the pool's size
        assert len(pool(emu)) <= 2, pool(emu)
        time.sleep(0.2)
    # a claim through the follower; the leader refills
    follower = [d for d in ds if d is not first][0]
    c = Client(follower)
    sid = c.create(template="base")
    assert pod_of(emu, sid)["metadata"]["name"].startswith("sbxw-base-")
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    # the leader dies: the follower takes over the filling
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    first.proc = None
    assert wait_until(lambda: leader() is follower, LEASE_S + RENEW_S + 5)
    sid2 = c.create(template="base")
    assert pod_of(emu, sid2)["metadata"]["name"].startswith("sbxw-base-")
    assert wait_until(lambda: len(ready_pool(emu)) == 2, 20)
    c.delete(sid)
    c.delete(sid2)


def metric_plain(d, name):
    try:
        text = requests.get(d.base + "/metrics", timeout=5).text
    except requests.RequestException:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


PLACED = """templates:
  - name: placed
    description: pooled, with its own image and scheduling
    image: registry.example/sandbox:placed
    runtime_class: kata
    node_selector: {pool: gpu, node.kubernetes.io/instance-type: big}
    tolerations:
      - {key: gpu, operator: Exists, effect: NoSchedule}
      - {key: team, value: ml}
    warm_pool_size: 1
  - name: cold
    description: no pool, no placement
"""


def placed_spec(pod):
    spec = pod["spec"]
    return (spec["containers"][0]["image"], spec.get("runtimeClassName"),
            spec.get("nodeSelector"), spec.get("tolerations"))


def test_template_image_and_scheduling_reach_the_pods(warm):
    """A template's image, runtime_class, node_selector and tolerations (templates-k8s.c) are
    in its pool pods, in the claimed pod and in a cold pod; a template without them runs
    k8s.image and schedules anywhere; GET /templates shows what the pods get."""
    emu = warm.emu
    path = warm.workdir / "placed.yaml"
    path.write_text(PLACED)
    d = warm.start(str(path))
    c = Client(d)
    ts = {t["name"]: t for t in requests.get(d.base + "/api/v1/templates", headers=auth(c.key),
                                             timeout=10).json()["templates"]}
    want = ("registry.example/sandbox:placed", "kata",
            {"pool": "gpu", "node.kubernetes.io/instance-type": "big"},
            [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
             {"key": "team", "operator": "Equal", "value": "ml"}])
    t = ts["placed"]
    assert (t["image"], t["runtime_class"], t["node_selector"], t["tolerations"]) == want, t
    assert ts["cold"]["image"] == "sandbox:test" and ts["cold"]["runtime_class"] is None
    assert ts["cold"]["node_selector"] == {} and ts["cold"]["tolerations"] == []

    assert wait_until(lambda: len(ready_pool(emu, "placed")) == 1, 20), pods(emu)
    (idle,) = pods(emu, f"{POOL_LABEL}=placed")
    assert placed_spec(idle) == want
    sid = c.create(template="placed")  # claimed
    assert pod_of(emu, sid)["metadata"]["name"] == idle["metadata"]["name"]
    assert c.run(sid, ["echo", "ok"])["stdout"] == "ok\n"
    assert wait_until(lambda: len(ready_pool(emu, "placed")) == 1, 20)  # refilled
    c.delete(sid)
    # another memory: not the pool's shape, so a cold pod — with the same placement
    sid = c.create(template="placed", memory="256Mi")
    pod = pod_of(emu, sid)
    assert pod["metadata"]["name"].startswith("sbx-") and placed_spec(pod) == want
    c.delete(sid)
    sid = c.create(template="cold")
    spec = pod_of(emu, sid)["spec"]
    assert spec["containers"][0]["image"] == "sandbox:test"
    assert not {"runtimeClassName", "nodeSelector", "tolerations"} & set(spec), spec
    c.delete(sid)
