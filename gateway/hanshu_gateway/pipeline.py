"""The gateway: a public request's way through it, and the servers' lifecycle (the public
port serves every HTTP Trigger; the internal port is internal.py's).

A public request goes, top to bottom in ``Gateway.handle``: its route (routing.py), the
route's guards (guards.py: CORS, API key, rate limit), its body, then the async hand-off
(async_calls.py) or the hop to a replica (proxy.py). Each step raises the fault refusing
the request (faults.py); the edge renders it once, with the request's id.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from hanshu_api.invocations import (
    HTTP_INVOCATION_TYPE,
    SYNC,
    StoredRequest,
    invocation_type_of,
)
from hanshu_api.jetstream import StreamSettings
from hanshu_api.logs import request_id_var
from hanshu_api.loop_lag import LoopLag, watch_loop
from hanshu_api.models import Cors
from hanshu_api.platform import WarmPool
from hanshu_api.trace_context import TRACEPARENT, TRACESTATE, TraceContext, incoming
from hanshu_api.tracing import SERVER, current_trace, tracer_from_env

from . import metrics
from .async_calls import AsyncCalls, is_status_path
from .async_intake import AsyncIntake
from .catalog import Catalog
from .faults import (
    CLOSE_CONNECTION,
    BadRequest,
    GatewayFault,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unavailable,
    error_reply,
)
from .guards import check_api_key, check_rate, echoable, is_preflight, preflight_reply
from .internal import InternalPort
from .object_notifications import ObjectNotifications, is_events_path
from .protect import response_cors_headers
from .proxy import ProxiedCall, Proxy, upstream_headers
from .public_http import BodyTooLarge, PublicRequest, PublicServer
from .request_ids import RequestIds
from .routes import Route
from .routing import Routed, RouteFinder
from .settings import ConfigError, GatewayConfig, config_from_env
from .stats import StatsReporter
from .upstream import UpstreamPool
from .warm_start import WarmStarts

log = logging.getLogger("hanshu.gateway")


def _function_missing(route: Route, headers: Mapping[str, str]) -> GatewayFault:
    """A route whose Function is not there (yet): a synchronous caller may try again; an
    async call must never be taken for it."""
    message = f"the Function '{route.function}' of this route does not exist"
    if invocation_type_of(headers) in (SYNC, None):
        return Unavailable(message, error_type="FunctionNotFound")
    return NotFound(message, error_type="FunctionNotFound")


class Gateway:
    def __init__(
        self, config: GatewayConfig, catalog: Catalog, warm_pool: WarmPool | None = None
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.reporter = (
            StatsReporter(config.autoscaler_url, catalog.all_stats, config.stats_interval)
            if config.autoscaler_url
            else None
        )
        # Never a cookie jar on this hop: one client serves every caller.
        self._upstream = UpstreamPool()
        self.ids = RequestIds()
        self.routes = RouteFinder(catalog)
        # Spans only when OTEL_EXPORTER_OTLP_ENDPOINT is set (OpenTelemetry is not even
        # imported otherwise); the trace headers are carried either way.
        self.tracer = tracer_from_env("hanshu-gateway")
        # The warm pool (hanshu_api.warm_pool), when the platform has one: cold requests
        # are then also served by a specialized pool replica while their Function starts.
        self.warm_starts = WarmStarts(warm_pool) if warm_pool is not None else None
        self.proxy = Proxy(
            self._upstream,
            self.reporter,
            config.cold_start_timeout,
            self.warm_starts,
            fault_details=config.fault_details,
            tracer=self.tracer,
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._runners: list[web.BaseRunner] = []
        self._public: PublicServer | None = None
        self.loop_lag: LoopLag | None = None
        # Whether every source has delivered its first full state (the cluster's watches);
        # set before start(), which hands it to the internal port's /readyz.
        self.routes_synced: Callable[[], bool] = lambda: True
        self.intake = (
            AsyncIntake(config.nats.url, StreamSettings.of(config.nats, config.windows))
            if config.nats.url
            else None
        )
        self.async_calls = AsyncCalls(
            self.intake, catalog, self.proxy, max_batch_bytes=config.max_body_bytes
        )
        self.object_notifications = ObjectNotifications(
            catalog, self.intake, config.sns_confirm_hosts
        )

    # -- the public port ------------------------------------------------------------------

    def refusal(self, status: int, error_type: str, message: str) -> web.StreamResponse:
        """A reply to a request that could not be parsed: the same JSON as any other."""
        return error_reply(status, error_type, message, self.ids.new())

    async def handle(self, request: PublicRequest) -> web.StreamResponse:
        """A public request, from its route to its reply, in a server span of its trace:
        the caller's ``traceparent`` when it parses, else a new trace."""
        request_id = self.ids.of(request.headers)
        headers = request.headers
        trace = incoming(headers.get(TRACEPARENT), headers.get(TRACESTATE))
        request_token = request_id_var.set(request_id)
        try:
            if not self.tracer.enabled:  # the common case: no span, no attributes built
                trace_token = current_trace.set(trace)
                try:
                    return await self._route(request, request_id)
                finally:
                    current_trace.reset(trace_token)
            return await self._traced(request, request_id, trace)
        finally:
            request_id_var.reset(request_token)

    async def _traced(
        self, request: PublicRequest, request_id: str, trace: TraceContext
    ) -> web.StreamResponse:
        span = self.tracer.start(
            request.method, SERVER, trace, {"http.request.method": request.method}
        )
        trace_token = current_trace.set(span.context)
        status = 500
        try:
            response = await self._route(request, request_id)
            status = response.status
            return response
        finally:
            current_trace.reset(trace_token)
            span.set("http.response.status_code", status)
            if status >= 500:
                span.fail(f"HTTP {status}")
            span.end()

    async def _route(self, request: PublicRequest, request_id: str) -> web.StreamResponse:
        cors: Cors | None = None
        origin: str | None = None
        try:
            raw_path = request.raw_path
            if is_status_path(raw_path):
                return await self.async_calls.status(request, request_id)
            if is_events_path(raw_path):
                return await self.object_notifications.handle(request, request_id)
            routed = self.routes.find(raw_path, request.host, request.method)
            cors = routed.route.http.cors
            if cors is not None:
                # Echoed back in CORS headers: an Origin no browser could send counts as none.
                origin = echoable(request.headers.get("Origin"))
                if origin and is_preflight(request.method, request.headers):
                    return preflight_reply(cors, origin, request.headers, request_id)
            response = await self._serve(request, routed, request_id)
        except GatewayFault as fault:
            response = fault.reply(request_id)
        if cors is not None and origin:
            response.headers.update(response_cors_headers(cors, origin))
        return response

    async def _serve(
        self, request: PublicRequest, routed: Routed, request_id: str
    ) -> web.StreamResponse:
        """The routed request's guards, its body, then the async hand-off or the hop to a
        replica: counted by status and timed, whatever the outcome."""
        route = routed.route
        started = time.monotonic()
        entry = self.catalog.functions.get(route.function_key)
        status = 500
        try:
            if entry is None:
                raise _function_missing(route, request.headers)
            if route.http.auth is not None:
                check_api_key(request.headers, route, self.catalog.key_verifiers)
            invocation_type = invocation_type_of(request.headers)
            if invocation_type is None:
                raise BadRequest(
                    f"{HTTP_INVOCATION_TYPE} must be Sync, Async or Batch",
                    error_type="InvalidInvocationType",
                )
            bucket = self.catalog.bucket(route)
            if bucket is not None:
                check_rate(bucket, time.monotonic())
            limit = self.config.max_body_bytes
            try:
                body = await request.read(limit, self.config.read_timeout)
            except BodyTooLarge:
                raise PayloadTooLarge(
                    f"the body is over the limit of {limit} bytes", headers=CLOSE_CONNECTION
                ) from None
            except TimeoutError:
                raise RequestTimeout(
                    "the request body did not arrive in time", headers=CLOSE_CONNECTION
                ) from None
            headers = upstream_headers(request, routed, request_id, self.config.trusted_proxies)
            # The raw target, never a decoded one: decoding is the replica's, and only once.
            path = routed.target.upstream
            if invocation_type == SYNC:
                response = await self.proxy.forward(
                    ProxiedCall(
                        entry, request.method, path, headers, body, request_id, SYNC, routed.host
                    )
                )
            else:
                stored = StoredRequest(request.method, path, tuple(headers))
                response = await self.async_calls.accept(
                    invocation_type, route, entry, stored, body, request.headers, request_id
                )
            status = response.status
            return response
        except GatewayFault as fault:
            status = fault.status
            raise
        finally:
            metrics.count_request(route.namespace, route.function, route.trigger, status)
            if entry is not None:
                entry.meters.latency.observe(time.monotonic() - started)

    # -- the internal port ----------------------------------------------------------------

    def internal_app(self) -> web.Application:
        return InternalPort(
            catalog=self.catalog,
            proxy=self.proxy,
            async_calls=self.async_calls,
            intake=self.intake,
            ids=self.ids,
            internal_token=self.config.internal_token,
            routes_synced=self.routes_synced,
            loop_lag=self.loop_lag,
            tracer=self.tracer,
        ).app()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._public = PublicServer(
            self.handle,
            self.refusal,
            max_body_bytes=self.config.max_body_bytes,
            header_timeout=self.config.header_timeout,
            keepalive_timeout=self.config.keepalive_timeout,
        )
        await self._public.start(self.config.host, self.config.port, backlog=2048)
        self.loop_lag = watch_loop()
        internal = web.AppRunner(self.internal_app(), access_log=None)
        await internal.setup()
        site = web.TCPSite(internal, self.config.host, self.config.internal_port, backlog=2048)
        await site.start()
        self._runners.append(internal)
        if self.reporter is not None:
            self._tasks.append(asyncio.create_task(self.reporter.run()))
        # What is alive once serving starts (modules, the route table, clients) stays alive:
        # moved out of the collector's sight, so its full passes stop walking it over and
        # over under load (they were about 5% of the gateway's CPU on the warm path).
        gc.freeze()
        if self.intake is not None:
            self.intake.start()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._public is not None:
            await self._public.close(grace=10.0)
        for runner in self._runners:
            await runner.cleanup()
        if self.reporter is not None:
            await self.reporter.close()
        if self.intake is not None:
            await self.intake.close()
        await self.object_notifications.close()
        if self.warm_starts is not None:
            await self.warm_starts.close()
        self._upstream.close()
        self.tracer.shutdown()  # the spans still batched go out before the exit


__all__ = ["ConfigError", "Gateway", "GatewayConfig", "config_from_env"]
