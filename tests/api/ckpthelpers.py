"""Shared fixtures of test_checkpoints.py and test_artifacts.py: one environment per blob store
backend (the session daemon on the fs store; a private daemon on an s3rver for s3), a view of
the store independent of the daemon (the fs directory, or Debian's python3-boto3), and sandbox
helpers for workspace listings (sha256 of every file, modes, symlinks, read INSIDE the sandbox).
"""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from apihelpers import unique_email, unique_name
from sandboxhelpers import PrivateDaemon, SandboxClient

REPO = Path(__file__).resolve().parents[2]
S3_BUCKET = "sandboxd-ckpt-test"
S3_KEY = "S3RVER"


def _conftest():
    import conftest
    return conftest


# ---------------------------------------------------------------------------------------------
# Store views
# ---------------------------------------------------------------------------------------------

class FsStore:
    kind = "fs"

    def __init__(self, root):
        self.root = Path(root)

    def keys(self, prefix=""):
        base = self.root
        out = []
        if not base.exists():
            return out
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                if "~" in f:
                    continue  # temp files of in-flight puts
                rel = os.path.relpath(os.path.join(dirpath, f), base)
                if rel.startswith(prefix):
                    out.append(rel)
        return sorted(out)

    def get(self, key):
        return (self.root / key).read_bytes()


class S3Store:
    kind = "s3"

    def __init__(self, endpoint, bucket):
        import boto3
        from botocore.config import Config
        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY,
                                   aws_secret_access_key=S3_KEY, region_name="us-east-1",
                                   config=Config(s3={"addressing_style": "path"},
                                                 retries={"max_attempts": 1}))

    def keys(self, prefix=""):
        out = []
        token = None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            r = self.client.list_objects_v2(**kw)
            out += [o["Key"] for o in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                return sorted(out)
            token = r["NextContinuationToken"]

    def get(self, key):
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


# ---------------------------------------------------------------------------------------------
# s3rver (tests/s3/s3rver.js, @20minutes/s3rver 5.x: checks SigV4 and presigned signatures)
# ---------------------------------------------------------------------------------------------

class S3rver:
    def __init__(self, workdir):
        self.dir = Path(workdir) / "s3data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc = None

    def start(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if not node or not (REPO / "tests" / "s3" / "node_modules").exists():
            pytest.skip("node or tests/s3/node_modules (@20minutes/s3rver) not available")
        self.proc = subprocess.Popen([node, str(REPO / "tests" / "s3" / "s3rver.js"),
                                      str(self.port), str(self.dir), S3_BUCKET],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"s3rver did not start: {line!r} {err}")
        self.port = int(line.split()[1])
        return self

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


# ---------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------

class Env:
    def __init__(self, kind, base, store, state_dir, s3=None):
        self.kind = kind
        self.base = base
        self.store = store
        self.state_dir = state_dir
        self.s3 = s3
        self.api = _conftest().Api(base)

    def register(self):
        r = self.api.post("register", json={"email": unique_email(),
                                            "organization_name": unique_name("Ckpt")})
        assert r.status_code in (200, 201), r.text
        return r.json()


def s3_env_vars(s3):
    return {
        "SANDBOXD_STORAGE_KIND": "s3",
        "SANDBOXD_STORAGE_S3_ENDPOINT": s3.endpoint,
        "SANDBOXD_STORAGE_S3_BUCKET": S3_BUCKET,
        "SANDBOXD_STORAGE_S3_ACCESS_KEY_ID": S3_KEY,
        "SANDBOXD_STORAGE_S3_SECRET_ACCESS_KEY": S3_KEY,
        "SANDBOXD_STORAGE_S3_PATH_STYLE": "true",
        "SANDBOXD_REAPER_INTERVAL": "1",
    }


@pytest.fixture(scope="module", params=["fs", "s3"])
def env(request, daemon, pg, tmp_path_factory):
    if request.param == "fs":
        yield Env("fs", daemon.base, FsStore(Path(daemon.state_dir) / "blobs"), daemon.state_dir)
        return
    work = tmp_path_factory.mktemp("ckpt-s3")
    os.chmod(work, 0o755)
    s3 = S3rver(work).start()
    pd = PrivateDaemon(pg, work, "ckpt-s3", s3_env_vars(s3))
    try:
        pd.start()
        e = Env("s3", pd.d.base, S3Store(s3.endpoint, S3_BUCKET), pd.state_dir, s3)
        e.pd = pd
        yield e
    finally:
        pd.shutdown()
        s3.stop()


class Org:
    def __init__(self, env, body):
        self.env = env
        self.api = env.api
        self.body = body
        self.key = body["api_key"]["key"]
        self.org_id = body["organization"]["id"]
        self.sb = SandboxClient(env.api, self.key, self.org_id, env.state_dir)

    # generic calls
    def get(self, path, **kw):
        return self.api.get(path, key=self.key, **kw)

    def post(self, path, body=None, **kw):
        return self.api.post(path, key=self.key, json=body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.api.delete(path, key=self.key, **kw)

    # checkpoints
    def checkpoint(self, sid, name="ck", **body):
        r = self.post(f"sandbox/{sid}/checkpoints", {"name": name, **body}, timeout=300)
        assert r.status_code == 201, f"checkpoint failed: {r.status_code} {r.text[:500]}"
        return r.json()

    def restore(self, sid, ckpt, **body):
        return self.post(f"sandbox/{sid}/checkpoints/restore", {"checkpoint_id": ckpt, **body},
                         timeout=300)

    def sh(self, sid, script, **kw):
        res = self.sb.execute(sid, ["sh", "-c", script], **kw)
        assert res["exit_code"] == 0, res
        return res["stdout"]

    def new_sandbox(self, **body):
        return self.sb.create(body)["sandbox_id"]

    def drop_sandbox(self, sid):
        self.sb.delete(sid, timeout=60)


@pytest.fixture
def org(env):
    o = Org(env, env.register())
    yield o
    o.sb.cleanup()


@pytest.fixture
def org_b(env):
    o = Org(env, env.register())
    yield o
    o.sb.cleanup()


LIST_SCRIPT = r"""cd /workspace && find . -mindepth 1 -printf '%y %m %p -> %l\n' | LC_ALL=C sort
echo ==
find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
"""


def workspace_state(o, sid):
    """Everything restore must reproduce: types, modes, symlink targets, sha256 of every file."""
    return o.sh(sid, LIST_SCRIPT, timeout=120000)


def store_keys_for(env, org_id, kind):
    return env.store.keys(f"orgs/{org_id}/{kind}/")


def wait_until(pred, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


def http_get(url, **kw):
    kw.setdefault("timeout", 60)
    return requests.get(url, **kw)
