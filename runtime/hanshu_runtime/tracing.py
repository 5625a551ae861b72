"""W3C ``traceparent`` for the handler, and a span around it when tracing is on.

Every invocation has a trace: the one its ``traceparent`` header names (the gateway always
sends one), or a new one when the header is absent or malformed (a replica called
directly). The handler reads it as ``context.trace_id`` and ``context.traceparent`` and
finds it in the event's (or the WSGI / ASGI request's) ``traceparent`` header, to pass on.

Spans go out over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the image has
OpenTelemetry (``hanshu[tracing]``); nothing of it is imported otherwise, and a replica
whose endpoint is set without the SDK says so in one log line and runs untraced. With a span,
the header the handler sees names the runtime's span as parent, so what the handler calls
joins the trace below it.

The runtime imports nothing of ours: this reader mirrors hanshu_api.trace_context, and
tests/unit/test_trace_context.py keeps the two agreeing on every case.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("hanshu.runtime")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_LENGTH = 55
_PARTS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(value: str | None) -> tuple[str, str, int] | None:
    """(trace id, parent id, flags), or None when absent or malformed (the W3C rules, as
    hanshu_api.trace_context.parse_traceparent reads them)."""
    if not value:
        return None
    value = value.strip(" \t")
    if len(value) < _LENGTH:
        return None
    matched = _PARTS.fullmatch(value, 0, _LENGTH)
    if matched is None:
        return None
    version, trace_id, parent_id, flags = matched.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if version == "00":
        if len(value) != _LENGTH:
            return None
    elif len(value) > _LENGTH and value[_LENGTH] != "-":
        return None
    return trace_id, parent_id, int(flags, 16)


def format_traceparent(trace_id: str, parent_id: str, flags: int) -> str:
    return f"00-{trace_id}-{parent_id}-{flags & 1:02x}"


def new_traceparent() -> str:
    """A new, sampled trace (a replica called without one)."""
    # Random, not secret (as hanshu_api.trace_context's): a system call per request for
    # os.urandom would cost more than the rest of this.
    while True:
        ids = f"{random.getrandbits(192):048x}"
        trace_id, span_id = ids[:32], ids[32:]
        if trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN:
            return f"00-{trace_id}-{span_id}-01"


def endpoint_of(env: Mapping[str, str]) -> str | None:
    for name in ENDPOINT_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


class SpanExporting:
    """OpenTelemetry's SDK, built only when an endpoint is set and the SDK is there."""

    def __init__(self, service_name: str, attributes: Mapping[str, str]) -> None:
        """Raises ImportError when OpenTelemetry is not installed."""
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
            raise  # span_exporting says so, in one line

        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        resource = Resource.create({SERVICE_NAME: name, **attributes})
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("hanshu.runtime")
        self._remote = (NonRecordingSpan, SpanContext, TraceFlags, TraceState, set_span_in_context)
        self._server = SpanKind.SERVER
        self._error = (Status, StatusCode)

    def start(self, traceparent: str | None, tracestate: str | None, name: str) -> tuple[Any, str]:
        """A server span below ``traceparent`` (None: the root of a new trace), and the
        ``traceparent`` that names it, for the handler to pass on."""
        non_recording, span_context, trace_flags, trace_state, in_context = self._remote
        parsed = parse_traceparent(traceparent)
        if parsed is None:
            span = self._tracer.start_span(name, kind=self._server)
            own = span.get_span_context()
            return span, format_traceparent(
                format(own.trace_id, "032x"), format(own.span_id, "016x"), int(own.trace_flags)
            )
        trace_id, parent_id, flags = parsed
        parent = span_context(
            trace_id=int(trace_id, 16),
            span_id=int(parent_id, 16),
            is_remote=True,
            trace_flags=trace_flags(flags & 1),
            trace_state=trace_state.from_header([tracestate]) if tracestate else None,
        )
        span = self._tracer.start_span(
            name, context=in_context(non_recording(parent)), kind=self._server
        )
        span_id = format(span.get_span_context().span_id, "016x")
        return span, format_traceparent(trace_id, span_id, flags)

    def end(self, span: Any, status: int) -> None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            status_type, code = self._error
            span.set_status(status_type(code.ERROR, f"HTTP {status}"))
        span.end()

    def shutdown(self) -> None:
        self._provider.shutdown()


def span_exporting(
    env: Mapping[str, str], service_name: str, attributes: Mapping[str, str]
) -> SpanExporting | None:
    """The exporter when tracing is on and possible; None (one log line when an endpoint is
    set but OpenTelemetry is missing) otherwise."""
    endpoint = endpoint_of(env)
    if endpoint is None:
        return None
    try:
        return SpanExporting(service_name, attributes)
    except ImportError as missing:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set (%s) but OpenTelemetry is not installed "
            "(%s): no spans are exported; build the image with hanshu[tracing]",
            endpoint,
            missing,
        )
        return None
