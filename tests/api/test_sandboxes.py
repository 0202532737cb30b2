"""Sandbox lifecycle API: create/get/status/list/stop/delete, validation, limits and quota,
cross-org isolation, scopes, expiry, audit. Black-box over HTTP against the session daemon."""
import re
import uuid

import pytest

from apihelpers import assert_error, is_iso8601
from sandboxhelpers import (UUID_RE, SANDBOX_STATUSES, SandboxClient, make_key, wait_status,
                            b64, require_execute_endpoint)
from sandboxhelpers import sandboxes, sandbox, client_for, traversable_state  # noqa: F401,E501 (fixtures)


def _check_sandbox(sb, org_id=None):
    for f in ("sandbox_id", "org_id", "session_id", "status", "created_at", "expires_at",
              "cpus", "memory"):
        assert f in sb, f"Sandbox lacks {f!r}: {sb}"
    assert re.match(UUID_RE, sb["sandbox_id"]), sb
    assert re.match(UUID_RE, sb["session_id"]), sb
    assert sb["status"] in SANDBOX_STATUSES, sb
    assert is_iso8601(sb["created_at"]) and is_iso8601(sb["expires_at"]), sb
    assert sb["expires_at"] > sb["created_at"], sb
    assert isinstance(sb["cpus"], str) and isinstance(sb["memory"], str), sb
    if org_id is not None:
        assert sb["org_id"] == org_id, sb


# ------------------------------------------------------------------------------ happy path

def test_create_empty_body(sandboxes):
    r = sandboxes.create_raw({})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    sb = r.json()
    _check_sandbox(sb, sandboxes.org_id)
    assert sb["status"] == "running"
    assert sb["session_id"] != sb["sandbox_id"]


def test_create_with_options_echoed(sandboxes):
    body = {"cpus": "0.5", "memory": "256Mi", "timeout_seconds": 240,
            "env": {"FOO": "bar", "_X1": "y z"}, "metadata": {"team": "qa", "n": 3}}
    sb = sandboxes.create(body)
    _check_sandbox(sb, sandboxes.org_id)
    assert sb["cpus"] == "0.5" and sb["memory"] == "256Mi", sb
    assert sb.get("timeout_seconds") == 240, sb
    assert sb.get("metadata") == {"team": "qa", "n": 3}, sb
    # GET returns the same object
    got = sandboxes.get(sb["sandbox_id"])
    assert got.status_code == 200, got.text
    g = got.json()
    for k in ("sandbox_id", "org_id", "session_id", "cpus", "memory", "metadata",
              "created_at", "expires_at"):
        assert g[k] == sb[k], (k, g, sb)


def test_create_env_reaches_commands(sandboxes):
    sb = sandboxes.create({"env": {"GREETING": "hello-from-env"}})
    res = sandboxes.sh(sb["sandbox_id"], 'printf "%s" "$GREETING"')
    assert res["exit_code"] == 0 and res["stdout"] == "hello-from-env", res


