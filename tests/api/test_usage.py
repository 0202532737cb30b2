"""Usage metering: /usage/current and /usage/history shapes, counters that move with real
activity, and per-org separation."""
import pytest

from apihelpers import assert_error, is_iso8601
from sandboxhelpers import SandboxClient, wait_until
from sandboxhelpers import sandboxes, client_for, traversable_state  # noqa: F401 (fixtures)

CURRENT_FIELDS = ("period_start", "period_end", "cpu_hours", "memory_gb_hours", "network_gb",
                  "sandbox_creations", "estimated_cost_cents", "breakdown")
HISTORY_ROW_FIELDS = ("period_start", "period_end", "cpu_hours", "memory_gb_hours",
                      "network_gb", "sandbox_creations")


def _current(api, key):
    r = api.get("usage/current", key=key)
    assert r.status_code == 200, r.text
    body = r.json()
    for f in CURRENT_FIELDS:
        assert f in body, f"usage/current lacks {f!r}: {body}"
    assert is_iso8601(body["period_start"]) and is_iso8601(body["period_end"]), body
    assert body["period_start"] < body["period_end"], body
    for f in ("cpu_hours", "memory_gb_hours", "network_gb"):
        assert isinstance(body[f], (int, float)) and body[f] >= 0, (f, body)
    assert isinstance(body["sandbox_creations"], int) and body["sandbox_creations"] >= 0
    assert isinstance(body["estimated_cost_cents"], (int, float))
    assert isinstance(body["breakdown"], dict), body
    return body


def test_current_shape_fresh_org(api, org):
    body = _current(api, org.key)
    assert body["sandbox_creations"] == 0
    assert body["cpu_hours"] == 0 and body["memory_gb_hours"] == 0
    assert body["estimated_cost_cents"] == 0
    assert body["breakdown"].get("exec_count", 0) == 0


def test_creations_counted(api, sandboxes):
    before = _current(api, sandboxes.key)["sandbox_creations"]
    sandboxes.create({})
    sandboxes.create({})
    after = _current(api, sandboxes.key)["sandbox_creations"]
    assert after == before + 2, (before, after)
    # a refused create is not a creation
    assert sandboxes.create_raw({"cpus": "64"}).status_code == 422
    assert _current(api, sandboxes.key)["sandbox_creations"] == after


def test_cpu_and_exec_count_after_work(api, sandboxes):
    before = _current(api, sandboxes.key)
    sb = sandboxes.create({"cpus": "1"})
    sid = sb["sandbox_id"]
    burn = "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass\n"
    res = sandboxes.execute(sid, ["python3", "-c", burn], timeout=60000, http_timeout=90)
    assert res["exit_code"] == 0, res
    for _ in range(3):
        assert sandboxes.sh(sid, "true")["exit_code"] == 0
    assert sandboxes.stop(sid).status_code == 200
    after = _current(api, sandboxes.key)
    assert after["cpu_hours"] > before["cpu_hours"], (before, after)
    # 1.5 s of CPU is 0.000417 h; allow for rounding but not for "nothing"
    assert after["cpu_hours"] - before["cpu_hours"] >= 1.0 / 3600, (before, after)
    assert after["memory_gb_hours"] > before["memory_gb_hours"], (before, after)
    assert after["breakdown"].get("exec_count", 0) - before["breakdown"].get("exec_count", 0) \
        == 4, (before["breakdown"], after["breakdown"])
    # the history agrees with current
    h = api.get("usage/history", key=sandboxes.key, params={"granularity": "daily"}).json()
    total_cpu = sum(row["cpu_hours"] for row in h["data"])
    assert total_cpu == pytest.approx(after["cpu_hours"], rel=1e-3, abs=1e-9), (h, after)


def test_history_shape(api, sandboxes):
    sandboxes.create({})
    for gran in ("daily", "hourly", "monthly"):
        r = api.get("usage/history", key=sandboxes.key, params={"granularity": gran})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["granularity"] == gran, body
        assert is_iso8601(body["start_date"]) and is_iso8601(body["end_date"]), body
        assert body["start_date"] < body["end_date"], body
        assert isinstance(body["data"], list) and body["data"], body
        for row in body["data"]:
            for f in HISTORY_ROW_FIELDS:
                assert f in row, (f, row)
            assert is_iso8601(row["period_start"]) and is_iso8601(row["period_end"]), row
            assert row["period_start"] < row["period_end"], row
        assert sum(row["sandbox_creations"] for row in body["data"]) == 1, body
    # default granularity
    r = api.get("usage/history", key=sandboxes.key)
    assert r.status_code == 200 and r.json()["granularity"] == "daily", r.text


def test_history_explicit_range(api, sandboxes):
    sandboxes.create({})
    r = api.get("usage/history", key=sandboxes.key,
                params={"granularity": "daily", "start_date": "2000-01-01T00:00:00Z",
                        "end_date": "2000-01-02T00:00:00Z"})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == [], r.text


@pytest.mark.parametrize("params", [
    {"granularity": "weekly"}, {"granularity": ""}, {"granularity": "DAILY"},
    {"start_date": "yesterday"}, {"end_date": "2024-13-45"}, {"start_date": "x" * 100},
], ids=lambda p: repr(p)[:40])
def test_history_bad_query(api, org, params):
    assert_error(api.get("usage/history", key=org.key, params=params), 400)


def test_usage_is_per_org(api, two_orgs, client_for):
    a, b = two_orgs
    ca = client_for(a)
    b_before = _current(api, b.key)
    sb = ca.create({})
    ca.sh(sb["sandbox_id"], "true")
    ca.stop(sb["sandbox_id"])
    a_now = _current(api, a.key)
    b_now = _current(api, b.key)
    assert a_now["sandbox_creations"] == 1
    assert b_now == b_before, (b_before, b_now)
    hb = api.get("usage/history", key=b.key).json()
    assert hb["data"] == [], hb


def test_usage_requires_auth(api):
    assert_error(api.get("usage/current"), 401)
    assert_error(api.get("usage/history"), 401)
