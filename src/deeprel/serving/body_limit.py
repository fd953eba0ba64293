"""A cap on the request body, counted while it is read, whatever Content-Length claims.

Starlette's own ``max_body_size`` answers an honest but too large Content-Length with a plain-text
413 that no handler can change; every error of this service is JSON (``{"detail": ...}``), so this
small middleware raises an ``HTTPException`` instead and the app's handlers answer it.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestBodyLimit:
    """ASGI middleware: 413 as soon as the declared or the received body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_large = HTTPException(413, detail=f"request body too large: the limit is {self.max_bytes} bytes")
        received = 0

        async def receive_with_limit() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large
            return message

        await self.app(scope, receive_with_limit, send)
