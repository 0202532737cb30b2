"""GET /api/v1/audit: records of mutating calls, filters, pagination, isolation."""
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from apihelpers import assert_error, is_iso8601

EVENT_FIELDS = {"id", "timestamp", "org_id", "action", "resource", "outcome", "details",
                "request_id"}


def audit(api, key, **params):
    r = api.get("audit", key=key, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"events", "total"}, body
    assert isinstance(body["events"], list) and isinstance(body["total"], int), body
    return body


def wait_events(api, key, pred, timeout=5.0, **params):
    """Audit writes may trail the response slightly: poll until pred(events) holds."""
    deadline = time.monotonic() + timeout
    while True:
        body = audit(api, key, **params)
        if pred(body["events"]) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def create_key(api, org, rid=None, **body):
    body.setdefault("name", "audit-" + uuid.uuid4().hex[:6])
    headers = {"X-Request-Id": rid} if rid else None
    r = api.post("api-keys", key=org.key, json=body, headers=headers)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_mutation_creates_audit_record(api, org):
    rid = "audit-" + uuid.uuid4().hex
    created = create_key(api, org, rid=rid)
    body = wait_events(api, org.key, lambda ev: any(e.get("request_id") == rid for e in ev))
    ev = [e for e in body["events"] if e.get("request_id") == rid]
    assert len(ev) == 1, body
    e = ev[0]
    assert set(e) >= EVENT_FIELDS, e
    assert e["action"] == "api_key.create"
    assert e["outcome"] == "success"
    assert e["org_id"] == org.org_id
    assert is_iso8601(e["timestamp"]), e
    assert isinstance(e["details"], dict), e
    assert created["api_key"]["id"] in str(e["resource"]) + \
        str(e.get("resource_id", "")) + str(e["details"]), e
    assert created["key"] not in str(e), "the new key leaked into the audit log"


def test_revoke_is_audited(api, org):
    created = create_key(api, org)
    kid = created["api_key"]["id"]
    rid = "audit-rv-" + uuid.uuid4().hex
    r = api.delete(f"api-keys/{kid}", key=org.key, headers={"X-Request-Id": rid})
    assert r.status_code == 200
    body = wait_events(api, org.key, lambda ev: any(e.get("request_id") == rid for e in ev),
                       action="api_key.revoke")
    ev = [e for e in body["events"] if e.get("request_id") == rid]
    assert len(ev) == 1 and ev[0]["action"] == "api_key.revoke", body
    assert ev[0]["outcome"] == "success"


def test_failed_mutation_is_audited_as_failure(api, org):
    rid = "audit-fail-" + uuid.uuid4().hex
    r = api.delete(f"api-keys/{uuid.uuid4()}", key=org.key, headers={"X-Request-Id": rid})
    assert r.status_code == 404
    body = wait_events(api, org.key, lambda ev: any(e.get("request_id") == rid for e in ev),
                       outcome="failure")
    ev = [e for e in body["events"] if e.get("request_id") == rid]
    assert len(ev) == 1, body
    assert ev[0]["outcome"] == "failure" and ev[0]["action"] == "api_key.revoke"
    assert all(e["outcome"] == "failure" for e in body["events"]), body


def test_reads_are_not_audited(api, org):
    rid = "audit-read-" + uuid.uuid4().hex
    assert api.get("api-keys", key=org.key, headers={"X-Request-Id": rid}).status_code == 200
    create_key(api, org)  # something later, so that we know the log has caught up
    time.sleep(0.3)
    body = audit(api, org.key, limit=100)
    assert not any(e.get("request_id") == rid for e in body["events"]), body


def test_action_filter(api, org):
    create_key(api, org)
    k = create_key(api, org)
    api.delete(f"api-keys/{k['api_key']['id']}", key=org.key)
    body = wait_events(api, org.key, lambda ev: len(ev) >= 2, action="api_key.create")
    assert body["events"] and all(e["action"] == "api_key.create" for e in body["events"])
    assert body["total"] >= 2
    body = wait_events(api, org.key, lambda ev: len(ev) >= 1, action="api_key.revoke")
    assert body["events"] and all(e["action"] == "api_key.revoke" for e in body["events"])
    assert audit(api, org.key, action="sandbox.create")["events"] == []


