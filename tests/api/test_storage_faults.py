"""The daemon against a failing S3 (issue 4): tests/storage/faultproxy.py between sandboxd and
s3rver fails the second UploadPart of a multipart upload (every attempt). An artifact upload and a
checkpoint of a workspace with a multipart-sized file fail with a clear 502/503 envelope, the
client aborts the multipart upload, no artifact/checkpoint record is left, and once the fault
clears the same calls succeed."""
import sys

import pytest

from apihelpers import assert_error
from ckpthelpers import REPO, Org, S3rver, S3Store, S3_BUCKET, s3_env_vars, Env
from sandboxhelpers import PrivateDaemon

sys.path.insert(0, str(REPO / "tests" / "storage"))
from faultproxy import FaultProxy  # noqa: E402

MiB = 1 << 20


@pytest.fixture(scope="module")
def faulty(pg, tmp_path_factory):
    import os
    work = tmp_path_factory.mktemp("s3fault")
    os.chmod(work, 0o755)
    s3 = S3rver(work).start()
    proxy = FaultProxy(s3.endpoint).start()
    env_vars = s3_env_vars(s3)
    env_vars["SANDBOXD_STORAGE_S3_ENDPOINT"] = proxy.endpoint
    pd = PrivateDaemon(pg, work, "s3fault", env_vars)
    try:
        pd.start()
        e = Env("s3", pd.d.base, S3Store(s3.endpoint, S3_BUCKET), pd.state_dir, s3)
        yield e, proxy
    finally:
        pd.shutdown()
        proxy.stop()
        s3.stop()


@pytest.fixture
def forg(faulty):
    e, proxy = faulty
    o = Org(e, e.register())
    proxy.clear()
    yield o, proxy
    proxy.clear()
    o.sb.cleanup()


def objects(o, kind):
    return [k for k in o.env.store.keys(f"orgs/{o.org_id}/{kind}/")]


def test_artifact_upload_fails_midway_then_retry(forg):
    o, proxy = forg
    sid = o.new_sandbox()
    o.sh(sid, f"head -c {20 * MiB} /dev/urandom > /workspace/big.bin", timeout=120000)
    proxy.fail_part(2, status=500)
    r = o.post(f"sandbox/{sid}/artifacts/upload", {"path": "big.bin"}, timeout=300)
    assert r.status_code in (502, 503), r.text
    assert_error(r, r.status_code)
    assert "storage" in r.json()["error"]["code"]
    assert len(proxy.aborts()) == 1, proxy.requests()
    assert o.get("artifacts", params={"sandbox_id": sid}).json()["artifacts"] == []
    assert objects(o, "artifacts") == []
    proxy.clear()
    r = o.post(f"sandbox/{sid}/artifacts/upload", {"path": "big.bin"}, timeout=300)
    assert r.status_code == 201, r.text
    assert [a["id"] for a in o.get("artifacts", params={"sandbox_id": sid})
            .json()["artifacts"]] == [r.json()["id"]]
    assert objects(o, "artifacts") == [f"orgs/{o.org_id}/artifacts/{r.json()['id']}"]


def test_checkpoint_fails_midway_then_retry(forg):
    o, proxy = forg
    sid = o.new_sandbox()
    o.sh(sid, f"head -c {20 * MiB} /dev/urandom > /workspace/big.bin; echo hi > /workspace/s",
         timeout=120000)
    proxy.fail_part(2, status=500)
    r = o.post(f"sandbox/{sid}/checkpoints", {"name": "doomed"}, timeout=300)
    assert r.status_code in (502, 503), r.text
    assert "storage" in r.json()["error"]["code"]
    assert len(proxy.aborts()) >= 1
    assert o.get("checkpoints", params={"sandbox_id": sid}).json()["checkpoints"] == []
    assert objects(o, "manifests") == []
    proxy.clear()
    ck = o.checkpoint(sid, "second try")
    assert [c["id"] for c in o.get("checkpoints", params={"sandbox_id": sid})
            .json()["checkpoints"]] == [ck["id"]]
    assert objects(o, "manifests") == [f"orgs/{o.org_id}/manifests/{ck['id']}"]
    # and it restores
    sid2 = o.new_sandbox()
    r = o.restore(sid2, ck["id"])
    assert r.status_code == 200, r.text
    assert o.sh(sid2, "cat /workspace/s") == "hi\n"


def test_slow_down_during_upload_is_retried(forg):
    o, proxy = forg
    sid = o.new_sandbox()
    o.sh(sid, "head -c 100000 /dev/urandom > /workspace/f")
    proxy.slow_down(times=2)  # absorbed by the retries (4 attempts)
    r = o.post(f"sandbox/{sid}/artifacts/upload", {"path": "f"}, timeout=300)
    assert r.status_code == 201, r.text
