"""The instance: the function port (every path is the function's), the admin port
(``/healthz``, ``/readyz``, ``/metrics``), start-up, and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import enum
import gc
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from .config import RuntimeConfig
from .context import SYNC, Context, FunctionInfo, invocation_of
from .deadlines import Deadline, RequestIds
from .events import PREFIX_HEADER, HttpRequest, mount_prefix
from .faults import ConfigError, InitializerError, InvalidResponse, error_body
from .invokers import AsgiInvoker, Invoker, UnsupportedInvocation, load_invoker
from .loader import is_async_callable, load_callable, parse_handler_ref
from .logs import request_id_var
from .metrics import FunctionMetrics
from .replies import HttpReply, to_json_bytes
from .workers import HandlerThreads

log = logging.getLogger("hanshu.runtime")
user_log = logging.getLogger("hanshu.function")

INVOKE_PATH = "/_hanshu/invoke"
# The gateway's own readiness probe on the function port (it probes a starting replica
# every few milliseconds rather than wait for the kubelet's probe and the EndpointSlice):
# the admin /readyz's answer, without the function, the request id or any metric.
READY_PATH = "/_hanshu/ready"
# Only this runtime's own "draining" 503 carries it: the gateway retries such a request on
# another replica, so a function must never be able to send it (it is stripped from replies).
DRAINING_HEADER = "X-Hanshu-Draining"
_READ_CHUNK = 64 * 1024


class Phase(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


class BodyTooLarge(Exception):
    pass


def _json_response(status: int, payload: Any, request_id: str, **headers: str) -> web.Response:
    response = web.Response(
        status=status, body=to_json_bytes(payload), content_type="application/json"
    )
    response.headers["X-Request-Id"] = request_id
    response.headers.update(headers)
    return response


def _error(
    status: int, error_type: str, message: str, request_id: str, **headers: str
) -> web.Response:
    return _json_response(
        status, error_body(error_type, message, request_id), request_id, **headers
    )


async def _read_body(request: web.BaseRequest, limit: int) -> bytes:
    if not request.body_exists:
        return b""
    length = request.content_length
    if length is not None:
        if length > limit:
            raise BodyTooLarge
        return await request.content.readexactly(length)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _to_http_request(request: web.BaseRequest, body: bytes) -> HttpRequest:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return HttpRequest(
        method=request.method,
        path=request.rel_url.raw_path,
        raw_query=request.rel_url.raw_query_string,
        headers=request.headers.items(),
        body=body,
        client_ip=peer[0] if peer else "",
        # The gateway terminates TLS; it says what the caller used.
        scheme=request.headers.get("X-Forwarded-Proto") or request.scheme,
        protocol=f"HTTP/{request.version.major}.{request.version.minor}",
        # The gateway strips a Trigger's prefix and says which: apps build URLs with it.
        prefix=mount_prefix(request.headers.get(PREFIX_HEADER)),
    )


async def _invoke_reply(invoker: Invoker, event: Any, context: Context) -> HttpReply:
    """``/_hanshu/invoke``: the raw event in, the handler's result as JSON out."""
    result = await invoker.invoke(event, context)
    return HttpReply(200, [("Content-Type", "application/json")], to_json_bytes(result))


async def _listen(site: web.TCPSite, variable: str) -> None:
    """Start listening; a port that cannot be had is a start-up fault, not a traceback."""
    try:
        await site.start()
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {site.name}: {error.strerror or error}",
            f"set {variable} to a free port (or stop what is using it)",
        ) from None


