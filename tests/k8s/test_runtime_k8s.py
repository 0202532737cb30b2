"""The sandbox API end to end on the Kubernetes runtime (k8s/k8s-runtime.c) through the
Kubernetes API emulator (tests/kube-emulator): a real sandboxd with runtime.kind k8s whose pods
run as local sandboxes, so exec and files really execute.

Needs root, the emulator's rtctl ($KUBE_EMULATOR_RTCTL, else build/runtime/rtctl), a daemon
($SANDBOXD_BIN, else build/controller/sandboxd) and the test Postgres of scripts/pg.sh
($SANDBOXD_TEST_PG_DIR / $SANDBOXD_TEST_PG_PORT, as the API harness):

    SANDBOXD_BIN=build/controller/sandboxd KUBE_EMULATOR_RTCTL=build/runtime/rtctl \
        /usr/bin/python3 -m pytest tests/k8s/test_runtime_k8s.py

The API harness (tests/api/conftest.py: Postgres, Daemon, Api) is loaded with importlib under
its own module name: tests/k8s has a conftest.py of its own.
"""
import base64
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
API_DIR = REPO / "tests" / "api"
NS = "sbx-e2e"


def _load_api_harness():
    sys.path.insert(0, str(API_DIR))  # its own `from apihelpers import ...`
    spec = importlib.util.spec_from_file_location("sbx_api_harness", API_DIR / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _load_api_harness()
from apihelpers import assert_error, unique_email, unique_name  # noqa: E402


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def unb64(s):
    return base64.b64decode(s, validate=True)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def wait_until(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---- the emulator's side ------------------------------------------------------------------------

def kget(emu, path):
    """GET on the emulator's plain-HTTP API; (status, json)."""
    try:
        with urllib.request.urlopen(emu.http + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def kpost(emu, path, body):
    req = urllib.request.Request(emu.http + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def pod_of(emu, sid, ns=NS):
    st, body = kget(emu, f"/api/v1/namespaces/{ns}/pods/sbx-{sid.lower()}")
    return body if st == 200 else None


def sandbox_pods(emu, ns=NS):
    st, body = kget(emu, f"/api/v1/namespaces/{ns}/pods?labelSelector=app%3Dsandboxd")
    assert st == 200, body
    return body["items"]


# ---- the daemon ---------------------------------------------------------------------------------

class E2E:
    def __init__(self, emu, pg, workdir, ns=NS):
        self.emu, self.pg, self.workdir, self.ns = emu, pg, workdir, ns
        self.env = {
            "SANDBOXD_RUNTIME_KIND": "k8s",
            "SANDBOXD_K8S_KUBECONFIG": emu.kubeconfig_https,
            "SANDBOXD_K8S_NAMESPACE": ns,
            "SANDBOXD_K8S_IMAGE": "sandbox:test",
            "SANDBOXD_RECONCILER_INTERVAL": "1s",
        }
        self.daemon = None
        self.api = None

    def start(self):
        self.daemon = H.Daemon(self.pg, self.workdir, "sandboxd-k8s", self.env)
        H._DAEMONS.append(self.daemon)
        self.daemon.start()
        self.api = H.Api(self.daemon.base)
        return self

    def stop(self):
        """SIGTERM; the problems list of the API harness (exit code, sanitizer reports)."""
        self.daemon.shutdown_checked = False
        problems = H.shutdown_problems(self.daemon)
        self.api.session.close()
        return problems


@contextlib.contextmanager
def running_e2e(kube_emulator, tmp_path_factory, ns=NS):
    """A k8s-runtime daemon on namespace ns (a fresh database); afterwards no pod of ns is left
    and the daemon exited cleanly."""
    if not H.daemon_binary().exists():
        pytest.skip(f"no daemon binary {H.daemon_binary()} (set SANDBOXD_BIN)")
    st, body = kpost(kube_emulator, "/api/v1/namespaces",
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    assert st in (201, 409), body
    pg = H.Postgres(os.environ.get("SANDBOXD_TEST_PG_DIR") or H.default_pg_dir(),
                    os.environ.get("SANDBOXD_TEST_PG_PORT", "55433"))
    pg.start()
    if os.environ.get("SANDBOXD_TEST_KEEP_DB") != "1":
        pg.reset()
    e = E2E(kube_emulator, pg, tmp_path_factory.mktemp("sandboxd-k8s"), ns)
    e.start()
    try:
        yield e
    finally:
        problems = e.stop() if e.daemon and e.daemon.proc else []
        # nothing left behind: every sandbox pod of ours is deleted (the emulator destroys
        # their local sandboxes), then the daemons' own reaping as in the API harness
        for p in sandbox_pods(kube_emulator, ns):
            name = p["metadata"]["name"]
            req = urllib.request.Request(
                f"{kube_emulator.http}/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0",
                method="DELETE")
            try:
                urllib.request.urlopen(req, timeout=10).read()
            except urllib.error.HTTPError:
                pass
        wait_until(lambda: not sandbox_pods(kube_emulator, ns), 30)
        for d in list(H._DAEMONS):
            d.kill()
            H.reap_sandboxes(d.state_dir)
        assert not problems, problems


@pytest.fixture(scope="module")
def e2e(kube_emulator, tmp_path_factory):
    with running_e2e(kube_emulator, tmp_path_factory) as e:
        yield e


class Client:
    def __init__(self, e2e):
        self.e2e = e2e
        r = e2e.api.post("register", json={"email": unique_email(),
                                            "organization_name": unique_name("K8s")})
        assert r.status_code in (200, 201), r.text
        self.key = r.json()["api_key"]["key"]
        self.created = []

    @property
    def api(self):
        return self.e2e.api

    def create(self, **body):
        r = self.api.post("sandbox/create", key=self.key, json=body, timeout=200)
        assert r.status_code == 201, f"create: {r.status_code} {r.text[:500]}"
        sb = r.json()
        self.created.append(sb["sandbox_id"])
        assert sb["status"] == "running", sb
        return sb["sandbox_id"]

    def get(self, sid):
        r = self.api.get(f"sandbox/{sid}", key=self.key)
        assert r.status_code == 200, r.text
        return r.json()

    def run(self, sid, command, **body):
        return self.api.post(f"sandbox/{sid}/execute", key=self.key,
                             json={"command": command, **body}, timeout=120)

    def ok(self, sid, command, **body):
        r = self.run(sid, command, **body)
        assert r.status_code == 200, f"{r.status_code} {r.text[:500]}"
        return r.json()

    def write(self, sid, files):
        return self.api.post(f"sandbox/{sid}/files", key=self.key, json={"files": files},
                             timeout=120)

    def read(self, sid, path):
        return self.api.get(f"sandbox/{sid}/files", key=self.key, params={"path": path},
                            timeout=120)

    def delete(self, sid):
        return self.api.delete(f"sandbox/{sid}", key=self.key, timeout=120)

    def cleanup(self):
        for sid in self.created:
            try:
                self.delete(sid)
            except Exception:  # noqa: BLE001 - best effort
                pass


@pytest.fixture
def client(e2e):
    c = Client(e2e)
    yield c
    c.cleanup()


@pytest.fixture
def sid(client):
    return client.create()


# ---- tests --------------------------------------------------------------------------------------

def test_create_running_pod_restricted(e2e, client):
    sid = client.create(env={"SBX_DEFAULT": "from-create"})
    assert client.get(sid)["status"] == "running"
    pod = pod_of(e2e.emu, sid)
    assert pod is not None, "no pod for the sandbox"
    md, spec = pod["metadata"], pod["spec"]
    assert md["labels"]["app"] == "sandboxd"
    assert md["labels"]["sandboxd.io/sandbox-id"] == sid
    assert md["labels"]["sandboxd.io/org-id"]
    assert md["annotations"]["sandboxd.io/sandbox-id"] == sid
    assert pod["status"]["phase"] == "Running"
    psc = spec["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    assert spec["activeDeadlineSeconds"] > 0
    c = spec["containers"][0]
    csc = c["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert csc["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/workspace", "/tmp"} <= mounts
    vols = {v["name"]: v for v in spec["volumes"]}
    assert all(v["emptyDir"].get("sizeLimit") for v in vols.values() if "emptyDir" in v)
    assert c["resources"]["limits"]["memory"] and c["resources"]["limits"]["cpu"]
    # the default env from create reaches every exec
    assert client.ok(sid, 'echo "$SBX_DEFAULT"')["stdout"] == "from-create\n"
    # NetworkPolicies exist
    st, body = kget(e2e.emu, f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies")
    assert st == 200
    assert {"sandboxd-deny-all", "sandboxd-public-egress"} <= \
        {p["metadata"]["name"] for p in body["items"]}


def test_execute(client, sid):
    b = client.ok(sid, "exit 3")
    assert b["exit_code"] == 3 and b["reason"] is None, b
    assert client.ok(sid, ["true"])["exit_code"] == 0
    assert client.ok(sid, ["false"])["exit_code"] == 1
    b = client.ok(sid, "echo out; echo err >&2")
    assert b["stdout"] == "out\n" and b["stderr"] == "err\n"
    data = "héllo\nworld\n" * 1000
    assert client.ok(sid, "cat", stdin=data)["stdout"] == data
    b = client.ok(sid, 'echo "$FOO|$BAR"', env={"FOO": "bar baz", "BAR": "é"})
    assert b["stdout"] == "bar baz|é\n"
    client.ok(sid, "mkdir -p /workspace/sub/dir")
    assert client.ok(sid, "pwd", working_dir="/workspace/sub/dir")["stdout"] == \
        "/workspace/sub/dir\n"
    assert client.ok(sid, "pwd")["stdout"] == "/workspace\n"
    assert_error(client.run(sid, "pwd", working_dir="/proc/self"), 400, "invalid_path")


def ws_exec(client, sid, command, chunks):
    """WebSocket exec: sends chunks as binary stdin frames, then stdin_eof; returns
    (stdout, stderr, control messages, close code)."""
    import websocket
    ws = websocket.create_connection(
        client.api.base.replace("http://", "ws://") + f"/api/v1/sandbox/{sid}/exec/ws",
        header=[f"Authorization: ApiKey {client.key}"], subprotocols=["sandboxd.exec.v1"],
        timeout=60)
    try:
        ws.send(json.dumps({"type": "start", "command": command}))
        for c in chunks:
            ws.send_binary(c)
        ws.send(json.dumps({"type": "stdin_eof"}))
        out, err, ctl = bytearray(), bytearray(), []
        while True:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_BINARY:
                (out if data[0] == 1 else err).extend(data[1:])
            elif op == websocket.ABNF.OPCODE_TEXT:
                ctl.append(json.loads(data))
            elif op == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return bytes(out), bytes(err), ctl, code
    finally:
        ws.close()


def test_execute_timeout(client, sid):
    t0 = time.monotonic()
    b = client.ok(sid, "echo before; sleep 30", timeout=2000)
    assert time.monotonic() - t0 < 15
    assert b["reason"] == "timeout" and b["stdout"] == "before\n", b


def test_stream_sse_and_websocket(client, sid):
    r = requests.post(f"{client.api.base}/api/v1/sandbox/{sid}/execute",
                      headers={"Authorization": f"ApiKey {client.key}"},
                      json={"command": "echo out; echo err >&2; exit 7", "stream": True},
                      stream=True, timeout=60)
    assert r.status_code == 200
    evs = [json.loads(ev[6:]) for ev in r.content.split(b"\n\n") if ev]
    assert [e["type"] for e in evs][-2:] == ["exit", "done"], evs
    assert evs[-2]["code"] == 7
    assert "".join(e["data"] for e in evs if e["type"] == "stdout") == "out\n"
    assert "".join(e["data"] for e in evs if e["type"] == "stderr") == "err\n"

    out, err, ctl, code = ws_exec(client, sid, ["cat"], [b"hello ", b"world\n"])
    assert out == b"hello world\n" and err == b""
    assert ctl[0]["type"] == "started" and ctl[-1]["type"] == "exit" and ctl[-1]["code"] == 0
    assert code == 1000


def test_files_round_trip(client, sid):
    binary = bytes(range(256)) * 64 + b"\x00\xff"
    files = {
        "a.txt": b"hello\n",
        "empty": b"",
        "bin/data.bin": binary,
        "deep/er/still/f.json": b'{"k": [1, 2, 3]}',
        "/workspace/abs/inside.txt": "ünïcödé ✓\n".encode(),
    }
    r = client.write(sid, [{"path": p, "content": b64(c)} for p, c in files.items()]
                     + [{"path": "run.sh", "content": b64("#!/bin/sh\necho ran-$1\n"),
                         "mode": 0o755},
                        {"path": "private.txt", "content": b64("p"), "mode": 0o600}])
    assert r.status_code == 200, r.text
    assert r.json()["written"] == len(files) + 2
    for p, c in files.items():
        r = client.read(sid, p)
        assert r.status_code == 200, (p, r.text[:300])
        assert unb64(r.json()["content"]) == c, p
        assert r.json()["size"] == len(c)
    assert client.read(sid, "run.sh").json()["mode"] == 0o755
    assert client.read(sid, "private.txt").json()["mode"] == 0o600
    assert client.ok(sid, ["/workspace/run.sh", "ok"])["stdout"] == "ran-ok\n"
    b = client.ok(sid, "sha256sum /workspace/bin/data.bin")
    assert b["stdout"].split()[0] == sha(binary)
    # a file written in the sandbox reads back byte-exact
    b = client.ok(sid, "head -c 70000 /dev/urandom > /workspace/r.bin && sha256sum r.bin")
    assert sha(unb64(client.read(sid, "r.bin").json()["content"])) == b["stdout"].split()[0]
    # listing
    r = client.read(sid, "deep/er")
    assert r.status_code == 200 and r.json()["type"] == "directory", r.text
    assert {e["name"]: e["type"] for e in r.json()["entries"]} == {"still": "directory"}
    assert_error(client.read(sid, "missing"), 404, "file_not_found")
    assert_error(client.read(sid, "../etc/passwd"), 400, "invalid_path")


def test_symlink_escape_refused(client, sid):
    b = client.ok(sid, "ln -s /etc/passwd /workspace/evil && ln -s / /workspace/root && "
                       "ln -s /etc /workspace/etcdir")
    assert b["exit_code"] == 0, b
    for p in ("evil", "root/etc/passwd"):
        r = client.read(sid, p)
        assert_error(r, 400, "invalid_path")
        assert "root:" not in r.text
    name = f"sbx-k8s-{uuid.uuid4().hex[:12]}"
    for p in (f"etcdir/{name}", "evil"):
        assert_error(client.write(sid, [{"path": p, "content": b64("pwned")}]), 400,
                     "invalid_path")
    assert client.ok(sid, "readlink /workspace/evil")["stdout"] == "/etc/passwd\n"


FAKE_TAR = r"""#!/usr/bin/python3
# a hostile `tar`: answers `tar -c` with an archive that tries to leave the target
import io, os, sys, tarfile
kind = open("/workspace/.evil-kind").read().strip()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
    if kind == "dotdot":
        i = tarfile.TarInfo("../../../../tmp/k8s-e2e-escape"); data = b"pwned"
        i.size = len(data); t.addfile(i, io.BytesIO(data))
    elif kind == "symlink":
        i = tarfile.TarInfo(sys.argv[-1]); i.type = tarfile.SYMTYPE; i.linkname = "/etc/passwd"
        t.addfile(i)
    elif kind == "two":
        for n in (sys.argv[-1], "second"):
            i = tarfile.TarInfo(n); i.size = 1; t.addfile(i, io.BytesIO(b"x"))
    elif kind == "truncated":
        i = tarfile.TarInfo(sys.argv[-1]); i.size = 100000
        t.addfile(i, io.BytesIO(b"y" * 100000))
data = buf.getvalue()
if kind == "truncated":
    data = data[:5000]
os.write(1, data)
"""


def test_hostile_tar_from_pod_refused(client):
    sid = client.create(env={"PATH": "/workspace/evilbin:/usr/bin:/bin"})
    # the fake tar goes last: uploads use the pod's tar too (their sha256 check would refuse)
    r = client.write(sid, [{"path": "f.txt", "content": b64("real content")},
                           {"path": "evilbin/tar", "content": b64(FAKE_TAR), "mode": 0o755}])
    assert r.status_code == 200, r.text
    assert client.ok(sid, "command -v tar")["stdout"] == "/workspace/evilbin/tar\n"
    for kind in ("dotdot", "symlink", "two", "truncated"):
        client.ok(sid, f"echo {kind} > /workspace/.evil-kind")
        r = client.read(sid, "f.txt")
        err = assert_error(r, 500, "internal_error")
        assert "real content" not in r.text and "root:" not in r.text, (kind, r.text)
        assert err["message"], kind
    assert not os.path.exists("/tmp/k8s-e2e-escape")
    # with the real tar back, the same file reads fine
    client.ok(sid, "rm -r /workspace/evilbin")
    assert unb64(client.read(sid, "f.txt").json()["content"]) == b"real content"


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537])
def test_stdin_integrity(client, sid, size):
    data = os.urandom(size)
    # binary stdin through the WebSocket exec, in 16 KiB frames
    chunks = [data[i:i + 16384] for i in range(0, size, 16384)]
    out, err, ctl, code = ws_exec(client, sid, ["sha256sum"], chunks)
    assert out.split()[0].decode() == sha(data), (size, out, err, ctl)
    assert ctl[-1]["type"] == "exit" and ctl[-1]["code"] == 0
    # text stdin of the buffered execute
    text = data.hex()[:size]
    assert client.ok(sid, "sha256sum", stdin=text)["stdout"].split()[0] == \
        sha(text.encode()), size
    # and as a file: write → pod → sha256 in the pod → read back
    r = client.write(sid, [{"path": f"in-{size}", "content": b64(data)}])
    assert r.status_code == 200, r.text
    assert client.ok(sid, f"sha256sum in-{size}")["stdout"].split()[0] == sha(data)
    assert unb64(client.read(sid, f"in-{size}").json()["content"]) == data


def test_stop_and_delete_remove_the_pod(e2e, client):
    a, b = client.create(), client.create()
    assert pod_of(e2e.emu, a) and pod_of(e2e.emu, b)
    r = client.api.post(f"sandbox/{a}/stop", key=client.key, timeout=120)
    assert r.status_code in (200, 202), r.text
    assert wait_until(lambda: client.get(a)["status"] == "terminated", 30)
    assert wait_until(lambda: pod_of(e2e.emu, a) is None, 30)
    r = client.delete(b)
    assert r.status_code in (200, 202, 204), r.text
    assert wait_until(lambda: pod_of(e2e.emu, b) is None, 30)
    r = client.api.get(f"sandbox/{b}", key=client.key)
    assert r.status_code == 404 or r.json()["status"] == "terminated", r.text


def test_pod_deleted_out_of_band(e2e, client):
    sid = client.create()
    e2e.emu.fault({"delete_pod": f"{NS}/sbx-{sid}"})
    sb = wait_until(lambda: (lambda s: s if s["status"] in ("terminated", "error") else None)(
        client.get(sid)), 15)
    assert sb, client.get(sid)
    assert sb["status"] in ("terminated", "error")
    assert sb.get("status_reason") == "deleted", sb


def test_restart_adopts_running_pods(e2e, client):
    sid = client.create()
    client.ok(sid, "echo kept > /workspace/kept.txt")
    assert not e2e.stop()
    assert pod_of(e2e.emu, sid), "the pod must outlive the daemon"
    e2e.start()
    assert client.get(sid)["status"] == "running"
    assert client.ok(sid, "cat /workspace/kept.txt")["stdout"] == "kept\n"
    time.sleep(2.5)  # two reconciler passes: nothing is marked lost, no orphan deleted
    assert client.get(sid)["status"] == "running"
    assert pod_of(e2e.emu, sid)
    assert len([p for p in sandbox_pods(e2e.emu)
                if p["metadata"]["labels"]["sandboxd.io/sandbox-id"] == sid]) == 1


def test_stdin_100mib_websocket(client, sid):
    """100 MiB of stdin through the WebSocket exec (sandbox API → k8s exec → pod), sha256
    computed in the pod compared with the sender's."""
    size = 100 << 20
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    chunks = []
    for i in range(100):
        c = bytes([i]) + block[1:]
        h.update(c)
        chunks.append(c)
    frames = (c[j:j + 65536] for c in chunks for j in range(0, len(c), 65536))
    out, err, ctl, code = ws_exec(client, sid, ["sha256sum"], frames)
    assert out.split()[0].decode() == h.hexdigest(), (size, out, err, ctl)
    assert ctl[-1]["type"] == "exit" and ctl[-1]["code"] == 0, (out, err, ctl)
