"""A WebSocket backend for the cluster tests (Python `websockets`), on 127.0.0.1:<ephemeral>.

Prints "listening PORT", then for each upgrade one line
  "upgrade PATH channels-from-client=<Gatehouse-Channels header the proxy forwarded, or ->"
and serves until killed (or 300 s).
- The 101 carries `Gatehouse-Channels: <value>` when the request's query has `channels=<value>`.
- Text "fragment" is answered with a fragmented text message: "part1-" at once, "part2" (FIN) only after the
  client's next message, so a test can act while the message is open.
- Anything else is echoed.
"""
import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve


def process_response(connection, request, response):
    query = parse_qs(urlsplit(request.path).query)
    forwarded = request.headers.get("Gatehouse-Channels", "-")
    print(f"upgrade {request.path} channels-from-client={forwarded}", flush=True)
    if "channels" in query:
        response.headers["Gatehouse-Channels"] = query["channels"][0]
    return response


async def handler(ws):
    async for message in ws:
        if message == "fragment":
            release = asyncio.get_running_loop().create_future()

            async def fragments():
                yield "part1-"
                await release
                yield "part2"

            sender = asyncio.create_task(ws.send(fragments()))
            await ws.recv()
            release.set_result(None)
            await sender
        else:
            await ws.send(message)


async def main():
    async with serve(handler, "127.0.0.1", 0, process_response=process_response, compression=None) as server:
        port = list(server.sockets)[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.sleep(300)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
