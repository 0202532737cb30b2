"""Helpers and fixtures shared by the sandbox API tests (test_sandboxes, test_files,
test_isolation, test_restart, test_usage, test_sandbox_concurrency).

Import the fixtures into a test module with
    from sandboxhelpers import sandboxes, ...  # noqa: F401
(pytest finds fixtures in a test module's namespace).

Everything here is black-box: HTTP against the daemon, plus, where a test needs the host's view
(cgroups, processes), /proc and /sys read from the test process (root).
"""
import base64
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from apihelpers import auth

UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
SANDBOX_STATUSES = {"creating", "running", "terminating", "terminated", "error"}
CGROUP_CONTROLLERS = ("pids", "memory", "cpu", "cpuacct", "freezer", "unified")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(s):
    return base64.b64decode(s, validate=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def wait_until(pred, timeout, interval=0.2, what="condition"):
    """Polls pred() until it returns a truthy value; returns it, or None after `timeout` s.
    (Timeouts here are generous upper bounds for polling, never speed assertions.)"""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Sandboxes
# ---------------------------------------------------------------------------------------------

class SandboxClient:
    """Sandbox calls for one API key against one Api (base URL + session). Remembers every
    sandbox it created so that the fixture can delete them at the end of the test."""

    def __init__(self, api, key, org_id=None, state_dir=None):
        self.api = api
        self.key = key
        self.org_id = org_id
        self.state_dir = state_dir
        self.created = []

    # raw calls (return the requests.Response)
    def create_raw(self, body=None, **kw):
        if body is None:
            body = {}
        if isinstance(body, (bytes, str)):
            r = self.api.post("sandbox/create", key=self.key, data=body,
                              headers={"Content-Type": "application/json"}, **kw)
        else:
            r = self.api.post("sandbox/create", key=self.key, json=body, **kw)
        if r.status_code in (200, 201):
            try:
                self.created.append(r.json()["sandbox_id"])
            except (ValueError, KeyError, TypeError):
                pass
        return r

    def create(self, body=None, **kw):
        r = self.create_raw(body, **kw)
        assert r.status_code == 201, f"create failed: {r.status_code} {r.text[:500]}"
        sb = r.json()
        assert sb["status"] == "running", sb
        return sb

    def get(self, sid, **kw):
        return self.api.get(f"sandbox/{sid}", key=self.key, **kw)

    def status(self, sid, **kw):
        return self.api.get(f"sandbox/{sid}/status", key=self.key, **kw)

    def list(self, params=None, **kw):
        return self.api.get("sandboxes", key=self.key, params=params, **kw)

    def stop(self, sid, **kw):
        return self.api.post(f"sandbox/{sid}/stop", key=self.key, **kw)

    def delete(self, sid, **kw):
        return self.api.delete(f"sandbox/{sid}", key=self.key, **kw)

    def write_files(self, sid, files, **kw):
        return self.api.post(f"sandbox/{sid}/files", key=self.key, json={"files": files}, **kw)

    def read_file(self, sid, path, **kw):
        return self.api.get(f"sandbox/{sid}/files", key=self.key, params={"path": path}, **kw)

    def execute_raw(self, sid, command, **body):
        kw = {}
        if "http_timeout" in body:
            kw["timeout"] = body.pop("http_timeout")
        payload = {"command": command, **body}
        return self.api.post(f"sandbox/{sid}/execute", key=self.key, json=payload, **kw)

    def execute(self, sid, command, **body):
        """Runs a command and returns the result object; fails the test if the call itself
        was refused (any status other than 200)."""
        r = self.execute_raw(sid, command, **body)
        require_execute_endpoint(r)
        assert r.status_code == 200, f"execute failed: {r.status_code} {r.text[:500]}"
        res = r.json()
        for f in ("stdout", "stderr", "exit_code"):
            assert f in res, f"execute result lacks {f!r}: {res}"
        return res

    def sh(self, sid, script, **body):
        """sh -c script; returns the result object."""
        return self.execute(sid, ["sh", "-c", script], **body)

    def cleanup(self):
        for sid in self.created:
            try:
                self.delete(sid, timeout=60)
            except Exception:  # noqa: BLE001 - best effort
                pass
        self.created = []


def require_execute_endpoint(r):
    """The execute endpoint is being written in parallel; say so plainly when it is missing."""
    if r.status_code in (404, 405):
        try:
            msg = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            msg = ""
        if r.status_code == 405 or msg == "no such endpoint":
            pytest.fail("POST /api/v1/sandbox/:id/execute is not available in this daemon "
                        f"build ({r.status_code} {msg!r})", pytrace=False)


def wait_status(client, sid, want, timeout=15.0):
    """Polls GET /sandbox/:id/status until status ∈ want; returns the last body."""
    want = {want} if isinstance(want, str) else set(want)
    last = {}

    def check():
        nonlocal last
        r = client.status(sid)
        if r.status_code != 200:
            last = {"http": r.status_code, "body": r.text[:300]}
            return None
        last = r.json()
        return last if last.get("status") in want else None

    return wait_until(check, timeout) or last


@pytest.fixture
def traversable_state(daemon):
    """The session daemon (its state dir sits below pytest's 0700 temporary directories; the
    runtime resolves its paths as host root before entering the user namespace, ad4747b)."""
    return daemon


@pytest.fixture
def sandboxes(api, org, traversable_state):
    """A SandboxClient for a fresh org; every sandbox it created is deleted afterwards."""
    c = SandboxClient(api, org.key, org.org_id, traversable_state.state_dir)
    c.account = org
    yield c
    c.cleanup()


@pytest.fixture
def sandbox(sandboxes):
    """One running sandbox (dict) of the `sandboxes` client's org."""
    return sandboxes.create({})


@pytest.fixture
def client_for(api, traversable_state):
    """client_for(account_or_key) → SandboxClient, cleaned up at the end of the test."""
    made = []

    def _make(who, a=None):
        key = getattr(who, "key", who)
        c = SandboxClient(a or api, key, getattr(who, "org_id", None),
                          traversable_state.state_dir)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.cleanup()


def make_key(api, owner_key, scopes, name=None):
    r = api.post("api-keys", key=owner_key,
                 json={"name": name or f"k-{os.urandom(4).hex()}", "scopes": scopes})
    assert r.status_code in (200, 201), f"api key create failed: {r.status_code} {r.text}"
    return r.json()["key"]


# ---------------------------------------------------------------------------------------------
# Host view: cgroups and processes of one daemon's sandboxes
# ---------------------------------------------------------------------------------------------
# Local runtime: the daemon's own cgroups and state dir. Kubernetes runtime (tests run with
# SANDBOXD_TEST_RUNTIME=k8s): the node's view — each pod of the daemon's namespace is a local
# sandbox of the kube emulator (its rtctl state dir and cgroup prefix), found through the
# emulator's state (conftest.k8s_host_sandboxes).

def cgroup_prefix(state_dir, base="sandboxd"):
    """The daemon qualifies runtime.cgroup_prefix with 8 hex of sha256(absolute state dir)."""
    h = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:8]
    return f"{base}-{h}"


