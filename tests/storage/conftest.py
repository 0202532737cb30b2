"""Fixtures of the blob store suite: the blobctl binary and one Store per backend.

blobctl: $SBX_BLOBCTL (scripts/test.sh sets it), else build/storage/blobctl or
build-blob/storage/blobctl under the checkout.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "api"))

from s3helpers import s3rver, start_s3rver  # noqa: E402,F401  (fixtures)


def _blobctl():
    env = os.environ.get("SBX_BLOBCTL")
    if env:
        return env
    for d in ("build", "build-blob"):
        p = os.path.join(ROOT, d, "storage", "blobctl")
        if os.access(p, os.X_OK):
            return p
    pytest.skip("blobctl is not built (set SBX_BLOBCTL)")


class Failed(Exception):
    def __init__(self, rc, stderr):
        super().__init__(stderr)
        self.rc = rc
        self.stderr = stderr
        # "blobctl: CMD: MESSAGE [ENAME]"
        self.errno = stderr.rsplit("[", 1)[-1].split("]")[0] if "[" in stderr else ""


class Store:
    """One backend driven through blobctl."""

    def __init__(self, kind, args, server=None, fs_dir=None):
        self.kind = kind
        self.args = args
        self.server = server
        self.fs_dir = fs_dir

    def run(self, *cmd, stdin=None, check=True, timeout=120):
        p = subprocess.run(
            [_blobctl(), *self.args, *cmd],
            input=stdin,
            capture_output=True,
            timeout=timeout,
        )
        if check and p.returncode != 0:
            raise Failed(p.returncode, p.stderr.decode(errors="replace"))
        return p

    def put_bytes(self, key, data, sha=True, wrong_sha=False):
        extra = []
        if wrong_sha:
            extra = ["--sha256", "0" * 64]
        elif sha:
            extra = ["--sha256", hashlib.sha256(data).hexdigest()]
        self.run("put", key, "-", "--size", str(len(data)), *extra, stdin=data)

    def put_file(self, key, path, sha=None):
        self.run("put", key, path, *(["--sha256", sha] if sha else []))

    def get_bytes(self, key):
        return self.run("get", key, "-").stdout

    def get_file(self, key, path):
        self.run("get", key, path)

    def head(self, key):
        return json.loads(self.run("head", key).stdout)

    def delete(self, key):
        self.run("del", key)

    def list(self, prefix=""):
        return self.run("list", prefix).stdout.decode().split()

    def presign(self, key, seconds=60):
        return self.run("presign", key, str(seconds)).stdout.decode().strip()

    def errno_of(self, *cmd, stdin=None):
        p = self.run(*cmd, stdin=stdin, check=False)
        assert p.returncode != 0, f"{cmd} succeeded"
        return Failed(p.returncode, p.stderr.decode(errors="replace"))


def s3_args(srv, endpoint=None, vhost=False):
    a = [
        "--s3",
        "--endpoint", endpoint or srv.endpoint,
        "--bucket", srv.bucket,
        "--region", srv.region,
        "--access-key-id", srv.access_key,
        "--secret-access-key", srv.secret_key,
    ]
    if vhost:
        a.append("--virtual-host")
    return a


@pytest.fixture(params=["fs", "s3"])
def store(request, tmp_path):
    if request.param == "fs":
        d = tmp_path / "blobs"
        return Store("fs", ["--fs", str(d), "--public-url", "http://127.0.0.1:9"], fs_dir=d)
    srv = request.getfixturevalue("s3rver")
    return Store("s3", s3_args(srv), server=srv)


@pytest.fixture
def fs_store(tmp_path):
    d = tmp_path / "blobs"
    return Store("fs", ["--fs", str(d)], fs_dir=d)


@pytest.fixture
def s3_store(s3rver):
    return Store("s3", s3_args(s3rver), server=s3rver)
