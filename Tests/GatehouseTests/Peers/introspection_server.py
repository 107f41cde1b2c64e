"""An RFC 7662 introspection endpoint for the tests (Python stdlib only), on 127.0.0.1:<ephemeral>.

    introspection_server.py --cert C --key K --client-id ID --client-secret S --state DIR [--plain]

Serves HTTPS (plain HTTP with --plain) and prints "listening PORT". Each POST is answered from files in DIR, read
per request so the test can change them while the server runs:
- tokens.json: {"TOKEN": {answer object}, ...}; a token not listed gets {"active": false}.
- behaviour.json (optional): {"delay": seconds before the answer head, "trickle": seconds between body bytes,
  "status": code to answer instead, "body": raw text to answer instead, "pad": characters of padding to add to the answer}.
HTTP Basic credentials are checked as RFC 6749 §2.3.1 says (form-urlencoded id and secret, base64); wrong or
missing ones get 401. Every request prints one line, flushed, which the test counts:
  "introspect n=N inflight=REQUESTS-BEING-ANSWERED auth=ok|bad type=CONTENT-TYPE hint=HINT token=TOKEN"
Exits by itself after 600 s in case the test forgot it.
"""
import argparse
import base64
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus

parser = argparse.ArgumentParser()
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--client-id", required=True)
parser.add_argument("--client-secret", required=True)
parser.add_argument("--state", required=True)
parser.add_argument("--plain", action="store_true")
args = parser.parse_args()

lock = threading.Lock()
count = 0
inflight = 0


def read_json(name, default):
    try:
        with open(os.path.join(args.state, name), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def credentials_ok(header):
    if not header or not header.startswith("Basic "):
        return False
    try:
        pair = base64.b64decode(header[len("Basic "):], validate=True).decode("ascii")
    except Exception:
        return False
    if ":" not in pair:
        return False
    client_id, secret = pair.split(":", 1)
    return unquote_plus(client_id) == args.client_id and unquote_plus(secret) == args.client_secret


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def do_POST(self):
        global inflight
        with lock:
            inflight += 1
            now_inflight = inflight
        try:
            self.introspect(now_inflight)
        finally:
            with lock:
                inflight -= 1

    def introspect(self, now_inflight):
        global count
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        form = parse_qs(body, keep_blank_values=True)
        token = form.get("token", [""])[0]
        hint = form.get("token_type_hint", ["-"])[0]
        auth_ok = credentials_ok(self.headers.get("Authorization"))
        with lock:
            count += 1
            n = count
        content_type = self.headers.get("Content-Type", "-")
        print(f"introspect n={n} inflight={now_inflight} auth={'ok' if auth_ok else 'bad'} type={content_type} hint={hint} token={token}", flush=True)
        behaviour = read_json("behaviour.json", {})
        if behaviour.get("delay"):
            time.sleep(float(behaviour["delay"]))
        if not auth_ok:
            self.answer(401, b'{"error":"invalid_client"}', behaviour)
            return
        status = int(behaviour.get("status", 200))
        if "body" in behaviour:
            payload = behaviour["body"].encode("utf-8")
        else:
            answer = dict(read_json("tokens.json", {}).get(token, {"active": False}))
            if behaviour.get("pad"):
                answer["pad"] = "x" * int(behaviour["pad"])
            payload = json.dumps(answer).encode("utf-8")
        self.answer(status, payload, behaviour)

    def answer(self, status, payload, behaviour):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        trickle = float(behaviour.get("trickle", 0))
        if trickle:
            for i in range(len(payload)):
                self.wfile.write(payload[i:i + 1])
                self.wfile.flush()
                time.sleep(trickle)
        else:
            self.wfile.write(payload)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if not args.plain:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Timer(600, lambda: os._exit(0)).start()
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
