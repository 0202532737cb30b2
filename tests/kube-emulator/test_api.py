"""API semantics (Status bodies, metadata, selectors, watch, leases, networkpolicies, faults)
over raw HTTP, and Debian's python3-kubernetes (list, watch, exec)."""

import base64
import http.client
import json
import socket
import threading
import time
import urllib.parse

import pytest

from test_emulator import create_running_pod, pod_manifest, rest, wait_for

NS = "/api/v1/namespaces/default"


def status_shape(body, code, reason):
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["metadata"] == {} and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    return body


# ---------------------------------------------------------------------------------------------
# discovery, auth, Status bodies

def test_discovery_documents(kube_emulator):
    assert rest(kube_emulator, "GET", "/version")[2]["minor"] == "32"
    assert rest(kube_emulator, "GET", "/api")[2]["versions"] == ["v1"]
    groups = {g["name"] for g in rest(kube_emulator, "GET", "/apis")[2]["groups"]}
    assert groups == {"networking.k8s.io", "coordination.k8s.io"}
    names = {r["name"] for r in rest(kube_emulator, "GET", "/api/v1")[2]["resources"]}
    assert {"pods", "pods/exec", "pods/log", "namespaces"} <= names
    for gv, res in (("networking.k8s.io/v1", "networkpolicies"),
                    ("coordination.k8s.io/v1", "leases")):
        body = rest(kube_emulator, "GET", "/apis/" + gv)[2]
        assert body["groupVersion"] == gv and body["resources"][0]["name"] == res
    root = rest(kube_emulator, "GET", "/openapi/v3")[2]
    url = root["paths"]["api/v1"]["serverRelativeURL"]
    doc = rest(kube_emulator, "GET", url)[2]
    assert "/api/v1/namespaces/{namespace}/pods" in doc["paths"]


def test_https_requires_token(kube_emulator):
    code, _, body = rest(kube_emulator, "GET", NS + "/pods", transport="https", token=False)
    status_shape(body, 401, "Unauthorized")
    assert code == 401 and body["message"] == "Unauthorized"
    assert rest(kube_emulator, "GET", NS + "/pods", transport="https")[0] == 200


def test_status_bodies_match_the_apiserver(kube_emulator):
    code, _, b = rest(kube_emulator, "GET", NS + "/pods/missing")
    assert code == 404 and status_shape(b, 404, "NotFound")["message"] == \
        'pods "missing" not found'
    assert b["details"] == {"name": "missing", "kind": "pods"}
    code, _, b = rest(kube_emulator, "GET", "/apis/coordination.k8s.io/v1/namespaces/default/"
                      "leases/missing")
    assert b["message"] == 'leases.coordination.k8s.io "missing" not found'
    assert b["details"] == {"name": "missing", "group": "coordination.k8s.io", "kind": "leases"}
    code, _, b = rest(kube_emulator, "POST", NS + "/pods",
                      {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "inv"},
                       "spec": {}})
    status_shape(b, 422, "Invalid")
    assert b["message"] == 'Pod "inv" is invalid: spec.containers: Required value'
    assert b["details"]["causes"][0] == {"reason": "FieldValueRequired",
                                         "message": "Required value", "field": "spec.containers"}
    code, _, b = rest(kube_emulator, "POST", "/api/v1/namespaces/nons/pods", pod_manifest("x"))
    assert code == 404 and b["message"] == 'namespaces "nons" not found'
    code, _, b = rest(kube_emulator, "GET", NS + "/pods/x/exec?command=true&stdout=true")
    assert code in (400, 404)
    code, _, b = rest(kube_emulator, "POST", NS + "/pods?fieldValidation=Strict",
                      dict(pod_manifest("strict"), bogus=1))
    status_shape(b, 400, "BadRequest")
    assert 'unknown field "bogus"' in b["message"]


