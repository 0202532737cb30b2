"""pytest helpers for the Kubernetes API emulator (tests/kube-emulator/emulator.py).

    from fixture import kube_emulator          # session fixture (conftest.py re-exports it)

    def test_x(kube_emulator):
        kube_emulator.http, .https, .token, .kubeconfig_http, .kubeconfig_https, .workdir
        kube_emulator.fault({...})             # POST /_emulator/faults
        kube_emulator.state()                  # GET /_emulator/state

rtctl: $KUBE_EMULATOR_RTCTL, else <repo>/build/runtime/rtctl. Each emulator gets its own rtctl
state dir and cgroup prefix; teardown SIGTERMs it (it destroys every sandbox it created) and then
destroys anything left in its private state dir.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def rtctl_path():
    return os.environ.get("KUBE_EMULATOR_RTCTL") or os.path.join(ROOT, "build", "runtime", "rtctl")


class Emulator:
    def __init__(self, workdir, rtctl, token="emulator-token", extra=()):
        self.workdir, self.rtctl, self.token = workdir, rtctl, token
        self.state_dir = tempfile.mkdtemp(prefix="kemu", dir="/tmp")
        self.cgroup_prefix = "kemu-t%d-%s" % (os.getpid(), os.path.basename(self.state_dir)[4:])
        self.log = open(os.path.join(workdir, "emulator.out"), "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "emulator.py"), "--workdir", workdir,
             "--rtctl", rtctl, "--token", token, "--state-dir", self.state_dir,
             "--cgroup-prefix", self.cgroup_prefix] + list(extra),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        ready = os.path.join(workdir, "ready.json")
        deadline = time.time() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("kube-emulator did not start; see %s/emulator.out" % workdir)
            time.sleep(0.05)
        with open(ready) as f:
            info = json.load(f)
        self.http, self.https = info["http"], info.get("https")
        self.kubeconfig_http = info["kubeconfig_http"]
        self.kubeconfig_https = info.get("kubeconfig_https")
        self.ca = info.get("ca")
        # ready.json is written after the listeners exist; one round trip to be sure
        urllib.request.urlopen(self.http + "/version", timeout=10).read()

    def fault(self, body):
        req = urllib.request.Request(self.http + "/_emulator/faults",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    def state(self):
        return json.loads(urllib.request.urlopen(self.http + "/_emulator/state",
                                                 timeout=10).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # belt and braces: whatever is left in our private state dir is ours
        base = [self.rtctl, "-d", self.state_dir, "-p", self.cgroup_prefix]
        r = subprocess.run(base + ["list"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        for line in r.stdout.splitlines():
            if line.split():
                subprocess.run(base + ["destroy", line.split()[0]], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        import importlib.util
        spec = importlib.util.spec_from_file_location("kube_emulator_mod",
                                                      os.path.join(HERE, "emulator.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.remove_cgroup_prefix(self.cgroup_prefix)
        self.log.close()


def emulator_prereqs():
    """None if the emulator can run here, else the reason to skip."""
    if os.geteuid() != 0:
        return "the local runtime needs root"
    if not os.access(rtctl_path(), os.X_OK):
        return "rtctl not built (%s); set KUBE_EMULATOR_RTCTL" % rtctl_path()
    if not shutil.which("openssl"):
        return "openssl CLI missing"
    return None


@pytest.fixture(scope="session")
def kube_emulator(tmp_path_factory):
    why = emulator_prereqs()
    if why:
        pytest.skip(why)
    emu = Emulator(str(tmp_path_factory.mktemp("kube-emulator")), rtctl_path())
    try:
        yield emu
    finally:
        emu.stop()
