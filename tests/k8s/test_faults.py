"""Faults on the Kubernetes runtime (k8s/k8s-runtime.c) through the sandbox API: pods failing the
way the kubelet reports it (image pull, OOM kill, eviction, activeDeadlineSeconds, a killed
container) become `error` with a typed `status_reason`; a dropped watch, a restarted API server,
409/429/500 answers and a daemon killed in the middle of a create all end with the database and
the pods in agreement. The faults are the emulator's (tests/kube-emulator, POST /_emulator/faults;
docs/internals/KUBE-EMULATOR.md).

Runs like tests/k8s/test_runtime_k8s.py (whose daemon harness it uses) on its own namespace:

    SANDBOXD_BIN=build/controller/sandboxd KUBE_EMULATOR_RTCTL=build/runtime/rtctl \
        /usr/bin/python3 -m pytest tests/k8s/test_faults.py
"""
import os
import threading
import time

import pytest
import requests

from test_runtime_k8s import (E2E, H, Client, assert_error, kget, kpost, running_e2e,
                              sandbox_pods, wait_until)

NS = "sbx-faults"
PODS_PATH = f"^/api/v1/namespaces/{NS}/pods$"


@pytest.fixture(scope="module")
def e2e(kube_emulator, tmp_path_factory):
    with running_e2e(kube_emulator, tmp_path_factory, NS) as e:
        yield e


@pytest.fixture
def client(e2e):
    e2e.emu.fault({"clear": True})
    c = Client(e2e)
    yield c
    e2e.emu.fault({"clear": True})
    c.cleanup()


# ---- helpers ------------------------------------------------------------------------------------

def pods(e2e, sid=None):
    return [p for p in sandbox_pods(e2e.emu, NS)
            if sid is None or p["metadata"]["labels"]["sandboxd.io/sandbox-id"] == sid]


def pod_status(e2e, sid):
    st, body = kget(e2e.emu, f"/api/v1/namespaces/{NS}/pods/sbx-{sid}")
    return body.get("status", {}) if st == 200 else None


def waiting_reason(status):
    cs = (status or {}).get("containerStatuses") or [{}]
    return cs[0].get("state", {}).get("waiting", {}).get("reason")


def is_ready(status):
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (status or {}).get("conditions", []))


def rows(e2e):
    """Every sandbox row of this module's database: {id: (status, status_reason)}."""
    return {i: (s, r) for i, s, r in
            e2e.pg.sql("SELECT id::text, status, status_reason FROM sandboxes")}


def disagreement(e2e):
    """None when the database and the pods agree: every running row has exactly one pod, which
    runs; every pod has a running row; no row is left creating. Else what is wrong."""
    by_sid = {}
    for p in pods(e2e):
        by_sid.setdefault(p["metadata"]["labels"]["sandboxd.io/sandbox-id"], []).append(p)
    wrong = []
    for sid, (status, reason) in rows(e2e).items():
        ps = by_sid.pop(sid, [])
        if status == "running":
            if len(ps) != 1 or ps[0]["status"]["phase"] != "Running":
                wrong.append((sid, status, [p["status"]["phase"] for p in ps]))
        elif status == "creating" or ps:
            wrong.append((sid, status, reason, [p["status"]["phase"] for p in ps]))
    wrong += [("pod without a row", sid) for sid in by_sid]
    return wrong or None


def assert_agreement(e2e):
    assert wait_until(lambda: not disagreement(e2e), 30), disagreement(e2e)


def ended(client, sid, timeout=20):
    return wait_until(lambda: (lambda s: s if s["status"] in ("error", "terminated") else None)(
        client.get(sid)), timeout)


def post_times(e2e, since):
    """Arrival times (emulator clock) of pod creates after the log offset since."""
    with open(os.path.join(e2e.emu.workdir, "requests.log"), "rb") as f:
        f.seek(since)
        lines = f.read().decode().splitlines()
    return [float(l.split()[0]) for l in lines
            if l.split()[1:3] == ["POST", f"/api/v1/namespaces/{NS}/pods"]]


def log_mark(e2e):
    return os.path.getsize(os.path.join(e2e.emu.workdir, "requests.log"))


