"""Plans and quotas from config (issue 8): per-sandbox maximums (422), concurrency and the
monthly count (429) with structured error fields, the admin plan endpoint, usage costs."""
import uuid

import pytest

from apihelpers import assert_error
from sandboxhelpers import SandboxClient, traversable_state  # noqa: F401 (fixture)

ADMIN = "adm-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def pd(start_daemon):
    return start_daemon("sandboxd-plans", {
        "SANDBOXD_ADMIN_TOKEN": ADMIN,
        "SANDBOXD_PLANS_FREE_MONTHLY_SANDBOXES": "3",
        "SANDBOXD_PLANS_PRO_MONTHLY_SANDBOXES": "100",
    })


@pytest.fixture
def acct(pd):
    import requests
    r = requests.post(pd.base + "/api/v1/register",
                      json={"email": f"p-{uuid.uuid4().hex[:10]}@example.com",
                            "organization_name": "Plans " + uuid.uuid4().hex[:8]}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def client(pd, acct, traversable_state):
    from conftest import Api
    c = SandboxClient(Api(pd.base), acct["api_key"]["key"], acct["organization"]["id"],
                      traversable_state.state_dir)
    yield c
    c.cleanup()


def set_plan(pd, org_id, plan, token=ADMIN):
    import requests
    return requests.put(f"{pd.base}/api/v1/admin/orgs/{org_id}/plan",
                        headers={"X-Admin-Token": token} if token else {},
                        json={"plan": plan}, timeout=30)


@pytest.mark.parametrize("body,code,limit,current,maximum", [
    ({"cpus": "3"}, "cpus_limit_exceeded", "max_cpus", 3, 2),
    ({"memory": "5Gi"}, "memory_limit_exceeded", "max_memory", 5 << 30, 4 << 30),
    ({"timeout_seconds": 301}, "duration_limit_exceeded", "max_duration", 301, 300),
])
def test_per_sandbox_maximums(client, body, code, limit, current, maximum):
    err = assert_error(client.create_raw(body), 422, code)
    assert (err["limit"], err["current"], err["maximum"], err["plan"]) == \
        (limit, current, maximum, "free"), err
    assert "free" in err["message"] and str(maximum if limit != "max_memory" else "4Gi") \
        in err["message"], err


def test_concurrency_and_monthly_limits(client, pd, acct):
    a = client.create({"memory": "32Mi"})
    b = client.create({"memory": "32Mi"})
    err = assert_error(client.create_raw({"memory": "32Mi"}), 429, "concurrency_limit_exceeded")
    assert (err["current"], err["maximum"], err["plan"]) == (2, 2, "free"), err
    assert "2 active" in err["message"] and "allows 2" in err["message"]
    assert client.stop(a["sandbox_id"]).status_code == 200
    c = client.create({"memory": "32Mi"})            # the 3rd this month
    assert client.stop(b["sandbox_id"]).status_code == 200
    assert client.stop(c["sandbox_id"]).status_code == 200
    err = assert_error(client.create_raw({"memory": "32Mi"}), 429, "monthly_limit_exceeded")
    assert (err["limit"], err["current"], err["maximum"], err["plan"]) == \
        ("monthly_sandboxes", 3, 3, "free"), err
    assert "3 created this month" in err["message"], err
    # the operator moves the org to pro: more of everything
    r = set_plan(pd, acct["organization"]["id"], "pro")
    assert r.status_code == 200, r.text
    assert r.json()["organization"]["plan"] == "pro"
    ids = [client.create({"memory": "32Mi"})["sandbox_id"] for _ in range(3)]
    assert len(ids) == 3
    err = assert_error(client.create_raw({"timeout_seconds": 3601}), 422,
                       "duration_limit_exceeded")
    assert (err["maximum"], err["plan"]) == (3600, "pro")


def test_admin_plan_endpoint_auth(pd, acct):
    org = acct["organization"]["id"]
    assert_error(set_plan(pd, org, "pro", token=None), 401, "invalid_admin_token")
    assert_error(set_plan(pd, org, "pro", token="wrong"), 401, "invalid_admin_token")
    assert_error(set_plan(pd, org, "platinum"), 422, "validation_error")
    assert_error(set_plan(pd, str(uuid.uuid4()), "pro"), 404, "not_found")


def test_admin_api_disabled_without_token(api, org):
    r = api.put(f"admin/orgs/{org.org_id}/plan", headers={"X-Admin-Token": "x"},
                json={"plan": "pro"})
    assert_error(r, 404, "not_found")


def test_usage_estimated_cost(api, org, pg):
    sql = ("INSERT INTO usage_events (org_id, kind, quantity) VALUES "
           "(%s, 'cpu_seconds', 7200), (%s, 'memory_gb_seconds', 36000)")
    pg.sql(sql, (org.org_id, org.org_id))
    cur = api.get("usage/current", key=org.key).json()
    # 2 vCPU-hours × 5 ¢ + 10 GB-hours × 0.5 ¢ (rates.* defaults)
    assert cur["estimated_cost_cents"] == 15, cur
    hist = api.get("usage/history", key=org.key, params={"granularity": "monthly"}).json()
    assert sum(p["estimated_cost_cents"] for p in hist["data"]) == 15, hist


def test_audit_summary(api, org, pg):
    from sandboxhelpers import SandboxClient as SC
    c = SC(api, org.key, org.org_id)
    sb = c.create({})
    sid = sb["sandbox_id"]
    try:
        c.write_files(sid, [{"path": "a", "content": "eA=="}])
        c.read_file(sid, "a")
        c.read_file(sid, "missing")
        c.execute(sid, "true")
        r = api.get(f"sandbox/{sid}/audit/summary", key=org.key)
        assert r.status_code == 200, r.text
        s = r.json()
        assert s["commands_executed"] == 1 and s["files_written"] == 1, s
        assert s["files_read"] == 2 and s["errors"] == 1 and s["secrets_accessed"] == 0, s
        assert s["total_events"] >= 5 and s["duration"] >= 0, s
        assert_error(api.get(f"sandbox/{uuid.uuid4()}/audit/summary", key=org.key), 404)
    finally:
        c.cleanup()
