"""A real webhook receiver on loopback for the webhook/secret tests: verifies both signatures
(X-Sandbox-Signature and Standard Webhooks) of every delivery and records it."""
import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def standard_key(secret):
    """Standard Webhooks: the bytes after whsec_ when they are base64, else the secret's bytes."""
    if secret.startswith("whsec_"):
        try:
            k = base64.b64decode(secret[6:], validate=True)
            if k:
                return k
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def verify(secret, headers, body):
    """Returns a list of problems (empty when both signatures are right)."""
    problems = []
    sig = headers.get("X-Sandbox-Signature", "")
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig, want):
        problems.append(f"X-Sandbox-Signature {sig!r} != {want!r}")
    wid, wts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    wsig = headers.get("webhook-signature", "")
    mac = hmac.new(standard_key(secret), f"{wid}.{wts}.".encode() + body, hashlib.sha256).digest()
    want2 = "v1," + base64.b64encode(mac).decode()
    if want2 not in wsig.split(" "):
        problems.append(f"webhook-signature {wsig!r} != {want2!r}")
    if not wts.isdigit() or abs(int(wts) - time.time()) > 300:
        problems.append(f"webhook-timestamp {wts!r} not within 5 minutes")
    return problems


class Receiver:
    """ThreadingHTTPServer on 127.0.0.1. `responses` is a list of (status, headers) consumed one
    per request (the last one repeats); every request is recorded with its verification."""

    def __init__(self, secret=None, responses=None):
        self.secret = secret
        self.responses = list(responses or [(200, {})])
        self.requests = []
        self.lock = threading.Lock()
        rcv = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rcv.lock:
                    status, extra = (rcv.responses.pop(0) if len(rcv.responses) > 1
                                     else rcv.responses[0])
                    rec = {"headers": {k: v for k, v in self.headers.items()}, "body": body,
                           "status": status, "t": time.monotonic(), "path": self.path}
                    try:
                        rec["json"] = json.loads(body)
                    except ValueError:
                        rec["json"] = None
                    rec["problems"] = verify(rcv.secret, self.headers, body) if rcv.secret else []
                    rcv.requests.append(rec)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                out = b'{"ok":true}'
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self, name=None):
        with self.lock:
            return [r for r in self.requests
                    if name is None or (r["json"] or {}).get("event") == name]

    def wait(self, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.1)
        return pred()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