def test_get_and_status(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    r = sandboxes.get(sid)
    assert r.status_code == 200, r.text
    _check_sandbox(r.json(), sandboxes.org_id)
    s = sandboxes.status(sid)
    assert s.status_code == 200, s.text
    body = s.json()
    assert body["sandbox_id"] == sid and body["status"] == "running", body
    assert is_iso8601(body["expires_at"]), body


def test_stop_then_terminated_and_stop_twice(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    r = sandboxes.stop(sid)
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True} or r.json().get("success") is True, r.text
    st = sandboxes.status(sid).json()
    assert st["status"] == "terminated", st
    assert sandboxes.get(sid).json()["status"] == "terminated"
    # idempotent
    r2 = sandboxes.stop(sid)
    assert r2.status_code == 200 and r2.json().get("success") is True, r2.text
    assert sandboxes.status(sid).json()["status"] == "terminated"


def test_delete_then_404(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    r = sandboxes.delete(sid)
    assert r.status_code == 200 and r.json().get("success") is True, r.text
    assert_error(sandboxes.get(sid), 404, "not_found")
    assert_error(sandboxes.status(sid), 404, "not_found")
    assert_error(sandboxes.stop(sid), 404, "not_found")
    assert_error(sandboxes.delete(sid), 404, "not_found")
    listed = {s["sandbox_id"] for s in sandboxes.list({"limit": 200}).json()["sandboxes"]}
    assert sid not in listed


def test_delete_after_stop(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    assert sandboxes.stop(sid).status_code == 200
    r = sandboxes.delete(sid)
    assert r.status_code == 200 and r.json().get("success") is True, r.text
    assert_error(sandboxes.get(sid), 404)


# ------------------------------------------------------------------------------ list

def test_list_wrapped_and_status_filter(sandboxes):
    a = sandboxes.create({})
    b = sandboxes.create({})
    assert sandboxes.stop(b["sandbox_id"]).status_code == 200
    r = sandboxes.list()
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body.get("sandboxes"), list), body
    ids = {s["sandbox_id"] for s in body["sandboxes"]}
    assert {a["sandbox_id"], b["sandbox_id"]} <= ids
    for s in body["sandboxes"]:
        _check_sandbox(s, sandboxes.org_id)

    running = sandboxes.list({"status": "running"}).json()["sandboxes"]
    assert {s["sandbox_id"] for s in running} == {a["sandbox_id"]}
    term = sandboxes.list({"status": "terminated"}).json()["sandboxes"]
    assert {s["sandbox_id"] for s in term} == {b["sandbox_id"]}
    both = sandboxes.list({"status": "running,terminated"}).json()["sandboxes"]
    assert {s["sandbox_id"] for s in both} == {a["sandbox_id"], b["sandbox_id"]}
    none = sandboxes.list({"status": "error,creating"}).json()["sandboxes"]
    assert none == []


def test_list_metadata_filter(sandboxes, pg):
    pg.sql("UPDATE orgs SET plan = 'pro' WHERE id = %s", (sandboxes.org_id,))  # 3 at once
    x = sandboxes.create({"metadata": {"env": "prod", "team": "a"}})
    y = sandboxes.create({"metadata": {"env": "dev", "team": "a"}})
    sandboxes.create({})
    r = sandboxes.list({"metadata.env": "prod"})
    assert r.status_code == 200, r.text
    assert [s["sandbox_id"] for s in r.json()["sandboxes"]] == [x["sandbox_id"]]
    r = sandboxes.list({"metadata.team": "a"})
    assert {s["sandbox_id"] for s in r.json()["sandboxes"]} == {x["sandbox_id"], y["sandbox_id"]}
    r = sandboxes.list({"metadata.team": "a", "metadata.env": "dev"})
    assert [s["sandbox_id"] for s in r.json()["sandboxes"]] == [y["sandbox_id"]]
    r = sandboxes.list({"metadata.team": "nope"})
    assert r.json()["sandboxes"] == []


def test_list_pagination_walks_everything(sandboxes):
    created = set()
    for _ in range(7):
        sb = sandboxes.create({})
        created.add(sb["sandbox_id"])
        # stop them so the quota never blocks; listing covers every status
        assert sandboxes.stop(sb["sandbox_id"]).status_code == 200
    seen = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = sandboxes.list(params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["sandboxes"]) <= 2, body
        seen += [s["sandbox_id"] for s in body["sandboxes"]]
        pages += 1
        assert pages < 20, "pagination does not terminate"
        cursor = body.get("next_cursor")
        if not cursor:
            break
        assert body["sandboxes"], "a page with a next_cursor must not be empty"
    assert len(seen) == len(set(seen)), f"duplicates across pages: {seen}"
    assert set(seen) == created, (set(seen) ^ created)
    assert pages == 4
    # newest first
    full = [s["sandbox_id"] for s in sandboxes.list({"limit": 200}).json()["sandboxes"]]
    assert full == seen


def test_list_other_org_id_refused_or_empty(sandboxes, register):
    other = register()
    r = sandboxes.list({"org_id": other.org_id})
    assert r.status_code in (400, 403, 404), r.text


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("raw", [b"{", b"{\"cpus\": }", b"nul", b"{\"a\":1}x", b"\xff"])
def test_create_malformed_json(sandboxes, raw):
    assert_error(sandboxes.create_raw(raw), 400)
    assert sandboxes.list().json()["sandboxes"] == []


@pytest.mark.parametrize("raw", [b"[]", b"\"x\"", b"42", b"null"])
def test_create_non_object_json(sandboxes, raw):
    assert_error(sandboxes.create_raw(raw), 422)
    assert sandboxes.list().json()["sandboxes"] == []


@pytest.mark.parametrize("body", [
    {"cpus": {}}, {"cpus": []}, {"cpus": "lots"}, {"cpus": "0"}, {"cpus": "-1"}, {"cpus": True},
    {"memory": "lots"}, {"memory": {}}, {"memory": "1Ki"}, {"memory": -5}, {"memory": "0"},
    {"timeout_seconds": "x"}, {"timeout_seconds": 0}, {"timeout_seconds": -1},
    {"timeout_seconds": 1.5}, {"timeout_seconds": {}},
    {"env": []}, {"env": "A=B"}, {"env": {"A": 1}}, {"env": {"A": None}}, {"env": {"A": {}}},
    {"env": {"1A": "x"}}, {"env": {"A-B": "x"}}, {"env": {"": "x"}}, {"env": {"A=B": "x"}},
    {"metadata": []}, {"metadata": "x"}, {"metadata": 1},
    {"template": 5}, {"template": ""},
], ids=lambda b: repr(b))
def test_create_validation(sandboxes, body):
    r = sandboxes.create_raw(body)
    assert_error(r, 422)
    assert r.json()["error"]["code"] in ("validation_error", "invalid_template",
                                         "unknown_template"), r.text
    # nothing was created
    assert sandboxes.list().json()["sandboxes"] == []


def test_create_unknown_template(sandboxes):
    """Issue 5: an unknown template is 400 unknown_template naming the valid templates."""
    r = sandboxes.create_raw({"template": "no-such-template"})
    assert_error(r, 400, "unknown_template")
    assert "base" in r.json()["error"]["message"]
    assert sandboxes.list().json()["sandboxes"] == []


@pytest.mark.parametrize("body", [
    {"cpus": "64"}, {"cpus": "2.5"}, {"memory": "64Gi"}, {"memory": "5Gi"},
    {"timeout_seconds": 301}, {"timeout_seconds": 365 * 24 * 3600},
], ids=lambda b: repr(b))
def test_create_over_plan_limits(sandboxes, body):
    # the free plan: 2 CPUs, 4 GiB, 5 min (plans.free.*; the code names the limit)
    field = next(iter(body))
    code = {"cpus": "cpus_limit_exceeded", "memory": "memory_limit_exceeded",
            "timeout_seconds": "duration_limit_exceeded"}[field]
    err = assert_error(sandboxes.create_raw(body), 422, code)
    assert err["plan"] == "free", err
    assert sandboxes.list().json()["sandboxes"] == []


def test_create_at_plan_limits_ok(sandboxes):
    sb = sandboxes.create({"cpus": "2", "memory": "4Gi", "timeout_seconds": 300})
    assert sb["cpus"] == "2"


def test_concurrent_quota(sandboxes):
    made = []
    refused = None
    for _ in range(30):
        r = sandboxes.create_raw({"memory": "32Mi"})
        if r.status_code == 201:
            made.append(r.json()["sandbox_id"])
            continue
        refused = r
        break
    assert refused is not None, "never refused"
    err = assert_error(refused, 429, "concurrency_limit_exceeded")
    assert (err["limit"], err["current"], err["maximum"], err["plan"]) == \
        ("max_concurrent", 2, 2, "free"), err
    assert len(made) == 2, f"free plan allows 2 active sandboxes, got {len(made)}"
    # a stopped one frees a slot
    assert sandboxes.stop(made[0]).status_code == 200
    r = sandboxes.create_raw({"memory": "32Mi"})
    assert r.status_code == 201, r.text
    assert_error(sandboxes.create_raw({"memory": "32Mi"}), 429, "concurrency_limit_exceeded")
    running = sandboxes.list({"status": "running,creating", "limit": 200}).json()["sandboxes"]
    assert len(running) == 2


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": "201"}, {"limit": ""},
    {"cursor": "garbage"}, {"cursor": "x" * 57}, {"cursor": "2024010100000000000_" + "0" * 36},
    {"status": "bogus"}, {"status": "running,bogus"}, {"status": ""}, {"status": ","},
], ids=lambda p: repr(p))
def test_list_bad_query(sandboxes, params):
    assert_error(sandboxes.list(params), 400)


