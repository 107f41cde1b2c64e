"""A WebSocket client presenting a TLS client certificate, with Python `websockets` and OpenSSL.

Usage: ws_client_cert.py URL CA CERT KEY [NAME:VALUE ...]
Trusts only CA for the server, presents CERT/KEY (both "-" for no certificate), sends the extra headers, and prints
`opened` once the handshake succeeded, `refused=STATUS` for an HTTP refusal, or `tls-error=...` when TLS failed.
With TLS 1.3 the client finishes its side of the handshake before the server checks the client's certificate, so a
refused certificate shows as the server's alert, or as the connection ending before any HTTP response byte.
"""
import asyncio
import ssl
import sys

import websockets
from websockets.exceptions import InvalidMessage, InvalidStatus


async def main(url: str, ca: str, cert: str, key: str, headers: list[tuple[str, str]]) -> None:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if cert != "-":
        context.load_cert_chain(cert, key)
    try:
        async with websockets.connect(
            url, ssl=context, server_hostname="localhost", additional_headers=headers, open_timeout=10
        ) as ws:
            print("opened", flush=True)
            await ws.close()
    except InvalidStatus as error:
        print(f"refused={error.response.status_code}", flush=True)
    except (ssl.SSLError, ConnectionError, EOFError) as error:
        print(f"tls-error={error!r}", flush=True)
    except InvalidMessage as error:
        if isinstance(error.__cause__, EOFError) and "status line" in str(error.__cause__):
            print(f"tls-error=closed before any response: {error.__cause__!r}", flush=True)
        else:
            raise


extra = [tuple(item.split(":", 1)) for item in sys.argv[5:]]
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], extra))
