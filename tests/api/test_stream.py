"""Streaming exec: SSE (POST execute {"stream": true}) and the WebSocket exec (black box)."""
import hashlib
import json
import os
import threading
import time
import uuid

import pytest
import requests
import websocket

from test_exec import create_sandbox, ok

MiB = 1024 * 1024


@pytest.fixture
def sbx(api, org):
    return org, create_sandbox(api, org.key)


# ---- SSE --------------------------------------------------------------------------------------

def sse_open(api, key, sid, **body):
    body.setdefault("stream", True)
    r = requests.post(f"{api.base}/api/v1/sandbox/{sid}/execute",
                      headers={"Authorization": f"ApiKey {key}"}, json=body, stream=True,
                      timeout=60)
    return r


def sse_events(r):
    buf = b""
    for chunk in r.iter_content(chunk_size=None):
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            assert ev.startswith(b"data: "), ev[:100]
            yield json.loads(ev[6:])


def test_sse_event_sequence(api, sbx, pg):
    org, sid = sbx
    r = sse_open(api, org.key, sid, command="echo out; echo err >&2; exit 7")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    evs = list(sse_events(r))
    types = [e["type"] for e in evs]
    assert types[-2:] == ["exit", "done"], evs
    assert evs[-1] == {"type": "done"}
    ex = evs[-2]
    assert ex["code"] == 7 and ex["signal"] is None and ex["reason"] is None
    assert isinstance(ex["duration_ms"], int)
    out = "".join(e["data"] for e in evs if e["type"] == "stdout")
    err = "".join(e["data"] for e in evs if e["type"] == "stderr")
    assert out == "out\n" and err == "err\n"
    for e in evs[:-2]:
        assert set(e) == {"type", "data"} and e["type"] in ("stdout", "stderr"), e
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = pg.sql("SELECT exit_code, stdout_bytes, stderr_bytes FROM executions "
                      "WHERE sandbox_id = %s", (sid,))
        if rows:
            break
        time.sleep(0.1)
    assert rows == [(7, 4, 4)], rows


def test_sse_keepalive_connection_reused(api, sbx):
    org, sid = sbx
    with requests.Session() as s:
        h = {"Authorization": f"ApiKey {org.key}"}
        for i in range(3):
            r = s.post(f"{api.base}/api/v1/sandbox/{sid}/execute", headers=h,
                       json={"command": f"echo {i}", "stream": True}, timeout=30)
            assert r.status_code == 200
            assert '"data":"%d\\n"' % i in r.text and r.text.endswith('data: {"type":"done"}\n\n')


def test_sse_utf8_split_across_reads(api, sbx):
    org, sid = sbx
    r = sse_open(api, org.key, sid,
                 command=r"printf 'a\342\202'; sleep 0.3; printf '\254b\377'")
    evs = list(sse_events(r))
    out = "".join(e["data"] for e in evs if e["type"] == "stdout")
    assert out == "a\u20acb\ufffd"


def test_sse_timeout_and_stdin(api, sbx):
    org, sid = sbx
    evs = list(sse_events(sse_open(api, org.key, sid, command="echo x; sleep 30", timeout=500)))
    assert evs[-2]["type"] == "exit" and evs[-2]["reason"] == "timeout", evs
    evs = list(sse_events(sse_open(api, org.key, sid, command="cat", stdin="in\n" * 50000)))
    assert "".join(e["data"] for e in evs if e["type"] == "stdout") == "in\n" * 50000
    assert evs[-2]["code"] == 0


def test_sse_errors_before_stream_are_json(api, sbx):
    org, sid = sbx
    r = sse_open(api, org.key, str(uuid.uuid4()), command="true")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_sse_client_disconnect_kills_command(api, sbx):
    org, sid = sbx
    tag = uuid.uuid4().hex[:8]
    r = sse_open(api, org.key, sid,
                 command=f"echo $$ > /tmp/pid-{tag}; echo started; exec sleep 300")
    it = sse_events(r)
    first = next(it)
    assert first == {"type": "stdout", "data": "started\n"}
    r.raw._fp.fp.raw._sock.shutdown(2) if hasattr(r.raw._fp.fp, "raw") else None
    r.close()
    deadline = time.monotonic() + 10
    while True:
        b = ok(api, org.key, sid, command=f"kill -0 $(cat /tmp/pid-{tag}) 2>/dev/null; echo $?")
        if b["stdout"].strip() != "0":
            break
        assert time.monotonic() < deadline, "the command survived the client's disconnect"
        time.sleep(0.2)


# ---- WebSocket ----------------------------------------------------------------------------------

