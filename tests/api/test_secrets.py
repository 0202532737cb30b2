"""Secrets (issue 5): CRUD without ever returning the value, encryption at rest, the check
endpoint, injection into later commands' environment, scrubbing from buffered and streamed
output (also values split across reads), from audit records, webhook payloads and the daemon
log; validation; cross-organization 404s."""
import json
import time
import uuid

import pytest
import requests

from apihelpers import assert_error
from sandboxhelpers import PrivateDaemon, SandboxClient, wait_until
from sandboxhelpers import aux_pg, sandbox, sandboxes, traversable_state  # noqa: F401 (fixtures)
from webhookhelpers import Receiver

SECRET_VALUE = "s3cr3t-" + uuid.uuid4().hex  # unique: any appearance anywhere is a leak


def _mk(api, key, name, value=SECRET_VALUE, **kw):
    r = api.post("secrets", key=key, json={"name": name, "value": value, "scope": "sandbox", **kw})
    assert r.status_code == 201, r.text
    return r.json()


def test_crud_never_returns_value(api, org):
    s = _mk(api, org.key, "DB_PASSWORD", description="db")
    assert set(s) >= {"id", "name", "scope", "allowed_sandbox_patterns", "expires_at",
                      "created_at", "updated_at"}
    assert s["name"] == "DB_PASSWORD" and s["scope"] == "sandbox" and "value" not in s
    lst = api.get("secrets", key=org.key)
    assert lst.status_code == 200 and [x["name"] for x in lst.json()["secrets"]] == ["DB_PASSWORD"]
    r = api.put("secrets/DB_PASSWORD", key=org.key, json={"value": SECRET_VALUE + "-2"})
    assert r.status_code == 200 and r.json()["name"] == "DB_PASSWORD"
    for resp in (lst, r):
        assert SECRET_VALUE not in resp.text
    assert_error(api.post("secrets", key=org.key, json={"name": "DB_PASSWORD", "value": "x"}),
                 409, "secret_exists")
    r = api.delete("secrets/DB_PASSWORD", key=org.key)
    assert r.status_code == 200 and r.json() == {"success": True}
    assert_error(api.delete("secrets/DB_PASSWORD", key=org.key), 404, "not_found")
    assert_error(api.put("secrets/DB_PASSWORD", key=org.key, json={"value": "v"}), 404)


def test_value_encrypted_at_rest(api, org, pg):
    _mk(api, org.key, "ENC_CHECK")
    rows = pg.sql("SELECT value_enc, key_id FROM secrets WHERE name = 'ENC_CHECK' "
                  "AND org_id = %s", (org.org_id,))
    assert len(rows) == 1
    enc, kid = rows[0]
    assert enc.startswith("sbxenc:v1:" + kid + ":") and SECRET_VALUE not in enc
    # the same value twice: different nonces
    _mk(api, org.key, "ENC_CHECK2")
    enc2 = pg.sql("SELECT value_enc FROM secrets WHERE name = 'ENC_CHECK2' AND org_id = %s",
                  (org.org_id,))[0][0]
    assert enc2 != enc


def test_check_endpoint(api, org):
    _mk(api, org.key, "TOKEN")
    r = api.post("secrets/TOKEN/check", key=org.key, json={"value": SECRET_VALUE})
    assert r.status_code == 200 and r.json() == {"match": True}
    r = api.post("secrets/TOKEN/check", key=org.key, json={"value": SECRET_VALUE[:-1]})
    assert r.json() == {"match": False}
    assert_error(api.post("secrets/NOPE/check", key=org.key, json={"value": "x"}), 404)
    assert_error(api.post("secrets/TOKEN/check", key=org.key, json={}), 422, "validation_error")


@pytest.mark.parametrize("body", [
    {},
    {"name": "X"},
    {"value": "v"},
    {"name": "", "value": "v"},
    {"name": "1ABC", "value": "v"},
    {"name": "A-B", "value": "v"},
    {"name": "A" * 129, "value": "v"},
    {"name": "A", "value": ""},
    {"name": "A", "value": 5},
    {"name": "A", "value": "v" * 65537},
    {"name": "A", "value": "v", "scope": "galaxy"},
    {"name": "A", "value": "v", "expires_at": "tomorrow"},
    {"name": "A", "value": "v", "allowed_sandbox_patterns": "x"},
    {"name": "A", "value": "v", "allowed_sandbox_patterns": [""]},
    {"name": "A", "value": "v", "allowed_sandbox_patterns": ["a,b"]},
])
def test_create_bad_input(api, org, body):
    assert_error(api.post("secrets", key=org.key, json=body), 422, "validation_error")