class Creating:
    """A sandbox create in a thread (it may die with the daemon)."""

    def __init__(self, client):
        self.client, self.result = client, None
        self.before = {p["metadata"]["name"] for p in pods(client.e2e)}
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            self.result = self.client.api.post("sandbox/create", key=self.client.key, json={},
                                               timeout=200)
        except requests.RequestException as e:
            self.result = e

    def new_pod(self, pred=lambda p: True, timeout=30):
        """The pod this create made, once pred holds for it."""
        return wait_until(lambda: next((p for p in pods(self.client.e2e)
                                        if p["metadata"]["name"] not in self.before and pred(p)),
                                       None), timeout)

    def join(self):
        self.t.join(200)
        return self.result


def sid_of(pod):
    return pod["metadata"]["labels"]["sandboxd.io/sandbox-id"]


# ---- typed reasons -----------------------------------------------------------------------------

@pytest.mark.parametrize("fault,reason", [
    ("oom_kill_pod", "oom"),           # container terminated OOMKilled, exit 137
    ("evict_pod", "evicted"),          # status.reason Evicted
    ("deadline_pod", "timeout"),       # status.reason DeadlineExceeded
    ("kill_pod", "failed"),            # container terminated Error, exit 137
])
def test_pod_failure_becomes_error_with_typed_reason(e2e, client, fault, reason):
    sid = client.create()
    keep = client.create()  # an unaffected neighbour
    assert e2e.emu.fault({fault: f"{NS}/sbx-{sid}"})[fault]
    sb = ended(client, sid)
    assert sb and sb["status"] == "error" and sb["status_reason"] == reason, client.get(sid)
    r = client.api.get(f"sandbox/{sid}/status", key=client.key)
    assert r.json()["status"] == "error" and r.json()["status_reason"] == reason, r.text
    assert wait_until(lambda: not pods(e2e, sid), 20), pods(e2e, sid)  # the reconciler's stop
    assert client.get(keep)["status"] == "running"
    assert client.ok(keep, "echo alive")["stdout"] == "alive\n"
    assert_agreement(e2e)


def test_image_pull_failure_at_create(e2e, client):
    e2e.emu.fault({"missing_images": ["sandbox:test"]})
    before = rows(e2e)
    err = assert_error(client.api.post("sandbox/create", key=client.key, json={}, timeout=200),
                       500, "sandbox_start_failed")
    assert "image_pull" in err["message"], err
    new = [i for i in rows(e2e) if i not in before]
    assert len(new) == 1, new
    sid = new[0]
    sb = client.get(sid)
    assert sb["status"] == "error" and sb["status_reason"] == "image_pull", sb
    assert wait_until(lambda: not pods(e2e, sid), 20), pods(e2e, sid)  # create cleans up
    # the image is back: creates work again
    e2e.emu.fault({"clear": True})
    assert client.ok(client.create(), "echo ok")["stdout"] == "ok\n"
    assert_agreement(e2e)


def test_pending_then_running_then_ready(e2e, client):
    """The pod's Running without Ready is not enough: the sandbox stays `creating` until the
    Ready condition arrives through the watch."""
    e2e.emu.fault({"pod_ready_delay_ms": 4000, "pod_start_delay_ms": 500})
    c = Creating(client)
    pod = c.new_pod(lambda p: p["status"]["phase"] == "Pending")
    assert pod, pods(e2e)
    sid = sid_of(pod)
    assert client.get(sid)["status"] == "creating"
    assert wait_until(lambda: (lambda s: s and s["phase"] == "Running")(pod_status(e2e, sid)), 30)
    # read the row while the pod is Running but not Ready (checked before and after)
    seen = client.get(sid)["status"]
    assert not is_ready(pod_status(e2e, sid)), "the ready delay passed; cannot check the window"
    assert seen == "creating"
    r = c.join()
    assert r.status_code == 201 and r.json()["status"] == "running", r.text
    assert is_ready(pod_status(e2e, sid))
    assert_agreement(e2e)


# ---- watch and API server faults ---------------------------------------------------------------

