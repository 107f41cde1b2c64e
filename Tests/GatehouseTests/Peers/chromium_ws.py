"""Drives headless Chromium (Debian's `chromium`) through the DevTools protocol to open a WebSocket through the proxy.

Usage: chromium_ws.py PORT [PATH]
Writes a page that first fetches https://127.0.0.1:PORT/warmup (so Chromium has an HTTP/2 connection to the origin,
which it needs before it will carry a WebSocket over HTTP/2), then opens wss://127.0.0.1:PORT/PATH, sends a message
and waits for its echo. Prints "result=echo:..." on success, "result=..." otherwise; exits 0 only on success.
Every wait is bounded; Chromium is killed at the end.
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import websockets

PAGE = """<html><body><pre id="out">pending</pre><script>
const out = document.getElementById('out');
async function main() {
  try { await fetch('https://127.0.0.1:%(port)d/warmup', {mode: 'no-cors', credentials: 'include'}); } catch (e) {}
  const ws = new WebSocket('wss://127.0.0.1:%(port)d%(path)s');
  ws.onopen = () => ws.send('hello from chromium');
  ws.onmessage = (e) => { out.textContent = 'echo:' + e.data; ws.close(1000, 'done'); };
  ws.onerror = () => { out.textContent = 'error'; };
  ws.onclose = (e) => { if (out.textContent === 'pending') out.textContent = 'closed:' + e.code; };
}
main();
</script></body></html>"""


async def drive(port: int, path: str) -> str:
    profile = tempfile.mkdtemp(prefix="gatehouse-chromium-")
    page = os.path.join(profile, "page.html")
    with open(page, "w") as handle:
        handle.write(PAGE % {"port": port, "path": path})
    browser = subprocess.Popen(
        [
            shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
            "--ignore-certificate-errors", "--no-first-run", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "about:blank",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        active = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(active) and time.time() < deadline:
            await asyncio.sleep(0.1)
        with open(active) as handle:
            debug_port = int(handle.readline())
        targets = None
        while time.time() < deadline:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c",
                f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{debug_port}/json').read().decode())",
                stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            targets = [t for t in json.loads(out or b"[]") if t.get("type") == "page"]
            if targets:
                break
            await asyncio.sleep(0.1)
        async with websockets.connect(targets[0]["webSocketDebuggerUrl"], max_size=None) as cdp:
            ids = iter(range(1, 10_000))

            async def call(method, params=None):
                message_id = next(ids)
                await cdp.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
                while True:
                    reply = json.loads(await asyncio.wait_for(cdp.recv(), timeout=20))
                    if reply.get("id") == message_id:
                        return reply

            await call("Page.navigate", {"url": "file://" + page})
            result = "pending"
            while result == "pending" and time.time() < deadline:
                reply = await call("Runtime.evaluate", {"expression": "document.getElementById('out') && document.getElementById('out').textContent"})
                result = reply.get("result", {}).get("result", {}).get("value") or "pending"
                await asyncio.sleep(0.1)
            return result
    finally:
        browser.kill()
        browser.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


result = asyncio.run(drive(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "/echo"))
print(f"result={result}")
sys.exit(0 if result.startswith("echo:") else 1)
