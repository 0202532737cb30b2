"""Files in and out of a sandbox's /workspace: round trips, listings, modes, and every way a
path could leave /workspace (lexically, or through symlinks planted by code in the sandbox)."""
import os
import uuid

import pytest
import requests

from apihelpers import assert_error
from sandboxhelpers import b64, unb64, sha256
from sandboxhelpers import sandboxes, sandbox, traversable_state  # noqa: F401 (fixtures)


def _read_ok(sandboxes, sid, path):
    r = sandboxes.read_file(sid, path)
    assert r.status_code == 200, f"read {path!r}: {r.status_code} {r.text[:300]}"
    body = r.json()
    return body


def test_write_many_and_read_back(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    binary = bytes(range(256)) * 4 + b"\x00\xff\x00"
    files = {
        "a.txt": b"hello\n",
        "empty": b"",
        "bin/data.bin": binary,
        "deep/er/still/deeper/f.json": b'{"k": [1, 2, 3]}',
        "/workspace/abs/inside.txt": "ünïcödé ✓\n".encode(),
        "./dot/./x": b"x",
        "utf8-näme.txt": b"name",
    }
    for i in range(40):
        files[f"many/f{i:03d}"] = os.urandom(i * 7)
    r = sandboxes.write_files(sid, [{"path": p, "content": b64(c)} for p, c in files.items()])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body.get("success") is True, body
    assert body.get("written") == len(files), body
    sizes = {f["path"]: f["size"] for f in body["files"]}
    for p, c in files.items():
        assert sizes[p] == len(c), (p, sizes[p], len(c))
    for p, c in files.items():
        got = _read_ok(sandboxes, sid, p)
        assert unb64(got["content"]) == c, p
        assert got["size"] == len(c), (p, got)
    # the sandbox sees the same bytes, owned by its own user
    res = sandboxes.sh(sid, "sha256sum /workspace/bin/data.bin; stat -c '%u %a' "
                            "/workspace/a.txt /workspace/deep/er/still/deeper/f.json")
    assert res["exit_code"] == 0, res
    lines = res["stdout"].splitlines()
    assert lines[0].split()[0] == sha256(binary), res
    assert lines[1] == "1000 644" and lines[2] == "1000 644", res


def test_mode_honoured(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    script = b"#!/bin/sh\necho ran-$1\n"
    r = sandboxes.write_files(sid, [
        {"path": "run.sh", "content": b64(script), "mode": 0o755},
        {"path": "private.txt", "content": b64("p"), "mode": 0o600},
    ])
    assert r.status_code == 200, r.text
    assert _read_ok(sandboxes, sid, "run.sh")["mode"] == 0o755
    assert _read_ok(sandboxes, sid, "private.txt")["mode"] == 0o600
    res = sandboxes.execute(sid, ["/workspace/run.sh", "ok"])
    assert res["exit_code"] == 0 and res["stdout"] == "ran-ok\n", res
    res = sandboxes.sh(sid, "stat -c %a /workspace/run.sh /workspace/private.txt")
    assert res["stdout"].split() == ["755", "600"], res


def test_overwrite_replaces_content(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    assert sandboxes.write_files(sid, [{"path": "f", "content": b64(b"x" * 1000)}]).ok
    assert sandboxes.write_files(sid, [{"path": "f", "content": b64(b"short")}]).ok
    assert unb64(_read_ok(sandboxes, sid, "f")["content"]) == b"short"


def test_file_written_in_sandbox_is_readable(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    res = sandboxes.sh(sid, "mkdir -p out && head -c 3000 /dev/urandom > out/r.bin && "
                            "sha256sum out/r.bin")
    assert res["exit_code"] == 0, res
    digest = res["stdout"].split()[0]
    got = _read_ok(sandboxes, sid, "out/r.bin")
    assert sha256(unb64(got["content"])) == digest


def test_large_file_round_trip(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    data = os.urandom(8 * 1024 * 1024)
    r = sandboxes.write_files(sid, [{"path": "big/blob.bin", "content": b64(data)}],
                              timeout=120)
    assert r.status_code == 200, r.text[:300]
    res = sandboxes.sh(sid, "sha256sum /workspace/big/blob.bin")
    assert res["stdout"].split()[0] == sha256(data), res
    r = sandboxes.read_file(sid, "big/blob.bin", timeout=120)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["size"] == len(data)
    assert sha256(unb64(body["content"])) == sha256(data)


def test_directory_listing(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    r = sandboxes.write_files(sid, [
        {"path": "dir/one.txt", "content": b64("1")},
        {"path": "dir/two.bin", "content": b64(b"22")},
        {"path": "dir/sub/three", "content": b64("333")},
    ])
    assert r.status_code == 200, r.text
    sandboxes.sh(sid, "ln -s one.txt /workspace/dir/link")
    body = _read_ok(sandboxes, sid, "dir")
    assert body["type"] == "directory", body
    entries = {e["name"]: e for e in body["entries"]}
    assert set(entries) == {"one.txt", "two.bin", "sub", "link"}, body
    assert entries["one.txt"]["type"] == "file" and entries["one.txt"]["size"] == 1
    assert entries["two.bin"]["size"] == 2
    assert entries["sub"]["type"] == "directory"
    assert entries["link"]["type"] == "symlink"
    # the workspace root
    for root in ("/workspace", ".", "/workspace/"):
        names = {e["name"] for e in _read_ok(sandboxes, sid, root)["entries"]}
        assert "dir" in names, (root, names)


def test_missing_file_404(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    assert_error(sandboxes.read_file(sid, "nope.txt"), 404)
    assert_error(sandboxes.read_file(sid, "no/such/dir/file"), 404)


@pytest.mark.parametrize("path", [
    "../x", "../../etc/passwd", "/etc/passwd", "/workspace/../etc/passwd", "a/../../x",
    "/", "/workspacex/f", "/proc/self/environ", "/tmp/x", "x" * 5000,
    "/workspace/" + "d/" * 2500,
], ids=lambda p: p if len(p) < 40 else f"{p[:12]}...({len(p)} bytes)")
def test_traversal_refused(sandboxes, sandbox, path):
    sid = sandbox["sandbox_id"]
    assert_error(sandboxes.read_file(sid, path), 400, "invalid_path")
    assert_error(sandboxes.write_files(sid, [{"path": path, "content": b64("pwn")}]), 400)
    res = sandboxes.sh(sid, "ls -A /workspace")
    assert res["stdout"] == "", res


def test_nul_byte_refused(sandboxes, sandbox, api):
    sid = sandbox["sandbox_id"]
    sandboxes.write_files(sid, [{"path": "a", "content": b64("A")}])
    # %00 in the query string must never be truncated to "a". libwebsockets 4.1.6 refuses a
    # %00 in the query itself, closing the connection before any handler runs (documented in
    # docs/api/openapi.yaml); anything that does get an answer must be 400 invalid_path.
    for q in ("a%00/../../etc/passwd", "a%00"):
        try:
            r = api.get(f"sandbox/{sid}/files?path={q}", key=sandboxes.key)
        except requests.ConnectionError:
            continue
        assert_error(r, 400, "invalid_path")
    # ... and the daemon is unharmed by it
    assert api.get("/healthz").status_code == 200
    # in JSON (\u0000) for a write
    raw = ('{"files": [{"path": "b\\u0000c", "content": "%s"}]}' % b64("x")).encode()
    r = api.post(f"sandbox/{sid}/files", key=sandboxes.key, data=raw,
                 headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    assert_error(sandboxes.read_file(sid, "b"), 404)


def test_symlink_out_refused_on_read(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    res = sandboxes.sh(sid, "ln -s /etc/passwd /workspace/evil && ln -s / /workspace/root && "
                            "ln -s ../../../../etc/hostname /workspace/up && "
                            "ln -s /proc/1/root /workspace/magic")
    assert res["exit_code"] == 0, res
    for p in ("evil", "root/etc/passwd", "up", "magic/etc/passwd", "/workspace/evil"):
        r = sandboxes.read_file(sid, p)
        assert_error(r, 400, "invalid_path")
        assert "root:" not in r.text


def test_symlink_inside_workspace_followed(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    sandboxes.write_files(sid, [{"path": "real/f.txt", "content": b64("inside")}])
    res = sandboxes.sh(sid, "ln -s real/f.txt /workspace/rel && ln -s real /workspace/rdir")
    assert res["exit_code"] == 0, res
    assert unb64(_read_ok(sandboxes, sid, "rel")["content"]) == b"inside"
    assert unb64(_read_ok(sandboxes, sid, "rdir/f.txt")["content"]) == b"inside"


def test_write_through_symlinked_dir_refused(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    name = f"sbx-test-{uuid.uuid4().hex[:12]}"
    res = sandboxes.sh(sid, "ln -s /etc /workspace/etcdir && ln -s /tmp /workspace/tmpdir && "
                            "ln -s /etc/hostname /workspace/hostlink")
    assert res["exit_code"] == 0, res
    for p in (f"etcdir/{name}", f"etcdir/sub/{name}", f"tmpdir/{name}", "hostlink"):
        r = sandboxes.write_files(sid, [{"path": p, "content": b64("pwned")}])
        assert_error(r, 400, "invalid_path")
    assert not os.path.exists(f"/etc/{name}")
    assert not os.path.exists(f"/etc/sub/{name}")
    with open("/etc/hostname", "rb") as f:
        assert b"pwned" not in f.read()
    res = sandboxes.sh(sid, f"ls /tmp/{name} /etc/{name} 2>&1; cat /etc/hostname")
    assert "pwned" not in res["stdout"], res
    # the links themselves are unchanged
    res = sandboxes.sh(sid, "readlink /workspace/etcdir /workspace/hostlink")
    assert res["stdout"].split() == ["/etc", "/etc/hostname"], res


def test_write_fifo_or_device_refused(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    res = sandboxes.sh(sid, "mkfifo /workspace/fifo")
    assert res["exit_code"] == 0, res
    r = sandboxes.read_file(sid, "fifo", timeout=20)
    assert 400 <= r.status_code < 500, r.text
    r = sandboxes.write_files(sid, [{"path": "fifo", "content": b64("x")}], timeout=20)
    assert 400 <= r.status_code < 500, r.text


def test_invalid_base64_422(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    # (unpadded base64 such as "abc" is accepted by design)
    for bad in ("!!!!", "a", "YQ=", "YQ==YQ==", "Y Q==", "YR==", "é", "YQ==\n"):
        r = sandboxes.write_files(sid, [{"path": "bad.txt", "content": bad}])
        assert_error(r, 422, "validation_error")
    assert sandboxes.read_file(sid, "bad.txt").status_code == 404


def test_invalid_base64_writes_nothing(sandboxes, sandbox):
    """A request is validated as a whole before anything is written (api-files.c says so):
    a bad files[1] must not leave files[0] behind."""
    sid = sandbox["sandbox_id"]
    r = sandboxes.write_files(sid, [{"path": "first.txt", "content": "YQ=="},
                                    {"path": "second.txt", "content": "!!!!"}])
    assert_error(r, 422, "validation_error")
    assert sandboxes.read_file(sid, "second.txt").status_code == 404
    r = sandboxes.read_file(sid, "first.txt")
    assert r.status_code == 404, f"files[0] was written by a refused request: {r.text[:200]}"


@pytest.mark.parametrize("body", [
    {}, {"files": []}, {"files": {}}, {"files": "x"}, {"files": [1]},
    {"files": [{"content": "YQ=="}]}, {"files": [{"path": "a"}]},
    {"files": [{"path": 1, "content": "YQ=="}]}, {"files": [{"path": "a", "content": 1}]},
    {"files": [{"path": "a", "content": "YQ==", "mode": "755"}]},
    {"files": [{"path": "a", "content": "YQ==", "mode": -1}]},
    {"files": [{"path": "a", "content": "YQ==", "mode": 0o10000}]},
], ids=lambda b: repr(b))
def test_write_validation(sandboxes, sandbox, body):
    r = sandboxes.api.post(f"sandbox/{sandbox['sandbox_id']}/files", key=sandboxes.key,
                           json=body)
    assert_error(r, 422, "validation_error")


def test_malformed_json_400(sandboxes, sandbox):
    r = sandboxes.api.post(f"sandbox/{sandbox['sandbox_id']}/files", key=sandboxes.key,
                           data=b'{"files": [', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


def test_too_many_files_422(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    files = [{"path": f"n/{i}", "content": ""} for i in range(1001)]
    assert_error(sandboxes.write_files(sid, files), 422, "validation_error")
    assert sandboxes.read_file(sid, "n").status_code == 404
    # exactly the limit is fine
    r = sandboxes.write_files(sid, files[:1000], timeout=120)
    assert r.status_code == 200, r.text[:300]
    assert len(_read_ok(sandboxes, sid, "n")["entries"]) == 1000


def test_read_missing_path_param(sandboxes, sandbox):
    r = sandboxes.api.get(f"sandbox/{sandbox['sandbox_id']}/files", key=sandboxes.key)
    assert_error(r, 400)


def test_files_on_stopped_sandbox_409(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    sandboxes.write_files(sid, [{"path": "kept", "content": b64("k")}])
    assert sandboxes.stop(sid).status_code == 200
    assert_error(sandboxes.read_file(sid, "kept"), 409)
    assert_error(sandboxes.write_files(sid, [{"path": "x", "content": b64("x")}]), 409)


def test_file_ops_audited(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    sandboxes.write_files(sid, [{"path": "a", "content": b64("a")}])
    sandboxes.read_file(sid, "a")
    r = sandboxes.api.get("audit", key=sandboxes.key, params={"sandbox_id": sid, "limit": 100})
    acts = [e["action"] for e in r.json()["events"]]
    assert "file.write" in acts and "file.read" in acts, acts
