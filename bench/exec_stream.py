#!/usr/bin/python3
"""Stream throughput: command stdout over the WebSocket exec and over SSE, against a plain
host pipe measured in the same run.

  bench/exec_stream.py [--base URL --key KEY] [--mib 1024]

Without --base it starts a private daemon through the API test harness (tests/api/conftest.py:
test Postgres from $SANDBOXD_TEST_PG_DIR/$SANDBOXD_TEST_PG_PORT, binary $SANDBOXD_BIN).
The payload is text (`yes` output), so SSE measures the JSON event encoding, not escapes.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "api"))


def producer(n):
    return f"yes abcdefghijklmnopqrstuvwxyz0123456789 | head -c {n}"


def plain_pipe(n):
    t0 = time.monotonic()
    subprocess.run(["sh", "-c", producer(n) + " | dd of=/dev/null bs=64k status=none"],
                   check=True)
    return time.monotonic() - t0


def ws_run(base, key, sid, n):
    url = base.replace("http://", "ws://") + f"/api/v1/sandbox/{sid}/exec/ws"
    ws = websocket.create_connection(url, header=[f"Authorization: ApiKey {key}"], timeout=120)
    t0 = time.monotonic()
    ws.send(json.dumps({"type": "start", "command": producer(n)}))
    got = 0
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_BINARY:
            got += len(data) - 1
        elif op == websocket.ABNF.OPCODE_CLOSE:
            break
    dt = time.monotonic() - t0
    assert got == n, (got, n)
    return dt


def sse_run(base, key, sid, n):
    t0 = time.monotonic()
    r = requests.post(f"{base}/api/v1/sandbox/{sid}/execute",
                      headers={"Authorization": f"ApiKey {key}"},
                      json={"command": producer(n), "stream": True, "timeout": 600000},
                      stream=True, timeout=120)
    got = 0
    buf = b""
    for chunk in r.iter_content(chunk_size=1 << 20):
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            e = json.loads(ev[6:])
            if e["type"] == "stdout":
                got += len(e["data"])
    dt = time.monotonic() - t0
    assert got == n, (got, n)
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base")
    ap.add_argument("--key")
    ap.add_argument("--mib", type=int, default=1024)
    args = ap.parse_args()
    n = args.mib * 1024 * 1024
    daemon = None
    base, key = args.base, args.key
    if not base:
        import os
        from conftest import Daemon, Postgres
        pg = Postgres(os.environ.get("SANDBOXD_TEST_PG_DIR", str(REPO / ".state" / "pg-test")),
                      os.environ.get("SANDBOXD_TEST_PG_PORT", "55433"))
        pg.start()
        wd = Path(tempfile.mkdtemp(prefix="sbx-bench-", dir="/tmp"))
        wd.chmod(0o755)
        daemon = Daemon(pg, wd, "bench").start()
        base = daemon.base
    try:
        if not key:
            r = requests.post(base + "/api/v1/register", timeout=30,
                              json={"email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                                    "organization_name": "bench"})
            key = r.json()["api_key"]["key"]
        r = requests.post(base + "/api/v1/sandbox/create", json={}, timeout=60,
                          headers={"Authorization": f"ApiKey {key}"})
        sid = r.json()["sandbox_id"]
        rows = []
        for _ in range(2):
            rows.append(("plain pipe (host, dd)", plain_pipe(n)))
            rows.append(("WebSocket stdout", ws_run(base, key, sid, n)))
            rows.append(("SSE stdout", sse_run(base, key, sid, n)))
        for name, dt in rows:
            print(f"{name:24s} {args.mib} MiB in {dt:6.2f} s  = {args.mib / dt:8.1f} MiB/s")
    finally:
        if daemon:
            daemon.stop()


if __name__ == "__main__":
    main()
