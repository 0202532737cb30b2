"""S3-compatible test server for the storage and API suites.

`@20minutes/s3rver` 5.x (tests/s3, installed by scripts/lib.sh `sbx_install_s3rver`) checks
SigV4 header and presigned signatures and supports multipart uploads. It is started through
tests/s3/s3rver.js on loopback, on a free port, over a temporary directory, with the bucket
`sandboxd-test` and s3rver's built-in credentials S3RVER / S3RVER.

Use the session fixture `s3rver` (import it into a conftest: `from s3helpers import s3rver`),
or `start_s3rver()` / `S3rver.stop()` for a private server (fault tests stop theirs).
Known limits of s3rver 5 (documented in docs/internals/STORAGE.md): no ListMultipartUploads,
no AbortMultipartUpload (405), no x-amz-checksum-* verification, and virtual-hosted requests
are only accepted with S3RVER_ALLOW_MISMATCHED_SIGNATURES=1 (see tests/s3/s3rver.js).
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S3_DIR = os.path.join(ROOT, "tests", "s3")
BUCKET = "sandboxd-test"
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
REGION = "us-east-1"


def s3rver_available():
    """(ok, reason)"""
    if not shutil.which("node"):
        return False, "node is not installed"
    if not os.path.isdir(os.path.join(S3_DIR, "node_modules", "@20minutes", "s3rver")):
        return False, "tests/s3/node_modules missing (scripts/lib.sh sbx_install_s3rver)"
    return True, ""


class S3rver:
    def __init__(self, proc, port, directory, owns_dir):
        self.proc = proc
        self.port = port
        self.dir = directory
        self._owns_dir = owns_dir
        self.endpoint = f"http://127.0.0.1:{port}"
        self.vhost_endpoint = f"http://s3.localhost:{port}"
        self.bucket = BUCKET
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION

    def boto3(self):
        import boto3  # Debian's python3-boto3: the independent client
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_s3rver(directory=None, port=0, buckets=(BUCKET,), env=None, timeout=30):
    ok, why = s3rver_available()
    if not ok:
        pytest.skip(why)
    owns = directory is None
    directory = directory or tempfile.mkdtemp(prefix="sbx-s3rver-")
    e = dict(os.environ)
    e.update(env or {})
    proc = subprocess.Popen(
        # --openssl-legacy-provider: s3rver's ListObjectsV2 continuation tokens use DES,
        # which OpenSSL 3 only has in its legacy provider (InternalError otherwise).
        ["node", "--openssl-legacy-provider", os.path.join(S3_DIR, "s3rver.js"), str(port),
         directory, *buckets],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=e,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"s3rver exited with {proc.returncode}")
            continue
        if line.startswith("ready "):
            return S3rver(proc, int(line.split()[1]), directory, owns)
    proc.kill()
    raise RuntimeError("s3rver did not become ready")


@pytest.fixture(scope="session")
def s3rver():
    """A running s3rver for the whole session: .endpoint, .bucket, .access_key, .secret_key."""
    srv = start_s3rver()
    yield srv
    srv.stop()