def test_metadata_semantics_and_already_exists(kube_emulator):
    code, _, a = rest(kube_emulator, "POST", NS + "/pods", pod_manifest("meta", ["sleep", "60"]))
    assert code == 201
    md = a["metadata"]
    assert len(md["uid"]) == 36 and md["resourceVersion"].isdigit()
    assert md["creationTimestamp"].endswith("Z") and len(md["creationTimestamp"]) == 20
    assert md["namespace"] == "default" and a["status"]["phase"] == "Pending"
    code, _, b = rest(kube_emulator, "POST", NS + "/pods", pod_manifest("meta"))
    assert code == 409 and status_shape(b, 409, "AlreadyExists")["message"] == \
        'pods "meta" already exists'
    code, _, g = rest(kube_emulator, "POST", NS + "/pods",
                      {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "gen-"},
                       "spec": pod_manifest("x")["spec"]})
    assert code == 201 and g["metadata"]["name"].startswith("gen-") and \
        len(g["metadata"]["name"]) == 9
    # delete with a stale uid precondition → 409 Conflict
    code, _, b = rest(kube_emulator, "DELETE", NS + "/pods/meta",
                      {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
    assert code == 409 and status_shape(b, 409, "Conflict")
    # graceful delete: deletionTimestamp first, then gone; re-create gets a new uid
    code, _, d = rest(kube_emulator, "DELETE", NS + "/pods/meta")
    assert code == 200 and d["metadata"]["deletionTimestamp"]
    wait_for(lambda: rest(kube_emulator, "GET", NS + "/pods/meta")[0] == 404, what="gone")
    code, _, a2 = rest(kube_emulator, "POST", NS + "/pods", pod_manifest("meta"))
    assert code == 201 and a2["metadata"]["uid"] != md["uid"]
    rest(kube_emulator, "DELETE", NS + "/pods/meta?gracePeriodSeconds=0")
    rest(kube_emulator, "DELETE", NS + "/pods/%s?gracePeriodSeconds=0" % g["metadata"]["name"])
    assert rest(kube_emulator, "GET", NS + "/pods/meta")[0] == 404


def test_list_selectors_and_table(kube_emulator):
    create_running_pod(kube_emulator, "sel-a")
    code, _, _ = rest(kube_emulator, "POST", NS + "/pods",
                      pod_manifest("sel-b", ["true"], labels={"app": "other", "tier": "x"}))
    wait_for(lambda: rest(kube_emulator, "GET", NS + "/pods/sel-b")[2]["status"]["phase"]
             == "Succeeded", what="sel-b Succeeded")
    names = lambda q: sorted(i["metadata"]["name"] for i in rest(
        kube_emulator, "GET", NS + "/pods?" + q)[2]["items"] if i["metadata"]["name"]
        .startswith("sel-"))
    assert names("labelSelector=app%3Dother") == ["sel-b"]
    assert names("labelSelector=tier") == ["sel-b"]
    assert names("labelSelector=app+in+(kt,other),!tier") == ["sel-a"]
    assert names("fieldSelector=metadata.name%3Dsel-a") == ["sel-a"]
    assert names("fieldSelector=status.phase%3DSucceeded") == ["sel-b"]
    assert names("fieldSelector=status.phase!%3DSucceeded") == ["sel-a"]
    code, _, b = rest(kube_emulator, "GET", NS + "/pods?fieldSelector=spec.bogus%3D1")
    assert code == 400 and b["reason"] == "BadRequest"
    lst = rest(kube_emulator, "GET", NS + "/pods")[2]
    assert lst["kind"] == "PodList" and lst["metadata"]["resourceVersion"].isdigit()
    page = rest(kube_emulator, "GET", NS + "/pods?limit=1")[2]
    assert len(page["items"]) == 1 and page["metadata"]["continue"]
    t = rest(kube_emulator, "GET", NS + "/pods", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})[2]
    assert t["kind"] == "Table" and [c["name"] for c in t["columnDefinitions"]][:5] == \
        ["Name", "Ready", "Status", "Restarts", "Age"]
    row = [r for r in t["rows"] if r["cells"][0] == "sel-b"][0]
    assert row["cells"][2] == "Completed" and row["object"]["kind"] == "PartialObjectMetadata"
    for n in ("sel-a", "sel-b"):
        rest(kube_emulator, "DELETE", NS + "/pods/%s?gracePeriodSeconds=0" % n)


def test_namespaces_crud(kube_emulator):
    code, _, ns = rest(kube_emulator, "POST", "/api/v1/namespaces",
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    assert code == 201 and ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"
    assert "team-a" in [n["metadata"]["name"] for n in
                        rest(kube_emulator, "GET", "/api/v1/namespaces")[2]["items"]]
    code, _, p = rest(kube_emulator, "POST", "/api/v1/namespaces/team-a/pods",
                      pod_manifest("in-ns", ["sleep", "60"]))
    assert code == 201
    code, _, d = rest(kube_emulator, "DELETE", "/api/v1/namespaces/team-a")
    assert code == 200 and d["status"]["phase"] == "Terminating"
    wait_for(lambda: rest(kube_emulator, "GET", "/api/v1/namespaces/team-a")[0] == 404,
             what="namespace gone")
    assert rest(kube_emulator, "GET", "/api/v1/namespaces/team-a/pods/in-ns")[0] == 404
    code, _, b = rest(kube_emulator, "DELETE", "/api/v1/namespaces/default")
    assert code == 403


def test_networkpolicy_crud(kube_emulator):
    base = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"
    np = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "deny", "labels": {"app": "sbx"}},
          "spec": {"podSelector": {"matchLabels": {"app": "sbx"}}, "policyTypes": ["Ingress"]}}
    code, _, c = rest(kube_emulator, "POST", base, np)
    assert code == 201 and c["metadata"]["generation"] == 1
    assert rest(kube_emulator, "POST", base, np)[0] == 409
    c["spec"]["policyTypes"] = ["Ingress", "Egress"]
    code, _, u = rest(kube_emulator, "PUT", base + "/deny", c)
    assert code == 200 and u["metadata"]["generation"] == 2
    assert u["metadata"]["resourceVersion"] != c["metadata"]["resourceVersion"]
    code, _, pt = rest(kube_emulator, "PATCH", base + "/deny", {"metadata": {"labels": {"x": "y"}}},
                       headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200 and pt["metadata"]["labels"] == {"app": "sbx", "x": "y"}
    assert pt["metadata"]["generation"] == 2
    assert [i["metadata"]["name"] for i in rest(
        kube_emulator, "GET", base + "?labelSelector=app%3Dsbx")[2]["items"]] == ["deny"]
    code, _, d = rest(kube_emulator, "DELETE", base + "/deny")
    assert code == 200 and d["kind"] == "Status" and d["status"] == "Success"
    assert d["details"]["group"] == "networking.k8s.io" and d["details"]["kind"] == \
        "networkpolicies"
    assert rest(kube_emulator, "GET", base + "/deny")[0] == 404


def test_lease_optimistic_concurrency(kube_emulator):
    base = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "ctrl"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    code, _, l1 = rest(kube_emulator, "POST", base, lease)
    assert code == 201
    l1["spec"]["holderIdentity"] = "b"
    code, _, l2 = rest(kube_emulator, "PUT", base + "/ctrl", l1)
    assert code == 200 and l2["spec"]["holderIdentity"] == "b"
    l1["spec"]["holderIdentity"] = "c"  # still carries the old resourceVersion
    code, _, b = rest(kube_emulator, "PUT", base + "/ctrl", l1)
    assert code == 409 and status_shape(b, 409, "Conflict")["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "ctrl": the object has '
        'been modified; please apply your changes to the latest version and try again')
    assert rest(kube_emulator, "GET", base + "/ctrl")[2]["spec"]["holderIdentity"] == "b"
    code, _, d = rest(kube_emulator, "DELETE", base + "/ctrl")
    assert code == 200
    assert rest(kube_emulator, "GET", base + "/ctrl")[0] == 404


# ---------------------------------------------------------------------------------------------
# watch

def watch_lines(emu, query, stop_after, timeout=15, out=None):
    """Raw watch over http.client; returns the parsed events (stops after stop_after events),
    appending them to out as they arrive."""
    u = urllib.parse.urlsplit(emu.http)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    c.request("GET", NS + "/pods?" + query)
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    out = [] if out is None else out
    try:
        while len(out) < stop_after:
            line = r.readline()
            if not line:
                break
            out.append(json.loads(line))
    except (OSError, http.client.HTTPException):
        pass
    c.close()
    return out


def test_watch_resume_bookmark_and_410(kube_emulator):
    rv0 = rest(kube_emulator, "GET", NS + "/pods")[2]["metadata"]["resourceVersion"]
    got = []
    t = threading.Thread(target=lambda: watch_lines(
        kube_emulator, "watch=1&resourceVersion=%s&fieldSelector=metadata.name%%3Dw1"
        "&allowWatchBookmarks=true" % rv0, 50, 20, out=got))
    t.start()
    time.sleep(0.2)
    create_running_pod(kube_emulator, "w1")
    rest(kube_emulator, "DELETE", NS + "/pods/w1")
    wait_for(lambda: any(e["type"] == "DELETED" for e in got) and
             any(e["type"] == "BOOKMARK" for e in got), timeout=15, what="DELETED + BOOKMARK")
    kube_emulator.fault({"drop_watches": True})
    t.join(10)
    types = [e["type"] for e in got if e["type"] != "BOOKMARK"]
    assert types[0] == "ADDED" and types[-1] == "DELETED" and "MODIFIED" in types
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
    assert rvs == sorted(rvs)
    # resume from the middle: exactly the later events again
    mid = got[1]["object"]["metadata"]["resourceVersion"]
    again = watch_lines(kube_emulator, "watch=true&resourceVersion=%s&timeoutSeconds=1"
                        "&fieldSelector=metadata.name%%3Dw1" % mid, 50)
    assert [e["object"]["metadata"]["resourceVersion"] for e in again] == \
        [e["object"]["metadata"]["resourceVersion"] for e in got[2:] if e["type"] != "BOOKMARK"]
    # compacted history: 410 Expired as an ERROR event
    kube_emulator.fault({"compact": True})
    old = watch_lines(kube_emulator, "watch=true&resourceVersion=%s" % rv0, 5)
    assert old[0]["type"] == "ERROR"
    assert old[0]["object"]["code"] == 410 and old[0]["object"]["reason"] == "Expired"


def test_watch_is_dropped_by_fault_and_resumes(kube_emulator):
    rv = rest(kube_emulator, "GET", NS + "/pods")[2]["metadata"]["resourceVersion"]
    got, done = [], threading.Event()

    def run():
        watch_lines(kube_emulator, "watch=true&resourceVersion=%s"
                    "&fieldSelector=metadata.name%%3Dwd" % rv, 100, 20, out=got)
        done.set()
    threading.Thread(target=run, daemon=True).start()
    time.sleep(0.2)
    rest(kube_emulator, "POST", NS + "/pods", pod_manifest("wd", ["sleep", "60"]))
    wait_for(lambda: got or None, what="first event")
    kube_emulator.fault({"drop_watches": True})
    assert done.wait(10), "watch was not dropped"
    last = got[-1]["object"]["metadata"]["resourceVersion"]
    rest(kube_emulator, "DELETE", NS + "/pods/wd?gracePeriodSeconds=0")
    resumed = watch_lines(kube_emulator, "watch=true&resourceVersion=%s&timeoutSeconds=2"
                          "&fieldSelector=metadata.name%%3Dwd" % last, 100)
    assert resumed and resumed[-1]["type"] == "DELETED"
    assert all(int(e["object"]["metadata"]["resourceVersion"]) > int(last) for e in resumed)


# ---------------------------------------------------------------------------------------------
# faults

def test_injected_errors_are_status_bodies(kube_emulator):
    kube_emulator.fault({"errors": [
        {"path": "/pods/flaky$", "status": 409, "count": 1},
        {"path": "/pods/flaky$", "status": 429, "count": 1, "retry_after": 2},
        {"path": "/pods/flaky$", "status": 500, "count": 1}]})
    code, _, b = rest(kube_emulator, "GET", NS + "/pods/flaky")
    assert code == 409 and status_shape(b, 409, "Conflict")["details"]["name"] == "flaky"
    code, h, b = rest(kube_emulator, "GET", NS + "/pods/flaky")
    assert code == 429 and h["Retry-After"] == "2"
    assert status_shape(b, 429, "TooManyRequests")["details"]["retryAfterSeconds"] == 2
    code, _, b = rest(kube_emulator, "GET", NS + "/pods/flaky")
    assert code == 500 and status_shape(b, 500, "InternalError")["message"].startswith(
        "Internal error occurred: ")
    code, _, b = rest(kube_emulator, "GET", NS + "/pods/flaky")
    assert code == 404  # the rules are used up


def test_latency_fault(kube_emulator):
    kube_emulator.fault({"latency_ms": 400, "latency_path": "^/version$", "latency_count": 1})
    t = time.monotonic()
    rest(kube_emulator, "GET", "/version")
    assert time.monotonic() - t >= 0.35
    t = time.monotonic()
    rest(kube_emulator, "GET", "/version")
    assert time.monotonic() - t < 0.35


def test_kill_and_delete_pod_out_of_band(kube_emulator):
    create_running_pod(kube_emulator, "victim")
    sid = kube_emulator.state()["pods"]["default/victim"]["sandbox"]
    assert kube_emulator.fault({"kill_pod": "default/victim"})["kill_pod"] == "killed"
    p = wait_for(lambda: (lambda b: b if b["status"]["phase"] == "Failed" else None)(
        rest(kube_emulator, "GET", NS + "/pods/victim")[2]), what="victim Failed")
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert sid not in kube_emulator.state()["sandboxes"]
    rest(kube_emulator, "DELETE", NS + "/pods/victim?gracePeriodSeconds=0")
    create_running_pod(kube_emulator, "gone")
    assert kube_emulator.fault({"delete_pod": "default/gone"})["delete_pod"] == "deleted"
    assert rest(kube_emulator, "GET", NS + "/pods/gone")[0] == 404


def test_restart_drops_connections_and_keeps_state(kube_emulator):
    create_running_pod(kube_emulator, "survivor")
    uid = rest(kube_emulator, "GET", NS + "/pods/survivor")[2]["metadata"]["uid"]
    u = urllib.parse.urlsplit(kube_emulator.http)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", NS + "/pods?watch=true")
    r = c.getresponse()
    assert json.loads(r.readline())["type"] == "ADDED"
    kube_emulator.fault({"restart": True, "down_ms": 300})
    with pytest.raises((OSError, http.client.HTTPException, ValueError)):
        for _ in range(1000):
            line = r.readline()
            if not line:
                raise OSError("closed")
    c.close()
    wait_for(lambda: _ok(lambda: rest(kube_emulator, "GET", NS + "/pods/survivor")[2]
                         ["metadata"]["uid"] == uid), what="back after restart")
    rest(kube_emulator, "DELETE", NS + "/pods/survivor?gracePeriodSeconds=0")


def _ok(f):
    try:
        return f()
    except Exception:
        return False


class PodWatch:
    """A raw watch on one pod (from the current RV) collecting its events in a thread."""

    def __init__(self, emu, name, seconds=20):
        rv = rest(emu, "GET", NS + "/pods")[2]["metadata"]["resourceVersion"]
        self.events = []
        self.t = threading.Thread(target=watch_lines, daemon=True, args=(
            emu, "watch=true&resourceVersion=%s&timeoutSeconds=%d"
            "&fieldSelector=metadata.name%%3D%s" % (rv, seconds, name), 1000, seconds + 5,
            self.events))
        self.t.start()

    def wait(self, pred, what):
        """The first event whose pod satisfies pred (MODIFIED events only)."""
        return wait_for(lambda: next((e["object"] for e in list(self.events)
                                      if e["type"] == "MODIFIED" and pred(e["object"])), None),
                        what=what)


def waiting_reason(pod):
    cs = pod.get("status", {}).get("containerStatuses") or [{}]
    return cs[0].get("state", {}).get("waiting", {}).get("reason")


def terminated(pod):
    cs = pod.get("status", {}).get("containerStatuses") or [{}]
    return cs[0].get("state", {}).get("terminated")


def test_image_pull_failure_until_the_image_exists(kube_emulator):
    kube_emulator.fault({"missing_images": ["busybox:missing"]})
    w = PodWatch(kube_emulator, "puller")
    m = pod_manifest("puller", ["sleep", "60"])
    m["spec"]["containers"][0]["image"] = "busybox:missing"
    assert rest(kube_emulator, "POST", NS + "/pods", m)[0] == 201
    p = w.wait(lambda o: waiting_reason(o) == "ErrImagePull", "ErrImagePull")
    assert p["status"]["phase"] == "Pending"
    st = p["status"]["containerStatuses"][0]
    assert st["ready"] is False and st["restartCount"] == 0
    assert 'failed to pull and unpack image "busybox:missing"' in st["state"]["waiting"]["message"]
    ready = [c for c in p["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    p = w.wait(lambda o: waiting_reason(o) == "ImagePullBackOff", "ImagePullBackOff")
    assert p["status"]["phase"] == "Pending"
    assert p["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == \
        'Back-off pulling image "busybox:missing"'
    assert not kube_emulator.state()["pods"]["default/puller"]["running"]  # no sandbox
    # the image appears: the next pull succeeds and the pod starts
    kube_emulator.fault({"clear": True})
    w.wait(lambda o: o["status"]["phase"] == "Running", "Running after the pull")
    rest(kube_emulator, "DELETE", NS + "/pods/puller?gracePeriodSeconds=0")
    # a registry under .invalid never resolves
    m = pod_manifest("nohost", ["sleep", "60"])
    m["spec"]["containers"][0]["image"] = "registry.invalid/team/img:1"
    w = PodWatch(kube_emulator, "nohost")
    assert rest(kube_emulator, "POST", NS + "/pods", m)[0] == 201
    w.wait(lambda o: waiting_reason(o) == "ImagePullBackOff", ".invalid: ImagePullBackOff")
    rest(kube_emulator, "DELETE", NS + "/pods/nohost?gracePeriodSeconds=0")


@pytest.mark.parametrize("fault,reason,container_reason", [
    ("oom_kill_pod", None, "OOMKilled"),
    ("evict_pod", "Evicted", "Error"),
    ("deadline_pod", "DeadlineExceeded", "Error"),
])
def test_pod_failures_shaped_like_the_kubelet(kube_emulator, fault, reason, container_reason):
    name = fault.replace("_", "-")
    w = PodWatch(kube_emulator, name)
    create_running_pod(kube_emulator, name)
    sid = kube_emulator.state()["pods"]["default/" + name]["sandbox"]
    assert kube_emulator.fault({fault: "default/" + name})[fault]
    p = w.wait(lambda o: o["status"]["phase"] == "Failed", "Failed (MODIFIED)")
    t = terminated(p)
    assert t["exitCode"] == 137 and t["reason"] == container_reason, t
    assert p["status"].get("reason") == reason
    conds = {c["type"]: c for c in p["status"]["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PodFailed"
    if fault == "evict_pod":
        assert p["status"]["message"].startswith("The node was low on resource: memory.")
        assert conds["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    if fault == "deadline_pod":
        assert p["status"]["message"] == \
            "Pod was active on the node longer than the specified deadline"
    assert sid not in kube_emulator.state()["sandboxes"]  # the containers are gone
    # the pod object stays (Failed) until someone deletes it
    assert rest(kube_emulator, "GET", NS + "/pods/" + name)[2]["status"]["phase"] == "Failed"
    rest(kube_emulator, "DELETE", NS + "/pods/%s?gracePeriodSeconds=0" % name)


def test_active_deadline_seconds_is_enforced(kube_emulator):
    m = pod_manifest("deadline", ["sleep", "60"])
    m["spec"]["activeDeadlineSeconds"] = 1
    w = PodWatch(kube_emulator, "deadline")
    assert rest(kube_emulator, "POST", NS + "/pods", m)[0] == 201
    p = w.wait(lambda o: o["status"]["phase"] == "Failed", "DeadlineExceeded")
    assert p["status"]["reason"] == "DeadlineExceeded"
    assert [e["object"]["status"]["phase"] for e in w.events if e["type"] == "MODIFIED"
            ].count("Running") >= 1  # it ran first
    rest(kube_emulator, "DELETE", NS + "/pods/deadline?gracePeriodSeconds=0")


def test_ready_delay_and_start_delay(kube_emulator):
    kube_emulator.fault({"pod_ready_delay_ms": 600, "pod_start_delay_ms": 300})
    try:
        w = PodWatch(kube_emulator, "slow")
        assert rest(kube_emulator, "POST", NS + "/pods", pod_manifest("slow", ["sleep", "60"])
                    )[0] == 201
        ready = lambda o: any(c["type"] == "Ready" and c["status"] == "True"
                              for c in o["status"].get("conditions", []))
        w.wait(ready, "Ready")
        phases = [(e["object"]["status"]["phase"], ready(e["object"])) for e in w.events
                  if e["type"] == "MODIFIED"]
        assert phases.index(("Pending", False)) < phases.index(("Running", False)) < \
            phases.index(("Running", True)), phases
        assert waiting_reason([e["object"] for e in w.events][1]) == "ContainerCreating"
    finally:
        kube_emulator.fault({"clear": True})
        rest(kube_emulator, "DELETE", NS + "/pods/slow?gracePeriodSeconds=0")


def test_after_fault_applies_the_request_and_loses_the_answer(kube_emulator):
    kube_emulator.fault({"errors": [{"path": "^%s/pods$" % NS, "method": "POST", "status": 500,
                                     "after": True, "count": 1}]})
    code, _, b = rest(kube_emulator, "POST", NS + "/pods", pod_manifest("lost", ["sleep", "60"]))
    assert code == 500 and status_shape(b, 500, "InternalError")
    assert rest(kube_emulator, "GET", NS + "/pods/lost")[0] == 200  # it was created
    code, _, b = rest(kube_emulator, "POST", NS + "/pods", pod_manifest("lost", ["sleep", "60"]))
    assert code == 409 and status_shape(b, 409, "AlreadyExists")
    rest(kube_emulator, "DELETE", NS + "/pods/lost?gracePeriodSeconds=0")


# ---------------------------------------------------------------------------------------------
# python-kubernetes (Debian python3-kubernetes)

@pytest.fixture(scope="module")
def k8s(kube_emulator):
    kubernetes = pytest.importorskip(
        "kubernetes", reason="python3-kubernetes not installed (apt-get install "
        "python3-kubernetes)")
    from kubernetes import client, config
    api = config.new_client_from_config(config_file=kube_emulator.kubeconfig_https)
    return kubernetes, client.CoreV1Api(api)


def test_python_client_list_and_exec(kube_emulator, k8s):
    kubernetes, core = k8s
    from kubernetes.stream import stream
    create_running_pod(kube_emulator, "py-exec")
    names = [p.metadata.name for p in core.list_namespaced_pod("default",
                                                               label_selector="app=kt").items]
    assert "py-exec" in names
    out = stream(core.connect_get_namespaced_pod_exec, "py-exec", "default",
                 command=["sh", "-c", "echo hello; echo oops >&2"], stderr=True, stdin=False,
                 stdout=True, tty=False)
    assert "hello" in out and "oops" in out
    ws = stream(core.connect_get_namespaced_pod_exec, "py-exec", "default",
                command=["sh", "-c", "read x; echo got:$x; exit 7"], stderr=True, stdin=True,
                stdout=True, tty=False, _preload_content=False)
    ws.write_stdin("abc\n")  # a text frame (str), as python-kubernetes sends it
    ws.run_forever(timeout=10)
    assert "got:abc" in ws.read_stdout()
    assert ws.returncode == 7
    ws.close()
    with pytest.raises(kubernetes.client.exceptions.ApiException) as ei:
        core.read_namespaced_pod("nope", "default")
    assert ei.value.status == 404 and json.loads(ei.value.body)["reason"] == "NotFound"
    core.delete_namespaced_pod("py-exec", "default", grace_period_seconds=0)


def test_python_client_watch(kube_emulator, k8s):
    kubernetes, core = k8s
    from kubernetes import watch
    rv = core.list_namespaced_pod("default").metadata.resource_version
    seen = []
    w = watch.Watch()

    def run():
        for ev in w.stream(core.list_namespaced_pod, "default", resource_version=rv,
                           field_selector="metadata.name=py-watch", timeout_seconds=20):
            seen.append((ev["type"], ev["object"].status.phase))
            if ev["type"] == "DELETED":
                w.stop()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(0.3)
    core.create_namespaced_pod("default", pod_manifest("py-watch", ["sleep", "60"]))
    wait_for(lambda: any(p == "Running" for _, p in seen), what="Running seen")
    core.delete_namespaced_pod("py-watch", "default")
    t.join(20)
    types = [t_ for t_, _ in seen]
    assert types[0] == "ADDED" and "MODIFIED" in types and types[-1] == "DELETED", seen


def test_python_client_conflict_exception(kube_emulator, k8s):
    kubernetes, core = k8s
    from kubernetes import client
    api = config_api = None  # noqa: F841
    coord = client.CoordinationV1Api(core.api_client)
    body = client.V1Lease(metadata=client.V1ObjectMeta(name="pylease"),
                          spec=client.V1LeaseSpec(holder_identity="a"))
    l1 = coord.create_namespaced_lease("default", body)
    l1.spec.holder_identity = "b"
    coord.replace_namespaced_lease("pylease", "default", l1)
    l1.spec.holder_identity = "c"
    with pytest.raises(kubernetes.client.exceptions.ApiException) as ei:
        coord.replace_namespaced_lease("pylease", "default", l1)
    assert ei.value.status == 409 and json.loads(ei.value.body)["reason"] == "Conflict"
    coord.delete_namespaced_lease("pylease", "default")
