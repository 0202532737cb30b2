"""Webhooks (issue 5): registration and validation, signed deliveries to a real loopback
receiver (both signatures verified), lifecycle events with the documented payload shape,
retries with backoff, endpoint disabling, at-least-once delivery across a `kill -9` of the
daemon, SSRF refusals (loopback forms against a daemon without an allow list: the receiver
sees nothing), deliveries log, cross-organization 404s.

Delivery tests run a private daemon with `webhooks.allow_cidrs=127.0.0.0/8` and a retry
schedule in seconds; the SSRF tests use the session daemon, whose allow list is empty. No test
sends traffic anywhere but 127.0.0.1."""
import re
import time
import uuid

import pytest

from apihelpers import assert_error, auth
from sandboxhelpers import PrivateDaemon, SandboxClient, wait_until
from sandboxhelpers import aux_pg, sandboxes, traversable_state  # noqa: F401 (fixtures)
from webhookhelpers import Receiver

HOOK_ENV = {
    "SANDBOXD_WEBHOOKS_ALLOW_CIDRS": "127.0.0.0/8",
    "SANDBOXD_WEBHOOKS_RETRY_SCHEDULE": "1s,1s,2s",
    "SANDBOXD_WEBHOOKS_POLL_INTERVAL": "1s",
    "SANDBOXD_WEBHOOKS_LEASE": "3s",
}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def hookd(aux_pg, tmp_path_factory):
    pd = PrivateDaemon(aux_pg, tmp_path_factory.mktemp("hookd"), "hookd", HOOK_ENV).start()
    yield pd
    rc = pd.shutdown()
    assert rc in (0, None), pd.d.tail(30)


