"""Artifacts (issue 4): streamed out of a sandbox into the blob store, written back into
sandboxes, presigned URLs fetched with plain HTTP, expiry by the reaper — on the fs store and on
S3 (s3rver), with the objects read back through the store itself (fs dir / boto3)."""
import hashlib
import re
import time

import pytest
import yaml

from apihelpers import assert_error
from ckpthelpers import (REPO, env, http_get, org, org_b,  # noqa: F401
                         store_keys_for, wait_until)

FIELDS = {"id", "sandbox_id", "org_id", "path", "remote_path", "size", "checksum",
          "content_type", "created_at", "expires_at", "metadata"}
BIG = 50 * 1024 * 1024


def upload(o, sid, path, **body):
    return o.post(f"sandbox/{sid}/artifacts/upload", {"path": path, **body}, timeout=300)


def sha_inside(o, sid, path):
    return o.sh(sid, f"sha256sum {path} | cut -d' ' -f1").strip()


def test_round_trip_50mib(org):
    sid = org.new_sandbox()
    org.sh(sid, f"head -c {BIG} /dev/urandom > /workspace/big.bin", timeout=120000)
    want = sha_inside(org, sid, "/workspace/big.bin")
    r = upload(org, sid, "big.bin", content_type="application/x-test", metadata={"a": "b"},
               remote_path="results/big.bin")
    assert r.status_code == 201, r.text
    a = r.json()
    assert FIELDS <= set(a)
    assert a["size"] == BIG and a["checksum"] == want and a["sandbox_id"] == sid
    assert a["org_id"] == org.org_id and a["path"] == "big.bin"
    assert a["remote_path"] == "results/big.bin" and a["content_type"] == "application/x-test"
    assert a["metadata"] == {"a": "b"} and a["expires_at"] is None
    # the object: keyed by ids only, content intact (read with the store's own client)
    key = f"orgs/{org.org_id}/artifacts/{a['id']}"
    assert store_keys_for(org.env, org.org_id, "artifacts") == [key]
    assert hashlib.sha256(org.env.store.get(key)).hexdigest() == want
    # into another sandbox
    sid2 = org.new_sandbox()
    org.drop_sandbox(sid)
    r = org.post(f"sandbox/{sid2}/artifacts/download",
                 {"artifact_id": a["id"], "path": "in/copy.bin"}, timeout=300)
    assert r.status_code == 200, r.text
    assert r.json()["size"] == BIG
    assert sha_inside(org, sid2, "/workspace/in/copy.bin") == want


def test_presigned_url(org):
    sid = org.new_sandbox()
    org.sh(sid, "head -c 300000 /dev/urandom > /workspace/f")
    want = sha_inside(org, sid, "/workspace/f")
    a = upload(org, sid, "/workspace/f").json()
    r = org.get(f"artifacts/{a['id']}/url", params={"expires_in": 60})
    assert r.status_code == 200, r.text
    u = r.json()
    assert u["url"].startswith("http") and u["expires_in"] == 60 and u["expires_at"]
    got = http_get(u["url"])
    assert got.status_code == 200, got.text[:300]
    assert hashlib.sha256(got.content).hexdigest() == want
    # tampered: change one character of the signature/token
    url = u["url"]
    if "X-Amz-Signature=" in url:
        sig = re.search(r"X-Amz-Signature=([0-9a-f]+)", url).group(1)
        bad = url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    else:
        tok = url.rsplit("/", 1)[1]
        mid = len(tok) // 2
        bad = url[: -len(tok)] + tok[:mid] + ("A" if tok[mid] != "A" else "B") + tok[mid + 1:]
    assert http_get(bad).status_code == 403
    # expired
    r = org.get(f"artifacts/{a['id']}/url", params={"expires_in": 1})
    short = r.json()["url"]
    time.sleep(2.5)
    assert http_get(short).status_code == 403
    for q in ("0", "x", "604801", "-5"):
        assert_error(org.get(f"artifacts/{a['id']}/url", params={"expires_in": q}), 400)


