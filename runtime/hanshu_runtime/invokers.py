"""One invoker per handler type: each turns a request (or a raw event) into a reply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .asgi import AsgiApp, Lifespan, build_scope, call_asgi
from .config import HandlerType, RuntimeConfig
from .context import Context
from .http_events import PAYLOAD_FORMAT_2, HttpRequest, build_event, build_event_v2
from .loader import is_async_callable, load_callable, parse_handler_ref
from .replies import HttpReply, build_reply, build_reply_v2
from .workers import HandlerThreads
from .wsgi import WsgiApp, build_environ, call_wsgi


class UnsupportedInvocation(Exception):
    """``/_hanshu/invoke`` sent to a web app, which only understands HTTP."""


@dataclass(slots=True)
class EventInvoker:
    handler: Callable[..., Any]
    threads: HandlerThreads
    is_async: bool

    @property
    def runs_in_thread(self) -> bool:
        return not self.is_async

    async def invoke(self, event: Any, context: Context) -> Any:
        if self.is_async:
            return await self.handler(event, context)
        return await self.threads.submit(self.handler, event, context)

    async def http(self, request: HttpRequest, context: Context) -> HttpReply:
        if request.payload_format == PAYLOAD_FORMAT_2:
            result = await self.invoke(build_event_v2(request, context.request_id), context)
            return build_reply_v2(result)
        result = await self.invoke(build_event(request, context.request_id), context)
        return build_reply(result)


@dataclass(slots=True)
class WsgiInvoker:
    app: WsgiApp
    threads: HandlerThreads
    server: tuple[str, int]
    runs_in_thread = True

    async def invoke(self, event: Any, context: Context) -> Any:
        raise UnsupportedInvocation("a WSGI app is called over HTTP, not with raw events")

    async def http(self, request: HttpRequest, context: Context) -> HttpReply:
        environ = build_environ(request, *self.server)
        reply: HttpReply = await self.threads.submit(call_wsgi, self.app, environ)
        return reply


@dataclass(slots=True)
class AsgiInvoker:
    app: AsgiApp
    lifespan: Lifespan
    server: tuple[str, int]
    runs_in_thread = False

    async def invoke(self, event: Any, context: Context) -> Any:
        raise UnsupportedInvocation("an ASGI app is called over HTTP, not with raw events")

    async def http(self, request: HttpRequest, context: Context) -> HttpReply:
        scope = build_scope(request, self.server, 0)
        scope["state"] = dict(self.lifespan.state)
        return await call_asgi(self.app, scope, request.body)


Invoker = EventInvoker | WsgiInvoker | AsgiInvoker


def load_invoker(config: RuntimeConfig, threads: HandlerThreads) -> Invoker:
    """Import the user's code; every failure is a typed ``StartupFault``."""
    target = load_callable(parse_handler_ref(config.handler), config.code_dir)
    server = (config.function_name, config.port)
    if config.handler_type is HandlerType.WSGI:
        return WsgiInvoker(target, threads, server)
    if config.handler_type is HandlerType.ASGI:
        return AsgiInvoker(target, Lifespan(target), server)
    return EventInvoker(target, threads, is_async_callable(target))
