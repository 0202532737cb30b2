"""Leader election with fenced writes (controller/leader.c, docs/internals/LEADER.md): two or
three sandboxd replicas against one Postgres and the Kubernetes API emulator's Lease.

The replicas use runtime.kind local with distinct state dirs (each is its own runtime
instance; one test uses runtime.kind k8s, where the instance is the namespace's), leader.enabled, and a short lease (4 s, renewed every 1 s) so that the tests are
quick; every test uses its own Lease name, so their leader_epochs rows never collide.

Needs root, the emulator's rtctl ($KUBE_EMULATOR_RTCTL, else build/runtime/rtctl), a daemon
($SANDBOXD_BIN, else build/controller/sandboxd) and the test Postgres of scripts/pg.sh
($SANDBOXD_TEST_PG_DIR / $SANDBOXD_TEST_PG_PORT, as the API harness):

    SANDBOXD_BIN=build/controller/sandboxd KUBE_EMULATOR_RTCTL=build/runtime/rtctl \
        /usr/bin/python3 -m pytest tests/k8s/test_leader.py
"""
import base64
import importlib.util
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
API_DIR = REPO / "tests" / "api"
LEASE_S, RENEW_S = 4, 1


def _load_api_harness():
    sys.path.insert(0, str(API_DIR))  # its own `from apihelpers import ...`
    spec = importlib.util.spec_from_file_location("sbx_api_harness_leader",
                                                  API_DIR / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _load_api_harness()
from apihelpers import auth, unique_email, unique_name  # noqa: E402
from webhookhelpers import Receiver  # noqa: E402


def wait_until(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


@pytest.fixture(scope="module")
def pg():
    if not H.daemon_binary().exists():
        pytest.skip("sandboxd not built (%s); set SANDBOXD_BIN" % H.daemon_binary())
    p = H.Postgres(os.environ.get("SANDBOXD_TEST_PG_DIR") or H.default_pg_dir(),
                   os.environ.get("SANDBOXD_TEST_PG_PORT", "55433"))
    p.start()  # no reset: other suites may share the database; our rows are per Lease name
    return p


class Cluster:
    """Replicas of one election (one Lease name)."""

    def __init__(self, pg, emu, workdir, n, extra_env=None):
        self.pg, self.emu = pg, emu
        self.ns = (extra_env or {}).get("SANDBOXD_K8S_NAMESPACE", "default")  # of the Lease
        self.lease = "ldr-" + uuid.uuid4().hex[:10]
        self.replicas = []
        # replicas share what a deployment shares through its Secret (webhook signing
        # secrets are encrypted with it: any replica may deliver what another stored)
        secrets_key = base64.b64encode(os.urandom(32)).decode()
        for i in range(n):
            env = {
                "SANDBOXD_LEADER_ENABLED": "true",
                "SANDBOXD_LEADER_LEASE_NAME": self.lease,
                "SANDBOXD_LEADER_LEASE_DURATION": "%ds" % LEASE_S,
                "SANDBOXD_LEADER_RENEW_INTERVAL": "%ds" % RENEW_S,
                "SANDBOXD_K8S_KUBECONFIG": emu.kubeconfig_https,
                "SANDBOXD_K8S_NAMESPACE": "default",
                "SANDBOXD_WEBHOOKS_ALLOW_CIDRS": "127.0.0.0/8",
                "SANDBOXD_WEBHOOKS_POLL_INTERVAL": "1s",
                "SANDBOXD_LOG_LEVEL": "info",
                "SANDBOXD_SECRETS_KEY": secrets_key,
                "POD_NAME": "%s-r%d" % (self.lease, i),
            }
            env.update(extra_env or {})
            self.replicas.append(H.Daemon(pg, workdir, "%s-r%d" % (self.lease, i), env))
        for d in self.replicas:
            d.start()

    def identity(self, d):
        return d.extra_env["POD_NAME"]

    def lease_obj(self):
        url = "%s/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s" % (self.emu.http,
                                                                          self.ns, self.lease)
        try:
            return json.loads(urllib.request.urlopen(url, timeout=10).read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def holder(self):
        obj = self.lease_obj()
        return (obj or {}).get("spec", {}).get("holderIdentity")

    def db_row(self):
        rows = self.pg.sql("SELECT epoch, holder FROM leader_epochs WHERE name = %s",
                           (self.lease,))
        return rows[0] if rows else None

    @staticmethod
    def gauge(d, name="sandboxd_leader"):
        try:
            text = requests.get(d.base + "/metrics", timeout=5).text
        except requests.RequestException:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def alive(self):
        return [d for d in self.replicas if d.alive()]

    def leader(self):
        """The one live replica that says it leads and that the Lease names, else None."""
        leading = [d for d in self.alive() if self.gauge(d) == 1]
        if len(leading) != 1:
            return None
        return leading[0] if self.holder() == self.identity(leading[0]) else None

    def wait_leader(self, timeout):
        return wait_until(self.leader, timeout)

    def stop(self):
        problems = []
        for d in self.replicas:
            if d.proc is not None:
                try:
                    os.kill(d.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                if d.proc.poll() is None:
                    problems += ["%s: %s" % (d.name, p) for p in H.shutdown_problems(d)]
                else:
                    d.proc = None  # killed by the test on purpose
            H.reap_sandboxes(d.state_dir)
        return problems


@pytest.fixture
def cluster(pg, kube_emulator, tmp_path):
    made = []

    def _make(n, extra_env=None):
        c = Cluster(pg, kube_emulator, tmp_path, n, extra_env)
        made.append(c)
        return c

    yield _make
    problems = []
    for c in made:
        problems += c.stop()
    assert not problems, problems


def register(d):
    r = requests.post(d.base + "/api/v1/register",
                      json={"email": unique_email(), "organization_name": unique_name("Ldr")},
                      timeout=30)
    assert r.status_code in (200, 201), r.text
    b = r.json()
    return b["organization"]["id"], b["api_key"]["key"]


def lost_lines(d, since=0, prefix=""):
    return [o for o in d.lines(since) if o.get("msg") == "leader: leadership lost"
            and str(o.get("reason", "")).startswith(prefix)]


# ---------------------------------------------------------------------------------------------

def test_exactly_one_leader_then_failover_after_kill(cluster):
    c = cluster(3)
    first = c.wait_leader(LEASE_S * 3)
    assert first, [(d.name, c.gauge(d)) for d in c.replicas]
    # stays exactly one for a few renewals
    for _ in range(10):
        assert sum(1 for d in c.replicas if c.gauge(d) == 1) == 1
        time.sleep(0.3)
    epoch, holder = c.db_row()
    lease = c.lease_obj()
    assert holder == c.identity(first)
    assert lease["spec"]["leaseTransitions"] == epoch
    assert c.gauge(first, "sandboxd_leader_epoch") == epoch

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    t0 = time.monotonic()
    second = c.wait_leader(LEASE_S + RENEW_S + 5)
    took = time.monotonic() - t0
    assert second and second is not first
    # within the lease duration + renew period (+ scheduling slack)
    assert took <= LEASE_S + RENEW_S + 1.5, took
    epoch2, holder2 = c.db_row()
    assert holder2 == c.identity(second) and epoch2 == epoch + 1
    assert c.lease_obj()["spec"]["leaseTransitions"] == epoch2

    # the API is served by every survivor, leader or not
    for d in c.alive():
        org, key = register(d)
        r = requests.get(d.base + "/api/v1/sandboxes", headers=auth(key), timeout=30)
        assert r.status_code == 200, r.text
        assert requests.get(d.base + "/readyz", timeout=10).status_code == 200


def test_graceful_shutdown_releases_the_lease(cluster):
    c = cluster(2)
    first = c.wait_leader(LEASE_S * 3)
    assert first
    epoch = c.db_row()[0]
    t0 = time.monotonic()
    assert H.shutdown_problems(first) == []
    second = c.wait_leader(LEASE_S + RENEW_S + 5)
    assert second and second is not first
    # released (holderIdentity cleared), so the follower did not wait for the expiry
    assert time.monotonic() - t0 < LEASE_S, time.monotonic() - t0
    assert any(o.get("msg") == "leader: released" for o in first.lines())
    assert c.db_row() == (epoch + 1, c.identity(second))


def test_no_duplicate_reap_or_delivery(cluster):
    c = cluster(2)
    leader = c.wait_leader(LEASE_S * 3)
    assert leader
    follower = [d for d in c.replicas if d is not leader][0]
    rcv = Receiver()
    try:
        org, key = register(follower)
        r = requests.post(follower.base + "/api/v1/webhooks", headers=auth(key),
                          json={"url": rcv.url, "events": ["*"]}, timeout=30)
        assert r.status_code == 201, r.text
        # the leader runs the sandbox (local runtime: the reaper reaps its own instance's)
        r = requests.post(leader.base + "/api/v1/sandbox/create", headers=auth(key),
                          json={"timeout_seconds": 2}, timeout=60)
        assert r.status_code == 201, r.text
        sid = r.json()["sandbox_id"]

        def terminated():
            rows = c.pg.sql("SELECT status, status_reason FROM sandboxes WHERE id = %s", (sid,))
            return rows and rows[0][0] == "terminated" and rows[0]

        assert wait_until(terminated, 20), c.pg.sql("SELECT status FROM sandboxes WHERE id = %s",
                                                    (sid,))
        assert terminated()[1] == "timeout"
        time.sleep(3)  # give a (wrong) second reaper or dispatcher time to act
        timeouts = c.pg.sql("SELECT count(*) FROM webhook_events "
                            " WHERE sandbox_id = %s AND event = 'sandbox.timeout'", (sid,))
        assert timeouts[0][0] == 1
        events = c.pg.sql("SELECT id::text, event FROM webhook_events WHERE sandbox_id = %s",
                          (sid,))
        assert {e for _, e in events} >= {"sandbox.created", "sandbox.timeout"}, events

        def all_delivered():
            got = [json.loads(q["body"])["id"] for q in rcv.requests]
            return set(got) >= {i for i, _ in events} and got

        got = wait_until(all_delivered, 20)
        assert got, (rcv.requests, events)
        time.sleep(2)
        got = [json.loads(q["body"])["id"] for q in rcv.requests]
        assert sorted(got) == sorted(set(got)), "an event was delivered twice: %s" % got
        dl = c.pg.sql("SELECT count(*), count(DISTINCT event_id) FROM webhook_deliveries d "
                      " JOIN webhook_events e ON e.id = d.event_id WHERE e.sandbox_id = %s",
                      (sid,))
        assert dl[0][0] == dl[0][1] == len(events)
    finally:
        rcv.close()


def test_deposed_leader_does_not_act(cluster):
    c = cluster(2)
    a = c.wait_leader(LEASE_S * 3)
    assert a
    b = [d for d in c.replicas if d is not a][0]
    epoch_a = c.db_row()[0]
    mark = a.mark()
    a.proc.send_signal(signal.SIGSTOP)
    try:
        # b takes over while a is paused (a's gauge cannot answer: only b is asked)
        def b_leads():
            return c.gauge(b) == 1 and c.holder() == c.identity(b)
        assert wait_until(b_leads, LEASE_S + RENEW_S + 5)
        assert c.db_row() == (epoch_a + 1, c.identity(b))
        time.sleep(1)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    # a notices (renewal deadline, the Lease, or the fence) and stops acting
    assert wait_until(lambda: lost_lines(a, mark), 10), a.tail()
    assert wait_until(lambda: c.gauge(a) == 0, 10)
    time.sleep(RENEW_S * 3)
    # nothing a did after it woke up changed the election's state
    assert c.db_row() == (epoch_a + 1, c.identity(b))
    assert c.holder() == c.identity(b) and c.gauge(b) == 1 and c.gauge(a) == 0
    assert not [o for o in a.lines(mark) if o.get("msg") == "leader: acquired"]


def test_fence_rejects_a_stale_epoch(cluster):
    """Another writer moved the epoch (as a new leader would): the next fenced transaction of
    the leader's loops fails, it drops leadership, and re-acquires with a newer epoch."""
    c = cluster(1)
    a = c.wait_leader(LEASE_S * 3)
    assert a
    epoch = c.db_row()[0]
    mark = a.mark()
    c.pg.sql("UPDATE leader_epochs SET epoch = epoch + 1, holder = 'intruder' WHERE name = %s",
             (c.lease,))
    line = wait_until(lambda: lost_lines(a, mark, "fenced"), 10)
    assert line, a.tail()
    assert line[0]["reason"] == ("fenced: the database holds epoch %d, ours is %d"
                                 % (epoch + 1, epoch))
    # the Lease still names it: it campaigns again, past the intruder's epoch
    assert wait_until(lambda: c.db_row() == (epoch + 2, c.identity(a)) and c.gauge(a) == 1, 10)
    assert c.lease_obj()["spec"]["leaseTransitions"] == epoch + 2


K8S_NS = "sbx-ldr"


def k8s_pods(emu, sid=None):
    sel = "app%3Dsandboxd" + ("%2Csandboxd.io%2Fsandbox-id%3D" + sid if sid else "")
    url = "%s/api/v1/namespaces/%s/pods?labelSelector=%s" % (emu.http, K8S_NS, sel)
    return json.loads(urllib.request.urlopen(url, timeout=10).read())["items"]


def test_k8s_follower_sandbox_reaped_once_by_leader(cluster, kube_emulator):
    """runtime.kind k8s: a sandbox created through the follower (its pod made by the follower)
    is reaped by the leader, exactly once; one pod for it, gone afterwards. The replicas have
    distinct state dirs, as in the other tests: the k8s runtime instance is the namespace's."""
    emu = kube_emulator
    req = urllib.request.Request(
        emu.http + "/api/v1/namespaces", method="POST",
        data=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": K8S_NS}}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except urllib.error.HTTPError as e:
        assert e.code == 409, e.read()
    c = cluster(2, {"SANDBOXD_RUNTIME_KIND": "k8s", "SANDBOXD_K8S_NAMESPACE": K8S_NS,
                    "SANDBOXD_K8S_IMAGE": "sandbox:test", "SANDBOXD_RECONCILER_INTERVAL": "1s"})
    rcv = Receiver()
    try:
        leader = c.wait_leader(LEASE_S * 3)
        assert leader
        follower = [d for d in c.replicas if d is not leader][0]
        org, key = register(follower)
        r = requests.post(follower.base + "/api/v1/webhooks", headers=auth(key),
                          json={"url": rcv.url, "events": ["*"]}, timeout=30)
        assert r.status_code == 201, r.text  # events are recorded for subscribed orgs only
        r = requests.post(follower.base + "/api/v1/sandbox/create", headers=auth(key),
                          json={"timeout_seconds": 2}, timeout=200)
        assert r.status_code == 201, r.text
        sid = r.json()["sandbox_id"]
        assert len(k8s_pods(emu, sid)) == 1
        refs = c.pg.sql("SELECT runtime_ref FROM sandboxes WHERE id = %s", (sid,))

        def terminated():
            rows = c.pg.sql("SELECT status, status_reason FROM sandboxes WHERE id = %s", (sid,))
            return rows and rows[0][0] == "terminated" and rows[0]

        assert wait_until(terminated, 30), (refs, c.pg.sql(
            "SELECT status, status_reason FROM sandboxes WHERE id = %s", (sid,)))
        assert terminated()[1] == "timeout"
        assert wait_until(lambda: not k8s_pods(emu, sid), 30), k8s_pods(emu, sid)
        time.sleep(3)  # give a (wrong) second reaper time to act
        n = c.pg.sql("SELECT count(*) FROM webhook_events "
                     " WHERE sandbox_id = %s AND event = 'sandbox.timeout'", (sid,))
        assert n[0][0] == 1
        assert c.pg.sql("SELECT status FROM sandboxes WHERE id = %s", (sid,))[0][0] == \
            "terminated"
        assert not k8s_pods(emu, sid)
        # one instance for both replicas, whatever their state dirs
        inst = [o.get("msg") for d in c.replicas for o in d.lines()
                if str(o.get("msg", "")).startswith("sandbox runtime started: kubernetes")]
        assert len(inst) == 2 and inst[0] == inst[1], inst
    finally:
        rcv.close()
        for p in k8s_pods(emu):
            req = urllib.request.Request(
                "%s/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=0"
                % (emu.http, K8S_NS, p["metadata"]["name"]), method="DELETE")
            try:
                urllib.request.urlopen(req, timeout=10).read()
            except urllib.error.HTTPError:
                pass
        wait_until(lambda: not k8s_pods(emu), 30)
