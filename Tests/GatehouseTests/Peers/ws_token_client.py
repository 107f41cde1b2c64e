"""Browser-style token transport with Python `websockets`: the token rides in the subprotocol list.

Usage: ws_token_client.py URL TOKEN
Connects offering only `bearer.TOKEN` (as a browser would with `new WebSocket(url, ["bearer." + token])`), checks the
handshake selected that entry, then tries without a token and expects 401.
"""
import asyncio
import sys

import websockets
from websockets.exceptions import InvalidStatus


async def main(url: str, token: str) -> None:
    entry = f"bearer.{token}"
    async with websockets.connect(url, subprotocols=[entry], open_timeout=10) as ws:
        print(f"subprotocol={ws.subprotocol}")
        if ws.subprotocol != entry:
            raise SystemExit("the proxy did not select the token entry")
    try:
        async with websockets.connect(url, open_timeout=10):
            raise SystemExit("connected without a token")
    except InvalidStatus as error:
        print(f"refused={error.response.status_code}")


asyncio.run(main(sys.argv[1], sys.argv[2]))
