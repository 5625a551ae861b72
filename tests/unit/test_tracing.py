"""The components' tracer (hanshu_api.tracing) on OpenTelemetry's SDK, with its in-memory
exporter: spans hang below the trace they are given, what goes downstream names the new
span, a trace the gateway started is a root, and an unsampled caller's trace records nothing
but still travels."""

from __future__ import annotations

from hanshu_api.trace_context import incoming
from hanshu_api.tracing import CLIENT, SERVER, Tracer, _load_sdk, _OtelTracer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _tracer() -> tuple[Tracer, InMemorySpanExporter]:
    sdk = _load_sdk()
    assert sdk is not None
    exporter = InMemorySpanExporter()
    return _OtelTracer("hanshu-gateway", sdk, exporter), exporter


def test_spans_hang_below_the_callers_and_name_themselves_downstream() -> None:
    tracer, exporter = _tracer()
    caller = incoming(f"00-{TRACE}-{CALLER_SPAN}-01", "congo=t61rcWkgMzE")
    server = tracer.start("GET", SERVER, caller, {"http.request.method": "GET"})
    client = tracer.start("forward", CLIENT, server.context)
    client.fail("ReplicaFailed")
    client.end()
    server.set("http.response.status_code", 502)
    server.end()
    tracer.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert {f"{s.context.trace_id:032x}" for s in spans.values()} == {TRACE}
    assert spans["GET"].kind is SpanKind.SERVER
    assert spans["GET"].parent is not None
    assert f"{spans['GET'].parent.span_id:016x}" == CALLER_SPAN
    assert spans["forward"].parent is not None
    assert spans["forward"].parent.span_id == spans["GET"].context.span_id
    assert spans["forward"].status.status_code is StatusCode.ERROR
    assert spans["GET"].attributes == {
        "http.request.method": "GET",
        "http.response.status_code": 502,
    }
    # What the next hop is told: this span, the same trace, the caller's tracestate.
    told = client.context
    assert told.parent.header() == f"00-{TRACE}-{spans['forward'].context.span_id:016x}-01"
    assert told.state == "congo=t61rcWkgMzE"


def test_a_trace_the_gateway_starts_is_rooted_at_its_span() -> None:
    tracer, exporter = _tracer()
    span = tracer.start("GET", SERVER, incoming(None, None))
    span.end()
    tracer.shutdown()
    (exported,) = exporter.get_finished_spans()
    assert exported.parent is None
    assert span.context.trace_id == f"{exported.context.trace_id:032x}"


def test_an_unsampled_callers_trace_records_nothing_and_still_travels() -> None:
    tracer, exporter = _tracer()
    span = tracer.start("GET", SERVER, incoming(f"00-{TRACE}-{CALLER_SPAN}-00", None))
    span.end()
    tracer.shutdown()
    assert exporter.get_finished_spans() == ()
    assert span.context.trace_id == TRACE
    assert not span.context.parent.sampled