def test_bad_input_other_endpoints(api, org, sandbox):
    _mk(api, org.key, "K")
    assert_error(api.put("secrets/K", key=org.key, json={}), 422, "validation_error")
    assert_error(api.put("secrets/K", key=org.key, json={"value": 3}), 422, "validation_error")
    assert_error(api.put("secrets/bad-name", key=org.key, json={"value": "x"}), 404)
    sid = sandbox["sandbox_id"]
    for body in ({}, {"secrets": []}, {"secrets": "K"}, {"secrets": [1]}, {"all": "yes"},
                 {"secrets": ["K"], "all": True}):
        assert_error(api.post(f"sandbox/{sid}/secrets/inject", key=org.key, json=body), 422)
    assert_error(api.post(f"sandbox/{sid}/secrets/inject", key=org.key,
                          json={"secrets": ["MISSING"]}), 404, "secret_not_found")
    assert_error(api.post(f"sandbox/{uuid.uuid4()}/secrets/inject", key=org.key,
                          json={"all": True}), 404, "not_found")


def test_cross_org_404(api, register, sandboxes):
    a, b = register(), register()
    _mk(api, a.key, "MINE")
    sid = SandboxClient(api, a.key, a.org_id).create({})["sandbox_id"]
    try:
        assert api.get("secrets", key=b.key).json()["secrets"] == []
        assert_error(api.put("secrets/MINE", key=b.key, json={"value": "x"}), 404)
        assert_error(api.delete("secrets/MINE", key=b.key), 404)
        assert_error(api.post("secrets/MINE/check", key=b.key, json={"value": SECRET_VALUE}), 404)
        assert_error(api.post(f"sandbox/{sid}/secrets/inject", key=b.key, json={"all": True}), 404)
        _mk(api, b.key, "MINE", value="other")  # same name in another org is fine
        r = api.post(f"sandbox/{sid}/secrets/inject", key=a.key, json={"secrets": ["MINE"]})
        assert r.json() == {"injected": ["MINE"]}
    finally:
        api.delete(f"sandbox/{sid}", key=a.key)


def test_inject_env_and_scrub_buffered(api, org, sandboxes):
    _mk(api, org.key, "API_TOKEN")
    _mk(api, org.key, "OTHER", value="other-" + uuid.uuid4().hex)
    sid = sandboxes.create({})["sandbox_id"]
    r = api.post(f"sandbox/{sid}/secrets/inject", key=org.key, json={"secrets": ["API_TOKEN"]})
    assert r.status_code == 200 and r.json() == {"injected": ["API_TOKEN"]}
    out = sandboxes.execute(sid, 'echo "v=$API_TOKEN"; echo "$API_TOKEN" >&2; '
                                 'test -z "$OTHER" && echo no-other')
    assert out["stdout"] == "v=[REDACTED:API_TOKEN]\nno-other\n", out
    assert out["stderr"] == "[REDACTED:API_TOKEN]\n"
    # the command really saw the value
    chk = sandboxes.execute(sid, f'test "$API_TOKEN" = "{SECRET_VALUE}" && echo same')
    assert chk["stdout"] == "same\n"
    # base64 output is scrubbed too
    r = sandboxes.execute_raw(sid, 'printf %s "$API_TOKEN"', encoding="base64")
    assert SECRET_VALUE not in r.text
    r = api.post(f"sandbox/{sid}/secrets/inject", key=org.key, json={"all": True})
    assert sorted(r.json()["injected"]) == ["API_TOKEN", "OTHER"]
    assert sandboxes.execute(sid, 'test -n "$OTHER" && echo yes')["stdout"] == "yes\n"


def _sse(api, key, sid, command):
    r = api.post(f"sandbox/{sid}/execute", key=key, json={"command": command, "stream": True},
                 stream=True, timeout=60)
    assert r.status_code == 200, r.text
    out = []
    for line in r.iter_lines():
        if line.startswith(b"data: "):
            ev = json.loads(line[6:])
            out.append(ev)
            if ev["type"] == "done":
                break
    r.close()
    return out


def test_scrub_streamed_even_when_split(api, org, sandboxes):
    _mk(api, org.key, "STREAM_TOKEN")
    sid = sandboxes.create({})["sandbox_id"]
    api.post(f"sandbox/{sid}/secrets/inject", key=org.key, json={"secrets": ["STREAM_TOKEN"]})
    # print the value in two halves with a pause, so the reads split it
    cmd = ('v="$STREAM_TOKEN"; n=${#v}; h=$((n/2)); '
           'printf %s "$(printf %s "$v" | cut -c1-$h)"; sleep 0.5; '
           'printf "%s\\n" "$(printf %s "$v" | cut -c$((h+1))-)"; echo "tail $v" >&2')
    evs = _sse(api, org.key, sid, cmd)
    text = json.dumps(evs)
    assert SECRET_VALUE not in text
    stdout = "".join(e["data"] for e in evs if e["type"] == "stdout")
    stderr = "".join(e["data"] for e in evs if e["type"] == "stderr")
    assert stdout == "[REDACTED:STREAM_TOKEN]\n", evs
    assert stderr == "tail [REDACTED:STREAM_TOKEN]\n"
    assert evs[-1]["type"] == "done"


