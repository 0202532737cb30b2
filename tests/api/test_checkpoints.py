"""Checkpoints (issue 4): content-addressed, incremental; restore, clone, fork, compare, lineage,
delete with content garbage collection — on the fs store (session daemon) and on S3 (a private
daemon against @20minutes/s3rver), read back through the store itself (fs dir / boto3)."""
import hashlib
import re
import threading
import time

import pytest
import yaml

from apihelpers import assert_error
from ckpthelpers import (REPO, Org, PrivateDaemon, env, org, org_b,  # noqa: F401
                         store_keys_for, wait_until, workspace_state)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FIELDS = {"id", "sandbox_id", "org_id", "name", "description", "created_at", "size",
          "file_count", "checksum", "metadata", "parent_id", "generation", "bytes_new",
          "files_new"}

MAKE_TREE = r"""set -e
mkdir -p /workspace/proj/sub/deep /workspace/empty_dir
cd /workspace/proj
for i in $(seq 1 100); do head -c 20000 /dev/urandom > f$i.bin; done
printf 'hello\n' > sub/hello.txt
printf '#!/bin/sh\necho hi\n' > sub/run.sh; chmod 0755 sub/run.sh
printf 'secret' > sub/private.txt; chmod 0600 sub/private.txt
: > sub/deep/empty.txt
printf 'same' > dup1.txt; printf 'same' > dup2.txt
ln -s sub/hello.txt link_rel
ln -s /workspace/proj/sub link_abs_dir
ln -s ../../etc/passwd link_escape
ln -s /etc/shadow link_escape_abs
printf 'name with spaces\n' > 'sub/a file with spaces.txt'
printf 'newline\n' > "$(printf 'sub/nl\nname.txt')"
"""


def test_create_get_list(org):
    sid = org.new_sandbox()
    org.sh(sid, "mkdir -p /workspace/a && printf 'x' > /workspace/a/x.txt && printf 'yy' > /workspace/y")
    ck = org.checkpoint(sid, "first", description="d", metadata={"k": "v"})
    assert FIELDS <= set(ck), ck
    assert UUID_RE.match(ck["id"]) and ck["sandbox_id"] == sid and ck["org_id"] == org.org_id
    assert ck["name"] == "first" and ck["description"] == "d" and ck["metadata"] == {"k": "v"}
    assert ck["size"] == 3 and ck["file_count"] == 2
    assert re.match(r"^[0-9a-f]{64}$", ck["checksum"])
    assert ck["parent_id"] is None and ck["generation"] == 0
    assert ck["bytes_new"] == 3 and ck["files_new"] == 2
    # the manifest is one object, its sha256 is the checksum
    man = org.env.store.get(f"orgs/{org.org_id}/manifests/{ck['id']}")
    assert hashlib.sha256(man).hexdigest() == ck["checksum"]
    r = org.get(f"checkpoints/{ck['id']}")
    assert r.status_code == 200 and r.json()["id"] == ck["id"]
    ck2 = org.checkpoint(sid, "second")
    assert ck2["parent_id"] == ck["id"] and ck2["generation"] == 1
    assert ck2["bytes_new"] == 0 and ck2["files_new"] == 0
    r = org.get("checkpoints", params={"sandbox_id": sid})
    assert r.status_code == 200
    ids = [c["id"] for c in r.json()["checkpoints"]]
    assert ids == [ck2["id"], ck["id"]]
    r = org.get("checkpoints", params={"sandbox_id": sid, "limit": 1})
    body = r.json()
    assert [c["id"] for c in body["checkpoints"]] == [ck2["id"]] and body["has_more"]
    r = org.get("checkpoints", params={"sandbox_id": sid, "limit": 1,
                                       "cursor": body["next_cursor"]})
    assert [c["id"] for c in r.json()["checkpoints"]] == [ck["id"]]
    assert r.json()["has_more"] is False


