"""POST /api/v1/sandbox/:id/execute — buffered execution (black box)."""
import base64
import concurrent.futures
import time
import uuid

import pytest

from apihelpers import assert_error


def create_sandbox(api, key, **body):
    r = api.post("sandbox/create", key=key, json=body, timeout=120)
    assert r.status_code in (200, 201), f"create failed: {r.status_code} {r.text}"
    sb = r.json()
    sid = sb["sandbox_id"]
    deadline = time.monotonic() + 60
    while sb.get("status") != "running":
        assert sb.get("status") in ("creating", "running"), sb
        assert time.monotonic() < deadline, f"sandbox not running: {sb}"
        time.sleep(0.2)
        sb = api.get(f"sandbox/{sid}", key=key).json()
    return sid


def run(api, key, sid, http_timeout=120, **body):
    return api.post(f"sandbox/{sid}/execute", key=key, json=body, timeout=http_timeout)


def ok(api, key, sid, **body):
    r = run(api, key, sid, **body)
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
    return r.json()


@pytest.fixture
def sbx(api, org):
    return org, create_sandbox(api, org.key)


def test_exit_codes_and_shape(api, sbx):
    org, sid = sbx
    b = ok(api, org.key, sid, command="exit 3")
    assert b["exit_code"] == 3 and b["reason"] is None and b["signal"] is None
    assert set(b) >= {"stdout", "stderr", "exit_code", "duration_ms", "truncated", "reason",
                      "signal"}
    assert b["truncated"] is False and isinstance(b["duration_ms"], int)
    assert ok(api, org.key, sid, command="true")["exit_code"] == 0
    assert ok(api, org.key, sid, command=["false"])["exit_code"] == 1


def test_stdout_and_stderr(api, sbx):
    org, sid = sbx
    b = ok(api, org.key, sid, command="echo out; echo err >&2")
    assert b["stdout"] == "out\n" and b["stderr"] == "err\n"


def test_env(api, sbx):
    org, sid = sbx
    b = ok(api, org.key, sid, command='echo "$FOO|$BAR"', env={"FOO": "bar baz", "BAR": "é"})
    assert b["stdout"] == "bar baz|é\n"


def test_working_dir(api, sbx):
    org, sid = sbx
    ok(api, org.key, sid, command="mkdir -p /workspace/sub/dir")
    b = ok(api, org.key, sid, command="pwd", working_dir="/workspace/sub/dir")
    assert b["stdout"] == "/workspace/sub/dir\n"
    assert ok(api, org.key, sid, command="pwd")["stdout"] == "/workspace\n"
    for bad in ("relative/path", "/proc/self", "/workspace/../proc", "/" + "a" * 5000):
        assert_error(run(api, org.key, sid, command="pwd", working_dir=bad), 400, "invalid_path")


def test_long_command_and_env(api, sbx):
    """A command and an environment of tens of KB, with quotes and shell syntax in the values,
    run exactly as given (the Kubernetes runtime sends them through stdin: its request path
    holds only 2 KB)."""
    org, sid = sbx
    tricky = "it's \"quoted\" $HOME `id` \\ ;|&\n" + "é" * 5000
    b = ok(api, org.key, sid, command=f"printf %s {'x' * 20000} | wc -c; printf %s \"$BIG\" | wc -c",
           env={"BIG": "y" * 30000, "TRICKY": tricky})
    assert b["stdout"].split() == ["20000", "30000"], b
    b = ok(api, org.key, sid, command=["printenv", "TRICKY"], env={"TRICKY": tricky})
    assert b["stdout"] == tricky + "\n", b


def test_stdin(api, sbx):
    org, sid = sbx
    data = "héllo\nworld\n" * 1000
    b = ok(api, org.key, sid, command="cat", stdin=data)
    assert b["stdout"] == data
    b = ok(api, org.key, sid, command=["wc", "-c"], stdin="abc")
    assert b["stdout"].strip() == "3"


def test_timeout(api, sbx):
    org, sid = sbx
    t0 = time.monotonic()
    b = ok(api, org.key, sid, command="echo before; sleep 30", timeout=700)
    assert time.monotonic() - t0 < 10
    assert b["reason"] == "timeout", b
    assert b["stdout"] == "before\n"
    assert b["signal"] == 9 and b["exit_code"] == 137


def test_oom(api, org):
    sid = create_sandbox(api, org.key, memory="64Mi")
    b = ok(api, org.key, sid,
           command=["python3", "-c", "x = bytearray(200 * 1024 * 1024); print(len(x))"])
    assert b["reason"] == "oom", b
    assert b["exit_code"] != 0


