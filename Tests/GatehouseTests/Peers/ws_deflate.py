"""permessage-deflate end to end with Python `websockets` on both sides of the proxy.

  ws_deflate.py server        -- an echo server with permessage-deflate on 127.0.0.1:<ephemeral>; prints
                                 "listening PORT" and serves until killed (or 120 s).
  ws_deflate.py client URL    -- connects offering permessage-deflate, checks it was negotiated, echoes
                                 compressible and incompressible messages, closes with 1000.
"""
import asyncio
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def serve():
    async with websockets.serve(echo, "127.0.0.1", 0, extensions=[ServerPerMessageDeflateFactory()], compression=None) as server:
        port = list(server.sockets)[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.sleep(120)


async def client(url):
    async with websockets.connect(url, extensions=[ClientPerMessageDeflateFactory()], compression=None, max_size=None) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if "permessage-deflate" not in negotiated:
            raise SystemExit(f"permessage-deflate not negotiated: {negotiated!r}")
        messages = ["hello " * 2000, os.urandom(100_000), "x", b"", "compress me " * 50_000]
        for message in messages:
            await ws.send(message)
            echoed = await asyncio.wait_for(ws.recv(), timeout=30)
            if echoed != message:
                raise SystemExit("echo differs")
        await ws.close(code=1000)
        print(f"ok deflate={negotiated}")


if sys.argv[1] == "server":
    asyncio.run(serve())
else:
    asyncio.run(client(sys.argv[2]))
