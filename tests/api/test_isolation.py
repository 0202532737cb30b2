"""What code inside a sandbox can see and do: probes run through the execute endpoint, and the
assertions are about the sandbox's view (plus the host's where an escape would show there)."""
import os
import socket
import threading
import uuid

import pytest
import requests

from sandboxhelpers import b64
from sandboxhelpers import sandboxes, sandbox, client_for, traversable_state  # noqa: F401


def _status_fields(text):
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def test_runs_as_uid_1000(sandboxes, sandbox):
    res = sandboxes.execute(sandbox["sandbox_id"], ["id", "-u"])
    assert res["exit_code"] == 0 and res["stdout"].strip() == "1000", res
    res = sandboxes.execute(sandbox["sandbox_id"], ["id", "-g"])
    assert res["stdout"].strip() == "1000", res
    res = sandboxes.sh(sandbox["sandbox_id"], "id -G")
    assert res["stdout"].split() == ["1000"], res


def test_no_capabilities_nnp_seccomp(sandboxes, sandbox):
    res = sandboxes.execute(sandbox["sandbox_id"], ["cat", "/proc/self/status"])
    st = _status_fields(res["stdout"])
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert st.get(cap) == "0000000000000000", (cap, st.get(cap))
    assert st.get("NoNewPrivs") == "1", st
    assert st.get("Seccomp") == "2", st


def test_pid_namespace_only_own_processes(sandboxes, sandbox, daemon):
    sid = sandbox["sandbox_id"]
    res = sandboxes.sh(sid, "ls /proc | grep -E '^[0-9]+$' | sort -n; echo ---; "
                            "ps -eo pid,user,args")
    assert res["exit_code"] == 0, res
    pids_part, ps_part = res["stdout"].split("---\n", 1)
    pids = [int(p) for p in pids_part.split()]
    # a handful of processes: the sh, ls, grep, sort (and maybe init); never the host's
    assert pids and max(pids) < 100, pids
    assert daemon.proc.pid not in pids or daemon.proc.pid < 100
    assert "sandboxd" not in ps_part and "postgres" not in ps_part, ps_part
    users = {line.split()[1] for line in ps_part.splitlines()[1:] if line.strip()}
    assert users <= {"sandbox", "1000"}, ps_part
    # the host's daemon pid (if it is a large number) is not there
    r = sandboxes.sh(sid, f"test -e /proc/{daemon.proc.pid}/cmdline && "
                          f"cat /proc/{daemon.proc.pid}/cmdline; true")
    assert "sandboxd" not in r["stdout"], r