def test_never_in_audit_or_log(api, org, sandboxes, daemon, pg):
    mark = daemon.mark()
    _mk(api, org.key, "LOG_TOKEN")
    sid = sandboxes.create({})["sandbox_id"]
    api.post(f"sandbox/{sid}/secrets/inject", key=org.key, json={"secrets": ["LOG_TOKEN"]})
    sandboxes.execute(sid, f'echo $LOG_TOKEN; echo {SECRET_VALUE}')
    api.post("secrets/LOG_TOKEN/check", key=org.key, json={"value": SECRET_VALUE})
    api.put("secrets/LOG_TOKEN", key=org.key, json={"value": SECRET_VALUE})
    r = api.get("audit", key=org.key, params={"limit": 100})
    assert r.status_code == 200
    assert SECRET_VALUE not in r.text
    assert "secret.inject" in r.text
    rows = pg.sql("SELECT details::text, coalesce(error_message, '') FROM audit_logs "
                  "WHERE org_id = %s", (org.org_id,))
    assert rows and all(SECRET_VALUE not in d + e for d, e in rows)
    rows = pg.sql("SELECT command FROM executions WHERE org_id = %s", (org.org_id,))
    assert rows and all(SECRET_VALUE not in c for (c,) in rows), rows
    time.sleep(0.3)
    assert SECRET_VALUE not in "\n".join(daemon.raw_lines(mark))
    assert SECRET_VALUE not in daemon.stderr_text()


def test_scrubbed_from_webhook_payloads(aux_pg, tmp_path_factory):
    env = {"SANDBOXD_WEBHOOKS_ALLOW_CIDRS": "127.0.0.0/8", "SANDBOXD_WEBHOOKS_POLL_INTERVAL": "1s"}
    pd = PrivateDaemon(aux_pg, tmp_path_factory.mktemp("secrethook"), "secrethook", env).start()
    rcv = Receiver()
    try:
        key = pd.register()["api_key"]["key"]
        w = pd.api.post("webhooks", key=key, json={"url": rcv.url,
                                                    "events": ["command.completed"]}).json()
        rcv.secret = w["secret"]
        _mk(pd.api, key, "HOOK_TOKEN")
        c = SandboxClient(pd.api, key, state_dir=pd.state_dir)
        sid = c.create({})["sandbox_id"]
        pd.api.post(f"sandbox/{sid}/secrets/inject", key=key, json={"secrets": ["HOOK_TOKEN"]})
        c.execute(sid, f"echo {SECRET_VALUE}")
        got = rcv.wait(lambda: rcv.events("command.completed"), 20)
        assert got
        assert got[0]["problems"] == []
        assert SECRET_VALUE not in got[0]["body"].decode()
        assert "[REDACTED:HOOK_TOKEN]" in got[0]["json"]["data"]["command"]
        assert SECRET_VALUE not in "\n".join(pd.d.raw_lines())
        c.cleanup()
    finally:
        rcv.close()
        assert pd.shutdown() in (0, None)


def test_allowed_patterns_and_expiry(api, org, sandboxes):
    sid = sandboxes.create({})["sandbox_id"]
    _mk(api, org.key, "PAT_OK", allowed_sandbox_patterns=[sid[:8] + "*"])
    _mk(api, org.key, "PAT_NO", allowed_sandbox_patterns=["ffffffff-*"]
        if not sid.startswith("ffffffff") else ["00000000-*"])
    _mk(api, org.key, "OLD", expires_at="2001-01-01T00:00:00Z")
    assert api.post(f"sandbox/{sid}/secrets/inject", key=org.key,
                    json={"secrets": ["PAT_OK"]}).status_code == 200
    assert_error(api.post(f"sandbox/{sid}/secrets/inject", key=org.key,
                          json={"secrets": ["PAT_NO"]}), 403, "secret_not_allowed")
    assert_error(api.post(f"sandbox/{sid}/secrets/inject", key=org.key,
                          json={"secrets": ["OLD"]}), 403, "secret_not_allowed")
    r = api.post(f"sandbox/{sid}/secrets/inject", key=org.key, json={"all": True})
    assert r.json()["injected"] == ["PAT_OK"]