@pytest.fixture
def receivers():
    made = []

    def _make(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r

    yield _make
    for r in made:
        r.close()


def _account(pd):
    body = pd.register()
    return body["organization"]["id"], body["api_key"]["key"]


def _create_hook(api, key, url, **body):
    body = {"url": url, **body}
    r = api.post("webhooks", key=key, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _deliveries(api, key, hid, limit=None):
    r = api.get(f"webhooks/{hid}/deliveries", key=key,
                params={"limit": limit} if limit else None)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------

def test_create_list_delete_and_secret_shown_once(api, org):
    r = api.post("webhooks", key=org.key, json={"url": "https://example.invalid/hook",
                                                "events": ["sandbox.created", "command.failed"],
                                                "description": "ci"})
    assert r.status_code == 201, r.text
    w = r.json()
    assert UUID_RE.match(w["id"])
    assert w["secret"].startswith("whsec_") and len(w["secret"]) > 30
    for k, v in {"url": "https://example.invalid/hook", "enabled": True,
                 "events": ["sandbox.created", "command.failed"], "retry_count": 9,
                 "retry_delay_ms": 1000, "timeout_ms": 30000, "description": "ci",
                 "headers": {}}.items():
        assert w[k] == v, (k, w)
    assert w["created_at"]
    r = api.get("webhooks", key=org.key)
    assert r.status_code == 200
    hooks = r.json()["webhooks"]
    assert [h["id"] for h in hooks] == [w["id"]]
    assert "secret" not in hooks[0] and w["secret"] not in r.text
    r = api.delete(f"webhooks/{w['id']}", key=org.key)
    assert r.status_code == 200 and r.json() == {"success": True}
    assert api.get("webhooks", key=org.key).json()["webhooks"] == []
    assert_error(api.delete(f"webhooks/{w['id']}", key=org.key), 404, "not_found")


def test_create_with_star_string_and_own_secret(api, org):
    w = _create_hook(api, org.key, "http://hooks.example.invalid:8080/x", events="*",
                     secret="my-own-signing-secret-1234", retry_count=0, timeout_ms=500,
                     headers={"X-Team": "blue"})
    assert w["events"] == ["*"] and w["secret"] == "my-own-signing-secret-1234"
    assert w["retry_count"] == 0 and w["timeout_ms"] == 500 and w["headers"] == {"X-Team": "blue"}


@pytest.mark.parametrize("body", [
    {},
    {"url": ""},
    {"url": 5},
    {"url": "ftp://example.com/x"},
    {"url": "file:///etc/passwd"},
    {"url": "gopher://example.com/"},
    {"url": "https://user:pw@example.com/x"},
    {"url": "https://user@example.com/x"},
    {"url": "https://example.com/x#frag"},
    {"url": "https://exa mple.com/"},
    {"url": "https://example.com/" + "a" * 2100},
    {"url": "https://"},
    {"url": "https://example.com/", "events": []},
    {"url": "https://example.com/", "events": ["sandbox.exploded"]},
    {"url": "https://example.com/", "events": "sandbox.created"},
    {"url": "https://example.com/", "events": [1]},
    {"url": "https://example.com/", "secret": "short"},
    {"url": "https://example.com/", "secret": 12345678901234567},
    {"url": "https://example.com/", "retry_count": 21},
    {"url": "https://example.com/", "retry_count": -1},
    {"url": "https://example.com/", "retry_delay_ms": -5},
    {"url": "https://example.com/", "timeout_ms": 50},
    {"url": "https://example.com/", "timeout_ms": 999999},
    {"url": "https://example.com/", "headers": {"Host": "evil"}},
    {"url": "https://example.com/", "headers": {"X-Sandbox-Signature": "x"}},
    {"url": "https://example.com/", "headers": {"bad name": "x"}},
    {"url": "https://example.com/", "headers": {"X-A": "a\r\nX-B: b"}},
    {"url": "https://example.com/", "headers": ["X-A"]},
    {"url": "https://example.com/", "description": "d" * 2001},
])
def test_create_bad_input(api, org, body):
    r = api.post("webhooks", key=org.key, json=body)
    assert_error(r, 422, "validation_error")


def test_create_malformed_json(api, org):
    r = api.post("webhooks", key=org.key, data=b"{nope",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_unknown_event_message_lists_valid_names(api, org):
    r = api.post("webhooks", key=org.key, json={"url": "https://e.invalid/", "events": ["x.y"]})
    assert_error(r, 422, "validation_error")
    assert "sandbox.created" in r.json()["error"]["message"]


def test_deliveries_bad_limit_and_unknown_ids(api, org):
    w = _create_hook(api, org.key, "https://e.invalid/")
    for lim in ("0", "201", "x", ""):
        assert_error(api.get(f"webhooks/{w['id']}/deliveries", key=org.key,
                             params={"limit": lim}), 400, "invalid_query")
    for bad in (str(uuid.uuid4()), "not-a-uuid"):
        assert_error(api.get(f"webhooks/{bad}/deliveries", key=org.key), 404, "not_found")
        assert_error(api.post(f"webhooks/{bad}/test", key=org.key), 404, "not_found")
        assert_error(api.delete(f"webhooks/{bad}", key=org.key), 404, "not_found")


def test_cross_org_is_404_everywhere(api, register):
    a, b = register(), register()
    w = _create_hook(api, a.key, "https://e.invalid/")
    assert_error(api.delete(f"webhooks/{w['id']}", key=b.key), 404, "not_found")
    assert_error(api.post(f"webhooks/{w['id']}/test", key=b.key), 404, "not_found")
    assert_error(api.get(f"webhooks/{w['id']}/deliveries", key=b.key), 404, "not_found")
    assert api.get("webhooks", key=b.key).json()["webhooks"] == []
    assert len(api.get("webhooks", key=a.key).json()["webhooks"]) == 1


def test_requires_auth(api):
    assert api.get("webhooks").status_code == 401
    assert api.post("webhooks", json={"url": "https://e.invalid/"}).status_code == 401


# ---------------------------------------------------------------------------------------------
# SSRF: the session daemon has no allow list; loopback forms only, nothing may connect
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]",
                                  "localhost"])