@pytest.mark.parametrize("compact", [False, True], ids=["resume", "relist-after-410"])
def test_pod_deleted_while_the_watch_is_down(e2e, client, compact):
    sid = client.create()
    hits = e2e.emu.state()["fault_hits"]
    # cut the watch and keep it out: every list/watch of the namespace's pods answers 500
    e2e.emu.fault({"errors": [{"path": PODS_PATH, "method": "GET", "status": 500, "count": -1}],
                   "drop_watches": True})
    assert wait_until(lambda: e2e.emu.state()["fault_hits"] > hits, 15), "the watch never retried"
    e2e.emu.fault({"delete_pod": f"{NS}/sbx-{sid}"})
    if compact:  # the resume point is gone: 410 Expired, then a fresh list
        e2e.emu.fault({"compact": True})
    time.sleep(1.5)  # reconciler passes without a watch: the daemon cannot know yet
    assert client.get(sid)["status"] == "running"
    e2e.emu.fault({"clear": True})
    sb = ended(client, sid, 30)
    assert sb and sb["status"] == "error" and sb["status_reason"] == "deleted", client.get(sid)
    assert_agreement(e2e)


def test_api_server_restart(e2e, client):
    sid = client.create()
    client.ok(sid, "echo kept > /workspace/kept")
    e2e.emu.fault({"restart": True, "down_ms": 2500})

    def down():
        try:
            requests.get(e2e.emu.http + "/version", timeout=2)
            return False
        except requests.RequestException:
            return True
    assert wait_until(down, 5), "the emulator did not go down"
    # its pod POST meets the outage and is retried
    r = client.api.post("sandbox/create", key=client.key, json={}, timeout=200)
    assert r.status_code == 201 and r.json()["status"] == "running", r.text
    new = r.json()["sandbox_id"]
    # the daemon was not restarted: exec, files and the watch work again
    assert client.ok(sid, "cat /workspace/kept")["stdout"] == "kept\n"
    assert client.ok(new, "echo new")["stdout"] == "new\n"
    e2e.emu.fault({"delete_pod": f"{NS}/sbx-{new}"})
    sb = ended(client, new)
    assert sb and sb["status_reason"] == "deleted", client.get(new)
    assert_agreement(e2e)


def test_429_retry_after_is_honoured(e2e, client):
    e2e.emu.fault({"errors": [{"path": PODS_PATH, "method": "POST", "status": 429,
                               "retry_after": 2, "count": 1}]})
    mark = log_mark(e2e)
    sid = client.create()
    t = post_times(e2e, mark)
    assert len(t) == 2, t
    assert t[1] - t[0] >= 1.95, t  # the client waited what Retry-After asked
    assert len(pods(e2e, sid)) == 1
    assert_agreement(e2e)


def test_500_is_retried_with_backoff(e2e, client):
    e2e.emu.fault({"errors": [{"path": PODS_PATH, "method": "POST", "status": 500,
                               "count": 2}]})
    mark = log_mark(e2e)
    sid = client.create()
    t = post_times(e2e, mark)
    assert len(t) == 3, t
    # waits of at least 250 ms, then at least 500 ms (doubling, plus jitter)
    assert t[1] - t[0] >= 0.24 and t[2] - t[1] >= 0.49, t
    assert len(pods(e2e, sid)) == 1
    assert_agreement(e2e)


def test_lost_answer_then_409_already_exists_is_success(e2e, client):
    """The API server makes the pod but the answer is lost (500 after the fact): the retry
    meets AlreadyExists for the deterministic pod name — our own pod, not a failure."""
    e2e.emu.fault({"errors": [{"path": PODS_PATH, "method": "POST", "status": 500,
                               "after": True, "count": 1}]})
    mark = log_mark(e2e)
    sid = client.create()
    assert len(post_times(e2e, mark)) == 2
    assert len(pods(e2e, sid)) == 1
    assert client.ok(sid, "echo one")["stdout"] == "one\n"
    assert_agreement(e2e)


def test_409_conflict_on_create_fails_cleanly(e2e, client):
    e2e.emu.fault({"errors": [{"path": PODS_PATH, "method": "POST", "status": 409,
                               "count": 1}]})
    before = rows(e2e)
    assert_error(client.api.post("sandbox/create", key=client.key, json={}, timeout=200), 500,
                 "sandbox_start_failed")
    new = {i: v for i, v in rows(e2e).items() if i not in before}
    assert [s for s, _ in new.values()] == ["error"], new
    assert not pods(e2e, next(iter(new)))
    assert client.ok(client.create(), "true")["exit_code"] == 0
    assert_agreement(e2e)