@pytest.mark.parametrize("sid", ["not-a-uuid", "1234", str(uuid.uuid4()),
                                 "00000000-0000-0000-0000-00000000000g"])
def test_unknown_or_invalid_id_is_404(sandboxes, sid):
    assert_error(sandboxes.get(sid), 404, "not_found")
    assert_error(sandboxes.status(sid), 404, "not_found")
    assert_error(sandboxes.stop(sid), 404, "not_found")
    assert_error(sandboxes.delete(sid), 404, "not_found")
    assert_error(sandboxes.write_files(sid, [{"path": "a", "content": b64("x")}]), 404,
                 "not_found")
    assert_error(sandboxes.read_file(sid, "a"), 404, "not_found")
    r = sandboxes.execute_raw(sid, "true")
    require_execute_endpoint(r)
    assert_error(r, 404, "not_found")


def test_stop_delete_malformed_body_ignored_or_refused(sandboxes, sandbox):
    # stop takes no body; a junk body must not crash it (either accepted or 400)
    r = sandboxes.api.post(f"sandbox/{sandbox['sandbox_id']}/stop", key=sandboxes.key,
                           data=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400), r.text


# ------------------------------------------------------------------------------ cross-org

def _strip(err):
    return {k: v for k, v in err.items() if k != "request_id"}