def test_truncation(api, sbx):
    org, sid = sbx
    b = ok(api, org.key, sid, command="head -c 5M /dev/zero; echo done >&2")
    assert b["truncated"] is True
    assert len(b["stdout"]) == 1024 * 1024
    assert b["stderr"] == "done\n" and b["exit_code"] == 0


def test_invalid_utf8_output(api, sbx):
    org, sid = sbx
    cmd = r"printf '\377abc\303(\342\202\254'"
    b = ok(api, org.key, sid, command=cmd)
    assert b["stdout"] == "\ufffdabc\ufffd(\u20ac"
    b = ok(api, org.key, sid, command=cmd, encoding="base64")
    assert base64.b64decode(b["stdout_base64"]) == b"\xffabc\xc3(\xe2\x82\xac"
    assert b["stderr_base64"] == ""


def test_argv_vs_shell(api, sbx):
    org, sid = sbx
    assert ok(api, org.key, sid, command=["echo", "$HOME", "a  b"])["stdout"] == "$HOME a  b\n"
    assert ok(api, org.key, sid, command="echo $((1+2)) | tr 3 x")["stdout"] == "x\n"
    b = ok(api, org.key, sid, command=["/no/such/program"])
    assert b["exit_code"] != 0


@pytest.mark.parametrize("body", [
    {},
    {"command": 5},
    {"command": []},
    {"command": [""]},
    {"command": ""},
    {"command": ["echo", 1]},
    {"command": "true", "timeout": "x"},
    {"command": "true", "timeout": 0},
    {"command": "true", "timeout": 10 ** 9},
    {"command": "true", "env": {"A": 1}},
    {"command": "true", "env": ["A=1"]},
    {"command": "true", "env": {"A=B": "1"}},
    {"command": "true", "stdin": 5},
    {"command": "true", "stream": "yes"},
    {"command": "true", "working_dir": 7},
    {"command": ["x"] * 1025},
])
def test_bad_input(api, sbx, body):
    org, sid = sbx
    assert_error(run(api, org.key, sid, **body), 422, "validation_error")


def test_unknown_and_foreign_sandbox(api, two_orgs):
    a, b = two_orgs
    sid = create_sandbox(api, a.key)
    assert_error(run(api, a.key, str(uuid.uuid4()), command="true"), 404)
    assert_error(run(api, a.key, "not-a-uuid", command="true"), 404)
    assert_error(run(api, b.key, sid, command="true"), 404)
    assert ok(api, a.key, sid, command="true")["exit_code"] == 0


def test_read_only_key(api, sbx):
    org, sid = sbx
    r = api.post("api-keys", key=org.key, json={"name": "ro", "scopes": ["read"]})
    assert r.status_code in (200, 201), r.text
    ro = r.json()["key"]
    assert_error(run(api, ro, sid, command="true"), 403, "insufficient_scope")


def test_not_running(api, sbx):
    org, sid = sbx
    r = api.post(f"sandbox/{sid}/stop", key=org.key, timeout=60)
    assert r.status_code == 200, r.text
    r = run(api, org.key, sid, command="true")
    assert r.status_code in (404, 409), r.text


def test_recorded_and_audited(api, sbx, pg):
    org, sid = sbx
    ok(api, org.key, sid, command="echo recorded-exec")
    rows = pg.sql("SELECT status, exit_code, stdout_bytes FROM executions "
                  "WHERE sandbox_id = %s AND command = 'echo recorded-exec'", (sid,))
    assert rows == [("completed", 0, 14)], rows
    r = api.get("audit", key=org.key, params={"sandbox_id": sid, "action": "command.execute"})
    assert r.status_code == 200 and r.json()["total"] >= 1, r.text


def test_parallel_execs_over_50_sandboxes(api, register, pg):
    # The pro plan allows 10 live sandboxes per organization: 5 organizations × 10.
    orgs = [register() for _ in range(5)]
    for o in orgs:
        pg.sql("UPDATE orgs SET plan = 'pro' WHERE id = %s", (o.org_id,))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        sbs = list(pool.map(lambda i: (orgs[i % 5], create_sandbox(api, orgs[i % 5].key)),
                            range(50)))

    import requests

    def one(i):
        org, sid = sbs[i % 50]
        token = f"tok-{i}-{uuid.uuid4().hex}"
        with requests.Session() as s:
            r = s.post(f"{api.base}/api/v1/sandbox/{sid}/execute",
                       headers={"Authorization": f"ApiKey {org.key}"},
                       json={"command": ["sh", "-c", "echo $0; echo $0 >&2", token]},
                       timeout=300)
        return token, r

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        results = list(pool.map(one, range(200)))
    for token, r in results:
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["stdout"] == token + "\n" and b["stderr"] == token + "\n", (token, b)
