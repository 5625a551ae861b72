"""Call an ASGI app (FastAPI, Starlette, Django ASGI) with a faithful HTTP scope, and run its
lifespan protocol once at start-up and once at shut-down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, unquote

from hanshu_wire import SERVER_OWNED_HEADERS

from .faults import InitializerError
from .http_events import HttpRequest, server_address
from .replies import HttpReply

Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]

log = logging.getLogger("hanshu.runtime")


# RFC 3986 pchar punctuation: what a path segment may carry unencoded.
_PATH_SAFE = "/!$&'()*+,;=:@"


def build_scope(request: HttpRequest, server: tuple[str, int], client_port: int) -> dict[str, Any]:
    path = unquote(request.path)
    raw_path = request.path.encode("latin-1", "replace")
    prefix = request.prefix
    if prefix:
        # The ASGI spec derives PATH_INFO "by stripping root_path from path", so path
        # includes root_path; uvicorn's --root-path does the same and Starlette's router
        # strips it again (starlette._utils.get_route_path).
        path = prefix + path
        raw_path = quote(prefix, safe=_PATH_SAFE).encode("ascii") + raw_path
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.protocol.removeprefix("HTTP/"),
        "method": request.method,
        "scheme": request.scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": request.raw_query.encode("latin-1", "replace"),
        "root_path": prefix,
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
            for name, value in request.headers
        ],
        "client": (request.client_ip, client_port),
        # The caller's host (as the gateway passed it on), as apps build URLs from it.
        "server": server_address(request.host, request.scheme, server),
        "state": {},
    }


async def call_asgi(app: AsgiApp, scope: dict[str, Any], body: bytes) -> HttpReply:
    reply = HttpReply(500)
    chunks: list[bytes] = []
    body_sent = False
    finished = asyncio.Event()

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            reply.status = int(message["status"])
            reply.headers = [
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", [])
                if bytes(k).decode("latin-1").lower() not in SERVER_OWNED_HEADERS
            ]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    reply.body = b"".join(chunks)
    return reply


class Lifespan:
    """ASGI lifespan: startup before the instance is ready, shutdown after it drained."""

    def __init__(self, app: AsgiApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True
        self.state: dict[str, Any] = {}

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self._app(scope, self._inbox.get, self._outbox.put)
        except Exception:
            # The spec: an app that raises on the lifespan scope does not support it.
            self._supported = False
            log.info("the ASGI app does not support the lifespan protocol; continuing")
        finally:
            await self._outbox.put({"type": "hanshu.lifespan.ended"})

    async def startup(self, seconds: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        try:
            async with asyncio.timeout(seconds):
                message = await self._outbox.get()
        except TimeoutError:
            raise InitializerError(
                f"the ASGI app's lifespan startup did not finish within {seconds:g}s",
                "make startup faster or raise HANSHU_INITIALIZER_TIMEOUT",
            ) from None
        if message["type"] == "lifespan.startup.failed":
            raise InitializerError(
                f"the ASGI app's lifespan startup failed: {message.get('message', '')}",
                "fix the app's startup code (see the log)",
            )

    async def shutdown(self, seconds: float) -> None:
        if self._task is None or not self._supported or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            async with asyncio.timeout(seconds):
                message = await self._outbox.get()
            if message["type"] == "lifespan.shutdown.failed":
                log.error("the ASGI app's lifespan shutdown failed: %s", message.get("message"))
        except TimeoutError:
            log.error("the ASGI app's lifespan shutdown did not finish within %gs", seconds)
            self._task.cancel()
