"""Black-box harness for the sandboxd API tests.

Runs on Debian's /usr/bin/python3 (python3-pytest, -requests, -websocket, -psycopg2).

Per session:
  * a private test Postgres (scripts/pg.sh) — $SANDBOXD_TEST_PG_DIR (default .state/pg-test)
    on $SANDBOXD_TEST_PG_PORT (default 55433); started if it is not running, reused if it is;
  * database `sandboxd` dropped and recreated (as the superuser, through the cluster's private
    socket) so that every session starts from an empty schema and the daemon's own migrations
    build it — set SANDBOXD_TEST_KEEP_DB=1 to skip the reset;
  * the daemon $SANDBOXD_BIN (default build/controller/sandboxd) on a free loopback port with a
    temporary SANDBOXD_STATE_DIR; stdout (JSON log lines) and stderr go to files; /readyz must
    answer 200 within 30 s; at the end it gets SIGTERM and must exit 0 within 10 s, and its
    stderr must hold no sanitizer report.

Runtime: $SANDBOXD_TEST_RUNTIME selects the sandbox runtime of every daemon the suite starts:
  * `local` (default): the local runtime (runtime/);
  * `k8s`: the Kubernetes runtime (k8s/k8s-runtime.c) through the Kubernetes API emulator
    (tests/kube-emulator), started once per session ($KUBE_EMULATOR_RTCTL, else
    build/runtime/rtctl). Each daemon gets a namespace of its own named after its state dir
    (sandboxes of a daemon restarted on the same state dir are adopted, other daemons' are
    left alone — as the local runtime's cgroup prefix does). Every test runs in both modes
    with the same expectations; where a test looks at the host (cgroups, processes,
    workspaces), sandboxhelpers.py looks at the emulator's local sandbox behind the pod.

Helpers for tests live in apihelpers.py (auth(), unique names, envelope checks).
"""
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apihelpers import auth, assert_error, unique_email, unique_name  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PG_SH = REPO / "scripts" / "pg.sh"
READY_TIMEOUT = float(os.environ.get("SANDBOXD_TEST_READY_TIMEOUT", "30"))
STOP_TIMEOUT = 10.0
RUNTIME = os.environ.get("SANDBOXD_TEST_RUNTIME", "local")
if RUNTIME not in ("local", "k8s"):
    raise RuntimeError(f"SANDBOXD_TEST_RUNTIME={RUNTIME!r}: expected local or k8s")
K8S_IMAGE = "sandbox:test"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


# ---------------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------------