def _host_sandboxes(state_dir):
    """(cgroup prefix, rtctl state dir, {sandbox id: host name}) of a daemon's sandboxes."""
    c = _conftest()
    if c.RUNTIME == "k8s":
        return c._KUBE.cgroup_prefix, Path(c._KUBE.state_dir), c.k8s_host_sandboxes(state_dir)
    prefix = cgroup_prefix(state_dir)
    root = Path("/sys/fs/cgroup/pids") / prefix
    names = [d.name for d in root.iterdir() if d.is_dir()] if root.is_dir() else []
    return prefix, Path(state_dir), {n: n for n in names}


def cgroup_dir(state_dir, sid, ctrl="pids"):
    prefix, _, names = _host_sandboxes(state_dir)
    return Path("/sys/fs/cgroup") / ctrl / prefix / names.get(sid, sid)


def leftover_cgroup_dirs(state_dir, ctrl="pids"):
    """The cgroup directories of a daemon's sandboxes that still exist."""
    prefix, _, names = _host_sandboxes(state_dir)
    return [d for d in (Path("/sys/fs/cgroup") / ctrl / prefix / n for n in names.values())
            if d.is_dir()]


def leftover_workspaces(state_dir):
    """The workspace directories of a daemon's sandboxes that still exist."""
    _, rt_state, names = _host_sandboxes(state_dir)
    ws = rt_state / "sandboxes"
    if _conftest().RUNTIME == "k8s":
        return [ws / n for n in names.values() if (ws / n).exists()]
    return list(ws.iterdir()) if ws.is_dir() else []