def test_cross_org_is_404(api, two_orgs, client_for):
    a, b = two_orgs
    ca, cb = client_for(a), client_for(b)
    sb = ca.create({})
    sid = sb["sandbox_id"]
    missing = str(uuid.uuid4())
    calls = [
        ("get", lambda c, i: c.get(i)),
        ("status", lambda c, i: c.status(i)),
        ("files-write", lambda c, i: c.write_files(i, [{"path": "x", "content": b64("x")}])),
        ("files-read", lambda c, i: c.read_file(i, "x")),
        ("execute", lambda c, i: c.execute_raw(i, "true")),
        ("stop", lambda c, i: c.stop(i)),
        ("delete", lambda c, i: c.delete(i)),
    ]
    for name, call in calls:
        other = call(cb, sid)
        if name == "execute":
            require_execute_endpoint(other)
        e_other = assert_error(other, 404)
        e_missing = assert_error(call(cb, missing), 404)
        assert _strip(e_other) == _strip(e_missing), (name, e_other, e_missing)
        assert sid not in other.text
    # B's list does not show it, B's status filter neither
    assert sid not in cb.list({"limit": 200}).text
    # A's sandbox is untouched and still works
    st = ca.status(sid).json()
    assert st["status"] == "running", st
    r = ca.read_file(sid, "x")
    assert r.status_code == 404, r.text  # B's write did not land
    res = ca.sh(sid, "echo ok")
    assert res["stdout"].strip() == "ok"


def test_x_org_id_mismatch_on_sandbox_routes(api, two_orgs, client_for):
    a, b = two_orgs
    sb = client_for(a).create({})
    r = api.get(f"sandbox/{sb['sandbox_id']}", key=a.key, org_id=b.org_id)
    assert_error(r, 401)
    r = api.post("sandbox/create", key=a.key, org_id=b.org_id, json={})
    assert_error(r, 401)
    assert client_for(b).list().json()["sandboxes"] == []


# ------------------------------------------------------------------------------ scopes

def test_read_only_key(api, org, client_for):
    owner = client_for(org)
    sb = owner.create({})
    sid = sb["sandbox_id"]
    ro = SandboxClient(api, make_key(api, org.key, ["read"]))
    assert ro.get(sid).status_code == 200
    assert ro.status(sid).status_code == 200
    assert ro.list().status_code == 200
    assert_error(ro.create_raw({}), 403, "insufficient_scope")
    assert_error(ro.stop(sid), 403, "insufficient_scope")
    assert_error(ro.delete(sid), 403, "insufficient_scope")
    assert_error(ro.write_files(sid, [{"path": "x", "content": b64("x")}]), 403,
                 "insufficient_scope")
    r = ro.execute_raw(sid, "true")
    require_execute_endpoint(r)
    assert_error(r, 403, "insufficient_scope")
    assert owner.status(sid).json()["status"] == "running"
    assert len(owner.list().json()["sandboxes"]) == 1


# ------------------------------------------------------------------------------ expiry

def test_expiry_terminates_with_timeout(sandboxes):
    sb = sandboxes.create({"timeout_seconds": 2})
    sid = sb["sandbox_id"]
    st = wait_status(sandboxes, sid, "terminated", timeout=15)
    assert st.get("status") == "terminated", st
    assert st.get("status_reason") == "timeout", st
    r = sandboxes.execute_raw(sid, "true")
    require_execute_endpoint(r)
    assert_error(r, 409)
    assert_error(sandboxes.read_file(sid, "x"), 409)
    # it no longer counts against anything active
    assert sandboxes.list({"status": "running"}).json()["sandboxes"] == []


# ------------------------------------------------------------------------------ audit

def test_audit_records(api, sandboxes):
    a = sandboxes.create({})
    b = sandboxes.create({})
    assert sandboxes.stop(a["sandbox_id"]).status_code == 200
    assert sandboxes.delete(b["sandbox_id"]).status_code == 200

    def events(sid):
        r = api.get("audit", key=sandboxes.key, params={"sandbox_id": sid, "limit": 100})
        assert r.status_code == 200, r.text
        return r.json()["events"]

    ea = events(a["sandbox_id"])
    eb = events(b["sandbox_id"])
    acts_a = sorted(e["action"] for e in ea)
    acts_b = sorted(e["action"] for e in eb)
    assert acts_a == ["sandbox.create", "sandbox.stop"], ea
    assert acts_b == ["sandbox.create", "sandbox.delete"], eb
    for e in ea + eb:
        assert e["sandbox_id"] in (a["sandbox_id"], b["sandbox_id"]), e
        assert e["org_id"] == sandboxes.org_id, e
        assert e["outcome"] == "success", e
    # a refused create is audited as a failure without a sandbox id
    r = sandboxes.create_raw({"cpus": "64"})
    assert r.status_code == 422
    r = api.get("audit", key=sandboxes.key,
                params={"action": "sandbox.create", "outcome": "failure"})
    assert r.status_code == 200
    assert r.json()["total"] >= 1, r.text