def test_ssrf_loopback_forms_refused(api, org, receivers, host):
    rcv = receivers()
    url = f"http://{host}:{rcv.port}/hook"
    w = _create_hook(api, org.key, url, retry_count=0)
    r = api.post(f"webhooks/{w['id']}/test", key=org.key)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["success"] is False and res["status"] == "failed", res
    assert res["response_status"] is None
    assert res["error"], res
    assert "refused" in res["error"], res
    time.sleep(0.3)
    assert rcv.requests == [], "the receiver was contacted"
    d = _deliveries(api, org.key, w["id"])
    assert len(d) == 1 and d[0]["status"] == "failed" and d[0]["error"] == res["error"]


def test_ssrf_lifecycle_event_not_delivered(api, org, receivers, sandboxes):
    """Events that a daemon without an allow list dispatches are refused too."""
    rcv = receivers()
    w = _create_hook(api, org.key, rcv.url, retry_count=0)
    sandboxes.create({})
    d = wait_until(lambda: [x for x in _deliveries(api, org.key, w["id"])
                            if x["status"] == "failed"], 20)
    assert d, _deliveries(api, org.key, w["id"])
    assert "refused" in d[0]["error"]
    assert rcv.requests == []


# ---------------------------------------------------------------------------------------------
# Deliveries (private daemon with a loopback allow list)
# ---------------------------------------------------------------------------------------------

def test_test_endpoint_delivers_signed(hookd, receivers):
    org_id, key = _account(hookd)
    rcv = receivers()
    w = _create_hook(hookd.api, key, rcv.url, headers={"X-Custom": "yes"})
    rcv.secret = w["secret"]
    r = hookd.api.post(f"webhooks/{w['id']}/test", key=key)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["success"] is True and res["status"] == "success" and res["response_status"] == 200
    assert len(rcv.requests) == 1
    req = rcv.requests[0]
    assert req["problems"] == [], req["problems"]
    body = req["json"]
    assert set(body) == {"id", "event", "timestamp", "sandboxId", "orgId", "data"}
    assert body["event"] == "webhook.test" and body["orgId"] == org_id
    assert body["sandboxId"] is None and body["id"] == res["event_id"]
    assert req["headers"]["webhook-id"] == body["id"]
    assert req["headers"]["X-Custom"] == "yes"
    assert req["headers"]["Content-Type"] == "application/json"
    d = _deliveries(hookd.api, key, w["id"])
    assert len(d) == 1
    x = d[0]
    assert x["id"] == res["delivery_id"] and x["webhook_id"] == w["id"]
    assert x["event"] == "webhook.test" and x["status"] == "success" and x["attempts"] == 1
    assert x["response_status"] == 200 and x["error"] is None
    assert x["latency_ms"] >= 0 and x["response_snippet"] == '{"ok":true}'
    assert x["last_attempt_at"] and x["created_at"]


