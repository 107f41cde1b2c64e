#!/usr/bin/env python3
"""An HTTP/2 client (the `h2` library, independent of SwiftNIO) that misbehaves on purpose.

    h2_abuse.py excess PORT   opens as many RFC 8441 WebSockets to /echo as the server's
                              SETTINGS_MAX_CONCURRENT_STREAMS allows, then one more (ignoring the limit),
                              then checks that the first ones still echo.
    h2_abuse.py flood PORT N  opens N WebSockets to /echo (in batches), then resets them all in one burst,
                              past the server's reset budget, and watches for GOAWAY and the connection's end.

Prints one JSON object with what it saw.
"""
import json
import os
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes


def connect(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    tls = context.wrap_socket(raw, server_hostname="localhost")
    if tls.selected_alpn_protocol() != "h2":
        raise SystemExit("server did not negotiate h2")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    return tls, conn


class Peer:
    def __init__(self, port):
        self.sock, self.conn = connect(port)
        self.statuses = {}
        self.resets = {}
        self.data = {}
        self.goaway = None
        self.closed = False
        self.max_streams = None

    def pump(self, until, timeout=10.0):
        """Reads and handles events until `until()` is true, the connection ends or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.closed = True
                return until()
            for event in self.conn.receive_data(chunk):
                self.handle(event)
            out = self.conn.data_to_send()
            if out:
                try:
                    self.sock.sendall(out)
                except (ConnectionError, ssl.SSLError):
                    self.closed = True
        return True

    def handle(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            changed = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if changed is not None:
                self.max_streams = changed.new_value
        elif isinstance(event, h2.events.ResponseReceived):
            self.statuses[event.stream_id] = int(dict(event.headers).get(":status", "0"))
        elif isinstance(event, h2.events.StreamReset):
            self.resets[event.stream_id] = int(event.error_code)
        elif isinstance(event, h2.events.DataReceived):
            self.data[event.stream_id] = self.data.get(event.stream_id, b"") + event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = {"code": int(event.error_code), "last_stream_id": event.last_stream_id}

    def open_websocket(self):
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", "/echo"),
            (":authority", "localhost"), ("sec-websocket-version", "13"),
        ])
        return stream

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def ignore_concurrency_limit(self):
        settings = self.conn.remote_settings
        settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 1 << 30
        settings.acknowledge()


def text_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def unmasked_text(data):
    if len(data) < 2 or data[0] != 0x81:
        return None
    length = data[1] & 0x7F
    return data[2:2 + length].decode(errors="replace")


def excess(port):
    peer = Peer(port)
    peer.pump(lambda: peer.max_streams is not None)
    limit = peer.max_streams or 0
    streams = [peer.open_websocket() for _ in range(limit)]
    peer.flush()
    peer.pump(lambda: all(s in peer.statuses for s in streams))
    peer.ignore_concurrency_limit()
    extra = peer.open_websocket()
    peer.flush()
    peer.pump(lambda: extra in peer.resets or extra in peer.statuses)
    for index, stream in enumerate(streams):
        peer.conn.send_data(stream, text_frame("hello %d" % index))
    if not peer.closed:
        peer.flush()
    peer.pump(lambda: all(unmasked_text(peer.data.get(s, b"")) is not None for s in streams))
    print(json.dumps({
        "advertised": limit,
        "statuses": [peer.statuses.get(s) for s in streams],
        "extra_reset": peer.resets.get(extra),
        "extra_status": peer.statuses.get(extra),
        "echoes": [unmasked_text(peer.data.get(s, b"")) for s in streams],
        "goaway": peer.goaway,
    }))


def flood(port, count):
    peer = Peer(port)
    peer.pump(lambda: peer.max_streams is not None)
    streams = []
    while len(streams) < count:
        batch = [peer.open_websocket() for _ in range(min(8, count - len(streams)))]
        peer.flush()
        if not peer.pump(lambda: all(s in peer.statuses or s in peer.resets for s in batch)):
            break
        streams += batch
    accepted = [s for s in streams if peer.statuses.get(s) == 200]
    for stream in streams:
        peer.conn.reset_stream(stream, ErrorCodes.CANCEL)
    peer.flush()
    started = time.monotonic()
    peer.pump(lambda: peer.goaway is not None)
    peer.pump(lambda: peer.closed, timeout=10.0)
    print(json.dumps({
        "accepted": len(accepted),
        "highest_accepted": max(accepted) if accepted else 0,
        "goaway": peer.goaway,
        "closed": peer.closed,
        "close_seconds": round(time.monotonic() - started, 3),
    }))


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "excess":
        excess(port)
    elif mode == "flood":
        flood(port, int(sys.argv[3]))
    else:
        raise SystemExit("unknown mode " + mode)
