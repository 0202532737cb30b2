"""Daemon crash and restart: sandboxes survive a `kill -9` of the daemon and are adopted by the
next daemon on the same state dir and database; a sandbox whose processes died meanwhile is
marked `error` and leaves nothing behind. Each test runs its own daemon on the session
database (daemons sharing a database leave each other's sandboxes alone)."""
import threading
import time

import pytest
import requests

from sandboxhelpers import (PrivateDaemon, SandboxClient, cgroup_dir, cgroup_pids, kill_pids,
                            pid_alive, wait_until)
from sandboxhelpers import aux_pg  # noqa: F401 (fixture)


@pytest.fixture
def private_daemon(aux_pg, tmp_path_factory):
    pds = []

    def _make(name="restart", extra_env=None):
        pd = PrivateDaemon(aux_pg, tmp_path_factory.mktemp(name), name, extra_env)
        pds.append(pd)
        return pd.start()

    yield _make
    problems = []
    for pd in pds:
        rc = pd.shutdown()
        if rc not in (0, None):
            problems.append(f"{pd.d.name} exited with {rc} after SIGTERM\n{pd.d.tail(30)}")
        left = pd.leftover_pids()
        if left:
            problems.append(f"{pd.d.name}: sandbox processes left after shutdown: {left}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _client(pd, key):
    return SandboxClient(pd.api, key, state_dir=pd.state_dir)


def _all_statuses(c, ids):
    out = {}
    for sid in ids:
        r = c.status(sid)
        out[sid] = r.json().get("status") if r.status_code == 200 else f"http {r.status_code}"
    return out


def test_kill9_and_restart_adopts_sandboxes(private_daemon):
    pd = private_daemon("restart")
    acct = pd.register()
    key = acct["api_key"]["key"]
    # three live sandboxes: more than the free plan's 2
    pd.d.pg.sql("UPDATE orgs SET plan = 'pro' WHERE id = %s", (acct["organization"]["id"],))
    c = _client(pd, key)
    ids = [c.create({})["sandbox_id"] for _ in range(3)]
    for sid in ids:
        c.write_files(sid, [{"path": "marker", "content": "bWFyaw=="}])
    inits = {sid: set(cgroup_pids(pd.state_dir, sid)) for sid in ids}
    assert all(inits.values()), f"no processes in the sandbox cgroups: {inits}"
    # a sandbox's own processes: its init (and, a pod, its container's main process)
    idle = len([p for p in cgroup_pids(pd.state_dir, ids[0]) if pid_alive(p)])

    # a long command in the first sandbox; its HTTP call dies with the daemon
    outcome = {}

    def long_exec():
        try:
            r = c.execute_raw(ids[0], ["sleep", "300"], timeout=400000, http_timeout=400)
            outcome["status"] = r.status_code
        except requests.RequestException as e:
            outcome["error"] = repr(e)

    t = threading.Thread(target=long_exec, daemon=True)
    t.start()
    sleeping = wait_until(lambda: len(cgroup_pids(pd.state_dir, ids[0])) > idle, 15)
    assert sleeping, "the sleep never started in the sandbox"

    pd.kill9()
    t.join(timeout=30)
    assert "error" in outcome or outcome.get("status", 200) >= 500, outcome
    # the sandboxes outlive the daemon
    for sid in ids:
        assert any(pid_alive(p) for p in cgroup_pids(pd.state_dir, sid)), \
            f"sandbox {sid} died with the daemon"

    pd.start()  # same name → same state dir; same database
    c = _client(pd, key)

    def adopted():
        st = _all_statuses(c, ids)
        return st if all(v == "running" for v in st.values()) else None

    st = wait_until(adopted, 15, interval=0.5)
    assert st, f"not all adopted as running: {_all_statuses(c, ids)}"
    for sid in ids:
        res = c.execute(sid, ["cat", "/workspace/marker"])
        assert res["exit_code"] == 0 and res["stdout"] == "mark", (sid, res)
        # same init as before the crash: adopted, not recreated
        assert inits[sid] & set(cgroup_pids(pd.state_dir, sid)), sid
    assert c.list({"status": "creating"}).json()["sandboxes"] == []
    assert c.list({"status": "error"}).json()["sandboxes"] == []
    # the orphaned `sleep 300` went away with its connection
    gone = wait_until(lambda: len([p for p in cgroup_pids(pd.state_dir, ids[0])
                                   if pid_alive(p)]) <= idle, 15)
    assert gone, f"the sleep outlived its client: {cgroup_pids(pd.state_dir, ids[0])}"
    # and the adopted sandboxes can be ended normally
    for sid in ids:
        assert c.delete(sid).status_code == 200
    assert wait_until(lambda: not any(cgroup_pids(pd.state_dir, s) for s in ids), 10), \
        {s: cgroup_pids(pd.state_dir, s) for s in ids}


def test_sandbox_killed_while_daemon_down_becomes_error(private_daemon):
    pd = private_daemon("lost")
    key = pd.register()["api_key"]["key"]
    c = _client(pd, key)
    victim = c.create({})["sandbox_id"]
    survivor = c.create({})["sandbox_id"]
    c.sh(victim, "sleep 1000 >/dev/null 2>&1 &")  # an extra process in the victim

    pd.kill9()
    pids = cgroup_pids(pd.state_dir, victim)
    assert pids, "the victim had no processes"
    kill_pids(pids)
    assert wait_until(lambda: not any(pid_alive(p) for p in pids), 10), \
        [p for p in pids if pid_alive(p)]

    pd.start()
    c = _client(pd, key)
    st = wait_until(lambda: c.status(victim).json()["status"] == "error" or None, 15,
                    interval=0.5)
    body = c.status(victim).json()
    assert st and body["status"] == "error", body
    assert body.get("status_reason"), body
    assert c.status(survivor).json()["status"] == "running"
    assert c.sh(survivor, "echo ok")["stdout"] == "ok\n"
    # nothing left in the victim's cgroup (the directory may be gone altogether)
    assert wait_until(lambda: not any(pid_alive(p) for p in
                                      cgroup_pids(pd.state_dir, victim)), 10)
    assert wait_until(lambda: not cgroup_dir(pd.state_dir, victim).exists(), 10), \
        f"{cgroup_dir(pd.state_dir, victim)} was not removed"
    # execute on it is refused as not running
    r = c.execute_raw(victim, "true")
    assert r.status_code == 409, r.text
    # and it can still be deleted
    assert c.delete(victim).status_code == 200
    assert c.delete(survivor).status_code == 200


def test_graceful_restart_keeps_sandboxes(private_daemon):
    pd = private_daemon("graceful")
    key = pd.register()["api_key"]["key"]
    c = _client(pd, key)
    sid = c.create({})["sandbox_id"]
    rc = pd.d.stop()
    assert rc == 0, pd.d.tail(30)
    pd.start()
    c = _client(pd, key)
    st = wait_until(lambda: c.status(sid).json()["status"] in ("running", "error",
                                                               "terminated") or None, 15)
    assert st
    status = c.status(sid).json()
    # either kept (and usable) or cleanly ended — never stuck, never a dead "running"
    if status["status"] == "running":
        assert c.sh(sid, "echo up")["stdout"] == "up\n"
    else:
        assert not any(pid_alive(p) for p in cgroup_pids(pd.state_dir, sid))
    c.delete(sid)
