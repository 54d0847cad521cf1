"""A minimal headless-Chromium driver over the DevTools protocol (for UI screenshots).

:class:`Browser` starts ``chromium --headless`` with a private profile and a DevTools port on
127.0.0.1 and stops it by PID; :class:`Page` navigates, evaluates JavaScript, clicks with
real mouse events (the MLflow UI's menus ignore synthetic ``.click()``), types and captures
PNG screenshots. Only what the screenshot script needs.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from worker.mlflow_server import free_port

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
]  # fmt: skip


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("chromium not found: apt-get install -y chromium")


class Page:
    """One tab, driven over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, size: tuple[int, int]) -> None:
        self.ws = ws
        self.size = size
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"DevTools {method} failed: {msg['error']}")
                return dict(msg.get("result", {}))

    async def value(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its JSON value."""
        res = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return res.get("result", {}).get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, condition: str, timeout: float = 60.0) -> None:
        """Poll the JavaScript ``condition`` until it is truthy."""
        deadline = time.monotonic() + timeout
        while not await self.value(f"!!({condition})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page condition not met within {timeout:.0f} s: {condition}")
            await asyncio.sleep(0.2)

    async def click(self, element: str) -> None:
        """Scroll the element (a JavaScript expression) into view and click its centre."""
        await self.wait(element)
        box = await self.value(
            f"(() => {{ const e = ({element}); e.scrollIntoView({{block: 'center'}});"
            " const b = e.getBoundingClientRect(); return [b.x + b.width / 2,"
            " b.y + b.height / 2]; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                clickCount=1,
            )  # fmt: skip

    async def click_until(self, element: str, condition: str, tries: int = 15) -> None:
        """Click until ``condition`` holds (menus may ignore clicks while the page renders)."""
        for _ in range(tries):
            if await self.value(f"!!({condition})"):
                return
            await self.click(element)
            await asyncio.sleep(1.5)
        if not await self.value(f"!!({condition})"):
            raise TimeoutError(f"clicking {element} never led to {condition}")

    async def type(self, selector: str, text: str) -> None:
        await self.value(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.send("Input.insertText", text=text)

    async def screenshot(self, path: Path) -> None:
        data = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))


class Browser:
    """Headless Chromium with a DevTools port on 127.0.0.1, stopped by PID on exit."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1600, 1200)) -> None:
        self.profile = profile
        self.size = size
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Browser:
        cmd = [
            chromium_binary(), *FLAGS, f"--user-data-dir={self.profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
            f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1",
            "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/version", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its DevTools port") from None
                time.sleep(0.2)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    @asynccontextmanager
    async def page(self) -> AsyncIterator[Page]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list") as r:
            targets = json.load(r)
        target = next(t for t in targets if t["type"] == "page")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws,
        ):
            page = Page(ws, self.size)
            await page.send("Page.enable")
            await page.send(
                "Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                deviceScaleFactor=1, mobile=False,
            )  # fmt: skip
            yield page