def test_lifecycle_events_payload_shape(hookd, receivers):
    org_id, key = _account(hookd)
    rcv = receivers()
    w = _create_hook(hookd.api, key, rcv.url)
    rcv.secret = w["secret"]
    c = SandboxClient(hookd.api, key, state_dir=hookd.state_dir)
    try:
        sid = c.create({})["sandbox_id"]
        assert c.execute(sid, "echo hi")["exit_code"] == 0
        r = c.execute_raw(sid, "exit 3")
        assert r.status_code == 200 and r.json()["exit_code"] == 3
        c.write_files(sid, [{"path": "a.txt", "content": "aGk="}])
        assert c.stop(sid).status_code == 200
        want = ["sandbox.created", "sandbox.ready", "command.started", "command.completed",
                "command.failed", "file.written", "sandbox.stopped"]
        got = rcv.wait(lambda: all(rcv.events(e) for e in want) and rcv, 30)
        assert got, [r["json"]["event"] for r in rcv.requests]
    finally:
        c.cleanup()
    for req in rcv.requests:
        assert req["problems"] == [], req
        b = req["json"]
        assert set(b) == {"id", "event", "timestamp", "sandboxId", "orgId", "data"}
        assert b["orgId"] == org_id and b["sandboxId"] == sid
        assert isinstance(b["data"], dict) and UUID_RE.match(b["id"])
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", b["timestamp"])
        assert req["headers"]["webhook-id"] == b["id"]
    done = rcv.events("command.completed")[0]["json"]["data"]
    assert done["command"] == "echo hi" and done["exit_code"] == 0
    assert rcv.events("command.failed")[0]["json"]["data"]["exit_code"] == 3
    assert rcv.events("file.written")[0]["json"]["data"]["paths"] == ["a.txt"]
    assert rcv.events("sandbox.stopped")[0]["json"]["data"]["reason"] == "stopped"
    ids = [r["json"]["id"] for r in rcv.requests]
    assert len(ids) == len(set(ids)), "duplicate deliveries without a restart"


def test_subscription_filter(hookd, receivers):
    _, key = _account(hookd)
    rcv = receivers()
    w = _create_hook(hookd.api, key, rcv.url, events=["sandbox.stopped"])
    rcv.secret = w["secret"]
    c = SandboxClient(hookd.api, key, state_dir=hookd.state_dir)
    try:
        sid = c.create({})["sandbox_id"]
        c.stop(sid)
        assert rcv.wait(lambda: rcv.events("sandbox.stopped"), 20)
        time.sleep(1.5)
        assert {r["json"]["event"] for r in rcv.requests} == {"sandbox.stopped"}
    finally:
        c.cleanup()


def test_retries_with_backoff_then_success(hookd, receivers):
    _, key = _account(hookd)
    rcv = receivers(responses=[(500, {}), (503, {}), (200, {})])
    w = _create_hook(hookd.api, key, rcv.url, events=["sandbox.created"], retry_count=5,
                     retry_delay_ms=0)
    rcv.secret = w["secret"]
    c = SandboxClient(hookd.api, key, state_dir=hookd.state_dir)
    try:
        c.create({})
        ok = rcv.wait(lambda: [r for r in rcv.events("sandbox.created") if r["status"] == 200],
                      30)
        assert ok, [(r["json"]["event"], r["status"]) for r in rcv.requests]
    finally:
        c.cleanup()
    tries = rcv.events("sandbox.created")
    assert [t["status"] for t in tries] == [500, 503, 200]
    assert len({t["headers"]["webhook-id"] for t in tries}) == 1, "webhook-id changed on retry"
    assert all(t["problems"] == [] for t in tries)
    gaps = [b["t"] - a["t"] for a, b in zip(tries, tries[1:])]
    assert all(g >= 0.7 for g in gaps), gaps  # 1 s ± 20 % jitter
    d = [x for x in _deliveries(hookd.api, key, w["id"]) if x["event"] == "sandbox.created"]
    assert d[0]["status"] == "success" and d[0]["attempts"] == 3


def test_retry_after_respected(hookd, receivers):
    _, key = _account(hookd)
    rcv = receivers(responses=[(429, {"Retry-After": "4"}), (200, {})])
    w = _create_hook(hookd.api, key, rcv.url, retry_delay_ms=0)
    rcv.secret = w["secret"]
    r = hookd.api.post(f"webhooks/{w['id']}/test", key=key)
    assert r.json()["status"] == "pending" and r.json()["response_status"] == 429
    assert rcv.wait(lambda: len(rcv.requests) >= 2, 20)
    gap = rcv.requests[1]["t"] - rcv.requests[0]["t"]
    assert gap >= 3.5, gap


