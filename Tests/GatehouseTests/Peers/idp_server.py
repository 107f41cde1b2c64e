#!/usr/bin/env python3
"""A small HTTPS identity provider for tests: OIDC discovery and a JWKS, with a plain-HTTP control port.

Usage: idp_server.py --cert CERT --key KEY [--issuer URL]
Prints "control PORT" then "listening PORT" (the HTTPS port).

HTTPS (served to the proxy):
  GET /.well-known/openid-configuration  {"issuer": ..., "jwks_uri": "https://127.0.0.1:PORT/jwks.json"}
  GET /jwks.json                          the current JWKS, with Cache-Control and ETag (304 on If-None-Match)

Control (plain HTTP on loopback, for the test):
  POST /control   JSON object, any of:
     jwks: {...}            the JWKS to serve (rotation)
     mode: ok | down | hang | slow | oversize | oversize_chunked
           down: 503; hang: accept and never answer; slow: headers at once, then the body one byte per 0.2 s;
           oversize: a valid JWKS padded to `oversize_bytes` (Content-Length); oversize_chunked: the same, chunked
     cache_control: "max-age=60" (or "" for none)
     issuer: the issuer the discovery document names (defaults to --issuer or the server's base URL)
     oversize_bytes: int (default 1 MiB)
  GET /counts     {"jwks": n, "discovery": n, "not_modified": n}
  POST /reset     zero the counts
"""

import argparse
import hashlib
import http.server
import json
import socketserver
import ssl
import sys
import threading
import time

lock = threading.Lock()
state = {
    "jwks": {"keys": []},
    "mode": "ok",
    "cache_control": "max-age=3600",
    "issuer": None,
    "oversize_bytes": 1024 * 1024,
    "counts": {"jwks": 0, "discovery": 0, "not_modified": 0},
}
stopping = threading.Event()


def snapshot():
    with lock:
        return dict(state)


class IdPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    base_url = ""

    def log_message(self, *args):
        pass

    def send_body(self, status, body, content_type="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/.well-known/openid-configuration":
            kind = "discovery"
        elif path == "/jwks.json":
            kind = "jwks"
        else:
            self.send_body(404, b"{}")
            return
        with lock:
            state["counts"][kind] += 1
        current = snapshot()
        mode = current["mode"]
        if mode == "down":
            self.send_body(503, b'{"error":"down"}')
            return
        if mode == "hang":
            stopping.wait(120)
            self.close_connection = True
            return
        if kind == "discovery":
            issuer = current["issuer"] or self.base_url
            body = json.dumps({"issuer": issuer, "jwks_uri": self.base_url + "/jwks.json"}).encode()
            self.send_body(200, body)
            return
        body = json.dumps(current["jwks"], sort_keys=True).encode()
        if mode in ("oversize", "oversize_chunked"):
            padded = dict(current["jwks"])
            padded["padding"] = "x" * current["oversize_bytes"]
            body = json.dumps(padded, sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        extra = [("ETag", etag)]
        if current["cache_control"]:
            extra.append(("Cache-Control", current["cache_control"]))
        if mode == "ok" and self.headers.get("If-None-Match") == etag:
            with lock:
                state["counts"]["not_modified"] += 1
            self.send_response(304)
            for name, value in extra:
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "slow":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            for index in range(len(body)):
                if stopping.wait(0.2):
                    return
                try:
                    self.wfile.write(body[index:index + 1])
                    self.wfile.flush()
                except OSError:
                    return
            return
        if mode == "oversize_chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for start in range(0, len(body), 16384):
                    chunk = body[start:start + 16384]
                    self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            return
        self.send_body(200, body, extra=extra)


class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/counts":
            with lock:
                self.reply(dict(state["counts"]))
        else:
            self.send_error(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/control":
            change = json.loads(raw or b"{}")
            with lock:
                for key in ("jwks", "mode", "cache_control", "issuer", "oversize_bytes"):
                    if key in change:
                        state[key] = change[key]
            self.reply({"ok": True})
        elif self.path == "/reset":
            with lock:
                state["counts"] = {"jwks": 0, "discovery": 0, "not_modified": 0}
            self.reply({"ok": True})
        else:
            self.send_error(404)


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class TLSServer(ThreadingServer):
    """Wraps each accepted socket in its handler thread, so a client that never finishes its handshake blocks no one."""

    context = None

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(request, client_address, self)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--issuer")
    parser.add_argument("--jwks", help="a JWKS file served at first")
    args = parser.parse_args()
    if args.jwks:
        with open(args.jwks) as handle:
            state["jwks"] = json.load(handle)
    state["issuer"] = args.issuer

    control = ThreadingServer(("127.0.0.1", 0), ControlHandler)
    threading.Thread(target=control.serve_forever, daemon=True).start()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = TLSServer(("127.0.0.1", 0), IdPHandler)
    server.context = context
    port = server.server_address[1]
    IdPHandler.base_url = "https://127.0.0.1:%d" % port

    print("control %d" % control.server_address[1], flush=True)
    print("listening %d" % port, flush=True)
    try:
        server.serve_forever()
    finally:
        stopping.set()


if __name__ == "__main__":
    sys.exit(main())
