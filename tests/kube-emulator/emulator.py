#!/usr/bin/python3
"""kube-emulator — a small Kubernetes API server for sandboxd's tests.

Speaks enough of the Kubernetes API (v1.32) for kubectl 1.32/1.33 and python-kubernetes:
discovery, OpenAPI v3, namespaces, pods (+exec over WebSocket v5/v4, +log), networkpolicies and
coordination.k8s.io leases, watch, Table output and metav1.Status errors. Every pod runs as a
real local sandbox driven through `rtctl` (runtime/rtctl.c), so exec and `kubectl cp` execute for
real. See docs/internals/KUBE-EMULATOR.md.

    emulator.py --workdir DIR --rtctl build/runtime/rtctl --token TOKEN \
                [--http-port 0] [--https-port 0] [--state-dir SHORT_DIR] [--cgroup-prefix P]

On start it writes DIR/ready.json ({"http": url, "https": url, "token": .., "kubeconfig_http":
.., "kubeconfig_https": ..}). SIGTERM/SIGINT: kill every exec, destroy every sandbox, exit.
Only the standard library is used (Debian's /usr/bin/python3).
"""

import argparse
import base64
import copy
import datetime
import hashlib
import itertools
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler

LOG = None  # file for the request log (workdir/requests.log)
START = time.time()


def log(msg):
    if LOG:
        LOG.write("%.3f %s\n" % (time.time() - START, msg))
        LOG.flush()


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_bool(v):
    """apiserver rule: absent, "false" (any case) or "0" are false; anything else is true."""
    if v is None:
        return False
    return v.lower() not in ("false", "0")


# --------------------------------------------------------------------------------------------
# metav1.Status

class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def body(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason}
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def qualified(res):
    return res.plural if not res.group else "%s.%s" % (res.plural, res.group)


def details_for(res, name):
    d = {"name": name}
    if res.group:
        d["group"] = res.group
    d["kind"] = res.plural
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(res), name),
                    details_for(res, name))


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (qualified(res), name),
                    details_for(res, name))


def conflict(res, name, why=None):
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (qualified(res), name, why), details_for(res, name))


def invalid(res, name, field, ctype, msg):
    causes = [{"reason": ctype, "message": msg, "field": field}]
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s: %s' % (res.kind, name, field, msg),
                    {"name": name, **({"group": res.group} if res.group else {}),
                     "kind": res.kind, "causes": causes})


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


# --------------------------------------------------------------------------------------------
# resources

class Res:
    def __init__(self, plural, kind, group, version, namespaced, short=(), singular=None,
                 verbs=None, generation=True):
        self.plural, self.kind, self.group, self.version = plural, kind, group, version
        self.namespaced, self.short = namespaced, list(short)
        self.singular = singular or kind.lower()
        self.verbs = verbs or ["create", "delete", "deletecollection", "get", "list", "patch",
                               "update", "watch"]
        self.generation = generation

    @property
    def api_version(self):
        return self.version if not self.group else "%s/%s" % (self.group, self.version)

    @property
    def prefix(self):
        return "/api/v1" if not self.group else "/apis/%s/%s" % (self.group, self.version)


NAMESPACES = Res("namespaces", "Namespace", "", "v1", False, ["ns"], generation=False,
                 verbs=["create", "delete", "get", "list", "patch", "update", "watch"])
PODS = Res("pods", "Pod", "", "v1", True, ["po"], generation=True)
NETPOL = Res("networkpolicies", "NetworkPolicy", "networking.k8s.io", "v1", True, ["netpol"])
LEASES = Res("leases", "Lease", "coordination.k8s.io", "v1", True, generation=False)
RESOURCES = [NAMESPACES, PODS, NETPOL, LEASES]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
GROUPS = [("networking.k8s.io", "v1"), ("coordination.k8s.io", "v1")]

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --------------------------------------------------------------------------------------------
# selectors

def parse_label_selector(s):
    """Returns a predicate over a labels dict. Supports =, ==, !=, in, notin, exists, !exists."""
    reqs = []
    if not s:
        return lambda labels: True
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        p = p.strip()
        if not p:
            continue
        m = re.match(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$", p)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            k, op = m.group(1), m.group(2)
            reqs.append((lambda k, vals: (lambda l: l.get(k) in vals))(k, vals) if op == "in"
                        else (lambda k, vals: (lambda l: l.get(k) not in vals))(k, vals))
            continue
        m = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$", p)
        if m:
            k, op, v = m.groups()
            reqs.append((lambda k, v: (lambda l: l.get(k) == v))(k, v) if op != "!="
                        else (lambda k, v: (lambda l: l.get(k) != v))(k, v))
            continue
        m = re.match(r"^(!?)([A-Za-z0-9._/-]+)$", p)
        if m:
            k = m.group(2)
            reqs.append((lambda k: (lambda l: k not in l))(k) if m.group(1)
                        else (lambda k: (lambda l: k in l))(k))
            continue
        raise bad_request('unable to parse requirement: found \'%s\', expected: identifier' % p)
    return lambda labels: all(r(labels) for r in reqs)


FIELDS = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
}
POD_FIELDS = {
    "status.phase": lambda o: o.get("status", {}).get("phase", ""),
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
    "spec.restartPolicy": lambda o: o.get("spec", {}).get("restartPolicy", ""),
}


def parse_field_selector(s, res):
    if not s:
        return lambda o: True
    reqs = []
    for p in s.split(","):
        p = p.strip()
        if not p:
            continue
        m = re.match(r"^([^!=]+)(==|=|!=)(.*)$", p)
        if not m:
            raise bad_request('invalid selector: \'%s\'; can\'t understand \'%s\'' % (s, p))
        k, op, v = m.groups()
        getter = FIELDS.get(k) or (POD_FIELDS.get(k) if res is PODS else None)
        if getter is None:
            raise bad_request('"%s" is not a known field selector: only "%s"'
                              % (k, '", "'.join(list(FIELDS) + (list(POD_FIELDS) if res is PODS
                                                                 else []))))
        reqs.append((lambda g, v, neg: (lambda o: (g(o) == v) != neg))(getter, v, op == "!="))
    return lambda o: all(r(o) for r in reqs)


# --------------------------------------------------------------------------------------------
# the store

class Store:
    def __init__(self, history_max):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 1000
        self.compacted = self.rv  # watches from an RV below this get 410
        self.objs = {}            # (plural, ns, name) -> obj
        self.history = []         # (rv, type, res, obj, old)
        self.history_max = history_max
        self.watch_gen = 0        # bumped by the drop-watches fault

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def emit(self, etype, res, obj, old=None):
        self.history.append((int(obj["metadata"]["resourceVersion"]) if etype != "DELETED"
                             else self.rv, etype, res, copy.deepcopy(obj), old))
        while len(self.history) > self.history_max:
            self.compacted = self.history.pop(0)[0]
        self.cond.notify_all()

    def compact(self):
        with self.lock:
            self.history.clear()
            self.compacted = self.rv
            self.cond.notify_all()

    def get(self, res, ns, name):
        return self.objs.get((res.plural, ns if res.namespaced else "", name))

    def list(self, res, ns):
        out = [o for (pl, n, _), o in self.objs.items()
               if pl == res.plural and (ns is None or n == ns)]
        out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return out

    def put(self, res, obj, etype, old=None):
        md = obj["metadata"]
        md["resourceVersion"] = self.next_rv()
        self.objs[(res.plural, md.get("namespace", "") if res.namespaced else "", md["name"])] = obj
        self.emit(etype, res, obj, old)
        return obj

    def remove(self, res, obj):
        md = obj["metadata"]
        key = (res.plural, md.get("namespace", "") if res.namespaced else "", md["name"])
        if self.objs.get(key) is not obj:
            return False
        del self.objs[key]
        md["resourceVersion"] = self.next_rv()
        self.emit("DELETED", res, obj)
        return True


# --------------------------------------------------------------------------------------------
# sandboxes (pods) through rtctl

