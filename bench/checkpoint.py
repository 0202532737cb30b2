#!/usr/bin/python3
"""Checkpoint and artifact throughput, each next to a host floor measured in the same run.

  checkpoint_full      POST /checkpoints of a 10k-file / 100 MiB workspace   vs  tar c | sha256sum
                       (every byte read and hashed once)                            of the same tree
  checkpoint_1pct      the same after changing 1% of the files               vs  tar c | sha256sum
                                                                                  of the changed files
  restore              POST /checkpoints/restore into a fresh sandbox        vs  tar x of the tree
  artifact_upload      100 MiB file → store                                   vs  sha256sum + cp
  artifact_download    store → sandbox                                        vs  cp

  bench/checkpoint.py [--base URL --key KEY] [--files 10000] [--mib 100]

Without --base it starts a private daemon through the API test harness (tests/api/conftest.py:
Postgres from $SANDBOXD_TEST_PG_DIR/$SANDBOXD_TEST_PG_PORT, binary $SANDBOXD_BIN; fs blob store
under its state dir). Prints figures; never fails on speed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "api"))


def show(name, ours, floor, note=""):
    ratio = ours / floor if floor else float("nan")
    print(f"{name:<20} ours {ours:8.3f} s   floor {floor:8.3f} s   ratio {ratio:6.2f}  {note}")


def timed(fn):
    t = time.monotonic()
    out = fn()
    return time.monotonic() - t, out


def sh_host(script, cwd=None):
    subprocess.run(["sh", "-c", script], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


class Client:
    def __init__(self, base, key):
        self.base = base.rstrip("/") + "/api/v1/"
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"ApiKey {key}"

    def post(self, path, body, timeout=600):
        r = self.s.post(self.base + path, json=body, timeout=timeout)
        if r.status_code >= 300:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def sh(self, sid, script):
        r = self.post(f"sandbox/{sid}/execute", {"command": ["sh", "-c", script],
                                                 "timeout": 600000})
        if r["exit_code"] != 0:
            raise RuntimeError(f"{script}: {r}")
        return r["stdout"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base")
    ap.add_argument("--key")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--mib", type=int, default=100)
    args = ap.parse_args()
    total = args.mib * 1024 * 1024
    per = total // args.files
    daemon = None
    base, key = args.base, args.key
    wd = Path(tempfile.mkdtemp(prefix="sbx-ckpt-bench-", dir="/tmp"))
    wd.chmod(0o755)
    if not base:
        from conftest import Daemon, Postgres
        pg = Postgres(os.environ.get("SANDBOXD_TEST_PG_DIR", str(REPO / ".state" / "pg-test")),
                      os.environ.get("SANDBOXD_TEST_PG_PORT", "55433"))
        pg.start()
        daemon = Daemon(pg, wd, "bench", {"SANDBOXD_LOG_LEVEL": "warn"}).start()
        base = daemon.base
    try:
        if not key:
            r = requests.post(base + "/api/v1/register", timeout=30,
                              json={"email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                                    "organization_name": f"bench-{uuid.uuid4().hex[:8]}"})
            key = r.json()["api_key"]["key"]
        c = Client(base, key)
        sid = c.post("sandbox/create", {"timeout_seconds": 300})["sandbox_id"]
        gen = (f"mkdir -p w && cd w && head -c {per * args.files} /dev/urandom | "
               f"split -b {per} -a 5 -d - f")
        c.sh(sid, "cd /workspace && " + gen)
        # host copy of an equivalent tree for the floors
        host = wd / "host"
        host.mkdir()
        sh_host(gen, cwd=host)
        print(f"workspace: {args.files} files x {per} B = {per * args.files / 2**20:.0f} MiB")

        t, ck1 = timed(lambda: c.post(f"sandbox/{sid}/checkpoints", {"name": "full"}))
        tf, _ = timed(lambda: sh_host("tar cf - w | sha256sum", cwd=host))
        show("checkpoint_full", t, tf,
             f"{ck1['bytes_new'] / 2**20:.0f} MiB new, {ck1['bytes_new'] / 2**20 / t:.0f} MiB/s")

        n = max(1, args.files // 100)
        c.sh(sid, f"cd /workspace/w && for f in $(ls | head -n {n}); do "
                  f"head -c {per} /dev/urandom > $f; done")
        t, ck2 = timed(lambda: c.post(f"sandbox/{sid}/checkpoints", {"name": "1pct"}))
        tf, _ = timed(lambda: sh_host(f"ls | head -n {n} | tar cf - -T - | sha256sum",
                                      cwd=host / "w"))
        tfull, _ = timed(lambda: sh_host("tar cf - w | sha256sum", cwd=host))
        show("checkpoint_1pct", t, tfull,
             f"{ck2['bytes_new'] / 2**20:.2f} MiB new ({ck2['files_new']} files); "
             f"floor of the changed files alone {tf:.3f} s")

        sid2 = c.post("sandbox/create", {"timeout_seconds": 300})["sandbox_id"]
        t, res = timed(lambda: c.post(f"sandbox/{sid2}/checkpoints/restore",
                                      {"checkpoint_id": ck2["id"]}))
        sh_host("tar cf ../tree.tar w", cwd=host)
        (wd / "x").mkdir()
        tf, _ = timed(lambda: sh_host("tar xf ../tree.tar", cwd=wd / "x"))
        show("restore", t, tf, f"{res['files']} files")

        c.sh(sid, f"head -c {total} /dev/urandom > /workspace/art.bin")
        sh_host(f"head -c {total} /dev/urandom > art.bin", cwd=wd)
        t, art = timed(lambda: c.post(f"sandbox/{sid}/artifacts/upload", {"path": "art.bin"}))
        tf, _ = timed(lambda: sh_host("sha256sum art.bin && cp art.bin art2.bin", cwd=wd))
        show("artifact_upload", t, tf, f"{total / 2**20 / t:.0f} MiB/s")
        t, _ = timed(lambda: c.post(f"sandbox/{sid2}/artifacts/download",
                                    {"artifact_id": art["id"], "path": "got.bin"}))
        tf, _ = timed(lambda: sh_host("cp art.bin art3.bin", cwd=wd))
        show("artifact_download", t, tf, f"{total / 2**20 / t:.0f} MiB/s")
    finally:
        if daemon:
            daemon.stop()
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
