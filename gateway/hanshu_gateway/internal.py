"""The gateway's internal port: health, readiness, metrics, the Functions as the gateway
sees them, and the paths only the platform calls (schedules and event sources invoke and
enqueue; the dispatcher runs stored calls), behind the platform's token."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from hanshu_api import INTERNAL_TOKEN_HEADER
from hanshu_api.gateway_paths import (
    DISPATCH_ROUTE,
    ENQUEUE_ROUTE,
    FUNCTIONS_PATH,
    HEALTHZ_PATH,
    INVOKE_ROUTE,
    METRICS_PATH,
    READYZ_PATH,
    REPLICA_INVOKE_PATH,
    RESERVED_PREFIX,
)
from hanshu_api.invocations import EVENT
from hanshu_api.logs import request_id_var
from hanshu_api.loop_lag import LoopLag
from hanshu_api.platform import Endpoint
from hanshu_api.trace_context import TRACEPARENT, TRACESTATE, incoming
from hanshu_api.tracing import NO_TRACING, SERVER, Tracer, current_trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .async_calls import AsyncCalls
from .async_intake import AsyncIntake
from .catalog import Catalog
from .faults import GatewayFault, NotFound, Unauthorized
from .pool import EndpointPool
from .proxy import ProxiedCall, Proxy
from .request_ids import RequestIds

# The paths the platform's token guards (health and metrics stay open to probes).
PlatformHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class InternalPort:
    def __init__(
        self,
        *,
        catalog: Catalog,
        proxy: Proxy,
        async_calls: AsyncCalls,
        intake: AsyncIntake | None,
        ids: RequestIds,
        internal_token: str,
        routes_synced: Callable[[], bool],
        loop_lag: LoopLag | None,
        tracer: Tracer = NO_TRACING,
    ) -> None:
        self.catalog = catalog
        self.proxy = proxy
        self.async_calls = async_calls
        self.intake = intake
        self.ids = ids
        self.internal_token = internal_token
        self.routes_synced = routes_synced
        self.loop_lag = loop_lag
        self.tracer = tracer

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._platform_caller])
        app.router.add_get(HEALTHZ_PATH, self.healthz)
        app.router.add_get(READYZ_PATH, self.readyz)
        app.router.add_get(METRICS_PATH, self.metrics_page)
        app.router.add_get(FUNCTIONS_PATH, self.function_states)
        platform = self._edge
        app.router.add_post(INVOKE_ROUTE, platform(self.invoke))
        app.router.add_post(ENQUEUE_ROUTE, platform(self.enqueue))
        app.router.add_route("*", DISPATCH_ROUTE, platform(self.dispatch))
        return app

    @web.middleware
    async def _platform_caller(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Only the platform (dispatcher, operator) may invoke through this port."""
        token = self.internal_token
        if token and request.path.startswith(RESERVED_PREFIX):
            given = request.headers.get(INTERNAL_TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(errors="replace"), token.encode()):
                # An id of ours: a caller that cannot prove who it is names nothing here.
                return Unauthorized(
                    f"the internal paths need the platform's {INTERNAL_TOKEN_HEADER}",
                    error_type="InvalidInternalToken",
                ).reply(self.ids.new())
        response: web.StreamResponse = await handler(request)
        return response

    def _edge(
        self, handler: PlatformHandler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A platform path's handler, given the request's id, in a server span of the
        caller's trace (the dispatcher's consumer span); its fault rendered here."""

        async def edge(request: web.Request) -> web.StreamResponse:
            request_id = self.ids.of(request.headers)
            trace = incoming(request.headers.get(TRACEPARENT), request.headers.get(TRACESTATE))
            span = self.tracer.start(
                f"{request.method} {request.match_info.route.resource.canonical}"
                if request.match_info.route.resource is not None
                else request.method,
                SERVER,
                trace,
                {"http.request.method": request.method},
            )
            request_token = request_id_var.set(request_id)
            trace_token = current_trace.set(span.context)
            status = 500
            try:
                try:
                    response = await handler(request, request_id)
                except GatewayFault as fault:
                    response = fault.reply(request_id)
                status = response.status
                return response
            finally:
                current_trace.reset(trace_token)
                request_id_var.reset(request_token)
                span.set("http.response.status_code", status)
                if status >= 500:
                    span.fail(f"HTTP {status}")
                span.end()

        return edge

    async def invoke(self, request: web.Request, request_id: str) -> web.StreamResponse:
        """POST /_hanshu/invoke/{namespace}/{function}: a raw event for schedules and event
        sources; it queues and wakes the Function like any request."""
        key = (request.match_info["namespace"], request.match_info["function"])
        entry = self.catalog.functions.get(key)
        if entry is None:
            raise NotFound(f"no Function {key[0]}/{key[1]}", error_type="FunctionNotFound")
        body = await request.read()
        headers = [("Content-Type", "application/json"), ("X-Request-Id", request_id)]
        return await self.proxy.forward(
            ProxiedCall(entry, "POST", REPLICA_INVOKE_PATH, headers, body, request_id, EVENT)
        )

    async def enqueue(self, request: web.Request, request_id: str) -> web.StreamResponse:
        return await self.async_calls.enqueue(request)

    async def dispatch(self, request: web.Request, request_id: str) -> web.StreamResponse:
        return await self.async_calls.dispatch(request, request_id)

    async def function_states(self, request: web.Request) -> web.Response:
        """GET /functions: each Function's ready replicas and requests, as the gateway sees."""
        return web.json_response(
            [
                {
                    "namespace": key[0],
                    "name": key[1],
                    # The Function's own replicas; a specialized warm pool replica serving it
                    # meanwhile is listed apart.
                    "readyReplicas": len(own := _own(entry.pool)),
                    "endpoints": [endpoint.url for endpoint in own],
                    "warmPoolEndpoints": [endpoint.url for endpoint in entry.pool.temporary],
                    "inFlight": entry.stats.in_flight,
                    "queued": entry.pool.queued,
                }
                for key, entry in sorted(self.catalog.functions.items())
            ]
        )

    async def healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the proof of life: long work runs in slices, so a gateway
        # catching up on 10,000 routes answers between two of them. The lag says how busy.
        lag = self.loop_lag.summary().as_dict() if self.loop_lag else {}
        return web.json_response({"status": "alive", "eventLoopLag": lag})

    async def readyz(self, request: web.Request) -> web.Response:
        # Not before the routes are known: a new gateway pod taking traffic with an empty
        # table would answer 404 NoRoute for every Trigger during a rollout.
        if not self.routes_synced():
            return web.json_response({"status": "syncing"}, status=503)
        # NATS does not decide readiness: synchronous calls are served without it, and an
        # async call meanwhile gets 503 AsyncUnavailable. It is reported, for operators.
        asynchronous = (
            "off"
            if self.intake is None
            else ("connected" if self.intake.available else "unavailable")
        )
        return web.json_response({"status": "ready", "async": asynchronous})

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


__all__ = ["InternalPort"]


def _own(pool: EndpointPool) -> list[Endpoint]:
    return [endpoint for endpoint in pool.ready if not pool.is_temporary(endpoint)]