class Sandboxes:
    def __init__(self, rtctl, state_dir, prefix):
        self.rtctl, self.state_dir, self.prefix = rtctl, state_dir, prefix
        self.lock = threading.Lock()
        self.n = 0
        self.created = set()
        self.procs = set()        # every rtctl exec-stdio child (main + execs)
        self.plock = threading.Lock()

    def base(self):
        # -C: the pods see their own cgroups at /sys/fs/cgroup, as containers do
        return [self.rtctl, "-C", "-d", self.state_dir, "-p", self.prefix]

    def new_id(self):
        with self.lock:
            self.n += 1
            return "k%d" % self.n

    def create(self, sid, mem_mb=512, cpu_milli=1000):
        with self.lock:
            self.created.add(sid)
        # not a pipe: the spawner rtctl forks stays alive (parent of the sandbox init) and
        # would hold a pipe open
        with tempfile.TemporaryFile() as out:
            r = subprocess.run(self.base() + ["create", sid, str(mem_mb), str(cpu_milli), "512"],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            out.seek(0)
            msg = out.read().decode(errors="replace").strip()
        if r.returncode != 0:
            raise RuntimeError("rtctl create %s: %s" % (sid, msg))

    def destroy(self, sid):
        subprocess.run(self.base() + ["destroy", sid], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with self.lock:
            self.created.discard(sid)

    def spawn(self, sid, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, resize_fd=None):
        """`rtctl exec-stdio`; with resize_fd (the read end of a pipe taking "ROWS COLS" lines)
        `rtctl exec-tty` instead: one pty for stdin and the merged output."""
        if resize_fd is None:
            cmd, fds = ["exec-stdio", sid], ()
        else:
            cmd, fds = ["exec-tty", sid, "0", "0", str(resize_fd)], (resize_fd,)
        p = subprocess.Popen(self.base() + cmd + list(argv), stdin=stdin, stdout=stdout,
                             stderr=stderr, bufsize=0, pass_fds=fds)
        with self.plock:
            self.procs.add(p)
        return p

    def reap(self, p):
        with self.plock:
            self.procs.discard(p)

    def shutdown(self):
        with self.plock:
            procs = list(self.procs)
        for p in procs:
            try:
                p.kill()
            except Exception:
                pass
        with self.lock:
            sids = list(self.created)
        for sid in sids:
            self.destroy(sid)
        # anything left in our private state dir (e.g. after an emulator crash) is ours
        r = subprocess.run(self.base() + ["list"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        for line in r.stdout.splitlines():
            if line.split():
                subprocess.run(self.base() + ["destroy", line.split()[0]],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL)
        remove_cgroup_prefix(self.prefix)


QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
QUANTITY_MULT = {None: 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                 "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                 "Pi": 2**50, "Ei": 2**60}


def parse_quantity(q):
    """A resource.Quantity ("64Mi", "500m", "1.5", "67108864") as a number; None if invalid."""
    m = QUANTITY_RE.match(str(q).strip())
    return float(m.group(1)) * QUANTITY_MULT[m.group(2)] if m else None


def container_limits(pod):
    """The kubelet's view of containers[0].resources.limits: (memory MiB, CPU millicores), the
    node defaults (512 MiB, 1 CPU) where a limit is absent. The sandbox enforces both."""
    lim = (pod["spec"]["containers"][0].get("resources") or {}).get("limits") or {}
    mem, cpu = parse_quantity(lim.get("memory", "")), parse_quantity(lim.get("cpu", ""))
    mem_mb = max(1, -(-int(mem) // 2**20)) if mem else 512
    cpu_milli = max(1, int(round(cpu * 1000))) if cpu else 1000
    return mem_mb, cpu_milli


def remove_cgroup_prefix(prefix):
    """rmdir our (now empty) cgroup prefix directories; a non-empty one is left alone."""
    if not prefix or "/" in prefix or prefix in (".", ".."):
        return
    root = "/sys/fs/cgroup"
    try:
        ctrls = os.listdir(root)
    except OSError:
        return
    for c in ctrls:
        d = os.path.join(root, c, prefix)
        if not os.path.isdir(d):
            continue
        for dirpath, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


# --------------------------------------------------------------------------------------------
# faults

class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []      # dicts: path (regex), method, status, count, retry_after, message
        self.latency = []    # dicts: path, ms, count (-1 = forever)
        self.down_until = 0.0
        self.hits = 0
        self.pods_reset()

    def pods_reset(self):
        self.missing_images = set()  # images whose pull fails (besides *.invalid registries)
        self.start_delay = None      # seconds before a new pod's sandbox is created (None: CLI)
        self.ready_delay = 0.0       # seconds a new pod is Running but not Ready

    def image_missing(self, image):
        """A pull of `image` fails: it was named by the missing_images fault, or its registry
        host is under the reserved .invalid TLD (RFC 2606: no such host)."""
        host = image.split("/", 1)[0].rsplit(":", 1)[0] if "/" in image else ""
        return image in self.missing_images or host.endswith(".invalid")

    def take_error(self, method, path):
        with self.lock:
            for r in self.rules:
                if r["count"] == 0:
                    continue
                if r.get("method") and r["method"].upper() != method:
                    continue
                if r.get("path") and not re.search(r["path"], path):
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                self.hits += 1
                return dict(r)
        return None

    def take_latency(self, path):
        with self.lock:
            total = 0
            for r in self.latency:
                if r["count"] == 0:
                    continue
                if r.get("path") and not re.search(r["path"], path):
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                total += r["ms"]
            return total / 1000.0


def fault_error(rule, res, name):
    code = int(rule["status"])
    msg = rule.get("message")
    if code == 409:
        e = conflict(res, name or "unknown") if res else ApiError(409, "Conflict", msg or
                                                                  "injected conflict")
        if msg:
            e.message = msg
        return e
    if code == 429:
        ra = int(rule.get("retry_after", 1))
        return ApiError(429, "TooManyRequests", msg or "Too many requests, please try again later.",
                        {"causes": [{"message": "injected"}], "retryAfterSeconds": ra},
                        {"Retry-After": str(ra)})
    if code == 500:
        m = msg or "injected fault"
        return ApiError(500, "InternalError", "Internal error occurred: " + m,
                        {"causes": [{"message": m}]})
    if code == 503:
        return ApiError(503, "ServiceUnavailable", msg or "the server is currently unable to "
                        "handle the request", {"retryAfterSeconds": int(rule.get("retry_after", 1))},
                        {"Retry-After": str(int(rule.get("retry_after", 1)))})
    if code == 504:
        return ApiError(504, "Timeout", msg or "the server was unable to return a response in the "
                        "time allotted, but may still be processing the request")
    if code == 403:
        return ApiError(403, "Forbidden", msg or "forbidden (injected)")
    return ApiError(code, "InternalError" if code >= 500 else "BadRequest", msg or "injected fault")


# --------------------------------------------------------------------------------------------
# the emulator

class Emulator:
    def __init__(self, args):
        self.args = args
        self.store = Store(args.history)
        self.sb = Sandboxes(args.rtctl, args.state_dir, args.cgroup_prefix)
        self.faults = Faults()
        self.conns = set()
        self.clock = threading.Lock()
        self.pods = {}   # uid -> PodRuntime
        self.stopping = False
        md = self.meta_new(NAMESPACES, {"name": "default"}, None)
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": md,
              "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        with self.store.lock:
            self.store.put(NAMESPACES, ns, "ADDED")
        self.http_port = self.https_port = None

    # ---- connection tracking (restart fault) ----
    def track(self, sock):
        with self.clock:
            self.conns.add(sock)

    def untrack(self, sock):
        with self.clock:
            self.conns.discard(sock)

    def drop_connections(self, keep=None):
        with self.clock:
            conns = list(self.conns)
        for s in conns:
            if s is keep:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- metadata ----
    def meta_new(self, res, md, ns):
        md = dict(md or {})
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_iso()
        if res.generation:
            md["generation"] = 1
        if res.namespaced:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion",
                  "selfLink"):
            md.pop(k, None)
        if res is NAMESPACES:
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
        return md


class PodRuntime:
    """The sandbox behind one pod, its main process and its log. Its status moves as a kubelet
    would report it (every change a MODIFIED event): Pending (ContainerCreating while a start
    delay lasts) → (image pull
    failure: ErrImagePull ⇄ ImagePullBackOff until the image exists) → Running (Ready at once,
    or after the ready-delay fault) → Succeeded/Failed when the main process ends, the
    activeDeadlineSeconds pass (DeadlineExceeded) or a fault kills it (OOMKilled, Evicted)."""

    PULL_BACKOFF = (0.3, 1.0, 2.0, 4.0)  # seconds between pull attempts (the kubelet's: 10 s…5 min)

    def __init__(self, emu, pod):
        self.emu = emu
        self.uid = pod["metadata"]["uid"]
        self.ns, self.name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.sid = emu.sb.new_id()
        self.logpath = os.path.join(emu.args.workdir, "logs", "%s.log" % self.sid)
        open(self.logpath, "wb").close()
        self.main = None
        self.running = False     # sandbox up
        self.ended = threading.Event()  # main process finished (or killed)
        self.gone = False        # sandbox destroyed
        self.lock = threading.Lock()
        f = emu.faults
        self.start_delay = emu.args.start_delay if f.start_delay is None else f.start_delay
        self.ready_delay = f.ready_delay
        self.t_start = time.time()  # status.startTime

    def start(self, pod):
        threading.Thread(target=self._start, args=(copy.deepcopy(pod),), daemon=True).start()

    def _update(self, fn):
        st = self.emu.store
        with st.lock:
            cur = st.get(PODS, self.ns, self.name)
            if cur is None or cur["metadata"]["uid"] != self.uid:
                return None
            old = copy.deepcopy(cur)
            fn(cur)
            st.put(PODS, cur, "MODIFIED", old)
            return cur

    def _waiting(self, reason, message=None):
        """Pending: the containers wait (ContainerCreating, ErrImagePull, ImagePullBackOff)."""
        ts = now_iso()

        def waiting(p):
            s = p.setdefault("status", {})
            names = "[%s]" % " ".join(c["name"] for c in p["spec"]["containers"])
            s["conditions"] = [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": ts},
                {"type": "Initialized", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": ts}] + [
                {"type": t, "status": "False", "lastProbeTime": None, "lastTransitionTime": ts,
                 "reason": "ContainersNotReady",
                 "message": "containers with unready status: %s" % names}
                for t in ("Ready", "ContainersReady")] + [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": ts}]
            s["hostIP"] = "127.0.0.1"
            s["startTime"] = s.get("startTime") or ts
            w = {"reason": reason}
            if message:
                w["message"] = message
            s["containerStatuses"] = [{
                "name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                "restartCount": 0, "started": False, "state": {"waiting": dict(w)}}
                for c in p["spec"]["containers"]]
        return self._update(waiting) is not None

    def _pull(self, pod):
        """Pulls the images: returns False when the pod went away while the pull kept failing."""
        faults = self.emu.faults
        missing = lambda: [c.get("image", "") for c in pod["spec"]["containers"]
                           if faults.image_missing(c.get("image", ""))]
        for attempt in itertools.count():
            bad = missing()
            if not bad:
                return True
            ref = bad[0]
            msg = ('rpc error: code = NotFound desc = failed to pull and unpack image "%s": '
                   'failed to resolve reference "%s": %s: not found' % (ref, ref, ref))
            if not self._waiting("ErrImagePull", msg):
                return False
            wait = self.PULL_BACKOFF[min(attempt, len(self.PULL_BACKOFF) - 1)]
            if self.ended.wait(min(wait, 0.3)):
                return False
            if not self._waiting("ImagePullBackOff", 'Back-off pulling image "%s"' % ref):
                return False
            if self.ended.wait(wait):
                return False

    def _start(self, pod):
        # a start without delay goes straight to Running (the kubelet's status updates coalesce)
        if self.start_delay > 0 and not self._waiting("ContainerCreating"):
            return
        time.sleep(self.start_delay)
        if not self._pull(pod):
            return
        try:
            self.emu.sb.create(self.sid, *container_limits(pod))
        except Exception as e:  # pragma: no cover - reported in the pod status
            def failed(p):
                p["status"]["phase"] = "Failed"
                p["status"]["reason"] = "SandboxCreateFailed"
                p["status"]["message"] = str(e)
            self._update(failed)
            self.ended.set()
            return
        with self.lock:
            if self.gone:  # deleted while starting
                self.emu.sb.destroy(self.sid)
                return
            self.running = True
        c = pod["spec"]["containers"][0]
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        if argv:
            lf = open(self.logpath, "ab", buffering=0)
            self.main = self.emu.sb.spawn(self.sid, argv, stdin=subprocess.DEVNULL, stdout=lf,
                                          stderr=lf)
            lf.close()
        ts = now_iso()

        def running(ready):
            def fn(p):
                s = p.setdefault("status", {})
                s["phase"] = "Running"
                s["hostIP"] = s["podIP"] = "127.0.0.1"
                s["podIPs"] = [{"ip": "127.0.0.1"}]
                s["startTime"] = s.get("startTime") or ts
                rd = {"status": "True"} if ready else {
                    "status": "False", "reason": "ContainersNotReady",
                    "message": "containers with unready status: [%s]"
                    % " ".join(cc["name"] for cc in p["spec"]["containers"])}
                s["conditions"] = [
                    {"type": "PodReadyToStartContainers", "status": "True",
                     "lastProbeTime": None, "lastTransitionTime": ts},
                    {"type": "Initialized", "status": "True", "lastProbeTime": None,
                     "lastTransitionTime": ts},
                    dict({"type": "Ready", "lastProbeTime": None,
                          "lastTransitionTime": now_iso()}, **rd),
                    dict({"type": "ContainersReady", "lastProbeTime": None,
                          "lastTransitionTime": now_iso()}, **rd),
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                     "lastTransitionTime": ts}]
                s["containerStatuses"] = [{
                    "name": cc["name"], "image": cc.get("image", ""), "imageID": "",
                    "containerID": "sandboxd://%s" % self.sid, "ready": ready, "started": True,
                    "restartCount": 0, "state": {"running": {"startedAt": ts}}}
                    for cc in p["spec"]["containers"]]
            return fn
        if self.ready_delay > 0:
            self._update(running(False))
            if self.ended.wait(self.ready_delay):
                return
        self._update(running(True))
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline:  # counted from status.startTime, as the kubelet does
            t = threading.Timer(max(0.0, float(deadline) - (time.time() - self.t_start)),
                                self.fail, kwargs={"pod_reason": "DeadlineExceeded",
                                                   "message": "Pod was active on the node longer "
                                                   "than the specified deadline"})
            t.daemon = True
            t.start()
        if self.main is not None:
            rc = self.main.wait()
            if rc < 0:  # rtctl itself killed (kill fault): report it like a SIGKILLed container
                rc = 128 - rc
            self.emu.sb.reap(self.main)
            self.finish(rc)

    def finish(self, rc, reason=None, pod_reason=None, message=None, disruption=None):
        """The pod ends: Succeeded (rc 0) or Failed, containers terminated with rc/reason;
        pod_reason/message become status.reason/message (Evicted, DeadlineExceeded) and
        disruption a DisruptionTarget condition (its reason)."""
        if self.ended.is_set():
            return
        self.ended.set()
        ts = now_iso()

        def term(p):
            if p["metadata"].get("deletionTimestamp"):
                return
            s = p["status"]
            s["phase"] = "Succeeded" if rc == 0 else "Failed"
            if pod_reason:
                s["reason"], s["message"] = pod_reason, message or ""
            for cond in s.get("conditions", []):
                if cond["type"] in ("Ready", "ContainersReady"):
                    cond["status"] = "False"
                    cond["reason"] = "PodCompleted" if rc == 0 else "PodFailed"
                    cond.pop("message", None)
                    cond["lastTransitionTime"] = ts
                if cond["type"] == "PodReadyToStartContainers":
                    cond["status"] = "False"
                    cond["lastTransitionTime"] = ts
            if disruption:
                s.setdefault("conditions", []).insert(0, {
                    "type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                    "lastTransitionTime": ts, "reason": disruption, "message": message or ""})
            for cs in s.get("containerStatuses", []):
                cs["ready"] = False
                cs["started"] = False
                cs["state"] = {"terminated": {
                    "exitCode": rc, "reason": reason or ("Completed" if rc == 0 else "Error"),
                    "startedAt": cs.get("state", {}).get("running", {}).get("startedAt", ts),
                    "finishedAt": ts, "containerID": cs.get("containerID", "")}}
        self._update(term)

    def fail(self, reason="Error", pod_reason=None, message=None, disruption=None):
        """Out of band, as the kubelet does it: the containers are killed (exit 137) and the pod
        goes Failed with the given container reason (Error, OOMKilled) and pod reason (Evicted,
        DeadlineExceeded). The status is written first, so the main process's own exit cannot
        report another reason."""
        if self.ended.is_set():
            return
        self.finish(137, reason, pod_reason, message, disruption)
        with self.lock:
            self.gone = True
            was = self.running
            self.running = False
        if self.main is not None:
            try:
                self.main.kill()
            except Exception:
                pass
        if was:
            self.emu.sb.destroy(self.sid)

    def destroy(self):
        with self.lock:
            self.gone = True
            was = self.running
            self.running = False
        self.ended.set()
        if self.main is not None:
            try:
                self.main.kill()
            except Exception:
                pass
        if was:
            self.emu.sb.destroy(self.sid)


# --------------------------------------------------------------------------------------------
# documents

def discovery_api(emu, handler):
    host = handler.headers.get("Host", "127.0.0.1")
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}


def discovery_apis():
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v}],
         "preferredVersion": {"groupVersion": "%s/%s" % (g, v), "version": v}}
        for g, v in GROUPS]}


def resource_entry(r):
    e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
         "kind": r.kind, "verbs": r.verbs}
    if r.short:
        e["shortNames"] = r.short
    if r is PODS:
        e["categories"] = ["all"]
    return e


def discovery_group(group, version):
    res = [resource_entry(r) for r in RESOURCES if r.group == group and r.version == version]
    if group == "":
        res += [
            {"name": "pods/exec", "singularName": "", "namespaced": True,
             "kind": "PodExecOptions", "verbs": ["create", "get"]},
            {"name": "pods/attach", "singularName": "", "namespaced": True,
             "kind": "PodAttachOptions", "verbs": ["create", "get"]},
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
             "verbs": ["get"]},
            {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
             "verbs": ["get", "patch", "update"]},
            {"name": "namespaces/status", "singularName": "", "namespaced": False,
             "kind": "Namespace", "verbs": ["get", "patch", "update"]}]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": version if not group else "%s/%s" % (group, version),
            "resources": res}


def gv_key(group, version):
    return "api/v1" if not group else "apis/%s/%s" % (group, version)


def openapi_root():
    paths = {}
    for g, v in [("", "v1")] + GROUPS:
        k = gv_key(g, v)
        h = hashlib.sha256(k.encode()).hexdigest()[:16].upper()
        paths[k] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (k, h)}
    return {"paths": paths}


