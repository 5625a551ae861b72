"""The instance: the function port (every path is the function's), the admin port
(``/healthz``, ``/readyz``, ``/metrics``), start-up, and draining on SIGTERM.

In pool mode (``HANSHU_POOL=1``, docs/concepts.md "Warm pool") both ports listen before
any code is known: ``/readyz`` says not ready (a pool replica is in no Service), the
function port refuses with 503 ``NotSpecialized``, and ``POST /_hanshu/specialize`` on the
admin port, with the pool token, hands it one Function for good (specialize.py).
"""

from __future__ import annotations

import asyncio
import enum
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from typing import Any

from . import lambda_env
from .config import RuntimeConfig, config_from_env
from .context import SYNC, Context, FunctionInfo, invocation_of
from .deadlines import Deadline, RequestIds
from .faults import ConfigError, InitializerError, InvalidResponse, StartupFault, error_body
from .http_events import (
    PAYLOAD_FORMAT_1,
    PAYLOAD_FORMAT_HEADER,
    PREFIX_HEADER,
    RESOURCES_HEADER,
    HttpRequest,
    mount_prefix,
)
from .http_server import Headers, HttpServer, Request, Response, invalid_reply, json_response
from .invokers import AsgiInvoker, Invoker, UnsupportedInvocation, load_invoker
from .loader import is_async_callable, load_callable, parse_handler_ref
from .logs import configure_logging, request_id_var, trace_id_var
from .metrics import FunctionMetrics
from .replies import HttpReply, to_json_bytes
from .specialize import (
    MAX_SPECIALIZE_BYTES,
    SPECIALIZE_PATH,
    SpecializeInvalid,
    apply_env,
    bearer_matches,
    parse_specialization,
    write_code,
)
from .tracing import (
    TRACEPARENT,
    TRACESTATE,
    SpanExporting,
    format_traceparent,
    new_traceparent,
    parse_traceparent,
    span_exporting,
)
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
# A function's reply never carries these: the first is ours alone, the second is set here.
_REPLACED_REPLY_HEADERS = frozenset({DRAINING_HEADER.lower(), "x-request-id"})
_MAX_REQUEST_ID = 200
# Draining ends once no request has come for this long (or every client has hung up).
_DRAIN_QUIET_SECONDS = 1.0
# The admin port takes no bodies.
_ADMIN_MAX_BODY = 1024


class Phase(enum.Enum):
    STARTING = "starting"
    # Pool mode: serving nothing until specialized; FAILED: its specialization failed, and
    # it stays refusing for good (the platform discards it).
    POOLED = "pooled"
    SPECIALIZING = "specializing"
    FAILED = "failed"
    READY = "ready"
    DRAINING = "draining"


def _error(status: int, error_type: str, message: str, request_id: str, **headers: str) -> Response:
    return Response(
        status,
        [
            ("Content-Type", "application/json"),
            ("X-Request-Id", request_id),
            *headers.items(),
        ],
        to_json_bytes(error_body(error_type, message, request_id)),
        close=headers.get("Connection") == "close",
    )


def _with_trace(request: Request, traceparent: str, keep_state: bool) -> None:
    """The request as the handler sees it: ``traceparent`` in its headers (and no
    ``tracestate`` when the caller's came with a traceparent that was not usable)."""
    dropped = (TRACEPARENT,) if keep_state else (TRACEPARENT, TRACESTATE)
    headers = [(name, value) for name, value in request.headers if name.lower() not in dropped]
    headers.append((TRACEPARENT, traceparent))
    request.headers = headers
    request.by_name = Headers(headers)


def _to_http_request(request: Request) -> HttpRequest:
    headers = request.by_name
    return HttpRequest(
        method=request.method,
        path=request.path,
        raw_query=request.raw_query,
        headers=request.headers,
        body=request.body,
        client_ip=request.client_ip,
        # The gateway terminates TLS; it says what the caller used.
        scheme=headers.get("X-Forwarded-Proto") or "http",
        protocol=f"HTTP/{request.version}",
        # The gateway strips a Trigger's prefix and says which: apps build URLs with it.
        prefix=mount_prefix(headers.get(PREFIX_HEADER)),
        host=headers.get("Host", ""),
        # The Trigger's payloadFormatVersion, which the gateway says per route.
        payload_format=headers.get(PAYLOAD_FORMAT_HEADER) or PAYLOAD_FORMAT_1,
        resources=headers.get(RESOURCES_HEADER, ""),
    )