def test_410_disables_endpoint(hookd, receivers):
    _, key = _account(hookd)
    rcv = receivers(responses=[(410, {})])
    w = _create_hook(hookd.api, key, rcv.url)
    rcv.secret = w["secret"]
    r = hookd.api.post(f"webhooks/{w['id']}/test", key=key)
    assert r.json()["status"] == "failed"
    h = hookd.api.get("webhooks", key=key).json()["webhooks"][0]
    assert h["enabled"] is False and "410" in h["disabled_reason"] and h["disabled_at"]


def test_failing_endpoint_gets_disabled(aux_pg, tmp_path_factory, receivers):
    env = dict(HOOK_ENV, SANDBOXD_WEBHOOKS_DISABLE_AFTER_FAILURES="3")
    pd = PrivateDaemon(aux_pg, tmp_path_factory.mktemp("hookfail"), "hookfail", env).start()
    try:
        _, key = _account(pd)
        rcv = receivers(responses=[(500, {})])
        w = _create_hook(pd.api, key, rcv.url, retry_count=10, retry_delay_ms=0)
        rcv.secret = w["secret"]
        pd.api.post(f"webhooks/{w['id']}/test", key=key)

        def disabled():
            h = pd.api.get("webhooks", key=key).json()["webhooks"][0]
            return h if not h["enabled"] else None
        h = wait_until(disabled, 30)
        assert h, pd.api.get("webhooks", key=key).json()
        assert "3 failed attempts" in h["disabled_reason"] and h["failure_count"] >= 3
        n = len(rcv.requests)
        assert n == 3, n
        time.sleep(2.5)
        assert len(rcv.requests) == n, "a disabled endpoint was called again"
        d = _deliveries(pd.api, key, w["id"])
        assert d[0]["status"] in ("failed", "pending")
        # new events are not fanned out to a disabled endpoint
        r = pd.api.post(f"webhooks/{w['id']}/test", key=key)
        assert r.json()["error"] == "the endpoint is disabled"
        assert len(rcv.requests) == n
    finally:
        assert pd.shutdown() in (0, None)


def test_deliveries_survive_kill9(aux_pg, tmp_path_factory, receivers):
    """The receiver fails every call until the daemon has been killed with SIGKILL mid-retry
    and restarted; then every event is delivered, duplicates only with the same webhook-id."""
    pd = PrivateDaemon(aux_pg, tmp_path_factory.mktemp("hookkill"), "hookkill",
                       dict(HOOK_ENV, SANDBOXD_WEBHOOKS_RETRY_SCHEDULE="2s")).start()
    try:
        _, key = _account(pd)
        rcv = receivers(responses=[(500, {})])
        w = _create_hook(pd.api, key, rcv.url, retry_count=20, retry_delay_ms=0)
        rcv.secret = w["secret"]
        c = SandboxClient(pd.api, key, state_dir=pd.state_dir)
        sids = [c.create({})["sandbox_id"] for _ in range(2)]
        for sid in sids:
            c.execute(sid, "true")
        # every event has been tried at least once and is waiting for a retry
        assert rcv.wait(lambda: len({r["json"]["id"] for r in rcv.requests}) >= 8, 20)
        sent = {r["json"]["id"]: r["json"]["event"] for r in rcv.requests}
        pd.kill9()
        with rcv.lock:
            rcv.responses = [(200, {})]
        pd.start()
        c.api = pd.api
        ok = rcv.wait(lambda: {r["json"]["id"] for r in rcv.requests if r["status"] == 200}
                      >= set(sent), 40)
        assert ok, (set(sent) - {r["json"]["id"] for r in rcv.requests if r["status"] == 200})
        by_id = {}
        for r in rcv.requests:
            assert r["problems"] == []
            assert r["headers"]["webhook-id"] == r["json"]["id"]
            by_id.setdefault(r["json"]["id"], set()).add(r["json"]["event"])
        assert all(len(v) == 1 for v in by_id.values()), "one id, one event"
        for sid in sids:
            c.delete(sid)
    finally:
        assert pd.shutdown() in (0, None)