def openapi_gv(group, version):
    fv = [{"name": "fieldValidation", "in": "query",
           "schema": {"type": "string", "uniqueItems": True}}]
    paths = {}
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        gvk = {"group": group, "version": version, "kind": r.kind}
        coll = "%s/%s%s" % (r.prefix, "namespaces/{namespace}/" if r.namespaced else "", r.plural)
        op = "%s%s%s" % ("" if not group else group.split(".")[0].capitalize(),
                         version.capitalize(), r.kind)
        paths[coll] = {"post": {"operationId": "create%s" % op, "parameters": fv,
                                "x-kubernetes-action": "post",
                                "x-kubernetes-group-version-kind": gvk, "responses": {}}}
        paths[coll + "/{name}"] = {
            "patch": {"operationId": "patch%s" % op, "parameters": fv,
                      "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                      "responses": {}},
            "put": {"operationId": "replace%s" % op, "parameters": fv,
                    "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk,
                    "responses": {}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths, "components": {"schemas": {}}}


VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4",
           "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335", "gitTreeState": "clean",
           "buildDate": "2025-04-22T16:02:27Z", "goVersion": "go1.23.6", "compiler": "gc",
           "platform": "linux/amd64"}


def age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except Exception:
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if s < 120:
        return "%ds" % max(s, 0)
    if s < 3600:
        return "%dm" % (s // 60)
    if s < 86400:
        return "%dh" % (s // 3600)
    return "%dd" % (s // 86400)


def pod_status_word(p):
    if p["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = p.get("status", {})
    for cs in st.get("containerStatuses", []):
        w = cs.get("state", {}).get("waiting")
        if w and w.get("reason"):
            return w["reason"]
        t = cs.get("state", {}).get("terminated")
        if t:
            return t.get("reason") or "Error"
    return st.get("reason") or st.get("phase", "Pending")


def table_for(res, objs, rv):
    partial = lambda o: {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": o["metadata"]}
    col = lambda n, d="", pr=0, fmt="": {"name": n, "type": "string", "format": fmt,
                                       "description": d, "priority": pr}
    if res is PODS:
        cols = [col("Name", "Name must be unique within a namespace.", 0, "name"),
                col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
                col("Status", "The aggregate status of the containers in this pod."),
                col("Restarts", "The number of times the containers in this pod have been "
                    "restarted and when the last container in this pod has restarted."),
                col("Age", "CreationTimestamp is a timestamp representing the server time when "
                    "this object was created."),
                col("IP", "IP address allocated to the pod.", 1),
                col("Node", "Name of the node this pod is running on.", 1)]
        rows = []
        for o in objs:
            css = o.get("status", {}).get("containerStatuses", [])
            n = len(o.get("spec", {}).get("containers", []))
            ready = sum(1 for c in css if c.get("ready"))
            rows.append({"cells": [o["metadata"]["name"], "%d/%d" % (ready, n),
                                   pod_status_word(o), "0",
                                   age(o["metadata"].get("creationTimestamp", "")),
                                   o.get("status", {}).get("podIP", "<none>"),
                                   o.get("spec", {}).get("nodeName", "<none>")],
                         "object": partial(o)})
    elif res is NAMESPACES:
        cols = [col("Name", "", 0, "name"), col("Status"), col("Age")]
        rows = [{"cells": [o["metadata"]["name"], o.get("status", {}).get("phase", ""),
                           age(o["metadata"].get("creationTimestamp", ""))],
                 "object": partial(o)} for o in objs]
    elif res is LEASES:
        cols = [col("Name", "", 0, "name"), col("Holder"), col("Age")]
        rows = [{"cells": [o["metadata"]["name"],
                           (o.get("spec") or {}).get("holderIdentity", ""),
                           age(o["metadata"].get("creationTimestamp", ""))],
                 "object": partial(o)} for o in objs]
    else:
        cols = [col("Name", "", 0, "name"), col("Pod-Selector"), col("Age")]
        rows = []
        for o in objs:
            sel = ((o.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
            rows.append({"cells": [o["metadata"]["name"],
                                   ",".join("%s=%s" % kv for kv in sorted(sel.items()))
                                   or "<none>",
                                   age(o["metadata"].get("creationTimestamp", ""))],
                         "object": partial(o)})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": cols, "rows": rows}


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)

    def walk(path):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1]
    for op in ops:
        parent, key = walk(op["path"])
        o = op["op"]
        if isinstance(parent, list):
            idx = len(parent) if key == "-" else int(key)
            if o == "add":
                parent.insert(idx, op["value"])
            elif o == "remove":
                parent.pop(idx)
            elif o == "replace":
                parent[idx] = op["value"]
            elif o == "test" and parent[idx] != op["value"]:
                raise ApiError(422, "Invalid", "the server rejected our request due to an error "
                               "in our request")
        else:
            if o in ("add", "replace"):
                if o == "replace" and key not in parent:
                    raise ApiError(422, "Invalid", "the server rejected our request due to an "
                                   "error in our request")
                parent[key] = op["value"]
            elif o == "remove":
                if key not in parent:
                    raise ApiError(422, "Invalid", "the server rejected our request due to an "
                                   "error in our request")
                del parent[key]
            elif o == "test" and parent.get(key) != op["value"]:
                raise ApiError(422, "Invalid", "the server rejected our request due to an error "
                               "in our request")
    return doc


# --------------------------------------------------------------------------------------------
# WebSocket (RFC 6455, server side)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsClosed(Exception):
    pass


class WebSocket:
    def __init__(self, rfile, sock):
        self.rfile, self.sock = rfile, sock
        self.wlock = threading.Lock()
        self.closed_sent = False

    def _read(self, n):
        b = self.rfile.read(n)
        if b is None or len(b) < n:
            raise WsClosed()
        return b

    def recv(self):
        """One whole message: (opcode, payload). Control frames are returned as they come."""
        buf, mop = b"", None
        while True:
            h = self._read(2)
            fin, op = h[0] & 0x80, h[0] & 0x0F
            masked, ln = h[1] & 0x80, h[1] & 0x7F
            if ln == 126:
                ln = struct.unpack(">H", self._read(2))[0]
            elif ln == 127:
                ln = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if masked else None
            data = self._read(ln) if ln else b""
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if ln < 64 else \
                    (int.from_bytes(data, "big") ^ int.from_bytes(
                        (mask * (ln // 4 + 1))[:ln], "big")).to_bytes(ln, "big")
            if op >= 8:
                return op, data
            if op != 0:
                mop = op
            buf += data
            if fin:
                return mop, buf

    def send(self, op, data):
        n = len(data)
        if n < 126:
            h = struct.pack(">BB", 0x80 | op, n)
        elif n < 65536:
            h = struct.pack(">BBH", 0x80 | op, 126, n)
        else:
            h = struct.pack(">BBQ", 0x80 | op, 127, n)
        with self.wlock:
            if self.closed_sent:
                raise WsClosed()
            if op == 8:
                self.closed_sent = True
            self.sock.sendall(h + data)


# --------------------------------------------------------------------------------------------
# HTTP

class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, emu, tls_ctx=None):
        self.emu, self.tls_ctx = emu, tls_ctx
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        self.emu.track(request)
        # headers and body go out in separate writes: without this, Nagle + the client's
        # delayed ACK add ~40 ms to every answer
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if time.time() < self.emu.faults.down_until:
                request.close()
                return
            if self.tls_ctx is not None:
                request.settimeout(10)
                try:
                    request = self.tls_ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                request.settimeout(None)
                self.emu.track(request)
            self.RequestHandlerClass(request, client_address, self)
        finally:
            self.emu.untrack(request)

    def handle_error(self, request, client_address):
        log("handler error: %s" % traceback.format_exc().replace("\n", " | "))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-emulator"
    sys_version = ""

    def log_message(self, fmt, *a):
        pass

    @property
    def emu(self):
        return self.server.emu

    # ---- responses ----
    def send_json(self, code, obj, headers=None):
        rule = getattr(self, "after_rule", None)
        if rule and 200 <= code < 300:
            # an "after" fault: the request took effect, its answer is lost to an error
            self.after_rule = None
            e = fault_error(rule, *self.res_name_of_path())
            code, obj, headers = e.code, e.body(), e.headers
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_status(self, e):
        self.send_json(e.code, e.body(), e.headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                ln = int(self.rfile.readline().strip().split(b";")[0], 16)
                if ln == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(ln)
                self.rfile.readline()
            return data
        return self.rfile.read(n) if n else b""

    def json_body(self, required=True):
        raw = self.read_body()
        if not raw:
            if required:
                raise bad_request("the body of the request was in an unknown format - accepted "
                                  "media types include: application/json, application/yaml")
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            ct = self.headers.get("Content-Type", "")
            if "yaml" in ct:
                try:
                    import yaml
                    return yaml.safe_load(raw)
                except Exception:
                    pass
            raise bad_request("json: cannot unmarshal the request body: %s" % e)

    # ---- dispatch ----
    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def dispatch(self):
        u = urllib.parse.urlsplit(self.path)
        self.upath = u.path.rstrip("/") or "/"
        self.q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        log("%s %s %s" % (self.command, self.path, "tls" if self.server.tls_ctx else "plain"))
        try:
            if self.upath.startswith("/_emulator/"):
                return self.control()
            self.check_auth()
            lat = self.emu.faults.take_latency(self.upath)
            if lat:
                time.sleep(lat)
            rule = self.emu.faults.take_error(self.command, self.upath)
            self.after_rule = rule if rule and rule.get("after") else None
            if rule and not self.after_rule:
                res, name = self.res_name_of_path()
                if self.headers.get("Content-Length"):
                    self.read_body()
                raise fault_error(rule, res, name)
            self.route()
        except ApiError as e:
            try:
                if self.command in ("POST", "PUT", "PATCH", "DELETE") and \
                        not getattr(self, "_body_read", False):
                    pass
                self.send_error_status(e)
            except OSError:
                pass
        except (OSError, WsClosed):
            self.close_connection = True
        except Exception as e:
            log("internal error: %s" % traceback.format_exc().replace("\n", " | "))
            try:
                self.send_error_status(ApiError(500, "InternalError",
                                                "Internal error occurred: %s" % e,
                                                {"causes": [{"message": str(e)}]}))
            except OSError:
                pass

    def check_auth(self):
        need = self.server.tls_ctx is not None or self.emu.args.http_auth
        if not need:
            return
        auth = self.headers.get("Authorization", "")
        if auth != "Bearer " + self.emu.args.token:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def res_name_of_path(self):
        m = re.match(r"^/(?:api/v1|apis/([^/]+)/([^/]+))(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?",
                     self.upath)
        if not m:
            return None, None
        g, v = m.group(1) or "", m.group(2) or "v1"
        res = BY_PATH.get((g, v, m.group(4)))
        if res is None and m.group(3) and not m.group(4):
            return NAMESPACES, m.group(3)
        return res, m.group(5)

    def route(self):
        p, m = self.upath, self.command
        if m in ("GET", "HEAD"):
            if p == "/version":
                return self.send_json(200, VERSION)
            if p in ("/healthz", "/readyz", "/livez"):
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                return self.wfile.write(body)
            if p == "/api":
                return self.send_json(200, discovery_api(self.emu, self))
            if p == "/apis":
                return self.send_json(200, discovery_apis())
            if p == "/api/v1":
                return self.send_json(200, discovery_group("", "v1"))
            if p.startswith("/apis/") and p.count("/") == 3:
                _, _, g, v = p.split("/")
                if (g, v) in GROUPS:
                    return self.send_json(200, discovery_group(g, v))
            if p.startswith("/apis/") and p.count("/") == 2:
                g = p.split("/")[2]
                for gg, v in GROUPS:
                    if gg == g:
                        return self.send_json(200, {
                            "kind": "APIGroup", "apiVersion": "v1", "name": g,
                            "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v}],
                            "preferredVersion": {"groupVersion": "%s/%s" % (g, v),
                                                 "version": v}})
            if p == "/openapi/v3":
                return self.send_json(200, openapi_root())
            if p.startswith("/openapi/v3/"):
                k = p[len("/openapi/v3/"):]
                for g, v in [("", "v1")] + GROUPS:
                    if gv_key(g, v) == k:
                        return self.send_json(200, openapi_gv(g, v))
        # resources
        m_ = re.match(r"^/(?:api/(v1)|apis/([^/]+)/([^/]+))(/.*)?$", p)
        if not m_:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        g, v = (m_.group(2) or "", m_.group(3)) if m_.group(2) else ("", "v1")
        parts = [x for x in (m_.group(4) or "").split("/") if x]
        ns = None
        if len(parts) >= 2 and parts[0] == "namespaces" and len(parts) != 2 and \
                (g, v, parts[2] if len(parts) > 2 else "") in BY_PATH:
            ns = urllib.parse.unquote(parts[1])
            parts = parts[2:]
        if not parts:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        res = BY_PATH.get((g, v, parts[0]))
        if res is None or (ns is not None and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        name = urllib.parse.unquote(parts[1]) if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        if len(parts) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        if res.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        if sub:
            if res is PODS and sub == "exec":
                return self.pod_exec(ns, name)
            if res is PODS and sub == "attach":
                raise bad_request("attach is not supported by the emulator")
            if res is PODS and sub == "log":
                return self.pod_log(ns, name)
            if sub == "status" and m in ("GET", "PUT", "PATCH"):
                return self.obj_get(res, ns, name) if m == "GET" else \
                    self.obj_update(res, ns, name, status_only=True)
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        if name is None:
            if m in ("GET", "HEAD"):
                if go_bool(self.qget("watch")):
                    return self.watch(res, ns)
                return self.obj_list(res, ns)
            if m == "POST":
                if res.namespaced and ns is None:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this "
                                   "method on the requested resource", {})
                return self.obj_create(res, ns)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                           "the requested resource", {})
        if m in ("GET", "HEAD"):
            return self.obj_get(res, ns, name)
        if m in ("PUT", "PATCH"):
            return self.obj_update(res, ns, name)
        if m == "DELETE":
            return self.obj_delete(res, ns, name)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource", {})

    def qget(self, k, default=None):
        v = self.q.get(k)
        return v[-1] if v else default

    def wants_table(self):
        return "as=Table" in self.headers.get("Accept", "")

    # ---- CRUD ----
    def need_ns(self, ns):
        if ns is not None and self.emu.store.get(NAMESPACES, "", ns) is None:
            raise not_found(NAMESPACES, ns)

    def obj_get(self, res, ns, name):
        st = self.emu.store
        with st.lock:
            o = st.get(res, ns, name)
            if o is None:
                raise not_found(res, name)
            o = copy.deepcopy(o)
        if self.wants_table():
            return self.send_json(200, table_for(res, [o], o["metadata"]["resourceVersion"]))
        self.send_json(200, o)

    def obj_list(self, res, ns):
        st = self.emu.store
        lsel = parse_label_selector(self.qget("labelSelector"))
        fsel = parse_field_selector(self.qget("fieldSelector"), res)
        limit = int(self.qget("limit") or 0)
        cont = self.qget("continue")
        with st.lock:
            items = [copy.deepcopy(o) for o in st.list(res, ns)
                     if lsel(o["metadata"].get("labels") or {}) and fsel(o)]
            rv = str(st.rv)
        if cont:
            try:
                after = json.loads(base64.urlsafe_b64decode(cont + "==").decode())
            except Exception:
                raise bad_request("continue key is not valid")
            items = [o for o in items if (o["metadata"].get("namespace", ""),
                                          o["metadata"]["name"]) > tuple(after["k"])]
            rv = after["rv"]
        md = {"resourceVersion": rv}
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            items = items[:limit]
            md["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"k": [last.get("namespace", ""), last["name"]], "rv": rv}).encode()
            ).decode().rstrip("=")
            md["remainingItemCount"] = 0
        if self.wants_table():
            t = table_for(res, items, rv)
            t["metadata"] = md
            return self.send_json(200, t)
        self.send_json(200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                             "metadata": md,
                             "items": [dict(o, kind=res.kind, apiVersion=res.api_version)
                                       for o in items]})

    def strict_check(self, res, body):
        fv = self.qget("fieldValidation", "")
        if fv.lower() != "strict":
            return
        allowed = {"apiVersion", "kind", "metadata", "spec", "status"}
        if res is NAMESPACES:
            allowed = {"apiVersion", "kind", "metadata", "spec", "status"}
        for k in body:
            if k not in allowed:
                raise bad_request('%s in version "%s" cannot be handled as a %s: strict '
                                  'decoding error: unknown field "%s"'
                                  % (res.kind, res.version, res.kind, k))

    def validate(self, res, body, name):
        if res is PODS:
            cs = (body.get("spec") or {}).get("containers")
            if not cs:
                raise invalid(res, name, "spec.containers", "FieldValueRequired",
                              "Required value")
            for i, c in enumerate(cs):
                if not c.get("name"):
                    raise invalid(res, name, "spec.containers[%d].name" % i,
                                  "FieldValueRequired", "Required value")
                if not c.get("image"):
                    raise invalid(res, name, "spec.containers[%d].image" % i,
                                  "FieldValueRequired", "Required value")
        if res is NETPOL and "podSelector" not in (body.get("spec") or {}):
            body.setdefault("spec", {})["podSelector"] = {}

    def obj_create(self, res, ns):
        body = self.json_body()
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        if body.get("kind") and body.get("kind") != res.kind:
            raise bad_request('the API version in the data (%s) does not match the expected '
                              'API version (%s)' % (body.get("apiVersion"), res.api_version)
                              if body.get("apiVersion") != res.api_version else
                              "%s in version \"%s\" cannot be handled as a %s: no kind \"%s\" "
                              "is registered" % (res.kind, res.version, res.kind, body["kind"]))
        self.strict_check(res, body)
        md = body.get("metadata") or {}
        if res.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        st = self.emu.store
        with st.lock:
            if res.namespaced:
                self.need_ns(ns)
                nso = st.get(NAMESPACES, "", ns)
                if nso.get("status", {}).get("phase") == "Terminating":
                    raise ApiError(403, "Forbidden", '%s "%s" is forbidden: unable to create new '
                                   'content in namespace %s because it is being terminated'
                                   % (qualified(res), md.get("name", ""), ns),
                                   {"name": md.get("name", ""), "kind": res.plural,
                                    "causes": [{"reason": "NamespaceTerminating",
                                                "message": "namespace %s is being terminated"
                                                % ns, "field": "metadata.namespace"}]})
            name = md.get("name")
            if not name and md.get("generateName"):
                while True:
                    name = md["generateName"] + "".join(
                        "bcdfghjklmnpqrstvwxz2456789"[b % 27] for b in os.urandom(5))
                    if st.get(res, ns, name) is None:
                        break
            if not name:
                raise invalid(res, "", "metadata.name", "FieldValueRequired",
                              "Required value: name or generateName is required")
            if not NAME_RE.match(name) or len(name) > 253 or \
                    (res in (NAMESPACES,) and not LABEL_NAME_RE.match(name)):
                raise invalid(res, name, "metadata.name", "FieldValueInvalid",
                              'Invalid value: "%s": a lowercase RFC 1123 subdomain must consist '
                              'of lower case alphanumeric characters, \'-\' or \'.\', and must '
                              'start and end with an alphanumeric character' % name)
            self.validate(res, body, name)
            if st.get(res, ns, name) is not None:
                raise already_exists(res, name)
            md = dict(md, name=name)
            obj = {"kind": res.kind, "apiVersion": res.api_version}
            obj.update(copy.deepcopy(body))
            obj["kind"], obj["apiVersion"] = res.kind, res.api_version
            obj["metadata"] = self.emu.meta_new(res, md, ns)
            if res is PODS:
                spec = obj["spec"]
                spec.setdefault("restartPolicy", "Always")
                spec.setdefault("terminationGracePeriodSeconds", 30)
                spec.setdefault("dnsPolicy", "ClusterFirst")
                spec.setdefault("schedulerName", "default-scheduler")
                spec.setdefault("nodeName", "emulator")
                for c in spec["containers"]:
                    c.setdefault("imagePullPolicy", "IfNotPresent")
                    c.setdefault("terminationMessagePath", "/dev/termination-log")
                    c.setdefault("terminationMessagePolicy", "File")
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort",
                                 "conditions": [{"type": "PodScheduled", "status": "True",
                                                 "lastProbeTime": None,
                                                 "lastTransitionTime": now_iso()}]}
            elif res is NAMESPACES:
                obj["spec"] = {"finalizers": ["kubernetes"]}
                obj["status"] = {"phase": "Active"}
            else:
                obj.pop("status", None)
            dry = "All" in self.q.get("dryRun", [])
            if not dry:
                st.put(res, obj, "ADDED")
                if res is PODS:
                    pr = PodRuntime(self.emu, obj)
                    self.emu.pods[obj["metadata"]["uid"]] = pr
                    pr.start(obj)
            obj = copy.deepcopy(obj)
        self.send_json(201, obj)

    def obj_update(self, res, ns, name, status_only=False):
        ct = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        st = self.emu.store
        if self.command == "PATCH" and ct == "application/apply-patch+yaml":
            raise ApiError(415, "UnsupportedMediaType", "the emulator does not implement "
                           "server-side apply (application/apply-patch+yaml)", {})
        if self.command == "PATCH" and ct not in ("application/merge-patch+json",
                                                  "application/strategic-merge-patch+json",
                                                  "application/json-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                           "unknown format - accepted media types include: "
                           "application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml", {})
        body = self.json_body()
        with st.lock:
            cur = st.get(res, ns, name)
            if cur is None:
                raise not_found(res, name)
            if self.command == "PUT":
                if not isinstance(body, dict):
                    raise bad_request("the body of the request was in an unknown format")
                self.strict_check(res, body)
                new = copy.deepcopy(body)
                bmd = new.get("metadata") or {}
                if bmd.get("name") and bmd["name"] != name:
                    raise bad_request("the name of the object (%s) does not match the name on "
                                      "the URL (%s)" % (bmd["name"], name))
            elif ct == "application/json-patch+json":
                new = json_patch(cur, body)
                bmd = new.get("metadata") or {}
            else:
                if not isinstance(body, dict):
                    raise bad_request("the body of the request was in an unknown format")
                new = merge_patch(cur, body)
                bmd = (body.get("metadata") or {})
            want_rv = bmd.get("resourceVersion")
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if self.command == "PUT" and bmd.get("uid") and bmd["uid"] != cur["metadata"]["uid"]:
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in "
                               "object meta: %s" % (bmd["uid"], cur["metadata"]["uid"]))
            old = copy.deepcopy(cur)
            md = dict(new.get("metadata") or {})
            keep = ("uid", "creationTimestamp", "namespace", "name", "generation",
                    "deletionTimestamp", "deletionGracePeriodSeconds")
            for k in keep:
                if k in cur["metadata"]:
                    md[k] = cur["metadata"][k]
                else:
                    md.pop(k, None)
            new["metadata"] = md
            new["kind"], new["apiVersion"] = res.kind, res.api_version
            if status_only:
                final = copy.deepcopy(cur)
                final["status"] = new.get("status", {})
                new = final
            else:
                if "status" in cur:
                    new["status"] = cur["status"]
                if res is PODS:
                    # only a few pod spec fields are mutable; keep the rest
                    spec = copy.deepcopy(cur["spec"])
                    for c, nc in zip(spec["containers"],
                                     (new.get("spec") or {}).get("containers", [])):
                        if "image" in nc:
                            c["image"] = nc["image"]
                    if "activeDeadlineSeconds" in (new.get("spec") or {}):
                        spec["activeDeadlineSeconds"] = new["spec"]["activeDeadlineSeconds"]
                    new["spec"] = spec
                if res.generation and new.get("spec") != cur.get("spec"):
                    new["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
            cur.clear()
            cur.update(new)
            dry = "All" in self.q.get("dryRun", [])
            if not dry:
                st.put(res, cur, "MODIFIED", old)
            out = copy.deepcopy(cur)
        self.send_json(200, out)

    def obj_delete(self, res, ns, name):
        body = self.json_body(required=False) or {}
        grace = self.qget("gracePeriodSeconds")
        grace = int(grace) if grace is not None else body.get("gracePeriodSeconds")
        pre = body.get("preconditions") or {}
        st = self.emu.store
        with st.lock:
            cur = st.get(res, ns, name)
            if cur is None:
                raise not_found(res, name)
            if pre.get("uid") and pre["uid"] != cur["metadata"]["uid"]:
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in "
                               "object meta: %s" % (pre["uid"], cur["metadata"]["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != \
                    cur["metadata"]["resourceVersion"]:
                raise conflict(res, name, "Precondition failed: ResourceVersion in "
                               "precondition: %s, ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], cur["metadata"]["resourceVersion"]))
            if res is PODS:
                out = self.emu.delete_pod(cur, grace)
                return self.send_json(200, out)
            if res is NAMESPACES:
                if name == "default":
                    raise ApiError(403, "Forbidden", 'namespaces "default" is forbidden: this '
                                   'namespace may not be deleted', {"name": name,
                                                                   "kind": "namespaces"})
                out = self.emu.delete_namespace(cur)
                return self.send_json(200, out)
            st.remove(res, cur)
            uid = cur["metadata"]["uid"]
        d = details_for(res, name)
        d["uid"] = uid
        self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Success", "details": d})

    # ---- watch ----
    def start_chunked(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def watch(self, res, ns):
        st = self.emu.store
        lsel = parse_label_selector(self.qget("labelSelector"))
        fsel = parse_field_selector(self.qget("fieldSelector"), res)
        match = lambda o: o is not None and lsel(o["metadata"].get("labels") or {}) and fsel(o)
        rv = self.qget("resourceVersion")
        timeout = self.qget("timeoutSeconds")
        timeout = float(timeout) if timeout else self.emu.args.watch_timeout
        deadline = time.time() + timeout
        bookmarks = go_bool(self.qget("allowWatchBookmarks"))
        table = self.wants_table()
        initial = []
        with st.lock:
            gen = st.watch_gen
            if not rv or rv == "0":
                initial = [copy.deepcopy(o) for o in st.list(res, ns) if match(o)]
                pos = st.rv
            else:
                try:
                    pos = int(rv)
                except ValueError:
                    raise bad_request('invalid resource version: "%s"' % rv)
                if pos < st.compacted:
                    too_old = True
                else:
                    too_old = False
        self.start_chunked("application/json")
        self.close_connection = True

        def send(etype, obj):
            if table and etype != "ERROR" and etype != "BOOKMARK":
                obj = table_for(res, [obj], obj["metadata"]["resourceVersion"])
            self.chunk(json.dumps({"type": etype, "object": obj},
                                  separators=(",", ":")).encode() + b"\n")
        if rv and rv != "0" and too_old:
            send("ERROR", ApiError(410, "Expired", "too old resource version: %s (%d)"
                                   % (rv, st.compacted)).body())
            self.end_chunked()
            return
        for o in initial:
            send("ADDED", dict(o, kind=res.kind, apiVersion=res.api_version))
        last_bm = time.time()
        while True:
            events = []
            with st.lock:
                while True:
                    if st.watch_gen != gen or self.emu.stopping:
                        # dropped: cut the connection without the final chunk
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    if pos < st.compacted:
                        events = None
                        break
                    events = [e for e in st.history if e[0] > pos and e[2] is res]
                    newpos = st.rv
                    if events:
                        break
                    left = deadline - time.time()
                    if left <= 0:
                        break
                    wait = left
                    if bookmarks:
                        wait = min(wait, max(0.05, self.emu.args.bookmark_interval -
                                             (time.time() - last_bm)))
                    if wait <= 0 or (bookmarks and time.time() - last_bm >=
                                     self.emu.args.bookmark_interval):
                        break
                    st.cond.wait(wait)
                cur_rv = st.rv
            if events is None:
                send("ERROR", ApiError(410, "Expired", "too old resource version: %d (%d)"
                                       % (pos, st.compacted)).body())
                break
            for (erv, etype, _, obj, old) in events:
                if res.namespaced and ns is not None and obj["metadata"].get("namespace") != ns:
                    continue
                now_m, old_m = match(obj), match(old) if old is not None else False
                if etype == "MODIFIED":
                    if now_m and not old_m:
                        etype = "ADDED"
                    elif old_m and not now_m:
                        etype = "DELETED"
                    elif not now_m:
                        continue
                elif not now_m:
                    continue
                send(etype, dict(obj, kind=res.kind, apiVersion=res.api_version))
            if events:
                pos = max(pos, max(e[0] for e in events))
            if bookmarks and time.time() - last_bm >= self.emu.args.bookmark_interval:
                pos = max(pos, cur_rv)
                send("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                  "metadata": {"resourceVersion": str(pos),
                                               "annotations": {
                                                   "k8s.io/initial-events-end": "true"}}})
                last_bm = time.time()
            if time.time() >= deadline:
                break
        self.end_chunked()

    # ---- logs ----
    def pod_runtime(self, ns, name):
        st = self.emu.store
        with st.lock:
            self.need_ns(ns)
            pod = st.get(PODS, ns, name)
            if pod is None:
                raise not_found(PODS, name)
            pod = copy.deepcopy(pod)
        return pod, self.emu.pods.get(pod["metadata"]["uid"])

    def check_container(self, pod, container, what):
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container and container not in names:
            raise bad_request("container %s is not valid for pod %s"
                              % (container, pod["metadata"]["name"]))
        if not container and len(names) > 1:
            raise bad_request("a container name must be specified for pod %s, choose one of: "
                              "[%s]" % (pod["metadata"]["name"], " ".join(names)))

    def pod_log(self, ns, name):
        if self.command not in ("GET", "HEAD"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                           "the requested resource", {})
        pod, pr = self.pod_runtime(ns, name)
        self.check_container(pod, self.qget("container"), "log")
        if pod["status"].get("phase") == "Pending" or pr is None:
            raise bad_request('container "%s" in pod "%s" is waiting to start: '
                              'ContainerCreating' % (pod["spec"]["containers"][0]["name"], name))
        follow = go_bool(self.qget("follow"))
        tail = self.qget("tailLines")
        limit = self.qget("limitBytes")
        with open(pr.logpath, "rb") as f:
            data = f.read()
        if tail is not None:
            n = int(tail)
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-n:]) if n > 0 else b""
        if limit is not None:
            data = data[:int(limit)]
        if not follow:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        self.start_chunked("text/plain")
        self.close_connection = True
        if data:
            self.chunk(data)
        with open(pr.logpath, "rb") as f:
            f.seek(0, 2) if tail is not None else f.seek(len(data) if limit is None else 0, 0)
            if tail is None and limit is None:
                f.seek(len(data))
            while True:
                d = f.read(65536)
                if d:
                    self.chunk(d)
                    continue
                if pr.ended.is_set() or self.emu.stopping:
                    d = f.read()
                    if d:
                        self.chunk(d)
                    break
                time.sleep(0.05)
        self.end_chunked()

    # ---- exec ----
    def pod_exec(self, ns, name):
        pod, pr = self.pod_runtime(ns, name)
        container = self.qget("container")
        self.check_container(pod, container, "exec")
        cmd = self.q.get("command", [])
        stdin, stdout = go_bool(self.qget("stdin")), go_bool(self.qget("stdout"))
        stderr, tty = go_bool(self.qget("stderr")), go_bool(self.qget("tty"))
        if not cmd:
            raise bad_request("you must specify at least 1 command")
        if not (stdin or stdout or stderr):
            raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
        phase = pod["status"].get("phase")
        if phase in ("Succeeded", "Failed"):
            raise bad_request("cannot exec into a container in a completed pod; current phase "
                              "is %s" % phase)
        if pr is None or not pr.running:
            raise bad_request("unable to upgrade connection: container not found (\"%s\")"
                              % pod["spec"]["containers"][0]["name"])
        upgrade = self.headers.get("Upgrade", "").lower()
        if upgrade != "websocket":
            # SPDY (or a plain request): the emulator only speaks WebSocket
            raise bad_request("Upgrade request required" if not upgrade else
                              "the kube-emulator supports only WebSocket exec "
                              "(v5.channel.k8s.io, v4.channel.k8s.io); upgrade %r refused"
                              % self.headers.get("Upgrade"))
        offered = [p.strip() for p in
                   ",".join(self.headers.get_all("Sec-WebSocket-Protocol") or []).split(",")
                   if p.strip()]
        supported = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]
        proto = next((p for p in offered if p in supported), None)
        if offered and proto is None:
            raise bad_request("the kube-emulator supports WebSocket subprotocols %s; offered: %s"
                              % (", ".join(supported), ", ".join(offered)))
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        if proto:
            self.send_header("Sec-WebSocket-Protocol", proto)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        ExecSession(self, pr, cmd, proto or "", stdin, stdout, stderr and not tty, tty).run()

    # ---- control ----
    def control(self):
        p = self.upath
        emu = self.emu
        if p == "/_emulator/state" and self.command == "GET":
            with emu.store.lock:
                return self.send_json(200, {
                    "rv": emu.store.rv, "compacted": emu.store.compacted,
                    "sandboxes": sorted(emu.sb.created), "fault_hits": emu.faults.hits,
                    "pods": {"%s/%s" % (pr.ns, pr.name): {"sandbox": pr.sid,
                                                          "running": pr.running}
                             for pr in emu.pods.values() if not pr.gone}})
        if p == "/_emulator/faults" and self.command == "POST":
            body = self.json_body(required=False) or {}
            f = emu.faults
            out = {}
            with f.lock:
                if body.get("clear"):
                    f.rules.clear()
                    f.latency.clear()
                    f.pods_reset()
                f.missing_images.update(body.get("missing_images", []))
                if "pod_start_delay_ms" in body:
                    f.start_delay = float(body["pod_start_delay_ms"]) / 1000.0
                if "pod_ready_delay_ms" in body:
                    f.ready_delay = float(body["pod_ready_delay_ms"]) / 1000.0
                for r in body.get("errors", []):
                    r = dict(r)
                    r.setdefault("count", 1)
                    f.rules.append(r)
                if "latency_ms" in body:
                    f.latency.append({"ms": float(body["latency_ms"]),
                                      "path": body.get("latency_path"),
                                      "count": int(body.get("latency_count", -1))})
            if body.get("compact"):
                emu.store.compact()
            if body.get("drop_watches"):
                with emu.store.lock:
                    emu.store.watch_gen += 1
                    emu.store.cond.notify_all()
            for key in POD_FAULTS:
                if body.get(key):
                    ns, _, nm = body[key].rpartition("/")
                    out[key] = emu.kill_pod(ns or "default", nm, key, body.get("message"))
            if body.get("restart"):
                down = float(body.get("down_ms", 0)) / 1000.0
                me = self.connection

                def later():
                    time.sleep(0.05)
                    f.down_until = time.time() + down
                    with emu.store.lock:
                        emu.store.watch_gen += 1
                        emu.store.cond.notify_all()
                    emu.kill_execs()
                    emu.drop_connections(keep=None)
                threading.Thread(target=later, daemon=True).start()
                self.close_connection = True
                out["restart"] = True
            return self.send_json(200, {"ok": True, **out})
        raise ApiError(404, "NotFound", "unknown control endpoint", {})


class ExecSession:
    """One exec: WebSocket channels <-> `rtctl exec-stdio` pipes."""

    def __init__(self, h, pr, cmd, proto, stdin, stdout, stderr, tty):
        self.h, self.pr, self.cmd, self.proto = h, pr, cmd, proto
        self.want_in, self.want_out, self.want_err, self.tty = stdin, stdout, stderr, tty
        self.ws = WebSocket(h.rfile, h.connection)
        self.rlock = threading.Lock()
        self.resize_w = None   # tty: write end of rtctl exec-tty's resize pipe

    def send_ch(self, ch, data):
        self.ws.send(2, bytes([ch]) + data)

    def resize(self, data):
        """Channel 4: {"Width":W,"Height":H} → "H W" for rtctl exec-tty (tty only)."""
        try:
            size = json.loads(data)
            w, h = int(size["Width"]), int(size["Height"])
        except (ValueError, KeyError, TypeError):
            return
        with self.rlock:
            if self.resize_w is None or not (0 < w < 10000 and 0 < h < 10000):
                return
            try:
                os.write(self.resize_w, b"%d %d\n" % (h, w))
            except OSError:
                pass

    def run(self):
        emu = self.h.emu
        log("exec %s %s proto=%s stdin=%s tty=%s" % (self.pr.sid, self.cmd, self.proto,
                                                    self.want_in, self.tty))
        resize_r = None
        if self.tty:  # a real pty; channel 4 resizes it
            resize_r, self.resize_w = os.pipe()
        try:
            proc = emu.sb.spawn(self.pr.sid, self.cmd, resize_fd=resize_r)
        finally:
            if resize_r is not None:
                os.close(resize_r)
        with emu.elock:
            emu.execs.add(proc)
        if not self.want_in:
            proc.stdin.close()
        # "connection established": one empty message on the lowest writable channel
        first = 1 if self.want_out else 2 if self.want_err else 3
        try:
            self.send_ch(first, b"")
        except (OSError, WsClosed):
            pass
        client_gone = threading.Event()
        errbuf = []

        def reader():
            try:
                while True:
                    op, data = self.ws.recv()
                    if op == 8:  # close
                        client_gone.set()
                        try:
                            self.ws.send(8, data[:2] or struct.pack(">H", 1000))
                        except (OSError, WsClosed):
                            pass
                        break
                    if op == 9:
                        self.ws.send(10, data)
                        continue
                    if op in (1, 2) and data:
                        ch = data[0]
                        if ch == 255 and self.proto == "v5.channel.k8s.io":
                            if len(data) != 2:
                                break
                            if data[1] == 0 and self.want_in and not proc.stdin.closed:
                                proc.stdin.close()
                            continue
                        if ch == 0 and self.want_in and not proc.stdin.closed:
                            try:
                                proc.stdin.write(data[1:])
                            except (BrokenPipeError, OSError, ValueError):
                                pass
                        if ch == 4:
                            self.resize(data[1:])
                        # unknown channels (and resize without tty): ignored
            except (WsClosed, OSError, ValueError):
                client_gone.set()
            finally:
                if proc.poll() is None and client_gone.is_set():
                    try:
                        proc.kill()
                    except OSError:
                        pass

        def pump(f, ch, want):
            try:
                while True:
                    d = f.read(32768)
                    if not d:
                        break
                    if ch == 2:
                        errbuf.append(d)
                        del errbuf[:-8]
                    if want:
                        try:
                            self.send_ch(ch, d)
                        except (OSError, WsClosed):
                            want = False
            except (OSError, ValueError):
                pass
        rt = threading.Thread(target=reader, daemon=True)
        rt.start()
        outch = 1
        errch = 1 if self.tty else 2
        t1 = threading.Thread(target=pump, args=(proc.stdout, outch, self.want_out), daemon=True)
        t2 = threading.Thread(target=pump, args=(proc.stderr, errch,
                                                 self.want_err or (self.tty and self.want_out)),
                              daemon=True)
        t1.start()
        t2.start()
        rc = proc.wait()
        t1.join()
        t2.join()
        with self.rlock:
            if self.resize_w is not None:
                os.close(self.resize_w)
                self.resize_w = None
        emu.sb.reap(proc)
        with emu.elock:
            emu.execs.discard(proc)
        try:
            if not proc.stdin.closed:
                proc.stdin.close()
        except OSError:
            pass
        if client_gone.is_set():
            return
        if rc == 125:
            msg = b"".join(errbuf).decode(errors="replace").strip() or "exec failed"
            status = {"metadata": {}, "status": "Failure",
                      "message": "Internal error occurred: error executing command in "
                                 "container: %s" % msg, "reason": "InternalError",
                      "details": {"causes": [{"message": msg}]}, "code": 500}
        elif rc == 0:
            status = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure",
                      "message": "command terminated with non-zero exit code: exit status %d"
                                 % rc, "reason": "NonZeroExitCode",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(rc)}]}}
        try:
            if self.proto in ("v5.channel.k8s.io", "v4.channel.k8s.io"):
                self.send_ch(3, json.dumps(status, separators=(",", ":")).encode())
            elif rc != 0:
                self.send_ch(3, status["message"].encode())
            self.ws.send(8, struct.pack(">H", 1000))
        except (OSError, WsClosed):
            return
        rt.join(timeout=2)
        try:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# pod / namespace lifecycle (called with the store lock held where noted)

def _emu_init_extra(self):
    self.elock = threading.Lock()
    self.execs = set()


def kill_execs(self):
    with self.elock:
        procs = list(self.execs)
    for p in procs:
        try:
            p.kill()
        except OSError:
            pass


def delete_pod(self, pod, grace):
    """Store lock held. Graceful: deletionTimestamp (MODIFIED), then gone (DELETED) once the
    sandbox is destroyed. grace == 0: gone at once (sandbox destroyed in the background)."""
    st = self.store
    pr = self.pods.get(pod["metadata"]["uid"])
    if grace is None:
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    if grace == 0 or (pr is None):
        st.remove(PODS, pod)
        out = copy.deepcopy(pod)
        if pr is not None:
            self.pods.pop(pr.uid, None)
            threading.Thread(target=pr.destroy, daemon=True).start()
        return out
    if not pod["metadata"].get("deletionTimestamp"):
        old = copy.deepcopy(pod)
        pod["metadata"]["deletionTimestamp"] = now_iso()
        pod["metadata"]["deletionGracePeriodSeconds"] = int(grace)
        st.put(PODS, pod, "MODIFIED", old)

        def finish():
            time.sleep(self.args.delete_delay)
            pr.destroy()
            with st.lock:
                cur = st.get(PODS, pr.ns, pr.name)
                if cur is not None and cur["metadata"]["uid"] == pr.uid:
                    st.remove(PODS, cur)
                self.pods.pop(pr.uid, None)
        threading.Thread(target=finish, daemon=True).start()
    return copy.deepcopy(pod)


def delete_namespace(self, ns):
    st = self.store
    if ns.get("status", {}).get("phase") != "Terminating":
        old = copy.deepcopy(ns)
        ns["metadata"]["deletionTimestamp"] = now_iso()
        ns["status"]["phase"] = "Terminating"
        st.put(NAMESPACES, ns, "MODIFIED", old)
        name = ns["metadata"]["name"]

        def finish():
            with st.lock:
                for res in (PODS, NETPOL, LEASES):
                    for o in st.list(res, name):
                        if res is PODS:
                            self.delete_pod(o, 0)
                        else:
                            st.remove(res, o)
            time.sleep(self.args.delete_delay)
            with st.lock:
                cur = st.get(NAMESPACES, "", name)
                if cur is ns:
                    st.remove(NAMESPACES, ns)
        threading.Thread(target=finish, daemon=True).start()
    return copy.deepcopy(ns)


POD_FAULTS = ("kill_pod", "delete_pod", "oom_kill_pod", "evict_pod", "deadline_pod")


def kill_pod(self, ns, name, kind="kill_pod", message=None):
    """A pod fault (the keys of POD_FAULTS) the way the kubelet/API server shapes it."""
    st = self.store
    with st.lock:
        pod = st.get(PODS, ns, name)
        if pod is None:
            return "not found"
        pr = self.pods.get(pod["metadata"]["uid"])
        container = pod["spec"]["containers"][0]["name"]
        if kind == "delete_pod":
            st.remove(PODS, pod)
            self.pods.pop(pod["metadata"]["uid"], None)
    if pr is None:
        return "no sandbox"
    if kind == "delete_pod":
        pr.destroy()
        return "deleted"
    if kind == "oom_kill_pod":
        pr.fail("OOMKilled")
        return "oom killed"
    if kind == "evict_pod":
        pr.fail("Error", "Evicted", message or (
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: "
            "51200Ki. Container %s was using 2097152Ki, request is 0, has larger consumption "
            "of memory. " % container), disruption="TerminationByKubelet")
        return "evicted"
    if kind == "deadline_pod":
        pr.fail("Error", "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline")
        return "deadline exceeded"
    pr.fail()
    return "killed"


Emulator.kill_execs = kill_execs
Emulator.delete_pod = delete_pod
Emulator.delete_namespace = delete_namespace
Emulator.kill_pod = kill_pod
_orig_init = Emulator.__init__


def _init(self, args):
    _emu_init_extra(self)
    _orig_init(self, args)


Emulator.__init__ = _init


# --------------------------------------------------------------------------------------------
# TLS material and kubeconfigs

def make_certs(d):
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "server.ext")
    run = lambda *a: subprocess.run(list(a), check=True, stdin=subprocess.DEVNULL,
                                    capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out",
        ca_crt, "-days", "2", "-subj", "/CN=kube-emulator-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
        "/CN=kube-apiserver")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


def write_kubeconfig(path, server, token, ca_crt=None):
    cluster = {"server": server}
    if ca_crt:
        with open(ca_crt, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": "emulator", "cluster": cluster}],
           "users": [{"name": "emulator", "user": {"token": token}}],
           "contexts": [{"name": "emulator", "context": {"cluster": "emulator",
                                                         "user": "emulator",
                                                         "namespace": "default"}}],
           "current-context": "emulator"}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)  # JSON is YAML
    os.chmod(path, 0o600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rtctl", required=True)
    ap.add_argument("--token", default="emulator-token")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, default=0)
    ap.add_argument("--https-port", type=int, default=0)
    ap.add_argument("--no-https", action="store_true")
    ap.add_argument("--http-auth", action="store_true", help="require the token over http too")
    ap.add_argument("--state-dir", help="rtctl state dir (short path; default: a new /tmp dir)")
    ap.add_argument("--cgroup-prefix", help="default: kemu-<pid>")
    ap.add_argument("--history", type=int, default=10000, help="watch events kept")
    ap.add_argument("--watch-timeout", type=float, default=1800)
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--start-delay", type=float, default=0.0)
    ap.add_argument("--delete-delay", type=float, default=0.2)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    args.workdir = os.path.abspath(args.workdir)
    os.makedirs(os.path.join(args.workdir, "logs"), exist_ok=True)
    args.rtctl = os.path.abspath(args.rtctl)
    if not args.state_dir:
        args.state_dir = tempfile.mkdtemp(prefix="kemu", dir="/tmp")
    args.cgroup_prefix = args.cgroup_prefix or "kemu-%d" % os.getpid()
    global LOG
    LOG = open(os.path.join(args.workdir, "requests.log"), "a")

    emu = Emulator(args)
    servers, info = [], {"token": args.token, "pid": os.getpid(), "state_dir": args.state_dir,
                         "cgroup_prefix": args.cgroup_prefix}
    http = Server((args.host, args.http_port), Handler, emu)
    servers.append(http)
    info["http"] = "http://%s:%d" % (args.host, http.server_address[1])
    write_kubeconfig(os.path.join(args.workdir, "kubeconfig-http"), info["http"], args.token)
    info["kubeconfig_http"] = os.path.join(args.workdir, "kubeconfig-http")
    if not args.no_https:
        ca, crt, key = make_certs(args.workdir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        ctx.set_alpn_protocols(["http/1.1"])
        https = Server((args.host, args.https_port), Handler, emu, tls_ctx=ctx)
        servers.append(https)
        info["https"] = "https://%s:%d" % (args.host, https.server_address[1])
        info["ca"] = ca
        write_kubeconfig(os.path.join(args.workdir, "kubeconfig-https"), info["https"],
                         args.token, ca)
        info["kubeconfig_https"] = os.path.join(args.workdir, "kubeconfig-https")
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    done = threading.Event()

    def on_signal(sig, frm):
        done.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = os.path.join(args.workdir, "ready.json.tmp")
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, os.path.join(args.workdir, "ready.json"))
    log("ready %s" % json.dumps(info))
    while not done.wait(0.5):
        pass
    emu.stopping = True
    with emu.store.lock:
        emu.store.cond.notify_all()
    for s in servers:
        s.shutdown()
    emu.kill_execs()
    for pr in list(emu.pods.values()):
        pr.destroy()
    emu.sb.shutdown()
    emu.drop_connections()
    try:
        os.rmdir(args.state_dir) if not os.listdir(args.state_dir) else None
    except OSError:
        pass
    log("stopped")


if __name__ == "__main__":
    main()
