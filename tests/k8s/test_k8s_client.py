"""The C Kubernetes client (k8s/) via k8sctl against the emulator: config errors, typed errors,
retries, watch resume / re-list, exec v5 and v4 (exit codes, stdin EOF, byte-exactness, a stream
cut before its status)."""
import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def k8sctl_path():
    return os.environ.get("K8SCTL") or os.path.join(ROOT, "build", "k8s", "k8sctl")


@pytest.fixture(scope="session", autouse=True)
def _need_k8sctl():
    if not os.access(k8sctl_path(), os.X_OK):
        pytest.skip("k8sctl not built (%s); set K8SCTL" % k8sctl_path())


def run(kc, *args, input=None, timeout=60, extra=()):
    cmd = [k8sctl_path()] + list(extra) + (["--kubeconfig", kc] if kc else []) + list(args)
    return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)


def pod_json(name, labels=None, command=None):
    c = {"name": "main", "image": "sandbox"}
    if command:
        c["command"] = command
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "labels": labels or {"suite": "k8s"}},
                       "spec": {"containers": [c]}}).encode()


def wait_running(kc, name, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = run(kc, "get", "pod", name)
        if r.returncode == 0 and json.loads(r.stdout).get("status", {}).get("phase") == "Running":
            return
        time.sleep(0.1)
    raise AssertionError("pod %s not Running" % name)


@pytest.fixture(scope="session")
def pod(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    r = run(kc, "create", "pod", "-", input=pod_json("k8sc-exec"))
    assert r.returncode == 0, r.stderr
    wait_running(kc, "k8sc-exec")
    return "k8sc-exec"


# ---- configuration ---------------------------------------------------------------------------

def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


KC_TMPL = """apiVersion: v1
kind: Config
current-context: %(ctx)s
clusters:
- name: c
  cluster:
    server: %(server)s
%(clextra)s
contexts:
- name: ctx
  context: {cluster: c, user: u, namespace: %(ns)s}
users:
- name: u
  user:
%(user)s
"""


def kc_text(server="https://127.0.0.1:1", ctx="ctx", clextra="", user="    token: t", ns="default"):
    return KC_TMPL % dict(server=server, ctx=ctx, clextra=clextra, user=user, ns=ns)


@pytest.mark.parametrize("text,needle", [
    (kc_text(ctx="other"), 'context "other" not found'),
    (kc_text(server=""), "server is missing"),
    (kc_text(server="ftp://x"), "is not an http(s) URL"),
    (kc_text(clextra="    certificate-authority-data: '!!notbase64!!'"),
     "certificate-authority-data is not valid base64"),
    (kc_text(clextra="    certificate-authority-data: aGVsbG8="),
     "certificate-authority-data does not decode to PEM"),
    (kc_text(clextra="    certificate-authority: /nonexistent/ca.crt"),
     "certificate-authority /nonexistent/ca.crt"),
    (kc_text(user="    tokenFile: /nonexistent/token"), "tokenFile /nonexistent/token"),
    (kc_text(user="    client-certificate: /etc/hostname"), "client-certificate without client-key"),
    (kc_text(clextra="    insecure-skip-tls-verify: maybe"), "insecure-skip-tls-verify"),
    ("- just\n- a list\n", "not a YAML mapping"),
    ("a: [unclosed\n", "YAML error"),
])
def test_config_errors(tmp_path, text, needle):
    r = run(write(tmp_path, "kc", text), "config")
    assert r.returncode == 3
    assert needle in r.stderr.decode(), r.stderr


def test_config_missing_file(tmp_path):
    r = run(str(tmp_path / "nope"), "config")
    assert r.returncode == 3 and b"No such file" in r.stderr


def test_config_kubeconfig_env_and_tokenfile(tmp_path, kube_emulator):
    tok = write(tmp_path, "tok", kube_emulator.token + "\n")
    with open(kube_emulator.kubeconfig_https) as f:
        kc = json.load(f)
    del kc["users"][0]["user"]["token"]
    kc["users"][0]["user"]["tokenFile"] = "tok"          # relative to the kubeconfig's dir
    path = write(tmp_path, "kc.json", json.dumps(kc))
    env = dict(os.environ, KUBECONFIG="/nonexistent:" + path)
    r = subprocess.run([k8sctl_path(), "list", "pods"], capture_output=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"rv=")


def test_incluster_config(tmp_path, kube_emulator):
    """KUBERNETES_SERVICE_HOST/PORT + a service-account dir are exercised by the unit test;
    here: not in a cluster → a clear error."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    r = subprocess.run([k8sctl_path(), "--incluster", "config"], capture_output=True, env=env,
                       timeout=30)
    assert r.returncode == 3 and b"KUBERNETES_SERVICE_HOST" in r.stderr


def test_wrong_token_is_unauthorized(tmp_path, kube_emulator):
    with open(kube_emulator.kubeconfig_https) as f:
        kc = json.load(f)
    kc["users"][0]["user"]["token"] = "wrong"
    r = run(write(tmp_path, "kc.json", json.dumps(kc)), "list", "pods")
    assert r.returncode == 1 and b"Unauthorized (401)" in r.stderr


def test_tls_verification_fails_without_ca(tmp_path, kube_emulator):
    with open(kube_emulator.kubeconfig_https) as f:
        kc = json.load(f)
    del kc["clusters"][0]["cluster"]["certificate-authority-data"]
    r = run(write(tmp_path, "kc.json", json.dumps(kc)), "--no-retries", "list", "pods")
    assert r.returncode == 1 and b"Transport" in r.stderr
    kc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    r = run(write(tmp_path, "kc2.json", json.dumps(kc)), "list", "pods")
    assert r.returncode == 0, r.stderr


# ---- REST ------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["https", "http"])
def test_crud_and_typed_errors(kube_emulator, which):
    kc = getattr(kube_emulator, "kubeconfig_" + which)
    name = "k8sc-crud-" + which
    r = run(kc, "create", "pod", "-", input=pod_json(name, {"suite": "k8s", "crud": which}))
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["metadata"]["name"] == name and obj["metadata"]["uid"]
    r = run(kc, "create", "pod", "-", input=pod_json(name))
    assert r.returncode == 1 and b"AlreadyExists (409)" in r.stderr
    r = run(kc, "list", "pods", "-l", "crud=" + which)
    assert r.stdout.decode().splitlines()[1:] == [name]
    r = run(kc, "patch", "pod", name, '{"metadata":{"labels":{"claimed":"yes"}}}')
    assert r.returncode == 0 and json.loads(r.stdout)["metadata"]["labels"]["claimed"] == "yes"
    r = run(kc, "delete", "pod", name, "--uid", "not-the-uid")
    assert r.returncode == 1 and b"Conflict (409)" in r.stderr
    r = run(kc, "delete", "pod", name, "--grace", "0")
    assert r.returncode == 0, r.stderr
    r = run(kc, "get", "pod", "k8sc-does-not-exist")
    assert r.returncode == 1 and b'NotFound (404): pods "k8sc-does-not-exist" not found' in r.stderr
    r = run(kc, "create", "pod", "-", input=b'{"apiVersion":"v1","kind":"Pod",'
            b'"metadata":{"name":"k8sc-invalid"},"spec":{}}')
    assert r.returncode == 1 and b"Invalid (422)" in r.stderr


def test_lease_update_conflict(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "k8sc-lease"}, "spec": {"holderIdentity": "a"}}
    r = run(kc, "create", "lease", "-", input=json.dumps(lease).encode())
    assert r.returncode == 0, r.stderr
    cur = json.loads(r.stdout)
    cur["spec"]["holderIdentity"] = "b"
    r = run(kc, "update", "lease", "k8sc-lease", "-", input=json.dumps(cur).encode())
    assert r.returncode == 0, r.stderr
    cur["spec"]["holderIdentity"] = "c"      # stale resourceVersion
    r = run(kc, "update", "lease", "k8sc-lease", "-", input=json.dumps(cur).encode())
    assert r.returncode == 1 and b"Conflict (409)" in r.stderr
    assert run(kc, "delete", "lease", "k8sc-lease").returncode == 0


def test_networkpolicy_create(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    np = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "k8sc-np"},
          "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress"]}}
    r = run(kc, "create", "networkpolicy", "-", input=json.dumps(np).encode())
    assert r.returncode == 0, r.stderr
    assert run(kc, "get", "networkpolicy", "k8sc-np").returncode == 0
    assert run(kc, "delete", "networkpolicy", "k8sc-np").returncode == 0


def test_429_retry_after_then_success(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    kube_emulator.fault({"errors": [{"path": "k8sc-missing-429", "method": "GET", "status": 429,
                                     "count": 2, "retry_after": 1}]})
    t0 = time.time()
    r = run(kc, "get", "pod", "k8sc-missing-429")
    # two 429s retried (honouring Retry-After: 1 s each), then the real answer: 404
    assert r.returncode == 1 and b"NotFound (404)" in r.stderr, r.stderr
    assert time.time() - t0 >= 1.9


def test_429_without_retries_is_typed(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    kube_emulator.fault({"errors": [{"path": "k8sc-x429", "method": "GET", "status": 429,
                                     "count": 1, "retry_after": 7}]})
    r = run(kc, "--no-retries", "get", "pod", "k8sc-x429")
    assert r.returncode == 1
    assert b"TooManyRequests (429)" in r.stderr and b"retry-after=7" in r.stderr


def test_500_retried_409_not(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    kube_emulator.fault({"errors": [{"path": "k8sc-x500", "method": "GET", "status": 500,
                                     "count": 2}]})
    r = run(kc, "get", "pod", "k8sc-x500")
    assert b"NotFound (404)" in r.stderr, r.stderr      # retried past the two 500s
    kube_emulator.fault({"errors": [{"path": "k8sc-x500", "method": "GET", "status": 500,
                                     "count": 1}]})
    r = run(kc, "--no-retries", "get", "pod", "k8sc-x500")
    assert b"ServerError (500)" in r.stderr
    kube_emulator.fault({"errors": [{"path": "pods$", "method": "POST", "status": 409,
                                     "count": 1}]})
    r = run(kc, "create", "pod", "-", input=pod_json("k8sc-x409"))
    assert r.returncode == 1 and b"Conflict (409)" in r.stderr
    kube_emulator.fault({"clear": True})


# ---- watch -----------------------------------------------------------------------------------

class Watcher:
    def __init__(self, kc, *args):
        self.p = subprocess.Popen([k8sctl_path(), "--kubeconfig", kc, "watch", "pods"] +
                                  list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    def wait_for(self, pred, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(pred(line) for line in list(self.lines)):
                return
            time.sleep(0.05)
        raise AssertionError("not seen; lines: %r" % self.lines)

    def finish(self, timeout=30):
        self.p.wait(timeout=timeout)
        self.t.join(timeout=5)
        return self.p.returncode


def requests_log(emu):
    with open(os.path.join(emu.workdir, "requests.log")) as f:
        return f.read().splitlines()


def test_watch_resync_events_and_resume_after_drop(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    w = Watcher(kc, "-l", "w=resume", "--count", "4", "--timeout", "40")
    w.wait_for(lambda l: l.startswith("RESYNC 0 "))
    assert run(kc, "create", "pod", "-", input=pod_json("k8sc-w1", {"w": "resume"})).returncode == 0
    w.wait_for(lambda l: l.startswith("ADDED k8sc-w1"))
    n_watch = sum("watch=true" in l for l in requests_log(kube_emulator))
    kube_emulator.fault({"drop_watches": True})
    time.sleep(0.3)
    assert run(kc, "create", "pod", "-", input=pod_json("k8sc-w2", {"w": "resume"})).returncode == 0
    w.wait_for(lambda l: l.startswith("ADDED k8sc-w2"))
    assert run(kc, "delete", "pod", "k8sc-w1", "--grace", "0").returncode == 0
    assert w.finish() == 0, w.p.stderr.read()
    lines = [l for l in w.lines if not l.startswith(("BOOKMARK", "  item"))]
    # no RESYNC after the drop: resumed from the last resourceVersion, nothing lost or repeated
    assert sum(l.startswith("RESYNC") for l in lines) == 1
    assert sum(l.startswith("ADDED k8sc-w1") for l in lines) == 1
    assert any(l.startswith("DELETED k8sc-w1") or l.startswith("MODIFIED k8sc-w1")
               for l in lines), lines
    log = requests_log(kube_emulator)
    assert sum("watch=true" in l for l in log) > n_watch
    assert any("allowWatchBookmarks=true" in l and "resourceVersion=" in l for l in log)
    run(kc, "delete", "pod", "k8sc-w2", "--grace", "0")


def test_watch_relists_after_410(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    assert run(kc, "create", "pod", "-", input=pod_json("k8sc-g1", {"w": "gone"})).returncode == 0
    r = run(kc, "list", "pods", "-l", "w=gone")
    rv = r.stdout.decode().splitlines()[0][3:]
    # history forgotten → resuming from rv gets 410 → re-list (RESYNC with the current state)
    assert run(kc, "create", "pod", "-", input=pod_json("k8sc-g2", {"w": "gone"})).returncode == 0
    kube_emulator.fault({"compact": True})
    w = Watcher(kc, "-l", "w=gone", "--rv", rv, "--count", "1", "--timeout", "30")
    assert w.finish() == 0, w.p.stderr.read()
    assert w.lines[0].startswith("RESYNC 2 "), w.lines
    assert sorted(l.split()[1] for l in w.lines if l.startswith("  item")) == ["k8sc-g1", "k8sc-g2"]
    for n in ("k8sc-g1", "k8sc-g2"):
        run(kc, "delete", "pod", n, "--grace", "0")


def test_watch_bookmarks(kube_emulator):
    kc = kube_emulator.kubeconfig_https
    w = Watcher(kc, "-l", "w=bm", "--count", "2", "--timeout", "8")
    w.wait_for(lambda l: l.startswith("BOOKMARK"), timeout=8)
    w.p.kill()
    w.finish()


def test_watch_forbidden_is_fatal(tmp_path, kube_emulator):
    with open(kube_emulator.kubeconfig_https) as f:
        kc = json.load(f)
    kc["users"][0]["user"]["token"] = "wrong"
    r = run(write(tmp_path, "kc.json", json.dumps(kc)), "watch", "pods", "--timeout", "10")
    assert r.returncode == 1 and b"ERROR Unauthorized" in r.stdout


# ---- exec ------------------------------------------------------------------------------------

def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.mark.parametrize("proto", ["v5", "v4"])
def test_exec_exit_codes_and_streams(kube_emulator, pod, proto):
    kc = kube_emulator.kubeconfig_https
    flags = ["--v4"] if proto == "v4" else []
    r = run(kc, "exec", pod, "--no-stdin", *flags, "--", "sh", "-c",
            "echo out; echo err >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == b"out\n"
    assert b"err\n" in r.stderr and ("# protocol %s" % proto).encode() in r.stderr
    r = run(kc, "exec", pod, "--no-stdin", *flags, "--", "true")
    assert r.returncode == 0
    r = run(kc, "exec", pod, "--no-stdin", *flags, "--", "sh", "-c", "exit 255")
    assert r.returncode == 255 and b"error" not in r.stderr


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 100 << 20])
def test_exec_stdin_byte_exact_v5(kube_emulator, pod, size):
    kc = kube_emulator.kubeconfig_https if size < (1 << 20) else kube_emulator.kubeconfig_http
    data = os.urandom(size)
    r = run(kc, "exec", pod, "--", "cat", input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == size and sha(r.stdout) == sha(data)


def test_exec_stdin_eof_v5(kube_emulator, pod):
    """wc -c only ends when stdin ends: the v5 close frame [255, 0] must arrive."""
    kc = kube_emulator.kubeconfig_https
    r = run(kc, "exec", pod, "--", "wc", "-c", input=b"x" * 12345, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == b"12345"


def test_exec_v4_no_stdin_eof(kube_emulator, pod):
    """v4 has no stdin close: a command that does not wait for EOF still works byte-exactly;
    one that waits for EOF hits the exec timeout (documented limitation) — never success."""
    kc = kube_emulator.kubeconfig_https
    data = os.urandom(5000)
    r = run(kc, "exec", pod, "--v4", "--", "head", "-c", "5000", input=data, timeout=30)
    assert r.returncode == 0 and r.stdout == data
    r = run(kc, "exec", pod, "--v4", "--timeout-ms", "1500", "--", "cat", input=b"abc",
            timeout=30)
    assert r.returncode == 255 and b"Timeout" in r.stderr


def test_exec_missing_pod_typed(kube_emulator):
    r = run(kube_emulator.kubeconfig_https, "exec", "k8sc-nope", "--", "true")
    assert r.returncode == 255 and b"NotFound (404)" in r.stderr


def test_exec_command_not_found(kube_emulator, pod):
    r = run(kube_emulator.kubeconfig_https, "exec", pod, "--no-stdin", "--",
            "/nonexistent/binary")
    assert r.returncode != 0


def test_exec_timeout_never_success(kube_emulator, pod):
    r = run(kube_emulator.kubeconfig_https, "exec", pod, "--no-stdin", "--timeout-ms", "800",
            "--", "sleep", "10", timeout=30)
    assert r.returncode == 255 and b"Timeout" in r.stderr


def test_exec_stream_cut_before_status_is_error(kube_emulator, pod):
    kc = kube_emulator.kubeconfig_https
    p = subprocess.Popen([k8sctl_path(), "--kubeconfig", kc, "exec", pod, "--no-stdin", "--",
                          "sh", "-c", "echo started; sleep 20"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    kube_emulator.fault({"restart": True, "down_ms": 300})
    out, err = p.communicate(timeout=30)
    assert p.returncode == 255, (out, err)
    assert b"without an exit status" in err or b"Transport" in err, err
    time.sleep(0.5)
    wait_running(kc, pod)
