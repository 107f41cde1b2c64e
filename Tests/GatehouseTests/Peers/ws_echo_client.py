"""Independent WebSocket client (Python `websockets`) used by the Swift tests.

Usage: ws_echo_client.py URL [URL...]
Each URL is opened, messages of several sizes are echoed and compared by SHA-256, then the connection is closed
with code 1000. Prints one line per URL; exits non-zero on the first failure.
"""
import asyncio
import hashlib
import os
import ssl
import sys

import websockets

SIZES = [0, 125, 126, 65535, 65536, 16 << 20]


async def run(url: str) -> None:
    context = None
    if url.startswith("wss://"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    async with websockets.connect(url, ssl=context, max_size=None, open_timeout=10, close_timeout=10) as ws:
        for size in SIZES:
            payload = os.urandom(size)
            await ws.send(payload)
            echoed = await asyncio.wait_for(ws.recv(), timeout=30)
            if hashlib.sha256(echoed).digest() != hashlib.sha256(payload).digest():
                raise SystemExit(f"{url}: echo of {size} bytes differs")
        await ws.send("text message")
        text = await asyncio.wait_for(ws.recv(), timeout=10)
        if text != "text message":
            raise SystemExit(f"{url}: text echo differs: {text!r}")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, timeout=10)
        await ws.close(code=1000, reason="done")
        print(f"ok {url} close={ws.close_code}")


async def main() -> None:
    for url in sys.argv[1:]:
        await run(url)


asyncio.run(main())
