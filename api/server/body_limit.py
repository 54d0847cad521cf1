"""ASGI middleware that refuses request bodies larger than a limit with 413 (problem+json).

A declared ``Content-Length`` over the limit is refused before anything is read; a chunked
body is read up to the limit and refused as soon as it passes it. Bodies within the limit are
buffered (they are small JSON documents) and replayed to the application.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.server.problems import PROBLEM_JSON, TYPE_PREFIX


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"declared Content-Length {declared}")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(send, f"more than {self.max_bytes} bytes sent")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replay: list[Message] = [
            {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        ]

        async def replay_receive() -> Message:
            if replay:
                return replay.pop()
            return await receive()

        await self.app(scope, replay_receive, send)

    async def _refuse(self, send: Send, what: str) -> None:
        problem: dict[str, Any] = {
            "type": f"{TYPE_PREFIX}body-too-large",
            "title": "Content Too Large",
            "status": 413,
            "detail": (
                f"the request body is too large ({what}); the limit is {self.max_bytes} "
                "bytes: split the grid or shorten the config"
            ),
            "errors": [{"field": "body", "message": "too large", "type": "body_too_large"}],
        }
        payload = json.dumps(problem).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