def ws_url(api, sid):
    return api.base.replace("http://", "ws://") + f"/api/v1/sandbox/{sid}/exec/ws"


def ws_open(api, key, sid, subprotocol=True, header_auth=True, **start):
    hdr = [f"Authorization: ApiKey {key}"] if header_auth else []
    kw = {"subprotocols": ["sandboxd.exec.v1"]} if subprotocol else {}
    ws = websocket.create_connection(ws_url(api, sid), header=hdr, timeout=60, **kw)
    msg = {"type": "start", **start}
    if not header_auth:
        msg["api_key"] = key
    ws.send(json.dumps(msg))
    return ws


def ws_collect(ws, limit=None):
    """Reads until close: (stdout bytes, stderr bytes, control messages, close code)."""
    out, err, ctl = bytearray(), bytearray(), []
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_BINARY:
            (out if data[0] == 1 else err).extend(data[1:])
        elif op == websocket.ABNF.OPCODE_TEXT:
            ctl.append(json.loads(data))
        elif op == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return bytes(out), bytes(err), ctl, code


def test_ws_cat_echo_stdin_eof(api, sbx):
    org, sid = sbx
    ws = ws_open(api, org.key, sid, command=["cat"])
    ws.send_binary(b"hello ")
    ws.send_binary(b"world\n")
    ws.send(json.dumps({"type": "stdin_eof"}))
    out, err, ctl, code = ws_collect(ws)
    assert ctl[0]["type"] == "started" and isinstance(ctl[0]["pid"], int)
    assert out == b"hello world\n" and err == b""
    assert ctl[-1]["type"] == "exit" and ctl[-1]["code"] == 0, ctl
    assert code == 1000


@pytest.mark.parametrize("subprotocol,header_auth", [(False, True), (True, False)])
def test_ws_without_subprotocol_or_with_key_in_message(api, sbx, subprotocol, header_auth):
    org, sid = sbx
    ws = ws_open(api, org.key, sid, subprotocol=subprotocol, header_auth=header_auth,
                 command="echo hi; echo there >&2; exit 3")
    out, err, ctl, code = ws_collect(ws)
    assert (out, err) == (b"hi\n", b"there\n")
    assert ctl[-1]["code"] == 3 and code == 1000


def test_ws_tty_resize(api, sbx):
    org, sid = sbx
    ws = ws_open(api, org.key, sid, command="stty size; read x; stty size", tty=True, rows=24,
                 cols=80)
    buf = bytearray()
    while b"24 80" not in buf:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            assert data[0] == 1
            buf.extend(data[1:])
    ws.send(json.dumps({"type": "resize", "rows": 50, "cols": 120}))
    ws.send_binary(b"go\n")
    out, err, ctl, code = ws_collect(ws)
    assert b"50 120" in out, out
    assert ctl[-1]["type"] == "exit" and ctl[-1]["code"] == 0 and code == 1000


def test_ws_signal(api, sbx):
    org, sid = sbx
    ws = ws_open(api, org.key, sid, command=["sleep", "100"])
    op, data = ws.recv_data()
    assert json.loads(data)["type"] == "started"
    ws.send(json.dumps({"type": "signal", "signal": "INT"}))
    out, err, ctl, code = ws_collect(ws)
    assert ctl[-1] == {**ctl[-1], "type": "exit", "signal": 2, "code": 130, "reason": "signal"}
    assert code == 1000


def test_ws_errors(api, sbx, two_orgs):
    org, sid = sbx
    other, _ = two_orgs
    cases = [
        (dict(key="sk_live_bogus"), 4401),
        (dict(key=other.key), 4404),
        (dict(sid=str(uuid.uuid4())), 4404),
    ]
    for kw, want in cases:
        ws = ws_open(api, kw.get("key", org.key), kw.get("sid", sid), command="true")
        out, err, ctl, code = ws_collect(ws)
        assert ctl[-1]["type"] == "error" and code == want, (kw, ctl, code)
    ws = websocket.create_connection(ws_url(api, sid), header=[f"Authorization: ApiKey {org.key}"])
    ws.send_binary(b"early")
    out, err, ctl, code = ws_collect(ws)
    assert code == 4400
    ws = ws_open(api, org.key, sid, command="sleep 5")
    ws.send(json.dumps({"type": "bogus"}))
    out, err, ctl, code = ws_collect(ws)
    assert code == 4400
    ws = ws_open(api, org.key, sid, command=["cat"])
    ws.send_binary(b"x" * (MiB + 10))
    out, err, ctl, code = ws_collect(ws)
    assert code == 1009
    r = api.post(f"sandbox/{sid}/stop", key=org.key, timeout=60)
    assert r.status_code == 200
    ws = ws_open(api, org.key, sid, command="true")
    out, err, ctl, code = ws_collect(ws)
    assert code in (4404, 4409), (ctl, code)


