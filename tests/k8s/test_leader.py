"""Leader election with fenced writes (controller/leader.c, docs/internals/LEADER.md): two or
three sandboxd replicas against one Postgres and the Kubernetes API emulator's Lease.

The replicas run runtime.kind k8s against the emulator, all replicas of one election sharing one
namespace (named like its Lease, so tests never see each other's pods or rows: the runtime
instance is the namespace's), with distinct state dirs, leader.enabled and a short lease (4 s,
renewed every 1 s) so that the tests are quick. Pods are counted with the emulator's list: no
sandbox ever has two.

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


def kreq(emu, method, path, body=None):
    """A request on the emulator's plain-HTTP API; the parsed answer (404 → None)."""
    req = urllib.request.Request(emu.http + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        return json.loads(urllib.request.urlopen(req, timeout=10).read())
    except urllib.error.HTTPError as e:
        if e.code in (404, 409):
            return None
        raise


class Cluster:
    """Replicas of one election (one Lease name) with runtime.kind k8s on one namespace (named
    like the Lease, which lives there too)."""

    def __init__(self, pg, emu, workdir, n):
        self.pg, self.emu = pg, emu
        self.lease = "ldr-" + uuid.uuid4().hex[:10]
        self.ns = self.lease
        kreq(emu, "POST", "/api/v1/namespaces",
             {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}})
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
                "SANDBOXD_K8S_NAMESPACE": self.ns,
                "SANDBOXD_RUNTIME_KIND": "k8s",
                "SANDBOXD_K8S_IMAGE": "sandbox:test",
                "SANDBOXD_RECONCILER_INTERVAL": "1s",
                "SANDBOXD_WEBHOOKS_ALLOW_CIDRS": "127.0.0.0/8",
                "SANDBOXD_WEBHOOKS_POLL_INTERVAL": "1s",
                "SANDBOXD_LOG_LEVEL": "info",
                "SANDBOXD_SECRETS_KEY": secrets_key,
                "POD_NAME": "%s-r%d" % (self.lease, i),
            }
            self.replicas.append(H.Daemon(pg, workdir, "%s-r%d" % (self.lease, i), env))
        for d in self.replicas:
            d.start()

    def identity(self, d):
        return d.extra_env["POD_NAME"]

    def pods(self, sid=None):
        """The sandbox pods of the namespace (of one sandbox)."""
        sel = "app%3Dsandboxd" + ("%2Csandboxd.io%2Fsandbox-id%3D" + sid if sid else "")
        return kreq(self.emu, "GET", "/api/v1/namespaces/%s/pods?labelSelector=%s"
                    % (self.ns, sel))["items"]

    def instance(self):
        """The runtime instance every replica names (the namespace's), from their logs."""
        names = {str(o.get("msg")).rsplit("instance ", 1)[-1].rstrip(")")
                 for d in self.replicas for o in d.lines()
                 if str(o.get("msg", "")).startswith("sandbox runtime started: kubernetes")}
        assert len(names) == 1, names
        return names.pop()

    def rows(self):
        """{sandbox id: status} of this election's sandboxes."""
        return dict(self.pg.sql("SELECT id::text, status FROM sandboxes WHERE runtime_ref = %s",
                                (self.instance(),)))

    def agree(self):
        """None when every running sandbox has exactly one pod, Running, and every pod belongs
        to a running sandbox; else what is wrong."""
        by = {}
        for p in self.pods():
            by.setdefault(p["metadata"]["labels"]["sandboxd.io/sandbox-id"], []).append(
                p["status"]["phase"])
        rows = self.rows()
        wrong = [(sid, st, by.get(sid)) for sid, st in rows.items()
                 if (st == "running") != (by.get(sid) == ["Running"])]
        wrong += [("pod without a running row", sid) for sid in by if sid not in rows]
        return wrong or None

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
        kreq(self.emu, "DELETE", "/api/v1/namespaces/" + self.ns)  # its pods with it
        return problems


