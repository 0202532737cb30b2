"""tests/packaging/test_image.py — the container images, built for real and run the way the
Kubernetes manifests run them.

scripts/build-image.sh builds sandboxd:dev (the Containerfile's default stage) and
sandboxd-sandbox:dev (its `sandbox` stage) with Podman; it reuses images that carry the source
tree's hash, so only the first run after a change builds. Then, against the test Postgres of
scripts/pg.sh ($SANDBOXD_TEST_PG_DIR / $SANDBOXD_TEST_PG_PORT, as tests/api) and the Kubernetes API
emulator (tests/kube-emulator; needs build/runtime/rtctl):

  * the migration Job of manifests/job-sandboxd-migrate.yaml migrates an empty database;
  * the controller Deployment of manifests/deployment-sandboxd.yaml, with the ConfigMap of
    manifests/configmap-sandboxd.yaml and an in-cluster service account pointing at the
    emulator: probes, registration, sandboxes (pods in the emulator; exec, files, the
    python-basic template), non-root uid, no capabilities, read-only root file system, exit 0
    on SIGTERM;
  * a sandbox pod exactly as the controller created it, run with the sandbox image: uid, the
    default templates' interpreters and the tools the k8s runtime execs;
  * the runtime image holds no tool-chain and no -dev package, and every library its binaries
    need; its size is printed (and bounded).

`kubelet_args` turns a pod's container into `podman run` options (user, fsGroup, read-only root,
capabilities, no-new-privileges, env with secretKeyRef/fieldRef, emptyDir/configMap volumes,
command/args with $(VAR)). Where it differs from a kubelet: host network (Postgres and the
emulator listen on loopback) with SANDBOXD_LISTEN_ADDRESS/PORT moved to a free loopback port;
Secrets are the test's values; resources are not applied.

Needs root. Run: /usr/bin/python3 -m pytest tests/packaging/test_image.py (scripts/test.sh runs
it with the packaging suite; SBX_SKIP_IMAGE=1 skips it).
"""
import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import requests
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MANIFESTS = ROOT / "manifests"
CONTAINERS_CONF = ROOT / ".state" / "image" / "containers.conf"
RUNTIME_TAG = os.environ.get("SBX_IMAGE_TAG", "sandboxd:dev")
SANDBOX_TAG = os.environ.get("SBX_SANDBOX_IMAGE_TAG", "sandboxd-sandbox:dev")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# The runtime image is the slim base (~80 MB) plus a few libraries and the binaries; the
# builder's tool-chain alone would add several hundred MB.
MAX_RUNTIME_BYTES = 160 * 1000 * 1000
TOOLCHAIN = {"gcc", "gcc-12", "cpp", "cpp-12", "binutils", "make", "meson", "ninja-build",
             "pkgconf", "pkg-config", "libc6-dev", "build-essential", "python3"}

pytestmark = [
    pytest.mark.skipif(os.environ.get("SBX_SKIP_IMAGE") == "1", reason="SBX_SKIP_IMAGE=1"),
    pytest.mark.skipif(os.geteuid() != 0, reason="podman builds and runs as root here"),
    # the first test waits for the build (a cold one debootstraps the base images)
    pytest.mark.timeout(1800),
]

sys.path.insert(0, str(ROOT / "tests" / "kube-emulator"))
from fixture import kube_emulator  # noqa: E402,F401  (session fixture)