class Postgres:
    """The private test cluster started through scripts/pg.sh."""

    def __init__(self, datadir, port):
        self.dir = Path(datadir).resolve()
        self.port = int(port)
        self.owner_url = None
        self.app_url = None

    def _pg_sh(self, *args):
        r = subprocess.run(["bash", str(PG_SH), *args], cwd=REPO, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/pg.sh {' '.join(args)} failed ({r.returncode}):\n"
                               f"{r.stdout}\n{r.stderr}")
        return r.stdout.strip()

    def start(self):
        env_fast = os.environ.get("SBX_PG_FAST", "1")
        args = ["start", str(self.dir), str(self.port)]
        if env_fast == "1":
            args.append("--fast")
        self._pg_sh(*args)
        self.owner_url = self._pg_sh("url", str(self.dir), str(self.port), "owner")
        self.app_url = self._pg_sh("url", str(self.dir), str(self.port), "app")

    def psql_super(self, sql, db="postgres"):
        """Runs SQL as the superuser through the cluster's private unix socket."""
        cmd = ["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
               "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"psql as superuser failed: {r.stderr.strip()}")
        return r.stdout

    def reset(self):
        """Drops database sandboxd and lets pg.sh recreate it (empty, owned by the owner)."""
        self.psql_super("DROP DATABASE IF EXISTS sandboxd WITH (FORCE)")
        self.start()

    def connect(self, role="owner"):
        import psycopg2
        conn = psycopg2.connect(self.owner_url if role == "owner" else self.app_url)
        conn.autocommit = True
        return conn

    def sql(self, query, params=None, role="owner"):
        """Runs one statement as the owner role (BYPASSRLS) and returns all rows (or [])."""
        conn = self.connect(role)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------
# The Kubernetes runtime (SANDBOXD_TEST_RUNTIME=k8s): one emulator per session
# ---------------------------------------------------------------------------------------------

_KUBE = None  # the session's tests/kube-emulator Emulator (k8s mode), set by kube_runtime


def _emulator_fixture_module():
    import importlib.util
    path = REPO / "tests" / "kube-emulator" / "fixture.py"
    spec = importlib.util.spec_from_file_location("sbx_kube_emulator_fixture", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def k8s_namespace(state_dir):
    """The namespace of a daemon's sandbox pods: named after its state dir, as the local
    runtime's cgroup prefix is (sandboxhelpers.cgroup_prefix)."""
    return "sbx-" + hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:10]


def kube_request(method, path, body=None):
    """One request to the emulator's plain-HTTP API; (status, parsed JSON body or {})."""
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(_KUBE.http + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else {}
        except ValueError:
            return e.code, {}


def k8s_daemon_env(state_dir):
    """The settings that put a daemon on the emulator, in a namespace of its own (created)."""
    if _KUBE is None:
        raise RuntimeError("SANDBOXD_TEST_RUNTIME=k8s but the kube emulator is not running")
    ns = k8s_namespace(state_dir)
    st, body = kube_request("POST", "/api/v1/namespaces",
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if st not in (201, 409):
        raise RuntimeError(f"namespace {ns}: {st} {body}")
    return {
        "SANDBOXD_RUNTIME_KIND": "k8s",
        "SANDBOXD_K8S_KUBECONFIG": _KUBE.kubeconfig_https,
        "SANDBOXD_K8S_NAMESPACE": ns,
        "SANDBOXD_K8S_IMAGE": K8S_IMAGE,
    }


def k8s_pods(state_dir):
    """The sandbox pods of a daemon's namespace (list of pod objects)."""
    ns = k8s_namespace(state_dir)
    st, body = kube_request("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=app%3Dsandboxd")
    return body.get("items", []) if st == 200 else []


_K8S_HOST = {}  # (namespace, sandbox id) → the emulator's sandbox name (rtctl), once seen


def k8s_host_sandboxes(state_dir):
    """{sandbox id: the emulator's local sandbox name} for every pod of a daemon's namespace
    seen so far (remembered after the pod is gone, so that leftovers can still be looked for)."""
    ns = k8s_namespace(state_dir)
    st, state = kube_request("GET", "/_emulator/state")
    pods = state.get("pods", {}) if st == 200 else {}
    for p in k8s_pods(state_dir):
        md = p["metadata"]
        sid = (md.get("annotations") or {}).get("sandboxd.io/sandbox-id")
        emu = pods.get(f"{ns}/{md['name']}")
        if sid and emu:
            _K8S_HOST[(ns, sid)] = emu["sandbox"]
    return {sid: name for (n, sid), name in _K8S_HOST.items() if n == ns}


def k8s_reap(state_dir):
    """Deletes every sandbox pod a daemon left (the emulator destroys their sandboxes)."""
    ns = k8s_namespace(state_dir)
    for p in k8s_pods(state_dir):
        kube_request("DELETE", f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}"
                               "?gracePeriodSeconds=0")
    deadline = time.monotonic() + 30
    while k8s_pods(state_dir) and time.monotonic() < deadline:
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # PR_SET_PDEATHSIG: the daemon must not outlive a killed pytest.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def daemon_binary():
    # Absolute: the daemon runs with its working directory in a temporary workdir.
    return Path(os.environ.get("SANDBOXD_BIN", REPO / "build" / "controller" / "sandboxd")).absolute()


class Daemon:
    """One sandboxd process. Log lines are read back from its stdout file."""

    def __init__(self, pg, workdir, name="sandboxd", extra_env=None):
        self.pg = pg
        self.workdir = Path(workdir)
        self.name = name
        self.extra_env = dict(extra_env or {})
        self.proc = None
        self.port = None
        self.base = None
        self.stdout_path = self.workdir / f"{name}.stdout.log"
        self.stderr_path = self.workdir / f"{name}.stderr.log"
        self.state_dir = self.workdir / f"{name}-state"
        self.exit_code = None
        self.shutdown_checked = False

    # -- life cycle --
    def start(self):
        binary = daemon_binary()
        if not binary.exists():
            raise RuntimeError(f"daemon binary {binary} does not exist (build it, or set "
                               f"SANDBOXD_BIN)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.port = free_port()
            self.base = f"http://127.0.0.1:{self.port}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOXD_")}
            env.update({
                "SANDBOXD_LISTEN_ADDRESS": "127.0.0.1",
                "SANDBOXD_LISTEN_PORT": str(self.port),
                "SANDBOXD_DATABASE_URL": self.pg.app_url,
                "SANDBOXD_DATABASE_MIGRATE_URL": self.pg.owner_url,
                "SANDBOXD_DATABASE_MIGRATIONS_DIR": str(REPO / "sql"),
                "SANDBOXD_STATE_DIR": str(self.state_dir),
                "SANDBOXD_LOG_LEVEL": os.environ.get("SANDBOXD_TEST_LOG_LEVEL", "debug"),
                "SANDBOXD_WORKERS": os.environ.get("SANDBOXD_TEST_WORKERS", "4"),
            })
            if RUNTIME == "k8s" and "SANDBOXD_RUNTIME_KIND" not in self.extra_env:
                env.update(k8s_daemon_env(self.state_dir))
            env.update(self.extra_env)
            with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen([str(binary)], cwd=str(self.workdir), env=env,
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             preexec_fn=_die_with_parent)
            try:
                self.wait_ready()
                return self
            except _PortInUse:
                self.proc.wait(timeout=10)
                continue
        raise RuntimeError("could not find a free port for the daemon")

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                tail = self.tail()
                if "address already in use" in tail.lower() or "eaddrinuse" in tail.lower():
                    raise _PortInUse()
                raise RuntimeError(f"{self.name} exited with {rc} before it was ready\n{tail}")
            try:
                r = requests.get(self.base + "/readyz", timeout=2)
                last = f"{r.status_code} {r.text[:200]}"
                if r.status_code == 200:
                    return
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.name} not ready within {READY_TIMEOUT:.0f}s "
                           f"(last /readyz: {last})\n{self.tail()}")

    def stop(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                self.exit_code = None
                self.proc = None
                return None
        self.exit_code = self.proc.returncode
        self.proc = None
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def shutdown_problems(self):
        """SIGTERM and check the exit (see shutdown_problems())."""
        return shutdown_problems(self)

    # -- output --
    def stdout_bytes(self):
        try:
            return self.stdout_path.read_bytes()
        except FileNotFoundError:
            return b""

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output(self):
        """Everything the daemon wrote (stdout + stderr) as text."""
        return self.stdout_bytes().decode("utf-8", "replace") + self.stderr_text()

    def mark(self):
        """A position in the log; pass it to lines(since=...) to see only later lines."""
        return len(self.stdout_bytes())

    def raw_lines(self, since=0):
        return self.stdout_bytes()[since:].decode("utf-8", "replace").splitlines()

    def lines(self, since=0):
        """The JSON log lines (dicts) written after `since`; non-JSON lines are skipped."""
        out = []
        for line in self.raw_lines(since):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def wait_for_line(self, pred, since=0, timeout=5.0):
        """Polls the log until a JSON line satisfies pred; returns it (or None on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            for obj in self.lines(since):
                if pred(obj):
                    return obj
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def sanitizer_reports(self):
        err = self.stderr_text()
        return [m for m in SANITIZER_MARKERS if m in err]

    def tail(self, n=40):
        out = self.raw_lines()[-n:]
        err = self.stderr_text().splitlines()[-n:]
        text = f"--- {self.name} stdout (last {len(out)} lines) ---\n" + "\n".join(out)
        if err:
            text += f"\n--- {self.name} stderr (last {len(err)} lines) ---\n" + "\n".join(err)
        return text


class _PortInUse(Exception):
    pass


def shutdown_problems(d):
    """Graceful shutdown: SIGTERM → exit 0 within 10 s, and no sanitizer report. Returns the
    list of problems (empty when clean); the daemon is stopped either way."""
    if d.shutdown_checked:
        return []
    d.shutdown_checked = True
    was_alive = d.alive()
    rc = d.stop()
    problems = []
    if not was_alive:
        problems.append(f"{d.name} had already exited ({d.exit_code}) before SIGTERM")
    elif rc is None:
        problems.append(f"{d.name} did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM")
    elif rc != 0:
        problems.append(f"{d.name} exited with {rc} after SIGTERM (expected 0)")
    reports = d.sanitizer_reports()
    if reports:
        problems.append(f"{d.name} stderr holds sanitizer reports: {reports}")
    return problems


def stop_and_check(d):
    problems = shutdown_problems(d)
    if problems:
        pytest.fail("; ".join(problems) + "\n" + d.tail(60), pytrace=False)


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

def default_pg_dir():
    """.state/pg-test, unless the checkout is not reachable by the `postgres` user that pg.sh
    runs the server as (see sbx_pg_dir in scripts/lib.sh)."""
    state = REPO / ".state"
    state.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        r = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(state)],
                           stdin=subprocess.DEVNULL, capture_output=True)
        if r.returncode != 0:
            import hashlib
            alt = Path("/var/tmp") / ("sandboxd-" + hashlib.sha256(str(REPO).encode())
                                      .hexdigest()[:12])
            alt.mkdir(exist_ok=True)
            alt.chmod(0o711)
            return str(alt / "pg-test")
    return str(state / "pg-test")


@pytest.fixture(scope="session")
def pg():
    datadir = os.environ.get("SANDBOXD_TEST_PG_DIR") or default_pg_dir()
    port = os.environ.get("SANDBOXD_TEST_PG_PORT", "55433")
    p = Postgres(datadir, port)
    p.start()
    if os.environ.get("SANDBOXD_TEST_KEEP_DB") != "1":
        p.reset()
    return p


@pytest.fixture(scope="session", autouse=True)
def kube_runtime(tmp_path_factory):
    """k8s mode: the session's Kubernetes API emulator (before any daemon, stopped after every
    daemon and its pods). None in local mode."""
    global _KUBE
    if RUNTIME != "k8s":
        yield None
        return
    fx = _emulator_fixture_module()
    why = fx.emulator_prereqs()
    if why:
        raise RuntimeError(f"SANDBOXD_TEST_RUNTIME=k8s: {why}")
    _KUBE = fx.Emulator(str(tmp_path_factory.mktemp("kube-emulator")), fx.rtctl_path())
    try:
        yield _KUBE
    finally:
        for d in _DAEMONS:
            d.kill()
        for d in _DAEMONS:
            k8s_reap(d.state_dir)
        _KUBE.stop()
        _KUBE = None


@pytest.fixture(scope="session")
def daemon_workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("sandboxd")


_DAEMONS = []


@pytest.fixture(scope="session")
def daemon(pg, daemon_workdir):
    d = Daemon(pg, daemon_workdir, "sandboxd")
    _DAEMONS.append(d)
    d.start()
    yield d
    stop_and_check(d)


@pytest.fixture(scope="session")
def start_daemon(pg, daemon_workdir):
    """Factory: start_daemon(name, {"SANDBOXD_...": "..."}) → a second, ready Daemon that is
    stopped (and checked for a clean exit) at the end of the session."""
    started = []

    def _start(name, extra_env):
        d = Daemon(pg, daemon_workdir, name, extra_env)
        _DAEMONS.append(d)
        started.append(d)
        d.start()
        return d

    yield _start
    errors = []
    for d in started:
        try:
            stop_and_check(d)
        except pytest.fail.Exception as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


class Api:
    """Base URL plus a requests.Session. Paths starting with /api/, /healthz etc. are used as
    they are; anything else is taken relative to /api/v1/."""

    def __init__(self, base):
        self.base = base
        self.session = requests.Session()

    def url(self, path):
        if path.startswith("http://") or path.startswith("https://"):
            return path
        if not path.startswith("/"):
            path = "/api/v1/" + path
        return self.base + path

    def request(self, method, path, key=None, org_id=None, headers=None, **kw):
        h = {}
        if key is not None:
            h.update(auth(key, org_id))
        if headers:
            h.update(headers)
        kw.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), headers=h, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture
def api(daemon):
    a = Api(daemon.base)
    yield a
    a.session.close()


class Account:
    """One registered organization: its org, owner user and first API key."""

    def __init__(self, body, email, org_name):
        self.body = body
        self.org = body["organization"]
        self.user = body["user"]
        self.key = body["api_key"]["key"]
        self.email = email
        self.org_name = org_name

    @property
    def org_id(self):
        return self.org["id"]

    @property
    def headers(self):
        return auth(self.key)

    def __iter__(self):  # org, user, key = register()
        return iter((self.org, self.user, self.key))


@pytest.fixture
def register(api):
    """register(email=None, organization_name=None, **extra) → Account (unpacks to
    (org, user, key)). Asserts success."""

    def _register(email=None, organization_name=None, **extra):
        email = email or unique_email()
        organization_name = organization_name or unique_name("Org")
        body = {"email": email, "organization_name": organization_name, **extra}
        r = api.post("register", json=body)
        assert r.status_code in (200, 201), f"register failed: {r.status_code} {r.text}"
        return Account(r.json(), email, organization_name)

    return _register


@pytest.fixture(name="auth")
def auth_fixture():
    return auth


@pytest.fixture
def org(register):
    """One freshly registered organization."""
    return register()


@pytest.fixture
def two_orgs(register):
    """Two independent organizations (A, B) for cross-org tests."""
    return register(organization_name=unique_name("Org A")), \
        register(organization_name=unique_name("Org B"))


@pytest.fixture
def daemon_log(daemon):
    """The session daemon; use .lines(since=mark), .output(), .mark(), .wait_for_line()."""
    return daemon


# ---------------------------------------------------------------------------------------------
# Reporting: on a failed test, attach the daemon's log lines written during that test.
# ---------------------------------------------------------------------------------------------

def pytest_collection_modifyitems(session, config, items):
    """Tests marked `last` (the graceful-shutdown check of the session daemon) run after every
    other test of the session, so that their result is reported on their own name rather than
    as a tear-down error of whichever test happened to run last."""
    last = [i for i in items if i.get_closest_marker("last")]
    if last:
        items[:] = [i for i in items if not i.get_closest_marker("last")] + last


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other test of the session")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marks = {id(d): d.mark() for d in _DAEMONS}
    item._sbx_marks = marks
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when == "call":
        marks = getattr(item, "_sbx_marks", {})
        for d in _DAEMONS:
            lines = d.raw_lines(marks.get(id(d), 0))[-40:]
            if lines:
                rep.sections.append((f"{d.name} log during the test", "\n".join(lines)))
            if d.proc is not None and d.proc.poll() is not None:
                rep.sections.append((f"{d.name} exited", d.tail()))


def reap_sandboxes(state_dir):
    """Kills every sandbox a daemon left running (sandboxes outlive their daemon by design) and
    removes its cgroups: the daemon's instance is runtime.cgroup_prefix + 8 hex of
    sha256(absolute state dir)."""
    h = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:8]
    roots = [p / f"sandboxd-{h}" for p in Path("/sys/fs/cgroup").iterdir()
             if (p / f"sandboxd-{h}").is_dir()]
    for _ in range(50):
        left = 0
        for root in roots:
            for d in [x for x in root.iterdir() if x.is_dir()]:
                try:
                    pids = [int(x) for x in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    pids = []
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    d.rmdir()
                except OSError:
                    left += 1
        if not left:
            break
        time.sleep(0.1)
    for root in roots:
        try:
            root.rmdir()
        except OSError:
            pass


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # Safety net after the fixtures' own (checked) shutdown: nothing outlives the session,
    # neither the daemons nor the sandboxes they leave running.
    for d in _DAEMONS:
        d.kill()
    if RUNTIME == "local":  # k8s mode: kube_runtime deleted the pods and stopped the emulator
        for d in _DAEMONS:
            reap_sandboxes(d.state_dir)