@pytest.fixture
def cluster(pg, kube_emulator, tmp_path):
    made = []

    def _make(n):
        c = Cluster(pg, kube_emulator, tmp_path, n)
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

def create(d, key, **body):
    r = requests.post(d.base + "/api/v1/sandbox/create", headers=auth(key), json=body,
                      timeout=200)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "running", r.json()
    return r.json()["sandbox_id"]


def execute(d, key, sid, command):
    r = requests.post(d.base + "/api/v1/sandbox/%s/execute" % sid, headers=auth(key),
                      json={"command": command}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def timeout_events(c, sid):
    return c.pg.sql("SELECT count(*) FROM webhook_events "
                    " WHERE sandbox_id = %s AND event = 'sandbox.timeout'", (sid,))[0][0]


def delivered_once(c, rcv, sids):
    """Every event of the sandboxes reached the receiver, none twice (received and recorded)."""
    events = c.pg.sql("SELECT id::text FROM webhook_events WHERE sandbox_id = ANY(%s::uuid[])",
                      (list(sids),))
    want = {e for (e,) in events}
    got = wait_until(lambda: (lambda g: g if set(g) >= want else None)(
        [json.loads(q["body"])["id"] for q in rcv.requests]), 30)
    assert got, (rcv.requests, want)
    time.sleep(2)  # a (wrong) second delivery would come now
    got = [json.loads(q["body"])["id"] for q in rcv.requests if json.loads(q["body"])["id"] in want]
    assert sorted(got) == sorted(set(got)), "an event was delivered twice: %s" % got
    dl = c.pg.sql("SELECT count(*), count(DISTINCT event_id) FROM webhook_deliveries d "
                  " JOIN webhook_events e ON e.id = d.event_id "
                  " WHERE e.sandbox_id = ANY(%s::uuid[])", (list(sids),))
    assert dl[0][0] == dl[0][1] == len(want)


# ---------------------------------------------------------------------------------------------

def test_exactly_one_leader_then_failover_after_kill(cluster):
    """Kill -9 of the leader while its sandboxes live and one is about to expire: another
    replica leads within the lease duration, reaps the expiring one exactly once, delivers
    every event once, and no sandbox ever has two pods; every survivor serves the API."""
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

    followers = [d for d in c.replicas if d is not first]
    rcv = Receiver()
    try:
        org, key = register(followers[0])
        c.pg.sql("UPDATE orgs SET plan = 'pro' WHERE id = %s", (org,))  # > 2 live sandboxes
        r = requests.post(followers[0].base + "/api/v1/webhooks", headers=auth(key),
                          json={"url": rcv.url, "events": ["*"]}, timeout=30)
        assert r.status_code == 201, r.text
        kept_f = create(followers[0], key)             # a follower's pod
        kept_l = create(first, key)                    # the leader's pod
        expiring = create(first, key, timeout_seconds=LEASE_S + 2)
        for sid in (kept_f, kept_l, expiring):
            assert len(c.pods(sid)) == 1

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

        # the new leader reaps the expiring sandbox, once; its pod goes
        def reaped():
            rows = c.pg.sql("SELECT status, status_reason FROM sandboxes WHERE id = %s",
                            (expiring,))
            return rows[0] if rows[0][0] == "terminated" else None
        assert wait_until(reaped, 30), c.rows()
        assert reaped()[1] == "timeout"
        assert wait_until(lambda: not c.pods(expiring), 30), c.pods(expiring)
        time.sleep(2.5)  # reconciler passes of the new leader: nothing else moves
        assert timeout_events(c, expiring) == 1
        for sid in (kept_f, kept_l):
            assert len(c.pods(sid)) == 1, c.pods(sid)
        assert c.rows()[kept_f] == c.rows()[kept_l] == "running"

        # the API is served by every survivor, leader or not, for every sandbox
        for d in c.alive():
            assert requests.get(d.base + "/readyz", timeout=10).status_code == 200
            r = requests.get(d.base + "/api/v1/sandboxes", headers=auth(key), timeout=30)
            assert r.status_code == 200, r.text
            for sid in (kept_f, kept_l):
                assert execute(d, key, sid, "echo alive")["stdout"] == "alive\n"
            new = create(d, key)
            assert len(c.pods(new)) == 1
        assert c.agree() is None, c.agree()
        delivered_once(c, rcv, c.rows())
    finally:
        rcv.close()


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
    """A sandbox created through the follower (its pod made by the follower) is reaped by the
    leader exactly once; one pod for it, gone afterwards; each event delivered once."""
    c = cluster(2)
    leader = c.wait_leader(LEASE_S * 3)
    assert leader
    follower = [d for d in c.replicas if d is not leader][0]
    rcv = Receiver()
    try:
        org, key = register(follower)
        r = requests.post(follower.base + "/api/v1/webhooks", headers=auth(key),
                          json={"url": rcv.url, "events": ["*"]}, timeout=30)
        assert r.status_code == 201, r.text  # events are recorded for subscribed orgs only
        sid = create(follower, key, timeout_seconds=2)
        assert len(c.pods(sid)) == 1

        def terminated():
            rows = c.pg.sql("SELECT status, status_reason FROM sandboxes WHERE id = %s", (sid,))
            return rows and rows[0][0] == "terminated" and rows[0]

        assert wait_until(terminated, 30), c.rows()
        assert terminated()[1] == "timeout"
        assert wait_until(lambda: not c.pods(sid), 30), c.pods(sid)
        time.sleep(3)  # give a (wrong) second reaper or dispatcher time to act
        assert timeout_events(c, sid) == 1
        assert c.rows()[sid] == "terminated" and not c.pods(sid)
        events = c.pg.sql("SELECT event FROM webhook_events WHERE sandbox_id = %s", (sid,))
        assert {e for (e,) in events} >= {"sandbox.created", "sandbox.ready", "sandbox.timeout"}
        delivered_once(c, rcv, [sid])
        c.instance()  # one instance for both replicas, whatever their state dirs
    finally:
        rcv.close()


def test_deposed_leader_does_not_act(cluster):
    c = cluster(2)
    a = c.wait_leader(LEASE_S * 3)
    assert a
    b = [d for d in c.replicas if d is not a][0]
    epoch_a = c.db_row()[0]
    org, key = register(b)
    mark = a.mark()
    a.proc.send_signal(signal.SIGSTOP)
    try:
        # b takes over while a is paused (a's gauge cannot answer: only b is asked)
        def b_leads():
            return c.gauge(b) == 1 and c.holder() == c.identity(b)
        assert wait_until(b_leads, LEASE_S + RENEW_S + 5)
        assert c.db_row() == (epoch_a + 1, c.identity(b))
        # a sandbox a has never seen: a stale leader would call it an orphan or lost
        sid = create(b, key)
        time.sleep(1)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    # a notices (renewal deadline, the Lease, or the fence) and stops acting
    assert wait_until(lambda: lost_lines(a, mark), 10), a.tail()
    assert wait_until(lambda: c.gauge(a) == 0, 10)
    time.sleep(RENEW_S * 3)
    # nothing a did after it woke up changed the election's state or the sandboxes
    assert c.db_row() == (epoch_a + 1, c.identity(b))
    assert c.holder() == c.identity(b) and c.gauge(b) == 1 and c.gauge(a) == 0
    assert not [o for o in a.lines(mark) if o.get("msg") == "leader: acquired"]
    assert c.rows()[sid] == "running" and len(c.pods(sid)) == 1
    assert execute(a, key, sid, "echo seen")["stdout"] == "seen\n"  # a serves it too
    assert c.agree() is None, c.agree()


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