def _load_api_harness():
    """tests/api/conftest.py (Postgres, Api, free_port) under its own module name."""
    sys.path.insert(0, str(ROOT / "tests" / "api"))
    spec = importlib.util.spec_from_file_location("sbx_api_harness",
                                                  ROOT / "tests" / "api" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _load_api_harness()


def podman_env():
    env = dict(os.environ)
    if CONTAINERS_CONF.exists():
        env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def podman(*args, timeout=120, check=True):
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                       env=podman_env(), stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, f"podman {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r


def manifest(name):
    with open(MANIFESTS / name) as f:
        return yaml.safe_load(f)


def wait_until(pred, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---- pods as podman containers ------------------------------------------------------------------

VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubelet_args(pod, container, workdir, *, secrets=None, fields=None, config_maps=None,
                 service_account=None, env_override=None):
    """`podman run` options and argv (after the image) for one container of a pod spec.
    secrets {(name, key): value}, fields {fieldPath: value}, config_maps {name: {key: text}},
    service_account (dir with token/ca.crt/namespace, plus {"host", "port"}) or None."""
    secrets, fields, config_maps = secrets or {}, fields or {}, config_maps or {}
    opts = ["--network", "host"]
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    if uid is not None:
        opts += ["--user", f"{uid}:{gid if gid is not None else 0}"]
    fs_group = psc.get("fsGroup")
    if fs_group is not None:
        opts += ["--group-add", str(fs_group)]
    assert not csc.get("privileged"), "privileged containers are not run here"
    if csc.get("readOnlyRootFilesystem"):
        opts += ["--read-only", "--read-only-tmpfs=false"]
    if csc.get("allowPrivilegeEscalation") is False:
        opts += ["--security-opt", "no-new-privileges"]
    caps = csc.get("capabilities", {})
    opts += [a for c in caps.get("drop", []) for a in ("--cap-drop", c)]
    opts += [a for c in caps.get("add", []) for a in ("--cap-add", c)]
    # seccompProfile RuntimeDefault is Podman's default profile

    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), e["value"])
            continue
        src = e["valueFrom"]
        if "fieldRef" in src:
            env[e["name"]] = fields[src["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                env[e["name"]] = secrets[(ref["name"], ref["key"])]
            else:
                assert ref.get("optional"), f"no value for Secret {ref['name']}/{ref['key']}"
        else:
            raise AssertionError(f"env source {src} is not supported here")
    env.update(env_override or {})

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        v = volumes[m["name"]]
        host = Path(workdir) / f"vol-{m['name']}"
        host.mkdir(parents=True)
        ro = m.get("readOnly", False)
        if "emptyDir" in v:
            # a kubelet's emptyDir: 0777; with fsGroup owned by that group, setgid
            if fs_group is not None:
                os.chown(host, 0, fs_group)
            host.chmod(0o2777 if fs_group is not None else 0o777)
        elif "configMap" in v:
            for key, text in config_maps[v["configMap"]["name"]].items():
                (host / key).write_text(text)
                (host / key).chmod(0o644)
            host.chmod(0o755)
            ro = True
        else:
            raise AssertionError(f"volume {v} is not supported here")
        opts += ["-v", f"{host}:{m['mountPath']}:{'ro' if ro else 'rw'}"]
    automount = container.get("automountServiceAccountToken",
                              pod.get("automountServiceAccountToken", True))
    if automount and service_account:
        opts += ["-v", f"{service_account['dir']}:{SA_DIR}:ro"]
        env["KUBERNETES_SERVICE_HOST"] = service_account["host"]
        env["KUBERNETES_SERVICE_PORT"] = str(service_account["port"])
    for k, val in env.items():
        opts += ["-e", f"{k}={val}"]
    if container.get("workingDir"):
        opts += ["-w", container["workingDir"]]

    def expand(xs):
        return [VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), x) for x in xs]

    argv = expand(container.get("args", []))
    if container.get("command"):
        cmd = expand(container["command"])
        opts += ["--entrypoint", json.dumps(cmd[:1])]
        argv = cmd[1:] + argv
    return opts, argv


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image():
    """Builds (or reuses) both images; {tag: size in bytes}."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / "build-image.sh")], cwd=ROOT,
                       capture_output=True, text=True, timeout=1700, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"scripts/build-image.sh failed ({r.returncode}):\n" \
                              f"{r.stderr[-6000:]}\n{r.stdout}"
    sizes = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "bytes":
            sizes[parts[0]] = int(parts[1])
    assert set(sizes) == {RUNTIME_TAG, SANDBOX_TAG}, r.stdout
    return sizes


@pytest.fixture(scope="module")
def pg():
    p = H.Postgres(os.environ.get("SANDBOXD_TEST_PG_DIR") or H.default_pg_dir(),
                   os.environ.get("SANDBOXD_TEST_PG_PORT", "55433"))
    p.start()
    p.reset()          # an empty database: the migration Job builds the schema
    return p


SECRETS_KEY = base64.b64encode(os.urandom(32)).decode()


def secrets_for(pg):
    return {("sandboxd-database", "url"): pg.app_url,
            ("sandboxd-database", "migrate-url"): pg.owner_url,
            ("sandboxd-secrets-key", "key"): SECRETS_KEY}


def run_job(pg, workdir):
    """The migration Job's pod, run to completion; (exit code, output)."""
    job = manifest("job-sandboxd-migrate.yaml")
    pod = job["spec"]["template"]["spec"]
    opts, argv = kubelet_args(pod, pod["containers"][0], workdir, secrets=secrets_for(pg))
    r = podman("run", "--rm", *opts, RUNTIME_TAG, *argv, check=False, timeout=300)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="module")
