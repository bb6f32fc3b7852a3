#!/usr/bin/env python3
"""Scriptable origin for the kura / ATS / Varnish spot checks.

Listens on 127.0.0.1:19500 (or argv[1]), HTTP/1.1 keep-alive, exact Content-Length.

Per-path behaviour is configured by the driver:
  POST /__cfg   JSON {"path": "/kura/a", "status": 200, "headers": [["Cache-Control","max-age=60"]],
                      "body": "hello", "etag": "\"v1\"", "inm304": true,
                      "after_first": 503 | null, "down": false}
    - etag: sent as ETag; with inm304, a request whose If-None-Match matches gets 304
    - after_first: every request after the first one for this path gets this status
    - down: every request for this path gets its connection closed without a response
  GET /__down?path=P   /__up?path=P      (P omitted = all paths)
  GET /__count?path=P  -> JSON {"count": n, "log": [{"method","inm","ims","range","al","ae"}]}
  GET /__heal?path=P   stop the after_first errors for P
  GET /__reset         forget every path's config and counts
Unconfigured paths answer 200 "ok <path>" with no caching headers.
Any request method is answered the same way (POST/PUT/DELETE count too).
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

LOCK = threading.Lock()
CFG = {}      # path -> dict
COUNT = {}    # path -> int
LOG = {}      # path -> list
ALL_DOWN = [False]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536   # headers + body leave in one write (no Nagle/delayed-ACK 40 ms stalls)
    server_version = "spot-origin/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, headers, body, head=False):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            self.send_header(k, v)
        if status != 304 and status >= 200 and "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        if "content-type" not in names and status != 304:
            self.send_header("Content-Type", "text/plain")
        self.end_headers()
        if status != 304 and not head and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _control(self, u):
        q = parse_qs(u.query)
        p = q.get("path", [None])[0]
        if u.path == "/__count":
            with LOCK:
                out = {"count": COUNT.get(p, 0), "log": LOG.get(p, [])}
            return self._send(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], json.dumps(out))
        if u.path in ("/__down", "/__up"):
            down = u.path == "/__down"
            with LOCK:
                if p is None:
                    ALL_DOWN[0] = down
                else:
                    CFG.setdefault(p, {})["down"] = down
            return self._send(200, [("Cache-Control", "no-store")], "ok\n")
        if u.path == "/__heal":  # stop answering errors (after_first) for this path
            with LOCK:
                CFG.setdefault(p, {})["after_first"] = None
            return self._send(200, [("Cache-Control", "no-store")], "ok\n")
        if u.path == "/__reset":
            with LOCK:
                CFG.clear(); COUNT.clear(); LOG.clear(); ALL_DOWN[0] = False
            return self._send(200, [("Cache-Control", "no-store")], "ok\n")
        if u.path == "/__cfg":
            n = int(self.headers.get("Content-Length") or 0)
            c = json.loads(self.rfile.read(n) or b"{}")
            with LOCK:
                CFG[c["path"]] = c
                COUNT[c["path"]] = 0
                LOG[c["path"]] = []
            return self._send(200, [("Cache-Control", "no-store")], "ok\n")
        return self._send(404, [], "no such control\n")

    def _handle(self):
        u = urlsplit(self.path)
        if u.path.startswith("/__"):
            return self._control(u)
        # drain a request body (POST/PUT)
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = u.path
        with LOCK:
            c = dict(CFG.get(path, {}))
            COUNT[path] = COUNT.get(path, 0) + 1
            nth = COUNT[path]
            LOG.setdefault(path, []).append({
                "method": self.command,
                "inm": self.headers.get("If-None-Match"),
                "ims": self.headers.get("If-Modified-Since"),
                "range": self.headers.get("Range"),
                "al": self.headers.get("Accept-Language"),
                "ae": self.headers.get("Accept-Encoding"),
            })
            down = ALL_DOWN[0] or c.get("down")
        if down:
            # "origin down": close the connection without any response
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        status = c.get("status", 200)
        headers = [tuple(h) for h in c.get("headers", [])]
        body = c.get("body", "ok %s\n" % path)
        if c.get("per_lang"):  # body depends on Accept-Language
            body = "%s lang=%s\n" % (body.strip(), self.headers.get("Accept-Language"))
        body = body.replace("{n}", str(nth))
        etag = c.get("etag")
        if etag:
            headers.append(("ETag", etag))
        if nth > 1 and c.get("after_first"):
            return self._send(int(c["after_first"]), [("Content-Type", "text/plain")],
                              "origin error %d (request %d)\n" % (c["after_first"], nth),
                              head=self.command == "HEAD")
        if self.command in ("POST", "PUT", "DELETE"):
            return self._send(200, [("Content-Type", "text/plain")], "%s done\n" % self.command)
        inm = self.headers.get("If-None-Match")
        if etag and c.get("inm304") and inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
            return self._send(304, [h for h in headers if h[0].lower() != "content-length"], b"")
        return self._send(status, headers, body, head=self.command == "HEAD")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 19500
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    srv.serve_forever()
