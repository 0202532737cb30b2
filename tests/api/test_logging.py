"""Structured request logs, and no secret ever in the daemon's output."""
import json
import uuid
from urllib.parse import urlparse

from apihelpers import auth, unique_email, unique_name


def access_lines(daemon, rid, since=0, timeout=5.0):
    def pred(o):
        return o.get("request_id") == rid and "status" in o
    daemon.wait_for_line(pred, since=since, timeout=timeout)
    return [o for o in daemon.lines(since) if pred(o)]


def test_every_stdout_line_is_json(daemon_log, api):
    api.get("/healthz")
    for line in daemon_log.raw_lines():
        if not line.strip():
            continue
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        for f in ("ts", "level", "msg"):
            assert f in obj, f"log line without {f}: {line}"


def test_one_access_line_per_request(daemon_log, api, org):
    mark = daemon_log.mark()
    rid = "log-" + uuid.uuid4().hex
    r = api.get("api-keys", key=org.key, headers={"X-Request-Id": rid})
    assert r.status_code == 200
    lines = access_lines(daemon_log, rid, mark)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["route"] == "/api/v1/api-keys", line
    assert int(line["status"]) == 200
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0


def test_access_line_for_error_and_route_pattern(daemon_log, api, org):
    mark = daemon_log.mark()
    rid = "log-" + uuid.uuid4().hex
    missing = str(uuid.uuid4())
    r = api.delete(f"api-keys/{missing}", key=org.key, headers={"X-Request-Id": rid})
    assert r.status_code == 404
    lines = access_lines(daemon_log, rid, mark)
    assert len(lines) == 1, lines
    assert lines[0]["route"] == "/api/v1/api-keys/:id", lines[0]
    assert int(lines[0]["status"]) == 404


def test_access_line_for_unknown_route(daemon_log, api):
    mark = daemon_log.mark()
    rid = "log-" + uuid.uuid4().hex
    assert api.get("/api/v1/nope/" + "x" * 50, headers={"X-Request-Id": rid}).status_code == 404
    lines = access_lines(daemon_log, rid, mark)
    assert len(lines) == 1, lines
    assert int(lines[0]["status"]) == 404


def test_generated_request_id_is_logged(daemon_log, api):
    mark = daemon_log.mark()
    r = api.get("/healthz")
    rid = r.headers["X-Request-Id"]
    assert len(access_lines(daemon_log, rid, mark)) == 1


def test_no_secret_in_daemon_output(daemon_log, api, pg, register):
    acct = register()
    secrets = [acct.key]
    r = api.post("api-keys", key=acct.key, json={"name": "logged?", "scopes": ["read"]})
    assert r.status_code in (200, 201)
    secrets.append(r.json()["key"])
    r = api.post("api-keys", key=acct.key, json={"name": "test", "mode": "test"})
    secrets.append(r.json()["key"])
    # Failing uses: wrong checksum, revoked, X-Org-Id mismatch, a key sent in a bad body.
    bad = acct.key[:-1] + ("A" if acct.key[-1] != "A" else "B")
    api.get("api-keys", headers=auth(bad))
    api.get("api-keys", key=acct.key, org_id=str(uuid.uuid4()))
    api.post("register", data=json.dumps({"email": acct.key, "organization_name": 5}),
             headers={"Content-Type": "application/json"})
    api.post("register", data=b'{"password": "' + acct.key.encode() + b'",',
             headers={"Content-Type": "application/json"})
    kid = api.get("api-keys", key=acct.key).json()["api_keys"]
    victim = next(k for k in kid if k["name"] == "logged?")
    api.delete(f"api-keys/{victim['id']}", key=acct.key)
    api.get("api-keys", key=secrets[1])
    out = daemon_log.output()
    for s in secrets + [bad]:
        assert s not in out, "an API key appears in the daemon's output"
        secret_part = s.split("_", 3)[-1]
        assert secret_part not in out, "the secret part of an API key appears in the output"
    for url in (pg.owner_url, pg.app_url):
        pw = urlparse(url).password
        assert pw and pw not in out, "a database password appears in the daemon's output"


def test_log_level_and_timestamp_format(daemon_log, api):
    import re
    api.get("/healthz")
    for obj in daemon_log.lines()[-20:]:
        assert obj["level"] in ("debug", "info", "warn", "error"), obj
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$", obj["ts"]), obj
