"""A tiny fault-injecting HTTP proxy in front of s3rver, for the S3 failure tests.

Requests are forwarded verbatim (the Host header too, so SigV4 signatures still verify at
s3rver) and recorded as (method, path?query). Faults are armed by the test:

    p = FaultProxy("http://127.0.0.1:<s3rver port>").start()
    p.fail_part(n=2, status=500, times=None)  # UploadPart number n answers 500 (None = always)
    p.drop_part(n=2, times=1)                  # ... the connection is closed mid-body instead
    p.slow_down(times=3)                       # the next 3 requests answer 503 SlowDown
    p.fail_all(status=503)                     # everything answers 503 (store down) until clear()
    p.clear()

AbortMultipartUpload (DELETE ?uploadId=) is answered 204 by the proxy itself (s3rver does not
implement it: 405) after being recorded, so `p.aborts()` lists the upload ids aborted.
"""
import http.client
import http.server
import socket
import socketserver
import threading
import urllib.parse

ERR = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
       '<Message>injected by faultproxy</Message></Error>')


class FaultProxy:
    def __init__(self, upstream):
        u = urllib.parse.urlsplit(upstream)
        self.up_host, self.up_port = u.hostname, u.port
        self.lock = threading.Lock()
        self.log = []
        self.clear()
        self.server = None

    # ---- control --------------------------------------------------------------------------
    def clear(self):
        with self.lock:
            self.part_fault = None  # (n, kind, status, times_left or None)
            self.slow_left = 0
            self.all_status = None

    def fail_part(self, n, status=500, times=None):
        with self.lock:
            self.part_fault = (n, "status", status, times)

    def drop_part(self, n, times=1):
        with self.lock:
            self.part_fault = (n, "drop", 0, times)

    def slow_down(self, times):
        with self.lock:
            self.slow_left = times

    def fail_all(self, status=503):
        with self.lock:
            self.all_status = status

    def requests(self):
        with self.lock:
            return list(self.log)

    def aborts(self):
        return [q["uploadId"][0] for m, p, q in self.requests()
                if m == "DELETE" and "uploadId" in q]

    def part_uploads(self):
        return [int(q["partNumber"][0]) for m, p, q in self.requests()
                if m == "PUT" and "partNumber" in q]

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # ---- serving --------------------------------------------------------------------------
    def _decide(self, method, query):
        """What to do with this request: None (forward), ("status", code, s3code), ("drop",)."""
        with self.lock:
            if self.all_status:
                return ("status", self.all_status, "ServiceUnavailable")
            if self.slow_left > 0:
                self.slow_left -= 1
                return ("status", 503, "SlowDown")
            pf = self.part_fault
            if pf and method == "PUT" and query.get("partNumber", [""])[0] == str(pf[0]):
                n, kind, status, times = pf
                if times is not None:
                    times -= 1
                    self.part_fault = (n, kind, status, times) if times > 0 else None
                if kind == "drop":
                    return ("drop",)
                return ("status", status, "InternalError")
        return None

    def start(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def _handle(self):
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
                with proxy.lock:
                    proxy.log.append((self.command, self.path, query))
                act = proxy._decide(self.command, query)
                if act and act[0] == "drop":
                    # read part of the body, then drop the connection without an answer
                    n = int(self.headers.get("Content-Length") or 0)
                    self.rfile.read(min(n, 4096))
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                body = self._body()
                if act:
                    _, status, code = act
                    self._answer(status, ERR.format(code=code).encode(),
                                 [("Content-Type", "application/xml")])
                    return
                if self.command == "DELETE" and "uploadId" in query:
                    self._answer(204)
                    return
                conn = http.client.HTTPConnection(proxy.up_host, proxy.up_port, timeout=60)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                                 "expect")}
                try:
                    conn.request(self.command, self.path, body=body, headers=hdrs)
                    r = conn.getresponse()
                    data = r.read()
                    out = [(k, v) for k, v in r.getheaders()
                           if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                                "content-length")]
                    if self.command == "HEAD":
                        self.send_response(r.status)
                        for k, v in out:
                            self.send_header(k, v)
                        self.send_header("Content-Length", r.getheader("Content-Length") or "0")
                        self.end_headers()
                    else:
                        self._answer(r.status, data, out)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