class Instance:
    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.phase = Phase.STARTING
        self.in_flight = 0
        self.metrics = FunctionMetrics(config.function_name, lambda: self.in_flight)
        self._metrics_registered = False
        self._request_ids = RequestIds()
        self._function = FunctionInfo(
            name=config.function_name,
            handler=config.handler,
            version=config.function_version,
            memory=config.memory_mb,
            timeout=config.timeout_seconds,
            namespace=config.namespace,
            instance=config.instance,
        )
        self._idle = asyncio.Event()
        self._idle.set()
        self._stop = asyncio.Event()
        self._threads = HandlerThreads(asyncio.get_running_loop())
        self._invoker: Invoker | None = None

    # -- the function port ------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.raw_path == READY_PATH and request.method == "GET":
            return web.Response(status=200 if self.phase is Phase.READY else 503)
        request_id = request.headers.get("X-Request-Id") or self._request_ids.next()
        if self.phase is not Phase.READY or self._invoker is None:
            self.metrics.count("rejected")
            return _error(
                503,
                "Draining",
                "this instance is shutting down; retry",
                request_id,
                Connection="close",
                **{DRAINING_HEADER: "true"},
            )
        if self.in_flight >= self.config.concurrency:
            self.metrics.count("throttled")
            return _error(
                429,
                "TooManyRequests",
                f"this instance is at its concurrency limit of {self.config.concurrency}",
                request_id,
                **{"Retry-After": "1"},
            )
        self.in_flight += 1
        self._idle.clear()
        token = request_id_var.set(request_id)
        try:
            return await self._invoke(request, request_id, self._invoker)
        finally:
            request_id_var.reset(token)
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def _invoke(
        self, request: web.BaseRequest, request_id: str, invoker: Invoker
    ) -> web.StreamResponse:
        config = self.config
        metrics = self.metrics
        try:
            body = await _read_body(request, config.max_body_bytes)
        except BodyTooLarge:
            metrics.count("rejected")
            return _error(
                413,
                "RequestTooLarge",
                f"the request body is over the limit of {config.max_body_bytes} bytes",
                request_id,
                Connection="close",
            )
        call: Awaitable[HttpReply]
        # The raw path: no encoded spelling of it (/_hanshu%2Finvoke) reaches the raw-event
        # entry point, whatever a proxy in front decodes or does not.
        if request.method == "POST" and request.rel_url.raw_path == INVOKE_PATH:
            try:
                event = json.loads(body) if body else {}
            except ValueError as error:
                metrics.count("rejected")
                return _error(
                    400,
                    "InvalidRequestContent",
                    f"the invoke body is not JSON: {error}",
                    request_id,
                )
            call = _invoke_reply(invoker, event, self._context(request_id, request.headers))
        else:
            call = invoker.http(
                _to_http_request(request, body), self._context(request_id, request.headers)
            )
        started = time.perf_counter()
        try:
            with Deadline(config.timeout_seconds):
                reply = await call
        except Deadline.Expired:
            metrics.observe("timeout", time.perf_counter() - started)
            if invoker.runs_in_thread:
                metrics.abandoned_threads += 1
            log.error("invocation timed out after %gs", config.timeout_seconds)
            return _error(
                504,
                "FunctionTimeout",
                f"the function did not return within its timeout of {config.timeout_seconds:g}s",
                request_id,
            )
        except UnsupportedInvocation as error:
            metrics.count("rejected")
            return _error(400, "UnsupportedInvocation", str(error), request_id)
        except InvalidResponse as error:
            metrics.observe("invalid_response", time.perf_counter() - started)
            log.error("the handler's reply is invalid: %s", error)
            return _error(502, InvalidResponse.error_type, str(error), request_id)
        except Exception as error:
            # User code raised: its type and message go to the caller, the trace to the log.
            metrics.observe("error", time.perf_counter() - started)
            log.exception("the handler raised")
            return _error(500, type(error).__name__, str(error), request_id)
        metrics.observe("success", time.perf_counter() - started)
        headers = CIMultiDict(reply.headers)
        headers.popall(DRAINING_HEADER, None)
        headers["X-Request-Id"] = request_id
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    def _context(
        self,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Context:
        invocation_id, attempt, invocation_type = (
            invocation_of(headers, request_id) if headers else (request_id, 1, SYNC)
        )
        return Context(
            request_id,
            self._function,
            time.monotonic() + (self.config.timeout_seconds if timeout is None else timeout),
            user_log,
            invocation_id,
            attempt,
            invocation_type,
        )

    # -- the admin port ---------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "phase": self.phase.value})

    async def readyz(self, request: web.Request) -> web.Response:
        status = 200 if self.phase is Phase.READY else 503
        return web.json_response({"phase": self.phase.value}, status=status)

    async def metrics_page(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if not self._metrics_registered:  # at the first scrape, not before the first answer
            self.metrics.register()
            self._metrics_registered = True
        response = web.Response(body=generate_latest())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        return app

    # -- lifecycle --------------------------------------------------------------------------

    async def load(self) -> None:
        """Import the handler and run the initializer; raises ``StartupFault``."""
        started = time.perf_counter()
        self._invoker = load_invoker(self.config, self._threads)
        if isinstance(self._invoker, AsgiInvoker):
            await self._invoker.lifespan.startup(self.config.initializer_timeout_seconds)
        if self.config.initializer:
            await self._run_initializer(self.config.initializer)
        self.metrics.init_seconds = time.perf_counter() - started

    async def _run_initializer(self, spec: str) -> None:
        ref = parse_handler_ref(spec, variable="HANSHU_INITIALIZER")
        initializer = load_callable(ref, self.config.code_dir, variable="HANSHU_INITIALIZER")
        timeout = self.config.initializer_timeout_seconds
        # uuid would import platform & co. at start-up for this one id: 16 random bytes do.
        context = self._context(os.urandom(16).hex(), timeout=timeout)
        try:
            with Deadline(timeout):
                if is_async_callable(initializer):
                    await initializer(context)
                else:
                    await self._threads.submit(initializer, context)
        except Deadline.Expired:
            raise InitializerError(
                f"the initializer '{spec}' did not finish within {timeout:g}s",
                "make it faster or raise HANSHU_INITIALIZER_TIMEOUT",
            ) from None
        except Exception as error:
            log.exception("the initializer raised")
            raise InitializerError(
                f"the initializer '{spec}' raised {type(error).__name__}: {error}",
                "fix the initializer (the stack trace is in the log)",
            ) from error

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)

        admin_runner = web.AppRunner(self.admin_app(), access_log=None)
        await admin_runner.setup()
        await _listen(
            web.TCPSite(admin_runner, config.host, config.admin_port), "HANSHU_ADMIN_PORT"
        )
        function_runner: web.ServerRunner | None = None
        try:
            await self.load()
            function_runner = web.ServerRunner(
                web.Server(self.handle, access_log=None), shutdown_timeout=1.0
            )
            await function_runner.setup()
            site = web.TCPSite(function_runner, config.host, config.port, backlog=1024)
            await _listen(site, "HANSHU_PORT")
            # What is loaded now lives as long as the process: keep the GC from rescanning it.
            gc.freeze()
            gc.enable()  # ``python -m hanshu_runtime`` keeps it off while starting
            self.phase = Phase.READY
            log.info(
                "ready",
                extra={
                    "handler": config.handler,
                    "port": config.port,
                    "adminPort": config.admin_port,
                    "handlerType": config.handler_type.value,
                },
            )
            await self._stop.wait()
            await self._drain(site)
        finally:
            if function_runner is not None:
                await function_runner.cleanup()
            if isinstance(self._invoker, AsgiInvoker):
                await self._invoker.lifespan.shutdown(config.drain_seconds)
            await admin_runner.cleanup()
            self._threads.shutdown()

    async def _drain(self, site: web.TCPSite) -> None:
        self.phase = Phase.DRAINING
        await site.stop()  # no new connections
        log.info("draining", extra={"inFlight": self.in_flight})
        try:
            async with asyncio.timeout(self.config.drain_seconds):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "drain time of %gs ran out with %d requests in flight",
                self.config.drain_seconds,
                self.in_flight,
            )
        log.info("drained")
