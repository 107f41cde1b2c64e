"""A WebSocket backend with faults for the health tests (Python `websockets`), on 127.0.0.1:<ephemeral>.

Usage: ws_backend_faults.py MODE [MODE_FILE]

Prints "listening PORT" and serves until killed (or 300 s). MODE:
- ok: upgrades and echoes; answers pings.
- refuse-upgrade: answers every upgrade with HTTP 403 (or 200 with `refuse-upgrade-200`) and closes; it listens,
  so a TCP check would pass.
- no-pong: upgrades and echoes, but never answers pings.
When MODE_FILE is given and exists, its content (one of the modes) replaces MODE; it is read at every upgrade and
every ping, so a test switches the mode at run time by writing the file.
For each upgrade it prints "upgrade PATH MODE".
"""
import asyncio
import os
import sys
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.frames import Opcode

MODES = {"ok", "refuse-upgrade", "refuse-upgrade-200", "no-pong"}
START_MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
MODE_FILE = sys.argv[2] if len(sys.argv) > 2 else None


def mode():
    if MODE_FILE and os.path.exists(MODE_FILE):
        try:
            with open(MODE_FILE) as f:
                text = f.read().strip()
            if text in MODES:
                return text
        except OSError:
            pass
    return START_MODE


def process_request(connection, request):
    current = mode()
    print(f"upgrade {request.path} {current}", flush=True)
    if current == "refuse-upgrade":
        return connection.respond(HTTPStatus.FORBIDDEN, "upgrade refused\n")
    if current == "refuse-upgrade-200":
        return connection.respond(HTTPStatus.OK, "hello, this is HTTP\n")
    # Drop pongs while in no-pong mode: the protocol object answers pings by itself otherwise.
    protocol = connection.protocol
    send_frame = protocol.send_frame

    def filtered(frame):
        if frame.opcode is Opcode.PONG and mode() == "no-pong":
            return
        send_frame(frame)

    protocol.send_frame = filtered
    return None


async def handler(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    if START_MODE not in MODES:
        print(f"unknown mode {START_MODE}", file=sys.stderr)
        sys.exit(2)
    async with serve(handler, "127.0.0.1", 0, process_request=process_request, compression=None, ping_interval=None) as server:
        port = list(server.sockets)[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.sleep(300)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
