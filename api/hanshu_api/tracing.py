"""Spans for the components (gateway, dispatcher), exported by OpenTelemetry's SDK over
OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
is set.

Off by default, and free when off: ``tracer_from_env`` imports nothing of OpenTelemetry
unless an endpoint is set, and the tracer it returns then (``NO_TRACING``) hands back the
trace it was given, so what goes downstream is the caller's ``traceparent`` unchanged (the
W3C spec's rule for a hop that takes no part in a trace). When on, each span's own id
becomes the next hop's parent, so gateway, dispatcher and runtime spans form one tree.

The SDK reads its standard variables itself (``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_SERVICE_NAME``, ...). Spans are started with an explicit
parent rather than the SDK's "current span": the gateway and the dispatcher serve many calls
on one event loop and already carry each call's trace (trace_context.TraceContext).
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, Protocol

from .trace_context import TraceContext, TraceParent

log = logging.getLogger("hanshu.tracing")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The trace of the call being served in this task (set where a call comes in: the
# gateway's ports, the dispatcher's delivery); the log lines (logs.py) carry its id, and a
# hop onward (the gateway's forward, the async intake) takes it as its parent.
current_trace: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "hanshu_trace", default=None
)

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = (
    "server",
    "client",
    "producer",
    "consumer",
    "internal",
)


class Span(Protocol):
    """One span in progress: ``context`` is what the next hop is told."""

    @property
    def context(self) -> TraceContext: ...

    def set(self, key: str, value: str | int | float | bool) -> None: ...

    def fail(self, description: str) -> None: ...

    def end(self) -> None: ...


class Tracer(Protocol):
    @property
    def enabled(self) -> bool: ...

    def start(
        self,
        name: str,
        kind: str,
        parent: TraceContext,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Span: ...

    def shutdown(self) -> None: ...


class _PassThrough:
    """The span of a tracer that is off: records nothing, passes its parent on."""

    __slots__ = ("context",)

    def __init__(self, parent: TraceContext) -> None:
        self.context = parent

    def set(self, key: str, value: str | int | float | bool) -> None:
        pass

    def fail(self, description: str) -> None:
        pass

    def end(self) -> None:
        pass


class _NoTracing:
    enabled = False

    def start(
        self,
        name: str,
        kind: str,
        parent: TraceContext,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Span:
        return _PassThrough(parent)

    def shutdown(self) -> None:
        pass


NO_TRACING: Tracer = _NoTracing()


def endpoint_of(env: Mapping[str, str]) -> str | None:
    for name in ENDPOINT_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _load_sdk() -> SimpleNamespace | None:
    """OpenTelemetry's SDK and OTLP/HTTP exporter, imported now (never at module import:
    a component without an endpoint never loads them); None when not installed."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
            set_span_in_context,
        )
        from opentelemetry.trace.span import TraceState
    except ImportError:
        return None
    return SimpleNamespace(
        OTLPSpanExporter=OTLPSpanExporter,
        SERVICE_NAME=SERVICE_NAME,
        Resource=Resource,
        TracerProvider=TracerProvider,
        BatchSpanProcessor=BatchSpanProcessor,
        NonRecordingSpan=NonRecordingSpan,
        SpanContext=SpanContext,
        SpanKind=SpanKind,
        Status=Status,
        StatusCode=StatusCode,
        TraceFlags=TraceFlags,
        TraceState=TraceState,
        set_span_in_context=set_span_in_context,
    )


class _OtelSpan:
    __slots__ = ("_error", "_span", "context")

    def __init__(self, span: Any, parent: TraceContext, error: Any) -> None:
        self._span = span
        self._error = error
        own = span.get_span_context()
        # The span's own ids (a trace the gateway started is the SDK's: its span is a root),
        # and the sampling decision the SDK made from the parent's flag.
        self.context = TraceContext(
            TraceParent(
                format(own.trace_id, "032x"), format(own.span_id, "016x"), int(own.trace_flags)
            ),
            parent.state,
        )

    def set(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        self._span.set_status(self._error(description))

    def end(self) -> None:
        self._span.end()


class _OtelTracer:
    """OpenTelemetry's SDK behind the Tracer protocol; built only when an endpoint is set."""

    enabled = True

    def __init__(self, service_name: str, sdk: SimpleNamespace, exporter: Any = None) -> None:
        self._sdk = sdk
        # OTEL_SERVICE_NAME, when set, names the service as the SDK's users expect.
        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        self._provider = sdk.TracerProvider(resource=sdk.Resource.create({sdk.SERVICE_NAME: name}))
        self._provider.add_span_processor(
            sdk.BatchSpanProcessor(exporter if exporter is not None else sdk.OTLPSpanExporter())
        )
        self._tracer = self._provider.get_tracer("hanshu")
        kinds = sdk.SpanKind
        self._kinds = {
            SERVER: kinds.SERVER,
            CLIENT: kinds.CLIENT,
            PRODUCER: kinds.PRODUCER,
            CONSUMER: kinds.CONSUMER,
            INTERNAL: kinds.INTERNAL,
        }

    def _error(self, description: str) -> Any:
        return self._sdk.Status(self._sdk.StatusCode.ERROR, description)

    def start(
        self,
        name: str,
        kind: str,
        parent: TraceContext,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Span:
        sdk = self._sdk
        if parent.started:
            # Nobody called us in a trace: this span is the trace's root.
            span = self._tracer.start_span(
                name, kind=self._kinds[kind], attributes=dict(attributes) if attributes else None
            )
            return _OtelSpan(span, parent, self._error)
        state = sdk.TraceState.from_header([parent.state]) if parent.state else None
        remote = sdk.SpanContext(
            trace_id=int(parent.parent.trace_id, 16),
            span_id=int(parent.parent.parent_id, 16),
            is_remote=True,
            trace_flags=sdk.TraceFlags(parent.parent.flags & sdk.TraceFlags.SAMPLED),
            trace_state=state,
        )
        span = self._tracer.start_span(
            name,
            context=sdk.set_span_in_context(sdk.NonRecordingSpan(remote)),
            kind=self._kinds[kind],
            attributes=dict(attributes) if attributes else None,
        )
        return _OtelSpan(span, parent, self._error)

    def shutdown(self) -> None:
        self._provider.shutdown()


def tracer_from_env(service_name: str, env: Mapping[str, str] | None = None) -> Tracer:
    """The tracer a component runs with: NO_TRACING unless an OTLP endpoint is set; then the
    SDK's, or NO_TRACING with one line in the log when the SDK is not installed (the image
    was built without the ``tracing`` extra)."""
    env = os.environ if env is None else env
    endpoint = endpoint_of(env)
    if endpoint is None:
        return NO_TRACING
    sdk = _load_sdk()
    if sdk is None:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set (%s) but OpenTelemetry is not installed: "
            "no spans are exported; install hanshu[tracing]",
            endpoint,
        )
        return NO_TRACING
    return _OtelTracer(service_name, sdk)


__all__ = [
    "CLIENT",
    "CONSUMER",
    "INTERNAL",
    "NO_TRACING",
    "PRODUCER",
    "SERVER",
    "Span",
    "Tracer",
    "current_trace",
    "endpoint_of",
    "tracer_from_env",
]