def cgroup_pids(state_dir, sid, ctrl="pids"):
    """Pids in a sandbox's cgroup (empty when the directory is gone)."""
    p = cgroup_dir(state_dir, sid, ctrl) / "cgroup.procs"
    try:
        return [int(x) for x in p.read_text().split()]
    except (FileNotFoundError, ProcessLookupError, OSError):
        return []


def all_prefix_pids(state_dir, ctrl="pids"):
    """Pids in every sandbox cgroup of a daemon (by its state dir): {sandbox id: pids}."""
    prefix, _, names = _host_sandboxes(state_dir)
    out = {}
    for sid, name in names.items():
        try:
            pids = [int(x) for x in
                    (Path("/sys/fs/cgroup") / ctrl / prefix / name / "cgroup.procs").read_text()
                    .split()]
        except OSError:
            continue
        if pids:
            out[sid] = pids
    return out


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, OSError):
        return False
    state = st.rsplit(")", 1)[1].split()[0]
    return state != "Z"


def kill_pids(pids, sig=signal.SIGKILL):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def ps_lines():
    return subprocess.run(["ps", "-eo", "pid,ppid,user,args"], capture_output=True,
                          text=True).stdout.splitlines()


def auth_headers(key):
    return auth(key)


# ---------------------------------------------------------------------------------------------
# Private daemons on a private Postgres cluster
# ---------------------------------------------------------------------------------------------
# Tests that start their own daemon (restart, concurrency) share the session's database: each
# daemon only reconciles and reaps the sandboxes its own runtime instance created
# (sandboxes.runtime_ref, sql/0003), so the session daemon and theirs leave each other alone.

def _conftest():
    import conftest  # the harness module pytest already imported (tests/api is on sys.path)
    return conftest


@pytest.fixture(scope="session")
def aux_pg(pg):
    return pg


class PrivateDaemon:
    """A daemon of our own (the harness's Daemon class) on the aux cluster, in a directory
    the sandbox user can traverse. Stops everything it started at the end."""

    def __init__(self, pg, workdir, name, extra_env=None):
        c = _conftest()
        self.d = c.Daemon(pg, workdir, name, extra_env)
        self.api = None

    def start(self):
        c = _conftest()
        self.d.start()
        if c._DAEMONS.count(self.d) == 0:
            c._DAEMONS.append(self.d)  # log excerpts on failure, killed at session end
        self.api = c.Api(self.d.base)
        return self

    @property
    def state_dir(self):
        return self.d.state_dir

    def register(self):
        from apihelpers import unique_email, unique_name
        r = self.api.post("register", json={"email": unique_email(),
                                            "organization_name": unique_name("Org")})
        assert r.status_code in (200, 201), r.text
        return r.json()

    def kill9(self):
        self.d.proc.send_signal(signal.SIGKILL)
        self.d.proc.wait(timeout=10)
        self.d.proc = None

    def leftover_pids(self):
        return all_prefix_pids(self.state_dir)

    def shutdown(self):
        """SIGTERM (must exit 0), then end whatever sandboxes are left (they outlive their
        daemon by design): kill their processes; k8s mode: delete their pods."""
        c = _conftest()
        rc = None
        if self.d.alive():
            rc = self.d.stop()
        if c.RUNTIME == "k8s":
            c.k8s_reap(self.state_dir)
        for pids in all_prefix_pids(self.state_dir).values():
            kill_pids(pids)
        if self.api:
            self.api.session.close()
        return rc
