#!/usr/bin/python3
"""The Kubernetes runtime through the Kubernetes API emulator (tests/kube-emulator), in one run:

  api_requests    Kubernetes API requests per sandbox lifecycle (create → ready → delete),
                  counted by verb at the emulator (its request log; only the daemon's TLS
                  requests, this script reads over plain HTTP): cold, and claimed from the warm
                  pool (with the filler's refill). Target: no polling (no pod GET/LIST) and at
                  most 3 writes per lifecycle; a miss is printed as TARGET MISSED and the exit
                  status is 1.
  create_to_exec  POST /sandbox/create + the first POST /execute (echo), p50/p99: a warm-pool
                  claim versus a cold create (the pool is refilled between claims, untimed).
  exec_rtt        POST /execute `true` on a running sandbox, p50/p99: through the emulator
                  (pods/exec WebSocket, TLS) versus the local runtime daemon.

  bench/k8s.py [-n 20] [--exec-n 100] [--pool 2]

Starts its own emulator (rtctl: $KUBE_EMULATOR_RTCTL, else build/runtime/rtctl), one daemon
with runtime.kind k8s and one with the local runtime ($SANDBOXD_BIN, Postgres from
$SANDBOXD_TEST_PG_DIR / $SANDBOXD_TEST_PG_PORT as the API tests). Needs root. The emulator runs
each pod as a local sandbox and answers from Python, so absolute times say little about a real
cluster; the request counts and the claim/cold ratio are what carry over.
"""
import argparse
import collections
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "kube-emulator"))  # fixture.py
sys.path.insert(0, str(REPO / "tests" / "api"))            # conftest.py (Daemon, Postgres)
NS = "sbx-bench"
TEMPLATES = """templates:
  - name: pooled
    description: shell, warm pool
    requires: /bin/sh
    warm_pool_size: {pool}
  - name: plain
    description: shell, no pool
    requires: /bin/sh
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def line(name, xs, unit="ms"):
    return f"{name:<34} p50 {statistics.median(xs):8.1f} {unit}   p99 {pct(xs, 99):8.1f} {unit}" \
           f"   (n={len(xs)})"


class Client:
    def __init__(self, base):
        self.base = base.rstrip("/")
        r = requests.post(self.base + "/api/v1/register", timeout=30,
                          json={"email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                                "organization_name": f"bench-{uuid.uuid4().hex[:8]}"})
        r.raise_for_status()
        self.s = requests.Session()
        self.s.headers["Authorization"] = "ApiKey " + r.json()["api_key"]["key"]

    def post(self, path, body):
        r = self.s.post(self.base + "/api/v1/" + path, json=body, timeout=300)
        if r.status_code >= 300:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def create(self, **body):
        return self.post("sandbox/create", body)["sandbox_id"]

    def echo(self, sid):
        out = self.post(f"sandbox/{sid}/execute", {"command": ["echo", "hi"]})
        assert out["stdout"] == "hi\n", out

    def true(self, sid):
        out = self.post(f"sandbox/{sid}/execute", {"command": ["true"]})
        assert out["exit_code"] == 0, out

    def delete(self, sid):
        r = self.s.delete(f"{self.base}/api/v1/sandbox/{sid}", timeout=120)
        if r.status_code >= 300:
            raise RuntimeError(f"delete: {r.status_code} {r.text[:300]}")


def gauge(base, name, tpl):
    text = requests.get(base + "/metrics", timeout=10).text
    m = re.search(r"^%s\{template=\"%s\"\} (\d+)$" % (name, tpl), text, re.M)
    return int(m.group(1)) if m else 0


def wait_pool(base, size, timeout=60):
    deadline = time.monotonic() + timeout
    while gauge(base, "sandboxd_warm_pool_ready", "pooled") < size:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not fill")
        time.sleep(0.05)


# ---- the emulator's request log ----------------------------------------------------------------

def classify(method, path):
    p, _, q = path.partition("?")
    if "/leases" in p:
        return "lease"
    if method == "GET":
        if "watch=" in q:
            return "watch"
        if p.endswith("/exec"):
            return "exec"
        return "get" if re.search(r"/pods/[^/]+$", p) else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
        method, method.lower())


WRITES = ("create", "patch", "update", "delete")


class RequestLog:
    def __init__(self, workdir):
        self.path = os.path.join(workdir, "requests.log")

    def mark(self):
        return os.path.getsize(self.path)

    def since(self, mark):
        with open(self.path, "rb") as f:
            f.seek(mark)
            lines = f.read().decode(errors="replace").splitlines()
        c = collections.Counter()
        for ln in lines:
            parts = ln.split()
            if len(parts) == 4 and parts[3] == "tls":  # the daemon's, not ours (plain HTTP)
                c[classify(parts[1], parts[2])] += 1
        return c


def lifecycles(client, log, template, n, settle):
    """Average requests by verb of n create → ready → delete lifecycles."""
    total = collections.Counter()
    for _ in range(n):
        mark = log.mark()
        sid = client.create(template=template)
        client.delete(sid)
        settle()
        total.update(log.since(mark))
    return {k: v / n for k, v in total.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20, help="creates per kind (latency)")
    ap.add_argument("--exec-n", type=int, default=100)
    ap.add_argument("--pool", type=int, default=2)
    ap.add_argument("--lifecycles", type=int, default=5)
    ap.add_argument("--pod-start-delay", type=float, default=0.0,
                    help="emulator: seconds a pod takes to start (a real kubelet: ~1-2 s)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/k8s.py needs root (the emulator runs pods as local sandboxes)")
    from conftest import Daemon, Postgres, reap_sandboxes
    from fixture import Emulator, rtctl_path

    wd = Path(tempfile.mkdtemp(prefix="sbx-k8s-bench-", dir="/tmp"))
    wd.chmod(0o755)
    (wd / "emu").mkdir()
    emu = Emulator(str(wd / "emu"), rtctl_path(),
                   extra=["--start-delay", str(args.pod_start_delay)])
    daemons = []
    missed = []
    try:
        req = urllib.request.Request(
            emu.http + "/api/v1/namespaces", method="POST",
            data=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": NS}}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        (wd / "templates.yaml").write_text(TEMPLATES.format(pool=args.pool))
        pg = Postgres(os.environ.get("SANDBOXD_TEST_PG_DIR", str(REPO / ".state" / "pg-test")),
                      os.environ.get("SANDBOXD_TEST_PG_PORT", "55433"))
        pg.start()
        common = {"SANDBOXD_LOG_LEVEL": "warn",
                  "SANDBOXD_TEMPLATES_FILE": str(wd / "templates.yaml"),
                  # the free plan's limits would stop a benchmark
                  "SANDBOXD_PLANS_FREE_MAX_CONCURRENT": "50",
                  "SANDBOXD_PLANS_FREE_MONTHLY_SANDBOXES": "0",
                  "SANDBOXD_PLANS_FREE_RATE_LIMIT": "0",
                  "SANDBOXD_PLANS_FREE_ORG_RATE_LIMIT": "0"}
        k8s = Daemon(pg, wd, "bench-k8s", dict(common, **{
            "SANDBOXD_RUNTIME_KIND": "k8s", "SANDBOXD_K8S_KUBECONFIG": emu.kubeconfig_https,
            "SANDBOXD_K8S_NAMESPACE": NS, "SANDBOXD_K8S_IMAGE": "sandbox:test"})).start()
        daemons.append(k8s)
        local = Daemon(pg, wd, "bench-local", common).start()
        daemons.append(local)
        ck, cl = Client(k8s.base), Client(local.base)
        wait_pool(k8s.base, args.pool)
        log = RequestLog(emu.workdir)

        print(f"# bench/k8s.py: emulator (Python, pods = local sandboxes), pool size {args.pool}, "
              f"pod start delay {args.pod_start_delay:g} s")
        print("## Kubernetes API requests per lifecycle create → ready → delete (mean of "
              f"{args.lifecycles}; counted at the emulator)")
        cold = lifecycles(ck, log, "plain", args.lifecycles, lambda: time.sleep(0.5))
        warm = lifecycles(ck, log, "pooled", args.lifecycles,
                          lambda: (wait_pool(k8s.base, args.pool), time.sleep(0.5)))
        for name, c in (("cold create", cold), ("warm claim (+ refill)", warm)):
            writes = sum(c.get(k, 0) for k in WRITES)
            polls = c.get("get", 0) + c.get("list", 0)
            verbs = "  ".join(f"{k} {v:g}" for k, v in sorted(c.items()))
            ok = writes <= 3 and polls == 0 and c.get("watch", 0) == 0
            print(f"{name:<24} writes {writes:g}  polling GET/LIST {polls:g}   [{verbs}]"
                  f"   {'ok' if ok else 'TARGET MISSED'}")
            if not ok:
                missed.append(name)
        sid = ck.create(template="plain")
        m2 = log.mark()
        ck.echo(sid)
        ex = log.since(m2)
        ck.delete(sid)
        print(f"{'one exec':<24} {dict(ex)} (the pods/exec WebSocket upgrade)")

        print(f"## create → first exec output (n={args.n} each, sequential)")
        ts = collections.defaultdict(list)
        for _ in range(args.n):
            for kind, tpl in (("warm", "pooled"), ("cold", "plain")):
                if kind == "warm":
                    wait_pool(k8s.base, args.pool)
                t0 = time.perf_counter()
                sid = ck.create(template=tpl)
                t1 = time.perf_counter()
                ck.echo(sid)
                t2 = time.perf_counter()
                ts[kind].append((t2 - t0) * 1000)
                ts[kind + "-create"].append((t1 - t0) * 1000)
                ck.delete(sid)
        claims = gauge(k8s.base, "sandboxd_warm_pool_claims_total", "pooled")
        misses = gauge(k8s.base, "sandboxd_warm_pool_misses_total", "pooled")
        warm_ts, cold_ts = ts["warm"], ts["cold"]
        print(line("k8s warm claim → first exec", warm_ts))
        print(line("k8s cold create → first exec", cold_ts))
        print(line("  of which the create: warm", ts["warm-create"]))
        print(line("  of which the create: cold", ts["cold-create"]))
        ratio = statistics.median(warm_ts) / statistics.median(cold_ts)
        print(f"{'claim / cold (p50)':<34} {ratio:.2f}   (claims {claims}, misses {misses})")

        print(f"## exec round trip: POST /execute true (n={args.exec_n} each)")
        res = {}
        for name, c in (("k8s (emulator, pods/exec)", ck), ("local runtime", cl)):
            sid = c.create(template="plain")
            c.true(sid)  # first exec out of the measurement
            ts = []
            for _ in range(args.exec_n):
                t = time.perf_counter()
                c.true(sid)
                ts.append((time.perf_counter() - t) * 1000)
            c.delete(sid)
            res[name] = ts
            print(line(name, ts))
        k8s_p50, local_p50 = (statistics.median(v) for v in res.values())
        print(f"{'k8s / local (p50)':<34} {k8s_p50 / local_p50:.1f}")
    finally:
        for d in daemons:
            d.stop()
        emu.stop()
        for d in daemons:
            reap_sandboxes(d.state_dir)
        shutil.rmtree(wd, ignore_errors=True)
    if missed:
        print("TARGET MISSED: " + ", ".join(missed))
        sys.exit(1)


if __name__ == "__main__":
    main()
