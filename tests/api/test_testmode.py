"""Test mode (issue 8): sk_test_ keys see only test data, responses carry the test-mode and
billing headers, test usage is billed 'sandbox', /test/reset, retention, test tenants."""
import time
import uuid

import pytest
import requests

from apihelpers import assert_error

ADMIN = "adm-" + uuid.uuid4().hex


def h(key):
    return {"Authorization": f"ApiKey {key}"}


@pytest.fixture
def keys(api, org):
    r = api.post("api-keys", key=org.key, json={"name": "ci", "mode": "test"})
    assert r.status_code == 201, r.text
    return org, r.json()["key"]


def test_isolation_headers_reset(api, keys, pg):
    org, tkey = keys
    assert tkey.startswith("sk_test_")
    live = api.post("sandbox/create", key=org.key, json={"memory": "32Mi"})
    assert live.status_code == 201 and "X-Sandbox-Test-Mode" not in live.headers
    lid = live.json()["sandbox_id"]
    t = api.post("sandbox/create", key=tkey, json={"memory": "32Mi"})
    assert t.status_code == 201, t.text
    assert t.headers["X-Sandbox-Test-Mode"] == "true"
    assert t.headers["X-Sandbox-Billing-Status"] == "sandbox"
    tid = t.json()["sandbox_id"]
    assert pg.sql("SELECT test FROM sandboxes WHERE id = %s", (tid,)) == [(True,)]
    # each mode sees only its own sandboxes and keys
    assert [s["sandbox_id"] for s in api.get("sandboxes", key=tkey).json()["sandboxes"]] == [tid]
    assert [s["sandbox_id"] for s in api.get("sandboxes", key=org.key).json()["sandboxes"]] \
        == [lid]
    assert_error(api.get(f"sandbox/{lid}", key=tkey), 404)
    assert_error(api.post(f"sandbox/{lid}/stop", key=tkey), 404)
    test_keys = api.get("api-keys", key=tkey).json()["api_keys"]
    assert all(k["mode"] == "test" for k in test_keys), test_keys
    live_key_id = [k for k in api.get("api-keys", key=org.key).json()["api_keys"]
                   if k["mode"] == "live"][0]["id"]
    assert_error(api.delete(f"api-keys/{live_key_id}", key=tkey), 404)
    assert_error(api.post("api-keys", key=tkey, json={"name": "l", "mode": "live"}), 403)
    # usage: test creations are billed 'sandbox' and not in live totals
    rows = pg.sql("SELECT billing_status FROM usage_events WHERE sandbox_id = %s "
                  "AND kind = 'sandbox_created'", (tid,))
    assert rows == [("sandbox",)]
    assert api.get("usage/current", key=org.key).json()["sandbox_creations"] == 1
    cur = api.get("usage/current", key=tkey)
    assert cur.json()["sandbox_creations"] == 1 and cur.json()["billing_status"] == "sandbox"
    # reset: live key refused; test key deletes test data only
    assert_error(api.post("test/reset", key=org.key), 403, "test_mode_required")
    r = api.post("test/reset", key=tkey)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deleted"]["sandboxes"] == 1 and "message" in body and "timestamp" in body
    assert pg.sql("SELECT count(*) FROM sandboxes WHERE id = %s", (tid,)) == [(0,)]
    assert api.get(f"sandbox/{lid}", key=org.key).json()["status"] == "running"
    assert api.get("api-keys", key=org.key).status_code == 200
    api.delete(f"sandbox/{lid}", key=org.key)


def test_retention_reaper(api, keys, pg):
    org, tkey = keys
    t = api.post("sandbox/create", key=tkey, json={"memory": "32Mi"}).json()["sandbox_id"]
    live = api.post("sandbox/create", key=org.key, json={"memory": "32Mi"}).json()["sandbox_id"]
    pg.sql("UPDATE sandboxes SET created_at = now() - interval '8 days' WHERE id IN (%s, %s)",
           (t, live))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if pg.sql("SELECT count(*) FROM sandboxes WHERE id = %s", (t,)) == [(0,)]:
            break
        time.sleep(0.5)
    assert pg.sql("SELECT count(*) FROM sandboxes WHERE id = %s", (t,)) == [(0,)]
    assert pg.sql("SELECT status FROM sandboxes WHERE id = %s", (live,)) == [("running",)]
    api.delete(f"sandbox/{live}", key=org.key)


@pytest.fixture(scope="module")
def adm(start_daemon):
    return start_daemon("sandboxd-testmode", {"SANDBOXD_ADMIN_TOKEN": ADMIN})


def test_test_tenant_expires(adm, pg):
    url = adm.base + "/api/v1/test-tenants"
    assert_error(requests.post(url, json={"name": "ci"}, timeout=30), 401, "invalid_admin_token")
    r = requests.post(url, json={"name": "ci run", "ttl_seconds": 3},
                      headers={"X-Admin-Token": ADMIN}, timeout=30)
    assert r.status_code == 201, r.text
    t = r.json()
    assert set(t) >= {"tenant_id", "api_key", "expires_at"} and t["api_key"].startswith("sk_test_")
    r = requests.post(adm.base + "/api/v1/sandbox/create", json={"memory": "32Mi"},
                      headers=h(t["api_key"]), timeout=30)
    assert r.status_code == 201 and r.headers["X-Sandbox-Test-Mode"] == "true", r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if pg.sql("SELECT count(*) FROM orgs WHERE id = %s", (t["tenant_id"],)) == [(0,)]:
            break
        time.sleep(0.5)
    assert pg.sql("SELECT count(*) FROM orgs WHERE id = %s", (t["tenant_id"],)) == [(0,)]
    r = requests.get(adm.base + "/api/v1/sandboxes", headers=h(t["api_key"]), timeout=30)
    assert_error(r, 401)
