"""permessage-deflate under the proxy's message limits, with Python `websockets` (compression on) on both ends.

  ws_deflate_limits.py server [--no-context-takeover]
      An echo server with permessage-deflate on 127.0.0.1:<ephemeral>; prints "listening PORT", then for every
      connection that ends one line "done received=BYTES messages=N extensions=NAMES close=CODE", where BYTES counts
      the inflated fragments as they arrived (a message cut short still counts what reached the application).
      Serves until killed (or 120 s).
  ws_deflate_limits.py client URL bomb single|fragmented
      Sends 64 MiB of zeros compressed (one frame, or 64 frames of 1 MiB) and prints "closed code=C reason=R".
  ws_deflate_limits.py client URL traffic COUNT [--no-context-takeover] [--then-oversize]
      Echoes COUNT JSON-ish text and binary messages (context takeover on unless asked), checks every echo and
      prints "ok messages=COUNT extensions=NAMES"; then closes with 1000, or with --then-oversize sends 2 MiB of
      text (a few KiB compressed) and prints "oversize closed code=C".
  ws_deflate_limits.py client URL strip
      Connects offering permessage-deflate, echoes one message, prints "extensions=NAMES" (empty when none).
"""
import asyncio
import json
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory

NO_TAKEOVER = "--no-context-takeover" in sys.argv


def names(ws):
    return ",".join(extension.name for extension in ws.protocol.extensions)


async def echo(ws):
    received = 0
    messages = 0
    try:
        while True:
            fragments = []
            async for fragment in ws.recv_streaming():
                received += len(fragment)
                fragments.append(fragment)
            messages += 1
            if fragments and isinstance(fragments[0], str):
                await ws.send("".join(fragments))
            else:
                await ws.send(b"".join(fragments))
    except websockets.ConnectionClosed:
        pass
    finally:
        print(f"done received={received} messages={messages} extensions={names(ws)} close={ws.close_code}", flush=True)


async def serve():
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=NO_TAKEOVER, client_no_context_takeover=NO_TAKEOVER
    )
    async with websockets.serve(echo, "127.0.0.1", 0, extensions=[factory], compression=None, max_size=None) as server:
        port = list(server.sockets)[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.sleep(120)


def connect(url):
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=NO_TAKEOVER, client_no_context_takeover=NO_TAKEOVER
    )
    return websockets.connect(url, extensions=[factory], compression=None, max_size=None, open_timeout=10)


async def bomb(url, shape):
    async with connect(url) as ws:
        if "permessage-deflate" not in names(ws):
            raise SystemExit(f"permessage-deflate not negotiated: {names(ws)!r}")
        try:
            if shape == "single":
                await ws.send(bytes(64 << 20))
            else:
                await ws.send(bytes(1 << 20) for _ in range(64))
        except websockets.ConnectionClosed:
            pass
        try:
            await asyncio.wait_for(ws.recv(), timeout=20)
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), timeout=20)
        print(f"closed code={ws.close_code} reason={ws.close_reason}", flush=True)


async def traffic(url, count):
    async with connect(url) as ws:
        if "permessage-deflate" not in names(ws):
            raise SystemExit(f"permessage-deflate not negotiated: {names(ws)!r}")
        for index in range(count):
            record = {"id": index, "type": "quote", "symbol": f"SYM{index % 37}", "price": 1000 + index % 91,
                      "tags": ["a", "b", "c"], "note": f"message number {index}"}
            message = json.dumps([record] * (1 + index % 7))
            if index % 10 == 9:
                message = message.encode() * 3
            await ws.send(message)
            echoed = await asyncio.wait_for(ws.recv(), timeout=20)
            if echoed != message:
                raise SystemExit(f"echo {index} differs")
        print(f"ok messages={count} extensions={names(ws)}", flush=True)
        if "--then-oversize" not in sys.argv:
            await ws.close(code=1000)
            return
        try:
            await ws.send("x" * (2 << 20))
            await asyncio.wait_for(ws.recv(), timeout=20)
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), timeout=20)
        print(f"oversize closed code={ws.close_code}", flush=True)


async def strip(url):
    async with connect(url) as ws:
        await ws.send("hello " * 100)
        if await asyncio.wait_for(ws.recv(), timeout=20) != "hello " * 100:
            raise SystemExit("echo differs")
        header = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await ws.close(code=1000)
        print(f"extensions={names(ws)} header={header}", flush=True)


if sys.argv[1] == "server":
    asyncio.run(serve())
elif sys.argv[3] == "bomb":
    asyncio.run(bomb(sys.argv[2], sys.argv[4]))
elif sys.argv[3] == "traffic":
    asyncio.run(traffic(sys.argv[2], int(sys.argv[4])))
else:
    asyncio.run(strip(sys.argv[2]))