def test_filesystem_read_only_outside_workspace_and_tmp(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    for path in ("/usr/x", "/etc/x", "/x", "/bin/x", "/dev/x", "/proc/x", "/usr/bin/evil"):
        res = sandboxes.sh(sid, f"echo hi > {path}")
        assert res["exit_code"] != 0, (path, res)
    for path in ("/workspace/ok", "/tmp/ok", "/dev/shm/ok"):
        res = sandboxes.sh(sid, f"echo hi > {path} && cat {path}")
        assert res["exit_code"] == 0 and res["stdout"] == "hi\n", (path, res)
    # nothing leaked onto the host
    assert not os.path.exists("/x") and not os.path.exists("/usr/x")
    assert not os.path.exists("/usr/bin/evil")
    # /etc/shadow is not readable
    res = sandboxes.sh(sid, "cat /etc/shadow")
    assert res["exit_code"] != 0 and "root:" not in res["stdout"], res


def test_network_only_loopback(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    res = sandboxes.execute(sid, ["cat", "/proc/net/dev"])
    ifaces = [line.split(":")[0].strip() for line in res["stdout"].splitlines()[2:]
              if ":" in line]
    assert ifaces == ["lo"], res["stdout"]


def test_cannot_reach_host_listener(sandboxes, sandbox):
    sid = sandbox["sandbox_id"]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    accepted = []
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept_loop():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                accepted.append(c)
            except OSError:
                pass

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    try:
        code = ("import socket,sys\n"
                "for host in ('127.0.0.1', 'localhost', '10.0.2.2', '169.254.169.254'):\n"
                "    s = socket.socket(); s.settimeout(3)\n"
                "    try:\n"
                f"        s.connect((host, {port})); print('CONNECTED', host)\n"
                "    except Exception as e: print('refused', host, type(e).__name__)\n")
        res = sandboxes.execute(sid, ["python3", "-c", code], timeout=30000)
        assert res["exit_code"] == 0, res
        assert "CONNECTED" not in res["stdout"], res
        assert not accepted, "the host listener accepted a connection from the sandbox"
        # DNS does not resolve anything outside either
        res = sandboxes.execute(sid, ["python3", "-c",
                                      "import socket\ntry:\n print(socket.gethostbyname("
                                      "'example.com'))\nexcept Exception as e: print('no')"],
                                timeout=30000)
        assert res["stdout"].strip() == "no", res
    finally:
        stop.set()
        t.join(timeout=2)
        srv.close()
        for c in accepted:
            c.close()


@pytest.mark.parametrize("cmd", [
    ["unshare", "-U", "true"],
    ["unshare", "-r", "true"],
    ["unshare", "-n", "true"],
    ["python3", "-c", "import os; os.unshare(os.CLONE_NEWUSER)"],
    ["python3", "-c", "import os; os.unshare(os.CLONE_NEWNS)"],
    ["mount", "-t", "tmpfs", "none", "/tmp"],
    ["sh", "-c", "mkdir -p /tmp/x && mount -t tmpfs none /tmp/x"],
    ["sh", "-c", "mount -o remount,rw /usr"],
    ["python3", "-c", "import ctypes; l=ctypes.CDLL(None,use_errno=True); "
                      "import sys; sys.exit(0 if l.ptrace(0,0,0,0)==0 else 1)"],
    ["python3", "-c", "import ctypes; l=ctypes.CDLL(None,use_errno=True); "
                      "import sys; sys.exit(0 if l.chroot(b'/tmp')==0 else 1)"],
], ids=lambda c: " ".join(c)[:50])
def test_privileged_operations_fail(sandboxes, sandbox, cmd):
    res = sandboxes.execute(sandbox["sandbox_id"], cmd)
    assert res["exit_code"] != 0, res
    # and the view did not change
    res = sandboxes.sh(sandbox["sandbox_id"], "grep -c ' /tmp/x ' /proc/self/mounts; true")
    assert res["stdout"].strip() in ("0", ""), res


def test_setuid_binary_does_not_elevate(sandboxes, sandbox):
    res = sandboxes.sh(sandbox["sandbox_id"], "su -c id root </dev/null; "
                                              "test -x /usr/bin/sudo && sudo -n id; id -u")
    assert "uid=0" not in res["stdout"], res
    assert res["stdout"].strip().endswith("1000"), res


def test_hostname_not_hosts(sandboxes, sandbox):
    res = sandboxes.execute(sandbox["sandbox_id"], ["cat", "/proc/sys/kernel/hostname"])
    assert res["exit_code"] == 0, res
    assert res["stdout"].strip() and res["stdout"].strip() != socket.gethostname(), res
    res = sandboxes.sh(sandbox["sandbox_id"], "hostname new-name")
    assert res["exit_code"] != 0, res
    assert socket.gethostname() != "new-name"


def test_memory_limit_oom(sandboxes):
    sb = sandboxes.create({"memory": "64Mi"})
    sid = sb["sandbox_id"]
    res = sandboxes.execute(
        sid, ["python3", "-c", "b = bytearray(256 * 1024 * 1024)\n"
                               "for i in range(0, len(b), 4096): b[i] = 1\nprint('survived')"],
        timeout=60000, http_timeout=90)
    assert "survived" not in res["stdout"], res
    assert res["exit_code"] != 0, res
    assert res.get("reason") == "oom" or res["exit_code"] == 137, res
    # the sandbox itself is still usable
    res = sandboxes.sh(sid, "echo alive")
    assert res["exit_code"] == 0 and res["stdout"] == "alive\n", res
    assert sandboxes.status(sid).json()["status"] == "running"


def test_fork_bomb_contained(sandboxes, api):
    sb = sandboxes.create({})
    sid = sb["sandbox_id"]
    bomb = ("import os, time\n"
            "end = time.time() + 5\n"
            "n = 0; failed = 0\n"
            "while time.time() < end:\n"
            "    try:\n"
            "        pid = os.fork()\n"
            "    except OSError:\n"
            "        failed += 1; time.sleep(0.01); continue\n"
            "    if pid == 0:\n"
            "        time.sleep(max(0, end - time.time())); os._exit(0)\n"
            "    n += 1\n"
            "print(n, failed, flush=True)\n"
            "os._exit(0)\n")
    res = sandboxes.execute(sid, ["python3", "-c", bomb], timeout=60000, http_timeout=90)
    out = res["stdout"].split()
    if len(out) == 2:
        n, failed = int(out[0]), int(out[1])
        assert n < 4096, f"{n} processes forked: no pids limit"
        assert failed > 0, res
    # a shell fork bomb under timeout
    res = sandboxes.execute(sid, ["timeout", "5", "sh", "-c", ":(){ :|:& };:"],
                            timeout=60000, http_timeout=90)
    # the daemon and other sandboxes are fine
    assert api.get("/healthz").status_code == 200
    other = sandboxes.create({})
    r = sandboxes.sh(other["sandbox_id"], "echo fresh")
    assert r["stdout"] == "fresh\n", r
    # and the bombed sandbox recovers (children are gone once the limit let them finish)
    r = None
    for _ in range(30):
        r = sandboxes.execute_raw(sid, ["sh", "-c", "echo again"], timeout=30000)
        if r.status_code == 200 and r.json().get("stdout") == "again\n":
            break
        import time
        time.sleep(1)
    assert r is not None and r.status_code == 200 and r.json()["stdout"] == "again\n", \
        r.text if r is not None else None


def test_cannot_see_other_sandbox_workspace(sandboxes):
    a = sandboxes.create({})
    b = sandboxes.create({})
    secret = f"secret-{uuid.uuid4().hex}"
    r = sandboxes.write_files(a["sandbox_id"], [{"path": "secret.txt", "content": b64(secret)}])
    assert r.status_code == 200, r.text
    # keep a process alive in A so /proc would expose it if pid namespaces were shared
    holder = threading.Thread(target=lambda: sandboxes.execute_raw(
        a["sandbox_id"], ["sh", "-c", f"cd /workspace && exec sleep 8 # {secret}"],
        timeout=20000, http_timeout=30), daemon=True)
    holder.start()
    import time
    time.sleep(1)
    probe = ("ls /proc/*/root/ 2>/dev/null | head -50; "
             "cat /proc/*/root/workspace/secret.txt 2>/dev/null; "
             "cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; "
             "find / -xdev -name secret.txt 2>/dev/null; "
             "grep -rs secret- /workspace /tmp /proc/*/environ 2>/dev/null; "
             "ls -la /workspace/../ 2>/dev/null; echo done")
    res = sandboxes.sh(b["sandbox_id"], probe, timeout=30000)
    assert res["stdout"].rstrip().endswith("done"), res
    assert secret not in res["stdout"] and secret not in res["stderr"], res
    # B's workspace does not even hold the file
    assert sandboxes.read_file(b["sandbox_id"], "secret.txt").status_code == 404
    holder.join(timeout=30)


def test_env_of_daemon_not_inherited(sandboxes, sandbox):
    res = sandboxes.execute(sandbox["sandbox_id"], ["env"])
    assert "SANDBOXD_" not in res["stdout"], res
    assert "DATABASE" not in res["stdout"] and "postgres" not in res["stdout"].lower(), res


def test_no_host_fds_leaked(sandboxes, sandbox):
    res = sandboxes.sh(sandbox["sandbox_id"],
                       "for f in /proc/self/fd/*; do readlink $f; done")
    for line in res["stdout"].split():
        assert not line.startswith("/") or line.startswith(("/dev/", "/proc/")), res
    assert "socket:" not in res["stdout"], res
