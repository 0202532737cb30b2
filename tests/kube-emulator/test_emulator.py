"""Real clients against the Kubernetes API emulator: kubectl 1.32 and 1.33 (over HTTPS+token and
plain HTTP), python-kubernetes (list, watch, exec) and raw HTTP for Status bodies and faults."""

import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

KUBECTL = {v: "/usr/lib/google-cloud-sdk/bin/kubectl.%s" % v for v in ("1.32", "1.33")}
VARIANTS = [(v, t) for v in ("1.32", "1.33") for t in ("https", "http")]


def pod_manifest(name, command=None, labels=None):
    c = {"name": "main", "image": "busybox"}
    if command:
        c["command"] = command
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": "kt"}},
            "spec": {"containers": [c], "restartPolicy": "Never"}}


class Kubectl:
    def __init__(self, emu, version, transport, tmp):
        if not os.access(KUBECTL[version], os.X_OK):
            pytest.skip("%s not installed" % KUBECTL[version])
        self.bin = KUBECTL[version]
        self.kubeconfig = emu.kubeconfig_https if transport == "https" else emu.kubeconfig_http
        self.home = tempfile.mkdtemp(prefix="kh", dir=tmp)
        self.env = dict(os.environ, HOME=self.home, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="true")
        self.env.pop("KUBECONFIG", None)

    def run(self, *args, input=None, check=True, timeout=60, cwd=None):
        r = subprocess.run([self.bin, "--kubeconfig", self.kubeconfig, "--cache-dir",
                            os.path.join(self.home, "cache"), "--request-timeout", "30s"]
                           + list(args), input=input if input is not None else b"",
                           capture_output=True, env=self.env, timeout=timeout, cwd=cwd)
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s -> %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode, r.stdout[-2000:],
                                    r.stderr[-2000:]))
        return r

    def apply_file(self, tmp, obj):
        fd, path = tempfile.mkstemp(suffix=".yaml", dir=tmp)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        return self.run("create", "-f", path)


def rest(emu, method, path, body=None, transport="http", token=True, headers=None):
    """A raw request; returns (status, headers, parsed-or-raw body)."""
    url = (emu.https if transport == "https" else emu.http) + path
    h = {"Accept": "application/json"}
    if body is not None:
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = "Bearer " + emu.token
    h.update(headers or {})
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None
                                 else None, method=method, headers=h)
    ctx = ssl.create_default_context(cafile=emu.ca) if transport == "https" else None
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            raw, code, hdrs = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, code, hdrs = e.read(), e.code, e.headers
    try:
        return code, hdrs, json.loads(raw)
    except ValueError:
        return code, hdrs, raw


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def create_running_pod(emu, name, command=None):
    code, _, body = rest(emu, "POST", "/api/v1/namespaces/default/pods",
                         pod_manifest(name, command or ["sleep", "3600"]))
    assert code == 201, body
    wait_for(lambda: rest(emu, "GET", "/api/v1/namespaces/default/pods/" + name)[2]
             .get("status", {}).get("phase") == "Running", what="pod %s Running" % name)
    return body


# ---------------------------------------------------------------------------------------------
# kubectl

@pytest.fixture(scope="module")
def shared_pod(kube_emulator):
    create_running_pod(kube_emulator, "shared")
    yield "shared"
    rest(kube_emulator, "DELETE", "/api/v1/namespaces/default/pods/shared?gracePeriodSeconds=0")


@pytest.mark.parametrize("version,transport", VARIANTS)
def test_kubectl_lifecycle(kube_emulator, tmp_path, version, transport):
    """create -f, wait Ready, get pods (Table), logs, delete — with kubectl 1.32/1.33."""
    k = Kubectl(kube_emulator, version, transport, str(tmp_path))
    name = "life-%s-%s" % (version.replace(".", ""), transport)
    out = k.apply_file(str(tmp_path), pod_manifest(
        name, ["sh", "-c", "echo line-one; echo line-two >&2; sleep 3600"]))
    assert ("pod/%s created" % name).encode() in out.stdout
    k.run("wait", "--for=condition=Ready", "pod/" + name, "--timeout=30s")
    got = k.run("get", "pods").stdout.decode()
    header = got.splitlines()[0].split()
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], got
    row = [l.split() for l in got.splitlines() if l.split()[0] == name][0]
    assert row[1:4] == ["1/1", "Running", "0"], got
    wide = k.run("get", "pod", name, "-o", "wide").stdout.decode()
    assert "IP" in wide.splitlines()[0] and "127.0.0.1" in wide
    logs = wait_for(lambda: (lambda o: o if b"line-two" in o else None)(
        k.run("logs", name).stdout), what="logs")
    assert logs == b"line-one\nline-two\n"
    dup = k.apply_file.__func__  # noqa: F841 (readability)
    r = k.run("create", "-f", write_json(tmp_path, pod_manifest(name)), check=False)
    assert r.returncode != 0
    assert b'Error from server (AlreadyExists)' in r.stderr and \
        ('pods "%s" already exists' % name).encode() in r.stderr
    k.run("delete", "pod", name, "--timeout=30s")
    r = k.run("get", "pod", name, check=False)
    assert r.returncode == 1
    assert ('Error from server (NotFound): pods "%s" not found' % name).encode() in r.stderr