def test_list_get_delete(org):
    sid = org.new_sandbox()
    org.sh(sid, "printf one > /workspace/1 && printf two > /workspace/2")
    a1 = upload(org, sid, "1").json()
    a2 = upload(org, sid, "2").json()
    r = org.get("artifacts", params={"sandbox_id": sid})
    assert [x["id"] for x in r.json()["artifacts"]] == [a2["id"], a1["id"]]
    r = org.get("artifacts", params={"limit": 1})
    body = r.json()
    assert body["has_more"] and len(body["artifacts"]) == 1
    r = org.get("artifacts", params={"limit": 1, "cursor": body["next_cursor"]})
    assert [x["id"] for x in r.json()["artifacts"]] == [a1["id"]]
    assert org.get(f"artifacts/{a1['id']}").json()["checksum"] == \
        hashlib.sha256(b"one").hexdigest()
    r = org.delete(f"artifacts/{a1['id']}")
    assert r.status_code == 200 and r.json() == {"success": True}
    assert_error(org.get(f"artifacts/{a1['id']}"), 404)
    assert_error(org.delete(f"artifacts/{a1['id']}"), 404)
    assert store_keys_for(org.env, org.org_id, "artifacts") == \
        [f"orgs/{org.org_id}/artifacts/{a2['id']}"]


def test_expiry_by_reaper(org):
    sid = org.new_sandbox()
    org.sh(sid, "printf soon > /workspace/s")
    a = upload(org, sid, "s", expires_in=1).json()
    assert a["expires_at"]
    key = f"orgs/{org.org_id}/artifacts/{a['id']}"
    assert wait_until(lambda: org.get(f"artifacts/{a['id']}").status_code == 404, 10)
    assert wait_until(lambda: key not in store_keys_for(org.env, org.org_id, "artifacts"), 30, 0.5)