def test_incremental_uploads_only_changes(org):
    sid = org.new_sandbox()
    org.sh(sid, "mkdir -p /workspace/d && cd /workspace/d && "
                "for i in $(seq 1 100); do head -c 10000 /dev/urandom > f$i; done")
    ck1 = org.checkpoint(sid, "base")
    assert ck1["file_count"] == 100 and ck1["size"] == 1_000_000
    assert ck1["bytes_new"] == 1_000_000 and ck1["files_new"] == 100
    blobs1 = store_keys_for(org.env, org.org_id, "blobs")
    assert len(blobs1) == 100
    org.sh(sid, "head -c 12345 /dev/urandom > /workspace/d/f7")
    ck2 = org.checkpoint(sid, "one changed")
    assert ck2["bytes_new"] == 12345 and ck2["files_new"] == 1, ck2
    assert ck2["size"] == 1_000_000 - 10000 + 12345
    assert ck2["parent_id"] == ck1["id"] and ck2["generation"] == 1
    blobs2 = store_keys_for(org.env, org.org_id, "blobs")
    assert len(blobs2) == 101 and set(blobs1) < set(blobs2)
    # every blob object is named by its content's sha256
    for k in set(blobs2) - set(blobs1):
        assert hashlib.sha256(org.env.store.get(k)).hexdigest() == k.rsplit("/", 1)[1]