def migrated(image, pg, tmp_path_factory):
    first = run_job(pg, tmp_path_factory.mktemp("job1"))
    second = run_job(pg, tmp_path_factory.mktemp("job2"))
    return first, second


class Controller:
    def __init__(self, name, port, workdir, config, emu):
        self.name, self.port, self.workdir, self.config, self.emu = (
            name, port, workdir, config, emu)
        self.base = f"http://127.0.0.1:{port}"
        self.api = H.Api(self.base)

    def logs(self):
        r = podman("logs", self.name, check=False)
        return r.stdout + r.stderr

    def pid(self):
        return int(podman("inspect", "-f", "{{.State.Pid}}", self.name).stdout.strip())


def emulator_call(emu, method, path, body=None):
    req = urllib.request.Request(emu.http + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def sandbox_pods(emu, ns):
    st, body = emulator_call(emu, "GET", f"/api/v1/namespaces/{ns}/pods")
    assert st == 200, body
    return body["items"]


@pytest.fixture(scope="module")
def controller(migrated, pg, kube_emulator, tmp_path_factory):
    emu = kube_emulator
    workdir = tmp_path_factory.mktemp("controller")
    cm = manifest("configmap-sandboxd.yaml")
    config = yaml.safe_load(cm["data"]["sandboxd.yaml"])
    sandbox_ns = config["k8s"]["namespace"]
    st, body = emulator_call(emu, "POST", "/api/v1/namespaces",
                             {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": sandbox_ns}})
    assert st in (201, 409), body

    dep = manifest("deployment-sandboxd.yaml")
    pod = dep["spec"]["template"]["spec"]
    sa = workdir / "serviceaccount"
    sa.mkdir()
    shutil.copy(emu.ca, sa / "ca.crt")
    (sa / "token").write_text(emu.token)
    (sa / "namespace").write_text(dep["metadata"]["namespace"])
    for f in sa.iterdir():
        f.chmod(0o644)
    sa.chmod(0o755)
    port = H.free_port()
    name = f"sbx-image-test-{uuid.uuid4().hex[:8]}"
    opts, argv = kubelet_args(
        pod, pod["containers"][0], workdir, secrets=secrets_for(pg),
        fields={"metadata.name": name, "metadata.namespace": dep["metadata"]["namespace"]},
        config_maps={cm["metadata"]["name"]: cm["data"]},
        service_account={"dir": sa, "host": "127.0.0.1", "port": emu.https.rsplit(":", 1)[1]},
        env_override={"SANDBOXD_LISTEN_ADDRESS": "127.0.0.1", "SANDBOXD_LISTEN_PORT": str(port)})
    podman("run", "-d", "--name", name, *opts, RUNTIME_TAG, *argv)
    c = Controller(name, port, workdir, config, emu)
    try:
        def ready():
            try:
                return c.api.get("/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False
        assert wait_until(ready, 60), f"/readyz never answered 200:\n{c.logs()[-4000:]}"
        yield c
    finally:
        for p in sandbox_pods(emu, sandbox_ns):
            emulator_call(emu, "DELETE", f"/api/v1/namespaces/{sandbox_ns}/pods/"
                          f"{p['metadata']['name']}?gracePeriodSeconds=0")
        podman("rm", "-f", "-t", "0", name, check=False)
        c.api.session.close()


def register(c):
    r = c.api.post("register", json={"email": H.unique_email("image"),
                                     "organization_name": H.unique_name("Image")})
    assert r.status_code in (200, 201), r.text
    return r.json()["api_key"]["key"]


def create_sandbox(c, key, **body):
    r = c.api.post("sandbox/create", key=key, json=body, timeout=120)
    assert r.status_code == 201, r.text
    sb = r.json()
    assert sb["status"] == "running", sb
    return sb["sandbox_id"]


def execute(c, key, sid, command):
    r = c.api.post(f"sandbox/{sid}/execute", key=key, json={"command": command}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


# ---- tests --------------------------------------------------------------------------------------

def test_image_sizes(image):
    for tag, size in image.items():
        print(f"{tag}: {size} bytes ({size / 1e6:.1f} MB)")
    assert image[RUNTIME_TAG] < MAX_RUNTIME_BYTES, image


def test_runtime_image_has_only_runtime_libraries(image):
    script = ("dpkg-query -W -f '${Package}\\n'; echo ---; "
              "for b in /usr/local/bin/sandboxd /usr/local/bin/dbmigrate "
              "/usr/local/libexec/sandboxd/sandboxd-init; do ldd $b; done; echo ---; "
              "for t in cc gcc ld as make meson ninja pkg-config python3; do "
              "command -v $t; done; true")
    r = podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", RUNTIME_TAG,
               "-c", script)
    pkgs, ldd, tools = r.stdout.split("---\n")
    pkgs = set(pkgs.split())
    assert "libwebsockets17" in pkgs and "libpq5" in pkgs, sorted(pkgs)
    assert not [p for p in pkgs if p.endswith("-dev")], sorted(pkgs)
    assert not pkgs & TOOLCHAIN, sorted(pkgs & TOOLCHAIN)
    assert "not found" not in ldd, ldd
    assert "libwebsockets.so" in ldd and "libpq.so" in ldd, ldd
    assert tools.strip() == "", f"tools in the runtime image: {tools}"


def test_runtime_image_config(image):
    info = json.loads(podman("image", "inspect", RUNTIME_TAG).stdout)[0]
    cfg = info["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["/usr/local/bin/sandboxd"]
    assert "8080/tcp" in cfg["ExposedPorts"]
    assert not cfg.get("Healthcheck")
    r = podman("run", "--rm", "--network", "none", "--read-only", RUNTIME_TAG, "--print-config")
    printed = yaml.safe_load(r.stdout)
    assert printed["database"]["migrations_dir"] == "/usr/share/sandboxd/sql"
    assert printed["state_dir"] == "/var/lib/sandboxd"


def test_migration_job(migrated):
    (rc1, out1), (rc2, out2) = migrated
    n = len(list((ROOT / "sql").glob("[0-9][0-9][0-9][0-9]_*.sql")))
    assert rc1 == 0 and f"dbmigrate: {n} migration(s) applied" in out1, out1
    assert rc2 == 0 and "dbmigrate: 0 migration(s) applied" in out2, out2


def test_controller_probes_and_startup(controller):
    for path in ("/healthz", "/readyz"):
        r = controller.api.get(path)
        assert r.status_code == 200, (path, r.text)
    logs = controller.logs()
    assert "sandbox runtime started: kubernetes" in logs, logs[-4000:]
    assert "database migrations applied: 0 new" in logs, logs[-4000:]
    assert wait_until(lambda: "leader: acquired" in controller.logs(), 30), logs[-4000:]
    assert "is unavailable" not in logs, "a default template is unavailable in the k8s image"


def test_controller_non_root_read_only(controller):
    status = Path(f"/proc/{controller.pid()}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["10001"] * 4, fields["Uid"]
    assert fields["Gid"].split() == ["10001"] * 4, fields["Gid"]
    assert int(fields["CapEff"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    r = podman("exec", controller.name, "/bin/sh", "-c",
               "touch /usr/local/bin/x || touch /etc/x || echo read-only", check=False)
    assert "Read-only file system" in r.stderr and "read-only" in r.stdout, r.stdout + r.stderr
    # the emptyDirs are where it can write
    podman("exec", controller.name, "/bin/sh", "-c",
           "touch /var/lib/sandboxd/probe /tmp/probe")
    for vol in ("vol-state", "vol-tmp"):
        assert (controller.workdir / vol / "probe").stat().st_uid == 10001


def test_controller_serves_sandboxes(controller):
    key = register(controller)
    sid = create_sandbox(controller, key)
    res = execute(controller, key, sid, "echo hello; id -u")
    assert res["exit_code"] == 0 and res["stdout"].startswith("hello\n"), res
    r = controller.api.post(f"sandbox/{sid}/files", key=key, timeout=120,
                            json={"files": [{"path": "a.txt",
                                             "content": base64.b64encode(b"hi").decode()}]})
    assert r.status_code == 200, r.text
    r = controller.api.get(f"sandbox/{sid}/files", key=key, params={"path": "a.txt"},
                           timeout=120)
    assert r.status_code == 200 and base64.b64decode(r.json()["content"]) == b"hi", r.text
    # the controller image has no python3; the template is the sandbox image's business
    py = create_sandbox(controller, key, template="python-basic")
    assert execute(controller, key, py, "python3 -c 'print(6*7)'")["stdout"] == "42\n"
    for s in (sid, py):
        assert controller.api.delete(f"sandbox/{s}", key=key, timeout=120).status_code == 200


def test_sandbox_pod_with_sandbox_image(controller, tmp_path):
    """The pod the controller created, run with the sandbox image as a kubelet would."""
    key = register(controller)
    sid = create_sandbox(controller, key)
    ns = controller.config["k8s"]["namespace"]
    pods = [p for p in sandbox_pods(controller.emu, ns)
            if p["metadata"]["labels"].get("sandboxd.io/sandbox-id") == sid]
    assert len(pods) == 1, pods
    spec = pods[0]["spec"]
    c = spec["containers"][0]
    assert c["image"] == controller.config["k8s"]["image"]
    opts, argv = kubelet_args(spec, c, tmp_path)
    name = f"sbx-image-pod-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, *opts, SANDBOX_TAG, *argv)
    try:
        script = ("set -e; id -u; python3 -c 'print(6*7)'; node -e 'console.log(6*7)'; "
                  "cd /workspace; printf data > f; sha256sum f; readlink -f f; "
                  "find . -mindepth 1 -maxdepth 1 -printf '%y %s %f\\n'; "
                  "printf 'a\\0b\\0' | head -z -n 1 | tr '\\0' '\\n'; "
                  "tar -cf - f | tar -tf -; touch /x 2>&1 || true")
        r = podman("exec", name, "/bin/sh", "-c", script)
        lines = r.stdout.splitlines()
        assert lines[0] == str(spec["securityContext"]["runAsUser"]), r.stdout
        assert lines[1:3] == ["42", "42"], r.stdout
        assert "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7  f" in lines
        assert "/workspace/f" in lines and "f 4 f" in lines and "a" in lines, r.stdout
        assert "Read-only file system" in r.stdout, r.stdout
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
    assert controller.api.delete(f"sandbox/{sid}", key=key, timeout=120).status_code == 200


def test_controller_exits_0_on_sigterm(controller):
    """Last: a kubelet stops the pod with SIGTERM; the daemon (PID 1 here) exits 0."""
    podman("stop", "-t", "30", controller.name, timeout=60)
    code = podman("inspect", "-f", "{{.State.ExitCode}}", controller.name).stdout.strip()
    assert code == "0", controller.logs()[-4000:]