async def _invoke_reply(invoker: Invoker, event: Any, context: Context) -> HttpReply:
    """``/_hanshu/invoke``: the raw event in, the handler's result as JSON out."""
    result = await invoker.invoke(event, context)
    return HttpReply(200, [("Content-Type", "application/json")], to_json_bytes(result))


async def _listen(server: HttpServer, host: str, port: int, variable: str) -> None:
    """Start listening; a port that cannot be had is a start-up fault, not a traceback."""
    try:
        await server.listen(host, port)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on http://{host}:{port}: {error.strerror or error}",
            f"set {variable} to a free port (or stop what is using it)",
        ) from None


def _spans_for(config: RuntimeConfig) -> SpanExporting | None:
    """The span exporter of the Function ``config`` names (None when tracing is off)."""
    return span_exporting(
        os.environ,
        f"{config.function_name}.{config.namespace}",
        {
            "faas.name": config.function_name,
            "faas.version": config.function_version,
            "faas.instance": config.instance,
            "k8s.namespace.name": config.namespace,
        },
    )


def _function_info(config: RuntimeConfig) -> FunctionInfo:
    """What the context says of the Function: at start, and again on specialization."""
    return FunctionInfo(
        name=config.function_name,
        handler=config.handler,
        version=config.function_version,
        memory=config.memory_mb,
        timeout=config.timeout_seconds,
        namespace=config.namespace,
        instance=config.instance,
    )