def test_compare_exact(org):
    sid = org.new_sandbox()
    org.sh(sid, "cd /workspace && printf a > keep && printf b > gone && printf c > change && "
                "printf d > mode && mkdir olddir && ln -s keep lnk")
    a = org.checkpoint(sid, "a")
    org.sh(sid, "cd /workspace && rm gone && rmdir olddir && printf cccc > change && "
                "chmod 0700 mode && printf new > added && mkdir newdir && ln -sfn gone lnk")
    b = org.checkpoint(sid, "b")
    r = org.post("checkpoints/compare", {"checkpoint_a": a["id"], "checkpoint_b": b["id"]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert sorted((x["path"], x["size"]) for x in d["added"]) == [("added", 3), ("newdir", 0)]
    assert sorted((x["path"], x["size"]) for x in d["removed"]) == [("gone", 1), ("olddir", 0)]
    mod = {x["path"]: x for x in d["modified"]}
    assert set(mod) == {"change", "mode", "lnk"}
    assert (mod["change"]["size_a"], mod["change"]["size_b"]) == (1, 4)
    assert mod["mode"]["mode_changed"] and not mod["mode"]["content_changed"]
    # identical checkpoints: empty diff
    r = org.post("checkpoints/compare", {"checkpoint_a": b["id"], "checkpoint_b": b["id"]})
    assert r.json()["added"] == r.json()["removed"] == r.json()["modified"] == []


def test_restore_byte_exact_modes_symlinks(org):
    src = org.new_sandbox()
    org.sh(src, MAKE_TREE)
    before = workspace_state(org, src)
    ck = org.checkpoint(src, "tree")
    org.drop_sandbox(src)
    dst = org.new_sandbox()
    r = org.restore(dst, ck["id"])
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["success"] is True and res["skipped"] == []
    assert sorted(res["unsafe_symlinks"]) == ["proj/link_escape", "proj/link_escape_abs"]
    after = workspace_state(org, dst)
    expected = "\n".join(line for line in before.splitlines()
                         if "link_escape" not in line)
    assert after == expected + ("\n" if before.endswith("\n") else "")
    # the escaping links were not created
    out = org.sb.execute(dst, ["sh", "-c", "ls -la /workspace/proj | grep -c escape || true"])
    assert out["stdout"].strip() == "0"


def test_restore_overwrite_false_keeps_and_reports(org):
    sid = org.new_sandbox()
    org.sh(sid, "cd /workspace && printf original > a.txt && printf b > b.txt")
    ck = org.checkpoint(sid, "x")
    org.sh(sid, "cd /workspace && printf changed > a.txt && rm b.txt")
    r = org.restore(sid, ck["id"], overwrite=False)
    assert r.status_code == 200, r.text
    assert r.json()["skipped"] == ["a.txt"] and r.json()["restored"] == 1
    assert org.sh(sid, "cat /workspace/a.txt; echo; cat /workspace/b.txt") == "changed\nb"
    r = org.restore(sid, ck["id"], overwrite=True)
    assert r.status_code == 200 and r.json()["skipped"] == []
    assert org.sh(sid, "cat /workspace/a.txt") == "original"
    # restore_files false: nothing written
    org.sh(sid, "printf again > /workspace/a.txt")
    r = org.restore(sid, ck["id"], restore_files=False, overwrite=True)
    assert r.status_code == 200 and r.json()["restored"] == 0
    assert org.sh(sid, "cat /workspace/a.txt") == "again"


def test_restore_env(org):
    sid = org.new_sandbox(env={"FOO": "bar"})
    ck = org.checkpoint(sid, "env", include_env=True)
    sid2 = org.new_sandbox()
    r = org.restore(sid2, ck["id"], restore_env=True)
    assert r.status_code == 200 and r.json()["env_restored"] is True
    assert org.sh(sid2, "printf %s \"$FOO\"") == "bar"


def test_clone_shares_content(org):
    sid = org.new_sandbox()
    org.sh(sid, "cd /workspace && head -c 50000 /dev/urandom > data && printf hi > hi")
    ck = org.checkpoint(sid, "src")
    blobs = store_keys_for(org.env, org.org_id, "blobs")
    r = org.post(f"checkpoints/{ck['id']}/clone", {"name": "copy"})
    assert r.status_code == 201, r.text
    cl = r.json()
    assert cl["id"] != ck["id"] and cl["name"] == "copy"
    assert cl["parent_id"] == ck["id"] and cl["generation"] == ck["generation"] + 1
    assert cl["bytes_new"] == 0 and cl["checksum"] == ck["checksum"]
    assert cl["size"] == ck["size"] and cl["file_count"] == ck["file_count"]
    assert store_keys_for(org.env, org.org_id, "blobs") == blobs
    # the clone survives the source's deletion
    assert org.delete(f"checkpoints/{ck['id']}").status_code == 200
    assert store_keys_for(org.env, org.org_id, "blobs") == blobs
    sid2 = org.new_sandbox()
    org.drop_sandbox(sid)
    r = org.restore(sid2, cl["id"])
    assert r.status_code == 200, r.text
    assert org.sh(sid2, "cat /workspace/hi") == "hi"


def test_delete_gc_never_deletes_referenced(org):
    sid = org.new_sandbox()
    org.sh(sid, "cd /workspace && printf shared > s && printf one > u1")
    c1 = org.checkpoint(sid, "c1")
    org.sh(sid, "cd /workspace && rm u1 && printf two > u2")
    c2 = org.checkpoint(sid, "c2")
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    pre = f"orgs/{org.org_id}/blobs/"
    assert set(store_keys_for(org.env, org.org_id, "blobs")) == \
        {pre + sha(b"shared"), pre + sha(b"one"), pre + sha(b"two")}
    r = org.delete(f"checkpoints/{c1['id']}")
    assert r.status_code == 200 and r.json() == {"success": True}
    assert set(store_keys_for(org.env, org.org_id, "blobs")) == \
        {pre + sha(b"shared"), pre + sha(b"two")}
    assert store_keys_for(org.env, org.org_id, "manifests") == \
        [f"orgs/{org.org_id}/manifests/{c2['id']}"]
    assert org.get(f"checkpoints/{c1['id']}").status_code == 404
    assert org.delete(f"checkpoints/{c1['id']}").status_code == 404
    # c2 is intact
    r = org.restore(sid, c2["id"], overwrite=True)
    assert r.status_code == 200, r.text
    assert org.delete(f"checkpoints/{c2['id']}").status_code == 200
    assert store_keys_for(org.env, org.org_id, "blobs") == []
    assert store_keys_for(org.env, org.org_id, "manifests") == []


def test_delete_races_create_safely(org):
    """Deleting a checkpoint while another one that references the same content is being
    created never loses the new checkpoint's content."""
    sid = org.new_sandbox()
    org.sh(sid, "mkdir -p /workspace/r && cd /workspace/r && "
                "for i in $(seq 1 60); do head -c 3000 /dev/urandom > f$i; done")
    for _round in range(3):
        old = org.checkpoint(sid, "old")
        results = {}

        def create():
            results["new"] = org.post(f"sandbox/{sid}/checkpoints", {"name": "new"}, timeout=300)

        def delete():
            time.sleep(0.05)
            results["del"] = org.delete(f"checkpoints/{old['id']}")

        ts = [threading.Thread(target=create), threading.Thread(target=delete)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert results["del"].status_code == 200, results["del"].text
        assert results["new"].status_code == 201, results["new"].text
        new = results["new"].json()
        keys = set(store_keys_for(org.env, org.org_id, "blobs"))
        assert len(keys) == 60, len(keys)
        sid2 = org.new_sandbox()
        r = org.restore(sid2, new["id"])
        assert r.status_code == 200, r.text
        assert workspace_state(org, sid2) == workspace_state(org, sid)
        org.drop_sandbox(sid2)
        assert org.delete(f"checkpoints/{new['id']}").status_code == 200
    assert store_keys_for(org.env, org.org_id, "blobs") == []


def test_fork_from_checkpoint(org):
    sid = org.new_sandbox()
    org.sh(sid, MAKE_TREE)
    ck = org.checkpoint(sid, "fork me")
    state = workspace_state(org, sid)
    org.drop_sandbox(sid)
    r = org.sb.create_raw({"from_checkpoint": ck["id"]}, timeout=300)
    assert r.status_code == 201, r.text
    fork = r.json()["sandbox_id"]
    assert r.json()["status"] == "running"
    expected = "\n".join(x for x in state.splitlines() if "link_escape" not in x)
    assert workspace_state(org, fork).rstrip("\n") == expected.rstrip("\n")
    # the fork's next checkpoint descends from the source
    ck2 = org.checkpoint(fork, "child")
    assert ck2["parent_id"] == ck["id"] and ck2["generation"] == 1
    assert ck2["bytes_new"] == 0
    org.drop_sandbox(fork)
    assert_error(org.sb.create_raw({"from_checkpoint": "00000000-0000-4000-8000-000000000000"}),
                 404)
    assert_error(org.sb.create_raw({"from_checkpoint": 5}), 422)


def test_tree_lineage(org):
    sid = org.new_sandbox()
    org.sh(sid, "printf x > /workspace/x")
    root = org.checkpoint(sid, "root")
    mid = org.post(f"checkpoints/{root['id']}/clone", {"name": "mid"}).json()
    leaf1 = org.post(f"checkpoints/{mid['id']}/clone", {"name": "leaf1"}).json()
    leaf2 = org.post(f"checkpoints/{mid['id']}/clone", {"name": "leaf2"}).json()
    other = org.post(f"checkpoints/{root['id']}/clone", {"name": "sibling"}).json()
    r = org.get(f"checkpoints/{mid['id']}/tree")
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["checkpoint_id"] == mid["id"] and t["ancestors"] == [root["id"]]
    assert t["descendant_count"] == 2
    node = t["tree"]
    assert node["id"] == root["id"] and [c["id"] for c in node["children"]] == [mid["id"]]
    kids = node["children"][0]["children"]
    assert sorted(c["id"] for c in kids) == sorted([leaf1["id"], leaf2["id"]])
    assert all(c["children"] == [] for c in kids)
    assert other["id"] not in r.text
    r = org.get(f"checkpoints/{leaf1['id']}/tree")
    assert r.json()["ancestors"] == [root["id"], mid["id"]]


def test_include_exclude_paths(org):
    sid = org.new_sandbox()
    org.sh(sid, "cd /workspace && mkdir -p src/x build && printf a > src/x/a.c && "
                "printf b > build/b.o && printf l > src/debug.log && printf r > readme")
    ck = org.checkpoint(sid, "sel", include_paths=["src", "readme"], exclude_paths=["*.log"])
    assert ck["file_count"] == 2 and ck["size"] == 2
    sid2 = org.new_sandbox()
    org.restore(sid2, ck["id"])
    assert org.sh(sid2, "cd /workspace && find . -type f | sort") == "./readme\n./src/x/a.c\n"


def test_bad_input(org):
    sid = org.new_sandbox()
    base = f"sandbox/{sid}/checkpoints"
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": "x" * 201},
                 {"name": "n", "include_paths": "src"}, {"name": "n", "include_paths": [5]},
                 {"name": "n", "exclude_paths": ["/etc"]}, {"name": "n", "metadata": []},
                 {"name": "n", "include_env": "yes"}, {"name": "n", "description": 7}):
        assert_error(org.post(base, body), 422)
    r = org.api.post(base, key=org.key, data="{", headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    assert_error(org.post("sandbox/not-a-uuid/checkpoints", {"name": "n"}), 404)
    assert_error(org.post("sandbox/00000000-0000-4000-8000-000000000000/checkpoints",
                          {"name": "n"}), 404)
    ck = org.checkpoint(sid, "ok")
    rb = f"sandbox/{sid}/checkpoints/restore"
    for body in ({}, {"checkpoint_id": 5}, {"checkpoint_id": ck["id"], "overwrite": "no"},
                 {"checkpoint_id": ck["id"], "restore_files": 1}):
        assert_error(org.post(rb, body), 422)
    assert_error(org.post(rb, {"checkpoint_id": "nope"}), 404)
    assert_error(org.post(rb, {"checkpoint_id": "00000000-0000-4000-8000-000000000000"}), 404)
    for body in ({}, {"checkpoint_a": ck["id"]}, {"checkpoint_a": 1, "checkpoint_b": ck["id"]}):
        assert_error(org.post("checkpoints/compare", body), 422)
    assert_error(org.post("checkpoints/compare", {"checkpoint_a": ck["id"],
                                                  "checkpoint_b": "x"}), 404)
    assert_error(org.post(f"checkpoints/{ck['id']}/clone", {"name": ""}), 422)
    assert_error(org.post(f"checkpoints/{ck['id']}/clone", {"name": 3}), 422)
    for q in ({"limit": "0"}, {"limit": "x"}, {"limit": "201"}, {"cursor": "bad"},
              {"sandbox_id": "nope"}):
        assert_error(org.get("checkpoints", params=q), 400)
    for p in ("checkpoints/nope", "checkpoints/00000000-0000-4000-8000-000000000000",
              "checkpoints/nope/tree"):
        assert_error(org.get(p), 404)
    # a stopped sandbox cannot be checkpointed
    org.sb.stop(sid)
    assert_error(org.post(base, {"name": "n"}), 409)


def test_cross_org_404_everywhere(org, org_b):
    sid = org.new_sandbox()
    org.sh(sid, "printf x > /workspace/x")
    ck = org.checkpoint(sid, "mine")
    sid_b = org_b.new_sandbox()
    ck_b = org_b.checkpoint(sid_b, "theirs")
    i = ck["id"]
    assert_error(org_b.get(f"checkpoints/{i}"), 404)
    assert_error(org_b.get(f"checkpoints/{i}/tree"), 404)
    assert_error(org_b.delete(f"checkpoints/{i}"), 404)
    assert_error(org_b.post(f"checkpoints/{i}/clone", {"name": "steal"}), 404)
    assert_error(org_b.post("checkpoints/compare", {"checkpoint_a": i,
                                                    "checkpoint_b": ck_b["id"]}), 404)
    assert_error(org_b.restore(sid_b, i), 404)
    assert_error(org_b.post(f"sandbox/{sid}/checkpoints", {"name": "x"}), 404)
    assert_error(org_b.restore(sid, ck_b["id"]), 404)
    assert_error(org_b.sb.create_raw({"from_checkpoint": i}), 404)
    assert i not in org_b.get("checkpoints").text
    assert org_b.get("checkpoints", params={"sandbox_id": sid}).json()["checkpoints"] == []
    assert org.get(f"checkpoints/{i}").status_code == 200


def test_audit_records(org):
    sid = org.new_sandbox()
    ck = org.checkpoint(sid, "audited")
    org.restore(sid, ck["id"])
    cl = org.post(f"checkpoints/{ck['id']}/clone", {"name": "c"}).json()
    org.delete(f"checkpoints/{cl['id']}")
    r = org.get("audit", params={"limit": 100})
    actions = [e["action"] for e in r.json()["events"]]
    for a in ("checkpoint.create", "checkpoint.restore", "checkpoint.clone", "checkpoint.delete"):
        assert a in actions, (a, actions)


def test_store_unavailable_then_retry(env, org):
    if env.kind != "s3":
        pytest.skip("the fault is injected by stopping s3rver")
    sid = org.new_sandbox()
    org.sh(sid, "cd /workspace && head -c 4000 /dev/urandom > a && printf b > b")
    env.s3.stop()
    try:
        r = org.post(f"sandbox/{sid}/checkpoints", {"name": "down"}, timeout=300)
        assert_error(r, 503, "storage_unavailable")
        assert org.get("checkpoints", params={"sandbox_id": sid}).json()["checkpoints"] == []
    finally:
        env.s3.start()
    ck = org.checkpoint(sid, "up")
    assert ck["files_new"] == 2 and ck["bytes_new"] == 4001
    assert [c["id"] for c in org.get("checkpoints", params={"sandbox_id": sid})
            .json()["checkpoints"]] == [ck["id"]]
    # deleting while the store is down fails cleanly and can be retried
    env.s3.stop()
    try:
        assert_error(org.delete(f"checkpoints/{ck['id']}"), 503, "storage_unavailable")
    finally:
        env.s3.start()
    assert org.get(f"checkpoints/{ck['id']}").status_code == 200   # nothing changed
    assert org.delete(f"checkpoints/{ck['id']}").status_code == 200
    assert store_keys_for(env, org.org_id, "blobs") == []
    assert store_keys_for(env, org.org_id, "manifests") == []
    # content left behind by the failed first attempt was collected as well
    assert wait_until(lambda: env.store.keys(f"orgs/{org.org_id}/") == [], 30, 1)


def test_openapi_documents_checkpoint_routes():
    doc = yaml.safe_load((REPO / "docs" / "api" / "openapi.yaml").read_text())
    paths = doc["paths"]
    canon = {re.sub(r"\{[^}]+\}", "{}", p): v for p, v in paths.items()}
    for method, path in [("post", "/sandbox/{}/checkpoints"),
                         ("post", "/sandbox/{}/checkpoints/restore"),
                         ("get", "/checkpoints"), ("get", "/checkpoints/{}"),
                         ("delete", "/checkpoints/{}"), ("post", "/checkpoints/{}/clone"),
                         ("post", "/checkpoints/compare"), ("get", "/checkpoints/{}/tree")]:
        item = canon.get("/api/v1" + path) or canon.get(path)
        assert item and method in item, (method, path)


# ---------------------------------------------------------------------------------------------
# Limits (a private fs daemon with small limits)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(pg, tmp_path_factory):
    import os
    from ckpthelpers import Env, FsStore
    work = tmp_path_factory.mktemp("ckpt-limits")
    os.chmod(work, 0o755)
    pd = PrivateDaemon(pg, work, "ckpt-limits", {
        "SANDBOXD_CHECKPOINTS_MAX_FILES": "20",
        "SANDBOXD_CHECKPOINTS_MAX_WORKSPACE_BYTES": "100000",
        "SANDBOXD_CHECKPOINTS_ORG_QUOTA_BYTES": "150000",
        "SANDBOXD_PLANS_FREE_STORAGE": "300000",
    })
    pd.start()
    e = Env("fs", pd.d.base, FsStore(pd.state_dir / "blobs"), pd.state_dir)
    yield e
    pd.shutdown()


def test_limits(small):
    o = Org(small, small.register())
    try:
        sid = o.new_sandbox()
        o.sh(sid, "cd /workspace && for i in $(seq 1 25); do printf $i > f$i; done")
        r = o.post(f"sandbox/{sid}/checkpoints", {"name": "many"})
        assert_error(r, 422, "too_many_files")
        assert "checkpoints.max_files" in r.json()["error"]["message"]
        o.sh(sid, "rm -f /workspace/f* && head -c 100001 /dev/urandom > /workspace/big")
        r = o.post(f"sandbox/{sid}/checkpoints", {"name": "big"})
        assert_error(r, 413, "workspace_too_large")
        o.sh(sid, "head -c 90000 /dev/urandom > /workspace/big")
        o.checkpoint(sid, "fits")
        o.sh(sid, "head -c 90000 /dev/urandom > /workspace/big")
        r = o.post(f"sandbox/{sid}/checkpoints", {"name": "over quota"})
        assert_error(r, 429, "storage_quota_exceeded")
        assert "checkpoints.org_quota_bytes" in r.json()["error"]["message"]
        # nothing half-made is visible, and the store holds only the first checkpoint
        assert [c["name"] for c in o.get("checkpoints").json()["checkpoints"]] == ["fits"]
        assert len(store_keys_for(small, o.org_id, "blobs")) == 1
        # the plan's storage limit counts checkpoints and artifacts (plans.free.storage)
        o.sh(sid, "head -c 150000 /dev/urandom > /workspace/art")
        r = o.post(f"sandbox/{sid}/artifacts/upload", {"path": "art"})
        assert r.status_code == 201, r.text
        r = o.post(f"sandbox/{sid}/artifacts/upload", {"path": "art"})
        assert_error(r, 429, "storage_limit_exceeded")
        assert len(store_keys_for(small, o.org_id, "artifacts")) == 1
    finally:
        o.sb.cleanup()