def _iso(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_time_filters(api, org):
    create_key(api, org)
    wait_events(api, org.key, lambda ev: len(ev) >= 1, action="api_key.create")
    now = datetime.now(timezone.utc)
    past, future = now - timedelta(hours=1), now + timedelta(hours=1)
    everything = audit(api, org.key)
    assert everything["total"] >= 1
    assert audit(api, org.key, start_time=_iso(past))["total"] == everything["total"]
    assert audit(api, org.key, start_time=_iso(future))["events"] == []
    assert audit(api, org.key, start_time=_iso(future))["total"] == 0
    assert audit(api, org.key, end_time=_iso(past))["events"] == []
    assert audit(api, org.key, start_time=_iso(past), end_time=_iso(future))["total"] == \
        everything["total"]
    for e in audit(api, org.key, start_time=_iso(past))["events"]:
        ts = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        assert ts >= past - timedelta(seconds=1)


def test_pagination(api, org):
    for _ in range(5):
        create_key(api, org)
    body = wait_events(api, org.key, lambda ev: len(ev) >= 5, action="api_key.create", limit=100)
    all_ids = [e["id"] for e in body["events"]]
    total = body["total"]
    assert total == len(all_ids) >= 5
    assert len(set(all_ids)) == len(all_ids)
    pages = []
    for offset in range(0, total, 2):
        page = audit(api, org.key, action="api_key.create", limit=2, offset=offset)
        assert page["total"] == total, page
        assert len(page["events"]) == min(2, total - offset)
        pages.extend(e["id"] for e in page["events"])
    assert pages == all_ids, "pages are not a stable split of the full list"
    assert audit(api, org.key, action="api_key.create", limit=2, offset=total)["events"] == []


def test_newest_first(api, org):
    for _ in range(3):
        create_key(api, org)
    events = wait_events(api, org.key, lambda ev: len(ev) >= 3, action="api_key.create")["events"]
    stamps = [e["timestamp"] for e in events]
    parsed = [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]
    assert parsed == sorted(parsed, reverse=True), stamps


@pytest.mark.parametrize("params", [
    {"limit": "-1"}, {"limit": "abc"}, {"offset": "-5"}, {"offset": "x"},
    {"start_time": "yesterday"}, {"end_time": "2024-13-45T00:00:00Z"}, {"outcome": "maybe"},
])
def test_bad_query_parameters(api, org, params):
    r = api.get("audit", key=org.key, params=params)
    assert r.status_code in (400, 422), r.text
    assert_error(r, r.status_code)


def test_huge_limit_is_capped(api, org):
    r = api.get("audit", key=org.key, params={"limit": "100000000"})
    if r.status_code == 200:
        assert len(r.json()["events"]) <= 1000
    else:
        assert_error(r, r.status_code)
        assert r.status_code in (400, 422)


def test_other_orgs_events_never_visible(api, two_orgs):
    a, b = two_orgs
    create_key(api, a)
    create_key(api, b)
    ev_a = wait_events(api, a.key, lambda ev: len(ev) >= 1, limit=1000)["events"]
    ev_b = wait_events(api, b.key, lambda ev: len(ev) >= 1, limit=1000)["events"]
    assert all(e["org_id"] == a.org_id for e in ev_a), ev_a
    assert all(e["org_id"] == b.org_id for e in ev_b), ev_b
    assert not ({e["id"] for e in ev_a} & {e["id"] for e in ev_b})
    # Query parameters cannot widen the view.
    r = api.get("audit", key=a.key, params={"org_id": b.org_id, "limit": 1000})
    if r.status_code == 200:
        assert all(e["org_id"] == a.org_id for e in r.json()["events"])
    else:
        assert r.status_code in (400, 403, 404, 422)


def test_audit_needs_auth(api):
    assert_error(api.get("audit"), 401)