def test_bad_input(org):
    sid = org.new_sandbox()
    org.sh(sid, "mkdir -p /workspace/dir && printf x > /workspace/x && "
                "ln -s /etc/passwd /workspace/out && mkfifo /workspace/fifo")
    up = f"sandbox/{sid}/artifacts/upload"
    for body in ({}, {"path": ""}, {"path": 5}, {"path": "x", "content_type": "nope"},
                 {"path": "x", "content_type": "text/plain\r\nX: y"}, {"path": "x", "expires_in": 0},
                 {"path": "x", "expires_in": "1"}, {"path": "x", "metadata": [1]},
                 {"path": "x", "remote_path": 3}):
        assert_error(org.post(up, body), 422)
    assert_error(org.post(up, {"path": "../../etc/passwd"}), 400)
    assert_error(org.post(up, {"path": "/etc/passwd"}), 400)
    assert_error(org.post(up, {"path": "out"}), 400)      # symlink leaving /workspace
    assert_error(org.post(up, {"path": "fifo"}), 400)     # not a regular file
    assert_error(org.post(up, {"path": "missing"}), 404)
    assert_error(org.post(up, {"path": "dir"}), 409)
    r = org.api.post(up, key=org.key, data="{", headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    a = upload(org, sid, "x").json()
    down = f"sandbox/{sid}/artifacts/download"
    for body in ({}, {"artifact_id": a["id"]}, {"path": "y"}, {"artifact_id": 1, "path": "y"}):
        assert_error(org.post(down, body), 422)
    assert_error(org.post(down, {"artifact_id": a["id"], "path": "../../tmp/y"}), 400)
    assert_error(org.post(down, {"artifact_id": "nope", "path": "y"}), 404)
    assert_error(org.post(down, {"artifact_id": a["id"], "path": "dir"}), 409)
    for q in ({"limit": "0"}, {"limit": "201"}, {"cursor": "x"}, {"sandbox_id": "x"}):
        assert_error(org.get("artifacts", params=q), 400)
    for p in ("artifacts/nope", "artifacts/00000000-0000-4000-8000-000000000000",
              "artifacts/nope/url"):
        assert_error(org.get(p), 404)
    # public blob route: garbage tokens are refused without detail
    assert org.api.get("/api/v1/blobs/garbage").status_code in (403, 404)


def test_cross_org_404(org, org_b):
    sid = org.new_sandbox()
    org.sh(sid, "printf x > /workspace/x")
    a = upload(org, sid, "x").json()
    sid_b = org_b.new_sandbox()
    i = a["id"]
    assert_error(org_b.get(f"artifacts/{i}"), 404)
    assert_error(org_b.get(f"artifacts/{i}/url"), 404)
    assert_error(org_b.delete(f"artifacts/{i}"), 404)
    assert_error(org_b.post(f"sandbox/{sid_b}/artifacts/download",
                            {"artifact_id": i, "path": "y"}), 404)
    assert_error(org_b.post(f"sandbox/{sid}/artifacts/upload", {"path": "x"}), 404)
    assert_error(org_b.post(f"sandbox/{sid}/artifacts/download",
                            {"artifact_id": i, "path": "y"}), 404)
    assert i not in org_b.get("artifacts").text
    assert org.get(f"artifacts/{i}").status_code == 200


def test_audit_records(org):
    sid = org.new_sandbox()
    org.sh(sid, "printf x > /workspace/x")
    a = upload(org, sid, "x").json()
    org.post(f"sandbox/{sid}/artifacts/download", {"artifact_id": a["id"], "path": "y"})
    org.delete(f"artifacts/{a['id']}")
    actions = [e["action"] for e in org.get("audit", params={"limit": 100}).json()["events"]]
    for act in ("artifact.upload", "artifact.download", "artifact.delete"):
        assert act in actions, (act, actions)


def test_store_unavailable_then_retry(env, org):
    if env.kind != "s3":
        pytest.skip("the fault is injected by stopping s3rver")
    sid = org.new_sandbox()
    org.sh(sid, "head -c 100000 /dev/urandom > /workspace/f")
    env.s3.stop()
    try:
        r = upload(org, sid, "f")
        assert_error(r, 503, "storage_unavailable")
        assert org.get("artifacts", params={"sandbox_id": sid}).json()["artifacts"] == []
    finally:
        env.s3.start()
    r = upload(org, sid, "f")
    assert r.status_code == 201, r.text
    assert [x["id"] for x in org.get("artifacts", params={"sandbox_id": sid})
            .json()["artifacts"]] == [r.json()["id"]]


def test_openapi_documents_artifact_routes():
    doc = yaml.safe_load((REPO / "docs" / "api" / "openapi.yaml").read_text())
    canon = {re.sub(r"\{[^}]+\}", "{}", p): v for p, v in doc["paths"].items()}
    for method, path in [("post", "/sandbox/{}/artifacts/upload"),
                         ("post", "/sandbox/{}/artifacts/download"),
                         ("get", "/artifacts"), ("get", "/artifacts/{}"),
                         ("get", "/artifacts/{}/url"), ("delete", "/artifacts/{}"),
                         ("get", "/blobs/{}")]:
        item = canon.get("/api/v1" + path) or canon.get(path)
        assert item and method in item, (method, path)


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_large_download_streams_in_constant_memory(env, org, daemon):
    """GET /api/v1/blobs/:token (fs store) streams the object file from the event loop in 64 KiB
    reads: a 200 MiB artifact downloads byte-exact while the daemon's RSS stays within ~60 MiB
    of its value before the download (the old route read the whole object into memory)."""
    if env.kind != "fs":
        pytest.skip("the daemon URL is the fs store's; S3 serves presigned URLs itself")
    size = 200 * 1024 * 1024
    sid = org.new_sandbox()
    org.sh(sid, f"head -c {size} /dev/urandom > /workspace/huge.bin", timeout=300000)
    want = sha_inside(org, sid, "/workspace/huge.bin")
    r = upload(org, sid, "huge.bin")
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["size"] == size
    org.drop_sandbox(sid)
    url = org.get(f"artifacts/{a['id']}/url", params={"expires_in": 300}).json()["url"]
    pid = daemon.proc.pid
    time.sleep(0.5)
    base = _rss_kib(pid)
    peak = base
    h = hashlib.sha256()
    got = 0
    import requests
    with requests.get(url, stream=True, timeout=300) as resp:
        assert resp.status_code == 200, resp.text[:300]
        assert int(resp.headers["Content-Length"]) == size
        assert resp.headers["Content-Type"] == "application/octet-stream"
        for i, chunk in enumerate(resp.iter_content(1024 * 1024)):
            h.update(chunk)
            got += len(chunk)
            if i % 8 == 0:
                peak = max(peak, _rss_kib(pid))
                time.sleep(0.01)  # a slower reader: back-pressure must hold the daemon's memory
    peak = max(peak, _rss_kib(pid))
    assert got == size
    assert h.hexdigest() == want
    assert peak - base < 60 * 1024, f"daemon RSS grew by {(peak - base) // 1024} MiB"
    # a deleted artifact's link stops working
    assert org.delete(f"artifacts/{a['id']}").status_code == 200
    assert http_get(url).status_code == 404
