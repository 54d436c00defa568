"""ASGI middleware and the API-key check of the HTTP service.

- :class:`BodyLimit` answers 413 to bodies over the limit. It rejects a too-large Content-Length
  at once, and also counts the bytes that really arrive (a client can send a false or no
  Content-Length, e.g. a chunked body), so the app never reads more than the limit.
- :class:`CatchAll` turns any unexpected exception into a generic JSON 500 and logs the
  traceback server-side: no stack trace ever reaches a client.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

#: default body limit: a liked list of MAX_HISTORY ids fits with room to spare
DEFAULT_MAX_BODY = 64 * 1024


async def send_json(send: Send, status_code: int, body: dict[str, Any]) -> None:
    """Send a whole JSON response on a raw ASGI ``send``."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413, reading at most that much."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"detail": f"request body larger than {self.max_bytes} bytes"}
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await send_json(send, 413, too_large)
            return
        # read the whole (small) body up front, counting real bytes, then replay it to the app
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as servers do

        await self.app(scope, replay, send)


class CatchAll:
    """A generic JSON 500 for unexpected errors; the traceback goes to the server log only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(send, 500, {"detail": "internal server error"})


# declared as security schemes, so /docs shows an Authorize button for either form
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")
_bearer = HTTPBearer(auto_error=False, description="the server's API key as a bearer token")


class ApiKeyCheck:
    """FastAPI dependency: the request carries the key (``X-API-Key`` or ``Bearer``), if one is set.

    Compared in constant time, so response timing does not reveal how much of a guess matched.
    """

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key.encode() if api_key else None

    async def __call__(
        self,
        header: str | None = Depends(_key_header),
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> None:
        if self.api_key is None:
            return
        given = header or (bearer.credentials if bearer is not None else None)
        if given is None or not hmac.compare_digest(given.encode(), self.api_key):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong API key: send it as X-API-Key or Authorization: Bearer",
                headers={"WWW-Authenticate": "Bearer"},
            )
