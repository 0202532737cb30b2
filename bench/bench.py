#!/usr/bin/python3
"""sandboxd local-runtime benchmarks, each printed next to a floor measured in the same run.

  create_to_first_exec   POST /sandbox/create + POST /execute echo   vs  unshare(user,pid,mnt,ipc,
                                                                          uts,net)+exec of echo
  exec_rtt               POST /execute true (sandbox warm)           vs  fork+exec+wait of true
  stream_stdout          WebSocket exec: 512 MiB of stdout           vs  head -c | cat (a pipe)
  file_upload            POST /files: 64 files x 1 MiB               vs  tar c | tar x into tmpfs

Usage: bench/bench.py [--url http://127.0.0.1:8080] [--key sk_...] [-n 200]
Without --key it registers a throw-away organization. Needs Debian's python3 packages
(requests, websocket). Not a test: it prints figures and ratios and never fails on speed.
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests
import websocket


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def summary(xs):
    return statistics.median(xs), pct(xs, 99)


def show(name, ours, floor, unit, lower_is_better=True, target=None):
    ratio = ours / floor if floor else float("nan")
    tgt = f"  target ≤ {target}x" if target and lower_is_better else (
        f"  target ≥ {target}x" if target else "")
    print(f"{name:<28} ours {ours:10.3f} {unit:<5} floor {floor:10.3f} {unit:<5} "
          f"ratio {ratio:6.2f}{tgt}")


class Api:
    def __init__(self, url, key):
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"ApiKey {key}"
        self.key = key

    def post(self, path, body):
        r = self.s.post(self.url + path, json=body, timeout=300)
        r.raise_for_status()
        return r.json()

    def delete(self, path):
        self.s.delete(self.url + path, timeout=60)


def register(url):
    tag = uuid.uuid4().hex[:10]
    r = requests.post(url.rstrip("/") + "/api/v1/register",
                      json={"email": f"bench-{tag}@example.com",
                            "organization_name": f"bench {tag}"}, timeout=30)
    r.raise_for_status()
    return r.json()["api_key"]["key"]


def floor_clone_exec(n):
    cmd = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount", "--ipc",
           "--uts", "--net", "/bin/echo", "hi"]
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        ts.append((time.perf_counter() - t) * 1000)
    return ts


def floor_fork_exec(n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
        os.waitpid(pid, 0)
        ts.append((time.perf_counter() - t) * 1000)
    return ts


def bench_create(api, n):
    ts, ids = [], []
    for _ in range(n):
        t = time.perf_counter()
        sb = api.post("/api/v1/sandbox/create", {})
        out = api.post(f"/api/v1/sandbox/{sb['sandbox_id']}/execute", {"command": ["echo", "hi"]})
        ts.append((time.perf_counter() - t) * 1000)
        assert out["stdout"] == "hi\n", out
        ids.append(sb["sandbox_id"])
        api.delete(f"/api/v1/sandbox/{sb['sandbox_id']}")
    return ts


def bench_exec(api, sid, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        out = api.post(f"/api/v1/sandbox/{sid}/execute", {"command": ["true"]})
        ts.append((time.perf_counter() - t) * 1000)
        assert out["exit_code"] == 0, out
    return ts


def floor_pipe(nbytes):
    t = time.perf_counter()
    p = subprocess.run(f"head -c {nbytes} /dev/zero | cat > /dev/null", shell=True, check=True)
    return nbytes / (time.perf_counter() - t) / 1e6


def bench_stream(api, sid, nbytes):
    ws_url = api.url.replace("http://", "ws://") + f"/api/v1/sandbox/{sid}/exec/ws"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: ApiKey {api.key}"],
                                     timeout=120)
    ws.send(json.dumps({"type": "start", "command": ["head", "-c", str(nbytes), "/dev/zero"]}))
    got, t0 = 0, None
    h = hashlib.sha256()
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            if t0 is None:
                t0 = time.perf_counter()
            if data[0] == 1:
                got += len(data) - 1
                h.update(data[1:])
        elif op == websocket.ABNF.OPCODE_TEXT:
            msg = json.loads(data)
            if msg.get("type") == "exit":
                break
        elif op == websocket.ABNF.OPCODE_CLOSE:
            break
    dt = time.perf_counter() - (t0 or time.perf_counter())
    ws.close()
    assert got == nbytes, (got, nbytes)
    assert h.hexdigest() == hashlib.sha256(b"\0" * nbytes).hexdigest()
    return nbytes / dt / 1e6


def floor_tar(files):
    src = tempfile.mkdtemp(dir="/dev/shm")
    dst = tempfile.mkdtemp(dir="/dev/shm")
    try:
        for name, data in files:
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
        t = time.perf_counter()
        subprocess.run(f"tar -C {src} -cf - . | tar -C {dst} -xf -", shell=True, check=True)
        return (time.perf_counter() - t) * 1000
    finally:
        shutil.rmtree(src)
        shutil.rmtree(dst)


def bench_upload(api, sid, files):
    """Uploads in requests of 8 files (the default body limit is 16 MiB of JSON)."""
    t = time.perf_counter()
    for i in range(0, len(files), 8):
        body = {"files": [{"path": f"up/{name}", "content": base64.b64encode(data).decode()}
                          for name, data in files[i:i + 8]]}
        api.post(f"/api/v1/sandbox/{sid}/files", body)
    return (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--stream-mib", type=int, default=512)
    args = ap.parse_args()
    api = Api(args.url, args.key or register(args.url))

    print(f"sandboxd benchmarks against {args.url} (n={args.n}); medians unless noted\n")
    fl = floor_clone_exec(min(args.n, 100))
    ours = bench_create(api, min(args.n, 100))
    m, p99 = summary(ours)
    fm, fp99 = summary(fl)
    show("create→first exec p50", m, fm, "ms", target=2)
    show("create→first exec p99", p99, fp99, "ms", target=3)

    sb = api.post("/api/v1/sandbox/create", {"memory": "1Gi"})
    sid = sb["sandbox_id"]
    try:
        fl = floor_fork_exec(args.n)
        ours = bench_exec(api, sid, args.n)
        show("exec round trip p50", statistics.median(ours), statistics.median(fl), "ms", target=2)
        show("exec round trip p99", pct(ours, 99), pct(fl, 99), "ms")

        nbytes = args.stream_mib * 1024 * 1024
        fpipe = floor_pipe(nbytes)
        try:
            ours_s = bench_stream(api, sid, nbytes)
            show("stdout stream (WebSocket)", ours_s, fpipe, "MB/s", lower_is_better=False,
                 target=0.5)
        except Exception as e:  # the WebSocket endpoint may be absent in a partial build
            print(f"stdout stream (WebSocket)    skipped: {e}")

        files = [(f"f{i:03d}.bin", os.urandom(1 << 20)) for i in range(64)]
        ftar = floor_tar(files)
        ours_u = bench_upload(api, sid, files)
        show("file upload 64 MiB", ours_u, ftar, "ms", target=1.5)
    finally:
        api.delete(f"/api/v1/sandbox/{sid}")


if __name__ == "__main__":
    sys.exit(main())
