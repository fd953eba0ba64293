"""An optional bearer token: with a key set, every request but ``GET /health`` must carry
``Authorization: Bearer <key>``.

A small ASGI middleware (as :mod:`deeprel.serving.body_limit`) rather than a FastAPI dependency, so that
it covers every route at once, the page and its static files included, and none can be added without it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ENVIRONMENT = "DEEPREL_API_KEY"
OPEN = {("GET", "/health")}  # what a load balancer or an orchestrator probes without a key


class BearerToken:
    """ASGI middleware: 401 (JSON ``{"detail": ...}``, ``WWW-Authenticate: Bearer``) for a request without
    the key, compared in constant time."""

    def __init__(self, app: ASGIApp, key: SecretStr) -> None:
        self.app = app
        self._key = key.get_secret_value().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (scope.get("method"), scope["path"]) in OPEN:
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("latin-1"), self._key):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before the handshake: the server answers 403
        else:
            detail = "invalid API key" if scheme else "this service needs an API key: Authorization: Bearer <key>"
            await JSONResponse({"detail": detail}, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


def parse_api_key(text: str, source: str) -> SecretStr:
    """The key in ``text`` (surrounding whitespace stripped); ``ValueError`` naming ``source`` if it is empty or
    could not travel in an HTTP header."""
    key = text.strip()
    if not key:
        raise ValueError(f"{source}: the API key is empty")
    if not all("!" <= character <= "~" for character in key):
        raise ValueError(f"{source}: the API key must be printable ASCII without spaces (it is sent in a header)")
    return SecretStr(key)


def read_api_key(path: Path) -> SecretStr:
    """The key in the file ``path``; ``ValueError`` naming the file if it is unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ValueError(f"{path}: cannot read the API key: {reason}") from None
    return parse_api_key(text, str(path))


def configured_api_key(key_file: Path | None, environ: Mapping[str, str]) -> SecretStr | None:
    """The key in ``key_file`` when one is given, else in ``$DEEPREL_API_KEY`` when that is set, else none."""
    if key_file is not None:
        return read_api_key(key_file)
    if ENVIRONMENT in environ:
        return parse_api_key(environ[ENVIRONMENT], f"${ENVIRONMENT}")
    return None