# ---- the daemon killed in the middle of a create -----------------------------------------------

def kill_and_restart(e2e):
    e2e.daemon.proc.kill()
    e2e.daemon.proc.wait(10)
    e2e.start()  # same state dir and database


def test_killed_while_the_pod_starts_is_adopted(e2e, client):
    e2e.emu.fault({"pod_start_delay_ms": 3000})
    c = Creating(client)
    pod = c.new_pod()
    assert pod, pods(e2e)
    sid = sid_of(pod)
    kill_and_restart(e2e)
    assert isinstance(c.join(), requests.RequestException)  # died with the daemon
    assert wait_until(lambda: client.get(sid)["status"] == "running", 30), client.get(sid)
    assert len(pods(e2e, sid)) == 1
    assert client.ok(sid, "echo adopted")["stdout"] == "adopted\n"
    ready = e2e.pg.sql("SELECT count(*) FROM sandboxes WHERE id = %s AND started_at IS NOT NULL",
                       (sid,))
    assert ready[0][0] == 1
    time.sleep(2.5)  # reconciler passes: no second pod, no orphan deletion
    assert len(pods(e2e, sid)) == 1 and client.get(sid)["status"] == "running"
    assert_agreement(e2e)


def test_killed_before_the_image_pull_fails_ends_in_error(e2e, client):
    """Killed while the pod is still Pending; the pull fails while the daemon is down: the
    restarted daemon records image_pull and deletes the pod."""
    e2e.emu.fault({"missing_images": ["sandbox:test"], "pod_start_delay_ms": 3000})
    c = Creating(client)
    pod = c.new_pod()
    assert pod, pods(e2e)
    sid = sid_of(pod)
    e2e.daemon.proc.kill()
    e2e.daemon.proc.wait(10)
    assert wait_until(lambda: waiting_reason(pod_status(e2e, sid)) in
                      ("ErrImagePull", "ImagePullBackOff"), 20), pod_status(e2e, sid)
    e2e.start()
    assert isinstance(c.join(), requests.RequestException)
    sb = ended(client, sid)
    assert sb and sb["status"] == "error" and sb["status_reason"] == "image_pull", client.get(sid)
    assert wait_until(lambda: not pods(e2e, sid), 20), pods(e2e, sid)
    assert_agreement(e2e)


# ---- watch-driven reconciliation ------------------------------------------------------------

def test_watch_event_triggers_the_reconciler(e2e, tmp_path):
    """With reconciler.interval 1h the periodic pass never comes during the test: a pod the
    kubelet OOM-kills and a pod deleted out of band still turn their rows to `error` with the
    typed reason, and the failed pod is deleted — the pod watch wakes the reconciler
    (controller/loops.c on_runtime_event)."""
    ns = "sbx-watchwake"
    st, body = kpost(e2e.emu, "/api/v1/namespaces",
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    assert st in (201, 409), body
    other = E2E(e2e.emu, e2e.pg, tmp_path, ns)
    other.env["SANDBOXD_RECONCILER_INTERVAL"] = "1h"
    other.start()
    c = Client(other)
    try:
        oom, gone = c.create(), c.create()
        time.sleep(0.5)  # the start-up pass is over
        assert other.emu.fault({"oom_kill_pod": f"{ns}/sbx-{oom}"})["oom_kill_pod"]
        assert other.emu.fault({"delete_pod": f"{ns}/sbx-{gone}"})
        for sid, reason in ((oom, "oom"), (gone, "deleted")):
            sb = ended(c, sid, timeout=30)
            assert sb and sb["status"] == "error" and sb["status_reason"] == reason, c.get(sid)
        assert wait_until(lambda: not [p for p in sandbox_pods(other.emu, ns)
                                       if p["metadata"]["name"] == f"sbx-{oom}"], 30)
    finally:
        c.cleanup()
        problems = other.stop()
        for p in sandbox_pods(e2e.emu, ns):
            e2e.emu.fault({"delete_pod": f"{ns}/{p['metadata']['name']}"})
        H.reap_sandboxes(other.daemon.state_dir)
    assert not problems, problems