def write_json(tmp_path, obj):
    p = tmp_path / ("o%d.json" % time.monotonic_ns())
    p.write_text(json.dumps(obj))
    return str(p)


@pytest.mark.parametrize("version,transport", VARIANTS)
def test_kubectl_exec_stdin_integrity(kube_emulator, shared_pod, tmp_path, version, transport):
    k = Kubectl(kube_emulator, version, transport, str(tmp_path))
    sizes = [0, 1, 65535, 65536, 65537]
    if transport == "https" and version == "1.32":
        sizes.append(10 << 20)
    for n in sizes:
        data = os.urandom(n)
        r = k.run("exec", "-i", shared_pod, "--", "cat", input=data)
        assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest(), n
        assert len(r.stdout) == n


@pytest.mark.parametrize("version,transport", VARIANTS)
def test_kubectl_exec_exit_code_and_stderr(kube_emulator, shared_pod, tmp_path, version,
                                           transport):
    k = Kubectl(kube_emulator, version, transport, str(tmp_path))
    r = k.run("exec", shared_pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
              check=False)
    assert r.returncode == 3
    assert r.stdout == b"out\n"
    assert b"err\n" in r.stderr and b"command terminated with exit code 3" in r.stderr
    assert k.run("exec", shared_pod, "--", "true").returncode == 0


@pytest.mark.parametrize("version,transport", VARIANTS)
def test_kubectl_cp_both_ways(kube_emulator, shared_pod, tmp_path, version, transport):
    k = Kubectl(kube_emulator, version, transport, str(tmp_path))
    src = tmp_path / "tree"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "bin").write_bytes(os.urandom(200000))
    (src / "top.txt").write_bytes(b"top\n")
    (src / "empty").write_bytes(b"")
    (src / "a" / "nl\u00e9").write_bytes(b"\x00\xff" * 1000)
    dest = "cp-%s-%s" % (version.replace(".", ""), transport)
    k.run("cp", str(src), "%s:%s" % (shared_pod, dest), cwd=str(tmp_path))
    listing = k.run("exec", shared_pod, "--", "sh", "-c", "cd %s && find . -type f | sort" % dest
                    ).stdout.decode().split()
    assert listing == sorted(["./a/b/bin", "./top.txt", "./empty", "./a/nl\u00e9"])
    back = tmp_path / "back"
    k.run("cp", "%s:%s" % (shared_pod, dest), str(back), cwd=str(tmp_path))
    r = subprocess.run(["diff", "-r", str(src), str(back)], capture_output=True)
    assert r.returncode == 0, r.stdout


def test_kubectl_exec_missing_pod_is_a_status(kube_emulator, tmp_path):
    k = Kubectl(kube_emulator, "1.32", "https", str(tmp_path))
    r = k.run("exec", "nope", "--", "true", check=False)
    assert r.returncode == 1
    assert b'Error from server (NotFound): pods "nope" not found' in r.stderr


def test_kubectl_wrong_token_is_401(kube_emulator, tmp_path):
    k = Kubectl(kube_emulator, "1.32", "https", str(tmp_path))
    cfg = json.load(open(kube_emulator.kubeconfig_https))
    cfg["users"][0]["user"]["token"] = "wrong"
    p = tmp_path / "bad-kubeconfig"
    p.write_text(json.dumps(cfg))
    k.kubeconfig = str(p)
    r = k.run("get", "pods", check=False)
    assert r.returncode == 1
    assert b"Unauthorized" in r.stderr or b"provide credentials" in r.stderr


def test_pod_command_exit_moves_phase(kube_emulator, tmp_path):
    k = Kubectl(kube_emulator, "1.32", "http", str(tmp_path))
    k.apply_file(str(tmp_path), pod_manifest("done-ok", ["sh", "-c", "echo bye"]))
    k.apply_file(str(tmp_path), pod_manifest("done-bad", ["sh", "-c", "exit 4"]))
    k.run("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/done-ok", "--timeout=30s")
    k.run("wait", "--for=jsonpath={.status.phase}=Failed", "pod/done-bad", "--timeout=30s")
    assert k.run("logs", "done-ok").stdout == b"bye\n"
    pod = json.loads(k.run("get", "pod", "done-bad", "-o", "json").stdout)
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    r = k.run("exec", "done-ok", "--", "true", check=False)
    assert r.returncode != 0 and b"completed pod" in r.stderr
    k.run("delete", "pod", "done-ok", "done-bad", "--timeout=30s")