def test_ws_plain_get_is_426(api, sbx):
    org, sid = sbx
    r = api.get(f"sandbox/{sid}/exec/ws", key=org.key)
    assert r.status_code == 426


def _sender(ws, total, h, chunk=256 * 1024):
    sent = 0
    block = os.urandom(chunk)
    while sent < total:
        n = min(chunk, total - sent)
        data = block[:n]
        h.update(data)
        ws.send_binary(data)
        sent += n
    ws.send(json.dumps({"type": "stdin_eof"}))


def test_ws_100mib_through_cat(api, sbx):
    org, sid = sbx
    ws = ws_open(api, org.key, sid, command=["cat"])
    hin = hashlib.sha256()
    t = threading.Thread(target=_sender, args=(ws, 100 * MiB, hin))
    t.start()
    hout = hashlib.sha256()
    n = 0
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_BINARY:
            assert data[0] == 1
            hout.update(data[1:])
            n += len(data) - 1
        elif op == websocket.ABNF.OPCODE_TEXT:
            m = json.loads(data)
            if m["type"] == "exit":
                assert m["code"] == 0
        elif op == websocket.ABNF.OPCODE_CLOSE:
            break
    t.join()
    assert n == 100 * MiB
    assert hout.hexdigest() == hin.hexdigest()


STDOUT_100M = ("mkfifo /tmp/fifo; sha256sum < /tmp/fifo >&2 & "
               "head -c 104857600 /dev/urandom | tee /tmp/fifo; wait")


def test_ws_100mib_stdout(api, sbx):
    org, sid = sbx
    ws = ws_open(api, org.key, sid, command=STDOUT_100M)
    h = hashlib.sha256()
    n = 0
    err = bytearray()
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_BINARY:
            if data[0] == 1:
                h.update(data[1:])
                n += len(data) - 1
            else:
                err.extend(data[1:])
        elif op == websocket.ABNF.OPCODE_CLOSE:
            break
    assert n == 100 * MiB
    assert err.decode().split()[0] == h.hexdigest()


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_slow_readers_keep_rss_bounded(api, sbx, daemon):
    org, sid = sbx
    pid = daemon.proc.pid
    before = _rss_kib(pid)
    ws = ws_open(api, org.key, sid, command="cat /dev/zero")
    sse = sse_open(api, org.key, sid, command="cat /dev/zero")
    it = sse.raw
    peak = before
    t_end = time.monotonic() + 4
    while time.monotonic() < t_end:
        ws.recv_data()
        it.read(4096)
        time.sleep(0.01)
        peak = max(peak, _rss_kib(pid))
    ws.close()
    sse.close()
    assert peak - before < 50 * 1024, f"daemon RSS grew by {(peak - before) // 1024} MiB"


def test_shutdown_ends_streams(pg, daemon_workdir):
    """SIGTERM with streams open: SSE gets error + done, WebSocket close 1001, exit 0. The
    daemon runs with a 2 s request timeout: a stream must outlive it."""
    from conftest import Api, Daemon, reap_sandboxes
    d = Daemon(pg, daemon_workdir, "shutdown-streams",
               {"SANDBOXD_HTTP_REQUEST_TIMEOUT": "2s"}).start()
    try:
        a = Api(d.base)
        r = a.post("register", json={"email": f"s-{uuid.uuid4().hex[:8]}@example.com",
                                     "organization_name": "shutdown"})
        key = r.json()["api_key"]["key"]
        sid = create_sandbox(a, key)
        ws = ws_open(a, key, sid, command="echo go; sleep 100")
        op, data = ws.recv_data()
        assert json.loads(data)["type"] == "started"
        sse = sse_open(a, key, sid, command="echo go; sleep 3; echo late; sleep 100")
        it = sse_events(sse)
        assert next(it)["data"] == "go\n"
        assert next(it)["data"] == "late\n"
        result = {}

        def reader():
            result["ws"] = ws_collect(ws)

        t = threading.Thread(target=reader)
        t.start()
        rc = d.stop()
        t.join(10)
        rest = list(it)
    finally:
        d.kill()
        reap_sandboxes(d.state_dir)  # sandboxes outlive their daemon by design
    assert rc == 0
    assert not d.sanitizer_reports(), d.stderr_text()[-3000:]
    assert result["ws"][3] == 1001
    assert rest[-1] == {"type": "done"} and rest[-2]["type"] == "error", rest