class Instance:
    def __init__(self, config: RuntimeConfig, pool_token: str | None = None) -> None:
        self.config = config
        # Pool mode when set: the token POST SPECIALIZE_PATH must bear.
        self.pool_token = pool_token
        self._specialize_claimed = False
        self._function_port: HttpServer | None = None
        self.phase = Phase.STARTING
        self.in_flight = 0
        self.metrics = self._metrics_for(config)
        self._metrics_registered = False
        self._request_ids = RequestIds()
        self._function = _function_info(config)
        self._idle = asyncio.Event()
        self._idle.set()
        self._stop = asyncio.Event()
        self._threads = HandlerThreads(asyncio.get_running_loop())
        self._invoker: Invoker | None = None
        # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set and OpenTelemetry is installed.
        self._spans: SpanExporting | None = _spans_for(config)

    # -- the function port ------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        if request.path == READY_PATH and request.method == "GET":
            return Response(200 if self.phase is Phase.READY else 503)
        given = request.by_name.get("X-Request-Id", "")
        # A caller's id is kept only if it can go back out in a header and into a log.
        usable = 0 < len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable()
        request_id = given if usable else self._request_ids.next()
        if self.phase in (Phase.POOLED, Phase.SPECIALIZING, Phase.FAILED):
            self.metrics.count("rejected")
            return _error(
                503,
                "NotSpecialized",
                "this is a warm pool replica serving no Function (yet)",
                request_id,
            )
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
        spans = self._spans
        span = None
        if spans is None:
            traceparent = self._trace(request)
        else:
            caller_trace = request.by_name.get(TRACEPARENT)
            span, traceparent = spans.start(
                caller_trace, request.by_name.get(TRACESTATE), self.config.function_name
            )
            span.set_attribute("faas.invocation_id", request_id)
            usable = parse_traceparent(caller_trace) is not None
            _with_trace(request, traceparent, keep_state=usable)
        token = request_id_var.set(request_id)
        trace_token = trace_id_var.set(traceparent[3:35])
        status = 500
        try:
            response = await self._invoke(request, request_id, self._invoker, traceparent)
            status = response.status
            return response
        finally:
            if span is not None and spans is not None:
                spans.end(span, status)
            trace_id_var.reset(trace_token)
            request_id_var.reset(token)
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    @staticmethod
    def _trace(request: Request) -> str:
        """The invocation's ``traceparent``: the caller's, or a new trace when it sent none
        or one that is malformed (then set on the request, where the handler finds it)."""
        given = request.by_name.get(TRACEPARENT)
        parsed = parse_traceparent(given)
        if parsed is None:
            traceparent = new_traceparent()
            if given is None:  # the headers' own list: request.headers sees it too
                request.by_name.append(TRACEPARENT, traceparent)
            else:
                _with_trace(request, traceparent, keep_state=False)
            return traceparent
        if given is not None and len(given) == 55 and given[:3] == "00-" and parsed[2] <= 1:
            return given  # already as we would write it
        return format_traceparent(*parsed)

    async def _invoke(
        self, request: Request, request_id: str, invoker: Invoker, traceparent: str = ""
    ) -> Response:
        config = self.config
        metrics = self.metrics
        body = request.body
        if request.body_too_large:
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
        if request.method == "POST" and request.path == INVOKE_PATH:
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
            call = _invoke_reply(
                invoker, event, self._context(request_id, request.by_name, traceparent=traceparent)
            )
        else:
            call = invoker.http(
                _to_http_request(request),
                self._context(request_id, request.by_name, traceparent=traceparent),
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
        problem = invalid_reply(reply.status, reply.headers)
        if problem is not None:
            metrics.observe("invalid_response", time.perf_counter() - started)
            log.error("the handler's reply is invalid: %s", problem)
            return _error(502, InvalidResponse.error_type, problem, request_id)
        metrics.observe("success", time.perf_counter() - started)
        headers = [
            (name, value)
            for name, value in reply.headers
            if name.lower() not in _REPLACED_REPLY_HEADERS
        ]
        headers.append(("X-Request-Id", request_id))
        return Response(reply.status, headers, reply.body)

    def _context(
        self,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        traceparent: str = "",
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
            traceparent,
        )

    # -- the admin port ---------------------------------------------------------------------

    async def admin(self, request: Request) -> Response:
        if self.pool_token is not None and request.path == SPECIALIZE_PATH:
            return await self.specialize(request)
        if request.method not in ("GET", "HEAD"):
            return json_response(405, {"errorType": "MethodNotAllowed", "errorMessage": "GET only"})
        if request.path == "/healthz":
            return json_response(200, {"status": "alive", "phase": self.phase.value})
        if request.path == "/readyz":
            status = 200 if self.phase is Phase.READY else 503
            return json_response(status, {"phase": self.phase.value})
        if request.path == "/metrics":
            return self.metrics_page()
        return json_response(
            404,
            {
                "errorType": "NotFound",
                "errorMessage": f"no {request.path} here: the admin port serves "
                "/healthz, /readyz and /metrics",
            },
        )

    async def specialize(self, request: Request) -> Response:
        """Become one Function for good: its files written, its environment applied, its
        handler loaded as a normal start loads it; 200 once the function port serves it."""
        assert self.pool_token is not None
        if request.method != "POST":
            return json_response(
                405, {"errorType": "MethodNotAllowed", "errorMessage": "POST only"}
            )
        if not bearer_matches(request.by_name.get("Authorization"), self.pool_token):
            return json_response(
                401,
                {
                    "errorType": "Unauthorized",
                    "errorMessage": "specializing needs Authorization: Bearer <the pool token>",
                },
            )
        if self._specialize_claimed:
            return json_response(
                409,
                {
                    "errorType": "AlreadySpecialized",
                    "errorMessage": "this pool replica was specialized already: it runs one "
                    f"Function ever (it is {self.phase.value})",
                },
            )
        if request.body_too_large:
            return json_response(
                413,
                {
                    "errorType": "RequestTooLarge",
                    "errorMessage": f"the request is over {MAX_SPECIALIZE_BYTES} bytes",
                },
            )
        try:
            wanted = parse_specialization(request.body)
        except SpecializeInvalid as invalid:
            return json_response(400, {"errorType": "InvalidRequest", "errorMessage": str(invalid)})
        self._specialize_claimed = True  # before any await: a second request gets 409
        self.phase = Phase.SPECIALIZING
        started = time.perf_counter()
        try:
            code_dir = wanted.env.get("HANSHU_CODE_DIR", "") or self.config.code_dir
            try:
                write_code(code_dir, wanted.files)
            except OSError as error:
                raise ConfigError(
                    f"cannot write the code into {code_dir}: {error.strerror or error}",
                    "point HANSHU_CODE_DIR at a writable folder (in a pod: under /tmp)",
                ) from None
            apply_env(os.environ, wanted.env)
            pooled = self.config
            self.config = replace(
                config_from_env(os.environ),
                host=pooled.host,
                port=pooled.port,
                admin_port=pooled.admin_port,
                instance=pooled.instance,
            )
            self._become(self.config)
            await self.load()
        except StartupFault as fault:
            self.phase = Phase.FAILED
            self._report_fault(fault)
            return json_response(
                500,
                {
                    "errorType": fault.fault_type,
                    "errorMessage": fault.one_line(),
                    "phase": self.phase.value,
                },
            )
        self._serving()
        return json_response(
            200,
            {
                "phase": self.phase.value,
                "namespace": wanted.namespace,
                "function": wanted.function,
                "specializeSeconds": round(time.perf_counter() - started, 6),
            },
        )

    def _metrics_for(self, config: RuntimeConfig) -> FunctionMetrics:
        return FunctionMetrics(config.function_name, lambda: self.in_flight, config.metrics_version)

    def _become(self, config: RuntimeConfig) -> None:
        """What a normal start would have built from this config."""
        configure_logging(config.function_name, config.log_level)
        self._function = _function_info(config)
        if not self._metrics_registered:
            self.metrics = self._metrics_for(config)
        # A pool process's exporter (if it had one) named the pool: the Function's spans
        # name the Function, and an endpoint the specialization brings is used.
        if self._spans is not None:
            self._spans.shutdown()
        self._spans = _spans_for(config)
        if self._function_port is not None:
            self._function_port.max_body_bytes = config.max_body_bytes

    def _report_fault(self, fault: StartupFault) -> None:
        """As a normal start reports it: one line on stderr and in the termination log."""
        line = fault.one_line()
        print(line, file=sys.stderr, flush=True)
        try:
            with open(self.config.termination_log, "w", encoding="utf-8") as sink:
                sink.write(line + "\n")
        except OSError:
            pass

    def metrics_page(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if not self._metrics_registered:  # at the first scrape, not before the first answer
            self.metrics.register()
            self._metrics_registered = True
        return Response(200, [("Content-Type", CONTENT_TYPE_LATEST)], generate_latest())

    # -- lifecycle --------------------------------------------------------------------------

    async def load(self) -> None:
        """Import the handler and run the initializer; raises ``StartupFault``."""
        started = time.perf_counter()
        # Lambda's variables, before the handler's module reads them at import.
        lambda_env.apply(os.environ, self._function, self.config.code_dir)
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

        pooled = self.pool_token is not None
        # A pool replica's admin port takes the specialize request (the code and env).
        admin_body = MAX_SPECIALIZE_BYTES if pooled else _ADMIN_MAX_BODY
        admin = HttpServer(self.admin, max_body_bytes=admin_body)
        await _listen(admin, config.host, config.admin_port, "HANSHU_ADMIN_PORT")
        function_port: HttpServer | None = None
        try:
            if not pooled:
                await self.load()
            function_port = HttpServer(self.handle, max_body_bytes=config.max_body_bytes)
            self._function_port = function_port
            await _listen(function_port, config.host, config.port, "HANSHU_PORT")
            if pooled:
                self.phase = Phase.POOLED
                log.info(
                    "pooled: waiting to be specialized",
                    extra={"port": config.port, "adminPort": config.admin_port},
                )
            else:
                self._serving()
            await self._stop.wait()
            await self._drain(function_port)
        finally:
            if function_port is not None:
                function_port.close()
            if isinstance(self._invoker, AsgiInvoker):
                await self._invoker.lifespan.shutdown(self.config.drain_seconds)
            admin.close()
            self._threads.shutdown()
            if self._spans is not None:
                self._spans.shutdown()  # what is still batched goes out before the exit

    def _serving(self) -> None:
        config = self.config
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

    async def _drain(self, function_port: HttpServer) -> None:
        self.phase = Phase.DRAINING
        function_port.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_seconds
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
        # Gateways still sending here (they have not seen the endpoint go yet) are
        # answered "draining" and retry elsewhere; close when they have stopped.
        remaining = max(0.0, deadline - loop.time())
        await function_port.until_quiet(_DRAIN_QUIET_SECONDS, remaining)
        log.info("drained")
