"""Request body size limit: a pure ASGI middleware, so nothing buffers a huge body first.

Every request body of this API is a small JSON document (a camera is < 5 KB). A client
that sends megabytes is either broken or trying to exhaust memory; it gets
``413 Request Entity Too Large`` with a JSON ``detail`` before the body is read, when it
declares a ``Content-Length``, or as soon as the streamed (chunked) body passes the limit.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """The request body is larger than the limit (FastAPI turns it into a 413 response)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes")


class BodySizeLimit:
    """Reject request bodies larger than ``max_bytes`` with 413.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest accepted body, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(send, self.max_bytes)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # A lying or absent Content-Length: stop reading here.
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Raised outside FastAPI's exception handling (e.g. a middleware read the body).
            if started:
                raise
            await self._reject(send, self.max_bytes)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"request body too large: the limit is {limit} bytes"}).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # malformed: the server rejects it; the streaming count still applies
    return None


def install_body_limit(app: FastAPI, max_bytes: int = MAX_BODY_BYTES) -> None:
    """Add :class:`BodySizeLimit` to ``app`` (call once, from ``create_app``)."""
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
