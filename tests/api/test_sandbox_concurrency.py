"""Many sandboxes and many commands at once: 50 sandboxes created concurrently, 200 parallel
execs each echoing a unique token, then everything deleted with no process left behind.
Runs its own daemon (per-org cap raised) on the session database."""
import collections
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandboxhelpers import (PrivateDaemon, SandboxClient, all_prefix_pids, leftover_cgroup_dirs,
                            leftover_workspaces, wait_until)
from sandboxhelpers import aux_pg  # noqa: F401 (fixture)

N_SANDBOXES = 50
N_EXECS = 200


@pytest.fixture(scope="module")
def big_daemon(aux_pg, tmp_path_factory):
    pd = PrivateDaemon(aux_pg, tmp_path_factory.mktemp("conc"), "conc",
                       {"SANDBOXD_LIMITS_MAX_SANDBOXES_PER_ORG": "100",
                        "SANDBOXD_WORKERS": "8"})
    pd.start()
    yield pd
    rc = pd.shutdown()
    assert rc == 0, pd.d.tail(40)


def test_50_sandboxes_200_execs(big_daemon, aux_pg):
    pd = big_daemon
    reg = pd.register()
    key, org_id = reg["api_key"]["key"], reg["organization"]["id"]
    aux_pg.sql("UPDATE orgs SET plan = 'enterprise' WHERE id = %s", (org_id,))
    c = SandboxClient(pd.api, key, state_dir=pd.state_dir)

    def create(_):
        # one Session per thread would be nicer; requests.Session is thread-safe enough for
        # independent requests, and failures here are what we want to see anyway
        r = pd.api.post("sandbox/create", key=key, json={"memory": "64Mi"}, timeout=120)
        return r.status_code, r.json() if r.headers.get("Content-Type", "").startswith(
            "application/json") else r.text

    try:
        with ThreadPoolExecutor(16) as ex:
            results = list(ex.map(create, range(N_SANDBOXES)))
        bad = [r for r in results if r[0] != 201]
        ids = [r[1]["sandbox_id"] for r in results if r[0] == 201]
        c.created = list(ids)
        assert not bad, f"{len(bad)} creates failed: {bad[:5]}"
        assert len(set(ids)) == N_SANDBOXES
        listed = c.list({"status": "running", "limit": 200}).json()["sandboxes"]
        assert {s["sandbox_id"] for s in listed} == set(ids)

        tokens = [f"tok-{i}-{uuid.uuid4().hex}" for i in range(N_EXECS)]

        def run(i):
            sid = ids[i % len(ids)]
            r = pd.api.post(f"sandbox/{sid}/execute", key=key,
                            json={"command": ["echo", tokens[i]], "timeout": 60000},
                            timeout=120)
            return i, r.status_code, (r.json() if r.status_code == 200 else r.text[:300])

        with ThreadPoolExecutor(32) as ex:
            out = list(ex.map(run, range(N_EXECS)))
        failed = [o for o in out if o[1] != 200 or o[2]["exit_code"] != 0]
        assert not failed, f"{len(failed)} execs failed: {failed[:5]}"
        seen = collections.Counter()
        for i, _, body in out:
            for line in body["stdout"].splitlines():
                seen[line] += 1
            assert body["stdout"] == tokens[i] + "\n", (i, body)
        assert all(seen[t] == 1 for t in tokens), \
            [t for t in tokens if seen[t] != 1][:5]
        assert set(seen) == set(tokens)

        # delete everything concurrently
        def delete(sid):
            return pd.api.delete(f"sandbox/{sid}", key=key, timeout=120).status_code

        with ThreadPoolExecutor(16) as ex:
            codes = list(ex.map(delete, ids))
        assert codes == [200] * N_SANDBOXES, collections.Counter(codes)
        c.created = []
        assert c.list({"limit": 200}).json()["sandboxes"] == []
        left = wait_until(lambda: not all_prefix_pids(pd.state_dir), 15)
        assert left, f"sandbox processes remain: {all_prefix_pids(pd.state_dir)}"
        assert wait_until(lambda: not leftover_cgroup_dirs(pd.state_dir), 15), \
            f"cgroup dirs left: {leftover_cgroup_dirs(pd.state_dir)}"
        assert wait_until(lambda: not leftover_workspaces(pd.state_dir), 15), \
            leftover_workspaces(pd.state_dir)
    finally:
        c.cleanup()
